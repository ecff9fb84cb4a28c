/* poller: fetch, run, deliver, heartbeat, notify (see include/worker/poller.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "core/evloop.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "core/metrics.h"
#include "ops/dispatch.h"
#include "worker/poller.h"
#include "worker/runner.h"
#include "procmgr/store.h"

#define POLLER_TRIES 3			/* result PUT and full download */
#define POLLER_UNDELETED_MAX 64	/* acknowledged rows not deletable */
#define POLLER_STALE 900.0		/* an outbox row untried this long is */
					/*   anyone's: its owner is stuck */
#define POLLER_ACK_DELAY 0.02		/* an acknowledged row waits at most */
					/*   this long for a transaction */
#define POLLER_ACK_RETRY 1.0		/* after a failed delete */
static const double poller_retry_delay[POLLER_TRIES] = { 1.0, 2.0, 0 };

enum op_stage { STAGE_DOWNLOAD, STAGE_RUN, STAGE_DELIVER, STAGE_QUEUED };

struct poller_op {
	struct runner_op rop;		/* its agent process */
	char *id;
	cJSON *result;			/* set once run */
	char *text;			/* result as stored and sent */
	enum op_stage stage;
	int tries;
	struct evloop_timer retry;	/* pending: waiting to retry */
	int stored;			/* its result is in the outbox */
	int replaced;			/* result: the error that took the */
					/*   place of a refused one */
	int held;			/* its first try waits for a commit */
	int unsure;			/* its batch failed: a row may exist */
	int batched;			/* its records in the open group */
	cJSON *queued;			/* STAGE_QUEUED: the operation */
	struct poller_op *group_next;	/* in the group of brief ones */
	double accepted;		/* monotonic, for its duration */
	struct httpc_request *req;
	struct poller *p;
	struct poller_op *next;
};

/* An operation that arrived while max_inflight were running. */
struct poller_wait {
	cJSON *op;
	const char *via;		/* a string constant */
	struct poller_wait *next;
};

struct poller {
	struct orch *orch;
	const struct egressd_config *cfg;
	struct op_context *ctx;
	struct store *store;		/* the outbox */
	struct runner *runner;
	struct poller_hooks hooks;
	struct poller_op *ops;
	struct poller_op *group;	/* brief operations of this pass, */
	struct poller_op **group_tail;	/*   run and committed together */
	struct evloop_timer group_due;	/* pending: a group waits */
	int ngroup;			/* in it: not yet in ctx->inflight */
	struct poller_wait *waitq;	/* FIFO, started as slots free */
	struct poller_wait **waitq_tail;
	int nwait;			/* at most max_inflight */
	unsigned long pushes;		/* OPERATION frames received */
	struct httpc_request *gets[CONFIG_POLLS_MAX];	/* GETs in flight */
	int ngets;
	struct httpc_request *heartbeat_req;
	struct httpc_request *shutdown_req;
	struct evloop *loop;
	struct evloop_timer poll;	/* pending: a poll is scheduled */
	struct evloop_timer sweep;	/* of the outbox, once answered */
	struct evloop_timer heartbeat;	/* the next, under back-pressure */
	struct evloop_timer settle;	/* the work in flight changed */
	struct evloop_timer acked;	/* acknowledged rows to delete */
	int backpressure;		/* at max_inflight: heartbeats */
	int answered;			/* first poll answered */
	int draining;
	int shutdown_sent;
	int shutdown_done;
	long last_status;
	double last_contact;
	int reported_failure;	/* hooks.first_failure was called */
	struct poller_link link;
	int get_failing;		/* log a failing GET once, not per poll */
	struct metrics metrics;		/* operations run, for the master */
	/*
	 * Results the orchestrator took whose outbox row could not be
	 * deleted (a full disk): a sweep deletes the row, never sends it
	 * again.  Oldest first; beyond POLLER_UNDELETED_MAX the oldest is
	 * forgotten, and its row is sent again as a possible duplicate.
	 */
	char *undeleted[POLLER_UNDELETED_MAX];
	int nundeleted;
};

static int poller_accept(struct poller *p, cJSON *op, const char *via);
static void poller_start_waiting(struct poller *p);
static void poller_deliver(struct poller_op *o);
static void poller_download(struct poller_op *o);
static void poller_store(struct poller_op *o);
static void poller_on_get(struct httpc_request *req);

/* Slots operations hold: running, or in the group about to run. */
static unsigned long
poller_running(const struct poller *p)
{
	return p->ctx->inflight + (unsigned long)p->ngroup;
}

/* Slots operations take: those and the ones waiting for a slot. */
static unsigned long
poller_taken(const struct poller *p)
{
	return poller_running(p) + (unsigned long)p->nwait;
}

/* Slots left for more fetches: a GET in flight keeps one too. */
static long
poller_room(const struct poller *p)
{
	return (long)p->cfg->worker.max_inflight - (long)poller_taken(p) -
	    (long)p->ngets;
}

/* Room to fetch more: nothing waits, and a slot is free. */
static int
poller_has_capacity(const struct poller *p)
{
	return poller_taken(p) < (unsigned long)p->cfg->worker.max_inflight;
}

/*
 * Back-pressure and the shutdown notice depend on the work in flight:
 * looked at once the pass that changed it has run its callbacks.
 */
static void
poller_changed(struct poller *p)
{
	if (!evloop_timer_pending(&p->settle))
		evloop_timer_add(p->loop, &p->settle, 0);
}

static void
poller_poll_later(struct poller *p)
{
	evloop_timer_add(p->loop, &p->poll, clock_mono() +
	    p->cfg->orchestrator.poll_interval);
}

static void
poller_retry_in(struct poller_op *o, double delay)
{
	evloop_timer_add(o->p->loop, &o->retry, clock_mono() + delay);
}

static void
poller_on_retry(void *arg)
{
	struct poller_op *o = arg;

	if (o->stage == STAGE_DOWNLOAD)
		poller_download(o);
	else
		poller_deliver(o);
}

/*
 * A new operation in flight, accepted or adopted from the outbox; one
 * queued for the group is counted in ngroup until it runs.
 */
static void
poller_track(struct poller *p, struct poller_op *o)
{
	o->p = p;
	evloop_timer_init(&o->retry, poller_on_retry, o);
	o->next = p->ops;
	p->ops = o;
	if (o->stage == STAGE_QUEUED)
		p->ngroup++;
	else
		p->ctx->inflight++;
	poller_changed(p);
}

