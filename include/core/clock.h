/*
 * clock: monotonic and wall-clock time as double seconds, the unit every
 * timeout in the configuration uses.
 */
#ifndef EGRESSD_CLOCK_H
#define EGRESSD_CLOCK_H

double clock_mono(void);	/* seconds since an arbitrary point; never jumps */
double clock_wall(void);	/* seconds since the epoch */

/* Milliseconds from now until deadline (monotonic), clamped to [0, INT_MAX]. */
int clock_ms_until(double deadline);

#endif
