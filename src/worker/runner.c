/* runner: operations as agent processes (see include/worker/runner.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "procmgr/capability.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "ops/dispatch.h"
#include "worker/runner.h"
#include "procmgr/store.h"

#define RUNNER_RETRY_MIN 1.0	/* an exit that could not be written */
#define RUNNER_RETRY_MAX 30.0
#define RUNNER_OP_PATHS "/api/v1/*"	/* the images children may have */

/* An exit record the database refused; the result itself went on. */
struct runner_exit {
	agent_pid pid;
	char *result;
	int failed;
	double delay;
	struct evloop_timer timer;	/* the next try */
	struct runner *r;
	struct runner_exit *next;
};

struct runner {
	struct op_context *ctx;
	const struct egressd_config *cfg;
	struct store *st;
	struct procmgr pm;
	struct op_host host;
	int (*reload)(void *arg);
	void *reload_arg;
	struct runner_op *running;	/* handlers not finished */
	struct runner_op *queued;	/* children not started yet */
	struct evloop_timer start_queued;	/* as soon as possible */
	struct runner_exit *exits;	/* to write again */
};

/* Capabilities parsed from "RESOURCE RIGHTS" strings. */
struct runner_caps {
	struct cap_spec *spec;
	char **text;			/* owned: resource, NUL, rights */
	char **kept;			/* owned: filtered rights, or NULL */
	size_t n;			/* strings parsed */
	size_t nspec;			/* specs in use */
};

#define RUNNER_OP(r_) \
	((struct runner_op *)((char *)(r_) - offsetof(struct runner_op, run)))

static void runner_complete(struct runner_op *op, cJSON *result);
static cJSON *runner_kill(struct runner_op *op, const char *type,
    const char *why);
static void runner_on_exit_retry(void *arg);
static void runner_start_queued(void *arg);

static const char *
runner_error_type(enum pm_error e)
{
	switch (e) {
	case PM_E_INVALID:
		return "invalid_request";
	case PM_E_DENIED:
		return "capability_denied";
	case PM_E_NOT_FOUND:
		return "not_found";
	case PM_E_LIMIT:
		return "limit_exceeded";
	case PM_E_TIMEOUT:
		return "timeout";
	default:
		return "internal";
	}
}

cJSON *
runner_pm_error(const struct procmgr *pm)
{
	return ops_error(runner_error_type(pm->errtype), "%s", pm->err);
}

static void
runner_caps_free(struct runner_caps *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->text[i]);
		if (c->kept != NULL)
			free(c->kept[i]);
	}
	free(c->text);
	free(c->kept);
	free(c->spec);
	memset(c, 0, sizeof(*c));
}

/* Config grants are delegable, so a batch can pass them on. */
static int
runner_caps_parse(const struct config_strlist *l, struct runner_caps *c)
{
	char *sp;
	size_t i;

	memset(c, 0, sizeof(*c));
	if (l == NULL || l->count == 0)
		return 0;
	c->spec = calloc(l->count, sizeof(*c->spec));
	c->text = calloc(l->count, sizeof(*c->text));
	c->kept = calloc(l->count, sizeof(*c->kept));
	if (c->spec == NULL || c->text == NULL || c->kept == NULL) {
		runner_caps_free(c);
		return -1;
	}
	for (i = 0; i < l->count; i++) {
		if ((c->text[i] = strdup(l->items[i])) == NULL) {
			runner_caps_free(c);
			return -1;
		}
		c->n++;
		c->nspec++;
		if ((sp = strchr(c->text[i], ' ')) != NULL)
			*sp++ = '\0';
		c->spec[i].resource = c->text[i];
		c->spec[i].rights = sp ? sp : "";
		c->spec[i].delegable = 1;
		c->spec[i].revocable = 1;
	}
	return 0;
}

/*
 * A handler that runs children gets the authority to: write on
 * process:spawn and read on the images of operation paths.  Neither is
 * delegable, so its children cannot fork in turn.
 */
