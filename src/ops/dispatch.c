/*
 * dispatch: the handler table (path -> handler, its enabled flag and its
 * configured grants) and the start of an operation by path.
 *
 * It sits above the handlers: the runner and the tests start operations
 * here, the handlers never call it (they share the helpers of ops.c, below
 * them), so adding a handler means one row in dispatch_table.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

#define DISPATCH_STORAGE_PREFIX "/api/v1/agent/execute/storage/"

/* Whether a handler is switched on; NULL ctx->cfg (tests) enables all. */
static bool
dispatch_enabled(const struct egressd_config *cfg, size_t offset)
{
	if (cfg == NULL || offset == (size_t)-1)
		return true;
	return *(const bool *)((const char *)cfg + offset);
}

#define DISPATCH_FLAG(h) offsetof(struct egressd_config, operations.h.enabled)
#define DISPATCH_CAPS(h) \
	offsetof(struct egressd_config, operations.h.capabilities)

static const struct {
	const char *path;
	int prefix;		/* path is a prefix: the rest names a method */
	op_handler run;
	size_t enabled;		/* offset of its enabled flag, or -1 */
	const char *group;	/* for the "disabled" message */
	size_t caps;		/* offset of its capabilities, or -1 */
	int forks;		/* its process forks children */
	int brief;		/* done before it returns: no I/O, no wait, */
				/*   nothing changed outside the database */
} dispatch_table[] = {
	{ "/api/v1/test/health", 0, op_health, (size_t)-1, NULL,
	    (size_t)-1, 0, 1 },
	/* Writes and fsyncs files, up to max_bytes: not brief. */
	{ DISPATCH_STORAGE_PREFIX, 1, op_storage, DISPATCH_FLAG(storage), "storage",
	    DISPATCH_CAPS(storage), 0, 0 },
	{ "/api/v1/agent/execute/http", 0, op_http, DISPATCH_FLAG(http), "http",
	    DISPATCH_CAPS(http), 0, 0 },
	{ "/api/v1/agent/execute/command", 0, op_command, DISPATCH_FLAG(command),
	    "command", DISPATCH_CAPS(command), 0, 0 },
	/* A query may run up to its time limit: not brief. */
	{ "/api/v1/agent/execute/sqlite", 0, op_sqlite, DISPATCH_FLAG(sqlite),
	    "sqlite", DISPATCH_CAPS(sqlite), 0, 0 },
	{ "/api/v1/agent/execute/batch", 0, op_batch, DISPATCH_FLAG(batch),
	    "batch", DISPATCH_CAPS(batch), 1, 0 },
	{ "/api/v1/upgrade", 0, op_upgrade, DISPATCH_FLAG(upgrade), "upgrade",
	    DISPATCH_CAPS(upgrade), 0, 0 },
};
#define DISPATCH_COUNT (sizeof(dispatch_table) / sizeof(dispatch_table[0]))

static int
dispatch_path_matches(size_t i, const char *path)
{
	size_t n = strlen(dispatch_table[i].path);

	if (!dispatch_table[i].prefix)
		return strcmp(path, dispatch_table[i].path) == 0;
	return strncmp(path, dispatch_table[i].path, n) == 0 && path[n] != '\0';
}

/* path's row of the table, or DISPATCH_COUNT when none handles it. */
static size_t
dispatch_find(const char *path)
{
	size_t i;

	for (i = 0; i < DISPATCH_COUNT; i++)
		if (dispatch_path_matches(i, path))
			break;
	return i;
}

const struct config_strlist *
dispatch_capabilities(const struct egressd_config *cfg, const char *path)
{
	size_t i = dispatch_find(path);

	if (i == DISPATCH_COUNT || dispatch_table[i].caps == (size_t)-1)
		return NULL;
	return (const struct config_strlist *)((const char *)cfg +
	    dispatch_table[i].caps);
}

int
dispatch_forks(const char *path)
{
	size_t i = dispatch_find(path);

	return i < DISPATCH_COUNT && dispatch_table[i].forks;
}

int
dispatch_brief(const struct egressd_config *cfg, const char *path)
{
	size_t i = dispatch_find(path);

	if (i == DISPATCH_COUNT)
		return 1;	/* unsupported: an error result at once */
	return dispatch_table[i].brief ||
	    !dispatch_enabled(cfg, dispatch_table[i].enabled);
}

enum ops_status
dispatch_start(struct op_run *run, const char *path, const cJSON *body,
    cJSON **result)
{
	const struct egressd_config *cfg = run->ctx ? run->ctx->cfg : NULL;
	size_t i = dispatch_find(path);

	run->path = path;
	run->cancel = NULL;
	run->state = NULL;
	*result = NULL;
	if (i == DISPATCH_COUNT)
		*result = ops_error("unsupported", "unsupported operation "
		    "path: %.200s", path);
	else if (!dispatch_enabled(cfg, dispatch_table[i].enabled))
		*result = ops_error("unsupported", "operations.%s is not "
		    "enabled on this agent", dispatch_table[i].group);
	else if (dispatch_table[i].run(run, body, result) == OPS_PENDING)
		return OPS_PENDING;
	if (*result == NULL)
		*result = ops_error("internal", "out of memory");
	return OPS_DONE;
}