int
poller_exchange_ok(int curl_ok, long status)
{
	if (!curl_ok || status < 200 || status >= 500 ||
	    (status >= 300 && status < 400))
		return 0;
	return status != 401 && status != 403 && status != 407 &&
	    status != 408 && status != 429;
}

/* Every answer, or its absence, moves the link (health and metrics). */
static void
poller_note_contact(struct poller *p, const struct httpc_request *req)
{
	struct poller_link *l = &p->link;
	int ok = poller_exchange_ok(req->result == CURLE_OK, req->status);
	double now = clock_wall();
	int changed = ok != l->up;

	if (req->status != 0) {
		p->last_status = req->status;
		p->last_contact = now;
	}
	if (changed)
		l->since = now;
	l->up = ok;
	if (ok) {
		l->ok_at = now;
		l->failures = 0;
	} else {
		l->failures++;
		httpc_describe(req, l->error, sizeof(l->error));
		changed |= l->failures == 1;
	}
	if (changed && p->hooks.link_changed != NULL)
		p->hooks.link_changed(p->hooks.arg);
}

static struct poller_op *
poller_find(struct poller *p, const char *id)
{
	struct poller_op *o;

	for (o = p->ops; o != NULL; o = o->next)
		if (strcmp(o->id, id) == 0)
			return o;
	return NULL;
}

static void
poller_forget(struct poller *p, struct poller_op *o)
{
	struct poller_op **pp;

	for (pp = &p->ops; *pp != NULL; pp = &(*pp)->next)
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	evloop_timer_cancel(&o->retry);
	httpc_request_free(o->req);
	if (o->rop.running && runner_abort(p->runner, &o->rop,
	    "the worker stopped") && !o->stored)
		log_warnx("operation %s stopped; its error result is in the "
		    "outbox", o->id);
	runner_release(&o->rop);
	cJSON_Delete(o->queued);
	cJSON_Delete(o->result);
	cJSON_free(o->text);
	if (o->stage == STAGE_QUEUED)
		p->ngroup--;
	else
		p->ctx->inflight--;
	free(o->id);
	free(o);
	poller_changed(p);
}

/*
 * One more GET /api/v1/agent/operation, when allowed: each GET in flight
 * may bring an operation, so it takes a slot of max_inflight as well.
 */
static int
poller_get(struct poller *p)
{
	struct httpc_request *req;

	if (p->draining || p->ngets >= p->cfg->worker.parallel_polls ||
	    poller_room(p) <= 0)
		return 0;
	req = orch_call(p->orch, ORCH_OPERATION, NULL, NULL, poller_on_get,
	    p);
	if (req == NULL) {
		log_warnx("poller: cannot start a GET operation request");
		if (p->ngets == 0)
			poller_poll_later(p);
		return 0;
	}
	p->gets[p->ngets++] = req;
	return 1;
}

/* A poll: one GET, unless one is in flight already. */
static void
poller_poll(struct poller *p)
{
	evloop_timer_cancel(&p->poll);
	if (p->ngets == 0)
		(void)poller_get(p);
}

/*
 * The orchestrator had work: up to worker.parallel_polls GETs at once, so
 * that operations arrive together and their records share a commit
 * (poller_run_group).
 */
static void
poller_poll_more(struct poller *p)
{
	evloop_timer_cancel(&p->poll);
	while (poller_get(p))
		;
}

static void
poller_gets_remove(struct poller *p, const struct httpc_request *req)
{
	int i;

	for (i = 0; i < p->ngets; i++)
		if (p->gets[i] == req) {
			p->gets[i] = p->gets[--p->ngets];
			return;
		}
}

/* A fast stop, the deadline or the end: no more operations are fetched. */
static void
poller_gets_cancel(struct poller *p)
{
	while (p->ngets > 0)
		httpc_request_free(p->gets[--p->ngets]);
}

static void
poller_first_answer(struct poller *p)
{
	if (p->answered)
		return;
	p->answered = 1;
	evloop_timer_add(p->loop, &p->sweep, 0);	/* the first at once */
	if (p->hooks.first_poll != NULL)
		p->hooks.first_poll(p->hooks.arg);
}

/* The master compares a new generation's first failure with the old's. */
static void
poller_first_failure(struct poller *p, const struct httpc_request *req,
    const char *why)
{
	if (p->answered || p->reported_failure)
		return;
	p->reported_failure = 1;
	if (p->hooks.first_failure != NULL)
		p->hooks.first_failure(p->hooks.arg,
		    httpc_failure_name(httpc_failure_of(req)), why);
}

static void
poller_on_get(struct httpc_request *req)
{
	struct poller *p = req->arg;
	char why[CURL_ERROR_SIZE + 64], err[128];
	cJSON *op;

	poller_gets_remove(p, req);
	poller_changed(p);
	poller_note_contact(p, req);
	if (req->result == CURLE_OK && req->status == 200) {
		poller_first_answer(p);
		p->get_failing = 0;
		op = json_parse_limited(req->resp ? req->resp : "",
		    req->resp_len, (size_t)p->cfg->orchestrator.max_body_bytes,
		    err, sizeof(err));
		if (op == NULL)
			log_warnx("poller: operation response %s; dropped", err);
		httpc_request_free(req);
		if (op != NULL && poller_accept(p, op, "poll"))
			poller_poll_more(p);	/* more may be waiting */
		else if (p->ngets == 0)	/* a 200 without work must not */
			poller_poll_later(p);	/*   become a GET loop */
		return;
	}
	if (req->result == CURLE_OK && req->status == 204) {
		poller_first_answer(p);
		p->get_failing = 0;
	} else if (!p->get_failing || req->too_big) {
		log_warnx("poller: GET operation failed (%s)",
		    httpc_describe(req, why, sizeof(why)));
		p->get_failing = 1;
		poller_first_failure(p, req, why);
	}
	httpc_request_free(req);
	if (p->ngets == 0)	/* else the last GET in flight decides */
		poller_poll_later(p);
}

/* The agent process ended: its result is in the outbox unless not stored. */
static void
poller_on_done(struct runner_op *rop, cJSON *result)
{
	struct poller_op *o = rop->arg;

	o->result = result;
	o->stored = rop->stored;
	o->text = rop->result_text;
	rop->result_text = NULL;
	metrics_record(&o->p->metrics, rop->run.path, result,
	    clock_mono() - o->accepted);
	log_debug("operation %s (%s) ran: %s", o->id, rop->run.path,
	    ops_is_error(result) ? "error" : "ok");
	poller_deliver(o);
}

