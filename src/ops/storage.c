/*
 * ops/storage: /api/v1/agent/execute/storage/{method} — read, read_json,
 * write, delete, exists and list_objects on objects under
 * operations.storage.root (DESIGN section 5).  This file turns bodies into
 * calls of ops/storage_fs.c and errnos into error results; the capability
 * is checked before anything under the root is touched.
 *
 * Keys cross the API in their spelling (ops_storage.h): a file name that
 * is not UTF-8 is listed with \xHH escapes, and the same spelling names it
 * in a body, a cursor, a result and the capability, so every result is
 * valid UTF-8.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/jsonutil.h"
#include "ops/ops.h"
#include "ops/ops_storage.h"

#define STORAGE_PATH		"/api/v1/agent/execute/storage/"
#define STORAGE_LIST_DEFAULT	1000
#define STORAGE_LIST_MAX	10000
/* "storage:" and a key's spelling. */
#define STORAGE_RESOURCE_MAX	(sizeof("storage:") + STORAGE_SPELLED_MAX)
/* Keys are cut to this in messages (OPS_ERROR_MAX bytes in all). */
#define STORAGE_MSG_KEY		"%.200s"

/*
 * One operation: its body, key (or list prefix) and open root.  The key
 * is what the file system sees; name is its spelling (ops_storage.h), the
 * only form results, messages and capabilities show.
 */
struct storage_req {
	struct op_run *run;
	const char *right;
	const cJSON *body;
	const char *key;
	const char *name;
	struct storage_fs fs;
	size_t max_bytes;
	cJSON *denied;		/* the host's refusal of a resolved key */
	char keybuf[STORAGE_SPELLED_MAX + 1];
};

typedef cJSON *(*storage_fn)(struct storage_req *req);

static cJSON *storage_read(struct storage_req *);
static cJSON *storage_read_json(struct storage_req *);
static cJSON *storage_write(struct storage_req *);
static cJSON *storage_delete(struct storage_req *);
static cJSON *storage_exists(struct storage_req *);
static cJSON *storage_list(struct storage_req *);

static const struct storage_method {
	const char *name;
	const char *right;
	bool listing;		/* the body has a "prefix", not a "key" */
	storage_fn run;
} storage_methods[] = {
	{ "read", "read", false, storage_read },
	{ "read_json", "read", false, storage_read_json },
	{ "write", "write", false, storage_write },
	{ "delete", "delete", false, storage_delete },
	{ "exists", "read", false, storage_exists },
	{ "list_objects", "read", true, storage_list },
};

/* An errno of ops/storage_fs.c (see ops_storage.h) as an error result. */
static cJSON *
storage_errno(struct storage_req *req, int err)
{
	const char *k = req->name;
	cJSON *o;

	switch (err) {
	case EACCES:
		if ((o = req->denied) != NULL) {
			req->denied = NULL;
			return o;
		}
		return ops_error("capability_denied", STORAGE_MSG_KEY
		    ": permission denied", k);
	case EPERM:
		return ops_error("capability_denied", STORAGE_MSG_KEY
		    " resolves to a name no key can have", k);
	case ENOENT:
	case ENOTDIR:
		return ops_error("not_found", "no object " STORAGE_MSG_KEY, k);
	case EXDEV:
		return ops_error("capability_denied", STORAGE_MSG_KEY
		    " resolves outside the storage root", k);
	case ELOOP:
		if (req->fs.no_symlinks)
			return ops_error("capability_denied", STORAGE_MSG_KEY
			    " goes through a symlink, and "
			    "operations.storage.no_symlinks is set", k);
		return ops_error("invalid_request", STORAGE_MSG_KEY
		    ": too many levels of symlinks", k);
	case EISDIR:
		return ops_error("invalid_request", STORAGE_MSG_KEY
		    " is a directory, not an object", k);
	case ENODEV:
	case ENXIO:		/* a socket */
		return ops_error("invalid_request", STORAGE_MSG_KEY
		    " is not a regular file", k);
	case EFBIG:
		return ops_error("limit_exceeded", STORAGE_MSG_KEY " is larger "
		    "than operations.storage.max_bytes (%zu)", k,
		    req->max_bytes);
	case ENOSYS:
		return ops_error("internal", "openat2(2) is not available "
		    "(Linux 5.6 or later is needed); storage is refused");
	default:
		return ops_error("internal", STORAGE_MSG_KEY ": %s", k,
		    strerror(err));
	}
}

