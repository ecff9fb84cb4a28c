/* orch: orchestrator calls, headers, credentials (see include/core/orch.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/orch.h"
#include "core/version.h"

#define TOKEN_MAX 4096
#define HEADER_MAX (TOKEN_MAX + 64)

static const struct {
	const char *method;
	const char *path;
	const char *suffix;	/* non-NULL: path + operation ID + suffix */
	long timeout_ms;	/* 0 = none (the stream) */
	const char *accept;
} orch_calls[] = {
	[ORCH_STREAM] = { "GET", "/stream", NULL, 0, "text/event-stream" },
	[ORCH_OPERATION] = { "GET", "/api/v1/agent/operation", NULL, 30000,
	    "application/json" },
	[ORCH_RESULT] = { "PUT", "/api/v1/agent/operations/", "/result",
	    60000, "application/json" },
	[ORCH_FULL_OPERATION] = { "GET", "/api/v1/agent/operations/",
	    "/request", 30000, "application/json" },
	[ORCH_HEARTBEAT] = { "POST", "/api/v1/agent/heartbeat", NULL, 10000,
	    "application/json" },
	[ORCH_SHUTDOWN] = { "POST", "/api/v1/agent/shutdown", NULL, 15000,
	    "application/json" },
	[ORCH_METRICS] = { "POST", "/api/v1/agent/metrics", NULL, 30000,
	    "application/json" },
	[ORCH_LOGS] = { "POST", "/api/v1/agent/logs", NULL, 30000,
	    "application/json" },
};

static char *
orch_read_token_file(const char *path, char *err, size_t errlen)
{
	char buf[TOKEN_MAX + 1];
	struct stat sb;
	ssize_t n;
	int fd;

	/* Symlinks are followed (Kubernetes Secrets are symlinks); the
	 * permission check applies to the file they lead to. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "orchestrator.token_file %s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0) {
		snprintf(err, errlen, "orchestrator.token_file %s: must be a "
		    "regular file readable by its owner only (mode %04o); "
		    "chmod 600 it", path, (unsigned)(sb.st_mode & 07777));
		close(fd);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || n > TOKEN_MAX) {
		snprintf(err, errlen, "orchestrator.token_file %s: %s", path,
		    n < 0 ? strerror(errno) : "longer than 4096 bytes");
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "orchestrator.token_file %s: empty", path);
		return NULL;
	}
	return strdup(buf);
}

/* A header value must not smuggle a line break into the request. */
static int
orch_header_safe(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 0;
	return 1;
}

static void
orch_free_secret(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
	free(s);
}

/*
 * $EGRESSD_TOKEN, taken out of the environment: unsetenv alone would leave
 * the bytes in the initial environment block, which /proc/PID/environ of
 * the master and of every worker forked from it shows, so they are zeroed
 * in place first.  A malloc'd copy, or NULL when unset or empty.
 */
static char *
orch_take_env_token(void)
{
	char *env = getenv("EGRESSD_TOKEN"), *copy = NULL;

	if (env == NULL)
		return NULL;
	if (env[0] != '\0')
		copy = strdup(env);	/* NULL: "no token" follows */
	explicit_bzero(env, strlen(env));
	unsetenv("EGRESSD_TOKEN");
	return copy;
}

int
orch_load_credentials(const struct egressd_config *cfg,
    const struct orch_creds *previous, struct orch_creds *out,
    char *err, size_t errlen)
{
	const char *id = cfg->orchestrator.token_id, *env;
	char *env_token = orch_take_env_token();

	memset(out, 0, sizeof(*out));
	if (cfg->orchestrator.url[0] == '\0') {
		orch_free_secret(env_token);
		return 0;
	}
	if (id[0] == '\0' && (env = getenv("EGRESSD_TOKEN_ID")) != NULL)
		id = env;
	if (id[0] == '\0' && previous != NULL && previous->token_id != NULL)
		id = previous->token_id;
	if (id[0] == '\0') {
		snprintf(err, errlen, "no token ID: set orchestrator.token_id "
		    "or EGRESSD_TOKEN_ID");
		orch_free_secret(env_token);
		return -1;
	}
	out->token_id = strdup(id);
	if (cfg->orchestrator.token_file[0] != '\0')
		out->token = orch_read_token_file(
		    cfg->orchestrator.token_file, err, errlen);
	else if (env_token != NULL) {
		out->token = env_token;
		env_token = NULL;
	} else if (previous != NULL && previous->token != NULL)
		out->token = strdup(previous->token);
	else
		snprintf(err, errlen, "no token: set orchestrator.token_file "
		    "or EGRESSD_TOKEN");
	if (out->token_id != NULL && out->token != NULL &&
	    (!orch_header_safe(out->token_id) ||
	    !orch_header_safe(out->token)))
		snprintf(err, errlen, "token ID or token contains control "
		    "characters");
	else if (out->token_id != NULL && out->token != NULL) {
		orch_free_secret(env_token);
		return 0;
	}
	orch_free_secret(env_token);
	orch_creds_free(out);
	return -1;
}

void
orch_creds_free(struct orch_creds *c)
{
	orch_free_secret(c->token);
	free(c->token_id);
	c->token = c->token_id = NULL;
}

int
orch_valid_id(const char *id)
{
	size_t n;

	for (n = 0; id[n] != '\0'; n++) {
		char c = id[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == ':' || c == '~'))
			return 0;
	}
	/* "." and ".." would be removed as dot segments from the URL. */
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return 0;
	return n > 0 && n <= ORCH_ID_MAX;
}

