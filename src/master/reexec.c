/*
 * reexec: the binary replaced in place (see include/master/reexec.h).
 *
 * The old image: reexec_init() at start, reexec_probe_start() on USR2,
 * reexec_probe_reaped() when the -t run ends, reexec_blob_create() and
 * reexec_exec().  The new image: reexec_take() first thing in main(),
 * reexec_arm_fallback() at once, reexec_disarm() once the workers are
 * in its table.  The way back is process-wide state (a crashing signal's
 * handler reaches it), built before it may be needed, so that the handler
 * does nothing but execveat().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/procinfo.h"
#include "core/sigpipe.h"
#include "core/version.h"
#include "master/reexec.h"

#define REEXEC_EXIT_EXEC 127	/* the probe child could not exec */

/* Signals that mean this image crashed, and must not stay blocked. */
static const int reexec_crash_signals[] = { SIGSEGV, SIGBUS, SIGILL,
    SIGFPE, SIGABRT };
#define REEXEC_NCRASH (sizeof(reexec_crash_signals) / sizeof(int))

extern char **environ;

/* The way back of an image started by an upgrade (reexec_arm_fallback). */
static struct {
	int armed;
	int fallback_fd;
	int state_fd;
	char *const *argv;
	char **crash_env;	/* environ + the blob + a crash reason */
	char *crash_reason;	/* inside crash_env: the digits are patched */
	size_t crash_digits;	/* offset of the signal number's two digits */
} reexec_back = { 0, -1, -1, NULL, NULL, NULL, 0 };

#define REEXEC_DELETED " (deleted)"

/* The path /proc/self/exe names, without the mark of a replaced file. */
static int
reexec_read_self(char *buf, size_t len)
{
	size_t n, dl = strlen(REEXEC_DELETED);
	ssize_t r;

	if ((r = readlink("/proc/self/exe", buf, len - 1)) == -1)
		return -1;
	buf[r] = '\0';
	n = (size_t)r;
	if (n > dl && strcmp(buf + n - dl, REEXEC_DELETED) == 0)
		buf[n - dl] = '\0';
	return 0;
}

static char reexec_self_path[PATH_MAX];

int
reexec_note_exe(void)
{
	return reexec_read_self(reexec_self_path, sizeof(reexec_self_path));
}

