/* httpc: libcurl multi on top of evloop (see include/core/httpc.h). */
#include <poll.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/evloop.h"
#include "core/httpc.h"
#include "core/log.h"

/*
 * Easy handles kept for the next transfer: making one and cleaning it up
 * cost more than a transfer on a warm connection (a fifth of a worker's
 * instructions per operation went to curl_easy_init and _cleanup).  A few
 * cover a worker's GET and its results in flight; more are cleaned up.
 */
#define HTTPC_SPARE_MAX	8

struct httpc {
	CURLM *multi;
	struct evloop *loop;
	struct evloop_timer timer;	/* libcurl's timeout */
	struct httpc_request *active;	/* list of running transfers */
	int acting;		/* inside curl_multi_socket_action() */
	CURL *spare[HTTPC_SPARE_MAX];	/* finished easy handles, reusable */
	int nspare;
};

static void httpc_check_done(struct httpc *h);
static void httpc_detach(struct httpc_request *req);

/*
 * libcurl's process-wide state, made by the first httpc_new() of the
 * process rather than at start-up: curl_global_init() always initialises
 * OpenSSL (its flags stopped choosing in libcurl 7.57), some 2 MiB of the
 * master's RSS (bench/README.md, "Memory"), which a master without an
 * orchestrator never needs.  With one, that first call is the relay's,
 * in master_new(), before any worker is forked: the workers inherit the
 * state (and this flag) and never make it again.  Made before fork is
 * safe: the master has no thread then (libcurl starts its resolver
 * threads only in a transfer), and OpenSSL 3 reseeds its random
 * generators in a child.  A worker whose master has none yet (none was
 * needed) makes its own, also before it has a thread.  A reload that
 * gives a master without an orchestrator its first one makes the state
 * then, after privileges were dropped: an OPENSSL_CONF (or an engine or
 * provider it names) only root may read is then not read, silently, as
 * OpenSSL does with a configuration it cannot load (docs/OPERATIONS.md).
 */
static int httpc_initialised;

int
httpc_global_init(void)
{
	CURLcode rc;

	if (httpc_initialised)
		return 0;
	if ((rc = curl_global_init(CURL_GLOBAL_ALL)) != CURLE_OK) {
		log_warnx("libcurl initialisation failed: %s",
		    curl_easy_strerror(rc));
		return -1;
	}
	httpc_initialised = 1;
	return 0;
}

void
httpc_global_cleanup(void)
{
	if (!httpc_initialised)
		return;
	curl_global_cleanup();
	httpc_initialised = 0;
}

/*
 * libcurl refuses multi calls made from its own callbacks, and an SSE event
 * handler may start a request (a metrics push): such requests wait in the
 * active list, flagged pending, until the action returns.
 */
static void
httpc_socket_action(struct httpc *h, curl_socket_t fd, int flags)
{
	struct httpc_request *req;
	int running;

	h->acting++;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	h->acting--;
again:
	for (req = h->active; req != NULL; req = req->next) {
		if (!req->pending)
			continue;
		req->pending = 0;
		if (curl_multi_add_handle(h->multi, req->easy) == CURLM_OK)
			continue;
		req->pending = 1;	/* not in the multi: nothing to remove */
		req->result = CURLE_FAILED_INIT;
		httpc_detach(req);
		if (req->on_done != NULL)
			req->on_done(req);
		goto again;		/* the callback may have changed the list */
	}
	httpc_check_done(h);
}

static void
httpc_on_socket_ready(int fd, short revents, void *arg)
{
	struct httpc *h = arg;
	int flags = 0;

	if (revents & (POLLIN | POLLHUP))
		flags |= CURL_CSELECT_IN;
	if (revents & POLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (revents & POLLERR)
		flags |= CURL_CSELECT_ERR;
	httpc_socket_action(h, fd, flags);
}

static int
httpc_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
	struct httpc *h = userp;
	short events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		evloop_remove(h->loop, s);
		curl_multi_assign(h->multi, s, NULL);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= POLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= POLLOUT;
	if (socketp != NULL)
		return evloop_modify(h->loop, s, events) == 0 ? 0 : -1;
	if (evloop_add(h->loop, s, events, httpc_on_socket_ready, h) == -1) {
		log_warn("http: watching socket %d", (int)s);
		return -1;
	}
	curl_multi_assign(h->multi, s, h);
	return 0;
}

