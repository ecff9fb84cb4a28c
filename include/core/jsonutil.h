/*
 * jsonutil: cJSON parsing with the limits DESIGN section 2 sets on anything
 * that comes from the network (size and nesting depth), compact printing
 * at a fraction of cJSON's cost, and the encodings results use for bytes
 * that are not text (UTF-8 checks, base64).
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
 *
 * A string holding a NUL (the escape \u0000) is never handed over cut
 * short at it, as cJSON would: as a value it becomes raw JSON (cJSON_Raw,
 * printed as the original token), which no cJSON_IsString() check and no
 * json_string() accepts, so whoever reads a string from the tree refuses
 * it as not a string; a member name keeps its spelling in the text (the
 * six characters \u0000 where the NUL would be), so that a lookup by the
 * name cut at the NUL does not find it.  json_has_nul() tells such a
 * value apart.
 */
struct cJSON *json_parse_limited(const char *text, size_t len,
    size_t max_bytes, char *err, size_t errlen);

/*
 * What json_parse_limited does to the strings with \u0000 of a tree
 * cJSON parsed from text (len bytes), for those who parse with other
 * options.  0, or -1 out of memory.
 */
int json_nul_fix(struct cJSON *v, const char *text, size_t len);

/*
 * The text cJSON_PrintUnformatted(v) prints, byte for byte, at a fraction
 * of its cost for numbers (no printf and sscanf round trip for an
 * integer).  Free it with cJSON_free(); NULL when out of memory or v holds
 * an invalid item.
 */
char *json_print(const struct cJSON *v);

/* The string member key of o, or NULL when absent or not a string. */
const char *json_string(const struct cJSON *o, const char *key);

/*
 * Whether v is a string value json_parse_limited() refused to cut at a
 * NUL (see above): for a message saying why it is not taken.
 */
int json_has_nul(const struct cJSON *v);

/*
 * Length of the valid UTF-8 sequence at s (len > 0 bytes left), or 0 for
 * a NUL, a bad lead or continuation byte, an overlong form, a surrogate or
 * a code point past U+10FFFF.
 */
size_t json_utf8_len(const char *s, size_t len);

/*
 * Whether len bytes are valid UTF-8 without NUL, so a JSON string can carry
 * them unchanged (a cJSON string ends at the first NUL).
 */
int json_utf8_valid(const char *s, size_t len);

/* A string of len bytes, each invalid sequence or NUL as U+FFFD. */
struct cJSON *json_text(const char *s, size_t len);

/* A string of data in base64 (RFC 4648, padded); NULL out of memory. */
struct cJSON *json_base64(const void *data, size_t len);

#endif
