/*
 * events: the master's single SSE connection to the orchestrator.
 *
 * Connects to GET {url}/stream, parses events with the sse module, checks
 * each event's JSON (size, depth, object with a "type" or an operation) and
 * hands the good ones to the master.  Reconnects forever with back-off
 * (2 s doubling to 240 s, +-20% jitter; a "retry:" field replaces the 2 s,
 * kept within 1 s and 240 s), and when no heartbeat event came for
 * orchestrator.events_timeout: both are timers of the loop it is given.
 * Every reconnect sends Last-Event-ID once an event with an ID was
 * dispatched, so the orchestrator may replay what the agent missed.  Bad
 * events are logged and dropped; nothing the stream sends can stop the
 * master.  A stream that answers 200 and then no heartbeat within
 * events_timeout is logged with a hint at response buffering (a proxy
 * holding the body back).  Its state (events_link) is for health and
 * metrics.
 */
#ifndef EGRESSD_EVENTS_H
#define EGRESSD_EVENTS_H

#include "core/orch.h"

struct cJSON;
struct evloop;
struct events;

/* type is "welcome", "heartbeat", "work_available", "goodbye", "operation"
 * or another type string; event is the parsed object (owned by events). */
typedef void (*events_cb)(const char *type, const struct cJSON *event,
    void *arg);

struct events *events_new(struct evloop *loop, struct orch *orch,
    events_cb cb, void *arg);
void events_free(struct events *ev);

void events_start(struct events *ev);		/* connect now */
void events_stop(struct events *ev);		/* disconnect, no retry */
void events_restart(struct events *ev);		/* disconnect, connect now */
/* Disconnect now, connect after delay seconds (0: now). */
void events_restart_after(struct events *ev, double delay);

#define EVENTS_ERROR_MAX 160	/* bytes of the last failure kept */

/*
 * The stream's state: off (no stream wanted), connecting (asked, no
 * welcome or heartbeat yet), connected (one arrived on this connection),
 * backing_off (waiting to reconnect).
 */
enum events_state { EVENTS_OFF, EVENTS_CONNECTING, EVENTS_CONNECTED,
    EVENTS_BACKING_OFF };
#define EVENTS_NSTATES 4
extern const char *const events_state_names[EVENTS_NSTATES];

struct events_link {
	enum events_state state;
	double since;		/* wall time the state began */
	double last_event;	/* wall time of the last event; 0 none */
	unsigned long failures;	/* connections failed in a row */
	const char *error;	/* the last failure; "" none; owned by ev */
};
void events_link(const struct events *ev, struct events_link *out);


/* Reconnects scheduled so far: the stream failed, ended or went silent. */
unsigned long events_reconnects(const struct events *ev);

/*
 * The type an event's JSON object is dispatched as: its "type", except that
 * one with an "operation_id" and no control type ("welcome", "heartbeat",
 * "goodbye", "work_available") is an "operation".  NULL, with *why, when
 * it is dropped: no type, or an operation without a usable ID.
 */
const char *events_type(const struct cJSON *o, const char **why);

/*
 * The back-off delay before attempt n (0-based), jitter included: from the
 * stream's last "retry:" (retry_ms, -1 for none) or 2 s, doubling to 240 s,
 * never under 1 s.
 */
double events_backoff(long retry_ms, int attempt, double jitter01);

/*
 * The Last-Event-ID header line for the last event ID id into buf: 1 when
 * written, 0 when there is no ID to send, -1 when it cannot be sent (over
 * 1024 bytes, or a control character other than tab).
 */
int events_resume_header(const char *id, char *buf, size_t len);

#endif
