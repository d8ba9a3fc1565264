/* SPDX-License-Identifier: MIT */
/*
 * Crash tests of the blobstore: random workloads on a fault-injection RAM device (unflushed
 * writes are volatile), cut by a simulated power failure at random points, some in the
 * middle of an operation (the nth write/flush of the device fails, then the power goes);
 * a quarter of the runs lose power a second time in the middle of the recovery.
 * The in-memory store is abandoned without unload and the store is loaded again (recovery).
 *
 *   test_crash [SEEDS [MODE [CLUSTER]]]   SEEDS seeds (default 200), each with DROP_ALL
 *                                        and RANDOM cuts (MODE 0 / 1: only one; -1 both);
 *                                        CLUSTER 4096: 4 KiB clusters, blobs of up to 1100
 *                                        clusters (three extent pages)
 *
 * Checks after every cut: the load succeeds with no bad blob; every blob that existed at its
 * last sync exists with exactly its synced size and xattrs or the ones it had at the cut,
 * and every 4 KiB block holds its synced content or something written after that sync
 * (never-written blocks read zero); no cluster is owned twice; the free count equals a
 * recount; a thick blob over all free clusters reads zero (the zero guarantee).  Exit 0 pass, 1 fail.
 */
#include "blob/blob_internal.h"
#include "blobtest.h"
#include "util/log.h"

#define KiB 1024ull
/* geometry of a run: 64 KiB clusters of 16 blocks (default) or 4 KiB clusters, so that blobs
 * span several extent pages (512 clusters each) */
static uint64_t CS = 64 * KiB;
static unsigned BPC = 16;
static unsigned MAXCL = 12;
#define BLK   4096u
#define MAXB  6
#define MAXBK 1280
#define NCAND 6
#define NX    4

struct mx {
	bool set;
	uint16_t len;
	char val[48];
};

struct mblob {
	bool live;     /* created (create returned 0) */
	bool deleting; /* a delete was started: may be gone */
	zvfs_blob_id id;
	struct zvfs_blob *h;
	bool thin;
	uint64_t synced_size, cur_size;
	uint32_t synced[MAXBK], cur[MAXBK]; /* block seeds, 0 = zeroes */
	uint32_t cand[MAXBK][NCAND];	    /* written since the last sync */
	uint8_t ncand[MAXBK];
	bool anyv[MAXBK]; /* too many candidates: not checked */
	struct mx sx[NX], cx[NX];
};

struct world {
	struct zvfs_bdev *bdev;
	struct zvfs_bs *bs;
	struct mblob b[MAXB];
	unsigned extra_ok; /* creates that failed: their blob may exist */
	uint64_t rng;
	uint32_t next_seed;
	char *buf;
};

static uint64_t rnd(struct world *w)
{
	w->rng = t_mix(w->rng + 0x9E3779B97F4A7C15ull);
	return w->rng;
}

static const char *xname(int i)
{
	static const char *const n[NX] = {"zvfs.a", "zvfs.b", "int.c", "int.d"};

	return n[i];
}

static void add_cand(struct mblob *m, unsigned blk, uint32_t seed)
{
	for (unsigned i = 0; i < m->ncand[blk]; i++)
		if (m->cand[blk][i] == seed)
			return;
	if (m->ncand[blk] == NCAND)
		m->anyv[blk] = true;
	else
		m->cand[blk][m->ncand[blk]++] = seed;
}

static void model_synced(struct mblob *m)
{
	m->synced_size = m->cur_size;
	memcpy(m->synced, m->cur, sizeof(m->cur));
	memset(m->ncand, 0, sizeof(m->ncand));
	memset(m->anyv, 0, sizeof(m->anyv));
	memcpy(m->sx, m->cx, sizeof(m->cx));
}

static void set_blocks(struct mblob *m, unsigned from, unsigned to, uint32_t seed)
{
	for (unsigned k = from; k < to && k < MAXBK; k++) {
		m->cur[k] = seed;
		add_cand(m, k, seed);
	}
}

