/*
 * Unit tests for ops/command: real commands run on a real event loop until
 * the handler completes (every wait bounded).  Each test checks afterwards
 * that no descriptor was left open and no child is left unreaped.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/evloop.h"
#include "ops/argv_template.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "testutil.h"

#define COMMAND_PATH	"/api/v1/agent/execute/command"
#define WAIT_LIMIT	30.0	/* seconds any one run may take */
#define MAX_OUTPUT	1000
#define SAFE_PATH	"PATH=/usr/sbin:/usr/bin:/sbin:/bin"

/* Braces in the sh scripts are the template's, so none appear there. */
static const char config_text[] =
    "operations: { command: { enabled = true; max_output = 1000;\n"
    "  environment = [ \"HOME\", \"EGRESSD_T_VAR\", \"EGRESSD_T_UNSET\" ];\n"
    "  commands = (\n"
    "  { name = \"echo\"; argv = [ \"/bin/echo\", \"{msg}\" ]; },\n"
    "  { name = \"exit3\"; argv = [ \"/bin/sh\", \"-c\", \"exit 3\" ]; },\n"
    "  { name = \"stderr\"; argv = [ \"/bin/sh\", \"-c\",\n"
    "    \"echo oops >&2; exit 1\" ]; },\n"
    "  { name = \"sleep\"; argv = [ \"/bin/sleep\", \"{n}\" ];\n"
    "    timeout = 30; },\n"
    "  { name = \"group\"; argv = [ \"/bin/sh\", \"-c\",\n"
    "    \"sleep 30 & echo $!; sleep 30\" ]; timeout = 2; },\n"
    "  { name = \"stubborn\"; argv = [ \"/bin/sh\", \"-c\",\n"
    "    \"trap '' TERM; echo ready; sleep 30\" ]; timeout = 2; },\n"
    "  { name = \"lots\"; argv = [ \"/bin/sh\", \"-c\",\n"
    "    \"yes aaaaaaa | head -c $0\", \"{n}\" ]; },\n"
    "  { name = \"argv\"; argv = [ \"/bin/sh\", \"-c\",\n"
    "    \"printf '%s\\\\n' $# \\\"$@\\\"\", \"sh\", \"{a}\",\n"
    "    \"--x={b}\" ]; },\n"
    "  { name = \"dash\"; argv = [ \"/bin/echo\", \"--\", \"{v}\" ]; },\n"
    "  { name = \"env\"; argv = [ \"/usr/bin/env\" ]; },\n"
    "  { name = \"selfkill\"; argv = [ \"/bin/sh\", \"-c\",\n"
    "    \"kill -{sig} $$; echo survived\" ]; },\n"
    "  { name = \"fds\"; argv = [ \"/bin/ls\", \"/proc/self/fd\" ]; },\n"
    "  { name = \"pids\"; argv = [ \"/bin/sh\", \"-c\",\n"
    "    \"sleep 30 & echo $$ $! > $0.tmp; mv $0.tmp $0; wait\",\n"
    "    \"{file}\" ]; timeout = 60; },\n"
    "  { name = \"binary\"; argv = [ \"/usr/bin/printf\",\n"
    "    \"\\\\377a\\\\000b\\\\342\\\\202\\\\254\" ]; },\n"
    "  { name = \"cat\"; argv = [ \"/bin/cat\" ]; },\n"
    "  { name = \"missing\"; argv = [ \"/nonexistent/egressd-t\" ]; }\n"
    "  ); }; };\n";

struct fixture {
	struct egressd_config cfg;
	struct evloop *loop;
	struct op_context ctx;
	struct tu_host host;	/* used by test_denied only */
	struct tu_run op;
	int fds_before;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->fds_before = tu_count_fds();
	tu_config(&f->cfg, config_text);
	assert_non_null(f->loop = evloop_new());
	f->ctx.cfg = &f->cfg;
	f->ctx.loop = f->loop;
	tu_host_init(&f->host);
	tu_run_init(&f->op, &f->ctx);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_run_free(&f->op);
	evloop_free(f->loop);
	config_free(&f->cfg);
	/* Nothing left behind: no descriptor, no child (not even a zombie). */
	assert_int_equal(tu_count_fds(), f->fds_before);
	tu_assert_no_children();
	free(f);
	return 0;
}

