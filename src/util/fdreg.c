/* SPDX-License-Identifier: MIT */
#include "util/fdreg.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One bit per descriptor number; static, so usable before anything is set up. */
static _Atomic uint64_t g_bits[ZVFS_FDREG_MAX / 64];

void zvfs_fdreg_add(int fd)
{
	if (fd >= 0 && fd < ZVFS_FDREG_MAX)
		atomic_fetch_or(&g_bits[fd / 64], 1ull << (fd % 64));
}

void zvfs_fdreg_del(int fd)
{
	if (fd >= 0 && fd < ZVFS_FDREG_MAX)
		atomic_fetch_and(&g_bits[fd / 64], ~(1ull << (fd % 64)));
}

bool zvfs_fdreg_has(int fd)
{
	if (fd < 0 || fd >= ZVFS_FDREG_MAX)
		return false;
	return atomic_load_explicit(&g_bits[fd / 64], memory_order_relaxed) & (1ull << (fd % 64));
}

int zvfs_fdreg_next(int fd)
{
	if (fd < 0)
		fd = 0;
	while (fd < ZVFS_FDREG_MAX) {
		uint64_t w =
			atomic_load_explicit(&g_bits[fd / 64], memory_order_relaxed) >> (fd % 64);

		if (w)
			return fd + __builtin_ctzll(w);
		fd = (fd / 64 + 1) * 64;
	}
	return -1;
}

int zvfs_fd_move_high(int fd)
{
	/* Raw system calls: inside libzvfs.so, fcntl and close are the library's wrappers. */
	int f = fd >= ZVFS_FD_HIGH ? -1
				   : (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, ZVFS_FD_HIGH);

	if (f < 0)
		return fd;
	syscall(SYS_close, fd);
	return f;
}
