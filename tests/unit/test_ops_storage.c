/*
 * Unit tests for the storage handler: key rules, the confined open, every
 * method against a temporary root, escapes (.., absolute paths, symlinks
 * out of the root), limits, pagination and a capability denial.  Each test
 * runs in BASE/root beside BASE/outside, whose contents must never change.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/jsonutil.h"
#include "ops/ops.h"
#include "ops/ops_storage.h"
#include "testutil.h"

#define STORAGE_PATH "/api/v1/agent/execute/storage/"
#define MAX_BYTES 1024
#define SECRET "secret\n"

struct fixture {
	char base[64];
	char root[PATH_MAX];
	struct egressd_config cfg;
	struct op_context ctx;
	struct tu_host host;	/* refuses host.deny_right */
};

/* base-relative path of f's directory tree. */
static void
path_of(const struct fixture *f, const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", f->base, rel);
}

static void
put_file(const struct fixture *f, const char *rel, const void *data,
    size_t len)
{
	char path[PATH_MAX];
	int fd;

	path_of(f, rel, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void
put_dir(const struct fixture *f, const char *rel)
{
	char path[PATH_MAX];

	path_of(f, rel, path, sizeof(path));
	assert_int_equal(mkdir(path, 0755), 0);
}

static void
put_link(const struct fixture *f, const char *target, const char *rel)
{
	char path[PATH_MAX];

	path_of(f, rel, path, sizeof(path));
	assert_int_equal(symlink(target, path), 0);
}

static int
lexists(const struct fixture *f, const char *rel)
{
	char path[PATH_MAX];
	struct stat sb;

	path_of(f, rel, path, sizeof(path));
	return lstat(path, &sb) == 0;
}

/* BASE holds root and outside only; outside holds its secret only. */
static void
assert_outside_intact(const struct fixture *f)
{
	char path[PATH_MAX];

	assert_int_equal(tu_count_entries(f->base), 2);
	path_of(f, "outside", path, sizeof(path));
	assert_int_equal(tu_count_entries(path), 2);
	path_of(f, "outside/secret", path, sizeof(path));
	tu_assert_file(path, SECRET);
	path_of(f, "outside/sub", path, sizeof(path));
	assert_int_equal(tu_count_entries(path), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (tu_mkdtemp(f->base, sizeof(f->base), "storage") == NULL)
		return -1;
	path_of(f, "root", f->root, sizeof(f->root));
	put_dir(f, "root");
	put_dir(f, "outside");
	put_dir(f, "outside/sub");
	put_file(f, "outside/secret", SECRET, strlen(SECRET));
	f->cfg.operations.storage.enabled = true;
	f->cfg.operations.storage.root = f->root;
	f->cfg.operations.storage.max_bytes = MAX_BYTES;
	tu_host_init(&f->host);
	f->ctx.cfg = &f->cfg;
	f->ctx.host = &f->host.host;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (tu_remove_tree(f->base) != 0)
		return -1;
	free(f);
	return 0;
}

/* Run method with a JSON body; the result (to cJSON_Delete). */
static cJSON *
call(struct fixture *f, const char *method, const char *body)
{
	char path[128];
	struct op_run run = { .ctx = &f->ctx, .path = path };

	snprintf(path, sizeof(path), STORAGE_PATH "%s", method);
	return tu_call(op_storage, &run, body);
}

static void
expect_error(struct fixture *f, const char *method, const char *body,
    const char *type)
{
	cJSON *r = call(f, method, body);

	if (!tu_is_error(r, type, NULL)) {
		char *s = cJSON_PrintUnformatted(r);

		print_error("%s %s: expected %s, got %s\n", method, body,
		    type, s);
		free(s);
		fail();
	}
	cJSON_Delete(r);
}

static void
expect_flag(struct fixture *f, const char *method, const char *key,
    const char *name, int want)
{
	char body[256];
	cJSON *r;

	snprintf(body, sizeof(body), "{\"key\": \"%s\"}", key);
	r = call(f, method, body);
	assert_false(ops_is_error(r));
	assert_string_equal(tu_str(r, "key"), key);
	assert_true(cJSON_IsBool(cJSON_GetObjectItem(r, name)));
	assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(r, name)), want);
	cJSON_Delete(r);
}

static void
write_ok(struct fixture *f, const char *key, const char *data,
    const char *encoding, double size)
{
	cJSON *b = cJSON_CreateObject(), *r = NULL;
	struct op_run run = { .ctx = &f->ctx,
	    .path = STORAGE_PATH "write" };

	cJSON_AddStringToObject(b, "key", key);
	cJSON_AddStringToObject(b, "data", data);
	if (encoding != NULL)
		cJSON_AddStringToObject(b, "encoding", encoding);
	assert_int_equal(op_storage(&run, b, &r), OPS_DONE);
	cJSON_Delete(b);
	assert_false(ops_is_error(r));
	assert_string_equal(tu_str(r, "key"), key);
	assert_true(cJSON_GetObjectItem(r, "size")->valuedouble == size);
	cJSON_Delete(r);
}

/* read key: its result, checked to be no error. */
static cJSON *
read_ok(struct fixture *f, const char *key)
{
	char body[256];
	cJSON *r;

	snprintf(body, sizeof(body), "{\"key\": \"%s\"}", key);
	r = call(f, "read", body);
	if (ops_is_error(r)) {
		print_error("read %s: %s\n", key, tu_str(r, "error"));
		fail();
	}
	assert_string_equal(tu_str(r, "key"), key);
	return r;
}

static void
test_key_check(void **state)
{
	static const char *good[] = { "a", "a/b", "a.b/c..d", "...", ".hidden",
	    "dir/.x", "a b/c-d_e", "..a", "a/...b" };
	static const char *bad[] = { "", "/abs", "a//b", "a/", "./a", "a/./b",
	    "../a", "a/..", "..", ".", "a\\b", ".egressd-tmp.x",
	    "a/.egressd-tmp.1", "/" };
	char err[128], key[STORAGE_KEY_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (storage_key_check(good[i], err, sizeof(err)) != 0)
			fail_msg("%s refused: %s", good[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (storage_key_check(bad[i], err, sizeof(err)) != -1)
			fail_msg("%s accepted", bad[i]);
		assert_true(err[0] != '\0');
	}
	memset(key, 'k', STORAGE_KEY_MAX);
	key[STORAGE_KEY_MAX] = '\0';
	assert_int_equal(storage_key_check(key, err, sizeof(err)), 0);
	strcat(key, "k");
	assert_int_equal(storage_key_check(key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer"));

	/* Prefixes: empty, and a partial last segment, are fine. */
	assert_int_equal(storage_prefix_check("", err, sizeof(err)), 0);
	assert_int_equal(storage_prefix_check("a/", err, sizeof(err)), 0);
	assert_int_equal(storage_prefix_check("a/b", err, sizeof(err)), 0);
	assert_int_equal(storage_prefix_check("a/.", err, sizeof(err)), 0);
	assert_int_equal(storage_prefix_check("a/..", err, sizeof(err)), 0);
	assert_int_equal(storage_prefix_check("../", err, sizeof(err)), -1);
	assert_int_equal(storage_prefix_check("a/../b", err, sizeof(err)),
	    -1);
	assert_int_equal(storage_prefix_check("/a", err, sizeof(err)), -1);
	assert_int_equal(storage_prefix_check("a//", err, sizeof(err)), -1);
	assert_int_equal(storage_prefix_check("a\\", err, sizeof(err)), -1);
}

/* openat2 itself refuses what key checks would have refused first. */
static void
test_open_beneath(void **state)
{
	struct fixture *f = *state;
	struct storage_fs fs;
	int fd;

	put_file(f, "root/in.txt", "in", 2);
	put_link(f, "../outside/secret", "root/out-file");
	put_link(f, "../outside", "root/out-dir");
	put_link(f, "/etc", "root/abs-dir");
	put_link(f, "in.txt", "root/in-link");
	assert_int_equal(storage_fs_open(&fs, f->root, false), 0);
	assert_int_equal(storage_fs_openat(&fs, "../outside/secret",
	    O_RDONLY, 0), -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(storage_fs_openat(&fs, "/etc/passwd", O_RDONLY, 0),
	    -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(storage_fs_openat(&fs, "out-file", O_RDONLY, 0), -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(storage_fs_openat(&fs, "out-dir/secret", O_RDONLY,
	    0), -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(storage_fs_openat(&fs, "abs-dir/passwd", O_RDONLY,
	    0), -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(storage_fs_openat(&fs, "out-dir/new",
	    O_WRONLY | O_CREAT, 0600), -1);
	fd = storage_fs_openat(&fs, "in-link", O_RDONLY, 0);
	assert_true(fd >= 0);
	close(fd);
	storage_fs_close(&fs);

	assert_int_equal(storage_fs_open(&fs, f->root, true), 0);
	assert_int_equal(storage_fs_openat(&fs, "in-link", O_RDONLY, 0), -1);
	assert_int_equal(errno, ELOOP);
	fd = storage_fs_openat(&fs, "in.txt", O_RDONLY, 0);
	assert_true(fd >= 0);
	close(fd);
	storage_fs_close(&fs);
	assert_outside_intact(f);
}

static void
test_write_read(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct stat sb;
	mode_t mask;
	cJSON *r;

	write_ok(f, "a/b/c.txt", "hello", NULL, 5);
	write_ok(f, "a/b/c.txt", "h\xc3\xa9llo w\xe2\x82\xacrld", "utf-8", 14);
	r = read_ok(f, "a/b/c.txt");
	assert_string_equal(tu_str(r, "encoding"), "utf-8");
	assert_string_equal(tu_str(r, "data"), "h\xc3\xa9llo w\xe2\x82\xacrld");
	assert_true(cJSON_GetObjectItem(r, "size")->valuedouble == 14);
	cJSON_Delete(r);
	r = call(f, "write", "{\"key\": \"top\", \"data\": \"x\", "
	    "\"encoding\": null}");
	assert_false(ops_is_error(r));
	cJSON_Delete(r);
	write_ok(f, "top", "", NULL, 0);
	r = read_ok(f, "top");
	assert_string_equal(tu_str(r, "data"), "");
	cJSON_Delete(r);

	/* mode 0640 less the umask; no temporary file left behind */
	mask = umask(0);
	umask(mask);
	path_of(f, "root/a/b/c.txt", path, sizeof(path));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640 & ~mask);
	path_of(f, "root/a/b", path, sizeof(path));
	assert_int_equal(tu_count_entries(path), 1);

	expect_flag(f, "exists", "a/b/c.txt", "exists", 1);
	expect_flag(f, "exists", "a/b", "exists", 0);
	expect_flag(f, "exists", "nope", "exists", 0);
	expect_flag(f, "exists", "a/b/c.txt/d", "exists", 0);
	expect_error(f, "read", "{\"key\": \"nope\"}", "not_found");
	expect_error(f, "read", "{\"key\": \"a/b/c.txt/d\"}", "not_found");
	expect_error(f, "read", "{\"key\": \"a/b\"}", "invalid_request");
	expect_error(f, "read_json", "{\"key\": \"a\"}", "invalid_request");
	/* a FIFO is not an object, and reading it must not block */
	path_of(f, "root/fifo", path, sizeof(path));
	assert_int_equal(mkfifo(path, 0600), 0);
	expect_error(f, "read", "{\"key\": \"fifo\"}", "invalid_request");
	expect_flag(f, "exists", "fifo", "exists", 0);
	assert_int_equal(unlink(path), 0);
	/* over a directory, or under a file: refused, nothing changed */
	expect_error(f, "write", "{\"key\": \"a/b\", \"data\": \"x\"}",
	    "invalid_request");
	expect_error(f, "write", "{\"key\": \"top/x\", \"data\": \"x\"}",
	    "invalid_request");
	path_of(f, "root/a/b", path, sizeof(path));
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(tu_count_entries(path), 1);
	assert_int_equal(tu_count_entries(f->root), 2);
	assert_outside_intact(f);
}

static void
test_bad_bodies(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "read", NULL, "invalid_request");
	expect_error(f, "read", "{}", "invalid_request");
	expect_error(f, "read", "{\"key\": 5}", "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\"}", "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\", \"data\": 1}",
	    "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\", \"data\": \"x\", "
	    "\"encoding\": \"latin1\"}", "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\", \"data\": \"x\", "
	    "\"encoding\": 7}", "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\", \"data\": \"x\", "
	    "\"encoding\": \"UTF-8\"}", "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\", \"data\": \"abc\", "
	    "\"encoding\": \"base64\"}", "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\", \"data\": \"ab=c\", "
	    "\"encoding\": \"base64\"}", "invalid_request");
	expect_error(f, "write", "{\"key\": \"k\", \"data\": \"a===\", "
	    "\"encoding\": \"base64\"}", "invalid_request");
	expect_error(f, "rename", "{\"key\": \"k\"}", "unsupported");
	expect_error(f, "", "{\"key\": \"k\"}", "unsupported");
	assert_int_equal(tu_count_entries(f->root), 0);
}

static void
test_base64(void **state)
{
	struct fixture *f = *state;
	static const unsigned char bin[] = { 0x00, 0xff, 0x80, 0x41, 0xc3,
	    0x28, 0x0a, 0x7f };
	static const char *enc[] = { "", "AA==", "AP8=", "AP+A", "AP+AQQ==",
	    "AP+AQcM=", "AP+AQcMo", "AP+AQcMoCg==", "AP+AQcMoCn8=" };
	size_t len;
	cJSON *r;

	for (len = 0; len <= sizeof(bin); len++) {
		write_ok(f, "bin", enc[len], "base64", (double)len);
		r = read_ok(f, "bin");
		assert_true(cJSON_GetObjectItem(r, "size")->valuedouble ==
		    (double)len);
		/* "" is valid UTF-8; the rest start with NUL */
		assert_string_equal(tu_str(r, "encoding"),
		    len == 0 ? "utf-8" : "base64");
		assert_string_equal(tu_str(r, "data"), enc[len]);
		cJSON_Delete(r);
	}
	/* Not UTF-8 without any NUL: overlong, surrogate, truncated */
	put_file(f, "root/overlong", "a\xc0\xaf", 3);
	put_file(f, "root/surrogate", "\xed\xa0\x80", 3);
	put_file(f, "root/cut", "ab\xe2\x82", 4);
	put_file(f, "root/high", "\xf4\x90\x80\x80", 4);
	r = read_ok(f, "overlong");
	assert_string_equal(tu_str(r, "encoding"), "base64");
	assert_string_equal(tu_str(r, "data"), "YcCv");
	cJSON_Delete(r);
	r = read_ok(f, "surrogate");
	assert_string_equal(tu_str(r, "encoding"), "base64");
	cJSON_Delete(r);
	r = read_ok(f, "cut");
	assert_string_equal(tu_str(r, "encoding"), "base64");
	cJSON_Delete(r);
	r = read_ok(f, "high");
	assert_string_equal(tu_str(r, "encoding"), "base64");
	cJSON_Delete(r);
	put_file(f, "root/four", "\xf0\x9f\x98\x80", 4);
	r = read_ok(f, "four");
	assert_string_equal(tu_str(r, "encoding"), "utf-8");
	cJSON_Delete(r);
}

static void
test_read_json(void **state)
{
	struct fixture *f = *state;
	char deep[2 * JSON_MAX_DEPTH + 1];
	cJSON *r, *want;

	put_file(f, "root/doc.json", "{\"a\": [1, 2, {\"b\": null}]}\n", 27);
	r = call(f, "read_json", "{\"key\": \"doc.json\"}");
	assert_false(ops_is_error(r));
	assert_string_equal(tu_str(r, "key"), "doc.json");
	want = cJSON_Parse("{\"a\": [1, 2, {\"b\": null}]}");
	assert_true(cJSON_Compare(cJSON_GetObjectItem(r, "data"), want, 1));
	assert_null(cJSON_GetObjectItem(r, "size"));
	cJSON_Delete(want);
	cJSON_Delete(r);
	put_file(f, "root/num", "42", 2);
	r = call(f, "read_json", "{\"key\": \"num\"}");
	assert_true(cJSON_GetObjectItem(r, "data")->valuedouble == 42);
	cJSON_Delete(r);

	put_file(f, "root/trailing", "{} x", 4);
	expect_error(f, "read_json", "{\"key\": \"trailing\"}",
	    "invalid_request");
	put_file(f, "root/text", "not json", 8);
	expect_error(f, "read_json", "{\"key\": \"text\"}", "invalid_request");
	put_file(f, "root/empty", "", 0);
	expect_error(f, "read_json", "{\"key\": \"empty\"}", "invalid_request");
	put_file(f, "root/nul", "{}\0{}", 5);
	expect_error(f, "read_json", "{\"key\": \"nul\"}", "invalid_request");
	/* the result around it must stay within JSON_MAX_DEPTH */
	memset(deep, '[', JSON_MAX_DEPTH - 1);
	memset(deep + JSON_MAX_DEPTH - 1, ']', JSON_MAX_DEPTH - 1);
	put_file(f, "root/deep", deep, 2 * (JSON_MAX_DEPTH - 1));
	r = call(f, "read_json", "{\"key\": \"deep\"}");
	assert_false(ops_is_error(r));
	cJSON_Delete(r);
	memset(deep, '[', JSON_MAX_DEPTH);
	memset(deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	put_file(f, "root/deep", deep, 2 * JSON_MAX_DEPTH);
	expect_error(f, "read_json", "{\"key\": \"deep\"}", "invalid_request");
	expect_error(f, "read_json", "{\"key\": \"missing\"}", "not_found");
}

static void
test_limits(void **state)
{
	struct fixture *f = *state;
	char *big = malloc(2 * MAX_BYTES + 1), *b64;
	cJSON *r;
	size_t i;

	assert_non_null(big);
	memset(big, 'x', 2 * MAX_BYTES);
	big[MAX_BYTES] = '\0';
	write_ok(f, "exact", big, NULL, MAX_BYTES);
	r = read_ok(f, "exact");
	cJSON_Delete(r);
	big[MAX_BYTES] = 'x';
	big[MAX_BYTES + 1] = '\0';
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "key", "big/x");
	cJSON_AddStringToObject(r, "data", big);
	b64 = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	expect_error(f, "write", b64, "limit_exceeded");
	free(b64);
	/* MAX_BYTES + 3 bytes as base64: refused before decoding */
	b64 = calloc(1, 4 * ((MAX_BYTES + 3) / 3) + 128);
	assert_non_null(b64);
	strcpy(b64, "{\"key\": \"big/y\", \"encoding\": \"base64\", "
	    "\"data\": \"");
	for (i = 0; i < (MAX_BYTES + 3) / 3; i++)
		strcat(b64, "AAAA");
	strcat(b64, "\"}");
	expect_error(f, "write", b64, "limit_exceeded");
	free(b64);
	/* nothing was written, not even the parent directory */
	assert_false(lexists(f, "root/big"));

	big[2 * MAX_BYTES] = '\0';
	put_file(f, "root/huge", big, 2 * MAX_BYTES);
	expect_error(f, "read", "{\"key\": \"huge\"}", "limit_exceeded");
	expect_error(f, "read_json", "{\"key\": \"huge\"}", "limit_exceeded");
	free(big);
	assert_int_equal(tu_count_entries(f->root), 2);
}

static void
test_delete(void **state)
{
	struct fixture *f = *state;

	write_ok(f, "d/one", "1", NULL, 1);
	expect_flag(f, "delete", "d/one", "deleted", 1);
	assert_false(lexists(f, "root/d/one"));
	expect_flag(f, "delete", "d/one", "deleted", 0);
	expect_flag(f, "delete", "no/such/dir", "deleted", 0);
	expect_flag(f, "exists", "d/one", "exists", 0);
	expect_error(f, "delete", "{\"key\": \"d\"}", "invalid_request");
	assert_true(lexists(f, "root/d"));
	/* a symlink is removed itself; what it points at stays */
	put_link(f, "../outside/secret", "root/link");
	expect_flag(f, "delete", "link", "deleted", 1);
	assert_false(lexists(f, "root/link"));
	assert_outside_intact(f);
}

static void
test_escapes(void **state)
{
	struct fixture *f = *state;
	static const char *keys[] = { "../outside/secret", "/etc/passwd",
	    "a/../../outside/secret", "..", "./x" };
	static const char *methods[] = { "read", "read_json", "write",
	    "delete", "exists" };
	char body[256];
	size_t i, j;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		for (j = 0; j < sizeof(methods) / sizeof(methods[0]); j++) {
			snprintf(body, sizeof(body), "{\"key\": \"%s\", "
			    "\"data\": \"pwned\"}", keys[i]);
			expect_error(f, methods[j], body, "invalid_request");
		}
	expect_error(f, "list_objects", "{\"prefix\": \"../\"}",
	    "invalid_request");
	expect_error(f, "list_objects", "{\"prefix\": \"/etc/\"}",
	    "invalid_request");

	put_link(f, "../outside", "root/out");
	put_link(f, "../outside/secret", "root/sfile");
	put_link(f, "/etc/passwd", "root/abs");
	for (j = 0; j < sizeof(methods) / sizeof(methods[0]); j++) {
		if (strcmp(methods[j], "delete") != 0) {
			expect_error(f, methods[j], "{\"key\": \"sfile\", "
			    "\"data\": \"pwned\"}", "capability_denied");
			expect_error(f, methods[j], "{\"key\": \"abs\", "
			    "\"data\": \"pwned\"}", "capability_denied");
		}
		expect_error(f, methods[j], "{\"key\": \"out/secret\", "
		    "\"data\": \"pwned\"}", "capability_denied");
		expect_error(f, methods[j], "{\"key\": \"out/sub/new\", "
		    "\"data\": \"pwned\"}", "capability_denied");
		expect_error(f, methods[j], "{\"key\": \"out/new/deeper\", "
		    "\"data\": \"pwned\"}", "capability_denied");
	}
	/* the links are still there, and the listing skips them */
	assert_true(lexists(f, "root/sfile"));
	assert_true(lexists(f, "root/out"));
	expect_error(f, "exists", "{\"key\": \"out\"}", "capability_denied");
	{
		cJSON *r = call(f, "list_objects", "{}");

		assert_int_equal(cJSON_GetArraySize(
		    cJSON_GetObjectItem(r, "keys")), 0);
		cJSON_Delete(r);
	}
	assert_int_equal(tu_count_entries(f->root), 3);
	assert_outside_intact(f);
}

static void
test_list_escape_prefix(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	put_link(f, "../outside", "root/out");
	/* a listing never goes through a symlink: nothing to show */
	r = call(f, "list_objects", "{\"prefix\": \"out/\"}");
	assert_false(ops_is_error(r));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "keys")),
	    0);
	cJSON_Delete(r);
	assert_outside_intact(f);
}

static void
test_symlinks_inside(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	put_file(f, "root/real.txt", "real", 4);
	put_dir(f, "root/d");
	put_file(f, "root/d/x", "x", 1);
	put_link(f, "real.txt", "root/alias");
	put_link(f, "d", "root/dlink");
	put_link(f, "missing", "root/dangling");

	f->cfg.operations.storage.no_symlinks = false;
	r = read_ok(f, "alias");
	assert_string_equal(tu_str(r, "data"), "real");
	cJSON_Delete(r);
	r = read_ok(f, "dlink/x");
	assert_string_equal(tu_str(r, "data"), "x");
	cJSON_Delete(r);
	expect_flag(f, "exists", "alias", "exists", 1);
	r = call(f, "list_objects", "{}");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "keys")),
	    3);
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "keys"),
	    0)->valuestring, "alias");
	cJSON_Delete(r);

	f->cfg.operations.storage.no_symlinks = true;
	expect_error(f, "read", "{\"key\": \"alias\"}", "capability_denied");
	expect_error(f, "read", "{\"key\": \"dlink/x\"}", "capability_denied");
	expect_error(f, "exists", "{\"key\": \"alias\"}", "capability_denied");
	expect_error(f, "write", "{\"key\": \"alias\", \"data\": \"y\"}",
	    "capability_denied");
	expect_error(f, "write", "{\"key\": \"dlink/y\", \"data\": \"y\"}",
	    "capability_denied");
	assert_false(lexists(f, "root/d/y"));
	r = call(f, "list_objects", "{}");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "keys")),
	    2);
	cJSON_Delete(r);
	r = read_ok(f, "real.txt");
	assert_string_equal(tu_str(r, "data"), "real");
	cJSON_Delete(r);

	/* allowed again: a write replaces the link, not its target */
	f->cfg.operations.storage.no_symlinks = false;
	write_ok(f, "alias", "new", NULL, 3);
	r = read_ok(f, "real.txt");
	assert_string_equal(tu_str(r, "data"), "real");
	cJSON_Delete(r);
	assert_outside_intact(f);
}

