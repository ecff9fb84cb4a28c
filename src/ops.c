/* ops: path -> handler dispatch and error results (see include/ops.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ops.h"

static const struct {
	const char *path;
	op_handler run;
} ops_table[] = {
	{ "/api/v1/test/health", op_health },
};

cJSON *
ops_error(const char *type, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "error", msg);
	cJSON_AddStringToObject(o, "error_type", type);
	return o;
}

int
ops_is_error(const cJSON *result)
{
	return cJSON_IsObject(result) &&
	    cJSON_HasObjectItem(result, "error");
}

cJSON *
ops_run(const struct op_context *ctx, const char *path, const cJSON *body)
{
	size_t i;

	for (i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
		if (strcmp(path, ops_table[i].path) == 0)
			return ops_table[i].run(ctx, body);
	return ops_error("unsupported", "unsupported operation path: %.200s",
	    path);
}
