/*
 * Unit tests for issue 16's defects in delegation and merge, each against
 * a real database: merge must skip objects released at a child's exit;
 * an inherited capability is a delegation (revoking or the expiry of the
 * parent's withdraws the child's); a delegation may only attenuate (its
 * constraints are never dropped).  Also: a database of the schema before
 * migration 7 opens and keeps its rows.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "procmgr/capability.h"
#include "core/clock.h"
#include "core/config.h"
#include "procmgr/objmem.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"
#include "testutil.h"

#define INSTANCE "worker-deleg"
#define IMAGE "/api/v1/agent/execute/command"

static int
setup(void **state)
{
	return (*state = tu_pm_new("deleg", INSTANCE)) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	tu_pm_free(*state);
	return 0;
}

#define q_int(f, ...)	tu_query_int((f)->st.db, __VA_ARGS__)

#define ok(f, call) do {						\
	if ((call) != 0)						\
		fail_msg("%s: %s", #call, (f)->pm.err);			\
} while (0)

static void
refused(struct tu_pm *f, int rc, enum pm_error type, const char *msg)
{
	tu_pm_refused(&f->pm, rc, type, msg);
}

/* A root holding caps, and the authority to fork ("process:spawn"). */
static agent_pid
spawn(struct tu_pm *f, const struct cap_spec *caps, size_t ncaps)
{
	static const struct cap_spec spawn_right = { .resource =
	    "process:spawn", .rights = "write", .revocable = 1 };
	agent_pid pid = 0;

	ok(f, procmgr_spawn(&f->pm, IMAGE, "{}", caps, ncaps, "op-1", NULL,
	    &pid));
	ok(f, store_begin(&f->st));
	ok(f, cap_grant(&f->pm, pid, &spawn_right, "test", NULL));
	ok(f, store_commit(&f->st));
	return pid;
}

static enum cap_policy
policy(struct tu_pm *f, agent_pid pid, const char *resource, const char *right,
    double at)
{
	enum cap_policy pol;

	ok(f, cap_policy(&f->pm, pid, resource, right, at, &pol));
	return pol;
}

/* Defect 1: merge counted, viewed and handed out released objects. */
static void
test_merge_skips_released_objects(void **state)
{
	struct tu_pm *f = *state;
	agent_pid parent = spawn(f, NULL, 0), child = 0;
	int64_t scratch, kept, view;
	int merged = -1;

	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_COPY, NULL, NULL, 0,
	    &child));
	view = q_int(f, "SELECT view_id FROM processes WHERE pid = %lld",
	    (long long)child);
	ok(f, store_begin(&f->st));
	ok(f, objmem_create(&f->pm, child, OBJ_DATA, "{\"scratch\":1}", 0, 1,
	    &scratch));
	ok(f, objmem_create(&f->pm, child, OBJ_DATA, "{\"kept\":1}", 0, 0,
	    &kept));
	ok(f, objmem_view_add(&f->pm, view, scratch));
	ok(f, objmem_view_add(&f->pm, view, kept));
	ok(f, store_commit(&f->st));
	ok(f, procmgr_exit(&f->pm, child, NULL, 0, NULL, NULL));
	assert_int_equal(q_int(f, "SELECT count(*) FROM objects WHERE oid = "
	    "%lld", (long long)scratch), 0);
	ok(f, procmgr_merge_child_memory(&f->pm, parent, child, &merged));
	/* The child's goal and the kept object; not the released one. */
	assert_int_equal(merged, 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM views, json_each(roots)"
	    " WHERE pid = %lld AND value = %lld", (long long)parent,
	    (long long)scratch), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM capabilities WHERE "
	    "subject = %lld AND resource = 'object:%lld'", (long long)parent,
	    (long long)scratch), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM capabilities WHERE "
	    "subject = %lld AND resource = 'object:%lld'", (long long)parent,
	    (long long)kept), 1);
}

