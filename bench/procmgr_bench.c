/*
 * procmgr_bench: agent process lifecycles per second over the shared SQLite
 * database, and the size the database settles at.
 *
 * usage: procmgr_bench [-l LIFECYCLES] [-n OPERATIONS] [-w WRITERS]
 *        (-n 0 or -w 0 skips that part)
 *
 * 1. One writer: LIFECYCLES (default 100000) spawn -> exit, each two
 *    transactions that write the process, its goal and result objects, its
 *    view, two events and two audit records.  The same again with the
 *    outbox: exit queues the result, and a third transaction deletes it as
 *    the orchestrator's acknowledgement would.  And as a worker runs an
 *    operation whose handler finishes at once (health): spawn,
 *    exit and outbox row in one transaction (store_batch_begin), which also
 *    deletes the previous lifecycle's acknowledged row
 *    (store_outbox_delete_later).
 * 2. WRITERS (default 8) OS processes, each with its own connection, doing
 *    LIFECYCLES / WRITERS lifecycles at once: with outbox and ack, then in
 *    one transaction each.
 * 3. OPERATIONS (default 1000000) lifecycles with the outbox, with
 *    audit_prune run every 10000 as a worker would, at the configuration's
 *    default retention (store.retention_days, store.max_rows): the database
 *    file size at the end, and bytes per operation.
 * 4. Capability checks (cap_policy) per second by a root, by its child
 *    and by its grandchild, whose capabilities are delegated: what walking
 *    the delegation chain costs (LIFECYCLES checks each).
 *
 * Each part runs in a fresh temporary directory, removed at the end.
 * Figures only; the exit status is non-zero only when something failed.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procmgr/audit.h"
#include "procmgr/capability.h"
#include "core/clock.h"
#include "core/config.h"
#include "procmgr/procmgr.h"
#include "procmgr/store.h"

#define BENCH_PRUNE_EVERY 10000
#define BENCH_PRUNE_BATCHES 100
#define BENCH_GOAL "{\"key\":\"reports/2026/a.csv\"}"
#define BENCH_RESULT "{\"key\":\"reports/2026/a.csv\",\"size\":1234}"
#define BENCH_IMAGE "/api/v1/agent/execute/storage/read"

struct bench {
	struct egressd_config cfg;
	char dir[64];
	struct store st;
	struct procmgr pm;
	char instance[32];
};

static int
bench_open(struct bench *b, int create)
{
	char err[512];

	if (create) {
		snprintf(b->dir, sizeof(b->dir), "/tmp/procmgr-bench-XXXXXX");
		if (mkdtemp(b->dir) == NULL) {
			perror("mkdtemp");
			return -1;
		}
	}
	if (store_open(&b->st, b->dir, b->cfg.store.synchronous,
	    b->cfg.store.busy_timeout, err, sizeof(err)) == -1 ||
	    (create && store_migrate(&b->st, err, sizeof(err)) == -1)) {
		fprintf(stderr, "procmgr_bench: %s\n", err);
		return -1;
	}
	snprintf(b->instance, sizeof(b->instance), "bench-%ld",
	    (long)getpid());
	procmgr_init(&b->pm, &b->st, b->instance, &b->cfg);
	return 0;
}

static void
bench_close(struct bench *b)
{
	procmgr_close(&b->pm);
	store_close(&b->st);
}

static void
bench_remove(struct bench *b)
{
	static const char *const files[] = { "egressd.db", "egressd.db-wal",
	    "egressd.db-shm" };
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", b->dir, files[i]);
		unlink(path);
	}
	rmdir(b->dir);
}

enum bench_mode {
	BENCH_PLAIN,		/* spawn, exit: two transactions */
	BENCH_OUTBOX,		/* and the outbox row, deleted in a third */
	BENCH_ONE_TXN		/* all in one, the delete in the next */
};

static const char *const bench_mode_name[] = { "", ", with outbox and ack",
    ", one transaction each" };

