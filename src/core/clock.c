/* clock: time helpers (see include/core/clock.h). */
#include <limits.h>
#include <math.h>
#include <time.h>

#include "core/clock.h"

static double
clock_read(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
clock_mono(void)
{
	return clock_read(CLOCK_MONOTONIC);
}

double
clock_wall(void)
{
	return clock_read(CLOCK_REALTIME);
}

int
clock_ms_until(double deadline)
{
	double ms = ceil((deadline - clock_mono()) * 1000.0);

	if (ms <= 0)
		return 0;
	if (ms >= INT_MAX)
		return INT_MAX;
	return (int)ms;
}
