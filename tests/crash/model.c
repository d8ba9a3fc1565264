/* SPDX-License-Identifier: MIT */
/*
 * model: a model-based random tester of the POSIX file calls, run through
 * libzvfs.so (tests/crash/run_preloaded.sh sets up the library and a store).
 *
 * One process does random open (O_APPEND, O_TRUNC), close, dup, fcntl
 * F_SETFL O_APPEND, write, pwrite, writev, pwritev, read, pread, readv,
 * preadv, truncate, ftruncate, fallocate (every mode ZVFS supports), fsync,
 * fdatasync, lseek (SET/CUR/END/DATA/HOLE) and fstat on a few files in DIR, and checks every result, every byte read and every size
 * against an in-memory model of the files and of the open file descriptions
 * (dup'ed fds share one offset, separate opens do not).  Each seed is a fresh
 * set of files and a fresh random sequence, so one failing seed replays alone:
 *
 *   model DIR [--first SEED] [--seeds N] [--ops N] [--verbose] [--zvfs]
 *
 * --zvfs demands that the files be ZVFS files (the placeholder xattr is set),
 * so that a library that catches nothing cannot pass on the kernel's files.
 * On a mismatch it prints the seed, the op number and the last ops, and exits
 * 1.  Run without the library on a kernel file system, it checks the model.
 *
 * Map: 1. model state  2. helpers, checks  3. ops  4. one seed  5. main
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- 1. model state ------------------------------------------------------------------------ */

#define NFILES	 3
#define NFDS	 8
#define MAX_SIZE (3u << 20) /* largest file: several 128 KiB..1 MiB clusters */
#define HIST	 24	    /* ops shown on a mismatch */

struct mfile {
	char path[PATH_MAX];
	uint8_t *data; /* MAX_SIZE bytes; bytes at and past size are kept zero */
	uint64_t size;
};

/* An open file description: what dup'ed fds share. */
struct mofd {
	int file;
	uint64_t off;
	bool append;
	int refs;
};

struct mfd {
	int fd; /* -1: free slot */
	int ofd;
};

static struct mfile files[NFILES];
static struct mofd ofds[NFDS];
static struct mfd fds[NFDS];
static uint8_t *buf, *rbuf;
static uint64_t rng;
static unsigned long long cur_seed;
static long cur_op;
static char hist[HIST][160];
static long nhist;
static bool verbose, want_zvfs;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic per seed, independent of the libc */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ---- 2. helpers, checks -------------------------------------------------------------------- */

static __attribute__((format(printf, 1, 2))) void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(hist[nhist % HIST], sizeof(hist[0]), fmt, ap);
	va_end(ap);
	if (verbose)
		fprintf(stderr, "%ld: %s\n", cur_op, hist[nhist % HIST]);
	nhist++;
}

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "MISMATCH seed %llu op %ld: ", cur_seed, cur_op);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nlast ops (oldest first):\n");
	for (long i = nhist > HIST ? nhist - HIST : 0; i < nhist; i++)
		fprintf(stderr, "  %s\n", hist[i % HIST]);
	fprintf(stderr, "replay: model DIR --first %llu --seeds 1 --ops %ld --verbose\n", cur_seed,
		cur_op + 1);
	exit(1);
}

static void fill(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(rnd() >> 56);
}

/* Compare @len bytes read at @off of file @f with the model. */
static void compare(int f, const uint8_t *got, uint64_t off, size_t len, const char *what)
{
	const uint8_t *want = files[f].data + off;

	if (memcmp(got, want, len) == 0)
		return;
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			fail("%s: file %d byte %" PRIu64 ": read 0x%02x, model 0x%02x", what, f,
			     off + i, got[i], want[i]);
}

static void set_size(int f, uint64_t size)
{
	struct mfile *m = &files[f];

	if (size < m->size)
		memset(m->data + size, 0, m->size - size);
	m->size = size;
}

static void model_write(int f, uint64_t off, const uint8_t *p, size_t len)
{
	memcpy(files[f].data + off, p, len);
	if (off + len > files[f].size)
		files[f].size = off + len;
}

