/*
 * Unit tests for config: defaults, a complete file, the example file in
 * conf/, and one test per class of error, each checking the exact message
 * (file, line and key).
 */

#include <sys/stat.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "testutil.h"

#define EXAMPLE_DEFAULT	"conf/egressd.conf"

/* Load text as "t.conf" from /etc/egressd; expect exactly message want. */
static void
expect_error(const char *text, const char *want)
{
	struct egressd_config	cfg;
	char			err[CONFIG_ERR_MAX];

	assert_int_equal(config_load_string(&cfg, text, "t.conf",
	    "/etc/egressd", err, sizeof(err)), -1);
	assert_string_equal(err, want);
	assert_null(strchr(err, '\n'));
	assert_null(cfg.path);
	assert_null(cfg.server.pidfile);
}

static void
assert_defaults(const struct egressd_config *c, bool with_lists)
{
	assert_int_equal(c->server.workers, 4);
	assert_string_equal(c->server.pidfile, "/run/egressd/egressd.pid");
	assert_string_equal(c->server.state_dir, "/var/lib/egressd");
	assert_string_equal(c->server.control_socket,
	    "/run/egressd/egressd.sock");
	assert_string_equal(c->server.user, "");
	assert_string_equal(c->server.group, "");
	assert_false(c->server.daemonize);
	assert_false(c->server.core_dumps);
	assert_true(c->server.graceful_timeout == 30.0);
	assert_true(c->server.worker_timeout == 30.0);
	assert_true(c->server.min_uptime == 5.0);
	assert_int_equal(c->server.on_goodbye, ON_GOODBYE_RESTART);
	assert_int_equal(c->server.max_ops_per_worker, 0);
	assert_int_equal(c->server.max_ops_jitter, 0);

	assert_string_equal(c->log.file, "stderr");
	assert_int_equal(c->log.level, LOGL_INFO);
	assert_int_equal(c->log.format, LOGF_TEXT);

	assert_string_equal(c->orchestrator.url, "");
	assert_string_equal(c->orchestrator.token_id, "");
	assert_string_equal(c->orchestrator.token_file, "");
	assert_true(c->orchestrator.poll_interval == 60.0);
	assert_true(c->orchestrator.events);
	assert_true(c->orchestrator.events_timeout == 120.0);
	assert_true(c->orchestrator.connect_timeout == 10.0);
	assert_true(c->orchestrator.tls_verify);
	assert_string_equal(c->orchestrator.ca_file, "");
	assert_int_equal(c->orchestrator.max_event_bytes, 1048576);
	assert_int_equal(c->orchestrator.max_body_bytes, 16777216);

	assert_int_equal(c->worker.max_inflight, 8);
	assert_int_equal(c->worker.parallel_polls, 4);
	assert_true(c->worker.heartbeat_interval == 5.0);
	assert_true(c->worker.backpressure_heartbeat == 30.0);

	assert_int_equal(c->store.synchronous, SYNC_NORMAL);
	assert_true(c->store.busy_timeout == 5.0);
	assert_true(c->store.retention_days == 7.0);
	assert_int_equal(c->store.max_rows, 1000000);
	assert_true(c->store.max_bytes == INT64_C(1073741824));
	assert_int_equal(c->store.files, 0);

	assert_int_equal(c->process.max_tool_calls, 100);
	assert_int_equal(c->process.max_child_processes, 8);
	assert_true(c->process.max_runtime_seconds == 300.0);
	assert_int_equal(c->process.fork_budget_divisor, 2);
	assert_int_equal(c->process.fork_min_tool_calls, 1);
	assert_int_equal(c->process.fork_min_child_processes, 0);

	assert_false(c->operations.storage.enabled);
	assert_string_equal(c->operations.storage.root, "");
	assert_false(c->operations.storage.no_symlinks);
	assert_int_equal(c->operations.storage.max_bytes, 16777216);
	assert_false(c->operations.http.enabled);
	assert_int_equal(c->operations.http.max_bytes, 16777216);
	assert_true(c->operations.http.timeout == 30.0);
	assert_false(c->operations.http.forward_auth);
	assert_int_equal(c->operations.http.max_redirects, 5);
	assert_false(c->operations.command.enabled);
	assert_int_equal(c->operations.command.environment.count, 0);
	assert_int_equal(c->operations.command.max_output, 1048576);
	assert_false(c->operations.sqlite.enabled);
	assert_int_equal(c->operations.sqlite.max_rows, 10000);
	assert_true(c->operations.sqlite.timeout == 10.0);
	assert_true(c->operations.batch.enabled);
	assert_int_equal(c->operations.batch.max_children, 16);
	assert_false(c->operations.upgrade.enabled);
	assert_int_equal(c->operations.upgrade.allow_keys.count, 0);
	assert_int_equal(c->operations.storage.capabilities.count, 1);
	assert_string_equal(c->operations.storage.capabilities.items[0],
	    "storage:* read,write,delete");
	assert_int_equal(c->operations.batch.capabilities.count, 4);
	assert_string_equal(c->operations.batch.capabilities.items[3],
	    "sqlite:* read");
	assert_null(c->operations.batch.capabilities.items[4]);
	if (with_lists) {
		assert_int_equal(c->operations.http.allow.count, 0);
		assert_int_equal(c->operations.command.count, 0);
		assert_null(c->operations.command.commands);
		assert_int_equal(c->operations.sqlite.count, 0);
		assert_null(c->operations.sqlite.databases);
	}
}

