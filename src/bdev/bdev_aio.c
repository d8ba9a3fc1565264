/* SPDX-License-Identifier: MIT */
/*
 * libaio backend ("aio:"): a regular file or a block device through Linux
 * native AIO, one aio context per thread and device.
 *
 * Map of this file:
 *   1. state                    struct aio_dev (device), aio_chan (channel), aio_io (request)
 *   2. the user-mapped ring     struct aio_ring, ring_load_acquire(), ring_store_release()
 *   3. request helpers          prep_rw(), pending list, done list
 *   4. open / close             aio_open(), aio_close()
 *   5. channels                 aio_channel_create(), aio_channel_destroy()
 *   6. submit                   aio_submit(): prepare and queue, never io_submit()
 *   7. batched submission       flush_pending()
 *   8. reaping                  handle_event(), reap_ring(), reap_syscall()
 *   9. poll                     aio_poll(), complete_all()
 *
 * A request's life: submit() prepares its iocb inside io->drv and appends
 * it to the channel's pending list.  poll() hands the pending iocbs to the
 * kernel in one io_submit() call (as many as the context has room for: at
 * most queue_depth in flight, the rest wait for free slots), then reaps
 * finished events straight from the completion ring the kernel maps into
 * our address space, with no system call, and completes them.  A short
 * transfer goes back on the pending list for its remainder.
 *
 * Write-zeroes and discard have no aio form: they run synchronously inside
 * submit() through the bdev_file.c helpers and complete at the next poll via
 * zvfs_bdev_io_defer().  Flush is an asynchronous IOCB_CMD_FDSYNC (Linux
 * 4.18+); a kernel that refuses it with -EINVAL gets synchronous flushes
 * from then on.
 *
 * Threads: a channel belongs to one thread and everything here touches only
 * that channel, except the device's no_fdsync hint (a relaxed atomic).  No
 * lock is taken.
 */
#include "zvfs/bdev_module.h"

#include <errno.h>
#include <libaio.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/*
 * Valgrind's io_setup() wrapper registers the ring at the size io_setup()'s
 * argument implies, but the kernel makes it bigger (ring->nr slots, a few
 * pages): without telling memcheck, every read past the first page would
 * be reported.  Outside valgrind the client request is a few no-op
 * instructions; without the header it compiles away.
 */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define ring_tell_valgrind(p, len) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (len)))
#endif
#endif
#ifndef ring_tell_valgrind
#define ring_tell_valgrind(p, len) ((void)0)
#endif

/*
 * Build with -DZVFS_AIO_USER_REAP=0 to always reap with io_getevents()
 * (the fallback path; useful to test it on a kernel whose ring is usable).
 */
#ifndef ZVFS_AIO_USER_REAP
#define ZVFS_AIO_USER_REAP 1
#endif

#define AIO_DEFAULT_DEPTH 128u

/* ---- 1. state ----------------------------------------------------------- */

struct aio_dev {
	struct zvfs_bdev_file file;
	/*
	 * Set once the kernel refuses IOCB_CMD_FDSYNC.  Any channel may read
	 * or set it, with relaxed atomics: it is only a hint, and a stale read
	 * costs one more refused iocb, which takes the same fallback.
	 */
	int no_fdsync;
	unsigned sq_batch; /* submit while reaping once this many are pending (bdev.h) */
};

struct aio_chan {
	io_context_t ctx;
	struct aio_ring *ring; /* ctx as the user-mapped ring; NULL: reap with io_getevents */
	struct zvfs_bdev *bdev;
	struct aio_dev *dev;
	int fd;
	unsigned depth;	   /* context size: most iocbs in the kernel at once */
	unsigned inflight; /* iocbs the kernel accepted and we have not reaped */
	unsigned npend;	   /* requests on the pending list */
	struct zvfs_bdev_io *pend_head, *pend_tail; /* prepared, not yet io_submit()ted */
	struct iocb **batch;			    /* depth slots: the argument of io_submit() */
	struct io_event *events;		    /* depth slots: what io_getevents() fills */
};

