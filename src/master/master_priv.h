/*
 * master_priv: what the arbiter's files share — the worker table and
 * the master's state.  master.c owns the table, the signals and the control
 * commands that act, relay.c the orchestrator's events, their forwarding to
 * workers and the logs and metrics pushes, master_ctl.c the control
 * socket's queries, master_db.c its database housekeeping, stateguard.c
 * the watch over the state files (pidfile, control socket, the database's
 * identity), textfile.c writes metrics.textfile, wtable.c what the others
 * read of the table (counts, state names, metrics totals).  Calls go one
 * way: master.c calls the others; textfile.c calls master_ctl.c; relay.c
 * and master_ctl.c call wtable.c, master_ctl.c also master_db.c (a goodbye
 * reaches the arbiter through the hook master.c sets, m->goodbye);
 * master_db.c calls stateguard.c before it opens the database; wtable.c
 * and stateguard.c call none of them (stateguard.c only sets
 * m->guard.db_lost, on which master.c acts).  The reasons health is
 * degraded (m->degraded) are degraded.c's, below them all.  handover.c
 * turns the table into a binary upgrade's state blob and back (master.c
 * calls it; it calls none of them); the mechanics of the upgrade are
 * reexec.c's (include/master/reexec.h), which knows nothing of the table.
 * Not a public interface: nothing outside these files includes it.
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
#include "master/degraded.h"
#include "master/reexec.h"
#include "procmgr/store.h"

struct cJSON;
struct control;
struct control_reply;
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
#define MASTER_BACKUP_MAX (1024 * 1024 + 1)	/* FILE.bak a rollback restores */
#define UUID_TEXT_LEN 37
#define MASTER_ERROR_MAX 160		/* bytes of a link's last failure */
#define MASTER_OUTBOX_FRESH 1.0		/* outbox figures reused this long */
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
	int unreachable;	/* its first exchange failed (UNREACHABLE) */
	double unreachable_at;	/* wall time the master heard of it */
	char fail_kind[16];	/* httpc_failure_name: "tls", "auth"... */
	char fail_error[256];
	long orch_status;	/* its last orchestrator answer, reported */
	double orch_time;	/*   in heartbeats, and when (wall time) */
	unsigned long inflight, done, failed;
	unsigned long queued;	/* in the worker, not yet agent processes */
	unsigned long pushed;	/* operations sent it has not yet reported */
	unsigned long pushes_sent;	/* OPERATION frames sent it, in all */
	struct pushed_op *sent;	/* sent, not yet known to be taken (relay.c) */
	unsigned long long rss;
	struct wlink {		/* its link to the orchestrator, as reported */
		int known;	/* a heartbeat has described it */
		int up;		/* its last exchange succeeded */
		double since;	/* wall time up last changed */
		double ok_at;	/* wall time of its last success; 0 never */
		unsigned long failures;	/* in a row */
		char error[MASTER_ERROR_MAX];
	} link;
	double cpu_seconds;	/* process_* metrics, as reported */
	unsigned long fds;
	double start_time;
	struct metrics metrics;	/* its last report: cumulative */
	char version[REEXEC_VERSION_MAX];	/* of the image that forked it */
	struct master *master;	/* for the channel callback */
	struct wproc *next;
};

enum mstate { MS_RUNNING, MS_STOPPING };

/*
 * What stateguard.c knows of the state files: the database's identity
 * (device and inode of the file the master created or opened at start).
 */
/* One database file as opened at start, and its WAL and wal-index. */
struct stateguard_db {
	char *path;		/* state_dir/egressd.db, egressd-N.db */
	char *wal_path;		/* ...-wal */
	char *shm_path;		/* ...-shm */
	dev_t dev;
	ino_t ino;
	int index;		/* 0-based, as store_file_path's */
	int wal_lost;		/* its WAL was, while workers hold it */
};

struct stateguard {
	struct stateguard_db db[CONFIG_STORE_FILES_MAX];
	int ndb;		/* the files in use (master_db.c) */
	int db_known;		/* the identities above were recorded */
	int db_lost;		/* one removed or replaced: no new work */
	char lost_path[PATH_MAX];	/*   the first of them */
	int wal_lost;		/* one's WAL was, while workers hold it */
	struct evloop_timer timer;	/* the next look (see stateguard.c) */
	int ifd;		/* inotify on the files' folders, or -1 */
	int watching;		/* every folder has its watch */
	int watched_once;	/*   as it had at some point */
};

