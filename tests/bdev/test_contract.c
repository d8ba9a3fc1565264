/* SPDX-License-Identifier: MIT */
/*
 * The block-device contract (include/zvfs/bdev.h), checked against one
 * backend configuration named by argv[1]; tests/meson.build runs it once per
 * configuration.  Every configuration runs the same checks:
 *
 *   main device    open, geometry, buffers, channels, aligned round trip,
 *                  vectored I/O, misalignment (-EINVAL), out of range
 *                  (-ERANGE), flush, write_zeroes, discard, an async batch,
 *                  callbacks that submit and poll, 8 threads with every byte
 *                  verified, thread exit releasing channels, fork, close
 *                  refusing in-flight requests, close;
 *   reopen qd=4    more requests than the queue depth, data kept across close;
 *   reopen ro      writes refused with -EROFS, reads work.
 *
 * Usage: test_contract CONFIG    (see g_cfgs below; no argument lists them)
 * Exit: 0 pass, 1 fail, 77 skip (with the reason printed).
 */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB	 (1ull << 20)
#define DEV_SIZE (64 * MiB)

/* Device layout: each check owns a region, so checks cannot mask each other. */
#define R_RT	   (0 * MiB)  /* round trip, 4 MiB (includes the first block) */
#define R_VEC	   (4 * MiB)  /* vectored I/O, 4 MiB */
#define R_ZERO	   (8 * MiB)  /* write_zeroes, 6 MiB */
#define R_BATCH	   (16 * MiB) /* async batch, 4 MiB */
#define R_QD	   (20 * MiB) /* queue depth (reopen phase), 4 MiB */
#define R_THR	   (24 * MiB) /* threads, 8 x 2 MiB */
#define R_FORK	   (40 * MiB) /* fork: parent 1 MiB, child 1 MiB */
#define R_KEEP	   (44 * MiB) /* written before close, checked after reopen, 1 MiB */
#define R_DISC	   (48 * MiB) /* discard, 4 MiB */
#define R_CHAIN	   (52 * MiB) /* callback chains, 2 MiB */
#define R_MISC	   (56 * MiB) /* misaligned / read-only attempts, 1 MiB */
#define R_FLUSH	   (58 * MiB) /* flush, 1 MiB */
#define THREADS	   8
#define THR_REGION (2 * MiB)

enum kind { K_FILE, K_RAM, K_LOOP };

struct cfg {
	const char *name;
	enum kind kind;
	const char *driver; /* spec prefix without ':' ("" for the default driver) */
	const char *opts;   /* extra options, each with its leading comma */
	const char *base;   /* K_FILE: directory for the image (NULL: $TMPDIR or /tmp) */
	uint32_t block;	    /* block size the options ask for (0: not given) */
	const char *want_driver;
};

static const struct cfg g_cfgs[] = {
	{"uring", K_FILE, "uring", "", NULL, 0, "uring"},
	{"uring-512", K_FILE, "uring", ",block=512", NULL, 512, "uring"},
	{"uring-buffered", K_FILE, "uring", ",buffered", NULL, 0, "uring"},
	{"uring-noregbuf", K_FILE, "uring", ",noregbuf", NULL, 0, "uring"},
	/* a waiting thread polls for a lone read (always), or never polls */
	{"uring-spin", K_FILE, "uring", ",spin=5000,spinalways,sqbatch=0", NULL, 0, "uring"},
	{"uring-nospin", K_FILE, "uring", ",spin=0", NULL, 0, "uring"},
	/* tmpfs has no FALLOC_FL_ZERO_RANGE: write_zeroes takes the emulated path. */
	{"uring-tmpfs", K_FILE, "uring", "", "/dev/shm", 0, "uring"},
	{"aio", K_FILE, "aio", "", NULL, 0, "aio"},
	{"aio-512", K_FILE, "aio", ",block=512", NULL, 512, "aio"},
	{"aio-buffered", K_FILE, "aio", ",buffered", NULL, 0, "aio"},
	{"aio-tmpfs", K_FILE, "aio", "", "/dev/shm", 0, "aio"},
	{"ram", K_RAM, "ram", "", NULL, 0, "ram"},
	{"ram-512", K_RAM, "ram", ",block=512", NULL, 512, "ram"},
	{"fault", K_RAM, "fault:ram", "", NULL, 0, "fault"},
	{"uring-loop", K_LOOP, "", "", NULL, 0, "uring"},
	{"aio-loop", K_LOOP, "aio", "", NULL, 0, "aio"},
};

struct ctx {
	const struct cfg *cfg;
	char *dir;
	char img[PATH_MAX];
	char target[PATH_MAX]; /* what the spec names: image path or /dev/loopN */
	char spec[PATH_MAX + 64];
	char base[PATH_MAX + 64]; /* the spec without size/create, for reopening */
	bool persistent;	  /* contents survive close */
	int loopfd;
	uint32_t loop_lbs;
	struct zvfs_bdev *bdev;
	const struct zvfs_bdev_geometry *geo;
	struct zvfs_bdev_channel *ch;
	uint32_t bs;
	uint32_t unit; /* max(block size, buffer alignment): a safe buffer slice */
	uint64_t seed;
};

static uint64_t sub_seed(const struct ctx *c, uint64_t tag)
{
	return t_mix(c->seed ^ (tag * 0x100000001b3ull));
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* A plain aligned buffer (not from zvfs_bdev_buf_alloc: no registered arena). */
static void *plain_alloc(const struct ctx *c, size_t len)
{
	size_t a = c->geo->buf_align;
	void *p = aligned_alloc(a, (len + a - 1) / a * a);

	if (p)
		memset(p, 0, len);
	return p;
}

/* Submit one read or write, wait for it, check its callback; returns its status. */
static int rw_async(struct ctx *c, bool write, void *buf, uint64_t len, uint64_t off)
{
	struct t_req r;
	unsigned n = 0;
	int rc;

	t_req_init(&r, &n);
	if (write)
		rc = T_SUBMIT(zvfs_bdev_write(c->ch, buf, len, off, t_req_cb, &r));
	else
		rc = T_SUBMIT(zvfs_bdev_read(c->ch, buf, len, off, t_req_cb, &r));
	if (rc)
		return rc;
	rc = t_wait_for(c->ch, &n, 1);
	if (rc)
		return rc;
	if (!t_reqs_ok(&r, 1, r.status, write ? "write" : "read"))
		return -EPROTO;
	return r.status;
}

/* ---- main device -------------------------------------------------------- */

static void check_open(struct ctx *c)
{
	char err[256] = "";
	const char *name;
	int rc;

	t_begin("open");
	rc = zvfs_bdev_open(c->spec, &c->bdev, err, sizeof(err));
	EXPECT(rc == 0, "zvfs_bdev_open(\"%s\") = %s: %s", c->spec, t_err(rc), err);
	c->geo = zvfs_bdev_get_geometry(c->bdev);
	EXPECT(c->geo, "no geometry");
	c->bs = c->geo->block_size;
	c->unit = c->bs > c->geo->buf_align ? c->bs : c->geo->buf_align;
	EXPECT(strcmp(zvfs_bdev_get_driver(c->bdev), c->cfg->want_driver) == 0,
	       "driver \"%s\", want \"%s\"", zvfs_bdev_get_driver(c->bdev), c->cfg->want_driver);
	name = zvfs_bdev_get_name(c->bdev);
	if (c->cfg->kind == K_RAM) {
		const char *want = strncmp(c->cfg->driver, "fault", 5) == 0 ? "fault(ram)" : "ram";

		EXPECT(strcmp(name, want) == 0, "name \"%s\", want \"%s\"", name, want);
	} else {
		EXPECT(strcmp(name, c->target) == 0, "name \"%s\", want \"%s\"", name, c->target);
	}
	t_note("%s: %s, size %" PRIu64 ", block %u/%u, buf_align %u, qd %u, discard_zeroes %d, "
	       "write_zeroes_native %d, volatile_cache %d",
	       c->spec, name, c->geo->size, c->geo->block_size, c->geo->phys_block_size,
	       c->geo->buf_align, c->geo->queue_depth, c->geo->discard_zeroes,
	       c->geo->write_zeroes_native, c->geo->volatile_cache);
out:
	t_end();
}

static void check_geometry(struct ctx *c)
{
	const struct zvfs_bdev_geometry *g = c->geo;

	t_begin("geometry");
	EXPECT(g->size == DEV_SIZE, "size %" PRIu64 ", want %llu", g->size, DEV_SIZE);
	EXPECT(is_pow2(g->block_size) && g->block_size >= 512 && g->block_size <= 65536,
	       "block_size %u is not a power of two in [512, 65536]", g->block_size);
	EXPECT(g->size % g->block_size == 0, "size is not a multiple of block_size");
	EXPECT(is_pow2(g->phys_block_size) && g->phys_block_size >= g->block_size,
	       "phys_block_size %u (block_size %u)", g->phys_block_size, g->block_size);
	EXPECT(is_pow2(g->buf_align), "buf_align %u is not a power of two", g->buf_align);
	EXPECT(g->queue_depth == 128, "queue_depth %u, want the default 128", g->queue_depth);
	EXPECT(!g->read_only, "read_only set without \"ro\"");
	if (c->cfg->block)
		EXPECT(g->block_size == c->cfg->block, "block_size %u, spec asks for %u",
		       g->block_size, c->cfg->block);
	if (c->cfg->kind == K_LOOP)
		EXPECT(g->block_size % c->loop_lbs == 0,
		       "block_size %u is not a multiple of the device's logical block %u",
		       g->block_size, c->loop_lbs);
	/* A file sits in the page cache or a disk cache; the fault device is a cache. */
	if (c->cfg->kind == K_FILE || strcmp(c->cfg->want_driver, "fault") == 0)
		EXPECT(g->volatile_cache, "volatile_cache is false");
out:
	t_end();
}

static void check_buffers(struct ctx *c)
{
	size_t sizes[] = {100, 4096, 65536 + 512, 3 * MiB};
	void *p = NULL, *q = NULL;

	t_begin("buf_alloc: aligned and zero-filled, also after reuse");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p = zvfs_bdev_buf_alloc(c->bdev, sizes[i]);
		EXPECT(p, "buf_alloc(%zu) = NULL", sizes[i]);
		EXPECT(((uintptr_t)p & (c->geo->buf_align - 1)) == 0,
		       "buf_alloc(%zu) = %p, not aligned to %u", sizes[i], p, c->geo->buf_align);
		EXPECT(t_check_zero(p, sizes[i]) < 0, "buf_alloc(%zu) not zero-filled", sizes[i]);
		memset(p, 0xff, sizes[i]);
		zvfs_bdev_buf_free(c->bdev, p);
		p = NULL;
		/* Memory handed back (dirty) and out again must be zeroed again. */
		q = zvfs_bdev_buf_alloc(c->bdev, sizes[i]);
		EXPECT(q, "second buf_alloc(%zu) = NULL", sizes[i]);
		EXPECT(t_check_zero(q, sizes[i]) < 0,
		       "buf_alloc(%zu) after a free returned dirty memory", sizes[i]);
		zvfs_bdev_buf_free(c->bdev, q);
		q = NULL;
	}
out:
	if (p)
		zvfs_bdev_buf_free(c->bdev, p);
	if (q)
		zvfs_bdev_buf_free(c->bdev, q);
	t_end();
}

