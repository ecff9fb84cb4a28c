/*
 * Unit tests for ops/upgrade: each test edits a real configuration file in
 * its own temporary directory through the public op_upgrade (via
 * dispatch_start), then checks the file with the daemon's loader, byte for byte
 * when nothing may change, and that no descriptor or temporary file is
 * left behind.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "testutil.h"

#define UPGRADE_PATH	"/api/v1/upgrade"
#define CONF_NAME	"egressd.conf"
#define CONF_MODE	0640
#define DIR_LEN		64	/* a mkdtemp name under /tmp */
#define PATH_LEN	512

static const char config_text[] =
    "# The test's configuration; an upgrade drops this comment.\n"
    "server: { state_dir = \".\"; pidfile = \"egressd.pid\";\n"
    "  control_socket = \"egressd.sock\"; worker_timeout = 10.0; };\n"
    "worker: { max_inflight = 8; heartbeat_interval = 0.5; };\n"
    "orchestrator: { poll_interval = 60.0; };\n"
    "store: { max_rows = 2000000L; };\n"
    "operations: { upgrade: { enabled = true; allow_keys = [\n"
    "  \"worker.max_inflight\", \"worker.heartbeat_interval\",\n"
    "  \"orchestrator.poll_interval\", \"orchestrator.tls_verify\",\n"
    "  \"log.level\", \"store.max_rows\" ]; }; };\n";

struct fixture {
	char dir[DIR_LEN];
	char path[PATH_LEN];
	char bak[PATH_LEN];
	struct egressd_config cfg;
	struct op_context ctx;
	struct tu_host host;	/* refuses host.deny_resource */
	struct tu_run op;
	int fds_before;
};

static bool
exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* ctx.cfg comes from the file, as in the daemon. */
static void
load_context(struct fixture *f)
{
	char err[CONFIG_ERR_MAX];

	if (config_load_file(&f->cfg, f->path, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	f->ctx.cfg = &f->cfg;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->fds_before = tu_count_fds();
	assert_non_null(tu_mkdtemp(f->dir, sizeof(f->dir), "upgrade"));
	snprintf(f->path, sizeof(f->path), "%s/" CONF_NAME, f->dir);
	snprintf(f->bak, sizeof(f->bak), "%s/" CONF_NAME ".bak", f->dir);
	tu_write_file(f->path, config_text, CONF_MODE);
	load_context(f);
	tu_host_init(&f->host);
	tu_run_init(&f->op, &f->ctx);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_run_free(&f->op);
	config_free(&f->cfg);
	assert_int_equal(tu_remove_tree(f->dir), 0);
	assert_int_equal(tu_count_fds(), f->fds_before);
	free(f);
	return 0;
}

/* Run the operation (always synchronous); the result is f->result. */
static cJSON *
upgrade(struct fixture *f, const char *body_json)
{
	assert_int_equal(tu_start(&f->op, UPGRADE_PATH, body_json), OPS_DONE);
	return f->op.result;
}

/* The array name of r as one comma-separated string. */
static const char *
keys(const cJSON *r, const char *name, char *buf, size_t len)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, name), *k;
	size_t n = 0;

	if (!cJSON_IsArray(a))
		fail_msg("no array %s in %s", name, cJSON_PrintUnformatted(r));
	buf[0] = '\0';
	cJSON_ArrayForEach(k, a) {
		assert_true(cJSON_IsString(k));
		n += snprintf(buf + n, len - n, "%s%s", n ? "," : "",
		    k->valuestring);
		assert_true(n < len);
	}
	return buf;
}

static bool
reloading(const cJSON *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "reloading");

	if (!cJSON_IsBool(v))
		fail_msg("no reloading in %s", cJSON_PrintUnformatted(r));
	return cJSON_IsTrue(v);
}

/* The file still holds exactly config_text, and nothing else appeared. */
static void
assert_untouched(struct fixture *f)
{
	tu_assert_file(f->path, config_text);
	assert_false(exists(f->bak));
	assert_int_equal(tu_count_entries(f->dir), 1);
}

