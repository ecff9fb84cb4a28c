/* jsonutil: bounded JSON parsing, text and base64 (see include/core/jsonutil.h). */
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
	return v;
}

const char *
json_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
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
