/* SPDX-License-Identifier: MIT */
/*
 * hostile - a client that speaks the zvfsd protocol (src/ipc/proto.h) by
 * hand, without libzvfs.so, and tries to reach what it may not: run by
 * test_faults.sh as an unprivileged user (nobody) against a daemon run by root.
 *
 *   1. An O_PATH fd of a root-owned 0600 ZVFS file (opening it O_PATH needs
 *      no permission on the file itself): OPEN must be refused, or give no
 *      read right, and a READ on whatever handle came back must fail.
 *   2. A read-only fd of a root-owned 0644 ZVFS file: OPEN with TRUNC must be
 *      refused; a plain OPEN gives the read right only, and WRITE, TRUNCATE
 *      and FALLOCATE on it fail.
 *   3. Handles of other clients: this client's handle used on a second
 *      connection fails (READ and CLOSE), and stays usable here; while a
 *      root process holds the 0600 file open, READ and CLOSE on guessed
 *      handles 0..4095 and a few far ones all fail.
 *   4. REMOVE with the O_PATH fd of a linked file changes nothing (the script
 *      reads the file back as root).
 *   5. Malformed messages, each on a connection of its own: bad magic, bad
 *      length, unknown type, OPEN without an fd, a ring memfd smaller than it
 *      claims, a ring shrunk after RING_ADD and then used.  Afterwards a new
 *      connection still gets HELLO_OK (the daemon lives).
 *
 * usage: hostile SOCKET SECRET READABLE    prints ok/FAIL lines, exit 0 if all passed
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/proto.h"
#include "ipc/ring.h"

static int nfailed;
static uint32_t seq;

__attribute__((format(printf, 1, 2))) static void ok(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("ok ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	nfailed++;
}

static const char *sock_path;

static int conn(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 5};

	if (s < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;
		close(s);
		return -e;
	}
	/* A daemon that never answers is a failure, not a hang. */
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return s;
}

