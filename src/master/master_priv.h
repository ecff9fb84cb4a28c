/*
 * master_priv: what the arbiter's five files share — the worker table and
 * the master's state.  master.c owns the table, the signals and the control
 * commands that act, relay.c the orchestrator's events, their forwarding to
 * workers and the logs and metrics pushes, master_ctl.c the control
 * socket's queries, master_db.c its database housekeeping, wtable.c what
 * the others read of the table (counts, state names, metrics totals).
 * Calls go one way: master.c calls the other four; relay.c and master_ctl.c
 * call wtable.c only (a goodbye reaches the arbiter through the hook
 * master.c sets, m->goodbye); wtable.c and master_db.c call none of them.
 * Not a public interface: nothing outside these five files includes it.
 */
#ifndef EGRESSD_MASTER_PRIV_H
#define EGRESSD_MASTER_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/orch.h"
#include "core/config.h"
#include "core/evloop.h"
#include "master/master.h"
#include "core/metrics.h"
#include "procmgr/store.h"

struct cJSON;
struct control;
struct events;
struct evloop;
struct httpc;
struct httpc_request;

#define MASTER_KILL_GRACE 2.0		/* SIGABRT -> SIGKILL, as gunicorn */
#define MASTER_FAST_GRACE 2.0		/* fast stop before SIGKILL */
#define MASTER_BACKOFF_FIRST 0.5	/* crash-loop respawn delays: */
#define MASTER_BACKOFF_MAX 30.0		/*   0.5 s doubling to 30 s */
#define MASTER_CRASH_MEMORY 60.0	/* a crash this long after the last */
					/*   one starts a new streak */
#define MASTER_PUSH_QUEUE_MAX 1024	/* pushed operations awaiting a worker */
#define MASTER_NOTICE_GRACE 16.0	/* a worker's shutdown POST (15 s) */
#define MASTER_DB_BUSY_TIMEOUT 0.25	/* seconds the loop may wait on SQLite */
#define MASTER_DEEP_TIMEOUT 1.0		/* health --deep waits this for workers */
#define MASTER_NOTICES_MAX 64		/* dead workers' notices waiting */
#define MASTER_NOTICE_CHECK 0.5		/* how often their outbox is looked at */
#define MASTER_NOTICE_PATIENCE 60.0	/* at least this long, or 5 sweeps */
#define UUID_TEXT_LEN 37
#define MASTER_DB_REASON_MAX 384	/* the database's degraded reason */

enum wstate { WS_BOOTING, WS_READY, WS_BUSY, WS_DRAINING };
#define MASTER_NSTATES 4

struct wproc {
	pid_t pid;
	int slot;
	int generation;
	int fd;			/* channel; -1 once closed */
	char instance_id[UUID_TEXT_LEN];
	enum wstate state;	/* as last reported */
	int ready;		/* has sent READY: counts as capacity */
	int recycle;		/* replace it (max_ops_per_worker) */
	long max_ops;		/* recycle after this many operations */
	int retiring;		/* told to stop; no longer counted */
	const char *retire_reason;
	double started;
	double last_seen;	/* last frame of any kind */
	double abort_sent;	/* SIGABRT for missed heartbeats */
	double kill_after;	/* SIGKILL when still alive by then */
	int killed;
	struct evloop_timer liveness;	/* the next SIGABRT or SIGKILL */
	struct evloop_timer ready_by;	/* graceful_timeout after its start */
	int overdue;		/* not READY by then: no reason to wait */
	unsigned long inflight, done, failed;
	unsigned long queued;	/* waiting in the worker for a free slot */
	unsigned long pushed;	/* operations sent it has not yet reported */
	unsigned long pushes_sent;	/* OPERATION frames sent it, in all */
	unsigned long long rss;
	struct metrics metrics;	/* its last report: cumulative */
	struct master *master;	/* for the channel callback */
	struct wproc *next;
};

enum mstate { MS_RUNNING, MS_STOPPING };

/* The database's size against store.max_bytes (master_db.c). */
struct master_disk {
	struct evloop_timer watch;	/* a look at the file sizes */
	struct store_size size;		/* at the last look */
	double last_look;		/* monotonic, and the file and WAL */
	int64_t last_bytes;		/*   bytes then: the growth rate */
	uint64_t pruned;		/* rows removed by retention, in all */
	uint64_t checks;		/* looks at the sizes (and passes) */
	double next_pass;		/* monotonic: no size pass before */
	int64_t pass_bytes;		/*   unless it grows past this much */
	int blocked;			/* over budget, nothing may go */
	double blocked_logged;		/* monotonic: its last warning */
	char reason[MASTER_DB_REASON_MAX];	/* why, while blocked */
};

