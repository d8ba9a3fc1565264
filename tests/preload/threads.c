/* SPDX-License-Identifier: MIT */
/*
 * threads - POSIX.md's data semantics under threads of one process (direct
 * mode: one process holds the store).  Run under libzvfs.so by
 * test_threads.sh.
 *
 *   1. O_APPEND is atomic: 8 threads append records through their own fds
 *      (and 2 more through one shared fd); every record lands whole, once.
 *   2. Concurrent pwrite to disjoint ranges loses nothing: 8 threads write
 *      interleaved stripes of odd sizes of one file.
 *   3. Offsets shared through dup: threads write fixed records through dup'ed
 *      fds of one description; no record overwrites another.
 *   4. Large offsets: pwrite beyond 4 GiB and read back; holes read zero.
 *
 * usage: threads DIR      prints "ok NAME" / "FAIL NAME: why", exit 0 if all passed
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NT = 8, RECS = 400, REC = 100, STRIPE = 3001, STRIPES = 64 };

static const char *dir;
static int nfailed;

static void check(const char *name, bool cond, const char *why)
{
	if (cond) {
		printf("ok %s\n", name);
	} else {
		printf("FAIL %s: %s\n", name, why);
		nfailed++;
	}
}

static char *path(const char *name)
{
	static char buf[4][4096];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

/* A record: "T<t> S<seq>" padded with a byte that depends on both, '\n' last. */
static void make_rec(char *r, int t, int seq)
{
	memset(r, 'a' + (t * 7 + seq) % 26, REC);
	int n = snprintf(r, REC, "T%02d S%05d ", t, seq);
	r[n] = '|';
	r[REC - 1] = '\n';
}

struct arg {
	int t;
	int fd; /* shared fd, or -1: open one's own */
	const char *file;
};

static void *appender(void *p)
{
	struct arg *a = p;
	int fd = a->fd >= 0 ? a->fd : open(a->file, O_WRONLY | O_APPEND);
	char r[REC];
	for (int s = 0; fd >= 0 && s < RECS; s++) {
		make_rec(r, a->t, s);
		if (write(fd, r, REC) != REC)
			break;
	}
	if (a->fd < 0 && fd >= 0)
		close(fd);
	return NULL;
}

/* Every record of threads [0, nt) x [0, RECS) is in file exactly once, whole. */
static void check_records(const char *name, const char *file, int nt)
{
	size_t want = (size_t)nt * RECS * REC;
	char *buf = malloc(want + 1), why[256] = "";
	unsigned char *seen = calloc((size_t)nt * RECS, 1);
	int fd = open(file, O_RDONLY);
	ssize_t n = fd >= 0 ? pread(fd, buf, want + 1, 0) : -1;

	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)want) {
		snprintf(why, sizeof(why), "size %zd, want %zu (records lost or overwritten)", n,
			 want);
		goto out;
	}
	for (size_t off = 0; off < want; off += REC) {
		int t, s;
		char r[REC];
		if (sscanf(buf + off, "T%d S%d ", &t, &s) != 2 || t < 0 || t >= nt || s < 0 ||
		    s >= RECS) {
			snprintf(why, sizeof(why), "garbage record at %zu", off);
			goto out;
		}
		make_rec(r, t, s);
		if (memcmp(r, buf + off, REC) != 0 || seen[t * RECS + s]++) {
			snprintf(why, sizeof(why), "record T%d S%d torn or twice at %zu", t, s,
				 off);
			goto out;
		}
	}
out:
	check(name, why[0] == 0, why);
	free(buf);
	free(seen);
}

static void t_append(void)
{
	pthread_t th[NT + 2];
	struct arg a[NT + 2];
	char *f = path("append");
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int shared = open(f, O_WRONLY | O_APPEND);

	if (fd < 0 || shared < 0) {
		check("O_APPEND threads: open", false, strerror(errno));
		return;
	}
	close(fd);
	for (int i = 0; i < NT + 2; i++) {
		a[i] = (struct arg){.t = i, .fd = i < NT ? -1 : shared, .file = f};
		pthread_create(&th[i], NULL, appender, &a[i]);
	}
	for (int i = 0; i < NT + 2; i++)
		pthread_join(th[i], NULL);
	close(shared);
	check_records("O_APPEND from 10 threads: every record whole, once", f, NT + 2);
}

