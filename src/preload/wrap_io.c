/* SPDX-License-Identifier: MIT */
/*
 * wrap_io.c - the data, position, size and sync entry points of libzvfs.so.
 *
 * Map of this file:
 *   1. helpers      access-mode and flag mapping, iovec checks in the
 *                   kernel's order, the stale-descriptor report
 *   2. data core    one read and one write routine on an ofd, used by every
 *                   entry point of the read/write family
 *   3. read/write   read, write, pread(64), pwrite(64), readv, writev,
 *                   preadv(64), pwritev(64), preadv(64)v2, pwritev(64)v2
 *   4. fortify      __read_chk, __pread_chk, __pread64_chk
 *   5. position     lseek, lseek64
 *   6. size         ftruncate, truncate, fallocate, posix_fallocate,
 *                   posix_fadvise (+64)
 *   7. sync         fsync, fdatasync, sync_file_range, syncfs, sync
 *   8. transfers    copy_file_range, sendfile(64), splice: emulated with
 *                   reads and writes when one end is a ZVFS descriptor
 *
 * Every entry point starts with the bypass check and one fd-table load; a
 * descriptor that is not ZVFS's goes to libc at that cost and no more.  The
 * work on a ZVFS descriptor lives in static functions that return
 * 0/-errno and drop the caller's ofd reference; the entry point converts at
 * its return.  Checks follow the order the kernel applies them, so a call
 * with two faults fails with the same errno as on ext4.
 */
/*
 * This file defines both pread() and pread64() and friends: with
 * _FILE_OFFSET_BITS=64 (meson's default) glibc's headers would rename the
 * first to the second, and fortify's inline versions would clash.  On LP64
 * both names take the same 64-bit off_t.
 */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE
#include "preload/preload.h"

#include <linux/fs.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* The kernel caps one transfer at INT_MAX rounded down to a page (MAX_RW_COUNT). */
#define IO_MAX_COUNT 0x7ffff000L
/* Emulated transfers (copy_file_range, sendfile, splice) move this much at a time. */
#define XFER_CHUNK (1u << 20)

/* Newer kernels know more RWF_ flags than Debian 12's headers. */
#ifndef RWF_NOAPPEND
#define RWF_NOAPPEND 0x00000020
#endif
#define IO_RWF_KNOWN (RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND | RWF_NOAPPEND)

/* glibc's fortify entry points: declared by its headers only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t nbytes, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t nbytes, off64_t off, size_t buflen);
extern void __chk_fail(void) __attribute__((noreturn));

/* ---- 1. helpers ------------------------------------------------------------------ */

static inline bool mode_can_read(int fl)
{
	int acc = fl & O_ACCMODE;

	return !(fl & O_PATH) && (acc == O_RDONLY || acc == O_RDWR);
}

static inline bool mode_can_write(int fl)
{
	int acc = fl & O_ACCMODE;

	return !(fl & O_PATH) && (acc == O_WRONLY || acc == O_RDWR);
}

static inline int ofd_flags(const struct zp_ofd *ofd)
{
	return atomic_load_explicit(&ofd->flags, memory_order_relaxed);
}

/* Engine flags implied by the open flags. */
static inline unsigned rd_ioflags(int fl)
{
	return (fl & O_DIRECT) ? ZVFS_IO_DIRECT : 0;
}

static inline unsigned wr_ioflags(int fl)
{
	unsigned io = (fl & O_DIRECT) ? ZVFS_IO_DIRECT : 0;

	/* O_SYNC includes the O_DSYNC bit. */
	if ((fl & O_SYNC) == O_SYNC)
		io |= ZVFS_IO_SYNC;
	else if (fl & O_DSYNC)
		io |= ZVFS_IO_DSYNC;
	if (fl & O_APPEND)
		io |= ZVFS_IO_APPEND;
	return io;
}

/*
 * Mark that the placeholder's st_size may lag (close and fsync fix it).
 * Load first: concurrent writers on one fd should not bounce the line.
 */
static inline void mark_size_dirty(struct zp_ofd *ofd)
{
	if (!atomic_load_explicit(&ofd->size_dirty, memory_order_relaxed))
		atomic_store_explicit(&ofd->size_dirty, true, memory_order_release);
}

static atomic_bool stale_logged;

/*
 * A descriptor from an earlier mount (fork child, failed exec): EIO.
 * zp_fd_get() has already said why, once, at error level; this adds which
 * call, once, for debugging.
 */
static int stale_err(const char *call)
{
	if (!atomic_exchange(&stale_logged, true)) {
		ZP_ENTER();
		ZVFS_DEBUG("%s: ZVFS descriptor from an earlier mount of the store (inherited "
			   "across fork?): I/O on it fails with EIO",
			   call);
		ZP_LEAVE();
	}
	return -EIO;
}

/*
 * Check an iovec array as the kernel's import_iovec() does: EINVAL for a
 * bad count or a length that is negative as ssize_t.  Returns the total,
 * which may exceed IO_MAX_COUNT (see iov_clamp()).
 */
static ssize_t iov_check(const struct iovec *iov, int cnt, size_t *total)
{
	size_t sum = 0;

	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	for (int i = 0; i < cnt; i++) {
		if ((ssize_t)iov[i].iov_len < 0)
			return -EINVAL;
		sum += iov[i].iov_len;
		if (sum > (size_t)IO_MAX_COUNT)
			sum = (size_t)IO_MAX_COUNT + 1; /* only "too much" matters */
	}
	*total = sum;
	return 0;
}

/*
 * The kernel truncates a vector longer than IO_MAX_COUNT; the caller's
 * array is const, so build a shortened copy in tmp (IOV_MAX entries).
 * Returns the new count.
 */
static int iov_clamp(const struct iovec *iov, int cnt, struct iovec *tmp)
{
	size_t left = (size_t)IO_MAX_COUNT;
	int n = 0;

	for (int i = 0; i < cnt && left > 0; i++) {
		tmp[n] = iov[i];
		if (tmp[n].iov_len > left)
			tmp[n].iov_len = left;
		left -= tmp[n].iov_len;
		n++;
	}
	return n;
}

/* ---- 2. data core ------------------------------------------------------------- */

/*
 * Read from ofd: at off, or at the file position when off < 0 (moving it).
 * total is the iovec's length, at most IO_MAX_COUNT.  rwf: preadv2 flags,
 * already checked against IO_RWF_KNOWN.
 */
