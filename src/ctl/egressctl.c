/*
 * egressctl: operate a running egressd through its control socket, and
 * read its agent processes from the database.
 *
 * Socket commands speak the protocol of include/master/control.h: one JSON request
 * line, one JSON reply line.  ps, inspect and audit read the database
 * read-only (ctldb.c) and need no running daemon.  Exit status: 0 success
 * (health: healthy), 1 the daemon refused, is degraded or the process is
 * unknown, 2 unreachable, down, or a usage or database error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/escape.h"
#include "core/httpc.h"
#include "core/preflight.h"
#include "core/promtext.h"
#include "master/control.h"
#include "ctl/ctldb.h"
#include "core/version.h"

#define EXIT_FAILED 1
#define EXIT_UNREACHABLE 2
#define EXIT_USAGE 2
#define DEFAULT_SOCKET RUNSTATEDIR "/egressd/egressd.sock"

struct ctl_options {
	const char *socket;
	const char *config;
	const char *state_dir;
	int json;
	int fast;
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: egressctl [-s SOCKET | -c FILE] [-d STATE_DIR] COMMAND "
	    "[ARGS]\n"
	    "\n"
	    "  -s SOCKET  control socket (default: server.control_socket of "
	    "the\n"
	    "             configuration file, else %s)\n"
	    "  -c FILE    configuration file to read the socket path from\n"
	    "             (default %s)\n"
	    "  -d DIR     state directory holding egressd.db and egressd-N.db\n"
	    "             (default: server.state_dir of the configuration "
	    "file)\n"
	    "  -V         print the version and exit\n"
	    "  -h         print this help and exit\n"
	    "\n"
	    "commands:\n"
	    "  status [--json]             master pid, state, generation, "
	    "workers,\n"
	    "                              database size against "
	    "store.max_bytes\n"
	    "                              (--json: also rows per table, "
	    "oldest rows)\n"
	    "  health [--json] [--deep] [WORKER]\n"
	    "                              per-worker health, the orchestrator "
	    "link,\n"
	    "                              stream and outbox, and the reasons "
	    "of the\n"
	    "                              verdict; exit 0 healthy, "
	    "1 degraded,\n"
	    "                              2 down or unreachable (WORKER: id or "
	    "pid);\n"
	    "                              --deep asks each worker for live "
	    "detail\n"
	    "  reload [--no-wait]          re-read the configuration, rolling "
	    "restart;\n"
	    "                              waits for the new workers' first "
	    "answer from\n"
	    "                              the orchestrator; exit 1 with the "
	    "reason when\n"
	    "                              the reload was refused or rolled "
	    "back\n"
	    "  upgrade                     re-execute the egressd binary in "
	    "place (same\n"
	    "                              pid; its -t runs first) and replace "
	    "the\n"
	    "                              workers; waits for every worker on "
	    "the new\n"
	    "                              binary; exit 1 with the reason when "
	    "it was\n"
	    "                              refused or went back to the old "
	    "binary\n"
	    "  stop [--fast]               graceful (or fast) stop\n"
	    "  verify                      egressd -T: check the configuration "
	    "file (-c)\n"
	    "                              and make one authenticated request "
	    "to the\n"
	    "                              orchestrator, one line per step; "
	    "exit 0 ok,\n"
	    "                              1 refused or unreachable, 2 "
	    "configuration\n"
	    "  scale N                     run N workers\n"
	    "  metrics [--json]            counters in the Prometheus text "
	    "format (as\n"
	    "                              JSON: families of samples):\n"
	    "                              operations by path and outcome, "
	    "durations,\n"
	    "                              restarts, reconnects, reloads, "
	    "workers,\n"
	    "                              orchestrator and stream up, outbox, "
	    "process_*\n"
	    "  ps [--all] [--worker N] [--limit N]\n"
	    "                              agent processes as a tree: pid, "
	    "status, age,\n"
	    "                              tool calls and children used/max, "
	    "image\n"
	    "  inspect [--json] PID        one agent process: status, goal, "
	    "result,\n"
	    "                              capabilities, budget, events\n"
	    "  audit [--since T] [--pid PID] [--limit N] [--json]\n"
	    "                              the audit trail; T is 15m, 2h, 7d, "
	    "epoch\n"
	    "                              seconds or YYYY-MM-DDTHH:MM:SS "
	    "(UTC)\n",
	    DEFAULT_SOCKET, CONFIG_DEFAULT_PATH);
}

/* The socket: -s, else the configuration's, else the built-in default. */
static char *
resolve_socket(const struct ctl_options *o)
{
	struct egressd_config cfg;
	char err[CONFIG_ERR_MAX];
	char *path;

	if (o->socket != NULL)
		return strdup(o->socket);
	memset(&cfg, 0, sizeof(cfg));
	if (config_load_file(&cfg, o->config ? o->config :
	    CONFIG_DEFAULT_PATH, err, sizeof(err)) == -1) {
		if (o->config != NULL) {
			fprintf(stderr, "egressctl: %s\n", err);
			exit(EXIT_USAGE);
		}
		return strdup(DEFAULT_SOCKET);
	}
	path = strdup(cfg.server.control_socket);
	config_free(&cfg);
	return path;
}

