/* SPDX-License-Identifier: MIT */
/*
 * zvfs-blobperf: drive one blob of a ZVFS blobstore at a fixed queue depth
 * (the zvfs-bdevperf load on zvfs/blob.h), and time store loads.
 *
 * Map of this file:
 *   1. options              parse_args(), usage()
 *   2. workers              one thread, one zvfs_bs_channel, QD requests in flight
 *   3. I/O mode             store and blob setup, run, report
 *   4. load mode            --load-test N: build N blobs, crash, time the loads
 *   5. main
 *
 * The hot path is zvfs-bdevperf's (see there): QD requests per worker, the
 * completion callback records the latency and resubmits at once, the worker
 * loops on zvfs_bs_wait(); one clock read per I/O.  Histogram, generator and
 * report rows are shared with zvfs-bdevperf (perfcommon.h), so the two tools
 * print the same fields and their figures compare directly.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zvfs/bdev.h"
#include "zvfs/blob.h"
#include "blob/blob_internal.h" /* zvfs_bs_abandon(): the simulated crash of --load-test */
#include "perfcommon.h"
#include "zvfs_version.h"

#define PROG "zvfs-blobperf"

/* ---- 1. options ------------------------------------------------------- */

struct config {
	const char *spec;
	struct perf_opts p; /* the common load options */
	bool mkfs;
	bool thin;
	bool fill;	       /* write the whole blob once before the run */
	uint32_t cluster_size; /* --mkfs: bytes */
	uint32_t md_pages;     /* --mkfs: metadata pages; 0 = one per cluster */
	uint64_t load_n;       /* --load-test: blobs; 0 = I/O mode */
	const char *load_copy; /* --load-copy: device to copy the store to and load there */
	bool load_nowrite;     /* --load-test: do not give each blob a data cluster */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " -d SPEC [--mkfs] [--thin] [options]\n"
		"       " PROG " -d SPEC --load-test N [--load-copy SPEC2] [options]\n"
		"\n"
		"I/O mode: run a zvfs-bdevperf load on one blob of a ZVFS blobstore on SPEC and\n"
		"report IOPS, MiB/s and latency (mean, p50, p99, p99.9, max) in microseconds.\n"
		"\n"
		"  -d, --device SPEC        device spec (zvfs/bdev.h grammar; required)\n"
		"      --mkfs               format SPEC as a new store first (zvfs_bs_init);\n"
		"                           otherwise load the store on it\n"
		"      --cluster-size SIZE  --mkfs: cluster size (default 1M)\n"
		"      --md-pages N         --mkfs: metadata pages (default one per cluster; set "
		"it\n"
		"                           with small clusters, e.g. 16384 for 4K clusters)\n"
		"      --thin               run on a fresh thin blob (created for the run, "
		"deleted\n"
		"                           after it): writes allocate clusters as they go\n"
		"                           (default: the store's first thick blob, created if\n"
		"                           there is none)\n"
		"      --span SIZE          size of a blob this run creates (default: the free\n"
		"                           space; thin: 63/64 of it)\n"
		"      --fill               write the whole blob once (1 MiB writes) before the "
		"run\n"
		"  -w, --workload W         randread (default), randwrite, read, write, randrw\n"
		"  -M, --rwmixread PCT      randrw: percentage of reads (default 50)\n"
		"  -b, --block-size SIZE    bytes per request (default 4K)\n"
		"  -q, --queue-depth N      requests in flight per thread (default 1)\n"
		"  -j, --threads N          worker threads, one channel each (default 1)\n"
		"  -t, --time SECONDS       measured run time (default 10)\n"
		"      --ramp SECONDS       warm-up, not measured (default 0)\n"
		"      --seed N             seed of the offset generator (default: clock)\n"
		"      --json               print one JSON line instead of the table\n"
		"\n"
		"Load mode (--load-test N): format SPEC (clusters of --cluster-size, default\n"
		"16K, one metadata page per blob and page plus slack), create N thin blobs of one\n"
		"cluster with two xattrs each and write 4 KiB into each (so each owns a cluster\n"
		"and an extent page, like a small ZVFS file; --load-nowrite skips that), then\n"
		"drop the store without unloading it (a crash), and time zvfs_bs_load() (the\n"
		"recovery), then a clean load after an unload.  With --load-copy SPEC2 the\n"
		"crashed store's bytes are copied to SPEC2 first and the loads run there (build\n"
		"on ram:, time on a file).\n"
		"\n"
		"  -h, --help               this text\n"
		"  -V, --version            print the version\n"
		"\n"
		"Exit status: 0 success, 1 I/O, device or store error, 2 usage error.\n");
}

