/* SPDX-License-Identifier: MIT */
/*
 * test_daemon ZVFSD ZVFS_TOOL - zvfsd through its protocol (ipc/proto.h),
 * with a small client written here: no libzvfs.so involved.
 *
 * One daemon (--foreground) on a temp image and a temp socket serves every
 * case; each case uses fresh connections.  After the cases that try to make
 * it leak, STATS must show no client, handle or ring left, and the daemon's
 * descriptor count must be back where it started.  Last, SIGTERM must
 * unmount cleanly (exit 0, socket gone, `zvfs fsck` clean).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ipc/proto.h"
#include "zvfs/fs.h"
#include "ipc/ring.h"

static const char *g_zvfsd, *g_tool;
static char g_dir[64], g_img[128], g_dev[192], g_sock[100];
static pid_t g_daemon;
static int g_failed;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s: ", __func__, __LINE__, #cond);            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			g_failed = 1;                                                              \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

/* ---- a minimal client ------------------------------------------------------------------- */

struct ring {
	int memfd;
	struct zvfs_ring *r;
	uint8_t *data;
	uint32_t data_size;
	uint64_t seq;
	uint32_t cpu, hints; /* sent in every request */
};

static uint32_t g_seq = 1;

static int cl_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Send a raw packet with up to 4 fds. */
static int cl_send_raw(int s, const void *pkt, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {(void *)pkt, len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds > 0) {
		struct cmsghdr *cm;

		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(s, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int cl_send(int s, uint16_t version, uint16_t type, const void *body, uint32_t len, int fd)
{
	char buf[ZVFS_MSG_MAX];
	struct zvfs_msg_hdr h = {ZVFS_PROTO_MAGIC, version, type, len, g_seq++};

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), body, len);
	return cl_send_raw(s, buf, sizeof(h) + len, &fd, fd >= 0 ? 1 : 0);
}

/* Receive one reply: its type (0 on EOF, -1 on error); body into out (ZVFS_MSG_MAX). */
static int cl_recv(int s, void *out, uint32_t *lenp)
{
	char buf[ZVFS_MSG_MAX];
	struct zvfs_msg_hdr h;
	ssize_t n = recv(s, buf, sizeof(buf), 0);

	if (n == 0)
		return 0;
	if (n < (ssize_t)sizeof(h))
		return -1;
	memcpy(&h, buf, sizeof(h));
	if (zvfs_msg_check(buf, (size_t)n, 0) < 0)
		return -1;
	memcpy(out, buf + sizeof(h), h.len);
	((char *)out)[h.len < ZVFS_MSG_MAX ? h.len : ZVFS_MSG_MAX - 1] = 0;
	if (lenp)
		*lenp = h.len;
	return h.type;
}

static int cl_hello(int s)
{
	struct zvfs_msg_hello m = {ZVFS_PROTO_VERSION, (uint32_t)getpid(), "test_daemon"};
	char out[ZVFS_MSG_MAX];

	if (cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_HELLO, &m, sizeof(m), -1) < 0)
		return -1;
	return cl_recv(s, out, NULL) == ZVFS_MSG_HELLO_OK ? 0 : -1;
}

/* Connect and say HELLO: the socket, or -1. */
static int cl_open_session(void)
{
	int s = cl_connect();

	if (s >= 0 && cl_hello(s) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* OPEN fd; returns the handle, or -errno from ERROR. */
static int64_t cl_open(int s, int fd, uint32_t flags, struct zvfs_msg_open_ok *okp)
{
	struct zvfs_msg_open m = {flags, 0};
	char out[ZVFS_MSG_MAX];
	int t;

	if (cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_OPEN, &m, sizeof(m), fd) < 0)
		return -EIO;
	t = cl_recv(s, out, NULL);
	if (t == ZVFS_MSG_OPEN_OK) {
		struct zvfs_msg_open_ok ok;

		memcpy(&ok, out, sizeof(ok));
		if (okp)
			*okp = ok;
		return (int64_t)ok.handle;
	}
	if (t == ZVFS_MSG_ERROR) {
		struct zvfs_msg_error e;

		memcpy(&e, out, sizeof(e));
		return -e.err;
	}
	return -EIO;
}

static int ring_make(struct ring *rg, uint32_t data_size, unsigned mfd_flags)
{
	memset(rg, 0, sizeof(*rg));
	rg->memfd = memfd_create("zvfs-test-ring", MFD_CLOEXEC | mfd_flags);
	if (rg->memfd < 0 || ftruncate(rg->memfd, (off_t)zvfs_ring_bytes(data_size)) < 0)
		return -1;
	rg->r = mmap(NULL, zvfs_ring_bytes(data_size), PROT_READ | PROT_WRITE, MAP_SHARED,
		     rg->memfd, 0);
	if (rg->r == MAP_FAILED)
		return -1;
	rg->r->magic = ZVFS_PROTO_MAGIC;
	rg->r->version = ZVFS_PROTO_VERSION;
	rg->r->data_size = data_size;
	rg->data = (uint8_t *)rg->r + ZVFS_RING_HDR;
	rg->data_size = data_size;
	return 0;
}

static void ring_free(struct ring *rg)
{
	if (rg->r && rg->r != MAP_FAILED)
		munmap(rg->r, zvfs_ring_bytes(rg->data_size));
	if (rg->memfd >= 0)
		close(rg->memfd);
	memset(rg, 0, sizeof(*rg));
}

/* RING_ADD; 0, or -errno from ERROR. */
static int ring_add(int s, struct ring *rg, uint32_t data_size_claimed)
{
	struct zvfs_msg_ring_add m = {data_size_claimed, (uint32_t)gettid()};
	char out[ZVFS_MSG_MAX];
	int t;

	if (cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_RING_ADD, &m, sizeof(m), rg->memfd) < 0)
		return -EIO;
	t = cl_recv(s, out, NULL);
	if (t == ZVFS_MSG_RING_OK)
		return 0;
	if (t == ZVFS_MSG_ERROR) {
		struct zvfs_msg_error e;

		memcpy(&e, out, sizeof(e));
		return -e.err;
	}
	return -EIO;
}

/* One request through the ring; resp filled; returns resp.result (-EIO: no answer in 10 s). */
static int64_t ring_call(struct ring *rg, uint32_t op, uint32_t flags, uint64_t handle,
			 uint64_t off, uint64_t len, uint64_t arg, struct zvfs_resp *respp)
{
	struct zvfs_req req = {op,  flags,     handle,	off,	   len,
			       arg, ++rg->seq, rg->cpu, rg->hints, {0}};
	struct zvfs_resp resp;
	int64_t s;

	memcpy(&rg->r->req, &req, sizeof(req));
	zvfs_ring_publish(rg->r, ZVFS_RING_REQ, ZVFS_SLEEP_DAEMON);
	for (int i = 0; i < 50; i++) {
		s = zvfs_ring_wait(rg->r, ZVFS_RING_REQ, 20000, ZVFS_SLEEP_CLIENT, 200000000);
		if (s == ZVFS_RING_DONE)
			break;
	}
	if (s != ZVFS_RING_DONE)
		return -EIO;
	memcpy(&resp, &rg->r->resp, sizeof(resp));
	zvfs_ring_store_state(rg->r, ZVFS_RING_IDLE);
	if (respp)
		*respp = resp;
	if (resp.seq != req.seq)
		return -EPROTO;
	return resp.result;
}

