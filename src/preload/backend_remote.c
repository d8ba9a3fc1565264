/* SPDX-License-Identifier: MIT */
/*
 * backend_remote.c - ZVFS_MODE=daemon: every file operation is a request to
 * zvfsd (ipc/proto.h for the messages, ipc/ring.h for the handoff).
 *
 * Map of this file:
 *   1. the connection: lazy connect + HELLO, control calls (one at a time,
 *      under g_lock), death and reconnection
 *   2. per-thread rings: made on a thread's first request (memfd, RING_ADD),
 *      unmapped at thread exit (pthread key destructor) and after a fork
 *   3. a request: publish, spin then sleep, check the daemon on every timeout
 *   4. the operations (the zp_backend table)
 *
 * Death and rebirth of the daemon: a request that times out finds POLLHUP on
 * the control socket (within ZP_SLEEP_NS), fails with EIO and marks the
 * connection dead, which also moves zp_engine_gen on: every open ofd is
 * stale from then on.  The next ZVFS call connects again (at most once per
 * ZP_RETRY_NS) and zp_fd_get() revives each stale descriptor as it is used,
 * sending its real fd in a new OPEN -- so a client continues where it was
 * after zvfsd restarts, at the offsets it had.
 *
 * A struct zp_file holds the daemon's handle and the connection it belongs
 * to; a handle of an older connection is never sent (EIO instead).
 */
#include "preload/preload.h"

#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "ipc/proto.h"
#include "ipc/ring.h"
#include "util/clock.h"

#define ZP_SLEEP_NS	100000000ull /* one futex sleep; the daemon is checked after each */
#define ZP_IDLE_SPIN_NS 150000ull    /* spin while the daemon is idle enough: ring_run() */
#define ZP_RETRY_NS	100000000ull /* at most one connection attempt per 100 ms */

struct zp_file {
	uint64_t handle;
	unsigned conn;	   /* g_conn when it was opened */
	atomic_bool wrote; /* data or size changed since the last zp_remote_flush() */
};

/* ---- 1. the connection ------------------------------------------------------------ */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_sock = -1;
static atomic_uint g_conn; /* bumped at every connect and at every loss */
static atomic_bool g_up;   /* connected, handshake done */
static uint32_t g_seq;
static uint32_t g_data_size = ZVFS_RING_DATA_DEFAULT;
static uint64_t g_last_try;
static int g_last_err; /* last connect error logged (log once per cause) */
static atomic_bool g_lost_told;

/*
 * Send one control message (with fd when sendfd >= 0) and receive its reply
 * into rep (at most replen bytes of body).  Returns the reply's type, or
 * -errno for a broken connection (the caller marks it dead).
 */
static int ctl_xfer(uint16_t type, const void *body, uint32_t len, int sendfd, void *rep,
		    uint32_t *replen, int *recvfd)
{
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	char pkt[ZVFS_MSG_MAX];
	struct iovec iov[2];
	struct msghdr m;
	uint32_t seq = ++g_seq;
	int sock = atomic_load(&g_sock);
	ssize_t n;

	n = zvfs_msg_send(sock, type, seq, body, len, sendfd, 0);
	if (n < 0)
		return (int)n;

	for (;;) {
		struct zvfs_msg_hdr rh;

		iov[0].iov_base = pkt;
		iov[0].iov_len = sizeof(pkt);
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = 1;
		m.msg_control = cm.buf;
		m.msg_controllen = sizeof(cm.buf);
		do
			n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		/*
		 * Keep the first fd when the caller wants one (HELLO_OK's size table); close
		 * any other, so none leak into the application.
		 */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int nfd = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

				for (int i = 0; i < nfd; i++) {
					int x;

					memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
					if (recvfd && *recvfd < 0)
						*recvfd = x;
					else
						ZP_REAL(close)(x);
				}
			}
		}
		if ((size_t)n < sizeof(rh)) {
			ZVFS_ERR("zvfsd: a reply of %zd bytes (less than a header)", n);
			return -EPROTO;
		}
		memcpy(&rh, pkt, sizeof(rh));
		if (rh.magic != ZVFS_PROTO_MAGIC || rh.len != (uint64_t)n - sizeof(rh)) {
			ZVFS_ERR("zvfsd: a malformed reply (magic %#x, len %u of %zd bytes)",
				 rh.magic, rh.len, n);
			return -EPROTO;
		}
		if (rh.seq != seq)
			continue; /* the reply to a request whose caller gave up */
		if (rh.len > *replen)
			rh.len = *replen;
		memcpy(rep, pkt + sizeof(rh), rh.len);
		*replen = rh.len;
		return rh.type;
	}
}

