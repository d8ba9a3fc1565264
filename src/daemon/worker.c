/* SPDX-License-Identifier: MIT */
/*
 * worker.c - request slots: one thread per ring (ipc/ring.h) runs the
 * client's requests on the file layer.
 *
 *   1. ring setup     RING_ADD: check and seal the memfd, map it, start the worker
 *   2. the worker     wait for REQ, copy, check, execute, publish DONE
 *   3. execution      one request -> one zvfs/fs.h call, rights checked
 *   4. teardown       stop, join, unmap; stats folded into the daemon's
 *
 * The client can write to the shared mapping at any time, so a worker reads
 * the request once into private memory and checks that copy; lengths come
 * from the copy and the data area's size from RING_ADD, never from shared
 * memory.  The memfd is sealed against shrinking (F_SEAL_SHRINK) before it
 * is mapped: a client that truncated it could otherwise make the daemon's
 * next access to the mapping fault (SIGBUS) in the middle of a copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/zvfsd.h"
#include "util/log.h"

#include "ipc/ring.h"
#include "util/clock.h"

/*
 * How often a sleeping worker looks at its stop flag.  Stopping also wakes it
 * (zvfs_ring_wake, repeated until it exits), so this is only a safety net;
 * long, so idle rings cost next to nothing.
 */
#define IDLE_TIMEOUT_NS 1000000000ull

/* ---- 1. ring setup ----------------------------------------------------------- */

static void *worker_main(void *arg);

