/*
 * orchd: a fast orchestrator for the benchmarks.
 *
 * It serves the agent side of the orchestrator protocol (DESIGN.md section
 * 2) and the part of the fake orchestrator's admin API that the benchmarks
 * use (tests/orchestrator/fake_orchestrator.py has the full one), from one
 * thread with epoll, so that the orchestrator costs less CPU per operation
 * than egressd itself.  It is a load generator, not a test double: the only
 * faults are piggyback, silent or comment heartbeats, auth_fail and
 * refuse_all.  Plain HTTP/1.1 with keep-alive and pipelining, bodies with
 * Content-Length or chunked.
 *
 * usage: orchd [-p PORT] -i TOKEN_ID -t TOKEN [options]; see --help.
 * It prints "port N" on stdout once it listens.  SIGTERM or SIGINT ends
 * every stream cleanly, frees everything and exits 0.
 */
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define ORCHD_MAX_HEAD		16384	/* request line and headers */
#define ORCHD_MAX_BODY		(64 * 1024 * 1024)
#define ORCHD_MAX_OUT		(64 * 1024 * 1024)	/* unsent, per client */
#define ORCHD_READ_CHUNK	65536
#define ORCHD_MAX_EVENTS	64
#define ORCHD_MAX_QUERY		16
#define ORCHD_MAX_ENQUEUE	1000000000.0
#define ORCHD_MIN_INTERVAL	0.001
#define ORCHD_DEFAULT_PATH	"/api/v1/test/health"
#define ORCHD_DEFAULT_RESULTS	100000
#define ORCHD_NO_INSTANCE	"-"	/* instance key without the header */
#define ORCHD_ABSENT		((size_t)-1)
#define ORCHD_CONTINUE		"HTTP/1.1 100 Continue\r\n\r\n"
#define ORCHD_STREAM_HEAD	"HTTP/1.1 200 OK\r\n" \
	"Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n" \
	"Transfer-Encoding: chunked\r\n\r\n"
#define ORCHD_LAST_CHUNK	"0\r\n\r\n"

enum orchd_ep {
	EP_STREAM, EP_OPERATION, EP_RESULT, EP_REQUEST, EP_HEARTBEAT,
	EP_SHUTDOWN, EP_LOGS, EP_METRICS, EP_UNKNOWN, EP_COUNT
};

static const char *const ep_names[EP_COUNT] = {
	"stream", "operation", "result", "request", "heartbeat", "shutdown",
	"logs", "metrics", "unknown"
};

/* Faults of the fake that orchd does not have: a clear 400, not silence. */
static const char *const unsupported_faults[] = {
	"delay", "fail", "drop", "oversized_operation", "sse_event_field",
	"sse_id_field", "sse_chunked", "garbage_sse", "oversized_sse", NULL
};

struct buf {
	char	*data;
	size_t	 off;		/* data[off..len) is pending */
	size_t	 len;
	size_t	 cap;
};

struct smap_ent {
	char	*key;
	void	*val;		/* malloc'd or NULL; freed with the map */
};

/* Strings to values: open addressing, never shrinks. */
struct smap {
	struct smap_ent	*ents;
	size_t		 cap;
	size_t		 n;
};

struct inst {
	unsigned long	 requests, heartbeats, shutdowns, results, operations;
	unsigned long	 empty_polls, logs, metrics, stream_connects;
};

struct faults {
	int	 heartbeats;
	int	 heartbeat_comments;	/* ": heartbeat" instead of an event */
	int	 push_metrics;
	int	 piggyback;
	int	 auth_fail;
	int	 refuse_all;
	double	 heartbeat_interval;
};

static const struct {
	const char	*name;
	size_t		 off;
} bool_faults[] = {
	{ "heartbeats", offsetof(struct faults, heartbeats) },
	{ "heartbeat_comments", offsetof(struct faults, heartbeat_comments) },
	{ "push_metrics", offsetof(struct faults, push_metrics) },
	{ "piggyback", offsetof(struct faults, piggyback) },
	{ "auth_fail", offsetof(struct faults, auth_fail) },
	{ "refuse_all", offsetof(struct faults, refuse_all) },
};

/* One queued operation, or a run of generated ones (op-N...). */
struct qent {
	struct qent		*next;
	char			*json;	/* the operation; for a run, its tail */
	size_t			 len;
	int			 run;
	unsigned long long	 first;	/* a run's next N */
	unsigned long long	 left;	/* a run's operations still queued */
};

struct result {
	char	*op_id;
	char	*instance_id;	/* NULL without the header */
	char	*body;		/* the PUT body, {"result": ...} */
	size_t	 body_len;
	double	 time;
	int	 duplicate;
};

/* The request being read; string fields are offsets into the head. */
struct req {
	int	 have_head;
	size_t	 head_len;
	size_t	 clen;
	int	 chunked;
	int	 keep_alive;
	int	 expect_continue;
	int	 continue_sent;
	size_t	 target;
	size_t	 iid, xid, xtoken;	/* ORCHD_ABSENT when missing */
};

struct orchd;

struct conn {
	struct conn	*prev, *next;
	struct orchd	*o;
	int		 fd;
	int		 dead;		/* closed; freed after this batch */
	int		 closing;	/* close once the output is sent */
	int		 eof;
	unsigned int	 mask;		/* the epoll events asked for */
	int		 stream;
	char		*stream_iid;
	double		 next_beat;
	struct buf	 in, out;
	struct req	 req;
};

struct query {
	char	*key[ORCHD_MAX_QUERY];
	char	*val[ORCHD_MAX_QUERY];
	int	 n;
};

struct orchd {
	int		 ep, lfd, sfd;
	int		 port;
	int		 quit;
	const char	*token_id, *token, *agent_id;
	double		 default_interval;
	size_t		 max_results;
	struct faults	 faults;
	struct conn	*conns;		/* every open connection */
	struct conn	*dead;		/* closed during this batch */
	size_t		 nstreams;
	struct qent	*qhead, *qtail;
	unsigned long long qlen;
	unsigned long long next_op;	/* op-N; never reset */
	struct result	*res;		/* the first max_results results */
	size_t		 nres;
	unsigned long	 results, duplicates, taken, requests;
	unsigned long	 stream_connects, sse_heartbeats;
	unsigned long	 counts[EP_COUNT];
	struct smap	 ids;		/* operation IDs with a result */
	struct smap	 insts;		/* instance ID -> struct inst */
	struct buf	 scratch;	/* a reply or an event being built */
	struct buf	 body;		/* a decoded chunked body */
};

typedef cJSON *(*admin_fn)(struct orchd *, const struct query *,
    const cJSON *, int *, char *, size_t);

static void conn_close(struct conn *);
static void conn_flush(struct conn *);

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- buffers ------------------------------------------------------------ */

static size_t
buf_avail(const struct buf *b)
{
	return b->len - b->off;
}

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->off > 0 && b->cap - b->len < more) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len >= more)
		return 0;
	cap = b->cap ? b->cap : 1024;
	while (cap - b->len < more)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n + 1) == -1)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

static int __attribute__((format(printf, 2, 3)))
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n + 1) == -1)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

static void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

static void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- string map --------------------------------------------------------- */

