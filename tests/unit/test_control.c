/* Unit tests for the control socket server: request validation. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cjson/cJSON.h>

#include "master/control.h"
#include "core/evloop.h"
#include "core/jsonutil.h"
#include "testutil.h"

#define TURNS 50		/* loop turns to wait for a reply */
#define TURN_MS 20

struct fx {
	char dir[64];
	char path[128];
	struct evloop *loop;
	struct control *ctl;
	int calls;		/* handler calls */
	struct control_reply *later;	/* a deferred reply, for "later" */
};

static cJSON *
echo_handler(const char *cmd, const cJSON *request, void *arg, char *err,
    size_t errlen)
{
	struct fx *f = arg;
	cJSON *reply = cJSON_CreateObject();

	(void)request;
	(void)err;
	(void)errlen;
	f->calls++;
	cJSON_AddStringToObject(reply, "cmd", cmd);
	if (strcmp(cmd, "later") == 0 && f->later == NULL &&
	    (f->later = control_defer(f->ctl)) != NULL) {
		cJSON_Delete(reply);
		return NULL;
	}
	return reply;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	if (f == NULL)
		return -1;
	if (tu_mkdtemp(f->dir, sizeof(f->dir), "control") == NULL ||
	    (f->loop = evloop_new()) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/ctl.sock", f->dir);
	f->ctl = control_open(f->path, f->loop, echo_handler, f, err,
	    sizeof(err));
	if (f->ctl == NULL) {
		fprintf(stderr, "fixture: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	control_close(f->ctl, 1);
	evloop_free(f->loop);
	tu_remove_tree(f->dir);
	free(f);
	return 0;
}

static int
connect_to(struct fx *f)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, f->path, strlen(f->path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Clients that connect and leave at once, before the server accepts. */
static void
come_and_go(struct fx *f, int n)
{
	while (n-- > 0)
		close(connect_to(f));
}

/*
 * Read from fd while turning the loop, until a line has come (or, with
 * to_eof, until the server has closed); bounded by TURNS.  Returns how many
 * bytes arrived in buf (NUL-terminated); *eof says whether the server closed.
 */
static size_t
collect(struct fx *f, int fd, char *buf, size_t cap, int to_eof, int *eof)
{
	struct pollfd pfd;
	size_t got = 0;
	ssize_t n;
	int i;

	*eof = 0;
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (i = 0; i < TURNS && !*eof &&
	    (to_eof || memchr(buf, '\n', got) == NULL); i++) {
		evloop_run_once(f->loop, TURN_MS);
		while (!*eof && poll(&pfd, 1, 0) == 1) {
			n = read(fd, buf + got, cap - 1 - got);
			if (n <= 0)
				*eof = 1;
			else
				got += (size_t)n;
		}
	}
	buf[got] = '\0';
	return got;
}

/* Send raw bytes on a fresh connection; return the first reply line. */
static char *
exchange(struct fx *f, const char *data, size_t len)
{
	char *buf = calloc(1, 4096);
	size_t got;
	int fd, eof;

	assert_non_null(buf);
	fd = connect_to(f);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	got = collect(f, fd, buf, 4096, 0, &eof);
	close(fd);
	assert_non_null(memchr(buf, '\n', got));
	*strchr(buf, '\n') = '\0';
	return buf;
}

static void
expect_error(struct fx *f, const char *data, size_t len, const char *error)
{
	char *line = exchange(f, data, len);
	cJSON *reply;

	assert_true(json_utf8_valid(line, strlen(line)));
	reply = cJSON_Parse(line);
	assert_non_null(reply);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(reply, "ok")));
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(reply,
	    "error")), error);
	cJSON_Delete(reply);
	free(line);
}

static void
test_valid_request(void **state)
{
	struct fx *f = *state;
	char *line = exchange(f, "{\"cmd\":\"status\"}\n", 17);

	assert_string_equal(line, "{\"cmd\":\"status\",\"ok\":true}");
	assert_int_equal(f->calls, 1);
	free(line);
}

/* cJSON passes any bytes through a string; the reply would echo them. */
static void
test_not_utf8(void **state)
{
	struct fx *f = *state;
	static const char req[] = "{\"cmd\":\"\xff\xfe\"}\n";
	static const char cut[] = "{\"cmd\":\"st\xc3\x28\"}\n";

	expect_error(f, req, sizeof(req) - 1,
	    "malformed request: not valid UTF-8");
	expect_error(f, cut, sizeof(cut) - 1,
	    "malformed request: not valid UTF-8");
	assert_int_equal(f->calls, 0);
}