/* Per-request backend state, in io->drv. */
struct aio_io {
	struct iocb iocb; /* what the kernel sees; iocb.data points back at the request */
	uint64_t done;	  /* bytes moved by earlier short completions */
	int iovcnt;	  /* iovecs left in io->iov (short transfers trim it) */
	int status;	  /* final status, between reaping and completion */
};

_Static_assert(sizeof(struct iocb) == 64, "struct iocb is the kernel ABI's 64 bytes");
_Static_assert(sizeof(struct aio_io) <= ZVFS_BDEV_IO_DRV_SIZE,
	       "struct aio_io must fit in zvfs_bdev_io.drv");
_Static_assert(__alignof__(struct aio_io) <= __alignof__(((struct zvfs_bdev_io *)0)->drv),
	       "zvfs_bdev_io.drv is not aligned enough for struct aio_io");

static inline struct aio_io *io_drv(struct zvfs_bdev_io *io)
{
	return (struct aio_io *)(void *)io->drv.bytes;
}

/* ---- 2. the user-mapped ring -------------------------------------------- */

/*
 * An aio_context_t is the address of this header, which the kernel maps
 * into the process at io_setup() (fs/aio.c, struct aio_ring; ABI since
 * 2.6).  The kernel writes an event, then tail; whoever reaps reads the
 * events between head and tail, then advances head.  io_getevents() does the
 * same thing inside the kernel, so reaping here saves a system call per poll
 * on a busy channel.  Only the channel's thread reaps (here or through
 * io_getevents()), so head has a single writer on our side.
 */
#define AIO_RING_MAGIC 0xa10a10a1u

struct aio_ring {
	unsigned id;	/* kernel's index of the context */
	unsigned nr;	/* slots in io_events[] */
	unsigned head;	/* next event to reap; advanced by the reaper */
	unsigned tail;	/* next slot the kernel fills */
	unsigned magic; /* AIO_RING_MAGIC */
	unsigned compat_features;
	unsigned incompat_features; /* 0; anything else: do not touch the ring */
	unsigned header_length;	    /* sizeof(struct aio_ring) */
	struct io_event io_events[];
};

_Static_assert(offsetof(struct aio_ring, io_events) == 32, "aio_ring header is 32 bytes");
_Static_assert(sizeof(struct io_event) == 32, "struct io_event is the kernel ABI's 32 bytes");

/*
 * Pairs with the smp_wmb() in the kernel's aio_complete() between filling
 * an event and publishing the new tail: once we see a tail, every event
 * before it is completely written.
 */
