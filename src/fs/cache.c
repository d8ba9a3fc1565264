/* SPDX-License-Identifier: MIT */
/*
 * Page frames of the file layer's cache (DESIGN.md D9).
 *
 * Map:
 *   1. per-file page index   a chained hash of page number -> frame, under file->mu
 *   2. frames                global pool bounded by opts.cache_size, free list
 *   3. eviction              a clock over every frame; hits only set a bit
 *
 * The hit path (file.c) takes file->mu, looks the page up here and sets its
 * referenced bit: no global lock, no list move.  Only a miss takes
 * cache.lock, to pop a free frame or run the clock.  The clock never evicts
 * a dirty page (writers are throttled so that at most about half the budget
 * is dirty) or one in use by a running operation, and may exceed the budget
 * when nothing else can go, rather than fail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fs/fs_internal.h"
#include "util/log.h"

/* ---- 1. per-file page index ------------------------------------------------- */

int fs_file_index_init(struct zvfs_file *f)
{
	f->nbits = 4;
	f->nslots = 1u << f->nbits;
	f->slots = calloc(f->nslots, sizeof(*f->slots));
	return f->slots ? 0 : -ENOMEM;
}

void fs_file_index_fini(struct zvfs_file *f)
{
	free(f->slots);
	f->slots = NULL;
}

static void slot_put(struct zvfs_file *f, uint64_t idx, struct fs_page *p, uint8_t *buf)
{
	uint32_t i = fs_slot_home(f, idx), mask = f->nslots - 1;

	while (f->slots[i].p)
		i = (i + 1) & mask;
	f->slots[i].idx = idx;
	f->slots[i].p = p;
	f->slots[i].buf = buf;
}

/* Double the slots; false if there is no memory (the caller must not insert then). */
static bool index_grow(struct zvfs_file *f)
{
	struct fs_slot *old = f->slots;
	uint32_t onb = f->nslots;
	struct fs_slot *ns = calloc((size_t)onb * 2, sizeof(*ns));

	if (!ns)
		return false;
	f->slots = ns;
	f->nslots = onb * 2;
	f->nbits++;
	for (uint32_t i = 0; i < onb; i++)
		if (old[i].p)
			slot_put(f, old[i].idx, old[i].p, old[i].buf);
	free(old);
	return true;
}

static void index_insert(struct zvfs_file *f, struct fs_page *p)
{
	slot_put(f, p->idx, p, p->loading ? NULL : p->buf);
	f->npages++;
}

/* The slot that holds p, or -1 when p is not in f's index. */
static int64_t slot_of(const struct zvfs_file *f, const struct fs_page *p)
{
	uint32_t mask = f->nslots - 1, i = fs_slot_home(f, p->idx);

	while (f->slots[i].p != p) {
		if (!f->slots[i].p)
			return -1;
		i = (i + 1) & mask;
	}
	return i;
}

void fs_page_set_loading(struct zvfs_file *f, struct fs_page *p, bool loading)
{
	int64_t i = slot_of(f, p);

	p->loading = loading;
	if (i >= 0) /* always: the caller has p in the index */
		f->slots[i].buf = loading ? NULL : p->buf;
}

