/*
 * preflight: what "egressd -t" checks beyond the file itself, and what
 * "egressd -T" / "egressctl verify" add: one authenticated request to the
 * orchestrator through the configured proxy and TLS settings.
 *
 * Owns these checks and their report: one line per failure naming the key
 * ("server.state_dir: /var/lib/egressd: not writable by user egressd"),
 * and for the request one line per step (proxy, dns, connect, tls, http,
 * auth).  The request is POST /api/v1/agent/heartbeat under a fresh
 * instance ID: it proves the credentials and takes no operation away.
 * Only for start-up and tools: it blocks until done.
 */
#ifndef EGRESSD_PREFLIGHT_H
#define EGRESSD_PREFLIGHT_H

#include <stdio.h>

#include "core/config.h"

#define PREFLIGHT_CA_SCAN_MAX (4 * 1024 * 1024)	/* bytes of ca_file read */
#define PREFLIGHT_SLACK 5.0	/* seconds past the call's own timeouts */

/*
 * What start-up will need: state_dir exists and the run user (server.user,
 * else the caller) may write it, the pidfile's and control socket's
 * directories exist, the token file exists with owner-only mode, ca_file
 * is readable and holds a PEM certificate.  Writes one line per failure to
 * out; returns the number of failures.
 */
int preflight_check(const struct egressd_config *cfg, FILE *out);

/*
 * One authenticated request to the orchestrator, reported one line per
 * step to out.  Needs curl_global_init().  Returns 0 when the orchestrator
 * accepted it, -1 otherwise (the failing step's line says why).
 */
int preflight_verify(const struct egressd_config *cfg, FILE *out);

#endif
