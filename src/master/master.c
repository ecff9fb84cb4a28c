/*
 * master: the arbiter (see include/master/master.h).
 *
 * The worker table is a list of worker processes, each in a numbered slot
 * (1..target).  master_maintain() is declarative: every pass it makes the
 * table converge on "each slot has one current worker" — spawning what is
 * missing (unless a crash loop holds spawns back), and retiring workers that
 * are old (a previous generation after HUP, or recycled) only once their
 * slot's replacement is READY.  Signals, frames and control commands only
 * change the wanted state and let the next pass do the work.  What depends
 * on time is a timer of the loop: each worker's liveness (SIGABRT, then
 * SIGKILL), a successor's readiness timeout, the crash loop's respawn
 * back-off and the stop deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "core/orch.h"
#include "core/channel.h"
#include "core/clock.h"
#include "core/config.h"
#include "master/control.h"
#include "master/events.h"
#include "core/evloop.h"
#include "core/log.h"
#include "master/master.h"
#include "master_priv.h"
#include "master/notify.h"
#include "core/procinfo.h"
#include "core/sigpipe.h"
#include "procmgr/store.h"
#include "core/version.h"
#include "worker/worker.h"

static void master_on_channel(int fd, short revents, void *arg);
static int master_on_frame(struct wproc *w, const struct channel_frame *f);
static void master_on_liveness(void *arg);
static void master_on_ready_by(void *arg);
static void master_upgrade_reaped(struct master *m, pid_t pid, int status);
static cJSON *master_command_ok(void);

static double
master_worker_uptime(const struct wproc *w, double now)
{
	return now - w->started;
}

/* Old: any other generation (a rolled-back reload's is above current). */
static int
master_worker_is_old(const struct master *m, const struct wproc *w)
{
	return w->generation != m->generation || w->recycle;
}

/* A generation number never used before, even after a rollback. */
static int
master_next_generation(struct master *m)
{
	return ++m->last_generation;
}

/* The worker that serves slot now: current, not retiring, not old. */
static struct wproc *
master_slot_owner(struct master *m, int slot)
{
	struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (w->slot == slot && !w->retiring && !master_worker_is_old(m, w))
			return w;
	return NULL;
}

/* Count an unplanned end of the worker in slot (shown by health). */
static void
master_count_restart(struct master *m, int slot)
{
	if (slot >= 1 && slot <= CONFIG_WORKERS_MAX)
		m->restarts[slot - 1]++;
}

static int
master_send(struct wproc *w, uint16_t type, uint16_t flags, cJSON *payload)
{
	char *text = NULL;
	int rc;

	if (w->fd < 0)
		return -1;
	if (payload != NULL && (text = cJSON_PrintUnformatted(payload)) == NULL)
		return -1;
	rc = channel_send(w->fd, type, flags, text, text ? strlen(text) : 0);
	cJSON_free(text);
	return rc;
}

/*
 * Liveness: SIGABRT after worker_timeout of silence, SIGKILL 2 s later (or
 * at kill_after, when a stop or a broken channel set it).  The timer is
 * moved to the earlier of the two whenever either changes.
 */
static void
master_arm_liveness(struct wproc *w)
{
	double next = w->kill_after, silent;

	if (!w->killed && w->abort_sent == 0) {
		silent = w->last_seen + w->master->cfg->server.worker_timeout;
		if (next == 0 || silent < next)
			next = silent;
	}
	if (w->killed || next == 0)
		evloop_timer_cancel(&w->liveness);
	else
		evloop_timer_add(w->master->loop, &w->liveness, next);
}

/* Ask a worker to stop; the signal is the fallback when the channel fails. */
static void
master_stop_worker(struct wproc *w, int fast, double grace, double margin)
{
	cJSON *o = cJSON_CreateObject();
	double kill_at = clock_mono() + grace + margin;

	cJSON_AddNumberToObject(o, "deadline", grace);
	if (master_send(w, CH_STOP, fast ? CH_FLAG_FAST : 0, o) == -1)
		kill(w->pid, fast ? SIGINT : SIGTERM);
	cJSON_Delete(o);
	w->state = WS_DRAINING;
	/* A worker past its own deadline plus a margin is hung: kill it. */
	if (w->kill_after == 0 || kill_at < w->kill_after)
		w->kill_after = kill_at;
	master_arm_liveness(w);
}

static void
master_retire(struct master *m, struct wproc *w, const char *reason)
{
	if (w->retiring)
		return;
	log_info("retiring worker %d (pid %ld, generation %d): %s", w->slot,
	    (long)w->pid, w->generation, reason);
	w->retiring = 1;
	w->retire_reason = reason;
	/* A retired worker also has time to tell the orchestrator it left. */
	master_stop_worker(w, 0, m->cfg->server.graceful_timeout,
	    MASTER_NOTICE_GRACE + MASTER_KILL_GRACE);
}

static long
master_recycle_limit(const struct master *m)
{
	long n = m->cfg->server.max_ops_per_worker;

	if (n <= 0)
		return 0;
	if (m->cfg->server.max_ops_jitter > 0)
		n += random() % (m->cfg->server.max_ops_jitter + 1);
	return n;
}

static int
master_spawn(struct master *m, int slot)
{
	struct worker_params params;
	struct wproc *w;
	int sv[2];
	sigset_t all, old;
	pid_t pid;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warnx("spawn: out of memory");
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0, sv) == -1) {
		log_warn("spawn: socketpair");
		free(w);
		return -1;
	}
	/*
	 * Signals wait until the child has its own handlers: one arriving in
	 * between would run the master's handler and land in its pipe.
	 */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if ((pid = fork()) == -1) {
		log_warn("spawn: fork");
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(sv[0]);
		close(sv[1]);
		free(w);
		return -1;
	}
	if (pid == 0) {
		free(w);	/* the parent's bookkeeping, not the child's */
		close(sv[0]);
		params.cfg = m->cfg;
		params.slot = slot;
		params.generation = m->generation;
		params.channel_fd = sv[1];
		params.master_pid = getppid();
		params.creds = &m->creds;
		worker_run(&params);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	w->master = m;
	w->pid = pid;
	w->slot = slot;
	w->generation = m->generation;
	w->fd = sv[0];
	w->started = w->last_seen = clock_mono();
	w->max_ops = master_recycle_limit(m);
	snprintf(w->version, sizeof(w->version), "%s", EGRESSD_VERSION);
	evloop_timer_init(&w->liveness, master_on_liveness, w);
	master_arm_liveness(w);
	evloop_timer_init(&w->ready_by, master_on_ready_by, w);
	evloop_timer_add(m->loop, &w->ready_by, w->started +
	    m->cfg->server.graceful_timeout);
	if (evloop_add(m->loop, w->fd, POLLIN, master_on_channel, w) == -1) {
		log_warn("spawn: event loop");
		close(w->fd);
		w->fd = -1;
		kill(pid, SIGKILL);
	}
	w->next = m->workers;
	m->workers = w;
	log_info("spawned worker %d (pid %ld, generation %d)", slot, (long)pid,
	    m->generation);
	return 0;
}

static void
master_close_channel(struct master *m, struct wproc *w)
{
	if (w->fd < 0)
		return;
	evloop_remove(m->loop, w->fd);
	close(w->fd);
	w->fd = -1;
}

static void
master_unlink(struct master *m, struct wproc *dead)
{
	struct wproc **pp;

	for (pp = &m->workers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == dead) {
			*pp = dead->next;
			return;
		}
}

static void
master_describe_exit(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d%s",
		    WEXITSTATUS(status), WEXITSTATUS(status) ==
		    WORKER_EXIT_BOOT ? " (failed at boot)" : "");
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

/*
 * A restart came too soon after the last (a crash loop, or a goodbye
 * loop): hold spawns back, 0.5 s doubling to 30 s, forgotten after a
 * quiet MASTER_CRASH_MEMORY.  Returns the delay from now.
 */
