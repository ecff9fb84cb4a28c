/*
 * Agent-libOS's own runtime tests (tests/runtime/test_child_process_tools.py
 * and test_process_working_directory.py), ported scenario by scenario to
 * egressd's C API; each test is named after the upstream one it mirrors.
 * Where egressd differs on purpose the test asserts egressd's behaviour
 * and says so (docs/PROCESSES.md lists each difference).  Then the
 * hierarchical usage rules: a child's tool calls and runtime are its
 * ancestors' too, and a kill can take a whole subtree.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "procmgr/capability.h"
#include "core/clock.h"
#include "core/config.h"
#include "procmgr/objmem.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"
#include "testutil.h"

#define INSTANCE "worker-upstream"
#define BASE "base-agent:v0"
#define CODING "coding-agent:v0"

static int
setup(void **state)
{
	return (*state = tu_pm_new("upstream", INSTANCE)) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	tu_pm_free(*state);
	return 0;
}

#define q_int(f, ...)	tu_query_int((f)->st.db, __VA_ARGS__)
#define q_text(f, ...)	tu_query_text((f)->st.db, __VA_ARGS__)

#define ok(f, call) do {						\
	if ((call) != 0)						\
		fail_msg("%s: %s", #call, (f)->pm.err);			\
} while (0)

static void
refused(struct tu_pm *f, int rc, enum pm_error type, const char *msg)
{
	tu_pm_refused(&f->pm, rc, type, msg);
}

static agent_pid
spawn(struct tu_pm *f, const char *image)
{
	agent_pid pid = 0;

	ok(f, procmgr_spawn(&f->pm, image, "{\"goal\":1}", NULL, 0, NULL,
	    NULL, &pid));
	return pid;
}

/* runtime.capability.grant(pid, resource, [right]) */
static int64_t
grant(struct tu_pm *f, agent_pid pid, const char *resource, const char *rights,
    int delegable)
{
	struct cap_spec c = { .resource = resource, .rights = rights,
	    .delegable = delegable, .revocable = 1 };
	int64_t id = 0;

	ok(f, store_begin(&f->st));
	ok(f, cap_grant(&f->pm, pid, &c, "test", &id));
	ok(f, store_commit(&f->st));
	return id;
}

static void
grant_spawn(struct tu_pm *f, agent_pid pid)
{
	grant(f, pid, PM_RES_SPAWN, "write", 0);
}

static void
grant_image(struct tu_pm *f, agent_pid pid, const char *image)
{
	char res[128];

	snprintf(res, sizeof(res), PM_RES_IMAGE "%s", image);
	grant(f, pid, res, "read", 0);
}

static int64_t
nprocs(struct tu_pm *f)
{
	return q_int(f, "SELECT count(*) FROM processes");
}

static enum proc_status
status_of(struct tu_pm *f, agent_pid pid)
{
	struct proc_info pi;
	enum proc_status s;

	ok(f, procmgr_get(&f->pm, pid, &pi));
	s = pi.status;
	procmgr_info_free(&pi);
	return s;
}

static int
allowed(struct tu_pm *f, agent_pid pid, const char *resource, const char *right)
{
	enum cap_policy pol;

	ok(f, cap_policy(&f->pm, pid, resource, right, clock_wall(), &pol));
	return pol != CAP_DENY;
}

/* An object owned by pid, volatile or not, in pid's view. */
static int64_t
object(struct tu_pm *f, agent_pid pid, const char *payload, int is_volatile)
{
	struct proc_info pi;
	int64_t oid;

	ok(f, procmgr_get(&f->pm, pid, &pi));
	ok(f, store_begin(&f->st));
	ok(f, objmem_create(&f->pm, pid, OBJ_DATA, payload, 0, is_volatile,
	    &oid));
	ok(f, objmem_view_add(&f->pm, pi.view_id, oid));
	ok(f, store_commit(&f->st));
	procmgr_info_free(&pi);
	return oid;
}

