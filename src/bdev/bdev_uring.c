/* SPDX-License-Identifier: MIT */
/*
 * io_uring backend: one ring per thread and device.
 *
 * Map:
 *   open/close         the file or block device (bdev_file.c validates it)
 *   channel create     ring setup with the cheapest flags the kernel takes,
 *                      the device fd and the buffer arena registered
 *   submit             prepare an SQE; no system call (batched at poll)
 *   poll               one io_uring_enter for everything prepared (and, when
 *                      waiting, for the wait), then reap the CQ ring from
 *                      user space
 *
 * Requests beyond the ring's capacity wait on a per-channel pending list,
 * so the completion ring can never overflow: in flight <= CQ entries.
 */
#include "zvfs/bdev_module.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/clock.h"
#include "util/fdreg.h"

struct uring_dev {
	struct zvfs_bdev_file file;
	unsigned sq_batch; /* see reap: submit early once this many are prepared */
	uint64_t spin_ns;  /* see spin_solo(); 0 = never */
	bool spin_always;
};

/* Default "spin=": a few device round trips of a virtio disk (reads take 45-70 us). */
#define SPIN_US_DEFAULT 200

struct uring_ch {
	struct io_uring ring;
	unsigned inflight;		   /* SQEs prepared and not yet reaped */
	unsigned cap;			   /* most SQEs in flight at once */
	struct zvfs_bdev_io *pending_head; /* waiting for room in the ring */
	struct zvfs_bdev_io *pending_tail;
	bool fixed_file;	   /* the fd is registered as index 0 */
	bool fixed_buf;		   /* the arena is registered as buffer 0 */
	bool sync_discard;	   /* block device without PUNCH_HOLE */
	struct zvfs_bdev_io *solo; /* a lone request not yet in the ring */
};

/* CQEs reaped per pass. */
#define REAP_BATCH 64

static int uring_open(struct zvfs_bdev *bdev, const struct zvfs_bdev_spec *spec, char *errbuf,
		      size_t errlen)
{
	struct uring_dev *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return -ENOMEM;
	rc = zvfs_bdev_file_open(bdev, spec, &d->file, errbuf, errlen);
	if (rc < 0) {
		free(d);
		return rc;
	}
	/*
	 * Default 1: measured on a virtio disk, handing each new request to
	 * the kernel while the rest of a batch is still being completed keeps
	 * the device busy (+13% IOPS at QD32); holding them for one big
	 * submission makes all requests move in lockstep, leaving the device
	 * idle while the callbacks run.  Very fast devices may prefer more.
	 */
	d->sq_batch = spec->sq_batch_set ? spec->sq_batch : 1;
	d->spin_ns = (uint64_t)(spec->spin_set ? spec->spin_us : SPIN_US_DEFAULT) * 1000u;
	d->spin_always = spec->spin_always;
	bdev->drv = d;
	return 0;
}

static void uring_close(struct zvfs_bdev *bdev)
{
	struct uring_dev *d = bdev->drv;

	zvfs_bdev_file_close(&d->file);
	free(d);
}

static int uring_channel_create(struct zvfs_bdev_channel *ch)
{
	struct zvfs_bdev *bdev = ch->bdev;
	struct uring_dev *d = bdev->drv;
	struct io_uring_params p;
	unsigned entries = bdev->geo.queue_depth;
	struct uring_ch *u = calloc(1, sizeof(*u));
	int rc;

	if (!u)
		return -ENOMEM;
	/*
	 * SINGLE_ISSUER and COOP_TASKRUN spare the kernel locking and
	 * interrupts for a ring only its owner thread submits to, which is
	 * exactly a channel.  Older kernels reject them: retry without.
	 */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
	p.cq_entries = entries * 2;
	rc = io_uring_queue_init_params(entries, &u->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		rc = io_uring_queue_init_params(entries, &u->ring, &p);
	}
	if (rc) {
		free(u);
		return rc;
	}
	u->cap = p.cq_entries;
	zvfs_fdreg_add(u->ring.ring_fd);
	/* A registered file skips the per-request file reference count. */
	if (io_uring_register_files(&u->ring, &d->file.fd, 1) == 0)
		u->fixed_file = true;
	if (bdev->arena) {
		struct iovec iov = {.iov_base = bdev->arena, .iov_len = bdev->arena_size};

		/* Pins the arena once instead of on every request. */
		if (io_uring_register_buffers(&u->ring, &iov, 1) == 0)
			u->fixed_buf = true;
		else
			ZVFS_DEBUG("%s: buffer registration refused; using plain I/O", bdev->name);
	}
	u->sync_discard = d->file.is_blockdev && !d->file.punch_ok;
	ch->drv = u;
	return 0;
}

