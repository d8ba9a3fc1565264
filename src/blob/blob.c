/* SPDX-License-Identifier: MIT */
/*
 * Blob handles: create, open (reference counted), close, delete, resize, xattrs, sync_md,
 * cluster-map queries.
 *
 * Map of this file:
 *   handle memory     blob_new / blob_free, the two-level cluster map and its growth
 *   loading           read a blob's chain and extent pages into a handle
 *   sync_md           the metadata write protocol (FORMAT.md sections 12 and 16)
 *   data-path hooks   allocation on write, unmap of whole clusters
 *   public calls      create, open, close, delete, resize, xattrs, getters, next_allocated
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_internal.h"
#include "util/log.h"

#define EPP ZVFS_BS_EXTENTS_PER_EP

static uint32_t nchunks_for(uint64_t nc)
{
	return (uint32_t)((nc + EPP - 1) / EPP);
}

/* ---- handle memory ----------------------------------------------------------------------- */

static struct zvfs_blob *blob_new(struct zvfs_bs *bs, uint32_t root)
{
	struct zvfs_blob *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->bs = bs;
	b->root = root;
	b->id = zvfs_bs_page_to_blobid(root);
	pthread_mutex_init(&b->md_lock, NULL);
	pthread_mutex_init(&b->alloc_lock, NULL);
	return b;
}

static void blob_free(struct zvfs_blob *b)
{
	struct blob_map *m = atomic_load_explicit(&b->map, memory_order_relaxed);

	if (m) {
		for (uint32_t k = 0; k < m->nchunks; k++)
			free(m->chunk[k]);
		free(m);
	}
	while (b->retired) {
		struct blob_map *r = b->retired;

		b->retired = r->retired_next;
		free(r);
	}
	while (b->pending_clusters) {
		struct blob_free *f = b->pending_clusters;

		b->pending_clusters = f->next;
		free(f);
	}
	for (uint32_t i = 0; i < b->nxattrs; i++)
		free(b->xattrs[i].name);
	free(b->xattrs);
	free(b->ep_pages);
	free(b->ep_dirty);
	free(b->chain);
	free(b->pending_eps);
	pthread_mutex_destroy(&b->md_lock);
	pthread_mutex_destroy(&b->alloc_lock);
	free(b);
}

/*
 * Make the map hold at least n chunks (md_lock held, or the handle not yet shared).  The
 * top-level array is replaced by a bigger copy published with a release store; the old one
 * goes to the retired list (a reader may still be looking at it) and is freed at close.
 */
static int blob_map_reserve(struct zvfs_blob *b, uint32_t n)
{
	struct blob_map *old = atomic_load_explicit(&b->map, memory_order_relaxed), *m;
	uint32_t have = old ? old->nchunks : 0;

	if (n <= have)
		return 0;
	if (n > b->ep_cap) {
		uint32_t cap = b->ep_cap * 2 > n ? b->ep_cap * 2 : n;
		uint32_t *ep = calloc(cap, sizeof(*ep));
		uint8_t *dirty = calloc(cap, 1), *old_dirty;

		if (!ep || !dirty) {
			free(ep);
			free(dirty);
			return -ENOMEM;
		}
		if (b->ep_cap)
			memcpy(ep, b->ep_pages, b->ep_cap * sizeof(*ep));
		free(b->ep_pages);
		b->ep_pages = ep;
		pthread_mutex_lock(&b->alloc_lock);
		if (b->ep_cap)
			memcpy(dirty, b->ep_dirty, b->ep_cap);
		old_dirty = b->ep_dirty;
		b->ep_dirty = dirty;
		b->ep_cap = cap;
		pthread_mutex_unlock(&b->alloc_lock);
		free(old_dirty);
	}
	m = calloc(1, sizeof(*m) + n * sizeof(m->chunk[0]));
	if (!m)
		return -ENOMEM;
	for (uint32_t k = 0; k < n; k++) {
		m->chunk[k] = k < have ? old->chunk[k] : calloc(1, sizeof(struct blob_chunk));
		if (!m->chunk[k]) {
			for (uint32_t j = have; j < k; j++)
				free(m->chunk[j]);
			free(m);
			return -ENOMEM;
		}
	}
	m->nchunks = n;
	/* release: the chunks' zeroed contents are visible before the array is */
	atomic_store_explicit(&b->map, m, memory_order_release);
	if (old) {
		old->retired_next = b->retired;
		b->retired = old;
	}
	return 0;
}

static void map_set(struct zvfs_blob *b, uint64_t cl, uint32_t abs)
{
	/* acquire: the data path may set entries while md_lock's holder publishes a new array */
	struct blob_map *m = atomic_load_explicit(&b->map, memory_order_acquire);

	/* release: pairs with the acquire load in blob_map_get() */
	atomic_store_explicit(&m->chunk[cl / EPP]->c[cl % EPP], abs, memory_order_release);
}

/* ---- loading ----------------------------------------------------------------------------- */

static bool xattr_is_snapshot(const struct zvfs_blob_md_xattr *x)
{
	static const char *const names[] = {ZVFS_BS_XATTR_SNAP, ZVFS_BS_XATTR_SNAPTMP,
					    ZVFS_BS_XATTR_SNAPRM, ZVFS_BS_XATTR_EXTSNAP};

	if (!x->internal)
		return false;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(x->name, names[i]) == 0)
			return true;
	return false;
}

/* Read the extent pages of @md into the map of @b. */
static int blob_load_eps(struct zvfs_blob *b, const struct zvfs_blob_md *md)
{
	struct zvfs_bs *bs = b->bs;
	uint32_t mps = bs->l.md_page_size, group = 64, n = md->num_extent_pages;
	void *bufs[64];
	uint64_t offs[64];
	uint32_t ks[64];
	uint8_t *area;
	int rc = 0;

	area = zvfs_bdev_buf_alloc(bs->bdev, (size_t)group * mps);
	if (!area)
		return -ENOMEM;
	for (uint32_t k = 0; k < n && rc == 0;) {
		uint32_t cnt = 0;

		for (; k < n && cnt < group; k++) {
			uint32_t e = md->extent_pages[k];

			b->ep_pages[k] = e;
			if (e == 0)
				continue;
			if (e >= bs->l.md_len) {
				rc = -EUCLEAN;
				break;
			}
			bufs[cnt] = area + (size_t)cnt * mps;
			offs[cnt] = bs_md_offset(bs, e);
			ks[cnt++] = k;
		}
		if (rc == 0)
			rc = bs_io_batch_read(bs, bufs, offs, cnt, mps);
		for (uint32_t i = 0; i < cnt && rc == 0; i++) {
			const struct zvfs_bs_desc_extent_page *ep;
			uint32_t count;

			rc = bs_ep_decode(bufs[i], ks[i], md->num_clusters, &ep, &count);
			for (uint32_t j = 0; j < count && rc == 0; j++) {
				uint32_t c = ep->cluster_idx[j];

				if (c == 0)
					continue;
				if (c < bs->l.md_clusters || c >= bs->l.total_clusters) {
					rc = -EUCLEAN;
					break;
				}
				map_set(b, (uint64_t)ks[i] * EPP + j, c);
				b->allocated++;
			}
		}
	}
	zvfs_bdev_buf_free(bs->bdev, area);
	return rc;
}

