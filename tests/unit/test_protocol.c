/*
 * Unit tests for the protocol's pure pieces: the stream's reconnect
 * back-off, operation ID validation, bounded JSON parsing, how events and
 * operation objects are read, and the credential rules (token file
 * permissions, environment fallbacks).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/orch.h"
#include "core/config.h"
#include "master/events.h"
#include "core/jsonutil.h"
#include "worker/poller.h"
#include "testutil.h"

static void
test_backoff_doubles_to_the_cap(void **state)
{
	(void)state;
	/* jitter01 = 0.5 is the midpoint: no jitter. */
	assert_float_equal(events_backoff(-1, 0, 0.5), 2.0, 1e-9);
	assert_float_equal(events_backoff(-1, 1, 0.5), 4.0, 1e-9);
	assert_float_equal(events_backoff(-1, 2, 0.5), 8.0, 1e-9);
	assert_float_equal(events_backoff(-1, 6, 0.5), 128.0, 1e-9);
	assert_float_equal(events_backoff(-1, 7, 0.5), 240.0, 1e-9);
	assert_float_equal(events_backoff(-1, 1000, 0.5), 240.0, 1e-9);
}

static void
test_backoff_jitter_is_twenty_percent(void **state)
{
	(void)state;
	assert_float_equal(events_backoff(-1, 0, 0.0), 1.6, 1e-9);
	assert_float_equal(events_backoff(-1, 0, 1.0), 2.4, 1e-9);
	assert_float_equal(events_backoff(-1, 1000, 0.0), 192.0, 1e-9);
	assert_float_equal(events_backoff(-1, 1000, 1.0), 288.0, 1e-9);
}

static void
test_backoff_follows_retry_within_bounds(void **state)
{
	(void)state;
	/* "retry: 5000" replaces the first 2 s, and doubles the same way. */
	assert_float_equal(events_backoff(5000, 0, 0.5), 5.0, 1e-9);
	assert_float_equal(events_backoff(5000, 1, 0.5), 10.0, 1e-9);
	/* Never under 1 s, whatever the stream asks or the jitter gives. */
	assert_float_equal(events_backoff(0, 0, 0.5), 1.0, 1e-9);
	assert_float_equal(events_backoff(10, 0, 0.0), 1.0, 1e-9);
	assert_float_equal(events_backoff(1000, 0, 0.0), 1.0, 1e-9);
	/* Never over the cap before jitter, however large. */
	assert_float_equal(events_backoff(LONG_MAX, 0, 0.5), 240.0, 1e-9);
	assert_float_equal(events_backoff(3600000, 3, 0.5), 240.0, 1e-9);
}

static void
test_resume_header(void **state)
{
	char buf[2048], id[1100];

	(void)state;
	assert_int_equal(events_resume_header("", buf, sizeof(buf)), 0);
	assert_int_equal(events_resume_header("42", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "Last-Event-ID: 42");
	assert_int_equal(events_resume_header("a\tb \xE2\x80\xA6", buf,
	    sizeof(buf)), 1);
	assert_string_equal(buf, "Last-Event-ID: a\tb \xE2\x80\xA6");
	assert_int_equal(events_resume_header("a\x01" "b", buf, sizeof(buf)),
	    -1);
	assert_int_equal(events_resume_header("a\x7f", buf, sizeof(buf)), -1);
	memset(id, 'x', 1024);
	id[1024] = '\0';
	assert_int_equal(events_resume_header(id, buf, sizeof(buf)), 1);
	id[1024] = 'x';
	id[1025] = '\0';
	assert_int_equal(events_resume_header(id, buf, sizeof(buf)), -1);
	/* A buffer too small is a refusal, never a cut header. */
	assert_int_equal(events_resume_header("42", buf, 10), -1);
}

static void
test_valid_ids(void **state)
{
	char longest[ORCH_ID_MAX + 2];

	(void)state;
	assert_true(orch_valid_id("op-1"));
	assert_true(orch_valid_id("a.b_c:d~e"));
	assert_false(orch_valid_id(""));
	assert_false(orch_valid_id("a b"));
	assert_false(orch_valid_id("../etc"));
	assert_false(orch_valid_id("a/b"));
	assert_false(orch_valid_id("a?b"));
	assert_false(orch_valid_id("a%2f"));
	assert_false(orch_valid_id("a\nb"));
	/* Dot segments: PUT .../operations/../result is another endpoint. */
	assert_false(orch_valid_id("."));
	assert_false(orch_valid_id(".."));
	assert_true(orch_valid_id("..."));
	assert_true(orch_valid_id(".a"));
	memset(longest, 'x', sizeof(longest));
	longest[ORCH_ID_MAX] = '\0';
	assert_true(orch_valid_id(longest));
	longest[ORCH_ID_MAX] = 'x';
	longest[ORCH_ID_MAX + 1] = '\0';
	assert_false(orch_valid_id(longest));
}

static char *
nested(int depth)
{
	char *s = malloc((size_t)depth * 2 + 1);
	int i;

	for (i = 0; i < depth; i++) {
		s[i] = '[';
		s[depth * 2 - 1 - i] = ']';
	}
	s[depth * 2] = '\0';
	return s;
}

static void
test_json_depth_limit(void **state)
{
	char err[128], *ok = nested(JSON_MAX_DEPTH), *deep;
	cJSON *v;

	(void)state;
	v = json_parse_limited(ok, strlen(ok), 1 << 20, err, sizeof(err));
	assert_non_null(v);
	cJSON_Delete(v);
	deep = nested(JSON_MAX_DEPTH + 1);
	assert_null(json_parse_limited(deep, strlen(deep), 1 << 20, err,
	    sizeof(err)));
	assert_string_equal(err, "nested deeper than 64 levels");
	free(ok);
	free(deep);
}

static void
test_json_brackets_in_strings_do_not_count(void **state)
{
	const char *text = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}";
	char err[128];
	cJSON *v;

	(void)state;
	v = json_parse_limited(text, strlen(text), 1 << 20, err, sizeof(err));
	assert_non_null(v);
	cJSON_Delete(v);
}

