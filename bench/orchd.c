/*
 * orchd: a fast orchestrator for the benchmarks.
 *
 * It serves the agent side of the orchestrator protocol (DESIGN.md section
 * 2) and the part of the fake orchestrator's admin API that the benchmarks
 * use (tests/orchestrator/fake_orchestrator.py has the full one), from one
 * thread with epoll, so that the orchestrator costs less CPU per operation
 * than egressd itself.  It is a load generator, not a test double: the only
 * faults are piggyback, silent or comment heartbeats, auth_fail and
 * refuse_all.  Plain HTTP/1.1 with keep-alive and pipelining, bodies with
 * Content-Length or chunked.
 *
 * usage: orchd [-p PORT] -i TOKEN_ID -t TOKEN [options]; see --help.
 * It prints "port N" on stdout once it listens.  SIGTERM or SIGINT ends
 * every stream cleanly, frees everything and exits 0.
 *
 * This file has main, the command line, the listening socket, the signals
 * and the epoll loop, and routes each request to the admin API or the
 * agent endpoints.  The rest, each file calling only those listed after
 * it: orchd_admin.c (the admin API), orchd_agent.c (the agent endpoints),
 * orchd_sse.c (the event streams), orchd_state.c (struct orchd: queue,
 * results, instances, faults), orchd_http.c (buffers, connections, the
 * HTTP/1.1 parser and the replies).
 */
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchd_admin.h"
#include "orchd_agent.h"
#include "orchd_http.h"
#include "orchd_sse.h"
#include "orchd_state.h"

#define ORCHD_MAX_EVENTS	64
#define ORCHD_DEFAULT_RESULTS	100000

/* ---- the server --------------------------------------------------------- */

/* A parsed request: /admin/... to the admin API, the rest to the agent's. */
static void
server_route(void *arg, struct conn *c, char *head, char *path, char *query,
    const char *body, size_t len)
{
	struct orchd *o = arg;
	struct query q;

	if (strncmp(path, "/admin/", 7) == 0) {
		http_query_parse(query ? query : path + strlen(path), &q);
		admin_handle(o, c, head, path, &q, body, len);
	} else
		agent_handle(o, c, head, path, head, body, len);
}

static void
server_loop(struct orchd *o)
{
	struct epoll_event evs[ORCHD_MAX_EVENTS];
	int i, n, timeout;

	while (!o->quit) {
		timeout = sse_beats(o);
		http_reap(&o->http);
		n = epoll_wait(o->http.ep, evs, ORCHD_MAX_EVENTS, timeout);
		if (n == -1 && errno != EINTR) {
			fprintf(stderr, "orchd: epoll_wait: %s\n",
			    strerror(errno));
			return;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &o->lfd) {
				http_accept(&o->http, o->lfd);
				continue;
			}
			if (evs[i].data.ptr == &o->sfd) {
				o->quit = 1;
				continue;
			}
			http_event(evs[i].data.ptr, evs[i].events);
		}
	}
}

/* Ends streams cleanly, as far as the sockets take it without waiting. */
static void
server_free(struct orchd *o)
{
	http_close_all(&o->http);
	state_clear(o);
	buf_free(&o->scratch);
	close(o->http.ep);
	close(o->lfd);
	close(o->sfd);
}

static int
server_listen(struct orchd *o, const char *host)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "orchd: %s: not an IPv4 address\n", host);
		return -1;
	}
	o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (o->lfd == -1 || setsockopt(o->lfd, SOL_SOCKET, SO_REUSEADDR,
	    &one, sizeof(one)) == -1 ||
	    bind(o->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(o->lfd, SOMAXCONN) == -1 ||
	    getsockname(o->lfd, (struct sockaddr *)&sin, &len) == -1) {
		fprintf(stderr, "orchd: cannot listen on %s:%d: %s\n", host,
		    o->port, strerror(errno));
		return -1;
	}
	o->port = ntohs(sin.sin_port);
	return 0;
}

static int
server_watch(struct orchd *o, int fd, void *tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = tag;
	return epoll_ctl(o->http.ep, EPOLL_CTL_ADD, fd, &ev);
}

