/*
 * orchd_admin: the admin API (no auth, JSON), the subset of the fake
 * orchestrator's that the benchmarks use: enqueue (also the compact
 * {"count": N} form), push, event, goodbye, faults, state, results and
 * reset.  It builds the operations of enqueue and push bodies as the fake
 * does, and the JSON views of the state.
 */
#ifndef ORCHD_ADMIN_H
#define ORCHD_ADMIN_H

#include <stddef.h>

#include "orchd_http.h"
#include "orchd_state.h"

/* Answers method path (under /admin/) with query q and body on c. */
void admin_handle(struct orchd *o, struct conn *c, const char *method,
    const char *path, const struct query *q, const char *body, size_t len);

#endif
