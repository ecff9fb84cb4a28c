/*
 * fuzz_argv: libFuzzer target for the command handler's argv template
 * expansion (argvt_expand, include/ops/argv_template.h).
 *
 * The input is a template and the arguments: up to the first NUL, one
 * argv string per line (at most FUZZ_ARGC_MAX, a line may be empty); after
 * it, the "args" object as JSON, read as the agent reads a body (no NUL:
 * no arguments; anything but an object or null is not a valid call).
 *
 * The result is compared with a plain restatement of the header's rules:
 * placeholders "{[A-Za-z_][A-Za-z0-9_]*}" of any length, looked up case
 * for case; a value is a string, or a number written as the header says,
 * of 1..ARGVT_VALUE_MAX bytes of UTF-8 (decoded here on its own) without
 * a byte below 0x20 or 0x7f, and starts with '-' only where it does not
 * start its argv string or after a literal "--" string.  So:
 *
 * - the expansion succeeds exactly when the rules allow it: every
 *   placeholder has its argument, a valid value, and every argument has a
 *   placeholder somewhere in the template;
 * - then the output has exactly one string per template string, each the
 *   template's literal text unchanged with each placeholder replaced by
 *   its value's text (values are never expanded again);
 * - an output string whose template starts with a placeholder, with no
 *   "--" string before it, does not start with '-';
 * - no substituted value holds a control character, a NUL or invalid
 *   UTF-8, and a number's text reads back as the same double;
 * - a refusal names the first offending argument (arguments in the
 *   object's order, then placeholders in the template's) with a reason
 *   that applies to it, and a shorter message buffer only cuts the
 *   message;
 * - expanding again gives the same result.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/jsonutil.h"
#include "ops/argv_template.h"

#define FUZZ_ARGC_MAX	32
#define FUZZ_BODY_MAX	(1 << 20)	/* orchestrator.max_body_bytes */
#define FUZZ_WHY_LEN	256		/* command.c's buffer */
#define FUZZ_COMMAND	"cmd"

/* The reasons a refusal may give (after "args.NAME: "). */
#define R_NOT_PARAM	"not a parameter of command " FUZZ_COMMAND
#define R_MISSING	"is missing"
#define R_TYPE		"must be a string or a number"
#define R_EMPTY		"must not be empty"
#define R_LONG		"is longer than 4096 bytes"
#define R_CONTROL	"must not contain control characters"
#define R_UTF8		"must be valid UTF-8"
#define R_DASH		"must not start with \"-\""

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok)
{
	if (!ok)
		abort();
}

/* Length of the name of a placeholder at p, or 0 (no length limit). */
static size_t
ref_placeholder(const char *p)
{
	static const char first[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz_";
	static const char rest[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz_0123456789";
	size_t n;

	if (p[0] != '{' || p[1] == '\0' || strchr(first, p[1]) == NULL)
		return 0;
	n = 1 + strspn(p + 2, rest);
	return p[n + 1] == '}' ? n : 0;
}

/* The argument named by the n bytes at name: the first, case for case. */
static const cJSON *
ref_arg(const cJSON *args, const char *name, size_t n)
{
	const cJSON *a;

	cJSON_ArrayForEach(a, args)
		if (strlen(a->string) == n && memcmp(a->string, name, n) == 0)
			return a;
	return NULL;
}

/* Whether some placeholder of the template is named key. */
static bool
ref_used(char *const *tmpl, size_t argc, const char *key)
{
	size_t i, n;
	const char *p;

	for (i = 0; i < argc; i++)
		for (p = tmpl[i]; *p != '\0'; p++)
			if ((n = ref_placeholder(p)) > 0 &&
			    n == strlen(key) && memcmp(p + 1, key, n) == 0)
				return true;
	return false;
}

/* Length of the UTF-8 sequence at s (NUL-terminated), or 0 if invalid. */
static size_t
ref_utf8(const unsigned char *s)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] < 0x80)
		return s[0] != 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/* Whether reason applies to the value v at the start of its string. */
static bool
ref_reason_applies(const char *v, const char *reason, bool may_dash)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t n = strlen(v), i, len;
	bool control = false, utf8 = true;

	for (i = 0; i < n; i++)
		control = control || p[i] < 0x20 || p[i] == 0x7f;
	for (i = 0; i < n; i += len)
		if ((len = ref_utf8(p + i)) == 0) {
			utf8 = false;
			break;
		}
	if (strcmp(reason, R_EMPTY) == 0)
		return n == 0;
	if (strcmp(reason, R_LONG) == 0)
		return n > ARGVT_VALUE_MAX;
	if (strcmp(reason, R_CONTROL) == 0)
		return control;
	if (strcmp(reason, R_UTF8) == 0)
		return !utf8;
	/* Only when nothing else is wrong with it. */
	if (strcmp(reason, R_DASH) == 0)
		return n > 0 && n <= ARGVT_VALUE_MAX && !control && utf8 &&
		    v[0] == '-' && !may_dash;
	return false;
}

