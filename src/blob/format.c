/* SPDX-License-Identifier: MIT */
/*
 * SPDK Blobstore v3 on-disk codec (FORMAT.md).  Map of this file:
 *
 *   1. helpers
 *   2. layout computation (what spdk_bs_init() computes, §2)
 *   3. super block encode / decode + validation (§3)
 *   4. bit masks (§4)
 *   5. md page check, descriptor iterator, per-type decoders (§5, §6)
 *   6. extent pages (§7)
 *   7. struct zvfs_blob_md: builder helpers, chain parser
 *   8. chain serializer (SPDK's blob_serialize() order)
 *
 * Every read of disk bytes is bounds-checked against the 4072-byte descriptor area or the
 * region length the caller gives; nothing asserts on disk contents.
 */
#include "blob/format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/crc32c.h"

/* ---- 1. helpers ------------------------------------------------------------------------------ */

#define FAIL(err, msg)                                                                             \
	do {                                                                                       \
		if (why)                                                                           \
			*why = (msg);                                                              \
		return (err);                                                                      \
	} while (0)

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Grow *arr (elements of @size bytes, capacity *cap) to hold at least @need elements. */
static int grow(void **arr, uint32_t *cap, uint64_t need, size_t size)
{
	uint64_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	if (need > UINT32_MAX)
		return -ENOMEM;
	ncap = max_u64(need, *cap ? (uint64_t)*cap * 2 : 8);
	if (ncap > UINT32_MAX)
		ncap = UINT32_MAX;
	p = realloc(*arr, ncap * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = (uint32_t)ncap;
	return 0;
}

uint32_t zvfs_bs_page_crc(const void *page)
{
	return zvfs_crc32c_full(page, ZVFS_BS_PAGE_SIZE - sizeof(uint32_t));
}

/* ---- 2. layout ------------------------------------------------------------------------------- */

int zvfs_bs_layout_compute(const struct zvfs_bs_layout_opts *o, struct zvfs_bs_layout *l,
			   const char **why)
{
	uint32_t bsz = o->block_size;
	uint32_t phys = o->phys_block_size ? o->phys_block_size : bsz;
	uint32_t cl = o->cluster_size ? o->cluster_size : ZVFS_BS_CLUSTER_SIZE_DEFAULT;
	uint64_t mps = o->md_page_size ? o->md_page_size : ZVFS_BS_PAGE_SIZE;
	uint64_t blockcnt, total, md_len, p, c, cmax, md_start, md_end, md_clusters;

	memset(l, 0, sizeof(*l));
	if (!is_pow2(bsz) || bsz < 512)
		FAIL(-EINVAL, "block size is not a power of two >= 512");
	if (!is_pow2(phys) || phys % bsz)
		FAIL(-EINVAL,
		     "physical block size is not a power-of-two multiple of the block size");
	if (!is_pow2(mps))
		FAIL(-EINVAL, "metadata page size is not a power of two");
	/* bs_alloc(): md_page_size = max(phys_blocklen, 4096, opts.md_page_size) */
	mps = max_u64(max_u64(phys, ZVFS_BS_PAGE_SIZE), mps);
	if (cl % ZVFS_BS_PAGE_SIZE)
		FAIL(-EINVAL, "cluster size is not a multiple of 4096");
	if (cl < mps || cl % mps)
		FAIL(-EINVAL, "cluster size is not a multiple of the metadata page size");
	blockcnt = o->dev_size / bsz;
	if (blockcnt * bsz < cl)
		FAIL(-EINVAL, "device smaller than one cluster");
	total = blockcnt / (cl / bsz);
	if (total > UINT32_MAX)
		FAIL(-EINVAL, "more than 2^32 - 1 clusters");
	if (o->num_md_pages == 0)
		FAIL(-EINVAL, "zero metadata pages");
	md_len = o->num_md_pages == ZVFS_BS_NUM_MD_PAGES_DEFAULT ? total : o->num_md_pages;

	p = div_up(zvfs_bs_mask_bytes(md_len), mps);
	c = div_up(zvfs_bs_mask_bytes(total), mps);
	/* room for the cluster mask of a store grown to md_len clusters */
	cmax = max_u64(c, p);
	md_start = 1 + p + cmax + p;
	md_end = md_start + md_len;
	md_clusters = div_up(md_end, cl / mps);
	if (md_clusters > total)
		FAIL(-EINVAL,
		     "metadata does not fit the device (fewer md pages or larger clusters)");

	l->size = blockcnt * bsz;
	l->io_unit_size = bsz;
	l->cluster_size = cl;
	l->md_page_size = (uint32_t)mps;
	l->pages_per_cluster = (uint32_t)(cl / mps);
	l->total_clusters = total;
	l->page_mask_start = 1;
	l->page_mask_len = (uint32_t)p;
	l->cluster_mask_start = (uint32_t)(1 + p);
	l->cluster_mask_len = (uint32_t)c;
	l->cluster_mask_max = (uint32_t)cmax;
	l->blobid_mask_start = (uint32_t)(1 + p + cmax);
	l->blobid_mask_len = (uint32_t)p;
	l->md_start = (uint32_t)md_start;
	l->md_len = (uint32_t)md_len;
	l->md_clusters = md_clusters;
	l->data_clusters = total - md_clusters;
	return 0;
}

/* ---- 3. super block -------------------------------------------------------------------------- */

void zvfs_bs_bstype_fill(uint8_t out[ZVFS_BS_BSTYPE_LEN], const char *name)
{
	memset(out, 0, ZVFS_BS_BSTYPE_LEN);
	if (name)
		memcpy(out, name, strnlen(name, ZVFS_BS_BSTYPE_LEN));
}

void zvfs_bs_super_info_init(struct zvfs_bs_super_info *info, const struct zvfs_bs_layout *l,
			     const char *bstype)
{
	memset(info, 0, sizeof(*info));
	info->layout = *l;
	info->version = ZVFS_BS_VERSION;
	info->clean = 0;
	info->super_blob = ZVFS_BS_BLOBID_INVALID;
	zvfs_bs_bstype_fill(info->bstype, bstype);
}

void zvfs_bs_super_encode(const struct zvfs_bs_super_info *info, struct zvfs_bs_super *sb)
{
	const struct zvfs_bs_layout *l = &info->layout;

	memset(sb, 0, sizeof(*sb));
	memcpy(sb->signature, ZVFS_BS_SIGNATURE, ZVFS_BS_SIGNATURE_LEN);
	sb->version = info->version;
	sb->length = sizeof(*sb);
	sb->clean = info->clean;
	sb->super_blob = info->super_blob;
	sb->cluster_size = l->cluster_size;
	sb->used_page_mask_start = l->page_mask_start;
	sb->used_page_mask_len = l->page_mask_len;
	sb->used_cluster_mask_start = l->cluster_mask_start;
	sb->used_cluster_mask_len = l->cluster_mask_len;
	sb->md_start = l->md_start;
	sb->md_len = l->md_len;
	memcpy(sb->bstype, info->bstype, ZVFS_BS_BSTYPE_LEN);
	sb->used_blobid_mask_start = l->blobid_mask_start;
	sb->used_blobid_mask_len = l->blobid_mask_len;
	sb->size = l->size;
	sb->io_unit_size = l->io_unit_size;
	sb->md_page_size = l->md_page_size;
	sb->crc = zvfs_bs_page_crc(sb);
}

struct region {
	uint64_t start;
	uint64_t len;
};

static bool regions_overlap(const struct region *a, const struct region *b)
{
	return a->start < b->start + b->len && b->start < a->start + a->len;
}

int zvfs_bs_super_decode(const struct zvfs_bs_super *sb, uint64_t dev_size, const uint8_t *bstype,
			 struct zvfs_bs_super_info *info, const char **why)
{
	static const uint8_t zeros[ZVFS_BS_BSTYPE_LEN];
	struct zvfs_bs_layout *l = &info->layout;
	uint64_t size, total, total_pages, md_end, md_clusters, gap;
	uint32_t cl, mps, iou;
	struct region r[4];
	int nr;

	memset(info, 0, sizeof(*info));
	/* SPDK: everything below is -EILSEQ except a bstype mismatch (-ENXIO) */
	if (memcmp(sb->signature, ZVFS_BS_SIGNATURE, ZVFS_BS_SIGNATURE_LEN) != 0)
		FAIL(-EILSEQ, "no blobstore signature");
	if (sb->version < ZVFS_BS_VERSION_MIN || sb->version > ZVFS_BS_VERSION)
		FAIL(-EILSEQ, "unsupported blobstore version");
	if (zvfs_bs_page_crc(sb) != sb->crc)
		FAIL(-EILSEQ, "super block checksum mismatch");
	if (bstype && memcmp(bstype, zeros, ZVFS_BS_BSTYPE_LEN) != 0 &&
	    memcmp(bstype, sb->bstype, ZVFS_BS_BSTYPE_LEN) != 0)
		FAIL(-ENXIO, "blobstore type mismatch");
	size = sb->size ? sb->size : dev_size;
	if (size > dev_size)
		FAIL(-EILSEQ, "blobstore larger than the device");

	/* Geometry: not checked by SPDK, but everything after this trusts it. */
	cl = sb->cluster_size;
	mps = sb->md_page_size ? sb->md_page_size : ZVFS_BS_PAGE_SIZE;
	iou = sb->io_unit_size ? sb->io_unit_size : ZVFS_BS_IO_UNIT_SIZE_OLD;
	if (!is_pow2(mps) || mps < ZVFS_BS_PAGE_SIZE)
		FAIL(-EILSEQ, "bad metadata page size");
	if (cl == 0 || cl % ZVFS_BS_PAGE_SIZE || cl < mps || cl % mps)
		FAIL(-EILSEQ, "bad cluster size");
	if (!is_pow2(iou) || iou < 512 || cl % iou)
		FAIL(-EILSEQ, "bad io unit size");
	total = size / cl;
	if (total == 0)
		FAIL(-EILSEQ, "blobstore smaller than one cluster");
	if (total > UINT32_MAX)
		FAIL(-EILSEQ, "more than 2^32 - 1 clusters");
	if (sb->md_len == 0)
		FAIL(-EILSEQ, "empty metadata region");
	if (sb->used_page_mask_len == 0 || sb->used_cluster_mask_len == 0)
		FAIL(-EILSEQ, "empty mask region");

	total_pages = size / mps;
	md_end = (uint64_t)sb->md_start + sb->md_len;
	r[0] = (struct region){sb->used_page_mask_start, sb->used_page_mask_len};
	r[1] = (struct region){sb->used_cluster_mask_start, sb->used_cluster_mask_len};
	r[2] = (struct region){sb->md_start, sb->md_len};
	r[3] = (struct region){sb->used_blobid_mask_start, sb->used_blobid_mask_len};
	nr = sb->used_blobid_mask_len ? 4 : 3;
	for (int i = 0; i < nr; i++) {
		/* page 0 is the super block; all of it must be metadata, ahead of the data */
		if (r[i].start == 0 || r[i].start + r[i].len > md_end || md_end > total_pages)
			FAIL(-EILSEQ, "mask or metadata region outside the metadata area");
		for (int j = 0; j < i; j++)
			if (regions_overlap(&r[i], &r[j]))
				FAIL(-EILSEQ, "mask and metadata regions overlap");
	}
	if ((uint64_t)sb->used_page_mask_len * mps < zvfs_bs_mask_bytes(sb->md_len) ||
	    (sb->used_blobid_mask_len &&
	     (uint64_t)sb->used_blobid_mask_len * mps < zvfs_bs_mask_bytes(sb->md_len)))
		FAIL(-EILSEQ, "page or blob id mask region too small for md_len");
	if ((uint64_t)sb->used_cluster_mask_len * mps < zvfs_bs_mask_bytes(total))
		FAIL(-EILSEQ, "cluster mask region too small for the cluster count");
	md_clusters = div_up(md_end, cl / mps);
	if (md_clusters > total)
		FAIL(-EILSEQ, "metadata larger than the blobstore");

	l->size = size;
	l->io_unit_size = iou;
	l->cluster_size = cl;
	l->md_page_size = mps;
	l->pages_per_cluster = cl / mps;
	l->total_clusters = total;
	l->page_mask_start = sb->used_page_mask_start;
	l->page_mask_len = sb->used_page_mask_len;
	l->cluster_mask_start = sb->used_cluster_mask_start;
	l->cluster_mask_len = sb->used_cluster_mask_len;
	/* the room up to the next region is what the cluster mask may grow into */
	gap = UINT64_MAX;
	for (int i = 0; i < nr; i++)
		if (i != 1 && r[i].start > r[1].start && r[i].start - r[1].start < gap)
			gap = r[i].start - r[1].start;
	l->cluster_mask_max = gap == UINT64_MAX ? sb->used_cluster_mask_len : (uint32_t)gap;
	l->blobid_mask_start = sb->used_blobid_mask_start;
	l->blobid_mask_len = sb->used_blobid_mask_len;
	l->md_start = sb->md_start;
	l->md_len = sb->md_len;
	l->md_clusters = md_clusters;
	l->data_clusters = total - md_clusters;
	info->version = sb->version;
	info->clean = sb->clean;
	info->super_blob = sb->super_blob;
	memcpy(info->bstype, sb->bstype, ZVFS_BS_BSTYPE_LEN);
	return 0;
}

/* ---- 4. bit masks ---------------------------------------------------------------------------- */

int zvfs_bs_mask_decode(const void *region, size_t region_len, uint8_t type, uint32_t *nbits,
			const uint8_t **bits)
{
	const struct zvfs_bs_mask *m = region;

	if (region_len < sizeof(*m) || m->type != type)
		return -EUCLEAN;
	if (zvfs_bs_mask_bytes(m->length) > region_len)
		return -EUCLEAN;
	*nbits = m->length;
	*bits = m->bits;
	return 0;
}

int zvfs_bs_mask_encode(void *region, size_t region_len, uint8_t type, const uint8_t *bits,
			uint32_t nbits)
{
	struct zvfs_bs_mask *m = region;
	uint32_t full = nbits / 8;

	if (type > ZVFS_BS_MASK_USED_BLOBIDS || (nbits && !bits))
		return -EINVAL;
	if (zvfs_bs_mask_bytes(nbits) > region_len)
		return -ENOSPC;
	memset(region, 0, region_len);
	m->type = type;
	m->length = nbits;
	if (full)
		memcpy(m->bits, bits, full);
	if (nbits % 8)
		m->bits[full] = bits[full] & (uint8_t)((1u << (nbits % 8)) - 1);
	return 0;
}

/* ---- 5. md pages and descriptors ------------------------------------------------------------- */

int zvfs_bs_md_page_check(const struct zvfs_bs_md_page *page, uint64_t id, uint32_t seq,
			  uint32_t md_len)
{
	if (zvfs_bs_page_crc(page) != page->crc)
		return -EBADMSG;
	if (page->id != id || page->sequence_num != seq)
		return seq == 0 ? -ENOENT : -EUCLEAN;
	if (page->next != ZVFS_BS_INVALID_MD_PAGE && page->next >= md_len)
		return -EUCLEAN;
	return 0;
}

void zvfs_bs_desc_iter_init(struct zvfs_bs_desc_iter *it, const struct zvfs_bs_md_page *page)
{
	it->page = page;
	it->off = 0;
	it->done = false;
}

int zvfs_bs_desc_next(struct zvfs_bs_desc_iter *it, struct zvfs_bs_desc_ref *d)
{
	while (!it->done) {
		const struct zvfs_bs_desc *h;
		uint64_t end;

		if (it->off + ZVFS_BS_DESC_HDR > ZVFS_BS_DESC_AREA)
			break;
		h = (const struct zvfs_bs_desc *)(it->page->descriptors + it->off);
		if (h->type == ZVFS_BS_DESC_PADDING && h->length == 0)
			break;
		end = (uint64_t)it->off + ZVFS_BS_DESC_HDR + h->length;
		if (end > ZVFS_BS_DESC_AREA) {
			it->done = true;
			return -EUCLEAN;
		}
		d->type = h->type;
		d->length = h->length;
		d->offset = it->off;
		d->desc = h;
		it->off = (uint32_t)end;
		if (h->type != ZVFS_BS_DESC_PADDING)
			return 1;
	}
	it->done = true;
	return 0;
}

int zvfs_bs_desc_flags_decode(const struct zvfs_bs_desc_ref *d, struct zvfs_bs_flags *f)
{
	const struct zvfs_bs_desc_flags *df = (const void *)d->desc;

	if (d->type != ZVFS_BS_DESC_FLAGS)
		return -EINVAL;
	if (d->length != sizeof(*df) - ZVFS_BS_DESC_HDR)
		return -EUCLEAN;
	f->invalid = df->invalid_flags;
	f->data_ro = df->data_ro_flags;
	f->md_ro = df->md_ro_flags;
	return 0;
}

int zvfs_bs_desc_xattr_decode(const struct zvfs_bs_desc_ref *d, struct zvfs_bs_xattr_ref *x)
{
	const struct zvfs_bs_desc_xattr *dx = (const void *)d->desc;

	if (d->type != ZVFS_BS_DESC_XATTR && d->type != ZVFS_BS_DESC_XATTR_INTERNAL)
		return -EINVAL;
	if (d->length < 4)
		return -EUCLEAN;
	if (4u + dx->name_length + dx->value_length != d->length)
		return -EUCLEAN;
	x->name = dx->name;
	x->value = dx->name + dx->name_length;
	x->name_len = dx->name_length;
	x->value_len = dx->value_length;
	x->internal = d->type == ZVFS_BS_DESC_XATTR_INTERNAL;
	return 0;
}

int zvfs_bs_desc_rle_decode(const struct zvfs_bs_desc_ref *d, const struct zvfs_bs_rle_extent **ext,
			    uint32_t *count)
{
	const struct zvfs_bs_desc_extent_rle *dr = (const void *)d->desc;

	if (d->type != ZVFS_BS_DESC_EXTENT_RLE)
		return -EINVAL;
	if (d->length == 0 || d->length % sizeof(dr->extents[0]))
		return -EUCLEAN;
	*ext = dr->extents;
	*count = d->length / sizeof(dr->extents[0]);
	return 0;
}

int zvfs_bs_desc_et_decode(const struct zvfs_bs_desc_ref *d, uint64_t *num_clusters,
			   const struct zvfs_bs_et_entry **ent, uint32_t *count)
{
	const struct zvfs_bs_desc_extent_table *dt = (const void *)d->desc;

	if (d->type != ZVFS_BS_DESC_EXTENT_TABLE)
		return -EINVAL;
	if (d->length < sizeof(dt->num_clusters) ||
	    (d->length - sizeof(dt->num_clusters)) % sizeof(dt->entries[0]))
		return -EUCLEAN;
	*num_clusters = dt->num_clusters;
	*ent = dt->entries;
	*count = (d->length - sizeof(dt->num_clusters)) / sizeof(dt->entries[0]);
	return 0;
}

int zvfs_bs_desc_ep_decode(const struct zvfs_bs_desc_ref *d,
			   const struct zvfs_bs_desc_extent_page **ep, uint32_t *count)
{
	const struct zvfs_bs_desc_extent_page *de = (const void *)d->desc;
	uint32_t n;

	if (d->type != ZVFS_BS_DESC_EXTENT_PAGE)
		return -EINVAL;
	if (d->length < sizeof(de->start_cluster_idx) + sizeof(de->cluster_idx[0]) ||
	    (d->length - sizeof(de->start_cluster_idx)) % sizeof(de->cluster_idx[0]))
		return -EUCLEAN;
	n = (d->length - sizeof(de->start_cluster_idx)) / sizeof(de->cluster_idx[0]);
	if (n > ZVFS_BS_EXTENTS_PER_EP)
		return -EUCLEAN;
	*ep = de;
	*count = n;
	return 0;
}

/* ---- 6. extent pages ------------------------------------------------------------------------- */

int zvfs_bs_extent_page_encode(struct zvfs_bs_md_page *page, uint64_t blob_id, uint32_t ep_index,
			       const uint32_t *clusters, uint32_t count)
{
	struct zvfs_bs_desc_extent_page *de = (void *)page->descriptors;

	if (count == 0 || count > ZVFS_BS_EXTENTS_PER_EP || !clusters ||
	    (uint64_t)ep_index * ZVFS_BS_EXTENTS_PER_EP > UINT32_MAX)
		return -EINVAL;
	memset(page, 0, sizeof(*page));
	page->id = blob_id;
	page->sequence_num = 0;
	page->next = ZVFS_BS_INVALID_MD_PAGE;
	de->hdr.type = ZVFS_BS_DESC_EXTENT_PAGE;
	de->hdr.length = sizeof(de->start_cluster_idx) + count * sizeof(de->cluster_idx[0]);
	de->start_cluster_idx = ep_index * ZVFS_BS_EXTENTS_PER_EP;
	memcpy((uint8_t *)de + sizeof(*de), clusters, count * sizeof(uint32_t));
	page->crc = zvfs_bs_page_crc(page);
	return 0;
}

int zvfs_bs_extent_page_decode(const struct zvfs_bs_md_page *page, uint32_t ep_index,
			       uint64_t num_clusters, const struct zvfs_bs_desc_extent_page **ep,
			       uint32_t *count)
{
	struct zvfs_bs_desc_iter it;
	struct zvfs_bs_desc_ref d;
	uint64_t start = (uint64_t)ep_index * ZVFS_BS_EXTENTS_PER_EP;
	uint64_t want;
	int rc;

	if (zvfs_bs_page_crc(page) != page->crc)
		return -EBADMSG;
	if (page->sequence_num != 0 || start >= num_clusters)
		return -EUCLEAN;
	want = num_clusters - start;
	if (want > ZVFS_BS_EXTENTS_PER_EP)
		want = ZVFS_BS_EXTENTS_PER_EP;
	zvfs_bs_desc_iter_init(&it, page);
	rc = zvfs_bs_desc_next(&it, &d);
	if (rc <= 0 || d.type != ZVFS_BS_DESC_EXTENT_PAGE)
		return -EUCLEAN;
	rc = zvfs_bs_desc_ep_decode(&d, ep, count);
	if (rc < 0)
		return rc;
	if ((*ep)->start_cluster_idx != start || *count > want)
		return -EUCLEAN;
	/* the extent page descriptor is alone in its page */
	if (zvfs_bs_desc_next(&it, &d) != 0)
		return -EUCLEAN;
	return 0;
}

/* ---- 7. struct zvfs_blob_md: builders and parser --------------------------------------------- */

void zvfs_blob_md_init(struct zvfs_blob_md *md)
{
	memset(md, 0, sizeof(*md));
}

void zvfs_blob_md_free(struct zvfs_blob_md *md)
{
	for (uint32_t i = 0; i < md->num_xattrs; i++)
		free(md->xattrs[i].name); /* the value shares the allocation */
	free(md->xattrs);
	free(md->extent_pages);
	free(md->runs);
	zvfs_blob_md_init(md);
}

int zvfs_blob_md_add_xattr(struct zvfs_blob_md *md, const void *name, uint16_t name_len,
			   const void *value, uint16_t value_len, bool internal)
{
	struct zvfs_blob_md_xattr *x;
	char *buf;
	int rc;

	if ((uint32_t)name_len + value_len > ZVFS_BS_XATTR_MAX_NAME_VALUE)
		return -E2BIG;
	rc = grow((void **)&md->xattrs, &md->xattr_cap, (uint64_t)md->num_xattrs + 1,
		  sizeof(*md->xattrs));
	if (rc < 0)
		return rc;
	/* one allocation: name, NUL, value */
	buf = malloc((size_t)name_len + 1 + value_len);
	if (!buf)
		return -ENOMEM;
	if (name_len)
		memcpy(buf, name, name_len);
	buf[name_len] = '\0';
	if (value_len)
		memcpy(buf + name_len + 1, value, value_len);
	x = &md->xattrs[md->num_xattrs++];
	x->name = buf;
	x->value = value_len ? (uint8_t *)buf + name_len + 1 : NULL;
	x->name_len = name_len;
	x->value_len = value_len;
	x->internal = internal;
	return 0;
}

int zvfs_blob_md_set_extent_table(struct zvfs_blob_md *md, uint64_t num_clusters,
				  const uint32_t *eps)
{
	uint64_t n = div_up(num_clusters, ZVFS_BS_EXTENTS_PER_EP);
	int rc;

	if (num_clusters > ZVFS_BS_MAX_BLOB_CLUSTERS || md->num_runs || (n && !eps))
		return -EINVAL;
	rc = grow((void **)&md->extent_pages, &md->ep_cap, n, sizeof(uint32_t));
	if (rc < 0)
		return rc;
	if (n)
		memcpy(md->extent_pages, eps, n * sizeof(uint32_t));
	md->num_extent_pages = (uint32_t)n;
	md->num_clusters = num_clusters;
	md->extent_table = true;
	return 0;
}

/* Append a run as is (the parser keeps the on-disk runs; the builder merges first). */
static int push_run(struct zvfs_blob_md *md, uint32_t cluster, uint32_t length)
{
	int rc = grow((void **)&md->runs, &md->run_cap, (uint64_t)md->num_runs + 1,
		      sizeof(*md->runs));

	if (rc < 0)
		return rc;
	md->runs[md->num_runs].cluster = cluster;
	md->runs[md->num_runs].length = length;
	md->num_runs++;
	md->num_clusters += length;
	return 0;
}

static bool runs_merge(const struct zvfs_blob_md_run *a, uint32_t cluster, uint32_t length)
{
	if ((uint64_t)a->length + length > UINT32_MAX)
		return false;
	if (a->cluster == 0)
		return cluster == 0;
	return (uint64_t)a->cluster + a->length == cluster;
}

int zvfs_blob_md_add_run(struct zvfs_blob_md *md, uint32_t cluster, uint32_t length)
{
	struct zvfs_blob_md_run *last;

	if (length == 0 || md->extent_table || md->num_extent_pages ||
	    (uint64_t)cluster + length - 1 > UINT32_MAX ||
	    md->num_clusters + length > ZVFS_BS_MAX_BLOB_CLUSTERS)
		return -EINVAL;
	last = md->num_runs ? &md->runs[md->num_runs - 1] : NULL;
	if (last && runs_merge(last, cluster, length)) {
		last->length += length;
		md->num_clusters += length;
		return 0;
	}
	return push_run(md, cluster, length);
}

static int parse_et(struct zvfs_blob_md *md, const struct zvfs_bs_desc_ref *d)
{
	const struct zvfs_bs_et_entry *ent;
	uint64_t nc, want;
	uint32_t n;
	int rc;

	rc = zvfs_bs_desc_et_decode(d, &nc, &ent, &n);
	if (rc < 0)
		return rc;
	if (md->rle_seen || nc > ZVFS_BS_MAX_BLOB_CLUSTERS)
		return -EUCLEAN;
	if (md->et_seen && nc != md->num_clusters)
		return -EUCLEAN; /* a continuation repeats num_clusters */
	md->et_seen = true;
	md->extent_table = true;
	md->num_clusters = nc;
	want = div_up(nc, ZVFS_BS_EXTENTS_PER_EP);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t pg = ent[i].page_idx, np = ent[i].num_pages;

		if (np == 0 || (pg != 0 && np != 1))
			return -EUCLEAN;
		if ((uint64_t)md->num_extent_pages + np > want)
			return -EUCLEAN;
		rc = grow((void **)&md->extent_pages, &md->ep_cap,
			  (uint64_t)md->num_extent_pages + np, sizeof(uint32_t));
		if (rc < 0)
			return rc;
		for (uint32_t k = 0; k < np; k++)
			md->extent_pages[md->num_extent_pages++] = pg;
	}
	return 0;
}

