/*
 * test_evloop: the loop's timers — order, re-adding, cancelling, callbacks
 * that change timers (their own and others) while the loop runs them, the
 * poll timeout taken from the nearest timer, timers after descriptors, and
 * "as soon as possible" without spinning.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/evloop.h"

#define LOG_MAX 16
#define SLACK 2.0	/* seconds a "prompt" pass may take on a slow box */

/* Timers that write their name into a shared log when they run. */
struct log {
	char ran[LOG_MAX + 1];
	int n;
};

struct tm {
	struct evloop_timer t;
	char name;
	struct log *log;
	struct evloop *loop;
	struct tm *other;	/* cancelled, or added, by the callback */
	int readd;		/* re-add itself as soon as possible */
};

static void
tm_note(void *arg)
{
	struct tm *x = arg;

	if (x->log->n < LOG_MAX)
		x->log->ran[x->log->n++] = x->name;
}

static void
tm_init(struct tm *x, char name, struct log *log, struct evloop *loop,
    evloop_timer_cb cb)
{
	memset(x, 0, sizeof(*x));
	x->name = name;
	x->log = log;
	x->loop = loop;
	evloop_timer_init(&x->t, cb ? cb : tm_note, x);
}

/* Passes until nothing is pending, at most limit. */
static int
run_all(struct evloop *loop, struct tm **xs, int n, int limit)
{
	int passes = 0, i, busy = 1;

	while (busy && passes < limit) {
		assert_true(evloop_run_once(loop, -1) >= 0);
		passes++;
		for (busy = 0, i = 0; i < n; i++)
			busy |= evloop_timer_pending(&xs[i]->t);
	}
	return passes;
}

static void
test_time_order(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a, b, c;
	struct tm *all[] = { &a, &b, &c };
	double now = clock_mono();

	(void)state;
	tm_init(&a, 'a', &log, loop, NULL);
	tm_init(&b, 'b', &log, loop, NULL);
	tm_init(&c, 'c', &log, loop, NULL);
	evloop_timer_add(loop, &c.t, now + 0.03);
	evloop_timer_add(loop, &a.t, now + 0.01);
	evloop_timer_add(loop, &b.t, now + 0.02);
	assert_true(evloop_timer_pending(&a.t));
	run_all(loop, all, 3, 100);
	assert_string_equal(log.ran, "abc");
	assert_false(evloop_timer_pending(&a.t));
	assert_false(evloop_timer_pending(&c.t));
	evloop_free(loop);
}

/* The same time: the one added last runs first (inner deadlines first). */
static void
test_same_time_last_added_first(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a, b, c;
	double when = clock_mono() + 0.005;

	(void)state;
	tm_init(&a, 'a', &log, loop, NULL);
	tm_init(&b, 'b', &log, loop, NULL);
	tm_init(&c, 'c', &log, loop, NULL);
	evloop_timer_add(loop, &a.t, when);
	evloop_timer_add(loop, &b.t, when);
	evloop_timer_add(loop, &c.t, when + 1.0);
	evloop_timer_add(loop, &c.t, when);	/* moved: now the last added */
	while (log.n < 3)
		assert_true(evloop_run_once(loop, -1) >= 0);
	assert_string_equal(log.ran, "cba");
	evloop_free(loop);
}

static void
test_readd_moves(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a, b;
	double start = clock_mono();

	(void)state;
	tm_init(&a, 'a', &log, loop, NULL);
	tm_init(&b, 'b', &log, loop, NULL);
	evloop_timer_add(loop, &a.t, start + 3600);
	evloop_timer_add(loop, &b.t, start + 0.01);
	evloop_timer_add(loop, &a.t, start);		/* earlier */
	evloop_timer_add(loop, &b.t, start + 3600);	/* later */
	assert_int_equal(evloop_run_once(loop, -1), 1);
	assert_string_equal(log.ran, "a");
	assert_true(clock_mono() - start < SLACK);
	assert_true(evloop_timer_pending(&b.t));
	assert_int_equal(evloop_run_once(loop, 20), 0);	/* b waits */
	evloop_timer_cancel(&b.t);
	evloop_free(loop);
}

static void
test_cancel(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct evloop_timer zero;
	struct tm a, b, c;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	assert_false(evloop_timer_pending(&zero));
	evloop_timer_cancel(&zero);		/* idle: nothing to do */
	tm_init(&a, 'a', &log, loop, NULL);
	tm_init(&b, 'b', &log, loop, NULL);
	tm_init(&c, 'c', &log, loop, NULL);
	evloop_timer_cancel(&a.t);		/* never added */
	evloop_timer_add(loop, &a.t, 0);
	evloop_timer_add(loop, &b.t, 0);
	evloop_timer_add(loop, &c.t, 0);
	evloop_timer_cancel(&b.t);		/* the middle one */
	evloop_timer_cancel(&b.t);		/* twice */
	assert_false(evloop_timer_pending(&b.t));
	assert_int_equal(evloop_run_once(loop, -1), 2);
	assert_string_equal(log.ran, "ca");
	evloop_timer_add(loop, &a.t, 0);
	evloop_timer_cancel(&a.t);		/* the only one */
	assert_int_equal(evloop_run_once(loop, 0), 0);
	assert_string_equal(log.ran, "ca");
	evloop_free(loop);
}