static void check_channel(struct ctx *c)
{
	struct zvfs_bdev_channel *ch2 = NULL;
	int rc;

	t_begin("channel: one per thread, created on first use");
	EXPECT(zvfs_bdev_channel_count(c->bdev) == 0, "channel_count %u before any I/O",
	       zvfs_bdev_channel_count(c->bdev));
	rc = zvfs_bdev_get_channel(c->bdev, &c->ch);
	EXPECT(rc == 0 && c->ch, "get_channel = %s", t_err(rc));
	rc = zvfs_bdev_get_channel(c->bdev, &ch2);
	EXPECT(rc == 0 && ch2 == c->ch, "second get_channel gave another channel");
	EXPECT(zvfs_bdev_channel_count(c->bdev) == 1, "channel_count %u, want 1",
	       zvfs_bdev_channel_count(c->bdev));
	EXPECT(zvfs_bdev_outstanding(c->ch) == 0, "outstanding %u on a new channel",
	       zvfs_bdev_outstanding(c->ch));
	rc = zvfs_bdev_poll(c->ch);
	EXPECT(rc == 0, "poll on an idle channel = %d", rc);
	rc = zvfs_bdev_wait(c->ch);
	EXPECT(rc == 0, "wait on an idle channel = %d (must return 0 at once)", rc);
out:
	t_end();
}

/*
 * "spin=": with spinalways, the synchronous reads above (each a lone request) were polled for;
 * with spin=0 none was.  Other configurations poll only when a CPU is idle: not checked.
 */
static void check_polled(struct ctx *c)
{
	uint64_t n = zvfs_bdev_polled(c->bdev);

	if (strstr(c->cfg->opts, "spinalways"))
		t_assert("spin=,spinalways: lone reads were polled for", n > 0, "polled %" PRIu64,
			 n);
	else if (strstr(c->cfg->opts, "spin=0"))
		t_assert("spin=0: nothing was polled for", n == 0, "polled %" PRIu64, n);
}

static void check_roundtrip(struct ctx *c)
{
	const uint64_t len = 4 * MiB, bs = c->bs, size = c->geo->size;
	const uint64_t s1 = sub_seed(c, 1), s2 = sub_seed(c, 2), s3 = sub_seed(c, 3);
	/* Small writes over the big one: first block, odd places, across a MiB. */
	const uint64_t small[][2] = {
		{0, bs},
		{7 * bs, 3 * bs},
		{MiB - bs, 2 * bs},
		{3 * MiB, 5 * bs},
	};
	uint8_t *a = NULL, *p = NULL;
	uint64_t bad = 0;
	ssize_t at;
	int rc;

	t_begin("aligned read/write round trip");
	a = zvfs_bdev_buf_alloc(c->bdev, len);
	p = plain_alloc(c, len);
	EXPECT(a && p, "out of memory");

	/* Synchronous, registered buffer; read back into a plain one. */
	t_fill(a, len, s1, R_RT);
	rc = zvfs_bdev_write_sync(c->bdev, a, len, R_RT);
	EXPECT(rc == 0, "write_sync 4 MiB = %s", t_err(rc));
	rc = zvfs_bdev_read_sync(c->bdev, p, len, R_RT);
	EXPECT(rc == 0, "read_sync 4 MiB = %s", t_err(rc));
	at = t_check(p, len, s1, R_RT);
	EXPECT(at < 0, "4 MiB read back differs at byte %zd", at);

	/* Asynchronous small writes from a plain buffer, read into the registered one. */
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		uint64_t off = R_RT + small[i][0], n = small[i][1];

		t_fill(p, n, s2, off);
		rc = rw_async(c, true, p, n, off);
		EXPECT(rc == 0, "write %" PRIu64 "@%" PRIu64 " = %s", n, off, t_err(rc));
		memset(a, 0x5a, n);
		rc = rw_async(c, false, a, n, off);
		EXPECT(rc == 0, "read %" PRIu64 "@%" PRIu64 " = %s", n, off, t_err(rc));
		at = t_check(a, n, s2, off);
		EXPECT(at < 0, "read %" PRIu64 "@%" PRIu64 " differs at byte %zd", n, off, at);
	}
	/* The whole region: small writes where they went, the big write elsewhere. */
	rc = zvfs_bdev_read_sync(c->bdev, a, len, R_RT);
	EXPECT(rc == 0, "read_sync = %s", t_err(rc));
	for (uint64_t off = 0; off < len; off += bs) {
		bool in_small = false;

		for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
			if (off >= small[i][0] && off < small[i][0] + small[i][1])
				in_small = true;
		at = t_check(a + off, bs, in_small ? s2 : s1, R_RT + off);
		EXPECT(at < 0, "block at %" PRIu64 " holds the wrong data (byte %zd)", off, at);
	}

	/* The last blocks of the device. */
	rc = t_dev_write_pattern(c->bdev, size - 2 * bs, 2 * bs, s3);
	EXPECT(rc == 0, "write of the last two blocks = %s", t_err(rc));
	rc = t_dev_check_pattern(c->bdev, size - bs, bs, s3, &bad);
	EXPECT(rc == 0, "last block read back: %s (at %" PRIu64 ")", t_err(rc), bad);
	rc = t_dev_check_pattern(c->bdev, size - 2 * bs, 2 * bs, s3, &bad);
	EXPECT(rc == 0, "last two blocks read back: %s (at %" PRIu64 ")", t_err(rc), bad);

	/* Written now, checked after close and reopen (persistent targets). */
	rc = t_dev_write_pattern(c->bdev, R_KEEP, MiB, sub_seed(c, 99));
	EXPECT(rc == 0, "write of the keep region = %s", t_err(rc));
out:
	zvfs_bdev_buf_free(c->bdev, a);
	free(p);
	t_end();
}

/*
 * Build n iovecs of varied lengths over buf whose memory order is the reverse
 * of their device order and that leave gaps between them, so an
 * implementation that treats the vector as one contiguous buffer fails.
 * Returns the total length.
 */
static uint64_t make_iov(struct iovec *iov, int n, uint8_t *buf, uint32_t unit, int salt)
{
	uint64_t total = 0, mem = 0;

	for (int i = n - 1; i >= 0; i--) {
		size_t len = unit * (size_t)(1 + (i + salt) % 3);

		iov[i].iov_base = buf + mem;
		iov[i].iov_len = len;
		mem += len + unit; /* a gap */
		total += len;
	}
	return total;
}

/* Fill each iovec with the pattern for its device position. */
static void fill_iov(const struct iovec *iov, int n, uint64_t seed, uint64_t off)
{
	for (int i = 0; i < n; i++) {
		t_fill(iov[i].iov_base, iov[i].iov_len, seed, off);
		off += iov[i].iov_len;
	}
}

static ssize_t check_iov(const struct iovec *iov, int n, uint64_t seed, uint64_t off)
{
	uint64_t pos = 0;

	for (int i = 0; i < n; i++) {
		ssize_t at = t_check(iov[i].iov_base, iov[i].iov_len, seed, off + pos);

		if (at >= 0)
			return (ssize_t)pos + at;
		pos += iov[i].iov_len;
	}
	return -1;
}

static void check_vectored(struct ctx *c)
{
	static const int counts[] = {1, 2, 4, 5, 8, 17, 64};
	const size_t buflen = 2 * 64 * 4 * (size_t)c->unit;
	struct iovec *iov = NULL, *riov = NULL;
	uint8_t *buf = NULL, *rbuf = NULL, *trash = NULL;
	uint64_t off = R_VEC;
	int rc;

	t_begin("vectored readv/writev (1 to IOV_MAX iovecs)");
	iov = calloc(IOV_MAX, sizeof(*iov));
	riov = calloc(IOV_MAX, sizeof(*riov));
	buf = zvfs_bdev_buf_alloc(c->bdev, buflen);
	rbuf = plain_alloc(c, buflen);
	trash = plain_alloc(c, buflen);
	EXPECT(iov && riov && buf && rbuf && trash, "out of memory");

	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		int n = counts[k], rn = n + 3;
		uint64_t seed = sub_seed(c, 100 + k), total, rtotal;
		struct t_req r;
		unsigned done = 0;
		ssize_t at;

		total = make_iov(iov, n, buf, c->unit, 0);
		fill_iov(iov, n, seed, off);
		t_req_init(&r, &done);
		rc = T_SUBMIT(zvfs_bdev_writev(c->ch, iov, n, off, t_req_cb, &r));
		EXPECT(rc == 0, "writev of %d iovecs = %s", n, t_err(rc));
		/* The array is copied at submission: scribbling on ours must not matter. */
		for (int i = 0; i < n; i++)
			iov[i].iov_base = trash;
		rc = t_wait_for(c->ch, &done, 1);
		EXPECT(rc == 0, "waiting for writev: %s", t_err(rc));
		if (!t_reqs_ok(&r, 1, 0, "writev"))
			goto out;

		/* Plain read of the whole range. */
		memset(rbuf, 0, total);
		rc = zvfs_bdev_read_sync(c->bdev, rbuf, total, off);
		EXPECT(rc == 0, "read after writev = %s", t_err(rc));
		at = t_check(rbuf, total, seed, off);
		EXPECT(at < 0, "writev of %d iovecs: data differs at byte %zd", n, at);

		/* Vectored read with a different split (and its own length). */
		rtotal = make_iov(riov, rn, rbuf, c->unit, 1);
		if (rtotal > total) {
			/* Trim the tail so the read covers what the write wrote. */
			while (rtotal - riov[rn - 1].iov_len >= total && rn > 1)
				rtotal -= riov[--rn].iov_len;
			if (rtotal > total) {
				riov[rn - 1].iov_len -= rtotal - total;
				rtotal = total;
			}
		}
		for (int i = 0; i < rn; i++)
			memset(riov[i].iov_base, 0, riov[i].iov_len);
		t_req_init(&r, &done);
		done = 0;
		rc = T_SUBMIT(zvfs_bdev_readv(c->ch, riov, rn, off, t_req_cb, &r));
		EXPECT(rc == 0, "readv of %d iovecs = %s", rn, t_err(rc));
		rc = t_wait_for(c->ch, &done, 1);
		EXPECT(rc == 0, "waiting for readv: %s", t_err(rc));
		if (!t_reqs_ok(&r, 1, 0, "readv"))
			goto out;
		at = check_iov(riov, rn, seed, off);
		EXPECT(at < 0, "readv of %d iovecs: data differs at byte %zd", rn, at);
		off += total;
	}

	/* IOV_MAX single-block iovecs, synchronous, each block its own buffer slot. */
	{
		const int n = IOV_MAX;
		uint64_t seed = sub_seed(c, 199);
		uint8_t *big = zvfs_bdev_buf_alloc(c->bdev, (size_t)n * c->unit);
		ssize_t at;

		EXPECT(big, "out of memory");
		off = R_VEC;
		EXPECT((uint64_t)n * c->bs <= 4 * MiB, "IOV_MAX blocks do not fit the region");
		for (int i = 0; i < n; i++) {
			/* Reverse order in memory again. */
			iov[i].iov_base = big + (size_t)(n - 1 - i) * c->unit;
			iov[i].iov_len = c->bs;
		}
		fill_iov(iov, n, seed, off);
		rc = zvfs_bdev_writev_sync(c->bdev, iov, n, off);
		if (rc) {
			zvfs_bdev_buf_free(c->bdev, big);
			EXPECT(0, "writev_sync of IOV_MAX iovecs = %s", t_err(rc));
		}
		for (int i = 0; i < n; i++)
			memset(iov[i].iov_base, 0, iov[i].iov_len);
		rc = zvfs_bdev_readv_sync(c->bdev, iov, n, off);
		at = rc ? -1 : check_iov(iov, n, seed, off);
		zvfs_bdev_buf_free(c->bdev, big);
		EXPECT(rc == 0, "readv_sync of IOV_MAX iovecs = %s", t_err(rc));
		EXPECT(at < 0, "IOV_MAX iovecs: data differs at byte %zd", at);
	}
