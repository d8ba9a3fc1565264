/* SPDX-License-Identifier: MIT */
/*
 * The data path: per-thread channels, requests split at cluster boundaries and issued in
 * parallel, allocation on first write to a thin cluster, deferred completions.
 *
 * Map of this file:
 *   channels      per-thread channel (pthread key), request pool
 *   requests      parent request, piece completions, the deferred list
 *   submit        the one splitting routine behind read/write/write_zeroes/unmap
 *   public calls  async forms, poll/wait, synchronous forms
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_internal.h"

struct bs_req {
	struct zvfs_bs_channel *ch;
	zvfs_bdev_cb cb;
	void *cb_arg;
	int status;	   /* first error wins */
	uint32_t pending;  /* pieces not yet complete, deferred ones included */
	uint32_t deferred; /* pieces completed at the next poll (zero-filled reads, no-ops) */
	bool on_deferred;
	struct bs_req *next; /* free list or deferred list */
};

/* A write piece waiting for the allocation window to grow (done from the next poll). */
struct wait_piece {
	struct wait_piece *next;
	struct bs_req *req;
	struct zvfs_blob *blob;
	uint64_t cl, in;
	int n;
	struct iovec iov[];
};

struct zvfs_bs_channel {
	struct zvfs_bs *bs;
	struct zvfs_bdev_channel *bch;
	struct bs_req *free_reqs;
	struct bs_req *deferred;
	struct wait_piece *waiting, **waiting_tail;
	struct iovec *scratch;
	int scratch_cap;
	struct zvfs_bs_channel *next, *prev; /* in bs->channels */
};

/* ---- channels ---------------------------------------------------------------------------- */

static void channel_free(struct zvfs_bs_channel *ch)
{
	while (ch->free_reqs) {
		struct bs_req *r = ch->free_reqs;

		ch->free_reqs = r->next;
		free(r);
	}
	free(ch->scratch);
	free(ch);
}

static void channel_unlink(struct zvfs_bs_channel *ch)
{
	struct zvfs_bs *bs = ch->bs;

	if (ch->prev)
		ch->prev->next = ch->next;
	else
		bs->channels = ch->next;
	if (ch->next)
		ch->next->prev = ch->prev;
}

/* Thread exit. */
static void channel_destructor(void *arg)
{
	struct zvfs_bs_channel *ch = arg;
	struct zvfs_bs *bs = ch->bs;

	pthread_mutex_lock(&bs->ch_lock);
	channel_unlink(ch);
	pthread_mutex_unlock(&bs->ch_lock);
	channel_free(ch);
}

int bs_channels_init(struct zvfs_bs *bs)
{
	return -pthread_key_create(&bs->ch_key, channel_destructor);
}

void bs_channels_destroy(struct zvfs_bs *bs)
{
	/* no destructor runs for this key after this: free what is left here */
	pthread_key_delete(bs->ch_key);
	pthread_mutex_lock(&bs->ch_lock);
	while (bs->channels) {
		struct zvfs_bs_channel *ch = bs->channels;

		channel_unlink(ch);
		channel_free(ch);
	}
	pthread_mutex_unlock(&bs->ch_lock);
}

