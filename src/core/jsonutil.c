/* jsonutil: bounded JSON parsing, printing, text and base64 (see include/core/jsonutil.h). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/jsonutil.h"

/*
 * Depth is checked on the text before parsing: cJSON's own limit is far
 * higher, and a bracket scan that skips strings costs one pass.
 */
static int
json_depth_ok(const char *text, size_t len)
{
	int depth = 0, in_string = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = text[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
			continue;
		}
		if (c == '"')
			in_string = 1;
		else if ((c == '[' || c == '{') && ++depth > JSON_MAX_DEPTH)
			return 0;
		else if (c == ']' || c == '}')
			depth--;
	}
	return 1;
}

/*
 * A JSON string with a \u0000 escape.  cJSON decodes it into a NUL byte
 * and keeps no length, so every reader would see the string cut short at
 * the NUL: such strings are found in the text and made unreadable as
 * strings (json_unnul) before anyone reads the tree.
 */
struct json_nul_tok {
	size_t index;		/* the string's place among all strings */
	size_t start, end;	/* its opening and closing quote */
};

struct json_nul_toks {
	struct json_nul_tok *v;
	size_t n, cap;
};

/* Whether the escape at text[i] (a backslash) is \u0000. */
static int
json_nul_escape(const char *text, size_t len, size_t i)
{
	return len - i >= 6 && memcmp(text + i, "\\u0000", 6) == 0;
}

/*
 * The strings of text holding \u0000, in order, with their index among
 * all strings (keys included): the order of a pre-order walk of the tree
 * cJSON made of the same text.  0, or -1 out of memory.
 */
static int
json_nul_scan(const char *text, size_t len, struct json_nul_toks *out)
{
	struct json_nul_tok *v;
	size_t i, index = 0, start = 0;
	int in_string = 0, nul = 0;

	for (i = 0; i < len; i++) {
		if (!in_string) {
			if (text[i] == '"') {
				in_string = 1;
				nul = 0;
				start = i;
			}
			continue;
		}
		if (text[i] == '\\') {
			nul |= json_nul_escape(text, len, i);
			i++;
			continue;
		}
		if (text[i] != '"')
			continue;
		in_string = 0;
		if (nul) {
			if (out->n == out->cap) {
				out->cap = out->cap ? out->cap * 2 : 8;
				if ((v = realloc(out->v, out->cap *
				    sizeof(*v))) == NULL)
					return -1;
				out->v = v;
			}
			out->v[out->n].index = index;
			out->v[out->n].start = start;
			out->v[out->n].end = i;
			out->n++;
		}
		index++;
	}
	return 0;
}

/*
 * The string token text[start..end] (quotes included) as JSON text to
 * print where it stood: the token itself, with any raw control character
 * (which cJSON lets through) escaped.
 */
static char *
json_token_text(const char *text, size_t start, size_t end, int quotes)
{
	size_t i, n = 0;
	char *out, *o;

	if (!quotes) {
		start++;
		end--;
	}
	for (i = start; i <= end; i++)
		n += (unsigned char)text[i] < 0x20 ? 6 : 1;
	if ((out = cJSON_malloc(n + 1)) == NULL)
		return NULL;
	for (i = start, o = out; i <= end; i++) {
		if ((unsigned char)text[i] < 0x20)
			o += sprintf(o, "\\u%04x", (unsigned char)text[i]);
		else
			*o++ = text[i];
	}
	*o = '\0';
	return out;
}

/* Walk state: the strings to change and where the walk is. */
struct json_unnul_walk {
	const char *text;
	const struct json_nul_toks *toks;
	size_t next;		/* the first of toks not reached yet */
	size_t index;		/* strings passed so far */
};

/* Whether the string the walk has reached is one to change; moves on. */
static const struct json_nul_tok *
json_unnul_hit(struct json_unnul_walk *w)
{
	const struct json_nul_tok *t = NULL;

	if (w->next < w->toks->n && w->toks->v[w->next].index == w->index)
		t = &w->toks->v[w->next++];
	w->index++;
	return t;
}

/*
 * A member name with a NUL gets its JSON spelling (the six characters
 * \u0000 for the NUL), so that no lookup by the name cut at the NUL finds
 * it.  A string value with a NUL becomes raw JSON (cJSON_Raw): printed,
 * it is the original token again, but no cJSON_IsString() check accepts
 * it, so every reader refuses it as "not a string".
 */