/* The STATS text into buf. */
static int cl_stats(char *buf)
{
	int s = cl_open_session(), t;

	if (s < 0)
		return -1;
	t = cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_STATS, NULL, 0, -1) < 0 ? -1
									    : cl_recv(s, buf, NULL);
	close(s);
	return t == ZVFS_MSG_STATS_OK ? 0 : -1;
}

/* A number after "word " in the STATS text; -1 if missing. */
static long long stat_num(const char *text, const char *word)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "%s ", word);
	p = strstr(text, key);
	return p ? atoll(p + strlen(key)) : -1;
}

/* Descriptors of pid; *socks (may be NULL) gets how many are sockets. */
static int count_fds2(pid_t pid, int *socks)
{
	char path[64], link[400], target[128];
	struct dirent *de;
	DIR *d;
	int n = 0, ns = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		ssize_t k;

		if (de->d_name[0] == '.')
			continue;
		n++;
		snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
		k = readlink(link, target, sizeof(target) - 1);
		if (k > 0) {
			target[k] = 0;
			if (strncmp(target, "socket:", 7) == 0)
				ns++;
		}
	}
	closedir(d);
	if (socks)
		*socks = ns;
	return n;
}

static int count_fds(pid_t pid)
{
	return count_fds2(pid, NULL);
}

static void pause_ms(int ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
}

/*
 * Poll STATS until the daemon has only the asking client and no handle or
 * ring (it notices dead clients asynchronously); the deadline is a hang
 * guard, not a timing assertion.
 */
static int wait_idle(char *text)
{
	for (int i = 0; i < 1000; i++) {
		if (cl_stats(text) == 0 && stat_num(text, "clients") == 1 &&
		    stat_num(text, "handles") == 0 && stat_num(text, "rings") == 0 &&
		    stat_num(text, "reaping") == 0)
			return 0;
		pause_ms(10);
	}
	return -1;
}

/*
 * The daemon's descriptor count back at n: it closes the socket of the last
 * STATS session only when it sees the EOF, so poll (hang guard, as above).
 */
static int wait_fds(int n)
{
	for (int i = 0; i < 1000; i++) {
		if (count_fds(g_daemon) == n)
			return 0;
		pause_ms(10);
	}
	return -1;
}

static int file_create(const char *name, int flags, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", g_dir, name);
	return open(path, flags | O_CREAT | O_CLOEXEC, 0644);
}

/* ---- the cases ------------------------------------------------------------------------- */

static int t_handshake(void)
{
	struct zvfs_msg_hello m = {ZVFS_PROTO_VERSION, (uint32_t)getpid(), "t"};
	struct zvfs_msg_hello_ok ok;
	char out[ZVFS_MSG_MAX];
	int s = cl_connect();

	CHECK(s >= 0, "connect %s: %s", g_sock, strerror(errno));
	CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_HELLO, &m, sizeof(m), -1) == 0, "send");
	CHECK(cl_recv(s, out, NULL) == ZVFS_MSG_HELLO_OK, "no HELLO_OK");
	memcpy(&ok, out, sizeof(ok));
	CHECK(ok.version == ZVFS_PROTO_VERSION, "version %u", ok.version);
	CHECK(ok.daemon_pid == (uint32_t)g_daemon, "daemon pid %u", ok.daemon_pid);
	CHECK(strlen(ok.store_id) == 36, "store id '%s'", ok.store_id);
	CHECK(ok.data_size == ZVFS_RING_DATA_DEFAULT, "data size %u", ok.data_size);
	/* Before HELLO nothing else is accepted. */
	close(s);
	s = cl_connect();
	CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_STATS, NULL, 0, -1) == 0, "send");
	CHECK(cl_recv(s, out, NULL) == ZVFS_MSG_ERROR, "STATS before HELLO answered");
	CHECK(cl_recv(s, out, NULL) == 0, "not dropped");
	close(s);
	return 0;
}

static int t_version_mismatch(void)
{
	struct zvfs_msg_hello m = {ZVFS_PROTO_VERSION, (uint32_t)getpid(), "t"};
	struct zvfs_msg_error e;
	char out[ZVFS_MSG_MAX];
	char want[64];
	int s = cl_connect();

	/* A header of protocol 2 ... */
	CHECK(cl_send(s, 2, ZVFS_MSG_HELLO, &m, sizeof(m), -1) == 0, "send");
	CHECK(cl_recv(s, out, NULL) == ZVFS_MSG_ERROR, "no ERROR");
	memcpy(&e, out, sizeof(e));
	snprintf(want, sizeof(want), "client protocol 2, daemon %u", ZVFS_PROTO_VERSION);
	CHECK(e.err == EPROTO && strcmp(e.text, want) == 0, "err %d text '%s'", e.err, e.text);
	CHECK(cl_recv(s, out, NULL) == 0, "connection kept");
	close(s);
	/* ... and a HELLO body naming protocol 9. */
	s = cl_connect();
	m.version = 9;
	CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_HELLO, &m, sizeof(m), -1) == 0, "send");
	CHECK(cl_recv(s, out, NULL) == ZVFS_MSG_ERROR, "no ERROR");
	memcpy(&e, out, sizeof(e));
	snprintf(want, sizeof(want), "client protocol 9, daemon %u", ZVFS_PROTO_VERSION);
	CHECK(e.err == EPROTO && strcmp(e.text, want) == 0, "err %d text '%s'", e.err, e.text);
	close(s);
	return 0;
}