int zvfs_bs_get_channel(struct zvfs_bs *bs, struct zvfs_bs_channel **chp)
{
	struct zvfs_bs_channel *ch = pthread_getspecific(bs->ch_key);
	int rc;

	if (ch) {
		*chp = ch;
		return 0;
	}
	/*
	 * The data path allocates clusters of thin blobs without writing metadata until the
	 * next sync_md.  If the store were still marked clean on disk, a crash would skip the
	 * recovery and with it the zeroing of such clusters, which are free again but hold
	 * data.  So the first channel marks the store dirty (a no-op once it is).
	 */
	if (!bs->read_only) {
		rc = bs_mark_dirty(bs);
		if (rc < 0)
			return rc;
	}
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->bs = bs;
	rc = zvfs_bdev_get_channel(bs->bdev, &ch->bch);
	if (rc == 0)
		rc = -pthread_setspecific(bs->ch_key, ch);
	if (rc < 0) {
		free(ch);
		return rc;
	}
	pthread_mutex_lock(&bs->ch_lock);
	ch->next = bs->channels;
	if (ch->next)
		ch->next->prev = ch;
	bs->channels = ch;
	pthread_mutex_unlock(&bs->ch_lock);
	*chp = ch;
	return 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

static struct bs_req *req_get(struct zvfs_bs_channel *ch)
{
	struct bs_req *r = ch->free_reqs;

	if (r)
		ch->free_reqs = r->next;
	else
		r = malloc(sizeof(*r));
	if (r)
		memset(r, 0, sizeof(*r));
	return r;
}

static void req_put(struct bs_req *r)
{
	r->next = r->ch->free_reqs;
	r->ch->free_reqs = r;
}

static void req_complete(struct bs_req *r)
{
	zvfs_bdev_cb cb = r->cb;
	void *arg = r->cb_arg;
	int status = r->status;

	req_put(r); /* before the callback, which may submit again */
	cb(arg, status);
}

static void piece_done(void *arg, int status)
{
	struct bs_req *r = arg;

	if (status < 0 && r->status == 0)
		r->status = status;
	if (--r->pending == 0)
		req_complete(r);
}

struct unmap_piece {
	struct bs_req *req;
	struct zvfs_blob *blob;
	uint64_t cl;
	uint32_t abs;
};

/* A whole thin cluster is zero: now it can leave the map (released at the next sync_md). */
static void unmap_piece_done(void *arg, int status)
{
	struct unmap_piece *p = arg;
	struct bs_req *r = p->req;

	if (status == 0)
		blob_unmap_cluster(p->blob, p->cl, p->abs);
	free(p);
	piece_done(r, status);
}

/* ---- the allocation window ------------------------------------------------------------ */

/*
 * A thin write needs a cluster beyond the durable allocation window: the window must grow
 * (metadata I/O) before the data may land.  A submit cannot do I/O and wait, so the piece
 * is parked and the next poll of this channel grows the window and submits it.
 */
static int iov_slice(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
		     struct iovec *out);

static int wait_for_window(struct zvfs_bs_channel *ch, struct bs_req *r, struct zvfs_blob *blob,
			   const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
			   uint64_t cl, uint64_t in)
{
	struct wait_piece *w = malloc(sizeof(*w) + (size_t)iovcnt * sizeof(struct iovec));

	if (!w)
		return -ENOMEM;
	w->next = NULL;
	w->req = r;
	w->blob = blob;
	w->cl = cl;
	w->in = in;
	w->n = iov_slice(iov, iovcnt, skip, len, w->iov);
	if (!ch->waiting_tail)
		ch->waiting_tail = &ch->waiting;
	*ch->waiting_tail = w;
	ch->waiting_tail = &w->next;
	return 0;
}

static void run_waiting(struct zvfs_bs_channel *ch)
{
	struct wait_piece *list = ch->waiting;

	ch->waiting = NULL;
	ch->waiting_tail = &ch->waiting;
	while (list) {
		struct wait_piece *w = list;
		uint64_t cs = ch->bs->l.cluster_size;
		uint32_t abs = 0;
		int rc;

		list = w->next;
		for (;;) {
			rc = blob_alloc_on_write(w->blob, w->cl, &abs);
			if (rc != -EAGAIN)
				break;
			rc = bs_window_grow(ch->bs, atomic_load(&ch->bs->win_durable));
			if (rc < 0)
				break;
		}
		if (rc == 0)
			rc = zvfs_bdev_writev(ch->bch, w->iov, w->n, abs * cs + w->in, piece_done,
					      w->req);
		if (rc < 0)
			piece_done(w->req, rc); /* from the poll: allowed */
		free(w);
	}
}

/* ---- submit ------------------------------------------------------------------------------ */

enum io_op { IO_READ, IO_WRITE, IO_WZ, IO_UNMAP };

/* The part [skip, skip + len) of an iovec array, into out (at most iovcnt entries). */
static int iov_slice(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
		     struct iovec *out)
{
	int n = 0;

	for (int i = 0; i < iovcnt && len > 0; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		out[n].iov_base = (char *)iov[i].iov_base + skip;
		out[n].iov_len = l - skip < len ? l - skip : len;
		len -= out[n].iov_len;
		skip = 0;
		n++;
	}
	return n;
}

static int submit(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, enum io_op op,
		  const struct iovec *iov, int iovcnt, uint64_t offset, uint64_t len,
		  zvfs_bdev_cb cb, void *cb_arg)
{
	struct zvfs_bs *bs = blob->bs;
	uint64_t cs = bs->l.cluster_size, iou = bs->l.io_unit_size, done = 0, size;
	unsigned submitted = 0;
	struct bs_req *r;
	int rc = 0;

	if (!cb || len == 0 || offset % iou || len % iou)
		return -EINVAL;
	if (op == IO_READ || op == IO_WRITE) {
		uint64_t total = 0;

		if (!iov || iovcnt < 1 || iovcnt > IOV_MAX)
			return -EINVAL;
		for (int i = 0; i < iovcnt; i++)
			total += iov[i].iov_len;
		if (total != len)
			return -EINVAL;
		if (iovcnt > ch->scratch_cap) {
			struct iovec *s = realloc(ch->scratch, (size_t)iovcnt * sizeof(*s));

			if (!s)
				return -ENOMEM;
			ch->scratch = s;
			ch->scratch_cap = iovcnt;
		}
	}
	if (op != IO_READ && blob->data_ro)
		return -EROFS;
	size = atomic_load(&blob->num_clusters) * cs;
	if (offset > size || len > size - offset)
		return -ERANGE;
	r = req_get(ch);
	if (!r)
		return -ENOMEM;
	r->ch = ch;
	r->cb = cb;
	r->cb_arg = cb_arg;
	r->pending = 1; /* held until every piece is submitted */

	while (done < len) {
		uint64_t pos = offset + done, cl = pos / cs, in = pos % cs;
		uint64_t plen = len - done < cs - in ? len - done : cs - in;
		uint32_t abs = blob_map_get(blob, cl);
		bool sent = false;
		int n;

		switch (op) {
		case IO_READ:
			n = iov_slice(iov, iovcnt, done, plen, ch->scratch);
			if (!abs) { /* a hole reads zero; completed at the next poll */
				for (int i = 0; i < n; i++)
					memset(ch->scratch[i].iov_base, 0, ch->scratch[i].iov_len);
				r->deferred++;
				r->pending++;
				break;
			}
			rc = zvfs_bdev_readv(ch->bch, ch->scratch, n, abs * cs + in, piece_done, r);
			sent = true;
			break;
		case IO_WRITE:
			if (!abs) {
				rc = blob_alloc_on_write(blob, cl, &abs);
				if (rc == -EAGAIN) {
					rc = wait_for_window(ch, r, blob, iov, iovcnt, done, plen,
							     cl, in);
					sent = rc == 0;
					break;
				}
				if (rc < 0)
					break;
			}
			n = iov_slice(iov, iovcnt, done, plen, ch->scratch);
			rc = zvfs_bdev_writev(ch->bch, ch->scratch, n, abs * cs + in, piece_done,
					      r);
			sent = true;
			break;
		case IO_WZ:
			/* a hole already reads zero */
			if (abs)
				rc = zvfs_bdev_write_zeroes(ch->bch, abs * cs + in, plen,
							    piece_done, r);
			sent = abs != 0;
			break;
		case IO_UNMAP:
		default:
			if (!abs)
				break;
			sent = true;
			if (blob->thin && in == 0 && plen == cs) {
				struct unmap_piece *p = malloc(sizeof(*p));

				if (!p) {
					rc = -ENOMEM;
					break;
				}
				*p = (struct unmap_piece){
					.req = r, .blob = blob, .cl = cl, .abs = abs};
				if (bs->geo->discard_zeroes)
					rc = zvfs_bdev_discard(ch->bch, abs * cs, cs,
							       unmap_piece_done, p);
				else
					rc = zvfs_bdev_write_zeroes(ch->bch, abs * cs, cs,
								    unmap_piece_done, p);
				if (rc < 0)
					free(p);
			} else {
				rc = zvfs_bdev_write_zeroes(ch->bch, abs * cs + in, plen,
							    piece_done, r);
			}
			break;
		}
		if (rc < 0)
			break;
		if (sent) {
			r->pending++;
			submitted++;
		}
		done += plen;
	}
	if (rc < 0 && submitted == 0) {
		req_put(r); /* nothing will call back: fail the submit */
		return rc;
	}
	if (rc < 0)
		r->status = rc; /* pieces are in flight: report the error through the callback */
	r->pending--;
	if (r->pending == 0 || r->deferred) {
		/* complete from the next poll, never inside the submit */
		r->on_deferred = true;
		r->next = ch->deferred;
		ch->deferred = r;
	}
	return 0;
}

/* ---- public calls ------------------------------------------------------------------------ */

static int run_deferred(struct zvfs_bs_channel *ch)
{
	struct bs_req *list = ch->deferred;
	int n = 0;

	ch->deferred = NULL;
	while (list) {
		struct bs_req *r = list;

		list = r->next;
		r->on_deferred = false;
		r->pending -= r->deferred;
		r->deferred = 0;
		if (r->pending == 0) {
			req_complete(r);
			n++;
		}
	}
	return n;
}

int zvfs_bs_poll(struct zvfs_bs_channel *ch)
{
	int n, rc;

	if (ch->waiting)
		run_waiting(ch);
	n = run_deferred(ch);
	rc = zvfs_bdev_poll(ch->bch);

	return rc < 0 ? rc : n + rc;
}

int zvfs_bs_wait(struct zvfs_bs_channel *ch)
{
	int rc;

	if (ch->deferred || ch->waiting)
		return zvfs_bs_poll(ch);
	rc = zvfs_bdev_wait(ch->bch);
	if (rc < 0)
		return rc;
	return rc + run_deferred(ch);
}

int zvfs_blob_readv(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, const struct iovec *iov,
		    int iovcnt, uint64_t offset, zvfs_bdev_cb cb, void *cb_arg)
{
	uint64_t len = 0;

	for (int i = 0; iov && i < iovcnt; i++)
		len += iov[i].iov_len;
	return submit(blob, ch, IO_READ, iov, iovcnt, offset, len, cb, cb_arg);
}

int zvfs_blob_writev(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, const struct iovec *iov,
		     int iovcnt, uint64_t offset, zvfs_bdev_cb cb, void *cb_arg)
{
	uint64_t len = 0;

	for (int i = 0; iov && i < iovcnt; i++)
		len += iov[i].iov_len;
	return submit(blob, ch, IO_WRITE, iov, iovcnt, offset, len, cb, cb_arg);
}

int zvfs_blob_read(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, void *buf, uint64_t len,
		   uint64_t offset, zvfs_bdev_cb cb, void *cb_arg)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return submit(blob, ch, IO_READ, &iov, 1, offset, len, cb, cb_arg);
}

