/*
 * sse: incremental text/event-stream parser (WHATWG EventSource format).
 *
 * Owns the parsing state of one stream: the pending line, the event being
 * built (data and type), the last event ID and the last valid retry.  It does
 * no I/O and keeps no global state; bytes come in through sse_parser_feed()
 * and complete events leave through the caller's callback.
 *
 * Memory is bounded by max_event_bytes: the pending line and the event's
 * joined data (one '\n' per data line included) may each hold at most that
 * many bytes, and the type and the two ID buffers at most one more (for the
 * NUL).
 * When a line or the data would go over, the event is dropped: its data is
 * discarded, its later "data" and "event" lines are ignored until the blank
 * line that ends it, and the drop is counted once.  Its "id" and "retry"
 * lines still count, as they would for a client without a limit.  Comment
 * lines are skipped without being buffered, so a long comment never costs an
 * event.
 *
 * The rules are those of WHATWG HTML, "Interpreting an event stream":
 * - the bytes are decoded as UTF-8 first (a BOM at the start is dropped,
 *   each invalid or truncated sequence becomes one U+FFFD, as the Encoding
 *   standard's decoder does), so events carry valid UTF-8 only;
 * - an "id" line sets the ID buffer, which is committed as the stream's
 *   last event ID when its event is dispatched (at the blank line, even an
 *   event without data).  An ID inside an event the connection cut short is
 *   never committed: sse_parser_reset() rolls the buffer back to the last
 *   committed ID, which is what a reconnect sends as Last-Event-ID;
 * - a "retry" line takes effect as its line ends.
 * The last event ID and retry value describe the stream, not a connection:
 * sse_parser_reset() keeps them.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"

#define SSE_BOM		"\xEF\xBB\xBF"
#define SSE_BOM_LEN	(sizeof(SSE_BOM) - 1)
#define SSE_BUF_MIN	64		/* first allocation of a buffer */
#define SSE_LIMIT_MAX	(SIZE_MAX / 4)	/* keeps size arithmetic exact */
#define SSE_DEFAULT_TYPE "message"
#define SSE_FFFD	"\xEF\xBF\xBD"	/* U+FFFD REPLACEMENT CHARACTER */
#define SSE_FFFD_LEN	(sizeof(SSE_FFFD) - 1)
#define SSE_UTF8_MAX	4		/* bytes of one UTF-8 sequence */

struct sse_buf {
	char *p;
	size_t len;
	size_t cap;
};

struct sse_parser {
	size_t max;		/* max_event_bytes */
	sse_event_cb cb;
	void *arg;

	struct sse_buf line;	/* current line, without its terminator */
	struct sse_buf data;	/* joined data lines, each ending in '\n' */
	struct sse_buf type;	/* "event" value, NUL-terminated */
	struct sse_buf id;	/* ID buffer: the last "id" field, NUL-terminated */
	struct sse_buf last_id;	/* last event ID: committed at dispatch */
	long retry_ms;

	/* A UTF-8 sequence under way (the Encoding standard's decoder). */
	unsigned char u8_held[SSE_UTF8_MAX];	/* its bytes from past chunks */
	size_t u8_nheld;
	size_t u8_need;		/* continuation bytes still expected */
	unsigned char u8_lower;	/* range of the next continuation byte */
	unsigned char u8_upper;

	size_t bom_matched;	/* BOM bytes seen at the stream start */
	bool bom_done;		/* past the point where a BOM may appear */
	bool after_cr;		/* last line ended in CR; a LF may follow */
	bool line_started;	/* any byte of the current line seen */
	bool line_skip;		/* the rest of the current line is ignored */
	bool dropping;		/* current event is over the limit */
	int drops;		/* events dropped during this feed call */
};

/*
 * Make room for need bytes, doubling but never past limit; the caller has
 * already checked that need fits under limit.
 */
