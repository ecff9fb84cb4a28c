/*
 * Unit tests for ops/sqlite: queries with parameters and value types, the
 * row cap, the refusal of everything that is not one read-only statement
 * (with the database file left byte for byte as it was), the time limit,
 * unknown databases, bad bodies and a capability denial.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "core/config.h"
#include "ops/ops.h"
#include "testutil.h"

struct fixture {
	char dir[64];
	char db[128];
	char other[128];
	struct egressd_config cfg;
	struct op_context ctx;
	struct tu_host host;	/* refuses sqlite:secret */
	struct op_run run;
	char *before;		/* the database file as setup made it */
	size_t before_len;
};

static const char *setup_sql =
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL,"
    " data BLOB, big INTEGER);"
    "INSERT INTO t VALUES (1, 'one', 1.5, x'00ff10', 9007199254740993);"
    "INSERT INTO t VALUES (2, 'two', NULL, NULL, -5);"
    "INSERT INTO t VALUES (3, 'thr\xc3\xa9\xff', 3.25, x'', 9007199254740992);"
    "INSERT INTO t VALUES (4, 'four', 4.0, NULL, 0);"
    "INSERT INTO t VALUES (5, 'five', 5.0, NULL, 0);";

static void
make_db(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	tu_exec(db, sql);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char text[1024];

	assert_non_null(f);
	assert_non_null(tu_mkdtemp(f->dir, sizeof(f->dir), "sqlite"));
	snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
	snprintf(f->other, sizeof(f->other), "%s/other.db", f->dir);
	make_db(f->db, setup_sql);
	make_db(f->other, "CREATE TABLE s (x); INSERT INTO s VALUES (42);");
	snprintf(text, sizeof(text),
	    "operations: { sqlite: { enabled = true; databases = (\n"
	    "  { name = \"main\"; path = \"%s\"; },\n"
	    "  { name = \"secret\"; path = \"%s\"; },\n"
	    "  { name = \"missing\"; path = \"%s/nope.db\"; } );\n"
	    "  max_rows = 3; timeout = 0.3; }; };\n",
	    f->db, f->other, f->dir);
	tu_config(&f->cfg, text);
	tu_host_init(&f->host);
	f->host.want_right = "read";
	f->host.deny_resource = "sqlite:secret";
	f->ctx.cfg = &f->cfg;
	f->ctx.host = &f->host.host;
	f->run.ctx = &f->ctx;
	assert_non_null(f->before = tu_read_file(f->db, &f->before_len));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_remove_tree(f->dir);
	config_free(&f->cfg);
	free(f->before);
	free(f);
	return 0;
}

/* Run body (JSON text) through the handler; the caller frees the result. */
static cJSON *
run_op(struct fixture *f, const char *json)
{
	return tu_call(op_sqlite, &f->run, json);
}

static void
expect_error(struct fixture *f, const char *json, const char *type,
    const char *needle)
{
	cJSON *r = run_op(f, json);

	if (!tu_is_error(r, type, needle))
		fail_msg("%s: want %s containing \"%s\", got %s", json, type,
		    needle, cJSON_PrintUnformatted(r));
	cJSON_Delete(r);
}

static void
assert_db_unchanged(struct fixture *f)
{
	size_t n;
	char *now = tu_read_file(f->db, &n);
	char path[192];
	struct stat sb;

	assert_non_null(now);
	assert_int_equal(n, f->before_len);
	assert_memory_equal(now, f->before, n);
	free(now);
	snprintf(path, sizeof(path), "%s-journal", f->db);
	assert_int_equal(stat(path, &sb), -1);
	snprintf(path, sizeof(path), "%s-wal", f->db);
	assert_int_equal(stat(path, &sb), -1);
}

static const cJSON *
row(const cJSON *r, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItem(r, "rows"), i);
}

static void
test_select_with_params(void **state)
{
	struct fixture *f = *state;
	cJSON *r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT id, name, score FROM t WHERE id >= ? AND name <> ?"
	    " ORDER BY id\", \"params\": [2, \"four\"]}");
	const cJSON *cols = cJSON_GetObjectItem(r, "columns");

	assert_false(cJSON_HasObjectItem(r, "error"));
	assert_int_equal(cJSON_GetArraySize(cols), 3);
	assert_string_equal(cJSON_GetArrayItem(cols, 1)->valuestring, "name");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows")),
	    3);
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 0)->valueint, 2);
	assert_true(cJSON_IsNull(cJSON_GetArrayItem(row(r, 0), 2)));
	assert_int_equal(cJSON_GetArrayItem(row(r, 2), 0)->valueint, 5);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "truncated")));
	assert_int_equal(f->host.checks, 1);
	assert_string_equal(f->host.resource, "sqlite:main");
	cJSON_Delete(r);
	assert_db_unchanged(f);
}