/* The file as the daemon would load it now. */
static void
reload_file(struct fixture *f, struct egressd_config *cfg)
{
	char err[CONFIG_ERR_MAX];

	if (config_load_file(cfg, f->path, err, sizeof(err)) != 0)
		fail_msg("the upgraded file does not load: %s", err);
}

static void
test_allowed_change_applied(void **state)
{
	struct fixture *f = *state;
	struct egressd_config cfg;
	char buf[256], *now;
	struct stat sb;
	cJSON *r;

	r = upgrade(f, "{\"changes\": {\"worker.max_inflight\": 4,"
	    " \"orchestrator.poll_interval\": 30.5, \"log.level\": \"debug\","
	    " \"orchestrator.tls_verify\": false,"
	    " \"store.max_rows\": 5000000000}}");
	assert_false(ops_is_error(r));
	assert_string_equal(keys(r, "changed", buf, sizeof(buf)),
	    "worker.max_inflight,orchestrator.poll_interval,log.level,"
	    "orchestrator.tls_verify,store.max_rows");
	assert_string_equal(keys(r, "unchanged", buf, sizeof(buf)), "");
	assert_string_equal(tu_str(r, "config"), f->path);
	assert_false(reloading(r));	/* no host to ask */

	reload_file(f, &cfg);
	assert_int_equal(cfg.worker.max_inflight, 4);
	assert_true(cfg.orchestrator.poll_interval == 30.5);
	assert_int_equal(cfg.log.level, LOGL_DEBUG);
	assert_false(cfg.orchestrator.tls_verify);
	assert_true(cfg.store.max_rows == 5000000000LL);
	/* and the rest as it was */
	assert_true(cfg.worker.heartbeat_interval == 0.5);
	assert_true(cfg.server.worker_timeout == 10.0);
	assert_true(cfg.operations.upgrade.enabled);
	assert_int_equal(cfg.operations.upgrade.allow_keys.count, 6);
	config_free(&cfg);

	/* same mode; the comment is gone and the header says so */
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, CONF_MODE);
	assert_non_null(now = tu_read_file(f->path, NULL));
	assert_null(strstr(now, "an upgrade drops this comment"));
	assert_non_null(strstr(now, "the previous version is kept as "
	    CONF_NAME ".bak"));
	free(now);
	/* the previous file, byte for byte, with the same mode */
	tu_assert_file(f->bak, config_text);
	assert_int_equal(stat(f->bak, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, CONF_MODE);
	/* no temporary file left */
	assert_int_equal(tu_count_entries(f->dir), 2);
}

static void
test_reload_requested_once(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	f->ctx.host = &f->host.host;
	r = upgrade(f, "{\"changes\": {\"worker.max_inflight\": 2}}");
	assert_false(ops_is_error(r));
	assert_true(reloading(r));
	assert_int_equal(f->host.reloads, 1);
	assert_int_equal(f->host.checks, 1);
	assert_string_equal(f->host.resource, "config:worker.max_inflight");
	assert_string_equal(f->host.right, "write");
}

static void
test_reload_refused_still_written(void **state)
{
	struct fixture *f = *state;
	struct egressd_config cfg;
	cJSON *r;

	f->ctx.host = &f->host.host;
	f->host.reload_rc = -1;
	r = upgrade(f, "{\"changes\": {\"worker.max_inflight\": 2}}");
	assert_false(ops_is_error(r));
	assert_false(reloading(r));
	assert_int_equal(f->host.reloads, 1);
	reload_file(f, &cfg);
	assert_int_equal(cfg.worker.max_inflight, 2);
	config_free(&cfg);
}