static uint64_t
smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct smap_ent *
smap_slot(const struct smap *m, const char *key)
{
	size_t i = (size_t)smap_hash(key) & (m->cap - 1);

	while (m->ents[i].key != NULL && strcmp(m->ents[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->ents[i];
}

static int
smap_grow(struct smap *m)
{
	struct smap bigger;
	size_t i;

	bigger.cap = m->cap ? m->cap * 2 : 64;
	bigger.n = m->n;
	if ((bigger.ents = calloc(bigger.cap, sizeof(*bigger.ents))) == NULL)
		return -1;
	for (i = 0; i < m->cap; i++)
		if (m->ents[i].key != NULL)
			*smap_slot(&bigger, m->ents[i].key) = m->ents[i];
	free(m->ents);
	*m = bigger;
	return 0;
}

/* The entry for key, added with a NULL value when missing; NULL on ENOMEM. */
static struct smap_ent *
smap_get(struct smap *m, const char *key, int *added)
{
	struct smap_ent *e;

	*added = 0;
	if ((m->n + 1) * 10 > m->cap * 7 && smap_grow(m) == -1)
		return NULL;
	e = smap_slot(m, key);
	if (e->key == NULL) {
		if ((e->key = strdup(key)) == NULL)
			return NULL;
		m->n++;
		*added = 1;
	}
	return e;
}

static void
smap_clear(struct smap *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++) {
		free(m->ents[i].key);
		free(m->ents[i].val);
	}
	free(m->ents);
	memset(m, 0, sizeof(*m));
}

/* ---- state -------------------------------------------------------------- */

static void
faults_default(struct orchd *o, struct faults *f)
{
	memset(f, 0, sizeof(*f));
	f->heartbeats = 1;
	f->heartbeat_interval = o->default_interval;
}

static struct inst *
inst_get(struct orchd *o, const char *iid)
{
	struct smap_ent *e;
	int added;

	e = smap_get(&o->insts, iid ? iid : ORCHD_NO_INSTANCE, &added);
	if (e == NULL)
		return NULL;
	if (e->val == NULL && (e->val = calloc(1, sizeof(struct inst))) == NULL)
		return NULL;
	return e->val;
}

static void
queue_free(struct orchd *o)
{
	struct qent *q;

	while ((q = o->qhead) != NULL) {
		o->qhead = q->next;
		free(q->json);
		free(q);
	}
	o->qtail = NULL;
	o->qlen = 0;
}

static void
queue_append(struct orchd *o, struct qent *q)
{
	if (o->qtail != NULL)
		o->qtail->next = q;
	else
		o->qhead = q;
	o->qtail = q;
	o->qlen += q->run ? q->left : 1;
}

/* Appends the next operation's JSON to b: 1, 0 when empty, -1 on ENOMEM. */
static int
queue_pop(struct orchd *o, struct buf *b)
{
	struct qent *q = o->qhead;

	if (q == NULL)
		return 0;
	if (q->run) {
		if (buf_printf(b, "{\"operation_id\":\"op-%llu\"", q->first) ==
		    -1 || buf_add(b, q->json, q->len) == -1)
			return -1;
		q->first++;
		q->left--;
	} else if (buf_add(b, q->json, q->len) == -1)
		return -1;
	o->qlen--;
	if (!q->run || q->left == 0) {
		if ((o->qhead = q->next) == NULL)
			o->qtail = NULL;
		free(q->json);
		free(q);
	}
	return 1;
}

static void
results_free(struct orchd *o)
{
	size_t i;

	for (i = 0; i < o->nres; i++) {
		free(o->res[i].op_id);
		free(o->res[i].instance_id);
		free(o->res[i].body);
	}
	free(o->res);
	o->res = NULL;
	o->nres = 0;
}

/* Forgets everything but open streams and the operation ID counter. */
static void
state_clear(struct orchd *o)
{
	queue_free(o);
	results_free(o);
	smap_clear(&o->ids);
	smap_clear(&o->insts);
	o->results = o->duplicates = o->taken = o->requests = 0;
	o->stream_connects = o->sse_heartbeats = 0;
	memset(o->counts, 0, sizeof(o->counts));
	faults_default(o, &o->faults);
}

/* ---- connections -------------------------------------------------------- */

static void
conn_watch(struct conn *c)
{
	struct epoll_event ev;
	unsigned int mask;

	/* After EOF, input would wake the loop forever: only output. */
	mask = (c->eof ? 0 : EPOLLIN) | (buf_avail(&c->out) > 0 ? EPOLLOUT : 0);
	if (c->dead || mask == c->mask)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = mask;
	ev.data.ptr = c;
	if (epoll_ctl(c->o->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
		conn_close(c);
		return;
	}
	c->mask = mask;
}

static void
conn_close(struct conn *c)
{
	struct orchd *o = c->o;

	if (c->dead)
		return;
	c->dead = 1;
	epoll_ctl(o->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->stream)
		o->nstreams--;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		o->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = o->dead;
	o->dead = c;
}

static void
conn_free(struct conn *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->stream_iid);
	free(c);
}

/*
 * Closing with unread input makes the kernel send a reset, which can
 * destroy a reply the client has not read yet: read what is there first.
 */
static void
conn_finish(struct conn *c)
{
	char sink[4096];

	while (recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	shutdown(c->fd, SHUT_WR);
	conn_close(c);
}

static void
conn_flush(struct conn *c)
{
	ssize_t n;

	while (!c->dead && buf_avail(&c->out) > 0) {
		n = send(c->fd, c->out.data + c->out.off, buf_avail(&c->out),
		    MSG_NOSIGNAL);
		if (n > 0)
			buf_consume(&c->out, (size_t)n);
		else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else {
			conn_close(c);
			return;
		}
	}
	if (c->dead)
		return;
	if (buf_avail(&c->out) > ORCHD_MAX_OUT) {
		conn_close(c);	/* a client that does not read */
		return;
	}
	if (buf_avail(&c->out) == 0 && (c->closing || c->eof)) {
		conn_finish(c);
		return;
	}
	conn_watch(c);
}

static const char *
httpc_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* Queues a reply; it leaves at the next flush. */
static void
conn_reply(struct conn *c, int status, const char *body, size_t len)
{
	struct buf *b = &c->out;
	int rc;

	if (c->dead)
		return;
	rc = buf_printf(b, "HTTP/1.1 %d %s\r\n", status, httpc_reason(status));
	if (rc == 0 && status != 204)
		rc = buf_printf(b, "Content-Type: application/json\r\n"
		    "Content-Length: %zu\r\n", len);
	if (rc == 0 && !c->req.keep_alive) {
		rc = buf_str(b, "Connection: close\r\n");
		c->closing = 1;
	}
	if (rc == 0)
		rc = buf_str(b, "\r\n");
	if (rc == 0 && status != 204)
		rc = buf_add(b, body, len);
	if (rc == -1)
		conn_close(c);
}

static void
conn_reply_json(struct conn *c, int status, cJSON *obj)
{
	char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;

	cJSON_Delete(obj);
	if (s == NULL) {
		conn_close(c);
		return;
	}
	conn_reply(c, status, s, strlen(s));
	free(s);
}

static void __attribute__((format(printf, 3, 4)))
conn_error(struct conn *c, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	cJSON *obj;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((obj = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(obj, "error", msg) == NULL) {
		cJSON_Delete(obj);
		conn_close(c);
		return;
	}
	conn_reply_json(c, status, obj);
}

/* A request that cannot be read further: answer, then close. */
static int
conn_fail(struct conn *c, int status, const char *msg)
{
	c->req.keep_alive = 0;
	conn_error(c, status, "%s", msg);
	return -1;
}

/* ---- SSE ---------------------------------------------------------------- */

/* One event in SSE framing appended to b: optional id and event lines. */
static int
sse_format(struct buf *b, const char *data, const char *event, const char *id)
{
	const char *nl;

	if (id != NULL && buf_printf(b, "id: %s\n", id) == -1)
		return -1;
	if (event != NULL && buf_printf(b, "event: %s\n", event) == -1)
		return -1;
	for (;;) {
		nl = strchr(data, '\n');
		if (buf_str(b, "data: ") == -1 ||
		    buf_add(b, data, nl ? (size_t)(nl - data) : strlen(data)) ==
		    -1 || buf_str(b, "\n") == -1)
			return -1;
		if (nl == NULL)
			break;
		data = nl + 1;
	}
	return buf_str(b, "\n");
}

static int
sse_format_json(struct buf *b, const cJSON *data)
{
	char *s = cJSON_PrintUnformatted(data);
	int rc;

	if (s == NULL)
		return -1;
	rc = sse_format(b, s, NULL, NULL);
	free(s);
	return rc;
}

/* Writes raw bytes as one chunk of the stream. */
static void
sse_write(struct conn *c, const char *raw, size_t len)
{
	if (len == 0 || c->dead)
		return;
	if (buf_printf(&c->out, "%zx\r\n", len) == -1 ||
	    buf_add(&c->out, raw, len) == -1 ||
	    buf_str(&c->out, "\r\n") == -1) {
		conn_close(c);
		return;
	}
	conn_flush(c);
}

/* Raw bytes to the open streams (of one instance); -> streams reached. */
static int
sse_broadcast(struct orchd *o, const char *raw, size_t len, const char *iid)
{
	struct conn *c, *next;
	int n = 0;

	for (c = o->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->stream || (iid != NULL && (c->stream_iid == NULL ||
		    strcmp(c->stream_iid, iid) != 0)))
			continue;
		sse_write(c, raw, len);
		n++;
	}
	return n;
}

/* abort: close at once; otherwise the last chunk first. */
static int
sse_close_streams(struct orchd *o, int abort, const char *iid)
{
	struct conn *c, *next;
	int n = 0;

	for (c = o->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->stream || (iid != NULL && (c->stream_iid == NULL ||
		    strcmp(c->stream_iid, iid) != 0)))
			continue;
		n++;
		if (abort) {
			conn_close(c);
			continue;
		}
		c->closing = 1;
		if (buf_str(&c->out, ORCHD_LAST_CHUNK) == -1)
			conn_close(c);
		else
			conn_flush(c);
	}
	return n;
}

static void
sse_heartbeat(struct orchd *o, struct conn *c)
{
	struct buf *b = &o->scratch;
	int rc;

	if (!o->faults.heartbeats)
		return;
	buf_reset(b);
	if (o->faults.heartbeat_comments)
		rc = buf_str(b, ": heartbeat\n\n");
	else
		rc = buf_printf(b, "data: {\"type\":\"heartbeat\","
		    "\"ts\":%.3f%s}\n\n", wall_now(),
		    o->faults.push_metrics ? ",\"push_metrics\":true" : "");
	if (rc == -1) {
		conn_close(c);
		return;
	}
	o->sse_heartbeats++;
	sse_write(c, b->data, b->len);
}

/* Heartbeats that are due; -> milliseconds until the next (-1: none). */
static int
sse_beats(struct orchd *o)
{
	struct conn *c, *next;
	double now = mono_now(), soonest = -1, left;

	for (c = o->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->stream)
			continue;
		if (c->next_beat <= now) {
			sse_heartbeat(o, c);
			c->next_beat = now + o->faults.heartbeat_interval;
		}
		left = c->next_beat - now;
		if (soonest < 0 || left < soonest)
			soonest = left;
	}
	if (soonest < 0)
		return -1;
	return (int)(soonest * 1000.0) + 1;
}

/* ---- operations --------------------------------------------------------- */

/* The operation ID a client gave, or a new op-N; "" when unusable. */
static int
op_id_of(struct orchd *o, const cJSON *id, char *out, size_t outlen)
{
	if (cJSON_IsString(id) && id->valuestring[0] != '\0') {
		if (strlen(id->valuestring) >= outlen)
			return -1;
		strcpy(out, id->valuestring);
	} else if (cJSON_IsNumber(id) && id->valuedouble != 0) {
		snprintf(out, outlen, "%.17g", id->valuedouble);
	} else if (id == NULL || cJSON_IsNull(id) || cJSON_IsFalse(id) ||
	    cJSON_IsString(id) || cJSON_IsNumber(id)) {
		snprintf(out, outlen, "op-%llu", o->next_op++);
	} else
		return -1;
	return 0;
}

/*
 * {"operation_id", "path", "operation", other keys...} as the fake builds
 * it, or NULL with err set.
 */
static cJSON *
op_full(struct orchd *o, const cJSON *op, char *err, size_t errlen)
{
	const cJSON *path, *body, *it;
	char id[256];
	cJSON *full, *copy;

	if (!cJSON_IsObject(op)) {
		snprintf(err, errlen, "an operation must be a JSON object");
		return NULL;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(op,
	    "size_exceeded"))) {
		snprintf(err, errlen, "size_exceeded is not supported by "
		    "orchd");
		return NULL;
	}
	path = cJSON_GetObjectItemCaseSensitive(op, "path");
	if (path != NULL && !cJSON_IsString(path)) {
		snprintf(err, errlen, "path must be a string");
		return NULL;
	}
	if (op_id_of(o, cJSON_GetObjectItemCaseSensitive(op, "operation_id"),
	    id, sizeof(id)) == -1) {
		snprintf(err, errlen, "operation_id must be a short string");
		return NULL;
	}
	body = cJSON_GetObjectItemCaseSensitive(op, "operation");
	if ((full = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(full, "operation_id", id) == NULL ||
	    cJSON_AddStringToObject(full, "path", path ? path->valuestring :
	    ORCHD_DEFAULT_PATH) == NULL)
		goto nomem;
	copy = body ? cJSON_Duplicate(body, 1) : cJSON_CreateObject();
	if (copy == NULL || !cJSON_AddItemToObject(full, "operation", copy))
		goto nomem;
	cJSON_ArrayForEach(it, op) {
		if (strcmp(it->string, "operation_id") == 0 ||
		    strcmp(it->string, "path") == 0 ||
		    strcmp(it->string, "operation") == 0 ||
		    strcmp(it->string, "size_exceeded") == 0)
			continue;
		if ((copy = cJSON_Duplicate(it, 1)) == NULL ||
		    !cJSON_AddItemToObject(full, it->string, copy))
			goto nomem;
	}
	return full;
nomem:
	cJSON_Delete(full);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

/* The operations of an enqueue or push body, normalised; NULL on error. */
static cJSON *
ops_prepare(struct orchd *o, const cJSON *body, char *err, size_t errlen)
{
	const cJSON *list = body, *it, *se;
	cJSON *out, *full;

	if (cJSON_IsObject(body) &&
	    cJSON_GetObjectItemCaseSensitive(body, "operations") != NULL) {
		list = cJSON_GetObjectItemCaseSensitive(body, "operations");
		se = cJSON_GetObjectItemCaseSensitive(body, "size_exceeded");
		if (cJSON_IsTrue(se)) {
			snprintf(err, errlen,
			    "size_exceeded is not supported by orchd");
			return NULL;
		}
	}
	if ((out = cJSON_CreateArray()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (cJSON_IsObject(list)) {
		if ((full = op_full(o, list, err, errlen)) == NULL)
			goto fail;
		cJSON_AddItemToArray(out, full);
		return out;
	}
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
		snprintf(err, errlen, "expected an operation object or "
		    "{\"operations\": [...]}");
		goto fail;
	}
	cJSON_ArrayForEach(it, list) {
		if ((full = op_full(o, it, err, errlen)) == NULL)
			goto fail;
		cJSON_AddItemToArray(out, full);
	}
	return out;
fail:
	cJSON_Delete(out);
	return NULL;
}

/* ---- admin API ---------------------------------------------------------- */

static const char *
query_get(const struct query *q, const char *key)
{
	const char *v = NULL;
	int i;

	for (i = 0; i < q->n; i++)	/* the last one wins, as in the fake */
		if (strcmp(q->key[i], key) == 0)
			v = q->val[i];
	return v;
}

static cJSON *
faults_json(const struct faults *f)
{
	cJSON *obj = cJSON_CreateObject();
	size_t i;

	if (obj == NULL)
		return NULL;
	for (i = 0; i < sizeof(bool_faults) / sizeof(bool_faults[0]); i++)
		cJSON_AddBoolToObject(obj, bool_faults[i].name,
		    *(const int *)((const char *)f + bool_faults[i].off));
	cJSON_AddNumberToObject(obj, "heartbeat_interval",
	    f->heartbeat_interval);
	return obj;
}

static cJSON *
inst_json(const struct inst *in, int streams_open)
{
	cJSON *obj = cJSON_CreateObject();

	if (obj == NULL)
		return NULL;
	cJSON_AddNumberToObject(obj, "requests", (double)in->requests);
	cJSON_AddNumberToObject(obj, "heartbeats", (double)in->heartbeats);
	cJSON_AddNumberToObject(obj, "shutdowns", (double)in->shutdowns);
	cJSON_AddNumberToObject(obj, "results", (double)in->results);
	cJSON_AddNumberToObject(obj, "operations", (double)in->operations);
	cJSON_AddNumberToObject(obj, "empty_polls", (double)in->empty_polls);
	cJSON_AddNumberToObject(obj, "full_requests", 0);
	cJSON_AddNumberToObject(obj, "logs", (double)in->logs);
	cJSON_AddNumberToObject(obj, "metrics", (double)in->metrics);
	cJSON_AddNumberToObject(obj, "stream_connects",
	    (double)in->stream_connects);
	cJSON_AddNumberToObject(obj, "streams_open", streams_open);
	return obj;
}

static cJSON *
instances_json(struct orchd *o)
{
	cJSON *obj = cJSON_CreateObject();
	const struct conn *c;
	const char *key;
	size_t i;
	int open;

	if (obj == NULL)
		return NULL;
	/* A stream always made its instance's entry when it was opened. */
	for (i = 0; i < o->insts.cap; i++) {
		if ((key = o->insts.ents[i].key) == NULL)
			continue;
		open = 0;
		for (c = o->conns; c != NULL; c = c->next)
			if (c->stream && strcmp(c->stream_iid ? c->stream_iid :
			    ORCHD_NO_INSTANCE, key) == 0)
				open++;
		cJSON_AddItemToObject(obj, key,
		    inst_json(o->insts.ents[i].val, open));
	}
	return obj;
}

static cJSON *
state_json(struct orchd *o)
{
	cJSON *obj = cJSON_CreateObject(), *counts;
	char url[64];
	int i;

	if (obj == NULL)
		return NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", o->port);
	cJSON_AddStringToObject(obj, "url", url);
	cJSON_AddStringToObject(obj, "server", "orchd");
	cJSON_AddNumberToObject(obj, "queue_length", (double)o->qlen);
	cJSON_AddNumberToObject(obj, "results", (double)o->results);
	cJSON_AddNumberToObject(obj, "duplicate_results",
	    (double)o->duplicates);
	cJSON_AddNumberToObject(obj, "taken", (double)o->taken);
	cJSON_AddNumberToObject(obj, "requests", (double)o->requests);
	if ((counts = cJSON_AddObjectToObject(obj, "counts")) != NULL)
		for (i = 0; i < EP_COUNT; i++)
			cJSON_AddNumberToObject(counts, ep_names[i],
			    (double)o->counts[i]);
	cJSON_AddNumberToObject(obj, "streams_open", (double)o->nstreams);
	cJSON_AddNumberToObject(obj, "stream_connects",
	    (double)o->stream_connects);
	cJSON_AddNumberToObject(obj, "sse_heartbeats",
	    (double)o->sse_heartbeats);
	cJSON_AddNumberToObject(obj, "full_operations", 0);
	cJSON_AddItemToObject(obj, "instances", instances_json(o));
	cJSON_AddItemToObject(obj, "faults", faults_json(&o->faults));
	return obj;
}

static cJSON *
admin_state(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	(void)q, (void)body, (void)status, (void)err, (void)errlen;
	return state_json(o);
}

static cJSON *
result_json(const struct result *r, size_t seq)
{
	cJSON *obj = cJSON_CreateObject(), *body, *res;

	if (obj == NULL)
		return NULL;
	cJSON_AddNumberToObject(obj, "seq", (double)seq);
	cJSON_AddStringToObject(obj, "operation_id", r->op_id);
	if (r->instance_id != NULL)
		cJSON_AddStringToObject(obj, "instance_id", r->instance_id);
	else
		cJSON_AddNullToObject(obj, "instance_id");
	body = cJSON_ParseWithLength(r->body, r->body_len);
	res = cJSON_DetachItemFromObjectCaseSensitive(body, "result");
	cJSON_Delete(body);
	cJSON_AddItemToObject(obj, "result", res ? res : cJSON_CreateNull());
	cJSON_AddNumberToObject(obj, "time", r->time);
	cJSON_AddBoolToObject(obj, "duplicate", r->duplicate);
	return obj;
}

/*
 * {"count", "results"}: without filters count is every result received,
 * while the list holds the first max_results ("truncated" when it stops
 * short); with ?list=0 there is no list.
 */
static cJSON *
admin_results(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const char *op = query_get(q, "operation_id");
	const char *iid = query_get(q, "instance_id");
	const char *list = query_get(q, "list");
	int want = list == NULL || strcmp(list, "0") != 0;
	cJSON *obj = cJSON_CreateObject(), *arr = NULL;
	size_t i, n = 0;
	const struct result *r;

	(void)body, (void)status, (void)err, (void)errlen;
	if (obj == NULL || (want && (arr = cJSON_AddArrayToObject(obj,
	    "results")) == NULL)) {
		cJSON_Delete(obj);
		return NULL;
	}
	for (i = 0; i < o->nres; i++) {
		r = &o->res[i];
		if ((op != NULL && strcmp(op, r->op_id) != 0) ||
		    (iid != NULL && (r->instance_id == NULL ||
		    strcmp(iid, r->instance_id) != 0)))
			continue;
		n++;
		if (want)
			cJSON_AddItemToArray(arr, result_json(r, i + 1));
	}
	if (op == NULL && iid == NULL) {
		if (o->results > n)
			cJSON_AddTrueToObject(obj, "truncated");
		n = o->results;
	}
	cJSON_AddNumberToObject(obj, "count", (double)n);
	return obj;
}

static cJSON *
admin_get_faults(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	(void)q, (void)body, (void)status, (void)err, (void)errlen;
	return faults_json(&o->faults);
}

static int
fault_known_unsupported(const char *key)
{
	int i;

	for (i = 0; unsupported_faults[i] != NULL; i++)
		if (strcmp(unsupported_faults[i], key) == 0)
			return 1;
	return 0;
}

/* One key of a faults body into f; -1 with err set. */
static int
fault_apply(struct faults *f, const cJSON *it, int *close, char *err,
    size_t errlen)
{
	const char *key = it->string;
	size_t i;

	for (i = 0; i < sizeof(bool_faults) / sizeof(bool_faults[0]); i++) {
		if (strcmp(key, bool_faults[i].name) != 0)
			continue;
		if (!cJSON_IsBool(it)) {
			snprintf(err, errlen, "%s must be true or false", key);
			return -1;
		}
		*(int *)((char *)f + bool_faults[i].off) = cJSON_IsTrue(it);
		return 0;
	}
	if (strcmp(key, "clear") == 0)
		return 0;
	if (strcmp(key, "heartbeat_interval") == 0) {
		if (!cJSON_IsNumber(it) ||
		    it->valuedouble < ORCHD_MIN_INTERVAL) {
			snprintf(err, errlen, "heartbeat_interval must be a "
			    "number >= %g", ORCHD_MIN_INTERVAL);
			return -1;
		}
		f->heartbeat_interval = it->valuedouble;
		return 0;
	}
	if (strcmp(key, "close_streams") == 0) {
		if (cJSON_IsString(it) && strcmp(it->valuestring, "abort") == 0)
			*close = 2;
		else
			*close = cJSON_IsTrue(it);
		return 0;
	}
	if (fault_known_unsupported(key))
		snprintf(err, errlen, "fault '%s' is not supported by orchd",
		    key);
	else
		snprintf(err, errlen, "unknown fault '%s'", key);
	return -1;
}

static cJSON *
admin_set_faults(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const cJSON *it;
	struct faults f = o->faults;
	int close = 0, delivered = 0;
	cJSON *reply;

	(void)q, (void)status;
	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "faults must be a JSON object");
		return NULL;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "clear")))
		faults_default(o, &f);
	cJSON_ArrayForEach(it, body)
		if (fault_apply(&f, it, &close, err, errlen) == -1)
			return NULL;
	o->faults = f;
	if (close)
		delivered = sse_close_streams(o, close == 2, NULL);
	if ((reply = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddItemToObject(reply, "faults", faults_json(&o->faults));
	if (cJSON_GetObjectItemCaseSensitive(body, "close_streams") != NULL)
		cJSON_AddNumberToObject(reply, "delivered", delivered);
	return reply;
}

/* {"count": N, "path"?, "operation"?}: N operations op-A..op-B. */
static cJSON *
enqueue_run(struct orchd *o, const cJSON *body, char *err, size_t errlen)
{
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(body, "count");
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(body, "path");
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(body, "operation");
	cJSON *tail, *reply;
	struct qent *q;
	char *s, id[32];

	if (!cJSON_IsNumber(count) || count->valuedouble < 1 ||
	    count->valuedouble > ORCHD_MAX_ENQUEUE ||
	    count->valuedouble != (double)(long long)count->valuedouble ||
	    (path != NULL && !cJSON_IsString(path)) ||
	    (op != NULL && !cJSON_IsObject(op))) {
		snprintf(err, errlen, "expected {\"count\": N >= 1, "
		    "\"path\"?: string, \"operation\"?: object}");
		return NULL;
	}
	/* The tail that follows {"operation_id":"op-N" in every one. */
	if ((tail = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(tail, "path", path ? path->valuestring :
	    ORCHD_DEFAULT_PATH) == NULL ||
	    !cJSON_AddItemToObject(tail, "operation", op ?
	    cJSON_Duplicate(op, 1) : cJSON_CreateObject()) ||
	    (s = cJSON_PrintUnformatted(tail)) == NULL) {
		cJSON_Delete(tail);
		return NULL;
	}
	cJSON_Delete(tail);
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		free(s);
		return NULL;
	}
	s[0] = ',';		/* the object's '{' becomes a separator */
	q->json = s;
	q->len = strlen(s);
	q->run = 1;
	q->first = o->next_op;
	q->left = (unsigned long long)count->valuedouble;
	o->next_op += q->left;
	queue_append(o, q);
	if ((reply = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddNumberToObject(reply, "count", (double)q->left);
	snprintf(id, sizeof(id), "op-%llu", q->first);
	cJSON_AddStringToObject(reply, "first_operation_id", id);
	snprintf(id, sizeof(id), "op-%llu", q->first + q->left - 1);
	cJSON_AddStringToObject(reply, "last_operation_id", id);
	cJSON_AddNumberToObject(reply, "queue_length", (double)o->qlen);
	return reply;
}

/* Queues prepared operations; -> their IDs, NULL on ENOMEM. */
static cJSON *
enqueue_ops(struct orchd *o, cJSON *ops)
{
	cJSON *ids = cJSON_CreateArray(), *it;
	struct qent *q;

	if (ids == NULL)
		return NULL;
	cJSON_ArrayForEach(it, ops) {
		if ((q = calloc(1, sizeof(*q))) == NULL ||
		    (q->json = cJSON_PrintUnformatted(it)) == NULL) {
			free(q);
			cJSON_Delete(ids);
			return NULL;
		}
		q->len = strlen(q->json);
		queue_append(o, q);
		cJSON_AddItemToArray(ids, cJSON_CreateString(
		    cJSON_GetObjectItemCaseSensitive(it,
		    "operation_id")->valuestring));
	}
	return ids;
}

static cJSON *
admin_enqueue(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	cJSON *ops, *ids, *reply;

	(void)q, (void)status;
	if (cJSON_IsObject(body) &&
	    cJSON_GetObjectItemCaseSensitive(body, "count") != NULL &&
	    cJSON_GetObjectItemCaseSensitive(body, "operations") == NULL)
		return enqueue_run(o, body, err, errlen);
	if ((ops = ops_prepare(o, body, err, errlen)) == NULL)
		return NULL;
	ids = enqueue_ops(o, ops);
	cJSON_Delete(ops);
	if (ids == NULL || (reply = cJSON_CreateObject()) == NULL) {
		cJSON_Delete(ids);
		return NULL;
	}
	cJSON_AddItemToObject(reply, "operation_ids", ids);
	cJSON_AddNumberToObject(reply, "queue_length", (double)o->qlen);
	return reply;
}

static cJSON *
admin_push(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	cJSON *ops, *ids, *reply, *it;
	int delivered = 0;

	(void)status;
	if ((ops = ops_prepare(o, body, err, errlen)) == NULL)
		return NULL;
	if ((ids = cJSON_CreateArray()) == NULL ||
	    (reply = cJSON_CreateObject()) == NULL) {
		cJSON_Delete(ops);
		cJSON_Delete(ids);
		return NULL;
	}
	cJSON_ArrayForEach(it, ops) {
		buf_reset(&o->scratch);
		if (sse_format_json(&o->scratch, it) == -1)
			break;
		delivered = sse_broadcast(o, o->scratch.data, o->scratch.len,
		    query_get(q, "instance_id"));
		cJSON_AddItemToArray(ids, cJSON_CreateString(
		    cJSON_GetObjectItemCaseSensitive(it,
		    "operation_id")->valuestring));
	}
	cJSON_Delete(ops);
	cJSON_AddItemToObject(reply, "operation_ids", ids);
	cJSON_AddNumberToObject(reply, "delivered", delivered);
	return reply;
}

static cJSON *
delivered_json(int n)
{
	cJSON *obj = cJSON_CreateObject();

	if (obj != NULL)
		cJSON_AddNumberToObject(obj, "delivered", n);
	return obj;
}

/* {"data": X, "event"?, "id"?} framed into b. */
static int
event_explicit(struct buf *b, const cJSON *ev)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "event");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "id");
	char idbuf[64], *text;
	const char *ids = NULL;
	int rc;

	if (cJSON_IsString(id))
		ids = id->valuestring;
	else if (cJSON_IsNumber(id)) {
		snprintf(idbuf, sizeof(idbuf), "%.17g", id->valuedouble);
		ids = idbuf;
	}
	if (cJSON_IsString(data))
		return sse_format(b, data->valuestring,
		    cJSON_IsString(name) ? name->valuestring : NULL, ids);
	if ((text = cJSON_PrintUnformatted(data)) == NULL)
		return -1;
	rc = sse_format(b, text, cJSON_IsString(name) ? name->valuestring :
	    NULL, ids);
	free(text);
	return rc;
}

