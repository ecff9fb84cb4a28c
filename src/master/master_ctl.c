/*
 * master_ctl: the control socket's queries, answered from the arbiter's
 * state — status, health (per-worker detail and the healthy / degraded /
 * down verdict egressctl turns into its exit status, with its reasons:
 * those found here and those other checks set in degraded.c), metrics
 * (Prometheus text of every worker's operations, reaped ones too, the
 * orchestrator link, the outbox and the process_* figures; also what
 * textfile.c writes).  The link to the orchestrator is what the workers
 * report of their exchanges and the stream of its events; the outbox is
 * read from the database (master_db.c).  The commands that
 * act (reload, stop, scale) are the arbiter's own: master.c answers them
 * and hands every other command here.
 * health --deep also asks each worker for its live detail (STATUS frames)
 * and answers once all have replied or MASTER_DEEP_TIMEOUT has passed (a
 * timer per request); the master goes on serving meanwhile.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/channel.h"
#include "core/clock.h"
#include "master/control.h"
#include "core/evloop.h"
#include "master/events.h"
#include "master_priv.h"
#include "core/metrics.h"
#include "core/procinfo.h"
#include "core/version.h"

static const char *
master_ctl_state_name(const struct master *m)
{
	if (m->state == MS_STOPPING)
		return "stopping";
	return m->reload_started > 0 ? "reloading" : "running";
}

/* The reasons other checks set (degraded.c), appended to reasons. */
static void
master_ctl_add_degraded(const struct master *m, cJSON *reasons)
{
	cJSON *list = degraded_json(&m->degraded), *e;

	if (list == NULL)
		return;
	while ((e = cJSON_DetachItemFromArray(list, 0)) != NULL)
		cJSON_AddItemToArray(reasons, e);
	cJSON_Delete(list);
}

/* health.stale_after as loaded; a defaults-only config has it unset. */
static double
master_ctl_stale_after(const struct master *m)
{
	double stale = m->cfg->health.stale_after;

	if (stale > 0)
		return stale;
	stale = CONFIG_STALE_POLLS * m->cfg->orchestrator.poll_interval;
	return stale > CONFIG_STALE_MIN ? stale : CONFIG_STALE_MIN;
}

/* Wall time of the last successful exchange (only, or any worker); 0. */
static double
master_ctl_last_ok(const struct master *m, const struct wproc *only)
{
	const struct wproc *w;
	double t = only == NULL ? m->contact_ok_at : 0;

	for (w = m->workers; w != NULL; w = w->next)
		if ((only == NULL || w == only) && w->link.ok_at > t)
			t = w->link.ok_at;
	return t;
}

/* Whether a live worker's last exchange succeeded. */
static int
master_ctl_up(const struct master *m)
{
	const struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (!w->retiring && w->link.up)
			return 1;
	return 0;
}

static cJSON *
master_ctl_time(double wall)
{
	return wall > 0 ? cJSON_CreateNumber(wall) : cJSON_CreateNull();
}

static cJSON *
master_ctl_stream_json(const struct master *m)
{
	struct events_link l;
	cJSON *o;

	if (m->events == NULL)
		return cJSON_CreateNull();
	events_link(m->events, &l);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "state", events_state_names[l.state]);
	cJSON_AddNumberToObject(o, "since", l.since);
	cJSON_AddItemToObject(o, "last_event", master_ctl_time(l.last_event));
	cJSON_AddNumberToObject(o, "failures", (double)l.failures);
	cJSON_AddStringToObject(o, "last_error", l.error);
	return o;
}

static cJSON *
master_ctl_outbox_json(const struct master *m, double now)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "rows", (double)m->outbox.rows);
	cJSON_AddNumberToObject(o, "dead", (double)m->outbox.dead);
	cJSON_AddNumberToObject(o, "oldest_age", m->outbox.rows > 0 &&
	    m->outbox.oldest > 0 ? now - m->outbox.oldest : 0);
	cJSON_AddNumberToObject(o, "max_age", m->cfg->health.outbox_max_age);
	return o;
}

