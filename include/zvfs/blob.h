/* SPDX-License-Identifier: MIT */
/*
 * zvfs/blob.h - the blobstore: SPDK Blobstore (on-disk v3) over a zvfs_bdev.
 *
 * A store is a block device formatted as an SPDK blobstore
 * (../shared/spec/FORMAT.md): a super block, bit masks, a metadata region of
 * 4 KiB pages and data clusters.  A blob is a numbered, resizable array of
 * clusters with extended attributes; ZVFS files live in blobs.  Stores made
 * here load in SPDK and stores made by SPDK load here.
 *
 * Threads
 * -------
 * Metadata calls (create, open, close, delete, resize, xattrs, sync_md,
 * iteration, unload) are synchronous and may be called from any thread; they
 * serialize per blob, and take the store's allocator lock only for as long as
 * a bitmap update.  They never wait on another thread's channel: a thread
 * that stops polling cannot hang them.
 *
 * Data calls (read/write/...) are asynchronous on the calling thread's
 * channel (zvfs_bs_get_channel(), lazily created, released at thread exit)
 * and complete while that thread polls (zvfs_bs_poll()/zvfs_bs_wait()), with
 * the same rules as zvfs/bdev.h: a submit that returns 0 calls back exactly
 * once, later, never inside the submit; a submit that fails never calls back.
 * No lock is shared between threads on the data path for allocated clusters.
 * I/O that spans clusters is split and issued in parallel.
 *
 * Units
 * -----
 * Data offsets and lengths are bytes, multiples of the store's io unit
 * (zvfs_bs_stats.io_unit_size, the device block size at init).  Buffer rules
 * are those of the device (zvfs_bdev_get_geometry()->buf_align).  Sizes of
 * blobs are in clusters.
 *
 * Zeroes and durability (FORMAT.md section 16)
 * --------------------------------------------
 * Holes of thin blobs and never-written parts of allocated clusters read as
 * zeroes, also after clusters are reused and after a crash.  A data write is
 * durable after its completion followed by zvfs_blob_sync_md() (for
 * allocations and size changes) or zvfs_bs_flush() (overwrites of allocated
 * clusters): those calls flush the device at their commit points.
 *
 * Errors: 0 or a negative errno.  -EUCLEAN: corrupt metadata (one blob fails,
 * not the store); -EBADMSG: bad checksum; -EILSEQ: not a valid store;
 * -ENOSPC: out of clusters or metadata pages; -ENOENT: no such blob;
 * -EBUSY: blob open (delete) or blobs open (unload); -EOPNOTSUPP: a blob made
 * by SPDK features ZVFS does not support (snapshots, clones, external
 * snapshots, unknown invalid_flags bits); -EPERM: metadata change (resize,
 * xattrs) of a blob whose metadata is read-only; -EROFS: a data write to a
 * read-only blob, or any change to a store loaded read_only; -ERANGE: data
 * I/O beyond the blob's end; -EINVAL: misaligned or empty I/O, bad
 * arguments; -E2BIG: an xattr whose name + value exceed 4063 bytes; plus the
 * device's errors (-EIO, -ENXIO, -ENOMEM).  docs/blobstore.md lists them per
 * call.
 */
#ifndef ZVFS_BLOB_H
#define ZVFS_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "zvfs/bdev.h"

