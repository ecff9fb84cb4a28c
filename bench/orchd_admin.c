/*
 * orchd_admin: the admin API of orchd (see orchd_admin.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "orchd_admin.h"
#include "orchd_sse.h"

#define ORCHD_MAX_ENQUEUE	1000000000.0
#define ORCHD_DEFAULT_PATH	"/api/v1/test/health"

/* In the order of enum orchd_ep. */
static const char *const ep_names[EP_COUNT] = {
	"stream", "operation", "result", "request", "heartbeat", "shutdown",
	"logs", "metrics", "unknown"
};

/* Faults of the fake that orchd does not have: a clear 400, not silence. */
static const char *const unsupported_faults[] = {
	"delay", "fail", "drop", "oversized_operation", "sse_event_field",
	"sse_id_field", "sse_chunked", "garbage_sse", "oversized_sse", NULL
};

static const struct {
	const char	*name;
	size_t		 off;
} bool_faults[] = {
	{ "heartbeats", offsetof(struct faults, heartbeats) },
	{ "heartbeat_comments", offsetof(struct faults, heartbeat_comments) },
	{ "push_metrics", offsetof(struct faults, push_metrics) },
	{ "piggyback", offsetof(struct faults, piggyback) },
	{ "auth_fail", offsetof(struct faults, auth_fail) },
	{ "refuse_all", offsetof(struct faults, refuse_all) },
};

typedef cJSON *(*admin_fn)(struct orchd *, const struct query *,
    const cJSON *, int *, char *, size_t);

/* ---- operations --------------------------------------------------------- */

/* The operation ID a client gave, or a new op-N; "" when unusable. */
static int
op_id_of(struct orchd *o, const cJSON *id, char *out, size_t outlen)
{
	if (cJSON_IsString(id) && id->valuestring[0] != '\0') {
		if (strlen(id->valuestring) >= outlen)
			return -1;
		strcpy(out, id->valuestring);
	} else if (cJSON_IsNumber(id) && id->valuedouble != 0) {
		snprintf(out, outlen, "%.17g", id->valuedouble);
	} else if (id == NULL || cJSON_IsNull(id) || cJSON_IsFalse(id) ||
	    cJSON_IsString(id) || cJSON_IsNumber(id)) {
		snprintf(out, outlen, "op-%llu", state_next_op(o));
	} else
		return -1;
	return 0;
}

/*
 * {"operation_id", "path", "operation", other keys...} as the fake builds
 * it, or NULL with err set.
 */
