/* SPDX-License-Identifier: MIT */
/*
 * Block-device core: what every backend shares.
 *
 * Map of this file:
 *   1. spec parsing            spec_parse()
 *   2. open / close            zvfs_bdev_open(), zvfs_bdev_close()
 *   3. per-thread channels     zvfs_bdev_get_channel(), thread-exit destructor, fork
 *   4. requests                io_get()/io_put(), validation, zvfs_bdev_io_complete()
 *   5. asynchronous API        zvfs_bdev_readv() ... zvfs_bdev_poll()/wait()
 *   6. write-zeroes emulation  for targets that cannot zero by themselves
 *   7. synchronous API         zvfs_bdev_*_sync()
 *   8. buffers                 zvfs_bdev_buf_alloc()/free(), registered arena
 *
 * Locking: the data path (submit, poll, complete) touches only the calling
 * thread's channel.  g_chan_lock is taken when a channel is created or
 * destroyed (first I/O of a thread, thread exit, device close) and
 * protects every bdev's channel list and every channel's dead flag.
 */
#include "zvfs/bdev_module.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/log.h"
#include "util/parse.h"

/* ---- 1. spec parsing ------------------------------------------------ */

static const struct zvfs_bdev_ops *const g_drivers[] = {
	&zvfs_bdev_uring_ops,
	&zvfs_bdev_aio_ops,
	&zvfs_bdev_ram_ops,
	&zvfs_bdev_fault_ops,
};

void zvfs_bdev_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (errbuf && errlen)
		vsnprintf(errbuf, errlen, fmt, ap);
	else
		zvfs_vlog(ZVFS_LOG_ERROR, fmt, ap);
	va_end(ap);
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Parse one "key[=value]" option into spec. */
static int spec_option(struct zvfs_bdev_spec *spec, char *opt, const char *whole, char *errbuf,
		       size_t errlen)
{
	char *val = strchr(opt, '=');
	uint64_t v = 0;
	int rc;

	if (val)
		*val++ = '\0';
	if (strcmp(opt, "create") == 0 || strcmp(opt, "buffered") == 0 || strcmp(opt, "ro") == 0 ||
	    strcmp(opt, "noregbuf") == 0 || strcmp(opt, "spinalways") == 0) {
		if (val)
			goto err_value;
		if (opt[0] == 'c')
			spec->create = true;
		else if (opt[0] == 'b')
			spec->buffered = true;
		else if (opt[0] == 'r')
			spec->read_only = true;
		else if (opt[0] == 's')
			spec->spin_always = true;
		else
			spec->no_regbuf = true;
		return 0;
	}
	if (strcmp(opt, "size") != 0 && strcmp(opt, "block") != 0 && strcmp(opt, "pblock") != 0 &&
	    strcmp(opt, "qd") != 0 && strcmp(opt, "sqbatch") != 0 && strcmp(opt, "spin") != 0) {
		zvfs_bdev_errf(errbuf, errlen, "%s: unknown option '%s'", whole, opt);
		return -EINVAL;
	}
	if (!val)
		goto err_value;
	if (strcmp(opt, "qd") == 0 || strcmp(opt, "sqbatch") == 0 || strcmp(opt, "spin") == 0)
		rc = zvfs_parse_u64(val, &v);
	else
		rc = zvfs_parse_size(val, &v);
	if (rc)
		goto err_value;
	if (strcmp(opt, "size") == 0) {
		spec->size = v;
	} else if (strcmp(opt, "block") == 0 || strcmp(opt, "pblock") == 0) {
		if (!is_pow2(v) || v < 512 || v > 65536)
			goto err_value;
		if (opt[0] == 'b')
			spec->block_size = (uint32_t)v;
		else
			spec->phys_block_size = (uint32_t)v;
	} else if (strcmp(opt, "sqbatch") == 0) {
		if (v > 4096)
			goto err_value;
		spec->sq_batch = (uint32_t)v;
		spec->sq_batch_set = true;
	} else if (strcmp(opt, "spin") == 0) {
		if (v > 100000)
			goto err_value;
		spec->spin_us = (uint32_t)v;
		spec->spin_set = true;
	} else { /* qd */
		if (v < 1 || v > 4096)
			goto err_value;
		spec->queue_depth = (uint32_t)v;
	}
	return 0;

err_value:
	zvfs_bdev_errf(errbuf, errlen, "%s: bad value for option '%s'%s%s", whole, opt,
		       val ? ": " : "", val ? val : "");
	return -EINVAL;
}

/*
 * Split spec (a private copy in buf) into driver, target and options.
 * "fault:" takes the rest of the string, options included, as its inner spec.
 */
