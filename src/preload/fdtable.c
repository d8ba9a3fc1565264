/* SPDX-License-Identifier: MIT */
/*
 * fdtable.c - fd -> struct zp_ofd, lock-free for readers.
 *
 * Map of this file:
 *   1. ofd memory: type-stable (never freed, recycled through a free list), so
 *      a reader that loaded a pointer a moment before it was closed can
 *      still touch its refcount safely
 *   2. the table: one atomic pointer per fd, mmap'ed once at the RLIMIT_NOFILE
 *      hard limit (untouched pages cost nothing)
 *   3. zp_fd_get() with the revival of stale descriptors
 *   4. zp_fd_recognize(), zp_placeholder_sync()
 */
#include "preload/preload.h"

#include <linux/kcmp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>

/* Shared with core.c (not in preload.h, which is not mine). */
bool zp_core_revive_allowed(void);
void zp_core_revive_all(void);
struct zp_ofd *zp_core_fd_peek(int fd);
int zp_core_fd_mark(int fd);
void zp_core_fdtable_after_fork(void);

/* Never equal to zp_engine_gen (it would take 2^32 mounts): always stale. */
#define DEAD_GEN UINT_MAX

/* ---- 1. ofd memory ------------------------------------------------------------------ */

#define OFD_CHUNK 64

static pthread_mutex_t g_free_lock = PTHREAD_MUTEX_INITIALIZER;
/* Serializes revive() (section 3). */
static pthread_mutex_t g_revive_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zp_ofd *g_free; /* linked through ->file while free */

static struct zp_ofd *ofd_alloc(void)
{
	struct zp_ofd *ofd;

