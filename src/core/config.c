/*
 * config: loading and validating the egressd configuration file.
 *
 * Owns the key table (name, type, range, default and where each value lives
 * in struct egressd_config), the defaults derived from it, the walk over a
 * parsed libconfig tree that rejects unknown keys, wrong types and
 * out-of-range values, the resolution of relative paths against the
 * directory of the file, and the checks that span several keys.
 *
 * It reads the file and nothing else, keeps no global mutable state and
 * never logs: every problem becomes one line in the caller's buffer.
 */

#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700	/* strdup, strndup */
#endif

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "core/config.h"

#define SECS_HOUR		3600.0
#define SECS_DAY		86400.0
#define KIB			1024.0
#define MIB			(1024.0 * KIB)
#define GIB			(1024.0 * MIB)

#define CONFIG_INFLIGHT_MAX	1024
#define CONFIG_CHILDREN_MAX	1024
#define CONFIG_COUNT_MAX	1e9	/* operation and row counters */
#define CONFIG_STORE_ROWS_MIN	1000
#define CONFIG_STORE_ROWS_MAX	1e12
#define CONFIG_RETENTION_MAX	36500.0	/* days: a century */
#define CONFIG_STORE_BYTES_MIN	MIB	/* store.max_bytes */
#define CONFIG_STORE_BYTES_MAX	(1024.0 * GIB)
#define CONFIG_BUSY_MAX		600.0
#define CONFIG_CONNECT_MAX	600.0
#define CONFIG_RUNTIME_MAX	1e9	/* ms of it still fit an int64 */
#define CONFIG_OP_BYTES_MAX	(4.0 * GIB)
#define CONFIG_OP_TIMEOUT_MIN	0.01
#define CONFIG_REDIRECTS_MAX	20
#define CONFIG_EVENT_MAX	(64.0 * MIB)
#define CONFIG_BODY_MAX		GIB
#define CONFIG_QUOTE_MAX	64	/* bytes of user text echoed */
#define CONFIG_QUOTE_BUF	(CONFIG_QUOTE_MAX + 8)	/* quotes, "..." */
#define CONFIG_PATH_MAX		256	/* dotted keys in messages */
#define CONFIG_SUN_PATH_MAX	sizeof(((struct sockaddr_un *)0)->sun_path)

/* Value kinds: how a setting is type-checked, validated and stored. */
enum config_kind {
	CK_GROUP,		/* a nested table */
	CK_INT,			/* int */
	CK_LONG,		/* long */
	CK_INT64,		/* int64_t; libconfig 'L' values welcome */
	CK_DOUBLE,		/* double; integers accepted */
	CK_BOOL,		/* bool */
	CK_STRING,		/* char * */
	CK_PATH,		/* char *, relative to the config directory */
	CK_LOGFILE,		/* CK_PATH, except "stderr" and "syslog" */
	CK_URL,			/* char *, "" or an http(s) base URL */
	CK_PROXY,		/* char *, "" or a proxy URL (scheme://host) */
	CK_HOSTS,		/* char *, "" or a no-proxy host list */
	CK_ENUM,		/* an enum, index into names */
	CK_URLLIST,		/* struct config_strlist of http(s) URLs */
	CK_KEYLIST,		/* struct config_strlist of config keys */
	CK_CAPLIST,		/* struct config_strlist of "RESOURCE RIGHTS" */
	CK_ENVLIST,		/* struct config_strlist of variable names */
	CK_ARGV,		/* argv and argc of a struct config_command */
	CK_ENTRIES		/* an array of groups, see config_entries */
};

#define CF_REQUIRED	0x01	/* must appear in its group */
#define CF_NONEMPTY	0x02	/* strings: "" is refused */
#define CF_MIN_EXCL	0x04	/* numbers: min itself is refused */

struct config_table;
struct config_entries;

struct config_key {
	const char			*name;
	enum config_kind		 kind;
	size_t				 offset;
	unsigned int			 flags;
	double				 min;
	double				 max;
	double				 def;	/* numbers, bools, enums */
	const char			*defstr; /* strings; NULL = "" */
	const char *const		*names;	/* CK_ENUM */
	const struct config_table	*group;	/* CK_GROUP */
	const struct config_entries	*entries; /* CK_ENTRIES */
};

struct config_table {
	const struct config_key	*keys;
	size_t			 count;
};

/* An array of groups such as operations.command.commands. */
struct config_entries {
	const struct config_table	*table;
	size_t				 size;	/* of one entry */
	size_t				 count_offset; /* of its size_t */
	const char			*what;	/* for messages */
};

struct config_ctx {
	const char	*name;		/* file name used in messages */
	char		*basedir;	/* absolute, for relative paths */
	char		*err;
	size_t		 errlen;
};

#define KEY(n, k, off)	.name = (n), .kind = (k), .offset = (off)
#define TABLE(keys)	{ keys, sizeof(keys) / sizeof(keys[0]) }
#define CFG(member)	offsetof(struct egressd_config, member)

static const char *const config_goodbye_names[] = { "restart", "exit", NULL };
static const char *const config_level_names[] = {
	"debug", "info", "warning", "error", NULL
};
static const char *const config_format_names[] = { "text", "json", NULL };
static const char *const config_sync_names[] = { "normal", "full", NULL };

static const struct config_key config_server_keys[] = {
	{ KEY("workers", CK_INT, CFG(server.workers)),
	    .min = 1, .max = CONFIG_WORKERS_MAX, .def = 4 },
	{ KEY("pidfile", CK_PATH, CFG(server.pidfile)),
	    .flags = CF_NONEMPTY, .defstr = "/run/egressd/egressd.pid" },
	{ KEY("state_dir", CK_PATH, CFG(server.state_dir)),
	    .flags = CF_NONEMPTY, .defstr = "/var/lib/egressd" },
	{ KEY("control_socket", CK_PATH, CFG(server.control_socket)),
	    .flags = CF_NONEMPTY, .defstr = "/run/egressd/egressd.sock" },
	{ KEY("user", CK_STRING, CFG(server.user)) },
	{ KEY("group", CK_STRING, CFG(server.group)) },
	{ KEY("daemonize", CK_BOOL, CFG(server.daemonize)), .def = 0 },
	{ KEY("core_dumps", CK_BOOL, CFG(server.core_dumps)), .def = 0 },
	{ KEY("graceful_timeout", CK_DOUBLE, CFG(server.graceful_timeout)),
	    .min = 0, .max = SECS_HOUR, .def = 30 },
	{ KEY("worker_timeout", CK_DOUBLE, CFG(server.worker_timeout)),
	    .min = 0.5, .max = SECS_HOUR, .def = 30 },
	{ KEY("min_uptime", CK_DOUBLE, CFG(server.min_uptime)),
	    .min = 0, .max = SECS_HOUR, .def = 5 },
	{ KEY("on_goodbye", CK_ENUM, CFG(server.on_goodbye)),
	    .def = ON_GOODBYE_RESTART, .names = config_goodbye_names },
	{ KEY("max_ops_per_worker", CK_LONG, CFG(server.max_ops_per_worker)),
	    .min = 0, .max = CONFIG_COUNT_MAX, .def = 0 },
	{ KEY("max_ops_jitter", CK_LONG, CFG(server.max_ops_jitter)),
	    .min = 0, .max = CONFIG_COUNT_MAX, .def = 0 },
};