/* Start the operation; OPS_DONE results land in f->op.result too. */
static enum ops_status
start(struct fixture *f, const char *body_json)
{
	return tu_start(&f->op, COMMAND_PATH, body_json);
}

/* Run body to completion; the result (owned by f). */
static const cJSON *
run_op(struct fixture *f, const char *body_json)
{
	assert_int_equal(start(f, body_json), OPS_PENDING);
	assert_non_null(f->op.run.cancel);
	tu_wait(&f->op, WAIT_LIMIT);
	return f->op.result;
}

static void
assert_exit(const cJSON *r, int code)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "exit_code");

	if (!cJSON_IsNumber(e))
		fail_msg("no exit_code in %s", cJSON_PrintUnformatted(r));
	assert_int_equal(e->valueint, code);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "signal")));
}

static void
assert_signal(const cJSON *r, int sig)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "signal");

	if (!cJSON_IsNumber(s))
		fail_msg("no signal in %s", cJSON_PrintUnformatted(r));
	assert_int_equal(s->valueint, sig);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "exit_code")));
}

static void
assert_flag(const cJSON *r, const char *key, bool want)
{
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(r, key);

	assert_true(cJSON_IsBool(b));
	assert_int_equal(cJSON_IsTrue(b), want);
}

/* Whether pid is gone (or a zombie its new parent has not reaped). */
static bool
process_gone(long pid)
{
	char path[64], buf[256], *p;
	FILE *fp;
	bool gone = true;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return true;
	if (fgets(buf, sizeof(buf), fp) != NULL &&
	    (p = strrchr(buf, ')')) != NULL)
		gone = p[2] == 'Z' || p[2] == 'X';
	fclose(fp);
	return gone;
}

static void
wait_gone(long pid)
{
	double limit = clock_mono() + WAIT_LIMIT;

	while (!process_gone(pid) && clock_mono() < limit)
		usleep(10000);
	if (!process_gone(pid))
		fail_msg("process %ld is still running", pid);
}

static void
test_echo(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	r = run_op(f, "{\"name\": \"echo\", \"args\": {\"msg\": \"hello "
	    "world\"}}");
	assert_exit(r, 0);
	assert_string_equal(tu_str(r, "stdout"), "hello world\n");
	assert_string_equal(tu_str(r, "stderr"), "");
	assert_flag(r, "timed_out", false);
	assert_flag(r, "truncated", false);
	/* Numbers are written as JSON writes them. */
	r = run_op(f, "{\"name\": \"echo\", \"args\": {\"msg\": 42}}");
	assert_string_equal(tu_str(r, "stdout"), "42\n");
	r = run_op(f, "{\"name\": \"echo\", \"args\": {\"msg\": 0.25}}");
	assert_string_equal(tu_str(r, "stdout"), "0.25\n");
}

static void
test_exit_code_and_stderr(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	r = run_op(f, "{\"name\": \"exit3\"}");
	assert_exit(r, 3);
	assert_string_equal(tu_str(r, "stdout"), "");
	r = run_op(f, "{\"name\": \"stderr\", \"args\": {}}");
	assert_exit(r, 1);
	assert_string_equal(tu_str(r, "stdout"), "");
	assert_string_equal(tu_str(r, "stderr"), "oops\n");
	/* stdin is /dev/null: cat ends at once. */
	r = run_op(f, "{\"name\": \"cat\"}");
	assert_exit(r, 0);
	assert_string_equal(tu_str(r, "stdout"), "");
}

static void
test_timeout_kills_the_group(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;
	long grandchild;

	r = run_op(f, "{\"name\": \"group\"}");
	assert_flag(r, "timed_out", true);
	assert_signal(r, SIGTERM);
	grandchild = strtol(tu_str(r, "stdout"), NULL, 10);
	assert_true(grandchild > 1);
	wait_gone(grandchild);
	/* The operation may shorten the timeout (30 s configured). */
	r = run_op(f, "{\"name\": \"sleep\", \"args\": {\"n\": 20}, "
	    "\"timeout\": 0.2}");
	assert_flag(r, "timed_out", true);
	assert_signal(r, SIGTERM);
}

