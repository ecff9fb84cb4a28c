/*
 * ops/command: /api/v1/agent/execute/command — run a command chosen by its
 * configured name (operations.command.commands), never through a shell, and
 * return {"exit_code", "signal", "stdout", "stderr", "timed_out",
 * "truncated"}.
 *
 * Owns the child's start and the wait for it on the worker's loop; the
 * argv comes from the command's template and the operation's "args"
 * through ops/argv_template (its rules are in include/ops/argv_template.h:
 * placeholders, values, options).  The rules:
 *
 * - The capability "command:NAME" (right "execute") is checked before the
 *   name is looked up, so a refused caller learns nothing about the list.
 * - "args", when present, is an object or null; a template the arguments
 *   do not fill is an invalid_request with argvt_expand's reason.
 * - The child gets stdin from /dev/null, stdout and stderr on pipes, no
 *   other descriptors, its own process group, an empty signal mask and
 *   default dispositions (the worker blocks and ignores some), SIGKILL
 *   when its worker dies (PR_SET_PDEATHSIG: nothing else would enforce
 *   its timeout; what it started itself is not covered), and the
 *   environment PATH=CMD_PATH plus the variables named in
 *   operations.command.environment that the worker has (a listed PATH
 *   replaces the fixed one).
 * - The timeout is the command's, or the operation's "timeout" when that
 *   is shorter.  When it passes the whole group gets SIGTERM, SIGKILL
 *   CMD_TERM_GRACE later, and CMD_DRAIN_GRACE after that the output is
 *   taken as it is (a process that left the group may hold the pipes);
 *   the result is the usual one with "timed_out": true.
 * - The run is done when both pipes are at end of file and the child is
 *   reaped (through a pidfd, so the worker needs no SIGCHLD handler).
 *   Each stream keeps operations.command.max_output bytes; the rest is
 *   read and dropped ("truncated": true).  Output is returned as UTF-8:
 *   invalid sequences and NUL bytes become U+FFFD.
 * - "exit_code" is the exit status, or null when a signal ended the
 *   child; "signal" is then its number, else null.
 *
 * Needs Linux 5.3 (pidfd_open).
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/evloop.h"
#include "core/jsonutil.h"
#include "ops/argv_template.h"
#include "ops/ops.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open	434	/* the same number on every architecture */
#endif

#define CMD_PATH	"/usr/sbin:/usr/bin:/sbin:/bin"
#define CMD_NAME_MAX	256	/* bytes of a command name */
#define CMD_WHY_LEN	256
#define CMD_TERM_GRACE	1.0	/* seconds from SIGTERM to SIGKILL */
#define CMD_DRAIN_GRACE	1.0	/* seconds from SIGKILL to giving up output */
#define CMD_CHUNK	65536	/* bytes per read */
#define CMD_ROUNDS	16	/* reads per callback, so others get a turn */
#define CMD_BUF_MIN	4096
#define CMD_NSEC	1000000000L

enum cmd_stage { CMD_RUNNING, CMD_TERM_SENT, CMD_KILL_SENT };

struct cmd_stream {
	int fd;			/* -1 once at end of file */
	char *buf;
	size_t len, cap;
	bool truncated;
};

struct cmd_state {
	struct op_run *run;
	struct evloop *loop;
	pid_t pid;		/* also the process group */
	int pidfd, timerfd;
	struct cmd_stream s[2];	/* stdout, stderr */
	size_t max_output;
	enum cmd_stage stage;
	bool reaped, status_known, timed_out, nomem;
	int status;
};

static char *
cmd_env_entry(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *e;

	if ((e = malloc(n)) != NULL)
		snprintf(e, n, "%s=%s", name, value);
	return e;
}

/* PATH=CMD_PATH and the listed variables the worker has. */
static char **
cmd_environ(const struct config_strlist *names)
{
	const char *v;
	char **envp, *e;
	size_t i, n = 1;

	if ((envp = calloc(names->count + 2, sizeof(*envp))) == NULL)
		return NULL;
	if ((envp[0] = cmd_env_entry("PATH", CMD_PATH)) == NULL)
		goto fail;
	for (i = 0; i < names->count; i++) {
		if ((v = getenv(names->items[i])) == NULL)
			continue;
		if ((e = cmd_env_entry(names->items[i], v)) == NULL)
			goto fail;
		if (strcmp(names->items[i], "PATH") == 0) {
			free(envp[0]);
			envp[0] = e;
		} else
			envp[n++] = e;
	}
	return envp;
fail:
	argvt_free(envp);
	return NULL;
}

