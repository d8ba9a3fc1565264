/* SPDX-License-Identifier: MIT */
/*
 * wrap_fd.c - the open family, close, close_range, dup*, fcntl, ioctl.
 *
 * Map of this file:
 *   1. adopting a new kernel fd: open the ZVFS file behind it, or make a
 *      new file under a mount a ZVFS file (zp_core_adopt(), also used by the
 *      mkstemp family in wrap_name.c)
 *   2. the open family (the real open runs first: the kernel resolves the
 *      path, checks permissions and gives every path error)
 *   3. close, close_range
 *   4. dup, dup2, dup3, fcntl
 *   5. ioctl
 *
 * The fd the application sees is always the kernel's fd of the placeholder.
 */
#include "preload/preload.h"

#include <linux/fiemap.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

/* Shared with core.c, fdtable.c and wrap_name.c (preload.h, not mine, has no place for them). */
int zp_core_adopt(int fd, int flags, bool maybe_new);
struct zp_ofd *zp_core_fd_peek(int fd);
bool zp_core_exiting(void);
void zp_core_shutdown(bool flush_stdio);
void zp_core_protect_fd(int fd);

/* Fortified opens; <fcntl.h> declares them only under _FORTIFY_SOURCE. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

#define OFD_FLAGS      (O_ACCMODE | O_APPEND | O_DIRECT | O_SYNC | O_DSYNC | O_NONBLOCK)
#define NEEDS_MODE(fl) (((fl)&O_CREAT) || ((fl)&O_TMPFILE) == O_TMPFILE)

/* ---- 1. adopting a new fd ----------------------------------------------------------- */

/* Engine errors that mean nothing to the application become EIO. */
static int app_errno(int r)
{
	switch (-r) {
	case ENOSPC:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EROFS:
	case EACCES:
	case EPERM:
	case EFBIG:
	case EDQUOT:
		return -r;
	default:
		return EIO;
	}
}

