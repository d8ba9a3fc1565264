/* SPDX-License-Identifier: MIT */
/*
 * Power cuts under the file layer: mount on a fault device over an image
 * file, write and sync in rounds, write more without a sync, cut the power
 * (unflushed writes dropped, all or a random subset), remount the image and
 * check: the store loads, every file opens, its size is the last synced
 * one, every synced byte is intact unless a later unsynced write touched
 * it, and the files still work (write, sync, remount).
 *
 *   test_fs_powercut SEEDS
 */
#include <fcntl.h>

#include "fstest.h"

#define NF    2
#define MAXSZ (2u << 20)

struct pf {
	uint8_t *cur;	  /* model of the current contents */
	uint8_t *synced;  /* contents at the last sync */
	uint8_t *touched; /* per byte: written after the last sync */
	uint64_t size, synced_size;
	struct zvfs_file *f;
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	struct zvfs_fs_ino ino;
};

static struct pf g_f[NF];
static uint64_t g_rng;
static uint8_t *g_buf;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

static int do_write(struct pf *p, bool dsync)
{
	uint64_t off = rnd_below(MAXSZ - 1), len = rnd_below(rnd_below(2) ? 9000 : 200000) + 1;
	uint8_t v = (uint8_t)(rnd() | 1);
	ssize_t n;

	if (off + len > MAXSZ)
		len = MAXSZ - off;
	memset(g_buf, v, len);
	n = ft_pwrite(p->f, g_buf, len, off, dsync ? ZVFS_IO_DSYNC : 0);
	if (n != (ssize_t)len) {
		t_failf("write: %s", t_err((int)n));
		return -1;
	}
	memcpy(p->cur + off, g_buf, len);
	memset(p->touched + off, 1, len);
	if (off + len > p->size)
		p->size = off + len;
	if (dsync) { /* durable, together with everything before it in this file? no: only it */
		memcpy(p->synced + off, g_buf, len);
		memset(p->touched + off, 0, len);
		if (p->size > p->synced_size)
			p->synced_size = p->size;
	}
	return 0;
}

static void mark_synced(struct pf *p)
{
	memcpy(p->synced, p->cur, MAXSZ);
	memset(p->touched, 0, MAXSZ);
	p->synced_size = p->size;
}