static double
master_backoff(struct master *m, double now)
{
	double delay;
	int shift;

	if (now - m->last_crash > MASTER_CRASH_MEMORY)
		m->crash_streak = 0;
	m->last_crash = now;
	shift = m->crash_streak < 16 ? m->crash_streak : 16;
	delay = MASTER_BACKOFF_FIRST * (double)(1u << shift);
	if (delay > MASTER_BACKOFF_MAX)
		delay = MASTER_BACKOFF_MAX;
	m->crash_streak++;
	if (now + delay > m->respawn_after)
		m->respawn_after = now + delay;
	evloop_timer_add(m->loop, &m->respawn, m->respawn_after);
	return m->respawn_after - now;
}

/* A worker died on its own: count it and hold respawns back in a loop. */
static void
master_note_crash(struct master *m, struct wproc *w, double now)
{
	double uptime = master_worker_uptime(w, now), delay;

	master_count_restart(m, w->slot);
	if (uptime >= m->cfg->server.min_uptime) {
		m->crash_streak = 0;
		return;
	}
	delay = master_backoff(m, now);
	log_warnx("crash loop: worker %d lived %.2fs (min_uptime %.1fs); "
	    "respawning in %.1fs", w->slot, uptime, m->cfg->server.min_uptime,
	    delay);
}

/*
 * Heartbeats a reaped worker sent before it exited (its last metrics),
 * still unread when SIGCHLD came first.  Nothing else matters any more.
 */
static void
master_last_frames(struct master *m, struct wproc *w)
{
	struct channel_frame f;
	int derr;

	w->retiring = 1;	/* no state changes for the dead */
	while (w->fd >= 0 && channel_recv(w->fd, m->rxbuf,
	    CHANNEL_MAX_FRAME + 1, &f, &derr) == CHANNEL_RECV_FRAME)
		if (f.type == CH_HEARTBEAT && w->instance_id[0] != '\0')
			(void)master_on_frame(w, &f);
}

/*
 * A worker reaped before its HELLO was read: the frame may still wait on
 * its channel (it comes first), and without it the worker's instance ID,
 * its agent processes and its results are unknown.
 */
static void
master_read_hello(struct master *m, struct wproc *w)
{
	struct channel_frame f;
	int derr;

	if (w->instance_id[0] == '\0' && w->fd >= 0 &&
	    channel_recv(w->fd, m->rxbuf, CHANNEL_MAX_FRAME + 1, &f,
	    &derr) == CHANNEL_RECV_FRAME && f.type == CH_HELLO)
		(void)master_on_frame(w, &f);
}

static void
master_reaped(struct master *m, struct wproc *w, int status)
{
	double now = clock_mono();
	char how[128];
	int expected = w->retiring || m->state == MS_STOPPING;

	master_read_hello(m, w);
	master_describe_exit(status, how, sizeof(how));
	if (expected && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_info("worker %d (pid %ld) %s after %.1fs", w->slot,
		    (long)w->pid, how, master_worker_uptime(w, now));
	else
		log_warnx("worker %d (pid %ld) %s after %.1fs", w->slot,
		    (long)w->pid, how, master_worker_uptime(w, now));
	if (!expected)
		master_note_crash(m, w, now);
	if (w->instance_id[0] != '\0')
		master_db_worker_exited(m, w->instance_id, w->slot, how,
		    status);
	if (w->instance_id[0] != '\0')
		relay_worker_died(m, w->instance_id, w->slot, status);
	master_last_frames(m, w);
	relay_pushes_orphaned(m, w);	/* after its last heartbeats */
	/* Its operations stay counted: totals never go backwards. */
	metrics_add(&m->retired, &w->metrics);
	if (w->link.ok_at > m->contact_ok_at)
		m->contact_ok_at = w->link.ok_at;
	master_close_channel(m, w);
	master_unlink(m, w);
	evloop_timer_cancel(&w->liveness);
	evloop_timer_cancel(&w->ready_by);
	free(w);
}

static void
master_reap(struct master *m)
{
	struct wproc *w;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (w = m->workers; w != NULL; w = w->next)
			if (w->pid == pid)
				break;
		if (w != NULL)
			master_reaped(m, w, status);
		else
			master_upgrade_reaped(m, pid, status);
	}
}

/* Frames. */

static int
master_json_int(const cJSON *o, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0)
		return -1;
	*out = v->valuedouble;
	return 0;
}

static int
master_on_hello(struct wproc *w, const cJSON *o)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "instance_id");
	double pid, gen;

	if (master_json_int(o, "pid", &pid) == -1 ||
	    master_json_int(o, "generation", &gen) == -1 ||
	    !cJSON_IsString(id) || strlen(id->valuestring) != UUID_TEXT_LEN - 1)
		return -1;
	if ((pid_t)pid != w->pid || (int)gen != w->generation)
		return -1;
	memcpy(w->instance_id, id->valuestring, UUID_TEXT_LEN);
	log_debug("worker %d (pid %ld) hello, instance %s", w->slot,
	    (long)w->pid, w->instance_id);
	return 0;
}

/* The worker's link to the orchestrator, when it describes one. */
static int
master_on_link(struct wproc *w, const cJSON *o)
{
	const cJSON *up = cJSON_GetObjectItemCaseSensitive(o, "up");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(o, "error");
	double since, ok_at, failures;

	if (o == NULL)
		return 0;
	if (!cJSON_IsObject(o) || !cJSON_IsBool(up) || !cJSON_IsString(error) ||
	    master_json_int(o, "since", &since) == -1 ||
	    master_json_int(o, "ok_at", &ok_at) == -1 ||
	    master_json_int(o, "failures", &failures) == -1)
		return -1;
	w->link.known = 1;
	w->link.up = cJSON_IsTrue(up);
	w->link.since = since;
	w->link.ok_at = ok_at;
	w->link.failures = (unsigned long)failures;
	snprintf(w->link.error, sizeof(w->link.error), "%s",
	    error->valuestring);
	return 0;
}

/* Its process_* figures, when it sends them. */
static int
master_on_process(struct wproc *w, const cJSON *o)
{
	double fds;

	if (o == NULL)
		return 0;
	if (!cJSON_IsObject(o) ||
	    master_json_int(o, "cpu_seconds", &w->cpu_seconds) == -1 ||
	    master_json_int(o, "fds", &fds) == -1 ||
	    master_json_int(o, "start_time", &w->start_time) == -1)
		return -1;
	w->fds = (unsigned long)fds;
	return 0;
}

/*
 * Waiting at start (or for a reload's workers): systemctl status says
 * for what, with the last error a worker met.  A new line only for a new
 * story (the error, or the workers ready), not for every failed poll.
 */
static void
master_notify_waiting(struct master *m, const struct wproc *w)
{
	char story[sizeof(m->systemd_status)], state[sizeof(story) + 64];

	if (m->systemd_ready || w->link.up || w->link.error[0] == '\0')
		return;
	snprintf(story, sizeof(story), "waiting for the orchestrator "
	    "(%d/%d workers ready): %s", wtable_count(m, 1), m->target,
	    w->link.error);
	if (strcmp(story, m->systemd_status) == 0)
		return;
	memcpy(m->systemd_status, story, sizeof(story));
	snprintf(state, sizeof(state), "STATUS=%s", story);
	if (notify_send(state) == -1)
		log_warn("systemd notify");
}