static void
test_defaults(void **state)
{
	struct egressd_config	cfg;

	(void)state;
	assert_int_equal(config_init_defaults(&cfg), 0);
	assert_defaults(&cfg, true);
	assert_null(cfg.path);
	config_free(&cfg);
}

static void
test_empty_string_is_defaults(void **state)
{
	struct egressd_config	cfg;

	(void)state;
	tu_config(&cfg, "# nothing here\n");
	assert_defaults(&cfg, true);
	assert_string_equal(cfg.path, "t.conf");
	config_free(&cfg);
}

static const char full_text[] =
    "server: { workers = 16; pidfile = \"/p/e.pid\"; state_dir = \"/s\";\n"
    "  control_socket = \"/c.sock\"; user = \"egress\"; group = \"adm\";\n"
    "  daemonize = true; graceful_timeout = 12.5; worker_timeout = 60;\n"
    "  min_uptime = 0; on_goodbye = \"exit\"; max_ops_per_worker = 1000;\n"
    "  max_ops_jitter = 50; };\n"
    "log: { file = \"syslog\"; level = \"debug\"; format = \"json\"; };\n"
    "orchestrator: { url = \"https://o.example.com/\"; token_id = \"id\";\n"
    "  token_file = \"/t\"; poll_interval = 0.5; events = false;\n"
    "  events_timeout = 30; connect_timeout = 2.5; tls_verify = false;\n"
    "  ca_file = \"/ca.pem\"; max_event_bytes = 2048;\n"
    "  max_body_bytes = 1073741824L; };\n"
    "worker: { max_inflight = 1024; parallel_polls = 16;\n"
    "  heartbeat_interval = 0.25;\n"
    "  backpressure_heartbeat = 1; };\n"
    "store: { synchronous = \"full\"; busy_timeout = 0.5;\n"
    "  retention_days = 0.5; max_rows = 1000000000000L;\n"
    "  max_bytes = 2097152; files = 8; };\n"
    "process: { max_tool_calls = 0; max_child_processes = 1;\n"
    "  max_runtime_seconds = 0.5; fork_budget_divisor = 1;\n"
    "  fork_min_tool_calls = 0; fork_min_child_processes = 3; };\n"
    "operations: {\n"
    "  storage: { enabled = true; root = \"/data\"; no_symlinks = true;\n"
    "    max_bytes = 4294967296L; };\n"
    "  http: { enabled = true; allow = ( \"http://a:80\", \"https://b/x\" );\n"
    "    max_bytes = 1; timeout = 0.01; forward_auth = true;\n"
    "    max_redirects = 0; };\n"
    "  command: { enabled = true; commands = (\n"
    "    { name = \"df\"; argv = [ \"/bin/df\", \"-k\", \"{path}\" ]; },\n"
    "    { name = \"up\"; argv = [ \"/usr/bin/uptime\" ];\n"
    "      timeout = 2; } );\n"
    "    environment = [ \"LANG\", \"_X1\" ]; max_output = 0; };\n"
    "  sqlite: { enabled = true; databases = (\n"
    "    { name = \"inv\"; path = \"/srv/inv.db\"; } ); max_rows = 5;\n"
    "    timeout = 59.5; };\n"
    "  batch: { enabled = false; max_children = 1; };\n"
    "  upgrade: { enabled = true;\n"
    "    allow_keys = [ \"worker.max_inflight\", \"log.level\" ]; };\n"
    "};\n";