int
reexec_init(struct reexec *u, struct evloop *loop, const char *exe,
    char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	u->loop = loop;
	u->self_fd = u->probe_fd = -1;
	if (exe == NULL && reexec_self_path[0] != '\0')
		exe = reexec_self_path;
	if (exe != NULL) {
		if (snprintf(u->exe, sizeof(u->exe), "%s", exe) >=
		    (int)sizeof(u->exe)) {
			snprintf(err, errlen, "upgrade: binary path too long");
			u->exe[0] = '\0';
			return -1;
		}
	} else if (reexec_read_self(u->exe, sizeof(u->exe)) == -1) {
		snprintf(err, errlen, "upgrade: /proc/self/exe: %s",
		    strerror(errno));
		return -1;
	}
	/* The running image itself, whatever becomes of the file. */
	if ((u->self_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "upgrade: opening the running image "
		    "(/proc/self/exe): %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void
reexec_probe_close(struct reexec *u)
{
	evloop_timer_cancel(&u->probe_timer);
	if (u->probe_fd >= 0) {
		evloop_remove(u->loop, u->probe_fd);
		close(u->probe_fd);
		u->probe_fd = -1;
	}
}

void
reexec_free(struct reexec *u)
{
	reexec_probe_close(u);
	if (u->probe_pid > 0)
		kill(u->probe_pid, SIGKILL);	/* reaped by nobody: exiting */
	u->probe_pid = 0;
	if (u->self_fd >= 0)
		close(u->self_fd);
	u->self_fd = -1;
}

/* Keep what the probe writes, bounded; the rest is read and dropped. */
static void
reexec_probe_read(struct reexec *u)
{
	char scratch[512];
	ssize_t n;

	while (u->probe_fd >= 0) {
		if (u->probe_len < sizeof(u->probe_out) - 1)
			n = read(u->probe_fd, u->probe_out + u->probe_len,
			    sizeof(u->probe_out) - 1 - u->probe_len);
		else
			n = read(u->probe_fd, scratch, sizeof(scratch));
		if (n <= 0)
			break;
		if (u->probe_len < sizeof(u->probe_out) - 1)
			u->probe_len += (size_t)n;
	}
	u->probe_out[u->probe_len] = '\0';
}

static void
reexec_on_probe_output(int fd, short revents, void *arg)
{
	struct reexec *u = arg;

	(void)fd;
	reexec_probe_read(u);
	if (revents & (POLLHUP | POLLERR))
		evloop_modify(u->loop, u->probe_fd, 0);	/* EOF: wait for exit */
}

/* A binary that hangs in -t is killed; its reaping reports it. */
static void
reexec_on_probe_timeout(void *arg)
{
	struct reexec *u = arg;

	if (u->probe_pid > 0) {
		u->probe_timed_out = 1;
		kill(u->probe_pid, SIGKILL);
	}
}

/*
 * The child: argv and env were built before fork (a thread of libcurl's
 * may have held the allocator's lock at that moment).
 */
static void __attribute__((noreturn))
reexec_probe_child(int out, char *const argv[], char *const env[])
{
	static const char msg[] = "exec of the new binary failed: ";
	const char *why;
	int keep[1] = { out }, null;

	sigpipe_reset_all();
	sigpipe_unblock_all();
	if ((null = open("/dev/null", O_RDONLY)) != -1)
		dup2(null, STDIN_FILENO);
	dup2(out, STDOUT_FILENO);
	dup2(out, STDERR_FILENO);
	procinfo_close_fds_except(keep, 0);
	execve(argv[0], argv, env);
	why = errno == ENOENT ? "no such file\n" : errno == EACCES ?
	    "permission denied\n" : errno == ENOEXEC ? "not an executable\n" :
	    "error\n";
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0 ||
	    write(STDOUT_FILENO, why, strlen(why)) < 0)
		_exit(REEXEC_EXIT_EXEC);
	_exit(REEXEC_EXIT_EXEC);
}

/*
 * environ without the state's variable (and the failure reason's, when
 * drop_failed), with room for extra more and the NULL; *used: the count
 * copied, where the extra ones go.
 */
static char **
reexec_environ(int drop_failed, size_t extra, size_t *used)
{
	size_t n = 0, i, o = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + extra + 1, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], REEXEC_ENV_STATE "=",
		    sizeof(REEXEC_ENV_STATE)) != 0 && (!drop_failed ||
		    strncmp(environ[i], REEXEC_ENV_FAILED "=",
		    sizeof(REEXEC_ENV_FAILED)) != 0))
			env[o++] = environ[i];
	*used = o;
	return env;
}

/* environ without the state's variable, plus the probe's. */
static char **
reexec_probe_env(void)
{
	size_t o;
	char **env;

	if ((env = reexec_environ(0, 1, &o)) != NULL)
		env[o] = REEXEC_ENV_PROBE "=1";
	return env;
}

