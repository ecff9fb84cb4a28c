/*
 * log: line-oriented logging to stderr, a file or syslog (see include/core/log.h).
 *
 * Each line is formatted into one buffer and written with a single write(2)
 * on an O_APPEND descriptor, so lines from the master and its workers, which
 * share the file, never interleave mid-line.  The master also keeps its
 * last LOG_RECENT_LINES lines in a ring for push_logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "core/escape.h"
#include "core/jsonutil.h"
#include "core/log.h"

#define LOG_LINE_MAX 4096
#define LOG_ROLE_MAX 32
#define LOG_PATH_MAX 4096

enum log_target { TARGET_STDERR, TARGET_FILE, TARGET_SYSLOG };

/*
 * Process-wide logger state: a daemon has exactly one log, and every module
 * writes to it without being handed a context.  Workers inherit it at fork.
 */
static struct {
	enum log_target target;
	int fd;
	char path[LOG_PATH_MAX];
	enum config_log_level level;
	enum config_log_format format;
	char role[LOG_ROLE_MAX];
} logger = { TARGET_STDERR, STDERR_FILENO, "", LOGL_INFO, LOGF_TEXT,
    "master" };

/* The ring of recent lines: part of the process-wide log, like logger. */
static struct {
	char (*line)[LOG_RECENT_BYTES];	/* NULL = not kept */
	unsigned next, count;
} recent;

static const char *const level_names[] = { "debug", "info", "warning",
    "error" };
static const int syslog_priority[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING,
    LOG_ERR };

static int
log_open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int
log_open(const char *target, enum config_log_level level,
    enum config_log_format format, char *err, size_t errlen)
{
	int fd;

