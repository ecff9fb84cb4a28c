/*
 * Unit tests for ops/http.  The pure parts first: URL targets and the
 * allow-list (default ports, case, paths), request header rules, redirect
 * methods and response header collection.  Then the handler itself on a
 * real evloop and libcurl multi, against two tiny HTTP servers forked on
 * 127.0.0.1: one allowed, one not (which must never see a request).
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/evloop.h"
#include "core/httpc.h"
#include "core/jsonutil.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "../../src/ops/http_priv.h"
#include "testutil.h"

#define HTTP_PATH	"/api/v1/agent/execute/http"
#define REQ_MAX		65536
#define BIG_BODY	5000	/* beyond max_bytes (1000) */
#define SLOW_SECONDS	3
#define DRIVE_LIMIT	10.0	/* seconds a test waits for a result */

/* ------------------------------------------------------------------ */
/* Pure parts. */

static void
test_target_parse(void **state)
{
	struct ophttp_target t;
	char err[256];

	(void)state;
	assert_int_equal(ophttp_target_parse(&t, NULL,
	    "http://Example.COM/a?q=1", err, sizeof(err)), 0);
	assert_string_equal(t.scheme, "http");
	assert_string_equal(t.host, "example.com");
	assert_int_equal(t.port, 80);
	assert_string_equal(t.path, "/a");
	assert_false(t.userinfo);
	ophttp_target_free(&t);

	assert_int_equal(ophttp_target_parse(&t, NULL, "HTTPS://h", err,
	    sizeof(err)), 0);
	assert_string_equal(t.scheme, "https");
	assert_int_equal(t.port, 443);
	assert_string_equal(t.path, "/");
	ophttp_target_free(&t);

	assert_int_equal(ophttp_target_parse(&t, NULL, "http://[::1]:8080/x",
	    err, sizeof(err)), 0);
	assert_string_equal(t.host, "[::1]");
	assert_int_equal(t.port, 8080);
	ophttp_target_free(&t);

	assert_int_equal(ophttp_target_parse(&t, NULL, "http://u:p@h/", err,
	    sizeof(err)), 0);
	assert_true(t.userinfo);
	ophttp_target_free(&t);

	assert_int_equal(ophttp_target_parse(&t, NULL, "ftp://h/", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "not an http or https URL"));
	assert_null(t.url);
	assert_int_equal(ophttp_target_parse(&t, NULL, "file:///etc/passwd",
	    err, sizeof(err)), -1);
	assert_int_equal(ophttp_target_parse(&t, NULL, "/relative", err,
	    sizeof(err)), -1);
	assert_int_equal(ophttp_target_parse(&t, NULL, "http://h/a b", err,
	    sizeof(err)), -1);
}

static void
test_redirect_resolution(void **state)
{
	static const struct {
		const char *base, *loc, *url;
	} cases[] = {
		{ "http://h:81/a/b?q", "../c", "http://h:81/c" },
		{ "http://h:81/a/b", "c?x=1", "http://h:81/a/c?x=1" },
		{ "http://h:81/a/b", "/d", "http://h:81/d" },
		{ "https://h/a", "//other:8443/x", "https://other:8443/x" },
		{ "http://h/a", "https://z/", "https://z/" },
		{ "http://h/a/b", "/x/../../y", "http://h/y" },
	};
	struct ophttp_target t;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (ophttp_target_parse(&t, cases[i].base, cases[i].loc, err,
		    sizeof(err)) == -1)
			fail_msg("%s + %s: %s", cases[i].base, cases[i].loc,
			    err);
		assert_string_equal(t.url, cases[i].url);
		ophttp_target_free(&t);
	}
	/* A redirect may not leave http(s). */
	assert_int_equal(ophttp_target_parse(&t, "http://h/a",
	    "file:///etc/passwd", err, sizeof(err)), -1);
	assert_int_equal(ophttp_target_parse(&t, "http://h/a",
	    "gopher://h/", err, sizeof(err)), -1);
}

static bool
allowed(const struct config_strlist *allow, const char *url)
{
	struct ophttp_target t;
	char err[256];
	bool ok;

	if (ophttp_target_parse(&t, NULL, url, err, sizeof(err)) == -1)
		fail_msg("%s: %s", url, err);
	ok = ophttp_allowed(allow, &t);
	ophttp_target_free(&t);
	return ok;
}

