/* SPDX-License-Identifier: MIT */
/*
 * aio.c - libaio (io_setup, io_submit, io_getevents, io_cancel, io_destroy)
 * for iocbs that name ZVFS descriptors.
 *
 * The kernel cannot run an iocb on a ZVFS fd (the data is not in the
 * placeholder), so such an iocb is executed at submit time through this
 * library's pread64/pwrite64/preadv64/pwritev64/fsync/fdatasync wrappers.
 * Its completion then goes through the kernel context itself
 * (deliver_kernel()), so that programs reaping with the raw io_getevents
 * system call (MariaDB) or straight from the ring (fio userspace_reap) see
 * it.  Failed ones cannot (no kernel operation fails with a chosen errno):
 * they are queued on the context in user space, where only this library's
 * io_getevents finds them.  iocbs for any other fd still go to the real
 * io_submit, in submission order.  io_getevents hands out queued ZVFS
 * completions first, then kernel ones; it only blocks in the kernel while
 * kernel iocbs of the context are outstanding (counted here), and otherwise
 * waits on a condition variable, so a thread waiting for ZVFS completions
 * submitted by another thread is woken by that submit.
 *
 * Like libaio, every function returns 0 / a count, or a negative errno.
 *
 * Map:
 *   real_*()            the real libaio entry points (or the system call)
 *   struct actx, ctx_*  per-context state: queued events, kernel iocbs out
 *   run_iocb()          executes one ZVFS iocb
 *   io_setup ... io_cancel, zp_aio_after_fork
 *
 * Limits: a program that reaps without this library's io_getevents does not
 * see ZVFS iocbs that failed; io_uring is invisible to any preload library.
 */
#include <fcntl.h>
#include <libaio.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "preload/preload.h"

/* linux/aio_abi.h: iocb->u.c.flags bit asking for an eventfd notification. */
#define IOCB_FLAG_RESFD (1 << 0)
/* ... and the one asking the kernel to take aio_reqprio as an I/O priority */
#define IOCB_FLAG_IOPRIO (1 << 1)

/* ---- real entry points ------------------------------------------------------- */

/*
 * The table has NULL when libaio was not loaded at resolve time; the libaio
 * functions are thin wrappers of these system calls, so those stand in.
 */
static int real_setup(int nr, io_context_t *ctxp)
{
	if (ZP_REAL(io_setup) != NULL)
		return zp_real.io_setup(nr, (void **)ctxp);
	return syscall(SYS_io_setup, nr, ctxp) < 0 ? -errno : 0;
}

static int real_destroy(io_context_t ctx)
{
	if (ZP_REAL(io_destroy) != NULL)
		return zp_real.io_destroy(ctx);
	return syscall(SYS_io_destroy, ctx) < 0 ? -errno : 0;
}

static int real_submit(io_context_t ctx, long nr, struct iocb **ios)
{
	long r;

	if (ZP_REAL(io_submit) != NULL)
		return zp_real.io_submit(ctx, nr, (void **)ios);
	r = syscall(SYS_io_submit, ctx, nr, ios);
	return r < 0 ? -errno : (int)r;
}

static int real_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *ev,
			  struct timespec *timeout)
{
	long r;

	if (ZP_REAL(io_getevents) != NULL)
		return zp_real.io_getevents(ctx, min_nr, nr, ev, timeout);
	r = syscall(SYS_io_getevents, ctx, min_nr, nr, ev, timeout);
	return r < 0 ? -errno : (int)r;
}

static int real_cancel(io_context_t ctx, struct iocb *iocb, struct io_event *ev)
{
	if (ZP_REAL(io_cancel) != NULL)
		return zp_real.io_cancel(ctx, iocb, ev);
	return syscall(SYS_io_cancel, ctx, iocb, ev) < 0 ? -errno : 0;
}

/* ---- contexts ---------------------------------------------------------------- */

struct actx {
	io_context_t ctx;
	struct actx *next;
	pthread_cond_t cond; /* signalled when events are queued or the context goes */
	struct io_event *ev; /* ring of queued ZVFS completions */
	size_t cap, head, count;
	size_t reserved; /* slots held by ZVFS iocbs running now */
	long kernel_out; /* iocbs accepted by the kernel and not yet reaped */
	int users;	 /* io_getevents calls inside; with reserved, keeps a dead context */
	bool dead;	 /* io_destroy'ed */
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct actx *ctx_list;

static struct actx *ctx_find(io_context_t ctx)
{
	struct actx *a;

