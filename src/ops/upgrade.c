/*
 * ops/upgrade: /api/v1/upgrade — change configuration keys the operator
 * allowed (operations.upgrade.allow_keys) in the file the daemon runs from,
 * then ask the master for a rolling restart so that new workers use them.
 *
 * Body {"changes": {"worker.max_inflight": 4, ...}}; result {"changed":
 * [keys], "unchanged": [keys], "config": PATH, "reloading": bool}.
 *
 * Owns the edit of the file.  The rules:
 *
 * - All or nothing: every key must be in allow_keys (capability_denied
 *   naming the first that is not), given once, with a number, string or
 *   boolean; then the capability "config:KEY" (right "write") is checked
 *   for each key.  All of that happens before the file is read.
 * - The file is read once, never through a symlink: a file managed
 *   elsewhere (a Kubernetes ConfigMap, configuration management) would be
 *   replaced behind its manager's back, so it is refused as unsupported.
 * - It is edited as a libconfig tree: "a.b.c" is setting c of group a.b,
 *   groups are created as needed, and only single values are set.  A key
 *   whose setting already holds the value is "unchanged"; when every key
 *   is, nothing is written and nothing reloads.
 * - The new text must pass config_load_string, the daemon's own loader
 *   (invalid_request with its message otherwise).  It is written to a
 *   temporary file beside the original (same mode and, when we may, owner),
 *   synced, loaded again with config_load_file and renamed over the
 *   original; the previous text becomes PATH.bak the same way first, and
 *   the directory is synced.  A directory we cannot write is refused as
 *   unsupported.  libconfig's writer keeps no comments and inlines
 *   @include files.
 * - Upgrades from several workers are serialised by a lock on the
 *   directory, so that none loses another's change.
 * - The host's request_reload asks the master for a rolling restart;
 *   "reloading" says whether that request went out.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libconfig.h>

#include "core/config.h"
#include "core/log.h"
#include "ops/ops.h"

#define UPG_FILE_MAX	(1024 * 1024)	/* bytes of a configuration file */
#define UPG_INT64_LIMIT	9.2e18		/* integers within this fit int64 */
#define UPG_NAME_MAX	128		/* bytes of one dotted component */
#define UPG_RESOURCE_MAX 256		/* "config:" and a key */
#define UPG_KEY_ECHO	"%.200s"	/* a key in messages, bounded */
#define UPG_TMP_SUFFIX	".upgrade.XXXXXX"
#define UPG_BAK_SUFFIX	".bak"
/* Names the candidate text in the validator's messages. */
#define UPG_NEW_NAME	"new configuration"
#define UPG_HEADER	"# Written by egressd's upgrade operation, which " \
	"keeps no comments;\n# the previous version is kept as %s" \
	UPG_BAK_SUFFIX ".\n"

/* The configuration file, locked against other upgrades while open. */
struct upg_file {
	const char *path;
	const char *base;	/* its last component, inside path */
	char *dir;
	char *bak;		/* path UPG_BAK_SUFFIX */
	int dirfd;		/* holds the lock */
	struct stat st;
	char *text;		/* as read */
	size_t len;
};

static bool
upg_allowed(const struct config_strlist *allow, const char *key)
{
	size_t i;

	for (i = 0; i < allow->count; i++)
		if (strcmp(allow->items[i], key) == 0)
			return true;
	return false;
}

static bool
upg_given_before(const cJSON *changes, const cJSON *c)
{
	const cJSON *p;

	for (p = changes->child; p != NULL && p != c; p = p->next)
		if (strcmp(p->string, c->string) == 0)
			return true;
	return false;
}

static cJSON *
upg_body(const cJSON *body, const cJSON **changes)
{
	*changes = cJSON_GetObjectItemCaseSensitive(body, "changes");
	if (!cJSON_IsObject(*changes))
		return ops_error("invalid_request", "changes: must be an "
		    "object of configuration keys and their new values");
	if ((*changes)->child == NULL)
		return ops_error("invalid_request", "changes: must name at "
		    "least one key");
	return NULL;
}