/* A pipe whose write end is not a standard descriptor, read end O_NONBLOCK. */
static int
cmd_pipe(int p[2])
{
	int fd, e;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	/* dup2(1, 1) would leave the descriptor close-on-exec. */
	if (p[1] <= STDERR_FILENO) {
		if ((fd = fcntl(p[1], F_DUPFD_CLOEXEC, STDERR_FILENO + 1)) ==
		    -1)
			goto fail;
		close(p[1]);
		p[1] = fd;
	}
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) == -1)
		goto fail;
	return 0;
fail:
	e = errno;
	close(p[0]);
	close(p[1]);
	errno = e;
	return -1;
}

/*
 * The child, between fork and exec (see the header comment).  It runs with
 * every signal blocked, so no handler of the worker's runs here, and calls
 * only async-signal-safe functions.  Whatever fails is reported to the
 * worker as an errno on `report` (close-on-exec: end of file means the
 * exec worked).
 */
static void
cmd_child(char *const argv[], char *const envp[], int out, int err,
    int report, pid_t worker)
{
	struct sigaction dfl;
	sigset_t none;
	int sig, fd, e;

	if (report <= STDERR_FILENO && (report = fcntl(report,
	    F_DUPFD_CLOEXEC, STDERR_FILENO + 1)) == -1)
		_exit(127);
	/* The worker enforces the timeout: the command dies with it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != worker ||
	    setpgid(0, 0) == -1)
		goto fail;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);	/* EINVAL: KILL, STOP */
	if ((fd = open("/dev/null", O_RDONLY)) == -1 ||
	    dup2(fd, STDIN_FILENO) == -1 || dup2(out, STDOUT_FILENO) == -1 ||
	    dup2(err, STDERR_FILENO) == -1)
		goto fail;
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
	/* Only `report` stays open past stderr, as descriptor 3. */
	if ((report != STDERR_FILENO + 1 && dup3(report, STDERR_FILENO + 1,
	    O_CLOEXEC) == -1) ||
	    close_range(STDERR_FILENO + 2, ~0U, 0) == -1)
		goto fail;
	report = STDERR_FILENO + 1;
#endif
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, envp);
fail:
	e = errno;
	(void)write(report, &e, sizeof(e));
	_exit(127);
}

/* Fork and exec argv on out and err; 0, or an errno (the child reaped). */
static int
cmd_fork(pid_t *pid, char *const argv[], char *const envp[], int out,
    int err)
{
	pid_t worker = getpid();
	sigset_t all, old;
	int report[2], e = 0;
	ssize_t n;

	if (pipe2(report, O_CLOEXEC) == -1)
		return errno;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if ((*pid = fork()) == 0) {
		close(report[0]);
		cmd_child(argv, envp, out, err, report[1], worker);
	}
	if (*pid == -1)
		e = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(report[1]);
	if (*pid != -1) {
		do
			n = read(report[0], &e, sizeof(e));
		while (n == -1 && errno == EINTR);
		if (n != (ssize_t)sizeof(e))
			e = 0;
		else
			while (waitpid(*pid, NULL, 0) == -1 && errno == EINTR)
				;
	}
	close(report[0]);
	return e;
}

/* Start argv; st->pid and the read ends on success, else -1, errno, what. */
static int
cmd_spawn(struct cmd_state *st, char *const argv[], char *const envp[],
    const char **what)
{
	int out[2], err[2], rc;

	*what = "pipe";
	if (cmd_pipe(out) == -1)
		return -1;
	if (cmd_pipe(err) == -1) {
		rc = errno;
		close(out[0]);
		close(out[1]);
		errno = rc;
		return -1;
	}
	rc = cmd_fork(&st->pid, argv, envp, out[1], err[1]);
	*what = st->pid == -1 ? "fork" : argv[0];
	close(out[1]);
	close(err[1]);
	if (rc != 0) {
		close(out[0]);
		close(err[0]);
		errno = rc;
		return -1;
	}
	st->s[0].fd = out[0];
	st->s[1].fd = err[0];
	return 0;
}