static int t_file_ops(void)
{
	struct zvfs_msg_open_ok ok;
	struct zvfs_resp resp;
	struct ring rg;
	char path[256], x[ZVFS_FS_XATTR_MAX];
	int s = cl_open_session(), fd, rfd;
	int64_t h, h2;

	CHECK(s >= 0, "session");
	CHECK(ring_make(&rg, 1u << 20, MFD_ALLOW_SEALING) == 0, "ring");
	CHECK(ring_add(s, &rg, 1u << 20) == 0, "RING_ADD");
	CHECK(ring_call(&rg, ZVFS_OP_NOP, 0, 0, 0, 0, 0, NULL) == 0, "nop");

	fd = file_create("ops", O_RDWR, path, sizeof(path));
	CHECK(fd >= 0, "create");
	/* Not a ZVFS file yet: OPEN without CREATE says so. */
	CHECK(cl_open(s, fd, 0, NULL) == -ENODATA, "plain file");
	h = cl_open(s, fd, ZVFS_OPEN_CREATE, &ok);
	CHECK(h > 0, "OPEN CREATE: %s", strerror((int)-h));
	CHECK(ok.rights == (ZVFS_RIGHT_READ | ZVFS_RIGHT_WRITE) && ok.size == 0, "rights %u",
	      ok.rights);
	CHECK(fgetxattr(fd, ZVFS_FS_XATTR, x, sizeof(x)) > 0, "no xattr set on the placeholder");

	memcpy(rg.data, "hello, daemon", 13);
	CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, 0, 13, 0, &resp) == 13, "write");
	CHECK(resp.val == 13, "end %llu", (unsigned long long)resp.val);
	memset(rg.data, 0, 64);
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, (uint64_t)h, 7, 64, 0, NULL) == 6, "read");
	CHECK(memcmp(rg.data, "daemon", 6) == 0, "read data");
	CHECK(ring_call(&rg, ZVFS_OP_SYNC, 0, (uint64_t)h, 0, 0, 0, NULL) == 0, "sync");
	CHECK(ring_call(&rg, ZVFS_OP_STAT, 0, (uint64_t)h, 0, 0, 0, &resp) == 0, "stat");
	CHECK(resp.val == 13 && resp.val4 == 0, "size %llu", (unsigned long long)resp.val);
	CHECK(ring_call(&rg, ZVFS_OP_TRUNCATE, 0, (uint64_t)h, 0, 0, 5, NULL) == 0, "truncate");
	CHECK(ring_call(&rg, ZVFS_OP_STAT, 0, (uint64_t)h, 0, 0, 0, &resp) == 0 && resp.val == 5,
	      "size after truncate");
	CHECK(ring_call(&rg, ZVFS_OP_SYNC_ALL, 0, 0, 0, 0, 0, NULL) == 0, "sync_all");
	CHECK(ring_call(&rg, ZVFS_OP_CLOSE, 0, (uint64_t)h, 0, 0, 0, NULL) == 0, "close");
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, (uint64_t)h, 0, 1, 0, NULL) == -EBADF,
	      "closed handle still works");
	CHECK(ring_call(&rg, ZVFS_OP_CLOSE, 0, (uint64_t)h, 0, 0, 0, NULL) == -EBADF,
	      "double close");

	/* Reopen read-only: data survives, rights are the fd's. */
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	h2 = cl_open(s, rfd, 0, &ok);
	CHECK(h2 > 0 && ok.rights == ZVFS_RIGHT_READ && ok.size == 5, "reopen %lld rights %u",
	      (long long)h2, ok.rights);
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, (uint64_t)h2, 0, 100, 0, NULL) == 5, "reread");
	CHECK(memcmp(rg.data, "hello", 5) == 0, "reread data");
	close(rfd);
	close(fd);
	/* A handle stays valid after the client closes its fd; closing the socket ends it. */
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, (uint64_t)h2, 0, 100, 0, NULL) == 5, "after close");
	close(s);
	ring_free(&rg);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Null round trips: printed for information (the perf targets are checked by bench/). */
/* HELLO with recvmsg: the reply's size table fd (-1 if none), its entry count in *slots. */
static int cl_hello_table(int s, uint32_t *slots)
{
	struct zvfs_msg_hello m = {ZVFS_PROTO_VERSION, (uint32_t)getpid(), "t"};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	char pkt[ZVFS_MSG_MAX];
	struct iovec iov = {pkt, sizeof(pkt)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct zvfs_msg_hello_ok ok;
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1;

	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	if (cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_HELLO, &m, sizeof(m), -1) < 0)
		return -1;
	n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (n != (ssize_t)(sizeof(struct zvfs_msg_hdr) + sizeof(ok)) ||
	    zvfs_msg_check(pkt, (size_t)n, fd >= 0) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(&ok, pkt + sizeof(struct zvfs_msg_hdr), sizeof(ok));
	*slots = ok.size_slots;
	return fd;
}

/*
 * The size table (proto.h HELLO_OK): read-only for the client, entry i follows the size of the
 * file of handle slot i through writes, truncation and other clients' appends, and stops
 * following it once the handle is closed (the slot may then serve another file).
 */
static int t_size_table(void)
{
	struct zvfs_resp resp;
	struct ring rg, rg2;
	char path[256];
	uint32_t slots = 0, slots2 = 0;
	int s = cl_connect(), s2 = cl_connect(), tfd, tfd2, fd;
	const _Atomic uint64_t *tab;
	int64_t h, h2;
	void *w;

	CHECK(s >= 0 && s2 >= 0, "connect");
	tfd = cl_hello_table(s, &slots);
	CHECK(tfd >= 0 && slots > 0, "HELLO_OK without a table (fd %d, %u slots)", tfd, slots);
	tfd2 = cl_hello_table(s2, &slots2);
	CHECK(tfd2 >= 0, "second client's table");
	w = mmap(NULL, (size_t)slots * 8, PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
	CHECK(w == MAP_FAILED, "the client could map its size table writable");
	CHECK(write(tfd, "x", 1) < 0, "the client could write its size table");
	tab = mmap(NULL, (size_t)slots * 8, PROT_READ, MAP_SHARED, tfd, 0);
	CHECK(tab != MAP_FAILED, "map read-only: %s", strerror(errno));
	CHECK(ring_make(&rg, 1u << 20, MFD_ALLOW_SEALING) == 0 && ring_add(s, &rg, 1u << 20) == 0,
	      "ring");
	CHECK(ring_make(&rg2, 1u << 20, MFD_ALLOW_SEALING) == 0 &&
		      ring_add(s2, &rg2, 1u << 20) == 0,
	      "ring 2");

	fd = file_create("sizes", O_RDWR, path, sizeof(path));
	CHECK(fd >= 0, "create");
	h = cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
	CHECK(h > 0 && (uint32_t)h < slots, "OPEN %lld", (long long)h);
	h2 = cl_open(s2, fd, 0, NULL);
	CHECK(h2 > 0, "OPEN by the second client");
	CHECK(atomic_load(&tab[(uint32_t)h]) == 0, "entry %llu for an empty file",
	      (unsigned long long)atomic_load(&tab[(uint32_t)h]));
	memset(rg.data, 'a', 5000);
	CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, 0, 5000, 0, &resp) == 5000, "write");
	CHECK(atomic_load(&tab[(uint32_t)h]) == 5000, "entry %llu after a 5000-byte write",
	      (unsigned long long)atomic_load(&tab[(uint32_t)h]));
	/* the other client extends the file: this client's entry follows */
	memset(rg2.data, 'b', 100);
	CHECK(ring_call(&rg2, ZVFS_OP_WRITE, ZVFS_IO_APPEND, (uint64_t)h2, 0, 100, 0, &resp) == 100,
	      "append by the other client");
	CHECK(atomic_load(&tab[(uint32_t)h]) == 5100, "entry %llu after the other's append",
	      (unsigned long long)atomic_load(&tab[(uint32_t)h]));
	CHECK(ring_call(&rg, ZVFS_OP_TRUNCATE, 0, (uint64_t)h, 0, 0, 7, NULL) == 0, "truncate");
	CHECK(atomic_load(&tab[(uint32_t)h]) == 7, "entry %llu after truncate to 7",
	      (unsigned long long)atomic_load(&tab[(uint32_t)h]));
	CHECK(ring_call(&rg, ZVFS_OP_CLOSE, 0, (uint64_t)h, 0, 0, 0, NULL) == 0, "close");
	CHECK(ring_call(&rg2, ZVFS_OP_TRUNCATE, 0, (uint64_t)h2, 0, 0, 3, NULL) == 0,
	      "truncate by the other client");
	CHECK(atomic_load(&tab[(uint32_t)h]) == 7, "a closed handle's entry still follows (%llu)",
	      (unsigned long long)atomic_load(&tab[(uint32_t)h]));
	munmap((void *)tab, (size_t)slots * 8);
	close(tfd);
	close(tfd2);
	close(fd);
	close(s);
	close(s2);
	ring_free(&rg);
	ring_free(&rg2);
	return 0;
}

