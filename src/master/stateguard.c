/*
 * stateguard: the master's watch over its state files while it runs.
 *
 * STATEGUARD_SETTLE after inotify reports one of them created, removed,
 * renamed or given other attributes in the folders that hold them, and
 * before the master opens the database, it looks at the state files (a
 * look is a few stat and read calls):
 *
 * - the pidfile and the control socket: removed or replaced (tmpfiles
 *   cleanup, an operator's rm), they are made again, so init scripts and
 *   egressctl keep finding the master;
 * - the database: its path must still name the file opened at start
 *   (device and inode), and its WAL must be the one the workers write:
 *   the shared wal-index (-shm) names the WAL's salts and length, and a
 *   WAL at the path with other salts, or shorter, or none at all, is not
 *   the one the index describes.  A database removed or replaced, or a WAL
 *   removed, is a degraded reason and holds new work back (master.c
 *   retires the workers, who finish and deliver what they hold, and
 *   spawns no others; nothing opens the path meanwhile, so nothing writes
 *   into an empty new file).  The WAL's case ends by itself: the last
 *   worker to close checkpoints the WAL it still holds into the database,
 *   which then is whole again, and work resumes.  A database file removed
 *   or replaced stays a fault until its file is back or the daemon is
 *   restarted (docs/OPERATIONS.md);
 * - whether the database may still be written (a chmod while running):
 *   new workers could not start.
 *
 * Without inotify, or while a folder has no watch (one removed and not
 * made again yet), or while something is wrong, it also looks every
 * STATEGUARD_EVERY seconds; otherwise every STATEGUARD_QUIET, for what
 * inotify does not report: a file changed in place by a plain
 * truncate(2) or write without a close (a worker's commits would raise
 * IN_MODIFY all the time), a folder above the watched ones renamed or
 * mounted over, a symlinked state_dir swapped, another host's change on
 * NFS.  An idle master is thus not woken every STATEGUARD_EVERY for
 * nothing.  The master's own opens in these folders (the pidfile and
 * socket made again, its brief SQLite connections closing -wal and -shm)
 * cause a look too, which finds nothing.
 *
 * The master holds no SQLite connection here: the files are read with
 * plain descriptors, opened and closed while no connection of this process
 * is open (closing a descriptor drops this process's POSIX locks on the
 * file, which SQLite would otherwise hold).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "core/evloop.h"
#include "core/log.h"
#include "master/control.h"
#include "master/degraded.h"
#include "master/pidfile.h"
#include "master_priv.h"

#define STATEGUARD_KEY_DB "database"
#define STATEGUARD_KEY_ACCESS "database_access"
#define STATEGUARD_KEY_PIDFILE "pidfile"
#define STATEGUARD_KEY_SOCKET "control_socket"

/* SQLite's WAL and wal-index layouts (sqlite.org/walformat.html). */
#define WAL_HDR_SIZE 32
#define WAL_FRAME_HDR 24
#define WAL_SALT_OFFSET 16	/* in the WAL header, big-endian bytes */
#define SHM_HDR_SIZE 48		/* one copy; two copies lead the -shm */
#define SHM_ISINIT 12
#define SHM_PGSZ 14		/* u16, native order; 1 means 65536 */
#define SHM_MXFRAME 16		/* u32, native order */
#define SHM_SALT 32		/* the WAL header's salts, as its bytes */

#define STATEGUARD_WAL_TRIES 4	/* looks while commits move the index */

enum stateguard_wal { WAL_OK, WAL_UNKNOWN, WAL_UNSTABLE, WAL_GONE };

/* A new string: path followed by suffix ("-wal"), or NULL. */
static char *
stateguard_path(const char *path, const char *suffix)
{
	size_t len = strlen(path) + strlen(suffix) + 1;
	char *p = malloc(len);

	if (p != NULL)
		snprintf(p, len, "%s%s", path, suffix);
	return p;
}

/* A live worker holds its connection from before HELLO to its exit. */
static int
stateguard_connected(const struct master *m)
{
	const struct wproc *w;

	for (w = m->workers; w != NULL; w = w->next)
		if (w->instance_id[0] != '\0')
			return 1;
	return 0;
}

/* The -shm's leading header, when both copies agree; 0, or -1. */
static int
stateguard_read_shm(const char *path, uint8_t hdr[SHM_HDR_SIZE],
    struct stat *sb)
{
	uint8_t buf[2 * SHM_HDR_SIZE];
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	if (fstat(fd, sb) == 0 && pread(fd, buf, sizeof(buf), 0) ==
	    (ssize_t)sizeof(buf) && memcmp(buf, buf + SHM_HDR_SIZE,
	    SHM_HDR_SIZE) == 0 && buf[SHM_ISINIT] != 0) {
		memcpy(hdr, buf, SHM_HDR_SIZE);
		rc = 0;
	}
	close(fd);
	return rc;
}