const char *
poller_op_problem(const cJSON *op)
{
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(op, "operation");

	if (json_string(op, "path") == NULL)
		return "it has no \"path\" string";
	if (body != NULL && !cJSON_IsObject(body) && !cJSON_IsNull(body))
		return "\"operation\" must be an object";
	return NULL;
}

static void
poller_run(struct poller_op *o, const cJSON *op)
{
	struct poller *p = o->p;
	const char *why = poller_op_problem(op);

	o->stage = STAGE_RUN;
	if (why != NULL)
		runner_fail(p->runner, &o->rop, ops_error("invalid_request",
		    "operation %s: %s", o->id, why));
	else
		runner_start(p->runner, &o->rop, json_string(op, "path"),
		    cJSON_GetObjectItemCaseSensitive(op, "operation"));
}

/*
 * A full download is the operation its stub announced: the same ID (its
 * path is checked by runner_start against the one the process was spawned
 * with, which chose its capabilities).
 */
static int
poller_same_op(const struct poller_op *o, const cJSON *op)
{
	const char *id = json_string(op, "operation_id");

	return id != NULL && strcmp(id, o->id) == 0;
}

static void
poller_on_full(struct httpc_request *req)
{
	struct poller_op *o = req->arg;
	char why[CURL_ERROR_SIZE + 64], err[128];
	cJSON *op = NULL;

	o->req = NULL;
	poller_note_contact(o->p, req);
	if (req->result == CURLE_OK && req->status == 200) {
		op = json_parse_limited(req->resp ? req->resp : "",
		    req->resp_len,
		    (size_t)o->p->cfg->orchestrator.max_body_bytes, err,
		    sizeof(err));
		if (op == NULL || !cJSON_IsObject(op)) {
			httpc_request_free(req);
			o->stage = STAGE_RUN;
			runner_fail(o->p->runner, &o->rop, ops_error(
			    "invalid_request", "full operation %s: %s", o->id,
			    op ? "not an object" : err));
			cJSON_Delete(op);
			return;
		}
		httpc_request_free(req);
		if (!poller_same_op(o, op)) {
			o->stage = STAGE_RUN;
			runner_fail(o->p->runner, &o->rop, ops_error(
			    "invalid_request", "full operation %s: its "
			    "\"operation_id\" is not its stub's; not run",
			    o->id));
		} else
			poller_run(o, op);
		cJSON_Delete(op);
		return;
	}
	httpc_describe(req, why, sizeof(why));
	httpc_request_free(req);
	if (o->tries < POLLER_TRIES) {
		poller_retry_in(o, poller_retry_delay[o->tries - 1]);
		return;
	}
	o->stage = STAGE_RUN;
	runner_fail(o->p->runner, &o->rop, ops_error("internal", "could not "
	    "download operation %s after %d tries (%s)", o->id, POLLER_TRIES,
	    why));
}

static void
poller_download(struct poller_op *o)
{
	o->stage = STAGE_DOWNLOAD;
	evloop_timer_cancel(&o->retry);
	o->tries++;
	o->req = orch_call(o->p->orch, ORCH_FULL_OPERATION, o->id,
	    NULL, poller_on_full, o);
	if (o->req == NULL)
		poller_retry_in(o, poller_retry_delay[0]);
}

const char *
poller_op_id(const cJSON *op)
{
	const char *id = json_string(op, "operation_id");

	return cJSON_IsObject(op) && id != NULL && orch_valid_id(id) ?
	    id : NULL;
}

int
poller_op_stub(const cJSON *op)
{
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(op, "operation");

	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body,
	    "__mcd_size_exceeded__"));
}

/* The image of its agent process: the operation path, as far as known. */
static const char *
poller_image(const cJSON *op)
{
	const char *path = json_string(op, "path");

	return path != NULL ? path : "(no path)";
}

static int
poller_waiting(const struct poller *p, const char *id)
{
	const struct poller_wait *q;

	for (q = p->waitq; q != NULL; q = q->next)
		if (strcmp(poller_op_id(q->op), id) == 0)
			return 1;
	return 0;
}

/*
 * An operation whose handler finishes at once and changes nothing outside
 * the database (dispatch_brief: health, an error for a disabled or unknown
 * path) has its spawn, exit and outbox row written in one transaction, and
 * so do all such operations accepted in one pass of the loop (a group):
 * they wait for the pass's timers (poller_run_group, or the next operation
 * that is not brief, which must not commit its spawn after them), then one
 * commit takes them all.  The pages they touch are written to the WAL
 * once for the group, not once per operation, and a group is at most
 * max_inflight operations.  The write lock is held only while their
 * handlers run, back to back.  Nothing of them is durable before the
 * commit, and their first tries wait for it (poller_deliver), so a worker
 * killed inside has neither done nor sent anything: the operations are
 * handed out again (a polled one once the orchestrator has the shutdown
 * notice, a pushed one by the master at once) instead of being answered
 * with a "worker died" error.  Every other operation's process is
 * committed before its handler starts, and recovered as failed if the
 * worker dies.
 */
static int
poller_brief(const struct poller *p, const cJSON *op)
{
	return p->store != NULL && !poller_op_stub(op) &&
	    dispatch_brief(p->cfg, poller_image(op));
}

/* Spawn the operation's agent process (none without one) and run it. */
static void
poller_start_op(struct poller *p, struct poller_op *o, cJSON *op, int process)
{
	if (!process)
		runner_no_process(p->runner, &o->rop, o->id, poller_image(op));
	else
		runner_spawn(p->runner, &o->rop, o->id, poller_image(op),
		    cJSON_GetObjectItemCaseSensitive(op, "operation"));
	if (poller_op_stub(op))
		poller_download(o);
	else
		poller_run(o, op);
	cJSON_Delete(op);
}

/*
 * What the group wrote from first up to stop (not included) is gone: each
 * result is stored again on its own.  SQLite would hand the pids of the
 * rolled-back spawns out again, and the results sent from memory name
 * them: the next spawn starts past them, and no exit is retried for them.
 */
