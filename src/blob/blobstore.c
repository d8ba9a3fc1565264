/* SPDX-License-Identifier: MIT */
/*
 * The store: init, load (clean and recovery), unload, allocator, statistics, iteration.
 *
 * Map of this file:
 *   I/O helpers      md page offsets, buffers, batched parallel I/O, flush, zeroing
 *   super block      write, mark dirty (FORMAT.md section 16)
 *   allocator        bitmaps of md pages, clusters and blob ids under bs->alloc_lock
 *   construction     bs_new / bs_free
 *   init             format a device
 *   load             clean path (masks) and recovery (metadata region scan)
 *   unload           masks, clean super
 *   misc             stats, iteration, super blob, flush
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_internal.h"
#include "util/log.h"

/* ---- I/O helpers ------------------------------------------------------------------------- */

uint64_t bs_md_offset(const struct zvfs_bs *bs, uint32_t idx)
{
	return ((uint64_t)bs->l.md_start + idx) * bs->l.md_page_size;
}

void *bs_md_buf(struct zvfs_bs *bs)
{
	return zvfs_bdev_buf_alloc(bs->bdev, bs->l.md_page_size);
}

void bs_buf_free(struct zvfs_bs *bs, void *buf)
{
	if (buf)
		zvfs_bdev_buf_free(bs->bdev, buf);
}

int bs_md_read(struct zvfs_bs *bs, uint32_t idx, void *buf)
{
	return zvfs_bdev_read_sync(bs->bdev, buf, bs->l.md_page_size, bs_md_offset(bs, idx));
}

struct batch {
	unsigned pending;
	int status;
};

static void batch_cb(void *arg, int status)
{
	struct batch *b = arg;

	if (status < 0 && b->status == 0)
		b->status = status;
	b->pending--;
}

static int batch_wait(struct zvfs_bdev_channel *ch, struct batch *b)
{
	while (b->pending > 0) {
		int rc = zvfs_bdev_wait(ch);

		if (rc < 0)
			return rc; /* the channel is broken: nothing more will complete */
	}
	return b->status;
}

enum batch_op { BATCH_READ, BATCH_WRITE, BATCH_ZERO, BATCH_WZ };

/* Submit n requests on the calling thread's channel at once and wait for all of them. */
static int batch_run(struct zvfs_bs *bs, enum batch_op op, void *const *bufs, const uint64_t *offs,
		     const uint64_t *lens, uint32_t n)
{
	struct zvfs_bdev_channel *ch;
	struct batch b = {0};
	int rc;

	rc = zvfs_bdev_get_channel(bs->bdev, &ch);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < n; i++) {
		switch (op) {
		case BATCH_READ:
			rc = zvfs_bdev_read(ch, bufs[i], lens[i], offs[i], batch_cb, &b);
			break;
		case BATCH_WRITE:
			rc = zvfs_bdev_write(ch, bufs[i], lens[i], offs[i], batch_cb, &b);
			break;
		case BATCH_WZ:
			rc = zvfs_bdev_write_zeroes(ch, offs[i], lens[i], batch_cb, &b);
			break;
		case BATCH_ZERO:
		default:
			if (bs->geo->discard_zeroes)
				rc = zvfs_bdev_discard(ch, offs[i], lens[i], batch_cb, &b);
			else
				rc = zvfs_bdev_write_zeroes(ch, offs[i], lens[i], batch_cb, &b);
			break;
		}
		if (rc < 0) {
			if (b.status == 0)
				b.status = rc;
			break;
		}
		b.pending++;
	}
	rc = batch_wait(ch, &b);
	return rc;
}

static int batch_same_len(struct zvfs_bs *bs, enum batch_op op, void *const *bufs,
			  const uint64_t *offs, uint32_t n, uint32_t len)
{
	uint64_t *lens;
	int rc;

	if (n == 0)
		return 0;
	lens = malloc(n * sizeof(*lens));
	if (!lens)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		lens[i] = len;
	rc = batch_run(bs, op, bufs, offs, lens, n);
	free(lens);
	return rc;
}

int bs_io_batch_write(struct zvfs_bs *bs, void *const *bufs, const uint64_t *offs, uint32_t n,
		      uint32_t len)
{
	return batch_same_len(bs, BATCH_WRITE, bufs, offs, n, len);
}

int bs_io_batch_read(struct zvfs_bs *bs, void *const *bufs, const uint64_t *offs, uint32_t n,
		     uint32_t len)
{
	return batch_same_len(bs, BATCH_READ, bufs, offs, n, len);
}

int bs_flush(struct zvfs_bs *bs)
{
	return zvfs_bdev_flush_sync(bs->bdev);
}

int bs_zero_range(struct zvfs_bs *bs, uint64_t off, uint64_t len)
{
	if (bs->geo->discard_zeroes)
		return zvfs_bdev_discard_sync(bs->bdev, off, len);
	return zvfs_bdev_write_zeroes_sync(bs->bdev, off, len);
}

