/*
 * relay: the orchestrator's event stream, seen from the arbiter.
 *
 * Owns the master's credentials, HTTP client and SSE connection, and turns
 * each event into work for the workers: work_available pokes one worker
 * with room (round-robin), a pushed operation goes to the least-loaded
 * ready worker with a free slot (or waits in a bounded queue until one has
 * one, refused with an error line when the queue is full), goodbye is
 * handed to the arbiter (through the hook it set, m->goodbye), push_metrics
 * is answered with the workers' aggregated counters and metrics, push_logs
 * with the recent log lines.  Both POSTs get 3 tries, 1 s then 2 s apart (a
 * timer each); while one is under way (or waiting to retry) a new request
 * for it is ignored.
 *
 * A pushed operation is kept after it is sent, until the worker is known
 * to have taken it (an agent process exists): a worker that dies before
 * that would otherwise take it along, and the orchestrator, which handed
 * it to the stream and not to that worker, would never hear of it.  Those
 * a dead worker had not taken go to another worker (relay_pushes_orphaned).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>
#include <uuid/uuid.h>

#include "core/orch.h"
#include "core/channel.h"
#include "core/clock.h"
#include "core/evloop.h"
#include "master/events.h"
#include "core/httpc.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "master_priv.h"
#include "core/metrics.h"
#include "core/procinfo.h"
#include "core/version.h"

static int
relay_takes_work(const struct master *m, const struct wproc *w)
{
	return w->ready && !w->retiring && w->fd >= 0 &&
	    m->state == MS_RUNNING;
}

/* What a worker holds as far as the master knows: running, waiting, sent. */
static unsigned long
relay_load(const struct wproc *w)
{
	return w->inflight + w->queued + w->pushed;
}

static int
relay_has_room(const struct master *m, const struct wproc *w)
{
	return relay_takes_work(m, w) && relay_load(w) <
	    (unsigned long)m->cfg->worker.max_inflight;
}

/* work_available: poke one worker with room, round-robin. */
static void
relay_offer_work(struct master *m)
{
	struct wproc *w;
	int n = 0, want;

	for (w = m->workers; w != NULL; w = w->next)
		n += relay_has_room(m, w);
	if (n == 0) {
		log_debug("work_available: no worker has room; they poll "
		    "when free");
		return;
	}
	want = (int)(m->work_rr++ % (unsigned)n);
	for (w = m->workers; w != NULL; w = w->next)
		if (relay_has_room(m, w) && want-- == 0) {
			channel_send(w->fd, CH_WORK_AVAILABLE, 0, NULL, 0);
			return;
		}
}

/* The least-loaded worker with a free slot, or NULL when none has one. */
static struct wproc *
relay_least_loaded(struct master *m)
{
	struct wproc *w, *best = NULL;

	for (w = m->workers; w != NULL; w = w->next)
		if (relay_has_room(m, w) && (best == NULL ||
		    relay_load(w) < relay_load(best)))
			best = w;
	return best;
}

#define RELAY_RETRY_LATER (-1)	/* no worker can take it now */
#define RELAY_UNSENDABLE (-2)	/* no worker will ever take it */
#define RELAY_CLOCK_SLACK 5.0	/* seconds a process may predate its push
				 * by the wall clock (a clock step) */

static void
relay_pushed_free(struct pushed_op *q)
{
	free(q->text);
	free(q->id);
	free(q);
}