static void uring_channel_destroy(struct zvfs_bdev_channel *ch)
{
	struct uring_ch *u = ch->drv;

	if (!u)
		return;
	/*
	 * The kernel tears a ring down asynchronously after its fd closes, and
	 * until then the registered file stays open: a block device opened
	 * O_EXCL would still be claimed and an immediate reopen fail with
	 * EBUSY.  Unregistering drops that reference now.
	 */
	if (u->fixed_file)
		io_uring_unregister_files(&u->ring);
	zvfs_fdreg_del(u->ring.ring_fd);
	io_uring_queue_exit(&u->ring);
	free(u);
	ch->drv = NULL;
}

static bool in_arena(const struct zvfs_bdev *bdev, const struct zvfs_bdev_io *io)
{
	const char *b = io->iov[0].iov_base;
	const char *a = bdev->arena;

	return b >= a && b + io->iov[0].iov_len <= a + bdev->arena_size;
}

/* Fill an SQE for io.  The ring has room (checked by the caller). */
static void prep(struct uring_ch *u, struct zvfs_bdev *bdev, struct zvfs_bdev_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	struct uring_dev *d = bdev->drv;
	int fd = u->fixed_file ? 0 : d->file.fd;

	switch (io->type) {
	case ZVFS_BDEV_IO_READ:
	case ZVFS_BDEV_IO_WRITE: {
		bool rd = io->type == ZVFS_BDEV_IO_READ;

		if (io->iovcnt == 1 && u->fixed_buf && in_arena(bdev, io)) {
			if (rd)
				io_uring_prep_read_fixed(sqe, fd, io->iov[0].iov_base,
							 (unsigned)io->iov[0].iov_len, io->offset,
							 0);
			else
				io_uring_prep_write_fixed(sqe, fd, io->iov[0].iov_base,
							  (unsigned)io->iov[0].iov_len, io->offset,
							  0);
		} else if (io->iovcnt == 1) {
			if (rd)
				io_uring_prep_read(sqe, fd, io->iov[0].iov_base,
						   (unsigned)io->iov[0].iov_len, io->offset);
			else
				io_uring_prep_write(sqe, fd, io->iov[0].iov_base,
						    (unsigned)io->iov[0].iov_len, io->offset);
		} else {
			if (rd)
				io_uring_prep_readv(sqe, fd, io->iov, (unsigned)io->iovcnt,
						    io->offset);
			else
				io_uring_prep_writev(sqe, fd, io->iov, (unsigned)io->iovcnt,
						     io->offset);
		}
		break;
	}
	case ZVFS_BDEV_IO_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case ZVFS_BDEV_IO_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					io->offset, io->len);
		break;
	case ZVFS_BDEV_IO_DISCARD:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					io->offset, io->len);
		break;
	}
	if (u->fixed_file)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, io);
	u->inflight++;
}

static void enqueue(struct uring_ch *u, struct zvfs_bdev *bdev, struct zvfs_bdev_io *io);

static int uring_submit(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io)
{
	struct uring_ch *u = ch->drv;

	if (io->type == ZVFS_BDEV_IO_DISCARD && u->sync_discard) {
		struct uring_dev *d = ch->bdev->drv;

		/* BLKDISCARD has no io_uring form on this kernel generation. */
		zvfs_bdev_io_defer(io, zvfs_bdev_file_discard(&d->file, io->offset, io->len));
		return 0;
	}
	/*
	 * A request submitted while the channel is idle is held back: if the
	 * next thing the thread does is wait for it, a plain blocking system
	 * call is cheaper than an io_uring round trip (see uring_poll).  Any
	 * further submission sends it to the ring first, keeping order.
	 */
	if (u->solo) {
		struct zvfs_bdev_io *first = u->solo;

		u->solo = NULL;
		enqueue(u, ch->bdev, first);
	} else if (!u->inflight && !u->pending_head && io->type != ZVFS_BDEV_IO_WRITE_ZEROES &&
		   io->type != ZVFS_BDEV_IO_DISCARD) {
		u->solo = io;
		return 0;
	}
	enqueue(u, ch->bdev, io);
	return 0;
}

/* Prepare io in the ring, or queue it when the ring is full. */
static void enqueue(struct uring_ch *u, struct zvfs_bdev *bdev, struct zvfs_bdev_io *io)
{
	if (u->inflight >= u->cap || u->pending_head || io_uring_sq_space_left(&u->ring) == 0) {
		io->next = NULL;
		if (u->pending_tail)
			u->pending_tail->next = io;
		else
			u->pending_head = io;
		u->pending_tail = io;
		return;
	}
	prep(u, bdev, io);
}