/*
 * The state directory holding the database files: -d, else the
 * configuration's state_dir; without either, exit (or, when quiet, NULL).
 */
static char *
resolve_state_dir(const struct ctl_options *o, int quiet)
{
	struct egressd_config cfg;
	char err[CONFIG_ERR_MAX], *path;
	const char *dir = o->state_dir;

	memset(&cfg, 0, sizeof(cfg));
	if (dir == NULL) {
		if (config_load_file(&cfg, o->config ? o->config :
		    CONFIG_DEFAULT_PATH, err, sizeof(err)) == -1) {
			if (quiet)
				return NULL;
			fprintf(stderr, "egressctl: %s (or give -d "
			    "STATE_DIR)\n", err);
			exit(EXIT_USAGE);
		}
		dir = cfg.server.state_dir;
	}
	path = strdup(dir);
	config_free(&cfg);
	return path;
}

static int
parse_positive(const char *arg, int *out)
{
	char *end;
	long n = strtol(arg, &end, 10);

	if (*arg == '\0' || *end != '\0' || n < 1 || n > 1000000)
		return -1;
	*out = (int)n;
	return 0;
}

static double
num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *
str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "-";
}

/* health --deep: what the worker itself said just now. */
static void
print_live(const cJSON *live)
{
	if (live == NULL)
		return;
	if (!cJSON_IsObject(live)) {
		printf("     live: no answer within the deadline\n");
		return;
	}
	printf("     live: %s, %.0f in flight, %.0f done, %.0f failed, "
	    "RSS %.0f KiB", str(live, "state"), num(live, "inflight"),
	    num(live, "done"), num(live, "failed"), num(live, "rss") / 1024);
	if (num(live, "orch_status") > 0)
		printf(", orchestrator HTTP %.0f at %.0f", num(live,
		    "orch_status"), num(live, "orch_time"));
	printf("\n");
}

/* What the master says is wrong, one line each. */
static void
print_reasons(const cJSON *r)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "reasons"))
		printf("reason: %s\n", str(e, "reason"));
}