int bs_zero_md_pages(struct zvfs_bs *bs, const uint32_t *idx, uint32_t n)
{
	uint64_t *offs;
	int rc;

	if (n == 0)
		return 0;
	offs = malloc(n * sizeof(*offs));
	if (!offs)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		offs[i] = bs_md_offset(bs, idx[i]);
	rc = batch_same_len(bs, BATCH_WZ, NULL, offs, n, bs->l.md_page_size);
	free(offs);
	return rc;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int bs_zero_clusters(struct zvfs_bs *bs, uint32_t *cl, uint32_t n)
{
	uint64_t *offs, *lens, cs = bs->l.cluster_size;
	uint32_t runs = 0;
	int rc;

	if (n == 0)
		return 0;
	qsort(cl, n, sizeof(*cl), cmp_u32);
	offs = malloc(n * sizeof(*offs));
	lens = malloc(n * sizeof(*lens));
	if (!offs || !lens) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (runs > 0 && offs[runs - 1] + lens[runs - 1] == cl[i] * cs) {
			lens[runs - 1] += cs;
			continue;
		}
		offs[runs] = cl[i] * cs;
		lens[runs] = cs;
		runs++;
	}
	rc = batch_run(bs, BATCH_ZERO, NULL, offs, lens, runs);
out_free:
	free(offs);
	free(lens);
	return rc;
}

/* ---- super block ------------------------------------------------------------------------- */

static int bs_write_super(struct zvfs_bs *bs, uint32_t clean)
{
	struct zvfs_bs_super_info info = bs->info;
	void *buf;
	int rc;

	buf = bs_md_buf(bs);
	if (!buf)
		return -ENOMEM;
	info.clean = clean;
	zvfs_bs_super_encode(&info, buf);
	rc = zvfs_bdev_write_sync(bs->bdev, buf, bs->l.md_page_size, 0);
	bs_buf_free(bs, buf);
	return rc;
}

/*
 * Before the first metadata change after a load the super block must say clean = 0 on
 * stable storage (section 16), so that a crash leaves a store that will be recovered.
 */
int bs_mark_dirty(struct zvfs_bs *bs)
{
	int rc = 0;

	if (bs->read_only)
		return -EROFS;
	pthread_mutex_lock(&bs->super_lock);
	if (bs->clean_on_disk) {
		rc = bs_write_super(bs, 0);
		if (rc == 0)
			rc = bs_flush(bs);
		if (rc == 0)
			bs->clean_on_disk = false;
	}
	pthread_mutex_unlock(&bs->super_lock);
	return rc;
}

/* ---- allocator --------------------------------------------------------------------------- */

/* First clear bit in [from, n), or -1. */
static int64_t find_clear(const uint64_t *bm, uint64_t from, uint64_t n)
{
	for (uint64_t w = from / 64; w * 64 < n; w++) {
		uint64_t v = ~bm[w];

		if (w == from / 64)
			v &= ~0ull << (from % 64);
		if (v) {
			uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(v);

			return i < n ? (int64_t)i : -1;
		}
	}
	return -1;
}

static bool bm_test(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

static void bm_set(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ull << (i % 64);
}

static void bm_clear(uint64_t *bm, uint64_t i)
{
	bm[i / 64] &= ~(1ull << (i % 64));
}

static uint64_t bm_count(const uint64_t *bm, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t w = 0; w * 64 < n; w++) {
		uint64_t v = bm[w];

		if ((w + 1) * 64 > n)
			v &= (1ull << (n % 64)) - 1;
		c += (uint64_t)__builtin_popcountll(v);
	}
	return c;
}

static int alloc_md_locked(struct zvfs_bs *bs, uint32_t min, uint32_t *idx)
{
	uint32_t start = min > bs->md_hint ? min : bs->md_hint;
	int64_t i = find_clear(bs->used_md_pages, start, bs->l.md_len);

	if (i < 0)
		return -ENOSPC;
	if (start == bs->md_hint)
		bs->md_hint = (uint32_t)i + 1;
	bm_set(bs->used_md_pages, (uint64_t)i);
	bs->md_pages_used++;
	*idx = (uint32_t)i;
	return 0;
}

int bs_alloc_md_page(struct zvfs_bs *bs, uint32_t min, uint32_t *idx)
{
	int rc;

	pthread_mutex_lock(&bs->alloc_lock);
	rc = alloc_md_locked(bs, min, idx);
	pthread_mutex_unlock(&bs->alloc_lock);
	return rc;
}

void bs_free_md_page(struct zvfs_bs *bs, uint32_t idx)
{
	pthread_mutex_lock(&bs->alloc_lock);
	if (idx < bs->l.md_len && bm_test(bs->used_md_pages, idx)) {
		bm_clear(bs->used_md_pages, idx);
		bs->md_pages_used--;
		if (idx < bs->md_hint)
			bs->md_hint = idx;
	}
	pthread_mutex_unlock(&bs->alloc_lock);
}

int bs_alloc_cluster(struct zvfs_bs *bs, uint32_t *cluster)
{
	int64_t i;

	pthread_mutex_lock(&bs->alloc_lock);
	i = find_clear(bs->used_clusters, bs->cluster_hint, bs->l.total_clusters);
	if (i < 0) {
		pthread_mutex_unlock(&bs->alloc_lock);
		return -ENOSPC;
	}
	bm_set(bs->used_clusters, (uint64_t)i);
	bs->free_clusters--;
	bs->cluster_hint = (uint64_t)i + 1;
	pthread_mutex_unlock(&bs->alloc_lock);
	*cluster = (uint32_t)i;
	return 0;
}

