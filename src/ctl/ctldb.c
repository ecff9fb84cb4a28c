/* ctldb: egressctl ps, inspect, audit and the database summary of status
 * (see include/ctl/ctldb.h). */
#define _XOPEN_SOURCE 700	/* strptime */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/escape.h"
#include "ctl/ctldb.h"

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
 * Read-only; a stopped daemon may have left no -shm file and a directory
 * we cannot write, so fall back to reading the file as immutable.
 */
static sqlite3 *
ctldb_open(const char *path)
{
	sqlite3 *db = NULL;
	char *uri;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK && sqlite3_exec(db, "SELECT 1 FROM processes "
	    "LIMIT 1", NULL, NULL, NULL) == SQLITE_OK)
		return db;
	sqlite3_close(db);
	db = NULL;
	uri = sqlite3_mprintf("file:%s?immutable=1", path);
	rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
	    NULL);
	sqlite3_free(uri);
	if (rc == SQLITE_OK && sqlite3_exec(db, "SELECT 1 FROM processes "
	    "LIMIT 1", NULL, NULL, NULL) == SQLITE_OK)
		return db;
	fprintf(stderr, "egressctl: database %s: %s\n", path,
	    db ? sqlite3_errmsg(db) : "cannot open");
	sqlite3_close(db);
	return NULL;
}

static sqlite3_stmt *
ctldb_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "egressctl: database: %s\n",
		    sqlite3_errmsg(db));
		return NULL;
	}
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

static void
ctldb_ps_row(sqlite3_stmt *s, int depth, double now)
{
	char age[32], budget[64], status[64], image[CTLDB_TEXT_MAX];
	double end = sqlite3_column_type(s, 5) == SQLITE_NULL ? now :
	    sqlite3_column_double(s, 5);

	ctldb_age(end - sqlite3_column_double(s, 4), age, sizeof(age));
	snprintf(budget, sizeof(budget), "%d/%d %d/%d",
	    sqlite3_column_int(s, 6), sqlite3_column_int(s, 7),
	    sqlite3_column_int(s, 8), sqlite3_column_int(s, 9));
	printf("%8lld %8lld  %-13s %7s  %-15s %*s%s\n",
	    (long long)sqlite3_column_int64(s, 0),
	    (long long)sqlite3_column_int64(s, 1),
	    ctldb_text_esc(s, 2, status, sizeof(status)), age, budget,
	    depth * 2, "", ctldb_text_esc(s, 3, image, sizeof(image)));
}

static int ctldb_ps_children(sqlite3 *db, long long parent, int depth,
    double now);

/* Print the rows of s (bound already) at depth, then each one's children. */
static int
ctldb_ps_rows(sqlite3 *db, sqlite3_stmt *s, int depth, double now)
{
	long long *pids = NULL, *np;
	size_t n = 0, i;
	int rc = 0;

	while (sqlite3_step(s) == SQLITE_ROW) {
		ctldb_ps_row(s, depth, now);
		if ((np = realloc(pids, (n + 1) * sizeof(*pids))) == NULL)
			break;
		pids = np;
		pids[n++] = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);	/* before recursing: one statement at a time */
	for (i = 0; i < n && rc == 0; i++)
		rc = ctldb_ps_children(db, pids[i], depth + 1, now);
	free(pids);
	return rc;
}

static int
ctldb_ps_children(sqlite3 *db, long long parent, int depth, double now)
{
	sqlite3_stmt *s;

	if ((s = ctldb_prepare(db, "SELECT " CTLDB_PS_COLS " FROM processes "
	    "WHERE parent_pid = ? ORDER BY pid")) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, parent);
	return ctldb_ps_rows(db, s, depth, now);
}

