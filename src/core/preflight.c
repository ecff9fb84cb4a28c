/* preflight: egressd -t and -T beyond the file (see include/core/preflight.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <uuid/uuid.h>

#include "core/clock.h"
#include "core/evloop.h"
#include "core/httpc.h"
#include "core/orch.h"
#include "core/preflight.h"

#define PREFLIGHT_PEM_MARK "-----BEGIN CERTIFICATE-----"

/* Who the daemon runs as: server.user (and group), else the caller. */
struct preflight_user {
	const char *name;
	uid_t uid;
	gid_t gid;
};

static int
preflight_user(const struct egressd_config *cfg, struct preflight_user *u,
    FILE *out)
{
	struct passwd *pw;
	struct group *gr;

	u->name = "the current user";
	u->uid = geteuid();
	u->gid = getegid();
	if (cfg->server.user[0] == '\0')
		return 0;
	if ((pw = getpwnam(cfg->server.user)) == NULL) {
		fprintf(out, "server.user: no such user '%s'\n",
		    cfg->server.user);
		return -1;
	}
	u->name = cfg->server.user;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	if (cfg->server.group[0] != '\0') {
		if ((gr = getgrnam(cfg->server.group)) == NULL) {
			fprintf(out, "server.group: no such group '%s'\n",
			    cfg->server.group);
			return -1;
		}
		u->gid = gr->gr_gid;
	}
	return 0;
}

/*
 * Whether u may create files in the directory sb describes: as ourselves
 * access(2) knows; for another user (root checking for server.user) the
 * mode bits of owner, group (its primary one) and others decide.
 */
static int
preflight_dir_writable(const char *path, const struct stat *sb,
    const struct preflight_user *u)
{
	mode_t need;

	if (u->uid == geteuid())
		return access(path, W_OK | X_OK) == 0;
	if (u->uid == 0)
		return 1;
	if (sb->st_uid == u->uid)
		need = S_IWUSR | S_IXUSR;
	else if (sb->st_gid == u->gid)
		need = S_IWGRP | S_IXGRP;
	else
		need = S_IWOTH | S_IXOTH;
	return (sb->st_mode & need) == need;
}

static int
preflight_state_dir(const struct egressd_config *cfg,
    const struct preflight_user *u, FILE *out)
{
	const char *dir = cfg->server.state_dir;
	struct stat sb;

	if (stat(dir, &sb) == -1) {
		fprintf(out, "server.state_dir: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(out, "server.state_dir: %s: not a directory\n", dir);
		return 1;
	}
	if (!preflight_dir_writable(dir, &sb, u)) {
		fprintf(out, "server.state_dir: %s: not writable by %s (uid "
		    "%ld)\n", dir, u->name, (long)u->uid);
		return 1;
	}
	return 0;
}

/* The directory a file of key will be created in must exist. */
static int
preflight_parent(const char *key, const char *path, FILE *out)
{
	char copy[PATH_MAX], *dir;
	struct stat sb;

	if (path[0] == '\0' || strlen(path) >= sizeof(copy))
		return 0;
	strcpy(copy, path);
	dir = dirname(copy);
	if (stat(dir, &sb) == -1) {
		fprintf(out, "%s: directory %s: %s\n", key, dir,
		    strerror(errno));
		return 1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(out, "%s: %s: not a directory\n", key, dir);
		return 1;
	}
	return 0;
}

static int
preflight_token_file(const struct egressd_config *cfg, FILE *out)
{
	const char *path = cfg->orchestrator.token_file;
	struct stat sb;

	if (cfg->orchestrator.url[0] == '\0' || path[0] == '\0')
		return 0;
	if (stat(path, &sb) == -1) {
		fprintf(out, "orchestrator.token_file: %s: %s\n", path,
		    strerror(errno));
		return 1;
	}
	if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0) {
		fprintf(out, "orchestrator.token_file: %s: must be a regular "
		    "file readable by its owner only (mode %04o); chmod 600 "
		    "it\n", path, (unsigned)(sb.st_mode & 07777));
		return 1;
	}
	return 0;
}

/* Readable, and at least one PEM certificate in the first few MiB. */
static int
preflight_ca_file(const struct egressd_config *cfg, FILE *out)
{
	const char *path = cfg->orchestrator.ca_file;
	char *buf;
	ssize_t n;
	int fd, found;

	if (cfg->orchestrator.url[0] == '\0' || path[0] == '\0')
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(out, "orchestrator.ca_file: %s: %s\n", path,
		    strerror(errno));
		return 1;
	}
	if ((buf = malloc(PREFLIGHT_CA_SCAN_MAX + 1)) == NULL) {
		close(fd);
		fprintf(out, "orchestrator.ca_file: %s: out of memory\n", path);
		return 1;
	}
	n = read(fd, buf, PREFLIGHT_CA_SCAN_MAX);
	close(fd);
	if (n < 0) {
		fprintf(out, "orchestrator.ca_file: %s: %s\n", path,
		    strerror(errno));
		free(buf);
		return 1;
	}
	buf[n] = '\0';
	found = memmem(buf, (size_t)n, PREFLIGHT_PEM_MARK,
	    strlen(PREFLIGHT_PEM_MARK)) != NULL;
	free(buf);
	if (!found) {
		fprintf(out, "orchestrator.ca_file: %s: holds no PEM "
		    "certificate (" PREFLIGHT_PEM_MARK ")\n", path);
		return 1;
	}
	return 0;
}

