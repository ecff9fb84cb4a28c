/*
 * test_metrics: recording (outcomes, bounded paths, histogram buckets),
 * aggregation and saturation, the JSON round trip and its worst-case size,
 * decoding garbage, the Prometheus text (escaping included) and push_logs
 * lines.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/channel.h"
#include "core/metrics.h"
#include "core/procinfo.h"
#include "testutil.h"

#define HEALTH "/api/v1/test/health"

static struct metrics *
new_metrics(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	return m;
}

static cJSON *
error_result(const char *type)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", "it failed");
	if (type != NULL)
		cJSON_AddStringToObject(o, "error_type", type);
	return o;
}

static uint64_t
count_of(const struct metrics *m, const char *path, const char *outcome)
{
	size_t i;
	int k;

	for (k = 0; k < METRICS_OUTCOMES; k++)
		if (strcmp(metrics_outcome_names[k], outcome) == 0)
			break;
	assert_true(k < METRICS_OUTCOMES);
	if (strcmp(path, METRICS_OTHER) == 0)
		return m->other[k];
	for (i = 0; i < m->npaths; i++)
		if (strcmp(m->path[i].name, path) == 0)
			return m->path[i].count[k];
	return 0;
}

static void
test_outcome(void **state)
{
	static const char *const types[] = { "invalid_request",
	    "capability_denied", "not_found", "limit_exceeded", "timeout",
	    "unsupported", "internal" };
	cJSON *r;
	size_t i;

	(void)state;
	r = cJSON_Parse("{\"status\":\"ok\"}");
	assert_string_equal(metrics_outcome_names[metrics_outcome(r)], "ok");
	cJSON_Delete(r);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		r = error_result(types[i]);
		assert_string_equal(metrics_outcome_names[metrics_outcome(r)],
		    types[i]);
		cJSON_Delete(r);
	}
	r = error_result(NULL);
	assert_string_equal(metrics_outcome_names[metrics_outcome(r)],
	    "error");
	cJSON_Delete(r);
	r = error_result("ok");		/* not an error type */
	assert_string_equal(metrics_outcome_names[metrics_outcome(r)],
	    "error");
	cJSON_Delete(r);
	r = error_result("made_up");
	assert_string_equal(metrics_outcome_names[metrics_outcome(r)],
	    "error");
	cJSON_Delete(r);
}

static void
test_histogram_buckets(void **state)
{
	struct metrics *m = new_metrics();
	cJSON *ok = cJSON_CreateObject();

	(void)state;
	metrics_record(m, HEALTH, ok, 0);		/* bucket 0.001 */
	metrics_record(m, HEALTH, ok, 0.001);		/* le is inclusive */
	metrics_record(m, HEALTH, ok, 0.0011);		/* 0.0025 */
	metrics_record(m, HEALTH, ok, 1);		/* 1 */
	metrics_record(m, HEALTH, ok, 60);		/* 60 */
	metrics_record(m, HEALTH, ok, 60.5);		/* +Inf */
	metrics_record(m, HEALTH, ok, -3);		/* clock oddity: 0 */
	metrics_record(m, HEALTH, ok, NAN);
	assert_int_equal(m->bucket[0], 4);
	assert_int_equal(m->bucket[1], 1);
	assert_int_equal(m->bucket[9], 1);
	assert_true(metrics_bucket_bounds[9] == 1);
	assert_int_equal(m->bucket[14], 1);
	assert_int_equal(m->bucket[15], 1);
	assert_true(isinf(metrics_bucket_bounds[METRICS_BUCKETS - 1]));
	assert_true(fabs(m->sum - (0.001 + 0.0011 + 1 + 60 + 60.5)) < 1e-9);
	assert_int_equal(metrics_total(m), 8);
	assert_int_equal(count_of(m, HEALTH, "ok"), 8);
	cJSON_Delete(ok);
	free(m);
}

