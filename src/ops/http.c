/*
 * ops/http: /api/v1/agent/execute/http — one HTTP request to a URL that
 * operations.http.allow admits, made on the worker's libcurl multi so the
 * loop goes on while it runs (OPS_PENDING, then ops_finish once).
 *
 * A URL (the operation's, each Location) is brought to its RFC 3986
 * normal form before anything else looks at it (ophttp_target_parse, see
 * http_priv.h): the allow-list judges that form, libcurl is given it, and
 * libcurl must read it the same way, so "/public/%2e%2e/secret" is
 * "/secret" to the allow-list as it is to the server.
 *
 * libcurl never follows a redirect by itself: each 3xx with a Location is
 * resolved here, checked against the allow-list (and the capability, when
 * it names another host or port) and only then requested, at most
 * operations.http.max_redirects times.  Credentials (Authorization, Cookie,
 * a user in the URL) pass only with operations.http.forward_auth, and never
 * to an origin other than the first.
 *
 * Limits: the whole exchange, redirects included, ends at min(body timeout,
 * operations.http.timeout) with a "timeout" error; a response body beyond
 * operations.http.max_bytes is cut there and marked "truncated" (the
 * transfer stops; a request body beyond it is refused).
 *
 * Result: {"status", "headers": {lower-case name: value, repeats joined
 * with ", "}, "body", "encoding": "utf-8" or "base64" (a body that is not
 * UTF-8, or holds NUL), "truncated", "url": the URL that answered}.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/httpc.h"
#include "http_priv.h"
#include "core/jsonutil.h"
#include "ops/ops.h"
#include "core/version.h"

#define OPHTTP_ERR_MAX		256
#define OPHTTP_NAME_MAX		256	/* header names we compare */
#define OPHTTP_RESOURCE_MAX	320
#define OPHTTP_URL_QUOTE	200	/* characters of a URL in messages */

/* One operation: its request as it stands and the response coming in. */
struct ophttp {
	struct op_run *run;
	const struct egressd_config *cfg;
	struct httpc *http;
	struct httpc_request *req;
	struct ophttp_target target;
	const char *method;		/* one of ophttp_methods */
	struct curl_slist *headers;	/* the operation's, filtered */
	char *body;
	size_t body_len;
	bool has_type;			/* the operation set Content-Type */
	bool has_agent;			/* ... and User-Agent */
	bool foreign;			/* left the first origin */
	int hops;
	double deadline;
	double timeout;
	/* The current response. */
	struct ophttp_resp resp;
	bool redirecting;		/* its body is not kept */
	bool stopped;			/* we ended the transfer */
	char *data;
	size_t len, cap;		/* bytes received, room in data */
	bool truncated;
};

static const char *const ophttp_methods[] = {
	"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL
};

/* Dropped whatever the configuration says (lower case). */
static const char *const ophttp_dropped[] = {
	"connection", "keep-alive", "te", "trailer", "transfer-encoding",
	"upgrade", "host", "content-length", "expect", NULL
};

/* ------------------------------------------------------------------ */
/* Pure parts (http_priv.h). */

static void
ophttp_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* RFC 3986 section 2.3. */
static bool
ophttp_unreserved(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool
ophttp_sub_delim(int c)
{
	return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

static int
ophttp_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A URL's parts as RFC 3986 appendix B splits a reference. */
struct ophttp_ref {
	const char *scheme, *auth, *path, *query;
	size_t scheme_len, auth_len, path_len, query_len;
	bool has_scheme, has_auth, has_query;
};

static void
ophttp_ref_split(const char *s, struct ophttp_ref *r)
{
	size_t n = strcspn(s, ":/?#");

	memset(r, 0, sizeof(*r));
	if (n > 0 && s[n] == ':') {
		r->has_scheme = true;
		r->scheme = s;
		r->scheme_len = n;
		s += n + 1;
	}
	if (s[0] == '/' && s[1] == '/') {
		r->has_auth = true;
		r->auth = s + 2;
		r->auth_len = strcspn(r->auth, "/?#");
		s = r->auth + r->auth_len;
	}
	r->path = s;
	r->path_len = strcspn(s, "?#");
	s += r->path_len;
	if (*s == '?') {
		r->has_query = true;
		r->query = s + 1;
		r->query_len = strcspn(r->query, "#");
	}
}

/* Output of the normaliser: a string that only grows (to its cap). */
struct ophttp_buf {
	char *s;
	size_t len, cap;
};

static void
ophttp_put(struct ophttp_buf *b, const char *s, size_t n)
{
	if (b->len + n >= b->cap)
		n = b->cap - 1 - b->len;	/* never: cap is an upper bound */
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* The characters a part may hold as they are (besides unreserved). */
enum ophttp_part { OPHTTP_USER, OPHTTP_PATH, OPHTTP_QUERY };

static bool
ophttp_part_char(enum ophttp_part part, int c)
{
	if (ophttp_unreserved(c) || ophttp_sub_delim(c) || c == ':')
		return true;
	if (part == OPHTTP_USER)
		return false;
	if (part == OPHTTP_QUERY && (c == '?' || c == '[' || c == ']'))
		return true;	/* brackets: as clients send them */
	return c == '@' || c == '/';
}

/*
 * n bytes of a userinfo, path or query into b, percent-encodings
 * normalised: those of unreserved characters decoded, the others in upper
 * case.  -1 with err for a malformed encoding, a character that must be
 * encoded, or in a path an encoded '/' or '\'.
 */
static int
ophttp_norm_part(struct ophttp_buf *b, enum ophttp_part part, const char *s,
    size_t n, char *err, size_t errlen)
{
	static const char hexd[] = "0123456789ABCDEF";
	char enc[3];
	size_t i;
	int hi, lo, c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c != '%') {
			if (!ophttp_part_char(part, c)) {
				snprintf(err, errlen, "'%c' must be "
				    "percent-encoded here", c);
				return -1;
			}
			ophttp_put(b, s + i, 1);
			continue;
		}
		if (n - i < 3 ||
		    (hi = ophttp_hex((unsigned char)s[i + 1])) == -1 ||
		    (lo = ophttp_hex((unsigned char)s[i + 2])) == -1) {
			snprintf(err, errlen, "a '%%' without two hex digits");
			return -1;
		}
		c = hi << 4 | lo;
		i += 2;
		if (part == OPHTTP_PATH && (c == '/' || c == '\\')) {
			snprintf(err, errlen, "an encoded '%c' (%%%c%c) in the "
			    "path", c, hexd[hi], hexd[lo]);
			return -1;
		}
		if (ophttp_unreserved(c)) {
			enc[0] = (char)c;
			ophttp_put(b, enc, 1);
			continue;
		}
		enc[0] = '%';
		enc[1] = hexd[hi];
		enc[2] = hexd[lo];
		ophttp_put(b, enc, 3);
	}
	return 0;
}

/* Whether segment s (n bytes) is "." or "..". */
static bool
ophttp_dot_segment(const char *s, size_t n)
{
	return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' &&
	    s[1] == '.');
}

