/* SPDX-License-Identifier: MIT */
/*
 * Fault-injection backend ("fault:" INNER_SPEC): a test device, not for
 * production.
 *
 * It wraps an inner device and behaves like a disk with a volatile write
 * cache that loses power on command:
 *  - writes, write_zeroes and discards go into an ordered in-memory log (the
 *    "cache") and not to the inner device; reads read the inner device and
 *    lay every logged write that intersects them on top, in log order;
 *  - a flush writes the log through to the inner device in order and then
 *    flushes the inner device;
 *  - a power cut drops the log (all of it, or a seeded random subset whose
 *    survivors are written through in order) and makes every later request
 *    fail with -ENXIO until power comes back;
 *  - failure rules make chosen requests complete with an error, before they
 *    change anything.
 *
 * All work happens synchronously inside submit(), on the calling thread and
 * through the inner device's own per-thread channels (the synchronous API);
 * the result is handed to zvfs_bdev_io_defer(), so the core delivers it at
 * the next poll and nothing is ever in flight in this backend.
 *
 * Unlike the real backends this one takes locks shared between threads on
 * its data path.  That is acceptable for a device that exists to test the
 * layers above, and it keeps the cache semantics easy to reason about.
 *
 * Map of this file:
 *   1. state                  struct fault_dev, log entries, rules
 *   2. failure rules          rules_check()
 *   3. volatile cache         cache_read(), cache_log(), cache_flush(), log_apply()
 *   4. backend ops            zvfs_bdev_fault_ops
 *   5. public fault API       zvfs_bdev_fault_*()
 *
 * Locking, outermost first:
 *   inner_lock  rwlock over the inner device: a read holds it shared from its
 *               inner read until its overlay is done; a flush or a power cut
 *               holds it exclusive while it writes the cache through and
 *               drops it.  Otherwise a flush could write an entry through and
 *               drop it between a read's inner read (which saw the old data)
 *               and its overlay (which no longer finds the entry), and the
 *               read would miss a completed write; and the inner device would
 *               see reads race writes to the same range, which the RAM
 *               backend leaves to its users.  Reads wait for flushes: fine
 *               for a test device;
 *   log_lock    the log, the flushing list and the "off" transition.  Writes
 *               take only this one, so they go on during a flush;
 *   rule_lock   the failure rules (independent of the others).
 */
#include "zvfs/bdev_module.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* ---- 1. state ----------------------------------------------------------- */

#define FAULT_MAX_RULES 16
/* Bit of fault_dev.armed that says the fail_nth rule is set. */
#define FAULT_ARMED_NTH (1u << FAULT_MAX_RULES)

/* One logged write; immutable once it is on a list. */
struct fault_entry {
	struct fault_entry *next;
	uint64_t offset; /* bytes */
	uint64_t len;	 /* bytes */
	void *data;	 /* len bytes aligned for the inner device; NULL: reads as zeroes */
};

struct fault_list {
	struct fault_entry *head, *tail;
	uint64_t count;
};

struct fault_rule {
	unsigned types; /* ZVFS_BDEV_IO_* mask; 0: slot free */
	uint64_t offset;
	uint64_t len;
	int err; /* positive errno */
};

struct fault_dev {
	struct zvfs_bdev *inner;
	size_t data_align; /* alignment of logged data, for writing it through */

	pthread_rwlock_t inner_lock;
	pthread_mutex_t log_lock;
	struct fault_list log; /* under log_lock */
	/* Being written through: still unflushed, and older than everything in the log. */
	struct fault_list flushing; /* changes under inner_lock (exclusive) + log_lock */
	/* Powered off.  Set under log_lock so that no write is logged after the cut. */
	atomic_bool off;

	pthread_mutex_t rule_lock;
	/* Bit i: rules[i] is set; FAULT_ARMED_NTH: the nth rule is.  Lets submit skip rule_lock. */
	atomic_uint armed;
	struct fault_rule rules[FAULT_MAX_RULES]; /* under rule_lock */
	unsigned nth_types;			  /* under rule_lock */
	uint64_t nth_left;			  /* matching requests until the one that fails */
	int nth_err;