/* Move pending requests into the ring while it has room. */
static void fill_from_pending(struct uring_ch *u, struct zvfs_bdev *bdev)
{
	while (u->pending_head && u->inflight < u->cap && io_uring_sq_space_left(&u->ring)) {
		struct zvfs_bdev_io *io = u->pending_head;

		u->pending_head = io->next;
		if (!u->pending_head)
			u->pending_tail = NULL;
		prep(u, bdev, io);
	}
}

/* Drop the first n bytes of io's remaining transfer (after a short one). */
static void io_advance(struct zvfs_bdev_io *io, uint64_t n)
{
	io->offset += n;
	io->len -= n;
	while (n && n >= io->iov[0].iov_len) {
		n -= io->iov[0].iov_len;
		memmove(io->iov, io->iov + 1, sizeof(*io->iov) * (size_t)(io->iovcnt - 1));
		io->iovcnt--;
	}
	io->iov[0].iov_base = (char *)io->iov[0].iov_base + n;
	io->iov[0].iov_len -= n;
}

/* Reap every CQE; returns the number of requests completed. */
static int uring_reap(struct zvfs_bdev_channel *ch)
{
	struct uring_ch *u = ch->drv;
	struct io_uring_cqe *cqes[REAP_BATCH];
	struct {
		struct zvfs_bdev_io *io;
		int res;
	} done[REAP_BATCH];
	unsigned sq_batch = ((struct uring_dev *)ch->bdev->drv)->sq_batch;
	int total = 0;

	for (;;) {
		unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, REAP_BATCH);
		unsigned ndone = 0;

		if (!n)
			break;
		for (unsigned i = 0; i < n; i++) {
			done[i].io = io_uring_cqe_get_data(cqes[i]);
			done[i].res = cqes[i]->res;
		}
		/* Release the CQEs before any callback can submit or poll again. */
		io_uring_cq_advance(&u->ring, n);
		u->inflight -= n;
		for (unsigned i = 0; i < n; i++) {
			struct zvfs_bdev_io *io = done[i].io;
			int res = done[i].res;

			if (res >= 0 &&
			    (io->type == ZVFS_BDEV_IO_READ || io->type == ZVFS_BDEV_IO_WRITE)) {
				if ((uint64_t)res == io->len) {
					res = 0;
				} else if (res == 0) {
					res = -EIO; /* no progress: the device shrank? */
				} else {
					/* Short transfer: send the rest again. */
					io_advance(io, (uint64_t)res);
					uring_submit(ch, io);
					continue;
				}
			} else if (res > 0) {
				res = 0;
			}
			done[ndone].io = io;
			done[ndone++].res = res;
		}
		for (unsigned i = 0; i < ndone; i++) {
			zvfs_bdev_io_complete(done[i].io, done[i].res);
			/*
			 * What the callback submitted goes out now, not after
			 * the whole batch (see sq_batch).  Errors are left for
			 * uring_poll's submit to report.
			 */
			if (sq_batch && io_uring_sq_ready(&u->ring) >= sq_batch)
				io_uring_submit(&u->ring);
		}
		total += (int)ndone;
		fill_from_pending(u, ch->bdev);
	}
	return total;
}

/* Run a lone request with a blocking system call; returns 0 or -errno. */
static int run_solo(struct zvfs_bdev *bdev, struct zvfs_bdev_io *io)
{
	struct uring_dev *d = bdev->drv;
	ssize_t n;

	if (io->type == ZVFS_BDEV_IO_FLUSH)
		return zvfs_bdev_file_flush(&d->file);
	while (io->len) {
		if (io->type == ZVFS_BDEV_IO_READ)
			n = preadv2(d->file.fd, io->iov, io->iovcnt, (off_t)io->offset, 0);
		else
			n = pwritev2(d->file.fd, io->iov, io->iovcnt, (off_t)io->offset, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		if ((uint64_t)n == io->len)
			break;
		io_advance(io, (uint64_t)n);
	}
	return 0;
}

/* ---- polling a lone read ------------------------------------------------------ */

/*
 * Whether some CPU would go idle if this thread slept: the kernel's count of runnable threads
 * (the fourth field of /proc/loadavg, this one included) is at most the number of CPUs.  Looked
 * at most once a millisecond per process (open, read and close: about 3 us; no descriptor is
 * kept, which a program closing every fd could close or reuse); if it cannot be read, never.
 */
static bool cpu_to_spare(void)
{
	static _Atomic uint64_t checked_ns;
	static atomic_bool spare;
	static atomic_long ncpu;
	uint64_t now = zvfs_mono_ns(),
		 last = atomic_load_explicit(&checked_ns, memory_order_relaxed);
	char buf[128], *p = buf;
	long n, f, cpus;

	if (now - last < 1000000u ||
	    !atomic_compare_exchange_strong(&checked_ns, &last, now)) /* another thread looks */
		return atomic_load_explicit(&spare, memory_order_relaxed);
	cpus = atomic_load_explicit(&ncpu, memory_order_relaxed);
	if (!cpus) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		atomic_store_explicit(&ncpu, cpus, memory_order_relaxed);
	}
	/* system calls, not libc: inside libzvfs.so these must not meet its wrappers */
	f = syscall(SYS_openat, AT_FDCWD, "/proc/loadavg", O_RDONLY | O_CLOEXEC);
	if (f < 0) {
		atomic_store_explicit(&spare, false, memory_order_relaxed);
		return false;
	}
	n = syscall(SYS_read, f, buf, sizeof(buf) - 1);
	syscall(SYS_close, f);
	buf[n > 0 ? n : 0] = '\0';
	for (int field = 0; field < 3 && p; field++) {
		p = strchr(p, ' ');
		p = p ? p + 1 : NULL;
	}
	atomic_store_explicit(&spare, p && atol(p) <= cpus, memory_order_relaxed);
	return atomic_load_explicit(&spare, memory_order_relaxed);
}

