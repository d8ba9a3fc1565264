/* SPDX-License-Identifier: MIT */
/*
 * Model-based random tester of the file layer: random writes (cached,
 * direct, append, dsync), reads, truncates, fallocates, syncs, cache drops,
 * close+reopen and unmount+remount on a few files, every result compared
 * with an in-memory model.
 *
 *   test_fs_model SEEDS OPS CACHE_BYTES [SPEC]
 *
 * SPEC defaults to an image file in a fresh /tmp directory (remounts then
 * check persistence); a ram: spec skips the remounts.  The first seed is
 * $ZVFS_TEST_SEED (or time-based) and printed, so a failure can be replayed.
 */
#include <fcntl.h>
#include <linux/falloc.h>

#include "fstest.h"

#define NFILES 3
#define MAXSZ  (3u << 20)

struct mfile {
	uint8_t *data; /* MAXSZ bytes; past size always zero */
	uint64_t size;
	struct zvfs_file *f;
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	struct zvfs_fs_ino ino;
};

static struct mfile g_m[NFILES];
static struct zvfs_fs *g_fs;
static uint64_t g_rng;
static uint8_t *g_buf, *g_rd;
static const char *g_spec;
static bool g_can_remount;
static uint64_t g_cache;
static uint64_t g_cl = 128 << 10;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* Offsets and lengths: often odd, sometimes page- or cluster-aligned. */
static uint64_t rnd_off(uint64_t max)
{
	switch (rnd_below(4)) {
	case 0:
		return rnd_below(max / 4096 + 1) * 4096 % (max + 1);
	case 1:
		return rnd_below(max / g_cl + 1) * g_cl % (max + 1);
	default:
		return rnd_below(max + 1);
	}
}

static uint64_t rnd_len(uint64_t max)
{
	uint64_t l;

	switch (rnd_below(5)) {
	case 0:
		l = rnd_below(16) + 1;
		break;
	case 1:
		l = (rnd_below(8) + 1) * 4096;
		break;
	case 2:
		l = rnd_below(300000) + 1;
		break;
	default:
		l = rnd_below(9000) + 1;
		break;
	}
	return l > max ? max : l;
}

static int verify_file(int i, const char *when)
{
	struct mfile *m = &g_m[i];
	ssize_t n;

	if (zvfs_file_size(m->f) != m->size) {
		t_failf("%s: file %d size %" PRIu64 " model %" PRIu64, when, i,
			zvfs_file_size(m->f), m->size);
		return -1;
	}
	memset(g_rd, 0x5A, MAXSZ);
	n = ft_pread(m->f, g_rd, MAXSZ, 0, 0);
	if (n != (ssize_t)m->size) {
		t_failf("%s: file %d read %zd of %" PRIu64, when, i, n, m->size);
		return -1;
	}
	for (uint64_t k = 0; k < m->size; k++) {
		if (g_rd[k] != m->data[k]) {
			t_failf("%s: file %d byte %" PRIu64 " is %02x, model %02x", when, i, k,
				g_rd[k], m->data[k]);
			return -1;
		}
	}
	return 0;
}

static int open_all(void)
{
	for (int i = 0; i < NFILES; i++) {
		int rc = zvfs_fs_file_open(g_fs, g_m[i].xa, g_m[i].xlen, &g_m[i].ino, &g_m[i].f);

		if (rc < 0) {
			t_failf("reopen file %d: %s", i, t_err(rc));
			return -1;
		}
	}
	return 0;
}