int zvfs_blob_write(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, const void *buf,
		    uint64_t len, uint64_t offset, zvfs_bdev_cb cb, void *cb_arg)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return submit(blob, ch, IO_WRITE, &iov, 1, offset, len, cb, cb_arg);
}

int zvfs_blob_write_zeroes(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, uint64_t offset,
			   uint64_t len, zvfs_bdev_cb cb, void *cb_arg)
{
	return submit(blob, ch, IO_WZ, NULL, 0, offset, len, cb, cb_arg);
}

int zvfs_blob_unmap(struct zvfs_blob *blob, struct zvfs_bs_channel *ch, uint64_t offset,
		    uint64_t len, zvfs_bdev_cb cb, void *cb_arg)
{
	return submit(blob, ch, IO_UNMAP, NULL, 0, offset, len, cb, cb_arg);
}

/* ---- synchronous forms ------------------------------------------------------------------- */

struct sync_wait {
	bool done;
	int status;
};

static void sync_cb(void *arg, int status)
{
	struct sync_wait *w = arg;

	w->status = status;
	w->done = true;
}

static int sync_io(struct zvfs_blob *blob, enum io_op op, const struct iovec *iov, int iovcnt,
		   uint64_t offset, uint64_t len)
{
	struct sync_wait w = {0};
	struct zvfs_bs_channel *ch;
	int rc;

	rc = zvfs_bs_get_channel(blob->bs, &ch);
	if (rc < 0)
		return rc;
	if (iov)
		for (int i = 0; i < iovcnt; i++)
			len += iov[i].iov_len;
	rc = submit(blob, ch, op, iov, iovcnt, offset, len, sync_cb, &w);
	if (rc < 0)
		return rc;
	while (!w.done) {
		rc = zvfs_bs_wait(ch);
		if (rc < 0)
			return rc;
	}
	return w.status;
}

