/*
 * orchd_http: growable buffers and the HTTP/1.1 server side of orchd.
 *
 * It owns the connections (accept, epoll interest, output, close), the
 * request parser (keep-alive, pipelining, Content-Length and chunked
 * bodies, Expect: 100-continue), the replies, chunked response streams and
 * query strings.  It knows nothing of the protocol: each complete request
 * goes to the on_request callback of its struct http_server.
 */
#ifndef ORCHD_HTTP_H
#define ORCHD_HTTP_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define ORCHD_MAX_QUERY		16
#define ORCHD_ABSENT		((size_t)-1)

struct buf {
	char	*data;
	size_t	 off;		/* data[off..len) is pending */
	size_t	 len;
	size_t	 cap;
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

struct http_server;

struct conn {
	struct conn		*prev, *next;
	struct http_server	*srv;
	int			 fd;
	int			 dead;		/* closed; freed by http_reap */
	int			 closing;	/* close once all is sent */
	int			 eof;
	unsigned int		 mask;		/* the epoll events asked for */
	int			 stream;	/* see http_stream_start */
	char			*stream_iid;	/* orchd_sse's; freed with c */
	double			 next_beat;	/* orchd_sse's */
	struct buf		 in, out;
	struct req		 req;
};

struct query {
	char	*key[ORCHD_MAX_QUERY];
	char	*val[ORCHD_MAX_QUERY];
	int	 n;
};

/*
 * A complete request, to be answered on c.  head is the request head cut
 * into NUL-terminated pieces, starting with the method; c->req holds the
 * offsets of the headers orchd reads.  query is the text after '?', NULL
 * without one; path and query may be changed in place.
 */
typedef void (*http_request_fn)(void *arg, struct conn *c, char *head,
    char *path, char *query, const char *body, size_t len);

struct http_server {
	int		 ep;		/* epoll, made by the caller */
	struct conn	*conns;		/* every open connection */
	struct conn	*dead;		/* closed during this batch */
	size_t		 nstreams;	/* open connections that are streams */
	struct buf	 body;		/* a decoded chunked body */
	http_request_fn	 on_request;
	void		*arg;		/* on_request's first argument */
};

/* Appending to a buffer, NUL-terminated: 0, or -1 on ENOMEM. */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* Accepts every pending connection on the listening socket lfd. */
void http_accept(struct http_server *h, int lfd);
/* The epoll events of one connection: output, input, requests. */
void http_event(struct conn *c, unsigned int events);
/* Frees the connections closed since the last call. */
void http_reap(struct http_server *h);
/* Ends streams as far as the sockets take it at once, closes, frees. */
void http_close_all(struct http_server *h);
/* Closes at once; c stays readable (dead) until http_reap. */
void http_close(struct conn *c);

/* Queues a reply (application/json); it leaves at the next flush. */
void http_reply(struct conn *c, int status, const char *body, size_t len);
/* The same with obj printed; obj is freed. */
void http_reply_json(struct conn *c, int status, cJSON *obj);
/* A reply {"error": message}. */
void http_error(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A stream: c's reply is head (which must say Transfer-Encoding: chunked),
 * then the chunks given to http_chunk, until http_stream_end.  No more
 * requests are read from c.  http_stream_start queues head: 0, or -1 on
 * ENOMEM (c is left as it was).
 */
int http_stream_start(struct conn *c, const char *head);
/* Sends raw bytes as one chunk of the stream. */
void http_chunk(struct conn *c, const char *raw, size_t len);
/* The last chunk, then close once it is sent. */
void http_stream_end(struct conn *c);

/* "%xx" decoded in place (plus: '+' is a space); bad escapes stay. */
void http_pct_decode(char *s, int plus);
/* key=value pairs of a query string, decoded in place into q. */
void http_query_parse(char *s, struct query *q);
/* The value of key in q (the last one wins), NULL without it. */
const char *http_query_get(const struct query *q, const char *key);

#endif
