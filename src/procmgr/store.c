/* store: SQLite connection, pragmas, migrations, worker rows (see store.h). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "procmgr/store.h"

/* Migrations run in order; user_version is the number applied so far. */
static const char *const store_migrations[] = {
	/* 1: the worker registry. */
	"CREATE TABLE workers ("
	" instance_id TEXT PRIMARY KEY,"
	" pid INTEGER NOT NULL,"
	" slot INTEGER NOT NULL,"
	" generation INTEGER NOT NULL,"
	" state TEXT NOT NULL,"
	" started_at REAL NOT NULL,"
	" updated_at REAL NOT NULL,"
	" stopped_at REAL,"
	" exit_reason TEXT);"
	"CREATE INDEX workers_stopped ON workers(stopped_at);",
	/* 2: the durable outbox of results not yet acknowledged. */
	"CREATE TABLE outbox ("
	" operation_id TEXT PRIMARY KEY,"
	" result TEXT NOT NULL,"
	" instance_id TEXT NOT NULL,"
	" created_at REAL NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt REAL NOT NULL);"
	"CREATE INDEX outbox_due ON outbox(next_attempt);",
	/*
	 * 3: agent processes (DESIGN section 4).  Only processes keep
	 * AUTOINCREMENT: a pid is never reused, even after pruning.  A
	 * process's objects, views and capabilities go with it; events and
	 * audit rows outlive it until retention removes them.
	 */
	"CREATE TABLE processes ("
	" pid INTEGER PRIMARY KEY AUTOINCREMENT,"
	" parent_pid INTEGER,"
	" root_pid INTEGER NOT NULL,"
	" instance_id TEXT NOT NULL,"
	" operation_id TEXT,"
	" image TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" status_message TEXT,"
	" goal_oid INTEGER,"
	" result_oid INTEGER,"
	" view_id INTEGER,"
	" cwd TEXT NOT NULL DEFAULT '.',"
	" max_tool_calls INTEGER NOT NULL,"
	" max_child_processes INTEGER NOT NULL,"
	" max_runtime REAL NOT NULL,"
	" tool_calls INTEGER NOT NULL DEFAULT 0,"
	" child_processes INTEGER NOT NULL DEFAULT 0,"
	" created_at REAL NOT NULL,"
	" updated_at REAL NOT NULL,"
	" ended_at REAL);"
	"CREATE INDEX processes_parent ON processes(parent_pid);"
	"CREATE INDEX processes_live ON processes(instance_id)"
	" WHERE ended_at IS NULL;"
	"CREATE INDEX processes_ended ON processes(ended_at)"
	" WHERE parent_pid IS NULL;"
	"CREATE TABLE objects ("
	" oid INTEGER PRIMARY KEY,"
	" owner_pid INTEGER NOT NULL"
	"  REFERENCES processes(pid) ON DELETE CASCADE,"
	" type TEXT NOT NULL,"
	" payload TEXT NOT NULL,"
	" immutable INTEGER NOT NULL,"
	" volatile INTEGER NOT NULL,"
	" created_at REAL NOT NULL);"
	"CREATE INDEX objects_owner ON objects(owner_pid);"
	"CREATE TABLE views ("
	" view_id INTEGER PRIMARY KEY,"
	" pid INTEGER NOT NULL REFERENCES processes(pid) ON DELETE CASCADE,"
	" mode TEXT NOT NULL,"
	" roots TEXT NOT NULL,"		/* JSON array of oids */
	" source_view INTEGER,"
	" created_at REAL NOT NULL);"
	"CREATE INDEX views_pid ON views(pid);"
	"CREATE TABLE capabilities ("
	" cap_id INTEGER PRIMARY KEY,"
	" subject INTEGER NOT NULL"
	"  REFERENCES processes(pid) ON DELETE CASCADE,"
	" resource TEXT NOT NULL,"
	" rights TEXT NOT NULL,"		/* comma list */
	" constraints TEXT,"
	" expires_at REAL,"
	" delegable INTEGER NOT NULL,"
	" revocable INTEGER NOT NULL,"
	" issued_by TEXT NOT NULL,"
	" created_at REAL NOT NULL,"
	" revoked_at REAL,"
	" revoked_by TEXT,"
	" revoke_reason TEXT);"
	"CREATE INDEX capabilities_subject ON capabilities(subject);"
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY,"
	" type TEXT NOT NULL,"
	" source TEXT NOT NULL,"
	" pid INTEGER,"
	" payload TEXT,"
	" created_at REAL NOT NULL);"
	"CREATE INDEX events_pid ON events(pid);"
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" target TEXT NOT NULL,"
	" pid INTEGER,"
	" input_refs TEXT,"
	" output_refs TEXT,"
	" decision TEXT,"
	" created_at REAL NOT NULL);"
	"CREATE INDEX audit_pid ON audit(pid);"
	"ALTER TABLE outbox ADD COLUMN pid INTEGER;",
	/*
	 * 4: fewer index pages written per process call.  Roots have no
	 * parent and live roots no end: neither enters an index that never
	 * looks them up.  Events and audit rows are read in id (time)
	 * order, never by pid, so they keep only their rowid.
	 */
	"DROP INDEX processes_parent;"
	"CREATE INDEX processes_parent ON processes(parent_pid)"
	" WHERE parent_pid IS NOT NULL;"
	"DROP INDEX processes_ended;"
	"CREATE INDEX processes_ended ON processes(ended_at)"
	" WHERE parent_pid IS NULL AND ended_at IS NOT NULL;"
	"DROP INDEX events_pid;"
	"DROP INDEX audit_pid;",
	/*
	 * 5: the worker a claim took an outbox row from (NULL when the row
	 * was the claimer's own), so a re-send that may repeat a delivery is
	 * known as one.
	 */
	"ALTER TABLE outbox ADD COLUMN taken_from TEXT;",
	/*
	 * 6: a result the orchestrator refuses for good is replaced once by
	 * an error result (replaced = 1); refused again, the row is kept as a
	 * dead letter (dead_at, dead_reason) that no sweep sends again and
	 * nothing deletes: the operator decides (docs/OPERATIONS.md).
	 */
	"ALTER TABLE outbox ADD COLUMN replaced INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE outbox ADD COLUMN dead_at REAL;"
	"ALTER TABLE outbox ADD COLUMN dead_reason TEXT;",
	/*
	 * 7: delegation and hierarchical usage (docs/PROCESSES.md).  An
	 * inherited capability names the parent capability it was delegated
	 * from (NULL: granted, not delegated), so a check walks the chain;
	 * runtime_used is the runtime charged to a process by itself and
	 * its descendants.  Existing rows keep their meaning: NULL and 0.
	 */
	"ALTER TABLE capabilities ADD COLUMN parent_cap INTEGER;"
	"ALTER TABLE processes ADD COLUMN runtime_used REAL NOT NULL"
	" DEFAULT 0;",
	/*
	 * 8: a bounded file (store.max_bytes).  The pruner asks, for every
	 * tree it would delete, whether an outbox row still holds its
	 * result: by index, or each ask scans the outbox, which is largest
	 * exactly when the budget is tight.  Free pages go back to the file
	 * system (incremental_vacuum): store_open asks for auto_vacuum on
	 * every new file; a file made before this step takes it at its next
	 * VACUUM (store_vacuum_convert), which cannot run inside this
	 * step's transaction.
	 */
	"CREATE INDEX outbox_pid ON outbox(pid) WHERE pid IS NOT NULL;"
	"PRAGMA auto_vacuum=INCREMENTAL;",
};