/*
 * The path in b from offset start on (it begins with '/') without dot
 * segments (RFC 3986 section 5.2.4), in place.  A "." or ".." segment
 * with parameters ("..;x"), which some servers take for ".." itself, is
 * refused.
 */
static int
ophttp_remove_dots(struct ophttp_buf *b, size_t start, char *err,
    size_t errlen)
{
	char *p = b->s + start, *in, *seg, *out;
	size_t n, len = b->len - start;
	bool last;

	if ((in = strndup(p, len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	out = p;
	seg = in + 1;
	for (;;) {
		n = strcspn(seg, "/");
		last = seg[n] == '\0';
		if (memchr(seg, ';', n) != NULL &&
		    ophttp_dot_segment(seg, (size_t)((char *)memchr(seg, ';',
		    n) - seg))) {
			free(in);
			snprintf(err, errlen, "a dot segment with parameters "
			    "in the path");
			return -1;
		}
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			/* back to the '/' before the last segment out */
			while (out > p && *--out != '/')
				;
		} else if (!(n == 1 && seg[0] == '.')) {
			*out++ = '/';
			memcpy(out, seg, n);
			out += n;
			if (last)
				break;
			seg += n + 1;
			continue;
		}
		if (last) {
			*out++ = '/';
			break;
		}
		seg += n + 1;
	}
	*out = '\0';
	b->len = (size_t)(out - b->s);
	free(in);
	return 0;
}

/* A host of n bytes at s (no port) into b, normalised; -1 with err. */
static int
ophttp_norm_host(struct ophttp_buf *b, const char *s, size_t n, char *err,
    size_t errlen)
{
	char lit[64], text[sizeof(lit) + 2];
	struct in6_addr a6;
	size_t i, start = b->len;
	int hi, lo, c;

	if (n > 0 && s[0] == '[') {
		if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof(lit)) {
			snprintf(err, errlen, "a bad IPv6 address");
			return -1;
		}
		memcpy(lit, s + 1, n - 2);
		lit[n - 2] = '\0';
		if (inet_pton(AF_INET6, lit, &a6) != 1 ||
		    inet_ntop(AF_INET6, &a6, lit, sizeof(lit)) == NULL) {
			snprintf(err, errlen, "a bad IPv6 address (zones and "
			    "IPvFuture are not taken)");
			return -1;
		}
		snprintf(text, sizeof(text), "[%s]", lit);
		ophttp_put(b, text, strlen(text));
		return 0;
	}
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3 ||
			    (hi = ophttp_hex((unsigned char)s[i + 1])) == -1 ||
			    (lo = ophttp_hex((unsigned char)s[i + 2])) == -1 ||
			    !ophttp_unreserved(hi << 4 | lo)) {
				snprintf(err, errlen, "a host may only encode "
				    "letters, digits, '-', '.', '_', '~'");
				return -1;
			}
			c = hi << 4 | lo;
			i += 2;
		} else if (!ophttp_unreserved(c)) {
			snprintf(err, errlen, "'%c' in the host", c);
			return -1;
		}
		text[0] = (char)tolower(c);
		ophttp_put(b, text, 1);
	}
	if (b->len == start) {
		snprintf(err, errlen, "URL without a host");
		return -1;
	}
	return 0;
}