int
reexec_probe_start(struct reexec *u, const char *config_path, char *err,
    size_t errlen)
{
	char *argv[] = { u->exe, "-t", "-c", (char *)config_path, NULL };
	char **env;
	sigset_t all, old;
	int pv[2];
	pid_t pid;

	if (u->self_fd < 0 || u->exe[0] == '\0') {
		snprintf(err, errlen, "the running image could not be opened "
		    "at start; no upgrade without a way back");
		return -1;
	}
	if (access(u->exe, X_OK) == -1) {
		snprintf(err, errlen, "the new binary %s: %s", u->exe,
		    errno == ENOENT ? "no such file" : strerror(errno));
		return -1;
	}
	if ((env = reexec_probe_env()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (pipe2(pv, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		free(env);
		return -1;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(pv[0]);
		close(pv[1]);
		free(env);
		return -1;
	}
	if (pid == 0) {
		close(pv[0]);
		fcntl(pv[1], F_SETFL, 0);	/* blocking in the child */
		reexec_probe_child(pv[1], argv, env);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(env);
	close(pv[1]);
	u->probe_pid = pid;
	u->probe_fd = pv[0];
	u->probe_len = 0;
	u->probe_out[0] = '\0';
	u->probe_timed_out = 0;
	u->new_version[0] = '\0';
	if (evloop_add(u->loop, u->probe_fd, POLLIN, reexec_on_probe_output,
	    u) == -1) {
		close(u->probe_fd);
		u->probe_fd = -1;	/* its output is read when it ends */
	}
	evloop_timer_init(&u->probe_timer, reexec_on_probe_timeout, u);
	evloop_timer_add(u->loop, &u->probe_timer, clock_mono() +
	    REEXEC_PROBE_TIMEOUT);
	return 0;
}

/* The last non-empty line of text, printable ASCII, for a message. */
static void
reexec_last_line(const char *text, size_t len, char *out, size_t outlen)
{
	size_t end = len, start, i, o = 0;

	while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' ||
	    text[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	for (i = start; i < end && o + 1 < outlen; i++)
		out[o++] = (text[i] >= ' ' && text[i] < 0x7f) ? text[i] : '?';
	out[o] = '\0';
}

int
reexec_probe_parse(const char *out, size_t len, const char *exe,
    char *version, size_t versionlen, char *err, size_t errlen)
{
	const char *p = out, *end = out + len, *nl;
	char line[256], ver[REEXEC_VERSION_MAX];
	size_t taglen = strlen(REEXEC_PROBE_TAG), n;
	int lo, hi;

	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = (size_t)(nl - p);
		if (n < taglen || memcmp(p, REEXEC_PROBE_TAG, taglen) != 0)
			continue;
		if (n >= sizeof(line))
			break;
		memcpy(line, p, n);
		line[n] = '\0';
		if (sscanf(line + taglen, "%d %d %63s", &lo, &hi, ver) != 3)
			break;
		if (REEXEC_STATE_VERSION < lo || REEXEC_STATE_VERSION > hi) {
			snprintf(err, errlen, "the new binary %s (egressd %s) "
			    "reads upgrade states %d to %d, and this egressd "
			    "hands over version %d: refused", exe, ver, lo, hi,
			    REEXEC_STATE_VERSION);
			return -1;
		}
		snprintf(version, versionlen, "%s", ver);
		return 0;
	}
	snprintf(err, errlen, "the new binary %s does not take over a "
	    "running egressd (its -t printed no valid \"%s\" line)", exe,
	    REEXEC_PROBE_TAG);
	return -1;
}

int
reexec_probe_reaped(struct reexec *u, pid_t pid, int status, char *err,
    size_t errlen)
{
	char last[256];

	if (u->probe_pid <= 0 || pid != u->probe_pid)
		return REEXEC_PROBE_OTHER;
	u->probe_pid = 0;
	reexec_probe_read(u);
	reexec_probe_close(u);
	reexec_last_line(u->probe_out, u->probe_len, last, sizeof(last));
	if (u->probe_timed_out) {
		snprintf(err, errlen, "the new binary's check (%s -t) did not "
		    "finish within %.0fs", u->exe, REEXEC_PROBE_TIMEOUT);
		return REEXEC_PROBE_FAILED;
	}
	if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "the new binary's check (%s -t) was "
		    "killed by signal %d (%s)", u->exe, WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
		return REEXEC_PROBE_FAILED;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "the new binary's check (%s -t) failed "
		    "with status %d%s%s", u->exe, WIFEXITED(status) ?
		    WEXITSTATUS(status) : -1, last[0] ? ": " : "", last);
		return REEXEC_PROBE_FAILED;
	}
	if (reexec_probe_parse(u->probe_out, u->probe_len, u->exe,
	    u->new_version, sizeof(u->new_version), err, errlen) == -1)
		return REEXEC_PROBE_FAILED;
	return REEXEC_PROBE_OK;
}

int
reexec_blob_create(const char *text, char *err, size_t errlen)
{
	size_t len = strlen(text), off = 0;
	ssize_t n;
	int fd;

	if ((fd = (int)syscall(SYS_memfd_create, "egressd-upgrade-state",
	    MFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return -1;
	}
	while (off < len) {
		if ((n = write(fd, text + off, len - off)) <= 0) {
			snprintf(err, errlen, "writing the upgrade state: %s",
			    n == 0 ? "short write" : strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return fd;
}

static void
reexec_set_cloexec(const int *fds, int n, int on)
{
	int i, flags;

	for (i = 0; i < n; i++) {
		if (fds[i] < 0 || (flags = fcntl(fds[i], F_GETFD)) == -1)
			continue;
		fcntl(fds[i], F_SETFD, on ? flags | FD_CLOEXEC :
		    flags & ~FD_CLOEXEC);
	}
}

/* Block everything but the crashes: handlers come back in the new image. */
static void
reexec_block_signals(sigset_t *old)
{
	sigset_t set;
	size_t i;

	sigfillset(&set);
	for (i = 0; i < REEXEC_NCRASH; i++)
		sigdelset(&set, reexec_crash_signals[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

int
reexec_exec(struct reexec *u, char *const argv[], int blob_fd,
    const int *keep, int nkeep, char *err, size_t errlen)
{
	char value[64];
	int own[2] = { blob_fd, u->self_fd }, saved;
	sigset_t old;

	snprintf(value, sizeof(value), "%d:%d", blob_fd, u->self_fd);
	if (setenv(REEXEC_ENV_STATE, value, 1) == -1) {
		snprintf(err, errlen, "setenv: %s", strerror(errno));
		return -1;
	}
	reexec_set_cloexec(keep, nkeep, 0);
	reexec_set_cloexec(own, 2, 0);
	reexec_block_signals(&old);
	execv(u->exe, argv);
	saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	reexec_set_cloexec(keep, nkeep, 1);
	reexec_set_cloexec(own, 2, 1);
	unsetenv(REEXEC_ENV_STATE);
	snprintf(err, errlen, "exec %s: %s", u->exe, strerror(saved));
	return -1;
}

static int
reexec_parse_fd(const char *s, char **end)
{
	long v;

	errno = 0;
	v = strtol(s, end, 10);
	if (errno != 0 || *end == s || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

int
reexec_state_check(const cJSON *state, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(state, "version");

	if (!cJSON_IsObject(state) || !cJSON_IsNumber(v)) {
		snprintf(err, errlen, "the upgrade state has no version");
		return -1;
	}
	if (v->valuedouble < REEXEC_STATE_MIN ||
	    v->valuedouble > REEXEC_STATE_VERSION ||
	    v->valuedouble != (int)v->valuedouble) {
		snprintf(err, errlen, "the upgrade state is version %g; egressd "
		    "%s reads versions %d to %d", v->valuedouble,
		    EGRESSD_VERSION, REEXEC_STATE_MIN, REEXEC_STATE_VERSION);
		return -1;
	}
	return 0;
}

/* The blob's text, bounded; NULL with err. */
static char *
reexec_blob_read(int fd, char *err, size_t errlen)
{
	size_t cap = 65536, len = 0;
	char *buf = NULL, *nbuf;
	ssize_t n;

	for (;;) {
		if (len + 1 >= cap || buf == NULL) {
			if (buf != NULL)
				cap *= 2;
			if (cap > REEXEC_STATE_MAX + 1 ||
			    (nbuf = realloc(buf, cap)) == NULL) {
				snprintf(err, errlen, "the upgrade state is too "
				    "large or memory ran out");
				free(buf);
				return NULL;
			}
			buf = nbuf;
		}
		n = pread(fd, buf + len, cap - 1 - len, (off_t)len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "reading the upgrade state: %s",
			    strerror(errno));
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

/* Every descriptor the blob names: its "*_fd" keys and the workers' "fd". */
static int
reexec_named_fds(const cJSON *state, int *fds, int max)
{
	const cJSON *item, *w;
	size_t klen;
	int n = 0;

	cJSON_ArrayForEach(item, state) {
		klen = item->string != NULL ? strlen(item->string) : 0;
		if (klen > 3 && strcmp(item->string + klen - 3, "_fd") == 0 &&
		    cJSON_IsNumber(item) && n < max)
			fds[n++] = item->valueint;
	}
	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(state,
	    "workers")) {
		item = cJSON_GetObjectItemCaseSensitive(w, "fd");
		if (cJSON_IsNumber(item) && n < max)
			fds[n++] = item->valueint;
	}
	return n;
}

/*
 * What the previous image left open without handing it over (a socket of
 * libcurl's, say) is closed: only what the blob names stays.
 */
static void
reexec_close_strays(const struct reexec_inherit *in)
{
	int keep[REEXEC_FDS_MAX], n;

	n = reexec_named_fds(in->state, keep, REEXEC_FDS_MAX - 2);
	keep[n++] = in->state_fd;
	keep[n++] = in->fallback_fd;
	procinfo_close_fds_except(keep, n);
}

int
reexec_inherited_lock(const cJSON *state, const char *name, int *fd,
    char **path)
{
	char key[64];
	const cJSON *v;
	int flags;

	snprintf(key, sizeof(key), "%s_fd", name);
	v = cJSON_GetObjectItemCaseSensitive(state, key);
	if (!cJSON_IsNumber(v) || v->valueint < 0)
		return -1;
	*fd = v->valueint;
	snprintf(key, sizeof(key), "%s_path", name);
	v = cJSON_GetObjectItemCaseSensitive(state, key);
	if (!cJSON_IsString(v) || (*path = strdup(v->valuestring)) == NULL)
		return -1;
	if ((flags = fcntl(*fd, F_GETFD)) != -1)
		fcntl(*fd, F_SETFD, flags | FD_CLOEXEC);
	return 0;
}

int
reexec_take(struct reexec_inherit *in, char *err, size_t errlen)
{
	const char *env = getenv(REEXEC_ENV_STATE), *failed;
	char *end, *text;

	memset(in, 0, sizeof(*in));
	in->state_fd = in->fallback_fd = -1;
	if (env == NULL)
		return 0;
	in->state_fd = reexec_parse_fd(env, &end);
	if (*end == ':')
		in->fallback_fd = reexec_parse_fd(end + 1, &end);
	if ((failed = getenv(REEXEC_ENV_FAILED)) != NULL)
		snprintf(in->failed, sizeof(in->failed), "%s", failed);
	unsetenv(REEXEC_ENV_STATE);
	unsetenv(REEXEC_ENV_FAILED);
	if (in->state_fd < 0 || *end != '\0') {
		snprintf(err, errlen, "%s: malformed", REEXEC_ENV_STATE);
		return -1;
	}
	if ((text = reexec_blob_read(in->state_fd, err, errlen)) == NULL)
		return -1;
	in->state = cJSON_Parse(text);
	free(text);
	if (in->state == NULL) {
		snprintf(err, errlen, "the upgrade state is not valid JSON");
		return -1;
	}
	if (reexec_state_check(in->state, err, errlen) == -1) {
		cJSON_Delete(in->state);
		in->state = NULL;
		return -1;
	}
	reexec_close_strays(in);
	return 1;
}

/* environ, without our variables, plus the blob's and the reason's. */
static char **
reexec_env(const char *reason)
{
	size_t o;
	char **env;

	if ((env = reexec_environ(1, 2, &o)) == NULL)
		return NULL;
	if (asprintf(&env[o], "%s=%d:%d", REEXEC_ENV_STATE,
	    reexec_back.state_fd, reexec_back.fallback_fd) == -1) {
		free(env);
		return NULL;
	}
	if (asprintf(&env[o + 1], "%s=%s", REEXEC_ENV_FAILED, reason) == -1) {
		free(env[o]);
		free(env);
		return NULL;
	}
	return env;
}

static void
reexec_exec_back(char **env)
{
	syscall(SYS_execveat, reexec_back.fallback_fd, "", reexec_back.argv,
	    env, AT_EMPTY_PATH);
}

static void
reexec_on_crash(int signo)
{
	char *d = reexec_back.crash_reason + reexec_back.crash_digits;

	d[0] = (char)('0' + (signo / 10) % 10);
	d[1] = (char)('0' + signo % 10);
	reexec_exec_back(reexec_back.crash_env);
	signal(signo, SIG_DFL);
	raise(signo);
}

static void
reexec_on_fatal(const char *msg)
{
	char reason[REEXEC_REASON_MAX];

	snprintf(reason, sizeof(reason), "egressd %s failed to start: %s",
	    EGRESSD_VERSION, msg);
	reexec_fallback(reason);
}

static void
reexec_on_exit(void)
{
	char reason[REEXEC_REASON_MAX];

	snprintf(reason, sizeof(reason), "egressd %s exited before it "
	    "adopted the workers", EGRESSD_VERSION);
	reexec_fallback(reason);
}

void
reexec_arm_fallback(const struct reexec_inherit *in, char *const argv[])
{
	struct sigaction sa;
	sigset_t set;
	char reason[REEXEC_REASON_MAX];
	size_t i;
	int n;

	if (in->failed[0] != '\0' || in->fallback_fd < 0)
		return;
	reexec_back.fallback_fd = in->fallback_fd;
	reexec_back.state_fd = in->state_fd;
	reexec_back.argv = argv;
	n = snprintf(reason, sizeof(reason), "egressd %s crashed (signal ",
	    EGRESSD_VERSION);
	snprintf(reason + n, sizeof(reason) - (size_t)n, "00) before it "
	    "adopted the workers");
	if ((reexec_back.crash_env = reexec_env(reason)) != NULL) {
		for (i = 0; reexec_back.crash_env[i + 1] != NULL; i++)
			;
		reexec_back.crash_reason = reexec_back.crash_env[i];
		reexec_back.crash_digits = sizeof(REEXEC_ENV_FAILED) +
		    (size_t)n;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = reexec_on_crash;
		sa.sa_flags = SA_RESETHAND | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		sigemptyset(&set);
		for (i = 0; i < REEXEC_NCRASH; i++) {
			sigaction(reexec_crash_signals[i], &sa, NULL);
			sigaddset(&set, reexec_crash_signals[i]);
		}
		sigprocmask(SIG_UNBLOCK, &set, NULL);
	}
	reexec_back.armed = 1;
	log_on_fatal(reexec_on_fatal);
	atexit(reexec_on_exit);
}

void
reexec_fallback(const char *reason)
{
	char **env;

	if (!reexec_back.armed)
		return;
	reexec_back.armed = 0;
	log_errx("upgrade: %s; going back to the previous binary", reason);
	if ((env = reexec_env(reason)) != NULL)
		reexec_exec_back(env);
	log_errx("upgrade: the previous binary could not be executed again "
	    "(%s); the workers are left without a master", strerror(errno));
}

void
reexec_disarm(struct reexec_inherit *in)
{
	size_t i;

	if (reexec_back.armed) {
		reexec_back.armed = 0;
		log_on_fatal(NULL);
		for (i = 0; i < REEXEC_NCRASH; i++)
			signal(reexec_crash_signals[i], SIG_DFL);
	}
	if (reexec_back.crash_env != NULL) {
		/* The last two entries are ours: the blob's and the reason. */
		for (i = 0; reexec_back.crash_env[i + 1] != NULL; i++)
			;
		free(reexec_back.crash_env[i - 1]);
		free(reexec_back.crash_env[i]);
		free(reexec_back.crash_env);
		reexec_back.crash_env = NULL;
		reexec_back.crash_reason = NULL;
	}
	if (in->fallback_fd >= 0)
		close(in->fallback_fd);
	if (in->state_fd >= 0)
		close(in->state_fd);
	in->fallback_fd = in->state_fd = -1;
	cJSON_Delete(in->state);
	in->state = NULL;
}
