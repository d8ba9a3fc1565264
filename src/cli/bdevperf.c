/* SPDX-License-Identifier: MIT */
/*
 * zvfs-bdevperf: drive a ZVFS block device at a fixed queue depth and report
 * IOPS, bandwidth and the latency distribution (the SPDK bdevperf idea, on
 * the zvfs/bdev.h API).
 *
 * Map of this file:
 *   1. options              parse_args(), usage()
 *   2. latency histogram    in perfcommon.[ch] (shared with zvfs-blobperf)
 *   3. workers              one thread, one channel, QD requests in flight
 *   4. report               text table or one JSON line
 *   5. main
 *
 * The hot path: every worker submits QD requests, then loops on
 * zvfs_bdev_wait(), which reaps every finished request of its channel in one
 * pass.  Each completion callback records the request's latency and submits
 * the next request at once, so the next poll sends the whole batch to the
 * kernel in one system call.  The callback's timestamp doubles as the next
 * request's submit time: one clock read per I/O.  No locks, no allocation
 * per I/O; the workers share nothing but the read-only configuration and a
 * stop flag.
 *
 * --submit-each is a diagnostic: the callback polls right after resubmitting,
 * so each request reaches the kernel on its own (what fio does by default).
 * Comparing it with the default shows what the backend's batching costs or
 * saves on a given device (docs/benchmark.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zvfs/bdev.h"
#include "perfcommon.h"
#include "zvfs_version.h"

#define PROG "zvfs-bdevperf"

/* ---- 1. options ------------------------------------------------------- */

struct config {
	const char *spec;
	struct perf_opts p; /* the common load options */
	uint64_t offset;    /* start of the area, bytes */
	bool submit_each;   /* poll right after every submit: one system call per I/O */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " -d SPEC [options]\n"
		"\n"
		"Drive a ZVFS block device with a fixed number of requests in flight per thread\n"
		"and report IOPS, MiB/s and latency (mean, p50, p99, p99.9, max) in microseconds.\n"
		"\n"
		"  -d, --device SPEC        device spec, e.g. uring:/var/tmp/img or aio:/dev/vdb\n"
		"                           (grammar in zvfs/bdev.h; required)\n"
		"  -w, --workload W         randread (default), randwrite, read, write, randrw\n"
		"  -M, --rwmixread PCT      randrw: percentage of reads (default 50)\n"
		"  -b, --block-size SIZE    bytes per request, K/M suffixes (default 4K)\n"
		"  -q, --queue-depth N      requests in flight per thread (default 1)\n"
		"  -j, --threads N          worker threads, one channel each (default 1)\n"
		"  -t, --time SECONDS       measured run time (default 10)\n"
		"      --ramp SECONDS       warm-up, not measured (default 0)\n"
		"      --offset SIZE        start of the area to use (default 0)\n"
		"      --span SIZE          length of the area (default: to the end)\n"
		"      --seed N             seed of the offset generator (default: clock)\n"
		"      --json               print one JSON line instead of the table\n"
		"      --submit-each        poll right after each resubmission, so every request\n"
		"                           reaches the kernel at once (one system call per I/O,\n"
		"                           like fio's default) instead of in one batch per poll\n"
		"  -h, --help               this text\n"
		"  -V, --version            print the version\n"
		"\n"
		"Random workloads pick block-aligned offsets uniformly over the area, each thread\n"
		"independently; sequential ones give each thread its own slice of the area and\n"
		"wrap around in it.  Write buffers hold pseudo-random bytes (never zeroes, so a\n"
		"zero-detecting layer below cannot skip them).  Latency runs from the submit call\n"
		"to the completion callback.  A request beyond the device's per-channel queue\n"
		"depth (spec option qd=, default 128) waits in the channel, so raise qd= with -q.\n"
		"\n"
		"Exit status: 0 success, 1 I/O or device error, 2 usage error.\n");
}

enum {
	OPT_OFFSET = PERF_OPT_TOOL,
	OPT_SUBMIT_EACH,
};