enum {
	OPT_MKFS = PERF_OPT_TOOL,
	OPT_THIN,
	OPT_FILL,
	OPT_CLUSTER,
	OPT_MD_PAGES,
	OPT_LOAD,
	OPT_LOAD_COPY,
	OPT_LOAD_NOWRITE,
};

/* Returns 0 to run, 1 when done (help, version), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct config *c)
{
	static const struct option opts[] = {
		{"device", required_argument, NULL, 'd'},
		PERF_LONG_OPTS,
		{"mkfs", no_argument, NULL, OPT_MKFS},
		{"thin", no_argument, NULL, OPT_THIN},
		{"fill", no_argument, NULL, OPT_FILL},
		{"cluster-size", required_argument, NULL, OPT_CLUSTER},
		{"md-pages", required_argument, NULL, OPT_MD_PAGES},
		{"load-test", required_argument, NULL, OPT_LOAD},
		{"load-copy", required_argument, NULL, OPT_LOAD_COPY},
		{"load-nowrite", no_argument, NULL, OPT_LOAD_NOWRITE},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
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
		case OPT_MKFS:
			c->mkfs = true;
			break;
		case OPT_THIN:
			c->thin = true;
			break;
		case OPT_FILL:
			c->fill = true;
			break;
		case OPT_CLUSTER:
			if (perf_parse_bytes(PROG, "--cluster-size", optarg, &v))
				return 2;
			if (v < 4096 || v % 4096 || v > (1u << 30)) {
				fprintf(stderr,
					PROG ": --cluster-size: a multiple of 4K up to 1G: %s\n",
					optarg);
				return 2;
			}
			c->cluster_size = (uint32_t)v;
			break;
		case OPT_MD_PAGES:
			if (perf_parse_uint(PROG, "--md-pages", optarg, 1, UINT32_MAX - 1, &v))
				return 2;
			c->md_pages = (uint32_t)v;
			break;
		case OPT_LOAD:
			if (perf_parse_uint(PROG, "--load-test", optarg, 1, 100000000, &c->load_n))
				return 2;
			break;
		case OPT_LOAD_COPY:
			c->load_copy = optarg;
			break;
		case OPT_LOAD_NOWRITE:
			c->load_nowrite = true;
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
	if (!c->cluster_size)
		c->cluster_size = c->load_n ? 16 * 1024 : 1024 * 1024;
	return 0;
}

/* ---- 2. workers ---------------------------------------------------------- */

struct worker;

struct req {
	struct worker *w;
	void *buf;
	uint64_t t_submit; /* ns, CLOCK_MONOTONIC */
	uint64_t offset;   /* bytes in the blob, for error messages */
	bool write;
};

struct worker {
	/* Hot fields first: the callback touches these on every I/O. */
	struct zvfs_bs_channel *ch;
	struct zvfs_blob *blob;
	const struct config *cfg;
	uint64_t rng;
	uint64_t area_start; /* bytes: 0 (random) or this thread's slice */
	uint64_t area_blocks;
	uint64_t seq_next;  /* block index within the area */
	uint64_t t_measure; /* ns: completions from here on count */
	uint64_t t_end;	    /* ns: no new requests from here on */
	uint64_t t_stop;    /* ns: when this worker stopped submitting */
	uint64_t done;	    /* completions, ramp included */
	unsigned inflight;
	uint32_t read_thresh; /* random draw below it is a read (percent scale) */
	bool random;
	bool stopping;
	int error;
	struct perf_hist *hist[2]; /* [0] reads, [1] writes */

	struct zvfs_bdev *bdev;
	struct zvfs_bs *bs;
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
	int rc;

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
		rc = zvfs_blob_write(w->blob, w->ch, r->buf, bs, r->offset, req_done, r);
	else
		rc = zvfs_blob_read(w->blob, w->ch, r->buf, bs, r->offset, req_done, r);
	if (rc == 0)
		w->inflight++;
	return rc;
}

