/*
 * procmgr: the agent process manager (DESIGN section 4, Agent-libOS
 * semantics).
 *
 * Every operation a worker accepts runs as an agent process: spawn, fork
 * (modes COPY, SPECULATIVE, WORKER, RESTRICTED), spawn_child, exec, wait,
 * signal, exit, chdir, budgets.  State lives in the shared SQLite database;
 * each call is one IMMEDIATE transaction that also writes its event and
 * audit record (audit.c), so every worker and egressctl see the same
 * processes.  Capabilities are capability.c's, object memory objmem.c's.
 *
 * Errors: every call returns 0 on success and -1 on failure with
 * pm->errtype and pm->err set.  PM_E_DATABASE means SQLite failed (locked
 * past busy_timeout, full, corrupt, read-only): the caller may retry later.
 * The pure rules (statuses, transitions, modes, budgets, cwd normalisation)
 * are procrule.c's (procmgr/procrule.h, included here); they do no I/O.
 */
#ifndef EGRESSD_PROCMGR_H
#define EGRESSD_PROCMGR_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "procmgr/procrule.h"

struct store;
struct sqlite3_stmt;

typedef int64_t agent_pid;	/* INTEGER PRIMARY KEY of processes; > 0 */

/* Mirrors the error_type of DESIGN section 5's error results. */
enum pm_error {
	PM_OK,
	PM_E_INVALID,		/* invalid_request: bad argument or state */
	PM_E_DENIED,		/* capability_denied */
	PM_E_NOT_FOUND,		/* not_found */
	PM_E_LIMIT,		/* limit_exceeded: a budget is used up */
	PM_E_TIMEOUT,		/* timeout: wait with timeout 0 */
	PM_E_DATABASE,		/* internal, retryable: SQLite failed */
	PM_E_INTERNAL		/* internal: out of memory */
};

#define PM_CWD_MAX 1024
#define PM_ERR_MAX 512
#define PM_STMT_MAX 64		/* statements cached per connection */

/* One capability to grant or inherit (capability.h has the full rules). */
struct cap_spec {
	const char *resource;	/* exact, or a prefix and "*" */
	const char *rights;	/* comma list: "read,write" */
	const char *constraints;	/* JSON text or NULL */
	double expires_at;	/* wall seconds; 0 = never */
	int delegable;
	int revocable;
};

typedef void (*procmgr_hook)(agent_pid pid, const char *image, void *arg);

#define PM_MAX_HOOKS 4

struct procmgr {
	struct store *st;
	const char *instance_id;	/* the worker running new processes */
	struct proc_budget defaults;	/* process.max_* */
	int fork_divisor, fork_min_tool_calls, fork_min_child_processes;
	struct {
		procmgr_hook fn;
		void *arg;
	} hooks[PM_MAX_HOOKS];		/* after spawn, fork, spawn_child */
	int nhooks;
	enum pm_error errtype;
	char err[PM_ERR_MAX];
	/* Statements prepared once per connection (pmdb.c owns them). */
	struct sqlite3_stmt *stmt[PM_STMT_MAX];
};

/* A process as read back from the database (strings are owned; free it). */
struct proc_info {
	agent_pid pid, parent_pid, root_pid;	/* parent 0 = none */
	char *instance_id, *operation_id, *image, *status_message, *cwd;
	enum proc_status status;
	int64_t goal_oid, result_oid, view_id;	/* 0 = none */
	struct proc_budget budget;
	int tool_calls, child_processes;	/* used, with descendants' */
	double runtime_used;			/* seconds, likewise */
	double created_at, updated_at, ended_at;	/* ended 0 = live */
};

/* What wait() found: the child's end and a read handle to its result. */
struct proc_wait {
	enum proc_status status;
	int64_t result_oid;		/* 0 = none */
	int64_t handle_cap;		/* read capability on it, 0 = none */
};

/* Result of a root process's exit, queued in the same transaction. */
struct outbox_entry {
	const char *operation_id;
	const char *result;		/* JSON text */
	double next_attempt;		/* wall seconds */
};