/* "[user[:password]@]host[:port]" (n bytes) into t and b. */
static int
ophttp_norm_auth(struct ophttp_target *t, struct ophttp_buf *b,
    const char *s, size_t n, char *err, size_t errlen)
{
	const char *at = memchr(s, '@', n), *hp, *hend, *end = s + n;
	size_t start, i;
	long port = 0;

	if (at != NULL && memchr(at + 1, '@', (size_t)(end - at - 1)) !=
	    NULL) {
		snprintf(err, errlen, "more than one '@' in the authority");
		return -1;
	}
	if (at != NULL && at > s) {
		start = b->len;
		if (ophttp_norm_part(b, OPHTTP_USER, s, (size_t)(at - s), err,
		    errlen) == -1)
			return -1;
		t->userinfo = b->len > start;
		ophttp_put(b, "@", 1);
	}
	hp = at != NULL ? at + 1 : s;
	if (hp < end && *hp == '[') {
		/* an IPv6 address: its colons are not the port's */
		if ((hend = memchr(hp, ']', (size_t)(end - hp))) == NULL ||
		    (++hend < end && *hend != ':')) {
			snprintf(err, errlen, "a bad IPv6 address");
			return -1;
		}
	} else if ((hend = memchr(hp, ':', (size_t)(end - hp))) == NULL)
		hend = end;
	start = b->len;
	if (ophttp_norm_host(b, hp, (size_t)(hend - hp), err, errlen) == -1)
		return -1;
	if ((t->host = strdup(b->s + start)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->port = strcmp(t->scheme, "https") == 0 ? 443 : 80;
	if (hend == end || hend + 1 == end)	/* none, or ":" alone */
		return 0;
	for (i = 1; hend + i < end; i++) {
		if (!isdigit((unsigned char)hend[i]) || port > 65535) {
			snprintf(err, errlen, "a bad port");
			return -1;
		}
		port = port * 10 + (hend[i] - '0');
	}
	if (port < 1 || port > 65535) {
		snprintf(err, errlen, "a bad port");
		return -1;
	}
	if (port != t->port) {
		char text[16];

		snprintf(text, sizeof(text), ":%ld", port);
		ophttp_put(b, text, strlen(text));
	}
	t->port = port;
	return 0;
}

/*
 * Nothing that is not a URI character at all: controls, space, '"', '<',
 * '>', '\', '^', '`', '{', '|', '}' and every byte beyond ASCII must come
 * percent-encoded; a '\' (which some parsers take for '/') is named.
 */
static int
ophttp_uri_chars(const char *s, char *err, size_t errlen)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\\') {
			snprintf(err, errlen, "a '\\' in the URL");
			return -1;
		}
		if (*p <= 0x20 || *p >= 0x7f || strchr("\"<>^`{|}", *p)) {
			snprintf(err, errlen, "byte 0x%02x must be "
			    "percent-encoded", *p);
			return -1;
		}
	}
	return 0;
}