static int spec_parse(char *buf, const char *whole, struct zvfs_bdev_spec *spec, char *errbuf,
		      size_t errlen)
{
	char *colon = strchr(buf, ':');
	char *rest = buf;
	char *opt;

	memset(spec, 0, sizeof(*spec));
	strcpy(spec->driver, "uring");
	if (colon) {
		size_t n = (size_t)(colon - buf);
		bool known = false;

		for (size_t i = 0; i < sizeof(g_drivers) / sizeof(g_drivers[0]); i++)
			if (strlen(g_drivers[i]->name) == n &&
			    memcmp(g_drivers[i]->name, buf, n) == 0)
				known = true;
		/* A path may contain ':'; only a known driver name is a prefix. */
		if (known) {
			memcpy(spec->driver, buf, n);
			spec->driver[n] = '\0';
			rest = colon + 1;
		}
	}
	if (strcmp(spec->driver, "fault") == 0) {
		if (!*rest) {
			zvfs_bdev_errf(errbuf, errlen, "%s: fault needs an inner device spec",
				       whole);
			return -EINVAL;
		}
		spec->path = rest;
		return 0;
	}
	if (strcmp(spec->driver, "ram") == 0) {
		opt = rest;
	} else {
		opt = strchr(rest, ',');
		if (opt)
			*opt++ = '\0';
		if (!*rest) {
			zvfs_bdev_errf(errbuf, errlen, "%s: no device path", whole);
			return -EINVAL;
		}
		spec->path = rest;
	}
	while (opt && *opt) {
		char *next = strchr(opt, ',');
		int rc;

		if (next)
			*next++ = '\0';
		rc = spec_option(spec, opt, whole, errbuf, errlen);
		if (rc)
			return rc;
		opt = next;
	}
	if (spec->create && !spec->size) {
		zvfs_bdev_errf(errbuf, errlen, "%s: 'create' needs 'size='", whole);
		return -EINVAL;
	}
	return 0;
}

/* ---- 2. open / close -------------------------------------------------- */

static atomic_uint_fast64_t g_next_bdev_id = 1;
static pthread_mutex_t g_chan_lock = PTHREAD_MUTEX_INITIALIZER;
/* Open devices, under g_chan_lock: a forked child must forget their channels. */
static struct zvfs_bdev *g_open_bdevs;

static void arena_init(struct zvfs_bdev *bdev);
static void arena_fini(struct zvfs_bdev *bdev);

int zvfs_bdev_open(const char *spec_str, struct zvfs_bdev **bdevp, char *errbuf, size_t errlen)
{
	const struct zvfs_bdev_ops *ops = NULL;
	struct zvfs_bdev_spec spec;
	struct zvfs_bdev *bdev;
	char *buf;
	int rc;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!spec_str || !*spec_str) {
		zvfs_bdev_errf(errbuf, errlen, "empty device spec");
		return -EINVAL;
	}
	buf = strdup(spec_str);
	if (!buf)
		return -ENOMEM;
	rc = spec_parse(buf, spec_str, &spec, errbuf, errlen);
	if (rc)
		goto err_free_buf;
	for (size_t i = 0; i < sizeof(g_drivers) / sizeof(g_drivers[0]); i++)
		if (strcmp(g_drivers[i]->name, spec.driver) == 0)
			ops = g_drivers[i];

	bdev = calloc(1, sizeof(*bdev));
	if (!bdev) {
		rc = -ENOMEM;
		goto err_free_buf;
	}
	bdev->ops = ops;
	bdev->id = atomic_fetch_add(&g_next_bdev_id, 1);
	pthread_mutex_init(&bdev->ch_lock, NULL);
	snprintf(bdev->name, sizeof(bdev->name), "%s", spec.path ? spec.path : spec.driver);

	rc = ops->open(bdev, &spec, errbuf, errlen);
	if (rc)
		goto err_free_bdev;
	/* A fault device's options belong to its inner device, which set its depth. */
	if (spec.queue_depth)
		bdev->geo.queue_depth = spec.queue_depth;
	else if (!bdev->geo.queue_depth)
		bdev->geo.queue_depth = 128;
	bdev->geo.read_only = bdev->geo.read_only || spec.read_only;
	if (bdev->geo.buf_align < 512)
		bdev->geo.buf_align = 512;
	bdev->zero_buf = aligned_alloc(bdev->geo.buf_align, ZVFS_BDEV_ZERO_BUF);
	if (!bdev->zero_buf) {
		rc = -ENOMEM;
		goto err_close_backend;
	}
	memset(bdev->zero_buf, 0, ZVFS_BDEV_ZERO_BUF);
	if (!spec.no_regbuf && ops == &zvfs_bdev_uring_ops && !spec.buffered)
		arena_init(bdev);
	free(buf);
	pthread_mutex_lock(&g_chan_lock);
	bdev->open_next = g_open_bdevs;
	g_open_bdevs = bdev;
	pthread_mutex_unlock(&g_chan_lock);
	*bdevp = bdev;
	ZVFS_INFO("%s: opened (%s, %llu bytes, block %u/%u)", bdev->name, ops->name,
		  (unsigned long long)bdev->geo.size, bdev->geo.block_size,
		  bdev->geo.phys_block_size);
	return 0;

