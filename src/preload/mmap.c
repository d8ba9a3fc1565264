/* SPDX-License-Identifier: MIT */
/*
 * mmap.c - memory maps of ZVFS files.
 *
 * A ZVFS file's bytes live in the blobstore, not in the placeholder, so the
 * kernel cannot map them.  A private map (MAP_PRIVATE) is emulated: an
 * anonymous private map of the same length is filled by pread and then given
 * the requested protection.  Its writes never reach the file, exactly as for
 * a private file map; unlike one, it is a snapshot taken at mmap time (POSIX
 * leaves unspecified whether later file changes show through).  A shared map
 * would need writes through memory to reach the file, which cannot be done
 * here without faulting every page, so it is refused with ENODEV and a log
 * line rather than half-done.
 *
 * munmap and msync need nothing: an emulated map is plain anonymous memory.
 */
/*
 * The build sets _FILE_OFFSET_BITS=64, under which <sys/mman.h> renames mmap
 * to mmap64; this file defines both names, so it needs the plain ones (off_t
 * is 64 bits either way on the 64-bit targets ZVFS supports).
 */
#undef _FILE_OFFSET_BITS

#include <string.h>
#include <sys/mman.h>

#include "preload/preload.h"

/* Refusals logged in full before going quiet (a program may retry in a loop). */
#define MAP_REFUSALS_LOGGED 8

static atomic_int map_refusals;

static void log_shared_refusal(int fd)
{
	int n = atomic_fetch_add(&map_refusals, 1);
	char path[PATH_MAX];

	if (n >= MAP_REFUSALS_LOGGED)
		return;
	ZP_ENTER();
	if (zp_fd_path(fd, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "fd %d", fd);
	ZVFS_WARN("mmap: %s: shared maps of ZVFS files are not supported (ENODEV); "
		  "configure the program not to map the file (SQLite: PRAGMA mmap_size=0; "
		  "MariaDB: innodb_log_file_mmap=OFF)%s",
		  path, n + 1 == MAP_REFUSALS_LOGGED ? "; further refusals not logged" : "");
	ZP_LEAVE();
}

/*
 * Fill [p, p + len) from the file at off.  The map is already zeroed, so
 * stopping at end of file leaves the tail zero, as a file map shows it.
 */
static int fill_from_file(int fd, char *p, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread64(fd, p + done, len - done, off + (off_t)done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return 0;
}

/* Flags of a file map that keep their meaning on the anonymous map replacing it. */
#define KEPT_FLAGS                                                                                 \
	(MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_32BIT | MAP_NORESERVE | MAP_LOCKED | MAP_POPULATE | \
	 MAP_STACK | MAP_NONBLOCK)

static void *map_private(struct zp_ofd *ofd, void *addr, size_t len, int prot, int flags, int fd,
			 off_t off)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p;
	int r;

	/* The checks the kernel makes before mapping a file, in its order. */
	if (len == 0 || off < 0 || (off & (page - 1)) != 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	if ((atomic_load(&ofd->flags) & O_ACCMODE) == O_WRONLY) {
		errno = EACCES;
		return MAP_FAILED;
	}
	p = ZP_REAL(mmap)(addr, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | (flags & KEPT_FLAGS), -1, 0);
	if (p == MAP_FAILED)
		return MAP_FAILED;
	r = fill_from_file(fd, p, len, off);
	if (r == 0 && prot != (PROT_READ | PROT_WRITE) && mprotect(p, len, prot) != 0)
		r = -errno;
	if (r < 0) {
		ZP_REAL(munmap)(p, len);
		errno = -r;
		return MAP_FAILED;
	}
	return p;
}

static void *map(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct zp_ofd *ofd;
	void *p;

	if ((flags & MAP_ANONYMOUS) || fd < 0)
		return ZP_REAL(mmap)(addr, len, prot, flags, fd, off);
	ofd = zp_fd_get(fd);
	if (ofd == NULL)
		return ZP_REAL(mmap)(addr, len, prot, flags, fd, off);
	switch (flags & MAP_TYPE) {
	case MAP_PRIVATE:
		p = map_private(ofd, addr, len, prot, flags, fd, off);
		break;
	case MAP_SHARED:
	case MAP_SHARED_VALIDATE:
		log_shared_refusal(fd);
		errno = ENODEV;
		p = MAP_FAILED;
		break;
	default:
		errno = EINVAL;
		p = MAP_FAILED;
		break;
	}
	zp_ofd_put(ofd);
	return p;
}

ZP_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (zp_bypass())
		return ZP_REAL(mmap)(addr, len, prot, flags, fd, off);
	return map(addr, len, prot, flags, fd, off);
}

ZP_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (zp_bypass())
		return ZP_REAL(mmap64)(addr, len, prot, flags, fd, off);
	return map(addr, len, prot, flags, fd, off);
}

ZP_EXPORT int munmap(void *addr, size_t len)
{
	return ZP_REAL(munmap)(addr, len);
}

ZP_EXPORT int msync(void *addr, size_t len, int flags)
{
	return ZP_REAL(msync)(addr, len, flags);
}
