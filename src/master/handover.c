/*
 * handover: what a binary upgrade hands the new image (the state blob of
 * include/master/reexec.h), as JSON, version REEXEC_STATE_VERSION:
 *
 *   version, from (the old image's version), exe, pid,
 *   control_fd, control_path, waiter_fd, pidfile_fd, pidfile_path,
 *   statelock_fd, statelock_path, state_dir, user, group,
 *   generation, last_generation, target, uptime, instance_id, reloads,
 *   upgrades, started_wall, stream_reconnects, db_pruned, contact_ok_at,
 *   restarts[], retired (metrics), pushed[] (the
 *   texts of operations no worker took yet),
 *   workers[]: pid, slot, generation, fd (-1 once closed), instance_id,
 *   version, state, ready, recycle, max_ops, retiring, age, inflight,
 *   queued, pushed, pushes_sent, done, failed, rss, orch_status,
 *   orch_time, metrics.
 *
 * A new field is added with a default for its absence; a field whose
 * meaning changes takes a new version (and the reader keeps reading the
 * old one until REEXEC_STATE_MIN moves past it).  Only bookkeeping here:
 * master.c puts the workers it reads back on the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/version.h"
#include "master/control.h"
#include "master/events.h"
#include "master/pidfile.h"
#include "master/statelock.h"
#include "master_priv.h"

static void
handover_add_fd(cJSON *o, const char *key, int fd, int *fds, int *nfds)
{
	cJSON_AddNumberToObject(o, key, fd);
	if (fd >= 0 && *nfds < HANDOVER_FDS_MAX)
		fds[(*nfds)++] = fd;
}

static cJSON *
handover_encode_worker(const struct wproc *w, double now, int *fds,
    int *nfds)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "pid", w->pid);
	cJSON_AddNumberToObject(o, "slot", w->slot);
	cJSON_AddNumberToObject(o, "generation", w->generation);
	handover_add_fd(o, "fd", w->fd, fds, nfds);
	cJSON_AddStringToObject(o, "instance_id", w->instance_id);
	cJSON_AddStringToObject(o, "version", w->version);
	cJSON_AddNumberToObject(o, "state", w->state);
	cJSON_AddBoolToObject(o, "ready", w->ready);
	cJSON_AddBoolToObject(o, "recycle", w->recycle);
	cJSON_AddNumberToObject(o, "max_ops", (double)w->max_ops);
	cJSON_AddBoolToObject(o, "retiring", w->retiring);
	cJSON_AddNumberToObject(o, "age", now - w->started);
	cJSON_AddNumberToObject(o, "inflight", (double)w->inflight);
	cJSON_AddNumberToObject(o, "queued", (double)w->queued);
	cJSON_AddNumberToObject(o, "pushed", (double)w->pushed);
	cJSON_AddNumberToObject(o, "pushes_sent", (double)w->pushes_sent);
	cJSON_AddNumberToObject(o, "done", (double)w->done);
	cJSON_AddNumberToObject(o, "failed", (double)w->failed);
	cJSON_AddNumberToObject(o, "rss", (double)w->rss);
	cJSON_AddNumberToObject(o, "orch_status", (double)w->orch_status);
	cJSON_AddNumberToObject(o, "orch_time", w->orch_time);
	cJSON_AddItemToObject(o, "metrics", metrics_to_json(&w->metrics));
	return o;
}

static void
handover_encode_paths(struct master *m, cJSON *o, int *fds, int *nfds)
{
	const struct pidfile *pf = m->opt.pidfile;
	const struct statelock *sl = m->opt.statelock;

	cJSON_AddStringToObject(o, "control_path",
	    m->cfg->server.control_socket);
	handover_add_fd(o, "control_fd", control_fd(m->ctl), fds, nfds);
	handover_add_fd(o, "pidfile_fd", pf != NULL ? pf->fd : -1, fds, nfds);
	cJSON_AddStringToObject(o, "pidfile_path", pf != NULL &&
	    pf->path != NULL ? pf->path : m->cfg->server.pidfile);
	handover_add_fd(o, "statelock_fd", sl != NULL ? sl->fd : -1, fds,
	    nfds);
	cJSON_AddStringToObject(o, "statelock_path", sl != NULL &&
	    sl->path != NULL ? sl->path : "");
	cJSON_AddStringToObject(o, "state_dir", m->cfg->server.state_dir);
	cJSON_AddStringToObject(o, "user", m->cfg->server.user);
	cJSON_AddStringToObject(o, "group", m->cfg->server.group);
}

cJSON *
handover_encode(struct master *m, int waiter_fd, int *fds, int *nfds)
{
	cJSON *o = cJSON_CreateObject(), *list;
	const struct pushed_op *p;
	const struct wproc *w;
	double now = clock_mono();
	int i;

	*nfds = 0;
	cJSON_AddNumberToObject(o, "version", REEXEC_STATE_VERSION);
	cJSON_AddStringToObject(o, "from", EGRESSD_VERSION);
	cJSON_AddStringToObject(o, "exe", m->reexec.exe);
	cJSON_AddNumberToObject(o, "pid", getpid());
	handover_encode_paths(m, o, fds, nfds);
	handover_add_fd(o, "waiter_fd", waiter_fd, fds, nfds);
	cJSON_AddNumberToObject(o, "generation", m->generation);
	cJSON_AddNumberToObject(o, "last_generation", m->last_generation);
	cJSON_AddNumberToObject(o, "target", m->target);
	cJSON_AddNumberToObject(o, "uptime", now - m->started);
	cJSON_AddStringToObject(o, "instance_id", m->instance_id);
	cJSON_AddNumberToObject(o, "reloads", (double)m->reloads);
	cJSON_AddNumberToObject(o, "upgrades", (double)m->upgrades);
	cJSON_AddNumberToObject(o, "started_wall", m->upgrade_started);
	/* Totals never go backwards: the new image goes on from these. */
	cJSON_AddNumberToObject(o, "stream_reconnects",
	    (double)(m->stream_reconnects + (m->events != NULL ?
	    events_reconnects(m->events) : 0)));
	cJSON_AddNumberToObject(o, "db_pruned", (double)m->disk.pruned);
	cJSON_AddNumberToObject(o, "contact_ok_at", m->contact_ok_at);
	list = cJSON_AddArrayToObject(o, "restarts");
	for (i = 0; i < CONFIG_WORKERS_MAX; i++)
		cJSON_AddItemToArray(list, cJSON_CreateNumber(m->restarts[i]));
	cJSON_AddItemToObject(o, "retired", metrics_to_json(&m->retired));
	list = cJSON_AddArrayToObject(o, "pushed");
	for (p = m->pushq; p != NULL; p = p->next)
		cJSON_AddItemToArray(list, cJSON_CreateString(p->text));
	list = cJSON_AddArrayToObject(o, "workers");
	for (w = m->workers; w != NULL; w = w->next)
		cJSON_AddItemToArray(list, handover_encode_worker(w, now, fds,
		    nfds));
	return o;
}