out:
	free(iov);
	free(riov);
	zvfs_bdev_buf_free(c->bdev, buf);
	free(rbuf);
	free(trash);
	t_end();
}

/* Every attempt must fail at submission with want, and no callback may ever run. */
static void check_misaligned(struct ctx *c)
{
	const uint64_t bs = c->bs, off = R_MISC;
	const uint64_t seed = sub_seed(c, 300);
	uint8_t *buf = NULL, *junk = NULL;
	struct iovec *many = NULL;
	struct iovec iov[3];
	struct t_req r;
	unsigned calls = 0, nattempt = 0;
	uint64_t bad = 0;
	int rc;

	t_begin("misaligned offset/length/buffer: -EINVAL, no callback");
	buf = zvfs_bdev_buf_alloc(c->bdev, 4 * c->unit + c->geo->buf_align);
	junk = zvfs_bdev_buf_alloc(c->bdev, 4 * c->unit + c->geo->buf_align);
	many = calloc(IOV_MAX + 1, sizeof(*many));
	EXPECT(buf && junk && many, "out of memory");
	rc = t_dev_write_pattern(c->bdev, off, 4 * bs, seed);
	EXPECT(rc == 0, "setup write = %s", t_err(rc));
	memset(junk, 0xee, 4 * c->unit + c->geo->buf_align);
	t_req_init(&r, &calls);

#define TRY(what, expr)                                                                            \
	do {                                                                                       \
		nattempt++;                                                                        \
		rc = T_SUBMIT(expr);                                                               \
		EXPECT(rc == -EINVAL, "%s = %s, want -EINVAL", what, t_err(rc));                   \
		EXPECT(calls == 0, "%s: callback ran", what);                                      \
	} while (0)

	for (int w = 0; w < 2; w++) {
		const char *op = w ? "write" : "read";
		char what[128];

#define RW(b, l, o)                                                                                \
	(w ? zvfs_bdev_write(c->ch, b, l, o, t_req_cb, &r)                                         \
	   : zvfs_bdev_read(c->ch, b, l, o, t_req_cb, &r))
		snprintf(what, sizeof(what), "%s at offset +bs/2", op);
		TRY(what, RW(junk, bs, off + bs / 2));
		if (bs > 512) {
			snprintf(what, sizeof(what),
				 "%s at a 512-aligned, not block-aligned offset", op);
			TRY(what, RW(junk, bs, off + 512));
			snprintf(what, sizeof(what), "%s of bs+512 bytes", op);
			TRY(what, RW(junk, bs + 512, off));
		}
		snprintf(what, sizeof(what), "%s of bs/2 bytes", op);
		TRY(what, RW(junk, bs / 2, off));
		snprintf(what, sizeof(what), "%s of bs+bs/2 bytes", op);
		TRY(what, RW(junk, bs + bs / 2, off));
		snprintf(what, sizeof(what), "%s from buffer+8", op);
		TRY(what, RW(junk + 8, bs, off));
		snprintf(what, sizeof(what), "%s from buffer+buf_align/2", op);
		TRY(what, RW(junk + c->geo->buf_align / 2, bs, off));
#undef RW

		/* Vectors: one bad element among good ones. */
		iov[0] = (struct iovec){junk, bs};
		iov[1] = (struct iovec){junk + c->unit + 8, bs};
		iov[2] = (struct iovec){junk + 2 * c->unit, bs};
		snprintf(what, sizeof(what), "%sv with a misaligned second base", op);
		TRY(what, w ? zvfs_bdev_writev(c->ch, iov, 3, off, t_req_cb, &r)
			    : zvfs_bdev_readv(c->ch, iov, 3, off, t_req_cb, &r));
		iov[1] = (struct iovec){junk + c->unit, bs / 2};
		snprintf(what, sizeof(what), "%sv with a half-block second length", op);
		TRY(what, w ? zvfs_bdev_writev(c->ch, iov, 3, off, t_req_cb, &r)
			    : zvfs_bdev_readv(c->ch, iov, 3, off, t_req_cb, &r));
		iov[1] = (struct iovec){junk + c->unit, bs};
		snprintf(what, sizeof(what), "%sv with iovcnt 0", op);
		TRY(what, w ? zvfs_bdev_writev(c->ch, iov, 0, off, t_req_cb, &r)
			    : zvfs_bdev_readv(c->ch, iov, 0, off, t_req_cb, &r));
		snprintf(what, sizeof(what), "%sv with iovcnt -1", op);
		TRY(what, w ? zvfs_bdev_writev(c->ch, iov, -1, off, t_req_cb, &r)
			    : zvfs_bdev_readv(c->ch, iov, -1, off, t_req_cb, &r));
		for (int i = 0; i <= IOV_MAX; i++)
			many[i] = (struct iovec){junk, bs};
		snprintf(what, sizeof(what), "%sv with iovcnt IOV_MAX+1", op);
		TRY(what, w ? zvfs_bdev_writev(c->ch, many, IOV_MAX + 1, off, t_req_cb, &r)
			    : zvfs_bdev_readv(c->ch, many, IOV_MAX + 1, off, t_req_cb, &r));
	}
	TRY("write_zeroes at offset +bs/2",
	    zvfs_bdev_write_zeroes(c->ch, off + bs / 2, bs, t_req_cb, &r));
	TRY("write_zeroes of bs/2 bytes", zvfs_bdev_write_zeroes(c->ch, off, bs / 2, t_req_cb, &r));
	TRY("discard at offset +bs/2", zvfs_bdev_discard(c->ch, off + bs / 2, bs, t_req_cb, &r));
	TRY("discard of bs+bs/2 bytes", zvfs_bdev_discard(c->ch, off, bs + bs / 2, t_req_cb, &r));
	if (bs > 512) {
		TRY("write_zeroes at a 512-aligned offset",
		    zvfs_bdev_write_zeroes(c->ch, off + 512, bs, t_req_cb, &r));
		TRY("discard of bs+512 bytes",
		    zvfs_bdev_discard(c->ch, off, bs + 512, t_req_cb, &r));
	}
	TRY("read_sync at offset +bs/2", zvfs_bdev_read_sync(c->bdev, junk, bs, off + bs / 2));
	TRY("write_sync from buffer+8", zvfs_bdev_write_sync(c->bdev, junk + 8, bs, off));
	TRY("write_zeroes_sync of bs/2 bytes", zvfs_bdev_write_zeroes_sync(c->bdev, off, bs / 2));
#undef TRY

	EXPECT(zvfs_bdev_outstanding(c->ch) == 0, "outstanding %u after refused requests",
	       zvfs_bdev_outstanding(c->ch));
	rc = t_drain(c->ch);
	EXPECT(rc == 0, "drain: %s", t_err(rc));
	EXPECT(calls == 0, "a refused request called back (%u calls)", calls);
	/* Nothing refused may have written anything. */
	rc = t_dev_check_pattern(c->bdev, off, 4 * bs, seed, &bad);
	EXPECT(rc == 0, "a refused write changed the device: %s at %" PRIu64, t_err(rc), bad);
	t_note("%u misaligned requests refused", nattempt);
out:
	zvfs_bdev_buf_free(c->bdev, buf);
	zvfs_bdev_buf_free(c->bdev, junk);
	free(many);
	t_end();
}

