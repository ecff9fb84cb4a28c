/* capability: grants, inheritance, revocation, policy (see capability.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "procmgr/capability.h"
#include "core/clock.h"
#include "pmdb.h"
#include "procmgr/store.h"

#define CAP_RESOURCE_MAX 512	/* "object:OID", "object_namespace:PID" */
#define CAP_RIGHT_MAX 16	/* longest right name and its NUL */

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

int
cap_grant(struct procmgr *pm, agent_pid subject, const struct cap_spec *spec,
    const char *issued_by, int64_t *cap_id)
{
	sqlite3_stmt *s;

	if (cap_check_spec(pm, spec) == -1)
		return -1;
	s = pmdb_stmt(pm, PMDB_CAP_INSERT, "INSERT INTO capabilities (subject, "
	    "resource, rights, constraints, expires_at, delegable, revocable, "
	    "issued_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
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
	if (pmdb_step_done(pm, s) == -1)
		return -1;
	if (cap_id != NULL)
		*cap_id = sqlite3_last_insert_rowid(pm->st->db);
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
	s = pmdb_stmt(pm, PMDB_CAP_LIVE, "SELECT resource, rights, delegable "
	    "FROM capabilities WHERE subject = ?1 AND revoked_at IS NULL "
	    "AND (expires_at IS NULL OR expires_at > ?2)");
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
		*out = sqlite3_column_int(s, 2) ? CAP_ALWAYS_ALLOW : CAP_ALLOW;
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
cap_check_inherit(struct procmgr *pm, agent_pid parent,
    const struct cap_spec *spec)
{
	char right[CAP_RIGHT_MAX];
	const char *p, *name;
	enum cap_policy pol;
	double now = clock_wall();
	int n;

	if (cap_check_spec(pm, spec) == -1)
		return -1;
	for (p = spec->rights; (n = cap_next_right(&p, &name)) != -1;) {
		/* Valid rights are known names, all shorter than right. */
		snprintf(right, sizeof(right), "%.*s", n, name);
		if (cap_policy(pm, parent, spec->resource, right, now,
		    &pol) == -1)
			return -1;
		if (pol != CAP_ALWAYS_ALLOW)
			return pmdb_error(pm, PM_E_DENIED, "%" PRId64 " cannot "
			    "inherit %s on %.200s; parent policy is %s",
			    parent, right, spec->resource,
			    cap_policy_name(pol));
	}
	return 0;
}

int
cap_inherit(struct procmgr *pm, agent_pid parent, agent_pid child,
    const struct cap_spec *spec, const char *issued_by)
{
	if (cap_check_inherit(pm, parent, spec) == -1)
		return -1;
	return cap_grant(pm, child, spec, issued_by, NULL);
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
