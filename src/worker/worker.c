/*
 * worker: post-fork hook, event loop and shutdown of a worker process.
 *
 * The worker talks to the master only through its channel: HELLO once the
 * hook is done, READY when it can take work, HEARTBEAT every
 * worker.heartbeat_interval with its counters and metrics (and a last one
 * as it exits, so the master's totals hold its final operations).  Every
 * way out — GOODBYE, STOP, SIGTERM, SIGINT, the master vanishing — enters
 * worker_shutdown(), which a flag makes idempotent; a later fast request
 * may only tighten a graceful one.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include <cjson/cJSON.h>
#include <uuid/uuid.h>

#include "core/channel.h"
#include "core/clock.h"
#include "core/evloop.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "worker/poller.h"
#include "core/procinfo.h"
#include "worker/runner.h"
#include "core/sigpipe.h"
#include "procmgr/store.h"
#include "worker/worker.h"

#define WORKER_UUID_LEN 37
/*
 * In-flight work gets this share of the master's grace period; the rest is
 * kept for the shutdown notice, so the master's SIGKILL does not cut it.
 */
#define WORKER_WORK_SHARE 0.9
#define WORKER_FAST_GRACE 1.0	/* seconds of work in a fast stop (of 2) */
#define WORKER_NOTICE_GRACE 16.0	/* the shutdown POST's 15 s, and a bit */

enum worker_state { WS_BOOTING, WS_READY, WS_BUSY, WS_DRAINING };

static const char *const worker_state_names[] = { "booting", "ready", "busy",
    "draining" };

struct worker {
	const struct egressd_config *cfg;
	int slot;
	int generation;
	int fd;
	pid_t master_pid;
	char instance_id[WORKER_UUID_LEN];
	struct evloop *loop;
	int sigfd;
	struct store store;
	enum worker_state state;
	int shutting_down;
	int fast;
	double deadline;	/* in-flight work must be over by then */
	int abandoned;		/* deadline passed: only the notice is left */
	struct evloop_timer deadline_timer;	/* at deadline, then the notice's */
	struct op_context ctx;	/* counters live here, handlers read them */
	double next_heartbeat;
	struct evloop_timer heartbeat;	/* at next_heartbeat */
	int finished;
	uint8_t *rxbuf;
	const struct orch_creds *creds;
	struct httpc *http;	/* NULL without an orchestrator */
	struct orch orch;
	struct poller *poller;
	unsigned long pushes;	/* OPERATION frames, without a poller */
	struct runner *runner;		/* operations as agent processes */
};

static void worker_shutdown(struct worker *w, int fast, double grace,
    const char *why);