/* One random operation.  Returns its rc (the workload stops at the first error). */
static int op(struct world *w, int *kind)
{
	struct mblob *m = NULL;
	unsigned r = (unsigned)(rnd(w) % 100), i = (unsigned)(rnd(w) % MAXB);
	int rc = 0;

	m = &w->b[i];
	if (getenv("ZVFS_CRASH_TRACE"))
		t_note("  blob slot %u id %#" PRIx64 " live %d size %" PRIu64 " thin %d seed %u", i,
		       m->id, m->live, m->cur_size, m->thin, w->next_seed);
	if (!m->live || m->deleting) {
		/* create */
		struct zvfs_blob_opts o;
		struct zvfs_blob_xattr x = {"zvfs.a", "created", 7};

		*kind = 0;
		if (m->deleting)
			return 0;
		memset(m, 0, sizeof(*m));
		zvfs_blob_opts_init(&o);
		o.num_clusters = rnd(w) % (MAXCL / 2);
		o.thin = rnd(w) % 2;
		o.xattrs = &x;
		o.nxattrs = 1;
		rc = zvfs_blob_create(w->bs, &o, &m->id);
		if (rc < 0) {
			w->extra_ok++;
			return rc;
		}
		m->live = true;
		m->thin = o.thin;
		m->cur_size = o.num_clusters;
		m->cx[0] = (struct mx){true, 7, "created"};
		model_synced(m);
		rc = zvfs_blob_open(w->bs, m->id, &m->h);
		if (rc < 0)
			t_note("open after create: %s", t_err(rc));
		return rc;
	}
	if (r < 35) { /* write */
		unsigned nblk = (unsigned)(m->cur_size * BPC), first, n;
		uint32_t seed = ++w->next_seed;

		*kind = 1;
		if (nblk == 0)
			return 0;
		first = (unsigned)(rnd(w) % nblk);
		n = 1 + (unsigned)(rnd(w) % 24);
		if (first + n > nblk)
			n = nblk - first;
		for (unsigned k = 0; k < n; k++)
			t_fill(w->buf + (size_t)k * BLK, BLK, seed, (uint64_t)(first + k) * BLK);
		set_blocks(m, first, first + n, seed);
		return zvfs_blob_write_sync(m->h, w->buf, (uint64_t)n * BLK, (uint64_t)first * BLK);
	}
	if (r < 45) { /* resize */
		uint64_t ns = rnd(w) % (MAXCL + 1);

		*kind = 2;
		rc = zvfs_blob_resize(m->h, ns);
		if (rc == 0) {
			if (ns < m->cur_size)
				set_blocks(m, (unsigned)(ns * BPC), MAXBK, 0);
			m->cur_size = ns;
		}
		return rc;
	}
	if (r < 60) { /* xattr set / remove */
		int x = (int)(rnd(w) % NX);

		*kind = 3;
		if (rnd(w) % 3 == 0) {
			rc = zvfs_blob_remove_xattr(m->h, xname(x), x >= 2);
			if (rc == -ENOENT && !m->cx[x].set)
				rc = 0;
			m->cx[x].set = false;
			return rc;
		}
		m->cx[x].set = true;
		m->cx[x].len = (uint16_t)snprintf(m->cx[x].val, sizeof(m->cx[x].val), "v%u",
						  ++w->next_seed);
		return zvfs_blob_set_xattr(m->h, xname(x), m->cx[x].val, m->cx[x].len, x >= 2);
	}
	if (r < 75) { /* sync */
		*kind = 4;
		rc = zvfs_blob_sync_md(m->h);
		if (rc == 0)
			model_synced(m);
		return rc;
	}
	if (r < 80) { /* close (syncs) and reopen */
		*kind = 5;
		/* close syncs dirty metadata only; overwrites need the flush of sync_md */
		rc = zvfs_blob_sync_md(m->h);
		if (rc < 0)
			return rc;
		rc = zvfs_blob_close(m->h);
		m->h = NULL;
		if (rc < 0)
			return rc;
		model_synced(m);
		return zvfs_blob_open(w->bs, m->id, &m->h);
	}
	if (r < 86) { /* close and delete */
		*kind = 6;
		rc = zvfs_blob_sync_md(m->h);
		if (rc < 0)
			return rc;
		rc = zvfs_blob_close(m->h);
		m->h = NULL;
		if (rc < 0)
			return rc;
		model_synced(m);
		m->deleting = true;
		rc = zvfs_bs_delete_blob(w->bs, m->id);
		if (rc == 0)
			m->live = false, m->deleting = false;
		return rc;
	}
	if (r < 90) { /* remount: unload cleanly, load again (the clean path) */
		*kind = 8;
		for (int j = 0; j < MAXB; j++) {
			struct mblob *o = &w->b[j];

			if (!o->h)
				continue;
			rc = zvfs_blob_sync_md(o->h);
			if (rc == 0)
				model_synced(o);
			if (rc == 0)
				rc = zvfs_blob_close(o->h);
			o->h = NULL;
			if (rc < 0)
				return rc;
		}
		rc = zvfs_bs_unload(w->bs);
		if (rc < 0)
			return rc; /* the store is still there: abandoned after the cut */
		w->bs = NULL;
		rc = bt_load(w->bdev, false, &w->bs);
		if (rc < 0) {
			t_failf("load after a clean unload: %s", t_err(rc));
			return rc;
		}
		w->bs->win_margin = 1;
		for (int j = 0; j < MAXB; j++) {
			struct mblob *o = &w->b[j];

			if (o->live && !o->deleting) {
				rc = zvfs_blob_open(w->bs, o->id, &o->h);
				if (rc < 0)
					return rc;
			}
		}
		return 0;
	}
	{ /* unmap or write_zeroes */
		unsigned ncl = (unsigned)m->cur_size, c, n;

		*kind = 7;
		if (ncl == 0)
			return 0;
		c = (unsigned)(rnd(w) % ncl);
		n = 1 + (unsigned)(rnd(w) % 3);
		if (c + n > ncl)
			n = ncl - c;
		if (rnd(w) % 2) {
			set_blocks(m, c * BPC, (c + n) * BPC, 0);
			return zvfs_blob_unmap_sync(m->h, (uint64_t)c * CS, (uint64_t)n * CS);
		}
		/* partial clusters: the first block stays */
		if (BPC == 1) {
			set_blocks(m, c, c + n, 0);
			return zvfs_blob_write_zeroes_sync(m->h, (uint64_t)c * CS,
							   (uint64_t)n * CS);
		}
		set_blocks(m, c * BPC + 1, (c + n) * BPC, 0);
		return zvfs_blob_write_zeroes_sync(m->h, (uint64_t)c * CS + BLK,
						   (uint64_t)n * CS - BLK);
	}
}

