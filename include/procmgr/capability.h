/*
 * capability: who may do what to which resource.
 *
 * A capability is a row: subject (agent pid), resource, rights, optional
 * constraints (JSON), expiry, delegable and revocable flags, who issued it
 * and whether it was revoked.  A resource pattern is exact, or ends in "*"
 * and matches by prefix ("storage:reports/" and a "*" covers
 * "storage:reports/2026/a.csv"; "storage:*" the whole root).  Rights are a
 * comma list of read, write, delete, execute, request, materialize, link,
 * diff.
 *
 * The policy of a (subject, resource, right): ALWAYS_ALLOW when a live
 * (unrevoked, unexpired) delegable capability grants it, ALLOW when only a
 * non-delegable one does, DENY otherwise.  A capability passed to a child
 * is a delegation: its row names the parent capability (parent_cap) and
 * counts only while every capability up its chain is live, so revoking or
 * the expiry of a parent's capability withdraws it from the whole subtree.
 * A delegation may only attenuate one live delegable capability of the
 * parent: the same or a narrower resource, a subset of its rights, its
 * constraints kept (none given) or tightened, an expiry no later than it.
 *
 * The database calls run inside the caller's transaction (procmgr owns
 * transactions) and return 0 or -1 with err set; audit records are the
 * caller's too.  The matching rules are pure and exported for tests.
 */
#ifndef EGRESSD_CAPABILITY_H
#define EGRESSD_CAPABILITY_H

#include <stddef.h>
#include <stdint.h>

#include "procmgr/procmgr.h"

enum cap_policy { CAP_DENY, CAP_ALLOW, CAP_ALWAYS_ALLOW };

/* Pure rules. */
int cap_resource_matches(const char *pattern, const char *resource);
/* 1 when the comma list rights holds right. */
int cap_rights_include(const char *rights, const char *right);
/* 0 when every name in rights is known; -1 naming the bad one in err. */
int cap_rights_valid(const char *rights, char *err, size_t errlen);
/* 1 when every right of the comma list rights is in the list of. */
int cap_rights_subset(const char *rights, const char *of);
/*
 * 1 when spec may be delegated from a capability (pattern, rights,
 * constraints): see above.  0 with the reason in err otherwise.
 */
int cap_attenuates(const char *pattern, const char *rights,
    const char *constraints, const struct cap_spec *spec, char *err,
    size_t errlen);
/* Live at now: not revoked and expires_at 0 or later than now. */
int cap_live(double expires_at, double revoked_at, double now);
const char *cap_policy_name(enum cap_policy p);

/* Database calls (in the caller's transaction). */
int cap_grant(struct procmgr *pm, agent_pid subject,
    const struct cap_spec *spec, const char *issued_by, int64_t *cap_id);
/* Delegate spec to child, refused (PM_E_DENIED) unless it attenuates. */
int cap_inherit(struct procmgr *pm, agent_pid parent, agent_pid child,
    const struct cap_spec *spec, const char *issued_by);
/* cap_inherit's check alone: 0 when parent may pass spec on. */
int cap_check_inherit(struct procmgr *pm, agent_pid parent,
    const struct cap_spec *spec);
int cap_revoke(struct procmgr *pm, int64_t cap_id, const char *revoked_by,
    const char *reason);
/* The exec shrink: revoke all but object:* and own-namespace ones. */
int cap_shrink_for_exec(struct procmgr *pm, agent_pid pid);
/* Policy for right on resource at now; -1 on a database error. */
int cap_policy(struct procmgr *pm, agent_pid subject, const char *resource,
    const char *right, double now, enum cap_policy *out);
/* A read handle: capability on "object:OID" with the given rights. */
int cap_object_handle(struct procmgr *pm, agent_pid subject, int64_t oid,
    const char *rights, const char *issued_by, int64_t *cap_id);

#endif
