/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of every zvfs/fs.h call, on a RAM device and on an image file.
 *
 *   test_fs_basic ram     checks that need no persistence, on ram:
 *   test_fs_basic file    the same plus remount, claim, refusal of foreign data
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/wait.h>

#include "fstest.h"

static const struct zvfs_fs_ino INO1 = {1, 100}, INO2 = {1, 200};

static char g_dir[256], g_img[300], g_spec[400];
static bool g_file;

/* Mount the test device: a RAM disk, or the image file (created on first use). */
static int mount_dev(uint64_t cache, struct zvfs_fs **fsp)
{
	return ft_mount(g_spec, cache, fsp);
}

static void check_mount(void)
{
	struct zvfs_fs *fs = NULL;
	struct zvfs_fs_stats st;
	const char *id;
	int rc;

	t_begin("mount-format");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	id = zvfs_fs_store_id(fs);
	EXPECT(strlen(id) == 36 && id[8] == '-' && id[14] == '4', "store id '%s'", id);
	EXPECT(zvfs_fs_get_bs(fs) != NULL, "no bs");
	rc = zvfs_fs_get_stats(fs, &st);
	EXPECT(rc == 0 && st.cache_limit == 256ull << 20 && st.files_open == 0, "stats");
	EXPECT(zvfs_fs_sync_all(fs) == 0, "sync_all");
out:
	if (fs)
		zvfs_fs_unmount(fs);
	t_end();
}

static void check_rw(void)
{
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *f = NULL;
	char xa[ZVFS_FS_XATTR_MAX], sid[37];
	size_t xlen = 0;
	uint8_t *buf = malloc(1 << 20), *rd = malloc(1 << 20);
	struct zvfs_file_stat st;
	zvfs_blob_id bid;
	uint64_t gen, end = 0;
	ssize_t n;
	int rc;

	t_begin("create-write-read");
	EXPECT(buf && rd, "malloc");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	rc = zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	/* 56 bytes: ext4 keeps it inside the inode (placeholders own no block) */
	EXPECT(xlen == 56 && !memcmp(xa, "zvfs1 ", 6), "xattr");
	rc = zvfs_fs_xattr_parse(xa, xlen, sid, &bid, &gen);
	{
		char want[17];

		zvfs_fs_short_id(zvfs_fs_store_id(fs), want);
		EXPECT(rc == 0 && strlen(sid) == 16 && !strcmp(sid, want), "parse: %s", t_err(rc));
	}
	EXPECT(zvfs_file_size(f) == 0, "size 0");
	EXPECT(ft_pread(f, rd, 100, 0, 0) == 0, "read of empty file");

	/* odd offsets and sizes */
	t_fill(buf, 1 << 20, 7, 0);
	n = ft_pwrite(f, buf + 3, 5000, 3, 0);
	EXPECT(n == 5000, "write: %zd", n);
	EXPECT(zvfs_file_size(f) == 5003, "size %" PRIu64, zvfs_file_size(f));
	n = ft_pwrite(f, buf + 300000, 12345, 300000, 0); /* leaves a hole */
	EXPECT(n == 12345, "write2: %zd", n);
	memset(rd, 0xAA, 1 << 20);
	n = ft_pread(f, rd, 1 << 20, 0, 0);
	EXPECT(n == 312345, "read %zd", n);
	EXPECT(t_check_zero(rd, 3) < 0, "head zero");
	EXPECT(!memcmp(rd + 3, buf + 3, 5000), "data 1");
	EXPECT(t_check_zero(rd + 5003, 300000 - 5003) < 0, "hole reads zero");
	EXPECT(!memcmp(rd + 300000, buf + 300000, 12345), "data 2");
	EXPECT(ft_pread(f, rd, 10, 312345, 0) == 0, "read at EOF");
	EXPECT(ft_pread(f, rd, 10, 1ull << 40, 0) == 0, "read far past EOF");
	EXPECT(ft_pread(f, rd, 10, 312340, 0) == 5, "short read at EOF");

	/* vectored, append */
	{
		struct iovec v[3] = {{buf, 1}, {buf + 1, 4095}, {buf + 4096, 10}};

		n = zvfs_file_write(f, v, 3, 0, ZVFS_IO_APPEND, &end);
		EXPECT(n == 4106 && end == 312345 + 4106, "append %zd end %" PRIu64, n, end);
		n = zvfs_file_read(f, v, 3, 312345, 0);
		EXPECT(n == 4106, "readv %zd", n);
	}
	EXPECT(ft_pwrite(f, buf, 1, ZVFS_FS_MAX_SIZE, 0) == -EFBIG, "EFBIG");
	EXPECT(zvfs_file_readable(f, 10) == end - 10 && zvfs_file_readable(f, end + 1) == 0,
	       "readable");

	/*
	 * A range narrower than the dirty set (found through the page index, not the dirty
	 * list) writes exactly its dirty pages: bytes 4096..12287 are pages 1 and 2.
	 */
	{
		struct zvfs_fs_stats s0, s1;

		/* pages 1 and 2 dirty again, same bytes */
		EXPECT(ft_pread(f, rd, 8192, 4096, 0) == 8192 &&
			       ft_pwrite(f, rd, 8192, 4096, 0) == 8192,
		       "rewrite pages 1-2");
		zvfs_fs_get_stats(fs, &s0);
		EXPECT(s0.cache_dirty >= 4 * 4096, "dirty before: %" PRIu64, s0.cache_dirty);
		EXPECT(zvfs_file_writeback(f, 4096, 8192) == 0, "narrow writeback");
		zvfs_fs_get_stats(fs, &s1);
		EXPECT(s1.writeback - s0.writeback == 2 && s0.cache_dirty - s1.cache_dirty == 8192,
		       "narrow writeback wrote %" PRIu64 " pages, cleaned %" PRIu64 " bytes",
		       s1.writeback - s0.writeback, s0.cache_dirty - s1.cache_dirty);
		EXPECT(zvfs_file_writeback(f, 4096, 8192) == 0 &&
			       (zvfs_fs_get_stats(fs, &s0), s0.writeback == s1.writeback),
		       "clean range written again");
	}

	/* survives dropping the cache (written back, read from the device) */
	EXPECT(zvfs_file_writeback(f, 0, 0) == 0, "writeback");
	EXPECT(zvfs_file_drop_cache(f, 0, 0) == 0, "drop");
	n = ft_pread(f, rd, 1 << 20, 0, 0);
	EXPECT(n == (ssize_t)end && !memcmp(rd + 300000, buf + 300000, 12345) &&
		       t_check_zero(rd + 5003, 300000 - 5003) < 0,
	       "after drop");
	EXPECT(zvfs_file_prefetch(f, 0, 0) == 0, "prefetch");
	n = ft_pread(f, rd, 8192, 0, ZVFS_IO_NOWAIT);
	EXPECT(n == 8192, "NOWAIT after prefetch: %zd", n);
	EXPECT(zvfs_file_drop_cache(f, 0, 0) == 0, "drop");
	EXPECT(ft_pread(f, rd, 8192, 0, ZVFS_IO_NOWAIT) == -EAGAIN, "NOWAIT miss");

	rc = zvfs_file_stat(f, &st);
	EXPECT(rc == 0 && st.size == end && st.blob_id == bid && st.gen == gen && !st.unlinked &&
		       st.allocated > 0,
	       "stat");
	EXPECT(zvfs_file_sync(f, 0) == 0, "sync");
	EXPECT(zvfs_file_sync(f, ZVFS_SYNC_DATA) == 0, "fdatasync");
	EXPECT(zvfs_file_close(f) == 0, "close");
	f = NULL;
out:
	if (f)
		zvfs_file_close(f);
	if (fs)
		zvfs_fs_unmount(fs);
	free(buf);
	free(rd);
	t_end();
}