static void
test_timeout_escalates_to_sigkill(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	/* A longer timeout in the body does not extend the configured 2 s. */
	r = run_op(f, "{\"name\": \"stubborn\", \"timeout\": 1000}");
	assert_flag(r, "timed_out", true);
	assert_signal(r, SIGKILL);
	assert_string_equal(tu_str(r, "stdout"), "ready\n");
}

static void
test_truncation(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	r = run_op(f, "{\"name\": \"lots\", \"args\": {\"n\": 1000}}");
	assert_exit(r, 0);
	assert_int_equal(strlen(tu_str(r, "stdout")), MAX_OUTPUT);
	assert_flag(r, "truncated", false);
	/* Far more than a pipe holds: read to the end, kept to the limit. */
	r = run_op(f, "{\"name\": \"lots\", \"args\": {\"n\": 300000}}");
	assert_exit(r, 0);
	assert_int_equal(strlen(tu_str(r, "stdout")), MAX_OUTPUT);
	assert_int_equal(strncmp(tu_str(r, "stdout"), "aaaaaaa\naaaaaaa\n", 16),
	    0);
	assert_flag(r, "truncated", true);
	assert_flag(r, "timed_out", false);
}

static void
test_unknown_name(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, "{\"name\": \"rm\"}"), OPS_DONE);
	tu_assert_error(f->op.result, "not_found", NULL);
}

static void
test_invalid_requests(void **state)
{
	static const char *const bad[] = {
		"{}",
		"{\"name\": 1}",
		"{\"name\": \"\"}",
		"{\"name\": \"echo\"}",				/* missing */
		"{\"name\": \"echo\", \"args\": {}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"a\", "
		    "\"x\": \"b\"}}",
		"{\"name\": \"exit3\", \"args\": {\"msg\": \"a\"}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": true}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": null}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": [\"a\"]}}",
		"{\"name\": \"echo\", \"args\": [\"a\"]}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"\"}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"a\\nb\"}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"a\\u0001\"}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"-n\"}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": -1}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"\xff\"}}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"a\"}, "
		    "\"timeout\": 0}",
		"{\"name\": \"echo\", \"args\": {\"msg\": \"a\"}, "
		    "\"timeout\": \"1\"}",
	};
	struct fixture *f = *state;
	char body[8192], longval[4098];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (start(f, bad[i]) != OPS_DONE)
			fail_msg("%s: started", bad[i]);
		if (!tu_is_error(f->op.result, "invalid_request", NULL))
			fail_msg("%s: %s", bad[i],
			    cJSON_PrintUnformatted(f->op.result));
	}
	memset(longval, 'a', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	snprintf(body, sizeof(body), "{\"name\": \"echo\", \"args\": "
	    "{\"msg\": \"%s\"}}", longval);
	assert_int_equal(start(f, body), OPS_DONE);
	tu_assert_error(f->op.result, "invalid_request", NULL);
	assert_non_null(strstr(tu_str(f->op.result, "error"), "args.msg"));
	/* 4096 bytes is still fine (and the output over max_output). */
	longval[sizeof(longval) - 2] = '\0';
	snprintf(body, sizeof(body), "{\"name\": \"echo\", \"args\": "
	    "{\"msg\": \"%s\"}}", longval);
	assert_exit(run_op(f, body), 0);
	assert_int_equal(strlen(tu_str(f->op.result, "stdout")), MAX_OUTPUT);
	assert_flag(f->op.result, "truncated", true);
}

static void
test_arguments_stay_single(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	r = run_op(f, "{\"name\": \"argv\", \"args\": {\"a\": \"x; rm -rf "
	    "/tmp/nothing $(id) `id` | cat > /tmp/x\", \"b\": \"-y z\"}}");
	assert_exit(r, 0);
	/* $# then each argument on its line; "-" fine after "--x=". */
	assert_string_equal(tu_str(r, "stdout"), "2\n"
	    "x; rm -rf /tmp/nothing $(id) `id` | cat > /tmp/x\n--x=-y z\n");
	/* After a literal "--" a value may start with "-". */
	r = run_op(f, "{\"name\": \"dash\", \"args\": {\"v\": \"-n\"}}");
	assert_string_equal(tu_str(r, "stdout"), "-- -n\n");
}

