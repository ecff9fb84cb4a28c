/*
 * orchd_http: buffers, connections, the HTTP/1.1 request parser and the
 * replies of orchd (see orchd_http.h).  Nothing here knows the protocol: a
 * parsed request goes to the server's on_request callback.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "orchd_http.h"

#define ORCHD_MAX_HEAD		16384	/* request line and headers */
#define ORCHD_MAX_BODY		(64 * 1024 * 1024)
#define ORCHD_MAX_OUT		(64 * 1024 * 1024)	/* unsent, per client */
#define ORCHD_READ_CHUNK	65536
#define ORCHD_CONTINUE		"HTTP/1.1 100 Continue\r\n\r\n"
#define ORCHD_LAST_CHUNK	"0\r\n\r\n"

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

int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n + 1) == -1)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
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

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
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
	if (epoll_ctl(c->srv->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
		http_close(c);
		return;
	}
	c->mask = mask;
}

void
http_close(struct conn *c)
{
	struct http_server *h = c->srv;

	if (c->dead)
		return;
	c->dead = 1;
	epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->stream)
		h->nstreams--;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = h->dead;
	h->dead = c;
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
	http_close(c);
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
			http_close(c);
			return;
		}
	}
	if (c->dead)
		return;
	if (buf_avail(&c->out) > ORCHD_MAX_OUT) {
		http_close(c);	/* a client that does not read */
		return;
	}
	if (buf_avail(&c->out) == 0 && (c->closing || c->eof)) {
		conn_finish(c);
		return;
	}
	conn_watch(c);
}

static const char *
http_reason(int status)
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

void
http_reply(struct conn *c, int status, const char *body, size_t len)
{
	struct buf *b = &c->out;
	int rc;

	if (c->dead)
		return;
	rc = buf_printf(b, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
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
		http_close(c);
}

void
http_reply_json(struct conn *c, int status, cJSON *obj)
{
	char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;

	cJSON_Delete(obj);
	if (s == NULL) {
		http_close(c);
		return;
	}
	http_reply(c, status, s, strlen(s));
	free(s);
}

void
http_error(struct conn *c, int status, const char *fmt, ...)
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
		http_close(c);
		return;
	}
	http_reply_json(c, status, obj);
}

/* A request that cannot be read further: answer, then close. */
static int
conn_fail(struct conn *c, int status, const char *msg)
{
	c->req.keep_alive = 0;
	http_error(c, status, "%s", msg);
	return -1;
}

/* ---- streams ------------------------------------------------------------ */

int
http_stream_start(struct conn *c, const char *head)
{
	if (buf_str(&c->out, head) == -1)
		return -1;
	c->stream = 1;
	c->srv->nstreams++;
	return 0;
}

void
http_chunk(struct conn *c, const char *raw, size_t len)
{
	if (len == 0 || c->dead)
		return;
	if (buf_printf(&c->out, "%zx\r\n", len) == -1 ||
	    buf_add(&c->out, raw, len) == -1 ||
	    buf_str(&c->out, "\r\n") == -1) {
		http_close(c);
		return;
	}
	conn_flush(c);
}

void
http_stream_end(struct conn *c)
{
	c->closing = 1;
	if (buf_str(&c->out, ORCHD_LAST_CHUNK) == -1)
		http_close(c);
	else
		conn_flush(c);
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
 * A chunked body decoded into the server's body: 1 with *used input bytes,
 * 0 more input needed, -1 malformed, -2 too large.
 */
static int
req_chunked(struct conn *c, size_t *used)
{
	struct buf *b = &c->srv->body;
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

	path = head + c->req.target;
	if ((query = strchr(path, '?')) != NULL)
		*query++ = '\0';
	c->srv->on_request(c->srv->arg, c, head, path, query, body, len);
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
		body = c->srv->body.data;
		len = c->srv->body.len;
	} else {
		rc = buf_avail(&c->in) - r->head_len >= r->clen;
		body = c->in.data + c->in.off + r->head_len;
		len = used = r->clen;
	}
	if (rc == 0) {
		if (r->expect_continue && !r->continue_sent) {
			r->continue_sent = 1;
			if (buf_str(&c->out, ORCHD_CONTINUE) == -1)
				http_close(c);
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
		http_close(c);
		return;
	}
	n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		if (n == -1 || c->stream || buf_avail(&c->out) == 0) {
			http_close(c);
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

void
http_accept(struct http_server *h, int lfd)
{
	struct epoll_event ev;
	struct conn *c;
	int fd, one = 1;

	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
		c->srv = h;
		c->fd = fd;
		c->mask = EPOLLIN;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
			close(fd);
			free(c);
			continue;
		}
		if ((c->next = h->conns) != NULL)
			c->next->prev = c;
		h->conns = c;
	}
}

void
http_event(struct conn *c, unsigned int events)
{
	if (c->dead)
		return;
	if (events & EPOLLOUT)
		conn_flush(c);
	if (!c->dead && events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_on_input(c);
}

void
http_reap(struct http_server *h)
{
	struct conn *c;

	while ((c = h->dead) != NULL) {
		h->dead = c->next;
		conn_free(c);
	}
}

void
http_close_all(struct http_server *h)
{
	struct conn *c;

	while ((c = h->conns) != NULL) {
		if (c->stream && buf_str(&c->out, ORCHD_LAST_CHUNK) == 0)
			send(c->fd, c->out.data + c->out.off,
			    buf_avail(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		http_close(c);
	}
	http_reap(h);
	buf_free(&h->body);
}

/* ---- query strings ------------------------------------------------------ */

void
http_pct_decode(char *s, int plus)
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

void
http_query_parse(char *s, struct query *q)
{
	char *pair, *eq, *save = NULL;

	q->n = 0;
	for (pair = strtok_r(s, "&", &save); pair != NULL &&
	    q->n < ORCHD_MAX_QUERY; pair = strtok_r(NULL, "&", &save)) {
		if ((eq = strchr(pair, '=')) == NULL)
			continue;	/* parse_qs drops them too */
		*eq = '\0';
		http_pct_decode(pair, 1);
		http_pct_decode(eq + 1, 1);
		q->key[q->n] = pair;
		q->val[q->n++] = eq + 1;
	}
}

const char *
http_query_get(const struct query *q, const char *key)
{
	const char *v = NULL;
	int i;

	for (i = 0; i < q->n; i++)	/* the last one wins, as in the fake */
		if (strcmp(q->key[i], key) == 0)
			v = q->val[i];
	return v;
}

