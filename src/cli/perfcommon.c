/* SPDX-License-Identifier: MIT */
/*
 * perfcommon.c - the shared parts of zvfs-bdevperf and zvfs-blobperf
 * (perfcommon.h): option parsing, histogram queries, report rows.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perfcommon.h"
#include "util/parse.h"

int perf_parse_uint(const char *prog, const char *name, const char *s, uint64_t lo, uint64_t hi,
		    uint64_t *out)
{
	if (zvfs_parse_u64(s, out) || *out < lo || *out > hi) {
		fprintf(stderr, "%s: %s: expected an integer in [%" PRIu64 ", %" PRIu64 "]: %s\n",
			prog, name, lo, hi, s);
		return -1;
	}
	return 0;
}

int perf_parse_seconds(const char *prog, const char *name, const char *s, bool zero_ok, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || (!zero_ok && v == 0) || v > 1e6) {
		fprintf(stderr, "%s: %s: expected a number of seconds: %s\n", prog, name, s);
		return -1;
	}
	*out = v;
	return 0;
}

int perf_parse_bytes(const char *prog, const char *name, const char *s, uint64_t *out)
{
	if (zvfs_parse_size(s, out)) {
		fprintf(stderr, "%s: %s: expected a size (K/M/G/T suffixes): %s\n", prog, name, s);
		return -1;
	}
	return 0;
}

const char *const perf_wl_names[] = {
	[PERF_WL_RANDREAD] = "randread", [PERF_WL_RANDWRITE] = "randwrite", [PERF_WL_READ] = "read",
	[PERF_WL_WRITE] = "write",	 [PERF_WL_RANDRW] = "randrw",
};

void perf_opts_init(struct perf_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->wl = PERF_WL_RANDREAD;
	o->rwmixread = 50;
	o->bs = 4096;
	o->qd = 1;
	o->threads = 1;
	o->time_s = 10;
}

int perf_parse_opt(const char *prog, int opt, const char *arg, struct perf_opts *o)
{
	uint64_t v;

	switch (opt) {
	case 'w': {
		size_t i, n = PERF_WL_RANDRW + 1;

		for (i = 0; i < n; i++)
			if (strcmp(arg, perf_wl_names[i]) == 0)
				break;
		/* fio's name for the mixed workload, for convenience */
		if (i == n && strcmp(arg, "mix") == 0)
			i = PERF_WL_RANDRW;
		if (i == n) {
			fprintf(stderr, "%s: --workload: unknown workload: %s\n", prog, arg);
			return -1;
		}
		o->wl = (enum perf_workload)i;
		return 1;
	}
	case 'M':
		if (perf_parse_uint(prog, "--rwmixread", arg, 0, 100, &v))
			return -1;
		o->rwmixread = (unsigned)v;
		return 1;
	case 'b':
		if (perf_parse_bytes(prog, "--block-size", arg, &o->bs))
			return -1;
		if (o->bs == 0 || o->bs > (1u << 30)) {
			fprintf(stderr, "%s: --block-size: out of range: %s\n", prog, arg);
			return -1;
		}
		return 1;
	case 'q':
		if (perf_parse_uint(prog, "--queue-depth", arg, 1, 65536, &v))
			return -1;
		o->qd = (unsigned)v;
		return 1;
	case 'j':
		if (perf_parse_uint(prog, "--threads", arg, 1, 1024, &v))
			return -1;
		o->threads = (unsigned)v;
		return 1;
	case 't':
		return perf_parse_seconds(prog, "--time", arg, false, &o->time_s) ? -1 : 1;
	case PERF_OPT_RAMP:
		return perf_parse_seconds(prog, "--ramp", arg, true, &o->ramp_s) ? -1 : 1;
	case PERF_OPT_SPAN:
		if (perf_parse_bytes(prog, "--span", arg, &o->span))
			return -1;
		if (!o->span) {
			fprintf(stderr, "%s: --span: must not be 0\n", prog);
			return -1;
		}
		return 1;
	case PERF_OPT_SEED:
		if (perf_parse_uint(prog, "--seed", arg, 0, UINT64_MAX, &o->seed))
			return -1;
		o->seed_set = true;
		return 1;
	case PERF_OPT_JSON:
		o->json = true;
		return 1;
	default:
		return 0;
	}
}

