/*
 * control: the control socket server and client (see include/master/control.h).
 *
 * Each peer has an input buffer bounded by CTL_MAX_LINE and an output buffer
 * bounded by CTL_MAX_OUTPUT; a peer that overflows either is told why (when
 * possible) and dropped, and so is one idle for CTL_IDLE_TIMEOUT (a timer
 * each, moved by every sign of life).  Nothing a peer sends can stop the
 * master: every failure ends at most that one connection.
 *
 * A peer that half-closes after its requests (socat, nc -N: write, then
 * shutdown(SHUT_WR)) is still answered: EOF only means no more requests.
 * The lines already received (and a last one without its newline) are
 * answered in order, deferred replies included, and the connection closes
 * once the replies are sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "master/control.h"
#include "core/evloop.h"
#include "core/jsonutil.h"
#include "core/log.h"

#define CTL_BACKLOG CTL_MAX_CLIENTS
#define CTL_MAX_OUTPUT (1024 * 1024)
#define CTL_READ_CHUNK 4096

struct control_peer {
	int fd;
	char *in;
	size_t inlen;
	char *out;
	size_t outlen;
	size_t outcap;
	int closing;		/* flush out, then drop */
	int eof;		/* the peer sends no more; answer, then close */
	struct control_reply *waiting;	/* a deferred reply is due */
	struct evloop_timer idle;	/* dropped when it fires */
	struct control *ctl;
	struct control_peer *next;
};

struct control_reply {
	struct control_peer *peer;	/* NULL once the peer has gone */
};

struct control {
	int fd;
	struct control_peer *current;	/* the peer being answered */
	char *path;
	struct evloop *loop;
	control_handler handler;
	void *arg;
	struct control_peer *peers;
	int npeers;
	dev_t dev;		/* the socket file bound at path */
	ino_t ino;
};

static void control_peer_io(int fd, short revents, void *arg);

static void
control_peer_touch(struct control_peer *p)
{
	evloop_timer_add(p->ctl->loop, &p->idle, clock_mono() +
	    CTL_IDLE_TIMEOUT);
}

static int
control_addr(const char *path, struct sockaddr_un *sun, char *err,
    size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "control socket %s: path too long", path);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return 0;
}

/* A socket file nobody answers on is left over from a crash: remove it. */
static int
control_clear_stale(const char *path, const struct sockaddr_un *sun,
    char *err, size_t errlen)
{
	struct stat sb;
	int fd, live;

	if (lstat(path, &sb) == -1)
		return 0;
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "control socket %s: exists and is not a "
		    "socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	if (live) {
		snprintf(err, errlen, "control socket %s: another process is "
		    "listening on it", path);
		return -1;
	}
	unlink(path);
	return 0;
}

static void
control_listener(int fd, short revents, void *arg);

