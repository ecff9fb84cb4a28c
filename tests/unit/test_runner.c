/*
 * Unit tests for the runner (worker/runner.c) against a real database: an
 * exit the database refused is written again later, and not once the
 * poller said the process's spawn was never committed (runner_forget_pid),
 * since SQLite may then have given its pid to another process; and an
 * operation whose batch the database refused is answered without a second
 * wait for the lock (runner_no_process).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/evloop.h"
#include "procmgr/store.h"
#include "worker/runner.h"
#include "testutil.h"

#define HEALTH "/api/v1/test/health"
#define BUSY_TIMEOUT 0.05	/* the exit gives up on the lock soon */

struct fx {
	char dir[256];
	struct egressd_config cfg;
	struct store st;
	struct evloop *loop;
	struct op_context ctx;
	struct runner *r;
	sqlite3 *other;		/* a second connection that takes the lock */
	int done;
	int waits;		/* the store's lock waits (st.waiting) */
	char error[256];	/* the last result's error, or "" */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[300];

	if (f == NULL || config_init_defaults(&f->cfg) == -1)
		return -1;
	tu_mkdtemp(f->dir, sizeof(f->dir), "runner");
	if (tu_store_open(&f->st, f->dir, BUSY_TIMEOUT, true) == -1 ||
	    (f->loop = evloop_new()) == NULL)
		return -1;
	f->ctx.instance_id = "worker-test";
	f->ctx.pid = getpid();
	f->ctx.db_path = f->st.path;
	f->ctx.cfg = &f->cfg;
	f->ctx.loop = f->loop;
	if ((f->r = runner_new(&f->ctx, &f->st, NULL, NULL)) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/egressd.db", f->dir);
	if (sqlite3_open(path, &f->other) != SQLITE_OK)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	runner_free(f->r);
	sqlite3_close(f->other);
	store_close(&f->st);
	evloop_free(f->loop);
	config_free(&f->cfg);
	tu_remove_tree(f->dir);
	free(f);
	return 0;
}

static void
on_done(struct runner_op *op, cJSON *result)
{
	struct fx *f = op->arg;
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(result,
	    "error"));

	f->done++;
	snprintf(f->error, sizeof(f->error), "%s", msg ? msg : "");
	cJSON_Delete(result);
}

static void
on_wait(void *arg)
{
	struct fx *f = arg;

	f->waits++;
}

/*
 * A health operation whose exit the database refuses (another connection
 * holds the write lock past busy_timeout): its result still comes, and
 * the runner keeps the exit to write again.  Returns its pid.
 */
static agent_pid
run_with_exit_refused(struct fx *f, struct runner_op *op)
{
	memset(op, 0, sizeof(*op));
	op->on_done = on_done;
	op->arg = f;
	assert_int_equal(runner_spawn(f->r, op, "op-a", HEALTH, NULL), 0);
	assert_true(op->pid > 0);
	tu_exec(f->other, "BEGIN IMMEDIATE");
	runner_start(f->r, op, HEALTH, NULL);
	assert_int_equal(f->done, 1);
	assert_false(op->stored);
	tu_exec(f->other, "COMMIT");
	return op->pid;
}

/* Turn the loop past the runner's first retry (1 s). */
static void
turn(struct fx *f, double seconds)
{
	double end = clock_mono() + seconds;

	while (clock_mono() < end)
		evloop_run_once(f->loop, 50);
}

static const char *
status_of(struct fx *f, agent_pid pid)
{
	return tu_query_text(f->st.db, "SELECT status FROM processes WHERE "
	    "pid = %lld", (long long)pid);
}

static void
test_refused_exit_written_later(void **state)
{
	struct fx *f = *state;
	struct runner_op op;
	agent_pid pid = run_with_exit_refused(f, &op);

	assert_string_equal(status_of(f, pid), "RUNNABLE");
	turn(f, 1.5);
	assert_string_equal(status_of(f, pid), "EXITED");
	runner_release(&op);
}

static void
test_forgotten_pid_not_written(void **state)
{
	struct fx *f = *state;
	struct runner_op op;
	agent_pid pid = run_with_exit_refused(f, &op);

	runner_forget_pid(f->r, pid);
	turn(f, 1.5);
	assert_string_equal(status_of(f, pid), "RUNNABLE");
	runner_release(&op);
}

/*
 * The batch's BEGIN found the lock taken and waited busy_timeout: the
 * operation gets no process (no second try at a spawn, even once the lock
 * is free), and its error result is what the outbox keeps.
 */
static void
test_no_process_no_second_wait(void **state)
{
	struct fx *f = *state;
	struct runner_op op;

	memset(&op, 0, sizeof(op));
	op.on_done = on_done;
	op.arg = f;
	f->st.waiting = on_wait;
	f->st.waiting_arg = f;
	tu_exec(f->other, "BEGIN IMMEDIATE");
	assert_int_equal(store_batch_begin(&f->st), -1);
	assert_true(f->waits > 0);
	tu_exec(f->other, "COMMIT");
	runner_no_process(f->r, &op, "op-b", HEALTH);
	runner_start(f->r, &op, HEALTH, NULL);
	assert_int_equal(f->done, 1);
	assert_int_equal(op.pid, 0);
	assert_non_null(strstr(f->error, "database is unavailable"));
	assert_int_equal(tu_query_int(f->st.db, "SELECT count(*) FROM "
	    "processes"), 0);
	assert_true(op.stored);
	assert_int_equal(tu_query_int(f->st.db, "SELECT count(*) FROM outbox "
	    "WHERE operation_id = 'op-b'"), 1);
	runner_release(&op);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refused_exit_written_later,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_forgotten_pid_not_written,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_process_no_second_wait,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
