/* objmem: objects and views of agent processes (see include/procmgr/objmem.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "procmgr/objmem.h"
#include "pmdb.h"
#include "procmgr/store.h"

#define OBJ_ROOTS_INLINE 16	/* roots written without a malloc */
#define OBJ_OID_CHARS 21	/* an int64 and a comma */

static const char *const objmem_type_names[] = { "GOAL", "RESULT", "DATA" };

static const char *const objmem_mode_names[] = {
	"MUTABLE", "COPY_ON_WRITE", "EPHEMERAL", "READ_ONLY"
};

#define OBJ_MODES \
	(sizeof(objmem_mode_names) / sizeof(objmem_mode_names[0]))

const char *
objmem_type_name(enum obj_type t)
{
	if ((unsigned)t >=
	    sizeof(objmem_type_names) / sizeof(objmem_type_names[0]))
		return "DATA";
	return objmem_type_names[t];
}

static const char *
objmem_mode_name(enum view_mode m)
{
	if ((unsigned)m >= OBJ_MODES)
		return "READ_ONLY";
	return objmem_mode_names[m];
}

int
objmem_create(struct procmgr *pm, agent_pid owner, enum obj_type type,
    const char *payload, int immutable, int is_volatile, int64_t *oid)
{
	sqlite3_stmt *s;

	if (payload == NULL)
		return pmdb_error(pm, PM_E_INVALID, "object payload missing");
	s = pmdb_stmt(pm, PMDB_OBJ_CREATE, "INSERT INTO objects (owner_pid, "
	    "type, payload, immutable, volatile, created_at) "
	    "VALUES (?, ?, ?, ?, ?, ?)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, owner);
	sqlite3_bind_text(s, 2, objmem_type_name(type), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, payload, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, immutable != 0);
	sqlite3_bind_int(s, 5, is_volatile != 0);
	sqlite3_bind_double(s, 6, clock_wall());
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	*oid = sqlite3_last_insert_rowid(pm->st->db);
	return 0;
}

/* roots as a JSON array in buf when it fits, else in a malloc'd string. */
static char *
objmem_roots_json(const int64_t *roots, size_t nroots, char *buf, size_t len)
{
	size_t need = nroots * OBJ_OID_CHARS + 3, off = 1, i;
	char *out = buf;

	if (need > len) {
		if ((out = malloc(need)) == NULL)
			return NULL;
		len = need;
	}
	out[0] = '[';
	for (i = 0; i < nroots; i++)
		off += (size_t)snprintf(out + off, len - off, "%s%" PRId64,
		    i ? "," : "", roots[i]);
	snprintf(out + off, len - off, "]");
	return out;
}

int
objmem_create_view(struct procmgr *pm, agent_pid pid, enum view_mode mode,
    const int64_t *roots, size_t nroots, int64_t *view_id)
{
	char buf[OBJ_ROOTS_INLINE * OBJ_OID_CHARS + 3], *json;
	sqlite3_stmt *s;
	int rc;

	if ((json = objmem_roots_json(roots, nroots, buf, sizeof(buf))) == NULL)
		return pmdb_error(pm, PM_E_INTERNAL, "out of memory");
	s = pmdb_stmt(pm, PMDB_OBJ_VIEW, "INSERT INTO views (pid, mode, roots, "
	    "created_at) VALUES (?, ?, ?, ?)");
	if (s == NULL)
		rc = -1;
	else {
		sqlite3_bind_int64(s, 1, pid);
		sqlite3_bind_text(s, 2, objmem_mode_name(mode), -1,
		    SQLITE_STATIC);
		sqlite3_bind_text(s, 3, json, -1, SQLITE_STATIC);
		sqlite3_bind_double(s, 4, clock_wall());
		rc = pmdb_step_done(pm, s);
	}
	if (json != buf)
		free(json);
	if (rc == 0)
		*view_id = sqlite3_last_insert_rowid(pm->st->db);
	return rc;
}

int
objmem_fork_view(struct procmgr *pm, int64_t parent_view, agent_pid child,
    enum view_mode mode, int64_t *view_id)
{
	sqlite3_stmt *s;

	/* A parent without memory passes on nothing. */
	if (parent_view == 0)
		return objmem_create_view(pm, child, mode, NULL, 0, view_id);
	s = pmdb_stmt(pm, PMDB_OBJ_FORK_VIEW, "INSERT INTO views (pid, mode, "
	    "roots, source_view, created_at) SELECT ?1, ?2, roots, view_id, "
	    "?3 FROM views WHERE view_id = ?4");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, child);
	sqlite3_bind_text(s, 2, objmem_mode_name(mode), -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 3, clock_wall());
	sqlite3_bind_int64(s, 4, parent_view);
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	if (sqlite3_changes(pm->st->db) == 0)
		return pmdb_error(pm, PM_E_NOT_FOUND, "view %" PRId64
		    " not found", parent_view);
	*view_id = sqlite3_last_insert_rowid(pm->st->db);
	return 0;
}

int
objmem_view_add(struct procmgr *pm, int64_t view_id, int64_t oid)
{
	enum view_mode mode;
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_OBJ_VIEW_ADD, "UPDATE views SET roots = "
	    "json_insert(roots, '$[#]', ?2) WHERE view_id = ?1 AND NOT EXISTS "
	    "(SELECT 1 FROM json_each(views.roots) WHERE value = ?2)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, view_id);
	sqlite3_bind_int64(s, 2, oid);
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	/* Nothing changed: already a root, or no such view. */
	if (sqlite3_changes(pm->st->db) == 0)
		return objmem_view_mode(pm, view_id, &mode);
	return 0;
}

