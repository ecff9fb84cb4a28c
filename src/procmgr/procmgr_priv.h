/*
 * procmgr_priv: what procmgr.c, capability.c, objmem.c and audit.c share —
 * the slots of the per-connection statement cache, error reporting and the
 * small JSON text they write into events and audit records.
 */
#ifndef EGRESSD_PROCMGR_PRIV_H
#define EGRESSD_PROCMGR_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "procmgr/procmgr.h"

struct sqlite3_stmt;

/* One slot of pm->stmt per SQL statement; each is used in one place. */
enum pm_stmt_id {
	PMS_PROC_GET,
	PMS_PROC_ROOT,
	PMS_PROC_CHILD,
	PMS_PROC_START,
	PMS_PROC_CHILD_COUNT,
	PMS_PROC_SIGNAL,
	PMS_PROC_END,
	PMS_PROC_WAKE,
	PMS_PROC_WAITING,
	PMS_PROC_OUTBOX,
	PMS_PROC_EXEC,
	PMS_PROC_CHDIR,
	PMS_PROC_CHARGE,
	PMS_PROC_CHILDREN,
	PMS_PROC_VIEW,
	PMS_CAP_INSERT,
	PMS_CAP_LIVE,
	PMS_CAP_GET,
	PMS_CAP_REVOKE,
	PMS_CAP_PINNED,
	PMS_CAP_SHRINK,
	PMS_CAP_HANDLE,
	PMS_OBJ_CREATE,
	PMS_OBJ_VIEW,
	PMS_OBJ_FORK_VIEW,
	PMS_OBJ_VIEW_ADD,
	PMS_OBJ_VIEW_ROOTS,
	PMS_OBJ_VIEW_MODE,
	PMS_OBJ_RELEASE,
	PMS_OBJ_READ,
	PMS_AUDIT_EVENT,
	PMS_AUDIT_RECORD,
	PMS_COUNT
};

_Static_assert(PMS_COUNT <= PM_STMT_MAX, "procmgr statement cache too small");

/* The cached statement id (prepared on first use), reset; NULL sets err. */
struct sqlite3_stmt *pm_stmt(struct procmgr *pm, enum pm_stmt_id id,
    const char *sql);
/* Run s to completion and reset it; -1 with the SQLite error mapped. */
int pm_step_done(struct procmgr *pm, struct sqlite3_stmt *s);
/* Set errtype and err; returns -1. */
int pm_error(struct procmgr *pm, enum pm_error type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Map the connection's last SQLite error to errtype and err; returns -1. */
int pm_db_error(struct procmgr *pm);

/* Binds for nullable columns: 0 (no pid, oid or time) binds NULL. */
void pm_bind_id(struct sqlite3_stmt *s, int col, int64_t id);
void pm_bind_time(struct sqlite3_stmt *s, int col, double t);

/*
 * s as a JSON string (quoted, escaped) in buf, cut short to fit len, or
 * null when s is NULL.  Audit records stay small: long text is truncated.
 */
const char *pm_json_str(char *buf, size_t len, const char *s);

#define PM_JSON_SMALL 256	/* a name or a path in an audit record */
#define PM_JSON_MAX 1024	/* one event payload or audit decision */
#define PM_ACTOR_MAX 24		/* a pid as text, or "runtime" */

#endif