static void check_truncate_fallocate_seek(void)
{
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *f = NULL;
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	uint8_t *buf = malloc(4 << 20), *rd = malloc(4 << 20);
	struct zvfs_file_stat st;
	uint64_t res, cl = 128 << 10, a0, a1;
	int rc;

	t_begin("truncate-fallocate-seek");
	EXPECT(buf && rd, "malloc");
	rc = mount_dev(64 << 20, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	rc = zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	t_fill(buf, 4 << 20, 9, 0);
	EXPECT(ft_pwrite(f, buf, 1 << 20, 0, 0) == 1 << 20, "write");
	/* shrink to an odd size, write back, extend: the old tail must read zero */
	EXPECT(zvfs_file_truncate(f, 1000) == 0, "truncate down");
	EXPECT(zvfs_file_size(f) == 1000, "size");
	EXPECT(zvfs_file_sync(f, 0) == 0, "sync");
	EXPECT(zvfs_file_drop_cache(f, 0, 0) == 0, "drop");
	EXPECT(zvfs_file_truncate(f, 1 << 20) == 0, "truncate up");
	EXPECT(ft_pread(f, rd, 1 << 20, 0, 0) == 1 << 20, "read");
	EXPECT(!memcmp(rd, buf, 1000), "kept");
	EXPECT(t_check_zero(rd + 1000, (1 << 20) - 1000) < 0, "old tail reads zero");
	rc = zvfs_file_stat(f, &st);
	EXPECT(rc == 0 && st.allocated <= cl, "allocated after shrink %" PRIu64, st.allocated);
	EXPECT(zvfs_file_truncate(f, ZVFS_FS_MAX_SIZE + 1) == -EFBIG, "EFBIG");

	/* fallocate */
	EXPECT(zvfs_file_fallocate(f, 0x40, 0, 10) == -EOPNOTSUPP, "bad mode");
	EXPECT(zvfs_file_fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 10) == -EOPNOTSUPP, "punch alone");
	EXPECT(zvfs_file_fallocate(f, 0, 0, 0) == -EINVAL, "len 0");
	EXPECT(zvfs_file_fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 4 << 20) == 0, "keep size");
	EXPECT(zvfs_file_size(f) == 1 << 20, "size kept");
	EXPECT(zvfs_file_fallocate(f, 0, 0, 2 << 20) == 0, "mode 0");
	EXPECT(zvfs_file_size(f) == 2 << 20, "size grown");
	EXPECT(ft_pwrite(f, buf, 2 << 20, 0, 0) == 2 << 20, "write");
	EXPECT(zvfs_file_sync(f, 0) == 0, "sync");
	zvfs_file_stat(f, &st);
	a0 = st.allocated;
	EXPECT(zvfs_file_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, cl * 3) == 0,
	       "punch");
	EXPECT(zvfs_file_sync(f, 0) == 0, "sync");
	zvfs_file_stat(f, &st);
	a1 = st.allocated;
	EXPECT(a1 + 2 * cl <= a0, "punch frees clusters %" PRIu64 " -> %" PRIu64, a0, a1);
	EXPECT(ft_pread(f, rd, 2 << 20, 0, 0) == 2 << 20, "read");
	EXPECT(!memcmp(rd, buf, 100) && t_check_zero(rd + 100, cl * 3) < 0 &&
		       !memcmp(rd + 100 + cl * 3, buf + 100 + cl * 3, (2 << 20) - 100 - cl * 3),
	       "punched range reads zero, rest intact");
	/* seek: [cl, 3*cl) is a hole; cluster 0 has data */
	EXPECT(zvfs_file_seek(f, 0, false, &res) == 0 && res == 0, "data at 0");
	EXPECT(zvfs_file_seek(f, 0, true, &res) == 0 && res == cl, "hole at cl: %" PRIu64, res);
	EXPECT(zvfs_file_seek(f, cl + 5, false, &res) == 0 && res == 3 * cl,
	       "data after hole: %" PRIu64, res);
	EXPECT(zvfs_file_seek(f, 3 * cl, true, &res) == 0 && res == 2 << 20, "hole at EOF");
	EXPECT(zvfs_file_seek(f, 2 << 20, false, &res) == -ENXIO, "ENXIO at EOF");
	/* a dirty page in a hole is data */
	EXPECT(ft_pwrite(f, buf, 10, cl + 10, 0) == 10, "write in hole");
	EXPECT(zvfs_file_seek(f, cl, false, &res) == 0 && res == cl, "dirty data: %" PRIu64, res);
	/* zero range past EOF grows the size unless KEEP_SIZE */
	EXPECT(zvfs_file_fallocate(f, FALLOC_FL_ZERO_RANGE, 50, 100) == 0, "zero range");
	EXPECT(ft_pread(f, rd, 200, 0, 0) == 200 && !memcmp(rd, buf, 50) &&
		       t_check_zero(rd + 50, 150) < 0, /* [100, ...) was punched */
	       "zeroed");
	EXPECT(zvfs_file_fallocate(f, FALLOC_FL_ZERO_RANGE, (2 << 20) - 10, 30) == 0, "zero end");
	EXPECT(zvfs_file_size(f) == (2 << 20) + 20, "size after zero range");
	EXPECT(zvfs_file_close(f) == 0, "close");
	f = NULL;
