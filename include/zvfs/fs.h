/* SPDX-License-Identifier: MIT */
/*
 * zvfs/fs.h - the file layer: files over blobs, with a page cache.
 *
 * ZVFS keeps the names of files on Linux and their contents in blobs
 * (DESIGN.md D5).  A ZVFS file is a Linux regular file (the "placeholder",
 * kept sparse: it never holds data) carrying the xattr ZVFS_FS_XATTR, whose
 * value names the store and the blob.  The blob carries the file's logical
 * size, a generation number and a back-reference to the placeholder's
 * inode, so a stale or copied xattr is recognized and orphans can be found.
 *
 * This layer knows nothing about paths, descriptors or offsets: the preload
 * library (src/preload) and the daemon (later) translate POSIX calls into the
 * calls below, and keep the placeholder's st_size equal to the logical size.
 *
 * Objects
 * -------
 * struct zvfs_fs    a mounted store: device, blobstore, open files, page cache.
 * struct zvfs_file  one in-memory file per blob (an inode), shared by every
 *                   handle on that blob; reference counted by
 *                   zvfs_fs_file_open()/zvfs_fs_file_create() and
 *                   zvfs_file_close().  After its last close a file stays
 *                   cached (blob open, pages kept) until evicted or unmounted.
 *
 * Blob metadata of a file (user xattrs of the blob; little-endian):
 *   "zvfs.size"  u64  logical size in bytes
 *   "zvfs.gen"   u64  generation, random at creation, also in the file's xattr
 *   "zvfs.ino"   2 x u64  st_dev, st_ino of the placeholder (back-reference)
 * The store's identity (a UUID) is the "zvfs.store_uuid" xattr of the
 * store's super blob (zvfs_bs_get_super()), created when the store is first
 * mounted.
 *
 * Placeholder xattr value (ZVFS_FS_XATTR, text, 56 bytes, no NUL):
 * "zvfs1 <store id, 16 hex> <blob id, 16 hex> <gen, 16 hex>", where the store
 * id is the first 16 hex digits of the store UUID (zvfs_fs_short_id()).  It
 * is kept this short so ext4 stores it inside the inode: a placeholder then
 * has no block at all (st_blocks == 0).
 *
 * Caching and durability (DESIGN.md D9)
 * -------------------------------------
 * Reads and writes go through a per-file cache of 4 KiB pages bounded for
 * the whole mount by opts.cache_size: small writes are coalesced, dirty pages
 * are written back on zvfs_file_sync(), on pressure and at unmount, and
 * sequential reads trigger read-ahead.  ZVFS_IO_DIRECT bypasses the cache
 * (after writing back / dropping cached pages of the range, so both views
 * stay coherent).  ZVFS_IO_DSYNC / ZVFS_IO_SYNC write through and return
 * after the data (and, for growth, the size) is durable.  zvfs_file_sync()
 * returns when the file's data and the metadata that makes it reachable
 * (size, allocations) are on stable storage, device flush included.
 * Closing a file does not write back: data stays readable by later handles
 * in this mount and reaches the device at the latest at zvfs_fs_unmount().
 *
 * Threads
 * -------
 * Every call may be made from any thread.  Calls on different files run in
 * parallel.  On one file: reads and writes of disjoint ranges may run
 * concurrently; a write is atomic with respect to reads and writes that
 * overlap it; an append (ZVFS_IO_APPEND) is atomic with respect to all
 * other writes and size changes.
 *
 * Errors: 0 / a non-negative count, or a negative errno: -ENOSPC store full
 * (nothing already written is lost), -EIO device error, -EFBIG beyond
 * ZVFS_FS_MAX_SIZE, -EINVAL bad arguments (see each call), -ESTALE the xattr
 * names a missing blob or one with another generation or inode, -EXDEV the
 * file belongs to another store, -EUCLEAN malformed xattr, -EBUSY the store
 * is held by another process, -EOPNOTSUPP an unsupported fallocate mode.
 */
