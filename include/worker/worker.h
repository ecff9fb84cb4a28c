/*
 * worker: one forked worker process.
 *
 * Owns the post-fork hook (signals, descriptors, instance ID, database
 * connection), the worker's event loop, its frames to and from the master,
 * and the single idempotent shutdown path that GOODBYE, STOP, SIGTERM,
 * SIGINT and an orphaned master all lead to.
 */
#ifndef EGRESSD_WORKER_H
#define EGRESSD_WORKER_H

#include <sys/types.h>

#include "core/orch.h"
#include "core/config.h"

/* Exit status of a worker that could not boot (the master logs it so). */
#define WORKER_EXIT_BOOT 3

struct worker_params {
	const struct egressd_config *cfg;
	int slot;
	int generation;
	int channel_fd;
	pid_t master_pid;
	const struct orch_creds *creds;
};

/* Runs in the child right after fork(); never returns. */
void worker_run(const struct worker_params *params)
    __attribute__((noreturn));

#endif