static int64_t
exists(struct tu_pm *f, int64_t oid)
{
	return q_int(f, "SELECT count(*) FROM objects WHERE oid = %lld",
	    (long long)oid);
}

/* test_child_process_tools.py */

static void
test_spawn_child_process_requires_process_spawn_authority(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0;
	int64_t before = nprocs(f);

	refused(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0,
	    &child), PM_E_DENIED, "process:spawn");
	assert_int_equal(nprocs(f), before);
	assert_int_equal(q_int(f, "SELECT child_processes FROM processes "
	    "WHERE pid = %lld", (long long)parent), 0);
}

static void
test_fork_syscall_requires_process_spawn_authority(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0;
	int64_t before = nprocs(f);

	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_RESTRICTED, NULL,
	    NULL, 0, &child), PM_E_DENIED, "process:spawn");
	assert_int_equal(nprocs(f), before);
}

static void
test_cross_image_spawn_and_exec_require_image_read_authority(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0, target;
	int64_t before = nprocs(f), goal;

	grant_spawn(f, parent);
	refused(f, procmgr_spawn_child(&f->pm, parent, NULL, CODING, NULL, 0,
	    &child), PM_E_DENIED, "image:" CODING);
	assert_int_equal(nprocs(f), before);
	grant_image(f, parent, CODING);
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, CODING, NULL, 0,
	    &child));
	assert_string_equal(q_text(f, "SELECT image FROM processes WHERE "
	    "pid = %lld", (long long)child), CODING);
	target = spawn(f, BASE);
	goal = q_int(f, "SELECT goal_oid FROM processes WHERE pid = %lld",
	    (long long)target);
	refused(f, procmgr_exec(&f->pm, target, CODING, 0, 0), PM_E_DENIED,
	    "image:" CODING);
	assert_string_equal(q_text(f, "SELECT image FROM processes WHERE "
	    "pid = %lld", (long long)target), BASE);
	assert_int_equal(q_int(f, "SELECT goal_oid FROM processes WHERE "
	    "pid = %lld", (long long)target), goal);
	grant_image(f, target, CODING);
	ok(f, procmgr_exec(&f->pm, target, CODING, 0, 0));
	assert_string_equal(q_text(f, "SELECT image FROM processes WHERE "
	    "pid = %lld", (long long)target), CODING);
	/* The same image needs no image authority. */
	grant_spawn(f, target);
	ok(f, procmgr_fork(&f->pm, target, NULL, FORK_WORKER, CODING, NULL, 0,
	    &child));
}

static void
test_fork_child_process_tool_requires_cross_image_read_authority(
    void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, "review-agent:v0"), child = 0;
	int64_t before = nprocs(f);

	grant_spawn(f, parent);
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_RESTRICTED, CODING,
	    NULL, 0, &child), PM_E_DENIED, "image:" CODING);
	assert_int_equal(nprocs(f), before);
}

static void
test_fork_child_process_tool_allows_authorized_cross_image_fork(
    void **state)
{
	struct tu_pm *f = *state;
	struct proc_child_opts none = { .select_roots = 1 };
	agent_pid parent = spawn(f, "review-agent:v0"), child = 0;
	struct proc_info c;
	int64_t note;

	grant_spawn(f, parent);
	grant_image(f, parent, CODING);
	grant(f, parent, "filesystem:workspace:*", "read", 0);
	note = object(f, parent, "{\"visible_to_parent\":true}", 1);
	/* include_parent_roots: False */
	ok(f, procmgr_fork_opts(&f->pm, parent, NULL, FORK_RESTRICTED, CODING,
	    NULL, 0, &none, &child));
	ok(f, procmgr_get(&f->pm, child, &c));
	assert_int_equal(c.parent_pid, parent);
	assert_string_equal(c.image, CODING);
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE view_id = %lld AND value = %lld", (long long)c.view_id,
	    (long long)note), 0);
	assert_string_equal(q_text(f, "SELECT roots FROM views WHERE "
	    "view_id = %lld", (long long)c.view_id), q_text(f, "SELECT "
	    "json_array(%lld)", (long long)c.goal_oid));
	/* The parent's authority is not the child's. */
	assert_false(allowed(f, child, "filesystem:workspace:README.md",
	    "read"));
	procmgr_info_free(&c);
}