static void run(uint64_t seed, const char *img)
{
	char spec[400], name[64];
	struct zvfs_fs *fs = NULL;
	struct zvfs_bdev *bdev;
	struct zvfs_bs_stats bst;
	uint8_t *rd = malloc(MAXSZ);
	int rc, fd;

	snprintf(name, sizeof(name), "seed-%" PRIu64, seed);
	t_begin(name);
	g_rng = t_mix(seed) | 1;
	fd = open(img, O_CREAT | O_RDWR | O_TRUNC, 0600);
	EXPECT(fd >= 0 && rd, "image");
	close(fd);
	snprintf(spec, sizeof(spec), "fault:%s,size=32M,create", img);
	rc = ft_mount(spec, (rnd_below(2) ? 64 : 4096) << 10, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	bdev = zvfs_bs_get_bdev(zvfs_fs_get_bs(fs));
	for (int i = 0; i < NF; i++) {
		struct pf *p = &g_f[i];

		memset(p->cur, 0, MAXSZ);
		memset(p->synced, 0, MAXSZ);
		memset(p->touched, 0, MAXSZ);
		p->size = p->synced_size = 0;
		p->ino.dev = 9;
		p->ino.ino = 500 + (uint64_t)i;
		rc = zvfs_fs_file_create(fs, &p->ino, &p->f, p->xa, &p->xlen);
		EXPECT(rc == 0, "create: %s", t_err(rc));
	}
	/* rounds of writes, each file synced (or not) at the end of a round */
	for (int r = (int)rnd_below(4) + 1; r > 0; r--) {
		for (int w = (int)rnd_below(12); w > 0; w--)
			EXPECT(do_write(&g_f[rnd_below(NF)], false) == 0, "(reported)");
		if (rnd_below(4) == 0) { /* sync(2): everything */
			rc = zvfs_fs_sync_all(fs);
			EXPECT(rc == 0, "sync_all: %s", t_err(rc));
			for (int i = 0; i < NF; i++)
				mark_synced(&g_f[i]);
			continue;
		}
		for (int i = 0; i < NF; i++) {
			if (rnd_below(3) == 0)
				continue;
			rc = zvfs_file_sync(g_f[i].f, rnd_below(2) ? ZVFS_SYNC_DATA : 0);
			EXPECT(rc == 0, "sync: %s", t_err(rc));
			mark_synced(&g_f[i]);
		}
	}
	/* and a tail of unsynced (or dsync) writes */
	for (int w = (int)rnd_below(10); w > 0; w--) {
		struct pf *p = &g_f[rnd_below(NF)];

		EXPECT(do_write(p, false) == 0, "(reported)");
	}
	{
		uint64_t dropped = 0, kept = 0;

		rc = zvfs_bdev_fault_power_cut(
			bdev, rnd_below(2) ? ZVFS_BDEV_CUT_RANDOM : ZVFS_BDEV_CUT_DROP_ALL, seed,
			&dropped, &kept);
		EXPECT(rc == 0, "power cut: %s", t_err(rc));
	}
	zvfs_fs_unmount(fs); /* fails: the device is dark; frees everything */
	fs = NULL;

	rc = ft_mount(img, 0, &fs);
	EXPECT(rc == 0, "remount after the cut: %s", t_err(rc));
	zvfs_bs_get_stats(zvfs_fs_get_bs(fs), &bst);
	EXPECT(bst.bad_blobs == 0, "bad blobs: %" PRIu64, bst.bad_blobs);
	for (int i = 0; i < NF; i++) {
		struct pf *p = &g_f[i];
		uint64_t size;
		ssize_t n;

		rc = zvfs_fs_file_open(fs, p->xa, p->xlen, &p->ino, &p->f);
		EXPECT(rc == 0, "open %d: %s", i, t_err(rc));
		size = zvfs_file_size(p->f);
		EXPECT(size == p->synced_size, "file %d: size %" PRIu64 ", synced %" PRIu64, i,
		       size, p->synced_size);
		n = ft_pread(p->f, rd, MAXSZ, 0, 0);
		EXPECT(n == (ssize_t)size, "read %zd", n);
		for (uint64_t k = 0; k < size; k++)
			EXPECT(rd[k] == p->synced[k] || p->touched[k],
			       "file %d byte %" PRIu64 ": %02x, synced %02x", i, k, rd[k],
			       p->synced[k]);
		/* still usable: extend past the old end, which must read zero in the gap */
		EXPECT(zvfs_file_truncate(p->f, MAXSZ) == 0, "truncate");
		n = ft_pread(p->f, rd, MAXSZ, 0, 0);
		EXPECT(n == MAXSZ, "read");
		EXPECT(t_check_zero(rd + size, MAXSZ - size) < 0,
		       "file %d: stale data past the recovered size at %" PRIu64, i,
		       size + (uint64_t)t_check_zero(rd + size, MAXSZ - size));
		EXPECT(ft_pwrite(p->f, "ok", 2, 0, 0) == 2, "write");
		EXPECT(zvfs_file_sync(p->f, 0) == 0, "sync");
		EXPECT(zvfs_file_close(p->f) == 0, "close");
	}
	rc = zvfs_fs_unmount(fs);
	fs = NULL;
	EXPECT(rc == 0, "unmount: %s", t_err(rc));
out:
	if (fs)
		zvfs_fs_unmount(fs);
	free(rd);
	t_end();
}

int main(int argc, char **argv)
{
	uint64_t seeds = argc > 1 ? strtoull(argv[1], NULL, 0) : 20, seed0;
	char dir[256], img[300];
	int ret;

	if (!ft_tmpdir(dir, sizeof(dir))) {
		printf("# skip: no temporary directory\n");
		return T_EXIT_SKIP;
	}
	snprintf(img, sizeof(img), "%s/cut.img", dir);
	g_buf = malloc(MAXSZ);
	for (int i = 0; i < NF; i++) {
		g_f[i].cur = malloc(MAXSZ);
		g_f[i].synced = malloc(MAXSZ);
		g_f[i].touched = malloc(MAXSZ);
	}
	seed0 = t_seed();
	for (uint64_t s = 0; s < seeds; s++)
		run(seed0 + s, img);
	ret = t_summary(argv[0]);
	ft_rmdir(dir, "cut.img");
	free(g_buf);
	for (int i = 0; i < NF; i++) {
		free(g_f[i].cur);
		free(g_f[i].synced);
		free(g_f[i].touched);
	}
	return ret;
}
