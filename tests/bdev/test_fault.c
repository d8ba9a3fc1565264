/* SPDX-License-Identifier: MIT */
/*
 * The fault-injection device ("fault:" INNER, include/zvfs/bdev.h): failure
 * rules, the volatile write cache and power cuts, over a RAM disk and over an
 * io_uring file.  For the file, the inner device is also opened on its own
 * after a power cut to check that exactly the flushed (or kept) writes are
 * on disk.
 *
 *   fail_nth       exactly the nth request of the chosen types fails, with the
 *                  chosen errno; nothing else does; one shot
 *   fail_range     only requests touching the range fail; flushes touch
 *                  everything; clear_rule stops it; 16 rules at most
 *   failed write   leaves the old data (flushed or cached)
 *   cache          unflushed writes, write_zeroes and discards are visible
 *   DROP_ALL       loses exactly the unflushed writes; flushed ones survive;
 *                  requests fail with -ENXIO at submission until power_on;
 *                  a request submitted before the cut completes normally
 *   RANDOM         same seed, same survivors; survivors applied in order;
 *                  several seeds each keep a mix of 64 writes
 *   stats          the counters add up
 *
 * Exit: 0 pass, 1 fail.
 */
#include "testlib.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB	   (1ull << 20)
#define DEV_SIZE   (16 * MiB)
#define BUF_BLOCKS 128

/* Block ranges used by the checks (in blocks). */
#define BL_NTH	  0
#define BL_RANGE  32
#define BL_OLD	  64
#define BL_CACHE  80
#define BL_CUT	  100
#define BL_RANDOM 200 /* 65 blocks */
#define BL_STATS  300
#define BL_DISK	  400
#define NW	  64 /* writes per RANDOM trial */

struct fdev {
	const char *label;
	char spec[PATH_MAX + 64];  /* fault:INNER */
	char inner[PATH_MAX + 32]; /* INNER without create (file only) */
	char path[PATH_MAX];	   /* file only */
	bool file;
	struct zvfs_bdev *b;
	struct zvfs_bdev_channel *ch;
	uint32_t bs;
	uint8_t *wbuf, *rbuf;
	uint64_t seed;
};

/* The outcome of one request. */
struct outcome {
	int submit;	/* return of the submit call */
	int status;	/* callback status (when submit == 0) */
	unsigned calls; /* callback runs */
	bool broken;	/* ran inside submit / on another thread / wait failed */
};

static uint64_t sseed(const struct fdev *d, uint64_t tag)
{
	return t_mix(d->seed ^ (tag * 0x9e3779b97f4a7c15ull)) | 1;
}

static uint64_t off_of(const struct fdev *d, uint64_t blk)
{
	return blk * d->bs;
}

/* Submit one request on d's channel and wait for it. */
static struct outcome io1(struct fdev *d, unsigned type, uint64_t blk, uint64_t n, void *buf)
{
	struct outcome o = {0};
	struct t_req r;
	unsigned done = 0;
	uint64_t off = off_of(d, blk), len = n * d->bs;

	t_req_init(&r, &done);
	switch (type) {
	case ZVFS_BDEV_IO_READ:
		o.submit = T_SUBMIT(zvfs_bdev_read(d->ch, buf, len, off, t_req_cb, &r));
		break;
	case ZVFS_BDEV_IO_WRITE:
		o.submit = T_SUBMIT(zvfs_bdev_write(d->ch, buf, len, off, t_req_cb, &r));
		break;
	case ZVFS_BDEV_IO_FLUSH:
		o.submit = T_SUBMIT(zvfs_bdev_flush(d->ch, t_req_cb, &r));
		break;
	case ZVFS_BDEV_IO_WRITE_ZEROES:
		o.submit = T_SUBMIT(zvfs_bdev_write_zeroes(d->ch, off, len, t_req_cb, &r));
		break;
	case ZVFS_BDEV_IO_DISCARD:
		o.submit = T_SUBMIT(zvfs_bdev_discard(d->ch, off, len, t_req_cb, &r));
		break;
	}
	if (o.submit == 0) {
		if (t_wait_for(d->ch, &done, 1) != 0)
			o.broken = true;
	} else if (t_drain(d->ch) != 0) {
		o.broken = true;
	}
	o.calls = r.calls;
	o.status = r.calls ? r.status : 0;
	o.broken = o.broken || r.in_submit || r.wrong_thread;
	return o;
}

/* Expect the request to complete (callback once) with want. */
static bool done_with(struct outcome o, int want, const char *what)
{
	if (o.submit) {
		t_failf("%s: refused at submission with %s, want completion with %s", what,
			t_err(o.submit), t_err(want));
		return false;
	}
	if (o.calls != 1 || o.broken) {
		t_failf("%s: callback ran %u times%s", what, o.calls,
			o.broken ? " (or inside submit / on another thread / wait failed)" : "");
		return false;
	}
	if (o.status != want) {
		t_failf("%s: status %s, want %s", what, t_err(o.status), t_err(want));
		return false;
	}
	return true;
}

/* Expect the request to be refused at submission with want, with no callback. */
static bool refused_with(struct outcome o, int want, const char *what)
{
	if (o.submit != want) {
		t_failf("%s: submit returned %s, want %s", what, t_err(o.submit), t_err(want));
		return false;
	}
	if (o.calls || o.broken) {
		t_failf("%s: refused, but the callback ran %u times", what, o.calls);
		return false;
	}
	return true;
}