static int
sse_buf_reserve(struct sse_buf *b, size_t need, size_t limit)
{
	size_t cap;
	char *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap > 0 ? b->cap : SSE_BUF_MIN;
	while (cap < need)
		cap *= 2;
	if (cap > limit)
		cap = limit;
	if (cap < need)
		cap = need;
	if ((p = realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Store a NUL-terminated copy of s; used for the type and the ID. */
static int
sse_buf_set(struct sse_buf *b, const char *s, size_t n, size_t limit)
{
	if (sse_buf_reserve(b, n + 1, limit) == -1)
		return -1;
	memcpy(b->p, s, n);
	b->p[n] = '\0';
	b->len = n;
	return 0;
}

static void
sse_buf_free(struct sse_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static void
sse_event_clear(struct sse_parser *p)
{
	p->data.len = 0;
	p->type.len = 0;
}

static void
sse_drop_event(struct sse_parser *p)
{
	if (!p->dropping && p->drops < INT_MAX)
		p->drops++;
	p->dropping = true;
	sse_event_clear(p);
}

static void
sse_id_clear(struct sse_buf *b)
{
	if (b->p != NULL)
		b->p[0] = '\0';
	b->len = 0;
}

/* Copy one ID buffer into the other (the ID buffer, the last event ID). */
static int
sse_id_copy(struct sse_parser *p, struct sse_buf *dst,
    const struct sse_buf *src)
{
	if (src->len == 0) {
		sse_id_clear(dst);
		return 0;
	}
	return sse_buf_set(dst, src->p, src->len, p->max + 1);
}

static void
sse_dispatch(struct sse_parser *p)
{
	struct sse_event ev;

	/* The last data line's '\n' is not part of the data; NUL it out. */
	p->data.p[p->data.len - 1] = '\0';
	ev.data = p->data.p;
	ev.data_len = p->data.len - 1;
	ev.type = p->type.len > 0 ? p->type.p : SSE_DEFAULT_TYPE;
	ev.id = p->last_id.len > 0 ? p->last_id.p : "";
	ev.retry_ms = p->retry_ms;
	p->cb(&ev, p->arg);
}

/*
 * A blank line ends the event: its ID is committed (with or without data,
 * and for a dropped event too: it was received, only not delivered), then
 * the event is dispatched, or the drop ends.
 */
static int
sse_blank_line(struct sse_parser *p)
{
	if (sse_id_copy(p, &p->last_id, &p->id) == -1)
		return -1;
	if (p->dropping)
		p->dropping = false;
	else if (p->data.len > 0)
		sse_dispatch(p);
	sse_event_clear(p);
	return 0;
}

static bool
sse_name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && memcmp(name, want, n) == 0;
}

static int
sse_field_data(struct sse_parser *p, const char *v, size_t n)
{
	/* Value plus its '\n' must fit; data.len never exceeds max. */
	if (n + 1 > p->max - p->data.len) {
		sse_drop_event(p);
		return 0;
	}
	if (sse_buf_reserve(&p->data, p->data.len + n + 1, p->max) == -1)
		return -1;
	memcpy(p->data.p + p->data.len, v, n);
	p->data.len += n;
	p->data.p[p->data.len++] = '\n';
	return 0;
}

/*
 * The type reaches the callback as a C string, which ends at its first NUL;
 * cut it there so that an empty result falls back to "message" as well.
 */
static int
sse_field_event(struct sse_parser *p, const char *v, size_t n)
{
	const char *nul;

	if ((nul = memchr(v, '\0', n)) != NULL)
		n = (size_t)(nul - v);
	return sse_buf_set(&p->type, v, n, p->max + 1);
}

static int
sse_field_id(struct sse_parser *p, const char *v, size_t n)
{
	/* An ID with a NUL could not travel back in a Last-Event-ID header. */
	if (memchr(v, '\0', n) != NULL)
		return 0;
	return sse_buf_set(&p->id, v, n, p->max + 1);
}

/* Only ASCII digits count; a value too large saturates at LONG_MAX. */
static void
sse_field_retry(struct sse_parser *p, const char *v, size_t n)
{
	long ms = 0;
	size_t i;
	int d;

	if (n == 0)
		return;
	for (i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return;
	for (i = 0; i < n; i++) {
		d = v[i] - '0';
		if (ms > (LONG_MAX - d) / 10) {
			ms = LONG_MAX;
			break;
		}
		ms = ms * 10 + d;
	}
	p->retry_ms = ms;
}

/* Split "name:value" (one space after the colon is not part of value). */
static int
sse_field(struct sse_parser *p, const char *line, size_t n)
{
	const char *colon, *v;
	size_t name_len, vlen;

	if ((colon = memchr(line, ':', n)) != NULL) {
		name_len = (size_t)(colon - line);
		v = colon + 1;
		vlen = n - name_len - 1;
		if (vlen > 0 && *v == ' ') {
			v++;
			vlen--;
		}
	} else {
		name_len = n;
		v = line + n;
		vlen = 0;
	}

	/* What is left of a dropped event is its ID and retry only. */
	if (sse_name_is(line, name_len, "data"))
		return p->dropping ? 0 : sse_field_data(p, v, vlen);
	if (sse_name_is(line, name_len, "event"))
		return p->dropping ? 0 : sse_field_event(p, v, vlen);
	if (sse_name_is(line, name_len, "id"))
		return sse_field_id(p, v, vlen);
	if (sse_name_is(line, name_len, "retry"))
		sse_field_retry(p, v, vlen);
	/* Unknown fields are ignored, as the format requires. */
	return 0;
}

/* Append a run of bytes holding no line terminator to the current line. */
static int
sse_line_add(struct sse_parser *p, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (!p->line_started) {
		p->line_started = true;
		if (s[0] == ':')
			p->line_skip = true;
	}
	if (p->line_skip)
		return 0;
	if (n > p->max - p->line.len) {
		/* Too long for any field: its event goes, the line is skipped. */
		sse_drop_event(p);
		p->line_skip = true;
		p->line.len = 0;
		return 0;
	}
	if (sse_buf_reserve(&p->line, p->line.len + n, p->max) == -1)
		return -1;
	memcpy(p->line.p + p->line.len, s, n);
	p->line.len += n;
	return 0;
}

static int
sse_line_end(struct sse_parser *p)
{
	int rc = 0;

	if (!p->line_started)
		rc = sse_blank_line(p);
	else if (!p->line_skip)
		rc = sse_field(p, p->line.p, p->line.len);
	p->line.len = 0;
	p->line_started = false;
	p->line_skip = false;
	return rc;
}

/* Split bytes into lines; CR, LF and CRLF each end one line. */
static int
sse_scan(struct sse_parser *p, const char *s, size_t n)
{
	size_t i = 0, j;

	while (i < n) {
		/* The LF of a CRLF may arrive in the next chunk. */
		if (p->after_cr) {
			p->after_cr = false;
			if (s[i] == '\n') {
				i++;
				continue;
			}
		}
		for (j = i; j < n && s[j] != '\n' && s[j] != '\r'; j++)
			;
		if (sse_line_add(p, s + i, j - i) == -1)
			return -1;
		if (j == n)
			break;
		p->after_cr = s[j] == '\r';
		if (sse_line_end(p) == -1)
			return -1;
		i = j + 1;
	}
	return 0;
}

/* The first byte of a UTF-8 sequence: how many follow it, and in what range. */
static bool
sse_utf8_lead(struct sse_parser *p, unsigned char c)
{
	p->u8_lower = 0x80;
	p->u8_upper = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		p->u8_need = 1;
	else if (c >= 0xE0 && c <= 0xEF) {
		p->u8_need = 2;
		if (c == 0xE0)
			p->u8_lower = 0xA0;	/* no overlong forms */
		else if (c == 0xED)
			p->u8_upper = 0x9F;	/* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		p->u8_need = 3;
		if (c == 0xF0)
			p->u8_lower = 0x90;	/* no overlong forms */
		else if (c == 0xF4)
			p->u8_upper = 0x8F;	/* nothing past U+10FFFF */
	} else
		return false;
	return true;
}

/*
 * Decode s as UTF-8 into the line scanner: valid runs pass through as they
 * are, each invalid or truncated sequence becomes one U+FFFD (the Encoding
 * standard's decoder, byte for byte).  A sequence split across chunks is
 * held (at most 3 bytes) until its end arrives.  ASCII bytes, the line
 * terminators and ':' among them, are never part of a sequence, so the
 * scanner sees them exactly where they were.
 */
static int
sse_decode(struct sse_parser *p, const char *s, size_t n)
{
	size_t i = 0, run = 0, seq = 0;	/* run: bytes not yet scanned */
	bool held = p->u8_need > 0;	/* the sequence began in a past chunk */
	unsigned char c;

	while (i < n) {
		c = (unsigned char)s[i];
		if (p->u8_need == 0) {
			if (c < 0x80) {
				i++;
				continue;
			}
			if (!sse_utf8_lead(p, c)) {
				if (sse_scan(p, s + run, i - run) == -1 ||
				    sse_scan(p, SSE_FFFD, SSE_FFFD_LEN) == -1)
					return -1;
				run = ++i;
				continue;
			}
			seq = i++;
			held = false;
			continue;
		}
		if (c < p->u8_lower || c > p->u8_upper) {
			/* The sequence so far is one error; c starts anew. */
			if ((!held && sse_scan(p, s + run, seq - run) == -1) ||
			    sse_scan(p, SSE_FFFD, SSE_FFFD_LEN) == -1)
				return -1;
			p->u8_need = p->u8_nheld = 0;
			held = false;
			run = i;
			continue;
		}
		p->u8_lower = 0x80;
		p->u8_upper = 0xBF;
		if (held)
			p->u8_held[p->u8_nheld++] = c;
		i++;
		if (--p->u8_need > 0)
			continue;
		if (held) {
			if (sse_scan(p, (const char *)p->u8_held,
			    p->u8_nheld) == -1)
				return -1;
			p->u8_nheld = 0;
			held = false;
			run = i;
		}
	}
	if (p->u8_need > 0 && !held) {
		/* A sequence the next chunk ends: keep its bytes. */
		memcpy(p->u8_held, s + seq, n - seq);
		p->u8_nheld = n - seq;
		n = seq;
	}
	if (p->u8_need > 0 && held)
		return 0;	/* this chunk was all continuation bytes */
	return sse_scan(p, s + run, n - run);
}

/*
 * Skip a BOM at the stream start, which may arrive split across chunks.
 * On a mismatch the bytes held back were content after all; replay them.
 */
static int
sse_skip_bom(struct sse_parser *p, const char *s, size_t n, size_t *used)
{
	*used = 0;
	while (*used < n && !p->bom_done) {
		if (s[*used] == SSE_BOM[p->bom_matched]) {
			(*used)++;
			if (++p->bom_matched == SSE_BOM_LEN)
				p->bom_done = true;
			continue;
		}
		p->bom_done = true;
		return sse_decode(p, SSE_BOM, p->bom_matched);
	}
	return 0;
}

struct sse_parser *
sse_parser_new(size_t max_event_bytes, sse_event_cb cb, void *arg)
{
	struct sse_parser *p;

	if (max_event_bytes == 0 || max_event_bytes > SSE_LIMIT_MAX ||
	    cb == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->max = max_event_bytes;
	p->cb = cb;
	p->arg = arg;
	p->retry_ms = -1;
	return p;
}

/*
 * After a -1 the position in the stream is lost (part of the chunk was not
 * parsed); the caller should reset the parser with its connection.
 */
int
sse_parser_feed(struct sse_parser *p, const char *buf, size_t len)
{
	size_t used = 0;

	p->drops = 0;
	if (len == 0)
		return 0;
	if (!p->bom_done && sse_skip_bom(p, buf, len, &used) == -1)
		return -1;
	if (sse_decode(p, buf + used, len - used) == -1)
		return -1;
	return p->drops;
}

/*
 * A new connection: what the last one left unfinished is gone, its ID
 * included (the event that carried it was never dispatched).  Only an
 * allocation failure can keep the ID buffer from being rolled back; then
 * the ID is forgotten instead, so it can never leak into the stream.
 */
void
sse_parser_reset(struct sse_parser *p)
{
	if (sse_id_copy(p, &p->id, &p->last_id) == -1) {
		sse_id_clear(&p->last_id);
		sse_id_clear(&p->id);
	}
	sse_event_clear(p);
	p->u8_need = p->u8_nheld = 0;
	p->line.len = 0;
	p->bom_matched = 0;
	p->bom_done = false;
	p->after_cr = false;
	p->line_started = false;
	p->line_skip = false;
	p->dropping = false;
}

const char *
sse_parser_last_id(const struct sse_parser *p)
{
	return p->last_id.len > 0 ? p->last_id.p : "";
}

long
sse_parser_retry(const struct sse_parser *p)
{
	return p->retry_ms;
}

size_t
sse_parser_buffered(const struct sse_parser *p)
{
	return p->line.cap + p->data.cap + p->type.cap + p->id.cap +
	    p->last_id.cap;
}

void
sse_parser_free(struct sse_parser *p)
{
	if (p == NULL)
		return;
	sse_buf_free(&p->line);
	sse_buf_free(&p->data);
	sse_buf_free(&p->type);
	sse_buf_free(&p->id);
	sse_buf_free(&p->last_id);
	free(p);
}
