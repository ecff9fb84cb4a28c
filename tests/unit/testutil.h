/*
 * testutil: what the unit tests share (prefix tu_).  Every test includes
 * this header instead of cmocka.h and its prerequisites.
 *
 * Temporary directories and files, descriptor and child counts, loading a
 * configuration, results of operations, a fake handler host, a run of an
 * operation to its result, and the database queries of the procmgr tests.
 * Unless it says otherwise, a helper fails the calling test (cmocka) when
 * it cannot do its job.
 */
#ifndef EGRESSD_TESTUTIL_H
#define EGRESSD_TESTUTIL_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "ops/dispatch.h"
#include "ops/ops.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"

struct egressd_config;
struct store;

/* Files and directories. */

/* mkdtemp of /tmp/egressd-NAME-XXXXXX into buf: buf, or NULL (errno). */
char *tu_mkdtemp(char *buf, size_t len, const char *name);
/*
 * Remove dir and everything under it (symlinks are not followed; a
 * read-only directory is made writable first): 0, or -1 when something
 * could not be removed (the rest is removed all the same).
 */
int tu_remove_tree(const char *dir);
/* Entries of dir other than . and .. */
int tu_count_entries(const char *dir);
/* Write text to path (created or truncated), then chmod it to mode. */
void tu_write_file(const char *path, const char *text, mode_t mode);
/*
 * The whole of path, NUL-terminated, to free(); its length in *len when
 * len is not NULL.  NULL when path does not exist.
 */
char *tu_read_file(const char *path, size_t *len);
/* path exists and holds exactly want. */
void tu_assert_file(const char *path, const char *want);

/* Processes. */

/* Descriptors open in this process. */
int tu_count_fds(void);
/* This process has no child left, not even a zombie. */
void tu_assert_no_children(void);

/* Configuration. */

/* config_load_string of text (as t.conf in /) into cfg. */
void tu_config(struct egressd_config *cfg, const char *text);

/* Results of operations. */

/* The string member key of o. */
const char *tu_str(const cJSON *o, const char *key);
/* Whether r is an error result of type, its message holding needle (if set). */
bool tu_is_error(const cJSON *r, const char *type, const char *needle);
/* r is such an error result. */
void tu_assert_error(const cJSON *r, const char *type, const char *needle);

/*
 * A fake handler host (struct op_host): it records every check and refuses
 * what it is told to with a capability_denied result, and counts reload
 * requests.  Point an op_context's host at &h->host.
 */
struct tu_host {
	struct op_host host;	/* check, request_reload; arg is this */
	int checks;		/* check calls */
	char resource[2048];	/* the last check's resource */
	char right[32];		/* and right */
	char checked[512];	/* every resource asked for, space separated */
	const char *want_right;	/* when set, every check must ask for it */
	bool deny_all;		/* refuse every check, */
	const char *deny_resource;	/* or this resource, */
	const char *deny_right;	/* or this right */
	int reloads;		/* request_reload calls, */
	int reload_rc;		/* each answered with this */
};

void tu_host_init(struct tu_host *h);

/*
 * One operation run: its completion (run.done) lands here.  result is the
 * last result (owned: freed by the next start and by tu_run_free).
 */
struct tu_run {
	struct op_run run;	/* run.arg is this */
	cJSON *result;
	int done_calls;		/* completions since the last start */
};

void tu_run_init(struct tu_run *r, const struct op_context *ctx);
void tu_run_free(struct tu_run *r);
/*
 * dispatch_start path's handler with body_json (NULL: no body).  OPS_DONE: the
 * result is in r->result; OPS_PENDING: no result yet.
 */
enum ops_status tu_start(struct tu_run *r, const char *path,
    const char *body_json);
/*
 * Turn the context's loop (and run the timers of its http client, if any)
 * until the pending run completes, for at most limit seconds: it must
 * complete exactly once and leave nothing behind on the loop.
 */
void tu_wait(struct tu_run *r, double limit);
/* tu_start, then tu_wait when pending: the result (owned by r). */
const cJSON *tu_run_op(struct tu_run *r, const char *path,
    const char *body_json, double limit);
/*
 * Call handler directly with body_json (NULL: no body); it must be done at
 * once.  Its result, to cJSON_Delete.
 */
cJSON *tu_call(op_handler handler, struct op_run *run,
    const char *body_json);

/* Databases. */

/* store_open dir's database (and migrate it): 0, or -1 (error printed). */
int tu_store_open(struct store *st, const char *dir, double busy_timeout,
    bool migrate);
/* The first column of the first row of the query (printf-style), or -1. */
int64_t tu_query_int(sqlite3 *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same as text: a static buffer; "" for NULL, "(none)" for no row. */
const char *tu_query_text(sqlite3 *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Run sql (any number of statements). */
void tu_exec(sqlite3 *db, const char *sql);

/*
 * A process manager of instance on a fresh, migrated database in a new
 * temporary directory named after tag, with the default configuration;
 * NULL on failure.  tu_pm_free undoes it all.
 */
struct tu_pm {
	char dir[256];
	struct egressd_config cfg;
	struct store st;
	struct procmgr pm;
};
struct tu_pm *tu_pm_new(const char *tag, const char *instance);
void tu_pm_free(struct tu_pm *f);
/* rc is a refusal of type whose message holds msg (NULL: any message). */
void tu_pm_refused(const struct procmgr *pm, int rc, enum pm_error type,
    const char *msg);

#endif