static void
test_spawn_child_process_creates_fresh_child_without_parent_memory_or_default_caps(
    void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, "review-agent:v0"), child = 0;
	struct proc_info c;
	int64_t note;

	grant_spawn(f, parent);
	grant_image(f, parent, CODING);
	grant(f, parent, "filesystem:workspace:*", "read", 1);
	note = object(f, parent, "{\"visible_to_parent\":true}", 1);
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, CODING, NULL, 0,
	    &child));
	ok(f, procmgr_get(&f->pm, child, &c));
	assert_string_equal(c.image, CODING);
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE view_id = %lld AND value = %lld", (long long)c.view_id,
	    (long long)note), 0);
	assert_false(allowed(f, child, "filesystem:workspace:README.md",
	    "read"));
	assert_int_equal(q_int(f, "SELECT count(*) FROM capabilities WHERE "
	    "subject = %lld", (long long)child), 0);
	procmgr_info_free(&c);
}

static void
test_spawn_child_process_inherits_only_explicit_capabilities(void **state)
{
	struct tu_pm *f = *state;
	struct cap_spec readme = { .resource = "filesystem:workspace:README.md",
	    .rights = "read" };
	agent_pid parent = spawn(f, BASE), child = 0;

	grant_spawn(f, parent);
	grant(f, parent, "filesystem:workspace:*", "read", 1);
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, &readme, 1,
	    &child));
	assert_true(allowed(f, child, "filesystem:workspace:README.md",
	    "read"));
	assert_false(allowed(f, child, "filesystem:workspace:pyproject.toml",
	    "read"));
	/* Not delegable: process:spawn stays with the parent. */
	assert_false(allowed(f, child, PM_RES_SPAWN, "write"));
}

static void
test_nonblocking_wait_child_process_does_not_suspend_parent(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0;
	struct proc_wait w;
	struct proc_info pi;

	grant_spawn(f, parent);
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0,
	    &child));
	assert_int_equal(procmgr_poll_child(&f->pm, parent, child, &w), 0);
	ok(f, procmgr_get(&f->pm, parent, &pi));
	assert_int_equal(pi.status, PS_RUNNABLE);
	assert_null(pi.status_message);
	procmgr_info_free(&pi);
	/* Once the child has ended, a poll collects it as wait does. */
	ok(f, procmgr_exit(&f->pm, child, "{\"v\":42}", 0, NULL, NULL));
	assert_int_equal(procmgr_poll_child(&f->pm, parent, child, &w), 1);
	assert_int_equal(w.status, PS_EXITED);
	assert_true(w.result_oid > 0 && w.handle_cap > 0);
	assert_int_equal(status_of(f, parent), PS_RUNNABLE);
}

static void
test_child_list_signal_and_budget_are_enforced(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent, other, child = 0, second = 0;

	f->pm.defaults.max_child_processes = 1;
	parent = spawn(f, BASE);
	other = spawn(f, BASE);
	grant_spawn(f, parent);
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_RESTRICTED, NULL, NULL,
	    0, &child));
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = %lld", (long long)child), ".");
	ok(f, procmgr_signal_child(&f->pm, parent, child, PSIG_PAUSE, NULL));
	assert_int_equal(status_of(f, child), PS_PAUSED);
	ok(f, procmgr_signal_child(&f->pm, parent, child, PSIG_RESUME, NULL));
	assert_int_equal(status_of(f, child), PS_RUNNABLE);
	refused(f, procmgr_signal_child(&f->pm, parent, other, PSIG_PAUSE,
	    NULL), PM_E_INVALID, "is not a child");
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_RESTRICTED, NULL,
	    NULL, 0, &second), PM_E_LIMIT, "exhausted its child process "
	    "budget");
}

