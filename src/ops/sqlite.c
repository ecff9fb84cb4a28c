/*
 * ops/sqlite: /api/v1/agent/execute/sqlite — one read-only query on a
 * database named in operations.sqlite.databases.
 *
 * Reading only is enforced in layers, so no single gap lets a write through:
 * the file is opened SQLITE_OPEN_READONLY with query_only on; exactly one
 * statement is accepted and sqlite3_stmt_readonly() must hold for it; an
 * authorizer refuses what a read-only statement can still do to the
 * connection (ATTACH reads other files, PRAGMA assignments change its
 * rules) and every SQL function not on an explicit list (sql_functions:
 * well-known pure scalar, aggregate, window, date and time, math and JSON
 * functions; not load_extension, fts3_tokenizer, which hands out a
 * pointer into the worker, the full-text and R-tree helpers, random(),
 * connection state such as changes() or the library's version, nor any
 * function that is not built in); extensions and unsafe schema functions
 * are switched off as well.
 *
 * The time limit: a progress handler checks the deadline every
 * SQL_PROGRESS_OPS virtual machine steps, but a single step can run long
 * (count(*) walks a whole table in one, PRAGMA integrity_check checks
 * every page in one), so a watchdog thread also interrupts the connection
 * (sqlite3_interrupt, which may be called from another thread) from the
 * deadline on, until the query returns; it is joined before the
 * connection closes, so no thread outlives the call.  A query that
 * completes after its deadline anyway (its last step outran the watchdog)
 * is answered with the same timeout: the limit bounds what is answered.
 *
 * The database is opened for each call and closed before returning: a
 * query is rare next to its cost, and a fresh connection carries no state
 * from one operation into the next.
 *
 * Values: INTEGER is a JSON number within +-2^53 (exact in a double) and a
 * decimal string beyond; REAL a number; TEXT a string (bytes that are not
 * UTF-8 become U+FFFD); BLOB a base64 string; NULL null.  Rows stop at
 * min(body max_rows, operations.sqlite.max_rows), and before the result
 * would exceed half of orchestrator.max_body_bytes; either way "truncated"
 * is true only when rows were left out.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/jsonutil.h"
#include "ops/ops.h"

#define SQL_PROGRESS_OPS	1000	/* VM steps between deadline checks */
#define SQL_SAFE_INT		INT64_C(9007199254740992)	/* 2^53 */
#define SQL_INT64_END		9223372036854775808.0	/* 2^63 */
#define SQL_NUMBER_BYTES	24	/* printed number, upper bound */
#define SQL_NULL_BYTES		4
#define SQL_ESCAPE_BYTES	6	/* "\u001f" */
#define SQL_RESULT_SHARE	2	/* rows take max_body_bytes / this */
#define SQL_INTERRUPT_NS	5000000L	/* interrupts after the deadline */
#define SQL_DENIED_MAX		160

/* The watchdog: interrupts db from deadline on until stopped. */
struct sql_watch {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct timespec at;	/* CLOCK_MONOTONIC: the next interrupt */
	sqlite3 *db;
	bool stop;
	bool running;
	atomic_bool fired;
};

struct sql_query {
	sqlite3 *db;
	sqlite3_stmt *stmt;
	const char *name;
	double deadline;
	bool timed_out;
	const char *denied;	/* what the authorizer refused */
	char denied_buf[SQL_DENIED_MAX];
	size_t budget;		/* bytes of JSON the rows may take */
	struct sql_watch watch;
};

/*
 * The SQL functions a query may call (sqlite3_stricmp): SQLite's own pure
 * ones.  Everything else is refused by the authorizer.
 */
static const char *const sql_functions[] = {
	/* core scalar */
	"abs", "char", "coalesce", "format", "glob", "hex", "ifnull", "iif",
	"instr", "length", "like", "likelihood", "likely", "lower", "ltrim",
	"max", "min", "nullif", "printf", "quote", "replace", "round",
	"rtrim", "sign", "soundex", "substr", "substring", "trim", "typeof",
	"unicode", "unlikely", "upper", "zeroblob",
	/* aggregate */
	"avg", "count", "group_concat", "sum", "total",
	/* window */
	"row_number", "rank", "dense_rank", "percent_rank", "cume_dist",
	"ntile", "lag", "lead", "first_value", "last_value", "nth_value",
	/* date and time */
	"date", "time", "datetime", "julianday", "unixepoch", "strftime",
	"current_date", "current_time", "current_timestamp",
	/* math */
	"acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil",
	"ceiling", "cos", "cosh", "degrees", "exp", "floor", "ln", "log",
	"log10", "log2", "mod", "pi", "pow", "power", "radians", "sin",
	"sinh", "sqrt", "tan", "tanh", "trunc",
	/* JSON */
	"json", "json_array", "json_array_length", "json_extract",
	"json_insert", "json_object", "json_patch", "json_quote",
	"json_remove", "json_replace", "json_set", "json_type", "json_valid",
	"json_group_array", "json_group_object", "->", "->>",
	NULL
};

