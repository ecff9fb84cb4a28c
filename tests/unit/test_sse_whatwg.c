/*
 * test_sse_whatwg: the event-stream rules of WHATWG HTML ("Interpreting an
 * event stream") that decide what a reconnect resumes from and what the
 * events carry: the last event ID committed at dispatch and rolled back by a
 * reset, IDs holding NUL ignored, and UTF-8 decoded with U+FFFD replacement.
 * Every stream is fed whole and byte by byte, and both must agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"
#include "testutil.h"

#define REC_MAX		16
#define REC_FIELD	256
#define TEST_LIMIT	1024
#define FFFD		"\xEF\xBF\xBD"

struct rec_event {
	char type[REC_FIELD];
	char data[REC_FIELD];
	size_t data_len;
	char id[REC_FIELD];
};

struct recorder {
	struct rec_event ev[REC_MAX];
	size_t n;
	char last_id[REC_FIELD];	/* sse_parser_last_id at the end */
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

	assert_true(r->n < REC_MAX);
	d = &r->ev[r->n++];
	copy_field(d->type, e->type, strlen(e->type));
	copy_field(d->data, e->data, e->data_len);
	d->data_len = e->data_len;
	copy_field(d->id, e->id, strlen(e->id));
}

/*
 * Feed each of the nparts strings in chunks of step bytes (0: whole),
 * resetting the parser between parts as a reconnect does.
 */
static void
run(struct recorder *r, size_t limit, const char *const *parts,
    const size_t *lens, size_t nparts, size_t step)
{
	struct sse_parser *p;
	size_t i, off, n, len;

	memset(r, 0, sizeof(*r));
	p = sse_parser_new(limit, record, r);
	assert_non_null(p);
	for (i = 0; i < nparts; i++) {
		if (i > 0)
			sse_parser_reset(p);
		len = lens != NULL ? lens[i] : strlen(parts[i]);
		for (off = 0; off < len; off += n) {
			n = step == 0 || len - off < step ? len - off : step;
			assert_true(sse_parser_feed(p, parts[i] + off, n) >= 0);
		}
	}
	copy_field(r->last_id, sse_parser_last_id(p),
	    strlen(sse_parser_last_id(p)));
	sse_parser_free(p);
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
	}
	assert_string_equal(a->last_id, b->last_id);
}

/* Whole, and byte by byte, giving the same events: the whole run in r. */
static void
run_both(struct recorder *r, size_t limit, const char *const *parts,
    const size_t *lens, size_t nparts)
{
	struct recorder bytes;

	run(r, limit, parts, lens, nparts, 0);
	run(&bytes, limit, parts, lens, nparts, 1);
	assert_same(r, &bytes);
}

static void
run1(struct recorder *r, const char *s)
{
	run_both(r, TEST_LIMIT, &s, NULL, 1);
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

/*
 * An "id" line fills the ID buffer; only the blank line that ends its
 * event makes it the last event ID.  A stream cut before that blank line
 * (and the reset of the reconnect) leaves the last event ID as it was.
 */
static void
test_id_committed_at_dispatch(void **state)
{
	/* web-platform-tests eventsource/format-data-before-final-empty-line */
	const char *const cut[] = {
		"retry:1000\ndata:test1\n\nid:test\ndata:test2",
		"retry:1000\ndata:test1\n\n",
	};
	const char *const cut_after_id[] = {
		"id: 1\ndata: a\n\nid: 2\n", "data: b\n\n",
	};
	struct recorder r;

	(void)state;
	run_both(&r, TEST_LIMIT, cut, NULL, 2);
	assert_int_equal(r.n, 2);
	assert_event(&r, 0, "message", "test1", "");
	assert_event(&r, 1, "message", "test1", "");
	assert_string_equal(r.last_id, "");

	run_both(&r, TEST_LIMIT, cut_after_id, NULL, 2);
	assert_int_equal(r.n, 2);
	assert_event(&r, 0, "message", "a", "1");
	assert_event(&r, 1, "message", "b", "1");
	assert_string_equal(r.last_id, "1");

	/* Without a cut, the ID belongs to the event that carries it. */
	run1(&r, "id: 1\ndata: a\n\nid: 2\ndata: b\n\n");
	assert_event(&r, 1, "message", "b", "2");
	assert_string_equal(r.last_id, "2");
}

/* The blank line commits the ID even when no event is dispatched. */
static void
test_id_without_data_commits(void **state)
{
	const char *const parts[] = { "id: 5\n\nid: 6\n", "data: x\n\n" };
	struct recorder r;

	(void)state;
	run1(&r, "id: 5\n\n");
	assert_int_equal(r.n, 0);
	assert_string_equal(r.last_id, "5");
	run_both(&r, TEST_LIMIT, parts, NULL, 2);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "x", "5");
	assert_string_equal(r.last_id, "5");
	/* An empty "id" commits "no ID" the same way. */
	run1(&r, "id: 5\n\nid\n\n");
	assert_string_equal(r.last_id, "");
}