static void
test_param_types(void **state)
{
	struct fixture *f = *state;
	cJSON *r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT typeof(?1), typeof(?2), typeof(?3), typeof(?4),"
	    " typeof(?5), ?1 + 1, ?2\", "
	    "\"params\": [41, 2.5, \"s\", null, true]}");
	const cJSON *r0 = row(r, 0);

	assert_string_equal(cJSON_GetArrayItem(r0, 0)->valuestring, "integer");
	assert_string_equal(cJSON_GetArrayItem(r0, 1)->valuestring, "real");
	assert_string_equal(cJSON_GetArrayItem(r0, 2)->valuestring, "text");
	assert_string_equal(cJSON_GetArrayItem(r0, 3)->valuestring, "null");
	assert_string_equal(cJSON_GetArrayItem(r0, 4)->valuestring, "integer");
	assert_int_equal(cJSON_GetArrayItem(r0, 5)->valueint, 42);
	assert_true(cJSON_GetArrayItem(r0, 6)->valuedouble == 2.5);
	cJSON_Delete(r);
}

static void
test_value_encodings(void **state)
{
	struct fixture *f = *state;
	cJSON *r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT data, big, name FROM t WHERE id IN (1, 3) ORDER BY id"
	    "\"}");

	/* BLOB: base64; INTEGER beyond 2^53: a decimal string. */
	assert_string_equal(cJSON_GetArrayItem(row(r, 0), 0)->valuestring,
	    "AP8Q");
	assert_string_equal(cJSON_GetArrayItem(row(r, 0), 1)->valuestring,
	    "9007199254740993");
	assert_string_equal(cJSON_GetArrayItem(row(r, 1), 0)->valuestring, "");
	assert_true(cJSON_IsNumber(cJSON_GetArrayItem(row(r, 1), 1)));
	assert_true(cJSON_GetArrayItem(row(r, 1), 1)->valuedouble ==
	    9007199254740992.0);
	/* TEXT that is not UTF-8: the bad byte becomes U+FFFD. */
	assert_string_equal(cJSON_GetArrayItem(row(r, 1), 2)->valuestring,
	    "thr\xc3\xa9\xef\xbf\xbd");
	cJSON_Delete(r);
}

static void
test_row_cap(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	/* The configured cap (3) wins over a larger request. */
	r = run_op(f, "{\"database\": \"main\", \"sql\": \"SELECT id FROM t\","
	    " \"max_rows\": 100}");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows")),
	    3);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
	cJSON_Delete(r);
	/* A smaller request wins over the configured cap. */
	r = run_op(f, "{\"database\": \"main\", \"sql\": \"SELECT id FROM t\","
	    " \"max_rows\": 1}");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows")),
	    1);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
	cJSON_Delete(r);
	/* Exactly the cap's worth of rows: nothing was left out. */
	r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT id FROM t WHERE id <= 3\"}");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows")),
	    3);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "truncated")));
	cJSON_Delete(r);
}

static void
test_result_size_guard(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	/* Half of max_body_bytes (2048) is the budget of the rows. */
	f->cfg.orchestrator.max_body_bytes = 4096;
	r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT hex(zeroblob(500)) FROM t\"}");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows")),
	    2);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
	cJSON_Delete(r);
	/* No single value may exceed the budget. */
	expect_error(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT zeroblob(4000)\"}", "limit_exceeded", "too big");
}

