/*
 * Unit tests for the agent process manager: the pure rules, and the
 * database-backed ones on a temporary database.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "capability.h"
#include "clock.h"
#include "config.h"
#include "objmem.h"
#include "procmgr.h"
#include "store.h"

struct fx {
	char dir[64];
	struct egressd_config cfg;
	struct store st;
	struct procmgr pm;
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char err[512];

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test-procmgr-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(config_init_defaults(&fx->cfg), 0);
	fx->cfg.process.max_child_processes = 4;
	fx->cfg.process.max_tool_calls = 3;
	assert_int_equal(store_open(&fx->st, fx->dir, SYNC_NORMAL, 5.0, err,
	    sizeof(err)), 0);
	assert_int_equal(store_migrate(&fx->st, err, sizeof(err)), 0);
	procmgr_init(&fx->pm, &fx->st, "test-instance", &fx->cfg);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	procmgr_close(&fx->pm);
	store_close(&fx->st);
	config_free(&fx->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static agent_pid
spawn(struct fx *fx, const struct cap_spec *caps, size_t n)
{
	agent_pid pid = 0;

	assert_int_equal(procmgr_spawn(&fx->pm, "/api/v1/test/health",
	    "{\"goal\":1}", caps, n, "op-1", NULL, &pid), 0);
	assert_true(pid > 0);
	return pid;
}

static enum proc_status
status_of(struct fx *fx, agent_pid pid)
{
	struct proc_info pi;
	enum proc_status s;

	assert_int_equal(procmgr_get(&fx->pm, pid, &pi), 0);
	s = pi.status;
	proc_info_free(&pi);
	return s;
}

static enum view_mode
view_of(struct fx *fx, agent_pid pid)
{
	struct proc_info pi;
	enum view_mode m;

	assert_int_equal(procmgr_get(&fx->pm, pid, &pi), 0);
	assert_true(pi.view_id > 0);
	assert_int_equal(objmem_view_mode(&fx->pm, pi.view_id, &m), 0);
	proc_info_free(&pi);
	return m;
}

static int
count(struct fx *fx, const char *sql, int64_t arg)
{
	sqlite3_stmt *s;
	int n;

	assert_int_equal(sqlite3_prepare_v2(fx->st.db, sql, -1, &s, NULL),
	    SQLITE_OK);
	sqlite3_bind_int64(s, 1, arg);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* Pure rules. */

static void
test_fork_view_modes(void **state)
{
	(void)state;
	assert_int_equal(fork_view_mode(FORK_COPY), VIEW_COPY_ON_WRITE);
	assert_int_equal(fork_view_mode(FORK_SPECULATIVE), VIEW_EPHEMERAL);
	assert_int_equal(fork_view_mode(FORK_WORKER), VIEW_READ_ONLY);
	assert_int_equal(fork_view_mode(FORK_RESTRICTED), VIEW_READ_ONLY);
}

static void
test_child_budget_arithmetic(void **state)
{
	struct proc_budget p = { 100, 8, 300.0 }, c;

	(void)state;
	c = proc_child_budget(&p, 2, 1, 0);
	assert_int_equal(c.max_tool_calls, 50);
	assert_int_equal(c.max_child_processes, 4);
	assert_true(c.max_runtime_seconds == 300.0);
	p.max_tool_calls = 1;
	p.max_child_processes = 1;
	c = proc_child_budget(&p, 2, 1, 0);
	assert_int_equal(c.max_tool_calls, 1);	/* max(1, 0) */
	assert_int_equal(c.max_child_processes, 0);
	p.max_tool_calls = 9;
	c = proc_child_budget(&p, 4, 5, 2);
	assert_int_equal(c.max_tool_calls, 5);	/* max(5, 2) */
	assert_int_equal(c.max_child_processes, 2);
}