/* Close fd, log why the ZVFS file behind it cannot be used, -1 with errno. */
static int adopt_fail(int fd, int r, const char *what)
{
	char path[PATH_MAX];

	if (zp_fd_path(fd, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "fd %d", fd);
	ZVFS_ERR("%s: %s: %s", what, path, strerror(-r));
	ZP_REAL(close)(fd);
	errno = app_errno(r);
	return -1;
}

static int install(int fd, struct zp_file *file, int flags, const struct stat *st)
{
	struct zvfs_fs_ino ino = {.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino};
	struct zp_ofd *ofd = zp_ofd_new(file, flags & OFD_FLAGS, 0, &ino);
	struct zp_ofd *check;

	if (!ofd) {
		zp_file_close(file);
		return adopt_fail(fd, -ENOMEM, "open");
	}
	zp_fd_set(fd, ofd);
	zp_ofd_put(ofd);
	check = zp_core_fd_peek(fd);
	if (!check)
		return adopt_fail(fd, -EMFILE, "open"); /* beyond the table (logged) */
	zp_ofd_put(check);
	if (fd <= 2)
		zp_stdio_fd_changed(fd);
	return fd;
}

/*
 * A file this call created (O_CREAT | O_EXCL, mkstemp) that cannot become a
 * ZVFS file goes again, if its name still leads to it: a retry must not meet
 * EEXIST, nor the directory keep an empty stray (rsync's temporary files).
 */
static void unlink_created(int fd, const struct stat *st)
{
	char path[PATH_MAX];
	struct stat now;

	if (zp_fd_path(fd, path, sizeof(path)) == 0 &&
	    ZP_REAL(fstatat)(AT_FDCWD, path, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == st->st_dev && now.st_ino == st->st_ino)
		ZP_REAL(unlinkat)(AT_FDCWD, path, 0);
}

/* A new, empty file under a mount: give it a blob and the xattr naming it. */
static int make_zvfs(int fd, int flags, bool created, const struct stat *st)
{
	struct zp_file *file;
	int r;

	zp_backend_pick();
	r = zp_be->create(fd, st, &file);
	if (r < 0) {
		int e = -r;

		if (e == EEXIST) {
			/* Of two creators of one name, the other one won: open its file. */
			r = zp_file_lookup(fd, AT_FDCWD, NULL, true, st, &file);
			if (r < 0)
				return adopt_fail(fd, r, "open");
			if (r == 0)
				return fd;
			return install(fd, file, flags, st);
		}
		if (e == ENOTSUP || e == EOPNOTSUPP || e == EROFS || e == EACCES || e == EPERM) {
			/* The open itself was allowed: it succeeds, on a plain Linux file. */
			static atomic_bool told;
			char path[PATH_MAX];

			if (!atomic_exchange(&told, true)) {
				if (zp_fd_path(fd, path, sizeof(path)) < 0)
					strcpy(path, "?");
				ZVFS_ERR("%s: cannot set the ZVFS xattr (%s); this file (and "
					 "others like it) stays a plain Linux file",
					 path, strerror(e));
			}
			return fd;
		}
		if (created)
			unlink_created(fd, st);
		return adopt_fail(fd, -e, "create (set xattr)");
	}
	return install(fd, file, flags, st);
}

/*
 * fd was just returned by the kernel for flags.  Returns fd (now a ZVFS fd
 * if its file is one, or was made one), or -1 with errno after closing fd.
 * maybe_new: the file was just created by us (mkstemp) even without O_CREAT.
 */
int zp_core_adopt(int fd, int flags, bool maybe_new)
{
	char xattr[ZVFS_FS_XATTR_MAX + 1];
	struct zp_file *file;
	struct stat st;
	ssize_t xlen;
	int saved = errno;
	int ret = fd;
	int r;

	if (flags & O_PATH)
		return fd;
	ZP_ENTER();
	xlen = fgetxattr(fd, ZVFS_FS_XATTR, xattr, sizeof(xattr));
	if (xlen >= 0 || errno == ERANGE) {
		if (ZP_REAL(fstat)(fd, &st) < 0 || !S_ISREG(st.st_mode))
			goto out;
		r = zp_file_lookup(fd, AT_FDCWD, NULL, true, &st, &file);
		if (r < 0) {
			ret = adopt_fail(fd, r, "open");
			goto out;
		}
		if (r == 0)
			goto out;
		if (flags & O_TRUNC) {
			r = zp_file_truncate(file, 0);
			if (r < 0) {
				zp_file_close(file);
				ret = adopt_fail(fd, r, "open (O_TRUNC)");
				goto out;
			}
		}
		ret = install(fd, file, flags, &st);
	} else if (errno == ENODATA && ((flags & O_CREAT) || maybe_new)) {
		char path[PATH_MAX];
		const char *base;

		if (ZP_REAL(fstat)(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0 ||
		    st.st_nlink == 0)
			goto out;
		if (zp_fd_path(fd, path, sizeof(path)) < 0 || !zp_path_in_mount(path))
			goto out;
		base = strrchr(path, '/') + 1;
		if (zp_path_passthrough(base))
			goto out;
		ret = make_zvfs(fd, flags,
				maybe_new || (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL),
				&st);
	}
out:
	ZP_LEAVE();
	if (ret >= 0)
		errno = saved;
	return ret;
}

/* ---- 2. open ------------------------------------------------------------------------ */

/* O_TMPFILE makes a nameless file we could not give an xattr in time: refuse under a mount. */
static int tmpfile_refused(int fd)
{
	char path[PATH_MAX];
	char *slash;
	bool ours;

	ZP_ENTER();
	ours = zp_fd_path(fd, path, sizeof(path)) == 0 && (slash = strrchr(path, '/')) != NULL &&
	       (*slash = '\0', zp_path_in_mount(path[0] ? path : "/"));
	ZP_LEAVE();
	if (!ours)
		return fd;
	/* Python's tempfile tries O_TMPFILE first and falls back: a warning, once. */
	ZVFS_WARN_ONCE("open(O_TMPFILE) in %s: not supported on ZVFS (EOPNOTSUPP); "
		       "use a named temporary file",
		       path);
	ZP_REAL(close)(fd);
	errno = EOPNOTSUPP;
	return -1;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode)
{
	int fd = ZP_REAL(openat)(dirfd, path, flags, mode);

	if (fd < 0 && errno == EINVAL && (flags & O_DIRECT)) {
		/* The file system refuses O_DIRECT; ZVFS does it itself for its own files. */
		int r;

		ZP_ENTER();
		r = zp_path_new_is_zvfs(dirfd, path);
		ZP_LEAVE();
		if (r != 1) {
			errno = EINVAL;
			return -1;
		}
		fd = ZP_REAL(openat)(dirfd, path, flags & ~O_DIRECT, mode);
		if (fd < 0)
			return -1;
		fd = zp_core_adopt(fd, flags, false);
		if (fd >= 0) {
			struct zp_ofd *ofd = zp_core_fd_peek(fd);

			if (!ofd) {
				ZP_REAL(close)(fd);
				errno = EINVAL;
				return -1;
			}
			zp_ofd_put(ofd);
		}
		return fd;
	}
	if (fd < 0)
		return -1;
	if ((flags & O_TMPFILE) == O_TMPFILE)
		return tmpfile_refused(fd);
	return zp_core_adopt(fd, flags, false);
}

static mode_t va_mode(int flags, va_list ap)
{
	return NEEDS_MODE(flags) ? (mode_t)va_arg(ap, int) : 0;
}

ZP_EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = va_mode(flags, ap);
	va_end(ap);
	if (zp_bypass())
		return ZP_REAL(open)(path, flags, mode);
	return do_open(AT_FDCWD, path, flags, mode);
}

ZP_EXPORT int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = va_mode(flags, ap);
	va_end(ap);
	if (zp_bypass())
		return ZP_REAL(open64)(path, flags, mode);
	return do_open(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

ZP_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = va_mode(flags, ap);
	va_end(ap);
	if (zp_bypass())
		return ZP_REAL(openat)(dirfd, path, flags, mode);
	return do_open(dirfd, path, flags, mode);
}

ZP_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = va_mode(flags, ap);
	va_end(ap);
	if (zp_bypass())
		return ZP_REAL(openat64)(dirfd, path, flags, mode);
	return do_open(dirfd, path, flags | O_LARGEFILE, mode);
}

ZP_EXPORT int creat(const char *path, mode_t mode)
{
	if (zp_bypass())
		return ZP_REAL(creat)(path, mode);
	return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

ZP_EXPORT int creat64(const char *path, mode_t mode)
{
	if (zp_bypass())
		return ZP_REAL(creat64)(path, mode);
	return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE, mode);
}

/* Fortified opens: with O_CREAT and no mode, libc's own version aborts, as it must. */
ZP_EXPORT int __open_2(const char *path, int flags)
{
	if (zp_bypass() || NEEDS_MODE(flags))
		return ZP_REAL(__open_2)(path, flags);
	return do_open(AT_FDCWD, path, flags, 0);
}

ZP_EXPORT int __open64_2(const char *path, int flags)
{
	if (zp_bypass() || NEEDS_MODE(flags))
		return ZP_REAL(__open64_2)(path, flags);
	return do_open(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}

ZP_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	if (zp_bypass() || NEEDS_MODE(flags))
		return ZP_REAL(__openat_2)(dirfd, path, flags);
	return do_open(dirfd, path, flags, 0);
}

ZP_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	if (zp_bypass() || NEEDS_MODE(flags))
		return ZP_REAL(__openat64_2)(dirfd, path, flags);
	return do_open(dirfd, path, flags | O_LARGEFILE, 0);
}