static void
test_paths_bounded(void **state)
{
	struct metrics *m = new_metrics();
	cJSON *ok = cJSON_CreateObject(), *bad = error_result("unsupported");
	char path[METRICS_PATH_MAX + 8];
	int i;

	(void)state;
	for (i = 0; i < METRICS_PATHS; i++) {
		snprintf(path, sizeof(path), "/p/%d", i);
		metrics_record(m, path, ok, 0.1);
	}
	assert_int_equal(m->npaths, METRICS_PATHS);
	metrics_record(m, "/one/too/many", bad, 0.1);
	metrics_record(m, "/p/3", bad, 0.1);	/* known: still named */
	assert_int_equal(m->npaths, METRICS_PATHS);
	assert_int_equal(count_of(m, METRICS_OTHER, "unsupported"), 1);
	assert_int_equal(count_of(m, "/p/3", "unsupported"), 1);
	assert_int_equal(count_of(m, "/p/3", "ok"), 1);

	memset(m, 0, sizeof(*m));
	metrics_record(m, NULL, ok, 0);
	metrics_record(m, "(no path)", ok, 0);
	metrics_record(m, "other", ok, 0);	/* cannot pose as "other" */
	metrics_record(m, "/has space", ok, 0);
	metrics_record(m, "/tab\there", ok, 0);
	metrics_record(m, "/caf\xc3\xa9", ok, 0);
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[METRICS_PATH_MAX + 1] = '\0';	/* one byte too long */
	metrics_record(m, path, ok, 0);
	assert_int_equal(m->npaths, 0);
	assert_int_equal(count_of(m, METRICS_OTHER, "ok"), 7);
	path[METRICS_PATH_MAX] = '\0';		/* exactly the limit */
	metrics_record(m, path, ok, 0);
	assert_int_equal(m->npaths, 1);
	cJSON_Delete(ok);
	cJSON_Delete(bad);
	free(m);
}

static void
test_aggregate(void **state)
{
	struct metrics *a = new_metrics(), *b = new_metrics();
	cJSON *ok = cJSON_CreateObject(), *bad = error_result("internal");
	char path[32];
	int i;

	(void)state;
	metrics_record(a, HEALTH, ok, 0.01);
	metrics_record(a, "/x", bad, 2);
	metrics_record(b, HEALTH, ok, 0.02);
	metrics_record(b, HEALTH, bad, 0.02);
	metrics_record(b, "/y", ok, 100);
	metrics_record(b, "nope", ok, 0);
	metrics_count_resend(a);
	metrics_count_resend(b);
	metrics_count_resend(b);
	metrics_count_dead_letter(b);
	metrics_add(a, b);
	assert_true(a->resent == 3);
	assert_true(a->dead == 1);
	assert_int_equal(count_of(a, HEALTH, "ok"), 2);
	assert_int_equal(count_of(a, HEALTH, "internal"), 1);
	assert_int_equal(count_of(a, "/x", "internal"), 1);
	assert_int_equal(count_of(a, "/y", "ok"), 1);
	assert_int_equal(count_of(a, METRICS_OTHER, "ok"), 1);
	assert_int_equal(metrics_total(a), 6);
	assert_true(fabs(a->sum - 102.05) < 1e-9);
	/* adding an empty set changes nothing */
	memset(b, 0, sizeof(*b));
	metrics_add(a, b);
	assert_int_equal(metrics_total(a), 6);

	/* the union beyond the table goes to "other" */
	memset(a, 0, sizeof(*a));
	for (i = 0; i < METRICS_PATHS; i++) {
		snprintf(path, sizeof(path), "/a/%d", i);
		metrics_record(a, path, ok, 0);
		snprintf(path, sizeof(path), "/b/%d", i);
		metrics_record(b, path, ok, 0);
	}
	metrics_add(a, b);
	assert_int_equal(a->npaths, METRICS_PATHS);
	assert_int_equal(count_of(a, METRICS_OTHER, "ok"), METRICS_PATHS);
	assert_int_equal(metrics_total(a), 2 * METRICS_PATHS);

	/* counts saturate instead of wrapping round */
	a->other[0] = METRICS_COUNT_MAX - 1;
	a->bucket[0] = METRICS_COUNT_MAX;
	a->resent = METRICS_COUNT_MAX;
	metrics_count_resend(a);
	assert_true(a->resent == METRICS_COUNT_MAX);
	metrics_add(a, b);
	assert_true(a->resent == METRICS_COUNT_MAX);
	assert_true(a->other[0] == METRICS_COUNT_MAX);
	assert_true(a->bucket[0] == METRICS_COUNT_MAX);
	assert_true(metrics_total(a) == METRICS_COUNT_MAX);
	a->sum = 1.7e308;
	b->sum = 1.7e308;
	metrics_add(a, b);
	assert_true(isfinite(a->sum));
	cJSON_Delete(ok);
	cJSON_Delete(bad);
	free(a);
	free(b);
}

