/* degraded: the reasons health is degraded (see include/master/degraded.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/clock.h"
#include "core/log.h"
#include "master/degraded.h"

static struct degraded_reason *
degraded_find(const struct degraded *d, const char *key)
{
	int i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->r[i].key, key) == 0)
			return (struct degraded_reason *)&d->r[i];
	return NULL;
}

int
degraded_set(struct degraded *d, const char *key, const char *fmt, ...)
{
	struct degraded_reason *r = degraded_find(d, key);
	char text[DEGRADED_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (r != NULL && strcmp(r->text, text) == 0)
		return 0;
	if (r == NULL) {
		if (d->n == DEGRADED_MAX) {
			/* Never silent: the table is sized for every check. */
			log_warnx("degraded (not listed, %d reasons already): "
			    "%s", DEGRADED_MAX, text);
			return 0;
		}
		r = &d->r[d->n++];
		snprintf(r->key, sizeof(r->key), "%s", key);
		r->since = clock_wall();
	}
	memcpy(r->text, text, sizeof(text));
	log_warnx("degraded: %s", text);
	return 1;
}

int
degraded_clear(struct degraded *d, const char *key)
{
	struct degraded_reason *r = degraded_find(d, key);

	if (r == NULL)
		return 0;
	log_info("no longer degraded (%s): resolved after %.0fs", key,
	    clock_wall() - r->since);
	*r = d->r[--d->n];
	return 1;
}

const char *
degraded_get(const struct degraded *d, const char *key)
{
	const struct degraded_reason *r = degraded_find(d, key);

	return r != NULL ? r->text : NULL;
}

int
degraded_count(const struct degraded *d)
{
	return d->n;
}

cJSON *
degraded_json(const struct degraded *d)
{
	cJSON *list = cJSON_CreateArray(), *o;
	int i;

	if (list == NULL)
		return NULL;
	for (i = 0; i < d->n; i++) {
		if ((o = cJSON_CreateObject()) == NULL ||
		    !cJSON_AddItemToArray(list, o) ||
		    cJSON_AddStringToObject(o, "key", d->r[i].key) == NULL ||
		    cJSON_AddStringToObject(o, "reason", d->r[i].text) == NULL ||
		    cJSON_AddNumberToObject(o, "since", d->r[i].since) == NULL) {
			cJSON_Delete(list);
			return NULL;
		}
	}
	return list;
}