/* One lifecycle (see enum bench_mode). */
static int
bench_lifecycle(struct bench *b, long i, enum bench_mode mode)
{
	int with_outbox = mode != BENCH_PLAIN;
	int batch = mode == BENCH_ONE_TXN;
	struct cap_spec cap = { .resource = "storage:reports/*",
	    .rights = "read", .revocable = 1 };
	struct outbox_entry ob = { .result = BENCH_RESULT };
	char opid[80], err[128] = "";
	agent_pid pid;

	snprintf(opid, sizeof(opid), "op-%s-%ld", b->instance, i);
	ob.operation_id = opid;
	ob.next_attempt = clock_wall() + 5;
	if ((batch && store_batch_begin(&b->st) == -1) ||
	    procmgr_spawn(&b->pm, BENCH_IMAGE, BENCH_GOAL, &cap, 1, opid,
	    NULL, &pid) == -1 ||
	    procmgr_exit(&b->pm, pid, BENCH_RESULT, 0, NULL,
	    with_outbox ? &ob : NULL) == -1 ||
	    (batch && store_batch_end(&b->st, err, sizeof(err)) == -1)) {
		fprintf(stderr, "procmgr_bench: lifecycle %ld: %s\n", i,
		    err[0] ? err : b->pm.err);
		return -1;
	}
	if (batch && store_outbox_delete_later(&b->st, opid) == -1) {
		fprintf(stderr, "procmgr_bench: out of memory\n");
		return -1;
	}
	if (mode == BENCH_OUTBOX && store_outbox_delete(&b->st, opid) == -1) {
		fprintf(stderr, "procmgr_bench: outbox delete: %s\n",
		    store_errmsg(&b->st));
		return -1;
	}
	return 0;
}

static int
bench_run(struct bench *b, long n, enum bench_mode mode)
{
	long i;

	for (i = 0; i < n; i++)
		if (bench_lifecycle(b, i, mode) == -1)
			return -1;
	return 0;
}

static int
bench_single(const struct egressd_config *cfg, long n, enum bench_mode mode)
{
	struct bench b = { .cfg = *cfg };
	double t0, dt;
	int rc;

	if (bench_open(&b, 1) == -1)
		return -1;
	t0 = clock_mono();
	rc = bench_run(&b, n, mode);
	dt = clock_mono() - t0;
	bench_close(&b);
	bench_remove(&b);
	if (rc == 0)
		printf("one writer%s: %ld lifecycles in %.2f s: %.0f "
		    "lifecycles/s\n", bench_mode_name[mode], n, dt,
		    (double)n / dt);
	return rc;
}

static int
bench_concurrent(const struct egressd_config *cfg, long n, int writers,
    enum bench_mode mode)
{
	struct bench b = { .cfg = *cfg };
	int i, status, failed = 0;
	double t0, dt;
	pid_t pid;

	if (bench_open(&b, 1) == -1)
		return -1;
	bench_close(&b);
	t0 = clock_mono();
	for (i = 0; i < writers; i++) {
		if ((pid = fork()) == -1) {
			perror("fork");
			failed = 1;
			break;
		}
		if (pid == 0) {
			if (bench_open(&b, 0) == -1)
				_exit(1);
			status = bench_run(&b, n / writers, mode);
			bench_close(&b);
			_exit(status == 0 ? 0 : 1);
		}
	}
	while (wait(&status) != -1 || errno == EINTR)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	dt = clock_mono() - t0;
	bench_remove(&b);
	if (failed)
		return -1;
	printf("%d writers%s: %ld lifecycles in %.2f s: %.0f lifecycles/s\n",
	    writers, bench_mode_name[mode], n / writers * writers, dt,
	    (double)(n / writers * writers) / dt);
	return 0;
}

static double
bench_file_size(const char *dir, const char *name)
{
	char path[128];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) == 0 ? (double)sb.st_size : 0;
}

static int
bench_size(const struct egressd_config *cfg, long n)
{
	struct bench b = { .cfg = *cfg };
	double t0, dt, db, wal;
	int64_t pruned = 0, r;
	long i;
	int rc = 0;

	if (bench_open(&b, 1) == -1)
		return -1;
	t0 = clock_mono();
	for (i = 0; i < n && rc == 0; i++) {
		rc = bench_lifecycle(&b, i, BENCH_OUTBOX);
		if (rc == 0 && (i + 1) % BENCH_PRUNE_EVERY == 0)
			do {
				r = audit_prune(&b.st,
				    cfg->store.retention_days,
				    cfg->store.max_rows, clock_wall(),
				    BENCH_PRUNE_BATCHES, NULL, 0);
				if (r == -1)
					rc = -1;
				else
					pruned += r;
			} while (r >= BENCH_PRUNE_BATCHES * AUDIT_BATCH);
	}
	dt = clock_mono() - t0;
	bench_close(&b);
	db = bench_file_size(b.dir, "egressd.db");
	wal = bench_file_size(b.dir, "egressd.db-wal");
	bench_remove(&b);
	if (rc == -1) {
		fprintf(stderr, "procmgr_bench: size run failed\n");
		return -1;
	}
	printf("%ld operations in %.1f s (%.0f/s, pruning included), "
	    "retention %.0f days, max_rows %" PRId64 ": database %.1f MB "
	    "(WAL %.1f MB after close), %.0f bytes/operation, %" PRId64
	    " rows pruned\n", n, dt, (double)n / dt,
	    cfg->store.retention_days, cfg->store.max_rows, db / 1e6,
	    wal / 1e6, db / (double)n, pruned);
	return 0;
}

