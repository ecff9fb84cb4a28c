/*
 * notify: the systemd readiness protocol (sd_notify), written out.
 *
 * The protocol is one datagram of "KEY=VALUE" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET; it is small enough not to pull in libsystemd.
 * Without $NOTIFY_SOCKET every call is a no-op.
 */
#ifndef EGRESSD_NOTIFY_H
#define EGRESSD_NOTIFY_H

/* Send state (e.g. "READY=1\nSTATUS=4 workers"); 0, or -1 with errno. */
int notify_send(const char *state);

#endif