/* A logs or metrics POST: 3 tries, 1 s then 2 s apart (relay.c). */
struct relay_push {
	char *body;		/* kept for the next try */
	int tries;
	struct evloop_timer retry;	/* pending: a try is waiting */
	struct httpc_request *req;
};

struct master {
	struct egressd_config *cfg;
	struct master_options opt;
	struct evloop *loop;
	struct control *ctl;
	struct store store;
	int sigfd;
	uint8_t *rxbuf;

	enum mstate state;
	int stop_fast;
	double stop_deadline;
	struct evloop_timer stop_timer;	/* SIGKILL for what still runs */
	int exit_status;

	int target;
	int generation;
	double reload_started;	/* 0 when no rolling restart is under way */
	struct wproc *workers;
	unsigned restarts[CONFIG_WORKERS_MAX];	/* per slot, index slot - 1 */

	int crash_streak;
	double goodbye_restart;	/* when the last goodbye's restart began */
	double last_crash;
	double respawn_after;
	struct evloop_timer respawn;	/* pending: spawns are held back */

	double started;
	int systemd_ready;	/* READY=1 sent for the current generation */

	char instance_id[UUID_TEXT_LEN];	/* the stream's sender ID */
	struct orch_creds creds;
	struct httpc *http;	/* NULL without an orchestrator */
	struct orch orch;
	struct events *events;
	/* What a goodbye event makes the arbiter do (master.c, for relay.c). */
	void (*goodbye)(struct master *m, const char *reason);
	struct relay_push push_metrics;
	struct relay_push push_logs;
	struct pushed_op *pushq;	/* FIFO of operations for no worker yet */
	int npushq;
	unsigned work_rr;	/* round-robin cursor for work_available */
	struct deep_health *deep;	/* health --deep requests awaiting workers */
	struct evloop_timer housekeeping; /* recovery, retention: master_db.c */
	struct master_disk disk;	/* size against the budget: master_db.c */
	int reload_wanted;		/* an upgrade asked for a reload */
	struct metrics retired;		/* last reports of workers reaped */
	uint64_t reloads;
	uint64_t stream_reconnects;	/* of event streams since replaced */
	struct dead_notice *notices;	/* owed for workers that died */
	int nnotices;
};

struct pushed_op {
	char *text;
	struct pushed_op *next;
};

/*
 * The shutdown notice the master owes a worker that died or left results
 * in the outbox (relay.c): sent with that worker's instance ID once its
 * results are delivered.
 */
struct dead_notice {
	char instance_id[UUID_TEXT_LEN];
	int stopped;		/* it stopped (with results left), not died */
	double since;		/* monotonic: when it was reaped */
	int sent;		/* its POST started */
	struct evloop_timer timer;	/* the next look at its outbox */
	struct httpc_request *req;	/* the POST under way */
	struct master *master;
	struct dead_notice *next;
};

/* relay.c */
int relay_setup(struct master *m, const struct egressd_config *cfg,
    const struct orch_creds *previous, char *err, size_t errlen);
int relay_reconfigure(struct master *m, const struct egressd_config *cfg,
    char *err, size_t errlen);
void relay_start_events(struct master *m);
void relay_flush_pushed(struct master *m);
void relay_new_instance_id(struct master *m);
void relay_free(struct master *m);
/*
 * A worker ended (wait status): when it died, or stopped with results
 * still in the outbox, the shutdown notice it did not send is sent for it
 * once those results are delivered.
 */
void relay_worker_died(struct master *m, const char *instance_id,
    int status);

/* master_ctl.c */
/* The queries (status, health, metrics); arg is the master. */
struct cJSON *master_ctl_handle(const char *cmd, const struct cJSON *request,
    void *arg, char *err, size_t errlen);
/* A worker's STATUS_REPLY (o) for the health --deep requests waiting. */
void master_ctl_status_reply(struct master *m, const struct wproc *w,
    const struct cJSON *o);
/* Answer the deep requests still waiting for workers (at exit). */
void master_ctl_expire(struct master *m);

/* wtable.c */
extern const char *const wtable_state_names[MASTER_NSTATES];
int wtable_count(const struct master *m, int ready_only);
/* Operations of every worker, live or reaped, and the master's counters. */
void wtable_metrics(const struct master *m, struct metrics *total,
    struct metrics_master *mm);

/* master_db.c */
/* Also arms the housekeeping timer: recovery and retention while running. */
int master_db_start(struct master *m, char *err, size_t errlen);
void master_db_worker_exited(struct master *m, const char *instance_id,
    const char *how, int status);
/* Outbox rows still holding results of instance_id's processes, or -1. */
int master_db_results_left(struct master *m, const char *instance_id);
/*
 * Why the database makes the agent degraded (over store.max_bytes with
 * only running operations and undelivered results left), or NULL.
 */
const char *master_db_degraded(const struct master *m);

#endif
