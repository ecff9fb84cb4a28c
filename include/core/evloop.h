/*
 * evloop: a tiny poll(2) loop over file descriptors with callbacks.
 *
 * Timers stay with their owners: each caller computes its nearest deadline
 * and passes it as the poll timeout, so an idle process sleeps until the
 * next thing it has to do (redis's ae.c idea, without a timer heap).
 */
#ifndef EGRESSD_EVLOOP_H
#define EGRESSD_EVLOOP_H

typedef void (*evloop_cb)(int fd, short revents, void *arg);

struct evloop;

struct evloop *evloop_new(void);
void evloop_free(struct evloop *loop);

/* Watch fd for events (POLLIN/POLLOUT); 0 or -1 (ENOMEM, EEXIST). */
int evloop_add(struct evloop *loop, int fd, short events, evloop_cb cb,
    void *arg);
int evloop_modify(struct evloop *loop, int fd, short events);
/* Stop watching fd; safe from inside a callback. */
void evloop_remove(struct evloop *loop, int fd);

/*
 * Poll once for at most timeout_ms (-1 = no limit) and run the callbacks of
 * ready descriptors.  Returns the number dispatched, or -1 on a poll error
 * other than EINTR.
 */
int evloop_run_once(struct evloop *loop, int timeout_ms);

#endif
