/* procmgr: agent process lifecycle over SQLite (see include/procmgr/procmgr.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "procmgr/audit.h"
#include "procmgr/capability.h"
#include "core/clock.h"
#include "procmgr/objmem.h"
#include "pmdb.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"

#define PM_HANDLE_RIGHTS "read,materialize,link,diff"
#define PM_EMPTY_GOAL "{}"
#define PM_REFS_MAX 48		/* "[oid]" */
#define PM_MSG_MAX 64		/* "waiting for PID" */
#define PM_JSON_SMALL 256	/* a name or a path in an audit record */
#define PM_JSON_MAX 1024	/* one event payload or audit decision */
#define PM_ACTOR_MAX 24		/* a pid as text, or "runtime" */

/* What the calls need of a process row. */
struct procmgr_proc {
	agent_pid pid, parent, root;
	enum proc_status status;
	int64_t goal, result, view;
	struct proc_budget budget;
	int tool_calls, children;
	double runtime_used;
};

/*
 * s as a JSON string (quoted, escaped) in buf, cut short to fit len, or
 * null when s is NULL.  Audit records stay small: long text is truncated.
 */
static const char *
procmgr_json_str(char *buf, size_t len, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, need;
	char esc[7];

	if (s == NULL) {
		snprintf(buf, len, "null");
		return buf;
	}
	buf[o++] = '"';
	for (; *p != '\0'; p++) {
		esc[0] = (char)*p;
		need = 1;
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			need = 2;
		} else if (*p < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xf];
			need = 6;
		}
		if (o + need + 2 > len)
			break;
		memcpy(buf + o, esc, need);
		o += need;
	}
	/* Cut short: do not leave half a UTF-8 sequence. */
	if (*p != '\0')
		while (o > 1 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
			o--;
	if (*p != '\0' && o > 1 && ((unsigned char)buf[o - 1] & 0x80))
		o--;
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Transactions and rows. */

static int
procmgr_begin(struct procmgr *pm)
{
	pm->errtype = PM_OK;
	pm->err[0] = '\0';
	if (store_begin(pm->st) == -1)
		return pmdb_sqlite_error(pm);
	return 0;
}

/* Commit when rc is not -1, else roll back; returns rc or -1. */
static int
procmgr_finish(struct procmgr *pm, int rc)
{
	if (rc != -1 && store_commit(pm->st) == -1)
		rc = pmdb_sqlite_error(pm);
	if (rc == -1)
		store_rollback(pm->st);
	return rc;
}

#define PM_PROC_COLUMNS "pid, parent_pid, root_pid, status, goal_oid, " \
	"result_oid, view_id, max_tool_calls, max_child_processes, " \
	"max_runtime, tool_calls, child_processes, instance_id, " \
	"operation_id, image, status_message, cwd, created_at, updated_at, " \
	"ended_at, runtime_used"

static void
procmgr_proc_row(sqlite3_stmt *s, struct procmgr_proc *p)
{
	const char *status = (const char *)sqlite3_column_text(s, 3);

	p->pid = sqlite3_column_int64(s, 0);
	p->parent = sqlite3_column_int64(s, 1);
	p->root = sqlite3_column_int64(s, 2);
	if (procrule_status_parse(status, &p->status) == -1)
		p->status = PS_FAILED;
	p->goal = sqlite3_column_int64(s, 4);
	p->result = sqlite3_column_int64(s, 5);
	p->view = sqlite3_column_int64(s, 6);
	p->budget.max_tool_calls = sqlite3_column_int(s, 7);
	p->budget.max_child_processes = sqlite3_column_int(s, 8);
	p->budget.max_runtime_seconds = sqlite3_column_double(s, 9);
	p->tool_calls = sqlite3_column_int(s, 10);
	p->children = sqlite3_column_int(s, 11);
	p->runtime_used = sqlite3_column_double(s, 20);
}

/* Step the cached select of pid: 1 with the row, 0 when none, -1. */
static int
procmgr_select(struct procmgr *pm, agent_pid pid, sqlite3_stmt **out)
{
	sqlite3_stmt *s;
	int rc;

	s = pmdb_stmt(pm, PMDB_PROC_GET, "SELECT " PM_PROC_COLUMNS
	    " FROM processes WHERE pid = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*out = s;
		return 1;
	}
	if (rc != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	else
		pmdb_error(pm, PM_E_NOT_FOUND, "process %" PRId64 " not found",
		    pid);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
procmgr_load(struct procmgr *pm, agent_pid pid, struct procmgr_proc *p)
{
	sqlite3_stmt *s;

	if (procmgr_select(pm, pid, &s) != 1)
		return -1;
	procmgr_proc_row(s, p);
	sqlite3_reset(s);
	return 0;
}

/* The process, which must not have ended, for the call named what. */
static int
procmgr_load_live(struct procmgr *pm, agent_pid pid, struct procmgr_proc *p,
    const char *what)
{
	if (procmgr_load(pm, pid, p) == -1)
		return -1;
	if (procrule_status_terminal(p->status))
		return pmdb_error(pm, PM_E_INVALID, "cannot %s process %" PRId64
		    ": it has ended (%s)", what, pid,
		    procrule_status_name(p->status));
	return 0;
}

/* child, which must be parent's child. */
static int
procmgr_load_child(struct procmgr *pm, agent_pid parent, agent_pid child,
    struct procmgr_proc *c)
{
	if (procmgr_load(pm, child, c) == -1)
		return -1;
	if (c->parent != parent)
		return pmdb_error(pm, PM_E_INVALID, "%" PRId64 " is not a "
		    "child of %" PRId64, child, parent);
	return 0;
}

static void
procmgr_actor(char *buf, size_t len, agent_pid pid)
{
	snprintf(buf, len, "%" PRId64, pid);
}

static void
procmgr_target(char *buf, size_t len, agent_pid pid)
{
	snprintf(buf, len, "process:%" PRId64, pid);
}

static const char *
procmgr_refs(char *buf, size_t len, int64_t oid)
{
	if (oid == 0)
		snprintf(buf, len, "[]");
	else
		snprintf(buf, len, "[%" PRId64 "]", oid);
	return buf;
}

/* The event and the audit record of one call on pid. */
static int
procmgr_trail(struct procmgr *pm, const char *event, const char *actor,
    const char *action, agent_pid pid, const char *in_refs,
    const char *out_refs, const char *json)
{
	char target[PM_ACTOR_MAX + 8];

	procmgr_target(target, sizeof(target), pid);
	if (audit_event(pm, event, actor, pid, json) == -1)
		return -1;
	return audit_record(pm, actor, action, target, pid, in_refs, out_refs,
	    json);
}

static void
procmgr_run_hooks(struct procmgr *pm, agent_pid pid, const char *image)
{
	int i;

	for (i = 0; i < pm->nhooks; i++)
		pm->hooks[i].fn(pid, image, pm->hooks[i].arg);
}

/*
 * The process manager's own checks: pid needs right on resource (any
 * live capability, delegable or not), else PM_E_DENIED naming both.
 */
static int
procmgr_authorise(struct procmgr *pm, agent_pid pid, const char *resource,
    const char *right, const char *what)
{
	enum cap_policy pol;

	if (cap_policy(pm, pid, resource, right, clock_wall(), &pol) == -1)
		return -1;
	if (pol == CAP_DENY)
		return pmdb_error(pm, PM_E_DENIED, "process %" PRId64 " lacks "
		    "%s on %.300s to %s", pid, right, resource, what);
	return 0;
}

/* Read authority on image when it is not pid's own. */
static int
procmgr_authorise_image(struct procmgr *pm, agent_pid pid, const char *image,
    const char *what)
{
	char resource[PM_JSON_SMALL + sizeof(PM_RES_IMAGE)];
	sqlite3_stmt *s;
	int rc, same;

	if (image == NULL)
		return 0;
	s = pmdb_stmt(pm, PMDB_PROC_SAME_IMAGE, "SELECT image = ?2 "
	    "FROM processes WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_text(s, 2, image, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	same = rc == SQLITE_ROW && sqlite3_column_int(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return pmdb_sqlite_error(pm);
	if (same)
		return 0;
	if (strlen(image) >= PM_JSON_SMALL)
		return pmdb_error(pm, PM_E_INVALID, "%s: image name longer "
		    "than %d bytes", what, PM_JSON_SMALL - 1);
	snprintf(resource, sizeof(resource), PM_RES_IMAGE "%s", image);
	return procmgr_authorise(pm, pid, resource, "read", what);
}

/* Read authority on the normalised directory cwd. */
static int
procmgr_authorise_cwd(struct procmgr *pm, agent_pid pid, const char *cwd,
    const char *what)
{
	char resource[PM_CWD_MAX + sizeof(PM_RES_WORKSPACE) + 2];

	if (strcmp(cwd, ".") == 0)
		snprintf(resource, sizeof(resource), PM_RES_WORKSPACE "*");
	else
		snprintf(resource, sizeof(resource), PM_RES_WORKSPACE "%s/*",
		    cwd);
	return procmgr_authorise(pm, pid, resource, "read", what);
}

/* Setup. */

void
procmgr_init(struct procmgr *pm, struct store *st, const char *instance_id,
    const struct egressd_config *cfg)
{
	memset(pm, 0, sizeof(*pm));
	pm->st = st;
	pm->instance_id = instance_id;
	pm->defaults.max_tool_calls = cfg->process.max_tool_calls;
	pm->defaults.max_child_processes = cfg->process.max_child_processes;
	pm->defaults.max_runtime_seconds = cfg->process.max_runtime_seconds;
	pm->fork_divisor = cfg->process.fork_budget_divisor;
	pm->fork_min_tool_calls = cfg->process.fork_min_tool_calls;
	pm->fork_min_child_processes = cfg->process.fork_min_child_processes;
}

void
procmgr_close(struct procmgr *pm)
{
	pmdb_finalize(pm);
}

int
procmgr_add_hook(struct procmgr *pm, procmgr_hook fn, void *arg)
{
	if (pm->nhooks == PM_MAX_HOOKS)
		return pmdb_error(pm, PM_E_LIMIT, "too many hooks (%d)",
		    PM_MAX_HOOKS);
	pm->hooks[pm->nhooks].fn = fn;
	pm->hooks[pm->nhooks].arg = arg;
	pm->nhooks++;
	return 0;
}

/* Creating processes. */

/* Goal object, view and RUNNABLE for a process just inserted. */
static int
procmgr_start(struct procmgr *pm, agent_pid pid, int64_t goal, int64_t view)
{
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_PROC_START, "UPDATE processes SET "
	    "root_pid = coalesce(nullif(root_pid, 0), pid), goal_oid = ?2, "
	    "view_id = ?3, status = 'RUNNABLE' WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_int64(s, 2, goal);
	sqlite3_bind_int64(s, 3, view);
	return pmdb_step_done(pm, s);
}

static int
procmgr_grant_all(struct procmgr *pm, agent_pid pid,
    const struct cap_spec *caps, size_t ncaps, const char *issued_by)
{
	size_t i;

	for (i = 0; i < ncaps; i++)
		if (cap_grant(pm, pid, &caps[i], issued_by, NULL) == -1)
			return -1;
	return 0;
}

static int
procmgr_spawn_txn(struct procmgr *pm, const char *image, const char *goal,
    const struct cap_spec *caps, size_t ncaps, const char *operation_id,
    const char *cwd, agent_pid *out)
{
	char jimage[PM_JSON_SMALL], jcwd[PM_JSON_SMALL], json[PM_JSON_MAX];
	char refs[PM_REFS_MAX];
	double now = clock_wall();
	int64_t goid, vid;
	sqlite3_stmt *s;
	agent_pid pid;

	s = pmdb_stmt(pm, PMDB_PROC_ROOT, "INSERT INTO processes (root_pid, "
	    "instance_id, operation_id, image, status, cwd, max_tool_calls, "
	    "max_child_processes, max_runtime, created_at, updated_at) "
	    "VALUES (0, ?1, ?2, ?3, 'CREATED', ?4, ?5, ?6, ?7, ?8, ?8)");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, pm->instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, operation_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, image, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, cwd, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, pm->defaults.max_tool_calls);
	sqlite3_bind_int(s, 6, pm->defaults.max_child_processes);
	sqlite3_bind_double(s, 7, pm->defaults.max_runtime_seconds);
	sqlite3_bind_double(s, 8, now);
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	pid = sqlite3_last_insert_rowid(pm->st->db);
	if (objmem_create(pm, pid, OBJ_GOAL, goal ? goal : PM_EMPTY_GOAL, 1, 0,
	    &goid) == -1 ||
	    objmem_create_view(pm, pid, VIEW_MUTABLE, &goid, 1, &vid) == -1 ||
	    procmgr_start(pm, pid, goid, vid) == -1 ||
	    procmgr_grant_all(pm, pid, caps, ncaps, "process.spawn") == -1)
		return -1;
	snprintf(json, sizeof(json), "{\"image\":%s,\"cwd\":%s}",
	    procmgr_json_str(jimage, sizeof(jimage), image),
	    procmgr_json_str(jcwd, sizeof(jcwd), cwd));
	*out = pid;
	return procmgr_trail(pm, "process.created", "runtime", "process.spawn",
	    pid, NULL, procmgr_refs(refs, sizeof(refs), goid), json);
}

int
procmgr_spawn(struct procmgr *pm, const char *image, const char *goal,
    const struct cap_spec *caps, size_t ncaps, const char *operation_id,
    const char *cwd, agent_pid *out)
{
	char ncwd[PM_CWD_MAX], why[PM_ERR_MAX];
	agent_pid pid = 0;

	if (image == NULL || *image == '\0')
		return pmdb_error(pm, PM_E_INVALID, "spawn: image missing");
	if (procrule_normalize_cwd(cwd, ncwd, sizeof(ncwd), why,
	    sizeof(why)) == -1)
		return pmdb_error(pm, PM_E_INVALID, "%s", why);
	if (procmgr_begin(pm) == -1)
		return -1;
	if (procmgr_finish(pm, procmgr_spawn_txn(pm, image, goal, caps, ncaps,
	    operation_id, ncwd, &pid)) == -1)
		return -1;
	*out = pid;
	procmgr_run_hooks(pm, pid, image);
	return 0;
}

/* What fork and spawn_child share. */
struct procmgr_child_req {
	agent_pid parent;
	const char *goal, *image;
	const struct cap_spec *inherit;
	size_t ninherit;
	enum fork_mode mode;
	int fresh;		/* spawn_child: a MUTABLE view of the goal */
	const char *action;	/* "fork", "spawn_child" */
	const char *cwd;	/* normalised, or NULL: the parent's */
	const struct proc_child_opts *opts;	/* NULL: defaults */
};

/* Refused before anything is created unless the parent may delegate. */
static int
procmgr_check_inherit(struct procmgr *pm, const struct procmgr_child_req *rq)
{
	size_t i;

	for (i = 0; i < rq->ninherit; i++)
		if (cap_check_inherit(pm, rq->parent, &rq->inherit[i]) == -1)
			return -1;
	return 0;
}

/* The child row, from its parent's; *image is its image (malloc'd). */
static int
procmgr_insert_child(struct procmgr *pm, const struct procmgr_child_req *rq,
    const struct proc_budget *b, agent_pid *pid, char **image)
{
	const char *text;
	sqlite3_stmt *s;
	int rc;

	s = pmdb_stmt(pm, PMDB_PROC_CHILD, "INSERT INTO processes (parent_pid, "
	    "root_pid, instance_id, image, status, cwd, max_tool_calls, "
	    "max_child_processes, max_runtime, created_at, updated_at) "
	    "SELECT pid, root_pid, ?2, coalesce(?3, image), 'CREATED', "
	    "coalesce(?8, cwd), ?4, ?5, ?6, ?7, ?7 FROM processes WHERE pid = ?1 "
	    "RETURNING pid, image");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, rq->parent);
	sqlite3_bind_text(s, 2, pm->instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, rq->image, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, b->max_tool_calls);
	sqlite3_bind_int(s, 5, b->max_child_processes);
	sqlite3_bind_double(s, 6, b->max_runtime_seconds);
	sqlite3_bind_double(s, 7, clock_wall());
	sqlite3_bind_text(s, 8, rq->cwd, -1, SQLITE_STATIC);
	*pid = 0;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*pid = sqlite3_column_int64(s, 0);
		text = (const char *)sqlite3_column_text(s, 1);
		if ((*image = strdup(text ? text : "")) == NULL) {
			sqlite3_reset(s);
			return pmdb_error(pm, PM_E_INTERNAL, "out of memory");
		}
		rc = sqlite3_step(s);
	}
	if (rc != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	else if (*pid == 0)
		pmdb_error(pm, PM_E_NOT_FOUND, "process %" PRId64 " not found",
		    rq->parent);
	sqlite3_reset(s);
	return rc == SQLITE_DONE && *pid != 0 ? 0 : -1;
}

static int
procmgr_count_child(struct procmgr *pm, agent_pid parent)
{
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_PROC_CHILD_COUNT, "UPDATE processes SET "
	    "child_processes = child_processes + 1, updated_at = ?2 "
	    "WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, parent);
	sqlite3_bind_double(s, 2, clock_wall());
	return pmdb_step_done(pm, s);
}

/* Each chosen root must be one the parent sees, and still exist. */
static int
procmgr_check_roots(struct procmgr *pm, const struct procmgr_child_req *rq,
    const struct procmgr_proc *parent)
{
	const struct proc_child_opts *o = rq->opts;
	size_t i;
	int has;

	if (o == NULL || !o->select_roots)
		return 0;
	if (rq->fresh && o->nroots > 0)
		return pmdb_error(pm, PM_E_INVALID, "spawn_child takes no "
		    "roots: its view is fresh");
	for (i = 0; i < o->nroots; i++) {
		has = parent->view == 0 ? 0 :
		    objmem_view_has(pm, parent->view, o->roots[i]);
		if (has == -1)
			return -1;
		if (!has)
			return pmdb_error(pm, PM_E_INVALID, "object %" PRId64
			    " is not in the view of process %" PRId64,
			    o->roots[i], rq->parent);
	}
	return 0;
}

static int
procmgr_child_view(struct procmgr *pm, const struct procmgr_child_req *rq,
    const struct procmgr_proc *parent, agent_pid child, int64_t goal,
    int64_t *view)
{
	const struct proc_child_opts *o = rq->opts;

	if (rq->fresh)
		return objmem_create_view(pm, child, VIEW_MUTABLE, &goal, 1,
		    view);
	if (o != NULL && o->select_roots) {
		if (objmem_create_view(pm, child,
		    procrule_fork_view_mode(rq->mode), o->roots, o->nroots,
		    view) == -1)
			return -1;
	} else if (objmem_fork_view(pm, parent->view, child,
	    procrule_fork_view_mode(rq->mode), view) == -1)
		return -1;
	return objmem_view_add(pm, *view, goal);
}

/*
 * Authority first, in upstream's order (process:spawn, the image, the
 * directory), then the budget and the delegations: a refusal writes
 * nothing and says what was missing.
 */
static int
procmgr_child_allowed(struct procmgr *pm, const struct procmgr_child_req *rq,
    const struct procmgr_proc *p)
{
	if (procmgr_authorise(pm, rq->parent, PM_RES_SPAWN, "write",
	    rq->action) == -1 ||
	    procmgr_authorise_image(pm, rq->parent, rq->image,
	    rq->action) == -1 ||
	    (rq->cwd != NULL && procmgr_authorise_cwd(pm, rq->parent, rq->cwd,
	    rq->action) == -1))
		return -1;
	if (p->children >= p->budget.max_child_processes)
		return pmdb_error(pm, PM_E_LIMIT, "process %" PRId64
		    " exhausted its child process budget: %d/%d", rq->parent,
		    p->children, p->budget.max_child_processes);
	if (procmgr_check_roots(pm, rq, p) == -1)
		return -1;
	return procmgr_check_inherit(pm, rq);
}

static int
procmgr_child_trail(struct procmgr *pm, const struct procmgr_child_req *rq,
    const struct procmgr_proc *parent, agent_pid child, const char *image,
    int64_t goal)
{
	char actor[PM_ACTOR_MAX], jimage[PM_JSON_SMALL], json[PM_JSON_MAX];
	char in[PM_REFS_MAX], out[PM_REFS_MAX], action[32];

	procmgr_actor(actor, sizeof(actor), rq->parent);
	snprintf(action, sizeof(action), "process.%s", rq->action);
	procmgr_json_str(jimage, sizeof(jimage), image);
	if (rq->fresh)
		snprintf(json, sizeof(json), "{\"parent\":%" PRId64
		    ",\"image\":%s}", rq->parent, jimage);
	else
		snprintf(json, sizeof(json), "{\"parent\":%" PRId64
		    ",\"mode\":\"%s\",\"image\":%s}", rq->parent,
		    procrule_fork_mode_name(rq->mode), jimage);
	return procmgr_trail(pm, rq->fresh ? "process.created" :
	    "process.forked", actor, action, child,
	    procmgr_refs(in, sizeof(in), parent->goal),
	    procmgr_refs(out, sizeof(out), goal), json);
}

static int
procmgr_child_txn(struct procmgr *pm, const struct procmgr_child_req *rq,
    agent_pid *out, char **image)
{
	char issued[64];
	struct proc_budget b;
	struct procmgr_proc p;
	int64_t goal, view;
	agent_pid child = 0;
	size_t i;

	if (procmgr_load_live(pm, rq->parent, &p, rq->action) == -1 ||
	    procmgr_child_allowed(pm, rq, &p) == -1)
		return -1;
	b = procrule_child_budget(&p.budget, pm->fork_divisor,
	    pm->fork_min_tool_calls, pm->fork_min_child_processes);
	if (procmgr_insert_child(pm, rq, &b, &child, image) == -1 ||
	    procmgr_count_child(pm, rq->parent) == -1 ||
	    objmem_create(pm, child, OBJ_GOAL, rq->goal ? rq->goal :
	    PM_EMPTY_GOAL, 1, 0, &goal) == -1 ||
	    procmgr_child_view(pm, rq, &p, child, goal, &view) == -1 ||
	    procmgr_start(pm, child, goal, view) == -1)
		return -1;
	snprintf(issued, sizeof(issued), "process.%s:%" PRId64, rq->action,
	    rq->parent);
	for (i = 0; i < rq->ninherit; i++)
		if (cap_inherit(pm, rq->parent, child, &rq->inherit[i],
		    issued) == -1)
			return -1;
	if (procmgr_child_trail(pm, rq, &p, child, *image, goal) == -1)
		return -1;
	*out = child;
	return 0;
}

static int
procmgr_child(struct procmgr *pm, const struct procmgr_child_req *rq,
    agent_pid *out)
{
	struct procmgr_child_req r = *rq;
	char cwd[PM_CWD_MAX], why[PM_ERR_MAX];
	char *image = NULL;
	agent_pid child = 0;
	int rc;

	if (rq->image != NULL && *rq->image == '\0')
		return pmdb_error(pm, PM_E_INVALID, "%s: empty image",
		    rq->action);
	if (rq->opts != NULL && rq->opts->cwd != NULL) {
		if (procrule_normalize_cwd(rq->opts->cwd, cwd, sizeof(cwd), why,
		    sizeof(why)) == -1)
			return pmdb_error(pm, PM_E_INVALID, "%s: %s",
			    rq->action, why);
		r.cwd = cwd;
	}
	if (rq->opts != NULL && rq->opts->nroots > 0 && rq->opts->roots == NULL)
		return pmdb_error(pm, PM_E_INVALID, "%s: roots missing",
		    rq->action);
	if (procmgr_begin(pm) == -1)
		return -1;
	rc = procmgr_finish(pm, procmgr_child_txn(pm, &r, &child, &image));
	if (rc == 0) {
		*out = child;
		procmgr_run_hooks(pm, child, image);
	}
	free(image);
	return rc;
}

int
procmgr_fork(struct procmgr *pm, agent_pid parent, const char *goal,
    enum fork_mode mode, const char *image, const struct cap_spec *inherit,
    size_t ninherit, agent_pid *out)
{
	return procmgr_fork_opts(pm, parent, goal, mode, image, inherit,
	    ninherit, NULL, out);
}

int
procmgr_fork_opts(struct procmgr *pm, agent_pid parent, const char *goal,
    enum fork_mode mode, const char *image, const struct cap_spec *inherit,
    size_t ninherit, const struct proc_child_opts *opts, agent_pid *out)
{
	struct procmgr_child_req rq = { .parent = parent, .goal = goal,
	    .image = image, .inherit = inherit, .ninherit = ninherit,
	    .mode = mode, .action = "fork", .opts = opts };

	if ((unsigned)mode >= PROCRULE_NFORK_MODES)
		return pmdb_error(pm, PM_E_INVALID, "fork: unknown mode %d",
		    (int)mode);
	return procmgr_child(pm, &rq, out);
}

int
procmgr_spawn_child(struct procmgr *pm, agent_pid parent, const char *goal,
    const char *image, const struct cap_spec *inherit, size_t ninherit,
    agent_pid *out)
{
	return procmgr_spawn_child_opts(pm, parent, goal, image, inherit,
	    ninherit, NULL, out);
}

int
procmgr_spawn_child_opts(struct procmgr *pm, agent_pid parent,
    const char *goal, const char *image, const struct cap_spec *inherit,
    size_t ninherit, const struct proc_child_opts *opts, agent_pid *out)
{
	struct procmgr_child_req rq = { .parent = parent, .goal = goal,
	    .image = image, .inherit = inherit, .ninherit = ninherit,
	    .fresh = 1, .action = "spawn_child", .opts = opts };

	return procmgr_child(pm, &rq, out);
}

/* exec. */

static int
procmgr_exec_txn(struct procmgr *pm, agent_pid pid, const char *image,
    int preserve_memory, int preserve_caps)
{
	char actor[PM_ACTOR_MAX], jimage[PM_JSON_SMALL], json[PM_JSON_MAX];
	struct procmgr_proc p;
	sqlite3_stmt *s;

	if (procmgr_load_live(pm, pid, &p, "exec") == -1 ||
	    procmgr_authorise_image(pm, pid, image, "exec") == -1)
		return -1;
	if (!preserve_caps && cap_shrink_for_exec(pm, pid) == -1)
		return -1;
	s = pmdb_stmt(pm, PMDB_PROC_EXEC, "UPDATE processes SET image = ?2, "
	    "view_id = CASE WHEN ?3 THEN view_id END, updated_at = ?4 "
	    "WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_text(s, 2, image, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, preserve_memory != 0);
	sqlite3_bind_double(s, 4, clock_wall());
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	procmgr_actor(actor, sizeof(actor), pid);
	snprintf(json, sizeof(json), "{\"image\":%s,\"preserve_memory\":%s,"
	    "\"preserve_capabilities\":%s}",
	    procmgr_json_str(jimage, sizeof(jimage), image),
	    preserve_memory ? "true" : "false",
	    preserve_caps ? "true" : "false");
	return procmgr_trail(pm, "process.exec", actor, "process.exec", pid,
	    NULL, NULL, json);
}

int
procmgr_exec(struct procmgr *pm, agent_pid pid, const char *image,
    int preserve_memory, int preserve_caps)
{
	if (image == NULL || *image == '\0')
		return pmdb_error(pm, PM_E_INVALID, "exec: image missing");
	if (procmgr_begin(pm) == -1)
		return -1;
	return procmgr_finish(pm, procmgr_exec_txn(pm, pid, image,
	    preserve_memory, preserve_caps));
}

/* Waiting and waking. */

/*
 * parent back to RUNNABLE if it is WAITING_EVENT — for child when given
 * (its status_message names the child), else for anything.  Returns 1
 * when it woke, 0 when not, -1.
 */
static int
procmgr_wake(struct procmgr *pm, agent_pid parent, agent_pid child)
{
	char msg[PM_MSG_MAX];
	sqlite3_stmt *s;

	if (parent == 0)
		return 0;
	s = pmdb_stmt(pm, PMDB_PROC_WAKE, "UPDATE processes SET "
	    "status = 'RUNNABLE', status_message = NULL, updated_at = ?3 "
	    "WHERE pid = ?1 AND status = 'WAITING_EVENT' "
	    "AND (?2 IS NULL OR status_message = ?2)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, parent);
	if (child != 0) {
		snprintf(msg, sizeof(msg), "waiting for %" PRId64, child);
		sqlite3_bind_text(s, 2, msg, -1, SQLITE_STATIC);
	} else
		sqlite3_bind_null(s, 2);
	sqlite3_bind_double(s, 3, clock_wall());
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	return sqlite3_changes(pm->st->db) > 0;
}

/* A child ended: wake its parent if it waits for it, with an audit row. */
static int
procmgr_wake_parent(struct procmgr *pm, const struct procmgr_proc *child,
    enum proc_status status)
{
	char json[PM_JSON_MAX], target[PM_ACTOR_MAX + 8];
	int woke;

	if ((woke = procmgr_wake(pm, child->parent, child->pid)) <= 0)
		return woke;
	procmgr_target(target, sizeof(target), child->parent);
	snprintf(json, sizeof(json), "{\"child\":%" PRId64 ",\"child_status\":"
	    "\"%s\"}", child->pid, procrule_status_name(status));
	return audit_record(pm, "process", "process.wait_wake", target,
	    child->parent, NULL, NULL, json);
}

static int
procmgr_set_waiting(struct procmgr *pm, agent_pid parent, agent_pid child)
{
	char msg[PM_MSG_MAX];
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_PROC_WAITING, "UPDATE processes SET "
	    "status = 'WAITING_EVENT', status_message = ?2, updated_at = ?3 "
	    "WHERE pid = ?1");
	if (s == NULL)
		return -1;
	snprintf(msg, sizeof(msg), "waiting for %" PRId64, child);
	sqlite3_bind_int64(s, 1, parent);
	sqlite3_bind_text(s, 2, msg, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(s, 3, clock_wall());
	return pmdb_step_done(pm, s);
}

static int
procmgr_set_view(struct procmgr *pm, agent_pid pid, int64_t view)
{
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_PROC_VIEW, "UPDATE processes SET view_id = ?2, "
	    "updated_at = ?3 WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_int64(s, 2, view);
	sqlite3_bind_double(s, 3, clock_wall());
	return pmdb_step_done(pm, s);
}

/* p's view, made (READ_ONLY, empty) when exec dropped it. */
static int
procmgr_ensure_view(struct procmgr *pm, struct procmgr_proc *p)
{
	if (p->view != 0)
		return 0;
	if (objmem_create_view(pm, p->pid, VIEW_READ_ONLY, NULL, 0,
	    &p->view) == -1)
		return -1;
	return procmgr_set_view(pm, p->pid, p->view);
}

/* The child has ended: a read handle on its result, in parent's view. */
static int
procmgr_collect(struct procmgr *pm, struct procmgr_proc *p,
    const struct procmgr_proc *c, int block, struct proc_wait *out)
{
	char issued[64];

	out->status = c->status;
	out->result_oid = c->result;
	out->handle_cap = 0;
	if (c->result != 0) {
		snprintf(issued, sizeof(issued), "process.wait:%" PRId64,
		    c->pid);
		if (cap_object_handle(pm, p->pid, c->result, PM_HANDLE_RIGHTS,
		    issued, &out->handle_cap) == -1 ||
		    procmgr_ensure_view(pm, p) == -1 ||
		    objmem_view_add(pm, p->view, c->result) == -1)
			return -1;
	}
	/* A poll leaves the parent as it is. */
	if (!block)
		return 1;
	return procmgr_wake(pm, p->pid, 0) == -1 ? -1 : 1;
}

static int
procmgr_wait_txn(struct procmgr *pm, agent_pid parent, agent_pid child,
    int block, struct proc_wait *out)
{
	char actor[PM_ACTOR_MAX], json[PM_JSON_MAX], refs[PM_REFS_MAX];
	struct procmgr_proc p, c;
	int rc;

	if (procmgr_load_live(pm, parent, &p, "wait in") == -1 ||
	    procmgr_load_child(pm, parent, child, &c) == -1)
		return -1;
	out->status = c.status;
	if (procrule_status_terminal(c.status))
		rc = procmgr_collect(pm, &p, &c, block, out);
	else if (!block)
		rc = 0;
	else if (p.status == PS_PAUSED)
		return pmdb_error(pm, PM_E_INVALID, "cannot wait in process %"
		    PRId64 ": it is PAUSED", parent);
	else
		rc = procmgr_set_waiting(pm, parent, child) == -1 ? -1 : 0;
	if (rc == -1)
		return -1;
	procmgr_actor(actor, sizeof(actor), parent);
	snprintf(json, sizeof(json), "{\"child\":%" PRId64 ",\"child_status\":"
	    "\"%s\",\"block\":%s}", child, procrule_status_name(c.status),
	    block ? "true" : "false");
	if (procmgr_trail(pm, "process.wait", actor, "process.wait", child,
	    NULL, procmgr_refs(refs, sizeof(refs), rc ? c.result : 0),
	    json) == -1)
		return -1;
	return rc;
}

/* One wait transaction; suspend: the parent waits for a live child. */
static int
procmgr_wait_once(struct procmgr *pm, agent_pid parent, agent_pid child,
    int suspend, struct proc_wait *out)
{
	struct proc_wait w = { .status = PS_RUNNABLE };
	int rc;

	if (procmgr_begin(pm) == -1)
		return -1;
	if ((rc = procmgr_finish(pm, procmgr_wait_txn(pm, parent, child,
	    suspend, &w))) == -1)
		return -1;
	if (out != NULL)
		*out = w;
	return rc;
}

int
procmgr_wait(struct procmgr *pm, agent_pid parent, agent_pid child,
    double timeout, struct proc_wait *out)
{
	int rc = procmgr_wait_once(pm, parent, child, 1, out);

	if (rc == 0 && timeout == 0)
		return pmdb_error(pm, PM_E_TIMEOUT, "child still running: %"
		    PRId64, child);
	return rc;
}

int
procmgr_poll_child(struct procmgr *pm, agent_pid parent, agent_pid child,
    struct proc_wait *out)
{
	return procmgr_wait_once(pm, parent, child, 0, out);
}

int
procmgr_list_children(struct procmgr *pm, agent_pid pid,
    int include_terminal, void (*cb)(const struct proc_info *, void *),
    void *arg)
{
	struct procmgr_proc p;
	struct proc_info pi;
	sqlite3_stmt *s;
	int rc;

	pm->errtype = PM_OK;
	if (procmgr_load(pm, pid, &p) == -1)
		return -1;
	s = pmdb_stmt(pm, PMDB_PROC_CHILDREN, "SELECT " PM_PROC_COLUMNS
	    " FROM processes WHERE parent_pid = ?1 "
	    "AND (?2 OR ended_at IS NULL) ORDER BY pid");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_int(s, 2, include_terminal != 0);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		procmgr_proc_row(s, &p);
		memset(&pi, 0, sizeof(pi));
		pi.pid = p.pid;
		pi.parent_pid = p.parent;
		pi.root_pid = p.root;
		pi.status = p.status;
		pi.goal_oid = p.goal;
		pi.result_oid = p.result;
		pi.view_id = p.view;
		pi.budget = p.budget;
		pi.tool_calls = p.tool_calls;
		pi.child_processes = p.children;
		pi.runtime_used = p.runtime_used;
		pi.instance_id = (char *)sqlite3_column_text(s, 12);
		pi.operation_id = (char *)sqlite3_column_text(s, 13);
		pi.image = (char *)sqlite3_column_text(s, 14);
		pi.status_message = (char *)sqlite3_column_text(s, 15);
		pi.cwd = (char *)sqlite3_column_text(s, 16);
		pi.created_at = sqlite3_column_double(s, 17);
		pi.updated_at = sqlite3_column_double(s, 18);
		pi.ended_at = sqlite3_column_double(s, 19);
		cb(&pi, arg);
	}
	if (rc != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Ending processes. */

static int
procmgr_outbox(struct procmgr *pm, agent_pid pid, const struct outbox_entry *ob)
{
	sqlite3_stmt *s;

	if (ob == NULL)
		return 0;
	if (ob->operation_id == NULL || ob->result == NULL)
		return pmdb_error(pm, PM_E_INVALID, "outbox entry without "
		    "operation_id or result");
	s = pmdb_stmt(pm, PMDB_PROC_OUTBOX, "INSERT OR REPLACE INTO outbox "
	    "(operation_id, result, instance_id, created_at, attempts, "
	    "next_attempt, pid) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, ob->operation_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, ob->result, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, pm->instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 4, clock_wall());
	sqlite3_bind_double(s, 5, ob->next_attempt);
	sqlite3_bind_int64(s, 6, pid);
	return pmdb_step_done(pm, s);
}

/* An existing object pid may name as its result: its own, or readable. */
static int
procmgr_result_object(struct procmgr *pm, agent_pid pid, int64_t oid)
{
	char resource[PM_REFS_MAX];
	agent_pid owner;

	if (objmem_owner(pm, oid, &owner) == -1)
		return -1;
	if (owner == pid)
		return 0;
	snprintf(resource, sizeof(resource), "object:%" PRId64, oid);
	return procmgr_authorise(pm, pid, resource, "read", "exit with it");
}

static int
procmgr_exit_txn(struct procmgr *pm, agent_pid pid, const char *result,
    int64_t roid, int failed, const char *message,
    const struct outbox_entry *ob)
{
	char actor[PM_ACTOR_MAX], jmsg[PM_JSON_SMALL], json[PM_JSON_MAX];
	char refs[PM_REFS_MAX];
	enum proc_status to = failed ? PS_FAILED : PS_EXITED;
	double now = clock_wall();
	struct procmgr_proc p;
	sqlite3_stmt *s;

	if (procmgr_load_live(pm, pid, &p, "exit") == -1)
		return -1;
	if (roid != 0 && procmgr_result_object(pm, pid, roid) == -1)
		return -1;
	if (result != NULL && objmem_create(pm, pid, OBJ_RESULT, result, 1, 0,
	    &roid) == -1)
		return -1;
	s = pmdb_stmt(pm, PMDB_PROC_END, "UPDATE processes SET status = ?2, "
	    "status_message = ?3, result_oid = ?4, updated_at = ?5, "
	    "ended_at = ?5 WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_text(s, 2, procrule_status_name(to), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, message, -1, SQLITE_STATIC);
	pmdb_bind_id(s, 4, roid);
	sqlite3_bind_double(s, 5, now);
	if (pmdb_step_done(pm, s) == -1 ||
	    objmem_release_owned(pm, pid, roid) == -1 ||
	    procmgr_wake_parent(pm, &p, to) == -1 ||
	    procmgr_outbox(pm, pid, ob) == -1)
		return -1;
	procmgr_actor(actor, sizeof(actor), pid);
	if (message == NULL)
		snprintf(json, sizeof(json), "{\"status\":\"%s\"}",
		    procrule_status_name(to));
	else
		snprintf(json, sizeof(json), "{\"status\":\"%s\",\"message\":"
		    "%s}", procrule_status_name(to),
		    procmgr_json_str(jmsg, sizeof(jmsg), message));
	return procmgr_trail(pm, "process.exited", actor, "process.exit", pid,
	    NULL, procmgr_refs(refs, sizeof(refs), roid), json);
}

int
procmgr_exit(struct procmgr *pm, agent_pid pid, const char *result,
    int failed, const char *message, const struct outbox_entry *ob)
{
	if (procmgr_begin(pm) == -1)
		return -1;
	return procmgr_finish(pm, procmgr_exit_txn(pm, pid, result, 0, failed,
	    message, ob));
}

int
procmgr_exit_object(struct procmgr *pm, agent_pid pid, int64_t result_oid,
    int failed, const char *message, const struct outbox_entry *ob)
{
	if (result_oid <= 0)
		return pmdb_error(pm, PM_E_INVALID, "exit: result object "
		    "missing");
	if (procmgr_begin(pm) == -1)
		return -1;
	return procmgr_finish(pm, procmgr_exit_txn(pm, pid, NULL, result_oid,
	    failed, message, ob));
}

/* A signal from actor (a pid, or "runtime") as action. */
struct procmgr_signal_req {
	agent_pid pid;
	enum proc_signal sig;
	const char *reason;
	const char *actor, *action;
	const struct outbox_entry *ob;
};

/* The terminal cleanup of a kill, as at exit: memory, event, parent. */
static int
procmgr_killed(struct procmgr *pm, const struct procmgr_proc *p)
{
	char actor[PM_ACTOR_MAX];

	procmgr_actor(actor, sizeof(actor), p->pid);
	if (objmem_release_owned(pm, p->pid, p->result) == -1 ||
	    audit_event(pm, "process.exited", actor, p->pid,
	    "{\"status\":\"KILLED\"}") == -1)
		return -1;
	return procmgr_wake_parent(pm, p, PS_KILLED);
}

static int
procmgr_signal_txn(struct procmgr *pm, const struct procmgr_signal_req *rq,
    const struct procmgr_proc *p)
{
	char jreason[PM_JSON_SMALL], json[PM_JSON_MAX];
	double now = clock_wall();
	sqlite3_stmt *s;
	int to;

	if (procrule_status_terminal(p->status))
		return pmdb_error(pm, PM_E_INVALID, "cannot signal process %"
		    PRId64 ": it has ended (%s)", p->pid,
		    procrule_status_name(p->status));
	if ((to = procrule_signal_transition(p->status, rq->sig)) == -1)
		return pmdb_error(pm, PM_E_INVALID, "signal %s does not apply "
		    "to process %" PRId64 " (%s)",
		    procrule_signal_name(rq->sig), p->pid,
		    procrule_status_name(p->status));
	s = pmdb_stmt(pm, PMDB_PROC_SIGNAL, "UPDATE processes SET status = ?2, "
	    "status_message = ?3, updated_at = ?4, ended_at = ?5 "
	    "WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, p->pid);
	sqlite3_bind_text(s, 2, procrule_status_name(to), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, rq->reason, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 4, now);
	pmdb_bind_time(s, 5, to == PS_KILLED ? now : 0);
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	if (to == PS_KILLED && procmgr_killed(pm, p) == -1)
		return -1;
	if (procmgr_outbox(pm, p->pid, rq->ob) == -1)
		return -1;
	snprintf(json, sizeof(json), "{\"signal\":\"%s\",\"reason\":%s}",
	    procrule_signal_name(rq->sig),
	    procmgr_json_str(jreason, sizeof(jreason), rq->reason));
	return procmgr_trail(pm, "process.signal", rq->actor, rq->action,
	    p->pid, NULL, NULL, json);
}

static int
procmgr_send_signal(struct procmgr *pm, const struct procmgr_signal_req *rq,
    agent_pid parent)
{
	struct procmgr_proc p;
	int rc;

	if ((unsigned)rq->sig >= PROCRULE_NSIGNALS)
		return pmdb_error(pm, PM_E_INVALID, "unknown signal %d",
		    (int)rq->sig);
	if (procmgr_begin(pm) == -1)
		return -1;
	if (parent != 0)
		rc = procmgr_load_live(pm, parent, &p, "signal from") == -1 ||
		    procmgr_load_child(pm, parent, rq->pid, &p) == -1 ? -1 : 0;
	else
		rc = procmgr_load(pm, rq->pid, &p);
	if (rc == 0)
		rc = procmgr_signal_txn(pm, rq, &p);
	return procmgr_finish(pm, rc);
}

int
procmgr_signal(struct procmgr *pm, agent_pid pid, enum proc_signal sig,
    const char *reason)
{
	struct procmgr_signal_req rq = { .pid = pid, .sig = sig,
	    .reason = reason, .actor = "runtime", .action = "process.signal" };

	return procmgr_send_signal(pm, &rq, 0);
}

int
procmgr_signal_child(struct procmgr *pm, agent_pid parent, agent_pid child,
    enum proc_signal sig, const char *reason)
{
	char actor[PM_ACTOR_MAX];
	struct procmgr_signal_req rq = { .pid = child, .sig = sig,
	    .reason = reason, .actor = actor,
	    .action = "process.signal_child" };

	procmgr_actor(actor, sizeof(actor), parent);
	return procmgr_send_signal(pm, &rq, parent);
}

int
procmgr_kill(struct procmgr *pm, agent_pid pid, const char *reason,
    const struct outbox_entry *ob)
{
	struct procmgr_signal_req rq = { .pid = pid, .sig = PSIG_TERMINATE,
	    .reason = reason, .actor = "runtime", .action = "process.kill",
	    .ob = ob };

	return procmgr_send_signal(pm, &rq, 0);
}

/*
 * pid's live descendants, deepest first, in *out (the caller frees it).
 */
static int
procmgr_subtree(struct procmgr *pm, agent_pid pid, agent_pid **out, size_t *n)
{
	sqlite3_stmt *s;
	agent_pid *grown;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	s = pmdb_stmt(pm, PMDB_PROC_SUBTREE, "WITH RECURSIVE sub(pid, depth) "
	    "AS (SELECT pid, 1 FROM processes WHERE parent_pid = ?1 UNION ALL "
	    "SELECT p.pid, sub.depth + 1 FROM processes p JOIN sub "
	    "ON p.parent_pid = sub.pid) SELECT sub.pid FROM sub JOIN processes "
	    "p ON p.pid = sub.pid WHERE p.ended_at IS NULL "
	    "ORDER BY sub.depth DESC, sub.pid");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = reallocarray(*out, cap,
			    sizeof(**out))) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			*out = grown;
		}
		(*out)[(*n)++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	free(*out);
	*out = NULL;
	if (rc == SQLITE_NOMEM)
		return pmdb_error(pm, PM_E_INTERNAL, "out of memory");
	return pmdb_sqlite_error(pm);
}

static int
procmgr_kill_tree_txn(struct procmgr *pm, struct procmgr_signal_req *rq)
{
	struct procmgr_signal_req sub = *rq;
	struct procmgr_proc p;
	agent_pid *pids, top = rq->pid;
	size_t n, i;
	int rc = 0;

	if (procmgr_load(pm, top, &p) == -1 ||
	    procmgr_subtree(pm, top, &pids, &n) == -1)
		return -1;
	sub.ob = NULL;
	for (i = 0; i < n && rc == 0; i++) {
		sub.pid = pids[i];
		rc = procmgr_load(pm, pids[i], &p) == -1 ? -1 :
		    procmgr_signal_txn(pm, &sub, &p);
	}
	free(pids);
	if (rc == -1 || procmgr_load(pm, top, &p) == -1)
		return -1;
	return procmgr_signal_txn(pm, rq, &p);
}

int
procmgr_kill_tree(struct procmgr *pm, agent_pid pid, const char *reason,
    const struct outbox_entry *ob)
{
	struct procmgr_signal_req rq = { .pid = pid, .sig = PSIG_TERMINATE,
	    .reason = reason, .actor = "runtime", .action = "process.kill",
	    .ob = ob };

	if (procmgr_begin(pm) == -1)
		return -1;
	return procmgr_finish(pm, procmgr_kill_tree_txn(pm, &rq));
}

/* Memory, working directory, budgets. */

/*
 * Each merged object gets a read handle in the parent, as a waited-for
 * result does: merging makes the child's work the parent's to use.
 */
static int
procmgr_merge_handles(struct procmgr *pm, agent_pid parent, agent_pid child,
    const int64_t *oids, size_t n)
{
	char issued[64];
	int64_t cap;
	size_t i;

	snprintf(issued, sizeof(issued), "process.merge_child_memory:%"
	    PRId64, child);
	for (i = 0; i < n; i++)
		if (cap_object_handle(pm, parent, oids[i], PM_HANDLE_RIGHTS,
		    issued, &cap) == -1)
			return -1;
	return 0;
}

/* "[oid,oid,...]" for the audit record's output refs; NULL: no memory. */
static char *
procmgr_refs_list(const int64_t *oids, size_t n)
{
	size_t len = 3 + n * 21, off = 0, i;
	char *buf;

	if ((buf = malloc(len)) == NULL)
		return NULL;
	buf[off++] = '[';
	for (i = 0; i < n; i++)
		off += snprintf(buf + off, len - off, "%s%" PRId64,
		    i ? "," : "", oids[i]);
	snprintf(buf + off, len - off, "]");
	return buf;
}

static int
procmgr_merge_txn(struct procmgr *pm, agent_pid parent, agent_pid child,
    int *merged)
{
	char actor[PM_ACTOR_MAX], json[PM_JSON_MAX];
	struct procmgr_proc p, c;
	int64_t *oids = NULL;
	char *refs = NULL;
	size_t n = 0;
	int rc;

	*merged = 0;
	if (procmgr_load_live(pm, parent, &p, "merge into") == -1 ||
	    procmgr_load_child(pm, parent, child, &c) == -1)
		return -1;
	if (!procrule_status_terminal(c.status))
		return pmdb_error(pm, PM_E_INVALID, "cannot merge running "
		    "child process %" PRId64 " (%s)", child,
		    procrule_status_name(c.status));
	if (c.view != 0 && (procmgr_ensure_view(pm, &p) == -1 ||
	    objmem_merge_view(pm, p.view, c.view, &oids, &n) == -1))
		return -1;
	if ((rc = procmgr_merge_handles(pm, parent, child, oids, n)) == 0 &&
	    (refs = procmgr_refs_list(oids, n)) == NULL)
		rc = pmdb_error(pm, PM_E_INTERNAL, "out of memory");
	if (rc == 0) {
		*merged = (int)n;
		procmgr_actor(actor, sizeof(actor), parent);
		snprintf(json, sizeof(json), "{\"child\":%" PRId64
		    ",\"merged\":%d}", child, *merged);
		rc = procmgr_trail(pm, "process.merged", actor,
		    "process.merge_child_memory", child, NULL, refs, json);
	}
	free(oids);
	free(refs);
	return rc;
}

int
procmgr_merge_child_memory(struct procmgr *pm, agent_pid parent,
    agent_pid child, int *merged)
{
	int n = 0;

	if (procmgr_begin(pm) == -1)
		return -1;
	if (procmgr_finish(pm, procmgr_merge_txn(pm, parent, child, &n)) == -1)
		return -1;
	if (merged != NULL)
		*merged = n;
	return 0;
}

static int
procmgr_chdir_txn(struct procmgr *pm, agent_pid pid, const char *cwd)
{
	char actor[PM_ACTOR_MAX], jcwd[PM_JSON_SMALL], json[PM_JSON_MAX];
	struct procmgr_proc p;
	sqlite3_stmt *s;

	if (procmgr_load_live(pm, pid, &p, "chdir") == -1 ||
	    procmgr_authorise_cwd(pm, pid, cwd, "chdir") == -1)
		return -1;
	s = pmdb_stmt(pm, PMDB_PROC_CHDIR, "UPDATE processes SET cwd = ?2, "
	    "updated_at = ?3 WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_text(s, 2, cwd, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 3, clock_wall());
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	procmgr_actor(actor, sizeof(actor), pid);
	snprintf(json, sizeof(json), "{\"cwd\":%s}",
	    procmgr_json_str(jcwd, sizeof(jcwd), cwd));
	return procmgr_trail(pm, "process.chdir", actor, "process.chdir", pid,
	    NULL, NULL, json);
}

int
procmgr_chdir(struct procmgr *pm, agent_pid pid, const char *path)
{
	char cwd[PM_CWD_MAX], why[PM_ERR_MAX];

	if (procrule_normalize_cwd(path, cwd, sizeof(cwd), why,
	    sizeof(why)) == -1)
		return pmdb_error(pm, PM_E_INVALID, "%s", why);
	if (procmgr_begin(pm) == -1)
		return -1;
	return procmgr_finish(pm, procmgr_chdir_txn(pm, pid, cwd));
}

/* The ancestors of ?1, for the statements that charge them. */
#define PM_ANCESTORS "WITH RECURSIVE anc(pid) AS (SELECT parent_pid " \
	"FROM processes WHERE pid = ?1 AND parent_pid IS NOT NULL " \
	"UNION ALL SELECT p.parent_pid FROM processes p JOIN anc " \
	"ON p.pid = anc.pid WHERE p.parent_pid IS NOT NULL) "

/*
 * A child's tool call is its ancestors' too: refused while any of them
 * has used its budget up, else counted in each.
 */
static int
procmgr_charge_ancestors(struct procmgr *pm, const struct procmgr_proc *p)
{
	sqlite3_stmt *s;
	int rc;

	s = pmdb_stmt(pm, PMDB_PROC_ANC_FULL, PM_ANCESTORS "SELECT p.pid, "
	    "p.tool_calls, p.max_tool_calls FROM processes p JOIN anc "
	    "ON p.pid = anc.pid WHERE p.tool_calls >= p.max_tool_calls "
	    "LIMIT 1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, p->pid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		pmdb_error(pm, PM_E_LIMIT, "tool call budget of ancestor %"
		    PRId64 " exhausted: %d/%d", (int64_t)sqlite3_column_int64(s, 0),
		    sqlite3_column_int(s, 1), sqlite3_column_int(s, 2));
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return pmdb_sqlite_error(pm);
	s = pmdb_stmt(pm, PMDB_PROC_ANC_CHARGE, PM_ANCESTORS "UPDATE processes "
	    "SET tool_calls = tool_calls + 1, updated_at = ?2 "
	    "WHERE pid IN (SELECT pid FROM anc)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, p->pid);
	sqlite3_bind_double(s, 2, clock_wall());
	return pmdb_step_done(pm, s);
}

/* One more tool call for p, refused when a budget is used up. */
static int
procmgr_charge(struct procmgr *pm, struct procmgr_proc *p)
{
	sqlite3_stmt *s;

	if (p->tool_calls >= p->budget.max_tool_calls)
		return pmdb_error(pm, PM_E_LIMIT, "tool call budget exhausted: "
		    "%d/%d", p->tool_calls, p->budget.max_tool_calls);
	/* A root has no ancestors: no walk. */
	if (p->parent != 0 && procmgr_charge_ancestors(pm, p) == -1)
		return -1;
	s = pmdb_stmt(pm, PMDB_PROC_CHARGE, "UPDATE processes SET "
	    "tool_calls = tool_calls + 1, updated_at = ?2 WHERE pid = ?1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, p->pid);
	sqlite3_bind_double(s, 2, clock_wall());
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	p->tool_calls++;
	return 0;
}

static int
procmgr_charge_txn(struct procmgr *pm, agent_pid pid)
{
	char actor[PM_ACTOR_MAX], json[PM_JSON_MAX];
	struct procmgr_proc p;

	if (procmgr_load_live(pm, pid, &p, "charge") == -1 ||
	    procmgr_charge(pm, &p) == -1)
		return -1;
	procmgr_actor(actor, sizeof(actor), pid);
	snprintf(json, sizeof(json), "{\"tool_calls\":%d,\"max\":%d}",
	    p.tool_calls, p.budget.max_tool_calls);
	return procmgr_trail(pm, "process.tool_call", actor,
	    "process.tool_call", pid, NULL, NULL, json);
}

int
procmgr_charge_tool_call(struct procmgr *pm, agent_pid pid)
{
	if (procmgr_begin(pm) == -1)
		return -1;
	return procmgr_finish(pm, procmgr_charge_txn(pm, pid));
}

/* The first of pid and its ancestors past max_runtime, into *over. */
static int
procmgr_runtime_over(struct procmgr *pm, agent_pid pid, agent_pid *over,
    double *used, double *max)
{
	sqlite3_stmt *s;
	int rc;

	*over = 0;
	s = pmdb_stmt(pm, PMDB_PROC_ANC_OVER, PM_ANCESTORS ", self(pid) AS "
	    "(SELECT ?1 UNION ALL SELECT pid FROM anc) SELECT p.pid, "
	    "p.runtime_used, p.max_runtime FROM processes p JOIN self "
	    "ON p.pid = self.pid WHERE p.runtime_used > p.max_runtime "
	    "ORDER BY p.pid LIMIT 1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*over = sqlite3_column_int64(s, 0);
		*used = sqlite3_column_double(s, 1);
		*max = sqlite3_column_double(s, 2);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return pmdb_sqlite_error(pm);
	return 0;
}

static int
procmgr_runtime_txn(struct procmgr *pm, agent_pid pid, double seconds,
    agent_pid *over, double *used, double *max)
{
	char actor[PM_ACTOR_MAX], json[PM_JSON_MAX];
	struct procmgr_proc p;
	sqlite3_stmt *s;

	if (procmgr_load_live(pm, pid, &p, "charge runtime to") == -1)
		return -1;
	s = pmdb_stmt(pm, PMDB_PROC_RUNTIME, PM_ANCESTORS "UPDATE processes "
	    "SET runtime_used = runtime_used + ?2, updated_at = ?3 "
	    "WHERE pid = ?1 OR pid IN (SELECT pid FROM anc)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_double(s, 2, seconds);
	sqlite3_bind_double(s, 3, clock_wall());
	if (pmdb_step_done(pm, s) == -1 ||
	    procmgr_runtime_over(pm, pid, over, used, max) == -1)
		return -1;
	procmgr_actor(actor, sizeof(actor), pid);
	snprintf(json, sizeof(json), "{\"seconds\":%.3f,\"over\":%" PRId64
	    "}", seconds, *over);
	return procmgr_trail(pm, "process.runtime", actor, "process.runtime",
	    pid, NULL, NULL, json);
}

int
procmgr_charge_runtime(struct procmgr *pm, agent_pid pid, double seconds)
{
	double used = 0, max = 0;
	agent_pid over = 0;

	if (!(seconds >= 0))
		return pmdb_error(pm, PM_E_INVALID, "charge_runtime: %g "
		    "seconds", seconds);
	if (procmgr_begin(pm) == -1)
		return -1;
	if (procmgr_finish(pm, procmgr_runtime_txn(pm, pid, seconds, &over,
	    &used, &max)) == -1)
		return -1;
	if (over != 0)
		return pmdb_error(pm, PM_E_LIMIT, "runtime budget of process %"
		    PRId64 " exceeded: %.3f/%.3f s", over, used, max);
	return 0;
}

/*
 * The check's decision.  A refusal is recorded too: the transaction
 * commits its audit record and the call still fails (*refused).
 */
static int
procmgr_check_txn(struct procmgr *pm, agent_pid pid, const char *resource,
    const char *right, int *refused)
{
	char actor[PM_ACTOR_MAX], jres[PM_JSON_SMALL], jwhy[PM_JSON_SMALL];
	char json[PM_JSON_MAX], why[PM_ERR_MAX];
	enum cap_policy pol;
	struct procmgr_proc p;

	*refused = 0;
	if (procmgr_load_live(pm, pid, &p, "check") == -1 ||
	    cap_policy(pm, pid, resource, right, clock_wall(), &pol) == -1)
		return -1;
	if (pol == CAP_DENY)
		*refused = pmdb_error(pm, PM_E_DENIED, "process %" PRId64
		    " may not %s %.200s", pid, right, resource);
	else if (procmgr_charge(pm, &p) == -1) {
		if (pm->errtype != PM_E_LIMIT)
			return -1;
		*refused = -1;
	}
	procmgr_json_str(jres, sizeof(jres), resource);
	if (*refused) {
		snprintf(why, sizeof(why), "%s", pm->err);
		snprintf(json, sizeof(json), "{\"decision\":\"deny\","
		    "\"resource\":%s,\"right\":\"%s\",\"policy\":\"%s\","
		    "\"reason\":%s}", jres, right, cap_policy_name(pol),
		    procmgr_json_str(jwhy, sizeof(jwhy), why));
	} else
		snprintf(json, sizeof(json), "{\"decision\":\"allow\","
		    "\"resource\":%s,\"right\":\"%s\",\"policy\":\"%s\","
		    "\"tool_calls\":%d}", jres, right, cap_policy_name(pol),
		    p.tool_calls);
	procmgr_actor(actor, sizeof(actor), pid);
	return procmgr_trail(pm, *refused ? "capability.denied" :
	    "capability.allowed", actor, "capability.check", pid, NULL, NULL,
	    json);
}

int
procmgr_check(struct procmgr *pm, agent_pid pid, const char *resource,
    const char *right)
{
	char why[PM_ERR_MAX];
	int refused;

	if (resource == NULL || right == NULL ||
	    cap_rights_valid(right, why, sizeof(why)) == -1 ||
	    strchr(right, ',') != NULL)
		return pmdb_error(pm, PM_E_INVALID, "check: one right on a "
		    "resource is needed");
	if (procmgr_begin(pm) == -1)
		return -1;
	if (procmgr_finish(pm, procmgr_check_txn(pm, pid, resource, right,
	    &refused)) == -1)
		return -1;
	/* A refusal's audit record is committed; its error stands. */
	return refused ? -1 : 0;
}

/* Reading. */

static char *
procmgr_column_dup(sqlite3_stmt *s, int col, int *nomem)
{
	const char *text = (const char *)sqlite3_column_text(s, col);
	char *copy;

	if (text == NULL)
		return NULL;
	if ((copy = strdup(text)) == NULL)
		*nomem = 1;
	return copy;
}

int
procmgr_get(struct procmgr *pm, agent_pid pid, struct proc_info *out)
{
	struct procmgr_proc p;
	sqlite3_stmt *s;
	int nomem = 0;

	memset(out, 0, sizeof(*out));
	if (procmgr_select(pm, pid, &s) != 1)
		return -1;
	procmgr_proc_row(s, &p);
	out->pid = p.pid;
	out->parent_pid = p.parent;
	out->root_pid = p.root;
	out->status = p.status;
	out->goal_oid = p.goal;
	out->result_oid = p.result;
	out->view_id = p.view;
	out->budget = p.budget;
	out->tool_calls = p.tool_calls;
	out->child_processes = p.children;
	out->runtime_used = p.runtime_used;
	out->instance_id = procmgr_column_dup(s, 12, &nomem);
	out->operation_id = procmgr_column_dup(s, 13, &nomem);
	out->image = procmgr_column_dup(s, 14, &nomem);
	out->status_message = procmgr_column_dup(s, 15, &nomem);
	out->cwd = procmgr_column_dup(s, 16, &nomem);
	out->created_at = sqlite3_column_double(s, 17);
	out->updated_at = sqlite3_column_double(s, 18);
	out->ended_at = sqlite3_column_double(s, 19);
	sqlite3_reset(s);
	if (nomem) {
		procmgr_info_free(out);
		return pmdb_error(pm, PM_E_INTERNAL, "out of memory");
	}
	return 0;
}

void
procmgr_info_free(struct proc_info *pi)
{
	free(pi->instance_id);
	free(pi->operation_id);
	free(pi->image);
	free(pi->status_message);
	free(pi->cwd);
	memset(pi, 0, sizeof(*pi));
}

/* Recovery. */

/* The live processes of instance_id, with their parents. */
static int
procmgr_live_of(struct procmgr *pm, const char *instance_id,
    struct procmgr_proc **out, size_t *n)
{
	sqlite3_stmt *s;
	struct procmgr_proc *grown;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(pm->st->db, "SELECT pid, parent_pid "
	    "FROM processes WHERE instance_id = ? AND ended_at IS NULL",
	    -1, &s, NULL) != SQLITE_OK)
		return pmdb_sqlite_error(pm);
	sqlite3_bind_text(s, 1, instance_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = reallocarray(*out, cap,
			    sizeof(**out))) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			*out = grown;
		}
		memset(&(*out)[*n], 0, sizeof(**out));
		(*out)[*n].pid = sqlite3_column_int64(s, 0);
		(*out)[(*n)++].parent = sqlite3_column_int64(s, 1);
	}
	if (rc == SQLITE_NOMEM)
		pmdb_error(pm, PM_E_INTERNAL, "out of memory");
	else if (rc != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Error results of the roots with an operation, unless one is queued. */
static const char procmgr_fail_outbox_sql[] =
	"INSERT OR IGNORE INTO outbox (operation_id, result, instance_id, "
	"created_at, attempts, next_attempt, pid) SELECT operation_id, "
	"json_object('error', ?2, 'error_type', 'internal', 'pid', pid), "
	"instance_id, ?3, 0, ?4, pid FROM processes WHERE instance_id = ?1 "
	"AND ended_at IS NULL AND parent_pid IS NULL "
	"AND operation_id IS NOT NULL";
static const char procmgr_fail_update_sql[] =
	"UPDATE processes SET status = 'FAILED', status_message = ?2, "
	"updated_at = ?3, ended_at = ?3 WHERE instance_id = ?1 "
	"AND ended_at IS NULL";

static int
procmgr_fail_run(struct procmgr *pm, const char *sql, const char *instance_id,
    const char *reason, double now, double next_attempt)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(pm->st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return pmdb_sqlite_error(pm);
	sqlite3_bind_text(s, 1, instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 3, now);
	if (sqlite3_bind_parameter_count(s) >= 4)
		sqlite3_bind_double(s, 4, next_attempt);
	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
procmgr_fail_txn(struct procmgr *pm, const char *instance_id,
    const char *reason, double next_attempt)
{
	char jreason[PM_JSON_SMALL], json[PM_JSON_MAX], target[PM_JSON_MAX];
	double now = clock_wall();
	struct procmgr_proc *procs;
	size_t n, i;
	int rc = 0;

	if (procmgr_live_of(pm, instance_id, &procs, &n) == -1)
		return -1;
	if (procmgr_fail_run(pm, procmgr_fail_outbox_sql, instance_id, reason,
	    now, next_attempt) == -1 ||
	    procmgr_fail_run(pm, procmgr_fail_update_sql, instance_id, reason,
	    now, next_attempt) == -1)
		rc = -1;
	procmgr_json_str(jreason, sizeof(jreason), reason);
	snprintf(json, sizeof(json), "{\"status\":\"FAILED\",\"message\":%s}",
	    jreason);
	for (i = 0; i < n && rc == 0; i++)
		if (audit_event(pm, "process.failed", "runtime", procs[i].pid,
		    json) == -1 || procmgr_wake_parent(pm, &procs[i],
		    PS_FAILED) == -1)
			rc = -1;
	free(procs);
	if (rc == -1)
		return -1;
	snprintf(target, sizeof(target), "worker:%.200s", instance_id);
	snprintf(json, sizeof(json), "{\"reason\":%s,\"failed\":%zu}",
	    jreason, n);
	if (audit_record(pm, "runtime", "process.fail_worker", target, 0,
	    NULL, NULL, json) == -1)
		return -1;
	return (int)n;
}

int
procmgr_fail_worker(struct procmgr *pm, const char *instance_id,
    const char *reason, double next_attempt)
{
	if (instance_id == NULL || reason == NULL)
		return pmdb_error(pm, PM_E_INVALID, "fail_worker: instance_id "
		    "and reason are needed");
	if (procmgr_begin(pm) == -1)
		return -1;
	return procmgr_finish(pm, procmgr_fail_txn(pm, instance_id, reason,
	    next_attempt));
}

/* Newest first: the scan stops at the first row older than `since`. */
static const char procmgr_took_sql[] =
	"SELECT created_at, instance_id = ?1 AND operation_id = ?2 "
	"FROM processes WHERE parent_pid IS NULL ORDER BY pid DESC";

const char *
procmgr_db_error(struct procmgr *pm)
{
	(void)pmdb_sqlite_error(pm);
	return pm->err;
}

int
procmgr_took_operation(struct procmgr *pm, const char *instance_id,
    const char *operation_id, double since)
{
	sqlite3_stmt *s;
	int rc, found = 0;

	if (instance_id == NULL || operation_id == NULL)
		return pmdb_error(pm, PM_E_INVALID, "took_operation: "
		    "instance_id and operation_id are needed");
	if (sqlite3_prepare_v2(pm->st->db, procmgr_took_sql, -1, &s,
	    NULL) != SQLITE_OK)
		return pmdb_sqlite_error(pm);
	sqlite3_bind_text(s, 1, instance_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, operation_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    sqlite3_column_double(s, 0) >= since)
		if (sqlite3_column_int(s, 1)) {
			found = 1;
			break;
		}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		found = pmdb_sqlite_error(pm);
	sqlite3_finalize(s);
	return found;
}