static const struct config_key config_log_keys[] = {
	{ KEY("file", CK_LOGFILE, CFG(log.file)),
	    .flags = CF_NONEMPTY, .defstr = "stderr" },
	{ KEY("level", CK_ENUM, CFG(log.level)),
	    .def = LOGL_INFO, .names = config_level_names },
	{ KEY("format", CK_ENUM, CFG(log.format)),
	    .def = LOGF_TEXT, .names = config_format_names },
};

static const struct config_key config_orchestrator_keys[] = {
	{ KEY("url", CK_URL, CFG(orchestrator.url)) },
	{ KEY("token_id", CK_STRING, CFG(orchestrator.token_id)) },
	{ KEY("token_file", CK_PATH, CFG(orchestrator.token_file)) },
	{ KEY("poll_interval", CK_DOUBLE, CFG(orchestrator.poll_interval)),
	    .min = 0.05, .max = SECS_DAY, .def = 60 },
	{ KEY("events", CK_BOOL, CFG(orchestrator.events)), .def = 1 },
	{ KEY("events_timeout", CK_DOUBLE, CFG(orchestrator.events_timeout)),
	    .min = 1, .max = SECS_DAY, .def = 120 },
	{ KEY("connect_timeout", CK_DOUBLE,
	    CFG(orchestrator.connect_timeout)),
	    .min = 0.1, .max = CONFIG_CONNECT_MAX, .def = 10 },
	{ KEY("tls_verify", CK_BOOL, CFG(orchestrator.tls_verify)), .def = 1 },
	{ KEY("ca_file", CK_PATH, CFG(orchestrator.ca_file)) },
	{ KEY("proxy", CK_PROXY, CFG(orchestrator.proxy)) },
	{ KEY("no_proxy", CK_HOSTS, CFG(orchestrator.no_proxy)) },
	{ KEY("max_event_bytes", CK_INT64,
	    CFG(orchestrator.max_event_bytes)),
	    .min = KIB, .max = CONFIG_EVENT_MAX, .def = MIB },
	{ KEY("max_body_bytes", CK_INT64, CFG(orchestrator.max_body_bytes)),
	    .min = KIB, .max = CONFIG_BODY_MAX, .def = 16 * MIB },
};

static const struct config_key config_worker_keys[] = {
	{ KEY("max_inflight", CK_INT, CFG(worker.max_inflight)),
	    .min = 1, .max = CONFIG_INFLIGHT_MAX, .def = 8 },
	{ KEY("parallel_polls", CK_INT, CFG(worker.parallel_polls)),
	    .min = 1, .max = CONFIG_POLLS_MAX, .def = 4 },
	{ KEY("heartbeat_interval", CK_DOUBLE,
	    CFG(worker.heartbeat_interval)),
	    .min = 0.05, .max = SECS_HOUR, .def = 5 },
	{ KEY("backpressure_heartbeat", CK_DOUBLE,
	    CFG(worker.backpressure_heartbeat)),
	    .min = 0.05, .max = SECS_DAY, .def = 30 },
};

static const struct config_key config_store_keys[] = {
	{ KEY("synchronous", CK_ENUM, CFG(store.synchronous)),
	    .def = SYNC_NORMAL, .names = config_sync_names },
	{ KEY("busy_timeout", CK_DOUBLE, CFG(store.busy_timeout)),
	    .min = 0, .max = CONFIG_BUSY_MAX, .def = 5 },
	{ KEY("retention_days", CK_DOUBLE, CFG(store.retention_days)),
	    .min = 0, .max = CONFIG_RETENTION_MAX, .def = 7 },
	{ KEY("max_rows", CK_INT64, CFG(store.max_rows)),
	    .min = CONFIG_STORE_ROWS_MIN, .max = CONFIG_STORE_ROWS_MAX,
	    .def = 1000000 },
	{ KEY("max_bytes", CK_INT64, CFG(store.max_bytes)),
	    .min = CONFIG_STORE_BYTES_MIN, .max = CONFIG_STORE_BYTES_MAX,
	    .def = GIB },
	{ KEY("files", CK_INT, CFG(store.files)),
	    .min = 0, .max = CONFIG_STORE_FILES_MAX, .def = 0 },
};

/* health.stale_after: 0 = CONFIG_STALE_POLLS x poll_interval (see below). */
static const struct config_key config_health_keys[] = {
	{ KEY("stale_after", CK_DOUBLE, CFG(health.stale_after)),
	    .min = 0, .max = SECS_DAY, .def = 0 },
	{ KEY("outbox_max_age", CK_DOUBLE, CFG(health.outbox_max_age)),
	    .min = 0, .max = 30 * SECS_DAY, .def = SECS_HOUR },
};

static const struct config_key config_metrics_keys[] = {
	{ KEY("textfile", CK_PATH, CFG(metrics.textfile)) },
	{ KEY("textfile_interval", CK_DOUBLE, CFG(metrics.textfile_interval)),
	    .min = 1, .max = SECS_HOUR, .def = 15 },
};

static const struct config_key config_process_keys[] = {
	{ KEY("max_tool_calls", CK_INT, CFG(process.max_tool_calls)),
	    .min = 0, .max = INT_MAX, .def = 100 },
	{ KEY("max_child_processes", CK_INT,
	    CFG(process.max_child_processes)),
	    .min = 0, .max = INT_MAX, .def = 8 },
	{ KEY("max_runtime_seconds", CK_DOUBLE,
	    CFG(process.max_runtime_seconds)), .flags = CF_MIN_EXCL,
	    .min = 0, .max = CONFIG_RUNTIME_MAX, .def = 300 },
	{ KEY("fork_budget_divisor", CK_INT,
	    CFG(process.fork_budget_divisor)),
	    .min = 1, .max = INT_MAX, .def = 2 },
	{ KEY("fork_min_tool_calls", CK_INT,
	    CFG(process.fork_min_tool_calls)),
	    .min = 0, .max = INT_MAX, .def = 1 },
	{ KEY("fork_min_child_processes", CK_INT,
	    CFG(process.fork_min_child_processes)),
	    .min = 0, .max = INT_MAX, .def = 0 },
};

