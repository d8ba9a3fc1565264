/* SPDX-License-Identifier: MIT */
/*
 * reentrancy - the library's wrappers must not deadlock or recurse when many
 * threads do file I/O while others malloc/free, call dlsym and printf (the
 * library's own code calls those, and logs at ZVFS_LOG=debug).  Run under
 * libzvfs.so by test_reentrancy.sh; a hang is caught by alarm() and by the
 * test's timeout.
 *
 * usage: reentrancy DIR     exit 0 when every thread's data was right
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { IO_THREADS = 8, OTHER_THREADS = 4, ROUNDS = 60, FILE_SIZE = 96 * 1024 };

static const char *dir;
static atomic_int io_done;
static atomic_int errors;

static unsigned char pat(uint64_t off, unsigned seed)
{
	return (unsigned char)(((off * 131 + seed * 7) % 251) + 1);
}

static void bad(const char *what, int t, int round)
{
	fprintf(stderr, "FAIL thread %d round %d: %s (errno %s)\n", t, round, what,
		strerror(errno));
	atomic_fetch_add(&errors, 1);
}

/* open/write/fstat/read/close a file of its own, in chunks of varying size. */
static void *io_thread(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned char *buf = malloc(FILE_SIZE), *rd = malloc(FILE_SIZE);
	char path[4096];
	unsigned rnd = (unsigned)t * 2654435761u + 1;

	if (!buf || !rd) {
		bad("malloc", t, 0);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/re-%d", dir, t);
	for (int round = 0; round < ROUNDS; round++) {
		unsigned seed = (unsigned)(t * 1000 + round);
		for (size_t i = 0; i < FILE_SIZE; i++)
			buf[i] = pat(i, seed);
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			bad("open", t, round);
			break;
		}
		size_t done = 0;
		while (done < FILE_SIZE) {
			rnd = rnd * 1103515245u + 12345u;
			size_t n = 1 + (rnd >> 8) % 20000;
			if (n > FILE_SIZE - done)
				n = FILE_SIZE - done;
			ssize_t w = write(fd, buf + done, n);
			if (w <= 0) {
				bad("write", t, round);
				break;
			}
			done += (size_t)w;
		}
		struct stat st;
		if (fstat(fd, &st) != 0 || st.st_size != FILE_SIZE)
			bad("fstat size", t, round);
		memset(rd, 0, FILE_SIZE);
		if (pread(fd, rd, FILE_SIZE, 0) != FILE_SIZE || memcmp(rd, buf, FILE_SIZE) != 0)
			bad("pread data", t, round);
		close(fd);
		fd = open(path, O_RDONLY);
		memset(rd, 0, FILE_SIZE);
		size_t got = 0;
		ssize_t r;
		while (fd >= 0 && (r = read(fd, rd + got, 7777)) > 0)
			got += (size_t)r;
		if (fd < 0 || got != FILE_SIZE || memcmp(rd, buf, FILE_SIZE) != 0)
			bad("reread data", t, round);
		if (fd >= 0)
			close(fd);
	}
out:
	free(buf);
	free(rd);
	atomic_fetch_add(&io_done, 1);
	return NULL;
}

/* malloc/free, dlsym and printf until the I/O threads are done. */
static void *other_thread(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned long n = 0;
	static const char *names[] = {"open",	"read",	   "write", "close", "fstat",
				      "malloc", "pread64", "fopen", "stat",  "dlsym"};

	while (atomic_load(&io_done) < IO_THREADS) {
		void *p[16];
		for (int i = 0; i < 16; i++)
			p[i] = malloc((size_t)(1 + (n * 37 + (unsigned long)i * 4099) % 100000));
		for (int i = 0; i < 16; i++)
			free(p[i]);
		void *s = dlsym(RTLD_NEXT, names[n % 10]);
		void *d = dlsym(RTLD_DEFAULT, names[(n + 3) % 10]);
		if (!s || !d) {
			fprintf(stderr, "FAIL dlsym %s: %s\n", names[n % 10], dlerror());
			atomic_fetch_add(&errors, 1);
			break;
		}
		char *dup = strdup(names[n % 10]);
		if (n % 50 == 0)
			printf("other thread %d: %lu rounds (%s)\n", t, n, dup);
		free(dup);
		n++;
	}
	return NULL;
}

/* fprintf to a stream on a file in DIR while the rest runs. */
static void *stream_thread(void *arg)
{
	char path[4096];
	(void)arg;
	snprintf(path, sizeof(path), "%s/re-stream", dir);
	FILE *f = fopen(path, "w");
	int lines = 0;
	if (!f) {
		perror("fopen");
		atomic_fetch_add(&errors, 1);
		return NULL;
	}
	while (atomic_load(&io_done) < IO_THREADS || lines < 1000) {
		fprintf(f, "line %06d\n", lines);
		lines++;
	}
	fclose(f);
	f = fopen(path, "r");
	char buf[64], want[64];
	int i = 0;
	while (f && fgets(buf, sizeof(buf), f)) {
		snprintf(want, sizeof(want), "line %06d\n", i);
		if (strcmp(buf, want) != 0)
			break;
		i++;
	}
	if (!f || i != lines) {
		fprintf(stderr, "FAIL stream: %d of %d lines right\n", i, lines);
		atomic_fetch_add(&errors, 1);
	}
	if (f)
		fclose(f);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t io[IO_THREADS], other[OTHER_THREADS], st;

	if (argc != 2) {
		fprintf(stderr, "usage: reentrancy DIR\n");
		return 2;
	}
	dir = argv[1];
	alarm(50); /* a deadlock ends here, SIGALRM kills the process */
	for (int i = 0; i < OTHER_THREADS; i++)
		pthread_create(&other[i], NULL, other_thread, (void *)(intptr_t)i);
	pthread_create(&st, NULL, stream_thread, NULL);
	for (int i = 0; i < IO_THREADS; i++)
		pthread_create(&io[i], NULL, io_thread, (void *)(intptr_t)i);
	for (int i = 0; i < IO_THREADS; i++)
		pthread_join(io[i], NULL);
	for (int i = 0; i < OTHER_THREADS; i++)
		pthread_join(other[i], NULL);
	pthread_join(st, NULL);
	int e = atomic_load(&errors);
	printf("%s: %d errors\n", e ? "FAIL" : "ok", e);
	return e ? 1 : 0;
}
