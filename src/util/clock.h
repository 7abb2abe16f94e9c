/* clock.h — seconds on the monotonic clock, for intervals and deadlines (never wall time). */
#ifndef TRAIND_CLOCK_H
#define TRAIND_CLOCK_H

/* CLOCK_MONOTONIC in seconds; only differences mean anything. */
double td_mono_s(void);

#endif
