/* SPDX-License-Identifier: MIT */
/*
 * wrap_stat.c - the stat family of libzvfs.so: fstat, stat, lstat, fstatat,
 * statx, their LFS64 twins and the pre-2.33 __fxstat/__xstat/__lxstat/
 * __fxstatat names that programs built against older glibc still call.
 *
 * Map of this file:
 *   1. fill       put the logical size and allocation of a ZVFS file into
 *                 the kernel's answer, by descriptor or by path
 *   2. stat       fstat, stat, lstat, fstatat (+64)
 *   3. statx
 *   4. old names  __fxstat, __xstat, __lxstat, __fxstatat (+64)
 *   5. times      futimens, utimensat, futimes, futimesat, utimes, lutimes, utime
 *
 * The real call always goes first: it checks the path (EFAULT, ENOENT,
 * EACCES) and fills every field; ZVFS only corrects st_size and st_blocks.
 * A path names a placeholder only if it is a regular file with at most one
 * block allocated (placeholders hold no data; ext4 may give the xattr a
 * block), so stat on an ordinary file bigger than that costs nothing more
 * than the real call; a small one costs one getxattr.  When the engine cannot be
 * mounted, or the descriptor is from an earlier mount, the real answer
 * stands (the placeholder's size is synced at close, fsync, fork and exec).
 */
/* stat() and stat64() are both defined here: keep glibc from renaming one to the other. */
#undef _FILE_OFFSET_BITS
#include "preload/preload.h"

#include <sys/sysmacros.h>

/* fdtable.c: the ofd at fd with a reference, without reviving a stale one */
struct zp_ofd *zp_core_fd_peek(int fd);

/* The 64 variants take struct stat64, which on LP64 is struct stat. */
_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "struct stat64 differs");

/* glibc 2.33 dropped these from its headers; the symbols remain for old binaries. */
int __fxstat(int ver, int fd, struct stat *st);
int __fxstat64(int ver, int fd, struct stat64 *st);
int __xstat(int ver, const char *path, struct stat *st);
int __xstat64(int ver, const char *path, struct stat64 *st);
int __lxstat(int ver, const char *path, struct stat *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags);

/* ---- 1. fill ------------------------------------------------------------------------- */

/*
 * A placeholder holds no data, but its xattr may not fit in the inode: ext4
 * with small inodes gives it one xattr block, counted in st_blocks.  So a
 * regular file with more than one block of st_blocks cannot be a
 * placeholder, and stat on it needs no xattr read.
 */
static inline bool zp_stat_may_be_placeholder(const struct stat *st)
{
	blksize_t bs = st->st_blksize > 0 ? st->st_blksize : 4096;

	return (uint64_t)st->st_blocks * 512 <= (uint64_t)bs;
}

/* Logical size and allocated 512-byte blocks of file; false if the engine cannot say. */
static bool file_sizes(struct zp_file *file, uint64_t *size, uint64_t *blocks)
{
	struct zvfs_file_stat fst;

	if (zp_file_stat(file, &fst) < 0)
		return false;
	*size = fst.size;
	*blocks = fst.allocated / 512;
	return true;
}

/* fd's ZVFS file into size/blocks; false when fd is not a live ZVFS descriptor. */
static bool fd_sizes(int fd, uint64_t *size, uint64_t *blocks)
{
	struct zp_ofd *ofd;
	bool ok = false;

	if (fd < 0)
		return false;
	ofd = zp_fd_get(fd);
	if (!ofd)
		return false;
	if (!zp_ofd_stale(ofd)) {
		ZP_ENTER();
		ok = file_sizes(ofd->file, size, blocks);
		ZP_LEAVE();
	}
	zp_ofd_put(ofd);
	return ok;
}

/*
 * The placeholder at path (relative to dirfd), whose real stat is st: its
 * ZVFS file into size/blocks.  Only files that may be placeholders are looked up.
 */
static bool path_sizes(int dirfd, const char *path, bool follow, const struct stat *st,
		       uint64_t *size, uint64_t *blocks)
{
	struct zp_file *file;
	bool ok = false;

	if (!S_ISREG(st->st_mode) || !zp_stat_may_be_placeholder(st))
		return false;
	ZP_ENTER();
	if (zp_file_lookup(-1, dirfd, path, follow, st, &file) > 0) {
		ok = file_sizes(file, size, blocks);
		zp_file_close(file);
	}
	ZP_LEAVE();
	return ok;
}

static void fill_fd(int fd, struct stat *st)
{
	uint64_t size, blocks;
	int saved = errno;

	if (fd_sizes(fd, &size, &blocks)) {
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)blocks;
	}
	errno = saved;
}

static void fill_path(int dirfd, const char *path, bool follow, struct stat *st)
{
	uint64_t size, blocks;
	int saved = errno;

	if (path_sizes(dirfd, path, follow, st, &size, &blocks)) {
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)blocks;
	}
	errno = saved;
}

