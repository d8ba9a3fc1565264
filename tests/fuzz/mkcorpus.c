/* SPDX-License-Identifier: MIT */
/*
 * mkcorpus: seed images for fuzz_load, made with the real API.
 *
 *   mkcorpus OUTDIR [SPDK_FIXTURE_IMG]
 *
 * Each seed is a store on a "ram:" device, written in fuzz_load's input encoding (fuzz.h):
 * the header, then the device from byte 0 to the end of the md region with trailing zeroes
 * cut (data clusters are not part of the input; the harness reads them as zeroes).  Every
 * store is written twice, as loaded (flags 0 and FIX_CRC) and with force_recover; unclean
 * stores are left by zvfs_bs_abandon() as a crash would.  With SPDK_FIXTURE_IMG (the
 * decompressed head of ../shared/fixtures/spdk-v25.09-store.head.img.gz) its metadata joins
 * the corpus, with the super block's size cut to 32 MiB so that it fits the harness's device.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blob/blob_internal.h"
#include "fuzz.h"
#include "util/log.h"
#include "zvfs/bdev.h"
#include "zvfs/blob.h"

static const char *g_out;
static int g_seeds;

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "mkcorpus: " __VA_ARGS__);                                         \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)
#define CHECK(call)                                                                                \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != 0)                                                                      \
			DIE("%s:%d: %s: %s", __FILE__, __LINE__, #call, strerror(-rc_));           \
	} while (0)

static void put_seed(const char *name, uint8_t flags, uint8_t size_b, const uint8_t *img,
		     size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s-%02x", g_out, name, flags);
	f = fopen(path, "wb");
	if (!f || fputc(flags, f) == EOF || fputc(size_b, f) == EOF ||
	    fwrite(img, 1, len, f) != len || fclose(f) != 0)
		DIE("%s: %s", path, strerror(errno));
	g_seeds++;
}

/* The seeds of one image: as is, with CRC repair, with force_recover. */
static void put_image(const char *name, uint8_t geo, uint64_t dev_size, uint8_t *img, size_t len)
{
	uint8_t size_b = (uint8_t)((dev_size >> 20) - 1);
	uint8_t *copy;
	size_t md_end;

	if (dev_size % (1u << 20) || fuzz_dev_size(size_b) != dev_size)
		DIE("%s: device size %" PRIu64 " not encodable", name, dev_size);
	/* the md region's end; the rest is data */
	{
		uint64_t mps = fuzz_le32(img + 92) ? fuzz_le32(img + 92) : 4096;
		uint64_t end = (uint64_t)(fuzz_le32(img + 48) + fuzz_le32(img + 52)) * mps;

		md_end = end < len ? (size_t)end : len;
	}
	while (md_end > 0 && img[md_end - 1] == 0)
		md_end--;
	/* the harness's CRC repair must leave a real image as it is */
	copy = malloc(md_end + 4096);
	if (!copy)
		DIE("out of memory");
	memcpy(copy, img, md_end);
	memset(copy + md_end, 0, 4096);
	fuzz_fix_crcs(copy, md_end + 4096);
	if (memcmp(copy, img, md_end) != 0)
		DIE("%s: fuzz_fix_crcs() changes a valid image", name);
	free(copy);

	geo = (uint8_t)(geo << FUZZ_GEO_SHIFT);
	put_seed(name, geo, size_b, img, md_end);
	put_seed(name, geo | FUZZ_F_FIX_CRC, size_b, img, md_end);
	put_seed(name, geo | FUZZ_F_FIX_CRC | FUZZ_F_FORCE_RECOVER, size_b, img, md_end);
}

struct store {
	struct zvfs_bdev *bdev;
	struct zvfs_bs *bs;
	uint64_t dev_size;
	uint8_t geo;
	void *buf;
};

static void store_init(struct store *s, uint8_t geo, uint64_t dev_size, uint32_t cluster_size,
		       uint32_t md_pages)
{
	struct zvfs_bs_opts o;
	char spec[64], err[256];

	snprintf(spec, sizeof(spec), "ram:size=%" PRIu64 "%s", dev_size, fuzz_geo_opts[geo]);
	if (zvfs_bdev_open(spec, &s->bdev, err, sizeof(err)) != 0)
		DIE("%s", err);
	zvfs_bs_opts_init(&o);
	o.cluster_size = cluster_size;
	o.num_md_pages = md_pages;
	CHECK(zvfs_bs_init(s->bdev, &o, &s->bs));
	s->dev_size = dev_size;
	s->geo = geo;
	s->buf = zvfs_bdev_buf_alloc(s->bdev, 1u << 16);
	if (!s->buf)
		DIE("out of memory");
}

static zvfs_blob_id mk_blob(struct store *s, uint64_t clusters, bool thin, const char *name)
{
	struct zvfs_blob_xattr x = {
		.name = "name", .value = name, .value_len = (uint16_t)(strlen(name) + 1)};
	struct zvfs_blob_opts o;
	zvfs_blob_id id;

	zvfs_blob_opts_init(&o);
	o.num_clusters = clusters;
	o.thin = thin;
	o.xattrs = &x;
	o.nxattrs = 1;
	CHECK(zvfs_blob_create(s->bs, &o, &id));
	return id;
}