static void
test_signal_transitions(void **state)
{
	(void)state;
	assert_int_equal(proc_signal_transition(PS_RUNNABLE, PSIG_PAUSE),
	    PS_PAUSED);
	assert_int_equal(proc_signal_transition(PS_PAUSED, PSIG_RESUME),
	    PS_RUNNABLE);
	assert_int_equal(proc_signal_transition(PS_RUNNABLE, PSIG_CANCEL),
	    PS_KILLED);
	assert_int_equal(proc_signal_transition(PS_WAITING_EVENT,
	    PSIG_TERMINATE), PS_KILLED);
	assert_int_equal(proc_signal_transition(PS_EXITED, PSIG_RESUME), -1);
	assert_int_equal(proc_signal_transition(PS_KILLED, PSIG_CANCEL), -1);
	assert_true(proc_status_terminal(PS_FAILED));
	assert_false(proc_status_terminal(PS_PAUSED));
}

static void
check_cwd(const char *in, const char *want)
{
	char out[PM_CWD_MAX], err[256];

	if (want == NULL) {
		assert_int_equal(proc_normalize_cwd(in, out, sizeof(out), err,
		    sizeof(err)), -1);
		assert_true(err[0] != '\0');
		return;
	}
	assert_int_equal(proc_normalize_cwd(in, out, sizeof(out), err,
	    sizeof(err)), 0);
	assert_string_equal(out, want);
}

static void
test_cwd_normalisation(void **state)
{
	(void)state;
	check_cwd("../x", NULL);
	check_cwd("/abs", NULL);
	check_cwd("a/../../b", NULL);
	check_cwd("C:\\x", NULL);
	check_cwd("C:x", NULL);
	check_cwd("\\\\host\\share", NULL);
	check_cwd("a/./b/", "a/b");
	check_cwd("", ".");
	check_cwd(".", ".");
	check_cwd("a/../b", "b");
	check_cwd("a\\b", "a/b");
}

static void
test_capability_rules(void **state)
{
	char err[128];
	double now = 1000.0;

	(void)state;
	assert_true(cap_resource_matches("storage:*", "storage:a/b"));
	assert_true(cap_resource_matches("storage:a/*", "storage:a/b"));
	assert_false(cap_resource_matches("storage:a/*", "storage:b"));
	assert_true(cap_resource_matches("http:h:80", "http:h:80"));
	assert_false(cap_resource_matches("http:h:80", "http:h:8080"));
	assert_true(cap_rights_include("read,write", "write"));
	assert_false(cap_rights_include("read,write", "delete"));
	assert_false(cap_rights_include("readwrite", "read"));
	assert_int_equal(cap_rights_valid("read,execute", err, sizeof(err)),
	    0);
	assert_int_equal(cap_rights_valid("read,fly", err, sizeof(err)), -1);
	/* Expiry: live until expires_at, for ever when 0, never if revoked. */
	assert_true(cap_live(0, 0, now));
	assert_true(cap_live(now + 1, 0, now));
	assert_false(cap_live(now - 1, 0, now));
	assert_false(cap_live(0, now - 5, now));
}

/* Database-backed rules. */

static void
test_spawn_and_fork_views(void **state)
{
	struct fx *fx = *state;
	static const enum fork_mode modes[] = { FORK_COPY, FORK_SPECULATIVE,
	    FORK_WORKER, FORK_RESTRICTED };
	agent_pid root = spawn(fx, NULL, 0), child;
	size_t i;

	assert_int_equal(status_of(fx, root), PS_RUNNABLE);
	assert_int_equal(view_of(fx, root), VIEW_MUTABLE);
	for (i = 0; i < 4; i++) {
		assert_int_equal(procmgr_fork(&fx->pm, root, "{}", modes[i],
		    NULL, NULL, 0, &child), 0);
		assert_int_equal(view_of(fx, child), fork_view_mode(modes[i]));
	}
	/* A fifth child is past max_child_processes (4). */
	assert_int_equal(procmgr_spawn_child(&fx->pm, root, "{}", NULL, NULL,
	    0, &child), -1);
	assert_int_equal(fx->pm.errtype, PM_E_LIMIT);
	assert_non_null(strstr(fx->pm.err, "child process budget"));
}