void bs_free_cluster(struct zvfs_bs *bs, uint32_t cluster)
{
	pthread_mutex_lock(&bs->alloc_lock);
	if (cluster >= bs->l.md_clusters && cluster < bs->l.total_clusters &&
	    bm_test(bs->used_clusters, cluster)) {
		bm_clear(bs->used_clusters, cluster);
		bs->free_clusters++;
		if (cluster < bs->cluster_hint)
			bs->cluster_hint = cluster;
	} else {
		ZVFS_ERR("blobstore: freeing cluster %" PRIu32 " that is not in use", cluster);
	}
	pthread_mutex_unlock(&bs->alloc_lock);
}

int bs_claim_blobid(struct zvfs_bs *bs, uint32_t *root)
{
	int rc;

	pthread_mutex_lock(&bs->alloc_lock);
	rc = alloc_md_locked(bs, 0, root);
	if (rc == 0) {
		bm_set(bs->used_blobids, *root);
		bs->num_blobs++;
	}
	pthread_mutex_unlock(&bs->alloc_lock);
	return rc;
}

bool bs_blobid_used(struct zvfs_bs *bs, uint32_t root)
{
	bool used;

	if (root >= bs->l.md_len)
		return false;
	pthread_mutex_lock(&bs->alloc_lock);
	used = bm_test(bs->used_blobids, root);
	pthread_mutex_unlock(&bs->alloc_lock);
	return used;
}

void bs_set_blobid(struct zvfs_bs *bs, uint32_t root, bool used)
{
	pthread_mutex_lock(&bs->alloc_lock);
	if (used && !bm_test(bs->used_blobids, root)) {
		bm_set(bs->used_blobids, root);
		bs->num_blobs++;
	} else if (!used && bm_test(bs->used_blobids, root)) {
		bm_clear(bs->used_blobids, root);
		bs->num_blobs--;
	}
	pthread_mutex_unlock(&bs->alloc_lock);
}

/* Release the root page and id of a blob that is gone. */
void bs_release_blobid(struct zvfs_bs *bs, uint32_t root)
{
	bs_set_blobid(bs, root, false);
	bs_free_md_page(bs, root);
}

/* ---- construction ------------------------------------------------------------------------ */

static void bs_free(struct zvfs_bs *bs)
{
	bs_window_close(bs);
	bs_channels_destroy(bs);
	free(bs->used_md_pages);
	free(bs->used_clusters);
	free(bs->used_blobids);
	pthread_mutex_destroy(&bs->super_lock);
	pthread_mutex_destroy(&bs->alloc_lock);
	pthread_mutex_destroy(&bs->open_lock);
	pthread_mutex_destroy(&bs->ch_lock);
	pthread_mutex_destroy(&bs->win_lock);
	free(bs);
}

static int bs_new(struct zvfs_bdev *bdev, const struct zvfs_bs_layout *l, struct zvfs_bs **bsp)
{
	struct zvfs_bs *bs = calloc(1, sizeof(*bs));
	uint64_t mdw = ((uint64_t)l->md_len + 63) / 64, clw = (l->total_clusters + 63) / 64;
	int rc;

	if (!bs)
		return -ENOMEM;
	bs->bdev = bdev;
	bs->geo = zvfs_bdev_get_geometry(bdev);
	bs->l = *l;
	pthread_mutex_init(&bs->super_lock, NULL);
	pthread_mutex_init(&bs->alloc_lock, NULL);
	pthread_mutex_init(&bs->open_lock, NULL);
	pthread_mutex_init(&bs->ch_lock, NULL);
	pthread_mutex_init(&bs->win_lock, NULL);
	bs->win_id = ZVFS_BLOBID_INVALID;
	bs->win_durable = l->total_clusters;
	/* one spare word so that byte-wise views of the bitmaps never run past them */
	bs->used_md_pages = calloc(mdw + 1, 8);
	bs->used_blobids = calloc(mdw + 1, 8);
	bs->used_clusters = calloc(clw + 1, 8);
	if (!bs->used_md_pages || !bs->used_blobids || !bs->used_clusters) {
		rc = -ENOMEM;
		goto err_free;
	}
	rc = bs_channels_init(bs);
	if (rc < 0)
		goto err_free;
	*bsp = bs;
	return 0;

err_free:
	free(bs->used_md_pages);
	free(bs->used_blobids);
	free(bs->used_clusters);
	free(bs);
	return rc;
}

/* Mark the metadata clusters used and compute the free count from the cluster bitmap. */
static void bs_finish_counts(struct zvfs_bs *bs)
{
	for (uint64_t c = 0; c < bs->l.md_clusters; c++)
		bm_set(bs->used_clusters, c);
	bs->free_clusters =
		bs->l.total_clusters - bm_count(bs->used_clusters, bs->l.total_clusters);
	bs->md_pages_used = bm_count(bs->used_md_pages, bs->l.md_len);
	bs->num_blobs = bm_count(bs->used_blobids, bs->l.md_len);
	bs->cluster_hint = bs->l.md_clusters;
	bs->md_hint = 0;
}

/* ---- init -------------------------------------------------------------------------------- */

void zvfs_bs_opts_init(struct zvfs_bs_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->cluster_size = ZVFS_BS_CLUSTER_SIZE_DEFAULT;
	opts->num_md_pages = ZVFS_BS_NUM_MD_PAGES_DEFAULT;
	/* bstype stays all zero: init writes "ZVFS" for it, load accepts any type */
}