static void
poller_group_failed(struct poller *p, struct poller_op *first,
    const struct poller_op *stop, const char *err)
{
	struct poller_op *o;
	agent_pid last = 0;
	char why[256];

	for (o = first; o != stop; o = o->group_next) {
		if (!o->batched)
			continue;
		o->batched = 0;
		log_warnx("agent process %lld (operation %s): its records were "
		    "not committed (%s); its result is stored again",
		    (long long)o->rop.pid, o->id, err);
		runner_forget_pid(p->runner, o->rop.pid);
		if (o->rop.pid > last)
			last = o->rop.pid;
		o->stored = 0;
		o->unsure = 1;	/* what followed the failure committed */
	}
	if (last != 0 && store_pids_past(p->store, last, why,
	    sizeof(why)) == -1)
		log_warnx("agent process %lld: its pid may be given again "
		    "(%s)", (long long)last, why);
}

/*
 * Run the brief operations waiting in the group in one transaction, then
 * send their results.  When the database refuses the transaction, each
 * runs without an agent process: its spawn would wait out busy_timeout a
 * second time.  When SQLite rolls the transaction back on an error inside
 * it, what the group wrote so far is failed at once, and the operations
 * after it run on their own transactions.
 */
static void
poller_run_group(struct poller *p)
{
	struct poller_op *first = p->group, *o, *next;
	char err[256];
	int open, lost = 0;

	evloop_timer_cancel(&p->group_due);
	if (first == NULL)
		return;
	p->group = NULL;
	p->group_tail = &p->group;
	open = store_batch_begin(p->store) == 0;
	for (o = first; o != NULL; o = o->group_next) {
		cJSON *op = o->queued;

		o->queued = NULL;
		o->stage = STAGE_RUN;
		p->ngroup--;
		p->ctx->inflight++;
		o->batched = open && !lost;
		poller_start_op(p, o, op, open);
		if (o->batched && !store_batch_intact(p->store)) {
			poller_group_failed(p, first, o->group_next,
			    "rolled back by an error inside it");
			lost = 1;
		}
	}
	if (open && store_batch_end(p->store, err, sizeof(err)) == -1 &&
	    !lost)
		poller_group_failed(p, first, NULL, err);
	for (o = first; o != NULL; o = next) {
		next = o->group_next;
		o->group_next = NULL;
		o->batched = 0;
		if (o->held) {
			o->held = 0;
			poller_store(o);
			poller_deliver(o);
		}
	}
}

static void
poller_on_group_due(void *arg)
{
	poller_run_group(arg);
}

/* Start one operation now, whatever the count in flight. */
static void
poller_admit(struct poller *p, cJSON *op, const char *via)
{
	const char *id = poller_op_id(op);
	int brief = poller_brief(p, op);
	struct poller_op *o;

	/*
	 * The process of any other operation exists before any work: a crash
	 * from here is recovered.  The group's spawns come first, as they
	 * were accepted first.
	 */
	if (!brief)
		poller_run_group(p);
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->id = strdup(id)) == NULL) {
		log_warnx("poller: out of memory; operation %s dropped", id);
		free(o);
		cJSON_Delete(op);
		return;
	}
	o->accepted = clock_mono();
	if (brief)
		o->stage = STAGE_QUEUED;
	poller_track(p, o);
	log_debug("operation %s accepted (%s)", id, via);
	o->rop.on_done = poller_on_done;
	o->rop.arg = o;
	if (brief) {
		o->queued = op;
		*p->group_tail = o;
		p->group_tail = &o->group_next;
		if (!evloop_timer_pending(&p->group_due))
			evloop_timer_add(p->loop, &p->group_due, 0);
		return;
	}
	poller_start_op(p, o, op, 1);
}

/*
 * Take ownership of one operation from any source (GET, push, piggyback);
 * 1 when accepted.  It starts at once when fewer than max_inflight run and
 * nothing waits before it; otherwise it waits in a FIFO of at most
 * max_inflight, started as slots free.  Beyond that it is refused with an
 * error line: the master never sends a worker more than it has room for,
 * and a GET keeps its slot from the worker's other fetches (not from the
 * master's pushes: an operation it brings after a push took the slot
 * waits), so only a GET's or piggyback's operation racing a push lands
 * here, and never that far.
 */
static int
poller_accept(struct poller *p, cJSON *op, const char *via)
{
	const char *id = poller_op_id(op);
	struct poller_wait *q;

	if (id == NULL) {
		log_warnx("poller: operation from %s without a usable "
		    "\"operation_id\"; dropped", via);
		cJSON_Delete(op);
		return 0;
	}
	if (poller_find(p, id) != NULL || poller_waiting(p, id)) {
		log_warnx("poller: operation %s is already in flight; the copy "
		    "from %s is dropped", id, via);
		cJSON_Delete(op);
		return 0;
	}
	/*
	 * What waits goes first, into the slots freed in this pass (acks
	 * that carried a piggyback each free one): the queue must not grow
	 * while slots are free.
	 */
	poller_start_waiting(p);
	if (p->nwait == 0 && poller_taken(p) <
	    (unsigned long)p->cfg->worker.max_inflight) {
		poller_admit(p, op, via);
		return 1;
	}
	if (p->nwait >= p->cfg->worker.max_inflight ||
	    (q = calloc(1, sizeof(*q))) == NULL) {
		log_errx("poller: operation %s (from %s) refused: %lu running "
		    "and %d waiting, the limit of worker.max_inflight (%d); "
		    "no result is sent for it", id, via, p->ctx->inflight,
		    p->nwait, p->cfg->worker.max_inflight);
		cJSON_Delete(op);
		return 0;
	}
	q->op = op;
	q->via = via;
	*p->waitq_tail = q;
	p->waitq_tail = &q->next;
	p->nwait++;
	log_debug("operation %s (%s) waits for a free slot (%d waiting)", id,
	    via, p->nwait);
	return 1;
}

/* Slots freed: start what waits, oldest first. */
static void
poller_start_waiting(struct poller *p)
{
	struct poller_wait *q;

	while ((q = p->waitq) != NULL && poller_running(p) <
	    (unsigned long)p->cfg->worker.max_inflight) {
		if ((p->waitq = q->next) == NULL)
			p->waitq_tail = &p->waitq;
		p->nwait--;
		poller_admit(p, q->op, q->via);
		free(q);
	}
}