static int do_op(uint64_t opno)
{
	int i = (int)rnd_below(NFILES), rc = 0;
	struct mfile *m = &g_m[i];
	uint64_t op = rnd_below(100), off, len;
	ssize_t n;

	if (op < 35) { /* write */
		unsigned flags = 0, r = (unsigned)rnd_below(20);
		uint64_t end = 0;

		off = rnd_off(MAXSZ - 1);
		len = rnd_len(MAXSZ - off);
		if (r == 0)
			flags |= ZVFS_IO_DSYNC;
		if (r == 1) {
			flags |= ZVFS_IO_APPEND;
			off = m->size;
			if (off + len > MAXSZ)
				len = MAXSZ - off;
			if (!len)
				return 0;
		}
		if (r == 2 || r == 3) { /* direct: 512 multiples, aligned buffer */
			flags |= ZVFS_IO_DIRECT;
			off &= ~511ull;
			len = (len + 511) & ~511ull;
			if (off + len > MAXSZ)
				return 0;
		}
		for (uint64_t k = 0; k < len; k++)
			g_buf[k] = (uint8_t)(rnd() | 1);
		n = zvfs_file_write(m->f, &(struct iovec){g_buf, len}, 1, off, flags, &end);
		if (n != (ssize_t)len || end != off + len) {
			t_failf("op %" PRIu64 ": write(%d, %" PRIu64 ", %" PRIu64 ", %#x) = %zd",
				opno, i, off, len, flags, n);
			return -1;
		}
		memcpy(m->data + off, g_buf, len);
		if (off + len > m->size)
			m->size = off + len;
	} else if (op < 55) { /* read */
		off = rnd_off(MAXSZ);
		len = rnd_len(MAXSZ);
		if (rnd_below(8) == 0) { /* direct */
			off &= ~511ull;
			len = (len + 511) & ~511ull;
			n = ft_pread(m->f, g_rd, len, off, ZVFS_IO_DIRECT);
		} else if (rnd_below(8) == 0) { /* nowait: all cached, or -EAGAIN */
			n = ft_pread(m->f, g_rd, len, off, ZVFS_IO_NOWAIT);
			if (n == -EAGAIN)
				return 0;
		} else {
			n = ft_pread(m->f, g_rd, len, off, 0);
		}
		{
			uint64_t want =
				off >= m->size ? 0 : (m->size - off < len ? m->size - off : len);

			if (n != (ssize_t)want || (want && memcmp(g_rd, m->data + off, want))) {
				t_failf("op %" PRIu64 ": read(%d, %" PRIu64 ", %" PRIu64
					") = %zd, want %" PRIu64 "%s",
					opno, i, off, len, n, want,
					n == (ssize_t)want ? " (data differs)" : "");
				return -1;
			}
		}
	} else if (op < 63) { /* truncate */
		uint64_t ns = rnd_off(MAXSZ);

		rc = zvfs_file_truncate(m->f, ns);
		if (rc < 0) {
			t_failf("op %" PRIu64 ": truncate: %s", opno, t_err(rc));
			return -1;
		}
		if (ns < m->size)
			memset(m->data + ns, 0, m->size - ns);
		m->size = ns;
	} else if (op < 71) { /* fallocate */
		static const int modes[] = {
			0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE};
		int mode = modes[rnd_below(5)];
		uint64_t zend;

		off = rnd_off(MAXSZ - 1);
		len = rnd_len(MAXSZ - off);
		rc = zvfs_file_fallocate(m->f, mode, off, len);
		if (rc < 0) {
			t_failf("op %" PRIu64 ": fallocate(%#x): %s", opno, mode, t_err(rc));
			return -1;
		}
		if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
			zend = off + len < m->size ? off + len : m->size;
			if (off < zend)
				memset(m->data + off, 0, zend - off);
		}
		if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > m->size)
			m->size = off + len;
	} else if (op < 76) { /* sync */
		rc = zvfs_file_sync(m->f, (unsigned)rnd_below(4));
	} else if (op < 80) {
		if (rnd_below(2))
			rc = zvfs_file_writeback(m->f, rnd_off(MAXSZ), rnd_len(MAXSZ));
		else
			rc = zvfs_file_prefetch(m->f, rnd_off(MAXSZ),
						rnd_below(3) ? rnd_len(MAXSZ) : 0);
	} else if (op < 84) {
		rc = zvfs_file_drop_cache(m->f, rnd_off(MAXSZ), rnd_below(2) ? 0 : rnd_len(MAXSZ));
	} else if (op < 88) { /* seek */
		bool hole = rnd_below(2);
		uint64_t res = 0;

		off = rnd_off(MAXSZ);
		rc = zvfs_file_seek(m->f, off, hole, &res);
		if (off >= m->size) {
			if (rc != -ENXIO) {
				t_failf("op %" PRIu64 ": seek past EOF: %s", opno, t_err(rc));
				return -1;
			}
			return 0;
		}
		if (rc == -ENXIO && !hole) {
			for (uint64_t k = off; k < m->size; k++)
				if (m->data[k]) {
					t_failf("op %" PRIu64
						": SEEK_DATA ENXIO but data at %" PRIu64,
						opno, k);
					return -1;
				}
			return 0;
		}
		if (rc < 0 || res < off || res > m->size) {
			t_failf("op %" PRIu64 ": seek(%" PRIu64 ", %d) = %s %" PRIu64, opno, off,
				hole, t_err(rc), res);
			return -1;
		}
		if (!hole) {
			for (uint64_t k = off; k < res; k++)
				if (m->data[k]) {
					t_failf("op %" PRIu64 ": SEEK_DATA %" PRIu64
						" skips data at %" PRIu64,
						opno, res, k);
					return -1;
				}
		} else {
			uint64_t e = (res / g_cl + 1) * g_cl;

			if (e > m->size)
				e = m->size;
			for (uint64_t k = res; k < e; k++)
				if (m->data[k]) {
					t_failf("op %" PRIu64 ": SEEK_HOLE %" PRIu64
						" has data at %" PRIu64,
						opno, res, k);
					return -1;
				}
		}
		rc = 0;
	} else if (op < 93) { /* close + reopen */
		rc = zvfs_file_close(m->f);
		if (rc == 0)
			rc = zvfs_fs_file_open(g_fs, m->xa, m->xlen, &m->ino, &m->f);
	} else if (op < 95 && g_can_remount) { /* unmount + remount */
		rc = zvfs_fs_unmount(g_fs);
		g_fs = NULL;
		if (rc == 0)
			rc = ft_mount(g_spec, g_cache, &g_fs);
		if (rc < 0) {
			t_failf("op %" PRIu64 ": remount: %s", opno, t_err(rc));
			return -1;
		}
		return open_all();
	} else { /* verify one file */
		return verify_file(i, "verify");
	}
	if (rc < 0) {
		t_failf("op %" PRIu64 " (%" PRIu64 "): %s", opno, op, t_err(rc));
		return -1;
	}
	return 0;
}

