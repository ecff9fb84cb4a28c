/*
 * ops/argv_template: an argv template filled in with an operation's
 * arguments.  The rules are in include/ops/argv_template.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/jsonutil.h"
#include "ops/argv_template.h"

#define ARGVT_NUM_LEN	32	/* a number written out */
#define ARGVT_EXACT_MAX	1e15	/* integers below this print without a dot */
/* "%.*s" arguments for a name of n bytes in a message: 64 at most. */
#define ARGVT_MSG_NAME(n)	(int)((n) < 64 ? (n) : 64)

/* A growing string for the expansion of one argv template string. */
struct argvt_buf {
	char *p;
	size_t len, cap;
};

static bool
argvt_name_char(char c, bool first)
{
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (!first && c >= '0' && c <= '9');
}

/* Length of the parameter name in a placeholder at p ('{'), or 0. */
static size_t
argvt_placeholder(const char *p)
{
	size_t n = 0;

	if (p[0] != '{')
		return 0;
	while (argvt_name_char(p[n + 1], n == 0))
		n++;
	return n > 0 && p[n + 1] == '}' ? n : 0;
}

/* The argument named by the n bytes at name, case for case, or NULL. */
static const cJSON *
argvt_arg(const cJSON *args, const char *name, size_t n)
{
	const cJSON *a;

	cJSON_ArrayForEach(a, args)
		if (a->string != NULL && strncmp(a->string, name, n) == 0 &&
		    a->string[n] == '\0')
			return a;
	return NULL;
}

/* Whether any of the argc strings of tmpl has the placeholder {name}. */
static bool
argvt_uses(char *const *tmpl, size_t argc, const char *name)
{
	size_t i, n, len = strlen(name);
	const char *p;

	for (i = 0; i < argc; i++)
		for (p = tmpl[i]; *p != '\0'; p++)
			if ((n = argvt_placeholder(p)) > 0 && n == len &&
			    strncmp(p + 1, name, len) == 0)
				return true;
	return false;
}

/* Why v may not be an argument value, or NULL when it may. */
static const char *
argvt_value_problem(const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t n = strlen(v), i, len;

	if (n == 0)
		return "must not be empty";
	if (n > ARGVT_VALUE_MAX)
		return "is longer than 4096 bytes";
	for (i = 0; i < n; i += len) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return "must not contain control characters";
		if ((len = json_utf8_len(v + i, n - i)) == 0)
			return "must be valid UTF-8";
	}
	return NULL;
}

/* The text of an argument: a string, or a number written into num. */
static const char *
argvt_value_text(const cJSON *v, char *num, size_t numlen)
{
	double d;

	if (cJSON_IsString(v))
		return v->valuestring;
	if (!cJSON_IsNumber(v))
		return NULL;
	d = v->valuedouble;
	if (d > -ARGVT_EXACT_MAX && d < ARGVT_EXACT_MAX &&
	    (double)(long long)d == d)
		snprintf(num, numlen, "%lld", (long long)d);
	else
		snprintf(num, numlen, "%.17g", d);
	return num;
}

static int
argvt_append(struct argvt_buf *b, const char *s, size_t n)
{
	size_t cap = b->cap ? b->cap : 64;
	char *p;

	while (cap < b->len + n + 1)
		cap *= 2;
	if (cap != b->cap) {
		if ((p = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/*
 * One argv string from template t; dashes_before: a literal "--" came
 * earlier.  NULL with why set (a user error) or, for memory, why empty.
 */
static char *
argvt_expand_one(const char *t, const cJSON *args, bool dashes_before,
    char *why, size_t whylen)
{
	struct argvt_buf b = { NULL, 0, 0 };
	char num[ARGVT_NUM_LEN];
	const char *p, *v, *bad;
	const cJSON *a;
	size_t n;

	why[0] = '\0';
	for (p = t; *p != '\0'; p += n > 0 ? n + 2 : 1) {
		if ((n = argvt_placeholder(p)) == 0) {
			if (argvt_append(&b, p, 1) == -1)
				goto fail;
			continue;
		}
		a = argvt_arg(args, p + 1, n);
		if ((v = argvt_value_text(a, num, sizeof(num))) == NULL) {
			snprintf(why, whylen, "args.%.*s: %s",
			    ARGVT_MSG_NAME(n), p + 1, a != NULL ?
			    "must be a string or a number" : "is missing");
			goto fail;
		}
		bad = argvt_value_problem(v);
		if (bad == NULL && p == t && v[0] == '-' && !dashes_before)
			bad = "must not start with \"-\"";
		if (bad != NULL) {
			snprintf(why, whylen, "args.%.*s: %s",
			    ARGVT_MSG_NAME(n), p + 1, bad);
			goto fail;
		}
		if (argvt_append(&b, v, strlen(v)) == -1)
			goto fail;
	}
	if (b.p == NULL && argvt_append(&b, "", 0) == -1)
		goto fail;
	return b.p;
fail:
	free(b.p);
	return NULL;
}

void
argvt_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

char **
argvt_expand(char *const *tmpl, size_t argc, const cJSON *args,
    const char *command, char *why, size_t whylen)
{
	const cJSON *a;
	bool dashes = false;
	char **argv;
	size_t i;

	why[0] = '\0';
	cJSON_ArrayForEach(a, args) {
		if (!argvt_uses(tmpl, argc, a->string)) {
			snprintf(why, whylen, "args.%.64s: not a parameter of "
			    "command %.64s", a->string, command);
			return NULL;
		}
	}
	if ((argv = calloc(argc + 1, sizeof(*argv))) == NULL)
		return NULL;
	for (i = 0; i < argc; i++) {
		argv[i] = argvt_expand_one(tmpl[i], args, dashes, why, whylen);
		if (argv[i] == NULL) {
			argvt_free(argv);
			return NULL;
		}
		dashes = dashes || strcmp(tmpl[i], "--") == 0;
	}
	return argv;
}