static int
runner_caps_forking(struct runner_caps *c)
{
	static const struct cap_spec forking[] = {
		{ .resource = PM_RES_SPAWN, .rights = "write", .revocable = 1 },
		{ .resource = PM_RES_IMAGE RUNNER_OP_PATHS, .rights = "read",
		    .revocable = 1 },
	};
	size_t n = sizeof(forking) / sizeof(forking[0]);
	struct cap_spec *grown;

	if ((grown = reallocarray(c->spec, c->nspec + n,
	    sizeof(*grown))) == NULL)
		return -1;
	memcpy(grown + c->nspec, forking, sizeof(forking));
	c->spec = grown;
	c->nspec += n;
	return 0;
}

/* The rights of spec that parent holds with policy ALWAYS_ALLOW. */
static char *
runner_delegable_rights(struct runner *r, agent_pid parent,
    const struct cap_spec *spec, double now)
{
	enum cap_policy pol;
	const char *p, *end;
	char right[32], *kept;
	size_t len;

	if ((kept = calloc(1, strlen(spec->rights) + 1)) == NULL)
		return NULL;
	for (p = spec->rights; *p != '\0'; p = *end ? end + 1 : end) {
		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		if ((len = (size_t)(end - p)) == 0 || len >= sizeof(right))
			continue;
		memcpy(right, p, len);
		right[len] = '\0';
		if (cap_policy(&r->pm, parent, spec->resource, right, now,
		    &pol) == -1) {
			free(kept);
			return NULL;
		}
		if (pol != CAP_ALWAYS_ALLOW)
			continue;
		if (kept[0] != '\0')
			strcat(kept, ",");
		strcat(kept, right);
	}
	return kept;
}

/*
 * A child gets, of its handler's grants, only the rights its parent may
 * delegate; asking for more would make the fork fail whole.  Grants left
 * with no right are dropped.
 */
static int
runner_caps_filter(struct runner *r, agent_pid parent, struct runner_caps *c)
{
	double now = clock_wall();
	size_t i, n = 0;

	for (i = 0; i < c->n; i++) {
		c->kept[i] = runner_delegable_rights(r, parent, &c->spec[i],
		    now);
		if (c->kept[i] == NULL)
			return -1;
		if (c->kept[i][0] == '\0')
			continue;
		c->spec[n] = c->spec[i];
		c->spec[n].rights = c->kept[i];
		n++;
	}
	/* spec[] is compacted; text[] and kept[] stay whole for freeing. */
	c->nspec = n;
	return 0;
}

static void
runner_link(struct runner_op **head, struct runner_op *op)
{
	op->prev = NULL;
	op->next = *head;
	if (*head != NULL)
		(*head)->prev = op;
	*head = op;
}

static void
runner_unlink(struct runner_op **head, struct runner_op *op)
{
	if (op->prev != NULL)
		op->prev->next = op->next;
	else if (*head == op)
		*head = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static void
runner_add_pid(const struct runner_op *op, cJSON *result)
{
	if (op->pid != 0 && ops_is_error(result) &&
	    !cJSON_HasObjectItem(result, "pid"))
		cJSON_AddNumberToObject(result, "pid", (double)op->pid);
}

static void
runner_retry_exit(struct runner *r, agent_pid pid, const char *text,
    int failed)
{
	struct runner_exit *e;

	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->result = strdup(text)) == NULL) {
		free(e);
		log_warnx("agent process %lld: exit not recorded (out of "
		    "memory)", (long long)pid);
		return;
	}
	e->pid = pid;
	e->failed = failed;
	e->delay = RUNNER_RETRY_MIN;
	e->r = r;
	evloop_timer_init(&e->timer, runner_on_exit_retry, e);
	evloop_timer_add(r->ctx->loop, &e->timer, clock_mono() + e->delay);
	e->next = r->exits;
	r->exits = e;
}

/* The database said no: the result still goes out, from memory. */
static void
runner_exit_refused(struct runner_op *op, const char *text, int failed)
{
	struct runner *r = op->r;

	log_warnx("agent process %lld: exit not recorded (%s); retrying",
	    (long long)op->pid, r->pm.err);
	if (r->pm.errtype == PM_E_DATABASE)
		runner_retry_exit(r, op->pid, text, failed);
}

static void
runner_exit_root(struct runner_op *op, const char *text, int failed,
    const char *message)
{
	struct runner *r = op->r;
	struct outbox_entry ob = { op->operation_id, text, clock_wall() +
	    r->cfg->orchestrator.poll_interval };

	if (op->pid == 0) {
		/* No process: the outbox alone still keeps the result. */
		op->stored = store_outbox_put(r->st, op->operation_id, text,
		    r->ctx->instance_id, ob.next_attempt) == 0;
		return;
	}
	if (procmgr_exit(&r->pm, op->pid, text, failed, message, &ob) == 0)
		op->stored = 1;
	else
		runner_exit_refused(op, text, failed);
}

