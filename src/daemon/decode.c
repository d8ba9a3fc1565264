/* SPDX-License-Identifier: MIT */
/*
 * decode.c - zvfsd's pure control-packet decoding and the latency histogram
 * arithmetic (daemon/decode.h).  No I/O, no logging, no state.
 */
#include "daemon/decode.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int fail(struct zvfsd_ctl *out, int err, bool drop, const char *text)
{
	out->drop = drop;
	snprintf(out->text, sizeof(out->text), "%s", text);
	return err;
}

int zvfsd_ctl_decode(const void *pkt, size_t n, int nfds, bool hello_done, struct zvfsd_ctl *out)
{
	struct zvfs_msg_hdr h;
	const uint8_t *body = (const uint8_t *)pkt + sizeof(h);
	int r;

	memset(out, 0, sizeof(*out));
	if (!pkt || n < sizeof(h))
		return fail(out, -EBADMSG, true, "malformed message: shorter than a header");
	memcpy(&h, pkt, sizeof(h));
	out->seq = h.seq;
	out->type = h.type;
	r = zvfs_msg_check(pkt, n, nfds);
	if (r == -EPROTO) {
		out->drop = true;
		snprintf(out->text, sizeof(out->text), "client protocol %u, daemon %u",
			 (unsigned)h.version, (unsigned)ZVFS_PROTO_VERSION);
		return r;
	}
	if (r < 0) {
		out->drop = true;
		snprintf(out->text, sizeof(out->text),
			 "malformed message (type %u, %zu bytes, %d fds)", (unsigned)h.type, n,
			 nfds);
		return r;
	}
	switch (h.type) {
	case ZVFS_MSG_HELLO:
	case ZVFS_MSG_RING_ADD:
	case ZVFS_MSG_OPEN:
	case ZVFS_MSG_REMOVE:
	case ZVFS_MSG_STATS:
	case ZVFS_MSG_SHUTDOWN:
		break;
	default:
		return fail(out, -EBADMSG, true, "not a request type");
	}
	if (!hello_done && h.type != ZVFS_MSG_HELLO)
		return fail(out, -EPROTO, true, "HELLO must come first");
	if (hello_done && h.type == ZVFS_MSG_HELLO)
		return fail(out, -EBADMSG, true, "second HELLO");

	switch (h.type) {
	case ZVFS_MSG_HELLO: {
		struct zvfs_msg_hello m;

		memcpy(&m, body, sizeof(m));
		out->hello_version = m.version;
		for (size_t i = 0; i < sizeof(m.comm) - 1 && m.comm[i]; i++)
			out->comm[i] = (m.comm[i] >= 0x20 && m.comm[i] < 0x7f) ? m.comm[i] : '?';
		if (m.version != ZVFS_PROTO_VERSION) {
			out->drop = true;
			snprintf(out->text, sizeof(out->text), "client protocol %u, daemon %u",
				 (unsigned)m.version, (unsigned)ZVFS_PROTO_VERSION);
			return -EPROTO;
		}
		break;
	}
	case ZVFS_MSG_RING_ADD: {
		struct zvfs_msg_ring_add m;

		memcpy(&m, body, sizeof(m));
		out->data_size = m.data_size;
		out->tid = m.tid;
		if (m.data_size == 0 || m.data_size % 4096 || m.data_size > ZVFS_RING_DATA_MAX)
			return fail(out, -EINVAL, false,
				    "ring data size must be a multiple of 4096, 4096..64 MiB");
		break;
	}
	case ZVFS_MSG_OPEN: {
		struct zvfs_msg_open m;

		memcpy(&m, body, sizeof(m));
		out->open_flags = m.flags;
		if (m.flags & ~(ZVFS_OPEN_CREATE | ZVFS_OPEN_TRUNC | ZVFS_OPEN_STAT))
			return fail(out, -EINVAL, false, "unknown OPEN flags");
		if ((m.flags & ZVFS_OPEN_STAT) && (m.flags & (ZVFS_OPEN_CREATE | ZVFS_OPEN_TRUNC)))
			return fail(out, -EINVAL, false, "OPEN: STAT excludes CREATE and TRUNC");
		break;
	}
	default:
		break;
	}
	return 0;
}

uint32_t zvfsd_op_rights(uint32_t op)
{
	switch (op) {
	case ZVFS_OP_READ:
		return ZVFS_RIGHT_READ;
	case ZVFS_OP_WRITE:
	case ZVFS_OP_TRUNCATE:
	case ZVFS_OP_FALLOCATE:
		return ZVFS_RIGHT_WRITE;
	default:
		return 0;
	}
}

bool zvfsd_op_allowed(uint32_t op, uint32_t rights)
{
	uint32_t need = zvfsd_op_rights(op);

	if ((rights & need) != need)
		return false;
	return rights || op == ZVFS_OP_STAT || op == ZVFS_OP_SEEK || op == ZVFS_OP_CLOSE;
}

bool zvfsd_op_has_handle(uint32_t op)
{
	return op != ZVFS_OP_NOP && op != ZVFS_OP_SYNC_ALL && op < ZVFS_OP_COUNT;
}

unsigned zvfsd_hist_bucket(uint64_t ns)
{
	unsigned b = ns ? 63u - (unsigned)__builtin_clzll(ns) : 0;

	return b < ZVFSD_HIST ? b : ZVFSD_HIST - 1;
}

uint64_t zvfsd_hist_quantile(const uint64_t hist[ZVFSD_HIST], double q)
{
	uint64_t total = 0, want, seen = 0;

	for (unsigned i = 0; i < ZVFSD_HIST; i++)
		total += hist[i];
	if (total == 0)
		return 0;
	want = (uint64_t)(q * (double)total + 0.999999);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < ZVFSD_HIST; i++) {
		seen += hist[i];
		if (seen >= want)
			return 2ull << i;
	}
	return 2ull << (ZVFSD_HIST - 1);
}
