/*
 * jsonutil: cJSON parsing with the limits DESIGN section 2 sets on anything
 * that comes from the network (size and nesting depth).
 */
#ifndef EGRESSD_JSONUTIL_H
#define EGRESSD_JSONUTIL_H

#include <stddef.h>

#define JSON_MAX_DEPTH 64

struct cJSON;

/*
 * Parse len bytes as one JSON value no deeper than JSON_MAX_DEPTH and no
 * larger than max_bytes.  Returns NULL with err set ("not valid JSON",
 * "nested deeper than 64 levels", "larger than N bytes").
 */
struct cJSON *json_parse_limited(const char *text, size_t len,
    size_t max_bytes, char *err, size_t errlen);

/* The string member key of o, or NULL when absent or not a string. */
const char *json_string(const struct cJSON *o, const char *key);

#endif