/* The post-fork hook: nothing of the master's survives past here. */
static void
worker_post_fork(struct worker *w)
{
	int keep[2];

	sigpipe_close();
	sigpipe_reset_all();
	log_keep_recent(0);	/* the master's lines are not ours to push */
	keep[0] = w->fd;
	keep[1] = log_fd();
	log_suspend();
	procinfo_close_fds_except(keep, keep[1] >= 0 ? 2 : 1);
	log_resume();
	if ((w->sigfd = sigpipe_open()) == -1 ||
	    sigpipe_catch(SIGTERM) == -1 || sigpipe_catch(SIGINT) == -1 ||
	    sigpipe_catch(SIGQUIT) == -1 || sigpipe_catch(SIGUSR1) == -1) {
		log_warn("signal handlers");
		_exit(WORKER_EXIT_BOOT);
	}
	signal(SIGHUP, SIG_IGN);	/* reload is the master's business */
	signal(SIGPIPE, SIG_IGN);
	sigpipe_unblock_all();	/* the master blocked them across fork */
	/* The kernel tells us when the master dies; check it did not already. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != w->master_pid) {
		log_warnx("master exited before this worker started");
		_exit(0);
	}
}

static void
worker_new_instance_id(struct worker *w)
{
	uuid_t id;

	uuid_generate_random(id);
	uuid_unparse_lower(id, w->instance_id);
}

static int
worker_send_json(struct worker *w, uint16_t type, uint16_t flags, cJSON *obj)
{
	char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
	int rc;

	if (obj != NULL && text == NULL)
		return -1;
	rc = channel_send(w->fd, type, flags, text, text ? strlen(text) : 0);
	if (rc == -1)
		log_warn("channel: send %s", channel_type_name(type));
	cJSON_free(text);
	return rc;
}

static void
worker_send_hello(struct worker *w)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddStringToObject(o, "instance_id", w->instance_id);
	cJSON_AddNumberToObject(o, "generation", w->generation);
	worker_send_json(w, CH_HELLO, 0, o);
	cJSON_Delete(o);
}

static cJSON *
worker_counters(struct worker *w)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "state", worker_state_names[w->state]);
	cJSON_AddNumberToObject(o, "inflight", (double)w->ctx.inflight);
	cJSON_AddNumberToObject(o, "queued", w->poller ?
	    (double)poller_queued(w->poller) : 0);
	cJSON_AddNumberToObject(o, "pushes", w->poller ?
	    (double)poller_pushes(w->poller) : (double)w->pushes);
	cJSON_AddNumberToObject(o, "done", (double)w->ctx.done);
	cJSON_AddNumberToObject(o, "failed", (double)w->ctx.failed);
	cJSON_AddNumberToObject(o, "rss", (double)procinfo_rss(0));
	cJSON_AddNumberToObject(o, "orch_status", w->poller ?
	    (double)poller_last_status(w->poller) : 0);
	cJSON_AddNumberToObject(o, "orch_time", w->poller ?
	    poller_last_contact(w->poller) : 0);
	return o;
}

/* The link to the orchestrator: the master judges health by it. */
static void
worker_add_link(struct worker *w, cJSON *o)
{
	const struct poller_link *l;
	cJSON *j;

	if (w->poller == NULL ||
	    (j = cJSON_AddObjectToObject(o, "orchestrator")) == NULL)
		return;
	l = poller_link(w->poller);
	cJSON_AddBoolToObject(j, "up", l->up);
	cJSON_AddNumberToObject(j, "since", l->since);
	cJSON_AddNumberToObject(j, "ok_at", l->ok_at);
	cJSON_AddNumberToObject(j, "failures", (double)l->failures);
	cJSON_AddStringToObject(j, "error", l->error);
}

/* The process_* metrics of this worker. */
static void
worker_add_process(cJSON *o)
{
	struct procinfo_self self;
	cJSON *j;

	if ((j = cJSON_AddObjectToObject(o, "process")) == NULL)
		return;
	procinfo_self(&self);
	cJSON_AddNumberToObject(j, "cpu_seconds", self.cpu_seconds);
	cJSON_AddNumberToObject(j, "fds", (double)self.fds);
	cJSON_AddNumberToObject(j, "start_time", self.start_time);
}

/* Metrics are cumulative and bounded (METRICS_JSON_MAX fits a frame). */
static void
worker_send_heartbeat(struct worker *w)
{
	cJSON *o = worker_counters(w), *m;

	worker_add_link(w, o);
	worker_add_process(o);

	if (w->poller != NULL && (m = metrics_to_json(poller_metrics(
	    w->poller))) != NULL)
		cJSON_AddItemToObject(o, "metrics", m);
	worker_send_json(w, CH_HEARTBEAT, 0, o);
	cJSON_Delete(o);
	w->next_heartbeat = clock_mono() + w->cfg->worker.heartbeat_interval;
	evloop_timer_add(w->loop, &w->heartbeat, w->next_heartbeat);
}

static void
worker_set_state(struct worker *w, enum worker_state state)
{
	if (w->state == state)
		return;
	w->state = state;
	if (store_worker_set_state(&w->store, w->instance_id,
	    worker_state_names[state]) == -1)
		log_warnx("database: worker state: %s", store_errmsg(&w->store));
}

static void
worker_become_ready(struct worker *w)
{
	/* READY still counts for the master; the state stays "draining". */
	if (!w->shutting_down)
		worker_set_state(w, WS_READY);
	worker_send_json(w, CH_READY, 0, NULL);
	worker_send_heartbeat(w);
}

static void
worker_on_stop(struct worker *w, const struct channel_frame *f)
{
	cJSON *o = cJSON_ParseWithLength(f->payload, f->length);
	const cJSON *deadline = cJSON_GetObjectItemCaseSensitive(o, "deadline");
	double grace = cJSON_IsNumber(deadline) ? deadline->valuedouble : 0;

	cJSON_Delete(o);
	worker_shutdown(w, (f->flags & CH_FLAG_FAST) != 0, grace,
	    (f->flags & CH_FLAG_FAST) ? "fast stop requested by the master" :
	    "graceful stop requested by the master");
}

static void
worker_on_goodbye(struct worker *w, const struct channel_frame *f)
{
	cJSON *o = cJSON_ParseWithLength(f->payload, f->length);
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(o, "reason");
	char why[256];

	snprintf(why, sizeof(why), "orchestrator said goodbye (%s)",
	    cJSON_IsString(reason) ? reason->valuestring : "no reason given");
	cJSON_Delete(o);
	worker_shutdown(w, 0, 0, why);
}

static void
worker_on_status(struct worker *w)
{
	cJSON *o = worker_counters(w);

	cJSON_AddStringToObject(o, "instance_id", w->instance_id);
	cJSON_AddNumberToObject(o, "pid", getpid());
	worker_send_json(w, CH_STATUS_REPLY, 0, o);
	cJSON_Delete(o);
}

static void
worker_on_work(struct worker *w, const struct channel_frame *f)
{
	cJSON *o;
	const cJSON *id;

	if (f->type == CH_WORK_AVAILABLE) {
		if (!w->shutting_down)
			poller_wake(w->poller);
		return;
	}
	if (f->type == CH_OPERATION) {
		/*
		 * Pushed work is taken even while draining: it was handed out.
		 * The poller starts it, or keeps it until a slot frees.
		 */
		if (w->poller != NULL)
			poller_push(w->poller, f->payload, f->length);
		else {
			w->pushes++;
			log_warnx("an operation pushed without an orchestrator; "
			    "dropped");
		}
		return;
	}
	o = cJSON_ParseWithLength(f->payload, f->length);
	id = cJSON_GetObjectItemCaseSensitive(o, "operation_id");
	if (cJSON_IsString(id))
		poller_cancel(w->poller, id->valuestring);
	cJSON_Delete(o);
}

static void
worker_dispatch(struct worker *w, const struct channel_frame *f)
{
	switch (f->type) {
	case CH_STOP:
		worker_on_stop(w, f);
		break;
	case CH_GOODBYE:
		worker_on_goodbye(w, f);
		break;
	case CH_LOG_REOPEN:
		if (log_reopen() == -1)
			log_warn("log reopen");
		break;
	case CH_STATUS:
		worker_on_status(w);
		break;
	case CH_WORK_AVAILABLE:
	case CH_OPERATION:
	case CH_CANCEL:
		if (w->poller == NULL)
			log_debug("%s: no orchestrator configured",
			    channel_type_name(f->type));
		else
			worker_on_work(w, f);
		break;
	}
}

static void
worker_on_channel(int fd, short revents, void *arg)
{
	struct worker *w = arg;
	struct channel_frame f;
	int rc, derr;

	(void)revents;
	for (;;) {
		rc = channel_recv(fd, w->rxbuf, CHANNEL_MAX_FRAME + 1, &f,
		    &derr);
		if (rc == CHANNEL_RECV_FRAME && channel_type_from_master(f.type)) {
			worker_dispatch(w, &f);
			continue;
		}
		if (rc == CHANNEL_RECV_SYSERR && errno == EAGAIN)
			return;
		if (rc == CHANNEL_RECV_FRAME)
			log_warnx("channel: %s frame from the master; ignoring "
			    "the channel from now on", channel_type_name(f.type));
		else if (rc == CHANNEL_RECV_BAD)
			log_warnx("channel: invalid frame from the master (%s)",
			    channel_strerror(derr));
		else if (rc == CHANNEL_RECV_SYSERR)
			log_warn("channel: receive");
		evloop_remove(w->loop, fd);
		worker_shutdown(w, 0, 0, "the master is gone (channel closed)");
		return;
	}
}

static void
worker_on_signal(int fd, short revents, void *arg)
{
	struct worker *w = arg;
	int signo;

	(void)fd;
	(void)revents;
	while ((signo = sigpipe_next()) != 0) {
		switch (signo) {
		case SIGTERM:
			worker_shutdown(w, 0, 0, "SIGTERM");
			break;
		case SIGINT:
		case SIGQUIT:
			worker_shutdown(w, 1, 0, signo == SIGINT ? "SIGINT" :
			    "SIGQUIT");
			break;
		case SIGUSR1:
			if (log_reopen() == -1)
				log_warn("log reopen");
			break;
		}
	}
}

/*
 * grace is the time the master allows (its STOP frame says so; 0 = the
 * configured graceful_timeout, for signals and goodbye).
 */
static void
worker_shutdown(struct worker *w, int fast, double grace, const char *why)
{
	double now = clock_mono(), limit;

	if (grace <= 0)
		grace = w->cfg->server.graceful_timeout;
	if (w->shutting_down && (w->fast || !fast) &&
	    now + grace * WORKER_WORK_SHARE >= w->deadline)
		return;		/* already on the way out, as fast or faster */
	limit = fast ? WORKER_FAST_GRACE : grace * WORKER_WORK_SHARE;
	if (!w->shutting_down || now + limit < w->deadline)
		w->deadline = now + limit;
	evloop_timer_add(w->loop, &w->deadline_timer, w->abandoned ?
	    w->deadline + WORKER_NOTICE_GRACE : w->deadline);
	log_info("shutting down (%s, %s)", fast ? "fast" : "graceful", why);
	w->shutting_down = 1;
	w->fast = fast;
	if (w->poller != NULL)
		poller_drain(w->poller, fast);
	worker_set_state(w, WS_DRAINING);
	worker_send_heartbeat(w);
}

/*
 * The shutdown deadline: work still in flight is abandoned (results left
 * in the outbox) and the shutdown notice gets WORKER_NOTICE_GRACE more;
 * then, or at once without an orchestrator, the worker is done.
 */
static void
worker_on_deadline(void *arg)
{
	struct worker *w = arg;

	if (w->poller == NULL || w->abandoned) {
		w->finished = 1;
		return;
	}
	w->abandoned = 1;
	poller_abandon(w->poller);
	evloop_timer_add(w->loop, &w->deadline_timer, w->deadline +
	    WORKER_NOTICE_GRACE);
}

/* Without an orchestrator a shutdown is over once nothing is in flight. */
static int
worker_drained(struct worker *w)
{
	if (w->poller == NULL)
		return w->ctx.inflight == 0;
	return poller_finished(w->poller);
}

/*
 * Busy while every slot is taken.  Leaving busy is told to the master at
 * once: it hands pushed operations only to a worker it knows has room.
 */
static void
worker_update_busy(struct worker *w)
{
	unsigned long held = w->ctx.inflight + (w->poller ?
	    (unsigned long)poller_queued(w->poller) : 0);
	int full = held >= (unsigned long)w->cfg->worker.max_inflight;

	if (w->shutting_down || w->state == WS_BOOTING)
		return;
	if (full && w->state == WS_READY)
		worker_set_state(w, WS_BUSY);
	else if (!full && w->state == WS_BUSY) {
		worker_set_state(w, WS_READY);
		worker_send_heartbeat(w);
	}
}

/* After every pass: an orphaned worker leaves; shutdown over; busy state. */
static void
worker_maintain(struct worker *w)
{
	if (getppid() != w->master_pid && !w->shutting_down)
		worker_shutdown(w, 0, 0, "the master is gone (orphaned)");
	if (w->shutting_down && worker_drained(w)) {
		w->finished = 1;
		return;
	}
	worker_update_busy(w);
}

static void
worker_on_heartbeat(void *arg)
{
	struct worker *w = arg;

	worker_update_busy(w);	/* the state it reports is current */
	worker_send_heartbeat(w);
}

static void
worker_on_first_poll(void *arg)
{
	struct worker *w = arg;

	log_info("orchestrator answered; ready");
	worker_become_ready(w);
}

/* No answer yet, and the first GET failed: the master decides on reloads. */
static void
worker_on_first_failure(void *arg, const char *kind, const char *error)
{
	struct worker *w = arg;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "kind", kind);
	cJSON_AddStringToObject(o, "error", error);
	worker_send_json(w, CH_UNREACHABLE, 0, o);
	cJSON_Delete(o);
}

