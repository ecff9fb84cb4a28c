/*
 * procinfo: what /proc says about a process (memory, CPU, descriptors,
 * start time), for heartbeats, `egressctl health` and the process_*
 * metrics.
 */
#ifndef EGRESSD_PROCINFO_H
#define EGRESSD_PROCINFO_H

#include <stdint.h>
#include <sys/types.h>

/* Resident set size of pid (0 = self) in bytes, or 0 when unknown. */
uint64_t procinfo_rss(pid_t pid);

/* The process_* metrics of the calling process; unknown fields are 0. */
struct procinfo_self {
	uint64_t rss;		/* bytes */
	double cpu_seconds;	/* user + system */
	unsigned long fds;	/* open descriptors */
	double start_time;	/* seconds since the epoch */
};
void procinfo_self(struct procinfo_self *out);

/*
 * The pure part: the CPU seconds and start time from the text of
 * /proc/self/stat (stat), the boot time (btime of /proc/stat) and the clock
 * tick rate.  -1 when stat cannot be read.
 */
int procinfo_parse_stat(const char *stat, double btime, long ticks,
    double *cpu_seconds, double *start_time);

/* Close every descriptor >= 3 except those listed (post-fork hygiene). */
void procinfo_close_fds_except(const int *keep, int nkeep);

#endif
