/*
 * master_db: the master's uses of the database files (egressd.db and
 * egressd-N.db, store.files: the first store.files made at start, any
 * other found then read too) — recording how a worker ended, failing the
 * agent processes of a worker that died (their error results go to the
 * outbox of their file, for a live worker of it to deliver), moving the
 * results of a file no live worker writes to the first, retention: by age
 * and rows every minute, and by size (an equal share of store.max_bytes
 * per file) whenever a look at the file sizes, every MASTER_DB_WATCH (up
 * to MASTER_DB_WATCH_IDLE while they do not change), finds a file past
 * its share; and the outbox's backlog for health and metrics (read on
 * demand, at most once per MASTER_OUTBOX_FRESH, and on every housekeeping
 * pass).  Only the start creates files; later passes ask stateguard.c
 * first whether the paths still name them.
 *
 * The master holds no connection between calls: SQLite's per-file lock
 * state in this address space would otherwise be inherited by every forked
 * worker and corrupt its own connection's locking.  Each call waits at most
 * MASTER_DB_BUSY_TIMEOUT on a lock, and a file that could not be opened
 * pauses the passes for MASTER_DB_BUSY_PAUSE, so the loop never stalls
 * for long; what a busy database refuses is caught up by the next
 * housekeeping pass.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
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
#define MASTER_DB_WATCH 1.0		/* a look at the file sizes */
#define MASTER_DB_WATCH_NEAR 0.1	/*   at most this often */
#define MASTER_DB_WATCH_IDLE 4.0	/*   at least this often */
#define MASTER_DB_BURST (16.0 * 1024 * 1024)	/* bytes/s workers may */
					/*   write once they start (an */
					/*   assumption: 3x the fastest seen) */
#define MASTER_DB_QUIET 10.0		/* after a pass that could do nothing */
#define MASTER_DB_REGROWTH 16		/* ... unless 1/16 of max_bytes came */
#define MASTER_DB_BUSY_PAUSE 1.0	/* no opens after one failed */
#define MASTER_DB_LOG_EVERY 60.0	/* the over-budget warning */
#define MASTER_DB_LOW_PCT 90		/* a size pass prunes to this % */
#define MASTER_DB_NEAR_PCT 75		/* of the target: look more often */
#define MASTER_DB_RECLAIM_STEPS 16	/* chunks of free pages per pass */
#define MASTER_DB_SIZE_BATCHES 16	/* of trees and trails per size pass */
#define MASTER_DB_TREE_BYTES 2048	/* WAL bytes a pruned tree may cost */

/* The next file in use at or after index, or -1: for (i = next(0); ...). */
static int
master_db_next(const struct master *m, int index)
{
	for (; index >= 0 && index < CONFIG_STORE_FILES_MAX; index++)
		if (m->db_files & (1u << index))
			return index;
	return -1;
}

/*
 * The first file in use for a pass over the files, or -1 when the state
 * guard says they are not those opened at start (stateguard.c says why;
 * asked once per pass, not per file).
 */
static int
master_db_first(struct master *m)
{
	return stateguard_db_ok(m) ? master_db_next(m, 0) : -1;
}

/*
 * Each file's share of store.max_bytes (its data and its WAL): an equal
 * share of every file in use, those no worker writes now included (they
 * hold data until removed).
 */
static int64_t
master_db_share(const struct master *m)
{
	return m->cfg->store.max_bytes / (m->db_nfiles > 0 ? m->db_nfiles : 1);
}

/*
 * The budget a file's connection is sized by (store_set_max_bytes: its
 * WAL's share), as the workers size theirs (worker.c: store.max_bytes /
 * store.files), so that the master's "WAL past twice its own" agrees with
 * where they checkpoint.
 */
static int64_t
master_db_conn_bytes(const struct master *m)
{
	return m->cfg->store.max_bytes /
	    store_files_resolve(m->cfg->store.files, 1);
}

/* The WAL's share of a file. */
static int64_t
master_db_wal(const struct master *m)
{
	return store_wal_limit(master_db_conn_bytes(m));
}

/* File index could not be opened: see master_db_open_brief. */
static void
master_db_pause(struct master *m, int index)
{
	double now = clock_mono();

	m->db_busy_until[index] = now + MASTER_DB_BUSY_PAUSE;
	m->db_nowait_until = now + MASTER_DB_BUSY_PAUSE;
}

/*
 * While running, the databases must be the files opened at start: one
 * removed or replaced is not opened (master_db_first asked the state guard
 * before this pass), and a missing one is never created anew.
 */