static void
test_writes_refused(void **state)
{
	struct fixture *f = *state;
	char json[512];
	size_t i;
	static const struct {
		const char *sql, *needle;
	} cases[] = {
		{ "INSERT INTO t (id) VALUES (9)", "write statements" },
		{ "DELETE FROM t", "write statements" },
		{ "UPDATE t SET name = 'x'", "write statements" },
		{ "CREATE TABLE z (a)", "write statements" },
		{ "CREATE TEMP TABLE z (a)", "write statements" },
		{ "DROP TABLE t", "write statements" },
		{ "REPLACE INTO t (id) VALUES (1)", "write statements" },
		{ "PRAGMA query_only=0; INSERT INTO t (id) VALUES (9)",
		    "setting a PRAGMA is not allowed" },
		{ "PRAGMA query_only = 0", "setting a PRAGMA is not allowed" },
		{ "PRAGMA journal_mode = WAL", "setting a PRAGMA" },
		{ "PRAGMA writable_schema = 1", "setting a PRAGMA" },
		{ "SELECT 1; INSERT INTO t (id) VALUES (9)", "one statement" },
		{ "SELECT 1; SELECT 2", "one statement" },
		{ "ATTACH '__OTHER__' AS o", "ATTACH is not allowed" },
		{ "DETACH main", "DETACH is not allowed" },
		{ "VACUUM", "write statements" },
		{ "VACUUM INTO '__DIR__/copy.db'", "write statements" },
		{ "SELECT load_extension('/nonexistent.so')",
		    "not authorized" },
	};

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char sql[256], *p;

		snprintf(sql, sizeof(sql), "%s", cases[i].sql);
		if ((p = strstr(sql, "__OTHER__")) != NULL)
			snprintf(sql, sizeof(sql), "ATTACH '%s' AS o",
			    f->other);
		else if ((p = strstr(sql, "__DIR__")) != NULL)
			snprintf(sql, sizeof(sql), "VACUUM INTO '%s/copy.db'",
			    f->dir);
		snprintf(json, sizeof(json), "{\"database\": \"main\", "
		    "\"sql\": \"%s\"}", sql);
		expect_error(f, json, "invalid_request", cases[i].needle);
		assert_db_unchanged(f);
	}
	snprintf(json, sizeof(json), "%s/copy.db", f->dir);
	assert_int_equal(access(json, F_OK), -1);
}

static void
test_one_statement_with_comments(void **state)
{
	struct fixture *f = *state;
	cJSON *r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT count(*) FROM t; -- the count\\n /* done */ ;\"}");

	assert_false(cJSON_HasObjectItem(r, "error"));
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 0)->valueint, 5);
	cJSON_Delete(r);
	r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"PRAGMA table_info(t)\"}");
	assert_false(cJSON_HasObjectItem(r, "error"));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
	cJSON_Delete(r);
}

static void
test_timeout(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "{\"database\": \"main\", \"sql\": "
	    "\"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
	    " SELECT count(*) FROM c\"}", "timeout", "time limit");
	assert_db_unchanged(f);
}

static void
test_unknown_database(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "{\"database\": \"nope\", \"sql\": \"SELECT 1\"}",
	    "not_found", "no database named nope");
	assert_int_equal(f->host.checks, 0);
	expect_error(f, "{\"database\": \"missing\", \"sql\": \"SELECT 1\"}",
	    "internal", "cannot open");
}

static void
test_bad_requests(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "{\"sql\": \"SELECT 1\"}", "invalid_request",
	    "\"database\"");
	expect_error(f, "{\"database\": \"main\", \"sql\": 5}",
	    "invalid_request", "\"sql\"");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT ?\", "
	    "\"params\": [[1]]}", "invalid_request", "params[0] must be");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT ?\", "
	    "\"params\": [{\"a\": 1}]}", "invalid_request", "params[0]");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT ?\", "
	    "\"params\": {\"a\": 1}}", "invalid_request",
	    "must be an array");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT ?, ?\", "
	    "\"params\": [1]}", "invalid_request", "takes 2 parameters");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT 1\", "
	    "\"params\": [1]}", "invalid_request", "takes 0 parameters");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT 1\", "
	    "\"max_rows\": -1}", "invalid_request", "max_rows");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT 1\", "
	    "\"max_rows\": \"2\"}", "invalid_request", "max_rows");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELEC 1\"}",
	    "invalid_request", "syntax error");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"SELECT * FROM "
	    "nosuch\"}", "invalid_request", "no such table");
	expect_error(f, "{\"database\": \"main\", \"sql\": \"  -- nothing\"}",
	    "invalid_request", "no statement");
	assert_db_unchanged(f);
}

static void
test_capability_denied(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "{\"database\": \"secret\", \"sql\": "
	    "\"SELECT * FROM s\"}", "capability_denied", "sqlite:secret");
	assert_int_equal(f->host.checks, 1);
}

/*
 * SQL functions: an explicit list.  fts3_tokenizer() would hand out a
 * pointer into the worker; random(), sqlite_version() or changes() are
 * harmless but not on the list, so they are refused too.
 */
