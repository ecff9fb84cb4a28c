/* testutil: what the unit tests share (see testutil.h). */
#include "testutil.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/evloop.h"
#include "core/httpc.h"
#include "core/jsonutil.h"
#include "procmgr/store.h"

#define TU_BODY_MAX (16 * 1024 * 1024)	/* orchestrator.max_body_bytes */

/* Files and directories. */

char *
tu_mkdtemp(char *buf, size_t len, const char *name)
{
	if ((size_t)snprintf(buf, len, "/tmp/egressd-%s-XXXXXX", name) >=
	    len) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return mkdtemp(buf);
}

int
tu_remove_tree(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat sb;
	int rc = 0;
	DIR *d;

	(void)chmod(dir, 0700);
	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		    e->d_name) >= sizeof(path))
			rc = -1;
		else if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (tu_remove_tree(path) == -1)
				rc = -1;
		} else if (unlink(path) == -1)
			rc = -1;
	}
	closedir(d);
	if (rmdir(dir) == -1)
		rc = -1;
	return rc;
}

int
tu_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		fail_msg("%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

void
tu_write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

char *
tu_read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	size_t n = 0, size = 4096;
	char *buf;

	if (fp == NULL) {
		if (errno != ENOENT)
			fail_msg("%s: %s", path, strerror(errno));
		return NULL;
	}
	assert_non_null(buf = malloc(size));
	for (;;) {
		n += fread(buf + n, 1, size - n - 1, fp);
		if (n < size - 1)
			break;
		size *= 2;
		assert_non_null(buf = realloc(buf, size));
	}
	assert_false(ferror(fp));
	fclose(fp);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

void
tu_assert_file(const char *path, const char *want)
{
	size_t len;
	char *now = tu_read_file(path, &len);

	if (now == NULL)
		fail_msg("%s does not exist", path);
	assert_string_equal(now, want);
	assert_int_equal(len, strlen(want));
	free(now);
}

/* Processes. */

int
tu_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

void
tu_assert_no_children(void)
{
	int status;

	assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* Configuration. */

void
tu_config(struct egressd_config *cfg, const char *text)
{
	char err[CONFIG_ERR_MAX];

	if (config_load_string(cfg, text, "t.conf", "/", err,
	    sizeof(err)) != 0)
		fail_msg("config: %s", err);
}

/* Results of operations. */

const char *
tu_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v))
		fail_msg("no string %s in %s", key, cJSON_PrintUnformatted(o));
	return v->valuestring;
}

bool
tu_is_error(const cJSON *r, const char *type, const char *needle)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "error_type");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");

	return ops_is_error(r) && cJSON_IsString(t) && cJSON_IsString(e) &&
	    strcmp(t->valuestring, type) == 0 &&
	    (needle == NULL || strstr(e->valuestring, needle) != NULL);
}

void
tu_assert_error(const cJSON *r, const char *type, const char *needle)
{
	if (!tu_is_error(r, type, needle))
		fail_msg("want %s containing \"%s\", got %s", type,
		    needle != NULL ? needle : "", cJSON_PrintUnformatted(r));
}

/* The fake host. */

static int
tu_host_check(struct op_run *run, const char *resource, const char *right,
    cJSON **error)
{
	struct tu_host *h = run->ctx->host->arg;
	size_t used = strlen(h->checked);

	h->checks++;
	snprintf(h->resource, sizeof(h->resource), "%s", resource);
	snprintf(h->right, sizeof(h->right), "%s", right);
	snprintf(h->checked + used, sizeof(h->checked) - used, "%s ",
	    resource);
	if (h->want_right != NULL)
		assert_string_equal(right, h->want_right);
	if (h->deny_all ||
	    (h->deny_resource != NULL &&
	    strcmp(resource, h->deny_resource) == 0) ||
	    (h->deny_right != NULL && strcmp(right, h->deny_right) == 0)) {
		*error = ops_error("capability_denied", "no %s on %s", right,
		    resource);
		return -1;
	}
	return 0;
}

static int
tu_host_reload(struct op_run *run)
{
	struct tu_host *h = run->ctx->host->arg;

	h->reloads++;
	return h->reload_rc;
}

void
tu_host_init(struct tu_host *h)
{
	memset(h, 0, sizeof(*h));
	h->host.check = tu_host_check;
	h->host.request_reload = tu_host_reload;
	h->host.arg = h;
}

/* Runs. */

static void
tu_run_done(struct op_run *run, cJSON *result)
{
	struct tu_run *r = run->arg;

	r->done_calls++;
	cJSON_Delete(r->result);
	r->result = result;
}

void
tu_run_init(struct tu_run *r, const struct op_context *ctx)
{
	memset(r, 0, sizeof(*r));
	r->run.ctx = ctx;
	r->run.done = tu_run_done;
	r->run.arg = r;
}

void
tu_run_free(struct tu_run *r)
{
	cJSON_Delete(r->result);
	r->result = NULL;
}

