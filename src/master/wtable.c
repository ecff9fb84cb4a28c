/*
 * wtable: what the arbiter's files read from the worker table — how many
 * workers there are, their state names, and the metrics totalled over
 * workers live and reaped.  It sits below master.c, relay.c and
 * master_ctl.c and calls none of them.
 */
#include <string.h>

#include "master/events.h"
#include "master_priv.h"
#include "core/metrics.h"

const char *const wtable_state_names[MASTER_NSTATES] = { "booting",
    "ready", "busy", "draining" };

int
wtable_count(const struct master *m, int ready_only)
{
	const struct wproc *w;
	int n = 0;

	for (w = m->workers; w != NULL; w = w->next)
		if (!w->retiring && (!ready_only || w->ready))
			n++;
	return n;
}

void
wtable_metrics(const struct master *m, struct metrics *total,
    struct metrics_master *mm)
{
	const struct wproc *w;
	struct store_size sz;
	int i;

	memcpy(total, &m->retired, sizeof(*total));
	memset(mm, 0, sizeof(*mm));
	for (w = m->workers; w != NULL; w = w->next) {
		metrics_add(total, &w->metrics);
		mm->inflight += w->inflight;
	}
	for (i = 0; i < CONFIG_WORKERS_MAX; i++)
		mm->worker_restarts += m->restarts[i];
	mm->stream_reconnects = m->stream_reconnects +
	    (m->events != NULL ? events_reconnects(m->events) : 0);
	mm->reloads = m->reloads;
	mm->workers = (uint64_t)wtable_count(m, 0);
	mm->workers_ready = (uint64_t)wtable_count(m, 1);
	master_db_sizes(m, &sz);
	mm->db_bytes = (uint64_t)(sz.file_bytes + sz.wal_bytes);
	mm->db_pruned_rows = m->disk.pruned;
}
