/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the block-device test programs (tests/bdev/test_*.c).
 *
 * Reporting: a program runs named checks; each check prints one line,
 * "ok - name", "ok - name # SKIP reason" or "not ok - name: reason" (the
 * first failure inside a check is the one reported), and t_summary() prints
 * the totals and gives the exit code (0 pass, 1 fail, 77 everything skipped).
 *
 *	t_begin("name");
 *	EXPECT(rc == 0, "open: %s", t_err(rc));   // on failure: record, goto out
 *	...
 *	out:
 *	cleanup;
 *	t_end();
 *
 * Data: t_fill() writes a pattern that is a function of (seed, absolute
 * device offset), so any range can be checked on its own and data that
 * lands at the wrong offset is caught.
 *
 * Completions: struct t_req records how often its callback ran, with what
 * status, on which thread, and whether it ran inside a submit call (the
 * T_SUBMIT() wrapper sets a thread-local flag around the call).
 */
#ifndef ZVFS_TESTS_BDEV_TESTLIB_H
#define ZVFS_TESTS_BDEV_TESTLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zvfs/bdev.h"

/* Exit code for "this machine cannot run the test" (meson: SKIP). */
#define T_EXIT_SKIP 77

/* ---- reporting ---------------------------------------------------------- */

void t_begin(const char *name);
void t_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void t_skipf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True while the current check has neither failed nor been skipped. */
bool t_running(void);
/* Prints the check's line; returns true if it passed (or was skipped). */
bool t_end(void);
/* Prints "# <prog>: N passed, M failed, K skipped"; returns the exit code. */
int t_summary(const char *prog);
/* A whole check in one call: passes if cond, else fails with the message. */
bool t_assert(const char *name, bool cond, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A diagnostic line ("# ..."). */
void t_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define EXPECT(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			t_failf(__VA_ARGS__);                                                      \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* Name of a negative errno ("-EINVAL"), or "0", or "-<n>". Thread-safe. */
const char *t_err(int rc);

/* ---- data ------------------------------------------------------------- */

uint64_t t_mix(uint64_t x);
/* The seed of this run: $ZVFS_TEST_SEED or time and pid; printed once. */
uint64_t t_seed(void);
/* Fill buf (len a multiple of 8) with the pattern of seed at device offset off. */
void t_fill(void *buf, size_t len, uint64_t seed, uint64_t off);
/* -1 if buf holds seed's pattern for off, else the first differing byte. */
ssize_t t_check(const void *buf, size_t len, uint64_t seed, uint64_t off);
/* -1 if buf is all zeroes, else the first non-zero byte. */
ssize_t t_check_zero(const void *buf, size_t len);

/* ---- completions ------------------------------------------------------ */

struct t_req {
	unsigned calls;	   /* times the callback ran */
	int status;	   /* status of the last call */
	bool in_submit;	   /* a call happened inside a submit call */
	bool wrong_thread; /* a call happened on another thread than owner */
	pthread_t owner;   /* the thread that initialised the request */
	unsigned *counter; /* incremented on every call (may be NULL) */
};

extern __thread bool t_in_submit;

void t_req_init(struct t_req *r, unsigned *counter);
void t_req_cb(void *arg, int status);

/* Evaluate a submit call with t_in_submit set around it. */
#define T_SUBMIT(expr)                                                                             \
	({                                                                                         \
		int t_submit_rc_;                                                                  \
		t_in_submit = true;                                                                \
		t_submit_rc_ = (expr);                                                             \
		t_in_submit = false;                                                               \
		t_submit_rc_;                                                                      \
	})

/*
 * Wait on ch until *counter reaches target.  Returns 0, the negative errno
 * of zvfs_bdev_wait(), or -EPIPE when the channel has nothing in flight but
 * the count was not reached (a lost callback), or -ETIMEDOUT if wait keeps
 * returning 0 with requests in flight (it must sleep instead).
 */
int t_wait_for(struct zvfs_bdev_channel *ch, const unsigned *counter, unsigned target);

/* Poll ch until nothing is outstanding; same errors as t_wait_for(). */
int t_drain(struct zvfs_bdev_channel *ch);

/*
 * Checks on a set of requests that were all expected to complete: every
 * callback ran exactly once, with status want, on its owner thread and
 * never inside a submit call.  Returns false and records a failure.
 */
bool t_reqs_ok(const struct t_req *r, size_t n, int want, const char *what);

/* ---- files, mounts, devices ------------------------------------------- */

/* A fresh directory under base (NULL: $TMPDIR or /tmp); malloc'ed path, or NULL. */
char *t_mkdtemp(const char *base, const char *tag);
/* Remove a tree (does not cross mount points). */
void t_rmtree(const char *dir);
/* Create a regular file of len bytes filled with seed's pattern. */
int t_make_file(const char *path, uint64_t len, uint64_t seed, mode_t mode);
bool t_exists(const char *path);

/* Open file descriptors whose link contains s (e.g. "io_uring"). */
int t_count_fds(const char *s);
/* Lines of /proc/self/maps that contain s (e.g. "[aio]"). */
int t_count_maps(const char *s);

/*
 * Attach a loop device to img (LOOP_CTL_GET_FREE, then LOOP_CONFIGURE or
 * LOOP_SET_FD), with autoclear so that it goes away with the last opener if
 * this process dies.  Stores "/dev/loopN" in dev and an open fd of it in
 * *loopfd.  Returns 0 or a negative errno, with a reason in why.
 */
int t_loop_attach(const char *img, char *dev, size_t devlen, int *loopfd, char *why, size_t whylen);
/* Detach (LOOP_CLR_FD) and close loopfd. */
void t_loop_detach(int loopfd);

/* ---- synchronous helpers on a device ---------------------------------- */

/*
 * Write seed's pattern over [off, off+len) / read and check it, with a
 * bounce buffer from zvfs_bdev_buf_alloc().  Return 0, a negative errno,
 * or -EBADMSG on a data mismatch (with *bad set to the byte offset).
 */
int t_dev_write_pattern(struct zvfs_bdev *b, uint64_t off, uint64_t len, uint64_t seed);
int t_dev_check_pattern(struct zvfs_bdev *b, uint64_t off, uint64_t len, uint64_t seed,
			uint64_t *bad);
int t_dev_check_zero(struct zvfs_bdev *b, uint64_t off, uint64_t len, uint64_t *bad);

#endif /* ZVFS_TESTS_BDEV_TESTLIB_H */
