/* SPDX-License-Identifier: MIT */
/*
 * The monotonic clock in nanoseconds: for latencies, spin budgets and rate limits.  One
 * definition for the engine, the daemon, the library and the tools, which each had their own.
 */
#ifndef ZVFS_UTIL_CLOCK_H
#define ZVFS_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t zvfs_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