static void
test_allow_list(void **state)
{
	char *items[] = { "https://internal.example:443",
	    "http://LOCALHOST:8080", "http://h/api", "http://d/dir/",
	    "not a url" };
	struct config_strlist allow = { items, 5 };
	struct config_strlist none = { NULL, 0 };

	(void)state;
	assert_true(allowed(&allow, "https://internal.example/x"));
	assert_true(allowed(&allow, "https://INTERNAL.Example:443/"));
	assert_false(allowed(&allow, "http://internal.example:443/"));
	assert_false(allowed(&allow, "https://internal.example:8443/"));
	assert_false(allowed(&allow, "https://internal.example.evil.com/"));
	assert_false(allowed(&allow, "https://evil.com/internal.example"));
	assert_true(allowed(&allow, "http://localhost:8080/anything"));
	assert_false(allowed(&allow, "http://localhost/"));
	assert_true(allowed(&allow, "http://h/api"));
	assert_true(allowed(&allow, "http://h:80/api/v1?x"));
	assert_false(allowed(&allow, "http://h/apix"));
	assert_false(allowed(&allow, "http://h/"));
	assert_false(allowed(&allow, "http://h/api/../secret"));
	assert_true(allowed(&allow, "http://d/dir/f"));
	assert_false(allowed(&allow, "http://d/dir"));
	assert_false(allowed(&none, "https://internal.example/"));
}

/* url parses to want (NULL: refused, with a message). */
static void
expect_url(const char *base, const char *url, const char *want)
{
	struct ophttp_target t;
	char err[256];
	int rc;

	err[0] = '\0';
	rc = ophttp_target_parse(&t, base, url, err, sizeof(err));
	if (want == NULL) {
		if (rc != -1)
			fail_msg("%s: want refused, got %s", url, t.url);
		assert_true(err[0] != '\0');
		return;
	}
	if (rc == -1)
		fail_msg("%s: want %s, refused: %s", url, want, err);
	if (strcmp(t.url, want) != 0)
		fail_msg("%s: want %s, got %s", url, want, t.url);
	ophttp_target_free(&t);
}

/*
 * RFC 3986 normalisation before anything is matched: percent-encoded
 * unreserved characters decoded, dot segments removed, scheme and host in
 * lower case, the default port dropped; an encoded / or \, a raw \, and
 * anything that is not a URI character refused.
 */