static struct outcome do_write(struct fdev *d, uint64_t blk, uint64_t n, uint64_t seed)
{
	t_fill(d->wbuf, n * d->bs, seed, off_of(d, blk));
	return io1(d, ZVFS_BDEV_IO_WRITE, blk, n, d->wbuf);
}

static struct outcome do_op(struct fdev *d, unsigned type, uint64_t blk, uint64_t n)
{
	return io1(d, type, blk, n, d->rbuf);
}

/*
 * Read n blocks at blk (through bdev b, synchronously) and check each against
 * want[i]: a pattern seed, or 0 for zeroes.  Records a failure and returns
 * false on a mismatch.
 */
static bool blocks_match(struct fdev *d, struct zvfs_bdev *b, uint64_t blk, uint64_t n,
			 const uint64_t *want, const char *what)
{
	int rc;

	memset(d->rbuf, 0xa5, n * d->bs);
	rc = zvfs_bdev_read_sync(b, d->rbuf, n * d->bs, off_of(d, blk));
	if (rc) {
		t_failf("%s: read of blocks %" PRIu64 "+%" PRIu64 " = %s", what, blk, n, t_err(rc));
		return false;
	}
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *p = d->rbuf + i * d->bs;
		ssize_t at = want[i] ? t_check(p, d->bs, want[i], off_of(d, blk + i))
				     : t_check_zero(p, d->bs);

		if (at >= 0) {
			t_failf("%s: block %" PRIu64 " is not %s (byte %zd)", what, blk + i,
				want[i] ? "the expected data" : "zero", at);
			return false;
		}
	}
	return true;
}

/* n blocks at blk all hold seed's pattern (0: zeroes). */
static bool blocks_are(struct fdev *d, uint64_t blk, uint64_t n, uint64_t seed, const char *what)
{
	uint64_t want[BUF_BLOCKS];

	for (uint64_t i = 0; i < n; i++)
		want[i] = seed;
	return blocks_match(d, d->b, blk, n, want, what);
}

static bool get_stats(struct fdev *d, struct zvfs_bdev_fault_stats *st)
{
	int rc = zvfs_bdev_fault_get_stats(d->b, st);

	if (rc)
		t_failf("get_stats = %s", t_err(rc));
	return rc == 0;
}

#define REQUIRE(x)                                                                                 \
	do {                                                                                       \
		if (!(x))                                                                          \
			goto out;                                                                  \
	} while (0)

/* ---- checks ------------------------------------------------------------ */

static void check_not_fault(void)
{
	struct zvfs_bdev_fault_stats st;
	struct zvfs_bdev *b = NULL;
	char err[256];
	int rc;

	t_begin("fault API on a non-fault device: -EINVAL");
	rc = zvfs_bdev_open("ram:size=4M", &b, err, sizeof(err));
	EXPECT(rc == 0, "open ram: %s: %s", t_err(rc), err);
	EXPECT(zvfs_bdev_fault_fail_nth(b, ZVFS_BDEV_IO_ALL, 1, EIO) == -EINVAL, "fail_nth");
	EXPECT(zvfs_bdev_fault_fail_range(b, ZVFS_BDEV_IO_ALL, 0, 4096, EIO) == -EINVAL,
	       "fail_range");
	EXPECT(zvfs_bdev_fault_clear_rule(b, 0) == -EINVAL, "clear_rule");
	EXPECT(zvfs_bdev_fault_clear(b) == -EINVAL, "clear");
	EXPECT(zvfs_bdev_fault_power_cut(b, ZVFS_BDEV_CUT_DROP_ALL, 0, NULL, NULL) == -EINVAL,
	       "power_cut");
	EXPECT(zvfs_bdev_fault_power_on(b) == -EINVAL, "power_on");
	EXPECT(zvfs_bdev_fault_get_stats(b, &st) == -EINVAL, "get_stats");
out:
	if (b)
		zvfs_bdev_close(b);
	t_end();
}

static void check_identity(struct fdev *d)
{
	const struct zvfs_bdev_geometry *g = zvfs_bdev_get_geometry(d->b);
	struct zvfs_bdev_fault_stats st;
	char want[PATH_MAX + 16];

	t_begin("identity, geometry, fresh counters");
	snprintf(want, sizeof(want), "fault(%s)", d->file ? d->path : "ram");
	EXPECT(strcmp(zvfs_bdev_get_driver(d->b), "fault") == 0, "driver \"%s\"",
	       zvfs_bdev_get_driver(d->b));
	EXPECT(strcmp(zvfs_bdev_get_name(d->b), want) == 0, "name \"%s\", want \"%s\"",
	       zvfs_bdev_get_name(d->b), want);
	EXPECT(g->size == DEV_SIZE, "size %" PRIu64, g->size);
	EXPECT(g->volatile_cache, "volatile_cache false on a device with a volatile cache");
	EXPECT(g->discard_zeroes, "discard_zeroes false");
	REQUIRE(get_stats(d, &st));
	EXPECT(st.submitted == 0 && st.failed == 0 && st.unflushed == 0 && st.flushes == 0,
	       "fresh counters %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64, st.submitted,
	       st.failed, st.unflushed, st.flushes);
out:
	t_end();
}