static void check_size(int slot)
{
	struct stat st;
	int f = ofds[fds[slot].ofd].file;

	if (fstat(fds[slot].fd, &st) < 0)
		fail("fstat fd %d: %s", fds[slot].fd, strerror(errno));
	if ((uint64_t)st.st_size != files[f].size)
		fail("fstat: file %d size %lld, model %" PRIu64, f, (long long)st.st_size,
		     files[f].size);
}

static void full_check(int f)
{
	struct stat st;
	int fd = open(files[f].path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		fail("open %s for the full check: %s", files[f].path, strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != files[f].size)
		fail("full check: file %d size %lld, model %" PRIu64, f, (long long)st.st_size,
		     files[f].size);
	n = pread(fd, rbuf, MAX_SIZE, 0);
	if (n != (ssize_t)files[f].size)
		fail("full check: pread of file %d returned %zd (%s), model size %" PRIu64, f, n,
		     n < 0 ? strerror(errno) : "short", files[f].size);
	compare(f, rbuf, 0, (size_t)n, "full check");
	close(fd);
}

static int pick_fd(void)
{
	int open_slots[NFDS], n = 0;

	for (int i = 0; i < NFDS; i++)
		if (fds[i].fd >= 0)
			open_slots[n++] = i;
	return n ? open_slots[below((uint64_t)n)] : -1;
}

static int free_slot(void)
{
	for (int i = 0; i < NFDS; i++)
		if (fds[i].fd < 0)
			return i;
	return -1;
}

static int free_ofd(void)
{
	for (int i = 0; i < NFDS; i++)
		if (ofds[i].refs == 0)
			return i;
	return -1;
}

/* A length: mostly small, sometimes up to 256 KiB. */
static size_t rnd_len(void)
{
	uint64_t r = below(100);

	if (r < 60)
		return 1 + below(4096);
	if (r < 90)
		return 1 + below(32768);
	return 1 + below(256 << 10);
}

/* An offset for @len bytes: near the end of the file mostly, anywhere sometimes. */
static uint64_t rnd_off(int f, size_t len)
{
	uint64_t lim = MAX_SIZE - len, r = below(100), off;

	if (r < 50)
		off = below(files[f].size + 1);
	else if (r < 75)
		off = files[f].size + below(8192);
	else if (r < 85)
		off = below(lim + 1) & ~4095ull; /* page aligned */
	else
		off = below(lim + 1);
	return off > lim ? lim : off;
}

/* ---- 3. ops -------------------------------------------------------------------------------- */

static void op_open(void)
{
	int slot = free_slot(), o = free_ofd(), f = (int)below(NFILES), flags = O_RDWR;
	bool app = below(4) == 0, trunc = below(20) == 0;

	if (slot < 0 || o < 0)
		return;
	flags |= (app ? O_APPEND : 0) | (trunc ? O_TRUNC : 0);
	note("open file %d%s%s", f, app ? " O_APPEND" : "", trunc ? " O_TRUNC" : "");
	fds[slot].fd = open(files[f].path, flags);
	if (fds[slot].fd < 0)
		fail("open %s: %s", files[f].path, strerror(errno));
	fds[slot].ofd = o;
	ofds[o] = (struct mofd){.file = f, .off = 0, .append = app, .refs = 1};
	if (trunc)
		set_size(f, 0);
	check_size(slot);
}

static void op_close(int slot)
{
	note("close fd %d", fds[slot].fd);
	if (close(fds[slot].fd) < 0)
		fail("close fd %d: %s", fds[slot].fd, strerror(errno));
	ofds[fds[slot].ofd].refs--;
	fds[slot].fd = -1;
}

static void op_dup(int slot)
{
	int s2 = free_slot();

	if (s2 < 0)
		return;
	note("dup fd %d", fds[slot].fd);
	fds[s2].fd = dup(fds[slot].fd);
	if (fds[s2].fd < 0)
		fail("dup: %s", strerror(errno));
	fds[s2].ofd = fds[slot].ofd;
	ofds[fds[slot].ofd].refs++;
}

/* Split @len bytes at @p into 3 iovecs (some possibly empty). */
static int split_iov(uint8_t *p, size_t len, struct iovec iov[3])
{
	size_t a = below(len + 1), b = below(len - a + 1);

	iov[0] = (struct iovec){p, a};
	iov[1] = (struct iovec){p + a, b};
	iov[2] = (struct iovec){p + a + b, len - a - b};
	return 3;
}

/* fcntl(F_SETFL) flips O_APPEND of the open file description: dup'ed fds see it too. */
static void op_setfl(int slot)
{
	struct mofd *o = &ofds[fds[slot].ofd];
	int fl = fcntl(fds[slot].fd, F_GETFL);

	note("fcntl fd %d F_SETFL %s O_APPEND", fds[slot].fd, o->append ? "clear" : "set");
	if (fl < 0 || !!(fl & O_APPEND) != o->append)
		fail("F_GETFL: 0x%x (%s), model O_APPEND %d", fl,
		     fl < 0 ? strerror(errno) : "flags", o->append);
	if (fcntl(fds[slot].fd, F_SETFL, fl ^ O_APPEND) < 0)
		fail("F_SETFL: %s", strerror(errno));
	o->append = !o->append;
}

static void op_write(int slot, bool positional)
{
	struct mofd *o = &ofds[fds[slot].ofd];
	int f = o->file;
	size_t len = rnd_len();
	uint64_t off;
	ssize_t n;
	bool vec;

	if (positional && o->append)
		positional = false; /* Linux pwrite on O_APPEND appends: not modelled */
	off = positional ? rnd_off(f, len) : o->append ? files[f].size : o->off;
	if (off + len > MAX_SIZE) {
		if (o->append || off >= MAX_SIZE)
			return;
		len = MAX_SIZE - off;
	}
	fill(buf, len);
	vec = below(4) == 0;
	note("%s%s fd %d file %d off %" PRIu64 " len %zu%s", positional ? "pwrite" : "write",
	     vec ? "v" : "", fds[slot].fd, f, off, len, o->append ? " (append)" : "");
	if (vec) {
		struct iovec iov[3];
		int cnt = split_iov(buf, len, iov);

		n = positional ? pwritev(fds[slot].fd, iov, cnt, (off_t)off)
			       : writev(fds[slot].fd, iov, cnt);
	} else {
		n = positional ? pwrite(fds[slot].fd, buf, len, (off_t)off)
			       : write(fds[slot].fd, buf, len);
	}
	if (n != (ssize_t)len)
		fail("write returned %zd (%s), want %zu", n, n < 0 ? strerror(errno) : "short",
		     len);
	model_write(f, off, buf, len);
	if (!positional)
		o->off = off + len;
	check_size(slot);
}

static void op_read(int slot, bool positional)
{
	struct mofd *o = &ofds[fds[slot].ofd];
	int f = o->file;
	size_t len = rnd_len(), want;
	uint64_t off = positional ? below(files[f].size + 4096) : o->off;
	ssize_t n;
	bool vec;

	if (off > MAX_SIZE)
		off = MAX_SIZE;
	if (len > MAX_SIZE - off)
		len = MAX_SIZE - off;
	if (len == 0)
		return;
	want = off >= files[f].size
		       ? 0
		       : (size_t)(files[f].size - off < len ? files[f].size - off : len);
	vec = below(4) == 0;
	note("%s%s fd %d file %d off %" PRIu64 " len %zu (expect %zu)",
	     positional ? "pread" : "read", vec ? "v" : "", fds[slot].fd, f, off, len, want);
	if (vec) {
		struct iovec iov[3];
		int cnt = split_iov(rbuf, len, iov);

		n = positional ? preadv(fds[slot].fd, iov, cnt, (off_t)off)
			       : readv(fds[slot].fd, iov, cnt);
	} else {
		n = positional ? pread(fds[slot].fd, rbuf, len, (off_t)off)
			       : read(fds[slot].fd, rbuf, len);
	}
	if (n != (ssize_t)want)
		fail("read returned %zd (%s), model %zu", n, n < 0 ? strerror(errno) : "count",
		     want);
	compare(f, rbuf, off, want, positional ? "pread" : "read");
	if (!positional)
		o->off = off + want;
}

static uint64_t rnd_size(int f)
{
	uint64_t r = below(100), s;

	if (r < 40)
		s = below(files[f].size + 1);
	else if (r < 80)
		s = files[f].size + below(256 << 10);
	else
		s = below(MAX_SIZE + 1);
	return s > MAX_SIZE ? MAX_SIZE : s;
}

static void op_truncate(int slot, bool by_path)
{
	int f = ofds[fds[slot].ofd].file;
	uint64_t s = rnd_size(f);

	note("%s file %d to %" PRIu64 " (was %" PRIu64 ")", by_path ? "truncate" : "ftruncate", f,
	     s, files[f].size);
	if ((by_path ? truncate(files[f].path, (off_t)s) : ftruncate(fds[slot].fd, (off_t)s)) < 0)
		fail("truncate: %s", strerror(errno));
	set_size(f, s);
	check_size(slot);
}

static void op_fallocate(int slot)
{
	static const int modes[] = {
		0,
		FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE,
		FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
	};
	static const char *const names[] = {"0", "KEEP_SIZE", "PUNCH_HOLE|KEEP_SIZE", "ZERO_RANGE",
					    "ZERO_RANGE|KEEP_SIZE"};
	int k = (int)below(5), mode = modes[k], f = ofds[fds[slot].ofd].file;
	size_t len = rnd_len();
	uint64_t off = rnd_off(f, len), end;

	if (below(50) == 0) {
		/* len 0 is EINVAL for every mode (the kernel checks it first) */
		note("fallocate fd %d mode %s len 0", fds[slot].fd, names[k]);
		if (fallocate(fds[slot].fd, mode, (off_t)off, 0) != -1 || errno != EINVAL)
			fail("fallocate len 0: want EINVAL, got %s", strerror(errno));
		return;
	}
	note("fallocate fd %d file %d mode %s off %" PRIu64 " len %zu (size %" PRIu64 ")",
	     fds[slot].fd, f, names[k], off, len, files[f].size);
	if (fallocate(fds[slot].fd, mode, (off_t)off, (off_t)len) < 0)
		fail("fallocate mode %s: %s", names[k], strerror(errno));
	end = off + len;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		uint64_t zend = end < files[f].size ? end : files[f].size;

		if (off < zend)
			memset(files[f].data + off, 0, zend - off);
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > files[f].size)
		files[f].size = end;
	check_size(slot);
}