/* Connection lost (conn is the one the caller used): every handle of it is gone. */
static void lost_locked(unsigned conn, int why)
{
	if (atomic_load(&g_conn) != conn || !atomic_load(&g_up))
		return;
	atomic_store(&g_up, false);
	atomic_fetch_add(&g_conn, 1);
	/* Every ofd becomes stale: revived with a new OPEN after a reconnect. */
	atomic_fetch_add(&zp_engine_gen, 1);
	g_last_try = 0; /* the next call tries at once: a restarted daemon may be there already */
	if (!atomic_exchange(&g_lost_told, true))
		ZVFS_ERR("lost zvfsd at %s (%s): ZVFS calls fail with EIO until it is back",
			 zp_cfg.socket, strerror(-why));
}

static void lost(unsigned conn, int why)
{
	pthread_mutex_lock(&g_lock);
	lost_locked(conn, why);
	pthread_mutex_unlock(&g_lock);
}

static void comm_of_self(char comm[16])
{
	memset(comm, 0, 16);
	if (prctl(PR_GET_NAME, comm, 0, 0, 0) < 0)
		strcpy(comm, "?");
}

/*
 * The size table of one connection (HELLO_OK): entry i follows the size of the file of handle
 * slot i (proto.h).  Never unmapped: a thread may be reading an old one while a reconnect
 * publishes the next (one per daemon restart, 512 KiB of address space each).
 */
struct sizes {
	unsigned conn;
	uint32_t n;
	const _Atomic uint64_t *tab;
};
static _Atomic(struct sizes *) g_sizes;

static void sizes_map(int fd, uint32_t n, unsigned conn)
{
	struct sizes *sz;
	struct stat st;
	void *map;

	atomic_store(&g_sizes, NULL);
	if (fd < 0)
		return;
	st.st_size = 0;
	if (n == 0 || ZP_REAL(fstat)(fd, &st) < 0 || (uint64_t)st.st_size < (uint64_t)n * 8) {
		ZVFS_WARN("zvfsd: a size table of %u entries in %lld bytes: not used", n,
			  (long long)st.st_size);
		ZP_REAL(close)(fd);
		return;
	}
	map = ZP_REAL(mmap)(NULL, (size_t)n * 8, PROT_READ, MAP_SHARED, fd, 0);
	ZP_REAL(close)(fd);
	sz = malloc(sizeof(*sz));
	if (map == MAP_FAILED || !sz) {
		ZVFS_WARN("zvfsd: cannot map the size table: sizes are asked for");
		if (map != MAP_FAILED)
			ZP_REAL(munmap)(map, (size_t)n * 8);
		free(sz);
		return;
	}
	sz->conn = conn;
	sz->n = n;
	sz->tab = map;
	atomic_store(&g_sizes, sz);
}

static void connect_fail(int err, const char *what)
{
	if (err != g_last_err) {
		ZVFS_ERR("cannot use zvfsd at %s: %s: %s%s", zp_cfg.socket, what, strerror(-err),
			 err == -ENOENT || err == -ECONNREFUSED
				 ? " (is it running? `zvfs daemon start`)"
				 : "");
		g_last_err = err;
	}
}

int zp_remote_dial(const char **what)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), e;

	*what = "socket";
	if (s < 0)
		return -errno;
	*what = "connect";
	strcpy(sa.sun_path, zp_cfg.socket);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		ZP_REAL(close)(s);
		return -e;
	}
	/*
	 * Out of the way of shells, which put their own files on 3-9 ("exec 4>f" over the
	 * socket would cost the connection, and every handle with it).
	 */
	return zvfs_fd_move_high(s);
}