static int blob_load(struct zvfs_bs *bs, zvfs_blob_id id, struct zvfs_blob **bp)
{
	uint32_t root = (uint32_t)id, idx, seq = 0, *chain = NULL, nchain = 0, cap = 0;
	const char *what = "reading";
	struct zvfs_blob_md md;
	struct zvfs_blob *b = NULL;
	bool data_ro, md_ro;
	void *buf;
	int rc;

	if ((id >> 32) != 1 || root >= bs->l.md_len)
		return -ENOENT;
	buf = bs_md_buf(bs);
	if (!buf)
		return -ENOMEM;
	zvfs_blob_md_init(&md);
	for (idx = root;;) {
		const struct zvfs_bs_md_page *p = buf;

		rc = bs_md_read(bs, idx, buf);
		if (rc < 0)
			goto err_free;
		what = "chain page";
		rc = zvfs_bs_md_page_check(p, id, seq, bs->l.md_len);
		if (rc < 0)
			goto err_free;
		what = "descriptors";
		rc = zvfs_blob_md_parse_page(&md, p);
		if (rc < 0)
			goto err_free;
		if (p->next == ZVFS_BS_INVALID_MD_PAGE)
			break;
		idx = p->next;
		what = "chain loop";
		if (++seq > bs->l.md_len) {
			rc = -EUCLEAN;
			goto err_free;
		}
		if (nchain == cap) {
			uint32_t *nc;

			cap = cap ? cap * 2 : 4;
			nc = realloc(chain, cap * sizeof(*chain));
			if (!nc) {
				rc = -ENOMEM;
				goto err_free;
			}
			chain = nc;
		}
		chain[nchain++] = idx;
	}
	what = "extent map";
	rc = zvfs_blob_md_parse_finish(&md);
	if (rc < 0)
		goto err_free;
	what = "flags";
	rc = zvfs_blob_md_open_mode(&md.flags, &data_ro, &md_ro);
	if (rc == 0 && (md.flags.invalid & ZVFS_BS_IFLAG_EXTERNAL_SNAPSHOT))
		rc = -EOPNOTSUPP;
	for (uint32_t i = 0; i < md.num_xattrs && rc == 0; i++)
		if (xattr_is_snapshot(&md.xattrs[i]))
			rc = -EOPNOTSUPP; /* snapshots and clones are not supported */
	if (rc < 0)
		goto err_free;

	rc = -ENOMEM;
	b = blob_new(bs, root);
	if (!b)
		goto err_free;
	b->flags = md.flags;
	b->thin = (md.flags.invalid & ZVFS_BS_IFLAG_THIN_PROV) != 0;
	b->data_ro = data_ro || bs->read_only;
	b->md_ro = md_ro || data_ro || bs->read_only;
	rc = blob_map_reserve(b, nchunks_for(md.num_clusters));
	if (rc < 0)
		goto err_free;
	what = "extent pages";
	if (md.extent_table) {
		rc = blob_load_eps(b, &md);
		if (rc < 0)
			goto err_free;
	} else {
		uint64_t cl = 0;

		for (uint32_t k = 0; k < md.num_runs; k++) {
			for (uint32_t j = 0; j < md.runs[k].length; j++, cl++) {
				uint32_t c = md.runs[k].cluster ? md.runs[k].cluster + j : 0;

				if (c && (c < bs->l.md_clusters || c >= bs->l.total_clusters)) {
					rc = -EUCLEAN;
					goto err_free;
				}
				if (c) {
					map_set(b, cl, c);
					b->allocated++;
				}
			}
		}
		/* an RLE blob is rewritten with an extent table at its next sync */
		for (uint32_t k = 0; k < nchunks_for(md.num_clusters); k++)
			b->ep_dirty[k] = 1;
		b->md_dirty = true;
	}
	b->num_clusters = md.num_clusters;
	b->xattrs = md.xattrs;
	b->nxattrs = md.num_xattrs;
	b->xattr_cap = md.xattr_cap;
	md.xattrs = NULL;
	md.num_xattrs = 0;
	b->chain = chain;
	b->nchain = nchain;
	zvfs_blob_md_free(&md);
	bs_buf_free(bs, buf);
	*bp = b;
	return 0;

err_free:
	if (rc != -ENOENT && rc != -ENOMEM)
		ZVFS_WARN("blob 0x%" PRIx64 ": %s: %s (%d)", id, what,
			  rc == -EBADMSG      ? "checksum mismatch"
			  : rc == -EOPNOTSUPP ? "unsupported (snapshot, clone or unknown flags)"
					      : "corrupt",
			  rc);
	/* The chain array passes to the handle only on success. */
	if (b)
		blob_free(b);
	free(chain);
	zvfs_blob_md_free(&md);
	bs_buf_free(bs, buf);
	return rc;
}

/* ---- sync_md ----------------------------------------------------------------------------- */

static bool blob_needs_sync(struct zvfs_blob *b)
{
	uint32_t n = nchunks_for(atomic_load(&b->num_clusters));
	bool dirty = b->md_dirty || b->npending_eps > 0;

	pthread_mutex_lock(&b->alloc_lock);
	dirty = dirty || b->pending_clusters != NULL;
	for (uint32_t k = 0; k < n && !dirty; k++)
		dirty = b->ep_dirty[k] != 0;
	pthread_mutex_unlock(&b->alloc_lock);
	return dirty;
}

static bool blob_has_internal(const struct zvfs_blob *b)
{
	for (uint32_t i = 0; i < b->nxattrs; i++)
		if (b->xattrs[i].internal)
			return true;
	return false;
}

struct sync_state {
	uint32_t *dk; /* dirty chunk indices */
	uint32_t ndk;
	uint32_t *ents;	    /* their entries, EPP each */
	uint32_t *repl_k;   /* chunks whose extent page was replaced ... */
	uint32_t *repl_old; /* ... and their old page (0 = none) */
	uint32_t nrepl;
	uint32_t *idx; /* chain page indices, idx[0] = root */
	uint32_t np;
	uint32_t nidx_alloc; /* chain pages allocated so far (idx[1..]) */
	struct blob_free *pend;
	uint8_t *slots; /* page slots for writing */
	struct zvfs_bs_md_page *pages;
	uint32_t eps_written; /* extent pages sync_eps() wrote (they need the pre-root flush) */
	int (*hook)(void *);  /* relaxed sync: the caller's wait for its data, before a flush */
	void *hook_arg;
};

