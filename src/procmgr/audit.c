/* audit: event and audit rows, and their pruning (see include/procmgr/audit.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "procmgr/audit.h"
#include "core/clock.h"
#include "pmdb.h"
#include "procmgr/store.h"

#define SECS_PER_DAY 86400.0

int
audit_event(struct procmgr *pm, const char *type, const char *source,
    agent_pid target, const char *payload)
{
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_AUDIT_EVENT, "INSERT INTO events "
	    "(type, source, pid, payload, created_at) VALUES (?, ?, ?, ?, ?)");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, source, -1, SQLITE_STATIC);
	pmdb_bind_id(s, 3, target);
	sqlite3_bind_text(s, 4, payload, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 5, clock_wall());
	return pmdb_step_done(pm, s);
}

int
audit_record(struct procmgr *pm, const char *actor, const char *action,
    const char *target, agent_pid pid, const char *input_refs,
    const char *output_refs, const char *decision)
{
	sqlite3_stmt *s;

	s = pmdb_stmt(pm, PMDB_AUDIT_RECORD, "INSERT INTO audit (actor, "
	    "action, target, pid, input_refs, output_refs, decision, "
	    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, target, -1, SQLITE_STATIC);
	pmdb_bind_id(s, 4, pid);
	sqlite3_bind_text(s, 5, input_refs, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, output_refs, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, decision, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 8, clock_wall());
	return pmdb_step_done(pm, s);
}

/*
 * Pruning.  Every statement touches at most one batch of rows found from
 * the start of an index, never by scanning a table: events and audit rows
 * are taken oldest first by id (ids grow with time, and there is no index
 * on created_at), process trees from the partial index on the ended_at of
 * roots, their descendants through the index on parent_pid.
 */

enum audit_phase {
	AP_EVENTS_ROWS, AP_EVENTS_AGE, AP_AUDIT_ROWS, AP_AUDIT_AGE,
	AP_PROCESSES, AP_COUNT
};

struct audit_pruner {
	struct store *st;
	sqlite3_stmt *stmt[AP_COUNT];
	sqlite3_stmt *tree;		/* delete one root's tree */
	double cutoff;			/* wall time: older goes */
	int64_t max_rows;		/* <= 0: no limit */
	double cursor_ended;		/* last root looked at */
	int64_t cursor_pid;
	char *err;			/* why it failed, when errlen > 0 */
	size_t errlen;
	int roots;			/* per batch, at most AUDIT_BATCH */
};

/*
 * Beyond max_rows: ids are handed out as max(id) + 1 and only the oldest
 * rows are ever deleted, so the ids left are contiguous and the newest
 * max_rows rows are exactly those above max(id) - max_rows.
 */
#define AUDIT_ROWS_SQL(t) "DELETE FROM " t " WHERE id IN (SELECT id FROM " \
	t " WHERE id <= (SELECT max(id) FROM " t ") - ?1 ORDER BY id LIMIT ?2)"
#define AUDIT_AGE_SQL(t) "DELETE FROM " t " WHERE id IN (SELECT id FROM " \
	t " ORDER BY id LIMIT ?2) AND created_at < ?1"

static const char *const audit_phase_sql[AP_COUNT] = {
	AUDIT_ROWS_SQL("events"),
	AUDIT_AGE_SQL("events"),
	AUDIT_ROWS_SQL("audit"),
	AUDIT_AGE_SQL("audit"),
	/* Roots ended before the cutoff with no result still undelivered. */
	"SELECT pid, ended_at FROM processes WHERE parent_pid IS NULL "
	"AND ended_at < ?1 AND ended_at >= ?3 AND (ended_at > ?3 OR pid > ?4) "
	"AND pid NOT IN (SELECT pid FROM outbox WHERE pid IS NOT NULL) "
	"ORDER BY ended_at, pid LIMIT ?2",
};

/*
 * A tree goes whole, unless one of it still runs, ended after the cutoff
 * or awaits the delivery of its result.
 */
static const char audit_tree_sql[] =
	"WITH RECURSIVE tree(pid) AS (SELECT ?1 UNION ALL "
	"SELECT p.pid FROM processes p JOIN tree t ON p.parent_pid = t.pid) "
	"DELETE FROM processes WHERE pid IN tree "
	"AND NOT EXISTS (SELECT 1 FROM tree t JOIN processes p "
	"ON p.pid = t.pid WHERE p.ended_at IS NULL OR p.ended_at >= ?2) "
	"AND NOT EXISTS (SELECT 1 FROM tree t JOIN outbox o ON o.pid = t.pid)";

