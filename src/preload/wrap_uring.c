/* SPDX-License-Identifier: MIT */
/*
 * wrap_uring.c - liburing's ring setup, refused.
 *
 * io_uring submissions reach the kernel through shared memory, never through
 * a libc call, so ZVFS cannot see them: a program that read or wrote a ZVFS
 * file through io_uring would act on the placeholder (reads of zeroes, writes
 * lost to ZVFS).  Programs that can use io_uring almost always fall back when
 * the ring cannot be set up (MariaDB's InnoDB goes to libaio or its simulated
 * AIO, both of which ZVFS serves; RocksDB to synchronous reads), so while
 * ZVFS is enabled io_uring_queue_init*() fails with ENOSYS, as on a kernel
 * without io_uring.  ZVFS_URING=1 lets rings be made (for programs that use
 * io_uring only on non-ZVFS files).  The engine's own rings (direct mode's
 * io_uring device backend) are made with the internal-call guard up, so they
 * pass straight through.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "preload/preload.h"

struct io_uring;
struct io_uring_params;

int io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags);
int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p);

static bool refused(const char *call)
{
	static atomic_bool told;
	const char *v;

	if (zp_bypass())
		return false;
	v = getenv("ZVFS_URING");
	if (v && strcmp(v, "1") == 0)
		return false;
	if (!atomic_exchange(&told, true)) {
		ZP_ENTER();
		ZVFS_INFO("%s: io_uring refused (ENOSYS): ZVFS cannot see io_uring I/O; the "
			  "program falls back to calls ZVFS serves (ZVFS_URING=1 allows rings)",
			  call);
		ZP_LEAVE();
	}
	return true;
}

ZP_EXPORT int io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	int (*real)(unsigned, struct io_uring *, unsigned);

	if (refused("io_uring_queue_init"))
		return -ENOSYS;
	*(void **)&real = dlsym(RTLD_NEXT, "io_uring_queue_init");
	return real ? real(entries, ring, flags) : -ENOSYS;
}

ZP_EXPORT int io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
					 struct io_uring_params *p)
{
	int (*real)(unsigned, struct io_uring *, struct io_uring_params *);

	if (refused("io_uring_queue_init_params"))
		return -ENOSYS;
	*(void **)&real = dlsym(RTLD_NEXT, "io_uring_queue_init_params");
	return real ? real(entries, ring, p) : -ENOSYS;
}