	for (a = ctx_list; a != NULL; a = a->next)
		if (a->ctx == ctx && !a->dead)
			return a;
	return NULL;
}

/* The state of ctx, created if absent (a context made before we saw it). */
static struct actx *ctx_get(io_context_t ctx)
{
	struct timespec zero = {0, 0};
	struct actx *a = ctx_find(ctx);
	pthread_condattr_t attr;

	if (a != NULL)
		return a;
	/*
	 * Not set up through us: make sure the kernel knows the context (an
	 * invalid one gets -EINVAL from the kernel, so must get it here too).
	 */
	if (syscall(SYS_io_getevents, ctx, 0L, 0L, NULL, &zero) < 0)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &attr);
	pthread_condattr_destroy(&attr);
	a->ctx = ctx;
	a->next = ctx_list;
	ctx_list = a;
	return a;
}

static void ctx_unlink_free(struct actx *a)
{
	struct actx **pp;

	for (pp = &ctx_list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	pthread_cond_destroy(&a->cond);
	free(a->ev);
	free(a);
}

/* Double the event ring (lock held). */
static int ctx_grow(struct actx *a)
{
	size_t cap = a->cap ? a->cap * 2 : 64;
	struct io_event *ev = malloc(cap * sizeof(*ev));
	size_t i;

	if (ev == NULL)
		return -EAGAIN;
	for (i = 0; i < a->count; i++)
		ev[i] = a->ev[(a->head + i) % a->cap];
	free(a->ev);
	a->ev = ev;
	a->cap = cap;
	a->head = 0;
	return 0;
}

static long ctx_pop(struct actx *a, struct io_event *out, long max)
{
	long n = 0;

	while (n < max && a->count > 0) {
		out[n++] = a->ev[a->head];
		a->head = (a->head + 1) % a->cap;
		a->count--;
	}
	return n;
}

/* ---- ZVFS iocbs ---------------------------------------------------------------- */

/* Result of one iocb as the kernel reports it: a count or -errno. */
static long run_iocb(const struct iocb *io)
{
	int fd = io->aio_fildes;
	int rwf = (int)io->aio_rw_flags;
	ssize_t r;

	switch (io->aio_lio_opcode) {
	case IO_CMD_PREAD:
	case IO_CMD_PWRITE: {
		struct iovec v = {io->u.c.buf, io->u.c.nbytes};

		if (io->aio_lio_opcode == IO_CMD_PREAD)
			r = rwf ? preadv64v2(fd, &v, 1, io->u.c.offset, rwf)
				: pread64(fd, v.iov_base, v.iov_len, io->u.c.offset);
		else
			r = rwf ? pwritev64v2(fd, &v, 1, io->u.c.offset, rwf)
				: pwrite64(fd, v.iov_base, v.iov_len, io->u.c.offset);
		break;
	}
	case IO_CMD_PREADV:
		r = preadv64v2(fd, io->u.v.vec, (int)io->u.v.nr, io->u.v.offset, rwf);
		break;
	case IO_CMD_PWRITEV:
		r = pwritev64v2(fd, io->u.v.vec, (int)io->u.v.nr, io->u.v.offset, rwf);
		break;
	case IO_CMD_FSYNC:
		r = fsync(fd);
		break;
	case IO_CMD_FDSYNC:
		r = fdatasync(fd);
		break;
	default:
		return -EINVAL;
	}
	return r < 0 ? -errno : r;
}

/*
 * A descriptor of /dev/null at a high number, checked before every use: a program may have
 * closed it or put something else there (dup2), and then the write below would go to that.
 */
static int null_fd(void)
{
	static atomic_int fd = -1;
	struct stat st;
	int f = atomic_load(&fd), n;

	if (f >= 0 && ZP_REAL(fstat)(f, &st) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev == makedev(1, 3))
		return f;
	n = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY | O_CLOEXEC);
	if (n < 0)
		return -1;
	/* out of the way of programs that reuse low numbers; any number if the limit is low */
	f = (int)syscall(SYS_fcntl, n, F_DUPFD_CLOEXEC, 512);
	if (f < 0)
		f = n;
	else
		ZP_REAL(close)(n);
	n = -1;
	if (!atomic_compare_exchange_strong(&fd, &n, f) && n >= 0 && n != f) {
		/* another thread made one first, or the old one went: keep a single one */
		ZP_REAL(close)(f);
		f = n;
		if (ZP_REAL(fstat)(f, &st) < 0 || !S_ISCHR(st.st_mode) ||
		    st.st_rdev != makedev(1, 3))
			return -1;
	}
	return f;
}