static void
test_key_not_allowed(void **state)
{
	struct fixture *f = *state;

	f->ctx.host = &f->host.host;
	/* the allowed key first: nothing is applied all the same */
	tu_assert_error(upgrade(f, "{\"changes\": {\"worker.max_inflight\": 4,"
	    " \"server.workers\": 2}}"), "capability_denied",
	    "server.workers");
	assert_int_equal(f->host.checks, 0);	/* refused before any check */
	tu_assert_error(upgrade(f, "{\"changes\": {\"no.such_key\": 1}}"),
	    "capability_denied", "no.such_key");
	assert_int_equal(f->host.reloads, 0);
	assert_untouched(f);
}

static void
test_invalid_values(void **state)
{
	static const struct {
		const char *body;
		const char *needle;
	} cases[] = {
		{ "{\"changes\": {\"worker.max_inflight\": 0}}",
		    "worker.max_inflight: must be between 1 and 1024" },
		{ "{\"changes\": {\"worker.max_inflight\": \"4\"}}",
		    "worker.max_inflight: expected an integer" },
		{ "{\"changes\": {\"worker.max_inflight\": 4.5}}",
		    "worker.max_inflight: expected an integer" },
		{ "{\"changes\": {\"orchestrator.tls_verify\": 1}}",
		    "expected a boolean" },
		{ "{\"changes\": {\"orchestrator.poll_interval\": true}}",
		    "expected a number" },
		{ "{\"changes\": {\"log.level\": \"loud\"}}",
		    "log.level: must be" },
		/* the whole file is checked: this breaks another key's rule */
		{ "{\"changes\": {\"worker.heartbeat_interval\": 20}}",
		    "server.worker_timeout: must be greater than" },
		/* one bad value spoils the good ones */
		{ "{\"changes\": {\"worker.max_inflight\": 4,"
		    " \"store.max_rows\": 10}}", "store.max_rows" },
		{ "{\"changes\": {\"worker.max_inflight\": null}}",
		    "must be a number, a string or a boolean" },
		{ "{\"changes\": {\"worker.max_inflight\": [4]}}",
		    "must be a number, a string or a boolean" },
		{ "{\"changes\": {\"worker.max_inflight\": {\"a\": 1}}}",
		    "must be a number, a string or a boolean" },
		{ "{\"changes\": {\"worker.max_inflight\": 4,"
		    " \"worker.max_inflight\": 5}}", "given twice" },
		{ "{\"changes\": {}}", "at least one key" },
		{ "{\"changes\": [\"worker.max_inflight\"]}", "changes" },
		{ "{\"change\": {\"worker.max_inflight\": 4}}", "changes" },
		{ NULL, "changes" },
	};
	struct fixture *f = *state;
	size_t i;

	f->ctx.host = &f->host.host;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		tu_assert_error(upgrade(f, cases[i].body), "invalid_request",
		    cases[i].needle);
	assert_int_equal(f->host.reloads, 0);
	assert_untouched(f);
}