/* fstatat semantics: an empty path with AT_EMPTY_PATH names dirfd itself. */
static void fill_at(int dirfd, const char *path, int flags, struct stat *st)
{
	/* The kernel has read path already: dereferencing it is safe now. */
	if ((flags & AT_EMPTY_PATH) && (!path || !path[0]))
		fill_fd(dirfd, st);
	else
		fill_path(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), st);
}

/* ---- 2. stat --------------------------------------------------------------------------- */

ZP_EXPORT int fstat(int fd, struct stat *st)
{
	int r;

	if (zp_bypass())
		return ZP_REAL(fstat)(fd, st);
	r = ZP_REAL(fstat)(fd, st);
	if (r == 0)
		fill_fd(fd, st);
	return r;
}

ZP_EXPORT int fstat64(int fd, struct stat64 *st64)
{
	struct stat *st = (struct stat *)st64;
	int r;

	if (zp_bypass())
		return ZP_REAL(fstat64)(fd, st);
	r = ZP_REAL(fstat64)(fd, st);
	if (r == 0)
		fill_fd(fd, st);
	return r;
}

ZP_EXPORT int stat(const char *path, struct stat *st)
{
	int r;

	if (zp_bypass())
		return ZP_REAL(stat)(path, st);
	r = ZP_REAL(stat)(path, st);
	if (r == 0)
		fill_path(AT_FDCWD, path, true, st);
	return r;
}

ZP_EXPORT int stat64(const char *path, struct stat64 *st64)
{
	struct stat *st = (struct stat *)st64;
	int r;

	if (zp_bypass())
		return ZP_REAL(stat64)(path, st);
	r = ZP_REAL(stat64)(path, st);
	if (r == 0)
		fill_path(AT_FDCWD, path, true, st);
	return r;
}

ZP_EXPORT int lstat(const char *path, struct stat *st)
{
	int r;

	if (zp_bypass())
		return ZP_REAL(lstat)(path, st);
	r = ZP_REAL(lstat)(path, st);
	if (r == 0)
		fill_path(AT_FDCWD, path, false, st);
	return r;
}

ZP_EXPORT int lstat64(const char *path, struct stat64 *st64)
{
	struct stat *st = (struct stat *)st64;
	int r;

	if (zp_bypass())
		return ZP_REAL(lstat64)(path, st);
	r = ZP_REAL(lstat64)(path, st);
	if (r == 0)
		fill_path(AT_FDCWD, path, false, st);
	return r;
}

ZP_EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	int r;

	if (zp_bypass())
		return ZP_REAL(fstatat)(dirfd, path, st, flags);
	r = ZP_REAL(fstatat)(dirfd, path, st, flags);
	if (r == 0)
		fill_at(dirfd, path, flags, st);
	return r;
}

ZP_EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st64, int flags)
{
	struct stat *st = (struct stat *)st64;
	int r;

	if (zp_bypass())
		return ZP_REAL(fstatat64)(dirfd, path, st, flags);
	r = ZP_REAL(fstatat64)(dirfd, path, st, flags);
	if (r == 0)
		fill_at(dirfd, path, flags, st);
	return r;
}

/* ---- 3. statx ------------------------------------------------------------------------ */

static void fill_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
	unsigned want = (mask | stx->stx_mask) & (STATX_SIZE | STATX_BLOCKS);
	uint64_t size, blocks;
	int saved = errno;
	bool ok;

	if (!want)
		return;
	if ((flags & AT_EMPTY_PATH) && (!path || !path[0])) {
		ok = fd_sizes(dirfd, &size, &blocks);
	} else {
		struct stat st = {0};

		/* Without a type there is nothing to judge by; zp_file_lookup needs a stat. */
		if (!(stx->stx_mask & STATX_TYPE))
			return;
		st.st_dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
		st.st_ino = (ino_t)stx->stx_ino;
		st.st_mode = stx->stx_mode;
		st.st_nlink = stx->stx_nlink;
		st.st_uid = stx->stx_uid;
		st.st_gid = stx->stx_gid;
		st.st_size = (off_t)stx->stx_size;
		/* Blocks not reported: let the xattr decide. */
		st.st_blocks = (stx->stx_mask & STATX_BLOCKS) ? (blkcnt_t)stx->stx_blocks : 0;
		st.st_blksize = (blksize_t)stx->stx_blksize;
		ok = path_sizes(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &st, &size, &blocks);
	}
	if (ok) {
		if (want & STATX_SIZE) {
			stx->stx_size = size;
			stx->stx_mask |= STATX_SIZE;
		}
		if (want & STATX_BLOCKS) {
			stx->stx_blocks = blocks;
			stx->stx_mask |= STATX_BLOCKS;
		}
	}
	errno = saved;
}

ZP_EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
	int r;

	if (zp_bypass())
		return ZP_REAL(statx)(dirfd, path, flags, mask, stx);
	r = ZP_REAL(statx)(dirfd, path, flags, mask, stx);
	if (r == 0)
		fill_statx(dirfd, path, flags, mask, stx);
	return r;
}