err_close_backend:
	ops->close(bdev);
err_free_bdev:
	pthread_mutex_destroy(&bdev->ch_lock);
	free(bdev);
err_free_buf:
	free(buf);
	return rc;
}

static void channel_release(struct zvfs_bdev_channel *ch);

int zvfs_bdev_close(struct zvfs_bdev *bdev)
{
	struct zvfs_bdev_channel *ch;

	if (!bdev)
		return 0;
	pthread_mutex_lock(&g_chan_lock);
	for (ch = bdev->channels; ch; ch = ch->bdev_next) {
		if (ch->outstanding) {
			pthread_mutex_unlock(&g_chan_lock);
			ZVFS_ERR("%s: close with %u requests in flight", bdev->name,
				 ch->outstanding);
			return -EBUSY;
		}
	}
	/*
	 * Release the backend side of every channel now; the channel memory
	 * stays with its owner thread, which frees it when it next looks up a
	 * channel or exits (it may be blocked elsewhere right now).
	 */
	while ((ch = bdev->channels) != NULL) {
		bdev->channels = ch->bdev_next;
		channel_release(ch);
		ch->dead = true;
	}
	bdev->nchannels = 0;
	for (struct zvfs_bdev **pp = &g_open_bdevs; *pp; pp = &(*pp)->open_next) {
		if (*pp == bdev) {
			*pp = bdev->open_next;
			break;
		}
	}
	pthread_mutex_unlock(&g_chan_lock);
	bdev->ops->close(bdev);
	arena_fini(bdev);
	free(bdev->zero_buf);
	pthread_mutex_destroy(&bdev->ch_lock);
	free(bdev);
	return 0;
}

const struct zvfs_bdev_geometry *zvfs_bdev_get_geometry(const struct zvfs_bdev *bdev)
{
	return &bdev->geo;
}

int zvfs_bdev_claim(struct zvfs_bdev *bdev, pid_t *holder)
{
	if (holder)
		*holder = 0;
	if (bdev->ops->claim)
		return bdev->ops->claim(bdev, holder);
	/*
	 * The io_uring and libaio drivers keep their struct zvfs_bdev_file as
	 * the first member of their state; until their ops tables name a claim
	 * op of their own, claim through it here.
	 */
	if (bdev->ops == &zvfs_bdev_uring_ops || bdev->ops == &zvfs_bdev_aio_ops)
		return zvfs_bdev_file_claim(bdev->drv, bdev->geo.read_only, holder);
	return 0; /* RAM: private to the process */
}

const char *zvfs_bdev_get_name(const struct zvfs_bdev *bdev)
{
	return bdev->name;
}

const char *zvfs_bdev_get_driver(const struct zvfs_bdev *bdev)
{
	return bdev->ops->name;
}

/* ---- 3. per-thread channels -------------------------------------------- */

/*
 * Each thread keeps its channels in a list hung off a pthread key, so the
 * key's destructor releases them when the thread exits.  tl_last caches the
 * most recent lookup: the common case (one device) costs two compares.
 */
static pthread_key_t g_thread_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static __thread struct zvfs_bdev_channel *tl_channels;
static __thread struct zvfs_bdev_channel *tl_last;
static atomic_uint_fast64_t g_fork_gen;

struct io_chunk;
static void free_io_chunks(struct io_chunk *c);

static void free_channel_memory(struct zvfs_bdev_channel *ch)
{
	free_io_chunks(ch->io_chunks);
	free(ch);
}

/* Backend side of a channel; g_chan_lock held. */
static void channel_release(struct zvfs_bdev_channel *ch)
{
	if (ch->bdev && !ch->dead)
		ch->bdev->ops->channel_destroy(ch);
}

static void thread_exit(void *arg)
{
	struct zvfs_bdev_channel *ch = tl_channels, *next;

	(void)arg; /* the key's value is just a marker; the list is in TLS */
	pthread_mutex_lock(&g_chan_lock);
	for (; ch; ch = next) {
		next = ch->thread_next;
		if (!ch->dead && ch->fork_gen == atomic_load(&g_fork_gen)) {
			struct zvfs_bdev *bdev = ch->bdev;
			struct zvfs_bdev_channel **pp;

			if (ch->outstanding)
				ZVFS_WARN("%s: thread exits with %u requests in flight", bdev->name,
					  ch->outstanding);
			for (pp = &bdev->channels; *pp; pp = &(*pp)->bdev_next) {
				if (*pp == ch) {
					*pp = ch->bdev_next;
					break;
				}
			}
			bdev->nchannels--;
			channel_release(ch);
		}
		free_channel_memory(ch);
	}
	pthread_mutex_unlock(&g_chan_lock);
	tl_channels = NULL;
	tl_last = NULL;
}