/* The result object, or NULL (out of memory) when any member is missing. */
static cJSON *
storage_result(cJSON *o, bool complete)
{
	if (o != NULL && !complete) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static int
storage_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The decoded size of padded base64 text, or -1 when it is not that. */
static int64_t
storage_b64_size(const char *s, size_t len)
{
	size_t pad = 0, i;

	if (len % 4 != 0)
		return -1;
	while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (storage_b64_value((unsigned char)s[i]) == -1)
			return -1;
	return (int64_t)(len / 4 * 3 - pad);
}

/* Decode text storage_b64_size accepted into out. */
static void
storage_b64_decode(const char *s, size_t len, unsigned char *out)
{
	uint32_t v = 0;
	size_t i, n = 0;
	int bits = 0;

	for (i = 0; i < len && s[i] != '='; i++) {
		v = (v << 6 | (uint32_t)storage_b64_value((unsigned char)s[i]))
		    & 0xffffff;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(v >> bits);
		}
	}
}

static cJSON *
storage_read(struct storage_req *req)
{
	cJSON *o, *data;
	char *buf;
	size_t len;
	bool text, ok;

	if (storage_fs_read(&req->fs, req->key, req->max_bytes, &buf, &len)
	    == -1)
		return storage_errno(req, errno);
	text = json_utf8_valid(buf, len);
	data = text ? cJSON_CreateString(buf) : json_base64(buf, len);
	free(buf);
	if (data == NULL)
		return NULL;	/* out of memory */
	if ((o = cJSON_CreateObject()) == NULL) {
		cJSON_Delete(data);
		return NULL;
	}
	ok = cJSON_AddStringToObject(o, "key", req->name) != NULL &&
	    cJSON_AddNumberToObject(o, "size", (double)len) != NULL &&
	    cJSON_AddStringToObject(o, "encoding",
	    text ? "utf-8" : "base64") != NULL;
	cJSON_AddItemToObject(o, "data", data);	/* o owns it either way */
	return storage_result(o, ok);
}

/* Nesting of v: 0 for a scalar, 1 for a flat array or object. */
static int
storage_json_depth(const cJSON *v)
{
	const cJSON *c;
	int depth = 0, d;

	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 0;
	for (c = v->child; c != NULL; c = c->next)
		if ((d = storage_json_depth(c)) > depth)
			depth = d;
	return depth + 1;
}

/*
 * The whole file must be one JSON value in UTF-8 (so the result is valid
 * UTF-8 too), nested so that the result object around it is still within
 * JSON_MAX_DEPTH (the outbox parses it again).  A string with \u0000 is
 * kept as written (json_nul_fix), not cut at the NUL.
 */
static cJSON *
storage_parse_json(const struct storage_req *req, const char *buf,
    size_t len)
{
	cJSON *v = NULL;

	if (json_utf8_valid(buf, len))	/* and no NUL byte */
		v = cJSON_ParseWithLengthOpts(buf, len + 1, NULL, 1);
	if (v != NULL && json_nul_fix(v, buf, len) == -1) {
		cJSON_Delete(v);
		return NULL;	/* out of memory */
	}
	if (v == NULL)
		return ops_error("invalid_request", STORAGE_MSG_KEY
		    " does not hold valid JSON in UTF-8", req->name);
	if (storage_json_depth(v) >= JSON_MAX_DEPTH) {
		cJSON_Delete(v);
		return ops_error("invalid_request", STORAGE_MSG_KEY
		    " holds JSON nested deeper than %d levels", req->name,
		    JSON_MAX_DEPTH - 1);
	}
	return v;
}

