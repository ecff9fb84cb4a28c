/*
 * control: the control socket the master serves and egressctl speaks.
 *
 * Requests and replies are newline-delimited JSON objects over a unix stream
 * socket (mode 0600, peers checked with SO_PEERCRED: root or the daemon's own
 * uid).  A request is {"cmd": NAME, ...arguments}; a reply always carries
 * "ok" and, when ok is false, "error".  This module owns the socket, the
 * per-connection buffers and the framing; what a command does belongs to
 * the master, reached through a handler callback.  The client half used by
 * egressctl lives here too, so both sides share one definition.
 */
#ifndef EGRESSD_CONTROL_H
#define EGRESSD_CONTROL_H

#include <stddef.h>

#define CTL_MAX_LINE (64 * 1024)	/* a request line, newline included */
#define CTL_MAX_CLIENTS 64
#define CTL_IDLE_TIMEOUT 60.0		/* seconds before an idle peer is dropped */
#define CTL_CLIENT_TIMEOUT 10.0		/* egressctl's wait for a reply */
/* reload --wait: the master answers within server.graceful_timeout (at
 * most an hour) of the new workers' start. */
#define CTL_RELOAD_TIMEOUT (3600.0 + 60.0)

/* Command names: the protocol's vocabulary, shared with egressctl. */
#define CTL_CMD_STATUS "status"
#define CTL_CMD_HEALTH "health"
#define CTL_CMD_RELOAD "reload"
#define CTL_CMD_STOP "stop"
#define CTL_CMD_SCALE "scale"
#define CTL_CMD_METRICS "metrics"	/* reply {"ok", "text": Prometheus} */
#define CTL_CMD_UPGRADE "upgrade"	/* re-execute the binary in place */

/* Health verdicts and the exit codes egressctl maps them to. */
#define CTL_HEALTHY "healthy"
#define CTL_DEGRADED "degraded"
#define CTL_DOWN "down"
#define CTL_EXIT_HEALTHY 0
#define CTL_EXIT_DEGRADED 1
#define CTL_EXIT_DOWN 2

struct cJSON;
struct evloop;
struct control;

/*
 * Builds the reply to a parsed request whose "cmd" is a string.  Returns a
 * cJSON object the control module sends and frees, or NULL with err set
 * (the module then replies {"ok":false,"error":err}).
 */
typedef struct cJSON *(*control_handler)(const char *cmd,
    const struct cJSON *request, void *arg, char *err, size_t errlen);

/*
 * A reply that comes later: a handler that must ask the workers first calls
 * control_defer() and returns NULL with err left empty; the connection then
 * waits (reading nothing more) until control_finish() sends the reply, or
 * the error when reply is NULL.  control_finish() also frees the token and
 * is safe when the peer has gone meanwhile.
 */
struct control_reply;
struct control_reply *control_defer(struct control *ctl);
void control_finish(struct control_reply *r, struct cJSON *reply,
    const char *err);

/*
 * Bind path (replacing a stale socket), listen, and join loop: its
 * descriptors, and a timer per peer that drops it once idle for
 * CTL_IDLE_TIMEOUT.
 */
struct control *control_open(const char *path, struct evloop *loop,
    control_handler handler, void *arg, char *err, size_t errlen);

/*
 * Is the socket file at the path still the one bound?  0 when it is; when
 * it was removed or replaced, a new listening socket is bound there (a
 * file that is not a socket, or one another process answers on, is left
 * alone: -1 with err) and 1 is returned.  Connected peers stay.
 */
int control_check(struct control *ctl, char *err, size_t errlen);

/*
 * A binary upgrade hands the listening socket (bound at path) to the new
 * image, which serves it from there without binding again; a connection
 * waiting for a deferred reply crosses with it.
 */
struct control *control_adopt(int fd, const char *path, struct evloop *loop,
    control_handler handler, void *arg, char *err, size_t errlen);
/* The listening socket's descriptor. */
int control_fd(const struct control *ctl);
/* The connection a deferred reply goes to, or -1 once the peer left. */
int control_reply_fd(const struct control_reply *r);
/* Take a connection over (its request already read) as a deferred reply. */
struct control_reply *control_adopt_reply(struct control *ctl, int fd);

/* Let the socket file belong to the daemon's user after privilege drop. */
int control_chown(struct control *ctl, unsigned uid, unsigned gid);

/* Close everything; unlink the socket unless keep_path (forked child). */
void control_close(struct control *ctl, int unlink_path);

/* Client: send one request line, wait for one reply line (malloc'ed). */
int control_request(const char *path, const char *request, char **reply,
    char *err, size_t errlen);
/* The same, waiting up to timeout seconds for the reply. */
int control_request_wait(const char *path, const char *request,
    double timeout, char **reply, char *err, size_t errlen);

#endif