static int
master_on_heartbeat(struct wproc *w, const cJSON *o)
{
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
	const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(o, "metrics");
	double inflight, done, failed, rss, queued = 0, pushes = 0;
	double orch_status = 0, orch_time = 0;
	char err[128];
	size_t i;

	if (metrics != NULL && metrics_from_json(metrics, &w->metrics, err,
	    sizeof(err)) == -1) {
		log_warnx("worker %d (pid %ld): heartbeat metrics: %s",
		    w->slot, (long)w->pid, err);
		return -1;
	}
	if (master_on_link(w, cJSON_GetObjectItemCaseSensitive(o,
	    "orchestrator")) == -1 || master_on_process(w,
	    cJSON_GetObjectItemCaseSensitive(o, "process")) == -1)
		return -1;
	master_notify_waiting(w->master, w);
	if (!cJSON_IsString(state) ||
	    master_json_int(o, "inflight", &inflight) == -1 ||
	    master_json_int(o, "done", &done) == -1 ||
	    master_json_int(o, "failed", &failed) == -1 ||
	    master_json_int(o, "rss", &rss) == -1)
		return -1;
	if ((cJSON_HasObjectItem(o, "queued") &&
	    master_json_int(o, "queued", &queued) == -1) ||
	    (cJSON_HasObjectItem(o, "pushes") &&
	    master_json_int(o, "pushes", &pushes) == -1) ||
	    (cJSON_HasObjectItem(o, "orch_status") &&
	    master_json_int(o, "orch_status", &orch_status) == -1) ||
	    (cJSON_HasObjectItem(o, "orch_time") &&
	    master_json_int(o, "orch_time", &orch_time) == -1))
		return -1;
	for (i = 0; i < MASTER_NSTATES; i++)
		if (strcmp(state->valuestring, wtable_state_names[i]) == 0)
			break;
	if (i == MASTER_NSTATES)
		return -1;
	if (!w->retiring)
		w->state = (enum wstate)i;
	w->inflight = (unsigned long)inflight;
	w->queued = (unsigned long)queued;
	/* Pushes it has not seen yet: sent after it wrote this heartbeat. */
	w->pushed = (unsigned long)pushes <= w->pushes_sent ?
	    w->pushes_sent - (unsigned long)pushes : 0;
	relay_pushes_seen(w, (unsigned long)pushes, (unsigned long)queued);
	w->done = (unsigned long)done;
	w->failed = (unsigned long)failed;
	w->rss = (unsigned long long)rss;
	w->orch_status = (long)orch_status;
	w->orch_time = orch_time;
	if (w->max_ops > 0 && (long)(w->done + w->failed) >= w->max_ops &&
	    !w->recycle && !w->retiring) {
		log_info("worker %d (pid %ld) ran %lu operations; recycling it",
		    w->slot, (long)w->pid, w->done + w->failed);
		w->recycle = 1;
	}
	return 0;
}

/* Not from inside a frame callback: the loop reloads before its next poll. */
static void
master_reload_requested(struct wproc *w)
{
	log_info("worker %d (pid %ld) asks for a reload (upgrade)", w->slot,
	    (long)w->pid);
	w->master->reload_wanted = 1;
}

/*
 * A worker's first exchange with the orchestrator failed.  When it belongs
 * to a reload's new generation, the workers of the generation before are
 * asked to poll now: whether they still get through decides between a
 * rollback and carrying on (master_check_rollback).
 */
static int
master_on_unreachable(struct wproc *w, const cJSON *o)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(o, "error");
	struct master *m = w->master;
	struct wproc *old;

	if (!cJSON_IsString(kind) || !cJSON_IsString(error))
		return -1;
	if (w->ready || w->unreachable)
		return 0;
	w->unreachable = 1;
	w->unreachable_at = clock_wall();
	snprintf(w->fail_kind, sizeof(w->fail_kind), "%s", kind->valuestring);
	snprintf(w->fail_error, sizeof(w->fail_error), "%s",
	    error->valuestring);
	log_warnx("worker %d (pid %ld, generation %d) cannot reach the "
	    "orchestrator (%s): %s", w->slot, (long)w->pid, w->generation,
	    w->fail_kind, w->fail_error);
	if (m->prev_cfg == NULL || w->generation != m->generation)
		return 0;
	for (old = m->workers; old != NULL; old = old->next)
		if (old->generation == m->stable_generation && old->ready &&
		    !old->retiring)
			(void)master_send(old, CH_WORK_AVAILABLE, 0, NULL);
	return 0;
}

/* Validate and apply one frame; -1 means the worker broke the protocol. */
static int
master_on_frame(struct wproc *w,
    const struct channel_frame *f)
{
	cJSON *o = NULL;
	int rc = 0;

	if (!channel_type_from_worker(f->type))
		return -1;
	if (f->length > 0 &&
	    (o = cJSON_ParseWithLength(f->payload, f->length)) == NULL)
		return -1;
	if (o != NULL && !cJSON_IsObject(o))
		rc = -1;
	else if (f->type == CH_HELLO)
		rc = master_on_hello(w, o);
	else if (w->instance_id[0] == '\0')
		rc = -1;	/* HELLO comes first */
	else if (f->type == CH_READY) {
		if (!w->ready)
			log_info("worker %d (pid %ld) ready", w->slot,
			    (long)w->pid);
		w->ready = 1;
		w->unreachable = 0;
		evloop_timer_cancel(&w->ready_by);
		if (!w->retiring)
			w->state = WS_READY;
	} else if (f->type == CH_HEARTBEAT)
		rc = master_on_heartbeat(w, o);
	else if (f->type == CH_STATUS_REPLY)
		master_ctl_status_reply(w->master, w, o);
	else if (f->type == CH_RELOAD)
		master_reload_requested(w);
	else if (f->type == CH_UNREACHABLE)
		rc = master_on_unreachable(w, o);
	cJSON_Delete(o);
	return rc;
}

static void
master_channel_broken(struct master *m, struct wproc *w, const char *why)
{
	log_warnx("worker %d (pid %ld): %s; closing its channel and "
	    "replacing it", w->slot, (long)w->pid, why);
	master_close_channel(m, w);
	if (!w->retiring && m->state == MS_RUNNING)
		master_count_restart(m, w->slot);
	w->retiring = 1;
	w->retire_reason = why;
	w->state = WS_DRAINING;
	kill(w->pid, SIGTERM);
	w->kill_after = clock_mono() + MASTER_KILL_GRACE;
	master_arm_liveness(w);
}

static void
master_on_channel(int fd, short revents, void *arg)
{
	struct wproc *w = arg;
	struct master *m = w->master;
	struct channel_frame f;
	char why[128];
	int rc, derr;

	(void)revents;
	for (;;) {
		rc = channel_recv(fd, m->rxbuf, CHANNEL_MAX_FRAME + 1, &f, &derr);
		if (rc == CHANNEL_RECV_FRAME) {
			w->last_seen = clock_mono();
			master_arm_liveness(w);
			if (master_on_frame(w, &f) == 0)
				continue;
			snprintf(why, sizeof(why), "invalid %s frame",
			    channel_type_name(f.type));
			master_channel_broken(m, w, why);
			return;
		}
		if (rc == CHANNEL_RECV_SYSERR && (errno == EAGAIN ||
		    errno == EINTR))
			return;
		if (rc == CHANNEL_RECV_BAD) {
			snprintf(why, sizeof(why), "invalid frame (%s)",
			    channel_strerror(derr));
			master_channel_broken(m, w, why);
		} else {
			/* EOF: the worker is exiting; SIGCHLD will tell how. */
			master_close_channel(m, w);
		}
		return;
	}
}

/* The liveness timer (master_arm_liveness): SIGKILL, or SIGABRT first. */
static void
master_on_liveness(void *arg)
{
	struct wproc *w = arg;
	double timeout = w->master->cfg->server.worker_timeout;
	double now = clock_mono();

	if (w->kill_after > 0 && now >= w->kill_after) {
		log_warnx("worker %d (pid %ld) still alive; sending SIGKILL",
		    w->slot, (long)w->pid);
		kill(w->pid, SIGKILL);
		w->killed = 1;
	} else if (w->abort_sent == 0 && now - w->last_seen >= timeout) {
		log_warnx("worker %d (pid %ld) sent no heartbeat for %.1fs; "
		    "sending SIGABRT", w->slot, (long)w->pid,
		    now - w->last_seen);
		kill(w->pid, SIGABRT);
		w->abort_sent = now;
		if (w->kill_after == 0 || now + MASTER_KILL_GRACE < w->kill_after)
			w->kill_after = now + MASTER_KILL_GRACE;
	}
	master_arm_liveness(w);
}

/* Not READY within graceful_timeout: a predecessor need not wait for it. */
static void
master_on_ready_by(void *arg)
{
	struct wproc *w = arg;

	w->overdue = 1;
}