static void
test_no_change_no_write(void **state)
{
	struct fixture *f = *state;
	struct stat before, after;
	char buf[256];
	cJSON *r;

	f->ctx.host = &f->host.host;
	assert_int_equal(stat(f->path, &before), 0);
	/* 60 is 60.0, 2000000 is 2000000L */
	r = upgrade(f, "{\"changes\": {\"worker.max_inflight\": 8,"
	    " \"orchestrator.poll_interval\": 60,"
	    " \"store.max_rows\": 2000000}}");
	assert_false(ops_is_error(r));
	assert_string_equal(keys(r, "changed", buf, sizeof(buf)), "");
	assert_string_equal(keys(r, "unchanged", buf, sizeof(buf)),
	    "worker.max_inflight,orchestrator.poll_interval,store.max_rows");
	assert_false(reloading(r));
	assert_int_equal(f->host.reloads, 0);
	assert_int_equal(f->host.checks, 3);	/* still checked */
	assert_int_equal(stat(f->path, &after), 0);
	assert_true(before.st_ino == after.st_ino);
	assert_true(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
	    before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
	assert_untouched(f);
}

static void
test_some_unchanged(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	cJSON *r;

	f->ctx.host = &f->host.host;
	r = upgrade(f, "{\"changes\": {\"worker.max_inflight\": 8,"
	    " \"orchestrator.poll_interval\": 0.25}}");
	assert_false(ops_is_error(r));
	assert_string_equal(keys(r, "changed", buf, sizeof(buf)),
	    "orchestrator.poll_interval");
	assert_string_equal(keys(r, "unchanged", buf, sizeof(buf)),
	    "worker.max_inflight");
	assert_true(reloading(r));
	assert_int_equal(f->host.reloads, 1);
}

/* A second upgrade starts from the first one's file; .bak is the first. */
static void
test_upgrades_accumulate(void **state)
{
	struct fixture *f = *state;
	struct egressd_config cfg;
	char *first;

	assert_false(ops_is_error(upgrade(f,
	    "{\"changes\": {\"worker.max_inflight\": 3}}")));
	assert_non_null(first = tu_read_file(f->path, NULL));
	assert_false(ops_is_error(upgrade(f,
	    "{\"changes\": {\"log.level\": \"warning\"}}")));
	reload_file(f, &cfg);
	assert_int_equal(cfg.worker.max_inflight, 3);
	assert_int_equal(cfg.log.level, LOGL_WARNING);
	config_free(&cfg);
	tu_assert_file(f->bak, first);
	free(first);
	assert_int_equal(tu_count_entries(f->dir), 2);
}

static void
test_symlink_refused(void **state)
{
	struct fixture *f = *state;
	char real[PATH_LEN];

	snprintf(real, sizeof(real), "%s/real.conf", f->dir);
	assert_int_equal(rename(f->path, real), 0);
	assert_int_equal(symlink("real.conf", f->path), 0);
	config_free(&f->cfg);
	load_context(f);
	tu_assert_error(upgrade(f, "{\"changes\": {\"worker.max_inflight\": 4}}"),
	    "unsupported", "configuration file is a symlink (managed "
	    "elsewhere)");
	tu_assert_file(real, config_text);
	assert_false(exists(f->bak));
	assert_int_equal(tu_count_entries(f->dir), 2);
}

static void
test_host_denies(void **state)
{
	struct fixture *f = *state;

	f->ctx.host = &f->host.host;
	f->host.deny_resource = "config:orchestrator.poll_interval";
	tu_assert_error(upgrade(f, "{\"changes\": {\"worker.max_inflight\": 4,"
	    " \"orchestrator.poll_interval\": 5}}"), "capability_denied",
	    "no write on config:orchestrator.poll_interval");
	assert_int_equal(f->host.checks, 2);
	assert_int_equal(f->host.reloads, 0);
	assert_untouched(f);
}

/*
 * Root writes through permissions, so it gets a read-only bind mount of the
 * directory in a mount namespace of its own (skipped where not allowed).
 */
static bool
make_readonly(const char *dir)
{
	if (geteuid() != 0)
		return chmod(dir, 0555) == 0;
	if (unshare(CLONE_NEWNS) == -1 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
	    mount(dir, dir, NULL, MS_BIND, NULL) == -1)
		return false;
	if (mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY,
	    NULL) == -1) {
		umount(dir);
		return false;
	}
	return true;
}

static void
undo_readonly(const char *dir)
{
	if (geteuid() != 0)
		assert_int_equal(chmod(dir, 0700), 0);
	else
		assert_int_equal(umount(dir), 0);
}

static void
test_readonly_directory_refused(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	if (!make_readonly(f->dir))
		skip();
	r = upgrade(f, "{\"changes\": {\"worker.max_inflight\": 4}}");
	undo_readonly(f->dir);
	tu_assert_error(r, "unsupported", f->dir);
	assert_untouched(f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_allowed_change_applied),
		T(test_reload_requested_once),
		T(test_reload_refused_still_written),
		T(test_key_not_allowed),
		T(test_invalid_values),
		T(test_no_change_no_write),
		T(test_some_unchanged),
		T(test_upgrades_accumulate),
		T(test_symlink_refused),
		T(test_host_denies),
		T(test_readonly_directory_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