/* Record the child's end, then the parent's wait and merge of it. */
static void
runner_exit_child(struct runner_op *op, const char *text, int failed,
    const char *message)
{
	struct runner *r = op->r;
	struct proc_wait w;
	int merged;

	if (procmgr_exit(&r->pm, op->pid, text, failed, message, NULL) == -1) {
		runner_exit_refused(op, text, failed);
		return;
	}
	if (procmgr_wait(&r->pm, op->parent->pid, op->pid, -1, &w) == -1 ||
	    procmgr_merge_child_memory(&r->pm, op->parent->pid, op->pid,
	    &merged) == -1)
		log_warnx("agent process %lld: wait for child %lld: %s",
		    (long long)op->parent->pid, (long long)op->pid,
		    r->pm.err);
}

/*
 * A root's result larger than a result body may be is never sent: the
 * limit_exceeded error that replaces it is what its exit records and the
 * outbox keeps, before the first try, so no try can fail on its size.
 */
static char *
runner_bound_result(struct runner_op *op, cJSON **result, char *text)
{
	long long max = (long long)op->r->cfg->orchestrator.max_body_bytes;
	size_t len = strlen(text);
	cJSON *small;

	if (op->parent != NULL || ops_result_fits(len, max))
		return text;
	if ((small = ops_result_too_large(len, max)) == NULL)
		return text;	/* out of memory: the poller bounds it */
	log_warnx("agent process %lld (%s): result of %zu bytes is larger "
	    "than orchestrator.max_body_bytes (%lld); a limit_exceeded error "
	    "is sent instead", (long long)op->pid, op->run.path, len, max);
	runner_add_pid(op, small);
	cJSON_Delete(*result);
	*result = small;
	cJSON_free(text);
	return json_print(small);
}

/* Record the end; returns the result to report (see runner_bound_result). */
static cJSON *
runner_record_end(struct runner_op *op, cJSON *result)
{
	const char *msg = NULL;
	char *text;
	int failed;

	runner_add_pid(op, result);
	if ((text = json_print(result)) != NULL)
		text = runner_bound_result(op, &result, text);
	if (text == NULL) {
		log_warnx("agent process %lld: out of memory recording its "
		    "end", (long long)op->pid);
		return result;
	}
	if ((failed = ops_is_error(result)))
		msg = cJSON_GetStringValue(cJSON_GetObjectItem(result,
		    "error"));
	if (op->parent == NULL) {
		runner_exit_root(op, text, failed, msg);
		/* The poller sends these very bytes: printed once. */
		cJSON_free(op->result_text);
		op->result_text = text;
		return result;
	}
	if (op->pid != 0)
		runner_exit_child(op, text, failed, msg);
	cJSON_free(text);
	return result;
}

static void
runner_free_child(struct runner_op *op)
{
	free((char *)op->run.path);
	free(op);
}

static void
runner_complete(struct runner_op *op, cJSON *result)
{
	struct runner *r = op->r;

	if (op->running) {
		runner_unlink(&r->running, op);
		evloop_timer_cancel(&op->timer);
		op->running = 0;
	}
	result = runner_record_end(op, result);
	if (op->parent == NULL) {
		op->on_done(op, result);
		return;
	}
	op->child_done(&op->run, result);
	runner_free_child(op);
}

static void
runner_on_handler_done(struct op_run *run, cJSON *result)
{
	runner_complete(RUNNER_OP(run), result);
}

/* Past its runtime budget: killed, its error result is its end. */
static void
runner_on_deadline(void *arg)
{
	struct runner_op *op = arg;
	struct runner *r = op->r;
	char why[128];
	cJSON *result;

	snprintf(why, sizeof(why), "runtime budget of %.3g s exceeded",
	    r->cfg->process.max_runtime_seconds);
	log_warnx("agent process %lld (%s): %s; killed", (long long)op->pid,
	    op->run.path, why);
	result = runner_kill(op, "timeout", why);
	if (op->parent == NULL)
		op->on_done(op, result);
	else {
		op->child_done(&op->run, result);
		runner_free_child(op);
	}
}

