/*
 * Unit tests for procmgr: the pure rules (view modes, child budgets,
 * signal transitions, names, working directories), then every lifecycle
 * rule against a real database in a temporary directory — spawn, fork,
 * spawn_child, exec, wait and wake, signals, exit and the outbox, merge,
 * budgets, capabilities, recovery of a dead worker's processes, and the
 * pruning of events, audit rows and process trees.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "procmgr/audit.h"
#include "procmgr/capability.h"
#include "core/clock.h"
#include "core/config.h"
#include "procmgr/objmem.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"
#include "testutil.h"

#define INSTANCE "worker-test"
#define IMAGE "/api/v1/agent/execute/storage/read"
#define HANDLE_RIGHTS "read,materialize,link,diff"
/* A member of an audit record's decision, in SQL. */
#define DECISION(key) "json_extract(decision, '$." key "')"

/* Pure rules. */

static void
test_fork_view_modes(void **state)
{
	(void)state;
	assert_int_equal(procrule_fork_view_mode(FORK_COPY),
	    VIEW_COPY_ON_WRITE);
	assert_int_equal(procrule_fork_view_mode(FORK_SPECULATIVE),
	    VIEW_EPHEMERAL);
	assert_int_equal(procrule_fork_view_mode(FORK_WORKER), VIEW_READ_ONLY);
	assert_int_equal(procrule_fork_view_mode(FORK_RESTRICTED),
	    VIEW_READ_ONLY);
	assert_string_equal(procrule_view_mode_name(VIEW_MUTABLE), "MUTABLE");
	assert_string_equal(procrule_view_mode_name(VIEW_COPY_ON_WRITE),
	    "COPY_ON_WRITE");
	assert_string_equal(procrule_view_mode_name(VIEW_EPHEMERAL),
	    "EPHEMERAL");
	assert_string_equal(procrule_view_mode_name(VIEW_READ_ONLY),
	    "READ_ONLY");
}

static void
test_fork_mode_names(void **state)
{
	enum fork_mode m;

	(void)state;
	assert_int_equal(procrule_fork_mode_parse("copy", &m), 0);
	assert_int_equal(m, FORK_COPY);
	assert_int_equal(procrule_fork_mode_parse("Speculative", &m), 0);
	assert_int_equal(m, FORK_SPECULATIVE);
	assert_int_equal(procrule_fork_mode_parse("WORKER", &m), 0);
	assert_int_equal(m, FORK_WORKER);
	assert_int_equal(procrule_fork_mode_parse("restricted", &m), 0);
	assert_int_equal(m, FORK_RESTRICTED);
	assert_int_equal(procrule_fork_mode_parse("clone", &m), -1);
	assert_int_equal(procrule_fork_mode_parse(NULL, &m), -1);
	assert_string_equal(procrule_fork_mode_name(FORK_COPY), "COPY");
}

static void
test_child_budget(void **state)
{
	struct proc_budget p = { 100, 8, 300 }, c;

	(void)state;
	c = procrule_child_budget(&p, 2, 1, 0);
	assert_int_equal(c.max_tool_calls, 50);
	assert_int_equal(c.max_child_processes, 4);
	assert_true(c.max_runtime_seconds == 300);
	/* Floor division. */
	c = procrule_child_budget(&p, 3, 1, 0);
	assert_int_equal(c.max_tool_calls, 33);
	assert_int_equal(c.max_child_processes, 2);
	/* The minimums win over small quotients. */
	c = procrule_child_budget(&p, 64, 5, 1);
	assert_int_equal(c.max_tool_calls, 5);
	assert_int_equal(c.max_child_processes, 1);
	p.max_tool_calls = 1;
	p.max_child_processes = 1;
	c = procrule_child_budget(&p, 2, 1, 0);
	assert_int_equal(c.max_tool_calls, 1);
	assert_int_equal(c.max_child_processes, 0);
	/* Divisor 1 passes the budget on whole. */
	p.max_tool_calls = 7;
	c = procrule_child_budget(&p, 1, 0, 0);
	assert_int_equal(c.max_tool_calls, 7);
	assert_int_equal(c.max_child_processes, 1);
}