/*
 * Does the WAL at the path hold the frames the wal-index says it has?
 * Only a stable answer counts: the index is read before and after the
 * WAL, and any change between (a commit, a restart of the log, the last
 * connection closing and removing both files) makes it WAL_UNSTABLE.
 */
static enum stateguard_wal
stateguard_look_wal(const struct stateguard_db *g)
{
	uint8_t before[SHM_HDR_SIZE], after[SHM_HDR_SIZE], wal[WAL_HDR_SIZE];
	struct stat sa, sb, ws;
	uint32_t mxframe, pgsz;
	uint16_t sz16;
	int fd, have = 0;

	if (stateguard_read_shm(g->shm_path, before, &sa) == -1)
		return WAL_UNKNOWN;
	memcpy(&mxframe, before + SHM_MXFRAME, sizeof(mxframe));
	memcpy(&sz16, before + SHM_PGSZ, sizeof(sz16));
	pgsz = sz16 == 1 ? 65536u : sz16;
	if (mxframe == 0 || pgsz < 512)
		return WAL_UNKNOWN;	/* an empty log: no frame to lose */
	if ((fd = open(g->wal_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		have = fstat(fd, &ws) == 0 && pread(fd, wal, sizeof(wal), 0) ==
		    (ssize_t)sizeof(wal);
		close(fd);
	}
	if (stateguard_read_shm(g->shm_path, after, &sb) == -1 ||
	    sa.st_ino != sb.st_ino || sa.st_dev != sb.st_dev ||
	    memcmp(before, after, SHM_HDR_SIZE) != 0)
		return WAL_UNSTABLE;
	if (!have || memcmp(wal + WAL_SALT_OFFSET, before + SHM_SALT, 8) != 0 ||
	    (uint64_t)ws.st_size < WAL_HDR_SIZE + (uint64_t)mxframe *
	    (WAL_FRAME_HDR + pgsz))
		return WAL_GONE;
	return WAL_OK;
}

static enum stateguard_wal
stateguard_check_wal(const struct stateguard_db *g)
{
	enum stateguard_wal rc = WAL_UNSTABLE;
	int i;

	for (i = 0; i < STATEGUARD_WAL_TRIES && rc == WAL_UNSTABLE; i++)
		rc = stateguard_look_wal(g);
	return rc;
}

/*
 * A file past store.files that no worker writes, removed or replaced: it
 * was kept only for its history and undelivered results (see
 * master_db_adopt_outbox), so it is forgotten rather than holding work.
 */
static void
stateguard_forget_db(struct master *m, int i, const char *what)
{
	struct stateguard *g = &m->guard;
	struct stateguard_db *f = &g->db[i];

	log_warnx("database %s, past store.files (%d) and written by no "
	    "worker, was %s while running; it is no longer read", f->path,
	    m->cfg->store.files, what);
	m->db_files &= ~(1u << f->index);
	m->db_nfiles--;
	m->disk.blocked &= ~(1u << f->index);	/* its data went with it */
	free(f->path);
	free(f->wal_path);
	free(f->shm_path);
	memmove(f, f + 1, (size_t)(g->ndb - i - 1) * sizeof(*f));
	g->ndb--;
}

/*
 * Why a database file is not the one opened at start, or NULL; *which
 * gets that file's g->db entry.
 */
static const char *
stateguard_check_db(struct master *m, char *buf, size_t len,
    const struct stateguard_db **which)
{
	struct stateguard *g = &m->guard;
	const struct stateguard_db *f;
	struct stat sb;
	int i, gone;

	if (!g->db_known)
		return NULL;
	for (i = 0; i < g->ndb; i++) {
		f = &g->db[i];
		gone = stat(f->path, &sb) == -1;
		if (!gone && sb.st_dev == f->dev && sb.st_ino == f->ino)
			continue;
		if (f->index >= m->cfg->store.files) {
			stateguard_forget_db(m, i--, gone ? "removed" :
			    "replaced");
			continue;
		}
		*which = f;
		if (gone)
			snprintf(buf, len, "database %s was removed while "
			    "running (%s)", f->path, strerror(errno));
		else
			snprintf(buf, len, "database %s was replaced while "
			    "running (inode %lu, opened as %lu)", f->path,
			    (unsigned long)sb.st_ino, (unsigned long)f->ino);
		return buf;
	}
	return NULL;
}

static void
stateguard_check_access(struct master *m)
{
	const struct stateguard_db *f;
	struct stat sb;
	int i;

	for (i = 0; i < m->guard.ndb; i++) {
		f = &m->guard.db[i];
		if (f->index >= m->cfg->store.files)
			continue;	/* no worker opens it */
		if (access(f->path, R_OK | W_OK) == 0 ||
		    stat(f->path, &sb) == -1)
			continue;
		degraded_set(&m->degraded, STATEGUARD_KEY_ACCESS, "database "
		    "%s is not writable by uid %ld (mode %04o, owner uid %ld): "
		    "new workers cannot start", f->path, (long)geteuid(),
		    (unsigned)(sb.st_mode & 07777), (long)sb.st_uid);
		return;
	}
	degraded_clear(&m->degraded, STATEGUARD_KEY_ACCESS);
}

/*
 * A WAL once found gone stays so while a worker may still hold the old
 * one: a look that cannot tell (the index busy) proves nothing.  The
 * first file whose WAL is gone, or NULL.
 */
static const struct stateguard_db *
stateguard_wals(struct master *m)
{
	struct stateguard *g = &m->guard;
	const struct stateguard_db *lost = NULL;
	int i, connected = stateguard_connected(m);

	for (i = 0; i < g->ndb; i++) {
		if (!connected)
			g->db[i].wal_lost = 0;
		else if (!g->db[i].wal_lost &&
		    stateguard_check_wal(&g->db[i]) == WAL_GONE)
			g->db[i].wal_lost = 1;
		if (g->db[i].wal_lost && lost == NULL)
			lost = &g->db[i];
	}
	g->wal_lost = lost != NULL;
	return lost;
}

int
stateguard_db_ok(struct master *m)
{
	struct stateguard *g = &m->guard;
	char buf[DEGRADED_TEXT_MAX];
	const struct stateguard_db *f = NULL;
	const char *why = stateguard_check_db(m, buf, sizeof(buf), &f);

	if (why == NULL && (f = stateguard_wals(m)) != NULL) {
		snprintf(buf, sizeof(buf), "database %s: its WAL %s was "
		    "removed or replaced while running; the workers finish "
		    "what they hold, and work resumes once the last of them "
		    "has written the WAL it holds back", f->path, f->wal_path);
		why = buf;
	}
	if (why == NULL) {
		if (g->db_lost)
			log_info("database %s is itself again; taking work",
			    g->lost_path);
		g->db_lost = 0;
		degraded_clear(&m->degraded, STATEGUARD_KEY_DB);
		return 1;
	}
	if (degraded_set(&m->degraded, STATEGUARD_KEY_DB, "%s; no new work "
	    "is taken", why) && !g->db_lost)
		log_errx("%s: the workers finish and deliver what they hold; "
		    "none is started and nothing opens the path until it "
		    "names that file again (or egressd restarts)", why);
	if (!g->db_lost)
		snprintf(g->lost_path, sizeof(g->lost_path), "%s", f->path);
	g->db_lost = 1;
	return 0;
}

static void
stateguard_check_pidfile(struct master *m)
{
	char err[512];
	pid_t other;

	if (m->opt.pidfile == NULL)
		return;
	switch (pidfile_check(m->opt.pidfile, getpid(), &other, err,
	    sizeof(err))) {
	case PIDFILE_ACQUIRED:
		degraded_clear(&m->degraded, STATEGUARD_KEY_PIDFILE);
		return;
	case PIDFILE_STALE:
		log_warnx("pidfile %s was removed or replaced; written again",
		    m->opt.pidfile->path);
		degraded_clear(&m->degraded, STATEGUARD_KEY_PIDFILE);
		return;
	case PIDFILE_HELD:
		/* A starter that is about to be refused lets go of it soon. */
		degraded_set(&m->degraded, STATEGUARD_KEY_PIDFILE, "pidfile %s "
		    "was replaced by one pid %ld holds", m->opt.pidfile->path,
		    (long)other);
		return;
	default:
		degraded_set(&m->degraded, STATEGUARD_KEY_PIDFILE, "%s "
		    "(removed while running; cannot write it again)", err);
	}
}

static void
stateguard_check_socket(struct master *m)
{
	const char *path = m->cfg->server.control_socket;
	char err[512];

	if (pidfile_make_dir(path) == -1) {
		degraded_set(&m->degraded, STATEGUARD_KEY_SOCKET, "control "
		    "socket %s: its directory: %s", path, strerror(errno));
		return;
	}
	switch (control_check(m->ctl, err, sizeof(err))) {
	case 0:
		degraded_clear(&m->degraded, STATEGUARD_KEY_SOCKET);
		return;
	case 1:
		log_warnx("control socket %s was removed or replaced; bound "
		    "again", path);
		degraded_clear(&m->degraded, STATEGUARD_KEY_SOCKET);
		return;
	default:
		degraded_set(&m->degraded, STATEGUARD_KEY_SOCKET, "%s "
		    "(the socket was removed while running)", err);
	}
}

/*
 * IN_CLOSE_WRITE catches a file written over in place by a tool (cp, dd,
 * truncate(1) open, write and close it); not IN_MODIFY, which every
 * commit of a worker would raise.
 */
#define STATEGUARD_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | \
	IN_MOVED_TO | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | \
	IN_MOVE_SELF)

/* A watch on the folder that holds path; 0, or -1 (none). */
static int
stateguard_watch_dir_of(int ifd, const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return inotify_add_watch(ifd, dirname(buf), STATEGUARD_EVENTS) == -1 ?
	    -1 : 0;
}

/*
 * (Re)add the watches: adding one a folder already has is a no-op, and a
 * folder removed and made again needs a new one.
 */
static void
stateguard_watch(struct master *m)
{
	struct stateguard *g = &m->guard;
	int ok;

	if (g->ifd < 0) {
		g->watching = 0;
		return;
	}
	ok = stateguard_watch_dir_of(g->ifd, g->db[0].path) == 0 &&
	    stateguard_watch_dir_of(g->ifd, m->cfg->server.control_socket) ==
	    0 && (m->opt.pidfile == NULL ||
	    stateguard_watch_dir_of(g->ifd, m->opt.pidfile->path) == 0);
	if (!ok && g->watching)
		log_info("state files: a folder has no inotify watch (%s); "
		    "looked at every %.0f s", strerror(errno),
		    STATEGUARD_EVERY);
	else if (ok && !g->watching && g->watched_once)
		log_info("state files: every folder watched again");
	g->watched_once |= ok;
	g->watching = ok;
}

static int
stateguard_faulty(const struct master *m)
{
	static const char *const keys[] = { STATEGUARD_KEY_DB,
	    STATEGUARD_KEY_ACCESS, STATEGUARD_KEY_PIDFILE,
	    STATEGUARD_KEY_SOCKET };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (degraded_get(&m->degraded, keys[i]) != NULL)
			return 1;
	return m->guard.db_lost || m->guard.wal_lost;
}

static void
stateguard_look(struct master *m)
{
	if (m->state != MS_RUNNING)
		return;		/* stopping: the files go with the master */
	stateguard_check_pidfile(m);
	stateguard_check_socket(m);
	if (stateguard_db_ok(m))
		stateguard_check_access(m);
	stateguard_watch(m);
	evloop_timer_add(m->loop, &m->guard.timer, clock_mono() +
	    (m->guard.watching && !stateguard_faulty(m) ? STATEGUARD_QUIET :
	    STATEGUARD_EVERY));
}

static void
stateguard_on_timer(void *arg)
{
	stateguard_look(arg);
}

/* Whether name is path's last part, or that followed by '-' (-wal). */
static int
stateguard_names(const char *path, const char *name)
{
	const char *base;
	size_t n;

	if (path == NULL)
		return 0;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	n = strlen(base);
	return strncmp(name, base, n) == 0 && (name[n] == '\0' ||
	    name[n] == '-');
}

/* Whether name (in a watched folder) is one of the state files. */
static int
stateguard_ours(const struct master *m, const char *name)
{
	int i;

	for (i = 0; i < m->guard.ndb; i++)
		if (stateguard_names(m->guard.db[i].path, name))
			return 1;
	return stateguard_names(m->cfg->server.control_socket, name) ||
	    (m->opt.pidfile != NULL &&
	    stateguard_names(m->opt.pidfile->path, name));
}

/*
 * Events from the watched folders: one about a state file, a folder itself
 * (removed, renamed, its watch gone) or a lost queue calls for a look;
 * others (the folder may be /run, shared with other daemons) do not.
 */
static void
stateguard_on_event(int fd, short revents, void *arg)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct
	    inotify_event))));
	const struct inotify_event *ev;
	struct master *m = arg;
	ssize_t n, off;
	double settle;
	int look = 0;

	(void)revents;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (off = 0; off < n; off += (ssize_t)sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(buf + off);
			/* A folder renamed away is not ours any more. */
			if (ev->mask & IN_MOVE_SELF)
				(void)inotify_rm_watch(fd, ev->wd);
			/* Without a name: about a folder itself (its mode, */
			/* its removal), or events lost. */
			if (ev->len == 0 || stateguard_ours(m, ev->name))
				look = 1;
		}
	if (n == -1 && errno != EAGAIN && errno != EINTR) {
		log_warn("state files: inotify");
		look = 1;
	}
	/*
	 * Not at once: an rm -r of the runtime folder, or a file replaced by
	 * a rename, is several events; a pidfile made again in the middle
	 * of the rm would make its rmdir fail.
	 */
	settle = clock_mono() + STATEGUARD_SETTLE;
	if (look && (!evloop_timer_pending(&m->guard.timer) ||
	    m->guard.timer.when > settle))
		evloop_timer_add(m->loop, &m->guard.timer, settle);
}

