/*
 * http: libcurl's multi interface driven by our evloop.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * its next timeout falls (CURLMOPT_TIMERFUNCTION); we watch them in the same
 * poll as everything else and report readiness back with
 * curl_multi_socket_action().  A request either buffers its response body
 * (bounded by max_body) or streams it to on_data (the SSE stream); either
 * way on_done runs exactly once, after which the caller frees it.
 */
#ifndef EGRESSD_HTTP_H
#define EGRESSD_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

struct evloop;
struct http;
struct http_request;

/* Return 0 to go on, -1 to abort the transfer (it then ends as an error). */
typedef int (*http_data_cb)(struct http_request *req, const char *data,
    size_t len);
typedef void (*http_done_cb)(struct http_request *req);

struct http_request {
	/* Filled by the caller before http_start(). */
	const char *method;		/* "GET", "PUT", "POST", "HEAD"... */
	char *url;			/* owned; freed by http_request_free */
	struct curl_slist *headers;	/* owned */
	char *body;			/* owned; may be NULL */
	size_t body_len;
	long timeout_ms;		/* 0 = no total timeout */
	long connect_timeout_ms;
	size_t max_body;		/* larger responses fail as too_big */
	int tls_verify;
	const char *ca_file;		/* "" or NULL = system store */
	http_data_cb on_data;		/* NULL = buffer the body */
	http_data_cb on_header;		/* each header line; NULL = none */
	http_done_cb on_done;
	void *arg;

	/* Filled when the transfer ends. */
	long status;			/* HTTP status, 0 if none */
	CURLcode result;
	int too_big;
	char *resp;			/* NUL-terminated body (buffered mode) */
	size_t resp_len;
	char error[CURL_ERROR_SIZE];

	/* Private. */
	CURL *easy;
	struct http *http;
	struct http_request *prev, *next;	/* running transfers */
	int pending;		/* started from a callback: not added yet */
};

struct http *http_new(struct evloop *loop);
void http_free(struct http *h);	/* cancels everything still running */

struct http_request *http_request_new(const char *method, const char *url);
int http_request_header(struct http_request *req, const char *line);
void http_request_free(struct http_request *req);

/* Start a transfer; on_done follows later (never from inside this call). */
int http_start(struct http *h, struct http_request *req);

/* Abort a running transfer without calling on_done; the caller frees req. */
void http_cancel(struct http_request *req);

/* Monotonic deadline of libcurl's next timeout, 0 when none. */
double http_next_deadline(const struct http *h);
/* Let libcurl act on an expired timeout; call after every poll. */
void http_run_timers(struct http *h);

/* One line of text for a failed transfer: "HTTP 503" or curl's error. */
const char *http_describe(const struct http_request *req, char *buf,
    size_t len);

#endif