/* The database's size against store.max_bytes (master_db.c). */
struct master_disk {
	struct evloop_timer watch;	/* a look at the file sizes */
	struct store_size size;		/* at the last look */
	double last_look;		/* monotonic, and the file and WAL */
	int64_t last_bytes;		/*   bytes then: the growth rate */
	double idle_wait;		/* between looks at a file that */
					/*   did not change */
	uint64_t pruned;		/* rows removed by retention, in all */
	uint64_t checks;		/* looks at the sizes (and passes) */
	double next_pass;		/* monotonic: no size pass before */
	int64_t pass_bytes;		/*   unless it grows past this much */
	unsigned blocked;		/* bit i: file i over its share, */
					/*   nothing may go */
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
	struct store store;	/* open only inside a master_db call */
	unsigned db_files;	/* bit i: database file i is in use */
	int db_nfiles;		/*   how many: master_db.c */
	unsigned db_unwritten;	/*   of them, no live worker's at the */
				/*   last housekeeping pass */
	double db_busy_until[CONFIG_STORE_FILES_MAX];	/* monotonic: */
				/*   no open of the file before */
	double db_nowait_until;	/*   monotonic: opens do not wait */
	int sigfd;
	uint8_t *rxbuf;

	enum mstate state;
	int stop_fast;
	double stop_deadline;
	struct evloop_timer stop_timer;	/* SIGKILL for what still runs */
	int exit_status;

	int target;
	int generation;		/* the current one, whose slots are filled */
	int last_generation;	/* the highest started: the next is above */
	double reload_started;	/* 0 when no rolling restart is under way */
	/*
	 * While a rolling restart is under way, what was in force before it
	 * (master_reload): the configuration, credentials, worker count and
	 * generation a rollback goes back to; prev_cfg is NULL otherwise.
	 */
	struct egressd_config *prev_cfg;
	struct orch_creds prev_creds;
	int prev_target;
	int stable_generation;
	int reload_upgrade;	/* an upgrade asked: FILE.bak is the previous */
	struct reload_waiter *reload_waiters;	/* reload --wait replies */
	char reload_failure[512];	/* the last rolled-back reload */
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
	double contact_ok_at;	/* last success of workers reaped (wall) */
	struct store_outbox_stats outbox;	/* as last read (master_db.c) */
	double outbox_read;	/* monotonic; 0 never */
	char systemd_status[256];	/* the STATUS= last sent while waiting */
	struct evloop_timer textfile;	/* the next metrics.textfile write */
	int textfile_failing;	/* log a failing write once */
	struct degraded degraded;	/* why health is degraded */
	int work_held;		/* the database is gone: no work (master.c) */
	struct stateguard guard;	/* the state files: stateguard.c */
	/* Binary upgrades (master.c, upgrade.c, handover.c). */
	struct reexec reexec;		/* the binary's path, the probe */
	int upgrading;			/* the probe runs: exec when it passes */
	struct control_reply *upgrade_waiter;	/* egressctl upgrade */
	char upgrade_from[REEXEC_VERSION_MAX];	/* replaced; "" for none */
	char upgrade_failure[REEXEC_REASON_MAX];	/* the last one's */
	double upgrade_started;	/* wall time of the USR2 (crosses exec) */
	uint64_t upgrades;		/* done, in this daemon's life */
};

/* An "egressctl reload" waiting for its rolling restart's outcome. */
struct reload_waiter {
	struct control_reply *reply;
	struct reload_waiter *next;
};

/*
 * A pushed operation: waiting for a worker (m->pushq), or sent to one and
 * kept until that worker is known to have taken it (w->sent, relay.c).
 */
struct pushed_op {
	char *text;
	char *id;		/* its operation_id */
	unsigned long seq;	/* its OPERATION frame's number (pushes_sent) */
	double sent_at;		/* wall clock, when sent */
	struct pushed_op *next;
};

/*
 * The shutdown notice the master owes a worker that died or left results
 * in the outbox (relay.c): sent with that worker's instance ID once its
 * results are delivered.
 */