static cJSON *
op_full(struct orchd *o, const cJSON *op, char *err, size_t errlen)
{
	const cJSON *path, *body, *it;
	char id[256];
	cJSON *full, *copy;

	if (!cJSON_IsObject(op)) {
		snprintf(err, errlen, "an operation must be a JSON object");
		return NULL;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(op,
	    "size_exceeded"))) {
		snprintf(err, errlen, "size_exceeded is not supported by "
		    "orchd");
		return NULL;
	}
	path = cJSON_GetObjectItemCaseSensitive(op, "path");
	if (path != NULL && !cJSON_IsString(path)) {
		snprintf(err, errlen, "path must be a string");
		return NULL;
	}
	if (op_id_of(o, cJSON_GetObjectItemCaseSensitive(op, "operation_id"),
	    id, sizeof(id)) == -1) {
		snprintf(err, errlen, "operation_id must be a short string");
		return NULL;
	}
	body = cJSON_GetObjectItemCaseSensitive(op, "operation");
	if ((full = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(full, "operation_id", id) == NULL ||
	    cJSON_AddStringToObject(full, "path", path ? path->valuestring :
	    ORCHD_DEFAULT_PATH) == NULL)
		goto nomem;
	copy = body ? cJSON_Duplicate(body, 1) : cJSON_CreateObject();
	if (copy == NULL || !cJSON_AddItemToObject(full, "operation", copy))
		goto nomem;
	cJSON_ArrayForEach(it, op) {
		if (strcmp(it->string, "operation_id") == 0 ||
		    strcmp(it->string, "path") == 0 ||
		    strcmp(it->string, "operation") == 0 ||
		    strcmp(it->string, "size_exceeded") == 0)
			continue;
		if ((copy = cJSON_Duplicate(it, 1)) == NULL ||
		    !cJSON_AddItemToObject(full, it->string, copy))
			goto nomem;
	}
	return full;
nomem:
	cJSON_Delete(full);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

/* The operations of an enqueue or push body, normalised; NULL on error. */
static cJSON *
ops_prepare(struct orchd *o, const cJSON *body, char *err, size_t errlen)
{
	const cJSON *list = body, *it, *se;
	cJSON *out, *full;

	if (cJSON_IsObject(body) &&
	    cJSON_GetObjectItemCaseSensitive(body, "operations") != NULL) {
		list = cJSON_GetObjectItemCaseSensitive(body, "operations");
		se = cJSON_GetObjectItemCaseSensitive(body, "size_exceeded");
		if (cJSON_IsTrue(se)) {
			snprintf(err, errlen,
			    "size_exceeded is not supported by orchd");
			return NULL;
		}
	}
	if ((out = cJSON_CreateArray()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (cJSON_IsObject(list)) {
		if ((full = op_full(o, list, err, errlen)) == NULL)
			goto fail;
		cJSON_AddItemToArray(out, full);
		return out;
	}
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
		snprintf(err, errlen, "expected an operation object or "
		    "{\"operations\": [...]}");
		goto fail;
	}
	cJSON_ArrayForEach(it, list) {
		if ((full = op_full(o, it, err, errlen)) == NULL)
			goto fail;
		cJSON_AddItemToArray(out, full);
	}
	return out;
fail:
	cJSON_Delete(out);
	return NULL;
}

/* ---- admin API ---------------------------------------------------------- */

static cJSON *
faults_json(const struct faults *f)
{
	cJSON *obj = cJSON_CreateObject();
	size_t i;

	if (obj == NULL)
		return NULL;
	for (i = 0; i < sizeof(bool_faults) / sizeof(bool_faults[0]); i++)
		cJSON_AddBoolToObject(obj, bool_faults[i].name,
		    *(const int *)((const char *)f + bool_faults[i].off));
	cJSON_AddNumberToObject(obj, "heartbeat_interval",
	    f->heartbeat_interval);
	return obj;
}

static cJSON *
inst_json(const struct inst *in, int streams_open)
{
	cJSON *obj = cJSON_CreateObject();

	if (obj == NULL)
		return NULL;
	cJSON_AddNumberToObject(obj, "requests", (double)in->requests);
	cJSON_AddNumberToObject(obj, "heartbeats", (double)in->heartbeats);
	cJSON_AddNumberToObject(obj, "shutdowns", (double)in->shutdowns);
	cJSON_AddNumberToObject(obj, "results", (double)in->results);
	cJSON_AddNumberToObject(obj, "operations", (double)in->operations);
	cJSON_AddNumberToObject(obj, "empty_polls", (double)in->empty_polls);
	cJSON_AddNumberToObject(obj, "full_requests", 0);
	cJSON_AddNumberToObject(obj, "logs", (double)in->logs);
	cJSON_AddNumberToObject(obj, "metrics", (double)in->metrics);
	cJSON_AddNumberToObject(obj, "stream_connects",
	    (double)in->stream_connects);
	cJSON_AddNumberToObject(obj, "streams_open", streams_open);
	return obj;
}

static cJSON *
instances_json(struct orchd *o)
{
	cJSON *obj = cJSON_CreateObject();
	const struct conn *c;
	const char *key;
	size_t i;
	int open;

	if (obj == NULL)
		return NULL;
	/* A stream always made its instance's entry when it was opened. */
	for (i = 0; i < o->insts.cap; i++) {
		if ((key = o->insts.ents[i].key) == NULL)
			continue;
		open = 0;
		for (c = o->http.conns; c != NULL; c = c->next)
			if (c->stream && strcmp(c->stream_iid ? c->stream_iid :
			    ORCHD_NO_INSTANCE, key) == 0)
				open++;
		cJSON_AddItemToObject(obj, key,
		    inst_json(o->insts.ents[i].val, open));
	}
	return obj;
}

static cJSON *
state_json(struct orchd *o)
{
	cJSON *obj = cJSON_CreateObject(), *counts;
	char url[64];
	int i;

	if (obj == NULL)
		return NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", o->port);
	cJSON_AddStringToObject(obj, "url", url);
	cJSON_AddStringToObject(obj, "server", "orchd");
	cJSON_AddNumberToObject(obj, "queue_length", (double)o->qlen);
	cJSON_AddNumberToObject(obj, "results", (double)o->results);
	cJSON_AddNumberToObject(obj, "duplicate_results",
	    (double)o->duplicates);
	cJSON_AddNumberToObject(obj, "taken", (double)o->taken);
	cJSON_AddNumberToObject(obj, "requests", (double)o->requests);
	if ((counts = cJSON_AddObjectToObject(obj, "counts")) != NULL)
		for (i = 0; i < EP_COUNT; i++)
			cJSON_AddNumberToObject(counts, ep_names[i],
			    (double)o->counts[i]);
	cJSON_AddNumberToObject(obj, "streams_open", (double)o->http.nstreams);
	cJSON_AddNumberToObject(obj, "stream_connects",
	    (double)o->stream_connects);
	cJSON_AddNumberToObject(obj, "sse_heartbeats",
	    (double)o->sse_heartbeats);
	cJSON_AddNumberToObject(obj, "full_operations", 0);
	cJSON_AddItemToObject(obj, "instances", instances_json(o));
	cJSON_AddItemToObject(obj, "faults", faults_json(&o->faults));
	return obj;
}

static cJSON *
admin_state(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	(void)q, (void)body, (void)status, (void)err, (void)errlen;
	return state_json(o);
}

static cJSON *
result_json(const struct result *r, size_t seq)
{
	cJSON *obj = cJSON_CreateObject(), *body, *res;

	if (obj == NULL)
		return NULL;
	cJSON_AddNumberToObject(obj, "seq", (double)seq);
	cJSON_AddStringToObject(obj, "operation_id", r->op_id);
	if (r->instance_id != NULL)
		cJSON_AddStringToObject(obj, "instance_id", r->instance_id);
	else
		cJSON_AddNullToObject(obj, "instance_id");
	body = cJSON_ParseWithLength(r->body, r->body_len);
	res = cJSON_DetachItemFromObjectCaseSensitive(body, "result");
	cJSON_Delete(body);
	cJSON_AddItemToObject(obj, "result", res ? res : cJSON_CreateNull());
	cJSON_AddNumberToObject(obj, "time", r->time);
	cJSON_AddBoolToObject(obj, "duplicate", r->duplicate);
	return obj;
}

/*
 * {"count", "results"}: without filters count is every result received,
 * while the list holds the first max_results ("truncated" when it stops
 * short); with ?list=0 there is no list.
 */
static cJSON *
admin_results(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const char *op = http_query_get(q, "operation_id");
	const char *iid = http_query_get(q, "instance_id");
	const char *list = http_query_get(q, "list");
	int want = list == NULL || strcmp(list, "0") != 0;
	cJSON *obj = cJSON_CreateObject(), *arr = NULL;
	size_t i, n = 0;
	const struct result *r;

	(void)body, (void)status, (void)err, (void)errlen;
	if (obj == NULL || (want && (arr = cJSON_AddArrayToObject(obj,
	    "results")) == NULL)) {
		cJSON_Delete(obj);
		return NULL;
	}
	for (i = 0; i < o->nres; i++) {
		r = &o->res[i];
		if ((op != NULL && strcmp(op, r->op_id) != 0) ||
		    (iid != NULL && (r->instance_id == NULL ||
		    strcmp(iid, r->instance_id) != 0)))
			continue;
		n++;
		if (want)
			cJSON_AddItemToArray(arr, result_json(r, i + 1));
	}
	if (op == NULL && iid == NULL) {
		if (o->results > n)
			cJSON_AddTrueToObject(obj, "truncated");
		n = o->results;
	}
	cJSON_AddNumberToObject(obj, "count", (double)n);
	return obj;
}

static cJSON *
admin_get_faults(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	(void)q, (void)body, (void)status, (void)err, (void)errlen;
	return faults_json(&o->faults);
}

static int
fault_known_unsupported(const char *key)
{
	int i;

	for (i = 0; unsupported_faults[i] != NULL; i++)
		if (strcmp(unsupported_faults[i], key) == 0)
			return 1;
	return 0;
}

/* One key of a faults body into f; -1 with err set. */
static int
fault_apply(struct faults *f, const cJSON *it, int *close, char *err,
    size_t errlen)
{
	const char *key = it->string;
	size_t i;

	for (i = 0; i < sizeof(bool_faults) / sizeof(bool_faults[0]); i++) {
		if (strcmp(key, bool_faults[i].name) != 0)
			continue;
		if (!cJSON_IsBool(it)) {
			snprintf(err, errlen, "%s must be true or false", key);
			return -1;
		}
		*(int *)((char *)f + bool_faults[i].off) = cJSON_IsTrue(it);
		return 0;
	}
	if (strcmp(key, "clear") == 0)
		return 0;
	if (strcmp(key, "heartbeat_interval") == 0) {
		if (!cJSON_IsNumber(it) ||
		    it->valuedouble < ORCHD_MIN_INTERVAL) {
			snprintf(err, errlen, "heartbeat_interval must be a "
			    "number >= %g", ORCHD_MIN_INTERVAL);
			return -1;
		}
		f->heartbeat_interval = it->valuedouble;
		return 0;
	}
	if (strcmp(key, "close_streams") == 0) {
		if (cJSON_IsString(it) && strcmp(it->valuestring, "abort") == 0)
			*close = 2;
		else
			*close = cJSON_IsTrue(it);
		return 0;
	}
	if (fault_known_unsupported(key))
		snprintf(err, errlen, "fault '%s' is not supported by orchd",
		    key);
	else
		snprintf(err, errlen, "unknown fault '%s'", key);
	return -1;
}

static cJSON *
admin_set_faults(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const cJSON *it;
	struct faults f = o->faults;
	int close = 0, delivered = 0;
	cJSON *reply;

	(void)q, (void)status;
	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "faults must be a JSON object");
		return NULL;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "clear")))
		state_faults_default(o, &f);
	cJSON_ArrayForEach(it, body)
		if (fault_apply(&f, it, &close, err, errlen) == -1)
			return NULL;
	o->faults = f;
	if (close)
		delivered = sse_close_streams(o, close == 2, NULL);
	if ((reply = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddItemToObject(reply, "faults", faults_json(&o->faults));
	if (cJSON_GetObjectItemCaseSensitive(body, "close_streams") != NULL)
		cJSON_AddNumberToObject(reply, "delivered", delivered);
	return reply;
}

/* {"count": N, "path"?, "operation"?}: N operations op-A..op-B. */
static cJSON *
enqueue_run(struct orchd *o, const cJSON *body, char *err, size_t errlen)
{
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(body, "count");
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(body, "path");
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(body, "operation");
	unsigned long long n, first;
	cJSON *tail, *reply;
	char *s, id[32];

	if (!cJSON_IsNumber(count) || count->valuedouble < 1 ||
	    count->valuedouble > ORCHD_MAX_ENQUEUE ||
	    count->valuedouble != (double)(long long)count->valuedouble ||
	    (path != NULL && !cJSON_IsString(path)) ||
	    (op != NULL && !cJSON_IsObject(op))) {
		snprintf(err, errlen, "expected {\"count\": N >= 1, "
		    "\"path\"?: string, \"operation\"?: object}");
		return NULL;
	}
	/* The tail that follows {"operation_id":"op-N" in every one. */
	if ((tail = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(tail, "path", path ? path->valuestring :
	    ORCHD_DEFAULT_PATH) == NULL ||
	    !cJSON_AddItemToObject(tail, "operation", op ?
	    cJSON_Duplicate(op, 1) : cJSON_CreateObject()) ||
	    (s = cJSON_PrintUnformatted(tail)) == NULL) {
		cJSON_Delete(tail);
		return NULL;
	}
	cJSON_Delete(tail);
	n = (unsigned long long)count->valuedouble;
	if (state_enqueue_run(o, s, n, &first) == -1)
		return NULL;
	if ((reply = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddNumberToObject(reply, "count", (double)n);
	snprintf(id, sizeof(id), "op-%llu", first);
	cJSON_AddStringToObject(reply, "first_operation_id", id);
	snprintf(id, sizeof(id), "op-%llu", first + n - 1);
	cJSON_AddStringToObject(reply, "last_operation_id", id);
	cJSON_AddNumberToObject(reply, "queue_length", (double)o->qlen);
	return reply;
}

/* Queues prepared operations; -> their IDs, NULL on ENOMEM. */
static cJSON *
enqueue_ops(struct orchd *o, cJSON *ops)
{
	cJSON *ids = cJSON_CreateArray(), *it;
	char *json;

	if (ids == NULL)
		return NULL;
	cJSON_ArrayForEach(it, ops) {
		if ((json = cJSON_PrintUnformatted(it)) == NULL ||
		    state_enqueue(o, json) == -1) {
			cJSON_Delete(ids);
			return NULL;
		}
		cJSON_AddItemToArray(ids, cJSON_CreateString(
		    cJSON_GetObjectItemCaseSensitive(it,
		    "operation_id")->valuestring));
	}
	return ids;
}

static cJSON *
admin_enqueue(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	cJSON *ops, *ids, *reply;

	(void)q, (void)status;
	if (cJSON_IsObject(body) &&
	    cJSON_GetObjectItemCaseSensitive(body, "count") != NULL &&
	    cJSON_GetObjectItemCaseSensitive(body, "operations") == NULL)
		return enqueue_run(o, body, err, errlen);
	if ((ops = ops_prepare(o, body, err, errlen)) == NULL)
		return NULL;
	ids = enqueue_ops(o, ops);
	cJSON_Delete(ops);
	if (ids == NULL || (reply = cJSON_CreateObject()) == NULL) {
		cJSON_Delete(ids);
		return NULL;
	}
	cJSON_AddItemToObject(reply, "operation_ids", ids);
	cJSON_AddNumberToObject(reply, "queue_length", (double)o->qlen);
	return reply;
}

static cJSON *
admin_push(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	cJSON *ops, *ids, *reply, *it;
	int delivered = 0;

	(void)status;
	if ((ops = ops_prepare(o, body, err, errlen)) == NULL)
		return NULL;
	if ((ids = cJSON_CreateArray()) == NULL ||
	    (reply = cJSON_CreateObject()) == NULL) {
		cJSON_Delete(ops);
		cJSON_Delete(ids);
		return NULL;
	}
	cJSON_ArrayForEach(it, ops) {
		buf_reset(&o->scratch);
		if (sse_format_json(&o->scratch, it) == -1)
			break;
		delivered = sse_broadcast(o, o->scratch.data, o->scratch.len,
		    http_query_get(q, "instance_id"));
		cJSON_AddItemToArray(ids, cJSON_CreateString(
		    cJSON_GetObjectItemCaseSensitive(it,
		    "operation_id")->valuestring));
	}
	cJSON_Delete(ops);
	cJSON_AddItemToObject(reply, "operation_ids", ids);
	cJSON_AddNumberToObject(reply, "delivered", delivered);
	return reply;
}

static cJSON *
delivered_json(int n)
{
	cJSON *obj = cJSON_CreateObject();

	if (obj != NULL)
		cJSON_AddNumberToObject(obj, "delivered", n);
	return obj;
}

/* {"data": X, "event"?, "id"?} framed into b. */
static int
event_explicit(struct buf *b, const cJSON *ev)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "event");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "id");
	char idbuf[64], *text;
	const char *ids = NULL;
	int rc;

	if (cJSON_IsString(id))
		ids = id->valuestring;
	else if (cJSON_IsNumber(id)) {
		snprintf(idbuf, sizeof(idbuf), "%.17g", id->valuedouble);
		ids = idbuf;
	}
	if (cJSON_IsString(data))
		return sse_format(b, data->valuestring,
		    cJSON_IsString(name) ? name->valuestring : NULL, ids);
	if ((text = cJSON_PrintUnformatted(data)) == NULL)
		return -1;
	rc = sse_format(b, text, cJSON_IsString(name) ? name->valuestring :
	    NULL, ids);
	free(text);
	return rc;
}

static cJSON *
admin_event(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const cJSON *raw = cJSON_GetObjectItemCaseSensitive(body, "raw");
	struct buf *b = &o->scratch;
	int rc;

	(void)status;
	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "an event must be a JSON object");
		return NULL;
	}
	buf_reset(b);
	if (raw != NULL) {
		if (!cJSON_IsString(raw)) {
			snprintf(err, errlen, "\"raw\" must be a string");
			return NULL;
		}
		rc = buf_str(b, raw->valuestring);
	} else if (cJSON_GetObjectItemCaseSensitive(body, "data") != NULL &&
	    cJSON_GetObjectItemCaseSensitive(body, "type") == NULL)
		rc = event_explicit(b, body);
	else
		rc = sse_format_json(b, body);
	if (rc == -1)
		return NULL;
	return delivered_json(sse_broadcast(o, b->data, b->len,
	    http_query_get(q, "instance_id")));
}