static void
cmd_close(struct cmd_state *st, int *fd)
{
	if (*fd < 0)
		return;
	evloop_remove(st->loop, *fd);
	close(*fd);
	*fd = -1;
}

static void
cmd_free(struct cmd_state *st)
{
	int i;

	for (i = 0; i < 2; i++) {
		cmd_close(st, &st->s[i].fd);
		free(st->s[i].buf);
	}
	cmd_close(st, &st->pidfd);
	cmd_close(st, &st->timerfd);
	free(st);
}

/*
 * Signal the child's group.  Once the child is reaped its group lives on
 * only while a member holds a pipe open; with both pipes at end of file
 * the group ID may be gone, so leave it alone.
 */
static void
cmd_kill(struct cmd_state *st, int sig)
{
	if (!st->reaped || st->s[0].fd >= 0 || st->s[1].fd >= 0)
		(void)kill(-st->pid, sig);
}

static void
cmd_set_status(struct cmd_state *st, int status)
{
	st->reaped = true;
	st->status_known = true;
	st->status = status;
}

/* Kill and reap at once (start-up failures and cancel). */
static void
cmd_reap_now(struct cmd_state *st)
{
	int status;
	pid_t r;

	cmd_kill(st, SIGKILL);
	if (st->reaped)
		return;
	do
		r = waitpid(st->pid, &status, 0);
	while (r == -1 && errno == EINTR);
	if (r == st->pid)
		cmd_set_status(st, status);
	st->reaped = true;
}

static int
cmd_arm(struct cmd_state *st, double seconds)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)seconds;
	its.it_value.tv_nsec = (long)((seconds - (double)its.it_value.tv_sec) *
	    CMD_NSEC);
	if (its.it_value.tv_nsec >= CMD_NSEC)
		its.it_value.tv_nsec = CMD_NSEC - 1;
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec <= 0)
		its.it_value.tv_nsec = 1;	/* zero would disarm it */
	return timerfd_settime(st->timerfd, 0, &its, NULL);
}

/* One stream's text: UTF-8, with U+FFFD for bad sequences and NULs. */
static bool
cmd_add_text(cJSON *o, const char *key, const struct cmd_stream *s)
{
	cJSON *t = json_text(s->buf, s->len);

	if (t == NULL || !cJSON_AddItemToObject(o, key, t)) {
		cJSON_Delete(t);
		return false;
	}
	return true;
}

static cJSON *
cmd_result(const struct cmd_state *st)
{
	bool exited = st->status_known && WIFEXITED(st->status);
	bool signaled = st->status_known && WIFSIGNALED(st->status);
	cJSON *o;
	bool ok;

	if (st->nomem)
		return ops_error("internal", "out of memory reading the "
		    "output of the command");
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	ok = (exited ? cJSON_AddNumberToObject(o, "exit_code",
	    WEXITSTATUS(st->status)) : cJSON_AddNullToObject(o,
	    "exit_code")) != NULL;
	ok = ok && (signaled ? cJSON_AddNumberToObject(o, "signal",
	    WTERMSIG(st->status)) : cJSON_AddNullToObject(o, "signal")) != NULL;
	ok = ok && cmd_add_text(o, "stdout", &st->s[0]) &&
	    cmd_add_text(o, "stderr", &st->s[1]);
	ok = ok && cJSON_AddBoolToObject(o, "timed_out", st->timed_out) &&
	    cJSON_AddBoolToObject(o, "truncated", st->s[0].truncated ||
	    st->s[1].truncated);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Finish the run when the child is reaped and both pipes are done. */
static void
cmd_check_done(struct cmd_state *st)
{
	struct op_run *run = st->run;
	cJSON *result;

	if (!st->reaped || st->s[0].fd >= 0 || st->s[1].fd >= 0)
		return;
	result = cmd_result(st);
	cmd_free(st);
	ops_finish(run, result);
}

/* Room for want more bytes of output, within max_output. */
static int
cmd_reserve(struct cmd_state *st, struct cmd_stream *s, size_t want)
{
	size_t cap = s->cap ? s->cap : CMD_BUF_MIN;
	char *p;

	if (s->len + want <= s->cap)
		return 0;
	while (cap < s->len + want)
		cap *= 2;
	if (cap > st->max_output)
		cap = st->max_output;
	if ((p = realloc(s->buf, cap)) == NULL)
		return -1;
	s->buf = p;
	s->cap = cap;
	return 0;
}

/* One read from s: kept while there is room, else dropped. */
static ssize_t
cmd_read(struct cmd_state *st, struct cmd_stream *s)
{
	char drop[CMD_CHUNK];
	size_t room = st->max_output - s->len;
	ssize_t n;

	if (room > CMD_CHUNK)
		room = CMD_CHUNK;
	if (room > 0 && cmd_reserve(st, s, room) == 0) {
		if ((n = read(s->fd, s->buf + s->len, room)) > 0)
			s->len += (size_t)n;
		return n;
	}
	if (room > 0)
		st->nomem = true;	/* keep draining: the child must end */
	if ((n = read(s->fd, drop, sizeof(drop))) > 0)
		s->truncated = true;
	return n;
}

static void
cmd_on_output(int fd, short revents, void *arg)
{
	struct cmd_state *st = arg;
	struct cmd_stream *s = st->s[0].fd == fd ? &st->s[0] : &st->s[1];
	ssize_t n = 0;
	int i;

	(void)revents;
	for (i = 0; i < CMD_ROUNDS; i++) {
		if ((n = cmd_read(st, s)) > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EINTR)))
		return;
	cmd_close(st, &s->fd);	/* end of file, or an error that will last */
	cmd_check_done(st);
}