	atomic_uint_fast64_t submitted;
	atomic_uint_fast64_t failed;
	atomic_uint_fast64_t flushes;
};

static void list_append(struct fault_list *l, struct fault_entry *e)
{
	e->next = NULL;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	l->count++;
}

/* Move everything from src to dst (dst must be empty); src becomes empty. */
static void list_take(struct fault_list *dst, struct fault_list *src)
{
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

static void entry_free(struct fault_entry *e)
{
	free(e->data);
	free(e);
}

static void list_free(struct fault_list *l)
{
	struct fault_entry *e = l->head, *next;

	for (; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	memset(l, 0, sizeof(*l));
}

/* ---- 2. failure rules ----------------------------------------------------- */

static bool rule_touches(const struct fault_rule *r, const struct zvfs_bdev_io *io)
{
	if (io->type == ZVFS_BDEV_IO_FLUSH)
		return true;
	return io->offset < r->offset + r->len && r->offset < io->offset + io->len;
}

/*
 * The status a rule imposes on io (a negative errno), or 0.  Every request
 * whose type the nth rule counts consumes one count, even when a range rule
 * fails it too, so "the nth request" means the nth one submitted.
 */
static int rules_check(struct fault_dev *fd, const struct zvfs_bdev_io *io)
{
	unsigned armed = atomic_load_explicit(&fd->armed, memory_order_acquire);
	int err = 0;

	if (!armed)
		return 0;
	pthread_mutex_lock(&fd->rule_lock);
	if (fd->nth_left && (io->type & fd->nth_types)) {
		if (--fd->nth_left == 0) {
			err = -fd->nth_err;
			atomic_fetch_and(&fd->armed, ~FAULT_ARMED_NTH);
		}
	}
	for (int i = 0; i < FAULT_MAX_RULES && !err; i++) {
		const struct fault_rule *r = &fd->rules[i];

		if ((r->types & io->type) && rule_touches(r, io))
			err = -r->err;
	}
	pthread_mutex_unlock(&fd->rule_lock);
	return err;
}

/* ---- 3. volatile cache ------------------------------------------------------ */

/* Copy n bytes of src (or zeroes when src is NULL) into iov at byte position pos. */
static void iov_put(const struct iovec *iov, int iovcnt, uint64_t pos, const uint8_t *src,
		    uint64_t n)
{
	for (int i = 0; i < iovcnt && n; i++) {
		uint64_t l = iov[i].iov_len;
		uint64_t chunk;

		if (pos >= l) {
			pos -= l;
			continue;
		}
		chunk = l - pos < n ? l - pos : n;
		if (src) {
			memcpy((uint8_t *)iov[i].iov_base + pos, src, chunk);
			src += chunk;
		} else {
			memset((uint8_t *)iov[i].iov_base + pos, 0, chunk);
		}
		n -= chunk;
		pos = 0;
	}
}

/* Lay every entry of l that intersects io's range over io's buffers, in order. */
static void overlay(const struct fault_list *l, const struct zvfs_bdev_io *io)
{
	uint64_t start = io->offset, end = io->offset + io->len;

	for (const struct fault_entry *e = l->head; e; e = e->next) {
		uint64_t lo = e->offset > start ? e->offset : start;
		uint64_t hi = e->offset + e->len < end ? e->offset + e->len : end;

		if (lo >= hi)
			continue;
		iov_put(io->iov, io->iovcnt, lo - start,
			e->data ? (const uint8_t *)e->data + (lo - e->offset) : NULL, hi - lo);
	}
}

/* Returns the read's completion status. */
static int cache_read(struct fault_dev *fd, struct zvfs_bdev_io *io)
{
	int rc;

	pthread_rwlock_rdlock(&fd->inner_lock);
	rc = zvfs_bdev_readv_sync(fd->inner, io->iov, io->iovcnt, io->offset);
	if (rc == 0) {
		/* No flush runs while we hold inner_lock: the flushing list is empty. */
		pthread_mutex_lock(&fd->log_lock);
		overlay(&fd->log, io);
		pthread_mutex_unlock(&fd->log_lock);
	}
	pthread_rwlock_unlock(&fd->inner_lock);
	return rc;
}

/*
 * Log a write (io->iov holds the data) or a zeroing request.  Returns 0, or
 * a submit error: -ENOMEM, or -ENXIO when a power cut came first.
 */
static int cache_log(struct fault_dev *fd, struct zvfs_bdev_io *io)
{
	struct fault_entry *e = malloc(sizeof(*e));
	uint8_t *p;

	if (!e)
		return -ENOMEM;
	e->offset = io->offset;
	e->len = io->len;
	e->data = NULL;
	if (io->type == ZVFS_BDEV_IO_WRITE) {
		/* Aligned for the inner device: a flush writes this buffer through as is. */
		if (posix_memalign(&e->data, fd->data_align, io->len)) {
			free(e);
			return -ENOMEM;
		}
		p = e->data;
		for (int i = 0; i < io->iovcnt; i++) {
			memcpy(p, io->iov[i].iov_base, io->iov[i].iov_len);
			p += io->iov[i].iov_len;
		}
	}

	pthread_mutex_lock(&fd->log_lock);
	if (atomic_load(&fd->off)) {
		/* The power cut won the race since submit checked: this write never happened. */
		pthread_mutex_unlock(&fd->log_lock);
		entry_free(e);
		return -ENXIO;
	}
	list_append(&fd->log, e);
	pthread_mutex_unlock(&fd->log_lock);
	return 0;
}

/* Write one entry through to the inner device. */
static int entry_apply(struct fault_dev *fd, const struct fault_entry *e)
{
	if (e->data)
		return zvfs_bdev_write_sync(fd->inner, e->data, e->len, e->offset);
	/* Discard too: the inner device may not zero on discard, and we promised zeroes. */
	return zvfs_bdev_write_zeroes_sync(fd->inner, e->offset, e->len);
}

/* Write a whole list through, in order; stops at the first error. */
static int log_apply(struct fault_dev *fd, const struct fault_list *l)
{
	int rc;

	for (const struct fault_entry *e = l->head; e; e = e->next) {
		rc = entry_apply(fd, e);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * Flush: returns the completion status, or -ENXIO as a submit error (with
 * *submit_err set) when a power cut came first.  Writes logged while the
 * flush runs stay in the log for the next one: a flush covers only the writes
 * that completed before it was submitted.
 */
static int cache_flush(struct fault_dev *fd, bool *submit_err)
{
	struct fault_list done = {0};
	int rc;

	pthread_rwlock_wrlock(&fd->inner_lock);
	pthread_mutex_lock(&fd->log_lock);
	if (atomic_load(&fd->off)) {
		pthread_mutex_unlock(&fd->log_lock);
		pthread_rwlock_unlock(&fd->inner_lock);
		*submit_err = true;
		return -ENXIO;
	}
	list_take(&fd->flushing, &fd->log);
	pthread_mutex_unlock(&fd->log_lock);

	rc = log_apply(fd, &fd->flushing);
	if (rc == 0)
		rc = zvfs_bdev_flush_sync(fd->inner);

	pthread_mutex_lock(&fd->log_lock);
	if (rc) {
		/*
		 * Keep the entries cached, ahead of whatever was logged since:
		 * the next flush writes them again, which is harmless because
		 * it writes them in the same order.
		 */
		if (fd->flushing.head) {
			fd->flushing.tail->next = fd->log.head;
			if (!fd->log.tail)
				fd->log.tail = fd->flushing.tail;
			fd->log.head = fd->flushing.head;
			fd->log.count += fd->flushing.count;
		}
		memset(&fd->flushing, 0, sizeof(fd->flushing));
	} else {
		list_take(&done, &fd->flushing);
		atomic_fetch_add_explicit(&fd->flushes, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&fd->log_lock);
	pthread_rwlock_unlock(&fd->inner_lock);

	list_free(&done);
	return rc;
}

/* ---- 4. backend ops ------------------------------------------------------- */

static int fault_open(struct zvfs_bdev *bdev, const struct zvfs_bdev_spec *spec, char *errbuf,
		      size_t errlen)
{
	const struct zvfs_bdev_geometry *ig;
	pthread_rwlockattr_t rwattr;
	struct fault_dev *fd;
	int rc;

	if (!spec->path || !*spec->path) {
		zvfs_bdev_errf(errbuf, errlen, "fault: needs an inner device spec");
		return -EINVAL;
	}
	fd = calloc(1, sizeof(*fd));
	if (!fd)
		return -ENOMEM;
	/* The inner device writes its own message, naming itself, on failure. */
	rc = zvfs_bdev_open(spec->path, &fd->inner, errbuf, errlen);
	if (rc)
		goto err_free_fd;

	ig = zvfs_bdev_get_geometry(fd->inner);
	bdev->geo = *ig;
	/* Writes sit in our cache until a flush: that is the point of this device. */
	bdev->geo.volatile_cache = true;
	/* Discard is logged as zeroes, so it zeroes whatever the inner device does. */
	bdev->geo.discard_zeroes = true;
	fd->data_align = ig->buf_align > sizeof(void *) ? ig->buf_align : sizeof(void *);
	snprintf(bdev->name, sizeof(bdev->name), "fault(%s)", zvfs_bdev_get_name(fd->inner));

	pthread_mutex_init(&fd->log_lock, NULL);
	pthread_mutex_init(&fd->rule_lock, NULL);
	/*
	 * Writer preference: glibc's default rwlock lets a steady stream of
	 * reads starve a flush.
	 */
	pthread_rwlockattr_init(&rwattr);
	pthread_rwlockattr_setkind_np(&rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fd->inner_lock, &rwattr);
	pthread_rwlockattr_destroy(&rwattr);
	bdev->drv = fd;
	return 0;

err_free_fd:
	free(fd);
	return rc;
}

/*
 * An orderly close writes the cache through and flushes, as a disk does on
 * an orderly shutdown; after a power cut there is nothing left to write.
 */
static void fault_close(struct zvfs_bdev *bdev)
{
	struct fault_dev *fd = bdev->drv;
	int rc;

	if (!atomic_load(&fd->off) && fd->log.head) {
		rc = log_apply(fd, &fd->log);
		if (rc == 0)
			rc = zvfs_bdev_flush_sync(fd->inner);
		if (rc)
			ZVFS_ERR("%s: writing the cache back at close failed: %s", bdev->name,
				 strerror(-rc));
	}
	list_free(&fd->log);
	list_free(&fd->flushing);
	rc = zvfs_bdev_close(fd->inner);
	if (rc)
		ZVFS_ERR("%s: closing the inner device failed: %s", bdev->name, strerror(-rc));
	pthread_rwlock_destroy(&fd->inner_lock);
	pthread_mutex_destroy(&fd->rule_lock);
	pthread_mutex_destroy(&fd->log_lock);
	free(fd);
	bdev->drv = NULL;
}

/* Nothing per channel: the inner device has its own per-thread channels. */
static int fault_channel_create(struct zvfs_bdev_channel *ch)
{
	ch->drv = NULL;
	return 0;
}

static void fault_channel_destroy(struct zvfs_bdev_channel *ch)
{
	(void)ch;
}

static int fault_submit(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io)
{
	struct fault_dev *fd = ch->bdev->drv;
	bool submit_err = false;
	int rc;

	atomic_fetch_add_explicit(&fd->submitted, 1, memory_order_relaxed);
	/* A dark device refuses first: its requests do not count for the rules. */
	if (atomic_load(&fd->off))
		return -ENXIO;
	rc = rules_check(fd, io);
	if (rc) {
		atomic_fetch_add_explicit(&fd->failed, 1, memory_order_relaxed);
		zvfs_bdev_io_defer(io, rc);
		return 0;
	}

	switch (io->type) {
	case ZVFS_BDEV_IO_READ:
		rc = cache_read(fd, io);
		break;
	case ZVFS_BDEV_IO_WRITE:
	case ZVFS_BDEV_IO_WRITE_ZEROES:
	case ZVFS_BDEV_IO_DISCARD:
		rc = cache_log(fd, io);
		submit_err = rc != 0;
		break;
	case ZVFS_BDEV_IO_FLUSH:
		rc = cache_flush(fd, &submit_err);
		break;
	default:
		return -EINVAL;
	}
	if (submit_err)
		return rc;
	zvfs_bdev_io_defer(io, rc);
	return 0;
}

/*
 * Everything finished inside submit and went to zvfs_bdev_io_defer(); the
 * core delivers those.  Nothing is ever in flight here, so wait never sleeps.
 */
static int fault_poll(struct zvfs_bdev_channel *ch, bool wait)
{
	(void)ch;
	(void)wait;
	return 0;
}

/* The claim belongs to the device that persists: the inner one. */
static int fault_claim(struct zvfs_bdev *bdev, pid_t *holder)
{
	struct fault_dev *fd = bdev->drv;

	return zvfs_bdev_claim(fd->inner, holder);
}

const struct zvfs_bdev_ops zvfs_bdev_fault_ops = {
	.name = "fault",
	.claim = fault_claim,
	.open = fault_open,
	.close = fault_close,
	.channel_create = fault_channel_create,
	.channel_destroy = fault_channel_destroy,
	.submit = fault_submit,
	.poll = fault_poll,
};

/* ---- 5. public fault API ----------------------------------------------------- */

static struct fault_dev *fault_dev_of(struct zvfs_bdev *bdev)
{
	if (!bdev || bdev->ops != &zvfs_bdev_fault_ops)
		return NULL;
	return bdev->drv;
}

static bool rule_args_ok(unsigned types, int err)
{
	/* err is a positive errno: the request completes with -err. */
	return types && !(types & ~(unsigned)ZVFS_BDEV_IO_ALL) && err > 0 && err < 4096;
}

int zvfs_bdev_fault_fail_nth(struct zvfs_bdev *bdev, unsigned types, uint64_t nth, int err)
{
	struct fault_dev *fd = fault_dev_of(bdev);

	if (!fd || !rule_args_ok(types, err) || nth == 0)
		return -EINVAL;
	pthread_mutex_lock(&fd->rule_lock);
	fd->nth_types = types;
	fd->nth_left = nth;
	fd->nth_err = err;
	atomic_fetch_or(&fd->armed, FAULT_ARMED_NTH);
	pthread_mutex_unlock(&fd->rule_lock);
	return 0;
}

int zvfs_bdev_fault_fail_range(struct zvfs_bdev *bdev, unsigned types, uint64_t offset,
			       uint64_t len, int err)
{
	struct fault_dev *fd = fault_dev_of(bdev);
	int id = -ENOSPC;

	if (!fd || !rule_args_ok(types, err) || len == 0 || offset + len < offset)
		return -EINVAL;
	pthread_mutex_lock(&fd->rule_lock);
	for (int i = 0; i < FAULT_MAX_RULES; i++) {
		struct fault_rule *r = &fd->rules[i];

		if (r->types)
			continue;
		r->types = types;
		r->offset = offset;
		r->len = len;
		r->err = err;
		atomic_fetch_or(&fd->armed, 1u << i);
		id = i;
		break;
	}
	pthread_mutex_unlock(&fd->rule_lock);
	return id;
}

int zvfs_bdev_fault_clear_rule(struct zvfs_bdev *bdev, int rule)
{
	struct fault_dev *fd = fault_dev_of(bdev);
	int rc = 0;

	if (!fd || rule < 0 || rule >= FAULT_MAX_RULES)
		return -EINVAL;
	pthread_mutex_lock(&fd->rule_lock);
	if (fd->rules[rule].types) {
		memset(&fd->rules[rule], 0, sizeof(fd->rules[rule]));
		atomic_fetch_and(&fd->armed, ~(1u << rule));
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&fd->rule_lock);
	return rc;
}

int zvfs_bdev_fault_clear(struct zvfs_bdev *bdev)
{
	struct fault_dev *fd = fault_dev_of(bdev);

	if (!fd)
		return -EINVAL;
	pthread_mutex_lock(&fd->rule_lock);
	memset(fd->rules, 0, sizeof(fd->rules));
	fd->nth_types = 0;
	fd->nth_left = 0;
	fd->nth_err = 0;
	atomic_store(&fd->armed, 0);
	pthread_mutex_unlock(&fd->rule_lock);
	return 0;
}

/* splitmix64: a tiny PRNG whose sequence depends only on the seed. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Holding inner_lock exclusive waits out a flush in progress (so the log is
 * everything unflushed) and reads in progress (which complete with what they
 * saw).  The device goes dark before the survivors are written through, so
 * no request sees a state between the cut and its outcome.  A failure to
 * write them is returned, but the device is dark and the cache gone either
 * way.
 */
int zvfs_bdev_fault_power_cut(struct zvfs_bdev *bdev, enum zvfs_bdev_power_cut mode, uint64_t seed,
			      uint64_t *dropped, uint64_t *kept)
{
	struct fault_dev *fd = fault_dev_of(bdev);
	uint64_t ndropped = 0, nkept = 0, rng = seed;
	struct fault_list cut;
	int rc = 0;

	if (!fd || (mode != ZVFS_BDEV_CUT_DROP_ALL && mode != ZVFS_BDEV_CUT_RANDOM))
		return -EINVAL;
	pthread_rwlock_wrlock(&fd->inner_lock);
	pthread_mutex_lock(&fd->log_lock);
	/* A second cut while dark finds an empty cache and changes nothing. */
	atomic_store(&fd->off, true);
	list_take(&cut, &fd->log);
	pthread_mutex_unlock(&fd->log_lock);

	for (const struct fault_entry *e = cut.head; e; e = e->next) {
		int erc;

		if (mode == ZVFS_BDEV_CUT_DROP_ALL || (splitmix64(&rng) >> 63)) {
			ndropped++;
			continue;
		}
		nkept++;
		erc = entry_apply(fd, e);
		if (erc && !rc)
			rc = erc;
	}
	if (nkept) {
		int erc = zvfs_bdev_flush_sync(fd->inner);

		if (erc && !rc)
			rc = erc;
	}
	pthread_rwlock_unlock(&fd->inner_lock);

	list_free(&cut);
	if (dropped)
		*dropped = ndropped;
	if (kept)
		*kept = nkept;
	if (rc)
		ZVFS_ERR("%s: power cut: writing surviving writes failed: %s", bdev->name,
			 strerror(-rc));
	return rc;
}

int zvfs_bdev_fault_power_on(struct zvfs_bdev *bdev)
{
	struct fault_dev *fd = fault_dev_of(bdev);

	if (!fd)
		return -EINVAL;
	pthread_mutex_lock(&fd->log_lock);
	atomic_store(&fd->off, false);
	pthread_mutex_unlock(&fd->log_lock);
	return 0;
}

int zvfs_bdev_fault_get_stats(struct zvfs_bdev *bdev, struct zvfs_bdev_fault_stats *st)
{
	struct fault_dev *fd = fault_dev_of(bdev);

	if (!fd || !st)
		return -EINVAL;
	st->submitted = atomic_load_explicit(&fd->submitted, memory_order_relaxed);
	st->failed = atomic_load_explicit(&fd->failed, memory_order_relaxed);
	st->flushes = atomic_load_explicit(&fd->flushes, memory_order_relaxed);
	pthread_mutex_lock(&fd->log_lock);
	/* Entries being written through are not on stable storage yet either. */
	st->unflushed = fd->log.count + fd->flushing.count;
	pthread_mutex_unlock(&fd->log_lock);
	return 0;
}
