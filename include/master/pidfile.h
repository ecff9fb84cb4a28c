/*
 * pidfile: the single-instance guard.
 *
 * The pidfile is created with O_EXCL and held with flock(2) for the life of
 * the master: a file whose lock can be taken is stale (its process is gone)
 * and is taken over; a locked one belongs to a live egressd, which is a
 * refusal to start.  The lock lives on the open file description, so it
 * survives daemonize's fork; workers must close the descriptor.
 */
#ifndef EGRESSD_PIDFILE_H
#define EGRESSD_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

struct pidfile {
	int fd;
	char *path;
};

enum pidfile_result {
	PIDFILE_ACQUIRED = 0,	/* created anew */
	PIDFILE_STALE = 1,	/* an unlocked one was taken over */
	PIDFILE_HELD = 2,	/* a live process holds it */
	PIDFILE_ERROR = -1
};

/* Parse the text of a pidfile: one positive decimal pid, optional newline. */
pid_t pidfile_parse(const char *buf, size_t len);

/*
 * Take the pidfile at path.  *other receives the pid found in a held or
 * stale file (0 when unknown).  On PIDFILE_ERROR err holds one line.
 */
int pidfile_acquire(struct pidfile *pf, const char *path, pid_t *other,
    char *err, size_t errlen);

/* Replace the file's content with pid; 0 or -1 with errno. */
int pidfile_write(struct pidfile *pf, pid_t pid);
/* The same into any open file: "PID\n" from offset 0, truncated first. */
int pidfile_write_fd(int fd, pid_t pid);
/* The pid such a file holds, 0 when it holds none. */
pid_t pidfile_read_fd(int fd);

/*
 * The running owner's look at its pidfile: PIDFILE_ACQUIRED when path
 * still names the locked file; when it was removed or replaced, a fresh
 * one is made (its directory too, one level, when that went) holding pid:
 * PIDFILE_STALE.  PIDFILE_HELD when another process holds the file now at
 * path (*other its pid), PIDFILE_ERROR with err.  The old descriptor is
 * closed only once the new one is held.
 */
int pidfile_check(struct pidfile *pf, pid_t pid, pid_t *other, char *err,
    size_t errlen);

/* Make path's directory when it is missing (one level, mode 0755). */
int pidfile_make_dir(const char *path);

/* Unlink and close: the owner's exit. */
void pidfile_release(struct pidfile *pf);

/* Close without unlinking: a forked child that must not hold the lock. */
void pidfile_forget(struct pidfile *pf);

#endif