static void
test_spawn_child_budget_and_view(void **state)
{
	struct fx *fx = *state;
	agent_pid root = spawn(fx, NULL, 0), child, grandchild;
	struct proc_info pi;

	assert_int_equal(procmgr_spawn_child(&fx->pm, root, "{\"c\":1}",
	    "/x", NULL, 0, &child), 0);
	assert_int_equal(view_of(fx, child), VIEW_MUTABLE);
	assert_int_equal(procmgr_get(&fx->pm, child, &pi), 0);
	assert_int_equal(pi.parent_pid, root);
	assert_int_equal(pi.budget.max_tool_calls, 1);	/* max(1, 3 // 2) */
	assert_int_equal(pi.budget.max_child_processes, 2);	/* 4 // 2 */
	proc_info_free(&pi);
	/* Tool call budget: one call, then limit_exceeded. */
	assert_int_equal(procmgr_charge_tool_call(&fx->pm, child), 0);
	assert_int_equal(procmgr_charge_tool_call(&fx->pm, child), -1);
	assert_int_equal(fx->pm.errtype, PM_E_LIMIT);
	assert_int_equal(procmgr_spawn_child(&fx->pm, child, "{}", NULL,
	    NULL, 0, &grandchild), 0);
}

static void
test_inherit_requires_always_allow(void **state)
{
	struct fx *fx = *state;
	struct cap_spec caps[] = {
		{ "storage:*", "read,write", NULL, 0, 1, 1 },
		{ "http:h:80", "request", NULL, 0, 0, 1 },	/* not delegable */
		{ "sqlite:db", "read", NULL, 1.0, 1, 1 },	/* expired */
	};
	struct cap_spec want;
	agent_pid root = spawn(fx, caps, 3), child;
	int before;

	want = (struct cap_spec){ "storage:*", "read", NULL, 0, 0, 1 };
	assert_int_equal(procmgr_fork(&fx->pm, root, "{}", FORK_RESTRICTED,
	    NULL, &want, 1, &child), 0);
	assert_int_equal(count(fx, "SELECT count(*) FROM capabilities WHERE "
	    "subject = ?", child), 1);
	before = count(fx, "SELECT count(*) FROM processes WHERE ?1 = ?1", 0);
	want = (struct cap_spec){ "http:h:80", "request", NULL, 0, 0, 1 };
	assert_int_equal(procmgr_fork(&fx->pm, root, "{}", FORK_RESTRICTED,
	    NULL, &want, 1, &child), -1);
	assert_int_equal(fx->pm.errtype, PM_E_DENIED);
	want = (struct cap_spec){ "sqlite:db", "read", NULL, 0, 0, 1 };
	assert_int_equal(procmgr_fork(&fx->pm, root, "{}", FORK_RESTRICTED,
	    NULL, &want, 1, &child), -1);
	want = (struct cap_spec){ "storage:*", "delete", NULL, 0, 0, 1 };
	assert_int_equal(procmgr_fork(&fx->pm, root, "{}", FORK_RESTRICTED,
	    NULL, &want, 1, &child), -1);
	/* A refused fork created nothing. */
	assert_int_equal(count(fx, "SELECT count(*) FROM processes WHERE "
	    "?1 = ?1", 0), before);
}

