/* SPDX-License-Identifier: MIT */
/*
 * mkcorpus_proto OUTDIR: seed inputs for fuzz_proto (encoding in fuzz_proto.c): one valid
 * packet of every type a client sends (and a few replies), in both HELLO states and with
 * the fd count each takes; one valid request of every op; a histogram.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ipc/proto.h"

static const char *g_out;
static int g_n;

static int put(const char *name, const void *p, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%03d-%s", g_out, g_n++, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}

static int packet(const char *name, uint16_t type, const void *body, uint32_t len, int nfds,
		  bool hello_done)
{
	uint8_t buf[1 + ZVFS_MSG_MAX];
	struct zvfs_msg_hdr h = {ZVFS_PROTO_MAGIC, ZVFS_PROTO_VERSION, type, len, 7};

	buf[0] = (uint8_t)(0 | (hello_done ? 4 : 0) | (nfds << 4));
	memcpy(buf + 1, &h, sizeof(h));
	if (len)
		memcpy(buf + 1 + sizeof(h), body, len);
	return put(name, buf, 1 + sizeof(h) + len);
}

static int request(const char *name, uint32_t op, uint32_t flags, uint64_t off, uint64_t len)
{
	uint8_t buf[5 + sizeof(struct zvfs_req)];
	struct zvfs_req req = {op, flags, 1ull << 32, off, len, 0, 1, 0, 0, {0}};
	uint32_t ds = ZVFS_RING_DATA_DEFAULT;

	buf[0] = 1;
	memcpy(buf + 1, &ds, 4);
	memcpy(buf + 5, &req, sizeof(req));
	return put(name, buf, sizeof(buf));
}

int main(int argc, char **argv)
{
	struct zvfs_msg_hello hello = {ZVFS_PROTO_VERSION, 1, "postgres"};
	struct zvfs_msg_ring_add ra = {ZVFS_RING_DATA_DEFAULT, 1};
	struct zvfs_msg_open op = {ZVFS_OPEN_CREATE | ZVFS_OPEN_TRUNC, 0};
	struct zvfs_msg_error err = {EPROTO, "client protocol 2, daemon 1"};
	uint8_t hist[1 + 2 * 40];
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: mkcorpus_proto OUTDIR\n");
		return 2;
	}
	g_out = argv[1];
	if (mkdir(g_out, 0755) < 0 && errno != EEXIST) {
		perror(g_out);
		return 1;
	}
	bad |= packet("hello", ZVFS_MSG_HELLO, &hello, sizeof(hello), 0, false);
	bad |= packet("hello-again", ZVFS_MSG_HELLO, &hello, sizeof(hello), 0, true);
	bad |= packet("ring-add", ZVFS_MSG_RING_ADD, &ra, sizeof(ra), 1, true);
	bad |= packet("open", ZVFS_MSG_OPEN, &op, sizeof(op), 1, true);
	bad |= packet("open-early", ZVFS_MSG_OPEN, &op, sizeof(op), 1, false);
	bad |= packet("remove", ZVFS_MSG_REMOVE, NULL, 0, 1, true);
	bad |= packet("stats", ZVFS_MSG_STATS, NULL, 0, 0, true);
	bad |= packet("shutdown", ZVFS_MSG_SHUTDOWN, NULL, 0, 0, true);
	bad |= packet("error", ZVFS_MSG_ERROR, &err, sizeof(err), 0, true);
	bad |= packet("stats-ok", ZVFS_MSG_STATS_OK, "clients 1 handles 0\n", 20, 0, true);
	for (uint32_t o = 0; o < ZVFS_OP_COUNT; o++) {
		char name[32];

		snprintf(name, sizeof(name), "req-%s", zvfs_op_name(o));
		bad |= request(name, o, 0, 4096, o == ZVFS_OP_FALLOCATE ? 8192 : 512);
	}
	bad |= request("req-write-flags", ZVFS_OP_WRITE, 0xf, 0, ZVFS_RING_DATA_DEFAULT);
	hist[0] = 2;
	for (int i = 0; i < 40; i++) {
		hist[1 + 2 * i] = (uint8_t)(i * 7);
		hist[2 + 2 * i] = (uint8_t)(i % 5);
	}
	bad |= put("hist", hist, sizeof(hist));
	return bad;
}
