/* evloop: descriptors and timers on poll(2) (see include/core/evloop.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/evloop.h"

#define EVLOOP_INITIAL 16

struct evloop_entry {
	evloop_cb cb;
	void *arg;
};

struct evloop {
	struct pollfd *pfd;
	struct evloop_entry *entry;
	size_t count;
	size_t cap;
	int removed;		/* entries with fd -1 wait for compaction */
	/* Pending timers, by time; those of the running pass, taken out. */
	struct evloop_timer *timers, *timers_tail;
	struct evloop_timer *due;
};

enum { EVLOOP_TIMER_IDLE, EVLOOP_TIMER_WAITING, EVLOOP_TIMER_DUE };

struct evloop *
evloop_new(void)
{
	return calloc(1, sizeof(struct evloop));
}

void
evloop_free(struct evloop *loop)
{
	if (loop == NULL)
		return;
	/* Their owners may still cancel them: leave them idle. */
	while (loop->timers != NULL)
		evloop_timer_cancel(loop->timers);
	free(loop->pfd);
	free(loop->entry);
	free(loop);
}

static ssize_t
evloop_find(struct evloop *loop, int fd)
{
	size_t i;

	for (i = 0; i < loop->count; i++)
		if (loop->pfd[i].fd == fd)
			return (ssize_t)i;
	return -1;
}

static int
evloop_grow(struct evloop *loop)
{
	size_t cap = loop->cap ? loop->cap * 2 : EVLOOP_INITIAL;
	struct pollfd *pfd;
	struct evloop_entry *entry;

	if ((pfd = reallocarray(loop->pfd, cap, sizeof(*pfd))) == NULL)
		return -1;
	loop->pfd = pfd;
	if ((entry = reallocarray(loop->entry, cap, sizeof(*entry))) == NULL)
		return -1;
	loop->entry = entry;
	loop->cap = cap;
	return 0;
}

int
evloop_add(struct evloop *loop, int fd, short events, evloop_cb cb,
    void *arg)
{
	if (fd < 0 || evloop_find(loop, fd) >= 0) {
		errno = EEXIST;
		return -1;
	}
	if (loop->count == loop->cap && evloop_grow(loop) == -1)
		return -1;
	loop->pfd[loop->count].fd = fd;
	loop->pfd[loop->count].events = events;
	loop->pfd[loop->count].revents = 0;
	loop->entry[loop->count].cb = cb;
	loop->entry[loop->count].arg = arg;
	loop->count++;
	return 0;
}

int
evloop_modify(struct evloop *loop, int fd, short events)
{
	ssize_t i = evloop_find(loop, fd);

	if (i < 0) {
		errno = ENOENT;
		return -1;
	}
	loop->pfd[i].events = events;
	return 0;
}

void
evloop_remove(struct evloop *loop, int fd)
{
	ssize_t i = evloop_find(loop, fd);

	if (i < 0)
		return;
	/* Compact later: a dispatch loop may be walking the arrays. */
	loop->pfd[i].fd = -1;
	loop->pfd[i].revents = 0;
	loop->removed = 1;
}

static void
evloop_compact(struct evloop *loop)
{
	size_t i, j = 0;

	for (i = 0; i < loop->count; i++) {
		if (loop->pfd[i].fd < 0)
			continue;
		loop->pfd[j] = loop->pfd[i];
		loop->entry[j] = loop->entry[i];
		j++;
	}
	loop->count = j;
	loop->removed = 0;
}

void
evloop_timer_init(struct evloop_timer *t, evloop_timer_cb cb, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
}

int
evloop_timer_pending(const struct evloop_timer *t)
{
	return t->state != EVLOOP_TIMER_IDLE;
}