static void
test_signal_transitions(void **state)
{
	static const struct {
		enum proc_status from;
		int pause, resume, kill;
	} table[] = {
		{ PS_CREATED, PS_PAUSED, -1, PS_KILLED },
		{ PS_RUNNABLE, PS_PAUSED, -1, PS_KILLED },
		{ PS_PAUSED, -1, PS_RUNNABLE, PS_KILLED },
		{ PS_WAITING_EVENT, PS_PAUSED, -1, PS_KILLED },
		{ PS_EXITED, -1, -1, -1 },
		{ PS_FAILED, -1, -1, -1 },
		{ PS_KILLED, -1, -1, -1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		assert_int_equal(procrule_signal_transition(table[i].from,
		    PSIG_PAUSE), table[i].pause);
		assert_int_equal(procrule_signal_transition(table[i].from,
		    PSIG_RESUME), table[i].resume);
		assert_int_equal(procrule_signal_transition(table[i].from,
		    PSIG_CANCEL), table[i].kill);
		assert_int_equal(procrule_signal_transition(table[i].from,
		    PSIG_TERMINATE), table[i].kill);
	}
}

static void
test_status_names(void **state)
{
	enum proc_status s, back;
	enum proc_signal sig;

	(void)state;
	for (s = PS_CREATED; s <= PS_KILLED; s++) {
		assert_int_equal(procrule_status_parse(procrule_status_name(s),
		    &back), 0);
		assert_int_equal(back, s);
		assert_int_equal(procrule_status_terminal(s), s >= PS_EXITED);
	}
	assert_string_equal(procrule_status_name(PS_WAITING_EVENT),
	    "WAITING_EVENT");
	assert_int_equal(procrule_status_parse("ZOMBIE", &back), -1);
	assert_int_equal(procrule_signal_parse("terminate", &sig), 0);
	assert_int_equal(sig, PSIG_TERMINATE);
	assert_string_equal(procrule_signal_name(PSIG_PAUSE), "PAUSE");
	assert_int_equal(procrule_signal_parse("KILL", &sig), -1);
}

static void
cwd_ok(const char *path, const char *want)
{
	char out[PM_CWD_MAX], err[256] = "";

	if (procrule_normalize_cwd(path, out, sizeof(out), err,
	    sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	assert_string_equal(out, want);
}

static void
cwd_refused(const char *path, const char *why)
{
	char out[PM_CWD_MAX], err[256] = "";

	assert_int_equal(procrule_normalize_cwd(path, out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, why));
}

static void
test_cwd(void **state)
{
	char out[8], err[128];

	(void)state;
	cwd_ok("", ".");
	cwd_ok(".", ".");
	cwd_ok(NULL, ".");
	cwd_ok("  ", ".");
	cwd_ok("a", "a");
	cwd_ok("a/./b/", "a/b");
	cwd_ok("a//b", "a/b");
	cwd_ok("a\\b\\c", "a/b/c");
	cwd_ok("a/../b", "b");
	cwd_ok("a/b/..", "a");
	cwd_ok("a/..", ".");
	cwd_ok("./a/./", "a");
	cwd_ok(" reports/2026 ", "reports/2026");
	cwd_refused("/x", "must be workspace-relative");
	cwd_refused("/", "must be workspace-relative");
	cwd_refused("C:\\x", "must be workspace-relative");
	cwd_refused("C:x", "must be workspace-relative");
	cwd_refused("c:/x", "must be workspace-relative");
	cwd_refused("\\\\host\\x", "must be workspace-relative");
	cwd_refused("//host/x", "must be workspace-relative");
	cwd_refused("..", "escapes workspace root");
	cwd_refused("../x", "escapes workspace root");
	cwd_refused("a/../../b", "escapes workspace root");
	cwd_refused("a/..\\..", "escapes workspace root");
	/* Found by fuzz_path: results that normalised to something else. */
	cwd_refused("./C:x", "must be workspace-relative");
	cwd_refused("a/../c:/x", "must be workspace-relative");
	cwd_refused("./ a", "white space at an end");
	cwd_refused("b /.", "white space at an end");
	cwd_ok("./C", "C");
	cwd_ok("a/ b /c", "a/ b /c");
	cwd_ok("x/C:y", "x/C:y");
	assert_int_equal(procrule_normalize_cwd("abcdefghij", out, sizeof(out),
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
}

/* The database fixture. */

struct fx {
	char dir[64];
	struct egressd_config cfg;
	struct store st;
	struct procmgr pm;
	int hooks;
	agent_pid hook_pid;
	char hook_image[128];
};

static void
fx_hook(agent_pid pid, const char *image, void *arg)
{
	struct fx *f = arg;

	f->hooks++;
	f->hook_pid = pid;
	snprintf(f->hook_image, sizeof(f->hook_image), "%s", image);
}

static int
fx_open(struct fx *f, double busy_timeout)
{
	if (tu_store_open(&f->st, f->dir, busy_timeout, true) == -1)
		return -1;
	procmgr_init(&f->pm, &f->st, INSTANCE, &f->cfg);
	return procmgr_add_hook(&f->pm, fx_hook, f);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (tu_mkdtemp(f->dir, sizeof(f->dir), "procmgr") == NULL ||
	    config_init_defaults(&f->cfg) == -1 ||
	    fx_open(f, 5.0) == -1) {
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

	procmgr_close(&f->pm);
	store_close(&f->st);
	tu_remove_tree(f->dir);
	config_free(&f->cfg);
	free(f);
	return 0;
}

/* Queries on the fixture's database (printf-style). */
#define q_int(f, ...)	tu_query_int((f)->st.db, __VA_ARGS__)
#define q_text(f, ...)	tu_query_text((f)->st.db, __VA_ARGS__)
#define exec_sql(f, sql)	tu_exec((f)->st.db, (sql))

#define ok(f, call) do {						\
	if ((call) != 0)						\
		fail_msg("%s: %s", #call, (f)->pm.err);			\
} while (0)

static void
refused(struct fx *f, int rc, enum pm_error type, const char *msg)
{
	assert_int_equal(rc, -1);
	if (f->pm.errtype != type)
		fail_msg("errtype %d, want %d: %s", f->pm.errtype, type,
		    f->pm.err);
	if (msg != NULL && strstr(f->pm.err, msg) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", f->pm.err, msg);
}

/*
 * The process manager's own authority (process:spawn, images, the
 * workspace), granted apart from a test's capabilities so that counts of
 * those stay the test's own.
 */
#define AUTHORITY "test.authority"

static void
authorise(struct fx *f, agent_pid pid)
{
	static const struct cap_spec auth[] = {
		{ .resource = PM_RES_SPAWN, .rights = "write",
		    .revocable = 1 },
		{ .resource = PM_RES_IMAGE "*", .rights = "read",
		    .revocable = 1 },
		{ .resource = PM_RES_WORKSPACE "*", .rights = "read",
		    .revocable = 1 },
	};
	size_t i;

	ok(f, store_begin(&f->st));
	for (i = 0; i < sizeof(auth) / sizeof(auth[0]); i++)
		ok(f, cap_grant(&f->pm, pid, &auth[i], AUTHORITY, NULL));
	ok(f, store_commit(&f->st));
}

static agent_pid
spawn(struct fx *f, const struct cap_spec *caps, size_t ncaps)
{
	agent_pid pid = 0;

	ok(f, procmgr_spawn(&f->pm, IMAGE, "{\"key\":\"a\"}", caps, ncaps,
	    "op-1", "work/./dir/", &pid));
	assert_true(pid > 0);
	authorise(f, pid);
	return pid;
}

static agent_pid
fork_child(struct fx *f, agent_pid parent, enum fork_mode mode)
{
	agent_pid child = 0;

	ok(f, procmgr_fork(&f->pm, parent, "{\"sub\":1}", mode, NULL, NULL,
	    0, &child));
	authorise(f, child);
	return child;
}

static enum proc_status
status_of(struct fx *f, agent_pid pid)
{
	struct proc_info pi;
	enum proc_status s;

	ok(f, procmgr_get(&f->pm, pid, &pi));
	s = pi.status;
	procmgr_info_free(&pi);
	return s;
}

static int64_t
live_caps(struct fx *f, agent_pid pid)
{
	return q_int(f, "SELECT count(*) FROM capabilities WHERE subject = "
	    "%lld AND revoked_at IS NULL AND issued_by != '" AUTHORITY "'",
	    (long long)pid);
}

/* Lifecycle. */

static void
test_spawn(void **state)
{
	struct fx *f = *state;
	struct cap_spec caps[] = {
		{ .resource = "storage:reports/*", .rights = "read,write",
		    .delegable = 1, .revocable = 1 },
		{ .resource = "http:example.com", .rights = "request",
		    .constraints = "{\"methods\":[\"GET\"]}", .revocable = 1 },
	};
	struct proc_info pi;
	agent_pid pid = spawn(f, caps, 2);

	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_int_equal(pi.pid, pid);
	assert_int_equal(pi.parent_pid, 0);
	assert_int_equal(pi.root_pid, pid);
	assert_int_equal(pi.status, PS_RUNNABLE);
	assert_string_equal(pi.instance_id, INSTANCE);
	assert_string_equal(pi.operation_id, "op-1");
	assert_string_equal(pi.image, IMAGE);
	assert_string_equal(pi.cwd, "work/dir");
	assert_null(pi.status_message);
	assert_int_equal(pi.budget.max_tool_calls, 100);
	assert_int_equal(pi.budget.max_child_processes, 8);
	assert_true(pi.budget.max_runtime_seconds == 300);
	assert_int_equal(pi.tool_calls, 0);
	assert_true(pi.created_at > 0 && pi.ended_at == 0);
	assert_true(pi.goal_oid > 0 && pi.view_id > 0 && pi.result_oid == 0);
	/* The goal: an immutable GOAL object, the root of a MUTABLE view. */
	assert_string_equal(q_text(f, "SELECT type || ' ' || immutable || "
	    "volatile || ' ' || payload FROM objects WHERE oid = %lld",
	    (long long)pi.goal_oid), "GOAL 10 {\"key\":\"a\"}");
	assert_string_equal(q_text(f, "SELECT mode || ' ' || roots FROM views "
	    "WHERE view_id = %lld AND pid = %lld", (long long)pi.view_id,
	    (long long)pid), "MUTABLE [1]");
	assert_int_equal(live_caps(f, pid), 2);
	assert_string_equal(q_text(f, "SELECT issued_by FROM capabilities "
	    "WHERE subject = %lld LIMIT 1", (long long)pid), "process.spawn");
	assert_string_equal(q_text(f, "SELECT constraints FROM capabilities "
	    "WHERE resource = 'http:example.com'"), "{\"methods\":[\"GET\"]}");
	/* One event, one audit record, and the hook after commit. */
	assert_string_equal(q_text(f, "SELECT type || ' ' || source || ' ' || "
	    "pid FROM events"), "process.created runtime 1");
	assert_string_equal(q_text(f, "SELECT actor || ' ' || action || ' ' || "
	    "target || ' ' || output_refs FROM audit"),
	    "runtime process.spawn process:1 [1]");
	assert_int_equal(q_int(f, "SELECT json_valid(decision) FROM audit"),
	    1);
	assert_int_equal(f->hooks, 1);
	assert_int_equal(f->hook_pid, pid);
	assert_string_equal(f->hook_image, IMAGE);
	procmgr_info_free(&pi);
}

static void
test_spawn_refused(void **state)
{
	struct fx *f = *state;
	struct cap_spec bad = { .resource = "storage:x", .rights = "fly" };
	agent_pid pid = 0;

	refused(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, NULL, "../up",
	    &pid), PM_E_INVALID, "escapes workspace root");
	refused(f, procmgr_spawn(&f->pm, "", NULL, NULL, 0, NULL, NULL,
	    &pid), PM_E_INVALID, "image");
	refused(f, procmgr_spawn(&f->pm, IMAGE, NULL, &bad, 1, NULL, NULL,
	    &pid), PM_E_INVALID, "unknown right \"fly\"");
	/* Nothing was left behind by the refused calls. */
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM objects"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 0);
	assert_int_equal(f->hooks, 0);
	/* No goal is an empty one. */
	ok(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, NULL, NULL, &pid));
	assert_string_equal(q_text(f, "SELECT payload FROM objects"), "{}");
	assert_string_equal(q_text(f, "SELECT cwd FROM processes"), ".");
}

static void
check_fork(struct fx *f, enum fork_mode mode, const char *view_mode)
{
	agent_pid parent = spawn(f, NULL, 0), child;
	struct proc_info p, c;

	child = fork_child(f, parent, mode);
	ok(f, procmgr_get(&f->pm, parent, &p));
	ok(f, procmgr_get(&f->pm, child, &c));
	assert_int_equal(c.parent_pid, parent);
	assert_int_equal(c.root_pid, parent);
	assert_int_equal(c.status, PS_RUNNABLE);
	assert_string_equal(c.image, IMAGE);
	assert_string_equal(c.cwd, "work/dir");
	assert_string_equal(c.instance_id, INSTANCE);
	assert_null(c.operation_id);
	assert_int_equal(c.budget.max_tool_calls, 50);
	assert_int_equal(c.budget.max_child_processes, 4);
	assert_true(c.budget.max_runtime_seconds == 300);
	assert_int_equal(p.child_processes, 1);
	/* The parent's roots passed on, then the child's own goal. */
	assert_string_equal(q_text(f, "SELECT mode FROM views WHERE "
	    "view_id = %lld", (long long)c.view_id), view_mode);
	assert_int_equal(q_int(f, "SELECT source_view FROM views WHERE "
	    "view_id = %lld", (long long)c.view_id), p.view_id);
	assert_int_equal(q_int(f, "SELECT json_array_length(roots) FROM views "
	    "WHERE view_id = %lld", (long long)c.view_id), 2);
	assert_int_equal(q_int(f, "SELECT json_extract(roots, '$[0]') "
	    "FROM views WHERE view_id = %lld", (long long)c.view_id),
	    p.goal_oid);
	assert_int_equal(q_int(f, "SELECT json_extract(roots, '$[1]') "
	    "FROM views WHERE view_id = %lld", (long long)c.view_id),
	    c.goal_oid);
	assert_string_equal(q_text(f, "SELECT type || ' ' || action || ' ' || "
	    "actor FROM events JOIN audit USING (id) ORDER BY id DESC"),
	    "process.forked process.fork 1");
	assert_int_equal(f->hook_pid, child);
	procmgr_info_free(&p);
	procmgr_info_free(&c);
}

static void
test_fork_copy(void **state)
{
	check_fork(*state, FORK_COPY, "COPY_ON_WRITE");
}

static void
test_fork_speculative(void **state)
{
	check_fork(*state, FORK_SPECULATIVE, "EPHEMERAL");
}

static void
test_fork_worker(void **state)
{
	check_fork(*state, FORK_WORKER, "READ_ONLY");
}

static void
test_fork_restricted(void **state)
{
	check_fork(*state, FORK_RESTRICTED, "READ_ONLY");
}

static void
test_spawn_child(void **state)
{
	struct fx *f = *state;
	agent_pid parent = spawn(f, NULL, 0), child = 0, grandchild = 0;
	struct proc_info c, g;

	ok(f, procmgr_spawn_child(&f->pm, parent, "{\"fresh\":true}",
	    "/other", NULL, 0, &child));
	ok(f, procmgr_get(&f->pm, child, &c));
	assert_string_equal(c.image, "/other");
	assert_int_equal(c.budget.max_tool_calls, 50);
	assert_int_equal(c.budget.max_child_processes, 4);
	/* A fresh MUTABLE view rooted at the child's goal only. */
	assert_string_equal(q_text(f, "SELECT mode || ' ' || roots FROM views "
	    "WHERE view_id = %lld", (long long)c.view_id), "MUTABLE [2]");
	assert_int_equal(c.goal_oid, 2);
	assert_string_equal(q_text(f, "SELECT action FROM audit ORDER BY id "
	    "DESC"), "process.spawn_child");
	assert_int_equal(f->hooks, 2);
	/* Grandchildren halve again and keep the root. */
	authorise(f, child);
	ok(f, procmgr_spawn_child(&f->pm, child, NULL, NULL, NULL, 0,
	    &grandchild));
	ok(f, procmgr_get(&f->pm, grandchild, &g));
	assert_int_equal(g.root_pid, parent);
	assert_string_equal(g.image, "/other");
	assert_int_equal(g.budget.max_tool_calls, 25);
	assert_int_equal(g.budget.max_child_processes, 2);
	procmgr_info_free(&c);
	procmgr_info_free(&g);
}

static void
test_child_budget_exhausted(void **state)
{
	struct fx *f = *state;
	agent_pid parent, child;
	int64_t before;

	f->pm.defaults.max_child_processes = 2;
	parent = spawn(f, NULL, 0);
	fork_child(f, parent, FORK_WORKER);
	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0,
	    &child));
	before = q_int(f, "SELECT count(*) FROM processes");
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_COPY, NULL, NULL,
	    0, &child), PM_E_LIMIT, NULL);
	assert_string_equal(f->pm.err, "process 1 exhausted its child process "
	    "budget: 2/2");
	refused(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0,
	    &child), PM_E_LIMIT, "2/2");
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), before);
	/* A child's budget is 2 / 2 = 1 here. */
	authorise(f, child);
	ok(f, procmgr_fork(&f->pm, child, NULL, FORK_COPY, NULL, NULL, 0,
	    &parent));
	refused(f, procmgr_fork(&f->pm, child, NULL, FORK_COPY, NULL, NULL, 0,
	    &parent), PM_E_LIMIT, "1/1");
}