static void op_sync(int slot)
{
	bool data = below(2);

	note("%s fd %d", data ? "fdatasync" : "fsync", fds[slot].fd);
	if ((data ? fdatasync(fds[slot].fd) : fsync(fds[slot].fd)) < 0)
		fail("sync: %s", strerror(errno));
}

static bool zeros(int f, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		if (files[f].data[i])
			return false;
	return true;
}

static void op_seek(int slot)
{
	struct mofd *o = &ofds[fds[slot].ofd];
	int f = o->file, k = (int)below(5);
	static const int whence[] = {SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE};
	static const char *const names[] = {"SET", "CUR", "END", "DATA", "HOLE"};
	uint64_t size = files[f].size;
	int64_t arg;
	off_t r;

	if (k == 1)
		arg = (int64_t)below(8192) - 4096;
	else if (k == 2)
		arg = -(int64_t)below(size + 1);
	else
		arg = (int64_t)below(size + 4096);
	if (k == 1 && (int64_t)o->off + arg < 0)
		arg = 0;
	note("lseek fd %d file %d %" PRId64 " SEEK_%s (offset %" PRIu64 ", size %" PRIu64 ")",
	     fds[slot].fd, f, arg, names[k], o->off, size);
	r = lseek(fds[slot].fd, (off_t)arg, whence[k]);
	if (k < 3) {
		int64_t want = k == 0 ? arg : k == 1 ? (int64_t)o->off + arg : (int64_t)size + arg;

		if (r != want)
			fail("lseek returned %lld (%s), want %" PRId64, (long long)r,
			     r < 0 ? strerror(errno) : "value", want);
		o->off = (uint64_t)r;
		return;
	}
	if ((uint64_t)arg >= size) {
		if (r != -1 || errno != ENXIO)
			fail("lseek SEEK_%s at/after the end: want ENXIO, got %lld", names[k],
			     (long long)r);
		return;
	}
	if (r < 0) {
		/* ENXIO from SEEK_DATA: no data after arg, so everything reads zero */
		if (k == 3 && errno == ENXIO && zeros(f, (uint64_t)arg, size))
			return;
		fail("lseek SEEK_%s: %s", names[k], strerror(errno));
	}
	if (r < arg || (uint64_t)r > size || (k == 3 && (uint64_t)r == size))
		fail("lseek SEEK_%s from %" PRId64 " returned %lld, size %" PRIu64, names[k], arg,
		     (long long)r, size);
	if (k == 3 && !zeros(f, (uint64_t)arg, (uint64_t)r))
		fail("SEEK_DATA skipped data: bytes in [%" PRId64 ", %lld) are not zero", arg,
		     (long long)r);
	if (k == 4 && (uint64_t)r < size && files[f].data[r] != 0)
		fail("SEEK_HOLE returned %lld but the byte there is 0x%02x", (long long)r,
		     files[f].data[r]);
	o->off = (uint64_t)r;
}

