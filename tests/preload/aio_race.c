/* SPDX-License-Identifier: MIT */
/*
 * aio_race - a libaio reaper that reuses an iocb the moment it sees it complete, on another
 * thread than the submitter (MariaDB's tpool does this).  Run under libzvfs.so by
 * test_aio.sh; on a plain directory the kernel runs the iocbs and both checks hold trivially.
 *
 * Under the library a ZVFS iocb's completion is posted by submitting the iocb again,
 * rewritten, and the rewritten fields are put back after that system call: the completion is
 * visible before.  Thread A submits; thread B polls for the completion and, as soon as it
 * has it, prepares the same iocb for the next read (another file, another offset).
 *
 *   1. raw-reaper: B reaps with the io_getevents system call and re-prepares at once; once
 *      A's io_submit has returned, the iocb must still be what B wrote (the put-back must
 *      not overwrite it), and every read must have returned the right data.
 *   2. library-reaper: B reaps through the library's io_getevents, on a context that also
 *      has a kernel iocb outstanding (so the library asks the kernel every time); the iocb
 *      B gets must already be the one A submitted.
 *
 *   3. shapes: reads cut short, vector reads and writes, fsync (check_shapes()).
 *
 * Checks 1 and 2 run for ITERS iterations or SECONDS, whichever ends first, and prints how
 * often B had the completion before A's io_submit returned (the race window was open).
 *
 * usage: aio_race DIR     prints "ok NAME" / "FAIL NAME: why", exit 0 if all passed
 */
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { BLK = 4096, NBLK = 64, ITERS = 20000, SECONDS = 2 };

static int nfailed;
static int fds[2];
static io_context_t ctx;

static struct iocb X; /* the one iocb both threads use */
static _Alignas(4096) unsigned char bufs[2][BLK];
static atomic_long turn;      /* iteration A may submit next (B sets it) */
static atomic_long submitted; /* iterations whose io_submit returned in A */
static atomic_bool stop;
static bool raw;      /* check 1 (raw system call) or 2 (the library's io_getevents) */
static long iters;    /* iterations B completed */
static long early;    /* completions B had before A's io_submit returned */
static char why[256]; /* first failure */

static unsigned char pattern(int file, long blk, long i)
{
	return (unsigned char)(file * 101 + blk * 7 + i * 3 + 1);
}

static void prep(long i)
{
	int file = (int)(i & 1);
	long blk = (i * 13) % NBLK;

	io_prep_pread(&X, fds[file], bufs[i & 1], BLK, blk * BLK);
	X.data = (void *)(uintptr_t)(i + 1);
}

/* cb equals ref, but for the key, which the kernel writes at submit */
static bool same_iocb(const struct iocb *cb, const struct iocb *ref)
{
	struct iocb a = *cb, b = *ref;

	a.key = b.key = 0;
	return memcmp(&a, &b, sizeof(a)) == 0;
}

__attribute__((format(printf, 1, 2))) static void fail_once(const char *fmt, ...)
{
	va_list ap;

	if (why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
}

static void *submitter(void *arg)
{
	(void)arg;
	for (long i = 0;; i++) {
		while (atomic_load(&turn) < i + 1 && !atomic_load(&stop))
			sched_yield();
		if (atomic_load(&stop))
			return NULL;
		int r = io_submit(ctx, 1, (struct iocb *[]){&X});
		if (r != 1) {
			fail_once("io_submit of iteration %ld: %d", i, r);
			atomic_store(&stop, true);
			return NULL;
		}
		atomic_store(&submitted, i + 1);
	}
}

/* One completion of X, or false when the time is up or something failed. */
static bool reap(long i, struct io_event *ev)
{
	struct timespec zero = {0, 0};
	unsigned spins = 0;

	for (;;) {
		long n = raw ? syscall(SYS_io_getevents, ctx, 0L, 1L, ev, &zero)
			     : io_getevents(ctx, 0, 1, ev, &zero);
		if (n == 1)
			return true;
		if (n < 0) {
			fail_once("io_getevents at iteration %ld: %ld", i, raw ? (long)-errno : n);
			return false;
		}
		if (atomic_load(&stop))
			return false;
		if (++spins % 64 == 0)
			sched_yield(); /* the submitter may share this CPU */
	}
}

static void run(const char *name)
{
	struct timespec t0, t;
	struct io_event ev;
	struct iocb expect;
	pthread_t th;

	iters = early = 0;
	why[0] = 0;
	atomic_store(&turn, 0);
	atomic_store(&submitted, 0);
	atomic_store(&stop, false);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	prep(0);
	expect = X;
	pthread_create(&th, NULL, submitter, NULL);
	for (long i = 0; i < ITERS; i++) {
		atomic_store(&turn, i + 1);
		if (!reap(i, &ev))
			break;
		bool before = atomic_load(&submitted) < i + 1;

		if (!raw && !same_iocb(&X, &expect)) {
			fail_once("iteration %ld: the reaped iocb is not the one submitted (fd %d)",
				  i, X.aio_fildes);
			break;
		}
		if (raw) {
			prep(i + 1); /* at once, as a reaper that resubmits does */
			expect = X;
		}
		if (ev.obj != &X || ev.data != (void *)(uintptr_t)(i + 1) || ev.res != BLK) {
			fail_once("iteration %ld: event res %ld or obj/data wrong", i,
				  (long)ev.res);
			break;
		}
		for (int k = 0; k < BLK; k++) {
			if (bufs[i & 1][k] != pattern((int)(i & 1), (i * 13) % NBLK, k)) {
				fail_once("iteration %ld: wrong data at byte %d", i, k);
				break;
			}
		}
		if (why[0])
			break;
		early += before;
		while (atomic_load(&submitted) < i + 1 && !atomic_load(&stop))
			sched_yield();
		if (raw && !same_iocb(&X, &expect)) {
			fail_once("iteration %ld: the iocb prepared after its completion was "
				  "overwritten (fd %d)",
				  i, X.aio_fildes);
			break;
		}
		if (!raw) {
			prep(i + 1);
			expect = X;
		}
		iters++;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= SECONDS)
			break;
	}
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	if (why[0]) {
		printf("FAIL %s: %s\n", name, why);
		nfailed++;
	} else {
		printf("ok %s (%ld iterations, %ld reaped before io_submit returned)\n", name,
		       iters, early);
	}
}