static void check_range(struct ctx *c)
{
	const uint64_t bs = c->bs, size = c->geo->size;
	const uint64_t huge = UINT64_MAX & ~(uint64_t)(bs - 1);
	uint8_t *buf = NULL;
	struct iovec iov[2];
	struct t_req r;
	unsigned calls = 0;
	int rc;

	t_begin("out of range: -ERANGE, no callback");
	buf = zvfs_bdev_buf_alloc(c->bdev, 2 * bs);
	EXPECT(buf, "out of memory");
	t_req_init(&r, &calls);

#define TRY(what, expr)                                                                            \
	do {                                                                                       \
		rc = T_SUBMIT(expr);                                                               \
		EXPECT(rc == -ERANGE, "%s = %s, want -ERANGE", what, t_err(rc));                   \
		EXPECT(calls == 0, "%s: callback ran", what);                                      \
	} while (0)

	TRY("read at the end", zvfs_bdev_read(c->ch, buf, bs, size, t_req_cb, &r));
	TRY("read across the end", zvfs_bdev_read(c->ch, buf, 2 * bs, size - bs, t_req_cb, &r));
	TRY("read at offset 2^64-bs", zvfs_bdev_read(c->ch, buf, bs, huge, t_req_cb, &r));
	TRY("write at the end", zvfs_bdev_write(c->ch, buf, bs, size, t_req_cb, &r));
	TRY("write across the end", zvfs_bdev_write(c->ch, buf, 2 * bs, size - bs, t_req_cb, &r));
	TRY("write at offset 2^64-bs", zvfs_bdev_write(c->ch, buf, bs, huge, t_req_cb, &r));
	iov[0] = (struct iovec){buf, bs};
	iov[1] = (struct iovec){buf + bs, bs};
	TRY("writev across the end", zvfs_bdev_writev(c->ch, iov, 2, size - bs, t_req_cb, &r));
	TRY("readv across the end", zvfs_bdev_readv(c->ch, iov, 2, size - bs, t_req_cb, &r));
	TRY("write_zeroes across the end",
	    zvfs_bdev_write_zeroes(c->ch, size - bs, 2 * bs, t_req_cb, &r));
	TRY("write_zeroes with a wrapping length",
	    zvfs_bdev_write_zeroes(c->ch, bs, huge, t_req_cb, &r));
	TRY("discard across the end", zvfs_bdev_discard(c->ch, size - bs, 2 * bs, t_req_cb, &r));
	TRY("discard with a wrapping length", zvfs_bdev_discard(c->ch, bs, huge, t_req_cb, &r));
	TRY("read_sync at the end", zvfs_bdev_read_sync(c->bdev, buf, bs, size));
	TRY("write_sync across the end", zvfs_bdev_write_sync(c->bdev, buf, 2 * bs, size - bs));
	TRY("discard_sync at the end", zvfs_bdev_discard_sync(c->bdev, size, bs));
#undef TRY
	EXPECT(zvfs_bdev_outstanding(c->ch) == 0, "outstanding %u after refused requests",
	       zvfs_bdev_outstanding(c->ch));
	rc = t_drain(c->ch);
	EXPECT(rc == 0 && calls == 0, "a refused request called back");
	/* The edge itself is in range. */
	rc = zvfs_bdev_read_sync(c->bdev, buf, bs, size - bs);
	EXPECT(rc == 0, "read of the last block = %s", t_err(rc));
out:
	zvfs_bdev_buf_free(c->bdev, buf);
	t_end();
}

static void check_flush(struct ctx *c)
{
	enum { N = 8 };
	const uint64_t seed = sub_seed(c, 400);
	struct t_req w[N], f;
	uint8_t *buf = NULL;
	unsigned done = 0;
	uint64_t bad = 0;
	int rc;

	t_begin("flush");
	buf = zvfs_bdev_buf_alloc(c->bdev, N * (size_t)c->unit);
	EXPECT(buf, "out of memory");
	/* A lone flush, asynchronous and synchronous. */
	t_req_init(&f, &done);
	rc = T_SUBMIT(zvfs_bdev_flush(c->ch, t_req_cb, &f));
	EXPECT(rc == 0, "flush = %s", t_err(rc));
	rc = t_wait_for(c->ch, &done, 1);
	EXPECT(rc == 0, "waiting for flush: %s", t_err(rc));
	if (!t_reqs_ok(&f, 1, 0, "flush"))
		goto out;
	rc = zvfs_bdev_flush_sync(c->bdev);
	EXPECT(rc == 0, "flush_sync = %s", t_err(rc));

	/* Writes, then a flush after they completed, in one batch of callbacks. */
	done = 0;
	for (int i = 0; i < N; i++) {
		uint64_t off = R_FLUSH + (uint64_t)i * c->bs;

		t_req_init(&w[i], &done);
		t_fill(buf + (size_t)i * c->unit, c->bs, seed, off);
		rc = T_SUBMIT(zvfs_bdev_write(c->ch, buf + (size_t)i * c->unit, c->bs, off,
					      t_req_cb, &w[i]));
		EXPECT(rc == 0, "write %d = %s", i, t_err(rc));
	}
	rc = t_wait_for(c->ch, &done, N);
	EXPECT(rc == 0, "waiting for writes: %s", t_err(rc));
	if (!t_reqs_ok(w, N, 0, "write"))
		goto out;
	done = 0;
	t_req_init(&f, &done);
	rc = T_SUBMIT(zvfs_bdev_flush(c->ch, t_req_cb, &f));
	EXPECT(rc == 0, "flush = %s", t_err(rc));
	rc = t_wait_for(c->ch, &done, 1);
	EXPECT(rc == 0, "waiting for flush: %s", t_err(rc));
	if (!t_reqs_ok(&f, 1, 0, "flush after writes"))
		goto out;
	rc = t_dev_check_pattern(c->bdev, R_FLUSH, N * (uint64_t)c->bs, seed, &bad);
	EXPECT(rc == 0, "data after flush: %s at %" PRIu64, t_err(rc), bad);
out:
	zvfs_bdev_buf_free(c->bdev, buf);
	t_end();
}

/* Check [off, off+len) block by block: zero where zeroed(), else seed's pattern. */
static int check_zeroed_map(struct ctx *c, uint64_t off, uint64_t len, uint64_t seed,
			    const uint64_t (*zr)[2], size_t nzr, uint64_t *bad, bool *want_zero)
{
	uint8_t *buf = zvfs_bdev_buf_alloc(c->bdev, len);
	int rc;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0xa5, len);
	rc = zvfs_bdev_read_sync(c->bdev, buf, len, off);
	for (uint64_t o = 0; rc == 0 && o < len; o += c->bs) {
		bool z = false;
		ssize_t at;

		for (size_t i = 0; i < nzr; i++)
			if (off + o >= zr[i][0] && off + o < zr[i][0] + zr[i][1])
				z = true;
		at = z ? t_check_zero(buf + o, c->bs) : t_check(buf + o, c->bs, seed, off + o);
		if (at >= 0) {
			*bad = off + o + (uint64_t)at;
			*want_zero = z;
			rc = -EBADMSG;
		}
	}
	zvfs_bdev_buf_free(c->bdev, buf);
	return rc;
}

static void check_write_zeroes(struct ctx *c)
{
	const uint64_t bs = c->bs, len = 6 * MiB, size = c->geo->size;
	const uint64_t seed = sub_seed(c, 500);
	/* One block; then more than 1 MiB, not a multiple of 1 MiB, not MiB-aligned. */
	const uint64_t zr[2][2] = {
		{R_ZERO + bs, bs},
		{R_ZERO + MiB + 3 * bs, 3 * MiB + 5 * bs},
	};
	struct t_req r;
	unsigned done = 0;
	uint64_t bad = 0;
	bool wz = false;
	int rc;

	t_begin("write_zeroes reads back zero (1 block, > 1 MiB, last block)");
	rc = t_dev_write_pattern(c->bdev, R_ZERO, len, seed);
	EXPECT(rc == 0, "setup write = %s", t_err(rc));
	t_req_init(&r, &done);
	rc = T_SUBMIT(zvfs_bdev_write_zeroes(c->ch, zr[0][0], zr[0][1], t_req_cb, &r));
	EXPECT(rc == 0, "write_zeroes of one block = %s", t_err(rc));
	rc = t_wait_for(c->ch, &done, 1);
	EXPECT(rc == 0, "waiting for write_zeroes: %s", t_err(rc));
	if (!t_reqs_ok(&r, 1, 0, "write_zeroes"))
		goto out;
	/* The large one asynchronously too: one request, one callback, however it is done. */
	done = 0;
	t_req_init(&r, &done);
	rc = T_SUBMIT(zvfs_bdev_write_zeroes(c->ch, zr[1][0], zr[1][1], t_req_cb, &r));
	EXPECT(rc == 0, "write_zeroes of %" PRIu64 " bytes = %s", zr[1][1], t_err(rc));
	rc = t_wait_for(c->ch, &done, 1);
	EXPECT(rc == 0, "waiting for write_zeroes: %s", t_err(rc));
	if (!t_reqs_ok(&r, 1, 0, "large write_zeroes"))
		goto out;
	EXPECT(zvfs_bdev_outstanding(c->ch) == 0, "outstanding %u after write_zeroes completed",
	       zvfs_bdev_outstanding(c->ch));
	rc = check_zeroed_map(c, R_ZERO, len, seed, zr, 2, &bad, &wz);
	EXPECT(rc == 0, "after write_zeroes: %s at %" PRIu64 " (want %s)", t_err(rc), bad,
	       wz ? "zero" : "old data");

	/* Again synchronously over data written since (the emulated path is now warm). */
	rc = t_dev_write_pattern(c->bdev, zr[1][0], zr[1][1], seed);
	EXPECT(rc == 0, "rewrite = %s", t_err(rc));
	rc = zvfs_bdev_write_zeroes_sync(c->bdev, zr[1][0], zr[1][1]);
	EXPECT(rc == 0, "write_zeroes_sync = %s", t_err(rc));
	rc = check_zeroed_map(c, R_ZERO, len, seed, zr, 2, &bad, &wz);
	EXPECT(rc == 0, "after write_zeroes_sync: %s at %" PRIu64 " (want %s)", t_err(rc), bad,
	       wz ? "zero" : "old data");

	/* The last block of the device. */
	rc = t_dev_write_pattern(c->bdev, size - bs, bs, seed);
	EXPECT(rc == 0, "write of the last block = %s", t_err(rc));
	rc = zvfs_bdev_write_zeroes_sync(c->bdev, size - bs, bs);
	EXPECT(rc == 0, "write_zeroes of the last block = %s", t_err(rc));
	rc = t_dev_check_zero(c->bdev, size - bs, bs, &bad);
	EXPECT(rc == 0, "last block after write_zeroes: %s at %" PRIu64, t_err(rc), bad);
	t_note("write_zeroes_native %d after use", c->geo->write_zeroes_native);
out:
	t_end();
}

