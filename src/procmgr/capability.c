/* capability: grants, inheritance, revocation, policy (see capability.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "procmgr/capability.h"
#include "core/clock.h"
#include "pmdb.h"
#include "procmgr/store.h"

#define CAP_RESOURCE_MAX 512	/* "object:OID", "object_namespace:PID" */
#define CAP_RIGHT_MAX 16	/* longest right name and its NUL */
#define CAP_CHAIN_MAX 64	/* links walked before a chain is refused */

static const char *const cap_right_names[] = {
	"read", "write", "delete", "execute", "request", "materialize", "link",
	"diff"
};

static const char *const cap_policy_names[] = {
	"DENY", "ALLOW", "ALWAYS_ALLOW"
};

int
cap_resource_matches(const char *pattern, const char *resource)
{
	size_t n = strlen(pattern);

	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, resource, n - 1) == 0;
	return strcmp(pattern, resource) == 0;
}

/*
 * The next name of the comma list at *p (no spaces: "read,write"); *p
 * moves past its comma.  Returns its length, or -1 at the end.
 */
static int
cap_next_right(const char **p, const char **name)
{
	const char *s = *p, *end;
	size_t n;

	if (s == NULL)
		return -1;
	end = strchr(s, ',');
	n = end ? (size_t)(end - s) : strlen(s);
	*p = end ? end + 1 : NULL;
	*name = s;
	return (int)n;
}

int
cap_rights_include(const char *rights, const char *right)
{
	size_t want = strlen(right);
	const char *name;
	int n;

	while ((n = cap_next_right(&rights, &name)) != -1)
		if ((size_t)n == want && memcmp(name, right, want) == 0)
			return 1;
	return 0;
}

static int
cap_right_known(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(cap_right_names) / sizeof(cap_right_names[0]);
	    i++)
		if (strlen(cap_right_names[i]) == n &&
		    memcmp(cap_right_names[i], name, n) == 0)
			return 1;
	return 0;
}

int
cap_rights_valid(const char *rights, char *err, size_t errlen)
{
	const char *p = rights, *name;
	int n;

	if (rights == NULL || *rights == '\0') {
		snprintf(err, errlen, "no rights given");
		return -1;
	}
	while ((n = cap_next_right(&p, &name)) != -1) {
		if (n == 0) {
			snprintf(err, errlen, "empty right in \"%s\"", rights);
			return -1;
		}
		if (!cap_right_known(name, (size_t)n)) {
			snprintf(err, errlen, "unknown right \"%.*s\"", n,
			    name);
			return -1;
		}
	}
	return 0;
}

int
cap_live(double expires_at, double revoked_at, double now)
{
	return revoked_at == 0 && (expires_at == 0 || expires_at > now);
}

const char *
cap_policy_name(enum cap_policy p)
{
	if ((unsigned)p > CAP_ALWAYS_ALLOW)
		return "DENY";
	return cap_policy_names[p];
}

static int
cap_check_spec(struct procmgr *pm, const struct cap_spec *spec)
{
	char why[PM_ERR_MAX / 2];

	if (spec->resource == NULL || *spec->resource == '\0')
		return pmdb_error(pm, PM_E_INVALID, "capability without a "
		    "resource");
	if (cap_rights_valid(spec->rights, why, sizeof(why)) == -1)
		return pmdb_error(pm, PM_E_INVALID, "capability on %.200s: %s",
		    spec->resource, why);
	return 0;
}

/* The row of spec for subject, delegated from parent_cap (0: granted). */
static int
cap_insert(struct procmgr *pm, agent_pid subject, const struct cap_spec *spec,
    const char *issued_by, int64_t parent_cap, int64_t *cap_id)
{
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_CAP_INSERT, "INSERT INTO capabilities (subject, "
	    "resource, rights, constraints, expires_at, delegable, revocable, "
	    "issued_by, created_at, parent_cap) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, subject);
	sqlite3_bind_text(s, 2, spec->resource, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, spec->rights, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, spec->constraints, -1, SQLITE_STATIC);
	pmdb_bind_time(s, 5, spec->expires_at);
	sqlite3_bind_int(s, 6, spec->delegable != 0);
	sqlite3_bind_int(s, 7, spec->revocable != 0);
	sqlite3_bind_text(s, 8, issued_by, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 9, clock_wall());
	pmdb_bind_id(s, 10, parent_cap);
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	if (cap_id != NULL)
		*cap_id = sqlite3_last_insert_rowid(pm->st->db);
	return 0;
}