int zvfs_blob_read_sync(struct zvfs_blob *blob, void *buf, uint64_t len, uint64_t offset)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return sync_io(blob, IO_READ, &iov, 1, offset, 0);
}

int zvfs_blob_write_sync(struct zvfs_blob *blob, const void *buf, uint64_t len, uint64_t offset)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return sync_io(blob, IO_WRITE, &iov, 1, offset, 0);
}

int zvfs_blob_readv_sync(struct zvfs_blob *blob, const struct iovec *iov, int iovcnt,
			 uint64_t offset)
{
	return sync_io(blob, IO_READ, iov, iovcnt, offset, 0);
}

int zvfs_blob_writev_sync(struct zvfs_blob *blob, const struct iovec *iov, int iovcnt,
			  uint64_t offset)
{
	return sync_io(blob, IO_WRITE, iov, iovcnt, offset, 0);
}

int zvfs_blob_write_zeroes_sync(struct zvfs_blob *blob, uint64_t offset, uint64_t len)
{
	return sync_io(blob, IO_WZ, NULL, 0, offset, len);
}

int zvfs_blob_unmap_sync(struct zvfs_blob *blob, uint64_t offset, uint64_t len)
{
	return sync_io(blob, IO_UNMAP, NULL, 0, offset, len);
}