void
evloop_timer_cancel(struct evloop_timer *t)
{
	struct evloop *loop = t->loop;

	if (t->state == EVLOOP_TIMER_IDLE)
		return;
	if (t->prev != NULL)
		t->prev->next = t->next;
	else if (t->state == EVLOOP_TIMER_DUE)
		loop->due = t->next;
	else
		loop->timers = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	else if (t->state == EVLOOP_TIMER_WAITING)
		loop->timers_tail = t->prev;
	t->prev = t->next = NULL;
	t->loop = NULL;
	t->state = EVLOOP_TIMER_IDLE;
}

void
evloop_timer_add(struct evloop *loop, struct evloop_timer *t, double when)
{
	struct evloop_timer *head, *after;

	evloop_timer_cancel(t);
	t->when = when;
	t->loop = loop;
	t->state = EVLOOP_TIMER_WAITING;
	/*
	 * t goes before the first timer set for its time or later.  Walk from
	 * the end nearer in time: "as soon as possible" lands at the head at
	 * once, and long deadlines at the tail.
	 */
	head = loop->timers;
	if (head == NULL || when <= head->when)
		after = NULL;
	else if (when - head->when < loop->timers_tail->when - when) {
		for (after = head; after->next != NULL &&
		    after->next->when < when; after = after->next)
			;
	} else {
		for (after = loop->timers_tail; after->when >= when;
		    after = after->prev)
			;
	}
	t->prev = after;
	t->next = after != NULL ? after->next : loop->timers;
	if (t->next != NULL)
		t->next->prev = t;
	else
		loop->timers_tail = t;
	if (after != NULL)
		after->next = t;
	else
		loop->timers = t;
}

/* Milliseconds poll may sleep: timeout_ms, or less when a timer is near. */
static int
evloop_timeout(const struct evloop *loop, int timeout_ms)
{
	int ms;

	if (loop->timers == NULL)
		return timeout_ms;
	/* Rounded up: a poll that wakes before the timer would spin. */
	ms = clock_ms_until(loop->timers->when);
	return timeout_ms >= 0 && timeout_ms < ms ? timeout_ms : ms;
}

/*
 * Take the timers due now out of the sorted list, then run them one by
 * one: a callback may cancel one still waiting here, or add any timer
 * (the list it joins is not this one).
 */
static int
evloop_run_timers(struct evloop *loop)
{
	struct evloop_timer *t, *last = NULL;
	double now;
	int ran = 0;

	if (loop->timers == NULL)
		return 0;
	now = clock_mono();
	for (t = loop->timers; t != NULL && t->when <= now; t = t->next) {
		t->state = EVLOOP_TIMER_DUE;
		last = t;
	}
	if (last == NULL)
		return 0;
	loop->due = loop->timers;
	loop->timers = last->next;
	if (loop->timers != NULL)
		loop->timers->prev = NULL;
	else
		loop->timers_tail = NULL;
	last->next = NULL;
	while ((t = loop->due) != NULL) {
		loop->due = t->next;
		if (t->next != NULL)
			t->next->prev = NULL;
		t->next = NULL;
		t->loop = NULL;
		t->state = EVLOOP_TIMER_IDLE;
		t->cb(t->arg);
		ran++;
	}
	return ran;
}

int
evloop_run_once(struct evloop *loop, int timeout_ms)
{
	size_t i, n;
	int ready, dispatched = 0;

	if (loop->removed)
		evloop_compact(loop);
	ready = poll(loop->pfd, loop->count, evloop_timeout(loop, timeout_ms));
	if (ready == -1)
		return errno == EINTR ? evloop_run_timers(loop) : -1;
	/* Entries added by callbacks are not polled yet: stop at n. */
	n = loop->count;
	for (i = 0; i < n && ready > 0; i++) {
		short revents = loop->pfd[i].revents;

		if (loop->pfd[i].fd < 0 || revents == 0)
			continue;
		ready--;
		loop->pfd[i].revents = 0;
		loop->entry[i].cb(loop->pfd[i].fd, revents, loop->entry[i].arg);
		dispatched++;
	}
	if (loop->removed)
		evloop_compact(loop);
	return dispatched + evloop_run_timers(loop);
}