struct dead_notice {
	char instance_id[UUID_TEXT_LEN];
	int slot;		/* its worker's, for its database file */
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
/*
 * A worker's heartbeat: it has received `received` OPERATION frames and
 * holds `waiting` operations it has not started; the pushes it has surely
 * taken (made agent processes) are forgotten.
 */
void relay_pushes_seen(struct wproc *w, unsigned long received,
    unsigned long waiting);
/*
 * A worker was reaped (its last heartbeats read): each push it may not
 * have taken is looked up in the database, and one without an agent
 * process of that worker is handed to another worker.
 */
void relay_pushes_orphaned(struct master *m, struct wproc *w);
/* Forget what was sent to w (the master exits). */
void relay_sent_free(struct wproc *w);
void relay_new_instance_id(struct master *m);
/*
 * Back to cfg and creds (taken over), the configuration before a reload
 * that was rolled back; relay_start_events() then reopens the stream.
 */
void relay_restore(struct master *m, const struct egressd_config *cfg,
    struct orch_creds *creds);
void relay_free(struct master *m);
/*
 * A worker ended (wait status): when it died, or stopped with results
 * still in the outbox, the shutdown notice it did not send is sent for it
 * once those results are delivered.
 */
void relay_worker_died(struct master *m, const char *instance_id,
    int slot, int status);

/* master_ctl.c */
/* The queries (status, health, metrics); arg is the master. */
struct cJSON *master_ctl_handle(const char *cmd, const struct cJSON *request,
    void *arg, char *err, size_t errlen);
/* A worker's STATUS_REPLY (o) for the health --deep requests waiting. */
void master_ctl_status_reply(struct master *m, const struct wproc *w,
    const struct cJSON *o);
/* Answer the deep requests still waiting for workers (at exit). */
void master_ctl_expire(struct master *m);
/* The Prometheus text of everything (malloc'd), NULL when out of memory. */
char *master_ctl_render_metrics(struct master *m);

/* textfile.c: metrics.textfile, written every textfile_interval. */
void textfile_start(struct master *m);
void textfile_stop(struct master *m);

/* wtable.c */
extern const char *const wtable_state_names[MASTER_NSTATES];
int wtable_count(const struct master *m, int ready_only);
/* Operations of every worker, live or reaped, and the master's counters. */
void wtable_metrics(const struct master *m, struct metrics *total,
    struct metrics_master *mm);

/* stateguard.c */
#define STATEGUARD_EVERY 2.0	/* seconds between looks at the state files */
#define STATEGUARD_QUIET 10.0	/*   when inotify says what changes */
#define STATEGUARD_SETTLE 0.5	/*   after inotify said something did */
/* Note the database's identity (after master_db_start) and arm the timer. */
int stateguard_start(struct master *m, char *err, size_t errlen);
/*
 * Before the master opens the database: does its path still name the file
 * opened at start (and its WAL the one the workers write)?  A "no" is
 * noted as a degraded reason and holds new work back (m->guard.db_lost).
 */
int stateguard_db_ok(struct master *m);
/* Before the first open of file index: a gone one's WAL, -shm aside. */
void stateguard_set_aside(const char *state_dir, int index);
void stateguard_free(struct master *m);

/* handover.c: what crosses a binary upgrade's exec (the state blob). */
#define HANDOVER_FDS_MAX (CONFIG_WORKERS_MAX * 2 + 8)
/*
 * The blob: counters, generations, queued pushes, the worker table and
 * the descriptors (which also go into fds[], *nfds of them, for the exec
 * to keep open).  waiter_fd is egressctl upgrade's connection, or -1.
 */
struct cJSON *handover_encode(struct master *m, int waiter_fd, int *fds,
    int *nfds);
/* The restart-only keys (paths, user) keep the running image's values. */
int handover_keep_paths(struct egressd_config *cfg, const struct cJSON *state,
    char *err, size_t errlen);
/* Counters, generations, instance ID, pushes; not the workers. */
int handover_restore(struct master *m, const struct cJSON *state, char *err,
    size_t errlen);
/* One entry of state's "workers" into w (bookkeeping only); -1 if bad. */
int handover_worker(const struct cJSON *item, struct wproc *w, double now);
/* A descriptor the blob names (key), or -1. */
int handover_fd(const struct cJSON *state, const char *key);
const char *handover_string(const struct cJSON *state, const char *key);

/* master_db.c */
/* Also arms the housekeeping timer: recovery and retention while running. */
int master_db_start(struct master *m, char *err, size_t errlen);
/* slot: the worker's, for the file it wrote (0: not known). */
void master_db_worker_exited(struct master *m, const char *instance_id,
    int slot, const char *how, int status);
/* Outbox rows still holding results of instance_id's processes, or -1. */
int master_db_results_left(struct master *m, const char *instance_id,
    int slot);
/* Refresh m->outbox unless read in the last MASTER_OUTBOX_FRESH s. */
void master_db_outbox(struct master *m);
/*
 * Whether instance_id made operation_id an agent process created at
 * `since` (wall clock) or later: 1, 0, or -1 when the database cannot say.
 */
int master_db_took_operation(struct master *m, const char *instance_id,
    int slot, const char *operation_id, double since);
/*
 * Why the database makes the agent degraded (over store.max_bytes with
 * only running operations and undelivered results left), or NULL.
 */
const char *master_db_degraded(const struct master *m);
/* After a reload: look at the sizes now, against the new budget. */
void master_db_reconfigured(struct master *m);
/*
 * The sizes of the last look, with the file and WAL bytes read now (two
 * stat calls): the watch looks at an unchanging file only every few
 * seconds.
 */
void master_db_sizes(const struct master *m, struct store_size *sz);

#endif