/* Drop what waits (no agent process exists for it yet): log each one. */
static void
poller_drop_waiting(struct poller *p, const char *why)
{
	struct poller_wait *q;

	while ((q = p->waitq) != NULL) {
		p->waitq = q->next;
		log_errx("operation %s never started (%s); no result is sent "
		    "for it", poller_op_id(q->op), why);
		cJSON_Delete(q->op);
		free(q);
	}
	p->waitq_tail = &p->waitq;
	p->nwait = 0;
}

static void
poller_finish_op(struct poller *p, struct poller_op *o)
{
	if (ops_is_error(o->result))
		p->ctx->failed++;
	else
		p->ctx->done++;
	poller_forget(p, o);
}

/* The acknowledged rows no transaction took along: deleted on their own. */
static void
poller_delete_acked(void *arg)
{
	struct poller *p = arg;

	if (store_outbox_flush(p->store) == 0)
		return;
	log_warnx("outbox: deleting acknowledged results: %s; retrying",
	    store_errmsg(p->store));
	evloop_timer_add(p->loop, &p->acked, clock_mono() + POLLER_ACK_RETRY);
}

/* A row the orchestrator has that could not be deleted: kept in mind. */
static void
poller_remember_acked(struct poller *p, const char *id)
{
	char *copy = strdup(id);

	if (copy == NULL)
		return;		/* sent again, counted as a possible duplicate */
	if (p->nundeleted == POLLER_UNDELETED_MAX) {
		free(p->undeleted[0]);
		memmove(p->undeleted, p->undeleted + 1,
		    sizeof(p->undeleted[0]) * (POLLER_UNDELETED_MAX - 1));
		p->nundeleted--;
	}
	p->undeleted[p->nundeleted++] = copy;
}

/* 1 when id was acknowledged (its row is deleted now, or later). */
static int
poller_was_acked(struct poller *p, const char *id)
{
	int i;

	for (i = 0; i < p->nundeleted; i++) {
		if (strcmp(p->undeleted[i], id) != 0)
			continue;
		if (store_outbox_delete(p->store, id) == 0) {
			free(p->undeleted[i]);
			memmove(p->undeleted + i, p->undeleted + i + 1,
			    sizeof(p->undeleted[0]) *
			    (size_t)(p->nundeleted - i - 1));
			p->nundeleted--;
		}
		return 1;
	}
	return 0;
}

/*
 * The row goes with the next transaction, which is usually the next
 * operation's spawn or exit (one commit fewer per operation), or within
 * POLLER_ACK_DELAY on its own.  One that cannot be queued or deleted is
 * kept in mind, so no sweep sends it again.
 */
static void
poller_acknowledged(struct poller *p, struct poller_op *o)
{
	int row = o->stored || o->unsure;	/* a row to delete */

	if (row && store_outbox_delete_later(p->store, o->id) == 0) {
		if (!evloop_timer_pending(&p->acked))
			evloop_timer_add(p->loop, &p->acked, clock_mono() +
			    POLLER_ACK_DELAY);
	} else if (row && store_outbox_delete(p->store, o->id) == -1) {
		log_warnx("outbox: %s: %s; deleted by a later sweep, not sent "
		    "again", o->id, store_errmsg(p->store));
		poller_remember_acked(p, o->id);
	}
	poller_finish_op(p, o);
}

static void
poller_take_piggyback(struct poller *p, const struct httpc_request *req)
{
	cJSON *body, *next;
	char err[128];

	if (req->resp == NULL || req->resp_len == 0)
		return;
	body = json_parse_limited(req->resp, req->resp_len,
	    (size_t)p->cfg->orchestrator.max_body_bytes, err, sizeof(err));
	if (body == NULL) {
		log_debug("poller: result response %s; ignored", err);
		return;
	}
	next = cJSON_DetachItemFromObjectCaseSensitive(body, "next_operation");
	cJSON_Delete(body);
	if (next != NULL && !cJSON_IsNull(next))
		poller_accept(p, next, "piggyback");
	else
		cJSON_Delete(next);
}

/*
 * Out of tries: the outbox keeps the result for a later sweep.  One the
 * database refused stays in memory and is tried again every poll_interval,
 * so a database outage alone never loses it.
 */
static void
poller_keep(struct poller *p, struct poller_op *o, const char *why)
{
	double every = p->cfg->orchestrator.poll_interval;

	poller_store(o);
	if (o->stored) {
		if (store_outbox_defer(p->store, o->id, clock_wall() +
		    every) == -1)
			log_warnx("outbox: %s: %s", o->id,
			    store_errmsg(p->store));
		log_warnx("poller: result for %s not delivered after %d tries "
		    "(%s); kept in the outbox", o->id, POLLER_TRIES, why);
		poller_finish_op(p, o);
		return;
	}
	log_warnx("poller: result for %s not delivered after %d tries (%s) "
	    "and not in the outbox; kept in memory, next try in %.3gs",
	    o->id, POLLER_TRIES, why, every);
	o->tries = 0;
	poller_retry_in(o, every);
}

/*
 * Delivery is at least once.  A result goes to the orchestrator a second
 * time only when this agent cannot know that the first try arrived: the
 * worker that sent it died before it deleted the outbox row (between the
 * orchestrator's 2xx and the delete, or before the 2xx reached it), or the
 * answer to a try was lost.  Each such re-send is counted in
 * egressd_results_resent_total and logged with the operation ID, before it
 * goes out; the count is an upper bound of the duplicates the orchestrator
 * sees (a try that never arrived is counted all the same).
 */
static void
poller_count_resend(struct poller *p, const char *operation_id,
    const char *why)
{
	metrics_count_resend(&p->metrics);
	log_warnx("outbox: result for %s is sent again, possibly a "
	    "duplicate (%s)", operation_id, why);
	if (p->hooks.counted != NULL)
		p->hooks.counted(p->hooks.arg);
}

/*
 * Whether a failed try may have reached the orchestrator all the same: a
 * 2xx whose body was cut off, or a connection that broke or timed out
 * after it was made.  An HTTP error status is an answer (not accepted),
 * and a connection never made carried nothing.
 */
static int
poller_answer_lost(const struct httpc_request *req)
{
	if (req->status >= 200 && req->status < 300)
		return 1;
	if (req->status != 0)
		return 0;
	switch (req->result) {
	case CURLE_OK:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		return 0;
	default:
		return 1;
	}
}

/*
 * Statuses that say this result will never be taken, however often it is
 * sent: the request is malformed (400, 422), too large (413), or about an
 * operation the orchestrator does not have (404, 410) or will not take a
 * result for (409).  Anything else (401/403 during a token rotation, 408,
 * 429, 5xx, no answer) may pass later and is retried.
 */
