/* SPDX-License-Identifier: MIT */
/*
 * ipc/ring.h - the handoff on a request slot (struct zvfs_ring, proto.h),
 * shared by zvfsd and the client in libzvfs.so.
 *
 * Ordering: the producer of a state (client: REQ, daemon: DONE) writes the
 * payload (req / resp and the data area) first and then stores the state
 * with release; the consumer loads the state with acquire before it reads
 * the payload.  Sleeping: a side that stops spinning sets its bit in
 * `sleepers` (seq_cst), re-checks the state, then FUTEX_WAITs on the state
 * word while it still has the value it saw; the other side, after its
 * release store of the new state, reads `sleepers` (seq_cst) and wakes only
 * when the bit is set.  The seq_cst pair is what prevents the lost wakeup
 * (Dekker: store state / load sleepers vs store sleepers / load state).
 * The futex is a shared one (no FUTEX_PRIVATE_FLAG): the word lives in a
 * memfd mapped by two processes.
 */
#ifndef ZVFS_IPC_RING_H
#define ZVFS_IPC_RING_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ipc/proto.h"

static inline uint32_t zvfs_ring_load_state(struct zvfs_ring *r)
{
	return atomic_load_explicit((_Atomic uint32_t *)&r->state, memory_order_acquire);
}

static inline void zvfs_ring_store_state(struct zvfs_ring *r, uint32_t s)
{
	atomic_store_explicit((_Atomic uint32_t *)&r->state, s, memory_order_release);
}

/*
 * Publish state s, then wake the other side if it sleeps (peer_bit:
 * ZVFS_SLEEP_DAEMON when the client publishes REQ, ZVFS_SLEEP_CLIENT when
 * the daemon publishes DONE).
 */
static inline void zvfs_ring_publish(struct zvfs_ring *r, uint32_t s, uint32_t peer_bit)
{
	atomic_store_explicit((_Atomic uint32_t *)&r->state, s, memory_order_seq_cst);
	if (atomic_load_explicit((_Atomic uint32_t *)&r->sleepers, memory_order_seq_cst) & peer_bit)
		syscall(SYS_futex, &r->state, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Wake whoever sleeps on the state word (shutdown: a worker must notice at once). */
static inline void zvfs_ring_wake(struct zvfs_ring *r)
{
	syscall(SYS_futex, &r->state, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

static inline void zvfs_ring_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Wait until state != from.  Spins for about spin_ns, then sleeps on the
 * futex (my_bit in sleepers) for at most timeout_ns per sleep (0 = no
 * limit).  Returns the new state, or -ETIMEDOUT after a sleep timed out
 * with the state unchanged (the caller checks the peer and calls again).
 */
static inline int64_t zvfs_ring_wait(struct zvfs_ring *r, uint32_t from, uint64_t spin_ns,
				     uint32_t my_bit, uint64_t timeout_ns)
{
	struct timespec t0, t1;
	uint32_t s;
	unsigned n = 0;

	s = zvfs_ring_load_state(r);
	if (s != from)
		return s;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (int i = 0; i < 64; i++) {
			zvfs_ring_cpu_relax();
			s = zvfs_ring_load_state(r);
			if (s != from)
				return s;
		}
		/*
		 * The clock is read on the first round and every 8th after it: checking it only
		 * from the 8th meant 512 pauses (13 us on this EPYC) even with spin_ns = 0, CPU
		 * that the other side of the handoff needs on a 2-CPU machine.
		 */
		if ((++n & 7) == 1) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if ((uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
				    (uint64_t)(t1.tv_nsec - t0.tv_nsec) >=
			    spin_ns)
				break;
		}
	}
	atomic_fetch_or_explicit((_Atomic uint32_t *)&r->sleepers, my_bit, memory_order_seq_cst);
	s = atomic_load_explicit((_Atomic uint32_t *)&r->state, memory_order_seq_cst);
	if (s == from) {
		struct timespec to = {(time_t)(timeout_ns / 1000000000ull),
				      (long)(timeout_ns % 1000000000ull)};

		syscall(SYS_futex, &r->state, FUTEX_WAIT, from, timeout_ns ? &to : NULL, NULL, 0);
	}
	atomic_fetch_and_explicit((_Atomic uint32_t *)&r->sleepers, ~my_bit, memory_order_seq_cst);
	s = zvfs_ring_load_state(r);
	return s != from ? (int64_t)s : -ETIMEDOUT;
}

/*
 * Does this thread wait for a CPU?  A long spin (through a whole device I/O)
 * pays only while CPUs are free: with more runnable tasks than CPUs it takes
 * one that another process needs, which the daemon's own counts cannot see
 * (pgbench's backends: 0.59x ext4 without the long spin, 0.47x with it).  The
 * signal is the thread's run delay, the time it spent runnable but not
 * running (second field of /proc/thread-self/schedstat): above 10% of the
 * wall time since the last look, the thread is contended (measured on 2
 * vCPUs: a QD1 fio job waited 0.4% of the time, pgbench's backends 25-35%;
 * windows shorter than 50 ms flip on single scheduler hiccups).  Looked at every
 * 50 ms at most, with raw system calls (the preload library must not see
 * its own open); without schedstat the answer is always "no".
 */
struct zvfs_cpu_watch {
	uint64_t at_ns;	   /* last look, CLOCK_MONOTONIC_COARSE; 0: never */
	uint64_t delay_ns; /* run delay then */
	bool contended;
};

static inline bool zvfs_cpu_contended(struct zvfs_cpu_watch *w)
{
	struct timespec ts;
	char buf[96];
	uint64_t t, delay;
	long fd, n;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (w->at_ns && t - w->at_ns < 50000000ull)
		return w->contended;
	fd = syscall(SYS_openat, AT_FDCWD, "/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto out;
	n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		goto out;
	buf[n] = '\0';
	{
		char *p = strchr(buf, ' ');

		if (!p)
			goto out;
		delay = strtoull(p + 1, NULL, 10);
	}
	if (w->at_ns)
		w->contended = (delay - w->delay_ns) * 10 > t - w->at_ns;
	w->delay_ns = delay;
out:
	w->at_ns = t;
	return w->contended;
}

#endif /* ZVFS_IPC_RING_H */
