/* ctldb: egressctl ps, inspect, audit and the database summary of status
 * (see include/ctl/ctldb.h). */
#define _XOPEN_SOURCE 700	/* strptime */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/escape.h"
#include "ctl/ctldb.h"
#include "procmgr/store.h"

#define CTLDB_EXIT_NOT_FOUND 1
#define CTLDB_EXIT_ERROR 2
#define CTLDB_PS_ROOTS 200	/* ps --all: most recent operations shown */
#define CTLDB_AUDIT_LIMIT 1000	/* audit rows printed unless --limit */
#define CTLDB_EVENTS "50"	/* inspect: most recent events */
#define CTLDB_TEXT_MAX 4096	/* one escaped column of ps or audit */

struct ctldb_opts {
	int all;
	long worker;		/* 0 = any */
	long long pid;		/* 0 = any */
	double since;		/* 0 = no bound */
	long limit;
	int json;
};

int
ctldb_handles(const char *cmd)
{
	return strcmp(cmd, CTLDB_CMD_PS) == 0 ||
	    strcmp(cmd, CTLDB_CMD_INSPECT) == 0 ||
	    strcmp(cmd, CTLDB_CMD_AUDIT) == 0;
}

int
ctldb_parse_since(const char *text, double now, double *out)
{
	static const struct { char unit; double secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
	struct tm tm;
	char *end;
	double v;
	size_t i;

	memset(&tm, 0, sizeof(tm));
	end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end != NULL && *end == '\0') {
		*out = (double)timegm(&tm);
		return 0;
	}
	errno = 0;
	v = strtod(text, &end);
	if (end == text || errno != 0 || v < 0)
		return -1;
	if (*end == '\0') {
		*out = v;
		return 0;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (end[0] == units[i].unit && end[1] == '\0') {
			*out = now - v * units[i].secs;
			return 0;
		}
	return -1;
}

/*
 * The database files of one state directory on one read-only connection:
 * file 1 (egressd.db) as main, file N > 1 (egressd-N.db) attached as fN
 * (procmgr/store.h).  A query is written once, with {db} where a table's
 * schema goes and {n} where the file's number does, and run on one file
 * (ctldb_one) or on each, joined by UNION ALL (ctldb_each).  Not views
 * of the files' union: oid, view_id, cap_id and the event and audit ids
 * are a file's own, so a join must stay in one file, and each file's
 * most recent rows are found through its own index before the files'
 * are merged by time.  Agent pids are unique across the files (each
 * file's start past its span), and a process, its children, objects,
 * views, capabilities and events live in one file.
 */
struct ctldb {
	sqlite3 *db;
	int count;
	int number[CONFIG_STORE_FILES_MAX];	/* 1-based, ascending */
};

static void
ctldb_schema(int number, char *buf, size_t len)
{
	if (number == 1)
		snprintf(buf, len, "main");
	else
		snprintf(buf, len, "f%d", number);
}

static void
ctldb_expand(sqlite3_str *out, int number, const char *tmpl)
{
	char schema[16];
	const char *p;

	ctldb_schema(number, schema, sizeof(schema));
	for (p = tmpl; *p != '\0'; p++)
		if (strncmp(p, "{db}", 4) == 0) {
			sqlite3_str_appendall(out, schema);
			p += 3;
		} else if (strncmp(p, "{n}", 3) == 0) {
			sqlite3_str_appendf(out, "%d", number);
			p += 2;
		} else
			sqlite3_str_appendchar(out, 1, *p);
}

/* tmpl for file number; sqlite3_free it (NULL when out of memory). */
static char *
ctldb_one(int number, const char *tmpl)
{
	sqlite3_str *out = sqlite3_str_new(NULL);

	ctldb_expand(out, number, tmpl);
	return sqlite3_str_finish(out);
}

/*
 * tmpl for each file, each in a subquery of its own (so it may have its
 * own ORDER BY and LIMIT: a file's rows are found by its indexes), joined
 * by UNION ALL; sqlite3_free it (NULL when out of memory).
 */
static char *
ctldb_each(const struct ctldb *c, const char *tmpl)
{
	sqlite3_str *out = sqlite3_str_new(NULL);
	int i;

	for (i = 0; i < c->count; i++) {
		sqlite3_str_appendall(out, i == 0 ? "SELECT * FROM (" :
		    " UNION ALL SELECT * FROM (");
		ctldb_expand(out, c->number[i], tmpl);
		sqlite3_str_appendchar(out, 1, ')');
	}
	return sqlite3_str_finish(out);
}

/* path as an SQLite URI with query; its %, ? and # escaped (RFC 3986). */
static char *
ctldb_uri(const char *path, const char *query)
{
	sqlite3_str *out = sqlite3_str_new(NULL);
	const char *p;

	sqlite3_str_appendall(out, path[0] == '/' ? "file://" : "file:");
	for (p = path; *p != '\0'; p++)
		if (*p == '%' || *p == '?' || *p == '#')
			sqlite3_str_appendf(out, "%%%02X", (unsigned char)*p);
		else
			sqlite3_str_appendchar(out, 1, *p);
	sqlite3_str_appendf(out, "?%s", query);
	return sqlite3_str_finish(out);
}

/* uri as file number: the connection for file 1, attached for others. */
static int
ctldb_attach_uri(struct ctldb *c, int number, const char *uri)
{
	char schema[16], *sql;
	int rc;

	if (number == 1)
		return sqlite3_open_v2(uri, &c->db, SQLITE_OPEN_READONLY |
		    SQLITE_OPEN_URI, NULL);
	ctldb_schema(number, schema, sizeof(schema));
	if ((sql = sqlite3_mprintf("ATTACH %Q AS %s", uri, schema)) == NULL)
		return SQLITE_NOMEM;
	rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	sqlite3_free(sql);
	return rc;
}

static void
ctldb_detach(struct ctldb *c, int number)
{
	char schema[16], sql[32];

	if (number == 1) {
		sqlite3_close(c->db);
		c->db = NULL;
		return;
	}
	ctldb_schema(number, schema, sizeof(schema));
	snprintf(sql, sizeof(sql), "DETACH %s", schema);
	sqlite3_exec(c->db, sql, NULL, NULL, NULL);
}

/*
 * Read-only (ATTACH keeps the connection's SQLITE_OPEN_READONLY); a
 * stopped daemon may have left no -shm file and a directory we cannot
 * write, so fall back to reading the file as immutable.
 */
static int
ctldb_attach(struct ctldb *c, int number, const char *path)
{
	static const char *const modes[] = { "mode=ro", "immutable=1" };
	char err[512] = "out of memory", check[64], schema[16], *uri;
	size_t i;
	int rc;

	ctldb_schema(number, schema, sizeof(schema));
	snprintf(check, sizeof(check), "SELECT 1 FROM %s.processes LIMIT 1",
	    schema);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		uri = ctldb_uri(path, modes[i]);
		rc = uri == NULL ? SQLITE_NOMEM :
		    ctldb_attach_uri(c, number, uri);
		sqlite3_free(uri);
		if (rc == SQLITE_OK && sqlite3_exec(c->db, check, NULL, NULL,
		    NULL) == SQLITE_OK) {
			c->number[c->count++] = number;
			return 0;
		}
		if (c->db != NULL)
			snprintf(err, sizeof(err), "%s", sqlite3_errmsg(c->db));
		ctldb_detach(c, number);
	}
	fprintf(stderr, "egressctl: database %s: %s\n", path, err);
	return -1;
}