static void
stateguard_inotify(struct master *m)
{
	struct stateguard *g = &m->guard;

	if ((g->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1) {
		log_warn("state files: inotify; looked at every %.0f s",
		    STATEGUARD_EVERY);
		return;
	}
	if (evloop_add(m->loop, g->ifd, POLLIN, stateguard_on_event, m) ==
	    -1) {
		log_warnx("state files: cannot watch the inotify descriptor; "
		    "looked at every %.0f s", STATEGUARD_EVERY);
		close(g->ifd);
		g->ifd = -1;
		return;
	}
	g->watching = 1;	/* so a first failure is logged */
	stateguard_watch(m);
}

/*
 * At start, before the database is opened: a WAL or wal-index left beside
 * a database that is gone belongs to that database.  SQLite would replay
 * its frames into a new empty file; they are moved aside instead.
 */
void
stateguard_set_aside(const char *state_dir, int index)
{
	static const char *const suffixes[] = { "-wal", "-shm" };
	char db[PATH_MAX], from[PATH_MAX + 8], to[PATH_MAX + 16];
	struct stat sb;
	size_t i;

	if (store_file_path(state_dir, index, db, sizeof(db)) == -1)
		return;
	for (i = 0; lstat(db, &sb) == -1 && errno == ENOENT &&
	    i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(from, sizeof(from), "%s%s", db, suffixes[i]);
		snprintf(to, sizeof(to), "%s%s.orphan", db, suffixes[i]);
		if (rename(from, to) == 0)
			log_warnx("database %s is missing: %s moved to %s", db,
			    from, to);
		else if (errno != ENOENT)
			log_warn("database %s is missing: moving %s aside", db,
			    from);
	}
}

/* Note file index's paths and identity as g->db[g->ndb]. */
static int
stateguard_note_db(struct master *m, int index, char *err, size_t errlen)
{
	struct stateguard_db *f = &m->guard.db[m->guard.ndb];
	char path[PATH_MAX];
	struct stat sb;

	/* Counted at once: stateguard_free frees what was made. */
	m->guard.ndb++;
	f->index = index;
	if (store_file_path(m->cfg->server.state_dir, index, path,
	    sizeof(path)) == -1 || (f->path = strdup(path)) == NULL ||
	    (f->wal_path = stateguard_path(path, "-wal")) == NULL ||
	    (f->shm_path = stateguard_path(path, "-shm")) == NULL) {
		snprintf(err, errlen, "database: out of memory");
		return -1;
	}
	if (stat(f->path, &sb) == -1) {
		snprintf(err, errlen, "database %s: %s", f->path,
		    strerror(errno));
		return -1;
	}
	f->dev = sb.st_dev;
	f->ino = sb.st_ino;
	return 0;
}

int
stateguard_start(struct master *m, char *err, size_t errlen)
{
	struct stateguard *g = &m->guard;
	int i;

	for (i = 0; i < CONFIG_STORE_FILES_MAX; i++)
		if ((m->db_files & (1u << i)) &&
		    stateguard_note_db(m, i, err, errlen) == -1)
			return -1;
	g->db_known = 1;
	g->ifd = -1;
	stateguard_inotify(m);
	evloop_timer_init(&g->timer, stateguard_on_timer, m);
	evloop_timer_add(m->loop, &g->timer, clock_mono() +
	    (g->watching ? STATEGUARD_QUIET : STATEGUARD_EVERY));
	return 0;
}

void
stateguard_free(struct master *m)
{
	struct stateguard *g = &m->guard;
	int i;

	if (g->db_known)
		evloop_timer_cancel(&g->timer);
	if (g->db_known && g->ifd >= 0) {
		evloop_remove(m->loop, g->ifd);
		close(g->ifd);
	}
	for (i = 0; i < g->ndb; i++) {
		free(g->db[i].path);
		free(g->db[i].wal_path);
		free(g->db[i].shm_path);
	}
	memset(g, 0, sizeof(*g));
}