/* The orchestrator as the workers and the stream see it, and the outbox. */
static void
print_links(const cJSON *r)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "contact");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "stream");
	const cJSON *ob = cJSON_GetObjectItemCaseSensitive(r, "outbox");
	const cJSON *age = cJSON_GetObjectItemCaseSensitive(c, "contact_age");

	if (cJSON_IsObject(c)) {
		printf("orchestrator: %s, ", cJSON_IsTrue(
		    cJSON_GetObjectItemCaseSensitive(c, "up")) ? "up" : "down");
		if (cJSON_IsNumber(age))
			printf("last success %.1fs ago", age->valuedouble);
		else
			printf("no success yet");
		printf(" (stale after %.15gs)\n", num(c, "stale_after"));
	}
	/* A connected stream's last error is history: not shown. */
	if (cJSON_IsObject(st) && strcmp(str(st, "state"), "connected") != 0 &&
	    str(st, "last_error")[0] != '\0')
		printf("stream: %s, %.0f failures in a row, last error: %s\n",
		    str(st, "state"), num(st, "failures"),
		    str(st, "last_error"));
	else if (cJSON_IsObject(st))
		printf("stream: %s\n", str(st, "state"));
	if (cJSON_IsObject(ob))
		printf("outbox: %.0f waiting (oldest %.0fs), %.0f dead "
		    "letters\n", num(ob, "rows"), num(ob, "oldest_age"),
		    num(ob, "dead"));
}

static void
print_health(const cJSON *r)
{
	const cJSON *w, *list = cJSON_GetObjectItemCaseSensitive(r, "workers");

	printf("egressd (pid %.0f): %s, %.0f/%.0f workers ready, generation "
	    "%.0f, %s\n", num(r, "pid"), str(r, "status"), num(r, "ready"),
	    num(r, "target"), num(r, "generation"), str(r, "state"));
	print_reasons(r);
	print_links(r);
	printf("%-4s %-8s %-4s %-9s %-10s %9s %9s %8s %8s %8s %8s %8s  %s\n",
	    "ID", "PID", "GEN", "STATE", "HEALTH", "UPTIME", "HEARTBEAT",
	    "INFLIGHT", "DONE", "FAILED", "RSS_KIB", "RESTARTS", "INSTANCE");
	cJSON_ArrayForEach(w, list) {
		printf("%-4.0f %-8.0f %-4.0f %-9s %-10s %8.1fs %8.1fs %8.0f "
		    "%8.0f %8.0f %8.0f %8.0f  %s\n", num(w, "id"), num(w, "pid"),
		    num(w, "generation"), str(w, "state"), str(w, "health"),
		    num(w, "uptime"), num(w, "heartbeat_age"),
		    num(w, "inflight"), num(w, "done"), num(w, "failed"),
		    num(w, "rss") / 1024, num(w, "restarts"),
		    str(w, "instance_id"));
		print_live(cJSON_GetObjectItemCaseSensitive(w, "live"));
	}
}

static void
print_status(const cJSON *r)
{
	const cJSON *w, *up = cJSON_GetObjectItemCaseSensitive(r, "upgrade");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "database");
	const cJSON *why = cJSON_GetObjectItemCaseSensitive(d, "degraded");

	printf("egressd %s (pid %.0f): %s, generation %.0f, %.0f/%.0f workers "
	    "ready (%.0f running), up %.0fs, config %s\n", str(r, "version"),
	    num(r, "pid"), str(r, "state"), num(r, "generation"),
	    num(r, "ready"), num(r, "target"), num(r, "workers"),
	    num(r, "uptime"), str(r, "config"));
	print_reasons(r);
	if (cJSON_IsObject(up) && str(up, "from")[0] != '\0')
		printf("upgraded from egressd %s\n", str(up, "from"));
	if (cJSON_IsObject(up) && str(up, "failure")[0] != '\0')
		printf("last upgrade failed: %s\n", str(up, "failure"));
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r,
	    "last_reload_failure")))
		printf("last reload failed: %s\n", str(r,
		    "last_reload_failure"));
	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(r,
	    "worker_table"))
		printf("  worker %.0f: pid %.0f, generation %.0f, egressd %s%s\n",
		    num(w, "id"), num(w, "pid"), num(w, "generation"),
		    str(w, "version"), cJSON_IsTrue(
		    cJSON_GetObjectItemCaseSensitive(w, "retiring")) ?
		    ", retiring" : cJSON_IsTrue(
		    cJSON_GetObjectItemCaseSensitive(w, "ready")) ? ", ready" :
		    ", not ready");
	if (cJSON_IsObject(d))
		printf("database: %.0f bytes + WAL %.0f of store.max_bytes "
		    "%.0f, %.0f rows pruned\n", num(d, "file_bytes"),
		    num(d, "wal_bytes"), num(d, "max_bytes"),
		    num(d, "pruned_rows"));
	if (cJSON_IsString(why))
		printf("database degraded: %s\n", why->valuestring);
}

