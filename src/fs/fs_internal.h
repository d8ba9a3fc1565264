/* SPDX-License-Identifier: MIT */
/*
 * fs_internal.h - shared between the parts of the file layer (not installed).
 *
 *   fs.c     mount, store identity, files table, open/create/remove/close
 *   cache.c  page frames, global budget, clock eviction, per-file page index
 *   file.c   data path: read, write, direct I/O, write-back, truncate, ...
 *
 * Lock order: fs->lock (files table) -> file->mu -> cache.lock.  The clock
 * evictor holds cache.lock and only ever *tries* another file's mu, so the
 * reverse order never blocks.
 */
#ifndef ZVFS_FS_INTERNAL_H
#define ZVFS_FS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "zvfs/fs.h"

#define FS_XATTR_SIZE "zvfs.size"
#define FS_XATTR_GEN  "zvfs.gen"
#define FS_XATTR_INO  "zvfs.ino"
#define FS_XATTR_UUID "zvfs.store_uuid"

/* Files without handles kept in memory (blob open, pages cached). */
#define FS_MAX_CACHED_FILES 1024u
/* Largest coalesced write-back / read run, pages. */
#define FS_MAX_RUN 256u
/* Most read-ahead, bytes. */
#define FS_MAX_RA (1u << 20)

/* Counters kept per file; written under file->mu, read racily for stats. */
#define FS_STAT_INC(c, n)                                                                          \
	atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n),        \
			      memory_order_relaxed)

/*
 * A file's page index: a radix tree over page numbers, FS_RFAN ways a level.
 * Leaves hold 32-bit entries: the frame's number + 1 (0: not cached), with
 * FS_ENT_LOADING while the page is filled from the device (readers wait).
 * The number gives both the frame's buffer and its fs_page by arithmetic
 * (fs_ent_buf, fs_ent_page), so a cached read loads one entry before its copy
 * can start.  The hashed slots this replaces (24 bytes a page, half full: 3 MiB
 * for a 256 MiB file) missed the CPU caches on nearly every random read of such
 * a file, a DRAM round trip in front of every copy; the leaves of the same file
 * take 256 KiB, which the caches mostly keep.
 */
#define FS_RBITS       9u
#define FS_RFAN	       (1u << FS_RBITS)
#define FS_ENT_LOADING 0x80000000u

struct fs_rleaf {
	uint32_t ent[FS_RFAN];
	uint32_t used; /* non-zero entries */
};

struct fs_rinner {
	/* struct fs_rinner, or struct fs_rleaf one level up from the leaves */
	void *child[FS_RFAN];
	uint32_t used; /* non-NULL children */
};

/* One page frame: the fs_page at index n of cache.pages owns the buffer at cache.base + n * psz. */
struct fs_page {
	struct zvfs_file *owner;       /* NULL when free; changes under owner->mu + cache.lock */
	uint64_t idx;		       /* page number in owner */
	void *buf;		       /* psz bytes, device-aligned */
	struct fs_page *hnext;	       /* the free list */
	struct fs_page *dprev, *dnext; /* owner's dirty list, under owner->mu */
	uint32_t slot;		       /* index in cache.ring */
	atomic_uchar ref;	       /* clock: touched since the hand last passed */
	uint8_t dirty;		       /* under owner->mu */
	uint8_t busy;		       /* in use by the running operation: never evicted */
};

struct fs_cache {
	pthread_mutex_t lock; /* free list, ring, hand, frame ownership */
	struct fs_page **ring;
	uint32_t nring, ring_cap;
	uint32_t hand;
	uint64_t limit; /* pages (soft: exceeded only when nothing can be evicted) */
	struct fs_page *free;
	/*
	 * Frame memory: one reserved address range (PROT_NONE until used), handed
	 * out in SLAB_BYTES slabs, never returned before unmount; pages[n] belongs
	 * to the buffer at base + n * psz.  max_frames bounds frame numbers.
	 */
	uint8_t *base;
	struct fs_page *pages;
	void *map_buf, *map_pages; /* the mappings as made, for munmap */
	size_t map_buf_len, map_pages_len;
	uint32_t max_frames;
	uint32_t nslabs;
	/* carving position in the newest slab of each kind ([1]: huge-page hinted) */
	uint8_t *slab_cur[2];
	uint32_t slab_left[2];
	void *spare;		    /* buffers of freed frames, linked through their first bytes */
	atomic_uint_fast64_t held;  /* pages owned by files */
	atomic_uint_fast64_t dirty; /* dirty pages */
};