/* Defect 2: revoking the parent's capability withdraws the child's. */
static void
test_revoked_parent_capability_denies_child(void **state)
{
	struct tu_pm *f = *state;
	struct cap_spec cap = { .resource = "shell:*", .rights = "execute",
	    .delegable = 1, .revocable = 1 };
	struct cap_spec pass = { .resource = "shell:*", .rights = "execute",
	    .delegable = 1, .revocable = 1 };
	agent_pid parent = spawn(f, &cap, 1), child = 0, grandchild = 0;
	double now = clock_wall();
	int64_t cap_id;

	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL, &pass, 1,
	    &child));
	ok(f, store_begin(&f->st));
	ok(f, cap_grant(&f->pm, child, &(struct cap_spec){ .resource =
	    "process:spawn", .rights = "write" }, "test", NULL));
	ok(f, store_commit(&f->st));
	ok(f, procmgr_fork(&f->pm, child, NULL, FORK_WORKER, NULL, &pass, 1,
	    &grandchild));
	assert_int_equal(policy(f, grandchild, "shell:ls", "execute", now),
	    CAP_ALWAYS_ALLOW);
	cap_id = q_int(f, "SELECT cap_id FROM capabilities WHERE subject = "
	    "%lld AND resource = 'shell:*'", (long long)parent);
	ok(f, store_begin(&f->st));
	ok(f, cap_revoke(&f->pm, cap_id, "test", "withdrawn"));
	ok(f, store_commit(&f->st));
	assert_int_equal(policy(f, child, "shell:ls", "execute", now),
	    CAP_DENY);
	assert_int_equal(policy(f, grandchild, "shell:ls", "execute", now),
	    CAP_DENY);
	refused(f, procmgr_check(&f->pm, grandchild, "shell:ls", "execute"),
	    PM_E_DENIED, "may not execute shell:ls");
}

/* Defect 2: a child's copy of an expiring capability expires with it. */
static void
test_child_capability_expires_with_parent(void **state)
{
	struct tu_pm *f = *state;
	double now = clock_wall();
	struct cap_spec cap = { .resource = "storage:*", .rights = "read",
	    .delegable = 1, .revocable = 1, .expires_at = now + 3600 };
	struct cap_spec never = { .resource = "storage:a/*", .rights = "read",
	    .revocable = 1 };
	agent_pid parent = spawn(f, &cap, 1), child = 0;

	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL, &never, 1,
	    &child));
	/* Asked to never expire, it expires when its parent's does. */
	assert_int_equal(q_int(f, "SELECT expires_at = (SELECT expires_at "
	    "FROM capabilities WHERE subject = %lld AND resource = "
	    "'storage:*') FROM capabilities WHERE subject = %lld",
	    (long long)parent, (long long)child), 1);
	assert_int_equal(policy(f, child, "storage:a/x", "read", now),
	    CAP_ALLOW);
	assert_int_equal(policy(f, child, "storage:a/x", "read", now + 7200),
	    CAP_DENY);
}

/* Defect 3: a delegation may not drop the parent's constraints. */
static void
test_inherit_keeps_constraints(void **state)
{
	struct tu_pm *f = *state;
	struct cap_spec cap = { .resource = "shell:*", .rights = "execute",
	    .constraints = "{\"argv0\":\"ls\"}", .delegable = 1,
	    .revocable = 1 };
	struct cap_spec loose = { .resource = "shell:*", .rights = "execute",
	    .constraints = "{\"argv0\":\"rm\"}" };
	struct cap_spec dropped = { .resource = "shell:*",
	    .rights = "execute", .constraints = "{}" };
	struct cap_spec tighter = { .resource = "shell:x/*",
	    .rights = "execute", .constraints = "{\"argv0\":\"ls\","
	    "\"timeout\":5}" };
	struct cap_spec unasked = { .resource = "shell:*",
	    .rights = "execute" };
	agent_pid parent = spawn(f, &cap, 1), child = 0;
	int64_t procs = q_int(f, "SELECT count(*) FROM processes");
	int64_t caps = q_int(f, "SELECT count(*) FROM capabilities");

	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL,
	    &loose, 1, &child), PM_E_DENIED, "would loosen");
	refused(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL,
	    (struct cap_spec[]){ tighter, dropped }, 2, &child), PM_E_DENIED,
	    "would loosen");
	/* Nothing partial: no process, no capability row. */
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), procs);
	assert_int_equal(q_int(f, "SELECT count(*) FROM capabilities"), caps);
	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL,
	    (struct cap_spec[]){ tighter, unasked }, 2, &child));
	/* Not asked for: the parent's constraints are kept. */
	assert_int_equal(q_int(f, "SELECT count(*) FROM capabilities WHERE "
	    "subject = %lld AND constraints IS NOT NULL AND "
	    "json_extract(constraints, '$.argv0') = 'ls'", (long long)child),
	    2);
}

