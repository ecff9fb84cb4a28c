/*
 * master_db: the master's uses of the database — recording how a worker
 * ended, failing the agent processes of a worker that died (their error
 * results go to the outbox, for a live worker to deliver), retention, and
 * the outbox's backlog for health and metrics (read on demand, at most
 * once per MASTER_OUTBOX_FRESH, and on every housekeeping pass).  Only the
 * start creates the file; later opens ask stateguard.c first whether the
 * path still names it.
 *
 * The master holds no connection between calls: SQLite's per-file lock
 * state in this address space would otherwise be inherited by every forked
 * worker and corrupt its own connection's locking.  Each call waits at most
 * MASTER_DB_BUSY_TIMEOUT on a lock, so the loop never stalls; what a busy
 * database refuses is caught up by the next housekeeping pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "procmgr/audit.h"
#include "core/clock.h"
#include "core/evloop.h"
#include "core/log.h"
#include "master_priv.h"
#include "procmgr/procmgr.h"

#define MASTER_DB_EVERY 60.0		/* housekeeping period */
#define MASTER_DB_AGAIN 1.0		/* sooner while pruning lags */
#define MASTER_DB_BATCHES 4		/* of AUDIT_BATCH rows per pass */

/*
 * While running, the database must be the file opened at start: one
 * removed or replaced is not opened (stateguard.c says why), and a missing
 * one is never created anew.
 */