int zvfs_bs_init(struct zvfs_bdev *bdev, const struct zvfs_bs_opts *opts, struct zvfs_bs **bsp)
{
	const struct zvfs_bdev_geometry *geo = zvfs_bdev_get_geometry(bdev);
	struct zvfs_bs_layout_opts lo = {0};
	struct zvfs_bs_layout l;
	char bstype[ZVFS_BS_BSTYPE_LEN + 1] = {0};
	const char *why = NULL;
	struct zvfs_bs *bs;
	int rc;

	if (geo->read_only)
		return -EROFS;
	lo.dev_size = geo->size;
	lo.block_size = geo->block_size;
	lo.phys_block_size = geo->phys_block_size;
	lo.cluster_size = opts->cluster_size;
	lo.md_page_size = opts->md_page_size;
	lo.num_md_pages = opts->num_md_pages;
	rc = zvfs_bs_layout_compute(&lo, &l, &why);
	if (rc < 0) {
		ZVFS_ERR("blobstore init on %s: %s", zvfs_bdev_get_name(bdev),
			 why ? why : "bad layout");
		return rc;
	}
	rc = bs_new(bdev, &l, &bs);
	if (rc < 0)
		return rc;
	memcpy(bstype, opts->bstype, ZVFS_BS_BSTYPE_LEN);
	zvfs_bs_super_info_init(&bs->info, &l, bstype[0] ? bstype : ZVFS_BS_BSTYPE);

	/* metadata LBAs, then the data region, then the super block (clean = 0, as SPDK) */
	rc = zvfs_bdev_write_zeroes_sync(bdev, 0,
					 ((uint64_t)l.md_start + l.md_len) * l.md_page_size);
	if (rc == 0 && l.data_clusters > 0)
		rc = bs_zero_range(bs, l.md_clusters * l.cluster_size,
				   l.data_clusters * l.cluster_size);
	if (rc == 0)
		rc = bs_write_super(bs, 0);
	if (rc == 0)
		rc = bs_flush(bs);
	if (rc < 0) {
		ZVFS_ERR("blobstore init on %s: I/O error %d", zvfs_bdev_get_name(bdev), rc);
		goto err_free;
	}
	bs_finish_counts(bs);
	rc = bs_window_create(bs);
	if (rc < 0) {
		ZVFS_ERR("blobstore init on %s: creating the allocation window: %d",
			 zvfs_bdev_get_name(bdev), rc);
		goto err_free;
	}
	*bsp = bs;
	return 0;

err_free:
	bs_free(bs);
	return rc;
}

/* ---- load: clean path -------------------------------------------------------------------- */

/* Read one mask region and copy its bits into @dst (nbits of them). */
static int load_mask(struct zvfs_bs *bs, uint32_t start, uint32_t len, uint8_t type, uint64_t *dst,
		     uint64_t nbits, bool longer_ok)
{
	size_t bytes = (size_t)len * bs->l.md_page_size;
	const uint8_t *bits;
	uint32_t have;
	void *buf;
	int rc;

	buf = zvfs_bdev_buf_alloc(bs->bdev, bytes);
	if (!buf)
		return -ENOMEM;
	rc = zvfs_bdev_read_sync(bs->bdev, buf, bytes, (uint64_t)start * bs->l.md_page_size);
	if (rc < 0)
		goto out_free;
	rc = zvfs_bs_mask_decode(buf, bytes, type, &have, &bits);
	if (rc < 0)
		goto out_free;
	if (have < nbits || (have > nbits && !longer_ok)) {
		rc = -EUCLEAN;
		goto out_free;
	}
	memcpy(dst, bits, (nbits + 7) / 8);
	if (nbits % 64) /* bits past nbits stay clear */
		dst[nbits / 64] &= (1ull << (nbits % 64)) - 1;
out_free:
	zvfs_bdev_buf_free(bs->bdev, buf);
	return rc;
}

static int load_masks(struct zvfs_bs *bs)
{
	const struct zvfs_bs_layout *l = &bs->l;
	int rc;

	rc = load_mask(bs, l->page_mask_start, l->page_mask_len, ZVFS_BS_MASK_USED_PAGES,
		       bs->used_md_pages, l->md_len, false);
	if (rc == 0)
		rc = load_mask(bs, l->blobid_mask_start, l->blobid_mask_len,
			       ZVFS_BS_MASK_USED_BLOBIDS, bs->used_blobids, l->md_len, false);
	if (rc == 0)
		rc = load_mask(bs, l->cluster_mask_start, l->cluster_mask_len,
			       ZVFS_BS_MASK_USED_CLUSTERS, bs->used_clusters, l->total_clusters,
			       true);
	return rc;
}

/* ---- load: recovery ---------------------------------------------------------------------- */

struct recovery {
	struct zvfs_bs *bs;
	uint8_t *reg;	  /* the metadata region, md_len slots of md_page_size bytes */
	uint64_t *failed; /* roots of blobs that failed to parse */
	uint64_t window;  /* the allocation window's bound, UINT64_MAX = none found */
};

static const struct zvfs_bs_md_page *rec_page(const struct recovery *r, uint32_t idx)
{
	return (const struct zvfs_bs_md_page *)(r->reg + (uint64_t)idx * r->bs->l.md_page_size);
}

