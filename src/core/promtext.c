/* promtext: Prometheus text read back into JSON (see core/promtext.h). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/promtext.h"

#define PROMTEXT_NAME_MAX	256	/* metric and label names */
#define PROMTEXT_VALUE_MAX	4096	/* a label value or help text */

/* One line, without its newline. */
struct promtext_line {
	const char	*p;
	size_t		 len;
	int		 no;	/* 1-based, for messages */
};

static int
promtext_name_char(char c, int first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' ||
	    (!first && isdigit((unsigned char)c));
}

/* A name at *p (advanced past it) into out; -1 when there is none. */
static int
promtext_name(const char **p, const char *end, char *out)
{
	size_t n = 0;

	while (*p + n < end && promtext_name_char((*p)[n], n == 0) &&
	    n < PROMTEXT_NAME_MAX - 1)
		n++;
	if (n == 0)
		return -1;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n;
	return 0;
}

/*
 * Text up to stop (end of line when 0) with \\, \n (and, in quotes, \")
 * decoded into out; *p is left on stop.  -1 on a bad escape, an
 * unterminated quote or text too long.
 */
static int
promtext_unescape(const char **p, const char *end, char stop, char *out)
{
	size_t n = 0;
	char c;

	while (*p < end && **p != stop) {
		c = *(*p)++;
		if (c == '\\') {
			if (*p == end)
				return -1;
			c = *(*p)++;
			if (c == 'n')
				c = '\n';
			else if (c != '\\' && !(stop == '"' && c == '"'))
				return -1;
		}
		if (n == PROMTEXT_VALUE_MAX - 1)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return stop != '\0' && *p == end ? -1 : 0;
}

/* {name="value",...} at *p into labels; -1 when malformed. */
static int
promtext_labels(const char **p, const char *end, cJSON *labels)
{
	char name[PROMTEXT_NAME_MAX], value[PROMTEXT_VALUE_MAX];

	(*p)++;		/* '{' */
	while (*p < end && **p != '}') {
		if (promtext_name(p, end, name) == -1 || *p + 1 >= end ||
		    (*p)[0] != '=' || (*p)[1] != '"')
			return -1;
		*p += 2;
		if (promtext_unescape(p, end, '"', value) == -1)
			return -1;
		(*p)++;		/* the closing quote */
		if (cJSON_AddStringToObject(labels, name, value) == NULL)
			return -1;
		if (*p < end && **p == ',')
			(*p)++;
	}
	if (*p == end)
		return -1;
	(*p)++;		/* '}' */
	return 0;
}

/* The value's token as a number, or as the string of a non-finite one. */
static cJSON *
promtext_value(const char *tok)
{
	char *endp;
	double v = strtod(tok, &endp);

	if (endp == tok || *endp != '\0')
		return NULL;
	if (isnan(v))
		return cJSON_CreateString("NaN");
	if (isinf(v))
		return cJSON_CreateString(v > 0 ? "+Inf" : "-Inf");
	return cJSON_CreateNumber(v);
}

/* Whether sample belongs to family: its name, or a histogram's series. */
static int
promtext_member(const char *family, const char *sample)
{
	static const char *const suffixes[] = { "", "_bucket", "_sum",
	    "_count" };
	size_t n = strlen(family), i;

	if (strncmp(family, sample, n) != 0)
		return 0;
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (strcmp(sample + n, suffixes[i]) == 0)
			return 1;
	return 0;
}

/* The family named name, the last one, or a new one at the end of list. */
static cJSON *
promtext_family(cJSON *list, const char *name, int exact)
{
	cJSON *last = cJSON_GetArrayItem(list, cJSON_GetArraySize(list) - 1);
	const char *have = last ? cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(last, "name")) : NULL;
	cJSON *f;

	if (have != NULL && (exact ? strcmp(have, name) == 0 :
	    promtext_member(have, name)))
		return last;
	if ((f = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddItemToArray(list, f);
	if (cJSON_AddStringToObject(f, "name", name) == NULL ||
	    cJSON_AddStringToObject(f, "type", "untyped") == NULL ||
	    cJSON_AddStringToObject(f, "help", "") == NULL ||
	    cJSON_AddArrayToObject(f, "samples") == NULL)
		return NULL;
	return f;
}

/* "# HELP name text" or "# TYPE name type"; other comments are skipped. */
static int
promtext_comment(const struct promtext_line *l, cJSON *list)
{
	const char *p = l->p + 1, *end = l->p + l->len;
	char name[PROMTEXT_NAME_MAX], text[PROMTEXT_VALUE_MAX];
	const char *key;
	cJSON *f;

	while (p < end && *p == ' ')
		p++;
	if ((size_t)(end - p) > 5 && strncmp(p, "HELP ", 5) == 0)
		key = "help";
	else if ((size_t)(end - p) > 5 && strncmp(p, "TYPE ", 5) == 0)
		key = "type";
	else
		return 0;
	p += 5;
	if (promtext_name(&p, end, name) == -1 || (p < end && *p != ' '))
		return -1;
	if (p < end)
		p++;
	if (promtext_unescape(&p, end, '\0', text) == -1 ||
	    (f = promtext_family(list, name, 1)) == NULL)
		return -1;
	return cJSON_ReplaceItemInObjectCaseSensitive(f, key,
	    cJSON_CreateString(text)) ? 0 : -1;
}

/* name{labels} value [timestamp] */
static int
promtext_sample(const struct promtext_line *l, cJSON *list)
{
	const char *p = l->p, *end = l->p + l->len;
	char name[PROMTEXT_NAME_MAX], tok[64];
	cJSON *s, *labels, *v, *f;
	size_t n;

	if (promtext_name(&p, end, name) == -1 ||
	    (s = cJSON_CreateObject()) == NULL)
		return -1;
	if (cJSON_AddStringToObject(s, "name", name) == NULL ||
	    (labels = cJSON_AddObjectToObject(s, "labels")) == NULL ||
	    (p < end && *p == '{' &&
	    promtext_labels(&p, end, labels) == -1) || p == end || *p != ' ')
		goto fail;
	for (p++, n = 0; p + n < end && p[n] != ' '; n++)
		;
	if (n == 0 || n >= sizeof(tok))
		goto fail;
	memcpy(tok, p, n);
	tok[n] = '\0';
	if ((v = promtext_value(tok)) == NULL)
		goto fail;
	cJSON_AddItemToObject(s, "value", v);
	if ((f = promtext_family(list, name, 0)) == NULL)
		goto fail;
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(f, "samples"), s);
	return 0;
fail:
	cJSON_Delete(s);
	return -1;
}

cJSON *
promtext_to_json(const char *text, char *err, size_t errlen)
{
	cJSON *o = cJSON_CreateObject(), *list;
	struct promtext_line l = { text, 0, 0 };
	const char *nl;
	int rc;

	if (o == NULL || (list = cJSON_AddArrayToObject(o, "metrics")) == NULL) {
		snprintf(err, errlen, "out of memory");
		cJSON_Delete(o);
		return NULL;
	}
	for (; *l.p != '\0'; l.p += l.len + (nl != NULL)) {
		nl = strchr(l.p, '\n');
		l.len = nl ? (size_t)(nl - l.p) : strlen(l.p);
		l.no++;
		if (l.len == 0)
			continue;
		rc = l.p[0] == '#' ? promtext_comment(&l, list) :
		    promtext_sample(&l, list);
		if (rc == -1) {
			snprintf(err, errlen, "metrics line %d does not parse: "
			    "%.*s", l.no, (int)(l.len > 80 ? 80 : l.len), l.p);
			cJSON_Delete(o);
			return NULL;
		}
		if (nl == NULL)
			break;
	}
	return o;
}