/* ---- 3. close ----------------------------------------------------------------------- */

/*
 * Forget fd's ofd before the kernel closes fd: once closed, the number can
 * be reused by another thread's open, whose slot we must not clear.
 */
/*
 * A ZVFS fd is going away (close, or dup2/dup3 over it): hand its offset to
 * the kernel's file description first.  The description may be shared with
 * another process (fork, exec), which picks the offset up from the kernel
 * when it next mounts: `{ echo a; /bin/echo b; echo c; } > f` needs the
 * child's position after its fclose(stdout) to reach the shell.
 */
static void offset_to_kernel(int fd, struct zp_ofd *ofd)
{
	if (zp_ofd_stale(ofd))
		return; /* not revived: the kernel's offset is still the truth */
	pthread_mutex_lock(&ofd->pos_lock);
	if (!ofd->shared) /* a shared description's offset is in the kernel already */
		ZP_REAL(lseek)(fd, (off_t)ofd->pos, SEEK_SET);
	pthread_mutex_unlock(&ofd->pos_lock);
}

static bool forget_fd(int fd)
{
	struct zp_ofd *ofd = zp_core_fd_peek(fd);

	if (!ofd)
		return false;
	offset_to_kernel(fd, ofd);
	zp_placeholder_sync(fd, ofd);
	zp_ofd_put(ofd);
	zp_fd_clear(fd);
	return true;
}

