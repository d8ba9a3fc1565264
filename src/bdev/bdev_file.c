/* SPDX-License-Identifier: MIT */
/*
 * Opening and validating a regular file or block device, shared by the
 * io_uring and libaio drivers; plus the synchronous zeroing, discard and
 * flush forms for targets without an asynchronous one.
 *
 * Validation happens entirely at open (the DAOS bdev lesson: a device that
 * opens is a device that works): type, size, block sizes, O_DIRECT support,
 * and one test read.  Each failure gives one message naming the device.
 */
#include "zvfs/bdev_module.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/fdreg.h"

#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x00002000U
#endif

/* Read a number from /sys/dev/block/MAJ:MIN/queue/<attr>; -1 if absent. */
static long long sysfs_queue_attr(dev_t rdev, const char *attr)
{
	char path[128], buf[64];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s", major(rdev), minor(rdev),
		 attr);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f)) {
		if (strncmp(buf, "write back", 10) == 0)
			v = 1;
		else if (strncmp(buf, "write through", 13) == 0)
			v = 0;
		else
			v = strtoll(buf, NULL, 10);
	}
	fclose(f);
	return v;
}

/* Direct-I/O alignment of a regular file: {offset, memory} in bytes. */
static void file_dio_align(int fd, uint32_t *off_align, uint32_t *mem_align)
{
	struct statx stx;

	*off_align = 512;
	*mem_align = 512;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		*off_align = stx.stx_dio_offset_align;
		if (stx.stx_dio_mem_align > *mem_align)
			*mem_align = stx.stx_dio_mem_align;
	}
}

/* Make a regular file at least size bytes long, preallocating where possible. */
static int file_extend(struct zvfs_bdev_file *file, const char *path, uint64_t cur, uint64_t size,
		       char *errbuf, size_t errlen)
{
	int rc;

	if (size <= cur)
		return 0;
	/*
	 * Preallocate so that a full file system shows up now, as an open
	 * error, rather than as ENOSPC in the middle of a later write.
	 */
	rc = posix_fallocate(file->fd, (off_t)cur, (off_t)(size - cur));
	if (rc == EOPNOTSUPP || rc == EINVAL)
		rc = ftruncate(file->fd, (off_t)size) ? errno : 0;
	if (rc) {
		zvfs_bdev_errf(errbuf, errlen, "%s: cannot extend to %llu bytes: %s", path,
			       (unsigned long long)size, strerror(rc));
		return -rc;
	}
	return 0;
}

static int open_errno(int err, const struct zvfs_bdev_spec *spec, char *errbuf, size_t errlen)
{
	const char *path = spec->path;

	switch (err) {
	case EINVAL:
		if (!spec->buffered) {
			zvfs_bdev_errf(
				errbuf, errlen,
				"%s: the file system refuses O_DIRECT (add ',buffered' to the "
				"spec to use the page cache instead)",
				path);
			return -EOPNOTSUPP;
		}
		break;
	case EACCES:
	case EPERM:
		zvfs_bdev_errf(errbuf, errlen, "%s: permission denied", path);
		return -EACCES;
	case EBUSY:
		zvfs_bdev_errf(errbuf, errlen,
			       "%s: device is busy (mounted or opened exclusively elsewhere)",
			       path);
		return -EBUSY;
	case EROFS:
		zvfs_bdev_errf(errbuf, errlen, "%s: read-only file system (use ',ro')", path);
		return -EROFS;
	}
	zvfs_bdev_errf(errbuf, errlen, "%s: cannot open: %s", path, strerror(err));
	return -err;
}

int zvfs_bdev_file_open(struct zvfs_bdev *bdev, const struct zvfs_bdev_spec *spec,
			struct zvfs_bdev_file *file, char *errbuf, size_t errlen)
{
	struct zvfs_bdev_geometry *geo = &bdev->geo;
	const char *path = spec->path;
	int flags = O_CLOEXEC | (spec->read_only ? O_RDONLY : O_RDWR);
	uint32_t off_align = 512, mem_align = 512;
	uint64_t size, dev_size;
	struct stat st;
	void *probe;
	ssize_t n;
	int rc;