static void check_fail_nth(struct fdev *d)
{
	const uint64_t a = sseed(d, 1), bseed = sseed(d, 2);
	const uint64_t base = BL_NTH;
	int rc;

	t_begin("fail_nth: exactly the nth request of the chosen types fails, once");
	REQUIRE(done_with(do_write(d, base, 12, a), 0, "baseline write"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "baseline flush"));

	/* The 3rd write fails with -EIO; reads, flushes, zeroing do not count. */
	rc = zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_WRITE, 3, EIO);
	EXPECT(rc == 0, "fail_nth = %s", t_err(rc));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 1), 0, "read"));
	REQUIRE(done_with(do_write(d, base + 1, 1, bseed), 0, "write 1"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 6, 1), 0, "write_zeroes"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_DISCARD, base + 7, 1), 0, "discard"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 2), 0, "read"));
	REQUIRE(done_with(do_write(d, base + 2, 1, bseed), 0, "write 2"));
	REQUIRE(done_with(do_write(d, base + 3, 1, bseed), -EIO, "write 3 (the nth)"));
	REQUIRE(done_with(do_write(d, base + 4, 1, bseed), 0, "write 4 (one shot: after the nth)"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 1), 0, "read after"));
	{
		const uint64_t want[8] = {a, bseed, bseed, a, bseed, a, 0, 0};

		REQUIRE(blocks_match(d, d->b, base, 8, want, "after fail_nth(WRITE, 3)"));
	}

	/* Two types, another errno: the 2nd of reads and flushes is a flush. */
	rc = zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_READ | ZVFS_BDEV_IO_FLUSH, 2, ENOSPC);
	EXPECT(rc == 0, "fail_nth = %s", t_err(rc));
	REQUIRE(done_with(do_write(d, base + 8, 1, bseed), 0, "write"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 1), 0, "read (1st)"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 9, 1), 0, "write_zeroes"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), -ENOSPC, "flush (2nd: the nth)"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 1), 0, "read after"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush after"));

	/* Zeroing types. */
	rc = zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_WRITE_ZEROES | ZVFS_BDEV_IO_DISCARD, 2,
				      EIO);
	EXPECT(rc == 0, "fail_nth = %s", t_err(rc));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_DISCARD, base + 10, 1), 0, "discard (1st)"));
	REQUIRE(done_with(do_write(d, base + 11, 1, bseed), 0, "write"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 11, 1), -EIO,
			  "write_zeroes (2nd: the nth)"));
	REQUIRE(blocks_are(d, base + 11, 1, bseed, "failed write_zeroes left the data"));
	REQUIRE(blocks_are(d, base + 10, 1, 0, "discard before the nth"));

	/* In one batch: the 5th write submitted fails, whatever the completion order. */
	{
		enum { N = 10 };
		struct t_req r[N];
		unsigned done = 0;
		const uint64_t c = sseed(d, 3);

		rc = zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_WRITE, 5, ETIMEDOUT);
		EXPECT(rc == 0, "fail_nth = %s", t_err(rc));
		t_fill(d->wbuf, N * (uint64_t)d->bs, c, off_of(d, base + 16));
		for (int i = 0; i < N; i++) {
			t_req_init(&r[i], &done);
			rc = T_SUBMIT(zvfs_bdev_write(d->ch, d->wbuf + (size_t)i * d->bs, d->bs,
						      off_of(d, base + 16 + (uint64_t)i), t_req_cb,
						      &r[i]));
			EXPECT(rc == 0, "batch write %d = %s", i, t_err(rc));
		}
		rc = t_wait_for(d->ch, &done, N);
		EXPECT(rc == 0, "waiting: %s", t_err(rc));
		for (int i = 0; i < N; i++) {
			if (!t_reqs_ok(&r[i], 1, i == 4 ? -ETIMEDOUT : 0, "batch write"))
				goto out;
		}
		for (int i = 0; i < N; i++) {
			uint64_t want = i == 4 ? 0 : c; /* block 20 was zero before */

			REQUIRE(blocks_are(d, base + 16 + (uint64_t)i, 1, want,
					   "batch with the 5th write failed"));
		}
	}
	EXPECT(zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_WRITE, 0, EIO) == -EINVAL,
	       "fail_nth with nth 0 accepted");
	EXPECT(zvfs_bdev_fault_fail_nth(d->b, 0, 1, EIO) == -EINVAL, "fail_nth with no type");
out:
	zvfs_bdev_fault_clear(d->b);
	t_end();
}