/* Retire old workers whose slot has a READY successor, or no capacity. */
static void
master_retire_old(struct master *m)
{
	struct wproc *w, *owner;

	for (w = m->workers; w != NULL; w = w->next) {
		if (w->retiring)
			continue;
		if (!master_worker_is_old(m, w)) {
			if (w->slot > m->target)
				master_retire(m, w, "fewer workers wanted");
			continue;
		}
		owner = w->slot <= m->target ? master_slot_owner(m, w->slot) :
		    NULL;
		if (!w->ready)
			master_retire(m, w, "replaced (it was not ready)");
		else if (owner != NULL && owner->ready)
			master_retire(m, w, "replaced by a ready worker");
		else if (owner != NULL && owner->overdue) {
			log_warnx("worker %d (pid %ld) not ready after %.1fs; "
			    "retiring its predecessor anyway", owner->slot,
			    (long)owner->pid, clock_mono() - owner->started);
			master_retire(m, w, "replacement timed out");
		} else if (w->slot > m->target &&
		    wtable_count(m, 1) - 1 >= m->target)
			master_retire(m, w, "fewer workers wanted");
	}
}

/* Back-off over: the master_maintain() after this pass spawns. */
static void
master_on_respawn(void *arg)
{
	(void)arg;
}

static void
master_spawn_missing(struct master *m)
{
	int slot;

	if (evloop_timer_pending(&m->respawn))
		return;		/* a crash loop's back-off */
	for (slot = 1; slot <= m->target; slot++)
		if (master_slot_owner(m, slot) == NULL &&
		    master_spawn(m, slot) == -1) {
			/* fork or memory trouble: try again in a moment */
			m->respawn_after = clock_mono() + MASTER_BACKOFF_FIRST;
			evloop_timer_add(m->loop, &m->respawn,
			    m->respawn_after);
			return;
		}
}

static int
master_has_old(const struct master *m)
{
	const struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (w->generation != m->generation)
			return 1;
	return 0;
}

/* Answer every egressctl reload waiting: ok (reply), or the error. */
static void
master_answer_reload(struct master *m, const char *error)
{
	struct reload_waiter *r;
	cJSON *o;
	int ready = wtable_count(m, 1);

	while ((r = m->reload_waiters) != NULL) {
		m->reload_waiters = r->next;
		o = NULL;
		if (error == NULL && (o = cJSON_CreateObject()) != NULL) {
			cJSON_AddTrueToObject(o, "ok");
			cJSON_AddNumberToObject(o, "generation", m->generation);
			cJSON_AddStringToObject(o, "version", EGRESSD_VERSION);
			cJSON_AddNumberToObject(o, "ready", ready);
			cJSON_AddNumberToObject(o, "target", m->target);
		}
		control_finish(r->reply, o, error != NULL ? error :
		    "out of memory");
		free(r);
	}
}

/*
 * The outcome of a rolling restart is known once every slot's new worker
 * is READY or overdue: no rollback can follow (master_check_rollback
 * needs a new generation with no READY worker).
 */
static int
master_reload_settled(struct master *m)
{
	struct wproc *owner;
	int slot;

	for (slot = 1; slot <= m->target; slot++)
		if ((owner = master_slot_owner(m, slot)) == NULL ||
		    (!owner->ready && !owner->overdue))
			return 0;
	return 1;
}

/* The rolling restart is over: nothing left to roll back to. */
static void
master_forget_previous(struct master *m)
{
	if (m->prev_cfg != NULL) {
		config_free(m->prev_cfg);
		free(m->prev_cfg);
		m->prev_cfg = NULL;
	}
	orch_creds_free(&m->prev_creds);
	m->reload_upgrade = 0;
	m->stable_generation = m->generation;
}

static void
master_notify_progress(struct master *m)
{
	char state[128];

	if (m->reload_waiters != NULL && (m->reload_started == 0 ||
	    master_reload_settled(m)))
		master_answer_reload(m, NULL);
	if (m->reload_started > 0 && !master_has_old(m)) {
		log_info("rolling restart to generation %d done in %.2fs",
		    m->generation, clock_mono() - m->reload_started);
		m->reload_started = 0;
		if (m->upgrade_started > 0)
			log_info("upgrade from egressd %s to %s done in %.2fs: "
			    "every worker runs the new binary", m->upgrade_from,
			    EGRESSD_VERSION, clock_wall() - m->upgrade_started);
		m->upgrade_started = 0;
	}
	if (m->reload_started == 0 && m->prev_cfg != NULL)
		master_forget_previous(m);
	if (m->systemd_ready || m->reload_started > 0 ||
	    wtable_count(m, 1) < m->target)
		return;
	snprintf(state, sizeof(state), "READY=1\nSTATUS=egressd %s: %d "
	    "workers ready, generation %d", EGRESSD_VERSION, m->target,
	    m->generation);
	m->systemd_status[0] = '\0';
	if (notify_send(state) == -1)
		log_warn("systemd notify");
	m->systemd_ready = 1;
}

/*
 * An upgrade's change was rejected with its generation: its file goes back
 * to what FILE.bak holds (the text before the change), written beside it
 * and renamed over it, so that the next HUP does not bring it back.
 */
