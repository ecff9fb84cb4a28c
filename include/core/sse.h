/*
 * sse: an incremental parser for text/event-stream (the WHATWG EventSource
 * wire format), with no I/O.
 *
 * Feed it bytes as they arrive in chunks of any size; it calls back once per
 * complete event.  It follows WHATWG HTML "Interpreting an event stream":
 * UTF-8 decoding with U+FFFD for invalid bytes, "event", "data", "id" and
 * "retry" fields, multi-line data (joined with '\n'), comment lines (':'),
 * LF, CRLF and CR line endings (a CRLF split across two chunks included), a
 * BOM at the start of the stream, and the last event ID committed when its
 * event is dispatched.  Beyond the format, a size limit: an event (or a
 * line) larger than max_event_bytes is dropped whole, reported once, and the
 * parser resumes at the next event boundary without growing its buffers.
 */
#ifndef EGRESSD_SSE_H
#define EGRESSD_SSE_H

#include <stddef.h>

struct sse_event {
	const char *type;	/* "event" field, "message" when absent; valid
				 * UTF-8 without NUL */
	const char *data;	/* NUL-terminated, lines joined by '\n'; valid
				 * UTF-8 (U+0000 may occur: use data_len) */
	size_t data_len;
	const char *id;		/* last event ID, this event's included; "" if
				 * none */
	long retry_ms;		/* last valid "retry" field, -1 if none */
};

/*
 * Called for every complete event with a non-empty data buffer.  The event's
 * pointers are valid only during the call, and the callback must not feed,
 * reset or free the parser that called it.
 */
typedef void (*sse_event_cb)(const struct sse_event *event, void *arg);

struct sse_parser;

struct sse_parser *sse_parser_new(size_t max_event_bytes, sse_event_cb cb,
    void *arg);

/*
 * Feed len bytes.  Returns the number of oversized events dropped during
 * this call (0 normally), or -1 on allocation failure.
 */
int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len);

/*
 * A new connection: forget any partial event, an "id" it carried included
 * (the ID is rolled back to the last one committed), and the BOM state.
 * The last event ID and the retry value are kept.
 */
void sse_parser_reset(struct sse_parser *p);

/*
 * The last event ID: the value of the last "id" field (without NUL) of an
 * event that ended with its blank line, "" when none did or it was empty.
 * What a reconnect sends as Last-Event-ID.  Valid until the next feed.
 */
const char *sse_parser_last_id(const struct sse_parser *p);

/* The last valid "retry" field in milliseconds, -1 if none came. */
long sse_parser_retry(const struct sse_parser *p);

/*
 * Bytes the parser holds in its buffers: at most about five times
 * max_event_bytes, whatever it is fed.  For diagnostics and tests.
 */
size_t sse_parser_buffered(const struct sse_parser *p);

void sse_parser_free(struct sse_parser *p);

#endif