static bool block_ok(struct world *w, const struct mblob *m, unsigned k)
{
	const char *p = w->buf;
	uint64_t off = (uint64_t)k * BLK;

	if (m->anyv[k])
		return true;
	if (m->synced[k] == 0 ? t_check_zero(p, BLK) < 0 : t_check(p, BLK, m->synced[k], off) < 0)
		return true;
	for (unsigned i = 0; i < m->ncand[k]; i++) {
		uint32_t s = m->cand[k][i];

		if (s == 0 ? t_check_zero(p, BLK) < 0 : t_check(p, BLK, s, off) < 0)
			return true;
	}
	return false;
}

static bool xattrs_match(struct zvfs_blob *h, const struct mx *x)
{
	char v[64];

	for (int i = 0; i < NX; i++) {
		int rc = zvfs_blob_get_xattr(h, xname(i), v, sizeof(v), i >= 2);

		if (!x[i].set ? rc != -ENOENT : rc != x[i].len || memcmp(v, x[i].val, x[i].len))
			return false;
	}
	return true;
}

/* Verify the recovered store against the model; returns a reason or NULL. */
static const char *verify(struct world *w, char *why, size_t whylen)
{
	struct zvfs_bs *bs = w->bs;
	uint64_t total = bs->l.total_clusters, owned = 0;
	uint8_t *seen = calloc(total, 1);
	struct zvfs_bs_stats st;
	zvfs_blob_id id;
	unsigned extra = 0;
	const char *res = NULL;
	int rc;

	zvfs_bs_get_stats(bs, &st);
	if (st.bad_blobs) {
		res = "bad blobs after recovery";
		goto out;
	}
	for (rc = zvfs_bs_next_blob(bs, ZVFS_BLOBID_INVALID, &id); rc == 0;
	     rc = zvfs_bs_next_blob(bs, id, &id)) {
		struct mblob *m = NULL;
		struct zvfs_blob *h;
		uint64_t size;

		for (int i = 0; i < MAXB; i++)
			if ((w->b[i].live || w->b[i].deleting) && w->b[i].id == id)
				m = &w->b[i];
		rc = zvfs_blob_open(bs, id, &h);
		if (rc < 0) {
			snprintf(why, whylen, "open %#" PRIx64 ": %s", id, t_err(rc));
			res = why;
			goto out;
		}
		size = zvfs_blob_get_num_clusters(h);
		for (uint64_t cl = 0; cl < size; cl++) {
			uint32_t c = blob_map_get(h, cl);

			if (!c)
				continue;
			if (c >= total || seen[c]++) {
				snprintf(why, whylen, "cluster %u owned twice", c);
				res = why;
			}
			owned++;
		}
		if (!m) {
			extra++;
		} else {
			if (size != m->synced_size && size != m->cur_size) {
				snprintf(why, whylen,
					 "blob %#" PRIx64 " size %" PRIu64 ", synced %" PRIu64
					 " current %" PRIu64,
					 id, size, m->synced_size, m->cur_size);
				res = why;
			}
			if (!xattrs_match(h, m->sx) && !xattrs_match(h, m->cx)) {
				snprintf(why, whylen, "blob %#" PRIx64 " xattrs", id);
				res = why;
			}
			for (unsigned k = 0; k < size * BPC && !res; k++) {
				rc = zvfs_blob_read_sync(h, w->buf, BLK, (uint64_t)k * BLK);
				if (rc < 0 || !block_ok(w, m, k)) {
					if (getenv("ZVFS_CRASH_TRACE"))
						t_note("zero: %d, cluster %u",
						       t_check_zero(w->buf, BLK) < 0,
						       blob_map_get(h, k / BPC));
					snprintf(why, whylen,
						 "blob %#" PRIx64 " block %u (size %" PRIu64
						 "): %s, synced seed %u, %u later",
						 id, k, size, rc < 0 ? t_err(rc) : "wrong data",
						 m->synced[k], m->ncand[k]);
					res = why;
				}
			}
			m->h = h; /* marks it found */
		}
		if (!m)
			zvfs_blob_close(h);
		if (res)
			goto out;
	}
	for (int i = 0; i < MAXB; i++) {
		struct mblob *m = &w->b[i];

		if (m->live && !m->deleting && !m->h) {
			snprintf(why, whylen, "blob %#" PRIx64 " lost", m->id);
			res = why;
			goto out;
		}
		if (m->h) {
			zvfs_blob_close(m->h);
			m->h = NULL;
		}
	}
	if (extra > w->extra_ok) {
		res = "unexpected blobs";
		goto out;
	}
	if (st.total_clusters - st.free_clusters != bs->l.md_clusters + owned) {
		snprintf(why, whylen, "used %" PRIu64 " != recount %" PRIu64,
			 st.total_clusters - st.free_clusters, bs->l.md_clusters + owned);
		res = why;
	}
out:
	for (int i = 0; i < MAXB; i++) {
		if (w->b[i].h) {
			zvfs_blob_close(w->b[i].h);
			w->b[i].h = NULL;
		}
	}
	free(seen);
	return res;
}