#ifndef ZVFS_FS_H
#define ZVFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "zvfs/blob.h"

#ifdef __cplusplus
extern "C" {
#endif

struct zvfs_fs;
struct zvfs_file;

#define ZVFS_FS_XATTR	  "user.zvfs.blob_id"
#define ZVFS_FS_XATTR_MAX 96
#define ZVFS_FS_MAX_SIZE  (1ull << 50) /* 1 PiB: bigger offsets get -EFBIG */

/* ---- mount ----------------------------------------------------------------- */

struct zvfs_fs_opts {
	const char *device;    /* device spec (zvfs/bdev.h); required */
	uint64_t cache_size;   /* bytes of page cache for the mount; 0 = 256 MiB */
	bool format;	       /* format the device when it holds no store (super block all zero) */
	uint32_t cluster_size; /* format: bytes (0 = 128 KiB) */
	bool read_only;	       /* load read-only: every change fails with -EROFS */
};
void zvfs_fs_opts_init(struct zvfs_fs_opts *opts);

/*
 * Open the device, claim it for this process (zvfs_bdev_claim(): a second
 * process gets -EBUSY and a log line naming the holder's pid and command),
 * load the store (recovering after an unclean shutdown) or format it, and
 * create the store's super blob with its UUID if the store has none.
 */
int zvfs_fs_mount(const struct zvfs_fs_opts *opts, struct zvfs_fs **fsp);

/*
 * Write back every dirty page, persist every file's size, close all files
 * (also ones with handles still open: their handles become invalid), delete
 * blobs of unlinked files, unload the store cleanly, release the claim and
 * close the device.  Frees fs even when something fails; returns the first
 * error.
 */
int zvfs_fs_unmount(struct zvfs_fs *fs);

/*
 * In a child after fork(): forget fs without any I/O (the parent owns the
 * device and the store); memory is not freed (it may be shared with nothing
 * but is cheaper to leak than to walk).  fs must not be used afterwards.
 */
void zvfs_fs_forget(struct zvfs_fs *fs);

/* The store's UUID as 36 characters + NUL. */
const char *zvfs_fs_store_id(const struct zvfs_fs *fs);

/* The store id placeholder xattrs carry: the UUID's first 16 hex digits + NUL. */
void zvfs_fs_short_id(const char *uuid, char sid[17]);

/* The blobstore under fs (for tools). */
struct zvfs_bs *zvfs_fs_get_bs(const struct zvfs_fs *fs);

/* Write back every file and flush the device (sync(2), syncfs(2)). */
int zvfs_fs_sync_all(struct zvfs_fs *fs);

struct zvfs_fs_stats {
	uint64_t files_open;   /* in-memory files with handles */
	uint64_t files_cached; /* in-memory files without handles */
	uint64_t cache_bytes;  /* pages held */
	uint64_t cache_dirty;  /* dirty bytes */
	uint64_t cache_limit;  /* opts.cache_size */
	uint64_t cache_hits;   /* pages read from the cache */
	uint64_t cache_misses; /* pages read from the device */
	uint64_t readahead;    /* pages read ahead */
	uint64_t writeback;    /* pages written back */
	uint64_t polled_reads; /* device reads a waiting thread polled for (zvfs_bdev_polled()) */
};
int zvfs_fs_get_stats(struct zvfs_fs *fs, struct zvfs_fs_stats *st);

/* ---- files ----------------------------------------------------------------- */

/* The placeholder's identity: st_dev and st_ino from fstat(2). */
struct zvfs_fs_ino {
	uint64_t dev;
	uint64_t ino;
};

/*
 * Create an empty file for the placeholder ino: a thin blob with size 0, a
 * new generation and the back-reference, durable on return.  Stores the
 * xattr value the caller must set on the placeholder in xattr (at least
 * ZVFS_FS_XATTR_MAX bytes) and its length in *xlen.  The caller owns one
 * handle on *filep.  If setting the xattr fails the caller calls
 * zvfs_file_close() then zvfs_fs_file_remove() to undo.
 */
int zvfs_fs_file_create(struct zvfs_fs *fs, const struct zvfs_fs_ino *ino, struct zvfs_file **filep,
			char *xattr, size_t *xlen);

/*
 * Open the file named by an xattr value read from a placeholder whose
 * identity is ino.  The same blob always yields the same struct zvfs_file
 * (its handle count raised).  -EXDEV another store, -ESTALE missing blob or
 * generation/inode mismatch (a copied or stale xattr), -EUCLEAN malformed.
 */
int zvfs_fs_file_open(struct zvfs_fs *fs, const void *xattr, size_t xlen,
		      const struct zvfs_fs_ino *ino, struct zvfs_file **filep);

/*
 * Drop one handle.  The last handle of an unlinked file deletes its blob;
 * otherwise the file stays cached.  Does not write back.
 */
int zvfs_file_close(struct zvfs_file *file);

/*
 * The placeholder named by xattr lost its last Linux name (unlink, or a
 * rename over it).  An open file is deleted at its last close; a file
 * without handles is deleted now.  -ESTALE/-EXDEV/-EUCLEAN as for open
 * (nothing is deleted then).
 */
int zvfs_fs_file_remove(struct zvfs_fs *fs, const void *xattr, size_t xlen,
			const struct zvfs_fs_ino *ino);
/*
 * The same when another process still has the placeholder open (direct mode:
 * its handles are in its own engine): an open file here is deleted at its
 * last close as above, a file without handles here is left for the other
 * process's last close (zvfs_file_set_unlinked()).
 */
int zvfs_fs_file_remove_shared(struct zvfs_fs *fs, const void *xattr, size_t xlen,
			       const struct zvfs_fs_ino *ino);
/*
 * Whether file's last close here deletes its blob: set when its last name is
 * gone and no other process has it open, cleared while one still has.
 */
void zvfs_file_set_unlinked(struct zvfs_file *file, bool unlinked);

/*
 * The placeholder's identity changed (not by rename or link, which keep the
 * inode; by a restore that recreated the file, for instance) -- update the
 * back-reference.  Durable on return.
 */
int zvfs_file_set_ino(struct zvfs_file *file, const struct zvfs_fs_ino *ino);

/* ---- data ------------------------------------------------------------------ */

/* Flags of zvfs_file_read() / zvfs_file_write(). */
#define ZVFS_IO_DIRECT 0x1u  /* bypass the cache (O_DIRECT); see zvfs_file_direct_align() */
#define ZVFS_IO_DSYNC  0x2u  /* write through; data + size durable on return (O_DSYNC) */
#define ZVFS_IO_SYNC   0x4u  /* as DSYNC (all metadata ZVFS keeps is the size) */
#define ZVFS_IO_APPEND 0x8u  /* write at the end of file, atomically; off is ignored */
#define ZVFS_IO_NOWAIT 0x10u /* read: -EAGAIN unless every byte is in the cache */

/*
 * Read up to the sum of iov lengths at byte offset off.  Returns the bytes
 * read: short only at end of file (0 at or beyond it).  Holes read zero.
 * Direct reads need offset, length and buffers aligned to
 * zvfs_file_direct_align() (-EINVAL otherwise, as the kernel).
 */
ssize_t zvfs_file_read(struct zvfs_file *file, const struct iovec *iov, int iovcnt, uint64_t off,
		       unsigned flags);

/*
 * Write the iov bytes at off (at the end of file with ZVFS_IO_APPEND),
 * growing the file as needed.  Returns the bytes written (all of them, or a
 * negative errno and nothing visible beyond what a partial -ENOSPC/-EIO
 * completed).  *endp (may be NULL) receives the offset just past the data
 * written, which for an append is where the caller's file offset goes.
 */
ssize_t zvfs_file_write(struct zvfs_file *file, const struct iovec *iov, int iovcnt, uint64_t off,
			unsigned flags, uint64_t *endp);

/* The alignment ZVFS_IO_DIRECT needs (the device's logical block size). */
uint32_t zvfs_file_direct_align(const struct zvfs_file *file);

/* Set the logical size; shrinking frees whole clusters past the end and zeroes the tail. */
int zvfs_file_truncate(struct zvfs_file *file, uint64_t size);

/*
 * fallocate(2) modes: 0 and FALLOC_FL_KEEP_SIZE (allocate, size grows unless
 * KEEP_SIZE), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (range reads zero,
 * whole clusters freed), FALLOC_FL_ZERO_RANGE [| KEEP_SIZE].  Other modes
 * -EOPNOTSUPP; len 0 -EINVAL.
 */
int zvfs_file_fallocate(struct zvfs_file *file, int mode, uint64_t off, uint64_t len);

#define ZVFS_SYNC_DATA	  0x1u /* fdatasync: the size only if it changed */
#define ZVFS_SYNC_NOFLUSH 0x2u /* sync_file_range: write back, no device flush */

/* Make the file durable (see "Caching and durability"); flags above. */
int zvfs_file_sync(struct zvfs_file *file, unsigned flags);

/* Write back dirty pages of [off, off+len) (len 0 = to the end); no flush. */
int zvfs_file_writeback(struct zvfs_file *file, uint64_t off, uint64_t len);

/* Drop clean cached pages of the range (POSIX_FADV_DONTNEED); len 0 = to the end. */
int zvfs_file_drop_cache(struct zvfs_file *file, uint64_t off, uint64_t len);

/* Start reading a range into the cache (POSIX_FADV_WILLNEED); may do nothing. */
int zvfs_file_prefetch(struct zvfs_file *file, uint64_t off, uint64_t len);

struct zvfs_file_stat {
	uint64_t size;	    /* logical size, bytes */
	uint64_t allocated; /* bytes of allocated clusters (st_blocks * 512) */
	zvfs_blob_id blob_id;
	uint64_t gen;
	bool unlinked; /* lost its last name; deleted at last close */
};
int zvfs_file_stat(struct zvfs_file *file, struct zvfs_file_stat *st);

/* The logical size (cheap: no lock). */
uint64_t zvfs_file_size(struct zvfs_file *file);

/*
 * Mirror the logical size into *slot: stored there now and after every change
 * of the size (release order, after the size itself), until removed.  A file
 * keeps any number of mirrors (zvfsd: one per client handle, in that client's
 * shared size table).  Add: 0 or -ENOMEM; removing a slot that is not there
 * does nothing.  The slot must stay valid until removed.
 */
int zvfs_file_mirror_add(struct zvfs_file *file, _Atomic uint64_t *slot);
void zvfs_file_mirror_remove(struct zvfs_file *file, _Atomic uint64_t *slot);

/*
 * SEEK_DATA (hole false) / SEEK_HOLE (hole true) from off: *res = the first
 * offset >= off in data (a hole).  Holes are unallocated clusters with no
 * dirty cached page; the end of file is a hole.  -ENXIO when off >= size,
 * or no data at or after off.
 */
int zvfs_file_seek(struct zvfs_file *file, uint64_t off, bool hole, uint64_t *res);

/* Bytes readable without blocking from off (FIONREAD): size - off, or 0. */
uint64_t zvfs_file_readable(struct zvfs_file *file, uint64_t off);

/* ---- xattr value ----------------------------------------------------------- */

/*
 * Parse a placeholder xattr value: store id (16 hex digits + NUL, fits the
 * 37-byte buffer), blob id and generation.  -EUCLEAN when malformed.
 */
int zvfs_fs_xattr_parse(const void *xattr, size_t xlen, char store_id[37], zvfs_blob_id *blob_id,
			uint64_t *gen);

#ifdef __cplusplus
}
#endif

#endif /* ZVFS_FS_H */