static void
runner_run_handler(struct runner_op *op, const cJSON *body)
{
	struct runner *r = op->r;
	cJSON *result;

	op->run.done = runner_on_handler_done;
	op->running = 1;
	runner_link(&r->running, op);
	evloop_timer_init(&op->timer, runner_on_deadline, op);
	evloop_timer_add(r->ctx->loop, &op->timer, op->deadline);
	if (dispatch_start(&op->run, op->run.path, body, &result) == OPS_DONE)
		runner_complete(op, result);
}

static struct runner_op *
runner_child_of(struct runner *r, const struct runner_op *parent)
{
	struct runner_op *c;

	for (c = r->running; c != NULL; c = c->next)
		if (c->parent == parent)
			return c;
	for (c = r->queued; c != NULL; c = c->next)
		if (c->parent == parent)
			return c;
	return NULL;
}

/* A queued child never ran: drop its copy of the body. */
static void
runner_unqueue(struct runner *r, struct runner_op *op)
{
	runner_unlink(&r->queued, op);
	cJSON_Delete(op->run.state);
	op->run.state = NULL;
}

/* Kill op's process (and its children first); result is the error sent. */
static cJSON *
runner_kill(struct runner_op *op, const char *type, const char *why)
{
	struct runner *r = op->r;
	struct runner_op *c;
	struct outbox_entry ob;
	cJSON *result;
	char *text = NULL;

	ops_cancel(&op->run);
	op->run.killed = 1;
	if (op->running) {
		runner_unlink(&r->running, op);
		evloop_timer_cancel(&op->timer);
		op->running = 0;
	}
	/* Children the handler's cancel left behind; the lists change. */
	while ((c = runner_child_of(r, op)) != NULL) {
		if (!c->running)
			runner_unqueue(r, c);
		cJSON_Delete(runner_kill(c, type, "its parent ended"));
		runner_free_child(c);
	}
	result = ops_error(type, "%s", why);
	runner_add_pid(op, result);
	if (result != NULL)
		text = json_print(result);
	ob.operation_id = op->operation_id;
	ob.result = text ? text : "{\"error\":\"killed\",\"error_type\":"
	    "\"internal\"}";
	ob.next_attempt = clock_wall() + r->cfg->orchestrator.poll_interval;
	if (op->pid != 0 && procmgr_kill(&r->pm, op->pid, why,
	    op->parent == NULL ? &ob : NULL) == 0)
		op->stored = op->parent == NULL;
	else if (op->pid != 0)
		log_warnx("agent process %lld: kill not recorded (%s)",
		    (long long)op->pid, r->pm.err);
	cJSON_free(text);
	return result;
}

/* Host callbacks for the handlers. */

static int
runner_check(struct op_run *run, const char *resource, const char *right,
    cJSON **error)
{
	struct runner_op *op = RUNNER_OP(run);
	struct runner *r = op->r;

	if (op->pid == 0) {
		*error = ops_error("internal", "no agent process to check %s "
		    "on %s", right, resource);
		return -1;
	}
	if (procmgr_check(&r->pm, op->pid, resource, right) == 0)
		return 0;
	*error = runner_pm_error(&r->pm);
	return -1;
}

static int
runner_fork_child(struct runner *r, struct runner_op *parent,
    enum fork_mode mode, const char *path, const cJSON *body,
    agent_pid *pid)
{
	/* A sub-operation sees its own goal, none of the batch's memory. */
	const struct proc_child_opts opts = { .select_roots = 1 };
	struct runner_caps caps;
	char *goal = body ? json_print(body) : NULL;
	int rc = -1;

	if (runner_caps_parse(dispatch_capabilities(r->cfg, path), &caps) == -1 ||
	    runner_caps_filter(r, parent->pid, &caps) == -1) {
		snprintf(r->pm.err, sizeof(r->pm.err), "out of memory or "
		    "database error filtering capabilities");
		r->pm.errtype = PM_E_INTERNAL;
	} else
		rc = procmgr_fork_opts(&r->pm, parent->pid, goal ? goal : "{}",
		    mode, path, caps.spec, caps.nspec, &opts, pid);
	runner_caps_free(&caps);
	cJSON_free(goal);
	return rc;
}

