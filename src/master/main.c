/*
 * egressd: the egress agent daemon.  main() is the start-up story:
 * flags -> configuration (-t stops here) -> log -> pidfile -> the state
 * directory's lock -> signals and control socket -> privilege drop ->
 * database -> daemonize -> the master's loop -> clean exit.  An image
 * started by a binary upgrade (EGRESSD_UPGRADE_STATE) takes the pidfile,
 * the lock and the control socket as handed over, and goes back to the
 * previous image if it fails before it adopted the workers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/preflight.h"
#include "master/master.h"
#include "master/pidfile.h"
#include "master/statelock.h"
#include "master/reexec.h"
#include "core/version.h"

#define EXIT_CONFIG 2		/* like nginx -t: the configuration is bad */
#define EXIT_VERIFY 1		/* -T: the orchestrator refused or was not reached */

struct options {
	const char *config_path;
	int workers;
	int daemonize;
	int test_only;
	int verify;		/* -T: -t and one request to the orchestrator */
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: egressd [-c FILE] [-w N] [-D] [-t | -T] [-V] [-h]\n"
	    "\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -w N     number of workers, overriding server.workers (1-%d)\n"
	    "  -D       daemonize (detach from the terminal), like "
	    "server.daemonize\n"
	    "  -t       check the configuration file and what start-up needs "
	    "(state_dir,\n"
	    "           pidfile directory, token file, ca_file) and exit (0 = "
	    "OK, 2 = error)\n"
	    "  -T       -t, then one authenticated request to the orchestrator "
	    "through the\n"
	    "           configured proxy and TLS settings, one line per step "
	    "(1 = it failed)\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n"
	    "\n"
	    "Signals to the master: TERM graceful stop, INT/QUIT fast stop, "
	    "HUP reload\nand rolling restart, TTIN/TTOU one worker more/fewer, "
	    "USR1 reopen logs,\nUSR2 upgrade: re-execute the binary in place "
	    "(same PID) and replace the workers.\n", CONFIG_DEFAULT_PATH,
	    CONFIG_WORKERS_MAX);
}

static int
parse_workers(const char *arg)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno != 0 || *end != '\0' || end == arg || n < 1 || n > CONFIG_WORKERS_MAX)
		return -1;
	return (int)n;
}