static void
assert_same(const struct metrics *a, const struct metrics *b)
{
	size_t i;

	assert_int_equal(a->npaths, b->npaths);
	for (i = 0; i < a->npaths; i++) {
		assert_string_equal(a->path[i].name, b->path[i].name);
		assert_memory_equal(a->path[i].count, b->path[i].count,
		    sizeof(a->path[i].count));
	}
	assert_memory_equal(a->other, b->other, sizeof(a->other));
	assert_memory_equal(a->bucket, b->bucket, sizeof(a->bucket));
	assert_true(a->resent == b->resent);
	assert_true(a->dead == b->dead);
	assert_true(a->undelivered == b->undelivered);
	/* cJSON prints 15 significant digits */
	assert_true(fabs(a->sum - b->sum) <= 1e-14 * a->sum);
}

/* Encode to text and back, as a frame does. */
static int
round_trip(const struct metrics *m, struct metrics *out, size_t *len)
{
	cJSON *j = metrics_to_json(m), *back;
	char *text, err[128];
	int rc;

	assert_non_null(j);
	text = cJSON_PrintUnformatted(j);
	assert_non_null(text);
	if (len != NULL)
		*len = strlen(text);
	back = cJSON_Parse(text);
	assert_non_null(back);
	rc = metrics_from_json(back, out, err, sizeof(err));
	if (rc != 0)
		print_error("decode: %s\n", err);
	cJSON_Delete(back);
	cJSON_Delete(j);
	free(text);
	return rc;
}

static void
test_json_round_trip(void **state)
{
	struct metrics *m = new_metrics(), *out = new_metrics();
	cJSON *ok = cJSON_CreateObject(), *bad = error_result("timeout");
	cJSON *j;

	(void)state;
	assert_int_equal(round_trip(m, out, NULL), 0);	/* empty */
	assert_same(m, out);
	metrics_record(m, HEALTH, ok, 0.0042);
	metrics_record(m, HEALTH, ok, 0.3);
	metrics_record(m, "/api/v1/agent/execute/storage/read", bad, 30);
	metrics_record(m, "/a\"quote\\back", ok, 1e-7);
	metrics_record(m, "unnamed", bad, 99);
	metrics_count_resend(m);
	metrics_count_resend(m);
	metrics_count_dead_letter(m);
	metrics_count_undelivered(m);
	assert_int_equal(round_trip(m, out, NULL), 0);
	assert_same(m, out);
	assert_true(out->undelivered == 1);

	/* the shape the orchestrator sees */
	j = metrics_to_json(m);
	assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "operations")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(j, "duration_seconds"), "buckets")),
	    METRICS_BUCKETS);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(j, "operations"), 0),
	    "outcomes"), "ok")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItem(j, "results_resent")->valueint,
	    2);
	assert_int_equal(cJSON_GetObjectItem(j,
	    "results_dead_lettered")->valueint, 1);
	cJSON_Delete(j);
	cJSON_Delete(ok);
	cJSON_Delete(bad);
	free(m);
	free(out);
}

/* The largest set there can be still fits a frame with room to spare. */
static void
test_json_worst_case_size(void **state)
{
	struct metrics *m = new_metrics(), *out = new_metrics();
	size_t len;
	int i, k;

	(void)state;
	for (i = 0; i < METRICS_PATHS; i++) {
		/* quotes escape to two bytes each: the longest encoding */
		memset(m->path[i].name, '"', METRICS_PATH_MAX);
		m->path[i].name[0] = '/';
		snprintf(m->path[i].name + 1, 4, "%02d", i);
		m->path[i].name[3] = '"';
		m->path[i].name[METRICS_PATH_MAX] = '\0';
		for (k = 0; k < METRICS_OUTCOMES; k++)
			m->path[i].count[k] = METRICS_COUNT_MAX;
	}
	m->npaths = METRICS_PATHS;
	for (k = 0; k < METRICS_OUTCOMES; k++)
		m->other[k] = METRICS_COUNT_MAX;
	for (k = 0; k < METRICS_BUCKETS; k++)
		m->bucket[k] = METRICS_COUNT_MAX;
	m->sum = 1.2345678901234567e300;
	m->resent = METRICS_COUNT_MAX;
	assert_int_equal(round_trip(m, out, &len), 0);
	assert_same(m, out);
	print_message("worst-case metrics JSON: %zu bytes\n", len);
	assert_true(len < METRICS_JSON_MAX);
	/* the heartbeat's other members take well under 1 KiB */
	assert_true(METRICS_JSON_MAX + 1024 < CHANNEL_MAX_PAYLOAD);
	free(m);
	free(out);
}