	pthread_mutex_lock(&g_free_lock);
	if (!g_free) {
		struct zp_ofd *chunk =
			ZP_REAL(mmap)(NULL, OFD_CHUNK * sizeof(*chunk), PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (chunk == MAP_FAILED) {
			pthread_mutex_unlock(&g_free_lock);
			return NULL;
		}
		for (int i = 0; i < OFD_CHUNK; i++) {
			chunk[i].file = (struct zp_file *)g_free;
			g_free = &chunk[i];
		}
	}
	ofd = g_free;
	g_free = (struct zp_ofd *)ofd->file;
	pthread_mutex_unlock(&g_free_lock);
	return ofd;
}

static void ofd_free(struct zp_ofd *ofd)
{
	pthread_mutex_lock(&g_free_lock);
	ofd->file = (struct zp_file *)g_free;
	g_free = ofd;
	pthread_mutex_unlock(&g_free_lock);
}

struct zp_ofd *zp_ofd_new(struct zp_file *file, int flags, uint64_t pos,
			  const struct zvfs_fs_ino *ino)
{
	struct zp_ofd *ofd = ofd_alloc();

	if (!ofd)
		return NULL;
	/* refs is 0 here, and nobody can raise a zero count (ofd_tryget()). */
	ofd->file = file;
	ofd->gen = atomic_load(&zp_engine_gen);
	pthread_mutex_init(&ofd->pos_lock, NULL);
	ofd->pos = pos;
	atomic_store(&ofd->flags, flags);
	atomic_store(&ofd->size_dirty, false);
	ofd->ino = *ino;
	ofd->shared = false;
	atomic_store(&ofd->kfd, -1);
	atomic_store_explicit(&ofd->refs, 1, memory_order_release);
	return ofd;
}

void zp_ofd_get(struct zp_ofd *ofd)
{
	atomic_fetch_add_explicit(&ofd->refs, 1, memory_order_relaxed);
}

/* A reference unless the count already reached zero (the ofd is being recycled). */
static bool ofd_tryget(struct zp_ofd *ofd)
{
	int n = atomic_load_explicit(&ofd->refs, memory_order_relaxed);

	while (n > 0) {
		if (atomic_compare_exchange_weak_explicit(
			    &ofd->refs, &n, n + 1, memory_order_acquire, memory_order_relaxed))
			return true;
	}
	return false;
}

void zp_ofd_put(struct zp_ofd *ofd)
{
	if (atomic_fetch_sub_explicit(&ofd->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* A stale ofd's handle went away with its mount or connection (or fork). */
	if (!zp_ofd_stale(ofd)) {
		ZP_ENTER();
		int r = zp_file_close(ofd->file);

		ZP_LEAVE();
		if (r < 0)
			ZVFS_WARN("close of a ZVFS file: %s", strerror(-r));
	} else if (ofd->file) {
		ZP_ENTER();
		zp_be->forget(ofd->file);
		ZP_LEAVE();
	}
	pthread_mutex_destroy(&ofd->pos_lock);
	ofd_free(ofd);
}

/* ---- 2. the table ------------------------------------------------------------------- */

/* The slot array, published once (the pointer itself is atomic: table_init may race a lookup). */
static _Atomic(_Atomic(struct zp_ofd *) *) g_slots;
static int g_nslots;
static atomic_int g_limit;
static atomic_int g_count;
static pthread_once_t g_table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	struct rlimit rl;
	rlim_t n = 1u << 20;
	void *p;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
		n = rl.rlim_max;
	if (n > (1u << 24))
		n = 1u << 24;
	if (n < 1024)
		n = 1024;
	p = ZP_REAL(mmap)(NULL, (size_t)n * sizeof(_Atomic(struct zp_ofd *)),
			  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			  0);
	if (p == MAP_FAILED) {
		ZVFS_ERR("cannot map the fd table (%lu slots): %s", (unsigned long)n,
			 strerror(errno));
		return;
	}
	g_nslots = (int)n;
	atomic_store_explicit(&g_slots, p, memory_order_release);
}

static _Atomic(struct zp_ofd *) *slot(int fd)
{
	_Atomic(struct zp_ofd *) *s = atomic_load_explicit(&g_slots, memory_order_acquire);

	if (!s || fd < 0 || fd >= g_nslots)
		return NULL;
	return &s[fd];
}

void zp_fd_set(int fd, struct zp_ofd *ofd)
{
	_Atomic(struct zp_ofd *) *s;
	struct zp_ofd *old;
	int lim;

	pthread_once(&g_table_once, table_init);
	s = slot(fd);
	if (!s) {
		ZVFS_ERR("fd %d is beyond the fd table (%d slots); not tracked", fd, g_nslots);
		return;
	}
	zp_ofd_get(ofd);
	if (atomic_load_explicit(&ofd->kfd, memory_order_relaxed) < 0)
		atomic_store_explicit(&ofd->kfd, fd, memory_order_relaxed);
	old = atomic_exchange_explicit(s, ofd, memory_order_acq_rel);
	if (old)
		zp_ofd_put(old);
	else
		atomic_fetch_add(&g_count, 1);
	lim = atomic_load(&g_limit);
	while (lim < fd + 1 && !atomic_compare_exchange_weak(&g_limit, &lim, fd + 1))
		;
}

void zp_fd_clear(int fd)
{
	_Atomic(struct zp_ofd *) *s = slot(fd);
	struct zp_ofd *old;

	if (!s || !atomic_load_explicit(s, memory_order_relaxed))
		return;
	old = atomic_exchange_explicit(s, NULL, memory_order_acq_rel);
	if (old) {
		int k = fd;

		/* Another fd of the description takes over (zp_ofd_kfd() finds it). */
		atomic_compare_exchange_strong(&old->kfd, &k, -1);
		atomic_fetch_sub(&g_count, 1);
		zp_ofd_put(old);
	}
}

int zp_fd_limit(void)
{
	return atomic_load(&g_limit);
}

int zp_fd_count(void)
{
	return atomic_load(&g_count);
}

/* ---- 3. lookup and revival ---------------------------------------------------------- */

static struct zp_ofd *fd_get_raw(int fd)
{
	_Atomic(struct zp_ofd *) *s = slot(fd);

	if (!s)
		return NULL;
	for (;;) {
		struct zp_ofd *ofd = atomic_load_explicit(s, memory_order_acquire);

		if (!ofd)
			return NULL;
		if (!ofd_tryget(ofd))
			continue; /* closed meanwhile; look again */
		if (atomic_load_explicit(s, memory_order_acquire) == ofd)
			return ofd;
		zp_ofd_put(ofd); /* recycled for another fd meanwhile */
	}
}

/* In a fork child: another thread may have held these at the fork. */
void zp_core_fdtable_after_fork(void)
{
	pthread_mutex_init(&g_free_lock, NULL);
	pthread_mutex_init(&g_revive_lock, NULL);
}

/* zp_fd_get() without revival: for walks made under the engine lock. */
struct zp_ofd *zp_core_fd_peek(int fd)
{
	return fd_get_raw(fd);
}

/*
 * fd's ofd is from a mount that is gone.  Open its file again at the
 * kernel's offset (which the unmount left there) and put the new ofd in
 * every slot that shared the old one, so dup'ed fds still share an offset.
 */
static int recognize(int fd, bool shared);

static void revive(int fd, struct zp_ofd *old)
{
	int limit = zp_fd_limit();
	struct zp_ofd *nofd;
	int r;

	pthread_mutex_lock(&g_revive_lock);
	if (atomic_load(slot(fd)) != old) {
		pthread_mutex_unlock(&g_revive_lock);
		return; /* someone else did it */
	}
	if (zp_remote() && !old->shared && old->gen != DEAD_GEN) {
		/*
		 * The daemon went away under a description only this process uses:
		 * its offset is the cached one, which the new ofd starts from.
		 */
		pthread_mutex_lock(&old->pos_lock);
		ZP_REAL(lseek)(fd, (off_t)old->pos, SEEK_SET);
		pthread_mutex_unlock(&old->pos_lock);
	}
	r = recognize(fd, old->shared);
	if (r <= 0) {
		static atomic_bool told;

		pthread_mutex_unlock(&g_revive_lock);
		/* Mount failures are logged by core.c; say once what it means for fds. */
		if (r < 0 && !atomic_exchange(&told, true))
			ZVFS_ERR("fd %d: cannot reopen its ZVFS file (%s); calls on it fail with "
				 "EIO",
				 fd, strerror(-r));
		return;
	}
	nofd = fd_get_raw(fd);
	if (nofd) {
		for (int i = 0; i < limit; i++) {
			_Atomic(struct zp_ofd *) *s = slot(i);

			if (i != fd && s && atomic_load(s) == old)
				zp_fd_set(i, nofd);
		}
		zp_ofd_put(nofd);
	}
	pthread_mutex_unlock(&g_revive_lock);
}

void zp_core_revive_all(void)
{
	int limit = zp_fd_limit();

	if (!zp_core_revive_allowed())
		return; /* a fork child whose parent holds the store */

	for (int fd = 0; fd < limit; fd++) {
		struct zp_ofd *ofd = fd_get_raw(fd);

		if (!ofd)
			continue;
		if (zp_ofd_stale(ofd))
			revive(fd, ofd);
		zp_ofd_put(ofd);
	}
}

struct zp_ofd *zp_fd_get(int fd)
{
	struct zp_ofd *ofd = fd_get_raw(fd);
	static atomic_bool told;

	if (__builtin_expect(ofd == NULL, 1) || __builtin_expect(!zp_ofd_stale(ofd), 1))
		return ofd;
	if (!zp_core_revive_allowed()) {
		if (!atomic_exchange(&told, true))
			ZVFS_ERR("fd %d: direct mode cannot share an open ZVFS file with a forked "
				 "child (the parent holds the store); calls on it fail with EIO",
				 fd);
		return ofd;
	}
	revive(fd, ofd);
	zp_ofd_put(ofd);
	/* The new ofd, or the stale one again if the store could not be mounted. */
	return fd_get_raw(fd);
}

/* ---- 4. recognition, placeholder size ----------------------------------------------- */

#define OFD_FLAGS (O_ACCMODE | O_APPEND | O_DIRECT | O_SYNC | O_DSYNC | O_NONBLOCK)

/*
 * A live ofd of another fd that shares fd's kernel open file description
 * (dup'ed before exec, or inherited as 1 and 3 by `cmd >&3`), with a
 * reference; NULL if none.  Such fds must share one offset here too.
 */
static struct zp_ofd *same_description(int fd, const struct stat *st, bool any)
{
	int limit = zp_fd_limit();
	pid_t pid = getpid();

	for (int i = 0; i < limit; i++) {
		struct zp_ofd *ofd;

		if (i == fd)
			continue;
		ofd = fd_get_raw(i);
		if (!ofd)
			continue;
		if ((any || !zp_ofd_stale(ofd)) && ofd->ino.dev == (uint64_t)st->st_dev &&
		    ofd->ino.ino == (uint64_t)st->st_ino &&
		    syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd, i) == 0)
			return ofd;
		zp_ofd_put(ofd);
	}
	return NULL;
}

static void install_dead(int fd, int flags, const struct stat *st)
{
	struct zvfs_fs_ino ino = {.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino};
	off_t pos = ZP_REAL(lseek)(fd, 0, SEEK_CUR);
	struct zp_ofd *ofd = zp_ofd_new(NULL, flags, pos < 0 ? 0 : (uint64_t)pos, &ino);

	if (!ofd)
		return;
	ofd->gen = DEAD_GEN;
	/* Daemon mode: inherited, so perhaps used by another process too. */
	ofd->shared = zp_remote();
	zp_fd_set(fd, ofd);
	zp_ofd_put(ofd);
}

int zp_fd_recognize(int fd)
{
	/* Daemon mode: a description this process did not open may be another's too. */
	return recognize(fd, zp_remote());
}

static int recognize(int fd, bool shared)
{
	struct zp_file *file;
	struct zvfs_fs_ino ino;
	struct zp_ofd *ofd;
	struct stat st;
	off_t pos;
	int flags;
	int r;

	if (ZP_REAL(fstat)(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	flags = ZP_REAL(fcntl)(fd, F_GETFL);
	if (flags < 0 || (flags & O_PATH))
		return flags < 0 ? -errno : 0;
	r = zp_file_lookup(fd, AT_FDCWD, NULL, true, &st, &file);
	if (r == 0)
		return 0;
	if (r < 0) {
		/*
		 * A ZVFS file we cannot open now (store busy, stale xattr): a dead
		 * ofd makes calls on fd fail with EIO (or revive it later) instead
		 * of reaching the placeholder's data.
		 */
		_Atomic(struct zp_ofd *) *s = slot(fd);

		if (!s || !atomic_load(s))
			install_dead(fd, flags & OFD_FLAGS, &st);
		return r;
	}
	ofd = same_description(fd, &st, false);
	if (ofd) {
		ZP_ENTER();
		zp_file_close(file); /* the shared ofd holds its own handle */
		ZP_LEAVE();
		zp_fd_set(fd, ofd);
		zp_ofd_put(ofd);
		return 1;
	}
	pos = ZP_REAL(lseek)(fd, 0, SEEK_CUR);
	if (pos < 0)
		pos = 0;
	ino.dev = (uint64_t)st.st_dev;
	ino.ino = (uint64_t)st.st_ino;
	ofd = zp_ofd_new(file, flags & OFD_FLAGS, (uint64_t)pos, &ino);
	if (!ofd) {
		ZP_ENTER();
		zp_file_close(file);
		ZP_LEAVE();
		return -ENOMEM;
	}
	ofd->shared = shared;
	zp_fd_set(fd, ofd);
	zp_ofd_put(ofd);
	return 1;
}

/*
 * At load: mark an inherited ZVFS fd without mounting (a dead ofd, revived
 * by its first use), so a program that never touches it neither takes the
 * store from its parent nor opens fds of its own before main().
 */
int zp_core_fd_mark(int fd)
{
	char xattr[ZVFS_FS_XATTR_MAX + 1];
	struct zp_ofd *ofd;
	struct stat st;
	int flags;

	if (ZP_REAL(fstat)(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	flags = ZP_REAL(fcntl)(fd, F_GETFL);
	if (flags < 0 || (flags & O_PATH))
		return 0;
	if (fgetxattr(fd, ZVFS_FS_XATTR, xattr, sizeof(xattr)) < 0 && errno != ERANGE)
		return 0;
	ofd = same_description(fd, &st, true);
	if (ofd) {
		zp_fd_set(fd, ofd);
		zp_ofd_put(ofd);
	} else {
		install_dead(fd, flags & OFD_FLAGS, &st);
	}
	return 1;
}

/*
 * Does the placeholder show size already, with an mtime less than ZP_PH_MTIME_LAG_NS old?
 * Read from the placeholder itself, so another description's or process's update counts.
 */
static bool placeholder_recent(int fd, int64_t size)
{
	struct timespec now;
	struct stat st;
	int64_t age;

	if (ZP_REAL(fstat)(fd, &st) < 0 || st.st_size != size)
		return false;
	clock_gettime(CLOCK_REALTIME_COARSE, &now);
	age = (int64_t)(now.tv_sec - st.st_mtim.tv_sec) * 1000000000 +
	      (now.tv_nsec - st.st_mtim.tv_nsec);
	return age >= -(int64_t)ZP_PH_MTIME_LAG_NS && age < (int64_t)ZP_PH_MTIME_LAG_NS;
}

static int placeholder_sync(int fd, struct zp_ofd *ofd, bool lazy)
{
	int64_t size;

	if (zp_ofd_stale(ofd) || !atomic_load(&ofd->size_dirty))
		return 0;
	if ((atomic_load(&ofd->flags) & O_ACCMODE) == O_RDONLY)
		return 0;
	atomic_store(&ofd->size_dirty, false);
	ZP_ENTER();
	size = zp_file_size(ofd->file);
	ZP_LEAVE();
	if (size < 0) {
		atomic_store(&ofd->size_dirty, true);
		return (int)size;
	}
	/*
	 * Any inode update on the host (this ftruncate moves the mtime even at the same size)
	 * made the next fdatasync of the store image commit the host's metadata: 4 KiB
	 * O_DIRECT overwrite + fdatasync went from 10.9k/s to 7.2k/s.  A database syncing its
	 * log thousands of times a second gets its mtime moved at most once per lag instead;
	 * close, exec and fork still update it at once.
	 */
	if (lazy && placeholder_recent(fd, size)) {
		atomic_store(&ofd->size_dirty, true);
		return 0;
	}
	/* Also moves mtime, as the writes would have on a Linux file. */
	if (ZP_REAL(ftruncate)(fd, (off_t)size) < 0) {
		int e = errno;

		atomic_store(&ofd->size_dirty, true);
		return -e;
	}
	return 0;
}

int zp_placeholder_sync(int fd, struct zp_ofd *ofd)
{
	return placeholder_sync(fd, ofd, false);
}

int zp_placeholder_sync_lazy(int fd, struct zp_ofd *ofd)
{
	return placeholder_sync(fd, ofd, true);
}

/* ---- 5. offsets of shared descriptions ------------------------------------------------- */

int zp_ofd_kfd(struct zp_ofd *ofd)
{
	int k = atomic_load_explicit(&ofd->kfd, memory_order_relaxed);
	int limit;

	if (k >= 0) {
		_Atomic(struct zp_ofd *) *s = slot(k);

		if (s && atomic_load_explicit(s, memory_order_acquire) == ofd)
			return k;
	}
	/* The fd it was known by is closed: find another in the table. */
	limit = zp_fd_limit();
	for (int fd = 0; fd < limit; fd++) {
		_Atomic(struct zp_ofd *) *s = slot(fd);

		if (s && atomic_load_explicit(s, memory_order_acquire) == ofd) {
			atomic_store_explicit(&ofd->kfd, fd, memory_order_relaxed);
			return fd;
		}
	}
	return -1;
}

int64_t zp_ofd_pos_load(struct zp_ofd *ofd)
{
	int k;
	off_t p;

	if (__builtin_expect(!ofd->shared, 1))
		return (int64_t)ofd->pos;
	k = zp_ofd_kfd(ofd);
	if (k < 0)
		return (int64_t)ofd->pos;
	p = ZP_REAL(lseek)(k, 0, SEEK_CUR);
	if (p < 0)
		return -errno;
	ofd->pos = (uint64_t)p;
	return p;
}

void zp_ofd_pos_store(struct zp_ofd *ofd, uint64_t pos)
{
	int k;

	ofd->pos = pos;
	if (__builtin_expect(!ofd->shared, 1))
		return;
	k = zp_ofd_kfd(ofd);
	if (k >= 0)
		(void)ZP_REAL(lseek)(k, (off_t)pos, SEEK_SET);
}

int64_t zp_ofd_pos_reserve(struct zp_ofd *ofd, uint64_t n)
{
	int k = zp_ofd_kfd(ofd);
	off_t e;

	if (k < 0)
		return (int64_t)ofd->pos;
	e = ZP_REAL(lseek)(k, (off_t)n, SEEK_CUR);
	if (e < 0)
		return -errno;
	ofd->pos = (uint64_t)e;
	return (int64_t)e - (int64_t)n;
}

void zp_ofd_pos_unreserve(struct zp_ofd *ofd, uint64_t n)
{
	int k = zp_ofd_kfd(ofd);

	if (n == 0 || k < 0)
		return;
	/* Not atomic with the reservation: another process may have moved on meanwhile. */
	(void)ZP_REAL(lseek)(k, -(off_t)n, SEEK_CUR);
}

/* ---- 6. other processes' opens ---------------------------------------------------------- */

void zp_settle_unlinked(int fd, struct zp_ofd *ofd)
{
	int saved = errno;
	struct stat st;
	int e;

	if (zp_remote() || zp_ofd_stale(ofd) || ZP_REAL(fstat)(fd, &st) != 0 || st.st_nlink != 0)
		return;
	e = zp_open_elsewhere(fd);
	if (e >= 0) {
		ZP_ENTER();
		zp_local_set_unlinked(ofd->file, e == 0);
		ZP_LEAVE();
	}
	errno = saved;
}

int zp_open_elsewhere(int fd)
{
	/*
	 * The kernel grants a write lease only when fd's open is the file's only
	 * one (it compares the inode's reader and writer counts with fd's own),
	 * which no other call tells a process.  Granted, it is dropped at once.
	 */
	if (syscall(SYS_fcntl, fd, F_SETLEASE, F_WRLCK) == 0) {
		syscall(SYS_fcntl, fd, F_SETLEASE, F_UNLCK);
		return 0;
	}
	return errno == EAGAIN ? 1 : -errno;
}
