/* SPDX-License-Identifier: MIT */
/*
 * ipc/proto.h - the zvfsd protocol: control messages on a Unix socket and
 * per-thread request slots in shared memory (DESIGN.md D8, docs/protocol.md).
 *
 * Everything here is wire format: little-endian (the only byte order ZVFS
 * runs on, checked at build time), fixed-width fields, offsets in comments,
 * sizes pinned by _Static_assert, no pointers.  The daemon trusts nothing
 * it reads from a client: every message and every request is checked by
 * zvfs_msg_check() / zvfs_req_check() (proto.c) before it is acted on.
 *
 * Control channel
 * ---------------
 * A SOCK_SEQPACKET Unix socket (default ZVFS_DEFAULT_SOCKET, setting
 * ZVFS_SOCKET).  One message = one packet: struct zvfs_msg_hdr + body
 * (at most ZVFS_MSG_MAX bytes in all), optionally with file descriptors
 * (SCM_RIGHTS).  Every request gets exactly one reply with the same seq:
 * its own *_OK type or ZVFS_MSG_ERROR.  The daemon records the peer's
 * credentials (SO_PEERCRED) at accept.
 *
 *   HELLO      c->d  body zvfs_msg_hello; first message, or ERROR (EPROTO)
 *                    naming both versions when they differ
 *   RING_ADD   c->d  1 fd: a memfd of zvfs_ring_bytes(data_size) bytes
 *                    laid out as struct zvfs_ring; reply RING_OK {ring id}.
 *                    The daemon serves the ring from then on.
 *   OPEN       c->d  1 fd: the client's own fd of a placeholder.  The daemon
 *                    reads the xattr, fstat and access mode (F_GETFL) FROM
 *                    THAT FD: a client reaches only files it has open, with
 *                    the rights of its open.  flags ZVFS_OPEN_CREATE: make
 *                    it a ZVFS file (the daemon creates the blob and sets the
 *                    xattr on the fd itself); ZVFS_OPEN_TRUNC; ZVFS_OPEN_STAT
 *                    (a stat-only handle, O_PATH fds accepted).  Reply OPEN_OK.
 *   REMOVE     c->d  1 fd (O_PATH or any) of a placeholder the client has
 *                    just unlinked or renamed over: the daemon frees its blob
 *                    when fstat says st_nlink == 0 (and its last handle
 *                    closes); otherwise nothing happens.  Reply OK.
 *   STATS      c->d  reply STATS_OK: text (UTF-8, lines) for `zvfs stat`
 *   SHUTDOWN   c->d  only from uid 0 or the daemon's uid: unmount and exit
 *
 * Request slots (data path)
 * -------------------------
 * Each client thread that does ZVFS I/O registers one ring: a 4 KiB header
 * (struct zvfs_ring) followed by a data area of data_size bytes.  Every
 * POSIX call is synchronous per thread, so a ring holds one request at a
 * time (a single-producer/single-consumer ring of depth 1): the client
 * writes req (and data), then publishes state = REQ with a release store;
 * the daemon reads state with an acquire load, executes, writes resp (and
 * data), publishes state = DONE with a release store; the client's acquire
 * load of DONE makes resp visible, and it sets state = IDLE.
 *
 * Waiting is adaptive: each side spins on state for a while (spin-then-
 * futex; ~0.1-0.5 us per handoff while requests keep coming) and then
 * sleeps on the state word (FUTEX_WAIT on a shared mapping, not private),
 * after setting its bit in `sleepers`; the other side wakes it only when
 * that bit is set.  A client sleeps with a timeout and checks that the
 * daemon is alive (POLLHUP on the control socket) so a dead daemon gives
 * EIO within a second, never a hang.
 *
 * Requests larger than the data area are split by the client into
 * data-area-sized pieces (so any size works; a 1 GiB write is 1024 pieces
 * at the default 1 MiB area).  A handle is the daemon's id for one OPEN of
 * one client; requests naming a handle of another client fail EBADF.
 */
#ifndef ZVFS_IPC_PROTO_H
#define ZVFS_IPC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the zvfsd protocol is little-endian; ZVFS builds only for little-endian hosts"
#endif