	logger.level = level;
	logger.format = format;
	fd = -1;
	if (strcmp(target, "stderr") != 0 && strcmp(target, "syslog") != 0) {
		if (strlen(target) >= sizeof(logger.path)) {
			snprintf(err, errlen, "log file %s: path too long",
			    target);
			return -1;
		}
		if ((fd = log_open_file(target)) == -1) {
			snprintf(err, errlen, "log file %s: %s", target,
			    strerror(errno));
			return -1;
		}
	}
	/* The new target is usable: only now let the old one go. */
	log_close();
	if (fd >= 0) {
		logger.target = TARGET_FILE;
		logger.fd = fd;
		snprintf(logger.path, sizeof(logger.path), "%s", target);
	} else if (strcmp(target, "syslog") == 0) {
		openlog("egressd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		logger.target = TARGET_SYSLOG;
		logger.fd = -1;
	}
	return 0;
}

/*
 * syslog's socket belongs to libc, which does not know a forked child
 * closed it: disconnect before the child closes its inherited descriptors,
 * reconnect after, or libc would later close a descriptor reused since.
 */
void
log_suspend(void)
{
	if (logger.target == TARGET_SYSLOG)
		closelog();
}

void
log_resume(void)
{
	if (logger.target == TARGET_SYSLOG)
		openlog("egressd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_reopen(void)
{
	int fd;

	if (logger.target != TARGET_FILE)
		return 0;
	if ((fd = log_open_file(logger.path)) == -1)
		return -1;
	/* dup2 keeps the descriptor number, which workers already hold. */
	if (dup2(fd, logger.fd) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

void
log_close(void)
{
	if (logger.target == TARGET_FILE && logger.fd >= 0)
		close(logger.fd);
	if (logger.target == TARGET_SYSLOG)
		closelog();
	logger.target = TARGET_STDERR;
	logger.fd = STDERR_FILENO;
}

void
log_set_role(const char *role)
{
	snprintf(logger.role, sizeof(logger.role), "%s", role);
}

int
log_fd(void)
{
	return logger.target == TARGET_FILE ? logger.fd : -1;
}

int
log_chown(unsigned uid, unsigned gid)
{
	if (logger.target != TARGET_FILE)
		return 0;
	return fchown(logger.fd, (uid_t)uid, (gid_t)gid);
}

int
log_is_stderr(void)
{
	return logger.target == TARGET_STDERR;
}

static size_t
log_timestamp(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	size_t n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(buf + n, len - n, ".%03ldZ", (long)tv.tv_usec / 1000);
	return n;
}

/* Append msg to out as the body of a JSON string; returns bytes written. */
static size_t
log_json_escape(char *out, size_t len, const char *msg)
{
	const unsigned char *p = (const unsigned char *)msg;
	size_t n = 0, u, left = strlen(msg);

	for (; *p != '\0' && n + 7 < len; p += u, left -= u) {
		u = json_utf8_len((const char *)p, left);
		if (u == 0) {		/* not UTF-8, which JSON must be */
			n += snprintf(out + n, len - n, "\\ufffd");
			u = 1;
		} else if (*p == '"' || *p == '\\') {
			out[n++] = '\\';
			out[n++] = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f)
			n += snprintf(out + n, len - n, "\\u%04x", *p);
		else if (u == 2 && p[0] == 0xc2 && p[1] < 0xa0)	/* C1 */
			n += snprintf(out + n, len - n, "\\u%04x", p[1]);
		else {
			memcpy(out + n, p, u);
			n += u;
		}
	}
	out[n] = '\0';
	return n;
}

/* Where to cut s to at most max bytes without splitting a UTF-8 char. */
static size_t
log_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

static void
log_remember(const char *line, size_t n)
{
	char *slot;

	if (recent.line == NULL)
		return;
	while (n > 0 && line[n - 1] == '\n')
		n--;
	n = log_cut(line, n, LOG_RECENT_BYTES - 1);
	slot = recent.line[recent.next];
	memcpy(slot, line, n);
	slot[n] = '\0';
	recent.next = (recent.next + 1) % LOG_RECENT_LINES;
	if (recent.count < LOG_RECENT_LINES)
		recent.count++;
}

int
log_keep_recent(int on)
{
	if (!on) {
		free(recent.line);
		memset(&recent, 0, sizeof(recent));
		return 0;
	}
	if (recent.line == NULL &&
	    (recent.line = calloc(LOG_RECENT_LINES, LOG_RECENT_BYTES)) == NULL)
		return -1;
	return 0;
}

void
log_recent(log_line_cb cb, void *arg)
{
	unsigned i, at;

	if (recent.line == NULL)
		return;
	at = (recent.next + LOG_RECENT_LINES - recent.count) %
	    LOG_RECENT_LINES;
	for (i = 0; i < recent.count; i++)
		cb(recent.line[(at + i) % LOG_RECENT_LINES], arg);
}

/* Read the last max bytes of the open file fd into a new buffer. */
static char *
log_read_tail(int fd, size_t max, size_t *len, int *cut)
{
	struct stat sb;
	size_t want, got = 0;
	ssize_t n;
	off_t off;
	char *buf;

	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode))
		return NULL;
	want = (size_t)sb.st_size > max ? max : (size_t)sb.st_size;
	off = sb.st_size - (off_t)want;
	if ((buf = malloc(want + 1)) == NULL)
		return NULL;
	while (got < want && (n = pread(fd, buf + got, want - got,
	    off + (off_t)got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	*len = got;
	*cut = off > 0;
	return buf;
}

int
log_file_tail(size_t max_bytes, log_line_cb cb, void *arg)
{
	char line[LOG_RECENT_BYTES], *buf, *p, *end, *nl;
	size_t len, n;
	int fd, cut, count = 0;

	if (logger.target != TARGET_FILE ||
	    (fd = open(logger.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return -1;
	buf = log_read_tail(fd, max_bytes, &len, &cut);
	close(fd);
	if (buf == NULL)
		return -1;
	p = buf;
	end = buf + len;
	/* The first line read is only the end of one: skip it. */
	if (cut && (p = memchr(buf, '\n', len)) != NULL)
		p++;
	while (p != NULL && p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = log_cut(p, (size_t)(nl - p), sizeof(line) - 1);
		memcpy(line, p, n);
		line[n] = '\0';
		if (n > 0) {
			cb(line, arg);
			count++;
		}
		p = nl + 1;
	}
	free(buf);
	return count;
}

/* File and stderr get the line as formatted; syslog the text form. */
static void
log_emit(enum config_log_level level, const char *msg)
{
	char line[LOG_LINE_MAX + 256], ts[64], esc[LOG_LINE_MAX * 2];
	int n, syslogged = logger.target == TARGET_SYSLOG;

	/* Text from outside must not forge a line nor drive a terminal. */
	if (logger.format != LOGF_JSON || syslogged)
		msg = escape_text(esc, sizeof(esc), msg, 0);
	if (syslogged) {
		syslog(syslog_priority[level], "%s: %s", logger.role, msg);
		if (recent.line == NULL)
			return;
	}
	log_timestamp(ts, sizeof(ts));
	if (logger.format == LOGF_JSON && !syslogged) {
		log_json_escape(esc, sizeof(esc), msg);
		n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\","
		    "\"pid\":%ld,\"role\":\"%s\",\"msg\":\"%s\"}\n", ts,
		    level_names[level], (long)getpid(), logger.role, esc);
	} else
		n = snprintf(line, sizeof(line), "%s egressd[%ld] %s %s: %s\n",
		    ts, (long)getpid(), level_names[level], logger.role, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	log_remember(line, (size_t)n);
	if (syslogged)
		return;
	/* Nothing sensible can be done when the log itself fails. */
	if (write(logger.fd, line, (size_t)n) < 0)
		return;
}

static void
log_vformat(enum config_log_level level, int with_errno, const char *fmt,
    va_list ap)
{
	char msg[LOG_LINE_MAX];
	int saved = errno;
	size_t n;

	if (level < logger.level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	log_emit(level, msg);
	errno = saved;
}

#define LOG_FN(name, level, with_errno)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
								\
	va_start(ap, fmt);					\
	log_vformat(level, with_errno, fmt, ap);		\
	va_end(ap);						\
}

LOG_FN(log_debug, LOGL_DEBUG, 0)
LOG_FN(log_info, LOGL_INFO, 0)
LOG_FN(log_warn, LOGL_WARNING, 1)
LOG_FN(log_warnx, LOGL_WARNING, 0)
LOG_FN(log_errx, LOGL_ERROR, 0)

static void (*log_fatal_hook)(const char *msg);

void
log_on_fatal(void (*hook)(const char *msg))
{
	log_fatal_hook = hook;
}

/*
 * Start-up failures go to the log and to stderr: whoever started egressd
 * must see why it did not start, wherever log.file points.
 */
static void __attribute__((noreturn))
log_fatal(int with_errno, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int saved = errno;
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	log_emit(LOGL_ERROR, msg);
	if (logger.target != TARGET_STDERR) {
		char esc[LOG_LINE_MAX * 2];

		fprintf(stderr, "egressd: %s\n", escape_text(esc, sizeof(esc),
		    msg, 0));
	}
	if (log_fatal_hook != NULL)
		log_fatal_hook(msg);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_fatal(1, fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_fatal(0, fmt, ap);
	va_end(ap);
}