static const char *const garbage[] = {
	"null", "[]", "\"x\"", "{}",
	"{\"operations\": {}}",
	"{\"operations\": [1]}",
	"{\"operations\": [{}]}",
	"{\"operations\": [{\"path\": 7, \"outcomes\": {}}]}",
	"{\"operations\": [{\"path\": \"nope\", \"outcomes\": {\"ok\": 1}}]}",
	"{\"operations\": [{\"path\": \"/a b\", \"outcomes\": {\"ok\": 1}}]}",
	"{\"operations\": [{\"path\": \"/a\"}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": []}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": {\"yes\": 1}}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": {\"ok\": -1}}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": {\"ok\": 1.5}}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": {\"ok\": \"1\"}}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": {\"ok\": 1e300}}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": {\"ok\": 1e999}}]}",
	"{\"operations\": [{\"path\": \"/a\", "
	    "\"outcomes\": {\"ok\": 1000000000000000}}]}",
	"{\"operations\": [{\"path\": \"/a\", "
	    "\"outcomes\": {\"ok\": 1, \"ok\": 2}}]}",
	"{\"operations\": [{\"path\": \"/a\", \"outcomes\": {\"ok\": 1}}, "
	    "{\"path\": \"/a\", \"outcomes\": {\"ok\": 1}}]}",
	"{\"operations\": [{\"path\": \"other\", \"outcomes\": {\"ok\": 1}}, "
	    "{\"path\": \"other\", \"outcomes\": {\"ok\": 1}}]}",
	/* a valid entry list, then a bad histogram */
	"{\"operations\": []}",
	"{\"operations\": [], \"duration_seconds\": []}",
	"{\"operations\": [], \"duration_seconds\": {\"sum\": 0}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": [], "
	    "\"sum\": 0}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": 0}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": 0}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,-1], \"sum\": 0}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,null], \"sum\": 0}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": -0.5}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": \"0\"}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": 1e999}}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}}",
	/* a good set, then a bad re-send count */
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": 0}, "
	    "\"results_resent\": -1}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": 0}, "
	    "\"results_resent\": \"2\"}",
	"{\"operations\": [], \"duration_seconds\": {\"buckets\": "
	    "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": 0}, "
	    "\"results_resent\": 0.5}",
};

#define GOOD_DURATION "\"duration_seconds\": {\"buckets\": " \
	"[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], \"sum\": 0.5}"

/* Decoding must fail and leave out as it was. */
static void
assert_rejected(const char *text)
{
	struct metrics *out = new_metrics(), *before = new_metrics();
	char err[128] = "";
	cJSON *j = cJSON_Parse(text);

	assert_non_null(j);
	memset(out, 0x5a, sizeof(*out));
	memcpy(before, out, sizeof(*out));
	if (metrics_from_json(j, out, err, sizeof(err)) != -1)
		fail_msg("accepted: %.200s", text);
	assert_true(err[0] != '\0');
	assert_memory_equal(out, before, sizeof(*out));
	cJSON_Delete(j);
	free(out);
	free(before);
}

static void
test_json_garbage(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		assert_rejected(garbage[i]);
}