/* The middle of bucket i, in ns. */
static double hist_value(unsigned i)
{
	unsigned e, sub;
	uint64_t width;

	if (i < PERF_SUB_COUNT)
		return i;
	e = i / PERF_SUB_COUNT - 1; /* msb - PERF_SUB_BITS */
	sub = i % PERF_SUB_COUNT;
	width = 1ull << e;
	return (double)((PERF_SUB_COUNT + sub) * width) + (double)(width - 1) / 2;
}

void perf_hist_init(struct perf_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src)
{
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
}

double perf_hist_percentile(const struct perf_hist *h, double p)
{
	uint64_t rank, seen = 0;
	double v = 0;

	if (!h->count)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			v = hist_value(i);
			break;
		}
	}
	if (v < (double)h->min)
		v = (double)h->min;
	if (v > (double)h->max)
		v = (double)h->max;
	return v;
}

uint64_t perf_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void perf_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

void perf_json_result(const struct perf_result *r)
{
	const struct perf_hist *h = r->h;

	printf("\"ios\":%" PRIu64 ",\"iops\":%.1f,\"mibps\":%.2f,\"lat_us\":{\"mean\":%.2f,"
	       "\"min\":%.2f,\"p50\":%.2f,\"p99\":%.2f,\"p99.9\":%.2f,\"max\":%.2f}",
	       h->count, r->iops, r->mibps, h->count ? (double)h->sum / (double)h->count / 1e3 : 0,
	       h->count ? (double)h->min / 1e3 : 0, perf_hist_percentile(h, 50) / 1e3,
	       perf_hist_percentile(h, 99) / 1e3, perf_hist_percentile(h, 99.9) / 1e3,
	       (double)h->max / 1e3);
}

void perf_text_header(void)
{
	printf("%-6s %12s %9s %10s %10s %10s %10s %10s\n", "", "IOPS", "MiB/s", "mean us", "p50 us",
	       "p99 us", "p99.9 us", "max us");
}

void perf_text_result(const struct perf_result *r)
{
	const struct perf_hist *h = r->h;

	printf("%-6s %12.1f %9.2f %10.2f %10.2f %10.2f %10.2f %10.2f\n", r->name, r->iops, r->mibps,
	       h->count ? (double)h->sum / (double)h->count / 1e3 : 0,
	       perf_hist_percentile(h, 50) / 1e3, perf_hist_percentile(h, 99) / 1e3,
	       perf_hist_percentile(h, 99.9) / 1e3, (double)h->max / 1e3);
}

void perf_fill_random(void *buf, uint64_t bytes, uint64_t *rng)
{
	uint64_t *p = buf;

	for (uint64_t k = 0; k < bytes / sizeof(*p); k++)
		p[k] = perf_rng_next(rng);
}

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static unsigned start_ready;
static bool start_go;
static uint64_t start_t0;

uint64_t perf_start_arrive(void)
{
	uint64_t t0;

	pthread_mutex_lock(&start_lock);
	start_ready++;
	pthread_cond_broadcast(&start_cond);
	while (!start_go)
		pthread_cond_wait(&start_cond, &start_lock);
	t0 = start_t0;
	pthread_mutex_unlock(&start_lock);
	return t0;
}

uint64_t perf_start_release(unsigned nworkers)
{
	uint64_t t0;

	pthread_mutex_lock(&start_lock);
	while (start_ready < nworkers)
		pthread_cond_wait(&start_cond, &start_lock);
	start_t0 = t0 = zvfs_mono_ns();
	start_go = true;
	pthread_cond_broadcast(&start_cond);
	pthread_mutex_unlock(&start_lock);
	return t0;
}
