/* SPDX-License-Identifier: MIT */
/*
 * core.c - configuration, the table of real libc entry points, the
 * internal-call guard and the engine's lifecycle.
 *
 * Map of this file:
 *   1. globals shared through preload.h
 *   2. zp_resolve(): dlsym(RTLD_NEXT) of every entry point, with raw-syscall
 *      stand-ins for the few calls dlsym itself (or a malloc it runs) may make
 *   3. configuration: ZVFS_* read once by the constructor
 *   4. the engine: lazy mount, idle release, shutdown, fork handling, revival
 *      of descriptors whose engine went away (after a fork or exec that gave
 *      the store up, a failed exec, after the destructor)
 *   5. zp_file_lookup()
 *   6. constructor, destructor, pthread_atfork handlers
 *
 * Direct mode: one process holds the store (an fcntl lock on the device).
 * A child can only use ZVFS if the parent gives the store up before fork or
 * spawn; see prepare_children() for when that is safe.
 *
 * Daemon mode (ZVFS_MODE=daemon, backend_remote.c): zvfsd holds the store
 * and every process talks to it, so none of the hand-off is needed.  What
 * remains here: before a fork or spawn the offsets go to the kernel and
 * every open description becomes `shared` (its offset lives in the kernel
 * from then on, for both processes); the fork child drops the parent's
 * connection and its descriptors get handles of their own on first use
 * (the same revival as above: zp_engine_gen moves on); at exec and exit
 * offsets and sizes go to the kernel and the placeholders.
 */
#include "preload/preload.h"

#include <dlfcn.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "ipc/proto.h"
#include "util/parse.h"

/* Shared with fdtable.c and wrap_*.c (preload.h, not mine, has no place for them). */
bool zp_core_revive_allowed(void);
void zp_core_revive_all(void);
void zp_core_prepare_children(void);
void zp_core_after_exec_failed(void);
void zp_core_shutdown(bool flush_stdio);
bool zp_core_exiting(void);
void zp_core_protect_fd(int fd);
struct zp_ofd *zp_core_fd_peek(int fd);
int zp_core_fd_mark(int fd);
void zp_core_fdtable_after_fork(void);

/* ---- 1. globals ----------------------------------------------------------------- */

struct zp_config zp_cfg;
const struct zp_backend *zp_be = &zp_backend_local;
/* ZVFS_MODE unset or "auto": the backend is chosen by zp_backend_pick(). */
static bool g_auto;
static pthread_once_t g_pick_once = PTHREAD_ONCE_INIT;
static atomic_bool g_picked;

/*
 * A daemon that accepts a connection serves the process; a socket path
 * where nothing listens (ENOENT, ECONNREFUSED) means direct mode on
 * ZVFS_DEVICE.  Any other failure (EACCES: the socket is not for this user)
 * still picks daemon mode, whose first call then says what is wrong, rather
 * than a second store opened behind a running daemon's back.
 */
static void pick_backend(void)
{
	const char *what;
	int s = zp_remote_dial(&what), e = s < 0 ? -s : 0;

	if (s >= 0)
		ZP_REAL(close)(s);
	if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) {
		zp_be = &zp_backend_local;
		zp_cfg.mode = ZP_MODE_DIRECT;
	} else {
		zp_be = &zp_backend_remote;
		zp_cfg.mode = ZP_MODE_DAEMON;
	}
	ZVFS_DEBUG("ZVFS_MODE unset: %s mode (%s: %s)",
		   zp_cfg.mode == ZP_MODE_DAEMON ? "daemon" : "direct", zp_cfg.socket,
		   e ? strerror(e) : "zvfsd answers");
	atomic_store(&g_picked, true);
}

void zp_backend_pick(void)
{
	if (g_auto)
		pthread_once(&g_pick_once, pick_backend);
}

bool zp_backend_undecided(void)
{
	return g_auto && !atomic_load(&g_picked);
}
struct zp_real zp_real;
__thread int zp_internal __attribute__((tls_model("initial-exec")));
atomic_bool zp_ready;
atomic_uint zp_engine_gen; /* 0: never mounted in this process */