static const struct config_key config_storage_keys[] = {
	{ KEY("enabled", CK_BOOL, CFG(operations.storage.enabled)),
	    .def = 0 },
	{ KEY("root", CK_PATH, CFG(operations.storage.root)) },
	{ KEY("no_symlinks", CK_BOOL, CFG(operations.storage.no_symlinks)),
	    .def = 0 },
	{ KEY("max_bytes", CK_INT64, CFG(operations.storage.max_bytes)),
	    .min = 1, .max = CONFIG_OP_BYTES_MAX, .def = 16 * MIB },
	{ KEY("capabilities", CK_CAPLIST, CFG(operations.storage.capabilities)),
	    .defstr = "storage:* read,write,delete" },
};

static const struct config_key config_http_keys[] = {
	{ KEY("enabled", CK_BOOL, CFG(operations.http.enabled)), .def = 0 },
	{ KEY("allow", CK_URLLIST, CFG(operations.http.allow)) },
	{ KEY("max_bytes", CK_INT64, CFG(operations.http.max_bytes)),
	    .min = 1, .max = CONFIG_OP_BYTES_MAX, .def = 16 * MIB },
	{ KEY("timeout", CK_DOUBLE, CFG(operations.http.timeout)),
	    .min = CONFIG_OP_TIMEOUT_MIN, .max = SECS_DAY, .def = 30 },
	{ KEY("capabilities", CK_CAPLIST, CFG(operations.http.capabilities)),
	    .defstr = "http:* request" },
	{ KEY("forward_auth", CK_BOOL, CFG(operations.http.forward_auth)),
	    .def = 0 },
	{ KEY("max_redirects", CK_INT, CFG(operations.http.max_redirects)),
	    .min = 0, .max = CONFIG_REDIRECTS_MAX, .def = 5 },
	{ KEY("proxy", CK_PROXY, CFG(operations.http.proxy)) },
	{ KEY("no_proxy", CK_HOSTS, CFG(operations.http.no_proxy)) },
};

/*
 * A batch holds what its children may inherit: by default everything the
 * other handlers grant, each child still limited to its own handler's.
 */
#define CONFIG_BATCH_CAPS "storage:* read,write,delete\n" \
	"http:* request\ncommand:* execute\nsqlite:* read"

/* The first key of an entry table is its unique name. */
static const struct config_key config_command_entry_keys[] = {
	{ KEY("name", CK_STRING, offsetof(struct config_command, name)),
	    .flags = CF_REQUIRED | CF_NONEMPTY },
	{ KEY("argv", CK_ARGV, offsetof(struct config_command, argv)),
	    .flags = CF_REQUIRED },
	{ KEY("timeout", CK_DOUBLE,
	    offsetof(struct config_command, timeout)),
	    .min = CONFIG_OP_TIMEOUT_MIN, .max = SECS_DAY, .def = 10 },
};

static const struct config_table config_command_entry_table =
    TABLE(config_command_entry_keys);

static const struct config_entries config_command_entries = {
	&config_command_entry_table, sizeof(struct config_command),
	CFG(operations.command.count), "command"
};

static const struct config_key config_command_keys[] = {
	{ KEY("enabled", CK_BOOL, CFG(operations.command.enabled)),
	    .def = 0 },
	{ KEY("commands", CK_ENTRIES, CFG(operations.command.commands)),
	    .entries = &config_command_entries },
	{ KEY("capabilities", CK_CAPLIST, CFG(operations.command.capabilities)),
	    .defstr = "command:* execute" },
	{ KEY("environment", CK_ENVLIST,
	    CFG(operations.command.environment)) },
	{ KEY("max_output", CK_INT64, CFG(operations.command.max_output)),
	    .min = 0, .max = CONFIG_OP_BYTES_MAX, .def = MIB },
};

static const struct config_key config_database_entry_keys[] = {
	{ KEY("name", CK_STRING, offsetof(struct config_sqlite_db, name)),
	    .flags = CF_REQUIRED | CF_NONEMPTY },
	{ KEY("path", CK_PATH, offsetof(struct config_sqlite_db, path)),
	    .flags = CF_REQUIRED | CF_NONEMPTY },
};

static const struct config_table config_database_entry_table =
    TABLE(config_database_entry_keys);

static const struct config_entries config_database_entries = {
	&config_database_entry_table, sizeof(struct config_sqlite_db),
	CFG(operations.sqlite.count), "database"
};

static const struct config_key config_sqlite_keys[] = {
	{ KEY("enabled", CK_BOOL, CFG(operations.sqlite.enabled)),
	    .def = 0 },
	{ KEY("databases", CK_ENTRIES, CFG(operations.sqlite.databases)),
	    .entries = &config_database_entries },
	{ KEY("max_rows", CK_INT64, CFG(operations.sqlite.max_rows)),
	    .min = 1, .max = CONFIG_COUNT_MAX, .def = 10000 },
	{ KEY("timeout", CK_DOUBLE, CFG(operations.sqlite.timeout)),
	    .min = CONFIG_OP_TIMEOUT_MIN, .max = SECS_DAY, .def = 10 },
	{ KEY("capabilities", CK_CAPLIST, CFG(operations.sqlite.capabilities)),
	    .defstr = "sqlite:* read" },
};

static const struct config_key config_batch_keys[] = {
	{ KEY("enabled", CK_BOOL, CFG(operations.batch.enabled)), .def = 1 },
	{ KEY("max_children", CK_INT, CFG(operations.batch.max_children)),
	    .min = 1, .max = CONFIG_CHILDREN_MAX, .def = 16 },
	{ KEY("capabilities", CK_CAPLIST, CFG(operations.batch.capabilities)),
	    .defstr = CONFIG_BATCH_CAPS },
};

static const struct config_key config_upgrade_keys[] = {
	{ KEY("enabled", CK_BOOL, CFG(operations.upgrade.enabled)),
	    .def = 0 },
	{ KEY("allow_keys", CK_KEYLIST, CFG(operations.upgrade.allow_keys)) },
	{ KEY("capabilities", CK_CAPLIST, CFG(operations.upgrade.capabilities)),
	    .defstr = "config:* write" },
};

static const struct config_table config_server_table =
    TABLE(config_server_keys);
static const struct config_table config_log_table = TABLE(config_log_keys);
static const struct config_table config_orchestrator_table =
    TABLE(config_orchestrator_keys);
static const struct config_table config_worker_table =
    TABLE(config_worker_keys);
static const struct config_table config_store_table =
    TABLE(config_store_keys);
static const struct config_table config_health_table =
    TABLE(config_health_keys);
static const struct config_table config_metrics_table =
    TABLE(config_metrics_keys);
static const struct config_table config_process_table =
    TABLE(config_process_keys);
static const struct config_table config_storage_table =
    TABLE(config_storage_keys);
static const struct config_table config_http_table = TABLE(config_http_keys);
static const struct config_table config_command_table =
    TABLE(config_command_keys);
static const struct config_table config_sqlite_table =
    TABLE(config_sqlite_keys);
static const struct config_table config_batch_table =
    TABLE(config_batch_keys);
