/*
 * config: the egressd configuration file (libconfig syntax).
 *
 * Owns the configuration structure, its defaults, loading from a file or a
 * string, and validation of every key: unknown keys, wrong types and
 * out-of-range values are errors naming file, line and key.  Relative paths
 * are resolved against the directory of the configuration file.
 */
#ifndef EGRESSD_CONFIG_H
#define EGRESSD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/egressd/egressd.conf"
#define CONFIG_ERR_MAX 512
#define CONFIG_WORKERS_MAX 256	/* server.workers, -w, scale and TTIN */
#define CONFIG_STORE_FILES_MAX 8	/* store.files: database files */
#define CONFIG_POLLS_MAX	16	/* worker.parallel_polls */
/* health.stale_after = 0: this many poll intervals, and at least ... */
#define CONFIG_STALE_POLLS 3.0
#define CONFIG_STALE_MIN 30.0	/* ... seconds */

enum config_on_goodbye { ON_GOODBYE_RESTART, ON_GOODBYE_EXIT };
enum config_log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARNING, LOGL_ERROR };
enum config_log_format { LOGF_TEXT, LOGF_JSON };
enum config_synchronous { SYNC_NORMAL, SYNC_FULL };

struct config_command {
	char *name;
	char **argv;		/* NULL-terminated */
	size_t argc;
	double timeout;
};

struct config_sqlite_db {
	char *name;
	char *path;
};

struct config_strlist {
	char **items;
	size_t count;
};

struct egressd_config {
	char *path;			/* file it came from, or the name given */

	struct {
		int workers;
		char *pidfile;
		char *state_dir;
		char *control_socket;
		char *user;		/* "" = do not change user */
		char *group;		/* "" = primary group of user */
		bool daemonize;
		bool core_dumps;	/* read at start only */
		double graceful_timeout;
		double worker_timeout;
		double min_uptime;
		enum config_on_goodbye on_goodbye;
		long max_ops_per_worker;
		long max_ops_jitter;
	} server;

	struct {
		char *file;		/* "stderr", "syslog" or a path */
		enum config_log_level level;
		enum config_log_format format;
	} log;

	struct {
		char *url;		/* "" = run without an orchestrator */
		char *token_id;
		char *token_file;
		double poll_interval;
		bool events;
		double events_timeout;
		double connect_timeout;
		bool tls_verify;
		char *ca_file;
		char *proxy;		/* "" = libcurl's environment */
		char *no_proxy;		/* "" = libcurl's environment */
		int64_t max_event_bytes;
		int64_t max_body_bytes;
	} orchestrator;

	struct {
		int max_inflight;
		int parallel_polls;	/* at most CONFIG_POLLS_MAX */
		double heartbeat_interval;
		double backpressure_heartbeat;
	} worker;

	struct {
		enum config_synchronous synchronous;
		double busy_timeout;
		double retention_days;
		int64_t max_rows;
		int64_t max_bytes;	/* database files and WALs */
		int files;		/* workers spread over this many; */
					/*   0: store_files_resolve */
	} store;

	struct {
		double stale_after;	/* resolved: never 0 after loading */
		double outbox_max_age;	/* 0 = the outbox is not judged */
	} health;

	struct {
		char *textfile;		/* "" = no textfile */
		double textfile_interval;
	} metrics;

	struct {
		int max_tool_calls;
		int max_child_processes;
		double max_runtime_seconds;
		int fork_budget_divisor;
		int fork_min_tool_calls;
		int fork_min_child_processes;
	} process;

	struct {
		struct {
			bool enabled;
			char *root;
			bool no_symlinks;
			int64_t max_bytes;
			struct config_strlist capabilities;
		} storage;
		struct {
			bool enabled;
			struct config_strlist allow;
			int64_t max_bytes;
			double timeout;
			struct config_strlist capabilities;
			bool forward_auth;	/* Authorization, Cookie */
			int max_redirects;	/* 0 = return the 3xx */
			char *proxy;		/* "" = the environment's */
			char *no_proxy;		/* "" = the environment's */
		} http;
		struct {
			bool enabled;
			struct config_command *commands;
			size_t count;
			struct config_strlist capabilities;
			struct config_strlist environment; /* names passed */
			int64_t max_output;	/* bytes kept per stream */
		} command;
		struct {
			bool enabled;
			struct config_sqlite_db *databases;
			size_t count;
			int64_t max_rows;
			double timeout;
			struct config_strlist capabilities;
		} sqlite;
		struct {
			bool enabled;
			int max_children;
			struct config_strlist capabilities;
		} batch;
		struct {
			bool enabled;
			struct config_strlist allow_keys;
			struct config_strlist capabilities;
		} upgrade;
	} operations;
};

/* Fill every key with its documented default (all strings heap-allocated). */
int config_init_defaults(struct egressd_config *cfg);

/*
 * Load and validate a file.  On error returns -1 and writes one line such as
 * "/etc/egressd/egressd.conf:12: server.workers: must be between 1 and 256"
 * into err; cfg is then left freed (no need to call config_free).
 */
int config_load_file(struct egressd_config *cfg, const char *path,
    char *err, size_t errlen);

/*
 * The same from a string; name is used in messages and basedir resolves
 * relative paths.  For tests and for `egressd -t` on stdin.
 */
int config_load_string(struct egressd_config *cfg, const char *text,
    const char *name, const char *basedir, char *err, size_t errlen);

void config_free(struct egressd_config *cfg);

const char *config_log_level_name(enum config_log_level level);

#endif