static ssize_t ofd_read(struct zp_ofd *ofd, const struct iovec *iov, int cnt, size_t total,
			off_t off, int rwf, const char *call)
{
	int fl = ofd_flags(ofd);
	unsigned io = rd_ioflags(fl);
	bool at_pos = off < 0;
	bool resv = false;
	uint64_t o;
	ssize_t r;

	if (!mode_can_read(fl))
		return -EBADF;
	if (__builtin_expect(zp_ofd_stale(ofd), 0))
		return stale_err(call);
	if (total == 0)
		return 0;
	if (rwf & RWF_NOWAIT)
		io |= ZVFS_IO_NOWAIT;
	if (at_pos) {
		int64_t p;

		pthread_mutex_lock(&ofd->pos_lock);
		resv = ofd->shared;
		p = resv ? zp_ofd_pos_reserve(ofd, total) : zp_ofd_pos_load(ofd);
		if (p < 0) {
			pthread_mutex_unlock(&ofd->pos_lock);
			return p;
		}
		o = (uint64_t)p;
	} else {
		o = (uint64_t)off;
	}
	/* As rw_verify_area(): the range must not pass the largest loff_t. */
	if ((int64_t)(o + total) < 0) {
		r = -EINVAL;
	} else {
		ZP_ENTER();
		r = zp_file_read(ofd->file, iov, cnt, o, io);
		ZP_LEAVE();
		/* Reading past the largest file size is end of file, as in the kernel. */
		if (r == -EFBIG)
			r = 0;
	}
	if (at_pos) {
		if (resv)
			zp_ofd_pos_unreserve(ofd, total - (r > 0 ? (size_t)r : 0));
		else if (r > 0)
			zp_ofd_pos_store(ofd, o + (uint64_t)r);
		pthread_mutex_unlock(&ofd->pos_lock);
	}
	return r;
}

/* Write to ofd: as ofd_read(); O_APPEND / RWF_APPEND append and move the position to the end. */
static ssize_t ofd_write(struct zp_ofd *ofd, const struct iovec *iov, int cnt, size_t total,
			 off_t off, int rwf, const char *call)
{
	int fl = ofd_flags(ofd);
	unsigned io = wr_ioflags(fl);
	bool at_pos = off < 0;
	bool resv = false;
	uint64_t o, end = 0;
	ssize_t r;

	if (!mode_can_write(fl))
		return -EBADF;
	if (__builtin_expect(zp_ofd_stale(ofd), 0))
		return stale_err(call);
	if (total == 0)
		return 0;
	if (__builtin_expect(rwf != 0, 0)) {
		/* ext4 refuses non-blocking buffered writes the same way. */
		if (rwf & RWF_NOWAIT) {
			ZVFS_WARN_ONCE("pwritev2(RWF_NOWAIT) on a ZVFS file: refused (EOPNOTSUPP)");
			return -EOPNOTSUPP;
		}
		if (rwf & RWF_SYNC)
			io |= ZVFS_IO_SYNC;
		if (rwf & RWF_DSYNC)
			io |= ZVFS_IO_DSYNC;
		if (rwf & RWF_APPEND)
			io |= ZVFS_IO_APPEND;
		if (rwf & RWF_NOAPPEND)
			io &= ~ZVFS_IO_APPEND;
	}
	if (at_pos) {
		int64_t p;

		pthread_mutex_lock(&ofd->pos_lock);
		/* An append ignores the offset: no kernel round trip for a shared one. */
		resv = ofd->shared && !(io & ZVFS_IO_APPEND);
		p = (io & ZVFS_IO_APPEND) ? 0
		    : resv		  ? zp_ofd_pos_reserve(ofd, total)
					  : zp_ofd_pos_load(ofd);
		if (p < 0) {
			pthread_mutex_unlock(&ofd->pos_lock);
			return p;
		}
		o = (uint64_t)p;
	} else {
		o = (uint64_t)off;
	}
	if (!(io & ZVFS_IO_APPEND) && (int64_t)(o + total) < 0) {
		r = -EINVAL;
	} else {
		ZP_ENTER();
		r = zp_file_write(ofd->file, iov, cnt, o, io, &end);
		ZP_LEAVE();
	}
	if (r > 0)
		mark_size_dirty(ofd);
	if (at_pos) {
		if (resv)
			zp_ofd_pos_unreserve(ofd, total - (r > 0 ? (size_t)r : 0));
		else if (r > 0)
			zp_ofd_pos_store(ofd, end);
		pthread_mutex_unlock(&ofd->pos_lock);
	}
	return r;
}

/* One buffer: clamp like the kernel, then the core; drops the reference. */
static ssize_t ofd_rw1(struct zp_ofd *ofd, void *buf, size_t n, off_t off, bool wr,
		       const char *call)
{
	struct iovec v;
	ssize_t r;
	int saved = errno;

	if (n > (size_t)IO_MAX_COUNT)
		n = (size_t)IO_MAX_COUNT;
	v.iov_base = buf;
	v.iov_len = n;
	if (wr)
		r = ofd_write(ofd, &v, 1, n, off, 0, call);
	else
		r = ofd_read(ofd, &v, 1, n, off, 0, call);
	zp_ofd_put(ofd);
	if (r >= 0)
		errno = saved; /* the engine may have touched errno on success */
	return r;
}

/* The rare vector longer than IO_MAX_COUNT: a shortened copy, kept off the common stack. */
static __attribute__((noinline)) ssize_t ofd_rwv_clamped(struct zp_ofd *ofd,
							 const struct iovec *iov, int cnt,
							 off_t off, int rwf, bool wr,
							 const char *call)
{
	struct iovec tmp[IOV_MAX];

	cnt = iov_clamp(iov, cnt, tmp);
	if (wr)
		return ofd_write(ofd, tmp, cnt, (size_t)IO_MAX_COUNT, off, rwf, call);
	return ofd_read(ofd, tmp, cnt, (size_t)IO_MAX_COUNT, off, rwf, call);
}

/*
 * Vectors: off >= 0 an offset, -1 the file position; rwf preadv2 flags.
 * The caller has rejected other negative offsets.  Drops the reference.
 */