/* Bind to an open, migrated store; nothing is written. */
void procmgr_init(struct procmgr *pm, struct store *st,
    const char *instance_id, const struct egressd_config *cfg);
void procmgr_close(struct procmgr *pm);	/* finalizes the statements */
int procmgr_add_hook(struct procmgr *pm, procmgr_hook fn, void *arg);

/*
 * A root process: image = operation path, goal = operation body (JSON text,
 * stored as an immutable GOAL object), capabilities granted from specs,
 * cwd "." unless given.  operation_id ties it to the orchestrator's work.
 */
int procmgr_spawn(struct procmgr *pm, const char *image, const char *goal,
    const struct cap_spec *caps, size_t ncaps, const char *operation_id,
    const char *cwd, agent_pid *out);
/* The resources the process manager itself checks (docs/PROCESSES.md). */
#define PM_RES_SPAWN "process:spawn"	/* right write: fork, spawn_child */
#define PM_RES_IMAGE "image:"		/* + image, right read: another image */
#define PM_RES_WORKSPACE "filesystem:workspace:"	/* + DIR, a star: read */

/* What fork and spawn_child take besides their arguments; NULL: defaults. */
struct proc_child_opts {
	const char *cwd;	/* NULL: the parent's; else the parent reads it */
	int select_roots;	/* fork: pass only roots[], not every root */
	const int64_t *roots;	/* each a root of the parent's view */
	size_t nroots;
};

/*
 * A child whose view derives from the parent's by mode; inherit lists the
 * capabilities to delegate (each must attenuate one live delegable
 * capability of the parent; otherwise PM_E_DENIED and nothing is created).
 * The parent needs write on process:spawn, and read on image:IMAGE when
 * image names another image than its own (NULL keeps the parent's).  The
 * parent at its child budget gets PM_E_LIMIT.
 */
int procmgr_fork(struct procmgr *pm, agent_pid parent, const char *goal,
    enum fork_mode mode, const char *image, const struct cap_spec *inherit,
    size_t ninherit, agent_pid *out);
/* fork with options: the child's cwd, the roots its view starts from. */
int procmgr_fork_opts(struct procmgr *pm, agent_pid parent, const char *goal,
    enum fork_mode mode, const char *image, const struct cap_spec *inherit,
    size_t ninherit, const struct proc_child_opts *opts, agent_pid *out);
/* Like fork, with a fresh MUTABLE view rooted at the child's goal. */
int procmgr_spawn_child(struct procmgr *pm, agent_pid parent,
    const char *goal, const char *image, const struct cap_spec *inherit,
    size_t ninherit, agent_pid *out);
/* spawn_child with options (cwd only: a fresh view takes no roots). */
int procmgr_spawn_child_opts(struct procmgr *pm, agent_pid parent,
    const char *goal, const char *image, const struct cap_spec *inherit,
    size_t ninherit, const struct proc_child_opts *opts, agent_pid *out);
/*
 * Replace the image; without preserve_caps the exec shrink applies.
 * Another image needs read on image:IMAGE, checked before anything moves.
 */
int procmgr_exec(struct procmgr *pm, agent_pid pid, const char *image,
    int preserve_memory, int preserve_caps);
/*
 * Returns 1 when the child has ended (out filled, parent RUNNABLE again),
 * 0 when the parent is now WAITING_EVENT "waiting for CHILD", -1 on error;
 * timeout 0 with a live child is PM_E_TIMEOUT.
 */
int procmgr_wait(struct procmgr *pm, agent_pid parent, agent_pid child,
    double timeout, struct proc_wait *out);
/*
 * The non-suspending wait: 1 when the child has ended (out filled as by
 * wait), 0 when it still runs; the parent's status never changes.
 */
int procmgr_poll_child(struct procmgr *pm, agent_pid parent, agent_pid child,
    struct proc_wait *out);