/* Connected and greeted, or -EIO (logged once per cause). */
static int connect_locked(void)
{
	const char *what;
	struct zvfs_msg_hello hello = {0};
	union {
		struct zvfs_msg_hello_ok ok;
		struct zvfs_msg_error err;
		char raw[ZVFS_MSG_MAX];
	} rep;
	uint32_t replen = sizeof(rep);
	uint64_t t = zvfs_mono_ns();
	int old = atomic_load(&g_sock);
	int s, r, tfd = -1;

	if (atomic_load(&g_up))
		return 0;
	if (g_last_try && t - g_last_try < ZP_RETRY_NS) {
		/*
		 * The last attempt failed a moment ago: wait out the rest of the
		 * interval and try once more, so a daemon that is being restarted
		 * is found, while a dead one costs each call at most ZP_RETRY_NS.
		 */
		uint64_t left = ZP_RETRY_NS - (t - g_last_try);
		struct timespec ts = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		t = zvfs_mono_ns();
	}
	g_last_try = t;
	if (old >= 0) {
		atomic_store(&g_sock, -1);
		ZP_REAL(close)(old);
	}
	s = zp_remote_dial(&what);
	if (s < 0) {
		connect_fail(s, what);
		return -EIO;
	}
	atomic_store(&g_sock, s);
	hello.version = ZVFS_PROTO_VERSION;
	hello.pid = (uint32_t)getpid();
	comm_of_self(hello.comm);
	r = ctl_xfer(ZVFS_MSG_HELLO, &hello, sizeof(hello), -1, &rep, &replen, &tfd);
	if (r == ZVFS_MSG_ERROR && replen >= sizeof(int32_t)) {
		rep.err.text[sizeof(rep.err.text) - 1] = '\0';
		if (replen < sizeof(rep.err))
			rep.err.text[0] = '\0';
		/* A version mismatch: say so plainly, and fail ZVFS calls with EIO. */
		connect_fail(-(rep.err.err > 0 ? rep.err.err : EPROTO), rep.err.text);
		r = -EIO;
	} else if (r == ZVFS_MSG_HELLO_OK && replen == sizeof(rep.ok)) {
		if (rep.ok.version != ZVFS_PROTO_VERSION) {
			ZVFS_ERR("zvfsd at %s speaks protocol version %u, this libzvfs.so %u: "
				 "ZVFS calls fail with EIO (install matching versions)",
				 zp_cfg.socket, rep.ok.version, ZVFS_PROTO_VERSION);
			r = -EIO;
		} else {
			uint32_t ds = rep.ok.data_size;

			/* The daemon's preference, when it is one the protocol allows. */
			g_data_size = (ds && ds % 4096 == 0 && ds <= ZVFS_RING_DATA_MAX)
					      ? ds
					      : ZVFS_RING_DATA_DEFAULT;
			r = 0;
		}
	} else {
		connect_fail(r < 0 ? r : -EPROTO, "handshake");
		r = -EIO;
	}
	if (r < 0) {
		if (tfd >= 0)
			ZP_REAL(close)(tfd);
		atomic_store(&g_sock, -1);
		ZP_REAL(close)(s);
		return r;
	}
	if (g_last_err || atomic_load(&g_lost_told))
		ZVFS_INFO("connected to zvfsd at %s", zp_cfg.socket);
	else
		ZVFS_DEBUG("connected to zvfsd at %s (daemon pid %u, protocol %u, data area %u)",
			   zp_cfg.socket, rep.ok.daemon_pid, ZVFS_PROTO_VERSION, g_data_size);
	g_last_err = 0;
	atomic_store(&g_lost_told, false);
	sizes_map(tfd, rep.ok.size_slots, atomic_fetch_add(&g_conn, 1) + 1);
	atomic_store(&g_up, true);
	return 0;
}

/*
 * One control request expecting reply type want (body into rep, exactly
 * replen bytes).  Connects first.  0, -errno from the daemon's ERROR, or
 * -EIO when the daemon cannot be reached.
 */
static int ctl_call(uint16_t type, const void *body, uint32_t len, int sendfd, uint16_t want,
		    void *rep, uint32_t replen)
{
	union {
		struct zvfs_msg_error err;
		char raw[ZVFS_MSG_MAX];
	} buf;
	uint32_t n = sizeof(buf);
	unsigned conn;
	int r;

	pthread_mutex_lock(&g_lock);
	r = connect_locked();
	if (r < 0) {
		pthread_mutex_unlock(&g_lock);
		return r;
	}
	conn = atomic_load(&g_conn);
	r = ctl_xfer(type, body, len, sendfd, &buf, &n, NULL);
	if (r < 0) {
		lost_locked(conn, r);
		pthread_mutex_unlock(&g_lock);
		return -EIO;
	}
	pthread_mutex_unlock(&g_lock);
	if (r == ZVFS_MSG_ERROR) {
		int e = n >= sizeof(int32_t) ? buf.err.err : EIO;

		if (n == sizeof(buf.err)) {
			buf.err.text[sizeof(buf.err.text) - 1] = '\0';
			ZVFS_DEBUG("zvfsd: %s: %s", buf.err.text, strerror(e));
		}
		return e > 0 && e < 4096 ? -e : -EIO;
	}
	if (r != want || n != replen) {
		ZVFS_ERR("zvfsd: reply type %d (%u bytes) to a request of type %u", r, n, type);
		return -EIO;
	}
	memcpy(rep, &buf, replen);
	return 0;
}