/* Arrays longer than any set: refused without walking them all. */
static void
test_json_huge_arrays(void **state)
{
	struct metrics *out = new_metrics();
	cJSON *j, *list, *e;
	char err[128], path[32];
	int i;

	(void)state;
	/* 65 named paths: one more than a set names */
	j = cJSON_Parse("{\"operations\": [], " GOOD_DURATION "}");
	list = cJSON_GetObjectItem(j, "operations");
	for (i = 0; i <= METRICS_PATHS; i++) {
		e = cJSON_CreateObject();
		snprintf(path, sizeof(path), "/p/%d", i);
		cJSON_AddStringToObject(e, "path", path);
		cJSON_AddNumberToObject(cJSON_AddObjectToObject(e,
		    "outcomes"), "ok", 1);
		cJSON_AddItemToArray(list, e);
	}
	assert_int_equal(metrics_from_json(j, out, err, sizeof(err)), -1);
	/* ... and with "other" it is the biggest valid set */
	cJSON_DeleteItemFromArray(list, METRICS_PATHS);
	e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "path", METRICS_OTHER);
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(e, "outcomes"),
	    "internal", 3);
	cJSON_AddItemToArray(list, e);
	assert_int_equal(metrics_from_json(j, out, err, sizeof(err)), 0);
	assert_int_equal(out->npaths, METRICS_PATHS);
	assert_int_equal(metrics_total(out), 1);	/* the histogram's */
	assert_int_equal(count_of(out, METRICS_OTHER, "internal"), 3);
	cJSON_Delete(j);

	/* a hundred thousand entries */
	j = cJSON_Parse("{\"operations\": [], " GOOD_DURATION "}");
	list = cJSON_GetObjectItem(j, "operations");
	for (i = 0; i < 100000; i++)
		cJSON_AddItemToArray(list, cJSON_CreateNumber(i));
	assert_int_equal(metrics_from_json(j, out, err, sizeof(err)), -1);
	cJSON_Delete(j);

	/* a huge bucket array */
	j = cJSON_Parse("{\"operations\": [], \"duration_seconds\": "
	    "{\"buckets\": [], \"sum\": 0}}");
	list = cJSON_GetObjectItem(cJSON_GetObjectItem(j,
	    "duration_seconds"), "buckets");
	for (i = 0; i < 100000; i++)
		cJSON_AddItemToArray(list, cJSON_CreateNumber(0));
	assert_int_equal(metrics_from_json(j, out, err, sizeof(err)), -1);
	cJSON_Delete(j);
	free(out);
}

static void
test_json_good_minimal(void **state)
{
	struct metrics *out = new_metrics();
	char err[128];
	cJSON *j;

	(void)state;
	j = cJSON_Parse("{\"operations\": [{\"path\": \"/a\", \"outcomes\": "
	    "{\"ok\": 2, \"not_found\": 0}, \"future\": true}], "
	    GOOD_DURATION ", \"extra\": [1]}");
	assert_int_equal(metrics_from_json(j, out, err, sizeof(err)), 0);
	assert_int_equal(out->npaths, 1);
	assert_int_equal(count_of(out, "/a", "ok"), 2);
	assert_true(out->sum == 0.5);
	assert_true(out->resent == 0);	/* absent: none counted */
	cJSON_Delete(j);
	j = cJSON_Parse("{\"operations\": [], " GOOD_DURATION ", "
	    "\"results_resent\": 4}");
	assert_int_equal(metrics_from_json(j, out, err, sizeof(err)), 0);
	assert_true(out->resent == 4);
	cJSON_Delete(j);
	free(out);
}

static void
assert_has_line(const char *text, const char *line)
{
	char *want;

	assert_true(asprintf(&want, "\n%s\n", line) > 0);
	if (strstr(text, want) == NULL && strncmp(text, want + 1,
	    strlen(want + 1)) != 0)
		fail_msg("no line \"%s\" in:\n%s", line, text);
	free(want);
}