/* Rights and resource only narrow. */
static void
test_inherit_attenuates_only(void **state)
{
	char why[256];
	struct cap_spec s = { .resource = "storage:reports/2026/*",
	    .rights = "read" };

	(void)state;
	assert_true(cap_attenuates("storage:reports/*", "read,write", NULL, &s,
	    why, sizeof(why)));
	assert_false(cap_attenuates("storage:reports/2026/a", "read", NULL, &s,
	    why, sizeof(why)));
	assert_non_null(strstr(why, "is not within"));
	s.rights = "read,delete";
	assert_false(cap_attenuates("storage:*", "read,write", NULL, &s, why,
	    sizeof(why)));
	assert_non_null(strstr(why, "not a subset"));
	s.rights = "read";
	s.resource = "storage:*";
	assert_false(cap_attenuates("storage:reports/*", "read", NULL, &s, why,
	    sizeof(why)));
	s.constraints = "not json";
	assert_false(cap_attenuates("storage:*", "read", "{\"a\":1}", &s, why,
	    sizeof(why)));
	assert_true(cap_rights_subset("read", "read,write"));
	assert_false(cap_rights_subset("read,execute", "read,write"));
}

/* A database at today's schema (before migration 7) keeps its rows. */
static void
test_migration_keeps_rows(void **state)
{
	struct tu_pm *f = *state;
	struct cap_spec cap = { .resource = "storage:*", .rights = "read",
	    .delegable = 1, .revocable = 1 };
	agent_pid parent = spawn(f, &cap, 1), child = 0;

	ok(f, procmgr_fork(&f->pm, parent, NULL, FORK_WORKER, NULL, &cap, 1,
	    &child));
	procmgr_close(&f->pm);
	/* Back to a version 6 database: what steps 7 and 8 added goes. */
	tu_exec(f->st.db, "ALTER TABLE capabilities DROP COLUMN parent_cap;"
	    "ALTER TABLE processes DROP COLUMN runtime_used;"
	    "DROP INDEX IF EXISTS outbox_pid;"
	    "PRAGMA user_version = 6;");
	store_close(&f->st);
	assert_int_equal(tu_store_open(&f->st, f->dir, 5.0, true), 0);
	procmgr_init(&f->pm, &f->st, INSTANCE, &f->cfg);
	assert_int_equal(q_int(f, "PRAGMA user_version"), 8);
	assert_int_equal(q_int(f, "SELECT count(*) FROM processes"), 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM capabilities WHERE "
	    "parent_cap IS NULL"), 3);
	/* An old copy counts as granted: it still authorises. */
	assert_int_equal(policy(f, child, "storage:x", "read", clock_wall()),
	    CAP_ALWAYS_ALLOW);
	ok(f, procmgr_charge_tool_call(&f->pm, child));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define DB_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
		DB_TEST(test_merge_skips_released_objects),
		DB_TEST(test_revoked_parent_capability_denies_child),
		DB_TEST(test_child_capability_expires_with_parent),
		DB_TEST(test_inherit_keeps_constraints),
		cmocka_unit_test(test_inherit_attenuates_only),
		DB_TEST(test_migration_keeps_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