static int t_nop_latency(void)
{
	enum { N = 100000 };
	static uint64_t lat[N];
	struct ring rg;
	int s = cl_open_session();

	CHECK(s >= 0 && ring_make(&rg, 65536, MFD_ALLOW_SEALING) == 0 &&
		      ring_add(s, &rg, 65536) == 0,
	      "session");
	for (int i = 0; i < N; i++) {
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		CHECK(ring_call(&rg, ZVFS_OP_NOP, 0, 0, 0, 0, 0, NULL) == 0, "nop %d", i);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		lat[i] = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
			 (uint64_t)(t1.tv_nsec - t0.tv_nsec);
	}
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	printf("info: null round trip over %d: p50 %llu ns, p99 %llu ns, max %llu ns\n", N,
	       (unsigned long long)lat[N / 2], (unsigned long long)lat[N * 99 / 100],
	       (unsigned long long)lat[N - 1]);
	close(s);
	ring_free(&rg);
	return 0;
}

static int t_big_write(void)
{
	const uint64_t total = 64ull << 20, piece = 1u << 20;
	struct zvfs_resp resp;
	struct ring rg;
	char path[256];
	int s = cl_open_session(), fd;
	int64_t h;

	CHECK(s >= 0, "session");
	CHECK(ring_make(&rg, (uint32_t)piece, MFD_ALLOW_SEALING) == 0 &&
		      ring_add(s, &rg, (uint32_t)piece) == 0,
	      "ring");
	fd = file_create("big", O_RDWR, path, sizeof(path));
	h = cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
	CHECK(h > 0, "open");
	for (uint64_t off = 0; off < total; off += piece) {
		for (uint64_t i = 0; i < piece; i += 8) {
			uint64_t v = (off + i) * 0x9e3779b97f4a7c15ull;

			memcpy(rg.data + i, &v, 8);
		}
		CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, off, piece, 0, &resp) ==
			      (int64_t)piece,
		      "write at %llu", (unsigned long long)off);
	}
	/* A request larger than the data area is refused, not truncated. */
	CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, 0, piece + 1, 0, NULL) == -EINVAL,
	      "oversized write");
	CHECK(ring_call(&rg, ZVFS_OP_SYNC, 0, (uint64_t)h, 0, 0, 0, NULL) == 0, "sync");
	CHECK(ring_call(&rg, ZVFS_OP_DROP_CACHE, 0, (uint64_t)h, 0, 0, 0, NULL) == 0, "drop");
	for (uint64_t off = 0; off < total; off += piece) {
		CHECK(ring_call(&rg, ZVFS_OP_READ, 0, (uint64_t)h, off, piece, 0, NULL) ==
			      (int64_t)piece,
		      "read at %llu", (unsigned long long)off);
		for (uint64_t i = 0; i < piece; i += 8) {
			uint64_t v = (off + i) * 0x9e3779b97f4a7c15ull, got;

			memcpy(&got, rg.data + i, 8);
			CHECK(got == v, "data at %llu", (unsigned long long)(off + i));
		}
	}
	CHECK(ring_call(&rg, ZVFS_OP_STAT, 0, (uint64_t)h, 0, 0, 0, &resp) == 0 &&
		      resp.val == total,
	      "size");
	close(fd);
	close(s);
	ring_free(&rg);
	return 0;
}

/* zvfsd's own threads whose affinity is the one CPU cpu; -1 if /proc cannot say. */
static int threads_held_to(int cpu)
{
	char path[320], line[256], want[40];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)g_daemon);
	snprintf(want, sizeof(want), "Cpus_allowed_list:\t%d\n", cpu);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)g_daemon, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* the thread just ended */
		/*
		 * io_uring's worker threads (iou-wrk-*) are left out: they take the
		 * affinity of the thread that starts them and keep it (docs/daemon.md).
		 */
		if (fgets(line, sizeof(line), f) && strncmp(line, "Name:\tiou-", 10))
			while (fgets(line, sizeof(line), f))
				n += !strcmp(line, want);
		fclose(f);
	}
	closedir(d);
	return n;
}

struct follower {
	struct ring rg;
	int64_t h;
	atomic_bool *stop;
	int rc;
};

/* Write and fsync until told to stop: requests that overlap the other threads'. */
static void *follower_loop(void *arg)
{
	struct follower *a = arg;

	for (int i = 0; i < 20000 && !atomic_load(a->stop); i++) {
		memset(a->rg.data, i, 65536);
		if (ring_call(&a->rg, ZVFS_OP_WRITE, 0, (uint64_t)a->h, 0, 65536, 0, NULL) !=
			    65536 ||
		    ring_call(&a->rg, ZVFS_OP_SYNC, 0, (uint64_t)a->h, 0, 0, 0, NULL) != 0) {
			a->rc = -1;
			break;
		}
	}
	return NULL;
}

/* Run the followers until a worker is seen held to cpu (or 3 s); how many samples saw one. */
static int follow_phase(struct follower *fl, int n, int cpu, uint32_t hints)
{
	atomic_bool stop = false;
	pthread_t th[64];
	int seen = 0, started = 0;

	for (int i = 0; i < n; i++) {
		fl[i].rg.hints = hints;
		fl[i].stop = &stop;
		if (pthread_create(&th[i], NULL, follower_loop, &fl[i]) != 0)
			break;
		started++;
	}
	for (int ms = 0; ms < 3000 && !seen; ms++) {
		seen += threads_held_to(cpu) > 0;
		pause_ms(1);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return started == n ? seen : -1;
}

/*
 * While more requests run than half the CPUs, a worker runs on the CPU its
 * client names (req.cpu); alone again, or for a client that spins whatever
 * the daemon says (ZVFS_REQ_SPINS), it may run anywhere.
 */
static int t_follow_cpu(void)
{
	struct follower fl[64];
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN), n = ncpu / 2 + 1, cpu = -1, s, seen;
	cpu_set_t mine;

	if (sched_getaffinity(0, sizeof(mine), &mine) < 0 || CPU_COUNT(&mine) < 2 || n > 64) {
		printf("info: follow-cpu not tested: this process may run on %d CPU(s) of %d\n",
		       CPU_COUNT(&mine), ncpu);
		return 0;
	}
	for (int c = CPU_SETSIZE - 1; c >= 0; c--)
		if (CPU_ISSET(c, &mine))
			cpu = c; /* the lowest */
	s = cl_open_session();
	CHECK(s >= 0, "session");
	for (int i = 0; i < n; i++) {
		char name[32], path[256];
		int fd;

		snprintf(name, sizeof(name), "follow%d", i);
		fd = file_create(name, O_RDWR, path, sizeof(path));
		CHECK(fd >= 0 && ring_make(&fl[i].rg, 65536, MFD_ALLOW_SEALING) == 0 &&
			      ring_add(s, &fl[i].rg, 65536) == 0,
		      "ring %d", i);
		fl[i].h = cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
		close(fd);
		CHECK(fl[i].h > 0, "open %d", i);
		fl[i].rg.cpu = (uint32_t)cpu + 1;
		fl[i].rc = 0;
	}
	CHECK(threads_held_to(cpu) == 0, "a thread held to CPU %d before any request", cpu);
	seen = follow_phase(fl, n, cpu, 0);
	CHECK(seen > 0, "%d requests at once: no worker ran on their CPU %d (%d)", n, cpu, seen);
	/* one at a time: each worker may go anywhere again */
	for (int i = 0; i < n; i++)
		CHECK(fl[i].rc == 0 && ring_call(&fl[i].rg, ZVFS_OP_NOP, 0, 0, 0, 0, 0, NULL) == 0,
		      "follower %d", i);
	CHECK(threads_held_to(cpu) == 0, "a worker still held to CPU %d after requests alone", cpu);
	seen = follow_phase(fl, n, cpu, ZVFS_REQ_SPINS);
	CHECK(seen == 0, "a worker was held to the CPU of a client that spins");
	for (int i = 0; i < n; i++) {
		CHECK(fl[i].rc == 0, "follower %d", i);
		ring_free(&fl[i].rg);
	}
	close(s);
	return 0;
}