/*
 * A child is created now but started from a timer as soon as possible, so
 * its done callback never runs inside start_child.
 */
static struct op_run *
runner_start_child(struct op_run *prun, const char *mode, const char *path,
    const cJSON *body, op_done_cb done, void *arg, cJSON **error)
{
	struct runner_op *parent = RUNNER_OP(prun), *op;
	struct runner *r = parent->r;
	enum fork_mode fm;
	agent_pid pid;

	*error = NULL;
	if (procrule_fork_mode_parse(mode ? mode : "restricted", &fm) == -1) {
		*error = ops_error("invalid_request", "unknown fork mode "
		    "\"%.40s\" (restricted, worker, copy, speculative)", mode);
		return NULL;
	}
	if (parent->pid == 0 || runner_fork_child(r, parent, fm, path, body,
	    &pid) == -1) {
		*error = parent->pid ? runner_pm_error(&r->pm) :
		    ops_error("internal", "no agent process to fork");
		return NULL;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL ||
	    (op->run.path = strdup(path)) == NULL ||
	    (body != NULL && (op->run.state = cJSON_Duplicate(body, 1)) ==
	    NULL)) {
		if (op != NULL)
			free((char *)op->run.path);
		free(op);
		procmgr_kill(&r->pm, pid, "out of memory", NULL);
		*error = ops_error("internal", "out of memory");
		return NULL;
	}
	op->r = r;
	op->pid = pid;
	op->parent = parent;
	op->run.ctx = r->ctx;
	op->run.agent_pid = pid;
	op->run.arg = arg;
	op->child_done = done;
	op->deadline = parent->deadline;
	runner_link(&r->queued, op);
	evloop_timer_add(r->ctx->loop, &r->start_queued, 0);
	return &op->run;
}

static void
runner_cancel_child(struct op_run *run, const char *why)
{
	struct runner_op *op = RUNNER_OP(run);

	if (!op->running)		/* still queued */
		runner_unqueue(op->r, op);
	cJSON_Delete(runner_kill(op, "internal", why));
	runner_free_child(op);
}

static int
runner_request_reload(struct op_run *run)
{
	struct runner *r = RUNNER_OP(run)->r;

	return r->reload ? r->reload(r->reload_arg) : -1;
}

/* Public. */

struct runner *
runner_new(struct op_context *ctx, struct store *st,
    int (*reload)(void *arg), void *arg)
{
	struct runner *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->ctx = ctx;
	r->cfg = ctx->cfg;
	r->st = st;
	r->reload = reload;
	r->reload_arg = arg;
	evloop_timer_init(&r->start_queued, runner_start_queued, r);
	procmgr_init(&r->pm, st, ctx->instance_id, ctx->cfg);
	r->host.check = runner_check;
	r->host.start_child = runner_start_child;
	r->host.cancel_child = runner_cancel_child;
	r->host.request_reload = runner_request_reload;
	r->host.arg = r;
	ctx->host = &r->host;
	return r;
}

static int
runner_op_init(struct runner *r, struct runner_op *op,
    const char *operation_id, const char *path)
{
	op->r = r;
	op->run.ctx = r->ctx;
	op->pid = 0;
	op->deadline = clock_mono() + r->cfg->process.max_runtime_seconds;
	if ((op->operation_id = strdup(operation_id)) == NULL ||
	    (op->run.path = strdup(path)) == NULL)
		return -1;
	return 0;
}

void
runner_no_process(struct runner *r, struct runner_op *op,
    const char *operation_id, const char *path)
{
	(void)runner_op_init(r, op, operation_id, path);
	log_warnx("operation %s: agent process not created: %s",
	    operation_id, procmgr_db_error(&r->pm));
	op->run.agent_pid = 0;
}

int
runner_spawn(struct runner *r, struct runner_op *op,
    const char *operation_id, const char *path, const cJSON *goal)
{
	struct runner_caps caps;
	char *text;
	int rc = -1;

	if (runner_op_init(r, op, operation_id, path) == -1)
		return -1;
	text = goal ? json_print(goal) : NULL;
	if (runner_caps_parse(dispatch_capabilities(r->cfg, path), &caps) == 0 &&
	    (!dispatch_forks(path) || runner_caps_forking(&caps) == 0))
		rc = procmgr_spawn(&r->pm, path, text ? text : "{}", caps.spec,
		    caps.nspec, operation_id, NULL, &op->pid);
	runner_caps_free(&caps);
	cJSON_free(text);
	if (rc == -1) {
		log_warnx("operation %s: agent process not created: %s",
		    operation_id, r->pm.err);
		op->pid = 0;
	}
	op->run.agent_pid = op->pid;
	return rc;
}