static void
master_restore_backup(struct master *m)
{
	const char *path = m->opt.config_path;
	char bak[PATH_MAX], tmp[PATH_MAX], *buf;
	ssize_t n = -1;
	int fd, ok = 0;

	if ((size_t)snprintf(bak, sizeof(bak), "%s.bak", path) >= sizeof(bak) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.rollback", path) >=
	    sizeof(tmp) || (buf = malloc(MASTER_BACKUP_MAX)) == NULL) {
		log_warnx("reload rollback: cannot restore %s", path);
		return;
	}
	if ((fd = open(bak, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) != -1) {
		n = read(fd, buf, MASTER_BACKUP_MAX);
		close(fd);
	}
	if (n >= 0 && n < MASTER_BACKUP_MAX && (fd = open(tmp, O_WRONLY |
	    O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) != -1) {
		ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
		ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
	}
	free(buf);
	if (!ok) {
		log_warn("reload rollback: cannot restore %s from %s", path,
		    bak);
		unlink(tmp);
		return;
	}
	log_warnx("reload rollback: %s restored from %s (the upgrade's "
	    "change is undone)", path, bak);
}

/*
 * The rule of a reload: never retire a worker in contact with the
 * orchestrator in favour of one that cannot reach it.  failed (the new
 * generation) could not, old (the generation before) could since: the new
 * workers stop, the previous configuration is back in force, the old
 * workers go on serving.
 */
static void
master_rollback(struct master *m, const struct wproc *failed,
    const struct wproc *old)
{
	char why[sizeof(m->reload_failure)], lerr[CONFIG_ERR_MAX];
	char state[sizeof(why) + 64];
	int rejected = m->generation;
	struct wproc *w;

	snprintf(why, sizeof(why), "reload to generation %d rolled back: "
	    "worker %d could not reach the orchestrator (%s: %s) while "
	    "generation %d could; the previous configuration stays in force",
	    rejected, failed->slot, failed->fail_kind, failed->fail_error,
	    old->generation);
	log_errx("%s", why);
	snprintf(m->reload_failure, sizeof(m->reload_failure), "%s", why);
	m->generation = m->stable_generation;
	for (w = m->workers; w != NULL; w = w->next)
		if (w->generation == rejected)
			master_retire(m, w, "its reload was rolled back");
	relay_restore(m, m->prev_cfg, &m->prev_creds);
	config_free(m->cfg);
	free(m->cfg);
	m->cfg = m->prev_cfg;
	m->prev_cfg = NULL;
	m->target = m->prev_target;
	if (log_open(m->cfg->log.file, m->cfg->log.level, m->cfg->log.format,
	    lerr, sizeof(lerr)) == -1)
		log_warnx("reload rollback: %s", lerr);
	for (w = m->workers; w != NULL; w = w->next)
		master_arm_liveness(w);	/* the previous worker_timeout */
	if (m->reload_upgrade)
		master_restore_backup(m);
	m->reload_upgrade = 0;
	m->reload_started = 0;
	relay_start_events(m);
	master_answer_reload(m, why);
	snprintf(state, sizeof(state), "READY=1\nSTATUS=%s", why);
	if (notify_send(state) == -1)
		log_warn("systemd notify");
	m->systemd_ready = 1;
}

/* A new worker that failed its first exchange while none of its own is READY. */
static struct wproc *
master_new_failing(struct master *m)
{
	struct wproc *w, *failing = NULL;

	for (w = m->workers; w != NULL; w = w->next) {
		if (w->generation != m->generation || w->retiring)
			continue;
		if (w->ready)
			return NULL;	/* the new configuration gets through */
		if (w->unreachable && failing == NULL)
			failing = w;
	}
	return failing;
}

/* A serving worker of the previous generation answered after since. */
static struct wproc *
master_old_in_contact(struct master *m, double since)
{
	struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (w->generation == m->stable_generation && !w->retiring &&
		    w->orch_status >= 200 && w->orch_status <= 299 &&
		    w->orch_time >= since)
			return w;
	return NULL;
}

/* Both generations failing is an orchestrator that is down: carry on. */
static void
master_check_rollback(struct master *m)
{
	struct wproc *failed, *old;

	if (m->prev_cfg == NULL || m->reload_started == 0 ||
	    (failed = master_new_failing(m)) == NULL ||
	    (old = master_old_in_contact(m, failed->unreachable_at)) == NULL)
		return;
	master_rollback(m, failed, old);
}

/*
 * The database is not the file opened at start (stateguard.c): no worker
 * may take work or start.  Those running finish and deliver what they
 * hold, and the stream stops, so the orchestrator hands nothing more
 * here; both come back once the database does.
 */
static int
master_hold_work(struct master *m)
{
	struct wproc *w;

	if (!m->guard.db_lost) {
		if (m->work_held && m->events != NULL)
			events_start(m->events);
		m->work_held = 0;
		return 0;
	}
	if (!m->work_held && m->events != NULL)
		events_stop(m->events);
	m->work_held = 1;
	for (w = m->workers; w != NULL; w = w->next)
		master_retire(m, w, "the database is gone");
	return 1;
}

/*
 * After every pass of the loop: make the worker table converge on what is
 * wanted.  Time plays no part here; timers set what it depends on.
 */
static void
master_maintain(struct master *m)
{
	if (m->state == MS_STOPPING)
		return;
	if (master_hold_work(m))
		return;
	master_check_rollback(m);
	master_spawn_missing(m);
	master_retire_old(m);
	if (m->pushq != NULL)
		relay_flush_pushed(m);
	master_notify_progress(m);
}

/* Stopping took too long: SIGKILL for every worker still there. */
static void
master_on_stop_deadline(void *arg)
{
	struct master *m = arg;
	struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (!w->killed) {
			log_warnx("worker %d (pid %ld) did not stop in time; "
			    "sending SIGKILL", w->slot, (long)w->pid);
			kill(w->pid, SIGKILL);
			w->killed = 1;
			master_arm_liveness(w);
		}
}

/* Operator actions: signals and control commands end up here. */

static void
master_begin_stop(struct master *m, int fast)
{
	struct wproc *w;
	double grace = fast ? MASTER_FAST_GRACE :
	    m->cfg->server.graceful_timeout;
	double deadline = clock_mono() + grace;

	if (m->state == MS_STOPPING && (m->stop_fast || !fast))
		return;		/* already stopping at least this fast */
	log_info("stopping (%s): %d workers to go", fast ? "fast" :
	    "graceful", wtable_count(m, 0));
	master_answer_reload(m, "egressd is stopping");
	notify_send("STOPPING=1");
	if (m->state != MS_STOPPING || deadline < m->stop_deadline)
		m->stop_deadline = deadline;
	evloop_timer_add(m->loop, &m->stop_timer, m->stop_deadline);
	m->state = MS_STOPPING;
	m->stop_fast = fast;
	if (m->events != NULL)
		events_stop(m->events);
	for (w = m->workers; w != NULL; w = w->next) {
		w->retiring = 1;
		master_stop_worker(w, fast, grace, MASTER_KILL_GRACE);
	}
}

/*
 * The restart after a goodbye: fresh workers and a fresh stream.  A goodbye
 * within server.min_uptime of the previous restart counts like a crash (an
 * orchestrator that says goodbye on every new stream must not make a spawn
 * storm): the new workers and the new stream wait out the crash-loop
 * back-off, and the next goodbye is measured from when they start.
 */
static void
master_goodbye_restart(struct master *m)
{
	double now = clock_mono(), delay = 0;

	if (m->goodbye_restart > 0 &&
	    now - m->goodbye_restart < m->cfg->server.min_uptime) {
		delay = master_backoff(m, now);
		log_warnx("goodbye loop: the last restart was %.2fs ago "
		    "(min_uptime %.1fs); workers and stream restart in %.1fs",
		    now - m->goodbye_restart, m->cfg->server.min_uptime,
		    delay);
	} else if (evloop_timer_pending(&m->respawn))
		delay = m->respawn_after - now;	/* a crash loop's back-off */
	if (delay < 0)
		delay = 0;
	m->goodbye_restart = now + delay;
	if (m->events != NULL)
		events_restart_after(m->events, delay);
}

/*
 * goodbye: every worker leaves gracefully on its own (each notifies the
 * orchestrator with its own instance ID); then fresh workers and a fresh
 * stream, or the master's exit, per server.on_goodbye.
 */
static void
master_goodbye(struct master *m, const char *reason)
{
	struct wproc *w;
	double grace = m->cfg->server.graceful_timeout;
	cJSON *o;

	if (m->state == MS_STOPPING)
		return;
	log_info("orchestrator said goodbye (%s); %s", reason ? reason :
	    "no reason given", m->cfg->server.on_goodbye == ON_GOODBYE_EXIT ?
	    "exiting once the workers are gone" : "replacing the workers");
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "reason", reason ? reason : "");
	for (w = m->workers; w != NULL; w = w->next) {
		if (w->retiring)
			continue;
		if (master_send(w, CH_GOODBYE, 0, o) == -1)
			kill(w->pid, SIGTERM);
		w->retiring = 1;
		w->retire_reason = "goodbye";
		w->state = WS_DRAINING;
		w->kill_after = clock_mono() + grace + MASTER_NOTICE_GRACE +
		    MASTER_KILL_GRACE;
		master_arm_liveness(w);
	}
	cJSON_Delete(o);
	if (m->cfg->server.on_goodbye == ON_GOODBYE_EXIT) {
		m->state = MS_STOPPING;
		m->stop_deadline = clock_mono() + grace + MASTER_NOTICE_GRACE +
		    MASTER_KILL_GRACE;
		evloop_timer_add(m->loop, &m->stop_timer, m->stop_deadline);
		notify_send("STOPPING=1");
		if (m->events != NULL)
			events_stop(m->events);
		return;
	}
	m->generation = master_next_generation(m);
	relay_new_instance_id(m);
	master_goodbye_restart(m);
}

static void
master_scale(struct master *m, int target, const char *why)
{
	if (target < 1)
		target = 1;
	if (target > CONFIG_WORKERS_MAX)
		target = CONFIG_WORKERS_MAX;
	if (target == m->target)
		return;
	log_info("%s: %d -> %d workers", why, m->target, target);
	m->target = target;
}

/* Keys that only a restart can change: keep the running values. */
static void
master_keep_restart_only_keys(struct master *m, struct egressd_config *cfg)
{
	static const struct {
		const char *name;
		size_t offset;
	} keys[] = {
		{ "server.pidfile", offsetof(struct egressd_config,
		    server.pidfile) },
		{ "server.state_dir", offsetof(struct egressd_config,
		    server.state_dir) },
		{ "server.control_socket", offsetof(struct egressd_config,
		    server.control_socket) },
		{ "server.user", offsetof(struct egressd_config, server.user) },
		{ "server.group", offsetof(struct egressd_config,
		    server.group) },
	};
	size_t i;
	char **now, **then, *tmp;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		now = (char **)((char *)cfg + keys[i].offset);
		then = (char **)((char *)m->cfg + keys[i].offset);
		if (strcmp(*now, *then) == 0)
			continue;
		log_warnx("reload: %s changed; it takes effect only after a "
		    "restart", keys[i].name);
		/* A copy: the running configuration may be restored. */
		if ((tmp = strdup(*then)) == NULL) {
			log_warnx("reload: out of memory keeping %s",
			    keys[i].name);
			continue;
		}
		free(*now);
		*now = tmp;
	}
	/*
	 * The files are made, and their identities noted, at start: the new
	 * workers write the running (resolved, never 0) value's files.
	 */
	if (store_files_resolve(cfg->store.files, m->opt.workers_override > 0 ?
	    m->opt.workers_override : cfg->server.workers) !=
	    m->cfg->store.files)
		log_warnx("reload: store.files changed; it takes effect only "
		    "after a restart");
	cfg->store.files = m->cfg->store.files;
	cfg->server.daemonize = m->cfg->server.daemonize;
}

