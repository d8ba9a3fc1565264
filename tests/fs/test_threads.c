/* SPDX-License-Identifier: MIT */
/*
 * Threads on the file layer:
 *   disjoint   8 threads pwrite disjoint, interleaved odd-sized ranges of one file
 *   append     4 threads append records; none may overlap or tear
 *   pressure   4 threads, a file each, a tiny cache: eviction across files
 *   openclose  threads open/close one file while another reads it
 *
 *   test_fs_threads [SPEC|file]   (default ram:size=256M; file: an image in /tmp)
 */
#include <pthread.h>

#include "fstest.h"

#define NT 8

static struct zvfs_fs *g_fs;
static struct zvfs_file *g_file;
static _Atomic int g_fail;

struct targ {
	int id;
	struct zvfs_file *f;
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	struct zvfs_fs_ino ino;
};

/* ---- disjoint ------------------------------------------------------------------ */

#define STRIPE 5003u
#define ROUNDS 60u

static void *disjoint_worker(void *arg)
{
	struct targ *a = arg;
	uint8_t buf[STRIPE];

	for (uint32_t r = 0; r < ROUNDS; r++) {
		uint64_t off = ((uint64_t)r * NT + (uint64_t)a->id) * STRIPE;

		t_fill(buf, STRIPE / 8 * 8, 100 + (uint64_t)a->id, off);
		memset(buf + STRIPE / 8 * 8, a->id + 1, STRIPE % 8);
		if (ft_pwrite(g_file, buf, STRIPE, off, 0) != STRIPE)
			g_fail = 1;
		if (r % 7 == 0 && zvfs_file_sync(g_file, 0) < 0)
			g_fail = 1;
	}
	return NULL;
}

