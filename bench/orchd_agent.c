/*
 * orchd_agent: the agent endpoints of orchd (see orchd_agent.h).
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "orchd_agent.h"
#include "orchd_sse.h"

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
		http_pct_decode(*op_id, 0);
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
agent_operation(struct orchd *o, struct conn *c, struct inst *in)
{
	struct buf *b = &o->scratch;
	int rc;

	buf_reset(b);
	if ((rc = state_pop(o, b)) == -1) {
		http_error(c, 500, "out of memory");
		return;
	}
	if (rc == 0) {
		in->empty_polls++;
		http_reply(c, 204, NULL, 0);
		return;
	}
	o->taken++;
	in->operations++;
	http_reply(c, 200, b->data, b->len);
}

static void
agent_result(struct orchd *o, struct conn *c, struct inst *in,
    const char *op_id, const char *iid, const char *body, size_t len)
{
	struct buf *b = &o->scratch;
	cJSON *doc;
	int ok, rc;

	doc = cJSON_ParseWithLength(body, len);
	ok = cJSON_IsObject(doc) &&
	    cJSON_GetObjectItemCaseSensitive(doc, "result") != NULL;
	cJSON_Delete(doc);
	if (!ok) {
		http_error(c, 400, "body must be a JSON object "
		    "{\"result\": ...}");
		return;
	}
	if (state_result(o, op_id, iid, body, len) == -1) {
		http_error(c, 500, "out of memory");
		return;
	}
	in->results++;
	buf_reset(b);
	rc = 0;
	if (o->faults.piggyback && o->qlen > 0) {
		if (buf_str(b, "{\"next_operation\":") == -1 ||
		    (rc = state_pop(o, b)) == -1 || buf_str(b, "}") == -1) {
			http_error(c, 500, "out of memory");
			return;
		}
		o->taken++;
		in->operations++;
	}
	if (rc == 1)
		http_reply(c, 200, b->data, b->len);
	else
		http_reply(c, 200, "{}", 2);
}

static void
agent_serve(struct orchd *o, struct conn *c, enum orchd_ep ep,
    struct inst *in, const char *op_id, const char *iid, const char *body,
    size_t len)
{
	switch (ep) {
	case EP_STREAM:
		sse_open(o, c, in, iid);
		return;
	case EP_OPERATION:
		agent_operation(o, c, in);
		return;
	case EP_RESULT:
		agent_result(o, c, in, op_id, iid, body, len);
		return;
	case EP_REQUEST:
		http_error(c, 404, "unknown operation %s", op_id);
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
	http_reply(c, 200, "{}", 2);
}

void
agent_handle(struct orchd *o, struct conn *c, const char *method,
    char *path, const char *head, const char *body, size_t len)
{
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
	if ((in = state_inst(o, iid)) == NULL) {
		http_error(c, 500, "out of memory");
		return;
	}
	in->requests++;
	if (o->faults.refuse_all)
		http_error(c, 503, "service unavailable (injected)");
	else if (o->faults.auth_fail || !authed)
		http_error(c, 401, "unauthorized: bad x-mcd-id or x-mcd-token");
	else if (ep == EP_UNKNOWN)
		http_error(c, 404, "no such endpoint: %s", path);
	else if (!method_ok)
		http_error(c, 405, "%s not allowed on %s", method, path);
	else
		agent_serve(o, c, ep, in, op_id, iid, body, len);
}
