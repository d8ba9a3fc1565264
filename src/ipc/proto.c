/* SPDX-License-Identifier: MIT */
/*
 * proto.c - the checks zvfsd runs on everything a client sends (ipc/proto.h),
 * and zvfs_msg_send(), which every sender of control packets uses.
 *
 * The checks are pure functions over bytes: no allocation, no I/O, no
 * logging, so they are cheap on the request path and easy to fuzz
 * (tests/fuzz/fuzz_proto.c).  Both sides may use zvfs_msg_check(): it knows
 * the size of every type, replies included.
 */
#include "ipc/proto.h"

#include <errno.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/socket.h>

#include "zvfs/fs.h"

/*
 * Body size of each message type; -1 = variable (at most ZVFS_MSG_MAX - header).  nfds: fds
 * that come with it; -1 = none or one (HELLO_OK: the size table is optional).
 */
struct msg_shape {
	int body;
	int nfds;
};

static const struct msg_shape msg_shapes[] = {
	[ZVFS_MSG_HELLO] = {sizeof(struct zvfs_msg_hello), 0},
	[ZVFS_MSG_HELLO_OK] = {sizeof(struct zvfs_msg_hello_ok), -1},
	[ZVFS_MSG_ERROR] = {sizeof(struct zvfs_msg_error), 0},
	[ZVFS_MSG_OK] = {0, 0},
	[ZVFS_MSG_RING_ADD] = {sizeof(struct zvfs_msg_ring_add), 1},
	[ZVFS_MSG_RING_OK] = {sizeof(struct zvfs_msg_ring_ok), 0},
	[ZVFS_MSG_OPEN] = {sizeof(struct zvfs_msg_open), 1},
	[ZVFS_MSG_OPEN_OK] = {sizeof(struct zvfs_msg_open_ok), 0},
	[ZVFS_MSG_REMOVE] = {0, 1},
	[ZVFS_MSG_STATS] = {0, 0},
	[ZVFS_MSG_STATS_OK] = {-1, 0},
	[ZVFS_MSG_SHUTDOWN] = {0, 0},
};

int zvfs_msg_check(const void *pkt, size_t n, int nfds)
{
	struct zvfs_msg_hdr h;
	const struct msg_shape *shape;

	if (!pkt || n < sizeof(h) || n > ZVFS_MSG_MAX || nfds < 0)
		return -EBADMSG;
	memcpy(&h, pkt, sizeof(h));
	if (h.magic != ZVFS_PROTO_MAGIC)
		return -EBADMSG;
	/* A version mismatch is the one error worth a precise answer: -EPROTO. */
	if (h.version != ZVFS_PROTO_VERSION)
		return -EPROTO;
	if (h.type == 0 || h.type >= sizeof(msg_shapes) / sizeof(msg_shapes[0]))
		return -EBADMSG;
	if ((uint64_t)h.len != n - sizeof(h))
		return -EBADMSG;
	shape = &msg_shapes[h.type];
	if (shape->body >= 0 && h.len != (uint32_t)shape->body)
		return -EBADMSG;
	if (shape->nfds >= 0 ? nfds != shape->nfds : nfds > 1)
		return -EBADMSG;
	return 0;
}

/* Flags each op accepts (zvfs_req.flags); unknown bits are -EINVAL. */
static const uint32_t req_flags[ZVFS_OP_COUNT] = {
	[ZVFS_OP_NOP] = 0,
	[ZVFS_OP_READ] = ZVFS_IO_DIRECT | ZVFS_IO_NOWAIT,
	[ZVFS_OP_WRITE] = ZVFS_IO_DIRECT | ZVFS_IO_DSYNC | ZVFS_IO_SYNC | ZVFS_IO_APPEND,
	[ZVFS_OP_TRUNCATE] = 0,
	[ZVFS_OP_FALLOCATE] = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE,
	[ZVFS_OP_SYNC] = ZVFS_SYNC_DATA | ZVFS_SYNC_NOFLUSH,
	[ZVFS_OP_WRITEBACK] = 0,
	[ZVFS_OP_DROP_CACHE] = 0,
	[ZVFS_OP_PREFETCH] = 0,
	[ZVFS_OP_STAT] = 0,
	[ZVFS_OP_SEEK] = 1,
	[ZVFS_OP_CLOSE] = 0,
	[ZVFS_OP_SYNC_ALL] = 0,
};

int zvfs_msg_send(int sock, uint16_t type, uint32_t seq, const void *body, uint32_t len, int fd,
		  int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct zvfs_msg_hdr h = {
		.magic = ZVFS_PROTO_MAGIC,
		.version = ZVFS_PROTO_VERSION,
		.type = type,
		.len = len,
		.seq = seq,
	};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)body, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	ssize_t n;

	if (len > ZVFS_MSG_MAX - sizeof(h))
		return -EMSGSIZE;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		/* MSG_NOSIGNAL: a peer that died gives EPIPE here, not SIGPIPE */
		n = sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* SOCK_SEQPACKET sends a packet whole or not at all */
	return (size_t)n == sizeof(h) + len ? 0 : -EIO;
}

int zvfs_req_check(const struct zvfs_req *req, uint32_t data_size)
{
	if (!req || req->op >= ZVFS_OP_COUNT)
		return -EOPNOTSUPP;
	if (req->flags & ~req_flags[req->op])
		/* fallocate(2) answers an unknown mode with EOPNOTSUPP, not EINVAL. */
		return req->op == ZVFS_OP_FALLOCATE ? -EOPNOTSUPP : -EINVAL;
	if (req->off + req->len < req->off)
		return -EINVAL;
	switch (req->op) {
	case ZVFS_OP_READ:
	case ZVFS_OP_WRITE:
		if (req->len > data_size)
			return -EINVAL;
		break;
	case ZVFS_OP_FALLOCATE:
		if (req->len == 0)
			return -EINVAL;
		/* The modes zvfs_file_fallocate() knows; PUNCH_HOLE only with KEEP_SIZE. */
		if ((req->flags & FALLOC_FL_PUNCH_HOLE) &&
		    (req->flags != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)))
			return -EOPNOTSUPP;
		break;
	default:
		break;
	}
	return 0;
}

static const char *const op_names[ZVFS_OP_COUNT] = {
	[ZVFS_OP_NOP] = "nop",
	[ZVFS_OP_READ] = "read",
	[ZVFS_OP_WRITE] = "write",
	[ZVFS_OP_TRUNCATE] = "truncate",
	[ZVFS_OP_FALLOCATE] = "fallocate",
	[ZVFS_OP_SYNC] = "sync",
	[ZVFS_OP_WRITEBACK] = "writeback",
	[ZVFS_OP_DROP_CACHE] = "drop_cache",
	[ZVFS_OP_PREFETCH] = "prefetch",
	[ZVFS_OP_STAT] = "stat",
	[ZVFS_OP_SEEK] = "seek",
	[ZVFS_OP_CLOSE] = "close",
	[ZVFS_OP_SYNC_ALL] = "sync_all",
};

const char *zvfs_op_name(uint32_t op)
{
	return op < ZVFS_OP_COUNT ? op_names[op] : "?";
}
