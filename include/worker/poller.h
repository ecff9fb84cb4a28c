/*
 * poller: a worker's conversation with the orchestrator.
 *
 * Fetches operations (GET at start, on wake-ups, after each finished
 * operation while there is capacity, every poll_interval; after a GET that
 * brought one, up to worker.parallel_polls at once, each keeping a slot),
 * accepts pushed and piggybacked ones, downloads the full body of
 * size-exceeded ones, runs them (those that finish at once, accepted in
 * one pass of the loop, in one transaction), and delivers each result (3
 * tries: 1 s, then 2 s).  A result is written to the outbox before its
 * first try and deleted when acknowledged; one still undelivered waits
 * there, and every poll_interval a sweep sends again what this worker, or
 * a worker now gone, left behind.  At max_inflight it fetches nothing and
 * POSTs heartbeats every backpressure_heartbeat seconds instead.  No more
 * than max_inflight operations ever run: one that arrives (pushed,
 * piggybacked, or a GET's answer racing a push) while all slots are taken
 * waits in a FIFO of at most max_inflight and starts when a slot frees;
 * past that bound it is refused with an error line.  Draining stops
 * fetching, lets accepted work finish, then POSTs the shutdown notice
 * once.  A result sent again that the orchestrator may already have (see
 * poller_count_resend) is counted and logged.  Every operation ID accepted
 * is counted in flight until its result is acknowledged or given up
 * on.  Each operation that runs is counted in its metrics (path, outcome,
 * seconds from accept to result), which the worker reports to the
 * master.  Polls, retries, sweeps and heartbeats are timers of the loop in
 * ctx.
 */
#ifndef EGRESSD_POLLER_H
#define EGRESSD_POLLER_H

#include <stddef.h>

#include "core/orch.h"
#include "ops/ops.h"

struct poller;

struct poller_hooks {
	void (*first_poll)(void *arg);	/* the orchestrator answered once */
	void *arg;
	/*
	 * The first GET failed before any answer (kind: httpc_failure_name,
	 * error: httpc_describe); called once.
	 */
	void (*first_failure)(void *arg, const char *kind, const char *error);
	/*
	 * A delivery counter changed: a result is about to be sent again
	 * (the count must reach the master before the re-send can), or one
	 * became a dead letter.
	 */
	void (*counted)(void *arg);
	/* The link changed: it went up or down, or a first failure. */
	void (*link_changed)(void *arg);
};

#define POLLER_ERROR_MAX 160	/* bytes of the last failure kept */

/*
 * The worker's link to the orchestrator, from every exchange (poll,
 * download, result, heartbeat): up while the last one succeeded.
 */
struct poller_link {
	int up;
	double since;		/* wall time up last changed (or the start) */
	double ok_at;		/* wall time of the last success; 0 never */
	unsigned long failures;	/* in a row */
	char error[POLLER_ERROR_MAX];	/* the last failure; "" none yet */
};

struct store;
struct runner;

/*
 * store holds the outbox (may be NULL: results are then not durable);
 * runner runs each accepted operation as an agent process.
 */
struct poller *poller_new(struct orch *orch, struct op_context *ctx,
    struct store *store, struct runner *runner,
    const struct poller_hooks *hooks);
void poller_free(struct poller *p);

void poller_start(struct poller *p);		/* the boot-time GET */
void poller_wake(struct poller *p);		/* WORK_AVAILABLE */
/* An operation pushed by the master (JSON text of one operation). */
void poller_push(struct poller *p, const char *text, size_t len);
void poller_cancel(struct poller *p, const char *operation_id);
/*
 * Operations accepted that are not yet agent processes and not counted in
 * ctx->inflight: waiting for a free slot, or for the pass's group.  The
 * last ones the worker received: the master keeps a push until it is out
 * of this count.
 */
int poller_queued(const struct poller *p);
/* OPERATION frames received so far (the master counts those it sent). */
unsigned long poller_pushes(const struct poller *p);

/* Stop fetching; fast also abandons downloads and the running GET. */
void poller_drain(struct poller *p, int fast);
/* Past the deadline: give up on undelivered work, then notify shutdown. */
void poller_abandon(struct poller *p);
/* Draining, nothing left, shutdown notice answered (or not needed). */
int poller_finished(const struct poller *p);

/*
 * How the poller reads one operation object (a GET answer, a push, a
 * piggybacked "next_operation" or a downloaded body), apart from acting on
 * it, for tests and fuzzing.  poller_op_id: its usable "operation_id", or
 * NULL when op is no object or has none (it is dropped unseen).
 * poller_op_stub: its body was left out for size ("operation" carries
 * "__mcd_size_exceeded__": true) and is downloaded first.
 * poller_op_problem: why it cannot run (it then fails with
 * invalid_request): no "path" string, or an "operation" that is neither
 * an object nor null; NULL when it can.
 */
const char *poller_op_id(const struct cJSON *op);
int poller_op_stub(const struct cJSON *op);
const char *poller_op_problem(const struct cJSON *op);

/*
 * Whether an exchange succeeded: an answer (curl_ok) that is a 2xx, or a
 * 4xx the orchestrator gives one request (404, 409, ...) — it is there and
 * judging; not a 3xx, a 5xx, nor 401, 403, 407, 408, 429 (credentials,
 * a proxy, overload: nothing gets through).
 */
int poller_exchange_ok(int curl_ok, long status);
const struct poller_link *poller_link(const struct poller *p);

long poller_last_status(const struct poller *p);	/* last HTTP status */
double poller_last_contact(const struct poller *p);	/* wall time, 0 */

struct metrics;
/* Operations run so far, by path and outcome, with their durations. */
const struct metrics *poller_metrics(const struct poller *p);

#endif