static int
ctldb_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 || (errno != ENOENT && errno != ENOTDIR);
}

/*
 * Every database file of state_dir there is, whatever store.files says
 * now (a file it no longer names still holds history).  One that exists
 * but cannot be read fails the whole, named on stderr: rows silently
 * missing would mislead.
 */
static int
ctldb_open(struct ctldb *c, const char *state_dir)
{
	char path[CONFIG_STORE_FILES_MAX][PATH_MAX];
	int have[CONFIG_STORE_FILES_MAX], i, other = 0;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < CONFIG_STORE_FILES_MAX; i++) {
		if (store_file_path(state_dir, i, path[i], PATH_MAX) == -1) {
			fprintf(stderr, "egressctl: state directory %s: "
			    "path too long\n", state_dir);
			return -1;
		}
		have[i] = ctldb_exists(path[i]);
		if (i > 0 && have[i] && other == 0)
			other = i;
	}
	if (!have[0] && other > 0) {
		fprintf(stderr, "egressctl: database %s: no such file, yet "
		    "%s exists (egressd.db is every state directory's first "
		    "file)\n", path[0], path[other]);
		return -1;
	}
	if (ctldb_attach(c, 1, path[0]) == -1)
		return -1;
	for (i = 1; i < CONFIG_STORE_FILES_MAX; i++)
		if (have[i] && ctldb_attach(c, i + 1, path[i]) == -1) {
			sqlite3_close(c->db);
			return -1;
		}
	return 0;
}

