/* SPDX-License-Identifier: MIT */
/*
 * preload.h - internals shared by the files of libzvfs.so (the preload
 * library).  Not installed; applications see only the POSIX entry points.
 *
 * Map of the library:
 *   core.c      configuration (ZVFS_* read once at load), the table of real
 *               libc entry points, the internal-call guard, the engine's
 *               lifecycle (lazy mount, idle release, fork, exec, exit)
 *   fdtable.c   fd -> open file description (struct zp_ofd), lock-free lookup
 *   path.c      mount-prefix matching, realpath of new files, EFAULT probing
 *   wrap_fd.c   open family, close, close_range, dup*, fcntl, ioctl
 *   wrap_io.c   read/write family, lseek, truncate, fallocate, fadvise,
 *               sync family, copy_file_range, sendfile, splice
 *   wrap_stat.c stat family (incl. statx and the pre-2.33 __xstat names)
 *   wrap_name.c unlink, rename, link, mkstemp family
 *   wrap_proc.c fork, vfork, exec family, posix_spawn, system, _exit
 *   stdio.c     fopen/fdopen/freopen/tmpfile via fopencookie; re-pointing
 *               stdin/stdout/stderr when fd 0/1/2 is a ZVFS file
 *   aio.c       libaio io_setup/io_submit/io_getevents/io_cancel/io_destroy
 *   mmap.c      mmap of ZVFS files (MAP_PRIVATE emulated, shared refused)
 *   wrap_uring.c liburing's ring setup refused (io_uring I/O is invisible here)
 *   backend.h   the table of file operations the wrappers call (zp_file_*()):
 *   backend_local.c   direct mode, the engine in this process
 *   backend_remote.c  daemon mode, zvfsd over a socket and shared memory
 *
 * Rules every wrapper follows
 * ---------------------------
 * 1. First line: `if (zp_bypass()) return ZP_REAL(name)(args);`.  ZVFS's own
 *    code (the engine, logging) calls libc functions that this library
 *    defines; zp_internal > 0 on that thread sends them straight to libc.
 * 2. Calls on anything that is not a ZVFS file go to libc unchanged, at the
 *    cost of one fd-table load (fd calls) or a prefix check (path calls).
 * 3. Path arguments are handed to the kernel (the real call, or a probe
 *    such as lgetxattr) before ZVFS dereferences them, so a bad pointer is
 *    EFAULT from the kernel, never a crash here.
 * 4. Engine calls happen between ZP_ENTER() and ZP_LEAVE(); they return
 *    0/-errno; the wrapper converts to -1/errno at its return (zp_ret()).
 * 5. No malloc in the fd-only fast paths of read, write and close (they may
 *    be called from signal handlers on non-ZVFS fds); logging uses
 *    util/log.h (a raw write(2) system call, no stdio, no malloc).
 */
#ifndef ZVFS_PRELOAD_H
#define ZVFS_PRELOAD_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <utime.h>

#include "preload/backend.h"
#include "util/fdreg.h"
#include "util/log.h"
#include "zvfs/fs.h"

#define ZP_EXPORT __attribute__((visibility("default")))

/* ---- configuration (core.c) ---------------------------------------------------- */

#define ZP_MAX_MOUNTS 8
/* how far a placeholder's mtime may lag writes while only fsync calls come: fdtable.c */
#define ZP_PH_MTIME_LAG_NS 1000000000ull

enum zp_mode {
	ZP_MODE_DIRECT = 0, /* the engine runs in this process (issue 4) */
	ZP_MODE_DAEMON = 1, /* zvfsd holds the store (issue 5) */
	ZP_MODE_AUTO =
		2, /* ZVFS_MODE unset: daemon if zvfsd answers at the first file, else direct */
};

