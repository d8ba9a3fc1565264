/* SPDX-License-Identifier: MIT */
/*
 * Internal structures of the blobstore (blobstore.c, blob.c, blob_io.c).
 *
 * Locks, outermost first:
 *   blob->md_lock     metadata of one blob (xattrs, resize, sync_md, extent page indices)
 *   blob->alloc_lock  thin allocation of one blob, the extent-page dirty flags, pending frees
 *   bs->super_lock    the super block fields and the on-disk clean flag
 *   bs->open_lock     the id -> open handle table and reference counts
 *   bs->alloc_lock    the three bitmaps and the free counters (never held across I/O)
 */
#ifndef ZVFS_BLOB_INTERNAL_H
#define ZVFS_BLOB_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blob/format.h"
#include "zvfs/blob.h"

#define BS_OPEN_BUCKETS	 256
#define BS_RECOVERY_READ (8u << 20)	     /* bytes per metadata-region read at recovery */
#define BS_RECOVERY_QD	 4		     /* such reads in flight */
#define BS_WINDOW_XATTR	 "zvfs.alloc_window" /* internal xattr: u64 LE cluster bound */

struct zvfs_bs {
	struct zvfs_bdev *bdev;
	const struct zvfs_bdev_geometry *geo;
	struct zvfs_bs_layout l;
	bool read_only;

	pthread_mutex_t super_lock;
	struct zvfs_bs_super_info info; /* super_blob, bstype, version */
	bool clean_on_disk;		/* the super block on disk says clean = 1 */

	pthread_mutex_t alloc_lock;
	uint64_t *used_md_pages; /* md_len bits (LSB-first = the on-disk layout) */
	uint64_t *used_clusters; /* total_clusters bits */
	uint64_t *used_blobids;	 /* md_len bits */
	uint64_t free_clusters;
	uint64_t md_pages_used;
	uint64_t num_blobs;
	uint64_t cluster_hint; /* no free cluster below this */
	uint32_t md_hint;      /* no free md page at or above 1 below this */

	pthread_mutex_t open_lock;
	struct zvfs_blob *open[BS_OPEN_BUCKETS];
	uint64_t open_count;

	uint64_t bad_blobs;
	bool loaded_dirty;

	/*
	 * Allocation window (FORMAT.md section 16, zeroes): every cluster at or above
	 * win_durable has been zero on stable storage since it was last free, so a recovery
	 * zeroes free clusters below it only.  Persisted as the internal xattr
	 * BS_WINDOW_XATTR of a ZVFS-internal blob at md page 0, created by init and hidden
	 * from the API; a store without it (made by SPDK) has win_durable = total_clusters.
	 */
	pthread_mutex_t win_lock;
	struct zvfs_blob *win_blob;   /* open handle of the internal blob, or NULL */
	zvfs_blob_id win_id;	      /* its id, or ZVFS_BLOBID_INVALID */
	_Atomic uint64_t win_durable; /* clusters; read lock-free by the data path */
	uint64_t rec_zeroed;	      /* clusters zeroed by the last recovery */
	uint64_t win_margin;	      /* growth step; 0 = default (tests set it small) */
	/* pages or clusters leaked by a failed I/O: unload leaves clean = 0 so that the next
	 * load recovers them (and zeroes what could not be zeroed) */
	atomic_bool needs_recovery;

	/* per-thread channels (blob_io.c) */
	pthread_key_t ch_key;
	pthread_mutex_t ch_lock;
	struct zvfs_bs_channel *channels;
};

/* One chunk of the cluster map: 512 entries = one extent page. */
struct blob_chunk {
	_Atomic uint32_t c[ZVFS_BS_EXTENTS_PER_EP];
};

/* The top-level array; replaced (never resized in place) when the blob grows. */
struct blob_map {
	uint32_t nchunks;
	struct blob_map *retired_next; /* retired arrays, freed at close */
	struct blob_chunk *chunk[];
};

struct blob_free {
	uint32_t cluster;
	struct blob_free *next;
};

struct zvfs_blob {
	struct zvfs_bs *bs;
	zvfs_blob_id id;
	uint32_t root; /* md page index of the root */
	uint32_t refs; /* under bs->open_lock */
	struct zvfs_blob *hnext;

	pthread_mutex_t md_lock;
	pthread_mutex_t alloc_lock;

	struct zvfs_bs_flags flags;
	bool thin;
	bool data_ro;
	bool md_ro;
	bool md_dirty; /* flags/xattrs/size changed since the last sync (md_lock) */

	struct zvfs_blob_md_xattr *xattrs; /* name and value share one allocation */
	uint32_t nxattrs;
	uint32_t xattr_cap;

	_Atomic uint64_t num_clusters;
	_Atomic uint64_t allocated;
	struct blob_map *_Atomic map;
	struct blob_map *retired;

	/* extent pages: md page index per chunk (0 = none); length = map nchunks (md_lock) */
	uint32_t *ep_pages;
	uint8_t *ep_dirty; /* under alloc_lock */
	uint32_t ep_cap;

	uint32_t *chain; /* non-root chain pages now on disk (md_lock) */
	uint32_t nchain;

	struct blob_free *pending_clusters; /* freed, released after the next commit (alloc_lock) */
	uint32_t *pending_eps;		    /* extent pages dropped by a shrink (md_lock) */
	uint32_t npending_eps;
};

/* ---- blobstore.c ------------------------------------------------------------------------ */