static int rec_claim_cluster(struct zvfs_bs *bs, uint32_t c, const char **why)
{
	if (c < bs->l.md_clusters || c >= bs->l.total_clusters) {
		*why = "cluster number outside the data region";
		return -EUCLEAN;
	}
	if (bm_test(bs->used_clusters, c)) {
		*why = "cluster already owned by another blob";
		return -EUCLEAN;
	}
	bm_set(bs->used_clusters, c);
	return 0;
}

/*
 * Parse blob @root from the in-memory region and claim its pages and clusters.  A failure
 * fails this blob only: what was claimed so far stays claimed (so nothing it may own is
 * reused), but its id is not marked used.
 */
static int rec_blob(struct recovery *r, uint32_t root, const char **why)
{
	struct zvfs_bs *bs = r->bs;
	uint64_t id = zvfs_bs_page_to_blobid(root);
	struct zvfs_blob_md md;
	uint32_t idx = root, seq = 0;
	int rc;

	zvfs_blob_md_init(&md);
	bm_set(bs->used_md_pages, root);
	for (;;) {
		const struct zvfs_bs_md_page *p = rec_page(r, idx);

		rc = zvfs_bs_md_page_check(p, id, seq, bs->l.md_len);
		if (rc < 0) {
			*why = rc == -EBADMSG ? "chain page checksum mismatch"
					      : "chain page id/sequence/next invalid";
			goto out;
		}
		rc = zvfs_blob_md_parse_page(&md, p);
		if (rc < 0) {
			*why = "bad descriptor";
			goto out;
		}
		if (p->next == ZVFS_BS_INVALID_MD_PAGE)
			break;
		idx = p->next;
		if (++seq > bs->l.md_len || bm_test(bs->used_md_pages, idx)) {
			*why = "chain loops or shares a page";
			rc = -EUCLEAN;
			goto out;
		}
		bm_set(bs->used_md_pages, idx);
	}
	rc = zvfs_blob_md_parse_finish(&md);
	if (rc < 0) {
		*why = "inconsistent extent map";
		goto out;
	}
	if (md.extent_table) {
		for (uint32_t k = 0; k < md.num_extent_pages; k++) {
			const struct zvfs_bs_desc_extent_page *ep;
			uint32_t e = md.extent_pages[k], count;

			if (e == 0)
				continue;
			if (e >= bs->l.md_len || bm_test(bs->used_md_pages, e)) {
				*why = "extent page out of range or shared";
				rc = -EUCLEAN;
				goto out;
			}
			bm_set(bs->used_md_pages, e);
			rc = bs_ep_decode(rec_page(r, e), k, md.num_clusters, &ep, &count);
			if (rc < 0) {
				*why = rc == -EBADMSG ? "extent page checksum mismatch"
						      : "extent page invalid";
				goto out;
			}
			for (uint32_t i = 0; i < count; i++) {
				uint32_t c = ep->cluster_idx[i];

				if (c == 0)
					continue;
				rc = rec_claim_cluster(bs, c, why);
				if (rc < 0)
					goto out;
			}
		}
	} else {
		for (uint32_t k = 0; k < md.num_runs; k++) {
			if (md.runs[k].cluster == 0)
				continue;
			for (uint32_t i = 0; i < md.runs[k].length; i++) {
				rc = rec_claim_cluster(bs, md.runs[k].cluster + i, why);
				if (rc < 0)
					goto out;
			}
		}
	}
	bm_set(bs->used_blobids, root);
	if (root == 0 && md.num_clusters == 0) { /* maybe ZVFS's internal blob */
		for (uint32_t k = 0; k < md.num_xattrs; k++) {
			const struct zvfs_blob_md_xattr *x = &md.xattrs[k];
			uint64_t v = 0;

			if (!x->internal || x->value_len != 8 || strcmp(x->name, BS_WINDOW_XATTR))
				continue;
			for (int j = 7; j >= 0; j--)
				v = v << 8 | x->value[j];
			r->window = v;
		}
	}
out:
	zvfs_blob_md_free(&md);
	return rc;
}

/*
 * After every good blob has claimed its clusters: the extent pages of failed blobs that
 * their broken chain no longer reaches still name the blob (seq 0, id, valid CRC).  Claim
 * them and the clusters they list that nobody owns, so that the data of a blob with one
 * bad chain page is not zeroed and reused before fsck can look at it.  Stale extent pages
 * of the same blob are claimed too: that leaks space until a repair, never loses data.
 */
static void rec_salvage(struct recovery *r)
{
	struct zvfs_bs *bs = r->bs;
	uint64_t salvaged = 0;

	for (uint32_t i = 0; i < bs->l.md_len; i++) {
		const struct zvfs_bs_md_page *p = rec_page(r, i);
		const struct zvfs_bs_desc_extent_page *ep;
		struct zvfs_bs_desc_iter it;
		struct zvfs_bs_desc_ref d;
		uint32_t count;

		if (bm_test(bs->used_md_pages, i) || (p->id >> 32) != 1 || p->sequence_num != 0 ||
		    (uint32_t)p->id >= bs->l.md_len || !bm_test(r->failed, (uint32_t)p->id) ||
		    p->crc != zvfs_bs_page_crc(p))
			continue;
		zvfs_bs_desc_iter_init(&it, p);
		if (zvfs_bs_desc_next(&it, &d) != 1 || d.type != ZVFS_BS_DESC_EXTENT_PAGE ||
		    zvfs_bs_desc_ep_decode(&d, &ep, &count) < 0)
			continue;
		bm_set(bs->used_md_pages, i);
		for (uint32_t k = 0; k < count; k++) {
			uint32_t c = ep->cluster_idx[k];

			if (c >= bs->l.md_clusters && c < bs->l.total_clusters &&
			    !bm_test(bs->used_clusters, c)) {
				bm_set(bs->used_clusters, c);
				salvaged++;
			}
		}
	}
	if (salvaged)
		ZVFS_WARN("blobstore recovery: %" PRIu64 " clusters of bad blobs kept allocated",
			  salvaged);
}