/*
 * Deliveries in flight: the iocbs that deliver_kernel() has rewritten and not yet put back.
 * The kernel makes a completion visible inside io_submit, before the put-back, so a thread
 * that reaps it through this library waits here until its iocb is the program's again
 * (await_restored()).  A delivery holds its slot for one io_submit of a write to /dev/null.
 */
#define DELIVER_SLOTS 64
static _Atomic(struct iocb *) deliver_slot[DELIVER_SLOTS];
static atomic_int deliver_busy;		      /* slots in use */
static _Thread_local struct iocb *delivering; /* this thread's, so it never waits on itself */

static int slot_take(struct iocb *io)
{
	for (;;) {
		for (int i = 0; i < DELIVER_SLOTS; i++) {
			struct iocb *none = NULL;

			if (atomic_compare_exchange_strong(&deliver_slot[i], &none, io)) {
				atomic_fetch_add(&deliver_busy, 1);
				delivering = io;
				return i;
			}
		}
		sched_yield(); /* 64 threads delivering at once: each holds it for a moment */
	}
}

static void slot_give(int i)
{
	delivering = NULL;
	atomic_store(&deliver_slot[i], NULL);
	atomic_fetch_sub(&deliver_busy, 1);
}

/* Wait until no other thread is delivering io (its fields are the program's again). */
static void await_restored(const struct iocb *io)
{
	bool found = true;

	if (atomic_load(&deliver_busy) == 0 || io == delivering)
		return;
	while (found) {
		found = false;
		for (int i = 0; i < DELIVER_SLOTS && !found; i++)
			found = atomic_load(&deliver_slot[i]) == io;
		if (found)
			sched_yield();
	}
}

/*
 * aio_lio_opcode, aio_reqprio and aio_fildes: the one word a delivery always changes, put
 * back with a single compare-and-swap.
 */
typedef uint64_t __attribute__((may_alias)) iocb_word;
_Static_assert(offsetof(struct iocb, aio_reqprio) == offsetof(struct iocb, aio_lio_opcode) + 2 &&
		       offsetof(struct iocb, aio_fildes) ==
			       offsetof(struct iocb, aio_lio_opcode) + 4 &&
		       offsetof(struct iocb, aio_lio_opcode) % 8 == 0,
	       "libaio's iocb layout");

static iocb_word *iocb_w(struct iocb *io)
{
	return (iocb_word *)((char *)io + offsetof(struct iocb, aio_lio_opcode));
}

/* rw flags a write to /dev/null accepts (RWF_DSYNC would fail: /dev/null has no fsync) */
#define NULL_RWF_OK RWF_HIPRI

/*
 * Deliver the completion (res >= 0) of the ZVFS iocb io, already run, through the kernel
 * context: io is submitted once more, rewritten into a write of res bytes to /dev/null, which
 * completes at once with res.  The kernel reports the iocb's own address (obj) and data, and
 * signals an eventfd asked for in the iocb.  0, or -errno when the kernel refused (the caller
 * queues the event in user space instead).
 *
 * The completion is visible before io_submit returns, and a program may reap it on another
 * thread and prepare the iocb anew at once (MariaDB's reaper, through the raw system call).
 * So the put-back must never overwrite what the program wrote since:
 *   - usually only opcode, fildes and reqprio change (a complete read or write keeps its
 *     buffer, length and offset: /dev/null reads none of them beyond the range check), and
 *     that word goes back by compare-and-swap, which fails if the program rewrote it.
 *     aio_reqprio carries a per-delivery tag (the kernel ignores it without
 *     IOCB_FLAG_IOPRIO), so a stale put-back cannot match a later delivery of the same iocb;
 *   - a short transfer or odd flags also change length, buffer or flags: each goes back only
 *     if it still holds the rewritten value and the word went back, which leaves a window of
 *     a few stores.
 * This library's io_getevents and io_submit wait for the put-back (await_restored()); a
 * program reaping from the ring or the raw system call does not, and may see the rewritten
 * fields until then (nanoseconds after io_submit returns).
 */