/*
 * The roots of child_view that parent_view lacks, in the child's order.
 * A root whose object no longer exists (released at its owner's exit) is
 * skipped: nothing to see, count or hand out.
 */
static int
objmem_missing_roots(struct procmgr *pm, int64_t parent_view,
    int64_t child_view, int64_t **oids, size_t *n)
{
	sqlite3_stmt *s;
	size_t cap = 0;
	int64_t *grown;
	int rc;

	*oids = NULL;
	*n = 0;
	s = pmdb_stmt(pm, PMDB_OBJ_VIEW_ROOTS, "SELECT c.value FROM json_each("
	    "(SELECT roots FROM views WHERE view_id = ?2)) c "
	    "WHERE c.value NOT IN (SELECT p.value FROM json_each("
	    "(SELECT roots FROM views WHERE view_id = ?1)) p) "
	    "AND EXISTS (SELECT 1 FROM objects o WHERE o.oid = c.value) "
	    "ORDER BY c.key");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, parent_view);
	sqlite3_bind_int64(s, 2, child_view);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : OBJ_ROOTS_INLINE;
			if ((grown = reallocarray(*oids, cap,
			    sizeof(**oids))) == NULL) {
				sqlite3_reset(s);
				free(*oids);
				*oids = NULL;
				return pmdb_error(pm, PM_E_INTERNAL,
				    "out of memory");
			}
			*oids = grown;
		}
		(*oids)[(*n)++] = sqlite3_column_int64(s, 0);
	}
	if (rc != SQLITE_DONE) {
		pmdb_sqlite_error(pm);
		sqlite3_reset(s);
		free(*oids);
		*oids = NULL;
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

int
objmem_merge_view(struct procmgr *pm, int64_t parent_view,
    int64_t child_view, int64_t **merged, size_t *n)
{
	enum view_mode mode;
	int64_t *oids;
	size_t i;
	int rc = 0;

	*merged = NULL;
	*n = 0;
	if (objmem_view_mode(pm, parent_view, &mode) == -1 ||
	    objmem_view_mode(pm, child_view, &mode) == -1 ||
	    objmem_missing_roots(pm, parent_view, child_view, &oids, n) == -1)
		return -1;
	for (i = 0; i < *n && rc == 0; i++)
		rc = objmem_view_add(pm, parent_view, oids[i]);
	if (rc == -1) {
		free(oids);
		*n = 0;
		return -1;
	}
	*merged = oids;
	return 0;
}

int
objmem_view_mode(struct procmgr *pm, int64_t view_id, enum view_mode *out)
{
	sqlite3_stmt *s;
	const char *name;
	size_t i;
	int rc;

	s = pmdb_stmt(pm, PMDB_OBJ_VIEW_MODE, "SELECT mode FROM views "
	    "WHERE view_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, view_id);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			pmdb_error(pm, PM_E_NOT_FOUND, "view %" PRId64
			    " not found", view_id);
		else
			pmdb_sqlite_error(pm);
		sqlite3_reset(s);
		return -1;
	}
	name = (const char *)sqlite3_column_text(s, 0);
	for (i = 0; i < OBJ_MODES; i++)
		if (name != NULL && strcmp(name, objmem_mode_names[i]) == 0)
			break;
	if (i < OBJ_MODES) {
		*out = (enum view_mode)i;
		rc = 0;
	} else
		rc = pmdb_error(pm, PM_E_INTERNAL, "view %" PRId64
		    ": unknown mode", view_id);
	sqlite3_reset(s);
	return rc;
}

int
objmem_release_owned(struct procmgr *pm, agent_pid owner, int64_t keep)
{
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_OBJ_RELEASE, "DELETE FROM objects "
	    "WHERE owner_pid = ? AND volatile = 1 AND oid != ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, owner);
	sqlite3_bind_int64(s, 2, keep);
	return pmdb_step_done(pm, s);
}

int
objmem_read(struct procmgr *pm, int64_t oid, char **payload)
{
	sqlite3_stmt *s;
	const char *text;
	int rc;

	*payload = NULL;
	s = pmdb_stmt(pm, PMDB_OBJ_READ, "SELECT payload FROM objects "
	    "WHERE oid = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, oid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		text = (const char *)sqlite3_column_text(s, 0);
		if ((*payload = strdup(text ? text : "null")) == NULL)
			rc = pmdb_error(pm, PM_E_INTERNAL, "out of memory");
		else
			rc = 0;
	} else if (rc == SQLITE_DONE)
		rc = pmdb_error(pm, PM_E_NOT_FOUND, "object %" PRId64
		    " not found", oid);
	else
		rc = pmdb_sqlite_error(pm);
	sqlite3_reset(s);
	return rc;
}

int
objmem_view_has(struct procmgr *pm, int64_t view_id, int64_t oid)
{
	sqlite3_stmt *s;
	int rc;

	s = pmdb_stmt(pm, PMDB_OBJ_VIEW_HAS, "SELECT 1 FROM views v, "
	    "json_each(v.roots) r WHERE v.view_id = ?1 AND r.value = ?2 "
	    "AND EXISTS (SELECT 1 FROM objects o WHERE o.oid = ?2)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, view_id);
	sqlite3_bind_int64(s, 2, oid);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return pmdb_sqlite_error(pm);
	return rc == SQLITE_ROW;
}

int
objmem_owner(struct procmgr *pm, int64_t oid, agent_pid *owner)
{
	sqlite3_stmt *s;
	int rc;

	s = pmdb_stmt(pm, PMDB_OBJ_OWNER, "SELECT owner_pid FROM objects "
	    "WHERE oid = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, oid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*owner = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return pmdb_error(pm, PM_E_NOT_FOUND, "object %" PRId64
		    " not found", oid);
	return pmdb_sqlite_error(pm);
}