#define ZVFS_PROTO_MAGIC       0x5346565au /* "ZVFS" */
#define ZVFS_PROTO_VERSION     1u
#define ZVFS_DEFAULT_SOCKET    "/run/zvfs/zvfsd.sock"
#define ZVFS_MSG_MAX	       4096u
#define ZVFS_RING_HDR	       4096u
#define ZVFS_RING_DATA_DEFAULT (1u << 20) /* 1 MiB */
#define ZVFS_RING_DATA_MAX     (64u << 20)

/* ---- control messages ------------------------------------------------------ */

enum zvfs_msg_type {
	ZVFS_MSG_HELLO = 1,
	ZVFS_MSG_HELLO_OK = 2,
	ZVFS_MSG_ERROR = 3,
	ZVFS_MSG_OK = 4,
	ZVFS_MSG_RING_ADD = 5,
	ZVFS_MSG_RING_OK = 6,
	ZVFS_MSG_OPEN = 7,
	ZVFS_MSG_OPEN_OK = 8,
	ZVFS_MSG_REMOVE = 9,
	ZVFS_MSG_STATS = 10,
	ZVFS_MSG_STATS_OK = 11,
	ZVFS_MSG_SHUTDOWN = 12,
};

struct zvfs_msg_hdr {
	uint32_t magic;	  /* 0: ZVFS_PROTO_MAGIC */
	uint16_t version; /* 4: ZVFS_PROTO_VERSION */
	uint16_t type;	  /* 6: enum zvfs_msg_type */
	uint32_t len;	  /* 8: body bytes after this header */
	uint32_t seq;	  /* 12: chosen by the client, echoed in the reply */
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_hdr) == 16, "zvfs_msg_hdr");

struct zvfs_msg_hello {	  /* HELLO */
	uint32_t version; /* 0: the client's ZVFS_PROTO_VERSION */
	uint32_t pid;	  /* 4: informational; the daemon trusts SO_PEERCRED */
	char comm[16];	  /* 8: process name, NUL-padded (for zvfs stat) */
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_hello) == 24, "zvfs_msg_hello");

/*
 * HELLO_OK (+ 1 fd when size_slots > 0): the client's size table, a memfd of size_slots
 * little-endian u64, mappable read-only only.  Entry i holds the logical size of the file of
 * the client's handle whose low 32 bits are i, kept current by the daemon (release stores)
 * while that handle is open, for i < size_slots.  A client reads sizes there instead of
 * asking (ZVFS_OP_STAT).  0: no table, no fd.
 */
struct zvfs_msg_hello_ok {   /* HELLO_OK */
	uint32_t version;    /* 0: the daemon's ZVFS_PROTO_VERSION */
	uint32_t daemon_pid; /* 4 */
	char store_id[40];   /* 8: store UUID, NUL-terminated */
	uint32_t data_size;  /* 48: ring data area size the daemon prefers */
	uint32_t size_slots; /* 52: entries of the size table sent with this message, or 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_hello_ok) == 56, "zvfs_msg_hello_ok");

struct zvfs_msg_error { /* ERROR */
	int32_t err;	/* 0: positive errno */
	char text[200]; /* 4: one line, NUL-terminated */
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_error) == 204, "zvfs_msg_error");

struct zvfs_msg_ring_add {  /* RING_ADD (+ 1 fd) */
	uint32_t data_size; /* 0: bytes of data area (<= ZVFS_RING_DATA_MAX, multiple of 4096) */
	uint32_t tid;	    /* 4: informational */
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_ring_add) == 8, "zvfs_msg_ring_add");

struct zvfs_msg_ring_ok { /* RING_OK */
	uint32_t ring_id; /* 0 */
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_ring_ok) == 8, "zvfs_msg_ring_ok");

#define ZVFS_OPEN_CREATE 0x1u /* make the (empty, xattr-less) placeholder a ZVFS file */
#define ZVFS_OPEN_TRUNC	 0x2u /* truncate to 0 (needs write access) */
/*
 * A handle for STAT (and SEEK, CLOSE) only, no read or write right: any fd,
 * O_PATH included, as stat(2) needs no permission on the file itself.  Lets
 * a client look a file up by name through an O_PATH fd, whose close -- unlike
 * any other fd's -- does not drop the process's fcntl locks on the file.
 */