struct zvfs_fs {
	struct zvfs_bdev *bdev;
	struct zvfs_bs *bs;
	uint32_t psz;	    /* cache page size: max(4096, io unit) */
	uint32_t io_unit;   /* store io unit */
	uint32_t dio_align; /* device logical block */
	uint32_t buf_align; /* device buffer alignment */
	uint64_t cl_size;   /* cluster bytes */
	bool read_only;
	bool prep_ahead;   /* the device allocates on first write: see file.c prep_ahead() */
	bool loaded_dirty; /* recovered: bytes past a file's size may be stale */
	char uuid[37];
	char sid[17]; /* the UUID's first 16 hex digits: the store id in placeholder xattrs */

	pthread_mutex_t lock; /* files table, handle counts, LRU of cached files */
	struct zvfs_file **table;
	uint32_t table_size; /* power of two */
	uint32_t nfiles;
	uint32_t nopen;			       /* files with handles */
	struct zvfs_file *lru_head, *lru_tail; /* cached files, oldest first */
	uint32_t nlru;
	/* counters of files already freed */
	uint64_t old_hits, old_misses, old_ra, old_wb;

	struct fs_cache cache;
	/*
	 * Bytes that may still be dirtied before the store's free space has to
	 * be looked at again (file.c low_space()); <= 0 means look now.
	 */
	_Atomic int64_t space_credit;
};

struct zvfs_file {
	struct zvfs_fs *fs;
	struct zvfs_blob *blob;
	zvfs_blob_id id;
	uint64_t gen;

	/* under fs->lock */
	struct zvfs_fs_ino ino;
	uint32_t handles;
	bool unlinked;
	struct zvfs_file *tnext;	       /* files table chain */
	struct zvfs_file *lru_prev, *lru_next; /* cached-file LRU (handles == 0) */
	bool in_lru;

	pthread_mutex_t mu; /* data, pages, size changes */
	_Atomic uint64_t size;
	uint64_t disk_size; /* value of the size xattr in the blob */
	uint64_t ncl;	    /* blob clusters */
	/*
	 * dev_end: no write of this file's data was ever issued at or past it, so the device holds
	 * zeroes there (raised before a write is issued, lowered by size cuts).  prep_end: bytes
	 * below it were written at least once (by data or by prep_ahead()'s zeroes).
	 */
	uint64_t dev_end, prep_end;
	/* blob metadata changed since the last zvfs_blob_sync_md() (resize, unmap, xattr) */
	bool md_dirty;
	uint64_t alloc_synced; /* allocated clusters at the last sync_md: new ones need one */
	int wb_err;	       /* write-back failure not yet reported by a sync */
	/*
	 * Direct I/O moves data without mu (so that O_DIRECT on one file runs in
	 * parallel), counted here under mu.  Cached operations wait for
	 * dio_writers to drain (a page filled during a direct write could hold
	 * stale bytes); size cuts (truncate, punch) wait for both.
	 */
	unsigned dio_readers, dio_writers;
	/*
	 * Pages being filled by a cached read with mu released (so that misses
	 * on one file proceed in parallel).  Readers that meet one wait and
	 * restart; writers and size changes wait for none to be left.
	 */
	unsigned nloading;
	/*
	 * zvfs_file_mirror_add(): slots that follow the size.  Their own lock, not mu: zvfsd
	 * adds mirrors on its control thread, which must not wait for an fsync holding mu.
	 */
	pthread_mutex_t mirror_mu;
	_Atomic uint64_t **mirrors;
	_Atomic uint32_t nmirrors; /* read without mirror_mu by set_size() */
	uint32_t cap_mirrors;
	pthread_cond_t dio_cv; /* signalled when any of the three counts drops to 0 */

	/* page index, under mu */
	void *iroot; /* struct fs_rinner, or a struct fs_rleaf when iheight is 1; NULL: empty */
	uint32_t iheight; /* levels: the tree covers page numbers below 2^(FS_RBITS * iheight) */
	uint32_t npages;
	uint32_t ndirty;
	struct fs_page *dirty; /* dirty pages, newest first (write-back sorts them) */

	/* read-ahead, under mu */
	uint64_t ra_next; /* page after the last sequential read */
	uint32_t ra_win;  /* pages */

	_Atomic uint64_t st_hits, st_misses, st_ra, st_wb;
};