/* Write one io unit at the start of cluster @cl (allocates it in a thin blob). */
static void touch(struct store *s, struct zvfs_blob *b, uint64_t cl)
{
	struct zvfs_bs_stats st;

	CHECK(zvfs_bs_get_stats(s->bs, &st));
	memset(s->buf, (int)(cl & 0xff) | 1, st.io_unit_size);
	CHECK(zvfs_blob_write_sync(b, s->buf, st.io_unit_size, cl * st.cluster_size));
}

/* Unload (clean) or abandon (unclean), then dump the device and close it. */
static void store_finish(struct store *s, const char *name, bool clean)
{
	uint8_t *img;

	if (clean)
		CHECK(zvfs_bs_unload(s->bs));
	else
		zvfs_bs_abandon(s->bs);
	img = zvfs_bdev_buf_alloc(s->bdev, (size_t)s->dev_size);
	if (!img)
		DIE("out of memory");
	CHECK(zvfs_bdev_read_sync(s->bdev, img, s->dev_size, 0));
	put_image(name, s->geo, s->dev_size, img, (size_t)s->dev_size);
	zvfs_bdev_buf_free(s->bdev, img);
	zvfs_bdev_buf_free(s->bdev, s->buf);
	CHECK(zvfs_bdev_close(s->bdev));
}

/* Blobs of every kind: thick, thin with a few clusters written, empty, the super blob. */
static void seed_mixed(const char *name, uint8_t geo, uint64_t dev_size, uint32_t cluster_size,
		       bool clean)
{
	struct zvfs_blob *b;
	struct store s;
	zvfs_blob_id a, t;

	store_init(&s, geo, dev_size, cluster_size, 32);
	a = mk_blob(&s, 4, false, "thick");
	t = mk_blob(&s, 16, true, "thin");
	(void)mk_blob(&s, 0, false, "empty");
	CHECK(zvfs_bs_set_super(s.bs, a));
	CHECK(zvfs_blob_open(s.bs, t, &b));
	touch(&s, b, 1);
	touch(&s, b, 9);
	CHECK(zvfs_blob_set_xattr(b, "owner", "fuzz", 5, false));
	CHECK(zvfs_blob_set_xattr(b, "zvfs.i", "\x01\x02", 2, true));
	CHECK(zvfs_blob_sync_md(b));
	if (!clean) {
		/* a grow and an allocation that never reach their sync */
		CHECK(zvfs_blob_resize(b, 20));
		touch(&s, b, 3);
	}
	if (clean)
		CHECK(zvfs_blob_close(b));
	store_finish(&s, name, clean);
}

/* 100 xattrs on one blob: a chain of several md pages. */
static void seed_xattrs(void)
{
	struct zvfs_blob *b;
	struct store s;
	zvfs_blob_id id;
	char name[32], val[128];

	store_init(&s, 0, 4u << 20, 16u << 10, 32);
	id = mk_blob(&s, 2, false, "xattrs");
	(void)mk_blob(&s, 1, true, "neighbour");
	CHECK(zvfs_blob_open(s.bs, id, &b));
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "user.attr%03d", i);
		memset(val, 'a' + i % 26, sizeof(val));
		CHECK(zvfs_blob_set_xattr(b, name, val, (uint16_t)(40 + i % 60), false));
	}
	CHECK(zvfs_blob_sync_md(b));
	CHECK(zvfs_blob_close(b));
	store_finish(&s, "xattrs", true);
}

/* More than 512 clusters: blobs with two extent pages, thick and thin. */
static void seed_extent_pages(bool clean)
{
	struct zvfs_blob *b;
	struct store s;
	zvfs_blob_id t;

	store_init(&s, 0, 16u << 20, 16u << 10, 32);
	(void)mk_blob(&s, 600, false, "thick600");
	t = mk_blob(&s, 700, true, "thin700");
	CHECK(zvfs_blob_open(s.bs, t, &b));
	touch(&s, b, 0);
	touch(&s, b, 511);
	touch(&s, b, 512);
	touch(&s, b, 699);
	CHECK(zvfs_blob_sync_md(b));
	CHECK(zvfs_blob_close(b));
	store_finish(&s, clean ? "extents" : "extents-unclean", clean);
}

/*
 * Write an RLE-encoded blob (older SPDK stores; ZVFS itself always writes extent tables) into
 * md page @idx of an abandoned store, for recovery to find: thick with 3 clusters from @first,
 * or thin with a hole, cluster @first and another hole.
 */