/* Send hdr(type) + body (+ fd when fd >= 0); raw: the packet as given. */
static int send_pkt(int s, const void *pkt, size_t n, int fd)
{
	struct iovec iov = {.iov_base = (void *)pkt, .iov_len = n};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(s, &m, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -errno;
}

static int send_msg(int s, uint16_t type, const void *body, uint32_t len, int fd)
{
	unsigned char pkt[ZVFS_MSG_MAX + sizeof(struct zvfs_msg_hdr)];
	struct zvfs_msg_hdr h = {.magic = ZVFS_PROTO_MAGIC,
				 .version = ZVFS_PROTO_VERSION,
				 .type = type,
				 .len = len,
				 .seq = ++seq};

	memcpy(pkt, &h, sizeof(h));
	if (len)
		memcpy(pkt + sizeof(h), body, len);
	return send_pkt(s, pkt, sizeof(h) + len, fd);
}

/* Receive one reply: its type (body into out, up to outlen), or -errno (-EPIPE: closed). */
static int recv_msg(int s, void *out, size_t outlen)
{
	unsigned char pkt[ZVFS_MSG_MAX + sizeof(struct zvfs_msg_hdr)];
	struct zvfs_msg_hdr h;
	ssize_t n = recv(s, pkt, sizeof(pkt), 0);

	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	if ((size_t)n < sizeof(h))
		return -EBADMSG;
	memcpy(&h, pkt, sizeof(h));
	if (out) {
		size_t b = (size_t)n - sizeof(h);
		memset(out, 0, outlen);
		memcpy(out, pkt + sizeof(h), b < outlen ? b : outlen);
	}
	return h.type;
}

static int hello(int s)
{
	struct zvfs_msg_hello hb = {.version = ZVFS_PROTO_VERSION, .pid = (uint32_t)getpid()};
	struct zvfs_msg_hello_ok ho;

	memcpy(hb.comm, "hostile", 7);
	if (send_msg(s, ZVFS_MSG_HELLO, &hb, sizeof(hb), -1) != 0)
		return -EIO;
	int t = recv_msg(s, &ho, sizeof(ho));
	return t == ZVFS_MSG_HELLO_OK ? 0 : (t < 0 ? t : -EPROTO);
}

struct ring {
	struct zvfs_ring *r;
	int memfd;
	uint32_t data_size;
	bool ok;
};

/* Register a ring of data_size bytes; memfd_bytes is what the memfd really has. */
static int ring_add(int s, struct ring *rg, uint32_t data_size, uint64_t memfd_bytes)
{
	struct zvfs_msg_ring_add ra = {.data_size = data_size, .tid = (uint32_t)getpid()};
	struct zvfs_msg_ring_ok rok;
	uint64_t map = zvfs_ring_bytes(data_size);

	/* zvfsd seals the memfd against shrinking, which needs MFD_ALLOW_SEALING. */
	rg->memfd = memfd_create("hostile-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (rg->memfd < 0 || ftruncate(rg->memfd, (off_t)memfd_bytes) != 0)
		return -errno;
	rg->r = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED, rg->memfd, 0);
	if (rg->r == MAP_FAILED)
		return -errno;
	rg->data_size = data_size;
	if (memfd_bytes >= ZVFS_RING_HDR) {
		rg->r->magic = ZVFS_PROTO_MAGIC;
		rg->r->version = ZVFS_PROTO_VERSION;
		rg->r->data_size = data_size;
	}
	if (send_msg(s, ZVFS_MSG_RING_ADD, &ra, sizeof(ra), rg->memfd) != 0)
		return -EIO;
	int t = recv_msg(s, &rok, sizeof(rok));
	rg->ok = t == ZVFS_MSG_RING_OK;
	return t;
}

/* One request on the ring; the response's result, or -ETIME when none came in 5 s. */
static int64_t req(struct ring *rg, uint32_t op, uint64_t handle, uint64_t off, uint64_t len,
		   uint64_t arg, uint32_t flags)
{
	struct zvfs_ring *r = rg->r;
	static uint64_t rseq;

	memset(&r->req, 0, sizeof(r->req));
	r->req.op = op;
	r->req.flags = flags;
	r->req.handle = handle;
	r->req.off = off;
	r->req.len = len;
	r->req.arg = arg;
	r->req.seq = ++rseq;
	zvfs_ring_publish(r, ZVFS_RING_REQ, ZVFS_SLEEP_DAEMON);
	for (int i = 0; i < 5; i++) {
		int64_t st =
			zvfs_ring_wait(r, ZVFS_RING_REQ, 20000, ZVFS_SLEEP_CLIENT, 1000000000ull);
		if (st == ZVFS_RING_DONE) {
			int64_t res = r->resp.result;
			zvfs_ring_store_state(r, ZVFS_RING_IDLE);
			return res;
		}
		if (st >= 0)
			break;
	}
	return -ETIME;
}

static int open_msg(int s, int fd, uint32_t flags, struct zvfs_msg_open_ok *oo, int *err)
{
	struct zvfs_msg_open o = {.flags = flags};
	unsigned char body[256];

	*err = 0;
	if (send_msg(s, ZVFS_MSG_OPEN, &o, sizeof(o), fd) != 0)
		return -EIO;
	int t = recv_msg(s, body, sizeof(body));
	if (t == ZVFS_MSG_OPEN_OK)
		memcpy(oo, body, sizeof(*oo));
	else if (t == ZVFS_MSG_ERROR)
		memcpy(err, body, sizeof(int32_t));
	return t;
}

static bool daemon_alive(const char *when)
{
	int s = conn();

	if (s < 0) {
		fail("daemon gone %s: connect: %s", when, strerror(-s));
		return false;
	}
	int r = hello(s);
	close(s);
	if (r != 0) {
		fail("daemon %s: HELLO on a new connection: %s", when,
		     r < 0 ? strerror(-r) : "no HELLO_OK");
		return false;
	}
	return true;
}

/* Send a raw packet on a fresh connection; the daemon must answer or hang up, and live. */
static void malformed(const char *name, const void *pkt, size_t n, int fd)
{
	int s = conn();
	unsigned char out[256];

	if (s < 0) {
		fail("malformed %s: connect: %s", name, strerror(-s));
		return;
	}
	if (hello(s) != 0) {
		fail("malformed %s: HELLO", name);
		close(s);
		return;
	}
	send_pkt(s, pkt, n, fd);
	int t = recv_msg(s, out, sizeof(out));
	close(s);
	if (t == -EAGAIN || t == -EWOULDBLOCK)
		fail("malformed %s: no reply and no hang-up in 5 s", name);
	else if (daemon_alive(name))
		ok("malformed %s: %s, daemon alive", name,
		   t == ZVFS_MSG_ERROR ? "ERROR"
		   : t < 0	       ? "connection closed"
				       : "answered");
}

int main(int argc, char **argv)
{
	struct zvfs_msg_open_ok oo;
	struct ring rg = {0};
	int err, s, t;

	if (argc < 4) {
		fprintf(stderr, "usage: hostile SOCKET SECRET READABLE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sock_path = argv[1];
	s = conn();
	if (s < 0) {
		printf("FAIL connect %s as uid %d: %s\n", sock_path, (int)getuid(), strerror(-s));
		return 1;
	}
	if (hello(s) != 0) {
		printf("FAIL HELLO refused\n");
		return 1;
	}
	t = ring_add(s, &rg, ZVFS_RING_DATA_DEFAULT, zvfs_ring_bytes(ZVFS_RING_DATA_DEFAULT));
	if (t != ZVFS_MSG_RING_OK) {
		printf("FAIL RING_ADD: reply %d\n", t);
		return 1;
	}
	ok("HELLO + RING_ADD as uid %d", (int)getuid());
	unsigned char *data = (unsigned char *)rg.r + ZVFS_RING_HDR;

	/* 1. O_PATH fd of the 0600 file. */
	int pfd = open(argv[2], O_PATH);
	if (pfd < 0) {
		fail("O_PATH open of %s: %s", argv[2], strerror(errno));
	} else {
		for (uint32_t fl = 0; fl <= ZVFS_OPEN_TRUNC; fl += ZVFS_OPEN_TRUNC) {
			t = open_msg(s, pfd, fl, &oo, &err);
			if (t == ZVFS_MSG_ERROR) {
				ok("OPEN (flags %u) of an O_PATH fd of a 0600 file: refused (%s)",
				   fl, strerror(err));
				continue;
			}
			if (t != ZVFS_MSG_OPEN_OK) {
				fail("OPEN of an O_PATH fd: reply %d", t);
				continue;
			}
			memset(data, 0, 4096);
			int64_t r = req(&rg, ZVFS_OP_READ, oo.handle, 0, 4096, 0, 0);
			if (r >= 0 || (oo.rights & ZVFS_RIGHT_READ))
				fail("OPEN (flags %u) of an O_PATH fd of a 0600 file gave handle "
				     "%" PRIu64 " rights %u; READ returned %" PRId64,
				     fl, oo.handle, oo.rights, r);
			else
				ok("OPEN of an O_PATH fd accepted without rights; READ %" PRId64,
				   r);
		}
	}

	/* 2. A read-only fd of the 0644 file. */
	int rfd = open(argv[3], O_RDONLY);
	uint64_t own = UINT64_MAX;
	if (rfd < 0) {
		fail("open %s read-only: %s", argv[3], strerror(errno));
	} else {
		t = open_msg(s, rfd, ZVFS_OPEN_TRUNC, &oo, &err);
		if (t == ZVFS_MSG_ERROR)
			ok("OPEN TRUNC through a read-only fd: refused (%s)", strerror(err));
		else
			fail("OPEN TRUNC through a read-only fd: reply %d (want ERROR)", t);
		t = open_msg(s, rfd, 0, &oo, &err);
		if (t != ZVFS_MSG_OPEN_OK) {
			fail("OPEN of a read-only fd of a 0644 file: reply %d err %d", t, err);
		} else {
			own = oo.handle;
			if (oo.rights != ZVFS_RIGHT_READ)
				fail("read-only fd: rights %u, want READ only", oo.rights);
			memset(data, 'X', 4096);
			int64_t w = req(&rg, ZVFS_OP_WRITE, own, 0, 4096, 0, 0);
			int64_t tr = req(&rg, ZVFS_OP_TRUNCATE, own, 0, 0, 0, 0);
			int64_t fa = req(&rg, ZVFS_OP_FALLOCATE, own, 0, 1 << 20, 0, 0);
			if (w >= 0 || tr >= 0 || fa >= 0)
				fail("through a read-only handle: WRITE %" PRId64
				     ", TRUNCATE %" PRId64 ", FALLOCATE %" PRId64 " (want < 0)",
				     w, tr, fa);
			else
				ok("read-only handle: WRITE %" PRId64 ", TRUNCATE %" PRId64
				   ", FALLOCATE %" PRId64,
				   w, tr, fa);
			int64_t rd = req(&rg, ZVFS_OP_READ, own, 0, 16, 0, 0);
			if (rd < 0)
				fail("read-only handle: READ %" PRId64 " (want data)", rd);
		}
	}

	/* 3a. A handle of this client used by another client (a second connection). */
	if (own != UINT64_MAX) {
		int s2 = conn();
		struct ring rg2 = {0};
		if (s2 < 0 || hello(s2) != 0 ||
		    ring_add(s2, &rg2, ZVFS_RING_DATA_DEFAULT,
			     zvfs_ring_bytes(ZVFS_RING_DATA_DEFAULT)) != ZVFS_MSG_RING_OK) {
			fail("second connection: HELLO + RING_ADD");
		} else {
			int64_t rd = req(&rg2, ZVFS_OP_READ, own, 0, 16, 0, 0);
			int64_t cl = req(&rg2, ZVFS_OP_CLOSE, own, 0, 0, 0, 0);
			int64_t again = req(&rg, ZVFS_OP_READ, own, 0, 16, 0, 0);
			if (rd >= 0 || cl >= 0)
				fail("handle %" PRIu64 " of another client: READ %" PRId64
				     ", CLOSE %" PRId64 " (want < 0)",
				     own, rd, cl);
			else if (again < 0)
				fail("own handle unusable after another client's CLOSE: %" PRId64,
				     again);
			else
				ok("another client's handle: READ %" PRId64 ", CLOSE %" PRId64
				   "; still ours",
				   rd, cl);
		}
		if (s2 >= 0)
			close(s2);
	}

	/* 3. Guessed handles: another client's (root's) open file must stay out of reach. */
	int nread = 0, nclose = 0, ntime = 0;
	for (uint64_t h = 0; h < 4100; h++) {
		uint64_t hh = h < 4096 ? h : (UINT64_MAX - (h - 4096)) ^ (h << 32);
		if (hh == own)
			continue;
		int64_t r = req(&rg, ZVFS_OP_READ, hh, 0, 4096, 0, 0);
		if (r == -ETIME && ++ntime > 2)
			break;
		if (r >= 0)
			nread++;
		r = req(&rg, ZVFS_OP_CLOSE, hh, 0, 0, 0, 0);
		if (r >= 0)
			nclose++;
	}
	if (ntime)
		fail("guessed handles: %d requests got no response in 5 s", ntime);
	else if (nread || nclose)
		fail("guessed handles: %d READs and %d CLOSEs on handles not ours succeeded", nread,
		     nclose);
	else
		ok("guessed handles: every READ and CLOSE on a handle not ours failed");

	/* 4. REMOVE of a linked file: nothing happens (the script checks the content). */
	if (pfd >= 0) {
		unsigned char body[256];
		if (send_msg(s, ZVFS_MSG_REMOVE, NULL, 0, pfd) == 0) {
			t = recv_msg(s, body, sizeof(body));
			ok("REMOVE of a linked file: reply %d", t);
		}
	}
	close(s);

	/* 5. Malformed messages, each on a new connection. */
	struct zvfs_msg_hdr h = {ZVFS_PROTO_MAGIC, ZVFS_PROTO_VERSION, ZVFS_MSG_OPEN, 8, 1};
	unsigned char pkt[64] = {0};
	h.magic = 0xdeadbeef;
	memcpy(pkt, &h, sizeof(h));
	malformed("bad magic", pkt, 24, -1);
	h.magic = ZVFS_PROTO_MAGIC;
	h.len = 4000;
	memcpy(pkt, &h, sizeof(h));
	malformed("len beyond the packet", pkt, 24, -1);
	h.len = 8;
	h.type = 999;
	memcpy(pkt, &h, sizeof(h));
	malformed("unknown type", pkt, 24, -1);
	h.type = ZVFS_MSG_OPEN;
	memcpy(pkt, &h, sizeof(h));
	malformed("OPEN without an fd", pkt, 24, -1);
	malformed("short header", pkt, 7, -1);
	h.type = ZVFS_MSG_RING_ADD;
	struct zvfs_msg_ring_add ra = {.data_size = ZVFS_RING_DATA_MAX * 4};
	memcpy(pkt, &h, sizeof(h));
	memcpy(pkt + sizeof(h), &ra, sizeof(ra));
	int mfd = memfd_create("hostile-small", MFD_CLOEXEC);
	if (mfd >= 0 && ftruncate(mfd, 4096) == 0)
		malformed("RING_ADD data_size too big, memfd too small", pkt, 24, mfd);
	if (mfd >= 0)
		close(mfd);

	/* A ring whose memfd is smaller than it claims, then used. */
	s = conn();
	if (s >= 0 && hello(s) == 0) {
		struct ring small = {0};
		t = ring_add(s, &small, ZVFS_RING_DATA_DEFAULT, ZVFS_RING_HDR);
		if (t == ZVFS_MSG_RING_OK) {
			int64_t r = req(&small, ZVFS_OP_NOP, 0, 0, 0, 0, 0);
			ok("RING_ADD of a too-small memfd accepted; NOP %" PRId64, r);
		} else {
			ok("RING_ADD of a too-small memfd refused (reply %d)", t);
		}
		close(s);
		daemon_alive("after a too-small ring");
	}

	/* A ring memfd that cannot be sealed: refused, or safe to use. */
	s = conn();
	if (s >= 0 && hello(s) == 0) {
		struct zvfs_msg_ring_add ra2 = {.data_size = ZVFS_RING_DATA_DEFAULT};
		int nfd = memfd_create("hostile-nosealing", MFD_CLOEXEC);
		if (nfd >= 0 && ftruncate(nfd, (off_t)zvfs_ring_bytes(ra2.data_size)) == 0 &&
		    send_msg(s, ZVFS_MSG_RING_ADD, &ra2, sizeof(ra2), nfd) == 0)
			ok("RING_ADD of a memfd without sealing: reply %d", recv_msg(s, NULL, 0));
		if (nfd >= 0)
			close(nfd);
		close(s);
		daemon_alive("after an unsealable ring");
	}

	/* A ring shrunk after RING_ADD, then a READ into its (gone) data area. */
	s = conn();
	if (s >= 0 && hello(s) == 0) {
		struct ring shr = {0};
		t = ring_add(s, &shr, ZVFS_RING_DATA_DEFAULT,
			     zvfs_ring_bytes(ZVFS_RING_DATA_DEFAULT));
		if (t == ZVFS_MSG_RING_OK && rfd >= 0 &&
		    open_msg(s, rfd, 0, &oo, &err) == ZVFS_MSG_OPEN_OK) {
			if (ftruncate(shr.memfd, ZVFS_RING_HDR) == 0) {
				int64_t r = req(&shr, ZVFS_OP_READ, oo.handle, 0, 65536, 0, 0);
				ok("READ into a ring shrunk after RING_ADD: %" PRId64 "", r);
			} else {
				ok("ring memfd cannot be shrunk after RING_ADD (%s)",
				   strerror(errno));
			}
		}
		close(s);
		daemon_alive("after a shrunk ring");
	}

	if (daemon_alive("at the end"))
		ok("daemon alive after all of the above");
	printf("# hostile: %d failed\n", nfailed);
	return nfailed ? 1 : 0;
}