/* fs.c */
int fs_set_size_xattr(struct zvfs_file *f, uint64_t size);

/* file.c */
/* Does making f durable need a metadata sync (not just a device flush)?  f->mu held. */
bool fs_md_needed(struct zvfs_file *f);
/* Persist size and metadata (zvfs_blob_sync_md(), which flushes); f->mu held. */
int fs_persist_md(struct zvfs_file *f);
int fs_persist_md_hook(struct zvfs_file *f, int (*hook)(void *), void *arg);

/* cache.c */
int fs_cache_init(struct zvfs_fs *fs, uint64_t bytes);
void fs_cache_fini(struct zvfs_fs *fs);
/*
 * The leaf that covers idx, or NULL when there is none; then *gap_end is the
 * first page number past the hole that idx falls in (UINT64_MAX: past the
 * tree).  f->mu held.
 */
static inline struct fs_rleaf *fs_index_leaf(const struct zvfs_file *f, uint64_t idx,
					     uint64_t *gap_end)
{
	void *n = f->iroot;
	uint32_t h = f->iheight;

	*gap_end = UINT64_MAX;
	if (!n || idx >> (FS_RBITS * h))
		return NULL;
	while (--h) {
		uint32_t sh = FS_RBITS * h;

		n = ((struct fs_rinner *)n)->child[(idx >> sh) & (FS_RFAN - 1)];
		if (!n) {
			*gap_end = ((idx >> sh) + 1) << sh;
			return NULL;
		}
	}
	return n;
}

/* Page idx's index entry (0: not cached); f->mu held. */
static inline uint32_t fs_index_ent(const struct zvfs_file *f, uint64_t idx)
{
	uint64_t gap_end;
	const struct fs_rleaf *l = fs_index_leaf(f, idx, &gap_end);

	return l ? l->ent[idx & (FS_RFAN - 1)] : 0;
}

static inline struct fs_page *fs_ent_page(const struct zvfs_fs *fs, uint32_t e)
{
	return &fs->cache.pages[(e & ~FS_ENT_LOADING) - 1];
}

static inline uint8_t *fs_ent_buf(const struct zvfs_fs *fs, uint32_t e)
{
	return fs->cache.base + (uint64_t)((e & ~FS_ENT_LOADING) - 1) * fs->psz;
}

static inline struct fs_page *fs_page_lookup(const struct zvfs_file *f, uint64_t idx)
{
	uint32_t e = fs_index_ent(f, idx);

	return e ? fs_ent_page(f->fs, e) : NULL;
}

/* The first cached page number in [idx, last), or last; f->mu held. */
uint64_t fs_index_next(const struct zvfs_file *f, uint64_t idx, uint64_t last);
/*
 * A frame for page idx of f (not present), inserted, busy, contents undefined.
 * from_device: the caller fills it from the device (read, read-ahead,
 * prefetch), not from a writer's buffer; decides which memory backs a new
 * frame (cache.c, frame_buf_get).
 */
struct fs_page *fs_page_get(struct zvfs_file *f, uint64_t idx, bool from_device);
/* Remove p from f and free its frame (dirty state is dropped). */
void fs_page_put(struct zvfs_file *f, struct fs_page *p);
void fs_page_set_dirty(struct zvfs_file *f, struct fs_page *p);
/* Mark p (in f's index) as being filled from the device, or done; f->mu held. */
void fs_page_set_loading(struct zvfs_file *f, struct fs_page *p, bool loading);
void fs_page_clear_dirty(struct zvfs_file *f, struct fs_page *p);
/* Free every page of f (dirty ones too). */
void fs_file_drop_all(struct zvfs_file *f);
int fs_file_index_init(struct zvfs_file *f);
void fs_file_index_fini(struct zvfs_file *f);

/* file.c */
/* Write back dirty pages in [first, last) (page numbers); f->mu held. */
int fs_writeback_locked(struct zvfs_file *f, uint64_t first, uint64_t last);
/* Release clusters prepared past the size (file.c prep_ahead()); f->mu held. */
void fs_file_trim_prep(struct zvfs_file *f);
/* Write back everything and persist the size; used before the blob closes. */
int fs_file_flush_locked(struct zvfs_file *f);
/* After an unclean shutdown: zero what lies past the size (see fs.c). */
void fs_file_scrub_tail(struct zvfs_file *f);

#endif /* ZVFS_FS_INTERNAL_H */