/* Remove p; later entries of its probe run move back (no tombstones). */
static void index_remove(struct zvfs_file *f, struct fs_page *p)
{
	uint32_t mask = f->nslots - 1, i, j;
	int64_t at = slot_of(f, p);

	if (at < 0)
		return;
	i = (uint32_t)at;
	for (j = i;;) {
		uint32_t k;

		j = (j + 1) & mask;
		if (!f->slots[j].p)
			break;
		k = fs_slot_home(f, f->slots[j].idx);
		/* the entry at j may fill the hole at i unless its home lies in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		f->slots[i] = f->slots[j];
		i = j;
	}
	f->slots[i].p = NULL;
	f->npages--;
}

/* ---- 2. frames ------------------------------------------------------------------ */

int fs_cache_init(struct zvfs_fs *fs, uint64_t bytes)
{
	struct fs_cache *c = &fs->cache;

	memset(c, 0, sizeof(*c));
	c->limit = bytes / fs->psz;
	if (c->limit < 8)
		c->limit = 8;
	if (pthread_mutex_init(&c->lock, NULL))
		return -ENOMEM;
	return 0;
}

void fs_cache_fini(struct zvfs_fs *fs)
{
	struct fs_cache *c = &fs->cache;

	for (uint32_t i = 0; i < c->nring; i++)
		free(c->ring[i]);
	for (uint32_t i = 0; i < c->nslabs; i++)
		free(c->slabs[i]);
	free(c->slabs);
	c->slabs = NULL;
	c->nslabs = 0;
	c->spare = NULL;
	free(c->ring);
	c->ring = NULL;
	c->nring = 0;
	pthread_mutex_destroy(&c->lock);
}

/*
 * Frame memory comes in 2 MiB slabs carved into page-sized buffers.  4 KiB
 * buffers from aligned_alloc were scattered over the heap (and cost a malloc
 * header each): a cached random read over 256 MiB then paid a TLB miss on
 * nearly every page.  Buffers of freed frames are kept for reuse rather than
 * returned.  cache.lock held.
 *
 * Two kinds of slab.  Frames filled from the device come from slabs hinted
 * MADV_HUGEPAGE: one TLB entry covers 512 pages (cached 4 KiB random reads
 * over 256 MiB: 1.17-1.23M/s against 1.06-1.11M/s without the hint), and the
 * device read they wait for dwarfs the allocation.  Frames a writer fills
 * come from slabs without the hint: a huge page must be a free 2 MiB block,
 * which the kernel may first have to compact (THP defrag "madvise" compacts
 * synchronously for hinted memory), and which a VM with free page reporting
 * has handed back to its host, so touching it faults on the host: 512-byte
 * appends spent 44% of their time in clear_page, 0.54-0.97M writes/s against
 * 1.18-1.35M/s from ordinary pages, which the kernel recycles warm.
 */
#define SLAB_BYTES (2u << 20)

static void *frame_buf_get(struct zvfs_fs *fs, bool huge)
{
	struct fs_cache *c = &fs->cache;
	void *b;

	if (c->spare) {
		/* contents undefined (fs_page_get): every user fills the page */
		b = c->spare;
		memcpy(&c->spare, b, sizeof(void *));
		return b;
	}
	if (c->slab_left[huge] < fs->psz) {
		void *slab;

		if (c->nslabs == c->slabs_cap) {
			uint32_t ncap = c->slabs_cap ? c->slabs_cap * 2 : 16;
			void **n = realloc(c->slabs, ncap * sizeof(*n));

			if (!n)
				return NULL;
			c->slabs = n;
			c->slabs_cap = ncap;
		}
		slab = aligned_alloc(SLAB_BYTES, SLAB_BYTES);
		if (!slab)
			return NULL;
		/*
		 * Either way the hint is set before the populate below: a hint given later
		 * leaves khugepaged to copy the slab into a huge page in the background, CPU
		 * a 2-vCPU machine does not have to spare.
		 */
		madvise(slab, SLAB_BYTES, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE); /* hints */
		/*
		 * Fault the slab in now, in one call: the kernel allocates and clears it without a
		 * fault per page, 2-3x cheaper than touching it (a memset here measured ~650 ns per
		 * 4 KiB on this VM, the populate ~280), and writers that grow the cache pay for it
		 * (512-byte appends: one new page per 8 writes).  Before Linux 5.14: touch it.
		 */
		if (madvise(slab, SLAB_BYTES, MADV_POPULATE_WRITE) != 0)
			memset(slab, 0, SLAB_BYTES);
		c->slabs[c->nslabs++] = slab;
		c->slab_cur[huge] = slab;
		c->slab_left[huge] = SLAB_BYTES;
	}
	b = c->slab_cur[huge];
	c->slab_cur[huge] += fs->psz;
	c->slab_left[huge] -= fs->psz;
	return b;
}

static void frame_buf_put(struct zvfs_fs *fs, void *b)
{
	struct fs_cache *c = &fs->cache;

	memcpy(b, &c->spare, sizeof(void *));
	c->spare = b;
}

/* A new frame in the ring; cache.lock held. */
static struct fs_page *frame_new(struct zvfs_fs *fs, bool huge)
{
	struct fs_cache *c = &fs->cache;
	struct fs_page *p;

	if (c->nring == c->ring_cap) {
		uint32_t ncap = c->ring_cap ? c->ring_cap * 2 : 64;
		struct fs_page **r = realloc(c->ring, ncap * sizeof(*r));

		if (!r)
			return NULL;
		c->ring = r;
		c->ring_cap = ncap;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->buf = frame_buf_get(fs, huge);
	if (!p->buf) {
		free(p);
		return NULL;
	}
	p->slot = c->nring;
	c->ring[c->nring++] = p;
	return p;
}

/* Free an unowned frame for good (the ring is over budget); cache.lock held. */
static void frame_free(struct zvfs_fs *fs, struct fs_page *p)
{
	struct fs_cache *c = &fs->cache;
	struct fs_page *last = c->ring[--c->nring];

	c->ring[p->slot] = last;
	last->slot = p->slot;
	if (c->hand >= c->nring)
		c->hand = 0;
	frame_buf_put(fs, p->buf);
	free(p);
}

/* An unowned frame goes back to the free list, or away when over budget. */
static void frame_release(struct zvfs_fs *fs, struct fs_page *p)
{
	struct fs_cache *c = &fs->cache;

	p->owner = NULL;
	p->busy = 0;
	if (c->nring > c->limit) {
		frame_free(fs, p);
		return;
	}
	p->hnext = c->free;
	c->free = p;
}

/* ---- 3. eviction ------------------------------------------------------------------ */

/*
 * Run the clock for a clean, idle frame; cache.lock held, self->mu held.
 * Pages of other files are taken only when their file's lock is free right
 * now (trylock): the evictor never waits while holding cache.lock.
 */
static struct fs_page *evict(struct zvfs_fs *fs, struct zvfs_file *self)
{
	struct fs_cache *c = &fs->cache;

	for (uint64_t n = 0; n < 2ull * c->nring; n++) {
		struct fs_page *p = c->ring[c->hand];
		struct zvfs_file *o = p->owner;

		if (++c->hand >= c->nring)
			c->hand = 0;
		if (!o)
			continue;
		if (atomic_exchange_explicit(&p->ref, 0, memory_order_relaxed))
			continue;
		if (o == self) {
			if (p->busy || p->dirty)
				continue;
			index_remove(o, p);
		} else {
			if (pthread_mutex_trylock(&o->mu))
				continue;
			if (p->busy || p->dirty) {
				pthread_mutex_unlock(&o->mu);
				continue;
			}
			index_remove(o, p);
			pthread_mutex_unlock(&o->mu);
		}
		p->owner = NULL;
		atomic_fetch_sub(&c->held, 1);
		return p;
	}
	return NULL;
}

struct fs_page *fs_page_get(struct zvfs_file *f, uint64_t idx, bool from_device)
{
	struct zvfs_fs *fs = f->fs;
	struct fs_cache *c = &fs->cache;
	struct fs_page *p;

	if (2 * (f->npages + 1) > f->nslots && !index_grow(f))
		return NULL;
	pthread_mutex_lock(&c->lock);
	p = c->free;
	if (p) {
		c->free = p->hnext;
	} else if (c->nring < c->limit) {
		p = frame_new(fs, from_device);
	} else {
		p = evict(fs, f);
		if (p && c->nring > c->limit) {
			/* over budget from an earlier squeeze: give one more back */
			struct fs_page *q = evict(fs, f);

			if (q)
				frame_free(fs, q);
		}
	}
	if (!p && f->ndirty) {
		/* our own dirty pages block the clock: write them back, then retry */
		pthread_mutex_unlock(&c->lock);
		fs_writeback_locked(f, 0, UINT64_MAX);
		pthread_mutex_lock(&c->lock);
		p = c->free;
		if (p)
			c->free = p->hnext;
		else
			p = evict(fs, f);
	}
	if (!p) /* everything dirty or busy: go over budget rather than fail */
		p = frame_new(fs, from_device);
	if (!p) {
		pthread_mutex_unlock(&c->lock);
		return NULL;
	}
	p->owner = f;
	p->idx = idx;
	p->dirty = 0;
	p->busy = 1;
	atomic_store_explicit(&p->ref, 1, memory_order_relaxed);
	atomic_fetch_add(&c->held, 1);
	pthread_mutex_unlock(&c->lock);
	index_insert(f, p);
	return p;
}

void fs_page_set_dirty(struct zvfs_file *f, struct fs_page *p)
{
	if (p->dirty)
		return;
	p->dirty = 1;
	p->dprev = NULL;
	p->dnext = f->dirty;
	if (f->dirty)
		f->dirty->dprev = p;
	f->dirty = p;
	f->ndirty++;
	atomic_fetch_add(&f->fs->cache.dirty, 1);
}

void fs_page_clear_dirty(struct zvfs_file *f, struct fs_page *p)
{
	if (!p->dirty)
		return;
	p->dirty = 0;
	if (p->dprev)
		p->dprev->dnext = p->dnext;
	else
		f->dirty = p->dnext;
	if (p->dnext)
		p->dnext->dprev = p->dprev;
	p->dprev = p->dnext = NULL;
	f->ndirty--;
	atomic_fetch_sub(&f->fs->cache.dirty, 1);
}

void fs_page_put(struct zvfs_file *f, struct fs_page *p)
{
	struct fs_cache *c = &f->fs->cache;

	fs_page_clear_dirty(f, p);
	index_remove(f, p);
	pthread_mutex_lock(&c->lock);
	frame_release(f->fs, p);
	atomic_fetch_sub(&c->held, 1);
	pthread_mutex_unlock(&c->lock);
}

void fs_file_drop_all(struct zvfs_file *f)
{
	struct fs_cache *c = &f->fs->cache;

	if (!f->slots)
		return;
	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < f->nslots; i++) {
		struct fs_page *p = f->slots[i].p;

		if (!p)
			continue;
		if (p->dirty) {
			p->dirty = 0;
			p->dprev = p->dnext = NULL;
			f->ndirty--;
			atomic_fetch_sub(&c->dirty, 1);
		}
		frame_release(f->fs, p);
		atomic_fetch_sub(&c->held, 1);
		f->slots[i].p = NULL;
	}
	f->npages = 0;
	f->dirty = NULL;
	pthread_mutex_unlock(&c->lock);
}