/* A header list whose lines may hold the token: zeroed before freed. */
static void
orch_free_list(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l != NULL; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

static int
orch_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);

	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

/*
 * The headers of a call: credentials, instance ID, User-Agent, Accept,
 * and Content-Type when it has a body.  The line buffer that held the
 * token is zeroed; the list's copy is the caller's to free (orch_free_list).
 */
static struct curl_slist *
orch_header_list(const struct orch *b, const char *accept, int has_body)
{
	struct curl_slist *list = NULL;
	char line[HEADER_MAX];
	int rc;

	snprintf(line, sizeof(line), "x-mcd-id: %s", b->creds->token_id);
	if (orch_header(&list, line) == -1)
		return NULL;
	snprintf(line, sizeof(line), "x-mcd-token: %s", b->creds->token);
	rc = orch_header(&list, line);
	explicit_bzero(line, sizeof(line));
	if (rc == -1)
		goto fail;
	snprintf(line, sizeof(line), "x-mcd-agent-instance-id: %s",
	    b->instance_id);
	if (orch_header(&list, line) == -1)
		goto fail;
	snprintf(line, sizeof(line), "Accept: %s", accept);
	if (orch_header(&list, "User-Agent: egressd/" EGRESSD_VERSION) == -1 ||
	    orch_header(&list, line) == -1 ||
	    orch_header(&list, "Expect:") == -1 ||
	    (has_body && orch_header(&list,
	    "Content-Type: application/json") == -1))
		goto fail;
	return list;
fail:
	orch_free_list(list);
	return NULL;
}

/* Whether line is prefix followed by value exactly. */
static int
orch_line_is(const char *line, const char *prefix, const char *value)
{
	size_t n = strlen(prefix);

	return strncmp(line, prefix, n) == 0 && strcmp(line + n, value) == 0;
}

/* Whether a kept list still says what b's credentials and ID say. */
static int
orch_list_current(const struct orch *b, const struct curl_slist *l)
{
	return l != NULL && l->next != NULL && l->next->next != NULL &&
	    orch_line_is(l->data, "x-mcd-id: ", b->creds->token_id) &&
	    orch_line_is(l->next->data, "x-mcd-token: ", b->creds->token) &&
	    orch_line_is(l->next->next->data, "x-mcd-agent-instance-id: ",
	    b->instance_id);
}