static void check_discard(struct ctx *c)
{
	const uint64_t bs = c->bs, len = 4 * MiB;
	const uint64_t seed = sub_seed(c, 600);
	const uint64_t dr[2][2] = {
		{R_DISC + 3 * bs, 2 * MiB + bs},
		{R_DISC + 3 * MiB, bs},
	};
	struct t_req r;
	unsigned done = 0;
	uint64_t bad = 0;
	bool wz = false;
	int rc;

	t_begin("discard (reads back zero when discard_zeroes)");
	rc = t_dev_write_pattern(c->bdev, R_DISC, len, seed);
	EXPECT(rc == 0, "setup write = %s", t_err(rc));
	t_req_init(&r, &done);
	rc = T_SUBMIT(zvfs_bdev_discard(c->ch, dr[0][0], dr[0][1], t_req_cb, &r));
	EXPECT(rc == 0, "discard = %s", t_err(rc));
	rc = t_wait_for(c->ch, &done, 1);
	EXPECT(rc == 0, "waiting for discard: %s", t_err(rc));
	if (!t_reqs_ok(&r, 1, 0, "discard"))
		goto out;
	rc = zvfs_bdev_discard_sync(c->bdev, dr[1][0], dr[1][1]);
	EXPECT(rc == 0, "discard_sync = %s", t_err(rc));
	if (c->geo->discard_zeroes) {
		rc = check_zeroed_map(c, R_DISC, len, seed, dr, 2, &bad, &wz);
		EXPECT(rc == 0, "after discard: %s at %" PRIu64 " (want %s)", t_err(rc), bad,
		       wz ? "zero" : "old data");
	} else {
		/* Content of the range is undefined; outside it nothing may change. */
		rc = t_dev_check_pattern(c->bdev, R_DISC, dr[0][0] - R_DISC, seed, &bad);
		EXPECT(rc == 0, "discard changed data before its range (%s at %" PRIu64 ")",
		       t_err(rc), bad);
		rc = t_dev_check_pattern(c->bdev, dr[0][0] + dr[0][1],
					 dr[1][0] - (dr[0][0] + dr[0][1]), seed, &bad);
		EXPECT(rc == 0, "discard changed data after its range (%s at %" PRIu64 ")",
		       t_err(rc), bad);
		t_note("discard_zeroes is false: only the data around the range checked");
	}
out:
	t_end();
}

/*
 * An empty range is a multiple of the block size; it must not fail one way
 * on one backend and another way on the next.  Accepted: refused at
 * submission with -EINVAL, or done (status 0).  Not accepted: a callback with
 * an error.
 */
static void check_zero_length(struct ctx *c)
{
	struct t_req r;
	unsigned done = 0;
	int rc;

	t_begin("bug: zero-length write_zeroes/discard failed in the callback on some backends");
	for (int d = 0; d < 2; d++) {
		const char *what = d ? "discard" : "write_zeroes";

		done = 0;
		t_req_init(&r, &done);
		rc = d ? T_SUBMIT(zvfs_bdev_discard(c->ch, R_MISC, 0, t_req_cb, &r))
		       : T_SUBMIT(zvfs_bdev_write_zeroes(c->ch, R_MISC, 0, t_req_cb, &r));
		if (rc == -EINVAL) {
			rc = t_drain(c->ch);
			EXPECT(rc == 0 && done == 0, "%s refused, but called back", what);
			continue;
		}
		EXPECT(rc == 0, "%s of 0 bytes = %s at submission", what, t_err(rc));
		rc = t_wait_for(c->ch, &done, 1);
		EXPECT(rc == 0, "waiting for %s: %s", what, t_err(rc));
		if (!t_reqs_ok(&r, 1, 0, what))
			goto out;
	}
out:
	t_end();
}

static void check_batch(struct ctx *c)
{
	enum { N = 96 };
	const uint64_t seed = sub_seed(c, 700);
	struct t_req w[N], rd[N];
	uint8_t *wbuf = NULL, *rbuf = NULL;
	unsigned done = 0, completed = 0;
	int rc;

	t_begin("async batch of 96: each callback once, after submit, from wait/poll");
	EXPECT((uint64_t)N * 2 * c->unit <= 4 * MiB, "batch does not fit its region");
	wbuf = zvfs_bdev_buf_alloc(c->bdev, N * (size_t)c->unit);
	rbuf = plain_alloc(c, N * (size_t)c->unit);
	EXPECT(wbuf && rbuf, "out of memory");
	for (int i = 0; i < N; i++) {
		/* Every other unit: scattered, not one sequential stream. */
		uint64_t off = R_BATCH + (uint64_t)((i * 37) % N) * 2 * c->unit;
		uint8_t *b = wbuf + (size_t)i * c->unit;

		t_req_init(&w[i], &done);
		t_fill(b, c->unit, seed, off);
		rc = T_SUBMIT(zvfs_bdev_write(c->ch, b, c->unit, off, t_req_cb, &w[i]));
		EXPECT(rc == 0, "write %d = %s", i, t_err(rc));
		EXPECT(done == 0, "a callback ran before any poll (inside submit %d)", i);
	}
	EXPECT(zvfs_bdev_outstanding(c->ch) == N, "outstanding %u after %d submits, want %d",
	       zvfs_bdev_outstanding(c->ch), N, N);
	while (done < N) {
		rc = zvfs_bdev_wait(c->ch);
		EXPECT(rc > 0, "wait = %s with %u of %d done", t_err(rc), done, N);
		completed += (unsigned)rc;
	}
	EXPECT(completed == N, "wait reported %u completions for %d requests", completed, N);
	if (!t_reqs_ok(w, N, 0, "write"))
		goto out;
	EXPECT(zvfs_bdev_outstanding(c->ch) == 0, "outstanding %u after all completed",
	       zvfs_bdev_outstanding(c->ch));
	rc = zvfs_bdev_wait(c->ch);
	EXPECT(rc == 0, "wait with nothing in flight = %d", rc);

	/* Read them back in one batch, reaped with poll only. */
	done = 0;
	completed = 0;
	for (int i = 0; i < N; i++) {
		uint64_t off = R_BATCH + (uint64_t)((i * 37) % N) * 2 * c->unit;

		t_req_init(&rd[i], &done);
		rc = T_SUBMIT(zvfs_bdev_read(c->ch, rbuf + (size_t)i * c->unit, c->unit, off,
					     t_req_cb, &rd[i]));
		EXPECT(rc == 0, "read %d = %s", i, t_err(rc));
	}
	EXPECT(done == 0, "a read callback ran inside a submit call");
	for (unsigned spins = 0; done < N; spins++) {
		rc = zvfs_bdev_poll(c->ch);
		EXPECT(rc >= 0, "poll = %s", t_err(rc));
		completed += (unsigned)rc;
		/* Polling is not a sleep: fall back to wait if the device is slow. */
		if (rc == 0 && spins > 100000) {
			rc = zvfs_bdev_wait(c->ch);
			EXPECT(rc >= 0, "wait = %s", t_err(rc));
			completed += (unsigned)rc;
		}
	}
	EXPECT(completed == N, "poll reported %u completions for %d requests", completed, N);
	if (!t_reqs_ok(rd, N, 0, "read"))
		goto out;
	for (int i = 0; i < N; i++) {
		uint64_t off = R_BATCH + (uint64_t)((i * 37) % N) * 2 * c->unit;
		ssize_t at = t_check(rbuf + (size_t)i * c->unit, c->unit, seed, off);

		EXPECT(at < 0, "read %d (offset %" PRIu64 ") differs at byte %zd", i, off, at);
	}
out:
	zvfs_bdev_buf_free(c->bdev, wbuf);
	free(rbuf);
	t_end();
}

/* A chain of writes where each callback submits the next and polls re-entrantly. */
struct chain {
	struct ctx *c;
	uint8_t *buf;
	uint64_t seed;
	int next, n;
	unsigned calls[64];
	int status[64];
	bool in_submit, submit_failed;
	int submit_rc, poll_rc;
};

static void chain_cb(void *arg, int status);

static int chain_submit(struct chain *ch)
{
	int i = ch->next++;
	uint64_t off = R_CHAIN + (uint64_t)i * ch->c->unit;
	uint8_t *b = ch->buf + (size_t)i * ch->c->unit;

	t_fill(b, ch->c->unit, ch->seed, off);
	return T_SUBMIT(zvfs_bdev_write(ch->c->ch, b, ch->c->unit, off, chain_cb, ch));
}

/* One request of the chain is in flight at a time: its index is next - 1. */
static void chain_cb(void *arg, int status)
{
	struct chain *ch = arg;
	int i = ch->next - 1;
	int rc;

	if (t_in_submit)
		ch->in_submit = true;
	ch->calls[i]++;
	ch->status[i] = status;
	if (ch->next < ch->n) {
		rc = chain_submit(ch);
		if (rc) {
			ch->submit_failed = true;
			ch->submit_rc = rc;
			return;
		}
		/* Re-entrant poll from inside a callback is allowed. */
		rc = zvfs_bdev_poll(ch->c->ch);
		if (rc < 0)
			ch->poll_rc = rc;
	}
}

static void check_chain(struct ctx *c)
{
	struct chain ch = {.c = c, .n = 64, .seed = sub_seed(c, 800)};
	uint64_t bad = 0;
	int rc;

	t_begin("callbacks may submit and poll (chain of 64)");
	ch.buf = zvfs_bdev_buf_alloc(c->bdev, (size_t)ch.n * c->unit);
	EXPECT(ch.buf, "out of memory");
	rc = chain_submit(&ch);
	EXPECT(rc == 0, "first submit failed");
	rc = t_drain(c->ch);
	EXPECT(rc == 0, "drain: %s", t_err(rc));
	EXPECT(!ch.submit_failed, "a submit from a callback = %s", t_err(ch.submit_rc));
	EXPECT(ch.poll_rc == 0, "a poll from a callback = %s", t_err(ch.poll_rc));
	EXPECT(!ch.in_submit, "a callback ran inside a submit call");
	EXPECT(ch.next == ch.n, "chain stopped after %d of %d", ch.next, ch.n);
	for (int i = 0; i < ch.n; i++) {
		EXPECT(ch.calls[i] == 1, "request %d called back %u times", i, ch.calls[i]);
		EXPECT(ch.status[i] == 0, "request %d status %s", i, t_err(ch.status[i]));
	}
	rc = t_dev_check_pattern(c->bdev, R_CHAIN, (uint64_t)ch.n * c->unit, ch.seed, &bad);
	EXPECT(rc == 0, "chain data: %s at %" PRIu64, t_err(rc), bad);
out:
	zvfs_bdev_buf_free(c->bdev, ch.buf);
	t_end();
}

/* ---- threads ------------------------------------------------------------ */

struct thr {
	struct ctx *c;
	int idx;
	uint64_t off, seed;
	pthread_barrier_t *bar;
	struct zvfs_bdev_channel *ch;
	char err[256];
};

#define THR_FAIL(t, ...)                                                                           \
	do {                                                                                       \
		if (!(t)->err[0])                                                                  \
			snprintf((t)->err, sizeof((t)->err), __VA_ARGS__);                         \
	} while (0)

/* Chunk sizes in units, cycled through: odd sizes, several iovecs. */
static const int g_chunk_units[] = {1, 3, 8, 2, 16, 5, 4, 7};

