/*
 * ops/batch: /api/v1/agent/execute/batch — sub-operations as child agent
 * processes.
 *
 * Each entry of "operations" becomes a child of the batch's process (fork
 * mode from "mode", default restricted) through the host, which grants it
 * only what the batch may delegate.  Children run concurrently; the batch
 * waits for all and reports each one's pid, status and result in order.  A
 * child the host refuses (budget, capabilities) is reported as REFUSED with
 * its error; the batch itself still succeeds.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/jsonutil.h"
#include "ops/ops.h"

struct batch_child {
	struct op_run *run;	/* NULL once done or refused */
	int64_t pid;
	const char *status;
	cJSON *result;
};

struct batch {
	struct op_run *run;
	size_t n, pending;
	struct batch_child *kids;
};

static const char *
batch_status(const struct op_run *child, const cJSON *result)
{
	if (child->killed)
		return "KILLED";
	return ops_is_error(result) ? "FAILED" : "EXITED";
}

static cJSON *
batch_result(struct batch *b)
{
	cJSON *o = cJSON_CreateObject(), *arr, *e;
	size_t i, failed = 0;

	if (o == NULL || (arr = cJSON_AddArrayToObject(o, "results")) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	for (i = 0; i < b->n; i++) {
		if ((e = cJSON_CreateObject()) == NULL)
			break;
		if (b->kids[i].pid > 0)
			cJSON_AddNumberToObject(e, "pid",
			    (double)b->kids[i].pid);
		else
			cJSON_AddNullToObject(e, "pid");
		cJSON_AddStringToObject(e, "status", b->kids[i].status);
		cJSON_AddItemToObject(e, "result", b->kids[i].result);
		b->kids[i].result = NULL;
		failed += strcmp(b->kids[i].status, "EXITED") != 0;
		cJSON_AddItemToArray(arr, e);
	}
	cJSON_AddNumberToObject(o, "failed", (double)failed);
	return o;
}

static void
batch_free(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		cJSON_Delete(b->kids[i].result);
	free(b->kids);
	free(b);
}

static void
batch_child_done(struct op_run *child, cJSON *result)
{
	struct batch *b = child->arg;
	struct op_run *run = b->run;
	size_t i;

	for (i = 0; i < b->n && b->kids[i].run != child; i++)
		;
	if (i == b->n) {		/* not ours: cannot happen */
		cJSON_Delete(result);
		return;
	}
	b->kids[i].run = NULL;
	b->kids[i].pid = child->agent_pid;
	b->kids[i].status = batch_status(child, result);
	b->kids[i].result = result;
	if (--b->pending > 0)
		return;
	result = batch_result(b);
	batch_free(b);
	ops_finish(run, result);
}

static void
batch_cancel(struct op_run *run)
{
	struct batch *b = run->state;
	const struct op_host *host = run->ctx->host;
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->kids[i].run != NULL)
			host->cancel_child(b->kids[i].run,
			    "its batch was cancelled");
	batch_free(b);
}

/* Check the body before any child exists: all or nothing. */
static cJSON *
batch_validate(const struct op_run *run, const cJSON *body,
    const cJSON **ops, const char **mode)
{
	const struct egressd_config *cfg = run->ctx ? run->ctx->cfg : NULL;
	const cJSON *e, *m;
	int n, i = 0, max = cfg ? cfg->operations.batch.max_children : 16;

	*ops = cJSON_GetObjectItemCaseSensitive(body, "operations");
	m = cJSON_GetObjectItemCaseSensitive(body, "mode");
	*mode = cJSON_IsString(m) ? m->valuestring : "restricted";
	if (m != NULL && !cJSON_IsString(m))
		return ops_error("invalid_request", "\"mode\" must be a string");
	if (!cJSON_IsArray(*ops) || (n = cJSON_GetArraySize(*ops)) == 0)
		return ops_error("invalid_request", "\"operations\" must be a "
		    "non-empty array");
	if (n > max)
		return ops_error("limit_exceeded", "%d sub-operations; "
		    "operations.batch.max_children is %d", n, max);
	cJSON_ArrayForEach(e, *ops) {
		const cJSON *body_i = cJSON_GetObjectItemCaseSensitive(e,
		    "operation");

		if (!cJSON_IsObject(e) || json_string(e, "path") == NULL)
			return ops_error("invalid_request", "operations[%d] "
			    "needs a \"path\" string", i);
		if (body_i != NULL && !cJSON_IsObject(body_i))
			return ops_error("invalid_request", "operations[%d]."
			    "operation must be an object", i);
		i++;
	}
	return NULL;
}

static void
batch_start_children(struct batch *b, const cJSON *ops, const char *mode)
{
	const struct op_host *host = b->run->ctx->host;
	const cJSON *e;
	cJSON *err;
	size_t i = 0;

	cJSON_ArrayForEach(e, ops) {
		b->kids[i].run = host->start_child(b->run, mode,
		    json_string(e, "path"),
		    cJSON_GetObjectItemCaseSensitive(e, "operation"),
		    batch_child_done, b, &err);
		if (b->kids[i].run == NULL) {
			b->kids[i].status = "REFUSED";
			b->kids[i].result = err ? err : ops_error("internal",
			    "out of memory");
		} else
			b->pending++;
		i++;
	}
}

enum ops_status
op_batch(struct op_run *run, const cJSON *body, cJSON **result)
{
	const struct op_host *host = run->ctx ? run->ctx->host : NULL;
	const cJSON *ops;
	const char *mode;
	struct batch *b;

	if ((*result = batch_validate(run, body, &ops, &mode)) != NULL)
		return OPS_DONE;
	if (host == NULL || host->start_child == NULL) {
		*result = ops_error("unsupported", "batch needs the process "
		    "manager");
		return OPS_DONE;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->kids = calloc((size_t)cJSON_GetArraySize(ops),
	    sizeof(*b->kids))) == NULL) {
		free(b);
		*result = ops_error("internal", "out of memory");
		return OPS_DONE;
	}
	b->run = run;
	b->n = (size_t)cJSON_GetArraySize(ops);
	batch_start_children(b, ops, mode);
	if (b->pending == 0) {
		*result = batch_result(b);
		batch_free(b);
		return OPS_DONE;
	}
	run->state = b;
	run->cancel = batch_cancel;
	return OPS_PENDING;
}
