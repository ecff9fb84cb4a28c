/* evloop: poll-based descriptor dispatch (see include/core/evloop.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

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
};

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

int
evloop_run_once(struct evloop *loop, int timeout_ms)
{
	size_t i, n;
	int ready, dispatched = 0;

	if (loop->removed)
		evloop_compact(loop);
	ready = poll(loop->pfd, loop->count, timeout_ms);
	if (ready == -1)
		return errno == EINTR ? 0 : -1;
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
	return dispatched;
}
