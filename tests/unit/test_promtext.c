/* Unit tests for core/promtext.c: `egressctl metrics --json` reads back
 * what metrics.c renders. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/promtext.h"

static cJSON *
parse_ok(const char *text)
{
	char err[256] = "";
	cJSON *o = promtext_to_json(text, err, sizeof(err));

	if (o == NULL)
		fail_msg("%s", err);
	return o;
}

static cJSON *
family(cJSON *o, const char *name)
{
	cJSON *f;

	cJSON_ArrayForEach(f, cJSON_GetObjectItem(o, "metrics"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(f,
		    "name")), name) == 0)
			return f;
	fail_msg("no family %s", name);
	return NULL;
}

static const char *
field(const cJSON *o, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));

	assert_non_null(v);
	return v;
}

static void
test_render_round_trip(void **state)
{
	struct metrics *m = calloc(1, sizeof(*m));
	struct metrics_master mm = { .reloads = 3, .workers = 2 };
	cJSON *ok = cJSON_Parse("{\"ok\": true}");
	cJSON *o, *f, *s, *samples;
	char *text;

	(void)state;
	assert_non_null(m);
	metrics_record(m, "/api/v1/test/health", ok, 0.002);
	metrics_record(m, "/api/v1/test/health", ok, 0.02);
	text = metrics_render(m, &mm);
	assert_non_null(text);
	o = parse_ok(text);

	f = family(o, "egressd_operations_total");
	assert_string_equal(field(f, "type"), "counter");
	assert_true(strlen(field(f, "help")) > 0);
	s = cJSON_GetArrayItem(cJSON_GetObjectItem(f, "samples"), 0);
	assert_string_equal(field(cJSON_GetObjectItem(s, "labels"), "path"),
	    "/api/v1/test/health");
	assert_string_equal(field(cJSON_GetObjectItem(s, "labels"),
	    "outcome"), "ok");
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(s,
	    "value")), 2);

	/* A histogram is one family: buckets, sum and count. */
	f = family(o, "egressd_operation_duration_seconds");
	assert_string_equal(field(f, "type"), "histogram");
	samples = cJSON_GetObjectItem(f, "samples");
	assert_int_equal(cJSON_GetArraySize(samples), METRICS_BUCKETS + 2);
	s = cJSON_GetArrayItem(samples, METRICS_BUCKETS - 1);
	assert_string_equal(field(s, "name"),
	    "egressd_operation_duration_seconds_bucket");
	assert_string_equal(field(cJSON_GetObjectItem(s, "labels"), "le"),
	    "+Inf");
	s = cJSON_GetArrayItem(samples, METRICS_BUCKETS + 1);
	assert_string_equal(field(s, "name"),
	    "egressd_operation_duration_seconds_count");
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(s,
	    "value")), 2);

	s = cJSON_GetArrayItem(cJSON_GetObjectItem(family(o,
	    "egressd_reloads_total"), "samples"), 0);
	assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(s,
	    "value")), 3);
	cJSON_Delete(o);
	cJSON_Delete(ok);
	free(text);
	free(m);
}

static void
test_escapes_and_specials(void **state)
{
	cJSON *o, *f, *s;

	(void)state;
	o = parse_ok("# HELP a_total Says \\\\ and\\nmore.\n"
	    "# TYPE a_total counter\n"
	    "a_total{p=\"q\\\"x\\\\y\\nz\",r=\"\"} 1.5e3 1700000000\n"
	    "# a comment\n\n"
	    "lone NaN\n"
	    "neg -Inf");
	f = family(o, "a_total");
	assert_string_equal(field(f, "help"), "Says \\ and\nmore.");
	s = cJSON_GetArrayItem(cJSON_GetObjectItem(f, "samples"), 0);
	assert_string_equal(field(cJSON_GetObjectItem(s, "labels"), "p"),
	    "q\"x\\y\nz");
	assert_string_equal(field(cJSON_GetObjectItem(s, "labels"), "r"), "");
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(s, "value")) ==
	    1500.0);
	/* Undeclared samples are families of their own, untyped. */
	f = family(o, "lone");
	assert_string_equal(field(f, "type"), "untyped");
	s = cJSON_GetArrayItem(cJSON_GetObjectItem(f, "samples"), 0);
	assert_string_equal(field(s, "value"), "NaN");
	s = cJSON_GetArrayItem(cJSON_GetObjectItem(family(o, "neg"),
	    "samples"), 0);
	assert_string_equal(field(s, "value"), "-Inf");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o,
	    "metrics")), 3);
	cJSON_Delete(o);
}

static void
test_garbage_refused(void **state)
{
	static const char *const bad[] = {
		"x", "x ", "x 1abc", "{a=\"b\"} 1", "x{a=\"b} 1",
		"x{a=b} 1", "x{a=\"\\q\"} 1", "x{a=\"b\"}1", "# TYPE  x",
		"# HELP 9x text", "ok 1\nx{", "x 1\ny 2 3\nz",
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(promtext_to_json(bad[i], err, sizeof(err)));
		assert_non_null(strstr(err, "does not parse"));
	}
	assert_non_null(strstr(err, "line 3"));
	cJSON_Delete(parse_ok(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_round_trip),
		cmocka_unit_test(test_escapes_and_specials),
		cmocka_unit_test(test_garbage_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