/* A name is echoed in the error and the log: no line breaks, no UTF-8. */
static void
test_cmd_not_a_name(void **state)
{
	struct fx *f = *state;
	static const char *const reqs[] = {
		"{\"cmd\":\"x\\n2026 forged log line\"}\n",
		"{\"cmd\":\"tab\\there\"}\n",
		"{\"cmd\":\"with space\"}\n",
		"{\"cmd\":\"caf\xc3\xa9\"}\n",
		"{\"cmd\":\"del\\u007f\"}\n",
	};
	size_t i;

	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		expect_error(f, reqs[i], strlen(reqs[i]),
		    "malformed request: \"cmd\" is not a command name");
	assert_int_equal(f->calls, 0);
}

/*
 * Connections already closed when accepted leave their slots at once: a
 * live client queued behind more of them than there are slots is served.
 */
static void
test_gone_peers_free_their_slots(void **state)
{
	struct fx *f = *state;
	char *line;

	come_and_go(f, CTL_MAX_CLIENTS * 2 / 3);
	evloop_run_once(f->loop, TURN_MS);
	come_and_go(f, CTL_MAX_CLIENTS * 2 / 3);
	line = exchange(f, "{\"cmd\":\"status\"}\n", 17);
	assert_string_equal(line, "{\"cmd\":\"status\",\"ok\":true}");
	free(line);
}

/*
 * A client that half-closes after its request (socat, nc -N: write the
 * line, shutdown(SHUT_WR)) gets its reply, then the server closes.
 */
static void
test_half_close_gets_reply(void **state)
{
	struct fx *f = *state;
	static const char req[] = "{\"cmd\":\"status\"}\n";
	char buf[4096];
	int fd, eof;

	fd = connect_to(f);
	assert_int_equal(write(fd, req, sizeof(req) - 1),
	    (ssize_t)sizeof(req) - 1);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	collect(f, fd, buf, sizeof(buf), 1, &eof);
	close(fd);
	assert_int_equal(f->calls, 1);
	assert_string_equal(buf, "{\"cmd\":\"status\",\"ok\":true}\n");
	assert_true(eof);
}

/* Two lines then EOF: both answered, in order; then the server closes. */
static void
test_half_close_two_requests(void **state)
{
	struct fx *f = *state;
	static const char req[] = "{\"cmd\":\"a\"}\n{\"cmd\":\"b\"}\n";
	char buf[4096];
	int fd, eof;

	fd = connect_to(f);
	assert_int_equal(write(fd, req, sizeof(req) - 1),
	    (ssize_t)sizeof(req) - 1);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	collect(f, fd, buf, sizeof(buf), 1, &eof);
	close(fd);
	assert_string_equal(buf, "{\"cmd\":\"a\",\"ok\":true}\n"
	    "{\"cmd\":\"b\",\"ok\":true}\n");
	assert_true(eof);
}

/* The half-close arrives while a deferred reply is pending. */
static void
test_half_close_deferred_reply(void **state)
{
	struct fx *f = *state;
	static const char req[] = "{\"cmd\":\"later\"}\n";
	char buf[4096];
	cJSON *reply;
	int fd, eof, i;

	fd = connect_to(f);
	assert_int_equal(write(fd, req, sizeof(req) - 1),
	    (ssize_t)sizeof(req) - 1);
	for (i = 0; i < TURNS && f->later == NULL; i++)
		evloop_run_once(f->loop, TURN_MS);
	assert_non_null(f->later);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	for (i = 0; i < 3; i++)
		evloop_run_once(f->loop, TURN_MS);
	reply = cJSON_CreateObject();
	cJSON_AddStringToObject(reply, "cmd", "later");
	control_finish(f->later, reply, NULL);
	f->later = NULL;
	collect(f, fd, buf, sizeof(buf), 1, &eof);
	close(fd);
	assert_string_equal(buf, "{\"cmd\":\"later\",\"ok\":true}\n");
	assert_true(eof);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_request, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_utf8, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cmd_not_a_name, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_gone_peers_free_their_slots,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_gets_reply,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_two_requests,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_deferred_reply,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