/*
 * status --json: the master's view of the database, with the rows per
 * table and the oldest kept rows read here (a count is no work for the
 * daemon's loop); "summary": null when the database cannot be read.
 */
static void
add_db_summary(cJSON *reply, const struct ctl_options *o)
{
	cJSON *d = cJSON_GetObjectItemCaseSensitive(reply, "database");
	cJSON *sum = NULL, *item;
	char *path;

	if (!cJSON_IsObject(d))
		return;
	if ((path = resolve_state_dir(o, 1)) != NULL)
		sum = ctldb_summary(path);
	free(path);
	if (sum == NULL) {
		cJSON_AddNullToObject(d, "rows");
		cJSON_AddNullToObject(d, "oldest");
		return;
	}
	while ((item = sum->child) != NULL)
		cJSON_AddItemToObject(d, item->string,
		    cJSON_DetachItemViaPointer(sum, item));
	cJSON_Delete(sum);
}

static int
health_exit(const cJSON *r)
{
	const char *s = str(r, "status");

	if (strcmp(s, CTL_HEALTHY) == 0)
		return CTL_EXIT_HEALTHY;
	if (strcmp(s, CTL_DEGRADED) == 0)
		return CTL_EXIT_DEGRADED;
	return CTL_EXIT_DOWN;
}

/*
 * metrics --json: the master's Prometheus text as JSON, one entry per
 * family with its samples (core/promtext.h).
 */
static int
print_metrics_json(const cJSON *reply)
{
	char err[256], *line;
	cJSON *o;

	if ((o = promtext_to_json(str(reply, "text"), err, sizeof(err))) ==
	    NULL || (line = cJSON_PrintUnformatted(o)) == NULL) {
		fprintf(stderr, "egressctl: metrics: %s\n",
		    o == NULL ? err : "out of memory");
		cJSON_Delete(o);
		return EXIT_FAILED;
	}
	printf("%s\n", line);
	cJSON_free(line);
	cJSON_Delete(o);
	return 0;
}