/* A copy of the credentials in force, for a rollback; -1 without memory. */
static int
master_creds_copy(const struct orch_creds *from, struct orch_creds *to)
{
	memset(to, 0, sizeof(*to));
	if ((from->token_id != NULL &&
	    (to->token_id = strdup(from->token_id)) == NULL) ||
	    (from->token != NULL && (to->token = strdup(from->token)) == NULL)) {
		orch_creds_free(to);
		return -1;
	}
	return 0;
}

/*
 * What is in force before a rolling restart stays until the restart is
 * over (master_forget_previous), so that master_rollback can return to
 * it; a reload during a restart keeps the one from before both.
 */
static void
master_keep_previous(struct master *m, struct orch_creds *creds, int upgrade)
{
	if (upgrade)
		m->reload_upgrade = 1;
	if (m->prev_cfg != NULL) {
		orch_creds_free(creds);
		config_free(m->cfg);
		free(m->cfg);
		return;
	}
	m->prev_cfg = m->cfg;
	m->prev_creds = *creds;
	m->prev_target = m->target;
	m->stable_generation = m->generation;
}

static int
master_reload(struct master *m, int upgrade, char *err, size_t errlen)
{
	struct egressd_config *cfg;
	struct orch_creds creds;
	struct wproc *w;
	char lerr[CONFIG_ERR_MAX];

	if (m->state == MS_STOPPING) {
		snprintf(err, errlen, "stopping; reload ignored");
		return -1;
	}
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (config_load_file(cfg, m->opt.config_path, err, errlen) == -1) {
		log_errx("reload: %s; keeping the running configuration", err);
		free(cfg);
		return -1;
	}
	master_keep_restart_only_keys(m, cfg);
	if (master_creds_copy(&m->creds, &creds) == -1) {
		snprintf(err, errlen, "out of memory");
		config_free(cfg);
		free(cfg);
		return -1;
	}
	if (relay_reconfigure(m, cfg, err, errlen) == -1) {
		log_errx("reload: %s; keeping the running configuration", err);
		orch_creds_free(&creds);
		config_free(cfg);
		free(cfg);
		return -1;
	}
	if (log_open(cfg->log.file, cfg->log.level, cfg->log.format, lerr,
	    sizeof(lerr)) == -1)
		log_warnx("reload: %s; logging stays as it was", lerr);
	notify_send("RELOADING=1");
	master_keep_previous(m, &creds, upgrade);
	m->cfg = cfg;
	m->generation = master_next_generation(m);
	m->reloads++;
	m->reload_started = clock_mono();
	m->systemd_ready = 0;
	m->crash_streak = 0;
	m->respawn_after = 0;
	evloop_timer_cancel(&m->respawn);
	for (w = m->workers; w != NULL; w = w->next)
		master_arm_liveness(w);	/* worker_timeout may have changed */
	m->target = m->opt.workers_override > 0 ? m->opt.workers_override :
	    cfg->server.workers;
	relay_start_events(m);
	textfile_start(m);	/* its path or interval may have changed */
	master_db_reconfigured(m);	/* store.max_bytes may have, too */
	log_info("reload: configuration %s loaded; rolling restart to "
	    "generation %d with %d workers", m->opt.config_path,
	    m->generation, m->target);
	return 0;
}

static void
master_reopen_logs(struct master *m)
{
	struct wproc *w;

	if (log_reopen() == -1)
		log_warn("log reopen");
	else
		log_info("log reopened");
	for (w = m->workers; w != NULL; w = w->next)
		if (master_send(w, CH_LOG_REOPEN, 0, NULL) == -1)
			kill(w->pid, SIGUSR1);
}

/*
 * Binary upgrade (USR2, egressctl upgrade).  The new binary first runs
 * `-t` with the configuration in force (reexec.c, a child reaped like
 * the workers); only when it passes, and says it reads the state this
 * image writes, is the master re-executed in place: same PID, the
 * descriptors and the state blob (handover.c) crossing exec.  The new
 * image adopts the workers (master_adopt) and replaces them by a rolling
 * restart; one that cannot start goes back to this image.
 */

/* The upgrade did not happen: say why, and who waits hears it. */
static void
master_upgrade_fail(struct master *m, const char *why)
{
	char state[REEXEC_REASON_MAX + 64];

	log_errx("upgrade refused: %s; egressd %s keeps running", why,
	    EGRESSD_VERSION);
	snprintf(m->upgrade_failure, sizeof(m->upgrade_failure), "%s", why);
	m->upgrading = 0;
	m->upgrade_started = 0;
	if (m->upgrade_waiter != NULL) {
		control_finish(m->upgrade_waiter, NULL, why);
		m->upgrade_waiter = NULL;
	}
	if (m->systemd_ready) {
		snprintf(state, sizeof(state), "READY=1\nSTATUS=egressd %s: "
		    "upgrade refused: %s", EGRESSD_VERSION, why);
		if (notify_send(state) == -1)
			log_warn("systemd notify");
	}
}

/* A reason to refuse an upgrade now, or NULL. */
static const char *
master_upgrade_refusal(const struct master *m)
{
	if (m->state == MS_STOPPING)
		return "egressd is stopping";
	if (m->upgrading)
		return "an upgrade is already under way";
	if (m->reload_started > 0)
		return "a rolling restart is under way; try again once it is "
		    "done";
	if (m->work_held)
		return "work is held back (the database is gone)";
	return NULL;
}

/* Start the probe; -1 with err (logged) when the upgrade cannot begin. */
static int
master_upgrade_begin(struct master *m, const char *who, char *err,
    size_t errlen)
{
	const char *why = master_upgrade_refusal(m);

	log_info("upgrade requested (%s): checking %s -t -c %s", who,
	    m->reexec.exe, m->opt.config_path);
	if (why != NULL) {
		snprintf(err, errlen, "%s", why);
		log_errx("upgrade refused: %s", why);
		return -1;
	}
	m->upgrade_started = clock_wall();
	if (reexec_probe_start(&m->reexec, m->opt.config_path, err,
	    errlen) == -1) {
		master_upgrade_fail(m, err);
		return -1;
	}
	m->upgrading = 1;
	return 0;
}

/* The probe passed: hand everything over and exec; returns on failure. */
static void
master_upgrade_exec(struct master *m)
{
	int fds[HANDOVER_FDS_MAX], nfds = 0, blob = -1, argc = 0;
	char err[REEXEC_REASON_MAX], workers[16], note[128];
	char *argv[8], *text = NULL;
	cJSON *state;

	master_ctl_expire(m);	/* health --deep answers do not cross */
	state = handover_encode(m, m->upgrade_waiter != NULL ?
	    control_reply_fd(m->upgrade_waiter) : -1, fds, &nfds);
	if (state == NULL || (text = cJSON_PrintUnformatted(state)) == NULL) {
		cJSON_Delete(state);
		master_upgrade_fail(m, "out of memory for the upgrade state");
		return;
	}
	cJSON_Delete(state);
	blob = reexec_blob_create(text, err, sizeof(err));
	cJSON_free(text);
	if (blob == -1) {
		master_upgrade_fail(m, err);
		return;
	}
	argv[argc++] = m->reexec.exe;
	argv[argc++] = "-c";
	argv[argc++] = (char *)m->opt.config_path;
	if (m->opt.workers_override > 0) {
		snprintf(workers, sizeof(workers), "%d",
		    m->opt.workers_override);
		argv[argc++] = "-w";
		argv[argc++] = workers;
	}
	argv[argc] = NULL;
	snprintf(note, sizeof(note), "RELOADING=1\nSTATUS=upgrading to "
	    "egressd %s", m->reexec.new_version);
	notify_send(note);
	log_info("upgrade: executing %s (egressd %s -> %s) with %d workers "
	    "to adopt", m->reexec.exe, EGRESSD_VERSION,
	    m->reexec.new_version, wtable_count(m, 0));
	reexec_exec(&m->reexec, argv, blob, fds, nfds, err, sizeof(err));
	close(blob);
	m->systemd_ready = 1;	/* READY=1 again with the refusal */
	master_upgrade_fail(m, err);
}