static bool
sql_function_allowed(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && sql_functions[i] != NULL; i++)
		if (sqlite3_stricmp(name, sql_functions[i]) == 0)
			return true;
	return false;
}

static void
sql_timespec_add(struct timespec *t, double s)
{
	long ns;

	if (s < 0)
		s = 0;
	t->tv_sec += (time_t)s;
	ns = t->tv_nsec + (long)((s - (double)(time_t)s) * 1e9);
	t->tv_sec += ns / 1000000000L;
	t->tv_nsec = ns % 1000000000L;
}

static void *
sql_watch_run(void *arg)
{
	struct sql_watch *w = arg;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (pthread_cond_timedwait(&w->cond, &w->lock, &w->at) !=
		    ETIMEDOUT || w->stop)
			continue;
		/* Again and again: one outside a statement is forgotten. */
		atomic_store(&w->fired, true);
		sqlite3_interrupt(w->db);
		sql_timespec_add(&w->at, SQL_INTERRUPT_NS / 1e9);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Start interrupting q->db at q->deadline; 0 or -1. */
static int
sql_watch_start(struct sql_query *q)
{
	struct sql_watch *w = &q->watch;
	pthread_condattr_t attr;
	int rc;

	w->db = q->db;
	w->stop = false;
	atomic_init(&w->fired, false);
	clock_gettime(CLOCK_MONOTONIC, &w->at);
	sql_timespec_add(&w->at, q->deadline - clock_mono());
	if (pthread_condattr_init(&attr) != 0)
		return -1;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&w->cond, &attr) != 0 ? -1 : 0;
	pthread_condattr_destroy(&attr);
	if (rc == -1)
		return -1;
	if (pthread_mutex_init(&w->lock, NULL) != 0) {
		pthread_cond_destroy(&w->cond);
		return -1;
	}
	if (pthread_create(&w->thread, NULL, sql_watch_run, w) != 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		return -1;
	}
	w->running = true;
	return 0;
}

/* Stop the watchdog (if running) and wait for it: db may then close. */
static void
sql_watch_stop(struct sql_query *q)
{
	struct sql_watch *w = &q->watch;

	if (!w->running)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	w->running = false;
}

/* Whether the deadline ended the query (progress handler or watchdog). */
static bool
sql_timed_out(struct sql_query *q)
{
	return q->timed_out || (q->watch.running &&
	    atomic_load(&q->watch.fired));
}

static int
sql_progress(void *arg)
{
	struct sql_query *q = arg;

	if (clock_mono() < q->deadline)
		return 0;
	q->timed_out = true;
	return 1;		/* interrupts the statement */
}

/* Pragmas that take an argument and still only read. */
static bool
sql_pragma_reads(const char *name)
{
	static const char *const reads[] = {
		"table_info", "table_xinfo", "index_info", "index_xinfo",
		"index_list", "foreign_key_list", "foreign_key_check",
		"integrity_check", "quick_check", NULL
	};
	size_t i;

	for (i = 0; reads[i] != NULL; i++)
		if (sqlite3_stricmp(name, reads[i]) == 0)
			return true;
	return false;
}

static int
sql_authorize(void *arg, int action, const char *a1, const char *a2,
    const char *db, const char *trigger)
{
	struct sql_query *q = arg;

	(void)db;
	(void)trigger;
	switch (action) {
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		q->denied = action == SQLITE_ATTACH ? "ATTACH" : "DETACH";
		return SQLITE_DENY;
	case SQLITE_PRAGMA:
		if (a2 == NULL || sql_pragma_reads(a1))
			return SQLITE_OK;
		q->denied = "setting a PRAGMA";
		return SQLITE_DENY;
	case SQLITE_FUNCTION:
		if (sql_function_allowed(a2))
			return SQLITE_OK;
		snprintf(q->denied_buf, sizeof(q->denied_buf), "SQL function "
		    "%.40s() is not authorized: it is not on the sqlite "
		    "handler's list of functions", a2 ? a2 : "?");
		q->denied = q->denied_buf;
		return SQLITE_DENY;
	default:
		return SQLITE_OK;
	}
}