int
cap_grant(struct procmgr *pm, agent_pid subject, const struct cap_spec *spec,
    const char *issued_by, int64_t *cap_id)
{
	if (cap_check_spec(pm, spec) == -1)
		return -1;
	return cap_insert(pm, subject, spec, issued_by, 0, cap_id);
}

/*
 * 1 when every capability cap_id was delegated through is live at now,
 * 0 when one was revoked, has expired or no longer exists, -1.  A granted
 * capability (no parent) costs nothing: the walk starts at its parent.
 */
static int
cap_chain_live(struct procmgr *pm, int64_t cap_id, double now)
{
	sqlite3_stmt *s;
	int rc, depth;

	for (depth = 0; cap_id != 0; depth++) {
		/* Delegation only goes down a finite process tree. */
		if (depth == CAP_CHAIN_MAX)
			return 0;
		s = pmdb_stmt(pm, PMDB_CAP_CHAIN, "SELECT coalesce(parent_cap, "
		    "0), revoked_at IS NULL AND (expires_at IS NULL OR "
		    "expires_at > ?2) FROM capabilities WHERE cap_id = ?1");
		if (s == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, cap_id);
		sqlite3_bind_double(s, 2, now);
		if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
			sqlite3_reset(s);
			if (rc != SQLITE_DONE)
				return pmdb_sqlite_error(pm);
			return 0;
		}
		cap_id = sqlite3_column_int64(s, 0);
		rc = sqlite3_column_int(s, 1);
		sqlite3_reset(s);
		if (!rc)
			return 0;
	}
	return 1;
}

/*
 * The matching row at s counts only when its delegation chain is live;
 * *out rises to what it grants.  The walk uses another statement, so s
 * stays on its row.
 */
static int
cap_policy_chain(struct procmgr *pm, sqlite3_stmt *s, double now,
    enum cap_policy *out)
{
	int live = 1;

	if (sqlite3_column_int64(s, 3) != 0 &&
	    (live = cap_chain_live(pm, sqlite3_column_int64(s, 3), now)) == -1) {
		sqlite3_reset(s);
		return -1;
	}
	if (live && sqlite3_column_int(s, 2))
		*out = CAP_ALWAYS_ALLOW;
	else if (live)
		*out = CAP_ALLOW;
	return 0;
}

