/*
 * runner: a worker's operations as agent processes.
 *
 * For each accepted operation the runner spawns an agent process (image =
 * the operation path, goal = its body, capabilities = the handler's
 * configured grants), starts the handler, enforces the runtime budget (a
 * timer of the worker's loop per running operation), and ends the process
 * — exit with the result, or kill past the budget or at shutdown — writing
 * the result to the outbox in that same transaction.
 * It is the op_host handlers see: capability checks through the process
 * manager, child processes for batch (fork, wait, merge), reload requests.
 *
 * When the database fails (locked past busy_timeout, full, read-only) the
 * operation still ends with a result the poller delivers from memory: a
 * spawn failure becomes an "internal" error result, an exit that cannot be
 * written is logged and retried, never lost silently.
 */
#ifndef EGRESSD_RUNNER_H
#define EGRESSD_RUNNER_H

#include "core/evloop.h"
#include "ops/ops.h"
#include "procmgr/procmgr.h"

struct runner;
struct runner_op;
struct cJSON;

/* Called once per root operation with its result (owned by the callee). */
typedef void (*runner_done_cb)(struct runner_op *op, struct cJSON *result);

struct runner_op {
	struct op_run run;
	struct runner *r;
	char *operation_id;		/* roots only */
	agent_pid pid;			/* 0 = no process (database down) */
	double deadline;		/* monotonic end of its runtime */
	struct evloop_timer timer;	/* at deadline, while running */
	int running;			/* the handler has not finished */
	int stored;			/* its result is in the outbox */
	char *result_text;		/* roots: the result as recorded */
	runner_done_cb on_done;		/* roots */
	void *arg;
	/* Children of a batch. */
	struct runner_op *parent;
	op_done_cb child_done;
	void *child_arg;
	struct runner_op *prev, *next;	/* running, or queued children */
};

/*
 * ctx is the worker's (its host is set to the runner's); reload, when not
 * NULL, asks the master for a rolling restart.
 */
struct runner *runner_new(struct op_context *ctx, struct store *st,
    int (*reload)(void *arg), void *arg);
void runner_free(struct runner *r);

/*
 * Spawn the agent process of an accepted operation; goal is its body as
 * sent (may be a size-exceeded stub).  Returns 0, or -1 when the database
 * failed: the operation then has no process and runner_start answers it
 * with an error result.
 */
int runner_spawn(struct runner *r, struct runner_op *op,
    const char *operation_id, const char *path, const struct cJSON *goal);
/*
 * The same when the database (the runner's store) just refused the
 * transaction the process would be written in: op has no process, and
 * runner_start answers it with an error result, without a second wait
 * for the lock.  The log line names SQLite's error.
 */
void runner_no_process(struct runner *r, struct runner_op *op,
    const char *operation_id, const char *path);
/*
 * Run the handler; op->on_done follows, possibly before this returns.  path
 * must be the one spawned with (the image and capabilities are its):
 * another is refused with an invalid_request error result.
 */
void runner_start(struct runner *r, struct runner_op *op, const char *path,
    const struct cJSON *body);
/* End an operation that never ran (bad body, failed download). */
void runner_fail(struct runner *r, struct runner_op *op,
    struct cJSON *error);
/*
 * Stop a running handler at shutdown: its process is killed and the error
 * result stored; op->on_done is not called.  Returns op->stored.
 */
int runner_abort(struct runner *r, struct runner_op *op, const char *why);
/*
 * The records of pid's spawn were never committed (a batch that failed,
 * poller.c): no exit is written again for it, since SQLite may already
 * have given the same pid to another process.
 */
void runner_forget_pid(struct runner *r, agent_pid pid);
/* Forget op (after on_done or abort): frees what the runner holds. */
void runner_release(struct runner_op *op);

/* Error result for a process manager failure. */
struct cJSON *runner_pm_error(const struct procmgr *pm);

#endif