static void
test_url_normalised(void **state)
{
	static const struct {
		const char *url, *want;
	} cases[] = {
		{ "http://h/public/%2e%2e/secret.txt", "http://h/secret.txt" },
		{ "http://h/public/%2E%2e/./x", "http://h/x" },
		{ "http://h/public/.%2E/.%2e/x", "http://h/x" },
		{ "HTTP://Ex%61mple.COM:80/a/../b/%7euser?q=%41%3d%3D&r=%7E",
		    "http://example.com/b/~user?q=A%3D%3D&r=~" },
		{ "https://h:443", "https://h/" },
		{ "http://h:0080/", "http://h/" },
		{ "http://h:8080/a/./b/../c/", "http://h:8080/a/c/" },
		{ "http://h/a/b/..", "http://h/a/" },
		{ "http://h/../../x", "http://h/x" },
		{ "http://h/a//b", "http://h/a//b" },
		{ "http://h/%c3%a9?%c3%a9", "http://h/%C3%A9?%C3%A9" },
		{ "http://[0:0::1]:8080/x", "http://[::1]:8080/x" },
		{ "http://h/x#frag/../..", "http://h/x" },
		{ "http://%68/", "http://h/" },
		{ "http://u:p@H/a", "http://u:p@h/a" },
		{ "http://h/a;p=1/b", "http://h/a;p=1/b" },
		{ "http://h/?a/../b", "http://h/?a/../b" },
		{ "http://h/a%2Fb", NULL },
		{ "http://h/a%2fb", NULL },
		{ "http://h/a%5Cb", NULL },
		{ "http://h/a%5cb", NULL },
		{ "http://h/a\\b", NULL },
		{ "http://h\\@evil.example/", NULL },
		{ "http://h/?x=\\", NULL },
		{ "http://h/a/..;/b", NULL },
		{ "http://h/a/%2e%2e;x/b", NULL },
		{ "http://u@h@evil.example/", NULL },
		{ "http://h/a b", NULL },
		{ "http://h/a\tb", NULL },
		{ "http://h/%zz", NULL },
		{ "http://h/%4", NULL },
		{ "http://h/\xc3\xa9", NULL },
		{ "http://h:65536/", NULL },
		{ "http://h:0/", NULL },
		{ "http://h:8x/", NULL },
		{ "http://[fe80::1%25eth0]/", NULL },
		{ "http://h%00.example/", NULL },
		{ "http://h_%41.example/", "http://h_a.example/" },
		{ "http:///x", NULL },
		{ "http:h/x", NULL },
		{ "//h/x", NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_url(NULL, cases[i].url, cases[i].want);
	/* a redirect's Location the same way, after resolution */
	expect_url("http://h/public/a", "%2e%2e/secret", "http://h/secret");
	expect_url("http://h/public/a", "./%2E%2E/%2e%2e/x", "http://h/x");
	expect_url("http://h/public/a", "..%2fsecret", NULL);
	expect_url("http://h/public/a", "..\\secret", NULL);
	expect_url("http://h:81/a/b?q", "?r", "http://h:81/a/b?r");
	expect_url("http://h:81/a/b?q", "", "http://h:81/a/b?q");
	expect_url("http://h:81/a/b?q", "#f", "http://h:81/a/b?q");
	/* the normal form is a fixed point */
	expect_url(NULL, "http://example.com/b/~user?q=A%3D%3D",
	    "http://example.com/b/~user?q=A%3D%3D");
}

/* The allow-list sees only normal forms: an encoded ".." cannot pass. */
static void
test_allow_list_normalised(void **state)
{
	char *items[] = { "http://h/public", "http://e/p%75b/", "http://x" };
	struct config_strlist allow = { items, 3 };
	struct ophttp_target t;
	char err[256];

	(void)state;
	assert_false(allowed(&allow, "http://h/public/%2e%2e/secret.txt"));
	assert_false(allowed(&allow, "http://h/public/.%2e/secret.txt"));
	assert_false(allowed(&allow, "http://h/public/a/%2E%2E/%2E%2E/s"));
	assert_true(allowed(&allow, "http://h/public/a/%2E%2E/b"));
	assert_true(allowed(&allow, "http://h/public/./x"));
	assert_true(allowed(&allow, "http://h/p%75blic/x"));
	assert_true(allowed(&allow, "http://h/public"));
	assert_false(allowed(&allow, "http://h/PUBLIC/x"));
	assert_false(allowed(&allow, "http://h/publicity"));
	assert_true(allowed(&allow, "http://e/pub/x"));
	assert_false(allowed(&allow, "http://e/pub"));
	assert_true(allowed(&allow, "http://x/anything/%2e%2e/at/all"));
	assert_int_equal(ophttp_target_parse(&t, NULL,
	    "http://h/public/..%2Fsecret.txt", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "encoded"));
}

static void
test_header_rules(void **state)
{
	static const char *const dropped[] = {
		"Connection", "keep-alive", "Proxy-Authorization",
		"Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
		"Upgrade", "Host", "HOST", "Content-Length", "Expect", NULL
	};
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(ophttp_header_rule("X-Ok", "v\tw", false, err,
	    sizeof(err)), 1);
	assert_int_equal(ophttp_header_rule("Content-Type", "text/plain",
	    false, err, sizeof(err)), 1);
	for (i = 0; dropped[i] != NULL; i++)
		assert_int_equal(ophttp_header_rule(dropped[i], "x", true,
		    err, sizeof(err)), 0);
	assert_int_equal(ophttp_header_rule("Authorization", "Bearer x",
	    false, err, sizeof(err)), 0);
	assert_int_equal(ophttp_header_rule("cookie", "a=1", false, err,
	    sizeof(err)), 0);
	assert_int_equal(ophttp_header_rule("Authorization", "Bearer x",
	    true, err, sizeof(err)), 1);
	assert_int_equal(ophttp_header_rule("Cookie", "a=1", true, err,
	    sizeof(err)), 1);
	assert_int_equal(ophttp_header_rule("X-Bad", "a\r\nInjected: 1",
	    true, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "CR, LF"));
	assert_int_equal(ophttp_header_rule("X-Bad", "a\nb", true, err,
	    sizeof(err)), -1);
	assert_int_equal(ophttp_header_rule("X-Bad", "a\rb", true, err,
	    sizeof(err)), -1);
	assert_int_equal(ophttp_header_rule("X\r\nY", "v", true, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "not a token"));
	assert_int_equal(ophttp_header_rule("", "v", true, err,
	    sizeof(err)), -1);
	assert_int_equal(ophttp_header_rule("Bad Name", "v", true, err,
	    sizeof(err)), -1);
	assert_int_equal(ophttp_header_rule("X:Y", "v", true, err,
	    sizeof(err)), -1);
}

static void
test_redirect_methods(void **state)
{
	(void)state;
	assert_string_equal(ophttp_redirect_method(301, "POST"), "GET");
	assert_string_equal(ophttp_redirect_method(301, "PUT"), "PUT");
	assert_string_equal(ophttp_redirect_method(302, "GET"), "GET");
	assert_string_equal(ophttp_redirect_method(302, "POST"), "GET");
	assert_string_equal(ophttp_redirect_method(303, "POST"), "GET");
	assert_string_equal(ophttp_redirect_method(303, "DELETE"), "GET");
	assert_string_equal(ophttp_redirect_method(303, "HEAD"), "HEAD");
	assert_string_equal(ophttp_redirect_method(307, "POST"), "POST");
	assert_string_equal(ophttp_redirect_method(308, "PUT"), "PUT");
	assert_null(ophttp_redirect_method(200, "GET"));
	assert_null(ophttp_redirect_method(300, "GET"));
	assert_null(ophttp_redirect_method(304, "GET"));
}

static int
feed(struct ophttp_resp *r, const char *line)
{
	return ophttp_resp_line(r, line, strlen(line));
}

static void
test_response_headers(void **state)
{
	struct ophttp_resp r = { 0 };
	char line[1024];
	int i, rc = 0;

	(void)state;
	assert_int_equal(feed(&r, "HTTP/1.1 100 Continue\r\n"), 0);
	assert_int_equal(feed(&r, "X-Interim: 1\r\n"), 0);
	assert_int_equal(feed(&r, "\r\n"), 1);
	assert_int_equal(r.status, 100);
	assert_int_equal(feed(&r, "HTTP/1.1 200 OK\r\n"), 0);
	assert_int_equal(feed(&r, "Content-Type:  text/plain \r\n"), 0);
	assert_int_equal(feed(&r, "Set-Cookie: a=1\r\n"), 0);
	assert_int_equal(feed(&r, "SET-COOKIE: b=2\r\n"), 0);
	assert_int_equal(feed(&r, "X-Fold: one\r\n"), 0);
	assert_int_equal(feed(&r, "\t two\r\n"), 0);
	assert_int_equal(feed(&r, "X-Empty:\r\n"), 0);
	assert_int_equal(feed(&r, "X-Latin: caf\xe9\r\n"), 0);
	assert_int_equal(feed(&r, "no colon here\r\n"), 0);
	assert_int_equal(feed(&r, "\r\n"), 1);
	assert_int_equal(r.status, 200);
	assert_false(cJSON_HasObjectItem(r.headers, "x-interim"));
	assert_string_equal(cJSON_GetObjectItem(r.headers,
	    "content-type")->valuestring, "text/plain");
	assert_string_equal(cJSON_GetObjectItem(r.headers,
	    "set-cookie")->valuestring, "a=1, b=2");
	assert_string_equal(cJSON_GetObjectItem(r.headers,
	    "x-fold")->valuestring, "one two");
	assert_string_equal(cJSON_GetObjectItem(r.headers,
	    "x-empty")->valuestring, "");
	assert_string_equal(cJSON_GetObjectItem(r.headers,
	    "x-latin")->valuestring, "caf\xef\xbf\xbd");
	assert_int_equal(cJSON_GetArraySize(r.headers), 5);
	ophttp_resp_clear(&r);

	/* Headers are bounded. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "X-Big: ", 7);
	feed(&r, "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < OPHTTP_HEADERS_MAX / (int)sizeof(line) + 1 && rc == 0;
	    i++)
		rc = ophttp_resp_line(&r, line, sizeof(line));
	assert_int_equal(rc, -1);
	assert_true(r.too_big);
	ophttp_resp_clear(&r);
}

/* ------------------------------------------------------------------ */
/* Two servers: each connection is served by its own process. */

struct server {
	pid_t pid;
	int port;
	char log[128];		/* every request received, appended */
};

struct fixture {
	char dir[64];
	struct server ok, other;
	struct egressd_config cfg;
	struct evloop *loop;
	struct httpc *http;
	struct op_context ctx;
	struct tu_host host;	/* refuses denied */
	struct tu_run op;
	char denied[64];	/* a resource the host refuses */
};

static void
send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0 && (n = write(fd, buf, len)) > 0) {
		buf += n;
		len -= (size_t)n;
	}
}

static void
respond(int fd, const char *status, const char *extra, const char *body,
    size_t len)
{
	char head[1024];

	snprintf(head, sizeof(head), "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", status, extra, len);
	send_all(fd, head, strlen(head));
	send_all(fd, body, len);
}

/* Read one request (head and Content-Length body); its length. */
static size_t
read_request(int fd, char *buf, size_t max)
{
	size_t len = 0, want = 0;
	char *end = NULL, *cl;
	ssize_t n;

	while (len < max - 1 && (end == NULL || len < want)) {
		if ((n = read(fd, buf + len, max - 1 - len)) <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			want = (size_t)(end + 4 - buf);
			if ((cl = strcasestr(buf, "\r\ncontent-length:")) !=
			    NULL && cl < end)
				want += strtoul(cl + 17, NULL, 10);
		}
	}
	buf[len] = '\0';
	return len;
}

static void
serve(int fd, const char *logpath, int other_port)
{
	static char req[REQ_MAX], big[BIG_BODY];
	char path[256] = "", extra[256];
	size_t len = read_request(fd, req, sizeof(req));
	int logfd;

	if ((logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0600)) >= 0) {
		send_all(logfd, req, len);
		close(logfd);
	}
	sscanf(req, "%*s %255s", path);
	if (strcmp(path, "/ok") == 0)
		respond(fd, "200 OK", "Content-Type: text/plain\r\n"
		    "X-Rep: a\r\nX-Rep: b\r\n", "hello", 5);
	else if (strcmp(path, "/echo") == 0)
		respond(fd, "200 OK", "", req, len);
	else if (strcmp(path, "/redir-in") == 0)
		respond(fd, "302 Found", "Location: /ok\r\n", "moved", 5);
	else if (strcmp(path, "/see-other") == 0)
		respond(fd, "303 See Other", "Location: echo\r\n", "", 0);
	else if (strcmp(path, "/redir-loop") == 0)
		respond(fd, "307 Temporary", "Location: /redir-loop\r\n", "",
		    0);
	else if (strcmp(path, "/redir-out") == 0) {
		snprintf(extra, sizeof(extra), "Location: "
		    "http://127.0.0.1:%d/stolen\r\n", other_port);
		respond(fd, "302 Found", extra, "", 0);
	} else if (strcmp(path, "/big") == 0) {
		memset(big, 'z', sizeof(big));
		respond(fd, "200 OK", "", big, sizeof(big));
	} else if (strcmp(path, "/binary") == 0)
		respond(fd, "200 OK", "", "\x00\xff\x01", 3);
	else if (strcmp(path, "/slow") == 0) {
		sleep(SLOW_SECONDS);
		respond(fd, "200 OK", "", "late", 4);
	} else
		respond(fd, "404 Not Found", "", "", 0);
}