/* list_objects with body; its keys joined by ',' into out. */
static const char *
list_keys(struct fixture *f, const char *body, char *out, size_t len,
    char *cursor, size_t cursorlen)
{
	cJSON *r = call(f, "list_objects", body), *k, *next;
	size_t off = 0;

	if (ops_is_error(r)) {
		print_error("list %s: %s\n", body, tu_str(r, "error"));
		fail();
	}
	out[0] = '\0';
	cJSON_ArrayForEach(k, cJSON_GetObjectItem(r, "keys"))
		off += (size_t)snprintf(out + off, len - off, "%s%s",
		    off ? "," : "", k->valuestring);
	next = cJSON_GetObjectItem(r, "next_cursor");
	assert_non_null(next);
	if (cJSON_IsNull(next))
		cursor[0] = '\0';
	else
		snprintf(cursor, cursorlen, "%s", tu_str(r, "next_cursor"));
	cJSON_Delete(r);
	return out;
}

/* Every page of a listing (prefix NULL: none), joined by '|' into all. */
static void
list_pages(struct fixture *f, const char *prefix, int limit, char *all,
    size_t len)
{
	char out[512], cursor[256] = "", *body;
	size_t off = 0;
	int pages;
	cJSON *b;

	for (pages = 0; pages < 10; pages++) {
		b = cJSON_CreateObject();
		cJSON_AddNumberToObject(b, "limit", limit);
		if (prefix != NULL)
			cJSON_AddStringToObject(b, "prefix", prefix);
		if (cursor[0] != '\0')
			cJSON_AddStringToObject(b, "cursor", cursor);
		body = cJSON_PrintUnformatted(b);
		cJSON_Delete(b);
		list_keys(f, body, out, sizeof(out), cursor, sizeof(cursor));
		free(body);
		assert_true(off + strlen(out) + 2 < len);
		off += (size_t)snprintf(all + off, len - off, "%s%s",
		    off ? "|" : "", out);
		if (cursor[0] == '\0')
			return;
	}
	fail_msg("more than 10 pages");
}