static ssize_t ofd_rwv(struct zp_ofd *ofd, const struct iovec *iov, int cnt, off_t off, int rwf,
		       bool wr, const char *call)
{
	size_t total = 0;
	ssize_t r;
	int saved = errno;

	r = iov_check(iov, cnt, &total);
	if (r < 0)
		goto out;
	/*
	 * The kernel checks the access mode and an empty vector before the
	 * RWF flags, so unknown flags on a zero-length call return 0.
	 */
	if (rwf & ~IO_RWF_KNOWN) {
		int fl = ofd_flags(ofd);

		if (wr ? !mode_can_write(fl) : !mode_can_read(fl))
			r = -EBADF;
		else if (total == 0)
			r = 0;
		else
			r = -EOPNOTSUPP;
		goto out;
	}
	if (total > (size_t)IO_MAX_COUNT)
		r = ofd_rwv_clamped(ofd, iov, cnt, off, rwf, wr, call);
	else if (wr)
		r = ofd_write(ofd, iov, cnt, total, off, rwf, call);
	else
		r = ofd_read(ofd, iov, cnt, total, off, rwf, call);
out:
	zp_ofd_put(ofd);
	if (r >= 0)
		errno = saved;
	return r;
}

/* ---- 3. read/write ------------------------------------------------------------ */

static inline ssize_t do_read(int fd, void *buf, size_t n)
{
	ZP_OFD_OR_REAL(ofd, fd, read, (fd, buf, n));
	return zp_ret(ofd_rw1(ofd, buf, n, -1, false, "read"));
}

ZP_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	return do_read(fd, buf, n);
}

ZP_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	ZP_OFD_OR_REAL(ofd, fd, write, (fd, buf, n));
	return zp_ret(ofd_rw1(ofd, (void *)buf, n, -1, true, "write"));
}

/* pread/pwrite: a negative offset is EINVAL before anything else (ksys_pread64). */
static inline ssize_t ofd_prw(struct zp_ofd *ofd, void *buf, size_t n, off_t off, bool wr,
			      const char *call)
{
	if (off < 0) {
		zp_ofd_put(ofd);
		return zp_ret(-EINVAL);
	}
	return zp_ret(ofd_rw1(ofd, buf, n, off, wr, call));
}

static inline ssize_t do_pread(int fd, void *buf, size_t n, off_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, pread, (fd, buf, n, off));
	return ofd_prw(ofd, buf, n, off, false, "pread");
}

static inline ssize_t do_pread64(int fd, void *buf, size_t n, off_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, pread64, (fd, buf, n, off));
	return ofd_prw(ofd, buf, n, off, false, "pread64");
}

ZP_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return do_pread(fd, buf, n, off);
}

ZP_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	return do_pread64(fd, buf, n, off);
}

ZP_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, pwrite, (fd, buf, n, off));
	return ofd_prw(ofd, (void *)buf, n, off, true, "pwrite");
}

ZP_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, pwrite64, (fd, buf, n, off));
	return ofd_prw(ofd, (void *)buf, n, off, true, "pwrite64");
}

ZP_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ZP_OFD_OR_REAL(ofd, fd, readv, (fd, iov, cnt));
	return zp_ret(ofd_rwv(ofd, iov, cnt, -1, 0, false, "readv"));
}

ZP_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	ZP_OFD_OR_REAL(ofd, fd, writev, (fd, iov, cnt));
	return zp_ret(ofd_rwv(ofd, iov, cnt, -1, 0, true, "writev"));
}

/*
 * preadv/pwritev and the v2 forms: off -1 in the v2 forms means the file
 * position; any other negative offset is EINVAL before the vector is read.
 */
static ssize_t ofd_prwv(struct zp_ofd *ofd, const struct iovec *iov, int cnt, off_t off, int rwf,
			bool v2, bool wr, const char *call)
{
	if (off < 0 && !(v2 && off == -1)) {
		zp_ofd_put(ofd);
		return zp_ret(-EINVAL);
	}
	return zp_ret(ofd_rwv(ofd, iov, cnt, off, rwf, wr, call));
}

ZP_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, preadv, (fd, iov, cnt, off));
	return ofd_prwv(ofd, iov, cnt, off, 0, false, false, "preadv");
}

ZP_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, preadv64, (fd, iov, cnt, off));
	return ofd_prwv(ofd, iov, cnt, off, 0, false, false, "preadv64");
}

ZP_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, pwritev, (fd, iov, cnt, off));
	return ofd_prwv(ofd, iov, cnt, off, 0, false, true, "pwritev");
}

ZP_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	ZP_OFD_OR_REAL(ofd, fd, pwritev64, (fd, iov, cnt, off));
	return ofd_prwv(ofd, iov, cnt, off, 0, false, true, "pwritev64");
}

ZP_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int rwf)
{
	ZP_OFD_OR_REAL(ofd, fd, preadv2, (fd, iov, cnt, off, rwf));
	return ofd_prwv(ofd, iov, cnt, off, rwf, true, false, "preadv2");
}

ZP_EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int rwf)
{
	ZP_OFD_OR_REAL(ofd, fd, preadv64v2, (fd, iov, cnt, off, rwf));
	return ofd_prwv(ofd, iov, cnt, off, rwf, true, false, "preadv64v2");
}

ZP_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int rwf)
{
	ZP_OFD_OR_REAL(ofd, fd, pwritev2, (fd, iov, cnt, off, rwf));
	return ofd_prwv(ofd, iov, cnt, off, rwf, true, true, "pwritev2");
}

ZP_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int rwf)
{
	ZP_OFD_OR_REAL(ofd, fd, pwritev64v2, (fd, iov, cnt, off, rwf));
	return ofd_prwv(ofd, iov, cnt, off, rwf, true, true, "pwritev64v2");
}

/* ---- 4. fortify ----------------------------------------------------------------- */

/* glibc's own versions call its hidden __read: they would miss ZVFS. */
ZP_EXPORT ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen)
{
	if (nbytes > buflen)
		__chk_fail();
	return do_read(fd, buf, nbytes);
}

ZP_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t nbytes, off_t off, size_t buflen)
{
	if (nbytes > buflen)
		__chk_fail();
	return do_pread(fd, buf, nbytes, off);
}

ZP_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t nbytes, off64_t off, size_t buflen)
{
	if (nbytes > buflen)
		__chk_fail();
	return do_pread64(fd, buf, nbytes, off);
}

/* ---- 5. position ---------------------------------------------------------------- */

