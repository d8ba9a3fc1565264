/* SPDX-License-Identifier: MIT */
/*
 * bench/rtt.c - the null round trip through zvfsd: one client, one request
 * ring, ZVFS_OP_NOP requests back to back, each timed with clock_gettime.
 *
 * Speaks src/ipc/proto.h and src/ipc/ring.h directly (no libzvfs.so): HELLO
 * on the control socket, RING_ADD with a sealable memfd, then COUNT NOPs
 * after WARMUP untimed ones.  It waits for each response exactly as the
 * library does (zvfs_ring_wait: spin SPIN_US, then sleep on the futex; the
 * library's default spin is 0 on hosts with 2 CPUs or fewer, 30 us above).
 *
 * With -p PAUSE_US it sleeps that long (nanosleep, not timed) before every
 * request: past zvfsd's spin (--spin-us, 50 us by default) its worker sleeps
 * on the futex, so each request measures waking it (and, when it takes longer
 * than our own spin, being woken): the round trip of requests that come
 * less often than the spin, as every device I/O does.
 *
 * Build: cc -O2 -I src -I include -o rtt bench/rtt.c
 * Usage: rtt [-n COUNT] [-w WARMUP] [-s SPIN_US] [-p PAUSE_US] SOCKET
 * Output, one line (nanoseconds):
 *   nop COUNT p50 NS p90 NS p99 NS p999 NS min NS max NS mean NS
 * Exit 0, or 1 with a message on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipc/proto.h"
#include "ipc/ring.h"

/* A sleep on the futex times out after this; then the socket tells whether zvfsd died. */
#define SLEEP_NS 200000000ull

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "rtt: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/* One control call: send type/body (+ fd), receive the reply into body_out. */
static void ctl_call(int s, uint16_t type, const void *body, uint32_t len, int fd, uint16_t want,
		     void *body_out, uint32_t out_len)
{
	static uint32_t seq;
	unsigned char pkt[ZVFS_MSG_MAX + sizeof(struct zvfs_msg_hdr)];
	struct zvfs_msg_hdr h = {ZVFS_PROTO_MAGIC, ZVFS_PROTO_VERSION, type, len, ++seq};
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)body, len}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
	struct zvfs_msg_hdr rh;
	ssize_t n;

	if (fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		m.msg_control = cm.buf;
		m.msg_controllen = sizeof(cm.buf);
		cm.c.cmsg_level = SOL_SOCKET;
		cm.c.cmsg_type = SCM_RIGHTS;
		cm.c.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&cm.c), &fd, sizeof(int));
	}
	if (sendmsg(s, &m, MSG_NOSIGNAL) != (ssize_t)(sizeof(h) + len))
		die("send to zvfsd: %s", strerror(errno));
	n = recv(s, pkt, sizeof(pkt), 0);
	if (n < (ssize_t)sizeof(rh))
		die("no reply from zvfsd (%s)", n < 0 ? strerror(errno) : "short packet");
	memcpy(&rh, pkt, sizeof(rh));
	if (rh.magic != ZVFS_PROTO_MAGIC || rh.seq != seq)
		die("%s", "a reply that is not ours");
	if (rh.type == ZVFS_MSG_ERROR &&
	    n >= (ssize_t)(sizeof(rh) + sizeof(struct zvfs_msg_error))) {
		struct zvfs_msg_error e;

		memcpy(&e, pkt + sizeof(rh), sizeof(e));
		e.text[sizeof(e.text) - 1] = 0;
		fprintf(stderr, "rtt: zvfsd: %s (%s)\n", e.text, strerror(e.err));
		exit(1);
	}
	if (rh.type != want || (size_t)n != sizeof(rh) + out_len)
		die("%s", "unexpected reply type or size from zvfsd");
	memcpy(body_out, pkt + sizeof(rh), out_len);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int g_sock = -1;

