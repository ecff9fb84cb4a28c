/* statelock: the state directory's lock (see include/master/statelock.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>

#include "master/pidfile.h"
#include "master/statelock.h"

int
statelock_acquire(struct statelock *sl, const char *state_dir, pid_t pid,
    pid_t *holder, char *err, size_t errlen)
{
	size_t len = strlen(state_dir) + sizeof(STATELOCK_FILE_NAME) + 1;
	int fd, saved;

	sl->fd = -1;
	*holder = 0;
	if ((sl->path = malloc(len)) == NULL) {
		snprintf(err, errlen, "state_dir %s: out of memory", state_dir);
		return STATELOCK_ERROR;
	}
	snprintf(sl->path, len, "%s/%s", state_dir, STATELOCK_FILE_NAME);
	if ((fd = open(sl->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		snprintf(err, errlen, "state_dir %s: lock file %s: %s",
		    state_dir, sl->path, strerror(errno));
		statelock_release(sl);
		return STATELOCK_ERROR;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		saved = errno;
		*holder = pidfile_read_fd(fd);
		close(fd);
		if (saved == EWOULDBLOCK && *holder > 0)
			snprintf(err, errlen, "state_dir %s is in use by a "
			    "running egressd (pid %ld, lock %s); refusing to "
			    "start", state_dir, (long)*holder, sl->path);
		else if (saved == EWOULDBLOCK)
			snprintf(err, errlen, "state_dir %s is in use by a "
			    "running egressd (pid unknown, lock %s); refusing "
			    "to start", state_dir, sl->path);
		else
			snprintf(err, errlen, "state_dir %s: lock %s: %s",
			    state_dir, sl->path, strerror(saved));
		statelock_release(sl);
		return saved == EWOULDBLOCK ? STATELOCK_HELD : STATELOCK_ERROR;
	}
	sl->fd = fd;
	/*
	 * The lock is what counts; the pid only names the holder.  A full
	 * state_dir is refused, with its own message, by the database.
	 */
	(void)statelock_write(sl, pid);
	return STATELOCK_ACQUIRED;
}

int
statelock_chown(struct statelock *sl, unsigned uid, unsigned gid)
{
	return fchown(sl->fd, (uid_t)uid, (gid_t)gid);
}

int
statelock_write(struct statelock *sl, pid_t pid)
{
	return pidfile_write_fd(sl->fd, pid);	/* the same "PID\n" */
}

void
statelock_release(struct statelock *sl)
{
	if (sl->fd >= 0)
		close(sl->fd);
	sl->fd = -1;
	free(sl->path);
	sl->path = NULL;
}