/*
 * The zero guarantee after the crash: a thick blob over every free cluster must read zero
 * (a cluster that got data but whose allocation was lost is free now, and not zero unless
 * the recovery zeroed it).
 */
static const char *zero_probe(struct world *w, char *why, size_t whylen)
{
	struct zvfs_bdev *bdev = w->bdev;
	const uint64_t chunk = 1ull << 20;
	struct zvfs_bs_stats st;
	struct zvfs_blob *h = NULL;
	zvfs_blob_id id;
	const char *res = NULL;
	char *buf;
	int rc;

	zvfs_bs_get_stats(w->bs, &st);
	if (st.free_clusters == 0)
		return NULL;
	buf = zvfs_bdev_buf_alloc(bdev, chunk);
	{
		struct zvfs_blob_opts o;

		zvfs_blob_opts_init(&o);
		o.num_clusters = st.free_clusters;
		rc = zvfs_blob_create(w->bs, &o, &id);
	}
	if (rc == 0)
		rc = zvfs_blob_open(w->bs, id, &h);
	if (rc < 0 || !buf) {
		snprintf(why, whylen, "zero probe: %s", t_err(rc));
		res = why;
		goto out;
	}
	for (uint64_t off = 0; off < st.free_clusters * CS && !res; off += chunk) {
		uint64_t len =
			st.free_clusters * CS - off < chunk ? st.free_clusters * CS - off : chunk;
		ssize_t bad;

		rc = zvfs_blob_read_sync(h, buf, len, off);
		bad = rc == 0 ? t_check_zero(buf, len) : 0;
		if (rc < 0 || bad >= 0) {
			snprintf(why, whylen, "free cluster not zero after recovery (cluster %u)",
				 blob_map_get(h, (off + (uint64_t)(bad > 0 ? bad : 0)) / CS));
			res = why;
		}
	}
	zvfs_blob_close(h);
	h = NULL;
	if (!res && zvfs_bs_delete_blob(w->bs, id) < 0)
		res = "zero probe: delete";
out:
	if (h)
		zvfs_blob_close(h);
	zvfs_bdev_buf_free(bdev, buf);
	return res;
}

