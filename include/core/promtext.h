/*
 * promtext: the Prometheus text exposition format (0.0.4) read back into
 * JSON, for `egressctl metrics --json`.
 *
 * Whatever metrics.c renders (and any family added later) comes out as
 *   {"metrics": [{"name", "type", "help",
 *                 "samples": [{"name", "labels": {...}, "value"}]}]}
 * in the order of the text.  A sample belongs to the family declared
 * before it when its name is the family's or the family's with _bucket,
 * _sum or _count; otherwise it makes a family of its own, "untyped".  A
 * value is a JSON number, or the string "+Inf", "-Inf" or "NaN".  Pure:
 * no I/O.
 */
#ifndef EGRESSD_PROMTEXT_H
#define EGRESSD_PROMTEXT_H

#include <stddef.h>

struct cJSON;

/*
 * text as JSON; NULL with err naming the line when a line does not parse
 * (or when out of memory).
 */
struct cJSON *promtext_to_json(const char *text, char *err, size_t errlen);

#endif