static off_t ofd_lseek(struct zp_ofd *ofd, off_t off, int whence)
{
	int64_t np;
	uint64_t res;
	int r;

	if (zp_ofd_stale(ofd))
		return stale_err("lseek");
	switch (whence) {
	case SEEK_SET:
		np = off;
		break;
	case SEEK_CUR: {
		int64_t cur;

		pthread_mutex_lock(&ofd->pos_lock);
		cur = zp_ofd_pos_load(ofd);
		if (off == 0 || cur < 0) { /* the common "tell": no change */
			pthread_mutex_unlock(&ofd->pos_lock);
			return cur;
		}
		if (__builtin_add_overflow(cur, off, &np) || np < 0 ||
		    (uint64_t)np > ZVFS_FS_MAX_SIZE) {
			pthread_mutex_unlock(&ofd->pos_lock);
			return -EINVAL;
		}
		zp_ofd_pos_store(ofd, (uint64_t)np);
		pthread_mutex_unlock(&ofd->pos_lock);
		return np;
	}
	case SEEK_END: {
		int64_t size;

		ZP_ENTER();
		size = zp_file_size(ofd->file);
		ZP_LEAVE();
		if (size < 0)
			return size;
		if (__builtin_add_overflow(size, off, &np))
			return -EINVAL;
		break;
	}
	case SEEK_DATA:
	case SEEK_HOLE:
		/* The kernel reports any start outside [0, size) as ENXIO. */
		if (off < 0)
			return -ENXIO;
		ZP_ENTER();
		r = zp_file_seek(ofd->file, (uint64_t)off, whence == SEEK_HOLE, &res);
		ZP_LEAVE();
		if (r < 0)
			return r;
		np = (int64_t)res;
		break;
	default:
		return -EINVAL;
	}
	if (np < 0 || (uint64_t)np > ZVFS_FS_MAX_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&ofd->pos_lock);
	zp_ofd_pos_store(ofd, (uint64_t)np);
	pthread_mutex_unlock(&ofd->pos_lock);
	return np;
}

static off_t ofd_lseek_put(struct zp_ofd *ofd, off_t off, int whence)
{
	int saved = errno;
	off_t r = ofd_lseek(ofd, off, whence);

	zp_ofd_put(ofd);
	if (r >= 0)
		errno = saved;
	return zp_ret(r);
}

ZP_EXPORT off_t lseek(int fd, off_t off, int whence)
{
	ZP_OFD_OR_REAL(ofd, fd, lseek, (fd, off, whence));
	return ofd_lseek_put(ofd, off, whence);
}

ZP_EXPORT off64_t lseek64(int fd, off64_t off, int whence)
{
	ZP_OFD_OR_REAL(ofd, fd, lseek64, (fd, off, whence));
	return ofd_lseek_put(ofd, off, whence);
}

/* ---- 6. size -------------------------------------------------------------------- */

/*
 * ftruncate on a ZVFS fd: the kernel's checks and the placeholder's st_size
 * by a real ftruncate (sparse: no blocks), then the logical size.
 */
static int ofd_ftruncate(int fd, struct zp_ofd *ofd, off_t len)
{
	int r;

	if (len < 0)
		return -EINVAL;
	if (zp_ofd_stale(ofd))
		return stale_err("ftruncate");
	/* Linux: EINVAL, not EBADF, on a descriptor not open for writing. */
	if (!mode_can_write(ofd_flags(ofd)))
		return -EINVAL;
	if ((uint64_t)len > ZVFS_FS_MAX_SIZE)
		return -EFBIG;
	if (ZP_REAL(ftruncate)(fd, len) < 0)
		return -errno;
	ZP_ENTER();
	r = zp_file_truncate(ofd->file, (uint64_t)len);
	if (r < 0) {
		/* Keep the placeholder telling the truth about the unchanged size. */
		int64_t size = zp_file_size(ofd->file);

		if (size >= 0)
			(void)ZP_REAL(ftruncate)(fd, (off_t)size);
	}
	ZP_LEAVE();
	mark_size_dirty(ofd);
	return r;
}

static int ofd_ftruncate_put(int fd, struct zp_ofd *ofd, off_t len)
{
	int saved = errno;
	int r = ofd_ftruncate(fd, ofd, len);

	zp_ofd_put(ofd);
	if (r >= 0)
		errno = saved;
	return (int)zp_ret(r);
}

ZP_EXPORT int ftruncate(int fd, off_t len)
{
	ZP_OFD_OR_REAL(ofd, fd, ftruncate, (fd, len));
	return ofd_ftruncate_put(fd, ofd, len);
}

ZP_EXPORT int ftruncate64(int fd, off64_t len)
{
	ZP_OFD_OR_REAL(ofd, fd, ftruncate64, (fd, len));
	return ofd_ftruncate_put(fd, ofd, len);
}

/*
 * truncate(path): the real call first (permissions, EFAULT, EISDIR, and the
 * placeholder's st_size), then the blob when path names a ZVFS file.  Only a
 * regular file with at most one block can be a placeholder, which keeps the
 * common case at one extra stat.
 */
static int path_truncate(const char *path, off_t len, int real_r)
{
	struct zp_file *file;
	struct stat st;
	int saved = errno;
	int r;

	if (real_r < 0)
		return real_r;
	/* At most one block: a placeholder's xattr may have one (see wrap_stat.c). */
	if (ZP_REAL(stat)(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_blocks * 512 > (uint64_t)(st.st_blksize > 0 ? st.st_blksize : 4096)) {
		errno = saved;
		return 0;
	}
	ZP_ENTER();
	if (zp_remote()) {
		/*
		 * The daemon truncates through an fd with write access; the kernel
		 * has just allowed the truncate, so opening for writing is allowed.
		 */
		int fd = ZP_REAL(open)(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

		r = fd < 0 ? -errno : zp_file_lookup(fd, AT_FDCWD, NULL, true, &st, &file);
		if (r > 0) {
			r = zp_file_truncate(file, (uint64_t)len);
			zp_file_close(file);
		}
		if (fd >= 0)
			ZP_REAL(close)(fd);
	} else {
		r = zp_file_lookup(-1, AT_FDCWD, path, true, &st, &file);
		if (r > 0) {
			r = zp_file_truncate(file, (uint64_t)len);
			zp_file_close(file);
		}
	}
	ZP_LEAVE();
	if (r < 0) {
		errno = -r;
		return -1;
	}
	errno = saved;
	return 0;
}

ZP_EXPORT int truncate(const char *path, off_t len)
{
	if (zp_bypass())
		return ZP_REAL(truncate)(path, len);
	return path_truncate(path, len, ZP_REAL(truncate)(path, len));
}

ZP_EXPORT int truncate64(const char *path, off64_t len)
{
	if (zp_bypass())
		return ZP_REAL(truncate64)(path, len);
	return path_truncate(path, len, ZP_REAL(truncate64)(path, len));
}

/*
 * fallocate on a ZVFS fd.  Never the real fallocate: it would give the
 * placeholder data blocks.  Checks in vfs_fallocate()'s order.
 */
static int ofd_fallocate(int fd, struct zp_ofd *ofd, int mode, off_t off, off_t len)
{
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_NO_HIDE_STALE |
			  FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE |
			  FALLOC_FL_UNSHARE_RANGE;
	int64_t old, now;
	int64_t end;
	int r;

	if (off < 0 || len <= 0)
		return -EINVAL;
	if ((mode & ~known) || ((mode & FALLOC_FL_PUNCH_HOLE) &&
				((mode & FALLOC_FL_ZERO_RANGE) || !(mode & FALLOC_FL_KEEP_SIZE)))) {
		ZVFS_WARN_ONCE("fallocate mode 0x%x on a ZVFS file: not supported (EOPNOTSUPP)",
			       mode);
		return -EOPNOTSUPP;
	}
	if (!mode_can_write(ofd_flags(ofd)))
		return -EBADF;
	if (__builtin_add_overflow(off, len, &end) || (uint64_t)end > ZVFS_FS_MAX_SIZE)
		return -EFBIG;
	if (zp_ofd_stale(ofd))
		return stale_err("fallocate");
	ZP_ENTER();
	old = zp_file_size(ofd->file);
	r = old < 0 ? (int)old : zp_file_fallocate(ofd->file, mode, (uint64_t)off, (uint64_t)len);
	if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE)) {
		now = zp_file_size(ofd->file);
		/* The placeholder shows the new size at once (sparse: no blocks). */
		if (now > old && ZP_REAL(ftruncate)(fd, (off_t)now) < 0)
			ZVFS_DEBUG("fallocate: placeholder size of fd %d: %s", fd, strerror(errno));
	}
	ZP_LEAVE();
	if (r == 0)
		mark_size_dirty(ofd);
	return r;
}