static int t_read_only(void)
{
	struct zvfs_msg_open_ok ok;
	struct ring rg;
	char path[256];
	int s = cl_open_session(), fd, rfd;
	int64_t h;

	CHECK(s >= 0, "session");
	CHECK(ring_make(&rg, 65536, MFD_ALLOW_SEALING) == 0 && ring_add(s, &rg, 65536) == 0,
	      "ring");
	fd = file_create("ro", O_RDWR, path, sizeof(path));
	h = cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
	CHECK(h > 0, "create");
	memcpy(rg.data, "abc", 3);
	CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, 0, 3, 0, NULL) == 3, "write");
	close(fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	h = cl_open(s, rfd, 0, &ok);
	CHECK(h > 0 && ok.rights == ZVFS_RIGHT_READ, "open ro");
	CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, 0, 3, 0, NULL) == -EBADF,
	      "write through a read-only open");
	CHECK(ring_call(&rg, ZVFS_OP_TRUNCATE, 0, (uint64_t)h, 0, 0, 0, NULL) == -EBADF,
	      "truncate through a read-only open");
	CHECK(ring_call(&rg, ZVFS_OP_FALLOCATE, 0, (uint64_t)h, 0, 4096, 0, NULL) == -EBADF,
	      "fallocate through a read-only open");
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, (uint64_t)h, 0, 3, 0, NULL) == 3, "read");
	/* TRUNC and CREATE need a writable descriptor too. */
	CHECK(cl_open(s, rfd, ZVFS_OPEN_TRUNC, NULL) == -EBADF, "O_TRUNC through O_RDONLY");
	close(rfd);
	/* An O_PATH fd with ZVFS_OPEN_STAT: stat only (a client's stat(2) by name). */
	rfd = open(path, O_PATH | O_CLOEXEC);
	h = cl_open(s, rfd, ZVFS_OPEN_STAT, &ok);
	CHECK(h > 0 && ok.rights == 0, "O_PATH open for STAT");
	{
		struct zvfs_resp resp;

		CHECK(ring_call(&rg, ZVFS_OP_STAT, 0, (uint64_t)h, 0, 0, 0, &resp) == 0 &&
			      resp.val == 3,
		      "stat through a STAT handle");
	}
	/* nothing that reads, writes or moves the file's pages */
	for (uint32_t op = ZVFS_OP_READ; op <= ZVFS_OP_PREFETCH; op++)
		CHECK(ring_call(&rg, op, 0, (uint64_t)h, 0, op == ZVFS_OP_SYNC ? 0 : 3, 0, NULL) ==
			      -EBADF,
		      "%s through a STAT handle", zvfs_op_name(op));
	CHECK(cl_open(s, rfd, ZVFS_OPEN_STAT | ZVFS_OPEN_TRUNC, NULL) < 0, "STAT with TRUNC");
	close(rfd);
	rfd = file_create("ro2", O_RDONLY, path, sizeof(path));
	CHECK(cl_open(s, rfd, ZVFS_OPEN_CREATE, NULL) == -EBADF, "create through O_RDONLY");
	close(rfd);
	/* O_PATH grants nothing. */
	rfd = open(path, O_PATH | O_CLOEXEC);
	CHECK(cl_open(s, rfd, 0, NULL) == -EBADF, "O_PATH open");
	close(rfd);
	close(s);
	ring_free(&rg);
	return 0;
}

static int t_foreign_handle(void)
{
	struct ring ra, rb;
	char path[256];
	int a = cl_open_session(), b = cl_open_session(), fd;
	int64_t h;

	CHECK(a >= 0 && b >= 0, "sessions");
	CHECK(ring_make(&ra, 65536, MFD_ALLOW_SEALING) == 0 && ring_add(a, &ra, 65536) == 0,
	      "ring a");
	CHECK(ring_make(&rb, 65536, MFD_ALLOW_SEALING) == 0 && ring_add(b, &rb, 65536) == 0,
	      "ring b");
	fd = file_create("foreign", O_RDWR, path, sizeof(path));
	h = cl_open(a, fd, ZVFS_OPEN_CREATE, NULL);
	CHECK(h > 0, "open");
	CHECK(ring_call(&rb, ZVFS_OP_READ, 0, (uint64_t)h, 0, 1, 0, NULL) == -EBADF,
	      "client b read a's handle");
	CHECK(ring_call(&rb, ZVFS_OP_CLOSE, 0, (uint64_t)h, 0, 0, 0, NULL) == -EBADF,
	      "client b closed a's handle");
	CHECK(ring_call(&ra, ZVFS_OP_STAT, 0, (uint64_t)h, 0, 0, 0, NULL) == 0, "a's handle");
	/* Forged handles: other slots and generations. */
	CHECK(ring_call(&ra, ZVFS_OP_STAT, 0, (uint64_t)h + (1ull << 32), 0, 0, 0, NULL) == -EBADF,
	      "other generation");
	CHECK(ring_call(&ra, ZVFS_OP_STAT, 0, (uint64_t)h + 12345, 0, 0, 0, NULL) == -EBADF,
	      "other slot");
	close(fd);
	close(a);
	close(b);
	ring_free(&ra);
	ring_free(&rb);
	return 0;
}