/* Waits for a lock: 50 us doubling to 1.6 ms, then at most 1.6 ms. */
#define STORE_BUSY_MIN_US 50u
#define STORE_BUSY_STEPS 6
#define STORE_BUSY_MAX_US (STORE_BUSY_MIN_US << (STORE_BUSY_STEPS - 1))

#define STORE_WAL_PAGES (STORE_WAL_MAX / STORE_PAGE_SIZE)
#define STORE_AUTO_VACUUM_INCREMENTAL 2	/* PRAGMA auto_vacuum's value */
/* After a checkpoint, the share of the WAL to wait for before the next. */
#define STORE_CKPT_STEP_DIV 4
#define STORE_CACHE_KIB 256		/* page cache of a connection */

#define STORE_VERSION \
	((int)(sizeof(store_migrations) / sizeof(store_migrations[0])))

static int
store_check_dir(const char *dir, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(dir, &sb) == -1) {
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "state_dir %s: not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) == -1) {
		snprintf(err, errlen, "state_dir %s: not writable: %s", dir,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
store_exec(struct store *st, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int sys = 0;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	/* "disk I/O error" alone hides a full disk or a permission. */
	if ((sqlite3_extended_errcode(st->db) & 0xff) == SQLITE_IOERR)
		sys = sqlite3_system_errno(st->db);
	if (sys != 0)
		snprintf(err, errlen, "database %s: %s (%s)", st->path,
		    msg ? msg : sqlite3_errmsg(st->db), strerror(sys));
	else
		snprintf(err, errlen, "database %s: %s", st->path,
		    msg ? msg : sqlite3_errmsg(st->db));
	sqlite3_free(msg);
	return -1;
}

/*
 * Waiting for a lock.  SQLite's own handler sleeps up to 100 ms between
 * tries: under contention a writer that sleeps so long finds the lock
 * taken each time it looks, by writers that did not sleep, and can starve
 * past busy_timeout (seen with 8 writers on 2 CPUs).  Short jittered
 * sleeps find the gaps between other writers' transactions.
 */
static int
store_busy(void *arg, int count)
{
	struct store *st = arg;
	struct timespec ts;
	double now = clock_mono();
	unsigned cap, us;

	if (count == 0)
		st->busy_since = now;
	if (now - st->busy_since >= st->busy_timeout)
		return 0;
	if (st->waiting != NULL)
		st->waiting(st->waiting_arg);
	cap = count < STORE_BUSY_STEPS ? STORE_BUSY_MIN_US << count :
	    STORE_BUSY_MAX_US;
	st->busy_seed = st->busy_seed * 1103515245u + 12345u;
	us = cap / 2 + (st->busy_seed >> 16) % (cap / 2 + 1);
	ts.tv_sec = 0;
	ts.tv_nsec = (long)us * 1000;
	nanosleep(&ts, NULL);
	return 1;
}

/*
 * After each commit: once the WAL holds its share of the budget
 * (wal_pages: STORE_WAL_PAGES until store_set_max_bytes sizes it), a
 * passive checkpoint copies what no reader still needs, and the next
 * writer restarts the WAL from its start when that was all of it;
 * journal_size_limit then cuts the file back.  A connection tries again
 * only after a quarter of that share more frames: a checkpoint cannot
 * backfill past the snapshot another worker is reading, nor restart the
 * WAL while it reads, so with two writers SQLite's own hook checkpointed
 * after nearly every commit, each time with two fdatasync calls
 * (bench/README.md).  Writers that follow each other closely can keep
 * the WAL from restarting (one is always inside a transaction): the
 * master's TRUNCATE checkpoint (store_reclaim), which waits for them,
 * ends such a run.  A worker never waits for one here: its peers would go
 * on writing meanwhile.  Errors are ignored, as SQLite's hook ignores
 * them: the next step tries again.
 */
static int
store_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *st = arg;
	int step = st->wal_pages / STORE_CKPT_STEP_DIV;

	if (frames < st->wal_pages) {
		st->ckpt_frames = 0;	/* below, or restarted */
		return SQLITE_OK;
	}
	if (st->ckpt_frames != 0 && frames >= st->ckpt_frames &&
	    frames < st->ckpt_frames + (step > 0 ? step : 1))
		return SQLITE_OK;
	st->ckpt_frames = frames;
	(void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
	    NULL, NULL);
	return SQLITE_OK;
}

static int
store_pragmas(struct store *st, enum config_synchronous sync,
    double busy_timeout, char *err, size_t errlen)
{
	char sql[256];

	st->busy_timeout = busy_timeout;
	st->busy_seed = (unsigned)getpid() ^ (unsigned)(uintptr_t)st;
	sqlite3_busy_handler(st->db, store_busy, st);
	/*
	 * journal_mode reads the header first: a non-database fails here.
	 * page_size only applies to a new file.  Small rows dominate, and
	 * every page a transaction touches is one more WAL frame written:
	 * 1 KB pages cost the kernel far less per commit than 4 KB ones
	 * (bench/README.md), and the WAL checkpoints at its share of the
	 * budget (store_wal_hook, which replaces SQLite's auto-checkpoint).
	 * auto_vacuum too applies only before the first table (or at a
	 * VACUUM): set here, a new file can give its free pages back.
	 * SQLite's default 2 MiB page cache fills over a worker's first
	 * thousands of operations and stays; an operation touches a few
	 * dozen pages, and STORE_CACHE_KIB holds them as well: a worker that
	 * has worked is 5.8 MiB RSS instead of 7.8, at the same instructions
	 * and CPU per operation (bench/README.md, "Memory").
	 */
	snprintf(sql, sizeof(sql), "PRAGMA page_size=%d;"
	    "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;"
	    "PRAGMA cache_size=-%d;", STORE_PAGE_SIZE,
	    sync == SYNC_FULL ? "FULL" : "NORMAL", STORE_CACHE_KIB);
	if (store_exec(st, sql, err, errlen) == -1)
		return -1;
	st->sync_full = sync == SYNC_FULL;
	st->ckpt_frames = 0;
	st->wal_pages = STORE_WAL_PAGES;
	sqlite3_wal_hook(st->db, store_wal_hook, st);
	return 0;
}

/*
 * SQLite opens a file it may not write read-only, silently, and every
 * write then fails: refuse it here, naming the file and its mode.
 */
static int
store_check_writable(struct store *st, char *err, size_t errlen)
{
	struct stat sb;

	if (sqlite3_db_readonly(st->db, "main") != 1)
		return 0;
	if (stat(st->path, &sb) == 0)
		snprintf(err, errlen, "database %s is read-only for uid %ld "
		    "(mode %04o, owner uid %ld): egressd must be able to write "
		    "it", st->path, (long)geteuid(),
		    (unsigned)(sb.st_mode & 07777), (long)sb.st_uid);
	else
		snprintf(err, errlen, "database %s is read-only for uid %ld: "
		    "egressd must be able to write it", st->path,
		    (long)geteuid());
	return -1;
}

int
store_file_path(const char *state_dir, int index, char *buf, size_t len)
{
	int n;

	if (index < 0 || index >= CONFIG_STORE_FILES_MAX)
		return -1;
	if (index == 0)
		n = snprintf(buf, len, "%s/%s", state_dir, STORE_FILE_NAME);
	else
		n = snprintf(buf, len, "%s/" STORE_FILE_PREFIX "%d"
		    STORE_FILE_SUFFIX, state_dir, index + 1);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
store_files_resolve(int configured, int workers)
{
	if (configured > 0)
		return configured;
	if (workers < 1)
		return 1;
	return workers < CONFIG_STORE_FILES_MAX ? workers :
	    CONFIG_STORE_FILES_MAX;
}

int
store_file_of_slot(int slot, int files)
{
	if (files < 1)
		files = 1;
	if (files > CONFIG_STORE_FILES_MAX)
		files = CONFIG_STORE_FILES_MAX;
	return slot < 1 ? 0 : (slot - 1) % files;
}

static int
store_open_flags(struct store *st, const char *state_dir, int index,
    int flags, enum config_synchronous sync, double busy_timeout, char *err,
    size_t errlen)
{
	char path[PATH_MAX];
	int rc;

	memset(st, 0, sizeof(*st));
	st->index = index;
	if (store_check_dir(state_dir, err, errlen) == -1)
		return -1;
	if (store_file_path(state_dir, index, path, sizeof(path)) == -1) {
		snprintf(err, errlen, "database file %d of %s: the path is "
		    "too long, or the file not one of 1..%d", index + 1,
		    state_dir, CONFIG_STORE_FILES_MAX);
		return -1;
	}
	if ((st->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "database: out of memory");
		return -1;
	}
	rc = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "database %s: %s", st->path,
		    st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		store_close(st);
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	if (store_check_writable(st, err, errlen) == -1 ||
	    store_pragmas(st, sync, busy_timeout, err, errlen) == -1) {
		store_close(st);
		return -1;
	}
	return 0;
}

int
store_open_file(struct store *st, const char *state_dir, int index,
    int create, enum config_synchronous sync, double busy_timeout,
    char *err, size_t errlen)
{
	return store_open_flags(st, state_dir, index, create ?
	    SQLITE_OPEN_CREATE : 0, sync, busy_timeout, err, errlen);
}

int
store_open(struct store *st, const char *state_dir,
    enum config_synchronous sync, double busy_timeout, char *err,
    size_t errlen)
{
	return store_open_flags(st, state_dir, 0, SQLITE_OPEN_CREATE, sync,
	    busy_timeout, err, errlen);
}

static int
store_user_version(struct store *st)
{
	sqlite3_stmt *stmt;
	int version = -1;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &stmt,
	    NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return version;
}

static int
store_apply(struct store *st, int step, char *err, size_t errlen)
{
	char sql[64];

	if (store_exec(st, "BEGIN IMMEDIATE", err, errlen) == -1)
		return -1;
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", step + 1);
	if (store_exec(st, store_migrations[step], err, errlen) == -1 ||
	    store_exec(st, sql, err, errlen) == -1) {
		char ignored[8];

		store_exec(st, "ROLLBACK", ignored, sizeof(ignored));
		return -1;
	}
	return store_exec(st, "COMMIT", err, errlen);
}

/* The next pid SQLite gives (AUTOINCREMENT) is past `past`: a transaction. */
static int
store_raise_pids(struct store *st, long long past, char *err, size_t errlen)
{
	char sql[320];

	if (!sqlite3_get_autocommit(st->db)) {
		snprintf(err, errlen, "a transaction is open");
		return -1;
	}
	snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;"
	    "INSERT INTO sqlite_sequence (name, seq) SELECT 'processes', 0 "
	    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence "
	    "WHERE name = 'processes');"
	    "UPDATE sqlite_sequence SET seq = %lld "
	    "WHERE name = 'processes' AND seq < %lld;"
	    "COMMIT", past, past);
	if (store_exec(st, sql, err, errlen) == -1) {
		char ignored[8];

		store_exec(st, "ROLLBACK", ignored, sizeof(ignored));
		return -1;
	}
	return 0;
}

/*
 * Agent pids stay unique across the files: file N's start past
 * (N - 1) * STORE_PID_SPAN.  AUTOINCREMENT takes the next pid from
 * sqlite_sequence, which may be written like any table; raising it only
 * ever skips numbers.  The first file keeps 1.. (and every pid a single
 * file of an earlier version gave).
 */
static int
store_seed_pids(struct store *st, char *err, size_t errlen)
{
	long long base = (long long)st->index * STORE_PID_SPAN;
	sqlite3_stmt *s;
	int seeded = 0;

	if (st->index == 0)
		return 0;
	/* Read first: a start (or an upgrade beside live workers) that has */
	/* nothing to write takes no write lock. */
	if (sqlite3_prepare_v2(st->db, "SELECT seq >= ?1 FROM sqlite_sequence "
	    "WHERE name = 'processes'", -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, base);
		seeded = sqlite3_step(s) == SQLITE_ROW &&
		    sqlite3_column_int(s, 0) == 1;
		sqlite3_finalize(s);
	}
	if (seeded)
		return 0;
	return store_raise_pids(st, base, err, errlen);
}

int
store_pids_past(struct store *st, int64_t pid, char *err, size_t errlen)
{
	return store_raise_pids(st, (long long)pid, err, errlen);
}

int
store_migrate(struct store *st, char *err, size_t errlen)
{
	int version = store_user_version(st);

	if (version < 0) {
		snprintf(err, errlen, "database %s: %s", st->path,
		    sqlite3_errmsg(st->db));
		return -1;
	}
	if (version > STORE_VERSION) {
		snprintf(err, errlen, "database %s: schema version %d is newer "
		    "than this egressd supports (%d)", st->path, version,
		    STORE_VERSION);
		return -1;
	}
	for (; version < STORE_VERSION; version++)
		if (store_apply(st, version, err, errlen) == -1)
			return -1;
	return store_seed_pids(st, err, errlen);
}

int64_t
store_pragma_int(struct store *st, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

int64_t
store_wal_limit(int64_t max_bytes)
{
	int64_t share = max_bytes / STORE_WAL_SHARE;

	return share < STORE_WAL_MAX ? share : STORE_WAL_MAX;
}

int
store_set_max_bytes(struct store *st, int64_t max_bytes, char *err,
    size_t errlen)
{
	int64_t wal = store_wal_limit(max_bytes);
	int64_t page = store_pragma_int(st, "PRAGMA page_size");
	char sql[64];

	if (page <= 0)
		page = STORE_PAGE_SIZE;
	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit=%lld;",
	    (long long)wal);
	if (store_exec(st, sql, err, errlen) == -1)
		return -1;
	st->wal_pages = (int)(wal / page > 0 ? wal / page : 1);
	return 0;
}

static int64_t
store_file_bytes(const char *path, const char *suffix)
{
	char name[PATH_MAX];
	struct stat sb;

	if ((size_t)snprintf(name, sizeof(name), "%s%s", path, suffix) >=
	    sizeof(name) || stat(name, &sb) == -1)
		return 0;	/* no WAL (yet) is an empty one */
	return (int64_t)sb.st_size;
}

void
store_files(const char *db_path, struct store_size *sz)
{
	sz->file_bytes = store_file_bytes(db_path, "");
	sz->wal_bytes = store_file_bytes(db_path, "-wal");
}

int
store_size(struct store *st, struct store_size *sz)
{
	int64_t page, pages, free_pages;

	store_files(st->path, sz);
	page = store_pragma_int(st, "PRAGMA page_size");
	pages = store_pragma_int(st, "PRAGMA page_count");
	free_pages = store_pragma_int(st, "PRAGMA freelist_count");
	if (page < 0 || pages < 0 || free_pages < 0)
		return -1;
	sz->page_size = page;
	sz->used_bytes = (pages - free_pages) * page;
	sz->free_bytes = free_pages * page;
	return 0;
}

/*
 * A file made before migration 8 frees no pages until a VACUUM rewrites
 * it with auto_vacuum on (store_pragmas asked for it).  VACUUM holds the
 * database whole while it copies it, and needs as much free disk again:
 * done at start, before any worker, and only for a file of at most
 * max_file bytes; a larger one keeps reusing its free pages, so it stops
 * growing but does not shrink (docs/OPERATIONS.md says how to convert it).
 */
int
store_vacuum_convert(struct store *st, int64_t max_file, char *err,
    size_t errlen)
{
	struct store_size sz;

	if (store_pragma_int(st, "PRAGMA auto_vacuum") ==
	    STORE_AUTO_VACUUM_INCREMENTAL)
		return STORE_VACUUM_DONE;
	store_files(st->path, &sz);
	if (sz.file_bytes + sz.wal_bytes > max_file)
		return STORE_VACUUM_TOO_LARGE;
	if (store_exec(st, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;", err,
	    errlen) == -1)
		return -1;
	return STORE_VACUUM_CONVERTED;
}

/*
 * Free pages back to the file system, a chunk at a time: each step is one
 * short write transaction whose moved pages go through the WAL, then a
 * passive checkpoint that copies them into the file (which is where the
 * file shrinks), so the WAL can restart small; a last TRUNCATE checkpoint
 * empties it (waiting at most busy_timeout).
 */
/*
 * A checkpoint: PASSIVE copies what it can and never waits; TRUNCATE
 * waits (busy_timeout) for readers and the writer, then empties the WAL.
 * Held up all the same, it is no error: the next one finishes it.
 */
static int
store_checkpoint(struct store *st, int mode, char *err, size_t errlen)
{
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, mode, NULL, NULL);

	if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY)
		return 0;
	snprintf(err, errlen, "database %s: checkpoint: %s", st->path,
	    sqlite3_errmsg(st->db));
	return -1;
}