static int ofd_fallocate_put(int fd, struct zp_ofd *ofd, int mode, off_t off, off_t len)
{
	int r = ofd_fallocate(fd, ofd, mode, off, len);

	zp_ofd_put(ofd);
	return r;
}

ZP_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
	struct zp_ofd *ofd;
	int saved = errno;
	int r;

	if (zp_bypass())
		return ZP_REAL(fallocate)(fd, mode, off, len);
	ofd = zp_fd_get(fd);
	if (!ofd)
		return ZP_REAL(fallocate)(fd, mode, off, len);
	r = ofd_fallocate_put(fd, ofd, mode, off, len);
	if (r == 0)
		errno = saved;
	return (int)zp_ret(r);
}

ZP_EXPORT int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	struct zp_ofd *ofd;
	int saved = errno;
	int r;

	if (zp_bypass())
		return ZP_REAL(fallocate64)(fd, mode, off, len);
	ofd = zp_fd_get(fd);
	if (!ofd)
		return ZP_REAL(fallocate64)(fd, mode, off, len);
	r = ofd_fallocate_put(fd, ofd, mode, off, len);
	if (r == 0)
		errno = saved;
	return (int)zp_ret(r);
}

/* posix_fallocate is fallocate mode 0 returning the error number; errno untouched. */
static int ofd_posix_fallocate(int fd, struct zp_ofd *ofd, off_t off, off_t len)
{
	int saved = errno;
	int r = ofd_fallocate_put(fd, ofd, 0, off, len);

	errno = saved;
	return -r;
}

ZP_EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
	ZP_OFD_OR_REAL(ofd, fd, posix_fallocate, (fd, off, len));
	return ofd_posix_fallocate(fd, ofd, off, len);
}

ZP_EXPORT int posix_fallocate64(int fd, off64_t off, off64_t len)
{
	ZP_OFD_OR_REAL(ofd, fd, posix_fallocate64, (fd, off, len));
	return ofd_posix_fallocate(fd, ofd, off, len);
}

/* posix_fadvise: returns the error number, errno untouched; advice goes to the engine's cache. */
static int ofd_fadvise(struct zp_ofd *ofd, off_t off, off_t len, int advice)
{
	int saved = errno;
	int r = 0;

	if (len < 0 || advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE) {
		r = -EINVAL;
	} else if (zp_ofd_stale(ofd)) {
		r = stale_err("posix_fadvise");
	} else if (off >= 0 && (advice == POSIX_FADV_DONTNEED || advice == POSIX_FADV_WILLNEED)) {
		/* A negative start selects no page in the kernel either. */
		ZP_ENTER();
		if (advice == POSIX_FADV_DONTNEED)
			r = zp_file_drop_cache(ofd->file, (uint64_t)off, (uint64_t)len);
		else
			r = zp_file_prefetch(ofd->file, (uint64_t)off, (uint64_t)len);
		ZP_LEAVE();
	}
	zp_ofd_put(ofd);
	errno = saved;
	return -r;
}

ZP_EXPORT int posix_fadvise(int fd, off_t off, off_t len, int advice)
{
	ZP_OFD_OR_REAL(ofd, fd, posix_fadvise, (fd, off, len, advice));
	return ofd_fadvise(ofd, off, len, advice);
}

ZP_EXPORT int posix_fadvise64(int fd, off64_t off, off64_t len, int advice)
{
	ZP_OFD_OR_REAL(ofd, fd, posix_fadvise64, (fd, off, len, advice));
	return ofd_fadvise(ofd, off, len, advice);
}

/* ---- 7. sync -------------------------------------------------------------------- */

static int ofd_fsync(int fd, struct zp_ofd *ofd, unsigned flags, const char *call)
{
	int saved = errno;
	int r;

	if (zp_ofd_stale(ofd)) {
		r = stale_err(call);
	} else {
		ZP_ENTER();
		r = zp_file_sync(ofd->file, flags);
		if (r == 0)
			r = zp_placeholder_sync_lazy(fd, ofd);
		ZP_LEAVE();
	}
	zp_ofd_put(ofd);
	if (r >= 0)
		errno = saved;
	return (int)zp_ret(r);
}

ZP_EXPORT int fsync(int fd)
{
	ZP_OFD_OR_REAL(ofd, fd, fsync, (fd));
	return ofd_fsync(fd, ofd, 0, "fsync");
}

ZP_EXPORT int fdatasync(int fd)
{
	ZP_OFD_OR_REAL(ofd, fd, fdatasync, (fd));
	return ofd_fsync(fd, ofd, ZVFS_SYNC_DATA, "fdatasync");
}

