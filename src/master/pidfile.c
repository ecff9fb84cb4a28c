/* pidfile: create, lock, write and remove it (see include/master/pidfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "master/pidfile.h"

#define PIDFILE_TEXT_MAX 32
#define PIDFILE_OPEN_TRIES 5	/* races with a concurrent unlink are rare */

pid_t
pidfile_parse(const char *buf, size_t len)
{
	long pid = 0;
	size_t i;

	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len == 0 || len > 10)
		return -1;
	for (i = 0; i < len; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		pid = pid * 10 + (buf[i] - '0');
	}
	if (pid <= 0 || pid > INT_MAX)
		return -1;
	return (pid_t)pid;
}

pid_t
pidfile_read_fd(int fd)
{
	char buf[PIDFILE_TEXT_MAX];
	ssize_t n;
	pid_t pid;

	n = pread(fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return 0;
	pid = pidfile_parse(buf, (size_t)n);
	return pid > 0 ? pid : 0;
}

/* True when path still names the file open on fd (no unlink raced us). */
static int
pidfile_same_file(int fd, const char *path)
{
	struct stat a, b;

	if (fstat(fd, &a) == -1 || stat(path, &b) == -1)
		return 0;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int
pidfile_open(const char *path, int *created)
{
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0) {
		*created = 1;
		return fd;
	}
	if (errno != EEXIST)
		return -1;
	*created = 0;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		errno = EAGAIN;		/* unlinked between the two opens */
	return fd;
}

int
pidfile_acquire(struct pidfile *pf, const char *path, pid_t *other,
    char *err, size_t errlen)
{
	int attempt, created, fd;

	pf->fd = -1;
	pf->path = NULL;
	*other = 0;
	for (attempt = 0; attempt < PIDFILE_OPEN_TRIES; attempt++) {
		if ((fd = pidfile_open(path, &created)) == -1) {
			if (errno == EAGAIN)
				continue;
			snprintf(err, errlen, "pidfile %s: %s", path,
			    strerror(errno));
			return PIDFILE_ERROR;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
			int saved = errno;

			*other = pidfile_read_fd(fd);
			close(fd);
			if (saved == EWOULDBLOCK)
				return PIDFILE_HELD;
			snprintf(err, errlen, "pidfile %s: lock: %s", path,
			    strerror(saved));
			return PIDFILE_ERROR;
		}
		if (!pidfile_same_file(fd, path)) {
			close(fd);
			continue;
		}
		if (!created)
			*other = pidfile_read_fd(fd);
		if ((pf->path = strdup(path)) == NULL) {
			close(fd);
			snprintf(err, errlen, "pidfile %s: out of memory", path);
			return PIDFILE_ERROR;
		}
		pf->fd = fd;
		return created ? PIDFILE_ACQUIRED : PIDFILE_STALE;
	}
	snprintf(err, errlen, "pidfile %s: keeps disappearing while opened",
	    path);
	return PIDFILE_ERROR;
}

int
pidfile_write_fd(int fd, pid_t pid)
{
	char buf[PIDFILE_TEXT_MAX];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
	if (ftruncate(fd, 0) == -1)
		return -1;
	if (pwrite(fd, buf, (size_t)n, 0) != n) {
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

int
pidfile_write(struct pidfile *pf, pid_t pid)
{
	return pidfile_write_fd(pf->fd, pid);
}

void
pidfile_release(struct pidfile *pf)
{
	/* Unlink while still locked so no starter sees a stale lock. */
	if (pf->fd >= 0 && pf->path != NULL)
		unlink(pf->path);
	pidfile_forget(pf);
}

void
pidfile_forget(struct pidfile *pf)
{
	if (pf->fd >= 0)
		close(pf->fd);
	pf->fd = -1;
	free(pf->path);
	pf->path = NULL;
}

int
pidfile_make_dir(const char *path)
{
	char dir[PATH_MAX], *slash;
	struct stat sb;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;	/* the current directory, or "/" */
	*slash = '\0';
	if (stat(dir, &sb) == 0)
		return 0;
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

int
pidfile_check(struct pidfile *pf, pid_t pid, pid_t *other, char *err,
    size_t errlen)
{
	struct pidfile fresh;
	int rc;

	*other = 0;
	if (pidfile_same_file(pf->fd, pf->path))
		return PIDFILE_ACQUIRED;
	if (pidfile_make_dir(pf->path) == -1) {
		snprintf(err, errlen, "pidfile %s: its directory: %s",
		    pf->path, strerror(errno));
		return PIDFILE_ERROR;
	}
	rc = pidfile_acquire(&fresh, pf->path, other, err, errlen);
	if (rc == PIDFILE_HELD || rc == PIDFILE_ERROR)
		return rc;
	if (pidfile_write(&fresh, pid) == -1) {
		snprintf(err, errlen, "pidfile %s: write: %s", fresh.path,
		    strerror(errno));
		pidfile_release(&fresh);
		return PIDFILE_ERROR;
	}
	pidfile_forget(pf);
	*pf = fresh;
	return PIDFILE_STALE;
}
