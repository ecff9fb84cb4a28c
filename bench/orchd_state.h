/*
 * orchd_state: the orchestrator's state, struct orchd, and what keeps it:
 * the operations queue (single operations and runs of generated op-N
 * ones), the results received, the instances and the faults' defaults.
 * The modules above read the fields of struct orchd, bump its counters
 * (and an instance's, from state_inst) and set the faults; once main has
 * set it up, the queue, the results, the instance map and the op-N
 * counter change only through state_*.
 */
#ifndef ORCHD_STATE_H
#define ORCHD_STATE_H

#include <stddef.h>
#include <time.h>

#include "orchd_http.h"

#define ORCHD_MIN_INTERVAL	0.001
#define ORCHD_NO_INSTANCE	"-"	/* instance key without the header */

/* The agent endpoints; their names are in orchd_admin.c, in this order. */
enum orchd_ep {
	EP_STREAM, EP_OPERATION, EP_RESULT, EP_REQUEST, EP_HEARTBEAT,
	EP_SHUTDOWN, EP_LOGS, EP_METRICS, EP_UNKNOWN, EP_COUNT
};

struct smap_ent {
	char	*key;
	void	*val;		/* malloc'd or NULL; freed with the map */
};

/* Strings to values: open addressing, never shrinks. */
struct smap {
	struct smap_ent	*ents;
	size_t		 cap;
	size_t		 n;
};

struct inst {
	unsigned long	 requests, heartbeats, shutdowns, results, operations;
	unsigned long	 empty_polls, logs, metrics, stream_connects;
};

struct faults {
	int	 heartbeats;
	int	 heartbeat_comments;	/* ": heartbeat" instead of an event */
	int	 push_metrics;
	int	 piggyback;
	int	 auth_fail;
	int	 refuse_all;
	double	 heartbeat_interval;
};

struct result {
	char	*op_id;
	char	*instance_id;	/* NULL without the header */
	char	*body;		/* the PUT body, {"result": ...} */
	size_t	 body_len;
	double	 time;
	int	 duplicate;
};

struct qent;

struct orchd {
	struct http_server http;	/* connections, streams included */
	int		 lfd, sfd;	/* orchd.c: listening socket, signals */
	int		 port;
	int		 quit;
	const char	*token_id, *token, *agent_id;
	double		 default_interval;
	size_t		 max_results;
	struct faults	 faults;
	struct qent	*qhead, *qtail;
	unsigned long long qlen;
	unsigned long long next_op;	/* op-N; never reset */
	struct result	*res;		/* the first max_results results */
	size_t		 nres;
	unsigned long	 results, duplicates, taken, requests;
	unsigned long	 stream_connects, sse_heartbeats;
	unsigned long	 counts[EP_COUNT];
	struct smap	 ids;		/* operation IDs with a result */
	struct smap	 insts;		/* instance ID -> struct inst */
	struct buf	 scratch;	/* a reply or an event being built */
};

/* The monotonic clock and the wall clock, in seconds. */
static inline double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The next N of a generated operation ID op-N. */
unsigned long long state_next_op(struct orchd *o);
/* The faults with nothing injected. */
void state_faults_default(struct orchd *o, struct faults *f);
/* The counters of an instance (iid NULL: no header), made when missing. */
struct inst *state_inst(struct orchd *o, const char *iid);
/* Queues one operation, the JSON json (taken, also on error): 0 or -1. */
int state_enqueue(struct orchd *o, char *json);
/*
 * Queues count operations op-N... as one entry: each is
 * {"operation_id":"op-N", then the members of the object tail (taken, also
 * on error).  -> 0 with the first N in *first, or -1.
 */
int state_enqueue_run(struct orchd *o, char *tail, unsigned long long count,
    unsigned long long *first);
/* Appends the next operation's JSON to b: 1, 0 when empty, -1 on ENOMEM. */
int state_pop(struct orchd *o, struct buf *b);
/*
 * Records the result body of op_id from instance iid (NULL: none): counted,
 * and stored while fewer than max_results are.  -> 0, or -1 on ENOMEM.
 */
int state_result(struct orchd *o, const char *op_id, const char *iid,
    const char *body, size_t len);
/* Forgets everything but open streams and the operation ID counter. */
void state_clear(struct orchd *o);

#endif