/* Returns 0 to run, 1 when done (help, version), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct config *c)
{
	static const struct option opts[] = {
		{"device", required_argument, NULL, 'd'},
		PERF_LONG_OPTS,
		{"offset", required_argument, NULL, OPT_OFFSET},
		{"submit-each", no_argument, NULL, OPT_SUBMIT_EACH},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int opt, rc;

	memset(c, 0, sizeof(*c));
	perf_opts_init(&c->p);

	while ((opt = getopt_long(argc, argv, "d:" PERF_SHORT_OPTS "hV", opts, NULL)) != -1) {
		rc = perf_parse_opt(PROG, opt, optarg, &c->p);
		if (rc < 0)
			return 2;
		if (rc > 0)
			continue;
		switch (opt) {
		case 'd':
			c->spec = optarg;
			break;
		case OPT_OFFSET:
			if (perf_parse_bytes(PROG, "--offset", optarg, &c->offset))
				return 2;
			break;
		case OPT_SUBMIT_EACH:
			c->submit_each = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf(PROG " " ZVFS_VERSION "\n");
			return 1;
		default:
			fprintf(stderr, "Try '" PROG " --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument: %s\n", argv[optind]);
		return 2;
	}
	if (!c->spec) {
		fprintf(stderr, PROG ": --device is required\n"
				     "Try '" PROG " --help' for more information.\n");
		return 2;
	}
	return 0;
}

/* ---- 2. latency histogram ---------------------------------------------- */

/* perfcommon.h: struct perf_hist and its helpers. */

/* ---- 3. workers ---------------------------------------------------------- */

struct worker;

struct req {
	struct worker *w;
	void *buf;
	uint64_t t_submit; /* ns, CLOCK_MONOTONIC */
	uint64_t offset;   /* bytes, for error messages */
	bool write;
};

struct worker {
	/* Hot fields first: the callback touches these on every I/O. */
	struct zvfs_bdev_channel *ch;
	const struct config *cfg;
	uint64_t rng;
	uint64_t area_start; /* bytes: the whole area (random) or this thread's slice */
	uint64_t area_blocks;
	uint64_t seq_next;    /* block index within the area */
	uint64_t t_measure;   /* ns: completions from here on count */
	uint64_t t_end;	      /* ns: no new requests from here on */
	uint64_t t_stop;      /* ns: when this worker stopped submitting */
	uint32_t read_thresh; /* random draw below it is a read (percent scale) */
	bool random;
	bool submit_each;
	bool in_poll; /* submit_each: a callback of ours is polling */
	bool stopping;
	int error;
	struct perf_hist *hist[2]; /* [0] reads, [1] writes */

	struct zvfs_bdev *bdev;
	struct req *reqs;
	unsigned idx;
	pthread_t tid;
};

static atomic_bool g_stop;

static void req_done(void *arg, int status);

/* Start the next request in r's slot; returns 0 or a negative errno. */
static inline int req_issue(struct worker *w, struct req *r, uint64_t now)
{
	const uint64_t bs = w->cfg->p.bs;
	uint64_t blk;

	if (w->random) {
		blk = perf_rng_below(&w->rng, w->area_blocks);
	} else {
		blk = w->seq_next++;
		if (w->seq_next == w->area_blocks)
			w->seq_next = 0;
	}
	if (w->read_thresh == 0)
		r->write = true;
	else if (w->read_thresh >= 100)
		r->write = false;
	else
		r->write = perf_rng_below(&w->rng, 100) >= w->read_thresh;
	r->t_submit = now;
	r->offset = w->area_start + blk * bs;
	if (r->write)
		return zvfs_bdev_write(w->ch, r->buf, bs, r->offset, req_done, r);
	return zvfs_bdev_read(w->ch, r->buf, bs, r->offset, req_done, r);
}

/* Stop this worker (and make the others stop) after a failure; report the first. */
static void worker_fail(struct worker *w, const struct req *r, const char *what, int err)
{
	if (!w->error) {
		w->error = err;
		if (r)
			fprintf(stderr,
				PROG ": I/O error: %s of %" PRIu64 " bytes at offset %" PRIu64
				     " (thread %u): %s\n",
				what, w->cfg->p.bs, r->offset, w->idx, strerror(-err));
		else
			fprintf(stderr, PROG ": I/O error: %s (thread %u): %s\n", what, w->idx,
				strerror(-err));
	}
	if (!w->stopping) {
		w->stopping = true;
		w->t_stop = zvfs_mono_ns();
	}
	atomic_store_explicit(&g_stop, true, memory_order_relaxed);
}