static int parse_rle(struct zvfs_blob_md *md, const struct zvfs_bs_desc_ref *d)
{
	const struct zvfs_bs_rle_extent *ext;
	uint32_t n;
	int rc;

	rc = zvfs_bs_desc_rle_decode(d, &ext, &n);
	if (rc < 0)
		return rc;
	if (md->et_seen)
		return -EUCLEAN;
	md->rle_seen = true;
	md->extent_table = false;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t c = ext[i].cluster_idx, len = ext[i].length;

		if (c && len && (uint64_t)c + len - 1 > UINT32_MAX)
			return -EUCLEAN;
		if (md->num_clusters + len > ZVFS_BS_MAX_BLOB_CLUSTERS)
			return -EUCLEAN;
		rc = push_run(md, c, len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int zvfs_blob_md_parse_page(struct zvfs_blob_md *md, const struct zvfs_bs_md_page *page)
{
	struct zvfs_bs_desc_iter it;
	struct zvfs_bs_desc_ref d;
	struct zvfs_bs_xattr_ref x;
	int rc;

	zvfs_bs_desc_iter_init(&it, page);
	while ((rc = zvfs_bs_desc_next(&it, &d)) > 0) {
		switch (d.type) {
		case ZVFS_BS_DESC_FLAGS:
			/* SPDK lets a later FLAGS descriptor override an earlier one */
			rc = zvfs_bs_desc_flags_decode(&d, &md->flags);
			md->has_flags = true;
			break;
		case ZVFS_BS_DESC_XATTR:
		case ZVFS_BS_DESC_XATTR_INTERNAL:
			rc = zvfs_bs_desc_xattr_decode(&d, &x);
			if (rc == 0)
				rc = zvfs_blob_md_add_xattr(md, x.name, x.name_len, x.value,
							    x.value_len, x.internal);
			if (rc == -E2BIG)
				rc = -EUCLEAN; /* cannot happen: the page bounds it */
			break;
		case ZVFS_BS_DESC_EXTENT_RLE:
			rc = parse_rle(md, &d);
			break;
		case ZVFS_BS_DESC_EXTENT_TABLE:
			rc = parse_et(md, &d);
			break;
		case ZVFS_BS_DESC_EXTENT_PAGE:
			rc = -EUCLEAN; /* extent pages live outside the chain */
			break;
		default:
			md->unknown_descs++;
			rc = 0;
			break;
		}
		if (rc < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	md->pages_parsed++;
	return 0;
}

int zvfs_blob_md_parse_finish(struct zvfs_blob_md *md)
{
	bool thin = md->flags.invalid & ZVFS_BS_IFLAG_THIN_PROV;

	if (md->et_seen) {
		if (md->num_extent_pages != div_up(md->num_clusters, ZVFS_BS_EXTENTS_PER_EP))
			return -EUCLEAN;
		for (uint32_t i = 0; i < md->num_extent_pages; i++)
			if (md->extent_pages[i] == 0 && !thin)
				return -EUCLEAN;
	} else if (md->rle_seen) {
		for (uint32_t i = 0; i < md->num_runs; i++)
			if (md->runs[i].cluster == 0 && md->runs[i].length && !thin)
				return -EUCLEAN;
	} else {
		/* no extent descriptor at all: an empty blob of either encoding */
		md->extent_table = md->flags.invalid & ZVFS_BS_IFLAG_EXTENT_TABLE;
		md->num_clusters = 0;
	}
	return 0;
}

int zvfs_blob_md_open_mode(const struct zvfs_bs_flags *f, bool *data_ro, bool *md_ro)
{
	if (f->invalid & ~ZVFS_BS_IFLAG_MASK)
		return -EOPNOTSUPP;
	*data_ro = (f->data_ro & ~ZVFS_BS_DFLAG_MASK) || (f->data_ro & ZVFS_BS_DFLAG_READ_ONLY);
	*md_ro = *data_ro || (f->md_ro & ~ZVFS_BS_MFLAG_MASK);
	return 0;
}

/* ---- 8. serializer --------------------------------------------------------------------------- */

/*
 * Mirrors SPDK's blob_serialize(): the same algorithm runs twice, first with pages == NULL to
 * count the pages, then writing them.  `off` is the fill of the current page's descriptors[].
 */
struct ser {
	struct zvfs_bs_md_page *pages; /* NULL: count only */
	uint32_t max;		       /* pages available when writing */
	uint64_t id;
	uint32_t cur;
	uint32_t off;
};

static uint32_t ser_room(const struct ser *s)
{
	return ZVFS_BS_DESC_AREA - s->off;
}

static int ser_new_page(struct ser *s, bool first)
{
	struct zvfs_bs_md_page *p;

	if (!first) {
		if (s->cur == UINT32_MAX)
			return -EINVAL;
		s->cur++;
	}
	s->off = 0;
	if (!s->pages)
		return 0;
	if (s->cur >= s->max)
		return -EINVAL;
	p = &s->pages[s->cur];
	memset(p, 0, sizeof(*p));
	p->id = s->id;
	p->sequence_num = s->cur;
	p->next = ZVFS_BS_INVALID_MD_PAGE;
	return 0;
}

/* Claim @n bytes of the current page (the caller checked the room); NULL when counting. */
static uint8_t *ser_claim(struct ser *s, uint32_t n)
{
	uint8_t *p = s->pages ? s->pages[s->cur].descriptors + s->off : NULL;

	s->off += n;
	return p;
}

static int ser_xattrs(struct ser *s, const struct zvfs_blob_md *md, bool internal)
{
	for (uint32_t i = 0; i < md->num_xattrs; i++) {
		const struct zvfs_blob_md_xattr *x = &md->xattrs[i];
		struct zvfs_bs_desc_xattr *dx;
		uint32_t need = sizeof(*dx) + x->name_len + x->value_len;
		int rc;

		if (x->internal != internal)
			continue;
		if (need > ZVFS_BS_DESC_AREA)
			return -E2BIG;
		if (need > ser_room(s)) {
			rc = ser_new_page(s, false);
			if (rc < 0)
				return rc;
		}
		dx = (void *)ser_claim(s, need);
		if (!dx)
			continue;
		dx->hdr.type = internal ? ZVFS_BS_DESC_XATTR_INTERNAL : ZVFS_BS_DESC_XATTR;
		dx->hdr.length = need - ZVFS_BS_DESC_HDR;
		dx->name_length = x->name_len;
		dx->value_length = x->value_len;
		if (x->name_len)
			memcpy(dx->name, x->name, x->name_len);
		if (x->value_len)
			memcpy(dx->name + x->name_len, x->value, x->value_len);
	}
	return 0;
}

/*
 * blob_serialize_extent_table(): as many entries as fit per descriptor (an entry is one
 * allocated extent page, or a maximal run of unallocated ones), continuing on new pages.  The
 * table is always written, even for 0 clusters.  (SPDK writes no table at all if a 0-cluster
 * blob's xattrs leave < 13 bytes in the last page; we start a new page instead, which SPDK
 * reads the same way.)
 */
static int ser_extent_table(struct ser *s, const struct zvfs_blob_md *md)
{
	uint32_t nep = md->num_extent_pages, i = 0;
	bool written = false;
	int rc;

	for (;;) {
		if (ser_room(s) >= sizeof(struct zvfs_bs_desc_extent_table)) {
			uint32_t max = (ser_room(s) - sizeof(struct zvfs_bs_desc_extent_table)) /
				       sizeof(struct zvfs_bs_et_entry);
			struct zvfs_bs_desc_extent_table *dt;
			uint32_t n = 0, start = i;

			/* count the entries first: the descriptor length precedes them */
			while (i < nep && n < max) {
				uint32_t run = 1;

				if (md->extent_pages[i] == 0)
					while (i + run < nep && md->extent_pages[i + run] == 0)
						run++;
				i += run;
				n++;
			}
			dt = (void *)ser_claim(s, sizeof(*dt) + n * sizeof(dt->entries[0]));
			if (dt) {
				dt->hdr.type = ZVFS_BS_DESC_EXTENT_TABLE;
				dt->hdr.length =
					sizeof(dt->num_clusters) + n * sizeof(dt->entries[0]);
				dt->num_clusters = md->num_clusters;
				for (uint32_t k = 0, j = start; k < n; k++) {
					uint32_t run = 1;

					if (md->extent_pages[j] == 0)
						while (j + run < nep &&
						       md->extent_pages[j + run] == 0)
							run++;
					dt->entries[k].page_idx = md->extent_pages[j];
					dt->entries[k].num_pages = run;
					j += run;
				}
			}
			written = true;
		}
		if (i == nep && written)
			return 0;
		rc = ser_new_page(s, false);
		if (rc < 0)
			return rc;
	}
}

/* Next run starting at runs[r], merged with its contiguous successors like SPDK's RLE. */
static uint32_t rle_next(const struct zvfs_blob_md *md, uint32_t r, struct zvfs_blob_md_run *out)
{
	*out = md->runs[r++];
	while (r < md->num_runs && runs_merge(out, md->runs[r].cluster, md->runs[r].length)) {
		out->length += md->runs[r].length;
		r++;
	}
	return r;
}

/* blob_serialize_extents_rle(): no descriptor for 0 clusters; runs never split. */
static int ser_extents_rle(struct ser *s, const struct zvfs_blob_md *md)
{
	uint32_t r = 0;
	int rc;

	while (r < md->num_runs) {
		uint32_t room = ser_room(s);

		if (room >=
		    sizeof(struct zvfs_bs_desc_extent_rle) + sizeof(struct zvfs_bs_rle_extent)) {
			uint32_t max = (room - sizeof(struct zvfs_bs_desc_extent_rle)) /
				       sizeof(struct zvfs_bs_rle_extent);
			struct zvfs_bs_desc_extent_rle *dr;
			struct zvfs_blob_md_run run;
			uint32_t n = 0, start = r;

			while (r < md->num_runs && n < max) {
				r = rle_next(md, r, &run);
				n++;
			}
			dr = (void *)ser_claim(s, sizeof(*dr) + n * sizeof(dr->extents[0]));
			if (dr) {
				dr->hdr.type = ZVFS_BS_DESC_EXTENT_RLE;
				dr->hdr.length = n * sizeof(dr->extents[0]);
				for (uint32_t k = 0, j = start; k < n; k++) {
					j = rle_next(md, j, &run);
					dr->extents[k].cluster_idx = run.cluster;
					dr->extents[k].length = run.length;
				}
			}
		}
		if (r == md->num_runs)
			break;
		rc = ser_new_page(s, false);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A writer must not produce what the parser (or SPDK) would reject. */
static int md_check(const struct zvfs_blob_md *md)
{
	bool thin = md->flags.invalid & ZVFS_BS_IFLAG_THIN_PROV;

	for (uint32_t i = 0; i < md->num_xattrs; i++)
		if ((uint32_t)md->xattrs[i].name_len + md->xattrs[i].value_len >
		    ZVFS_BS_XATTR_MAX_NAME_VALUE)
			return -E2BIG;
	if (md->num_clusters > ZVFS_BS_MAX_BLOB_CLUSTERS || (md->num_xattrs && !md->xattrs) ||
	    (md->num_extent_pages && !md->extent_pages) || (md->num_runs && !md->runs))
		return -EINVAL;
	if (md->extent_table) {
		if (md->num_runs ||
		    md->num_extent_pages != div_up(md->num_clusters, ZVFS_BS_EXTENTS_PER_EP))
			return -EINVAL;
		for (uint32_t i = 0; i < md->num_extent_pages; i++)
			if ((md->extent_pages[i] == 0 && !thin) ||
			    md->extent_pages[i] == ZVFS_BS_INVALID_MD_PAGE)
				return -EINVAL;
	} else {
		uint64_t sum = 0;

		if (md->num_extent_pages)
			return -EINVAL;
		for (uint32_t i = 0; i < md->num_runs; i++) {
			const struct zvfs_blob_md_run *r = &md->runs[i];

			if (r->length == 0 || (r->cluster == 0 && !thin) ||
			    (uint64_t)r->cluster + r->length - 1 > UINT32_MAX)
				return -EINVAL;
			sum += r->length;
		}
		if (sum != md->num_clusters)
			return -EINVAL;
	}
	return 0;
}

static int serialize(const struct zvfs_blob_md *md, struct ser *s)
{
	struct zvfs_bs_desc_flags *df;
	int rc;

	rc = md_check(md);
	if (rc < 0)
		return rc;
	rc = ser_new_page(s, true);
	if (rc < 0)
		return rc;
	/* FLAGS always first in the root page */
	df = (void *)ser_claim(s, sizeof(*df));
	if (df) {
		df->hdr.type = ZVFS_BS_DESC_FLAGS;
		df->hdr.length = sizeof(*df) - ZVFS_BS_DESC_HDR;
		df->invalid_flags = md->flags.invalid;
		df->data_ro_flags = md->flags.data_ro;
		df->md_ro_flags = md->flags.md_ro;
	}
	rc = ser_xattrs(s, md, false);
	if (rc == 0)
		rc = ser_xattrs(s, md, true);
	if (rc < 0)
		return rc;
	return md->extent_table ? ser_extent_table(s, md) : ser_extents_rle(s, md);
}

int zvfs_blob_md_num_pages(const struct zvfs_blob_md *md, uint32_t *npages)
{
	struct ser s = {0};
	int rc = serialize(md, &s);

	if (rc < 0)
		return rc;
	*npages = s.cur + 1;
	return 0;
}

int zvfs_blob_md_serialize(const struct zvfs_blob_md *md, uint64_t blob_id,
			   const uint32_t *page_idx, uint32_t npages, struct zvfs_bs_md_page *pages)
{
	struct ser s = {.pages = pages, .max = npages, .id = blob_id};
	uint32_t need;
	int rc;

	if ((blob_id >> 32) != 1 || npages == 0 || page_idx[0] != zvfs_bs_blobid_to_page(blob_id))
		return -EINVAL;
	for (uint32_t k = 0; k < npages; k++)
		if (page_idx[k] == ZVFS_BS_INVALID_MD_PAGE)
			return -EINVAL;
	rc = zvfs_blob_md_num_pages(md, &need);
	if (rc < 0)
		return rc;
	if (need != npages)
		return -EINVAL;
	rc = serialize(md, &s);
	if (rc < 0)
		return rc;
	for (uint32_t k = 0; k < npages; k++) {
		pages[k].next = k + 1 < npages ? page_idx[k + 1] : ZVFS_BS_INVALID_MD_PAGE;
		pages[k].crc = zvfs_bs_page_crc(&pages[k]);
	}
	return 0;
}