/* Whether v is a valid value; see ref_reason_applies. */
static bool
ref_value_ok(const char *v, bool may_dash)
{
	return !ref_reason_applies(v, R_EMPTY, may_dash) &&
	    !ref_reason_applies(v, R_LONG, may_dash) &&
	    !ref_reason_applies(v, R_CONTROL, may_dash) &&
	    !ref_reason_applies(v, R_UTF8, may_dash) &&
	    !ref_reason_applies(v, R_DASH, may_dash);
}

/* A value's text as the header describes it, or NULL (not a value). */
static const char *
ref_text(const cJSON *a, char *num, size_t numlen)
{
	double d;

	if (cJSON_IsString(a))
		return a->valuestring;
	if (!cJSON_IsNumber(a))
		return NULL;
	d = a->valuedouble;
	/* An integer: rounding it to no decimals gives it back. */
	snprintf(num, numlen, "%.0f", d);
	if ((d < 0 ? -d : d) < 1e15 && strtod(num, NULL) == d)
		snprintf(num, numlen, "%lld", (long long)d);
	else
		snprintf(num, numlen, "%.17g", d);
	/* Either way the text is the same number (NaN aside). */
	fuzz_check(d != d || strtod(num, NULL) == d);
	return num;
}

/* Where a value went in the output: string i, at off, len bytes. */
struct ref_value {
	size_t i, off, len;
};

/* What argvt_expand must give: an argv, or the first refusal. */
struct ref_result {
	bool ok;
	char *out[FUZZ_ARGC_MAX];	/* when ok */
	struct ref_value *val;
	size_t nval;
	char num[32];			/* the last number's text */
	char name[80];			/* when refused: "args.NAME: " */
	const char *value;		/* the refused value, if any */
	bool may_dash;
	const char *fixed;		/* a reason that is certain, or NULL */
};

static void
ref_append(char **s, size_t *len, const char *p, size_t n)
{
	char *q = realloc(*s, *len + n + 1);

	fuzz_check(q != NULL);
	memcpy(q + *len, p, n);
	*len += n;
	q[*len] = '\0';
	*s = q;
}

static void
ref_refuse(struct ref_result *r, const char *name, size_t n,
    const char *fixed, const char *value, bool may_dash)
{
	r->ok = false;
	snprintf(r->name, sizeof(r->name), "args.%.*s: ",
	    (int)(n < 64 ? n : 64), name);
	r->fixed = fixed;
	r->value = value;
	r->may_dash = may_dash;
}

static void
ref_expand(struct ref_result *r, char *const *tmpl, size_t argc,
    const cJSON *args)
{
	struct ref_value *val;
	const cJSON *a;
	const char *p, *v;
	bool dashes = false, may_dash;
	size_t i, n, len;

	memset(r, 0, sizeof(*r));
	r->ok = true;
	cJSON_ArrayForEach(a, args)
		if (!ref_used(tmpl, argc, a->string)) {
			ref_refuse(r, a->string, strlen(a->string),
			    R_NOT_PARAM, NULL, false);
			return;
		}
	for (i = 0; i < argc; i++) {
		len = 0;
		ref_append(&r->out[i], &len, "", 0);
		for (p = tmpl[i]; *p != '\0'; p += n > 0 ? n + 2 : 1) {
			if ((n = ref_placeholder(p)) == 0) {
				ref_append(&r->out[i], &len, p, 1);
				continue;
			}
			if ((a = ref_arg(args, p + 1, n)) == NULL) {
				ref_refuse(r, p + 1, n, R_MISSING, NULL, false);
				return;
			}
			may_dash = p != tmpl[i] || dashes;
			if ((v = ref_text(a, r->num, sizeof(r->num))) == NULL) {
				ref_refuse(r, p + 1, n, R_TYPE, NULL, false);
				return;
			}
			if (!ref_value_ok(v, may_dash)) {
				ref_refuse(r, p + 1, n, NULL, v, may_dash);
				return;
			}
			val = realloc(r->val, (r->nval + 1) * sizeof(*val));
			fuzz_check(val != NULL);
			r->val = val;
			val[r->nval].i = i;
			val[r->nval].off = len;
			val[r->nval++].len = strlen(v);
			ref_append(&r->out[i], &len, v, strlen(v));
		}
		dashes = dashes || strcmp(tmpl[i], "--") == 0;
	}
}

static void
ref_free(struct ref_result *r)
{
	size_t i;

	for (i = 0; i < FUZZ_ARGC_MAX; i++)
		free(r->out[i]);
	free(r->val);
}

