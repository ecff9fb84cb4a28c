/*
 * orchd_state: the operations queue, the results, the instances and the
 * faults of struct orchd (see orchd_state.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orchd_state.h"

/* One queued operation, or a run of generated ones (op-N...). */
struct qent {
	struct qent		*next;
	char			*json;	/* the operation; for a run, its tail */
	size_t			 len;
	int			 run;
	unsigned long long	 first;	/* a run's next N */
	unsigned long long	 left;	/* a run's operations still queued */
};

/* ---- string map --------------------------------------------------------- */

static uint64_t
smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct smap_ent *
smap_slot(const struct smap *m, const char *key)
{
	size_t i = (size_t)smap_hash(key) & (m->cap - 1);

	while (m->ents[i].key != NULL && strcmp(m->ents[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->ents[i];
}

static int
smap_grow(struct smap *m)
{
	struct smap bigger;
	size_t i;

	bigger.cap = m->cap ? m->cap * 2 : 64;
	bigger.n = m->n;
	if ((bigger.ents = calloc(bigger.cap, sizeof(*bigger.ents))) == NULL)
		return -1;
	for (i = 0; i < m->cap; i++)
		if (m->ents[i].key != NULL)
			*smap_slot(&bigger, m->ents[i].key) = m->ents[i];
	free(m->ents);
	*m = bigger;
	return 0;
}

/* The entry for key, added with a NULL value when missing; NULL on ENOMEM. */
static struct smap_ent *
smap_get(struct smap *m, const char *key, int *added)
{
	struct smap_ent *e;

	*added = 0;
	if ((m->n + 1) * 10 > m->cap * 7 && smap_grow(m) == -1)
		return NULL;
	e = smap_slot(m, key);
	if (e->key == NULL) {
		if ((e->key = strdup(key)) == NULL)
			return NULL;
		m->n++;
		*added = 1;
	}
	return e;
}

static void
smap_clear(struct smap *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++) {
		free(m->ents[i].key);
		free(m->ents[i].val);
	}
	free(m->ents);
	memset(m, 0, sizeof(*m));
}

/* ---- state -------------------------------------------------------------- */

unsigned long long
state_next_op(struct orchd *o)
{
	return o->next_op++;
}

void
state_faults_default(struct orchd *o, struct faults *f)
{
	memset(f, 0, sizeof(*f));
	f->heartbeats = 1;
	f->heartbeat_interval = o->default_interval;
}

struct inst *
state_inst(struct orchd *o, const char *iid)
{
	struct smap_ent *e;
	int added;

	e = smap_get(&o->insts, iid ? iid : ORCHD_NO_INSTANCE, &added);
	if (e == NULL)
		return NULL;
	if (e->val == NULL && (e->val = calloc(1, sizeof(struct inst))) == NULL)
		return NULL;
	return e->val;
}

static void
queue_free(struct orchd *o)
{
	struct qent *q;

	while ((q = o->qhead) != NULL) {
		o->qhead = q->next;
		free(q->json);
		free(q);
	}
	o->qtail = NULL;
	o->qlen = 0;
}

static void
queue_append(struct orchd *o, struct qent *q)
{
	if (o->qtail != NULL)
		o->qtail->next = q;
	else
		o->qhead = q;
	o->qtail = q;
	o->qlen += q->run ? q->left : 1;
}

int
state_enqueue(struct orchd *o, char *json)
{
	struct qent *q;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		free(json);
		return -1;
	}
	q->json = json;
	q->len = strlen(json);
	queue_append(o, q);
	return 0;
}

int
state_enqueue_run(struct orchd *o, char *tail, unsigned long long count,
    unsigned long long *first)
{
	struct qent *q;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		free(tail);
		return -1;
	}
	tail[0] = ',';		/* the object's '{' becomes a separator */
	q->json = tail;
	q->len = strlen(tail);
	q->run = 1;
	q->first = o->next_op;
	q->left = count;
	o->next_op += q->left;
	queue_append(o, q);
	*first = q->first;
	return 0;
}

int
state_pop(struct orchd *o, struct buf *b)
{
	struct qent *q = o->qhead;

	if (q == NULL)
		return 0;
	if (q->run) {
		if (buf_printf(b, "{\"operation_id\":\"op-%llu\"", q->first) ==
		    -1 || buf_add(b, q->json, q->len) == -1)
			return -1;
		q->first++;
		q->left--;
	} else if (buf_add(b, q->json, q->len) == -1)
		return -1;
	o->qlen--;
	if (!q->run || q->left == 0) {
		if ((o->qhead = q->next) == NULL)
			o->qtail = NULL;
		free(q->json);
		free(q);
	}
	return 1;
}

static void
results_free(struct orchd *o)
{
	size_t i;

	for (i = 0; i < o->nres; i++) {
		free(o->res[i].op_id);
		free(o->res[i].instance_id);
		free(o->res[i].body);
	}
	free(o->res);
	o->res = NULL;
	o->nres = 0;
}

static int
result_store(struct orchd *o, const char *op_id, const char *iid,
    const char *body, size_t len, int dup)
{
	struct result *r;

	if (o->nres >= o->max_results)
		return 0;
	if (o->nres % 1024 == 0) {
		r = realloc(o->res, (o->nres + 1024) * sizeof(*r));
		if (r == NULL)
			return -1;
		o->res = r;
	}
	r = &o->res[o->nres];
	memset(r, 0, sizeof(*r));
	r->op_id = strdup(op_id);
	r->instance_id = iid ? strdup(iid) : NULL;
	if ((r->body = malloc(len + 1)) != NULL) {
		memcpy(r->body, body, len);
		r->body[len] = '\0';
	}
	if (r->op_id == NULL || r->body == NULL || (iid && !r->instance_id)) {
		free(r->op_id);
		free(r->instance_id);
		free(r->body);
		return -1;
	}
	r->body_len = len;
	r->time = wall_now();
	r->duplicate = dup;
	o->nres++;
	return 0;
}

int
state_result(struct orchd *o, const char *op_id, const char *iid,
    const char *body, size_t len)
{
	int added;

	if (smap_get(&o->ids, op_id, &added) == NULL ||
	    result_store(o, op_id, iid, body, len, !added) == -1)
		return -1;
	o->results++;
	o->duplicates += (unsigned long)!added;
	return 0;
}

void
state_clear(struct orchd *o)
{
	queue_free(o);
	results_free(o);
	smap_clear(&o->ids);
	smap_clear(&o->insts);
	o->results = o->duplicates = o->taken = o->requests = 0;
	o->stream_connects = o->sse_heartbeats = 0;
	memset(o->counts, 0, sizeof(o->counts));
	state_faults_default(o, &o->faults);
}