static void
test_tool_call_budget(void **state)
{
	struct fx *f = *state;
	agent_pid pid;

	f->pm.defaults.max_tool_calls = 2;
	pid = spawn(f, NULL, 0);
	ok(f, procmgr_charge_tool_call(&f->pm, pid));
	ok(f, procmgr_charge_tool_call(&f->pm, pid));
	refused(f, procmgr_charge_tool_call(&f->pm, pid), PM_E_LIMIT, NULL);
	assert_string_equal(f->pm.err, "tool call budget exhausted: 2/2");
	assert_int_equal(q_int(f, "SELECT tool_calls FROM processes"), 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit WHERE action = "
	    "'process.tool_call'"), 2);
	refused(f, procmgr_charge_tool_call(&f->pm, 99), PM_E_NOT_FOUND,
	    "process 99 not found");
}

static void
test_inherit(void **state)
{
	struct fx *f = *state;
	double now = clock_wall();
	struct cap_spec caps[] = {
		{ .resource = "storage:reports/*", .rights = "read,write",
		    .delegable = 1, .revocable = 1 },
		{ .resource = "http:example.com", .rights = "request",
		    .revocable = 1 },
		{ .resource = "storage:old/*", .rights = "read",
		    .delegable = 1, .revocable = 1, .expires_at = now - 10 },
		{ .resource = "command:ls", .rights = "execute",
		    .delegable = 1, .revocable = 1 },
	};
	struct cap_spec want_ok = { .resource = "storage:reports/2026/*",
	    .rights = "read", .revocable = 1 };
	struct cap_spec nondelegable = { .resource = "http:example.com",
	    .rights = "request" };
	struct cap_spec expired = { .resource = "storage:old/a",
	    .rights = "read" };
	struct cap_spec revoked = { .resource = "command:ls",
	    .rights = "execute" };
	struct cap_spec missing = { .resource = "storage:reports/a",
	    .rights = "read,delete" };
	agent_pid parent = spawn(f, caps, 4), child = 0;
	int64_t procs, cap_ls;

	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL, &want_ok,
	    1, &child));
	assert_string_equal(q_text(f, "SELECT resource || ' ' || rights || "
	    "' ' || issued_by FROM capabilities WHERE subject = %lld",
	    (long long)child), "storage:reports/2026/* read process.fork:1");
	cap_ls = q_int(f, "SELECT cap_id FROM capabilities WHERE resource = "
	    "'command:ls'");
	ok(f, store_begin(&f->st));
	ok(f, cap_revoke(&f->pm, cap_ls, "test", "no more"));
	ok(f, store_commit(&f->st));
	procs = q_int(f, "SELECT count(*) FROM processes");
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL,
	    &nondelegable, 1, &child), PM_E_DENIED, "1 cannot delegate "
	    "request on http:example.com");
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL,
	    &expired, 1, &child), PM_E_DENIED, "cannot delegate read on "
	    "storage:old/a");
	refused(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, &revoked,
	    1, &child), PM_E_DENIED, "cannot delegate execute on command:ls");
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL,
	    &missing, 1, &child), PM_E_DENIED, "rights read,delete are not "
	    "a subset of read,write");
	/* Nothing of the refused children was created or counted. */
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), procs);
	assert_int_equal(q_int(f, "SELECT child_processes FROM processes "
	    "WHERE pid = %lld", (long long)parent), 1);
}

static void
test_exec_shrink(void **state)
{
	struct fx *f = *state;
	struct cap_spec caps[] = {
		{ .resource = "storage:reports/*", .rights = "read",
		    .revocable = 1 },
		{ .resource = "object:42", .rights = "read", .revocable = 1 },
		{ .resource = "object_namespace:1", .rights = "read,write",
		    .revocable = 1 },
		{ .resource = "object_namespace:2", .rights = "read",
		    .revocable = 1 },
		{ .resource = "http:example.com", .rights = "request",
		    .delegable = 1, .revocable = 1 },
	};
	agent_pid pid = spawn(f, caps, 5);

	ok(f, procmgr_exec(&f->pm, pid, "/next", 1, 1));
	assert_int_equal(live_caps(f, pid), 5);
	ok(f, procmgr_exec(&f->pm, pid, "/after", 1, 0));
	assert_int_equal(live_caps(f, pid), 2);
	assert_string_equal(q_text(f, "SELECT group_concat(resource, ' ') "
	    "FROM (SELECT resource FROM capabilities WHERE subject = 1 AND "
	    "revoked_at IS NULL ORDER BY resource)"),
	    "object:42 object_namespace:1");
	assert_string_equal(q_text(f, "SELECT revoked_by || ' ' || "
	    "revoke_reason FROM capabilities WHERE resource = "
	    "'http:example.com'"), "process.exec exec capability shrink");
	assert_string_equal(q_text(f, "SELECT image FROM processes"),
	    "/after");
	assert_string_equal(q_text(f, "SELECT type || ' ' || action FROM "
	    "events JOIN audit USING (id) ORDER BY id DESC"),
	    "process.exec process.exec");
}

static void
test_exec_not_revocable(void **state)
{
	struct fx *f = *state;
	struct cap_spec caps[] = {
		{ .resource = "storage:pinned", .rights = "read" },
		{ .resource = "storage:loose", .rights = "read",
		    .revocable = 1 },
	};
	agent_pid pid = spawn(f, caps, 2);

	refused(f, procmgr_exec(&f->pm, pid, "/next", 1, 0), PM_E_DENIED,
	    "is not revocable");
	assert_int_equal(live_caps(f, pid), 2);
	assert_string_equal(q_text(f, "SELECT image FROM processes"), IMAGE);
	ok(f, procmgr_exec(&f->pm, pid, "/next", 1, 1));
}