#ifdef __cplusplus
extern "C" {
#endif

struct zvfs_bs;
struct zvfs_blob;
struct zvfs_bs_channel;

typedef uint64_t zvfs_blob_id;
#define ZVFS_BLOBID_INVALID UINT64_MAX

/* ---- store ------------------------------------------------------------ */

struct zvfs_bs_opts {
	uint32_t cluster_size; /* init: bytes, multiple of 4096, >= md_page_size (1 MiB) */
	uint32_t num_md_pages; /* init: UINT32_MAX = one per cluster (SPDK default) */
	uint32_t md_page_size; /* init: 0 = max(4096, physical block size) */
	char bstype[16];       /* init: type tag ("ZVFS"); load: must match, all-zero = any */
	bool force_recover;    /* load: rebuild the masks from metadata even if clean */
	bool read_only;	       /* load: never write (zvfs info, zvfs fsck without repair) */
};

/* Fill opts with the defaults above (bstype "ZVFS" for init, any for load). */
void zvfs_bs_opts_init(struct zvfs_bs_opts *opts);

/*
 * Format bdev as an empty store and return it loaded.  Zeroes the metadata
 * region and the data region (discard where it reads back zero, write-zeroes
 * otherwise), writes the super block, flushes, and creates ZVFS's internal
 * allocation-window blob (md page 0; hidden from every call here, see
 * docs/blobstore.md).  The caller keeps ownership of bdev and must keep it
 * open until zvfs_bs_unload().
 */
int zvfs_bs_init(struct zvfs_bdev *bdev, const struct zvfs_bs_opts *opts, struct zvfs_bs **bsp);

/*
 * Load the store on bdev.  A clean store reads its masks; an unclean one (or
 * force_recover) rebuilds them from the metadata region with large
 * sequential reads.  Blobs whose metadata is corrupt are reported (log line,
 * zvfs_bs_stats.bad_blobs) and fail alone on open.  -EILSEQ for a missing
 * or invalid super block, -ENXIO for a bstype mismatch.
 */
int zvfs_bs_load(struct zvfs_bdev *bdev, const struct zvfs_bs_opts *opts, struct zvfs_bs **bsp);

/*
 * Write the masks and mark the store clean, then free it.  -EBUSY (and the
 * store stays usable) while blobs are open.
 */
int zvfs_bs_unload(struct zvfs_bs *bs);

/* Flush the device: every completed data write becomes durable. */
int zvfs_bs_flush(struct zvfs_bs *bs);

/* The application's root blob (SPDK's super blob); ZVFS_BLOBID_INVALID if unset. */
int zvfs_bs_set_super(struct zvfs_bs *bs, zvfs_blob_id id);
zvfs_blob_id zvfs_bs_get_super(const struct zvfs_bs *bs);

struct zvfs_bs_stats {
	uint64_t cluster_size;	 /* bytes */
	uint32_t io_unit_size;	 /* bytes */
	uint32_t md_page_size;	 /* bytes */
	uint64_t total_clusters; /* on the device, metadata clusters included */
	uint64_t data_clusters;	 /* usable for blobs */
	uint64_t free_clusters;
	uint64_t md_pages; /* metadata region, pages */
	uint64_t md_pages_used;
	uint64_t blobs;
	uint64_t bad_blobs; /* blobs whose metadata failed to parse at load */
	bool loaded_dirty;  /* the last load had to recover */
	char bstype[17];    /* NUL-terminated */
};
int zvfs_bs_get_stats(struct zvfs_bs *bs, struct zvfs_bs_stats *st);

/* The device under the store. */
struct zvfs_bdev *zvfs_bs_get_bdev(const struct zvfs_bs *bs);

/*
 * Iterate over blobs in id order: *id = the first blob after prev
 * (ZVFS_BLOBID_INVALID to start).  Returns 0, or -ENOENT after the last.
 */
int zvfs_bs_next_blob(struct zvfs_bs *bs, zvfs_blob_id prev, zvfs_blob_id *id);

/* ---- blobs ----------------------------------------------------------------- */

struct zvfs_blob_xattr {
	const char *name; /* NUL-terminated; name + value <= 4063 bytes */
	const void *value;
	uint16_t value_len;
};

struct zvfs_blob_opts {
	uint64_t num_clusters;		      /* initial size */
	bool thin;			      /* allocate clusters on first write */
	const struct zvfs_blob_xattr *xattrs; /* initial user xattrs */
	size_t nxattrs;
};
void zvfs_blob_opts_init(struct zvfs_blob_opts *opts);

/* Create a blob and persist it (durable on return). */
int zvfs_blob_create(struct zvfs_bs *bs, const struct zvfs_blob_opts *opts, zvfs_blob_id *id);

/*
 * Open a blob.  Opening an open blob returns the same handle with its
 * reference count raised; each open needs one close.
 */
int zvfs_blob_open(struct zvfs_bs *bs, zvfs_blob_id id, struct zvfs_blob **blobp);

/*
 * Drop a reference; the last one syncs dirty metadata (as zvfs_blob_sync_md()
 * would, but without a flush when nothing is dirty) and frees the handle.  The
 * handle is freed even if that sync fails; the error is returned.
 */
int zvfs_blob_close(struct zvfs_blob *blob);

/*
 * Delete a closed blob, zeroing and freeing its clusters.  -EBUSY if open.
 * Atomic across a crash: the zeroed root page is the commit point.
 */
int zvfs_bs_delete_blob(struct zvfs_bs *bs, zvfs_blob_id id);

/*
 * Grow or shrink to num_clusters.  Growth of a thick blob allocates and
 * zeroes clusters; shrinking frees them after zeroing.  In-flight I/O
 * beyond the new end fails with -ERANGE.  Durable after zvfs_blob_sync_md().
 */
int zvfs_blob_resize(struct zvfs_blob *blob, uint64_t num_clusters);

/*
 * Persist the blob's metadata (flushing data it publishes first).  Always
 * flushes the device, also when nothing is dirty, so it is the blob's fsync:
 * every data write completed before the call is durable when it returns 0.
 */
int zvfs_blob_sync_md(struct zvfs_blob *blob);

/*
 * As zvfs_blob_sync_md(), without the flush that makes data durable before
 * the metadata that publishes it: a change that fits the root page (a file's
 * size after an append) costs one device flush instead of two.  When it
 * returns 0, data completed before the call and the metadata are durable
 * alike.  After a crash during the call the metadata may be on disk while
 * such data is not; those ranges then read as they were before the data
 * write -- zero for newly allocated clusters and never-written parts (clusters
 * are zero while free), never another blob's data.  For callers whose
 * durability promise starts when the sync returns (fsync).
 *
 * before_flush (may be NULL) is called exactly once, on the calling thread,
 * before the first device flush that has to cover the caller's data (or
 * before returning when the sync fails earlier): the caller may leave its data
 * writes in flight on its channel and wait for them there, so they overlap the
 * metadata writes.  A negative return from it is returned by the sync (the
 * metadata may be committed then).
 */
int zvfs_blob_sync_md_relaxed(struct zvfs_blob *blob, int (*before_flush)(void *), void *arg);

zvfs_blob_id zvfs_blob_get_id(const struct zvfs_blob *blob);
uint64_t zvfs_blob_get_num_clusters(const struct zvfs_blob *blob);
uint64_t zvfs_blob_get_num_allocated_clusters(const struct zvfs_blob *blob);
bool zvfs_blob_is_thin(const struct zvfs_blob *blob);
bool zvfs_blob_is_read_only(const struct zvfs_blob *blob);

/*
 * Extended attributes.  internal selects SPDK's internal namespace
 * (XATTR_INTERNAL descriptors), otherwise user xattrs.  set replaces an
 * existing value; get copies at most buflen bytes and returns the full
 * length (or -ENOENT); list fills names separated by NULs, returning the
 * bytes needed.  Changes are durable after zvfs_blob_sync_md().
 */
int zvfs_blob_set_xattr(struct zvfs_blob *blob, const char *name, const void *value, uint16_t len,
			bool internal);
int zvfs_blob_get_xattr(struct zvfs_blob *blob, const char *name, void *buf, size_t buflen,
			bool internal);
int zvfs_blob_remove_xattr(struct zvfs_blob *blob, const char *name, bool internal);
int zvfs_blob_list_xattrs(struct zvfs_blob *blob, char *buf, size_t buflen, bool internal);

/*
 * For SEEK_DATA / SEEK_HOLE: the first cluster index >= from that is
 * allocated (or unallocated); -ENOENT if none before the end.
 */
int zvfs_blob_next_allocated(struct zvfs_blob *blob, uint64_t from, uint64_t *cluster);
int zvfs_blob_next_unallocated(struct zvfs_blob *blob, uint64_t from, uint64_t *cluster);

/* ---- data I/O --------------------------------------------------------------- */

/* The calling thread's channel on bs (created on first use). */
int zvfs_bs_get_channel(struct zvfs_bs *bs, struct zvfs_bs_channel **chp);

int zvfs_blob_readv(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, const struct iovec *iov,
		    int iovcnt, uint64_t offset, zvfs_bdev_cb cb, void *cb_arg);
int zvfs_blob_writev(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, const struct iovec *iov,
		     int iovcnt, uint64_t offset, zvfs_bdev_cb cb, void *cb_arg);
int zvfs_blob_read(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, void *buf, uint64_t len,
		   uint64_t offset, zvfs_bdev_cb cb, void *cb_arg);
int zvfs_blob_write(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, const void *buf,
		    uint64_t len, uint64_t offset, zvfs_bdev_cb cb, void *cb_arg);
/* Make a range read zero (allocating nothing in thin blobs). */
int zvfs_blob_write_zeroes(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, uint64_t offset,
			   uint64_t len, zvfs_bdev_cb cb, void *cb_arg);
/* Zero a range; whole clusters of thin blobs are released (become holes). */
int zvfs_blob_unmap(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, uint64_t offset,
		    uint64_t len, zvfs_bdev_cb cb, void *cb_arg);

/*
 * Submit queued requests and reap finished ones; see zvfs_bdev_poll().  About
 * once per 1/32 of the store's clusters, a thin write's new cluster lies past
 * the allocation window (docs/blobstore.md); the next poll then grows the
 * window with a short synchronous metadata write before submitting it.
 */
int zvfs_bs_poll(struct zvfs_bs_channel *ch);
int zvfs_bs_wait(struct zvfs_bs_channel *ch);

/* Synchronous forms on the calling thread's channel. */
int zvfs_blob_read_sync(struct zvfs_blob *blob, void *buf, uint64_t len, uint64_t offset);
int zvfs_blob_write_sync(struct zvfs_blob *blob, const void *buf, uint64_t len, uint64_t offset);
int zvfs_blob_readv_sync(struct zvfs_blob *blob, const struct iovec *iov, int iovcnt,
			 uint64_t offset);
int zvfs_blob_writev_sync(struct zvfs_blob *blob, const struct iovec *iov, int iovcnt,
			  uint64_t offset);
int zvfs_blob_write_zeroes_sync(struct zvfs_blob *blob, uint64_t offset, uint64_t len);
int zvfs_blob_unmap_sync(struct zvfs_blob *blob, uint64_t offset, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif /* ZVFS_BLOB_H */