static void check_disjoint(void)
{
	pthread_t th[NT];
	struct targ a[NT];
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	struct zvfs_fs_ino ino = {1, 1};
	uint64_t total = (uint64_t)NT * ROUNDS * STRIPE;
	uint8_t *rd = malloc(total);
	int rc;

	t_begin("disjoint-pwrite");
	g_fail = 0;
	EXPECT(rd, "malloc");
	rc = zvfs_fs_file_create(g_fs, &ino, &g_file, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	for (int i = 0; i < NT; i++) {
		a[i].id = i;
		pthread_create(&th[i], NULL, disjoint_worker, &a[i]);
	}
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	EXPECT(!g_fail, "a write failed");
	EXPECT(zvfs_file_size(g_file) == total, "size");
	for (int pass = 0; pass < 2; pass++) {
		EXPECT(ft_pread(g_file, rd, total, 0, 0) == (ssize_t)total, "read");
		for (uint64_t s = 0; s < (uint64_t)NT * ROUNDS; s++) {
			int id = (int)(s % NT);
			uint64_t off = s * STRIPE;

			EXPECT(t_check(rd + off, STRIPE / 8 * 8, 100 + (uint64_t)id, off) < 0,
			       "stripe %" PRIu64 " (pass %d)", s, pass);
		}
		/* second pass from the device */
		zvfs_file_sync(g_file, 0);
		zvfs_file_drop_cache(g_file, 0, 0);
	}
out:
	if (g_file)
		zvfs_file_close(g_file);
	g_file = NULL;
	free(rd);
	t_end();
}

/* ---- append ------------------------------------------------------------------- */

#define NAPP 4
#define RECS 400

/* record: [u32 len][u32 thread][u32 seq][fill byte ...], len 16..2000 */
static void *append_worker(void *arg)
{
	struct targ *a = arg;
	uint8_t buf[2048];
	uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(a->id + 1);

	for (uint32_t s = 0; s < RECS; s++) {
		uint32_t len, tid = (uint32_t)a->id;
		uint64_t end = 0;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		len = 16 + (uint32_t)(rng % 1985);
		memcpy(buf, &len, 4);
		memcpy(buf + 4, &tid, 4);
		memcpy(buf + 8, &s, 4);
		memset(buf + 12, (int)(tid * 31 + s) & 0xff, len - 12);
		if (zvfs_file_write(g_file, &(struct iovec){buf, len}, 1, 0,
				    ZVFS_IO_APPEND | (s % 50 == 0 ? ZVFS_IO_DSYNC : 0),
				    &end) != (ssize_t)len)
			g_fail = 1;
	}
	return NULL;
}

static void check_append(void)
{
	pthread_t th[NAPP];
	struct targ a[NAPP];
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	struct zvfs_fs_ino ino = {1, 2};
	uint32_t next[NAPP] = {0};
	uint8_t *rd = NULL;
	uint64_t size, pos = 0;
	int rc;

	t_begin("concurrent-append");
	g_fail = 0;
	rc = zvfs_fs_file_create(g_fs, &ino, &g_file, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	for (int i = 0; i < NAPP; i++) {
		a[i].id = i;
		pthread_create(&th[i], NULL, append_worker, &a[i]);
	}
	for (int i = 0; i < NAPP; i++)
		pthread_join(th[i], NULL);
	EXPECT(!g_fail, "an append failed");
	size = zvfs_file_size(g_file);
	rd = malloc(size);
	EXPECT(rd && ft_pread(g_file, rd, size, 0, 0) == (ssize_t)size, "read");
	while (pos < size) {
		uint32_t len, tid, seq;

		EXPECT(size - pos >= 12, "torn header at %" PRIu64, pos);
		memcpy(&len, rd + pos, 4);
		memcpy(&tid, rd + pos + 4, 4);
		memcpy(&seq, rd + pos + 8, 4);
		EXPECT(len >= 16 && len <= 2000 && tid < NAPP && pos + len <= size,
		       "bad record at %" PRIu64, pos);
		EXPECT(seq == next[tid], "thread %u: seq %u, want %u", tid, seq, next[tid]);
		for (uint32_t k = 12; k < len; k++)
			EXPECT(rd[pos + k] == ((tid * 31 + seq) & 0xff), "record torn at %" PRIu64,
			       pos + k);
		next[tid]++;
		pos += len;
	}
	for (int i = 0; i < NAPP; i++)
		EXPECT(next[i] == RECS, "thread %d: %u records", i, next[i]);
out:
	if (g_file)
		zvfs_file_close(g_file);
	g_file = NULL;
	free(rd);
	t_end();
}

/* ---- pressure ----------------------------------------------------------------- */

#define PSIZE (1u << 20)

static void *pressure_worker(void *arg)
{
	struct targ *a = arg;
	uint8_t *buf = malloc(PSIZE), *rd = malloc(PSIZE);
	uint64_t rng = 77 + (uint64_t)a->id;

	if (!buf || !rd) {
		g_fail = 1;
		goto out;
	}
	memset(buf, 0, PSIZE);
	for (int r = 0; r < 300 && !g_fail; r++) {
		uint64_t off, len;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		off = rng % PSIZE;
		len = 1 + (rng >> 32) % 20000;
		if (off + len > PSIZE)
			len = PSIZE - off;
		memset(buf + off, (int)(r + 1), len);
		if (ft_pwrite(a->f, buf + off, len, off, 0) != (ssize_t)len)
			g_fail = 1;
		if (r % 25 == 24) {
			uint64_t sz = zvfs_file_size(a->f);

			if (ft_pread(a->f, rd, PSIZE, 0, 0) != (ssize_t)sz || memcmp(rd, buf, sz))
				g_fail = 2;
		}
	}
out:
	free(buf);
	free(rd);
	return NULL;
}

static void check_pressure(const char *spec)
{
	struct zvfs_fs *fs = NULL;
	pthread_t th[4];
	struct targ a[4];
	struct zvfs_fs_stats st;
	int rc;

	t_begin("pressure-across-files");
	g_fail = 0;
	rc = ft_mount(spec, 96 << 10, &fs); /* 24 pages for 4 files */
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	for (int i = 0; i < 4; i++) {
		a[i].id = i;
		a[i].ino.dev = 2;
		a[i].ino.ino = (uint64_t)i;
		rc = zvfs_fs_file_create(fs, &a[i].ino, &a[i].f, a[i].xa, &a[i].xlen);
		EXPECT(rc == 0, "create: %s", t_err(rc));
	}
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, pressure_worker, &a[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	EXPECT(!g_fail, "worker failed (%d)", g_fail);
	zvfs_fs_get_stats(fs, &st);
	EXPECT(st.writeback > 0 && st.cache_misses > 0, "no pressure seen");
	t_note("cache held %" PRIu64 " KiB of limit %" PRIu64 " KiB", st.cache_bytes >> 10,
	       st.cache_limit >> 10);
	for (int i = 0; i < 4; i++)
		EXPECT(zvfs_file_close(a[i].f) == 0, "close");
out:
	if (fs)
		zvfs_fs_unmount(fs);
	t_end();
}

/* ---- direct I/O in parallel, mixed with cached access ----------------------------- */

#define DREG (1u << 20)

static void *direct_worker(void *arg)
{
	struct targ *a = arg;
	uint8_t *w = aligned_alloc(4096, 16384), *r = aligned_alloc(4096, 16384);
	uint64_t base = (uint64_t)a->id * DREG;

	if (!w || !r) {
		g_fail = 1;
		goto out;
	}
	for (uint32_t k = 0; k < 300 && !g_fail; k++) {
		uint64_t off = base + (uint64_t)(k * 7919u % (DREG / 4096 - 4)) * 4096;
		unsigned flags = k % 3 == 0 ? 0 : ZVFS_IO_DIRECT;

		t_fill(w, 16384, 1000 + k, off);
		if (ft_pwrite(g_file, w, 16384, off, flags) != 16384) {
			g_fail = 1;
			break;
		}
		/* read back both ways */
		if (ft_pread(g_file, r, 16384, off, ZVFS_IO_DIRECT) != 16384 ||
		    t_check(r, 16384, 1000 + k, off) >= 0)
			g_fail = 2;
		if (ft_pread(g_file, r, 16384, off, 0) != 16384 ||
		    t_check(r, 16384, 1000 + k, off) >= 0)
			g_fail = 3;
	}
out:
	free(w);
	free(r);
	return NULL;
}

static void check_direct_parallel(void)
{
	pthread_t th[4];
	struct targ a[4];
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	struct zvfs_fs_ino ino = {1, 4};
	int rc;

	t_begin("direct-parallel");
	g_fail = 0;
	rc = zvfs_fs_file_create(g_fs, &ino, &g_file, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	EXPECT(zvfs_file_truncate(g_file, 4 * DREG) == 0, "truncate");
	for (int i = 0; i < 4; i++) {
		a[i].id = i;
		pthread_create(&th[i], NULL, direct_worker, &a[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	EXPECT(!g_fail, "worker failed (%d)", g_fail);
	EXPECT(zvfs_file_size(g_file) == 4 * DREG, "size");
out:
	if (g_file)
		zvfs_file_close(g_file);
	g_file = NULL;
	t_end();
}

/* ---- reads never tear writes, also while pages load in parallel --------------------- */

#define NREC 64
#define REC  16384u

static _Atomic int g_stop;

static void *atomic_writer(void *arg)
{
	struct targ *a = arg;
	uint8_t *buf = malloc(2 * REC);
	uint64_t rng = 0xABCDEF + (uint64_t)a->id;

	for (int k = 0; k < 1500 && buf && !g_fail; k++) {
		uint64_t r, nrec;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		r = rng % (NREC - 1);
		nrec = 1 + (rng >> 40) % 2;
		memset(buf, (int)(rng >> 20) & 0xff, nrec * REC);
		if (ft_pwrite(g_file, buf, nrec * REC, r * REC, 0) != (ssize_t)(nrec * REC))
			g_fail = 1;
		if (k % 64 == 0)
			zvfs_file_writeback(g_file, 0, 0);
	}
	free(buf);
	return NULL;
}

static void *atomic_reader(void *arg)
{
	struct targ *a = arg;
	uint8_t *buf = malloc(3 * REC);
	uint64_t rng = 0x123457 + (uint64_t)a->id;

	while (buf && !g_stop && !g_fail) {
		uint64_t r;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		r = rng % NREC;
		if (rng % 16 == 0)
			zvfs_file_drop_cache(g_file, 0, 0);
		if (ft_pread(g_file, buf, REC, r * REC, 0) != REC) {
			g_fail = 2;
			break;
		}
		for (uint32_t k = 1; k < REC; k++) {
			if (buf[k] != buf[0]) {
				g_fail = 3;
				t_note("record %" PRIu64 " torn at %u: %02x vs %02x", r, k, buf[k],
				       buf[0]);
				break;
			}
		}
	}
	free(buf);
	return NULL;
}

static void check_atomic_rw(const char *spec)
{
	struct zvfs_fs *fs = NULL;
	pthread_t w[2], r[2];
	struct targ a[4];
	char xa[ZVFS_FS_XATTR_MAX];
	size_t xlen;
	struct zvfs_fs_ino ino = {5, 5};
	struct zvfs_fs_stats st;
	int rc;

	t_begin("reads-do-not-tear-writes");
	g_fail = 0;
	g_stop = 0;
	rc = ft_mount(spec, 512 << 10, &fs); /* half the file fits */
	EXPECT(rc == 0, "mount: %s", t_err(rc));
	rc = zvfs_fs_file_create(fs, &ino, &g_file, xa, &xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	EXPECT(zvfs_file_truncate(g_file, NREC * REC) == 0, "truncate");
	for (int i = 0; i < 4; i++)
		a[i].id = i;
	for (int i = 0; i < 2; i++) {
		pthread_create(&r[i], NULL, atomic_reader, &a[i]);
		pthread_create(&w[i], NULL, atomic_writer, &a[2 + i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(w[i], NULL);
	g_stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(r[i], NULL);
	EXPECT(!g_fail, "failed (%d)", g_fail);
	zvfs_fs_get_stats(fs, &st);
	t_note("hits %" PRIu64 ", misses %" PRIu64, st.cache_hits, st.cache_misses);
	EXPECT(st.cache_misses > 0, "no misses");
out:
	if (g_file)
		zvfs_file_close(g_file);
	g_file = NULL;
	if (fs)
		zvfs_fs_unmount(fs);
	t_end();
}

/* ---- open/close ------------------------------------------------------------------ */

static struct targ g_oc;

static void *openclose_worker(void *arg)
{
	(void)arg;
	for (int r = 0; r < 2000; r++) {
		struct zvfs_file *f = NULL;
		uint8_t b[16];

		if (zvfs_fs_file_open(g_fs, g_oc.xa, g_oc.xlen, &g_oc.ino, &f) < 0 || f != g_oc.f) {
			g_fail = 1;
			return NULL;
		}
		if (ft_pread(f, b, 16, 0, 0) != 16 || memcmp(b, "0123456789abcdef", 16))
			g_fail = 1;
		if (zvfs_file_close(f) < 0)
			g_fail = 1;
	}
	return NULL;
}

static void check_openclose(void)
{
	pthread_t th[4];
	int rc;

	t_begin("open-close-race");
	g_fail = 0;
	g_oc.ino.dev = 3;
	g_oc.ino.ino = 3;
	rc = zvfs_fs_file_create(g_fs, &g_oc.ino, &g_oc.f, g_oc.xa, &g_oc.xlen);
	EXPECT(rc == 0, "create: %s", t_err(rc));
	EXPECT(ft_pwrite(g_oc.f, "0123456789abcdef", 16, 0, 0) == 16, "write");
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, openclose_worker, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	EXPECT(!g_fail, "worker failed");
	EXPECT(zvfs_fs_file_remove(g_fs, g_oc.xa, g_oc.xlen, &g_oc.ino) == 0, "remove");
	EXPECT(zvfs_file_close(g_oc.f) == 0, "close");
out:
	t_end();
}

int main(int argc, char **argv)
{
	const char *spec = argc > 1 ? argv[1] : "ram:size=256M";
	char dir[256] = "", img[300], fspec[400];
	int rc, ret;

	if (!strcmp(spec, "file")) { /* an image file in a fresh temporary directory */
		if (!ft_tmpdir(dir, sizeof(dir))) {
			printf("# skip: no temporary directory\n");
			return T_EXIT_SKIP;
		}
		snprintf(img, sizeof(img), "%s/threads.img", dir);
		snprintf(fspec, sizeof(fspec), "%s,size=256M,create", img);
		spec = fspec;
	}

	rc = ft_mount(spec, 0, &g_fs);
	if (rc < 0) {
		printf("not ok - mount %s: %s\n", spec, t_err(rc));
		return 1;
	}
	check_disjoint();
	check_append();
	check_openclose();
	check_direct_parallel();
	zvfs_fs_unmount(g_fs);
	check_pressure(spec);
	check_atomic_rw(spec);
	ret = t_summary(argv[0]);
	if (dir[0])
		ft_rmdir(dir, "threads.img");
	return ret;
}