static cJSON *
admin_event(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const cJSON *raw = cJSON_GetObjectItemCaseSensitive(body, "raw");
	struct buf *b = &o->scratch;
	int rc;

	(void)status;
	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "an event must be a JSON object");
		return NULL;
	}
	buf_reset(b);
	if (raw != NULL) {
		if (!cJSON_IsString(raw)) {
			snprintf(err, errlen, "\"raw\" must be a string");
			return NULL;
		}
		rc = buf_str(b, raw->valuestring);
	} else if (cJSON_GetObjectItemCaseSensitive(body, "data") != NULL &&
	    cJSON_GetObjectItemCaseSensitive(body, "type") == NULL)
		rc = event_explicit(b, body);
	else
		rc = sse_format_json(b, body);
	if (rc == -1)
		return NULL;
	return delivered_json(sse_broadcast(o, b->data, b->len,
	    query_get(q, "instance_id")));
}

static cJSON *
admin_goodbye(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(body, "reason");
	const char *iid = query_get(q, "instance_id");
	cJSON *ev;
	int n, rc;

	(void)status;
	if (!cJSON_IsObject(body) || (reason != NULL &&
	    !cJSON_IsString(reason) && !cJSON_IsNull(reason))) {
		snprintf(err, errlen, "expected {\"reason\"?: string, "
		    "\"close\"?: bool}");
		return NULL;
	}
	if ((ev = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(ev, "type", "goodbye") == NULL ||
	    (cJSON_IsString(reason) && cJSON_AddStringToObject(ev, "reason",
	    reason->valuestring) == NULL)) {
		cJSON_Delete(ev);
		return NULL;
	}
	buf_reset(&o->scratch);
	rc = sse_format_json(&o->scratch, ev);
	cJSON_Delete(ev);
	if (rc == -1)
		return NULL;
	n = sse_broadcast(o, o->scratch.data, o->scratch.len, iid);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "close")))
		sse_close_streams(o, 0, iid);
	return delivered_json(n);
}