static void
test_terminal_process_cannot_be_resumed_by_signal(void **state)
{
	struct tu_pm *f = *state;
	agent_pid pid = spawn(f, BASE);

	ok(f, procmgr_exit(&f->pm, pid, NULL, 0, "done", NULL));
	refused(f, procmgr_signal(&f->pm, pid, PSIG_RESUME, NULL),
	    PM_E_INVALID, "it has ended");
	assert_int_equal(status_of(f, pid), PS_EXITED);
}

static void
test_waiting_process_cannot_be_resumed_without_wait_condition(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0;
	char want[64];

	grant_spawn(f, parent);
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0,
	    &child));
	assert_int_equal(procmgr_wait(&f->pm, parent, child, -1, NULL), 0);
	refused(f, procmgr_signal(&f->pm, parent, PSIG_RESUME, NULL),
	    PM_E_INVALID, "does not apply");
	assert_int_equal(status_of(f, parent), PS_WAITING_EVENT);
	snprintf(want, sizeof(want), "waiting for %lld", (long long)child);
	assert_string_equal(q_text(f, "SELECT status_message FROM processes "
	    "WHERE pid = %lld", (long long)parent), want);
}

static void
test_terminal_process_cannot_exit_again_or_overwrite_status(void **state)
{
	struct tu_pm *f = *state;
	agent_pid pid = spawn(f, BASE);

	ok(f, procmgr_exit(&f->pm, pid, "{\"message\":\"done\"}", 0, NULL,
	    NULL));
	refused(f, procmgr_exit(&f->pm, pid, "{\"late\":1}", 1, "late "
	    "overwrite", NULL), PM_E_INVALID, "it has ended");
	assert_int_equal(status_of(f, pid), PS_EXITED);
	assert_string_equal(q_text(f, "SELECT payload FROM objects WHERE "
	    "oid = (SELECT result_oid FROM processes WHERE pid = %lld)",
	    (long long)pid), "{\"message\":\"done\"}");
}

static void
test_resource_kill_wakes_parent_waiting_on_child(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0;

	grant_spawn(f, parent);
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0,
	    &child));
	assert_int_equal(procmgr_wait(&f->pm, parent, child, -1, NULL), 0);
	ok(f, procmgr_kill(&f->pm, child, "test budget exhausted", NULL));
	assert_int_equal(status_of(f, child), PS_KILLED);
	assert_int_equal(status_of(f, parent), PS_RUNNABLE);
	assert_int_equal(q_int(f, "SELECT status_message IS NULL FROM "
	    "processes WHERE pid = %lld", (long long)parent), 1);
}

static void
test_resource_kill_uses_terminal_cleanup_for_root_process_memory(
    void **state)
{
	struct tu_pm *f = *state;
	agent_pid pid = spawn(f, BASE);
	int64_t owned = object(f, pid, "{\"released\":true}", 1);

	ok(f, procmgr_kill(&f->pm, pid, "test budget exhausted", NULL));
	assert_int_equal(status_of(f, pid), PS_KILLED);
	assert_int_equal(exists(f, owned), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events WHERE type = "
	    "'process.exited' AND pid = %lld AND json_extract(payload, "
	    "'$.status') = 'KILLED'", (long long)pid), 1);
}

static void
test_merge_child_memory_tool_adds_child_view_objects_to_parent(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0;
	int64_t result;
	int merged = 0;

	grant_spawn(f, parent);
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_COPY, NULL, NULL, 0,
	    &child));
	result = object(f, child, "{\"merged\":true}", 1);
	/* process_exit {"result_oid": ...} */
	ok(f, procmgr_exit_object(&f->pm, child, result, 0, NULL, NULL));
	assert_int_equal(exists(f, result), 1);
	ok(f, procmgr_merge_child_memory(&f->pm, parent, child, &merged));
	assert_true(merged >= 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE pid = %lld AND value = %lld", (long long)parent,
	    (long long)result), 1);
}