static void
test_environment(void **state)
{
	struct fixture *f = *state;
	struct egressd_config cfg2;
	const cJSON *r;

	assert_int_equal(setenv("HOME", "/home/t", 1), 0);
	assert_int_equal(setenv("EGRESSD_T_VAR", "v 1", 1), 0);
	assert_int_equal(setenv("EGRESSD_T_HIDDEN", "secret", 1), 0);
	assert_int_equal(unsetenv("EGRESSD_T_UNSET"), 0);
	r = run_op(f, "{\"name\": \"env\"}");
	assert_string_equal(tu_str(r, "stdout"), SAFE_PATH "\nHOME=/home/t\n"
	    "EGRESSD_T_VAR=v 1\n");
	/* Listing PATH passes the worker's own. */
	tu_config(&cfg2, "operations: { command: { enabled = true;"
	    " environment = [ \"PATH\" ]; commands = ("
	    " { name = \"env\"; argv = [ \"/usr/bin/env\" ]; } ); }; };");
	assert_int_equal(setenv("PATH", "/usr/bin:/bin:/egressd-t", 1), 0);
	f->ctx.cfg = &cfg2;
	r = run_op(f, "{\"name\": \"env\"}");
	assert_string_equal(tu_str(r, "stdout"),
	    "PATH=/usr/bin:/bin:/egressd-t\n");
	f->ctx.cfg = &f->cfg;
	config_free(&cfg2);
	unsetenv("EGRESSD_T_HIDDEN");
}

static void
test_signal_state_reset(void **state)
{
	struct fixture *f = *state;
	struct sigaction ign, old_term;
	sigset_t block, old_mask;
	const cJSON *r;

	/* The worker ignores and blocks signals; the child must not. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGTERM, &ign, &old_term), 0);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old_mask), 0);
	r = run_op(f, "{\"name\": \"selfkill\", \"args\": {\"sig\": "
	    "\"TERM\"}}");
	assert_signal(r, SIGTERM);
	r = run_op(f, "{\"name\": \"selfkill\", \"args\": {\"sig\": "
	    "\"INT\"}}");
	assert_signal(r, SIGINT);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old_mask, NULL), 0);
	assert_int_equal(sigaction(SIGTERM, &old_term, NULL), 0);
}

static void
test_no_inherited_descriptors(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;
	int fd = open("/dev/null", O_RDONLY);	/* not close-on-exec */

	assert_true(fd > 2);
	r = run_op(f, "{\"name\": \"fds\"}");
	close(fd);
	/* 0-2 and ls's own directory descriptor. */
	assert_string_equal(tu_str(r, "stdout"), "0\n1\n2\n3\n");
}

static void
test_invalid_utf8_replaced(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	r = run_op(f, "{\"name\": \"binary\"}");
	assert_exit(r, 0);
	assert_string_equal(tu_str(r, "stdout"),
	    "\xef\xbf\xbd" "a" "\xef\xbf\xbd" "b" "\xe2\x82\xac");
}

/*
 * The pids command's body, for a file in a directory of its own, and the
 * two pids it writes there (the shell's and its background sleep's).
 */
struct pids {
	char dir[64];
	char file[96];
	char body[256];
	long child, grandchild;
};

static void
pids_init(struct pids *p)
{
	memset(p, 0, sizeof(*p));
	assert_non_null(tu_mkdtemp(p->dir, sizeof(p->dir), "cmd"));
	snprintf(p->file, sizeof(p->file), "%s/pids", p->dir);
	snprintf(p->body, sizeof(p->body), "{\"name\": \"pids\", \"args\": "
	    "{\"file\": \"%s\"}}", p->file);
}

/* Whether the command has written both pids yet. */
static bool
pids_read(struct pids *p)
{
	FILE *fp = fopen(p->file, "r");

	if (fp == NULL)
		return false;
	if (fscanf(fp, "%ld %ld", &p->child, &p->grandchild) != 2)
		p->child = p->grandchild = 0;
	fclose(fp);
	return p->grandchild != 0;
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	double limit = clock_mono() + WAIT_LIMIT;
	long child, grandchild;
	struct pids p;

	pids_init(&p);
	assert_int_equal(start(f, p.body), OPS_PENDING);
	while (!pids_read(&p) && clock_mono() < limit)
		assert_true(evloop_run_once(f->loop, 10) >= 0);
	child = p.child;
	grandchild = p.grandchild;
	assert_true(child > 1 && grandchild > 1);
	assert_false(process_gone(child));
	ops_cancel(&f->op.run);
	assert_null(f->op.run.cancel);
	assert_null(f->op.run.state);
	/* The child is reaped by the cancel, the grandchild killed. */
	assert_int_equal(kill((pid_t)child, 0), -1);
	assert_int_equal(errno, ESRCH);
	wait_gone(grandchild);
	/* No completion follows. */
	assert_int_equal(evloop_run_once(f->loop, 50), 0);
	assert_int_equal(f->op.done_calls, 0);
	tu_remove_tree(p.dir);
}

