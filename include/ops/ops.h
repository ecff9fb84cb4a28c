/*
 * ops: operation handlers, looked up by the operation's path.
 *
 * A handler runs one operation under its agent process and turns the body
 * into a result object; every failure is a result of the form {"error",
 * "error_type"} (DESIGN section 5), never a crash.  A handler either
 * finishes at once (OPS_DONE, *result set) or returns OPS_PENDING and later
 * calls ops_finish() exactly once, from the worker's loop; a pending handler
 * sets run->cancel, which must stop its work at once and free its state
 * (no ops_finish afterwards).
 *
 * Handlers see the worker only through struct op_context and the host's
 * callbacks (DESIGN section 7: handlers never include the process manager):
 * ops_check() asks the host whether the agent process may touch a resource,
 * and counts the access as a tool call; a refusal is already audited and
 * the handler just returns the error result it is given.
 */
#ifndef EGRESSD_OPS_H
#define EGRESSD_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cJSON;
struct evloop;
struct httpc;
struct egressd_config;
struct config_strlist;
struct op_run;

enum ops_status { OPS_DONE, OPS_PENDING };

typedef void (*op_done_cb)(struct op_run *run, struct cJSON *result);

/* What the worker offers handlers; any callback may be NULL in tests. */
struct op_host {
	/*
	 * May run's process use right on resource?  0 yes; -1 no, with
	 * *error set to the error result to return (capability_denied,
	 * limit_exceeded or internal).
	 */
	int (*check)(struct op_run *run, const char *resource,
	    const char *right, struct cJSON **error);
	/*
	 * Start a child agent process (fork mode by name) running path with
	 * body; its result reaches done, never from inside this call, and the
	 * child run is freed when done returns.  NULL with *error set when
	 * refused (budget, capabilities, bad mode).
	 */
	struct op_run *(*start_child)(struct op_run *parent, const char *mode,
	    const char *path, const struct cJSON *body, op_done_cb done,
	    void *arg, struct cJSON **error);
	/* End a child still running: its process is killed with why. */
	void (*cancel_child)(struct op_run *child, const char *why);
	/* Ask the master for a rolling restart (upgrade). */
	int (*request_reload)(struct op_run *run);
	void *arg;
};

struct op_context {
	const char *instance_id;
	pid_t pid;
	int slot;
	int generation;
	double started;		/* monotonic time the worker booted */
	unsigned long inflight, done, failed;
	const char *db_path;
	const struct egressd_config *cfg;
	struct evloop *loop;	/* for handlers that wait on descriptors */
	struct httpc *http;	/* curl multi on loop; NULL without one */
	const struct op_host *host;
};

/* One operation running under one agent process. */
struct op_run {
	const struct op_context *ctx;
	int64_t agent_pid;	/* its agent process; 0 = none (tests) */
	const char *path;
	/* Set by a pending handler. */
	void (*cancel)(struct op_run *run);
	void *state;
	/* Set by the caller. */
	op_done_cb done;
	void *arg;
	int killed;		/* by the host: its process was killed */
};

typedef enum ops_status (*op_handler)(struct op_run *run,
    const struct cJSON *body, struct cJSON **result);

/* A pending handler's completion: calls run->done(run, result). */
void ops_finish(struct op_run *run, struct cJSON *result);
/* Cancel a pending run (no completion follows); no-op when none. */
void ops_cancel(struct op_run *run);

/* ctx->host->check, or allowed when there is no host. */
int ops_check(struct op_run *run, const char *resource, const char *right,
    struct cJSON **error);

/* Bytes of an error message, its NUL included; longer ones are cut. */
#define OPS_ERROR_MAX 512

/*
 * {"error": message, "error_type": type}; NULL only when out of memory.
 * The message is valid UTF-8 whatever the arguments hold: it is cut at
 * OPS_ERROR_MAX - 1 bytes without splitting a character, a character a
 * "%.Ns" precision split is left out, and other invalid bytes become
 * U+FFFD.
 */
struct cJSON *ops_error(const char *type, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* write(2) all of len bytes, retrying on EINTR; 0 or -1 (errno set). */
int ops_write_all(int fd, const void *data, size_t len);

/* True when result is an error result. */
int ops_is_error(const struct cJSON *result);

/*
 * Whether a result printed in text_len bytes fits a result body of at most
 * max_body bytes ({"result":TEXT}, orchestrator.max_body_bytes).  One that
 * does not is never sent: ops_result_too_large is the limit_exceeded error
 * result that takes its place (NULL only when out of memory).
 */
int ops_result_fits(size_t text_len, long long max_body);
struct cJSON *ops_result_too_large(size_t text_len, long long max_body);

/* Handlers (src/ops/NAME.c). */
enum ops_status op_health(struct op_run *run, const struct cJSON *body,
    struct cJSON **result);
enum ops_status op_storage(struct op_run *run, const struct cJSON *body,
    struct cJSON **result);
enum ops_status op_http(struct op_run *run, const struct cJSON *body,
    struct cJSON **result);
enum ops_status op_command(struct op_run *run, const struct cJSON *body,
    struct cJSON **result);
enum ops_status op_sqlite(struct op_run *run, const struct cJSON *body,
    struct cJSON **result);
enum ops_status op_batch(struct op_run *run, const struct cJSON *body,
    struct cJSON **result);
enum ops_status op_upgrade(struct op_run *run, const struct cJSON *body,
    struct cJSON **result);

#endif