static int
poller_refused_for_good(long status)
{
	switch (status) {
	case 400: case 404: case 409: case 410: case 413: case 422:
		return 1;
	default:
		return 0;
	}
}

/*
 * The result gives way to an error result (keeping the agent process's
 * pid), in memory and in the outbox row, which is marked replaced.  -1
 * when out of memory: the old result stays.
 */
static int
poller_replace(struct poller_op *o, cJSON *error)
{
	struct poller *p = o->p;
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o->result, "pid");
	char *text;

	if (error != NULL && cJSON_IsNumber(pid))
		cJSON_AddNumberToObject(error, "pid", pid->valuedouble);
	if (error == NULL || (text = json_print(error)) == NULL) {
		cJSON_Delete(error);
		return -1;
	}
	cJSON_Delete(o->result);
	cJSON_free(o->text);
	o->result = error;
	o->text = text;
	o->replaced = 1;
	if (o->stored && store_outbox_replace(p->store, o->id, text) == -1)
		log_warnx("outbox: %s: %s", o->id, store_errmsg(p->store));
	return 0;
}

/*
 * No result is ever dropped: one that can never be sent stays in the
 * outbox as a dead letter (the operator decides, docs/OPERATIONS.md),
 * counted in egressd_results_dead_lettered_total and logged.
 */
static void
poller_bury(struct poller *p, struct poller_op *o, const char *why)
{
	metrics_count_dead_letter(&p->metrics);
	if (p->hooks.counted != NULL)
		p->hooks.counted(p->hooks.arg);
	poller_store(o);
	if (!o->stored)
		log_errx("outbox: result for %s can never be sent (%s) and the "
		    "outbox cannot keep it: it is lost", o->id, why);
	else if (store_outbox_bury(p->store, o->id, why) == -1)
		log_errx("outbox: result for %s can never be sent (%s); not "
		    "marked dead (%s): the next sweep tries it again", o->id,
		    why, store_errmsg(p->store));
	else
		log_errx("outbox: result for %s can never be sent (%s); kept "
		    "in the outbox as a dead letter", o->id, why);
	poller_finish_op(p, o);
}

/*
 * A permanent refusal: the same bytes can never pass.  The result is
 * replaced once by an error result saying why, which the orchestrator can
 * take even when it refused the original's size or form; refused again,
 * it becomes a dead letter.
 */
static void
poller_refused(struct poller *p, struct poller_op *o, long status,
    const char *why)
{
	if (!o->replaced && poller_replace(o, ops_error(status == 413 ?
	    "limit_exceeded" : "internal", "the orchestrator refused this "
	    "operation's result (%s); this error was sent in its place",
	    why)) == 0) {
		log_warnx("poller: result for %s refused (%s); an error result "
		    "is sent in its place", o->id, why);
		o->tries = 0;
		poller_deliver(o);
		return;
	}
	poller_bury(p, o, why);
	poller_poll(p);
}

static void
poller_on_result(struct httpc_request *req)
{
	struct poller_op *o = req->arg;
	struct poller *p = o->p;
	char why[CURL_ERROR_SIZE + 64];

	o->req = NULL;
	poller_note_contact(p, req);
	if (req->result == CURLE_OK && req->status >= 200 &&
	    req->status < 300) {
		poller_acknowledged(p, o);
		/* Piggybacked work is ours even while draining: finish it. */
		poller_take_piggyback(p, req);
		httpc_request_free(req);
		poller_poll(p);
		return;
	}
	httpc_describe(req, why, sizeof(why));
	metrics_count_undelivered(&p->metrics);
	if (req->result == CURLE_OK && poller_refused_for_good(req->status)) {
		long status = req->status;

		httpc_request_free(req);
		poller_refused(p, o, status, why);
		return;
	}
	if (poller_answer_lost(req))
		poller_count_resend(p, o->id, "the answer to its last try was "
		    "lost");
	httpc_request_free(req);
	if (o->tries < POLLER_TRIES) {
		log_warnx("poller: result for %s not delivered (%s); retrying "
		    "in %.0fs", o->id, why, poller_retry_delay[o->tries - 1]);
		poller_retry_in(o, poller_retry_delay[o->tries - 1]);
		return;
	}
	poller_keep(p, o, why);
	poller_poll(p);
}

/*
 * The result as JSON text, printed at most once per operation (printing
 * cost a tenth of a worker's instructions per operation with cJSON's
 * printer; json_print() is far cheaper): the runner's copy
 * from the exit record, the outbox row's, or printed here.
 */
static const char *
poller_result_text(struct poller_op *o)
{
	if (o->text == NULL)
		o->text = json_print(o->result);
	return o->text;
}

/* Durable before the first try: a crash from here on loses no result. */
static void
poller_store(struct poller_op *o)
{
	struct poller *p = o->p;
	const char *text;

	if (o->stored || p->store == NULL)
		return;
	if ((text = poller_result_text(o)) == NULL ||
	    store_outbox_put(p->store, o->id, text, p->orch->instance_id,
	    clock_wall() + p->cfg->orchestrator.poll_interval) == -1)
		log_warnx("outbox: result for %s not stored (%s)", o->id,
		    text ? store_errmsg(p->store) : "out of memory");
	else
		o->stored = 1;
}

/*
 * A result too large to send is replaced by a limit_exceeded error before
 * a try can fail on it (the runner does so at the exit; this catches rows
 * stored with a larger orchestrator.max_body_bytes, or by an older
 * version).
 */
static void
poller_bound(struct poller_op *o)
{
	long long max = (long long)o->p->cfg->orchestrator.max_body_bytes;
	const char *text = poller_result_text(o);
	size_t len;

	if (text == NULL || ops_result_fits((len = strlen(text)), max))
		return;
	if (poller_replace(o, ops_result_too_large(len, max)) == 0)
		log_warnx("poller: result for %s is %zu bytes, more than "
		    "orchestrator.max_body_bytes (%lld); a limit_exceeded error "
		    "is sent in its place", o->id, len, max);
}

/* {"result": RESULT} around the text already printed. */
static char *
poller_result_body(struct poller_op *o)
{
	static const char head[] = "{\"result\":";
	const char *text = poller_result_text(o);
	size_t len;
	char *body;

	if (text == NULL)
		return NULL;
	len = strlen(text);
	if ((body = malloc(sizeof(head) + len + 1)) == NULL)
		return NULL;
	memcpy(body, head, sizeof(head) - 1);
	memcpy(body + sizeof(head) - 1, text, len);
	memcpy(body + sizeof(head) - 1 + len, "}", 2);
	return body;
}