/* A command does not outlive a worker that was killed (no cancel ran). */
static void
test_dies_with_its_worker(void **state)
{
	struct fixture *f = *state;
	double limit = clock_mono() + WAIT_LIMIT;
	long child, grandchild;
	cJSON *b, *r = NULL;
	struct pids p;
	pid_t worker;
	bool gone;

	pids_init(&p);
	assert_non_null(b = cJSON_Parse(p.body));
	if ((worker = fork()) == 0) {
		/* The worker: start the command, serve its loop until killed. */
		if (dispatch_start(&f->op.run, COMMAND_PATH, b, &r) != OPS_PENDING)
			_exit(1);
		for (;;)
			(void)evloop_run_once(f->loop, 1000);
	}
	cJSON_Delete(b);
	assert_true(worker > 0);
	while (!pids_read(&p) && clock_mono() < limit)
		usleep(10000);
	child = p.child;
	grandchild = p.grandchild;
	assert_int_equal(kill(worker, SIGKILL), 0);
	assert_int_equal(waitpid(worker, NULL, 0), worker);
	assert_true(child > 1 && grandchild > 1);
	/* Well before the command would end by itself (sleep 30). */
	limit = clock_mono() + 5.0;
	while (!process_gone(child) && clock_mono() < limit)
		usleep(10000);
	gone = process_gone(child);
	/* What the command started on its own is not covered: clean up. */
	kill((pid_t)grandchild, SIGKILL);
	tu_remove_tree(p.dir);
	if (!gone) {
		kill((pid_t)child, SIGKILL);
		fail_msg("command %ld outlived its worker", child);
	}
}

static void
test_denied(void **state)
{
	struct fixture *f = *state;

	f->host.deny_all = true;
	f->ctx.host = &f->host.host;
	assert_int_equal(start(f, "{\"name\": \"echo\", \"args\": "
	    "{\"msg\": \"x\"}}"), OPS_DONE);
	tu_assert_error(f->op.result, "capability_denied", NULL);
	assert_int_equal(f->host.checks, 1);
	assert_string_equal(f->host.resource, "command:echo");
	assert_string_equal(f->host.right, "execute");
	assert_null(f->op.run.cancel);
	/* Nothing was started. */
	tu_assert_no_children();
	/* Checked before the lookup: an unknown name says nothing more. */
	assert_int_equal(start(f, "{\"name\": \"nope\"}"), OPS_DONE);
	tu_assert_error(f->op.result, "capability_denied", NULL);
	assert_string_equal(f->host.resource, "command:nope");
	f->ctx.host = NULL;
}

static void
test_spawn_failure(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(start(f, "{\"name\": \"missing\"}"), OPS_DONE);
	tu_assert_error(f->op.result, "internal", NULL);
	assert_non_null(strstr(tu_str(f->op.result, "error"),
	    "/nonexistent/egressd-t"));
	assert_null(f->op.run.cancel);
}

static void
test_no_loop(void **state)
{
	struct fixture *f = *state;

	f->ctx.loop = NULL;
	assert_int_equal(start(f, "{\"name\": \"exit3\"}"), OPS_DONE);
	tu_assert_error(f->op.result, "internal", NULL);
	f->ctx.loop = f->loop;
}