static inline unsigned ring_load_acquire(const unsigned *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/*
 * Orders our reads of the reaped events before the new head: from the
 * moment the kernel sees the head move, it may reuse those slots for new
 * completions (and counts them as free in its request accounting).
 */
static inline void ring_store_release(unsigned *p, unsigned v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* The ring behind ctx if we understand its layout, else NULL. */
static struct aio_ring *ring_usable(io_context_t ctx)
{
	struct aio_ring *ring = (struct aio_ring *)(void *)ctx;

	if (!ZVFS_AIO_USER_REAP)
		return NULL;
	if (ring->magic != AIO_RING_MAGIC || ring->incompat_features != 0 ||
	    ring->header_length != sizeof(*ring) || ring->nr == 0)
		return NULL;
	ring_tell_valgrind(ring, sizeof(*ring) + (size_t)ring->nr * sizeof(ring->io_events[0]));
	return ring;
}

/* ---- 3. request helpers ------------------------------------------------- */

/*
 * Prepare io's read or write iocb for what is left of it: aio->iovcnt
 * iovecs at io->iov, starting aio->done bytes into the request.
 */
static void prep_rw(struct aio_chan *ac, struct zvfs_bdev_io *io)
{
	struct aio_io *aio = io_drv(io);
	long long off = (long long)(io->offset + aio->done);
	bool rd = io->type == ZVFS_BDEV_IO_READ;

	/* A single buffer skips the kernel's iovec import. */
	if (aio->iovcnt == 1 && rd)
		io_prep_pread(&aio->iocb, ac->fd, io->iov[0].iov_base, io->iov[0].iov_len, off);
	else if (aio->iovcnt == 1)
		io_prep_pwrite(&aio->iocb, ac->fd, io->iov[0].iov_base, io->iov[0].iov_len, off);
	else if (rd)
		io_prep_preadv(&aio->iocb, ac->fd, io->iov, aio->iovcnt, off);
	else
		io_prep_pwritev(&aio->iocb, ac->fd, io->iov, aio->iovcnt, off);
	aio->iocb.data = io;
}

/*
 * After a short transfer of moved bytes, drop the iovecs it used up, trim
 * the one it ended in and prepare the iocb for the rest.  The core lends us
 * io->iov until completion, so we rewrite it in place (the array's address,
 * which the core frees, stays the same).  moved is less than what was left,
 * so at least one iovec survives.
 */
static void advance(struct aio_chan *ac, struct zvfs_bdev_io *io, uint64_t moved)
{
	struct aio_io *aio = io_drv(io);
	struct iovec *iov = io->iov;
	int skip = 0;

	aio->done += moved;
	while (moved >= iov[skip].iov_len) {
		moved -= iov[skip].iov_len;
		skip++;
	}
	if (skip) {
		memmove(iov, iov + skip, sizeof(*iov) * (size_t)(aio->iovcnt - skip));
		aio->iovcnt -= skip;
	}
	iov[0].iov_base = (char *)iov[0].iov_base + moved;
	iov[0].iov_len -= moved;
	prep_rw(ac, io);
}

static void pend_push(struct aio_chan *ac, struct zvfs_bdev_io *io)
{
	io->next = NULL;
	if (ac->pend_tail)
		ac->pend_tail->next = io;
	else
		ac->pend_head = io;
	ac->pend_tail = io;
	ac->npend++;
}

static struct zvfs_bdev_io *pend_pop(struct aio_chan *ac)
{
	struct zvfs_bdev_io *io = ac->pend_head;

	ac->pend_head = io->next;
	if (!ac->pend_head)
		ac->pend_tail = NULL;
	io->next = NULL;
	ac->npend--;
	return io;
}

/*
 * Requests that finished during one poll, in order, waiting for their
 * callbacks.  It lives on poll's stack, so a callback that polls again
 * re-entrantly builds its own list and cannot disturb ours.
 */
struct done_list {
	struct zvfs_bdev_io *head, *tail;
	int n;
};

static void done_add(struct done_list *d, struct zvfs_bdev_io *io, int status)
{
	io_drv(io)->status = status;
	io->next = NULL;
	if (d->tail)
		d->tail->next = io;
	else
		d->head = io;
	d->tail = io;
	d->n++;
}

/* ---- 4. open / close ---------------------------------------------------- */

/*
 * Check that the kernel gives us aio contexts at all, so that a missing
 * feature or an exhausted fs.aio-max-nr is an open error naming the device,
 * not a failure at some thread's first I/O.
 */
static int probe_aio(struct zvfs_bdev *bdev, char *errbuf, size_t errlen)
{
	io_context_t ctx = 0;
	int rc = io_setup(1, &ctx);

	if (rc == 0) {
		io_destroy(ctx);
		return 0;
	}
	if (rc == -ENOSYS) {
		zvfs_bdev_errf(errbuf, errlen, "%s: kernel has no Linux AIO (io_setup: %s)",
			       bdev->name, strerror(-rc));
		return -EOPNOTSUPP;
	}
	zvfs_bdev_errf(errbuf, errlen, "%s: io_setup: %s%s", bdev->name, strerror(-rc),
		       rc == -EAGAIN ? " (system-wide limit fs.aio-max-nr reached)" : "");
	return rc;
}

static int aio_open(struct zvfs_bdev *bdev, const struct zvfs_bdev_spec *spec, char *errbuf,
		    size_t errlen)
{
	struct aio_dev *dev;
	int rc;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->file.fd = -1;
	/* Returns the fd (also stored in dev->file.fd) or -errno with errbuf filled. */
	rc = zvfs_bdev_file_open(bdev, spec, &dev->file, errbuf, errlen);
	if (rc < 0)
		goto err_free_dev;
	rc = probe_aio(bdev, errbuf, errlen);
	if (rc)
		goto err_close_fd;
	/* Early submission keeps the device busy; see bdev_uring.c for the numbers. */
	dev->sq_batch = spec->sq_batch_set ? spec->sq_batch : 1;
	bdev->drv = dev;
	return 0;

err_close_fd:
	zvfs_bdev_file_close(&dev->file);
err_free_dev:
	free(dev);
	return rc;
}

static void aio_close(struct zvfs_bdev *bdev)
{
	struct aio_dev *dev = bdev->drv;

	if (!dev)
		return;
	zvfs_bdev_file_close(&dev->file);
	free(dev);
	bdev->drv = NULL;
}

/* ---- 5. channels -------------------------------------------------------- */

static int aio_channel_create(struct zvfs_bdev_channel *ch)
{
	struct zvfs_bdev *bdev = ch->bdev;
	unsigned depth = bdev->geo.queue_depth ? bdev->geo.queue_depth : AIO_DEFAULT_DEPTH;
	struct aio_chan *ac;
	int rc;

	ac = calloc(1, sizeof(*ac));
	if (!ac)
		return -ENOMEM;
	ac->bdev = bdev;
	ac->dev = bdev->drv;
	ac->fd = ac->dev->file.fd;
	ac->depth = depth;
	ac->batch = calloc(depth, sizeof(*ac->batch));
	ac->events = calloc(depth, sizeof(*ac->events));
	if (!ac->batch || !ac->events) {
		rc = -ENOMEM;
		goto err_free_chan;
	}
	/* libaio returns -errno itself; ctx must be zero on entry. */
	rc = io_setup((int)depth, &ac->ctx);
	if (rc < 0) {
		if (rc == -EAGAIN)
			ZVFS_WARN("%s: io_setup(%u): system-wide limit fs.aio-max-nr reached",
				  bdev->name, depth);
		goto err_free_chan;
	}
	ac->ring = ring_usable(ac->ctx);
	if (!ac->ring)
		ZVFS_DEBUG("%s: aio ring not usable from user space; reaping with io_getevents",
			   bdev->name);
	ch->drv = ac;
	return 0;

err_free_chan:
	free(ac->events);
	free(ac->batch);
	free(ac);
	return rc;
}

/*
 * The core normally destroys an idle channel, but a thread that exits with
 * requests in flight gets here too: io_destroy() waits for (or cancels)
 * whatever the kernel still holds, so no event lands in freed memory, and
 * requests still pending were never seen by the kernel.
 */
static void aio_channel_destroy(struct zvfs_bdev_channel *ch)
{
	struct aio_chan *ac = ch->drv;

	if (!ac)
		return;
	io_destroy(ac->ctx);
	free(ac->events);
	free(ac->batch);
	free(ac);
	ch->drv = NULL;
}

/* ---- 6. submit ---------------------------------------------------------- */

static int aio_submit(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io)
{
	struct aio_chan *ac = ch->drv;
	struct aio_io *aio = io_drv(io);
	struct aio_dev *dev = ac->dev;

	switch (io->type) {
	case ZVFS_BDEV_IO_READ:
	case ZVFS_BDEV_IO_WRITE:
		aio->done = 0;
		aio->iovcnt = io->iovcnt;
		prep_rw(ac, io);
		break;
	case ZVFS_BDEV_IO_FLUSH:
		if (__atomic_load_n(&dev->no_fdsync, __ATOMIC_RELAXED)) {
			zvfs_bdev_io_defer(io, zvfs_bdev_file_flush(&dev->file));
			return 0;
		}
		io_prep_fdsync(&aio->iocb, ac->fd);
		aio->iocb.data = io;
		break;
	case ZVFS_BDEV_IO_WRITE_ZEROES:
		/* -EOPNOTSUPP passes through: the core then writes zero buffers. */
		zvfs_bdev_io_defer(io,
				   zvfs_bdev_file_write_zeroes(&dev->file, io->offset, io->len));
		return 0;
	case ZVFS_BDEV_IO_DISCARD:
		zvfs_bdev_io_defer(io, zvfs_bdev_file_discard(&dev->file, io->offset, io->len));
		return 0;
	default:
		return -EINVAL;
	}
	/* Batched: poll() hands everything pending to the kernel in one call. */
	pend_push(ac, io);
	return 0;
}

/* ---- 7. batched submission ---------------------------------------------- */

/* The kernel refused io's iocb with err at io_submit() time. */
static void submit_failed(struct aio_chan *ac, struct zvfs_bdev_io *io, int err,
			  struct done_list *done)
{
	struct aio_dev *dev = ac->dev;

	/*
	 * Kernels before 4.18 have no IOCB_CMD_FDSYNC, and a file whose
	 * driver has no fsync refuses it too: flush synchronously instead, now
	 * and for every later flush on this device.
	 */
	if (err == -EINVAL && io_drv(io)->iocb.aio_lio_opcode == IO_CMD_FDSYNC) {
		if (!__atomic_exchange_n(&dev->no_fdsync, 1, __ATOMIC_RELAXED))
			ZVFS_INFO("%s: no asynchronous fdsync; flushing synchronously",
				  ac->bdev->name);
		err = zvfs_bdev_file_flush(&dev->file);
	}
	done_add(done, io, err);
}

/*
 * Hand pending iocbs to the kernel, one io_submit() per free-slot window
 * (normally one call in all).  A short count means the iocb after the last
 * accepted one failed; the next call starts with it and reports why.
 * -EAGAIN means the kernel is out of request slots or memory: the rest stays
 * pending for a later poll.  Any other error belongs to the first iocb of
 * the call, which completes with it.
 */
static void flush_pending(struct aio_chan *ac, struct done_list *done)
{
	while (ac->pend_head && ac->inflight < ac->depth) {
		unsigned room = ac->depth - ac->inflight;
		struct zvfs_bdev_io *io;
		unsigned n = 0;
		int rc;

		for (io = ac->pend_head; io && n < room; io = io->next)
			ac->batch[n++] = &io_drv(io)->iocb;
		rc = io_submit(ac->ctx, (long)n, ac->batch);
		if (rc > 0) {
			for (int i = 0; i < rc; i++)
				pend_pop(ac);
			ac->inflight += (unsigned)rc;
			continue;
		}
		if (rc == 0 || rc == -EAGAIN || rc == -EINTR)
			break;
		submit_failed(ac, pend_pop(ac), rc, done);
	}
}

/* ---- 8. reaping --------------------------------------------------------- */

/*
 * Account one finished iocb: complete its request (onto done) or, after a
 * short transfer, queue the remainder.  No system call, no callback.
 */
static void handle_event(struct aio_chan *ac, const struct io_event *ev, struct done_list *done)
{
	struct zvfs_bdev_io *io = ev->data;
	struct aio_io *aio = io_drv(io);
	long res = (long)ev->res;
	uint64_t left;

	ac->inflight--;
	if (aio->iocb.aio_lio_opcode == IO_CMD_FDSYNC) {
		done_add(done, io, res < 0 ? (int)res : 0);
		return;
	}
	left = io->len - aio->done;
	if (res < 0) {
		done_add(done, io, (int)res);
	} else if ((uint64_t)res == left) {
		done_add(done, io, 0);
	} else if (res == 0 || (uint64_t)res > left) {
		/* End of file (or nonsense): no progress is possible. */
		done_add(done, io, -EIO);
	} else {
		/* Short: transfers above 2 GiB, signals on buffered files. */
		advance(ac, io, (uint64_t)res);
		pend_push(ac, io);
	}
}

static int reap_nowait(struct aio_chan *ac, struct done_list *done);

/* Reap every event in the user-mapped ring without a system call. */
static int reap_ring(struct aio_chan *ac, struct done_list *done)
{
	struct aio_ring *ring = ac->ring;
	unsigned nr = ring->nr;
	/* Relaxed: head is written only by this thread (here or in io_getevents). */
	unsigned head = __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
	unsigned tail = ring_load_acquire(&ring->tail);
	int n = 0;

	if (head >= nr || tail >= nr) {
		/* Not a ring we understand (never seen): let the kernel reap from now on. */
		ZVFS_WARN("%s: aio ring head %u tail %u nr %u out of range; using io_getevents",
			  ac->bdev->name, head, tail, nr);
		ac->ring = NULL;
		return reap_nowait(ac, done);
	}
	while (head != tail) {
		struct io_event ev = ring->io_events[head];

		handle_event(ac, &ev, done);
		head = head + 1 == nr ? 0 : head + 1;
		n++;
	}
	if (n)
		ring_store_release(&ring->head, head);
	return n;
}

/* Reap with io_getevents(): ts NULL blocks until min_nr events are in. */
static int reap_syscall(struct aio_chan *ac, long min_nr, struct timespec *ts,
			struct done_list *done)
{
	int rc;

	do {
		rc = io_getevents(ac->ctx, min_nr, (long)ac->depth, ac->events, ts);
	} while (rc == -EINTR);
	for (int i = 0; i < rc; i++)
		handle_event(ac, &ac->events[i], done);
	return rc;
}

static int reap_nowait(struct aio_chan *ac, struct done_list *done)
{
	struct timespec zero = {0, 0};

	if (ac->ring)
		return reap_ring(ac, done);
	return reap_syscall(ac, 0, &zero, done);
}

/* ---- 9. poll ------------------------------------------------------------ */

/*
 * Run the callbacks of everything on done.  Our counters are already
 * settled, so a callback may submit or poll this channel again.
 */
static int complete_all(struct aio_chan *ac, struct done_list *done)
{
	unsigned sq_batch = ac->dev->sq_batch;
	struct zvfs_bdev_io *io;
	int n = 0;

	while ((io = done->head) != NULL) {
		/* Unlink first: completion recycles the request. */
		done->head = io->next;
		if (!done->head)
			done->tail = NULL;
		zvfs_bdev_io_complete(io, io_drv(io)->status);
		n++;
		/*
		 * Send what the callback submitted now rather than after the
		 * whole batch, so the device is not idle while callbacks run.
		 * Refusals land on done and complete in this same loop.
		 */
		if (sq_batch && ac->npend >= sq_batch)
			flush_pending(ac, done);
	}
	return n;
}

static int aio_poll(struct zvfs_bdev_channel *ch, bool wait)
{
	struct aio_chan *ac = ch->drv;
	struct done_list done = {0};
	int rc = 0;
	int n;

	for (;;) {
		flush_pending(ac, &done);
		/* Every accepted iocb yields one event: none in flight, none to reap. */
		if (ac->inflight) {
			rc = reap_nowait(ac, &done);
			if (rc < 0)
				break;
		}
		if (done.n || !wait)
			break;
		if (!ac->inflight) {
			if (!ac->pend_head)
				break; /* nothing to wait for */
			/*
			 * io_submit() said -EAGAIN with nothing of ours in
			 * flight: the kernel is short of memory.  Let others
			 * run, then retry.
			 */
			sched_yield();
			continue;
		}
		rc = reap_syscall(ac, 1, NULL, &done);
		if (rc < 0)
			break;
		/* Round again: short transfers go back out, finished ones end the wait. */
	}
	n = complete_all(ac, &done);
	if (rc < 0 && n == 0)
		return rc;
	return n;
}

const struct zvfs_bdev_ops zvfs_bdev_aio_ops = {
	.name = "aio",
	.open = aio_open,
	.close = aio_close,
	.channel_create = aio_channel_create,
	.channel_destroy = aio_channel_destroy,
	.submit = aio_submit,
	.poll = aio_poll,
};