static void
test_list(void **state)
{
	struct fixture *f = *state;
	static const char *keys[] = { "z", "a/2", "a/1", "a-b", "a.txt",
	    "b/x", "a/b/c", "a/b/a" };
	char out[512], cursor[256], all[512];
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		write_ok(f, keys[i], keys[i], NULL, (double)strlen(keys[i]));
	put_file(f, "root/a/.egressd-tmp.0123", "half", 4);
	put_dir(f, "root/empty");
	put_link(f, "a", "root/alink");

	list_keys(f, "{}", out, sizeof(out), cursor, sizeof(cursor));
	assert_string_equal(out, "a-b,a.txt,a/1,a/2,a/b/a,a/b/c,b/x,z");
	assert_string_equal(cursor, "");
	list_keys(f, "{\"prefix\": \"a/\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "a/1,a/2,a/b/a,a/b/c");
	list_keys(f, "{\"prefix\": \"a\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "a-b,a.txt,a/1,a/2,a/b/a,a/b/c");
	list_keys(f, "{\"prefix\": \"a/b\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "a/b/a,a/b/c");
	list_keys(f, "{\"prefix\": \"none/\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "");
	list_keys(f, "{\"prefix\": \"z/\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "");

	/* pages of 3, then of 1 with a prefix: the same keys in order */
	list_pages(f, NULL, 3, all, sizeof(all));
	assert_string_equal(all, "a-b,a.txt,a/1|a/2,a/b/a,a/b/c|b/x,z");
	list_pages(f, "a/", 1, all, sizeof(all));
	assert_string_equal(all, "a/1|a/2|a/b/a|a/b/c");
	/* a cursor past everything, or not a returned key's shape */
	list_keys(f, "{\"cursor\": \"zz\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "");
	list_keys(f, "{\"cursor\": \"a/b\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "a/b/a,a/b/c,b/x,z");
	expect_error(f, "list_objects", "{\"cursor\": \"../x\"}",
	    "invalid_request");
	expect_error(f, "list_objects", "{\"cursor\": 3}", "invalid_request");
	expect_error(f, "list_objects", "{\"prefix\": \"a/\", "
	    "\"cursor\": \"b/x\"}", "invalid_request");
	expect_error(f, "list_objects", "{\"limit\": 0}", "invalid_request");
	expect_error(f, "list_objects", "{\"limit\": 10001}",
	    "invalid_request");
	expect_error(f, "list_objects", "{\"limit\": 1.5}", "invalid_request");
	expect_error(f, "list_objects", "{\"limit\": \"3\"}",
	    "invalid_request");
	expect_error(f, "list_objects", "{\"prefix\": 3}", "invalid_request");
	list_keys(f, "{\"limit\": 10000, \"prefix\": null, \"cursor\": null}",
	    out, sizeof(out), cursor, sizeof(cursor));
	assert_string_equal(out, "a-b,a.txt,a/1,a/2,a/b/a,a/b/c,b/x,z");
}

static void
test_capabilities(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	write_ok(f, "k/v", "1", NULL, 1);
	assert_string_equal(f->host.resource, "storage:k/v");
	assert_string_equal(f->host.right, "write");
	r = read_ok(f, "k/v");
	cJSON_Delete(r);
	assert_string_equal(f->host.right, "read");
	expect_flag(f, "exists", "k/v", "exists", 1);
	assert_string_equal(f->host.right, "read");
	r = call(f, "list_objects", "{\"prefix\": \"k/\"}");
	cJSON_Delete(r);
	assert_string_equal(f->host.resource, "storage:k/");
	assert_string_equal(f->host.right, "read");
	r = call(f, "list_objects", "{}");
	cJSON_Delete(r);
	assert_string_equal(f->host.resource, "storage:");

	/* denied: the host's error comes back, nothing is touched */
	f->host.deny_right = "write";
	expect_error(f, "write", "{\"key\": \"new/file\", \"data\": \"x\"}",
	    "capability_denied");
	assert_string_equal(f->host.resource, "storage:new/file");
	assert_false(lexists(f, "root/new"));
	f->host.deny_right = "delete";
	expect_error(f, "delete", "{\"key\": \"k/v\"}", "capability_denied");
	assert_string_equal(f->host.right, "delete");
	assert_true(lexists(f, "root/k/v"));
	f->host.deny_right = "read";
	expect_error(f, "read", "{\"key\": \"k/v\"}", "capability_denied");
	expect_error(f, "list_objects", "{}", "capability_denied");
	/* a bad key is refused before the host is asked */
	f->host.checks = 0;
	expect_error(f, "read", "{\"key\": \"../x\"}", "invalid_request");
	assert_int_equal(f->host.checks, 0);
	/* no host at all: allowed */
	f->ctx.host = NULL;
	r = read_ok(f, "k/v");
	cJSON_Delete(r);
	assert_int_equal(tu_count_entries(f->root), 1);
	assert_outside_intact(f);
}

static void
test_root_errors(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	f->cfg.operations.storage.root = "";
	expect_error(f, "read", "{\"key\": \"k\"}", "internal");
	path_of(f, "outside/secret", path, sizeof(path));
	f->cfg.operations.storage.root = path;
	expect_error(f, "write", "{\"key\": \"k\", \"data\": \"x\"}",
	    "internal");
	path_of(f, "missing", path, sizeof(path));
	expect_error(f, "list_objects", "{}", "internal");
	f->ctx.cfg = NULL;
	expect_error(f, "exists", "{\"key\": \"k\"}", "internal");
	assert_outside_intact(f);
}

/* Run method with a body read as the worker reads one (json_parse_limited). */
static cJSON *
call_limited(struct fixture *f, const char *method, const char *body)
{
	char path[128], err[128];
	struct op_run run = { .ctx = &f->ctx };
	cJSON *b = json_parse_limited(body, strlen(body), 1 << 20, err,
	    sizeof(err)), *r = NULL;

	assert_non_null(b);
	snprintf(path, sizeof(path), STORAGE_PATH "%s", method);
	run.path = path;
	assert_int_equal(op_storage(&run, b, &r), OPS_DONE);
	cJSON_Delete(b);
	assert_non_null(r);
	return r;
}

static void
expect_limited_error(struct fixture *f, const char *method, const char *body,
    const char *type, const char *needle)
{
	cJSON *r = call_limited(f, method, body);
	const cJSON *t = cJSON_GetObjectItem(r, "error_type");
	const cJSON *e = cJSON_GetObjectItem(r, "error");

	if (!cJSON_IsString(t) || strcmp(t->valuestring, type) != 0 ||
	    !cJSON_IsString(e) || strstr(e->valuestring, needle) == NULL)
		fail_msg("%s %s: want %s containing \"%s\", got %s", method,
		    body, type, needle, cJSON_PrintUnformatted(r));
	cJSON_Delete(r);
}

/*
 * A string with \u0000 is refused wherever the body gives one: nothing
 * is written cut short at the NUL, and binary data goes as base64.
 */
static void
test_nul_in_body(void **state)
{
	struct fixture *f = *state;
	cJSON *r;

	expect_limited_error(f, "write", "{\"key\": \"n\", "
	    "\"data\": \"ab\\u0000cd\"}", "invalid_request", "NUL");
	assert_false(lexists(f, "root/n"));
	expect_limited_error(f, "write", "{\"key\": \"n\\u0000x\", "
	    "\"data\": \"ab\"}", "invalid_request", "key");
	assert_false(lexists(f, "root/n"));
	expect_limited_error(f, "write", "{\"key\": \"n\", \"data\": "
	    "\"YQ==\", \"encoding\": \"base64\\u0000x\"}",
	    "invalid_request", "encoding");
	assert_false(lexists(f, "root/n"));
	expect_limited_error(f, "read", "{\"key\": \"n\\u0000\"}",
	    "invalid_request", "key");
	expect_limited_error(f, "list_objects", "{\"prefix\": \"\\u0000\"}",
	    "invalid_request", "prefix");
	expect_limited_error(f, "list_objects", "{\"cursor\": \"a\\u0000\"}",
	    "invalid_request", "cursor");
	/* the same bytes as base64 are written whole */
	r = call_limited(f, "write", "{\"key\": \"n\", \"data\": "
	    "\"YWIAY2Q=\", \"encoding\": \"base64\"}");
	assert_false(ops_is_error(r));
	assert_int_equal(cJSON_GetObjectItem(r, "size")->valueint, 5);
	cJSON_Delete(r);
	r = call_limited(f, "read", "{\"key\": \"n\"}");
	assert_string_equal(tu_str(r, "encoding"), "base64");
	assert_string_equal(tu_str(r, "data"), "YWIAY2Q=");
	cJSON_Delete(r);
	assert_outside_intact(f);
}

/* The message of error result r, checked to be valid UTF-8. */
static const char *
utf8_message(const cJSON *r)
{
	const char *m = tu_str(r, "error");

	if (!json_utf8_valid(m, strlen(m)))
		fail_msg("not UTF-8: %s", m);
	return m;
}

/*
 * Error messages are valid UTF-8 by construction: a cut never splits a
 * character (the buffer's end, a "%.Ns" precision), invalid bytes in
 * what is quoted become U+FFFD.
 */
static void
test_error_utf8(void **state)
{
	struct fixture *f = *state;
	char big[1200], key[400], body[512];
	const char *m;
	size_t i;
	cJSON *r;

	/* "a" then 2-byte characters: every cut at an even length splits one */
	big[0] = 'a';
	for (i = 1; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[i] = '\0';
	r = ops_error("internal", "%s", big);
	m = utf8_message(r);
	assert_true(strlen(m) < OPS_ERROR_MAX);
	assert_true(strlen(m) >= OPS_ERROR_MAX - 4);
	assert_memory_equal(m, big, strlen(m));
	cJSON_Delete(r);
	r = ops_error("internal", "<%.4s>", "\xc3\xa9\xe2\x82\xac!");
	assert_string_equal(utf8_message(r), "<\xc3\xa9>");
	cJSON_Delete(r);
	r = ops_error("internal", "[%s]", "x\xffy\xc3");
	assert_string_equal(utf8_message(r), "[x\xef\xbf\xbdy]");
	cJSON_Delete(r);

	/* a key quoted in a message is cut at 200 bytes, not in a character */
	key[0] = 'a';
	for (i = 1; i < 200; i += 2)
		memcpy(key + i, "\xc3\xa9", 2);
	memcpy(key + i, "/x", 3);
	snprintf(body, sizeof(body), "{\"key\": \"%s\"}", key);
	r = call(f, "read", body);
	assert_string_equal(tu_str(r, "error_type"), "not_found");
	assert_non_null(strstr(utf8_message(r), "no object a\xc3\xa9"));
	cJSON_Delete(r);
	assert_outside_intact(f);
}

/* list_keys' result for body, checked to print as valid UTF-8. */
static void
expect_utf8_result(struct fixture *f, const char *method, const char *body)
{
	cJSON *r = call(f, method, body);
	char *text = cJSON_PrintUnformatted(r);

	assert_non_null(text);
	if (ops_is_error(r) || !json_utf8_valid(text, strlen(text)))
		fail_msg("%s %s: %s", method, body, text);
	free(text);
	cJSON_Delete(r);
}

/*
 * A file name that is not UTF-8 is listed with \xHH for each byte that
 * is not, and that spelling is the key everywhere else: read, cursor,
 * prefix, write, the capability.  Every other spelling is refused.
 */
static void
test_list_not_utf8(void **state)
{
	struct fixture *f = *state;
	char out[512], cursor[256], all[512];
	cJSON *r;

	put_file(f, "root/caf\xe9.txt", "latin-1", 7);
	put_file(f, "root/caf\xc3\xa9.txt", "utf-8", 5);
	put_dir(f, "root/d\xff");
	put_file(f, "root/d\xff/x", "x", 1);

	expect_utf8_result(f, "list_objects", "{}");
	list_keys(f, "{}", out, sizeof(out), cursor, sizeof(cursor));
	assert_string_equal(out,
	    "caf\xc3\xa9.txt,caf\\xE9.txt,d\\xFF/x");
	list_pages(f, NULL, 1, all, sizeof(all));
	assert_string_equal(all,
	    "caf\xc3\xa9.txt|caf\\xE9.txt|d\\xFF/x");
	list_keys(f, "{\"prefix\": \"d\\\\xFF/\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "d\\xFF/x");
	assert_string_equal(f->host.resource, "storage:d\\xFF/");

	r = call(f, "read", "{\"key\": \"caf\\\\xE9.txt\"}");
	assert_false(ops_is_error(r));
	assert_string_equal(tu_str(r, "key"), "caf\\xE9.txt");
	assert_string_equal(tu_str(r, "data"), "latin-1");
	cJSON_Delete(r);
	assert_string_equal(f->host.resource, "storage:caf\\xE9.txt");
	expect_utf8_result(f, "exists", "{\"key\": \"d\\\\xFF/x\"}");
	write_ok(f, "new\\xFF", "n", NULL, 1);
	assert_true(lexists(f, "root/new\xff"));

	/* one spelling per key */
	expect_error(f, "read", "{\"key\": \"caf\\\\xe9.txt\"}",
	    "invalid_request");
	expect_error(f, "read", "{\"key\": \"caf\\\\xC3\\\\xA9.txt\"}",
	    "invalid_request");
	expect_error(f, "read", "{\"key\": \"caf\xe9.txt\"}",
	    "invalid_request");
	expect_error(f, "read", "{\"key\": \"a\\\\x00\"}", "invalid_request");
	expect_error(f, "read", "{\"key\": \"a\\\\x4\"}", "invalid_request");
	expect_error(f, "read", "{\"key\": \"a\\\\b\"}", "invalid_request");
	expect_error(f, "read", "{\"key\": \"\\\\x2F\"}", "invalid_request");
	expect_error(f, "list_objects", "{\"cursor\": \"caf\xe9.txt\"}",
	    "invalid_request");
	assert_outside_intact(f);
}

/* A host granting storage:allowed/ and below only (any right). */
static int
allowed_prefix_check(struct op_run *run, const char *resource,
    const char *right, cJSON **error)
{
	struct tu_host *h = run->ctx->host->arg;

	h->checks++;
	snprintf(h->resource, sizeof(h->resource), "%s", resource);
	if (strncmp(resource, "storage:allowed/", 16) == 0)
		return 0;
	*error = ops_error("capability_denied", "no %s on %s", right,
	    resource);
	return -1;
}

/*
 * A symlink under an allowed prefix that leads to another key inside the
 * root reaches it only with the capability on that key: every method
 * checks what the key resolves to, before touching anything.
 */
static void
test_symlink_out_of_prefix(void **state)
{
	struct fixture *f = *state;
	static const char *const methods[] = { "read", "read_json", "exists",
	    "write", "delete" };
	static const char *const keys[] = { "allowed/link/secret",
	    "allowed/slink", "allowed/dangling", "allowed/link/nothing",
	    "allowed/link/new/deeper", "allowed/up/forbidden/secret" };
	char body[256], out[512], cursor[256];
	size_t i, j;
	cJSON *r;

	f->host.host.check = allowed_prefix_check;
	put_dir(f, "root/allowed");
	put_dir(f, "root/forbidden");
	put_file(f, "root/forbidden/secret", "{\"top\": 1}", 10);
	put_file(f, "root/allowed/ok.txt", "ok", 2);
	put_link(f, "../forbidden", "root/allowed/link");
	put_link(f, "../forbidden/secret", "root/allowed/slink");
	put_link(f, "../forbidden/nothing", "root/allowed/dangling");
	put_link(f, "..", "root/allowed/up");
	put_link(f, "ok.txt", "root/allowed/inner");

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		for (j = 0; j < sizeof(methods) / sizeof(methods[0]); j++) {
			/* write and delete act on a last symlink itself */
			if ((strcmp(methods[j], "delete") == 0 ||
			    strcmp(methods[j], "write") == 0) &&
			    (strcmp(keys[i], "allowed/slink") == 0 ||
			    strcmp(keys[i], "allowed/dangling") == 0))
				continue;
			snprintf(body, sizeof(body), "{\"key\": \"%s\", "
			    "\"data\": \"pwned\"}", keys[i]);
			expect_error(f, methods[j], body, "capability_denied");
			assert_true(strncmp(f->host.resource, "storage:forbidden",
			    17) == 0 || strncmp(f->host.resource,
			    "storage:up", 10) == 0);
		}
	assert_false(lexists(f, "root/forbidden/new"));
	assert_false(lexists(f, "root/forbidden/nothing"));
	assert_true(lexists(f, "root/forbidden/secret"));

	/* within the prefix: one check, as before */
	f->host.checks = 0;
	r = read_ok(f, "allowed/inner");
	assert_string_equal(tu_str(r, "data"), "ok");
	cJSON_Delete(r);
	assert_int_equal(f->host.checks, 2);
	f->host.checks = 0;
	r = read_ok(f, "allowed/ok.txt");
	cJSON_Delete(r);
	assert_int_equal(f->host.checks, 1);
	/* listed: what resolves within the prefix; never the way out */
	list_keys(f, "{\"prefix\": \"allowed/\"}", out, sizeof(out), cursor,
	    sizeof(cursor));
	assert_string_equal(out, "allowed/inner,allowed/ok.txt");
	/* a write replaces the link, a delete removes it, not its target */
	write_ok(f, "allowed/dangling", "mine", NULL, 4);
	assert_false(lexists(f, "root/forbidden/nothing"));
	expect_flag(f, "delete", "allowed/slink", "deleted", 1);
	assert_true(lexists(f, "root/forbidden/secret"));
	r = call(f, "read", "{\"key\": \"allowed/dangling\"}");
	assert_string_equal(tu_str(r, "data"), "mine");
	cJSON_Delete(r);
	assert_outside_intact(f);
}

/*
 * read_json builds valid UTF-8: a file whose JSON is not UTF-8 is refused,
 * and a string with \u0000 comes back as written, not cut at the NUL.
 */
static void
test_read_json_utf8(void **state)
{
	struct fixture *f = *state;
	static const char latin1[] = "{\"name\": \"caf\xe9\"}";
	static const char nul[] = "{\"a\": \"x\\u0000y\", \"b\": \"ok\"}";
	char *text;
	cJSON *r;

	put_file(f, "root/latin1.json", latin1, strlen(latin1));
	expect_error(f, "read_json", "{\"key\": \"latin1.json\"}",
	    "invalid_request");
	put_file(f, "root/nul.json", nul, strlen(nul));
	r = call(f, "read_json", "{\"key\": \"nul.json\"}");
	assert_false(ops_is_error(r));
	text = cJSON_PrintUnformatted(r);
	assert_non_null(text);
	assert_true(json_utf8_valid(text, strlen(text)));
	assert_non_null(strstr(text, "\"data\":{\"a\":\"x\\u0000y\",\"b\":\"ok\"}"));
	free(text);
	cJSON_Delete(r);
	assert_outside_intact(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_check),
		cmocka_unit_test_setup_teardown(test_open_beneath, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_read, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_bodies, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_base64, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_json, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escapes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_escape_prefix, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_inside, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capabilities, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_root_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nul_in_body, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_error_utf8, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_not_utf8, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_symlink_out_of_prefix,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_json_utf8, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
