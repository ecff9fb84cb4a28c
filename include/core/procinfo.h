/*
 * procinfo: what /proc says about a process (memory), for heartbeats and
 * `egressctl health`.
 */
#ifndef EGRESSD_PROCINFO_H
#define EGRESSD_PROCINFO_H

#include <stdint.h>
#include <sys/types.h>

/* Resident set size of pid (0 = self) in bytes, or 0 when unknown. */
uint64_t procinfo_rss(pid_t pid);

/* Close every descriptor >= 3 except those listed (post-fork hygiene). */
void procinfo_close_fds_except(const int *keep, int nkeep);

#endif