static int
server_init(struct orchd *o, const char *host)
{
	sigset_t set;

	o->http.ep = o->lfd = o->sfd = -1;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (o->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1 ||
	    (o->http.ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		fprintf(stderr, "orchd: %s\n", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (server_listen(o, host) == -1)
		return -1;
	if (server_watch(o, o->lfd, &o->lfd) == -1 ||
	    server_watch(o, o->sfd, &o->sfd) == -1) {
		fprintf(stderr, "orchd: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: orchd [-p PORT] -i TOKEN_ID -t TOKEN [-H SECONDS] [-a AGENT_ID]\n"
"             [-P] [-r MAX_RESULTS] [-b ADDRESS] [-f READY_FILE]\n"
"\n"
"A fast orchestrator for the benchmarks: the agent side of the protocol and\n"
"the fake orchestrator's admin API subset, on one epoll thread.\n"
"\n"
"  -p, --port PORT              port on 127.0.0.1 (0, the default: any free)\n"
"  -i, --token-id ID            expected x-mcd-id (default $EGRESSD_TOKEN_ID)\n"
"  -t, --token SECRET           expected x-mcd-token (default $EGRESSD_TOKEN)\n"
"  -H, --heartbeat-interval S   stream heartbeat interval (default 1.0)\n"
"  -a, --agent-id ID            agent_id of the welcome event (default: the\n"
"                               token ID)\n"
"  -P, --piggyback              start with result replies carrying the next\n"
"                               operation\n"
"  -r, --max-results N          results kept for GET /admin/results (default\n"
"                               %d; all are counted)\n"
"  -b, --host ADDRESS           IPv4 address to listen on (default 127.0.0.1)\n"
"  -f, --ready-file PATH        also write the port there (removed at exit)\n"
"  -q, --quiet                  accepted for the fake's command line; no-op\n"
"  -h, --help                   this text\n"
"\n"
"Prints \"port N\" on stdout when listening.  Admin API (no auth, JSON):\n"
"  POST /admin/enqueue  OP | {\"operations\": [OP...]} | {\"count\": N,\n"
"                       \"path\"?: P, \"operation\"?: {...}}\n"
"  POST /admin/push     OP | {\"operations\": [OP...]}  (over the streams)\n"
"  POST /admin/event    {\"type\": ...} | {\"data\", \"event\"?, \"id\"?} |"
" {\"raw\"}\n"
"  POST /admin/goodbye  {\"reason\"?, \"close\"?}\n"
"  POST /admin/faults   {\"piggyback\", \"heartbeats\", "
"\"heartbeat_comments\",\n"
"                       \"heartbeat_interval\", \"push_metrics\", "
"\"auth_fail\",\n"
"                       \"refuse_all\", \"clear\", \"close_streams\"}\n"
"  GET  /admin/faults, /admin/state, /admin/results?operation_id=&\n"
"                       instance_id=&list=0\n"
"  POST /admin/reset    {\"close_streams\"?: bool}\n"
"SIGTERM or SIGINT: clean exit 0.\n", ORCHD_DEFAULT_RESULTS);
}

static int
parse_number(const char *s, double min, double max, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && *out >= min &&
	    *out <= max ? 0 : -1;
}

struct orchd_args {
	const char	*host;
	const char	*ready_file;
	int		 piggyback;
};

static int
parse_args(int argc, char **argv, struct orchd *o, struct orchd_args *a)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "token-id", required_argument, NULL, 'i' },
		{ "token", required_argument, NULL, 't' },
		{ "heartbeat-interval", required_argument, NULL, 'H' },
		{ "agent-id", required_argument, NULL, 'a' },
		{ "piggyback", no_argument, NULL, 'P' },
		{ "max-results", required_argument, NULL, 'r' },
		{ "host", required_argument, NULL, 'b' },
		{ "ready-file", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	double v;
	int ch;

	while ((ch = getopt_long(argc, argv, "p:i:t:H:a:Pr:b:f:qh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (parse_number(optarg, 0, 65535, &v) == -1)
				goto bad;
			o->port = (int)v;
			break;
		case 'i':
			o->token_id = optarg;
			break;
		case 't':
			o->token = optarg;
			break;
		case 'H':
			if (parse_number(optarg, ORCHD_MIN_INTERVAL, 86400,
			    &o->default_interval) == -1)
				goto bad;
			break;
		case 'a':
			o->agent_id = optarg;
			break;
		case 'P':
			a->piggyback = 1;
			break;
		case 'r':
			if (parse_number(optarg, 0, (double)SIZE_MAX / 2,
			    &v) == -1)
				goto bad;
			o->max_results = (size_t)v;
			break;
		case 'b':
			a->host = optarg;
			break;
		case 'f':
			a->ready_file = optarg;
			break;
		case 'q':
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->token_id == NULL || o->token == NULL) {
		fprintf(stderr, "orchd: --token-id and --token are required "
		    "(or $EGRESSD_TOKEN_ID and $EGRESSD_TOKEN)\n");
		return -1;
	}
	if (o->agent_id == NULL)
		o->agent_id = o->token_id;
	return 0;
bad:
	fprintf(stderr, "orchd: bad value for -%c: %s\n", ch, optarg);
	return -1;
}

static int
write_ready_file(const char *path, int port)
{
	char tmp[PATH_MAX];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp) || (f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct orchd o;
	struct orchd_args a = { "127.0.0.1", NULL, 0 };
	int rc = 1;

	memset(&o, 0, sizeof(o));
	o.token_id = getenv("EGRESSD_TOKEN_ID");
	o.token = getenv("EGRESSD_TOKEN");
	o.default_interval = 1.0;
	o.max_results = ORCHD_DEFAULT_RESULTS;
	o.next_op = 1;
	o.http.on_request = server_route;
	o.http.arg = &o;
	if (parse_args(argc, argv, &o, &a) == -1)
		return 2;
	state_faults_default(&o, &o.faults);
	o.faults.piggyback = a.piggyback;
	if (server_init(&o, a.host) == 0) {
		if (a.ready_file != NULL &&
		    write_ready_file(a.ready_file, o.port) == -1)
			fprintf(stderr, "orchd: %s: %s\n", a.ready_file,
			    strerror(errno));
		else {
			printf("port %d\n", o.port);
			fflush(stdout);
			server_loop(&o);
			rc = o.quit ? 0 : 1;
		}
		if (a.ready_file != NULL)
			unlink(a.ready_file);
	}
	server_free(&o);
	return rc;
}