/* ---- 4. old names -------------------------------------------------------------------- */

/*
 * glibc may lack one of these in a future release; then the old binary
 * that calls it could not have linked either, but fail cleanly anyway.
 */
#define OLD_REAL(fn)                                                                               \
	({                                                                                         \
		__typeof__(zp_real.fn) f_ = ZP_REAL(fn);                                           \
		if (!f_) {                                                                         \
			errno = ENOSYS;                                                            \
			return -1;                                                                 \
		}                                                                                  \
		f_;                                                                                \
	})

ZP_EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	int r = OLD_REAL(__fxstat)(ver, fd, st);

	if (r == 0 && !zp_bypass())
		fill_fd(fd, st);
	return r;
}

ZP_EXPORT int __fxstat64(int ver, int fd, struct stat64 *st64)
{
	struct stat *st = (struct stat *)st64;
	int r = OLD_REAL(__fxstat64)(ver, fd, st);

	if (r == 0 && !zp_bypass())
		fill_fd(fd, st);
	return r;
}

ZP_EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	int r = OLD_REAL(__xstat)(ver, path, st);

	if (r == 0 && !zp_bypass())
		fill_path(AT_FDCWD, path, true, st);
	return r;
}

ZP_EXPORT int __xstat64(int ver, const char *path, struct stat64 *st64)
{
	struct stat *st = (struct stat *)st64;
	int r = OLD_REAL(__xstat64)(ver, path, st);

	if (r == 0 && !zp_bypass())
		fill_path(AT_FDCWD, path, true, st);
	return r;
}

ZP_EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	int r = OLD_REAL(__lxstat)(ver, path, st);

	if (r == 0 && !zp_bypass())
		fill_path(AT_FDCWD, path, false, st);
	return r;
}

ZP_EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st64)
{
	struct stat *st = (struct stat *)st64;
	int r = OLD_REAL(__lxstat64)(ver, path, st);

	if (r == 0 && !zp_bypass())
		fill_path(AT_FDCWD, path, false, st);
	return r;
}

ZP_EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	int r = OLD_REAL(__fxstatat)(ver, dirfd, path, st, flags);

	if (r == 0 && !zp_bypass())
		fill_at(dirfd, path, flags, st);
	return r;
}

ZP_EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st64, int flags)
{
	struct stat *st = (struct stat *)st64;
	int r = OLD_REAL(__fxstatat64)(ver, dirfd, path, st, flags);

	if (r == 0 && !zp_bypass())
		fill_at(dirfd, path, flags, st);
	return r;
}

/* ---- 5. times ------------------------------------------------------------------------- */

/*
 * Setting a ZVFS file's times: a size change not yet on the placeholder goes
 * there first.  Its ftruncate moves the mtime, and done later (at close) it
 * would undo the times just set: cp -p, install -p and gzip set them through
 * the open descriptor before closing it.  By path (which may name a file open
 * here, under any name), every such pending change goes first.
 */
static void times_settle(int fd)
{
	int saved = errno;

	if (zp_bypass())
		return;
	if (fd >= 0) {
		struct zp_ofd *ofd = zp_fd_get(fd);

		if (ofd) {
			zp_placeholder_sync(fd, ofd);
			zp_ofd_put(ofd);
		}
	} else {
		int limit = zp_fd_limit();

		for (int i = 0; i < limit; i++) {
			struct zp_ofd *ofd = zp_core_fd_peek(i);

			if (ofd) {
				zp_placeholder_sync(i, ofd);
				zp_ofd_put(ofd);
			}
		}
	}
	errno = saved;
}

ZP_EXPORT int futimens(int fd, const struct timespec times[2])
{
	times_settle(fd);
	return ZP_REAL(futimens)(fd, times);
}

ZP_EXPORT int utimensat(int dirfd, const char *path, const struct timespec times[2], int flags)
{
	/* "" with AT_EMPTY_PATH names dirfd itself (the kernel judges a bad pointer) */
	times_settle((flags & AT_EMPTY_PATH) ? dirfd : -1);
	return ZP_REAL(utimensat)(dirfd, path, times, flags);
}

ZP_EXPORT int futimes(int fd, const struct timeval tv[2])
{
	times_settle(fd);
	return ZP_REAL(futimes)(fd, tv);
}

ZP_EXPORT int futimesat(int dirfd, const char *path, const struct timeval tv[2])
{
	times_settle(-1);
	return ZP_REAL(futimesat)(dirfd, path, tv);
}

ZP_EXPORT int utimes(const char *path, const struct timeval tv[2])
{
	times_settle(-1);
	return ZP_REAL(utimes)(path, tv);
}

ZP_EXPORT int lutimes(const char *path, const struct timeval tv[2])
{
	times_settle(-1);
	return ZP_REAL(lutimes)(path, tv);
}

ZP_EXPORT int utime(const char *path, const struct utimbuf *times)
{
	times_settle(-1);
	return ZP_REAL(utime)(path, times);
}