static const struct config_table config_upgrade_table =
    TABLE(config_upgrade_keys);

static const struct config_key config_operations_keys[] = {
	{ KEY("storage", CK_GROUP, 0), .group = &config_storage_table },
	{ KEY("http", CK_GROUP, 0), .group = &config_http_table },
	{ KEY("command", CK_GROUP, 0), .group = &config_command_table },
	{ KEY("sqlite", CK_GROUP, 0), .group = &config_sqlite_table },
	{ KEY("batch", CK_GROUP, 0), .group = &config_batch_table },
	{ KEY("upgrade", CK_GROUP, 0), .group = &config_upgrade_table },
};

static const struct config_table config_operations_table =
    TABLE(config_operations_keys);

static const struct config_key config_root_keys[] = {
	{ KEY("server", CK_GROUP, 0), .group = &config_server_table },
	{ KEY("log", CK_GROUP, 0), .group = &config_log_table },
	{ KEY("orchestrator", CK_GROUP, 0),
	    .group = &config_orchestrator_table },
	{ KEY("worker", CK_GROUP, 0), .group = &config_worker_table },
	{ KEY("store", CK_GROUP, 0), .group = &config_store_table },
	{ KEY("health", CK_GROUP, 0), .group = &config_health_table },
	{ KEY("metrics", CK_GROUP, 0), .group = &config_metrics_table },
	{ KEY("process", CK_GROUP, 0), .group = &config_process_table },
	{ KEY("operations", CK_GROUP, 0),
	    .group = &config_operations_table },
};

static const struct config_table config_root_table = TABLE(config_root_keys);

/* Enums are written through an int. */
_Static_assert(sizeof(enum config_on_goodbye) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_synchronous) == sizeof(int), "enum size");

static int	config_walk(struct config_ctx *, const config_setting_t *,
		    const struct config_table *, const char *, void *);
static int	config_defaults_table(const struct config_table *, void *);
static void	config_free_table(const struct config_table *, void *);

static void *
config_field(void *base, size_t offset)
{
	return (char *)base + offset;
}

static int
config_vfail(struct config_ctx *ctx, const config_setting_t *s,
    const char *fmt, va_list ap)
{
	const char	*file = NULL;
	unsigned int	 line = 0;
	int		 n;

	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	if (file == NULL)
		file = ctx->name;
	if (line > 0)
		n = snprintf(ctx->err, ctx->errlen, "%s:%u: ", file, line);
	else
		n = snprintf(ctx->err, ctx->errlen, "%s: ", file);
	if (n >= 0 && (size_t)n < ctx->errlen)
		vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);
	return -1;
}

/* Report a problem at the line of s (or without a line when s is NULL). */
static int
config_fail(struct config_ctx *ctx, const config_setting_t *s,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	config_vfail(ctx, s, fmt, ap);
	va_end(ap);
	return -1;
}

static int
config_nomem(struct config_ctx *ctx)
{
	snprintf(ctx->err, ctx->errlen, "out of memory");
	return -1;
}