static cJSON *
admin_goodbye(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(body, "reason");
	const char *iid = http_query_get(q, "instance_id");
	cJSON *ev;
	int n, rc;

	(void)status;
	if (!cJSON_IsObject(body) || (reason != NULL &&
	    !cJSON_IsString(reason) && !cJSON_IsNull(reason))) {
		snprintf(err, errlen, "expected {\"reason\"?: string, "
		    "\"close\"?: bool}");
		return NULL;
	}
	if ((ev = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(ev, "type", "goodbye") == NULL ||
	    (cJSON_IsString(reason) && cJSON_AddStringToObject(ev, "reason",
	    reason->valuestring) == NULL)) {
		cJSON_Delete(ev);
		return NULL;
	}
	buf_reset(&o->scratch);
	rc = sse_format_json(&o->scratch, ev);
	cJSON_Delete(ev);
	if (rc == -1)
		return NULL;
	n = sse_broadcast(o, o->scratch.data, o->scratch.len, iid);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "close")))
		sse_close_streams(o, 0, iid);
	return delivered_json(n);
}

static cJSON *
admin_reset(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	cJSON *reply;

	(void)q, (void)status;
	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "expected {\"close_streams\"?: bool}");
		return NULL;
	}
	state_clear(o);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body,
	    "close_streams")))
		sse_close_streams(o, 0, NULL);
	if ((reply = cJSON_CreateObject()) != NULL)
		cJSON_AddTrueToObject(reply, "ok");
	return reply;
}