static void
poller_deliver(struct poller_op *o)
{
	char *body;

	if (o->stage != STAGE_DELIVER) {
		o->stage = STAGE_DELIVER;	/* download tries are over */
		o->tries = 0;
		if (o->batched) {
			o->held = 1;	/* poller_run_group sends it */
			return;
		}
		poller_store(o);
	} else if (o->held)
		return;
	evloop_timer_cancel(&o->retry);
	poller_bound(o);
	body = poller_result_body(o);
	o->tries++;
	o->req = body ? orch_call(o->p->orch, ORCH_RESULT, o->id,
	    body, poller_on_result, o) : NULL;
	if (o->req == NULL)
		poller_retry_in(o, poller_retry_delay[0]);
}

/* Wake-ups from the master. */

void
poller_start(struct poller *p)
{
	poller_poll(p);
}

void
poller_wake(struct poller *p)
{
	poller_poll(p);
}

void
poller_push(struct poller *p, const char *text, size_t len)
{
	char err[128];
	cJSON *op;

	op = json_parse_limited(text, len,
	    (size_t)p->cfg->orchestrator.max_body_bytes, err, sizeof(err));
	p->pushes++;
	if (op == NULL) {
		log_warnx("poller: pushed operation %s; dropped", err);
		return;
	}
	poller_accept(p, op, "push");
}

int
poller_queued(const struct poller *p)
{
	return p->nwait + p->ngroup;
}

unsigned long
poller_pushes(const struct poller *p)
{
	return p->pushes;
}

/* Stop a download and report the operation as cancelled. */
static void
poller_cancel_download(struct poller_op *o, const char *why)
{
	httpc_request_free(o->req);
	o->req = NULL;
	o->stage = STAGE_RUN;
	runner_fail(o->p->runner, &o->rop, ops_error("internal", "operation "
	    "%s cancelled: %s", o->id, why));
}

void
poller_cancel(struct poller *p, const char *operation_id)
{
	struct poller_op *o = poller_find(p, operation_id);

	if (o == NULL || o->stage != STAGE_DOWNLOAD)
		return;		/* unknown, or already run */
	poller_cancel_download(o, "the orchestrator asked");
}

/* Back-pressure and shutdown. */

static void
poller_on_heartbeat(struct httpc_request *req)
{
	struct poller *p = req->arg;
	char why[CURL_ERROR_SIZE + 64];

	p->heartbeat_req = NULL;
	poller_note_contact(p, req);
	if (req->result != CURLE_OK || req->status < 200 || req->status > 299)
		log_warnx("poller: heartbeat failed (%s)",
		    httpc_describe(req, why, sizeof(why)));
	httpc_request_free(req);
	/* The next one fell due while this one ran: send it now. */
	if (p->backpressure && !evloop_timer_pending(&p->heartbeat))
		evloop_timer_add(p->loop, &p->heartbeat, 0);
}

static void
poller_heartbeat_due(void *arg)
{
	struct poller *p = arg;

	if (p->heartbeat_req != NULL)
		return;		/* poller_on_heartbeat() re-arms */
	evloop_timer_add(p->loop, &p->heartbeat, clock_mono() +
	    p->cfg->worker.backpressure_heartbeat);
	p->heartbeat_req = orch_call(p->orch, ORCH_HEARTBEAT, NULL,
	    NULL, poller_on_heartbeat, p);
}

static void
poller_backpressure(struct poller *p)
{
	if (poller_has_capacity(p) || p->draining) {
		p->backpressure = 0;
		evloop_timer_cancel(&p->heartbeat);
		return;
	}
	if (p->backpressure)
		return;
	p->backpressure = 1;
	evloop_timer_add(p->loop, &p->heartbeat, clock_mono() +
	    p->cfg->worker.backpressure_heartbeat);
	log_debug("poller: at max_inflight (%d); heartbeats instead of polls",
	    p->cfg->worker.max_inflight);
}

static void
poller_on_shutdown(struct httpc_request *req)
{
	struct poller *p = req->arg;
	char why[CURL_ERROR_SIZE + 64];

	p->shutdown_req = NULL;
	p->shutdown_done = 1;
	if (req->result == CURLE_OK && req->status >= 200 && req->status < 300)
		log_info("orchestrator notified of the shutdown");
	else
		log_warnx("shutdown notice failed (%s)",
		    httpc_describe(req, why, sizeof(why)));
	httpc_request_free(req);
}

/*
 * The notice tells the orchestrator it may hand out again what this
 * instance took and did not report.  With results of it still in the
 * outbox (not acknowledged by the deadline) that would have them run twice:
 * the master sends the notice for this instance once a live worker has
 * delivered them (relay.c).
 */
static int
poller_leaves_results(struct poller *p)
{
	int n;

	if (p->store == NULL)
		return 0;
	/* Acknowledged rows are not waiting. */
	if (store_outbox_flush(p->store) == -1)
		log_warnx("outbox: deleting acknowledged results: %s",
		    store_errmsg(p->store));
	if ((n = store_outbox_pending(p->store, p->orch->instance_id)) == 0)
		return 0;
	if (n == -1) {
		log_warnx("outbox: %s; the shutdown notice goes now",
		    store_errmsg(p->store));
		return 0;
	}
	log_warnx("%d results of this worker wait in the outbox; the master "
	    "sends the shutdown notice once they are delivered", n);
	return 1;
}

static void
poller_notify_shutdown(struct poller *p)
{
	if (p->shutdown_sent)
		return;
	p->shutdown_sent = 1;
	if (poller_leaves_results(p)) {
		p->shutdown_done = 1;
		return;
	}
	p->shutdown_req = orch_call(p->orch, ORCH_SHUTDOWN, NULL, NULL,
	    poller_on_shutdown, p);
	if (p->shutdown_req == NULL)
		p->shutdown_done = 1;
}

