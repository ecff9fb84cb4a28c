/*
 * master_ctl: the control socket's queries, answered from the arbiter's
 * state — status, health (per-worker detail and the healthy / degraded /
 * down verdict egressctl turns into its exit status), metrics (Prometheus
 * text of every worker's operations, reaped ones too).  The commands that
 * act (reload, stop, scale) are the arbiter's own: master.c answers them
 * and hands every other command here.
 * health --deep also asks each worker for its live detail (STATUS frames)
 * and answers once all have replied or MASTER_DEEP_TIMEOUT has passed (a
 * timer per request); the master goes on serving meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/channel.h"
#include "core/clock.h"
#include "master/control.h"
#include "core/evloop.h"
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

/* The database against store.max_bytes, as the last look found it. */
static void
master_ctl_database(const struct master *m, cJSON *o)
{
	const struct store_size *sz = &m->disk.size;
	const char *why = master_db_degraded(m);
	cJSON *d = cJSON_AddObjectToObject(o, "database");

	cJSON_AddNumberToObject(d, "file_bytes", (double)sz->file_bytes);
	cJSON_AddNumberToObject(d, "wal_bytes", (double)sz->wal_bytes);
	cJSON_AddNumberToObject(d, "used_bytes", (double)sz->used_bytes);
	cJSON_AddNumberToObject(d, "free_bytes", (double)sz->free_bytes);
	cJSON_AddNumberToObject(d, "max_bytes",
	    (double)m->cfg->store.max_bytes);
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
	cJSON *o = cJSON_CreateObject();
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
master_ctl_worker_json(const struct master *m, const struct wproc *w,
    double now)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", w->slot);
	cJSON_AddNumberToObject(o, "pid", w->pid);
	cJSON_AddStringToObject(o, "instance_id", w->instance_id);
	cJSON_AddNumberToObject(o, "generation", w->generation);
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
	return o;
}

/* healthy: target workers ready and none stale; down: none ready. */
static const char *
master_ctl_verdict(const struct master *m, const struct wproc *only, double now)
{
	const struct wproc *w;
	int ok = 0, stale = 0;

	for (w = m->workers; w != NULL; w = w->next) {
		if (w->retiring || (only != NULL && w != only))
			continue;
		if (strcmp(master_ctl_worker_health(m, w, now), "stale") == 0)
			stale++;
		else if (w->ready)
			ok++;
	}
	if (m->state == MS_STOPPING || ok == 0)
		return CTL_DOWN;
	if (stale == 0 && ok >= (only != NULL ? 1 : m->target))
		return CTL_HEALTHY;
	return CTL_DEGRADED;
}

/*
 * The verdict, and why it is degraded when the workers are fine: the
 * database over store.max_bytes with nothing it may prune.
 */
static void
master_ctl_add_verdict(const struct master *m, cJSON *o,
    const struct wproc *only, double now)
{
	const char *verdict = master_ctl_verdict(m, only, now);
	const char *why = master_db_degraded(m);
	cJSON *reasons = NULL;

	if (why != NULL && strcmp(verdict, CTL_HEALTHY) == 0)
		verdict = CTL_DEGRADED;
	cJSON_AddStringToObject(o, "status", verdict);
	if (why != NULL && (reasons = cJSON_AddArrayToObject(o,
	    "reasons")) != NULL)
		cJSON_AddItemToArray(reasons, cJSON_CreateString(why));
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
	cJSON *o, *list;

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
	o = cJSON_CreateObject();
	cJSON_AddTrueToObject(o, "ok");
	master_ctl_add_verdict(m, o, only, now);
	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddStringToObject(o, "state", master_ctl_state_name(m));
	cJSON_AddNumberToObject(o, "generation", m->generation);
	cJSON_AddNumberToObject(o, "target", m->target);
	cJSON_AddNumberToObject(o, "ready", wtable_count(m, 1));
	list = cJSON_AddArrayToObject(o, "workers");
	for (w = m->workers; w != NULL; w = w->next)
		if (only == NULL || w == only)
			cJSON_AddItemToArray(list, master_ctl_worker_json(m, w, now));
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

static cJSON *
master_ctl_metrics_text(struct master *m, char *err, size_t errlen)
{
	struct metrics_master mm;
	struct metrics *total;
	char *text = NULL;
	cJSON *o = NULL;

	if ((total = malloc(sizeof(*total))) != NULL) {
		wtable_metrics(m, total, &mm);
		text = metrics_render(total, &mm);
		free(total);
	}
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
