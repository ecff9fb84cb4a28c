/*
 * store: the SQLite database every egressd process shares.
 *
 * state_dir/egressd.db (and egressd-N.db with store.files), in WAL mode;
 * one connection per OS process, opened after fork; the schema is
 * versioned with PRAGMA user_version and migrated in order by the master
 * before any worker starts.  Holds the worker registry and the outbox of
 * results not yet acknowledged.  Statements used on hot paths are
 * prepared once per connection.
 */
#ifndef EGRESSD_STORE_H
#define EGRESSD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"

/*
 * store.files spreads the workers over up to CONFIG_STORE_FILES_MAX files,
 * so that no two of them (up to that many) share a write lock or throw
 * away each other's page cache: worker slot S writes file
 * (S - 1) % store.files + 1.  File 1 is egressd.db (the only one before
 * store.files existed), file N > 1 egressd-N.db.  Readers (the master,
 * egressctl) read every file there is.
 */
#define STORE_FILE_NAME "egressd.db"
#define STORE_FILE_PREFIX "egressd-"
#define STORE_FILE_SUFFIX ".db"
/* Agent pids of file N start past (N - 1) * STORE_PID_SPAN. */
#define STORE_PID_SPAN 1000000000000LL

/*
 * The WAL's share of store.max_bytes: checkpoints start once it holds
 * min(STORE_WAL_MAX, max_bytes / STORE_WAL_SHARE) bytes, and a WAL
 * restarted after a checkpoint is cut back to that size.  The database's
 * pages may use the rest of the budget.
 */
#define STORE_PAGE_SIZE 1024	/* of a new file (store.c says why) */
#define STORE_WAL_MAX (4 * 1024 * 1024)
#define STORE_WAL_SHARE 8
/* A file made before auto_vacuum is converted at start up to this size. */
#define STORE_CONVERT_MAX (256LL * 1024 * 1024)

struct sqlite3;
struct sqlite3_stmt;

struct store {
	struct sqlite3 *db;
	char *path;
	struct sqlite3_stmt *worker_insert;
	struct sqlite3_stmt *worker_state;
	struct sqlite3_stmt *worker_exit;
	struct sqlite3_stmt *outbox_put;
	struct sqlite3_stmt *outbox_defer;
	struct sqlite3_stmt *outbox_delete;
	struct sqlite3_stmt *outbox_replace;
	struct sqlite3_stmt *outbox_bury;
	struct sqlite3_stmt *outbox_claim;
	struct sqlite3_stmt *txn_begin;
	struct sqlite3_stmt *txn_commit;
	struct sqlite3_stmt *txn_rollback;
	struct sqlite3_stmt *txn_savepoint;
	struct sqlite3_stmt *txn_release;
	struct sqlite3_stmt *txn_undo;	/* ROLLBACK TO the savepoint */
	double busy_timeout;		/* seconds to wait for a lock */
	double busy_since;		/* when the current wait began */
	unsigned busy_seed;		/* jitter of the waits */
	int ckpt_frames;		/* WAL frames at the last checkpoint */
	char **gone;			/* acknowledged outbox rows to delete */
	size_t ngone, gone_cap;
	size_t gone_done;		/* of them, deleted in the open txn */
	/*
	 * Called between the sleeps of a lock wait (set after store_open):
	 * a wait can last busy_timeout, several in a row, and the process
	 * must still look alive to whoever watches it.
	 */
	void (*waiting)(void *arg);
	void *waiting_arg;
	int wal_pages;			/* checkpoint from here on */
	int batch;			/* store_batch_begin's is open */
	int batch_lost;			/*   and SQLite rolled it back */
	int sync_full;			/* store.synchronous = "full" */
	int index;			/* of the file, 0-based (file */
					/*   index + 1 for people) */
};

/*
 * A claimed outbox row; the strings live only during the call.  resend:
 * the row was taken from another worker that may already have delivered
 * it (see store_outbox_claim); replaced: the result is the error result
 * that took the place of one the orchestrator refused.
 */
struct store_outbox_row {
	const char *operation_id;
	const char *result;
	int resend;
	int replaced;
};
typedef void (*store_outbox_cb)(const struct store_outbox_row *row,
    void *arg);

/*
 * Open (creating if needed) state_dir/egressd.db and set its pragmas.  A
 * file this process may not write is refused, never opened read-only.
 */
int store_open(struct store *st, const char *state_dir,
    enum config_synchronous sync, double busy_timeout, char *err,
    size_t errlen);
/*
 * The path of state_dir's file index (0-based) into buf; -1 when index is
 * out of 0..CONFIG_STORE_FILES_MAX-1 or the path does not fit.
 */
int store_file_path(const char *state_dir, int index, char *buf,
    size_t len);