/* libcurl's timeout expired: let it act (a timeout of 0 lands here too). */
static void
httpc_on_timer(void *arg)
{
	httpc_socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int
httpc_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct httpc *h = userp;

	(void)multi;
	if (timeout_ms < 0)
		evloop_timer_cancel(&h->timer);
	else
		evloop_timer_add(h->loop, &h->timer, clock_mono() +
		    (double)timeout_ms / 1000.0);
	return 0;
}

struct httpc *
httpc_new(struct evloop *loop)
{
	struct httpc *h;

	if (httpc_global_init() == -1 || (h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	if ((h->multi = curl_multi_init()) == NULL) {
		free(h);
		return NULL;
	}
	h->loop = loop;
	evloop_timer_init(&h->timer, httpc_on_timer, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, httpc_socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, httpc_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void
httpc_free(struct httpc *h)
{
	if (h == NULL)
		return;
	/* Transfers still running are abandoned, their owners told nothing. */
	while (h->active != NULL)
		httpc_cancel(h->active);
	while (h->nspare > 0)
		curl_easy_cleanup(h->spare[--h->nspare]);
	curl_multi_cleanup(h->multi);
	evloop_timer_cancel(&h->timer);
	free(h);
}

struct httpc_request *
httpc_request_new(const char *method, const char *url)
{
	struct httpc_request *req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	if ((req->url = strdup(url)) == NULL) {
		free(req);
		return NULL;
	}
	req->method = method;
	req->tls_verify = 1;
	return req;
}

int
httpc_request_header(struct httpc_request *req, const char *line)
{
	struct curl_slist *l = curl_slist_append(req->headers, line);

	if (l == NULL)
		return -1;
	req->headers = l;
	return 0;
}

void
httpc_request_free(struct httpc_request *req)
{
	if (req == NULL)
		return;
	if (req->easy != NULL)
		httpc_cancel(req);
	curl_slist_free_all(req->headers);
	free(req->url);
	free(req->body);
	free(req->resp);
	free(req);
}

static size_t
httpc_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct httpc_request *req = userp;
	size_t len = size * nmemb;
	char *grown;

	if (req->on_data != NULL)
		return req->on_data(req, data, len) == 0 ? len : 0;
	if (req->resp_len + len > req->max_body) {
		req->too_big = 1;
		return 0;	/* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if ((grown = realloc(req->resp, req->resp_len + len + 1)) == NULL)
		return 0;
	req->resp = grown;
	memcpy(req->resp + req->resp_len, data, len);
	req->resp_len += len;
	req->resp[req->resp_len] = '\0';
	return len;
}

static size_t
httpc_header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct httpc_request *req = userp;
	size_t len = size * nmemb;

	return req->on_header(req, data, len) == 0 ? len : 0;
}

/*
 * A spare easy handle with every option back at its default (the
 * connections, kept by the multi handle, stay warm), or a new one.
 */
static CURL *
httpc_easy_get(struct httpc *h)
{
	CURL *e;

	if (h->nspare == 0)
		return curl_easy_init();
	e = h->spare[--h->nspare];
	curl_easy_reset(e);
	return e;
}

/* A finished easy handle (out of the multi) kept for the next transfer. */
static void
httpc_easy_put(struct httpc *h, CURL *e)
{
	if (h->nspare < HTTPC_SPARE_MAX)
		h->spare[h->nspare++] = e;
	else
		curl_easy_cleanup(e);
}

static CURL *
httpc_easy_for(struct httpc *h, struct httpc_request *req)
{
	CURL *e = httpc_easy_get(h);

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers != NULL ?
	    req->headers : (struct curl_slist *)req->shared_headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpc_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->error);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, req->tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, req->tls_verify ? 2L : 0L);
	if (req->ca_file != NULL && req->ca_file[0] != '\0')
		curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
	/* Set, they override libcurl's reading of the environment. */
	if (req->proxy != NULL && req->proxy[0] != '\0')
		curl_easy_setopt(e, CURLOPT_PROXY, req->proxy);
	if (req->no_proxy != NULL && req->no_proxy[0] != '\0')
		curl_easy_setopt(e, CURLOPT_NOPROXY, req->no_proxy);
	if (req->on_header != NULL) {
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, httpc_header_cb);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
	}
	/* A HEAD answer has no body to wait for. */
	if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body :
		    "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(req->body ? req->body_len : 0));
	}
	return e;
}

int
httpc_start(struct httpc *h, struct httpc_request *req)
{
	if (req->easy != NULL)
		return -1;
	if ((req->easy = httpc_easy_for(h, req)) == NULL)
		return -1;
	req->http = h;
	req->status = 0;
	req->connect_code = 0;
	req->result = CURLE_OK;
	req->too_big = 0;
	req->error[0] = '\0';
	req->pending = h->acting > 0;
	if (!req->pending &&
	    curl_multi_add_handle(h->multi, req->easy) != CURLM_OK) {
		httpc_easy_put(h, req->easy);
		req->easy = NULL;
		return -1;
	}
	req->prev = NULL;
	req->next = h->active;
	if (h->active != NULL)
		h->active->prev = req;
	h->active = req;
	return 0;
}

static void
httpc_detach(struct httpc_request *req)
{
	struct httpc *h = req->http;

	if (!req->pending)
		curl_multi_remove_handle(h->multi, req->easy);
	httpc_easy_put(h, req->easy);
	req->easy = NULL;
	req->pending = 0;
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		h->active = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

void
httpc_cancel(struct httpc_request *req)
{
	if (req->easy != NULL)
		httpc_detach(req);
}

/* Where the time went, step by step (egressd -T). */
static void
httpc_timings(CURL *e, struct httpc_request *req)
{
	char *ip = NULL;

	curl_easy_getinfo(e, CURLINFO_NAMELOOKUP_TIME, &req->t_dns);
	curl_easy_getinfo(e, CURLINFO_CONNECT_TIME, &req->t_connect);
	curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME, &req->t_tls);
	curl_easy_getinfo(e, CURLINFO_PRIMARY_PORT, &req->peer_port);
	if (curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
	    ip != NULL)
		snprintf(req->peer, sizeof(req->peer), "%s", ip);
}

static void
httpc_check_done(struct httpc *h)
{
	struct httpc_request *req;
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&req);
		req->result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
		    &req->status);
		if (req->result != CURLE_OK)
			curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_HTTP_CONNECTCODE, &req->connect_code);
		if (req->want_timings)
			httpc_timings(msg->easy_handle, req);
		httpc_detach(req);
		if (req->on_done != NULL)
			req->on_done(req);
	}
}

