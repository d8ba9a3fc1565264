/* SPDX-License-Identifier: MIT */
/*
 * wrap_name.c - unlink, remove, rename, link and the mkstemp family.
 *
 * Names are Linux's: every call here is the kernel's call on the
 * placeholder.  What ZVFS adds is freeing a blob when its file loses its
 * last name (unlink, or a rename over it), and making files created by the
 * mkstemp family under a mount ZVFS files.
 *
 * Before a name is removed we lstat it and read its xattr through the
 * kernel, so a bad path pointer is the kernel's EFAULT and never a crash.
 */
#include "preload/preload.h"

#include <dlfcn.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

/* Shared with wrap_fd.c (preload.h, not mine, has no place for it). */
int zp_core_adopt(int fd, int flags, bool maybe_new);

/* A ZVFS file about to lose a name: what is needed to free its blob afterwards. */
struct victim {
	bool zvfs;
	nlink_t nlink;
	struct zvfs_fs_ino ino;
	size_t xlen;
	char xattr[ZVFS_FS_XATTR_MAX + 1];
	int pfd;     /* daemon mode: O_PATH fd of the victim, for REMOVE once the name is gone */
	bool shared; /* direct mode: open (maybe) in another process, whose engine we cannot see */
};

/*
 * Look at dirfd/path (not following a final symlink) before it is removed.
 * Returns 0 (v->zvfs tells), or -errno from lstat: then the caller simply
 * makes the real call, which fails the same way.
 */