void
poller_drain(struct poller *p, int fast)
{
	struct poller_op *o, *next;

	p->draining = 1;
	evloop_timer_cancel(&p->poll);
	evloop_timer_cancel(&p->sweep);
	poller_changed(p);
	if (!fast)
		return;
	poller_drop_waiting(p, "a fast stop");
	poller_gets_cancel(p);
	for (o = p->ops; o != NULL; o = next) {
		next = o->next;
		if (o->stage == STAGE_DOWNLOAD) {
			log_warnx("operation %s cancelled by a fast stop", o->id);
			poller_cancel_download(o, "the agent is stopping");
		}
	}
}

void
poller_abandon(struct poller *p)
{
	poller_run_group(p);	/* brief: they run rather than vanish */
	p->draining = 1;
	poller_drop_waiting(p, "the shutdown deadline");
	poller_gets_cancel(p);
	while (p->ops != NULL) {
		if (p->ops->rop.running)
			p->ops->stored = runner_abort(p->runner, &p->ops->rop,
			    "the worker stopped before it finished");
		if (p->ops->stored)
			log_warnx("result for %s not delivered by the shutdown "
			    "deadline; left in the outbox", p->ops->id);
		else
			log_errx("operation %s abandoned at the shutdown "
			    "deadline; no result", p->ops->id);
		p->ctx->failed++;
		poller_forget(p, p->ops);
	}
	poller_notify_shutdown(p);
}

int
poller_finished(const struct poller *p)
{
	return p->draining && p->shutdown_done;
}

/* Timers. */

/*
 * A claimed outbox row becomes an operation in flight again.  Its text was
 * printed by egressd, so only its size is not trusted (poller_bound); a
 * row that does not parse (damaged on disk) becomes a dead letter.
 */
static void
poller_adopt(const struct store_outbox_row *row, void *arg)
{
	struct poller *p = arg;
	struct poller_op *o;
	size_t len = strlen(row->result);
	char err[128], why[160];
	cJSON *result;

	if (poller_find(p, row->operation_id) != NULL)
		return;		/* being delivered already */
	if (poller_was_acked(p, row->operation_id))
		return;		/* the orchestrator has it */
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->id = strdup(row->operation_id)) == NULL ||
	    (o->text = strdup(row->result)) == NULL) {
		log_warnx("outbox: out of memory; %s stays for the next sweep",
		    row->operation_id);
		if (o != NULL)
			free(o->id);
		free(o);
		return;
	}
	result = json_parse_limited(row->result, len, len + 1, err,
	    sizeof(err));
	o->result = result;
	o->stored = 1;
	o->replaced = row->replaced;
	poller_track(p, o);
	if (result == NULL) {
		snprintf(why, sizeof(why), "the stored result is %s", err);
		poller_bury(p, o, why);
		return;
	}
	if (row->resend)
		poller_count_resend(p, o->id, "its row was taken from a "
		    "worker that had tried to send it");
	else
		log_info("outbox: delivering the result for %s again", o->id);
	poller_deliver(o);
}

/* Undelivered results, this worker's or those of workers gone. */
static void
poller_sweep(void *arg)
{
	struct poller *p = arg;
	long room = poller_room(p);
	double wall = clock_wall();

	if (p->draining)
		return;
	evloop_timer_add(p->loop, &p->sweep, clock_mono() +
	    p->cfg->orchestrator.poll_interval);
	if (p->store == NULL || room <= 0)
		return;
	/* An acknowledged row must not be claimed and sent again. */
	if (store_outbox_flush(p->store) == -1) {
		log_warnx("outbox: deleting acknowledged results: %s; no sweep "
		    "now", store_errmsg(p->store));
		return;
	}
	if (store_outbox_claim(p->store, p->orch->instance_id, (int)room,
	    wall, wall + p->cfg->orchestrator.poll_interval,
	    wall - POLLER_STALE, poller_adopt, p) == -1)
		log_warnx("outbox: %s", store_errmsg(p->store));
}

static void
poller_on_poll(void *arg)
{
	poller_poll(arg);
}

/* The work in flight changed (poller_changed): what follows from it. */
static void
poller_settle(void *arg)
{
	struct poller *p = arg;

	poller_start_waiting(p);
	poller_backpressure(p);
	if (p->draining && p->ops == NULL && p->waitq == NULL &&
	    p->ngets == 0)
		poller_notify_shutdown(p);
}

struct poller *
poller_new(struct orch *orch, struct op_context *ctx,
    struct store *store, struct runner *runner,
    const struct poller_hooks *hooks)
{
	struct poller *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->orch = orch;
	p->cfg = orch->cfg;
	p->ctx = ctx;
	p->store = store;
	p->runner = runner;
	if (hooks != NULL)
		p->hooks = *hooks;
	p->link.since = clock_wall();	/* not yet in contact */
	p->loop = ctx->loop;
	p->waitq_tail = &p->waitq;
	p->group_tail = &p->group;
	evloop_timer_init(&p->group_due, poller_on_group_due, p);
	evloop_timer_init(&p->poll, poller_on_poll, p);
	evloop_timer_init(&p->sweep, poller_sweep, p);
	evloop_timer_init(&p->heartbeat, poller_heartbeat_due, p);
	evloop_timer_init(&p->settle, poller_settle, p);
	evloop_timer_init(&p->acked, poller_delete_acked, p);
	return p;
}

void
poller_free(struct poller *p)
{
	if (p == NULL)
		return;
	evloop_timer_cancel(&p->group_due);
	p->group = NULL;		/* each freed with p->ops */
	while (p->ops != NULL)
		poller_forget(p, p->ops);
	poller_drop_waiting(p, "the worker stopped");
	poller_gets_cancel(p);
	httpc_request_free(p->heartbeat_req);
	httpc_request_free(p->shutdown_req);
	evloop_timer_cancel(&p->poll);
	evloop_timer_cancel(&p->sweep);
	evloop_timer_cancel(&p->heartbeat);
	evloop_timer_cancel(&p->settle);
	evloop_timer_cancel(&p->acked);
	if (p->store != NULL && store_outbox_flush(p->store) == -1)
		log_warnx("outbox: deleting acknowledged results: %s; they are "
		    "sent again", store_errmsg(p->store));
	while (p->nundeleted > 0)
		free(p->undeleted[--p->nundeleted]);
	free(p);
}

long
poller_last_status(const struct poller *p)
{
	return p->last_status;
}

double
poller_last_contact(const struct poller *p)
{
	return p->last_contact;
}

const struct poller_link *
poller_link(const struct poller *p)
{
	return &p->link;
}

const struct metrics *
poller_metrics(const struct poller *p)
{
	return &p->metrics;
}