static cJSON *
upg_check_keys(const struct config_strlist *allow, const cJSON *changes)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, changes)
		if (!upg_allowed(allow, c->string))
			return ops_error("capability_denied", UPG_KEY_ECHO
			    ": not in operations.upgrade.allow_keys",
			    c->string);
	return NULL;
}

static cJSON *
upg_check_values(const cJSON *changes)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, changes) {
		if (upg_given_before(changes, c))
			return ops_error("invalid_request", "changes: %s "
			    "given twice", c->string);
		if (!cJSON_IsNumber(c) && !cJSON_IsString(c) &&
		    !cJSON_IsBool(c))
			return ops_error("invalid_request", "changes.%s: must "
			    "be a number, a string or a boolean", c->string);
	}
	return NULL;
}

/* Allowed keys are configuration key names, short enough for res. */
static cJSON *
upg_check_rights(struct op_run *run, const cJSON *changes)
{
	char res[UPG_RESOURCE_MAX];
	const cJSON *c;
	cJSON *err;

	cJSON_ArrayForEach(c, changes) {
		snprintf(res, sizeof(res), "config:%s", c->string);
		if (ops_check(run, res, "write", &err) == -1)
			return err != NULL ? err :
			    ops_error("internal", "out of memory");
	}
	return NULL;
}

/* Everything that may refuse the request, before the file is touched. */
static cJSON *
upg_check(struct op_run *run, const cJSON *changes)
{
	const struct config_strlist *allow =
	    &run->ctx->cfg->operations.upgrade.allow_keys;
	cJSON *err;

	if ((err = upg_check_keys(allow, changes)) == NULL &&
	    (err = upg_check_values(changes)) == NULL)
		err = upg_check_rights(run, changes);
	return err;
}

/* Read-only or forbidden: this deployment does not allow upgrades. */
static cJSON *
upg_io_error(const char *what, const char *name, int err)
{
	const char *type = err == EROFS || err == EACCES || err == EPERM ?
	    "unsupported" : "internal";

	return ops_error(type, "%s %s: %s", what, name, strerror(err));
}