/* ---- 4. one seed --------------------------------------------------------------------------- */

static void run_seed(const char *dir, unsigned long long seed, long nops)
{
	cur_seed = seed;
	rng = seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
	if (!rng)
		rng = 1;
	nhist = 0;
	for (int f = 0; f < NFILES; f++) {
		int fd;

		snprintf(files[f].path, sizeof(files[f].path), "%s/s%llu-f%d", dir, seed, f);
		memset(files[f].data, 0, MAX_SIZE);
		files[f].size = 0;
		fd = open(files[f].path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			fail("create %s: %s", files[f].path, strerror(errno));
		close(fd);
		if (want_zvfs && lgetxattr(files[f].path, "user.zvfs.blob_id", NULL, 0) <= 0)
			fail("%s is not a ZVFS file (no user.zvfs.blob_id xattr: %s)",
			     files[f].path, strerror(errno));
	}
	for (int i = 0; i < NFDS; i++) {
		fds[i].fd = -1;
		ofds[i].refs = 0;
	}
	for (cur_op = 0; cur_op < nops; cur_op++) {
		int slot = pick_fd();
		uint64_t r = below(1000);

		if (slot < 0 || r < 40) {
			op_open();
			continue;
		}
		if (r < 80)
			op_close(slot);
		else if (r < 100)
			op_dup(slot);
		else if (r < 110)
			op_setfl(slot);
		else if (r < 300)
			op_write(slot, false);
		else if (r < 450)
			op_write(slot, true);
		else if (r < 560)
			op_read(slot, false);
		else if (r < 700)
			op_read(slot, true);
		else if (r < 760)
			op_truncate(slot, below(3) == 0);
		else if (r < 840)
			op_fallocate(slot);
		else if (r < 850)
			op_sync(slot);
		else if (r < 950)
			op_seek(slot);
		else if (r < 990)
			check_size(slot);
		else
			full_check(ofds[fds[slot].ofd].file);
	}
	for (int i = 0; i < NFDS; i++)
		if (fds[i].fd >= 0)
			op_close(i);
	for (int f = 0; f < NFILES; f++) {
		full_check(f);
		if (unlink(files[f].path) < 0)
			fail("unlink %s: %s", files[f].path, strerror(errno));
	}
}

/* ---- 5. main ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	unsigned long long first = 1, nseeds = 50;
	long nops = 2000;
	const char *dir = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--first") == 0 && i + 1 < argc)
			first = strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
			nseeds = strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc)
			nops = strtol(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--verbose") == 0)
			verbose = true;
		else if (strcmp(argv[i], "--zvfs") == 0)
			want_zvfs = true;
		else if (!dir && argv[i][0] != '-')
			dir = argv[i];
		else {
			fprintf(stderr, "usage: model DIR [--first SEED] [--seeds N] [--ops N] "
					"[--verbose] [--zvfs]\n");
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "usage: model DIR [--first SEED] [--seeds N] [--ops N]\n");
		return 2;
	}
	buf = malloc(MAX_SIZE);
	rbuf = malloc(MAX_SIZE);
	for (int f = 0; f < NFILES; f++)
		files[f].data = calloc(1, MAX_SIZE);
	if (!buf || !rbuf || !files[0].data || !files[1].data || !files[2].data) {
		fprintf(stderr, "model: out of memory\n");
		return 1;
	}
	for (unsigned long long s = first; s < first + nseeds; s++)
		run_seed(dir, s, nops);
	printf("model: %llu seeds x %ld ops from seed %llu: no mismatch\n", nseeds, nops, first);
	for (int f = 0; f < NFILES; f++)
		free(files[f].data);
	free(buf);
	free(rbuf);
	return 0;
}