struct zp_config {
	bool enabled; /* false: ZVFS_DISABLE=1, every call passes through */
	int nmounts;  /* ZVFS_MOUNT, ':'-separated, default "/zvfs" */
	char mount[ZP_MAX_MOUNTS]
		  [PATH_MAX]; /* canonical (realpath when it exists), no trailing '/' */
	size_t mount_len[ZP_MAX_MOUNTS];
	enum zp_mode mode; /* ZVFS_MODE: "direct", "daemon", unset: auto (zp_backend_pick) */
	char socket[108];  /* ZVFS_SOCKET, default ZVFS_DEFAULT_SOCKET (daemon mode) */
	uint64_t spin_ns;  /* ZVFS_SPIN_US: spin before sleeping on a request (daemon) */
	bool spin_fixed;   /* ZVFS_SPIN_US given: no adaptation (backend_remote.c) */
	uint32_t ncpu;	   /* online CPUs at start */
	char device[PATH_MAX + 128]; /* ZVFS_DEVICE, default ZP_DEFAULT_DEVICE */
	uint64_t cache_size;	     /* ZVFS_CACHE_SIZE (bytes, K/M/G suffixes), 0 = default */
	char passthrough[1024];	     /* ZVFS_PASSTHROUGH: ':'-separated fnmatch(3) patterns of
					      base names created as plain Linux files; default "*-shm" */
};

/*
 * ZVFS_MODE unset: choose the backend (zp_be, zp_cfg.mode) once, at the
 * first ZVFS file of the process: daemon mode when zvfsd accepts a
 * connection on ZVFS_SOCKET, direct mode when nothing listens there.
 * Called before zp_be is used on a file that has no backend yet.
 */
void zp_backend_pick(void);
/* The choice is still open (ZVFS_MODE unset, no ZVFS file used yet). */
bool zp_backend_undecided(void);
extern struct zp_config zp_cfg;

/* The default store: created (4 GiB, preallocated) and formatted on first use. */
#define ZP_DEFAULT_DEVICE "/var/lib/zvfs/store.img,size=4G,create"

/* ---- real entry points (core.c) ------------------------------------------------ */