/* Send q to the least-loaded worker, which then keeps it in w->sent. */
static int
relay_hand_over(struct master *m, struct pushed_op *q)
{
	struct wproc *w = relay_least_loaded(m);
	struct pushed_op **tail;

	if (w == NULL)
		return RELAY_RETRY_LATER;
	if (channel_send(w->fd, CH_OPERATION, 0, q->text,
	    strlen(q->text)) == -1)
		return (errno == EMSGSIZE || errno == EINVAL) ?
		    RELAY_UNSENDABLE : RELAY_RETRY_LATER;
	w->pushed++;
	q->seq = ++w->pushes_sent;
	q->sent_at = clock_wall();
	q->next = NULL;
	for (tail = &w->sent; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = q;
	log_debug("events: pushed operation %s handed to worker %d (pid %ld)",
	    q->id, w->slot, (long)w->pid);
	return 0;
}

void
relay_flush_pushed(struct master *m)
{
	struct pushed_op *q;
	int rc = 0;

	while ((q = m->pushq) != NULL) {
		m->pushq = q->next;
		if ((rc = relay_hand_over(m, q)) == RELAY_RETRY_LATER) {
			m->pushq = q;
			break;
		}
		m->npushq--;
		if (rc == RELAY_UNSENDABLE) {
			log_errx("events: pushed operation %s cannot be framed "
			    "for a worker; dropped", q->id);
			relay_pushed_free(q);
		}
	}
}

static void
relay_queue_pushed(struct master *m, struct pushed_op *q)
{
	struct pushed_op **tail;

	if (m->npushq >= MASTER_PUSH_QUEUE_MAX) {
		log_errx("events: pushed operation %s refused: no worker has a "
		    "free slot and %d pushed operations already wait (the "
		    "limit is %d); no result is sent for it", q->id, m->npushq,
		    MASTER_PUSH_QUEUE_MAX);
		relay_pushed_free(q);
		return;
	}
	for (tail = &m->pushq; *tail != NULL; tail = &(*tail)->next)
		;
	q->next = NULL;
	*tail = q;
	m->npushq++;
}

void
relay_pushes_seen(struct wproc *w, unsigned long received,
    unsigned long waiting)
{
	/*
	 * A worker starts what it receives at once, unless something already
	 * waits for a slot: then it queues behind, first in first out.  So
	 * the operations waiting are the last ones it received, and every
	 * push before those was started (an agent process) or refused with
	 * an error line of its own.
	 */
	unsigned long taken = received > waiting ? received - waiting : 0;
	struct pushed_op *q;

	while ((q = w->sent) != NULL && q->seq <= taken) {
		w->sent = q->next;
		relay_pushed_free(q);
	}
}

/* Whether the dead worker w took q: 1, 0, or -1 when nobody can say. */
static int
relay_taken_by(struct master *m, const struct wproc *w,
    const struct pushed_op *q)
{
	if (w->instance_id[0] == '\0')
		return 0;	/* no HELLO: it never had an agent process */
	return master_db_took_operation(m, w->instance_id, w->slot, q->id,
	    q->sent_at - RELAY_CLOCK_SLACK);
}

void
relay_pushes_orphaned(struct master *m, struct wproc *w)
{
	struct pushed_op *q, *again = NULL, **tail = &again;
	int n = 0, taken;

	while ((q = w->sent) != NULL) {
		w->sent = q->next;
		if ((taken = relay_taken_by(m, w, q)) == 1) {
			/* Its process was failed and its result queued. */
			relay_pushed_free(q);
			continue;
		}
		if (m->state == MS_STOPPING) {
			log_errx("events: pushed operation %s was lost with "
			    "worker %d (pid %ld) while the agent stops; the "
			    "orchestrator must hand it out again", q->id,
			    w->slot, (long)w->pid);
			relay_pushed_free(q);
			continue;
		}
		log_warnx("events: pushed operation %s %s worker %d (pid %ld) "
		    "before it ended; handed to another worker", q->id,
		    taken == 0 ? "was not taken by" : "(unknown to the "
		    "database) may not have been taken by", w->slot,
		    (long)w->pid);
		*tail = q;
		tail = &q->next;
		n++;
	}
	if (again == NULL)
		return;
	/* First in line: they were sent before anything still waiting. */
	*tail = m->pushq;
	m->pushq = again;
	m->npushq += n;
}

void
relay_sent_free(struct wproc *w)
{
	struct pushed_op *q;

	while ((q = w->sent) != NULL) {
		w->sent = q->next;
		relay_pushed_free(q);
	}
}

/*
 * An operation pushed over SSE.  One too large for a frame goes as a
 * size-exceeded stub, so the worker downloads the body itself.
 */
static void
relay_forward_operation(struct master *m, const cJSON *op)
{
	char *text = cJSON_PrintUnformatted(op);
	const char *id = json_string(op, "operation_id");
	struct pushed_op *q = NULL;
	cJSON *stub, *body;
	int rc;

	if (text != NULL && strlen(text) > CHANNEL_MAX_PAYLOAD) {
		free(text);
		stub = cJSON_CreateObject();
		cJSON_AddItemToObject(stub, "operation_id", cJSON_Duplicate(
		    cJSON_GetObjectItemCaseSensitive(op, "operation_id"), 1));
		cJSON_AddItemToObject(stub, "path", cJSON_Duplicate(
		    cJSON_GetObjectItemCaseSensitive(op, "path"), 1));
		body = cJSON_AddObjectToObject(stub, "operation");
		cJSON_AddTrueToObject(body, "__mcd_size_exceeded__");
		text = cJSON_PrintUnformatted(stub);
		cJSON_Delete(stub);
	}
	/* events.c lets only operations with a usable ID through. */
	if (text != NULL && (q = calloc(1, sizeof(*q))) != NULL)
		q->id = strdup(id != NULL ? id : "?");
	if (q == NULL || q->id == NULL) {
		log_errx("events: out of memory forwarding operation %s; "
		    "dropped", id != NULL ? id : "?");
		free(text);
		free(q);
		return;
	}
	q->text = text;
	rc = m->pushq == NULL ? relay_hand_over(m, q) : RELAY_RETRY_LATER;
	if (rc == RELAY_UNSENDABLE) {
		log_errx("events: pushed operation %s cannot be framed for a "
		    "worker; dropped", q->id);
		relay_pushed_free(q);
	} else if (rc == RELAY_RETRY_LATER)
		relay_queue_pushed(m, q);
}

#define RELAY_PUSH_TRIES 3
#define RELAY_LOG_TAIL (64 * 1024)	/* bytes of the log file pushed */

static const double relay_push_delay[RELAY_PUSH_TRIES - 1] = { 1.0, 2.0 };

static void relay_push_try(struct master *m, struct relay_push *p);

static void
relay_push_cancel(struct relay_push *p)
{
	evloop_timer_cancel(&p->retry);
	httpc_request_free(p->req);
	free(p->body);
	memset(p, 0, sizeof(*p));
}

static int
relay_push_busy(const struct relay_push *p)
{
	return p->req != NULL || evloop_timer_pending(&p->retry);
}

static enum orch_call
relay_push_call(const struct master *m, const struct relay_push *p)
{
	return p == &m->push_metrics ? ORCH_METRICS : ORCH_LOGS;
}

static const char *
relay_push_name(const struct master *m, const struct relay_push *p)
{
	return p == &m->push_metrics ? "metrics" : "logs";
}

/* A try failed (why); retry later, or give up after the last. */
static void
relay_push_failed(struct master *m, struct relay_push *p, const char *why)
{
	if (p->tries < RELAY_PUSH_TRIES) {
		evloop_timer_add(m->loop, &p->retry, clock_mono() +
		    relay_push_delay[p->tries - 1]);
		log_warnx("%s push failed (%s); retrying in %.0fs",
		    relay_push_name(m, p), why, relay_push_delay[p->tries - 1]);
		return;
	}
	log_warnx("%s push failed (%s); given up after %d tries",
	    relay_push_name(m, p), why, RELAY_PUSH_TRIES);
	relay_push_cancel(p);
}

static void
relay_push_done(struct master *m, struct relay_push *p,
    struct httpc_request *req)
{
	char why[CURL_ERROR_SIZE + 64];

	p->req = NULL;
	if (req->result == CURLE_OK && req->status >= 200 &&
	    req->status <= 299) {
		log_debug("%s pushed", relay_push_name(m, p));
		relay_push_cancel(p);
	} else
		relay_push_failed(m, p, httpc_describe(req, why, sizeof(why)));
	httpc_request_free(req);
}

static void
relay_on_metrics_done(struct httpc_request *req)
{
	struct master *m = req->arg;

	relay_push_done(m, &m->push_metrics, req);
}

static void
relay_on_logs_done(struct httpc_request *req)
{
	struct master *m = req->arg;

	relay_push_done(m, &m->push_logs, req);
}

static void
relay_push_try(struct master *m, struct relay_push *p)
{
	char *copy = strdup(p->body);

	p->tries++;
	p->req = copy == NULL ? NULL : orch_call(&m->orch,
	    relay_push_call(m, p), NULL, copy, p == &m->push_metrics ?
	    relay_on_metrics_done : relay_on_logs_done, m);
	if (p->req == NULL)
		relay_push_failed(m, p, "cannot start the request");
}

static void
relay_on_metrics_retry(void *arg)
{
	struct master *m = arg;

	relay_push_try(m, &m->push_metrics);
}

static void
relay_on_logs_retry(void *arg)
{
	struct master *m = arg;

	relay_push_try(m, &m->push_logs);
}

/* Send body (taken over) as p's POST; NULL body: out of memory. */
static void
relay_push_start(struct master *m, struct relay_push *p, char *body)
{
	if (body == NULL) {
		log_warnx("%s push: out of memory", relay_push_name(m, p));
		return;
	}
	p->body = body;
	p->tries = 0;
	evloop_timer_init(&p->retry, p == &m->push_metrics ?
	    relay_on_metrics_retry : relay_on_logs_retry, m);
	relay_push_try(m, p);
}

/* push_metrics: the master knows every worker's counters, so it sends. */
static void
relay_push_metrics(struct master *m)
{
	struct metrics_master mm;
	struct metrics *total;
	struct wproc *w;
	double done = 0, failed = 0, rss = 0;
	char *body = NULL;
	cJSON *o;

	if (relay_push_busy(&m->push_metrics) ||
	    (total = malloc(sizeof(*total))) == NULL)
		return;
	wtable_metrics(m, total, &mm);
	for (w = m->workers; w != NULL; w = w->next) {
		done += (double)w->done;
		failed += (double)w->failed;
		rss += (double)w->rss;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "version", EGRESSD_VERSION);
	cJSON_AddNumberToObject(o, "workers", (double)mm.workers);
	cJSON_AddNumberToObject(o, "ready", (double)mm.workers_ready);
	cJSON_AddNumberToObject(o, "generation", m->generation);
	cJSON_AddNumberToObject(o, "inflight", (double)mm.inflight);
	cJSON_AddNumberToObject(o, "done", done);
	cJSON_AddNumberToObject(o, "failed", failed);
	cJSON_AddNumberToObject(o, "workers_rss", rss);
	cJSON_AddNumberToObject(o, "master_rss", (double)procinfo_rss(0));
	cJSON_AddNumberToObject(o, "worker_restarts",
	    (double)mm.worker_restarts);
	cJSON_AddNumberToObject(o, "stream_reconnects",
	    (double)mm.stream_reconnects);
	cJSON_AddNumberToObject(o, "reloads", (double)mm.reloads);
	if (o != NULL && metrics_json_add(o, total) == 0)
		body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	free(total);
	relay_push_start(m, &m->push_metrics, body);
}

struct relay_lines {
	cJSON *lines;
	const char *secret;	/* a line holding it is left out */
	int failed;
};

static void
relay_add_line(const char *line, void *arg)
{
	struct relay_lines *l = arg;

	if (!l->failed && metrics_add_log_line(l->lines, line, l->secret) == -1)
		l->failed = 1;
}

/*
 * push_logs: the log file's tail holds everyone's lines, the master's
 * included; without a file, the master's own recent lines.
 */
static void
relay_push_logs(struct master *m)
{
	struct relay_lines l = { NULL, m->creds.token, 0 };
	char *body = NULL;
	cJSON *o;

	if (relay_push_busy(&m->push_logs))
		return;
	if ((o = cJSON_CreateObject()) != NULL &&
	    (l.lines = cJSON_AddArrayToObject(o, "lines")) != NULL) {
		if (log_file_tail(RELAY_LOG_TAIL, relay_add_line, &l) == -1)
			log_recent(relay_add_line, &l);
		if (!l.failed)
			body = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(o);
	relay_push_start(m, &m->push_logs, body);
}

void
relay_new_instance_id(struct master *m)
{
	uuid_t id;

	uuid_generate_random(id);
	uuid_unparse_lower(id, m->instance_id);
}

static void
relay_on_event(const char *type, const cJSON *o, void *arg)
{
	struct master *m = arg;
	const char *s;

	if (strcmp(type, "welcome") == 0) {
		s = json_string(o, "agent_id");
		log_info("events: welcome (agent_id %s)", s ? s : "unknown");
	} else if (strcmp(type, "heartbeat") == 0) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o,
		    "push_metrics")))
			relay_push_metrics(m);
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o,
		    "push_logs")))
			relay_push_logs(m);
	} else if (strcmp(type, "push_metrics") == 0)
		relay_push_metrics(m);
	else if (strcmp(type, "push_logs") == 0)
		relay_push_logs(m);
	else if (strcmp(type, "work_available") == 0)
		relay_offer_work(m);
	else if (strcmp(type, "goodbye") == 0)
		m->goodbye(m, json_string(o, "reason"));
	else if (strcmp(type, "operation") == 0)
		relay_forward_operation(m, o);
	else
		log_warnx("events: unknown event type \"%.64s\"; ignored",
		    type);
}