/* Read / write whole md page slots (md page index relative to md_start). */
int bs_md_read(struct zvfs_bs *bs, uint32_t idx, void *buf);
int bs_io_batch_write(struct zvfs_bs *bs, void *const *bufs, const uint64_t *offs, uint32_t n,
		      uint32_t len);
int bs_io_batch_read(struct zvfs_bs *bs, void *const *bufs, const uint64_t *offs, uint32_t n,
		     uint32_t len);
uint64_t bs_md_offset(const struct zvfs_bs *bs, uint32_t idx);
void *bs_md_buf(struct zvfs_bs *bs);
void bs_buf_free(struct zvfs_bs *bs, void *buf);
int bs_flush(struct zvfs_bs *bs);
int bs_mark_dirty(struct zvfs_bs *bs);
/* Zero clusters: discard where it reads back zero, else write-zeroes; no flush. */
int bs_zero_range(struct zvfs_bs *bs, uint64_t off, uint64_t len);
int bs_zero_md_pages(struct zvfs_bs *bs, const uint32_t *idx, uint32_t n);
/* Zero the clusters @cl[0..n) (sorted in place, adjacent ones coalesced); no flush. */
int bs_zero_clusters(struct zvfs_bs *bs, uint32_t *cl, uint32_t n);

/* Allocators (take bs->alloc_lock). */
int bs_alloc_md_page(struct zvfs_bs *bs, uint32_t min, uint32_t *idx);
void bs_free_md_page(struct zvfs_bs *bs, uint32_t idx);
int bs_alloc_cluster(struct zvfs_bs *bs, uint32_t *cluster);
void bs_free_cluster(struct zvfs_bs *bs, uint32_t cluster);
int bs_claim_blobid(struct zvfs_bs *bs, uint32_t *root);
void bs_release_blobid(struct zvfs_bs *bs, uint32_t root);
bool bs_blobid_used(struct zvfs_bs *bs, uint32_t root);
void bs_set_blobid(struct zvfs_bs *bs, uint32_t root, bool used);

/*
 * Free the in-memory store and its open handles without writing anything (as a power
 * failure would leave it).  For crash tests only.
 */
void zvfs_bs_abandon(struct zvfs_bs *bs);

/*
 * zvfs_bs_extent_page_decode(), tolerating a page that lists more clusters than the blob has:
 * SPDK rewrites extent pages in place before the root, so an interrupted grow leaves the old
 * root with a longer page.  The entries past num_clusters are ignored (the grow did not
 * commit; recovery frees and zeroes those clusters).
 */
static inline int bs_ep_decode(const struct zvfs_bs_md_page *page, uint32_t ep_index,
			       uint64_t num_clusters, const struct zvfs_bs_desc_extent_page **ep,
			       uint32_t *count)
{
	uint64_t start = (uint64_t)ep_index * ZVFS_BS_EXTENTS_PER_EP;
	int rc = zvfs_bs_extent_page_decode(page, ep_index, num_clusters, ep, count);

	if (rc == -EUCLEAN && start < num_clusters &&
	    zvfs_bs_extent_page_decode(page, ep_index, start + ZVFS_BS_EXTENTS_PER_EP, ep, count) ==
		    0) {
		if (*count > num_clusters - start)
			*count = (uint32_t)(num_clusters - start);
		rc = 0;
	}
	return rc;
}

/* ---- blob.c ----------------------------------------------------------------------------- */

static inline uint32_t blob_map_get(struct zvfs_blob *b, uint64_t cl)
{
	/* acquire: pairs with the release stores that publish the array and its entries */
	struct blob_map *m = atomic_load_explicit(&b->map, memory_order_acquire);

	if (!m || cl / ZVFS_BS_EXTENTS_PER_EP >= m->nchunks)
		return 0;
	return atomic_load_explicit(
		&m->chunk[cl / ZVFS_BS_EXTENTS_PER_EP]->c[cl % ZVFS_BS_EXTENTS_PER_EP],
		memory_order_acquire);
}

/* Free a handle's memory (no I/O). */
void blob_free_handle(struct zvfs_blob *b);
/* Allocate cluster @cl of a thin blob if it is still unallocated; *abs = its cluster. */
int blob_alloc_on_write(struct zvfs_blob *b, uint64_t cl, uint32_t *abs);
/* Unmap of a whole thin cluster: clear the map entry and queue the cluster for release. */
void blob_unmap_cluster(struct zvfs_blob *b, uint64_t cl, uint32_t abs);

/*
 * The allocation window (blob.c).  bs_window_create: at init, make the internal blob (md
 * page 0).  bs_window_open: at load, find it and read the bound (disabled if absent).
 * bs_window_grow: make the durable bound larger than @cluster (sync I/O; any thread, not
 * inside a submit).  bs_window_tighten: lower the bound to the highest used cluster + 1
 * when every free cluster is durably zero (after recovery, at unload).  bs_window_close:
 * free the handle.
 */
int bs_window_create(struct zvfs_bs *bs);
void bs_window_open(struct zvfs_bs *bs, uint64_t bound);
int bs_window_grow(struct zvfs_bs *bs, uint64_t cluster);
int bs_window_tighten(struct zvfs_bs *bs);
void bs_window_close(struct zvfs_bs *bs);
/* Highest used cluster + 1 (bs->alloc_lock taken). */
uint64_t bs_used_end(struct zvfs_bs *bs);

/* ---- blob_io.c -------------------------------------------------------------------------- */

void bs_channels_destroy(struct zvfs_bs *bs);
int bs_channels_init(struct zvfs_bs *bs);

#endif /* ZVFS_BLOB_INTERNAL_H */