static void
test_several_at_once(void **state)
{
	struct fixture *f = *state;
	struct tu_run g;
	double limit = clock_mono() + WAIT_LIMIT;

	/* Two runs share the loop; each completes with its own output. */
	tu_run_init(&g, &f->ctx);
	assert_int_equal(start(f, "{\"name\": \"sleep\", \"args\": "
	    "{\"n\": 0.2}}"), OPS_PENDING);
	assert_int_equal(tu_start(&g, COMMAND_PATH, "{\"name\": \"echo\", "
	    "\"args\": {\"msg\": \"second\"}}"), OPS_PENDING);
	while ((f->op.done_calls == 0 || g.done_calls == 0) &&
	    clock_mono() < limit)
		assert_true(evloop_run_once(f->loop, 100) >= 0);
	assert_int_equal(f->op.done_calls, 1);
	assert_int_equal(g.done_calls, 1);
	assert_exit(g.result, 0);
	assert_string_equal(tu_str(g.result, "stdout"), "second\n");
	tu_run_free(&g);
	assert_exit(f->op.result, 0);
	assert_string_equal(tu_str(f->op.result, "stdout"), "");
}

/*
 * The argv template expansion (ops/argv_template) by itself: no child, no
 * loop.  expand() fills tmpl (NULL-terminated) with args_json ("" for no
 * arguments) for a command named "t"; the argv, or NULL with why set.
 */
static char **
expand(const char *const *tmpl, const char *args_json, char *why,
    size_t whylen)
{
	cJSON *args = NULL;
	char **argv;
	size_t argc = 0;

	while (tmpl[argc] != NULL)
		argc++;
	if (args_json[0] != '\0')
		assert_non_null(args = cJSON_Parse(args_json));
	argv = argvt_expand((char *const *)tmpl, argc, args, "t", why,
	    whylen);
	cJSON_Delete(args);
	return argv;
}

/* The expansion must give exactly want (NULL-terminated). */
static void
expand_ok(const char *const *tmpl, const char *args_json,
    const char *const *want)
{
	char why[256], **argv;
	size_t i;

	if ((argv = expand(tmpl, args_json, why, sizeof(why))) == NULL)
		fail_msg("%s: refused: %s", args_json, why);
	for (i = 0; want[i] != NULL; i++) {
		assert_non_null(argv[i]);
		assert_string_equal(argv[i], want[i]);
	}
	assert_null(argv[i]);
	argvt_free(argv);
}

/* The expansion must be refused with exactly the message want. */
static void
expand_refused(const char *const *tmpl, const char *args_json,
    const char *want)
{
	char why[256], **argv;

	why[0] = 'x';
	if ((argv = expand(tmpl, args_json, why, sizeof(why))) != NULL) {
		argvt_free(argv);
		fail_msg("%s: accepted, wanted \"%s\"", args_json, want);
	}
	assert_string_equal(why, want);
}

static void
test_argvt_placeholders(void **state)
{
	static const char *const tmpl[] = { "/bin/echo", "{a}", "x{a}y{b}",
	    "{a}{b}", "$HOME {} {1} {a-b} {{b}} {b ${a}", "{_x9}", "", NULL };
	static const char *const want[] = { "/bin/echo", "1", "x1ytwo",
	    "1two", "$HOME {} {1} {a-b} {two} {b $1", "u", "", NULL };
	static const char *const plain[] = { "/bin/sh", "-c", "exit 3",
	    NULL };

	(void)state;
	expand_ok(tmpl, "{\"a\": \"1\", \"b\": \"two\", \"_x9\": \"u\"}",
	    want);
	/* No placeholder: the template as it is, with or without args. */
	expand_ok(plain, "", plain);
	expand_ok(plain, "null", plain);
	expand_ok(plain, "{}", plain);
}

static void
test_argvt_values_stay_literal(void **state)
{
	static const char *const tmpl[] = { "/bin/echo", "{a}", "{b}", NULL };
	static const char *const want[] = { "/bin/echo", "{b} $(id) `id`",
	    "x; rm -rf / \"'\\ \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", NULL };

	(void)state;
	/* A value is one argv string, never expanded again. */
	expand_ok(tmpl, "{\"a\": \"{b} $(id) `id`\", \"b\": \"x; rm -rf / "
	    "\\\"'\\\\ \xc3\xa9\\u20ac\\ud83d\\ude00\"}", want);
}