/* A listening socket bound at path (a stale one replaced), or -1. */
static int
control_bind(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd;

	if (control_addr(path, &sun, err, errlen) == -1 ||
	    control_clear_stale(path, &sun, err, errlen) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	/* The umask makes the file 0600 from birth: no window for others. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, 0600) == -1 || listen(fd, CTL_BACKLOG) == -1) {
		snprintf(err, errlen, "control socket %s: %s", path,
		    strerror(errno));
		umask(old);
		close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

/* The socket file's identity, to notice it removed or replaced later. */
static void
control_note_file(struct control *ctl)
{
	struct stat sb;

	if (lstat(ctl->path, &sb) == 0) {
		ctl->dev = sb.st_dev;
		ctl->ino = sb.st_ino;
	}
}

/* The server on listening socket fd at path; NULL (fd left open). */
static struct control *
control_listen(int fd, const char *path, struct evloop *loop,
    control_handler handler, void *arg, char *err, size_t errlen)
{
	struct control *ctl;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL ||
	    (ctl->path = strdup(path)) == NULL ||
	    evloop_add(loop, fd, POLLIN, control_listener, ctl) == -1) {
		snprintf(err, errlen, "control socket %s: out of memory", path);
		if (ctl)
			free(ctl->path);
		free(ctl);
		return NULL;
	}
	ctl->fd = fd;
	ctl->loop = loop;
	ctl->handler = handler;
	ctl->arg = arg;
	control_note_file(ctl);
	return ctl;
}

struct control *
control_open(const char *path, struct evloop *loop, control_handler handler,
    void *arg, char *err, size_t errlen)
{
	struct control *ctl;
	int fd;

	if ((fd = control_bind(path, err, errlen)) == -1)
		return NULL;
	if ((ctl = control_listen(fd, path, loop, handler, arg, err,
	    errlen)) == NULL) {
		unlink(path);
		close(fd);
	}
	return ctl;
}

struct control *
control_adopt(int fd, const char *path, struct evloop *loop,
    control_handler handler, void *arg, char *err, size_t errlen)
{
	int flags;

	if ((flags = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == -1) {
		snprintf(err, errlen, "control socket %s: inherited descriptor "
		    "%d: %s", path, fd, strerror(errno));
		return NULL;
	}
	return control_listen(fd, path, loop, handler, arg, err, errlen);
}

int
control_fd(const struct control *ctl)
{
	return ctl->fd;
}

int
control_check(struct control *ctl, char *err, size_t errlen)
{
	struct stat sb;
	int fd;

	if (lstat(ctl->path, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
	    sb.st_dev == ctl->dev && sb.st_ino == ctl->ino)
		return 0;
	if ((fd = control_bind(ctl->path, err, errlen)) == -1)
		return -1;
	if (evloop_add(ctl->loop, fd, POLLIN, control_listener, ctl) == -1) {
		snprintf(err, errlen, "control socket %s: out of memory",
		    ctl->path);
		unlink(ctl->path);
		close(fd);
		return -1;
	}
	/* Connected peers keep their connections; only the listener moves. */
	evloop_remove(ctl->loop, ctl->fd);
	close(ctl->fd);
	ctl->fd = fd;
	control_note_file(ctl);
	return 1;
}

int
control_chown(struct control *ctl, unsigned uid, unsigned gid)
{
	return chown(ctl->path, (uid_t)uid, (gid_t)gid);
}

static void
control_peer_free(struct control_peer *p)
{
	struct control *ctl = p->ctl;
	struct control_peer **pp;

	for (pp = &ctl->peers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->waiting != NULL)
		p->waiting->peer = NULL;
	evloop_timer_cancel(&p->idle);
	evloop_remove(ctl->loop, p->fd);
	close(p->fd);
	ctl->npeers--;
	free(p->in);
	free(p->out);
	free(p);
}

static int
control_queue(struct control_peer *p, const char *text, size_t len)
{
	size_t need = p->outlen + len + 1;
	char *out;

	if (need > CTL_MAX_OUTPUT)
		return -1;
	if (need > p->outcap) {
		size_t cap = p->outcap ? p->outcap : 1024;

		while (cap < need)
			cap *= 2;
		if ((out = realloc(p->out, cap)) == NULL)
			return -1;
		p->out = out;
		p->outcap = cap;
	}
	memcpy(p->out + p->outlen, text, len);
	p->outlen += len;
	p->out[p->outlen++] = '\n';
	return 0;
}

static int
control_queue_json(struct control_peer *p, cJSON *reply)
{
	char *text = cJSON_PrintUnformatted(reply);
	int rc;

	if (text == NULL)
		return -1;
	rc = control_queue(p, text, strlen(text));
	cJSON_free(text);
	return rc;
}

static int
control_queue_error(struct control_peer *p, const char *msg)
{
	cJSON *reply = cJSON_CreateObject();
	int rc = -1;

	if (reply != NULL && cJSON_AddFalseToObject(reply, "ok") != NULL &&
	    cJSON_AddStringToObject(reply, "error", msg) != NULL)
		rc = control_queue_json(p, reply);
	cJSON_Delete(reply);
	return rc;
}

/* Names are echoed in errors and logs: printable ASCII only. */
static int
control_cmd_name_ok(const char *name)
{
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return 0;
	return 1;
}

static cJSON *
control_dispatch(struct control *ctl, const char *line, size_t len,
    char *err, size_t errlen)
{
	cJSON *req, *cmd, *reply = NULL;

	/* cJSON takes any bytes in a string; a reply must be UTF-8. */
	if (!json_utf8_valid(line, len)) {
		snprintf(err, errlen, "malformed request: not valid UTF-8");
		return NULL;
	}
	if ((req = cJSON_ParseWithLength(line, len)) == NULL) {
		snprintf(err, errlen, "malformed request: not valid JSON");
		return NULL;
	}
	cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!cJSON_IsObject(req))
		snprintf(err, errlen, "malformed request: not a JSON object");
	else if (cmd == NULL)
		snprintf(err, errlen, "malformed request: missing \"cmd\"");
	else if (!cJSON_IsString(cmd))
		snprintf(err, errlen, "malformed request: \"cmd\" must be a "
		    "string");
	else if (!control_cmd_name_ok(cmd->valuestring))
		snprintf(err, errlen, "malformed request: \"cmd\" is not a "
		    "command name");
	else
		reply = ctl->handler(cmd->valuestring, req, ctl->arg, err,
		    errlen);
	cJSON_Delete(req);
	return reply;
}

static void
control_handle_line(struct control_peer *p, const char *line, size_t len)
{
	char err[512];
	cJSON *reply;
	int rc;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;		/* blank lines are keep-alives */
	err[0] = '\0';
	p->ctl->current = p;
	reply = control_dispatch(p->ctl, line, len, err, sizeof(err));
	p->ctl->current = NULL;
	if (reply == NULL && p->waiting != NULL)
		return;		/* control_finish() will answer */
	if (reply == NULL) {
		log_debug("control: %s", err);
		rc = control_queue_error(p, err);
	} else {
		if (!cJSON_HasObjectItem(reply, "ok"))
			cJSON_AddTrueToObject(reply, "ok");
		rc = control_queue_json(p, reply);
		cJSON_Delete(reply);
	}
	if (rc == -1)
		p->closing = 1;	/* the peer is not reading its replies */
}

/* Consume every complete line in the input buffer. */
static void
control_parse_input(struct control_peer *p)
{
	char *nl;
	size_t used;

	while (!p->closing && p->waiting == NULL &&
	    (nl = memchr(p->in, '\n', p->inlen)) != NULL) {
		used = (size_t)(nl - p->in) + 1;
		control_handle_line(p, p->in, used - 1);
		memmove(p->in, p->in + used, p->inlen - used);
		p->inlen -= used;
	}
	if (p->inlen >= CTL_MAX_LINE && p->waiting == NULL) {
		log_warnx("control: request over %d bytes; closing that "
		    "connection", CTL_MAX_LINE);
		control_queue_error(p, "request too large");
		p->closing = 1;
		p->inlen = 0;
	}
	if (!p->eof || p->waiting != NULL)
		return;
	/* At EOF a last line may lack its newline: it is still a request. */
	if (!p->closing && p->inlen > 0) {
		used = p->inlen;
		p->inlen = 0;
		control_handle_line(p, p->in, used);
		if (p->waiting != NULL)
			return;
	}
	p->closing = 1;		/* answered everything: send, then close */
}

static int
control_read(struct control_peer *p)
{
	ssize_t n;

	for (;;) {
		n = read(p->fd, p->in + p->inlen, CTL_MAX_LINE - p->inlen);
		if (n == 0) {
			p->eof = 1;
			control_parse_input(p);
			return 0;
		}
		if (n == -1)
			return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		p->inlen += (size_t)n;
		control_parse_input(p);
		if (p->closing || p->waiting != NULL)
			return 0;
	}
}

static int
control_flush(struct control_peer *p)
{
	ssize_t n;

	while (p->outlen > 0) {
		n = send(p->fd, p->out, p->outlen, MSG_NOSIGNAL);
		if (n == -1)
			return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		memmove(p->out, p->out + n, p->outlen - (size_t)n);
		p->outlen -= (size_t)n;
	}
	return 0;
}

/*
 * Read and drop what the peer already sent: closing a unix socket with
 * unread input resets the peer, which could then miss our error reply.
 */
static void
control_discard_input(int fd)
{
	char scratch[CTL_READ_CHUNK];
	int i;

	for (i = 0; i < CTL_MAX_LINE / CTL_READ_CHUNK * 4; i++)
		if (read(fd, scratch, sizeof(scratch)) <= 0)
			break;
}

/* Send what is queued, then watch for what the peer's state needs. */
static void
control_peer_update(struct control_peer *p)
{
	int reading = !p->closing && p->waiting == NULL;

	if (control_flush(p) == -1 || (p->closing && p->outlen == 0)) {
		if (p->closing)
			control_discard_input(p->fd);
		control_peer_free(p);
		return;
	}
	evloop_modify(p->ctl->loop, p->fd,
	    (short)((reading ? POLLIN : 0) | (p->outlen ? POLLOUT : 0)));
}

static void
control_peer_io(int fd, short revents, void *arg)
{
	struct control_peer *p = arg;

	(void)fd;
	control_peer_touch(p);
	/* poll reports a hang-up even unasked: a waiting peer may be gone. */
	if (p->waiting != NULL && (revents & (POLLHUP | POLLERR))) {
		control_peer_free(p);
		return;
	}
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !p->closing &&
	    p->waiting == NULL && control_read(p) == -1) {
		control_peer_free(p);
		return;
	}
	control_peer_update(p);
}

struct control_reply *
control_defer(struct control *ctl)
{
	struct control_reply *r;

	if (ctl->current == NULL || ctl->current->waiting != NULL ||
	    (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->peer = ctl->current;
	r->peer->waiting = r;
	return r;
}

void
control_finish(struct control_reply *r, cJSON *reply, const char *err)
{
	struct control_peer *p = r->peer;
	int rc;

	free(r);
	if (p == NULL) {
		cJSON_Delete(reply);
		return;
	}
	p->waiting = NULL;
	control_peer_touch(p);
	if (reply == NULL)
		rc = control_queue_error(p, err ? err : "no reply");
	else {
		if (!cJSON_HasObjectItem(reply, "ok"))
			cJSON_AddTrueToObject(reply, "ok");
		rc = control_queue_json(p, reply);
		cJSON_Delete(reply);
	}
	if (rc == -1)
		p->closing = 1;
	control_parse_input(p);	/* requests that queued up meanwhile */
	control_peer_update(p);
}

static int
control_peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return 0;
	return cred.uid == 0 || cred.uid == geteuid();
}

/* Refuse a peer with one error line, best effort, without keeping it. */
static void
control_refuse(int fd, const char *msg)
{
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\"}\n",
	    msg);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		(void)0;
	close(fd);
}

/* A peer awaiting a deferred reply is not idle: its command bounds it. */
static void
control_on_idle(void *arg)
{
	struct control_peer *p = arg;

	if (p->waiting != NULL) {
		control_peer_touch(p);
		return;
	}
	control_peer_free(p);
}

static void
control_accept_one(struct control *ctl, int fd)
{
	struct control_peer *p;

	if (!control_peer_allowed(fd)) {
		log_warnx("control: refused a peer that is neither root nor "
		    "the daemon's user");
		control_refuse(fd, "permission denied");
		return;
	}
	if (ctl->npeers >= CTL_MAX_CLIENTS) {
		log_warnx("control: %d connections open; refusing another",
		    ctl->npeers);
		control_refuse(fd, "too many connections");
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->in = malloc(CTL_MAX_LINE)) == NULL ||
	    evloop_add(ctl->loop, fd, POLLIN, control_peer_io, p) == -1) {
		log_warnx("control: out of memory for a new connection");
		if (p)
			free(p->in);
		free(p);
		close(fd);
		return;
	}
	p->fd = fd;
	p->ctl = ctl;
	evloop_timer_init(&p->idle, control_on_idle, p);
	control_peer_touch(p);
	p->next = ctl->peers;
	ctl->peers = p;
	ctl->npeers++;
	/*
	 * Read now: a client that sent its request and left before we got to
	 * accept it (a connect-and-close storm) is done at once, instead of
	 * holding a slot that a live client in the same backlog needs.
	 */
	control_peer_io(fd, POLLIN, p);
}

