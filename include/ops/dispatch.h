/*
 * dispatch: operations started by path through the handler table.
 *
 * The table is the one place that names every handler (op_health,
 * op_storage, ...: include/ops/ops.h); it is above them, so the handlers'
 * shared helpers (ops_*) never call back into it.
 */
#ifndef EGRESSD_DISPATCH_H
#define EGRESSD_DISPATCH_H

#include "ops/ops.h"

struct cJSON;
struct config_strlist;
struct egressd_config;

/*
 * Run path's handler (body may be NULL).  OPS_DONE: *result holds the
 * result (never NULL).  OPS_PENDING: run->done will be called once.
 */
enum ops_status dispatch_start(struct op_run *run, const char *path,
    const struct cJSON *body, struct cJSON **result);

/* The configured grants of path's handler (NULL when none or unknown). */
const struct config_strlist *dispatch_capabilities(
    const struct egressd_config *cfg, const char *path);

/*
 * 1 when path's handler runs children (batch): its process is granted
 * the authority to fork (docs/PROCESSES.md), apart from its capabilities.
 */
int dispatch_forks(const char *path);

/*
 * 1 when dispatch_start will finish path at once, without I/O or a wait of
 * any kind and without changing anything outside the database: health, a
 * disabled handler, an unknown path.  The worker then writes the process's
 * spawn, exit and result in one transaction (poller.c says why that is
 * safe only for such handlers).
 */
int dispatch_brief(const struct egressd_config *cfg, const char *path);

#endif
