/* SPDX-License-Identifier: MIT */
/*
 * The file layer's data path (zvfs/fs.h "data").
 *
 * Map:
 *   1. helpers        iovec cursor, batched blob I/O on the caller's channel
 *   2. capacity       growing the blob in large steps
 *   3. pages          loading a page, filling a run of missing pages
 *   4. write-back     coalesced runs of dirty pages, several in flight
 *   5. read / write   cached and direct paths
 *   6. size changes   truncate, fallocate, zeroing ranges
 *   7. sync, cache control, stat, seek
 *
 * Invariant that keeps holes and extensions reading zero: on the device,
 * every byte past a file's logical size is zero (truncate zeroes the tail
 * page and unmaps the rest; writes past the end carry zero padding in their
 * pages; after a crash, opening the file restores it: fs_file_scrub_tail()).
 *
 * Locking: everything runs under file->mu except the data transfer of
 * direct I/O and of cached-read misses, which release it (counted in
 * dio_readers / dio_writers / nloading, see fs_internal.h); writers and size
 * changes wait for those counts (io_drain()), readers that meet a loading
 * page wait and restart, so reads never tear writes.
 */
#include <errno.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_internal.h"
#include "util/log.h"

/* ---- 1. helpers ------------------------------------------------------------------ */

struct iovcur {
	const struct iovec *iov;
	int cnt;
	int i;
	size_t off;
};

static void cur_init(struct iovcur *c, const struct iovec *iov, int cnt)
{
	c->iov = iov;
	c->cnt = cnt;
	c->i = 0;
	c->off = 0;
}

/* Move n bytes between the cursor and buf (to_iov: buf -> iov); buf NULL = zeroes. */
static void cur_copy(struct iovcur *c, void *buf, size_t n, bool to_iov)
{
	uint8_t *b = buf;

	while (n && c->i < c->cnt) {
		size_t avail = c->iov[c->i].iov_len - c->off, k = n < avail ? n : avail;
		uint8_t *u = (uint8_t *)c->iov[c->i].iov_base + c->off;

		if (to_iov) {
			if (b)
				memcpy(u, b, k);
			else
				memset(u, 0, k);
		} else {
			memcpy(b, u, k);
		}
		if (b)
			b += k;
		n -= k;
		c->off += k;
		if (c->off == c->iov[c->i].iov_len) {
			c->i++;
			c->off = 0;
		}
	}
}

static void cur_skip(struct iovcur *c, uint64_t n)
{
	while (n && c->i < c->cnt) {
		size_t avail = c->iov[c->i].iov_len - c->off, k = n < avail ? n : avail;

		n -= k;
		c->off += k;
		if (c->off == c->iov[c->i].iov_len) {
			c->i++;
			c->off = 0;
		}
	}
}

