/*
 * log: the one logging API of egressd.
 *
 * One line per event, "text" or "json", to stderr, a file or syslog.  The
 * target is process-wide state (a daemon has one log); log_reopen() serves
 * logrotate.  As in OpenBSD's log.c, log_warn() appends strerror(errno) and
 * log_warnx() does not; fatal()/fatalx() exit and are for start-up only.
 * For push_logs the master keeps its last lines in memory, and the tail of
 * a log file can be read back.
 */
#ifndef EGRESSD_LOG_H
#define EGRESSD_LOG_H

#include <stddef.h>

#include "core/config.h"

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

#define LOG_RECENT_LINES 256	/* lines kept in memory */
#define LOG_RECENT_BYTES 1024	/* a kept line is cut to this, NUL included */

typedef void (*log_line_cb)(const char *line, void *arg);
/* Keep the last lines this process logs (on), or stop and free them. */
int log_keep_recent(int on);	/* 0, or -1 when out of memory */
/* The kept lines, oldest first, as written (no newline). */
void log_recent(log_line_cb cb, void *arg);
/*
 * The lines in the last max_bytes of the log file, oldest first, each cut
 * to LOG_RECENT_BYTES.  Returns how many, or -1 when the log is not a
 * regular file or cannot be read.
 */
int log_file_tail(size_t max_bytes, log_line_cb cb, void *arg);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Called with the message by fatal()/fatalx() before they exit (NULL: no
 * hook).  An image started by a binary upgrade uses it to go back to the
 * previous one instead of leaving the workers without a master.
 */
void log_on_fatal(void (*hook)(const char *msg));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