/* sync_file_range: the kernel's argument checks, then write-back without a device flush. */
static int ofd_sync_range(struct zp_ofd *ofd, off64_t off, off64_t n, unsigned flags)
{
	const unsigned valid =
		SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
	int saved = errno;
	int64_t end;
	int r = 0;

	if ((flags & ~valid) || off < 0 || __builtin_add_overflow(off, n, &end) || end < 0 ||
	    end < off) {
		r = -EINVAL;
	} else if (zp_ofd_stale(ofd)) {
		r = stale_err("sync_file_range");
	} else if (flags & SYNC_FILE_RANGE_WRITE) {
		/* Write-back here is synchronous, so the WAIT flags hold on return. */
		ZP_ENTER();
		r = zp_file_writeback(ofd->file, (uint64_t)off, (uint64_t)n);
		ZP_LEAVE();
	}
	zp_ofd_put(ofd);
	if (r >= 0)
		errno = saved;
	return (int)zp_ret(r);
}

ZP_EXPORT int sync_file_range(int fd, off64_t off, off64_t n, unsigned flags)
{
	ZP_OFD_OR_REAL(ofd, fd, sync_file_range, (fd, off, n, flags));
	return ofd_sync_range(ofd, off, n, flags);
}

/* Write back everything the backend holds (it decides whether it has anything). */
static int engine_sync_all(const char *call)
{
	int r;

	if (zp_backend_undecided())
		return 0; /* no ZVFS file was ever used here: nothing to write back */
	ZP_ENTER();
	r = zp_be->sync_all();
	if (r < 0)
		ZVFS_WARN("%s: writing back ZVFS files: %s", call, strerror(-r));
	ZP_LEAVE();
	return r;
}

ZP_EXPORT int syncfs(int fd)
{
	int saved;
	int r;

	if (zp_bypass())
		return ZP_REAL(syncfs)(fd);
	if (ZP_REAL(syncfs)(fd) < 0)
		return -1;
	saved = errno;
	r = engine_sync_all("syncfs");
	if (r < 0)
		return (int)zp_ret(r);
	errno = saved;
	return 0;
}

ZP_EXPORT void sync(void)
{
	int saved;

	if (zp_bypass()) {
		ZP_REAL(sync)();
		return;
	}
	saved = errno;
	ZP_REAL(sync)();
	(void)engine_sync_all("sync"); /* sync(2) has no way to report failure */
	errno = saved;
}

/* ---- 8. transfers ----------------------------------------------------------------- */

/*
 * One end of an emulated transfer.  A ZVFS end is read or written through
 * the engine at pos; a kernel end with an explicit offset through
 * pread/pwrite at pos, without one through read/write (its kernel file
 * position moves by itself).
 */
struct xend {
	int fd;
	struct zp_ofd *ofd; /* NULL: a kernel descriptor */
	off_t *offp;	    /* the caller's offset pointer, or NULL: the file position */
	uint64_t pos;	    /* current offset, for a ZVFS end or an explicit offset */
};

static void xend_init(struct xend *e, int fd, struct zp_ofd *ofd, off_t *offp)
{
	e->fd = fd;
	e->ofd = ofd;
	e->offp = offp;
	e->pos = 0;
	if (offp) {
		e->pos = (uint64_t)*offp;
	} else if (ofd) {
		int64_t p;

		pthread_mutex_lock(&ofd->pos_lock);
		p = zp_ofd_pos_load(ofd);
		pthread_mutex_unlock(&ofd->pos_lock);
		e->pos = p < 0 ? 0 : (uint64_t)p;
	}
}

/* Store the end's offset back where it came from (done bytes moved). */
static void xend_finish(struct xend *e)
{
	if (e->offp) {
		*e->offp = (off_t)e->pos;
	} else if (e->ofd) {
		pthread_mutex_lock(&e->ofd->pos_lock);
		zp_ofd_pos_store(e->ofd, e->pos);
		pthread_mutex_unlock(&e->ofd->pos_lock);
	}
}

static ssize_t xend_read(struct xend *e, void *buf, size_t n)
{
	struct iovec v = {.iov_base = buf, .iov_len = n};
	ssize_t r;

	if (e->ofd) {
		ZP_ENTER();
		r = zp_file_read(e->ofd->file, &v, 1, e->pos, 0);
		ZP_LEAVE();
		return r == -EFBIG ? 0 : r;
	}
	if (e->offp)
		r = ZP_REAL(pread)(e->fd, buf, n, (off_t)e->pos);
	else
		r = ZP_REAL(read)(e->fd, buf, n);
	return r < 0 ? -errno : r;
}