/* The proxy of req, without credentials, or "" (see httpc_proxy_for). */
static const char *
httpc_req_proxy(const struct httpc_request *req, char *buf, size_t len)
{
	const char *source;

	return httpc_proxy_for(req->url, req->proxy, req->no_proxy, "proxy",
	    buf, len, &source);
}

const char *
httpc_describe(const struct httpc_request *req, char *buf, size_t len)
{
	char proxy[HTTPC_PROXY_TEXT_MAX];
	const char *curl_text = req->error[0] ? req->error :
	    curl_easy_strerror(req->result);

	if (req->too_big)
		snprintf(buf, len, "response larger than %zu bytes",
		    req->max_body);
	else if (req->result == CURLE_OK)
		snprintf(buf, len, "HTTP %ld", req->status);
	else if (httpc_req_proxy(req, proxy, sizeof(proxy))[0] == '\0')
		snprintf(buf, len, "%s", curl_text);
	else if (httpc_failure_of(req) == HTTPC_FAIL_PROXY)
		snprintf(buf, len, "proxy %s failed: %s%s", proxy, curl_text,
		    req->connect_code >= 300 ? " (its answer to CONNECT)" : "");
	else
		snprintf(buf, len, "target failed (through proxy %s): %s",
		    proxy, curl_text);
	return buf;
}

enum httpc_failure
httpc_classify(CURLcode result, long status, long connect_code,
    int via_proxy)
{
	if (connect_code >= 300 || (via_proxy && status == 407))
		return HTTPC_FAIL_PROXY;
	switch (result) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_PROXY:
		return HTTPC_FAIL_PROXY;
	case CURLE_COULDNT_RESOLVE_HOST:
		return HTTPC_FAIL_DNS;
	case CURLE_COULDNT_CONNECT:
		/* Through a proxy, the only connection made is to it. */
		return via_proxy ? HTTPC_FAIL_PROXY : HTTPC_FAIL_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTPC_FAIL_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return HTTPC_FAIL_TLS;
	default:
		return HTTPC_FAIL_OTHER;
	}
	if (status == 401 || status == 403)
		return HTTPC_FAIL_AUTH;
	return status >= 200 && status <= 299 ? HTTPC_OK : HTTPC_FAIL_HTTP;
}