/*
 * After fork the child has copies of the parent's channels, whose rings and
 * contexts are still the parent's: using them would corrupt the parent's
 * I/O.  The child gets new channels; the copies are abandoned, not
 * destroyed (destroying them would tear down the parent's ring mappings).
 */
static void atfork_child(void)
{
	atomic_fetch_add(&g_fork_gen, 1);
	tl_last = NULL;
	tl_channels = NULL;
	/* Only the forking thread exists now; nobody can hold the lock for us. */
	pthread_mutex_init(&g_chan_lock, NULL);
	for (struct zvfs_bdev *b = g_open_bdevs; b; b = b->open_next) {
		b->channels = NULL;
		b->nchannels = 0;
	}
}

static void key_init(void)
{
	if (pthread_key_create(&g_thread_key, thread_exit) != 0)
		ZVFS_ERR("bdev: cannot create thread key; channels leak at thread exit");
	pthread_atfork(NULL, NULL, atfork_child);
}

/* Drop channels of closed devices (their memory is the owner's to free). */
static void reap_dead_channels(void)
{
	struct zvfs_bdev_channel **pp = &tl_channels, *ch;

	pthread_mutex_lock(&g_chan_lock);
	while ((ch = *pp) != NULL) {
		if (ch->dead) {
			*pp = ch->thread_next;
			free_channel_memory(ch);
		} else {
			pp = &ch->thread_next;
		}
	}
	pthread_mutex_unlock(&g_chan_lock);
}