struct zp_real {
	/* open */
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*creat)(const char *, mode_t);
	int (*creat64)(const char *, mode_t);
	int (*__open_2)(const char *, int);
	int (*__open64_2)(const char *, int);
	int (*__openat_2)(int, const char *, int);
	int (*__openat64_2)(int, const char *, int);
	/* data */
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*pread64)(int, void *, size_t, off_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*pwrite64)(int, const void *, size_t, off_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*preadv)(int, const struct iovec *, int, off_t);
	ssize_t (*preadv64)(int, const struct iovec *, int, off_t);
	ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
	ssize_t (*pwritev64)(int, const struct iovec *, int, off_t);
	ssize_t (*preadv2)(int, const struct iovec *, int, off_t, int);
	ssize_t (*preadv64v2)(int, const struct iovec *, int, off_t, int);
	ssize_t (*pwritev2)(int, const struct iovec *, int, off_t, int);
	ssize_t (*pwritev64v2)(int, const struct iovec *, int, off_t, int);
	ssize_t (*__read_chk)(int, void *, size_t, size_t);
	ssize_t (*__pread_chk)(int, void *, size_t, off_t, size_t);
	ssize_t (*__pread64_chk)(int, void *, size_t, off_t, size_t);
	ssize_t (*copy_file_range)(int, off_t *, int, off_t *, size_t, unsigned);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*sendfile64)(int, int, off_t *, size_t);
	ssize_t (*splice)(int, off_t *, int, off_t *, size_t, unsigned);
	/* position, size */
	off_t (*lseek)(int, off_t, int);
	off_t (*lseek64)(int, off_t, int);
	int (*ftruncate)(int, off_t);
	int (*ftruncate64)(int, off_t);
	int (*truncate)(const char *, off_t);
	int (*truncate64)(const char *, off_t);
	int (*fallocate)(int, int, off_t, off_t);
	int (*fallocate64)(int, int, off_t, off_t);
	int (*posix_fallocate)(int, off_t, off_t);
	int (*posix_fallocate64)(int, off_t, off_t);
	int (*posix_fadvise)(int, off_t, off_t, int);
	int (*posix_fadvise64)(int, off_t, off_t, int);
	/* status */
	int (*fstat)(int, struct stat *);
	int (*fstat64)(int, struct stat *);
	int (*stat)(const char *, struct stat *);
	int (*stat64)(const char *, struct stat *);
	int (*lstat)(const char *, struct stat *);
	int (*lstat64)(const char *, struct stat *);
	int (*fstatat)(int, const char *, struct stat *, int);
	int (*fstatat64)(int, const char *, struct stat *, int);
	int (*statx)(int, const char *, int, unsigned, struct statx *);
	int (*__fxstat)(int, int, struct stat *);
	int (*__fxstat64)(int, int, struct stat *);
	int (*__xstat)(int, const char *, struct stat *);
	int (*__xstat64)(int, const char *, struct stat *);
	int (*__lxstat)(int, const char *, struct stat *);
	int (*__lxstat64)(int, const char *, struct stat *);
	int (*__fxstatat)(int, int, const char *, struct stat *, int);
	int (*__fxstatat64)(int, int, const char *, struct stat *, int);
	/* timestamps */
	int (*futimens)(int, const struct timespec[2]);
	int (*utimensat)(int, const char *, const struct timespec[2], int);
	int (*futimes)(int, const struct timeval[2]);
	int (*futimesat)(int, const char *, const struct timeval[2]);
	int (*utimes)(const char *, const struct timeval[2]);
	int (*lutimes)(const char *, const struct timeval[2]);
	int (*utime)(const char *, const struct utimbuf *);
	/* sync */
	int (*fsync)(int);
	int (*fdatasync)(int);
	int (*sync_file_range)(int, off_t, off_t, unsigned);
	int (*syncfs)(int);
	void (*sync)(void);
	/* descriptors */
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	/* processes */
	pid_t (*fork)(void);
	pid_t (*_Fork)(void);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*execv)(const char *, char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			   const posix_spawnattr_t *, char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			    const posix_spawnattr_t *, char *const[], char *const[]);
	int (*system)(const char *);
	FILE *(*popen)(const char *, const char *);
	void (*_exit)(int) __attribute__((noreturn));
	void (*_Exit)(int) __attribute__((noreturn));
	/* names */
	int (*unlink)(const char *);
	int (*unlinkat)(int, const char *, int);
	int (*remove)(const char *);
	int (*rename)(const char *, const char *);
	int (*renameat)(int, const char *, int, const char *);
	int (*renameat2)(int, const char *, int, const char *, unsigned);
	int (*link)(const char *, const char *);
	int (*linkat)(int, const char *, int, const char *, int);
	int (*mkstemp)(char *);
	int (*mkstemp64)(char *);
	int (*mkostemp)(char *, int);
	int (*mkostemp64)(char *, int);
	int (*mkstemps)(char *, int);
	int (*mkstemps64)(char *, int);
	int (*mkostemps)(char *, int, int);
	int (*mkostemps64)(char *, int, int);
	/* stdio */
	FILE *(*fopen)(const char *, const char *);
	FILE *(*fopen64)(const char *, const char *);
	FILE *(*fdopen)(int, const char *);
	FILE *(*freopen)(const char *, const char *, FILE *);
	FILE *(*freopen64)(const char *, const char *, FILE *);
	FILE *(*tmpfile)(void);
	FILE *(*tmpfile64)(void);
	/* memory maps */
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	void *(*mmap64)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	int (*msync)(void *, size_t, int);
	/* libaio (NULL unless the program links libaio) */
	int (*io_setup)(int, void **);
	int (*io_destroy)(void *);
	int (*io_submit)(void *, long, void **);
	int (*io_getevents)(void *, long, long, void *, struct timespec *);
	int (*io_cancel)(void *, void *, void *);
};
extern struct zp_real zp_real;

/* Resolve the table (dlsym RTLD_NEXT); idempotent, safe before the constructor. */
void zp_resolve(void);

#define ZP_REAL(fn)                                                                                \
	(__builtin_expect(zp_real.fn != NULL, 1) ? zp_real.fn : (zp_resolve(), zp_real.fn))

/* ---- the internal-call guard (core.c) ------------------------------------------ */

/* > 0 while ZVFS code runs on this thread: its libc calls must not be caught. */
extern __thread int zp_internal __attribute__((tls_model("initial-exec")));
/* Set once the constructor has read the configuration. */
extern atomic_bool zp_ready;

static inline bool zp_bypass(void)
{
	return __builtin_expect(zp_internal > 0, 0) ||
	       !atomic_load_explicit(&zp_ready, memory_order_acquire) || !zp_cfg.enabled;
}

/*
 * The opening of an entry point on an fd: declares var, the fd's open file
 * description (a reference the caller gives back), when interception is on
 * and fd is a ZVFS file; otherwise returns what the real call returns.
 */
/* clang-format off */
#define ZP_OFD_OR_REAL(var, fd, fn, args)                                                          \
	struct zp_ofd *var = zp_bypass() ? NULL : zp_fd_get(fd);                                   \
	if (!var)                                                                                  \
		return ZP_REAL(fn) args