void
relay_start_events(struct master *m)
{
	if (m->http == NULL || !m->cfg->orchestrator.events ||
	    m->events != NULL)
		return;
	if ((m->events = events_new(m->loop, &m->orch, relay_on_event,
	    m)) == NULL) {
		log_errx("events: out of memory; running without the stream");
		return;
	}
	events_start(m->events);
}

/* Free the stream; its reconnects stay counted. */
static void
relay_drop_events(struct master *m)
{
	if (m->events == NULL)
		return;
	m->stream_reconnects += events_reconnects(m->events);
	events_free(m->events);
	m->events = NULL;
}

/*
 * Shutdown notices for workers that died (DESIGN section 4).  A worker
 * that stops tells the orchestrator itself, after its last result; one
 * that dies cannot, and the operations it had taken but not yet made agent
 * processes (a GET answer that died with it) are then lost unless the
 * orchestrator hands them out again.  The master tells it on the dead
 * worker's behalf, with that worker's instance ID, so it may.  It does
 * the same for a worker that stopped with results still in the outbox
 * (that worker leaves its notice to the master, poller.c).
 *
 * Not at once: the orchestrator hands out again what that instance took
 * and did not report, and the operations the worker did start are still
 * unreported then, their results (or the error results the master queued
 * for them) waiting in the outbox for a live worker's next sweep.  Sent
 * first, the notice would have them run a second time.  So the master
 * looks at the outbox every MASTER_NOTICE_CHECK seconds and sends the
 * notice once none of that worker's results is left, or after 5 sweeps
 * (at least MASTER_NOTICE_PATIENCE seconds) whatever is left, saying so.
 * One POST, no retries (as for a worker's own notice), never waited for.
 */