int zvfsd_ring_add(struct zvfsd_client *c, int memfd, uint32_t data_size, uint32_t tid,
		   uint32_t *idp)
{
	struct zvfsd_ring *ring;
	struct stat st;
	void *map;
	int seals, r;

	if (fstat(memfd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != zvfs_ring_bytes(data_size))
		return -EINVAL;
	seals = fcntl(memfd, F_GET_SEALS);
	if (seals < 0 || (!(seals & F_SEAL_SHRINK) && fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0))
		return -EPERM; /* not a memfd made with MFD_ALLOW_SEALING */
	/* The seal holds from here on: the size cannot go below what fstat said. */
	if (fstat(memfd, &st) < 0 || (uint64_t)st.st_size < zvfs_ring_bytes(data_size))
		return -EINVAL;
	map = mmap(NULL, zvfs_ring_bytes(data_size), PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (map == MAP_FAILED)
		return -errno;
	if (((struct zvfs_ring *)map)->magic != ZVFS_PROTO_MAGIC ||
	    ((struct zvfs_ring *)map)->version != ZVFS_PROTO_VERSION) {
		munmap(map, zvfs_ring_bytes(data_size));
		return -EBADMSG;
	}
	ring = calloc(1, sizeof(*ring));
	if (!ring) {
		munmap(map, zvfs_ring_bytes(data_size));
		return -ENOMEM;
	}
	ring->client = c;
	ring->r = map;
	ring->data = (uint8_t *)map + ZVFS_RING_HDR;
	ring->data_size = data_size;
	ring->id = ++zd.next_ring_id;
	ring->tid = tid;
	ring->cpu = -1;
	r = pthread_create(&ring->thread, NULL, worker_main, ring);
	if (r != 0) {
		munmap(map, zvfs_ring_bytes(data_size));
		free(ring);
		return -r;
	}
	ring->next = c->rings;
	c->rings = ring;
	c->nrings++;
	atomic_fetch_add(&zd.nrings, 1);
	*idp = ring->id;
	return 0;
}

/* ---- 2. the worker --------------------------------------------------------------- */

static int64_t execute(struct zvfsd_ring *ring, const struct zvfs_req *req, struct zvfs_resp *resp);

static void account(struct zvfsd_ring *ring, uint32_t op, uint64_t ns, bool err)
{
	struct zvfsd_opstat *o;

	if (op >= ZVFS_OP_COUNT)
		return; /* refused by zvfs_req_check(): logged once per ring, not timed */
	o = &ring->stats.op[op];

	/* One writer (this thread): relaxed load + store, no locked instruction. */
	atomic_store_explicit(&o->count, atomic_load_explicit(&o->count, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (err)
		atomic_store_explicit(&o->errors,
				      atomic_load_explicit(&o->errors, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	atomic_store_explicit(&o->ns_total,
			      atomic_load_explicit(&o->ns_total, memory_order_relaxed) + ns,
			      memory_order_relaxed);
	if (ns > atomic_load_explicit(&o->ns_max, memory_order_relaxed))
		atomic_store_explicit(&o->ns_max, ns, memory_order_relaxed);
	_Atomic uint64_t *b = &o->hist[zvfsd_hist_bucket(ns)];
	atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/*
 * Where the worker runs.  While neither side spins (the daemon runs more
 * requests than half the CPUs: resp.busy), both sleep between requests, and
 * each request costs two wakeups.  The scheduler puts a woken thread on an idle
 * CPU if there is one, and on a VM waking an idle (halted) vCPU goes through
 * the host: a cold round trip measured 10.5 us with both sides on one vCPU and
 * 48 us with the worker pinned to the other.  So the worker is held to the CPU
 * its client sent the request from: the client's wakeup queues it there, the
 * client goes to sleep, and it runs at once.  pgbench -c 4 on 2 vCPUs went from
 * 0.77-0.80x to 0.93-0.98x of ext4, 8 KiB write + fdatasync with four jobs from
 * 14.6k to 17.6-18.4k.  While either side spins the worker must not share the
 * client's CPU (a spinning client would hold off the worker it waits for: 4k
 * instead of 17k 4 KiB reads/s with one job), so it goes back to every CPU the
 * daemon may use.  A client that spins also while the daemon is busy (the
 * library's default on more than 2 CPUs, or ZVFS_SPIN_US) says so in req.hints.
 */
static void follow_client(struct zvfsd_ring *ring, const struct zvfs_req *req, uint32_t busy)
{
	int want = -1;
	cpu_set_t set;

	if (zd.follow_cpu && busy * 2 > zd.ncpu && !(req->hints & ZVFS_REQ_SPINS) && req->cpu &&
	    req->cpu <= CPU_SETSIZE && CPU_ISSET(req->cpu - 1, &zd.cpus))
		want = (int)req->cpu - 1;
	if (want == ring->cpu)
		return;
	if (want >= 0) {
		CPU_ZERO(&set);
		CPU_SET(want, &set);
	} else {
		set = zd.cpus;
	}
	/* a hint: on failure (a CPU gone offline) the worker stays where it may run now */
	if (sched_setaffinity(0, sizeof(set), &set) == 0)
		ring->cpu = want;
}

static void *worker_main(void *arg)
{
	struct zvfsd_ring *ring = arg;
	struct zvfs_ring *r = ring->r;
	uint64_t spin = zd.spin_ns, done_at = 0;
	struct zvfs_cpu_watch cpu = {0};
	/* how often the next request came within the spin: an average of the last ~8, x256 */
	unsigned quick = 256;

	while (!atomic_load_explicit(&ring->stop, memory_order_acquire)) {
		struct zvfs_resp resp;
		struct zvfs_req req;
		uint64_t t0;
		uint32_t s = zvfs_ring_load_state(r), busy;

		if (s != ZVFS_RING_REQ) {
			/* DONE (client not done reading), IDLE, or garbage: wait for a change. */
			zvfs_ring_wait(r, s, spin, ZVFS_SLEEP_DAEMON, IDLE_TIMEOUT_NS);
			continue;
		}
		t0 = zvfs_mono_ns();
		if (done_at)
			quick = quick - quick / 8 + (t0 - done_at < zd.spin_ns ? 32 : 0);
		busy = atomic_fetch_add_explicit(&zd.executing, 1, memory_order_relaxed) + 1;
		/* Copy first: the client may change the slot under us at any time. */
		memcpy(&req, &r->req, sizeof(req));
		memset(&resp, 0, sizeof(resp));
		resp.seq = req.seq;
		resp.result = execute(ring, &req, &resp);
		s = atomic_fetch_sub_explicit(&zd.executing, 1, memory_order_relaxed);
		resp.busy = s > busy ? s : busy;
		/*
		 * Spinning for the next request pays only when it comes within the spin (fio: a
		 * few us; a database backend between queries: mostly longer, and its worker's spin
		 * cost pgbench 4-7% of its TPS on 2 vCPUs) and while CPUs are idle: with more
		 * requests in flight than half the CPUs, the spin takes the CPU another client or
		 * worker needs.  The gap is measured whether this worker spun or slept, so a
		 * client that speeds up is noticed.
		 */
		spin = quick >= 192 && resp.busy * 2 <= zd.ncpu && !zvfs_cpu_contended(&cpu)
			       ? zd.spin_ns
			       : 0;
		follow_client(ring, &req, resp.busy);
		memcpy(&r->resp, &resp, sizeof(resp));
		/* Service time (copy, check, execute); the wakeup below is the client's wait. */
		done_at = zvfs_mono_ns();
		zvfs_ring_publish(r, ZVFS_RING_DONE, ZVFS_SLEEP_CLIENT);
		account(ring, req.op, done_at - t0, resp.result < 0);
	}
	return NULL;
}

/* ---- 3. execution ---------------------------------------------------------------- */

static int64_t execute(struct zvfsd_ring *ring, const struct zvfs_req *req, struct zvfs_resp *resp)
{
	struct zvfs_file *file = NULL;
	uint32_t rights = 0;
	struct iovec iov;
	int64_t ret;
	int r;

	r = zvfs_req_check(req, ring->data_size);
	if (r < 0) {
		if (!ring->complained) {
			ring->complained = true;
			ZVFS_WARN("client %u (pid %d) ring %u: bad request (op %u %s, flags 0x%x, "
				  "len %llu): %s; further bad requests on this ring are not logged",
				  ring->client->id, (int)ring->client->pid, ring->id, req->op,
				  zvfs_op_name(req->op), req->flags, (unsigned long long)req->len,
				  strerror(-r));
		}
		return r;
	}
	if (req->op == ZVFS_OP_NOP)
		return 0;
	if (req->op == ZVFS_OP_SYNC_ALL)
		return zvfs_fs_sync_all(zd.fs);
	r = zvfsd_handle_get(ring->client, req->handle, &file, &rights);
	if (r < 0)
		return r;
	if (!zvfsd_op_allowed(req->op, rights)) {
		ret = -EBADF; /* as the kernel answers write(2) on an O_RDONLY fd */
		goto out;
	}
	iov.iov_base = ring->data;
	iov.iov_len = req->len; /* <= data_size: zvfs_req_check() */
	switch (req->op) {
	case ZVFS_OP_READ:
		ret = zvfs_file_read(file, &iov, 1, req->off, req->flags);
		break;
	case ZVFS_OP_WRITE: {
		uint64_t end = 0;

		ret = zvfs_file_write(file, &iov, 1, req->off, req->flags, &end);
		resp->val = end;
		break;
	}
	case ZVFS_OP_TRUNCATE:
		ret = zvfs_file_truncate(file, req->arg);
		break;
	case ZVFS_OP_FALLOCATE:
		ret = zvfs_file_fallocate(file, (int)req->flags, req->off, req->len);
		break;
	case ZVFS_OP_SYNC:
		ret = zvfs_file_sync(file, req->flags);
		break;
	case ZVFS_OP_WRITEBACK:
		ret = zvfs_file_writeback(file, req->off, req->len);
		break;
	case ZVFS_OP_DROP_CACHE:
		ret = zvfs_file_drop_cache(file, req->off, req->len);
		break;
	case ZVFS_OP_PREFETCH:
		ret = zvfs_file_prefetch(file, req->off, req->len);
		break;
	case ZVFS_OP_STAT: {
		struct zvfs_file_stat st;

		ret = zvfs_file_stat(file, &st);
		if (ret == 0) {
			resp->val = st.size;
			resp->val2 = st.allocated;
			resp->val3 = st.blob_id;
			resp->val4 = st.unlinked ? 1 : 0;
		}
		break;
	}
	case ZVFS_OP_SEEK: {
		uint64_t res = 0;

		ret = zvfs_file_seek(file, req->off, req->flags & 1, &res);
		resp->val = res;
		break;
	}
	case ZVFS_OP_CLOSE:
		ret = zvfsd_handle_close(ring->client, req->handle);
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
out:
	zvfsd_handle_put(ring->client, req->handle);
	return ret;
}

/* ---- 4. teardown ------------------------------------------------------------------ */

static void opstat_add(struct zvfsd_opstat *d, const struct zvfsd_opstat *s)
{
#define ADD(f)                                                                                     \
	atomic_fetch_add_explicit(&d->f, atomic_load_explicit(&s->f, memory_order_relaxed),        \
				  memory_order_relaxed)
	ADD(count);
	ADD(errors);
	ADD(ns_total);
	for (unsigned i = 0; i < ZVFSD_HIST; i++)
		ADD(hist[i]);
#undef ADD
	uint64_t m = atomic_load_explicit(&s->ns_max, memory_order_relaxed);
	if (m > atomic_load_explicit(&d->ns_max, memory_order_relaxed))
		atomic_store_explicit(&d->ns_max, m, memory_order_relaxed);
}

void zvfsd_stats_add(struct zvfsd_stats *sum, const struct zvfsd_stats *s)
{
	for (unsigned op = 0; op < ZVFS_OP_COUNT; op++)
		opstat_add(&sum->op[op], &s->op[op]);
}

void zvfsd_rings_stop(struct zvfsd_client *c)
{
	struct zvfsd_ring *ring;

	/* Flag them all first, so they wind down in parallel. */
	for (ring = c->rings; ring; ring = ring->next) {
		atomic_store_explicit(&ring->stop, true, memory_order_release);
		/* A sleeping worker wakes now instead of at its timeout. */
		zvfs_ring_wake(ring->r);
	}
	while ((ring = c->rings) != NULL) {
		c->rings = ring->next;
		/*
		 * A worker still spinning when it was woken goes to sleep after
		 * the wake: wake it again every 2 ms until it has gone.
		 */
		for (;;) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 2000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(ring->thread, NULL, &ts) != ETIMEDOUT)
				break;
			zvfs_ring_wake(ring->r);
		}
		pthread_mutex_lock(&zd.stats_lock);
		zvfsd_stats_add(&zd.done, &ring->stats);
		pthread_mutex_unlock(&zd.stats_lock);
		munmap(ring->r, zvfs_ring_bytes(ring->data_size));
		free(ring);
		c->nrings--;
		atomic_fetch_sub(&zd.nrings, 1);
	}
}