static void check_fail_range(struct fdev *d)
{
	const uint64_t a = sseed(d, 10), bseed = sseed(d, 11), base = BL_RANGE;
	int rule = -1, rule2 = -1, ids[17];
	int rc;

	t_begin("fail_range: only requests touching the range fail; clear_rule stops it");
	REQUIRE(done_with(do_write(d, base, 16, a), 0, "baseline write"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "baseline flush"));
	/* Blocks base+4 .. base+7 fail reads and writes with -EIO. */
	rule = zvfs_bdev_fault_fail_range(d->b, ZVFS_BDEV_IO_READ | ZVFS_BDEV_IO_WRITE,
					  off_of(d, base + 4), 4 * (uint64_t)d->bs, EIO);
	EXPECT(rule >= 0, "fail_range = %s", t_err(rule));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base + 4, 1), -EIO, "read of the first"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base + 7, 1), -EIO, "read of the last"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base + 2, 3), -EIO,
			  "read overlapping start"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base + 7, 3), -EIO, "read overlapping end"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 16), -EIO, "read covering it"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 4), 0, "read ending at the start"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base + 8, 4), 0, "read from the end"));
	REQUIRE(done_with(do_write(d, base + 5, 1, bseed), -EIO, "write inside"));
	REQUIRE(done_with(do_write(d, base + 8, 1, bseed), 0, "write just after"));
	REQUIRE(done_with(do_write(d, base + 3, 1, bseed), 0, "write just before"));
	/* Types outside the mask pass, flush included. */
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 6, 1), 0,
			  "write_zeroes inside (type not in the rule)"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush (type not in the rule)"));

	/* A flush rule touches everything, whatever its range. */
	rule2 = zvfs_bdev_fault_fail_range(d->b, ZVFS_BDEV_IO_FLUSH, off_of(d, 4000), d->bs,
					   ENOSPC);
	EXPECT(rule2 >= 0 && rule2 != rule, "second rule id %d (first %d)", rule2, rule);
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), -ENOSPC, "flush with a flush rule"));
	rc = zvfs_bdev_fault_clear_rule(d->b, rule2);
	EXPECT(rc == 0, "clear_rule(flush rule) = %s", t_err(rc));
	rule2 = -1;
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush after clear_rule"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base + 4, 1), -EIO,
			  "read (other rule still active)"));

	rc = zvfs_bdev_fault_clear_rule(d->b, rule);
	EXPECT(rc == 0, "clear_rule = %s", t_err(rc));
	rule = -1;
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 16), 0, "read after clear_rule"));
	{
		const uint64_t want[12] = {a, a, a, bseed, a, a, 0, a, bseed, a, a, a};

		REQUIRE(blocks_match(d, d->b, base, 12, want, "after the range rule"));
	}
	REQUIRE(done_with(do_write(d, base + 5, 1, bseed), 0, "write inside after clear_rule"));
	REQUIRE(blocks_are(d, base + 5, 1, bseed, "write after clear_rule"));

	/* At most 16 rules; clear removes them all. */
	for (int i = 0; i < 17; i++)
		ids[i] = zvfs_bdev_fault_fail_range(d->b, ZVFS_BDEV_IO_READ,
						    off_of(d, 4000 + (uint64_t)i), d->bs, EIO);
	for (int i = 0; i < 16; i++) {
		EXPECT(ids[i] >= 0, "rule %d refused: %s", i, t_err(ids[i]));
		for (int j = 0; j < i; j++)
			EXPECT(ids[i] != ids[j], "rules %d and %d share id %d", i, j, ids[i]);
	}
	EXPECT(ids[16] == -ENOSPC, "17th rule = %s, want -ENOSPC", t_err(ids[16]));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, 4003, 1), -EIO, "read under rule 3"));
	rc = zvfs_bdev_fault_clear(d->b);
	EXPECT(rc == 0, "clear = %s", t_err(rc));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, 4000, 17), 0, "read after clear"));
out:
	zvfs_bdev_fault_clear(d->b);
	t_end();
}

static void check_failed_write(struct fdev *d)
{
	const uint64_t a = sseed(d, 20), bseed = sseed(d, 21), base = BL_OLD;

	t_begin("a failed write leaves the old data (flushed and cached)");
	REQUIRE(done_with(do_write(d, base, 4, a), 0, "write A"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	EXPECT(zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_WRITE, 1, EIO) == 0, "fail_nth");
	REQUIRE(done_with(do_write(d, base, 4, bseed), -EIO, "write B over flushed A"));
	REQUIRE(blocks_are(d, base, 4, a, "flushed A after a failed write"));
	/* Now over data that is only in the cache. */
	REQUIRE(done_with(do_write(d, base + 4, 4, a), 0, "write A (cached)"));
	EXPECT(zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_WRITE, 1, EIO) == 0, "fail_nth");
	REQUIRE(done_with(do_write(d, base + 2, 4, bseed), -EIO, "write B over A and cached A"));
	REQUIRE(blocks_are(d, base, 8, a, "cached A after a failed write"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	REQUIRE(blocks_are(d, base, 8, a, "after flush"));
out:
	zvfs_bdev_fault_clear(d->b);
	t_end();
}

static void check_cache_visible(struct fdev *d)
{
	const uint64_t x = sseed(d, 30), y = sseed(d, 31), base = BL_CACHE;
	struct zvfs_bdev_fault_stats st;
	struct iovec iov[5];
	uint64_t pos = 0;

	t_begin("unflushed writes, write_zeroes and discards are visible to reads");
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	REQUIRE(get_stats(d, &st));
	EXPECT(st.unflushed == 0, "unflushed %" PRIu64 " after a flush", st.unflushed);
	REQUIRE(done_with(do_write(d, base, 8, x), 0, "write X"));
	REQUIRE(done_with(do_write(d, base + 2, 3, y), 0, "write Y over part of X"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 6, 1), 0, "write_zeroes"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_DISCARD, base + 7, 1), 0, "discard"));
	REQUIRE(done_with(do_write(d, base + 7, 2, y), 0, "write Y over the discard and beyond"));
	REQUIRE(get_stats(d, &st));
	EXPECT(st.unflushed == 5, "unflushed %" PRIu64 ", want 5", st.unflushed);
	{
		const uint64_t want[10] = {x, x, y, y, y, x, 0, y, y, 0};

		/* Block 9 was never written: zero on a fresh RAM disk or a fresh file. */
		REQUIRE(blocks_match(d, d->b, base, 10, want, "unflushed overlay"));
		/* The same through a 5-iovec readv, which must lay the cache over each iovec. */
		memset(d->rbuf, 0xa5, 10 * (size_t)d->bs);
		for (int i = 0; i < 5; i++) {
			uint64_t n = i == 4 ? 10 - pos : (uint64_t)(i % 2 + 1);

			iov[i].iov_base = d->rbuf + (4 - i) * 2 * (size_t)d->bs * 2;
			iov[i].iov_len = n * d->bs;
			pos += n;
		}
		EXPECT(zvfs_bdev_readv_sync(d->b, iov, 5, off_of(d, base)) == 0, "readv");
		pos = 0;
		for (int i = 0; i < 5; i++) {
			for (uint64_t k = 0; k < iov[i].iov_len / d->bs; k++, pos++) {
				const uint8_t *p = (uint8_t *)iov[i].iov_base + k * d->bs;
				ssize_t at = want[pos] ? t_check(p, d->bs, want[pos],
								 off_of(d, base + pos))
						       : t_check_zero(p, d->bs);

				EXPECT(at < 0, "readv: block %" PRIu64 " wrong (byte %zd)", pos,
				       at);
			}
		}
		REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
		REQUIRE(get_stats(d, &st));
		EXPECT(st.unflushed == 0, "unflushed %" PRIu64 " after a flush", st.unflushed);
		REQUIRE(blocks_match(d, d->b, base, 10, want, "after flush"));
	}
out:
	t_end();
}