static void
test_exec_shrinks_capabilities(void **state)
{
	struct fx *fx = *state;
	char own[64];
	agent_pid pid = spawn(fx, NULL, 0);
	struct cap_spec caps[3];

	snprintf(own, sizeof(own), "object_namespace:%lld", (long long)pid);
	caps[0] = (struct cap_spec){ "object:7", "read", NULL, 0, 0, 1 };
	caps[1] = (struct cap_spec){ own, "read,write", NULL, 0, 0, 1 };
	caps[2] = (struct cap_spec){ "storage:*", "read", NULL, 0, 0, 1 };
	assert_int_equal(procmgr_exit(&fx->pm, pid, "{}", 0, NULL, NULL), 0);
	pid = 0;
	assert_int_equal(procmgr_spawn(&fx->pm, "/img", "{}", caps, 3, NULL,
	    NULL, &pid), 0);
	/* caps[1] named the first pid's namespace: it is not this one's. */
	snprintf(own, sizeof(own), "object_namespace:%lld", (long long)pid);
	assert_int_equal(procmgr_exec(&fx->pm, pid, "/img2", 1, 1), 0);
	assert_int_equal(count(fx, "SELECT count(*) FROM capabilities WHERE "
	    "subject = ? AND revoked_at IS NULL", pid), 3);
	assert_int_equal(procmgr_exec(&fx->pm, pid, "/img3", 0, 0), 0);
	assert_int_equal(count(fx, "SELECT count(*) FROM capabilities WHERE "
	    "subject = ? AND revoked_at IS NULL AND resource = 'object:7'",
	    pid), 1);
	assert_int_equal(count(fx, "SELECT count(*) FROM capabilities WHERE "
	    "subject = ? AND revoked_at IS NULL", pid), 1);
}

static void
test_wait_and_wake(void **state)
{
	struct fx *fx = *state;
	agent_pid root = spawn(fx, NULL, 0), child, other;
	struct proc_wait w;
	struct proc_info pi;
	char msg[64];

	assert_int_equal(procmgr_spawn_child(&fx->pm, root, "{}", NULL, NULL,
	    0, &child), 0);
	assert_int_equal(procmgr_wait(&fx->pm, root, child, 0, &w), -1);
	assert_int_equal(fx->pm.errtype, PM_E_TIMEOUT);
	assert_int_equal(procmgr_wait(&fx->pm, root, child, -1, &w), 0);
	assert_int_equal(procmgr_get(&fx->pm, root, &pi), 0);
	assert_int_equal(pi.status, PS_WAITING_EVENT);
	snprintf(msg, sizeof(msg), "waiting for %lld", (long long)child);
	assert_string_equal(pi.status_message, msg);
	proc_info_free(&pi);
	/* Merging from a live child is refused. */
	assert_int_equal(procmgr_merge_child_memory(&fx->pm, root, child,
	    NULL), -1);
	assert_int_equal(procmgr_exit(&fx->pm, child, "{\"r\":1}", 0, NULL,
	    NULL), 0);
	assert_int_equal(status_of(fx, root), PS_RUNNABLE);
	assert_int_equal(procmgr_wait(&fx->pm, root, child, -1, &w), 1);
	assert_int_equal(w.status, PS_EXITED);
	assert_true(w.result_oid > 0 && w.handle_cap > 0);
	/* Only one's own child can be waited for or signalled. */
	other = spawn(fx, NULL, 0);
	assert_int_equal(procmgr_wait(&fx->pm, other, child, -1, &w), -1);
	assert_int_equal(procmgr_signal_child(&fx->pm, other, child,
	    PSIG_CANCEL, "no"), -1);
}

static void
test_terminated_refuses_everything(void **state)
{
	struct fx *fx = *state;
	agent_pid pid = spawn(fx, NULL, 0), child;

	assert_int_equal(procmgr_signal(&fx->pm, pid, PSIG_PAUSE, NULL), 0);
	assert_int_equal(status_of(fx, pid), PS_PAUSED);
	assert_int_equal(procmgr_signal(&fx->pm, pid, PSIG_RESUME, NULL), 0);
	assert_int_equal(procmgr_signal(&fx->pm, pid, PSIG_TERMINATE,
	    "enough"), 0);
	assert_int_equal(status_of(fx, pid), PS_KILLED);
	assert_int_equal(procmgr_fork(&fx->pm, pid, "{}", FORK_COPY, NULL,
	    NULL, 0, &child), -1);
	assert_int_equal(procmgr_spawn_child(&fx->pm, pid, "{}", NULL, NULL,
	    0, &child), -1);
	assert_int_equal(procmgr_exec(&fx->pm, pid, "/x", 1, 1), -1);
	assert_int_equal(procmgr_signal(&fx->pm, pid, PSIG_RESUME, NULL), -1);
	assert_int_equal(procmgr_chdir(&fx->pm, pid, "a"), -1);
	assert_int_equal(procmgr_charge_tool_call(&fx->pm, pid), -1);
	assert_int_equal(procmgr_exit(&fx->pm, pid, "{}", 0, NULL, NULL), -1);
	assert_int_equal(procmgr_check(&fx->pm, pid, "storage:a", "read"),
	    -1);
	assert_int_equal(status_of(fx, pid), PS_KILLED);
}