static int
master_db_open_brief(struct master *m, int index)
{
	char err[CONFIG_ERR_MAX];
	double busy = m->cfg->store.busy_timeout;

	if (busy > MASTER_DB_BUSY_TIMEOUT)
		busy = MASTER_DB_BUSY_TIMEOUT;
	/*
	 * Each open may wait up to MASTER_DB_BUSY_TIMEOUT on a lock (another
	 * program's, say).  A file that could not be opened is left alone
	 * for MASTER_DB_BUSY_PAUSE, and meanwhile no open waits at all (a
	 * locked file fails at once, the others open): several locked files,
	 * or several passes in one turn of the loop, then cost one wait a
	 * second, not a stall that makes the workers' heartbeats look late.
	 */
	if (clock_mono() < m->db_busy_until[index])
		return -1;
	if (clock_mono() < m->db_nowait_until)
		busy = 0;
	if (store_open_file(&m->store, m->cfg->server.state_dir, index, 0,
	    m->cfg->store.synchronous, busy, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		master_db_pause(m, index);
		return -1;
	}
	if (store_set_max_bytes(&m->store, master_db_conn_bytes(m), err,
	    sizeof(err)) == -1) {
		log_warnx("%s", err);
		master_db_pause(m, index);
		store_close(&m->store);
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

static unsigned master_db_written(const struct master *);
static void master_db_adopt_outbox(struct master *, unsigned);

/* How many files the slots up to the target write: min(files, target). */
static int
master_db_used(const struct master *m)
{
	int used = m->cfg->store.files < m->target ? m->cfg->store.files :
	    m->target;

	return used > 1 ? used : 1;
}

/*
 * The file slot's worker writes, when in use; else -1.  Only a hint: a
 * worker an earlier image started (an upgrade may have changed
 * store.files) may have written another, which the callers find out.
 */
static int
master_db_file_of(const struct master *m, int slot)
{
	int i;

	if (slot < 1)
		return -1;
	i = store_file_of_slot(slot, m->cfg->store.files);
	return m->db_files & (1u << i) ? i : -1;
}

/*
 * Whether the worker table holds instance_id, or (no HELLO yet, so no
 * instance ID) a worker of that pid.
 */
static int
master_db_in_table(const struct master *m, const char *instance_id,
    pid_t pid)
{
	const struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (w->instance_id[0] != '\0' ?
		    strcmp(w->instance_id, instance_id) == 0 :
		    pid != 0 && w->pid == pid)
			return 1;
	return 0;
}

/*
 * The exit of the worker instance_id in file i, and its processes failed
 * there: 1 when the file knew the worker, 0 when not, -1 on an error.
 */
static int
master_db_exited_in(struct master *m, int i, const char *instance_id,
    const char *how, const char *reason)
{
	int n;

	if (master_db_open_brief(m, i) == -1)
		return -1;
	if ((n = store_worker_exited(&m->store, instance_id, how)) == -1)
		log_warnx("database: %s", store_errmsg(&m->store));
	master_db_fail_processes(m, instance_id, reason);
	store_close(&m->store);
	return n;
}

/*
 * The worker's registry row and processes are in the file its slot
 * writes: that file alone when it knows the worker (a stop of 8 workers
 * is not 64 opens), else every file.
 */
void
master_db_worker_exited(struct master *m, const char *instance_id,
    int slot, const char *how, int status)
{
	char reason[128];
	int i, hint = master_db_file_of(m, slot);

	master_db_reason(status, reason, sizeof(reason));
	/*
	 * An exit that cannot be recorded now (the file locked, or the state
	 * guard's fault) is caught up by the housekeeping's
	 * master_db_reconcile.  Only a file that answers that it does not
	 * know the worker sends the search to the others.
	 */
	if (master_db_first(m) < 0)
		return;
	if (hint >= 0 && master_db_exited_in(m, hint, instance_id, how,
	    reason) != 0)
		return;
	for (i = master_db_next(m, 0); i >= 0; i = master_db_next(m, i + 1))
		if (i != hint && master_db_exited_in(m, i, instance_id, how,
		    reason) == 1)
			return;
}

/* instance_id's results left in file i (*known: it is registered there). */
static int
master_db_left_in(struct master *m, int i, const char *instance_id,
    int *known)
{
	int n;

	if (master_db_open_brief(m, i) == -1)
		return -1;
	if ((n = store_outbox_pending(&m->store, instance_id)) == -1 ||
	    (*known = store_worker_known(&m->store, instance_id)) == -1) {
		log_warnx("database: %s", store_errmsg(&m->store));
		n = -1;
	}
	store_close(&m->store);
	/*
	 * A worker reaped whose exit could not be recorded (the file was
	 * locked then): its processes are not failed yet, so "no result
	 * left" would be false.  Caught up now, then counted again.
	 */
	if (n >= 0 && *known == STORE_WORKER_ALIVE &&
	    !master_db_in_table(m, instance_id, 0)) {
		if (master_db_exited_in(m, i, instance_id, "gone (its exit "
		    "was recorded late)", "worker gone") != 1)
			return -1;
		return master_db_left_in(m, i, instance_id, known);
	}
	return n;
}

/*
 * The results a dead worker leaves (its own rows, and the error results
 * queued for its unfinished processes) wait in the outbox until a live
 * worker delivers them.  Rows follow their process's worker even when
 * another worker of the file claimed them.  They are in the file the
 * worker wrote, and in the first one when moved there: those two when
 * slot's file knows the worker, else every file.  -1 when one of them
 * cannot say.
 */
int
master_db_results_left(struct master *m, const char *instance_id, int slot)
{
	int i, n, known = 0, sum = 0, hint = master_db_file_of(m, slot);

	if (master_db_first(m) < 0)
		return -1;
	/*
	 * A file no slot writes any more (a scale down): its results move
	 * now, not at the housekeeping passes, for the shutdown notice must
	 * not give up waiting on rows nobody sends (the orchestrator would
	 * hand their operations out again).
	 */
	if (hint > 0 && hint >= master_db_used(m) &&
	    !(master_db_written(m) & (1u << hint)))
		master_db_adopt_outbox(m, 1u << hint);
	if (hint >= 0) {
		if ((sum = master_db_left_in(m, hint, instance_id, &known)) ==
		    -1)
			return -1;
		if (known && hint == 0)
			return sum;
		if (known)
			return (n = master_db_left_in(m, 0, instance_id,
			    &known)) == -1 ? -1 : sum + n;
	}
	for (i = master_db_next(m, 0); i >= 0; i = master_db_next(m, i + 1)) {
		if (i == hint)
			continue;
		if ((n = master_db_left_in(m, i, instance_id, &known)) == -1)
			return -1;
		sum += n;
	}
	return sum;
}

/* Add the open file's backlog to *sum; -1 when it cannot be read. */
static int
master_db_add_outbox(struct master *m, struct store_outbox_stats *sum)
{
	struct store_outbox_stats one;

	if (store_outbox_stats(&m->store, &one) == -1) {
		log_warnx("database: outbox figures: %s",
		    store_errmsg(&m->store));
		return -1;
	}
	sum->rows += one.rows;
	sum->dead += one.dead;
	if (one.oldest > 0 && (sum->oldest == 0 || one.oldest < sum->oldest))
		sum->oldest = one.oldest;
	return 0;
}

/*
 * The backlog health and metrics judge, over every file; a file that
 * cannot be read keeps the last figures.
 */
void
master_db_outbox(struct master *m)
{
	struct store_outbox_stats sum = { 0, 0, 0 };
	int i, rc;

	if (m->outbox_read > 0 &&
	    clock_mono() - m->outbox_read < MASTER_OUTBOX_FRESH)
		return;
	if ((i = master_db_first(m)) < 0)
		return;
	for (; i >= 0; i = master_db_next(m, i + 1)) {
		if (master_db_open_brief(m, i) == -1)
			return;
		rc = master_db_add_outbox(m, &sum);
		store_close(&m->store);
		if (rc == -1)
			return;
	}
	m->outbox = sum;
	m->outbox_read = clock_mono();
}

/* Whether file i has instance_id's registry row: > 0, 0, or -1. */
static int
master_db_knows(struct master *m, int i, const char *instance_id)
{
	int known;

	if (master_db_open_brief(m, i) == -1)
		return -1;
	known = store_worker_known(&m->store, instance_id);
	store_close(&m->store);
	return known;
}

/* Whether instance_id took operation_id, in file i: 1, 0, or -1. */
static int
master_db_took_in(struct master *m, int i, const char *instance_id,
    const char *operation_id, double since)
{
	struct procmgr pm;
	int rc;

	if (master_db_open_brief(m, i) == -1)
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

/*
 * In the file slot's worker wrote; every other file only when that one
 * said no (an earlier image's worker may have written another).  1 as
 * soon as a file says so; -1 when none did and one could not say.
 */
int
master_db_took_operation(struct master *m, const char *instance_id,
    int slot, const char *operation_id, double since)
{
	int i, rc, any = 0, hint = master_db_file_of(m, slot);

	if (master_db_first(m) < 0)
		return -1;
	if (hint >= 0 && (any = master_db_took_in(m, hint, instance_id,
	    operation_id, since)) != 0)
		return any;
	if (hint >= 0 && master_db_knows(m, hint, instance_id) > 0)
		return 0;	/* its file says no */
	for (i = master_db_next(m, 0); i >= 0; i = master_db_next(m, i + 1)) {
		if (i == hint)
			continue;
		if ((rc = master_db_took_in(m, i, instance_id, operation_id,
		    since)) == 1)
			return 1;
		if (rc == -1)
			any = -1;
	}
	return any;
}

/*
 * Live processes of workers recorded as gone (an exit we could not note),
 * in the open file.
 */
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
 * The files a live worker writes (bits, as db_files).  One not yet past
 * HELLO counts: it is about to open its file.
 */
static unsigned
master_db_written(const struct master *m)
{
	const struct wproc *w;
	unsigned bits = 0;

	for (w = m->workers; w != NULL; w = w->next)
		bits |= 1u << store_file_of_slot(w->slot, m->cfg->store.files);
	return bits;
}

/*
 * Undelivered results of the files in bits (never the first): moved to
 * the first file, whose worker delivers them.  No worker claims from such
 * a file meanwhile (the master's loop starts none during the move).  Two
 * transactions, the copy first: a crash, or a delete that fails, between
 * them may send a result twice, never lose one.
 */
static void
master_db_adopt_outbox(struct master *m, unsigned bits)
{
	char err[CONFIG_ERR_MAX], path[PATH_MAX];
	int i, n;

	for (i = master_db_next(m, 1); i >= 0; i = master_db_next(m, i + 1)) {
		if (!(bits & (1u << i)))
			continue;
		if (store_file_path(m->cfg->server.state_dir, i, path,
		    sizeof(path)) == -1 || master_db_open_brief(m, 0) == -1)
			return;
		n = store_outbox_adopt(&m->store, path, err, sizeof(err));
		store_close(&m->store);
		if (n == -1)
			log_warnx("%s", err);
		else if (n > 0)
			log_info("database: %d undelivered results moved from "
			    "%s, which no live worker writes, to the first file",
			    n, path);
	}
}

/*
 * At start: the files no slot will write (store.files lowered, or fewer
 * workers than files).
 */
static void
master_db_adopt_unused(struct master *m)
{
	m->db_unwritten = m->db_files & ~((1u << master_db_used(m)) - 1);
	master_db_adopt_outbox(m, m->db_unwritten);
}

/*
 * Every housekeeping pass: the files no live worker wrote at this pass
 * nor at the one before (a scale down, a slot in crash-loop back-off or
 * whose worker cannot boot), so that their results do not wait for a
 * worker that may not come; not those whose worker just died: its slot's
 * next one, started at once, claims them sooner than a busy worker of the
 * first file would.
 */
static void
master_db_adopt_orphans(struct master *m)
{
	unsigned now = m->db_files & ~master_db_written(m);

	master_db_adopt_outbox(m, now & m->db_unwritten);
	m->db_unwritten = now;
}

/*
 * Workers the open file says are alive that are not in the worker table
 * (by pid: one not past HELLO yet has no instance ID here): their exit
 * could not be recorded when they were reaped (the file was locked).  They
 * are recorded as exited now, and master_db_recover fails their processes.
 */
static void
master_db_reconcile(struct master *m)
{
	struct store_live live[CONFIG_WORKERS_MAX];
	const struct wproc *w;
	int i, n;

	if ((n = store_live_workers(&m->store, live, CONFIG_WORKERS_MAX)) == -1)
		return;
	for (i = 0; i < n; i++) {
		/*
		 * Not in the table, and its process gone (a worker an upgrade
		 * could not adopt still runs), or its pid now another worker's.
		 */
		if (master_db_in_table(m, live[i].instance_id, live[i].pid))
			continue;
		for (w = m->workers; w != NULL && w->pid != live[i].pid;
		    w = w->next)
			;
		if (w == NULL && !(kill(live[i].pid, 0) == -1 &&
		    errno == ESRCH))
			continue;
		log_warnx("database %s: worker %s (pid %ld) is gone but its "
		    "exit was not recorded; recorded now", m->store.path,
		    live[i].instance_id, (long)live[i].pid);
		if (store_worker_exited(&m->store, live[i].instance_id,
		    "gone (its exit was not recorded when it was reaped)") ==
		    -1)
			log_warnx("database: %s", store_errmsg(&m->store));
	}
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

/*
 * The bytes of data a size pass starts at in one file: its share of the
 * budget less its WAL's (at most half of it: with many files, a small
 * max_bytes and a WAL sized for fewer files).
 */
static int64_t
master_db_file_target(const struct master *m)
{
	int64_t share = master_db_share(m), wal = master_db_wal(m);

	return share - (wal < share / 2 ? wal : share / 2);
}

/* Over budget with nothing left that may go: say why, once a minute. */
static void
master_db_blocked(struct master *m, const struct audit_budget *b,
    double now)
{
	struct store_kept k = { 0, 0, 0 };

	if (store_kept(&m->store, &k) == -1)
		log_debug("database: counting what is kept: %s",
		    store_errmsg(&m->store));
	snprintf(m->disk.reason, sizeof(m->disk.reason), "database %s holds "
	    "%lld bytes of data, over the %lld that its share of "
	    "store.max_bytes (%lld) leaves beside the WAL, and only what must "
	    "stay is left: %lld undelivered results, %lld dead letters, %lld "
	    "running agent processes", m->store.path, (long long)b->used,
	    (long long)b->target, (long long)m->cfg->store.max_bytes,
	    (long long)k.undelivered, (long long)k.dead,
	    (long long)k.running);
	if (m->disk.blocked == 0 || now - m->disk.blocked_logged >=
	    MASTER_DB_LOG_EVERY) {
		log_warnx("%s; nothing is pruned until results are delivered "
		    "(or dead letters removed)", m->disk.reason);
		m->disk.blocked_logged = now;
	}
}

/* sum += one, for the figures of several files. */
static void
master_db_size_add(struct store_size *sum, const struct store_size *one)
{
	sum->file_bytes += one->file_bytes;
	sum->wal_bytes += one->wal_bytes;
	sum->used_bytes += one->used_bytes;
	sum->free_bytes += one->free_bytes;
	if (one->page_size > 0)
		sum->page_size = one->page_size;
}

/*
 * A size pass on the open store, file index: prune the oldest finished
 * trees while the data passes the file's share of the budget, give free
 * pages back, bound the WAL; its sizes after are added to *after.  The
 * file is blocked once over its share with nothing that may go, and stays
 * so until a pass finds it within (not when a pass fails, nor when one
 * ran out of batches).  Returns 1 when the pass could do nothing (blocked,
 * a failure, or a file that does not shrink: the caller then rests
 * MASTER_DB_QUIET), 0 otherwise.
 */
static int
master_db_budget(struct master *m, int index, double now,
    struct store_size *after)
{
	struct audit_budget b = { .target = master_db_file_target(m) };
	int64_t wal = master_db_wal(m);
	unsigned bit = 1u << index;
	struct store_size sz;
	char err[CONFIG_ERR_MAX];

	b.low = b.target / 100 * MASTER_DB_LOW_PCT;
	/* A batch's deletions fit half the WAL's share. */
	b.roots = (int)(wal / 2 / MASTER_DB_TREE_BYTES);
	if (audit_prune_budget(&m->store, &b, clock_wall(),
	    MASTER_DB_SIZE_BATCHES) == -1) {
		log_warnx("database %s: pruning to store.max_bytes: %s; next "
		    "try in %.0fs", m->store.path, store_errmsg(&m->store),
		    MASTER_DB_QUIET);
		/* A lasting failure (a full disk) is not retried 10 times a s. */
		store_files(m->store.path, &sz);
		master_db_size_add(after, &sz);
		return 1;
	}
	m->disk.pruned += (uint64_t)b.removed;
	if (b.removed > 0)
		log_debug("database %s: %lld rows pruned to stay within "
		    "store.max_bytes, %lld bytes of data left", m->store.path,
		    (long long)b.removed, (long long)b.used);
	if (b.blocked) {
		master_db_blocked(m, &b, now);
		m->disk.blocked |= bit;
	} else if (b.used <= b.target)
		m->disk.blocked &= ~bit;
	/*
	 * Within the budget the free pages stay, for the writers to reuse
	 * (and the file system's free space is no business of ours: on a
	 * full disk, giving it back would only let some writes through and
	 * not others).  Past it, chunks of half the WAL's share, each
	 * checkpointed away.
	 */
	store_files(m->store.path, &sz);
	if ((b.removed > 0 || sz.file_bytes > b.target ||
	    sz.wal_bytes > 2 * wal) && store_reclaim(&m->store,
	    wal / 2, MASTER_DB_RECLAIM_STEPS, err, sizeof(err)) == -1)
		log_warnx("%s", err);
	if (store_size(&m->store, &sz) == -1)
		store_files(m->store.path, &sz);
	master_db_size_add(after, &sz);
	/* Blocked, or a file that cannot shrink (not converted): rest. */
	return b.blocked || (b.removed == 0 && sz.file_bytes > b.target);
}

/*
 * A size pass over every file; blocked while one of them is.  The watch
 * runs the next pass at its next look, or, when this one could do
 * nothing, MASTER_DB_QUIET later.
 */
static void
master_db_budget_all(struct master *m, double now)
{
	struct store_size after = { 0, 0, 0, 0, 0 };
	int i, rest = 0, was = m->disk.blocked != 0;

	if ((i = master_db_first(m)) < 0)
		return;		/* the state guard's fault stands instead */
	for (; i >= 0; i = master_db_next(m, i + 1)) {
		if (master_db_open_brief(m, i) == -1) {
			rest = 1;	/* its blocked bit stays as it was */
			continue;
		}
		rest |= master_db_budget(m, i, now, &after);
		store_close(&m->store);
	}
	if (was && m->disk.blocked == 0)
		log_info("database: back within store.max_bytes (%lld bytes "
		    "of data)", (long long)after.used_bytes);
	m->disk.size = after;
	m->disk.next_pass = now + (rest ? MASTER_DB_QUIET : 0);
	m->disk.pass_bytes = after.file_bytes;
}

/*
 * While the files and WALs do not change, the looks drift apart, doubling
 * up to MASTER_DB_WATCH_IDLE, so that an idle master is not woken every
 * second for nothing (DESIGN section 1); but only as far as workers
 * starting to write at MASTER_DB_BURST could not fill a quarter of what is
 * left below the fullest file's target before the next look.  Any change
 * brings back MASTER_DB_WATCH.
 */
static double
master_db_idle_wait(struct master_disk *d, int64_t bytes, int64_t room)
{
	double burst = (double)room / MASTER_DB_BURST / 4;

	if (d->last_look == 0 || bytes != d->last_bytes) {
		d->idle_wait = MASTER_DB_WATCH;
		return MASTER_DB_WATCH;
	}
	d->idle_wait = d->idle_wait * 2 > MASTER_DB_WATCH_IDLE ?
	    MASTER_DB_WATCH_IDLE : d->idle_wait * 2;
	if (d->idle_wait > burst)
		d->idle_wait = burst > MASTER_DB_WATCH ? burst : MASTER_DB_WATCH;
	return d->idle_wait;
}

/*
 * When to look again: every MASTER_DB_WATCH (less often while nothing
 * changes: master_db_idle_wait), sooner while the files grow fast enough
 * (all of them together: no file grows faster) to cross a quarter of what
 * is left below the fullest one's target before then; every
 * MASTER_DB_WATCH_NEAR (the most often) once that file holds
 * MASTER_DB_NEAR_PCT of its target.  full: the fullest file's file and
 * WAL bytes.
 */
static double
master_db_next_look(struct master *m, int64_t target, int64_t full,
    double now)
{
	struct master_disk *d = &m->disk;
	int64_t bytes = d->size.file_bytes + d->size.wal_bytes;
	double wait = master_db_idle_wait(d, bytes, target - full), rate;

	if (d->last_look > 0 && now > d->last_look && bytes > d->last_bytes) {
		rate = (double)(bytes - d->last_bytes) / (now - d->last_look);
		wait = (double)(target - full) / rate / 4;
		if (wait > MASTER_DB_WATCH)
			wait = MASTER_DB_WATCH;
	}
	if (full > target / 100 * MASTER_DB_NEAR_PCT || wait <
	    MASTER_DB_WATCH_NEAR)
		wait = MASTER_DB_WATCH_NEAR;
	d->last_look = now;
	d->last_bytes = bytes;
	return now + wait;
}

/*
 * The file and WAL bytes of every file, summed into sz, as the file
 * system says now; *full gets the largest of one file's file and WAL
 * bytes.  Returns 1 when one of them is past its share: its data past
 * master_db_file_target, or its WAL past twice its own.
 */
static int
master_db_stat(const struct master *m, struct store_size *sz, int64_t *full)
{
	int64_t target = master_db_file_target(m), wal = master_db_wal(m);
	struct store_size one;
	char path[PATH_MAX];
	int i, over = 0;

	sz->file_bytes = sz->wal_bytes = 0;
	*full = 0;
	for (i = master_db_next(m, 0); i >= 0; i = master_db_next(m, i + 1)) {
		if (store_file_path(m->cfg->server.state_dir, i, path,
		    sizeof(path)) == -1)
			continue;
		store_files(path, &one);
		sz->file_bytes += one.file_bytes;
		sz->wal_bytes += one.wal_bytes;
		if (one.file_bytes + one.wal_bytes > *full)
			*full = one.file_bytes + one.wal_bytes;
		over |= one.file_bytes > target || one.wal_bytes > 2 * wal;
	}
	return over;
}

/*
 * The watch: two stat calls a second per file (fewer while nothing
 * changes: master_db_idle_wait), up to ten while a file grows towards its
 * share of the budget or is near it (so what is written between two looks
 * stays small against it).  A file past that share, or a WAL past twice
 * its own, starts a size pass over the files (at most one per
 * MASTER_DB_QUIET while passes free nothing).
 */
static void
master_db_watch(void *arg)
{
	struct master *m = arg;
	int64_t max = m->cfg->store.max_bytes, full;
	double now = clock_mono();
	int over;

	if (m->state != MS_RUNNING)
		return;
	over = master_db_stat(m, &m->disk.size, &full);
	evloop_timer_add(m->loop, &m->disk.watch, master_db_next_look(m,
	    master_db_file_target(m), full, now));
	m->disk.checks++;
	if (!over)
		return;
	/* Resting, unless the files grew by a part of the budget since. */
	if (now < m->disk.next_pass && m->disk.size.file_bytes <
	    m->disk.pass_bytes + max / MASTER_DB_REGROWTH)
		return;
	master_db_budget_all(m, now);
}

void
master_db_reconfigured(struct master *m)
{
	if (!evloop_timer_pending(&m->disk.watch))
		return;		/* not started, or stopping */
	m->disk.idle_wait = MASTER_DB_WATCH;
	evloop_timer_add(m->loop, &m->disk.watch, clock_mono());
}

void
master_db_sizes(const struct master *m, struct store_size *sz)
{
	int64_t full;

	*sz = m->disk.size;
	(void)master_db_stat(m, sz, &full);
}

const char *
master_db_degraded(const struct master *m)
{
	return m->disk.blocked ? m->disk.reason : NULL;
}

/* A timer: every MASTER_DB_EVERY, sooner while pruning lags; not stopping. */
static void
master_db_housekeeping(void *arg)
{
	struct master *m = arg;
	struct store_outbox_stats outbox = { 0, 0, 0 };
	double now = clock_mono();
	int64_t pruned;
	char err[CONFIG_ERR_MAX];
	int i, again = 0, outbox_ok = 1;

	if (m->state != MS_RUNNING)
		return;		/* stopping: no more passes */
	evloop_timer_add(m->loop, &m->housekeeping, now + MASTER_DB_EVERY);
	if ((i = master_db_first(m)) < 0)
		return;		/* the state guard's fault stands instead */
	for (; i >= 0; i = master_db_next(m, i + 1)) {
		if (master_db_open_brief(m, i) == -1) {
			outbox_ok = 0;
			continue;
		}
		master_db_reconcile(m);
		master_db_recover(m);
		master_db_prune_workers(m);
		if (master_db_add_outbox(m, &outbox) == -1)
			outbox_ok = 0;
		/* store.max_rows bounds the files together. */
		pruned = audit_prune(&m->store, m->cfg->store.retention_days,
		    m->cfg->store.max_rows / m->db_nfiles, clock_wall(),
		    MASTER_DB_BATCHES, err, sizeof(err));
		store_close(&m->store);
		if (pruned == -1)
			log_warnx("pruning: %s", err);
		else if (pruned > 0) {
			m->disk.pruned += (uint64_t)pruned;
			log_debug("database: pruned %lld old rows",
			    (long long)pruned);
		}
		if (pruned >= (int64_t)MASTER_DB_BATCHES * AUDIT_BATCH)
			again = 1;
	}
	if (again)
		evloop_timer_add(m->loop, &m->housekeeping, now +
		    MASTER_DB_AGAIN);
	if (outbox_ok) {
		m->outbox = outbox;
		m->outbox_read = clock_mono();
	}
	master_db_adopt_orphans(m);
	master_db_budget_all(m, now);
}

/*
 * A file made before auto_vacuum: rewritten once here, while no worker
 * runs, when it is small enough to be quick; a failure (a full disk: the
 * copy needs the file's size again) is no reason not to start.
 */
static void
master_db_convert(struct master *m)
{
	char err[CONFIG_ERR_MAX];
	double t0 = clock_mono();

	switch (store_vacuum_convert(&m->store, STORE_CONVERT_MAX, err,
	    sizeof(err))) {
	case STORE_VACUUM_CONVERTED:
		log_info("database %s: rewritten (VACUUM, %.1f s) so that "
		    "pruning gives free pages back", m->store.path,
		    clock_mono() - t0);
		break;
	case STORE_VACUUM_TOO_LARGE:
		log_warnx("database %s: larger than %lld bytes, not rewritten "
		    "at start: free pages are reused, but the file does not "
		    "shrink until it is converted (docs/OPERATIONS.md)",
		    m->store.path, (long long)STORE_CONVERT_MAX);
		break;
	case -1:
		log_warnx("%s; the file does not shrink until it is converted "
		    "(docs/OPERATIONS.md)", err);
		break;
	}
}

/*
 * The files in use: the first store.files (made here when missing), and
 * any other an earlier configuration left (read, never written by a
 * worker: master_db_adopt_outbox).
 */
static void
master_db_find_files(struct master *m)
{
	char path[PATH_MAX];
	struct stat sb;
	int i;

	m->db_files = 0;
	m->db_nfiles = 0;
	for (i = 0; i < CONFIG_STORE_FILES_MAX; i++) {
		if (i >= m->cfg->store.files && (store_file_path(
		    m->cfg->server.state_dir, i, path, sizeof(path)) == -1 ||
		    stat(path, &sb) == -1))
			continue;
		m->db_files |= 1u << i;
		m->db_nfiles++;
	}
}

/* Create or open file i, migrate it, and what a start does to each file. */
static int
master_db_start_file(struct master *m, int i, char *err, size_t errlen)
{
	int n;

	stateguard_set_aside(m->cfg->server.state_dir, i);
	if (store_open_file(&m->store, m->cfg->server.state_dir, i, 1,
	    m->cfg->store.synchronous, m->cfg->store.busy_timeout, err,
	    errlen) == -1)
		return -1;
	if (store_set_max_bytes(&m->store, master_db_conn_bytes(m), err,
	    errlen) == -1 || store_migrate(&m->store, err, errlen) == -1) {
		store_close(&m->store);
		return -1;
	}
	/*
	 * The conversion's VACUUM holds the database: only while no worker
	 * runs, not after a binary upgrade, whose workers live on.
	 */
	if (m->opt.inherit == NULL)
		master_db_convert(m);
	/*
	 * After a binary upgrade the workers not recorded as stopped are the
	 * previous image's, alive and about to be adopted: not orphans.
	 */
	if (m->opt.inherit == NULL &&
	    (n = store_workers_orphaned(&m->store)) > 0)
		log_warnx("database %s: %d workers of an earlier run were not "
		    "recorded as stopped; their undelivered results will be "
		    "sent", m->store.path, n);
	if (m->opt.inherit == NULL)
		master_db_recover(m);
	master_db_prune_workers(m);
	store_close(&m->store);
	return 0;
}

int
master_db_start(struct master *m, char *err, size_t errlen)
{
	int i;

	/* Resolved once; the workers' copies of the configuration follow. */
	m->cfg->store.files = store_files_resolve(m->cfg->store.files,
	    m->target);
	master_db_find_files(m);
	if (m->opt.inherit != NULL)
		log_info("database: any auto_vacuum conversion waits for the "
		    "next start (workers run across the upgrade)");
	for (i = master_db_next(m, 0); i >= 0; i = master_db_next(m, i + 1))
		if (master_db_start_file(m, i, err, errlen) == -1)
			return -1;
	if (m->opt.inherit == NULL)
		master_db_adopt_unused(m);	/* no worker runs yet */
	evloop_timer_init(&m->housekeeping, master_db_housekeeping, m);
	evloop_timer_add(m->loop, &m->housekeeping, clock_mono() +
	    MASTER_DB_AGAIN);
	evloop_timer_init(&m->disk.watch, master_db_watch, m);
	evloop_timer_add(m->loop, &m->disk.watch, clock_mono() +
	    MASTER_DB_WATCH_NEAR);	/* two looks give a growth rate */
	return 0;
}
