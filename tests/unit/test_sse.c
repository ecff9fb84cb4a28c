/*
 * test_sse: the text/event-stream parser, fed whole, in chunks and byte by
 * byte; line endings, fields, the BOM, the size limit and reset.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"
#include "testutil.h"

#define REC_MAX		16
#define REC_FIELD	256
#define TEST_LIMIT	1024

/* A copy of each event, since the parser's pointers die with the call. */
struct rec_event {
	char type[REC_FIELD];
	char data[REC_FIELD];
	size_t data_len;
	char id[REC_FIELD];
	long retry_ms;
};

struct recorder {
	struct rec_event ev[REC_MAX];
	size_t n;
	size_t overflow;
};

static void
copy_field(char *dst, const char *src, size_t len)
{
	assert_true(len < REC_FIELD);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void
record(const struct sse_event *e, void *arg)
{
	struct recorder *r = arg;
	struct rec_event *d;

	assert_non_null(e->type);
	assert_non_null(e->data);
	assert_non_null(e->id);
	assert_int_equal(e->data[e->data_len], '\0');
	if (r->n == REC_MAX) {
		r->overflow++;
		return;
	}
	d = &r->ev[r->n++];
	copy_field(d->type, e->type, strlen(e->type));
	copy_field(d->data, e->data, e->data_len);
	d->data_len = e->data_len;
	copy_field(d->id, e->id, strlen(e->id));
	d->retry_ms = e->retry_ms;
}

/* Feed s in chunks of size step (0: all at once); return total drops. */
static int
feed_chunks(struct sse_parser *p, const char *s, size_t len, size_t step)
{
	size_t off, n;
	int rc, drops = 0;

	if (step == 0)
		step = len > 0 ? len : 1;
	for (off = 0; off < len; off += n) {
		n = len - off < step ? len - off : step;
		rc = sse_parser_feed(p, s + off, n);
		assert_true(rc >= 0);
		drops += rc;
	}
	return drops;
}

static int
parse(struct recorder *r, size_t limit, const char *s, size_t len,
    size_t step)
{
	struct sse_parser *p;
	int drops;

	memset(r, 0, sizeof(*r));
	p = sse_parser_new(limit, record, r);
	assert_non_null(p);
	drops = feed_chunks(p, s, len, step);
	sse_parser_free(p);
	return drops;
}

static int
parse_str(struct recorder *r, const char *s)
{
	return parse(r, TEST_LIMIT, s, strlen(s), 0);
}

static void
assert_event(const struct recorder *r, size_t i, const char *type,
    const char *data, const char *id)
{
	assert_true(i < r->n);
	assert_string_equal(r->ev[i].type, type);
	assert_string_equal(r->ev[i].data, data);
	assert_int_equal(r->ev[i].data_len, strlen(data));
	assert_string_equal(r->ev[i].id, id);
}

static void
assert_same(const struct recorder *a, const struct recorder *b)
{
	size_t i;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		assert_string_equal(a->ev[i].type, b->ev[i].type);
		assert_int_equal(a->ev[i].data_len, b->ev[i].data_len);
		assert_memory_equal(a->ev[i].data, b->ev[i].data,
		    a->ev[i].data_len);
		assert_string_equal(a->ev[i].id, b->ev[i].id);
		assert_int_equal(a->ev[i].retry_ms, b->ev[i].retry_ms);
	}
}

static void
test_single_event(void **state)
{
	struct recorder r;

	(void)state;
	assert_int_equal(parse_str(&r, "data: {\"type\":\"welcome\"}\n\n"), 0);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "{\"type\":\"welcome\"}", "");
	assert_int_equal(r.ev[0].retry_ms, -1);
}

static void
test_multiple_events_one_chunk(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r, "data: one\n\nevent: ping\ndata: two\n\ndata: three\n\n");
	assert_int_equal(r.n, 3);
	assert_event(&r, 0, "message", "one", "");
	assert_event(&r, 1, "ping", "two", "");
	/* The type belongs to one event only. */
	assert_event(&r, 2, "message", "three", "");
}

static const char mixed_stream[] =
    "\xEF\xBB\xBF: hello\r\n"
    "retry: 2000\r\n"
    "id: 1\r"
    "event: op\r"
    "data: a\r\n"
    "data:b\n"
    "data\n"
    "\r\n"
    "bogus: x\n"
    "id: 2\n"
    "\n"
    "data: second\r"
    "\r"
    "data: third\n"
    "id: 3\r\n"
    "\n"
    "data: never dispatched\n";

