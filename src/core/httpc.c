/* httpc: libcurl multi on top of evloop (see include/core/httpc.h). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/evloop.h"
#include "core/httpc.h"
#include "core/log.h"

struct httpc {
	CURLM *multi;
	struct evloop *loop;
	struct evloop_timer timer;	/* libcurl's timeout */
	struct httpc_request *active;	/* list of running transfers */
	int acting;		/* inside curl_multi_socket_action() */
};

static void httpc_check_done(struct httpc *h);
static void httpc_detach(struct httpc_request *req);

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

	if ((h = calloc(1, sizeof(*h))) == NULL)
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

static CURL *
httpc_easy_for(struct httpc_request *req)
{
	CURL *e = curl_easy_init();

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
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
	if ((req->easy = httpc_easy_for(req)) == NULL)
		return -1;
	req->http = h;
	req->status = 0;
	req->result = CURLE_OK;
	req->too_big = 0;
	req->error[0] = '\0';
	req->pending = h->acting > 0;
	if (!req->pending &&
	    curl_multi_add_handle(h->multi, req->easy) != CURLM_OK) {
		curl_easy_cleanup(req->easy);
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
	curl_easy_cleanup(req->easy);
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
		httpc_detach(req);
		if (req->on_done != NULL)
			req->on_done(req);
	}
}

const char *
httpc_describe(const struct httpc_request *req, char *buf, size_t len)
{
	if (req->too_big)
		snprintf(buf, len, "response larger than %zu bytes",
		    req->max_body);
	else if (req->result != CURLE_OK)
		snprintf(buf, len, "%s", req->error[0] ? req->error :
		    curl_easy_strerror(req->result));
	else
		snprintf(buf, len, "HTTP %ld", req->status);
	return buf;
}
