/* ops: path -> handler dispatch and error results (see include/ops/ops.h). */
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

#define OPS_STORAGE_PREFIX "/api/v1/agent/execute/storage/"

/* Whether a handler is switched on; NULL ctx->cfg (tests) enables all. */
static bool
ops_enabled(const struct egressd_config *cfg, size_t offset)
{
	if (cfg == NULL || offset == (size_t)-1)
		return true;
	return *(const bool *)((const char *)cfg + offset);
}

#define OPS_FLAG(h) offsetof(struct egressd_config, operations.h.enabled)
#define OPS_CAPS(h) \
	offsetof(struct egressd_config, operations.h.capabilities)

static const struct {
	const char *path;
	int prefix;		/* path is a prefix: the rest names a method */
	op_handler run;
	size_t enabled;		/* offset of its enabled flag, or -1 */
	const char *group;	/* for the "disabled" message */
	size_t caps;		/* offset of its capabilities, or -1 */
} ops_table[] = {
	{ "/api/v1/test/health", 0, op_health, (size_t)-1, NULL,
	    (size_t)-1 },
	{ OPS_STORAGE_PREFIX, 1, op_storage, OPS_FLAG(storage), "storage",
	    OPS_CAPS(storage) },
	{ "/api/v1/agent/execute/http", 0, op_http, OPS_FLAG(http), "http",
	    OPS_CAPS(http) },
	{ "/api/v1/agent/execute/command", 0, op_command, OPS_FLAG(command),
	    "command", OPS_CAPS(command) },
	{ "/api/v1/agent/execute/sqlite", 0, op_sqlite, OPS_FLAG(sqlite),
	    "sqlite", OPS_CAPS(sqlite) },
	{ "/api/v1/agent/execute/batch", 0, op_batch, OPS_FLAG(batch),
	    "batch", OPS_CAPS(batch) },
	{ "/api/v1/upgrade", 0, op_upgrade, OPS_FLAG(upgrade), "upgrade",
	    OPS_CAPS(upgrade) },
};
#define OPS_COUNT (sizeof(ops_table) / sizeof(ops_table[0]))

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

static int
ops_path_matches(size_t i, const char *path)
{
	size_t n = strlen(ops_table[i].path);

	if (!ops_table[i].prefix)
		return strcmp(path, ops_table[i].path) == 0;
	return strncmp(path, ops_table[i].path, n) == 0 && path[n] != '\0';
}

const struct config_strlist *
ops_capabilities(const struct egressd_config *cfg, const char *path)
{
	size_t i;

	for (i = 0; i < OPS_COUNT; i++)
		if (ops_path_matches(i, path))
			return ops_table[i].caps == (size_t)-1 ? NULL :
			    (const struct config_strlist *)
			    ((const char *)cfg + ops_table[i].caps);
	return NULL;
}

enum ops_status
ops_start(struct op_run *run, const char *path, const cJSON *body,
    cJSON **result)
{
	const struct egressd_config *cfg = run->ctx ? run->ctx->cfg : NULL;
	enum ops_status st;
	size_t i;

	run->path = path;
	run->cancel = NULL;
	run->state = NULL;
	*result = NULL;
	for (i = 0; i < OPS_COUNT; i++) {
		if (!ops_path_matches(i, path))
			continue;
		if (!ops_enabled(cfg, ops_table[i].enabled)) {
			*result = ops_error("unsupported", "operations.%s is "
			    "not enabled on this agent", ops_table[i].group);
			break;
		}
		st = ops_table[i].run(run, body, result);
		if (st == OPS_PENDING)
			return OPS_PENDING;
		break;
	}
	if (i == OPS_COUNT)
		*result = ops_error("unsupported", "unsupported operation "
		    "path: %.200s", path);
	if (*result == NULL)
		*result = ops_error("internal", "out of memory");
	return OPS_DONE;
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