/*
 * Many timers added in a scrambled order, some moved or cancelled: one
 * pass runs them by time, the last added first among equal times.
 */
#define MANY 64

struct many {
	struct evloop_timer t;
	double when;
	int seq;		/* order of its last add */
	int *ran, *n;
};

static void
many_ran(void *arg)
{
	struct many *x = arg;

	x->ran[(*x->n)++] = x->seq;
}

static void
test_many_timers_in_order(void **state)
{
	struct evloop *loop = evloop_new();
	struct many xs[MANY];
	int ran[MANY], n = 0, seq = 0, i, j, live = 0;
	unsigned rnd = 12345;
	double base = clock_mono() - 10.0;

	(void)state;
	for (i = 0; i < MANY; i++) {
		rnd = rnd * 1103515245u + 12345u;
		xs[i].when = base + (double)((rnd >> 16) % 16) * 0.25;
		xs[i].ran = ran;
		xs[i].n = &n;
		evloop_timer_init(&xs[i].t, many_ran, &xs[i]);
		xs[i].seq = seq++;
		evloop_timer_add(loop, &xs[i].t, xs[i].when);
	}
	for (i = 0; i < MANY; i += 5) {		/* moved */
		xs[i].when = base + (double)(i % 7) * 0.25;
		xs[i].seq = seq++;
		evloop_timer_add(loop, &xs[i].t, xs[i].when);
	}
	for (i = 3; i < MANY; i += 7)		/* cancelled */
		evloop_timer_cancel(&xs[i].t);
	for (i = 0; i < MANY; i++)
		live += evloop_timer_pending(&xs[i].t);
	assert_int_equal(evloop_run_once(loop, -1), live);
	assert_int_equal(n, live);
	/* Each run is by time, and latest added first at equal times. */
	for (i = 1; i < n; i++) {
		const struct many *a = NULL, *b = NULL;

		for (j = 0; j < MANY; j++) {
			if (xs[j].seq == ran[i - 1])
				a = &xs[j];
			if (xs[j].seq == ran[i])
				b = &xs[j];
		}
		assert_non_null(a);
		assert_non_null(b);
		assert_true(a->when < b->when ||
		    (a->when == b->when && a->seq > b->seq));
	}
	evloop_free(loop);
}

/* A callback cancels a timer due in the same pass: it does not run. */
static void
cancel_other(void *arg)
{
	struct tm *x = arg;

	tm_note(x);
	evloop_timer_cancel(&x->other->t);
}

static void
test_callback_cancels_due_timer(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a, b, c;

	(void)state;
	tm_init(&a, 'a', &log, loop, NULL);
	tm_init(&b, 'b', &log, loop, cancel_other);
	tm_init(&c, 'c', &log, loop, NULL);
	b.other = &a;
	evloop_timer_add(loop, &a.t, 0);
	evloop_timer_add(loop, &c.t, 0);
	evloop_timer_add(loop, &b.t, 0);	/* runs first */
	assert_int_equal(evloop_run_once(loop, -1), 2);
	assert_string_equal(log.ran, "bc");
	assert_false(evloop_timer_pending(&a.t));
	assert_int_equal(evloop_run_once(loop, 0), 0);
	evloop_free(loop);
}

/* A callback re-adds itself or adds another: they wait for the next pass. */
static void
readd(void *arg)
{
	struct tm *x = arg;

	tm_note(x);
	if (x->readd > 0) {
		x->readd--;
		evloop_timer_add(x->loop, &x->t, 0);
	}
	if (x->other != NULL)
		evloop_timer_add(x->loop, &x->other->t, 0);
}

static void
test_callback_adds_timers(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a, b;

	(void)state;
	tm_init(&a, 'a', &log, loop, readd);
	tm_init(&b, 'b', &log, loop, NULL);
	a.readd = 2;
	a.other = &b;
	evloop_timer_add(loop, &a.t, 0);
	assert_int_equal(evloop_run_once(loop, -1), 1);
	assert_string_equal(log.ran, "a");
	assert_true(evloop_timer_pending(&a.t));
	assert_true(evloop_timer_pending(&b.t));
	assert_int_equal(evloop_run_once(loop, -1), 2);
	assert_string_equal(log.ran, "aba");	/* b added after a: first */
	assert_int_equal(evloop_run_once(loop, -1), 2);
	assert_string_equal(log.ran, "ababa");
	a.other = NULL;
	assert_int_equal(evloop_run_once(loop, -1), 1);
	assert_string_equal(log.ran, "ababab");
	assert_false(evloop_timer_pending(&a.t));
	assert_false(evloop_timer_pending(&b.t));
	evloop_free(loop);
}