static void
test_render(void **state)
{
	struct metrics_master mm = { .worker_restarts = 3, .stream_reconnects = 4,
	    .reloads = 5, .workers = 2, .workers_ready = 1, .inflight = 7,
	    .db_bytes = 2097152, .db_pruned_rows = 42 };
	struct metrics *m = new_metrics();
	cJSON *ok = cJSON_CreateObject(), *bad = error_result("unsupported");
	char *text;

	(void)state;
	metrics_record(m, HEALTH, ok, 0.002);
	metrics_record(m, HEALTH, ok, 0.2);
	metrics_record(m, "/nope", bad, 0.5);
	metrics_record(m, "/q\"uo\\te", ok, 100);
	metrics_record(m, NULL, bad, 0);
	metrics_count_resend(m);
	/* a name no recording makes, to see newlines escaped */
	snprintf(m->path[m->npaths].name, METRICS_PATH_MAX, "/new\nline");
	m->path[m->npaths++].count[0] = 1;
	text = metrics_render(m, &mm);
	assert_non_null(text);
	assert_has_line(text, "# HELP egressd_operations_total Operations "
	    "finished, by path and outcome (ok or the error_type).");
	assert_has_line(text, "# TYPE egressd_operations_total counter");
	assert_has_line(text, "egressd_operations_total{path=\"" HEALTH
	    "\",outcome=\"ok\"} 2");
	assert_has_line(text, "egressd_operations_total{path=\"/nope\","
	    "outcome=\"unsupported\"} 1");
	assert_has_line(text, "egressd_operations_total{path="
	    "\"/q\\\"uo\\\\te\",outcome=\"ok\"} 1");
	assert_has_line(text, "egressd_operations_total{path="
	    "\"/new\\nline\",outcome=\"ok\"} 1");
	assert_has_line(text, "egressd_operations_total{path=\"other\","
	    "outcome=\"unsupported\"} 1");
	assert_null(strstr(text, "outcome=\"internal\""));	/* zero */
	assert_has_line(text, "# TYPE egressd_operation_duration_seconds "
	    "histogram");
	assert_has_line(text, "egressd_operation_duration_seconds_bucket"
	    "{le=\"0.001\"} 1");
	assert_has_line(text, "egressd_operation_duration_seconds_bucket"
	    "{le=\"0.0025\"} 2");
	assert_has_line(text, "egressd_operation_duration_seconds_bucket"
	    "{le=\"0.25\"} 3");
	assert_has_line(text, "egressd_operation_duration_seconds_bucket"
	    "{le=\"0.5\"} 4");
	assert_has_line(text, "egressd_operation_duration_seconds_bucket"
	    "{le=\"60\"} 4");
	assert_has_line(text, "egressd_operation_duration_seconds_bucket"
	    "{le=\"+Inf\"} 5");
	assert_has_line(text, "egressd_operation_duration_seconds_sum "
	    "100.702");
	assert_has_line(text, "egressd_operation_duration_seconds_count 5");
	assert_has_line(text, "# TYPE egressd_results_resent_total counter");
	assert_has_line(text, "egressd_results_resent_total 1");
	assert_has_line(text, "# TYPE egressd_worker_restarts_total counter");
	assert_has_line(text, "egressd_worker_restarts_total 3");
	assert_has_line(text, "egressd_stream_reconnects_total 4");
	assert_has_line(text, "egressd_reloads_total 5");
	assert_has_line(text, "# TYPE egressd_workers gauge");
	assert_has_line(text, "egressd_workers 2");
	assert_has_line(text, "egressd_workers_ready 1");
	assert_has_line(text, "egressd_inflight 7");
	assert_has_line(text, "# TYPE egressd_db_bytes gauge");
	assert_has_line(text, "egressd_db_bytes 2097152");
	assert_has_line(text, "# TYPE egressd_db_pruned_rows_total counter");
	assert_has_line(text, "egressd_db_pruned_rows_total 42");
	/* sorted by path, "other" last */
	assert_true(strstr(text, "path=\"/api") < strstr(text, "path=\"/nope"));
	assert_true(strstr(text, "path=\"/q") < strstr(text, "path=\"other"));
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);

	/* nothing recorded: the families are there, no samples */
	memset(m, 0, sizeof(*m));
	memset(&mm, 0, sizeof(mm));
	text = metrics_render(m, &mm);
	assert_non_null(text);
	assert_null(strstr(text, "egressd_operations_total{"));
	assert_has_line(text, "egressd_operation_duration_seconds_count 0");
	assert_has_line(text, "egressd_results_resent_total 0");
	free(text);
	cJSON_Delete(ok);
	cJSON_Delete(bad);
	free(m);
}