static void
relay_notice_unlink(struct master *m, struct dead_notice *n)
{
	struct dead_notice **pp;

	for (pp = &m->notices; *pp != NULL; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			m->nnotices--;
			break;
		}
	evloop_timer_cancel(&n->timer);
	httpc_request_free(n->req);
	free(n);
}

static const char *
relay_notice_whose(const struct dead_notice *n)
{
	return n->stopped ? "stopped" : "dead";
}

static void
relay_on_notice_done(struct httpc_request *req)
{
	struct dead_notice *n = req->arg;
	char why[CURL_ERROR_SIZE + 64];

	n->req = NULL;
	if (req->result == CURLE_OK && req->status >= 200 &&
	    req->status <= 299)
		log_info("orchestrator notified of the shutdown of %s worker "
		    "instance %s", relay_notice_whose(n), n->instance_id);
	else
		log_warnx("shutdown notice for %s worker instance %s failed "
		    "(%s); not retried", relay_notice_whose(n), n->instance_id,
		    httpc_describe(req, why, sizeof(why)));
	httpc_request_free(req);
	relay_notice_unlink(n->master, n);
}

static void
relay_notice_send(struct master *m, struct dead_notice *n)
{
	struct orch as = m->orch;

	as.instance_id = n->instance_id;
	n->sent = 1;
	n->req = orch_call(&as, ORCH_SHUTDOWN, NULL, NULL,
	    relay_on_notice_done, n);
	if (n->req == NULL) {
		log_warnx("shutdown notice for %s worker instance %s: cannot "
		    "start the request", relay_notice_whose(n), n->instance_id);
		relay_notice_unlink(m, n);
	}
}