/* A re-send or dead letter was counted: the master hears of it first. */
static void
worker_on_counted(void *arg)
{
	worker_send_heartbeat(arg);
}

/* Up, down, or a first failure: the master hears of it now. */
static void
worker_on_link_changed(void *arg)
{
	worker_send_heartbeat(arg);
}

/* The orchestrator client: only when orchestrator.url is set. */
static void
worker_start_poller(struct worker *w)
{
	struct poller_hooks hooks = { worker_on_first_poll, w,
	    worker_on_first_failure, worker_on_counted,
	    worker_on_link_changed };

	if (w->cfg->orchestrator.url[0] == '\0') {
		/* Without an orchestrator there is no first poll to wait for. */
		worker_become_ready(w);
		return;
	}
	w->orch.cfg = w->cfg;
	w->orch.creds = w->creds;
	w->orch.instance_id = w->instance_id;
	/* Every request of this worker carries the same headers. */
	if (orch_keep_headers(&w->orch) == -1)
		log_warnx("out of memory keeping the request headers; each "
		    "request builds its own");
	if ((w->http = httpc_new(w->loop)) == NULL) {
		log_errx("cannot boot: no HTTP client (out of memory, or "
		    "libcurl's initialisation failed)");
		exit(WORKER_EXIT_BOOT);
	}
	w->orch.http = w->http;
	w->ctx.http = w->http;
	if ((w->poller = poller_new(&w->orch, &w->ctx, &w->store, w->runner,
	    &hooks)) == NULL) {
		log_errx("cannot boot: out of memory for the poller");
		exit(WORKER_EXIT_BOOT);
	}
	poller_start(w->poller);
}