static void
cmd_on_exit(int fd, short revents, void *arg)
{
	struct cmd_state *st = arg;
	int status;
	pid_t r;

	(void)fd;
	(void)revents;
	do
		r = waitpid(st->pid, &status, WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return;
	if (r == st->pid)
		cmd_set_status(st, status);
	st->reaped = true;	/* ECHILD: someone else reaped it */
	cmd_close(st, &st->pidfd);
	cmd_check_done(st);
}

static void
cmd_on_timer(int fd, short revents, void *arg)
{
	struct cmd_state *st = arg;
	uint64_t expirations;

	(void)revents;
	if (read(fd, &expirations, sizeof(expirations)) == -1)
		return;		/* EAGAIN: nothing expired after all */
	switch (st->stage) {
	case CMD_RUNNING:
		st->timed_out = true;
		st->stage = CMD_TERM_SENT;
		cmd_kill(st, SIGTERM);
		if (cmd_arm(st, CMD_TERM_GRACE) == 0)
			break;
		/* FALLTHROUGH */
	case CMD_TERM_SENT:
		st->stage = CMD_KILL_SENT;
		cmd_kill(st, SIGKILL);
		if (cmd_arm(st, CMD_DRAIN_GRACE) == 0)
			break;
		/* FALLTHROUGH */
	case CMD_KILL_SENT:
		/* The pidfd still reports the child, however late. */
		cmd_close(st, &st->s[0].fd);
		cmd_close(st, &st->s[1].fd);
		cmd_close(st, &st->timerfd);
		cmd_check_done(st);
		break;
	}
}

static void
cmd_cancel(struct op_run *run)
{
	struct cmd_state *st = run->state;

	cmd_reap_now(st);
	cmd_free(st);
}

/* Descriptors for the child's end, the timeout and the output; -1, what. */
static int
cmd_watch(struct cmd_state *st, double timeout, const char **what)
{
	int i;

	*what = "pidfd_open";
	if ((st->pidfd = (int)syscall(SYS_pidfd_open, st->pid, 0)) == -1)
		return -1;
	*what = "timerfd";
	if ((st->timerfd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1 || cmd_arm(st, timeout) == -1)
		return -1;
	*what = "event loop";
	for (i = 0; i < 2; i++)
		if (evloop_add(st->loop, st->s[i].fd, POLLIN, cmd_on_output,
		    st) == -1)
			return -1;
	if (evloop_add(st->loop, st->pidfd, POLLIN, cmd_on_exit, st) == -1 ||
	    evloop_add(st->loop, st->timerfd, POLLIN, cmd_on_timer, st) == -1)
		return -1;
	return 0;
}

/* Spawn and watch; OPS_PENDING, or OPS_DONE with an error result. */
static enum ops_status
cmd_start(struct op_run *run, const struct config_command *cmd,
    char **argv, char **envp, double timeout, cJSON **result)
{
	const struct egressd_config *cfg = run->ctx->cfg;
	struct cmd_state *st;
	const char *what;
	int e;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return OPS_DONE;	/* dispatch_start: out of memory */
	st->run = run;
	st->loop = run->ctx->loop;
	st->pidfd = st->timerfd = st->s[0].fd = st->s[1].fd = -1;
	st->max_output = (size_t)cfg->operations.command.max_output;
	if (cmd_spawn(st, argv, envp, &what) == -1) {
		e = errno;
		free(st);
		*result = ops_error("internal", "command %s: %s: %s",
		    cmd->name, what, strerror(e));
		return OPS_DONE;
	}
	if (cmd_watch(st, timeout, &what) == -1) {
		e = errno;
		cmd_reap_now(st);
		cmd_free(st);
		*result = ops_error("internal", "command %s: %s: %s",
		    cmd->name, what, strerror(e));
		return OPS_DONE;
	}
	run->state = st;
	run->cancel = cmd_cancel;
	return OPS_PENDING;
}

static const struct config_command *
cmd_find(const struct egressd_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; cfg != NULL && i < cfg->operations.command.count; i++)
		if (strcmp(cfg->operations.command.commands[i].name, name) == 0)
			return &cfg->operations.command.commands[i];
	return NULL;
}

/* The body's timeout capped by the command's; -1 when it is invalid. */
static double
cmd_timeout(const cJSON *body, const struct config_command *cmd)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout");

	if (t == NULL || cJSON_IsNull(t))
		return cmd->timeout;
	if (!cJSON_IsNumber(t) || !(t->valuedouble > 0))
		return -1;
	return t->valuedouble < cmd->timeout ? t->valuedouble : cmd->timeout;
}