/* Write all n bytes unless the kernel end stops early; the bytes written, or -errno if none. */
static ssize_t xend_write(struct xend *e, const void *buf, size_t n)
{
	struct iovec v = {.iov_base = (void *)buf, .iov_len = n};
	unsigned io;
	size_t done = 0;
	ssize_t r;

	if (e->ofd) {
		/* No O_DIRECT: the bounce buffer is not aligned, and the cache is coherent. */
		io = wr_ioflags(ofd_flags(e->ofd)) & ~(ZVFS_IO_DIRECT | ZVFS_IO_APPEND);
		ZP_ENTER();
		r = zp_file_write(e->ofd->file, &v, 1, e->pos, io, NULL);
		ZP_LEAVE();
		if (r > 0)
			mark_size_dirty(e->ofd);
		return r;
	}
	while (done < n) {
		if (e->offp)
			r = ZP_REAL(pwrite)(e->fd, (const char *)buf + done, n - done,
					    (off_t)(e->pos + done));
		else
			r = ZP_REAL(write)(e->fd, (const char *)buf + done, n - done);
		if (r < 0)
			return done ? (ssize_t)done : -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/*
 * Copy up to len bytes from src to dst in chunks of XFER_CHUNK; stops at
 * end of input, at a short write, or after one chunk when once is set
 * (splice returns as soon as it moved something).  Returns the bytes moved
 * or -errno when nothing moved.  Both ends' offsets advance by the bytes
 * moved; a kernel source that read ahead of a short write is wound back.
 */
static ssize_t xfer(struct xend *src, struct xend *dst, size_t len, bool once)
{
	size_t cap = len < XFER_CHUNK ? len : XFER_CHUNK;
	size_t done = 0;
	ssize_t r = 0, w;
	char *buf;

	if (len == 0)
		return 0;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	while (done < len) {
		size_t n = len - done < cap ? len - done : cap;

		r = xend_read(src, buf, n);
		if (r <= 0)
			break;
		w = xend_write(dst, buf, (size_t)r);
		if (w < (ssize_t)r && !src->ofd && !src->offp) {
			off_t back = (off_t)r - (w > 0 ? w : 0);

			if (ZP_REAL(lseek)(src->fd, -back, SEEK_CUR) < 0)
				ZVFS_WARN("transfer from fd %d: %zd bytes read but not written "
					  "are lost (%s)",
					  src->fd, (ssize_t)back, strerror(errno));
		}
		if (w <= 0) {
			r = w;
			break;
		}
		src->pos += (uint64_t)w;
		dst->pos += (uint64_t)w;
		done += (size_t)w;
		if (w < r || (size_t)r < n || once)
			break;
	}
	free(buf);
	if (done > 0) {
		/* Untouched offsets stay as they are, whatever other threads did meanwhile. */
		xend_finish(src);
		xend_finish(dst);
	}
	if (done > 0)
		return (ssize_t)done;
	return r < 0 ? r : 0;
}

/* What a transfer needs to know of one end: type, access mode, size. */
struct xinfo {
	mode_t type;
	int flags; /* O_ACCMODE | O_APPEND ... */
	uint64_t size;
	const void *id; /* the same file: same id */
	dev_t dev;
	ino_t ino;
};

static int xinfo_get(int fd, struct zp_ofd *ofd, struct xinfo *xi)
{
	struct stat st;

	if (ofd) {
		if (zp_ofd_stale(ofd))
			return stale_err("transfer");
		int64_t size;

		ZP_ENTER();
		size = zp_file_size(ofd->file);
		ZP_LEAVE();
		if (size < 0)
			return (int)size;
		xi->type = S_IFREG;
		xi->flags = ofd_flags(ofd);
		xi->size = (uint64_t)size;
		/* The placeholder's identity: two handles on one file are one file. */
		xi->id = NULL;
		xi->dev = (dev_t)ofd->ino.dev;
		xi->ino = (ino_t)ofd->ino.ino;
		return 0;
	}
	if (ZP_REAL(fstat)(fd, &st) < 0)
		return -errno;
	xi->flags = ZP_REAL(fcntl)(fd, F_GETFL);
	if (xi->flags < 0)
		return -errno;
	xi->type = st.st_mode & S_IFMT;
	xi->size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
	xi->id = NULL;
	xi->dev = st.st_dev;
	xi->ino = st.st_ino;
	return 0;
}

static bool xinfo_same(const struct xinfo *a, const struct xinfo *b)
{
	if (a->id || b->id)
		return a->id == b->id;
	return a->dev == b->dev && a->ino == b->ino;
}

/* copy_file_range with a ZVFS end: generic_copy_file_checks(), then read/write. */
static ssize_t x_copy_file_range(int fd_in, struct zp_ofd *oin, off_t *off_in, int fd_out,
				 struct zp_ofd *oout, off_t *off_out, size_t len, unsigned flags)
{
	struct xinfo in, out;
	struct xend src, dst;
	uint64_t pin, pout, tmp;
	off_t tin = 0, tout = 0;
	bool kin, kout;
	ssize_t n;
	int r;

	r = xinfo_get(fd_in, oin, &in);
	if (r == 0)
		r = xinfo_get(fd_out, oout, &out);
	if (r < 0)
		return r;
	if (flags != 0)
		return -EINVAL;
	if (in.type == S_IFDIR || out.type == S_IFDIR)
		return -EISDIR;
	if (in.type != S_IFREG || out.type != S_IFREG)
		return -EINVAL;
	if (!mode_can_read(in.flags) || !mode_can_write(out.flags) || (out.flags & O_APPEND))
		return -EBADF;
	/*
	 * A kernel end without an offset pointer goes through pread/pwrite at
	 * its file position, which is moved at the end, as the system call does.
	 */
	kin = !oin && !off_in;
	kout = !oout && !off_out;
	if (kin && (tin = ZP_REAL(lseek)(fd_in, 0, SEEK_CUR)) < 0)
		return -errno;
	if (kout && (tout = ZP_REAL(lseek)(fd_out, 0, SEEK_CUR)) < 0)
		return -errno;
	xend_init(&src, fd_in, oin, kin ? &tin : off_in);
	xend_init(&dst, fd_out, oout, kout ? &tout : off_out);
	pin = src.pos;
	pout = dst.pos;
	/* The kernel's wrap check comes first, so a negative offset is usually EOVERFLOW. */
	if (__builtin_add_overflow(pin, len, &tmp) || __builtin_add_overflow(pout, len, &tmp))
		return -EOVERFLOW;
	if ((int64_t)pin < 0 || (int64_t)pout < 0)
		return -EINVAL;
	/* Shorten to the input's end of file. */
	if (pin >= in.size)
		len = 0;
	else if (len > in.size - pin)
		len = (size_t)(in.size - pin);
	if (oout && pout + len > ZVFS_FS_MAX_SIZE) {
		if (pout >= ZVFS_FS_MAX_SIZE)
			return -EFBIG;
		len = (size_t)(ZVFS_FS_MAX_SIZE - pout);
	}
	if (xinfo_same(&in, &out) && pout + len > pin && pout < pin + len)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (len > (size_t)IO_MAX_COUNT)
		len = (size_t)IO_MAX_COUNT;
	n = xfer(&src, &dst, len, false);
	if (kin && n > 0 && ZP_REAL(lseek)(fd_in, tin, SEEK_SET) < 0)
		return -errno;
	if (kout && n > 0 && ZP_REAL(lseek)(fd_out, tout, SEEK_SET) < 0)
		return -errno;
	return n;
}

ZP_EXPORT ssize_t copy_file_range(int fd_in, off64_t *off_in, int fd_out, off64_t *off_out,
				  size_t len, unsigned flags)
{
	struct zp_ofd *oin, *oout;
	int saved = errno;
	ssize_t r;

	if (zp_bypass())
		return ZP_REAL(copy_file_range)(fd_in, off_in, fd_out, off_out, len, flags);
	oin = zp_fd_get(fd_in);
	oout = zp_fd_get(fd_out);
	if (!oin && !oout)
		return ZP_REAL(copy_file_range)(fd_in, off_in, fd_out, off_out, len, flags);
	r = x_copy_file_range(fd_in, oin, off_in, fd_out, oout, off_out, len, flags);
	if (oin)
		zp_ofd_put(oin);
	if (oout)
		zp_ofd_put(oout);
	if (r >= 0)
		errno = saved;
	return zp_ret(r);
}

/* sendfile with a ZVFS end: do_sendfile()'s checks, then read/write. */
static ssize_t x_sendfile(int out_fd, struct zp_ofd *oout, int in_fd, struct zp_ofd *oin,
			  off_t *offp, size_t count)
{
	struct xinfo in, out;
	struct xend src, dst;
	int r;

	r = xinfo_get(in_fd, oin, &in);
	if (r < 0)
		return r;
	if (!mode_can_read(in.flags))
		return -EBADF;
	if (offp && in.type == S_IFIFO)
		return -ESPIPE;
	if (offp && *offp < 0)
		return -EINVAL;
	if (count > (size_t)IO_MAX_COUNT)
		count = (size_t)IO_MAX_COUNT;
	r = xinfo_get(out_fd, oout, &out);
	if (r < 0)
		return r;
	if (!mode_can_write(out.flags))
		return -EBADF;
	/* do_splice_direct() refuses an O_APPEND output (a pipe output is no file). */
	if (out.type != S_IFIFO && (out.flags & O_APPEND))
		return -EINVAL;
	/* Pipes cannot feed sendfile (no splice_read); sockets and files can. */
	if (in.type == S_IFIFO)
		return -EINVAL;
	xend_init(&src, in_fd, oin, offp);
	xend_init(&dst, out_fd, oout, NULL);
	if (oin && src.pos + count > ZVFS_FS_MAX_SIZE) {
		if (src.pos >= ZVFS_FS_MAX_SIZE)
			return -EOVERFLOW;
		count = (size_t)(ZVFS_FS_MAX_SIZE - src.pos);
	}
	return xfer(&src, &dst, count, false);
}

static ssize_t do_sendfile(int out_fd, int in_fd, off_t *offp, size_t count, bool lfs)
{
	struct zp_ofd *oin, *oout;
	int saved = errno;
	ssize_t r;

	if (zp_bypass())
		return lfs ? ZP_REAL(sendfile64)(out_fd, in_fd, offp, count)
			   : ZP_REAL(sendfile)(out_fd, in_fd, offp, count);
	oin = zp_fd_get(in_fd);
	oout = zp_fd_get(out_fd);
	if (!oin && !oout)
		return lfs ? ZP_REAL(sendfile64)(out_fd, in_fd, offp, count)
			   : ZP_REAL(sendfile)(out_fd, in_fd, offp, count);
	r = x_sendfile(out_fd, oout, in_fd, oin, offp, count);
	if (oin)
		zp_ofd_put(oin);
	if (oout)
		zp_ofd_put(oout);
	if (r >= 0)
		errno = saved;
	return zp_ret(r);
}

ZP_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offp, size_t count)
{
	return do_sendfile(out_fd, in_fd, offp, count, false);
}

ZP_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *offp, size_t count)
{
	return do_sendfile(out_fd, in_fd, offp, count, true);
}

