/*
 * ctldb: egressctl's read-only views of the database — ps, inspect, audit,
 * and the row counts and oldest rows that status --json adds.
 *
 * They read every database file of state_dir there is (egressd.db and
 * the egressd-N.db of store.files, procmgr/store.h, whatever store.files
 * says now) on one SQLITE_OPEN_READONLY connection, egressd.db as main and
 * the others attached, and query the process manager's tables directly,
 * so they work while the daemon runs (WAL readers never block its
 * writers) and after it stopped.  A file that exists but cannot be read
 * is an error naming it, as is egressd.db missing while another exists.
 * Agent pids are unique across the files; event and audit ids are a
 * file's own, so rows of several files are put in time order by
 * created_at (then file, then id).
 */
#ifndef EGRESSD_CTLDB_H
#define EGRESSD_CTLDB_H

#define CTLDB_CMD_PS "ps"
#define CTLDB_CMD_INSPECT "inspect"
#define CTLDB_CMD_AUDIT "audit"

/* 1 when cmd is one of ours. */
int ctldb_handles(const char *cmd);

/*
 * Run argv[0] with its arguments against the database files of state_dir;
 * prints to stdout, errors to stderr.  Returns an exit status: 0, 1 (not
 * found), 2 (usage or database error).
 */
int ctldb_main(int argc, char **argv, const char *state_dir);

/*
 * For status --json: {"rows": {TABLE: N, ...}, "oldest": {"process",
 * "finished_operation", "event", "audit", "undelivered_result": wall
 * seconds or null}} over the database files of state_dir (rows summed,
 * the oldest of the files'); NULL (said on stderr) when one cannot be
 * read.
 */
struct cJSON;
struct cJSON *ctldb_summary(const char *state_dir);

/*
 * "--since" values: "90s", "15m", "2h", "7d" (that long ago), seconds since
 * the epoch, or "YYYY-MM-DDTHH:MM:SS" (UTC).  Pure; for tests.
 */
int ctldb_parse_since(const char *text, double now, double *out);

#endif