static void
test_functions_allowed_list(void **state)
{
	struct fixture *f = *state;
	static const char *const refused[] = {
		"SELECT fts3_tokenizer('simple')",
		"SELECT hex(fts3_tokenizer('porter'))",
		"SELECT random()", "SELECT randomblob(4)",
		"SELECT sqlite_version()", "SELECT changes()",
		"SELECT last_insert_rowid()", "SELECT sqlite_log(1, 'x')",
		"SELECT sqlite_compileoption_used('THREADSAFE')",
		"SELECT load_extension('/nonexistent.so')",
		"SELECT name FROM t WHERE upper(name) = 'ONE' AND "
		    "random() > 0",
		"SELECT * FROM (SELECT fts3_tokenizer('simple'))",
		"WITH x AS (SELECT fts3_tokenizer('simple') AS p) SELECT * "
		    "FROM x",
	};
	char json[512];
	cJSON *r;
	size_t i;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(json, sizeof(json), "{\"database\": \"main\", "
		    "\"sql\": \"%s\"}", refused[i]);
		expect_error(f, json, "invalid_request", "not authorized");
	}
	r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT abs(-2), length(name), lower('A'), upper('b'),"
	    " substr('abc', 2), coalesce(NULL, 3), count(*), sum(id),"
	    " min(id), max(id), avg(id), json_extract('{\\\"a\\\": 5}', '$.a'),"
	    " '{\\\"b\\\": 6}' ->> '$.b', date('2024-01-02'),"
	    " typeof(round(1.5)), group_concat(id) FROM t WHERE id < 3\"}");
	if (cJSON_HasObjectItem(r, "error"))
		fail_msg("%s", cJSON_PrintUnformatted(r));
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 0)->valueint, 2);
	assert_string_equal(cJSON_GetArrayItem(row(r, 0), 2)->valuestring,
	    "a");
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 6)->valueint, 2);
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 11)->valueint, 5);
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 12)->valueint, 6);
	assert_string_equal(cJSON_GetArrayItem(row(r, 0), 13)->valuestring,
	    "2024-01-02");
	cJSON_Delete(r);
	r = run_op(f, "{\"database\": \"main\", \"sql\": "
	    "\"SELECT id, row_number() OVER (ORDER BY id DESC) FROM t"
	    " ORDER BY id LIMIT 1\"}");
	assert_false(cJSON_HasObjectItem(r, "error"));
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 1)->valueint, 5);
	cJSON_Delete(r);
	assert_db_unchanged(f);
}

/* A database whose count(*) takes many times the limit set below. */
#define BIG_ROWS	60000
#define BIG_LIMIT	0.001

static int
setup_big(void **state)
{
	struct fixture *f;
	char path[192], sql[512];

	if (setup(state) != 0)
		return -1;
	f = *state;
	/* "missing" names DIR/nope.db: here it is, large. */
	snprintf(path, sizeof(path), "%s/nope.db", f->dir);
	snprintf(sql, sizeof(sql), "PRAGMA page_size = 512;"
	    "PRAGMA journal_mode = OFF; CREATE TABLE big (b);"
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
	    " WHERE i < %d) INSERT INTO big SELECT randomblob(300) FROM n;",
	    BIG_ROWS);
	make_db(path, sql);
	return 0;
}

static int
teardown_big(void **state)
{
	struct fixture *f = *state;
	char path[192];

	snprintf(path, sizeof(path), "%s/nope.db", f->dir);
	unlink(path);
	return teardown(state);
}

/*
 * One virtual machine step can run long: count(*) walks the whole table
 * in one, PRAGMA integrity_check checks every page in one; the progress
 * handler never runs there.  The time limit holds anyway: the watchdog
 * interrupts the step, or, when its thread is not scheduled before the
 * step ends (a loaded machine), the late answer is a timeout all the same.
 * Either way the outcome does not depend on the machine's speed: the
 * table takes far longer than BIG_LIMIT to walk.
 */
static void
test_timeout_in_one_step(void **state)
{
	struct fixture *f = *state;
	static const char *const slow[] = {
		"SELECT count(*) FROM big",
		"PRAGMA integrity_check",
		"PRAGMA quick_check",
	};
	char json[256];
	cJSON *r;
	size_t i;

	f->cfg.operations.sqlite.timeout = BIG_LIMIT;
	for (i = 0; i < sizeof(slow) / sizeof(slow[0]); i++) {
		snprintf(json, sizeof(json), "{\"database\": \"missing\", "
		    "\"sql\": \"%s\"}", slow[i]);
		expect_error(f, json, "timeout", "time limit");
	}
	/* with time enough, the same count succeeds */
	f->cfg.operations.sqlite.timeout = 30;
	r = run_op(f, "{\"database\": \"missing\", \"sql\": "
	    "\"SELECT count(*) FROM big\"}");
	if (cJSON_HasObjectItem(r, "error"))
		fail_msg("%s", cJSON_PrintUnformatted(r));
	assert_int_equal(cJSON_GetArrayItem(row(r, 0), 0)->valueint,
	    BIG_ROWS);
	cJSON_Delete(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_select_with_params,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_param_types, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_value_encodings, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_row_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_result_size_guard, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_writes_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_one_statement_with_comments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_database, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_capability_denied, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_functions_allowed_list,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_in_one_step,
		    setup_big, teardown_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
