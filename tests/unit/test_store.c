/*
 * Unit tests for the outbox (store.c) against a real database in a
 * temporary directory: which rows a sweep takes, and which of them it
 * reports as possible duplicates — a row taken from a worker that had
 * tried to send it (it stored or claimed it before it ended, or it is
 * stuck or unknown), not a row the master queued for a dead worker, nor
 * the claimer's own; and the count of an instance's results still there.
 * And the bounded file: an old file converted to auto_vacuum, the WAL's
 * share of store.max_bytes.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "procmgr/store.h"

#define ME "worker-me"
#define NOW 1000.0		/* wall seconds the rows are dated by */

struct fx {
	char dir[64];
	struct store st;
	char seen[16][64];	/* "operation_id resend", as the claim saw */
	int nseen;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL || store_open(&f->st, f->dir,
	    SYNC_NORMAL, 5.0, err, sizeof(err)) == -1 ||
	    store_migrate(&f->st, err, sizeof(err)) == -1) {
		fprintf(stderr, "fixture: %s\n", err);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	static const char *const files[] = { "egressd.db", "egressd.db-wal",
	    "egressd.db-shm", "egressd-2.db", "egressd-2.db-wal",
	    "egressd-2.db-shm" };
	struct fx *f = *state;
	char path[128];
	size_t i;

	store_close(&f->st);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
		unlink(path);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
exec_ok(struct fx *f, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(f->st.db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* A worker row: state, and stopped_at (0 = none). */
static void
worker(struct fx *f, const char *id, const char *state, double stopped)
{
	char sql[256];

	assert_int_equal(store_worker_register(&f->st, id, 1, 1, 1), 0);
	if (stopped > 0)
		snprintf(sql, sizeof(sql), "UPDATE workers SET state = '%s', "
		    "stopped_at = %.3f WHERE instance_id = '%s'", state,
		    stopped, id);
	else
		snprintf(sql, sizeof(sql), "UPDATE workers SET state = '%s' "
		    "WHERE instance_id = '%s'", state, id);
	exec_ok(f, sql);
}

/* An outbox row of owner, created at created, claimed attempts times. */
static void
row(struct fx *f, const char *op, const char *owner, double created,
    int attempts)
{
	char sql[256];

	assert_int_equal(store_outbox_put(&f->st, op, "{\"ok\":1}", owner,
	    0), 0);
	snprintf(sql, sizeof(sql), "UPDATE outbox SET created_at = %.3f, "
	    "attempts = %d WHERE operation_id = '%s'", created, attempts, op);
	exec_ok(f, sql);
}

static void
seen_cb(const struct store_outbox_row *r, void *arg)
{
	struct fx *f = arg;

	assert_string_equal(r->result, r->replaced ? "{\"error\":\"x\"}" :
	    "{\"ok\":1}");
	assert_true(f->nseen < 16);
	snprintf(f->seen[f->nseen++], sizeof(f->seen[0]), "%s %d%s",
	    r->operation_id, r->resend, r->replaced ? " replaced" : "");
}

static int
claim(struct fx *f)
{
	return store_outbox_claim(&f->st, ME, 16, NOW + 10, NOW + 70, 0,
	    seen_cb, f);
}

static int
saw(struct fx *f, const char *what)
{
	int i;

	for (i = 0; i < f->nseen; i++)
		if (strcmp(f->seen[i], what) == 0)
			return 1;
	return 0;
}

static void
test_resend_flag(void **state)
{
	struct fx *f = *state;
	sqlite3_stmt *s;

	worker(f, ME, "ready", 0);
	worker(f, "dead", "exited", NOW);
	worker(f, "clean", "exited", NOW);
	worker(f, "gone-too", "exited", NOW);
	row(f, "stored-by-dead", "dead", NOW - 5, 0);
	row(f, "queued-by-master", "dead", NOW + 1, 0);
	row(f, "claimed-by-dead", "gone-too", NOW + 1, 1);
	row(f, "left-cleanly", "clean", NOW - 5, 2);
	row(f, "unknown-owner", "pruned", NOW - 5, 0);
	row(f, "mine", ME, NOW - 5, 0);
	assert_int_equal(claim(f), 6);
	assert_true(saw(f, "stored-by-dead 1"));
	assert_true(saw(f, "queued-by-master 0"));
	assert_true(saw(f, "claimed-by-dead 1"));
	assert_true(saw(f, "left-cleanly 1"));
	assert_true(saw(f, "unknown-owner 1"));
	assert_true(saw(f, "mine 0"));
	/* Every row is the claimer's now, and says whose it was. */
	assert_int_equal(sqlite3_prepare_v2(f->st.db, "SELECT "
	    "group_concat(operation_id || '<' || coalesce(taken_from, '-'), "
	    "' ') FROM (SELECT * FROM outbox WHERE instance_id = '" ME "' "
	    "ORDER BY operation_id)", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0),
	    "claimed-by-dead<gone-too left-cleanly<clean mine<- "
	    "queued-by-master<dead stored-by-dead<dead unknown-owner<pruned");
	sqlite3_finalize(s);

	/* Claimed again by the same worker: its own rows now, no resend. */
	f->nseen = 0;
	exec_ok(f, "UPDATE outbox SET next_attempt = 0");
	assert_int_equal(claim(f), 6);
	assert_true(saw(f, "stored-by-dead 0"));
	assert_true(saw(f, "claimed-by-dead 0"));
}

static void
test_pending(void **state)
{
	struct fx *f = *state;

	worker(f, ME, "ready", 0);
	row(f, "a", ME, NOW, 0);
	row(f, "b", "other", NOW, 0);
	row(f, "c", "other", NOW, 0);
	/* c holds the result of a process of ME's, claimed by another */
	exec_ok(f, "INSERT INTO processes (pid, root_pid, instance_id, "
	    "operation_id, image, status, max_tool_calls, "
	    "max_child_processes, max_runtime, created_at, updated_at) "
	    "VALUES (7, 7, '" ME "', 'c', '/x', 'FAILED', 1, 1, 1, 0, 0)");
	exec_ok(f, "UPDATE outbox SET pid = 7 WHERE operation_id = 'c'");
	assert_int_equal(store_outbox_pending(&f->st, ME), 2);
	assert_int_equal(store_outbox_pending(&f->st, "other"), 2);
	assert_int_equal(store_outbox_pending(&f->st, "nobody"), 0);
	assert_int_equal(store_outbox_delete(&f->st, "a"), 0);
	assert_int_equal(store_outbox_pending(&f->st, ME), 1);
}

/* A replaced row says so; a dead letter is kept but never claimed again. */
static void
test_dead_letters(void **state)
{
	struct fx *f = *state;
	sqlite3_stmt *s;

	worker(f, ME, "ready", 0);
	row(f, "a", ME, NOW, 0);
	row(f, "b", "gone", NOW, 0);	/* no such worker: anyone's */
	assert_int_equal(store_outbox_replace(&f->st, "a",
	    "{\"error\":\"x\"}"), 0);
	assert_int_equal(claim(f), 2);
	assert_true(saw(f, "a 0 replaced"));
	assert_int_equal(store_outbox_bury(&f->st, "a", "HTTP 422"), 0);
	assert_int_equal(store_outbox_bury(&f->st, "b", "HTTP 400"), 0);
	assert_int_equal(store_outbox_pending(&f->st, ME), 0);
	exec_ok(f, "UPDATE outbox SET next_attempt = 0");
	f->nseen = 0;
	assert_int_equal(claim(f), 0);
	assert_int_equal(sqlite3_prepare_v2(f->st.db, "SELECT count(*), "
	    "min(dead_at) > 0, group_concat(dead_reason) FROM outbox", -1, &s,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 2);
	assert_int_equal(sqlite3_column_int(s, 1), 1);
	assert_non_null(strstr((const char *)sqlite3_column_text(s, 2),
	    "HTTP 422"));
	sqlite3_finalize(s);
}

static void
test_stuck_owner(void **state)
{
	struct fx *f = *state;

	/* A live owner's row long overdue: it may have sent it. */
	worker(f, ME, "ready", 0);
	worker(f, "stuck", "busy", 0);
	row(f, "overdue", "stuck", NOW - 5, 0);
	exec_ok(f, "UPDATE outbox SET next_attempt = 1");
	assert_int_equal(store_outbox_claim(&f->st, ME, 16, NOW, NOW + 60,
	    2, seen_cb, f), 1);
	assert_true(saw(f, "overdue 1"));
}

static void
test_orphaned_workers_stop_now(void **state)
{
	struct fx *f = *state;
	double before = clock_wall();
	sqlite3_stmt *s;

	/* A run that died whole: its live rows are gone as of now, so the
	 * results its workers stored are older than their stopped_at. */
	worker(f, "old", "ready", 0);
	exec_ok(f, "UPDATE workers SET updated_at = 5");
	assert_int_equal(store_workers_orphaned(&f->st), 1);
	assert_int_equal(sqlite3_prepare_v2(f->st.db, "SELECT stopped_at, "
	    "state FROM workers WHERE instance_id = 'old'", -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_true(sqlite3_column_double(s, 0) >= before - 0.01);
	assert_true(sqlite3_column_double(s, 0) <= clock_wall() + 0.01);
	assert_string_equal((const char *)sqlite3_column_text(s, 1),
	    "exited");
	sqlite3_finalize(s);
}

/*
 * A file made before auto_vacuum (migration 8) frees no pages until a
 * VACUUM rewrites it: done when it is small enough, else left alone; a
 * new file has it from the start.
 */
static void
test_vacuum_convert(void **state)
{
	struct fx *f = *state;
	char path[128], err[512];
	sqlite3 *db;

	assert_int_equal(store_pragma_int(&f->st, "PRAGMA auto_vacuum"), 2);
	assert_int_equal(store_vacuum_convert(&f->st, STORE_CONVERT_MAX, err,
	    sizeof(err)), STORE_VACUUM_DONE);
	store_close(&f->st);
	snprintf(path, sizeof(path), "%s/egressd.db", f->dir);
	unlink(path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL; "
	    "CREATE TABLE old(x);", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(&f->st, f->dir, SYNC_NORMAL, 5.0, err,
	    sizeof(err)), 0);
	assert_int_equal(store_migrate(&f->st, err, sizeof(err)), 0);
	assert_int_equal(store_pragma_int(&f->st, "PRAGMA auto_vacuum"), 0);
	assert_int_equal(store_pragma_int(&f->st, "SELECT count(*) FROM "
	    "sqlite_master WHERE name = 'outbox_pid'"), 1);
	assert_int_equal(store_vacuum_convert(&f->st, 1, err, sizeof(err)),
	    STORE_VACUUM_TOO_LARGE);
	assert_int_equal(store_pragma_int(&f->st, "PRAGMA auto_vacuum"), 0);
	assert_int_equal(store_vacuum_convert(&f->st, STORE_CONVERT_MAX, err,
	    sizeof(err)), STORE_VACUUM_CONVERTED);
	assert_int_equal(store_pragma_int(&f->st, "PRAGMA auto_vacuum"), 2);
	assert_int_equal(store_vacuum_convert(&f->st, STORE_CONVERT_MAX, err,
	    sizeof(err)), STORE_VACUUM_DONE);
}

/* The WAL's share of the budget. */
static void
test_wal_limit(void **state)
{
	(void)state;
	assert_int_equal(store_wal_limit(2 * 1024 * 1024), 256 * 1024);
	assert_int_equal(store_wal_limit(64LL * 1024 * 1024), STORE_WAL_MAX);
	assert_int_equal(store_wal_limit(1LL << 40), STORE_WAL_MAX);
}

static int
outbox_has(struct fx *f, const char *op)
{
	sqlite3_stmt *s;
	int found;

	assert_int_equal(sqlite3_prepare_v2(f->st.db, "SELECT 1 FROM outbox "
	    "WHERE operation_id = ?", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, op, -1, SQLITE_STATIC);
	found = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return found;
}

/*
 * An acknowledged row is deleted by the next transaction that commits
 * (one that rolls back keeps it queued), by a flush, or at the close.
 */
static void
test_delete_later(void **state)
{
	struct fx *f = *state;
	char err[512];

	row(f, "a", ME, NOW, 1);
	row(f, "b", ME, NOW, 1);
	row(f, "c", ME, NOW, 1);
	assert_int_equal(store_outbox_delete_later(&f->st, "a"), 0);
	assert_true(outbox_has(f, "a"));	/* not yet */
	assert_int_equal(store_begin(&f->st), 0);
	assert_false(outbox_has(f, "a"));
	store_rollback(&f->st);
	assert_true(outbox_has(f, "a"));	/* undone, still queued */
	assert_int_equal(store_begin(&f->st), 0);
	assert_int_equal(store_commit(&f->st), 0);
	assert_false(outbox_has(f, "a"));
	assert_int_equal(store_outbox_delete_later(&f->st, "b"), 0);
	assert_int_equal(store_outbox_flush(&f->st), 0);
	assert_false(outbox_has(f, "b"));
	assert_int_equal(store_outbox_flush(&f->st), 0);	/* none left */
	assert_int_equal(store_outbox_delete_later(&f->st, "c"), 0);
	store_close(&f->st);
	assert_int_equal(store_open(&f->st, f->dir, SYNC_NORMAL, 5.0, err,
	    sizeof(err)), 0);
	assert_false(outbox_has(f, "c"));
}

/* Rows another connection sees: what was committed. */
static int
committed(struct fx *f, const char *op)
{
	char path[128];
	sqlite3 *db;
	sqlite3_stmt *s;
	int n = -1;

	snprintf(path, sizeof(path), "%s/egressd.db", f->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox "
	    "WHERE operation_id = ?", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, op, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/*
 * A batch: each transaction inside still fails or succeeds whole (a
 * savepoint), nothing is durable before store_batch_end, and the queued
 * deletes it began with survive a rollback inside it.
 */
static void
test_batch(void **state)
{
	struct fx *f = *state;
	char err[128];

	row(f, "acked", ME, NOW, 1);
	assert_int_equal(store_outbox_delete_later(&f->st, "acked"), 0);
	assert_int_equal(store_batch_begin(&f->st), 0);
	assert_true(f->st.batch);
	assert_int_equal(store_batch_begin(&f->st), -1);	/* not nested */
	assert_int_equal(store_begin(&f->st), 0);
	row(f, "kept", ME, NOW, 0);
	assert_int_equal(store_commit(&f->st), 0);
	assert_int_equal(store_begin(&f->st), 0);
	row(f, "undone", ME, NOW, 0);
	store_rollback(&f->st);
	assert_true(outbox_has(f, "kept"));
	assert_false(outbox_has(f, "undone"));
	assert_false(outbox_has(f, "acked"));
	assert_int_equal(committed(f, "kept"), 0);	/* not yet durable */
	assert_int_equal(committed(f, "acked"), 1);
	assert_int_equal(store_batch_end(&f->st, err, sizeof(err)), 0);
	assert_false(f->st.batch);
	assert_int_equal(committed(f, "kept"), 1);
	assert_int_equal(committed(f, "undone"), 0);
	assert_int_equal(committed(f, "acked"), 0);
	assert_int_equal(store_batch_end(&f->st, err, sizeof(err)), -1);
	assert_string_equal(err, "no batch open");
}

/*
 * SQLite rolled the batch back (as after a full disk): what it held is
 * gone and store_batch_end says so; what came after commits on its own,
 * and the queued deletes stay queued.
 */
static void
test_batch_lost(void **state)
{
	struct fx *f = *state;
	char err[128];

	row(f, "acked", ME, NOW, 1);
	assert_int_equal(store_outbox_delete_later(&f->st, "acked"), 0);
	assert_int_equal(store_batch_begin(&f->st), 0);
	assert_int_equal(store_begin(&f->st), 0);
	row(f, "lost", ME, NOW, 0);
	assert_int_equal(store_commit(&f->st), 0);
	exec_ok(f, "ROLLBACK");			/* what SQLite may do itself */
	assert_int_equal(store_begin(&f->st), 0);
	row(f, "after", ME, NOW, 0);
	assert_int_equal(store_commit(&f->st), 0);
	assert_int_equal(committed(f, "after"), 1);
	assert_int_equal(store_batch_end(&f->st, err, sizeof(err)), -1);
	assert_string_equal(err, "rolled back by an error inside it");
	assert_int_equal(committed(f, "lost"), 0);
	assert_int_equal(committed(f, "acked"), 0);	/* "after" took it */
	assert_int_equal(store_begin(&f->st), 0);	/* no batch left */
	assert_int_equal(store_commit(&f->st), 0);
}

/*
 * The WAL is checkpointed and restarted as it grows (store_wal_hook):
 * 12 MB written in small transactions leave a WAL file near the 4 MB
 * threshold, not one holding all of it.
 */
static void
test_wal_checkpointed(void **state)
{
	struct fx *f = *state;
	char path[128];
	struct stat sb;
	int i;

	exec_ok(f, "CREATE TABLE fill (b BLOB)");
	for (i = 0; i < 12 * 1024; i++)
		exec_ok(f, "INSERT INTO fill VALUES (zeroblob(700))");
	snprintf(path, sizeof(path), "%s/egressd.db-wal", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(sb.st_size > 1024 * 1024);	/* it was used */
	assert_true(sb.st_size < 6 * 1024 * 1024);
}

/* The files' names, a slot's file, store.files = 0. */
static void
test_file_names(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(store_file_path("/s", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/s/egressd.db");
	assert_int_equal(store_file_path("/s", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/s/egressd-2.db");
	assert_int_equal(store_file_path("/s", CONFIG_STORE_FILES_MAX - 1, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "/s/egressd-8.db");
	assert_int_equal(store_file_path("/s", CONFIG_STORE_FILES_MAX, buf,
	    sizeof(buf)), -1);
	assert_int_equal(store_file_path("/s", -1, buf, sizeof(buf)), -1);
	assert_int_equal(store_file_path("/a/long/dir", 1, buf, 12), -1);
	/* slot S writes (S - 1) % files */
	assert_int_equal(store_file_of_slot(1, 4), 0);
	assert_int_equal(store_file_of_slot(4, 4), 3);
	assert_int_equal(store_file_of_slot(5, 4), 0);
	assert_int_equal(store_file_of_slot(3, 1), 0);
	assert_int_equal(store_file_of_slot(2, 0), 0);
	assert_int_equal(store_files_resolve(3, 6), 3);
	assert_int_equal(store_files_resolve(0, 6), 6);
	assert_int_equal(store_files_resolve(0, 200), CONFIG_STORE_FILES_MAX);
	assert_int_equal(store_files_resolve(0, 0), 1);
}

/* The second file's pids start past STORE_PID_SPAN, even after a restart. */
static void
test_second_file_pids(void **state)
{
	struct fx *f = *state;
	struct store two;
	sqlite3_stmt *s;
	char err[512];
	int i;

	for (i = 0; i < 2; i++) {
		assert_int_equal(store_open_file(&two, f->dir, 1, 1,
		    SYNC_NORMAL, 5.0, err, sizeof(err)), 0);
		assert_int_equal(store_migrate(&two, err, sizeof(err)), 0);
		assert_int_equal(sqlite3_exec(two.db, "INSERT INTO processes "
		    "(root_pid, instance_id, operation_id, image, status, "
		    "max_tool_calls, max_child_processes, max_runtime, "
		    "created_at, updated_at) VALUES (0, 'w', 'op', '/x', "
		    "'RUNNING', 1, 1, 1, 0, 0)", NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(two.db, "SELECT max(pid) "
		    "FROM processes", -1, &s, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_true(sqlite3_column_int64(s, 0) == STORE_PID_SPAN + 1 +
		    i);
		sqlite3_finalize(s);
		store_close(&two);
	}
	/* the first file keeps its own numbering */
	exec_ok(f, "INSERT INTO processes (root_pid, instance_id, "
	    "operation_id, image, status, max_tool_calls, "
	    "max_child_processes, max_runtime, created_at, updated_at) "
	    "VALUES (0, 'w', 'op', '/x', 'RUNNING', 1, 1, 1, 0, 0)");
	assert_int_equal(sqlite3_last_insert_rowid(f->st.db), 1);
}

#define INSERT_PROCESS "INSERT INTO processes (root_pid, instance_id, " \
	"operation_id, image, status, max_tool_calls, max_child_processes, " \
	"max_runtime, created_at, updated_at) VALUES (0, 'w', 'op', '/x', " \
	"'RUNNING', 1, 1, 1, 0, 0)"

/*
 * A spawn rolled back gives its pid to the next one; store_pids_past makes
 * the next one start past it, and refuses inside a transaction (its
 * ROLLBACK would take that one's work along).
 */
static void
test_pids_past(void **state)
{
	struct fx *f = *state;
	char err[128];

	exec_ok(f, "BEGIN");
	exec_ok(f, INSERT_PROCESS);
	assert_int_equal(sqlite3_last_insert_rowid(f->st.db), 1);
	assert_int_equal(store_pids_past(&f->st, 1, err, sizeof(err)), -1);
	assert_string_equal(err, "a transaction is open");
	exec_ok(f, "ROLLBACK");
	assert_int_equal(store_pids_past(&f->st, 1, err, sizeof(err)), 0);
	exec_ok(f, INSERT_PROCESS);
	assert_int_equal(sqlite3_last_insert_rowid(f->st.db), 2);
	/* never lowered */
	assert_int_equal(store_pids_past(&f->st, 1, err, sizeof(err)), 0);
	exec_ok(f, INSERT_PROCESS);
	assert_int_equal(sqlite3_last_insert_rowid(f->st.db), 3);
}

/* Rows of gone workers move to the first file; a live worker's stay. */
static void
test_outbox_adopt(void **state)
{
	struct fx *f = *state;
	struct store two;
	char err[512], path[128];

	assert_int_equal(store_open_file(&two, f->dir, 1, 1, SYNC_NORMAL,
	    5.0, err, sizeof(err)), 0);
	assert_int_equal(store_migrate(&two, err, sizeof(err)), 0);
	assert_int_equal(store_worker_register(&two, "live", 1, 2, 1), 0);
	assert_int_equal(store_worker_register(&two, "dead", 2, 2, 1), 0);
	assert_int_equal(store_worker_exited(&two, "dead", "killed"), 1);
	assert_int_equal(store_worker_exited(&two, "nobody", "killed"), 0);
	assert_int_equal(store_worker_known(&two, "live"), STORE_WORKER_ALIVE);
	assert_int_equal(store_worker_known(&two, "dead"), STORE_WORKER_ENDED);
	assert_int_equal(store_worker_known(&two, "nobody"), 0);
	{
		struct store_live live[4];

		assert_int_equal(store_live_workers(&two, live, 4), 1);
		assert_string_equal(live[0].instance_id, "live");
		assert_int_equal(live[0].pid, 1);
	}
	assert_int_equal(store_outbox_put(&two, "mine", "{}", "live", 0), 0);
	assert_int_equal(store_outbox_put(&two, "left", "{\"r\":1}", "dead",
	    0), 0);
	assert_int_equal(store_outbox_put(&two, "dup", "{}", "dead", 0), 0);
	/* one already copied by a pass a crash cut short */
	assert_int_equal(store_outbox_put(&f->st, "dup", "{}", "dead", 0), 0);
	store_close(&two);
	assert_int_equal(store_file_path(f->dir, 1, path, sizeof(path)), 0);
	assert_int_equal(store_outbox_adopt(&f->st, path, err, sizeof(err)),
	    1);
	assert_int_equal(store_outbox_pending(&f->st, "dead"), 2);
	assert_int_equal(store_outbox_pending(&f->st, "live"), 0);
	assert_int_equal(store_open_file(&two, f->dir, 1, 0, SYNC_NORMAL,
	    5.0, err, sizeof(err)), 0);
	assert_int_equal(store_outbox_pending(&two, "dead"), 0);
	assert_int_equal(store_outbox_pending(&two, "live"), 1);
	store_close(&two);
	/* nothing left to move; the connection is usable after */
	assert_int_equal(store_outbox_adopt(&f->st, path, err, sizeof(err)),
	    0);
	assert_int_equal(store_outbox_delete(&f->st, "left"), 0);
	/* a file that is not there: an error naming it, nothing made */
	assert_int_equal(store_file_path(f->dir, 2, path, sizeof(path)), 0);
	strcat(path, "/nothere");
	assert_int_equal(store_outbox_adopt(&f->st, path, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "nothere"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resend_flag, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stuck_owner, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dead_letters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_orphaned_workers_stop_now,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_vacuum_convert, setup,
		    teardown),
		cmocka_unit_test(test_wal_limit),
		cmocka_unit_test(test_file_names),
		cmocka_unit_test_setup_teardown(test_second_file_pids, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_outbox_adopt, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wal_checkpointed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delete_later, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pids_past, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_batch_lost, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