/* ---- 2. real entry points --------------------------------------------------------- */

/*
 * Stand-ins used while the table is being filled: dlsym may allocate, and an
 * interposed malloc (jemalloc, tcmalloc) may open and read files, which
 * re-enters our wrappers before their real functions are known.
 */
static int raw_open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static int raw_openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

static ssize_t raw_read(int fd, void *buf, size_t n)
{
	return syscall(SYS_read, fd, buf, n);
}

static ssize_t raw_write(int fd, const void *buf, size_t n)
{
	return syscall(SYS_write, fd, buf, n);
}

static int raw_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

static off_t raw_lseek(int fd, off_t off, int whence)
{
	return (off_t)syscall(SYS_lseek, fd, off, whence);
}

static int raw_fstat(int fd, struct stat *st)
{
	return (int)syscall(SYS_fstat, fd, st);
}

static int raw_stat(const char *path, struct stat *st)
{
	return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, 0);
}

static int raw_lstat(const char *path, struct stat *st)
{
	return (int)syscall(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

static int raw_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static int raw_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

static pthread_mutex_t g_resolve_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread bool t_resolving;
static atomic_bool g_resolved;

static void *sym(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

/* The pre-2.33 stat names survive only as compat symbols of version GLIBC_2.2.5. */
static void *old_sym(const char *name)
{
	void *p = dlvsym(RTLD_NEXT, name, "GLIBC_2.2.5");

	return p ? p : dlsym(RTLD_NEXT, name);
}

#define R(fn) (*(void **)&zp_real.fn = sym(#fn))
#define RS(fn, standin)                                                                            \
	do {                                                                                       \
		void *p_ = sym(#fn);                                                               \
		*(void **)&zp_real.fn = p_ ? p_ : (void *)(standin);                               \
	} while (0)

void zp_resolve(void)
{
	if (atomic_load_explicit(&g_resolved, memory_order_acquire) || t_resolving)
		return;
	pthread_mutex_lock(&g_resolve_lock);
	if (atomic_load(&g_resolved)) {
		pthread_mutex_unlock(&g_resolve_lock);
		return;
	}
	t_resolving = true;
	/* Stand-ins first: a recursive call through dlsym finds something callable. */
	if (!zp_real.open)
		zp_real.open = raw_open;
	if (!zp_real.open64)
		zp_real.open64 = raw_open;
	if (!zp_real.openat)
		zp_real.openat = raw_openat;
	if (!zp_real.openat64)
		zp_real.openat64 = raw_openat;
	if (!zp_real.read)
		zp_real.read = raw_read;
	if (!zp_real.write)
		zp_real.write = raw_write;
	if (!zp_real.close)
		zp_real.close = raw_close;
	if (!zp_real.lseek)
		zp_real.lseek = raw_lseek;
	if (!zp_real.lseek64)
		zp_real.lseek64 = raw_lseek;
	if (!zp_real.fstat)
		zp_real.fstat = raw_fstat;
	if (!zp_real.fstat64)
		zp_real.fstat64 = raw_fstat;
	if (!zp_real.stat)
		zp_real.stat = raw_stat;
	if (!zp_real.stat64)
		zp_real.stat64 = raw_stat;
	if (!zp_real.lstat)
		zp_real.lstat = raw_lstat;
	if (!zp_real.lstat64)
		zp_real.lstat64 = raw_lstat;
	if (!zp_real.fcntl)
		zp_real.fcntl = raw_fcntl;
	if (!zp_real.fcntl64)
		zp_real.fcntl64 = raw_fcntl;
	if (!zp_real.mmap)
		zp_real.mmap = raw_mmap;
	if (!zp_real.mmap64)
		zp_real.mmap64 = raw_mmap;
	if (!zp_real.munmap)
		zp_real.munmap = raw_munmap;

	RS(open, raw_open);
	RS(open64, raw_open);
	RS(openat, raw_openat);
	RS(openat64, raw_openat);
	R(creat);
	R(creat64);
	R(__open_2);
	R(__open64_2);
	R(__openat_2);
	R(__openat64_2);
	RS(read, raw_read);
	RS(write, raw_write);
	R(pread);
	R(pread64);
	R(pwrite);
	R(pwrite64);
	R(readv);
	R(writev);
	R(preadv);
	R(preadv64);
	R(pwritev);
	R(pwritev64);
	R(preadv2);
	R(preadv64v2);
	R(pwritev2);
	R(pwritev64v2);
	R(__read_chk);
	R(__pread_chk);
	R(__pread64_chk);
	R(copy_file_range);
	R(sendfile);
	R(sendfile64);
	R(splice);
	RS(lseek, raw_lseek);
	RS(lseek64, raw_lseek);
	R(ftruncate);
	R(ftruncate64);
	R(truncate);
	R(truncate64);
	R(fallocate);
	R(fallocate64);
	R(posix_fallocate);
	R(posix_fallocate64);
	R(posix_fadvise);
	R(posix_fadvise64);
	RS(fstat, raw_fstat);
	RS(fstat64, raw_fstat);
	RS(stat, raw_stat);
	RS(stat64, raw_stat);
	RS(lstat, raw_lstat);
	RS(lstat64, raw_lstat);
	R(fstatat);
	R(fstatat64);
	R(statx);
	R(futimens);
	R(utimensat);
	R(futimes);
	R(futimesat);
	R(utimes);
	R(lutimes);
	R(utime);
	*(void **)&zp_real.__fxstat = old_sym("__fxstat");
	*(void **)&zp_real.__fxstat64 = old_sym("__fxstat64");
	*(void **)&zp_real.__xstat = old_sym("__xstat");
	*(void **)&zp_real.__xstat64 = old_sym("__xstat64");
	*(void **)&zp_real.__lxstat = old_sym("__lxstat");
	*(void **)&zp_real.__lxstat64 = old_sym("__lxstat64");
	*(void **)&zp_real.__fxstatat = old_sym("__fxstatat");
	*(void **)&zp_real.__fxstatat64 = old_sym("__fxstatat64");
	R(fsync);
	R(fdatasync);
	R(sync_file_range);
	R(syncfs);
	R(sync);
	RS(close, raw_close);
	R(close_range);
	R(dup);
	R(dup2);
	R(dup3);
	RS(fcntl, raw_fcntl);
	RS(fcntl64, raw_fcntl);
	R(ioctl);
	R(fork);
	R(_Fork);
	R(execve);
	R(execveat);
	R(fexecve);
	R(execv);
	R(execvp);
	R(execvpe);
	R(posix_spawn);
	R(posix_spawnp);
	R(system);
	R(popen);
	R(_exit);
	R(_Exit);
	R(unlink);
	R(unlinkat);
	R(remove);
	R(rename);
	R(renameat);
	R(renameat2);
	R(link);
	R(linkat);
	R(mkstemp);
	R(mkstemp64);
	R(mkostemp);
	R(mkostemp64);
	R(mkstemps);
	R(mkstemps64);
	R(mkostemps);
	R(mkostemps64);
	R(fopen);
	R(fopen64);
	R(fdopen);
	R(freopen);
	R(freopen64);
	R(tmpfile);
	R(tmpfile64);
	RS(mmap, raw_mmap);
	RS(mmap64, raw_mmap);
	RS(munmap, raw_munmap);
	R(msync);
	/* libaio's: NULL unless the program links libaio. */
	R(io_setup);
	R(io_destroy);
	R(io_submit);
	R(io_getevents);
	R(io_cancel);
	t_resolving = false;
	atomic_store_explicit(&g_resolved, true, memory_order_release);
	pthread_mutex_unlock(&g_resolve_lock);
}

/* ---- 3. configuration ------------------------------------------------------------- */

static void add_mount(const char *p, size_t n)
{
	char raw[PATH_MAX];
	char canon[PATH_MAX];
	int i = zp_cfg.nmounts;

	if (n == 0)
		return;
	if (n >= sizeof(raw) || p[0] != '/') {
		ZVFS_ERR("ZVFS_MOUNT: '%.*s' is not an absolute path; ignored", (int)n, p);
		return;
	}
	if (i >= ZP_MAX_MOUNTS) {
		ZVFS_ERR("ZVFS_MOUNT: more than %d prefixes; '%.*s' ignored", ZP_MAX_MOUNTS, (int)n,
			 p);
		return;
	}
	memcpy(raw, p, n);
	raw[n] = '\0';
	if (realpath(raw, canon) == NULL) {
		/* Not there yet: match it as written, minus trailing slashes. */
		strcpy(canon, raw);
	}
	n = strlen(canon);
	while (n > 1 && canon[n - 1] == '/')
		canon[--n] = '\0';
	memcpy(zp_cfg.mount[i], canon, n + 1);
	zp_cfg.mount_len[i] = n;
	zp_cfg.nmounts = i + 1;
}

static void read_config(void)
{
	const char *v;

	v = getenv("ZVFS_DISABLE");
	zp_cfg.enabled = !(v && strcmp(v, "1") == 0);

	v = getenv("ZVFS_MOUNT");
	if (!v || !*v)
		v = "/zvfs";
	while (*v) {
		const char *end = strchr(v, ':');
		size_t n = end ? (size_t)(end - v) : strlen(v);

		add_mount(v, n);
		v += n;
		if (*v == ':')
			v++;
	}

	zp_cfg.mode = ZP_MODE_DIRECT;
	zp_be = &zp_backend_local;
	v = getenv("ZVFS_MODE");
	if (v && strcmp(v, "daemon") == 0) {
		zp_cfg.mode = ZP_MODE_DAEMON;
		zp_be = &zp_backend_remote;
	} else if (!v || !*v || strcmp(v, "auto") == 0) {
		zp_cfg.mode = ZP_MODE_AUTO; /* zp_backend_pick() */
		g_auto = true;
	} else if (strcmp(v, "direct") != 0) {
		ZVFS_ERR("ZVFS_MODE=%s: not \"direct\", \"daemon\" or \"auto\"; using direct", v);
	}

	v = getenv("ZVFS_SOCKET");
	if (!v || !*v)
		v = ZVFS_DEFAULT_SOCKET;
	if (strlen(v) >= sizeof(zp_cfg.socket)) {
		ZVFS_ERR("ZVFS_SOCKET is too long (a Unix socket path has at most %zu bytes); "
			 "using %s",
			 sizeof(zp_cfg.socket) - 1, ZVFS_DEFAULT_SOCKET);
		v = ZVFS_DEFAULT_SOCKET;
	}
	strcpy(zp_cfg.socket, v);

	/*
	 * How long a thread spins on its request before sleeping on the futex
	 * while the daemon is busy (ring.h always polls 64 times first, about a
	 * microsecond, which is what a null request takes); ring_run() in
	 * backend_remote.c spins longer while the daemon is nearly idle.  With two
	 * CPUs or fewer a client spinning while the daemon is busy takes the CPU
	 * its worker and the device completion need.  ZVFS_SPIN_US fixes the spin.
	 */
	zp_cfg.ncpu = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	zp_cfg.spin_ns = zp_cfg.ncpu > 2 ? 30000 : 0;
	v = getenv("ZVFS_SPIN_US");
	if (v && *v) {
		char *end;
		unsigned long us = strtoul(v, &end, 10);

		if (*end || us > 1000000) {
			ZVFS_ERR("ZVFS_SPIN_US=%s: not a number of microseconds <= 1000000; "
				 "using the default",
				 v);
		} else {
			zp_cfg.spin_ns = (uint64_t)us * 1000;
			zp_cfg.spin_fixed = true;
		}
	}

	v = getenv("ZVFS_DEVICE");
	if (!v || !*v)
		v = ZP_DEFAULT_DEVICE;
	if (strlen(v) >= sizeof(zp_cfg.device)) {
		ZVFS_ERR("ZVFS_DEVICE is too long; using %s", ZP_DEFAULT_DEVICE);
		v = ZP_DEFAULT_DEVICE;
	}
	strcpy(zp_cfg.device, v);

	zp_cfg.cache_size = 0;
	v = getenv("ZVFS_CACHE_SIZE");
	if (v && *v) {
		int r = zvfs_parse_size(v, &zp_cfg.cache_size);

		if (r < 0) {
			ZVFS_ERR("ZVFS_CACHE_SIZE=%s: %s; using the default", v, strerror(-r));
			zp_cfg.cache_size = 0;
		}
	}

	v = getenv("ZVFS_PASSTHROUGH");
	if (!v)
		v = "*-shm";
	if (strlen(v) >= sizeof(zp_cfg.passthrough)) {
		ZVFS_ERR("ZVFS_PASSTHROUGH is too long; using \"*-shm\"");
		v = "*-shm";
	}
	strcpy(zp_cfg.passthrough, v);
}

/* ---- 4. the engine ---------------------------------------------------------------- */

/*
 * g_engine_lock serializes mount and unmount; the fast path of zp_engine()
 * is one load.  It is taken in the fork prepare handler and released on both
 * sides, so a child never inherits it locked.
 */
static pthread_mutex_t g_engine_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct zvfs_fs *) g_fs;
static int g_last_mount_err;
/* Stale descriptors may be revived by mounting again (see zp_fd_get()). */
static atomic_bool g_revive_ok = true;
/* After the destructor: mounts still work, each undone at exit or when idle. */
static atomic_bool g_exiting;
static bool g_exit_hook_armed;

bool zp_core_revive_allowed(void)
{
	return atomic_load(&g_revive_ok);
}

bool zp_core_exiting(void)
{
	return atomic_load(&g_exiting);
}

static void exit_hook(void)
{
	g_exit_hook_armed = false;
	zp_core_shutdown(true);
}

static void make_default_dir(void)
{
	if (strcmp(zp_cfg.device, ZP_DEFAULT_DEVICE) != 0)
		return;
	/* Best effort: without it the mount fails and says why. */
	if (mkdir("/var/lib/zvfs", 0755) < 0 && errno != EEXIST)
		ZVFS_DEBUG("mkdir /var/lib/zvfs: %s", strerror(errno));
}

static struct zvfs_fs *mount_locked(int *err)
{
	struct zvfs_fs_opts opts;
	struct zvfs_fs *fs = atomic_load(&g_fs);
	int r;

	if (fs)
		return fs;
	make_default_dir();
	zvfs_fs_opts_init(&opts);
	opts.device = zp_cfg.device;
	opts.cache_size = zp_cfg.cache_size;
	opts.format = true;
	r = zvfs_fs_mount(&opts, &fs);
	if (r < 0) {
		if (r != g_last_mount_err) {
			ZVFS_ERR("cannot mount the store %s: %s%s", zp_cfg.device, strerror(-r),
				 r == -EBUSY ? " (direct mode: another process holds it)" : "");
			g_last_mount_err = r;
		}
		*err = r;
		return NULL;
	}
	g_last_mount_err = 0;
	atomic_fetch_add(&zp_engine_gen, 1);
	atomic_store(&g_fs, fs);
	if (atomic_load(&g_exiting) && !g_exit_hook_armed) {
		/* Past our destructor: this mount must still be written back at exit. */
		if (atexit(exit_hook) == 0)
			g_exit_hook_armed = true;
	}
	return fs;
}

struct zvfs_fs *zp_engine(int *err)
{
	struct zvfs_fs *fs = atomic_load_explicit(&g_fs, memory_order_acquire);
	int dummy;

	if (__builtin_expect(fs != NULL, 1))
		return fs;
	if (!err)
		err = &dummy;
	ZP_ENTER();
	pthread_mutex_lock(&g_engine_lock);
	fs = mount_locked(err);
	pthread_mutex_unlock(&g_engine_lock);
	ZP_LEAVE();
	return fs;
}

/* Copy every live descriptor's offset and size to its kernel description and placeholder. */
static void sync_fds_to_kernel(void)
{
	int limit = zp_fd_limit();

	for (int fd = 0; fd < limit; fd++) {
		struct zp_ofd *ofd = zp_core_fd_peek(fd);

		if (!ofd)
			continue;
		if (!zp_ofd_stale(ofd)) {
			if (atomic_load(&g_exiting))
				zp_settle_unlinked(fd, ofd);
			pthread_mutex_lock(&ofd->pos_lock);
			if (!ofd->shared)
				ZP_REAL(lseek)(fd, (off_t)ofd->pos, SEEK_SET);
			pthread_mutex_unlock(&ofd->pos_lock);
			zp_placeholder_sync(fd, ofd);
			if (zp_remote())
				(void)zp_remote_flush(ofd->file);
		}
		zp_ofd_put(ofd);
	}
}

/* Unmount under g_engine_lock; every ofd of this mount becomes stale. */
static void unmount_locked(void)
{
	struct zvfs_fs *fs = atomic_load(&g_fs);
	int r;

	if (!fs)
		return;
	atomic_store(&g_fs, NULL);
	/* Stale first: a racing call sees EIO or revives, never a freed handle. */
	atomic_fetch_add(&zp_engine_gen, 1);
	r = zvfs_fs_unmount(fs);
	if (r < 0)
		ZVFS_ERR("unmount of the store %s: %s", zp_cfg.device, strerror(-r));
}

void zp_engine_release_if_idle(void)
{
	if (!atomic_load(&g_fs))
		return;
	ZP_ENTER();
	pthread_mutex_lock(&g_engine_lock);
	if (zp_fd_count() == 0)
		unmount_locked();
	pthread_mutex_unlock(&g_engine_lock);
	ZP_LEAVE();
}

void zp_core_shutdown(bool flush_stdio)
{
	if (flush_stdio)
		zp_stdio_flush_all();
	if (zp_remote()) {
		/* The daemon keeps the store: only offsets and sizes go to the kernel. */
		ZP_ENTER();
		pthread_mutex_lock(&g_engine_lock);
		sync_fds_to_kernel();
		pthread_mutex_unlock(&g_engine_lock);
		ZP_LEAVE();
		return;
	}
	if (!atomic_load(&g_fs))
		return;
	ZP_ENTER();
	pthread_mutex_lock(&g_engine_lock);
	sync_fds_to_kernel();
	unmount_locked();
	/* Descriptors that survive (failed exec, code after exit) mount again on use. */
	atomic_store(&g_revive_ok, true);
	pthread_mutex_unlock(&g_engine_lock);
	ZP_LEAVE();
}

/*
 * fd is about to be closed or replaced by the application (dup2 onto it,
 * close_range over it).  If it is one of the engine's own fds (the device,
 * an io_uring ring: util/fdreg.h), put the store away cleanly first; ZVFS fds
 * mount it again on their next use.  The log file just moves elsewhere.
 */
void zp_core_protect_fd(int fd)
{
	if (zp_remote())
		zp_remote_protect_fd(fd);
	if (!zvfs_fdreg_has(fd) || zvfs_log_release_fd(fd))
		return;
	if (!atomic_load(&g_fs))
		return;
	ZVFS_DEBUG("fd %d belongs to the engine and is being replaced: unmounting first", fd);
	zp_core_shutdown(true);
}

void zp_engine_shutdown(void)
{
	zp_core_shutdown(true);
}

void zp_engine_forget_after_fork(void)
{
	struct zvfs_fs *fs = atomic_load(&g_fs);

	pthread_mutex_init(&g_engine_lock, NULL);
	zp_core_fdtable_after_fork();
	if (zp_remote()) {
		/*
		 * The parent's connection and rings are the parent's: a new one is
		 * made on first use, and every inherited descriptor gets a handle
		 * of its own then (stale now, revived by zp_fd_get()).
		 */
		zp_remote_after_fork_child();
		atomic_fetch_add(&zp_engine_gen, 1);
		zp_aio_after_fork();
		return;
	}
	if (fs) {
		atomic_store(&g_fs, NULL);
		atomic_fetch_add(&zp_engine_gen, 1);
		ZP_ENTER();
		zvfs_fs_forget(fs);
		ZP_LEAVE();
		/* The parent still holds the store: inherited ZVFS fds are dead here. */
		atomic_store(&g_revive_ok, false);
	}
	g_exit_hook_armed = false;
	zp_aio_after_fork();
}

/*
 * Threads of this process that run user code: /proc/self/task minus the
 * kernel's io_uring workers ("iou-wrk-N", "iou-sqp-N"), which appear there
 * too but never touch our handles.  0 if unknown.
 */
static long thread_count(void)
{
	char buf[2048];
	long count = 0;
	int dfd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return 0;
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			char comm[32] = "";
			int cfd;

			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9')
				continue;
			cfd = (int)syscall(SYS_openat, dfd, d->d_name, O_RDONLY | O_DIRECTORY);
			if (cfd >= 0) {
				int c = (int)syscall(SYS_openat, cfd, "comm", O_RDONLY);

				if (c >= 0) {
					syscall(SYS_read, c, comm, sizeof(comm) - 1);
					syscall(SYS_close, c);
				}
				syscall(SYS_close, cfd);
			}
			if (strncmp(comm, "iou-", 4) != 0)
				count++;
		}
	}
	syscall(SYS_close, dfd);
	return count;
}

/*
 * Daemon mode, before a child is made: every description may now be used by
 * two processes, so its offset goes to the kernel and stays there.
 */
static void share_all_locked(void)
{
	int limit = zp_fd_limit();

	for (int fd = 0; fd < limit; fd++) {
		struct zp_ofd *ofd = zp_core_fd_peek(fd);

		if (!ofd)
			continue;
		pthread_mutex_lock(&ofd->pos_lock);
		if (!ofd->shared && !zp_ofd_stale(ofd)) {
			ZP_REAL(lseek)(fd, (off_t)ofd->pos, SEEK_SET);
			ofd->shared = true;
		}
		pthread_mutex_unlock(&ofd->pos_lock);
		if (!zp_ofd_stale(ofd))
			zp_placeholder_sync(fd, ofd);
		zp_ofd_put(ofd);
	}
}

/* An open ZVFS file has lost its last name: its blob dies with the mount. */
static bool unlinked_file_open(void)
{
	int limit = zp_fd_limit();

	for (int fd = 0; fd < limit; fd++) {
		struct zp_ofd *ofd = zp_core_fd_peek(fd);
		struct stat st;
		bool dead = false;

		if (!ofd)
			continue;
		if (!zp_ofd_stale(ofd) && ZP_REAL(fstat)(fd, &st) == 0 && st.st_nlink == 0)
			dead = true;
		zp_ofd_put(ofd);
		if (dead)
			return true;
	}
	return false;
}

/*
 * Before a child is made (fork, _Fork, posix_spawn, system, popen): the
 * child can only use the store if this process lets it go.  With no ZVFS fd
 * open that is free.  With some open it is still done when this process has
 * one thread (nothing can be using a handle) and no open file is unlinked
 * (its blob would be deleted): offsets and sizes go to the kernel, the store
 * is unmounted, and whichever process touches an inherited fd first mounts
 * again and continues at the kernel's offset -- so `{ echo a; cmd; echo b; }
 * > /zvfs/f` in a shell works.  Otherwise the parent keeps the store and the
 * child's inherited ZVFS fds fail with EIO.  Returns with g_engine_lock held.
 */
static void prepare_locked(void)
{
	ZP_ENTER();
	pthread_mutex_lock(&g_engine_lock);
	if (zp_remote()) {
		share_all_locked();
	} else if (atomic_load(&g_fs)) {
		sync_fds_to_kernel();
		if (zp_fd_count() == 0) {
			unmount_locked();
		} else if (thread_count() == 1 && !unlinked_file_open()) {
			unmount_locked();
			atomic_store(&g_revive_ok, true);
		}
	}
	ZP_LEAVE();
}

void zp_core_prepare_children(void)
{
	zp_stdio_flush_all();
	prepare_locked();
	pthread_mutex_unlock(&g_engine_lock);
}

void zp_core_after_exec_failed(void)
{
	/* The store was given up for the new program; take the fds back now. */
	zp_core_revive_all();
}

/* ---- 5. zp_file_lookup -------------------------------------------------------------- */

int zp_file_lookup(int fd, int dirfd, const char *path, bool follow, const struct stat *st,
		   struct zp_file **filep)
{
	char xattr[ZVFS_FS_XATTR_MAX + 1];
	char procpath[PATH_MAX + 64];
	ssize_t xlen;
	int r;

	if (!S_ISREG(st->st_mode))
		return 0;
	if (fd >= 0) {
		xlen = fgetxattr(fd, ZVFS_FS_XATTR, xattr, sizeof(xattr));
	} else {
		const char *p = path;

		if (path[0] != '/' && dirfd != AT_FDCWD) {
			/* No getxattrat(): name the file through its directory's fd. */
			if (snprintf(procpath, sizeof(procpath), "/proc/self/fd/%d/%s", dirfd,
				     path) >= (int)sizeof(procpath))
				return -ENAMETOOLONG;
			p = procpath;
		}
		xlen = follow ? getxattr(p, ZVFS_FS_XATTR, xattr, sizeof(xattr))
			      : lgetxattr(p, ZVFS_FS_XATTR, xattr, sizeof(xattr));
	}
	if (xlen < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			return 0;
		if (errno == ERANGE)
			return -EUCLEAN;
		return -errno;
	}
	zp_backend_pick();
	ZP_ENTER();
	r = zp_be->open(fd, dirfd, path, follow, st, xattr, (size_t)xlen, filep);
	ZP_LEAVE();
	return r < 0 ? r : 1;
}

/* ---- 6. load, unload, fork -------------------------------------------------------- */

static void atfork_prepare(void)
{
	if (!zp_cfg.enabled)
		return;
	zp_stdio_flush_all();
	prepare_locked();
}

static void atfork_parent(void)
{
	if (!zp_cfg.enabled)
		return;
	pthread_mutex_unlock(&g_engine_lock);
}

static void atfork_child(void)
{
	if (!zp_cfg.enabled)
		return;
	zp_engine_forget_after_fork();
}

/* Call fn(fd) for every open fd, via /proc/self/fd (raw syscalls: no wrappers). */
static void for_each_open_fd(void (*fn)(int fd))
{
	char buf[4096];
	int dfd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0) {
		struct rlimit rl;
		int limit = 1024;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)limit)
			limit = (int)rl.rlim_cur;
		for (int fd = 0; fd < limit; fd++)
			if (syscall(SYS_fcntl, fd, F_GETFD) >= 0)
				fn(fd);
		return;
	}
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			char *end;
			long fd = strtol(d->d_name, &end, 10);

			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9' || *end || fd == dfd)
				continue;
			fn((int)fd);
		}
	}
	syscall(SYS_close, dfd);
}

static void recognize_at_load(int fd)
{
	if (zp_core_fd_mark(fd) == 1 && fd <= 2)
		zp_stdio_fd_changed(fd);
}

__attribute__((constructor)) static void zp_load(void)
{
	zp_resolve();
	ZP_ENTER();
	/* The log reads ZVFS_LOG* now, before a program can overwrite its environment. */
	(void)zvfs_log_get_level();
	read_config();
	ZP_LEAVE();
	if (!zp_cfg.enabled) {
		atomic_store_explicit(&zp_ready, true, memory_order_release);
		return;
	}
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	atomic_store_explicit(&zp_ready, true, memory_order_release);
	for_each_open_fd(recognize_at_load);
}

__attribute__((destructor)) static void zp_unload(void)
{
	if (!zp_cfg.enabled)
		return;
	atomic_store(&g_exiting, true);
	zp_core_shutdown(true);
}