static void relay_on_notice_check(void *arg);

void
relay_worker_died(struct master *m, const char *instance_id, int slot,
    int status)
{
	struct dead_notice *n;
	int stopped = WIFEXITED(status) && WEXITSTATUS(status) == 0, left = 0;

	if (m->http == NULL)
		return;
	/*
	 * A worker that stopped told the orchestrator itself, unless results
	 * of it were still in the outbox (poller.c): then that is ours too.
	 */
	if (stopped && (left = master_db_results_left(m, instance_id,
	    slot)) == 0)
		return;		/* -1, unknown: the notice waits to know */
	if (m->state == MS_STOPPING) {
		log_warnx("worker instance %s %s while the agent stops: no "
		    "shutdown notice is sent for it", instance_id, !stopped ?
		    "died" : left > 0 ? "left results in the outbox" :
		    "may have left results in the outbox (unknown)");
		return;
	}
	if (m->nnotices >= MASTER_NOTICES_MAX ||
	    (n = calloc(1, sizeof(*n))) == NULL) {
		log_warnx("worker instance %s %s: %d shutdown notices are "
		    "waiting already; none is sent for it", instance_id,
		    stopped ? "stopped" : "died", m->nnotices);
		return;
	}
	snprintf(n->instance_id, sizeof(n->instance_id), "%s", instance_id);
	n->slot = slot;
	n->stopped = stopped;
	n->master = m;
	n->since = clock_mono();
	evloop_timer_init(&n->timer, relay_on_notice_check, n);
	evloop_timer_add(m->loop, &n->timer, n->since);
	n->next = m->notices;
	m->notices = n;
	m->nnotices++;
	log_info("worker instance %s %s: the orchestrator is told once its "
	    "results are delivered", instance_id, stopped ?
	    "stopped with results in the outbox" : "died");
}