int
preflight_check(const struct egressd_config *cfg, FILE *out)
{
	struct preflight_user u;
	int failures = 0;

	if (preflight_user(cfg, &u, out) == -1)
		failures++;
	else
		failures += preflight_state_dir(cfg, &u, out);
	failures += preflight_parent("server.pidfile", cfg->server.pidfile,
	    out);
	failures += preflight_parent("server.control_socket",
	    cfg->server.control_socket, out);
	failures += preflight_token_file(cfg, out);
	failures += preflight_ca_file(cfg, out);
	return failures;
}

/* -T: the request. */

static void
preflight_on_done(struct httpc_request *req)
{
	*(int *)req->arg = 1;
}

/* Run req until it ends: its own timeouts bound it, limit backs them. */
static int
preflight_run(struct evloop *loop, struct httpc *http,
    struct httpc_request *req, double limit)
{
	double deadline = clock_mono() + limit;
	int done = 0;

	req->on_done = preflight_on_done;
	req->arg = &done;
	req->want_timings = 1;
	if (httpc_start(http, req) == -1)
		return -1;
	while (!done && clock_mono() < deadline)
		if (evloop_run_once(loop, clock_ms_until(deadline)) == -1 &&
		    errno != EINTR)
			break;
	if (!done)
		httpc_cancel(req);
	return done ? 0 : -1;
}

static void
preflight_report(const struct egressd_config *cfg,
    const struct httpc_request *req, const char *token_id, FILE *out)
{
	enum httpc_failure f = httpc_failure_of(req);
	int https = strncmp(req->url, "https://", 8) == 0;
	char why[CURL_ERROR_SIZE + HTTPC_PROXY_TEXT_MAX + 64];

	httpc_describe(req, why, sizeof(why));
	if (f == HTTPC_FAIL_PROXY) {
		fprintf(out, "proxy: failed: %s\n", why);
		return;
	}
	if (f == HTTPC_FAIL_DNS) {
		fprintf(out, "dns: failed: %s\n", why);
		return;
	}
	fprintf(out, "dns: ok (%.3f s)\n", req->t_dns);
	if (f == HTTPC_FAIL_CONNECT || (f == HTTPC_FAIL_TIMEOUT &&
	    req->t_connect == 0)) {
		fprintf(out, "connect: failed: %s\n", why);
		return;
	}
	fprintf(out, "connect: ok, %s port %ld (%.3f s)\n", req->peer,
	    req->peer_port, req->t_connect);
	if (f == HTTPC_FAIL_TLS || (https && f == HTTPC_FAIL_TIMEOUT &&
	    req->t_tls == 0)) {
		fprintf(out, "tls: failed: %s\n", why);
		return;
	}
	if (!https)
		fprintf(out, "tls: not used (http://)\n");
	else
		fprintf(out, "tls: ok, certificate %s (%.3f s)\n",
		    cfg->orchestrator.tls_verify ? "verified" :
		    "NOT verified (tls_verify = false)", req->t_tls);
	if (req->status == 0) {
		fprintf(out, "http: failed: %s\n", why);
		return;
	}
	fprintf(out, "http: status %ld\n", req->status);
	if (f == HTTPC_FAIL_AUTH)
		fprintf(out, "auth: failed: HTTP %ld: token ID %s or its token "
		    "was refused\n", req->status, token_id);
	else if (f == HTTPC_OK)
		fprintf(out, "auth: ok, token ID %s accepted\n", token_id);
	else
		fprintf(out, "auth: unknown: %s\n", why);
}

static void
preflight_proxy_line(const struct egressd_config *cfg, FILE *out)
{
	char proxy[HTTPC_PROXY_TEXT_MAX];
	const char *source;

	orch_proxy(cfg, proxy, sizeof(proxy), &source);
	if (proxy[0] != '\0')
		fprintf(out, "proxy: %s (from %s)\n", proxy, source);
	else
		fprintf(out, "proxy: none, direct connection\n");
}

int
preflight_verify(const struct egressd_config *cfg, FILE *out)
{
	struct orch_creds creds;
	struct orch o;
	struct evloop *loop = NULL;
	struct httpc_request *req;
	char err[CONFIG_ERR_MAX], id[37];
	uuid_t raw;
	int rc = -1;

	if (cfg->orchestrator.url[0] == '\0') {
		fprintf(out, "orchestrator.url: not set; nothing to verify\n");
		return -1;
	}
	if (orch_load_credentials(cfg, NULL, &creds, err, sizeof(err)) == -1) {
		fprintf(out, "auth: %s\n", err);
		return -1;
	}
	uuid_generate_random(raw);
	uuid_unparse_lower(raw, id);
	memset(&o, 0, sizeof(o));
	o.cfg = cfg;
	o.creds = &creds;
	o.instance_id = id;
	preflight_proxy_line(cfg, out);
	if ((loop = evloop_new()) == NULL || (o.http = httpc_new(loop)) ==
	    NULL || (req = orch_prepare(&o, ORCH_HEARTBEAT, NULL, NULL)) ==
	    NULL)
		fprintf(out, "http: cannot prepare the request (out of "
		    "memory)\n");
	else {
		if (preflight_run(loop, o.http, req, (double)(req->timeout_ms +
		    req->connect_timeout_ms) / 1000.0 + PREFLIGHT_SLACK) == -1)
			fprintf(out, "http: no answer\n");
		else {
			preflight_report(cfg, req, creds.token_id, out);
			rc = httpc_failure_of(req) == HTTPC_OK ? 0 : -1;
		}
		httpc_request_free(req);
	}
	httpc_free(o.http);
	evloop_free(loop);
	orch_creds_free(&creds);
	return rc;
}