static void
test_argvt_numbers(void **state)
{
	static const struct {
		const char *json, *text;
	} cases[] = {
		{ "42", "n=42" },
		{ "-3", "n=-3" },
		{ "-0", "n=0" },
		{ "0.25", "n=0.25" },
		{ "0.1", "n=0.10000000000000001" },
		{ "999999999999999", "n=999999999999999" },
		{ "1e15", "n=1000000000000000" },
		{ "1e20", "n=1e+20" },
		{ "-2.5e-7", "n=-2.4999999999999999e-07" },
	};
	static const char *const tmpl[] = { "/bin/echo", "n={n}", NULL };
	const char *want[] = { "/bin/echo", NULL, NULL };
	char args[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(args, sizeof(args), "{\"n\": %s}", cases[i].json);
		want[1] = cases[i].text;
		expand_ok(tmpl, args, want);
	}
}

static void
test_argvt_placeholder_needs_argument(void **state)
{
	static const char *const tmpl[] = { "/bin/echo", "{a}", "{A}", NULL };
	static const char *const one[] = { "/bin/echo", "-x={a}", NULL };

	(void)state;
	expand_refused(one, "", "args.a: is missing");
	expand_refused(one, "null", "args.a: is missing");
	expand_refused(one, "{}", "args.a: is missing");
	/* Names are matched case for case, also in the message. */
	expand_refused(tmpl, "{\"A\": \"x\"}", "args.a: is missing");
	expand_refused(tmpl, "{\"a\": \"x\"}", "args.A: is missing");
	expand_refused(one, "{\"a\": true}",
	    "args.a: must be a string or a number");
	expand_refused(one, "{\"a\": null}",
	    "args.a: must be a string or a number");
	expand_refused(one, "{\"a\": [\"x\"]}",
	    "args.a: must be a string or a number");
	expand_refused(one, "{\"a\": {}}",
	    "args.a: must be a string or a number");
}

static void
test_argvt_argument_needs_placeholder(void **state)
{
	static const char *const tmpl[] = { "/bin/echo", "{a}", "{b", "c}",
	    "{ d }", NULL };

	(void)state;
	expand_refused(tmpl, "{\"a\": \"x\", \"z\": \"y\"}",
	    "args.z: not a parameter of command t");
	/* Checked before the placeholders: z is named, not a. */
	expand_refused(tmpl, "{\"z\": \"y\"}",
	    "args.z: not a parameter of command t");
	/* Braces that make no placeholder name no parameter. */
	expand_refused(tmpl, "{\"a\": \"x\", \"b\": \"y\"}",
	    "args.b: not a parameter of command t");
	expand_refused(tmpl, "{\"a\": \"x\", \"d\": \"y\"}",
	    "args.d: not a parameter of command t");
	/* An empty name is no placeholder's either. */
	expand_refused(tmpl, "{\"a\": \"x\", \"\": \"y\"}",
	    "args.: not a parameter of command t");
}

static void
test_argvt_value_rules(void **state)
{
	static const char *const tmpl[] = { "/bin/echo", "={v}", NULL };
	char args[ARGVT_VALUE_MAX + 64], text[ARGVT_VALUE_MAX + 2];
	const char *want[] = { "/bin/echo", text, NULL };

	(void)state;
	expand_refused(tmpl, "{\"v\": \"\"}", "args.v: must not be empty");
	expand_refused(tmpl, "{\"v\": \"a\\nb\"}",
	    "args.v: must not contain control characters");
	expand_refused(tmpl, "{\"v\": \"a\\u001f\"}",
	    "args.v: must not contain control characters");
	expand_refused(tmpl, "{\"v\": \"\\u007f\"}",
	    "args.v: must not contain control characters");
	expand_refused(tmpl, "{\"v\": \"a\xff\"}",
	    "args.v: must be valid UTF-8");
	expand_refused(tmpl, "{\"v\": \"\xc0\xaf\"}",
	    "args.v: must be valid UTF-8");
	expand_refused(tmpl, "{\"v\": \"\xed\xa0\x80\"}",
	    "args.v: must be valid UTF-8");
	/* 4096 bytes is the most. */
	text[0] = '=';
	memset(text + 1, 'a', ARGVT_VALUE_MAX);
	text[ARGVT_VALUE_MAX + 1] = '\0';
	snprintf(args, sizeof(args), "{\"v\": \"%s\"}", text + 1);
	expand_ok(tmpl, args, want);
	snprintf(args, sizeof(args), "{\"v\": \"%sb\"}", text + 1);
	expand_refused(tmpl, args, "args.v: is longer than 4096 bytes");
}

