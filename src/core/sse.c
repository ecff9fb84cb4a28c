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
 * many bytes, and the type and ID buffers at most one more (for the NUL).
 * When a line or the data would go over, the event is dropped: its data is
 * discarded, the rest of its lines are skipped until the blank line that ends
 * it, and the drop is counted once.  An "id" or "retry" line already read
 * keeps its effect: the format applies each such field as its line ends.
 * Comment lines are skipped without being buffered, so a long comment never
 * costs an event.
 *
 * The last event ID and retry value describe the stream, not a connection:
 * sse_parser_reset() keeps them so a reconnect can send Last-Event-ID.
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
	struct sse_buf id;	/* last event ID, NUL-terminated */
	long retry_ms;

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
sse_dispatch(struct sse_parser *p)
{
	struct sse_event ev;

	/* The last data line's '\n' is not part of the data; NUL it out. */
	p->data.p[p->data.len - 1] = '\0';
	ev.data = p->data.p;
	ev.data_len = p->data.len - 1;
	ev.type = p->type.len > 0 ? p->type.p : SSE_DEFAULT_TYPE;
	ev.id = p->id.p != NULL ? p->id.p : "";
	ev.retry_ms = p->retry_ms;
	p->cb(&ev, p->arg);
}

/* A blank line ends the event: dispatch it, or end a drop. */
static void
sse_blank_line(struct sse_parser *p)
{
	if (p->dropping)
		p->dropping = false;
	else if (p->data.len > 0)
		sse_dispatch(p);
	sse_event_clear(p);
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

	if (sse_name_is(line, name_len, "data"))
		return sse_field_data(p, v, vlen);
	if (sse_name_is(line, name_len, "event"))
		return sse_field_event(p, v, vlen);
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
		if (p->dropping || s[0] == ':')
			p->line_skip = true;
	}
	if (p->line_skip)
		return 0;
	if (n > p->max - p->line.len) {
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
		sse_blank_line(p);
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
		return sse_scan(p, SSE_BOM, p->bom_matched);
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
	if (sse_scan(p, buf + used, len - used) == -1)
		return -1;
	return p->drops;
}

void
sse_parser_reset(struct sse_parser *p)
{
	sse_event_clear(p);
	p->line.len = 0;
	p->bom_matched = 0;
	p->bom_done = false;
	p->after_cr = false;
	p->line_started = false;
	p->line_skip = false;
	p->dropping = false;
}

size_t
sse_parser_buffered(const struct sse_parser *p)
{
	return p->line.cap + p->data.cap + p->type.cap + p->id.cap;
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
	free(p);
}