/* A body read as the worker reads one (limits, strings with \u0000). */
static cJSON *
tu_parse(const char *body_json)
{
	char err[128];
	cJSON *body;

	if (body_json == NULL)
		return NULL;
	if ((body = json_parse_limited(body_json, strlen(body_json),
	    TU_BODY_MAX, err, sizeof(err))) == NULL)
		fail_msg("not JSON (%s): %s", err, body_json);
	return body;
}

enum ops_status
tu_start(struct tu_run *r, const char *path, const char *body_json)
{
	cJSON *body = tu_parse(body_json), *result = NULL;
	enum ops_status st;

	tu_run_free(r);
	r->done_calls = 0;
	st = dispatch_start(&r->run, path, body, &result);
	cJSON_Delete(body);
	if (st == OPS_DONE) {
		assert_non_null(result);
		r->result = result;
	} else
		assert_null(result);
	return st;
}

void
tu_wait(struct tu_run *r, double limit)
{
	struct evloop *loop = r->run.ctx->loop;
	double deadline = clock_mono() + limit;

	assert_non_null(loop);
	/* The loop's timers (libcurl's among them) bound each poll. */
	while (r->done_calls == 0 && clock_mono() < deadline)
		assert_true(evloop_run_once(loop, 100) >= 0);
	assert_int_equal(r->done_calls, 1);
	/* Exactly once: nothing of the run is left on the loop. */
	assert_int_equal(evloop_run_once(loop, 0), 0);
	assert_int_equal(r->done_calls, 1);
	assert_null(r->run.cancel);
	assert_non_null(r->result);
}

const cJSON *
tu_run_op(struct tu_run *r, const char *path, const char *body_json,
    double limit)
{
	if (tu_start(r, path, body_json) == OPS_PENDING)
		tu_wait(r, limit);
	assert_non_null(r->result);
	return r->result;
}

cJSON *
tu_call(op_handler handler, struct op_run *run, const char *body_json)
{
	cJSON *body = tu_parse(body_json), *result = NULL;

	assert_int_equal(handler(run, body, &result), OPS_DONE);
	cJSON_Delete(body);
	assert_non_null(result);
	return result;
}

/* Databases. */

int
tu_store_open(struct store *st, const char *dir, double busy_timeout,
    bool migrate)
{
	char err[512];

	if (store_open(st, dir, SYNC_NORMAL, busy_timeout, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "store_open %s: %s\n", dir, err);
		return -1;
	}
	if (migrate && store_migrate(st, err, sizeof(err)) == -1) {
		fprintf(stderr, "store_migrate %s: %s\n", dir, err);
		store_close(st);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *tu_prepare(sqlite3 *db, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static sqlite3_stmt *
tu_prepare(sqlite3 *db, const char *fmt, va_list ap)
{
	char sql[1024];
	sqlite3_stmt *s;

	vsnprintf(sql, sizeof(sql), fmt, ap);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	return s;
}

int64_t
tu_query_int(sqlite3 *db, const char *fmt, ...)
{
	sqlite3_stmt *s;
	int64_t v = -1;
	va_list ap;

	va_start(ap, fmt);
	s = tu_prepare(db, fmt, ap);
	va_end(ap);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

const char *
tu_query_text(sqlite3 *db, const char *fmt, ...)
{
	static char out[1024];
	const unsigned char *t;
	sqlite3_stmt *s;
	va_list ap;

	va_start(ap, fmt);
	s = tu_prepare(db, fmt, ap);
	va_end(ap);
	snprintf(out, sizeof(out), "(none)");
	if (sqlite3_step(s) == SQLITE_ROW) {
		t = sqlite3_column_text(s, 0);
		snprintf(out, sizeof(out), "%s", t ? (const char *)t : "");
	}
	sqlite3_finalize(s);
	return out;
}

void
tu_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

struct tu_pm *
tu_pm_new(const char *tag, const char *instance)
{
	struct tu_pm *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	if (tu_mkdtemp(f->dir, sizeof(f->dir), tag) == NULL ||
	    config_init_defaults(&f->cfg) == -1 ||
	    tu_store_open(&f->st, f->dir, 5.0, true) == -1) {
		free(f);
		return NULL;
	}
	procmgr_init(&f->pm, &f->st, instance, &f->cfg);
	return f;
}

void
tu_pm_free(struct tu_pm *f)
{
	procmgr_close(&f->pm);
	store_close(&f->st);
	tu_remove_tree(f->dir);
	config_free(&f->cfg);
	free(f);
}

void
tu_pm_refused(const struct procmgr *pm, int rc, enum pm_error type,
    const char *msg)
{
	assert_int_equal(rc, -1);
	if (pm->errtype != type)
		fail_msg("errtype %d, want %d: %s", pm->errtype, type,
		    pm->err);
	if (msg != NULL && strstr(pm->err, msg) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", pm->err, msg);
}