/* Read the whole metadata region with large reads, several in flight. */
static int rec_read_region(struct zvfs_bs *bs, uint8_t *reg)
{
	uint64_t total = (uint64_t)bs->l.md_len * bs->l.md_page_size;
	uint64_t base = bs_md_offset(bs, 0), pos = 0;
	struct zvfs_bdev_channel *ch;
	struct batch b = {0};
	int rc;

	rc = zvfs_bdev_get_channel(bs->bdev, &ch);
	if (rc < 0)
		return rc;
	while (pos < total || b.pending > 0) {
		while (pos < total && b.pending < BS_RECOVERY_QD && b.status == 0) {
			uint64_t len =
				total - pos < BS_RECOVERY_READ ? total - pos : BS_RECOVERY_READ;

			rc = zvfs_bdev_read(ch, reg + pos, len, base + pos, batch_cb, &b);
			if (rc < 0) {
				b.status = rc;
				break;
			}
			b.pending++;
			pos += len;
		}
		if (b.pending == 0)
			break;
		rc = zvfs_bdev_wait(ch);
		if (rc < 0)
			return rc;
	}
	return b.status;
}

/*
 * Zero the free data clusters below @limit (section 16: a crash may leave unpublished data
 * in them; the allocation window says none can be at or above @limit).
 */
static int rec_zero_free(struct zvfs_bs *bs, uint64_t limit)
{
	uint64_t cs = bs->l.cluster_size, c = bs->l.md_clusters;
	uint64_t n = limit < bs->l.total_clusters ? limit : bs->l.total_clusters;
	uint64_t *offs = NULL, *lens = NULL;
	uint32_t runs = 0, cap = 0;
	int rc = 0;

	while (c < n) {
		int64_t s = find_clear(bs->used_clusters, c, n);
		uint64_t e;

		if (s < 0)
			break;
		for (e = (uint64_t)s; e < n && !bm_test(bs->used_clusters, e); e++)
			;
		if (runs == cap) {
			uint32_t ncap = cap ? cap * 2 : 64;
			uint64_t *no = realloc(offs, ncap * sizeof(*offs));

			if (!no) {
				rc = -ENOMEM;
				goto out_free;
			}
			offs = no;
			no = realloc(lens, ncap * sizeof(*lens));
			if (!no) {
				rc = -ENOMEM;
				goto out_free;
			}
			lens = no;
			cap = ncap;
		}
		offs[runs] = (uint64_t)s * cs;
		lens[runs] = (e - (uint64_t)s) * cs;
		bs->rec_zeroed += e - (uint64_t)s;
		runs++;
		c = e;
	}
	if (runs)
		rc = batch_run(bs, BATCH_ZERO, NULL, offs, lens, runs);
	if (rc == 0)
		rc = bs_flush(bs);
out_free:
	free(offs);
	free(lens);
	return rc;
}

static int bs_recover(struct zvfs_bs *bs)
{
	uint64_t total = (uint64_t)bs->l.md_len * bs->l.md_page_size;
	struct recovery r = {.bs = bs, .window = UINT64_MAX};
	int rc;

	r.failed = calloc((bs->l.md_len + 63) / 64 + 1, 8);
	if (!r.failed)
		return -ENOMEM;
	memset(bs->used_md_pages, 0, ((bs->l.md_len + 63) / 64) * 8);
	memset(bs->used_blobids, 0, ((bs->l.md_len + 63) / 64) * 8);
	memset(bs->used_clusters, 0, ((bs->l.total_clusters + 63) / 64) * 8);
	for (uint64_t c = 0; c < bs->l.md_clusters; c++)
		bm_set(bs->used_clusters, c);
	r.reg = zvfs_bdev_buf_alloc(bs->bdev, total);
	if (!r.reg) {
		free(r.failed);
		return -ENOMEM;
	}
	rc = rec_read_region(bs, r.reg);
	if (rc < 0) {
		ZVFS_ERR("blobstore recovery on %s: reading the metadata region: %d",
			 zvfs_bdev_get_name(bs->bdev), rc);
		goto out_free;
	}
	for (uint32_t i = 0; i < bs->l.md_len; i++) {
		const struct zvfs_bs_md_page *p = rec_page(&r, i);
		const char *why = NULL;

		if (p->id != zvfs_bs_page_to_blobid(i) || p->sequence_num != 0 ||
		    p->crc != zvfs_bs_page_crc(p))
			continue;
		if (bm_test(bs->used_md_pages, i)) {
			ZVFS_WARN("blobstore recovery: blob 0x%" PRIx64
				  ": root page already used by another blob",
				  zvfs_bs_page_to_blobid(i));
			bs->bad_blobs++;
			continue;
		}
		if (rec_blob(&r, i, &why) < 0) {
			bm_set(r.failed, i);
			ZVFS_WARN("blobstore recovery: blob 0x%" PRIx64 ": %s; blob left out",
				  zvfs_bs_page_to_blobid(i), why ? why : "corrupt");
			bs->bad_blobs++;
		}
	}
	if (bs->bad_blobs)
		rec_salvage(&r);
	bs_finish_counts(bs);
	if (!bs->read_only)
		rc = rec_zero_free(bs, r.window);
	if (rc == 0)
		bs_window_open(bs, r.window == UINT64_MAX ? bs->l.total_clusters : r.window);
	/* every free cluster is durably zero now: the window can shrink to what is used */
	if (rc == 0 && !bs->read_only && bs->win_blob)
		rc = bs_window_tighten(bs);
out_free:
	zvfs_bdev_buf_free(bs->bdev, r.reg);
	free(r.failed);
	return rc;
}

