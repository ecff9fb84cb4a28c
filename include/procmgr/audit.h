/*
 * audit: the event and audit trails of agent processes, and their pruning.
 *
 * Every process manager call emits an event (type, source, target, payload)
 * and writes an audit record (actor, action, target, input/output refs,
 * decision JSON, time) inside the caller's transaction.  Pruning removes
 * events and audit rows older than store.retention_days or beyond
 * store.max_rows, and terminated process trees older than the retention,
 * in batches of a few hundred rows, each its own short transaction, so
 * writers are never held up for long.
 */
#ifndef EGRESSD_AUDIT_H
#define EGRESSD_AUDIT_H

#include <stdint.h>

#include "procmgr/procmgr.h"

#define AUDIT_BATCH 500

/* Event types: "process.created", "process.forked", "process.exec", ... */
int audit_event(struct procmgr *pm, const char *type, const char *source,
    agent_pid target, const char *payload);
/* refs are JSON arrays as text, decision a JSON object as text; NULLs ok. */
int audit_record(struct procmgr *pm, const char *actor, const char *action,
    const char *target, agent_pid pid, const char *input_refs,
    const char *output_refs, const char *decision);

/*
 * One pruning step on st (its own transactions, at most max_batches
 * batches of AUDIT_BATCH rows); returns the rows removed, or -1 with err
 * (when errlen > 0) saying why: taken before the rollback, whose success
 * would leave SQLite saying "not an error".  Call it again while it
 * returns max_batches * AUDIT_BATCH or more.
 */
int64_t audit_prune(struct store *st, double retention_days,
    int64_t max_rows, double now, int max_batches, char *err,
    size_t errlen);

#endif