/* Run the caller's hook once, before the first flush that must cover its data. */
static int sync_run_hook(struct sync_state *s)
{
	int (*hook)(void *) = s->hook;

	if (!hook)
		return 0;
	s->hook = NULL;
	return hook(s->hook_arg);
}

/* Give the cluster frees taken by the sync back to the blob (released by a later sync). */
static void sync_keep_pending(struct zvfs_blob *b, struct sync_state *s)
{
	pthread_mutex_lock(&b->alloc_lock);
	while (s->pend) {
		struct blob_free *f = s->pend;

		s->pend = f->next;
		f->next = b->pending_clusters;
		b->pending_clusters = f;
	}
	pthread_mutex_unlock(&b->alloc_lock);
}

/* Put the sync back as it was before it started (nothing was committed). */
static void sync_undo(struct zvfs_blob *b, struct sync_state *s)
{
	struct zvfs_bs *bs = b->bs;

	for (uint32_t i = 0; i < s->nrepl; i++) {
		uint32_t k = s->repl_k[i];

		if (b->ep_pages[k] && b->ep_pages[k] != s->repl_old[i])
			bs_free_md_page(bs, b->ep_pages[k]);
		b->ep_pages[k] = s->repl_old[i];
	}
	for (uint32_t i = 1; i <= s->nidx_alloc; i++)
		bs_free_md_page(bs, s->idx[i]);
	pthread_mutex_lock(&b->alloc_lock);
	for (uint32_t i = 0; i < s->ndk; i++)
		if (s->dk[i] < b->ep_cap)
			b->ep_dirty[s->dk[i]] = 1;
	pthread_mutex_unlock(&b->alloc_lock);
	sync_keep_pending(b, s);
}

/* Take the dirty extent pages' contents and the pending cluster frees (under alloc_lock). */
static int sync_snapshot(struct zvfs_blob *b, struct sync_state *s, uint64_t nc)
{
	uint32_t nep = nchunks_for(nc), n = 0;

	pthread_mutex_lock(&b->alloc_lock);
	for (uint32_t k = 0; k < nep; k++)
		n += b->ep_dirty[k] != 0;
	if (n) {
		s->dk = malloc(n * sizeof(*s->dk));
		s->ents = malloc((size_t)n * EPP * sizeof(*s->ents));
		s->repl_k = malloc(n * sizeof(*s->repl_k));
		s->repl_old = malloc(n * sizeof(*s->repl_old));
		if (!s->dk || !s->ents || !s->repl_k || !s->repl_old) {
			pthread_mutex_unlock(&b->alloc_lock);
			return -ENOMEM;
		}
	}
	for (uint32_t k = 0; k < nep; k++) {
		if (!b->ep_dirty[k])
			continue;
		b->ep_dirty[k] = 0;
		for (uint32_t j = 0; j < EPP; j++)
			s->ents[(size_t)s->ndk * EPP + j] = blob_map_get(b, (uint64_t)k * EPP + j);
		s->dk[s->ndk++] = k;
	}
	for (uint32_t k = nep; k < b->ep_cap; k++)
		b->ep_dirty[k] = 0; /* beyond the end after a shrink */
	s->pend = b->pending_clusters;
	b->pending_clusters = NULL;
	pthread_mutex_unlock(&b->alloc_lock);
	return 0;
}

/*
 * Write the dirty extent pages, each to a FRESH md page (like chain pages); the old pages are
 * released after the commit.  SPDK rewrites extent pages in place, but then a crash between
 * that write and the root leaves the old root with a new extent page: after a shrink the
 * synced clusters past the new end would be lost, after a grow the page would not even
 * match the old size.  Copy-on-write keeps the old root's view intact until the commit.
 */
static int sync_eps(struct zvfs_blob *b, struct sync_state *s, uint64_t nc)
{
	struct zvfs_bs *bs = b->bs;
	uint32_t mps = bs->l.md_page_size, nw = 0;
	void **bufs = NULL;
	uint64_t *offs = NULL;
	uint8_t *area = NULL;
	int rc = 0;

	if (s->ndk == 0)
		return 0;
	area = zvfs_bdev_buf_alloc(bs->bdev, (size_t)s->ndk * mps);
	bufs = malloc(s->ndk * sizeof(*bufs));
	offs = malloc(s->ndk * sizeof(*offs));
	if (!area || !bufs || !offs) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (uint32_t i = 0; i < s->ndk; i++) {
		uint32_t k = s->dk[i], count = (uint32_t)(nc - (uint64_t)k * EPP), old;
		const uint32_t *e = s->ents + (size_t)i * EPP;
		bool any = false;

		if (count > EPP)
			count = EPP;
		for (uint32_t j = 0; j < count && !any; j++)
			any = e[j] != 0;
		old = b->ep_pages[k];
		if (!any && b->thin) {
			/* nothing allocated: the extent table says 0 (unallocated page) */
			if (old) {
				s->repl_k[s->nrepl] = k;
				s->repl_old[s->nrepl++] = old;
				b->ep_pages[k] = 0;
			}
			continue;
		}
		rc = bs_alloc_md_page(bs, 1, &b->ep_pages[k]);
		if (rc < 0)
			goto out_free;
		s->repl_k[s->nrepl] = k;
		s->repl_old[s->nrepl++] = old;
		bufs[nw] = area + (size_t)nw * mps;
		rc = zvfs_bs_extent_page_encode(bufs[nw], b->id, k, e, count);
		if (rc < 0)
			goto out_free;
		offs[nw++] = bs_md_offset(bs, b->ep_pages[k]);
	}
	rc = bs_io_batch_write(bs, bufs, offs, nw, mps);
	if (rc == 0)
		s->eps_written = nw;
out_free:
	bs_buf_free(bs, area);
	free(bufs);
	free(offs);
	return rc;
}