/* What the workers say of the orchestrator, all of them together. */
static cJSON *
master_ctl_orch_json(const struct master *m, double now)
{
	double last = master_ctl_last_ok(m, NULL);
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "up", master_ctl_up(m));
	cJSON_AddItemToObject(o, "last_contact", master_ctl_time(last));
	cJSON_AddItemToObject(o, "contact_age", last > 0 ?
	    cJSON_CreateNumber(now - last) : cJSON_CreateNull());
	cJSON_AddNumberToObject(o, "stale_after", master_ctl_stale_after(m));
	return o;
}

/* The link sections of status and health: contact, stream, outbox. */
static void
master_ctl_add_links(struct master *m, cJSON *o)
{
	double now = clock_wall();

	cJSON_AddItemToObject(o, "contact", master_ctl_orch_json(m, now));
	cJSON_AddItemToObject(o, "stream", master_ctl_stream_json(m));
	cJSON_AddItemToObject(o, "outbox", master_ctl_outbox_json(m, now));
}

/*
 * The binary: its path, the last upgrade's outcome, and the version of
 * each worker (the image that forked it) in "worker_table".
 */
static void
master_ctl_add_upgrade(const struct master *m, cJSON *o, double now)
{
	const struct wproc *w;
	cJSON *up, *list, *e;

	cJSON_AddStringToObject(o, "exe", m->reexec.exe);
	if ((up = cJSON_AddObjectToObject(o, "upgrade")) != NULL) {
		cJSON_AddStringToObject(up, "from", m->upgrade_from);
		cJSON_AddStringToObject(up, "failure", m->upgrade_failure);
		cJSON_AddNumberToObject(up, "upgrades", (double)m->upgrades);
		cJSON_AddBoolToObject(up, "under_way", m->upgrading ||
		    m->upgrade_started > 0);
	}
	if ((list = cJSON_AddArrayToObject(o, "worker_table")) == NULL)
		return;
	for (w = m->workers; w != NULL; w = w->next) {
		if ((e = cJSON_CreateObject()) == NULL)
			return;
		cJSON_AddNumberToObject(e, "id", w->slot);
		cJSON_AddNumberToObject(e, "pid", w->pid);
		cJSON_AddNumberToObject(e, "generation", w->generation);
		cJSON_AddStringToObject(e, "version", w->version);
		cJSON_AddBoolToObject(e, "ready", w->ready && !w->retiring);
		cJSON_AddBoolToObject(e, "retiring", w->retiring);
		cJSON_AddNumberToObject(e, "uptime", now - w->started);
		cJSON_AddItemToArray(list, e);
	}
}

/* The database against store.max_bytes (pages as the last look found). */
static void
master_ctl_database(const struct master *m, cJSON *o)
{
	struct store_size size, *sz = &size;
	const char *why = master_db_degraded(m);
	cJSON *d = cJSON_AddObjectToObject(o, "database");

	master_db_sizes(m, &size);
	cJSON_AddNumberToObject(d, "file_bytes", (double)sz->file_bytes);
	cJSON_AddNumberToObject(d, "wal_bytes", (double)sz->wal_bytes);
	cJSON_AddNumberToObject(d, "used_bytes", (double)sz->used_bytes);
	cJSON_AddNumberToObject(d, "free_bytes", (double)sz->free_bytes);
	cJSON_AddNumberToObject(d, "max_bytes",
	    (double)m->cfg->store.max_bytes);
	cJSON_AddNumberToObject(d, "files", m->db_nfiles);
	cJSON_AddNumberToObject(d, "pruned_rows", (double)m->disk.pruned);
	cJSON_AddNumberToObject(d, "size_checks", (double)m->disk.checks);
	if (why != NULL)
		cJSON_AddStringToObject(d, "degraded", why);
	else
		cJSON_AddNullToObject(d, "degraded");
}