/* A look at a notice's outbox rows: send it, or look again later. */
static void
relay_on_notice_check(void *arg)
{
	struct dead_notice *n = arg;
	struct master *m = n->master;
	double now = clock_mono(), waited = now - n->since;
	double patience = 5.0 * m->cfg->orchestrator.poll_interval;
	int left;

	if (patience < MASTER_NOTICE_PATIENCE)
		patience = MASTER_NOTICE_PATIENCE;
	if ((left = master_db_results_left(m, n->instance_id, n->slot)) == 0)
		relay_notice_send(m, n);
	else if (waited >= patience) {
		if (left > 0)
			log_warnx("%s worker instance %s: %d of its results "
			    "still undelivered after %.0fs; its shutdown "
			    "notice goes anyway", relay_notice_whose(n),
			    n->instance_id, left, waited);
		else
			log_warnx("%s worker instance %s: its results unknown "
			    "after %.0fs; its shutdown notice goes anyway",
			    relay_notice_whose(n), n->instance_id, waited);
		relay_notice_send(m, n);
	} else
		evloop_timer_add(m->loop, &n->timer, now + MASTER_NOTICE_CHECK);
}

/* Notices not sent yet are dropped, and said to be. */
static void
relay_notices_free(struct master *m)
{
	int unsent = 0;

	while (m->notices != NULL) {
		unsent += !m->notices->sent;
		relay_notice_unlink(m, m->notices);
	}
	if (unsent > 0)
		log_warnx("%d shutdown notices for workers gone not sent",
		    unsent);
}

/* Drop the stream, any logs or metrics push and the HTTP client. */
static void
relay_disconnect(struct master *m)
{
	relay_notices_free(m);
	relay_drop_events(m);
	relay_push_cancel(&m->push_metrics);
	relay_push_cancel(&m->push_logs);
	httpc_free(m->http);
	m->http = NULL;
	m->orch.http = NULL;
}

/* Names the proxy the orchestrator is reached through (no credentials). */
static void
relay_log_proxy(const struct egressd_config *cfg)
{
	char proxy[HTTPC_PROXY_TEXT_MAX];
	const char *source;

	orch_proxy(cfg, proxy, sizeof(proxy), &source);
	if (proxy[0] != '\0')
		log_info("orchestrator %s through proxy %s (from %s)",
		    cfg->orchestrator.url, proxy, source);
	else
		log_info("orchestrator %s: direct connection, no proxy",
		    cfg->orchestrator.url);
}