static cJSON *
admin_reset(struct orchd *o, const struct query *q, const cJSON *body,
    int *status, char *err, size_t errlen)
{
	cJSON *reply;

	(void)q, (void)status;
	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "expected {\"close_streams\"?: bool}");
		return NULL;
	}
	state_clear(o);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body,
	    "close_streams")))
		sse_close_streams(o, 0, NULL);
	if ((reply = cJSON_CreateObject()) != NULL)
		cJSON_AddTrueToObject(reply, "ok");
	return reply;
}

static const struct {
	const char	*method;
	const char	*path;
	admin_fn	 fn;
} admin_routes[] = {
	{ "GET", "/admin/state", admin_state },
	{ "GET", "/admin/results", admin_results },
	{ "GET", "/admin/faults", admin_get_faults },
	{ "POST", "/admin/faults", admin_set_faults },
	{ "POST", "/admin/enqueue", admin_enqueue },
	{ "POST", "/admin/push", admin_push },
	{ "POST", "/admin/event", admin_event },
	{ "POST", "/admin/goodbye", admin_goodbye },
	{ "POST", "/admin/reset", admin_reset },
};

static int
blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
		    s[i] != '\n')
			return 0;
	return 1;
}

static void
admin_handle(struct conn *c, const char *method, const char *path,
    const struct query *q, const char *body, size_t len)
{
	char err[256] = "out of memory";
	size_t i, n = sizeof(admin_routes) / sizeof(admin_routes[0]);
	int status = 200, known = 0;
	cJSON *in, *reply;

	for (i = 0; i < n; i++) {
		if (strcmp(admin_routes[i].path, path) != 0)
			continue;
		known = 1;
		if (strcmp(admin_routes[i].method, method) == 0)
			break;
	}
	if (i == n) {
		conn_error(c, known ? 405 : 404, "no admin route %s %s",
		    method, path);
		return;
	}
	in = blank(body, len) ? cJSON_CreateObject() :
	    cJSON_ParseWithLength(body, len);
	if (in == NULL) {
		conn_error(c, 400, "request body is not valid JSON");
		return;
	}
	reply = admin_routes[i].fn(c->o, q, in, &status, err, sizeof(err));
	cJSON_Delete(in);
	if (reply == NULL) {
		conn_error(c, strcmp(err, "out of memory") == 0 ? 500 : 400,
		    "%s", err);
		return;
	}
	conn_reply_json(c, status, reply);
}