static int
json_unnul(cJSON *item, struct json_unnul_walk *w)
{
	const struct json_nul_tok *t;
	cJSON *c;
	char *s;

	if (item->string != NULL && (t = json_unnul_hit(w)) != NULL) {
		if ((s = json_token_text(w->text, t->start, t->end, 0)) ==
		    NULL)
			return -1;
		cJSON_free(item->string);
		item->string = s;
	}
	if (cJSON_IsString(item) && (t = json_unnul_hit(w)) != NULL) {
		if ((s = json_token_text(w->text, t->start, t->end, 1)) ==
		    NULL)
			return -1;
		cJSON_free(item->valuestring);
		item->valuestring = s;
		item->type = cJSON_Raw;
	}
	if (cJSON_IsArray(item) || cJSON_IsObject(item))
		for (c = item->child; c != NULL; c = c->next)
			if (json_unnul(c, w) == -1)
				return -1;
	return 0;
}

int
json_nul_fix(cJSON *v, const char *text, size_t len)
{
	struct json_nul_toks toks = { NULL, 0, 0 };
	struct json_unnul_walk w = { text, &toks, 0, 0 };
	int rc;

	if (memmem(text, len, "\\u0000", 6) == NULL)
		return 0;
	rc = json_nul_scan(text, len, &toks);
	if (rc == 0 && toks.n > 0)
		rc = json_unnul(v, &w);
	free(toks.v);
	return rc;
}

cJSON *
json_parse_limited(const char *text, size_t len, size_t max_bytes, char *err,
    size_t errlen)
{
	cJSON *v;

	if (len > max_bytes) {
		snprintf(err, errlen, "larger than %zu bytes", max_bytes);
		return NULL;
	}
	if (!json_depth_ok(text, len)) {
		snprintf(err, errlen, "nested deeper than %d levels",
		    JSON_MAX_DEPTH);
		return NULL;
	}
	if ((v = cJSON_ParseWithLength(text, len)) == NULL)
		snprintf(err, errlen, "not valid JSON");
	else if (json_nul_fix(v, text, len) == -1) {
		cJSON_Delete(v);
		v = NULL;
		snprintf(err, errlen, "out of memory");
	}
	return v;
}

const char *
json_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
json_has_nul(const cJSON *v)
{
	return cJSON_IsRaw(v) && v->valuestring != NULL &&
	    v->valuestring[0] == '"';
}