static void
test_json_size_and_syntax(void **state)
{
	char err[128];

	(void)state;
	assert_null(json_parse_limited("{\"a\":1}", 7, 6, err, sizeof(err)));
	assert_string_equal(err, "larger than 6 bytes");
	assert_null(json_parse_limited("{\"a\":", 5, 100, err, sizeof(err)));
	assert_string_equal(err, "not valid JSON");
}

/*
 * A string with \u0000 is never read cut short: a value is no string at
 * all (printed, it is the original token), a member name keeps its
 * spelling; "\\u0000" (an escaped backslash) is an ordinary string.
 */
static void
test_json_nul_strings(void **state)
{
	const char *text = "{\"a\": \"x\\u0000y\", \"b\\u0000c\": 1, "
	    "\"arr\": [\"p\\u0000\", \"ok\", {\"k\": \"\\u0000\"}], "
	    "\"s\": \"\\\\u0000\", \"t\": \"tab\tu\\u0000\"}";
	char err[128], *once, *twice;
	const cJSON *arr, *a;
	cJSON *v, *again;

	(void)state;
	v = json_parse_limited(text, strlen(text), 1 << 20, err, sizeof(err));
	assert_non_null(v);
	a = cJSON_GetObjectItemCaseSensitive(v, "a");
	assert_non_null(a);
	assert_false(cJSON_IsString(a));
	assert_true(json_has_nul(a));
	assert_null(json_string(v, "a"));
	/* the name cut at its NUL finds nothing */
	assert_null(cJSON_GetObjectItemCaseSensitive(v, "b"));
	assert_non_null(cJSON_GetObjectItemCaseSensitive(v, "b\\u0000c"));
	arr = cJSON_GetObjectItemCaseSensitive(v, "arr");
	assert_false(cJSON_IsString(cJSON_GetArrayItem(arr, 0)));
	assert_string_equal(cJSON_GetArrayItem(arr, 1)->valuestring, "ok");
	assert_null(json_string(cJSON_GetArrayItem(arr, 2), "k"));
	assert_string_equal(json_string(v, "s"), "\\u0000");
	assert_false(json_has_nul(cJSON_GetObjectItemCaseSensitive(v, "s")));
	assert_null(json_string(v, "t"));
	/* printed and parsed again: the same tree, valid JSON */
	once = cJSON_PrintUnformatted(v);
	assert_non_null(once);
	assert_non_null(strstr(once, "\"x\\u0000y\""));
	assert_non_null(strstr(once, "\"tab\\u0009u\\u0000\""));
	again = json_parse_limited(once, strlen(once), 1 << 20, err,
	    sizeof(err));
	assert_non_null(again);
	twice = cJSON_PrintUnformatted(again);
	assert_string_equal(once, twice);
	assert_null(json_string(again, "a"));
	cJSON_free(once);
	cJSON_free(twice);
	cJSON_Delete(again);
	cJSON_Delete(v);
}