/* Direct mode: a ZVFS fd about to close decides its unlinked file's fate (fdtable.c). */
static void settle_unlinked(int fd)
{
	int saved = errno;
	struct zp_ofd *ofd;

	if (zp_remote())
		return;
	ofd = zp_core_fd_peek(fd);
	if (!ofd)
		return;
	zp_ofd_put(ofd);
	ofd = zp_fd_get(fd); /* mounts the store again if a fork put it away */
	if (ofd) {
		zp_settle_unlinked(fd, ofd);
		zp_ofd_put(ofd);
	}
	errno = saved;
}

ZP_EXPORT int close(int fd)
{
	int r;

	if (zp_bypass())
		return ZP_REAL(close)(fd);
	settle_unlinked(fd);
	if (!forget_fd(fd)) {
		/* Programs that close every fd close the engine's (or the daemon socket) too. */
		zp_core_protect_fd(fd);
		return ZP_REAL(close)(fd);
	}
	r = ZP_REAL(close)(fd);
	if (fd <= 2) {
		int e = errno;

		zp_stdio_fd_changed(fd);
		errno = e;
	}
	/* Past the destructor, a mount lives only while something uses it. */
	if (zp_core_exiting() && zp_fd_count() == 0)
		zp_engine_release_if_idle();
	return r;
}

ZP_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	if (!zp_bypass() && first <= last && !(flags & CLOSE_RANGE_CLOEXEC) &&
	    !(flags & ~(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE))) {
		unsigned limit = (unsigned)zp_fd_limit();
		/* last is often ~0U: walk only the slots ever used. */
		unsigned hi = last < limit ? last : limit - 1;

		for (unsigned fd = first; limit > 0 && fd <= hi && fd <= (unsigned)INT_MAX; fd++)
			if (forget_fd((int)fd) && fd <= 2)
				zp_stdio_fd_changed((int)fd);
		/*
		 * The range may hold the engine's own fds (device, io_uring, log):
		 * the store is put away cleanly first; the fds left mount it again on use.
		 */
		for (int fd = zvfs_fdreg_next((int)(first > INT_MAX ? INT_MAX : first));
		     fd >= 0 && (unsigned)fd <= last; fd = zvfs_fdreg_next(fd + 1))
			zp_core_protect_fd(fd);
		if (zp_remote())
			zp_remote_protect_range(first, last);
	}
	return ZP_REAL(close_range)(first, last, flags);
}

/* ---- 4. dup, fcntl ------------------------------------------------------------------ */

/* newfd now refers to what ofd (NULL: a non-ZVFS file) is. */
static void became(int newfd, struct zp_ofd *ofd, bool was_zvfs)
{
	if (ofd)
		zp_fd_set(newfd, ofd);
	else if (was_zvfs)
		zp_fd_clear(newfd);
	if (newfd <= 2 && (ofd || was_zvfs))
		zp_stdio_fd_changed(newfd);
}

ZP_EXPORT int dup(int fd)
{
	struct zp_ofd *ofd;
	int r;

	if (zp_bypass())
		return ZP_REAL(dup)(fd);
	ofd = zp_fd_get(fd);
	r = ZP_REAL(dup)(fd);
	if (ofd) {
		if (r >= 0)
			became(r, ofd, false);
		zp_ofd_put(ofd);
	}
	return r;
}

static int dup23(int oldfd, int newfd, int flags, bool three)
{
	struct zp_ofd *ofd;
	bool was_zvfs;
	int r;

	if (oldfd == newfd)
		return three ? ZP_REAL(dup3)(oldfd, newfd, flags) : ZP_REAL(dup2)(oldfd, newfd);
	ofd = zp_fd_get(oldfd);
	{
		struct zp_ofd *nofd = zp_core_fd_peek(newfd);

		was_zvfs = nofd != NULL;
		if (nofd) {
			/* The kernel closes newfd silently: its offset and size go out first. */
			offset_to_kernel(newfd, nofd);
			zp_placeholder_sync(newfd, nofd);
			zp_ofd_put(nofd);
		} else {
			/* Shells dup2 onto any number, the engine's own fds included. */
			zp_core_protect_fd(newfd);
		}
	}
	r = three ? ZP_REAL(dup3)(oldfd, newfd, flags) : ZP_REAL(dup2)(oldfd, newfd);
	if (r >= 0) {
		int e = errno;

		became(newfd, ofd, was_zvfs);
		errno = e;
	}
	if (ofd)
		zp_ofd_put(ofd);
	return r;
}

