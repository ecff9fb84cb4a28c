/*
 * objmem: object memory of agent processes.
 *
 * Objects are JSON payloads owned by a process, typed (GOAL, RESULT, DATA),
 * immutable or not, volatile or not; a view is what a process can see:
 * a mode (MUTABLE, COPY_ON_WRITE, EPHEMERAL, READ_ONLY) and a list of root
 * object IDs.  A fork derives the child's view from the parent's with the
 * fork mode's view mode; merge copies a terminated child's view roots into
 * the parent's, skipping what the parent already sees and objects that no
 * longer exist; exit (and a kill) releases the
 * process's volatile objects except its result.  Every call runs inside the
 * caller's transaction and returns 0 or -1 with pm->err set.
 */
#ifndef EGRESSD_OBJMEM_H
#define EGRESSD_OBJMEM_H

#include <stddef.h>
#include <stdint.h>

#include "procmgr/procmgr.h"

enum obj_type { OBJ_GOAL, OBJ_RESULT, OBJ_DATA };

const char *objmem_type_name(enum obj_type t);

int objmem_create(struct procmgr *pm, agent_pid owner, enum obj_type type,
    const char *payload, int immutable, int is_volatile, int64_t *oid);
/* A view of mode over roots[0..nroots). */
int objmem_create_view(struct procmgr *pm, agent_pid pid,
    enum view_mode mode, const int64_t *roots, size_t nroots,
    int64_t *view_id);
/* The child's view: the parent's roots passed on, under mode. */
int objmem_fork_view(struct procmgr *pm, int64_t parent_view,
    agent_pid child, enum view_mode mode, int64_t *view_id);
/* Add oid to view's roots unless already there. */
int objmem_view_add(struct procmgr *pm, int64_t view_id, int64_t oid);
/*
 * Roots of child_view the parent's view lacks are added; *merged (n of
 * them, the caller frees it) lists them so the caller can hand out handles.
 */
int objmem_merge_view(struct procmgr *pm, int64_t parent_view,
    int64_t child_view, int64_t **merged, size_t *n);
int objmem_view_mode(struct procmgr *pm, int64_t view_id,
    enum view_mode *out);
/* Delete owner's volatile objects except keep (0 = none). */
int objmem_release_owned(struct procmgr *pm, agent_pid owner, int64_t keep);
/* 1 when oid is a root of view_id and still exists, 0 when not, -1. */
int objmem_view_has(struct procmgr *pm, int64_t view_id, int64_t oid);
/* The process that owns oid; PM_E_NOT_FOUND when it does not exist. */
int objmem_owner(struct procmgr *pm, int64_t oid, agent_pid *owner);
/* The payload of oid (malloc'd JSON text; free it). */
int objmem_read(struct procmgr *pm, int64_t oid, char **payload);

#endif