/* json_print prints v as cJSON_PrintUnformatted does, byte for byte. */
static void
expect_print_like_cjson(const cJSON *v)
{
	char *ours = json_print(v), *theirs = cJSON_PrintUnformatted(v);

	assert_non_null(ours);
	assert_non_null(theirs);
	assert_string_equal(ours, theirs);
	cJSON_free(ours);
	cJSON_free(theirs);
}

static void
test_json_print_is_cjsons(void **state)
{
	static const double numbers[] = { 0, -0.0, 1, -1, 42, 1e15 - 1,
	    -(1e15 - 1), 1e15, 9007199254740993.0, 1e300, -1e-300, 0.1, 1.5,
	    2.0 / 3.0, 123456.789, 1.0 / 3.0 * 1e20, 4294967296.0,
	    2147483648.0, 12.5e-7 };
	const char *text = "{\"s\":\"q\\\"b\\\\s\\/ \\b\\f\\n\\r\\t"
	    "\\u0001\\u001f\\u007f caf\\u00e9\",\"e\":\"\",\"a\":[],"
	    "\"o\":{},\"n\":[null,true,false,[1,[2,{\"k\":\"v\"}]]],"
	    "\"k\\n\\u0002\":1,\"nul\":\"x\\u0000y\"}";
	char err[128];
	cJSON *v, *nums, *bad;
	size_t i;

	(void)state;
	v = json_parse_limited(text, strlen(text), 1 << 20, err, sizeof(err));
	assert_non_null(v);
	expect_print_like_cjson(v);
	nums = cJSON_CreateArray();
	for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
		cJSON_AddItemToArray(nums, cJSON_CreateNumber(numbers[i]));
	cJSON_AddItemToArray(nums, cJSON_CreateNumber(NAN));
	cJSON_AddItemToArray(nums, cJSON_CreateNumber(INFINITY));
	expect_print_like_cjson(nums);
	/* longer than the first buffer: it grows */
	for (i = 0; i < 200; i++)
		cJSON_AddItemToArray(nums, cJSON_CreateString("grow"));
	expect_print_like_cjson(nums);
	cJSON_AddItemToObject(v, "nums", nums);
	expect_print_like_cjson(v);
	/* an invalid item prints as nothing, as with cJSON */
	bad = cJSON_CreateArray();
	cJSON_AddItemToArray(bad, cJSON_CreateNull());
	bad->child->type = cJSON_Invalid;
	assert_null(json_print(bad));
	assert_null(cJSON_PrintUnformatted(bad));
	cJSON_Delete(bad);
	cJSON_Delete(v);
}

/* Credentials. */

static struct egressd_config *
orchestrator_config(const char *token_file)
{
	static struct egressd_config cfg;
	char text[512], err[CONFIG_ERR_MAX];

	snprintf(text, sizeof(text), "orchestrator: { url = "
	    "\"http://127.0.0.1:1\"; token_id = \"tid\"; token_file = "
	    "\"%s\"; };", token_file);
	assert_int_equal(config_load_string(&cfg, text, "test.conf", "/tmp",
	    err, sizeof(err)), 0);
	return &cfg;
}

static void
test_token_file_must_be_private(void **state)
{
	char path[] = "/tmp/egressd-token-XXXXXX", err[512];
	struct orch_creds creds;
	struct egressd_config *cfg;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	tu_write_file(path, "s3cret\n", 0644);
	cfg = orchestrator_config(path);
	assert_int_equal(orch_load_credentials(cfg, NULL, &creds, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "0644"));
	assert_null(strstr(err, "s3cret"));
	tu_write_file(path, "s3cret\n", 0600);
	assert_int_equal(orch_load_credentials(cfg, NULL, &creds, err,
	    sizeof(err)), 0);
	assert_string_equal(creds.token, "s3cret");
	assert_string_equal(creds.token_id, "tid");
	orch_creds_free(&creds);
	config_free(cfg);
	unlink(path);
}

static void
test_token_from_environment_and_previous(void **state)
{
	struct orch_creds creds, again;
	struct egressd_config *cfg;
	char err[512];

	(void)state;
	cfg = orchestrator_config("");
	unsetenv("EGRESSD_TOKEN");
	assert_int_equal(orch_load_credentials(cfg, NULL, &creds, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "EGRESSD_TOKEN"));
	setenv("EGRESSD_TOKEN", "from-env", 1);
	assert_int_equal(orch_load_credentials(cfg, NULL, &creds, err,
	    sizeof(err)), 0);
	assert_string_equal(creds.token, "from-env");
	/* A reload after the environment was scrubbed keeps the secret. */
	unsetenv("EGRESSD_TOKEN");
	assert_int_equal(orch_load_credentials(cfg, &creds, &again, err,
	    sizeof(err)), 0);
	assert_string_equal(again.token, "from-env");
	orch_creds_free(&again);
	orch_creds_free(&creds);
	config_free(cfg);
}

