/* SPDX-License-Identifier: MIT */
/*
 * backend_local.c - ZVFS_MODE=direct: the engine runs in this process
 * (core.c mounts it lazily).  A struct zp_file is a struct zvfs_file.
 */
#include "preload/backend.h"

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

#include "preload/preload.h"

#define F(f) ((struct zvfs_file *)(f))

static int l_open(int fd, int dirfd, const char *path, bool follow, const struct stat *st,
		  const void *xattr, size_t xlen, struct zp_file **filep)
{
	struct zvfs_fs_ino ino = {.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino};
	struct zvfs_fs *fs;
	int err = -EIO;

	(void)fd;
	(void)dirfd;
	(void)path;
	(void)follow;
	fs = zp_engine(&err);
	if (!fs)
		return err;
	return zvfs_fs_file_open(fs, xattr, xlen, &ino, (struct zvfs_file **)filep);
}

static int l_create(int fd, const struct stat *st, struct zp_file **filep)
{
	struct zvfs_fs_ino ino = {.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino};
	char xattr[ZVFS_FS_XATTR_MAX + 1];
	struct zvfs_file *file;
	struct zvfs_fs *fs;
	size_t xlen = 0;
	int err = -EIO;
	int r;

	fs = zp_engine(&err);
	if (!fs)
		return err;
	r = zvfs_fs_file_create(fs, &ino, &file, xattr, &xlen);
	if (r < 0)
		return r;
	/* XATTR_CREATE: of two threads creating one name, one blob wins. */
	if (fsetxattr(fd, ZVFS_FS_XATTR, xattr, xlen, XATTR_CREATE) < 0) {
		int e = errno;

		zvfs_file_close(file);
		zvfs_fs_file_remove(fs, xattr, xlen, &ino);
		return -e;
	}
	*filep = (struct zp_file *)file;
	return 0;
}

static int l_remove(int pfd, const void *xattr, size_t xlen, const struct zvfs_fs_ino *ino,
		    bool shared)
{
	struct zvfs_fs *fs;
	int err = -EIO;

	(void)pfd;
	fs = zp_engine(&err);
	if (!fs)
		return err;
	return shared ? zvfs_fs_file_remove_shared(fs, xattr, xlen, ino)
		      : zvfs_fs_file_remove(fs, xattr, xlen, ino);
}

void zp_local_set_unlinked(struct zp_file *f, bool unlinked)
{
	zvfs_file_set_unlinked(F(f), unlinked);
}

static int l_close(struct zp_file *f)
{
	return zvfs_file_close(F(f));
}

static void l_forget(struct zp_file *f)
{
	(void)f; /* freed with its mount */
}

static ssize_t l_read(struct zp_file *f, const struct iovec *iov, int cnt, uint64_t off,
		      unsigned flags)
{
	return zvfs_file_read(F(f), iov, cnt, off, flags);
}

static ssize_t l_write(struct zp_file *f, const struct iovec *iov, int cnt, uint64_t off,
		       unsigned flags, uint64_t *endp)
{
	return zvfs_file_write(F(f), iov, cnt, off, flags, endp);
}

static int l_truncate(struct zp_file *f, uint64_t size)
{
	return zvfs_file_truncate(F(f), size);
}

static int l_fallocate(struct zp_file *f, int mode, uint64_t off, uint64_t len)
{
	return zvfs_file_fallocate(F(f), mode, off, len);
}

static int l_sync(struct zp_file *f, unsigned flags)
{
	return zvfs_file_sync(F(f), flags);
}

static int l_writeback(struct zp_file *f, uint64_t off, uint64_t len)
{
	return zvfs_file_writeback(F(f), off, len);
}

static int l_drop_cache(struct zp_file *f, uint64_t off, uint64_t len)
{
	return zvfs_file_drop_cache(F(f), off, len);
}

static int l_prefetch(struct zp_file *f, uint64_t off, uint64_t len)
{
	return zvfs_file_prefetch(F(f), off, len);
}

static int l_stat(struct zp_file *f, struct zvfs_file_stat *st)
{
	return zvfs_file_stat(F(f), st);
}

static int64_t l_size(struct zp_file *f)
{
	return (int64_t)zvfs_file_size(F(f));
}

static int l_seek(struct zp_file *f, uint64_t off, bool hole, uint64_t *res)
{
	return zvfs_file_seek(F(f), off, hole, res);
}

/*
 * Write back everything the engine holds, if it is mounted now: sync() must
 * not mount a store (an unrelated program, or a parent whose child holds
 * the store, would fight for it), and an unmounted engine has written
 * everything back already.  core.c bumps zp_engine_gen once at each mount
 * and once at each unmount or forget, so the engine is mounted exactly when
 * the generation is odd.
 */
static int l_sync_all(void)
{
	struct zvfs_fs *fs;
	int err = 0;

	if ((atomic_load(&zp_engine_gen) & 1) == 0)
		return 0;
	fs = zp_engine(&err);
	return fs ? zvfs_fs_sync_all(fs) : err;
}

const struct zp_backend zp_backend_local = {
	.name = "direct",
	.open = l_open,
	.create = l_create,
	.remove = l_remove,
	.close = l_close,
	.forget = l_forget,
	.read = l_read,
	.write = l_write,
	.truncate = l_truncate,
	.fallocate = l_fallocate,
	.sync = l_sync,
	.writeback = l_writeback,
	.drop_cache = l_drop_cache,
	.prefetch = l_prefetch,
	.stat = l_stat,
	.size = l_size,
	.seek = l_seek,
	.sync_all = l_sync_all,
};