/* Send the request and report; returns the exit status. */
static int
run(const char *sockpath, cJSON *req, const char *cmd,
    const struct ctl_options *o)
{
	int json = o->json;
	char err[512], *line = cJSON_PrintUnformatted(req), *text = NULL;
	int is_health = strcmp(cmd, CTL_CMD_HEALTH) == 0, rc, json_rc = 0;
	cJSON *reply;

	rc = control_request_wait(sockpath, line, cJSON_IsTrue(
	    cJSON_GetObjectItemCaseSensitive(req, "wait")) ||
	    strcmp(cmd, CTL_CMD_UPGRADE) == 0 ?
	    CTL_RELOAD_TIMEOUT : CTL_CLIENT_TIMEOUT, &text, err, sizeof(err));
	cJSON_free(line);
	if (rc == -1) {
		fprintf(stderr, "egressctl: %s\n", err);
		if (is_health && !json)
			printf("egressd: down (unreachable)\n");
		return EXIT_UNREACHABLE;
	}
	if ((reply = cJSON_Parse(text)) == NULL) {
		char esc[256];

		fprintf(stderr, "egressctl: malformed reply: %s\n",
		    escape_text(esc, sizeof(esc), text, 0));
		free(text);
		return EXIT_FAILED;
	}
	if (json && strcmp(cmd, CTL_CMD_METRICS) == 0 &&
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
		json_rc = print_metrics_json(reply);
	else if (json && strcmp(cmd, CTL_CMD_STATUS) == 0) {
		char *out;

		add_db_summary(reply, o);
		if ((out = cJSON_PrintUnformatted(reply)) != NULL)
			printf("%s\n", out);
		cJSON_free(out);
	} else if (json)
		printf("%s\n", text);	/* JSON escapes control characters */
	free(text);
	if (json_rc != 0) {
		cJSON_Delete(reply);
		return json_rc;
	}
	/* What the text forms print cannot drive the terminal (metrics keep
	 * their lines). */
	if (!json && escape_json_strings(reply, strcmp(cmd, CTL_CMD_METRICS) ==
	    0 ? ESCAPE_KEEP_NEWLINE : 0) == -1) {
		fprintf(stderr, "egressctl: out of memory\n");
		cJSON_Delete(reply);
		return EXIT_FAILED;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
		fprintf(stderr, "egressctl: %s: %s\n", cmd, str(reply, "error"));
		cJSON_Delete(reply);
		return is_health ? CTL_EXIT_DOWN : EXIT_FAILED;
	}
	rc = 0;
	if (is_health) {
		if (!json)
			print_health(reply);
		rc = health_exit(reply);
	} else if (!json && strcmp(cmd, CTL_CMD_STATUS) == 0)
		print_status(reply);
	else if (!json && strcmp(cmd, CTL_CMD_METRICS) == 0)
		fputs(str(reply, "text"), stdout);
	else if (!json && strcmp(cmd, CTL_CMD_RELOAD) == 0 &&
	    cJSON_HasObjectItem(reply, "ready"))
		printf("egressd: reload: ok, generation %.0f, %.0f/%.0f "
		    "workers ready\n", num(reply, "generation"),
		    num(reply, "ready"), num(reply, "target"));
	else if (!json && strcmp(cmd, CTL_CMD_UPGRADE) == 0 &&
	    cJSON_HasObjectItem(reply, "ready"))
		printf("egressd: upgrade: ok, egressd %s, generation %.0f, "
		    "%.0f/%.0f workers ready\n", str(reply, "version"),
		    num(reply, "generation"), num(reply, "ready"),
		    num(reply, "target"));
	else if (!json)
		printf("egressd: %s: ok\n", cmd);
	cJSON_Delete(reply);
	return rc;
}

static void
usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "egressctl: %s%s%s\n", msg, arg ? ": " : "",
	    arg ? arg : "");
	usage(stderr);
	exit(EXIT_USAGE);
}

/*
 * verify: egressd -T without the daemon: the configuration file, what
 * start-up needs, and one authenticated request to the orchestrator.
 * Exit 0 verified, 1 the orchestrator refused or was not reached, 2 the
 * configuration is wrong.
 */