/* The header lines of req, one "line\n" after another. */
static void
headers_of(const struct httpc_request *req, char *buf, size_t len)
{
	const struct curl_slist *l = req->headers != NULL ? req->headers :
	    req->shared_headers;

	buf[0] = '\0';
	for (; l != NULL; l = l->next)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s\n", l->data);
}

/*
 * Kept headers are the lines a request would build for itself, shared by
 * every request of the same kind; new credentials or a new instance ID
 * are never sent with the old lines.
 */
static void
test_kept_headers(void **state)
{
	struct orch_creds creds = { "tid", "s3cret" }, other = { "tid", "new" };
	struct egressd_config *cfg = orchestrator_config("");
	struct httpc_request *own, *a, *b, *put, *c;
	struct orch o = { NULL, cfg, &creds, "iid-1", NULL };
	char want[1024], got[1024];

	(void)state;
	own = orch_prepare(&o, ORCH_RESULT, "op-1", strdup("{}"));
	assert_non_null(own);
	assert_non_null(own->headers);
	headers_of(own, want, sizeof(want));
	assert_non_null(strstr(want, "x-mcd-token: s3cret\n"));
	assert_non_null(strstr(want, "x-mcd-agent-instance-id: iid-1\n"));
	assert_non_null(strstr(want, "Content-Type: application/json\n"));
	assert_int_equal(orch_keep_headers(&o), 0);
	a = orch_prepare(&o, ORCH_RESULT, "op-2", strdup("{}"));
	b = orch_prepare(&o, ORCH_RESULT, "op-3", strdup("{}"));
	put = orch_prepare(&o, ORCH_OPERATION, NULL, NULL);
	assert_true(a != NULL && b != NULL && put != NULL);
	assert_null(a->headers);
	assert_ptr_equal(a->shared_headers, b->shared_headers);
	headers_of(a, got, sizeof(got));
	assert_string_equal(got, want);
	/* a GET has no Content-Type, and its own kept list */
	assert_true(put->shared_headers != a->shared_headers);
	headers_of(put, got, sizeof(got));
	assert_null(strstr(got, "Content-Type"));
	/* new credentials: this request builds its own, with them */
	o.creds = &other;
	c = orch_prepare(&o, ORCH_RESULT, "op-4", strdup("{}"));
	assert_non_null(c);
	assert_non_null(c->headers);
	headers_of(c, got, sizeof(got));
	assert_non_null(strstr(got, "x-mcd-token: new\n"));
	httpc_request_free(c);
	o.creds = &creds;
	o.instance_id = "iid-2";
	c = orch_prepare(&o, ORCH_RESULT, "op-5", strdup("{}"));
	assert_non_null(c);
	headers_of(c, got, sizeof(got));
	assert_non_null(strstr(got, "x-mcd-agent-instance-id: iid-2\n"));
	httpc_request_free(c);
	httpc_request_free(a);
	httpc_request_free(b);
	httpc_request_free(put);
	httpc_request_free(own);
	orch_forget_headers(&o);
	assert_null(o.kept);
	config_free(cfg);
}

/* events_type() of one JSON text; why is "" when it is not dropped. */
static const char *
event_type_of(const char *text, char *why, size_t whylen)
{
	static char type[64];
	const char *t, *w = "";
	cJSON *o = cJSON_Parse(text);

	assert_non_null(o);
	t = events_type(o, &w);
	snprintf(type, sizeof(type), "%s", t ? t : "");
	snprintf(why, whylen, "%s", t ? "" : w);
	cJSON_Delete(o);
	return type;
}