static void
test_full_file(void **state)
{
	struct egressd_config	c;
	const struct config_command *cmd;

	(void)state;
	tu_config(&c, full_text);
	assert_int_equal(c.server.workers, 16);
	assert_string_equal(c.server.pidfile, "/p/e.pid");
	assert_string_equal(c.server.state_dir, "/s");
	assert_string_equal(c.server.control_socket, "/c.sock");
	assert_string_equal(c.server.user, "egress");
	assert_string_equal(c.server.group, "adm");
	assert_true(c.server.daemonize);
	assert_true(c.server.graceful_timeout == 12.5);
	assert_true(c.server.worker_timeout == 60.0);
	assert_true(c.server.min_uptime == 0.0);
	assert_int_equal(c.server.on_goodbye, ON_GOODBYE_EXIT);
	assert_int_equal(c.server.max_ops_per_worker, 1000);
	assert_int_equal(c.server.max_ops_jitter, 50);
	assert_string_equal(c.log.file, "syslog");
	assert_int_equal(c.log.level, LOGL_DEBUG);
	assert_int_equal(c.log.format, LOGF_JSON);
	assert_string_equal(c.orchestrator.url, "https://o.example.com");
	assert_string_equal(c.orchestrator.token_id, "id");
	assert_string_equal(c.orchestrator.token_file, "/t");
	assert_true(c.orchestrator.poll_interval == 0.5);
	assert_false(c.orchestrator.events);
	assert_true(c.orchestrator.events_timeout == 30.0);
	assert_true(c.orchestrator.connect_timeout == 2.5);
	assert_false(c.orchestrator.tls_verify);
	assert_string_equal(c.orchestrator.ca_file, "/ca.pem");
	assert_int_equal(c.orchestrator.max_event_bytes, 2048);
	assert_int_equal(c.orchestrator.max_body_bytes, 1073741824);
	assert_int_equal(c.worker.max_inflight, 1024);
	assert_int_equal(c.worker.parallel_polls, 16);
	assert_true(c.worker.heartbeat_interval == 0.25);
	assert_true(c.worker.backpressure_heartbeat == 1.0);
	assert_int_equal(c.store.synchronous, SYNC_FULL);
	assert_true(c.store.busy_timeout == 0.5);
	assert_true(c.store.retention_days == 0.5);
	assert_true(c.store.max_rows == INT64_C(1000000000000));
	assert_true(c.store.max_bytes == 2097152);
	assert_int_equal(c.store.files, 8);
	assert_int_equal(c.process.max_tool_calls, 0);
	assert_int_equal(c.process.max_child_processes, 1);
	assert_true(c.process.max_runtime_seconds == 0.5);
	assert_int_equal(c.process.fork_budget_divisor, 1);
	assert_int_equal(c.process.fork_min_tool_calls, 0);
	assert_int_equal(c.process.fork_min_child_processes, 3);
	assert_true(c.operations.storage.enabled);
	assert_string_equal(c.operations.storage.root, "/data");
	assert_true(c.operations.storage.no_symlinks);
	assert_true(c.operations.storage.max_bytes == INT64_C(4294967296));
	assert_true(c.operations.http.enabled);
	assert_int_equal(c.operations.http.allow.count, 2);
	assert_string_equal(c.operations.http.allow.items[0], "http://a:80");
	assert_string_equal(c.operations.http.allow.items[1], "https://b/x");
	assert_int_equal(c.operations.http.max_bytes, 1);
	assert_true(c.operations.http.timeout == 0.01);
	assert_true(c.operations.http.forward_auth);
	assert_int_equal(c.operations.http.max_redirects, 0);
	assert_true(c.operations.command.enabled);
	assert_int_equal(c.operations.command.count, 2);
	cmd = &c.operations.command.commands[0];
	assert_string_equal(cmd->name, "df");
	assert_int_equal(cmd->argc, 3);
	assert_string_equal(cmd->argv[0], "/bin/df");
	assert_string_equal(cmd->argv[2], "{path}");
	assert_null(cmd->argv[3]);
	assert_true(cmd->timeout == 10.0);
	cmd = &c.operations.command.commands[1];
	assert_string_equal(cmd->name, "up");
	assert_int_equal(cmd->argc, 1);
	assert_true(cmd->timeout == 2.0);
	assert_int_equal(c.operations.command.environment.count, 2);
	assert_string_equal(c.operations.command.environment.items[1],
	    "_X1");
	assert_int_equal(c.operations.command.max_output, 0);
	assert_true(c.operations.sqlite.enabled);
	assert_int_equal(c.operations.sqlite.count, 1);
	assert_string_equal(c.operations.sqlite.databases[0].name, "inv");
	assert_string_equal(c.operations.sqlite.databases[0].path,
	    "/srv/inv.db");
	assert_int_equal(c.operations.sqlite.max_rows, 5);
	assert_true(c.operations.sqlite.timeout == 59.5);
	assert_false(c.operations.batch.enabled);
	assert_int_equal(c.operations.batch.max_children, 1);
	assert_true(c.operations.upgrade.enabled);
	assert_int_equal(c.operations.upgrade.allow_keys.count, 2);
	assert_string_equal(c.operations.upgrade.allow_keys.items[1],
	    "log.level");
	config_free(&c);
	assert_null(c.operations.command.commands);
	config_free(&c);
}