/* Serialize the chain to fresh pages (root in place) and write it: the commit point. */
static int sync_chain(struct zvfs_blob *b, struct sync_state *s, uint64_t nc, bool *committed)
{
	struct zvfs_bs *bs = b->bs;
	uint32_t mps = bs->l.md_page_size;
	struct zvfs_blob_md md;
	void **bufs = NULL;
	uint64_t *offs = NULL;
	int rc;

	zvfs_blob_md_init(&md);
	md.has_flags = true;
	md.flags = b->flags;
	md.flags.invalid &= ~(ZVFS_BS_IFLAG_THIN_PROV | ZVFS_BS_IFLAG_INTERNAL_XATTR);
	md.flags.invalid |= ZVFS_BS_IFLAG_EXTENT_TABLE;
	if (b->thin)
		md.flags.invalid |= ZVFS_BS_IFLAG_THIN_PROV;
	if (blob_has_internal(b))
		md.flags.invalid |= ZVFS_BS_IFLAG_INTERNAL_XATTR;
	rc = zvfs_blob_md_set_extent_table(&md, nc, b->ep_pages);
	if (rc < 0)
		goto out_free;
	md.xattrs = b->xattrs; /* borrowed: given back before zvfs_blob_md_free() */
	md.num_xattrs = b->nxattrs;
	rc = zvfs_blob_md_num_pages(&md, &s->np);
	if (rc < 0)
		goto out_free;
	s->idx = malloc(s->np * sizeof(*s->idx));
	s->pages = malloc((size_t)s->np * sizeof(*s->pages));
	s->slots = zvfs_bdev_buf_alloc(bs->bdev, (size_t)s->np * mps);
	bufs = malloc(s->np * sizeof(*bufs));
	offs = malloc(s->np * sizeof(*offs));
	if (!s->idx || !s->pages || !s->slots || !bufs || !offs) {
		rc = -ENOMEM;
		goto out_free;
	}
	s->idx[0] = b->root;
	for (uint32_t k = 1; k < s->np; k++) {
		rc = bs_alloc_md_page(bs, 1, &s->idx[k]);
		if (rc < 0)
			goto out_free;
		s->nidx_alloc = k;
	}
	rc = zvfs_blob_md_serialize(&md, b->id, s->idx, s->np, s->pages);
	if (rc < 0)
		goto out_free;
	for (uint32_t k = 0; k < s->np; k++) {
		bufs[k] = s->slots + (size_t)k * mps; /* tail of a larger slot stays zero */
		memcpy(bufs[k], &s->pages[k], sizeof(s->pages[k]));
		offs[k] = bs_md_offset(bs, s->idx[k]);
	}
	/*
	 * New chain pages (and the extent pages written before) durable, then the root.  When
	 * there are none -- a one-page chain whose only change is an xattr, such as a file's
	 * size after an append -- nothing was written since the data flush in
	 * blob_sync_locked(), and a second flush would only cost a device round trip (an
	 * fdatasync paid three flushes instead of two).
	 */
	if (s->np > 1 || s->eps_written) {
		rc = bs_io_batch_write(bs, bufs + 1, offs + 1, s->np - 1, mps);
		if (rc == 0)
			rc = sync_run_hook(s);
		if (rc == 0)
			rc = bs_flush(bs);
		if (rc < 0)
			goto out_free;
	}
	*committed = true; /* from here on the root may be on disk: never undo */
	rc = zvfs_bdev_write_sync(bs->bdev, bufs[0], mps, offs[0]);
	if (rc == 0)
		rc = sync_run_hook(s);
	if (rc == 0)
		rc = bs_flush(bs);
out_free:
	md.xattrs = NULL;
	md.num_xattrs = 0;
	zvfs_blob_md_free(&md);
	free(bufs);
	free(offs);
	return rc;
}

/* After the commit: zero and release the old chain, dropped extent pages, freed clusters. */
static void sync_release(struct zvfs_blob *b, struct sync_state *s)
{
	struct zvfs_bs *bs = b->bs;
	uint32_t *cl = NULL, ncl = 0, nold = 0;
	int rc;

	/* replaced extent pages join the ones a shrink dropped */
	for (uint32_t i = 0; i < s->nrepl; i++)
		if (s->repl_old[i])
			s->repl_old[nold++] = s->repl_old[i];
	rc = bs_zero_md_pages(bs, b->chain, b->nchain);
	if (rc == 0)
		rc = bs_zero_md_pages(bs, b->pending_eps, b->npending_eps);
	if (rc == 0)
		rc = bs_zero_md_pages(bs, s->repl_old, nold);
	/* a failed zeroing only leaves stale pages that no root reaches: recovery skips them */
	if (rc < 0)
		ZVFS_DEBUG("blob 0x%" PRIx64 ": zeroing old md pages failed (%d)", b->id, rc);
	for (uint32_t i = 0; i < b->nchain; i++)
		bs_free_md_page(bs, b->chain[i]);
	for (uint32_t i = 0; i < b->npending_eps; i++)
		bs_free_md_page(bs, b->pending_eps[i]);
	for (uint32_t i = 0; i < nold; i++)
		bs_free_md_page(bs, s->repl_old[i]);
	b->npending_eps = 0;
	free(b->chain);
	b->nchain = s->np - 1;
	b->chain = malloc((b->nchain ? b->nchain : 1) * sizeof(*b->chain));
	if (b->chain)
		memcpy(b->chain, s->idx + 1, b->nchain * sizeof(*b->chain));
	else
		b->nchain = 0, bs->needs_recovery = true; /* old pages leak until a recovery */

	for (struct blob_free *f = s->pend; f; f = f->next)
		ncl++;
	if (ncl)
		cl = malloc(ncl * sizeof(*cl));
	if (cl) {
		ncl = 0;
		for (struct blob_free *f = s->pend; f; f = f->next)
			cl[ncl++] = f->cluster;
		/* clusters are zero whenever they are free */
		rc = bs_zero_clusters(bs, cl, ncl);
		if (rc == 0)
			for (uint32_t i = 0; i < ncl; i++)
				bs_free_cluster(bs, cl[i]);
		else
			ZVFS_WARN("blob 0x%" PRIx64 ": zeroing freed clusters failed (%d); they "
				  "stay allocated until the next recovery",
				  b->id, rc);
		if (rc < 0)
			bs->needs_recovery = true;
		free(cl);
	}
	while (s->pend) {
		struct blob_free *f = s->pend;

		s->pend = f->next;
		free(f);
	}
}

static int blob_sync_locked(struct zvfs_blob *b, bool *committed_out, bool relaxed,
			    int (*hook)(void *), void *hook_arg)
{
	struct zvfs_bs *bs = b->bs;
	struct sync_state s = {.hook = hook, .hook_arg = hook_arg};
	bool committed = false;
	uint64_t nc;
	int rc;

	if (bs->read_only) {
		rc = sync_run_hook(&s);
		return blob_needs_sync(b) ? -EROFS : rc;
	}
	if (!blob_needs_sync(b)) {
		rc = sync_run_hook(&s);
		/* still an fsync for overwrites of allocated clusters */
		return rc < 0 ? rc : bs_flush(bs);
	}
	/*
	 * (1) store dirty on disk; (2) data that the metadata publishes durable -- unless the
	 * caller accepts metadata landing before its data (relaxed: see blob.h), which saves a
	 * device round trip on every fsync that only changes the root page.
	 */
	rc = bs_mark_dirty(bs);
	if (rc == 0 && !relaxed)
		rc = bs_flush(bs);
	if (rc < 0) {
		sync_run_hook(&s);
		return rc;
	}
	nc = atomic_load(&b->num_clusters);
	rc = sync_snapshot(b, &s, nc);
	/* (3) extent pages, (4) the chain and the root */
	if (rc == 0)
		rc = sync_eps(b, &s, nc);
	if (rc == 0)
		rc = sync_chain(b, &s, nc, &committed);
	if (rc == 0) {
		/* (5) release what the old metadata referenced */
		sync_release(b, &s);
		b->md_dirty = false;
	} else if (!committed) {
		sync_undo(b, &s);
	} else {
		/*
		 * The root may or may not be on disk: keep both the old and the new pages and the
		 * freed clusters allocated (a recovery sorts them out) and sync again later.
		 */
		ZVFS_ERR("blob 0x%" PRIx64 ": writing the root page failed (%d)", b->id, rc);
		bs->needs_recovery = true;
		sync_keep_pending(b, &s);
		b->md_dirty = true;
	}
	if (s.hook) {
		/* a failure before any flush: the caller's data still has to be waited for */
		int hrc = sync_run_hook(&s);

		if (rc == 0)
			rc = hrc;
	}
	if (committed_out)
		*committed_out = committed;
	free(s.dk);
	free(s.ents);
	free(s.repl_k);
	free(s.repl_old);
	free(s.idx);
	free(s.pages);
	bs_buf_free(bs, s.slots);
	return rc;
}

