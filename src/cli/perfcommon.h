/* SPDX-License-Identifier: MIT */
/*
 * perfcommon.h - pieces shared by the load generators zvfs-bdevperf and
 * zvfs-blobperf: option parsing helpers, the latency histogram, the offset
 * generator, the clock and the report rows (text table and JSON).
 *
 * The hot-path helpers (clock, generator, histogram insert) are static inline
 * so that each tool's completion callback stays one function with no call.
 */
#ifndef ZVFS_CLI_PERFCOMMON_H
#define ZVFS_CLI_PERFCOMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "util/clock.h"

/* ---- option parsing (messages are "<prog>: <option>: ...") ---- */

enum perf_workload {
	PERF_WL_RANDREAD,
	PERF_WL_RANDWRITE,
	PERF_WL_READ,
	PERF_WL_WRITE,
	PERF_WL_RANDRW,
};

extern const char *const perf_wl_names[]; /* indexed by enum perf_workload */

/* The load options both tools take. */
struct perf_opts {
	enum perf_workload wl;
	unsigned rwmixread; /* percent of reads in randrw */
	uint64_t bs;	    /* bytes */
	unsigned qd;	    /* per thread */
	unsigned threads;
	double time_s; /* measured time */
	double ramp_s; /* warm-up before it, excluded */
	uint64_t span; /* bytes; 0 = the tool's default */
	uint64_t seed;
	bool seed_set;
	bool json;
};

/* getopt ids of the long-only common options; a tool's own start at PERF_OPT_TOOL. */
enum {
	PERF_OPT_RAMP = 0x100,
	PERF_OPT_SPAN,
	PERF_OPT_SEED,
	PERF_OPT_JSON,
	PERF_OPT_TOOL = 0x140,
};

/* For getopt_long(): the short letters and the struct option rows of the common options. */
#define PERF_SHORT_OPTS "w:M:b:q:j:t:"
#define PERF_LONG_OPTS                                                                             \
	{"workload", required_argument, NULL, 'w'}, {"rwmixread", required_argument, NULL, 'M'},   \
		{"block-size", required_argument, NULL, 'b'},                                      \
		{"queue-depth", required_argument, NULL, 'q'},                                     \
		{"threads", required_argument, NULL, 'j'}, {"time", required_argument, NULL, 't'}, \
		{"ramp", required_argument, NULL, PERF_OPT_RAMP},                                  \
		{"span", required_argument, NULL, PERF_OPT_SPAN},                                  \
		{"seed", required_argument, NULL, PERF_OPT_SEED},                                  \
	{                                                                                          \
		"json", no_argument, NULL, PERF_OPT_JSON                                           \
	}

/* Defaults: randread, 50% reads for randrw, 4 KiB, QD1, 1 thread, 10 s, no ramp. */
void perf_opts_init(struct perf_opts *o);
/*
 * Apply getopt result opt (argument arg) if it is a common option: 1 when
 * applied, 0 when it is not a common option, -1 after printing a usage error.
 */
int perf_parse_opt(const char *prog, int opt, const char *arg, struct perf_opts *o);

/* An integer in [lo, hi]; 0, or -1 after printing the error. */
int perf_parse_uint(const char *prog, const char *name, const char *s, uint64_t lo, uint64_t hi,
		    uint64_t *out);
/* A number of seconds, 0 allowed only with zero_ok; 0 or -1. */
int perf_parse_seconds(const char *prog, const char *name, const char *s, bool zero_ok,
		       double *out);
/* A size with K/M/G/T suffixes; 0 or -1. */
int perf_parse_bytes(const char *prog, const char *name, const char *s, uint64_t *out);

/* ---- latency histogram ---- */

/*
 * Log-linear buckets over nanoseconds, HDR-histogram style: values below
 * 2^PERF_SUB_BITS get one bucket each; above, every power of two is split
 * into 2^PERF_SUB_BITS equal buckets, so a bucket is at most 1/128 (0.8%) of
 * its values wide.  Values from 2^PERF_MAX_EXP ns (about 18 minutes) up share
 * the last bucket.
 */
#define PERF_SUB_BITS	  7
#define PERF_SUB_COUNT	  (1u << PERF_SUB_BITS)
#define PERF_MAX_EXP	  40
#define PERF_HIST_BUCKETS ((PERF_MAX_EXP - PERF_SUB_BITS + 1) * PERF_SUB_COUNT)

struct perf_hist {
	uint64_t count;
	uint64_t sum; /* ns */
	uint64_t min;
	uint64_t max;
	uint64_t b[PERF_HIST_BUCKETS];
};

static inline unsigned perf_hist_index(uint64_t v)
{
	unsigned msb;

	if (v < PERF_SUB_COUNT)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	if (msb >= PERF_MAX_EXP)
		return PERF_HIST_BUCKETS - 1;
	return (msb - PERF_SUB_BITS + 1) * PERF_SUB_COUNT +
	       (unsigned)((v >> (msb - PERF_SUB_BITS)) & (PERF_SUB_COUNT - 1));
}

static inline void perf_hist_add(struct perf_hist *h, uint64_t v)
{
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->b[perf_hist_index(v)]++;
}

void perf_hist_init(struct perf_hist *h);
void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src);
/* The p-th percentile (0 < p <= 100) in ns, clamped to the observed range. */
double perf_hist_percentile(const struct perf_hist *h, double p);

/* ---- clock and offset generator ---- */

/* wyrand: one multiply per draw, passes BigCrush; plenty for offsets. */
static inline uint64_t perf_rng_next(uint64_t *s)
{
	__uint128_t m;

	*s += 0xa0761d6478bd642full;
	m = (__uint128_t)*s * (*s ^ 0xe7037ed1a0b428dbull);
	return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

/* Uniform in [0, n) without division (Lemire); the bias is below 2^-40 here. */
static inline uint64_t perf_rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((__uint128_t)perf_rng_next(s) * n) >> 64);
}

uint64_t perf_splitmix64(uint64_t x);

/* Fill buf with incompressible, non-zero-looking data from rng (write payloads, as fio does). */
void perf_fill_random(void *buf, uint64_t bytes, uint64_t *rng);

/* ---- the start line ---- */

/*
 * Workers set up (channels, buffers), then all start at one instant, so the
 * ramp and the measured window are the same for every thread.  A worker
 * calls perf_start_arrive() once, whether its setup worked or not; it returns
 * the start time (ns, zvfs_mono_ns()).  main calls perf_start_release() with
 * the number of workers it started: it waits for all of them to arrive and
 * returns the same start time.
 */
uint64_t perf_start_arrive(void);
uint64_t perf_start_release(unsigned nworkers);

/* ---- report ---- */

struct perf_result {
	const char *name;
	const struct perf_hist *h;
	double iops;
	double mibps;
};

/* A JSON string literal with the needed escapes, on stdout. */
void perf_json_string(const char *s);
/* "ios":...,"iops":...,"mibps":...,"lat_us":{...} (no braces around it). */
void perf_json_result(const struct perf_result *r);
/* The table header line and one row per result (microseconds). */
void perf_text_header(void);
void perf_text_result(const struct perf_result *r);

#endif /* ZVFS_CLI_PERFCOMMON_H */
