/*
 * metrics: operation counters and durations, and their three encodings.
 *
 * A struct metrics counts finished operations by path and outcome ("ok", or
 * the error_type of an error result) and keeps one duration histogram
 * (accept to result, fixed buckets).  Workers record into their own; the
 * master adds the sets up.  The module is pure (no I/O): it encodes a set
 * as JSON (worker HEARTBEAT frames, the push_metrics body) and decodes it
 * back with every field checked, since a frame is untrusted input; and it
 * renders the Prometheus text exposition format.
 *
 * Everything is bounded so a set always fits a channel frame: at most
 * METRICS_PATHS distinct paths are named, and a path is named only when it
 * starts with "/" and is at most METRICS_PATH_MAX printable ASCII bytes; all
 * other operations count under the path "other".  Counts saturate at
 * METRICS_COUNT_MAX, the largest integer cJSON prints exactly (15 digits).
 * A zeroed struct is an empty set.
 */
#ifndef EGRESSD_METRICS_H
#define EGRESSD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_PATHS 64		/* distinct paths named */
#define METRICS_PATH_MAX 128		/* bytes of a named path */
#define METRICS_OUTCOMES 9		/* ok, seven error types, "error" */
#define METRICS_BUCKETS 16		/* duration buckets, +Inf included */
#define METRICS_COUNT_MAX 999999999999999ULL	/* 10^15 - 1 */
#define METRICS_OTHER "other"		/* the path of unnamed operations */
/* The JSON of a full set stays under this (test_metrics checks it). */
#define METRICS_JSON_MAX (48 * 1024)

struct cJSON;

struct metrics_path {
	char name[METRICS_PATH_MAX + 1];
	uint64_t count[METRICS_OUTCOMES];
};

struct metrics {
	size_t npaths;
	struct metrics_path path[METRICS_PATHS];
	uint64_t other[METRICS_OUTCOMES];	/* by outcome, path "other" */
	uint64_t bucket[METRICS_BUCKETS];	/* per bucket, not cumulative */
	double sum;				/* seconds, all operations */
	uint64_t resent;	/* results sent again, possibly duplicates */
	uint64_t dead;		/* results kept as dead letters */
	uint64_t undelivered;	/* result PUTs that failed (each try) */
};

/* One process of the daemon, for the process_* metrics. */
struct metrics_process {
	const char *role;	/* "master" or "worker" */
	long pid;
	int slot;		/* workers: 1..N; the master: 0 */
	uint64_t rss;		/* bytes */
	double cpu_seconds;
	unsigned long fds;
	double start_time;	/* seconds since the epoch; 0 unknown */
};

/* What only the master knows, for the exposition and the push body. */
struct metrics_master {
	uint64_t worker_restarts;	/* unplanned worker ends */
	uint64_t stream_reconnects;	/* event stream lost or failed */
	uint64_t reloads;		/* configurations loaded (HUP, ...) */
	uint64_t workers;		/* running, not retiring */
	uint64_t workers_ready;
	uint64_t inflight;		/* operations in flight, all workers */
	int orchestrator_up;		/* a worker's last exchange succeeded */
	double last_contact;		/* wall time of the last success, 0 */
	int stream_connected;		/* the event stream is delivering */
	uint64_t outbox_rows;		/* results waiting for delivery */
	uint64_t outbox_dead;		/* dead letters kept */
	double outbox_oldest_age;	/* seconds; 0 when empty */
	const struct metrics_process *procs;	/* master first */
	size_t nprocs;
	uint64_t db_bytes;		/* database file and WAL */
	uint64_t db_pruned_rows;	/* removed by retention */
};

/* Outcome names by index: "ok", "invalid_request", ..., "error". */
extern const char *const metrics_outcome_names[METRICS_OUTCOMES];
/* Upper bounds of the buckets (seconds); the last is +Inf. */
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

/*
 * The outcome index of an operation's result: "ok" unless it is an error
 * result; then its error_type, or "error" when that is missing or unknown.
 */
int metrics_outcome(const struct cJSON *result);

/* Count one finished operation (path may be NULL: "other"). */
void metrics_record(struct metrics *m, const char *path,
    const struct cJSON *result, double seconds);

/*
 * Count one result sent again that the orchestrator may already have (a
 * worker died before deleting its outbox row, or a try's answer was lost).
 */
void metrics_count_resend(struct metrics *m);

/* Count one result the orchestrator refused for good (a dead letter). */
void metrics_count_dead_letter(struct metrics *m);

/* Count one result PUT that failed (no answer, or not a 2xx). */
void metrics_count_undelivered(struct metrics *m);

/* dst += src (paths beyond dst's table count as "other"). */
void metrics_add(struct metrics *dst, const struct metrics *src);

/* Operations counted, all paths and outcomes (saturating). */
uint64_t metrics_total(const struct metrics *m);

/*
 * JSON: {"operations": [{"path": P, "outcomes": {"ok": N, ...}}, ...],
 * "duration_seconds": {"buckets": [N x METRICS_BUCKETS], "sum": S},
 * "results_resent": N, "results_dead_lettered": N,
 * "result_deliveries_failed": N}; buckets follow metrics_bucket_bounds, not
 * cumulative.  metrics_json_add adds the five members to obj (-1 when out
 * of memory).
 */
struct cJSON *metrics_to_json(const struct metrics *m);
int metrics_json_add(struct cJSON *obj, const struct metrics *m);

/*
 * Decode what metrics_to_json made.  Wrong types, unknown outcomes, paths
 * that could not have been named, a path listed twice, more entries than a
 * set holds, counts that are not integers in [0, METRICS_COUNT_MAX], a sum
 * that is negative or not finite: -1 with err set, *out untouched.
 * Unknown members are ignored; a missing "results_resent",
 * "results_dead_lettered" or "result_deliveries_failed" is 0.  0 on
 * success.
 */
int metrics_from_json(const struct cJSON *json, struct metrics *out,
    char *err, size_t errlen);

/*
 * The Prometheus text exposition format (version 0.0.4) of m and mm:
 * egressd_operations_total{path,outcome}, egressd_operation_duration_seconds
 * (histogram), egressd_results_resent_total,
 * egressd_results_dead_lettered_total, egressd_result_deliveries_failed_total,
 * egressd_worker_restarts_total, egressd_stream_reconnects_total,
 * egressd_reloads_total, egressd_workers, egressd_workers_ready,
 * egressd_inflight, egressd_orchestrator_up,
 * egressd_orchestrator_last_contact_timestamp_seconds,
 * egressd_stream_connected, egressd_outbox_rows, egressd_outbox_dead_rows,
 * egressd_outbox_oldest_age_seconds, egressd_db_bytes,
 * egressd_db_pruned_rows_total, egressd_build_info{version}, and per
 * process ({role, slot, pid}) process_resident_memory_bytes,
 * process_open_fds, process_cpu_seconds_total, process_start_time_seconds.
 * Returns malloc'd text, NULL when out of memory.
 */
char *metrics_render(const struct metrics *m, const struct metrics_master *mm);

/*
 * push_logs: append line to the JSON array lines, made valid UTF-8 (bad
 * bytes become '?'); a line that contains secret (when not NULL or empty)
 * is left out.  Returns 1 added, 0 left out, -1 out of memory.
 */
int metrics_add_log_line(struct cJSON *lines, const char *line,
    const char *secret);

#endif
