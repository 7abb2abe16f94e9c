/* clock.h — seconds on the monotonic clock, for intervals and deadlines (never wall time). */
#ifndef TRAIND_CLOCK_H
#define TRAIND_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC in seconds; only differences mean anything. */
double td_mono_s(void);

/* The time ms milliseconds (>= 0) from now on clock (the one the condition variable waits
 * on), as pthread_cond_timedwait takes a deadline. */
struct timespec td_deadline(clockid_t clock, int ms);

#endif