static void
server_loop(int lfd, const char *logpath, int other_port)
{
	int fd;

	signal(SIGCHLD, SIG_IGN);	/* no zombies */
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(lfd);
			serve(fd, logpath, other_port);
			_exit(0);
		}
		close(fd);
	}
}

static int
listen_any(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
server_start(struct server *s, int lfd, const char *dir, const char *name,
    int other_port)
{
	snprintf(s->log, sizeof(s->log), "%s/%s.log", dir, name);
	if ((s->pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		server_loop(lfd, s->log, other_port);
	}
	assert_true(s->pid > 0);
	close(lfd);
}

static void
server_stop(struct server *s)
{
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	unlink(s->log);
}

static size_t
server_log(const struct server *s, char *buf, size_t max)
{
	int fd = open(s->log, O_RDONLY);
	ssize_t n;

	buf[0] = '\0';
	if (fd == -1)
		return 0;
	n = read(fd, buf, max - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char text[1024];
	int lok, lother;

	assert_non_null(f);
	assert_non_null(tu_mkdtemp(f->dir, sizeof(f->dir), "http"));
	lok = listen_any(&f->ok.port);
	lother = listen_any(&f->other.port);
	server_start(&f->ok, lok, f->dir, "ok", f->other.port);
	server_start(&f->other, lother, f->dir, "other", 0);
	snprintf(text, sizeof(text),
	    "operations: { http: { enabled = true;\n"
	    "  allow = [ \"http://127.0.0.1:%d\" ];\n"
	    "  max_bytes = 1000; timeout = 5.0; max_redirects = 3; }; };\n",
	    f->ok.port);
	tu_config(&f->cfg, text);
	assert_non_null(f->loop = evloop_new());
	assert_non_null(f->http = httpc_new(f->loop));
	tu_host_init(&f->host);
	f->host.want_right = "request";
	f->host.deny_resource = f->denied;
	f->ctx.cfg = &f->cfg;
	f->ctx.loop = f->loop;
	f->ctx.http = f->http;
	f->ctx.host = &f->host.host;
	tu_run_init(&f->op, &f->ctx);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_run_free(&f->op);
	httpc_free(f->http);
	evloop_free(f->loop);
	server_stop(&f->ok);
	server_stop(&f->other);
	tu_remove_tree(f->dir);
	config_free(&f->cfg);
	free(f);
	return 0;
}

/* text with each "%d" replaced by port. */
static void
with_port(char *out, size_t len, const char *text, int port)
{
	const char *p;
	size_t used = 0;

	while ((p = strstr(text, "%d")) != NULL) {
		used += (size_t)snprintf(out + used, len - used, "%.*s%d",
		    (int)(p - text), text, port);
		assert_true(used < len);
		text = p + 2;
	}
	snprintf(out + used, len - used, "%s", text);
}

/* Run body (JSON text, %d = the allowed port) to its result. */
static const cJSON *
run_op(struct fixture *f, const char *text)
{
	char json[2048];

	with_port(json, sizeof(json), text, f->ok.port);
	return tu_run_op(&f->op, HTTP_PATH, json, DRIVE_LIMIT);
}

static void
expect_error(struct fixture *f, const char *fmt, const char *type,
    const char *needle)
{
	const cJSON *r = run_op(f, fmt);

	if (!tu_is_error(r, type, needle))
		fail_msg("want %s containing \"%s\", got %s", type, needle,
		    cJSON_PrintUnformatted(r));
}

static void
test_get(void **state)
{
	struct fixture *f = *state;
	const cJSON *r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\"}");
	const cJSON *h = cJSON_GetObjectItem(r, "headers");
	char want[64];

	assert_int_equal(cJSON_GetObjectItem(r, "status")->valueint, 200);
	assert_string_equal(tu_str(r, "body"), "hello");
	assert_string_equal(tu_str(r, "encoding"), "utf-8");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "truncated")));
	assert_string_equal(tu_str(h, "x-rep"), "a, b");
	assert_string_equal(tu_str(h, "content-type"), "text/plain");
	snprintf(want, sizeof(want), "http:127.0.0.1:%d ", f->ok.port);
	assert_string_equal(f->host.checked, want);
}