/* ---- load -------------------------------------------------------------------------------- */

int zvfs_bs_load(struct zvfs_bdev *bdev, const struct zvfs_bs_opts *opts, struct zvfs_bs **bsp)
{
	const struct zvfs_bdev_geometry *geo = zvfs_bdev_get_geometry(bdev);
	uint32_t rdlen = geo->block_size > ZVFS_BS_PAGE_SIZE ? geo->block_size : ZVFS_BS_PAGE_SIZE;
	static const uint8_t zero_type[ZVFS_BS_BSTYPE_LEN];
	struct zvfs_bs_super_info info;
	const char *why = NULL;
	struct zvfs_bs *bs;
	void *buf;
	int rc;

	buf = zvfs_bdev_buf_alloc(bdev, rdlen);
	if (!buf)
		return -ENOMEM;
	rc = zvfs_bdev_read_sync(bdev, buf, rdlen, 0);
	if (rc == 0) {
		const uint8_t *want = (const uint8_t *)opts->bstype;

		if (memcmp(want, zero_type, ZVFS_BS_BSTYPE_LEN) == 0)
			want = NULL;
		rc = zvfs_bs_super_decode(buf, geo->size, want, &info, &why);
		if (rc < 0)
			ZVFS_ERR("blobstore load on %s: %s", zvfs_bdev_get_name(bdev),
				 why ? why : "invalid super block");
	}
	zvfs_bdev_buf_free(bdev, buf);
	if (rc < 0)
		return rc;
	if (info.layout.md_page_size % geo->block_size != 0 ||
	    info.layout.io_unit_size % geo->block_size != 0) {
		ZVFS_ERR("blobstore load on %s: store units do not fit the device block size",
			 zvfs_bdev_get_name(bdev));
		return -EILSEQ;
	}
	rc = bs_new(bdev, &info.layout, &bs);
	if (rc < 0)
		return rc;
	bs->info = info;
	bs->read_only = opts->read_only || geo->read_only;
	bs->clean_on_disk = info.clean != 0;

	if (info.clean && info.layout.blobid_mask_len != 0 && !opts->force_recover) {
		rc = load_masks(bs);
		if (rc == 0) {
			bs_finish_counts(bs);
			bs_window_open(bs, UINT64_MAX);
		} else {
			ZVFS_WARN("blobstore load on %s: masks invalid (%d), recovering",
				  zvfs_bdev_get_name(bdev), rc);
			rc = 1;
		}
	} else {
		rc = 1;
	}
	if (rc == 1) {
		bs->loaded_dirty = true;
		rc = bs_recover(bs);
		if (rc < 0)
			goto err_free;
		ZVFS_INFO("blobstore on %s recovered: %" PRIu64 " blobs, %" PRIu64 " bad",
			  zvfs_bdev_get_name(bdev), bs->num_blobs, bs->bad_blobs);
	}
	*bsp = bs;
	return 0;

err_free:
	bs_free(bs);
	return rc;
}

/* ---- unload ------------------------------------------------------------------------------ */

static int write_mask(struct zvfs_bs *bs, uint32_t start, uint32_t len, uint8_t type,
		      const uint64_t *bits, uint64_t nbits)
{
	size_t bytes = (size_t)len * bs->l.md_page_size;
	void *buf = zvfs_bdev_buf_alloc(bs->bdev, bytes);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = zvfs_bs_mask_encode(buf, bytes, type, (const uint8_t *)bits, (uint32_t)nbits);
	if (rc == 0)
		rc = zvfs_bdev_write_sync(bs->bdev, buf, bytes,
					  (uint64_t)start * bs->l.md_page_size);
	zvfs_bdev_buf_free(bs->bdev, buf);
	return rc;
}