static int deliver_kernel(io_context_t ctx, struct iocb *io, long res)
{
	static const char any;
	static atomic_uint tag;
	struct iocb saved = *io, want = *io;
	struct iocb *one[1] = {io};
	int fd = null_fd(), slot;
	uint64_t w_want, w_saved;
	size_t total = 0;
	long r;

	if (fd < 0)
		return -EBADF;
	want.aio_lio_opcode = IO_CMD_PWRITE;
	want.aio_fildes = fd;
	if (!(want.u.c.flags & IOCB_FLAG_IOPRIO))
		want.aio_reqprio = (short)atomic_fetch_add(&tag, 1);
	if (want.aio_rw_flags & ~NULL_RWF_OK)
		want.aio_rw_flags = 0;
	switch (saved.aio_lio_opcode) {
	case IO_CMD_PREADV:
	case IO_CMD_PWRITEV:
		for (long i = 0; i < (long)saved.u.v.nr; i++)
			total += saved.u.v.vec[i].iov_len;
		if ((size_t)res == total) {
			want.aio_lio_opcode = IO_CMD_PWRITEV; /* the same vector, to /dev/null */
			break;
		}
		want.u.c.buf = (void *)&any;
		want.u.c.nbytes = (unsigned long)res;
		want.u.c.offset = 0;
		break;
	default: /* a read or write keeps its buffer (valid for res bytes), fsync has 0 and 0 */
		want.u.c.nbytes = (unsigned long)res;
		if (want.u.c.offset < 0)
			want.u.c.offset = 0;
	}
	memcpy(&w_want, iocb_w(&want), sizeof(w_want));
	memcpy(&w_saved, iocb_w(&saved), sizeof(w_saved));

	slot = slot_take(io);
	*io = want;
	r = syscall(SYS_io_submit, ctx, 1L, one);
	if (__atomic_compare_exchange_n(iocb_w(io), &w_want, w_saved, false, __ATOMIC_ACQ_REL,
					__ATOMIC_RELAXED)) {
		/*
		 * The word was still ours: so are the fields changed with it, unless rewritten
		 * this instant.  Unchanged ones are not stored to at all, not even with their own
		 * value: the program may be writing new ones.
		 */
#define PUT_BACK(f)                                                                                \
	do {                                                                                       \
		if (want.f != saved.f && io->f == want.f)                                          \
			io->f = saved.f;                                                           \
	} while (0)
		PUT_BACK(aio_rw_flags);
		PUT_BACK(u.c.buf);
		PUT_BACK(u.c.nbytes);
		PUT_BACK(u.c.offset);
#undef PUT_BACK
	}
	slot_give(slot);
	if (r == 1)
		return 0;
	return r < 0 ? -errno : -EAGAIN;
}

static bool iocb_is_zvfs(const struct iocb *io)
{
	struct zp_ofd *ofd = zp_fd_get(io->aio_fildes);

	if (ofd == NULL)
		return false;
	zp_ofd_put(ofd);
	return true;
}

/*
 * Run a ZVFS iocb and queue its completion on ctx.  Room in the queue is
 * reserved first, so an iocb that ran is never reported as not submitted.
 */
static int submit_zvfs(io_context_t ctx, struct iocb *io)
{
	int saved = errno;
	struct io_event e = {.data = io->data, .obj = io};
	struct actx *a;
	long res;
	int r = 0;

	pthread_mutex_lock(&ctx_lock);
	a = ctx_get(ctx);
	if (a == NULL)
		r = -EINVAL;
	else if (a->count + a->reserved == a->cap)
		r = ctx_grow(a);
	if (r == 0)
		a->reserved++;
	pthread_mutex_unlock(&ctx_lock);
	if (r < 0)
		return r;

	res = run_iocb(io);
	e.res = (unsigned long)res;
	if (res >= 0 && deliver_kernel(ctx, io, res) == 0) {
		errno = saved;
		pthread_mutex_lock(&ctx_lock);
		a->reserved--;
		a->kernel_out++;
		/* a waiter on the condition variable must now wait in the kernel */
		pthread_cond_broadcast(&a->cond);
		if (a->dead && a->reserved == 0 && a->users == 0)
			ctx_unlink_free(a);
		pthread_mutex_unlock(&ctx_lock);
		return 0;
	}
	errno = saved;

	pthread_mutex_lock(&ctx_lock);
	/* a stays allocated while reserved: io_destroy leaves it to us then. */
	a->reserved--;
	if (!a->dead) {
		a->ev[(a->head + a->count) % a->cap] = e;
		a->count++;
		pthread_cond_broadcast(&a->cond);
	} else if (a->reserved == 0 && a->users == 0) {
		ctx_unlink_free(a);
	}
	pthread_mutex_unlock(&ctx_lock);

	if (io->u.c.flags & IOCB_FLAG_RESFD) {
		uint64_t one = 1;

		/* The eventfd counts completions, as the kernel's would. */
		if (write((int)io->u.c.resfd, &one, sizeof(one)) < 0)
			ZVFS_WARN("io_submit: eventfd %u: %s", io->u.c.resfd, strerror(errno));
		errno = saved;
	}
	return 0;
}

