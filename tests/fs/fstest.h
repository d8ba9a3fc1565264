/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the file-layer tests (tests/fs/test_*.c), on top of
 * tests/bdev/testlib.h (reporting with t_begin/EXPECT/t_end, data patterns).
 */
#ifndef ZVFS_TESTS_FS_FSTEST_H
#define ZVFS_TESTS_FS_FSTEST_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bdev/testlib.h"
#include "zvfs/fs.h"

static inline int ft_mount(const char *spec, uint64_t cache, struct zvfs_fs **fsp)
{
	struct zvfs_fs_opts o;

	zvfs_fs_opts_init(&o);
	o.device = spec;
	o.format = true;
	o.cache_size = cache;
	return zvfs_fs_mount(&o, fsp);
}

static inline ssize_t ft_pwrite(struct zvfs_file *f, const void *buf, size_t len, uint64_t off,
				unsigned flags)
{
	struct iovec v = {.iov_base = (void *)buf, .iov_len = len};

	return zvfs_file_write(f, &v, 1, off, flags, NULL);
}

static inline ssize_t ft_pread(struct zvfs_file *f, void *buf, size_t len, uint64_t off,
			       unsigned flags)
{
	struct iovec v = {.iov_base = buf, .iov_len = len};

	return zvfs_file_read(f, &v, 1, off, flags);
}

/* A fresh temporary directory (mkdtemp under /tmp); NULL on failure. */
static inline char *ft_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/zvfs-fstest.XXXXXX");
	return mkdtemp(buf);
}

static inline void ft_rmdir(const char *dir, const char *file)
{
	char p[512];

	if (file) {
		snprintf(p, sizeof(p), "%s/%s", dir, file);
		unlink(p);
	}
	rmdir(dir);
}

#endif /* ZVFS_TESTS_FS_FSTEST_H */
