/*
 * degraded: why the master says "degraded" — a small table of reasons,
 * each under a key naming its source ("database", "pidfile", ...), that
 * any check of the master sets while its fault stands and clears once it
 * is gone.  Health and status list them, and the verdict is at best
 * "degraded" while one is set.  Setting a new or changed reason logs it
 * (warning), clearing one logs that it is resolved, so a check may set its
 * reason on every pass without repeating itself in the log.
 */
#ifndef EGRESSD_DEGRADED_H
#define EGRESSD_DEGRADED_H

#include <stddef.h>

#define DEGRADED_MAX 16		/* reasons at once (a key each) */
#define DEGRADED_KEY_MAX 32
#define DEGRADED_TEXT_MAX 512

struct cJSON;

struct degraded_reason {
	char key[DEGRADED_KEY_MAX];
	char text[DEGRADED_TEXT_MAX];
	double since;		/* wall clock: when it was first set */
};

struct degraded {
	struct degraded_reason r[DEGRADED_MAX];
	int n;
};

/* Set or replace the reason under key; 1 when new or changed, else 0. */
int degraded_set(struct degraded *d, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clear key's reason; 1 when there was one. */
int degraded_clear(struct degraded *d, const char *key);
/* The reason under key, or NULL. */
const char *degraded_get(const struct degraded *d, const char *key);
int degraded_count(const struct degraded *d);
/* [{"key", "reason", "since"}...], or NULL when out of memory. */
struct cJSON *degraded_json(const struct degraded *d);

#endif