/*
 * The kept list for (accept, has_body), built on first use; NULL when
 * nothing is kept, out of memory, or the credentials or the instance ID
 * changed since it was built (the request then gets a list of its own:
 * a list in use by a running transfer is never replaced).
 */
static const struct curl_slist *
orch_kept_list(struct orch *b, const char *accept, int has_body)
{
	struct curl_slist **slot;

	if (b->kept == NULL)
		return NULL;
	slot = &b->kept->list[(strcmp(accept, "application/json") != 0) * 2 +
	    (has_body != 0)];
	if (*slot == NULL)
		*slot = orch_header_list(b, accept, has_body);
	return orch_list_current(b, *slot) ? *slot : NULL;
}

int
orch_keep_headers(struct orch *b)
{
	if (b->kept == NULL && (b->kept = calloc(1, sizeof(*b->kept))) ==
	    NULL)
		return -1;
	return 0;
}

void
orch_forget_headers(struct orch *b)
{
	size_t i;

	if (b->kept == NULL)
		return;
	for (i = 0; i < ORCH_HEADER_SETS; i++)
		orch_free_list(b->kept->list[i]);
	free(b->kept);
	b->kept = NULL;
}

static int
orch_headers(struct orch *b, struct httpc_request *req,
    const char *accept, int has_body)
{
	if ((req->shared_headers = orch_kept_list(b, accept, has_body)) !=
	    NULL)
		return 0;
	req->headers = orch_header_list(b, accept, has_body);
	return req->headers != NULL ? 0 : -1;
}

struct httpc_request *
orch_prepare(struct orch *b, enum orch_call call,
    const char *operation_id, char *body)
{
	const char *suffix = orch_calls[call].suffix;
	struct httpc_request *req;
	char url[2048];

	if (suffix != NULL && (operation_id == NULL ||
	    !orch_valid_id(operation_id))) {
		free(body);
		return NULL;
	}
	if ((size_t)snprintf(url, sizeof(url), "%s%s%s%s",
	    b->cfg->orchestrator.url, orch_calls[call].path,
	    suffix ? operation_id : "", suffix ? suffix : "") >= sizeof(url) ||
	    (req = httpc_request_new(orch_calls[call].method, url)) == NULL) {
		free(body);
		return NULL;
	}
	req->body = body;
	req->body_len = body ? strlen(body) : 0;
	req->timeout_ms = orch_calls[call].timeout_ms;
	req->connect_timeout_ms =
	    (long)(b->cfg->orchestrator.connect_timeout * 1000.0);
	req->max_body = (size_t)b->cfg->orchestrator.max_body_bytes;
	req->tls_verify = b->cfg->orchestrator.tls_verify;
	req->ca_file = b->cfg->orchestrator.ca_file;
	req->proxy = b->cfg->orchestrator.proxy;
	req->no_proxy = b->cfg->orchestrator.no_proxy;
	if (orch_headers(b, req, orch_calls[call].accept,
	    body != NULL) == -1) {
		httpc_request_free(req);
		return NULL;
	}
	return req;
}

struct httpc_request *
orch_call(struct orch *b, enum orch_call call,
    const char *operation_id, char *body, httpc_done_cb on_done, void *arg)
{
	struct httpc_request *req;

	if ((req = orch_prepare(b, call, operation_id, body)) == NULL)
		return NULL;
	req->on_done = on_done;
	req->arg = arg;
	if (httpc_start(b->http, req) == -1) {
		httpc_request_free(req);
		return NULL;
	}
	return req;
}

const char *
orch_proxy(const struct egressd_config *cfg, char *buf, size_t len,
    const char **source)
{
	return httpc_proxy_for(cfg->orchestrator.url, cfg->orchestrator.proxy,
	    cfg->orchestrator.no_proxy, "orchestrator.proxy", buf, len,
	    source);
}