/* n checks by subject; checks per second, or -1. */
static double
bench_checks(struct bench *b, agent_pid subject, long n)
{
	enum cap_policy pol;
	double t0 = clock_mono(), now = clock_wall();
	long i;

	for (i = 0; i < n; i++)
		if (cap_policy(&b->pm, subject, "storage:reports/a.csv", "read",
		    now, &pol) == -1 || pol == CAP_DENY) {
			fprintf(stderr, "procmgr_bench: check by %lld: %s\n",
			    (long long)subject, pol == CAP_DENY ? "denied" :
			    b->pm.err);
			return -1;
		}
	return (double)n / (clock_mono() - t0);
}

/* A root holding storage:reports (all of it) and the authority to fork. */
static int
bench_chain(struct bench *b, agent_pid pid[3])
{
	static const struct cap_spec cap = { .resource = "storage:reports/*",
	    .rights = "read", .delegable = 1, .revocable = 1 };
	static const struct cap_spec spawn = { .resource = "process:spawn",
	    .rights = "write", .delegable = 1, .revocable = 1 };
	const struct cap_spec both[2] = { cap, spawn };

	if (procmgr_spawn(&b->pm, BENCH_IMAGE, BENCH_GOAL, both, 2, "op-chain",
	    NULL, &pid[0]) == -1 ||
	    procmgr_fork(&b->pm, pid[0], NULL, FORK_WORKER, NULL, both, 2,
	    &pid[1]) == -1 ||
	    procmgr_fork(&b->pm, pid[1], NULL, FORK_WORKER, NULL, &cap, 1,
	    &pid[2]) == -1) {
		fprintf(stderr, "procmgr_bench: chain: %s\n", b->pm.err);
		return -1;
	}
	return 0;
}

static int
bench_delegation(const struct egressd_config *cfg, long n)
{
	static const char *const who[3] = { "root", "child (chain of 2)",
	    "grandchild (chain of 3)" };
	struct bench b = { .cfg = *cfg };
	agent_pid pid[3];
	double rate[3];
	int i, rc = -1;

	if (bench_open(&b, 1) == -1)
		return -1;
	if (bench_chain(&b, pid) == 0) {
		for (i = 0; i < 3; i++)
			if ((rate[i] = bench_checks(&b, pid[i], n)) < 0)
				break;
		if (i == 3) {
			for (i = 0; i < 3; i++)
				printf("capability checks, %s: %.0f/s (%.2f x "
				    "the root's time)\n", who[i], rate[i],
				    rate[0] / rate[i]);
			rc = 0;
		}
	}
	bench_close(&b);
	bench_remove(&b);
	return rc;
}

static long
bench_arg(const char *s, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min) {
		fprintf(stderr, "procmgr_bench: bad number %s\n", s);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	struct egressd_config cfg;
	long lifecycles = 100000, operations = 1000000, writers = 8;
	int ch, rc;

	while ((ch = getopt(argc, argv, "l:n:w:")) != -1) {
		switch (ch) {
		case 'l':
			lifecycles = bench_arg(optarg, 1);
			break;
		case 'n':
			operations = bench_arg(optarg, 0);
			break;
		case 'w':
			writers = bench_arg(optarg, 0);
			break;
		default:
			fprintf(stderr, "usage: procmgr_bench [-l LIFECYCLES] "
			    "[-n OPERATIONS] [-w WRITERS]\n");
			return 2;
		}
	}
	if (config_init_defaults(&cfg) == -1) {
		fprintf(stderr, "procmgr_bench: out of memory\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = bench_single(&cfg, lifecycles, BENCH_PLAIN) == -1 ||
	    bench_single(&cfg, lifecycles, BENCH_OUTBOX) == -1 ||
	    bench_single(&cfg, lifecycles, BENCH_ONE_TXN) == -1 ||
	    (writers > 0 && (bench_concurrent(&cfg, lifecycles, (int)writers,
	    BENCH_OUTBOX) == -1 || bench_concurrent(&cfg, lifecycles,
	    (int)writers, BENCH_ONE_TXN) == -1)) ||
	    (operations > 0 && bench_size(&cfg, operations) == -1) ||
	    bench_delegation(&cfg, lifecycles) == -1;
	config_free(&cfg);
	return rc;
}