/* Stop this worker (and make the others stop) after a failure; report the first. */
static void worker_fail(struct worker *w, const struct req *r, const char *what, int err)
{
	if (!w->error) {
		w->error = err;
		if (r)
			fprintf(stderr,
				PROG ": I/O error: %s of %" PRIu64 " bytes at blob offset %" PRIu64
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

	w->inflight--;
	if (__builtin_expect(status != 0, 0)) {
		worker_fail(w, r, r->write ? "write" : "read", status);
		return;
	}
	w->done++;
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
	if (__builtin_expect(rc != 0, 0))
		worker_fail(w, NULL, "submit", rc);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct config *c = w->cfg;
	const char *fail = NULL;
	uint64_t t0;
	unsigned i;
	int rc;

	rc = zvfs_bs_get_channel(w->bs, &w->ch);
	if (rc) {
		fail = "cannot get a blobstore channel";
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
	while (w->inflight > 0) {
		rc = zvfs_bs_wait(w->ch);
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

static void worker_setup(struct worker *w, const struct config *c, struct zvfs_bs *bs,
			 struct zvfs_blob *blob, uint64_t blob_bytes, unsigned idx)
{
	uint64_t blocks = blob_bytes / c->p.bs;

	w->cfg = c;
	w->bs = bs;
	w->bdev = zvfs_bs_get_bdev(bs);
	w->blob = blob;
	w->idx = idx;
	w->rng = perf_splitmix64(c->p.seed + idx);
	w->random = c->p.wl == PERF_WL_RANDREAD || c->p.wl == PERF_WL_RANDWRITE ||
		    c->p.wl == PERF_WL_RANDRW;
	if (w->random) {
		w->area_start = 0;
		w->area_blocks = blocks;
	} else {
		uint64_t per = blocks / c->p.threads;

		w->area_start = (uint64_t)idx * per * c->p.bs;
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

/* ---- 3. I/O mode ------------------------------------------------------------ */

struct run_info {
	struct zvfs_bs_stats st;
	zvfs_blob_id id;
	uint64_t clusters;
	uint64_t alloc_before; /* allocated clusters of the blob at the start */
	uint64_t alloc_after;
	uint64_t completions; /* every I/O completed, ramp included */
	uint64_t data_offset; /* device byte offset of the blob's data, if contiguous */
	double setup_s;
};

static void report(const struct config *c, struct zvfs_bdev *bdev, const struct run_info *ri,
		   const struct perf_hist *all, const struct perf_hist *rd,
		   const struct perf_hist *wr, double secs)
{
	struct perf_result res[3] = {
		{"total", all, 0, 0},
		{"read", rd, 0, 0},
		{"write", wr, 0, 0},
	};
	bool mixed = c->p.wl == PERF_WL_RANDRW;
	uint64_t allocs = ri->alloc_after - ri->alloc_before;
	uint64_t span = ri->clusters * ri->st.cluster_size;

	for (int i = 0; i < 3; i++) {
		res[i].iops = secs > 0 ? (double)res[i].h->count / secs : 0;
		res[i].mibps = res[i].iops * (double)c->p.bs / (1024.0 * 1024.0);
	}
	if (c->p.json) {
		printf("{\"tool\":\"" PROG "\",\"version\":\"" ZVFS_VERSION "\",\"device\":");
		perf_json_string(c->spec);
		printf(",\"driver\":\"%s\",\"workload\":\"%s\",\"rwmixread\":%u,\"bs\":%" PRIu64
		       ",\"qd\":%u,\"threads\":%u,\"time_s\":%.3f,\"ramp_s\":%.3f,\"offset\":0"
		       ",\"span\":%" PRIu64 ",\"seed\":%" PRIu64 ",",
		       zvfs_bdev_get_driver(bdev), perf_wl_names[c->p.wl],
		       mixed							  ? c->p.rwmixread
		       : (c->p.wl == PERF_WL_RANDREAD || c->p.wl == PERF_WL_READ) ? 100
										  : 0,
		       c->p.bs, c->p.qd, c->p.threads, secs, c->p.ramp_s, span, c->p.seed);
		printf("\"blob\":{\"id\":%" PRIu64 ",\"thin\":%s,\"clusters\":%" PRIu64
		       ",\"cluster_size\":%" PRIu64 ",\"allocated_before\":%" PRIu64
		       ",\"allocated_after\":%" PRIu64 ",\"allocated_in_run\":%" PRIu64
		       ",\"completions\":%" PRIu64 ",\"data_offset\":%" PRIu64
		       ",\"store_data_clusters\":%" PRIu64 ",\"setup_s\":%.3f},",
		       ri->id, c->thin ? "true" : "false", ri->clusters, ri->st.cluster_size,
		       ri->alloc_before, ri->alloc_after, allocs, ri->completions, ri->data_offset,
		       ri->st.data_clusters, ri->setup_s);
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
	printf("blob 0x%" PRIx64 " (%s, %" PRIu64 " clusters of %" PRIu64 " bytes, data at device "
	       "offset %" PRIu64 "), store %" PRIu64 " data clusters\n",
	       ri->id, c->thin ? "thin" : "thick", ri->clusters, ri->st.cluster_size,
	       ri->data_offset, ri->st.data_clusters);
	printf("workload %s", perf_wl_names[c->p.wl]);
	if (mixed)
		printf(" (%u%% reads)", c->p.rwmixread);
	printf(", bs %" PRIu64
	       ", qd %u, threads %u, %.1f s measured after %.1f s ramp, span %" PRIu64
	       ", seed %" PRIu64 "\n",
	       c->p.bs, c->p.qd, c->p.threads, secs, c->p.ramp_s, span, c->p.seed);
	perf_text_header();
	perf_text_result(&res[0]);
	if (mixed) {
		perf_text_result(&res[1]);
		perf_text_result(&res[2]);
	}
	if (c->thin)
		printf("clusters allocated during the run: %" PRIu64 " (%" PRIu64 " -> %" PRIu64
		       " of %" PRIu64 "); %.1f%% of the %" PRIu64 " completed I/Os allocated\n",
		       allocs, ri->alloc_before, ri->alloc_after, ri->clusters,
		       ri->completions ? 100.0 * (double)allocs / (double)ri->completions : 0.0,
		       ri->completions);
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_stop, true);
}

/* Write the whole blob once, 1 MiB (or a cluster, if smaller) per write, 8 in flight. */
struct fill_ctx {
	unsigned inflight;
	int error;
};

static void fill_done(void *arg, int status)
{
	struct fill_ctx *f = arg;

	f->inflight--;
	if (status && !f->error)
		f->error = status;
}

static int blob_fill(struct zvfs_bs *bs, struct zvfs_blob *blob, uint64_t bytes,
		     uint64_t cluster_size)
{
	uint64_t chunk = cluster_size < (1u << 20) ? cluster_size : (1u << 20);
	struct zvfs_bdev *bdev = zvfs_bs_get_bdev(bs);
	struct zvfs_bs_channel *ch;
	struct fill_ctx f = {0, 0};
	uint64_t off = 0, seed = 42;
	void *buf;
	int rc;

	rc = zvfs_bs_get_channel(bs, &ch);
	if (rc)
		return rc;
	buf = zvfs_bdev_buf_alloc(bdev, chunk);
	if (!buf)
		return -ENOMEM;
	for (uint64_t k = 0; k < chunk / 8; k++)
		((uint64_t *)buf)[k] = perf_rng_next(&seed);
	while ((off < bytes || f.inflight) && !f.error) {
		/* The same buffer for every write: only reads of it are in flight. */
		while (off < bytes && f.inflight < 8) {
			rc = zvfs_blob_write(blob, ch, buf, chunk, off, fill_done, &f);
			if (rc) {
				f.error = rc;
				break;
			}
			f.inflight++;
			off += chunk;
		}
		while (f.inflight) {
			rc = zvfs_bs_wait(ch);
			if (rc < 0) {
				zvfs_bdev_buf_free(bdev, buf);
				return rc;
			}
			if (f.inflight < 8)
				break;
		}
	}
	while (f.inflight && zvfs_bs_wait(ch) >= 0)
		;
	zvfs_bdev_buf_free(bdev, buf);
	if (f.error)
		return f.error;
	return zvfs_bs_flush(bs);
}

/* Open the first thick blob of the store, or create one. */
static int open_or_create(const struct config *c, struct zvfs_bs *bs, struct zvfs_blob **blobp,
			  bool *created)
{
	struct zvfs_blob_opts bo;
	struct zvfs_bs_stats st;
	zvfs_blob_id id = ZVFS_BLOBID_INVALID;
	int rc;

	*created = false;
	if (!c->thin && !c->mkfs) {
		while (zvfs_bs_next_blob(bs, id, &id) == 0) {
			rc = zvfs_blob_open(bs, id, blobp);
			if (rc)
				continue;
			if (!zvfs_blob_is_thin(*blobp))
				return 0;
			zvfs_blob_close(*blobp);
		}
	}
	rc = zvfs_bs_get_stats(bs, &st);
	if (rc)
		return rc;
	zvfs_blob_opts_init(&bo);
	bo.thin = c->thin;
	if (c->p.span)
		bo.num_clusters = (c->p.span + st.cluster_size - 1) / st.cluster_size;
	else if (c->thin)
		bo.num_clusters = st.free_clusters - st.free_clusters / 64;
	else
		bo.num_clusters = st.free_clusters;
	if (!bo.num_clusters || (!c->thin && bo.num_clusters > st.free_clusters)) {
		fprintf(stderr,
			PROG ": --span: %" PRIu64 " clusters wanted, %" PRIu64
			     " free in the store\n",
			bo.num_clusters, st.free_clusters);
		return -ENOSPC;
	}
	rc = zvfs_blob_create(bs, &bo, &id);
	if (rc)
		return rc;
	*created = true;
	return zvfs_blob_open(bs, id, blobp);
}

static int io_mode(struct config *c)
{
	struct perf_hist *all = NULL, *rd = NULL, *wr = NULL;
	struct worker *workers = NULL;
	struct zvfs_bdev *bdev = NULL;
	struct zvfs_blob *blob = NULL;
	struct zvfs_bs *bs = NULL;
	struct zvfs_bs_opts bso;
	struct run_info ri;
	struct sigaction sa;
	char errbuf[512];
	unsigned started = 0;
	uint64_t t_stop = 0, t_setup, blob_bytes, t0;
	bool created;
	int status = 1, rc;
	double secs;

	memset(&ri, 0, sizeof(ri));
	rc = zvfs_bdev_open(c->spec, &bdev, errbuf, sizeof(errbuf));
	if (rc) {
		if (errbuf[0])
			fprintf(stderr, PROG ": %s\n", errbuf);
		else
			fprintf(stderr, PROG ": %s: %s\n", c->spec, strerror(-rc));
		return 1;
	}
	t_setup = zvfs_mono_ns();
	zvfs_bs_opts_init(&bso);
	if (c->mkfs) {
		bso.cluster_size = c->cluster_size;
		if (c->md_pages)
			bso.num_md_pages = c->md_pages;
		rc = zvfs_bs_init(bdev, &bso, &bs);
	} else {
		memset(bso.bstype, 0, sizeof(bso.bstype));
		rc = zvfs_bs_load(bdev, &bso, &bs);
	}
	if (rc) {
		fprintf(stderr, PROG ": %s: %s: %s\n", c->spec, c->mkfs ? "mkfs" : "load",
			strerror(-rc));
		goto out_close;
	}
	rc = open_or_create(c, bs, &blob, &created);
	if (rc) {
		fprintf(stderr, PROG ": %s blob: %s\n", c->thin ? "thin" : "thick", strerror(-rc));
		goto out_unload;
	}
	zvfs_bs_get_stats(bs, &ri.st);
	ri.id = zvfs_blob_get_id(blob);
	ri.clusters = zvfs_blob_get_num_clusters(blob);
	blob_bytes = ri.clusters * ri.st.cluster_size;
	/* Thick blobs get the lowest free clusters: right after the metadata region. */
	ri.data_offset = (ri.st.total_clusters - ri.st.data_clusters) * ri.st.cluster_size;
	if (c->p.bs % ri.st.io_unit_size || blob_bytes / c->p.bs < c->p.threads) {
		fprintf(stderr,
			PROG ": --block-size: %" PRIu64 " must be a multiple of the io unit %u and "
			     "the blob (%" PRIu64 " bytes) hold a block per thread\n",
			c->p.bs, ri.st.io_unit_size, blob_bytes);
		status = 2;
		goto out_blob;
	}
	if (c->fill) {
		rc = blob_fill(bs, blob, blob_bytes, ri.st.cluster_size);
		if (rc) {
			fprintf(stderr, PROG ": --fill: %s\n", strerror(-rc));
			goto out_blob;
		}
	}
	ri.setup_s = (double)(zvfs_mono_ns() - t_setup) / 1e9;
	ri.alloc_before = zvfs_blob_get_num_allocated_clusters(blob);
	if (c->p.qd > zvfs_bdev_get_geometry(bdev)->queue_depth)
		fprintf(stderr,
			PROG ": warning: queue depth %u exceeds the channel's %u; the rest waits "
			     "in the channel (add qd=%u to the device spec)\n",
			c->p.qd, zvfs_bdev_get_geometry(bdev)->queue_depth, c->p.qd);

	workers = calloc(c->p.threads, sizeof(*workers));
	all = malloc(sizeof(*all));
	rd = malloc(sizeof(*rd));
	wr = malloc(sizeof(*wr));
	if (!workers || !all || !rd || !wr)
		goto err_nomem;
	for (unsigned i = 0; i < c->p.threads; i++) {
		struct worker *w = &workers[i];

		worker_setup(w, c, bs, blob, blob_bytes, i);
		w->reqs = calloc(c->p.qd, sizeof(*w->reqs));
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

	for (; started < c->p.threads; started++) {
		rc = pthread_create(&workers[started].tid, NULL, worker_main, &workers[started]);
		if (rc) {
			fprintf(stderr, PROG ": cannot start thread: %s\n", strerror(rc));
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
	for (unsigned i = 0; i < c->p.threads; i++) {
		struct worker *w = &workers[i];

		if (w->error)
			status = 1;
		perf_hist_merge(rd, w->hist[0]);
		perf_hist_merge(wr, w->hist[1]);
		ri.completions += w->done;
		if (w->t_stop > t_stop)
			t_stop = w->t_stop;
	}
	perf_hist_merge(all, rd);
	perf_hist_merge(all, wr);
	ri.alloc_after = zvfs_blob_get_num_allocated_clusters(blob);
	if (status)
		goto out_free;
	secs = c->p.time_s;
	if (atomic_load(&g_stop) && t_stop) {
		uint64_t t_measure = t0 + (uint64_t)(c->p.ramp_s * 1e9);

		secs = t_stop > t_measure ? (double)(t_stop - t_measure) / 1e9 : 0;
		if (secs > c->p.time_s)
			secs = c->p.time_s;
	}
	report(c, bdev, &ri, all, rd, wr, secs);
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
		for (unsigned i = 0; i < c->p.threads; i++) {
			free(workers[i].reqs);
			free(workers[i].hist[0]);
			free(workers[i].hist[1]);
		}
	}
	free(workers);
	free(all);
	free(rd);
	free(wr);
out_blob:
	rc = zvfs_blob_close(blob);
	if (rc && !status) {
		fprintf(stderr, PROG ": close blob: %s\n", strerror(-rc));
		status = 1;
	}
	/* A thin blob is the run's scratch: the next run starts from a fresh one. */
	if (c->thin && created) {
		rc = zvfs_bs_delete_blob(bs, ri.id);
		if (rc && !status) {
			fprintf(stderr, PROG ": delete thin blob: %s\n", strerror(-rc));
			status = 1;
		}
	}
out_unload:
	rc = zvfs_bs_unload(bs);
	if (rc && !status) {
		fprintf(stderr, PROG ": unload: %s\n", strerror(-rc));
		status = 1;
	}
out_close:
	rc = zvfs_bdev_close(bdev);
	if (rc && !status) {
		fprintf(stderr, PROG ": close: %s\n", strerror(-rc));
		status = 1;
	}
	return status;
}

/* ---- 4. load mode ------------------------------------------------------------ */

static double secs_since(uint64_t t0)
{
	return (double)(zvfs_mono_ns() - t0) / 1e9;
}

/* Copy the first len bytes of src to dst, 8 MiB at a time, then flush dst. */
static int copy_device(struct zvfs_bdev *src, struct zvfs_bdev *dst, uint64_t len)
{
	const uint64_t chunk = 8u << 20;
	void *buf = zvfs_bdev_buf_alloc(src, chunk);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < len && !rc; off += chunk) {
		uint64_t n = len - off < chunk ? len - off : chunk;

		rc = zvfs_bdev_read_sync(src, buf, n, off);
		if (!rc)
			rc = zvfs_bdev_write_sync(dst, buf, n, off);
	}
	zvfs_bdev_buf_free(src, buf);
	return rc ? rc : zvfs_bdev_flush_sync(dst);
}

/* Load the store on bdev, time it, check the blob count; *bsp stays loaded. */
static int timed_load(struct zvfs_bdev *bdev, uint64_t n, bool dirty, double *secs,
		      struct zvfs_bs **bsp)
{
	struct zvfs_bs_opts o;
	struct zvfs_bs_stats st;
	uint64_t t0;
	int rc;

	zvfs_bs_opts_init(&o);
	t0 = zvfs_mono_ns();
	rc = zvfs_bs_load(bdev, &o, bsp);
	*secs = secs_since(t0);
	if (rc) {
		fprintf(stderr, PROG ": %s load: %s\n", dirty ? "unclean" : "clean", strerror(-rc));
		return rc;
	}
	zvfs_bs_get_stats(*bsp, &st);
	if (st.blobs != n || st.bad_blobs || st.loaded_dirty != dirty) {
		fprintf(stderr,
			PROG ": %s load: %" PRIu64 " blobs (%" PRIu64 " bad, recovered %s), "
			     "expected %" PRIu64 " blobs, recovered %s\n",
			dirty ? "unclean" : "clean", st.blobs, st.bad_blobs,
			st.loaded_dirty ? "yes" : "no", n, dirty ? "yes" : "no");
		zvfs_bs_unload(*bsp);
		*bsp = NULL;
		return -EUCLEAN;
	}
	return 0;
}

/* Make n blobs the shape of small ZVFS files: thin, 1 cluster, 2 xattrs, 4 KiB of data. */
static int make_blobs(const struct config *c, struct zvfs_bs *bs, uint64_t n)
{
	struct zvfs_bdev *bdev = zvfs_bs_get_bdev(bs);
	struct zvfs_blob_xattr xa[2];
	struct zvfs_blob_opts bo;
	char name[32];
	uint64_t meta[4] = {0}; /* stand-in for ZVFS's inode xattr: mode, size, times */
	void *buf;
	int rc = 0;

	buf = zvfs_bdev_buf_alloc(bdev, 4096);
	if (!buf)
		return -ENOMEM;
	memset(buf, 0xa5, 4096);
	xa[0] = (struct zvfs_blob_xattr){"name", name, 0};
	xa[1] = (struct zvfs_blob_xattr){"zvfs.inode", meta, sizeof(meta)};
	for (uint64_t i = 0; i < n && !rc; i++) {
		struct zvfs_blob *blob;
		zvfs_blob_id id;

		xa[0].value_len = (uint16_t)snprintf(name, sizeof(name), "file-%" PRIu64, i);
		meta[0] = 0100644;
		meta[1] = 4096;
		meta[2] = i;
		zvfs_blob_opts_init(&bo);
		bo.thin = true;
		bo.num_clusters = 1;
		bo.xattrs = xa;
		bo.nxattrs = 2;
		rc = zvfs_blob_create(bs, &bo, &id);
		if (rc || c->load_nowrite)
			continue;
		rc = zvfs_blob_open(bs, id, &blob);
		if (rc)
			continue;
		rc = zvfs_blob_write_sync(blob, buf, 4096, 0);
		{
			/* close persists the allocation (extent page and root) */
			int rc2 = zvfs_blob_close(blob);

			if (!rc)
				rc = rc2;
		}
	}
	zvfs_bdev_buf_free(bdev, buf);
	return rc;
}

static int load_mode(const struct config *c)
{
	struct zvfs_bdev *bdev = NULL, *bdev2 = NULL, *tb;
	struct zvfs_bs *bs = NULL;
	struct zvfs_bs_opts o;
	struct zvfs_bs_stats st;
	char errbuf[512];
	double t_create, t_copy = 0, t_dirty, t_unload, t_clean;
	uint64_t n = c->load_n, t0, md_used;
	int rc;

	rc = zvfs_bdev_open(c->spec, &bdev, errbuf, sizeof(errbuf));
	if (rc) {
		fprintf(stderr, PROG ": %s\n", errbuf[0] ? errbuf : strerror(-rc));
		return 1;
	}
	zvfs_bs_opts_init(&o);
	o.cluster_size = c->cluster_size;
	/* A root page per blob, an extent page per written blob, slack for sync_md's COW. */
	o.num_md_pages = (uint32_t)((c->load_nowrite ? n : 2 * n) + n / 16 + 256);
	rc = zvfs_bs_init(bdev, &o, &bs);
	if (rc) {
		fprintf(stderr,
			PROG ": %s: mkfs (%u md pages, clusters of %u): %s (the device needs about "
			     "%" PRIu64 " MiB)\n",
			c->spec, o.num_md_pages, o.cluster_size, strerror(-rc),
			((uint64_t)o.num_md_pages * 4096 + (n + n / 16 + 64) * c->cluster_size) /
					(1u << 20) +
				8);
		goto err_close;
	}
	t0 = zvfs_mono_ns();
	rc = make_blobs(c, bs, n);
	t_create = secs_since(t0);
	if (rc) {
		fprintf(stderr, PROG ": creating %" PRIu64 " blobs: %s\n", n, strerror(-rc));
		zvfs_bs_unload(bs);
		goto err_close;
	}
	zvfs_bs_get_stats(bs, &st);
	md_used = st.md_pages_used;
	/* The crash: nothing of the in-memory state reaches the device. */
	zvfs_bs_abandon(bs);
	bs = NULL;

	tb = bdev;
	if (c->load_copy) {
		rc = zvfs_bdev_open(c->load_copy, &bdev2, errbuf, sizeof(errbuf));
		if (rc) {
			fprintf(stderr, PROG ": %s\n", errbuf[0] ? errbuf : strerror(-rc));
			goto err_close;
		}
		if (zvfs_bdev_get_geometry(bdev2)->size < zvfs_bdev_get_geometry(bdev)->size) {
			fprintf(stderr, PROG ": %s: smaller than %s\n", c->load_copy, c->spec);
			rc = -ENOSPC;
			goto err_close;
		}
		t0 = zvfs_mono_ns();
		rc = copy_device(bdev, bdev2, zvfs_bdev_get_geometry(bdev)->size);
		t_copy = secs_since(t0);
		if (rc) {
			fprintf(stderr, PROG ": copy to %s: %s\n", c->load_copy, strerror(-rc));
			goto err_close;
		}
		/* Free the RAM image before timing: only the copy is used from here. */
		zvfs_bdev_close(bdev);
		bdev = NULL;
		tb = bdev2;
	}
	rc = timed_load(tb, n, true, &t_dirty, &bs);
	if (rc)
		goto err_close;
	t0 = zvfs_mono_ns();
	rc = zvfs_bs_unload(bs);
	t_unload = secs_since(t0);
	bs = NULL;
	if (rc) {
		fprintf(stderr, PROG ": unload: %s\n", strerror(-rc));
		goto err_close;
	}
	rc = timed_load(tb, n, false, &t_clean, &bs);
	if (rc)
		goto err_close;
	rc = zvfs_bs_unload(bs);
	if (rc) {
		fprintf(stderr, PROG ": unload: %s\n", strerror(-rc));
		goto err_close;
	}
	if (c->p.json) {
		printf("{\"tool\":\"" PROG "\",\"version\":\"" ZVFS_VERSION "\",\"mode\":\"load\","
		       "\"device\":");
		perf_json_string(c->load_copy ? c->load_copy : c->spec);
		printf(",\"driver\":\"%s\",\"blobs\":%" PRIu64 ",\"cluster_size\":%u,"
		       "\"md_pages\":%u,\"md_pages_used\":%" PRIu64 ",\"create_s\":%.3f,"
		       "\"copy_s\":%.3f,\"unclean_load_s\":%.4f,\"unload_s\":%.4f,"
		       "\"clean_load_s\":%.4f}\n",
		       zvfs_bdev_get_driver(tb), n, c->cluster_size, o.num_md_pages, md_used,
		       t_create, t_copy, t_dirty, t_unload, t_clean);
	} else {
		printf(PROG " " ZVFS_VERSION ": %s (%s): %" PRIu64 " blobs, clusters of %u, "
			    "%" PRIu64 " of %u md pages used\n",
		       c->load_copy ? c->load_copy : c->spec, zvfs_bdev_get_driver(tb), n,
		       c->cluster_size, md_used, o.num_md_pages);
		printf("create %.3f s%s, unclean load (recovery) %.4f s, unload %.4f s, clean load "
		       "%.4f s\n",
		       t_create, c->load_copy ? " (then copied)" : "", t_dirty, t_unload, t_clean);
	}
	rc = 0;
err_close:
	if (bdev2)
		zvfs_bdev_close(bdev2);
	if (bdev)
		zvfs_bdev_close(bdev);
	return rc ? 1 : 0;
}

/* ---- 5. main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct config c;
	int rc;

	rc = parse_args(argc, argv, &c);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (!c.p.seed_set)
		c.p.seed = perf_splitmix64(zvfs_mono_ns() ^ ((uint64_t)getpid() << 32));
	if (c.load_n)
		return load_mode(&c);
	return io_mode(&c);
}