/* ---- 2. rings ------------------------------------------------------------------------ */

struct tring {
	struct zvfs_ring *r;
	uint32_t data_size;
	unsigned conn;
	uint64_t seq;
	uint64_t spin_ns;	   /* for the next request: see ring_run() */
	struct zvfs_cpu_watch cpu; /* this thread waiting for a CPU: ring_run() */
	struct tring *next, *prev; /* every ring of the process, for the fork child */
};

static __thread struct tring *t_ring;
static struct tring *g_rings; /* under g_lock */
static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void ring_unmap_locked(struct tring *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		g_rings = t->next;
	if (t->next)
		t->next->prev = t->prev;
	ZP_REAL(munmap)(t->r, zvfs_ring_bytes(t->data_size));
	free(t);
}

/* Thread exit: the daemon keeps serving its copy until the connection closes. */
static void ring_dtor(void *p)
{
	struct tring *t = p;

	ZP_ENTER();
	pthread_mutex_lock(&g_lock);
	if (t == t_ring)
		t_ring = NULL;
	ring_unmap_locked(t);
	pthread_mutex_unlock(&g_lock);
	ZP_LEAVE();
}

static void key_init(void)
{
	if (pthread_key_create(&g_key, ring_dtor) != 0)
		ZVFS_ERR("pthread_key_create: rings of exiting threads stay mapped");
}

/* This thread's ring on the current connection, connecting and registering as needed. */
static struct tring *ring_get(int *err)
{
	struct tring *t = t_ring;
	struct zvfs_msg_ring_add add;
	struct zvfs_msg_ring_ok ok;
	struct zvfs_ring *r;
	uint64_t bytes;
	int mfd;
	int e;

