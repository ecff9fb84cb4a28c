/*
 * ops_storage: the storage handler's parts below the result objects
 * (DESIGN section 5), reachable from unit tests.
 *
 * An object is a regular file under operations.storage.root, named by a
 * key such as "dir/file".  Keys are checked before anything is touched,
 * and then every path is resolved by openat2(2) with RESOLVE_BENEATH
 * against a descriptor of the root (and RESOLVE_NO_SYMLINKS when
 * no_symlinks is set), so that neither "..", an absolute path nor a
 * symlink reaches outside the root even if a check were wrong.
 *
 * The storage_fs_* calls return -1 with errno set, and these errnos have a
 * fixed meaning: ENOENT or ENOTDIR no such object; EXDEV the path resolves
 * outside the root; ELOOP a symlink where none is allowed (or a loop);
 * EISDIR a directory where an object is expected; ENODEV not a regular
 * file; EFBIG larger than the limit; ENOSYS no openat2 (nothing is done
 * then: there is no unsafe fallback); EPERM the path resolves to a name no
 * key can have (a reserved segment, too long); EACCES admit refused it.
 */
#ifndef EGRESSD_OPS_STORAGE_H
#define EGRESSD_OPS_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define STORAGE_KEY_MAX 1024
/* Names of in-flight writes; no key segment may start with it. */
#define STORAGE_TMP_PREFIX ".egressd-tmp."

/*
 * 0 when key is a relative, '/'-separated object key: not empty, at most
 * STORAGE_KEY_MAX bytes, no empty, "." or ".." segment, no backslash, no
 * leading '/', no reserved segment.  Else -1 with the reason in err.
 */
int storage_key_check(const char *key, char *err, size_t errlen);
/*
 * The same for a list prefix: may be empty, and its last segment may be
 * partial (prefix "logs/2024-" matches "logs/2024-01.txt").
 */
int storage_prefix_check(const char *prefix, char *err, size_t errlen);

/*
 * A key as JSON carries it (its spelling): the key itself when it is
 * UTF-8; else each byte of a sequence that is not UTF-8 becomes the four
 * characters \xHH (upper-case hex).  A key never holds a backslash, so a
 * spelling names one key and every key has one spelling: what
 * list_objects returns, what a body gives back as a key, prefix or
 * cursor, and what the capability "storage:KEY" is checked on.  At most
 * STORAGE_SPELLED_MAX bytes.
 */
#define STORAGE_SPELLED_MAX (4 * STORAGE_KEY_MAX)
/* key's spelling into out (outlen > 4 * strlen(key)); -1 when no room. */
int storage_key_spell(const char *key, char *out, size_t outlen);
/*
 * The key spelled (into out, outlen > strlen(spelled)), or -1 with the
 * reason in err when spelled is not the one spelling of a key: bytes that
 * are not UTF-8, a backslash that does not start \xHH, an escaped NUL or
 * an escape where the character itself belongs.
 */
int storage_key_unspell(const char *spelled, char *out, size_t outlen,
    char *err, size_t errlen);

/*
 * What may be touched, by the key it resolves to: 0 yes, -1 no with errno
 * set (EACCES), and the reason kept by whoever set the hook.
 */
typedef int (*storage_admit_fn)(void *arg, const char *key);

/*
 * One root, opened for the length of one operation.  Every key is first
 * resolved beneath it one segment at a time, following symlinks without
 * the kernel doing it; admit (NULL: anything) is then asked about the
 * key the path resolves to, and only that symlink-free path is opened.
 * A symlink under a key the capability admits thus reaches nothing its
 * target's key is not admitted for.
 */
struct storage_fs {
	int rootfd;
	bool no_symlinks;
	storage_admit_fn admit;
	void *admit_arg;
};

/* A list of keys (storage_fs_list's output). */
struct storage_keys {
	char **v;
	size_t n, cap;
};

/* Open root (a directory); -1 with errno (ENOTDIR when it is not one). */
int storage_fs_open(struct storage_fs *fs, const char *root,
    bool no_symlinks);
void storage_fs_close(struct storage_fs *fs);

/*
 * openat2(rootfd, path, flags | O_CLOEXEC) confined beneath the root: the
 * one way this module opens anything under it.
 */
int storage_fs_openat(const struct storage_fs *fs, const char *path,
    int flags, mode_t mode);

/* Key's contents (at most max bytes, NUL-terminated) into *buf. */
int storage_fs_read(const struct storage_fs *fs, const char *key,
    size_t max, char **buf, size_t *len);
/*
 * Replace key's contents atomically (a temporary file in the same
 * directory, fsync, renameat), creating parent directories as needed.
 * Writes and deletes act on key's last segment itself (a symlink there is
 * replaced or removed, not followed): admit is asked about the resolved
 * directory and that name, before anything is created.
 */
int storage_fs_write(const struct storage_fs *fs, const char *key,
    const void *data, size_t len);
/* 1 deleted, 0 there was none, -1 error. */
int storage_fs_delete(const struct storage_fs *fs, const char *key);
/* 1 key is an object (a regular file), 0 not, -1 error. */
int storage_fs_exists(const struct storage_fs *fs, const char *key);
/*
 * Fill out (empty on entry) with the first limit keys, in strcmp order,
 * that start with prefix and sort after cursor (NULL: from the start);
 * *more tells whether any key follows them.  Directory symlinks are not
 * walked into; a symlink is listed as an object only when it resolves to
 * a regular file whose key also starts with prefix (admit is not asked:
 * the prefix is what was checked).
 */
int storage_fs_list(const struct storage_fs *fs, const char *prefix,
    const char *cursor, size_t limit, struct storage_keys *out, bool *more);
void storage_keys_free(struct storage_keys *keys);

#endif