static void put_rle_blob(struct store *s, uint32_t md_start, uint32_t idx, bool thin,
			 uint32_t first)
{
	struct zvfs_bs_md_page *pg = zvfs_bdev_buf_alloc(s->bdev, 4096);
	struct zvfs_blob_md md;
	uint32_t npages;

	if (!pg)
		DIE("out of memory");
	zvfs_blob_md_init(&md);
	md.flags.invalid = thin ? ZVFS_BS_IFLAG_THIN_PROV : 0;
	md.has_flags = true;
	CHECK(zvfs_blob_md_add_xattr(&md, "name", 4, "rle", 4, false));
	if (thin) {
		CHECK(zvfs_blob_md_add_run(&md, 0, 2));
		CHECK(zvfs_blob_md_add_run(&md, first, 1));
		CHECK(zvfs_blob_md_add_run(&md, 0, 3));
	} else {
		CHECK(zvfs_blob_md_add_run(&md, first, 3));
	}
	CHECK(zvfs_blob_md_num_pages(&md, &npages));
	if (npages != 1)
		DIE("rle blob: %u pages", npages);
	CHECK(zvfs_blob_md_serialize(&md, ZVFS_BS_BLOBID_HIGH | idx, &idx, 1, pg));
	CHECK(zvfs_bdev_write_sync(s->bdev, pg, 4096, (uint64_t)(md_start + idx) * 4096));
	zvfs_blob_md_free(&md);
	zvfs_bdev_buf_free(s->bdev, pg);
}

/* RLE blobs beside ZVFS's own, in an unclean store (4 MiB, 16 KiB clusters: 256). */
static void seed_rle(void)
{
	struct store s;
	uint8_t *img;
	uint32_t md_start;

	store_init(&s, 0, 4u << 20, 16u << 10, 32);
	(void)mk_blob(&s, 2, false, "thick");
	zvfs_bs_abandon(s.bs);
	img = zvfs_bdev_buf_alloc(s.bdev, 4096);
	if (!img)
		DIE("out of memory");
	CHECK(zvfs_bdev_read_sync(s.bdev, img, 4096, 0));
	md_start = fuzz_le32(img + 48);
	zvfs_bdev_buf_free(s.bdev, img);
	put_rle_blob(&s, md_start, 20, false, 240);
	put_rle_blob(&s, md_start, 21, true, 250);
	img = zvfs_bdev_buf_alloc(s.bdev, (size_t)s.dev_size);
	if (!img)
		DIE("out of memory");
	CHECK(zvfs_bdev_read_sync(s.bdev, img, s.dev_size, 0));
	put_image("rle-unclean", s.geo, s.dev_size, img, (size_t)s.dev_size);
	zvfs_bdev_buf_free(s.bdev, img);
	zvfs_bdev_buf_free(s.bdev, s.buf);
	CHECK(zvfs_bdev_close(s.bdev));
}

static void seed_empty(void)
{
	struct store s;

	store_init(&s, 0, 1u << 20, 16u << 10, 16);
	store_finish(&s, "empty", true);
}

/* The SPDK-made fixture: its first pages, with size cut to 32 MiB (clusters 0-21 in use). */
static void seed_fixture(const char *path)
{
	const uint64_t size = 32u << 20;
	uint8_t *img = calloc(1, (size_t)size);
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!img || !f)
		DIE("%s: %s", path, strerror(errno));
	n = fread(img, 1, (size_t)size, f);
	fclose(f);
	if (n < 8 * 4096 || memcmp(img, ZVFS_BS_SIGNATURE, ZVFS_BS_SIGNATURE_LEN) != 0)
		DIE("%s: not the SPDK fixture", path);
	memcpy(img + 80, &size, 8);
	fuzz_crc_fix(img);
	put_image("spdk-fixture", 0, size, img, n);
	/* unclean: the recovery path over SPDK's own metadata */
	memset(img + 16, 0, 4);
	fuzz_crc_fix(img);
	put_image("spdk-fixture-unclean", 0, size, img, n);
	free(img);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: mkcorpus OUTDIR [SPDK_FIXTURE_IMG]\n");
		return 2;
	}
	g_out = argv[1];
	if (mkdir(g_out, 0755) != 0 && errno != EEXIST)
		DIE("%s: %s", g_out, strerror(errno));
	zvfs_log_set_level(ZVFS_LOG_ERROR);

	seed_empty();
	seed_mixed("mixed-16k", 0, 4u << 20, 16u << 10, true);
	seed_mixed("mixed-64k", 0, 8u << 20, 64u << 10, true);
	seed_mixed("mixed-unclean", 0, 4u << 20, 16u << 10, false);
	seed_mixed("mixed-io512", 1, 4u << 20, 16u << 10, true);
	seed_mixed("mixed-io512-unclean", 1, 4u << 20, 16u << 10, false);
	seed_mixed("mixed-md16k", 2, 8u << 20, 64u << 10, true);
	seed_mixed("mixed-md16k-unclean", 2, 8u << 20, 64u << 10, false);
	seed_xattrs();
	seed_extent_pages(true);
	seed_extent_pages(false);
	seed_rle();
	if (argc == 3)
		seed_fixture(argv[2]);
	printf("mkcorpus: %d seeds in %s\n", g_seeds, g_out);
	return 0;
}