static cJSON *
storage_read_json(struct storage_req *req)
{
	cJSON *o, *v;
	char *buf;
	size_t len;

	if (storage_fs_read(&req->fs, req->key, req->max_bytes, &buf, &len)
	    == -1)
		return storage_errno(req, errno);
	v = storage_parse_json(req, buf, len);
	free(buf);
	if (v == NULL || ops_is_error(v))
		return v;
	if ((o = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(o, "key", req->name) == NULL) {
		cJSON_Delete(v);
		return storage_result(o, false);
	}
	cJSON_AddItemToObject(o, "data", v);
	return o;
}

/* The bytes a write body carries: *data (to free) and *len, or NULL. */
static cJSON *
storage_write_data(const struct storage_req *req, unsigned char **data,
    size_t *len)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(req->body, "data");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(req->body,
	    "encoding");
	bool b64 = cJSON_IsString(e) && strcmp(e->valuestring, "base64") == 0;
	int64_t size;

	if (json_has_nul(d))
		return ops_error("invalid_request", "\"data\" holds a NUL "
		    "character (\\u0000): send binary data with "
		    "\"encoding\": \"base64\"");
	if (!cJSON_IsString(d))
		return ops_error("invalid_request",
		    "\"data\" must be a string");
	if (e != NULL && !cJSON_IsNull(e) && !b64 &&
	    !(cJSON_IsString(e) && strcmp(e->valuestring, "utf-8") == 0))
		return ops_error("invalid_request",
		    "\"encoding\" must be \"utf-8\" or \"base64\"");
	*len = strlen(d->valuestring);
	size = b64 ? storage_b64_size(d->valuestring, *len) : (int64_t)*len;
	if (size < 0)
		return ops_error("invalid_request",
		    "\"data\" is not valid (padded) base64");
	if ((uint64_t)size > req->max_bytes)
		return ops_error("limit_exceeded", "%lld bytes for "
		    STORAGE_MSG_KEY " exceed operations.storage.max_bytes "
		    "(%zu)", (long long)size, req->name, req->max_bytes);
	if ((*data = malloc((size_t)size + 1)) == NULL)
		return ops_error("internal", "out of memory");
	if (b64)
		storage_b64_decode(d->valuestring, *len, *data);
	else
		memcpy(*data, d->valuestring, *len);
	*len = (size_t)size;
	return NULL;
}

static cJSON *
storage_write(struct storage_req *req)
{
	unsigned char *data = NULL;
	size_t len = 0;
	cJSON *o;
	int rc, err;

	if ((o = storage_write_data(req, &data, &len)) != NULL)
		return o;
	rc = storage_fs_write(&req->fs, req->key, data, len);
	err = errno;
	free(data);
	if (rc == -1 && err == ENOTDIR)
		return ops_error("invalid_request", "a parent of "
		    STORAGE_MSG_KEY " is not a directory", req->name);
	if (rc == -1)
		return storage_errno(req, err);
	o = cJSON_CreateObject();
	return storage_result(o, o != NULL &&
	    cJSON_AddStringToObject(o, "key", req->name) != NULL &&
	    cJSON_AddNumberToObject(o, "size", (double)len) != NULL);
}

/* {"key": KEY, name: flag}: delete's and exists' results. */
static cJSON *
storage_flag(struct storage_req *req, int rc, const char *name)
{
	cJSON *o;

	if (rc == -1)
		return storage_errno(req, errno);
	o = cJSON_CreateObject();
	return storage_result(o, o != NULL &&
	    cJSON_AddStringToObject(o, "key", req->name) != NULL &&
	    cJSON_AddBoolToObject(o, name, rc == 1) != NULL);
}

static cJSON *
storage_delete(struct storage_req *req)
{
	return storage_flag(req, storage_fs_delete(&req->fs, req->key),
	    "deleted");
}

/* A directory is not an object: exists says false for it. */
static cJSON *
storage_exists(struct storage_req *req)
{
	return storage_flag(req, storage_fs_exists(&req->fs, req->key),
	    "exists");
}