static int channel_create(struct zvfs_bdev *bdev, struct zvfs_bdev_channel **chp)
{
	struct zvfs_bdev_channel *ch;
	int rc;

	pthread_once(&g_key_once, key_init);
	reap_dead_channels();
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->bdev = bdev;
	ch->bdev_id = bdev->id;
	ch->fork_gen = atomic_load(&g_fork_gen);
	rc = bdev->ops->channel_create(ch);
	if (rc) {
		free(ch);
		ZVFS_ERR("%s: cannot create I/O channel: %s", bdev->name, strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&g_chan_lock);
	ch->bdev_next = bdev->channels;
	bdev->channels = ch;
	bdev->nchannels++;
	pthread_mutex_unlock(&g_chan_lock);
	ch->thread_next = tl_channels;
	tl_channels = ch;
	/* Any non-NULL value makes the destructor run at thread exit. */
	pthread_setspecific(g_thread_key, ch);
	*chp = ch;
	return 0;
}

int zvfs_bdev_get_channel(struct zvfs_bdev *bdev, struct zvfs_bdev_channel **chp)
{
	struct zvfs_bdev_channel *ch = tl_last;
	uint64_t gen;
	int rc;

	if (ch && ch->bdev_id == bdev->id && !ch->dead) {
		*chp = ch;
		return 0;
	}
	gen = atomic_load(&g_fork_gen);
	for (ch = tl_channels; ch; ch = ch->thread_next) {
		if (ch->bdev_id == bdev->id && !ch->dead && ch->fork_gen == gen) {
			tl_last = ch;
			*chp = ch;
			return 0;
		}
	}
	rc = channel_create(bdev, &ch);
	if (rc)
		return rc;
	tl_last = ch;
	*chp = ch;
	return 0;
}

unsigned zvfs_bdev_channel_count(struct zvfs_bdev *bdev)
{
	unsigned n;

	pthread_mutex_lock(&g_chan_lock);
	n = bdev->nchannels;
	pthread_mutex_unlock(&g_chan_lock);
	return n;
}

uint64_t zvfs_bdev_polled(struct zvfs_bdev *bdev)
{
	return atomic_load_explicit(&bdev->polled, memory_order_relaxed);
}

/* ---- 4. requests ------------------------------------------------------- */

#define IO_CHUNK 64

struct io_chunk {
	struct io_chunk *next;
	struct zvfs_bdev_io ios[IO_CHUNK];
};

static void free_io_chunks(struct io_chunk *c)
{
	while (c) {
		struct io_chunk *next = c->next;

		free(c);
		c = next;
	}
}

static struct zvfs_bdev_io *io_get(struct zvfs_bdev_channel *ch)
{
	struct zvfs_bdev_io *io = ch->free_list;

	if (__builtin_expect(!io, 0)) {
		struct io_chunk *c = calloc(1, sizeof(*c));

		if (!c)
			return NULL;
		c->next = ch->io_chunks;
		ch->io_chunks = c;
		for (int i = IO_CHUNK - 1; i >= 0; i--) {
			c->ios[i].next = ch->free_list;
			ch->free_list = &c->ios[i];
		}
		io = ch->free_list;
	}
	ch->free_list = io->next;
	io->next = NULL;
	io->ch = ch;
	io->iov_heap = 0;
	io->status = 0;
	return io;
}

static void io_put(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io)
{
	if (io->iov_heap)
		free(io->iov);
	io->next = ch->free_list;
	ch->free_list = io;
}

static void wz_emulate_done(struct zvfs_bdev_io *io, int status);

void zvfs_bdev_io_complete(struct zvfs_bdev_io *io, int status)
{
	struct zvfs_bdev_channel *ch = io->ch;
	zvfs_bdev_cb cb = io->cb;
	void *arg = io->cb_arg;

	if (__builtin_expect(status == -EOPNOTSUPP, 0) &&
	    (io->type == ZVFS_BDEV_IO_WRITE_ZEROES ||
	     (io->type == ZVFS_BDEV_IO_DISCARD && ch->bdev->geo.discard_zeroes))) {
		/*
		 * The target cannot zero by itself: write zero buffers (from
		 * now on, for write_zeroes).  A discard that promised zeroes
		 * keeps its promise the same way.
		 */
		wz_emulate_done(io, status);
		return;
	}
	/* Free first: the callback may submit and reuse this request. */
	io_put(ch, io);
	ch->outstanding--;
	cb(arg, status);
}

void zvfs_bdev_io_defer(struct zvfs_bdev_io *io, int status)
{
	struct zvfs_bdev_channel *ch = io->ch;

	io->status = status;
	io->next = NULL;
	if (ch->deferred_tail)
		ch->deferred_tail->next = io;
	else
		ch->deferred_head = io;
	ch->deferred_tail = io;
}

static int check_range(struct zvfs_bdev *bdev, uint64_t offset, uint64_t len)
{
	uint64_t bs = bdev->geo.block_size;

	if ((offset | len) & (bs - 1))
		return -EINVAL;
	if (offset > bdev->geo.size || len > bdev->geo.size - offset)
		return -ERANGE;
	return 0;
}

/* Validate and copy an iovec into io; returns the total length or -errno. */
static int64_t io_set_iov(struct zvfs_bdev_io *io, const struct iovec *iov, int iovcnt)
{
	const struct zvfs_bdev *bdev = io->ch->bdev;
	uint64_t amask = bdev->geo.buf_align - 1;
	uint64_t bmask = bdev->geo.block_size - 1;
	uint64_t total = 0;

	if (iovcnt < 1 || iovcnt > IOV_MAX)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (((uintptr_t)iov[i].iov_base & amask) || (iov[i].iov_len & bmask) ||
		    !iov[i].iov_len)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	if (iovcnt <= ZVFS_BDEV_IO_INLINE_IOV) {
		io->iov = io->iov_inline;
	} else {
		io->iov = malloc(sizeof(*iov) * (size_t)iovcnt);
		if (!io->iov)
			return -ENOMEM;
		io->iov_heap = 1;
	}
	memcpy(io->iov, iov, sizeof(*iov) * (size_t)iovcnt);
	io->iovcnt = iovcnt;
	return (int64_t)total;
}

/* ---- 5. asynchronous API ------------------------------------------------ */

static int submit(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io)
{
	int rc;

	ch->outstanding++;
	rc = ch->bdev->ops->submit(ch, io);
	if (rc) {
		ch->outstanding--;
		io_put(ch, io);
	}
	return rc;
}

static int rw_submit(struct zvfs_bdev_channel *ch, uint8_t type, const struct iovec *iov,
		     int iovcnt, uint64_t offset, zvfs_bdev_cb cb, void *cb_arg)
{
	struct zvfs_bdev *bdev = ch->bdev;
	struct zvfs_bdev_io *io;
	int64_t len;
	int rc;

	if (type == ZVFS_BDEV_IO_WRITE && bdev->geo.read_only)
		return -EROFS;
	io = io_get(ch);
	if (!io)
		return -ENOMEM;
	len = io_set_iov(io, iov, iovcnt);
	if (len < 0) {
		io_put(ch, io);
		return (int)len;
	}
	rc = check_range(bdev, offset, (uint64_t)len);
	if (rc) {
		io_put(ch, io);
		return rc;
	}
	io->type = type;
	io->offset = offset;
	io->len = (uint64_t)len;
	io->cb = cb;
	io->cb_arg = cb_arg;
	return submit(ch, io);
}

int zvfs_bdev_readv(struct zvfs_bdev_channel *ch, const struct iovec *iov, int iovcnt,
		    uint64_t offset, zvfs_bdev_cb cb, void *cb_arg)
{
	return rw_submit(ch, ZVFS_BDEV_IO_READ, iov, iovcnt, offset, cb, cb_arg);
}

int zvfs_bdev_writev(struct zvfs_bdev_channel *ch, const struct iovec *iov, int iovcnt,
		     uint64_t offset, zvfs_bdev_cb cb, void *cb_arg)
{
	return rw_submit(ch, ZVFS_BDEV_IO_WRITE, iov, iovcnt, offset, cb, cb_arg);
}

int zvfs_bdev_read(struct zvfs_bdev_channel *ch, void *buf, uint64_t len, uint64_t offset,
		   zvfs_bdev_cb cb, void *cb_arg)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return rw_submit(ch, ZVFS_BDEV_IO_READ, &iov, 1, offset, cb, cb_arg);
}