ZP_EXPORT int dup2(int oldfd, int newfd)
{
	if (zp_bypass())
		return ZP_REAL(dup2)(oldfd, newfd);
	return dup23(oldfd, newfd, 0, false);
}

ZP_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (zp_bypass())
		return ZP_REAL(dup3)(oldfd, newfd, flags);
	return dup23(oldfd, newfd, flags, true);
}

static int do_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	struct zp_ofd *ofd;
	int r;

	if (zp_bypass())
		return real(fd, cmd, arg);
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
	case F_GETFL:
	case F_SETFL:
		break;
	default:
		/* Locks, F_SETFD, leases, pipes...: the kernel's, on the real fd. */
		return real(fd, cmd, arg);
	}
	ofd = zp_fd_get(fd);
	if (!ofd)
		return real(fd, cmd, arg);
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		r = real(fd, cmd, arg);
		if (r >= 0)
			became(r, ofd, false);
		break;
	case F_GETFL:
		r = real(fd, cmd);
		/* O_DIRECT may be ZVFS's alone (the placeholder's file system refused it). */
		if (r >= 0 && (atomic_load(&ofd->flags) & O_DIRECT))
			r |= O_DIRECT;
		break;
	default: { /* F_SETFL */
		int want = (int)(intptr_t)arg;
		const int settable = O_APPEND | O_DIRECT | O_NONBLOCK;

		r = real(fd, cmd, want);
		if (r < 0 && errno == EINVAL && (want & O_DIRECT))
			r = real(fd, cmd, want & ~O_DIRECT);
		if (r >= 0) {
			int old = atomic_load(&ofd->flags);

			atomic_store(&ofd->flags, (old & ~settable) | (want & settable));
		}
		break;
	}
	}
	zp_ofd_put(ofd);
	return r;
}

ZP_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(ZP_REAL(fcntl), fd, cmd, arg);
}

ZP_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return do_fcntl(ZP_REAL(fcntl64), fd, cmd, arg);
}

/* ---- 5. ioctl ----------------------------------------------------------------------- */

static bool is_zvfs_fd(int fd)
{
	struct zp_ofd *ofd = zp_core_fd_peek(fd);

	if (!ofd)
		return false;
	zp_ofd_put(ofd);
	return true;
}

/* Clone and extent ioctls act on the placeholder's (empty) blocks: refuse so cp falls back. */
static bool refused_ioctl(int fd, unsigned long req, void *arg)
{
	switch (req) {
	case FICLONE:
		return is_zvfs_fd(fd) || is_zvfs_fd((int)(intptr_t)arg);
	case FICLONERANGE:
		return is_zvfs_fd(fd) ||
		       (arg && is_zvfs_fd((int)((struct file_clone_range *)arg)->src_fd));
	case FIDEDUPERANGE:
	case FS_IOC_FIEMAP:
		return is_zvfs_fd(fd);
	default:
		return false;
	}
}

ZP_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	struct zp_ofd *ofd;
	va_list ap;
	void *arg;
	int r;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (zp_bypass())
		return ZP_REAL(ioctl)(fd, req, arg);
	if (refused_ioctl(fd, req, arg)) {
		ZVFS_WARN_ONCE("ioctl 0x%lx on a ZVFS file: clone and extent maps act on the "
			       "placeholder's blocks; refused (EOPNOTSUPP)",
			       req);
		errno = EOPNOTSUPP;
		return -1;
	}
	if (req != FIONREAD)
		return ZP_REAL(ioctl)(fd, req, arg);
	ofd = zp_fd_get(fd);
	/* The kernel writes *arg first: a bad pointer is its EFAULT. */
	r = ZP_REAL(ioctl)(fd, req, arg);
	if (ofd) {
		if (r >= 0) {
			if (zp_ofd_stale(ofd)) {
				errno = EIO;
				r = -1;
			} else {
				int64_t pos;
				uint64_t n;

				pthread_mutex_lock(&ofd->pos_lock);
				pos = zp_ofd_pos_load(ofd);
				pthread_mutex_unlock(&ofd->pos_lock);
				ZP_ENTER();
				n = pos < 0 ? 0 : zp_file_readable(ofd->file, (uint64_t)pos);
				ZP_LEAVE();

				*(int *)arg = n > INT_MAX ? INT_MAX : (int)n;
			}
		}
		zp_ofd_put(ofd);
	}
	return r;
}