/* clang-format on */

#define ZP_ENTER() (zp_internal++)
#define ZP_LEAVE() (zp_internal--)

/* -errno / value -> POSIX return: -1 with errno set for r < 0, r otherwise. */
static inline long zp_ret(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* ---- the engine (core.c) ------------------------------------------------------- */

/*
 * The mounted engine, mounting it on first use (ZVFS_DEVICE, formatted when
 * empty).  NULL with *err = -errno when it cannot be mounted (store held by
 * another process: -EBUSY, logged once naming the holder).  Call between
 * ZP_ENTER() and ZP_LEAVE().
 */
struct zvfs_fs *zp_engine(int *err);

/* Engine generation: bumped at every mount, so handles from an older mount are seen as stale. */
extern atomic_uint zp_engine_gen;

/*
 * Unmount when no ZVFS descriptor is open in this process, so a child or the
 * next process can take the store (before fork, posix_spawn, system, popen).
 */
void zp_engine_release_if_idle(void);

/*
 * Before exec and at exit: sync every ZVFS fd's offset and size to its
 * placeholder (so the next program sees them), write back and unmount.
 */
void zp_engine_shutdown(void);

/* Fork child whose parent holds the engine: forget it, mark every ofd stale. */
void zp_engine_forget_after_fork(void);

/*
 * Open the ZVFS file behind a placeholder given as an fd (fd >= 0) or a path
 * (fd = AT_FDCWD or a dirfd; follow selects stat vs lstat semantics), whose
 * fstat/stat result is st.  Returns 1 with *filep (one handle) for a ZVFS
 * file, 0 when it is not one (no xattr, not a regular file, not under a
 * mount -- the caller passes the call through), or -errno.
 */
int zp_file_lookup(int fd, int dirfd, const char *path, bool follow, const struct stat *st,
		   struct zp_file **filep);

/* ---- open file descriptions (fdtable.c) ------------------------------------------ */

/*
 * One open file description of a ZVFS file, shared by the fds dup'ed from it
 * in this process.  Offsets live here (pos, under pos_lock for read, write
 * and lseek), and are copied to the kernel's description (lseek on the real
 * fd) before exec, fork and spawn, so inherited fds carry them.
 *
 * Daemon mode: a description that another process may also use (this side
 * or the other of a fork, or inherited through exec) is `shared`; its
 * offset then lives only in the kernel (lseek on kfd, one of the fds that
 * refer to it), so both processes see each other's moves.  Two processes
 * calling read() on one shared description at once is not atomic (each
 * reads the offset, then moves it): as with two threads in direct mode on
 * separate descriptions, they may read the same bytes.
 */
struct zp_ofd {
	struct zp_file *file;
	unsigned gen; /* zp_engine_gen at open; another value = stale */
	pthread_mutex_t pos_lock;
	uint64_t pos;
	atomic_int flags; /* O_ACCMODE | O_APPEND | O_DIRECT | O_SYNC | O_DSYNC | O_NONBLOCK */
	atomic_int refs;  /* fds in the table + calls in progress */
	atomic_bool size_dirty; /* written or truncated: placeholder st_size to update */
	struct zvfs_fs_ino ino;
	bool shared;	/* daemon mode: the kernel's offset is the truth (under pos_lock) */
	atomic_int kfd; /* an fd of this description (-1: look it up), for shared offsets */
};

/* A new ofd owning one handle on file, refs = 1 (the caller's). */
struct zp_ofd *zp_ofd_new(struct zp_file *file, int flags, uint64_t pos,
			  const struct zvfs_fs_ino *ino);
void zp_ofd_get(struct zp_ofd *ofd);
/* Drop a reference; the last closes the file handle (zvfs_file_close). */
void zp_ofd_put(struct zp_ofd *ofd);

/*
 * The ofd of fd with a reference for the caller, or NULL when fd is not a
 * ZVFS descriptor (one atomic load for those).  Lock-free.
 */
struct zp_ofd *zp_fd_get(int fd);

/* Put ofd in slot fd (taking a reference); an ofd already there is dropped. */
void zp_fd_set(int fd, struct zp_ofd *ofd);

/* Empty slot fd (dropping its reference); no-op if empty. */
void zp_fd_clear(int fd);

/* Highest slot + 1 ever used (for walks), and the number of ZVFS fds open. */
int zp_fd_limit(void);
int zp_fd_count(void);

/*
 * Recognize an fd this library did not open (inherited through exec): if
 * its file carries the ZVFS xattr, install an ofd with the kernel's offset
 * and flags.  Returns 1 if it is ZVFS now, 0 if not, -errno.
 */
int zp_fd_recognize(int fd);

/* ofd is from an older mount (fork child, failed exec) or the engine is gone. */
static inline bool zp_ofd_stale(const struct zp_ofd *ofd)
{
	return ofd->gen != atomic_load_explicit(&zp_engine_gen, memory_order_relaxed);
}

/*
 * The offset of ofd for a call at the file position, with pos_lock held:
 * the cached one, or the kernel's for a shared description.  -errno.
 */
int64_t zp_ofd_pos_load(struct zp_ofd *ofd);
/* Store a new offset (pos_lock held); a shared description's goes to the kernel. */
void zp_ofd_pos_store(struct zp_ofd *ofd, uint64_t pos);
/*
 * A shared description, for a read or write of n bytes at the file position:
 * move the kernel's offset by n and return where it was (the kernel does
 * that atomically, so two processes writing through one description get
 * disjoint ranges, as they would on a Linux file).  -errno.
 */
int64_t zp_ofd_pos_reserve(struct zp_ofd *ofd, uint64_t n);
/* Give back the n bytes of a reservation that were not read or written. */
void zp_ofd_pos_unreserve(struct zp_ofd *ofd, uint64_t n);
/* An fd of ofd's description (for kernel offsets), or -1. */
int zp_ofd_kfd(struct zp_ofd *ofd);

/* Set the placeholder's st_size to the logical size if ofd changed it (close, fsync). */
int zp_placeholder_sync(int fd, struct zp_ofd *ofd);
/*
 * The same for fsync and fdatasync: when only the mtime would move (the placeholder already
 * has the size) and its mtime is less than ZP_PH_MTIME_LAG_NS old, leaves it for later.
 */
int zp_placeholder_sync_lazy(int fd, struct zp_ofd *ofd);

/*
 * Does an open of fd's file exist besides fd's own (in any process, this one
 * included)?  1 yes, 0 no, -errno when the kernel cannot tell us (a file
 * this user does not own, without CAP_LEASE; leases disabled).
 */
int zp_open_elsewhere(int fd);

/*
 * Direct mode, fd (of ofd) about to close for good (close, exit): its file
 * has lost its last name, maybe in another process (rm run by a shell that
 * holds "exec 3<f"), which then left the blob to the last close.  The
 * handle's end frees it if no other open of the file is left anywhere, and
 * keeps it while one is.  Not at exec or fork: the open lives on there.
 */
void zp_settle_unlinked(int fd, struct zp_ofd *ofd);

/* ---- paths (path.c) ------------------------------------------------------------------ */

/* abs (canonical, absolute) is a mount prefix or below one, by whole components. */
bool zp_path_in_mount(const char *abs);

/* The canonical path of an open fd (readlink /proc/self/fd/N); -errno. */
int zp_fd_path(int fd, char *buf, size_t len);

/*
 * Would a file created at path (relative to dirfd) be a ZVFS file: its
 * parent's realpath is under a mount and its base name matches no
 * ZVFS_PASSTHROUGH pattern.  -errno when the parent cannot be resolved.
 */
int zp_path_new_is_zvfs(int dirfd, const char *path);

/*
 * The canonical path of path's parent directory (PATH_MAX bytes) and its last
 * component (NAME_MAX + 1 bytes); -errno when the parent cannot be resolved.
 */
int zp_path_parent(int dirfd, const char *path, char *canon, char *name);

/* Base name matches a ZVFS_PASSTHROUGH pattern. */
bool zp_path_passthrough(const char *name);

/* ---- hooks between files ------------------------------------------------------------- */

/* stdio.c: fd (0, 1 or 2) became, or stopped being, a ZVFS descriptor. */
void zp_stdio_fd_changed(int fd);

/* stdio.c: flush every ZVFS stream (before exec, fork and shutdown). */
void zp_stdio_flush_all(void);

/* mmap.c: nothing for now; aio.c: forget contexts after fork. */
void zp_aio_after_fork(void);

#endif /* ZVFS_PRELOAD_H */