/* A child that is not a worker ended: the probe, or nobody we know. */
static void
master_upgrade_reaped(struct master *m, pid_t pid, int status)
{
	char err[REEXEC_REASON_MAX];

	switch (reexec_probe_reaped(&m->reexec, pid, status, err,
	    sizeof(err))) {
	case REEXEC_PROBE_OK:
		log_info("upgrade: %s -t passed (egressd %s)", m->reexec.exe,
		    m->reexec.new_version);
		if (m->state != MS_RUNNING || m->reload_started > 0)
			master_upgrade_fail(m, "egressd began to stop or "
			    "reload while the new binary was checked");
		else
			master_upgrade_exec(m);
		break;
	case REEXEC_PROBE_FAILED:
		master_upgrade_fail(m, err);
		break;
	default:
		break;
	}
}

/* upgrade: the reply comes with the outcome (control_defer). */
static cJSON *
master_command_upgrade(struct master *m, char *err, size_t errlen)
{
	if (master_upgrade_begin(m, "egressctl upgrade", err, errlen) == -1)
		return NULL;
	/* Without memory for the deferral the upgrade goes on unwatched. */
	m->upgrade_waiter = control_defer(m->ctl);
	err[0] = '\0';
	if (m->upgrade_waiter == NULL)
		return master_command_ok();
	return NULL;
}

static void
master_on_signal(int fd, short revents, void *arg)
{
	struct master *m = arg;
	char err[CONFIG_ERR_MAX];
	int signo;

	(void)fd;
	(void)revents;
	while ((signo = sigpipe_next()) != 0) {
		switch (signo) {
		case SIGCHLD:
			master_reap(m);
			break;
		case SIGTERM:
			master_begin_stop(m, 0);
			break;
		case SIGINT:
		case SIGQUIT:
			master_begin_stop(m, 1);
			break;
		case SIGHUP:
			log_info("SIGHUP: reloading %s", m->opt.config_path);
			master_reload(m, 0, err, sizeof(err));
			break;
		case SIGTTIN:
			master_scale(m, m->target + 1, "SIGTTIN");
			break;
		case SIGTTOU:
			if (m->target <= 1)
				log_warnx("SIGTTOU: already at one worker");
			master_scale(m, m->target - 1, "SIGTTOU");
			break;
		case SIGUSR1:
			master_reopen_logs(m);
			break;
		case SIGUSR2:
			(void)master_upgrade_begin(m, "SIGUSR2", err,
			    sizeof(err));
			break;
		}
	}
}

static cJSON *
master_command_ok(void)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddTrueToObject(o, "ok");
	return o;
}

static cJSON *
master_command_scale(struct master *m, const cJSON *req, char *err,
    size_t errlen)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "workers");
	cJSON *o;

	if (!cJSON_IsNumber(n) || n->valuedouble != (int)n->valuedouble ||
	    n->valueint < 1 || n->valueint > CONFIG_WORKERS_MAX) {
		snprintf(err, errlen, "\"workers\" must be an integer between "
		    "1 and %d", CONFIG_WORKERS_MAX);
		return NULL;
	}
	if (m->state == MS_STOPPING) {
		snprintf(err, errlen, "stopping; scale ignored");
		return NULL;
	}
	master_scale(m, n->valueint, "scale");
	o = master_command_ok();
	cJSON_AddNumberToObject(o, "target", m->target);
	return o;
}

static cJSON *
master_command_stop(struct master *m, const cJSON *req, char *err,
    size_t errlen)
{
	const cJSON *fast = cJSON_GetObjectItemCaseSensitive(req, "fast");

	if (fast != NULL && !cJSON_IsBool(fast)) {
		snprintf(err, errlen, "\"fast\" must be true or false");
		return NULL;
	}
	master_begin_stop(m, cJSON_IsTrue(fast));
	return master_command_ok();
}

/*
 * reload; with "wait": true the reply comes once the outcome is known:
 * every new worker READY (or past graceful_timeout), or the rollback's
 * reason as the error.
 */
static cJSON *
master_command_reload(struct master *m, const cJSON *req, char *err,
    size_t errlen)
{
	const cJSON *wait = cJSON_GetObjectItemCaseSensitive(req, "wait");
	struct reload_waiter *r;
	cJSON *o;

	if (wait != NULL && !cJSON_IsBool(wait)) {
		snprintf(err, errlen, "\"wait\" must be true or false");
		return NULL;
	}
	if (master_reload(m, 0, err, errlen) == -1)
		return NULL;
	if (cJSON_IsTrue(wait) && (r = calloc(1, sizeof(*r))) != NULL) {
		if ((r->reply = control_defer(m->ctl)) != NULL) {
			r->next = m->reload_waiters;
			m->reload_waiters = r;
			err[0] = '\0';
			return NULL;
		}
		free(r);
	}
	o = master_command_ok();
	cJSON_AddNumberToObject(o, "generation", m->generation);
	return o;
}

/* Control commands: the arbiter acts on some and hands the rest on. */
static cJSON *
master_on_command(const char *cmd, const cJSON *req, void *arg, char *err,
    size_t errlen)
{
	struct master *m = arg;

	if (strcmp(cmd, CTL_CMD_RELOAD) == 0)
		return master_command_reload(m, req, err, errlen);
	if (strcmp(cmd, CTL_CMD_STOP) == 0)
		return master_command_stop(m, req, err, errlen);
	if (strcmp(cmd, CTL_CMD_SCALE) == 0)
		return master_command_scale(m, req, err, errlen);
	if (strcmp(cmd, CTL_CMD_UPGRADE) == 0)
		return master_command_upgrade(m, err, errlen);
	return master_ctl_handle(cmd, req, arg, err, errlen);
}

/* Set-up and the loop. */

static int
master_catch_signals(struct master *m)
{
	static const int signals[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT,
	    SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2 };
	size_t i;

	if ((m->sigfd = sigpipe_open()) == -1)
		return -1;
	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (sigpipe_catch(signals[i]) == -1)
			return -1;
	signal(SIGPIPE, SIG_IGN);
	sigpipe_unblock_all();	/* whatever mask our parent left us */
	return evloop_add(m->loop, m->sigfd, POLLIN, master_on_signal, m);
}

/*
 * The control socket: bound, or the one an upgrade handed over (whose
 * paths the file cannot change).  The binary's path and the running image
 * are noted here too: an upgrade without them is refused, not the start.
 */
static int
master_open_control(struct master *m, struct egressd_config *cfg, char *err,
    size_t errlen)
{
	const struct cJSON *state = m->opt.inherit != NULL ?
	    m->opt.inherit->state : NULL;
	char uerr[PATH_MAX + 128];
	int fd;

	if (reexec_init(&m->reexec, m->loop, state != NULL ?
	    handover_string(state, "exe") : NULL, uerr, sizeof(uerr)) == -1)
		log_warnx("%s; upgrades are refused", uerr);
	if (state == NULL) {
		m->ctl = control_open(cfg->server.control_socket, m->loop,
		    master_on_command, m, err, errlen);
		return m->ctl != NULL ? 0 : -1;
	}
	if (handover_keep_paths(cfg, state, err, errlen) == -1)
		return -1;
	if ((fd = handover_fd(state, "control_fd")) < 0) {
		snprintf(err, errlen, "upgrade: no control socket handed over");
		return -1;
	}
	m->ctl = control_adopt(fd, cfg->server.control_socket, m->loop,
	    master_on_command, m, err, errlen);
	return m->ctl != NULL ? 0 : -1;
}

