/*
 * httpc: the HTTP client, libcurl's multi interface driven by our evloop.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * its next timeout falls (CURLMOPT_TIMERFUNCTION); we watch them in the same
 * poll as everything else, keep the timeout as a timer of the loop, and
 * report readiness and expiry back with curl_multi_socket_action().  A
 * request either buffers its response body (bounded by max_body) or
 * streams it to on_data (the SSE stream); either way on_done runs exactly
 * once, after which the caller frees it.  Finished easy handles are reset
 * and reused, and connections stay open in the multi handle between
 * transfers.
 */
#ifndef EGRESSD_HTTPC_H
#define EGRESSD_HTTPC_H

#include <stddef.h>

#include <curl/curl.h>

#define HTTPC_PROXY_TEXT_MAX 512	/* a proxy's URL as logged */

struct evloop;
struct httpc;
struct httpc_request;

/* Return 0 to go on, -1 to abort the transfer (it then ends as an error). */
typedef int (*httpc_data_cb)(struct httpc_request *req, const char *data,
    size_t len);
typedef void (*httpc_done_cb)(struct httpc_request *req);

struct httpc_request {
	/* Filled by the caller before httpc_start(). */
	const char *method;		/* "GET", "PUT", "POST", "HEAD"... */
	char *url;			/* owned; freed by httpc_request_free */
	struct curl_slist *headers;	/* owned */
	/* Borrowed, sent when headers is NULL; must outlive the request. */
	const struct curl_slist *shared_headers;
	char *body;			/* owned; may be NULL */
	size_t body_len;
	long timeout_ms;		/* 0 = no total timeout */
	long connect_timeout_ms;
	size_t max_body;		/* larger responses fail as too_big */
	int tls_verify;
	const char *ca_file;		/* "" or NULL = system store */
	const char *proxy;		/* "" or NULL = libcurl's environment */
	const char *no_proxy;		/* "" or NULL = libcurl's environment */
	httpc_data_cb on_data;		/* NULL = buffer the body */
	httpc_data_cb on_header;		/* each header line; NULL = none */
	httpc_done_cb on_done;
	void *arg;
	int want_timings;		/* fill the step times below */

	/* Filled when the transfer ends. */
	long status;			/* HTTP status, 0 if none */
	long connect_code;		/* a proxy's answer to CONNECT, or 0 */
	double t_dns, t_connect, t_tls;	/* seconds from the start (timings) */
	char peer[64];			/* the address connected to (timings) */
	long peer_port;
	CURLcode result;
	int too_big;
	char *resp;			/* NUL-terminated body (buffered mode) */
	size_t resp_len;
	char error[CURL_ERROR_SIZE];

	/* Private. */
	CURL *easy;
	struct httpc *http;
	struct httpc_request *prev, *next;	/* running transfers */
	int pending;		/* started from a callback: not added yet */
};

/*
 * libcurl's process-wide state (OpenSSL's with it), once per process: the
 * first httpc_new() calls it, so a process that makes no client never pays
 * for it.  -1, logged, when libcurl refuses.  The cleanup is for the end of
 * main(), and does nothing when nothing was made.
 */
int httpc_global_init(void);
void httpc_global_cleanup(void);

/* NULL: out of memory, or libcurl's initialisation failed (logged). */
struct httpc *httpc_new(struct evloop *loop);
void httpc_free(struct httpc *h);	/* cancels everything still running */

struct httpc_request *httpc_request_new(const char *method, const char *url);
int httpc_request_header(struct httpc_request *req, const char *line);
void httpc_request_free(struct httpc_request *req);

/* Start a transfer; on_done follows later (never from inside this call). */
int httpc_start(struct httpc *h, struct httpc_request *req);

/* Abort a running transfer without calling on_done; the caller frees req. */
void httpc_cancel(struct httpc_request *req);

/*
 * One line of text for a failed transfer: "HTTP 503" or curl's error; when
 * a proxy took part it says whether the proxy or the target failed, and
 * names the proxy (without credentials).
 */
const char *httpc_describe(const struct httpc_request *req, char *buf,
    size_t len);

/* What went wrong with a transfer, by the step that failed. */
enum httpc_failure {
	HTTPC_OK,		/* a 2xx answer */
	HTTPC_FAIL_DNS,		/* the target's name did not resolve */
	HTTPC_FAIL_PROXY,	/* the proxy: name, connection, CONNECT, 407 */
	HTTPC_FAIL_CONNECT,	/* no TCP connection to the target */
	HTTPC_FAIL_TLS,		/* handshake or certificate */
	HTTPC_FAIL_TIMEOUT,
	HTTPC_FAIL_AUTH,	/* 401 or 403: the credentials were refused */
	HTTPC_FAIL_HTTP,	/* another status that is not 2xx */
	HTTPC_FAIL_OTHER
};

/*
 * Pure: the failed step, from libcurl's result, the HTTP status, a
 * proxy's CONNECT answer and whether a proxy was in use.
 */
enum httpc_failure httpc_classify(CURLcode result, long status,
    long connect_code, int via_proxy);
enum httpc_failure httpc_failure_of(const struct httpc_request *req);
const char *httpc_failure_name(enum httpc_failure f);	/* "dns", "tls" */

/*
 * The proxy libcurl uses for url, as text without credentials, in buf; ""
 * when none.  proxy and no_proxy are the configured ones ("" or NULL: the
 * environment's, read as libcurl reads it: http_proxy only in lower case,
 * https_proxy, all_proxy and no_proxy in either case).  *source is set to
 * what named it ("orchestrator.proxy" style callers pass their own key as
 * configured_name; otherwise the variable's name).
 */
const char *httpc_proxy_for(const char *url, const char *proxy,
    const char *no_proxy, const char *configured_name, char *buf,
    size_t len, const char **source);

#endif