/* A child writes in a loop and is SIGKILLed in the middle: the daemon keeps nothing of it. */
static int t_killed_client(int fds_before)
{
	char text[ZVFS_MSG_MAX];
	int p[2];
	pid_t pid;
	char c;
	int st;

	CHECK(pipe(p) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		struct ring rg;
		char path[256];
		int s = cl_open_session(), fd, n = 0;
		int64_t h;

		close(p[0]);
		if (s < 0 || ring_make(&rg, 1u << 20, MFD_ALLOW_SEALING) < 0 ||
		    ring_add(s, &rg, 1u << 20) < 0)
			_exit(1);
		fd = file_create("killed", O_RDWR, path, sizeof(path));
		h = cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
		if (h <= 0)
			_exit(1);
		/* Two more handles on other files, so there is something to leak. */
		cl_open(s, fd, 0, NULL);
		close(fd);
		fd = file_create("killed2", O_RDWR, path, sizeof(path));
		cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
		for (uint64_t off = 0;; off = (off + (1u << 20)) % (32u << 20)) {
			memset(rg.data, (int)off, 1u << 20);
			/* Publish without waiting on the last round: killed mid-request. */
			if (++n == 20) {
				if (write(p[1], "w", 1) != 1)
					_exit(1);
			}
			if (ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, off, 1u << 20, 0, NULL) <
			    0)
				_exit(1);
		}
	}
	close(p[1]);
	CHECK(read(p[0], &c, 1) == 1, "the child did not get going");
	close(p[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st), "child exited on its own: %d", st);
	CHECK(wait_idle(text) == 0, "still held after the client died:\n%s", text);
	/*
	 * Leaking is about where it settles: poll this count too.  It was seen once at 1 with
	 * clients, handles, rings and reaping all idle, under load (cause not found); a file
	 * really left open still fails here after 10 s.
	 */
	for (int i = 0; i < 1000 && stat_num(text, "files open") != 0; i++) {
		pause_ms(10);
		CHECK(cl_stats(text) == 0, "stats");
	}
	CHECK(stat_num(text, "files open") == 0, "files open:\n%s", text);
	CHECK(stat_num(text, "polled-reads") >= 0, "no device line:\n%s", text);
	CHECK(wait_fds(fds_before) == 0, "daemon fds %d, were %d", count_fds(g_daemon), fds_before);
	return 0;
}

static int expect_drop(int s, int want_err)
{
	char out[ZVFS_MSG_MAX];
	struct zvfs_msg_error e;
	int t = cl_recv(s, out, NULL);

	if (t != ZVFS_MSG_ERROR)
		return -1;
	memcpy(&e, out, sizeof(e));
	if (want_err && e.err != want_err)
		return -1;
	return cl_recv(s, out, NULL) == 0 ? 0 : -1;
}

static int t_malformed(int fds_before)
{
	uint8_t junk[ZVFS_MSG_MAX];
	char text[ZVFS_MSG_MAX], out[ZVFS_MSG_MAX];
	struct ring rg, good;
	int s, fds[3];

	/* Garbage bytes. */
	s = cl_connect();
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	CHECK(cl_send_raw(s, junk, 100, NULL, 0) == 0, "send");
	CHECK(expect_drop(s, EBADMSG) == 0, "garbage not refused");
	close(s);
	/* A header whose len disagrees with the packet. */
	s = cl_open_session();
	{
		struct zvfs_msg_hdr h = {ZVFS_PROTO_MAGIC, ZVFS_PROTO_VERSION, ZVFS_MSG_STATS, 50,
					 1};

		CHECK(cl_send_raw(s, &h, sizeof(h), NULL, 0) == 0, "send");
		CHECK(expect_drop(s, EBADMSG) == 0, "bad len not refused");
	}
	close(s);
	/* Too big a packet. */
	s = cl_open_session();
	{
		static uint8_t big[ZVFS_MSG_MAX + 100];
		struct zvfs_msg_hdr h = {ZVFS_PROTO_MAGIC, ZVFS_PROTO_VERSION, ZVFS_MSG_STATS,
					 sizeof(big) - 16, 1};

		memcpy(big, &h, sizeof(h));
		CHECK(cl_send_raw(s, big, sizeof(big), NULL, 0) == 0, "send");
		CHECK(expect_drop(s, EBADMSG) == 0, "big packet not refused");
	}
	close(s);
	/* OPEN with three fds: refused, and none of them stays in the daemon. */
	s = cl_open_session();
	fds[0] = open("/dev/null", O_RDONLY);
	fds[1] = open("/dev/null", O_RDONLY);
	fds[2] = open("/dev/null", O_RDONLY);
	{
		char pkt[32];
		struct zvfs_msg_hdr h = {ZVFS_PROTO_MAGIC, ZVFS_PROTO_VERSION, ZVFS_MSG_OPEN, 8, 1};

		memcpy(pkt, &h, 16);
		memset(pkt + 16, 0, 8);
		CHECK(cl_send_raw(s, pkt, 24, fds, 3) == 0, "send");
		CHECK(expect_drop(s, EBADMSG) == 0, "3 fds not refused");
	}
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(s);
	/* A reply type sent to the daemon. */
	s = cl_open_session();
	CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_OK, NULL, 0, -1) == 0, "send");
	CHECK(expect_drop(s, EBADMSG) == 0, "reply type not refused");
	close(s);

	/* Rings: wrong size, not sealable, bad magic -- refused, the client stays. */
	s = cl_open_session();
	CHECK(ring_make(&rg, 65536, MFD_ALLOW_SEALING) == 0, "ring");
	CHECK(ring_add(s, &rg, 131072) == -EINVAL, "size mismatch accepted");
	CHECK(ring_add(s, &rg, 1000) == -EINVAL, "unaligned size accepted");
	rg.r->magic = 0xdeadbeef;
	CHECK(ring_add(s, &rg, 65536) == -EBADMSG, "bad magic accepted");
	ring_free(&rg);
	CHECK(ring_make(&rg, 65536, 0) == 0, "ring");
	CHECK(ring_add(s, &rg, 65536) == -EPERM, "unsealable memfd accepted");
	ring_free(&rg);
	{
		int devnull = open("/dev/null", O_RDWR);
		struct zvfs_msg_ring_add m = {65536, 0};

		CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_RING_ADD, &m, sizeof(m), devnull) ==
			      0,
		      "send");
		CHECK(cl_recv(s, out, NULL) == ZVFS_MSG_ERROR, "/dev/null as a ring");
		close(devnull);
	}
	/* A sealed ring cannot be shrunk under the daemon. */
	CHECK(ring_make(&rg, 65536, MFD_ALLOW_SEALING) == 0 && ring_add(s, &rg, 65536) == 0,
	      "ring");
	CHECK(ftruncate(rg.memfd, 4096) < 0 && errno == EPERM, "shrinking the ring worked");
	/* Garbage requests get errors. */
	CHECK(ring_call(&rg, 999, 0, 0, 0, 0, 0, NULL) == -EOPNOTSUPP, "unknown op");
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0xff, 0, 0, 1, 0, NULL) == -EINVAL, "bad flags");
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, 0, ~0ull, 2, 0, NULL) == -EINVAL, "overflow");
	CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, 0, 0, 1ull << 40, 0, NULL) == -EINVAL, "huge len");
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, 77, 0, 1, 0, NULL) == -EBADF, "bad handle");
	/* Random request bytes, many times. */
	srand(42);
	for (int i = 0; i < 2000; i++) {
		uint8_t b[64];
		struct zvfs_req req;

		for (size_t k = 0; k < sizeof(b); k++)
			b[k] = (uint8_t)rand();
		memcpy(&req, b, sizeof(req));
		req.op %= ZVFS_OP_COUNT + 2;
		if (req.op == ZVFS_OP_SYNC_ALL)
			req.op = ZVFS_OP_NOP;
		if (ring_call(&rg, req.op, req.flags, req.handle, req.off, req.len, req.arg,
			      NULL) == -EIO)
			CHECK(0, "no answer to random request %d", i);
	}
	/* A garbage state word: the worker waits it out; the next request is served. */
	zvfs_ring_store_state(rg.r, 77);
	CHECK(ring_call(&rg, ZVFS_OP_NOP, 0, 0, 0, 0, 0, NULL) == 0, "after garbage state");

	/* Others are served all along. */
	{
		int s2 = cl_open_session();

		CHECK(s2 >= 0, "second session");
		CHECK(ring_make(&good, 65536, MFD_ALLOW_SEALING) == 0 &&
			      ring_add(s2, &good, 65536) == 0,
		      "ring");
		CHECK(ring_call(&good, ZVFS_OP_NOP, 0, 0, 0, 0, 0, NULL) == 0, "nop");
		close(s2);
		ring_free(&good);
	}
	close(s);
	ring_free(&rg);
	CHECK(wait_idle(text) == 0, "leftovers:\n%s", text);
	CHECK(wait_fds(fds_before) == 0, "daemon fds %d, were %d", count_fds(g_daemon), fds_before);
	return 0;
}