/*
 * Wait until the pipe fd can take bytes (or, nonblocking, fail with
 * EAGAIN), and return how many fit: splice into a pipe moves at most what
 * fits and then returns, as the kernel's does.
 */
static ssize_t pipe_room(int fd, bool nonblock)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int size, queued;

	size = ZP_REAL(fcntl)(fd, F_GETPIPE_SZ);
	if (size < 0)
		return -errno;
	for (;;) {
		if (ZP_REAL(ioctl)(fd, FIONREAD, &queued) < 0)
			return -errno;
		if (queued < size)
			return size - queued;
		if (nonblock)
			return -EAGAIN;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
		if (p.revents & POLLERR)
			return -EPIPE;
	}
}

/* Nonblocking splice from a pipe: EAGAIN when it is empty and still has writers. */
static int pipe_ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, 0) < 0)
		return -errno;
	return p.revents ? 0 : -EAGAIN;
}

/* splice with a ZVFS end: emulated when the other end is a pipe. */
static ssize_t x_splice(int fd_in, struct zp_ofd *oin, off_t *off_in, int fd_out,
			struct zp_ofd *oout, off_t *off_out, size_t len, unsigned flags)
{
	const unsigned known = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT;
	bool nonblock = flags & SPLICE_F_NONBLOCK;
	struct xinfo in, out;
	struct xend src, dst;
	ssize_t room;
	int r;

	if (len == 0)
		return 0;
	if (flags & ~known)
		return -EINVAL;
	r = xinfo_get(fd_in, oin, &in);
	if (r == 0)
		r = xinfo_get(fd_out, oout, &out);
	if (r < 0)
		return r;
	if (!mode_can_read(in.flags) || !mode_can_write(out.flags))
		return -EBADF;
	if ((oin && out.type != S_IFIFO) || (oout && in.type != S_IFIFO)) {
		ZP_ENTER();
		ZVFS_WARN_ONCE("splice between fd %d and fd %d: a ZVFS file can only be spliced "
			       "to or from a pipe; returning EINVAL",
			       fd_in, fd_out);
		ZP_LEAVE();
		return -EINVAL;
	}
	if ((oin && off_out) || (oout && off_in))
		return -ESPIPE; /* an offset on the pipe end */
	if ((off_in && *off_in < 0) || (off_out && *off_out < 0))
		return -EINVAL;
	if (oout && (out.flags & O_APPEND))
		return -EINVAL;
	if (len > (size_t)IO_MAX_COUNT)
		len = (size_t)IO_MAX_COUNT;
	if (oin) {
		room = pipe_room(fd_out, nonblock);
		if (room < 0)
			return room;
		if ((size_t)room < len)
			len = (size_t)room;
	} else if (nonblock) {
		r = pipe_ready(fd_in);
		if (r < 0)
			return r;
	}
	xend_init(&src, fd_in, oin, off_in);
	xend_init(&dst, fd_out, oout, off_out);
	return xfer(&src, &dst, len, true);
}

ZP_EXPORT ssize_t splice(int fd_in, off64_t *off_in, int fd_out, off64_t *off_out, size_t len,
			 unsigned flags)
{
	struct zp_ofd *oin, *oout;
	int saved = errno;
	ssize_t r;

	if (zp_bypass())
		return ZP_REAL(splice)(fd_in, off_in, fd_out, off_out, len, flags);
	oin = zp_fd_get(fd_in);
	oout = zp_fd_get(fd_out);
	if (!oin && !oout)
		return ZP_REAL(splice)(fd_in, off_in, fd_out, off_out, len, flags);
	r = x_splice(fd_in, oin, off_in, fd_out, oout, off_out, len, flags);
	if (oin)
		zp_ofd_put(oin);
	if (oout)
		zp_ofd_put(oout);
	if (r >= 0)
		errno = saved;
	return zp_ret(r);
}
