/*
 * fuzz_json: libFuzzer target for the JSON that comes from the
 * orchestrator, read the way the agent reads it.
 *
 * The input is one body: a GET operation answer, an SSE event's data, a
 * pushed operation or a result answer.  It goes through
 * json_parse_limited(), which must never crash and must refuse anything
 * nested deeper than JSON_MAX_DEPTH.  An object is then read as an event
 * (events_type), as an operation (poller_op_id, _stub, _problem) and for
 * its piggybacked "next_operation"; an event the stream takes for an
 * operation must be one the poller accepts, also after the master has
 * printed it again for the worker.  The raw bytes also go through the
 * encodings results use for data that is not text (json_text must give
 * valid UTF-8, json_base64 padded RFC 4648).  Every tree parsed prints
 * with json_print() exactly as with cJSON_PrintUnformatted().
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/orch.h"
#include "master/events.h"
#include "core/jsonutil.h"
#include "worker/poller.h"

#define FUZZ_MAX_BYTES	(1 << 20)	/* orchestrator.max_body_bytes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

static int
fuzz_depth(const cJSON *v)
{
	const cJSON *c;
	int deepest = 0, d;

	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 0;
	for (c = v->child; c != NULL; c = c->next)
		if ((d = fuzz_depth(c)) > deepest)
			deepest = d;
	return deepest + 1;
}

/* What the poller makes of op must hang together. */
static void
fuzz_operation(const cJSON *op)
{
	const char *id = poller_op_id(op), *why = poller_op_problem(op);

	if (id != NULL) {
		fuzz_check(cJSON_IsObject(op));
		fuzz_check(orch_valid_id(id));
		fuzz_check(strlen(id) <= ORCH_ID_MAX);
	}
	if (why == NULL)
		fuzz_check(json_string(op, "path") != NULL);
	else
		fuzz_check(why[0] != '\0');
	fuzz_check(poller_op_stub(op) == 0 || poller_op_stub(op) == 1);
}

/* The master forwards an operation event as text; the worker reparses it. */
static void
fuzz_forwarded(const cJSON *event)
{
	char err[128], *text;
	const char *a, *b;
	cJSON *again;

	fuzz_check(poller_op_id(event) != NULL);
	if ((text = cJSON_PrintUnformatted(event)) == NULL)
		return;		/* out of memory */
	again = json_parse_limited(text, strlen(text), SIZE_MAX, err,
	    sizeof(err));
	fuzz_check(again != NULL);
	a = poller_op_id(event);
	b = poller_op_id(again);
	fuzz_check(b != NULL && strcmp(a, b) == 0);
	fuzz_check(poller_op_stub(event) == poller_op_stub(again));
	fuzz_check((poller_op_problem(event) == NULL) ==
	    (poller_op_problem(again) == NULL));
	cJSON_Delete(again);
	cJSON_free(text);
}

static void
fuzz_object(cJSON *o)
{
	const char *type, *why = NULL;
	cJSON *next;

	type = events_type(o, &why);
	if (type == NULL)
		fuzz_check(why != NULL && why[0] != '\0');
	else if (strcmp(type, "operation") == 0)
		fuzz_forwarded(o);
	fuzz_operation(o);
	/* A result answer may carry the next operation. */
	next = cJSON_DetachItemFromObjectCaseSensitive(o, "next_operation");
	if (next != NULL)
		fuzz_operation(next);
	cJSON_Delete(next);
}

/* json_print() and cJSON print the same bytes. */
static void
fuzz_print(const cJSON *v)
{
	char *ours = json_print(v), *theirs = cJSON_PrintUnformatted(v);

	if (ours != NULL && theirs != NULL)	/* else out of memory */
		fuzz_check(strcmp(ours, theirs) == 0);
	cJSON_free(ours);
	cJSON_free(theirs);
}

static void
fuzz_encodings(const char *s, size_t n)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	cJSON *t, *b;
	size_t len, pad;

	if ((t = json_text(s, n)) != NULL) {
		len = strlen(t->valuestring);
		fuzz_check(json_utf8_valid(t->valuestring, len));
		if (json_utf8_valid(s, n))
			fuzz_check(len == n &&
			    memcmp(t->valuestring, s, n) == 0);
		cJSON_Delete(t);
	}
	if ((b = json_base64(s, n)) != NULL) {
		len = strlen(b->valuestring);
		pad = n % 3 == 0 ? 0 : 3 - n % 3;
		fuzz_check(len == (n + 2) / 3 * 4);
		fuzz_check(strspn(b->valuestring, alphabet) == len - pad);
		fuzz_check(strspn(b->valuestring + len - pad, "=") == pad);
		cJSON_Delete(b);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char err[128];
	cJSON *v;

	err[0] = '\0';
	v = json_parse_limited(s, size, FUZZ_MAX_BYTES, err, sizeof(err));
	if (v == NULL)
		fuzz_check(err[0] != '\0');
	else {
		fuzz_check(fuzz_depth(v) <= JSON_MAX_DEPTH);
		fuzz_print(v);
		if (cJSON_IsObject(v))
			fuzz_object(v);
		else
			fuzz_check(poller_op_id(v) == NULL);
		cJSON_Delete(v);
	}
	fuzz_encodings(s, size);
	return 0;
}
