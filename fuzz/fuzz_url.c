/*
 * fuzz_url: libFuzzer target for the http handler's URL normaliser and
 * allow-list matcher (src/ops/http.c, http_priv.h: ophttp_target_parse,
 * ophttp_allowed), both pure.
 *
 * The input, up to its first NUL, is split at newlines: an allow-list
 * entry, a URL, and optionally a base URL the URL is resolved against (as
 * a redirect's Location is).  What must hold:
 *
 * - a normal form is printable ASCII without '\', '#' or a lower-case
 *   percent-encoding, and never encodes an unreserved character; its
 *   scheme is http or https, its host lower case, its port 1..65535; its
 *   path starts with '/' and holds no "." or ".." segment (nor one with
 *   parameters, "..;x"), no encoded '/' or '\'; the URL's path is that
 *   path;
 * - normalising a normal form gives it back unchanged (scheme, host,
 *   port, path, userinfo too);
 * - a URL with a '\' anywhere, or %2F or %5C in its path, is refused;
 * - the matcher's answer for the entry equals a restatement of its rule
 *   (same scheme, host and port; the entry's path "/", or equal to the
 *   URL's, or a prefix of it ending at a '/' of either), and a URL it
 *   admits has its path below the entry's.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "../src/ops/http_priv.h"

#define FUZZ_MAX	4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

static bool
fuzz_unreserved(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Whether s holds %2F or %5C in any case. */
static bool
fuzz_encoded_separator(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 2 < n; i++)
		if (s[i] == '%' && ((s[i + 1] == '2' &&
		    tolower((unsigned char)s[i + 2]) == 'f') ||
		    (s[i + 1] == '5' &&
		    tolower((unsigned char)s[i + 2]) == 'c')))
			return true;
	return false;
}

/* The shape of a normal form. */
static void
fuzz_normal(const struct ophttp_target *t)
{
	const char *p, *seg, *path;
	size_t n;
	int c;

	fuzz_check(strcmp(t->scheme, "http") == 0 ||
	    strcmp(t->scheme, "https") == 0);
	fuzz_check(t->port >= 1 && t->port <= 65535);
	fuzz_check(t->host[0] != '\0');
	for (p = t->host; *p != '\0'; p++)
		fuzz_check(!isupper((unsigned char)*p));
	for (p = t->url; *p != '\0'; p++) {
		c = (unsigned char)*p;
		fuzz_check(c > 0x20 && c < 0x7f && c != '\\' && c != '#');
		if (c != '%')
			continue;
		fuzz_check(isxdigit((unsigned char)p[1]) &&
		    isxdigit((unsigned char)p[2]));
		fuzz_check(!islower((unsigned char)p[1]) &&
		    !islower((unsigned char)p[2]));
		c = (int)strtol((char[]){ p[1], p[2], '\0' }, NULL, 16);
		fuzz_check(!fuzz_unreserved(c));
	}
	fuzz_check(t->path[0] == '/');
	fuzz_check(strchr(t->path, '\\') == NULL);
	fuzz_check(!fuzz_encoded_separator(t->path, strlen(t->path)));
	for (seg = t->path + 1;; seg += n + 1) {
		n = strcspn(seg, "/");
		fuzz_check(!(n == 1 && seg[0] == '.'));
		fuzz_check(!(n == 2 && seg[0] == '.' && seg[1] == '.'));
		fuzz_check(strncmp(seg, ".;", 2) != 0 &&
		    strncmp(seg, "..;", 3) != 0);
		if (seg[n] == '\0')
			break;
	}
	/* the URL's path, after "scheme://authority", is t->path */
	path = strstr(t->url, "://") + 3;
	path += strcspn(path, "/");
	fuzz_check(strncmp(path, t->path, strlen(t->path)) == 0);
	fuzz_check(path[strlen(t->path)] == '\0' ||
	    path[strlen(t->path)] == '?');
}

/* Normalising a normal form changes nothing. */
static void
fuzz_fixed_point(const struct ophttp_target *t)
{
	struct ophttp_target again;
	char err[256];

	fuzz_check(ophttp_target_parse(&again, NULL, t->url, err,
	    sizeof(err)) == 0);
	fuzz_check(strcmp(again.url, t->url) == 0);
	fuzz_check(strcmp(again.scheme, t->scheme) == 0);
	fuzz_check(strcmp(again.host, t->host) == 0);
	fuzz_check(strcmp(again.path, t->path) == 0);
	fuzz_check(again.port == t->port);
	fuzz_check(again.userinfo == t->userinfo);
	ophttp_target_free(&again);
}

/* The raw URL's path: after "http(s)://authority", before '?' or '#'. */
static bool
fuzz_raw_path(const char *url, const char **path, size_t *n)
{
	const char *p = strstr(url, "://");

	if (p == NULL || (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0))
		return false;
	p += 3;
	p += strcspn(p, "/?#");
	*path = p;
	*n = strcspn(p, "?#");
	return true;
}

/* The matcher's rule, restated. */
static bool
fuzz_within(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strcmp(prefix, "/") == 0 || strcmp(path, prefix) == 0)
		return true;
	return strncmp(path, prefix, n) == 0 &&
	    (prefix[n - 1] == '/' || path[n] == '/');
}

static void
fuzz_allow(char *entry, const struct ophttp_target *t)
{
	struct config_strlist allow = { &entry, 1 };
	struct ophttp_target e;
	char err[256];
	bool want = false, got = ophttp_allowed(&allow, t);

	if (ophttp_target_parse(&e, NULL, entry, err, sizeof(err)) == 0) {
		want = strcmp(e.scheme, t->scheme) == 0 &&
		    strcmp(e.host, t->host) == 0 && e.port == t->port &&
		    fuzz_within(t->path, e.path);
		if (got && strcmp(e.path, "/") != 0)
			fuzz_check(strncmp(t->path, e.path,
			    strlen(e.path)) == 0);
		ophttp_target_free(&e);
	}
	fuzz_check(got == want);
}

static void
fuzz_one(char *entry, const char *base, const char *url)
{
	struct ophttp_target t;
	char err[256];
	const char *path;
	size_t n;
	int rc;

	err[0] = '\0';
	rc = ophttp_target_parse(&t, base, url, err, sizeof(err));
	if (strchr(url, '\\') != NULL)
		fuzz_check(rc == -1);
	if (base == NULL && fuzz_raw_path(url, &path, &n) &&
	    fuzz_encoded_separator(path, n))
		fuzz_check(rc == -1);
	if (rc == -1) {
		fuzz_check(err[0] != '\0');
		return;
	}
	fuzz_normal(&t);
	fuzz_fixed_point(&t);
	fuzz_allow(entry, &t);
	ophttp_target_free(&t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[FUZZ_MAX + 1], *entry, *url, *base;
	struct ophttp_target b;
	char err[256];

	if (size > FUZZ_MAX)
		size = FUZZ_MAX;
	memcpy(buf, data, size);
	buf[size] = '\0';
	entry = buf;
	if ((url = strchr(entry, '\n')) == NULL)
		return 0;
	*url++ = '\0';
	if ((base = strchr(url, '\n')) != NULL)
		*base++ = '\0';
	fuzz_one(entry, NULL, url);
	if (base != NULL && ophttp_target_parse(&b, NULL, base, err,
	    sizeof(err)) == 0) {
		fuzz_one(entry, b.url, url);
		ophttp_target_free(&b);
	}
	return 0;
}