/* ---- agent endpoints ---------------------------------------------------- */

/* "%xx" decoded in place; invalid escapes stay as they are. */
static void
pct_decode(char *s, int plus)
{
	char *w = s, hex[3] = { 0, 0, 0 };

	for (; *s != '\0'; s++) {
		if (*s == '%' && isxdigit((unsigned char)s[1]) &&
		    isxdigit((unsigned char)s[2])) {
			hex[0] = s[1];
			hex[1] = s[2];
			*w++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else
			*w++ = plus && *s == '+' ? ' ' : *s;
	}
	*w = '\0';
}

static void
query_parse(char *s, struct query *q)
{
	char *pair, *eq, *save = NULL;

	q->n = 0;
	for (pair = strtok_r(s, "&", &save); pair != NULL &&
	    q->n < ORCHD_MAX_QUERY; pair = strtok_r(NULL, "&", &save)) {
		if ((eq = strchr(pair, '=')) == NULL)
			continue;	/* parse_qs drops them too */
		*eq = '\0';
		pct_decode(pair, 1);
		pct_decode(eq + 1, 1);
		q->key[q->n] = pair;
		q->val[q->n++] = eq + 1;
	}
}

static enum orchd_ep
agent_route(const char *method, char *path, char **op_id, int *method_ok)
{
	static const char ops[] = "/api/v1/agent/operations/";
	static const char agent[] = "/api/v1/agent/";
	enum orchd_ep ep = EP_UNKNOWN;
	char *slash;
	const char *want = "POST";

	*op_id = NULL;
	if (strcmp(path, "/stream") == 0)
		ep = EP_STREAM, want = "GET";
	else if (strcmp(path, "/api/v1/agent/operation") == 0)
		ep = EP_OPERATION, want = "GET";
	else if (strncmp(path, ops, sizeof(ops) - 1) == 0) {
		*op_id = path + sizeof(ops) - 1;
		if ((slash = strchr(*op_id, '/')) == NULL || slash == *op_id)
			return EP_UNKNOWN;
		if (strcmp(slash, "/result") == 0)
			ep = EP_RESULT, want = "PUT";
		else if (strcmp(slash, "/request") == 0)
			ep = EP_REQUEST, want = "GET";
		else
			return EP_UNKNOWN;
		*slash = '\0';
		pct_decode(*op_id, 0);
	} else if (strncmp(path, agent, sizeof(agent) - 1) == 0) {
		path += sizeof(agent) - 1;
		if (strcmp(path, "heartbeat") == 0)
			ep = EP_HEARTBEAT;
		else if (strcmp(path, "shutdown") == 0)
			ep = EP_SHUTDOWN;
		else if (strcmp(path, "logs") == 0)
			ep = EP_LOGS;
		else if (strcmp(path, "metrics") == 0)
			ep = EP_METRICS;
	}
	*method_ok = strcmp(method, want) == 0;
	return ep;
}

static void
agent_operation(struct conn *c, struct inst *in)
{
	struct orchd *o = c->o;
	struct buf *b = &o->scratch;
	int rc;

	buf_reset(b);
	if ((rc = queue_pop(o, b)) == -1) {
		conn_error(c, 500, "out of memory");
		return;
	}
	if (rc == 0) {
		in->empty_polls++;
		conn_reply(c, 204, NULL, 0);
		return;
	}
	o->taken++;
	in->operations++;
	conn_reply(c, 200, b->data, b->len);
}

static int
result_store(struct orchd *o, const char *op_id, const char *iid,
    const char *body, size_t len, int dup)
{
	struct result *r;

	if (o->nres >= o->max_results)
		return 0;
	if (o->nres % 1024 == 0) {
		r = realloc(o->res, (o->nres + 1024) * sizeof(*r));
		if (r == NULL)
			return -1;
		o->res = r;
	}
	r = &o->res[o->nres];
	memset(r, 0, sizeof(*r));
	r->op_id = strdup(op_id);
	r->instance_id = iid ? strdup(iid) : NULL;
	if ((r->body = malloc(len + 1)) != NULL) {
		memcpy(r->body, body, len);
		r->body[len] = '\0';
	}
	if (r->op_id == NULL || r->body == NULL || (iid && !r->instance_id)) {
		free(r->op_id);
		free(r->instance_id);
		free(r->body);
		return -1;
	}
	r->body_len = len;
	r->time = wall_now();
	r->duplicate = dup;
	o->nres++;
	return 0;
}

static void
agent_result(struct conn *c, struct inst *in, const char *op_id,
    const char *iid, const char *body, size_t len)
{
	struct orchd *o = c->o;
	struct buf *b = &o->scratch;
	cJSON *doc;
	int ok, added, dup, rc;

	doc = cJSON_ParseWithLength(body, len);
	ok = cJSON_IsObject(doc) &&
	    cJSON_GetObjectItemCaseSensitive(doc, "result") != NULL;
	cJSON_Delete(doc);
	if (!ok) {
		conn_error(c, 400, "body must be a JSON object "
		    "{\"result\": ...}");
		return;
	}
	if (smap_get(&o->ids, op_id, &added) == NULL ||
	    result_store(o, op_id, iid, body, len, !added) == -1) {
		conn_error(c, 500, "out of memory");
		return;
	}
	dup = !added;
	o->results++;
	o->duplicates += (unsigned long)dup;
	in->results++;
	buf_reset(b);
	rc = 0;
	if (o->faults.piggyback && o->qlen > 0) {
		if (buf_str(b, "{\"next_operation\":") == -1 ||
		    (rc = queue_pop(o, b)) == -1 || buf_str(b, "}") == -1) {
			conn_error(c, 500, "out of memory");
			return;
		}
		o->taken++;
		in->operations++;
	}
	if (rc == 1)
		conn_reply(c, 200, b->data, b->len);
	else
		conn_reply(c, 200, "{}", 2);
}

static void
agent_stream(struct conn *c, struct inst *in, const char *iid)
{
	struct orchd *o = c->o;
	cJSON *welcome;
	int rc;

	if (iid != NULL && (c->stream_iid = strdup(iid)) == NULL) {
		conn_error(c, 500, "out of memory");
		return;
	}
	if ((welcome = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(welcome, "type", "welcome") == NULL ||
	    cJSON_AddStringToObject(welcome, "agent_id", o->agent_id) ==
	    NULL) {
		cJSON_Delete(welcome);
		conn_error(c, 500, "out of memory");
		return;
	}
	buf_reset(&o->scratch);
	rc = sse_format_json(&o->scratch, welcome);
	cJSON_Delete(welcome);
	if (rc == -1 || buf_str(&c->out, ORCHD_STREAM_HEAD) == -1) {
		conn_close(c);
		return;
	}
	c->stream = 1;
	c->next_beat = mono_now() + o->faults.heartbeat_interval;
	o->nstreams++;
	o->stream_connects++;
	in->stream_connects++;
	sse_write(c, o->scratch.data, o->scratch.len);
}

static void
agent_serve(struct conn *c, enum orchd_ep ep, struct inst *in,
    const char *op_id, const char *iid, const char *body, size_t len)
{
	switch (ep) {
	case EP_STREAM:
		agent_stream(c, in, iid);
		return;
	case EP_OPERATION:
		agent_operation(c, in);
		return;
	case EP_RESULT:
		agent_result(c, in, op_id, iid, body, len);
		return;
	case EP_REQUEST:
		conn_error(c, 404, "unknown operation %s", op_id);
		return;
	case EP_HEARTBEAT:
		in->heartbeats++;
		break;
	case EP_SHUTDOWN:
		in->shutdowns++;
		break;
	case EP_LOGS:
		in->logs++;
		break;
	case EP_METRICS:
		in->metrics++;
		break;
	default:
		break;
	}
	conn_reply(c, 200, "{}", 2);
}

static void
agent_handle(struct conn *c, const char *method, char *path,
    const char *head, const char *body, size_t len)
{
	struct orchd *o = c->o;
	const struct req *r = &c->req;
	const char *iid = r->iid != ORCHD_ABSENT ? head + r->iid : NULL;
	char *op_id;
	int method_ok, authed;
	enum orchd_ep ep;
	struct inst *in;

	ep = agent_route(method, path, &op_id, &method_ok);
	authed = r->xid != ORCHD_ABSENT && r->xtoken != ORCHD_ABSENT &&
	    strcmp(head + r->xid, o->token_id) == 0 &&
	    strcmp(head + r->xtoken, o->token) == 0;
	o->counts[ep]++;
	o->requests++;
	if ((in = inst_get(o, iid)) == NULL) {
		conn_error(c, 500, "out of memory");
		return;
	}
	in->requests++;
	if (o->faults.refuse_all)
		conn_error(c, 503, "service unavailable (injected)");
	else if (o->faults.auth_fail || !authed)
		conn_error(c, 401, "unauthorized: bad x-mcd-id or x-mcd-token");
	else if (ep == EP_UNKNOWN)
		conn_error(c, 404, "no such endpoint: %s", path);
	else if (!method_ok)
		conn_error(c, 405, "%s not allowed on %s", method, path);
	else
		agent_serve(c, ep, in, op_id, iid, body, len);
}

/* ---- request parsing ---------------------------------------------------- */

static int
req_line(struct conn *c, char *head, char *line)
{
	char *target, *version, *p;

	if ((target = strchr(line, ' ')) == NULL)
		return conn_fail(c, 400, "malformed request line");
	*target++ = '\0';
	if ((version = strchr(target, ' ')) == NULL)
		return conn_fail(c, 400, "malformed request line");
	*version++ = '\0';
	if (line[0] == '\0' || strlen(line) > 16)
		return conn_fail(c, 400, "malformed request line");
	for (p = line; *p != '\0'; p++)
		if (*p < 'A' || *p > 'Z')
			return conn_fail(c, 400, "malformed request line");
	if (target[0] != '/')
		return conn_fail(c, 400, "malformed request line");
	for (p = target; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return conn_fail(c, 400, "malformed request line");
	if (strcmp(version, "HTTP/1.1") == 0)
		c->req.keep_alive = 1;
	else if (strcmp(version, "HTTP/1.0") == 0)
		c->req.keep_alive = 0;
	else if (strncmp(version, "HTTP/", 5) == 0)
		return conn_fail(c, 505, "HTTP version not supported");
	else
		return conn_fail(c, 400, "malformed request line");
	c->req.target = (size_t)(target - head);
	return 0;
}

static int
req_content_length(struct conn *c, const char *v)
{
	size_t n = 0;
	const char *p;

	if (*v == '\0')
		return conn_fail(c, 400, "bad Content-Length");
	for (p = v; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return conn_fail(c, 400, "bad Content-Length");
		n = n * 10 + (size_t)(*p - '0');
		if (n > ORCHD_MAX_BODY)
			return conn_fail(c, 413, "request body too large");
	}
	c->req.clen = n;
	return 0;
}

static int
req_header(struct conn *c, char *head, char *line, int *has_clen)
{
	struct req *r = &c->req;
	char *colon, *v, *e;

	if ((colon = strchr(line, ':')) == NULL || colon == line)
		return conn_fail(c, 400, "malformed header line");
	*colon = '\0';
	if (strpbrk(line, " \t") != NULL)	/* also an obs-fold line */
		return conn_fail(c, 400, "malformed header line");
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); )
		*--e = '\0';
	if (strcasecmp(line, "content-length") == 0) {
		*has_clen = 1;
		return req_content_length(c, v);
	}
	if (strcasecmp(line, "transfer-encoding") == 0) {
		if (strcasecmp(v, "chunked") != 0)
			return conn_fail(c, 501, "transfer coding not "
			    "supported");
		r->chunked = 1;
	} else if (strcasecmp(line, "connection") == 0) {
		if (strcasestr(v, "close") != NULL)
			r->keep_alive = 0;
		else if (strcasestr(v, "keep-alive") != NULL)
			r->keep_alive = 1;
	} else if (strcasecmp(line, "expect") == 0)
		r->expect_continue = strcasecmp(v, "100-continue") == 0;
	else if (strcasecmp(line, "x-mcd-agent-instance-id") == 0)
		r->iid = (size_t)(v - head);
	else if (strcasecmp(line, "x-mcd-id") == 0)
		r->xid = (size_t)(v - head);
	else if (strcasecmp(line, "x-mcd-token") == 0)
		r->xtoken = (size_t)(v - head);
	return 0;
}

/*
 * Parses the request line and headers in place (line ends become NULs);
 * 1 done, 0 more input needed, -1 answered with an error.
 */
static int
req_head(struct conn *c)
{
	struct req *r = &c->req;
	char *head, *end, *line, *eol;
	int has_clen = 0;

	/* Empty lines before a request are allowed (RFC 9112 2.2). */
	while (buf_avail(&c->in) >= 2 && memcmp(c->in.data + c->in.off,
	    "\r\n", 2) == 0)
		buf_consume(&c->in, 2);
	head = c->in.data + c->in.off;
	end = memmem(head, buf_avail(&c->in), "\r\n\r\n", 4);
	if (end == NULL && buf_avail(&c->in) <= ORCHD_MAX_HEAD)
		return 0;
	if (end == NULL || (size_t)(end - head) + 4 > ORCHD_MAX_HEAD)
		return conn_fail(c, 431, "request header too large");
	if (memchr(head, '\0', (size_t)(end - head)) != NULL)
		return conn_fail(c, 400, "NUL in the request header");
	memset(r, 0, sizeof(*r));
	r->iid = r->xid = r->xtoken = ORCHD_ABSENT;
	r->head_len = (size_t)(end - head) + 4;
	*end = '\0';
	eol = strstr(head, "\r\n");
	if (eol != NULL)
		*eol = '\0';
	if (req_line(c, head, head) == -1)
		return -1;
	for (line = eol ? eol + 2 : end; line < end; line = eol + 2) {
		if ((eol = strstr(line, "\r\n")) == NULL)
			eol = end;
		*eol = '\0';
		if (req_header(c, head, line, &has_clen) == -1)
			return -1;
	}
	if (r->chunked && has_clen)
		return conn_fail(c, 400, "both Content-Length and chunked");
	r->have_head = 1;
	return 1;
}

/*
 * A chunked body decoded into o->body: 1 with *used input bytes, 0 more
 * input needed, -1 malformed, -2 too large.
 */
static int
req_chunked(struct conn *c, size_t *used)
{
	struct buf *b = &c->o->body;
	const char *start = c->in.data + c->in.off + c->req.head_len;
	const char *p = start, *end = c->in.data + c->in.len, *eol;
	size_t size;
	int digits;

	buf_reset(b);
	for (;;) {
		if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
			return end - p > 256 ? -1 : 0;
		for (size = 0, digits = 0; p < eol && isxdigit(
		    (unsigned char)*p); p++, digits++) {
			size = size * 16 + (size_t)(isdigit((unsigned char)*p) ?
			    *p - '0' : (*p | 0x20) - 'a' + 10);
			if (size > ORCHD_MAX_BODY)
				return -2;
		}
		if (digits == 0 || (p < eol && *p != ';' && *p != ' '))
			return -1;
		p = eol + 2;
		if (size == 0)
			break;
		if (b->len + size > ORCHD_MAX_BODY)
			return -2;
		if ((size_t)(end - p) < size + 2)
			return 0;
		if (p[size] != '\r' || p[size + 1] != '\n')
			return -1;
		if (buf_add(b, p, size) == -1)
			return -2;
		p += size + 2;
	}
	for (;;) {		/* trailers, up to an empty line */
		if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
			return end - p > ORCHD_MAX_HEAD ? -1 : 0;
		if (eol == p)
			break;
		p = eol + 2;
	}
	*used = (size_t)(p + 2 - start);
	return 1;
}

static void
req_dispatch(struct conn *c, const char *body, size_t len)
{
	char *head = c->in.data + c->in.off, *path, *query;
	struct query q;

	path = head + c->req.target;
	if ((query = strchr(path, '?')) != NULL)
		*query++ = '\0';
	if (strncmp(path, "/admin/", 7) == 0) {
		query_parse(query ? query : path + strlen(path), &q);
		admin_handle(c, head, path, &q, body, len);
	} else
		agent_handle(c, head, path, head, body, len);
}

/* One request read and answered: 1, 0 more input needed, -1 stop. */
static int
req_step(struct conn *c)
{
	struct req *r = &c->req;
	const char *body;
	size_t len, used;
	int rc;

	if (!r->have_head && (rc = req_head(c)) <= 0)
		return rc;
	if (r->chunked) {
		if ((rc = req_chunked(c, &used)) == -1)
			return conn_fail(c, 400, "malformed chunked body");
		if (rc == -2)
			return conn_fail(c, 413, "request body too large");
		body = c->o->body.data;
		len = c->o->body.len;
	} else {
		rc = buf_avail(&c->in) - r->head_len >= r->clen;
		body = c->in.data + c->in.off + r->head_len;
		len = used = r->clen;
	}
	if (rc == 0) {
		if (r->expect_continue && !r->continue_sent) {
			r->continue_sent = 1;
			if (buf_str(&c->out, ORCHD_CONTINUE) == -1)
				conn_close(c);
		}
		return 0;
	}
	req_dispatch(c, body ? body : "", len);
	buf_consume(&c->in, r->head_len + used);
	r->have_head = 0;
	return c->dead ? -1 : 1;
}

static void
conn_on_input(struct conn *c)
{
	ssize_t n;

	if (buf_reserve(&c->in, ORCHD_READ_CHUNK) == -1) {
		conn_close(c);
		return;
	}
	n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		if (n == -1 || c->stream || buf_avail(&c->out) == 0) {
			conn_close(c);
			return;
		}
		c->eof = 1;
	} else
		c->in.len += (size_t)n;
	if (c->stream || c->closing) {
		buf_reset(&c->in);	/* nothing more is read from these */
		return;
	}
	while (!c->dead && !c->closing && !c->stream && req_step(c) > 0)
		;
	if (!c->dead && !c->closing && !c->stream && c->req.have_head &&
	    buf_avail(&c->in) > c->req.head_len + ORCHD_MAX_BODY +
	    ORCHD_MAX_HEAD)
		conn_fail(c, 413, "request body too large");
	if (!c->dead)
		conn_flush(c);
}

