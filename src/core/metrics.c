/* metrics: counters, histogram, JSON and Prometheus text (see metrics.h). */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/jsonutil.h"
#include "core/metrics.h"
#include "core/version.h"

#define METRICS_OUTCOME_ERROR (METRICS_OUTCOMES - 1)	/* type unknown */

const char *const metrics_outcome_names[METRICS_OUTCOMES] = { "ok",
    "invalid_request", "capability_denied", "not_found", "limit_exceeded",
    "timeout", "unsupported", "internal", "error" };

const double metrics_bucket_bounds[METRICS_BUCKETS] = { 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    INFINITY };

/* The le labels, written as the bounds above (no float formatting). */
static const char *const metrics_bucket_labels[METRICS_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf" };

static uint64_t
metrics_sat_add(uint64_t a, uint64_t b)
{
	return b > METRICS_COUNT_MAX - a ? METRICS_COUNT_MAX : a + b;
}

/* Sums stay finite: JSON has no infinity, and decoding refuses one. */
static double
metrics_sum_add(double a, double b)
{
	double s = a + b;

	return isfinite(s) ? s : DBL_MAX;
}

static int
metrics_outcome_index(const char *name)
{
	int i;

	for (i = 0; i < METRICS_OUTCOMES; i++)
		if (strcmp(name, metrics_outcome_names[i]) == 0)
			return i;
	return -1;
}

int
metrics_outcome(const cJSON *result)
{
	const cJSON *type;
	int i;

	if (!cJSON_IsObject(result) ||
	    !cJSON_HasObjectItem(result, "error"))
		return 0;
	type = cJSON_GetObjectItemCaseSensitive(result, "error_type");
	if (!cJSON_IsString(type) ||
	    (i = metrics_outcome_index(type->valuestring)) <= 0)
		return METRICS_OUTCOME_ERROR;
	return i;
}

/* Whether path may be named: "/" and printable ASCII, bounded. */
static int
metrics_nameable(const char *path)
{
	size_t i;

	if (path == NULL || path[0] != '/')
		return 0;
	for (i = 0; path[i] != '\0'; i++)
		if (i >= METRICS_PATH_MAX || path[i] < '!' || path[i] > '~')
			return 0;
	return 1;
}

static struct metrics_path *
metrics_find(struct metrics *m, const char *path)
{
	size_t i;

	for (i = 0; i < m->npaths; i++)
		if (strcmp(m->path[i].name, path) == 0)
			return &m->path[i];
	return NULL;
}

/* The counters of path: its own, a new slot, or "other" (table full). */
static uint64_t *
metrics_counts(struct metrics *m, const char *path)
{
	struct metrics_path *p;

	if (!metrics_nameable(path))
		return m->other;
	if ((p = metrics_find(m, path)) != NULL)
		return p->count;
	if (m->npaths == METRICS_PATHS)
		return m->other;
	p = &m->path[m->npaths++];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, path, strlen(path) + 1);
	return p->count;
}

static int
metrics_bucket_of(double seconds)
{
	int i;

	for (i = 0; i < METRICS_BUCKETS - 1; i++)
		if (seconds <= metrics_bucket_bounds[i])
			return i;
	return METRICS_BUCKETS - 1;
}

void
metrics_record(struct metrics *m, const char *path, const cJSON *result,
    double seconds)
{
	uint64_t *count = metrics_counts(m, path);
	int o = metrics_outcome(result), b;

	if (!(seconds >= 0))		/* NaN too: a clock oddity */
		seconds = 0;
	b = metrics_bucket_of(seconds);
	count[o] = metrics_sat_add(count[o], 1);
	m->bucket[b] = metrics_sat_add(m->bucket[b], 1);
	m->sum = metrics_sum_add(m->sum, seconds);
}

void
metrics_count_resend(struct metrics *m)
{
	m->resent = metrics_sat_add(m->resent, 1);
}

void
metrics_count_dead_letter(struct metrics *m)
{
	m->dead = metrics_sat_add(m->dead, 1);
}

void
metrics_count_undelivered(struct metrics *m)
{
	m->undelivered = metrics_sat_add(m->undelivered, 1);
}

static int
metrics_any(const uint64_t *count)
{
	int i;

	for (i = 0; i < METRICS_OUTCOMES; i++)
		if (count[i] != 0)
			return 1;
	return 0;
}

static void
metrics_add_counts(uint64_t *dst, const uint64_t *src)
{
	int i;

	for (i = 0; i < METRICS_OUTCOMES; i++)
		dst[i] = metrics_sat_add(dst[i], src[i]);
}

