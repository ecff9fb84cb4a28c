/*
 * Unit tests for master/reexec.c: the binary upgrade's compatibility rule
 * (the probe line, the state blob's version) and the blob's way across
 * exec (a memfd named in an environment variable that is cleared on read).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "master/reexec.h"

#define EXE "/usr/sbin/egressd"

static int
parse(const char *out, char *version, char *err)
{
	return reexec_probe_parse(out, strlen(out), EXE, version,
	    REEXEC_VERSION_MAX, err, REEXEC_REASON_MAX);
}

static void
test_probe_line_accepted(void **state)
{
	char version[REEXEC_VERSION_MAX], err[REEXEC_REASON_MAX], out[256];

	(void)state;
	snprintf(out, sizeof(out), "egressd: configuration /etc/e.conf is "
	    "OK\n%s %d %d 2.0.0\n", REEXEC_PROBE_TAG, REEXEC_STATE_MIN,
	    REEXEC_STATE_VERSION + 3);
	assert_int_equal(parse(out, version, err), 0);
	assert_string_equal(version, "2.0.0");
}

/* A binary that reads other versions only is refused, saying which. */
static void
test_probe_other_state_version(void **state)
{
	char version[REEXEC_VERSION_MAX], err[REEXEC_REASON_MAX], out[256];

	(void)state;
	snprintf(out, sizeof(out), "%s %d %d 9.0.0\n", REEXEC_PROBE_TAG,
	    REEXEC_STATE_VERSION + 1, REEXEC_STATE_VERSION + 5);
	assert_int_equal(parse(out, version, err), -1);
	assert_non_null(strstr(err, "reads upgrade states"));
	assert_non_null(strstr(err, EXE));
}

/* No line (an old binary, a script that exits 0), or a garbled one. */
static void
test_probe_without_line(void **state)
{
	char version[REEXEC_VERSION_MAX], err[REEXEC_REASON_MAX];

	(void)state;
	assert_int_equal(parse("", version, err), -1);
	assert_non_null(strstr(err, "does not take over"));
	assert_int_equal(parse("egressd: configuration x is OK\n", version,
	    err), -1);
	assert_int_equal(parse(REEXEC_PROBE_TAG " one two\n", version, err),
	    -1);
	assert_non_null(strstr(err, "does not take over"));
}

static void
test_state_version_rule(void **state)
{
	char err[REEXEC_REASON_MAX], text[64];
	cJSON *o;

	(void)state;
	snprintf(text, sizeof(text), "{\"version\":%d}", REEXEC_STATE_VERSION);
	o = cJSON_Parse(text);
	assert_int_equal(reexec_state_check(o, err, sizeof(err)), 0);
	cJSON_Delete(o);
	snprintf(text, sizeof(text), "{\"version\":%d}",
	    REEXEC_STATE_VERSION + 1);
	o = cJSON_Parse(text);
	assert_int_equal(reexec_state_check(o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reads versions"));
	cJSON_Delete(o);
	o = cJSON_Parse("{\"version\":1.5}");
	assert_int_equal(reexec_state_check(o, err, sizeof(err)), -1);
	cJSON_Delete(o);
	o = cJSON_Parse("{\"workers\":[]}");
	assert_int_equal(reexec_state_check(o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no version"));
	cJSON_Delete(o);
}

static void
set_state_env(int fd, int self)
{
	char v[64];

	snprintf(v, sizeof(v), "%d:%d", fd, self);
	assert_int_equal(setenv(REEXEC_ENV_STATE, v, 1), 0);
}

/* The blob read back whole; the variables are gone once read. */
static void
test_blob_round_trip(void **state)
{
	struct reexec_inherit in;
	char err[REEXEC_REASON_MAX], text[128];
	int fd;

	(void)state;
	snprintf(text, sizeof(text), "{\"version\":%d,\"generation\":7,"
	    "\"pidfile_fd\":-1}", REEXEC_STATE_VERSION);
	assert_true((fd = reexec_blob_create(text, err, sizeof(err))) >= 0);
	set_state_env(fd, 99);
	setenv(REEXEC_ENV_FAILED, "it crashed", 1);
	assert_int_equal(reexec_take(&in, err, sizeof(err)), 1);
	assert_null(getenv(REEXEC_ENV_STATE));
	assert_null(getenv(REEXEC_ENV_FAILED));
	assert_int_equal(in.state_fd, fd);
	assert_int_equal(in.fallback_fd, 99);
	assert_string_equal(in.failed, "it crashed");
	assert_int_equal(cJSON_GetObjectItem(in.state, "generation")->valueint,
	    7);
	in.fallback_fd = -1;	/* not a descriptor of ours */
	reexec_disarm(&in);
	assert_int_equal(in.state_fd, -1);
	assert_null(in.state);
}

/* An unknown version is refused, and the way back is still known. */
static void
test_blob_unknown_version(void **state)
{
	struct reexec_inherit in;
	char err[REEXEC_REASON_MAX];
	int fd;

	(void)state;
	assert_true((fd = reexec_blob_create("{\"version\":999}", err,
	    sizeof(err))) >= 0);
	set_state_env(fd, 42);
	assert_int_equal(reexec_take(&in, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "version 999"));
	assert_int_equal(in.fallback_fd, 42);
	assert_null(in.state);
	assert_null(getenv(REEXEC_ENV_STATE));
	close(fd);
	/* Not JSON at all. */
	assert_true((fd = reexec_blob_create("{garbage", err,
	    sizeof(err))) >= 0);
	set_state_env(fd, 42);
	assert_int_equal(reexec_take(&in, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not valid JSON"));
	close(fd);
	/* An ordinary start. */
	assert_int_equal(reexec_take(&in, err, sizeof(err)), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_line_accepted),
		cmocka_unit_test(test_probe_other_state_version),
		cmocka_unit_test(test_probe_without_line),
		cmocka_unit_test(test_state_version_rule),
		cmocka_unit_test(test_blob_round_trip),
		cmocka_unit_test(test_blob_unknown_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
