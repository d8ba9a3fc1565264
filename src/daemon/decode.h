/* SPDX-License-Identifier: MIT */
/*
 * daemon/decode.h - the pure part of zvfsd's control-message handling:
 * decide from a received packet (bytes, fd count, whether HELLO came
 * already) what the daemon does with it, without touching any state.
 * Factored out of client.c so the fuzz target (tests/fuzz/fuzz_proto.c)
 * can run exactly what the daemon runs on hostile input.
 */
#ifndef ZVFS_DAEMON_DECODE_H
#define ZVFS_DAEMON_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/proto.h"

/* A control packet, decoded.  Fields of other types than `type` are zero. */
struct zvfsd_ctl {
	uint16_t type; /* enum zvfs_msg_type (a client's request type) */
	uint32_t seq;  /* the header's seq (0 when the packet is shorter than a header) */
	uint32_t hello_version;
	char comm[16];	     /* HELLO: printable, NUL-terminated */
	uint32_t data_size;  /* RING_ADD */
	uint32_t tid;	     /* RING_ADD */
	uint32_t open_flags; /* OPEN */
	/* On error: the reply's errno text, and whether the client is dropped after it. */
	bool drop;
	char text[200];
};

/*
 * Decode the n bytes at pkt received with nfds descriptors from a client that
 * has (hello_done) or has not sent HELLO.  Returns 0: act on *out; or a
 * negative errno for an ERROR reply with out->text, after which the client
 * is dropped when out->drop (protocol violations: malformed, wrong version,
 * a reply type, anything before HELLO, a second HELLO).  -EINVAL for bad
 * field values of a well-formed request (the client stays).
 */
int zvfsd_ctl_decode(const void *pkt, size_t n, int nfds, bool hello_done, struct zvfsd_ctl *out);

/* ZVFS_RIGHT_* a ring request needs on its handle (0: none; SYNC_ALL/NOP need no handle). */
uint32_t zvfsd_op_rights(uint32_t op);
/*
 * May a handle with these rights run op?  Besides op's own rights, a handle
 * without any (ZVFS_OPEN_STAT) runs only STAT, SEEK and CLOSE: what stat(2)
 * and lseek(2) give anyone, nothing that moves the file's pages.
 */
bool zvfsd_op_allowed(uint32_t op, uint32_t rights);

/* Whether an op names a handle at all. */
bool zvfsd_op_has_handle(uint32_t op);

/* Latency histograms: log2 buckets of nanoseconds; bucket i holds [2^i, 2^(i+1)) ns. */
#define ZVFSD_HIST 40
unsigned zvfsd_hist_bucket(uint64_t ns);

/* The upper bound (ns) of the bucket holding the q-quantile (0 < q <= 1); 0 when empty. */
uint64_t zvfsd_hist_quantile(const uint64_t hist[ZVFSD_HIST], double q);

#endif /* ZVFS_DAEMON_DECODE_H */