static int t_remove(void)
{
	struct zvfs_resp resp;
	struct ring rg;
	char path[256];
	int s = cl_open_session(), fd, pfd;
	int64_t h;
	char out[ZVFS_MSG_MAX];

	CHECK(s >= 0 && ring_make(&rg, 65536, MFD_ALLOW_SEALING) == 0 &&
		      ring_add(s, &rg, 65536) == 0,
	      "session");
	fd = file_create("rm", O_RDWR, path, sizeof(path));
	h = cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
	CHECK(h > 0, "open");
	memcpy(rg.data, "xyz", 3);
	CHECK(ring_call(&rg, ZVFS_OP_WRITE, 0, (uint64_t)h, 0, 3, 0, NULL) == 3, "write");
	pfd = open(path, O_PATH | O_CLOEXEC);
	/* Still linked: REMOVE does nothing. */
	CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_REMOVE, NULL, 0, pfd) == 0 &&
		      cl_recv(s, out, NULL) == ZVFS_MSG_OK,
	      "remove (linked)");
	CHECK(ring_call(&rg, ZVFS_OP_STAT, 0, (uint64_t)h, 0, 0, 0, &resp) == 0 && resp.val4 == 0,
	      "unlinked too early");
	unlink(path);
	CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_REMOVE, NULL, 0, pfd) == 0 &&
		      cl_recv(s, out, NULL) == ZVFS_MSG_OK,
	      "remove (O_PATH fd)");
	/* Open still: readable, marked unlinked; gone at the last close. */
	CHECK(ring_call(&rg, ZVFS_OP_STAT, 0, (uint64_t)h, 0, 0, 0, &resp) == 0 && resp.val4 == 1,
	      "not marked unlinked");
	CHECK(ring_call(&rg, ZVFS_OP_READ, 0, (uint64_t)h, 0, 3, 0, NULL) == 3, "read unlinked");
	CHECK(ring_call(&rg, ZVFS_OP_CLOSE, 0, (uint64_t)h, 0, 0, 0, NULL) == 0, "close");
	close(pfd);
	close(fd);
	close(s);
	ring_free(&rg);
	return 0;
}

/*
 * Another user copies the xattr of a file it cannot read onto a file of its
 * own: the daemon must not open the victim's blob for it (the blob records
 * its placeholder's inode).
 */
static int t_forged_xattr(void)
{
	char path[256], sub[200], x[ZVFS_FS_XATTR_MAX];
	ssize_t xlen;
	int s = cl_open_session(), fd, st;
	int64_t h;
	pid_t pid;

	CHECK(s >= 0, "session");
	fd = file_create("victim", O_RDWR, path, sizeof(path));
	h = cl_open(s, fd, ZVFS_OPEN_CREATE, NULL);
	CHECK(h > 0, "create");
	fchmod(fd, 0600);
	xlen = fgetxattr(fd, ZVFS_FS_XATTR, x, sizeof(x));
	CHECK(xlen > 0, "xattr");
	close(fd);
	close(s);
	snprintf(sub, sizeof(sub), "%s/other", g_dir);
	CHECK(mkdir(sub, 0755) == 0, "mkdir");
	if (geteuid() == 0)
		CHECK(chown(sub, 65534, 65534) == 0, "chown");
	pid = fork();
	if (pid == 0) {
		char mine[300];
		int c, f;
		int64_t r;

		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		if (geteuid() != 0 && open(path, O_RDONLY) >= 0)
			_exit(3); /* the victim must be out of reach */
		snprintf(mine, sizeof(mine), "%s/copy", sub);
		f = open(mine, O_RDWR | O_CREAT, 0644);
		if (f < 0 || fsetxattr(f, ZVFS_FS_XATTR, x, (size_t)xlen, 0) < 0)
			_exit(4);
		c = cl_open_session();
		if (c < 0)
			_exit(5);
		r = cl_open(c, f, 0, NULL);
		_exit(r == -ESTALE ? 0 : 6);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forged xattr: child status %d", st);
	/* fsck at the end would rightly report the forged copy. */
	snprintf(path, sizeof(path), "%s/copy", sub);
	unlink(path);
	return 0;
}

static int t_shutdown_nonroot(void)
{
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		printf("skip shutdown-nonroot: not root\n");
		return 0;
	}
	pid = fork();
	if (pid == 0) {
		struct zvfs_msg_error e;
		char out[ZVFS_MSG_MAX];
		int s;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		s = cl_open_session();
		if (s < 0)
			_exit(3);
		if (cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_SHUTDOWN, NULL, 0, -1) < 0 ||
		    cl_recv(s, out, NULL) != ZVFS_MSG_ERROR)
			_exit(4);
		memcpy(&e, out, sizeof(e));
		_exit(e.err == EPERM ? 0 : 5);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	CHECK(kill(g_daemon, 0) == 0, "daemon gone after a refused shutdown");
	{
		char text[ZVFS_MSG_MAX];

		CHECK(cl_stats(text) == 0, "daemon stopped serving");
	}
	return 0;
}

