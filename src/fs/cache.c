/* SPDX-License-Identifier: MIT */
/*
 * Page frames of the file layer's cache (DESIGN.md D9).
 *
 * Map:
 *   1. per-file page index   a radix tree of page number -> frame number, under file->mu
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
	f->iroot = NULL;
	f->iheight = 0;
	f->npages = 0;
	return 0;
}

static void rnode_free(void *n, uint32_t h)
{
	if (h > 1)
		for (uint32_t i = 0; i < FS_RFAN; i++)
			if (((struct fs_rinner *)n)->child[i])
				rnode_free(((struct fs_rinner *)n)->child[i], h - 1);
	free(n);
}

void fs_file_index_fini(struct zvfs_file *f)
{
	if (f->iroot)
		rnode_free(f->iroot, f->iheight);
	fs_file_index_init(f);
}

/* The entry number of p (frame number + 1), without the loading bit. */
static uint32_t ent_of(const struct zvfs_fs *fs, const struct fs_page *p)
{
	return (uint32_t)(p - fs->cache.pages) + 1;
}

uint64_t fs_index_next(const struct zvfs_file *f, uint64_t idx, uint64_t last)
{
	while (idx < last) {
		uint64_t gap_end, leaf_end = (idx | (FS_RFAN - 1)) + 1;
		const struct fs_rleaf *l = fs_index_leaf(f, idx, &gap_end);

		if (!l) {
			idx = gap_end;
			continue;
		}
		for (; idx < leaf_end && idx < last; idx++)
			if (l->ent[idx & (FS_RFAN - 1)])
				return idx;
	}
	return last;
}

enum clear_what {
	PRUNE_ONLY,    /* only free empty nodes on the path (a reservation that failed half-way) */
	DROP_ENTRY,    /* clear a present entry */
	DROP_RESERVED, /* give back an index_reserve() whose insert did not happen */
};

/* Do what says at idx, then free the nodes on its path that are left empty. */
static void index_clear(struct zvfs_file *f, uint64_t idx, enum clear_what what)
{
	void **path[8]; /* where each node on the path hangs, root first */
	uint32_t h = f->iheight, d = 0;
	void **at = &f->iroot;
	bool freed = false;

	if (!*at || idx >> (FS_RBITS * h))
		return;
	for (;;) {
		path[d++] = at;
		if (h == 1)
			break;
		at = &((struct fs_rinner *)*at)
			      ->child[(idx >> (FS_RBITS * (h - 1))) & (FS_RFAN - 1)];
		if (!*at)
			break;
		h--;
	}
	if (h == 1) {
		struct fs_rleaf *l = *path[d - 1];
		uint32_t *e = &l->ent[idx & (FS_RFAN - 1)];

		if (what == DROP_RESERVED || (what == DROP_ENTRY && *e))
			l->used--;
		if (what == DROP_ENTRY)
			*e = 0;
		if (l->used)
			return;
		free(l);
		*path[--d] = NULL;
		freed = true;
	}
	while (d > 0) {
		struct fs_rinner *n = *path[--d];

		if (freed)
			n->used--;
		if (n->used)
			return;
		free(n);
		*path[d] = NULL;
		freed = true;
	}
	f->iheight = 0; /* the root went */
}

/*
 * Make the path down to idx's leaf exist and count idx in its leaf, so that
 * index_insert() cannot fail and the leaf stays while other pages of it go;
 * -ENOMEM.  Undone by index_clear(DROP_RESERVED) when no insert follows.
 */
static int index_reserve(struct zvfs_file *f, uint64_t idx)
{
	struct fs_rinner *parent = NULL;
	void **at = &f->iroot;
	uint32_t h;

	if (!f->iroot) {
		for (f->iheight = 1; idx >> (FS_RBITS * f->iheight); f->iheight++)
			;
	}
	while (idx >> (FS_RBITS * f->iheight)) { /* taller: the old root becomes child 0 */
		struct fs_rinner *r = calloc(1, sizeof(*r));

		if (!r)
			return -ENOMEM;
		r->child[0] = f->iroot;
		r->used = 1;
		f->iroot = r;
		f->iheight++;
	}
	for (h = f->iheight;; h--) {
		if (!*at) {
			*at = h > 1 ? calloc(1, sizeof(struct fs_rinner))
				    : calloc(1, sizeof(struct fs_rleaf));
			if (!*at) {
				index_clear(f, idx, PRUNE_ONLY);
				return -ENOMEM;
			}
			if (parent)
				parent->used++;
		}
		if (h == 1) {
			((struct fs_rleaf *)*at)->used++;
			return 0;
		}
		parent = *at;
		at = &parent->child[(idx >> (FS_RBITS * (h - 1))) & (FS_RFAN - 1)];
	}
}

/* idx's entry if it names p, else NULL. */
static uint32_t *ent_for(struct zvfs_file *f, const struct fs_page *p)
{
	uint64_t gap_end;
	struct fs_rleaf *l = fs_index_leaf(f, p->idx, &gap_end);
	uint32_t *e = l ? &l->ent[p->idx & (FS_RFAN - 1)] : NULL;

	return e && (*e & ~FS_ENT_LOADING) == ent_of(f->fs, p) ? e : NULL;
}

/* Insert p at p->idx, which index_reserve() reserved. */
static void index_insert(struct zvfs_file *f, struct fs_page *p)
{
	uint64_t gap_end;
	struct fs_rleaf *l = fs_index_leaf(f, p->idx, &gap_end);

	l->ent[p->idx & (FS_RFAN - 1)] = ent_of(f->fs, p); /* not loading: fs_page_set_loading() */
	f->npages++; /* l->used counted it at the reservation */
}