int zvfs_blob_sync_md(struct zvfs_blob *blob)
{
	int rc;

	pthread_mutex_lock(&blob->md_lock);
	rc = blob_sync_locked(blob, NULL, false, NULL, NULL);
	pthread_mutex_unlock(&blob->md_lock);
	return rc;
}

int zvfs_blob_sync_md_relaxed(struct zvfs_blob *blob, int (*before_flush)(void *), void *arg)
{
	int rc;

	pthread_mutex_lock(&blob->md_lock);
	rc = blob_sync_locked(blob, NULL, true, before_flush, arg);
	pthread_mutex_unlock(&blob->md_lock);
	return rc;
}

void blob_free_handle(struct zvfs_blob *b)
{
	blob_free(b);
}

/* ---- data-path hooks --------------------------------------------------------------------- */

int blob_alloc_on_write(struct zvfs_blob *b, uint64_t cl, uint32_t *abs)
{
	uint32_t c;
	int rc;

	pthread_mutex_lock(&b->alloc_lock);
	c = blob_map_get(b, cl); /* another thread may have allocated it meanwhile */
	if (c) {
		*abs = c;
		rc = 0;
		goto out_unlock;
	}
	if (cl >= atomic_load(&b->num_clusters)) {
		rc = -ERANGE;
		goto out_unlock;
	}
	rc = bs_alloc_cluster(b->bs, &c);
	if (rc < 0)
		goto out_unlock;
	if (c >= atomic_load(&b->bs->win_durable)) {
		/* outside the durable window: the caller grows it (I/O) and tries again */
		bs_free_cluster(b->bs, c);
		rc = -EAGAIN;
		goto out_unlock;
	}
	map_set(b, cl, c);
	b->ep_dirty[cl / EPP] = 1;
	b->allocated++;
	*abs = c;
out_unlock:
	pthread_mutex_unlock(&b->alloc_lock);
	return rc;
}

void blob_unmap_cluster(struct zvfs_blob *b, uint64_t cl, uint32_t abs)
{
	struct blob_free *f = malloc(sizeof(*f));

	pthread_mutex_lock(&b->alloc_lock);
	if (f && blob_map_get(b, cl) == abs) {
		map_set(b, cl, 0);
		b->ep_dirty[cl / EPP] = 1;
		b->allocated--;
		f->cluster = abs;
		f->next = b->pending_clusters;
		b->pending_clusters = f;
		f = NULL;
	}
	pthread_mutex_unlock(&b->alloc_lock);
	free(f); /* without memory (or after a race) the cluster simply stays mapped */
}

/* ---- xattr helpers ----------------------------------------------------------------------- */

