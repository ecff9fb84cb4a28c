/*
 * master: the arbiter.
 *
 * Owns the worker table, the signal interface of DESIGN section 1 (TERM,
 * INT/QUIT, HUP, TTIN/TTOU, USR1, USR2, CHLD), spawning, reaping and respawning
 * with crash-loop back-off, liveness from HEARTBEAT frames, rolling restarts
 * and the control socket's commands.  The master never blocks on a worker.
 */
#ifndef EGRESSD_MASTER_H
#define EGRESSD_MASTER_H

#include <stddef.h>

#include "core/config.h"

struct master;

struct pidfile;
struct statelock;
struct reexec_inherit;

struct master_options {
	const char *config_path;
	int workers_override;	/* -w N; 0 = server.workers */
	struct pidfile *pidfile;	/* held by main; recreated if removed */
	struct statelock *statelock;	/* held by main; crosses an upgrade */
	/*
	 * Started by a binary upgrade: what the previous image handed over
	 * (the control socket, the workers), or NULL for an ordinary start.
	 */
	struct reexec_inherit *inherit;
};

/*
 * Set up the loop, signal handling and the control socket.  Takes ownership
 * of cfg.  Returns NULL with err set.
 */
struct master *master_new(struct egressd_config *cfg,
    const struct master_options *opt, char *err, size_t errlen);

/* Give the control socket file to the daemon's user (privilege drop). */
int master_chown_control(struct master *m, unsigned uid, unsigned gid);

/* Open and migrate the database; done after privileges are dropped. */
int master_open_store(struct master *m, char *err, size_t errlen);

/* Run until stopped; returns the exit status for the process. */
int master_run(struct master *m);

void master_free(struct master *m);

#endif