/* The normal form of absolute URL s into t. */
static int
ophttp_normalise(struct ophttp_target *t, const char *s, char *err,
    size_t errlen)
{
	struct ophttp_buf b;
	struct ophttp_ref r;
	size_t start;

	if (strlen(s) > OPHTTP_URL_MAX) {
		snprintf(err, errlen, "longer than %d bytes", OPHTTP_URL_MAX);
		return -1;
	}
	if (ophttp_uri_chars(s, err, errlen) == -1)
		return -1;
	ophttp_ref_split(s, &r);
	if (!r.has_scheme) {
		snprintf(err, errlen, "not an absolute URL");
		return -1;
	}
	if ((t->scheme = strndup(r.scheme, r.scheme_len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ophttp_lower(t->scheme);
	if (strcmp(t->scheme, "http") != 0 && strcmp(t->scheme, "https") != 0) {
		snprintf(err, errlen, "not an http or https URL");
		return -1;
	}
	if (!r.has_auth) {
		snprintf(err, errlen, "URL without a host");
		return -1;
	}
	b.cap = strlen(s) + 64;
	b.len = 0;
	if ((b.s = malloc(b.cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	b.s[0] = '\0';
	ophttp_put(&b, t->scheme, strlen(t->scheme));
	ophttp_put(&b, "://", 3);
	if (ophttp_norm_auth(t, &b, r.auth, r.auth_len, err, errlen) == -1)
		goto fail;
	start = b.len;
	ophttp_put(&b, "/", 1);
	if (r.path_len > 0 && ophttp_norm_part(&b, OPHTTP_PATH, r.path + 1,
	    r.path_len - 1, err, errlen) == -1)
		goto fail;
	if (ophttp_remove_dots(&b, start, err, errlen) == -1)
		goto fail;
	if ((t->path = strdup(b.s + start)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (r.has_query) {
		ophttp_put(&b, "?", 1);
		if (ophttp_norm_part(&b, OPHTTP_QUERY, r.query, r.query_len,
		    err, errlen) == -1)
			goto fail;
	}
	t->url = b.s;
	return 0;
fail:
	free(b.s);
	return -1;
}

/*
 * Reference ref resolved against base (a normal form), RFC 3986 section
 * 5.2.2; dot segments go in ophttp_normalise.  NULL with err.
 */
static char *
ophttp_resolve(const char *base, const char *ref, char *err, size_t errlen)
{
	struct ophttp_ref b, r;
	struct ophttp_buf o;
	const char *slash;

	if (strlen(ref) > OPHTTP_URL_MAX) {
		snprintf(err, errlen, "longer than %d bytes", OPHTTP_URL_MAX);
		return NULL;
	}
	/* Before the fragment goes: nothing in it passes unseen. */
	if (ophttp_uri_chars(ref, err, errlen) == -1)
		return NULL;
	ophttp_ref_split(ref, &r);
	ophttp_ref_split(base, &b);
	o.cap = strlen(base) + strlen(ref) + 8;
	o.len = 0;
	if ((o.s = malloc(o.cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	o.s[0] = '\0';
	if (r.has_scheme) {
		ophttp_put(&o, ref, strlen(ref));
		return o.s;
	}
	ophttp_put(&o, b.scheme, b.scheme_len);
	ophttp_put(&o, "://", 3);
	if (r.has_auth) {
		ophttp_put(&o, r.auth, r.auth_len);
		ophttp_put(&o, r.path, r.path_len);
	} else {
		ophttp_put(&o, b.auth, b.auth_len);
		if (r.path_len == 0) {
			ophttp_put(&o, b.path, b.path_len);
			if (!r.has_query && b.has_query) {
				ophttp_put(&o, "?", 1);
				ophttp_put(&o, b.query, b.query_len);
			}
		} else if (r.path[0] == '/')
			ophttp_put(&o, r.path, r.path_len);
		else {
			/* merge: the base's path up to its last '/' */
			slash = b.path_len > 0 ? memrchr(b.path, '/',
			    b.path_len) : NULL;
			if (slash == NULL)
				ophttp_put(&o, "/", 1);
			else
				ophttp_put(&o, b.path,
				    (size_t)(slash - b.path) + 1);
			ophttp_put(&o, r.path, r.path_len);
		}
	}
	if (r.has_query) {
		ophttp_put(&o, "?", 1);
		ophttp_put(&o, r.query, r.query_len);
	}
	return o.s;
}

/* curl's part what of u equals want (NULL: curl has none). */
static bool
ophttp_curl_part(CURLU *u, CURLUPart what, unsigned int flags,
    const char *want, bool nocase)
{
	char *part = NULL;
	CURLUcode rc = curl_url_get(u, what, &part, flags);
	bool same;

	if (rc != CURLUE_OK)
		return want == NULL || (what == CURLUPART_QUERY &&
		    want[0] == '\0');
	same = want != NULL && (nocase ? strcasecmp(part, want) :
	    strcmp(part, want)) == 0;
	curl_free(part);
	return same;
}

/*
 * libcurl is given t->url: it must read it as t says (scheme, host,
 * port, path, query), or the allow-list would have judged another URL.
 */
static int
ophttp_curl_agrees(const struct ophttp_target *t, char *err, size_t errlen)
{
	const char *q = strchr(t->url, '?');
	char port[16];
	bool same;
	CURLU *u;

	if ((u = curl_url()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(port, sizeof(port), "%ld", t->port);
	same = curl_url_set(u, CURLUPART_URL, t->url, 0) == CURLUE_OK &&
	    ophttp_curl_part(u, CURLUPART_SCHEME, 0, t->scheme, true) &&
	    ophttp_curl_part(u, CURLUPART_HOST, 0, t->host, true) &&
	    ophttp_curl_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT, port,
	    false) &&
	    ophttp_curl_part(u, CURLUPART_PATH, 0, t->path, false) &&
	    ophttp_curl_part(u, CURLUPART_QUERY, 0, q ? q + 1 : NULL, false);
	curl_url_cleanup(u);
	if (!same) {
		snprintf(err, errlen, "not a URL libcurl reads the same way");
		return -1;
	}
	return 0;
}

int
ophttp_target_parse(struct ophttp_target *t, const char *base,
    const char *url, char *err, size_t errlen)
{
	char *abs = NULL;
	int rc;

	memset(t, 0, sizeof(*t));
	if (base != NULL && (abs = ophttp_resolve(base, url, err,
	    errlen)) == NULL)
		return -1;
	rc = ophttp_normalise(t, abs != NULL ? abs : url, err, errlen);
	free(abs);
	if (rc == 0)
		rc = ophttp_curl_agrees(t, err, errlen);
	if (rc == -1)
		ophttp_target_free(t);
	return rc;
}

void
ophttp_target_free(struct ophttp_target *t)
{
	free(t->url);
	free(t->scheme);
	free(t->host);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

/* Whether path is prefix or lies below it, whole segments only. */
static bool
ophttp_path_within(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n == 0 || strcmp(prefix, "/") == 0)
		return true;
	if (strncmp(path, prefix, n) != 0)
		return false;
	return path[n] == '\0' || path[n] == '/' || prefix[n - 1] == '/';
}

bool
ophttp_allowed(const struct config_strlist *allow,
    const struct ophttp_target *t)
{
	struct ophttp_target e;
	char err[OPHTTP_ERR_MAX];
	bool ok = false;
	size_t i;

	for (i = 0; i < allow->count && !ok; i++) {
		if (ophttp_target_parse(&e, NULL, allow->items[i], err,
		    sizeof(err)) == -1)
			continue;
		ok = strcmp(e.scheme, t->scheme) == 0 &&
		    strcmp(e.host, t->host) == 0 && e.port == t->port &&
		    ophttp_path_within(t->path, e.path);
		ophttp_target_free(&e);
	}
	return ok;
}

bool
ophttp_header_is_auth(const char *name)
{
	return strcasecmp(name, "authorization") == 0 ||
	    strcasecmp(name, "cookie") == 0;
}

/* RFC 9110 token characters. */
static bool
ophttp_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) &&
		    strchr("!#$%&'*+-.^_`|~", *s) == NULL)
			return false;
	return true;
}

int
ophttp_header_rule(const char *name, const char *value, bool forward_auth,
    char *err, size_t errlen)
{
	const unsigned char *v;
	size_t i;

	if (!ophttp_token(name)) {
		snprintf(err, errlen, "header name \"%.64s\" is not a token",
		    name);
		return -1;
	}
	for (v = (const unsigned char *)value; *v != '\0'; v++)
		if ((*v < 0x20 && *v != '\t') || *v == 0x7f) {
			snprintf(err, errlen, "header %.64s: the value holds "
			    "CR, LF or another control character", name);
			return -1;
		}
	for (i = 0; ophttp_dropped[i] != NULL; i++)
		if (strcasecmp(name, ophttp_dropped[i]) == 0)
			return 0;
	if (strncasecmp(name, "proxy-", strlen("proxy-")) == 0)
		return 0;
	if (!forward_auth && ophttp_header_is_auth(name))
		return 0;
	return 1;
}

const char *
ophttp_redirect_method(long status, const char *method)
{
	switch (status) {
	case 301:
	case 302:
		return strcmp(method, "POST") == 0 ? "GET" : method;
	case 303:
		return strcmp(method, "HEAD") == 0 ? method : "GET";
	case 307:
	case 308:
		return method;
	default:
		return NULL;
	}
}

void
ophttp_resp_clear(struct ophttp_resp *r)
{
	cJSON_Delete(r->headers);
	memset(r, 0, sizeof(*r));
}

/* Replace r->last's value with "old<sep>add". */
static int
ophttp_resp_append(struct ophttp_resp *r, const char *sep, const char *add,
    size_t addlen)
{
	const char *old = r->last->valuestring;
	size_t olen = strlen(old), slen = strlen(sep);
	cJSON *v;
	char *buf;

	if ((buf = malloc(olen + slen + addlen)) == NULL)
		return -1;
	memcpy(buf, old, olen);
	memcpy(buf + olen, sep, slen);
	memcpy(buf + olen + slen, add, addlen);
	v = json_text(buf, olen + slen + addlen);
	free(buf);
	if (v == NULL)
		return -1;
	/* The name moves over; the old item goes with the replacement. */
	v->string = r->last->string;
	r->last->string = NULL;
	cJSON_ReplaceItemViaPointer(r->headers, r->last, v);
	r->last = v;
	return 0;
}

static int
ophttp_resp_field(struct ophttp_resp *r, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len), *val;
	char name[OPHTTP_NAME_MAX];
	size_t nlen, vlen;
	cJSON *v;

	if (colon == NULL || colon == line ||
	    (nlen = (size_t)(colon - line)) >= sizeof(name))
		return 0;	/* not a field we can name: skipped */
	memcpy(name, line, nlen);
	name[nlen] = '\0';
	ophttp_lower(name);
	val = colon + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (*val == ' ' || *val == '\t'))
		val++, vlen--;
	while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
		vlen--;
	if ((r->last = cJSON_GetObjectItemCaseSensitive(r->headers, name)) !=
	    NULL)
		return ophttp_resp_append(r, ", ", val, vlen);
	if ((v = json_text(val, vlen)) == NULL ||
	    !cJSON_AddItemToObject(r->headers, name, v)) {
		cJSON_Delete(v);
		return -1;
	}
	r->last = v;
	return 0;
}

int
ophttp_resp_line(struct ophttp_resp *r, const char *line, size_t len)
{
	r->bytes += len;
	if (r->bytes > OPHTTP_HEADERS_MAX) {
		r->too_big = true;
		return -1;
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len == 0)
		return 1;
	if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
		cJSON_Delete(r->headers);
		r->last = NULL;
		r->status = 0;
		if ((r->headers = cJSON_CreateObject()) == NULL)
			return -1;
		if (memchr(line, ' ', len) != NULL)
			r->status = strtol(memchr(line, ' ', len), NULL, 10);
		return 0;
	}
	if (r->headers == NULL)
		return 0;	/* no status line yet: not HTTP */
	/* An obsolete folded line continues the previous field. */
	if (line[0] == ' ' || line[0] == '\t') {
		while (len > 0 && (*line == ' ' || *line == '\t'))
			line++, len--;
		return r->last == NULL ? 0 :
		    ophttp_resp_append(r, " ", line, len);
	}
	return ophttp_resp_field(r, line, len);
}

/* ------------------------------------------------------------------ */
/* The operation. */

static void ophttp_on_done(struct httpc_request *req);

static void
ophttp_free(struct ophttp *s)
{
	if (s == NULL)
		return;
	httpc_request_free(s->req);
	ophttp_target_free(&s->target);
	curl_slist_free_all(s->headers);
	ophttp_resp_clear(&s->resp);
	free(s->body);
	free(s->data);
	free(s);
}

/* The end of a pending operation: its state goes before the result. */
static void
ophttp_finish(struct ophttp *s, cJSON *result)
{
	struct op_run *run = s->run;

	ophttp_free(s);
	ops_finish(run, result);
}

static void
ophttp_cancel(struct op_run *run)
{
	ophttp_free(run->state);
}

static int
ophttp_on_header(struct httpc_request *req, const char *line, size_t len)
{
	struct ophttp *s = req->arg;
	const char *next;
	int end;

	if ((end = ophttp_resp_line(&s->resp, line, len)) == -1)
		return -1;
	if (end == 1) {
		next = ophttp_redirect_method(s->resp.status, s->method);
		s->redirecting = next != NULL &&
		    s->cfg->operations.http.max_redirects > 0 &&
		    cJSON_HasObjectItem(s->resp.headers, "location");
	}
	return 0;
}

static int
ophttp_on_data(struct httpc_request *req, const char *data, size_t len)
{
	struct ophttp *s = req->arg;
	size_t max = (size_t)s->cfg->operations.http.max_bytes, take, cap;
	char *grown;

	if (s->redirecting) {
		/* Not kept; a huge one just ends the transfer early. */
		s->len += len;
		s->stopped = s->len > max;
		return s->stopped ? -1 : 0;
	}
	take = len < max - s->len ? len : max - s->len;
	if (s->len + take + 1 > s->cap) {
		cap = s->cap * 2 > s->len + take + 1 ? s->cap * 2 :
		    s->len + take + 1;
		if (cap > max + 1)
			cap = max + 1;
		if ((grown = realloc(s->data, cap)) == NULL)
			return -1;
		s->data = grown;
		s->cap = cap;
	}
	memcpy(s->data + s->len, data, take);
	s->len += take;
	if (take == len)
		return 0;
	s->truncated = s->stopped = true;
	return -1;
}

/* The operation's headers for the next hop, with the agent's own. */
static struct curl_slist *
ophttp_hop_headers(const struct ophttp *s)
{
	struct curl_slist *l = NULL, *h, *n;
	char name[OPHTTP_NAME_MAX];
	size_t len;

	for (h = s->headers; h != NULL; h = h->next) {
		len = strcspn(h->data, ":;");
		snprintf(name, sizeof(name), "%.*s", (int)len, h->data);
		if (s->foreign && ophttp_header_is_auth(name))
			continue;
		if (s->body == NULL && strcasecmp(name, "content-type") == 0)
			continue;
		if ((n = curl_slist_append(l, h->data)) == NULL)
			goto fail;
		l = n;
	}
	/* No 100-continue round trip; no made-up form content type. */
	if ((n = curl_slist_append(l, "Expect:")) == NULL)
		goto fail;
	l = n;
	if (!s->has_agent) {
		if ((n = curl_slist_append(l, "User-Agent: egressd/"
		    EGRESSD_VERSION)) == NULL)
			goto fail;
		l = n;
	}
	if (!s->has_type) {
		if ((n = curl_slist_append(l, "Content-Type:")) == NULL)
			goto fail;
		l = n;
	}
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

/* Start the request for s->target; NULL or an error result. */
static cJSON *
ophttp_start_hop(struct ophttp *s)
{
	double left = s->deadline - clock_mono();
	struct httpc_request *req;

	if (left <= 0)
		return ops_error("timeout", "no answer from %.*s within "
		    "%.3g s", OPHTTP_URL_QUOTE, s->target.url, s->timeout);
	if ((req = httpc_request_new(s->method, s->target.url)) == NULL)
		return ops_error("internal", "out of memory");
	s->req = req;
	if ((req->headers = ophttp_hop_headers(s)) == NULL ||
	    (s->body != NULL && (req->body = malloc(s->body_len + 1)) ==
	    NULL))
		return ops_error("internal", "out of memory");
	if (s->body != NULL) {
		memcpy(req->body, s->body, s->body_len + 1);
		req->body_len = s->body_len;
	}
	req->timeout_ms = (long)(left * 1000) + 1;
	req->connect_timeout_ms = req->timeout_ms;
	req->proxy = s->cfg->operations.http.proxy;
	req->no_proxy = s->cfg->operations.http.no_proxy;
	req->on_header = ophttp_on_header;
	req->on_data = ophttp_on_data;
	req->on_done = ophttp_on_done;
	req->arg = s;
	ophttp_resp_clear(&s->resp);
	s->redirecting = s->stopped = s->truncated = false;
	s->len = 0;
	if (httpc_start(s->http, req) == -1)
		return ops_error("internal", "cannot start a request to %.*s",
		    OPHTTP_URL_QUOTE, s->target.url);
	return NULL;
}

/* Whether t may be requested: allow-list and credentials. */
static cJSON *
ophttp_admit(const struct egressd_config *cfg, const struct ophttp_target *t,
    const char *what)
{
	if (t->userinfo && !cfg->operations.http.forward_auth)
		return ops_error("invalid_request", "%s: credentials in a URL "
		    "need operations.http.forward_auth", what);
	if (!ophttp_allowed(&cfg->operations.http.allow, t))
		return ops_error("capability_denied", "%s %.*s is not in "
		    "operations.http.allow", what, OPHTTP_URL_QUOTE, t->url);
	return NULL;
}

static int
ophttp_check(struct ophttp *s, const struct ophttp_target *t,
    cJSON **error)
{
	char resource[OPHTTP_RESOURCE_MAX];

	snprintf(resource, sizeof(resource), "http:%s:%ld", t->host, t->port);
	return ops_check(s->run, resource, "request", error);
}

/* Follow the current response's Location; NULL or an error result. */
static cJSON *
ophttp_redirect(struct ophttp *s)
{
	const char *loc = json_string(s->resp.headers, "location");
	const char *method = ophttp_redirect_method(s->resp.status, s->method);
	struct ophttp_target t;
	char err[OPHTTP_ERR_MAX];
	cJSON *error;

	if (s->hops == s->cfg->operations.http.max_redirects)
		return ops_error("limit_exceeded", "more than %d redirects",
		    s->hops);
	if (ophttp_target_parse(&t, s->target.url, loc, err,
	    sizeof(err)) == -1)
		return ops_error("capability_denied", "redirect to %.*s: %s",
		    OPHTTP_URL_QUOTE, loc, err);
	if ((error = ophttp_admit(s->cfg, &t, "redirect to")) != NULL ||
	    ((t.port != s->target.port ||
	    strcmp(t.host, s->target.host) != 0) &&
	    ophttp_check(s, &t, &error) == -1)) {
		ophttp_target_free(&t);
		return error;
	}
	if (strcmp(t.scheme, s->target.scheme) != 0 ||
	    strcmp(t.host, s->target.host) != 0 || t.port != s->target.port)
		s->foreign = true;
	if (strcmp(method, s->method) != 0 && strcmp(method, "GET") == 0) {
		free(s->body);
		s->body = NULL;
		s->body_len = 0;
	}
	s->method = method;
	ophttp_target_free(&s->target);
	s->target = t;
	s->hops++;
	httpc_request_free(s->req);
	s->req = NULL;
	return ophttp_start_hop(s);
}

/* len without a last character that a cut split. */
static size_t
ophttp_utf8_cut(const char *data, size_t len)
{
	unsigned char c;
	size_t i, need;

	for (i = 1; i <= 4 && i <= len; i++) {
		c = (unsigned char)data[len - i];
		if ((c & 0xc0) == 0x80)
			continue;	/* a continuation byte */
		need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		return need > i ? len - i : len;
	}
	return len;
}

/* The body as text when it is UTF-8, else base64. */
static int
ophttp_add_body(struct ophttp *s, cJSON *o)
{
	size_t len = s->truncated ? ophttp_utf8_cut(s->data, s->len) : s->len;
	bool text = json_utf8_valid(s->data, len);
	cJSON *b;

	if (text && s->data != NULL)
		s->data[len] = '\0';	/* data has room for it */
	b = text ? cJSON_CreateString(s->data != NULL ? s->data : "") :
	    json_base64(s->data, s->len);
	if (b == NULL || !cJSON_AddItemToObject(o, "body", b)) {
		cJSON_Delete(b);
		return -1;
	}
	return cJSON_AddStringToObject(o, "encoding", text ? "utf-8" :
	    "base64") != NULL ? 0 : -1;
}

static cJSON *
ophttp_result(struct ophttp *s)
{
	cJSON *o = cJSON_CreateObject(), *h = s->resp.headers;

	if (o == NULL)
		return NULL;
	s->resp.headers = NULL;
	if (cJSON_AddNumberToObject(o, "status", s->resp.status) == NULL ||
	    !cJSON_AddItemToObject(o, "headers", h != NULL ? h :
	    cJSON_CreateObject()) || ophttp_add_body(s, o) == -1 ||
	    cJSON_AddBoolToObject(o, "truncated", s->truncated) == NULL ||
	    cJSON_AddStringToObject(o, "url", s->target.url) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *
ophttp_failure(struct ophttp *s, struct httpc_request *req)
{
	char why[CURL_ERROR_SIZE + 64];

	if (s->resp.too_big)
		return ops_error("limit_exceeded", "response headers from "
		    "%.*s larger than %d bytes", OPHTTP_URL_QUOTE,
		    s->target.url, OPHTTP_HEADERS_MAX);
	if (req->result == CURLE_OPERATION_TIMEDOUT)
		return ops_error("timeout", "no answer from %.*s within "
		    "%.3g s", OPHTTP_URL_QUOTE, s->target.url, s->timeout);
	httpc_describe(req, why, sizeof(why));
	return ops_error(req->result == CURLE_COULDNT_RESOLVE_HOST ?
	    "not_found" : "internal", "request to %.*s failed: %s",
	    OPHTTP_URL_QUOTE, s->target.url, why);
}

static void
ophttp_on_done(struct httpc_request *req)
{
	struct ophttp *s = req->arg;
	cJSON *result;

	if (s->resp.too_big || (req->result != CURLE_OK &&
	    !(s->stopped && req->result == CURLE_WRITE_ERROR))) {
		ophttp_finish(s, ophttp_failure(s, req));
		return;
	}
	if (s->redirecting) {
		if ((result = ophttp_redirect(s)) != NULL)
			ophttp_finish(s, result);
		return;
	}
	ophttp_finish(s, ophttp_result(s));
}

/* ------------------------------------------------------------------ */
/* Reading the operation's body. */

static const char *
ophttp_method(const char *m)
{
	size_t i;

	for (i = 0; m != NULL && ophttp_methods[i] != NULL; i++)
		if (strcasecmp(m, ophttp_methods[i]) == 0)
			return ophttp_methods[i];
	return NULL;
}

static cJSON *
ophttp_read_headers(struct ophttp *s, const cJSON *headers)
{
	char err[OPHTTP_ERR_MAX], *line;
	struct curl_slist *l;
	const cJSON *h;
	size_t len;
	int rule;

	if (headers != NULL && !cJSON_IsNull(headers) &&
	    !cJSON_IsObject(headers))
		return ops_error("invalid_request", "headers must be an "
		    "object");
	cJSON_ArrayForEach(h, headers) {
		if (!cJSON_IsString(h))
			return ops_error("invalid_request", "header %.64s: the "
			    "value must be a string", h->string);
		rule = ophttp_header_rule(h->string, h->valuestring,
		    s->cfg->operations.http.forward_auth, err, sizeof(err));
		if (rule == -1)
			return ops_error("invalid_request", "%s", err);
		if (rule == 0)
			continue;
		if (strcasecmp(h->string, "content-type") == 0)
			s->has_type = true;
		if (strcasecmp(h->string, "user-agent") == 0)
			s->has_agent = true;
		/* "Name;" is libcurl's way to send an empty value. */
		len = strlen(h->string) + strlen(h->valuestring) + 3;
		if ((line = malloc(len)) == NULL)
			return ops_error("internal", "out of memory");
		snprintf(line, len, h->valuestring[0] ? "%s: %s" : "%s;",
		    h->string, h->valuestring);
		l = curl_slist_append(s->headers, line);
		free(line);
		if (l == NULL)
			return ops_error("internal", "out of memory");
		s->headers = l;
	}
	return NULL;
}

static cJSON *
ophttp_read_body(struct ophttp *s, const cJSON *body)
{
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(body, "body");
	int64_t max = s->cfg->operations.http.max_bytes;

	if (b == NULL || cJSON_IsNull(b))
		return NULL;
	if (json_has_nul(b))
		return ops_error("invalid_request", "body holds a NUL "
		    "character (\\u0000), which a text body cannot carry");
	if (!cJSON_IsString(b))
		return ops_error("invalid_request", "body must be a string");
	if (strcmp(s->method, "GET") == 0 || strcmp(s->method, "HEAD") == 0)
		return ops_error("invalid_request", "a %s request has no body",
		    s->method);
	s->body_len = strlen(b->valuestring);
	if ((int64_t)s->body_len > max)
		return ops_error("limit_exceeded", "request body of %zu bytes "
		    "is larger than operations.http.max_bytes (%lld)",
		    s->body_len, (long long)max);
	if ((s->body = strdup(b->valuestring)) == NULL)
		return ops_error("internal", "out of memory");
	return NULL;
}

static cJSON *
ophttp_read(struct ophttp *s, const cJSON *body)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout");
	const char *url = json_string(body, "url");
	char err[OPHTTP_ERR_MAX];
	cJSON *error;

	if ((s->method = ophttp_method(json_string(body, "method"))) == NULL)
		return ops_error("invalid_request", "method must be one of "
		    "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	if (url == NULL)
		return ops_error("invalid_request", "url must be a string");
	if (ophttp_target_parse(&s->target, NULL, url, err,
	    sizeof(err)) == -1)
		return ops_error("invalid_request", "url: %s", err);
	s->timeout = s->cfg->operations.http.timeout;
	if (t != NULL && !cJSON_IsNull(t)) {
		if (!cJSON_IsNumber(t) || !(t->valuedouble > 0))
			return ops_error("invalid_request", "timeout must be "
			    "a positive number of seconds");
		if (t->valuedouble < s->timeout)
			s->timeout = t->valuedouble;
	}
	if ((error = ophttp_read_headers(s, cJSON_GetObjectItemCaseSensitive(
	    body, "headers"))) != NULL ||
	    (error = ophttp_read_body(s, body)) != NULL)
		return error;
	return ophttp_admit(s->cfg, &s->target, "URL");
}

enum ops_status
op_http(struct op_run *run, const cJSON *body, cJSON **result)
{
	const struct op_context *ctx = run->ctx;
	struct ophttp *s;

	if (ctx == NULL || ctx->cfg == NULL || ctx->http == NULL) {
		*result = ops_error("internal", "no HTTP client in this "
		    "worker");
		return OPS_DONE;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		*result = ops_error("internal", "out of memory");
		return OPS_DONE;
	}
	s->run = run;
	s->cfg = ctx->cfg;
	s->http = ctx->http;
	if ((*result = ophttp_read(s, body)) != NULL ||
	    ophttp_check(s, &s->target, result) == -1)
		goto done;
	s->deadline = clock_mono() + s->timeout;
	if ((*result = ophttp_start_hop(s)) != NULL)
		goto done;
	run->state = s;
	run->cancel = ophttp_cancel;
	return OPS_PENDING;
done:
	ophttp_free(s);
	return OPS_DONE;
}