void fs_page_set_loading(struct zvfs_file *f, struct fs_page *p, bool loading)
{
	uint32_t *e = ent_for(f, p);

	if (e) /* always: the caller has p in the index */
		*e = ent_of(f->fs, p) | (loading ? FS_ENT_LOADING : 0);
}

static void index_remove(struct zvfs_file *f, struct fs_page *p)
{
	if (!ent_for(f, p))
		return;
	index_clear(f, p->idx, DROP_ENTRY);
	f->npages--;
}

/* ---- 2. frames ------------------------------------------------------------------ */

#define SLAB_BYTES (2u << 20)

static void *reserve(size_t len, size_t align, void **map, size_t *map_len)
{
	/* PROT_NONE: neither memory nor commit charge until a slab is opened */
	uint8_t *m = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	*map = m;
	*map_len = len + align;
	return (void *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
}

int fs_cache_init(struct zvfs_fs *fs, uint64_t bytes)
{
	struct fs_cache *c = &fs->cache;
	uint64_t frames, per_slab = SLAB_BYTES / fs->psz;

	memset(c, 0, sizeof(*c));
	c->limit = bytes / fs->psz;
	if (c->limit < 8)
		c->limit = 8;
	/*
	 * Room for twice the budget and 256 MiB more, in whole slabs: fs_page_get()
	 * goes over the budget when every frame is dirty or busy.  Frame numbers
	 * stay below FS_ENT_LOADING (index entries).
	 */
	frames = (FS_ENT_LOADING - 1) / per_slab * per_slab;
	if (c->limit < frames / 2) {
		uint64_t want = c->limit * 2 + (256u << 20) / fs->psz;

		want = (want + per_slab - 1) / per_slab * per_slab;
		if (want < frames)
			frames = want;
	}
	c->max_frames = (uint32_t)frames;
	c->base = reserve(frames * fs->psz, SLAB_BYTES, &c->map_buf, &c->map_buf_len);
	c->pages = reserve(frames * sizeof(struct fs_page), 4096, &c->map_pages, &c->map_pages_len);
	if (!c->base || !c->pages || pthread_mutex_init(&c->lock, NULL)) {
		if (c->base)
			munmap(c->map_buf, c->map_buf_len);
		if (c->pages)
			munmap(c->map_pages, c->map_pages_len);
		return -ENOMEM;
	}
	return 0;
}

void fs_cache_fini(struct zvfs_fs *fs)
{
	struct fs_cache *c = &fs->cache;

	munmap(c->map_buf, c->map_buf_len);
	munmap(c->map_pages, c->map_pages_len);
	c->base = NULL;
	c->pages = NULL;
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
 * returned.  cache.lock held.  NULL when the reserved range is used up.
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
		uint32_t per_slab = SLAB_BYTES / fs->psz;
		uint8_t *slab = c->base + (size_t)c->nslabs * SLAB_BYTES;
		uintptr_t pg0 =
			(uintptr_t)(c->pages + (size_t)c->nslabs * per_slab) & ~(uintptr_t)4095;
		uintptr_t pg1 = (uintptr_t)(c->pages + (size_t)(c->nslabs + 1) * per_slab);

		if ((uint64_t)(c->nslabs + 1) * per_slab > c->max_frames)
			return NULL;
		/* the slab's buffers and their fs_page structs (rounded out to whole pages) */
		if (mprotect(slab, SLAB_BYTES, PROT_READ | PROT_WRITE) != 0 ||
		    mprotect((void *)pg0, (pg1 - pg0 + 4095) & ~(uintptr_t)4095,
			     PROT_READ | PROT_WRITE) != 0)
			return NULL;
		madvise(slab, SLAB_BYTES, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE); /* hints */
		/*
		 * Fault the slab in now, in one call: the kernel allocates and clears it without a
		 * fault per page, 2-3x cheaper than touching it (a memset here measured ~650 ns per
		 * 4 KiB on this VM, the populate ~280), and writers that grow the cache pay for it
		 * (512-byte appends: one new page per 8 writes).  Before Linux 5.14: touch it.
		 */
		if (madvise(slab, SLAB_BYTES, MADV_POPULATE_WRITE) != 0)
			memset(slab, 0, SLAB_BYTES);
		c->nslabs++;
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
	uint8_t *b;

	if (c->nring == c->ring_cap) {
		uint32_t ncap = c->ring_cap ? c->ring_cap * 2 : 64;
		struct fs_page **r = realloc(c->ring, ncap * sizeof(*r));

		if (!r)
			return NULL;
		c->ring = r;
		c->ring_cap = ncap;
	}
	b = frame_buf_get(fs, huge);
	if (!b)
		return NULL;
	p = &c->pages[(b - c->base) / fs->psz];
	memset(p, 0, sizeof(*p));
	p->buf = b;
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
	frame_buf_put(fs, p->buf); /* its fs_page goes with it, to whoever takes the buffer next */
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

	if (index_reserve(f, idx) < 0)
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
		index_clear(f, idx, DROP_RESERVED);
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

	pthread_mutex_lock(&c->lock);
	for (uint64_t i = fs_index_next(f, 0, UINT64_MAX); i != UINT64_MAX;
	     i = fs_index_next(f, i + 1, UINT64_MAX)) {
		struct fs_page *p = fs_page_lookup(f, i);

		if (p->dirty) {
			p->dirty = 0;
			p->dprev = p->dnext = NULL;
			f->ndirty--;
			atomic_fetch_sub(&c->dirty, 1);
		}
		frame_release(f->fs, p);
		atomic_fetch_sub(&c->held, 1);
	}
	f->dirty = NULL;
	pthread_mutex_unlock(&c->lock);
	fs_file_index_fini(f);
}