int zvfs_bdev_write(struct zvfs_bdev_channel *ch, const void *buf, uint64_t len, uint64_t offset,
		    zvfs_bdev_cb cb, void *cb_arg)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return rw_submit(ch, ZVFS_BDEV_IO_WRITE, &iov, 1, offset, cb, cb_arg);
}

static int range_submit(struct zvfs_bdev_channel *ch, uint8_t type, uint64_t offset, uint64_t len,
			zvfs_bdev_cb cb, void *cb_arg);

int zvfs_bdev_flush(struct zvfs_bdev_channel *ch, zvfs_bdev_cb cb, void *cb_arg)
{
	return range_submit(ch, ZVFS_BDEV_IO_FLUSH, 0, 0, cb, cb_arg);
}

int zvfs_bdev_write_zeroes(struct zvfs_bdev_channel *ch, uint64_t offset, uint64_t len,
			   zvfs_bdev_cb cb, void *cb_arg)
{
	return range_submit(ch, ZVFS_BDEV_IO_WRITE_ZEROES, offset, len, cb, cb_arg);
}

int zvfs_bdev_discard(struct zvfs_bdev_channel *ch, uint64_t offset, uint64_t len, zvfs_bdev_cb cb,
		      void *cb_arg)
{
	return range_submit(ch, ZVFS_BDEV_IO_DISCARD, offset, len, cb, cb_arg);
}

/* Run deferred completions; returns how many ran. */
static int run_deferred(struct zvfs_bdev_channel *ch)
{
	struct zvfs_bdev_io *io = ch->deferred_head;
	int n = 0;

	if (!io)
		return 0;
	/* Detach the list first: callbacks may defer new requests. */
	ch->deferred_head = ch->deferred_tail = NULL;
	while (io) {
		struct zvfs_bdev_io *next = io->next;

		zvfs_bdev_io_complete(io, io->status);
		io = next;
		n++;
	}
	return n;
}

int zvfs_bdev_poll(struct zvfs_bdev_channel *ch)
{
	int n = run_deferred(ch);
	int rc = ch->bdev->ops->poll(ch, false);

	if (rc < 0)
		return rc;
	return n + rc + run_deferred(ch);
}

int zvfs_bdev_wait(struct zvfs_bdev_channel *ch)
{
	int n = run_deferred(ch);
	int rc;

	if (n || !ch->outstanding)
		return n + (ch->outstanding ? zvfs_bdev_poll(ch) : 0);
	rc = ch->bdev->ops->poll(ch, true);
	if (rc < 0)
		return rc;
	return rc + run_deferred(ch);
}

unsigned zvfs_bdev_outstanding(const struct zvfs_bdev_channel *ch)
{
	return ch->outstanding;
}

/* ---- 6. write-zeroes emulation ------------------------------------------- */

/*
 * A write_zeroes the target could not do natively becomes a series of writes
 * from the device's zero buffer, up to WZ_PARALLEL at once.  The original
 * request stays outstanding until the last write finishes, so the caller
 * sees one completion.
 */
#define WZ_PARALLEL 4

struct wz_state {
	struct zvfs_bdev_io *orig;
	uint64_t next; /* next offset to write */
	uint64_t end;
	unsigned inflight;
	int status;
};

static void wz_step(struct wz_state *st);

static void wz_write_done(void *arg, int status)
{
	struct wz_state *st = arg;

	st->inflight--;
	if (status && !st->status)
		st->status = status;
	wz_step(st);
}