/* Echo user text safely: quoted, one line, bounded. */
static const char *
config_quote(char *buf, size_t len, const char *s)
{
	size_t	i, o = 0;

	buf[o++] = '"';
	for (i = 0; s[i] != '\0' && o + 5 < len; i++) {
		if (i == CONFIG_QUOTE_MAX) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ?
		    '?' : s[i];
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static void
config_keypath(char *buf, size_t len, const char *prefix, const char *name)
{
	if (prefix[0] == '\0')
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%s.%s", prefix, name);
}

static char *
config_join(const char *dir, const char *file)
{
	size_t	 dl = strlen(dir), fl = strlen(file);
	char	*p;

	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	if ((p = malloc(dl + fl + 2)) == NULL)
		return NULL;
	memcpy(p, dir, dl);
	p[dl] = '/';
	memcpy(p + dl + 1, file, fl + 1);
	if (dl == 1 && dir[0] == '/')
		memmove(p + 1, p + 2, fl + 1);
	return p;
}

/*
 * An absolute form of dir, with symlinks left alone: a Kubernetes ConfigMap
 * swaps a symlink on update, and a resolved path would keep pointing at the
 * old, deleted version.
 */
static char *
config_absdir(const char *dir)
{
	char	*cwd, *p;

	if (dir[0] == '/' || (cwd = getcwd(NULL, 0)) == NULL)
		return strdup(dir);
	p = config_join(cwd, dir);
	free(cwd);
	return p;
}

static char *
config_resolve(const struct config_ctx *ctx, const char *value)
{
	if (value[0] == '\0' || value[0] == '/')
		return strdup(value);
	while (value[0] == '.' && value[1] == '/')
		for (value += 2; value[0] == '/'; value++)
			;
	if (strcmp(value, ".") == 0 || value[0] == '\0')
		return strdup(ctx->basedir);
	return config_join(ctx->basedir, value);
}

static void
config_strlist_free(struct config_strlist *l)
{
	size_t	i;

	for (i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

static void
config_argv_free(struct config_command *c)
{
	size_t	i;

	for (i = 0; c->argv != NULL && i < c->argc; i++)
		free(c->argv[i]);
	free(c->argv);
	c->argv = NULL;
	c->argc = 0;
}

static void
config_entries_free(const struct config_key *k, void *base)
{
	const struct config_entries	*e = k->entries;
	char				**arr;
	size_t				*count, i;

	arr = config_field(base, k->offset);
	count = config_field(base, e->count_offset);
	for (i = 0; *arr != NULL && i < *count; i++)
		config_free_table(e->table, *arr + i * e->size);
	free(*arr);
	*arr = NULL;
	*count = 0;
}

static void
config_free_key(const struct config_key *k, void *base)
{
	char	**str;

	switch (k->kind) {
	case CK_GROUP:
		config_free_table(k->group, base);
		break;
	case CK_STRING:
	case CK_PATH:
	case CK_LOGFILE:
	case CK_URL:
	case CK_PROXY:
	case CK_HOSTS:
		str = config_field(base, k->offset);
		free(*str);
		*str = NULL;
		break;
	case CK_URLLIST:
	case CK_KEYLIST:
	case CK_CAPLIST:
	case CK_ENVLIST:
		config_strlist_free(config_field(base, k->offset));
		break;
	case CK_ARGV:
		config_argv_free(base);
		break;
	case CK_ENTRIES:
		config_entries_free(k, base);
		break;
	default:
		break;
	}
}

static void
config_free_table(const struct config_table *t, void *base)
{
	size_t	i;

	for (i = 0; i < t->count; i++)
		config_free_key(&t->keys[i], base);
}

void
config_free(struct egressd_config *cfg)
{
	if (cfg == NULL)
		return;
	config_free_table(&config_root_table, cfg);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

/* A list default is written as lines: "a\nb" gives [ "a", "b" ]. */
static int
config_default_lines(struct config_strlist *l, const char *lines)
{
	const char	*p, *nl;
	size_t		 n = 1, i;

	for (p = lines; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	if ((l->items = calloc(n + 1, sizeof(char *))) == NULL)
		return -1;
	for (i = 0, p = lines; i < n; i++, p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		if ((l->items[i] = strndup(p, (size_t)(nl - p))) == NULL)
			return -1;
		l->count++;
	}
	return 0;
}

static int
config_default_key(const struct config_key *k, void *base)
{
	void	*p = config_field(base, k->offset);

	switch (k->kind) {
	case CK_GROUP:
		return config_defaults_table(k->group, base);
	case CK_INT:
	case CK_ENUM:
		*(int *)p = (int)k->def;
		break;
	case CK_LONG:
		*(long *)p = (long)k->def;
		break;
	case CK_INT64:
		*(int64_t *)p = (int64_t)k->def;
		break;
	case CK_DOUBLE:
		*(double *)p = k->def;
		break;
	case CK_BOOL:
		*(bool *)p = k->def != 0;
		break;
	case CK_STRING:
	case CK_PATH:
	case CK_LOGFILE:
	case CK_URL:
	case CK_PROXY:
	case CK_HOSTS:
		*(char **)p = strdup(k->defstr != NULL ? k->defstr : "");
		if (*(char **)p == NULL)
			return -1;
		break;
	case CK_CAPLIST:
		return config_default_lines(p, k->defstr);
	default:
		break;		/* lists start empty */
	}
	return 0;
}

static int
config_defaults_table(const struct config_table *t, void *base)
{
	size_t	i;

	for (i = 0; i < t->count; i++)
		if (config_default_key(&t->keys[i], base) == -1)
			return -1;
	return 0;
}

int
config_init_defaults(struct egressd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (config_defaults_table(&config_root_table, cfg) == -1) {
		config_free(cfg);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* Describe the valid range of k, e.g. "must be between 1 and 256". */
static int
config_range_fail(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, const char *got)
{
	if (k->flags & CF_MIN_EXCL)
		return config_fail(ctx, s,
		    "%s: must be greater than %.15g and at most %.15g (got %s)",
		    path, k->min, k->max, got);
	return config_fail(ctx, s, "%s: must be between %.15g and %.15g "
	    "(got %s)", path, k->min, k->max, got);
}

static bool
config_in_range(const struct config_key *k, double v)
{
	if (k->flags & CF_MIN_EXCL)
		return v > k->min && v <= k->max;
	return v >= k->min && v <= k->max;
}

static int
config_parse_integer(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	void	*p = config_field(base, k->offset);
	int64_t	 v;
	char	 got[32];

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return config_fail(ctx, s, "%s: expected an integer", path);
	v = config_setting_get_int64(s);
	if (!config_in_range(k, (double)v)) {
		snprintf(got, sizeof(got), "%" PRId64, v);
		return config_range_fail(ctx, s, k, path, got);
	}
	if (k->kind == CK_INT)
		*(int *)p = (int)v;
	else if (k->kind == CK_LONG)
		*(long *)p = (long)v;
	else
		*(int64_t *)p = v;
	return 0;
}

static int
config_parse_double(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	double	v;
	char	got[32];

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		v = (double)config_setting_get_int64(s);
		break;
	default:
		return config_fail(ctx, s, "%s: expected a number", path);
	}
	if (!config_in_range(k, v)) {
		snprintf(got, sizeof(got), "%.15g", v);
		return config_range_fail(ctx, s, k, path, got);
	}
	*(double *)config_field(base, k->offset) = v;
	return 0;
}

static int
config_parse_bool(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_fail(ctx, s, "%s: expected a boolean (true or "
		    "false)", path);
	*(bool *)config_field(base, k->offset) =
	    config_setting_get_bool(s) != 0;
	return 0;
}

static int
config_enum_fail(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, const char *value)
{
	char	list[128], q[CONFIG_QUOTE_BUF];
	size_t	i, n = 0;

	list[0] = '\0';
	for (i = 0; k->names[i] != NULL; i++) {
		n += snprintf(list + n, sizeof(list) - n, "%s\"%s\"",
		    i == 0 ? "" : k->names[i + 1] == NULL ? " or " : ", ",
		    k->names[i]);
		if (n >= sizeof(list))
			break;
	}
	return config_fail(ctx, s, "%s: must be %s (got %s)", path, list,
	    config_quote(q, sizeof(q), value));
}

static int
config_parse_enum(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	const char	*v = config_setting_get_string(s);
	int		 i;

	for (i = 0; k->names[i] != NULL; i++) {
		if (strcmp(v, k->names[i]) == 0) {
			*(int *)config_field(base, k->offset) = i;
			return 0;
		}
	}
	return config_enum_fail(ctx, s, k, path, v);
}

/* Why url is not an http(s) URL with a host, or NULL when it is one. */
static const char *
config_url_problem(const char *url)
{
	static const char *const schemes[] = { "http://", "https://", NULL };
	const char	*host = NULL, *p;
	size_t		 i;

	for (i = 0; schemes[i] != NULL && host == NULL; i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			host = url + strlen(schemes[i]);
	if (host == NULL)
		return "must start with http:// or https://";
	for (p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "must not contain whitespace or control "
			    "characters";
	if (*host == '\0' || *host == '/')
		return "must name a host";
	return NULL;
}

/*
 * Why proxy is not a proxy URL libcurl takes (scheme, optional user:pass@,
 * host, optional port), or NULL.  The scheme is required: without one
 * libcurl guesses http, which hides a typo such as "htp://".
 */
static const char *
config_proxy_problem(const char *proxy)
{
	static const char *const schemes[] = { "http://", "https://",
	    "socks4://", "socks4a://", "socks5://", "socks5h://", NULL };
	const char	*host = NULL, *p;
	size_t		 i;

	for (i = 0; schemes[i] != NULL && host == NULL; i++)
		if (strncmp(proxy, schemes[i], strlen(schemes[i])) == 0)
			host = proxy + strlen(schemes[i]);
	if (host == NULL)
		return "must start with http://, https://, socks4://, "
		    "socks4a://, socks5:// or socks5h://";
	for (p = proxy; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "must not contain whitespace or control "
			    "characters";
	if ((p = strrchr(host, '@')) != NULL)
		host = p + 1;
	if (*host == '\0' || *host == '/' || *host == ':')
		return "must name a host";
	return NULL;
}

/*
 * Why hosts is not a no-proxy list as libcurl reads it: "*", or names,
 * domains and addresses (with an optional /prefix) separated by commas.
 */
static const char *
config_hosts_problem(const char *hosts)
{
	const char	*p;

	for (p = hosts; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr(".-_:,*/[] ", *p) ==
		    NULL)
			return "must be \"*\" or host names, domains and "
			    "addresses separated by commas";
	return NULL;
}

static int
config_store_string(struct config_ctx *ctx, void *base,
    const struct config_key *k, char *value)
{
	char	**dst = config_field(base, k->offset);

	if (value == NULL)
		return config_nomem(ctx);
	free(*dst);
	*dst = value;
	return 0;
}

static int
config_parse_string(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	const char	*v, *why;
	char		*url, q[CONFIG_QUOTE_BUF];
	size_t		 len;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_fail(ctx, s, "%s: expected a string", path);
	v = config_setting_get_string(s);
	if ((k->flags & CF_NONEMPTY) && v[0] == '\0')
		return config_fail(ctx, s, "%s: must not be empty", path);
	switch (k->kind) {
	case CK_ENUM:
		return config_parse_enum(ctx, s, k, path, base);
	case CK_PATH:
		return config_store_string(ctx, base, k,
		    config_resolve(ctx, v));
	case CK_LOGFILE:
		if (strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0)
			return config_store_string(ctx, base, k, strdup(v));
		return config_store_string(ctx, base, k,
		    config_resolve(ctx, v));
	case CK_PROXY:
	case CK_HOSTS:
		why = k->kind == CK_PROXY ? config_proxy_problem(v) :
		    config_hosts_problem(v);
		if (v[0] != '\0' && why != NULL)
			return config_fail(ctx, s, "%s: %s (got %s)", path,
			    why, config_quote(q, sizeof(q), v));
		return config_store_string(ctx, base, k, strdup(v));
	case CK_URL:
		if (v[0] != '\0' && (why = config_url_problem(v)) != NULL)
			return config_fail(ctx, s, "%s: %s (got %s)", path,
			    why, config_quote(q, sizeof(q), v));
		if ((url = strdup(v)) != NULL &&
		    (len = strlen(url)) > 0 && url[len - 1] == '/')
			url[len - 1] = '\0';
		return config_store_string(ctx, base, k, url);
	default:
		return config_store_string(ctx, base, k, strdup(v));
	}
}

/* Whether dotted names a leaf key of the table, e.g. "worker.max_inflight". */
static bool
config_key_known(const char *dotted)
{
	const struct config_table	*t = &config_root_table;
	const struct config_key		*k;
	const char			*end;
	size_t				 i, len;

	for (;;) {
		end = strchr(dotted, '.');
		len = end != NULL ? (size_t)(end - dotted) : strlen(dotted);
		for (i = 0, k = NULL; i < t->count && k == NULL; i++)
			if (strlen(t->keys[i].name) == len &&
			    strncmp(t->keys[i].name, dotted, len) == 0)
				k = &t->keys[i];
		if (k == NULL)
			return false;
		if (end == NULL)
			return k->kind != CK_GROUP;
		if (k->kind != CK_GROUP)
			return false;
		t = k->group;
		dotted = end + 1;
	}
}

/*
 * "RESOURCE RIGHTS": a resource (exact, or a prefix ending in "*") and a
 * comma list of rights, one space between.
 */
static const char *
config_cap_problem(const char *v)
{
	static const char *const rights[] = { "read", "write", "delete",
	    "execute", "request", "materialize", "link", "diff", NULL };
	const char	*sp = strchr(v, ' '), *r, *end;
	size_t		 i, len;

	if (sp == NULL || sp == v || sp[1] == '\0' ||
	    strchr(sp + 1, ' ') != NULL)
		return "expected \"RESOURCE RIGHTS\", e.g. "
		    "\"storage:reports/* read,write\"";
	if (strchr(v, ':') == NULL || strchr(v, ':') > sp)
		return "resource must be KIND:NAME, e.g. storage:reports/*";
	for (r = sp + 1; *r != '\0'; r = *end ? end + 1 : end) {
		end = strchr(r, ',');
		if (end == NULL)
			end = r + strlen(r);
		len = (size_t)(end - r);
		for (i = 0; rights[i] != NULL; i++)
			if (strlen(rights[i]) == len &&
			    strncmp(rights[i], r, len) == 0)
				break;
		if (rights[i] == NULL)
			return "unknown right (read, write, delete, execute, "
			    "request, materialize, link, diff)";
	}
	return NULL;
}

/* A portable variable name: [A-Za-z_][A-Za-z0-9_]*. */
static bool
config_env_name(const char *v)
{
	size_t	i;

	for (i = 0; v[i] != '\0'; i++)
		if (!(v[i] == '_' || (v[i] >= 'A' && v[i] <= 'Z') ||
		    (v[i] >= 'a' && v[i] <= 'z') ||
		    (i > 0 && v[i] >= '0' && v[i] <= '9')))
			return false;
	return i > 0;
}

static int
config_check_item(struct config_ctx *ctx, const config_setting_t *e,
    const struct config_key *k, const char *path, int i)
{
	const char	*v = config_setting_get_string(e);
	const char	*why;
	char		 q[CONFIG_QUOTE_BUF];

	if (k->kind == CK_URLLIST && (why = config_url_problem(v)) != NULL)
		return config_fail(ctx, e, "%s[%d]: %s (got %s)", path, i,
		    why, config_quote(q, sizeof(q), v));
	if (k->kind == CK_KEYLIST && !config_key_known(v))
		return config_fail(ctx, e, "%s[%d]: not a configuration key "
		    "(got %s)", path, i, config_quote(q, sizeof(q), v));
	if (k->kind == CK_CAPLIST && (why = config_cap_problem(v)) != NULL)
		return config_fail(ctx, e, "%s[%d]: %s (got %s)", path, i,
		    why, config_quote(q, sizeof(q), v));
	if (k->kind == CK_ENVLIST && !config_env_name(v))
		return config_fail(ctx, e, "%s[%d]: not an environment "
		    "variable name (got %s)", path, i,
		    config_quote(q, sizeof(q), v));
	return 0;
}

/* Type-check an array or list of strings; returns its length or -1. */
static int
config_string_elems(struct config_ctx *ctx, const config_setting_t *s,
    const char *path)
{
	config_setting_t	*e;
	int			 i, n;

	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return config_fail(ctx, s, "%s: expected an array of strings",
		    path);
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return config_fail(ctx, e, "%s[%d]: expected a string",
			    path, i);
	}
	return n;
}

/* A NULL-terminated copy of the strings of s. */
static char **
config_copy_strings(const config_setting_t *s, int n)
{
	char	**v;
	int	  i;

	if ((v = calloc((size_t)n + 1, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		v[i] = strdup(config_setting_get_string_elem(s, i));
		if (v[i] == NULL) {
			while (i-- > 0)
				free(v[i]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static int
config_parse_strlist(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	struct config_strlist	*l = config_field(base, k->offset);
	char			**items;
	int			  i, n;

	if ((n = config_string_elems(ctx, s, path)) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (config_check_item(ctx, config_setting_get_elem(s, i), k,
		    path, i) == -1)
			return -1;
	if ((items = config_copy_strings(s, n)) == NULL)
		return config_nomem(ctx);
	config_strlist_free(l);
	l->items = items;
	l->count = (size_t)n;
	return 0;
}

static int
config_parse_argv(struct config_ctx *ctx, const config_setting_t *s,
    const char *path, struct config_command *cmd)
{
	const char	*argv0;
	char		**argv, q[CONFIG_QUOTE_BUF];
	int		  n;

	if ((n = config_string_elems(ctx, s, path)) == -1)
		return -1;
	if (n == 0)
		return config_fail(ctx, s, "%s: must not be empty", path);
	argv0 = config_setting_get_string_elem(s, 0);
	if (argv0[0] != '/')
		return config_fail(ctx, config_setting_get_elem(s, 0),
		    "%s[0]: must be an absolute path (got %s)", path,
		    config_quote(q, sizeof(q), argv0));
	if ((argv = config_copy_strings(s, n)) == NULL)
		return config_nomem(ctx);
	config_argv_free(cmd);
	cmd->argv = argv;
	cmd->argc = (size_t)n;
	return 0;
}

static const char *
config_entry_name(const struct config_entries *e, void *entry)
{
	return *(char **)config_field(entry, e->table->keys[0].offset);
}

/* Entry names identify capabilities, so they must be unique. */
static int
config_check_unique(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_entries *e, char *arr, int i, const char *path)
{
	const char	*key = e->table->keys[0].name;
	const char	*name = config_entry_name(e, arr + i * e->size);
	char		 q[CONFIG_QUOTE_BUF];
	int		 j;

	for (j = 0; j < i; j++)
		if (strcmp(config_entry_name(e, arr + j * e->size), name) == 0)
			return config_fail(ctx,
			    config_setting_get_member(s, key),
			    "%s.%s: duplicate %s name %s", path, key, e->what,
			    config_quote(q, sizeof(q), name));
	return 0;
}

static int
config_parse_entries(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	const struct config_entries	*e = k->entries;
	const config_setting_t		*es;
	char				*arr, epath[CONFIG_PATH_MAX];
	int				 i, n;

	if (!config_setting_is_list(s) && !(config_setting_is_array(s) &&
	    config_setting_length(s) == 0))
		return config_fail(ctx, s, "%s: expected a list of groups",
		    path);
	config_entries_free(k, base);
	n = config_setting_length(s);
	if (n == 0)
		return 0;
	if ((arr = calloc((size_t)n, e->size)) == NULL)
		return config_nomem(ctx);
	*(char **)config_field(base, k->offset) = arr;
	*(size_t *)config_field(base, e->count_offset) = (size_t)n;
	for (i = 0; i < n; i++) {
		es = config_setting_get_elem(s, i);
		if (snprintf(epath, sizeof(epath), "%s[%d]", path, i) >=
		    (int)sizeof(epath))
			return config_fail(ctx, es, "%s: key path too long",
			    path);
		if (!config_setting_is_group(es))
			return config_fail(ctx, es, "%s: expected a group",
			    epath);
		if (config_defaults_table(e->table, arr + i * e->size) == -1)
			return config_nomem(ctx);
		if (config_walk(ctx, es, e->table, epath,
		    arr + i * e->size) == -1 ||
		    config_check_unique(ctx, es, e, arr, i, epath) == -1)
			return -1;
	}
	return 0;
}

static int
config_parse_key(struct config_ctx *ctx, const config_setting_t *s,
    const struct config_key *k, const char *path, void *base)
{
	switch (k->kind) {
	case CK_GROUP:
		if (!config_setting_is_group(s))
			return config_fail(ctx, s, "%s: expected a group",
			    path);
		return config_walk(ctx, s, k->group, path, base);
	case CK_INT:
	case CK_LONG:
	case CK_INT64:
		return config_parse_integer(ctx, s, k, path, base);
	case CK_DOUBLE:
		return config_parse_double(ctx, s, k, path, base);
	case CK_BOOL:
		return config_parse_bool(ctx, s, k, path, base);
	case CK_URLLIST:
	case CK_KEYLIST:
	case CK_CAPLIST:
	case CK_ENVLIST:
		return config_parse_strlist(ctx, s, k, path, base);
	case CK_ARGV:
		return config_parse_argv(ctx, s, path, base);
	case CK_ENTRIES:
		return config_parse_entries(ctx, s, k, path, base);
	default:
		return config_parse_string(ctx, s, k, path, base);
	}
}

static const struct config_key *
config_find_key(const struct config_table *t, const char *name)
{
	size_t	i;

	for (i = 0; i < t->count; i++)
		if (strcmp(t->keys[i].name, name) == 0)
			return &t->keys[i];
	return NULL;
}

static int
config_walk(struct config_ctx *ctx, const config_setting_t *group,
    const struct config_table *t, const char *prefix, void *base)
{
	const struct config_key	*k;
	config_setting_t	*s;
	char			 path[CONFIG_PATH_MAX];
	size_t			 i;
	int			 n;

	for (n = 0; n < config_setting_length(group); n++) {
		s = config_setting_get_elem(group, n);
		config_keypath(path, sizeof(path), prefix,
		    config_setting_name(s));
		if ((k = config_find_key(t, config_setting_name(s))) == NULL)
			return config_fail(ctx, s, "unknown key '%s'", path);
		if (config_parse_key(ctx, s, k, path, base) == -1)
			return -1;
	}
	for (i = 0; i < t->count; i++)
		if ((t->keys[i].flags & CF_REQUIRED) &&
		    config_setting_get_member(group, t->keys[i].name) == NULL)
			return config_fail(ctx, group, "%s: missing key '%s'",
			    prefix, t->keys[i].name);
	return 0;
}

/* The later of two settings, so a cross-key error points at the last word. */
static const config_setting_t *
config_later(const config_t *lc, const char *a, const char *b)
{
	const config_setting_t	*sa = config_lookup(lc, a);
	const config_setting_t	*sb = config_lookup(lc, b);

	if (sa == NULL)
		return sb;
	if (sb == NULL)
		return sa;
	return config_setting_source_line(sb) > config_setting_source_line(sa) ?
	    sb : sa;
}

/*
 * A limit on something that blocks a worker's loop (a sqlite query, a wait
 * on a locked database) must end before the master takes the silent worker
 * for hung: the last heartbeat may be heartbeat_interval old when the wait
 * starts.  Handlers that wait on the loop (http, command) keep
 * heartbeating and need no such bound.
 */
static int
config_check_blocking(struct config_ctx *ctx, const config_t *lc,
    const struct egressd_config *cfg, const char *key, double limit)
{
	double room = cfg->server.worker_timeout -
	    cfg->worker.heartbeat_interval;

	if (limit < room)
		return 0;
	return config_fail(ctx, config_later(lc, key, "server.worker_timeout"),
	    "%s: must be less than server.worker_timeout minus "
	    "worker.heartbeat_interval (%.15g >= %.15g - %.15g): it blocks a "
	    "worker, which would be killed as hung instead of timing out",
	    key, limit, cfg->server.worker_timeout,
	    cfg->worker.heartbeat_interval);
}

/*
 * health.stale_after: a verdict on contact needs at least one poll in the
 * window, or an idle agent that is fine would flap to degraded.  Unset (0)
 * it becomes CONFIG_STALE_POLLS polls, and at least CONFIG_STALE_MIN s.
 */
static int
config_resolve_stale(struct config_ctx *ctx, const config_t *lc,
    struct egressd_config *cfg)
{
	double poll = cfg->orchestrator.poll_interval;

	if (cfg->health.stale_after == 0) {
		cfg->health.stale_after = CONFIG_STALE_POLLS * poll;
		if (cfg->health.stale_after < CONFIG_STALE_MIN)
			cfg->health.stale_after = CONFIG_STALE_MIN;
		return 0;
	}
	if (cfg->health.stale_after > poll)
		return 0;
	return config_fail(ctx, config_later(lc, "health.stale_after",
	    "orchestrator.poll_interval"), "health.stale_after: must be "
	    "greater than orchestrator.poll_interval (%.15g <= %.15g), or 0 "
	    "for %.15g polls (at least %.15gs)", cfg->health.stale_after, poll,
	    CONFIG_STALE_POLLS, CONFIG_STALE_MIN);
}

static int
config_check_cross(struct config_ctx *ctx, const config_t *lc,
    struct egressd_config *cfg)
{
	size_t	len;

	if (cfg->server.worker_timeout <= cfg->worker.heartbeat_interval)
		return config_fail(ctx, config_later(lc,
		    "server.worker_timeout", "worker.heartbeat_interval"),
		    "server.worker_timeout: must be greater than "
		    "worker.heartbeat_interval (%.15g <= %.15g)",
		    cfg->server.worker_timeout, cfg->worker.heartbeat_interval);
	if (config_check_blocking(ctx, lc, cfg, "store.busy_timeout",
	    cfg->store.busy_timeout) == -1)
		return -1;
	if (config_resolve_stale(ctx, lc, cfg) == -1)
		return -1;
	if (cfg->operations.sqlite.enabled && config_check_blocking(ctx, lc,
	    cfg, "operations.sqlite.timeout",
	    cfg->operations.sqlite.timeout) == -1)
		return -1;
	len = strlen(cfg->server.control_socket);
	if (len >= CONFIG_SUN_PATH_MAX)
		return config_fail(ctx, config_lookup(lc,
		    "server.control_socket"), "server.control_socket: path "
		    "must be shorter than %zu bytes (got %zu)",
		    CONFIG_SUN_PATH_MAX, len);
	if (cfg->operations.storage.enabled &&
	    cfg->operations.storage.root[0] == '\0')
		return config_fail(ctx, config_later(lc,
		    "operations.storage.enabled", "operations.storage.root"),
		    "operations.storage.root: must be set when "
		    "operations.storage.enabled is true");
	return 0;
}

/* Defaults, the name for messages and the directory for relative paths. */
static int
config_begin(struct egressd_config *cfg, struct config_ctx *ctx,
    const char *name, const char *dir, char *err, size_t errlen)
{
	ctx->name = name;
	ctx->err = err;
	ctx->errlen = errlen;
	ctx->basedir = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (config_init_defaults(cfg) == -1)
		return config_nomem(ctx);
	if ((ctx->basedir = config_absdir(dir)) == NULL)
		return config_nomem(ctx);
	return 0;
}

static int
config_syntax_fail(struct config_ctx *ctx, const config_t *lc)
{
	const char	*file = config_error_file(lc);

	snprintf(ctx->err, ctx->errlen, "%s:%d: syntax error: %s",
	    file != NULL ? file : ctx->name, config_error_line(lc),
	    config_error_text(lc));
	return -1;
}

/* Parse already done by the caller; validate and finish. */
static int
config_finish(struct egressd_config *cfg, struct config_ctx *ctx,
    const config_t *lc)
{
	if (config_walk(ctx, config_root_setting(lc), &config_root_table, "",
	    cfg) == -1)
		return -1;
	return config_check_cross(ctx, lc, cfg);
}

int
config_load_string(struct egressd_config *cfg, const char *text,
    const char *name, const char *basedir, char *err, size_t errlen)
{
	struct config_ctx	ctx;
	config_t		lc;
	int			rc = -1;

	if (name == NULL)
		name = "<string>";
	config_init(&lc);
	if (config_begin(cfg, &ctx, name, basedir != NULL ? basedir : ".",
	    err, errlen) == -1)
		goto out;
	if ((cfg->path = strdup(name)) == NULL) {
		config_nomem(&ctx);
		goto out;
	}
	config_set_include_dir(&lc, ctx.basedir);
	if (!config_read_string(&lc, text))
		config_syntax_fail(&ctx, &lc);
	else
		rc = config_finish(cfg, &ctx, &lc);
out:
	config_destroy(&lc);
	free(ctx.basedir);
	if (rc == -1)
		config_free(cfg);
	return rc;
}

/* libconfig reports every open or read failure alike; say which it was. */
static int
config_check_readable(const char *path, char *err, size_t errlen)
{
	struct stat	st;
	int		fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	if (fstat(fd, &st) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	close(fd);
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
	return -1;
}

static char *
config_dirname(const char *path)
{
	const char	*slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int
config_load_file(struct egressd_config *cfg, const char *path, char *err,
    size_t errlen)
{
	struct config_ctx	 ctx = { .name = path };
	config_t		 lc;
	const char		*base;
	char			*dir;
	int			 rc = -1;

	memset(cfg, 0, sizeof(*cfg));
	if (config_check_readable(path, err, errlen) == -1)
		return -1;
	if ((dir = config_dirname(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	config_init(&lc);
	if (config_begin(cfg, &ctx, path, dir, err, errlen) == -1)
		goto out;
	base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	if ((cfg->path = config_join(ctx.basedir, base)) == NULL) {
		config_nomem(&ctx);
		goto out;
	}
	config_set_include_dir(&lc, ctx.basedir);
	errno = 0;
	if (config_read_file(&lc, path))
		rc = config_finish(cfg, &ctx, &lc);
	else if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    strerror(errno != 0 ? errno : EIO));
	else
		config_syntax_fail(&ctx, &lc);
out:
	config_destroy(&lc);
	free(ctx.basedir);
	free(dir);
	if (rc == -1)
		config_free(cfg);
	return rc;
}

const char *
config_log_level_name(enum config_log_level level)
{
	if ((unsigned int)level >= sizeof(config_level_names) /
	    sizeof(config_level_names[0]) - 1)
		return "unknown";
	return config_level_names[level];
}