static void
test_head(void **state)
{
	struct fixture *f = *state;
	const cJSON *r = run_op(f, "{\"method\": \"head\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\"}");
	char log[REQ_MAX];

	assert_int_equal(cJSON_GetObjectItem(r, "status")->valueint, 200);
	assert_string_equal(tu_str(r, "body"), "");
	server_log(&f->ok, log, sizeof(log));
	assert_non_null(strstr(log, "HEAD /ok HTTP/1.1\r\n"));
}

static void
test_post_headers_filtered(void **state)
{
	struct fixture *f = *state;
	const cJSON *r = run_op(f, "{\"method\": \"POST\", \"url\": "
	    "\"http://127.0.0.1:%d/echo\", \"body\": \"payload-1\", "
	    "\"headers\": {\"X-Test\": \"yes\", \"Authorization\": \"sekrit\","
	    " \"Cookie\": \"c=crumb\", \"Connection\": \"upgrade\", "
	    "\"Host\": \"evil.example\", \"Content-Type\": \"text/x-test\","
	    " \"X-Empty\": \"\"}}");
	const char *echo = tu_str(r, "body");

	assert_non_null(strstr(echo, "POST /echo HTTP/1.1\r\n"));
	assert_non_null(strstr(echo, "X-Test: yes\r\n"));
	assert_non_null(strstr(echo, "X-Empty:"));
	assert_non_null(strstr(echo, "Content-Type: text/x-test\r\n"));
	assert_non_null(strstr(echo, "\r\n\r\npayload-1"));
	assert_non_null(strstr(echo, "User-Agent: egressd/"));
	assert_null(strstr(echo, "sekrit"));
	assert_null(strstr(echo, "crumb"));
	assert_null(strstr(echo, "evil.example"));
	assert_null(strcasestr(echo, "connection: upgrade"));
	assert_null(strcasestr(echo, "expect:"));
}