static void
test_process_exit_result_oid_requires_object_read_authority(void **state)
{
	struct tu_pm *f = *state;
	agent_pid owner = spawn(f, BASE), pid = spawn(f, BASE);
	int64_t secret = object(f, owner, "{\"secret\":1}", 0);
	char res[64];

	refused(f, procmgr_exit_object(&f->pm, pid, secret, 0, NULL, NULL),
	    PM_E_DENIED, "lacks read");
	assert_int_equal(status_of(f, pid), PS_RUNNABLE);
	snprintf(res, sizeof(res), "object:%lld", (long long)secret);
	grant(f, pid, res, "read", 0);
	ok(f, procmgr_exit_object(&f->pm, pid, secret, 0, NULL, NULL));
	assert_int_equal(q_int(f, "SELECT result_oid FROM processes WHERE "
	    "pid = %lld", (long long)pid), secret);
}

static void
test_fork_does_not_resurrect_revoked_image_default_capability(void **state)
{
	struct tu_pm *f = *state;
	struct cap_spec pass = { .resource = "filesystem:workspace:*",
	    .rights = "read" };
	agent_pid parent = spawn(f, CODING), child = 0;
	int64_t cap = grant(f, parent, "filesystem:workspace:*", "read", 1);

	grant_spawn(f, parent);
	ok(f, store_begin(&f->st));
	ok(f, cap_revoke(&f->pm, cap, "1", "revoked before fork"));
	ok(f, store_commit(&f->st));
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_RESTRICTED, NULL,
	    &pass, 1, &child), PM_E_DENIED, "cannot delegate");
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_RESTRICTED, NULL, NULL,
	    0, &child));
	assert_false(allowed(f, child, "filesystem:workspace:README.md",
	    "read"));
}

static void
test_exec_process_swaps_image_without_granting_target_image_capabilities(
    void **state)
{
	struct tu_pm *f = *state;
	agent_pid pid = spawn(f, BASE);
	int64_t ws = grant(f, pid, "filesystem:workspace:*", "read", 0);
	struct proc_info pi;

	grant_image(f, pid, CODING);
	ok(f, procmgr_exec(&f->pm, pid, CODING, 0, 0));
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_string_equal(pi.image, CODING);
	assert_false(allowed(f, pid, "filesystem:workspace:README.md",
	    "read"));
	assert_int_equal(q_int(f, "SELECT revoked_at IS NOT NULL FROM "
	    "capabilities WHERE cap_id = %lld", (long long)ws), 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit WHERE action = "
	    "'process.exec'"), 1);
	procmgr_info_free(&pi);
}

/*
 * Deliberately different: upstream keeps a child's non-result memory
 * until the parent exits (merge hands it over); egressd releases a
 * process's volatile objects at its own end, so a merge after the child's
 * exit sees its result only.
 */
static void
test_merge_after_child_exit_preserves_non_result_child_created_memory_until_parent_exit(
    void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0;
	int64_t scratch, result;
	int merged = 0;

	grant_spawn(f, parent);
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_COPY, NULL, NULL, 0,
	    &child));
	scratch = object(f, child, "{\"scratch\":true}", 1);
	result = object(f, child, "{\"result\":true}", 1);
	ok(f, procmgr_exit_object(&f->pm, child, result, 0, NULL, NULL));
	assert_int_equal(exists(f, scratch), 0);
	assert_int_equal(exists(f, result), 1);
	ok(f, procmgr_merge_child_memory(&f->pm, parent, child, &merged));
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE pid = %lld AND value = %lld", (long long)parent,
	    (long long)scratch), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE pid = %lld AND value = %lld", (long long)parent,
	    (long long)result), 1);
}

/* test_process_working_directory.py */