static int
verify(const struct ctl_options *o)
{
	const char *path = o->config ? o->config : CONFIG_DEFAULT_PATH;
	struct egressd_config cfg;
	char err[CONFIG_ERR_MAX];
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	if (config_load_file(&cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "egressctl: %s\n", err);
		return EXIT_USAGE;
	}
	if (preflight_check(&cfg, stderr) > 0) {
		fprintf(stderr, "egressctl: configuration %s is not ready to "
		    "start\n", path);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	if (httpc_global_init() == -1) {
		fprintf(stderr, "egressctl: libcurl initialisation failed\n");
		config_free(&cfg);
		return EXIT_FAILED;
	}
	rc = preflight_verify(&cfg, stdout) == 0 ? 0 : EXIT_FAILED;
	printf("egressd: orchestrator %s\n", rc == 0 ? "verified" :
	    "NOT verified");
	httpc_global_cleanup();
	config_free(&cfg);
	return rc;
}

/* Build the request for argv (the command and its arguments). */
static cJSON *
build_request(int argc, char **argv, struct ctl_options *o)
{
	const char *cmd = argv[0];
	cJSON *req = cJSON_CreateObject();
	int i, n;

	cJSON_AddStringToObject(req, "cmd", cmd);
	if (strcmp(cmd, CTL_CMD_RELOAD) == 0)
		cJSON_AddBoolToObject(req, "wait", argc < 2 ||
		    strcmp(argv[1], "--no-wait") != 0);
	for (i = 1; i < argc; i++) {
		if (strcmp(cmd, CTL_CMD_RELOAD) == 0 && i == 1 &&
		    strcmp(argv[i], "--no-wait") == 0)
			continue;
		if (strcmp(cmd, CTL_CMD_HEALTH) == 0 &&
		    strcmp(argv[i], "--json") == 0)
			o->json = 1;
		else if (strcmp(cmd, CTL_CMD_HEALTH) == 0 &&
		    strcmp(argv[i], "--deep") == 0)
			cJSON_AddTrueToObject(req, "deep");
		else if (strcmp(cmd, CTL_CMD_HEALTH) == 0 &&
		    parse_positive(argv[i], &n) == 0 &&
		    !cJSON_HasObjectItem(req, "worker"))
			cJSON_AddNumberToObject(req, "worker", n);
		else if (strcmp(cmd, CTL_CMD_STOP) == 0 &&
		    strcmp(argv[i], "--fast") == 0)
			cJSON_AddTrueToObject(req, "fast");
		else if (strcmp(cmd, CTL_CMD_SCALE) == 0 &&
		    parse_positive(argv[i], &n) == 0 &&
		    !cJSON_HasObjectItem(req, "workers"))
			cJSON_AddNumberToObject(req, "workers", n);
		else if ((strcmp(cmd, CTL_CMD_STATUS) == 0 ||
		    strcmp(cmd, CTL_CMD_METRICS) == 0) &&
		    strcmp(argv[i], "--json") == 0)
			o->json = 1;
		else
			usage_error("unexpected argument", argv[i]);
	}
	if (strcmp(cmd, CTL_CMD_SCALE) == 0 &&
	    !cJSON_HasObjectItem(req, "workers"))
		usage_error("scale needs a number of workers", NULL);
	return req;
}

int
main(int argc, char **argv)
{
	static const char *const known[] = { CTL_CMD_STATUS, CTL_CMD_HEALTH,
	    CTL_CMD_RELOAD, CTL_CMD_STOP, CTL_CMD_SCALE, CTL_CMD_METRICS,
	    CTL_CMD_UPGRADE };
	struct ctl_options o;
	char *sockpath, *state_dir;
	cJSON *req;
	size_t i;
	int ch, rc;

	memset(&o, 0, sizeof(o));
	while ((ch = getopt(argc, argv, "+s:c:d:Vh")) != -1) {
		switch (ch) {
		case 'd':
			o.state_dir = optarg;
			break;
		case 's':
			o.socket = optarg;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 'V':
			printf("egressctl %s\n", EGRESSD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		usage_error("no command given", NULL);
	if (strcmp(argv[optind], "verify") == 0) {
		if (optind + 1 != argc)
			usage_error("unexpected argument", argv[optind + 1]);
		return verify(&o);
	}
	if (ctldb_handles(argv[optind])) {
		if ((state_dir = resolve_state_dir(&o, 0)) == NULL)
			return EXIT_USAGE;
		rc = ctldb_main(argc - optind, argv + optind, state_dir);
		free(state_dir);
		return rc;
	}
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(argv[optind], known[i]) == 0)
			break;
	if (i == sizeof(known) / sizeof(known[0]))
		usage_error("unknown command", argv[optind]);
	req = build_request(argc - optind, argv + optind, &o);
	sockpath = resolve_socket(&o);
	rc = run(sockpath, req, argv[optind], &o);
	cJSON_Delete(req);
	free(sockpath);
	return rc;
}