/* Free pages that incremental_vacuum can give back (none when the file
 * was made before auto_vacuum and not converted). */
static int
store_reclaimable(struct store *st)
{
	return store_pragma_int(st, "PRAGMA auto_vacuum") ==
	    STORE_AUTO_VACUUM_INCREMENTAL &&
	    store_pragma_int(st, "PRAGMA freelist_count") > 0;
}

int
store_reclaim(struct store *st, int64_t chunk_bytes, int steps, char *err,
    size_t errlen)
{
	int64_t page = store_pragma_int(st, "PRAGMA page_size");
	char sql[64];

	if (page <= 0)
		page = STORE_PAGE_SIZE;
	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%lld);",
	    (long long)(chunk_bytes / page > 0 ? chunk_bytes / page : 1));
	for (; steps > 0 && store_reclaimable(st); steps--)
		if (store_exec(st, sql, err, errlen) == -1 ||
		    store_checkpoint(st, SQLITE_CHECKPOINT_PASSIVE, err,
		    errlen) == -1)
			return -1;
	return store_checkpoint(st, SQLITE_CHECKPOINT_TRUNCATE, err, errlen);
}

sqlite3_stmt *
store_prepare(struct store *st, sqlite3_stmt **slot, const char *sql)
{
	if (*slot == NULL && sqlite3_prepare_v3(st->db, sql, -1,
	    SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_reset(*slot);
	sqlite3_clear_bindings(*slot);
	return *slot;
}

static int
store_step_done(sqlite3_stmt *stmt)
{
	int rc = sqlite3_step(stmt);

	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_worker_register(struct store *st, const char *instance_id, pid_t pid,
    int slot, int generation)
{
	sqlite3_stmt *s;
	double now = clock_wall();

	s = store_prepare(st, &st->worker_insert, "INSERT INTO workers "
	    "(instance_id, pid, slot, generation, state, started_at, "
	    "updated_at) VALUES (?, ?, ?, ?, 'booting', ?, ?)");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, pid);
	sqlite3_bind_int(s, 3, slot);
	sqlite3_bind_int(s, 4, generation);
	sqlite3_bind_double(s, 5, now);
	sqlite3_bind_double(s, 6, now);
	return store_step_done(s);
}

int
store_worker_set_state(struct store *st, const char *instance_id,
    const char *state)
{
	sqlite3_stmt *s;

	s = store_prepare(st, &st->worker_state, "UPDATE workers SET "
	    "state = ?, updated_at = ? WHERE instance_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 2, clock_wall());
	sqlite3_bind_text(s, 3, instance_id, -1, SQLITE_STATIC);
	return store_step_done(s);
}

int
store_worker_exited(struct store *st, const char *instance_id,
    const char *reason)
{
	sqlite3_stmt *s;
	double now = clock_wall();

	s = store_prepare(st, &st->worker_exit, "UPDATE workers SET "
	    "state = 'exited', updated_at = ?, stopped_at = ?, "
	    "exit_reason = ? WHERE instance_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_double(s, 1, now);
	sqlite3_bind_double(s, 2, now);
	sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, instance_id, -1, SQLITE_STATIC);
	if (store_step_done(s) == -1)
		return -1;
	return sqlite3_changes(st->db);
}

int
store_worker_known(struct store *st, const char *instance_id)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT state NOT IN ('stopped', "
	    "'exited') FROM workers WHERE instance_id = ?", -1, &s, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, instance_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		rc = sqlite3_column_int(s, 0) ? STORE_WORKER_ALIVE :
		    STORE_WORKER_ENDED;
	else
		rc = rc == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(s);
	return rc;
}

int
store_outbox_put(struct store *st, const char *operation_id,
    const char *result, const char *instance_id, double next_attempt)
{
	sqlite3_stmt *s;

	s = store_prepare(st, &st->outbox_put, "INSERT OR REPLACE INTO outbox "
	    "(operation_id, result, instance_id, created_at, attempts, "
	    "next_attempt) VALUES (?, ?, ?, ?, 0, ?)");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, operation_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, result, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 4, clock_wall());
	sqlite3_bind_double(s, 5, next_attempt);
	return store_step_done(s);
}

int
store_outbox_defer(struct store *st, const char *operation_id,
    double next_attempt)
{
	sqlite3_stmt *s;

	s = store_prepare(st, &st->outbox_defer, "UPDATE outbox SET "
	    "next_attempt = ? WHERE operation_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_double(s, 1, next_attempt);
	sqlite3_bind_text(s, 2, operation_id, -1, SQLITE_STATIC);
	return store_step_done(s);
}

int
store_outbox_replace(struct store *st, const char *operation_id,
    const char *result)
{
	sqlite3_stmt *s;

	s = store_prepare(st, &st->outbox_replace, "UPDATE outbox SET "
	    "result = ?, replaced = 1 WHERE operation_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, result, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, operation_id, -1, SQLITE_STATIC);
	return store_step_done(s);
}

int
store_outbox_bury(struct store *st, const char *operation_id,
    const char *reason)
{
	sqlite3_stmt *s;

	s = store_prepare(st, &st->outbox_bury, "UPDATE outbox SET "
	    "dead_at = ?, dead_reason = ? WHERE operation_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_double(s, 1, clock_wall());
	sqlite3_bind_text(s, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, operation_id, -1, SQLITE_STATIC);
	return store_step_done(s);
}

int
store_outbox_delete(struct store *st, const char *operation_id)
{
	sqlite3_stmt *s;

	s = store_prepare(st, &st->outbox_delete, "DELETE FROM outbox WHERE "
	    "operation_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, operation_id, -1, SQLITE_STATIC);
	return store_step_done(s);
}

int
store_outbox_delete_later(struct store *st, const char *operation_id)
{
	size_t cap = st->gone_cap ? st->gone_cap * 2 : 16;
	char **grown, *id;

	if (st->ngone == st->gone_cap) {
		if ((grown = realloc(st->gone, cap * sizeof(*grown))) == NULL)
			return -1;
		st->gone = grown;
		st->gone_cap = cap;
	}
	if ((id = strdup(operation_id)) == NULL)
		return -1;
	st->gone[st->ngone++] = id;
	return 0;
}

/* In the transaction just begun: the queued deletes, as many as succeed. */
static void
store_outbox_delete_queued(struct store *st)
{
	for (st->gone_done = 0; st->gone_done < st->ngone; st->gone_done++)
		if (store_outbox_delete(st, st->gone[st->gone_done]) == -1)
			break;	/* the rest waits for the next transaction */
}

/* The transaction committed: its deletes leave the queue. */
static void
store_outbox_deleted(struct store *st)
{
	size_t i;

	if (st->gone_done == 0)
		return;		/* nothing went (gone may still be NULL) */
	for (i = 0; i < st->gone_done; i++)
		free(st->gone[i]);
	memmove(st->gone, st->gone + st->gone_done,
	    (st->ngone - st->gone_done) * sizeof(*st->gone));
	st->ngone -= st->gone_done;
	st->gone_done = 0;
}

int
store_outbox_flush(struct store *st)
{
	if (st->ngone == 0)
		return 0;
	if (store_begin(st) == -1 || store_commit(st) == -1) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

/*
 * One statement claims the rows, so two workers sweeping at once never
 * take the same one: this worker's rows that are due, a gone worker's at
 * once, and any so overdue that their owner is presumed stuck.
 *
 * A row taken from another worker may already have reached the
 * orchestrator (a "possible duplicate") when that worker had tried to
 * send it: it had claimed the row before (a claimer sends at once:
 * attempts > 1 after this claim), or it wrote the row itself, before it
 * stopped (a worker sends its results right after storing them).  Rows
 * the master queued for a worker that died (the error results of its
 * unfinished processes) are written after that worker's stopped_at and
 * were never sent.  An owner that is stuck, or whose record is gone, may
 * have sent anything.
 */
int
store_outbox_claim(struct store *st, const char *instance_id, int limit,
    double now, double next_attempt, double stale_before,
    store_outbox_cb cb, void *arg)
{
	struct store_outbox_row row;
	sqlite3_stmt *s;
	int n = 0, rc;

	s = store_prepare(st, &st->outbox_claim, "UPDATE outbox SET "
	    "taken_from = nullif(instance_id, ?1), "
	    "instance_id = ?1, attempts = attempts + 1, next_attempt = ?2 "
	    "WHERE operation_id IN (SELECT operation_id FROM outbox "
	    "WHERE dead_at IS NULL AND ((instance_id = ?1 AND "
	    "next_attempt <= ?3) OR next_attempt < ?4 OR instance_id NOT IN "
	    "(SELECT instance_id FROM workers WHERE state NOT IN "
	    "('stopped', 'exited'))) ORDER BY next_attempt LIMIT ?5) "
	    "RETURNING operation_id, result, taken_from IS NOT NULL AND "
	    "coalesce((SELECT attempts > 1 OR w.stopped_at IS NULL OR "
	    "created_at < w.stopped_at FROM workers w "
	    "WHERE w.instance_id = taken_from), 1), replaced");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 2, next_attempt);
	sqlite3_bind_double(s, 3, now);
	sqlite3_bind_double(s, 4, stale_before);
	sqlite3_bind_int(s, 5, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row.operation_id = (const char *)sqlite3_column_text(s, 0);
		row.result = (const char *)sqlite3_column_text(s, 1);
		row.resend = sqlite3_column_int(s, 2);
		row.replaced = sqlite3_column_int(s, 3);
		cb(&row, arg);
		n++;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? n : -1;
}

int
store_outbox_pending(struct store *st, const char *instance_id)
{
	sqlite3_stmt *s;
	int n = -1;

	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM outbox o "
	    "LEFT JOIN processes p ON p.pid = o.pid WHERE o.dead_at IS NULL "
	    "AND (o.instance_id = ?1 OR p.instance_id = ?1)", -1, &s,
	    NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, instance_id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* An outbox row of src whose worker is gone (store_outbox_claim's test). */
#define STORE_SRC_ORPHAN "instance_id NOT IN (SELECT instance_id FROM " \
	"src.workers WHERE state NOT IN ('stopped', 'exited'))"

int
store_outbox_adopt(struct store *st, const char *src_path, char *err,
    size_t errlen)
{
	sqlite3_stmt *s;
	char ignored[8], why[CONFIG_ERR_MAX];
	int n = -1, rc;

	if (sqlite3_prepare_v2(st->db, "ATTACH ?1 AS src", -1, &s, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "database %s: %s", st->path,
		    sqlite3_errmsg(st->db));
		return -1;
	}
	sqlite3_bind_text(s, 1, src_path, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "database %s: attaching %s: %s",
		    st->path, src_path, sqlite3_errmsg(st->db));
		return -1;
	}
	/*
	 * The rows to move are named once (temp.moved), so that the delete
	 * removes exactly those copied, even one delivered from here and
	 * deleted meanwhile.  The copy commits first, synced (FULL) even
	 * under synchronous = NORMAL, before the delete: a crash, or a power
	 * loss, between them may send a result twice, never lose one.
	 */
	if (store_exec(st, "CREATE TEMP TABLE moved AS SELECT operation_id "
	    "FROM src.outbox WHERE " STORE_SRC_ORPHAN, why, sizeof(why)) ==
	    -1) {
		snprintf(err, errlen, "results of %s not moved: %s", src_path,
		    why);
	} else if (store_pragma_int(st, "SELECT count(*) FROM temp.moved") ==
	    0) {
		n = 0;		/* no write lock taken for nothing */
	} else if (store_exec(st, "PRAGMA main.synchronous=FULL;"
	    "BEGIN IMMEDIATE;"
	    "INSERT OR IGNORE INTO main.outbox SELECT * FROM src.outbox "
	    "WHERE operation_id IN (SELECT operation_id FROM temp.moved);"
	    "COMMIT", why, sizeof(why)) == -1) {
		store_exec(st, "ROLLBACK", ignored, sizeof(ignored));
		snprintf(err, errlen, "results of %s not moved: %s", src_path,
		    why);
	} else {
		n = sqlite3_changes(st->db);	/* the INSERT's */
		if (store_exec(st, "BEGIN IMMEDIATE;"
		    "DELETE FROM src.outbox WHERE operation_id IN "
		    "(SELECT operation_id FROM temp.moved);"
		    "COMMIT", why, sizeof(why)) == -1) {
			store_exec(st, "ROLLBACK", ignored, sizeof(ignored));
			snprintf(err, errlen, "results of %s copied to %s but "
			    "not deleted there (%s): they may be sent twice",
			    src_path, st->path, why);
			n = -1;
		}
	}
	store_exec(st, "DROP TABLE IF EXISTS temp.moved", ignored,
	    sizeof(ignored));
	store_exec(st, st->sync_full ? "PRAGMA main.synchronous=FULL" :
	    "PRAGMA main.synchronous=NORMAL", ignored, sizeof(ignored));
	store_exec(st, "DETACH src", ignored, sizeof(ignored));
	return n;
}

/* One pass over the table: it is small (acknowledged rows are deleted). */
int
store_outbox_stats(struct store *st, struct store_outbox_stats *out)
{
	sqlite3_stmt *s;
	int rc = -1;

	if (sqlite3_prepare_v2(st->db, "SELECT "
	    "count(*) FILTER (WHERE dead_at IS NULL), "
	    "count(*) FILTER (WHERE dead_at IS NOT NULL), "
	    "min(created_at) FILTER (WHERE dead_at IS NULL) FROM outbox", -1,
	    &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW) {
		out->rows = sqlite3_column_int64(s, 0);
		out->dead = sqlite3_column_int64(s, 1);
		out->oldest = sqlite3_column_double(s, 2);	/* NULL: 0 */
		rc = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

int
store_kept(struct store *st, struct store_kept *k)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT (SELECT count(*) - "
	    "count(dead_at) FROM outbox), (SELECT count(dead_at) FROM outbox), "
	    "(SELECT count(*) FROM processes WHERE ended_at IS NULL)", -1, &s,
	    NULL) != SQLITE_OK)
		return -1;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		k->undelivered = sqlite3_column_int64(s, 0);
		k->dead = sqlite3_column_int64(s, 1);
		k->running = sqlite3_column_int64(s, 2);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

int
store_workers_orphaned(struct store *st)
{
	char *msg = NULL;

	/*
	 * stopped_at is now, when the master found them gone: the results
	 * they stored came before it, the ones recovery queues after it
	 * (store_outbox_claim tells the two apart by it).
	 */
	if (sqlite3_exec(st->db, "UPDATE workers SET state = 'exited', "
	    "stopped_at = (julianday('now') - 2440587.5) * 86400.0, "
	    "exit_reason = 'gone when the master started' "
	    "WHERE stopped_at IS NULL AND state NOT IN ('stopped', 'exited')",
	    NULL, NULL, &msg) != SQLITE_OK) {
		sqlite3_free(msg);
		return -1;
	}
	return sqlite3_changes(st->db);
}

int
store_orphaned_instances(struct store *st, char ***ids)
{
	sqlite3_stmt *s;
	char **v = NULL, **nv;
	int n = 0, rc;

	*ids = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT DISTINCT instance_id FROM "
	    "processes WHERE ended_at IS NULL AND instance_id NOT IN "
	    "(SELECT instance_id FROM workers WHERE state NOT IN "
	    "('stopped', 'exited'))", -1, &s, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((nv = realloc(v, (size_t)(n + 1) * sizeof(*v))) == NULL)
			break;
		v = nv;
		if ((v[n] = strdup((const char *)sqlite3_column_text(s, 0))) ==
		    NULL)
			break;
		n++;
	}
	sqlite3_finalize(s);
	*ids = v;
	return n;
}

int
store_live_workers(struct store *st, struct store_live *out, int max)
{
	sqlite3_stmt *s;
	const unsigned char *id;
	int n = 0, rc;

	if (sqlite3_prepare_v2(st->db, "SELECT instance_id, pid FROM workers "
	    "WHERE state NOT IN ('stopped', 'exited')", -1, &s, NULL) !=
	    SQLITE_OK)
		return -1;
	while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((id = sqlite3_column_text(s, 0)) == NULL)
			continue;
		snprintf(out[n].instance_id, sizeof(out[n].instance_id), "%s",
		    (const char *)id);
		out[n].pid = (pid_t)sqlite3_column_int64(s, 1);
		n++;
	}
	sqlite3_finalize(s);
	/* A read that stopped short (busy, an error) lists nothing. */
	return n < max && rc != SQLITE_DONE ? -1 : n;
}

int
store_prune_workers(struct store *st, double days, int keep)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "DELETE FROM workers WHERE "
	    "stopped_at IS NOT NULL AND (stopped_at < ?1 OR instance_id IN "
	    "(SELECT instance_id FROM workers WHERE stopped_at IS NOT NULL "
	    "ORDER BY stopped_at DESC LIMIT -1 OFFSET ?2))", -1, &s,
	    NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_double(s, 1, clock_wall() - days * 86400.0);
	sqlite3_bind_int(s, 2, keep);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? sqlite3_changes(st->db) : -1;
}

/* Inside a batch whose transaction SQLite has not rolled back. */
static int
store_nested(struct store *st)
{
	if (st->batch && sqlite3_get_autocommit(st->db))
		st->batch_lost = 1;
	return st->batch && !st->batch_lost;
}

static int
store_run(struct store *st, sqlite3_stmt **slot, const char *sql)
{
	sqlite3_stmt *s = store_prepare(st, slot, sql);

	return s == NULL ? -1 : store_step_done(s) == -1 ? -1 : 0;
}

int
store_begin(struct store *st)
{
	if (store_nested(st))
		return store_run(st, &st->txn_savepoint, "SAVEPOINT store_op");
	if (store_run(st, &st->txn_begin, "BEGIN IMMEDIATE") == -1)
		return -1;
	store_outbox_delete_queued(st);
	return 0;
}

int
store_commit(struct store *st)
{
	if (store_nested(st))
		return store_run(st, &st->txn_release, "RELEASE store_op");
	if (store_run(st, &st->txn_commit, "COMMIT") == -1)
		return -1;
	store_outbox_deleted(st);
	return 0;
}

void
store_rollback(struct store *st)
{
	if (store_nested(st)) {
		/* The batch's deletes came before the savepoint: they stay. */
		if (store_run(st, &st->txn_undo, "ROLLBACK TO store_op") == 0)
			(void)store_run(st, &st->txn_release,
			    "RELEASE store_op");
		return;
	}
	st->gone_done = 0;	/* undone with the rest: still queued */
	if (sqlite3_get_autocommit(st->db))
		return;
	(void)store_run(st, &st->txn_rollback, "ROLLBACK");
}

int
store_batch_begin(struct store *st)
{
	if (st->batch || store_begin(st) == -1)
		return -1;
	st->batch = 1;
	st->batch_lost = 0;
	return 0;
}

int
store_batch_intact(struct store *st)
{
	return store_nested(st);
}

int
store_batch_end(struct store *st, char *err, size_t errlen)
{
	int lost;

	snprintf(err, errlen, "no batch open");
	if (!st->batch)
		return -1;
	lost = !store_nested(st);
	st->batch = 0;
	if (lost) {
		snprintf(err, errlen, "rolled back by an error inside it");
		st->gone_done = 0;	/* rolled back with the rest */
		return -1;
	}
	if (store_commit(st) == -1) {
		/* Read before the rollback, which resets it. */
		snprintf(err, errlen, "%s", sqlite3_errmsg(st->db));
		store_rollback(st);
		return -1;
	}
	return 0;
}

const char *
store_errmsg(struct store *st)
{
	return st->db ? sqlite3_errmsg(st->db) : "database not open";
}

void
store_close(struct store *st)
{
	size_t i;

	if (st->db != NULL)
		(void)store_outbox_flush(st);	/* else sent again: allowed */
	for (i = 0; i < st->ngone; i++)
		free(st->gone[i]);
	free(st->gone);
	sqlite3_finalize(st->worker_insert);
	sqlite3_finalize(st->worker_state);
	sqlite3_finalize(st->worker_exit);
	sqlite3_finalize(st->outbox_put);
	sqlite3_finalize(st->outbox_defer);
	sqlite3_finalize(st->outbox_delete);
	sqlite3_finalize(st->outbox_replace);
	sqlite3_finalize(st->outbox_bury);
	sqlite3_finalize(st->outbox_claim);
	sqlite3_finalize(st->txn_begin);
	sqlite3_finalize(st->txn_commit);
	sqlite3_finalize(st->txn_rollback);
	sqlite3_finalize(st->txn_savepoint);
	sqlite3_finalize(st->txn_release);
	sqlite3_finalize(st->txn_undo);
	if (st->db != NULL)
		sqlite3_close(st->db);
	free(st->path);
	memset(st, 0, sizeof(*st));
}