/* ---- the server --------------------------------------------------------- */

static void
server_accept(struct orchd *o)
{
	struct epoll_event ev;
	struct conn *c;
	int fd, one = 1;

	for (;;) {
		fd = accept4(o->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "orchd: accept: %s\n",
				    strerror(errno));
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->o = o;
		c->fd = fd;
		c->mask = EPOLLIN;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(o->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
			close(fd);
			free(c);
			continue;
		}
		if ((c->next = o->conns) != NULL)
			c->next->prev = c;
		o->conns = c;
	}
}

static void
server_reap(struct orchd *o)
{
	struct conn *c;

	while ((c = o->dead) != NULL) {
		o->dead = c->next;
		conn_free(c);
	}
}

static void
server_loop(struct orchd *o)
{
	struct epoll_event evs[ORCHD_MAX_EVENTS];
	struct conn *c;
	int i, n, timeout;

	while (!o->quit) {
		timeout = sse_beats(o);
		server_reap(o);
		n = epoll_wait(o->ep, evs, ORCHD_MAX_EVENTS, timeout);
		if (n == -1 && errno != EINTR) {
			fprintf(stderr, "orchd: epoll_wait: %s\n",
			    strerror(errno));
			return;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &o->lfd) {
				server_accept(o);
				continue;
			}
			if (evs[i].data.ptr == &o->sfd) {
				o->quit = 1;
				continue;
			}
			c = evs[i].data.ptr;
			if (c->dead)
				continue;
			if (evs[i].events & EPOLLOUT)
				conn_flush(c);
			if (!c->dead && evs[i].events & (EPOLLIN | EPOLLERR |
			    EPOLLHUP))
				conn_on_input(c);
		}
	}
}

