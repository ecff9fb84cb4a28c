/* Unit tests for core/escape.c: what text from outside looks like when
 * printed. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/escape.h"

static void
expect(const char *in, int flags, const char *want)
{
	char out[256], *dup;

	assert_string_equal(escape_text(out, sizeof(out), in, flags), want);
	assert_int_equal(escape_needed(in, flags), strcmp(in, want) != 0);
	dup = escape_dup(in, flags);
	assert_non_null(dup);
	assert_string_equal(dup, want);
	free(dup);
}

static void
test_controls(void **state)
{
	(void)state;
	expect("plain text", 0, "plain text");
	expect("a\nb\r\tc", 0, "a\\nb\\r\\tc");
	expect("a\nb", ESCAPE_KEEP_NEWLINE, "a\nb");
	expect("\x1b[2J\x07\x7f", 0, "\\x1b[2J\\x07\\x7f");
	expect("back\\slash", 0, "back\\slash");
}

static void
test_utf8(void **state)
{
	(void)state;
	/* Valid UTF-8 passes; C1 controls (U+0080..U+009F) do not. */
	expect("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0,
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	expect("\xc2\x9b" "31m", 0, "\\u009b31m");
	expect("\xc2\xa0", 0, "\xc2\xa0");
	/* Bytes that are not UTF-8: lone C1 and continuation bytes, an
	 * overlong form, a surrogate, a cut sequence. */
	expect("\x9b" "1", 0, "\\x9b1");
	expect("\xc0\xaf", 0, "\\xc0\\xaf");
	expect("\xed\xa0\x80", 0, "\\xed\\xa0\\x80");
	expect("\xe2\x82", 0, "\\xe2\\x82");
}

static void
test_truncation(void **state)
{
	char out[8];

	(void)state;
	/* Never half an escape nor half a character. */
	assert_string_equal(escape_text(out, sizeof(out), "ab\x1b\x1b", 0),
	    "ab\\x1b");
	assert_string_equal(escape_text(out, sizeof(out), "abcde\xe2\x82\xac",
	    0), "abcde");
	assert_string_equal(escape_text(out, 1, "abc", 0), "");
}

static void
test_json_tree(void **state)
{
	cJSON *o = cJSON_Parse("{\"a\": \"x\\u001b[0m\", \"b\": [\"ok\", "
	    "{\"c\": \"l1\\nl2\"}], \"n\": 3}");
	char *text;

	(void)state;
	assert_non_null(o);
	assert_int_equal(escape_json_strings(o, 0), 0);
	text = cJSON_PrintUnformatted(o);
	assert_string_equal(text, "{\"a\":\"x\\\\x1b[0m\",\"b\":[\"ok\","
	    "{\"c\":\"l1\\\\nl2\"}],\"n\":3}");
	cJSON_free(text);
	cJSON_Delete(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_json_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