/* Children of pid in creation order; cb may not call procmgr. */
int procmgr_list_children(struct procmgr *pm, agent_pid pid,
    int include_terminal, void (*cb)(const struct proc_info *, void *),
    void *arg);
int procmgr_signal(struct procmgr *pm, agent_pid pid, enum proc_signal sig,
    const char *reason);
int procmgr_signal_child(struct procmgr *pm, agent_pid parent,
    agent_pid child, enum proc_signal sig, const char *reason);
/*
 * End a process: EXITED with result (JSON text, kept as a RESULT object) or
 * FAILED with message (result may still carry the error result).  Volatile
 * objects are released, a waiting parent is woken; ob, when not NULL, is
 * queued in the outbox in this same transaction.
 */
int procmgr_exit(struct procmgr *pm, agent_pid pid, const char *result,
    int failed, const char *message, const struct outbox_entry *ob);
/*
 * exit naming an existing object as the result: pid must own it or hold
 * read on object:OID (PM_E_DENIED otherwise, and pid keeps running).  The
 * object is kept when pid's volatile objects are released.
 */
int procmgr_exit_object(struct procmgr *pm, agent_pid pid, int64_t result_oid,
    int failed, const char *message, const struct outbox_entry *ob);
/*
 * Like signal TERMINATE, but also queues ob (runtime budget, shutdown).
 * A kill, by any signal, releases the volatile objects as exit does.
 */
int procmgr_kill(struct procmgr *pm, agent_pid pid, const char *reason,
    const struct outbox_entry *ob);
/* Kill pid's live descendants (deepest first), then pid with ob. */
int procmgr_kill_tree(struct procmgr *pm, agent_pid pid, const char *reason,
    const struct outbox_entry *ob);
/* Merge a terminated child's view into the parent's; *merged = objects. */
int procmgr_merge_child_memory(struct procmgr *pm, agent_pid parent,
    agent_pid child, int *merged);
/* Needs read on "filesystem:workspace:DIR/" and a star (for ".", no DIR/). */
int procmgr_chdir(struct procmgr *pm, agent_pid pid, const char *path);
/*
 * Count one tool call against the budget of pid and of every ancestor:
 * PM_E_LIMIT, nothing counted, when any of them has used its own up.
 */
int procmgr_charge_tool_call(struct procmgr *pm, agent_pid pid);
/*
 * Add seconds of runtime to pid and every ancestor.  The time was spent,
 * so it is recorded; PM_E_LIMIT then names the first of them now past its
 * max_runtime (the caller kills that one's subtree).
 */
int procmgr_charge_runtime(struct procmgr *pm, agent_pid pid, double seconds);
/*
 * Check a right through capability.c and charge a tool call, in one
 * transaction with its audit record; PM_E_DENIED or PM_E_LIMIT on refusal.
 */
int procmgr_check(struct procmgr *pm, agent_pid pid, const char *resource,
    const char *right);
int procmgr_get(struct procmgr *pm, agent_pid pid, struct proc_info *out);
void procmgr_info_free(struct proc_info *pi);

/*
 * Recovery, run by the master when it reaps a worker that died: each of
 * that worker's live processes becomes FAILED with reason; a root one with
 * an operation_id also gets the error result {"error": reason,
 * "error_type": "internal", "pid": N} queued in the outbox.  Returns the
 * number of processes failed, or -1.
 */
int procmgr_fail_worker(struct procmgr *pm, const char *instance_id,
    const char *reason, double next_attempt);

/*
 * Whether instance_id spawned a root process for operation_id at `since`
 * (wall clock) or later: 1 or 0, -1 on a database error.  Reads the newest
 * processes first and stops at `since`, so it costs what was created since.
 */
int procmgr_took_operation(struct procmgr *pm, const char *instance_id,
    const char *operation_id, double since);

/*
 * The connection's last SQLite error, as the process manager's own calls
 * report one (pm->errtype and pm->err set): for a transaction a caller
 * began on the same store, and that failed.  Returns pm->err.
 */
const char *procmgr_db_error(struct procmgr *pm);

#endif