/* An error result for rc, from sqlite's message or what caused it. */
static cJSON *
sql_error(struct sql_query *q, int rc)
{
	const char *msg = q->db != NULL ? sqlite3_errmsg(q->db) :
	    sqlite3_errstr(rc);

	if (sql_timed_out(q))
		return ops_error("timeout", "query on %s ran longer than its "
		    "time limit", q->name);
	switch (rc & 0xff) {
	case SQLITE_AUTH:
		if (q->denied == q->denied_buf)	/* a whole sentence */
			return ops_error("invalid_request", "%s", q->denied);
		return ops_error("invalid_request", "%s is not allowed",
		    q->denied != NULL ? q->denied : msg);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return ops_error("timeout", "%s: %s", q->name, msg);
	case SQLITE_TOOBIG:
		return ops_error("limit_exceeded", "%s: %s", q->name, msg);
	case SQLITE_NOMEM:
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_PROTOCOL:
		return ops_error("internal", "%s: %s", q->name, msg);
	default:
		return ops_error("invalid_request", "%s", msg);
	}
}

static int
sql_open(struct sql_query *q, const char *path,
    const struct egressd_config *cfg)
{
	double timeout = cfg->operations.sqlite.timeout;
	int rc, limit;

	q->deadline = clock_mono() + timeout;
	rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0,
	    NULL);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_limit(q->db, SQLITE_LIMIT_ATTACHED, 0);
	/* No single value may be larger than the whole result can be. */
	limit = q->budget < (size_t)INT32_MAX ? (int)q->budget : INT32_MAX;
	if (limit < sqlite3_limit(q->db, SQLITE_LIMIT_LENGTH, -1))
		sqlite3_limit(q->db, SQLITE_LIMIT_LENGTH, limit);
	sqlite3_busy_timeout(q->db, (int)(timeout * 1000));
	if ((rc = sqlite3_exec(q->db, "PRAGMA query_only = ON", NULL, NULL,
	    NULL)) != SQLITE_OK)
		return rc;
	sqlite3_progress_handler(q->db, SQL_PROGRESS_OPS, sql_progress, q);
	sqlite3_set_authorizer(q->db, sql_authorize, q);
	if (sql_watch_start(q) == -1)
		return SQLITE_NOMEM;
	return SQLITE_OK;
}

/* Whether only blanks, comments and empty statements are left. */
static bool
sql_tail_empty(const char *s)
{
	while (*s != '\0') {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' ||
		    *s == '\f' || *s == '\v' || *s == ';')
			s++;
		else if (s[0] == '-' && s[1] == '-')
			s += strcspn(s, "\n");
		else if (s[0] == '/' && s[1] == '*') {
			/* An unclosed comment runs to the end, as in SQLite. */
			s = strstr(s + 2, "*/");
			if (s == NULL)
				return true;
			s += 2;
		} else
			return false;
	}
	return true;
}

static cJSON *
sql_prepare(struct sql_query *q, const char *sql)
{
	const char *tail = NULL;
	int rc;

	rc = sqlite3_prepare_v2(q->db, sql, -1, &q->stmt, &tail);
	if (rc != SQLITE_OK)
		return sql_error(q, rc);
	if (q->stmt == NULL)
		return ops_error("invalid_request", "sql holds no statement");
	if (tail != NULL && !sql_tail_empty(tail))
		return ops_error("invalid_request", "sql must be one statement "
		    "(more follows: %.40s)", tail);
	if (!sqlite3_stmt_readonly(q->stmt))
		return ops_error("invalid_request", "write statements are not "
		    "allowed");
	return NULL;
}

/* Whether n is an integer within int64_t (NaN is not). */
static bool
sql_integral(double n)
{
	return n >= -SQL_INT64_END && n < SQL_INT64_END &&
	    n == (double)(int64_t)n;
}

static int
sql_bind_one(sqlite3_stmt *st, int idx, const cJSON *v)
{
	if (cJSON_IsNull(v))
		return sqlite3_bind_null(st, idx);
	if (cJSON_IsBool(v))
		return sqlite3_bind_int(st, idx, cJSON_IsTrue(v));
	if (cJSON_IsNumber(v) && sql_integral(v->valuedouble))
		return sqlite3_bind_int64(st, idx, (int64_t)v->valuedouble);
	if (cJSON_IsNumber(v))
		return sqlite3_bind_double(st, idx, v->valuedouble);
	/* The body outlives the statement: no copy needed. */
	return sqlite3_bind_text(st, idx, v->valuestring, -1, SQLITE_STATIC);
}