static void
test_exec_memory(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0), child;
	struct proc_info pi;

	ok(f, procmgr_exec(&f->pm, pid, "/kept", 1, 1));
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_int_equal(pi.view_id, 1);
	procmgr_info_free(&pi);
	ok(f, procmgr_exec(&f->pm, pid, "/dropped", 0, 1));
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_int_equal(pi.view_id, 0);
	assert_string_equal(pi.image, "/dropped");
	procmgr_info_free(&pi);
	/* Without memory a fork passes on nothing but the child's goal. */
	child = fork_child(f, pid, FORK_COPY);
	ok(f, procmgr_get(&f->pm, child, &pi));
	assert_string_equal(q_text(f, "SELECT roots FROM views WHERE "
	    "view_id = %lld", (long long)pi.view_id), "[2]");
	procmgr_info_free(&pi);
	refused(f, procmgr_exec(&f->pm, pid, "", 1, 1), PM_E_INVALID, NULL);
}

static void
test_wait_and_wake(void **state)
{
	struct fx *f = *state;
	agent_pid parent = spawn(f, NULL, 0), child, other;
	struct proc_wait w;
	struct proc_info pi;
	char want[128];
	int64_t roid;

	child = fork_child(f, parent, FORK_COPY);
	other = fork_child(f, parent, FORK_COPY);
	assert_int_equal(procmgr_wait(&f->pm, parent, child, -1, &w), 0);
	ok(f, procmgr_get(&f->pm, parent, &pi));
	assert_int_equal(pi.status, PS_WAITING_EVENT);
	assert_string_equal(pi.status_message, "waiting for 2");
	procmgr_info_free(&pi);
	/* Another child's end does not wake it. */
	ok(f, procmgr_exit(&f->pm, other, "{}", 0, NULL, NULL));
	assert_int_equal(status_of(f, parent), PS_WAITING_EVENT);
	/* Its own child's end does, with an audit record. */
	ok(f, procmgr_exit(&f->pm, child, "{\"answer\":42}", 0, NULL, NULL));
	ok(f, procmgr_get(&f->pm, parent, &pi));
	assert_int_equal(pi.status, PS_RUNNABLE);
	assert_null(pi.status_message);
	procmgr_info_free(&pi);
	assert_string_equal(q_text(f, "SELECT actor || ' ' || target || ' ' || "
	    "decision FROM audit WHERE action = 'process.wait_wake'"),
	    "process process:1 {\"child\":2,\"child_status\":\"EXITED\"}");
	/* wait now returns the result and a read handle on it. */
	roid = q_int(f, "SELECT result_oid FROM processes WHERE pid = 2");
	assert_int_equal(procmgr_wait(&f->pm, parent, child, 0, &w), 1);
	assert_int_equal(w.status, PS_EXITED);
	assert_int_equal(w.result_oid, roid);
	assert_true(w.handle_cap > 0);
	snprintf(want, sizeof(want), "1 object:%lld " HANDLE_RIGHTS,
	    (long long)roid);
	assert_string_equal(q_text(f, "SELECT subject || ' ' || resource || "
	    "' ' || rights FROM capabilities WHERE cap_id = %lld",
	    (long long)w.handle_cap), want);
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE view_id = 1 AND value = %lld", (long long)roid), 1);
	/* Waiting again gives the same handle, not a second one. */
	assert_int_equal(procmgr_wait(&f->pm, parent, child, 0, &w), 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM capabilities WHERE "
	    "issued_by != '" AUTHORITY "'"), 1);
	assert_int_equal(q_int(f, "SELECT json_array_length(roots) FROM views "
	    "WHERE view_id = 1"), 2);
	refused(f, procmgr_wait(&f->pm, child, parent, -1, &w), PM_E_INVALID,
	    NULL);
	refused(f, procmgr_wait(&f->pm, other, parent, -1, &w), PM_E_INVALID,
	    NULL);
}

static void
test_wait_timeout(void **state)
{
	struct fx *f = *state;
	agent_pid parent = spawn(f, NULL, 0), child, stranger;
	struct proc_wait w;
	struct proc_info pi;

	child = fork_child(f, parent, FORK_WORKER);
	stranger = spawn(f, NULL, 0);
	refused(f, procmgr_wait(&f->pm, parent, child, 0, &w), PM_E_TIMEOUT,
	    "child still running: 2");
	/* The waiting state is recorded all the same. */
	ok(f, procmgr_get(&f->pm, parent, &pi));
	assert_int_equal(pi.status, PS_WAITING_EVENT);
	assert_string_equal(pi.status_message, "waiting for 2");
	procmgr_info_free(&pi);
	refused(f, procmgr_wait(&f->pm, parent, stranger, 0, &w),
	    PM_E_INVALID, "3 is not a child of 1");
	refused(f, procmgr_wait(&f->pm, parent, 77, 0, &w), PM_E_NOT_FOUND,
	    NULL);
	/* A paused parent cannot start waiting. */
	ok(f, procmgr_signal(&f->pm, parent, PSIG_PAUSE, NULL));
	refused(f, procmgr_wait(&f->pm, parent, child, -1, &w), PM_E_INVALID,
	    "PAUSED");
}

static void
test_terminated_refused(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0), child, out;
	struct proc_wait w;
	struct proc_info pi;
	int merged;

	child = fork_child(f, pid, FORK_COPY);
	ok(f, procmgr_exit(&f->pm, child, "{}", 0, NULL, NULL));
	ok(f, procmgr_exit(&f->pm, pid, "{}", 0, NULL, NULL));
	refused(f, procmgr_fork(&f->pm, pid, NULL, FORK_COPY, NULL, NULL, 0,
	    &out), PM_E_INVALID, "cannot fork process 1: it has ended "
	    "(EXITED)");
	refused(f, procmgr_spawn_child(&f->pm, pid, NULL, NULL, NULL, 0, &out),
	    PM_E_INVALID, "has ended");
	refused(f, procmgr_exec(&f->pm, pid, "/x", 1, 1), PM_E_INVALID,
	    "has ended");
	refused(f, procmgr_wait(&f->pm, pid, child, 0, &w), PM_E_INVALID,
	    "has ended");
	refused(f, procmgr_signal(&f->pm, pid, PSIG_PAUSE, NULL),
	    PM_E_INVALID, "has ended");
	refused(f, procmgr_signal_child(&f->pm, pid, child, PSIG_TERMINATE,
	    NULL), PM_E_INVALID, "has ended");
	refused(f, procmgr_exit(&f->pm, pid, "{}", 0, NULL, NULL),
	    PM_E_INVALID, "has ended");
	refused(f, procmgr_exit(&f->pm, child, NULL, 1, "again", NULL),
	    PM_E_INVALID, "has ended");
	refused(f, procmgr_kill(&f->pm, pid, "stop", NULL), PM_E_INVALID,
	    "has ended");
	refused(f, procmgr_merge_child_memory(&f->pm, pid, child, &merged),
	    PM_E_INVALID, "has ended");
	refused(f, procmgr_chdir(&f->pm, pid, "a"), PM_E_INVALID,
	    "has ended");
	refused(f, procmgr_charge_tool_call(&f->pm, pid), PM_E_INVALID,
	    "has ended");
	refused(f, procmgr_check(&f->pm, pid, "storage:x", "read"),
	    PM_E_INVALID, "has ended");
	/* Reading still works. */
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_int_equal(pi.status, PS_EXITED);
	assert_true(pi.ended_at > 0);
	procmgr_info_free(&pi);
	assert_int_equal(status_of(f, child), PS_EXITED);
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit"), 4);
}

static void
count_child(const struct proc_info *pi, void *arg)
{
	agent_pid *seen = arg;

	assert_string_equal(pi->image, IMAGE);
	assert_int_equal(pi->parent_pid, 1);
	seen[++seen[0]] = pi->pid;
}

static void
test_list_children(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0), seen[8];
	agent_pid a, b, c;

	a = fork_child(f, pid, FORK_COPY);
	b = fork_child(f, pid, FORK_WORKER);
	c = fork_child(f, pid, FORK_SPECULATIVE);
	fork_child(f, a, FORK_COPY);
	ok(f, procmgr_exit(&f->pm, b, NULL, 0, NULL, NULL));
	memset(seen, 0, sizeof(seen));
	ok(f, procmgr_list_children(&f->pm, pid, 1, count_child, seen));
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], a);
	assert_int_equal(seen[2], b);
	assert_int_equal(seen[3], c);
	memset(seen, 0, sizeof(seen));
	ok(f, procmgr_list_children(&f->pm, pid, 0, count_child, seen));
	assert_int_equal(seen[0], 2);
	assert_int_equal(seen[1], a);
	assert_int_equal(seen[2], c);
	/* Also on a process that has ended. */
	ok(f, procmgr_exit(&f->pm, pid, NULL, 0, NULL, NULL));
	memset(seen, 0, sizeof(seen));
	ok(f, procmgr_list_children(&f->pm, pid, 1, count_child, seen));
	assert_int_equal(seen[0], 3);
	refused(f, procmgr_list_children(&f->pm, 99, 1, count_child, seen),
	    PM_E_NOT_FOUND, NULL);
}