/* Ends streams cleanly, as far as the sockets take it without waiting. */
static void
server_free(struct orchd *o)
{
	struct conn *c;

	while ((c = o->conns) != NULL) {
		if (c->stream && buf_str(&c->out, ORCHD_LAST_CHUNK) == 0)
			send(c->fd, c->out.data + c->out.off,
			    buf_avail(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		conn_close(c);
	}
	server_reap(o);
	state_clear(o);
	buf_free(&o->scratch);
	buf_free(&o->body);
	close(o->ep);
	close(o->lfd);
	close(o->sfd);
}

static int
server_listen(struct orchd *o, const char *host)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "orchd: %s: not an IPv4 address\n", host);
		return -1;
	}
	o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (o->lfd == -1 || setsockopt(o->lfd, SOL_SOCKET, SO_REUSEADDR,
	    &one, sizeof(one)) == -1 ||
	    bind(o->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(o->lfd, SOMAXCONN) == -1 ||
	    getsockname(o->lfd, (struct sockaddr *)&sin, &len) == -1) {
		fprintf(stderr, "orchd: cannot listen on %s:%d: %s\n", host,
		    o->port, strerror(errno));
		return -1;
	}
	o->port = ntohs(sin.sin_port);
	return 0;
}

static int
server_watch(struct orchd *o, int fd, void *tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = tag;
	return epoll_ctl(o->ep, EPOLL_CTL_ADD, fd, &ev);
}