static void
test_argvt_dash_rules(void **state)
{
	static const char *const start[] = { "/bin/rm", "{v}", NULL };
	static const char *const inside[] = { "/bin/rm", "--x={v}", "a{v}",
	    NULL };
	static const char *const after[] = { "/bin/rm", "--", "{v}", "{v}",
	    NULL };
	static const char *const before[] = { "/bin/rm", "{v}", "--", NULL };
	static const char *const not_dashes[] = { "/bin/rm", "--x", "-",
	    "{v}", NULL };
	static const char *const want_inside[] = { "/bin/rm", "--x=-rf",
	    "a-rf", NULL };
	static const char *const want_after[] = { "/bin/rm", "--", "-rf",
	    "-rf", NULL };

	(void)state;
	expand_refused(start, "{\"v\": \"-rf\"}",
	    "args.v: must not start with \"-\"");
	expand_refused(start, "{\"v\": \"--\"}",
	    "args.v: must not start with \"-\"");
	expand_refused(start, "{\"v\": -1}",
	    "args.v: must not start with \"-\"");
	/* Text before the value in its string, or a "--" string earlier. */
	expand_ok(inside, "{\"v\": \"-rf\"}", want_inside);
	expand_ok(after, "{\"v\": \"-rf\"}", want_after);
	/* A "--" later, or strings that are not exactly "--", do not count. */
	expand_refused(before, "{\"v\": \"-rf\"}",
	    "args.v: must not start with \"-\"");
	expand_refused(not_dashes, "{\"v\": \"-rf\"}",
	    "args.v: must not start with \"-\"");
}

static void
test_argvt_long_names(void **state)
{
	char name[301], tmpl_s[310], args[700], msg[128], value[] = "v";
	const char *tmpl[] = { "/bin/echo", tmpl_s, NULL };
	const char *want[] = { "/bin/echo", value, NULL };

	(void)state;
	/* A placeholder's name has no length limit. */
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(tmpl_s, sizeof(tmpl_s), "{%s}", name);
	snprintf(args, sizeof(args), "{\"%s\": \"v\"}", name);
	expand_ok(tmpl, args, want);
	/* Messages cut it at 64 bytes. */
	snprintf(msg, sizeof(msg), "args.%.64s: is missing", name);
	expand_refused(tmpl, "{}", msg);
	snprintf(args, sizeof(args), "{\"%sx\": \"v\"}", name);
	snprintf(msg, sizeof(msg), "args.%.64s: not a parameter of command t",
	    name);
	expand_refused(tmpl, args, msg);
}

static void
test_argvt_short_message_buffer(void **state)
{
	static const char *const tmpl[] = { "/bin/echo", "{a}", NULL };
	char why[8];

	(void)state;
	/* The message is cut, not overrun. */
	assert_null(expand(tmpl, "{}", why, sizeof(why)));
	assert_string_equal(why, "args.a:");
	assert_null(expand(tmpl, "{}", why, 3));
	assert_string_equal(why, "ar");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_echo),
		T(test_exit_code_and_stderr),
		T(test_timeout_kills_the_group),
		T(test_timeout_escalates_to_sigkill),
		T(test_truncation),
		T(test_unknown_name),
		T(test_invalid_requests),
		T(test_arguments_stay_single),
		T(test_environment),
		T(test_signal_state_reset),
		T(test_no_inherited_descriptors),
		T(test_invalid_utf8_replaced),
		T(test_cancel),
		T(test_dies_with_its_worker),
		T(test_denied),
		T(test_spawn_failure),
		T(test_no_loop),
		T(test_several_at_once),
		cmocka_unit_test(test_argvt_placeholders),
		cmocka_unit_test(test_argvt_values_stay_literal),
		cmocka_unit_test(test_argvt_numbers),
		cmocka_unit_test(test_argvt_placeholder_needs_argument),
		cmocka_unit_test(test_argvt_argument_needs_placeholder),
		cmocka_unit_test(test_argvt_value_rules),
		cmocka_unit_test(test_argvt_dash_rules),
		cmocka_unit_test(test_argvt_long_names),
		cmocka_unit_test(test_argvt_short_message_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