static void
test_chunking_gives_same_events(void **state)
{
	struct recorder whole, part;
	size_t len = sizeof(mixed_stream) - 1, step;

	(void)state;
	parse(&whole, TEST_LIMIT, mixed_stream, len, 0);
	assert_int_equal(whole.n, 3);
	assert_event(&whole, 0, "op", "a\nb\n", "1");
	assert_int_equal(whole.ev[0].retry_ms, 2000);
	assert_event(&whole, 1, "message", "second", "2");
	assert_event(&whole, 2, "message", "third", "3");

	for (step = 1; step <= len; step++) {
		parse(&part, TEST_LIMIT, mixed_stream, len, step);
		assert_same(&whole, &part);
	}
}

static void
test_line_endings(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r, "data: lf\n\ndata: crlf\r\n\r\ndata: cr\r\r");
	assert_int_equal(r.n, 3);
	assert_event(&r, 0, "message", "lf", "");
	assert_event(&r, 1, "message", "crlf", "");
	assert_event(&r, 2, "message", "cr", "");

	/* CR CR is two line ends: a line, then a blank line. */
	parse_str(&r, "data: x\r\rdata: y\r\n\n");
	assert_int_equal(r.n, 2);
}

static void
test_crlf_split_across_chunks(void **state)
{
	struct recorder r;
	struct sse_parser *p;

	(void)state;
	memset(&r, 0, sizeof(r));
	p = sse_parser_new(TEST_LIMIT, record, &r);
	assert_non_null(p);
	/* The LF after a chunk-final CR is part of that line end, not a
	 * blank line, so nothing is dispatched until the real blank line. */
	assert_int_equal(sse_parser_feed(p, "data: a\r", 8), 0);
	assert_int_equal(sse_parser_feed(p, "\ndata: b\r", 9), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(sse_parser_feed(p, "\n", 1), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(sse_parser_feed(p, "\r", 1), 0);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "a\nb", "");
	/* This LF completes the CRLF above: still no second event. */
	assert_int_equal(sse_parser_feed(p, "\n", 1), 0);
	assert_int_equal(r.n, 1);
	sse_parser_free(p);
}

static void
test_multiline_data(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r, "data: line one\ndata: line two\ndata:\ndata: end\n\n");
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "line one\nline two\n\nend", "");
}

static void
test_comments(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r, ": keepalive\n:\n\ndata: x\n: inside\ndata: y\n\n");
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "x\ny", "");
}

static void
test_event_id_retry_fields(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r,
	    "event: heartbeat\nid: 7\nretry: 1500\ndata: {}\n\n"
	    "retry: 12a\ndata: a\n\n"
	    "retry:\ndata: b\n\n"
	    "retry: -5\ndata: c\n\n"
	    "retry:  9\ndata: d\n\n"
	    "retry:0\ndata: e\n\n");
	assert_int_equal(r.n, 6);
	assert_event(&r, 0, "heartbeat", "{}", "7");
	assert_int_equal(r.ev[0].retry_ms, 1500);
	/* Invalid values leave the last valid one in place. */
	assert_int_equal(r.ev[1].retry_ms, 1500);
	assert_int_equal(r.ev[2].retry_ms, 1500);
	assert_int_equal(r.ev[3].retry_ms, 1500);
	assert_int_equal(r.ev[4].retry_ms, 1500);
	assert_int_equal(r.ev[5].retry_ms, 0);
}

static void
test_retry_saturates(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r, "retry: 99999999999999999999999999\ndata: x\n\n");
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ev[0].retry_ms, LONG_MAX);
}

static void
test_id_persistence(void **state)
{
	static const char s[] =
	    "id: abc\ndata: 1\n\n"
	    "data: 2\n\n"
	    "id: def\n\n"		/* no data, no event; the ID moves */
	    "data: 3\n\n"
	    "id: x\0y\ndata: 4\n\n"	/* NUL in the value: ignored */
	    "id\ndata: 5\n\n";		/* empty ID clears it */
	struct recorder r;

	(void)state;
	parse(&r, TEST_LIMIT, s, sizeof(s) - 1, 0);
	assert_int_equal(r.n, 5);
	assert_event(&r, 0, "message", "1", "abc");
	assert_event(&r, 1, "message", "2", "abc");
	assert_event(&r, 2, "message", "3", "def");
	assert_event(&r, 3, "message", "4", "def");
	assert_event(&r, 4, "message", "5", "");
}