static int thr_io(struct thr *t, bool write, uint8_t *buf)
{
	const uint32_t unit = t->c->unit;
	const uint64_t units = THR_REGION / unit;
	struct t_req *reqs = calloc(units, sizeof(*reqs));
	uint64_t pos = 0;
	unsigned done = 0, sent = 0;
	int k = 0, rc = 0;

	if (!reqs) {
		THR_FAIL(t, "out of memory");
		return -ENOMEM;
	}
	while (pos < units || done < sent) {
		/* Up to 16 in flight. */
		while (pos < units && sent - done < 16) {
			uint64_t n = (uint64_t)g_chunk_units[k++ % 8];
			uint8_t *b = buf + pos * unit;
			uint64_t off = t->off + pos * unit;
			struct t_req *r = &reqs[sent];

			if (n > units - pos)
				n = units - pos;
			t_req_init(r, &done);
			if (n >= 2 && (k & 1)) {
				struct iovec iov[8];
				int cnt = n > 6 ? 6 : (int)n;
				uint64_t left = n;

				for (int i = 0; i < cnt; i++) {
					uint64_t take = i == cnt - 1 ? left : 1;

					iov[i].iov_base = b;
					iov[i].iov_len = take * unit;
					b += take * unit;
					left -= take;
				}
				rc = write ? T_SUBMIT(zvfs_bdev_writev(t->ch, iov, cnt, off,
								       t_req_cb, r))
					   : T_SUBMIT(zvfs_bdev_readv(t->ch, iov, cnt, off,
								      t_req_cb, r));
			} else {
				rc = write ? T_SUBMIT(zvfs_bdev_write(t->ch, b, n * unit, off,
								      t_req_cb, r))
					   : T_SUBMIT(zvfs_bdev_read(t->ch, b, n * unit, off,
								     t_req_cb, r));
			}
			if (rc) {
				THR_FAIL(t, "submit at %" PRIu64 " = %s", off, t_err(rc));
				goto out;
			}
			sent++;
			pos += n;
		}
		rc = t_wait_for(t->ch, &done, done + 1);
		if (rc) {
			THR_FAIL(t, "wait: %s", t_err(rc));
			goto out;
		}
	}
	for (unsigned i = 0; i < sent; i++) {
		if (reqs[i].calls != 1 || reqs[i].status != 0 || reqs[i].in_submit ||
		    reqs[i].wrong_thread) {
			THR_FAIL(t, "%s %u: %u calls, status %s%s%s", write ? "write" : "read", i,
				 reqs[i].calls, t_err(reqs[i].status),
				 reqs[i].in_submit ? ", inside submit" : "",
				 reqs[i].wrong_thread ? ", on another thread" : "");
			rc = -EPROTO;
			goto out;
		}
	}
out:
	if (rc)
		t_drain(t->ch);
	free(reqs);
	return rc;
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	uint8_t *wbuf = NULL, *rbuf = NULL;
	ssize_t at;
	int rc;

	rc = zvfs_bdev_get_channel(t->c->bdev, &t->ch);
	if (rc)
		THR_FAIL(t, "get_channel = %s", t_err(rc));
	/* Everyone holds a channel now; the main thread counts them between the barriers. */
	pthread_barrier_wait(t->bar);
	pthread_barrier_wait(t->bar);
	if (rc)
		return NULL;

	wbuf = zvfs_bdev_buf_alloc(t->c->bdev, THR_REGION);
	rbuf = zvfs_bdev_buf_alloc(t->c->bdev, THR_REGION);
	if (!wbuf || !rbuf) {
		THR_FAIL(t, "out of memory");
		goto out;
	}
	t_fill(wbuf, THR_REGION, t->seed, t->off);
	if (thr_io(t, true, wbuf))
		goto out;
	memset(rbuf, 0, THR_REGION);
	if (thr_io(t, false, rbuf))
		goto out;
	at = t_check(rbuf, THR_REGION, t->seed, t->off);
	if (at >= 0) {
		THR_FAIL(t, "byte %" PRIu64 " differs", t->off + (uint64_t)at);
		goto out;
	}
	/* And once more through the synchronous API. */
	memset(rbuf, 0, THR_REGION);
	rc = zvfs_bdev_read_sync(t->c->bdev, rbuf, THR_REGION, t->off);
	if (rc) {
		THR_FAIL(t, "read_sync = %s", t_err(rc));
		goto out;
	}
	at = t_check(rbuf, THR_REGION, t->seed, t->off);
	if (at >= 0)
		THR_FAIL(t, "read_sync: byte %" PRIu64 " differs", t->off + (uint64_t)at);
out:
	zvfs_bdev_buf_free(t->c->bdev, wbuf);
	zvfs_bdev_buf_free(t->c->bdev, rbuf);
	return NULL;
}

static void check_threads(struct ctx *c)
{
	struct thr t[THREADS];
	pthread_t tid[THREADS];
	pthread_barrier_t bar;
	unsigned before, during, after;
	int rc;
	uint64_t bad = 0;

	t_begin("8 threads: own regions, every byte verified, cross-checked");
	before = zvfs_bdev_channel_count(c->bdev);
	pthread_barrier_init(&bar, NULL, THREADS + 1);
	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct thr){.c = c,
				    .idx = i,
				    .off = R_THR + (uint64_t)i * THR_REGION,
				    .seed = sub_seed(c, 900 + (uint64_t)i),
				    .bar = &bar};
		rc = pthread_create(&tid[i], NULL, thr_main, &t[i]);
		if (rc) {
			/* The others wait at the barrier for this one: nothing to recover. */
			t_failf("pthread_create: %s", strerror(rc));
			t_end();
			exit(1);
		}
	}
	pthread_barrier_wait(&bar);
	during = zvfs_bdev_channel_count(c->bdev);
	for (int i = 0; i < THREADS; i++)
		for (int j = 0; j < i; j++)
			if (t[i].ch && t[i].ch == t[j].ch)
				t_failf("threads %d and %d share a channel", i, j);
	for (int i = 0; i < THREADS; i++)
		if (t[i].ch && t[i].ch == c->ch)
			t_failf("thread %d got the main thread's channel", i);
	pthread_barrier_wait(&bar);
	for (int i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	after = zvfs_bdev_channel_count(c->bdev);
	for (int i = 0; i < THREADS; i++)
		EXPECT(!t[i].err[0], "thread %d: %s", i, t[i].err);
	EXPECT(during == before + THREADS, "channel_count %u with %d threads running, want %u",
	       during, THREADS, before + THREADS);
	EXPECT(after == before, "channel_count %u after the threads exited, want %u", after,
	       before);
	/* Cross-check from the main thread, every byte of every region. */
	for (int i = 0; i < THREADS; i++) {
		rc = t_dev_check_pattern(c->bdev, t[i].off, THR_REGION, t[i].seed, &bad);
		EXPECT(rc == 0, "main thread reading thread %d's region: %s at %" PRIu64, i,
		       t_err(rc), bad);
	}
out:
	pthread_barrier_destroy(&bar);
	t_end();
}

struct churn {
	struct ctx *c;
	int rc;
};

static void *churn_main(void *arg)
{
	struct churn *ch = arg;
	uint8_t *buf = zvfs_bdev_buf_alloc(ch->c->bdev, ch->c->unit);

	ch->rc = buf ? zvfs_bdev_read_sync(ch->c->bdev, buf, ch->c->unit, R_RT) : -ENOMEM;
	zvfs_bdev_buf_free(ch->c->bdev, buf);
	return NULL;
}

static void check_thread_exit(struct ctx *c)
{
	const unsigned before = zvfs_bdev_channel_count(c->bdev);
	const int rings = t_count_fds("io_uring"), ctxs = t_count_maps("[aio]");
	int rc;

	t_begin("thread exit releases channels (count, rings, aio contexts)");
	for (int i = 0; i < 32; i++) {
		struct churn ch = {.c = c, .rc = 1};
		pthread_t tid;

		rc = pthread_create(&tid, NULL, churn_main, &ch);
		EXPECT(rc == 0, "pthread_create: %s", strerror(rc));
		pthread_join(tid, NULL);
		EXPECT(ch.rc == 0, "thread %d: read_sync = %s", i, t_err(ch.rc));
		EXPECT(zvfs_bdev_channel_count(c->bdev) == before,
		       "channel_count %u after thread %d exited, want %u",
		       zvfs_bdev_channel_count(c->bdev), i, before);
	}
	EXPECT(t_count_fds("io_uring") == rings, "io_uring fds: %d before, %d after 32 threads",
	       rings, t_count_fds("io_uring"));
	EXPECT(t_count_maps("[aio]") == ctxs, "aio contexts: %d before, %d after 32 threads", ctxs,
	       t_count_maps("[aio]"));
	t_note("%d io_uring fds, %d aio contexts held by this process", rings, ctxs);
out:
	t_end();
}

/* ---- fork ------------------------------------------------------------- */

/* In the child: returns the exit code, 0 on success; reasons go to stderr. */
static int fork_child(struct ctx *c, struct zvfs_bdev_channel *parent_ch, uint64_t pseed,
		      uint64_t cseed)
{
	struct zvfs_bdev_channel *ch = NULL;
	uint64_t bad = 0;
	int rc;

	rc = zvfs_bdev_get_channel(c->bdev, &ch);
	if (rc) {
		fprintf(stderr, "child: get_channel = %s\n", t_err(rc));
		return 2;
	}
	if (ch == parent_ch) {
		fprintf(stderr, "child: got the parent's channel\n");
		return 3;
	}
	if (zvfs_bdev_channel_count(c->bdev) != 1) {
		fprintf(stderr, "child: channel_count %u, want 1 (its own)\n",
			zvfs_bdev_channel_count(c->bdev));
		return 4;
	}
	rc = t_dev_check_pattern(c->bdev, R_FORK, MiB, pseed, &bad);
	if (rc) {
		fprintf(stderr, "child: reading the parent's data: %s at %" PRIu64 "\n", t_err(rc),
			bad);
		return 5;
	}
	rc = t_dev_write_pattern(c->bdev, R_FORK + MiB, MiB, cseed);
	if (rc == 0)
		rc = zvfs_bdev_flush_sync(c->bdev);
	if (rc) {
		fprintf(stderr, "child: write/flush = %s\n", t_err(rc));
		return 6;
	}
	rc = t_dev_check_pattern(c->bdev, R_FORK + MiB, MiB, cseed, &bad);
	if (rc) {
		fprintf(stderr, "child: own data: %s at %" PRIu64 "\n", t_err(rc), bad);
		return 7;
	}
	rc = zvfs_bdev_close(c->bdev);
	if (rc) {
		fprintf(stderr, "child: close = %s\n", t_err(rc));
		return 8;
	}
	return 0;
}

