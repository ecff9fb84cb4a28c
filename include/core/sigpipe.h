/*
 * sigpipe: signals turned into bytes on a self-pipe.
 *
 * Handlers only write the signal number to a non-blocking pipe (no logging,
 * no malloc), and the event loop reads them back and does the work.  The
 * pipe is process-wide state: there is one signal disposition table per
 * process.
 */
#ifndef EGRESSD_SIGPIPE_H
#define EGRESSD_SIGPIPE_H

/* Create the pipe; returns its read end, or -1 with errno. */
int sigpipe_open(void);

/* Route signo to the pipe (SA_RESTART); 0 or -1 with errno. */
int sigpipe_catch(int signo);

/* Next pending signal number, or 0 when none is waiting. */
int sigpipe_next(void);

/* Close the pipe (a forked child builds its own). */
void sigpipe_close(void);

/* Default dispositions for every catchable signal. */
void sigpipe_reset_all(void);

/* An empty signal mask: a forked child calls it once its handlers are in. */
void sigpipe_unblock_all(void);

#endif
