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

/*
 * Pruning by size (store.max_bytes).  When more than target bytes of
 * pages hold data, the oldest finished trees go, with the events and
 * audit rows written before the last of them ended, batch by batch (each
 * its own transaction, at most max_batches) until low bytes are left;
 * fewer roots per batch keep each transaction's WAL small.  A
 * tree that still runs or awaits the delivery of a result (dead letters
 * included) is never touched: when only such trees are left, blocked is
 * set and nothing more goes.  Free pages stay in the file (store_reclaim).
 */
struct audit_budget {
	int64_t target;		/* in: bytes of data that start a pass */
	int64_t low;		/* in: a pass prunes down to this */
	int roots;		/* in: trees per batch, 1..AUDIT_BATCH */
	int64_t used;		/* out: bytes of data at the end */
	int64_t removed;	/* out: processes, events, audit rows */
	int blocked;		/* out: over target, no finished tree may go */
	int more;		/* out: stopped after max_batches */
};
/* 0 (see b), or -1 on a database error. */
int audit_prune_budget(struct store *st, struct audit_budget *b,
    double now, int max_batches);

#endif