static void check_fork(struct ctx *c)
{
	const uint64_t pseed = sub_seed(c, 1000), cseed = sub_seed(c, 1001);
	struct zvfs_bdev_channel *ch = NULL;
	uint64_t bad = 0;
	int rc, status;
	pid_t pid;

	t_begin("fork: the child gets its own channel, the parent's keeps working");
	rc = t_dev_write_pattern(c->bdev, R_FORK, MiB, pseed);
	EXPECT(rc == 0, "setup write = %s", t_err(rc));
	rc = zvfs_bdev_write_zeroes_sync(c->bdev, R_FORK + MiB, MiB);
	EXPECT(rc == 0, "setup write_zeroes = %s", t_err(rc));
	rc = zvfs_bdev_flush_sync(c->bdev);
	EXPECT(rc == 0, "setup flush = %s", t_err(rc));
	fflush(NULL);
	pid = fork();
	EXPECT(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fork_child(c, c->ch, pseed, cseed));
	EXPECT(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "child failed (status 0x%x; its reason is on stderr)", status);

	/* The parent's channel is the one it had and still works. */
	rc = zvfs_bdev_get_channel(c->bdev, &ch);
	EXPECT(rc == 0 && ch == c->ch, "parent's channel changed across fork");
	EXPECT(zvfs_bdev_channel_count(c->bdev) == 1, "parent channel_count %u, want 1",
	       zvfs_bdev_channel_count(c->bdev));
	rc = t_dev_check_pattern(c->bdev, R_FORK, MiB, pseed, &bad);
	EXPECT(rc == 0, "parent reading after fork: %s at %" PRIu64, t_err(rc), bad);
	if (c->persistent) {
		/* Shared storage: the child's write is there. */
		rc = t_dev_check_pattern(c->bdev, R_FORK + MiB, MiB, cseed, &bad);
		EXPECT(rc == 0, "child's write not visible to the parent: %s at %" PRIu64,
		       t_err(rc), bad);
	} else {
		/* A RAM disk is private memory: the child wrote its own copy. */
		rc = t_dev_check_zero(c->bdev, R_FORK + MiB, MiB, &bad);
		EXPECT(rc == 0, "child's write leaked into the parent's RAM disk: %s at %" PRIu64,
		       t_err(rc), bad);
	}
	rc = t_dev_write_pattern(c->bdev, R_FORK + MiB, MiB, pseed);
	EXPECT(rc == 0, "parent write after fork = %s", t_err(rc));
	rc = t_dev_check_pattern(c->bdev, R_FORK + MiB, MiB, pseed, &bad);
	EXPECT(rc == 0, "parent read after fork: %s at %" PRIu64, t_err(rc), bad);
out:
	t_end();
}

static void check_close(struct ctx *c)
{
	struct t_req r;
	unsigned done = 0;
	uint8_t *buf = NULL;
	int rc;

	t_begin("close refuses in-flight requests (-EBUSY), then returns 0");
	buf = zvfs_bdev_buf_alloc(c->bdev, c->bs);
	EXPECT(buf, "out of memory");
	t_req_init(&r, &done);
	rc = T_SUBMIT(zvfs_bdev_read(c->ch, buf, c->bs, R_RT, t_req_cb, &r));
	EXPECT(rc == 0, "read = %s", t_err(rc));
	rc = zvfs_bdev_close(c->bdev);
	if (rc == 0) {
		/* Closed under a request: touching anything now is use after free. */
		c->bdev = NULL;
		buf = NULL; /* leaked on purpose, its arena is gone */
		EXPECT(0, "close with a request in flight returned 0");
	}
	EXPECT(rc == -EBUSY, "close with a request in flight = %s, want -EBUSY", t_err(rc));
	rc = t_wait_for(c->ch, &done, 1);
	EXPECT(rc == 0, "wait after the refused close: %s", t_err(rc));
	if (!t_reqs_ok(&r, 1, 0, "read"))
		goto out;
	zvfs_bdev_buf_free(c->bdev, buf);
	buf = NULL;
	rc = zvfs_bdev_close(c->bdev);
	c->bdev = NULL;
	c->ch = NULL;
	EXPECT(rc == 0, "close = %s", t_err(rc));
out:
	if (c->bdev)
		zvfs_bdev_buf_free(c->bdev, buf);
	t_end();
}

/* ---- reopened devices ------------------------------------------------- */

/*
 * Bug: an io_uring channel kept the device file registered until the kernel
 * tore its ring down, asynchronously, after close; a block device (opened
 * O_EXCL) then refused an immediate reopen with -EBUSY.
 */
static void check_reopen(struct ctx *c)
{
	char err[256] = "";
	struct zvfs_bdev *b = NULL;
	void *buf = NULL;
	int rc;

	t_begin("bug: reopen right after close failed with -EBUSY (io_uring kept the file)");
	for (int i = 0; i < 3; i++) {
		rc = zvfs_bdev_open(c->base, &b, err, sizeof(err));
		EXPECT(rc == 0, "open %d of %s = %s: %s", i + 1, c->base, t_err(rc), err);
		buf = zvfs_bdev_buf_alloc(b, c->bs);
		EXPECT(buf, "out of memory");
		/* The first I/O creates this thread's channel (ring, registered file). */
		rc = zvfs_bdev_read_sync(b, buf, c->bs, R_RT);
		EXPECT(rc == 0, "read = %s", t_err(rc));
		zvfs_bdev_buf_free(b, buf);
		buf = NULL;
		rc = zvfs_bdev_close(b);
		b = NULL;
		EXPECT(rc == 0, "close = %s", t_err(rc));
	}
out:
	if (b) {
		zvfs_bdev_buf_free(b, buf);
		zvfs_bdev_close(b);
	}
	t_end();
}

static void check_queue_depth(struct ctx *c)
{
	enum { N = 64, NV = 8 };
	const uint64_t seed = sub_seed(c, 1100);
	char spec[sizeof(c->base) + 16], err[256] = "";
	struct zvfs_bdev *b = NULL;
	struct zvfs_bdev_channel *ch = NULL;
	struct t_req w[N + NV], r[N + NV];
	uint8_t *wbuf = NULL, *rbuf = NULL;
	unsigned done = 0;
	uint64_t bad = 0;
	int rc;

	t_begin("qd=4: 72 requests in flight on one channel all complete (and bug: fault ignored "
		"the inner qd)");
	snprintf(spec, sizeof(spec), "%s,qd=4", c->base);
	rc = zvfs_bdev_open(spec, &b, err, sizeof(err));
	EXPECT(rc == 0, "open %s = %s: %s", spec, t_err(rc), err);
	EXPECT(zvfs_bdev_get_geometry(b)->queue_depth == 4, "queue_depth %u, want 4",
	       zvfs_bdev_get_geometry(b)->queue_depth);
	rc = zvfs_bdev_get_channel(b, &ch);
	EXPECT(rc == 0, "get_channel = %s", t_err(rc));
	wbuf = zvfs_bdev_buf_alloc(b, (N + NV * 6) * (size_t)c->unit);
	rbuf = zvfs_bdev_buf_alloc(b, (N + NV * 6) * (size_t)c->unit);
	EXPECT(wbuf && rbuf, "out of memory");
	t_fill(wbuf, (N + NV * 6) * (size_t)c->unit, seed, R_QD);
	for (int pass = 0; pass < 2; pass++) {
		struct t_req *q = pass ? r : w;
		uint8_t *buf = pass ? rbuf : wbuf;

		done = 0;
		for (int i = 0; i < N + NV; i++) {
			t_req_init(&q[i], &done);
			if (i < N) {
				uint64_t off = R_QD + (uint64_t)i * c->unit;
				uint8_t *p = buf + (size_t)i * c->unit;

				rc = pass ? T_SUBMIT(zvfs_bdev_read(ch, p, c->unit, off, t_req_cb,
								    &q[i]))
					  : T_SUBMIT(zvfs_bdev_write(ch, p, c->unit, off, t_req_cb,
								     &q[i]));
			} else {
				struct iovec iov[6];
				size_t u0 = N + (size_t)(i - N) * 6;

				for (int k = 0; k < 6; k++)
					iov[k] = (struct iovec){buf + (u0 + (size_t)k) * c->unit,
								c->unit};
				rc = pass ? T_SUBMIT(zvfs_bdev_readv(ch, iov, 6,
								     R_QD + u0 * c->unit, t_req_cb,
								     &q[i]))
					  : T_SUBMIT(zvfs_bdev_writev(ch, iov, 6,
								      R_QD + u0 * c->unit, t_req_cb,
								      &q[i]));
			}
			EXPECT(rc == 0, "%s %d of %d with qd=4 = %s", pass ? "read" : "write", i,
			       N + NV, t_err(rc));
		}
		EXPECT(zvfs_bdev_outstanding(ch) == N + NV, "outstanding %u, want %d",
		       zvfs_bdev_outstanding(ch), N + NV);
		rc = t_wait_for(ch, &done, N + NV);
		EXPECT(rc == 0, "waiting: %s (%u of %d done)", t_err(rc), done, N + NV);
		if (!t_reqs_ok(q, N + NV, 0, pass ? "read" : "write"))
			goto out;
	}
	{
		ssize_t at = t_check(rbuf, (N + NV * 6) * (size_t)c->unit, seed, R_QD);

		EXPECT(at < 0, "data differs at byte %zd", at);
	}
	if (c->persistent) {
		rc = t_dev_check_pattern(b, R_KEEP, MiB, sub_seed(c, 99), &bad);
		EXPECT(rc == 0, "data written before close is gone after reopen: %s at %" PRIu64,
		       t_err(rc), bad);
	}
	if (c->cfg->kind == K_LOOP) {
		struct zvfs_bdev *b2 = NULL;

		/* A block device is opened exclusively. */
		rc = zvfs_bdev_open(c->base, &b2, err, sizeof(err));
		if (rc == 0)
			zvfs_bdev_close(b2);
		EXPECT(rc == -EBUSY, "second open of %s = %s, want -EBUSY", c->target, t_err(rc));
		EXPECT(strstr(err, c->target), "message does not name %s: \"%s\"", c->target, err);
	}
out:
	if (b) {
		zvfs_bdev_buf_free(b, wbuf);
		zvfs_bdev_buf_free(b, rbuf);
		if (ch)
			t_drain(ch);
		rc = zvfs_bdev_close(b);
		if (rc)
			t_failf("close = %s", t_err(rc));
	}
	t_end();
}

