/* pmdb: statement cache, errors and binds under procmgr (see pmdb.h). */
#include <stdarg.h>
#include <stdio.h>

#include <sqlite3.h>

#include "pmdb.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"

struct sqlite3_stmt *
pmdb_stmt(struct procmgr *pm, enum pmdb_stmt_id id, const char *sql)
{
	sqlite3_stmt *s;

	if ((s = store_prepare(pm->st, &pm->stmt[id], sql)) == NULL)
		pmdb_sqlite_error(pm);
	return s;
}

void
pmdb_finalize(struct procmgr *pm)
{
	size_t i;

	for (i = 0; i < sizeof(pm->stmt) / sizeof(pm->stmt[0]); i++) {
		sqlite3_finalize(pm->stmt[i]);
		pm->stmt[i] = NULL;
	}
}

int
pmdb_step_done(struct procmgr *pm, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
pmdb_error(struct procmgr *pm, enum pm_error type, const char *fmt, ...)
{
	va_list ap;

	pm->errtype = type;
	va_start(ap, fmt);
	vsnprintf(pm->err, sizeof(pm->err), fmt, ap);
	va_end(ap);
	return -1;
}

int
pmdb_sqlite_error(struct procmgr *pm)
{
	sqlite3 *db = pm->st->db;
	int rc = sqlite3_extended_errcode(db) & 0xff;

	switch (rc) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return pmdb_error(pm, PM_E_DATABASE, "database: locked");
	case SQLITE_NOMEM:
		return pmdb_error(pm, PM_E_INTERNAL, "out of memory");
	case SQLITE_CONSTRAINT:
		return pmdb_error(pm, PM_E_INVALID, "database: %s",
		    sqlite3_errmsg(db));
	case SQLITE_FULL:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return pmdb_error(pm, PM_E_DATABASE, "%s",
		    sqlite3_errstr(rc));
	default:
		return pmdb_error(pm, PM_E_DATABASE, "database: %s",
		    sqlite3_errmsg(db));
	}
}

void
pmdb_bind_id(sqlite3_stmt *s, int col, int64_t id)
{
	if (id == 0)
		sqlite3_bind_null(s, col);
	else
		sqlite3_bind_int64(s, col, id);
}

void
pmdb_bind_time(sqlite3_stmt *s, int col, double t)
{
	if (t == 0)
		sqlite3_bind_null(s, col);
	else
		sqlite3_bind_double(s, col, t);
}