static const struct {
	const char	*method;
	const char	*path;
	admin_fn	 fn;
} admin_routes[] = {
	{ "GET", "/admin/state", admin_state },
	{ "GET", "/admin/results", admin_results },
	{ "GET", "/admin/faults", admin_get_faults },
	{ "POST", "/admin/faults", admin_set_faults },
	{ "POST", "/admin/enqueue", admin_enqueue },
	{ "POST", "/admin/push", admin_push },
	{ "POST", "/admin/event", admin_event },
	{ "POST", "/admin/goodbye", admin_goodbye },
	{ "POST", "/admin/reset", admin_reset },
};

static int
blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
		    s[i] != '\n')
			return 0;
	return 1;
}

void
admin_handle(struct orchd *o, struct conn *c, const char *method,
    const char *path, const struct query *q, const char *body, size_t len)
{
	char err[256] = "out of memory";
	size_t i, n = sizeof(admin_routes) / sizeof(admin_routes[0]);
	int status = 200, known = 0;
	cJSON *in, *reply;

	for (i = 0; i < n; i++) {
		if (strcmp(admin_routes[i].path, path) != 0)
			continue;
		known = 1;
		if (strcmp(admin_routes[i].method, method) == 0)
			break;
	}
	if (i == n) {
		http_error(c, known ? 405 : 404, "no admin route %s %s",
		    method, path);
		return;
	}
	in = blank(body, len) ? cJSON_CreateObject() :
	    cJSON_ParseWithLength(body, len);
	if (in == NULL) {
		http_error(c, 400, "request body is not valid JSON");
		return;
	}
	reply = admin_routes[i].fn(o, q, in, &status, err, sizeof(err));
	cJSON_Delete(in);
	if (reply == NULL) {
		http_error(c, strcmp(err, "out of memory") == 0 ? 500 : 400,
		    "%s", err);
		return;
	}
	http_reply_json(c, status, reply);
}