void
runner_start(struct runner *r, struct runner_op *op, const char *path,
    const cJSON *body)
{
	/*
	 * The process's image and capabilities were chosen at the spawn by
	 * its path: a body for another path (a full download that differs
	 * from its stub) would run under grants that are not its own.
	 */
	if (strcmp(op->run.path, path) != 0) {
		runner_fail(r, op, ops_error("invalid_request", "operation %s: "
		    "its full body names path \"%.200s\", its stub \"%.200s\"; "
		    "not run", op->operation_id, path, op->run.path));
		return;
	}
	if (op->pid == 0) {
		runner_complete(op, ops_error("internal", "operation %s not "
		    "run: the database is unavailable", op->operation_id));
		return;
	}
	runner_run_handler(op, body);
}

void
runner_fail(struct runner *r, struct runner_op *op, cJSON *error)
{
	(void)r;
	if (error == NULL)
		error = ops_error("internal", "out of memory");
	runner_complete(op, error);
}

int
runner_abort(struct runner *r, struct runner_op *op, const char *why)
{
	(void)r;
	cJSON_Delete(runner_kill(op, "internal", why));
	return op->stored;
}

void
runner_release(struct runner_op *op)
{
	free(op->operation_id);
	free((char *)op->run.path);
	cJSON_free(op->result_text);
	op->operation_id = NULL;
	op->run.path = NULL;
	op->result_text = NULL;
}

static void
runner_start_queued(void *arg)
{
	struct runner *r = arg;
	struct runner_op *op;
	cJSON *body;

	while ((op = r->queued) != NULL) {
		runner_unlink(&r->queued, op);
		body = op->run.state;
		op->run.state = NULL;
		runner_run_handler(op, body);
		cJSON_Delete(body);
	}
}

static void
runner_exit_free(struct runner *r, struct runner_exit *e)
{
	struct runner_exit **ep;

	for (ep = &r->exits; *ep != e; ep = &(*ep)->next)
		;
	*ep = e->next;
	evloop_timer_cancel(&e->timer);
	free(e->result);
	free(e);
}

void
runner_forget_pid(struct runner *r, agent_pid pid)
{
	struct runner_exit *e, *next;

	for (e = r->exits; e != NULL; e = next) {
		next = e->next;
		if (e->pid == pid)
			runner_exit_free(r, e);
	}
}

/* An exit record the database refused; last = one final try at shutdown. */
static void
runner_write_exit(struct runner_exit *e, int last)
{
	struct runner *r = e->r;
	int rc;

	rc = procmgr_exit(&r->pm, e->pid, e->result, e->failed, NULL, NULL);
	if (rc == -1 && r->pm.errtype == PM_E_DATABASE && !last) {
		e->delay = e->delay * 2 > RUNNER_RETRY_MAX ? RUNNER_RETRY_MAX :
		    e->delay * 2;
		evloop_timer_add(r->ctx->loop, &e->timer, clock_mono() +
		    e->delay);
		return;
	}
	if (rc == -1)
		log_warnx("agent process %lld: exit not recorded: %s",
		    (long long)e->pid, r->pm.err);
	else
		log_info("agent process %lld: exit recorded late",
		    (long long)e->pid);
	runner_exit_free(r, e);
}

static void
runner_on_exit_retry(void *arg)
{
	runner_write_exit(arg, 0);
}

void
runner_free(struct runner *r)
{
	struct runner_op *op;

	if (r == NULL)
		return;
	while ((op = r->queued) != NULL) {
		runner_unqueue(r, op);
		cJSON_Delete(runner_kill(op, "internal", "the worker stopped"));
		runner_free_child(op);
	}
	while (r->exits != NULL)
		runner_write_exit(r->exits, 1);
	evloop_timer_cancel(&r->start_queued);
	procmgr_close(&r->pm);
	r->ctx->host = NULL;
	free(r);
}