static void run_seed(uint64_t seed, uint64_t nops)
{
	char name[64];

	snprintf(name, sizeof(name), "seed-%" PRIu64, seed);
	t_begin(name);
	g_rng = t_mix(seed) | 1;
	for (int i = 0; i < NFILES; i++) {
		memset(g_m[i].data, 0, MAXSZ);
		g_m[i].size = 0;
		g_m[i].f = NULL;
	}
	{
		int rc = ft_mount(g_spec, g_cache, &g_fs);

		EXPECT(rc == 0, "mount: %s", t_err(rc));
	}
	for (int i = 0; i < NFILES; i++) {
		int rc;

		g_m[i].ino.dev = 7;
		g_m[i].ino.ino = 1000 + (uint64_t)i;
		rc = zvfs_fs_file_create(g_fs, &g_m[i].ino, &g_m[i].f, g_m[i].xa, &g_m[i].xlen);
		EXPECT(rc == 0, "create: %s", t_err(rc));
	}
	for (uint64_t op = 0; op < nops; op++)
		EXPECT(do_op(op) == 0, "(reported)");
	for (int i = 0; i < NFILES; i++)
		EXPECT(verify_file(i, "final") == 0, "(reported)");
	if (g_can_remount) {
		int rc = zvfs_fs_unmount(g_fs);

		g_fs = NULL;
		EXPECT(rc == 0, "unmount: %s", t_err(rc));
		rc = ft_mount(g_spec, g_cache, &g_fs);
		EXPECT(rc == 0, "remount: %s", t_err(rc));
		EXPECT(open_all() == 0, "(reported)");
		for (int i = 0; i < NFILES; i++)
			EXPECT(verify_file(i, "after remount") == 0, "(reported)");
	}
	/* remove everything: the store must end up with only the super blob */
	for (int i = 0; i < NFILES; i++) {
		int rc = zvfs_fs_file_remove(g_fs, g_m[i].xa, g_m[i].xlen, &g_m[i].ino);

		EXPECT(rc == 0, "remove: %s", t_err(rc));
		EXPECT(zvfs_file_close(g_m[i].f) == 0, "close");
		g_m[i].f = NULL;
	}
	{
		struct zvfs_bs_stats st;

		zvfs_bs_get_stats(zvfs_fs_get_bs(g_fs), &st);
		EXPECT(st.blobs == 1, "blobs left: %" PRIu64, st.blobs);
	}
out:
	if (g_fs)
		zvfs_fs_unmount(g_fs);
	g_fs = NULL;
	t_end();
}

int main(int argc, char **argv)
{
	uint64_t seeds = argc > 1 ? strtoull(argv[1], NULL, 0) : 10;
	uint64_t nops = argc > 2 ? strtoull(argv[2], NULL, 0) : 300;
	char dir[256] = "", img[300], spec[400];
	uint64_t seed0;
	int ret;

	g_cache = argc > 3 ? strtoull(argv[3], NULL, 0) : 0;
	if (argc > 4) {
		g_spec = argv[4];
		g_can_remount = strncmp(g_spec, "ram:", 4) != 0;
	} else {
		if (!ft_tmpdir(dir, sizeof(dir))) {
			printf("# skip: no temporary directory\n");
			return T_EXIT_SKIP;
		}
		snprintf(img, sizeof(img), "%s/model.img", dir);
		snprintf(spec, sizeof(spec), "%s,size=64M,create", img);
		g_spec = spec;
		g_can_remount = true;
	}
	g_buf = aligned_alloc(4096, MAXSZ);
	g_rd = aligned_alloc(4096, MAXSZ);
	for (int i = 0; i < NFILES; i++)
		g_m[i].data = malloc(MAXSZ);
	seed0 = t_seed();
	for (uint64_t s = 0; s < seeds; s++) {
		if (dir[0]) { /* a blank image each seed: mount formats it */
			int fd = open(img, O_CREAT | O_RDWR | O_TRUNC, 0600);

			if (fd >= 0)
				close(fd);
		}
		run_seed(seed0 + s, nops);
	}
	ret = t_summary(argv[0]);
	if (dir[0])
		ft_rmdir(dir, "model.img");
	free(g_buf);
	free(g_rd);
	for (int i = 0; i < NFILES; i++)
		free(g_m[i].data);
	return ret;
}