static void
test_signals(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0);
	struct proc_info pi;

	ok(f, procmgr_signal(&f->pm, pid, PSIG_PAUSE, "hold"));
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_int_equal(pi.status, PS_PAUSED);
	assert_string_equal(pi.status_message, "hold");
	assert_true(pi.ended_at == 0);
	procmgr_info_free(&pi);
	refused(f, procmgr_signal(&f->pm, pid, PSIG_PAUSE, NULL),
	    PM_E_INVALID, "signal PAUSE does not apply to process 1 (PAUSED)");
	ok(f, procmgr_signal(&f->pm, pid, PSIG_RESUME, NULL));
	assert_int_equal(status_of(f, pid), PS_RUNNABLE);
	refused(f, procmgr_signal(&f->pm, pid, PSIG_RESUME, NULL),
	    PM_E_INVALID, "does not apply");
	ok(f, procmgr_signal(&f->pm, pid, PSIG_CANCEL, "operator"));
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_int_equal(pi.status, PS_KILLED);
	assert_string_equal(pi.status_message, "operator");
	assert_true(pi.ended_at > 0);
	procmgr_info_free(&pi);
	refused(f, procmgr_signal(&f->pm, pid, PSIG_TERMINATE, NULL),
	    PM_E_INVALID, "has ended (KILLED)");
	refused(f, procmgr_signal(&f->pm, 42, PSIG_PAUSE, NULL),
	    PM_E_NOT_FOUND, NULL);
	assert_string_equal(q_text(f, "SELECT group_concat(actor || ':' || "
	    "action, ' ') FROM audit WHERE action LIKE '%%signal%%'"),
	    "runtime:process.signal runtime:process.signal "
	    "runtime:process.signal");
	assert_string_equal(q_text(f, "SELECT payload FROM events WHERE type = "
	    "'process.signal' ORDER BY id DESC"),
	    "{\"signal\":\"CANCEL\",\"reason\":\"operator\"}");
}

static void
test_signal_child(void **state)
{
	struct fx *f = *state;
	agent_pid parent = spawn(f, NULL, 0), child, other, stranger;
	struct proc_wait w;

	child = fork_child(f, parent, FORK_COPY);
	other = fork_child(f, parent, FORK_COPY);
	stranger = spawn(f, NULL, 0);
	refused(f, procmgr_signal_child(&f->pm, parent, stranger, PSIG_PAUSE,
	    NULL), PM_E_INVALID, "4 is not a child of 1");
	refused(f, procmgr_signal_child(&f->pm, child, other, PSIG_PAUSE,
	    NULL), PM_E_INVALID, "not a child");
	assert_int_equal(status_of(f, stranger), PS_RUNNABLE);
	ok(f, procmgr_signal_child(&f->pm, parent, other, PSIG_PAUSE, NULL));
	assert_int_equal(status_of(f, other), PS_PAUSED);
	/* A kill wakes the parent waiting for that child. */
	assert_int_equal(procmgr_wait(&f->pm, parent, child, -1, &w), 0);
	ok(f, procmgr_signal_child(&f->pm, parent, child, PSIG_TERMINATE,
	    "enough"));
	assert_int_equal(status_of(f, child), PS_KILLED);
	assert_int_equal(status_of(f, parent), PS_RUNNABLE);
	assert_string_equal(q_text(f, "SELECT actor FROM audit WHERE action = "
	    "'process.signal_child' ORDER BY id DESC"), "1");
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit WHERE action = "
	    "'process.wait_wake'"), 1);
	/* A killed child has no result: wait gives no handle. */
	assert_int_equal(procmgr_wait(&f->pm, parent, child, 0, &w), 1);
	assert_int_equal(w.status, PS_KILLED);
	assert_int_equal(w.result_oid, 0);
	assert_int_equal(w.handle_cap, 0);
}

static void
test_merge(void **state)
{
	struct fx *f = *state;
	agent_pid parent = spawn(f, NULL, 0), child, grandchild = 0;
	struct proc_info c;
	int64_t data;
	int merged = -1;

	ok(f, procmgr_spawn_child(&f->pm, parent, NULL, NULL, NULL, 0,
	    &child));
	refused(f, procmgr_merge_child_memory(&f->pm, parent, child, &merged),
	    PM_E_INVALID, "cannot merge running child process 2");
	ok(f, procmgr_get(&f->pm, child, &c));
	ok(f, store_begin(&f->st));
	ok(f, objmem_create(&f->pm, child, OBJ_DATA, "[1,2]", 0, 0, &data));
	ok(f, objmem_view_add(&f->pm, c.view_id, data));
	ok(f, objmem_view_add(&f->pm, c.view_id, data));
	ok(f, store_commit(&f->st));
	assert_string_equal(q_text(f, "SELECT roots FROM views WHERE "
	    "view_id = %lld", (long long)c.view_id), "[2,3]");
	ok(f, procmgr_exit(&f->pm, child, "{\"done\":1}", 0, NULL, NULL));
	ok(f, procmgr_merge_child_memory(&f->pm, parent, child, &merged));
	assert_int_equal(merged, 2);
	assert_string_equal(q_text(f, "SELECT roots FROM views WHERE "
	    "view_id = 1"), "[1,2,3]");
	/* Merged objects are the parent's to read, as a waited-for result. */
	assert_string_equal(q_text(f, "SELECT group_concat(resource || ' ' || "
	    "rights || ' ' || issued_by, ';') FROM capabilities WHERE subject "
	    "= %lld AND resource LIKE 'object:%%'", (long long)parent),
	    "object:2 read,materialize,link,diff process.merge_child_memory:2;"
	    "object:3 read,materialize,link,diff process.merge_child_memory:2");
	assert_string_equal(q_text(f, "SELECT output_refs FROM audit WHERE "
	    "action = 'process.merge_child_memory'"), "[2,3]");
	ok(f, procmgr_merge_child_memory(&f->pm, parent, child, &merged));
	assert_int_equal(merged, 0);
	assert_string_equal(q_text(f, "SELECT decision FROM audit WHERE action "
	    "= 'process.merge_child_memory' ORDER BY id DESC"),
	    "{\"child\":2,\"merged\":0}");
	/* Only one's own children. */
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_COPY, NULL, NULL, 0,
	    &grandchild));
	refused(f, procmgr_merge_child_memory(&f->pm, child, grandchild,
	    &merged), PM_E_INVALID, NULL);
	procmgr_info_free(&c);
}

static void
test_exit_release(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0);
	int64_t scratch, kept, roid;
	struct proc_info pi;
	char *payload;

	ok(f, store_begin(&f->st));
	ok(f, objmem_create(&f->pm, pid, OBJ_DATA, "{\"tmp\":1}", 0, 1,
	    &scratch));
	ok(f, objmem_create(&f->pm, pid, OBJ_DATA, "{\"tmp\":2}", 0, 1,
	    &scratch));
	ok(f, objmem_create(&f->pm, pid, OBJ_DATA, "{\"keep\":1}", 0, 0,
	    &kept));
	ok(f, store_commit(&f->st));
	assert_int_equal(q_int(f, "SELECT count(*) FROM objects"), 4);
	ok(f, procmgr_exit(&f->pm, pid, "{\"size\":3}", 0, NULL, NULL));
	ok(f, procmgr_get(&f->pm, pid, &pi));
	roid = pi.result_oid;
	assert_int_equal(pi.status, PS_EXITED);
	assert_true(pi.ended_at > 0 && roid > 0);
	procmgr_info_free(&pi);
	/* Volatile objects gone; the goal, kept data and result stay. */
	assert_string_equal(q_text(f, "SELECT group_concat(type, ' ') FROM "
	    "(SELECT type FROM objects ORDER BY oid)"), "GOAL DATA RESULT");
	assert_string_equal(q_text(f, "SELECT type || ' ' || volatile FROM "
	    "objects WHERE oid = %lld", (long long)roid), "RESULT 0");
	ok(f, objmem_read(&f->pm, roid, &payload));
	assert_string_equal(payload, "{\"size\":3}");
	free(payload);
	refused(f, objmem_read(&f->pm, scratch, &payload), PM_E_NOT_FOUND,
	    NULL);
	assert_string_equal(q_text(f, "SELECT type || ' ' || source FROM "
	    "events ORDER BY id DESC"), "process.exited 1");
	assert_string_equal(q_text(f, "SELECT output_refs FROM audit WHERE "
	    "action = 'process.exit'"), "[5]");
}

static void
test_exit_failed(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0);
	struct proc_info pi;

	ok(f, procmgr_exit(&f->pm, pid, NULL, 1, "capability denied", NULL));
	ok(f, procmgr_get(&f->pm, pid, &pi));
	assert_int_equal(pi.status, PS_FAILED);
	assert_string_equal(pi.status_message, "capability denied");
	assert_int_equal(pi.result_oid, 0);
	procmgr_info_free(&pi);
	assert_string_equal(q_text(f, "SELECT decision FROM audit WHERE "
	    "action = 'process.exit'"),
	    "{\"status\":\"FAILED\",\"message\":\"capability denied\"}");
}