/*
 * store.files as configured (0: as many as the workers, up to
 * CONFIG_STORE_FILES_MAX) for a master that starts workers of them.
 */
int store_files_resolve(int configured, int workers);
/* The 0-based file worker slot (1..N) writes when store.files is files. */
int store_file_of_slot(int slot, int files);
/*
 * Open file index like store_open when create is set; otherwise the file
 * must already exist (once the master has made it): a missing one is an
 * error, never a new empty one.
 */
int store_open_file(struct store *st, const char *state_dir, int index,
    int create, enum config_synchronous sync, double busy_timeout,
    char *err, size_t errlen);

/*
 * Bring the schema to the current version; one transaction per step.  A
 * file past the first then has its pids start past its span.
 */
int store_migrate(struct store *st, char *err, size_t errlen);

/*
 * The database's bytes: its file and WAL as the file system sees them,
 * and the pages in use and free inside (the WAL's newest commit counted).
 */
struct store_size {
	int64_t file_bytes;
	int64_t wal_bytes;
	int64_t used_bytes;	/* pages holding data */
	int64_t free_bytes;	/* free pages, not yet given back */
	int64_t page_size;
};

/* The WAL bytes a budget of max_bytes allows (see STORE_WAL_MAX). */
int64_t store_wal_limit(int64_t max_bytes);
/*
 * Checkpoints and WAL truncation for max_bytes: a passive checkpoint once
 * the WAL holds its share, and a restarted WAL cut back to it; 0 or -1
 * (err set).
 */
int store_set_max_bytes(struct store *st, int64_t max_bytes, char *err,
    size_t errlen);
/* Only the file sizes (two stat calls, no database access). */
void store_files(const char *db_path, struct store_size *sz);
/* Everything in struct store_size; 0, or -1 on a database error. */
int store_size(struct store *st, struct store_size *sz);
/* The first column of the first row of a PRAGMA (or query), or -1. */
int64_t store_pragma_int(struct store *st, const char *sql);

/*
 * Give free pages back: a file made before auto_vacuum is rewritten once
 * by VACUUM (at start, no other connection, at most max_file bytes of file
 * and WAL); returns STORE_VACUUM_DONE (nothing to do), _CONVERTED,
 * _TOO_LARGE (left as it is), or -1 with err set.
 */
enum { STORE_VACUUM_DONE, STORE_VACUUM_CONVERTED, STORE_VACUUM_TOO_LARGE };
int store_vacuum_convert(struct store *st, int64_t max_file, char *err,
    size_t errlen);
/*
 * Release free pages, chunk_bytes at a time for at most steps chunks, each
 * followed by a passive checkpoint, then truncate the WAL (a checkpoint
 * held up by others is no error).  0 or -1 (err set).
 */
int store_reclaim(struct store *st, int64_t chunk_bytes, int steps, char *err,
    size_t errlen);

int store_worker_register(struct store *st, const char *instance_id,
    pid_t pid, int slot, int generation);
int store_worker_set_state(struct store *st, const char *instance_id,
    const char *state);
/*
 * The workers this file says are alive (not stopped or exited), at most
 * max of them into out; how many, or -1.
 */
struct store_live {
	char instance_id[64];
	pid_t pid;
};
int store_live_workers(struct store *st, struct store_live *out, int max);
/*
 * Whether this file has instance_id's registry row: STORE_WORKER_ALIVE
 * (not recorded as stopped or exited), STORE_WORKER_ENDED, 0 (no row), or
 * -1.
 */
enum { STORE_WORKER_ENDED = 1, STORE_WORKER_ALIVE = 2 };
int store_worker_known(struct store *st, const char *instance_id);
/* Rows changed: 1, or 0 when this file does not know the worker; -1. */
int store_worker_exited(struct store *st, const char *instance_id,
    const char *reason);

/*
 * The durable outbox: a result is put before its first delivery attempt
 * and deleted once the orchestrator acknowledged it; next_attempt (wall
 * seconds) says when a sweep may send it again.
 */
int store_outbox_put(struct store *st, const char *operation_id,
    const char *result, const char *instance_id, double next_attempt);
int store_outbox_defer(struct store *st, const char *operation_id,
    double next_attempt);
int store_outbox_delete(struct store *st, const char *operation_id);
/*
 * An acknowledged row, deleted in the next transaction this connection
 * begins (store_begin: an agent process's spawn or exit, most often), or
 * by store_outbox_flush(): a commit of its own saved per operation.  Until
 * then the row stays, as if the worker had died before deleting it: sent
 * again by whoever sweeps it once it is due, which is what the delivery
 * rule allows.  -1 out of memory (nothing queued).
 */
int store_outbox_delete_later(struct store *st, const char *operation_id);
/* The queued deletes, now, in one transaction (store_close does it too). */
int store_outbox_flush(struct store *st);
/* The refused result's text gives way to result; the row is "replaced". */
int store_outbox_replace(struct store *st, const char *operation_id,
    const char *result);