/*
 * list_objects' "limit" and "cursor" (a spelling, read into cursor, of
 * STORAGE_SPELLED_MAX + 1 bytes; "" for none); an error result or NULL.
 */
static cJSON *
storage_list_args(const struct storage_req *req, size_t *limit, char *cursor)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(req->body, "limit");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(req->body,
	    "cursor");
	char err[128];

	*limit = STORAGE_LIST_DEFAULT;
	cursor[0] = '\0';
	if (l != NULL && !cJSON_IsNull(l)) {
		if (!cJSON_IsNumber(l) || l->valuedouble < 1 ||
		    l->valuedouble > STORAGE_LIST_MAX ||
		    l->valuedouble != (double)l->valueint)
			return ops_error("invalid_request", "\"limit\" must be "
			    "an integer from 1 to %d", STORAGE_LIST_MAX);
		*limit = (size_t)l->valueint;
	}
	if (c == NULL || cJSON_IsNull(c))
		return NULL;
	if (!cJSON_IsString(c) || storage_key_unspell(c->valuestring, cursor,
	    STORAGE_SPELLED_MAX + 1, err, sizeof(err)) == -1 ||
	    storage_key_check(cursor, err, sizeof(err)) == -1 ||
	    strncmp(cursor, req->key, strlen(req->key)) != 0)
		return ops_error("invalid_request", "\"cursor\" is not one "
		    "this listing returned (a key starting with the prefix)");
	return NULL;
}

/* The spellings of keys: every listed key is valid UTF-8 in JSON. */
static cJSON *
storage_list_keys(const struct storage_keys *keys)
{
	char name[STORAGE_SPELLED_MAX + 1];
	cJSON *a = cJSON_CreateArray(), *v;
	size_t i;

	for (i = 0; a != NULL && i < keys->n; i++)
		if (storage_key_spell(keys->v[i], name, sizeof(name)) == -1 ||
		    (v = cJSON_CreateString(name)) == NULL ||
		    !cJSON_AddItemToArray(a, v)) {
			cJSON_Delete(a);
			return NULL;
		}
	return a;
}

static cJSON *
storage_list_result(struct storage_keys *keys, bool more)
{
	cJSON *o = cJSON_CreateObject(), *a = storage_list_keys(keys);
	bool ok;

	ok = o != NULL && a != NULL && cJSON_AddItemToObject(o, "keys", a);
	if (!ok)
		cJSON_Delete(a);
	if (ok && more)	/* the last key's spelling */
		ok = cJSON_AddStringToObject(o, "next_cursor",
		    cJSON_GetArrayItem(a, cJSON_GetArraySize(a) - 1)->
		    valuestring) != NULL;
	else if (ok)
		ok = cJSON_AddNullToObject(o, "next_cursor") != NULL;
	return storage_result(o, ok);
}

static cJSON *
storage_list(struct storage_req *req)
{
	struct storage_keys keys = { NULL, 0, 0 };
	char cursor[STORAGE_SPELLED_MAX + 1];
	size_t limit;
	cJSON *o;
	bool more;

	if ((o = storage_list_args(req, &limit, cursor)) != NULL)
		return o;
	if (storage_fs_list(&req->fs, req->key, cursor[0] ? cursor : NULL,
	    limit, &keys, &more) == -1)
		o = storage_errno(req, errno);
	else
		o = storage_list_result(&keys, more);
	storage_keys_free(&keys);
	return o;
}

static const struct storage_method *
storage_method(const char *path)
{
	size_t i, n = strlen(STORAGE_PATH);

	if (path == NULL || strncmp(path, STORAGE_PATH, n) != 0)
		return NULL;
	for (i = 0; i < sizeof(storage_methods) / sizeof(storage_methods[0]);
	    i++)
		if (strcmp(path + n, storage_methods[i].name) == 0)
			return &storage_methods[i];
	return NULL;
}