/* After a sleep timed out: is zvfsd still there (no hangup on the socket)? */
static int daemon_alive(void)
{
	struct pollfd p = {.fd = g_sock};

	return poll(&p, 1, 0) >= 0 && !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* One NOP: publish, wait for DONE, back to IDLE; the latency in ns. */
static uint64_t nop(struct zvfs_ring *r, uint64_t seq, uint64_t spin_ns)
{
	uint64_t t0 = now_ns();
	int64_t s;

	memset(&r->req, 0, sizeof(r->req));
	r->req.op = ZVFS_OP_NOP;
	r->req.seq = seq;
	zvfs_ring_publish(r, ZVFS_RING_REQ, ZVFS_SLEEP_DAEMON);
	while ((s = zvfs_ring_wait(r, ZVFS_RING_REQ, spin_ns, ZVFS_SLEEP_CLIENT, SLEEP_NS)) ==
	       -ETIMEDOUT) {
		if (!daemon_alive())
			die("%s", "zvfsd hung up while a NOP was pending");
	}
	if (s != ZVFS_RING_DONE)
		die("%s", "ring in a state other than DONE after a NOP");
	if (r->resp.seq != seq || r->resp.result != 0)
		die("%s", "bad response to a NOP");
	zvfs_ring_store_state(r, ZVFS_RING_IDLE);
	return now_ns() - t0;
}

int main(int argc, char **argv)
{
	unsigned long count = 200000, warmup = 20000, spin_us = 0, pause_us = 0;
	struct zvfs_msg_hello hello = {ZVFS_PROTO_VERSION, 0, "rtt"};
	struct zvfs_msg_hello_ok hok;
	struct zvfs_msg_ring_add add = {4096, 0};
	struct zvfs_msg_ring_ok rok;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct zvfs_ring *r;
	uint64_t *lat, sum = 0;
	int s, mfd, ch;

	while ((ch = getopt(argc, argv, "n:w:s:p:")) != -1) {
		switch (ch) {
		case 'n':
			count = strtoul(optarg, NULL, 10);
			break;
		case 'w':
			warmup = strtoul(optarg, NULL, 10);
			break;
		case 's':
			spin_us = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			pause_us = strtoul(optarg, NULL, 10);
			break;
		default:
			die("%s", "usage: rtt [-n COUNT] [-w WARMUP] [-s SPIN_US] SOCKET");
		}
	}
	if (optind != argc - 1 || count < 1 || count > 100000000 || spin_us > 1000000 ||
	    pause_us > 999999)
		die("%s",
		    "usage: rtt [-n COUNT (1..1e8)] [-w WARMUP] [-s SPIN_US] [-p PAUSE_US] SOCKET");
	if (strlen(argv[optind]) >= sizeof(sa.sun_path))
		die("socket path too long: %s", argv[optind]);
	strcpy(sa.sun_path, argv[optind]);

	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("cannot connect to zvfsd at %s", argv[optind]);
	g_sock = s;
	hello.pid = (uint32_t)getpid();
	ctl_call(s, ZVFS_MSG_HELLO, &hello, sizeof(hello), -1, ZVFS_MSG_HELLO_OK, &hok,
		 sizeof(hok));

	mfd = memfd_create("rtt-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0 || ftruncate(mfd, (off_t)zvfs_ring_bytes(add.data_size)) < 0)
		die("memfd: %s", strerror(errno));
	r = mmap(NULL, zvfs_ring_bytes(add.data_size), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (r == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	r->magic = ZVFS_PROTO_MAGIC;
	r->version = ZVFS_PROTO_VERSION;
	r->data_size = add.data_size;
	zvfs_ring_store_state(r, ZVFS_RING_IDLE);
	add.tid = (uint32_t)gettid();
	ctl_call(s, ZVFS_MSG_RING_ADD, &add, sizeof(add), mfd, ZVFS_MSG_RING_OK, &rok, sizeof(rok));
	close(mfd);

	lat = malloc(count * sizeof(*lat));
	if (!lat)
		die("%s", "out of memory");
	for (unsigned long i = 0; i < warmup; i++)
		nop(r, i + 1, spin_us * 1000);
	for (unsigned long i = 0; i < count; i++) {
		if (pause_us) {
			struct timespec ts = {0, (long)pause_us * 1000};

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		lat[i] = nop(r, warmup + i + 1, spin_us * 1000);
		sum += lat[i];
	}
	qsort(lat, count, sizeof(*lat), cmp_u64);
	printf("nop %lu p50 %llu p90 %llu p99 %llu p999 %llu min %llu max %llu mean %llu\n", count,
	       (unsigned long long)lat[count / 2], (unsigned long long)lat[count * 90 / 100],
	       (unsigned long long)lat[count * 99 / 100],
	       (unsigned long long)lat[count * 999 / 1000], (unsigned long long)lat[0],
	       (unsigned long long)lat[count - 1], (unsigned long long)(sum / count));
	free(lat);
	close(s);
	return 0;
}