static sqlite3_stmt *
ctldb_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sql == NULL) {
		fprintf(stderr, "egressctl: out of memory\n");
		return NULL;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "egressctl: database: %s\n",
		    sqlite3_errmsg(db));
		return NULL;
	}
	return s;
}

/* ctldb_prepare, then sqlite3_free(sql). */
static sqlite3_stmt *
ctldb_prepare_free(sqlite3 *db, char *sql)
{
	sqlite3_stmt *s = ctldb_prepare(db, sql);

	sqlite3_free(sql);
	return s;
}

static const char *
ctldb_text(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t ? (const char *)t : "";
}

/* Column col as text for a terminal (escape.h), in buf. */
static const char *
ctldb_text_esc(sqlite3_stmt *s, int col, char *buf, size_t len)
{
	return escape_text(buf, len, ctldb_text(s, col), 0);
}

static void
ctldb_age(double secs, char *buf, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(buf, len, "%.1fs", secs);
	else if (secs < 7200)
		snprintf(buf, len, "%.0fm", secs / 60);
	else if (secs < 172800)
		snprintf(buf, len, "%.0fh", secs / 3600);
	else
		snprintf(buf, len, "%.0fd", secs / 86400);
}

static void
ctldb_time(double t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ps: a tree by parent. */

#define CTLDB_PS_COLS "pid, parent_pid, status, image, created_at, " \
	"ended_at, tool_calls, max_tool_calls, child_processes, " \
	"max_child_processes, operation_id"
#define CTLDB_PS_FILE 11	/* after CTLDB_PS_COLS: the file's number */

#define CTLDB_PS_PID_WIDTH 8	/* at least; a file past the first has 13 */

/* What every row of one ps shares. */
struct ctldb_ps {
	const struct ctldb *c;
	double now;
	int width;		/* of the pid columns: the largest pid's */
};

static void
ctldb_ps_row(const struct ctldb_ps *ps, sqlite3_stmt *s, int depth)
{
	char age[32], budget[64], status[64], image[CTLDB_TEXT_MAX];
	double end = sqlite3_column_type(s, 5) == SQLITE_NULL ? ps->now :
	    sqlite3_column_double(s, 5);

	ctldb_age(end - sqlite3_column_double(s, 4), age, sizeof(age));
	snprintf(budget, sizeof(budget), "%d/%d %d/%d",
	    sqlite3_column_int(s, 6), sqlite3_column_int(s, 7),
	    sqlite3_column_int(s, 8), sqlite3_column_int(s, 9));
	printf("%*lld %*lld  %-13s %7s  %-15s %*s%s\n", ps->width,
	    (long long)sqlite3_column_int64(s, 0), ps->width,
	    (long long)sqlite3_column_int64(s, 1),
	    ctldb_text_esc(s, 2, status, sizeof(status)), age, budget,
	    depth * 2, "", ctldb_text_esc(s, 3, image, sizeof(image)));
}

static int ctldb_ps_children(const struct ctldb_ps *ps, long long parent,
    int file, int depth);

/*
 * Print the rows of s (bound already; CTLDB_PS_COLS and the file's
 * number) at depth, each followed by its children.  The statements of a
 * branch stay open while it is printed: one read transaction, so one
 * snapshot of the tree.
 */
static int
ctldb_ps_rows(const struct ctldb_ps *ps, sqlite3_stmt *s, int depth)
{
	int rc = 0;

	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		ctldb_ps_row(ps, s, depth);
		rc = ctldb_ps_children(ps, sqlite3_column_int64(s, 0),
		    sqlite3_column_int(s, CTLDB_PS_FILE), depth + 1);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Children live in their parent's file. */
static int
ctldb_ps_children(const struct ctldb_ps *ps, long long parent, int file,
    int depth)
{
	sqlite3_stmt *s;

	if ((s = ctldb_prepare_free(ps->c->db, ctldb_one(file, "SELECT "
	    CTLDB_PS_COLS ", {n} FROM {db}.processes WHERE parent_pid = ? "
	    "ORDER BY pid"))) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, parent);
	return ctldb_ps_rows(ps, s, depth);
}

/*
 * The roots: each file's most recent by pid (its time order), the most
 * recent of those by created_at (the files' pids are not one sequence in
 * time), shown by pid.
 */
static char *
ctldb_ps_sql(const struct ctldb *c)
{
	char *slot, *roots, *sql = NULL;

	slot = ctldb_each(c, "SELECT instance_id FROM {db}.workers "
	    "WHERE slot = ?2 AND stopped_at IS NULL");
	roots = ctldb_each(c, "SELECT " CTLDB_PS_COLS ", {n} AS file FROM "
	    "{db}.processes WHERE parent_pid IS NULL AND (?1 OR ended_at IS "
	    "NULL) AND (?2 = 0 OR instance_id IN (SELECT instance_id FROM "
	    "slot_workers)) ORDER BY pid DESC LIMIT ?3");
	if (slot != NULL && roots != NULL)
		sql = sqlite3_mprintf("WITH slot_workers AS (%s) SELECT * "
		    "FROM (SELECT * FROM (%s) ORDER BY created_at DESC, "
		    "file DESC, pid DESC LIMIT ?3) ORDER BY pid", slot, roots);
	sqlite3_free(slot);
	sqlite3_free(roots);
	return sql;
}

/* The digits of the largest pid of the files (the end of an index). */
static int
ctldb_pid_width(const struct ctldb *c)
{
	sqlite3_stmt *s;
	char digits[32];
	int width = CTLDB_PS_PID_WIDTH;

	if ((s = ctldb_prepare_free(c->db, sqlite3_mprintf("SELECT max(v) "
	    "FROM (%z)", ctldb_each(c, "SELECT max(pid) AS v FROM "
	    "{db}.processes")))) == NULL)
		return width;
	if (sqlite3_step(s) == SQLITE_ROW) {
		snprintf(digits, sizeof(digits), "%lld",
		    (long long)sqlite3_column_int64(s, 0));
		if ((int)strlen(digits) > width)
			width = (int)strlen(digits);
	}
	sqlite3_finalize(s);
	return width;
}

static int
ctldb_ps(const struct ctldb *c, const struct ctldb_opts *o)
{
	struct ctldb_ps ps = { c, clock_wall(), ctldb_pid_width(c) };
	sqlite3_stmt *s;

	if ((s = ctldb_prepare_free(c->db, ctldb_ps_sql(c))) == NULL)
		return CTLDB_EXIT_ERROR;
	sqlite3_bind_int(s, 1, o->all);
	sqlite3_bind_int64(s, 2, o->worker);
	sqlite3_bind_int64(s, 3, o->limit > 0 ? o->limit : CTLDB_PS_ROOTS);
	printf("%*s %*s  %-13s %7s  %-15s %s\n", ps.width, "PID", ps.width,
	    "PPID", "STATUS", "AGE", "TOOLS CHILDREN", "IMAGE");
	return ctldb_ps_rows(&ps, s, 0) == 0 ? 0 : CTLDB_EXIT_ERROR;
}

/* inspect: one process, everything known about it. */

static cJSON *
ctldb_json_or_text(const char *text)
{
	cJSON *v = cJSON_Parse(text);

	return v != NULL ? v : cJSON_CreateString(text);
}

static void
ctldb_add_column(cJSON *o, sqlite3_stmt *s, int col)
{
	const char *name = sqlite3_column_name(s, col);

	switch (sqlite3_column_type(s, col)) {
	case SQLITE_NULL:
		cJSON_AddNullToObject(o, name);
		break;
	case SQLITE_INTEGER:
	case SQLITE_FLOAT:
		cJSON_AddNumberToObject(o, name, sqlite3_column_double(s, col));
		break;
	default:
		cJSON_AddStringToObject(o, name, ctldb_text(s, col));
	}
}

/* Every row of s (bound already) as an object; JSON columns parsed. */
static cJSON *
ctldb_rows(sqlite3_stmt *s, const char *const *json_cols)
{
	cJSON *arr = cJSON_CreateArray(), *row;
	const char *const *j;
	int c, n;

	while (sqlite3_step(s) == SQLITE_ROW) {
		row = cJSON_CreateObject();
		n = sqlite3_column_count(s);
		for (c = 0; c < n; c++) {
			for (j = json_cols; *j != NULL; j++)
				if (strcmp(*j, sqlite3_column_name(s, c)) == 0)
					break;
			if (*j != NULL && sqlite3_column_type(s, c) ==
			    SQLITE_TEXT)
				cJSON_AddItemToObject(row,
				    sqlite3_column_name(s, c),
				    ctldb_json_or_text(ctldb_text(s, c)));
			else
				ctldb_add_column(row, s, c);
		}
		cJSON_AddItemToArray(arr, row);
	}
	sqlite3_finalize(s);
	return arr;
}

/* tmpl (ctldb_one) on file, with pid bound as ?1: every row. */
static cJSON *
ctldb_query(const struct ctldb *c, int file, const char *tmpl, long long pid,
    const char *const *json_cols)
{
	sqlite3_stmt *s = ctldb_prepare_free(c->db, ctldb_one(file, tmpl));

	if (s == NULL)
		return cJSON_CreateArray();
	sqlite3_bind_int64(s, 1, pid);
	return ctldb_rows(s, json_cols);
}

static const char *const ctldb_json_cols[] = { "goal", "result", "payload",
    "decision", "input_refs", "output_refs", "constraints", NULL };

/* The number of the file that holds pid; 0 when none does. */
static int
ctldb_file_of(const struct ctldb *c, long long pid)
{
	sqlite3_stmt *s;
	int file = 0;

	if ((s = ctldb_prepare_free(c->db, ctldb_each(c, "SELECT {n} FROM "
	    "{db}.processes WHERE pid = ?1"))) == NULL)
		return 0;
	sqlite3_bind_int64(s, 1, pid);
	if (sqlite3_step(s) == SQLITE_ROW)
		file = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return file;
}

/* pid and what it refers to, all in its own file (oids are per file). */
static cJSON *
ctldb_inspect_build(const struct ctldb *c, long long pid)
{
	cJSON *rows, *p;
	int f;

	if ((f = ctldb_file_of(c, pid)) == 0)
		return NULL;
	rows = ctldb_query(c, f, "SELECT p.*, g.payload AS goal, r.payload "
	    "AS result, v.mode AS view_mode, v.roots AS view_roots FROM "
	    "{db}.processes p LEFT JOIN {db}.objects g ON g.oid = p.goal_oid "
	    "LEFT JOIN {db}.objects r ON r.oid = p.result_oid LEFT JOIN "
	    "{db}.views v ON v.view_id = p.view_id WHERE p.pid = ?", pid,
	    ctldb_json_cols);
	if ((p = cJSON_DetachItemFromArray(rows, 0)) == NULL) {
		cJSON_Delete(rows);
		return NULL;
	}
	cJSON_Delete(rows);
	cJSON_AddItemToObject(p, "capabilities", ctldb_query(c, f, "SELECT "
	    "cap_id, resource, rights, constraints, expires_at, delegable, "
	    "revocable, issued_by, revoked_at, revoke_reason FROM "
	    "{db}.capabilities WHERE subject = ? ORDER BY cap_id", pid,
	    ctldb_json_cols));
	cJSON_AddItemToObject(p, "children", ctldb_query(c, f, "SELECT pid, "
	    "status, image FROM {db}.processes WHERE parent_pid = ? "
	    "ORDER BY pid", pid, ctldb_json_cols));
	cJSON_AddItemToObject(p, "events", ctldb_query(c, f, "SELECT * FROM "
	    "(SELECT id, type, source, payload, created_at FROM {db}.events "
	    "WHERE pid = ? ORDER BY id DESC LIMIT " CTLDB_EVENTS ") "
	    "ORDER BY id", pid, ctldb_json_cols));
	return p;
}

static void
ctldb_print_value(const char *name, const cJSON *v)
{
	char *text;

	if (cJSON_IsString(v))
		printf("%-16s %s\n", name, v->valuestring);
	else if (cJSON_IsNumber(v) && strstr(name, "_at") != NULL) {
		char when[32];

		ctldb_time(v->valuedouble, when, sizeof(when));
		printf("%-16s %s\n", name, when);
	} else if ((text = cJSON_PrintUnformatted(v)) != NULL) {
		printf("%-16s %s\n", name, text);
		cJSON_free(text);
	}
}

static void
ctldb_print_list(const char *title, const cJSON *list)
{
	const cJSON *row;
	char *text;

	printf("%s (%d):\n", title, cJSON_GetArraySize(list));
	cJSON_ArrayForEach(row, list) {
		if ((text = cJSON_PrintUnformatted(row)) != NULL)
			printf("  %s\n", text);
		cJSON_free(text);
	}
}

static int
ctldb_inspect(const struct ctldb *c, const struct ctldb_opts *o)
{
	const cJSON *v;
	cJSON *p = ctldb_inspect_build(c, o->pid);
	char *text;

	if (p == NULL) {
		fprintf(stderr, "egressctl: no agent process %lld\n", o->pid);
		return CTLDB_EXIT_NOT_FOUND;
	}
	if (o->json) {
		if ((text = cJSON_Print(p)) != NULL)
			printf("%s\n", text);
		cJSON_free(text);
	} else if (escape_json_strings(p, 0) == -1) {
		fprintf(stderr, "egressctl: out of memory\n");
		cJSON_Delete(p);
		return CTLDB_EXIT_ERROR;
	} else
		cJSON_ArrayForEach(v, p) {
			if (cJSON_IsArray(v) && (strcmp(v->string,
			    "view_roots") != 0))
				ctldb_print_list(v->string, v);
			else
				ctldb_print_value(v->string, v);
		}
	cJSON_Delete(p);
	return 0;
}

/* audit: the trail, oldest first. */

static void
ctldb_audit_line(sqlite3_stmt *s)
{
	char when[32], actor[64], action[64], target[CTLDB_TEXT_MAX],
	    decision[CTLDB_TEXT_MAX * 2];

	ctldb_time(sqlite3_column_double(s, 8), when, sizeof(when));
	printf("%s %6lld %-10s %-26s %-18s %s\n", when,
	    (long long)sqlite3_column_int64(s, 0),
	    ctldb_text_esc(s, 1, actor, sizeof(actor)),
	    ctldb_text_esc(s, 2, action, sizeof(action)),
	    ctldb_text_esc(s, 3, target, sizeof(target)),
	    ctldb_text_esc(s, 7, decision, sizeof(decision)));
}

#define CTLDB_AUDIT_COLS "id, actor, action, target, pid, input_refs, " \
	"output_refs, decision, created_at"

/*
 * Each file's most recent rows by id (its time order), the most recent of
 * those in time order: ids are a file's own, so rows of several files are
 * ordered by created_at, then file, then id.  One file keeps id order.
 */
static char *
ctldb_audit_sql(const struct ctldb *c)
{
	char *each, *sql = NULL;
	int many = c->count > 1;

	each = ctldb_each(c, "SELECT " CTLDB_AUDIT_COLS ", {n} AS file FROM "
	    "{db}.audit WHERE (?1 = 0 OR pid = ?1) AND created_at >= ?2 "
	    "ORDER BY id DESC LIMIT ?3");
	if (each != NULL)
		sql = sqlite3_mprintf("SELECT " CTLDB_AUDIT_COLS " FROM "
		    "(SELECT * FROM (%s) ORDER BY %s LIMIT ?3) ORDER BY %s",
		    each, many ? "created_at DESC, file DESC, id DESC" :
		    "id DESC", many ? "created_at, file, id" : "id");
	sqlite3_free(each);
	return sql;
}

static int
ctldb_audit(const struct ctldb *c, const struct ctldb_opts *o)
{
	sqlite3_stmt *s;
	cJSON *rows;
	char *text;

	if ((s = ctldb_prepare_free(c->db, ctldb_audit_sql(c))) == NULL)
		return CTLDB_EXIT_ERROR;
	sqlite3_bind_int64(s, 1, o->pid);
	sqlite3_bind_double(s, 2, o->since);
	sqlite3_bind_int64(s, 3, o->limit > 0 ? o->limit : CTLDB_AUDIT_LIMIT);
	if (o->json) {
		rows = ctldb_rows(s, ctldb_json_cols);
		if ((text = cJSON_Print(rows)) != NULL)
			printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(rows);
		return 0;
	}
	printf("%-20s %6s %-10s %-26s %-18s %s\n", "TIME", "ID", "ACTOR",
	    "ACTION", "TARGET", "DECISION");
	while (sqlite3_step(s) == SQLITE_ROW)
		ctldb_audit_line(s);
	sqlite3_finalize(s);
	return 0;
}

/* Arguments. */

static int
ctldb_number(const char *text, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(text, &end, 10);
	return (end == text || *end != '\0' || errno != 0 || *out <= 0) ?
	    -1 : 0;
}

static int
ctldb_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "egressctl: %s%s%s\n", msg, arg ? ": " : "",
	    arg ? arg : "");
	return -1;
}

