/*
 * orchd_sse: the event streams (GET /stream): opening one with its welcome
 * event, SSE framing, events to every stream or one instance's, heartbeats
 * and the end of the streams.  A stream is a connection of orchd_http in
 * stream mode; orchd_sse keeps its instance and its next heartbeat.
 */
#ifndef ORCHD_SSE_H
#define ORCHD_SSE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "orchd_http.h"
#include "orchd_state.h"

/* One event in SSE framing appended to b: optional id and event lines. */
int sse_format(struct buf *b, const char *data, const char *event,
    const char *id);
/* The same with data printed as JSON, without id or event lines. */
int sse_format_json(struct buf *b, const cJSON *data);
/*
 * Turns c into a stream for instance iid (NULL: none), counted for in, and
 * sends the welcome event; an error is answered or closes c.
 */
void sse_open(struct orchd *o, struct conn *c, struct inst *in,
    const char *iid);
/* Raw bytes to the open streams (of one instance); -> streams reached. */
int sse_broadcast(struct orchd *o, const char *raw, size_t len,
    const char *iid);
/* abort: close at once; otherwise the last chunk first. -> streams. */
int sse_close_streams(struct orchd *o, int abort, const char *iid);
/* Heartbeats that are due; -> milliseconds until the next (-1: none). */
int sse_beats(struct orchd *o);

#endif