/* Point the orchestrator client at cfg; creds are already m->creds. */
static int
relay_attach(struct master *m, const struct egressd_config *cfg, char *err,
    size_t errlen)
{
	m->orch.cfg = cfg;
	if (cfg->orchestrator.url[0] == '\0') {
		/* No orchestrator any more (a reload): nothing may outlive cfg. */
		relay_disconnect(m);
		return 0;
	}
	if (!cfg->orchestrator.tls_verify)
		log_warnx("orchestrator.tls_verify is false: the orchestrator's "
		    "certificate is NOT checked");
	relay_log_proxy(cfg);
	if (m->http == NULL && (m->http = httpc_new(m->loop)) == NULL) {
		snprintf(err, errlen, "no HTTP client: out of memory, or "
		    "libcurl's initialisation failed");
		return -1;
	}
	if (m->instance_id[0] == '\0')
		relay_new_instance_id(m);
	m->orch.http = m->http;
	m->orch.creds = &m->creds;
	m->orch.instance_id = m->instance_id;
	return 0;
}

/*
 * Credentials and the HTTP client for cfg; the secret then leaves the
 * environment, so nothing the daemon runs later inherits it.
 */
int
relay_setup(struct master *m, const struct egressd_config *cfg,
    const struct orch_creds *previous, char *err, size_t errlen)
{
	struct orch_creds creds;

	if (orch_load_credentials(cfg, previous, &creds, err, errlen) == -1)
		return -1;
	orch_creds_free(&m->creds);
	m->creds = creds;
	return relay_attach(m, cfg, err, errlen);
}

static int
relay_same_text(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/*
 * Whether the stream opened under cfg and creds is the one next and its
 * credentials would open: then a reload keeps it, and nothing the
 * orchestrator sends meanwhile (a goodbye) falls into a reconnect.
 */
static int
relay_same_stream(const struct egressd_config *cfg,
    const struct orch_creds *creds, const struct egressd_config *next,
    const struct orch_creds *next_creds)
{
	const typeof(cfg->orchestrator) *a = &cfg->orchestrator,
	    *b = &next->orchestrator;

	return relay_same_text(a->url, b->url) && a->events == b->events &&
	    a->events_timeout == b->events_timeout &&
	    a->connect_timeout == b->connect_timeout &&
	    a->tls_verify == b->tls_verify &&
	    relay_same_text(a->ca_file, b->ca_file) &&
	    relay_same_text(a->proxy, b->proxy) &&
	    relay_same_text(a->no_proxy, b->no_proxy) &&
	    a->max_event_bytes == b->max_event_bytes &&
	    relay_same_text(creds->token_id, next_creds->token_id) &&
	    relay_same_text(creds->token, next_creds->token);
}

/* New credentials for a reloaded configuration; a new stream if needed. */
int
relay_reconfigure(struct master *m, const struct egressd_config *cfg,
    char *err, size_t errlen)
{
	struct orch_creds old = m->creds;

	memset(&m->creds, 0, sizeof(m->creds));
	if (relay_setup(m, cfg, &old, err, errlen) == -1) {
		orch_creds_free(&m->creds);
		m->creds = old;
		m->orch.cfg = m->cfg;
		return -1;
	}
	relay_push_cancel(&m->push_metrics);
	relay_push_cancel(&m->push_logs);
	if (m->events != NULL &&
	    relay_same_stream(m->cfg, &old, cfg, &m->creds))
		log_info("reload: the event stream is kept (same orchestrator "
		    "settings)");
	else
		relay_drop_events(m);
	orch_creds_free(&old);
	return 0;
}

/*
 * A rolled-back reload: cfg and creds (taken over) are the ones in force
 * before it, m->cfg still the rejected one.  The stream is kept when it
 * was opened the same way, else dropped for relay_start_events to reopen.
 */
void
relay_restore(struct master *m, const struct egressd_config *cfg,
    struct orch_creds *creds)
{
	struct orch_creds rejected = m->creds;
	char err[128];
	int same = m->events != NULL &&
	    relay_same_stream(m->cfg, &rejected, cfg, creds);

	m->creds = *creds;
	memset(creds, 0, sizeof(*creds));
	relay_push_cancel(&m->push_metrics);
	relay_push_cancel(&m->push_logs);
	if (!same)
		relay_drop_events(m);
	if (relay_attach(m, cfg, err, sizeof(err)) == -1)
		log_warnx("reload rollback: %s", err);
	orch_creds_free(&rejected);
}

void
relay_free(struct master *m)
{
	struct pushed_op *q;

	relay_disconnect(m);
	orch_creds_free(&m->creds);
	while ((q = m->pushq) != NULL) {
		m->pushq = q->next;
		relay_pushed_free(q);
	}
	m->npushq = 0;
}