static void check_drop_all(struct fdev *d)
{
	const uint64_t z = sseed(d, 40), f = sseed(d, 41), u = sseed(d, 42), base = BL_CUT;
	struct zvfs_bdev_fault_stats st;
	uint64_t dropped = 99, kept = 99;
	struct t_req r;
	unsigned done = 0;
	int rc;

	t_begin("power cut DROP_ALL: unflushed writes lost, flushed kept, -ENXIO until power_on");
	REQUIRE(done_with(do_write(d, base, 32, z), 0, "baseline"));
	REQUIRE(done_with(do_write(d, base, 8, f), 0, "write F"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	/* Four unflushed changes, one of them over flushed data. */
	REQUIRE(done_with(do_write(d, base + 8, 4, u), 0, "write U"));
	REQUIRE(done_with(do_write(d, base + 2, 2, u), 0, "write U over F"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 4, 1), 0, "write_zeroes"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_DISCARD, base + 12, 1), 0, "discard"));
	/* A fifth submitted but not yet reaped when the power goes. */
	t_fill(d->wbuf, d->bs, u, off_of(d, base + 13));
	t_req_init(&r, &done);
	rc = T_SUBMIT(zvfs_bdev_write(d->ch, d->wbuf, d->bs, off_of(d, base + 13), t_req_cb, &r));
	EXPECT(rc == 0, "write before the cut = %s", t_err(rc));
	REQUIRE(get_stats(d, &st));
	EXPECT(st.unflushed == 5, "unflushed %" PRIu64 " before the cut, want 5", st.unflushed);

	rc = zvfs_bdev_fault_power_cut(d->b, ZVFS_BDEV_CUT_DROP_ALL, 0, &dropped, &kept);
	EXPECT(rc == 0, "power_cut = %s", t_err(rc));
	EXPECT(dropped == 5 && kept == 0, "dropped %" PRIu64 " kept %" PRIu64 ", want 5 and 0",
	       dropped, kept);
	/* Requests in flight complete normally. */
	rc = t_wait_for(d->ch, &done, 1);
	EXPECT(rc == 0, "wait for the request from before the cut: %s", t_err(rc));
	if (!t_reqs_ok(&r, 1, 0, "write from before the cut"))
		goto out;

	/* Dark: everything refused at submission, nothing called back. */
	REQUIRE(refused_with(do_op(d, ZVFS_BDEV_IO_READ, base, 1), -ENXIO, "read while dark"));
	REQUIRE(refused_with(do_write(d, base, 1, u), -ENXIO, "write while dark"));
	REQUIRE(refused_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), -ENXIO, "flush while dark"));
	REQUIRE(refused_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base, 1), -ENXIO,
			     "write_zeroes while dark"));
	REQUIRE(refused_with(do_op(d, ZVFS_BDEV_IO_DISCARD, base, 1), -ENXIO,
			     "discard while dark"));
	rc = zvfs_bdev_read_sync(d->b, d->rbuf, d->bs, 0);
	EXPECT(rc == -ENXIO, "read_sync while dark = %s", t_err(rc));
	EXPECT(zvfs_bdev_outstanding(d->ch) == 0, "outstanding %u while dark",
	       zvfs_bdev_outstanding(d->ch));
	REQUIRE(get_stats(d, &st));
	EXPECT(st.unflushed == 0, "unflushed %" PRIu64 " after the cut", st.unflushed);

	rc = zvfs_bdev_fault_power_on(d->b);
	EXPECT(rc == 0, "power_on = %s", t_err(rc));
	{
		uint64_t want[16];

		for (int i = 0; i < 16; i++)
			want[i] = i < 8 ? f : z;
		REQUIRE(blocks_match(d, d->b, base, 16, want, "after power_on"));
	}
	/* A second cut with an empty cache drops nothing. */
	REQUIRE(done_with(do_write(d, base + 20, 1, u), 0, "write"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	rc = zvfs_bdev_fault_power_cut(d->b, ZVFS_BDEV_CUT_DROP_ALL, 0, &dropped, &kept);
	EXPECT(rc == 0 && dropped == 0 && kept == 0,
	       "cut with nothing unflushed: %s, dropped %" PRIu64 " kept %" PRIu64, t_err(rc),
	       dropped, kept);
	EXPECT(zvfs_bdev_fault_power_on(d->b) == 0, "power_on");
	REQUIRE(blocks_are(d, base + 20, 1, u, "flushed write after an empty cut"));
out:
	zvfs_bdev_fault_power_on(d->b);
	t_end();
}

/*
 * One RANDOM power cut over NW overlapping writes: write i covers blocks
 * i and i+1 of BL_RANDOM, so block b ends up with write b (if it survived),
 * else write b-1 (if it survived), else the baseline.  Deduces which writes
 * survived and checks that the result is exactly what applying the
 * survivors in order gives.  *mask gets the survivor set.
 */
static uint64_t trial_seed(const struct fdev *d, int i)
{
	return sseed(d, 1000 + (uint64_t)i);
}

/* What block b (0..NW) must hold when the writes in mask survived, in order. */
static uint64_t expected_block(const struct fdev *d, uint64_t mask, int b, uint64_t z)
{
	if (b < NW && (mask >> b & 1))
		return trial_seed(d, b);
	if (b > 0 && (mask >> (b - 1) & 1))
		return trial_seed(d, b - 1);
	return z;
}

static bool random_trial(struct fdev *d, uint64_t seed, uint64_t *mask, uint64_t *kept_out)
{
	const uint64_t z = sseed(d, 50), base = BL_RANDOM;
	struct zvfs_bdev_fault_stats st;
	uint64_t dropped = 0, kept = 0, m = 0;
	uint64_t want[NW + 1];
	int rc;

	if (!done_with(do_write(d, base, NW + 1, z), 0, "baseline") ||
	    !done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"))
		return false;
	for (int i = 0; i < NW; i++)
		if (!done_with(do_write(d, base + (uint64_t)i, 2, trial_seed(d, i)), 0, "write"))
			return false;
	if (!get_stats(d, &st))
		return false;
	if (st.unflushed != NW) {
		t_failf("unflushed %" PRIu64 ", want %d", st.unflushed, NW);
		return false;
	}
	rc = zvfs_bdev_fault_power_cut(d->b, ZVFS_BDEV_CUT_RANDOM, seed, &dropped, &kept);
	if (rc || dropped + kept != NW) {
		t_failf("power_cut(RANDOM, %" PRIu64 ") = %s, dropped %" PRIu64 " + kept %" PRIu64
			" != %d",
			seed, t_err(rc), dropped, kept, NW);
		return false;
	}
	rc = zvfs_bdev_fault_power_on(d->b);
	if (rc) {
		t_failf("power_on = %s", t_err(rc));
		return false;
	}
	/* Deduce the survivors: write i shows in block i, or in block i+1 if i+1 was lost. */
	rc = zvfs_bdev_read_sync(d->b, d->rbuf, (NW + 1) * (uint64_t)d->bs, off_of(d, base));
	if (rc) {
		t_failf("read = %s", t_err(rc));
		return false;
	}
	for (int i = 0; i < NW; i++) {
		const uint8_t *p0 = d->rbuf + (size_t)i * d->bs;
		const uint8_t *p1 = p0 + d->bs;
		uint64_t s = trial_seed(d, i);

		if (t_check(p0, d->bs, s, off_of(d, base + (uint64_t)i)) < 0 ||
		    t_check(p1, d->bs, s, off_of(d, base + (uint64_t)i + 1)) < 0)
			m |= 1ull << i;
	}
	if ((uint64_t)__builtin_popcountll(m) != kept) {
		t_failf("seed %" PRIu64 ": %d writes visible, power_cut says %" PRIu64 " kept",
			seed, __builtin_popcountll(m), kept);
		return false;
	}
	for (int b = 0; b <= NW; b++)
		want[b] = expected_block(d, m, b, z);
	if (!blocks_match(d, d->b, base, NW + 1, want, "survivors applied in order"))
		return false;
	*mask = m;
	*kept_out = kept;
	return true;
}

static void check_random(struct fdev *d)
{
	uint64_t m1 = 0, m2 = 0, k1 = 0, k2 = 0, masks[8], kept;
	bool all_same = true;

	t_begin("power cut RANDOM: same seed same survivors, in order, a mix for every seed");
	REQUIRE(random_trial(d, d->seed, &m1, &k1));
	REQUIRE(random_trial(d, d->seed, &m2, &k2));
	EXPECT(m1 == m2 && k1 == k2,
	       "seed %" PRIu64 " twice: survivors %#" PRIx64 " then %#" PRIx64, d->seed, m1, m2);
	for (int i = 0; i < 8; i++) {
		uint64_t s = (uint64_t)i + 1;

		REQUIRE(random_trial(d, s, &masks[i], &kept));
		/* Each write survives with probability 1/2: all or none is 2^-63. */
		EXPECT(kept > 0 && kept < NW, "seed %" PRIu64 ": %" PRIu64 " of %d survived", s,
		       kept, NW);
		if (i && masks[i] != masks[0])
			all_same = false;
	}
	EXPECT(!all_same, "seeds 1..8 all kept the same writes %#" PRIx64, masks[0]);
	t_note("%s: seed %" PRIu64 " keeps %" PRIu64 " of %d (%#" PRIx64 ")",
	       d->file ? "file" : "ram", d->seed, k1, NW, m1);
out:
	zvfs_bdev_fault_power_on(d->b);
	t_end();
}

static void check_stats(struct fdev *d)
{
	struct zvfs_bdev_fault_stats s0, s1;
	const uint64_t a = sseed(d, 60), base = BL_STATS;
	int rule = -1;

	t_begin("stats: submitted, failed, unflushed, flushes add up");
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	REQUIRE(get_stats(d, &s0));
	EXPECT(s0.unflushed == 0, "unflushed %" PRIu64 " after a flush", s0.unflushed);
	for (int i = 0; i < 5; i++)
		REQUIRE(done_with(do_write(d, base + (uint64_t)i, 1, a), 0, "write"));
	for (int i = 0; i < 3; i++)
		REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 2), 0, "read"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 5, 1), 0, "write_zeroes"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_DISCARD, base + 6, 1), 0, "discard"));
	REQUIRE(get_stats(d, &s1));
	EXPECT(s1.unflushed == 7, "unflushed %" PRIu64 ", want 7", s1.unflushed);
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	/* Refused by the core before the device sees it: not counted. */
	EXPECT(zvfs_bdev_read(d->ch, d->rbuf, d->bs / 2, 0, t_req_cb, NULL) == -EINVAL,
	       "misaligned read accepted");
	EXPECT(zvfs_bdev_fault_fail_nth(d->b, ZVFS_BDEV_IO_READ, 1, EIO) == 0, "fail_nth");
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_READ, base, 1), -EIO, "failed read"));
	REQUIRE(done_with(do_write(d, base + 7, 1, a), 0, "write"));
	REQUIRE(done_with(do_write(d, base + 8, 1, a), 0, "write"));
	rule = zvfs_bdev_fault_fail_range(d->b, ZVFS_BDEV_IO_FLUSH, 0, d->bs, EIO);
	EXPECT(rule >= 0, "fail_range = %s", t_err(rule));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), -EIO, "failed flush"));
	REQUIRE(get_stats(d, &s1));
	/* 5 W + 3 R + WZ + DISC + FLUSH + R(failed) + 2 W + FLUSH(failed) = 15. */
	EXPECT(s1.submitted - s0.submitted == 15, "submitted grew by %" PRIu64 ", want 15",
	       s1.submitted - s0.submitted);
	EXPECT(s1.failed - s0.failed == 2, "failed grew by %" PRIu64 ", want 2",
	       s1.failed - s0.failed);
	EXPECT(s1.flushes - s0.flushes == 1, "flushes grew by %" PRIu64 ", want 1 (one failed)",
	       s1.flushes - s0.flushes);
	EXPECT(s1.unflushed == 2, "unflushed %" PRIu64 " after a failed flush, want 2",
	       s1.unflushed);
	zvfs_bdev_fault_clear(d->b);
	rule = -1;
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	REQUIRE(get_stats(d, &s1));
	EXPECT(s1.unflushed == 0 && s1.flushes - s0.flushes == 2,
	       "after a good flush: unflushed %" PRIu64 ", flushes +%" PRIu64, s1.unflushed,
	       s1.flushes - s0.flushes);
	{
		const uint64_t want[9] = {a, a, a, a, a, 0, 0, a, a};

		REQUIRE(blocks_match(d, d->b, base, 9, want, "stats region"));
	}