/* Options shared by the three commands; each accepts what it uses. */
static int
ctldb_parse(int argc, char **argv, struct ctldb_opts *o)
{
	const char *cmd = argv[0];
	long long n;
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--json") == 0 && strcmp(cmd, "ps") != 0)
			o->json = 1;
		else if (strcmp(a, "--all") == 0 && strcmp(cmd, "ps") == 0)
			o->all = 1;
		else if ((strcmp(a, "--worker") == 0 && strcmp(cmd, "ps") ==
		    0) || strcmp(a, "--limit") == 0 || (strcmp(a, "--pid") ==
		    0 && strcmp(cmd, "audit") == 0)) {
			if (v == NULL || ctldb_number(v, &n) == -1)
				return ctldb_usage("expected a positive "
				    "number after", a);
			if (a[2] == 'w')
				o->worker = (long)n;
			else if (a[2] == 'l')
				o->limit = (long)n;
			else
				o->pid = n;
			i++;
		} else if (strcmp(a, "--since") == 0 &&
		    strcmp(cmd, "audit") == 0) {
			if (v == NULL || ctldb_parse_since(v, clock_wall(),
			    &o->since) == -1)
				return ctldb_usage("--since takes 90s, 15m, "
				    "2h, 7d, epoch seconds or "
				    "YYYY-MM-DDTHH:MM:SS", v);
			i++;
		} else if (strcmp(cmd, "inspect") == 0 && o->pid == 0 &&
		    ctldb_number(a, &n) == 0)
			o->pid = n;
		else
			return ctldb_usage("unexpected argument", a);
	}
	if (strcmp(cmd, "inspect") == 0 && o->pid == 0)
		return ctldb_usage("inspect needs an agent process id", NULL);
	return 0;
}