static void wz_step(struct wz_state *st)
{
	struct zvfs_bdev_io *orig = st->orig;
	struct zvfs_bdev_channel *ch = orig->ch;
	struct zvfs_bdev *bdev = ch->bdev;

	while (!st->status && st->next < st->end && st->inflight < WZ_PARALLEL) {
		uint64_t n = st->end - st->next;
		struct iovec iov;
		int rc;

		if (n > ZVFS_BDEV_ZERO_BUF)
			n = ZVFS_BDEV_ZERO_BUF;
		iov.iov_base = bdev->zero_buf;
		iov.iov_len = n;
		rc = rw_submit(ch, ZVFS_BDEV_IO_WRITE, &iov, 1, st->next, wz_write_done, st);
		if (rc) {
			st->status = rc;
			break;
		}
		st->next += n;
		st->inflight++;
	}
	if (st->inflight == 0 && (st->status || st->next >= st->end)) {
		int status = st->status;

		/*
		 * Deferred, not completed: this may run inside the submit call
		 * (first write refused), where no callback may fire.
		 */
		orig->type = ZVFS_BDEV_IO_WRITE;
		free(st);
		zvfs_bdev_io_defer(orig, status);
	}
}

static void wz_start(struct zvfs_bdev_io *io)
{
	struct wz_state *st = calloc(1, sizeof(*st));

	if (!st) {
		io->type = ZVFS_BDEV_IO_WRITE;
		zvfs_bdev_io_defer(io, -ENOMEM);
		return;
	}
	st->orig = io;
	st->next = io->offset;
	st->end = io->offset + io->len;
	wz_step(st);
}

static void wz_emulate_done(struct zvfs_bdev_io *io, int status)
{
	struct zvfs_bdev *bdev = io->ch->bdev;

	(void)status;
	/*
	 * Any thread may learn this first; the flag is only a shortcut (a
	 * thread that misses it gets -EOPNOTSUPP once more and lands here).
	 */
	if (io->type == ZVFS_BDEV_IO_WRITE_ZEROES &&
	    !atomic_exchange_explicit(&bdev->wz_emulate, true, memory_order_relaxed)) {
		ZVFS_INFO("%s: no native write-zeroes; writing zero buffers instead", bdev->name);
	}
	wz_start(io);
}

static int range_submit(struct zvfs_bdev_channel *ch, uint8_t type, uint64_t offset, uint64_t len,
			zvfs_bdev_cb cb, void *cb_arg)
{
	struct zvfs_bdev *bdev = ch->bdev;
	struct zvfs_bdev_io *io;
	int rc;

	if (type != ZVFS_BDEV_IO_FLUSH) {
		if (bdev->geo.read_only)
			return -EROFS;
		/*
		 * An empty range is refused like an empty iovec: passed down it
		 * failed later (fallocate: EINVAL) on some backends only.
		 */
		if (!len)
			return -EINVAL;
		rc = check_range(bdev, offset, len);
		if (rc)
			return rc;
	}
	io = io_get(ch);
	if (!io)
		return -ENOMEM;
	io->type = type;
	io->offset = offset;
	io->len = len;
	io->iov = NULL;
	io->iovcnt = 0;
	io->cb = cb;
	io->cb_arg = cb_arg;
	if (type == ZVFS_BDEV_IO_WRITE_ZEROES &&
	    atomic_load_explicit(&bdev->wz_emulate, memory_order_relaxed)) {
		/* Goes out as writes; counted as one outstanding request. */
		ch->outstanding++;
		wz_start(io);
		return 0;
	}
	return submit(ch, io);
}

/* ---- 7. synchronous API ------------------------------------------------- */

struct sync_wait {
	int status;
	bool done;
};

static void sync_done(void *arg, int status)
{
	struct sync_wait *w = arg;

	w->status = status;
	w->done = true;
}

static int sync_finish(struct zvfs_bdev_channel *ch, int rc, struct sync_wait *w)
{
	if (rc)
		return rc;
	while (!w->done) {
		rc = zvfs_bdev_wait(ch);
		if (rc < 0)
			return rc;
	}
	return w->status;
}

static int rw_sync(struct zvfs_bdev *bdev, uint8_t type, const struct iovec *iov, int iovcnt,
		   uint64_t offset)
{
	struct sync_wait w = {0};
	struct zvfs_bdev_channel *ch;
	int rc = zvfs_bdev_get_channel(bdev, &ch);

	if (rc)
		return rc;
	return sync_finish(ch, rw_submit(ch, type, iov, iovcnt, offset, sync_done, &w), &w);
}

int zvfs_bdev_readv_sync(struct zvfs_bdev *bdev, const struct iovec *iov, int iovcnt,
			 uint64_t offset)
{
	return rw_sync(bdev, ZVFS_BDEV_IO_READ, iov, iovcnt, offset);
}

int zvfs_bdev_writev_sync(struct zvfs_bdev *bdev, const struct iovec *iov, int iovcnt,
			  uint64_t offset)
{
	return rw_sync(bdev, ZVFS_BDEV_IO_WRITE, iov, iovcnt, offset);
}

int zvfs_bdev_read_sync(struct zvfs_bdev *bdev, void *buf, uint64_t len, uint64_t offset)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return zvfs_bdev_readv_sync(bdev, &iov, 1, offset);
}