static int
ctldb_ps(sqlite3 *db, const struct ctldb_opts *o)
{
	sqlite3_stmt *s;

	s = ctldb_prepare(db, "SELECT " CTLDB_PS_COLS " FROM (SELECT * FROM "
	    "processes p WHERE parent_pid IS NULL AND (?1 OR ended_at IS "
	    "NULL) AND (?2 = 0 OR instance_id IN (SELECT instance_id FROM "
	    "workers WHERE slot = ?2 AND stopped_at IS NULL)) "
	    "ORDER BY pid DESC LIMIT ?3) ORDER BY pid");
	if (s == NULL)
		return CTLDB_EXIT_ERROR;
	sqlite3_bind_int(s, 1, o->all);
	sqlite3_bind_int64(s, 2, o->worker);
	sqlite3_bind_int64(s, 3, o->limit > 0 ? o->limit : CTLDB_PS_ROOTS);
	printf("%8s %8s  %-13s %7s  %-15s %s\n", "PID", "PPID", "STATUS",
	    "AGE", "TOOLS CHILDREN", "IMAGE");
	return ctldb_ps_rows(db, s, 0, clock_wall()) == 0 ? 0 :
	    CTLDB_EXIT_ERROR;
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

static cJSON *
ctldb_query(sqlite3 *db, const char *sql, long long pid,
    const char *const *json_cols)
{
	sqlite3_stmt *s = ctldb_prepare(db, sql);

	if (s == NULL)
		return cJSON_CreateArray();
	sqlite3_bind_int64(s, 1, pid);
	return ctldb_rows(s, json_cols);
}

static const char *const ctldb_json_cols[] = { "goal", "result", "payload",
    "decision", "input_refs", "output_refs", "constraints", NULL };

static cJSON *
ctldb_inspect_build(sqlite3 *db, long long pid)
{
	cJSON *rows, *p;

	rows = ctldb_query(db, "SELECT p.*, g.payload AS goal, r.payload AS "
	    "result, v.mode AS view_mode, v.roots AS view_roots FROM "
	    "processes p LEFT JOIN objects g ON g.oid = p.goal_oid LEFT JOIN "
	    "objects r ON r.oid = p.result_oid LEFT JOIN views v ON "
	    "v.view_id = p.view_id WHERE p.pid = ?", pid, ctldb_json_cols);
	if ((p = cJSON_DetachItemFromArray(rows, 0)) == NULL) {
		cJSON_Delete(rows);
		return NULL;
	}
	cJSON_Delete(rows);
	cJSON_AddItemToObject(p, "capabilities", ctldb_query(db, "SELECT "
	    "cap_id, resource, rights, constraints, expires_at, delegable, "
	    "revocable, issued_by, revoked_at, revoke_reason FROM "
	    "capabilities WHERE subject = ? ORDER BY cap_id", pid,
	    ctldb_json_cols));
	cJSON_AddItemToObject(p, "children", ctldb_query(db, "SELECT pid, "
	    "status, image FROM processes WHERE parent_pid = ? ORDER BY pid",
	    pid, ctldb_json_cols));
	cJSON_AddItemToObject(p, "events", ctldb_query(db, "SELECT * FROM "
	    "(SELECT id, type, source, payload, created_at FROM events WHERE "
	    "pid = ? ORDER BY id DESC LIMIT " CTLDB_EVENTS ") ORDER BY id", pid,
	    ctldb_json_cols));
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
ctldb_inspect(sqlite3 *db, const struct ctldb_opts *o)
{
	const cJSON *v;
	cJSON *p = ctldb_inspect_build(db, o->pid);
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

static int
ctldb_audit(sqlite3 *db, const struct ctldb_opts *o)
{
	sqlite3_stmt *s;
	cJSON *rows;
	char *text;

	s = ctldb_prepare(db, "SELECT * FROM (SELECT id, actor, action, "
	    "target, pid, input_refs, output_refs, decision, created_at FROM "
	    "audit WHERE (?1 = 0 OR pid = ?1) AND created_at >= ?2 ORDER BY "
	    "id DESC LIMIT ?3) ORDER BY id");
	if (s == NULL)
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
ctldb_main(int argc, char **argv, const char *db_path)
{
	struct ctldb_opts o;
	sqlite3 *db;
	int rc;

	memset(&o, 0, sizeof(o));
	if (ctldb_parse(argc, argv, &o) == -1)
		return CTLDB_EXIT_ERROR;
	if ((db = ctldb_open(db_path)) == NULL)
		return CTLDB_EXIT_ERROR;
	if (strcmp(argv[0], CTLDB_CMD_PS) == 0)
		rc = ctldb_ps(db, &o);
	else if (strcmp(argv[0], CTLDB_CMD_INSPECT) == 0)
		rc = ctldb_inspect(db, &o);
	else
		rc = ctldb_audit(db, &o);
	sqlite3_close(db);
	return rc;
}

/* The database summary of status --json. */

static const char *const ctldb_tables[] = { "processes", "objects", "views",
    "capabilities", "events", "audit", "outbox", "workers" };

/*
 * The oldest row kept of each kind, found from the start of an index:
 * pids and ids grow with time.
 */
static const struct { const char *name, *sql; } ctldb_oldest[] = {
	{ "process", "SELECT created_at FROM processes ORDER BY pid LIMIT 1" },
	{ "finished_operation", "SELECT min(ended_at) FROM processes "
	    "WHERE parent_pid IS NULL AND ended_at IS NOT NULL" },
	{ "event", "SELECT created_at FROM events ORDER BY id LIMIT 1" },
	{ "audit", "SELECT created_at FROM audit ORDER BY id LIMIT 1" },
	{ "undelivered_result", "SELECT min(created_at) FROM outbox" },
};

/* The first column of sql's first row into o as key (null when none). */
static int
ctldb_add_scalar(sqlite3 *db, cJSON *o, const char *key, const char *sql)
{
	sqlite3_stmt *s = ctldb_prepare(db, sql);
	int rc;

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
ctldb_summary(const char *db_path)
{
	cJSON *o, *rows, *oldest;
	sqlite3 *db;
	char sql[64];
	size_t i;
	int rc = 0;

	if ((db = ctldb_open(db_path)) == NULL)
		return NULL;
	o = cJSON_CreateObject();
	rows = cJSON_AddObjectToObject(o, "rows");
	oldest = cJSON_AddObjectToObject(o, "oldest");
	for (i = 0; i < sizeof(ctldb_tables) / sizeof(ctldb_tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s",
		    ctldb_tables[i]);
		rc |= ctldb_add_scalar(db, rows, ctldb_tables[i], sql);
	}
	for (i = 0; i < sizeof(ctldb_oldest) / sizeof(ctldb_oldest[0]); i++)
		rc |= ctldb_add_scalar(db, oldest, ctldb_oldest[i].name,
		    ctldb_oldest[i].sql);
	sqlite3_close(db);
	if (rc != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