/* The orchestrator, outbox, build and process families. */
static void
test_render_links(void **state)
{
	struct metrics_process procs[2] = {
		{ "master", 100, 0, 4096, 1.5, 12, 1700000000.25 },
		{ "worker", 101, 1, 8192, 0.25, 9, 1700000001 },
	};
	struct metrics_master mm;
	struct metrics *m = new_metrics();
	char *text;

	(void)state;
	memset(&mm, 0, sizeof(mm));
	metrics_count_undelivered(m);
	metrics_count_undelivered(m);
	mm.orchestrator_up = 1;
	mm.last_contact = 1700000100.5;
	mm.stream_connected = 1;
	mm.outbox_rows = 3;
	mm.outbox_dead = 2;
	mm.outbox_oldest_age = 42.5;
	mm.procs = procs;
	mm.nprocs = 2;
	text = metrics_render(m, &mm);
	assert_non_null(text);
	assert_has_line(text, "egressd_result_deliveries_failed_total 2");
	assert_has_line(text, "# TYPE egressd_orchestrator_up gauge");
	assert_has_line(text, "egressd_orchestrator_up 1");
	assert_has_line(text, "egressd_orchestrator_last_contact_timestamp_"
	    "seconds 1700000100.5");
	assert_has_line(text, "egressd_stream_connected 1");
	assert_has_line(text, "egressd_outbox_rows 3");
	assert_has_line(text, "egressd_outbox_dead_rows 2");
	assert_has_line(text, "egressd_outbox_oldest_age_seconds 42.5");
	assert_non_null(strstr(text, "\negressd_build_info{version=\""));
	assert_has_line(text, "# TYPE process_cpu_seconds_total counter");
	assert_has_line(text, "process_resident_memory_bytes{role=\"master\","
	    "slot=\"0\",pid=\"100\"} 4096");
	assert_has_line(text, "process_open_fds{role=\"worker\",slot=\"1\","
	    "pid=\"101\"} 9");
	assert_has_line(text, "process_cpu_seconds_total{role=\"master\","
	    "slot=\"0\",pid=\"100\"} 1.5");
	assert_has_line(text, "process_start_time_seconds{role=\"master\","
	    "slot=\"0\",pid=\"100\"} 1700000000.25");
	free(text);
	free(m);
}

/* The CPU seconds and start time of a /proc/PID/stat line. */
static void
test_procinfo_stat(void **state)
{
	/* the command name may hold ") " and spaces: the last ')' ends it */
	const char *stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 "
	    "0 0 250 150 0 0 20 0 1 0 5000 1000000 200 18446744073709551615";
	double cpu = 0, start = 0;

	(void)state;
	assert_int_equal(procinfo_parse_stat(stat, 1700000000, 100, &cpu,
	    &start), 0);
	assert_true(cpu == 4.0);		/* (250 + 150) / 100 */
	assert_true(start == 1700000050.0);	/* btime + 5000 / 100 */
	assert_int_equal(procinfo_parse_stat("4242 no parens", 0, 100, &cpu,
	    &start), -1);
	assert_int_equal(procinfo_parse_stat("1 (x) S 1 2", 0, 100, &cpu,
	    &start), -1);
	assert_int_equal(procinfo_parse_stat(stat, 0, 0, &cpu, &start), -1);
}

static void
test_log_lines(void **state)
{
	cJSON *lines = cJSON_CreateArray();

	(void)state;
	assert_int_equal(metrics_add_log_line(lines, "plain line", "s3cret"),
	    1);
	assert_int_equal(metrics_add_log_line(lines, "caf\xc3\xa9 \xe2\x82\xac",
	    NULL), 1);
	assert_int_equal(metrics_add_log_line(lines, "bad \xff byte, cut "
	    "\xe2\x82", ""), 1);
	assert_int_equal(metrics_add_log_line(lines, "surrogate \xed\xa0\x80",
	    NULL), 1);
	assert_int_equal(metrics_add_log_line(lines, "token is s3cret!",
	    "s3cret"), 0);
	assert_int_equal(cJSON_GetArraySize(lines), 4);
	assert_string_equal(cJSON_GetArrayItem(lines, 0)->valuestring,
	    "plain line");
	assert_string_equal(cJSON_GetArrayItem(lines, 1)->valuestring,
	    "caf\xc3\xa9 \xe2\x82\xac");
	assert_string_equal(cJSON_GetArrayItem(lines, 2)->valuestring,
	    "bad ? byte, cut ??");
	assert_string_equal(cJSON_GetArrayItem(lines, 3)->valuestring,
	    "surrogate ???");
	cJSON_Delete(lines);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcome),
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_paths_bounded),
		cmocka_unit_test(test_aggregate),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_json_worst_case_size),
		cmocka_unit_test(test_json_garbage),
		cmocka_unit_test(test_json_huge_arrays),
		cmocka_unit_test(test_json_good_minimal),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_links),
		cmocka_unit_test(test_procinfo_stat),
		cmocka_unit_test(test_log_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