int
ctldb_main(int argc, char **argv, const char *state_dir)
{
	struct ctldb_opts o;
	struct ctldb c;
	int rc;

	memset(&o, 0, sizeof(o));
	if (ctldb_parse(argc, argv, &o) == -1)
		return CTLDB_EXIT_ERROR;
	if (ctldb_open(&c, state_dir) == -1)
		return CTLDB_EXIT_ERROR;
	if (strcmp(argv[0], CTLDB_CMD_PS) == 0)
		rc = ctldb_ps(&c, &o);
	else if (strcmp(argv[0], CTLDB_CMD_INSPECT) == 0)
		rc = ctldb_inspect(&c, &o);
	else
		rc = ctldb_audit(&c, &o);
	sqlite3_close(c.db);
	return rc;
}

/* The database summary of status --json. */

static const char *const ctldb_tables[] = { "processes", "objects", "views",
    "capabilities", "events", "audit", "outbox", "workers" };

/*
 * The oldest row kept of each kind in a file, found from the start of an
 * index (pids and ids grow with time within a file); the oldest of the
 * files' is the summary's.
 */
static const struct { const char *name, *sql; } ctldb_oldest[] = {
	{ "process", "SELECT created_at AS v FROM {db}.processes "
	    "ORDER BY pid LIMIT 1" },
	{ "finished_operation", "SELECT min(ended_at) AS v FROM "
	    "{db}.processes WHERE parent_pid IS NULL AND ended_at IS NOT "
	    "NULL" },
	{ "event", "SELECT created_at AS v FROM {db}.events "
	    "ORDER BY id LIMIT 1" },
	{ "audit", "SELECT created_at AS v FROM {db}.audit "
	    "ORDER BY id LIMIT 1" },
	{ "undelivered_result", "SELECT min(created_at) AS v FROM "
	    "{db}.outbox" },
};