static cJSON *
master_ctl_status(struct master *m)
{
	cJSON *o = cJSON_CreateObject(), *reasons;
	double now = clock_mono();

	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddStringToObject(o, "version", EGRESSD_VERSION);
	cJSON_AddStringToObject(o, "state", master_ctl_state_name(m));
	cJSON_AddNumberToObject(o, "generation", m->generation);
	cJSON_AddNumberToObject(o, "target", m->target);
	cJSON_AddNumberToObject(o, "workers", wtable_count(m, 0));
	cJSON_AddNumberToObject(o, "ready", wtable_count(m, 1));
	cJSON_AddNumberToObject(o, "uptime", now - m->started);
	cJSON_AddStringToObject(o, "config", m->opt.config_path);
	cJSON_AddNumberToObject(o, "rss", (double)procinfo_rss(0));
	cJSON_AddStringToObject(o, "instance_id", m->instance_id);
	cJSON_AddStringToObject(o, "orchestrator", m->cfg->orchestrator.url);
	cJSON_AddNumberToObject(o, "pushed_waiting", m->npushq);
	if (m->reload_failure[0] != '\0')
		cJSON_AddStringToObject(o, "last_reload_failure",
		    m->reload_failure);
	else
		cJSON_AddNullToObject(o, "last_reload_failure");
	if ((reasons = cJSON_AddArrayToObject(o, "reasons")) != NULL)
		master_ctl_add_degraded(m, reasons);
	master_db_outbox(m);
	master_ctl_add_links(m, o);
	master_ctl_add_upgrade(m, o, now);
	master_ctl_database(m, o);
	return o;
}

static const char *
master_ctl_worker_health(const struct master *m, const struct wproc *w,
    double now)
{
	if (now - w->last_seen > 2 * m->cfg->worker.heartbeat_interval)
		return "stale";
	return w->ready ? "ok" : "not_ready";
}

static cJSON *
master_ctl_link_json(const struct wproc *w)
{
	cJSON *o;

	if (!w->link.known)
		return cJSON_CreateNull();	/* no orchestrator, or no word */
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "state", w->link.up ? "connected" :
	    w->link.failures > 0 ? "backing_off" : "connecting");
	cJSON_AddNumberToObject(o, "since", w->link.since);
	cJSON_AddItemToObject(o, "last_ok", master_ctl_time(w->link.ok_at));
	cJSON_AddNumberToObject(o, "failures", (double)w->link.failures);
	cJSON_AddStringToObject(o, "last_error", w->link.error);
	return o;
}

static cJSON *
master_ctl_worker_json(const struct master *m, const struct wproc *w,
    double now)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", w->slot);
	cJSON_AddNumberToObject(o, "pid", w->pid);
	cJSON_AddStringToObject(o, "instance_id", w->instance_id);
	cJSON_AddNumberToObject(o, "generation", w->generation);
	cJSON_AddStringToObject(o, "version", w->version);
	cJSON_AddStringToObject(o, "state", wtable_state_names[w->state]);
	cJSON_AddStringToObject(o, "health", master_ctl_worker_health(m, w, now));
	cJSON_AddBoolToObject(o, "ready", w->ready && !w->retiring);
	cJSON_AddBoolToObject(o, "retiring", w->retiring);
	cJSON_AddNumberToObject(o, "uptime", now - w->started);
	cJSON_AddNumberToObject(o, "heartbeat_age", now - w->last_seen);
	cJSON_AddNumberToObject(o, "inflight", (double)w->inflight);
	cJSON_AddNumberToObject(o, "done", (double)w->done);
	cJSON_AddNumberToObject(o, "failed", (double)w->failed);
	cJSON_AddNumberToObject(o, "rss", (double)w->rss);
	cJSON_AddNumberToObject(o, "restarts", w->slot >= 1 &&
	    w->slot <= CONFIG_WORKERS_MAX ? m->restarts[w->slot - 1] : 0);
	cJSON_AddItemToObject(o, "orchestrator", master_ctl_link_json(w));
	return o;
}