int
control_reply_fd(const struct control_reply *r)
{
	return r->peer != NULL ? r->peer->fd : -1;
}

struct control_reply *
control_adopt_reply(struct control *ctl, int fd)
{
	struct control_reply *r;
	int flags;

	if ((flags = fcntl(fd, F_GETFD)) != -1)
		fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	control_accept_one(ctl, fd);
	if (ctl->peers == NULL || ctl->peers->fd != fd)
		return NULL;	/* refused, or gone at once */
	ctl->current = ctl->peers;
	r = control_defer(ctl);
	ctl->current = NULL;
	if (r != NULL)
		control_peer_update(r->peer);	/* stop reading it */
	return r;
}

static void
control_listener(int fd, short revents, void *arg)
{
	struct control *ctl = arg;
	int peer;

	(void)revents;
	for (;;) {
		peer = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (peer == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("control: accept");
			return;
		}
		control_accept_one(ctl, peer);
	}
}

void
control_close(struct control *ctl, int unlink_path)
{
	if (ctl == NULL)
		return;
	while (ctl->peers != NULL)
		control_peer_free(ctl->peers);
	evloop_remove(ctl->loop, ctl->fd);
	close(ctl->fd);
	if (unlink_path)
		unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

/* Client side. */

static int
control_client_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd;

	if (control_addr(path, &sun, err, errlen) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, errlen, "cannot connect to %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
control_client_send(int fd, const char *request, char *err, size_t errlen)
{
	size_t len = strlen(request), off = 0;
	ssize_t n;

	while (off < len) {
		n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "send: %s", strerror(errno));
			return -1;
		}
		off += (size_t)n;
	}
	if (send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		snprintf(err, errlen, "send: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Read until a newline, with an overall deadline. */
static int
control_client_recv(int fd, double timeout, char **reply, char *err,
    size_t errlen)
{
	double deadline = clock_mono() + timeout;
	struct pollfd pfd = { fd, POLLIN, 0 };
	size_t len = 0, cap = 4096;
	char *buf, *grown;
	ssize_t n;

	if ((buf = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		if (poll(&pfd, 1, clock_ms_until(deadline)) <= 0) {
			snprintf(err, errlen, "no reply within %.0f s",
			    timeout);
			break;
		}
		if (len + 1 == cap) {
			if (cap >= CTL_MAX_OUTPUT ||
			    (grown = realloc(buf, cap * 2)) == NULL) {
				snprintf(err, errlen, "reply too large");
				break;
			}
			buf = grown;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "connection closed before a "
			    "reply");
			break;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (memchr(buf, '\n', len) != NULL) {
			*strchr(buf, '\n') = '\0';
			*reply = buf;
			return 0;
		}
	}
	free(buf);
	return -1;
}

int
control_request(const char *path, const char *request, char **reply,
    char *err, size_t errlen)
{
	return control_request_wait(path, request, CTL_CLIENT_TIMEOUT, reply,
	    err, errlen);
}

int
control_request_wait(const char *path, const char *request, double timeout,
    char **reply, char *err, size_t errlen)
{
	int fd, rc;

	*reply = NULL;
	if ((fd = control_client_connect(path, err, errlen)) == -1)
		return -1;
	rc = control_client_send(fd, request, err, errlen);
	if (rc == 0)
		rc = control_client_recv(fd, timeout, reply, err, errlen);
	close(fd);
	return rc;
}