int zvfs_bs_unload(struct zvfs_bs *bs)
{
	const struct zvfs_bs_layout *l = &bs->l;
	int rc = 0;

	pthread_mutex_lock(&bs->open_lock);
	if (bs->open_count > 0) {
		pthread_mutex_unlock(&bs->open_lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&bs->open_lock);
	if (!bs->read_only) {
		/* all free clusters are zero (and flushed by its sync): a tight window */
		if (bs->win_blob && !bs->needs_recovery)
			rc = bs_window_tighten(bs);
		/* SPDK's order: pages, blob ids, clusters; then the super with clean = 1 */
		if (rc == 0)
			rc = write_mask(bs, l->page_mask_start, l->page_mask_len,
					ZVFS_BS_MASK_USED_PAGES, bs->used_md_pages, l->md_len);
		if (rc == 0)
			rc = write_mask(bs, l->blobid_mask_start, l->blobid_mask_len,
					ZVFS_BS_MASK_USED_BLOBIDS, bs->used_blobids, l->md_len);
		if (rc == 0)
			rc = write_mask(bs, l->cluster_mask_start, l->cluster_mask_len,
					ZVFS_BS_MASK_USED_CLUSTERS, bs->used_clusters,
					l->total_clusters);
		/* the masks must be durable before a super block that vouches for them */
		if (rc == 0)
			rc = bs_flush(bs);
		if (rc == 0 && bs->needs_recovery)
			ZVFS_WARN("blobstore unload on %s: space leaked by I/O errors; left "
				  "unclean so "
				  "that the next load recovers it",
				  zvfs_bdev_get_name(bs->bdev));
		if (rc == 0)
			rc = bs_write_super(bs, bs->needs_recovery ? 0 : 1);
		if (rc == 0)
			rc = bs_flush(bs);
		if (rc < 0) {
			ZVFS_ERR("blobstore unload on %s: %d", zvfs_bdev_get_name(bs->bdev), rc);
			return rc;
		}
	}
	bs_free(bs);
	return 0;
}

void zvfs_bs_abandon(struct zvfs_bs *bs)
{
	for (int i = 0; i < BS_OPEN_BUCKETS; i++) {
		while (bs->open[i]) {
			struct zvfs_blob *b = bs->open[i];

			bs->open[i] = b->hnext;
			blob_free_handle(b);
		}
	}
	bs_free(bs);
}

/* ---- misc -------------------------------------------------------------------------------- */

int zvfs_bs_flush(struct zvfs_bs *bs)
{
	return bs_flush(bs);
}

int zvfs_bs_set_super(struct zvfs_bs *bs, zvfs_blob_id id)
{
	int rc;

	if (bs->read_only)
		return -EROFS;
	if (id != ZVFS_BLOBID_INVALID && ((id >> 32) != 1 || !bs_blobid_used(bs, (uint32_t)id)))
		return -ENOENT;
	pthread_mutex_lock(&bs->super_lock);
	bs->info.super_blob = id;
	rc = bs_write_super(bs, 0);
	if (rc == 0)
		rc = bs_flush(bs);
	if (rc == 0)
		bs->clean_on_disk = false;
	pthread_mutex_unlock(&bs->super_lock);
	return rc;
}

zvfs_blob_id zvfs_bs_get_super(const struct zvfs_bs *bs)
{
	return bs->info.super_blob;
}

int zvfs_bs_get_stats(struct zvfs_bs *bs, struct zvfs_bs_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->cluster_size = bs->l.cluster_size;
	st->io_unit_size = bs->l.io_unit_size;
	st->md_page_size = bs->l.md_page_size;
	st->total_clusters = bs->l.total_clusters;
	st->data_clusters = bs->l.data_clusters;
	st->md_pages = bs->l.md_len;
	pthread_mutex_lock(&bs->alloc_lock);
	st->free_clusters = bs->free_clusters;
	st->md_pages_used = bs->md_pages_used;
	st->blobs = bs->num_blobs - (bs->win_id != ZVFS_BLOBID_INVALID); /* internal blob */
	pthread_mutex_unlock(&bs->alloc_lock);
	st->bad_blobs = bs->bad_blobs;
	st->loaded_dirty = bs->loaded_dirty;
	memcpy(st->bstype, bs->info.bstype, ZVFS_BS_BSTYPE_LEN);
	st->bstype[ZVFS_BS_BSTYPE_LEN] = 0;
	return 0;
}

struct zvfs_bdev *zvfs_bs_get_bdev(const struct zvfs_bs *bs)
{
	return bs->bdev;
}

int zvfs_bs_next_blob(struct zvfs_bs *bs, zvfs_blob_id prev, zvfs_blob_id *id)
{
	uint64_t from = 0;
	int rc = -ENOENT;

	if (prev != ZVFS_BLOBID_INVALID)
		from = (uint64_t)(uint32_t)prev + 1;
	pthread_mutex_lock(&bs->alloc_lock);
	for (uint64_t i = from; i < bs->l.md_len; i++) {
		if (bs->used_blobids[i / 64] == 0) {
			i |= 63;
			continue;
		}
		if (bm_test(bs->used_blobids, i) &&
		    zvfs_bs_page_to_blobid((uint32_t)i) != bs->win_id) {
			*id = zvfs_bs_page_to_blobid((uint32_t)i);
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&bs->alloc_lock);
	return rc;
}

uint64_t bs_used_end(struct zvfs_bs *bs)
{
	uint64_t end = bs->l.md_clusters;

	pthread_mutex_lock(&bs->alloc_lock);
	for (uint64_t w = (bs->l.total_clusters + 63) / 64; w-- > 0;) {
		if (bs->used_clusters[w]) {
			end = w * 64 + 64 - (uint64_t)__builtin_clzll(bs->used_clusters[w]);
			break;
		}
	}
	pthread_mutex_unlock(&bs->alloc_lock);
	return end;
}
