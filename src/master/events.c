/* events: the SSE stream client (see include/master/events.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "core/evloop.h"
#include "master/events.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "core/sse.h"

#define EVENTS_BACKOFF_FIRST 2.0
#define EVENTS_BACKOFF_MAX 240.0
#define EVENTS_JITTER 0.2
#define EVENTS_RETRY_MIN 1.0	/* the floor of a "retry:" the stream sets */
#define EVENTS_LAST_ID_MAX 1024	/* longest Last-Event-ID sent back */
#define EVENTS_LAST_ID_HEADER "Last-Event-ID: "

struct events {
	struct evloop *loop;
	struct orch *orch;
	events_cb cb;
	void *arg;
	struct sse_parser *parser;
	struct httpc_request *req;	/* the stream, when connected */
	int status_checked;
	int attempt;		/* consecutive failed connections */
	struct evloop_timer reconnect;	/* pending: a connection is due */
	struct evloop_timer watchdog;	/* pending while connected */
	struct evloop_timer deferred;	/* a stop or restart asked mid-callback */
	int stopped;
	int in_callback;	/* inside libcurl's write callback */
	int restart_pending;	/* restart asked for from a callback */
	double restart_delay;	/* and after how long */
	unsigned long reconnects;	/* for the metrics */
	enum events_state state;	/* for health and metrics */
	double since;		/* wall time state last changed */
	double last_event;	/* wall time of the last event; 0 none */
	int heartbeat_seen;	/* on the current connection */
	char error[EVENTS_ERROR_MAX];	/* why the last connection failed */
	int id_refused;		/* the last event ID was logged as unsendable */
};

static void
events_set_state(struct events *ev, enum events_state state)
{
	if (ev->state != state)
		ev->since = clock_wall();
	ev->state = state;
}

/* Why the stream failed, for health; a secret never appears in it. */
static void
events_set_error(struct events *ev, const char *why)
{
	size_t n = strlen(why);

	if (n >= sizeof(ev->error))
		n = sizeof(ev->error) - 1;	/* a curl message, cut */
	memcpy(ev->error, why, n);
	ev->error[n] = '\0';
}

/*
 * The stream's "retry:" replaces the first delay, kept between 1 s (a
 * stream cannot make the agent hammer the orchestrator) and the cap (nor
 * silence it for longer than the back-off would).
 */
double
events_backoff(long retry_ms, int attempt, double jitter01)
{
	double d = EVENTS_BACKOFF_FIRST;

	if (retry_ms >= 0) {
		d = (double)retry_ms / 1000.0;
		if (d < EVENTS_RETRY_MIN)
			d = EVENTS_RETRY_MIN;
	}
	while (attempt-- > 0 && d < EVENTS_BACKOFF_MAX)
		d *= 2;
	if (d > EVENTS_BACKOFF_MAX)
		d = EVENTS_BACKOFF_MAX;
	d *= 1.0 - EVENTS_JITTER + 2 * EVENTS_JITTER * jitter01;
	return d < EVENTS_RETRY_MIN ? EVENTS_RETRY_MIN : d;
}