static void req_done(void *arg, int status)
{
	struct req *r = arg;
	struct worker *w = r->w;
	uint64_t now = zvfs_mono_ns();
	int rc;

	if (__builtin_expect(status != 0, 0)) {
		worker_fail(w, r, r->write ? "write" : "read", status);
		return;
	}
	if (now >= w->t_measure && now < w->t_end)
		perf_hist_add(w->hist[r->write], now - r->t_submit);
	if (w->stopping)
		return;
	if (__builtin_expect(now >= w->t_end || atomic_load_explicit(&g_stop, memory_order_relaxed),
			     0)) {
		w->stopping = true;
		w->t_stop = now;
		return;
	}
	rc = req_issue(w, r, now);
	if (__builtin_expect(rc != 0, 0)) {
		worker_fail(w, NULL, "submit", rc);
		return;
	}
	if (w->submit_each && !w->in_poll) {
		/*
		 * Hand the request to the kernel now instead of at the next
		 * poll.  Completions this poll reaps get their callbacks here,
		 * one level down; those do not poll again.
		 */
		w->in_poll = true;
		rc = zvfs_bdev_poll(w->ch);
		w->in_poll = false;
		if (rc < 0)
			worker_fail(w, NULL, "poll", rc);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct config *c = w->cfg;
	const char *fail = NULL;
	uint64_t t0;
	unsigned i;
	int rc;

	rc = zvfs_bdev_get_channel(w->bdev, &w->ch);
	if (rc) {
		fail = "cannot get an I/O channel";
		goto out_sync;
	}
	for (i = 0; i < c->p.qd; i++) {
		struct req *r = &w->reqs[i];

		r->w = w;
		r->buf = zvfs_bdev_buf_alloc(w->bdev, c->p.bs);
		if (!r->buf) {
			rc = -ENOMEM;
			fail = "cannot allocate I/O buffers";
			goto out_sync;
		}
		perf_fill_random(r->buf, c->p.bs, &w->rng);
	}
out_sync:
	if (fail) {
		fprintf(stderr, PROG ": %s: %s\n", fail, strerror(-rc));
		w->error = rc;
		w->stopping = true;
	}
	t0 = perf_start_arrive();
	if (w->error || atomic_load(&g_stop))
		goto out_free;
	w->t_measure = t0 + (uint64_t)(c->p.ramp_s * 1e9);
	w->t_end = w->t_measure + (uint64_t)(c->p.time_s * 1e9);

	for (i = 0; i < c->p.qd && !w->stopping; i++) {
		rc = req_issue(w, &w->reqs[i], zvfs_mono_ns());
		if (rc)
			worker_fail(w, NULL, "submit", rc);
	}
	while (zvfs_bdev_outstanding(w->ch) > 0) {
		rc = zvfs_bdev_wait(w->ch);
		if (rc < 0) {
			/* The channel is broken: its requests will never finish. */
			worker_fail(w, NULL, "poll", rc);
			return NULL;
		}
	}
	if (!w->t_stop)
		w->t_stop = zvfs_mono_ns();
out_free:
	for (i = 0; i < c->p.qd; i++)
		zvfs_bdev_buf_free(w->bdev, w->reqs[i].buf);
	return NULL;
}

/* ---- 4. report ------------------------------------------------------------ */

static void report(const struct config *c, struct zvfs_bdev *bdev, const struct perf_hist *all,
		   const struct perf_hist *rd, const struct perf_hist *wr, double secs)
{
	struct perf_result res[3] = {
		{"total", all, 0, 0},
		{"read", rd, 0, 0},
		{"write", wr, 0, 0},
	};
	bool mixed = c->p.wl == PERF_WL_RANDRW;

	for (int i = 0; i < 3; i++) {
		res[i].iops = secs > 0 ? (double)res[i].h->count / secs : 0;
		res[i].mibps = res[i].iops * (double)c->p.bs / (1024.0 * 1024.0);
	}
	if (c->p.json) {
		printf("{\"tool\":\"" PROG "\",\"version\":\"" ZVFS_VERSION "\",\"device\":");
		perf_json_string(c->spec);
		printf(",\"driver\":\"%s\",\"workload\":\"%s\",\"rwmixread\":%u,\"bs\":%" PRIu64
		       ",\"qd\":%u,\"threads\":%u,\"time_s\":%.3f,\"ramp_s\":%.3f,\"offset\":"
		       "%" PRIu64 ",\"span\":%" PRIu64 ",\"seed\":%" PRIu64 ",",
		       zvfs_bdev_get_driver(bdev), perf_wl_names[c->p.wl],
		       mixed							  ? c->p.rwmixread
		       : (c->p.wl == PERF_WL_RANDREAD || c->p.wl == PERF_WL_READ) ? 100
										  : 0,
		       c->p.bs, c->p.qd, c->p.threads, secs, c->p.ramp_s, c->offset, c->p.span,
		       c->p.seed);
		perf_json_result(&res[0]);
		printf(",\"read\":{");
		perf_json_result(&res[1]);
		printf("},\"write\":{");
		perf_json_result(&res[2]);
		printf("}}\n");
		return;
	}
	printf(PROG " " ZVFS_VERSION ": %s (%s, %" PRIu64 " bytes, block %u)\n", c->spec,
	       zvfs_bdev_get_driver(bdev), zvfs_bdev_get_geometry(bdev)->size,
	       zvfs_bdev_get_geometry(bdev)->block_size);
	printf("workload %s", perf_wl_names[c->p.wl]);
	if (mixed)
		printf(" (%u%% reads)", c->p.rwmixread);
	printf(", bs %" PRIu64
	       ", qd %u, threads %u, %.1f s measured after %.1f s ramp, area %" PRIu64 "+%" PRIu64
	       ", seed %" PRIu64 "\n",
	       c->p.bs, c->p.qd, c->p.threads, secs, c->p.ramp_s, c->offset, c->p.span, c->p.seed);
	perf_text_header();
	perf_text_result(&res[0]);
	if (mixed) {
		perf_text_result(&res[1]);
		perf_text_result(&res[2]);
	}
}

/* ---- 5. main --------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_stop, true);
}

/* Check the area and the block size against the device; fill c->p.span. */
static int check_geometry(struct config *c, const struct zvfs_bdev_geometry *geo)
{
	if (c->p.bs % geo->block_size) {
		fprintf(stderr,
			PROG ": --block-size: %" PRIu64 " is not a multiple of the "
			     "device block size %u\n",
			c->p.bs, geo->block_size);
		return -1;
	}
	if (c->offset % c->p.bs || c->p.span % c->p.bs) {
		fprintf(stderr,
			PROG ": --offset/--span: must be multiples of the block size "
			     "%" PRIu64 "\n",
			c->p.bs);
		return -1;
	}
	if (c->offset >= geo->size) {
		fprintf(stderr,
			PROG ": --offset: %" PRIu64 " is beyond the device (%" PRIu64 " bytes)\n",
			c->offset, geo->size);
		return -1;
	}
	if (!c->p.span)
		c->p.span = (geo->size - c->offset) / c->p.bs * c->p.bs;
	if (c->p.span > geo->size - c->offset) {
		fprintf(stderr,
			PROG ": --span: %" PRIu64 "+%" PRIu64 " reaches beyond the device "
			     "(%" PRIu64 " bytes)\n",
			c->offset, c->p.span, geo->size);
		return -1;
	}
	if (c->p.span / c->p.bs <
	    (c->p.wl == PERF_WL_READ || c->p.wl == PERF_WL_WRITE ? c->p.threads : 1)) {
		fprintf(stderr, PROG ": the area holds too few blocks for %u threads\n",
			c->p.threads);
		return -1;
	}
	if ((c->p.wl == PERF_WL_RANDWRITE || c->p.wl == PERF_WL_WRITE ||
	     c->p.wl == PERF_WL_RANDRW) &&
	    geo->read_only) {
		fprintf(stderr, PROG ": %s: device is read-only\n", c->spec);
		return -1;
	}
	if (c->p.qd > geo->queue_depth)
		fprintf(stderr,
			PROG ": warning: queue depth %u exceeds the channel's %u; the rest waits "
			     "in the channel (add qd=%u to the device spec)\n",
			c->p.qd, geo->queue_depth, c->p.qd);
	return 0;
}

static void worker_setup(struct worker *w, const struct config *c, struct zvfs_bdev *bdev,
			 unsigned idx)
{
	uint64_t blocks = c->p.span / c->p.bs;

	w->cfg = c;
	w->bdev = bdev;
	w->idx = idx;
	w->rng = perf_splitmix64(c->p.seed + idx);
	w->submit_each = c->submit_each;
	w->random = c->p.wl == PERF_WL_RANDREAD || c->p.wl == PERF_WL_RANDWRITE ||
		    c->p.wl == PERF_WL_RANDRW;
	if (w->random) {
		w->area_start = c->offset;
		w->area_blocks = blocks;
	} else {
		/* Thread i streams through its own slice: no two threads overlap. */
		uint64_t per = blocks / c->p.threads;

		w->area_start = c->offset + (uint64_t)idx * per * c->p.bs;
		w->area_blocks = per;
	}
	switch (c->p.wl) {
	case PERF_WL_RANDREAD:
	case PERF_WL_READ:
		w->read_thresh = 100;
		break;
	case PERF_WL_RANDWRITE:
	case PERF_WL_WRITE:
		w->read_thresh = 0;
		break;
	case PERF_WL_RANDRW:
		w->read_thresh = c->p.rwmixread;
		break;
	}
}

int main(int argc, char **argv)
{
	struct perf_hist *all = NULL, *rd = NULL, *wr = NULL;
	struct worker *workers = NULL;
	struct zvfs_bdev *bdev = NULL;
	struct sigaction sa;
	struct config c;
	char errbuf[512];
	unsigned started = 0;
	uint64_t t_stop = 0, t0;
	int status = 1, rc;
	double secs;

	rc = parse_args(argc, argv, &c);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (!c.p.seed_set)
		c.p.seed = perf_splitmix64(zvfs_mono_ns() ^ ((uint64_t)getpid() << 32));

	rc = zvfs_bdev_open(c.spec, &bdev, errbuf, sizeof(errbuf));
	if (rc) {
		/* The message names the device and the reason already. */
		if (errbuf[0])
			fprintf(stderr, PROG ": %s\n", errbuf);
		else
			fprintf(stderr, PROG ": %s: %s\n", c.spec, strerror(-rc));
		return 1;
	}
	if (check_geometry(&c, zvfs_bdev_get_geometry(bdev))) {
		status = 2;
		goto out_close;
	}

	workers = calloc(c.p.threads, sizeof(*workers));
	all = malloc(sizeof(*all));
	rd = malloc(sizeof(*rd));
	wr = malloc(sizeof(*wr));
	if (!workers || !all || !rd || !wr)
		goto err_nomem;
	for (unsigned i = 0; i < c.p.threads; i++) {
		struct worker *w = &workers[i];

		worker_setup(w, &c, bdev, i);
		w->reqs = calloc(c.p.qd, sizeof(*w->reqs));
		w->hist[0] = malloc(sizeof(struct perf_hist));
		w->hist[1] = malloc(sizeof(struct perf_hist));
		if (!w->reqs || !w->hist[0] || !w->hist[1])
			goto err_nomem;
		perf_hist_init(w->hist[0]);
		perf_hist_init(w->hist[1]);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	for (; started < c.p.threads; started++) {
		rc = pthread_create(&workers[started].tid, NULL, worker_main, &workers[started]);
		if (rc) {
			fprintf(stderr, PROG ": cannot start thread: %s\n", strerror(rc));
			/* Let the started ones go straight to their exit. */
			atomic_store(&g_stop, true);
			workers[started].error = -rc;
			break;
		}
	}
	t0 = perf_start_release(started);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i].tid, NULL);

	perf_hist_init(all);
	perf_hist_init(rd);
	perf_hist_init(wr);
	status = 0;
	for (unsigned i = 0; i < c.p.threads; i++) {
		struct worker *w = &workers[i];

		if (w->error)
			status = 1;
		perf_hist_merge(rd, w->hist[0]);
		perf_hist_merge(wr, w->hist[1]);
		if (w->t_stop > t_stop)
			t_stop = w->t_stop;
	}
	perf_hist_merge(all, rd);
	perf_hist_merge(all, wr);
	if (status)
		goto out_free;
	/* Measured window: from the end of the ramp to the end (or an early stop). */
	secs = c.p.time_s;
	if (atomic_load(&g_stop) && t_stop) {
		uint64_t t_measure = t0 + (uint64_t)(c.p.ramp_s * 1e9);

		secs = t_stop > t_measure ? (double)(t_stop - t_measure) / 1e9 : 0;
		if (secs > c.p.time_s)
			secs = c.p.time_s;
	}
	report(&c, bdev, all, rd, wr, secs);
	if (fflush(stdout) == EOF) {
		fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
		status = 1;
	}
	goto out_free;

err_nomem:
	fprintf(stderr, PROG ": %s\n", strerror(ENOMEM));
	status = 1;
out_free:
	if (workers) {
		for (unsigned i = 0; i < c.p.threads; i++) {
			free(workers[i].reqs);
			free(workers[i].hist[0]);
			free(workers[i].hist[1]);
		}
	}
	free(workers);
	free(all);
	free(rd);
	free(wr);
out_close:
	rc = zvfs_bdev_close(bdev);
	if (rc && !status) {
		fprintf(stderr, PROG ": close: %s\n", strerror(-rc));
		status = 1;
	}
	return status;
}