static void
test_event_types(void **state)
{
	char why[128];

	(void)state;
	assert_string_equal(event_type_of("{\"type\":\"heartbeat\"}", why,
	    sizeof(why)), "heartbeat");
	assert_string_equal(event_type_of("{\"type\":\"push_logs\"}", why,
	    sizeof(why)), "push_logs");
	/* An operation ID makes anything but a control event an operation. */
	assert_string_equal(event_type_of("{\"type\":\"push_logs\","
	    "\"operation_id\":\"op-1\"}", why, sizeof(why)), "operation");
	assert_string_equal(event_type_of("{\"operation_id\":\"op-1\"}", why,
	    sizeof(why)), "operation");
	assert_string_equal(event_type_of("{\"type\":\"goodbye\","
	    "\"operation_id\":5}", why, sizeof(why)), "goodbye");
	assert_string_equal(event_type_of("{\"type\":7}", why, sizeof(why)),
	    "");
	assert_string_equal(why, "event without a \"type\"");
	assert_string_equal(event_type_of("{\"operation_id\":\"a/b\"}", why,
	    sizeof(why)), "");
	assert_non_null(strstr(why, "usable \"operation_id\""));
	assert_string_equal(event_type_of("{\"type\":\"operation\"}", why,
	    sizeof(why)), "");
	assert_string_equal(event_type_of("{\"operation_id\":null}", why,
	    sizeof(why)), "");
}

/* Which answers count as being in contact with the orchestrator. */
static void
test_exchange_ok(void **state)
{
	(void)state;
	assert_true(poller_exchange_ok(1, 200));
	assert_true(poller_exchange_ok(1, 204));
	assert_true(poller_exchange_ok(1, 404));	/* it judged a request */
	assert_true(poller_exchange_ok(1, 409));
	assert_false(poller_exchange_ok(0, 0));		/* no answer */
	assert_false(poller_exchange_ok(0, 200));	/* cut mid-body */
	assert_false(poller_exchange_ok(1, 0));
	assert_false(poller_exchange_ok(1, 302));	/* a login page */
	assert_false(poller_exchange_ok(1, 401));
	assert_false(poller_exchange_ok(1, 403));
	assert_false(poller_exchange_ok(1, 407));	/* the proxy's */
	assert_false(poller_exchange_ok(1, 408));
	assert_false(poller_exchange_ok(1, 429));
	assert_false(poller_exchange_ok(1, 500));
	assert_false(poller_exchange_ok(1, 503));
}

static void
test_operation_objects(void **state)
{
	cJSON *op;

	(void)state;
	op = cJSON_Parse("{\"operation_id\":\"op-1\",\"path\":"
	    "\"/health\",\"operation\":{\"a\":1}}");
	assert_string_equal(poller_op_id(op), "op-1");
	assert_false(poller_op_stub(op));
	assert_null(poller_op_problem(op));
	cJSON_Delete(op);

	op = cJSON_Parse("{\"operation_id\":\"op-2\",\"path\":\"/x\","
	    "\"operation\":{\"__mcd_size_exceeded__\":true}}");
	assert_true(poller_op_stub(op));
	cJSON_Delete(op);

	op = cJSON_Parse("{\"operation_id\":\"op 3\",\"operation\":7}");
	assert_null(poller_op_id(op));
	assert_string_equal(poller_op_problem(op),
	    "it has no \"path\" string");
	cJSON_Delete(op);

	op = cJSON_Parse("{\"path\":\"/x\",\"operation\":[1]}");
	assert_null(poller_op_id(op));
	assert_false(poller_op_stub(op));
	assert_string_equal(poller_op_problem(op),
	    "\"operation\" must be an object");
	cJSON_Delete(op);

	op = cJSON_Parse("{\"path\":\"/x\",\"operation\":null}");
	assert_null(poller_op_problem(op));
	cJSON_Delete(op);

	op = cJSON_Parse("[{\"operation_id\":\"op-4\"}]");
	assert_null(poller_op_id(op));
	assert_false(poller_op_stub(op));
	cJSON_Delete(op);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_to_the_cap),
		cmocka_unit_test(test_backoff_jitter_is_twenty_percent),
		cmocka_unit_test(test_backoff_follows_retry_within_bounds),
		cmocka_unit_test(test_resume_header),
		cmocka_unit_test(test_valid_ids),
		cmocka_unit_test(test_json_depth_limit),
		cmocka_unit_test(test_json_brackets_in_strings_do_not_count),
		cmocka_unit_test(test_json_size_and_syntax),
		cmocka_unit_test(test_json_nul_strings),
		cmocka_unit_test(test_json_print_is_cjsons),
		cmocka_unit_test(test_event_types),
		cmocka_unit_test(test_operation_objects),
		cmocka_unit_test(test_exchange_ok),
		cmocka_unit_test(test_token_file_must_be_private),
		cmocka_unit_test(test_token_from_environment_and_previous),
		cmocka_unit_test(test_kept_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
