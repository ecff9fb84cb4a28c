/*
 * Concurrency: 8 OS processes, each with its own connection opened after
 * fork, run 10,000 agent process lifecycles each on one database (spawn,
 * a tool call, exit with an outbox row, the acknowledgement deleting it).
 * No SQLITE_BUSY may surface and every count must be exact.
 * EGRESSD_CONCURRENCY_LIFECYCLES lowers the count for quick local runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "clock.h"
#include "config.h"
#include "procmgr.h"
#include "store.h"

#define WRITERS 8
#define LIFECYCLES 10000

static int
lifecycles(void)
{
	const char *env = getenv("EGRESSD_CONCURRENCY_LIFECYCLES");

	return env != NULL && atoi(env) > 0 ? atoi(env) : LIFECYCLES;
}

static int
one_lifecycle(struct procmgr *pm, struct store *st, int w, int i)
{
	char op[64];
	struct outbox_entry ob = { op, "{\"ok\":true}", 0 };
	agent_pid pid;

	snprintf(op, sizeof(op), "w%d-%d", w, i);
	if (procmgr_spawn(pm, "/api/v1/test/health", "{}", NULL, 0, op, NULL,
	    &pid) == -1 || procmgr_charge_tool_call(pm, pid) == -1 ||
	    procmgr_exit(pm, pid, "{\"ok\":true}", 0, NULL, &ob) == -1) {
		fprintf(stderr, "writer %d: %s\n", w, pm->err);
		return -1;
	}
	return store_outbox_delete(st, op);
}

/* A writer process: its own connection, opened after fork. */
static int
writer(const char *dir, int w, int n)
{
	struct egressd_config cfg;
	struct procmgr pm;
	struct store st;
	char err[512], id[32];
	int i, rc = 0;

	if (config_init_defaults(&cfg) == -1 || store_open(&st, dir,
	    SYNC_NORMAL, 5.0, err, sizeof(err)) == -1)
		return 1;
	snprintf(id, sizeof(id), "writer-%d", w);
	procmgr_init(&pm, &st, id, &cfg);
	for (i = 0; i < n && rc == 0; i++)
		rc = one_lifecycle(&pm, &st, w, i);
	procmgr_close(&pm);
	store_close(&st);
	config_free(&cfg);
	return rc == 0 ? 0 : 1;
}

static int64_t
count(struct store *st, const char *sql)
{
	sqlite3_stmt *s;
	int64_t n = -1;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static void
test_eight_writers(void **state)
{
	char dir[64], err[512], cmd[128];
	struct store st;
	pid_t pids[WRITERS];
	int w, status, n = lifecycles();
	int64_t total = (int64_t)WRITERS * n;
	double t0;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-concurrency-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(&st, dir, SYNC_NORMAL, 5.0, err,
	    sizeof(err)), 0);
	assert_int_equal(store_migrate(&st, err, sizeof(err)), 0);
	store_close(&st);	/* no connection crosses fork */
	t0 = clock_mono();
	for (w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0)
			_exit(writer(dir, w, n));
	}
	for (w = 0; w < WRITERS; w++) {
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	printf("%d writers x %d lifecycles: %.0f lifecycles/s\n", WRITERS, n,
	    (double)total / (clock_mono() - t0));
	assert_int_equal(store_open(&st, dir, SYNC_NORMAL, 5.0, err,
	    sizeof(err)), 0);
	assert_int_equal(count(&st, "SELECT count(*) FROM processes"), total);
	assert_int_equal(count(&st, "SELECT count(*) FROM processes WHERE "
	    "status = 'EXITED' AND tool_calls = 1"), total);
	assert_int_equal(count(&st, "SELECT count(DISTINCT operation_id) "
	    "FROM processes"), total);
	assert_int_equal(count(&st, "SELECT count(*) FROM outbox"), 0);
	assert_int_equal(count(&st, "SELECT count(*) FROM audit WHERE "
	    "action = 'process.spawn'"), total);
	assert_int_equal(count(&st, "SELECT count(*) FROM audit WHERE "
	    "action = 'process.exit'"), total);
	assert_int_equal(count(&st, "SELECT count(*) FROM events WHERE "
	    "type = 'process.exited'"), total);
	store_close(&st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eight_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