static cJSON *
sql_bind(struct sql_query *q, const cJSON *params)
{
	int want = sqlite3_bind_parameter_count(q->stmt), n = 0, rc;
	const cJSON *v;

	if (params != NULL && !cJSON_IsNull(params) && !cJSON_IsArray(params))
		return ops_error("invalid_request", "params must be an array");
	cJSON_ArrayForEach(v, params) {
		if (!cJSON_IsNull(v) && !cJSON_IsBool(v) &&
		    !cJSON_IsNumber(v) && !cJSON_IsString(v))
			return ops_error("invalid_request", "params[%d] must "
			    "be null, a boolean, a number or a string", n);
		n++;
	}
	if (n != want)
		return ops_error("invalid_request", "the statement takes %d "
		    "parameter%s, params holds %d", want, want == 1 ? "" : "s",
		    n);
	n = 0;
	cJSON_ArrayForEach(v, params) {
		if ((rc = sql_bind_one(q->stmt, ++n, v)) != SQLITE_OK)
			return sql_error(q, rc);
	}
	return NULL;
}

/* Bytes text takes in JSON, escapes included. */
static size_t
sql_text_size(const unsigned char *s, size_t len)
{
	size_t i, n = 2;

	for (i = 0; i < len; i++)
		n += s[i] < 0x20 || s[i] == '"' || s[i] == '\\' ?
		    SQL_ESCAPE_BYTES : 1;
	return n;
}

static size_t
sql_row_size(sqlite3_stmt *st, int ncols)
{
	size_t n = 2, len;
	int i;

	for (i = 0; i < ncols; i++) {
		n++;		/* the comma */
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
		case SQLITE_FLOAT:
			n += SQL_NUMBER_BYTES;
			break;
		case SQLITE_TEXT:
			len = (size_t)sqlite3_column_bytes(st, i);
			n += sql_text_size(sqlite3_column_text(st, i), len);
			break;
		case SQLITE_BLOB:
			len = (size_t)sqlite3_column_bytes(st, i);
			n += (len + 2) / 3 * 4 + 2;
			break;
		default:
			n += SQL_NULL_BYTES;
		}
	}
	return n;
}

static cJSON *
sql_value(sqlite3_stmt *st, int i)
{
	char num[32];
	int64_t v;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		v = sqlite3_column_int64(st, i);
		if (v >= -SQL_SAFE_INT && v <= SQL_SAFE_INT)
			return cJSON_CreateNumber((double)v);
		snprintf(num, sizeof(num), "%" PRId64, v);
		return cJSON_CreateString(num);
	case SQLITE_FLOAT:
		return cJSON_CreateNumber(sqlite3_column_double(st, i));
	case SQLITE_TEXT:
		return json_text((const char *)sqlite3_column_text(st, i),
		    (size_t)sqlite3_column_bytes(st, i));
	case SQLITE_BLOB:
		return json_base64(sqlite3_column_blob(st, i),
		    (size_t)sqlite3_column_bytes(st, i));
	default:
		return cJSON_CreateNull();
	}
}

static cJSON *
sql_row(sqlite3_stmt *st, int ncols)
{
	cJSON *row, *v;
	int i;

	if ((row = cJSON_CreateArray()) == NULL)
		return NULL;
	for (i = 0; i < ncols; i++) {
		if ((v = sql_value(st, i)) == NULL ||
		    !cJSON_AddItemToArray(row, v)) {
			cJSON_Delete(v);
			cJSON_Delete(row);
			return NULL;
		}
	}
	return row;
}

static cJSON *
sql_columns(sqlite3_stmt *st, int ncols, size_t *used)
{
	const char *name;
	cJSON *cols, *v;
	int i;

	if ((cols = cJSON_CreateArray()) == NULL)
		return NULL;
	for (i = 0; i < ncols; i++) {
		if ((name = sqlite3_column_name(st, i)) == NULL ||
		    (v = json_text(name, strlen(name))) == NULL ||
		    !cJSON_AddItemToArray(cols, v)) {
			cJSON_Delete(cols);
			return NULL;
		}
		*used += sql_text_size((const unsigned char *)name,
		    strlen(name)) + 1;
	}
	return cols;
}