/* ---- entry points ---------------------------------------------------------------- */

ZP_EXPORT int io_setup(int maxevents, io_context_t *ctxp)
{
	int r;

	if (zp_bypass())
		return real_setup(maxevents, ctxp);
	r = real_setup(maxevents, ctxp);
	if (r < 0)
		return r;
	pthread_mutex_lock(&ctx_lock);
	/* Created eagerly so submit seldom allocates; a failure here is retried there. */
	ctx_get(*ctxp);
	pthread_mutex_unlock(&ctx_lock);
	return r;
}

ZP_EXPORT int io_destroy(io_context_t ctx)
{
	struct actx *a;

	if (!zp_bypass()) {
		pthread_mutex_lock(&ctx_lock);
		a = ctx_find(ctx);
		if (a != NULL) {
			a->dead = true;
			pthread_cond_broadcast(&a->cond);
			if (a->users == 0 && a->reserved == 0)
				ctx_unlink_free(a);
		}
		pthread_mutex_unlock(&ctx_lock);
	}
	return real_destroy(ctx);
}

/* Account n iocbs accepted by the kernel on ctx. */
static void kernel_accepted(io_context_t ctx, int n)
{
	struct actx *a;

	if (n <= 0)
		return;
	pthread_mutex_lock(&ctx_lock);
	a = ctx_get(ctx);
	if (a != NULL) {
		a->kernel_out += n;
		/* A waiter on the condition variable must now wait in the kernel. */
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&ctx_lock);
}

ZP_EXPORT int io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	long i, start, done = 0;
	int r;

	if (zp_bypass() || nr <= 0) {
		r = real_submit(ctx, nr, ios);
		/*
		 * Counted even here (before the library is ready): io_getevents
		 * must never believe the kernel has nothing of this context.
		 */
		if (r > 0 && zp_cfg.enabled)
			kernel_accepted(ctx, r);
		return r;
	}
	/* Runs of non-ZVFS iocbs go to the kernel as one call, in order. */
	for (start = i = 0; i <= nr; i++) {
		if (i < nr)
			await_restored(
				ios[i]); /* resubmitted straight from another thread's reap */
		if (i < nr && !iocb_is_zvfs(ios[i]))
			continue;
		if (i > start) {
			r = real_submit(ctx, i - start, ios + start);
			if (r < 0)
				return done > 0 ? (int)done : r;
			kernel_accepted(ctx, r);
			done += r;
			if (r < i - start)
				return (int)done;
		}
		if (i < nr) {
			r = submit_zvfs(ctx, ios[i]);
			if (r < 0)
				return done > 0 ? (int)done : r;
			done++;
		}
		start = i + 1;
	}
	return (int)done;
}

static void deadline_after(struct timespec *dl, const struct timespec *rel)
{
	clock_gettime(CLOCK_MONOTONIC, dl);
	dl->tv_sec += rel->tv_sec;
	dl->tv_nsec += rel->tv_nsec;
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
}

/* Time left until dl (zero when past). */
static struct timespec time_left(const struct timespec *dl)
{
	struct timespec now, left;

	clock_gettime(CLOCK_MONOTONIC, &now);
	left.tv_sec = dl->tv_sec - now.tv_sec;
	left.tv_nsec = dl->tv_nsec - now.tv_nsec;
	if (left.tv_nsec < 0) {
		left.tv_sec--;
		left.tv_nsec += 1000000000L;
	}
	if (left.tv_sec < 0)
		left.tv_sec = left.tv_nsec = 0;
	return left;
}

/*
 * Kernel completions of a (lock held on entry and return), at least min_nr
 * of them, waiting at most *timeout (NULL: forever).  Returns a count or -errno.
 */
static int reap_kernel(struct actx *a, long min_nr, long nr, struct io_event *ev,
		       struct timespec *timeout)
{
	int r;