static void
test_set_working_directory_requires_filesystem_read_before_state_probe(
    void **state)
{
	struct tu_pm *f = *state;
	agent_pid pid = spawn(f, "review-agent:v0");

	refused(f, procmgr_chdir(&f->pm, pid, "known"), PM_E_DENIED,
	    "lacks read on filesystem:workspace:known/*");
	refused(f, procmgr_chdir(&f->pm, pid, "missing"), PM_E_DENIED,
	    "lacks read");
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = %lld", (long long)pid), ".");
	grant(f, pid, "filesystem:workspace:known/*", "read", 0);
	ok(f, procmgr_chdir(&f->pm, pid, "known/./"));
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = %lld", (long long)pid), "known");
}

static void
test_child_cwd_probe_occurs_only_after_spawn_and_image_authority(
    void **state)
{
	struct tu_pm *f = *state;
	struct proc_child_opts o = { .cwd = "child-cwd" };
	agent_pid parent = spawn(f, "review-agent:v0"), child = 0;
	int fork;

	grant(f, parent, "filesystem:workspace:child-cwd/*", "read", 0);
	/* Parametrised upstream over spawn_child_process and fork. */
	for (fork = 0; fork < 2; fork++) {
		refused(f, fork ? procmgr_fork_opts(&f->pm, parent, NULL,
		    FORK_RESTRICTED, "missing-image:v0", NULL, 0, &o, &child) :
		    procmgr_spawn_child_opts(&f->pm, parent, NULL,
		    "missing-image:v0", NULL, 0, &o, &child), PM_E_DENIED,
		    "process:spawn");
		assert_null(strstr(f->pm.err, "not found"));
	}
	grant_spawn(f, parent);
	for (fork = 0; fork < 2; fork++) {
		refused(f, fork ? procmgr_fork_opts(&f->pm, parent, NULL,
		    FORK_RESTRICTED, "missing-image:v0", NULL, 0, &o, &child) :
		    procmgr_spawn_child_opts(&f->pm, parent, NULL,
		    "missing-image:v0", NULL, 0, &o, &child), PM_E_DENIED,
		    "image:missing-image:v0");
	}
	assert_int_equal(nprocs(f), 1);
}

static void
test_fork_syscall_validates_explicit_working_directory_through_filesystem_primitive(
    void **state)
{
	struct tu_pm *f = *state;
	struct proc_child_opts o = { .cwd = "./syscall-cwd/" };
	struct proc_child_opts other = { .cwd = "elsewhere" };
	struct proc_child_opts escape = { .cwd = "../up" };
	agent_pid parent = spawn(f, BASE), child = 0;

	grant_spawn(f, parent);
	grant(f, parent, "filesystem:workspace:syscall-cwd/*", "read", 0);
	refused(f, procmgr_fork_opts(&f->pm, parent, NULL, FORK_RESTRICTED,
	    NULL, NULL, 0, &other, &child), PM_E_DENIED,
	    "filesystem:workspace:elsewhere/*");
	refused(f, procmgr_fork_opts(&f->pm, parent, NULL, FORK_RESTRICTED,
	    NULL, NULL, 0, &escape, &child), PM_E_INVALID, "escapes");
	ok(f, procmgr_fork_opts(&f->pm, parent, NULL, FORK_RESTRICTED, NULL,
	    NULL, 0, &o, &child));
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = %lld", (long long)child), "syscall-cwd");
	ok(f, procmgr_spawn_child_opts(&f->pm, parent, NULL, NULL, NULL, 0,
	    &o, &child));
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = %lld", (long long)child), "syscall-cwd");
}

static void
test_children_inherit_parent_working_directory_by_default(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, "review-agent:v0"), a = 0, b = 0;

	grant_spawn(f, parent);
	grant(f, parent, "filesystem:workspace:child-cwd/*", "read", 0);
	ok(f, procmgr_chdir(&f->pm, parent, "child-cwd"));
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0, &a));
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_RESTRICTED, NULL, NULL,
	    0, &b));
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = %lld", (long long)a), "child-cwd");
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = %lld", (long long)b), "child-cwd");
}