static int xattr_find(const struct zvfs_blob *b, const char *name, bool internal)
{
	for (uint32_t i = 0; i < b->nxattrs; i++)
		if (b->xattrs[i].internal == internal && strcmp(b->xattrs[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

static int xattr_check(const char *name, uint16_t len)
{
	size_t nl = name ? strlen(name) : 0;

	if (nl == 0 || nl > UINT16_MAX)
		return -EINVAL;
	if (nl + len > ZVFS_BS_XATTR_MAX_NAME_VALUE)
		return -E2BIG;
	return 0;
}

static int xattr_set_locked(struct zvfs_blob *b, const char *name, const void *value, uint16_t len,
			    bool internal)
{
	size_t nl = strlen(name);
	int i = xattr_find(b, name, internal);
	char *buf = malloc(nl + 1 + len);

	if (!buf)
		return -ENOMEM;
	memcpy(buf, name, nl + 1);
	if (len)
		memcpy(buf + nl + 1, value, len);
	if (i < 0) {
		if (b->nxattrs == b->xattr_cap) {
			uint32_t cap = b->xattr_cap ? b->xattr_cap * 2 : 4;
			struct zvfs_blob_md_xattr *nx = realloc(b->xattrs, cap * sizeof(*nx));

			if (!nx) {
				free(buf);
				return -ENOMEM;
			}
			b->xattrs = nx;
			b->xattr_cap = cap;
		}
		i = (int)b->nxattrs++;
	} else {
		free(b->xattrs[i].name);
	}
	b->xattrs[i].name = buf;
	b->xattrs[i].value = len ? (uint8_t *)buf + nl + 1 : NULL;
	b->xattrs[i].name_len = (uint16_t)nl;
	b->xattrs[i].value_len = len;
	b->xattrs[i].internal = internal;
	b->md_dirty = true;
	return 0;
}

/* ---- public calls ------------------------------------------------------------------------ */

void zvfs_blob_opts_init(struct zvfs_blob_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
}

/* Release every cluster of a handle that never became (or no longer is) durable. */
static void blob_release_clusters(struct zvfs_blob *b)
{
	uint64_t nc = atomic_load(&b->num_clusters);

	for (uint64_t cl = 0; cl < nc; cl++) {
		uint32_t c = blob_map_get(b, cl);

		if (c)
			bs_free_cluster(b->bs, c);
	}
}

static int blob_grow_thick(struct zvfs_blob *b, uint64_t from, uint64_t to)
{
	uint64_t top = 0;
	int rc = 0;

	for (uint64_t cl = from; cl < to && rc == 0; cl++) {
		uint32_t c;

		rc = bs_alloc_cluster(b->bs, &c);
		if (rc < 0)
			break;
		map_set(b, cl, c);
		b->allocated++;
		if (c > top)
			top = c;
	}
	/* the new clusters get data once the blob is published: the window must cover them */
	if (rc == 0 && to > from)
		rc = bs_window_grow(b->bs, top);
	if (rc < 0) {
		for (uint64_t j = from; j < to; j++) {
			uint32_t c = blob_map_get(b, j);

			if (!c)
				continue;
			bs_free_cluster(b->bs, c);
			map_set(b, j, 0);
			b->allocated--;
		}
	}
	return rc;
}

/* Mark the extent pages covering clusters [from, to) and the old last page dirty. */
static void mark_eps_dirty(struct zvfs_blob *b, uint64_t from, uint64_t to)
{
	pthread_mutex_lock(&b->alloc_lock);
	for (uint64_t k = from / EPP; k < nchunks_for(to); k++)
		b->ep_dirty[k] = 1;
	pthread_mutex_unlock(&b->alloc_lock);
}

int zvfs_blob_create(struct zvfs_bs *bs, const struct zvfs_blob_opts *opts, zvfs_blob_id *id)
{
	struct zvfs_blob *b;
	bool committed = false;
	uint32_t root;
	int rc;

	if (bs->read_only)
		return -EROFS;
	if (opts->num_clusters > ZVFS_BS_MAX_BLOB_CLUSTERS)
		return -EINVAL;
	for (size_t i = 0; i < opts->nxattrs; i++) {
		rc = xattr_check(opts->xattrs[i].name, opts->xattrs[i].value_len);
		if (rc < 0)
			return rc;
	}
	rc = bs_claim_blobid(bs, &root);
	if (rc < 0)
		return rc;
	b = blob_new(bs, root);
	if (!b) {
		rc = -ENOMEM;
		goto err_release_id;
	}
	b->thin = opts->thin;
	b->md_dirty = true;
	for (size_t i = 0; i < opts->nxattrs; i++) {
		rc = xattr_set_locked(b, opts->xattrs[i].name, opts->xattrs[i].value,
				      opts->xattrs[i].value_len, false);
		if (rc < 0)
			goto err_free_blob;
	}
	rc = blob_map_reserve(b, nchunks_for(opts->num_clusters));
	if (rc < 0)
		goto err_free_blob;
	if (!b->thin) {
		rc = blob_grow_thick(b, 0, opts->num_clusters);
		if (rc < 0)
			goto err_free_blob;
		mark_eps_dirty(b, 0, opts->num_clusters);
	}
	b->num_clusters = opts->num_clusters;
	pthread_mutex_lock(&b->md_lock);
	rc = blob_sync_locked(b, &committed, false, NULL, NULL);
	pthread_mutex_unlock(&b->md_lock);
	if (rc < 0 && committed) {
		/*
		 * The root may be on disk: keep its page, pages and clusters allocated (not its
		 * id: the blob is not listed) until the recovery that needs_recovery forces.
		 */
		bs_set_blobid(bs, root, false);
		blob_free(b);
		return rc;
	}
	if (rc < 0) /* nothing committed: sync_undo() freed the new pages */
		goto err_release_clusters;
	*id = b->id;
	blob_free(b);
	return 0;

err_release_clusters:
	blob_release_clusters(b);
err_free_blob:
	blob_free(b);
err_release_id:
	bs_release_blobid(bs, root);
	return rc;
}

static struct zvfs_blob **open_slot(struct zvfs_bs *bs, uint32_t root)
{
	struct zvfs_blob **pp = &bs->open[root % BS_OPEN_BUCKETS];

	while (*pp && (*pp)->root != root)
		pp = &(*pp)->hnext;
	return pp;
}

int zvfs_blob_open(struct zvfs_bs *bs, zvfs_blob_id id, struct zvfs_blob **blobp)
{
	uint32_t root = (uint32_t)id;
	struct zvfs_blob *b, **pp;
	int rc;

	if ((id >> 32) != 1 || root >= bs->l.md_len || id == bs->win_id)
		return -ENOENT;
	pthread_mutex_lock(&bs->open_lock);
	pp = open_slot(bs, root);
	if (*pp) {
		(*pp)->refs++;
		*blobp = *pp;
		pthread_mutex_unlock(&bs->open_lock);
		return 0;
	}
	pthread_mutex_unlock(&bs->open_lock);
	if (!bs_blobid_used(bs, root))
		return -ENOENT;
	rc = blob_load(bs, id, &b);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&bs->open_lock);
	pp = open_slot(bs, root);
	if (*pp) { /* another thread opened it meanwhile */
		(*pp)->refs++;
		*blobp = *pp;
		pthread_mutex_unlock(&bs->open_lock);
		blob_free(b);
		return 0;
	}
	if (!bs_blobid_used(bs, root)) { /* deleted meanwhile */
		pthread_mutex_unlock(&bs->open_lock);
		blob_free(b);
		return -ENOENT;
	}
	b->refs = 1;
	*pp = b;
	bs->open_count++;
	pthread_mutex_unlock(&bs->open_lock);
	*blobp = b;
	return 0;
}

int zvfs_blob_close(struct zvfs_blob *blob)
{
	struct zvfs_bs *bs = blob->bs;
	bool last;
	int rc = 0;

	pthread_mutex_lock(&bs->open_lock);
	if (blob->refs > 1) {
		blob->refs--;
		pthread_mutex_unlock(&bs->open_lock);
		return 0;
	}
	pthread_mutex_unlock(&bs->open_lock);
	/* still in the table with one reference: a concurrent open shares the synced handle */
	if (!blob->md_ro) {
		pthread_mutex_lock(&blob->md_lock);
		if (blob_needs_sync(blob))
			rc = blob_sync_locked(blob, NULL, false, NULL, NULL);
		pthread_mutex_unlock(&blob->md_lock);
	}
	pthread_mutex_lock(&bs->open_lock);
	last = --blob->refs == 0;
	if (last) {
		*open_slot(bs, blob->root) = blob->hnext;
		bs->open_count--;
	}
	pthread_mutex_unlock(&bs->open_lock);
	if (last)
		blob_free(blob);
	return rc;
}

int zvfs_bs_delete_blob(struct zvfs_bs *bs, zvfs_blob_id id)
{
	uint32_t root = (uint32_t)id, *cl = NULL, ncl = 0, *pages = NULL, np = 0;
	struct zvfs_blob *b;
	uint64_t nc;
	int rc;

	if (bs->read_only)
		return -EROFS;
	if ((id >> 32) != 1 || root >= bs->l.md_len || id == bs->win_id)
		return -ENOENT;
	pthread_mutex_lock(&bs->open_lock);
	if (*open_slot(bs, root)) {
		pthread_mutex_unlock(&bs->open_lock);
		return -EBUSY;
	}
	if (!bs_blobid_used(bs, root)) {
		pthread_mutex_unlock(&bs->open_lock);
		return -ENOENT;
	}
	bs_set_blobid(bs, root, false); /* claims the deletion: opens now see -ENOENT */
	pthread_mutex_unlock(&bs->open_lock);

	rc = blob_load(bs, id, &b);
	if (rc < 0)
		goto err_restore_id;
	rc = bs_mark_dirty(bs);
	if (rc < 0)
		goto err_free_blob;
	nc = atomic_load(&b->num_clusters);
	cl = malloc((nc ? nc : 1) * sizeof(*cl));
	pages = malloc(((size_t)b->nchain + b->ep_cap + 1) * sizeof(*pages));
	if (!cl || !pages) {
		rc = -ENOMEM;
		goto err_free_blob;
	}
	for (uint64_t i = 0; i < nc; i++) {
		uint32_t c = blob_map_get(b, i);

		if (c)
			cl[ncl++] = c;
	}
	pages[np++] = root;
	for (uint32_t i = 0; i < b->nchain; i++)
		pages[np++] = b->chain[i];
	for (uint32_t k = 0; k < nchunks_for(nc); k++)
		if (b->ep_pages[k])
			pages[np++] = b->ep_pages[k];
	/*
	 * The root first, durably: that is the commit point, so a crash leaves either the whole
	 * blob or none of it.  (The brief's order, data first, would leave an existing blob with
	 * zeroed data after a crash.)  Its other pages then no root reaches, and its clusters
	 * are free on the next recovery, which zeroes free clusters; they are zeroed here too
	 * before they are released.
	 */
	rc = bs_zero_md_pages(bs, pages, 1);
	if (rc == 0)
		rc = bs_flush(bs);
	if (rc < 0)
		goto err_free_blob;
	rc = bs_zero_md_pages(bs, pages + 1, np - 1);
	if (rc == 0)
		rc = bs_zero_clusters(bs, cl, ncl);
	if (rc < 0) {
		/* the blob is gone on disk; what could not be zeroed stays allocated until the
		 * next recovery */
		ZVFS_WARN("blob 0x%" PRIx64 ": deleted, but zeroing its pages failed (%d)", id, rc);
		bs->needs_recovery = true;
		free(cl);
		free(pages);
		blob_free(b);
		return 0;
	}
	for (uint32_t i = 0; i < ncl; i++)
		bs_free_cluster(bs, cl[i]);
	for (uint32_t i = 1; i < np; i++)
		bs_free_md_page(bs, pages[i]);
	bs_free_md_page(bs, root);
	free(cl);
	free(pages);
	blob_free(b);
	return 0;

err_free_blob:
	free(cl);
	free(pages);
	blob_free(b);
err_restore_id:
	bs_set_blobid(bs, root, true);
	return rc;
}

int zvfs_blob_resize(struct zvfs_blob *blob, uint64_t num_clusters)
{
	struct zvfs_blob *b = blob;
	uint64_t old;
	int rc = 0;

	if (b->md_ro || b->data_ro)
		return -EPERM;
	if (num_clusters > ZVFS_BS_MAX_BLOB_CLUSTERS)
		return -EINVAL;
	pthread_mutex_lock(&b->md_lock);
	old = atomic_load(&b->num_clusters);
	if (num_clusters > old) {
		rc = blob_map_reserve(b, nchunks_for(num_clusters));
		if (rc == 0 && !b->thin)
			rc = blob_grow_thick(b, old, num_clusters);
		if (rc < 0)
			goto out_unlock;
		mark_eps_dirty(b, old, num_clusters);
		atomic_store(&b->num_clusters, num_clusters);
	} else if (num_clusters < old) {
		uint32_t keep = nchunks_for(num_clusters), had = nchunks_for(old);
		uint32_t *pe = realloc(b->pending_eps,
				       ((size_t)b->npending_eps + had - keep + 1) * sizeof(*pe));

		if (!pe) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		b->pending_eps = pe;
		/* new I/O beyond the end fails from now on */
		atomic_store(&b->num_clusters, num_clusters);
		pthread_mutex_lock(&b->alloc_lock);
		for (uint64_t cl = num_clusters; cl < old; cl++) {
			uint32_t c = blob_map_get(b, cl);
			struct blob_free *f;

			if (!c)
				continue;
			f = malloc(sizeof(*f));
			if (!f) { /* leaks the cluster until the next recovery */
				b->bs->needs_recovery = true;
				continue;
			}
			map_set(b, cl, 0);
			b->allocated--;
			f->cluster = c;
			f->next = b->pending_clusters;
			b->pending_clusters = f;
		}
		for (uint32_t k = keep; k < had; k++) {
			b->ep_dirty[k] = 0;
			if (b->ep_pages[k]) {
				b->pending_eps[b->npending_eps++] = b->ep_pages[k];
				b->ep_pages[k] = 0;
			}
		}
		if (num_clusters % EPP)
			b->ep_dirty[num_clusters / EPP] = 1;
		pthread_mutex_unlock(&b->alloc_lock);
	}
	if (num_clusters != old)
		b->md_dirty = true;
out_unlock:
	pthread_mutex_unlock(&b->md_lock);
	return rc;
}

zvfs_blob_id zvfs_blob_get_id(const struct zvfs_blob *blob)
{
	return blob->id;
}

uint64_t zvfs_blob_get_num_clusters(const struct zvfs_blob *blob)
{
	return atomic_load(&((struct zvfs_blob *)blob)->num_clusters);
}

uint64_t zvfs_blob_get_num_allocated_clusters(const struct zvfs_blob *blob)
{
	return atomic_load(&((struct zvfs_blob *)blob)->allocated);
}

bool zvfs_blob_is_thin(const struct zvfs_blob *blob)
{
	return blob->thin;
}

bool zvfs_blob_is_read_only(const struct zvfs_blob *blob)
{
	return blob->data_ro;
}

int zvfs_blob_set_xattr(struct zvfs_blob *blob, const char *name, const void *value, uint16_t len,
			bool internal)
{
	int rc = xattr_check(name, len);

	if (rc < 0)
		return rc;
	if (blob->md_ro)
		return -EPERM;
	pthread_mutex_lock(&blob->md_lock);
	rc = xattr_set_locked(blob, name, value, len, internal);
	pthread_mutex_unlock(&blob->md_lock);
	return rc;
}

int zvfs_blob_get_xattr(struct zvfs_blob *blob, const char *name, void *buf, size_t buflen,
			bool internal)
{
	int i, rc;

	if (!name)
		return -EINVAL;
	pthread_mutex_lock(&blob->md_lock);
	i = xattr_find(blob, name, internal);
	if (i >= 0) {
		const struct zvfs_blob_md_xattr *x = &blob->xattrs[i];

		if (buf && buflen)
			memcpy(buf, x->value, buflen < x->value_len ? buflen : x->value_len);
		rc = x->value_len;
	} else {
		rc = i;
	}
	pthread_mutex_unlock(&blob->md_lock);
	return rc;
}

int zvfs_blob_remove_xattr(struct zvfs_blob *blob, const char *name, bool internal)
{
	int i;

	if (!name)
		return -EINVAL;
	if (blob->md_ro)
		return -EPERM;
	pthread_mutex_lock(&blob->md_lock);
	i = xattr_find(blob, name, internal);
	if (i >= 0) {
		free(blob->xattrs[i].name);
		memmove(&blob->xattrs[i], &blob->xattrs[i + 1],
			(blob->nxattrs - (uint32_t)i - 1) * sizeof(blob->xattrs[0]));
		blob->nxattrs--;
		blob->md_dirty = true;
	}
	pthread_mutex_unlock(&blob->md_lock);
	return i < 0 ? i : 0;
}

int zvfs_blob_list_xattrs(struct zvfs_blob *blob, char *buf, size_t buflen, bool internal)
{
	size_t need = 0;

	pthread_mutex_lock(&blob->md_lock);
	for (uint32_t i = 0; i < blob->nxattrs; i++) {
		const struct zvfs_blob_md_xattr *x = &blob->xattrs[i];

		if (x->internal != internal)
			continue;
		if (buf && need + x->name_len + 1 <= buflen)
			memcpy(buf + need, x->name, (size_t)x->name_len + 1);
		need += (size_t)x->name_len + 1;
	}
	pthread_mutex_unlock(&blob->md_lock);
	return need > INT32_MAX ? -EOVERFLOW : (int)need;
}

static int next_where(struct zvfs_blob *blob, uint64_t from, uint64_t *cluster, bool allocated)
{
	uint64_t nc = atomic_load(&blob->num_clusters);

	for (uint64_t cl = from; cl < nc; cl++) {
		if ((blob_map_get(blob, cl) != 0) == allocated) {
			*cluster = cl;
			return 0;
		}
	}
	return -ENOENT;
}

int zvfs_blob_next_allocated(struct zvfs_blob *blob, uint64_t from, uint64_t *cluster)
{
	return next_where(blob, from, cluster, true);
}

int zvfs_blob_next_unallocated(struct zvfs_blob *blob, uint64_t from, uint64_t *cluster)
{
	return next_where(blob, from, cluster, false);
}

/* ---- allocation window ------------------------------------------------------------------- */

static uint64_t window_margin(const struct zvfs_bs *bs)
{
	uint64_t m = bs->l.data_clusters / 32;

	if (bs->win_margin)
		return bs->win_margin;
	return m < 64 ? 64 : m;
}

/* Persist @bound in the internal blob (win_lock held).  Durable on return 0. */
static int window_store(struct zvfs_bs *bs, uint64_t bound)
{
	uint8_t v[8];
	int rc;

	for (int i = 0; i < 8; i++)
		v[i] = (uint8_t)(bound >> (8 * i));
	pthread_mutex_lock(&bs->win_blob->md_lock);
	rc = xattr_set_locked(bs->win_blob, BS_WINDOW_XATTR, v, sizeof(v), true);
	if (rc == 0)
		rc = blob_sync_locked(bs->win_blob, NULL, false, NULL, NULL);
	pthread_mutex_unlock(&bs->win_blob->md_lock);
	return rc;
}

int bs_window_create(struct zvfs_bs *bs)
{
	uint64_t bound = bs->l.md_clusters + window_margin(bs);
	struct zvfs_blob *b;
	uint32_t root;
	int rc;

	if (bound > bs->l.total_clusters)
		bound = bs->l.total_clusters;
	rc = bs_claim_blobid(bs, &root);
	if (rc < 0)
		return rc;
	if (root != 0) { /* init makes it first: it is the blob at md page 0 */
		bs_release_blobid(bs, root);
		return -EINVAL;
	}
	b = blob_new(bs, root);
	if (!b) {
		bs_release_blobid(bs, root);
		return -ENOMEM;
	}
	b->thin = true;
	b->md_dirty = true;
	bs->win_blob = b;
	bs->win_id = b->id;
	pthread_mutex_lock(&bs->win_lock);
	rc = window_store(bs, bound);
	pthread_mutex_unlock(&bs->win_lock);
	if (rc < 0) {
		bs->win_blob = NULL;
		bs->win_id = ZVFS_BLOBID_INVALID;
		blob_free(b);
		bs_release_blobid(bs, root);
		return rc;
	}
	atomic_store(&bs->win_durable, bound);
	return 0;
}

void bs_window_open(struct zvfs_bs *bs, uint64_t bound)
{
	struct zvfs_blob *b = NULL;
	uint8_t v[8];
	int i;

	atomic_store(&bs->win_durable, bs->l.total_clusters); /* disabled until found */
	if (!bs_blobid_used(bs, 0) || blob_load(bs, zvfs_bs_page_to_blobid(0), &b) < 0)
		return;
	i = xattr_find(b, BS_WINDOW_XATTR, true);
	if (i < 0 || b->xattrs[i].value_len != sizeof(v) || atomic_load(&b->num_clusters) != 0) {
		blob_free(b); /* an ordinary blob (e.g. made by SPDK) */
		return;
	}
	if (bound == UINT64_MAX) {
		memcpy(v, b->xattrs[i].value, sizeof(v));
		bound = 0;
		for (int k = 7; k >= 0; k--)
			bound = bound << 8 | v[k];
	}
	if (bound > bs->l.total_clusters)
		bound = bs->l.total_clusters;
	bs->win_blob = b;
	bs->win_id = b->id;
	atomic_store(&bs->win_durable, bound);
}

int bs_window_grow(struct zvfs_bs *bs, uint64_t cluster)
{
	uint64_t bound;
	int rc = 0;

	if (cluster < atomic_load(&bs->win_durable))
		return 0;
	pthread_mutex_lock(&bs->win_lock);
	if (cluster >= atomic_load(&bs->win_durable) && bs->win_blob) {
		bound = cluster + 1 + window_margin(bs);
		if (bound > bs->l.total_clusters)
			bound = bs->l.total_clusters;
		rc = window_store(bs, bound);
		if (rc == 0)
			atomic_store(&bs->win_durable, bound);
	}
	pthread_mutex_unlock(&bs->win_lock);
	return rc;
}

int bs_window_tighten(struct zvfs_bs *bs)
{
	uint64_t bound;
	int rc = 0;

	pthread_mutex_lock(&bs->win_lock);
	bound = bs_used_end(bs) + window_margin(bs);
	if (bound > bs->l.total_clusters)
		bound = bs->l.total_clusters;
	/* the sync of window_store() flushes first: earlier zeroing is durable before */
	if (bs->win_blob && bound < atomic_load(&bs->win_durable)) {
		rc = window_store(bs, bound);
		if (rc == 0)
			atomic_store(&bs->win_durable, bound);
	}
	pthread_mutex_unlock(&bs->win_lock);
	return rc;
}

void bs_window_close(struct zvfs_bs *bs)
{
	if (bs->win_blob)
		blob_free(bs->win_blob);
	bs->win_blob = NULL;
}
