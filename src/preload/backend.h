/* SPDX-License-Identifier: MIT */
/*
 * backend.h - where a ZVFS file's data lives, as one table of operations
 * (in the manner of an SQLite VFS): the wrappers never call the engine
 * directly, only the zp_file_*() wrappers below, which go through zp_be.
 *
 *   backend_local.c   ZVFS_MODE=direct (default): the engine in this process
 *   backend_remote.c  ZVFS_MODE=daemon: zvfsd over ipc/proto.h and ipc/ring.h
 *
 * A struct zp_file is one handle on one ZVFS file, opaque to the wrappers
 * (the local backend's is a struct zvfs_file; the remote backend's holds
 * the daemon's handle).  Every operation returns 0 / a count or -errno and
 * is called between ZP_ENTER() and ZP_LEAVE().
 */
#ifndef ZVFS_PRELOAD_BACKEND_H
#define ZVFS_PRELOAD_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "zvfs/fs.h"

struct zp_file;

struct zp_backend {
	const char *name;
	/*
	 * The placeholder (fd >= 0, or dirfd/path with follow) whose stat is st
	 * and whose xattr value is xattr/xlen: one handle on its ZVFS file.
	 */
	int (*open)(int fd, int dirfd, const char *path, bool follow, const struct stat *st,
		    const void *xattr, size_t xlen, struct zp_file **filep);
	/*
	 * Make the new, empty, xattr-less placeholder fd a ZVFS file (blob and
	 * xattr).  -EEXIST: another process or thread made it one first (the
	 * caller opens that); -ENOTSUP/-EACCES/...: no xattr can be set here.
	 */
	int (*create)(int fd, const struct stat *st, struct zp_file **filep);
	/*
	 * The placeholder has lost a name (unlink, rename over it): free its blob
	 * if that was the last.  pfd: an fd of the victim opened before the name
	 * went (O_PATH; -1 when the backend does not need one), xattr/ino: what
	 * it carried.  shared: another process has it open (direct mode, which
	 * cannot see its handles: that process's last close frees it then).
	 */
	int (*remove)(int pfd, const void *xattr, size_t xlen, const struct zvfs_fs_ino *ino,
		      bool shared);
	/* Drop one handle. */
	int (*close)(struct zp_file *file);
	/* The handle died with its mount or connection: free what the client holds, nothing more. */
	void (*forget)(struct zp_file *file);
	ssize_t (*read)(struct zp_file *file, const struct iovec *iov, int iovcnt, uint64_t off,
			unsigned flags);
	ssize_t (*write)(struct zp_file *file, const struct iovec *iov, int iovcnt, uint64_t off,
			 unsigned flags, uint64_t *endp);
	int (*truncate)(struct zp_file *file, uint64_t size);
	int (*fallocate)(struct zp_file *file, int mode, uint64_t off, uint64_t len);
	int (*sync)(struct zp_file *file, unsigned flags);
	int (*writeback)(struct zp_file *file, uint64_t off, uint64_t len);
	int (*drop_cache)(struct zp_file *file, uint64_t off, uint64_t len);
	int (*prefetch)(struct zp_file *file, uint64_t off, uint64_t len);
	int (*stat)(struct zp_file *file, struct zvfs_file_stat *st);
	/* The logical size; -errno when it cannot be had (daemon gone). */
	int64_t (*size)(struct zp_file *file);
	int (*seek)(struct zp_file *file, uint64_t off, bool hole, uint64_t *res);
	/* sync(2)/syncfs(2): write back everything, without starting anything new. */
	int (*sync_all)(void);
};

extern const struct zp_backend zp_backend_local;
extern const struct zp_backend zp_backend_remote;

/* The backend of ZVFS_MODE, chosen once by the constructor. */
extern const struct zp_backend *zp_be;

static inline bool zp_remote(void)
{
	return zp_be == &zp_backend_remote;
}

static inline int zp_file_close(struct zp_file *f)
{
	return zp_be->close(f);
}

static inline ssize_t zp_file_read(struct zp_file *f, const struct iovec *iov, int cnt,
				   uint64_t off, unsigned flags)
{
	return zp_be->read(f, iov, cnt, off, flags);
}

static inline ssize_t zp_file_write(struct zp_file *f, const struct iovec *iov, int cnt,
				    uint64_t off, unsigned flags, uint64_t *endp)
{
	return zp_be->write(f, iov, cnt, off, flags, endp);
}

static inline int zp_file_truncate(struct zp_file *f, uint64_t size)
{
	return zp_be->truncate(f, size);
}

static inline int zp_file_fallocate(struct zp_file *f, int mode, uint64_t off, uint64_t len)
{
	return zp_be->fallocate(f, mode, off, len);
}

static inline int zp_file_sync(struct zp_file *f, unsigned flags)
{
	return zp_be->sync(f, flags);
}

static inline int zp_file_writeback(struct zp_file *f, uint64_t off, uint64_t len)
{
	return zp_be->writeback(f, off, len);
}

static inline int zp_file_drop_cache(struct zp_file *f, uint64_t off, uint64_t len)
{
	return zp_be->drop_cache(f, off, len);
}

static inline int zp_file_prefetch(struct zp_file *f, uint64_t off, uint64_t len)
{
	return zp_be->prefetch(f, off, len);
}

static inline int zp_file_stat(struct zp_file *f, struct zvfs_file_stat *st)
{
	return zp_be->stat(f, st);
}

static inline int64_t zp_file_size(struct zp_file *f)
{
	return zp_be->size(f);
}

static inline int zp_file_seek(struct zp_file *f, uint64_t off, bool hole, uint64_t *res)
{
	return zp_be->seek(f, off, hole, res);
}

/* Bytes readable from off without blocking (FIONREAD); 0 when unknown. */
static inline uint64_t zp_file_readable(struct zp_file *f, uint64_t off)
{
	int64_t size = zp_be->size(f);

	return size > 0 && (uint64_t)size > off ? (uint64_t)size - off : 0;
}

/* ---- remote-only hooks (backend_remote.c), called by core.c ---------------------------- */

/*
 * A new connection to zvfsd at ZVFS_SOCKET (no handshake): the socket, or -errno with *what
 * naming the call that failed ("socket", "connect").
 */
int zp_remote_dial(const char **what);
/* Fork child: forget the parent's connection and rings (never used here). */
void zp_remote_after_fork_child(void);
/*
 * fd (about to be closed or replaced by the application) is the control
 * socket: let it go (handles die with it; descriptors revive on use).
 */
void zp_remote_protect_fd(int fd);
/*
 * Make what this handle wrote durable (fdatasync), if it wrote anything: at
 * close, exec and exit, so the files of a program that has finished survive
 * a later SIGKILL of the daemon, as direct mode's unmount at exit makes them.
 * (A write-back alone would not do: the size is persisted only by a sync.)
 */
int zp_remote_flush(struct zp_file *file);
/* Direct mode: whether f's last close here frees its blob (zvfs_file_set_unlinked()). */
void zp_local_set_unlinked(struct zp_file *f, bool unlinked);

/* As zp_remote_protect_fd() for close_range(first, last). */
void zp_remote_protect_range(unsigned first, unsigned last);

#endif /* ZVFS_PRELOAD_BACKEND_H */