#define ZVFS_OPEN_STAT 0x4u

struct zvfs_msg_open {	   /* OPEN (+ 1 fd) */
	uint32_t flags;	   /* 0: ZVFS_OPEN_* */
	uint32_t reserved; /* 4 */
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_open) == 8, "zvfs_msg_open");

struct zvfs_msg_open_ok {      /* OPEN_OK */
	uint64_t handle;       /* 0: for requests on the rings */
	uint64_t size;	       /* 8: logical size now */
	uint32_t direct_align; /* 16: zvfs_file_direct_align() */
	uint32_t rights;       /* 20: ZVFS_RIGHT_READ | ZVFS_RIGHT_WRITE, from the fd's mode */
} __attribute__((packed));
_Static_assert(sizeof(struct zvfs_msg_open_ok) == 24, "zvfs_msg_open_ok");

#define ZVFS_RIGHT_READ	 0x1u
#define ZVFS_RIGHT_WRITE 0x2u

/* ---- request slots ------------------------------------------------------------ */

enum zvfs_op {
	ZVFS_OP_NOP = 0,	/* round trip only (benchmarks) */
	ZVFS_OP_READ = 1,	/* off, len <= data_size -> data area; result bytes */
	ZVFS_OP_WRITE = 2,	/* off, len bytes from the data area, flags ZVFS_IO_*; val = end */
	ZVFS_OP_TRUNCATE = 3,	/* arg = size */
	ZVFS_OP_FALLOCATE = 4,	/* flags = mode, off, len */
	ZVFS_OP_SYNC = 5,	/* flags = ZVFS_SYNC_* */
	ZVFS_OP_WRITEBACK = 6,	/* off, len */
	ZVFS_OP_DROP_CACHE = 7, /* off, len */
	ZVFS_OP_PREFETCH = 8,	/* off, len */
	ZVFS_OP_STAT =
		9, /* val = size, val2 = allocated, val3 = blob id, val4 = flags (1 unlinked) */
	ZVFS_OP_SEEK = 10,     /* off, flags 1 = hole; val = result */
	ZVFS_OP_CLOSE = 11,    /* the handle is gone after this */
	ZVFS_OP_SYNC_ALL = 12, /* sync(2)/syncfs(2); handle ignored */
	ZVFS_OP_COUNT
};

struct zvfs_req {
	uint32_t op;	 /* 0: enum zvfs_op */
	uint32_t flags;	 /* 4: per op */
	uint64_t handle; /* 8 */
	uint64_t off;	 /* 16: bytes */
	uint64_t len;	 /* 24: bytes */
	uint64_t arg;	 /* 32: per op */
	uint64_t seq;	 /* 40: increments per request (debugging, stale-reply checks) */
	/*
	 * 48: the CPU the client's thread sent this from, + 1 (0: not given).  A hint: while
	 * neither side spins, the daemon runs the ring's worker on that CPU (worker.c).
	 */
	uint32_t cpu;
	uint32_t hints;	     /* 52: ZVFS_REQ_* */
	uint8_t reserved[8]; /* 56 */
};
_Static_assert(sizeof(struct zvfs_req) == 64, "zvfs_req");

/* zvfs_req.hints: the client spins for its answers also while the daemon is busy. */
#define ZVFS_REQ_SPINS 0x1u

struct zvfs_resp {
	int64_t result; /* 0: >= 0 or -errno */
	uint64_t val;	/* 8: per op */
	uint64_t val2;	/* 16 */
	uint64_t val3;	/* 24 */
	uint64_t val4;	/* 32 */
	uint64_t seq;	/* 40: the request's seq */
	/*
	 * 48: requests the daemon was executing while it ran this one, this one included (0:
	 * not reported).  A hint: a client spins for its next answer only while the daemon
	 * leaves CPUs idle.
	 */
	uint32_t busy;
	uint8_t reserved[12]; /* 52 */
};
_Static_assert(sizeof(struct zvfs_resp) == 64, "zvfs_resp");