static int
audit_prepare(struct audit_pruner *ap, sqlite3_stmt **s, const char *sql)
{
	return sqlite3_prepare_v2(ap->st->db, sql, -1, s, NULL) == SQLITE_OK ?
	    0 : -1;
}

static void
audit_pruner_free(struct audit_pruner *ap)
{
	int phase;

	for (phase = 0; phase < AP_COUNT; phase++)
		sqlite3_finalize(ap->stmt[phase]);
	sqlite3_finalize(ap->tree);
}

/* Delete the trees of up to ap->roots roots; *seen = roots looked at. */
static int64_t
audit_prune_trees(struct audit_pruner *ap, int *seen)
{
	sqlite3_stmt *s = ap->stmt[AP_PROCESSES];
	int64_t roots[AUDIT_BATCH], removed = 0;
	int n = 0, i, rc = SQLITE_DONE;

	sqlite3_bind_double(s, 1, ap->cutoff);
	sqlite3_bind_int(s, 2, ap->roots);
	sqlite3_bind_double(s, 3, ap->cursor_ended);
	sqlite3_bind_int64(s, 4, ap->cursor_pid);
	while (n < ap->roots && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		roots[n++] = sqlite3_column_int64(s, 0);
		ap->cursor_pid = roots[n - 1];
		ap->cursor_ended = sqlite3_column_double(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return -1;
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(ap->tree, 1, roots[i]);
		sqlite3_bind_double(ap->tree, 2, ap->cutoff);
		rc = sqlite3_step(ap->tree);
		sqlite3_reset(ap->tree);
		if (rc != SQLITE_DONE)
			return -1;
		removed += sqlite3_changes(ap->st->db);
	}
	*seen = n;
	return removed;
}

/* Keep SQLite's word on the failure before anything else replaces it. */
static void
audit_failed(struct audit_pruner *ap)
{
	if (ap->errlen > 0)
		snprintf(ap->err, ap->errlen, "database %s: %s", ap->st->path,
		    sqlite3_errmsg(ap->st->db));
}

/*
 * One batch of phase in its own transaction; *full when more may remain,
 * *seen the rows (or roots) it looked at.
 */
static int64_t
audit_batch(struct audit_pruner *ap, enum audit_phase phase, int *full,
    int *seen_out)
{
	sqlite3_stmt *s = ap->stmt[phase];
	int64_t n;
	int seen = 0, rc;

	if (store_begin(ap->st) == -1) {
		audit_failed(ap);
		return -1;
	}
	if (phase == AP_PROCESSES)
		n = audit_prune_trees(ap, &seen);
	else {
		if (phase == AP_EVENTS_ROWS || phase == AP_AUDIT_ROWS)
			sqlite3_bind_int64(s, 1, ap->max_rows);
		else
			sqlite3_bind_double(s, 1, ap->cutoff);
		sqlite3_bind_int(s, 2, AUDIT_BATCH);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		n = rc == SQLITE_DONE ? sqlite3_changes(ap->st->db) : -1;
		seen = (int)n;
	}
	if (n == -1 || store_commit(ap->st) == -1) {
		audit_failed(ap);
		store_rollback(ap->st);
		return -1;
	}
	*full = seen >= (phase == AP_PROCESSES ? ap->roots : AUDIT_BATCH);
	if (seen_out != NULL)
		*seen_out = seen;
	return n;
}

static int
audit_phase_wanted(const struct audit_pruner *ap, enum audit_phase phase)
{
	return ap->max_rows > 0 ||
	    (phase != AP_EVENTS_ROWS && phase != AP_AUDIT_ROWS);
}

/*
 * Only full batches count against max_batches: a short one ends its phase,
 * so at most AP_COUNT short batches are added, and a call that stops with
 * work left has removed max_batches * AUDIT_BATCH rows or more.
 */
int64_t
audit_prune(struct store *st, double retention_days, int64_t max_rows,
    double now, int max_batches, char *err, size_t errlen)
{
	struct audit_pruner ap = { .st = st, .max_rows = max_rows,
	    .cutoff = now - retention_days * SECS_PER_DAY, .err = err,
	    .errlen = errlen, .roots = AUDIT_BATCH };
	int64_t removed = 0, n = 0;
	int phase, full, batches = 0;

	if (audit_prepare(&ap, &ap.tree, audit_tree_sql) == -1) {
		audit_failed(&ap);
		return -1;
	}
	for (phase = 0; phase < AP_COUNT && n != -1; phase++) {
		if (!audit_phase_wanted(&ap, phase))
			continue;
		if (audit_prepare(&ap, &ap.stmt[phase],
		    audit_phase_sql[phase]) == -1) {
			audit_failed(&ap);
			n = -1;
			break;
		}
		full = 1;
		while (full && batches < max_batches) {
			if ((n = audit_batch(&ap, phase, &full, NULL)) == -1)
				break;
			removed += n;
			batches += full;
		}
	}
	audit_pruner_free(&ap);
	return n == -1 ? -1 : removed;
}

/*
 * Pruning by size.  The oldest finished trees go first, whatever their
 * age, with the same guards as above (nothing of a tree runs, no result
 * of it awaits delivery); the trails go up to the end of the last root
 * looked at, so what is left of them is about what is left of the trees.
 * Deleting frees pages inside the file; store_reclaim gives them back.
 */

/* Trail rows created before the last root looked at; full batches. */
static int64_t
audit_budget_trails(struct audit_pruner *ap, int *batches, int max_batches)
{
	static const enum audit_phase trails[] = { AP_EVENTS_AGE, AP_AUDIT_AGE };
	int64_t removed = 0, n;
	size_t i;
	int full;

	ap->cutoff = ap->cursor_ended;
	for (i = 0; i < sizeof(trails) / sizeof(trails[0]); i++) {
		full = 1;
		while (full && *batches < max_batches) {
			if ((n = audit_batch(ap, trails[i], &full, NULL)) == -1)
				return -1;
			removed += n;
			*batches += full;
		}
	}
	return removed;
}

/* One batch of trees, then their trails; *none when no root could go. */
static int64_t
audit_budget_step(struct audit_pruner *ap, double now, int *batches,
    int max_batches, int *none)
{
	int64_t trees, trails;
	int full, seen;

	ap->cutoff = now;
	if ((trees = audit_batch(ap, AP_PROCESSES, &full, &seen)) == -1)
		return -1;
	(*batches)++;
	*none = seen == 0;
	if (seen == 0)
		return 0;
	if ((trails = audit_budget_trails(ap, batches, max_batches)) == -1)
		return -1;
	return trees + trails;
}

static int
audit_budget_prepare(struct audit_pruner *ap)
{
	return audit_prepare(ap, &ap->tree, audit_tree_sql) == -1 ||
	    audit_prepare(ap, &ap->stmt[AP_PROCESSES],
	    audit_phase_sql[AP_PROCESSES]) == -1 ||
	    audit_prepare(ap, &ap->stmt[AP_EVENTS_AGE],
	    audit_phase_sql[AP_EVENTS_AGE]) == -1 ||
	    audit_prepare(ap, &ap->stmt[AP_AUDIT_AGE],
	    audit_phase_sql[AP_AUDIT_AGE]) == -1 ? -1 : 0;
}

int
audit_prune_budget(struct store *st, struct audit_budget *b, double now,
    int max_batches)
{
	struct audit_pruner ap = { .st = st, .roots = b->roots };
	struct store_size sz;
	int64_t n = 0;
	int batches = 0, none = 0;

	b->removed = 0;
	b->blocked = b->more = 0;
	if (ap.roots < 1 || ap.roots > AUDIT_BATCH)
		ap.roots = AUDIT_BATCH;
	if (store_size(st, &sz) == -1)
		return -1;
	b->used = sz.used_bytes;
	if (b->used <= b->target)
		return 0;
	if (audit_budget_prepare(&ap) == -1) {
		audit_pruner_free(&ap);
		return -1;
	}
	while (b->used > b->low && !none) {
		if (batches >= max_batches) {
			b->more = 1;
			break;
		}
		if ((n = audit_budget_step(&ap, now, &batches, max_batches,
		    &none)) == -1 || store_size(st, &sz) == -1) {
			n = -1;
			break;
		}
		b->removed += n;
		b->used = sz.used_bytes;
	}
	audit_pruner_free(&ap);
	b->blocked = none && b->used > b->target;
	return n == -1 ? -1 : 0;
}