size_t
json_utf8_len(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	unsigned int c = s[0], cp;
	size_t n, i;

	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	cp = c & (0x7f >> n);	/* the lead byte's payload bits */
	if (n > len)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

int
json_utf8_valid(const char *s, size_t len)
{
	size_t i, n;

	for (i = 0; i < len; i += n)
		if ((n = json_utf8_len(s + i, len - i)) == 0)
			return 0;
	return 1;
}

cJSON *
json_text(const char *s, size_t len)
{
	static const char repl[] = "\xef\xbf\xbd";	/* U+FFFD */
	char *buf, *o;
	size_t i, n;
	cJSON *v;

	if (len > (SIZE_MAX - 1) / 3 || (buf = malloc(len * 3 + 1)) == NULL)
		return NULL;
	for (i = 0, o = buf; i < len; i += n) {
		if ((n = json_utf8_len(s + i, len - i)) == 0) {
			memcpy(o, repl, 3);
			o += 3;
			n = 1;
			continue;
		}
		memcpy(o, s + i, n);
		o += n;
	}
	*o = '\0';
	v = cJSON_CreateString(buf);
	free(buf);
	return v;
}

cJSON *
json_base64(const void *data, size_t len)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	unsigned long w;
	size_t i, rest;
	char *buf, *o;
	cJSON *v;

	if (len / 3 >= (SIZE_MAX - 5) / 4 ||
	    (buf = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	for (i = 0, o = buf; i < len; i += 3) {
		rest = len - i;
		w = (unsigned long)p[i] << 16;
		if (rest > 1)
			w |= (unsigned long)p[i + 1] << 8;
		if (rest > 2)
			w |= p[i + 2];
		*o++ = alphabet[(w >> 18) & 0x3f];
		*o++ = alphabet[(w >> 12) & 0x3f];
		*o++ = rest > 1 ? alphabet[(w >> 6) & 0x3f] : '=';
		*o++ = rest > 2 ? alphabet[w & 0x3f] : '=';
	}
	*o = '\0';
	v = cJSON_CreateString(buf);
	free(buf);
	return v;
}

/*
 * Compact printing, byte for byte what cJSON_PrintUnformatted() prints,
 * without its cost per number: cJSON prints every number with "%1.15g"
 * and reads it back with sscanf() to see whether 17 digits are needed,
 * which made printing a health result a tenth of a worker's instructions
 * per operation.  An integral number below 1e15 prints as the same digits
 * without either; any other number takes cJSON's path.
 */
struct json_out {
	char *buf;
	size_t len, cap;
	int failed;
};

#define JSON_PRINT_FIRST	256	/* first buffer; doubled as needed */
#define JSON_INT_EXACT		1e15	/* below: "%1.15g" prints every digit */

static int
json_out_room(struct json_out *o, size_t more)
{
	size_t cap = o->cap;
	char *grown;

	if (o->failed)
		return -1;
	if (o->len + more < cap)
		return 0;
	while (o->len + more >= cap) {
		if (cap > SIZE_MAX / 2) {
			o->failed = 1;
			return -1;
		}
		cap *= 2;
	}
	/* cJSON's allocator, so that cJSON_free() frees the text. */
	if ((grown = cJSON_malloc(cap)) == NULL) {
		o->failed = 1;
		return -1;
	}
	memcpy(grown, o->buf, o->len);
	cJSON_free(o->buf);
	o->buf = grown;
	o->cap = cap;
	return 0;
}

static void
json_out_put(struct json_out *o, const char *s, size_t n)
{
	if (json_out_room(o, n) == 0) {
		memcpy(o->buf + o->len, s, n);
		o->len += n;
	}
}

/* cJSON's escaping: the two that must be, five short forms, \u00XX. */
static void
json_out_string(struct json_out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t run;
	char esc[6];

	json_out_put(o, "\"", 1);
	while (*p != '\0') {
		for (run = 0; p[run] >= 0x20 && p[run] != '"' &&
		    p[run] != '\\'; run++)
			;
		json_out_put(o, (const char *)p, run);
		if (p[run] == '\0')
			break;
		p += run;
		esc[0] = '\\';
		switch (*p) {
		case '"': case '\\': esc[1] = (char)*p; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xf];
			json_out_put(o, esc, 6);
			p++;
			continue;
		}
		json_out_put(o, esc, 2);
		p++;
	}
	json_out_put(o, "\"", 1);
}

/* Whether b, read back, is a as cJSON's compare_double() judges it. */
static int
json_same_double(double a, double b)
{
	double max = fabs(a) > fabs(b) ? fabs(a) : fabs(b);

	return fabs(a - b) <= max * DBL_EPSILON;
}

static void
json_out_number(struct json_out *o, double d)
{
	char buf[32], *end;
	long long i;
	int n;

	if (isnan(d) || isinf(d)) {
		json_out_put(o, "null", 4);
		return;
	}
	if (fabs(d) < JSON_INT_EXACT && (double)(i = (long long)d) == d &&
	    !(d == 0 && signbit(d))) {
		char *q = buf + sizeof(buf);
		unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i :
		    (unsigned long long)i;

		do
			*--q = (char)('0' + u % 10);
		while ((u /= 10) != 0);
		if (i < 0)
			*--q = '-';
		json_out_put(o, q, (size_t)(buf + sizeof(buf) - q));
		return;
	}
	n = snprintf(buf, sizeof(buf), "%1.15g", d);
	if (!json_same_double(strtod(buf, &end), d) || *end != '\0')
		n = snprintf(buf, sizeof(buf), "%1.17g", d);
	json_out_put(o, buf, (size_t)n);
}

static void json_out_value(struct json_out *o, const cJSON *v);

/* The members of an object or the items of an array, comma separated. */
static void
json_out_children(struct json_out *o, const cJSON *v, int members)
{
	const cJSON *c;

	json_out_put(o, members ? "{" : "[", 1);
	for (c = v->child; c != NULL && !o->failed; c = c->next) {
		if (c != v->child)
			json_out_put(o, ",", 1);
		if (members) {
			json_out_string(o, c->string);
			json_out_put(o, ":", 1);
		}
		json_out_value(o, c);
	}
	json_out_put(o, members ? "}" : "]", 1);
}

static void
json_out_value(struct json_out *o, const cJSON *v)
{
	switch (v->type & 0xff) {
	case cJSON_NULL: json_out_put(o, "null", 4); break;
	case cJSON_False: json_out_put(o, "false", 5); break;
	case cJSON_True: json_out_put(o, "true", 4); break;
	case cJSON_Number: json_out_number(o, v->valuedouble); break;
	case cJSON_String: json_out_string(o, v->valuestring); break;
	case cJSON_Array: json_out_children(o, v, 0); break;
	case cJSON_Object: json_out_children(o, v, 1); break;
	case cJSON_Raw:
		if (v->valuestring == NULL)
			o->failed = 1;
		else
			json_out_put(o, v->valuestring,
			    strlen(v->valuestring));
		break;
	default:
		o->failed = 1;	/* cJSON_Invalid: cJSON prints nothing */
	}
}

char *
json_print(const cJSON *v)
{
	struct json_out o = { NULL, 0, JSON_PRINT_FIRST, 0 };

	if (v == NULL || (o.buf = cJSON_malloc(o.cap)) == NULL)
		return NULL;
	json_out_value(&o, v);
	if (o.failed) {
		cJSON_free(o.buf);
		return NULL;
	}
	o.buf[o.len] = '\0';
	return o.buf;
}