/* An upgrade changed the configuration: the master restarts everyone. */
static int
worker_request_reload(void *arg)
{
	struct worker *w = arg;

	return channel_send(w->fd, CH_RELOAD, 0, NULL, 0);
}

/*
 * A lock held elsewhere (another worker, an operator's sqlite3 shell) can
 * keep this loop waiting busy_timeout per call, several calls in a row:
 * the master must not take that for a hang and kill the worker, losing
 * the operations it holds only in memory.
 */
static void
worker_db_waiting(void *arg)
{
	struct worker *w = arg;

	if (clock_mono() >= w->next_heartbeat)
		worker_send_heartbeat(w);
}

static void
worker_boot(struct worker *w)
{
	char err[CONFIG_ERR_MAX] = "", role[32];
	int files;

	snprintf(role, sizeof(role), "worker %d", w->slot);
	log_set_role(role);
	worker_post_fork(w);
	worker_new_instance_id(w);
	if ((w->rxbuf = malloc(CHANNEL_MAX_FRAME + 1)) == NULL ||
	    (w->loop = evloop_new()) == NULL) {
		log_errx("out of memory at boot");
		exit(WORKER_EXIT_BOOT);
	}
	evloop_timer_init(&w->deadline_timer, worker_on_deadline, w);
	evloop_timer_init(&w->heartbeat, worker_on_heartbeat, w);
	evloop_timer_add(w->loop, &w->heartbeat, 0);	/* the first at once */
	/* Never reuse the master's handle: a connection must not cross fork. */
	/*
	 * The master created the file of this slot: a missing one is not
	 * made anew.  Its WAL gets its file's share of store.max_bytes.
	 */
	files = store_files_resolve(w->cfg->store.files, 1);	/* resolved */
	if (store_open_file(&w->store, w->cfg->server.state_dir,
	    store_file_of_slot(w->slot, files), 0, w->cfg->store.synchronous,
	    w->cfg->store.busy_timeout, err, sizeof(err)) == -1 ||
	    store_set_max_bytes(&w->store, w->cfg->store.max_bytes / files,
	    err, sizeof(err)) == -1) {
		log_errx("cannot boot: %s", err);
		exit(WORKER_EXIT_BOOT);
	}
	if (store_worker_register(&w->store, w->instance_id, getpid(), w->slot,
	    w->generation) == -1) {
		log_errx("cannot boot: database %s: %s", w->store.path,
		    store_errmsg(&w->store));
		exit(WORKER_EXIT_BOOT);
	}
	if (evloop_add(w->loop, w->fd, POLLIN, worker_on_channel, w) == -1 ||
	    evloop_add(w->loop, w->sigfd, POLLIN, worker_on_signal, w) == -1) {
		log_warn("event loop");
		exit(WORKER_EXIT_BOOT);
	}
	w->ctx.instance_id = w->instance_id;
	w->ctx.pid = getpid();
	w->ctx.slot = w->slot;
	w->ctx.generation = w->generation;
	w->ctx.started = clock_mono();
	w->ctx.db_path = w->store.path;
	w->ctx.cfg = w->cfg;
	w->ctx.loop = w->loop;
	if ((w->runner = runner_new(&w->ctx, &w->store, worker_request_reload,
	    w)) == NULL) {
		log_errx("cannot boot: out of memory for the process manager");
		exit(WORKER_EXIT_BOOT);
	}
	log_info("booted (pid %ld, generation %d, instance %s)",
	    (long)getpid(), w->generation, w->instance_id);
	worker_send_hello(w);
	w->store.waiting = worker_db_waiting;
	w->store.waiting_arg = w;
}

static void
worker_finish(struct worker *w)
{
	if (store_worker_set_state(&w->store, w->instance_id, "stopped") == -1)
		log_warnx("database: %s", store_errmsg(&w->store));
	if (getppid() == w->master_pid)
		worker_send_heartbeat(w);
	poller_free(w->poller);
	runner_free(w->runner);
	httpc_free(w->http);
	orch_forget_headers(&w->orch);
	store_close(&w->store);
	evloop_free(w->loop);
	free(w->rxbuf);
	close(w->fd);
	log_info("exiting");
}

void
worker_run(const struct worker_params *params)
{
	struct worker w;

	memset(&w, 0, sizeof(w));
	w.cfg = params->cfg;
	w.slot = params->slot;
	w.generation = params->generation;
	w.fd = params->channel_fd;
	w.master_pid = params->master_pid;
	w.sigfd = -1;
	w.creds = params->creds;
	worker_boot(&w);
	worker_start_poller(&w);
	while (!w.finished) {
		worker_maintain(&w);
		if (w.finished)
			break;
		if (evloop_run_once(w.loop, -1) == -1) {
			log_warn("poll");
			break;
		}
	}
	worker_finish(&w);
	exit(0);
}