static int inspect(int dirfd, const char *path, struct victim *v)
{
	char procpath[PATH_MAX + 64];
	const char *p = path;
	struct stat st;
	ssize_t n;

	v->zvfs = false;
	v->pfd = -1;
	v->shared = false;
	if (ZP_REAL(fstatat)(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	if (path[0] != '/' && dirfd != AT_FDCWD) {
		if (snprintf(procpath, sizeof(procpath), "/proc/self/fd/%d/%s", dirfd, path) >=
		    (int)sizeof(procpath))
			return 0;
		p = procpath;
	}
	n = lgetxattr(p, ZVFS_FS_XATTR, v->xattr, sizeof(v->xattr));
	if (n < 0)
		return 0;
	v->zvfs = true;
	v->xlen = (size_t)n;
	v->nlink = st.st_nlink;
	v->ino.dev = (uint64_t)st.st_dev;
	v->ino.ino = (uint64_t)st.st_ino;
	if (zp_remote()) {
		/*
		 * The daemon judges the file by an fd of it (st_nlink after the
		 * name went), so take one while the name still leads to it.
		 */
		v->pfd = ZP_REAL(openat)(dirfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (v->pfd < 0)
			v->zvfs = false;
	} else if (v->nlink == 1) {
		/*
		 * Direct mode: a process that inherited or opened the file (a shell's
		 * "exec 3<f" before "rm f") holds it in an engine of its own.  Only the
		 * kernel knows; if anyone else may have it open, the blob is left to
		 * the last close (close() in wrap_fd.c sees the name gone).
		 */
		int fd = ZP_REAL(openat)(dirfd, path,
					 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

		if (fd < 0)
			fd = ZP_REAL(openat)(dirfd, path,
					     O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		v->shared = fd < 0 || zp_open_elsewhere(fd) != 0;
		if (fd >= 0)
			ZP_REAL(close)(fd);
	}
	return 0;
}

static void victim_done(struct victim *v)
{
	if (v->pfd >= 0) {
		ZP_REAL(close)(v->pfd);
		v->pfd = -1;
	}
}

/* v's name is gone: if it was the last, the blob goes (at its last close, if open). */
static void bury(const struct victim *v, const char *path)
{
	int r;

	if (!v->zvfs || v->nlink > 1)
		return;
	ZP_ENTER();
	r = zp_be->remove(v->pfd, v->xattr, v->xlen, &v->ino, v->shared);
	if (r == -ESTALE || r == -EXDEV || r == -EUCLEAN)
		ZVFS_DEBUG("%s removed; its xattr named no blob of this store for it (%s)", path,
			   strerror(-r)); /* a copied or stale xattr: nothing of ours leaked */
	else if (r < 0)
		ZVFS_ERR("%s removed, but freeing its blob failed (%s): run `zvfs fsck --repair`",
			 path, strerror(-r));
	ZP_LEAVE();
}

static int do_unlinkat(int dirfd, const char *path, int flags)
{
	struct victim v;
	int saved = errno;
	int r;

	ZP_ENTER();
	r = inspect(dirfd, path, &v);
	ZP_LEAVE();
	if (r < 0)
		v.zvfs = false;
	errno = saved;
	r = ZP_REAL(unlinkat)(dirfd, path, flags);
	if (r == 0 && v.zvfs) {
		bury(&v, path);
		errno = saved;
	}
	if (v.pfd >= 0) {
		int e = errno;

		ZP_ENTER();
		victim_done(&v);
		ZP_LEAVE();
		errno = e;
	}
	return r;
}

ZP_EXPORT int unlink(const char *path)
{
	if (zp_bypass())
		return ZP_REAL(unlink)(path);
	return do_unlinkat(AT_FDCWD, path, 0);
}

ZP_EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
	if (zp_bypass() || (flags & AT_REMOVEDIR))
		return ZP_REAL(unlinkat)(dirfd, path, flags);
	return do_unlinkat(dirfd, path, flags);
}

/* glibc's remove() unlinks through a hidden alias: do what it does, through ours. */
ZP_EXPORT int remove(const char *path)
{
	int r;

	if (zp_bypass())
		return ZP_REAL(remove)(path);
	r = do_unlinkat(AT_FDCWD, path, 0);
	if (r < 0 && errno == EISDIR)
		r = rmdir(path);
	return r;
}

/*
 * Would giving old the name new take ZVFS data out of every mount?  Its bytes
 * are in the store, so the name outside would be an empty placeholder (and
 * fsck would call the blob an orphan).  Such a move gets the kernel's answer
 * for two file systems, EXDEV, and mv (like most programs) then copies.  old
 * is a ZVFS file or a directory in a mount (it may hold some); new's parent
 * is outside.  Symbolic links and files without data in ZVFS move freely,
 * unless follow (linkat's AT_SYMLINK_FOLLOW): then old's last symbolic link is
 * followed, and the file it names is judged.
 */
static bool leaves_mount(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
			 bool follow)
{
	char canon[PATH_MAX], name[NAME_MAX + 1], src[PATH_MAX + NAME_MAX + 2];
	struct stat st;
	int saved = errno;
	bool r = false;

	ZP_ENTER();
	/*
	 * The kernel looks at both paths first: a bad pointer is its EFAULT, not
	 * our fault (strlen), and a missing old name its ENOENT.
	 */
	if (ZP_REAL(fstatat)(olddirfd, oldpath, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (ZP_REAL(fstatat)(newdirfd, newpath, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	     errno != EFAULT) &&
	    zp_path_parent(newdirfd, newpath, canon, name) == 0 && !zp_path_in_mount(canon)) {
		if (follow) {
			/* the file at the end of the links, by the kernel's own walk */
			int fd = ZP_REAL(openat)(olddirfd, oldpath, O_PATH | O_CLOEXEC);

			if (fd >= 0 && zp_fd_path(fd, src, PATH_MAX) == 0) {
				char *slash = strrchr(src, '/');

				snprintf(canon, sizeof(canon), "%.*s",
					 slash != src ? (int)(slash - src) : 1, src);
			} else {
				canon[0] = '\0';
			}
			if (fd >= 0)
				ZP_REAL(close)(fd);
		} else if (zp_path_parent(olddirfd, oldpath, canon, name) == 0) {
			snprintf(src, sizeof(src), "%s/%s", strcmp(canon, "/") != 0 ? canon : "",
				 name);
		} else {
			canon[0] = '\0';
		}
		if (canon[0] && zp_path_in_mount(canon) &&
		    ZP_REAL(fstatat)(AT_FDCWD, src, &st, AT_SYMLINK_NOFOLLOW) == 0)
			r = S_ISDIR(st.st_mode) ||
			    (S_ISREG(st.st_mode) && lgetxattr(src, ZVFS_FS_XATTR, NULL, 0) >= 0);
	}
	ZP_LEAVE();
	errno = saved;
	if (r)
		ZVFS_DEBUG("%s -> %s: ZVFS data cannot leave the mount by a new name (EXDEV)",
			   oldpath, newpath);
	return r;
}

static int do_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
			unsigned flags, int how)
{
	struct victim v = {.zvfs = false, .pfd = -1};
	int saved = errno;
	int r;

	if (leaves_mount(olddirfd, oldpath, newdirfd, newpath, false) ||
	    ((flags & RENAME_EXCHANGE) &&
	     leaves_mount(newdirfd, newpath, olddirfd, oldpath, false))) {
		errno = EXDEV;
		return -1;
	}

	if (!(flags & (RENAME_EXCHANGE | RENAME_NOREPLACE))) {
		struct stat ost;

		ZP_ENTER();
		/* The old name first: the kernel judges both paths before we read either. */
		if (ZP_REAL(fstatat)(olddirfd, oldpath, &ost, AT_SYMLINK_NOFOLLOW) == 0 &&
		    inspect(newdirfd, newpath, &v) == 0 && v.zvfs &&
		    ((uint64_t)ost.st_dev == v.ino.dev && (uint64_t)ost.st_ino == v.ino.ino))
			v.zvfs = false; /* two names of one inode: rename does nothing */
		ZP_LEAVE();
		errno = saved;
	}
	switch (how) {
	case 0:
		r = ZP_REAL(rename)(oldpath, newpath);
		break;
	case 1:
		r = ZP_REAL(renameat)(olddirfd, oldpath, newdirfd, newpath);
		break;
	default:
		r = ZP_REAL(renameat2)(olddirfd, oldpath, newdirfd, newpath, flags);
		break;
	}
	if (r == 0 && v.zvfs) {
		bury(&v, newpath);
		errno = saved;
	}
	if (v.pfd >= 0) {
		int e = errno;

		ZP_ENTER();
		victim_done(&v);
		ZP_LEAVE();
		errno = e;
	}
	return r;
}

ZP_EXPORT int rename(const char *oldpath, const char *newpath)
{
	if (zp_bypass())
		return ZP_REAL(rename)(oldpath, newpath);
	return do_renameat2(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0, 0);
}

ZP_EXPORT int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	if (zp_bypass())
		return ZP_REAL(renameat)(olddirfd, oldpath, newdirfd, newpath);
	return do_renameat2(olddirfd, oldpath, newdirfd, newpath, 0, 1);
}

ZP_EXPORT int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
			unsigned flags)
{
	if (zp_bypass())
		return ZP_REAL(renameat2)(olddirfd, oldpath, newdirfd, newpath, flags);
	return do_renameat2(olddirfd, oldpath, newdirfd, newpath, flags, 2);
}

/*
 * Hard links share the inode and so the xattr: inside the mounts nothing for
 * ZVFS to do.  A link outside them would be a name without the data (EXDEV).
 */
ZP_EXPORT int link(const char *oldpath, const char *newpath)
{
	if (!zp_bypass() && leaves_mount(AT_FDCWD, oldpath, AT_FDCWD, newpath, false)) {
		errno = EXDEV;
		return -1;
	}
	return ZP_REAL(link)(oldpath, newpath);
}

ZP_EXPORT int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
		     int flags)
{
	int saved = errno;
	struct stat st;
	bool out, fdlink = false;

	if (zp_bypass())
		return ZP_REAL(linkat)(olddirfd, oldpath, newdirfd, newpath, flags);
	/* the kernel judges the pointer first (EFAULT) */
	if (flags & AT_EMPTY_PATH)
		fdlink = ZP_REAL(fstatat)(olddirfd, oldpath, &st,
					  AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
			 oldpath[0] == '\0';
	errno = saved;
	if (!fdlink) {
		out = leaves_mount(olddirfd, oldpath, newdirfd, newpath,
				   (flags & AT_SYMLINK_FOLLOW) != 0);
	} else {
		/* Linking an open descriptor: a ZVFS one may not get a name outside. */
		struct zp_ofd *ofd = zp_fd_get(olddirfd);
		char canon[PATH_MAX], name[NAME_MAX + 1];

		out = ofd &&
		      (ZP_REAL(fstatat)(newdirfd, newpath, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		       errno != EFAULT) &&
		      zp_path_parent(newdirfd, newpath, canon, name) == 0 &&
		      !zp_path_in_mount(canon);
		if (ofd)
			zp_ofd_put(ofd);
		errno = saved;
	}
	if (out) {
		errno = EXDEV;
		return -1;
	}
	return ZP_REAL(linkat)(olddirfd, oldpath, newdirfd, newpath, flags);
}

/* ---- mkstemp family: libc makes the name and the file, we make it ZVFS -------------- */

static int adopt_temp(int fd, int flags)
{
	if (fd < 0 || zp_bypass())
		return fd;
	return zp_core_adopt(fd, O_RDWR | (flags & (O_APPEND | O_SYNC | O_DSYNC)), true);
}

ZP_EXPORT int mkstemp(char *tmpl)
{
	return adopt_temp(ZP_REAL(mkstemp)(tmpl), 0);
}

ZP_EXPORT int mkstemp64(char *tmpl)
{
	return adopt_temp(ZP_REAL(mkstemp64)(tmpl), 0);
}

ZP_EXPORT int mkostemp(char *tmpl, int flags)
{
	return adopt_temp(ZP_REAL(mkostemp)(tmpl, flags), flags);
}

ZP_EXPORT int mkostemp64(char *tmpl, int flags)
{
	return adopt_temp(ZP_REAL(mkostemp64)(tmpl, flags), flags);
}

ZP_EXPORT int mkstemps(char *tmpl, int suffixlen)
{
	return adopt_temp(ZP_REAL(mkstemps)(tmpl, suffixlen), 0);
}

ZP_EXPORT int mkstemps64(char *tmpl, int suffixlen)
{
	return adopt_temp(ZP_REAL(mkstemps64)(tmpl, suffixlen), 0);
}

ZP_EXPORT int mkostemps(char *tmpl, int suffixlen, int flags)
{
	return adopt_temp(ZP_REAL(mkostemps)(tmpl, suffixlen, flags), flags);
}

ZP_EXPORT int mkostemps64(char *tmpl, int suffixlen, int flags)
{
	return adopt_temp(ZP_REAL(mkostemps64)(tmpl, suffixlen, flags), flags);
}

/*
 * ---- the ZVFS xattr is ZVFS's: hidden from listings, not settable ---------
 *
 * `cp -a` and `rsync -X` copy every user xattr: a copied ZVFS_FS_XATTR would
 * replace the one we just gave the new file and make it name another
 * inode's blob.  So listings leave it out, and applications may not set or
 * remove it (reading it stays possible, for diagnosis).  These entry points
 * are not in preload.h's table of real functions: resolved here.
 */

static void *next_sym(void **cache, const char *name)
{
	void *p = atomic_load_explicit((_Atomic(void *) *)cache, memory_order_acquire);

	if (!p) {
		p = dlsym(RTLD_NEXT, name);
		atomic_store_explicit((_Atomic(void *) *)cache, p, memory_order_release);
	}
	return p;
}

#define NEXT(type, name)                                                                           \
	({                                                                                         \
		static void *cache_;                                                               \
		(type) next_sym(&cache_, #name);                                                   \
	})

/* Drop our name from a list of NUL-terminated names of n bytes; the new length. */
static ssize_t hide_ours(char *list, ssize_t n)
{
	const size_t ours = sizeof(ZVFS_FS_XATTR); /* with its NUL */
	ssize_t off = 0;

	if (n <= 0 || !list)
		return n;
	while (off < n) {
		size_t len = strnlen(list + off, (size_t)(n - off)) + 1;

		if (len == ours && memcmp(list + off, ZVFS_FS_XATTR, ours) == 0) {
			memmove(list + off, list + off + len, (size_t)(n - off) - len);
			n -= (ssize_t)len;
			continue;
		}
		off += (ssize_t)len;
	}
	return n;
}

static bool is_ours(const char *name)
{
	/*
	 * The kernel reads name first (as a path, which it only looks up): a bad
	 * pointer is left to the real call's EFAULT instead of crashing here.
	 */
	if (syscall(SYS_faccessat, AT_FDCWD, name, F_OK) < 0 && errno == EFAULT)
		return false;
	return strcmp(name, ZVFS_FS_XATTR) == 0;
}

static int refuse_set(const char *call)
{
	static atomic_bool told;

	if (!atomic_exchange(&told, true))
		ZVFS_WARN("%s: %s belongs to ZVFS and cannot be set or removed (EPERM)", call,
			  ZVFS_FS_XATTR);
	errno = EPERM;
	return -1;
}

ZP_EXPORT ssize_t listxattr(const char *path, char *list, size_t size)
{
	ssize_t n = NEXT(ssize_t(*)(const char *, char *, size_t), listxattr)(path, list, size);

	return zp_bypass() ? n : hide_ours(list, n);
}

ZP_EXPORT ssize_t llistxattr(const char *path, char *list, size_t size)
{
	ssize_t n = NEXT(ssize_t(*)(const char *, char *, size_t), llistxattr)(path, list, size);

	return zp_bypass() ? n : hide_ours(list, n);
}

ZP_EXPORT ssize_t flistxattr(int fd, char *list, size_t size)
{
	ssize_t n = NEXT(ssize_t(*)(int, char *, size_t), flistxattr)(fd, list, size);

	return zp_bypass() ? n : hide_ours(list, n);
}

ZP_EXPORT int setxattr(const char *path, const char *name, const void *value, size_t size,
		       int flags)
{
	if (!zp_bypass() && is_ours(name))
		return refuse_set("setxattr");
	return NEXT(int (*)(const char *, const char *, const void *, size_t, int),
		    setxattr)(path, name, value, size, flags);
}

ZP_EXPORT int lsetxattr(const char *path, const char *name, const void *value, size_t size,
			int flags)
{
	if (!zp_bypass() && is_ours(name))
		return refuse_set("lsetxattr");
	return NEXT(int (*)(const char *, const char *, const void *, size_t, int),
		    lsetxattr)(path, name, value, size, flags);
}

ZP_EXPORT int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)
{
	if (!zp_bypass() && is_ours(name))
		return refuse_set("fsetxattr");
	return NEXT(int (*)(int, const char *, const void *, size_t, int),
		    fsetxattr)(fd, name, value, size, flags);
}

ZP_EXPORT int removexattr(const char *path, const char *name)
{
	if (!zp_bypass() && is_ours(name))
		return refuse_set("removexattr");
	return NEXT(int (*)(const char *, const char *), removexattr)(path, name);
}

ZP_EXPORT int lremovexattr(const char *path, const char *name)
{
	if (!zp_bypass() && is_ours(name))
		return refuse_set("lremovexattr");
	return NEXT(int (*)(const char *, const char *), lremovexattr)(path, name);
}

ZP_EXPORT int fremovexattr(int fd, const char *name)
{
	if (!zp_bypass() && is_ours(name))
		return refuse_set("fremovexattr");
	return NEXT(int (*)(int, const char *), fremovexattr)(fd, name);
}