static void
test_field_without_colon(void **state)
{
	struct recorder r;

	(void)state;
	/* "data" alone appends an empty line: an event with empty data. */
	parse_str(&r, "data\n\nevent\ndata\ndata\n\n");
	assert_int_equal(r.n, 2);
	assert_event(&r, 0, "message", "", "");
	assert_event(&r, 1, "message", "\n", "");
	/* A name that only starts like a field is another field. */
	parse_str(&r, "datax: y\n\n");
	assert_int_equal(r.n, 0);
}

static void
test_space_after_colon(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r, "data:x\n\ndata:  two spaces\n\ndata: a: b\n\n");
	assert_int_equal(r.n, 3);
	assert_event(&r, 0, "message", "x", "");
	assert_event(&r, 1, "message", " two spaces", "");
	assert_event(&r, 2, "message", "a: b", "");
}

static void
test_embedded_nul_in_data(void **state)
{
	static const char s[] = "data: a\0b\n\n";
	struct recorder r;

	(void)state;
	parse(&r, TEST_LIMIT, s, sizeof(s) - 1, 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ev[0].data_len, 3);
	assert_memory_equal(r.ev[0].data, "a\0b", 3);
}

static void
test_nul_in_event_type(void **state)
{
	static const char s[] =
	    "event: ab\0c\ndata: 1\n\n"
	    "event: \0x\ndata: 2\n\n";
	struct recorder r;

	(void)state;
	/* The type is a C string: it ends at the NUL, empty means default. */
	parse(&r, TEST_LIMIT, s, sizeof(s) - 1, 0);
	assert_int_equal(r.n, 2);
	assert_event(&r, 0, "ab", "1", "");
	assert_event(&r, 1, "message", "2", "");
}

static void
test_bom(void **state)
{
	static const char s[] = "\xEF\xBB\xBF" "data: x\n\n";
	struct recorder r, whole;
	size_t step;

	(void)state;
	parse(&whole, TEST_LIMIT, s, sizeof(s) - 1, 0);
	assert_int_equal(whole.n, 1);
	assert_event(&whole, 0, "message", "x", "");
	for (step = 1; step < sizeof(s); step++) {
		parse(&r, TEST_LIMIT, s, sizeof(s) - 1, step);
		assert_same(&whole, &r);
	}

	/* Only at the start: a second BOM makes an unknown field name. */
	parse_str(&r, "\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n");
	assert_int_equal(r.n, 0);
}

static void
test_partial_bom_is_content(void **state)
{
	struct recorder r;

	(void)state;
	/* With a 2-byte limit, "x" fits but the replayed "\xEF\xBB" + "x"
	 * does not: the held-back bytes really are part of the line. */
	assert_int_equal(parse(&r, 2, "\xEF\xBBx\n", 4, 1), 1);
	assert_int_equal(parse(&r, 2, "\xEF\xBB\xBFx\n", 5, 1), 0);
	assert_int_equal(parse(&r, 1, "\xEFx\n", 3, 0), 1);
	assert_int_equal(parse(&r, 1, "\xEF\xBB\xBFx\n", 5, 0), 0);
}

static void
test_oversized_event_dropped(void **state)
{
	static const char many_lines[] =
	    "data: 0123456789\ndata: 0123456789\ndata: 0123456789\n"
	    "event: late\ndata: z\n\n"
	    "data: next\n\n";
	static const char long_line[] =
	    "data: 0123456789012345678901234567890123456789\n"
	    "data: tail\n\ndata: ok\n\n";
	struct recorder r;
	int drops;

	(void)state;
	/* Each line fits in 32 bytes; together the data does not. */
	drops = parse(&r, 32, many_lines, sizeof(many_lines) - 1, 0);
	assert_int_equal(drops, 1);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "next", "");

	/* A single line over the limit drops its event too. */
	drops = parse(&r, 32, long_line, sizeof(long_line) - 1, 3);
	assert_int_equal(drops, 1);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "ok", "");
}

static void
test_limit_boundary(void **state)
{
	static const char three_lines[] = "data:ab\ndata:cd\ndata:ef\n\n";
	size_t n = sizeof(three_lines) - 1;
	struct recorder r;

	(void)state;
	/* "data:" + 4 bytes is a 9-byte line and 5 bytes of data. */
	assert_int_equal(parse(&r, 9, "data:abcd\n\n", 11, 0), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(parse(&r, 8, "data:abcd\n\n", 11, 0), 1);
	assert_int_equal(r.n, 0);
	/* 7-byte lines, 9 bytes of data ("ab\n" "cd\n" "ef\n"). */
	assert_int_equal(parse(&r, 9, three_lines, n, 0), 0);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "ab\ncd\nef", "");
	assert_int_equal(parse(&r, 8, three_lines, n, 0), 1);
	assert_int_equal(r.n, 0);
}