static void
parse_flags(int argc, char **argv, struct options *opt)
{
	int ch;

	memset(opt, 0, sizeof(*opt));
	opt->config_path = CONFIG_DEFAULT_PATH;
	while ((ch = getopt(argc, argv, "c:w:DtTVh")) != -1) {
		switch (ch) {
		case 'c':
			opt->config_path = optarg;
			break;
		case 'w':
			if ((opt->workers = parse_workers(optarg)) == -1) {
				fprintf(stderr, "egressd: -w %s: must be an "
				    "integer between 1 and %d\n", optarg,
				    CONFIG_WORKERS_MAX);
				exit(EXIT_CONFIG);
			}
			break;
		case 'D':
			opt->daemonize = 1;
			break;
		case 't':
			opt->test_only = 1;
			break;
		case 'T':
			opt->test_only = opt->verify = 1;
			break;
		case 'V':
			printf("egressd %s\n", EGRESSD_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(EXIT_CONFIG);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "egressd: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		exit(EXIT_CONFIG);
	}
}

/*
 * The path is made absolute once, here: daemonize changes directory, and a
 * HUP must find the same file again.  Symlinks are kept, not resolved, so a
 * reload follows a symlink swapped since (a Kubernetes ConfigMap update).
 */
static struct egressd_config *
load_config(struct options *opt)
{
	static char abspath[PATH_MAX];
	struct egressd_config *cfg;
	char err[CONFIG_ERR_MAX], cwd[PATH_MAX];

	if (opt->config_path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL &&
	    (size_t)snprintf(abspath, sizeof(abspath), "%s/%s", cwd,
	    opt->config_path) < sizeof(abspath))
		opt->config_path = abspath;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		fprintf(stderr, "egressd: out of memory\n");
		exit(1);
	}
	if (config_load_file(cfg, opt->config_path, err, sizeof(err)) == -1) {
		fprintf(stderr, "egressd: %s\n", err);
		free(cfg);
		exit(EXIT_CONFIG);
	}
	return cfg;
}

static void
acquire_pidfile(struct pidfile *pf, const char *path)
{
	char err[512];
	pid_t other;

	switch (pidfile_acquire(pf, path, &other, err, sizeof(err))) {
	case PIDFILE_ACQUIRED:
		return;
	case PIDFILE_STALE:
		log_warnx("pidfile %s was stale (pid %ld is gone); replacing "
		    "it", path, (long)other);
		return;
	case PIDFILE_HELD:
		fatalx("pidfile %s is held by a running egressd (pid %ld); "
		    "refusing to start", path, (long)other);
	default:
		fatalx("%s", err);
	}
}

/*
 * One daemon per state directory, whatever became of the pidfile (its
 * runtime directory may have been removed under a running daemon).
 */
static void
acquire_statelock(struct statelock *sl, struct pidfile *pf,
    const char *state_dir)
{
	char err[PATH_MAX + 256];
	pid_t holder;

	if (statelock_acquire(sl, state_dir, getpid(), &holder, err,
	    sizeof(err)) == STATELOCK_ACQUIRED)
		return;
	pidfile_release(pf);
	fatalx("%s", err);
}

/* Look up server.user/group; returns 0 when there is nothing to drop. */
static int
lookup_user(const struct egressd_config *cfg, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	struct group *gr;

	if (cfg->server.user[0] == '\0') {
		if (cfg->server.group[0] != '\0')
			fatalx("server.group is set without server.user");
		return 0;
	}
	if ((pw = getpwnam(cfg->server.user)) == NULL)
		fatalx("server.user: no such user '%s'", cfg->server.user);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (cfg->server.group[0] != '\0') {
		if ((gr = getgrnam(cfg->server.group)) == NULL)
			fatalx("server.group: no such group '%s'",
			    cfg->server.group);
		*gid = gr->gr_gid;
	}
	return 1;
}

static void
drop_privileges(struct master *m, struct statelock *sl,
    const struct egressd_config *cfg)
{
	uid_t uid;
	gid_t gid;

	if (!lookup_user(cfg, &uid, &gid))
		return;
	if (geteuid() == uid)
		return;		/* already that user */
	if (geteuid() != 0)
		fatalx("server.user is '%s' but egressd is not started as "
		    "root", cfg->server.user);
	if (master_chown_control(m, uid, gid) == -1)
		fatal("chown %s", cfg->server.control_socket);
	if (log_chown(uid, gid) == -1)
		fatal("chown %s", cfg->log.file);
	if (statelock_chown(sl, uid, gid) == -1)
		fatal("chown %s", sl->path);
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		fatal("dropping privileges to %s", cfg->server.user);
	if (setuid(0) == 0)
		fatalx("privileges could be regained after the drop; stopping");
	log_info("running as user %s (uid %ld, gid %ld)", cfg->server.user,
	    (long)uid, (long)gid);
}

/*
 * The master and the workers forked from it hold the orchestrator's token:
 * no core file, and no ptrace or /proc/PID/mem by other processes of the
 * same user, unless server.core_dumps allows them.
 */
static void
restrict_core_dumps(const struct egressd_config *cfg)
{
	struct rlimit rl;

	if (cfg->server.core_dumps)
		return;
	if (getrlimit(RLIMIT_CORE, &rl) == 0) {
		rl.rlim_cur = 0;
		if (setrlimit(RLIMIT_CORE, &rl) == -1)
			log_warn("setrlimit RLIMIT_CORE");
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		log_warn("prctl PR_SET_DUMPABLE");
}

static void
redirect_stdio(void)
{
	int fd;

	if ((fd = open("/dev/null", O_RDWR)) == -1)
		fatal("/dev/null");
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (log_is_stderr())
		log_warnx("daemonized with log.file = \"stderr\": log lines are "
		    "discarded; set log.file");
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/*
 * Detach.  The parent waits until the daemon says it started, so start-up
 * errors still reach the invoking shell (and its exit status).
 */
static int
daemonize(void)
{
	int ready[2];
	char byte;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(ready[1]);
		_exit(read(ready[0], &byte, 1) == 1 ? 0 : 1);
	}
	close(ready[0]);
	if (setsid() == -1)
		fatal("setsid");
	if (chdir("/") == -1)
		fatal("chdir /");
	return ready[1];
}

static void
tell_parent_started(int fd)
{
	if (fd < 0)
		return;
	if (write(fd, "1", 1) != 1)
		log_warn("daemonize: telling the parent");
	close(fd);
	redirect_stdio();
}

/*
 * -t and -T: the file loaded; now what start-up needs (one line per
 * failure, each naming its key), then for -T the orchestrator itself.
 */
static int
test_config(const struct options *opt, struct egressd_config *cfg)
{
	int failures, rc = 0;

	if ((failures = preflight_check(cfg, stderr)) > 0) {
		fprintf(stderr, "egressd: configuration %s: %d problem%s\n",
		    opt->config_path, failures, failures == 1 ? "" : "s");
		rc = EXIT_CONFIG;
	} else
		printf("egressd: configuration %s is OK\n", opt->config_path);
	/* Asked by a running egressd about to upgrade to this binary. */
	if (rc == 0 && getenv(REEXEC_ENV_PROBE) != NULL)
		printf("%s %d %d %s\n", REEXEC_PROBE_TAG, REEXEC_STATE_MIN,
		    REEXEC_STATE_VERSION, EGRESSD_VERSION);
	if (rc == 0 && opt->verify) {
		if (httpc_global_init() == -1)	/* says why on stderr */
			rc = EXIT_VERIFY;
		else {
			if (preflight_verify(cfg, stdout) == -1)
				rc = EXIT_VERIFY;
			httpc_global_cleanup();
		}
		printf("egressd: orchestrator %s\n", rc == 0 ? "verified" :
		    "NOT verified");
	}
	config_free(cfg);
	free(cfg);
	return rc;
}

/*
 * Started by an upgrade: read what crossed exec, and from here until the
 * workers are adopted, any failure goes back to the previous image.
 */
static int
take_upgrade(struct reexec_inherit *in, char **argv)
{
	char err[REEXEC_REASON_MAX];
	int rc;

	if ((rc = reexec_take(in, err, sizeof(err))) == 0)
		return 0;
	if (rc == -1) {
		reexec_arm_fallback(in, argv);
		reexec_fallback(err);
		fatalx("upgrade: %s", err);
	}
	reexec_arm_fallback(in, argv);
#ifdef EGRESSD_TEST_HOOKS
	/* Only test builds: an image that dies before it adopts anything. */
	if (in->failed[0] == '\0' &&
	    getenv("EGRESSD_TEST_UPGRADE_CRASH") != NULL)
		abort();
#endif
	return 1;
}

/* The pidfile and the lock as the previous image held them. */
static void
take_handed_over(const struct reexec_inherit *in, struct pidfile *pf,
    struct statelock *sl)
{
	const struct cJSON *st = in->state;

	if (reexec_inherited_lock(st, "pidfile", &pf->fd, &pf->path) == -1 ||
	    reexec_inherited_lock(st, "statelock", &sl->fd, &sl->path) == -1)
		fatalx("upgrade: the pidfile or the state lock was not handed "
		    "over");
}

/*
 * GnuTLS is loaded only because libcurl's LDAP and RTMP support need it
 * (libldap, librtmp), yet its load-time constructor initialises it in
 * every process: ASN.1 trees, its random generator, p11-kit.  That is
 * 0.9 MiB of the master's RSS, 0.2 MiB of each worker's (bench/README.md,
 * "Memory").  egressd never reaches GnuTLS: libcurl speaks http and https
 * only (CURLOPT_PROTOCOLS_STR, core/httpc.c), through OpenSSL.  The
 * constructor asks this symbol first; it is gnutls.h's
 * GNUTLS_SKIP_GLOBAL_INIT, spelled out so as not to need GnuTLS's headers,
 * and the link exports it (Makefile.am).  A library that does use GnuTLS
 * calls gnutls_global_init() itself (libldap and librtmp do), so this only
 * saves work nobody asked for.
 */
int _gnutls_global_init_skip(void);

int
_gnutls_global_init_skip(void)
{
	return 1;
}

int
main(int argc, char **argv)
{
	struct master_options mopt;
	struct egressd_config *cfg;
	struct options opt;
	struct pidfile pf;
	struct statelock sl;
	struct reexec_inherit in;
	struct master *m;
	char err[CONFIG_ERR_MAX];
	int status, ready_fd = -1, adopting;

	adopting = take_upgrade(&in, argv);
	if (!adopting)
		(void)reexec_note_exe();	/* before the file can change */
	parse_flags(argc, argv, &opt);
	cfg = load_config(&opt);
	if (opt.test_only)
		return test_config(&opt, cfg);
	if (log_open(cfg->log.file, cfg->log.level, cfg->log.format, err,
	    sizeof(err)) == -1)
		fatalx("%s", err);
	restrict_core_dumps(cfg);
	/* libcurl is initialised by its first client (core/httpc.c says why). */
	if (adopting)
		take_handed_over(&in, &pf, &sl);
	else {
		acquire_pidfile(&pf, cfg->server.pidfile);
		acquire_statelock(&sl, &pf, cfg->server.state_dir);
	}
	mopt.config_path = opt.config_path;
	mopt.workers_override = opt.workers;
	mopt.pidfile = &pf;
	mopt.statelock = &sl;
	mopt.inherit = adopting ? &in : NULL;
	if ((m = master_new(cfg, &mopt, err, sizeof(err))) == NULL) {
		if (!adopting)
			pidfile_release(&pf);
		fatalx("%s", err);
	}
	if (!adopting)
		drop_privileges(m, &sl, cfg);
	if (master_open_store(m, err, sizeof(err)) == -1) {
		if (adopting)
			fatalx("%s", err);	/* back to the previous image */
		master_free(m);
		pidfile_release(&pf);
		fatalx("%s", err);
	}
	if (!adopting && (opt.daemonize || cfg->server.daemonize))
		ready_fd = daemonize();
	if (pidfile_write(&pf, getpid()) == -1)
		fatal("pidfile %s: write", pf.path);
	if (statelock_write(&sl, getpid()) == -1)
		log_warn("%s: write", sl.path);	/* held all the same */
	tell_parent_started(ready_fd);
	status = master_run(m);
	master_free(m);
	pidfile_release(&pf);
	statelock_release(&sl);
	httpc_global_cleanup();
	log_info("terminated");
	log_close();
	return status;
}