enum httpc_failure
httpc_failure_of(const struct httpc_request *req)
{
	char proxy[HTTPC_PROXY_TEXT_MAX];
	int via = 0;

	if (req->result != CURLE_OK || req->status == 407)
		via = httpc_req_proxy(req, proxy, sizeof(proxy))[0] != '\0';
	if (req->too_big)
		return HTTPC_FAIL_OTHER;
	return httpc_classify(req->result, req->status, req->connect_code,
	    via);
}

const char *
httpc_failure_name(enum httpc_failure f)
{
	static const char *const names[] = { "ok", "dns", "proxy", "connect",
	    "tls", "timeout", "auth", "http", "other" };

	return (size_t)f < sizeof(names) / sizeof(names[0]) ? names[f] : "?";
}

/* The host of url ("https://user@host:443/x" -> "host"), in buf. */
static const char *
httpc_url_host(const char *url, char *buf, size_t len)
{
	const char *p = strstr(url, "://"), *end, *at;
	size_t n;

	p = p != NULL ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	if ((at = memchr(p, '@', (size_t)(end - p))) != NULL)
		p = at + 1;
	if (*p == '[') {	/* an IPv6 literal */
		p++;
		n = strcspn(p, "]");
	} else
		n = strcspn(p, ":/?#");
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* Whether no_proxy (libcurl's syntax: "*", or a comma list) spares host. */
static int
httpc_no_proxy_matches(const char *no_proxy, const char *host)
{
	const char *p = no_proxy, *e;
	size_t hlen = strlen(host), n;

	while (*p != '\0') {
		p += strspn(p, ", ");
		e = p + strcspn(p, ",");
		n = (size_t)(e - p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n > 0 && *p == '.') {
			p++;
			n--;
		}
		if ((n == 1 && *p == '*') || (n > 0 && (hlen == n ||
		    (hlen > n && host[hlen - n - 1] == '.')) &&
		    strncasecmp(host + hlen - n, p, n) == 0))
			return 1;
		p = e;
	}
	return 0;
}

/* The first of two environment variables that is set and not empty. */
static const char *
httpc_env(const char *lower, const char *upper, const char **name)
{
	const char *v;

	if ((v = getenv(lower)) != NULL && v[0] != '\0') {
		*name = lower;
		return v;
	}
	if (upper != NULL && (v = getenv(upper)) != NULL && v[0] != '\0') {
		*name = upper;
		return v;
	}
	return NULL;
}

/* proxy without "user:password@", in buf. */
static void
httpc_strip_credentials(const char *proxy, char *buf, size_t len)
{
	const char *scheme = strstr(proxy, "://"), *host, *at;
	size_t pre;

	host = scheme != NULL ? scheme + 3 : proxy;
	at = strchr(host, '@');
	if (at == NULL || at > host + strcspn(host, "/")) {
		snprintf(buf, len, "%s", proxy);
		return;
	}
	pre = (size_t)(host - proxy);
	snprintf(buf, len, "%.*s%s", (int)pre, proxy, at + 1);
}

const char *
httpc_proxy_for(const char *url, const char *proxy, const char *no_proxy,
    const char *configured_name, char *buf, size_t len, const char **source)
{
	const char *chosen = NULL, *np, *np_name;
	char host[256];

	buf[0] = '\0';
	*source = "";
	if (proxy != NULL && proxy[0] != '\0') {
		chosen = proxy;
		*source = configured_name;
	} else if (strncasecmp(url, "https://", 8) == 0)
		chosen = httpc_env("https_proxy", "HTTPS_PROXY", source);
	else	/* libcurl ignores HTTP_PROXY: a CGI's request header */
		chosen = httpc_env("http_proxy", NULL, source);
	if (chosen == NULL)
		chosen = httpc_env("all_proxy", "ALL_PROXY", source);
	if (chosen == NULL) {
		*source = "";
		return buf;
	}
	np = no_proxy != NULL && no_proxy[0] != '\0' ? no_proxy :
	    httpc_env("no_proxy", "NO_PROXY", &np_name);
	if (np != NULL && httpc_no_proxy_matches(np,
	    httpc_url_host(url, host, sizeof(host)))) {
		*source = "";
		return buf;
	}
	httpc_strip_credentials(chosen, buf, len);
	return buf;
}