/* A reset rolls the ID buffer back; the next event sees the old ID. */
static void
test_reset_rolls_back_id(void **state)
{
	const char *const parts[] = {
		"id: kept\n\n", "id: lost\ndata: never\n", "id: lost2\n",
		"data: after\n\n",
	};
	struct recorder r;

	(void)state;
	run_both(&r, TEST_LIMIT, parts, NULL, 4);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "after", "kept");
	assert_string_equal(r.last_id, "kept");
}

/* web-platform-tests eventsource/format-field-id-null: such IDs are ignored. */
static void
test_id_with_nul_ignored(void **state)
{
	static const char *const ids[] = { "\0\0", "x\0", "\0x", "x\0x", " \0" };
	char buf[64];
	const char *part = buf;
	struct recorder r;
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		len = (size_t)snprintf(buf, sizeof(buf), "id: old\n\nid:");
		memcpy(buf + len, ids[i], 2);
		len += 2;
		memcpy(buf + len, "\ndata: hello\n\n", 14);
		len += 14;
		run_both(&r, TEST_LIMIT, &part, &len, 1);
		assert_int_equal(r.n, 1);
		assert_event(&r, 0, "message", "hello", "old");
		assert_string_equal(r.last_id, "old");
	}
}

/* An event over the limit is not delivered, but its ID is the stream's. */
static void
test_dropped_event_commits_id(void **state)
{
	static const char s[] =
	    "id: 1\ndata: 0123456789012345678901234567890123456789\n"
	    "id: 2\nevent: late\ndata: tail\n\ndata: next\n\n";
	const char *part = s;
	size_t len = sizeof(s) - 1;
	struct recorder r;

	(void)state;
	run_both(&r, 32, &part, &len, 1);
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "next", "2");
	assert_string_equal(r.last_id, "2");
}

struct utf8_case {
	const char *in;		/* the data field's value */
	const char *out;	/* what the event carries */
};

/* The Encoding standard's decoder: one U+FFFD per maximal bad subpart. */
static const struct utf8_case utf8_cases[] = {
	{ "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "\xC3\xA9\xE2\x82\xAC"
	    "\xF0\x9F\x98\x80" },		/* valid: untouched */
	{ "a\x80" "b", "a" FFFD "b" },		/* lone continuation */
	{ "\xFF\xFE", FFFD FFFD },		/* never a lead byte */
	{ "\xC0\xAF", FFFD FFFD },		/* overlong '/' */
	{ "\xE0\x80\x80", FFFD FFFD FFFD },	/* overlong NUL */
	{ "\xED\xA0\x80", FFFD FFFD FFFD },	/* a surrogate */
	{ "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD },	/* past U+10FFFF */
	{ "\xE2\x82x", FFFD "x" },		/* truncated by ASCII */
	{ "\xF0\x9F\x98", FFFD },		/* truncated by the line end */
	{ "\xE2\x82\xE2\x82\xAC", FFFD "\xE2\x82\xAC" },	/* by a lead */
	{ "\xC3", FFFD },
};

static void
test_utf8_replacement(void **state)
{
	struct recorder r;
	char buf[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		snprintf(buf, sizeof(buf), "data: %s\n\n", utf8_cases[i].in);
		run1(&r, buf);
		assert_int_equal(r.n, 1);
		assert_event(&r, 0, "message", utf8_cases[i].out, "");
	}
	/* The type and the ID are decoded too; the type stays a C string. */
	run1(&r, "event: a\xFF" "b\nid: \xC3\n" "data: x\n\n");
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "a" FFFD "b", "x", FFFD);
	assert_string_equal(r.last_id, FFFD);
}

/* A sequence cut by a reconnect is not glued to the next stream's bytes. */
static void
test_utf8_cut_by_reset(void **state)
{
	const char *const parts[] = { "data: \xE2\x82", "\xAC" "data: x\n\n" };
	struct recorder r;

	(void)state;
	run_both(&r, TEST_LIMIT, parts, NULL, 2);
	/* "\xAC" opens the new stream: a lone continuation, then a field
	 * named FFFD "data", which is unknown.  Nothing is dispatched. */
	assert_int_equal(r.n, 0);
}

/* A BOM begun but not finished is content: decoded like any bytes. */
static void
test_partial_bom_decoded(void **state)
{
	struct recorder r;

	(void)state;
	run1(&r, "\xEF\xBB" "data: x\n\ndata: \xEF\xBB\xBF\n\n");
	/* The first line's name is FFFD "data": unknown, no event. */
	assert_int_equal(r.n, 1);
	assert_event(&r, 0, "message", "\xEF\xBB\xBF", "");
}

