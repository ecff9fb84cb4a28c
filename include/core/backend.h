/*
 * backend: the orchestrator's HTTP API as DESIGN section 2 defines it.
 *
 * Owns the credentials (token ID and secret, which never reach a log line),
 * the headers every request carries (auth, the sender's instance ID, the
 * User-Agent), the paths, and each call's timeouts.  Retry policy belongs
 * to the callers, which own the timers.
 */
#ifndef EGRESSD_BACKEND_H
#define EGRESSD_BACKEND_H

#include <stddef.h>

#include "core/config.h"
#include "core/http.h"

#define BACKEND_ID_MAX 256	/* longest operation ID we put in a path */

struct backend_creds {
	char *token_id;
	char *token;
};

enum backend_call {
	BACKEND_STREAM,		/* GET /stream */
	BACKEND_OPERATION,	/* GET /api/v1/agent/operation */
	BACKEND_RESULT,		/* PUT .../operations/{id}/result */
	BACKEND_FULL_OPERATION,	/* GET .../operations/{id}/request */
	BACKEND_HEARTBEAT,	/* POST /api/v1/agent/heartbeat */
	BACKEND_SHUTDOWN,	/* POST /api/v1/agent/shutdown */
	BACKEND_METRICS,	/* POST /api/v1/agent/metrics */
	BACKEND_LOGS		/* POST /api/v1/agent/logs */
};

struct backend {
	struct http *http;
	const struct egressd_config *cfg;
	const struct backend_creds *creds;
	const char *instance_id;
};

/*
 * Token ID from orchestrator.token_id, else $EGRESSD_TOKEN_ID; the secret
 * from orchestrator.token_file (refused when group or world can read it),
 * else $EGRESSD_TOKEN, else the previous credentials' (a reload after the
 * environment was scrubbed).  Without orchestrator.url nothing is needed.
 */
int backend_load_credentials(const struct egressd_config *cfg,
    const struct backend_creds *previous, struct backend_creds *out,
    char *err, size_t errlen);
void backend_creds_free(struct backend_creds *c);

/* A usable operation ID: 1..BACKEND_ID_MAX URL-safe characters. */
int backend_valid_id(const char *id);

/* Build one call without starting it (the stream sets on_data first). */
struct http_request *backend_prepare(struct backend *b,
    enum backend_call call, const char *operation_id, char *body);

/*
 * Build and start one call; body (may be NULL) is taken over.  on_done
 * receives the finished request, which it must free.  NULL on failure.
 */
struct http_request *backend_call(struct backend *b, enum backend_call call,
    const char *operation_id, char *body, http_done_cb on_done, void *arg);


#endif
