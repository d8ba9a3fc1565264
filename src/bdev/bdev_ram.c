/* SPDX-License-Identifier: MIT */
/*
 * RAM backend: the device is an anonymous mapping.  Requests are done with
 * memcpy inside submit and completed at the next poll (never inside submit).
 * Threads touch disjoint ranges or order themselves, as on a real device, so
 * no lock is needed.  Contents vanish at close.
 */
#include "zvfs/bdev_module.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static int ram_open(struct zvfs_bdev *bdev, const struct zvfs_bdev_spec *spec, char *errbuf,
		    size_t errlen)
{
	struct zvfs_bdev_geometry *geo = &bdev->geo;
	uint32_t bs = spec->block_size ? spec->block_size : 4096;
	void *mem;

	if (!spec->size) {
		zvfs_bdev_errf(errbuf, errlen, "ram: needs 'size='");
		return -EINVAL;
	}
	if (spec->create || spec->buffered) {
		zvfs_bdev_errf(errbuf, errlen, "ram: 'create' and 'buffered' are for files");
		return -EINVAL;
	}
	if (spec->size < ZVFS_BDEV_MIN_SIZE) {
		zvfs_bdev_errf(errbuf, errlen, "ram: too small: %llu bytes, need at least %llu",
			       (unsigned long long)spec->size,
			       (unsigned long long)ZVFS_BDEV_MIN_SIZE);
		return -ENOSPC;
	}
	if (spec->phys_block_size && spec->phys_block_size < bs) {
		zvfs_bdev_errf(errbuf, errlen, "ram: pblock %u smaller than block %u",
			       spec->phys_block_size, bs);
		return -EINVAL;
	}
	geo->block_size = bs;
	geo->phys_block_size = spec->phys_block_size ? spec->phys_block_size : bs;
	geo->size = spec->size - spec->size % bs;
	geo->buf_align = 512;
	geo->discard_zeroes = true;
	geo->write_zeroes_native = true;
	geo->volatile_cache = false;
	/* NORESERVE: a large sparse RAM disk costs only what is written. */
	mem = mmap(NULL, geo->size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		zvfs_bdev_errf(errbuf, errlen, "ram: cannot map %llu bytes: %s",
			       (unsigned long long)geo->size, strerror(errno));
		return -ENOMEM;
	}
	/*
	 * Huge pages where the kernel gives them on request: random 4 KiB
	 * accesses over a large RAM disk otherwise miss the TLB on almost
	 * every request.  Advice only; failure changes nothing.
	 */
	madvise(mem, geo->size, MADV_HUGEPAGE);
	snprintf(bdev->name, sizeof(bdev->name), "ram");
	bdev->drv = mem;
	return 0;
}

static void ram_close(struct zvfs_bdev *bdev)
{
	munmap(bdev->drv, bdev->geo.size);
}

static int ram_channel_create(struct zvfs_bdev_channel *ch)
{
	(void)ch;
	return 0;
}

static void ram_channel_destroy(struct zvfs_bdev_channel *ch)
{
	(void)ch;
}

static int ram_submit(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io)
{
	uint8_t *p = (uint8_t *)ch->bdev->drv + io->offset;

	switch (io->type) {
	case ZVFS_BDEV_IO_READ:
		for (int i = 0; i < io->iovcnt; p += io->iov[i++].iov_len)
			memcpy(io->iov[i].iov_base, p, io->iov[i].iov_len);
		break;
	case ZVFS_BDEV_IO_WRITE:
		for (int i = 0; i < io->iovcnt; p += io->iov[i++].iov_len)
			memcpy(p, io->iov[i].iov_base, io->iov[i].iov_len);
		break;
	case ZVFS_BDEV_IO_WRITE_ZEROES:
	case ZVFS_BDEV_IO_DISCARD:
		memset(p, 0, io->len);
		break;
	case ZVFS_BDEV_IO_FLUSH:
		break;
	default:
		return -EINVAL;
	}
	zvfs_bdev_io_defer(io, 0);
	return 0;
}

static int ram_poll(struct zvfs_bdev_channel *ch, bool wait)
{
	/* Everything completed in submit; the core runs the deferred list. */
	(void)ch;
	(void)wait;
	return 0;
}

const struct zvfs_bdev_ops zvfs_bdev_ram_ops = {
	.name = "ram",
	.open = ram_open,
	.close = ram_close,
	.channel_create = ram_channel_create,
	.channel_destroy = ram_channel_destroy,
	.submit = ram_submit,
	.poll = ram_poll,
};
