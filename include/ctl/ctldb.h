/*
 * ctldb: egressctl's read-only views of the database — ps, inspect, audit,
 * and the row counts and oldest rows that status --json adds.
 *
 * They open state_dir/egressd.db with SQLITE_OPEN_READONLY and query the
 * process manager's tables directly, so they work while the daemon runs
 * (WAL readers never block its writers) and after it stopped.
 */
#ifndef EGRESSD_CTLDB_H
#define EGRESSD_CTLDB_H

#define CTLDB_CMD_PS "ps"
#define CTLDB_CMD_INSPECT "inspect"
#define CTLDB_CMD_AUDIT "audit"

/* 1 when cmd is one of ours. */
int ctldb_handles(const char *cmd);

/*
 * Run argv[0] with its arguments against the database at db_path; prints
 * to stdout, errors to stderr.  Returns an exit status: 0, 1 (not found),
 * 2 (usage or database error).
 */
int ctldb_main(int argc, char **argv, const char *db_path);

/*
 * For status --json: {"rows": {TABLE: N, ...}, "oldest": {"process",
 * "finished_operation", "event", "audit", "undelivered_result": wall
 * seconds or null}} read from the database at db_path; NULL (said on
 * stderr) when it cannot be read.
 */
struct cJSON;
struct cJSON *ctldb_summary(const char *db_path);

/*
 * "--since" values: "90s", "15m", "2h", "7d" (that long ago), seconds since
 * the epoch, or "YYYY-MM-DDTHH:MM:SS" (UTC).  Pure; for tests.
 */
int ctldb_parse_since(const char *text, double now, double *out);

#endif