out:
	zvfs_bdev_fault_clear(d->b);
	t_end();
}

/* ---- on-disk checks (file inner device) -------------------------------- */

static int open_dev(const char *spec, struct zvfs_bdev **b)
{
	char err[256] = "";
	int rc = zvfs_bdev_open(spec, b, err, sizeof(err));

	if (rc)
		t_failf("open %s = %s: %s", spec, t_err(rc), err);
	return rc;
}

static int reopen_fault(struct fdev *d)
{
	int rc = open_dev(d->spec, &d->b);

	if (rc == 0)
		rc = zvfs_bdev_get_channel(d->b, &d->ch);
	return rc;
}

static int close_fault(struct fdev *d)
{
	int rc = zvfs_bdev_close(d->b);

	d->b = NULL;
	d->ch = NULL;
	if (rc)
		t_failf("close = %s", t_err(rc));
	return rc;
}

static void check_on_disk(struct fdev *d)
{
	const uint64_t z = sseed(d, 70), f = sseed(d, 71), u = sseed(d, 72), v = sseed(d, 73);
	const uint64_t base = BL_DISK;
	struct zvfs_bdev *inner = NULL;
	uint64_t dropped = 0, kept = 0, mask = 0, want[NW + 1];

	t_begin("file: on disk after a power cut is exactly what was flushed or kept");
	/* Reopens find the file in place: no create, no size. */
	snprintf(d->spec, sizeof(d->spec), "fault:%s", d->inner);
	REQUIRE(done_with(do_write(d, base, 40, z), 0, "baseline"));
	REQUIRE(done_with(do_write(d, base, 16, f), 0, "write F"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_FLUSH, 0, 0), 0, "flush"));
	REQUIRE(done_with(do_write(d, base + 8, 16, u), 0, "write U (unflushed)"));
	REQUIRE(done_with(do_op(d, ZVFS_BDEV_IO_WRITE_ZEROES, base + 30, 2), 0,
			  "write_zeroes (unflushed)"));

	/* While the fault device is open, the file holds only what was flushed. */
	REQUIRE(open_dev(d->inner, &inner) == 0);
	for (int i = 0; i < 40; i++)
		want[i] = i < 16 ? f : z;
	REQUIRE(blocks_match(d, inner, base, 40, want, "inner device before the cut"));
	EXPECT(zvfs_bdev_close(inner) == 0, "close inner");
	inner = NULL;

	EXPECT(zvfs_bdev_fault_power_cut(d->b, ZVFS_BDEV_CUT_DROP_ALL, 0, &dropped, &kept) == 0,
	       "power_cut");
	EXPECT(dropped == 2 && kept == 0, "dropped %" PRIu64 " kept %" PRIu64, dropped, kept);
	REQUIRE(close_fault(d) == 0);
	REQUIRE(open_dev(d->inner, &inner) == 0);
	REQUIRE(blocks_match(d, inner, base, 40, want, "on disk after DROP_ALL and close"));
	EXPECT(zvfs_bdev_close(inner) == 0, "close inner");
	inner = NULL;

	/* RANDOM: what the fault device showed after power_on is what is on disk. */
	REQUIRE(reopen_fault(d) == 0);
	REQUIRE(random_trial(d, d->seed ^ 0x5eed, &mask, &kept));
	REQUIRE(close_fault(d) == 0);
	REQUIRE(open_dev(d->inner, &inner) == 0);
	for (int b = 0; b <= NW; b++)
		want[b] = expected_block(d, mask, b, sseed(d, 50));
	REQUIRE(blocks_match(d, inner, BL_RANDOM, NW + 1, want, "on disk after RANDOM"));
	EXPECT(zvfs_bdev_close(inner) == 0, "close inner");
	inner = NULL;
	t_note("file: on disk after RANDOM: %" PRIu64 " of %d writes (%#" PRIx64 ")", kept, NW,
	       mask);

	/* An orderly close writes the cache through, like a disk's shutdown flush. */
	REQUIRE(reopen_fault(d) == 0);
	REQUIRE(done_with(do_write(d, base + 32, 8, v), 0, "write V (unflushed)"));
	REQUIRE(close_fault(d) == 0);
	REQUIRE(open_dev(d->inner, &inner) == 0);
	for (int i = 0; i < 8; i++)
		want[i] = v;
	REQUIRE(blocks_match(d, inner, base + 32, 8, want, "orderly close: write V on disk"));
	EXPECT(zvfs_bdev_close(inner) == 0, "close inner");
	inner = NULL;
	REQUIRE(reopen_fault(d) == 0);
