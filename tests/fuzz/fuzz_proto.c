/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proto: a libFuzzer target over what zvfsd runs on bytes a client
 * sends (docs/fuzzing.md): zvfs_msg_check(), zvfsd_ctl_decode() (the
 * daemon's control-packet decoding, src/daemon/decode.c), zvfs_req_check()
 * and the rights/handle rules of ring requests, and the latency histogram
 * arithmetic STATS runs.  Any return code is fine as long as it is one the
 * headers promise; a crash, a sanitizer report or a broken promise (a
 * FUZZ_CHECK) is a bug.
 *
 * Input: byte 0 selects: bit 0-1 mode (0 control packet, 1 ring request,
 * 2 histogram, 3 all three on the same bytes), bit 2 HELLO done, bits 4-5
 * the fd count passed with a packet.  Bytes 1-4 (ring request): the ring's
 * data size.  The rest: the packet / request / histogram.
 *
 * Also built without libFuzzer into fuzz_proto_replay (with fuzz_replay.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/decode.h"
#include "ipc/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s\n", __FILE__,         \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void fuzz_packet(const uint8_t *p, size_t n, int nfds, bool hello_done)
{
	struct zvfsd_ctl m;
	struct zvfs_msg_hdr h;
	int r, d;

	r = zvfs_msg_check(p, n, nfds);
	FUZZ_CHECK(r == 0 || r == -EPROTO || r == -EBADMSG);
	if (r == 0) {
		memcpy(&h, p, sizeof(h));
		FUZZ_CHECK(n >= sizeof(h) && n <= ZVFS_MSG_MAX);
		FUZZ_CHECK(h.magic == ZVFS_PROTO_MAGIC && h.version == ZVFS_PROTO_VERSION);
		FUZZ_CHECK((size_t)h.len == n - sizeof(h));
		FUZZ_CHECK(h.type >= ZVFS_MSG_HELLO && h.type <= ZVFS_MSG_SHUTDOWN);
		FUZZ_CHECK(nfds <= 1);
	}
	d = zvfsd_ctl_decode(p, n, nfds, hello_done, &m);
	FUZZ_CHECK(d == 0 || d == -EPROTO || d == -EBADMSG || d == -EINVAL);
	if (r < 0)
		FUZZ_CHECK(d == r && m.drop); /* a malformed packet never gets acted on */
	if (d == 0) {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(hello_done == (m.type != ZVFS_MSG_HELLO));
		FUZZ_CHECK(m.type != ZVFS_MSG_RING_ADD || (m.data_size && m.data_size % 4096 == 0 &&
							   m.data_size <= ZVFS_RING_DATA_MAX));
		FUZZ_CHECK(
			m.type != ZVFS_MSG_OPEN ||
			!(m.open_flags & ~(ZVFS_OPEN_CREATE | ZVFS_OPEN_TRUNC | ZVFS_OPEN_STAT)));
		/* a stat-only handle never creates or truncates */
		FUZZ_CHECK(m.type != ZVFS_MSG_OPEN || !(m.open_flags & ZVFS_OPEN_STAT) ||
			   !(m.open_flags & (ZVFS_OPEN_CREATE | ZVFS_OPEN_TRUNC)));
		FUZZ_CHECK(nfds == ((m.type == ZVFS_MSG_RING_ADD || m.type == ZVFS_MSG_OPEN ||
				     m.type == ZVFS_MSG_REMOVE)
					    ? 1
					    : 0));
		FUZZ_CHECK(m.comm[sizeof(m.comm) - 1] == 0);
		for (size_t i = 0; m.comm[i]; i++)
			FUZZ_CHECK(m.comm[i] >= 0x20 && m.comm[i] < 0x7f);
	} else {
		FUZZ_CHECK(m.text[0] != 0 && memchr(m.text, 0, sizeof(m.text)) != NULL);
		FUZZ_CHECK(d != -EINVAL || !m.drop);
	}
}

static void fuzz_request(uint32_t data_size, const uint8_t *p, size_t n)
{
	struct zvfs_req req;
	int r;

	memset(&req, 0, sizeof(req));
	memcpy(&req, p, n < sizeof(req) ? n : sizeof(req));
	r = zvfs_req_check(&req, data_size);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EOPNOTSUPP);
	FUZZ_CHECK(zvfs_op_name(req.op) != NULL);
	if (r == 0) {
		FUZZ_CHECK(req.op < ZVFS_OP_COUNT);
		FUZZ_CHECK(req.off + req.len >= req.off);
		if (req.op == ZVFS_OP_READ || req.op == ZVFS_OP_WRITE)
			FUZZ_CHECK(req.len <= data_size);
		if (zvfsd_op_rights(req.op))
			FUZZ_CHECK(zvfsd_op_has_handle(req.op));
	}
}

static void fuzz_hist(const uint8_t *p, size_t n)
{
	uint64_t hist[ZVFSD_HIST] = {0}, q50, q99, q100;

	for (size_t i = 0; i + 1 < n && i / 2 < ZVFSD_HIST; i += 2)
		hist[i / 2] = (uint64_t)p[i] << (p[i + 1] & 31);
	q50 = zvfsd_hist_quantile(hist, 0.5);
	q99 = zvfsd_hist_quantile(hist, 0.99);
	q100 = zvfsd_hist_quantile(hist, 1.0);
	FUZZ_CHECK(q50 <= q99 && q99 <= q100);
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t ns;

		memcpy(&ns, p + i, 8);
		FUZZ_CHECK(zvfsd_hist_bucket(ns) < ZVFSD_HIST);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode;
	uint32_t data_size = 0;

	if (size < 1)
		return 0;
	mode = data[0] & 3u;
	if (mode == 0 || mode == 3)
		fuzz_packet(data + 1, size - 1, (data[0] >> 4) & 3, data[0] & 4);
	if ((mode == 1 || mode == 3) && size >= 5) {
		memcpy(&data_size, data + 1, 4);
		fuzz_request(data_size, data + 5, size - 5);
	}
	if (mode == 2 || mode == 3)
		fuzz_hist(data + 1, size - 1);
	return 0;
}
