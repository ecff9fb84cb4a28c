/*
 * orchd_agent: the agent side of the protocol (DESIGN.md section 2): the
 * x-mcd-id/x-mcd-token check, the injected refusals, the per-endpoint and
 * per-instance counts, GET .../operation, PUT .../result (with
 * piggyback), the event stream and the plain POSTs.
 */
#ifndef ORCHD_AGENT_H
#define ORCHD_AGENT_H

#include <stddef.h>

#include "orchd_http.h"
#include "orchd_state.h"

/*
 * Answers a request that is not for /admin/ on c.  method and head are the
 * request head (it starts with the method); path is changed in place.
 */
void agent_handle(struct orchd *o, struct conn *c, const char *method,
    char *path, const char *head, const char *body, size_t len);

#endif