static int iov_total(const struct iovec *iov, int cnt, uint64_t *total)
{
	uint64_t t = 0;

	if (cnt < 0 || (cnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len > SSIZE_MAX - t)
			return -EINVAL;
		t += iov[i].iov_len;
	}
	*total = t;
	return 0;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

struct batch {
	unsigned pending;
	int err;
};

struct run {
	struct batch *b;
	int status;
	uint32_t first; /* index into the page array */
	uint32_t n;
};

static void run_done(void *arg, int status)
{
	struct run *r = arg;

	r->status = status;
	r->b->pending--;
	if (status < 0 && !r->b->err)
		r->b->err = status;
}

static int batch_wait(struct zvfs_bs_channel *ch, struct batch *b)
{
	while (b->pending) {
		int rc = zvfs_bs_wait(ch);

		if (rc < 0) {
			ZVFS_ERR("channel broken while waiting for %u requests: %s", b->pending,
				 strerror(-rc));
			return rc;
		}
	}
	return b->err;
}

/* What io_drain() waits for. */
#define DRAIN_DIO_W 0x1u /* direct writes moving data without mu */
#define DRAIN_DIO_R 0x2u /* direct reads moving data without mu */
#define DRAIN_LOADS 0x4u /* cached reads filling pages without mu */
#define DRAIN_ALL   0x7u

/* Wait (mu held, released while waiting) until none of what is named moves data. */
static void io_drain(struct zvfs_file *f, unsigned what)
{
	while (((what & DRAIN_DIO_W) && f->dio_writers) ||
	       ((what & DRAIN_DIO_R) && f->dio_readers) || ((what & DRAIN_LOADS) && f->nloading))
		pthread_cond_wait(&f->dio_cv, &f->mu);
}

static void dio_done(struct zvfs_file *f, unsigned *count)
{
	if (--*count == 0)
		pthread_cond_broadcast(&f->dio_cv);
}

/*
 * The new logical size, and its mirrors (zvfs_file_mirror_add()); mu held.  The size store
 * and the nmirrors load are seq_cst, as are their counterparts in zvfs_file_mirror_add() (add,
 * then read the size): either this sees the new mirror or the add reads this size.
 */
static void set_size(struct zvfs_file *f, uint64_t size)
{
	atomic_store_explicit(&f->size, size, memory_order_seq_cst);
	if (!atomic_load_explicit(&f->nmirrors, memory_order_seq_cst))
		return;
	pthread_mutex_lock(&f->mirror_mu);
	for (uint32_t i = 0; i < f->nmirrors; i++)
		atomic_store_explicit(f->mirrors[i], size, memory_order_release);
	pthread_mutex_unlock(&f->mirror_mu);
}

/* ---- 2. capacity ---------------------------------------------------------------------- */

/*
 * Make the blob hold at least end bytes.  Thin clusters cost nothing until
 * written, so grow in steps as large as the blob (at most 1 GiB) and appends
 * resize rarely.
 */
static int ensure_cap(struct zvfs_file *f, uint64_t end)
{
	uint64_t cl = f->fs->cl_size, need = (end + cl - 1) / cl, step, want, max;
	int rc;

	if (need <= f->ncl)
		return 0;
	max = (ZVFS_FS_MAX_SIZE + cl - 1) / cl;
	step = f->ncl < 8 ? 8 : f->ncl;
	if (step > (1ull << 30) / cl)
		step = (1ull << 30) / cl ? (1ull << 30) / cl : 1;
	want = f->ncl + step;
	if (want < need)
		want = need;
	if (want > max)
		want = max;
	rc = zvfs_blob_resize(f->blob, want);
	if (rc < 0 && want > need)
		rc = zvfs_blob_resize(f->blob, want = need);
	f->md_dirty = true;
	if (rc < 0) {
		ZVFS_ERR("blob %016llx: resize to %llu clusters: %s", (unsigned long long)f->id,
			 (unsigned long long)want, strerror(-rc));
		return rc;
	}
	f->ncl = want;
	return 0;
}

/* A write up to end is about to be issued (mu held): prep_ahead() must stay behind it. */
static void dev_end_raise(struct zvfs_file *f, uint64_t end)
{
	end = round_up(end, f->fs->psz);
	if (end > f->dev_end)
		f->dev_end = end;
}

/*
 * On a store kept in a file (an image on ext4 or xfs), the first write into a range of the
 * image allocates its blocks, and the next flush (fdatasync of the image) must write the host
 * file system's metadata too (measured on ext4: an 8 KiB O_DIRECT write + fdatasync into holes
 * 5.7k/s, into written blocks 10.6k/s): a log that appends and fdatasyncs would pay for that at
 * every record, on top of the store's own metadata.  So a file of at least PREP_STEP bytes that
 * grows by small synced writes gets the next PREP_STEP bytes past its data written with zeroes
 * ahead, once per step: the host allocates then, and the syncs in between only flush.  Past
 * the size the device holds zeroes anyway (the invariant above), so nothing read changes; the
 * clusters are given back when the file leaves memory (fs_file_trim_prep()).  need: end of
 * the data about to be written.  Failures only cost speed.
 */
#define PREP_STEP      (1u << 20)
#define PREP_MAX_DIRTY (256u << 10) /* a sync writing more than this is not a log's */

static bool low_space(struct zvfs_fs *fs, uint64_t len);
static int unmap_tail(struct zvfs_file *f, uint64_t a);

static void prep_ahead(struct zvfs_file *f, uint64_t need)
{
	static const uint8_t zeroes[64u << 10] __attribute__((aligned(4096)));
	struct zvfs_fs *fs = f->fs;
	uint64_t from, to, psz = fs->psz;
	struct iovec iov[16];

	if (!fs->prep_ahead || need <= f->prep_end ||
	    atomic_load_explicit(&f->size, memory_order_relaxed) < PREP_STEP)
		return;
	/* never over data: only where no write of this file was ever issued */
	from = round_up(f->dev_end, psz);
	to = round_up(need, fs->cl_size) + PREP_STEP;
	if (from < f->prep_end)
		from = f->prep_end;
	if (from >= to || fs->buf_align > 4096 || low_space(fs, to - from) || ensure_cap(f, to) < 0)
		return;
	for (int i = 0; i < 16; i++) {
		iov[i].iov_base = (void *)zeroes;
		iov[i].iov_len = sizeof(zeroes);
	}
	for (uint64_t pos = from; pos < to;) {
		uint64_t n = min_u64(to - pos, 16 * sizeof(zeroes));
		int cnt = (int)((n + sizeof(zeroes) - 1) / sizeof(zeroes)), rc;

		iov[cnt - 1].iov_len = n - (uint64_t)(cnt - 1) * sizeof(zeroes);
		rc = zvfs_blob_writev_sync(f->blob, iov, cnt, pos);
		iov[cnt - 1].iov_len = sizeof(zeroes);
		if (rc < 0) {
			ZVFS_DEBUG("blob %016llx: preparing [%llu, %llu): %s",
				   (unsigned long long)f->id, (unsigned long long)pos,
				   (unsigned long long)to, strerror(-rc));
			return;
		}
		pos += n;
		f->prep_end = pos;
	}
	f->md_dirty = true;
}

void fs_file_trim_prep(struct zvfs_file *f)
{
	uint64_t end =
		round_up(atomic_load_explicit(&f->size, memory_order_relaxed), f->fs->cl_size);

	if (f->prep_end <= end)
		return;
	f->prep_end = end;
	if (unmap_tail(f, end) < 0)
		ZVFS_WARN("blob %016llx: clusters prepared past the size stay allocated",
			  (unsigned long long)f->id);
}

/* End of the dirty pages, if they are few enough for prep_ahead() to be worth it; else 0. */
static uint64_t log_dirty_end(const struct zvfs_file *f)
{
	uint64_t end = 0;

	if (!f->fs->prep_ahead || !f->ndirty || (uint64_t)f->ndirty * f->fs->psz > PREP_MAX_DIRTY)
		return 0;
	for (const struct fs_page *p = f->dirty; p; p = p->dnext)
		if ((p->idx + 1) * f->fs->psz > end)
			end = (p->idx + 1) * f->fs->psz;
	return end;
}

/* ---- 3. pages ---------------------------------------------------------------------------- */

/*
 * Fill n fresh pages (page numbers idx, idx+1, ...) from the device: pages
 * past size or past cap (the blob's bytes) read zero without I/O.  The
 * caller passes both, read under mu: the fill may run without it.
 */
static int fill_pages(struct zvfs_file *f, struct fs_page **pages, uint32_t n, uint64_t idx,
		      uint64_t size, uint64_t cap)
{
	struct zvfs_fs *fs = f->fs;
	uint64_t psz = fs->psz;
	uint32_t nio = 0;
	struct iovec stack_iov[16], *iov = stack_iov;
	int rc = 0;

	/* pages [0, nio) hold data that may be on the device */
	while (nio < n && (idx + nio) * psz < size && (idx + nio) * psz < cap)
		nio++;
	for (uint32_t i = nio; i < n; i++)
		memset(pages[i]->buf, 0, psz);
	if (!nio)
		return 0;
	if (nio > 16) {
		iov = malloc(nio * sizeof(*iov));
		if (!iov)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < nio; i++) {
		iov[i].iov_base = pages[i]->buf;
		iov[i].iov_len = psz;
	}
	rc = zvfs_blob_readv_sync(f->blob, iov, (int)nio, idx * psz);
	if (iov != stack_iov)
		free(iov);
	if (rc < 0)
		ZVFS_ERR("blob %016llx: read of %u pages at %llu: %s", (unsigned long long)f->id,
			 nio, (unsigned long long)(idx * psz), strerror(-rc));
	return rc;
}

/* The page idx, loaded (read or zero-filled) if not cached; busy on return. */
static int page_load(struct zvfs_file *f, uint64_t idx, struct fs_page **pp)
{
	struct fs_page *p = fs_page_lookup(f, idx);
	int rc;

	if (p) {
		p->busy = 1;
		*pp = p;
		return 0;
	}
	p = fs_page_get(f, idx, true);
	if (!p)
		return -ENOMEM;
	rc = fill_pages(f, &p, 1, idx, atomic_load_explicit(&f->size, memory_order_relaxed),
			f->ncl * f->fs->cl_size);
	if (rc < 0) {
		fs_page_put(f, p);
		return rc;
	}
	FS_STAT_INC(f->st_misses, 1);
	*pp = p;
	return 0;
}

/* Most pages one operation holds busy at once: a quarter of the budget. */
static uint32_t max_run(const struct zvfs_file *f)
{
	uint64_t m = f->fs->cache.limit / 4;

	if (m < 1)
		m = 1;
	return m < FS_MAX_RUN ? (uint32_t)m : FS_MAX_RUN;
}

/* ---- 4. write-back ------------------------------------------------------------------------ */

static int cmp_page(const void *a, const void *b)
{
	const struct fs_page *x = *(struct fs_page *const *)a, *y = *(struct fs_page *const *)b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Requests of one write-back kept in flight on the channel. */
#define WB_INFLIGHT 16u

/*
 * Write-back in two halves, so that zvfs_file_sync() can have the data in flight while the
 * metadata commit writes the root page: wb_submit() issues the runs and returns, wb_finish()
 * waits for them and marks what landed clean.
 */
struct wb_state {
	struct zvfs_file *f;
	struct zvfs_bs_channel *ch;
	struct batch b;
	struct fs_page **pg;
	struct iovec *iov;
	struct run *runs;
	uint32_t n, nruns;
	int rc; /* submission error */
};

static int wb_submit(struct zvfs_file *f, uint64_t first, uint64_t last, struct wb_state *w)
{
	struct zvfs_fs *fs = f->fs;
	uint64_t cap;
	bool narrow;
	int rc;

	memset(w, 0, sizeof(*w));
	w->f = f;
	if (!f->ndirty)
		return 0;
	rc = zvfs_bs_get_channel(fs->bs, &w->ch);
	if (rc < 0)
		return w->rc = rc;
	/*
	 * A narrow range (sync_file_range of a few pages, the usual database write-back hint)
	 * looks its pages up in the index: walking a dirty list of thousands of pages per hint
	 * was 13% of zvfsd's CPU under pgbench.
	 */
	narrow = last - first < f->ndirty;
	cap = narrow ? last - first : f->ndirty;
	w->pg = malloc(cap * sizeof(*w->pg));
	w->iov = malloc(cap * sizeof(*w->iov));
	w->runs = malloc(cap * sizeof(*w->runs));
	if (!w->pg || !w->iov || !w->runs)
		return w->rc = -ENOMEM;
	if (narrow) {
		for (uint64_t i = first; i < last; i++) {
			struct fs_page *p = fs_page_lookup(f, i);

			if (p && p->dirty)
				w->pg[w->n++] = p;
		}
	} else {
		for (struct fs_page *p = f->dirty; p; p = p->dnext)
			if (p->idx >= first && p->idx < last)
				w->pg[w->n++] = p;
	}
	if (!w->n)
		return 0;
	if (!narrow)
		qsort(w->pg, w->n, sizeof(*w->pg), cmp_page);
	dev_end_raise(f, (w->pg[w->n - 1]->idx + 1) * fs->psz);
	for (uint32_t i = 0; i < w->n;) {
		uint32_t j = i + 1;
		struct run *r = &w->runs[w->nruns];

		while (j < w->n && w->pg[j]->idx == w->pg[j - 1]->idx + 1 && j - i < FS_MAX_RUN)
			j++;
		for (uint32_t k = i; k < j; k++) {
			w->iov[k].iov_base = w->pg[k]->buf;
			w->iov[k].iov_len = fs->psz;
		}
		r->b = &w->b;
		r->status = 1;
		r->first = i;
		r->n = j - i;
		while (w->b.pending >= WB_INFLIGHT)
			if (zvfs_bs_wait(w->ch) < 0)
				break;
		for (;;) {
			rc = zvfs_blob_writev(f->blob, w->ch, w->iov + i, (int)(j - i),
					      w->pg[i]->idx * fs->psz, run_done, r);
			if (rc == 0) {
				w->b.pending++;
				w->nruns++;
				break;
			}
			if ((rc == -ENOMEM || rc == -EAGAIN) && w->b.pending) {
				zvfs_bs_wait(w->ch);
				continue;
			}
			break;
		}
		if (rc < 0)
			return w->rc = rc;
		i = j;
	}
	return 0;
}

static int wb_finish(struct wb_state *w)
{
	struct zvfs_file *f = w->f;
	int rc = w->ch ? batch_wait(w->ch, &w->b) : 0;

	if (w->rc < 0)
		rc = w->rc;
	for (uint32_t r = 0; r < w->nruns; r++) {
		if (w->runs[r].status != 0)
			continue;
		for (uint32_t k = 0; k < w->runs[r].n; k++)
			fs_page_clear_dirty(f, w->pg[w->runs[r].first + k]);
		FS_STAT_INC(f->st_wb, w->runs[r].n);
	}
	if (rc < 0) {
		ZVFS_ERR("blob %016llx: write-back: %s", (unsigned long long)f->id, strerror(-rc));
		f->wb_err = rc;
	}
	free(w->pg);
	free(w->iov);
	free(w->runs);
	w->pg = NULL;
	w->iov = NULL;
	w->runs = NULL;
	return rc;
}

static int wb_finish_hook(void *arg)
{
	return wb_finish(arg);
}

int fs_writeback_locked(struct zvfs_file *f, uint64_t first, uint64_t last)
{
	struct wb_state w;

	wb_submit(f, first, last, &w);
	return wb_finish(&w);
}

int fs_file_flush_locked(struct zvfs_file *f)
{
	uint64_t size = atomic_load_explicit(&f->size, memory_order_relaxed);
	int rc = fs_writeback_locked(f, 0, UINT64_MAX);

	if (f->disk_size != size) {
		int rc2 = fs_set_size_xattr(f, size);

		if (rc == 0)
			rc = rc2;
	}
	return rc;
}

bool fs_md_needed(struct zvfs_file *f)
{
	return f->md_dirty ||
	       f->disk_size != atomic_load_explicit(&f->size, memory_order_relaxed) ||
	       zvfs_blob_get_num_allocated_clusters(f->blob) != f->alloc_synced;
}

/* Size and allocations durable (flushes the device); after write-back. */
int fs_persist_md(struct zvfs_file *f)
{
	return fs_persist_md_hook(f, NULL, NULL);
}

/* The same, with hook (the data write-back's second half) run inside the commit, before its flush. */
int fs_persist_md_hook(struct zvfs_file *f, int (*hook)(void *), void *arg)
{
	uint64_t size = atomic_load_explicit(&f->size, memory_order_relaxed);
	uint64_t alloc;
	int rc = 0;

	if (f->disk_size != size)
		rc = fs_set_size_xattr(f, size);
	/*
	 * Relaxed: fsync promises nothing until it returns, and a crash inside it can only show
	 * zeros where the unsynced data would be (blob.h), so one flush instead of two.
	 */
	/* allocations made by the write-back just submitted are part of this commit */
	alloc = zvfs_blob_get_num_allocated_clusters(f->blob);
	if (rc == 0)
		rc = zvfs_blob_sync_md_relaxed(f->blob, hook, arg);
	else if (hook)
		hook(arg);
	if (rc < 0) {
		ZVFS_ERR("blob %016llx: sync: %s", (unsigned long long)f->id, strerror(-rc));
		return rc;
	}
	f->md_dirty = false;
	f->alloc_synced = alloc;
	return 0;
}

/* Make completed writes of f durable: a metadata sync if anything changed, else a flush. */
static int persist_md(struct zvfs_file *f)
{
	int rc;

	if (fs_md_needed(f))
		return fs_persist_md(f);
	rc = zvfs_bs_flush(f->fs->bs);
	if (rc < 0)
		ZVFS_ERR("blob %016llx: flush: %s", (unsigned long long)f->id, strerror(-rc));
	return rc;
}

/* ---- 5. read / write ----------------------------------------------------------------------- */

static bool iov_aligned(const struct iovec *iov, int cnt, uint64_t off, uint32_t a, uint32_t ba)
{
	if (off % a)
		return false;
	for (int i = 0; i < cnt; i++)
		if ((uintptr_t)iov[i].iov_base % ba || iov[i].iov_len % a)
			return false;
	return true;
}

/* Trim iov to len bytes into out (caller frees *out if != stack). */
static int iov_trim(const struct iovec *iov, int cnt, uint64_t len, struct iovec *stack, int nstack,
		    struct iovec **out, int *outcnt)
{
	struct iovec *v = stack;
	int n = 0;

	if (cnt > nstack) {
		v = malloc((size_t)cnt * sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (int i = 0; i < cnt && len; i++) {
		v[n] = iov[i];
		if (v[n].iov_len > len)
			v[n].iov_len = len;
		len -= v[n].iov_len;
		if (v[n].iov_len)
			n++;
	}
	*out = v;
	*outcnt = n;
	return 0;
}

static ssize_t direct_read(struct zvfs_file *f, const struct iovec *iov, int iovcnt, uint64_t off,
			   uint64_t total)
{
	struct zvfs_fs *fs = f->fs;
	struct iovec stack[8], *v;
	uint64_t size, ret, devlen, cap, rlen;
	int n, rc;

	pthread_mutex_lock(&f->mu);
	size = atomic_load_explicit(&f->size, memory_order_relaxed);
	if (off >= size || !total) {
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	ret = min_u64(total, size - off);
	devlen = min_u64(total, round_up(size - off, fs->dio_align));
	if (f->ndirty) {
		rc = fs_writeback_locked(f, off / fs->psz, (off + devlen - 1) / fs->psz + 1);
		if (rc < 0)
			goto out_unlock;
	}
	cap = f->ncl * fs->cl_size;
	rlen = off < cap ? min_u64(devlen, cap - off) : 0;
	/* the data moves without mu: size cuts wait for dio_readers */
	f->dio_readers++;
	pthread_mutex_unlock(&f->mu);
	rc = 0;
	if (rlen) {
		rc = iov_trim(iov, iovcnt, rlen, stack, 8, &v, &n);
		if (rc == 0) {
			rc = zvfs_blob_readv_sync(f->blob, v, n, off);
			if (v != stack)
				free(v);
		}
	}
	if (rc == 0 && rlen < ret) {
		/* past the blob's clusters: zeroes */
		struct iovcur c;

		cur_init(&c, iov, iovcnt);
		cur_skip(&c, rlen);
		cur_copy(&c, NULL, ret - rlen, true);
	}
	pthread_mutex_lock(&f->mu);
	dio_done(f, &f->dio_readers);
out_unlock:
	pthread_mutex_unlock(&f->mu);
	if (rc < 0)
		return rc;
	return (ssize_t)ret;
}

/*
 * Ask for every line of [b, b + n) now: memcpy's vector loop has only as many
 * loads in flight as the reorder window holds, and a page not in the CPU
 * caches then streams in a few lines at a time (cached 4 KiB reads over
 * 256 MiB: +8%).
 */
static inline void prefetch_span(const uint8_t *b, uint64_t n)
{
	for (uint64_t q = 0; q < n; q += 64)
		__builtin_prefetch(b + q);
}

ssize_t zvfs_file_read(struct zvfs_file *f, const struct iovec *iov, int iovcnt, uint64_t off,
		       unsigned flags)
{
	struct zvfs_fs *fs = f->fs;
	uint64_t total, size, len = 0, first, last, psz = fs->psz, pos = off;
	struct fs_page *stack_pg[32], **pg = stack_pg;
	struct iovcur c;
	bool seq, waited = false;
	int rc;

	rc = iov_total(iov, iovcnt, &total);
	if (rc < 0)
		return rc;
	if (flags & ZVFS_IO_DIRECT) {
		if (!iov_aligned(iov, iovcnt, off, 512, 512))
			return -EINVAL;
		if (iov_aligned(iov, iovcnt, off, fs->dio_align, fs->buf_align))
			return direct_read(f, iov, iovcnt, off, total);
	}
	if (!total)
		return 0;
	pthread_mutex_lock(&f->mu);
	/*
	 * A cached first page is asked for before anything else, so that the
	 * DRAM round trips of its lines overlap the checks below rather than
	 * follow them (cached 4 KiB reads over 256 MiB: 367-407 ns a read
	 * against 399-460 with the prefetch only just before the copy).  A
	 * hint only: what is copied is looked up again below.
	 */
	{
		uint32_t e = fs_index_ent(f, off / psz);

		if (e && !(e & FS_ENT_LOADING))
			prefetch_span(fs_ent_buf(fs, e) + off % psz,
				      min_u64(psz - off % psz, total));
	}
restart:
	if (f->dio_writers)
		io_drain(f, DRAIN_DIO_W);
	size = atomic_load_explicit(&f->size, memory_order_relaxed);
	if (off >= size) {
		len = 0;
		goto out;
	}
	len = min_u64(total, size - off);
	first = off / psz;
	last = (off + len - 1) / psz + 1;
	if (flags & ZVFS_IO_NOWAIT) {
		for (uint64_t i = first; i < last; i++) {
			uint32_t e = fs_index_ent(f, i);

			if (!e || (e & FS_ENT_LOADING)) {
				rc = -EAGAIN;
				goto out;
			}
		}
	}
	seq = first == f->ra_next || (first + 1 == f->ra_next && first != 0);
	if (waited) {
		/* restarted: the window was set the first time round */
	} else if (seq) {
		uint32_t w = f->ra_win ? f->ra_win * 2 : (128u << 10) / (uint32_t)psz;

		f->ra_win = w > FS_MAX_RA / psz ? FS_MAX_RA / (uint32_t)psz : w;
	} else {
		f->ra_win = 0;
	}
	cur_init(&c, iov, iovcnt);
	pos = off;
	for (uint64_t idx = first; idx < last;) {
		uint32_t e = fs_index_ent(f, idx);
		uint64_t end, eof_page, mr = max_run(f), cap;
		uint32_t n, want;

		if (e & FS_ENT_LOADING) {
			/*
			 * Another read is filling it with mu released.  Wait, then
			 * start over: what was copied so far may have been
			 * overwritten meanwhile, and a read must not tear a write.
			 */
			pthread_cond_wait(&f->dio_cv, &f->mu);
			waited = true;
			goto restart;
		}
		if (e) {
			uint64_t po = pos - idx * psz, k = min_u64(psz - po, off + len - pos);
			uint8_t *buf = fs_ent_buf(fs, e);

			atomic_store_explicit(&fs_ent_page(fs, e)->ref, 1, memory_order_relaxed);
			/*
			 * Again for a page asked for above: without this second
			 * round 430-480 ns a read; likely some of the 64 found
			 * the miss buffers full and were dropped.
			 */
			prefetch_span(buf + po, k);
			cur_copy(&c, buf + po, k, true);
			FS_STAT_INC(f->st_hits, 1);
			pos += k;
			idx++;
			continue;
		}
		/* a run of missing pages, extended by read-ahead when sequential */
		end = idx;
		while (end < last && end - idx < mr && !fs_page_lookup(f, end))
			end++;
		want = (uint32_t)(end - idx);
		eof_page = (size + psz - 1) / psz;
		if (seq && end == last) {
			uint64_t ra_end = min_u64(min_u64(last + f->ra_win, eof_page), idx + mr);

			while (end < ra_end && !fs_page_lookup(f, end))
				end++;
		}
		n = (uint32_t)(end - idx);
		if (n > 32 && pg == stack_pg) {
			pg = malloc(FS_MAX_RUN * sizeof(*pg));
			if (!pg) {
				pg = stack_pg;
				rc = -ENOMEM;
				goto out;
			}
		}
		for (uint32_t i = 0; i < n; i++) {
			pg[i] = fs_page_get(f, idx + i, true);
			if (!pg[i]) {
				for (uint32_t k = 0; k < i; k++)
					fs_page_put(f, pg[k]);
				rc = -ENOMEM;
				goto out;
			}
			fs_page_set_loading(f, pg[i], true);
		}
		/*
		 * Fill without mu: other reads and hits on this file go on.  The
		 * pages are busy (never evicted or dropped) and loading (readers
		 * wait, writers and size changes wait for nloading to drain).
		 */
		f->nloading += n;
		cap = f->ncl * fs->cl_size;
		pthread_mutex_unlock(&f->mu);
		rc = fill_pages(f, pg, n, idx, size, cap);
		pthread_mutex_lock(&f->mu);
		for (uint32_t i = 0; i < n; i++)
			fs_page_set_loading(f, pg[i], false);
		f->nloading -= n;
		pthread_cond_broadcast(&f->dio_cv);
		if (rc < 0) {
			for (uint32_t k = 0; k < n; k++)
				fs_page_put(f, pg[k]);
			goto out;
		}
		FS_STAT_INC(f->st_misses, want);
		FS_STAT_INC(f->st_ra, n - want);
		for (uint32_t i = 0; i < n; i++) {
			if (i < want) {
				uint64_t po = pos - (idx + i) * psz,
					 k = min_u64(psz - po, off + len - pos);

				cur_copy(&c, (uint8_t *)pg[i]->buf + po, k, true);
				pos += k;
			}
			pg[i]->busy = 0;
		}
		idx += want;
	}
	f->ra_next = last;
out:
	pthread_mutex_unlock(&f->mu);
	if (pg != stack_pg)
		free(pg);
	if (rc < 0)
		return pos > off ? (ssize_t)(pos - off) : rc;
	return (ssize_t)len;
}

/*
 * Is the store so full that the dirty pages might not fit?  Then writes go
 * through at once and report ENOSPC themselves (a write-back cache would
 * only find out at fsync).
 */
static bool low_space(struct zvfs_fs *fs, uint64_t len)
{
	struct zvfs_bs_stats st;
	uint64_t dirty, avail, need;

	/* the common case: plenty of room, known from an earlier look */
	if (atomic_fetch_sub_explicit(&fs->space_credit, (int64_t)len, memory_order_relaxed) >
	    (int64_t)len)
		return false;
	if (zvfs_bs_get_stats(fs->bs, &st) < 0)
		return true;
	dirty = (uint64_t)atomic_load_explicit(&fs->cache.dirty, memory_order_relaxed) * fs->psz;
	avail = st.free_clusters * fs->cl_size;
	need = 2 * (dirty + len) + 4 * fs->cl_size;
	if (avail < need) {
		atomic_store_explicit(&fs->space_credit, 0, memory_order_relaxed);
		return true;
	}
	/* dirty bytes count twice against free space: half the slack may be dirtied */
	atomic_store_explicit(&fs->space_credit, (int64_t)((avail - need) / 2),
			      memory_order_relaxed);
	return false;
}

static int truncate_locked(struct zvfs_file *f, uint64_t size);

/*
 * Under pressure with the dirty pages mostly in other files (closed ones in
 * particular, whose writers will not come back to pay): write those back
 * too.  self->mu is held, so every other lock is only tried.
 */
static void writeback_others(struct zvfs_fs *fs, struct zvfs_file *self)
{
	uint64_t target = fs->cache.limit / 4;

	if (pthread_mutex_trylock(&fs->lock))
		return;
	for (uint32_t i = 0; i < fs->table_size; i++) {
		for (struct zvfs_file *o = fs->table[i]; o; o = o->tnext) {
			if (o == self || pthread_mutex_trylock(&o->mu))
				continue;
			if (o->ndirty)
				fs_writeback_locked(o, 0, UINT64_MAX);
			pthread_mutex_unlock(&o->mu);
			if (atomic_load_explicit(&fs->cache.dirty, memory_order_relaxed) <= target)
				goto out;
		}
	}
out:
	pthread_mutex_unlock(&fs->lock);
}

/* Write-through after a DSYNC/SYNC write of pages [first, last). */
static int write_through(struct zvfs_file *f, uint64_t first, uint64_t last)
{
	int rc;

	if ((last - first) * f->fs->psz <= PREP_MAX_DIRTY)
		prep_ahead(f, last * f->fs->psz);
	rc = fs_writeback_locked(f, first, last);

	if (rc == 0)
		rc = persist_md(f);
	return rc;
}

static ssize_t direct_write(struct zvfs_file *f, const struct iovec *iov, int iovcnt, uint64_t off,
			    uint64_t total, unsigned flags, uint64_t *endp)
{
	struct zvfs_fs *fs = f->fs;
	uint64_t end, first, last;
	int rc;

	pthread_mutex_lock(&f->mu);
	if (flags & ZVFS_IO_APPEND) {
		off = atomic_load_explicit(&f->size, memory_order_relaxed);
		if (off % fs->dio_align) {
			/* the end of file is not aligned: the kernel would refuse too */
			rc = -EINVAL;
			goto out_unlock;
		}
	}
	end = off + total;
	if (end > ZVFS_FS_MAX_SIZE || end < off) {
		rc = -EFBIG;
		goto out_unlock;
	}
	if (!total) {
		rc = 0;
		goto out_unlock;
	}
	rc = ensure_cap(f, end);
	if (rc < 0)
		goto out_unlock;
	first = off / fs->psz;
	last = (end - 1) / fs->psz + 1;
	if (f->nloading) /* a page being filled now could miss this write */
		io_drain(f, DRAIN_LOADS);
	if (f->npages) {
		/* cached pages of the range: write back, then forget (the device is newer) */
		rc = fs_writeback_locked(f, first, last);
		if (rc < 0)
			goto out_unlock;
		for (uint64_t i = fs_index_next(f, first, last); i < last;
		     i = fs_index_next(f, i + 1, last))
			fs_page_put(f, fs_page_lookup(f, i));
	}
	if (end > atomic_load_explicit(&f->size, memory_order_relaxed) &&
	    (flags & (ZVFS_IO_DSYNC | ZVFS_IO_SYNC)) && total <= PREP_MAX_DIRTY)
		prep_ahead(f, end);
	/* before the data moves: prep_ahead() must never write zeroes over it */
	dev_end_raise(f, end);
	if (end <= atomic_load_explicit(&f->size, memory_order_relaxed)) {
		/*
		 * An overwrite inside the file: move the data without mu, so that
		 * direct writers to one file run in parallel.  Cached operations
		 * wait meanwhile (io_drain), so no page of the range is refilled
		 * from the device before the write lands.
		 */
		f->dio_writers++;
		pthread_mutex_unlock(&f->mu);
		rc = zvfs_blob_writev_sync(f->blob, iov, iovcnt, off);
		pthread_mutex_lock(&f->mu);
		dio_done(f, &f->dio_writers);
	} else {
		/* extending: under mu, so that the size moves with the data */
		rc = zvfs_blob_writev_sync(f->blob, iov, iovcnt, off);
	}
	if (rc < 0) {
		ZVFS_ERR("blob %016llx: direct write at %llu: %s", (unsigned long long)f->id,
			 (unsigned long long)off, strerror(-rc));
		goto out_unlock;
	}
	if (end > atomic_load_explicit(&f->size, memory_order_relaxed))
		set_size(f, end);
	if (flags & (ZVFS_IO_DSYNC | ZVFS_IO_SYNC))
		rc = persist_md(f);
out_unlock:
	pthread_mutex_unlock(&f->mu);
	if (rc < 0)
		return rc;
	if (endp)
		*endp = end;
	return (ssize_t)total;
}

ssize_t zvfs_file_write(struct zvfs_file *f, const struct iovec *iov, int iovcnt, uint64_t off,
			unsigned flags, uint64_t *endp)
{
	struct zvfs_fs *fs = f->fs;
	uint64_t total, size, end, first, last, psz = fs->psz, pos, newdirty = 0;
	struct iovcur c;
	int rc;

	if (fs->read_only)
		return -EROFS;
	rc = iov_total(iov, iovcnt, &total);
	if (rc < 0)
		return rc;
	if (flags & ZVFS_IO_DIRECT) {
		if (!iov_aligned(iov, iovcnt, off, 512, 512))
			return -EINVAL;
		if (iov_aligned(iov, iovcnt, off, fs->dio_align, fs->buf_align))
			return direct_write(f, iov, iovcnt, off, total, flags, endp);
		/* 512-aligned but not for this device: through the cache, written through */
		flags |= ZVFS_IO_DSYNC;
	}
	pthread_mutex_lock(&f->mu);
	/* no page may be half-loaded while this write changes pages (atomicity) */
	if (f->dio_writers || f->nloading)
		io_drain(f, DRAIN_DIO_W | DRAIN_LOADS);
	size = atomic_load_explicit(&f->size, memory_order_relaxed);
	if (flags & ZVFS_IO_APPEND)
		off = size;
	end = off + total;
	if (end > ZVFS_FS_MAX_SIZE || end < off) {
		rc = -EFBIG;
		goto out_unlock;
	}
	if (!total) {
		if (endp)
			*endp = off;
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	rc = ensure_cap(f, end);
	if (rc < 0)
		goto out_unlock;
	first = off / psz;
	last = (end - 1) / psz + 1;
	cur_init(&c, iov, iovcnt);
	pos = off;
	for (uint64_t idx = first; idx < last; idx++) {
		uint64_t po = pos - idx * psz, k = min_u64(psz - po, end - pos);
		struct fs_page *p = fs_page_lookup(f, idx);

		if (!p || !p->dirty)
			newdirty++;
		if (!p) {
			p = fs_page_get(f, idx, false);
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			if (k == psz)
				; /* fully overwritten: nothing to read */
			else if (idx * psz < size)
				rc = fill_pages(f, &p, 1, idx, size, f->ncl * fs->cl_size);
			else
				memset(p->buf, 0, psz);
			if (rc < 0) {
				fs_page_put(f, p);
				break;
			}
		}
		cur_copy(&c, (uint8_t *)p->buf + po, k, false);
		atomic_store_explicit(&p->ref, 1, memory_order_relaxed);
		fs_page_set_dirty(f, p);
		p->busy = 0;
		pos += k;
	}
	/* what was copied is visible, even if the rest failed */
	if (pos > size)
		set_size(f, pos);
	if (rc < 0)
		goto out_unlock;
	if ((flags & (ZVFS_IO_DSYNC | ZVFS_IO_SYNC)) || (newdirty && low_space(fs, total))) {
		/*
		 * Write through; near a full store also without O_DSYNC, so that
		 * ENOSPC reaches this write instead of a later write-back.
		 */
		rc = (flags & (ZVFS_IO_DSYNC | ZVFS_IO_SYNC))
			     ? write_through(f, first, last)
			     : fs_writeback_locked(f, 0, UINT64_MAX); /* all: earlier pages too */
		if (rc == -ENOSPC && end > size) {
			/* undo the extension: the caller is told nothing was written */
			f->wb_err = 0;
			if (truncate_locked(f, size) < 0)
				ZVFS_WARN("blob %016llx: cannot undo a write that hit ENOSPC",
					  (unsigned long long)f->id);
		}
	} else if (atomic_load_explicit(&fs->cache.dirty, memory_order_relaxed) >
		   fs->cache.limit / 2) {
		/* throttle: the writer pays for write-back under pressure */
		bool mostly_others = (uint64_t)f->ndirty * 4 <
				     atomic_load_explicit(&fs->cache.dirty, memory_order_relaxed);

		rc = fs_writeback_locked(f, 0, UINT64_MAX);
		if (rc < 0) /* kept dirty and reported by the next sync */
			rc = 0;
		if (mostly_others)
			writeback_others(fs, f);
	}
out_unlock:
	pthread_mutex_unlock(&f->mu);
	if (rc < 0)
		return rc;
	if (endp)
		*endp = end;
	return (ssize_t)total;
}

uint32_t zvfs_file_direct_align(const struct zvfs_file *f)
{
	return f->fs->dio_align;
}

/* ---- 6. size changes -------------------------------------------------------------------------- */

/* Drop cached pages (dirty too) in [first, last). */
static void drop_pages(struct zvfs_file *f, uint64_t first, uint64_t last, bool dirty_too)
{
	for (uint64_t i = fs_index_next(f, first, last); i < last;
	     i = fs_index_next(f, i + 1, last)) {
		struct fs_page *p = fs_page_lookup(f, i);

		if ((dirty_too || !p->dirty) && !p->busy)
			fs_page_put(f, p);
	}
}

/* Zero bytes [from, to) of the device and cache (to <= size); whole pages are unmapped. */
static int zero_range(struct zvfs_file *f, uint64_t from, uint64_t to)
{
	struct zvfs_fs *fs = f->fs;
	uint64_t psz = fs->psz, a, b, cap;
	struct fs_page *p;
	int rc;

	if (from >= to)
		return 0;
	a = round_up(from, psz);
	b = to / psz * psz;
	if (a > b) { /* inside one page */
		rc = page_load(f, from / psz, &p);
		if (rc < 0)
			return rc;
		memset((uint8_t *)p->buf + from % psz, 0, to - from);
		fs_page_set_dirty(f, p);
		p->busy = 0;
		return 0;
	}
	if (from < a) {
		rc = page_load(f, from / psz, &p);
		if (rc < 0)
			return rc;
		memset((uint8_t *)p->buf + from % psz, 0, a - from);
		fs_page_set_dirty(f, p);
		p->busy = 0;
	}
	if (b < to) {
		rc = page_load(f, b / psz, &p);
		if (rc < 0)
			return rc;
		memset(p->buf, 0, to - b);
		fs_page_set_dirty(f, p);
		p->busy = 0;
	}
	drop_pages(f, a / psz, b / psz, true);
	cap = f->ncl * fs->cl_size;
	if (a < cap && a < b) {
		f->md_dirty = true; /* clusters may be released */
		rc = zvfs_blob_unmap_sync(f->blob, a, min_u64(b, cap) - a);
		if (rc < 0) {
			ZVFS_ERR("blob %016llx: unmap: %s", (unsigned long long)f->id,
				 strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Unmap everything of the blob from byte a (page-aligned) on, if anything is allocated there. */
static int unmap_tail(struct zvfs_file *f, uint64_t a)
{
	uint64_t cl = f->fs->cl_size, cap = f->ncl * cl, c;
	int rc;

	if (a >= cap)
		return 0;
	rc = zvfs_blob_next_allocated(f->blob, a / cl, &c);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	f->md_dirty = true;
	rc = zvfs_blob_unmap_sync(f->blob, a, cap - a);
	if (rc < 0)
		ZVFS_ERR("blob %016llx: unmap tail: %s", (unsigned long long)f->id, strerror(-rc));
	return rc;
}

static int truncate_locked(struct zvfs_file *f, uint64_t size)
{
	uint64_t psz = f->fs->psz, old = atomic_load_explicit(&f->size, memory_order_relaxed);
	int rc;

	if (size < old) {
		uint64_t a = round_up(size, psz);

		if (size % psz) {
			struct fs_page *p;

			rc = page_load(f, size / psz, &p);
			if (rc < 0)
				return rc;
			memset((uint8_t *)p->buf + size % psz, 0, psz - size % psz);
			fs_page_set_dirty(f, p);
			p->busy = 0;
		}
		drop_pages(f, a / psz, UINT64_MAX, true);
		if (f->dev_end > a)
			f->dev_end = a;
		if (f->prep_end > a)
			f->prep_end = a;
		rc = unmap_tail(f, a);
		if (rc < 0)
			return rc;
	} else if (size > old) {
		rc = ensure_cap(f, size);
		if (rc < 0)
			return rc;
	}
	set_size(f, size);
	return 0;
}

int zvfs_file_truncate(struct zvfs_file *f, uint64_t size)
{
	int rc;

	if (f->fs->read_only)
		return -EROFS;
	if (size > ZVFS_FS_MAX_SIZE)
		return -EFBIG;
	pthread_mutex_lock(&f->mu);
	io_drain(f, DRAIN_ALL);
	rc = truncate_locked(f, size);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

/*
 * Would allocating [off, end) of f fit in the store now?  Blobs are thin and
 * a cluster is taken only when written, so fallocate reserves nothing; but a
 * request that cannot fit at all fails here (ENOSPC), as on a file system,
 * rather than succeeding and failing the writes later.  f->mu held.
 */
static int space_check(struct zvfs_file *f, uint64_t off, uint64_t end)
{
	uint64_t cl = f->fs->cl_size, c = off / cl, last = (end + cl - 1) / cl, missing = 0;
	struct zvfs_bs_stats st;

	while (c < last) {
		uint64_t a;

		if (c >= f->ncl || zvfs_blob_next_allocated(f->blob, c, &a) < 0 || a >= last) {
			missing += last - c;
			break;
		}
		missing += a - c;
		if (zvfs_blob_next_unallocated(f->blob, a, &c) < 0)
			break;
	}
	if (missing == 0 || zvfs_bs_get_stats(f->fs->bs, &st) < 0)
		return 0;
	return missing > st.free_clusters ? -ENOSPC : 0;
}

int zvfs_file_fallocate(struct zvfs_file *f, int mode, uint64_t off, uint64_t len)
{
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	uint64_t end = off + len, size;
	int rc = 0;

	if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE &&
	    mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) && mode != FALLOC_FL_ZERO_RANGE &&
	    mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (!len)
		return -EINVAL;
	if (end < off || end > ZVFS_FS_MAX_SIZE)
		return -EFBIG;
	if (f->fs->read_only)
		return -EROFS;
	pthread_mutex_lock(&f->mu);
	io_drain(f, DRAIN_ALL);
	size = atomic_load_explicit(&f->size, memory_order_relaxed);
	if (!(mode & FALLOC_FL_PUNCH_HOLE))
		rc = space_check(f, off, end);
	if (rc == 0 && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
		rc = zero_range(f, off, min_u64(end, size));
	if (rc == 0 && !(mode & FALLOC_FL_PUNCH_HOLE))
		rc = ensure_cap(f, end);
	if (rc == 0 && !keep && end > size)
		set_size(f, end);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void fs_file_scrub_tail(struct zvfs_file *f)
{
	uint64_t psz = f->fs->psz, size;
	int rc = 0;

	pthread_mutex_lock(&f->mu);
	io_drain(f, DRAIN_ALL);
	size = atomic_load_explicit(&f->size, memory_order_relaxed);
	if (size % psz) {
		struct fs_page *p;

		rc = page_load(f, size / psz, &p);
		if (rc == 0) {
			memset((uint8_t *)p->buf + size % psz, 0, psz - size % psz);
			fs_page_set_dirty(f, p);
			p->busy = 0;
		}
	}
	if (rc == 0)
		rc = unmap_tail(f, round_up(size, psz));
	pthread_mutex_unlock(&f->mu);
	if (rc < 0)
		ZVFS_WARN("blob %016llx: cannot clear data past the size after recovery: %s",
			  (unsigned long long)f->id, strerror(-rc));
}

/* ---- 7. sync, cache control, stat, seek ------------------------------------------------------- */

int zvfs_file_sync(struct zvfs_file *f, unsigned flags)
{
	int rc;

	if (f->fs->read_only)
		return 0;
	pthread_mutex_lock(&f->mu);
	if (!(flags & ZVFS_SYNC_NOFLUSH) && !f->wb_err) {
		struct wb_state w;

		/*
		 * The data runs go out first and stay in flight while the metadata commit writes
		 * the root page: a database log's write + fdatasync then costs one device round
		 * trip for both writes plus one flush, instead of write, wait, write, flush.
		 * wb_finish() runs inside the commit, before its flush (blob.h).
		 */
		uint64_t log_end = log_dirty_end(f);

		if (log_end)
			prep_ahead(f, log_end);
		rc = wb_submit(f, 0, UINT64_MAX, &w);
		if (rc == 0 && fs_md_needed(f)) {
			rc = fs_persist_md_hook(f, wb_finish_hook, &w);
			if (w.pg)
				wb_finish(&w); /* the commit failed before it ran the hook */
		} else {
			rc = wb_finish(&w);
			if (rc == 0)
				rc = persist_md(f);
		}
		pthread_mutex_unlock(&f->mu);
		return rc;
	}
	rc = fs_writeback_locked(f, 0, UINT64_MAX);
	if (rc == 0 && f->wb_err)
		rc = f->wb_err;
	if (rc == 0)
		f->wb_err = 0;
	if (rc == 0 && !(flags & ZVFS_SYNC_NOFLUSH))
		rc = persist_md(f);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static void page_range(const struct zvfs_file *f, uint64_t off, uint64_t len, uint64_t *first,
		       uint64_t *last)
{
	uint64_t psz = f->fs->psz;

	*first = off / psz;
	*last = (!len || off + len < off) ? UINT64_MAX : (off + len + psz - 1) / psz;
}

int zvfs_file_writeback(struct zvfs_file *f, uint64_t off, uint64_t len)
{
	uint64_t first, last;
	int rc;

	if (f->fs->read_only)
		return 0;
	page_range(f, off, len, &first, &last);
	pthread_mutex_lock(&f->mu);
	rc = fs_writeback_locked(f, first, last);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int zvfs_file_drop_cache(struct zvfs_file *f, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	page_range(f, off, len, &first, &last);
	/* only pages wholly inside the range */
	if (off % f->fs->psz)
		first++;
	pthread_mutex_lock(&f->mu);
	drop_pages(f, first, last, false);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

int zvfs_file_prefetch(struct zvfs_file *f, uint64_t off, uint64_t len)
{
	uint64_t psz = f->fs->psz, size, idx, last, budget;
	struct fs_page *pg[FS_MAX_RUN];
	int rc = 0;

	pthread_mutex_lock(&f->mu);
	if (f->dio_writers)
		io_drain(f, DRAIN_DIO_W);
	size = atomic_load_explicit(&f->size, memory_order_relaxed);
	if (off >= size)
		goto out;
	if (!len || len > size - off)
		len = size - off;
	/* a hint: never more than a quarter of the cache */
	budget = f->fs->cache.limit / 4;
	idx = off / psz;
	last = (off + len + psz - 1) / psz;
	if (last - idx > budget)
		last = idx + budget;
	while (idx < last && rc == 0) {
		uint64_t end = idx, mr = max_run(f);
		uint32_t n;

		if (fs_page_lookup(f, idx)) {
			idx++;
			continue;
		}
		while (end < last && end - idx < mr && !fs_page_lookup(f, end))
			end++;
		n = (uint32_t)(end - idx);
		for (uint32_t i = 0; i < n; i++) {
			pg[i] = fs_page_get(f, idx + i, true);
			if (!pg[i]) {
				n = i;
				rc = -ENOMEM;
				break;
			}
		}
		if (n && fill_pages(f, pg, n, idx, size, f->ncl * f->fs->cl_size) < 0) {
			for (uint32_t i = 0; i < n; i++)
				fs_page_put(f, pg[i]);
			break;
		}
		for (uint32_t i = 0; i < n; i++)
			pg[i]->busy = 0;
		FS_STAT_INC(f->st_ra, n);
		idx = end;
	}
out:
	pthread_mutex_unlock(&f->mu);
	return 0; /* a hint: failures only mean less is cached */
}

int zvfs_file_stat(struct zvfs_file *f, struct zvfs_file_stat *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&f->fs->lock);
	st->unlinked = f->unlinked;
	pthread_mutex_unlock(&f->fs->lock);
	pthread_mutex_lock(&f->mu);
	st->size = atomic_load_explicit(&f->size, memory_order_relaxed);
	st->allocated = zvfs_blob_get_num_allocated_clusters(f->blob) * f->fs->cl_size;
	/* dirty pages not yet written count as allocated space, as in a kernel fs */
	st->allocated += (uint64_t)f->ndirty * f->fs->psz;
	pthread_mutex_unlock(&f->mu);
	st->blob_id = f->id;
	st->gen = f->gen;
	return 0;
}

int zvfs_file_mirror_add(struct zvfs_file *f, _Atomic uint64_t *slot)
{
	int rc = 0;

	pthread_mutex_lock(&f->mirror_mu);
	if (f->nmirrors == f->cap_mirrors) {
		uint32_t cap = f->cap_mirrors ? f->cap_mirrors * 2 : 4;
		_Atomic uint64_t **m = realloc(f->mirrors, cap * sizeof(*m));

		if (!m) {
			rc = -ENOMEM;
			goto out;
		}
		f->mirrors = m;
		f->cap_mirrors = cap;
	}
	f->mirrors[f->nmirrors] = slot;
	atomic_store_explicit(&f->nmirrors, f->nmirrors + 1, memory_order_seq_cst);
	/* a set_size() racing with this stores into slot too (under mirror_mu, after us) */
	atomic_store_explicit(slot, atomic_load_explicit(&f->size, memory_order_seq_cst),
			      memory_order_release);
out:
	pthread_mutex_unlock(&f->mirror_mu);
	return rc;
}

void zvfs_file_mirror_remove(struct zvfs_file *f, _Atomic uint64_t *slot)
{
	pthread_mutex_lock(&f->mirror_mu);
	for (uint32_t i = 0; i < f->nmirrors; i++) {
		if (f->mirrors[i] == slot) {
			f->mirrors[i] = f->mirrors[f->nmirrors - 1];
			atomic_store_explicit(&f->nmirrors, f->nmirrors - 1, memory_order_relaxed);
			break;
		}
	}
	pthread_mutex_unlock(&f->mirror_mu);
}

uint64_t zvfs_file_size(struct zvfs_file *f)
{
	return atomic_load_explicit(&f->size, memory_order_acquire);
}

uint64_t zvfs_file_readable(struct zvfs_file *f, uint64_t off)
{
	uint64_t size = zvfs_file_size(f);

	return size > off ? size - off : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Index of the first element >= v in the sorted array d[0, n). */
static uint64_t lower_bound(const uint64_t *d, uint64_t n, uint64_t v)
{
	uint64_t lo = 0, hi = n;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (d[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Data = allocated clusters and clusters with dirty pages (not yet
 * allocated, but they will be).  The dirty clusters are sorted once, so the
 * walk costs one allocation-map call per run, not per cluster.
 */
int zvfs_file_seek(struct zvfs_file *f, uint64_t off, bool hole, uint64_t *res)
{
	uint64_t cl = f->fs->cl_size, per = cl / f->fs->psz, size, c, nclus, nd = 0, nc;
	uint64_t *dc = NULL;
	int rc = 0;

	pthread_mutex_lock(&f->mu);
	size = atomic_load_explicit(&f->size, memory_order_relaxed);
	if (off >= size) {
		rc = -ENXIO;
		goto out;
	}
	nclus = (size + cl - 1) / cl;
	if (f->ndirty) {
		dc = malloc(f->ndirty * sizeof(*dc));
		if (!dc) {
			rc = -ENOMEM;
			goto out;
		}
		for (struct fs_page *p = f->dirty; p; p = p->dnext)
			dc[nd++] = p->idx / per;
		qsort(dc, nd, sizeof(*dc), cmp_u64);
	}
	c = off / cl;
	if (!hole) {
		uint64_t i = lower_bound(dc, nd, c), d = i < nd ? dc[i] : UINT64_MAX;

		if (c < f->ncl && zvfs_blob_next_allocated(f->blob, c, &nc) == 0 && nc < d)
			d = nc;
		if (d >= nclus) {
			rc = -ENXIO;
			goto out;
		}
		c = d;
		*res = c * cl > off ? c * cl : off;
		goto out;
	}
	while (c < nclus) {
		uint64_t i;

		if (c < f->ncl) { /* skip a run of allocated clusters */
			c = zvfs_blob_next_unallocated(f->blob, c, &nc) == 0 ? nc : f->ncl;
			if (c >= nclus)
				break;
		}
		i = lower_bound(dc, nd, c);
		if (i < nd && dc[i] == c) {
			c++;
			continue;
		}
		break;
	}
	*res = c * cl > off ? min_u64(c * cl, size) : off;
out:
	pthread_mutex_unlock(&f->mu);
	free(dc);
	return rc;
}
