/*
 * statelock: one daemon per state directory.
 *
 * The pidfile and the control socket live in a runtime directory that can
 * vanish under a running daemon (tmpfiles cleanup, an operator's rm, a
 * container's fresh /run); the database does not.  So the guard that
 * matters is an exclusive flock(2) on state_dir/egressd.lock, taken before
 * any database work and held by the master for its life.  The file holds
 * the master's pid, for the refusal message of a second start.  The lock
 * lives on the open file description: it survives daemonize's fork, and the
 * descriptor is close-on-exec and closed by every worker's post-fork hook,
 * so no process that outlives the master keeps it.
 */
#ifndef EGRESSD_STATELOCK_H
#define EGRESSD_STATELOCK_H

#include <stddef.h>
#include <sys/types.h>

#define STATELOCK_FILE_NAME "egressd.lock"

struct statelock {
	int fd;
	char *path;
};

enum statelock_result {
	STATELOCK_ACQUIRED = 0,
	STATELOCK_HELD = 1,	/* another live process holds it */
	STATELOCK_ERROR = -1
};

/*
 * Take state_dir's lock and write pid into it (best effort: a full file
 * system still gets the lock).  On STATELOCK_HELD *holder is the pid the
 * file names (0 when unknown); on either failure err holds one line naming
 * the directory.
 */
int statelock_acquire(struct statelock *sl, const char *state_dir, pid_t pid,
    pid_t *holder, char *err, size_t errlen);

/* Give the file to the daemon's user (privilege drop): a later start
 * as that user opens it again. */
int statelock_chown(struct statelock *sl, unsigned uid, unsigned gid);

/* Replace the pid in the file (after daemonize); 0 or -1 with errno. */
int statelock_write(struct statelock *sl, pid_t pid);

/*
 * Let go (the file stays: unlinking a lock file races with a starter that
 * has just opened it, and would let two processes lock two files).
 */
void statelock_release(struct statelock *sl);

#endif
