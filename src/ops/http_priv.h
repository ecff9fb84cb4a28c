/*
 * ops/http_priv: the pure parts of ops/http — URL targets and the
 * allow-list, the rules for an operation's request headers, redirects and
 * the collection of response headers — shared with its unit test.  Not a
 * public interface: only src/ops/http.c and tests/unit/test_ops_http.c
 * include it.
 */
#ifndef EGRESSD_OPS_HTTP_PRIV_H
#define EGRESSD_OPS_HTTP_PRIV_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;
struct config_strlist;

#define OPHTTP_HEADERS_MAX	(256 * 1024)	/* response header bytes */

/* A parsed http(s) URL; every string is owned. */
struct ophttp_target {
	char *url;		/* normalised: what libcurl is given */
	char *scheme;		/* lower case */
	char *host;		/* lower case; an IPv6 address in brackets */
	long port;		/* the scheme's default when none is given */
	char *path;
	bool userinfo;		/* a user name or password is present */
};

/*
 * Parse url, resolved against base when base is not NULL (a redirect's
 * Location).  0, or -1 with a message in err (not an http(s) URL).
 */
int ophttp_target_parse(struct ophttp_target *t, const char *base,
    const char *url, char *err, size_t errlen);
void ophttp_target_free(struct ophttp_target *t);

/*
 * Whether t matches an entry of allow: scheme, host (in any case) and port
 * exactly, default ports filled in; an entry with a path other than "/"
 * also admits only that path and what lies below it.
 */
bool ophttp_allowed(const struct config_strlist *allow,
    const struct ophttp_target *t);

/*
 * What becomes of an operation's request header: 1 it is sent, 0 it is
 * dropped (hop-by-hop, Host, framing the agent sets itself, and credentials
 * unless forward_auth), -1 it is invalid (err says why).
 */
int ophttp_header_rule(const char *name, const char *value,
    bool forward_auth, char *err, size_t errlen);

/* Whether name is one of the credentials forward_auth governs. */
bool ophttp_header_is_auth(const char *name);

/*
 * The method to use after a response with status, or NULL when status is
 * not a redirect: 303 turns everything but HEAD into GET, 301 and 302 turn
 * POST into GET (as browsers and curl do), 307 and 308 keep the method.
 */
const char *ophttp_redirect_method(long status, const char *method);

/* Response headers as they arrive, one line at a time. */
struct ophttp_resp {
	struct cJSON *headers;	/* lower-case names; repeats joined ", " */
	struct cJSON *last;	/* the header a folded line continues */
	long status;		/* of the latest status line */
	size_t bytes;
	bool too_big;		/* more than OPHTTP_HEADERS_MAX bytes */
};

/*
 * Take one header line (CRLF included or not).  A status line starts a
 * new set (after a 1xx answer), a blank one ends it.  Returns 1 at the
 * blank line, 0 otherwise, -1 when out of memory or too_big.
 */
int ophttp_resp_line(struct ophttp_resp *r, const char *line, size_t len);
void ophttp_resp_clear(struct ophttp_resp *r);

#endif