static void
master_ctl_reason(cJSON *reasons, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One reason, in the shape degraded_json gives: {"key", "reason"}. */
static void
master_ctl_reason(cJSON *reasons, const char *key, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	cJSON *o;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if ((o = cJSON_CreateObject()) == NULL)
		return;
	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddStringToObject(o, "reason", text);
	cJSON_AddItemToArray(reasons, o);
}

/*
 * The orchestrator's side of the verdict: no successful exchange for
 * health.stale_after (counted from the start before the first one), or
 * a result waiting longer than health.outbox_max_age.  Each adds a reason.
 */
static void
master_ctl_link_reasons(const struct master *m, const struct wproc *only,
    cJSON *reasons)
{
	double now = clock_wall(), stale = master_ctl_stale_after(m);
	double last = master_ctl_last_ok(m, only), from = last;
	double max_age = m->cfg->health.outbox_max_age;
	const struct wproc *w;
	const char *error = "";

	if (m->cfg->orchestrator.url[0] == '\0')
		return;		/* nothing to be in contact with */
	if (from == 0)
		from = now - (clock_mono() - m->started);
	for (w = m->workers; w != NULL; w = w->next)
		if ((only == NULL || w == only) && !w->link.up &&
		    w->link.error[0] != '\0')
			error = w->link.error;
	if (now - from > stale)
		master_ctl_reason(reasons, "orchestrator", "no successful "
		    "exchange with the "
		    "orchestrator for %.0fs (health.stale_after %.15gs)%s%s",
		    now - from, stale, error[0] ? "; last error: " : "", error);
	if (only == NULL && max_age > 0 && m->outbox.rows > 0 &&
	    m->outbox.oldest > 0 && now - m->outbox.oldest > max_age)
		master_ctl_reason(reasons, "outbox", "%lld results wait in "
		    "the outbox, "
		    "the oldest for %.0fs (health.outbox_max_age %.15gs)",
		    (long long)m->outbox.rows, now - m->outbox.oldest,
		    max_age);
}

/*
 * healthy: target workers ready, none stale, the orchestrator in reach
 * and the outbox moving, no reason set in degraded.c; down: none ready;
 * degraded otherwise, with the reasons listed.
 */
static const char *
master_ctl_verdict(const struct master *m, const struct wproc *only, double now,
    cJSON *reasons)
{
	const struct wproc *w;
	const char *why;
	int ok = 0, stale = 0, want = only != NULL ? 1 : m->target;

	for (w = m->workers; w != NULL; w = w->next) {
		if (w->retiring || (only != NULL && w != only))
			continue;
		if (strcmp(master_ctl_worker_health(m, w, now), "stale") == 0)
			stale++;
		else if (w->ready)
			ok++;
	}
	master_ctl_add_degraded(m, reasons);	/* listed when down, too */
	if (m->state == MS_STOPPING)
		master_ctl_reason(reasons, "state", "stopping");
	else if (ok == 0)
		master_ctl_reason(reasons, "workers", "no worker is ready");
	if (m->state == MS_STOPPING || ok == 0)
		return CTL_DOWN;
	if (ok < want)
		master_ctl_reason(reasons, "workers", "%d of %d workers ready",
		    ok, want);
	if (stale > 0)
		master_ctl_reason(reasons, "heartbeat", "%d workers sent no "
		    "heartbeat for %.15gs", stale,
		    2 * m->cfg->worker.heartbeat_interval);
	master_ctl_link_reasons(m, only, reasons);
	if ((why = master_db_degraded(m)) != NULL)	/* agent-wide */
		master_ctl_reason(reasons, "disk", "%s", why);
	return cJSON_GetArraySize(reasons) == 0 ? CTL_HEALTHY : CTL_DEGRADED;
}


static struct wproc *
master_ctl_find_worker(struct master *m, int id)
{
	struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (w->slot == id && !w->retiring)
			return w;
	for (w = m->workers; w != NULL; w = w->next)
		if (w->pid == id)
			return w;
	return NULL;
}

/* One health --deep request: its reply, and how many workers it awaits. */
struct deep_health {
	struct control_reply *reply;
	cJSON *health;
	int waiting;
	struct evloop_timer timeout;
	struct master *m;
	struct deep_health *next;
};

static void
master_ctl_deep_done(struct master *m, struct deep_health *d)
{
	struct deep_health **pp;

	for (pp = &m->deep; *pp != NULL; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	evloop_timer_cancel(&d->timeout);
	control_finish(d->reply, d->health, NULL);
	free(d);
}

/* The worker entry of pid in a health reply. */
static cJSON *
master_ctl_entry(cJSON *health, pid_t pid)
{
	cJSON *w;

	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(health,
	    "workers"))
		if ((pid_t)cJSON_GetNumberValue(cJSON_GetObjectItem(w,
		    "pid")) == pid)
			return w;
	return NULL;
}

/* Answer d now: workers that did not answer in time are marked so. */
static void
master_ctl_deep_expire(struct master *m, struct deep_health *d)
{
	cJSON *entry;

	cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(d->health,
	    "workers"))
		if (!cJSON_HasObjectItem(entry, "live"))
			cJSON_AddNullToObject(entry, "live");
	master_ctl_deep_done(m, d);
}