/*
 * The body's key (or prefix) into req->key and its spelling into
 * req->name, checked; an error result when bad, else NULL.
 */
static cJSON *
storage_body_key(const struct storage_method *m, const cJSON *body,
    struct storage_req *req)
{
	const char *what = m->listing ? "prefix" : "key";
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, what);
	char err[160];

	if (m->listing && (k == NULL || cJSON_IsNull(k))) {
		req->key = req->name = "";
		return NULL;
	}
	if (!cJSON_IsString(k))
		return ops_error("invalid_request", "the body needs a \"%s\" "
		    "string", what);
	if (storage_key_unspell(k->valuestring, req->keybuf,
	    sizeof(req->keybuf), err, sizeof(err)) == -1 ||
	    (m->listing ? storage_prefix_check : storage_key_check)(
	    req->keybuf, err, sizeof(err)) == -1)
		return ops_error("invalid_request", "%s \"" STORAGE_MSG_KEY
		    "\" %s", what, k->valuestring, err);
	req->key = req->keybuf;
	req->name = k->valuestring;
	return NULL;
}

/*
 * The capability on what a key resolves to (ops_storage.h): the key
 * itself was checked before the root was opened; a symlink that leads
 * to another key needs the same right on that one.
 */
static int
storage_admit(void *arg, const char *key)
{
	struct storage_req *req = arg;
	char name[STORAGE_SPELLED_MAX + 1], resource[STORAGE_RESOURCE_MAX];

	if (strcmp(key, req->key) == 0)
		return 0;
	if (storage_key_spell(key, name, sizeof(name)) == -1) {
		errno = EPERM;
		return -1;
	}
	snprintf(resource, sizeof(resource), "storage:%s", name);
	cJSON_Delete(req->denied);
	req->denied = NULL;
	if (ops_check(req->run, resource, req->right, &req->denied) == 0)
		return 0;
	errno = EACCES;
	return -1;
}

/* Open the configured root; an internal error result when it is wrong. */
static cJSON *
storage_open_root(struct storage_req *req, const struct op_run *run)
{
	const struct egressd_config *cfg = run->ctx ? run->ctx->cfg : NULL;
	const char *root = cfg ? cfg->operations.storage.root : NULL;

	if (root == NULL || root[0] == '\0')
		return ops_error("internal", "operations.storage.root is not "
		    "configured on this worker");
	req->max_bytes = (size_t)cfg->operations.storage.max_bytes;
	if (storage_fs_open(&req->fs, root,
	    cfg->operations.storage.no_symlinks) == 0) {
		req->fs.admit = storage_admit;
		req->fs.admit_arg = req;
		return NULL;
	}
	if (errno == ENOSYS)
		return storage_errno(req, ENOSYS);
	return ops_error("internal", "operations.storage.root %.300s: %s",
	    root, errno == ENOTDIR ? "not a directory" : strerror(errno));
}

static cJSON *
storage_run(struct op_run *run, const cJSON *body)
{
	const struct storage_method *m = storage_method(run->path);
	struct storage_req req = { .run = run, .body = body,
	    .fs = { -1, false, NULL, NULL } };
	char resource[STORAGE_RESOURCE_MAX];
	cJSON *o;

	if (m == NULL)
		return ops_error("unsupported", "unsupported storage method: "
		    "%.200s", run->path ? run->path : "(none)");
	if ((o = storage_body_key(m, body, &req)) != NULL)
		return o;
	req.right = m->right;
	snprintf(resource, sizeof(resource), "storage:%s", req.name);
	if (ops_check(run, resource, m->right, &o) == -1)
		return o;
	if ((o = storage_open_root(&req, run)) != NULL)
		return o;
	o = m->run(&req);
	storage_fs_close(&req.fs);
	cJSON_Delete(req.denied);
	return o;
}

/* Synchronous: everything is done before it returns. */
enum ops_status
op_storage(struct op_run *run, const cJSON *body, cJSON **result)
{
	*result = storage_run(run, body);
	return OPS_DONE;
}