/*
 * agg ("sum", "min") of column v of tmpl over the files into o as key
 * (null when no file has a value).
 */
static int
ctldb_add_scalar(const struct ctldb *c, cJSON *o, const char *key,
    const char *agg, const char *tmpl)
{
	sqlite3_stmt *s;
	char *each;
	int rc;

	if ((each = ctldb_each(c, tmpl)) == NULL)
		return -1;
	s = ctldb_prepare_free(c->db, sqlite3_mprintf("SELECT %s(v) FROM (%s)",
	    agg, each));
	sqlite3_free(each);
	if (s == NULL)
		return -1;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    sqlite3_column_type(s, 0) != SQLITE_NULL)
		cJSON_AddNumberToObject(o, key, sqlite3_column_double(s, 0));
	else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		cJSON_AddNullToObject(o, key);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

cJSON *
ctldb_summary(const char *state_dir)
{
	cJSON *o, *rows, *oldest;
	struct ctldb c;
	char sql[64];
	size_t i;
	int rc = 0;

	if (ctldb_open(&c, state_dir) == -1)
		return NULL;
	o = cJSON_CreateObject();
	rows = cJSON_AddObjectToObject(o, "rows");
	oldest = cJSON_AddObjectToObject(o, "oldest");
	for (i = 0; i < sizeof(ctldb_tables) / sizeof(ctldb_tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) AS v FROM {db}.%s",
		    ctldb_tables[i]);
		rc |= ctldb_add_scalar(&c, rows, ctldb_tables[i], "sum", sql);
	}
	for (i = 0; i < sizeof(ctldb_oldest) / sizeof(ctldb_oldest[0]); i++)
		rc |= ctldb_add_scalar(&c, oldest, ctldb_oldest[i].name, "min",
		    ctldb_oldest[i].sql);
	sqlite3_close(c.db);
	if (rc != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
