/*
 * log: the one logging API of egressd.
 *
 * One line per event, "text" or "json", to stderr, a file or syslog.  The
 * target is process-wide state (a daemon has one log); log_reopen() serves
 * logrotate.  As in OpenBSD's log.c, log_warn() appends strerror(errno) and
 * log_warnx() does not; fatal()/fatalx() exit and are for start-up only.
 */
#ifndef EGRESSD_LOG_H
#define EGRESSD_LOG_H

#include <stddef.h>

#include "config.h"

/* Until log_open() succeeds, messages go to stderr in text format. */
int log_open(const char *target, enum config_log_level level,
    enum config_log_format format, char *err, size_t errlen);
int log_reopen(void);		/* 0, or -1 with errno (old target kept) */
/* Around a forked child's closing of inherited descriptors. */
void log_suspend(void);
void log_resume(void);
void log_close(void);
void log_set_role(const char *role);	/* "master", "worker 3", ... */
int log_fd(void);		/* the file descriptor to keep across fork, or -1 */
int log_is_stderr(void);
/* Give a log file to the user privileges are dropped to (reopen needs it). */
int log_chown(unsigned uid, unsigned gid);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