int zvfs_bdev_write_sync(struct zvfs_bdev *bdev, const void *buf, uint64_t len, uint64_t offset)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return zvfs_bdev_writev_sync(bdev, &iov, 1, offset);
}

static int range_sync(struct zvfs_bdev *bdev, uint8_t type, uint64_t offset, uint64_t len)
{
	struct sync_wait w = {0};
	struct zvfs_bdev_channel *ch;
	int rc = zvfs_bdev_get_channel(bdev, &ch);

	if (rc)
		return rc;
	return sync_finish(ch, range_submit(ch, type, offset, len, sync_done, &w), &w);
}

int zvfs_bdev_flush_sync(struct zvfs_bdev *bdev)
{
	return range_sync(bdev, ZVFS_BDEV_IO_FLUSH, 0, 0);
}

int zvfs_bdev_write_zeroes_sync(struct zvfs_bdev *bdev, uint64_t offset, uint64_t len)
{
	return range_sync(bdev, ZVFS_BDEV_IO_WRITE_ZEROES, offset, len);
}

int zvfs_bdev_discard_sync(struct zvfs_bdev *bdev, uint64_t offset, uint64_t len)
{
	return range_sync(bdev, ZVFS_BDEV_IO_DISCARD, offset, len);
}

/* ---- 8. buffers ----------------------------------------------------------- */

/*
 * The registered arena is one mmap'ed region that the io_uring backend
 * registers with every ring.  A simple first-fit allocator over 4 KiB units
 * serves it; allocations that do not fit fall back to aligned_alloc().
 */
#define ARENA_UNIT    4096u
#define ARENA_DEFAULT (32u << 20)

struct arena {
	pthread_mutex_t lock;
	size_t units;
	uint8_t *used; /* per unit: 0 free, 1 start of allocation, 2 continuation */
	size_t hint;
};

static void arena_init(struct zvfs_bdev *bdev)
{
	struct arena *a = calloc(1, sizeof(*a));
	void *mem;

	if (!a)
		return;
	mem = mmap(NULL, ARENA_DEFAULT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		free(a);
		return;
	}
	a->units = ARENA_DEFAULT / ARENA_UNIT;
	a->used = calloc(a->units, 1);
	if (!a->used) {
		munmap(mem, ARENA_DEFAULT);
		free(a);
		return;
	}
	pthread_mutex_init(&a->lock, NULL);
	bdev->arena = mem;
	bdev->arena_size = ARENA_DEFAULT;
	bdev->arena_state = a;
}

static void arena_fini(struct zvfs_bdev *bdev)
{
	struct arena *a = bdev->arena_state;

	if (!a)
		return;
	munmap(bdev->arena, bdev->arena_size);
	pthread_mutex_destroy(&a->lock);
	free(a->used);
	free(a);
	bdev->arena = NULL;
	bdev->arena_state = NULL;
}

static void *arena_alloc(struct zvfs_bdev *bdev, size_t len)
{
	struct arena *a = bdev->arena_state;
	size_t need = (len + ARENA_UNIT - 1) / ARENA_UNIT;
	void *p = NULL;

	if (!a || !need || need > a->units)
		return NULL;
	pthread_mutex_lock(&a->lock);
	for (size_t pass = 0; pass < 2 && !p; pass++) {
		size_t i = pass ? 0 : a->hint, run = 0;

		for (; i < a->units; i++) {
			run = a->used[i] ? 0 : run + 1;
			if (run == need) {
				size_t start = i + 1 - need;

				a->used[start] = 1;
				memset(a->used + start + 1, 2, need - 1);
				a->hint = i + 1;
				p = (uint8_t *)bdev->arena + start * ARENA_UNIT;
				break;
			}
		}
	}
	pthread_mutex_unlock(&a->lock);
	return p;
}

void *zvfs_bdev_buf_alloc(struct zvfs_bdev *bdev, size_t len)
{
	size_t align = bdev->geo.buf_align;
	void *p = arena_alloc(bdev, len);

	if (p) {
		memset(p, 0, len);
		return p;
	}
	len = (len + align - 1) & ~(align - 1);
	p = aligned_alloc(align, len ? len : align);
	if (p)
		memset(p, 0, len);
	return p;
}

void zvfs_bdev_buf_free(struct zvfs_bdev *bdev, void *buf)
{
	struct arena *a = bdev->arena_state;
	uint8_t *p = buf;

	if (!buf)
		return;
	if (a && p >= (uint8_t *)bdev->arena && p < (uint8_t *)bdev->arena + bdev->arena_size) {
		size_t i = (size_t)(p - (uint8_t *)bdev->arena) / ARENA_UNIT;

		pthread_mutex_lock(&a->lock);
		a->used[i++] = 0;
		while (i < a->units && a->used[i] == 2)
			a->used[i++] = 0;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	free(buf);
}