struct master *
master_new(struct egressd_config *cfg, const struct master_options *opt,
    char *err, size_t errlen)
{
	struct master *m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->sigfd = -1;
	m->reexec.self_fd = m->reexec.probe_fd = -1;
	m->opt = *opt;
	m->goodbye = master_goodbye;
	evloop_timer_init(&m->stop_timer, master_on_stop_deadline, m);
	evloop_timer_init(&m->respawn, master_on_respawn, m);
	m->generation = m->last_generation = m->stable_generation = 1;
	m->started = clock_mono();
	m->target = opt->workers_override > 0 ? opt->workers_override :
	    cfg->server.workers;
	if ((m->rxbuf = malloc(CHANNEL_MAX_FRAME + 1)) == NULL ||
	    (m->loop = evloop_new()) == NULL ||
	    log_keep_recent(1) == -1) {	/* for push_logs */
		snprintf(err, errlen, "out of memory");
		master_free(m);
		return NULL;
	}
	if (master_catch_signals(m) == -1) {
		snprintf(err, errlen, "signal handling: %s", strerror(errno));
		master_free(m);
		return NULL;
	}
	if (relay_setup(m, cfg, NULL, err, errlen) == -1) {
		master_free(m);
		return NULL;
	}
	if (master_open_control(m, cfg, err, errlen) == -1) {
		master_free(m);
		return NULL;
	}
	m->cfg = cfg;		/* ownership passes only on success */
	return m;
}

int
master_chown_control(struct master *m, unsigned uid, unsigned gid)
{
	return control_chown(m->ctl, uid, gid);
}

int
master_open_store(struct master *m, char *err, size_t errlen)
{
	if (master_db_start(m, err, errlen) == -1)
		return -1;
	return stateguard_start(m, err, errlen);
}

/*
 * The image an upgrade started (or went back to): the workers of the
 * previous image join the table as they were, their channels as they
 * were; what they sent meanwhile waits on the channels.
 */
static void
master_adopt_worker(struct master *m, const cJSON *item, double now)
{
	struct wproc *w;
	int flags;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warnx("upgrade: out of memory adopting a worker");
		return;
	}
	if (handover_worker(item, w, now) == -1) {
		log_warnx("upgrade: a worker entry without pid or slot; "
		    "skipped");
		free(w);
		return;
	}
	w->master = m;
	if (w->retiring) {
		w->retire_reason = "retired before the upgrade";
		w->kill_after = now + m->cfg->server.graceful_timeout +
		    MASTER_NOTICE_GRACE + MASTER_KILL_GRACE;
	}
	evloop_timer_init(&w->liveness, master_on_liveness, w);
	master_arm_liveness(w);
	evloop_timer_init(&w->ready_by, master_on_ready_by, w);
	if (w->fd >= 0 && ((flags = fcntl(w->fd, F_GETFD)) == -1 ||
	    fcntl(w->fd, F_SETFD, flags | FD_CLOEXEC) == -1 ||
	    evloop_add(m->loop, w->fd, POLLIN, master_on_channel, w) == -1)) {
		log_warn("upgrade: worker %d (pid %ld): its channel", w->slot,
		    (long)w->pid);
		close(w->fd);
		w->fd = -1;
		master_channel_broken(m, w, "its channel did not cross the "
		    "upgrade");
	}
	w->next = m->workers;
	m->workers = w;
}

/* Back in the previous image: nothing changed but the failure noted. */
static void
master_adopt_failed(struct master *m, const char *why,
    struct control_reply *waiter)
{
	char state[REEXEC_REASON_MAX + 64];

	snprintf(m->upgrade_failure, sizeof(m->upgrade_failure), "%s", why);
	log_errx("upgrade failed: %s; egressd %s took the workers back and "
	    "keeps running", why, EGRESSD_VERSION);
	if (waiter != NULL)
		control_finish(waiter, NULL, m->upgrade_failure);
	m->upgrade_started = 0;
	snprintf(state, sizeof(state), "READY=1\nSTATUS=egressd %s: upgrade "
	    "failed: %s", EGRESSD_VERSION, why);
	if (notify_send(state) == -1)
		log_warn("systemd notify");
	m->systemd_ready = 1;
}

/* Adopted: a rolling restart puts every slot on this binary. */
static void
master_adopt_done(struct master *m, struct control_reply *waiter)
{
	struct reload_waiter *r;

	m->upgrades++;
	m->upgrade_failure[0] = '\0';
	if (waiter != NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			control_finish(waiter, NULL, "out of memory");
		else {
			r->reply = waiter;
			r->next = m->reload_waiters;
			m->reload_waiters = r;
		}
	}
	m->generation = master_next_generation(m);
	m->reload_started = clock_mono();
	m->systemd_ready = 0;
	log_info("upgrade: egressd %s took over from %s (pid %ld) with %d "
	    "workers; rolling restart to generation %d", EGRESSD_VERSION,
	    m->upgrade_from, (long)getpid(), wtable_count(m, 0),
	    m->generation);
}

static void
master_adopt(struct master *m)
{
	struct reexec_inherit *in = m->opt.inherit;
	struct control_reply *waiter = NULL;
	const cJSON *item;
	char err[CONFIG_ERR_MAX];
	double now = clock_mono();
	int fd;

	if (handover_restore(m, in->state, err, sizeof(err)) == -1)
		reexec_fallback(err);	/* returns only without a way back */
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(in->state,
	    "workers"))
		master_adopt_worker(m, item, now);
	if ((fd = handover_fd(in->state, "waiter_fd")) >= 0 &&
	    (waiter = control_adopt_reply(m->ctl, fd)) == NULL)
		log_warnx("upgrade: egressctl upgrade left before the outcome");
	if (in->failed[0] != '\0')
		master_adopt_failed(m, in->failed, waiter);
	else
		master_adopt_done(m, waiter);
	reexec_disarm(in);
	master_reap(m);		/* those that ended while exec ran */
}

int
master_run(struct master *m)
{
	if (m->opt.inherit != NULL)
		master_adopt(m);
	else
		log_info("egressd %s starting: %d workers, config %s",
		    EGRESSD_VERSION, m->target, m->opt.config_path);
	srandom((unsigned)getpid() ^ (unsigned)clock_wall());
	relay_start_events(m);
	textfile_start(m);
	while (m->state == MS_RUNNING || m->workers != NULL) {
		if (m->reload_wanted) {
			char err[CONFIG_ERR_MAX];

			m->reload_wanted = 0;
			master_reload(m, 1, err, sizeof(err));
		}
		master_maintain(m);
		if (m->state == MS_STOPPING && m->workers == NULL)
			break;
		if (evloop_run_once(m->loop, -1) == -1) {
			log_warn("poll");
			sleep(1);	/* never spin on a broken poll */
		}
	}
	if (m->npushq > 0)
		log_errx("%d pushed operations never reached a worker",
		    m->npushq);
	log_info("all workers gone; exiting");
	return m->exit_status;
}

void
master_free(struct master *m)
{
	struct wproc *w;

	if (m == NULL)
		return;
	while ((w = m->workers) != NULL) {
		m->workers = w->next;
		if (w->fd >= 0)
			close(w->fd);
		evloop_timer_cancel(&w->liveness);
		evloop_timer_cancel(&w->ready_by);
		relay_sent_free(w);
		free(w);
	}
	master_ctl_expire(m);	/* answer what still waits */
	master_answer_reload(m, "egressd is stopping");
	if (m->prev_cfg != NULL) {
		config_free(m->prev_cfg);
		free(m->prev_cfg);
	}
	orch_creds_free(&m->prev_creds);
	textfile_stop(m);
	reexec_free(&m->reexec);
	if (m->upgrade_waiter != NULL)
		control_finish(m->upgrade_waiter, NULL, "egressd is stopping");
	control_close(m->ctl, 1);
	relay_free(m);
	stateguard_free(m);
	store_close(&m->store);
	if (m->cfg != NULL) {
		config_free(m->cfg);
		free(m->cfg);
	}
	if (m->sigfd >= 0)
		sigpipe_close();
	evloop_free(m->loop);
	free(m->rxbuf);
	free(m);
}
