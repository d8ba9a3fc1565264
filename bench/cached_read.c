/* SPDX-License-Identifier: MIT */
/*
 * cached_read - the cost of one cached 4 KiB pread(2), for bench/fs_vs_ext4.sh.
 *
 *   cached_read FILE NREADS [WSET]
 *
 * Opens FILE read-only, reads its first WSET bytes (default: the whole file)
 * sequentially in 128 KiB pieces, twice, so every page is cached (by the host
 * page cache on ext4, by ZVFS's page cache under libzvfs.so), then issues
 * NREADS preads of 4 KiB at pseudo-random 4 KiB-aligned offsets inside WSET
 * and prints one line:
 *
 *   reads NREADS wset BYTES ns_per_read X
 *
 * The script runs it under valgrind --tool=callgrind twice, with few and with
 * many reads: the difference of the two instruction counts divided by the
 * difference of the read counts is the user-space cost of one cached read
 * (opening, mounting and warming cancel out).  Plain runs give the wall time
 * per read, which also counts what callgrind cannot see: the kernel.
 *
 * Built by the script with cc; it is a benchmark helper, not part of ZVFS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE 4096u
#define WARM_SIZE (128u * 1024u)

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "cached_read: %s: %s: %s\n", what, path, strerror(errno));
	return 1;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end ? -1 : 0;
}

/* xorshift64*: cheap, and the same sequence for every run with the same N prefix. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	static char buf[WARM_SIZE] __attribute__((aligned(4096)));
	uint64_t nreads, wset = 0, pages, seed = 0x9e3779b97f4a7c15ull;
	struct stat st;
	double t0, t1;
	int fd;

	if (argc < 3 || argc > 4 || parse_u64(argv[2], &nreads) ||
	    (argc == 4 && parse_u64(argv[3], &wset))) {
		fprintf(stderr, "usage: cached_read FILE NREADS [WSET_BYTES]\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		return fail("open", argv[1]);
	if (fstat(fd, &st) < 0)
		return fail("fstat", argv[1]);
	if (wset == 0 || wset > (uint64_t)st.st_size)
		wset = (uint64_t)st.st_size;
	pages = wset / READ_SIZE;
	if (pages == 0) {
		fprintf(stderr, "cached_read: %s: smaller than 4 KiB\n", argv[1]);
		return 1;
	}
	wset = pages * READ_SIZE;

	/* Twice: the first pass may only start read-ahead for some pages. */
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t off = 0; off < wset; off += WARM_SIZE) {
			size_t len = wset - off < WARM_SIZE ? (size_t)(wset - off) : WARM_SIZE;

			if (pread(fd, buf, len, (off_t)off) != (ssize_t)len)
				return fail("warm-up pread", argv[1]);
		}
	}

	t0 = now_ns();
	for (uint64_t i = 0; i < nreads; i++) {
		uint64_t off = next_rand(&seed) % pages * READ_SIZE;

		if (pread(fd, buf, READ_SIZE, (off_t)off) != (ssize_t)READ_SIZE)
			return fail("pread", argv[1]);
	}
	t1 = now_ns();
	if (close(fd) < 0)
		return fail("close", argv[1]);
	printf("reads %llu wset %llu ns_per_read %.1f\n", (unsigned long long)nreads,
	       (unsigned long long)wset, nreads ? (t1 - t0) / (double)nreads : 0.0);
	return 0;
}