static void
master_ctl_on_deep_timeout(void *arg)
{
	struct deep_health *d = arg;

	master_ctl_deep_expire(d->m, d);
}

/* Ask every listed worker; those that cannot be asked get "live": null. */
static cJSON *
master_ctl_deep(struct master *m, cJSON *health, char *err, size_t errlen)
{
	struct deep_health *d;
	struct wproc *w;
	cJSON *entry;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		cJSON_Delete(health);
		return NULL;
	}
	for (w = m->workers; w != NULL; w = w->next) {
		if ((entry = master_ctl_entry(health, w->pid)) == NULL)
			continue;
		if (w->fd >= 0 && channel_send(w->fd, CH_STATUS, 0, NULL,
		    0) == 0)
			d->waiting++;
		else
			cJSON_AddNullToObject(entry, "live");
	}
	if (d->waiting == 0 || (d->reply = control_defer(m->ctl)) == NULL) {
		free(d);
		return health;	/* nothing to wait for: answer now */
	}
	d->health = health;
	d->m = m;
	evloop_timer_init(&d->timeout, master_ctl_on_deep_timeout, d);
	evloop_timer_add(m->loop, &d->timeout, clock_mono() +
	    MASTER_DEEP_TIMEOUT);
	d->next = m->deep;
	m->deep = d;
	return NULL;
}

void
master_ctl_status_reply(struct master *m, const struct wproc *w,
    const cJSON *o)
{
	struct deep_health *d, *next;
	cJSON *entry;

	for (d = m->deep; d != NULL; d = next) {
		next = d->next;
		entry = master_ctl_entry(d->health, w->pid);
		if (entry == NULL || cJSON_HasObjectItem(entry, "live"))
			continue;
		cJSON_AddItemToObject(entry, "live", o ? cJSON_Duplicate(o, 1) :
		    cJSON_CreateObject());
		if (--d->waiting == 0)
			master_ctl_deep_done(m, d);
	}
}

void
master_ctl_expire(struct master *m)
{
	while (m->deep != NULL)
		master_ctl_deep_expire(m, m->deep);
}

static cJSON *
master_ctl_health(struct master *m, const cJSON *req, char *err, size_t errlen)
{
	const cJSON *which = cJSON_GetObjectItemCaseSensitive(req, "worker");
	const cJSON *deep = cJSON_GetObjectItemCaseSensitive(req, "deep");
	struct wproc *w, *only = NULL;
	double now = clock_mono();
	cJSON *o, *list, *reasons;

	if (which != NULL && !cJSON_IsNull(which)) {
		if (!cJSON_IsNumber(which) || which->valuedouble < 1 ||
		    which->valuedouble != (int)which->valuedouble) {
			snprintf(err, errlen, "\"worker\" must be a worker id "
			    "or pid");
			return NULL;
		}
		if ((only = master_ctl_find_worker(m, which->valueint)) == NULL) {
			snprintf(err, errlen, "no worker %d", which->valueint);
			return NULL;
		}
	}
	master_db_outbox(m);
	o = cJSON_CreateObject();
	reasons = cJSON_CreateArray();
	cJSON_AddTrueToObject(o, "ok");
	cJSON_AddStringToObject(o, "status", master_ctl_verdict(m, only, now,
	    reasons));
	cJSON_AddItemToObject(o, "reasons", reasons);
	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddStringToObject(o, "state", master_ctl_state_name(m));
	cJSON_AddNumberToObject(o, "generation", m->generation);
	cJSON_AddNumberToObject(o, "target", m->target);
	cJSON_AddNumberToObject(o, "ready", wtable_count(m, 1));
	list = cJSON_AddArrayToObject(o, "workers");
	for (w = m->workers; w != NULL; w = w->next)
		if (only == NULL || w == only)
			cJSON_AddItemToArray(list, master_ctl_worker_json(m, w, now));
	master_ctl_add_links(m, o);
	if (deep != NULL && !cJSON_IsBool(deep)) {
		snprintf(err, errlen, "\"deep\" must be true or false");
		cJSON_Delete(o);
		return NULL;
	}
	if (cJSON_IsTrue(deep))
		return master_ctl_deep(m, o, err, errlen);
	return o;
}