/*
 * 3. shapes: one thread, reaped with the raw system call.  A read cut short by the end of the
 *    file, a vector read (whole and cut short), a vector write and an fsync: each event has the
 *    right res, and after io_submit returns the iocb is again what was submitted.
 */
static void check_shapes(void)
{
	static _Alignas(4096) unsigned char a[BLK], b[BLK];
	struct timespec ts = {5, 0};
	const long size = (long)NBLK * BLK;
	struct {
		const char *what;
		long want;
	} cases[] = {
		{"read cut short at the end of the file", 1000},
		{"vector read, whole", 2 * BLK},
		{"vector read cut short", BLK + 1000},
		{"vector write", 2 * BLK},
		{"fsync", 0},
	};
	struct iovec v[2] = {{a, BLK}, {b, BLK}};
	bool ok = true;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && ok; i++) {
		struct iocb cb, ref;
		struct io_event ev;
		long n;

		switch (i) {
		case 0:
			io_prep_pread(&cb, fds[0], a, BLK, size - 1000);
			break;
		case 1:
			io_prep_preadv(&cb, fds[1], v, 2, 0);
			break;
		case 2:
			io_prep_preadv(&cb, fds[1], v, 2, size - BLK - 1000);
			break;
		case 3:
			io_prep_pwritev(&cb, fds[1], v, 2, size);
			break;
		default:
			io_prep_fsync(&cb, fds[1]);
		}
		cb.data = (void *)(uintptr_t)(i + 100);
		ref = cb;
		n = io_submit(ctx, 1, (struct iocb *[]){&cb});
		if (n != 1) {
			printf("FAIL shapes: %s: io_submit %ld\n", cases[i].what, n);
			ok = false;
			break;
		}
		n = syscall(SYS_io_getevents, ctx, 1L, 1L, &ev, &ts);
		if (n != 1 || ev.obj != &cb || ev.data != ref.data ||
		    (long)ev.res != cases[i].want) {
			printf("FAIL shapes: %s: %ld events, res %ld (want %ld)\n", cases[i].what,
			       n, n == 1 ? (long)ev.res : 0L, cases[i].want);
			ok = false;
		} else if (!same_iocb(&cb, &ref)) {
			printf("FAIL shapes: %s: the iocb was not put back (opcode %d, fd %d)\n",
			       cases[i].what, cb.aio_lio_opcode, cb.aio_fildes);
			ok = false;
		}
	}
	if (ok && (a[0] != pattern(1, NBLK - 2, BLK - 1000) ||
		   b[0] != pattern(1, NBLK - 1, BLK - 1000))) {
		printf("FAIL shapes: the short vector read returned the wrong bytes\n");
		ok = false;
	}
	if (ok)
		printf("ok shapes\n");
	else
		nfailed++;
}

int main(int argc, char **argv)
{
	static unsigned char blk[BLK];
	struct iocb poll_cb;
	char path[4096];
	int pfd[2];

	if (argc != 2) {
		fprintf(stderr, "usage: aio_race DIR\n");
		return 2;
	}
	for (int f = 0; f < 2; f++) {
		snprintf(path, sizeof(path), "%s/aio_race_%d", argv[1], f);
		fds[f] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fds[f] < 0) {
			perror(path);
			return 1;
		}
		for (long b = 0; b < NBLK; b++) {
			for (int k = 0; k < BLK; k++)
				blk[k] = pattern(f, b, k);
			if (pwrite(fds[f], blk, BLK, b * BLK) != BLK) {
				perror("pwrite");
				return 1;
			}
		}
	}
	if (io_setup(8, &ctx) != 0) {
		fprintf(stderr, "io_setup failed\n");
		return 1;
	}
	check_shapes();
	raw = true;
	run("raw-reaper");

	/* A kernel iocb that stays outstanding: a poll on a pipe nobody writes. */
	if (pipe(pfd) != 0) {
		perror("pipe");
		return 1;
	}
	io_prep_poll(&poll_cb, pfd[0], POLLIN);
	if (io_submit(ctx, 1, (struct iocb *[]){&poll_cb}) != 1) {
		printf("FAIL library-reaper: io_submit of a poll iocb refused\n");
		nfailed++;
	} else {
		raw = false;
		run("library-reaper");
	}
	io_destroy(ctx);
	return nfailed ? 1 : 0;
}