static void
test_process_working_directory_persists_in_sqlite(void **state)
{
	struct tu_pm *f = *state;
	agent_pid pid = spawn(f, "review-agent:v0");
	struct proc_info pi;

	grant(f, pid, "filesystem:workspace:persisted/*", "read", 0);
	ok(f, procmgr_chdir(&f->pm, pid, "persisted"));
	procmgr_close(&f->pm);
	store_close(&f->st);
	assert_int_equal(tu_store_open(&f->st, f->dir, 5.0, true), 0);
	procmgr_init(&f->pm, &f->st, INSTANCE, &f->cfg);
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_string_equal(pi.cwd, "persisted");
	procmgr_info_free(&pi);
}

/* Fork root selection (DESIGN section 4). */

static void
test_fork_passes_only_chosen_roots(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, BASE), child = 0, stranger = spawn(f, BASE);
	int64_t a = object(f, parent, "{\"a\":1}", 1);
	int64_t b = object(f, parent, "{\"b\":1}", 1);
	int64_t foreign = object(f, stranger, "{\"x\":1}", 1);
	struct proc_child_opts pick = { .select_roots = 1, .roots = &b,
	    .nroots = 1 };
	struct proc_child_opts bad = { .select_roots = 1, .roots = &foreign,
	    .nroots = 1 };
	struct proc_info c;

	grant_spawn(f, parent);
	refused(f, procmgr_fork_opts(&f->pm, parent, NULL, FORK_COPY, NULL,
	    NULL, 0, &bad, &child), PM_E_INVALID, "is not in the view");
	ok(f, procmgr_fork_opts(&f->pm, parent, NULL, FORK_COPY, NULL, NULL, 0,
	    &pick, &child));
	ok(f, procmgr_get(&f->pm, child, &c));
	assert_string_equal(q_text(f, "SELECT mode || ' ' || roots FROM views "
	    "WHERE view_id = %lld", (long long)c.view_id), q_text(f, "SELECT "
	    "'COPY_ON_WRITE ' || json_array(%lld, %lld)", (long long)b,
	    (long long)c.goal_oid));
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE view_id = %lld AND value = %lld", (long long)c.view_id,
	    (long long)a), 0);
	procmgr_info_free(&c);
}

/* Hierarchical usage. */

static void
test_child_tool_calls_charge_ancestors(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent, child = 0, grandchild = 0;

	f->pm.defaults.max_tool_calls = 4;
	f->pm.fork_divisor = 1;		/* children get the whole budget */
	parent = spawn(f, BASE);
	grant_spawn(f, parent);
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL, NULL, 0,
	    &child));
	grant_spawn(f, child);
	ok(f, procmgr_fork(&f->pm, child, NULL, FORK_WORKER, NULL, NULL, 0,
	    &grandchild));
	ok(f, procmgr_charge_tool_call(&f->pm, grandchild));
	ok(f, procmgr_charge_tool_call(&f->pm, child));
	ok(f, procmgr_charge_tool_call(&f->pm, parent));
	assert_string_equal(q_text(f, "SELECT group_concat(tool_calls, ' ') "
	    "FROM (SELECT tool_calls FROM processes ORDER BY pid)"), "3 2 1");
	ok(f, procmgr_charge_tool_call(&f->pm, grandchild));
	/* The root's 4 are used up: no descendant may call a tool. */
	refused(f, procmgr_charge_tool_call(&f->pm, grandchild), PM_E_LIMIT,
	    "ancestor 1");
	assert_string_equal(q_text(f, "SELECT group_concat(tool_calls, ' ') "
	    "FROM (SELECT tool_calls FROM processes ORDER BY pid)"), "4 3 2");
}

static void
test_child_runtime_charges_ancestors(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent, child = 0, sibling = 0;

	f->pm.defaults.max_runtime_seconds = 10;
	parent = spawn(f, BASE);
	grant_spawn(f, parent);
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL, NULL, 0,
	    &child));
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL, NULL, 0,
	    &sibling));
	ok(f, procmgr_charge_runtime(&f->pm, child, 6));
	refused(f, procmgr_charge_runtime(&f->pm, sibling, 6), PM_E_LIMIT,
	    "process 1 exceeded: 12.000/10.000");
	assert_int_equal(q_int(f, "SELECT runtime_used FROM processes WHERE "
	    "pid = %lld", (long long)sibling), 6);
	refused(f, procmgr_charge_runtime(&f->pm, child, -1), PM_E_INVALID,
	    NULL);
}