	memset(file, 0, sizeof(*file));
	file->fd = -1;
	if (!spec->buffered)
		flags |= O_DIRECT;
	if (stat(path, &st) != 0) {
		if (errno != ENOENT || !spec->create)
			return open_errno(errno, spec, errbuf, errlen);
		if (spec->read_only) {
			zvfs_bdev_errf(errbuf, errlen, "%s: 'create' and 'ro' exclude each other",
				       path);
			return -EINVAL;
		}
		flags |= O_CREAT | O_EXCL;
	} else if (S_ISDIR(st.st_mode)) {
		zvfs_bdev_errf(errbuf, errlen, "%s: is a directory, not a file or block device",
			       path);
		return -EISDIR;
	} else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		zvfs_bdev_errf(errbuf, errlen, "%s: not a regular file or block device", path);
		return -ENODEV;
	} else if (S_ISBLK(st.st_mode)) {
		if (spec->buffered) {
			zvfs_bdev_errf(errbuf, errlen, "%s: 'buffered' is for regular files only",
				       path);
			return -EINVAL;
		}
		/* Exclusive: refuses a device that is mounted or in use. */
		flags |= O_EXCL;
		file->is_blockdev = true;
	}

	file->fd = open(path, flags, 0600);
	if (file->fd < 0) {
		int err = errno;

		/*
		 * The kernel refuses O_DIRECT only after O_CREAT made the file
		 * (O_EXCL: it is ours): leave nothing behind.
		 */
		if (err == EINVAL && (flags & O_CREAT) && (flags & O_DIRECT))
			unlink(path);
		return open_errno(err, spec, errbuf, errlen);
	}
	/* High and registered: a program's dup2 onto a low number must not land on the store. */
	file->fd = zvfs_fd_move_high(file->fd);
	zvfs_fdreg_add(file->fd);
	file->buffered = spec->buffered;
	if (fstat(file->fd, &st) != 0) {
		rc = open_errno(errno, spec, errbuf, errlen);
		goto err_close_fd;
	}

	if (file->is_blockdev) {
		int lbs = 0;
		unsigned int pbs = 0;

		if (ioctl(file->fd, BLKGETSIZE64, &dev_size) != 0 ||
		    ioctl(file->fd, BLKSSZGET, &lbs) != 0 || ioctl(file->fd, BLKPBSZGET, &pbs)) {
			rc = -errno;
			zvfs_bdev_errf(errbuf, errlen, "%s: cannot read device geometry: %s", path,
				       strerror(errno));
			goto err_close_fd;
		}
		off_align = (uint32_t)lbs;
		mem_align = (uint32_t)lbs;
		geo->phys_block_size = pbs;
		geo->block_size = spec->block_size ? spec->block_size : (uint32_t)lbs;
		geo->volatile_cache = sysfs_queue_attr(st.st_rdev, "write_cache") != 0;
		/* PUNCH_HOLE on a block device is a write-zeroes that may unmap. */
		file->punch_ok = sysfs_queue_attr(st.st_rdev, "write_zeroes_max_bytes") > 0;
		geo->discard_zeroes = file->punch_ok;
		geo->write_zeroes_native = file->punch_ok;
		if (spec->size && spec->size > dev_size) {
			zvfs_bdev_errf(
				errbuf, errlen, "%s: device has %llu bytes, spec asks for %llu",
				path, (unsigned long long)dev_size, (unsigned long long)spec->size);
			rc = -ENOSPC;
			goto err_close_fd;
		}
	} else {
		dev_size = (uint64_t)st.st_size;
		if (!spec->buffered)
			file_dio_align(file->fd, &off_align, &mem_align);
		geo->block_size =
			spec->block_size ? spec->block_size : (off_align > 4096 ? off_align : 4096);
		geo->phys_block_size = (uint32_t)st.st_blksize;
		geo->volatile_cache = true;
		geo->alloc_on_write = true;
		file->punch_ok = true;
		geo->discard_zeroes = true;
		geo->write_zeroes_native = true;
		if (spec->size && spec->size - spec->size % geo->block_size < ZVFS_BDEV_MIN_SIZE) {
			/* Refused before extending: a failed open leaves the file as it was. */
			zvfs_bdev_errf(errbuf, errlen,
				       "%s: too small: %llu bytes, need at least %llu", path,
				       (unsigned long long)spec->size,
				       (unsigned long long)ZVFS_BDEV_MIN_SIZE);
			rc = -ENOSPC;
			goto err_close_fd;
		}
		if (spec->size > dev_size) {
			rc = file_extend(file, path, dev_size, spec->size, errbuf, errlen);
			if (rc)
				goto err_close_fd;
			dev_size = spec->size;
		}
	}

	if (geo->block_size < off_align || geo->block_size % off_align) {
		zvfs_bdev_errf(errbuf, errlen,
			       "%s: block size %u is not a multiple of the direct-I/O alignment %u",
			       path, geo->block_size, off_align);
		rc = -EINVAL;
		goto err_close_fd;
	}
	if (geo->phys_block_size < geo->block_size)
		geo->phys_block_size = geo->block_size;
	geo->buf_align = mem_align;
	size = spec->size ? spec->size : dev_size;
	size -= size % geo->block_size;
	geo->size = size;
	if (size < ZVFS_BDEV_MIN_SIZE) {
		zvfs_bdev_errf(errbuf, errlen, "%s: too small: %llu bytes, need at least %llu",
			       path, (unsigned long long)size,
			       (unsigned long long)ZVFS_BDEV_MIN_SIZE);
		rc = -ENOSPC;
		goto err_close_fd;
	}

	/* One real I/O now, so a device that cannot do it fails here. */
	probe = aligned_alloc(geo->buf_align > 4096 ? geo->buf_align : 4096,
			      geo->block_size < 4096 ? 4096 : geo->block_size);
	if (!probe) {
		rc = -ENOMEM;
		goto err_close_fd;
	}
	n = pread(file->fd, probe, geo->block_size, 0);
	rc = n < 0 ? -errno : 0;
	free(probe);
	if (n < 0 && rc == -EINVAL && !spec->buffered) {
		rc = open_errno(EINVAL, spec, errbuf, errlen);
		goto err_close_fd;
	}
	if (n != (ssize_t)geo->block_size) {
		zvfs_bdev_errf(errbuf, errlen, "%s: test read of the first block failed: %s", path,
			       n < 0 ? strerror(-rc) : "short read");
		rc = -EIO;
		goto err_close_fd;
	}
	return 0;