struct counts {
	unsigned runs, mid_op, between, recovery_cuts, failed_ops[9];
};

static bool one_run(uint64_t seed, enum zvfs_bdev_power_cut mode, struct counts *cnt)
{
	struct world w = {.rng = seed * 2 + (unsigned)mode};
	unsigned nops = 10 + (unsigned)(rnd(&w) % 60), cut = (unsigned)(rnd(&w) % nops);
	bool inject = rnd(&w) % 3 != 0, fired = false;
	char why[256];
	const char *bad = NULL;
	int rc, kind = 0;

	w.bdev = bt_open(BPC == 1 ? "fault:ram:size=32M" : "fault:ram:size=8M");
	if (!w.bdev)
		return false;
	w.buf = zvfs_bdev_buf_alloc(w.bdev, 24 * BLK);
	rc = bt_init(w.bdev, (uint32_t)CS, BPC == 1 ? 1024 : 0, &w.bs);
	if (rc == 0) {
		w.bs->win_margin = 1; /* grow the allocation window often */
		rc = bs_window_tighten(w.bs);
	}
	if (rc < 0 || !w.buf) {
		t_failf("seed %" PRIu64 ": init: %s", seed, t_err(rc));
		goto out;
	}
	for (unsigned i = 0;; i++) {
		if (inject ? i >= cut + 5 : i > cut)
			break;
		if (i == cut && inject)
			zvfs_bdev_fault_fail_nth(w.bdev,
						 ZVFS_BDEV_IO_WRITE | ZVFS_BDEV_IO_FLUSH |
							 ZVFS_BDEV_IO_WRITE_ZEROES |
							 ZVFS_BDEV_IO_DISCARD,
						 1 + rnd(&w) % 8, EIO);
		rc = op(&w, &kind);
		if (getenv("ZVFS_CRASH_TRACE")) {
			struct zvfs_bs_stats st;
			uint64_t own = 0;

			zvfs_bs_get_stats(w.bs, &st);
			for (int j = 0; j < MAXB; j++)
				if (w.b[j].h)
					own += zvfs_blob_get_num_allocated_clusters(w.b[j].h);
			t_note("op %u kind %d rc %d used %" PRIu64 " owned by open blobs %" PRIu64,
			       i, kind, rc,
			       st.total_clusters - st.free_clusters - w.bs->l.md_clusters, own);
		}
		if (rc < 0) {
			fired = true;
			cnt->failed_ops[kind]++;
			break;
		}
	}
	zvfs_bdev_fault_clear(w.bdev);
	zvfs_bdev_fault_power_cut(w.bdev, mode, seed, NULL, NULL);
	cnt->runs++;
	if (fired)
		cnt->mid_op++;
	else
		cnt->between++;
	if (w.bs)
		zvfs_bs_abandon(w.bs);
	w.bs = NULL;
	for (int i = 0; i < MAXB; i++)
		w.b[i].h = NULL;
	zvfs_bdev_fault_power_on(w.bdev);
	if (rnd(&w) % 4 == 0) {
		/* a second power failure in the middle of the recovery (its zeroing writes) */
		zvfs_bdev_fault_fail_nth(w.bdev,
					 ZVFS_BDEV_IO_WRITE | ZVFS_BDEV_IO_FLUSH |
						 ZVFS_BDEV_IO_WRITE_ZEROES | ZVFS_BDEV_IO_DISCARD,
					 1 + rnd(&w) % 4, EIO);
		if (bt_load(w.bdev, false, &w.bs) == 0)
			zvfs_bs_abandon(w.bs);
		w.bs = NULL;
		zvfs_bdev_fault_clear(w.bdev);
		zvfs_bdev_fault_power_cut(w.bdev, mode, seed + 7, NULL, NULL);
		zvfs_bdev_fault_power_on(w.bdev);
		cnt->recovery_cuts++;
	}
	rc = bt_load(w.bdev, false, &w.bs);
	if (rc < 0) {
		t_failf("seed %" PRIu64 " mode %d: load after the cut: %s", seed, mode, t_err(rc));
		goto out;
	}
	bad = verify(&w, why, sizeof(why));
	if (bad) {
		t_failf("seed %" PRIu64 " mode %d (cut at op %u, %s): %s", seed, mode, cut,
			fired ? "mid-op" : "between ops", bad);
		goto out;
	}
	bad = zero_probe(&w, why, sizeof(why));
	if (bad) {
		t_failf("seed %" PRIu64 " mode %d (cut at op %u, %s): %s", seed, mode, cut,
			fired ? "mid-op" : "between ops", bad);
		goto out;
	}
	rc = zvfs_bs_unload(w.bs);
	w.bs = NULL;
	if (rc < 0)
		t_failf("seed %" PRIu64 ": unload after recovery: %s", seed, t_err(rc));
out:
	if (w.bs)
		zvfs_bs_abandon(w.bs);
	if (w.buf)
		zvfs_bdev_buf_free(w.bdev, w.buf);
	zvfs_bdev_close(w.bdev);
	return !bad && rc >= 0;
}

