/* escape: control characters made visible (see include/core/escape.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/escape.h"
#include "core/jsonutil.h"

#define ESCAPE_MAX 6		/* the longest escape, "\u009b" */

/*
 * The escape for the character at p into esc (NUL-terminated), or "" when
 * it passes as it is; *len is the character's length in bytes.
 */
static const char *
escape_one(const unsigned char *p, size_t left, int flags,
    char esc[ESCAPE_MAX + 1], size_t *len)
{
	size_t n = json_utf8_len((const char *)p, left);

	*len = n ? n : 1;
	esc[0] = '\0';
	if (n == 0)
		snprintf(esc, ESCAPE_MAX + 1, "\\x%02x", p[0]);
	else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
		snprintf(esc, ESCAPE_MAX + 1, "\\u%04x", p[1]);
	else if (n > 1 || (p[0] >= 0x20 && p[0] != 0x7f) ||
	    (p[0] == '\n' && (flags & ESCAPE_KEEP_NEWLINE)))
		return esc;
	else if (p[0] == '\n')
		strcpy(esc, "\\n");
	else if (p[0] == '\r')
		strcpy(esc, "\\r");
	else if (p[0] == '\t')
		strcpy(esc, "\\t");
	else
		snprintf(esc, ESCAPE_MAX + 1, "\\x%02x", p[0]);
	return esc;
}

int
escape_needed(const char *in, int flags)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t len, left = strlen(in);
	char esc[ESCAPE_MAX + 1];

	for (; *p != '\0'; p += len, left -= len)
		if (escape_one(p, left, flags, esc, &len)[0] != '\0')
			return 1;
	return 0;
}

char *
escape_text(char *out, size_t outlen, const char *in, int flags)
{
	const unsigned char *p = (const unsigned char *)in;
	char esc[ESCAPE_MAX + 1];
	size_t len, add, n = 0, left = strlen(in);
	const char *e;

	if (outlen == 0)
		return out;
	for (; *p != '\0'; p += len, left -= len) {
		e = escape_one(p, left, flags, esc, &len);
		add = e[0] != '\0' ? strlen(e) : len;
		if (n + add >= outlen)
			break;
		memcpy(out + n, e[0] != '\0' ? e : (const char *)p, add);
		n += add;
	}
	out[n] = '\0';
	return out;
}

char *
escape_dup(const char *in, int flags)
{
	/* Every byte becomes at most four ("\x1b"); C1 takes six for two. */
	size_t size = strlen(in) * 4 + 1;
	char *out = malloc(size);

	return out ? escape_text(out, size, in, flags) : NULL;
}

int
escape_json_strings(cJSON *o, int flags)
{
	cJSON *v;
	char *esc;
	int ok;

	if (cJSON_IsString(o) && o->valuestring != NULL &&
	    escape_needed(o->valuestring, flags)) {
		if ((esc = escape_dup(o->valuestring, flags)) == NULL)
			return -1;
		ok = cJSON_SetValuestring(o, esc) != NULL;
		free(esc);
		if (!ok)
			return -1;
	}
	cJSON_ArrayForEach(v, o)
		if (escape_json_strings(v, flags) == -1)
			return -1;
	return 0;
}
