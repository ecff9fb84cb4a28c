/*
 * ops/storage_fs: key rules and the confined file system under the storage
 * root (see include/ops/ops_storage.h).  Nothing here builds results: errors
 * are errnos, which ops/storage.c turns into error results.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "core/jsonutil.h"
#include "ops/ops.h"
#include "ops/ops_storage.h"

#define STORAGE_OPEN_TRIES	4	/* EAGAIN: a rename raced the lookup */
#define STORAGE_TMP_TRIES	8	/* random names taken already */
#define STORAGE_TMP_RANDOM	8	/* random bytes in a temporary name */
#define STORAGE_FILE_MODE	0640	/* less the umask */
#define STORAGE_DIR_MODE	0750
#define STORAGE_READ_CHUNK	65536
#define STORAGE_LINKS_MAX	40	/* symlinks in one resolution, as Linux */
#define STORAGE_REST_MAX	(2 * PATH_MAX)	/* a path left to resolve */

/* One directory entry of a listing walk. */
struct storage_entry {
	char *key;		/* a directory's ends with '/' */
	bool dir;
};

static int
storage_fail(int err)
{
	errno = err;
	return -1;
}

/* One segment of a key: err set and -1 when it is not allowed. */
static int
storage_segment_check(const char *s, size_t len, char *err, size_t errlen)
{
	if (len == 0)
		snprintf(err, errlen, "has an empty segment");
	else if ((len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		snprintf(err, errlen, "has a \".\" or \"..\" segment");
	else if (len >= sizeof(STORAGE_TMP_PREFIX) - 1 &&
	    strncmp(s, STORAGE_TMP_PREFIX, sizeof(STORAGE_TMP_PREFIX) - 1)
	    == 0)
		snprintf(err, errlen, "has a segment starting with the "
		    "reserved \"%s\"", STORAGE_TMP_PREFIX);
	else
		return 0;
	return -1;
}

/* A key, or with partial a prefix whose last segment may be anything. */
static int
storage_path_check(const char *s, bool partial, char *err, size_t errlen)
{
	const char *seg, *slash;
	size_t len = strlen(s);

	if (len > STORAGE_KEY_MAX)
		snprintf(err, errlen, "is longer than %d bytes",
		    STORAGE_KEY_MAX);
	else if (s[0] == '/')
		snprintf(err, errlen, "is absolute (starts with '/')");
	else if (strchr(s, '\\') != NULL)
		snprintf(err, errlen, "contains a backslash");
	else if (len == 0 && !partial)
		snprintf(err, errlen, "is empty");
	else {
		for (seg = s; (slash = strchr(seg, '/')) != NULL;
		    seg = slash + 1)
			if (storage_segment_check(seg, (size_t)(slash - seg),
			    err, errlen) == -1)
				return -1;
		if (partial)
			return 0;
		return storage_segment_check(seg, strlen(seg), err, errlen);
	}
	return -1;
}

int
storage_key_check(const char *key, char *err, size_t errlen)
{
	return storage_path_check(key, false, err, errlen);
}

int
storage_prefix_check(const char *prefix, char *err, size_t errlen)
{
	return storage_path_check(prefix, true, err, errlen);
}

int
storage_key_spell(const char *key, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(key), i = 0, o = 0, n;
	unsigned char c;

	while (i < len) {
		if ((n = json_utf8_len(key + i, len - i)) > 0) {
			if (o + n >= outlen)
				return -1;
			memcpy(out + o, key + i, n);
			o += n;
			i += n;
			continue;
		}
		if (o + 4 >= outlen)
			return -1;
		c = (unsigned char)key[i++];
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 0xf];
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

static int
storage_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
storage_key_unspell(const char *spelled, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char again[STORAGE_SPELLED_MAX + 1];
	size_t i, o = 0, len = strlen(spelled);
	int hi, lo;

	if (len > STORAGE_SPELLED_MAX) {
		snprintf(err, errlen, "is longer than %d bytes",
		    STORAGE_SPELLED_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (o + 1 >= outlen) {
			snprintf(err, errlen, "is too long");
			return -1;
		}
		if (spelled[i] != '\\') {
			out[o++] = spelled[i];
			continue;
		}
		if (spelled[i + 1] != 'x' ||
		    (hi = storage_hex(spelled[i + 2])) == -1 ||
		    (lo = storage_hex(spelled[i + 3])) == -1 ||
		    (hi == 0 && lo == 0)) {
			snprintf(err, errlen, "contains a backslash (other "
			    "than a \\xHH escape of a byte that is not "
			    "UTF-8)");
			return -1;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 3;
	}
	out[o] = '\0';
	/* One spelling per key: it must be the one storage_key_spell gives. */
	if (storage_key_spell(out, again, sizeof(again)) == -1 ||
	    strcmp(again, spelled) != 0) {
		snprintf(err, errlen, "is not UTF-8, or escapes as \\xHH "
		    "what is UTF-8 (or in lower case)");
		return -1;
	}
	return 0;
}

static int
storage_openat2(int dirfd, const char *path, int flags, mode_t mode,
    uint64_t resolve)
{
	struct open_how how;
	int fd, tries = 0;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	/* openat2 refuses a mode without O_CREAT. */
	how.mode = (flags & O_CREAT) ? mode : 0;
	how.resolve = resolve;
	do
		fd = (int)syscall(SYS_openat2, dirfd, path, &how,
		    sizeof(how));
	while (fd == -1 && (errno == EAGAIN || errno == EINTR) &&
	    ++tries < STORAGE_OPEN_TRIES);
	return fd;
}

static uint64_t
storage_resolve(const struct storage_fs *fs)
{
	return RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
	    (fs->no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
}

int
storage_fs_openat(const struct storage_fs *fs, const char *path, int flags,
    mode_t mode)
{
	return storage_openat2(fs->rootfd, path, flags, mode,
	    storage_resolve(fs));
}

/* Also through openat2, so that a kernel without it fails here. */
int
storage_fs_open(struct storage_fs *fs, const char *root, bool no_symlinks)
{
	fs->no_symlinks = no_symlinks;
	fs->admit = NULL;
	fs->admit_arg = NULL;
	fs->rootfd = storage_openat2(AT_FDCWD, root, O_RDONLY | O_DIRECTORY,
	    0, 0);
	return fs->rootfd == -1 ? -1 : 0;
}

void
storage_fs_close(struct storage_fs *fs)
{
	if (fs->rootfd != -1)
		close(fs->rootfd);
	fs->rootfd = -1;
}

/*
 * openat2 beneath the root through no symlink at all: for paths that
 * storage_resolve_key has resolved, so that what is opened is what was
 * checked (a symlink put there since is ELOOP, not followed).
 */
static int
storage_open_resolved(const struct storage_fs *fs, const char *path,
    int flags, mode_t mode)
{
	return storage_openat2(fs->rootfd, path[0] ? path : ".", flags, mode,
	    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS);
}

/* Append name (n bytes) to the resolved key res as its last segment. */
static int
storage_res_append(char *res, const char *name, size_t n)
{
	size_t len = strlen(res);

	if (len + 1 + n > STORAGE_KEY_MAX)
		return storage_fail(EPERM);	/* no key can name it */
	if (len > 0)
		res[len++] = '/';
	memcpy(res + len, name, n);
	res[len + n] = '\0';
	return 0;
}

/*
 * What follows a segment that does not exist, taken as it stands: plain
 * names only (a "." or ".." below a missing directory resolves nowhere).
 */
static int
storage_res_missing(char *res, const char *rest)
{
	size_t n;

	for (;;) {
		while (*rest == '/')
			rest++;
		if (*rest == '\0')
			return 0;
		n = strcspn(rest, "/");
		if ((n == 1 && rest[0] == '.') ||
		    (n == 2 && rest[0] == '.' && rest[1] == '.'))
			return storage_fail(ENOENT);
		if (storage_res_append(res, rest, n) == -1)
			return -1;
		rest += n;
	}
}

/* The work of one storage_resolve_key call. */
struct storage_res {
	const struct storage_fs *fs;
	char *res;		/* the key resolved so far */
	int dirfd;		/* res's directory, O_PATH */
	int links;		/* symlinks followed */
	char rest[STORAGE_REST_MAX];	/* the path left to resolve */
};

/* Replace r->rest with the symlink fd's target and then next. */
static int
storage_res_link(struct storage_res *r, int fd, const char *next)
{
	char target[PATH_MAX], joined[STORAGE_REST_MAX];
	ssize_t n;

	if (r->fs->no_symlinks)
		return storage_fail(ELOOP);
	if (++r->links > STORAGE_LINKS_MAX)
		return storage_fail(ELOOP);
	if ((n = readlinkat(fd, "", target, sizeof(target) - 1)) == -1)
		return -1;
	if (n == 0)
		return storage_fail(ENOENT);
	target[n] = '\0';
	if (target[0] == '/')
		return storage_fail(EXDEV);	/* absolute: out of the root */
	if ((size_t)snprintf(joined, sizeof(joined), "%s%s%s", target,
	    next[0] ? "/" : "", next) >= sizeof(joined))
		return storage_fail(ENAMETOOLONG);
	memcpy(r->rest, joined, strlen(joined) + 1);
	return 0;
}

/* Go up from r->res: ".." never leaves the root. */
static int
storage_res_up(struct storage_res *r)
{
	char *slash = strrchr(r->res, '/');

	if (r->res[0] == '\0')
		return storage_fail(EXDEV);
	if (slash != NULL)
		*slash = '\0';
	else
		r->res[0] = '\0';
	close(r->dirfd);
	r->dirfd = storage_open_resolved(r->fs, r->res, O_PATH | O_DIRECTORY,
	    0);
	return r->dirfd == -1 ? -1 : 0;
}

/*
 * One segment (n bytes at seg): 1 resolved to its end, 2 resolved to
 * something missing, 0 go on from *pos (moved on), -1 errno.
 */
static int
storage_res_step(struct storage_res *r, char *seg, size_t n, bool follow_last,
    char **pos)
{
	char *next = seg + n, save = *next;
	bool last = next[strspn(next, "/")] == '\0';
	struct stat sb;
	int fd;

	*next = '\0';
	fd = storage_openat2(r->dirfd, seg, O_PATH | O_NOFOLLOW, 0,
	    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
	*next = save;
	if (fd == -1 && errno == ENOENT) {
		if (storage_res_append(r->res, seg, n) == -1 ||
		    storage_res_missing(r->res, next) == -1)
			return -1;
		return 2;
	}
	if (fd == -1 || fstat(fd, &sb) == -1) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (S_ISLNK(sb.st_mode) && (!last || follow_last)) {
		if (storage_res_link(r, fd, next) == -1) {
			close(fd);
			return -1;
		}
		close(fd);
		*pos = r->rest;
		return 0;
	}
	if (storage_res_append(r->res, seg, n) == -1) {
		close(fd);
		return -1;
	}
	if (S_ISDIR(sb.st_mode)) {
		close(r->dirfd);
		r->dirfd = fd;
		*pos = next;
		return 0;
	}
	close(fd);
	if (*next != '\0')	/* "file/..." */
		return storage_fail(ENOTDIR);
	return 1;
}

/*
 * What key resolves to beneath the root, into res (STORAGE_KEY_MAX + 1
 * bytes): the key of the object the kernel would reach, with no symlink
 * in it (but the last one when follow_last is false), found one segment
 * at a time without the kernel following anything.  Returns 1 when it
 * exists, 0 when it does not (res then ends with what is missing, taken
 * as written), -1 with errno as ops_storage.h says (EXDEV out of the
 * root, ELOOP a symlink no_symlinks forbids or too many, ENOTDIR, EPERM
 * longer than any key).
 */
static int
storage_resolve_key(const struct storage_fs *fs, const char *key,
    bool follow_last, char *res)
{
	struct storage_res *r;
	char *pos;
	size_t n;
	int rc = 0, saved;

	res[0] = '\0';
	if (strlen(key) >= sizeof(r->rest))
		return storage_fail(ENAMETOOLONG);
	if ((r = malloc(sizeof(*r))) == NULL)
		return -1;
	r->fs = fs;
	r->res = res;
	r->links = 0;
	memcpy(r->rest, key, strlen(key) + 1);
	pos = r->rest;
	if ((r->dirfd = storage_open_resolved(fs, "", O_PATH | O_DIRECTORY,
	    0)) == -1)
		rc = -1;
	while (rc == 0) {
		pos += strspn(pos, "/");
		if (*pos == '\0') {
			rc = 1;		/* a directory */
			break;
		}
		n = strcspn(pos, "/");
		if (n == 1 && pos[0] == '.')
			pos++;
		else if (n == 2 && pos[0] == '.' && pos[1] == '.') {
			rc = storage_res_up(r);
			pos += 2;
		} else
			rc = storage_res_step(r, pos, n, follow_last, &pos);
	}
	saved = errno;
	if (r->dirfd != -1)
		close(r->dirfd);
	free(r);
	errno = saved;
	return rc == 2 ? 0 : rc;
}

/*
 * key resolved (storage_resolve_key) and admitted: the resolved key must
 * be one a key can name and pass fs->admit.  1 it exists, 0 it does not,
 * -1 errno (EISDIR for the root itself, EPERM no key's name, or admit's).
 */
static int
storage_resolve_admit(const struct storage_fs *fs, const char *key,
    bool follow_last, char *res)
{
	char err[64];
	int rc;

	if ((rc = storage_resolve_key(fs, key, follow_last, res)) == -1)
		return -1;
	if (res[0] == '\0')
		return storage_fail(EISDIR);
	if (storage_key_check(res, err, sizeof(err)) == -1)
		return storage_fail(EPERM);
	if (fs->admit != NULL && fs->admit(fs->admit_arg, res) == -1)
		return -1;
	return rc;
}

/*
 * The directory of key resolved, and key's own name in it admitted (the
 * last segment is not followed: writes and deletes act on it, a symlink
 * included).  *dir gets the resolved directory ("" for the root), *base
 * key's last segment; 1 the directory exists, 0 not, -1 errno.
 */
static int
storage_resolve_parent(const struct storage_fs *fs, const char *key,
    char *dir, const char **base)
{
	char full[STORAGE_KEY_MAX + 1], err[64], *d;
	const char *slash = strrchr(key, '/');
	int rc;

	*base = slash ? slash + 1 : key;
	if ((d = strndup(key, slash ? (size_t)(slash - key) : 0)) == NULL)
		return -1;
	rc = storage_resolve_key(fs, d, true, dir);
	free(d);
	if (rc == -1)
		return -1;
	if ((size_t)snprintf(full, sizeof(full), "%s%s%s", dir,
	    dir[0] ? "/" : "", *base) >= sizeof(full) ||
	    storage_key_check(full, err, sizeof(err)) == -1)
		return storage_fail(EPERM);
	if (fs->admit != NULL && fs->admit(fs->admit_arg, full) == -1)
		return -1;
	return rc;
}

/* An object's descriptor must be a regular file's. */
static int
storage_check_regular(int fd, struct stat *sb)
{
	if (fstat(fd, sb) == -1)
		return -1;
	if (S_ISDIR(sb->st_mode))
		return storage_fail(EISDIR);
	if (!S_ISREG(sb->st_mode))
		return storage_fail(ENODEV);
	return 0;
}

/* Read fd to its end: at most max bytes (EFBIG past), NUL-terminated. */
static int
storage_read_fd(int fd, size_t hint, size_t max, char **buf, size_t *len)
{
	size_t cap = (hint < max ? hint : max) + 1, n = 0;
	char *p = malloc(cap + 1), *q;
	int err = p == NULL ? ENOMEM : 0;
	ssize_t r;

	while (err == 0) {
		if (n == cap && n > max)
			err = EFBIG;
		else if (n == cap) {
			/* It grew since fstat; +1 sees whether past max. */
			cap = max + 1 - cap > STORAGE_READ_CHUNK ?
			    cap + STORAGE_READ_CHUNK : max + 1;
			if ((q = realloc(p, cap + 1)) == NULL)
				err = ENOMEM;
			else
				p = q;
		} else if ((r = read(fd, p + n, cap - n)) > 0)
			n += (size_t)r;
		else if (r == 0) {
			p[n] = '\0';
			*buf = p;
			*len = n;
			return 0;
		} else if (errno != EINTR)
			err = errno;
	}
	free(p);
	return storage_fail(err);
}

int
storage_fs_read(const struct storage_fs *fs, const char *key, size_t max,
    char **buf, size_t *len)
{
	char res[STORAGE_KEY_MAX + 1];
	struct stat sb;
	int fd, rc = -1, saved;

	if ((rc = storage_resolve_admit(fs, key, true, res)) != 1)
		return storage_fail(rc == 0 ? ENOENT : errno);
	rc = -1;
	/* O_NONBLOCK: a FIFO must not hang the worker before fstat. */
	fd = storage_open_resolved(fs, res, O_RDONLY | O_NOCTTY | O_NONBLOCK,
	    0);
	if (fd == -1)
		return -1;
	if (storage_check_regular(fd, &sb) == 0) {
		if ((uint64_t)sb.st_size > max)
			errno = EFBIG;
		else
			rc = storage_read_fd(fd, (size_t)sb.st_size, max, buf,
			    len);
	}
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/*
 * Open the resolved directory dir ("" the root), creating what is missing
 * one segment at a time: each mkdirat names a single segment in a
 * directory already opened beneath the root, and no open follows a
 * symlink, so nothing is created anywhere but at dir.
 */
static int
storage_mkdirs(const struct storage_fs *fs, char *dir)
{
	char *seg = dir, *end;
	int fd, next, saved;
	bool last;

	fd = storage_open_resolved(fs, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd != -1 || errno != ENOENT)
		return fd;
	if ((fd = storage_open_resolved(fs, "", O_RDONLY | O_DIRECTORY, 0))
	    == -1)
		return -1;
	for (;;) {
		end = seg + strcspn(seg, "/");
		last = *end == '\0';
		*end = '\0';
		next = -1;
		if (mkdirat(fd, seg, STORAGE_DIR_MODE) == 0 || errno == EEXIST)
			next = storage_open_resolved(fs, dir,
			    O_RDONLY | O_DIRECTORY, 0);
		saved = errno;
		if (!last)
			*end = '/';
		close(fd);
		errno = saved;
		if ((fd = next) == -1 || last)
			return fd;
		seg = end + 1;
	}
}

/* A new temporary file in dirfd; its name goes to name. */
static int
storage_tmp_create(int dirfd, char *name, size_t namelen)
{
	unsigned char rnd[STORAGE_TMP_RANDOM];
	size_t i, off;
	int tries, fd = -1;

	for (tries = 0; fd == -1 && tries < STORAGE_TMP_TRIES; tries++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -1;
		off = (size_t)snprintf(name, namelen, "%s",
		    STORAGE_TMP_PREFIX);
		for (i = 0; i < sizeof(rnd) && off + 2 < namelen; i++)
			off += (size_t)snprintf(name + off, namelen - off,
			    "%02x", rnd[i]);
		/* One segment, O_EXCL: nothing to resolve, nothing followed. */
		fd = storage_openat2(dirfd, name, O_WRONLY | O_CREAT | O_EXCL,
		    STORAGE_FILE_MODE, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
		if (fd == -1 && errno != EEXIST)
			return -1;
	}
	return fd;
}

/* Write data to a temporary file in dirfd, then rename it onto base. */
static int
storage_replace(int dirfd, const char *base, const void *data, size_t len)
{
	char tmp[sizeof(STORAGE_TMP_PREFIX) + 2 * STORAGE_TMP_RANDOM];
	int fd, rc = -1, saved;

	if ((fd = storage_tmp_create(dirfd, tmp, sizeof(tmp))) == -1)
		return -1;
	if (ops_write_all(fd, data, len) == 0 && fsync(fd) == 0) {
		rc = close(fd);
		fd = -1;
	}
	if (rc == 0)
		rc = renameat(dirfd, tmp, dirfd, base);
	saved = errno;
	if (fd != -1)
		close(fd);
	if (rc == -1)
		unlinkat(dirfd, tmp, 0);
	else
		fsync(dirfd);	/* the rename itself; data is safe anyway */
	errno = saved;
	return rc;
}

/*
 * What a write would replace: refused before anything is written when it
 * is a directory, or a symlink that no_symlinks forbids or that leads out
 * of the root.  Any other symlink is replaced by the object, not followed.
 */
static int
storage_target_check(const struct storage_fs *fs, int dirfd,
    const char *base, const char *key)
{
	struct stat sb;
	int fd;

	if (fstatat(dirfd, base, &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -1;
	if (S_ISDIR(sb.st_mode))
		return storage_fail(EISDIR);
	if (!S_ISLNK(sb.st_mode))
		return 0;
	if (fs->no_symlinks)
		return storage_fail(ELOOP);
	if ((fd = storage_fs_openat(fs, key, O_PATH, 0)) != -1)
		close(fd);
	return fd == -1 && errno != ENOENT ? -1 : 0;
}

int
storage_fs_write(const struct storage_fs *fs, const char *key,
    const void *data, size_t len)
{
	char dir[STORAGE_KEY_MAX + 1], full[STORAGE_KEY_MAX + 1];
	const char *base;
	int dirfd, rc = -1, saved;

	if (storage_resolve_parent(fs, key, dir, &base) == -1)
		return -1;
	if ((size_t)snprintf(full, sizeof(full), "%s%s%s", dir,
	    dir[0] ? "/" : "", base) >= sizeof(full))
		return storage_fail(EPERM);	/* resolve_parent saw to it */
	if ((dirfd = storage_mkdirs(fs, dir)) == -1)
		return -1;
	if (storage_target_check(fs, dirfd, base, full) == 0)
		rc = storage_replace(dirfd, base, data, len);
	saved = errno;
	close(dirfd);
	errno = saved;
	return rc;
}

int
storage_fs_delete(const struct storage_fs *fs, const char *key)
{
	char dir[STORAGE_KEY_MAX + 1];
	const char *base;
	int dirfd, rc, saved;

	if ((rc = storage_resolve_parent(fs, key, dir, &base)) != 1)
		return rc == 0 || errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	dirfd = storage_open_resolved(fs, dir, O_RDONLY | O_DIRECTORY, 0);
	if (dirfd == -1)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	/* A symlink is removed itself, not followed. */
	rc = unlinkat(dirfd, base, 0) == 0 ? 1 : -1;
	saved = errno;
	close(dirfd);
	if (rc == -1 && (saved == ENOENT || saved == ENOTDIR))
		return 0;
	errno = saved;
	return rc;
}

int
storage_fs_exists(const struct storage_fs *fs, const char *key)
{
	char res[STORAGE_KEY_MAX + 1];
	struct stat sb;
	int fd, rc;

	if ((rc = storage_resolve_admit(fs, key, true, res)) != 1)
		return rc == 0 || errno == ENOENT || errno == ENOTDIR ||
		    errno == EISDIR ? 0 : -1;
	if ((fd = storage_open_resolved(fs, res, O_PATH, 0)) == -1)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	rc = fstat(fd, &sb) == -1 ? -1 : S_ISREG(sb.st_mode) ? 1 : 0;
	close(fd);
	return rc;
}

void
storage_keys_free(struct storage_keys *keys)
{
	size_t i;

	for (i = 0; i < keys->n; i++)
		free(keys->v[i]);
	free(keys->v);
	keys->v = NULL;
	keys->n = keys->cap = 0;
}

/* Append key (taken over; freed on failure). */
static int
storage_keys_add(struct storage_keys *keys, char *key)
{
	char **v;
	size_t cap;

	if (keys->n == keys->cap) {
		cap = keys->cap ? keys->cap * 2 : 16;
		if ((v = reallocarray(keys->v, cap, sizeof(*v))) == NULL) {
			free(key);
			return -1;
		}
		keys->v = v;
		keys->cap = cap;
	}
	keys->v[keys->n++] = key;
	return 0;
}

/* The listing's state across one walk. */
struct storage_walk {
	const struct storage_fs *fs;
	const char *prefix;
	const char *cursor;
	size_t want;		/* limit + 1, to see whether more follow */
	struct storage_keys *out;
};

static int
storage_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct storage_entry *)a)->key,
	    ((const struct storage_entry *)b)->key);
}

/* Could a directory whose keys all start with d hold a wanted key? */
static bool
storage_dir_wanted(const struct storage_walk *w, const char *d)
{
	size_t dl = strlen(d), pl = strlen(w->prefix);

	if (strncmp(d, w->prefix, dl < pl ? dl : pl) != 0)
		return false;
	if (w->cursor == NULL || strncmp(w->cursor, d, dl) == 0)
		return true;
	return strcmp(d, w->cursor) > 0;
}

static bool
storage_file_wanted(const struct storage_walk *w, const char *k)
{
	return strncmp(k, w->prefix, strlen(w->prefix)) == 0 &&
	    (w->cursor == NULL || strcmp(k, w->cursor) > 0);
}

/* An entry's kind: 1 object, 2 directory to walk, 0 neither. */
static int
storage_entry_kind(const struct storage_walk *w, int dfd,
    const struct dirent *de, const char *key)
{
	char res[STORAGE_KEY_MAX + 1], err[64];
	unsigned char type = de->d_type;
	struct stat sb;
	int fd, kind = 0;

	if (type == DT_UNKNOWN) {
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == -1)
			return 0;
		type = S_ISDIR(sb.st_mode) ? DT_DIR : S_ISREG(sb.st_mode) ?
		    DT_REG : S_ISLNK(sb.st_mode) ? DT_LNK : DT_UNKNOWN;
	}
	if (type == DT_REG || type == DT_DIR)
		return type == DT_REG ? 1 : 2;
	if (type != DT_LNK || w->fs->no_symlinks)
		return 0;
	/*
	 * A symlink is an object when it resolves to a file that a key with
	 * the listing's prefix names: the prefix is what the capability was
	 * checked on.
	 */
	if (storage_resolve_key(w->fs, key, true, res) != 1 ||
	    storage_key_check(res, err, sizeof(err)) == -1 ||
	    strncmp(res, w->prefix, strlen(w->prefix)) != 0 ||
	    (fd = storage_open_resolved(w->fs, res, O_PATH, 0)) == -1)
		return 0;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
		kind = 1;
	close(fd);
	return kind;
}

/*
 * Entry de of directory dir as e (e->key NULL when it is not wanted).  The
 * key has room for the '/' a directory's ends with; no key is longer than
 * STORAGE_KEY_MAX, so the walk is at most STORAGE_KEY_MAX / 2 deep.
 */
static int
storage_entry_make(const struct storage_walk *w, int dfd, const char *dir,
    const struct dirent *de, struct storage_entry *e)
{
	char err[64];
	size_t len;
	int kind;

	e->key = NULL;
	e->dir = false;
	if (storage_key_check(de->d_name, err, sizeof(err)) == -1)
		return 0;	/* ".", "..", temporary or unnamable */
	if (asprintf(&e->key, "%s%s%s/", dir, dir[0] ? "/" : "",
	    de->d_name) == -1) {
		e->key = NULL;
		return -1;
	}
	len = strlen(e->key) - 1;
	e->key[len] = '\0';
	kind = len <= STORAGE_KEY_MAX ?
	    storage_entry_kind(w, dfd, de, e->key) : 0;
	if (kind == 2 && len + 2 > STORAGE_KEY_MAX)
		kind = 0;	/* every key in it would be too long */
	if ((e->dir = kind == 2))
		e->key[len] = '/';
	if (kind == 0 || (e->dir ? !storage_dir_wanted(w, e->key) :
	    !storage_file_wanted(w, e->key))) {
		free(e->key);
		e->key = NULL;
	}
	return 0;
}

/* Entries of one directory, growing. */
struct storage_entries {
	struct storage_entry *v;
	size_t n, cap;
};

static int
storage_entries_add(struct storage_entries *es, struct storage_entry *e)
{
	struct storage_entry *v;
	size_t cap;

	if (es->n == es->cap) {
		cap = es->cap ? es->cap * 2 : 16;
		if ((v = reallocarray(es->v, cap, sizeof(*v))) == NULL) {
			free(e->key);
			return -1;
		}
		es->v = v;
		es->cap = cap;
	}
	es->v[es->n++] = *e;
	return 0;
}

static void
storage_entries_free(struct storage_entries *es)
{
	while (es->n > 0)
		free(es->v[--es->n].key);
	free(es->v);
	es->v = NULL;
	es->cap = 0;
}

/* The wanted entries of directory dir ("" for the root), sorted. */
static int
storage_read_dir(const struct storage_walk *w, const char *dir,
    struct storage_entries *es)
{
	struct storage_entry e;
	struct dirent *de;
	DIR *d;
	int fd, err = 0;

	/* Never through a symlink: no loops, every key listed once. */
	fd = storage_openat2(w->fs->rootfd, dir[0] ? dir : ".",
	    O_RDONLY | O_DIRECTORY, 0, storage_resolve(w->fs) |
	    RESOLVE_NO_SYMLINKS);
	if (fd == -1)
		return errno == ENOENT || errno == ENOTDIR ||
		    errno == ELOOP ? 0 : -1;
	if ((d = fdopendir(fd)) == NULL) {
		err = errno;
		close(fd);
		return storage_fail(err);
	}
	while (err == 0) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			err = errno;
			break;
		}
		if (storage_entry_make(w, dirfd(d), dir, de, &e) == -1 ||
		    (e.key != NULL && storage_entries_add(es, &e) == -1))
			err = errno ? errno : ENOMEM;
	}
	closedir(d);
	if (err != 0) {
		storage_entries_free(es);
		return storage_fail(err);
	}
	if (es->n > 1)
		qsort(es->v, es->n, sizeof(*es->v), storage_entry_cmp);
	return 0;
}

/*
 * Depth first, each directory's entries in key order (a directory sorts
 * as its name + '/', as its keys do), so keys come out in strcmp order
 * and the walk stops once it has w->want of them.
 */
static int
storage_walk_dir(struct storage_walk *w, const char *dir)
{
	struct storage_entries es = { NULL, 0, 0 };
	struct storage_entry *e;
	size_t i;
	int rc = 0;

	if (storage_read_dir(w, dir, &es) == -1)
		return -1;
	for (i = 0; rc == 0 && i < es.n && w->out->n < w->want; i++) {
		e = &es.v[i];
		if (e->dir) {
			e->key[strlen(e->key) - 1] = '\0';
			rc = storage_walk_dir(w, e->key);
		} else {
			rc = storage_keys_add(w->out, e->key);
			e->key = NULL;
		}
	}
	storage_entries_free(&es);
	return rc;
}

int
storage_fs_list(const struct storage_fs *fs, const char *prefix,
    const char *cursor, size_t limit, struct storage_keys *out, bool *more)
{
	struct storage_walk w = { fs, prefix, cursor, limit + 1, out };
	const char *slash = strrchr(prefix, '/');
	char *dir;
	int rc;

	*more = false;
	/* Only the directory the prefix names can hold its keys. */
	if ((dir = strndup(prefix, slash ? (size_t)(slash - prefix) : 0))
	    == NULL)
		return -1;
	rc = storage_walk_dir(&w, dir);
	free(dir);
	if (rc == 0 && out->n > limit) {
		*more = true;
		free(out->v[--out->n]);
	}
	return rc;
}