static void
test_exit_outbox_and_release(void **state)
{
	struct fx *fx = *state;
	struct outbox_entry ob = { "op-9", "{\"ok\":1}", 0 };
	agent_pid pid = spawn(fx, NULL, 0);
	int64_t oid;

	assert_int_equal(objmem_create(&fx->pm, pid, OBJ_DATA, "{}", 0, 1,
	    &oid), 0);
	assert_int_equal(procmgr_exit(&fx->pm, pid, "{\"ok\":1}", 0, NULL,
	    &ob), 0);
	assert_int_equal(count(fx, "SELECT count(*) FROM objects WHERE "
	    "oid = ?", oid), 0);
	assert_int_equal(count(fx, "SELECT count(*) FROM objects o JOIN "
	    "processes p ON o.oid = p.result_oid WHERE p.pid = ?", pid), 1);
	assert_int_equal(count(fx, "SELECT count(*) FROM outbox WHERE "
	    "pid = ?", pid), 1);
}

static void
test_chdir_and_check(void **state)
{
	struct fx *fx = *state;
	struct cap_spec cap = { "storage:pub/*", "read", NULL, 0, 1, 1 };
	agent_pid pid = spawn(fx, &cap, 1);
	struct proc_info pi;

	assert_int_equal(procmgr_chdir(&fx->pm, pid, "a/./b/"), 0);
	assert_int_equal(procmgr_get(&fx->pm, pid, &pi), 0);
	assert_string_equal(pi.cwd, "a/b");
	proc_info_free(&pi);
	assert_int_equal(procmgr_chdir(&fx->pm, pid, "../x"), -1);
	assert_int_equal(fx->pm.errtype, PM_E_INVALID);
	assert_int_equal(procmgr_check(&fx->pm, pid, "storage:pub/a",
	    "read"), 0);
	assert_int_equal(procmgr_check(&fx->pm, pid, "storage:priv/a",
	    "read"), -1);
	assert_int_equal(fx->pm.errtype, PM_E_DENIED);
	/* The denial's audit record was committed. */
	assert_true(count(fx, "SELECT count(*) FROM audit WHERE pid = ? AND "
	    "decision LIKE '%deny%'", pid) >= 1);
}

static void
test_fail_worker(void **state)
{
	struct fx *fx = *state;
	agent_pid pid = spawn(fx, NULL, 0);

	assert_int_equal(procmgr_fail_worker(&fx->pm, "test-instance",
	    "worker died: signal 9", clock_wall()), 1);
	assert_int_equal(status_of(fx, pid), PS_FAILED);
	assert_int_equal(count(fx, "SELECT count(*) FROM outbox WHERE "
	    "result LIKE '%worker died: signal 9%' AND pid = ?", pid), 1);
	assert_int_equal(procmgr_fail_worker(&fx->pm, "test-instance",
	    "again", clock_wall()), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_view_modes),
		cmocka_unit_test(test_child_budget_arithmetic),
		cmocka_unit_test(test_signal_transitions),
		cmocka_unit_test(test_cwd_normalisation),
		cmocka_unit_test(test_capability_rules),
		cmocka_unit_test_setup_teardown(test_spawn_and_fork_views,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_spawn_child_budget_and_view, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_inherit_requires_always_allow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_shrinks_capabilities,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_and_wake, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_terminated_refuses_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_outbox_and_release,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_chdir_and_check, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fail_worker, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