/*
 * The client reuses finished easy handles: each request starts from
 * libcurl's defaults, not from what the one before it set (no body, no
 * header and no HEAD carried over).
 */
static void
test_requests_start_clean(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;
	const char *echo;

	r = run_op(f, "{\"method\": \"HEAD\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\"}");
	assert_string_equal(tu_str(r, "body"), "");
	r = run_op(f, "{\"method\": \"POST\", \"url\": "
	    "\"http://127.0.0.1:%d/echo\", \"body\": \"payload-2\", "
	    "\"headers\": {\"X-Once\": \"yes\"}}");
	assert_non_null(strstr(tu_str(r, "body"), "\r\n\r\npayload-2"));
	r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/echo\"}");
	echo = tu_str(r, "body");
	assert_non_null(strstr(echo, "GET /echo HTTP/1.1\r\n"));
	assert_null(strstr(echo, "payload-2"));
	assert_null(strstr(echo, "X-Once"));
	assert_null(strcasestr(echo, "content-length"));
	r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\"}");
	assert_string_equal(tu_str(r, "body"), "hello");
}

static void
test_forward_auth(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	f->cfg.operations.http.forward_auth = true;
	r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/echo\", "
	    "\"headers\": {\"Authorization\": \"sekrit\"}}");
	assert_non_null(strstr(tu_str(r, "body"), "Authorization: sekrit\r\n"));
}

