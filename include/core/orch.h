/*
 * orch: the orchestrator's HTTP API as DESIGN section 2 defines it.
 *
 * Owns the credentials (token ID and secret, which never reach a log line),
 * the headers every request carries (auth, the sender's instance ID, the
 * User-Agent), the paths, and each call's timeouts.  Retry policy belongs
 * to the callers, which own the timers.
 */
#ifndef EGRESSD_ORCH_H
#define EGRESSD_ORCH_H

#include <stddef.h>

#include "core/config.h"
#include "core/httpc.h"

#define ORCH_ID_MAX 256	/* longest operation ID we put in a path */

struct orch_creds {
	char *token_id;
	char *token;
};

enum orch_call {
	ORCH_STREAM,		/* GET /stream */
	ORCH_OPERATION,	/* GET /api/v1/agent/operation */
	ORCH_RESULT,		/* PUT .../operations/{id}/result */
	ORCH_FULL_OPERATION,	/* GET .../operations/{id}/request */
	ORCH_HEARTBEAT,	/* POST /api/v1/agent/heartbeat */
	ORCH_SHUTDOWN,	/* POST /api/v1/agent/shutdown */
	ORCH_METRICS,	/* POST /api/v1/agent/metrics */
	ORCH_LOGS		/* POST /api/v1/agent/logs */
};

/*
 * Header lists built once and shared by every request (orch_keep_headers):
 * one per Accept (JSON, event stream) and with or without a body.
 */
#define ORCH_HEADER_SETS 4

struct orch_headers {
	struct curl_slist *list[ORCH_HEADER_SETS];
};

struct orch {
	struct httpc *http;
	const struct egressd_config *cfg;
	const struct orch_creds *creds;
	const char *instance_id;
	struct orch_headers *kept;	/* NULL: each request builds its own */
};

/*
 * Token ID from orchestrator.token_id, else $EGRESSD_TOKEN_ID; the secret
 * from orchestrator.token_file (refused when group or world can read it),
 * else $EGRESSD_TOKEN, else the previous credentials' (a reload after the
 * environment was scrubbed).  Without orchestrator.url nothing is needed.
 * $EGRESSD_TOKEN leaves the environment in any case, its bytes zeroed, so
 * no /proc/PID/environ and nothing the daemon runs shows it.
 */
int orch_load_credentials(const struct egressd_config *cfg,
    const struct orch_creds *previous, struct orch_creds *out,
    char *err, size_t errlen);
void orch_creds_free(struct orch_creds *c);

/*
 * A usable operation ID: one path segment of 1..ORCH_ID_MAX unreserved
 * characters (and ":"), not "." or "..".
 */
int orch_valid_id(const char *id);

/*
 * The proxy the orchestrator is reached through, without credentials, in
 * buf ("" for a direct connection); *source names what set it
 * (httpc_proxy_for).
 */
const char *orch_proxy(const struct egressd_config *cfg, char *buf,
    size_t len, const char **source);

/*
 * From now on, build each set of headers once and let every request
 * borrow it instead of building, and zeroing, its own: the lines only
 * change with the credentials or the instance ID, and a request made after
 * they changed builds its own again.  orch_forget_headers() zeroes and
 * frees them; call it after the last request of b ended (httpc_free).
 * -1 when out of memory (requests then build their own).
 */
int orch_keep_headers(struct orch *b);
void orch_forget_headers(struct orch *b);

/* Build one call without starting it (the stream sets on_data first). */
struct httpc_request *orch_prepare(struct orch *b,
    enum orch_call call, const char *operation_id, char *body);

/*
 * Build and start one call; body (may be NULL) is taken over.  on_done
 * receives the finished request, which it must free.  NULL on failure.
 */
struct httpc_request *orch_call(struct orch *b, enum orch_call call,
    const char *operation_id, char *body, httpc_done_cb on_done, void *arg);


#endif