/* After the checks: expand, build the environment, start. */
static enum ops_status
cmd_prepare(struct op_run *run, const cJSON *body,
    const struct config_command *cmd, cJSON **result)
{
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(body, "args");
	char why[CMD_WHY_LEN], **argv, **envp;
	enum ops_status st;
	double timeout;

	if (args != NULL && !cJSON_IsObject(args) && !cJSON_IsNull(args)) {
		*result = ops_error("invalid_request", "\"args\" must be an "
		    "object");
		return OPS_DONE;
	}
	if ((timeout = cmd_timeout(body, cmd)) < 0) {
		*result = ops_error("invalid_request", "\"timeout\" must be a "
		    "positive number of seconds");
		return OPS_DONE;
	}
	if ((argv = argvt_expand(cmd->argv, cmd->argc, args, cmd->name, why,
	    sizeof(why))) == NULL) {
		if (why[0] != '\0')
			*result = ops_error("invalid_request", "%s", why);
		return OPS_DONE;
	}
	if ((envp = cmd_environ(&run->ctx->cfg->operations.command.
	    environment)) == NULL) {
		argvt_free(argv);
		return OPS_DONE;
	}
	st = cmd_start(run, cmd, argv, envp, timeout, result);
	argvt_free(argv);
	argvt_free(envp);
	return st;
}

enum ops_status
op_command(struct op_run *run, const cJSON *body, cJSON **result)
{
	const struct egressd_config *cfg = run->ctx ? run->ctx->cfg : NULL;
	const struct config_command *cmd;
	const char *name = body ? cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(body, "name")) : NULL;
	char resource[sizeof("command:") + CMD_NAME_MAX];

	if (name == NULL || name[0] == '\0' || strlen(name) > CMD_NAME_MAX) {
		*result = ops_error("invalid_request", "\"name\" must be a "
		    "command name (a string of 1..%d bytes)", CMD_NAME_MAX);
		return OPS_DONE;
	}
	snprintf(resource, sizeof(resource), "command:%s", name);
	if (ops_check(run, resource, "execute", result) == -1)
		return OPS_DONE;
	if ((cmd = cmd_find(cfg, name)) == NULL) {
		*result = ops_error("not_found", "no command named %.64s",
		    name);
		return OPS_DONE;
	}
	if (run->ctx->loop == NULL) {
		*result = ops_error("internal", "no event loop to wait on the "
		    "command");
		return OPS_DONE;
	}
	return cmd_prepare(run, body, cmd, result);
}
