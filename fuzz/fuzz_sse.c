/*
 * fuzz_sse: libFuzzer target for the text/event-stream parser.
 *
 * The first bytes of the input pick the size limit and a chunk size; the
 * rest is the stream.  It is parsed twice, whole and in chunks, and both
 * runs must give the same events, drop counts and last event ID.  Every
 * event is checked against the limit and must be valid UTF-8, and the
 * parser's buffers must stay bounded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"

#define FUZZ_PREFIX	3	/* limit (2 bytes), chunk size (1 byte) */
#define FUZZ_LIMIT_MOD	4096
#define FUZZ_FNV_BASIS	1469598103934665603ULL
#define FUZZ_FNV_PRIME	1099511628211ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_run {
	size_t limit;
	uint64_t hash;		/* digest of every event, in order */
	size_t events;
	long drops;
};

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

static void
fuzz_hash(uint64_t *h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n-- > 0) {
		*h ^= *b++;
		*h *= FUZZ_FNV_PRIME;
	}
}

/* Well-formed UTF-8 as the Encoding standard's decoder produces it. */
static int
fuzz_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] < 0xC2 || s[i] > 0xF4)
			return 0;
		k = s[i] >= 0xF0 ? 3 : s[i] >= 0xE0 ? 2 : 1;
		if (n - i - 1 < k || (s[i] == 0xE0 && s[i + 1] < 0xA0) ||
		    (s[i] == 0xED && s[i + 1] > 0x9F) ||
		    (s[i] == 0xF0 && s[i + 1] < 0x90) ||
		    (s[i] == 0xF4 && s[i + 1] > 0x8F))
			return 0;
		for (i++; k > 0; k--, i++)
			if ((s[i] & 0xC0) != 0x80)
				return 0;
	}
	return 1;
}

static void
fuzz_event(const struct sse_event *e, void *arg)
{
	struct fuzz_run *run = arg;
	size_t tlen = strlen(e->type), ilen = strlen(e->id);

	fuzz_check(e->data[e->data_len] == '\0');
	fuzz_check(e->data_len < run->limit);
	/* The default "message" may be longer than a tiny limit. */
	fuzz_check(tlen > 0 && (tlen <= run->limit ||
	    strcmp(e->type, "message") == 0));
	fuzz_check(ilen <= run->limit);
	fuzz_check(e->retry_ms >= -1);
	fuzz_check(fuzz_utf8((const unsigned char *)e->data, e->data_len));
	fuzz_check(fuzz_utf8((const unsigned char *)e->type, tlen));
	fuzz_check(fuzz_utf8((const unsigned char *)e->id, ilen));

	/* Lengths go in too, so field boundaries cannot blur. */
	fuzz_hash(&run->hash, &tlen, sizeof(tlen));
	fuzz_hash(&run->hash, e->type, tlen);
	fuzz_hash(&run->hash, &e->data_len, sizeof(e->data_len));
	fuzz_hash(&run->hash, e->data, e->data_len);
	fuzz_hash(&run->hash, &ilen, sizeof(ilen));
	fuzz_hash(&run->hash, e->id, ilen);
	fuzz_hash(&run->hash, &e->retry_ms, sizeof(e->retry_ms));
	run->events++;
}

static void
fuzz_parse(struct fuzz_run *run, const char *s, size_t n, size_t step)
{
	struct sse_parser *p;
	size_t off, len;
	int rc;

	run->hash = FUZZ_FNV_BASIS;
	run->events = 0;
	run->drops = 0;
	if ((p = sse_parser_new(run->limit, fuzz_event, run)) == NULL)
		abort();
	for (off = 0; off < n; off += len) {
		len = n - off < step ? n - off : step;
		rc = sse_parser_feed(p, s + off, len);
		fuzz_check(rc >= 0);
		run->drops += rc;
		fuzz_check(sse_parser_buffered(p) <= 5 * (run->limit + 1));
	}
	/* What a reconnect would send. */
	fuzz_hash(&run->hash, sse_parser_last_id(p),
	    strlen(sse_parser_last_id(p)));
	sse_parser_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run whole, chunked;
	const char *s;
	size_t n, step;

	if (size < FUZZ_PREFIX)
		return 0;
	whole.limit = 1 + (size_t)((data[0] << 8) | data[1]) % FUZZ_LIMIT_MOD;
	chunked.limit = whole.limit;
	step = 1 + data[2] % 16;
	s = (const char *)data + FUZZ_PREFIX;
	n = size - FUZZ_PREFIX;

	fuzz_parse(&whole, s, n, n > 0 ? n : 1);
	fuzz_parse(&chunked, s, n, step);
	fuzz_check(whole.events == chunked.events);
	fuzz_check(whole.drops == chunked.drops);
	fuzz_check(whole.hash == chunked.hash);
	return 0;
}