err_close_fd:
	zvfs_bdev_file_close(file);
	if (flags & O_CREAT)
		unlink(path); /* created by this failed open: leave nothing behind */
	return rc;
}

void zvfs_bdev_file_close(struct zvfs_bdev_file *file)
{
	if (file->fd < 0)
		return;
	zvfs_fdreg_del(file->fd);
	close(file->fd);
	file->fd = -1;
}

int zvfs_bdev_file_write_zeroes(struct zvfs_bdev_file *file, uint64_t offset, uint64_t len)
{
	int mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

	if (fallocate(file->fd, mode, (off_t)offset, (off_t)len) == 0)
		return 0;
	/* The range was validated, so EINVAL here means the mode is unknown. */
	if (errno == EOPNOTSUPP || errno == EINVAL || errno == ENODEV)
		return -EOPNOTSUPP;
	return -errno;
}

int zvfs_bdev_file_discard(struct zvfs_bdev_file *file, uint64_t offset, uint64_t len)
{
	uint64_t range[2] = {offset, len};

	if (file->punch_ok) {
		if (fallocate(file->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
			      (off_t)len) == 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENODEV)
			return -errno;
		if (!file->is_blockdev)
			return zvfs_bdev_file_write_zeroes(file, offset, len);
	}
	if (!file->is_blockdev)
		return -EOPNOTSUPP;
	/* No zeroing promised here (discard_zeroes is false); no support is a no-op. */
	if (ioctl(file->fd, BLKDISCARD, range) == 0 || errno == EOPNOTSUPP)
		return 0;
	return -errno;
}

int zvfs_bdev_file_flush(struct zvfs_bdev_file *file)
{
	return fdatasync(file->fd) ? -errno : 0;
}

int zvfs_bdev_file_claim(struct zvfs_bdev_file *file, bool read_only, pid_t *holder)
{
	struct flock fl = {
		.l_type = read_only ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = 0,
		.l_len = 0, /* to the end, however far the file grows */
	};

	if (holder)
		*holder = 0;
	if (fcntl(file->fd, F_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return -errno;
	/* Ask who holds it; the holder may have gone meanwhile (pid stays 0). */
	fl.l_type = read_only ? F_RDLCK : F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0;
	fl.l_pid = 0;
	if (fcntl(file->fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0 && holder)
		*holder = fl.l_pid;
	return -EBUSY;
}