static cJSON *
master_ctl_ok(void)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddTrueToObject(o, "ok");
	return o;
}

/* The master first, then every live worker: the process_* series. */
static struct metrics_process *
master_ctl_processes(const struct master *m, size_t *n)
{
	struct metrics_process *p;
	struct procinfo_self self;
	const struct wproc *w;
	size_t i = 0;

	if ((p = calloc((size_t)wtable_count(m, 0) + 1, sizeof(*p))) == NULL)
		return NULL;
	procinfo_self(&self);
	p[i++] = (struct metrics_process){ "master", (long)getpid(), 0,
	    self.rss, self.cpu_seconds, self.fds, self.start_time };
	for (w = m->workers; w != NULL; w = w->next)
		if (!w->retiring)
			p[i++] = (struct metrics_process){ "worker",
			    (long)w->pid, w->slot, w->rss, w->cpu_seconds,
			    w->fds, w->start_time };
	*n = i;
	return p;
}

/* The link, the stream and the outbox, beside wtable's totals. */
static void
master_ctl_metrics_links(struct master *m, struct metrics_master *mm)
{
	struct events_link l;
	double now = clock_wall();

	master_db_outbox(m);
	mm->orchestrator_up = master_ctl_up(m);
	mm->last_contact = master_ctl_last_ok(m, NULL);
	if (m->events != NULL) {
		events_link(m->events, &l);
		mm->stream_connected = l.state == EVENTS_CONNECTED;
	}
	mm->outbox_rows = (uint64_t)m->outbox.rows;
	mm->outbox_dead = (uint64_t)m->outbox.dead;
	if (m->outbox.rows > 0 && m->outbox.oldest > 0 &&
	    now > m->outbox.oldest)
		mm->outbox_oldest_age = now - m->outbox.oldest;
}

char *
master_ctl_render_metrics(struct master *m)
{
	struct metrics_process *procs;
	struct metrics_master mm;
	struct metrics *total;
	char *text = NULL;
	size_t n = 0;

	if ((total = malloc(sizeof(*total))) == NULL)
		return NULL;
	if ((procs = master_ctl_processes(m, &n)) != NULL) {
		wtable_metrics(m, total, &mm);
		master_ctl_metrics_links(m, &mm);
		mm.procs = procs;
		mm.nprocs = n;
		text = metrics_render(total, &mm);
	}
	free(procs);
	free(total);
	return text;
}

static cJSON *
master_ctl_metrics_text(struct master *m, char *err, size_t errlen)
{
	char *text = master_ctl_render_metrics(m);
	cJSON *o = NULL;

	if (text != NULL && (o = master_ctl_ok()) != NULL &&
	    cJSON_AddStringToObject(o, "text", text) == NULL) {
		cJSON_Delete(o);
		o = NULL;
	}
	free(text);
	if (o == NULL)
		snprintf(err, errlen, "out of memory");
	return o;
}

cJSON *
master_ctl_handle(const char *cmd, const cJSON *req, void *arg, char *err,
    size_t errlen)
{
	struct master *m = arg;
	cJSON *o;

	if (strcmp(cmd, CTL_CMD_STATUS) == 0) {
		o = master_ctl_status(m);
		cJSON_AddTrueToObject(o, "ok");
		return o;
	}
	if (strcmp(cmd, CTL_CMD_HEALTH) == 0)
		return master_ctl_health(m, req, err, errlen);
	if (strcmp(cmd, CTL_CMD_METRICS) == 0)
		return master_ctl_metrics_text(m, err, errlen);
	snprintf(err, errlen, "unknown command \"%.64s\"", cmd);
	return NULL;
}
