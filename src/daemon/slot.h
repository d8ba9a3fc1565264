/* SPDX-License-Identifier: MIT */
/*
 * daemon/slot.h - the request-slot handoff of ipc/ring.h, for zvfsd and its
 * tests: the same protocol (states, sleeper bits, Dekker pair, shared futex;
 * see ring.h for the reasoning), with one difference in how the words are
 * reached.  ring.h takes &r->state of the packed struct zvfs_ring: GCC warns
 * (-Waddress-of-packed-member) and clang, which then assumes 1-byte
 * alignment, compiles every atomic on it to a libatomic call
 * (__atomic_load_4: slow, and a link dependency).  The words are 4-byte
 * aligned in fact (offsets 8 and 12 of a page-aligned mapping), so here they
 * are reached through offsetof, which gives the compiler a plain aligned
 * _Atomic uint32_t *.  Drop this file for ring.h once struct zvfs_ring
 * carries its alignment (e.g. __attribute__((packed, aligned(64)))).
 */
#ifndef ZVFS_DAEMON_SLOT_H
#define ZVFS_DAEMON_SLOT_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ipc/proto.h"

static inline _Atomic uint32_t *zvfsd_slot_word(struct zvfs_ring *r, size_t off)
{
	return (_Atomic uint32_t *)(void *)((char *)r + off);
}

#define ZVFSD_SLOT_STATE(r)    zvfsd_slot_word((r), offsetof(struct zvfs_ring, state))
#define ZVFSD_SLOT_SLEEPERS(r) zvfsd_slot_word((r), offsetof(struct zvfs_ring, sleepers))

static inline uint32_t zvfsd_slot_load(struct zvfs_ring *r)
{
	return atomic_load_explicit(ZVFSD_SLOT_STATE(r), memory_order_acquire);
}

static inline void zvfsd_slot_store(struct zvfs_ring *r, uint32_t s)
{
	atomic_store_explicit(ZVFSD_SLOT_STATE(r), s, memory_order_release);
}

/* zvfs_ring_publish(): store s, wake the peer if its bit is set. */
static inline void zvfsd_slot_publish(struct zvfs_ring *r, uint32_t s, uint32_t peer_bit)
{
	atomic_store_explicit(ZVFSD_SLOT_STATE(r), s, memory_order_seq_cst);
	if (atomic_load_explicit(ZVFSD_SLOT_SLEEPERS(r), memory_order_seq_cst) & peer_bit)
		syscall(SYS_futex, ZVFSD_SLOT_STATE(r), FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Wake whoever sleeps on the state word (zvfsd: a worker being stopped). */
static inline void zvfsd_slot_wake(struct zvfs_ring *r)
{
	syscall(SYS_futex, ZVFSD_SLOT_STATE(r), FUTEX_WAKE, 1, NULL, NULL, 0);
}

static inline void zvfsd_slot_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* zvfs_ring_wait(): the new state, or -ETIMEDOUT after a sleep with no change. */
static inline int64_t zvfsd_slot_wait(struct zvfs_ring *r, uint32_t from, uint64_t spin_ns,
				      uint32_t my_bit, uint64_t timeout_ns)
{
	struct timespec t0, t1;
	uint32_t s;
	unsigned n = 0;

	s = zvfsd_slot_load(r);
	if (s != from)
		return s;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (int i = 0; i < 64; i++) {
			zvfsd_slot_relax();
			s = zvfsd_slot_load(r);
			if (s != from)
				return s;
		}
		if ((++n & 7) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if ((uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
				    (uint64_t)(t1.tv_nsec - t0.tv_nsec) >=
			    spin_ns)
				break;
		}
	}
	atomic_fetch_or_explicit(ZVFSD_SLOT_SLEEPERS(r), my_bit, memory_order_seq_cst);
	s = atomic_load_explicit(ZVFSD_SLOT_STATE(r), memory_order_seq_cst);
	if (s == from) {
		struct timespec to = {(time_t)(timeout_ns / 1000000000ull),
				      (long)(timeout_ns % 1000000000ull)};

		syscall(SYS_futex, ZVFSD_SLOT_STATE(r), FUTEX_WAIT, from, timeout_ns ? &to : NULL,
			NULL, 0);
	}
	atomic_fetch_and_explicit(ZVFSD_SLOT_SLEEPERS(r), ~my_bit, memory_order_seq_cst);
	s = zvfsd_slot_load(r);
	return s != from ? (int64_t)s : -ETIMEDOUT;
}

#endif /* ZVFS_DAEMON_SLOT_H */