static void
test_long_comment_not_dropped(void **state)
{
	struct recorder r;
	char s[256];

	(void)state;
	memset(s, 'c', sizeof(s));
	s[0] = ':';
	memcpy(s + 200, "\ndata: x\n\n", 10);
	assert_int_equal(parse(&r, 16, s, 210, 7), 0);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "x", "");
}

static void
test_oversized_line_memory_bounded(void **state)
{
	enum { LIMIT = 256, CHUNK = 37, TIMES = 10 };
	struct recorder r;
	struct sse_parser *p;
	char chunk[CHUNK];
	size_t sent;
	int drops = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	p = sse_parser_new(LIMIT, record, &r);
	assert_non_null(p);
	drops += sse_parser_feed(p, "data: ", 6);
	memset(chunk, 'x', sizeof(chunk));
	for (sent = 0; sent < TIMES * LIMIT; sent += sizeof(chunk)) {
		drops += sse_parser_feed(p, chunk, sizeof(chunk));
		assert_true(sse_parser_buffered(p) <= 4 * (LIMIT + 1));
	}
	assert_int_equal(drops, 1);
	assert_int_equal(r.n, 0);
	assert_true(sse_parser_buffered(p) <= LIMIT);

	assert_int_equal(sse_parser_feed(p, "\n\ndata: valid\n\n", 15), 0);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "valid", "");
	sse_parser_free(p);
}

static void
test_eof_without_blank_line(void **state)
{
	struct recorder r;

	(void)state;
	parse_str(&r, "data: a\n\ndata: b\n");
	assert_int_equal(r.n, 1);
	parse_str(&r, "data: a");
	assert_int_equal(r.n, 0);
}

static void
test_reset(void **state)
{
	struct recorder r;
	struct sse_parser *p;

	(void)state;
	memset(&r, 0, sizeof(r));
	p = sse_parser_new(TEST_LIMIT, record, &r);
	assert_non_null(p);
	sse_parser_feed(p, "id: 9\nretry: 50\n\nevent: old\ndata: lost\r", 39);
	sse_parser_reset(p);
	/* After reset: a BOM is accepted again, the LF is a blank line of
	 * its own (no pending CR) that finds no data or type left over,
	 * and the ID and retry survive for the reconnect. */
	sse_parser_feed(p, "\xEF\xBB\xBF\ndata: new\n\n", 15);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "new", "9");
	assert_int_equal(r.ev[0].retry_ms, 50);

	/* A reset also ends a drop in progress. */
	sse_parser_free(p);
	memset(&r, 0, sizeof(r));
	p = sse_parser_new(8, record, &r);
	assert_non_null(p);
	assert_int_equal(sse_parser_feed(p, "data: too long\n", 15), 1);
	sse_parser_reset(p);
	assert_int_equal(sse_parser_feed(p, "data:ok\n\n", 9), 0);
	assert_int_equal(r.n, 1);
	sse_parser_free(p);
}

static void
test_new_rejects_bad_args(void **state)
{
	struct recorder r;

	(void)state;
	assert_null(sse_parser_new(0, record, &r));
	assert_null(sse_parser_new(16, NULL, &r));
	sse_parser_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_event),
		cmocka_unit_test(test_multiple_events_one_chunk),
		cmocka_unit_test(test_chunking_gives_same_events),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_crlf_split_across_chunks),
		cmocka_unit_test(test_multiline_data),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_event_id_retry_fields),
		cmocka_unit_test(test_retry_saturates),
		cmocka_unit_test(test_id_persistence),
		cmocka_unit_test(test_field_without_colon),
		cmocka_unit_test(test_space_after_colon),
		cmocka_unit_test(test_embedded_nul_in_data),
		cmocka_unit_test(test_nul_in_event_type),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_partial_bom_is_content),
		cmocka_unit_test(test_oversized_event_dropped),
		cmocka_unit_test(test_limit_boundary),
		cmocka_unit_test(test_long_comment_not_dropped),
		cmocka_unit_test(test_oversized_line_memory_bounded),
		cmocka_unit_test(test_eof_without_blank_line),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_new_rejects_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
