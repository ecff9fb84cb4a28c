/*
 * orchd_sse: the event streams of orchd (see orchd_sse.h).
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "orchd_sse.h"

#define ORCHD_STREAM_HEAD	"HTTP/1.1 200 OK\r\n" \
	"Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n" \
	"Transfer-Encoding: chunked\r\n\r\n"

int
sse_format(struct buf *b, const char *data, const char *event, const char *id)
{
	const char *nl;

	if (id != NULL && buf_printf(b, "id: %s\n", id) == -1)
		return -1;
	if (event != NULL && buf_printf(b, "event: %s\n", event) == -1)
		return -1;
	for (;;) {
		nl = strchr(data, '\n');
		if (buf_str(b, "data: ") == -1 ||
		    buf_add(b, data, nl ? (size_t)(nl - data) : strlen(data)) ==
		    -1 || buf_str(b, "\n") == -1)
			return -1;
		if (nl == NULL)
			break;
		data = nl + 1;
	}
	return buf_str(b, "\n");
}

int
sse_format_json(struct buf *b, const cJSON *data)
{
	char *s = cJSON_PrintUnformatted(data);
	int rc;

	if (s == NULL)
		return -1;
	rc = sse_format(b, s, NULL, NULL);
	free(s);
	return rc;
}

void
sse_open(struct orchd *o, struct conn *c, struct inst *in, const char *iid)
{
	cJSON *welcome;
	int rc;

	if (iid != NULL && (c->stream_iid = strdup(iid)) == NULL) {
		http_error(c, 500, "out of memory");
		return;
	}
	if ((welcome = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(welcome, "type", "welcome") == NULL ||
	    cJSON_AddStringToObject(welcome, "agent_id", o->agent_id) ==
	    NULL) {
		cJSON_Delete(welcome);
		http_error(c, 500, "out of memory");
		return;
	}
	buf_reset(&o->scratch);
	rc = sse_format_json(&o->scratch, welcome);
	cJSON_Delete(welcome);
	if (rc == -1 || http_stream_start(c, ORCHD_STREAM_HEAD) == -1) {
		http_close(c);
		return;
	}
	c->next_beat = mono_now() + o->faults.heartbeat_interval;
	o->stream_connects++;
	in->stream_connects++;
	http_chunk(c, o->scratch.data, o->scratch.len);
}

/* Whether c is a stream, of instance iid when iid is set. */
static int
sse_targets(const struct conn *c, const char *iid)
{
	return c->stream && (iid == NULL || (c->stream_iid != NULL &&
	    strcmp(c->stream_iid, iid) == 0));
}

int
sse_broadcast(struct orchd *o, const char *raw, size_t len, const char *iid)
{
	struct conn *c, *next;
	int n = 0;

	for (c = o->http.conns; c != NULL; c = next) {
		next = c->next;
		if (!sse_targets(c, iid))
			continue;
		http_chunk(c, raw, len);
		n++;
	}
	return n;
}

int
sse_close_streams(struct orchd *o, int abort, const char *iid)
{
	struct conn *c, *next;
	int n = 0;

	for (c = o->http.conns; c != NULL; c = next) {
		next = c->next;
		if (!sse_targets(c, iid))
			continue;
		n++;
		if (abort)
			http_close(c);
		else
			http_stream_end(c);
	}
	return n;
}

static void
sse_heartbeat(struct orchd *o, struct conn *c)
{
	struct buf *b = &o->scratch;
	int rc;

	if (!o->faults.heartbeats)
		return;
	buf_reset(b);
	if (o->faults.heartbeat_comments)
		rc = buf_str(b, ": heartbeat\n\n");
	else
		rc = buf_printf(b, "data: {\"type\":\"heartbeat\","
		    "\"ts\":%.3f%s}\n\n", wall_now(),
		    o->faults.push_metrics ? ",\"push_metrics\":true" : "");
	if (rc == -1) {
		http_close(c);
		return;
	}
	o->sse_heartbeats++;
	http_chunk(c, b->data, b->len);
}

int
sse_beats(struct orchd *o)
{
	struct conn *c, *next;
	double now = mono_now(), soonest = -1, left;

	for (c = o->http.conns; c != NULL; c = next) {
		next = c->next;
		if (!c->stream)
			continue;
		if (c->next_beat <= now) {
			sse_heartbeat(o, c);
			c->next_beat = now + o->faults.heartbeat_interval;
		}
		left = c->next_beat - now;
		if (soonest < 0 || left < soonest)
			soonest = left;
	}
	if (soonest < 0)
		return -1;
	return (int)(soonest * 1000.0) + 1;
}