/* Step through the rows into out; NULL or an error result. */
static cJSON *
sql_rows(struct sql_query *q, int64_t cap, cJSON *out)
{
	int ncols = sqlite3_column_count(q->stmt), rc;
	cJSON *cols, *rows, *row;
	size_t used = 0, size;
	int64_t n = 0;
	bool truncated = false;

	if ((cols = sql_columns(q->stmt, ncols, &used)) == NULL ||
	    !cJSON_AddItemToObject(out, "columns", cols) ||
	    (rows = cJSON_AddArrayToObject(out, "rows")) == NULL)
		return ops_error("internal", "out of memory");
	while ((rc = sqlite3_step(q->stmt)) == SQLITE_ROW) {
		size = sql_row_size(q->stmt, ncols);
		if (n == cap || used + size > q->budget) {
			truncated = true;
			break;
		}
		if ((row = sql_row(q->stmt, ncols)) == NULL ||
		    !cJSON_AddItemToArray(rows, row)) {
			cJSON_Delete(row);
			return ops_error("internal", "out of memory");
		}
		used += size;
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sql_error(q, rc);
	/*
	 * The limit bounds what is answered: a last step that outran the
	 * watchdog (its thread not scheduled in time on a busy machine)
	 * still ends in the timeout it would have had.
	 */
	if (clock_mono() >= q->deadline) {
		q->timed_out = true;
		return sql_error(q, SQLITE_INTERRUPT);
	}
	if (cJSON_AddBoolToObject(out, "truncated", truncated) == NULL)
		return ops_error("internal", "out of memory");
	return NULL;
}

static const struct config_sqlite_db *
sql_find_db(const struct egressd_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; cfg != NULL && i < cfg->operations.sqlite.count; i++)
		if (strcmp(cfg->operations.sqlite.databases[i].name, name) == 0)
			return &cfg->operations.sqlite.databases[i];
	return NULL;
}

/* The row cap: the body's max_rows within the configured one. */
static cJSON *
sql_cap(const cJSON *body, const struct egressd_config *cfg, int64_t *cap)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "max_rows");

	*cap = cfg->operations.sqlite.max_rows;
	if (m == NULL || cJSON_IsNull(m))
		return NULL;
	if (!cJSON_IsNumber(m) || !sql_integral(m->valuedouble) ||
	    m->valuedouble < 0)
		return ops_error("invalid_request", "max_rows must be a "
		    "non-negative integer");
	if ((int64_t)m->valuedouble < *cap)
		*cap = (int64_t)m->valuedouble;
	return NULL;
}

static cJSON *
sql_query_run(struct sql_query *q, const struct config_sqlite_db *db,
    const struct egressd_config *cfg, const cJSON *body, int64_t cap)
{
	cJSON *err, *out;
	int rc;

	q->budget = (size_t)(cfg->orchestrator.max_body_bytes /
	    SQL_RESULT_SHARE);
	if ((rc = sql_open(q, db->path, cfg)) != SQLITE_OK)
		return ops_error("internal", "database %s: cannot open: %s",
		    db->name, q->db != NULL ? sqlite3_errmsg(q->db) :
		    sqlite3_errstr(rc));
	if ((err = sql_prepare(q, json_string(body, "sql"))) != NULL ||
	    (err = sql_bind(q, cJSON_GetObjectItemCaseSensitive(body,
	    "params"))) != NULL)
		return err;
	if ((out = cJSON_CreateObject()) == NULL)
		return ops_error("internal", "out of memory");
	if ((err = sql_rows(q, cap, out)) != NULL) {
		cJSON_Delete(out);
		return err;
	}
	return out;
}

enum ops_status
op_sqlite(struct op_run *run, const cJSON *body, cJSON **result)
{
	const struct egressd_config *cfg = run->ctx ? run->ctx->cfg : NULL;
	const struct config_sqlite_db *db;
	struct sql_query q = { 0 };
	const char *name = json_string(body, "database");
	char resource[256];
	int64_t cap;

	if (name == NULL || json_string(body, "sql") == NULL) {
		*result = ops_error("invalid_request", "body needs "
		    "\"database\" and \"sql\" strings");
		return OPS_DONE;
	}
	if ((db = sql_find_db(cfg, name)) == NULL) {
		*result = ops_error("not_found", "no database named %.100s "
		    "in operations.sqlite.databases", name);
		return OPS_DONE;
	}
	if ((*result = sql_cap(body, cfg, &cap)) != NULL)
		return OPS_DONE;
	snprintf(resource, sizeof(resource), "sqlite:%s", db->name);
	if (ops_check(run, resource, "read", result) == -1)
		return OPS_DONE;
	q.name = db->name;
	*result = sql_query_run(&q, db, cfg, body, cap);
	sql_watch_stop(&q);
	sqlite3_finalize(q.stmt);
	sqlite3_close(q.db);
	return OPS_DONE;
}