out:
	if (inner)
		zvfs_bdev_close(inner);
	t_end();
}

/* ---- driver ------------------------------------------------------------- */

static int run_device(struct fdev *d)
{
	char err[256] = "";
	int rc;

	t_begin(d->label);
	rc = zvfs_bdev_open(d->spec, &d->b, err, sizeof(err));
	EXPECT(rc == 0, "open %s = %s: %s", d->spec, t_err(rc), err);
	rc = zvfs_bdev_get_channel(d->b, &d->ch);
	EXPECT(rc == 0, "get_channel = %s", t_err(rc));
	d->bs = zvfs_bdev_get_geometry(d->b)->block_size;
	EXPECT(d->bs * (uint64_t)BUF_BLOCKS <= 4 * MiB, "block size %u", d->bs);
	d->wbuf = zvfs_bdev_buf_alloc(d->b, BUF_BLOCKS * (size_t)d->bs);
	d->rbuf = zvfs_bdev_buf_alloc(d->b, BUF_BLOCKS * (size_t)d->bs);
	EXPECT(d->wbuf && d->rbuf, "out of memory");
out:
	if (!t_end())
		return -1;

	check_identity(d);
	check_fail_nth(d);
	check_fail_range(d);
	check_failed_write(d);
	check_cache_visible(d);
	check_drop_all(d);
	check_random(d);
	check_stats(d);
	if (d->file) {
		/* The buffers belong to the device: move them to plain memory first. */
		uint8_t *w = aligned_alloc(4096, BUF_BLOCKS * (size_t)d->bs);
		uint8_t *r = aligned_alloc(4096, BUF_BLOCKS * (size_t)d->bs);

		zvfs_bdev_buf_free(d->b, d->wbuf);
		zvfs_bdev_buf_free(d->b, d->rbuf);
		d->wbuf = w;
		d->rbuf = r;
		if (w && r)
			check_on_disk(d);
		if (d->b) {
			rc = zvfs_bdev_close(d->b);
			t_assert("close", rc == 0, "close = %s", t_err(rc));
		}
		free(w);
		free(r);
		return 0;
	}
	zvfs_bdev_buf_free(d->b, d->wbuf);
	zvfs_bdev_buf_free(d->b, d->rbuf);
	rc = zvfs_bdev_close(d->b);
	t_assert("close", rc == 0, "close = %s", t_err(rc));
	return 0;
}

int main(void)
{
	struct fdev ram = {.label = "open fault:ram:size=16M"};
	struct fdev file = {.label = "open fault:uring:FILE,size=16M,create", .file = true};
	uint64_t seed = t_seed();
	char *dir;

	check_not_fault();

	snprintf(ram.spec, sizeof(ram.spec), "fault:ram:size=16M");
	ram.seed = t_mix(seed ^ 1);
	run_device(&ram);

	dir = t_mkdtemp(NULL, "fault");
	if (!dir) {
		t_assert("temporary directory", false, "mkdtemp: %s", strerror(errno));
		return t_summary("fault");
	}
	snprintf(file.path, sizeof(file.path), "%s/img", dir);
	snprintf(file.spec, sizeof(file.spec), "fault:uring:%s,size=16M,create", file.path);
	snprintf(file.inner, sizeof(file.inner), "uring:%s", file.path);
	file.seed = t_mix(seed ^ 2);
	run_device(&file);
	t_rmtree(dir);
	free(dir);
	return t_summary("fault");
}