static void
test_redirect_inside(void **state)
{
	struct fixture *f = *state;
	const cJSON *r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/redir-in\"}");
	char want[64];

	assert_int_equal(cJSON_GetObjectItem(r, "status")->valueint, 200);
	assert_string_equal(tu_str(r, "body"), "hello");
	snprintf(want, sizeof(want), "http://127.0.0.1:%d/ok", f->ok.port);
	assert_string_equal(tu_str(r, "url"), want);
	/* Same host and port: one capability check. */
	snprintf(want, sizeof(want), "http:127.0.0.1:%d ", f->ok.port);
	assert_string_equal(f->host.checked, want);
}

static void
test_see_other_becomes_get(void **state)
{
	struct fixture *f = *state;
	const cJSON *r = run_op(f, "{\"method\": \"POST\", \"url\": "
	    "\"http://127.0.0.1:%d/see-other\", \"body\": \"gone\"}");

	assert_non_null(strstr(tu_str(r, "body"), "GET /echo HTTP/1.1\r\n"));
	assert_null(strstr(tu_str(r, "body"), "gone"));
}

static void
test_redirect_outside_not_followed(void **state)
{
	struct fixture *f = *state;
	char log[REQ_MAX];

	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/redir-out\"}", "capability_denied",
	    "not in operations.http.allow");
	assert_int_equal(server_log(&f->other, log, sizeof(log)), 0);
	server_log(&f->ok, log, sizeof(log));
	assert_non_null(strstr(log, "GET /redir-out"));
}

static void
test_redirects_bounded(void **state)
{
	struct fixture *f = *state;
	const cJSON *r;

	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/redir-loop\"}", "limit_exceeded",
	    "more than 3 redirects");
	/* max_redirects = 0: the 3xx itself is the answer. */
	f->cfg.operations.http.max_redirects = 0;
	r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/redir-in\"}");
	assert_int_equal(cJSON_GetObjectItem(r, "status")->valueint, 302);
	assert_string_equal(tu_str(cJSON_GetObjectItem(r, "headers"),
	    "location"), "/ok");
	assert_string_equal(tu_str(r, "body"), "moved");
}

static void
test_truncated(void **state)
{
	struct fixture *f = *state;
	const cJSON *r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/big\"}");

	assert_int_equal(cJSON_GetObjectItem(r, "status")->valueint, 200);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
	assert_int_equal(strlen(tu_str(r, "body")), 1000);
}

static void
test_binary_is_base64(void **state)
{
	struct fixture *f = *state;
	const cJSON *r = run_op(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/binary\"}");

	assert_string_equal(tu_str(r, "encoding"), "base64");
	assert_string_equal(tu_str(r, "body"), "AP8B");
}

static void
test_timeout(void **state)
{
	struct fixture *f = *state;
	double t0 = clock_mono();

	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/slow\", \"timeout\": 0.3}", "timeout",
	    "within 0.3 s");
	assert_true(clock_mono() - t0 < SLOW_SECONDS);
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	char json[256];

	snprintf(json, sizeof(json), "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/slow\"}", f->ok.port);
	assert_int_equal(tu_start(&f->op, HTTP_PATH, json), OPS_PENDING);
	assert_non_null(f->op.run.state);
	evloop_run_once(f->loop, 50);
	ops_cancel(&f->op.run);
	assert_null(f->op.run.state);
	assert_int_equal(f->op.done_calls, 0);
	assert_null(f->op.result);
}