const char *
handover_string(const cJSON *state, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(state, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double
handover_number(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

int
handover_fd(const cJSON *state, const char *key)
{
	double v = handover_number(state, key, -1);

	return v >= 0 && v <= 65535 ? (int)v : -1;
}

/* One restart-only key: the running value wins over the file's. */
static int
handover_keep(char **now, const char *then, const char *name)
{
	char *copy;

	if (then == NULL || strcmp(*now, then) == 0)
		return 0;
	log_warnx("upgrade: %s changed in the file; it takes effect only "
	    "after a restart", name);
	if ((copy = strdup(then)) == NULL)
		return -1;
	free(*now);
	*now = copy;
	return 0;
}

int
handover_keep_paths(struct egressd_config *cfg, const cJSON *state,
    char *err, size_t errlen)
{
	if (handover_keep(&cfg->server.pidfile, handover_string(state,
	    "pidfile_path"), "server.pidfile") == -1 ||
	    handover_keep(&cfg->server.state_dir, handover_string(state,
	    "state_dir"), "server.state_dir") == -1 ||
	    handover_keep(&cfg->server.control_socket, handover_string(state,
	    "control_path"), "server.control_socket") == -1 ||
	    handover_keep(&cfg->server.user, handover_string(state, "user"),
	    "server.user") == -1 ||
	    handover_keep(&cfg->server.group, handover_string(state, "group"),
	    "server.group") == -1) {
		snprintf(err, errlen, "upgrade: out of memory");
		return -1;
	}
	return 0;
}

static int
handover_restore_pushed(struct master *m, const cJSON *list)
{
	struct pushed_op **tail = &m->pushq, *p;
	const cJSON *t;

	cJSON_ArrayForEach(t, list) {
		if (!cJSON_IsString(t))
			continue;
		if ((p = calloc(1, sizeof(*p))) == NULL ||
		    (p->text = strdup(t->valuestring)) == NULL) {
			free(p);
			return -1;
		}
		*tail = p;
		tail = &p->next;
		m->npushq++;
	}
	return 0;
}

int
handover_restore(struct master *m, const cJSON *state, char *err,
    size_t errlen)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(state,
	    "restarts"), *v;
	const char *id = handover_string(state, "instance_id");
	int i = 0;

	m->generation = (int)handover_number(state, "generation", 1);
	m->last_generation = (int)handover_number(state, "last_generation",
	    m->generation);
	m->stable_generation = m->generation;
	m->target = (int)handover_number(state, "target", m->target);
	if (m->target < 1 || m->target > CONFIG_WORKERS_MAX)
		m->target = m->cfg->server.workers;
	m->started = clock_mono() - handover_number(state, "uptime", 0);
	m->reloads = (uint64_t)handover_number(state, "reloads", 0);
	m->upgrades = (uint64_t)handover_number(state, "upgrades", 0);
	m->upgrade_started = handover_number(state, "started_wall", 0);
	m->stream_reconnects = (uint64_t)handover_number(state,
	    "stream_reconnects", 0);
	m->disk.pruned = (uint64_t)handover_number(state, "db_pruned", 0);
	m->contact_ok_at = handover_number(state, "contact_ok_at", 0);
	snprintf(m->upgrade_from, sizeof(m->upgrade_from), "%s",
	    handover_string(state, "from") ? handover_string(state, "from") :
	    "");
	if (id != NULL && strlen(id) == UUID_TEXT_LEN - 1)
		memcpy(m->instance_id, id, UUID_TEXT_LEN);
	cJSON_ArrayForEach(v, list)
		if (cJSON_IsNumber(v) && i < CONFIG_WORKERS_MAX)
			m->restarts[i++] = (unsigned)v->valuedouble;
	if ((v = cJSON_GetObjectItemCaseSensitive(state, "retired")) != NULL &&
	    metrics_from_json(v, &m->retired, err, errlen) == -1)
		return -1;
	if (handover_restore_pushed(m, cJSON_GetObjectItemCaseSensitive(state,
	    "pushed")) == -1) {
		snprintf(err, errlen, "upgrade: out of memory");
		return -1;
	}
	return 0;
}

int
handover_worker(const cJSON *item, struct wproc *w, double now)
{
	const char *id = handover_string(item, "instance_id");
	const char *version = handover_string(item, "version");
	const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(item,
	    "metrics");
	char err[128];
	double state = handover_number(item, "state", WS_BOOTING);

	w->pid = (pid_t)handover_number(item, "pid", 0);
	w->slot = (int)handover_number(item, "slot", 0);
	if (w->pid <= 0 || w->slot < 1 || w->slot > CONFIG_WORKERS_MAX)
		return -1;
	w->generation = (int)handover_number(item, "generation", 0);
	w->fd = handover_fd(item, "fd");
	if (id != NULL && strlen(id) == UUID_TEXT_LEN - 1)
		memcpy(w->instance_id, id, UUID_TEXT_LEN);
	snprintf(w->version, sizeof(w->version), "%s", version ? version :
	    "");
	w->state = state >= 0 && state < MASTER_NSTATES ? (enum wstate)state :
	    WS_BOOTING;
	w->ready = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item,
	    "ready"));
	w->recycle = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item,
	    "recycle"));
	w->retiring = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item,
	    "retiring"));
	w->max_ops = (long)handover_number(item, "max_ops", 0);
	w->started = now - handover_number(item, "age", 0);
	w->last_seen = now;
	w->inflight = (unsigned long)handover_number(item, "inflight", 0);
	w->queued = (unsigned long)handover_number(item, "queued", 0);
	w->pushed = (unsigned long)handover_number(item, "pushed", 0);
	w->pushes_sent = (unsigned long)handover_number(item, "pushes_sent", 0);
	w->done = (unsigned long)handover_number(item, "done", 0);
	w->failed = (unsigned long)handover_number(item, "failed", 0);
	w->rss = (unsigned long long)handover_number(item, "rss", 0);
	w->orch_status = (long)handover_number(item, "orch_status", 0);
	w->orch_time = handover_number(item, "orch_time", 0);
	if (metrics != NULL && metrics_from_json(metrics, &w->metrics, err,
	    sizeof(err)) == -1)
		log_warnx("upgrade: worker %d (pid %ld): metrics: %s", w->slot,
		    (long)w->pid, err);
	return 0;
}