/*
 * The thread is about to wait for io, a lone read.  Sleeping costs two context switches and,
 * when the CPU halts meanwhile, a wakeup through the hypervisor; on a virtio disk in a VM
 * polling the ring instead took 4 KiB O_DIRECT reads from 16-18k to 19-23k IOPS at QD1
 * (writes did not move, so they sleep).  Poll only while no other thread waits for a CPU,
 * at most spin_ns: then the wait falls back to sleeping.  Returns the completions reaped
 * (0: the budget ran out, io is in the ring), or -1 when not polling (io untouched).
 */
static int spin_solo(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io)
{
	struct uring_dev *d = ch->bdev->drv;
	struct uring_ch *u = ch->drv;
	uint64_t t0 = 0;
	int n = 0;

	if (!d->spin_ns || io->type != ZVFS_BDEV_IO_READ || (!d->spin_always && !cpu_to_spare()))
		return -1;
	enqueue(u, ch->bdev, io);
	if (io_uring_submit(&u->ring) < 0)
		return 0; /* the blocking wait submits again and reports the error */
	for (unsigned i = 0;; i++) {
		n = uring_reap(ch);
		if (n) {
			atomic_fetch_add_explicit(&ch->bdev->polled, 1, memory_order_relaxed);
			break;
		}
		if (u->solo)
			break; /* a short read's rest, held back by uring_submit(): the caller runs it */
		if ((i & 15) == 0) {
			uint64_t t = zvfs_mono_ns();

			if (!t0)
				t0 = t;
			else if (t - t0 > d->spin_ns)
				break;
		}
		/* runs the kernel's task work, which posts the completion (COOP_TASKRUN) */
		io_uring_get_events(&u->ring);
	}
	return n;
}

static int uring_poll(struct zvfs_bdev_channel *ch, bool wait)
{
	struct uring_ch *u = ch->drv;
	int n, rc;

	if (u->solo && wait) {
		struct zvfs_bdev_io *io = u->solo;

		u->solo = NULL;
		n = spin_solo(ch, io);
		if (n > 0)
			return n;
		if (n < 0)
			u->solo = io;
	}
	if (u->solo) {
		struct zvfs_bdev_io *io = u->solo;

		u->solo = NULL;
		if (wait) {
			/*
			 * The thread is about to sleep on this one request:
			 * pread/pwrite/fdatasync sleep in the kernel and
			 * wake directly, where the ring adds task work and a
			 * second wakeup (fsync even goes to a worker thread).
			 */
			zvfs_bdev_io_complete(io, run_solo(ch->bdev, io));
			return 1;
		}
		enqueue(u, ch->bdev, io);
	}

	fill_from_pending(u, ch->bdev);
	n = uring_reap(ch);
	if (n && !io_uring_sq_ready(&u->ring))
		return n;
	wait = wait && !n && u->inflight;
	if (io_uring_sq_ready(&u->ring) || wait) {
		/* One system call submits the batch and, if asked, waits. */
		do {
			rc = io_uring_submit_and_wait(&u->ring, wait ? 1 : 0);
		} while (rc == -EINTR);
		if (rc < 0 && rc != -EAGAIN && rc != -EBUSY) {
			ZVFS_ERR("%s: io_uring_enter: %s", ch->bdev->name, strerror(-rc));
			return rc;
		}
	}
	return n + uring_reap(ch);
}

const struct zvfs_bdev_ops zvfs_bdev_uring_ops = {
	.name = "uring",
	.open = uring_open,
	.close = uring_close,
	.channel_create = uring_channel_create,
	.channel_destroy = uring_channel_destroy,
	.submit = uring_submit,
	.poll = uring_poll,
};