static void
test_refusals(void **state)
{
	struct fixture *f = *state;
	char log[REQ_MAX];

	expect_error(f, "{\"method\": \"TRACE\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\"}", "invalid_request", "method");
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"ftp://127.0.0.1:%d/\"}", "invalid_request", "url");
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\", "
	    "\"headers\": {\"X\": \"a\\r\\nB: c\"}}",
	    "invalid_request", "CR, LF");
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\", \"headers\": {\"X\": 1}}",
	    "invalid_request", "must be a string");
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\", \"body\": \"x\"}", "invalid_request",
	    "no body");
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\", \"timeout\": 0}", "invalid_request",
	    "timeout");
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://u:p@127.0.0.1:%d/ok\"}", "invalid_request",
	    "forward_auth");
	f->cfg.operations.http.max_bytes = 4;
	expect_error(f, "{\"method\": \"PUT\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\", \"body\": \"12345\"}",
	    "limit_exceeded", "larger than");
	/* The other server is not in the list; localhost is not 127.0.0.1. */
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://localhost:%d/ok\"}", "capability_denied",
	    "operations.http.allow");
	assert_string_equal(f->host.checked, "");
	assert_int_equal(server_log(&f->ok, log, sizeof(log)), 0);
}

static void
test_capability_denied(void **state)
{
	struct fixture *f = *state;
	char log[REQ_MAX];

	snprintf(f->denied, sizeof(f->denied), "http:127.0.0.1:%d",
	    f->ok.port);
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\"}", "capability_denied", f->denied);
	assert_int_equal(server_log(&f->ok, log, sizeof(log)), 0);
}

static void
test_no_http_client(void **state)
{
	struct fixture *f = *state;

	f->ctx.http = NULL;
	expect_error(f, "{\"method\": \"GET\", \"url\": "
	    "\"http://127.0.0.1:%d/ok\"}", "internal", "no HTTP client");
}

/* A string with \u0000 is refused, never sent cut short at the NUL. */
static void
test_nul_in_body(void **state)
{
	static const char *const bodies[] = {
		"{\"method\": \"POST\", \"url\": \"http://127.0.0.1:%d/echo\", "
		    "\"body\": \"head\\u0000tail\"}",
		"{\"method\": \"GET\", \"url\": "
		    "\"http://127.0.0.1:%d/ok\\u0000/x\"}",
		"{\"method\": \"GET\\u0000\", \"url\": "
		    "\"http://127.0.0.1:%d/ok\"}",
		"{\"method\": \"GET\", \"url\": \"http://127.0.0.1:%d/ok\", "
		    "\"headers\": {\"X-A\": \"v\\u0000w\"}}",
	};
	struct fixture *f = *state;
	char log[REQ_MAX];
	const cJSON *r;
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		r = run_op(f, bodies[i]);
		if (strcmp(tu_str(r, "error_type"), "invalid_request") != 0)
			fail_msg("%s: %s", bodies[i],
			    cJSON_PrintUnformatted(r));
	}
	assert_non_null(strstr(tu_str(run_op(f, bodies[0]), "error"),
	    "NUL"));
	assert_int_equal(server_log(&f->ok, log, sizeof(log)), 0);
}

#define LIVE(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target_parse),
		cmocka_unit_test(test_redirect_resolution),
		cmocka_unit_test(test_allow_list),
		cmocka_unit_test(test_header_rules),
		cmocka_unit_test(test_redirect_methods),
		cmocka_unit_test(test_response_headers),
		cmocka_unit_test(test_url_normalised),
		cmocka_unit_test(test_allow_list_normalised),
		LIVE(test_get),
		LIVE(test_head),
		LIVE(test_post_headers_filtered),
		LIVE(test_requests_start_clean),
		LIVE(test_forward_auth),
		LIVE(test_redirect_inside),
		LIVE(test_see_other_becomes_get),
		LIVE(test_redirect_outside_not_followed),
		LIVE(test_redirects_bounded),
		LIVE(test_truncated),
		LIVE(test_binary_is_base64),
		LIVE(test_timeout),
		LIVE(test_cancel),
		LIVE(test_refusals),
		LIVE(test_capability_denied),
		LIVE(test_no_http_client),
		LIVE(test_nul_in_body),
	};

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