void
metrics_add(struct metrics *dst, const struct metrics *src)
{
	size_t i;
	int b;

	for (i = 0; i < src->npaths; i++)
		if (metrics_any(src->path[i].count))
			metrics_add_counts(metrics_counts(dst,
			    src->path[i].name), src->path[i].count);
	metrics_add_counts(dst->other, src->other);
	for (b = 0; b < METRICS_BUCKETS; b++)
		dst->bucket[b] = metrics_sat_add(dst->bucket[b],
		    src->bucket[b]);
	dst->sum = metrics_sum_add(dst->sum, src->sum);
	dst->resent = metrics_sat_add(dst->resent, src->resent);
	dst->dead = metrics_sat_add(dst->dead, src->dead);
	dst->undelivered = metrics_sat_add(dst->undelivered, src->undelivered);
}

uint64_t
metrics_total(const struct metrics *m)
{
	uint64_t n = 0;
	int b;

	for (b = 0; b < METRICS_BUCKETS; b++)
		n = metrics_sat_add(n, m->bucket[b]);
	return n;
}

/* JSON encoding. */

static int
metrics_json_entry(cJSON *list, const char *path, const uint64_t *count)
{
	cJSON *e, *o;
	int i;

	if (!metrics_any(count))
		return 0;
	if ((e = cJSON_CreateObject()) == NULL)
		return -1;
	cJSON_AddItemToArray(list, e);
	if (cJSON_AddStringToObject(e, "path", path) == NULL ||
	    (o = cJSON_AddObjectToObject(e, "outcomes")) == NULL)
		return -1;
	for (i = 0; i < METRICS_OUTCOMES; i++)
		if (count[i] != 0 && cJSON_AddNumberToObject(o,
		    metrics_outcome_names[i], (double)count[i]) == NULL)
			return -1;
	return 0;
}

int
metrics_json_add(cJSON *obj, const struct metrics *m)
{
	cJSON *list, *d, *b;
	size_t i;
	int k;

	if ((list = cJSON_AddArrayToObject(obj, "operations")) == NULL)
		return -1;
	for (i = 0; i < m->npaths; i++)
		if (metrics_json_entry(list, m->path[i].name,
		    m->path[i].count) == -1)
			return -1;
	if (metrics_json_entry(list, METRICS_OTHER, m->other) == -1 ||
	    (d = cJSON_AddObjectToObject(obj, "duration_seconds")) == NULL ||
	    (b = cJSON_AddArrayToObject(d, "buckets")) == NULL)
		return -1;
	for (k = 0; k < METRICS_BUCKETS; k++)
		if (!cJSON_AddItemToArray(b,
		    cJSON_CreateNumber((double)m->bucket[k])))
			return -1;
	if (cJSON_AddNumberToObject(d, "sum", m->sum) == NULL)
		return -1;
	if (cJSON_AddNumberToObject(obj, "results_resent",
	    (double)m->resent) == NULL)
		return -1;
	if (cJSON_AddNumberToObject(obj, "results_dead_lettered",
	    (double)m->dead) == NULL)
		return -1;
	return cJSON_AddNumberToObject(obj, "result_deliveries_failed",
	    (double)m->undelivered) == NULL ? -1 : 0;
}