static int
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k;
	unsigned c;

	while (i < n) {
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c < 0xC2 || c > 0xF4)
			return 0;
		k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
		if (n - i - 1 < k)
			return 0;
		if ((c == 0xE0 && s[i + 1] < 0xA0) ||
		    (c == 0xED && s[i + 1] > 0x9F) ||
		    (c == 0xF0 && s[i + 1] < 0x90) ||
		    (c == 0xF4 && s[i + 1] > 0x8F))
			return 0;
		for (i++; k > 0; k--, i++)
			if ((s[i] & 0xC0) != 0x80)
				return 0;
	}
	return 1;
}

struct random_run {
	size_t events;
	unsigned long digest;
};

static void
check_valid(const struct sse_event *e, void *arg)
{
	struct random_run *rr = arg;
	size_t i;

	assert_true(valid_utf8((const unsigned char *)e->data, e->data_len));
	assert_true(valid_utf8((const unsigned char *)e->type,
	    strlen(e->type)));
	assert_true(valid_utf8((const unsigned char *)e->id, strlen(e->id)));
	rr->events++;
	for (i = 0; i < e->data_len; i++)
		rr->digest = rr->digest * 31 + (unsigned char)e->data[i];
}

/* Lines of fields with random values, some of them ending events. */
static size_t
random_stream(char *s, size_t cap)
{
	static const char *const names[] = { "data: ", "event: ", "id: " };
	static const char bytes[] = "ab\x80\xBF\xC3\xE2\xED\xF0\xF4\xFF"
	    "\xA0\x9F\x82\xEF\xBB";
	size_t len = 0, i, n;
	const char *name;

	while (len + 64 < cap) {
		name = names[(size_t)random() % 3];
		memcpy(s + len, name, strlen(name));
		len += strlen(name);
		for (n = (size_t)random() % 24, i = 0; i < n; i++)
			s[len++] = bytes[(size_t)random() % (sizeof(bytes) - 1)];
		s[len++] = '\n';
		if (random() % 3 == 0)
			s[len++] = '\n';
	}
	return len;
}

/* Whatever bytes come, every event is valid UTF-8, in any chunking. */
static void
test_random_bytes_give_valid_utf8(void **state)
{
	enum { CAP = 4096, ROUNDS = 20 };
	struct random_run whole, bytes;
	struct sse_parser *p;
	char *s = malloc(CAP);
	size_t i, k, len;

	(void)state;
	assert_non_null(s);
	srandom(19);
	for (k = 0; k < ROUNDS; k++) {
		len = random_stream(s, CAP);
		memset(&whole, 0, sizeof(whole));
		memset(&bytes, 0, sizeof(bytes));
		p = sse_parser_new(TEST_LIMIT, check_valid, &whole);
		assert_non_null(p);
		assert_true(sse_parser_feed(p, s, len) >= 0);
		sse_parser_free(p);
		p = sse_parser_new(TEST_LIMIT, check_valid, &bytes);
		assert_non_null(p);
		for (i = 0; i < len; i++)
			assert_true(sse_parser_feed(p, s + i, 1) >= 0);
		sse_parser_free(p);
		assert_true(whole.events > 0);
		assert_int_equal(whole.events, bytes.events);
		assert_int_equal(whole.digest, bytes.digest);
	}
	free(s);
}

static void
test_retry_accessor(void **state)
{
	struct sse_parser *p;
	struct recorder r;

	(void)state;
	memset(&r, 0, sizeof(r));
	p = sse_parser_new(TEST_LIMIT, record, &r);
	assert_non_null(p);
	assert_int_equal(sse_parser_retry(p), -1);
	assert_string_equal(sse_parser_last_id(p), "");
	/* retry applies as its line ends, with no blank line needed. */
	assert_int_equal(sse_parser_feed(p, "retry: 3000\n", 12), 0);
	assert_int_equal(sse_parser_retry(p), 3000);
	sse_parser_reset(p);
	assert_int_equal(sse_parser_retry(p), 3000);
	sse_parser_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_committed_at_dispatch),
		cmocka_unit_test(test_id_without_data_commits),
		cmocka_unit_test(test_reset_rolls_back_id),
		cmocka_unit_test(test_id_with_nul_ignored),
		cmocka_unit_test(test_dropped_event_commits_id),
		cmocka_unit_test(test_utf8_replacement),
		cmocka_unit_test(test_utf8_cut_by_reset),
		cmocka_unit_test(test_partial_bom_decoded),
		cmocka_unit_test(test_random_bytes_give_valid_utf8),
		cmocka_unit_test(test_retry_accessor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
