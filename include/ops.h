/*
 * ops: operation handlers, looked up by the operation's path.
 *
 * A handler turns the operation body into a result object; every failure is
 * a result of the form {"error", "error_type"} (DESIGN section 5), never a
 * crash.  Handlers see the worker only through struct op_context.
 */
#ifndef EGRESSD_OPS_H
#define EGRESSD_OPS_H

#include <sys/types.h>

struct cJSON;

struct op_context {
	const char *instance_id;
	pid_t pid;
	int slot;
	int generation;
	double started;		/* monotonic time the worker booted */
	unsigned long inflight, done, failed;
	const char *db_path;
};

typedef struct cJSON *(*op_handler)(const struct op_context *ctx,
    const struct cJSON *body);

/* Run the handler for path (body may be NULL); always returns a result. */
struct cJSON *ops_run(const struct op_context *ctx, const char *path,
    const struct cJSON *body);

/* {"error": message, "error_type": type}; NULL only when out of memory. */
struct cJSON *ops_error(const char *type, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when result is an error result. */
int ops_is_error(const struct cJSON *result);

/* Handlers. */
struct cJSON *op_health(const struct op_context *ctx,
    const struct cJSON *body);

#endif
