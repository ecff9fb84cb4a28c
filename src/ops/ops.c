/*
 * ops: what every handler shares — error results, completion, the
 * capability check through the host, writes (see include/ops/ops.h).
 * The handler table is above the handlers, in dispatch.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "ops/ops.h"

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
ops_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
ops_is_error(const cJSON *result)
{
	return cJSON_IsObject(result) &&
	    cJSON_HasObjectItem(result, "error");
}

void
ops_finish(struct op_run *run, cJSON *result)
{
	run->cancel = NULL;
	run->state = NULL;
	if (result == NULL)
		result = ops_error("internal", "out of memory");
	run->done(run, result);
}

void
ops_cancel(struct op_run *run)
{
	void (*cancel)(struct op_run *) = run->cancel;

	run->cancel = NULL;
	if (cancel != NULL)
		cancel(run);
	run->state = NULL;
}

int
ops_check(struct op_run *run, const char *resource, const char *right,
    cJSON **error)
{
	const struct op_host *host = run->ctx ? run->ctx->host : NULL;

	*error = NULL;
	if (host == NULL || host->check == NULL)
		return 0;
	return host->check(run, resource, right, error);
}