	if (__builtin_expect(t && t->conn == atomic_load_explicit(&g_conn, memory_order_relaxed) &&
				     atomic_load_explicit(&g_up, memory_order_relaxed),
			     1))
		return t;
	pthread_once(&g_key_once, key_init);
	pthread_mutex_lock(&g_lock);
	e = connect_locked();
	if (t) {
		/* Of an older connection: the daemon that served it is gone. */
		t_ring = NULL;
		pthread_setspecific(g_key, NULL);
		ring_unmap_locked(t);
	}
	pthread_mutex_unlock(&g_lock);
	if (e < 0) {
		*err = e;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		*err = -ENOMEM;
		return NULL;
	}
	t->data_size = g_data_size;
	t->spin_ns = zp_cfg.spin_ns;
	bytes = zvfs_ring_bytes(t->data_size);
	/* Sealable: the daemon seals it against shrinking before it maps it. */
	mfd = memfd_create("zvfs-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0) {
		*err = -errno;
		free(t);
		return NULL;
	}
	r = MAP_FAILED;
	if (ZP_REAL(ftruncate)(mfd, (off_t)bytes) == 0)
		r = ZP_REAL(mmap)(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (r == MAP_FAILED) {
		*err = -errno;
		ZP_REAL(close)(mfd);
		free(t);
		ZVFS_ERR("cannot make a request ring of %llu bytes: %s", (unsigned long long)bytes,
			 strerror(-*err));
		return NULL;
	}
	r->magic = ZVFS_PROTO_MAGIC;
	r->version = ZVFS_PROTO_VERSION;
	r->data_size = t->data_size;
	zvfs_ring_store_state(r, ZVFS_RING_IDLE);
	t->r = r;
	add.data_size = t->data_size;
	add.tid = (uint32_t)gettid();
	/* Rings are registered on the connection they belong to: note it before the call. */
	t->conn = atomic_load(&g_conn);
	e = ctl_call(ZVFS_MSG_RING_ADD, &add, sizeof(add), mfd, ZVFS_MSG_RING_OK, &ok, sizeof(ok));
	ZP_REAL(close)(mfd);
	if (e < 0 || t->conn != atomic_load(&g_conn)) {
		ZP_REAL(munmap)(r, bytes);
		free(t);
		if (e < 0 && e != -EIO)
			ZVFS_ERR("zvfsd refused a request ring: %s", strerror(-e));
		*err = -EIO;
		return NULL;
	}
	pthread_mutex_lock(&g_lock);
	t->next = g_rings;
	if (g_rings)
		g_rings->prev = t;
	g_rings = t;
	pthread_mutex_unlock(&g_lock);
	t_ring = t;
	pthread_setspecific(g_key, t);
	ZVFS_DEBUG("thread %u: request ring %u, %u bytes of data area", add.tid, ok.ring_id,
		   t->data_size);
	return t;
}

void zp_remote_after_fork_child(void)
{
	struct tring *t = g_rings;
	int s = atomic_load(&g_sock);

	/* Only this thread exists: no locking, and the parent's lock state is void. */
	pthread_mutex_init(&g_lock, NULL);
	while (t) {
		struct tring *next = t->next;

		ZP_REAL(munmap)(t->r, zvfs_ring_bytes(t->data_size));
		free(t);
		t = next;
	}
	g_rings = NULL;
	t_ring = NULL;
	if (g_key_once != PTHREAD_ONCE_INIT)
		pthread_setspecific(g_key, NULL);
	if (s >= 0)
		ZP_REAL(close)(s);
	atomic_store(&g_sock, -1);
	atomic_store(&g_up, false);
	atomic_fetch_add(&g_conn, 1);
	g_last_try = 0;
}

void zp_remote_protect_range(unsigned first, unsigned last)
{
	int s = atomic_load(&g_sock);

	if (s >= 0 && (unsigned)s >= first && (unsigned)s <= last)
		zp_remote_protect_fd(s);
}

void zp_remote_protect_fd(int fd)
{
	if (fd < 0 || fd != atomic_load(&g_sock))
		return;
	/* The application closes or replaces our socket: give it up, reconnect on use. */
	pthread_mutex_lock(&g_lock);
	if (fd == atomic_load(&g_sock)) {
		lost_locked(atomic_load(&g_conn), -EBADF);
		atomic_store(&g_sock, -1);
		g_last_try = 0;
	}
	pthread_mutex_unlock(&g_lock);
}

/* ---- 3. one request ----------------------------------------------------------------- */

/* Is the daemon of connection conn still there?  (Called after a sleep timed out.) */
static bool alive(unsigned conn)
{
	struct pollfd p;

	if (atomic_load(&g_conn) != conn || !atomic_load(&g_up))
		return false;
	p.fd = atomic_load(&g_sock);
	p.events = 0;
	p.revents = 0;
	if (p.fd < 0)
		return false;
	if (poll(&p, 1, 0) < 0)
		return errno == EINTR;
	return !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/*
 * Publish the request already written into t's ring and wait for its
 * response.  The result, or -EIO when the daemon died meanwhile.
 */
static int64_t ring_run(struct tring *t, struct zvfs_resp *resp)
{
	struct zvfs_ring *r = t->r;
	uint64_t seq = ++t->seq;
	int cpu = sched_getcpu(); /* glibc reads it from rseq: no system call */

	r->req.seq = seq;
	r->req.cpu = cpu >= 0 ? (uint32_t)cpu + 1 : 0;
	/*
	 * spin_ns is this thread's spin while the daemon is busy (ring_run's end): a client that
	 * spins then would keep a worker held to its CPU off that CPU (worker.c follow_client).
	 */
	r->req.hints = zp_cfg.spin_ns ? ZVFS_REQ_SPINS : 0;
	zvfs_ring_publish(r, ZVFS_RING_REQ, ZVFS_SLEEP_DAEMON);
	for (;;) {
		int64_t s = zvfs_ring_wait(r, ZVFS_RING_REQ, t->spin_ns, ZVFS_SLEEP_CLIENT,
					   ZP_SLEEP_NS);

		if (s == ZVFS_RING_DONE)
			break;
		if (s == -ETIMEDOUT) {
			if (alive(t->conn))
				continue;
			lost(t->conn, -ECONNRESET);
			return -EIO;
		}
		/* IDLE or garbage while we wait: the daemon broke the protocol. */
		ZVFS_ERR("zvfsd: ring state %lld while a request was pending", (long long)s);
		lost(t->conn, -EPROTO);
		return -EIO;
	}
	memcpy(resp, &r->resp, sizeof(*resp));
	if (resp->seq != seq) {
		ZVFS_ERR("zvfsd: response %llu to request %llu", (unsigned long long)resp->seq,
			 (unsigned long long)seq);
		lost(t->conn, -EPROTO);
		return -EIO;
	}
	/*
	 * While the daemon runs at most one request per two CPUs, spin through the whole next
	 * request (a device read or write included): the wakeup from the other CPU costs more
	 * than the I/O on a VM (~50 us).  Busier, the spin would take the CPU that other
	 * requests need: back to the configured spin.  On a 2-vCPU VM, 4 KiB O_DIRECT random
	 * reads at QD1 went from 13.7k to 16.5k IOPS (direct mode 18k) with one job, and four
	 * jobs spinning 100 us fell from 29k to 11k: hence the condition.  Other processes
	 * need the CPU too, which the daemon cannot see: hence the run-delay check.
	 */
	if (!zp_cfg.spin_fixed && resp->busy)
		t->spin_ns = resp->busy * 2 <= zp_cfg.ncpu && !zvfs_cpu_contended(&t->cpu)
				     ? ZP_IDLE_SPIN_NS
				     : zp_cfg.spin_ns;
	return resp->result;
}

static void ring_done(struct tring *t)
{
	zvfs_ring_store_state(t->r, ZVFS_RING_IDLE);
}

static void req_init(struct zvfs_req *q, uint32_t op, const struct zp_file *f)
{
	memset(q, 0, sizeof(*q));
	q->op = op;
	q->handle = f ? f->handle : 0;
}

/* A request without data.  resp may be NULL. */
/*
 * This thread's ring, usable for f (NULL: no file, e.g. SYNC_ALL): a handle
 * belongs to the connection it was opened on, and is useless on any other.
 * NULL with *err set when there is no ring or the connection changed.
 */
static struct tring *ring_for(struct zp_file *f, int *err)
{
	struct tring *t;

	*err = -EIO;
	if (f && f->conn != atomic_load(&g_conn))
		return NULL; /* a handle of a connection that is gone */
	t = ring_get(err);
	if (t && f && f->conn != t->conn) {
		*err = -EIO;
		return NULL;
	}
	return t;
}

static int64_t simple(struct zp_file *f, uint32_t op, uint32_t flags, uint64_t off, uint64_t len,
		      uint64_t arg, struct zvfs_resp *resp)
{
	struct zvfs_resp tmp;
	struct tring *t;
	int64_t r;
	int err;

	t = ring_for(f, &err);
	if (!t)
		return err;
	req_init(&t->r->req, op, f);
	t->r->req.flags = flags;
	t->r->req.off = off;
	t->r->req.len = len;
	t->r->req.arg = arg;
	r = ring_run(t, resp ? resp : &tmp);
	ring_done(t);
	return r;
}

/* ---- 4. operations ------------------------------------------------------------------ */

static int open_fd(int fd, uint32_t flags, struct zp_file **filep)
{
	struct zvfs_msg_open m = {.flags = flags};
	struct zvfs_msg_open_ok ok;
	struct zp_file *f;
	int r;

	f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	r = ctl_call(ZVFS_MSG_OPEN, &m, sizeof(m), fd, ZVFS_MSG_OPEN_OK, &ok, sizeof(ok));
	if (r < 0) {
		free(f);
		return r;
	}
	f->handle = ok.handle;
	atomic_init(&f->wrote, false);
	ZVFS_DEBUG("fd %d: handle %#llx (size %llu)%s", fd, (unsigned long long)ok.handle,
		   (unsigned long long)ok.size, (flags & ZVFS_OPEN_CREATE) ? ", created" : "");
	/* The connection the reply came on (a loss after it makes the handle useless, as it should). */
	f->conn = atomic_load(&g_conn);
	*filep = f;
	return 0;
}

static int r_open(int fd, int dirfd, const char *path, bool follow, const struct stat *st,
		  const void *xattr, size_t xlen, struct zp_file **filep)
{
	int tmp;
	int r;

	(void)st;
	(void)xattr;
	(void)xlen;
	if (fd >= 0)
		return open_fd(fd, 0, filep);
	/*
	 * A lookup by name (stat): the daemon reads the file through an fd, so
	 * open one -- O_PATH, for a stat-only handle (ZVFS_OPEN_STAT).  Any
	 * other fd's close would drop this process's fcntl locks on the file
	 * (POSIX record locks belong to the process and the inode), and SQLite
	 * from several processes lost its locks to its own stat() calls.
	 * stat(2) needs no permission on the file, and neither does this.
	 */
	tmp = ZP_REAL(openat)(dirfd, path, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	if (tmp < 0)
		return -errno;
	r = open_fd(tmp, ZVFS_OPEN_STAT, filep);
	ZP_REAL(close)(tmp);
	return r;
}

static int r_create(int fd, const struct stat *st, struct zp_file **filep)
{
	(void)st;
	return open_fd(fd, ZVFS_OPEN_CREATE, filep);
}

static int r_remove(int pfd, const void *xattr, size_t xlen, const struct zvfs_fs_ino *ino,
		    bool shared)
{
	char none[1];
	uint32_t n = 0;

	(void)shared; /* zvfsd sees every handle */

	(void)xattr;
	(void)xlen;
	(void)ino;
	if (pfd < 0)
		return -EBADF;
	return ctl_call(ZVFS_MSG_REMOVE, NULL, 0, pfd, ZVFS_MSG_OK, none, n);
}

static void r_forget(struct zp_file *f)
{
	free(f);
}

int zp_remote_flush(struct zp_file *f)
{
	if (!atomic_load_explicit(&f->wrote, memory_order_relaxed) ||
	    f->conn != atomic_load(&g_conn))
		return 0;
	atomic_store(&f->wrote, false);
	return (int)simple(f, ZVFS_OP_SYNC, ZVFS_SYNC_DATA, 0, 0, 0, NULL);
}

static int r_close(struct zp_file *f)
{
	int64_t r = 0;

	/* A handle of a lost connection died with it. */
	if (f->conn == atomic_load(&g_conn)) {
		int w = zp_remote_flush(f);

		if (w < 0)
			ZVFS_DEBUG("sync at close: %s", strerror(-w));
		r = simple(f, ZVFS_OP_CLOSE, 0, 0, 0, 0, NULL);
	}
	free(f);
	return (int)r;
}

/* Copy n bytes between the data area and an iovec, starting at byte skip of the iovec. */
static void iov_copy(const struct iovec *iov, int cnt, size_t skip, void *data, size_t n,
		     bool to_iov)
{
	char *d = data;

	for (int i = 0; i < cnt && n > 0; i++) {
		size_t l = iov[i].iov_len;
		size_t k;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		k = l - skip;
		if (k > n)
			k = n;
		if (to_iov)
			memcpy((char *)iov[i].iov_base + skip, d, k);
		else
			memcpy(d, (char *)iov[i].iov_base + skip, k);
		d += k;
		n -= k;
		skip = 0;
	}
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* One read or write request of at most the data area's size at off; the bytes it covers. */
static size_t req_piece(struct tring *t, uint32_t op, const struct zp_file *f, unsigned flags,
			uint64_t off, size_t len)
{
	if (len > t->data_size)
		len = t->data_size;
	req_init(&t->r->req, op, f);
	t->r->req.flags = flags;
	t->r->req.off = off;
	t->r->req.len = len;
	return len;
}

/* Reads larger than the data area go as several requests; a short piece is end of file. */
static ssize_t r_read(struct zp_file *f, const struct iovec *iov, int cnt, uint64_t off,
		      unsigned flags)
{
	size_t total = iov_total(iov, cnt);
	size_t done = 0;
	struct tring *t;
	int err;

	t = ring_for(f, &err);
	if (!t)
		return err;
	while (done < total) {
		size_t piece = total - done;
		struct zvfs_resp resp;
		int64_t r;

		piece = req_piece(t, ZVFS_OP_READ, f, flags, off + done, piece);
		r = ring_run(t, &resp);
		if (r > 0) {
			if ((uint64_t)r > piece)
				r = (int64_t)piece; /* never trust a count beyond what was asked */
			iov_copy(iov, cnt, done, (char *)t->r + ZVFS_RING_HDR, (size_t)r, true);
		}
		ring_done(t);
		if (r < 0)
			return done ? (ssize_t)done : r;
		done += (size_t)r;
		if ((size_t)r < piece)
			break;
	}
	return (ssize_t)done;
}

/*
 * Writes larger than the data area go as several requests.  An append of
 * several pieces is atomic per piece (data-area size, 1 MiB by default),
 * not as a whole.
 */
static ssize_t r_write(struct zp_file *f, const struct iovec *iov, int cnt, uint64_t off,
		       unsigned flags, uint64_t *endp)
{
	size_t total = iov_total(iov, cnt);
	size_t done = 0;
	uint64_t end = off;
	struct tring *t;
	int err;

	t = ring_for(f, &err);
	if (!t)
		return err;
	while (done < total) {
		size_t piece = total - done;
		struct zvfs_resp resp;
		int64_t r;

		piece = req_piece(t, ZVFS_OP_WRITE, f, flags, off + done, piece);
		iov_copy(iov, cnt, done, (char *)t->r + ZVFS_RING_HDR, piece, false);
		r = ring_run(t, &resp);
		ring_done(t);
		if (r < 0) {
			if (!done)
				return r;
			break;
		}
		if ((uint64_t)r > piece)
			r = (int64_t)piece;
		end = resp.val;
		done += (size_t)r;
		if ((size_t)r < piece)
			break;
	}
	if (done)
		atomic_store_explicit(&f->wrote, true, memory_order_relaxed);
	if (endp)
		*endp = end;
	return (ssize_t)done;
}

static int r_truncate(struct zp_file *f, uint64_t size)
{
	atomic_store_explicit(&f->wrote, true, memory_order_relaxed);
	return (int)simple(f, ZVFS_OP_TRUNCATE, 0, 0, 0, size, NULL);
}

static int r_fallocate(struct zp_file *f, int mode, uint64_t off, uint64_t len)
{
	atomic_store_explicit(&f->wrote, true, memory_order_relaxed);
	return (int)simple(f, ZVFS_OP_FALLOCATE, (uint32_t)mode, off, len, 0, NULL);
}

static int r_sync(struct zp_file *f, unsigned flags)
{
	int r = (int)simple(f, ZVFS_OP_SYNC, flags, 0, 0, 0, NULL);

	if (r == 0 && !(flags & ZVFS_SYNC_NOFLUSH))
		atomic_store_explicit(&f->wrote, false, memory_order_relaxed);
	return r;
}

static int r_writeback(struct zp_file *f, uint64_t off, uint64_t len)
{
	return (int)simple(f, ZVFS_OP_WRITEBACK, 0, off, len, 0, NULL);
}

static int r_drop_cache(struct zp_file *f, uint64_t off, uint64_t len)
{
	return (int)simple(f, ZVFS_OP_DROP_CACHE, 0, off, len, 0, NULL);
}

static int r_prefetch(struct zp_file *f, uint64_t off, uint64_t len)
{
	return (int)simple(f, ZVFS_OP_PREFETCH, 0, off, len, 0, NULL);
}

static int r_stat(struct zp_file *f, struct zvfs_file_stat *st)
{
	struct zvfs_resp resp;
	int64_t r = simple(f, ZVFS_OP_STAT, 0, 0, 0, 0, &resp);

	if (r < 0)
		return (int)r;
	memset(st, 0, sizeof(*st));
	st->size = resp.val;
	st->allocated = resp.val2;
	st->blob_id = (zvfs_blob_id)resp.val3;
	st->unlinked = (resp.val4 & 1) != 0;
	return 0;
}

static int64_t r_size(struct zp_file *f)
{
	struct sizes *sz = atomic_load_explicit(&g_sizes, memory_order_acquire);
	struct zvfs_resp resp;
	int64_t r;

	/*
	 * The daemon keeps the entry of this handle current (lseek SEEK_END without a round trip:
	 * PostgreSQL asks for relation sizes ten times per pgbench transaction).  A handle of an
	 * older connection is not in this table: the slow path revives it or fails.  alive() (one
	 * poll(2)) keeps the promise that calls fail with EIO once the daemon is gone: a dead
	 * daemon's table would go on answering with the sizes it last wrote.
	 */
	if (sz && sz->conn == f->conn && (uint32_t)f->handle < sz->n && alive(f->conn)) {
		uint64_t v =
			atomic_load_explicit(&sz->tab[(uint32_t)f->handle], memory_order_acquire);

		return v > (uint64_t)INT64_MAX ? -EOVERFLOW : (int64_t)v;
	}
	r = simple(f, ZVFS_OP_STAT, 0, 0, 0, 0, &resp);

	if (r < 0)
		return r;
	return resp.val > (uint64_t)INT64_MAX ? -EOVERFLOW : (int64_t)resp.val;
}

static int r_seek(struct zp_file *f, uint64_t off, bool hole, uint64_t *res)
{
	struct zvfs_resp resp;
	int64_t r = simple(f, ZVFS_OP_SEEK, hole ? 1 : 0, off, 0, 0, &resp);

	if (r < 0)
		return (int)r;
	*res = resp.val;
	return 0;
}

/* sync(2): only over a connection we have (a process that never used ZVFS has nothing). */
static int r_sync_all(void)
{
	if (!atomic_load(&g_up))
		return 0;
	return (int)simple(NULL, ZVFS_OP_SYNC_ALL, 0, 0, 0, 0, NULL);
}

const struct zp_backend zp_backend_remote = {
	.name = "daemon",
	.open = r_open,
	.create = r_create,
	.remove = r_remove,
	.close = r_close,
	.forget = r_forget,
	.read = r_read,
	.write = r_write,
	.truncate = r_truncate,
	.fallocate = r_fallocate,
	.sync = r_sync,
	.writeback = r_writeback,
	.drop_cache = r_drop_cache,
	.prefetch = r_prefetch,
	.stat = r_stat,
	.size = r_size,
	.seek = r_seek,
	.sync_all = r_sync_all,
};