static void
test_example_file(void **state)
{
	struct egressd_config	 cfg;
	const char		*path = getenv("EGRESSD_CONF_EXAMPLE");
	char			 err[CONFIG_ERR_MAX] = "";

	(void)state;
	if (path == NULL || path[0] == '\0')
		path = EXAMPLE_DEFAULT;
	if (config_load_file(&cfg, path, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_defaults(&cfg, false);
	assert_int_equal(cfg.operations.command.count, 1);
	assert_int_equal(cfg.operations.sqlite.count, 1);
	assert_int_equal(cfg.operations.http.allow.count, 1);
	assert_true(cfg.path[0] == '/');
	config_free(&cfg);
}

/* health.stale_after: derived from poll_interval unless set; then above it. */
static void
test_health_and_metrics(void **state)
{
	struct egressd_config	cfg;
	char			err[CONFIG_ERR_MAX];

	(void)state;
	assert_int_equal(config_load_string(&cfg, "", "t.conf", "/etc/egressd",
	    err, sizeof(err)), 0);
	assert_true(cfg.health.stale_after == 180.0);	/* 3 x 60 */
	assert_true(cfg.health.outbox_max_age == 3600.0);
	assert_string_equal(cfg.metrics.textfile, "");
	assert_true(cfg.metrics.textfile_interval == 15.0);
	config_free(&cfg);
	assert_int_equal(config_load_string(&cfg, "orchestrator: { "
	    "poll_interval = 2.0; };\nmetrics: { textfile = \"m.prom\"; };\n",
	    "t.conf", "/etc/egressd", err, sizeof(err)), 0);
	assert_true(cfg.health.stale_after == 30.0);	/* at least 30 */
	assert_string_equal(cfg.metrics.textfile, "/etc/egressd/m.prom");
	config_free(&cfg);
	assert_int_equal(config_load_string(&cfg, "orchestrator: { "
	    "poll_interval = 0.5; };\nhealth: { stale_after = 2; };\n",
	    "t.conf", "/etc/egressd", err, sizeof(err)), 0);
	assert_true(cfg.health.stale_after == 2.0);
	config_free(&cfg);
	expect_error("orchestrator: { poll_interval = 5.0; };\n"
	    "health: { stale_after = 5; };\n", "t.conf:2: health.stale_after: "
	    "must be greater than orchestrator.poll_interval (5 <= 5), or 0 "
	    "for 3 polls (at least 30s)");
	expect_error("health: {\n outbox_max_age = -1; };\n",
	    "t.conf:2: health.outbox_max_age: must be between 0 and 2592000 "
	    "(got -1)");
	expect_error("metrics: { textfile_interval = 0.5; };\n",
	    "t.conf:1: metrics.textfile_interval: must be between 1 and 3600 "
	    "(got 0.5)");
}

static void
test_unknown_group(void **state)
{
	(void)state;
	expect_error("server: { workers = 2; };\n\nserverx: { };\n",
	    "t.conf:3: unknown key 'serverx'");
	expect_error("workers = 2;\n", "t.conf:1: unknown key 'workers'");
	expect_error("operations: {\n  storag: { };\n};\n",
	    "t.conf:2: unknown key 'operations.storag'");
}

static void
test_unknown_nested_key(void **state)
{
	(void)state;
	expect_error("server:\n{\n  workers = 2;\n  wrokers = 3;\n};\n",
	    "t.conf:4: unknown key 'server.wrokers'");
	expect_error("operations: { command: { commands = (\n"
	    "  { name = \"a\"; argv = [ \"/a\" ];\n"
	    "    tmeout = 1; } ); }; };\n",
	    "t.conf:3: unknown key "
	    "'operations.command.commands[0].tmeout'");
}

static void
test_wrong_type(void **state)
{
	(void)state;
	expect_error("server: {\n workers = \"4\"; };\n",
	    "t.conf:2: server.workers: expected an integer");
	expect_error("server: {\n daemonize = 1; };\n",
	    "t.conf:2: server.daemonize: expected a boolean (true or false)");
	expect_error("log: { level = 3; };\n",
	    "t.conf:1: log.level: expected a string");
	expect_error("worker: {\n\n heartbeat_interval = \"5\"; };\n",
	    "t.conf:3: worker.heartbeat_interval: expected a number");
	expect_error("server = 4;\n", "t.conf:1: server: expected a group");
	expect_error("operations: { http: { allow = \"https://a\"; }; };\n",
	    "t.conf:1: operations.http.allow: expected an array of strings");
	expect_error("operations: { http: { allow = [ 1 ]; }; };\n",
	    "t.conf:1: operations.http.allow[0]: expected a string");
	expect_error("operations: { command: { commands = { }; }; };\n",
	    "t.conf:1: operations.command.commands: expected a list of "
	    "groups");
	expect_error("operations: { sqlite: { databases = ( 1 ); }; };\n",
	    "t.conf:1: operations.sqlite.databases[0]: expected a group");
}

static void
test_float_rejected_for_int(void **state)
{
	(void)state;
	expect_error("server: {\n\n workers = 4.0; };\n",
	    "t.conf:3: server.workers: expected an integer");
	expect_error("orchestrator: { max_body_bytes = 1e6; };\n",
	    "t.conf:1: orchestrator.max_body_bytes: expected an integer");
}

static void
test_int_accepted_for_float(void **state)
{
	struct egressd_config	cfg;

	(void)state;
	tu_config(&cfg, "server: { graceful_timeout = 10; };\n"
	    "store: { busy_timeout = 1L; };\n"
	    "operations: { http: { max_bytes = 1048576L; }; };\n");
	assert_true(cfg.server.graceful_timeout == 10.0);
	assert_true(cfg.store.busy_timeout == 1.0);
	assert_int_equal(cfg.operations.http.max_bytes, 1048576);
	config_free(&cfg);
}

static void
test_out_of_range(void **state)
{
	(void)state;
	expect_error("server: {\n workers = 0; };\n",
	    "t.conf:2: server.workers: must be between 1 and 256 (got 0)");
	expect_error("server: { workers = 257; };\n",
	    "t.conf:1: server.workers: must be between 1 and 256 (got 257)");
	expect_error("server: { worker_timeout = 0.1; };\n",
	    "t.conf:1: server.worker_timeout: must be between 0.5 and 3600 "
	    "(got 0.1)");
	expect_error("orchestrator: {\n\n\n max_event_bytes = 1023; };\n",
	    "t.conf:4: orchestrator.max_event_bytes: must be between 1024 "
	    "and 67108864 (got 1023)");
	expect_error("store: { max_rows = 1000000000001L; };\n",
	    "t.conf:1: store.max_rows: must be between 1000 and "
	    "1000000000000 (got 1000000000001)");
	expect_error("store: { max_bytes = 1048575; };\n",
	    "t.conf:1: store.max_bytes: must be between 1048576 and "
	    "1099511627776 (got 1048575)");
	expect_error("worker: { parallel_polls = 0; };\n",
	    "t.conf:1: worker.parallel_polls: must be between 1 and 16 "
	    "(got 0)");
	expect_error("worker: { parallel_polls = 17; };\n",
	    "t.conf:1: worker.parallel_polls: must be between 1 and 16 "
	    "(got 17)");
	expect_error("store: {\n files = -1; };\n",
	    "t.conf:2: store.files: must be between 0 and 8 (got -1)");
	expect_error("store: { files = 9; };\n",
	    "t.conf:1: store.files: must be between 0 and 8 (got 9)");
	expect_error("operations: { storage: {\n max_bytes = 4294967297L; };"
	    " };\n",
	    "t.conf:2: operations.storage.max_bytes: must be between 1 and "
	    "4294967296 (got 4294967297)");
	expect_error("process: { fork_budget_divisor = 0; };\n",
	    "t.conf:1: process.fork_budget_divisor: must be between 1 and "
	    "2147483647 (got 0)");
	expect_error("process: { max_runtime_seconds = 0; };\n",
	    "t.conf:1: process.max_runtime_seconds: must be greater than 0 "
	    "and at most 1000000000 (got 0)");
	expect_error("operations: { command: { commands = (\n"
	    " { name = \"a\"; argv = [ \"/a\" ]; timeout = 0; } ); }; };\n",
	    "t.conf:2: operations.command.commands[0].timeout: must be "
	    "between 0.01 and 86400 (got 0)");
	expect_error("operations: { http: { max_redirects = 21; }; };\n",
	    "t.conf:1: operations.http.max_redirects: must be between 0 and "
	    "20 (got 21)");
}

static void
test_bad_enum(void **state)
{
	(void)state;
	expect_error("server: {\n on_goodbye = \"x\"; };\n",
	    "t.conf:2: server.on_goodbye: must be \"restart\" or \"exit\" "
	    "(got \"x\")");
	expect_error("log: { level = \"warn\"; };\n",
	    "t.conf:1: log.level: must be \"debug\", \"info\", \"warning\" "
	    "or \"error\" (got \"warn\")");
	expect_error("store: { synchronous = \"off\\n\"; };\n",
	    "t.conf:1: store.synchronous: must be \"normal\" or \"full\" "
	    "(got \"off?\")");
}

static void
test_syntax_error(void **state)
{
	struct egressd_config	cfg;
	char			err[CONFIG_ERR_MAX];

	(void)state;
	assert_int_equal(config_load_string(&cfg,
	    "server: {\n  workers = 4;\n  pidfile = ; };\n", "t.conf",
	    "/", err, sizeof(err)), -1);
	assert_int_equal(strncmp(err, "t.conf:3: syntax error: ", 24), 0);
	assert_true(strlen(err) > 24);
	assert_null(strchr(err, '\n'));
	assert_null(cfg.path);
	expect_error("a = 1;\na = 2;\n",
	    "t.conf:2: syntax error: duplicate setting name");
}

static void
test_unreadable_file(void **state)
{
	struct egressd_config	cfg;
	char			err[CONFIG_ERR_MAX];

	(void)state;
	assert_int_equal(config_load_file(&cfg, "/nonexistent/e.conf", err,
	    sizeof(err)), -1);
	assert_string_equal(err,
	    "/nonexistent/e.conf: cannot read: No such file or directory");
	assert_null(cfg.path);
	assert_int_equal(config_load_file(&cfg, "/", err, sizeof(err)), -1);
	assert_string_equal(err, "/: cannot read: Is a directory");
}

static void
test_cross_key(void **state)
{
	(void)state;
	expect_error("worker: {\n heartbeat_interval = 30; };\n",
	    "t.conf:2: server.worker_timeout: must be greater than "
	    "worker.heartbeat_interval (30 <= 30)");
	expect_error("worker: { heartbeat_interval = 5; };\n"
	    "server: {\n worker_timeout = 2; };\n",
	    "t.conf:3: server.worker_timeout: must be greater than "
	    "worker.heartbeat_interval (2 <= 5)");
	expect_error("server: {\n pidfile = \"\"; };\n",
	    "t.conf:2: server.pidfile: must not be empty");
	expect_error("server: { state_dir = \"\"; };\n",
	    "t.conf:1: server.state_dir: must not be empty");
	expect_error("server: {\n\n control_socket = \"/run/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"; };\n",
	    "t.conf:3: server.control_socket: path must be shorter than 108 "
	    "bytes (got 124)");
	expect_error("operations: { storage: {\n enabled = true; }; };\n",
	    "t.conf:2: operations.storage.root: must be set when "
	    "operations.storage.enabled is true");
}

/* What blocks a worker's loop ends before the worker counts as hung. */
static void
test_blocking_limits(void **state)
{
	(void)state;
	expect_error("operations: { sqlite: { enabled = true;\n"
	    " timeout = 25.0; }; };\n",
	    "t.conf:2: operations.sqlite.timeout: must be less than "
	    "server.worker_timeout minus worker.heartbeat_interval (25 >= "
	    "30 - 5): it blocks a worker, which would be killed as hung "
	    "instead of timing out");
	expect_error("store: { busy_timeout = 1.0; };\n"
	    "server: {\n worker_timeout = 5.5; };\n",
	    "t.conf:3: store.busy_timeout: must be less than "
	    "server.worker_timeout minus worker.heartbeat_interval (1 >= "
	    "5.5 - 5): it blocks a worker, which would be killed as hung "
	    "instead of timing out");
}

static void
test_blocking_limits_ok(void **state)
{
	struct egressd_config	cfg;

	(void)state;
	/* A disabled handler's limit does not matter. */
	tu_config(&cfg, "operations: { sqlite: { timeout = 600.0; }; };\n");
	assert_true(cfg.operations.sqlite.timeout == 600.0);
	config_free(&cfg);
	tu_config(&cfg, "operations: { sqlite: { enabled = true; "
	    "timeout = 24.9; }; };\n");
	assert_true(cfg.operations.sqlite.enabled);
	config_free(&cfg);
}

static void
test_commands(void **state)
{
	(void)state;
	expect_error("operations: { command: { commands = (\n"
	    "  { name = \"df\"; argv = [ \"/bin/df\" ]; },\n"
	    "  { argv = [ \"/bin/du\" ];\n"
	    "    name = \"df\"; } ); }; };\n",
	    "t.conf:4: operations.command.commands[1].name: duplicate command "
	    "name \"df\"");
	expect_error("operations: { command: { commands = (\n"
	    "  { name = \"df\"; argv = [ \"df\", \"-k\" ]; } ); }; };\n",
	    "t.conf:2: operations.command.commands[0].argv[0]: must be an "
	    "absolute path (got \"df\")");
	expect_error("operations: { command: { commands = (\n"
	    "  { name = \"df\"; argv = [ ]; } ); }; };\n",
	    "t.conf:2: operations.command.commands[0].argv: must not be "
	    "empty");
	expect_error("operations: { command: { commands = (\n"
	    "  { name = \"df\"; } ); }; };\n",
	    "t.conf:2: operations.command.commands[0]: missing key 'argv'");
	expect_error("operations: { command: { commands = (\n"
	    "  { name = \"\"; argv = [ \"/a\" ]; } ); }; };\n",
	    "t.conf:2: operations.command.commands[0].name: must not be "
	    "empty");
	expect_error("operations: { sqlite: { databases = (\n"
	    "  { name = \"a\"; path = \"/a.db\"; },\n"
	    "  { name = \"a\"; path = \"/b.db\"; } ); }; };\n",
	    "t.conf:3: operations.sqlite.databases[1].name: duplicate "
	    "database name \"a\"");
	expect_error("operations: { sqlite: { databases = (\n"
	    "  { name = \"a\"; } ); }; };\n",
	    "t.conf:2: operations.sqlite.databases[0]: missing key 'path'");
}

static void
test_lists(void **state)
{
	(void)state;
	expect_error("operations: { http: { allow = (\n \"https://a\",\n"
	    " \"ftp://b\" ); }; };\n",
	    "t.conf:3: operations.http.allow[1]: must start with http:// or "
	    "https:// (got \"ftp://b\")");
	expect_error("operations: { upgrade: { allow_keys = [\n"
	    " \"worker.max_inflght\" ]; }; };\n",
	    "t.conf:2: operations.upgrade.allow_keys[0]: not a configuration "
	    "key (got \"worker.max_inflght\")");
	expect_error("operations: { upgrade: { allow_keys = [ \"worker\" ]; };"
	    " };\n",
	    "t.conf:1: operations.upgrade.allow_keys[0]: not a configuration "
	    "key (got \"worker\")");
	expect_error("operations: { command: { environment = [ \"PATH\",\n"
	    " \"1X\" ]; }; };\n",
	    "t.conf:2: operations.command.environment[1]: not an environment "
	    "variable name (got \"1X\")");
	expect_error("operations: { command: { environment = [ \"A=B\" ]; };"
	    " };\n",
	    "t.conf:1: operations.command.environment[0]: not an environment "
	    "variable name (got \"A=B\")");
	expect_error("operations: { command: { environment = [ \"\" ]; }; };\n",
	    "t.conf:1: operations.command.environment[0]: not an environment "
	    "variable name (got \"\")");
	expect_error("operations: { command: { max_output = -1; }; };\n",
	    "t.conf:1: operations.command.max_output: must be between 0 and "
	    "4294967296 (got -1)");
}

static void
test_capabilities(void **state)
{
	struct egressd_config	cfg;
	char			err[CONFIG_ERR_MAX];

	(void)state;
	assert_int_equal(config_load_string(&cfg, "operations: { storage: {\n"
	    " capabilities = [ \"storage:reports/* read\" ]; }; };\n", "t.conf",
	    "/etc", err, sizeof(err)), 0);
	assert_int_equal(cfg.operations.storage.capabilities.count, 1);
	assert_string_equal(cfg.operations.storage.capabilities.items[0],
	    "storage:reports/* read");
	config_free(&cfg);
	expect_error("operations: { storage: {\n capabilities = [\n"
	    " \"storage:a read,fly\" ]; }; };\n",
	    "t.conf:3: operations.storage.capabilities[0]: unknown right "
	    "(read, write, delete, execute, request, materialize, link, diff) "
	    "(got \"storage:a read,fly\")");
	expect_error("operations: { http: { capabilities = [ \"http:x\" ]; };"
	    " };\n", "t.conf:1: operations.http.capabilities[0]: expected "
	    "\"RESOURCE RIGHTS\", e.g. \"storage:reports/* read,write\" "
	    "(got \"http:x\")");
	expect_error("operations: { http: { capabilities = [ \"x request\" ]; "
	    "}; };\n", "t.conf:1: operations.http.capabilities[0]: resource "
	    "must be KIND:NAME, e.g. storage:reports/* (got \"x request\")");
	expect_error("operations: { http: { capabilities = [ \"h:x \" ]; "
	    "}; };\n", "t.conf:1: operations.http.capabilities[0]: expected "
	    "\"RESOURCE RIGHTS\", e.g. \"storage:reports/* read,write\" "
	    "(got \"h:x \")");
}

static void
test_url(void **state)
{
	struct egressd_config	cfg;

	(void)state;
	tu_config(&cfg, "orchestrator: { url = \"https://o.example/api/\"; };");
	assert_string_equal(cfg.orchestrator.url, "https://o.example/api");
	config_free(&cfg);
	tu_config(&cfg, "orchestrator: { url = \"http://o:8080\"; };");
	assert_string_equal(cfg.orchestrator.url, "http://o:8080");
	config_free(&cfg);
	tu_config(&cfg, "orchestrator: { url = \"\"; };");
	assert_string_equal(cfg.orchestrator.url, "");
	config_free(&cfg);
	expect_error("orchestrator: {\n url = \"o.example\"; };\n",
	    "t.conf:2: orchestrator.url: must start with http:// or https:// "
	    "(got \"o.example\")");
	expect_error("orchestrator: { url = \"https://o .example\"; };\n",
	    "t.conf:1: orchestrator.url: must not contain whitespace or "
	    "control characters (got \"https://o .example\")");
	expect_error("orchestrator: { url = \"https:///x\"; };\n",
	    "t.conf:1: orchestrator.url: must name a host "
	    "(got \"https:///x\")");
}

static void
test_relative_paths(void **state)
{
	struct egressd_config	 cfg;
	char			 tmpl[64];
	char			 err[CONFIG_ERR_MAX] = "", want[PATH_MAX + 64];
	char			*dir, *real;

	(void)state;
	assert_non_null(dir = tu_mkdtemp(tmpl, sizeof(tmpl), "config"));
	assert_non_null(real = realpath(dir, NULL));
	assert_int_equal(config_load_string(&cfg,
	    "server: { state_dir = \"state\"; pidfile = \"./run/e.pid\";\n"
	    "  control_socket = \"/abs.sock\"; };\n"
	    "log: { file = \"log/e.log\"; };\n"
	    "orchestrator: { token_file = \"tok\"; ca_file = \"\"; };\n"
	    "operations: { storage: { root = \".\"; };\n"
	    "  sqlite: { databases = ( { name = \"d\"; path = \"d.db\"; } ); };"
	    " };\n", "t.conf", dir, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/state", real);
	assert_string_equal(cfg.server.state_dir, want);
	snprintf(want, sizeof(want), "%s/run/e.pid", real);
	assert_string_equal(cfg.server.pidfile, want);
	assert_string_equal(cfg.server.control_socket, "/abs.sock");
	snprintf(want, sizeof(want), "%s/log/e.log", real);
	assert_string_equal(cfg.log.file, want);
	snprintf(want, sizeof(want), "%s/tok", real);
	assert_string_equal(cfg.orchestrator.token_file, want);
	assert_string_equal(cfg.orchestrator.ca_file, "");
	assert_string_equal(cfg.operations.storage.root, real);
	snprintf(want, sizeof(want), "%s/d.db", real);
	assert_string_equal(cfg.operations.sqlite.databases[0].path, want);
	config_free(&cfg);

	tu_config(&cfg, "log: { file = \"stderr\"; };\n");
	assert_string_equal(cfg.log.file, "stderr");
	config_free(&cfg);
	assert_int_equal(rmdir(dir), 0);
	free(real);
}

static void
test_load_file_relative(void **state)
{
	struct egressd_config	 cfg;
	char			 tmpl[64];
	char			 err[CONFIG_ERR_MAX] = "", file[PATH_MAX];
	char			 want[PATH_MAX + 64];
	char			*dir, *real;

	(void)state;
	assert_non_null(dir = tu_mkdtemp(tmpl, sizeof(tmpl), "config"));
	assert_non_null(real = realpath(dir, NULL));
	snprintf(file, sizeof(file), "%s/e.conf", dir);
	tu_write_file(file, "server: { state_dir = \"var\"; };\n"
	    "worker: {\n  max_inflight = 0; };\n", 0644);
	assert_int_equal(config_load_file(&cfg, file, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: worker.max_inflight: must be "
	    "between 1 and 1024 (got 0)", file);
	assert_string_equal(err, want);

	tu_write_file(file, "server: { state_dir = \"var\"; };\n", 0644);
	assert_int_equal(config_load_file(&cfg, file, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/var", real);
	assert_string_equal(cfg.server.state_dir, want);
	snprintf(want, sizeof(want), "%s/e.conf", real);
	assert_string_equal(cfg.path, want);
	config_free(&cfg);

	tu_write_file(file, "server: {\n\n  workers = ; };\n", 0644);
	assert_int_equal(config_load_file(&cfg, file, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: syntax error: ", file);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);

	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(dir), 0);
	free(real);
}

static void
test_free_is_idempotent(void **state)
{
	struct egressd_config	cfg;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	config_free(&cfg);
	config_free(NULL);
	tu_config(&cfg, full_text);
	config_free(&cfg);
	assert_null(cfg.server.pidfile);
	assert_null(cfg.operations.http.allow.items);
	assert_int_equal(cfg.operations.sqlite.count, 0);
	config_free(&cfg);
}

static void
test_log_level_name(void **state)
{
	(void)state;
	assert_string_equal(config_log_level_name(LOGL_DEBUG), "debug");
	assert_string_equal(config_log_level_name(LOGL_WARNING), "warning");
	assert_string_equal(config_log_level_name(LOGL_ERROR), "error");
	assert_string_equal(config_log_level_name((enum config_log_level)9),
	    "unknown");
}

static void
test_proxy_keys(void **state)
{
	struct egressd_config	cfg;

	(void)state;
	tu_config(&cfg, "orchestrator: { proxy = \"http://u:p@proxy:3128\"; "
	    "no_proxy = \"localhost, .internal,10.0.0.0/8\"; };\n"
	    "operations: { http: { proxy = \"socks5h://s:1080\"; }; };");
	assert_string_equal(cfg.orchestrator.proxy, "http://u:p@proxy:3128");
	assert_string_equal(cfg.orchestrator.no_proxy,
	    "localhost, .internal,10.0.0.0/8");
	assert_string_equal(cfg.operations.http.proxy, "socks5h://s:1080");
	assert_string_equal(cfg.operations.http.no_proxy, "");
	config_free(&cfg);
	expect_error("orchestrator: {\n proxy = \"proxy:3128\"; };\n",
	    "t.conf:2: orchestrator.proxy: must start with http://, https://, "
	    "socks4://, socks4a://, socks5:// or socks5h:// "
	    "(got \"proxy:3128\")");
	expect_error("orchestrator: { proxy = \"http://u:p@\"; };\n",
	    "t.conf:1: orchestrator.proxy: must name a host "
	    "(got \"http://u:p@\")");
	expect_error("operations: { http: { proxy = \"http://a b\"; }; };\n",
	    "t.conf:1: operations.http.proxy: must not contain whitespace or "
	    "control characters (got \"http://a b\")");
	expect_error("orchestrator: { no_proxy = \"a;b\"; };\n",
	    "t.conf:1: orchestrator.no_proxy: must be \"*\" or host names, "
	    "domains and addresses separated by commas (got \"a;b\")");
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_string_is_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_unknown_group),
		cmocka_unit_test(test_unknown_nested_key),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_float_rejected_for_int),
		cmocka_unit_test(test_int_accepted_for_float),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_bad_enum),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_cross_key),
		cmocka_unit_test(test_blocking_limits),
		cmocka_unit_test(test_blocking_limits_ok),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_proxy_keys),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_load_file_relative),
		cmocka_unit_test(test_free_is_idempotent),
		cmocka_unit_test(test_log_level_name),
		cmocka_unit_test(test_health_and_metrics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
