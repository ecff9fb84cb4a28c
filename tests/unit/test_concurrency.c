/*
 * Concurrency test for procmgr: WRITERS OS processes, each with its own
 * connection opened after fork (busy_timeout 5 s, synchronous NORMAL), run
 * LIFECYCLES lifecycles each at once: spawn, one tool call, exit with an
 * outbox entry, and the entry's deletion as an acknowledgement would.
 * Every writer must finish without a single database error surfacing
 * (SQLITE_BUSY past the timeout would be PM_E_DATABASE), and the counts
 * must come out exact: every process EXITED, every event and audit record
 * there, the outbox empty, the file intact.
 *
 * TEST_CONCURRENCY_LIFECYCLES lowers the per-writer count for quick runs
 * (default 10000).
 */

#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/config.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"
#include "testutil.h"

#define WRITERS 8
#define LIFECYCLES 10000
#define BUSY_TIMEOUT 5.0
#define CALLS_PER_LIFECYCLE 3	/* spawn, tool call, exit */
#define EXIT_DATABASE 2		/* a writer saw PM_E_DATABASE or BUSY */
#define EXIT_OTHER 3

static long
lifecycles(void)
{
	const char *env = getenv("TEST_CONCURRENCY_LIFECYCLES");
	char *end;
	long n;

	if (env == NULL || *env == '\0')
		return LIFECYCLES;
	errno = 0;
	n = strtol(env, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1)
		fail_msg("TEST_CONCURRENCY_LIFECYCLES: bad number %s", env);
	return n;
}

static int
writer_failed(int writer, long i, const char *what, const char *err,
    int database)
{
	fprintf(stderr, "writer %d, lifecycle %ld: %s: %s\n", writer, i, what,
	    err);
	return database ? EXIT_DATABASE : EXIT_OTHER;
}

/* One writer's whole run; returns its exit status. */
static int
writer_run(const char *dir, int writer, long n,
    const struct egressd_config *cfg)
{
	struct outbox_entry ob = { .result = "{\"ok\":true}" };
	char err[512], instance[32], opid[64];
	struct procmgr pm;
	struct store st;
	agent_pid pid;
	long i;
	int rc = 0;

	if (store_open(&st, dir, SYNC_NORMAL, BUSY_TIMEOUT, err,
	    sizeof(err)) == -1)
		return writer_failed(writer, 0, "open", err, 1);
	snprintf(instance, sizeof(instance), "writer-%d", writer);
	procmgr_init(&pm, &st, instance, cfg);
	for (i = 0; i < n && rc == 0; i++) {
		snprintf(opid, sizeof(opid), "w%d-%ld", writer, i);
		ob.operation_id = opid;
		if (procmgr_spawn(&pm, "/api/v1/test/health", "{}", NULL, 0,
		    opid, NULL, &pid) == -1)
			rc = writer_failed(writer, i, "spawn", pm.err,
			    pm.errtype == PM_E_DATABASE);
		else if (procmgr_charge_tool_call(&pm, pid) == -1)
			rc = writer_failed(writer, i, "charge", pm.err,
			    pm.errtype == PM_E_DATABASE);
		else if (procmgr_exit(&pm, pid, ob.result, 0, NULL, &ob) == -1)
			rc = writer_failed(writer, i, "exit", pm.err,
			    pm.errtype == PM_E_DATABASE);
		else if (store_outbox_delete(&st, opid) == -1)
			rc = writer_failed(writer, i, "outbox delete",
			    store_errmsg(&st), 1);
	}
	procmgr_close(&pm);
	store_close(&st);
	return rc;
}

static void
check_counts(const char *dir, long n)
{
	int64_t total = (int64_t)WRITERS * n;
	struct store st;
	sqlite3 *db;

	assert_int_equal(tu_store_open(&st, dir, BUSY_TIMEOUT, false), 0);
	db = st.db;
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM processes"),
	    total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM processes "
	    "WHERE status = 'EXITED' AND ended_at IS NOT NULL AND "
	    "tool_calls = 1 AND result_oid IS NOT NULL"), total);
	assert_int_equal(tu_query_int(db, "SELECT max(pid) FROM processes"),
	    total);
	assert_int_equal(tu_query_int(db, "SELECT count(DISTINCT operation_id) "
	    "FROM processes"), total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM objects"),
	    2 * total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM views"), total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM events"),
	    CALLS_PER_LIFECYCLE * total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM audit"),
	    CALLS_PER_LIFECYCLE * total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM events WHERE "
	    "type = 'process.exited'"), total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM audit WHERE "
	    "action = 'process.tool_call'"), total);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM outbox"), 0);
	assert_int_equal(tu_query_int(db, "SELECT count(DISTINCT instance_id) "
	    "FROM processes"), WRITERS);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM "
	    "pragma_quick_check WHERE quick_check != 'ok'"), 0);
	store_close(&st);
}

struct fx {
	struct egressd_config cfg;
	char dir[64];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || config_init_defaults(&f->cfg) == -1) {
		free(f);
		return -1;
	}
	if (tu_mkdtemp(f->dir, sizeof(f->dir), "concurrency") == NULL) {
		config_free(&f->cfg);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	tu_remove_tree(f->dir);
	config_free(&f->cfg);
	free(f);
	return 0;
}

static void
test_concurrent_lifecycles(void **state)
{
	struct fx *f = *state;
	const char *dir = f->dir;
	struct store st;
	pid_t pids[WRITERS], pid;
	int i, status, failed = 0, database = 0;
	long n = lifecycles();

	/* The master migrates before any worker starts. */
	assert_int_equal(tu_store_open(&st, dir, BUSY_TIMEOUT, true), 0);
	store_close(&st);
	for (i = 0; i < WRITERS; i++) {
		if ((pids[i] = fork()) == -1)
			fail_msg("fork: %s", strerror(errno));
		if (pids[i] == 0)
			_exit(writer_run(dir, i, n, &f->cfg));
	}
	for (i = 0; i < WRITERS; i++) {
		while ((pid = waitpid(pids[i], &status, 0)) == -1 &&
		    errno == EINTR)
			;
		assert_int_equal(pid, pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_DATABASE)
			database++;
	}
	assert_int_equal(database, 0);
	assert_int_equal(failed, 0);
	check_counts(dir, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_lifecycles,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