int main(int argc, char **argv)
{
	unsigned seeds = argc > 1 ? (unsigned)atoi(argv[1]) : 200;
	int only_mode = argc > 2 ? atoi(argv[2]) : -1;

	if (argc > 3 && atoi(argv[3]) == 4096) {
		CS = 4096;
		BPC = 1;
		MAXCL = 1100; /* three extent pages */
	}
	uint64_t base = getenv("ZVFS_TEST_SEED") ? strtoull(getenv("ZVFS_TEST_SEED"), NULL, 0) : 1;
	struct counts c = {0};

	if (!getenv("ZVFS_LOG"))
		zvfs_log_set_level(ZVFS_LOG_ERROR); /* recovery logs are expected here */
	t_begin("power cuts during random workloads: DROP_ALL and RANDOM");
	for (unsigned s = 0; s < seeds && t_running(); s++) {
		if (only_mode != 1)
			one_run(base + s, ZVFS_BDEV_CUT_DROP_ALL, &c);
		if (t_running() && only_mode != 0)
			one_run(base + s, ZVFS_BDEV_CUT_RANDOM, &c);
	}
	t_note("%u seeds from %" PRIu64 ", %u cuts: %u in the middle of an operation, %u between "
	       "operations",
	       seeds, base, c.runs, c.mid_op, c.between);
	t_note("%u of them cut again during the recovery", c.recovery_cuts);
	t_note("operations cut: create %u, write %u, sync %u, close %u, delete %u, unmap/zeroes "
	       "%u, "
	       "remount %u",
	       c.failed_ops[0], c.failed_ops[1], c.failed_ops[4], c.failed_ops[5], c.failed_ops[6],
	       c.failed_ops[7], c.failed_ops[8]);
	t_end();
	return t_summary("test_crash");
}