int
cap_policy(struct procmgr *pm, agent_pid subject, const char *resource,
    const char *right, double now, enum cap_policy *out)
{
	sqlite3_stmt *s;
	const char *pattern, *rights;
	int rc;

	*out = CAP_DENY;
	s = pmdb_stmt(pm, PMDB_CAP_LIVE, "SELECT resource, rights, delegable, "
	    "coalesce(parent_cap, 0) FROM capabilities WHERE subject = ?1 "
	    "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, subject);
	sqlite3_bind_double(s, 2, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		pattern = (const char *)sqlite3_column_text(s, 0);
		rights = (const char *)sqlite3_column_text(s, 1);
		if (pattern == NULL || rights == NULL ||
		    !cap_resource_matches(pattern, resource) ||
		    !cap_rights_include(rights, right))
			continue;
		if (cap_policy_chain(pm, s, now, out) == -1)
			return -1;
		if (*out == CAP_ALWAYS_ALLOW)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		pmdb_sqlite_error(pm);
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

int
cap_rights_subset(const char *rights, const char *of)
{
	char right[CAP_RIGHT_MAX];
	const char *p = rights, *name;
	int n;

	while ((n = cap_next_right(&p, &name)) != -1) {
		if (n <= 0 || n >= (int)sizeof(right))
			return 0;
		snprintf(right, sizeof(right), "%.*s", n, name);
		if (!cap_rights_include(of, right))
			return 0;
	}
	return 1;
}

/*
 * Constraints kept or tightened: none on the parent allows any; the same
 * JSON value; or, when the parent's is an object, an object that keeps
 * every key of it with an equal value and may add more.  Anything else,
 * including text that is not JSON, is refused.
 */
static int
cap_constraints_tighten(const char *parent, const char *child)
{
	cJSON *p, *c, *item;
	int ok;

	if (parent == NULL)
		return 1;
	if (child == NULL)
		return 0;
	p = cJSON_Parse(parent);
	c = cJSON_Parse(child);
	ok = p != NULL && c != NULL && cJSON_Compare(p, c, 1);
	if (!ok && cJSON_IsObject(p) && cJSON_IsObject(c)) {
		ok = 1;
		cJSON_ArrayForEach(item, p)
			if (!cJSON_Compare(item, cJSON_GetObjectItemCaseSensitive(
			    c, item->string), 1))
				ok = 0;
	}
	cJSON_Delete(p);
	cJSON_Delete(c);
	return ok;
}

int
cap_attenuates(const char *pattern, const char *rights,
    const char *constraints, const struct cap_spec *spec, char *err,
    size_t errlen)
{
	/* A pattern covers a narrower one as it covers a resource. */
	if (!cap_resource_matches(pattern, spec->resource)) {
		snprintf(err, errlen, "%.200s is not within %.200s",
		    spec->resource, pattern);
		return 0;
	}
	if (!cap_rights_subset(spec->rights, rights)) {
		snprintf(err, errlen, "rights %.100s are not a subset of %.100s",
		    spec->rights, rights);
		return 0;
	}
	/* No constraints asked: the parent's are kept (cap_inherit). */
	if (spec->constraints != NULL &&
	    !cap_constraints_tighten(constraints, spec->constraints)) {
		snprintf(err, errlen, "constraints %.120s would loosen %.120s",
		    spec->constraints, constraints);
		return 0;
	}
	return 1;
}

/* The parent capability a delegation of spec derives from. */
struct cap_link {
	int64_t cap_id;
	double expires_at;	/* 0 = never */
	char *constraints;	/* owned; NULL = none */
};

/* Is the row at s (see cap_find_link) one spec may derive from? */
static int
cap_link_row(struct procmgr *pm, sqlite3_stmt *s, const struct cap_spec *spec,
    double now, char *why, size_t whylen, struct cap_link *out)
{
	const char *pattern = (const char *)sqlite3_column_text(s, 1);
	const char *rights = (const char *)sqlite3_column_text(s, 2);
	const char *cons = (const char *)sqlite3_column_text(s, 3);
	int live;

	if (pattern == NULL || rights == NULL ||
	    !cap_attenuates(pattern, rights, cons, spec, why, whylen))
		return 0;
	if ((live = cap_chain_live(pm, sqlite3_column_int64(s, 5), now)) != 1)
		return live;
	out->cap_id = sqlite3_column_int64(s, 0);
	out->expires_at = sqlite3_column_double(s, 4);
	if (cons != NULL && (out->constraints = strdup(cons)) == NULL)
		return pmdb_error(pm, PM_E_INTERNAL, "out of memory");
	return 1;
}

/*
 * The parent's live, delegable capability spec attenuates (first in
 * grant order), or PM_E_DENIED naming what the closest one lacks.
 */
static int
cap_find_link(struct procmgr *pm, agent_pid parent,
    const struct cap_spec *spec, struct cap_link *out)
{
	char why[PM_ERR_MAX / 2] = "the parent holds no live delegable "
	    "capability on it";
	double now = clock_wall();
	sqlite3_stmt *s;
	int rc, found = 0;

	memset(out, 0, sizeof(*out));
	s = pmdb_stmt(pm, PMDB_CAP_DELEGABLE, "SELECT cap_id, resource, rights, "
	    "constraints, coalesce(expires_at, 0), coalesce(parent_cap, 0) "
	    "FROM capabilities WHERE subject = ?1 AND delegable = 1 "
	    "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2) "
	    "ORDER BY cap_id");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, parent);
	sqlite3_bind_double(s, 2, now);
	while (!found && (rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((found = cap_link_row(pm, s, spec, now, why, sizeof(why),
		    out)) == -1) {
			sqlite3_reset(s);
			return -1;
		}
	if (!found && rc != SQLITE_DONE) {
		sqlite3_reset(s);
		return pmdb_sqlite_error(pm);
	}
	sqlite3_reset(s);
	if (!found)
		return pmdb_error(pm, PM_E_DENIED, "%" PRId64 " cannot delegate "
		    "%.100s on %.200s: %s", parent, spec->rights,
		    spec->resource, why);
	return 0;
}

int
cap_check_inherit(struct procmgr *pm, agent_pid parent,
    const struct cap_spec *spec)
{
	struct cap_link link;

	if (cap_check_spec(pm, spec) == -1 ||
	    cap_find_link(pm, parent, spec, &link) == -1)
		return -1;
	free(link.constraints);
	return 0;
}

/*
 * A delegation: the child's row names its parent capability, keeps its
 * constraints unless tightened, and never outlives it.
 */
int
cap_inherit(struct procmgr *pm, agent_pid parent, agent_pid child,
    const struct cap_spec *spec, const char *issued_by)
{
	struct cap_spec d = *spec;
	struct cap_link link;
	int rc;

	if (cap_check_spec(pm, spec) == -1 ||
	    cap_find_link(pm, parent, spec, &link) == -1)
		return -1;
	if (d.constraints == NULL)
		d.constraints = link.constraints;
	if (link.expires_at != 0 &&
	    (d.expires_at == 0 || d.expires_at > link.expires_at))
		d.expires_at = link.expires_at;
	rc = cap_insert(pm, child, &d, issued_by, link.cap_id, NULL);
	free(link.constraints);
	return rc;
}

int
cap_revoke(struct procmgr *pm, int64_t cap_id, const char *revoked_by,
    const char *reason)
{
	sqlite3_stmt *s;
	int rc, revocable, revoked;

	s = pmdb_stmt(pm, PMDB_CAP_GET, "SELECT revocable, "
	    "revoked_at IS NOT NULL FROM capabilities WHERE cap_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, cap_id);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			pmdb_error(pm, PM_E_NOT_FOUND, "capability %" PRId64
			    " not found", cap_id);
		else
			pmdb_sqlite_error(pm);
		sqlite3_reset(s);
		return -1;
	}
	revocable = sqlite3_column_int(s, 0);
	revoked = sqlite3_column_int(s, 1);
	sqlite3_reset(s);
	if (!revocable)
		return pmdb_error(pm, PM_E_DENIED, "capability %" PRId64
		    " is not revocable", cap_id);
	if (revoked)
		return 0;
	s = pmdb_stmt(pm, PMDB_CAP_REVOKE, "UPDATE capabilities SET "
	    "revoked_at = ?, revoked_by = ?, revoke_reason = ? "
	    "WHERE cap_id = ?");
	if (s == NULL)
		return -1;
	sqlite3_bind_double(s, 1, clock_wall());
	sqlite3_bind_text(s, 2, revoked_by, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, cap_id);
	return pmdb_step_done(pm, s);
}

/*
 * What exec keeps: handles on objects ("object:*") and the process's own
 * object namespace.  Shrinking never overrides a capability granted as not
 * revocable: exec is refused instead (preserve_caps keeps it).
 */
#define CAP_SHRINK_WHERE "subject = ?1 AND revoked_at IS NULL " \
	"AND (expires_at IS NULL OR expires_at > ?2) " \
	"AND resource NOT GLOB 'object:*' AND resource != ?3"

int
cap_shrink_for_exec(struct procmgr *pm, agent_pid pid)
{
	char own[CAP_RESOURCE_MAX];
	double now = clock_wall();
	sqlite3_stmt *s;
	int64_t pinned = 0;
	int rc;

	snprintf(own, sizeof(own), "object_namespace:%" PRId64, pid);
	s = pmdb_stmt(pm, PMDB_CAP_PINNED, "SELECT cap_id FROM capabilities "
	    "WHERE " CAP_SHRINK_WHERE " AND revocable = 0 LIMIT 1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_double(s, 2, now);
	sqlite3_bind_text(s, 3, own, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		pinned = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	if (pinned != 0)
		return pmdb_error(pm, PM_E_DENIED, "capability %" PRId64
		    " is not revocable", pinned);
	s = pmdb_stmt(pm, PMDB_CAP_SHRINK, "UPDATE capabilities SET "
	    "revoked_at = ?2, revoked_by = 'process.exec', "
	    "revoke_reason = 'exec capability shrink' WHERE " CAP_SHRINK_WHERE);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_double(s, 2, now);
	sqlite3_bind_text(s, 3, own, -1, SQLITE_STATIC);
	return pmdb_step_done(pm, s);
}

/* A live handle with exactly these rights is reused, not granted twice. */
int
cap_object_handle(struct procmgr *pm, agent_pid subject, int64_t oid,
    const char *rights, const char *issued_by, int64_t *cap_id)
{
	struct cap_spec spec = { .rights = rights, .revocable = 1 };
	char resource[CAP_RESOURCE_MAX];
	sqlite3_stmt *s;
	int rc;

	snprintf(resource, sizeof(resource), "object:%" PRId64, oid);
	spec.resource = resource;
	s = pmdb_stmt(pm, PMDB_CAP_HANDLE, "SELECT cap_id FROM capabilities "
	    "WHERE subject = ? AND resource = ? AND rights = ? "
	    "AND revoked_at IS NULL AND expires_at IS NULL LIMIT 1");
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, subject);
	sqlite3_bind_text(s, 2, resource, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, rights, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*cap_id = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		return 0;
	}
	if (rc != SQLITE_DONE)
		pmdb_sqlite_error(pm);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return -1;
	return cap_grant(pm, subject, &spec, issued_by, cap_id);
}