static void
test_kill_tree_kills_subtree(void **state)
{
	struct tu_pm *f = *state;
	struct outbox_entry ob = { .operation_id = "op-tree",
	    .result = "{\"error\":\"killed\"}" };
	agent_pid root = spawn(f, BASE), child = 0, grandchild = 0, done = 0;
	int64_t scratch;

	grant_spawn(f, root);
	ok(f, procmgr_fork(&f->pm, root, NULL, FORK_WORKER, NULL, NULL, 0,
	    &child));
	ok(f, procmgr_fork(&f->pm, root, NULL, FORK_WORKER, NULL, NULL, 0,
	    &done));
	ok(f, procmgr_exit(&f->pm, done, NULL, 0, NULL, NULL));
	grant_spawn(f, child);
	ok(f, procmgr_fork(&f->pm, child, NULL, FORK_WORKER, NULL, NULL, 0,
	    &grandchild));
	scratch = object(f, grandchild, "{\"s\":1}", 1);
	ok(f, procmgr_kill_tree(&f->pm, root, "cancelled", &ob));
	assert_int_equal(status_of(f, root), PS_KILLED);
	assert_int_equal(status_of(f, child), PS_KILLED);
	assert_int_equal(status_of(f, grandchild), PS_KILLED);
	assert_int_equal(status_of(f, done), PS_EXITED);
	assert_int_equal(exists(f, scratch), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM outbox"), 1);
	/* Deepest first. */
	assert_int_equal(q_int(f, "SELECT pid FROM events WHERE type = "
	    "'process.exited' AND json_extract(payload, '$.status') = "
	    "'KILLED' ORDER BY id LIMIT 1"), grandchild);
}

int
main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_spawn_child_process_requires_process_spawn_authority),
		T(test_fork_syscall_requires_process_spawn_authority),
		T(test_cross_image_spawn_and_exec_require_image_read_authority),
		T(test_fork_child_process_tool_requires_cross_image_read_authority),
		T(test_fork_child_process_tool_allows_authorized_cross_image_fork),
		T(test_spawn_child_process_creates_fresh_child_without_parent_memory_or_default_caps),
		T(test_spawn_child_process_inherits_only_explicit_capabilities),
		T(test_nonblocking_wait_child_process_does_not_suspend_parent),
		T(test_child_list_signal_and_budget_are_enforced),
		T(test_terminal_process_cannot_be_resumed_by_signal),
		T(test_waiting_process_cannot_be_resumed_without_wait_condition),
		T(test_terminal_process_cannot_exit_again_or_overwrite_status),
		T(test_resource_kill_wakes_parent_waiting_on_child),
		T(test_resource_kill_uses_terminal_cleanup_for_root_process_memory),
		T(test_merge_child_memory_tool_adds_child_view_objects_to_parent),
		T(test_process_exit_result_oid_requires_object_read_authority),
		T(test_fork_does_not_resurrect_revoked_image_default_capability),
		T(test_exec_process_swaps_image_without_granting_target_image_capabilities),
		T(test_merge_after_child_exit_preserves_non_result_child_created_memory_until_parent_exit),
		T(test_set_working_directory_requires_filesystem_read_before_state_probe),
		T(test_child_cwd_probe_occurs_only_after_spawn_and_image_authority),
		T(test_fork_syscall_validates_explicit_working_directory_through_filesystem_primitive),
		T(test_children_inherit_parent_working_directory_by_default),
		T(test_process_working_directory_persists_in_sqlite),
		T(test_fork_passes_only_chosen_roots),
		T(test_child_tool_calls_charge_ancestors),
		T(test_child_runtime_charges_ancestors),
		T(test_kill_tree_kills_subtree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