/* A callback may free the memory its own timer lives in. */
static void
free_self(void *arg)
{
	struct tm *x = arg;

	tm_note(x);
	free(x);
}

static void
test_callback_frees_its_timer(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm *a = malloc(sizeof(*a)), b;

	(void)state;
	assert_non_null(a);
	tm_init(a, 'a', &log, loop, free_self);
	tm_init(&b, 'b', &log, loop, NULL);
	evloop_timer_add(loop, &a->t, 0);
	evloop_timer_add(loop, &b.t, 0);
	assert_int_equal(evloop_run_once(loop, -1), 2);
	assert_string_equal(log.ran, "ba");
	evloop_free(loop);
}

/* The poll sleeps until the nearest timer, and wakes once for it. */
static void
test_poll_timeout_from_timer(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a;
	double start = clock_mono();
	int passes = 0;

	(void)state;
	tm_init(&a, 'a', &log, loop, NULL);
	evloop_timer_add(loop, &a.t, start + 0.05);
	while (log.n == 0) {
		assert_true(evloop_run_once(loop, -1) >= 0);
		passes++;
	}
	assert_true(clock_mono() - start >= 0.05);
	assert_true(clock_mono() - start < SLACK);
	assert_int_equal(passes, 1);
	/* timeout_ms still bounds the wait when the timer is further. */
	evloop_timer_add(loop, &a.t, clock_mono() + 3600);
	start = clock_mono();
	assert_int_equal(evloop_run_once(loop, 20), 0);
	assert_true(clock_mono() - start >= 0.02);
	assert_true(clock_mono() - start < SLACK);
	evloop_timer_cancel(&a.t);
	evloop_free(loop);
}

/* "As soon as possible" does not block the poll, and runs once. */
static void
test_asap_does_not_spin(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a;
	double start = clock_mono();

	(void)state;
	tm_init(&a, 'a', &log, loop, NULL);
	evloop_timer_add(loop, &a.t, 0);
	assert_int_equal(evloop_run_once(loop, -1), 1);
	assert_true(clock_mono() - start < SLACK);
	assert_false(evloop_timer_pending(&a.t));
	/* Nothing left: the loop sleeps the whole timeout. */
	start = clock_mono();
	assert_int_equal(evloop_run_once(loop, 30), 0);
	assert_true(clock_mono() - start >= 0.03);
	evloop_free(loop);
}

/* Descriptors first; a timer one of them adds for now runs in that pass. */
struct fdx {
	struct log *log;
	struct evloop *loop;
	struct tm *add;
};

static void
on_fd(int fd, short revents, void *arg)
{
	struct fdx *f = arg;
	char c;

	(void)revents;
	assert_int_equal(read(fd, &c, 1), 1);
	f->log->ran[f->log->n++] = 'f';
	if (f->add != NULL)
		evloop_timer_add(f->loop, &f->add->t, 0);
}

static void
test_descriptors_before_timers(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a, b;
	struct fdx f = { &log, loop, &b };
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(evloop_add(loop, p[0], POLLIN, on_fd,
	    &f), 0);
	tm_init(&a, 'a', &log, loop, NULL);
	tm_init(&b, 'b', &log, loop, NULL);
	evloop_timer_add(loop, &a.t, 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(loop, -1), 3);
	assert_string_equal(log.ran, "fba");
	evloop_remove(loop, p[0]);
	close(p[0]);
	close(p[1]);
	evloop_free(loop);
}

/* Freeing the loop leaves its timers idle, safe to cancel. */
static void
test_free_leaves_timers_idle(void **state)
{
	struct evloop *loop = evloop_new();
	struct log log = { "", 0 };
	struct tm a;

	(void)state;
	tm_init(&a, 'a', &log, loop, NULL);
	evloop_timer_add(loop, &a.t, clock_mono() + 3600);
	evloop_free(loop);
	assert_false(evloop_timer_pending(&a.t));
	evloop_timer_cancel(&a.t);
	assert_int_equal(log.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time_order),
		cmocka_unit_test(test_same_time_last_added_first),
		cmocka_unit_test(test_readd_moves),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_many_timers_in_order),
		cmocka_unit_test(test_callback_cancels_due_timer),
		cmocka_unit_test(test_callback_adds_timers),
		cmocka_unit_test(test_callback_frees_its_timer),
		cmocka_unit_test(test_poll_timeout_from_timer),
		cmocka_unit_test(test_asap_does_not_spin),
		cmocka_unit_test(test_descriptors_before_timers),
		cmocka_unit_test(test_free_leaves_timers_idle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
