/*
 * evloop: a tiny poll(2) loop over file descriptors and timers, with
 * callbacks.
 *
 * Timers live in the loop beside the descriptors (redis's ae.c idea): each
 * owner embeds a struct evloop_timer, arms it at an absolute monotonic time
 * and cancels it when the work it stands for is over.  The poll timeout is
 * the time to the nearest timer, so an idle process sleeps until the next
 * thing it has to do.  Pending timers are kept in a list sorted by time:
 * a process has a few dozen, and an add walks in from the end nearer in
 * time (as soon as possible lands at the head, long deadlines at the tail).
 */
#ifndef EGRESSD_EVLOOP_H
#define EGRESSD_EVLOOP_H

typedef void (*evloop_cb)(int fd, short revents, void *arg);
typedef void (*evloop_timer_cb)(void *arg);

struct evloop;

/* A timer its owner embeds; all fields are the loop's. */
struct evloop_timer {
	evloop_timer_cb cb;
	void *arg;
	double when;			/* monotonic seconds */
	struct evloop *loop;		/* while pending */
	struct evloop_timer *prev, *next;
	int state;			/* idle, waiting or due */
};

struct evloop *evloop_new(void);
/* Pending timers are dropped, not run. */
void evloop_free(struct evloop *loop);

/* Watch fd for events (POLLIN/POLLOUT); 0 or -1 (ENOMEM, EEXIST). */
int evloop_add(struct evloop *loop, int fd, short events, evloop_cb cb,
    void *arg);
int evloop_modify(struct evloop *loop, int fd, short events);
/* Stop watching fd; safe from inside a callback. */
void evloop_remove(struct evloop *loop, int fd);

/*
 * Set the callback of a timer that is not pending.  A zeroed timer is
 * idle too: cancelling or asking whether it is pending is safe before init.
 */
void evloop_timer_init(struct evloop_timer *t, evloop_timer_cb cb,
    void *arg);
/*
 * Run t's callback once, at the monotonic time when (clock_mono()) or at
 * the first pass of the loop after it; adding a pending timer moves it.
 * A time already past (0 included) means as soon as possible: after the
 * descriptors of the current pass, and the next poll does not block.
 * Timers set for the same time run the one added last first (work under a
 * deadline it inherited ends before the work that handed it down).  Never
 * fails.
 */
void evloop_timer_add(struct evloop *loop, struct evloop_timer *t,
    double when);
/* Disarm t; nothing happens when it is not pending. */
void evloop_timer_cancel(struct evloop_timer *t);
int evloop_timer_pending(const struct evloop_timer *t);

/*
 * Poll once, for at most timeout_ms (-1 = no limit) and no longer than the
 * nearest timer, run the callbacks of ready descriptors, then those of the
 * timers due by then.  A callback may add, move or cancel any timer, the
 * one running included.  What timer callbacks add waits for the next pass,
 * whatever its time: a timer that keeps re-adding itself cannot hold the
 * loop in one pass.  Returns the number of callbacks run, or -1 on a poll
 * error other than EINTR.
 */
int evloop_run_once(struct evloop *loop, int timeout_ms);

#endif