cJSON *
metrics_to_json(const struct metrics *m)
{
	cJSON *o = cJSON_CreateObject();

	if (o != NULL && metrics_json_add(o, m) == -1) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* JSON decoding: every check names what was wrong. */

static int
metrics_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
metrics_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
metrics_count_value(const cJSON *v, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	if (!(d >= 0) || d > (double)METRICS_COUNT_MAX || d != floor(d))
		return -1;
	*out = (uint64_t)d;
	return 0;
}

static int
metrics_decode_outcomes(const cJSON *o, uint64_t *count, char *err,
    size_t errlen)
{
	unsigned seen = 0;
	const cJSON *v;
	int i;

	if (!cJSON_IsObject(o))
		return metrics_fail(err, errlen, "\"outcomes\" is not an "
		    "object");
	cJSON_ArrayForEach(v, o) {
		if ((i = metrics_outcome_index(v->string)) < 0)
			return metrics_fail(err, errlen, "unknown outcome "
			    "\"%.32s\"", v->string);
		if (seen & (1u << i))
			return metrics_fail(err, errlen, "outcome %s listed "
			    "twice", v->string);
		seen |= 1u << i;
		if (metrics_count_value(v, &count[i]) == -1)
			return metrics_fail(err, errlen, "count of %s is not "
			    "an integer in [0, 10^15)", v->string);
	}
	return 0;
}

static int
metrics_decode_entry(const cJSON *e, struct metrics *m, char *err,
    size_t errlen)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
	uint64_t count[METRICS_OUTCOMES] = { 0 };
	int other;

	if (!cJSON_IsObject(e) || !cJSON_IsString(p))
		return metrics_fail(err, errlen, "an operations entry is not "
		    "an object with a \"path\" string");
	other = strcmp(p->valuestring, METRICS_OTHER) == 0;
	if (!other && !metrics_nameable(p->valuestring))
		return metrics_fail(err, errlen, "path \"%.64s\" cannot be "
		    "named", p->valuestring);
	if (metrics_decode_outcomes(cJSON_GetObjectItemCaseSensitive(e,
	    "outcomes"), count, err, errlen) == -1)
		return -1;
	if (other ? metrics_any(m->other) :
	    metrics_find(m, p->valuestring) != NULL)
		return metrics_fail(err, errlen, "path \"%.64s\" listed twice",
		    p->valuestring);
	if (!metrics_any(count))
		return 0;
	if (!other && m->npaths == METRICS_PATHS)
		return metrics_fail(err, errlen, "more than %d paths",
		    METRICS_PATHS);
	metrics_add_counts(metrics_counts(m, other ? NULL : p->valuestring),
	    count);
	return 0;
}

static int
metrics_decode_duration(const cJSON *d, struct metrics *m, char *err,
    size_t errlen)
{
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(d, "buckets");
	const cJSON *sum = cJSON_GetObjectItemCaseSensitive(d, "sum");
	const cJSON *v;
	int k = 0;

	if (!cJSON_IsObject(d) || !cJSON_IsArray(b))
		return metrics_fail(err, errlen, "\"duration_seconds\" is not "
		    "an object with a \"buckets\" array");
	cJSON_ArrayForEach(v, b) {
		if (k == METRICS_BUCKETS)
			break;
		if (metrics_count_value(v, &m->bucket[k++]) == -1)
			return metrics_fail(err, errlen, "bucket %d is not an "
			    "integer in [0, 10^15)", k - 1);
	}
	if (k != METRICS_BUCKETS || v != NULL)
		return metrics_fail(err, errlen, "\"buckets\" must hold %d "
		    "counts", METRICS_BUCKETS);
	if (!cJSON_IsNumber(sum) || !isfinite(sum->valuedouble) ||
	    !(sum->valuedouble >= 0))
		return metrics_fail(err, errlen, "\"sum\" is not a finite "
		    "number >= 0");
	m->sum = sum->valuedouble;
	return 0;
}

/* A delivery counter; absent (a sender that does not count it): 0. */
static int
metrics_decode_counter(const cJSON *json, const char *name, uint64_t *out,
    char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, name);

	if (v == NULL)
		return 0;
	if (metrics_count_value(v, out) == -1)
		return metrics_fail(err, errlen, "\"%s\" is not an integer in "
		    "[0, 10^15)", name);
	return 0;
}

int
metrics_from_json(const cJSON *json, struct metrics *out, char *err,
    size_t errlen)
{
	const cJSON *ops = cJSON_GetObjectItemCaseSensitive(json,
	    "operations");
	struct metrics *m;
	const cJSON *e;
	int n = 0, rc = 0;

	if (!cJSON_IsObject(json) || !cJSON_IsArray(ops))
		return metrics_fail(err, errlen, "not an object with an "
		    "\"operations\" array");
	/* A decoded set is large: not on the stack, and out stays intact. */
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return metrics_fail(err, errlen, "out of memory");
	cJSON_ArrayForEach(e, ops) {
		if (++n > METRICS_PATHS + 1) {
			rc = metrics_fail(err, errlen, "more than %d "
			    "operations entries", METRICS_PATHS + 1);
			break;
		}
		if ((rc = metrics_decode_entry(e, m, err, errlen)) == -1)
			break;
	}
	if (rc == 0)
		rc = metrics_decode_duration(cJSON_GetObjectItemCaseSensitive(
		    json, "duration_seconds"), m, err, errlen);
	if (rc == 0)
		rc = metrics_decode_counter(json, "results_resent", &m->resent,
		    err, errlen);
	if (rc == 0)
		rc = metrics_decode_counter(json, "results_dead_lettered",
		    &m->dead, err, errlen);
	if (rc == 0)
		rc = metrics_decode_counter(json, "result_deliveries_failed",
		    &m->undelivered, err, errlen);
	if (rc == 0)
		memcpy(out, m, sizeof(*m));
	free(m);
	return rc;
}