static void
test_exit_outbox(void **state)
{
	struct fx *f = *state;
	struct outbox_entry ob = { .operation_id = "op-1",
	    .result = "{\"ok\":true}", .next_attempt = 123.5 };
	struct outbox_entry bad = { .operation_id = NULL, .result = "{}" };
	agent_pid pid = spawn(f, NULL, 0), other = spawn(f, NULL, 0);

	/* An exit that fails in its outbox step leaves nothing changed. */
	refused(f, procmgr_exit(&f->pm, other, "{\"x\":1}", 0, NULL, &bad),
	    PM_E_INVALID, "outbox");
	assert_int_equal(status_of(f, other), PS_RUNNABLE);
	assert_int_equal(q_int(f, "SELECT count(*) FROM objects WHERE type = "
	    "'RESULT'"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit WHERE action = "
	    "'process.exit'"), 0);
	ok(f, procmgr_exit(&f->pm, pid, "{\"ok\":true}", 0, NULL, &ob));
	assert_string_equal(q_text(f, "SELECT operation_id || ' ' || result "
	    "|| ' ' || instance_id || ' ' || attempts || ' ' || next_attempt "
	    "|| ' ' || pid FROM outbox"),
	    "op-1 {\"ok\":true} " INSTANCE " 0 123.5 1");
	/* kill queues its entry too. */
	ob.operation_id = "op-2";
	ob.result = "{\"error\":\"runtime\"}";
	ok(f, procmgr_kill(&f->pm, other, "runtime budget", &ob));
	assert_int_equal(status_of(f, other), PS_KILLED);
	assert_string_equal(q_text(f, "SELECT pid FROM outbox WHERE "
	    "operation_id = 'op-2'"), "2");
	assert_string_equal(q_text(f, "SELECT actor || ' ' || action FROM "
	    "audit ORDER BY id DESC"), "runtime process.kill");
	assert_true(q_int(f, "SELECT ended_at IS NOT NULL FROM processes "
	    "WHERE pid = 2") == 1);
}

static void
test_fail_worker(void **state)
{
	struct fx *f = *state;
	struct outbox_entry ob = { .operation_id = "op-queued",
	    .result = "{\"earlier\":1}" };
	agent_pid root_op = 0, root_none = 0, child, done = 0, queued = 0;
	agent_pid elsewhere = 0;
	struct procmgr other;

	ok(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, "op-a", NULL,
	    &root_op));
	authorise(f, root_op);
	ok(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, NULL, NULL,
	    &root_none));
	child = fork_child(f, root_op, FORK_COPY);
	ok(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, "op-done", NULL,
	    &done));
	ok(f, procmgr_exit(&f->pm, done, "{}", 0, NULL, NULL));
	ok(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, "op-queued", NULL,
	    &queued));
	/* A result already queued (say, by a kill) stays as it was. */
	ok(f, store_outbox_put(&f->st, "op-queued", ob.result, INSTANCE, 1));
	procmgr_init(&other, &f->st, "worker-other", &f->cfg);
	ok(f, procmgr_spawn(&other, IMAGE, NULL, NULL, 0, "op-b", NULL,
	    &elsewhere));
	procmgr_close(&other);

	assert_int_equal(procmgr_fail_worker(&f->pm, INSTANCE,
	    "worker died: signal 9", 50.0), 4);
	assert_int_equal(status_of(f, root_op), PS_FAILED);
	assert_int_equal(status_of(f, root_none), PS_FAILED);
	assert_int_equal(status_of(f, child), PS_FAILED);
	assert_int_equal(status_of(f, queued), PS_FAILED);
	assert_int_equal(status_of(f, done), PS_EXITED);
	assert_int_equal(status_of(f, elsewhere), PS_RUNNABLE);
	assert_string_equal(q_text(f, "SELECT status_message FROM processes "
	    "WHERE pid = %lld", (long long)child), "worker died: signal 9");
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes WHERE "
	    "ended_at IS NULL"), 1);
	/* Error results for roots with an operation, and only for them. */
	assert_int_equal(q_int(f, "SELECT count(*) FROM outbox"), 2);
	assert_string_equal(q_text(f, "SELECT result || ' ' || next_attempt "
	    "|| ' ' || pid FROM outbox WHERE operation_id = 'op-a'"),
	    "{\"error\":\"worker died: signal 9\",\"error_type\":\"internal\","
	    "\"pid\":1} 50.0 1");
	assert_string_equal(q_text(f, "SELECT result FROM outbox WHERE "
	    "operation_id = 'op-queued'"), "{\"earlier\":1}");
	assert_int_equal(q_int(f, "SELECT count(*) FROM events WHERE type = "
	    "'process.failed'"), 4);
	assert_string_equal(q_text(f, "SELECT target FROM audit WHERE action "
	    "= 'process.fail_worker'"), "worker:" INSTANCE);
	/* Nothing left to fail. */
	assert_int_equal(procmgr_fail_worker(&f->pm, INSTANCE, "again", 0), 0);
}

static void
test_capability_policy(void **state)
{
	struct fx *f = *state;
	double now = clock_wall();
	struct cap_spec caps[] = {
		{ .resource = "storage:soon/*", .rights = "read",
		    .delegable = 1, .revocable = 1, .expires_at = now + 100 },
		{ .resource = "storage:gone/*", .rights = "read",
		    .delegable = 1, .revocable = 1, .expires_at = now - 1 },
		{ .resource = "storage:*", .rights = "read",
		    .revocable = 1 },
		{ .resource = "http:example.com", .rights = "request" },
	};
	agent_pid pid = spawn(f, caps, 4);
	enum cap_policy p;
	int64_t cap;

	ok(f, cap_policy(&f->pm, pid, "storage:soon/a", "read", now, &p));
	assert_int_equal(p, CAP_ALWAYS_ALLOW);
	/* Past its expiry only the non-delegable catch-all applies. */
	ok(f, cap_policy(&f->pm, pid, "storage:soon/a", "read", now + 100,
	    &p));
	assert_int_equal(p, CAP_ALLOW);
	ok(f, cap_policy(&f->pm, pid, "storage:gone/a", "read", now, &p));
	assert_int_equal(p, CAP_ALLOW);
	ok(f, cap_policy(&f->pm, pid, "storage:gone/a", "write", now, &p));
	assert_int_equal(p, CAP_DENY);
	ok(f, cap_policy(&f->pm, pid, "http:example.org", "request", now,
	    &p));
	assert_int_equal(p, CAP_DENY);
	/* Revoking: refused for a non-revocable one. */
	cap = q_int(f, "SELECT cap_id FROM capabilities WHERE resource = "
	    "'http:example.com'");
	refused(f, cap_revoke(&f->pm, cap, "test", NULL), PM_E_DENIED,
	    "is not revocable");
	refused(f, cap_revoke(&f->pm, 999, "test", NULL), PM_E_NOT_FOUND,
	    NULL);
	cap = q_int(f, "SELECT cap_id FROM capabilities WHERE resource = "
	    "'storage:*'");
	ok(f, cap_revoke(&f->pm, cap, "test", "done"));
	ok(f, cap_policy(&f->pm, pid, "storage:gone/a", "read", now, &p));
	assert_int_equal(p, CAP_DENY);
	assert_string_equal(q_text(f, "SELECT revoked_by || ' ' || "
	    "revoke_reason FROM capabilities WHERE cap_id = %lld",
	    (long long)cap), "test done");
}

static void
test_check(void **state)
{
	struct fx *f = *state;
	struct cap_spec caps[] = {
		{ .resource = "storage:reports/*", .rights = "read",
		    .revocable = 1 },
		{ .resource = "storage:old/*", .rights = "read",
		    .revocable = 1, .expires_at = clock_wall() - 1 },
	};
	agent_pid pid;

	f->pm.defaults.max_tool_calls = 2;
	pid = spawn(f, caps, 2);
	ok(f, procmgr_check(&f->pm, pid, "storage:reports/a.csv", "read"));
	assert_int_equal(q_int(f, "SELECT tool_calls FROM processes"), 1);
	assert_string_equal(q_text(f, "SELECT " DECISION("decision") " || ' ' "
	    "|| " DECISION("policy") " FROM audit WHERE action = "
	    "'capability.check'"), "allow ALLOW");
	/* A denial fails, but its audit record is committed. */
	refused(f, procmgr_check(&f->pm, pid, "storage:reports/a.csv",
	    "write"), PM_E_DENIED, "process 1 may not write "
	    "storage:reports/a.csv");
	refused(f, procmgr_check(&f->pm, pid, "storage:old/a", "read"),
	    PM_E_DENIED, NULL);
	assert_int_equal(q_int(f, "SELECT tool_calls FROM processes"), 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit WHERE action = "
	    "'capability.check' AND " DECISION("decision") " = 'deny'"), 2);
	assert_string_equal(q_text(f, "SELECT actor || ' ' || "
	    DECISION("reason") " FROM audit ORDER BY id DESC"),
	    "1 process 1 may not read storage:old/a");
	assert_int_equal(q_int(f, "SELECT count(*) FROM events WHERE type = "
	    "'capability.denied'"), 2);
	/* The budget: allowed by policy, refused by the count, recorded. */
	ok(f, procmgr_check(&f->pm, pid, "storage:reports/b", "read"));
	refused(f, procmgr_check(&f->pm, pid, "storage:reports/c", "read"),
	    PM_E_LIMIT, "tool call budget exhausted: 2/2");
	assert_string_equal(q_text(f, "SELECT " DECISION("reason") " FROM "
	    "audit ORDER BY id DESC"), "tool call budget exhausted: 2/2");
	refused(f, procmgr_check(&f->pm, pid, "storage:x", "read,write"),
	    PM_E_INVALID, NULL);
	refused(f, procmgr_check(&f->pm, pid, "storage:x", "fly"),
	    PM_E_INVALID, NULL);
}

