/* jsonutil: bounded JSON parsing (see include/jsonutil.h). */
#include <stdio.h>

#include <cjson/cJSON.h>

#include "jsonutil.h"

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