/* Threads writing through dup'ed fds of one (non-append) description. */
static void *dup_writer(void *p)
{
	struct arg *a = p;
	int fd = dup(a->fd);
	char r[REC];
	for (int s = 0; fd >= 0 && s < RECS; s++) {
		make_rec(r, a->t, s);
		if (write(fd, r, REC) != REC)
			break;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void t_dup_offset(void)
{
	pthread_t th[NT];
	struct arg a[NT];
	char *f = path("dupoff");
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0) {
		check("shared offset threads: open", false, strerror(errno));
		return;
	}
	for (int i = 0; i < NT; i++) {
		a[i] = (struct arg){.t = i, .fd = fd};
		pthread_create(&th[i], NULL, dup_writer, &a[i]);
	}
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	off_t end = lseek(fd, 0, SEEK_CUR);
	close(fd);
	check("shared offset: final offset is the sum of the writes", end == (off_t)NT * RECS * REC,
	      "offset differs");
	check_records("writes through dup'ed fds from 8 threads: none overwritten", f, NT);
}

static unsigned char sbyte(size_t stripe, size_t i)
{
	return (unsigned char)(((stripe * 31 + i * 7) % 253) + 1);
}

static void *striper(void *p)
{
	struct arg *a = p;
	int fd = open(a->file, O_WRONLY);
	unsigned char b[STRIPE];
	for (size_t s = (size_t)a->t; fd >= 0 && s < (size_t)NT * STRIPES; s += NT) {
		for (size_t i = 0; i < STRIPE; i++)
			b[i] = sbyte(s, i);
		if (pwrite(fd, b, STRIPE, (off_t)(s * STRIPE)) != STRIPE)
			break;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void t_stripes(void)
{
	pthread_t th[NT];
	struct arg a[NT];
	char *f = path("stripes");
	size_t size = (size_t)NT * STRIPES * STRIPE;
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0) {
		check("pwrite stripes: open", false, strerror(errno));
		return;
	}
	for (int i = 0; i < NT; i++) {
		a[i] = (struct arg){.t = i, .file = f};
		pthread_create(&th[i], NULL, striper, &a[i]);
	}
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	unsigned char *buf = malloc(size);
	bool good = pread(fd, buf, size, 0) == (ssize_t)size;
	for (size_t s = 0; good && s < (size_t)NT * STRIPES; s++)
		for (size_t i = 0; good && i < STRIPE; i++)
			good = buf[s * STRIPE + i] == sbyte(s, i);
	struct stat st;
	check("concurrent pwrite of disjoint odd stripes: nothing lost",
	      good && fstat(fd, &st) == 0 && (size_t)st.st_size == size, "data or size wrong");
	free(buf);
	close(fd);
}

static void t_large_offsets(void)
{
	char *f = path("large_offsets");
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	const off_t far = (5LL << 30) + 12345; /* beyond 4 GiB and 32-bit offsets */
	char b[8192], r[8192];
	struct stat st;

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (char)(i % 250 + 1);
	bool w = fd >= 0 && pwrite(fd, b, sizeof(b), far) == (ssize_t)sizeof(b);
	check("pwrite beyond 4 GiB", w, strerror(errno));
	check("fstat size beyond 4 GiB",
	      fd >= 0 && fstat(fd, &st) == 0 && st.st_size == far + (off_t)sizeof(b), "size");
	check("pread beyond 4 GiB",
	      fd >= 0 && pread(fd, r, sizeof(r), far) == (ssize_t)sizeof(r) &&
		      memcmp(r, b, sizeof(r)) == 0,
	      "data");
	memset(r, 1, sizeof(r));
	check("the hole below reads zeros",
	      fd >= 0 && pread(fd, r, sizeof(r), far - 100000) == (ssize_t)sizeof(r) && r[0] == 0 &&
		      memcmp(r, r + 1, sizeof(r) - 1) == 0,
	      "not zeros");
	check("lseek SEEK_END beyond 4 GiB",
	      fd >= 0 && lseek(fd, 0, SEEK_END) == far + (off_t)sizeof(b), "offset");
	check("lseek SEEK_DATA finds the far data",
	      fd >= 0 && lseek(fd, 0, SEEK_DATA) > (4LL << 30) && lseek(fd, 0, SEEK_DATA) <= far,
	      "offset");
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: threads DIR\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	dir = argv[1];
	t_append();
	t_dup_offset();
	t_stripes();
	t_large_offsets();
	printf("# %s\n", nfailed ? "FAILED" : "all passed");
	return nfailed ? 1 : 0;
}