static void
test_chdir(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0);

	ok(f, procmgr_chdir(&f->pm, pid, "a/./b/"));
	assert_string_equal(q_text(f, "SELECT cwd FROM processes"), "a/b");
	refused(f, procmgr_chdir(&f->pm, pid, "../x"), PM_E_INVALID,
	    "escapes workspace root");
	refused(f, procmgr_chdir(&f->pm, pid, "/etc"), PM_E_INVALID,
	    "workspace-relative");
	assert_string_equal(q_text(f, "SELECT cwd FROM processes"), "a/b");
	assert_string_equal(q_text(f, "SELECT type || ' ' || payload FROM "
	    "events ORDER BY id DESC"), "process.chdir {\"cwd\":\"a/b\"}");
	/* A child starts in its parent's directory. */
	fork_child(f, pid, FORK_COPY);
	assert_string_equal(q_text(f, "SELECT cwd FROM processes WHERE "
	    "pid = 2"), "a/b");
}

static void
test_json_escaping(void **state)
{
	struct fx *f = *state;
	agent_pid pid = 0;

	ok(f, procmgr_spawn(&f->pm, "/odd\"path\\\n\x01", NULL, NULL, 0, NULL,
	    NULL, &pid));
	ok(f, procmgr_signal(&f->pm, pid, PSIG_TERMINATE, "quote \" and "
	    "\xc3\xa9"));
	assert_int_equal(q_int(f, "SELECT min(json_valid(payload)) FROM "
	    "events"), 1);
	assert_int_equal(q_int(f, "SELECT min(json_valid(decision)) FROM "
	    "audit"), 1);
	assert_string_equal(q_text(f, "SELECT " DECISION("image") " FROM "
	    "audit WHERE action = 'process.spawn'"), "/odd\"path\\\n\x01");
	assert_string_equal(q_text(f, "SELECT " DECISION("reason") " FROM "
	    "audit WHERE action = 'process.signal'"), "quote \" and \xc3\xa9");
}

/* Long text is cut short in audit records, never into invalid JSON. */
static void
test_json_truncation(void **state)
{
	struct fx *f = *state;
	char reason[1200];
	agent_pid pid;
	size_t i, off;

	for (off = 0; off < 3; off++) {
		memset(reason, 'x', off);
		for (i = off; i + 2 < sizeof(reason); i += 2)
			memcpy(reason + i, "\xc3\xa9", 2);
		reason[i] = '\0';
		pid = spawn(f, NULL, 0);
		ok(f, procmgr_exit(&f->pm, pid, NULL, 1, reason, NULL));
	}
	/* The whole message is kept where it belongs. */
	assert_int_equal(q_int(f, "SELECT min(length(status_message)) FROM "
	    "processes"), (int64_t)(sizeof(reason) - 2) / 2);
	assert_int_equal(q_int(f, "SELECT min(json_valid(decision)) FROM "
	    "audit"), 1);
	assert_int_equal(q_int(f, "SELECT min(json_valid(payload)) FROM "
	    "events"), 1);
	assert_true(q_int(f, "SELECT max(length(decision)) FROM audit") <
	    1024);
	assert_true(q_int(f, "SELECT min(length(" DECISION("message")
	    ")) FROM audit WHERE action = 'process.exit'") > 50);
}

static void
test_database_locked(void **state)
{
	struct fx *f = *state;
	struct store other;
	agent_pid pid;

	/* This connection waits no time at all for the write lock. */
	procmgr_close(&f->pm);
	store_close(&f->st);
	assert_int_equal(fx_open(f, 0), 0);
	assert_int_equal(tu_store_open(&other, f->dir, 0, false), 0);
	assert_int_equal(store_begin(&other), 0);
	refused(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, NULL, NULL,
	    &pid), PM_E_DATABASE, NULL);
	assert_string_equal(f->pm.err, "database: locked");
	assert_int_equal(store_commit(&other), 0);
	store_close(&other);
	ok(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, NULL, NULL, &pid));
}

static void
count_wait(void *arg)
{
	(*(int *)arg)++;
}

/* A lock wait calls the store's waiting hook (the worker's heartbeat). */
static void
test_lock_wait_calls_hook(void **state)
{
	struct fx *f = *state;
	struct store other;
	agent_pid pid;
	int waits = 0;

	procmgr_close(&f->pm);
	store_close(&f->st);
	assert_int_equal(fx_open(f, 0.05), 0);
	f->st.waiting = count_wait;
	f->st.waiting_arg = &waits;
	assert_int_equal(tu_store_open(&other, f->dir, 0, false), 0);
	assert_int_equal(store_begin(&other), 0);
	refused(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, NULL, NULL,
	    &pid), PM_E_DATABASE, NULL);
	assert_true(waits > 0);
	assert_int_equal(store_commit(&other), 0);
	store_close(&other);
	waits = 0;
	ok(f, procmgr_spawn(&f->pm, IMAGE, NULL, NULL, 0, NULL, NULL, &pid));
	assert_int_equal(waits, 0);
}

static void
test_database_full(void **state)
{
	struct fx *f = *state;
	agent_pid pid = spawn(f, NULL, 0), other;
	int64_t pages = q_int(f, "PRAGMA page_count");
	char sql[64];
	int i, rc = 0;

	/* No room for one more page: the first call to need one fails. */
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
	    (long long)pages);
	exec_sql(f, sql);
	for (i = 0; i < 100 && rc == 0; i++)
		rc = procmgr_spawn(&f->pm, IMAGE, "{\"pad\":\"xxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "\"}", NULL, 0, NULL, NULL, &other);
	refused(f, rc, PM_E_DATABASE, NULL);
	assert_string_equal(f->pm.err, "database or disk is full");
	exec_sql(f, "PRAGMA max_page_count = 1000000");
	/* Rolled back whole: the next call goes through. */
	ok(f, procmgr_exit(&f->pm, pid, "{}", 0, NULL, NULL));
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), i);
	assert_int_equal(q_int(f, "SELECT count(*) FROM objects"), i + 1);
}

/* Pruning. */

static void
insert_rows(struct fx *f, const char *table, int n, double created_at)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "WITH RECURSIVE c(i) AS (SELECT 1 UNION "
	    "ALL SELECT i + 1 FROM c WHERE i < %d) INSERT INTO %s "
	    "(%s, created_at) SELECT %s, %.3f FROM c", n, table,
	    strcmp(table, "events") == 0 ? "type, source" :
	    "actor, action, target",
	    strcmp(table, "events") == 0 ? "'t', 's'" : "'a', 'b', 'c'",
	    created_at);
	exec_sql(f, sql);
}

static void
test_prune_age(void **state)
{
	struct fx *f = *state;
	double now = clock_wall(), old = now - 3 * 86400.0;
	int64_t n;

	insert_rows(f, "events", 1200, old);
	insert_rows(f, "audit", 700, old);
	insert_rows(f, "events", 30, now);
	insert_rows(f, "audit", 20, now);
	n = audit_prune(&f->st, 1, 0, now, 100, NULL, 0);
	assert_int_equal(n, 1900);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 30);
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit"), 20);
	assert_int_equal(q_int(f, "SELECT min(created_at) > %.3f FROM events",
	    old), 1);
	/* Nothing more to do. */
	assert_int_equal(audit_prune(&f->st, 1, 0, now, 100, NULL, 0), 0);
	assert_int_equal(audit_prune(&f->st, 7, 0, now, 100, NULL, 0), 0);
}

/*
 * A failed batch is rolled back, and the rollback's success must not
 * replace SQLite's word on the failure ("pruning: not an error").
 */
static void
test_prune_error_named(void **state)
{
	struct fx *f = *state;
	double now = clock_wall();
	char err[256] = "";

	insert_rows(f, "events", 10, now - 3 * 86400.0);
	assert_int_equal(sqlite3_exec(f->st.db, "PRAGMA query_only=1", NULL,
	    NULL, NULL), SQLITE_OK);
	assert_int_equal(audit_prune(&f->st, 1, 0, now, 100, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, f->st.path));
	assert_null(strstr(err, "not an error"));
	assert_non_null(strstr(err, "readonly"));
	assert_int_equal(sqlite3_exec(f->st.db, "PRAGMA query_only=0", NULL,
	    NULL, NULL), SQLITE_OK);
}

static void
test_prune_max_rows(void **state)
{
	struct fx *f = *state;
	double now = clock_wall();
	int64_t n, total = 0, max_id;

	insert_rows(f, "events", 2600, now);
	insert_rows(f, "audit", 1100, now);
	max_id = q_int(f, "SELECT max(id) FROM events");
	/* Two full batches per call: call again while it says so. */
	do {
		n = audit_prune(&f->st, 7, 1000, now, 2, NULL, 0);
		assert_true(n >= 0);
		total += n;
	} while (n >= 2 * AUDIT_BATCH);
	assert_int_equal(total, 1600 + 100);
	assert_int_equal(q_int(f, "SELECT count(*) FROM events"), 1000);
	assert_int_equal(q_int(f, "SELECT count(*) FROM audit"), 1000);
	/* The newest stay. */
	assert_int_equal(q_int(f, "SELECT min(id) FROM events"),
	    max_id - 999);
	assert_int_equal(q_int(f, "SELECT max(id) FROM events"), max_id);
}