/* A second daemon: refused on a live socket, and on a store another one holds. */
static int t_second_daemon(void)
{
	char sock2[100], dev2[192];
	pid_t pid;
	int st;

	snprintf(dev2, sizeof(dev2), "%s/img2,size=64M,create", g_dir);
	pid = fork();
	if (pid == 0) {
		execl(g_zvfsd, "zvfsd", "--foreground", "--socket", g_sock, "--device", dev2,
		      (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "second daemon on a live socket: %d", st);
	snprintf(sock2, sizeof(sock2), "%s/sock2", g_dir);
	pid = fork();
	if (pid == 0) {
		execl(g_zvfsd, "zvfsd", "--foreground", "--socket", sock2, "--device", g_dev,
		      (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "second daemon on a held store: %d", st);
	CHECK(access(sock2, F_OK) != 0, "refused daemon left its socket");
	return 0;
}

/*
 * Without --foreground: returns only once the socket listens; pidfile;
 * SHUTDOWN stops it, and then SIGTERM stops it.
 */
static int t_daemonize(void)
{
	char sock2[100], dev2[192], pidf[160], saved[100];
	pid_t pid;
	FILE *f;
	int st, s, dpid = 0;

	snprintf(dev2, sizeof(dev2), "%s/img3,size=64M,create", g_dir);
	snprintf(sock2, sizeof(sock2), "%s/sock3", g_dir);
	snprintf(pidf, sizeof(pidf), "%s/zvfsd.pid", g_dir);
	pid = fork();
	if (pid == 0) {
		char logf[200];

		snprintf(logf, sizeof(logf), "ZVFS_LOG_FILE=%s/zvfsd3.log", g_dir);
		putenv(logf);
		execl(g_zvfsd, "zvfsd", "--socket", sock2, "--device", dev2, "--pidfile", pidf,
		      (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "zvfsd (daemonizing) exit %d", st);
	/* No polling: it must listen already. */
	snprintf(saved, sizeof(saved), "%s", g_sock);
	snprintf(g_sock, sizeof(g_sock), "%s", sock2);
	s = cl_open_session();
	snprintf(g_sock, sizeof(g_sock), "%s", saved);
	CHECK(s >= 0, "daemonized zvfsd not listening on return");
	f = fopen(pidf, "r");
	CHECK(f && fscanf(f, "%d", &dpid) == 1 && dpid > 0, "pidfile");
	fclose(f);
	/* SHUTDOWN from our own uid (root, or the daemon's): accepted. */
	{
		char out[ZVFS_MSG_MAX];

		CHECK(cl_send(s, ZVFS_PROTO_VERSION, ZVFS_MSG_SHUTDOWN, NULL, 0, -1) == 0 &&
			      cl_recv(s, out, NULL) == ZVFS_MSG_OK,
		      "SHUTDOWN refused");
		CHECK(cl_recv(s, out, NULL) == 0, "connection kept after SHUTDOWN");
	}
	close(s);
	for (int i = 0; i < 1000 && kill(dpid, 0) == 0; i++)
		pause_ms(10);
	CHECK(kill(dpid, 0) < 0, "zvfsd still running after SHUTDOWN");
	CHECK(access(sock2, F_OK) != 0 && access(pidf, F_OK) != 0, "socket or pidfile left");
	/* Again, stopped by SIGTERM this time. */
	pid = fork();
	if (pid == 0) {
		execl(g_zvfsd, "zvfsd", "--socket", sock2, "--device", dev2, "--pidfile", pidf,
		      (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "zvfsd restart exit %d", st);
	f = fopen(pidf, "r");
	CHECK(f && fscanf(f, "%d", &dpid) == 1 && dpid > 0, "pidfile");
	fclose(f);
	CHECK(kill(dpid, SIGTERM) == 0, "kill");
	for (int i = 0; i < 1000 && kill(dpid, 0) == 0; i++)
		pause_ms(10);
	CHECK(kill(dpid, 0) < 0, "daemonized zvfsd still running");
	CHECK(access(sock2, F_OK) != 0 && access(pidf, F_OK) != 0, "socket or pidfile left");
	return 0;
}

static int t_sigterm(void)
{
	char cmd[512];
	int st, r;

	CHECK(kill(g_daemon, SIGTERM) == 0, "kill");
	CHECK(waitpid(g_daemon, &st, 0) == g_daemon, "waitpid");
	g_daemon = 0;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "zvfsd exit status %d", st);
	CHECK(access(g_sock, F_OK) != 0, "socket not removed");
	snprintf(cmd, sizeof(cmd), "'%s' fsck --mount '%s' '%s' >&2", g_tool, g_dir, g_img);
	r = system(cmd);
	CHECK(r == 0, "zvfs fsck after SIGTERM: status %d", r);
	return 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void cleanup(void)
{
	char cmd[256];

	char pidf[128];
	FILE *f;
	int dpid;

	if (g_daemon > 0) {
		kill(g_daemon, SIGKILL);
		waitpid(g_daemon, NULL, 0);
	}
	/* A daemonized zvfsd that t_daemonize did not get to stop. */
	snprintf(pidf, sizeof(pidf), "%s/zvfsd.pid", g_dir);
	f = fopen(pidf, "r");
	if (f) {
		if (fscanf(f, "%d", &dpid) == 1 && dpid > 0)
			kill(dpid, SIGKILL);
		fclose(f);
	}
	if (g_dir[0] && !getenv("ZVFS_TEST_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", g_dir);
	}
}

#define RUN(t)                                                                                     \
	do {                                                                                       \
		int r_ = (t);                                                                      \
		printf("%s %s\n", r_ == 0 ? "ok" : "not ok", #t);                                  \
		fflush(stdout);                                                                    \
	} while (0)

int main(int argc, char **argv)
{
	char text[ZVFS_MSG_MAX];
	int s = -1, fds0;

	if (argc != 3) {
		fprintf(stderr, "usage: test_daemon ZVFSD ZVFS_TOOL\n");
		return 1;
	}
	g_zvfsd = argv[1];
	g_tool = argv[2];
	snprintf(g_dir, sizeof(g_dir), "/tmp/zvfsd-test.XXXXXX");
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	/* Other users must reach the socket (the setuid case). */
	chmod(g_dir, 0755);
	if (setxattr(g_dir, "user.zvfs.probe", "1", 1, 0) < 0 && errno == ENOTSUP) {
		printf("skip: %s has no user xattrs\n", g_dir);
		return 77;
	}
	snprintf(g_img, sizeof(g_img), "%s/store.img", g_dir);
	snprintf(g_dev, sizeof(g_dev), "%s,size=256M,create", g_img);
	snprintf(g_sock, sizeof(g_sock), "%s/zvfsd.sock", g_dir);
	g_daemon = fork();
	if (g_daemon == 0) {
		execl(g_zvfsd, "zvfsd", "--foreground", "--socket", g_sock, "--device", g_dev,
		      "--cache-size", "32M", (char *)NULL);
		_exit(127);
	}
	/* Wait for the socket: a hang guard of 10 s, not a timing assertion. */
	for (int i = 0; i < 1000 && (s = cl_connect()) < 0; i++) {
		if (waitpid(g_daemon, NULL, WNOHANG) == g_daemon) {
			g_daemon = 0;
			fprintf(stderr, "zvfsd exited during startup\n");
			return 1;
		}
		pause_ms(10);
	}
	if (s < 0) {
		fprintf(stderr, "zvfsd does not listen on %s\n", g_sock);
		return 1;
	}
	close(s);
	if (wait_idle(text) < 0) {
		fprintf(stderr, "STATS:\n%s\n", text);
		return 1;
	}
	/*
	 * The baseline, once the daemon has closed the socket of that last STATS
	 * session: no socket but the listening one.
	 */
	for (int i = 0, socks = 0; i < 1000; i++) {
		fds0 = count_fds2(g_daemon, &socks);
		if (socks == 1)
			break;
		pause_ms(10);
	}

	RUN(t_handshake());
	RUN(t_version_mismatch());
	RUN(t_file_ops());
	RUN(t_size_table());
	RUN(t_nop_latency());
	RUN(t_big_write());
	RUN(t_follow_cpu());
	RUN(t_read_only());
	RUN(t_foreign_handle());
	RUN(t_remove());
	RUN(t_killed_client(fds0));
	RUN(t_malformed(fds0));
	RUN(t_forged_xattr());
	RUN(t_shutdown_nonroot());
	RUN(t_second_daemon());
	RUN(t_daemonize());
	if (cl_stats(text) == 0)
		printf("--- STATS ---\n%s", text);
	RUN(t_sigterm());
	return g_failed ? 1 : 0;
}
