/*
 * ops/health: /api/v1/test/health — what this worker is and how it does:
 * version, instance ID, pid, generation, uptime, counters, database size.
 */
#include <stdio.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "ops/ops.h"
#include "core/version.h"

static double
health_file_size(const char *path, const char *suffix)
{
	char name[4096];
	struct stat sb;

	snprintf(name, sizeof(name), "%s%s", path, suffix);
	return stat(name, &sb) == 0 ? (double)sb.st_size : 0;
}

enum ops_status
op_health(struct op_run *run, const cJSON *body, cJSON **result)
{
	const struct op_context *ctx = run->ctx;
	cJSON *o = cJSON_CreateObject(), *c, *db;

	(void)body;
	if ((*result = o) == NULL)
		return OPS_DONE;
	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", EGRESSD_VERSION);
	cJSON_AddStringToObject(o, "instance_id", ctx->instance_id);
	cJSON_AddNumberToObject(o, "pid", ctx->pid);
	cJSON_AddNumberToObject(o, "worker", ctx->slot);
	cJSON_AddNumberToObject(o, "generation", ctx->generation);
	cJSON_AddNumberToObject(o, "uptime", clock_mono() - ctx->started);
	c = cJSON_AddObjectToObject(o, "counters");
	cJSON_AddNumberToObject(c, "inflight", (double)ctx->inflight);
	cJSON_AddNumberToObject(c, "done", (double)ctx->done);
	cJSON_AddNumberToObject(c, "failed", (double)ctx->failed);
	db = cJSON_AddObjectToObject(o, "db");
	if (ctx->db_path != NULL) {
		cJSON_AddNumberToObject(db, "size_bytes",
		    health_file_size(ctx->db_path, ""));
		cJSON_AddNumberToObject(db, "wal_bytes",
		    health_file_size(ctx->db_path, "-wal"));
	}
	cJSON_AddNumberToObject(o, "agent_pid", (double)run->agent_pid);
	return OPS_DONE;
}