static int
server_init(struct orchd *o, const char *host)
{
	sigset_t set;

	o->ep = o->lfd = o->sfd = -1;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (o->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1 ||
	    (o->ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		fprintf(stderr, "orchd: %s\n", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (server_listen(o, host) == -1)
		return -1;
	if (server_watch(o, o->lfd, &o->lfd) == -1 ||
	    server_watch(o, o->sfd, &o->sfd) == -1) {
		fprintf(stderr, "orchd: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: orchd [-p PORT] -i TOKEN_ID -t TOKEN [-H SECONDS] [-a AGENT_ID]\n"
"             [-P] [-r MAX_RESULTS] [-b ADDRESS] [-f READY_FILE]\n"
"\n"
"A fast orchestrator for the benchmarks: the agent side of the protocol and\n"
"the fake orchestrator's admin API subset, on one epoll thread.\n"
"\n"
"  -p, --port PORT              port on 127.0.0.1 (0, the default: any free)\n"
"  -i, --token-id ID            expected x-mcd-id (default $EGRESSD_TOKEN_ID)\n"
"  -t, --token SECRET           expected x-mcd-token (default $EGRESSD_TOKEN)\n"
"  -H, --heartbeat-interval S   stream heartbeat interval (default 1.0)\n"
"  -a, --agent-id ID            agent_id of the welcome event (default: the\n"
"                               token ID)\n"
"  -P, --piggyback              start with result replies carrying the next\n"
"                               operation\n"
"  -r, --max-results N          results kept for GET /admin/results (default\n"
"                               %d; all are counted)\n"
"  -b, --host ADDRESS           IPv4 address to listen on (default 127.0.0.1)\n"
"  -f, --ready-file PATH        also write the port there (removed at exit)\n"
"  -q, --quiet                  accepted for the fake's command line; no-op\n"
"  -h, --help                   this text\n"
"\n"
"Prints \"port N\" on stdout when listening.  Admin API (no auth, JSON):\n"
"  POST /admin/enqueue  OP | {\"operations\": [OP...]} | {\"count\": N,\n"
"                       \"path\"?: P, \"operation\"?: {...}}\n"
"  POST /admin/push     OP | {\"operations\": [OP...]}  (over the streams)\n"
"  POST /admin/event    {\"type\": ...} | {\"data\", \"event\"?, \"id\"?} |"
" {\"raw\"}\n"
"  POST /admin/goodbye  {\"reason\"?, \"close\"?}\n"
"  POST /admin/faults   {\"piggyback\", \"heartbeats\", "
"\"heartbeat_comments\",\n"
"                       \"heartbeat_interval\", \"push_metrics\", "
"\"auth_fail\",\n"
"                       \"refuse_all\", \"clear\", \"close_streams\"}\n"
"  GET  /admin/faults, /admin/state, /admin/results?operation_id=&\n"
"                       instance_id=&list=0\n"
"  POST /admin/reset    {\"close_streams\"?: bool}\n"
"SIGTERM or SIGINT: clean exit 0.\n", ORCHD_DEFAULT_RESULTS);
}

static int
parse_number(const char *s, double min, double max, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && *out >= min &&
	    *out <= max ? 0 : -1;
}

struct orchd_args {
	const char	*host;
	const char	*ready_file;
	int		 piggyback;
};

static int
parse_args(int argc, char **argv, struct orchd *o, struct orchd_args *a)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "token-id", required_argument, NULL, 'i' },
		{ "token", required_argument, NULL, 't' },
		{ "heartbeat-interval", required_argument, NULL, 'H' },
		{ "agent-id", required_argument, NULL, 'a' },
		{ "piggyback", no_argument, NULL, 'P' },
		{ "max-results", required_argument, NULL, 'r' },
		{ "host", required_argument, NULL, 'b' },
		{ "ready-file", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	double v;
	int ch;

	while ((ch = getopt_long(argc, argv, "p:i:t:H:a:Pr:b:f:qh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (parse_number(optarg, 0, 65535, &v) == -1)
				goto bad;
			o->port = (int)v;
			break;
		case 'i':
			o->token_id = optarg;
			break;
		case 't':
			o->token = optarg;
			break;
		case 'H':
			if (parse_number(optarg, ORCHD_MIN_INTERVAL, 86400,
			    &o->default_interval) == -1)
				goto bad;
			break;
		case 'a':
			o->agent_id = optarg;
			break;
		case 'P':
			a->piggyback = 1;
			break;
		case 'r':
			if (parse_number(optarg, 0, (double)SIZE_MAX / 2,
			    &v) == -1)
				goto bad;
			o->max_results = (size_t)v;
			break;
		case 'b':
			a->host = optarg;
			break;
		case 'f':
			a->ready_file = optarg;
			break;
		case 'q':
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->token_id == NULL || o->token == NULL) {
		fprintf(stderr, "orchd: --token-id and --token are required "
		    "(or $EGRESSD_TOKEN_ID and $EGRESSD_TOKEN)\n");
		return -1;
	}
	if (o->agent_id == NULL)
		o->agent_id = o->token_id;
	return 0;
bad:
	fprintf(stderr, "orchd: bad value for -%c: %s\n", ch, optarg);
	return -1;
}

static int
write_ready_file(const char *path, int port)
{
	char tmp[PATH_MAX];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp) || (f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct orchd o;
	struct orchd_args a = { "127.0.0.1", NULL, 0 };
	int rc = 1;

	memset(&o, 0, sizeof(o));
	o.token_id = getenv("EGRESSD_TOKEN_ID");
	o.token = getenv("EGRESSD_TOKEN");
	o.default_interval = 1.0;
	o.max_results = ORCHD_DEFAULT_RESULTS;
	o.next_op = 1;
	if (parse_args(argc, argv, &o, &a) == -1)
		return 2;
	faults_default(&o, &o.faults);
	o.faults.piggyback = a.piggyback;
	if (server_init(&o, a.host) == 0) {
		if (a.ready_file != NULL &&
		    write_ready_file(a.ready_file, o.port) == -1)
			fprintf(stderr, "orchd: %s: %s\n", a.ready_file,
			    strerror(errno));
		else {
			printf("port %d\n", o.port);
			fflush(stdout);
			server_loop(&o);
			rc = o.quit ? 0 : 1;
		}
		if (a.ready_file != NULL)
			unlink(a.ready_file);
	}
	server_free(&o);
	return rc;
}