out:
	if (f)
		zvfs_file_close(f);
	if (fs)
		zvfs_fs_unmount(fs);
	free(buf);
	free(rd);
	t_end();
}

/*
 * The page index is a radix tree (src/fs/cache.c): pages far apart make it
 * taller, truncation and dropped pages empty and free its nodes.  Each page is
 * checked against its own pattern after every change, so a page found under
 * the wrong number, or one lost when a neighbour's node went, shows.
 */
static void check_page_index(void)
{
	/* page numbers (4 KiB pages) across leaves and levels: 512 pages a leaf */
	static const uint64_t pages[] = {
		0, 1, 511, 512, 513, 262143, 262144, 262145, 134217727, 134217728, 134217728 + 700};
	enum { NP = sizeof(pages) / sizeof(pages[0]) };
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *f = NULL;
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	uint8_t buf[4096], rd[4096];
	struct zvfs_fs_stats st;
	int rc;

	t_begin("page-index-sparse");
	rc = mount_dev(64 << 20, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	rc = zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	/*
	 * The first five in order (the tree grows a level at page 512), then the rest from the
	 * highest down (it grows two more at once, the old root becoming the first child).
	 */
	for (int k = 0; k < NP; k++) {
		int i = k < 5 ? k : NP - 1 - (k - 5);

		t_fill(buf, sizeof(buf), 40, pages[i] * 4096);
		EXPECT(ft_pwrite(f, buf, sizeof(buf), pages[i] * 4096, 0) == (ssize_t)sizeof(buf),
		       "write page %" PRIu64, pages[i]);
	}
	for (int i = 0; i < NP; i++) {
		EXPECT(ft_pread(f, rd, sizeof(rd), pages[i] * 4096, 0) == (ssize_t)sizeof(rd) &&
			       t_check(rd, sizeof(rd), 40, pages[i] * 4096) < 0,
		       "page %" PRIu64 " reads back", pages[i]);
		/* a neighbour that was never written is a hole, not another page's data */
		if (i + 1 < NP && pages[i] + 2 < pages[i + 1])
			EXPECT(ft_pread(f, rd, sizeof(rd), (pages[i] + 2) * 4096, 0) ==
					       (ssize_t)sizeof(rd) &&
				       t_check_zero(rd, sizeof(rd)) < 0,
			       "hole after page %" PRIu64, pages[i]);
	}
	EXPECT(zvfs_fs_get_stats(fs, &st) == 0 && st.cache_bytes >= NP * 4096ull, "stats");
	/* cut the two highest levels' pages away: the tree loses nodes, the rest stays */
	EXPECT(zvfs_file_truncate(f, 262145 * 4096ull) == 0, "truncate");
	for (int i = 0; i < NP; i++) {
		ssize_t n = ft_pread(f, rd, sizeof(rd), pages[i] * 4096, 0);

		if (pages[i] < 262145)
			EXPECT(n == (ssize_t)sizeof(rd) &&
				       t_check(rd, sizeof(rd), 40, pages[i] * 4096) < 0,
			       "page %" PRIu64 " after truncate", pages[i]);
		else
			EXPECT(n == 0, "page %" PRIu64 " past EOF: %zd", pages[i], n);
	}
	/* grow again: the pages cut off read zero, not their old frames */
	EXPECT(zvfs_file_truncate(f, (134217728 + 701) * 4096ull) == 0, "truncate up");
	EXPECT(ft_pread(f, rd, sizeof(rd), 134217728 * 4096ull, 0) == (ssize_t)sizeof(rd) &&
		       t_check_zero(rd, sizeof(rd)) < 0,
	       "cut page reads zero");
	/* every page written back and dropped: read from the device through a fresh tree */
	EXPECT(zvfs_file_sync(f, 0) == 0, "sync");
	EXPECT(zvfs_file_drop_cache(f, 0, 0) == 0, "drop");
	for (int i = 0; i < NP && pages[i] < 262145; i++)
		EXPECT(ft_pread(f, rd, sizeof(rd), pages[i] * 4096, 0) == (ssize_t)sizeof(rd) &&
			       t_check(rd, sizeof(rd), 40, pages[i] * 4096) < 0,
		       "page %" PRIu64 " from the device", pages[i]);
	EXPECT(zvfs_file_close(f) == 0, "close");
	f = NULL;
	EXPECT(zvfs_fs_get_stats(fs, &st) == 0 && st.cache_dirty == 0, "nothing dirty");
out:
	if (f)
		zvfs_file_close(f);
	if (fs)
		zvfs_fs_unmount(fs);
	t_end();
}

static void check_direct(void)
{
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *f = NULL;
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	uint8_t *buf = aligned_alloc(4096, 1 << 20), *rd = aligned_alloc(4096, 1 << 20);
	uint32_t al;
	ssize_t n;
	int rc;

	t_begin("direct-io");
	EXPECT(buf && rd, "malloc");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	rc = zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	al = zvfs_file_direct_align(f);
	EXPECT(al >= 512 && al <= 4096, "align %u", al);
	t_fill(buf, 1 << 20, 11, 0);
	EXPECT(ft_pwrite(f, buf, 100, 0, ZVFS_IO_DIRECT) == -EINVAL, "unaligned len");
	EXPECT(ft_pwrite(f, buf + 1, 4096, 0, ZVFS_IO_DIRECT) == -EINVAL, "unaligned buf");
	EXPECT(ft_pread(f, rd, 4096, 3, ZVFS_IO_DIRECT) == -EINVAL, "unaligned off");
	n = ft_pwrite(f, buf, 65536, 0, ZVFS_IO_DIRECT);
	EXPECT(n == 65536, "direct write %zd", n);
	/* cached write over part of it, then a direct read must see it */
	EXPECT(ft_pwrite(f, buf + 200000, 100, 4000, 0) == 100, "cached write");
	memcpy(buf + 4000, buf + 200000, 100);
	n = ft_pread(f, rd, 65536, 0, ZVFS_IO_DIRECT);
	EXPECT(n == 65536 && !memcmp(rd, buf, 65536), "direct read sees cached write");
	/* a direct write after a cached read: the cached read must see the new data */
	EXPECT(ft_pread(f, rd, 8192, 0, 0) == 8192, "cached read");
	EXPECT(ft_pwrite(f, buf + 299008, 4096, 4096, ZVFS_IO_DIRECT) == 4096, "direct write");
	memcpy(buf + 4096, buf + 299008, 4096);
	EXPECT(ft_pread(f, rd, 8192, 0, 0) == 8192 && !memcmp(rd, buf, 8192), "cache coherent");
	/* direct read across EOF: short */
	EXPECT(ft_pwrite(f, buf + 65536, 1000, 65536, 0) == 1000, "tail");
	n = ft_pread(f, rd, 8192, 65536, ZVFS_IO_DIRECT);
	EXPECT(n == 1000 && !memcmp(rd, buf + 65536, 1000), "direct short read %zd", n);
	/* 512-aligned, works whatever the device block */
	n = ft_pwrite(f, buf, 512, 512, ZVFS_IO_DIRECT | ZVFS_IO_DSYNC);
	EXPECT(n == 512, "512 write %zd", n);
	n = ft_pread(f, rd, 1024, 0, ZVFS_IO_DIRECT);
	EXPECT(n == 1024 && !memcmp(rd + 512, buf, 512), "512 read");
	EXPECT(zvfs_file_close(f) == 0, "close");
	f = NULL;
out:
	if (f)
		zvfs_file_close(f);
	if (fs)
		zvfs_fs_unmount(fs);
	free(buf);
	free(rd);
	t_end();
}

static void check_lifecycle(void)
{
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *f = NULL, *g = NULL;
	char xa[ZVFS_FS_XATTR_MAX], xb[ZVFS_FS_XATTR_MAX], bad[ZVFS_FS_XATTR_MAX];
	size_t xlen, xblen;
	struct zvfs_bs_stats bst;
	struct zvfs_file_stat st;
	uint64_t blobs0;
	uint8_t buf[100];
	int rc;

	t_begin("lifecycle-and-identity");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	zvfs_bs_get_stats(zvfs_fs_get_bs(fs), &bst);
	blobs0 = bst.blobs;
	rc = zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	EXPECT(ft_pwrite(f, "hello", 5, 0, 0) == 5, "write");
	/* the same blob yields the same object */
	rc = zvfs_fs_file_open(fs, xa, xlen, &INO1, &g);
	EXPECT(rc == 0 && g == f, "reopen: %s", t_err(rc));
	EXPECT(zvfs_file_close(g) == 0, "close g");
	g = NULL;
	/* wrong inode, wrong generation, other store, garbage */
	EXPECT(zvfs_fs_file_open(fs, xa, xlen, &INO2, &g) == -ESTALE, "ino mismatch");
	memcpy(bad, xa, xlen);
	bad[xlen - 1] = bad[xlen - 1] == '0' ? '1' : '0';
	EXPECT(zvfs_fs_file_open(fs, bad, xlen, &INO1, &g) == -ESTALE, "gen mismatch");
	memcpy(bad, xa, xlen);
	bad[6] = bad[6] == 'a' ? 'b' : 'a';
	EXPECT(zvfs_fs_file_open(fs, bad, xlen, &INO1, &g) == -EXDEV, "other store");
	EXPECT(zvfs_fs_file_remove(fs, bad, xlen, &INO1) == -EXDEV, "remove other store");
	EXPECT(zvfs_fs_file_open(fs, "zvfs1 junk", 10, &INO1, &g) == -EUCLEAN, "malformed");
	{ /* a file of a second store */
		struct zvfs_fs *fs2 = NULL;
		struct zvfs_file *h = NULL;
		char xc[ZVFS_FS_XATTR_MAX];
		size_t xclen;

		rc = ft_mount("ram:size=16M", 0, &fs2);
		EXPECT(rc == 0, "second store: %s", t_err(rc));
		rc = zvfs_fs_file_create(fs2, &INO1, &h, xc, &xclen);
		if (rc == 0)
			zvfs_file_close(h);
		zvfs_fs_unmount(fs2);
		EXPECT(rc == 0, "create in the second store: %s", t_err(rc));
		EXPECT(zvfs_fs_file_open(fs, xc, xclen, &INO1, &g) == -EXDEV, "foreign store");
	}
	memcpy(bad, xa, xlen);
	memcpy(bad + 23, "00000000000fffff", 16);
	EXPECT(zvfs_fs_file_open(fs, bad, xlen, &INO1, &g) == -ESTALE, "missing blob");
	/* set_ino moves the back-reference */
	EXPECT(zvfs_file_set_ino(f, &INO2) == 0, "set_ino");
	EXPECT(zvfs_fs_file_open(fs, xa, xlen, &INO1, &g) == -ESTALE, "old ino refused");
	rc = zvfs_fs_file_open(fs, xa, xlen, &INO2, &g);
	EXPECT(rc == 0 && g == f, "new ino: %s", t_err(rc));
	zvfs_file_close(g);
	g = NULL;

	/* unlink while open: readable until the last close, then gone */
	EXPECT(zvfs_fs_file_remove(fs, xa, xlen, &INO1) == -ESTALE, "remove wrong ino");
	EXPECT(zvfs_fs_file_remove(fs, xa, xlen, &INO2) == 0, "remove open");
	zvfs_file_stat(f, &st);
	EXPECT(st.unlinked, "unlinked flag");
	EXPECT(ft_pread(f, buf, 5, 0, 0) == 5 && !memcmp(buf, "hello", 5), "readable");
	EXPECT(zvfs_file_close(f) == 0, "last close");
	f = NULL;
	EXPECT(zvfs_fs_file_open(fs, xa, xlen, &INO2, &g) == -ESTALE, "gone after close");
	zvfs_bs_get_stats(zvfs_fs_get_bs(fs), &bst);
	EXPECT(bst.blobs == blobs0, "blob deleted: %" PRIu64 " vs %" PRIu64, bst.blobs, blobs0);

	/* remove of a cached file without handles (rename over it) */
	rc = zvfs_fs_file_create(fs, &INO1, &f, xb, &xblen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	EXPECT(ft_pwrite(f, "x", 1, 0, 0) == 1, "write");
	EXPECT(zvfs_file_close(f) == 0, "close");
	f = NULL;
	EXPECT(zvfs_fs_file_remove(fs, xb, xblen, &INO1) == 0, "remove cached");
	zvfs_bs_get_stats(zvfs_fs_get_bs(fs), &bst);
	EXPECT(bst.blobs == blobs0, "blob deleted");
	EXPECT(zvfs_fs_file_remove(fs, xb, xblen, &INO1) == -ESTALE, "second remove");
out:
	if (g)
		zvfs_file_close(g);
	if (f)
		zvfs_file_close(f);
	if (fs)
		zvfs_fs_unmount(fs);
	t_end();
}

static void check_enospc(void)
{
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *a = NULL, *b = NULL;
	char xa[ZVFS_FS_XATTR_MAX], xb[ZVFS_FS_XATTR_MAX];
	size_t xalen, xblen;
	uint8_t *buf = malloc(1 << 20), *rd = malloc(16 << 20);
	uint64_t bsize = 0;
	ssize_t n = 0;
	int rc, i;

	t_begin("enospc");
	EXPECT(buf && rd, "malloc");
	rc = ft_mount("ram:size=16M", 0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	rc = zvfs_fs_file_create(fs, &INO1, &a, xa, &xalen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	t_fill(buf, 1 << 20, 21, 0);
	EXPECT(ft_pwrite(a, buf, 1 << 20, 0, 0) == 1 << 20, "write a");
	EXPECT(zvfs_file_sync(a, 0) == 0, "sync a");
	rc = zvfs_fs_file_create(fs, &INO2, &b, xb, &xblen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	for (i = 0; i < 1000; i++) {
		n = zvfs_file_write(b, &(struct iovec){buf, 65536}, 1, 0, ZVFS_IO_APPEND, NULL);
		if (n < 0)
			break;
		bsize += (uint64_t)n;
	}
	EXPECT(n == -ENOSPC, "filling: %s after %" PRIu64 " bytes", t_err((int)n), bsize);
	EXPECT(zvfs_file_size(b) == bsize, "size %" PRIu64 " after the failed write, want %" PRIu64,
	       zvfs_file_size(b), bsize);
	rc = zvfs_file_sync(b, 0);
	EXPECT(rc == 0, "sync b after ENOSPC: %s", t_err(rc));
	EXPECT(ft_pread(a, rd, 1 << 20, 0, 0) == 1 << 20 && !memcmp(rd, buf, 1 << 20), "a intact");
	zvfs_file_drop_cache(b, 0, 0);
	EXPECT(ft_pread(b, rd, bsize, 0, 0) == (ssize_t)bsize, "read b");
	for (uint64_t off = 0; off < bsize; off += 65536)
		EXPECT(!memcmp(rd + off, buf, 65536), "b data at %" PRIu64, off);
	/* space comes back with the file */
	EXPECT(zvfs_fs_file_remove(fs, xb, xblen, &INO2) == 0, "remove b");
	EXPECT(zvfs_file_close(b) == 0, "close b");
	b = NULL;
	EXPECT(ft_pwrite(a, buf, 1 << 20, 1 << 20, 0) == 1 << 20, "write after remove");
	EXPECT(zvfs_file_sync(a, 0) == 0, "sync");
out:
	if (a)
		zvfs_file_close(a);
	if (b)
		zvfs_file_close(b);
	if (fs)
		zvfs_fs_unmount(fs);
	free(buf);
	free(rd);
	t_end();
}

/* More files than stay cached: closed ones are evicted (written back) and reopen intact. */
static void check_many_files(void)
{
	enum { NFILES = 1100 };
	struct zvfs_fs *fs = NULL;
	char(*xa)[ZVFS_FS_XATTR_MAX] = calloc(NFILES, ZVFS_FS_XATTR_MAX);
	size_t *xlen = calloc(NFILES, sizeof(*xlen));
	struct zvfs_fs_stats st;
	uint8_t buf[5000], rd[5000];
	int rc, i;

	t_begin("many-files-evicted");
	EXPECT(xa && xlen, "malloc");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	for (i = 0; i < NFILES; i++) {
		struct zvfs_fs_ino ino = {3, (uint64_t)i};
		struct zvfs_file *f;

		rc = zvfs_fs_file_create(fs, &ino, &f, xa[i], &xlen[i]);
		EXPECT(rc == 0, "create %d: %s", i, t_err(rc));
		t_fill(buf, 4992, (uint64_t)i, 0);
		EXPECT(ft_pwrite(f, buf, 5000, 0, 0) == 5000, "write %d", i);
		EXPECT(zvfs_file_close(f) == 0, "close %d", i);
	}
	zvfs_fs_get_stats(fs, &st);
	EXPECT(st.files_open == 0 && st.files_cached > 0 && st.files_cached < NFILES,
	       "cached %" PRIu64 ", open %" PRIu64, st.files_cached, st.files_open);
	for (i = 0; i < NFILES; i++) {
		struct zvfs_fs_ino ino = {3, (uint64_t)i};
		struct zvfs_file *f;

		rc = zvfs_fs_file_open(fs, xa[i], xlen[i], &ino, &f);
		EXPECT(rc == 0, "open %d: %s", i, t_err(rc));
		EXPECT(ft_pread(f, rd, 5000, 0, 0) == 5000 && t_check(rd, 4992, (uint64_t)i, 0) < 0,
		       "data of file %d", i);
		EXPECT(zvfs_file_close(f) == 0, "close");
		EXPECT(zvfs_fs_file_remove(fs, xa[i], xlen[i], &ino) == 0, "remove %d", i);
	}
	zvfs_fs_get_stats(fs, &st);
	EXPECT(st.files_cached == 0 && st.cache_bytes == 0,
	       "left: %" PRIu64 " files, %" PRIu64 " bytes", st.files_cached, st.cache_bytes);
out:
	if (fs)
		zvfs_fs_unmount(fs);
	free(xa);
	free(xlen);
	t_end();
}

/*
 * Dirty pages of closed files are written back when another file's writer is
 * throttled, so that this writer's own pages stay cached instead of being
 * written through one write at a time.
 */
static void check_idle_dirty(void)
{
	enum { NIDLE = 10 };
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *a = NULL, *b = NULL;
	char xa[NIDLE][ZVFS_FS_XATTR_MAX], xb[ZVFS_FS_XATTR_MAX];
	size_t xalen[NIDLE], xblen;
	struct zvfs_fs_stats st;
	uint8_t buf[4096], rd[4096];
	uint64_t wb0;
	int rc;

	t_begin("pressure-idle-dirty-files");
	rc = mount_dev(256 << 10, &fs); /* 64 pages; writers throttle above 32 dirty */
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	for (int k = 0; k < NIDLE; k++) { /* 30 dirty pages in closed files */
		struct zvfs_fs_ino ino = {4, (uint64_t)k};

		rc = zvfs_fs_file_create(fs, &ino, &a, xa[k], &xalen[k]);
		EXPECT(rc == 0, "create: %s", t_err(rc));
		for (int i = 0; i < 3; i++) {
			t_fill(buf, 4096, 40 + (uint64_t)k, (uint64_t)i * 4096);
			EXPECT(ft_pwrite(a, buf, 4096, (uint64_t)i * 4096, 0) == 4096, "write");
		}
		EXPECT(zvfs_file_close(a) == 0, "close");
		a = NULL;
	}
	zvfs_fs_get_stats(fs, &st);
	wb0 = st.writeback;
	rc = zvfs_fs_file_create(fs, &INO2, &b, xb, &xblen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	for (int i = 0; i < 20; i++) {
		t_fill(buf, 4096, 32, (uint64_t)i * 4096);
		EXPECT(ft_pwrite(b, buf, 4096, (uint64_t)i * 4096, 0) == 4096, "write b");
	}
	zvfs_fs_get_stats(fs, &st);
	t_note("write-back during b: %" PRIu64 " pages, dirty %" PRIu64 " KiB", st.writeback - wb0,
	       st.cache_dirty >> 10);
	/* b's own pages stay cached: most of its 20 pages are still dirty */
	wb0 = st.writeback;
	EXPECT(zvfs_file_writeback(b, 0, 0) == 0, "writeback b");
	zvfs_fs_get_stats(fs, &st);
	EXPECT(st.writeback - wb0 >= 10, "b was written through: %" PRIu64 " pages left dirty",
	       st.writeback - wb0);
	EXPECT(st.cache_bytes <= st.cache_limit, "over budget: %" PRIu64, st.cache_bytes);
	for (int k = 0; k < NIDLE; k++) {
		struct zvfs_fs_ino ino = {4, (uint64_t)k};

		rc = zvfs_fs_file_open(fs, xa[k], xalen[k], &ino, &a);
		EXPECT(rc == 0, "reopen: %s", t_err(rc));
		for (int i = 0; i < 3; i++)
			EXPECT(ft_pread(a, rd, 4096, (uint64_t)i * 4096, 0) == 4096 &&
				       t_check(rd, 4096, 40 + (uint64_t)k, (uint64_t)i * 4096) < 0,
			       "idle file %d page %d", k, i);
		zvfs_file_close(a);
		a = NULL;
	}
	for (int i = 0; i < 20; i++)
		EXPECT(ft_pread(b, rd, 4096, (uint64_t)i * 4096, 0) == 4096 &&
			       t_check(rd, 4096, 32, (uint64_t)i * 4096) < 0,
		       "b page %d", i);
out:
	if (a)
		zvfs_file_close(a);
	if (b)
		zvfs_file_close(b);
	if (fs)
		zvfs_fs_unmount(fs);
	t_end();
}

/* ---- image file only ---------------------------------------------------------- */

static void check_persist(void)
{
	struct zvfs_fs *fs = NULL;
	struct zvfs_file *f = NULL;
	char xa[ZVFS_FS_XATTR_MAX], xb[ZVFS_FS_XATTR_MAX], id[37];
	size_t xlen, xblen;
	uint8_t *buf = malloc(1 << 20), *rd = malloc(1 << 20);
	struct zvfs_bs_stats bst;
	uint64_t blobs;
	int rc;

	t_begin("persist-remount");
	EXPECT(buf && rd, "malloc");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	snprintf(id, sizeof(id), "%s", zvfs_fs_store_id(fs));
	rc = zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	t_fill(buf, 1 << 20, 13, 0);
	EXPECT(ft_pwrite(f, buf, 777777, 0, 0) == 777777, "write");
	/* closed but not synced: unmount must persist it */
	EXPECT(zvfs_file_close(f) == 0, "close");
	f = NULL;
	rc = zvfs_fs_file_create(fs, &INO2, &f, xb, &xblen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	EXPECT(ft_pwrite(f, buf, 10, 0, 0) == 10, "write");
	/* removed while open, unmounted without the last close: deleted at unmount */
	EXPECT(zvfs_fs_file_remove(fs, xb, xblen, &INO2) == 0, "remove");
	f = NULL; /* the handle dies with the mount */
	zvfs_bs_get_stats(zvfs_fs_get_bs(fs), &bst);
	blobs = bst.blobs - 1;
	EXPECT(zvfs_fs_unmount(fs) == 0, "unmount");
	fs = NULL;

	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "remount: %s", t_err(rc));
	EXPECT(!strcmp(id, zvfs_fs_store_id(fs)), "same store id");
	zvfs_bs_get_stats(zvfs_fs_get_bs(fs), &bst);
	EXPECT(bst.blobs == blobs, "unlinked blob deleted at unmount");
	EXPECT(!bst.loaded_dirty, "clean unmount");
	rc = zvfs_fs_file_open(fs, xa, xlen, &INO1, &f);
	EXPECT(rc == 0, "open: %s", t_err(rc));
	EXPECT(zvfs_file_size(f) == 777777, "size %" PRIu64, zvfs_file_size(f));
	EXPECT(ft_pread(f, rd, 1 << 20, 0, 0) == 777777 && !memcmp(rd, buf, 777777), "data");
	EXPECT(zvfs_file_close(f) == 0, "close");
	f = NULL;
	/* remove with no in-memory object: after a remount */
	EXPECT(zvfs_fs_unmount(fs) == 0, "unmount");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "remount: %s", t_err(rc));
	EXPECT(zvfs_fs_file_remove(fs, xa, xlen, &INO2) == -ESTALE, "remove wrong ino");
	EXPECT(zvfs_fs_file_remove(fs, xa, xlen, &INO1) == 0, "remove");
	zvfs_bs_get_stats(zvfs_fs_get_bs(fs), &bst);
	EXPECT(bst.blobs == blobs - 1, "deleted");
out:
	if (f)
		zvfs_file_close(f);
	if (fs)
		zvfs_fs_unmount(fs);
	free(buf);
	free(rd);
	t_end();
}

static void check_claim(void)
{
	struct zvfs_fs *fs = NULL;
	int rc, status;
	pid_t pid;

	t_begin("claim");
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	pid = fork();
	EXPECT(pid >= 0, "fork");
	if (pid == 0) {
		struct zvfs_fs *fs2 = NULL;

		zvfs_fs_forget(fs);
		rc = mount_dev(0, &fs2);
		_exit(rc == -EBUSY ? 0 : 1);
	}
	EXPECT(waitpid(pid, &status, 0) == pid, "wait");
	EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child did not get -EBUSY");
	EXPECT(zvfs_fs_unmount(fs) == 0, "unmount");
	fs = NULL;
	/* released: mounts again */
	rc = mount_dev(0, &fs);
	EXPECT(rc == 0, "mount after release: %s", t_err(rc));
	zvfs_fs_unmount(fs);
	fs = NULL;
	/* a fault device claims its inner device */
	{
		char fspec[450];

		snprintf(fspec, sizeof(fspec), "fault:%s", g_img);
		rc = ft_mount(fspec, 0, &fs);
		EXPECT(rc == 0, "mount on fault: %s", t_err(rc));
	}
	pid = fork();
	EXPECT(pid >= 0, "fork");
	if (pid == 0) {
		struct zvfs_fs *fs2 = NULL;

		zvfs_fs_forget(fs);
		rc = ft_mount(g_img, 0, &fs2);
		_exit(rc == -EBUSY ? 0 : 1);
	}
	EXPECT(waitpid(pid, &status, 0) == pid, "wait");
	EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fault: child did not get -EBUSY");
	/* the parent's mount still works after the child's forget */
	{
		struct zvfs_file *f = NULL;
		char xa[ZVFS_FS_XATTR_MAX];
		size_t xlen;

		rc = zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen);
		EXPECT(rc == 0, "create after fork: %s", t_err(rc));
		EXPECT(ft_pwrite(f, "abc", 3, 0, ZVFS_IO_DSYNC) == 3, "write after fork");
		zvfs_fs_file_remove(fs, xa, xlen, &INO1);
		zvfs_file_close(f);
	}
out:
	if (fs)
		zvfs_fs_unmount(fs);
	t_end();
}

static void check_refuse(void)
{
	char spec[400], img[300];
	struct zvfs_fs *fs = NULL;
	struct zvfs_fs_opts o;
	int fd = -1, rc;

	t_begin("refuse-foreign-and-unformatted");
	snprintf(img, sizeof(img), "%s/junk.img", g_dir);
	snprintf(spec, sizeof(spec), "%s,size=16M,create", img);
	fd = open(img, O_CREAT | O_RDWR | O_TRUNC, 0600);
	EXPECT(fd >= 0, "open");
	EXPECT(pwrite(fd, "not a store", 11, 100) == 11, "pwrite");
	close(fd);
	fd = -1;
	rc = ft_mount(spec, 0, &fs);
	EXPECT(rc == -EILSEQ, "junk device: %s", t_err(rc));
	fs = NULL;
	/* blank device without format */
	fd = open(img, O_RDWR | O_TRUNC);
	EXPECT(fd >= 0, "open");
	close(fd);
	fd = -1;
	zvfs_fs_opts_init(&o);
	o.device = spec;
	rc = zvfs_fs_mount(&o, &fs);
	EXPECT(rc == -EILSEQ, "blank without format: %s", t_err(rc));
	fs = NULL;
	/* read-only */
	o.format = true;
	rc = zvfs_fs_mount(&o, &fs);
	EXPECT(rc == 0, "format: %s", t_err(rc));
	zvfs_fs_unmount(fs);
	fs = NULL;
	o.read_only = true;
	o.format = false;
	rc = zvfs_fs_mount(&o, &fs);
	EXPECT(rc == 0, "ro mount: %s", t_err(rc));
	{
		struct zvfs_file *f = NULL;
		char xa[ZVFS_FS_XATTR_MAX];
		size_t xlen;

		EXPECT(zvfs_fs_file_create(fs, &INO1, &f, xa, &xlen) == -EROFS, "ro create");
	}
out:
	if (fd >= 0)
		close(fd);
	if (fs)
		zvfs_fs_unmount(fs);
	unlink(img);
	t_end();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "ram";

	if (!strcmp(mode, "file")) {
		g_file = true;
		if (!ft_tmpdir(g_dir, sizeof(g_dir))) {
			printf("# skip: cannot create a temporary directory\n");
			return T_EXIT_SKIP;
		}
		snprintf(g_img, sizeof(g_img), "%s/store.img", g_dir);
		snprintf(g_spec, sizeof(g_spec), "%s,size=256M,create", g_img);
	} else {
		snprintf(g_spec, sizeof(g_spec), "ram:size=256M");
	}
	check_mount();
	check_rw();
	check_truncate_fallocate_seek();
	check_page_index();
	check_direct();
	check_lifecycle();
	check_idle_dirty();
	if (!g_file) {
		check_enospc();
		check_many_files();
	}
	if (g_file) {
		check_persist();
		check_claim();
		check_refuse();
		ft_rmdir(g_dir, "store.img");
	}
	return t_summary(argv[0]);
}