enum zvfs_ring_state {
	ZVFS_RING_IDLE = 0,
	ZVFS_RING_REQ = 1,  /* req published by the client */
	ZVFS_RING_DONE = 2, /* resp published by the daemon */
};

#define ZVFS_SLEEP_DAEMON 0x1u /* the daemon sleeps on state: wake it after REQ */
#define ZVFS_SLEEP_CLIENT 0x2u /* the client sleeps on state: wake it after DONE */

/*
 * The header of a ring memfd; the data area follows at ZVFS_RING_HDR.  Not
 * packed: every field sits at its natural alignment (the asserts pin the
 * offsets), and the state and sleepers words must be addressable as
 * naturally aligned atomics and futex words.
 */
struct zvfs_ring {
	uint32_t magic;	       /* 0: ZVFS_PROTO_MAGIC */
	uint32_t version;      /* 4: ZVFS_PROTO_VERSION */
	uint32_t state;	       /* 8: enum zvfs_ring_state; the futex word (accessed atomically) */
	uint32_t sleepers;     /* 12: ZVFS_SLEEP_* (accessed atomically) */
	uint32_t data_size;    /* 16: bytes of data area */
	uint32_t reserved0;    /* 20 */
	uint8_t pad0[40];      /* 24: req starts on its own cache line */
	struct zvfs_req req;   /* 64 */
	struct zvfs_resp resp; /* 128 */
	uint8_t pad1[ZVFS_RING_HDR - 192];
};
_Static_assert(sizeof(struct zvfs_ring) == ZVFS_RING_HDR, "zvfs_ring");
_Static_assert(__builtin_offsetof(struct zvfs_ring, state) == 8, "zvfs_ring.state");
_Static_assert(__builtin_offsetof(struct zvfs_ring, sleepers) == 12, "zvfs_ring.sleepers");
_Static_assert(__builtin_offsetof(struct zvfs_ring, data_size) == 16, "zvfs_ring.data_size");
_Static_assert(__builtin_offsetof(struct zvfs_ring, req) == 64, "zvfs_ring.req");
_Static_assert(__builtin_offsetof(struct zvfs_ring, resp) == 128, "zvfs_ring.resp");
_Static_assert(__builtin_offsetof(struct zvfs_req, off) == 16, "zvfs_req.off");
_Static_assert(__builtin_offsetof(struct zvfs_resp, val) == 8, "zvfs_resp.val");

static inline uint64_t zvfs_ring_bytes(uint32_t data_size)
{
	return (uint64_t)ZVFS_RING_HDR + data_size;
}

/* ---- checks (proto.c): what the daemon runs on everything a client sends ---- */

/*
 * A received control packet of n bytes with nfds descriptors: header sane
 * (magic, version, known type, len == n - 16 <= ZVFS_MSG_MAX), body the
 * exact size of its type, the right number of fds for the type.  0 or
 * -EPROTO (wrong magic/version: the reply names both versions), -EBADMSG
 * (anything else).
 */
int zvfs_msg_check(const void *pkt, size_t n, int nfds);

/*
 * Send one control packet on sock: the header (type, seq), len bytes of body and, when
 * fd >= 0, fd attached (SCM_RIGHTS).  flags are sendmsg's (MSG_NOSIGNAL is always added);
 * EINTR is retried.  0, -EMSGSIZE (body too large), or sendmsg's -errno.
 */
int zvfs_msg_send(int sock, uint16_t type, uint32_t seq, const void *body, uint32_t len, int fd,
		  int flags);

/*
 * A request copied out of a ring (the daemon copies req before checking, so
 * a client cannot change it between check and use): known op, flags valid
 * for the op, off + len without overflow, len <= data_size for READ/WRITE.
 * 0 or -EINVAL / -EOPNOTSUPP.
 */
int zvfs_req_check(const struct zvfs_req *req, uint32_t data_size);

/* Printable name of an op ("read", ...), "?" when unknown. */
const char *zvfs_op_name(uint32_t op);

#endif /* ZVFS_IPC_PROTO_H */
