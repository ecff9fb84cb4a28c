/*
 * reexec: replacing the running binary in place (SIGUSR2, egressctl
 * upgrade), keeping the master's PID.
 *
 * Owns the process-level mechanics, not what crosses: the binary's path
 * (resolved at start, since /proc/self/exe names the deleted file once a
 * package manager has replaced it) and a descriptor of the running image
 * (the fallback); the probe (`NEW -t -c CONFIG` run as a child, whose
 * output must name the state versions it reads); the state blob (a memfd
 * named in EGRESSD_UPGRADE_STATE, cleared on read); the exec; and, in the
 * new image, the way back: until the workers are adopted, a fatal error,
 * an exit or a crash re-executes the previous image from its descriptor,
 * with the same blob and the reason in EGRESSD_UPGRADE_FAILED.  What the
 * blob holds (the worker table, the descriptors) is the master's
 * (handover.c).
 *
 * Compatibility rule: the blob carries "version"; an image reads the
 * versions REEXEC_STATE_MIN..REEXEC_STATE_VERSION and says so in its
 * probe line, and the running master refuses to exec a binary that does
 * not read the version it writes.  A blob of an unknown version that
 * reaches an image anyway sends it back to the previous one.
 */
#ifndef EGRESSD_REEXEC_H
#define EGRESSD_REEXEC_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/evloop.h"

#define REEXEC_STATE_VERSION 1	/* the blob this build writes */
#define REEXEC_STATE_MIN 1	/* the oldest blob it reads */
#define REEXEC_ENV_STATE "EGRESSD_UPGRADE_STATE"	/* "STATEFD:SELFFD" */
#define REEXEC_ENV_FAILED "EGRESSD_UPGRADE_FAILED"	/* why we are back */
#define REEXEC_ENV_PROBE "EGRESSD_UPGRADE_PROBE"	/* -t prints the line */
#define REEXEC_PROBE_TAG "egressd-upgrade-state:"	/* MIN MAX VERSION */
#define REEXEC_PROBE_TIMEOUT 30.0	/* seconds the -t run may take */
#define REEXEC_PROBE_OUTPUT 4096	/* of its output kept */
#define REEXEC_STATE_MAX (16 * 1024 * 1024)	/* bytes of blob read */
#define REEXEC_VERSION_MAX 64
#define REEXEC_REASON_MAX 512
#define REEXEC_FDS_MAX 1024	/* descriptors a blob may name */

struct cJSON;

struct reexec {
	char exe[PATH_MAX];	/* the binary's path, resolved at start */
	int self_fd;		/* O_PATH of the running image, or -1 */
	struct evloop *loop;
	pid_t probe_pid;	/* the -t run under way, or 0 */
	int probe_fd;		/* its stdout and stderr, or -1 */
	char probe_out[REEXEC_PROBE_OUTPUT];
	size_t probe_len;
	int probe_timed_out;
	struct evloop_timer probe_timer;
	char new_version[REEXEC_VERSION_MAX];	/* from the probe line */
};

/*
 * Note the binary's path first thing in main(): the sooner, the less
 * likely a package manager replaced the file already.  -1 with errno.
 */
int reexec_note_exe(void);

/*
 * Resolve the binary's path (exe, or the one noted, or /proc/self/exe
 * when NULL; " (deleted)" is not part of it) and open
 * the running image.  -1 with err when neither can be had: upgrades are
 * then refused, the daemon runs all the same.
 */
int reexec_init(struct reexec *u, struct evloop *loop, const char *exe,
    char *err, size_t errlen);
void reexec_free(struct reexec *u);

/* Start `EXE -t -c config_path`; -1 with err (missing, not executable). */
int reexec_probe_start(struct reexec *u, const char *config_path,
    char *err, size_t errlen);

enum reexec_probe_result {
	REEXEC_PROBE_OTHER = 0,	/* pid is not the probe */
	REEXEC_PROBE_OK = 1,		/* new_version is set */
	REEXEC_PROBE_FAILED = -1	/* err says why */
};

/* A child was reaped: was it the probe, and what did it say? */
int reexec_probe_reaped(struct reexec *u, pid_t pid, int status, char *err,
    size_t errlen);

/*
 * Judge the probe's output (pure): the tag line must accept this build's
 * state version.  0 with version set, or -1 with err.
 */
int reexec_probe_parse(const char *out, size_t len, const char *exe,
    char *version, size_t versionlen, char *err, size_t errlen);

/*
 * Write text into a fresh memfd (close-on-exec until reexec_exec);
 * returns it, or -1 with err.
 */
int reexec_blob_create(const char *text, char *err, size_t errlen);

/*
 * Exec u->exe with argv, keeping keep[] (and the blob and the running
 * image) open across it and every signal but the synchronous ones blocked
 * (the new image unblocks them once its handlers are in).  Returns only
 * on failure, everything put back, with err.
 */
int reexec_exec(struct reexec *u, char *const argv[], int blob_fd,
    const int *keep, int nkeep, char *err, size_t errlen);

/* What an image started by an upgrade inherited. */
struct reexec_inherit {
	struct cJSON *state;	/* the blob, parsed; NULL after a refusal */
	int state_fd;
	int fallback_fd;	/* the previous image; -1 when there is none */
	char failed[REEXEC_REASON_MAX];	/* set: we are the fallback */
};

/*
 * Read the environment and the blob (clearing the variables): 0 when this
 * is an ordinary start, 1 with in filled, -1 with err when the blob cannot
 * be used (in->fallback_fd is then set when known).
 */
int reexec_take(struct reexec_inherit *in, char *err, size_t errlen);

/*
 * A lock the previous image held (name "pidfile" or "statelock": the
 * blob's NAME_fd and NAME_path): *fd, and *path malloc'ed.  -1 when the
 * blob does not name it.
 */
int reexec_inherited_lock(const struct cJSON *state, const char *name,
    int *fd, char **path);

/*
 * The blob's version is one this build reads (pure): 0, or -1 with err.
 */
int reexec_state_check(const struct cJSON *state, char *err, size_t errlen);

/*
 * Until reexec_disarm(): a fatal error, an exit or a crashing signal
 * re-executes in's fallback image (argv as given) with the blob and the
 * reason.  Does nothing for a fallback image (it has no way back).
 */
void reexec_arm_fallback(const struct reexec_inherit *in,
    char *const argv[]);
/* Go back now; returns only when the exec itself failed. */
void reexec_fallback(const char *reason);
/* The workers are adopted: no way back needed; closes what came in. */
void reexec_disarm(struct reexec_inherit *in);

#endif