static int
master_db_open_brief(struct master *m)
{
	char err[CONFIG_ERR_MAX];
	double busy = m->cfg->store.busy_timeout;

	if (busy > MASTER_DB_BUSY_TIMEOUT)
		busy = MASTER_DB_BUSY_TIMEOUT;
	if (!stateguard_db_ok(m))
		return -1;
	if (store_open_existing(&m->store, m->cfg->server.state_dir,
	    m->cfg->store.synchronous, busy, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

/* "worker died: signal 9" is what an operation's error result says. */
static void
master_db_reason(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "worker died: signal %d", WTERMSIG(status));
	else if (WIFEXITED(status))
		snprintf(buf, len, "worker exited with status %d before the "
		    "operation ended", WEXITSTATUS(status));
	else
		snprintf(buf, len, "worker ended (wait status %#x)", status);
}

static void
master_db_fail_processes(struct master *m, const char *instance_id,
    const char *reason)
{
	struct procmgr pm;
	int n;

	procmgr_init(&pm, &m->store, m->instance_id, m->cfg);
	n = procmgr_fail_worker(&pm, instance_id, reason, clock_wall());
	if (n > 0)
		log_warnx("worker %s: %d agent processes marked FAILED (%s); "
		    "their results are queued", instance_id, n, reason);
	else if (n == -1)
		log_warnx("worker %s: its agent processes: %s", instance_id,
		    pm.err);
	procmgr_close(&pm);
}

void
master_db_worker_exited(struct master *m, const char *instance_id,
    const char *how, int status)
{
	char reason[128];

	if (master_db_open_brief(m) == -1)
		return;
	if (store_worker_exited(&m->store, instance_id, how) == -1)
		log_warnx("database: %s", store_errmsg(&m->store));
	master_db_reason(status, reason, sizeof(reason));
	master_db_fail_processes(m, instance_id, reason);
	store_close(&m->store);
}

/*
 * The results a dead worker leaves (its own rows, and the error results
 * queued for its unfinished processes) wait in the outbox until a live
 * worker delivers them.  Rows follow their process's worker even when
 * another worker claimed them.
 */
int
master_db_results_left(struct master *m, const char *instance_id)
{
	int n;

	if (master_db_open_brief(m) == -1)
		return -1;
	if ((n = store_outbox_pending(&m->store, instance_id)) == -1)
		log_warnx("database: %s", store_errmsg(&m->store));
	store_close(&m->store);
	return n;
}

/* The backlog health and metrics judge; a busy database keeps the last. */
static void
master_db_read_outbox(struct master *m)
{
	if (store_outbox_stats(&m->store, &m->outbox) == -1)
		log_warnx("database: outbox figures: %s",
		    store_errmsg(&m->store));
	else
		m->outbox_read = clock_mono();
}

void
master_db_outbox(struct master *m)
{
	if (m->outbox_read > 0 &&
	    clock_mono() - m->outbox_read < MASTER_OUTBOX_FRESH)
		return;
	if (master_db_open_brief(m) == -1)
		return;
	master_db_read_outbox(m);
	store_close(&m->store);
}

int
master_db_took_operation(struct master *m, const char *instance_id,
    const char *operation_id, double since)
{
	struct procmgr pm;
	int rc;

	if (master_db_open_brief(m) == -1)
		return -1;
	procmgr_init(&pm, &m->store, m->instance_id, m->cfg);
	if ((rc = procmgr_took_operation(&pm, instance_id, operation_id,
	    since)) == -1)
		log_warnx("database: operation %s of worker %s: %s",
		    operation_id, instance_id, pm.err);
	procmgr_close(&pm);
	store_close(&m->store);
	return rc;
}

/* Live processes of workers recorded as gone (an exit we could not note). */
static void
master_db_recover(struct master *m)
{
	char **ids = NULL;
	int i, n;

	n = store_orphaned_instances(&m->store, &ids);
	for (i = 0; i < n; i++) {
		master_db_fail_processes(m, ids[i], "worker gone");
		free(ids[i]);
	}
	free(ids);
}

/*
 * Stopped workers' rows: those of the last store.retention_days, and at
 * most STORE_WORKERS_KEEP of them (a restart loop must not grow the table).
 */
static void
master_db_prune_workers(struct master *m)
{
	int n = store_prune_workers(&m->store, m->cfg->store.retention_days,
	    STORE_WORKERS_KEEP);

	if (n == -1)
		log_warnx("database: pruning workers: %s",
		    store_errmsg(&m->store));
	else if (n > 0)
		log_debug("database: pruned %d old worker rows", n);
}

/* A timer: every MASTER_DB_EVERY, sooner while pruning lags; not stopping. */
static void
master_db_housekeeping(void *arg)
{
	struct master *m = arg;
	double now = clock_mono();
	int64_t pruned;
	char err[CONFIG_ERR_MAX];

	if (m->state != MS_RUNNING)
		return;		/* stopping: no more passes */
	evloop_timer_add(m->loop, &m->housekeeping, now + MASTER_DB_EVERY);
	if (master_db_open_brief(m) == -1)
		return;
	master_db_recover(m);
	master_db_prune_workers(m);
	master_db_read_outbox(m);
	pruned = audit_prune(&m->store, m->cfg->store.retention_days,
	    m->cfg->store.max_rows, clock_wall(), MASTER_DB_BATCHES, err,
	    sizeof(err));
	if (pruned == -1)
		log_warnx("pruning: %s", err);
	else if (pruned > 0)
		log_debug("database: pruned %lld old rows", (long long)pruned);
	if (pruned >= (int64_t)MASTER_DB_BATCHES * AUDIT_BATCH)
		evloop_timer_add(m->loop, &m->housekeeping, now +
		    MASTER_DB_AGAIN);
	store_close(&m->store);
}

int
master_db_start(struct master *m, char *err, size_t errlen)
{
	int n;

	stateguard_set_aside(m->cfg->server.state_dir);
	if (store_open(&m->store, m->cfg->server.state_dir,
	    m->cfg->store.synchronous, m->cfg->store.busy_timeout, err,
	    errlen) == -1)
		return -1;
	if (store_migrate(&m->store, err, errlen) == -1) {
		store_close(&m->store);
		return -1;
	}
	/*
	 * After a binary upgrade the workers not recorded as stopped are the
	 * previous image's, alive and about to be adopted: not orphans.
	 */
	if (m->opt.inherit == NULL &&
	    (n = store_workers_orphaned(&m->store)) > 0)
		log_warnx("database: %d workers of an earlier run were not "
		    "recorded as stopped; their undelivered results will be "
		    "sent", n);
	if (m->opt.inherit == NULL)
		master_db_recover(m);
	master_db_prune_workers(m);
	store_close(&m->store);
	evloop_timer_init(&m->housekeeping, master_db_housekeeping, m);
	evloop_timer_add(m->loop, &m->housekeeping, clock_mono() +
	    MASTER_DB_AGAIN);
	return 0;
}