static void
test_prune_processes(void **state)
{
	struct fx *f = *state;
	struct outbox_entry ob = { .operation_id = "op-kept",
	    .result = "{}" };
	agent_pid old_tree, child, grandchild, pending, live_child_root;
	agent_pid live_child, recent, running;
	double now = clock_wall();

	old_tree = spawn(f, NULL, 0);
	child = fork_child(f, old_tree, FORK_COPY);
	grandchild = fork_child(f, child, FORK_COPY);
	ok(f, procmgr_exit(&f->pm, grandchild, "{}", 0, NULL, NULL));
	ok(f, procmgr_exit(&f->pm, child, "{}", 0, NULL, NULL));
	ok(f, procmgr_exit(&f->pm, old_tree, "{}", 0, NULL, NULL));
	pending = spawn(f, NULL, 0);
	ok(f, procmgr_exit(&f->pm, pending, "{}", 0, NULL, &ob));
	live_child_root = spawn(f, NULL, 0);
	live_child = fork_child(f, live_child_root, FORK_COPY);
	ok(f, procmgr_exit(&f->pm, live_child_root, "{}", 0, NULL, NULL));
	recent = spawn(f, NULL, 0);
	running = spawn(f, NULL, 0);
	/* All but the recent one ended long ago. */
	exec_sql(f, "UPDATE processes SET ended_at = ended_at - 864000");
	ok(f, procmgr_exit(&f->pm, recent, "{}", 0, NULL, NULL));
	assert_int_equal(audit_prune(&f->st, 7, 0, now, 100, NULL, 0), 3);
	/* The old tree went whole, with its objects, views and handles. */
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes WHERE pid IN "
	    "(%lld, %lld, %lld)", (long long)old_tree, (long long)child,
	    (long long)grandchild), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM objects WHERE "
	    "owner_pid IN (1, 2, 3)"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM views WHERE "
	    "pid IN (1, 2, 3)"), 0);
	/* An undelivered result, a live descendant, recent or running: kept. */
	assert_int_equal(status_of(f, pending), PS_EXITED);
	assert_int_equal(status_of(f, live_child_root), PS_EXITED);
	assert_int_equal(status_of(f, live_child), PS_RUNNABLE);
	assert_int_equal(status_of(f, recent), PS_EXITED);
	assert_int_equal(status_of(f, running), PS_RUNNABLE);
	/* Delivered, it goes; a tree goes once all of it ended long ago. */
	ok(f, store_outbox_delete(&f->st, "op-kept"));
	ok(f, procmgr_exit(&f->pm, live_child, NULL, 0, NULL, NULL));
	assert_int_equal(audit_prune(&f->st, 7, 0, now, 100, NULL, 0), 1);
	assert_int_equal(status_of(f, live_child_root), PS_EXITED);
	exec_sql(f, "UPDATE processes SET ended_at = ended_at - 864000 "
	    "WHERE pid = 6");
	assert_int_equal(audit_prune(&f->st, 7, 0, now, 100, NULL, 0), 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), 2);
	/* Pids are never reused. */
	assert_true(spawn(f, NULL, 0) > running);
}

/* A finished operation whose result object holds about bytes bytes. */
static agent_pid
finished(struct fx *f, size_t bytes, const struct outbox_entry *ob)
{
	char *result = malloc(bytes + 16);
	agent_pid pid = spawn(f, NULL, 0);

	assert_non_null(result);
	snprintf(result, bytes + 16, "{\"x\": \"%0*d\"}", (int)bytes, 0);
	ok(f, procmgr_exit(&f->pm, pid, result, 0, NULL, ob));
	free(result);
	return pid;
}

/*
 * Over its budget, the oldest finished trees go first (with the trails
 * before them), down to the low mark; a running tree, an undelivered
 * result and a dead letter stay whatever their age, and once only they
 * are left the pass says it is blocked and removes nothing more.
 */
static void
test_prune_budget(void **state)
{
	struct fx *f = *state;
	struct outbox_entry pending = { .operation_id = "op-pending",
	    .result = "{}" };
	struct outbox_entry dead = { .operation_id = "op-dead",
	    .result = "{}" };
	struct audit_budget b = { .roots = 4 };
	agent_pid running, kept, buried, first = 0, pid;
	int64_t events;
	int i;

	running = spawn(f, NULL, 0);
	kept = finished(f, 2000, &pending);
	buried = finished(f, 2000, &dead);
	ok(f, store_outbox_bury(&f->st, "op-dead", "HTTP 422"));
	for (i = 0; i < 40; i++) {
		pid = finished(f, 2000, NULL);
		first = first ? first : pid;
	}
	events = q_int(f, "SELECT count(*) FROM events");
	/* Within budget: nothing to do. */
	b.target = INT64_MAX;
	assert_int_equal(audit_prune_budget(&f->st, &b, clock_wall(), 100), 0);
	assert_int_equal(b.removed, 0);
	/* 20 KB over: about ten trees go, the oldest first. */
	b.target = b.used - 20000;
	b.low = b.target - 10000;
	assert_int_equal(audit_prune_budget(&f->st, &b, clock_wall(), 100), 0);
	assert_true(b.removed > 0 && !b.blocked && !b.more);
	assert_true(b.used <= b.low);
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes WHERE "
	    "pid = %lld", (long long)first), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes WHERE "
	    "pid > %lld AND pid < (SELECT min(pid) FROM processes WHERE "
	    "pid > %lld)", (long long)first, (long long)buried), 0);
	assert_true(q_int(f, "SELECT count(*) FROM processes") > 20);
	assert_true(q_int(f, "SELECT count(*) FROM events") < events);
	/* A pass stops after max_batches, saying so. */
	b.target = 1;
	b.low = 1;
	assert_int_equal(audit_prune_budget(&f->st, &b, clock_wall(), 1), 0);
	assert_true(b.more && !b.blocked);
	/* Only what must stay is left: blocked, and it all stays. */
	assert_int_equal(audit_prune_budget(&f->st, &b, clock_wall(), 100), 0);
	assert_true(b.blocked);
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), 3);
	assert_int_equal(status_of(f, running), PS_RUNNABLE);
	assert_int_equal(status_of(f, kept), PS_EXITED);
	assert_int_equal(status_of(f, buried), PS_EXITED);
	assert_int_equal(q_int(f, "SELECT count(*) FROM objects WHERE "
	    "owner_pid IN (%lld, %lld)", (long long)kept,
	    (long long)buried), 4);	/* goals and results */
	assert_int_equal(audit_prune_budget(&f->st, &b, clock_wall(), 100), 0);
	assert_true(b.blocked && b.removed == 0);
}

/* Free pages go back to the file system once the data is deleted. */
static void
test_reclaim_shrinks(void **state)
{
	struct fx *f = *state;
	struct store_size before, after;
	char err[256];
	int i;

	assert_int_equal(store_pragma_int(&f->st, "PRAGMA auto_vacuum"), 2);
	for (i = 0; i < 200; i++)
		(void)finished(f, 4000, NULL);
	assert_int_equal(store_set_max_bytes(&f->st, 2 * 1024 * 1024, err,
	    sizeof(err)), 0);
	exec_sql(f, "DELETE FROM processes");
	assert_int_equal(store_size(&f->st, &before), 0);
	assert_true(before.free_bytes > 500000);
	assert_int_equal(store_reclaim(&f->st, 128 * 1024, 100, err,
	    sizeof(err)), 0);
	assert_int_equal(store_size(&f->st, &after), 0);
	assert_int_equal(after.free_bytes, 0);
	assert_true(after.file_bytes < before.file_bytes - 500000);
	assert_int_equal(after.wal_bytes, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fork_view_modes),
		cmocka_unit_test(test_fork_mode_names),
		cmocka_unit_test(test_child_budget),
		cmocka_unit_test(test_signal_transitions),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_cwd),
#define DB_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
		DB_TEST(test_spawn),
		DB_TEST(test_spawn_refused),
		DB_TEST(test_fork_copy),
		DB_TEST(test_fork_speculative),
		DB_TEST(test_fork_worker),
		DB_TEST(test_fork_restricted),
		DB_TEST(test_spawn_child),
		DB_TEST(test_child_budget_exhausted),
		DB_TEST(test_tool_call_budget),
		DB_TEST(test_inherit),
		DB_TEST(test_exec_shrink),
		DB_TEST(test_exec_not_revocable),
		DB_TEST(test_exec_memory),
		DB_TEST(test_wait_and_wake),
		DB_TEST(test_wait_timeout),
		DB_TEST(test_terminated_refused),
		DB_TEST(test_list_children),
		DB_TEST(test_signals),
		DB_TEST(test_signal_child),
		DB_TEST(test_merge),
		DB_TEST(test_exit_release),
		DB_TEST(test_exit_failed),
		DB_TEST(test_exit_outbox),
		DB_TEST(test_fail_worker),
		DB_TEST(test_capability_policy),
		DB_TEST(test_check),
		DB_TEST(test_chdir),
		DB_TEST(test_json_escaping),
		DB_TEST(test_json_truncation),
		DB_TEST(test_database_locked),
		DB_TEST(test_lock_wait_calls_hook),
		DB_TEST(test_database_full),
		DB_TEST(test_prune_age),
		DB_TEST(test_prune_error_named),
		DB_TEST(test_prune_max_rows),
		DB_TEST(test_prune_processes),
		DB_TEST(test_prune_budget),
		DB_TEST(test_reclaim_shrinks),
#undef DB_TEST
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