/* Prometheus text. */

struct metrics_buf {
	char *text;
	size_t len, cap;
	int failed;
};

static void
metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t cap;
	char *grown;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		cap = b->cap * 2 + (size_t)n;
		if ((grown = realloc(b->text, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->text = grown;
		b->cap = cap;
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void
metrics_label(struct metrics_buf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			metrics_printf(b, "\\\\");
		else if (*v == '"')
			metrics_printf(b, "\\\"");
		else if (*v == '\n')
			metrics_printf(b, "\\n");
		else
			metrics_printf(b, "%c", *v);
	}
}

static void
metrics_head(struct metrics_buf *b, const char *name, const char *type,
    const char *help)
{
	metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

static void
metrics_series(struct metrics_buf *b, const char *path,
    const uint64_t *count)
{
	int i;

	for (i = 0; i < METRICS_OUTCOMES; i++) {
		if (count[i] == 0)
			continue;
		metrics_printf(b, "egressd_operations_total{path=\"");
		metrics_label(b, path);
		metrics_printf(b, "\",outcome=\"%s\"} %" PRIu64 "\n",
		    metrics_outcome_names[i], count[i]);
	}
}

static int
metrics_by_name(const void *a, const void *b)
{
	const struct metrics_path *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static void
metrics_render_operations(struct metrics_buf *b, const struct metrics *m)
{
	const struct metrics_path *sorted[METRICS_PATHS];
	size_t i;

	metrics_head(b, "egressd_operations_total", "counter", "Operations "
	    "finished, by path and outcome (ok or the error_type).");
	for (i = 0; i < m->npaths; i++)
		sorted[i] = &m->path[i];
	if (m->npaths > 0)
		qsort(sorted, m->npaths, sizeof(sorted[0]), metrics_by_name);
	for (i = 0; i < m->npaths; i++)
		metrics_series(b, sorted[i]->name, sorted[i]->count);
	metrics_series(b, METRICS_OTHER, m->other);
}

static void
metrics_render_duration(struct metrics_buf *b, const struct metrics *m)
{
	uint64_t cum = 0;
	int k;

	metrics_head(b, "egressd_operation_duration_seconds", "histogram",
	    "Seconds from accepting an operation to its result.");
	for (k = 0; k < METRICS_BUCKETS; k++) {
		cum = metrics_sat_add(cum, m->bucket[k]);
		metrics_printf(b, "egressd_operation_duration_seconds_bucket"
		    "{le=\"%s\"} %" PRIu64 "\n", metrics_bucket_labels[k], cum);
	}
	metrics_printf(b, "egressd_operation_duration_seconds_sum %.15g\n"
	    "egressd_operation_duration_seconds_count %" PRIu64 "\n", m->sum,
	    cum);
}

static void
metrics_one(struct metrics_buf *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	metrics_head(b, name, type, help);
	metrics_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void
metrics_gauge(struct metrics_buf *b, const char *name, const char *help,
    double v)
{
	metrics_head(b, name, "gauge", help);
	metrics_printf(b, "%s %.15g\n", name, v);
}

/* What the workers and the stream say of the orchestrator and the outbox. */
static void
metrics_render_orchestrator(struct metrics_buf *b,
    const struct metrics_master *mm)
{
	metrics_gauge(b, "egressd_orchestrator_up", "1 when a worker's last "
	    "exchange with the orchestrator succeeded.", mm->orchestrator_up);
	metrics_gauge(b, "egressd_orchestrator_last_contact_timestamp_seconds",
	    "When a worker last exchanged with the orchestrator successfully "
	    "(0: never).", mm->last_contact);
	metrics_gauge(b, "egressd_stream_connected", "1 while the event "
	    "stream is connected and has delivered a heartbeat.",
	    mm->stream_connected);
	metrics_gauge(b, "egressd_outbox_rows", "Results in the outbox "
	    "waiting for delivery (dead letters not counted).",
	    (double)mm->outbox_rows);
	metrics_gauge(b, "egressd_outbox_dead_rows", "Results kept in the "
	    "outbox as dead letters.", (double)mm->outbox_dead);
	metrics_gauge(b, "egressd_outbox_oldest_age_seconds", "Age of the "
	    "oldest result waiting for delivery (0: none).",
	    mm->outbox_oldest_age);
	metrics_head(b, "egressd_build_info", "gauge", "The version running, "
	    "as a label; always 1.");
	metrics_printf(b, "egressd_build_info{version=\"");
	metrics_label(b, EGRESSD_VERSION);
	metrics_printf(b, "\"} 1\n");
}

static void
metrics_proc_series(struct metrics_buf *b, const char *name,
    const struct metrics_process *p, double v)
{
	metrics_printf(b, "%s{role=\"%s\",slot=\"%d\",pid=\"%ld\"} %.15g\n",
	    name, p->role, p->slot, p->pid, v);
}

/* The standard process_* metrics, one series per process of the daemon. */
static void
metrics_render_processes(struct metrics_buf *b,
    const struct metrics_master *mm)
{
	size_t i;

	metrics_head(b, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.");
	for (i = 0; i < mm->nprocs; i++)
		metrics_proc_series(b, "process_resident_memory_bytes",
		    &mm->procs[i], (double)mm->procs[i].rss);
	metrics_head(b, "process_open_fds", "gauge",
	    "Number of open file descriptors.");
	for (i = 0; i < mm->nprocs; i++)
		metrics_proc_series(b, "process_open_fds", &mm->procs[i],
		    (double)mm->procs[i].fds);
	metrics_head(b, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	for (i = 0; i < mm->nprocs; i++)
		metrics_proc_series(b, "process_cpu_seconds_total",
		    &mm->procs[i], mm->procs[i].cpu_seconds);
	metrics_head(b, "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.");
	for (i = 0; i < mm->nprocs; i++)
		metrics_proc_series(b, "process_start_time_seconds",
		    &mm->procs[i], mm->procs[i].start_time);
}

char *
metrics_render(const struct metrics *m, const struct metrics_master *mm)
{
	struct metrics_buf b = { NULL, 0, 4096, 0 };

	if ((b.text = malloc(b.cap)) == NULL)
		return NULL;
	b.text[0] = '\0';
	metrics_render_operations(&b, m);
	metrics_render_duration(&b, m);
	metrics_one(&b, "egressd_results_resent_total", "counter",
	    "Results sent again that the orchestrator may already have "
	    "(a worker died before deleting the outbox row, or an answer "
	    "was lost).", m->resent);
	metrics_one(&b, "egressd_result_deliveries_failed_total", "counter",
	    "Result deliveries (PUT tries) that got no answer or no 2xx.",
	    m->undelivered);
	metrics_one(&b, "egressd_results_dead_lettered_total", "counter",
	    "Results the orchestrator refused for good, even as an error "
	    "result, kept in the outbox as dead letters.", m->dead);
	metrics_one(&b, "egressd_worker_restarts_total", "counter",
	    "Workers that ended unplanned and were replaced.",
	    mm->worker_restarts);
	metrics_one(&b, "egressd_stream_reconnects_total", "counter",
	    "Times the event stream was lost or failed and reconnected.",
	    mm->stream_reconnects);
	metrics_one(&b, "egressd_reloads_total", "counter",
	    "Configurations loaded by a reload.", mm->reloads);
	metrics_one(&b, "egressd_workers", "gauge",
	    "Worker processes running (not retiring).", mm->workers);
	metrics_one(&b, "egressd_workers_ready", "gauge",
	    "Workers ready for work.", mm->workers_ready);
	metrics_one(&b, "egressd_inflight", "gauge",
	    "Operations in flight, all workers.", mm->inflight);
	metrics_one(&b, "egressd_db_bytes", "gauge",
	    "Bytes of the database file and its WAL.", mm->db_bytes);
	metrics_one(&b, "egressd_db_pruned_rows_total", "counter",
	    "Agent processes, events and audit rows removed by retention "
	    "(age, max_rows, max_bytes).", mm->db_pruned_rows);
	metrics_render_orchestrator(&b, mm);
	metrics_render_processes(&b, mm);
	if (b.failed) {
		free(b.text);
		return NULL;
	}
	return b.text;
}

/* push_logs lines. */

int
metrics_add_log_line(cJSON *lines, const char *line, const char *secret)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t len = strlen(line), i = 0, n, o = 0;
	cJSON *item;
	char *clean;

	if (secret != NULL && secret[0] != '\0' && strstr(line, secret))
		return 0;
	if ((clean = malloc(len + 1)) == NULL)
		return -1;
	while (i < len) {
		if ((n = json_utf8_len(line + i, len - i)) == 0) {
			clean[o++] = '?';
			i++;
			continue;
		}
		memcpy(clean + o, s + i, n);
		o += n;
		i += n;
	}
	clean[o] = '\0';
	item = cJSON_CreateString(clean);
	free(clean);
	if (item == NULL || !cJSON_AddItemToArray(lines, item)) {
		cJSON_Delete(item);
		return -1;
	}
	return 1;
}