/* A refusal's message against the restatement's. */
static void
fuzz_refusal(const struct ref_result *r, const char *why)
{
	size_t pre = strlen(r->name);
	const char *reason = why + pre;

	fuzz_check(strncmp(why, r->name, pre) == 0);
	if (r->fixed != NULL)
		fuzz_check(strcmp(reason, r->fixed) == 0);
	else
		fuzz_check(ref_reason_applies(r->value, reason, r->may_dash));
}

/* An accepted expansion against the restatement and the invariants. */
static void
fuzz_accepted(const struct ref_result *r, char *const *tmpl, size_t argc,
    const cJSON *args, char **out)
{
	const unsigned char *v;
	const cJSON *a;
	bool dashes = false;
	size_t i, j, len;

	for (i = 0; i < argc; i++) {
		fuzz_check(out[i] != NULL);
		fuzz_check(strcmp(out[i], r->out[i]) == 0);
		if (tmpl[i][0] == '{' && ref_placeholder(tmpl[i]) > 0 &&
		    !dashes)
			fuzz_check(out[i][0] != '-');
		dashes = dashes || strcmp(tmpl[i], "--") == 0;
	}
	fuzz_check(out[argc] == NULL);
	/* The values in the output: UTF-8 without controls, 1..max bytes. */
	for (j = 0; j < r->nval; j++) {
		fuzz_check(r->val[j].len >= 1 &&
		    r->val[j].len <= ARGVT_VALUE_MAX);
		v = (const unsigned char *)out[r->val[j].i] + r->val[j].off;
		for (i = 0; i < r->val[j].len; i += len) {
			fuzz_check(v[i] >= 0x20 && v[i] != 0x7f);
			fuzz_check((len = ref_utf8(v + i)) > 0);
		}
		fuzz_check(i == r->val[j].len);
	}
	/* No argument left over. */
	cJSON_ArrayForEach(a, args)
		fuzz_check(ref_used(tmpl, argc, a->string));
}

static void
fuzz_expand(char *const *tmpl, size_t argc, const cJSON *args, size_t small)
{
	struct ref_result *r = malloc(sizeof(*r));
	char why[FUZZ_WHY_LEN], why2[FUZZ_WHY_LEN], tiny[FUZZ_WHY_LEN];
	char **out, **again, **cut;
	size_t i;

	fuzz_check(r != NULL);
	ref_expand(r, tmpl, argc, args);
	out = argvt_expand(tmpl, argc, args, FUZZ_COMMAND, why, sizeof(why));
	again = argvt_expand(tmpl, argc, args, FUZZ_COMMAND, why2,
	    sizeof(why2));
	cut = argvt_expand(tmpl, argc, args, FUZZ_COMMAND, tiny, small);
	fuzz_check((out != NULL) == r->ok);
	fuzz_check((again != NULL) == r->ok && (cut != NULL) == r->ok);
	if (out != NULL) {
		fuzz_accepted(r, tmpl, argc, args, out);
		for (i = 0; i <= argc; i++) {
			fuzz_check((again[i] == NULL) == (out[i] == NULL));
			fuzz_check(out[i] == NULL ||
			    strcmp(out[i], again[i]) == 0);
			fuzz_check((cut[i] == NULL) == (out[i] == NULL));
			fuzz_check(out[i] == NULL ||
			    strcmp(out[i], cut[i]) == 0);
		}
	} else {
		fuzz_check(why[0] != '\0');
		fuzz_refusal(r, why);
		fuzz_check(strcmp(why, why2) == 0);
		/* A short buffer: the same message, cut. */
		fuzz_check(strlen(tiny) == (strlen(why) < small ?
		    strlen(why) : small - 1));
		fuzz_check(strncmp(why, tiny, strlen(tiny)) == 0);
	}
	argvt_free(out);
	argvt_free(again);
	argvt_free(cut);
	ref_free(r);
	free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nul = memchr(data, '\0', size);
	size_t tlen = nul != NULL ? (size_t)(nul - (const char *)data) : size;
	char *text, *tmpl[FUZZ_ARGC_MAX + 1], *line, err[64];
	cJSON *args = NULL;
	size_t argc = 0;

	if (nul != NULL) {
		args = json_parse_limited(nul + 1, size - tlen - 1,
		    FUZZ_BODY_MAX, err, sizeof(err));
		/* The handler refuses these before expanding. */
		if (args != NULL && !cJSON_IsObject(args) &&
		    !cJSON_IsNull(args)) {
			cJSON_Delete(args);
			return 0;
		}
	}
	fuzz_check((text = malloc(tlen + 1)) != NULL);
	memcpy(text, data, tlen);
	text[tlen] = '\0';
	for (line = text; argc < FUZZ_ARGC_MAX; line++) {
		tmpl[argc++] = line;
		if ((line = strchr(line, '\n')) == NULL)
			break;
		*line = '\0';
	}
	tmpl[argc] = NULL;
	fuzz_expand(tmpl, argc, args, 1 + size % 48);
	cJSON_Delete(args);
	free(text);
	return 0;
}