int
events_resume_header(const char *id, char *buf, size_t len)
{
	const unsigned char *c;
	size_t n = strlen(id);

	if (n == 0)
		return 0;
	if (n > EVENTS_LAST_ID_MAX)
		return -1;
	/* Field-value bytes only: no control characters but tab. */
	for (c = (const unsigned char *)id; *c != '\0'; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return -1;
	if ((size_t)snprintf(buf, len, EVENTS_LAST_ID_HEADER "%s", id) >= len)
		return -1;
	return 1;
}

static void
events_arm_watchdog(struct events *ev)
{
	evloop_timer_add(ev->loop, &ev->watchdog, clock_mono() +
	    ev->orch->cfg->orchestrator.events_timeout);
}

const char *
events_type(const cJSON *o, const char **why)
{
	const char *type = json_string(o, "type"), *id;

	if (cJSON_GetObjectItemCaseSensitive(o, "operation_id") != NULL &&
	    (type == NULL || (strcmp(type, "welcome") != 0 &&
	    strcmp(type, "heartbeat") != 0 && strcmp(type, "goodbye") != 0 &&
	    strcmp(type, "work_available") != 0)))
		type = "operation";
	if (type == NULL) {
		*why = "event without a \"type\"";
		return NULL;
	}
	if (strcmp(type, "operation") == 0 &&
	    ((id = json_string(o, "operation_id")) == NULL ||
	    !orch_valid_id(id))) {
		*why = "pushed operation without a usable \"operation_id\"";
		return NULL;
	}
	return type;
}

static void
events_dispatch(struct events *ev, const cJSON *o)
{
	const char *type, *why;

	if ((type = events_type(o, &why)) == NULL) {
		log_warnx("events: %s; dropped", why);
		return;
	}
	ev->last_event = clock_wall();
	if (strcmp(type, "heartbeat") == 0 || strcmp(type, "welcome") == 0) {
		ev->attempt = 0;	/* the connection works */
		events_set_state(ev, EVENTS_CONNECTED);
		events_arm_watchdog(ev);
	}
	if (strcmp(type, "heartbeat") == 0)
		ev->heartbeat_seen = 1;
	ev->cb(type, o, ev->arg);
}

static void
events_on_sse(const struct sse_event *se, void *arg)
{
	struct events *ev = arg;
	char err[128];
	cJSON *o;

	if (ev->stopped || ev->restart_pending)
		return;		/* the rest of this chunk is moot */
	o = json_parse_limited(se->data, se->data_len,
	    (size_t)ev->orch->cfg->orchestrator.max_event_bytes, err,
	    sizeof(err));
	if (o == NULL) {
		log_warnx("events: malformed event (%s); dropped", err);
		return;
	}
	if (!cJSON_IsObject(o))
		log_warnx("events: event data is not a JSON object; dropped");
	else
		events_dispatch(ev, o);
	cJSON_Delete(o);
}

static int
events_on_data(struct httpc_request *req, const char *data, size_t len)
{
	struct events *ev = req->arg;
	long status = 0;
	int dropped;

	if (ev->stopped || ev->restart_pending)
		return -1;
	if (!ev->status_checked) {
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200) {
			log_warnx("events: stream answered HTTP %ld", status);
			snprintf(ev->error, sizeof(ev->error), "HTTP %ld",
			    status);
			return -1;
		}
		ev->status_checked = 1;
		log_info("events: stream connected");
	}
	/* The master may ask for a restart from here: it is deferred. */
	ev->in_callback = 1;
	dropped = sse_parser_feed(ev->parser, data, len);
	ev->in_callback = 0;
	if (dropped > 0)
		log_warnx("events: %d event(s) over orchestrator.max_event_bytes "
		    "(%lld) dropped", dropped,
		    (long long)ev->orch->cfg->orchestrator.max_event_bytes);
	return dropped < 0 ? -1 : 0;
}

static void
events_schedule(struct events *ev)
{
	double delay = events_backoff(sse_parser_retry(ev->parser),
	    ev->attempt, (double)random() / (double)RAND_MAX);

	ev->attempt++;
	ev->reconnects++;
	events_set_state(ev, EVENTS_BACKING_OFF);
	evloop_timer_add(ev->loop, &ev->reconnect, clock_mono() + delay);
	evloop_timer_cancel(&ev->watchdog);
	log_info("events: reconnecting in %.1fs", delay);
}

static void
events_on_done(struct httpc_request *req)
{
	struct events *ev = req->arg;
	char why[CURL_ERROR_SIZE + 64];

	if (!ev->status_checked && req->status != 200 && req->status != 0)
		snprintf(why, sizeof(why), "HTTP %ld", req->status);
	else if (req->result == CURLE_OK)
		snprintf(why, sizeof(why), "closed by the orchestrator");
	else
		httpc_describe(req, why, sizeof(why));
	log_warnx("events: stream ended (%s)", why);
	if (req->result != CURLE_WRITE_ERROR)	/* else events_on_data said */
		events_set_error(ev, why);
	httpc_request_free(req);
	ev->req = NULL;
	if (!ev->stopped)
		events_schedule(ev);
}

/*
 * Resume where the stream broke off: the last event ID it committed goes
 * back as Last-Event-ID, so the orchestrator may replay what followed.
 * One it cannot carry (too long, control characters) is left out, once
 * logged: the agent works without replay, as DESIGN section 2 wants.
 */
static int
events_add_resume(struct events *ev, struct httpc_request *req)
{
	char line[sizeof(EVENTS_LAST_ID_HEADER) + EVENTS_LAST_ID_MAX];
	const char *id = sse_parser_last_id(ev->parser);
	int rc = events_resume_header(id, line, sizeof(line));

	if (rc == -1) {
		if (!ev->id_refused)
			log_warnx("events: the last event ID (%zu bytes) is too "
			    "long or holds control characters; reconnecting "
			    "without Last-Event-ID", strlen(id));
		ev->id_refused = 1;
		return 0;
	}
	ev->id_refused = 0;
	if (rc == 1) {
		log_debug("events: resuming after event ID %.64s", id);
		return httpc_request_header(req, line);
	}
	return 0;
}

static void
events_connect(struct events *ev)
{
	struct httpc_request *req;

	evloop_timer_cancel(&ev->reconnect);
	sse_parser_reset(ev->parser);
	ev->status_checked = 0;
	ev->heartbeat_seen = 0;
	req = orch_prepare(ev->orch, ORCH_STREAM, NULL, NULL);
	if (req != NULL) {
		req->on_data = events_on_data;
		req->on_done = events_on_done;
		req->arg = ev;
	}
	if (req != NULL && events_add_resume(ev, req) == -1) {
		httpc_request_free(req);
		req = NULL;
	}
	if (req == NULL || httpc_start(ev->orch->http, req) == -1) {
		log_warnx("events: cannot start the stream request");
		events_set_error(ev, "cannot start the stream request");
		httpc_request_free(req);
		events_schedule(ev);
		return;
	}
	ev->req = req;
	events_set_state(ev, EVENTS_CONNECTING);
	events_arm_watchdog(ev);
}