static void check_read_only(struct ctx *c)
{
	char spec[sizeof(c->base) + 16], err[256] = "";
	struct zvfs_bdev *b = NULL;
	struct zvfs_bdev_channel *ch = NULL;
	uint8_t *buf = NULL;
	struct iovec iov[1];
	struct t_req r;
	unsigned calls = 0;
	uint64_t bad = 0;
	int rc;

	t_begin("ro: writes, write_zeroes and discard fail with -EROFS; reads work");
	snprintf(spec, sizeof(spec), "%s,ro", c->base);
	rc = zvfs_bdev_open(spec, &b, err, sizeof(err));
	EXPECT(rc == 0, "open %s = %s: %s", spec, t_err(rc), err);
	EXPECT(zvfs_bdev_get_geometry(b)->read_only, "geometry.read_only is false");
	rc = zvfs_bdev_get_channel(b, &ch);
	EXPECT(rc == 0, "get_channel = %s", t_err(rc));
	buf = zvfs_bdev_buf_alloc(b, c->unit);
	EXPECT(buf, "out of memory");
	t_req_init(&r, &calls);
	iov[0] = (struct iovec){buf, c->bs};

#define TRY(what, expr)                                                                            \
	do {                                                                                       \
		rc = T_SUBMIT(expr);                                                               \
		EXPECT(rc == -EROFS, "%s = %s, want -EROFS", what, t_err(rc));                     \
	} while (0)
	TRY("write", zvfs_bdev_write(ch, buf, c->bs, R_MISC, t_req_cb, &r));
	TRY("writev", zvfs_bdev_writev(ch, iov, 1, R_MISC, t_req_cb, &r));
	TRY("write_zeroes", zvfs_bdev_write_zeroes(ch, R_MISC, c->bs, t_req_cb, &r));
	TRY("discard", zvfs_bdev_discard(ch, R_MISC, c->bs, t_req_cb, &r));
	TRY("write_sync", zvfs_bdev_write_sync(b, buf, c->bs, R_MISC));
	TRY("write_zeroes_sync", zvfs_bdev_write_zeroes_sync(b, R_MISC, c->bs));
	TRY("discard_sync", zvfs_bdev_discard_sync(b, R_MISC, c->bs));
#undef TRY
	rc = t_drain(ch);
	EXPECT(rc == 0 && calls == 0, "a refused request called back");
	if (c->persistent) {
		rc = t_dev_check_pattern(b, R_KEEP, MiB, sub_seed(c, 99), &bad);
		EXPECT(rc == 0, "read-only read of earlier data: %s at %" PRIu64, t_err(rc), bad);
	} else {
		rc = zvfs_bdev_read_sync(b, buf, c->bs, R_MISC);
		EXPECT(rc == 0, "read = %s", t_err(rc));
	}
out:
	if (b) {
		zvfs_bdev_buf_free(b, buf);
		rc = zvfs_bdev_close(b);
		if (rc)
			t_failf("close = %s", t_err(rc));
	}
	t_end();
}

/* Block devices: spec mistakes that only a block device can make. */
static void check_blockdev_specs(struct ctx *c)
{
	char spec[sizeof(c->base) + 32], err[256] = "";
	struct zvfs_bdev *b = NULL;
	int rc;

	t_begin("block device: 'buffered' refused, size beyond the device refused");
	snprintf(spec, sizeof(spec), "%s,buffered", c->base);
	rc = zvfs_bdev_open(spec, &b, err, sizeof(err));
	EXPECT(rc == -EINVAL, "open %s = %s, want -EINVAL", spec, t_err(rc));
	EXPECT(strstr(err, c->target) && strstr(err, "buffered"), "message: \"%s\"", err);
	snprintf(spec, sizeof(spec), "%s,size=1G", c->base);
	rc = zvfs_bdev_open(spec, &b, err, sizeof(err));
	EXPECT(rc == -ENOSPC, "open %s = %s, want -ENOSPC", spec, t_err(rc));
	EXPECT(strstr(err, c->target), "message does not name the device: \"%s\"", err);
	/* A smaller size is a window onto the device. */
	snprintf(spec, sizeof(spec), "%s,size=32M", c->base);
	rc = zvfs_bdev_open(spec, &b, err, sizeof(err));
	EXPECT(rc == 0, "open %s = %s: %s", spec, t_err(rc), err);
	EXPECT(zvfs_bdev_get_geometry(b)->size == 32 * MiB, "size %" PRIu64 " with size=32M",
	       zvfs_bdev_get_geometry(b)->size);
	rc = zvfs_bdev_close(b);
	b = NULL;
	EXPECT(rc == 0, "close = %s", t_err(rc));
out:
	if (b)
		zvfs_bdev_close(b);
	t_end();
}

/* ---- setup ------------------------------------------------------------ */

/* Returns 0, or T_EXIT_SKIP / 1 with the reason printed. */
static int setup(struct ctx *c)
{
	const struct cfg *cfg = c->cfg;
	char why[256];
	int fd, rc;

	c->loopfd = -1;
	if (cfg->kind == K_RAM) {
		snprintf(c->spec, sizeof(c->spec), "%s:size=64M%s", cfg->driver, cfg->opts);
		snprintf(c->base, sizeof(c->base), "%s", c->spec);
		return 0;
	}
	if (cfg->kind == K_LOOP) {
		if (geteuid() != 0) {
			printf("# SKIP: loop devices need root\n");
			return T_EXIT_SKIP;
		}
		if (access("/dev/loop-control", F_OK) != 0) {
			printf("# SKIP: no /dev/loop-control\n");
			return T_EXIT_SKIP;
		}
	}
	if (cfg->base) {
		struct statfs sfs;

		if (statfs(cfg->base, &sfs) != 0 || sfs.f_type != TMPFS_MAGIC) {
			printf("# SKIP: %s is not a tmpfs\n", cfg->base);
			return T_EXIT_SKIP;
		}
	}
	c->dir = t_mkdtemp(cfg->base, "contract");
	if (!c->dir) {
		printf("# cannot make a temporary directory: %s\n", strerror(errno));
		return 1;
	}
	snprintf(c->img, sizeof(c->img), "%s/img", c->dir);

	if (cfg->block && !strstr(cfg->opts, "buffered")) {
		/* Can this file system do direct I/O in blocks that small? */
		struct statx stx;

		fd = open(c->img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			printf("# %s: %s\n", c->img, strerror(errno));
			return 1;
		}
		if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
		    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align > cfg->block) {
			printf("# SKIP: the file system needs %u-byte aligned direct I/O, "
			       "block=%u impossible\n",
			       stx.stx_dio_offset_align, cfg->block);
			close(fd);
			return T_EXIT_SKIP;
		}
		close(fd);
		unlink(c->img);
	}

	if (cfg->kind == K_FILE) {
		snprintf(c->target, sizeof(c->target), "%s", c->img);
		snprintf(c->spec, sizeof(c->spec), "%s:%s,size=64M,create%s", cfg->driver, c->img,
			 cfg->opts);
		snprintf(c->base, sizeof(c->base), "%s:%s%s", cfg->driver, c->img, cfg->opts);
		c->persistent = true;
		return 0;
	}

	/* K_LOOP: a 64 MiB image behind a loop device. */
	fd = open(c->img, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)DEV_SIZE) != 0) {
		printf("# %s: %s\n", c->img, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	close(fd);
	rc = t_loop_attach(c->img, c->target, sizeof(c->target), &c->loopfd, why, sizeof(why));
	if (rc) {
		bool cannot = rc == -EPERM || rc == -EACCES || rc == -ENOENT || rc == -ENODEV ||
			      rc == -ENXIO;

		printf("# %s%s\n", cannot ? "SKIP: cannot attach a loop device: " : "", why);
		return cannot ? T_EXIT_SKIP : 1;
	}
	if (ioctl(c->loopfd, BLKSSZGET, &rc) != 0) {
		printf("# %s: BLKSSZGET: %s\n", c->target, strerror(errno));
		return 1;
	}
	c->loop_lbs = (uint32_t)rc;
	t_note("attached %s to %s", c->target, c->img);
	if (cfg->driver[0])
		snprintf(c->spec, sizeof(c->spec), "%s:%s%s", cfg->driver, c->target, cfg->opts);
	else
		snprintf(c->spec, sizeof(c->spec), "%s%s", c->target, cfg->opts);
	snprintf(c->base, sizeof(c->base), "%s", c->spec);
	c->persistent = true;
	return 0;
}

static void teardown(struct ctx *c)
{
	if (c->loopfd >= 0) {
		t_loop_detach(c->loopfd);
		c->loopfd = -1;
	}
	if (c->dir) {
		t_rmtree(c->dir);
		free(c->dir);
		c->dir = NULL;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: test_contract CONFIG\nconfigurations:");
	for (size_t i = 0; i < sizeof(g_cfgs) / sizeof(g_cfgs[0]); i++)
		fprintf(stderr, " %s", g_cfgs[i].name);
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	struct ctx c = {0};
	char prog[64];
	int rc;

	if (argc != 2) {
		usage();
		return 1;
	}
	for (size_t i = 0; i < sizeof(g_cfgs) / sizeof(g_cfgs[0]); i++)
		if (strcmp(argv[1], g_cfgs[i].name) == 0)
			c.cfg = &g_cfgs[i];
	if (!c.cfg) {
		usage();
		return 1;
	}
	snprintf(prog, sizeof(prog), "contract %s", c.cfg->name);
	c.seed = t_seed();
	rc = setup(&c);
	if (rc) {
		teardown(&c);
		return rc;
	}

	check_open(&c);
	if (!c.bdev) {
		/* Kernels before 6.6 have no O_DIRECT on tmpfs. */
		if (c.cfg->base) {
			char err[256];
			struct zvfs_bdev *b;

			if (zvfs_bdev_open(c.spec, &b, err, sizeof(err)) == -EOPNOTSUPP) {
				printf("# SKIP: %s\n", err);
				teardown(&c);
				return T_EXIT_SKIP;
			}
		}
		teardown(&c);
		return t_summary(prog);
	}
	check_geometry(&c);
	check_buffers(&c);
	check_channel(&c);
	if (!c.ch) {
		zvfs_bdev_close(c.bdev);
		teardown(&c);
		return t_summary(prog);
	}
	check_roundtrip(&c);
	check_vectored(&c);
	check_misaligned(&c);
	check_range(&c);
	check_flush(&c);
	check_write_zeroes(&c);
	check_discard(&c);
	check_zero_length(&c);
	check_batch(&c);
	check_chain(&c);
	check_threads(&c);
	check_thread_exit(&c);
	check_fork(&c);
	check_polled(&c);
	check_close(&c);

	check_reopen(&c);
	check_queue_depth(&c);
	check_read_only(&c);
	if (c.cfg->kind == K_LOOP)
		check_blockdev_specs(&c);

	teardown(&c);
	return t_summary(prog);
}
