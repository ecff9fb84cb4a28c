/*
 * pmdb: the database layer under procmgr.c, capability.c, objmem.c and
 * audit.c — the per-connection statement cache (one slot per SQL
 * statement), error reporting and binds for nullable columns.
 *
 * Of struct procmgr it touches only the store handle (st), the statement
 * cache (stmt) and the error state (errtype, err).  It calls only SQLite
 * and store.c: the four files above call it, and it calls none of them.
 */
#ifndef EGRESSD_PMDB_H
#define EGRESSD_PMDB_H

#include <stdint.h>

#include "procmgr/procmgr.h"

struct sqlite3_stmt;

/* One slot of pm->stmt per SQL statement; each is used in one place. */
enum pmdb_stmt_id {
	PMDB_PROC_GET,
	PMDB_PROC_ROOT,
	PMDB_PROC_CHILD,
	PMDB_PROC_START,
	PMDB_PROC_CHILD_COUNT,
	PMDB_PROC_SIGNAL,
	PMDB_PROC_END,
	PMDB_PROC_WAKE,
	PMDB_PROC_WAITING,
	PMDB_PROC_OUTBOX,
	PMDB_PROC_EXEC,
	PMDB_PROC_CHDIR,
	PMDB_PROC_CHARGE,
	PMDB_PROC_CHILDREN,
	PMDB_PROC_VIEW,
	PMDB_PROC_SAME_IMAGE,
	PMDB_PROC_ANC_FULL,
	PMDB_PROC_ANC_CHARGE,
	PMDB_PROC_RUNTIME,
	PMDB_PROC_ANC_OVER,
	PMDB_PROC_SUBTREE,
	PMDB_CAP_INSERT,
	PMDB_CAP_LIVE,
	PMDB_CAP_GET,
	PMDB_CAP_REVOKE,
	PMDB_CAP_PINNED,
	PMDB_CAP_SHRINK,
	PMDB_CAP_HANDLE,
	PMDB_CAP_CHAIN,
	PMDB_CAP_DELEGABLE,
	PMDB_OBJ_CREATE,
	PMDB_OBJ_VIEW,
	PMDB_OBJ_FORK_VIEW,
	PMDB_OBJ_VIEW_ADD,
	PMDB_OBJ_VIEW_ROOTS,
	PMDB_OBJ_VIEW_MODE,
	PMDB_OBJ_RELEASE,
	PMDB_OBJ_READ,
	PMDB_OBJ_VIEW_HAS,
	PMDB_OBJ_OWNER,
	PMDB_AUDIT_EVENT,
	PMDB_AUDIT_RECORD,
	PMDB_STMT_COUNT
};

_Static_assert(PMDB_STMT_COUNT <= PM_STMT_MAX,
    "procmgr statement cache too small");

/* The cached statement id (prepared on first use), reset; NULL sets err. */
struct sqlite3_stmt *pmdb_stmt(struct procmgr *pm, enum pmdb_stmt_id id,
    const char *sql);
/* Finalize every cached statement (the connection is closing). */
void pmdb_finalize(struct procmgr *pm);
/* Run s to completion and reset it; -1 with the SQLite error mapped. */
int pmdb_step_done(struct procmgr *pm, struct sqlite3_stmt *s);
/* Set errtype and err; returns -1. */
int pmdb_error(struct procmgr *pm, enum pm_error type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Map the connection's last SQLite error to errtype and err; returns -1. */
int pmdb_sqlite_error(struct procmgr *pm);

/* Binds for nullable columns: 0 (no pid, oid or time) binds NULL. */
void pmdb_bind_id(struct sqlite3_stmt *s, int col, int64_t id);
void pmdb_bind_time(struct sqlite3_stmt *s, int col, double t);

#endif