	if (min_nr > a->kernel_out)
		min_nr = a->kernel_out;
	pthread_mutex_unlock(&ctx_lock);
	r = real_getevents(a->ctx, min_nr, nr, ev, timeout);
	/* a ZVFS completion may be reaped before its submitter put the iocb back */
	for (int i = 0; i < r; i++)
		await_restored(ev[i].obj);
	pthread_mutex_lock(&ctx_lock);
	if (r > 0)
		a->kernel_out = a->kernel_out > r ? a->kernel_out - r : 0;
	return r;
}

ZP_EXPORT int io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			   struct timespec *timeout)
{
	struct timespec dl, left, zero = {0, 0};
	struct actx *a;
	long n = 0;
	int r = 0;

	if (zp_bypass())
		return real_getevents(ctx, min_nr, nr, events, timeout);
	if (min_nr < 0 || nr < 0 || min_nr > nr)
		return -EINVAL;
	if (timeout != NULL) {
		if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L)
			return -EINVAL;
		deadline_after(&dl, timeout);
	}
	pthread_mutex_lock(&ctx_lock);
	a = ctx_find(ctx);
	if (a == NULL) {
		pthread_mutex_unlock(&ctx_lock);
		return real_getevents(ctx, min_nr, nr, events, timeout);
	}
	a->users++;
	for (;;) {
		n += ctx_pop(a, events + n, nr - n);
		if (a->dead) {
			/* io_destroy'ed meanwhile: as the kernel says of a dead context. */
			r = -EINVAL;
			break;
		}
		if (n >= min_nr) {
			/* Hand out kernel completions already there, without waiting. */
			if (n < nr && a->kernel_out > 0) {
				r = reap_kernel(a, 0, nr - n, events + n, &zero);
				n += r > 0 ? r : 0;
			}
			break;
		}
		if (a->kernel_out > 0) {
			if (timeout != NULL)
				left = time_left(&dl);
			r = reap_kernel(a, min_nr - n, nr - n, events + n,
					timeout != NULL ? &left : NULL);
			if (r < 0)
				break;
			n += r;
			/*
			 * Short of min_nr: the deadline passed, or fewer kernel
			 * iocbs were out than needed and the rest must be ZVFS
			 * completions from other threads.
			 */
			if (n < min_nr && timeout != NULL) {
				left = time_left(&dl);
				if (left.tv_sec == 0 && left.tv_nsec == 0) {
					n += ctx_pop(a, events + n, nr - n);
					break;
				}
			}
			continue;
		}
		if (timeout == NULL) {
			pthread_cond_wait(&a->cond, &ctx_lock);
		} else if (pthread_cond_timedwait(&a->cond, &ctx_lock, &dl) == ETIMEDOUT) {
			n += ctx_pop(a, events + n, nr - n);
			break;
		}
	}
	if (--a->users == 0 && a->reserved == 0 && a->dead)
		ctx_unlink_free(a);
	pthread_mutex_unlock(&ctx_lock);
	if (n == 0 && r < 0)
		return r;
	return (int)n;
}

ZP_EXPORT int io_cancel(io_context_t ctx, struct iocb *iocb, struct io_event *evt)
{
	int r;

	/* A ZVFS iocb completed at submit time: nothing in flight to cancel. */
	if (!zp_bypass() && iocb_is_zvfs(iocb))
		return -EINVAL;
	r = real_cancel(ctx, iocb, evt);
	if (r == 0 && !zp_bypass()) {
		/* Old kernels hand the event back here instead of through the ring. */
		struct actx *a;

		pthread_mutex_lock(&ctx_lock);
		a = ctx_find(ctx);
		if (a != NULL && a->kernel_out > 0)
			a->kernel_out--;
		pthread_mutex_unlock(&ctx_lock);
	}
	return r;
}

void zp_aio_after_fork(void)
{
	/*
	 * The child has none of the parent's kernel contexts, and another
	 * thread may have held the lock at fork: start empty, leaking the
	 * parent's few bytes rather than touching state that may be mid-update.
	 */
	pthread_mutex_init(&ctx_lock, NULL);
	ctx_list = NULL;
	/* only the forking thread exists in the child: no delivery can still be running */
	for (int i = 0; i < DELIVER_SLOTS; i++)
		atomic_store(&deliver_slot[i], NULL);
	atomic_store(&deliver_busy, 0);
	delivering = NULL;
}