static int
upg_read_all(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n;

	*len = 0;
	while (*len < cap) {
		if ((n = read(fd, buf + *len, cap - *len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	buf[*len] = '\0';
	return 0;
}

static int
upg_read(struct upg_file *f, cJSON **error)
{
	int fd, rc = -1;

	if ((fd = open(f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		*error = errno == ELOOP ? ops_error("unsupported", "%s: "
		    "configuration file is a symlink (managed elsewhere)",
		    f->path) : upg_io_error("cannot read", f->path, errno);
		return -1;
	}
	if (fstat(fd, &f->st) == -1)
		*error = upg_io_error("cannot read", f->path, errno);
	else if (!S_ISREG(f->st.st_mode))
		*error = ops_error("unsupported", "%s: not a regular file",
		    f->path);
	else if (f->st.st_size > UPG_FILE_MAX)
		*error = ops_error("limit_exceeded", "%s: larger than %d "
		    "bytes", f->path, UPG_FILE_MAX);
	else if ((f->text = malloc((size_t)f->st.st_size + 1)) == NULL)
		*error = ops_error("internal", "out of memory");
	else if (upg_read_all(fd, f->text, (size_t)f->st.st_size,
	    &f->len) == -1)
		*error = upg_io_error("cannot read", f->path, errno);
	else
		rc = 0;
	close(fd);
	return rc;
}

static int
upg_names(struct upg_file *f, const char *path)
{
	const char *slash = strrchr(path, '/');

	f->path = path;
	f->base = slash != NULL ? slash + 1 : path;
	if (slash == NULL)
		f->dir = strdup(".");
	else if (slash == path)
		f->dir = strdup("/");
	else
		f->dir = strndup(path, (size_t)(slash - path));
	if (f->dir == NULL ||
	    asprintf(&f->bak, "%s" UPG_BAK_SUFFIX, path) == -1) {
		f->bak = NULL;
		return -1;
	}
	return 0;
}

/*
 * Lock the directory, then read the file.  Only other upgrades take the
 * lock, each for the few milliseconds of its edit.
 */
static int
upg_open(struct upg_file *f, const char *path, cJSON **error)
{
	memset(f, 0, sizeof(*f));
	f->dirfd = -1;
	if (upg_names(f, path) == -1) {
		*error = ops_error("internal", "out of memory");
		return -1;
	}
	if ((f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		*error = upg_io_error("cannot open", f->dir, errno);
		return -1;
	}
	while (flock(f->dirfd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			*error = upg_io_error("cannot lock", f->dir, errno);
			return -1;
		}
	}
	return upg_read(f, error);
}

static void
upg_close(struct upg_file *f)
{
	if (f->dirfd != -1)
		close(f->dirfd);	/* and so unlock */
	free(f->dir);
	free(f->bak);
	free(f->text);
}

static int
upg_parse(config_t *lc, const struct upg_file *f, cJSON **error)
{
	config_set_include_dir(lc, f->dir);
	if (config_read_string(lc, f->text))
		return 0;
	*error = ops_error("internal", "%s:%d: %s", f->path,
	    config_error_line(lc), config_error_text(lc));
	return -1;
}

static bool
upg_integral(const cJSON *v)
{
	double d = v->valuedouble;

	return d >= -UPG_INT64_LIMIT && d <= UPG_INT64_LIMIT &&
	    (double)(int64_t)d == d;
}

static bool
upg_same(const config_setting_t *s, const cJSON *v)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_BOOL:
		return cJSON_IsBool(v) &&
		    (config_setting_get_bool(s) != 0) == cJSON_IsTrue(v);
	case CONFIG_TYPE_STRING:
		return cJSON_IsString(v) &&
		    strcmp(config_setting_get_string(s), v->valuestring) == 0;
	case CONFIG_TYPE_FLOAT:
		return cJSON_IsNumber(v) &&
		    config_setting_get_float(s) == v->valuedouble;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return cJSON_IsNumber(v) && upg_integral(v) &&
		    config_setting_get_int64(s) == (int64_t)v->valuedouble;
	default:
		return false;
	}
}

/*
 * The libconfig type for v; the loader then says whether it fits the key
 * (an integer key refuses 4.5 and "4", a number key takes 30 or 30.5).
 */
static int
upg_type(const cJSON *v, const config_setting_t *old)
{
	if (cJSON_IsBool(v))
		return CONFIG_TYPE_BOOL;
	if (cJSON_IsString(v))
		return CONFIG_TYPE_STRING;
	/* a number keeps its style: a decimal point, an L suffix */
	if (old != NULL && config_setting_type(old) == CONFIG_TYPE_FLOAT)
		return CONFIG_TYPE_FLOAT;
	if (!upg_integral(v))
		return CONFIG_TYPE_FLOAT;
	if ((old != NULL && config_setting_type(old) == CONFIG_TYPE_INT64) ||
	    v->valuedouble < INT32_MIN || v->valuedouble > INT32_MAX)
		return CONFIG_TYPE_INT64;
	return CONFIG_TYPE_INT;
}

static int
upg_store(config_setting_t *s, const cJSON *v)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_BOOL:
		return config_setting_set_bool(s, cJSON_IsTrue(v));
	case CONFIG_TYPE_STRING:
		return config_setting_set_string(s, v->valuestring);
	case CONFIG_TYPE_FLOAT:
		return config_setting_set_float(s, v->valuedouble);
	case CONFIG_TYPE_INT:
		return config_setting_set_int(s, (int)v->valuedouble);
	default:
		return config_setting_set_int64(s,
		    (long long)v->valuedouble);
	}
}

/*
 * The group holding key's last component (*name), created as needed:
 * "a.b.c" is setting c of group b in group a.
 */
static config_setting_t *
upg_parent(config_setting_t *g, const char *key, const char **name,
    cJSON **error)
{
	char part[UPG_NAME_MAX];
	config_setting_t *s;
	const char *dot;
	size_t len;

	for (; (dot = strchr(key, '.')) != NULL; key = dot + 1, g = s) {
		if ((len = (size_t)(dot - key)) >= sizeof(part)) {
			*error = ops_error("invalid_request", "changes: key "
			    "component too long");
			return NULL;
		}
		memcpy(part, key, len);
		part[len] = '\0';
		if ((s = config_setting_get_member(g, part)) == NULL &&
		    (s = config_setting_add(g, part,
		    CONFIG_TYPE_GROUP)) == NULL) {
			*error = ops_error("internal", "cannot add group %s",
			    part);
			return NULL;
		}
		if (!config_setting_is_group(s)) {
			*error = ops_error("invalid_request", "%s: is not a "
			    "group in the configuration file", part);
			return NULL;
		}
	}
	*name = key;
	return g;
}

/*
 * Set key to the single value v in the tree under root.  Returns 1 when
 * the tree changed, 0 when the setting already held v, -1 with *error set.
 */
static int
upg_set(config_setting_t *root, const char *key, const cJSON *v,
    cJSON **error)
{
	config_setting_t *g, *s;
	const char *name;
	int type;

	if ((g = upg_parent(root, key, &name, error)) == NULL)
		return -1;
	if ((s = config_setting_get_member(g, name)) != NULL &&
	    !config_setting_is_scalar(s)) {
		*error = ops_error("invalid_request", "%s: holds a group, "
		    "array or list, not a single value", key);
		return -1;
	}
	if (s != NULL && upg_same(s, v))
		return 0;
	type = upg_type(v, s);
	if (s != NULL && config_setting_type(s) != type) {
		if (!config_setting_remove(g, name))
			goto fail;
		s = NULL;
	}
	if ((s == NULL && (s = config_setting_add(g, name, type)) == NULL) ||
	    !upg_store(s, v))
		goto fail;
	return 1;
fail:
	*error = ops_error("internal", "%s: cannot set the value", key);
	return -1;
}

/* Apply changes; returns how many changed, or -1 with *error set. */
static int
upg_edit(config_t *lc, const cJSON *changes, cJSON *changed,
    cJSON *unchanged, cJSON **error)
{
	const cJSON *c;
	int n = 0, rc;

	cJSON_ArrayForEach(c, changes) {
		if ((rc = upg_set(config_root_setting(lc), c->string, c,
		    error)) == -1)
			return -1;
		if (!cJSON_AddItemToArray(rc ? changed : unchanged,
		    cJSON_CreateString(c->string))) {
			*error = ops_error("internal", "out of memory");
			return -1;
		}
		n += rc;
	}
	return n;
}

/* The tree as libconfig writes it, after a header saying what happened. */
static int
upg_render(const config_t *lc, const struct upg_file *f, char **text,
    size_t *len, cJSON **error)
{
	FILE *fp;
	int bad;

	*text = NULL;
	if ((fp = open_memstream(text, len)) == NULL) {
		*error = ops_error("internal", "out of memory");
		return -1;
	}
	fprintf(fp, UPG_HEADER, f->base);
	config_write(lc, fp);
	bad = ferror(fp);
	if (fclose(fp) != 0 || bad) {
		*error = ops_error("internal", "out of memory");
		return -1;
	}
	return 0;
}

static int
upg_validate(const struct upg_file *f, const char *text, cJSON **error)
{
	struct egressd_config cfg;
	char err[CONFIG_ERR_MAX];

	if (config_load_string(&cfg, text, UPG_NEW_NAME, f->dir, err,
	    sizeof(err)) == -1) {
		*error = ops_error("invalid_request", "%s", err);
		return -1;
	}
	config_free(&cfg);
	return 0;
}

/* What was written is what the daemon will load. */
static int
upg_recheck(const char *tmp, cJSON **error)
{
	struct egressd_config cfg;
	char err[CONFIG_ERR_MAX];

	if (config_load_file(&cfg, tmp, err, sizeof(err)) == -1) {
		*error = ops_error("internal", "the written file does not "
		    "load: %s", err);
		return -1;
	}
	config_free(&cfg);
	return 0;
}

/* As root keep the file's owner; anyone else can only own it. */
static int
upg_fill(int fd, const struct upg_file *f, const char *data, size_t len)
{
	if ((f->st.st_uid != geteuid() || f->st.st_gid != getegid()) &&
	    fchown(fd, f->st.st_uid, f->st.st_gid) == -1 && errno != EPERM)
		return -1;
	if (fchmod(fd, f->st.st_mode & 07777) == -1 ||
	    ops_write_all(fd, data, len) == -1 || fsync(fd) == -1)
		return -1;
	return 0;
}

/* A new file beside the original holding data, synced; its name or NULL. */
static char *
upg_tmpfile(const struct upg_file *f, const char *data, size_t len,
    cJSON **error)
{
	char *tmp;
	int fd, rc, saved;

	if (asprintf(&tmp, "%s/.%s" UPG_TMP_SUFFIX, f->dir, f->base) == -1) {
		*error = ops_error("internal", "out of memory");
		return NULL;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		*error = upg_io_error("cannot create a file in", f->dir,
		    errno);
		free(tmp);
		return NULL;
	}
	rc = upg_fill(fd, f, data, len);
	saved = errno;
	if (close(fd) == -1 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc == -1) {
		*error = upg_io_error("cannot write", tmp, saved);
		unlink(tmp);
		free(tmp);
		return NULL;
	}
	return tmp;
}

/* Atomically make target hold data (loaded first when check is set). */
static int
upg_replace(const struct upg_file *f, const char *target, const char *data,
    size_t len, bool check, cJSON **error)
{
	char *tmp;
	int rc = -1;

	if ((tmp = upg_tmpfile(f, data, len, error)) == NULL)
		return -1;
	if (check && upg_recheck(tmp, error) == -1)
		;
	else if (rename(tmp, target) == -1)
		*error = upg_io_error("cannot replace", target, errno);
	else
		rc = 0;
	if (rc == -1)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* Validate and write the edited tree; the previous text becomes .bak. */
static int
upg_commit(const config_t *lc, const struct upg_file *f, cJSON **error)
{
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	if (upg_render(lc, f, &text, &len, error) == 0 &&
	    upg_validate(f, text, error) == 0 &&
	    upg_replace(f, f->bak, f->text, f->len, false, error) == 0 &&
	    upg_replace(f, f->path, text, len, true, error) == 0) {
		/* In place already: only a power loss could undo it. */
		if (fsync(f->dirfd) == -1)
			log_warn("upgrade: sync %s", f->dir);
		rc = 0;
	}
	free(text);
	return rc;
}

static cJSON *
upg_result(const char *path, cJSON **changed, cJSON **unchanged)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL ||
	    (*changed = cJSON_AddArrayToObject(o, "changed")) == NULL ||
	    (*unchanged = cJSON_AddArrayToObject(o, "unchanged")) == NULL ||
	    cJSON_AddStringToObject(o, "config", path) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static bool
upg_reload(struct op_run *run)
{
	const struct op_host *host = run->ctx->host;

	if (host == NULL || host->request_reload == NULL)
		return false;
	if (host->request_reload(run) == 0)
		return true;
	log_warnx("upgrade: %s changed but the reload request failed; "
	    "SIGHUP applies it", run->ctx->cfg->path);
	return false;
}

static cJSON *
upg_run(struct op_run *run, const cJSON *changes)
{
	cJSON *res = NULL, *changed, *unchanged, *err = NULL;
	struct upg_file f;
	config_t lc;
	int n = -1;

	config_init(&lc);
	if (upg_open(&f, run->ctx->cfg->path, &err) == 0 &&
	    upg_parse(&lc, &f, &err) == 0 &&
	    (res = upg_result(f.path, &changed, &unchanged)) != NULL &&
	    (n = upg_edit(&lc, changes, changed, unchanged, &err)) > 0 &&
	    upg_commit(&lc, &f, &err) == -1)
		n = -1;
	config_destroy(&lc);
	upg_close(&f);
	if (n == -1) {
		cJSON_Delete(res);
		return err;	/* NULL: out of memory, said by dispatch_start */
	}
	cJSON_AddBoolToObject(res, "reloading", n > 0 && upg_reload(run));
	return res;
}

enum ops_status
op_upgrade(struct op_run *run, const cJSON *body, cJSON **result)
{
	const cJSON *changes;

	if (run->ctx == NULL || run->ctx->cfg == NULL ||
	    run->ctx->cfg->path == NULL)
		*result = ops_error("internal", "no configuration file");
	else if ((*result = upg_body(body, &changes)) == NULL &&
	    (*result = upg_check(run, changes)) == NULL)
		*result = upg_run(run, changes);
	return OPS_DONE;
}