/*
 * A dead letter: kept, never claimed or counted as pending again, with the
 * time and the reason; only an operator removes it.
 */
int store_outbox_bury(struct store *st, const char *operation_id,
    const char *reason);
/*
 * Claim up to limit live (not dead) rows for instance_id — its own that are due, any of
 * a stopped or exited worker, any with next_attempt before stale_before —
 * moving their next_attempt on, counting the claim in "attempts" and
 * noting in "taken_from" the worker a row was taken from; cb sees each.
 * Returns the count or -1.
 */
int store_outbox_claim(struct store *st, const char *instance_id, int limit,
    double now, double next_attempt, double stale_before,
    store_outbox_cb cb, void *arg);

/*
 * Results of instance_id still to deliver (dead letters are not): rows it
 * wrote or claimed, and rows holding the results of its agent processes
 * whoever claimed them since.  Returns the count or -1.
 */
int store_outbox_pending(struct store *st, const char *instance_id);

/* The outbox at a glance, for health and metrics. */
struct store_outbox_stats {
	int64_t rows;		/* live: waiting for delivery */
	int64_t dead;		/* dead letters */
	double oldest;		/* created_at of the oldest live row; 0 none */
};
int store_outbox_stats(struct store *st, struct store_outbox_stats *out);

/*
 * Move the outbox rows of the database file src_path whose worker is gone
 * into this one (for a worker of this file to deliver): the copy and the
 * delete are two transactions, so a crash between them may send a result
 * twice but never loses one.  Returns the rows copied, or -1 (err set).
 */
int store_outbox_adopt(struct store *st, const char *src_path, char *err,
    size_t errlen);

/* What retention may not remove: results to deliver, processes running. */
struct store_kept {
	int64_t undelivered;	/* outbox rows still sent */
	int64_t dead;		/* dead letters */
	int64_t running;	/* agent processes not ended */
};
int store_kept(struct store *st, struct store_kept *k);

/*
 * At the master's start no worker of it runs yet: rows still marked live
 * are from a run that died whole, and their outbox rows are up for grabs.
 * Returns the rows marked exited, or -1.
 */
int store_workers_orphaned(struct store *st);

/*
 * Workers recorded as gone that still own live agent processes (the master
 * could not fail them when it reaped the worker); *ids is malloc'd, each
 * string too.  Returns the count (0 on a database error: a later pass
 * retries).
 */
int store_orphaned_instances(struct store *st, char ***ids);

/*
 * Delete stopped workers' rows older than days, and all but the keep most
 * recently stopped; live workers' rows stay.  Returns rows removed or -1.
 */
#define STORE_WORKERS_KEEP 1000	/* stopped workers' rows kept at most */
int store_prune_workers(struct store *st, double days, int keep);

/*
 * Write transactions: BEGIN IMMEDIATE takes the write lock at once (waiting
 * up to busy_timeout), so no statement inside can fail on a lock taken
 * later.  Each returns 0 or -1; sqlite3_extended_errcode() says why.
 * store_rollback does nothing outside a transaction (SQLite may already
 * have rolled back after a full disk or an I/O error).
 */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/*
 * One transaction around several: between store_batch_begin and
 * store_batch_end, store_begin, store_commit and store_rollback work on a
 * savepoint, so each still fails or succeeds whole, but nothing is
 * durable before store_batch_end commits the lot (one COMMIT, one WAL
 * append of the pages they share).  store_batch_end returns 0 when all of
 * it was committed, -1 when some of it may not be (the commit failed, or
 * SQLite rolled the transaction back on an error inside: what the batch
 * held before that is gone, what followed committed on its own), with
 * SQLite's reason in err.  Not
 * nested; a connection's other writers must not run inside one.
 */
int store_batch_begin(struct store *st);
int store_batch_end(struct store *st, char *err, size_t errlen);
/*
 * 1 while the open batch still holds everything written since
 * store_batch_begin; 0 once SQLite rolled it back (what is written from
 * then on commits on its own) or when none is open.
 */
int store_batch_intact(struct store *st);
/*
 * SQLite hands the pids of a transaction it rolled back out again: after
 * this, the next spawn's pid is past pid, so one named in a result sent
 * from memory is never another process's.  0, or -1 with err.
 */
int store_pids_past(struct store *st, int64_t pid, char *err, size_t errlen);

/*
 * The statement in *slot, prepared on first use (persistent, for statements
 * run again and again), reset and unbound; NULL on error.  The caller
 * finalizes *slot when it closes.
 */
struct sqlite3_stmt *store_prepare(struct store *st,
    struct sqlite3_stmt **slot, const char *sql);

const char *store_errmsg(struct store *st);
void store_close(struct store *st);

#endif