static void
events_on_watchdog(void *arg)
{
	struct events *ev = arg;

	double timeout = ev->orch->cfg->orchestrator.events_timeout;

	/* Answered and then silent: the classic buffering proxy. */
	if (ev->status_checked && !ev->heartbeat_seen)
		log_warnx("events: the stream connected (HTTP 200) but "
		    "delivered no heartbeat in %.0fs; a proxy or load balancer "
		    "in front of the orchestrator may be buffering the "
		    "response (nginx: proxy_buffering off, or the response "
		    "header X-Accel-Buffering: no; see OPERATIONS.md)",
		    timeout);
	log_warnx("events: no heartbeat for %.0fs; reconnecting", timeout);
	events_set_error(ev, ev->status_checked && !ev->heartbeat_seen ?
	    "connected, but no heartbeat arrived (response buffering?)" :
	    "no heartbeat in events_timeout");
	httpc_request_free(ev->req);
	ev->req = NULL;
	events_schedule(ev);
}

static void
events_on_reconnect(void *arg)
{
	events_connect(arg);
}

/* What was asked for inside libcurl's write callback, now outside it. */
static void
events_on_deferred(void *arg)
{
	struct events *ev = arg;

	if (ev->restart_pending)
		events_restart_after(ev, ev->restart_delay);
	else if (ev->stopped)
		events_stop(ev);
}

struct events *
events_new(struct evloop *loop, struct orch *orch, events_cb cb, void *arg)
{
	struct events *ev;

	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		return NULL;
	ev->parser = sse_parser_new(
	    (size_t)orch->cfg->orchestrator.max_event_bytes, events_on_sse,
	    ev);
	if (ev->parser == NULL) {
		free(ev);
		return NULL;
	}
	ev->loop = loop;
	ev->orch = orch;
	ev->cb = cb;
	ev->arg = arg;
	ev->stopped = 1;
	ev->state = EVENTS_OFF;
	ev->since = clock_wall();
	evloop_timer_init(&ev->reconnect, events_on_reconnect, ev);
	evloop_timer_init(&ev->watchdog, events_on_watchdog, ev);
	evloop_timer_init(&ev->deferred, events_on_deferred, ev);
	return ev;
}

void
events_stop(struct events *ev)
{
	ev->restart_pending = 0;
	ev->stopped = 1;
	events_set_state(ev, EVENTS_OFF);
	evloop_timer_cancel(&ev->reconnect);
	evloop_timer_cancel(&ev->watchdog);
	evloop_timer_cancel(&ev->deferred);
	if (ev->req == NULL)
		return;
	if (ev->in_callback) {
		/* The stream's own callback is running: finish right after. */
		evloop_timer_add(ev->loop, &ev->deferred, 0);
		return;
	}
	httpc_request_free(ev->req);	/* cancels: no on_done */
	ev->req = NULL;
}

void
events_start(struct events *ev)
{
	ev->stopped = 0;
	ev->attempt = 0;
	if (ev->req == NULL)
		events_connect(ev);
}

void
events_restart_after(struct events *ev, double delay)
{
	if (ev->in_callback) {
		ev->restart_pending = 1;
		ev->restart_delay = delay;
		evloop_timer_add(ev->loop, &ev->deferred, 0);
		return;
	}
	events_stop(ev);
	if (delay <= 0) {
		events_start(ev);
		return;
	}
	ev->stopped = 0;
	ev->attempt = 0;
	events_set_state(ev, EVENTS_BACKING_OFF);
	evloop_timer_add(ev->loop, &ev->reconnect, clock_mono() + delay);
	log_info("events: reconnecting in %.1fs", delay);
}

void
events_restart(struct events *ev)
{
	events_restart_after(ev, 0);
}

void
events_free(struct events *ev)
{
	if (ev == NULL)
		return;
	events_stop(ev);
	evloop_timer_cancel(&ev->deferred);
	sse_parser_free(ev->parser);
	free(ev);
}

unsigned long
events_reconnects(const struct events *ev)
{
	return ev->reconnects;
}

const char *const events_state_names[EVENTS_NSTATES] = { "off",
    "connecting", "connected", "backing_off" };

void
events_link(const struct events *ev, struct events_link *out)
{
	out->state = ev->state;
	out->since = ev->since;
	out->last_event = ev->last_event;
	out->failures = (unsigned long)ev->attempt;
	out->error = ev->error;
}
