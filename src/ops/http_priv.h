/*
 * ops/http_priv: the pure parts of ops/http — URL targets and the
 * allow-list, the rules for an operation's request headers, redirects and
 * the collection of response headers — shared with its unit test and
 * fuzz target.  Not a public interface: only src/ops/http.c,
 * tests/unit/test_ops_http.c and fuzz/fuzz_url.c include it.
 */
#ifndef EGRESSD_OPS_HTTP_PRIV_H
#define EGRESSD_OPS_HTTP_PRIV_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;
struct config_strlist;

#define OPHTTP_HEADERS_MAX	(256 * 1024)	/* response header bytes */
#define OPHTTP_URL_MAX		65536		/* bytes of a URL */

/* A parsed http(s) URL in its normal form; every string is owned. */
struct ophttp_target {
	char *url;		/* the normal form: what libcurl is given */
	char *scheme;		/* lower case */
	char *host;		/* lower case; an IPv6 address in brackets */
	long port;		/* the scheme's default when none is given */
	char *path;		/* normalised, without the query */
	bool userinfo;		/* a user name or password is present */
};

/*
 * Parse url, resolved against base when base is not NULL (a redirect's
 * Location, RFC 3986 section 5.2), into its normal form (RFC 3986 section
 * 6): percent-encoded unreserved characters decoded and other encodings
 * in upper case, dot segments removed, scheme and host in lower case, an
 * IPv6 address in its canonical text, the default port dropped (and
 * filled into t->port), an empty path as "/", the fragment dropped.
 * Refused, with a message in err: anything but an absolute http(s) URL
 * with a host; a '\' anywhere and an encoded '/' or '\' (%2F, %5C) in the
 * path, which servers read as separators; a "." or ".." segment with
 * parameters ("..;x"); bytes that are not URI characters (controls,
 * space, '"', '<', '>', '^', '`', '{', '|', '}', beyond ASCII) unless
 * percent-encoded, and '[' or ']' outside a query and an IPv6 address;
 * more than one '@'; a bad port; and a normal form that libcurl would
 * read differently.  Pure: no I/O.
 */
int ophttp_target_parse(struct ophttp_target *t, const char *base,
    const char *url, char *err, size_t errlen);
void ophttp_target_free(struct ophttp_target *t);

/*
 * Whether t (a normal form) matches an entry of allow, itself taken in its
 * normal form (entries that do not parse match nothing): scheme, host and
 * port equal; an entry with a path other than "/" also admits only that
 * path and what lies below it, whole segments only (an entry path ending
 * in '/' admits what starts with it).  Pure: no I/O.
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
