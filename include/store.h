/*
 * store: the SQLite database every egressd process shares.
 *
 * One file, state_dir/egressd.db, in WAL mode; one connection per OS process,
 * opened after fork; the schema is versioned with PRAGMA user_version and
 * migrated in order by the master before any worker starts.  Statements
 * used on hot paths are prepared once per connection.
 */
#ifndef EGRESSD_STORE_H
#define EGRESSD_STORE_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define STORE_FILE_NAME "egressd.db"

struct sqlite3;
struct sqlite3_stmt;

struct store {
	struct sqlite3 *db;
	char *path;
	struct sqlite3_stmt *worker_insert;
	struct sqlite3_stmt *worker_state;
	struct sqlite3_stmt *worker_exit;
};

/* Open (creating if needed) state_dir/egressd.db and set its pragmas. */
int store_open(struct store *st, const char *state_dir,
    enum config_synchronous sync, double busy_timeout, char *err,
    size_t errlen);

/* Bring the schema to the current version; one transaction per step. */
int store_migrate(struct store *st, char *err, size_t errlen);
int store_schema_version(void);

int store_worker_register(struct store *st, const char *instance_id,
    pid_t pid, int slot, int generation);
int store_worker_set_state(struct store *st, const char *instance_id,
    const char *state);
int store_worker_exited(struct store *st, const char *instance_id,
    const char *reason);

/* Delete stopped workers' rows older than days; returns rows removed or -1. */
int store_prune_workers(struct store *st, double days);

const char *store_errmsg(struct store *st);
void store_close(struct store *st);

#endif
