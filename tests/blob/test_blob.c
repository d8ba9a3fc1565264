/* SPDX-License-Identifier: MIT */
/*
 * Functional tests of the blobstore (include/zvfs/blob.h).
 *
 *   test_blob basic                          lifecycle, xattrs, many blobs, reload (RAM)
 *   test_blob file DIR PYTHON CHECKER        a file-backed store, checked by spdk_format_check.py
 *   test_blob fixture IMG TXT DIR PY CHECKER the SPDK-made store: list, read, write, reload
 *   test_blob thin                           thin blobs, resize, write_zeroes, unmap, zeroes
 *   test_blob threads                        8 threads, concurrent first writes, split I/O
 *   test_blob geometry SPEC                  xattrs, thin, zeroes on another device geometry
 *
 * Exit 0 pass, 1 fail, 77 skip.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/blob_internal.h"
#include "blobtest.h"
#include "util/log.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

static const char *prog = "test_blob";
static const char *g_spec = "ram:size=64M"; /* device of the xattr / thin / zeroes checks */

/* ---- helpers ----------------------------------------------------------------------------- */

static int write_pattern(struct zvfs_bs *bs, struct zvfs_blob *b, uint64_t off, uint64_t len,
			 uint64_t seed)
{
	void *buf = zvfs_bdev_buf_alloc(zvfs_bs_get_bdev(bs), len);
	int rc;

	if (!buf)
		return -ENOMEM;
	t_fill(buf, len, seed, off);
	rc = zvfs_blob_write_sync(b, buf, len, off);
	zvfs_bdev_buf_free(zvfs_bs_get_bdev(bs), buf);
	return rc;
}

/* 0, a negative errno, or -EBADMSG on a mismatch (seed 0 = zeroes expected). */
static int check_pattern(struct zvfs_bs *bs, struct zvfs_blob *b, uint64_t off, uint64_t len,
			 uint64_t seed)
{
	void *buf = zvfs_bdev_buf_alloc(zvfs_bs_get_bdev(bs), len);
	ssize_t bad;
	int rc;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0xee, len);
	rc = zvfs_blob_read_sync(b, buf, len, off);
	if (rc == 0) {
		bad = seed ? t_check(buf, len, seed, off) : t_check_zero(buf, len);
		if (bad >= 0) {
			t_note("mismatch at blob offset %" PRIu64, off + (uint64_t)bad);
			rc = -EBADMSG;
		}
	}
	zvfs_bdev_buf_free(zvfs_bs_get_bdev(bs), buf);
	return rc;
}

static int create_blob(struct zvfs_bs *bs, uint64_t nc, bool thin, zvfs_blob_id *id)
{
	struct zvfs_blob_opts o;

	zvfs_blob_opts_init(&o);
	o.num_clusters = nc;
	o.thin = thin;
	return zvfs_blob_create(bs, &o, id);
}

static uint64_t used_clusters(struct zvfs_bs *bs)
{
	struct zvfs_bs_stats st;

	zvfs_bs_get_stats(bs, &st);
	return st.total_clusters - st.free_clusters;
}

/* ---- basic ------------------------------------------------------------------------------- */

static void t_lifecycle(void)
{
	struct zvfs_bdev *bdev = bt_open("ram:size=64M");
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL, *b2 = NULL;
	struct zvfs_blob_xattr xa[2] = {{"name", "blob-one", 8}, {"owner", "test", 4}};
	struct zvfs_blob_opts o;
	struct zvfs_bs_stats st;
	zvfs_blob_id id = 0, id2 = 0, it;
	char val[64];
	int rc;

	t_begin("lifecycle: init, create thick, I/O, refcounted open, delete, reload");
	EXPECT(bdev, "open ram");
	rc = bt_init(bdev, 64 * KiB, 0, &bs);
	EXPECT(rc == 0, "init: %s", t_err(rc));
	zvfs_bs_get_stats(bs, &st);
	EXPECT(st.total_clusters == 1024 && st.data_clusters == 959 && st.md_pages == 1024,
	       "layout %" PRIu64 "/%" PRIu64 "/%" PRIu64, st.total_clusters, st.data_clusters,
	       st.md_pages);
	EXPECT(st.free_clusters == 959 && st.blobs == 0, "free %" PRIu64, st.free_clusters);
	EXPECT(strcmp(st.bstype, "ZVFS") == 0, "bstype %s", st.bstype);
	zvfs_blob_opts_init(&o);
	o.num_clusters = 4;
	o.xattrs = xa;
	o.nxattrs = 2;
	rc = zvfs_blob_create(bs, &o, &id);
	EXPECT(rc == 0 && id == 0x100000001ull, "create: %s id %#" PRIx64, t_err(rc),
	       id); /* page 0: the window */
	rc = create_blob(bs, 2, false, &id2);
	EXPECT(rc == 0 && id2 != id, "create 2: %s", t_err(rc));
	EXPECT(used_clusters(bs) == 65 + 6, "used %" PRIu64, used_clusters(bs));
	rc = zvfs_blob_open(bs, id, &b);
	EXPECT(rc == 0, "open: %s", t_err(rc));
	EXPECT(zvfs_blob_get_num_clusters(b) == 4 && !zvfs_blob_is_thin(b) &&
		       zvfs_blob_get_num_allocated_clusters(b) == 4,
	       "size");
	rc = zvfs_blob_get_xattr(b, "name", val, sizeof(val), false);
	EXPECT(rc == 8 && memcmp(val, "blob-one", 8) == 0, "xattr name: %s", t_err(rc));
	rc = zvfs_blob_open(bs, id, &b2);
	EXPECT(rc == 0 && b2 == b, "second open returns the same handle");
	EXPECT(zvfs_bs_delete_blob(bs, id) == -EBUSY, "delete while open");
	rc = zvfs_blob_close(b2);
	b2 = NULL;
	EXPECT(rc == 0, "close 1");
	EXPECT(zvfs_bs_delete_blob(bs, id) == -EBUSY, "delete while still open");
	/* thick data I/O across all four clusters, unaligned to clusters */
	rc = write_pattern(bs, b, 0, 256 * KiB, 11);
	EXPECT(rc == 0, "write: %s", t_err(rc));
	rc = write_pattern(bs, b, 60 * KiB, 72 * KiB, 12);
	EXPECT(rc == 0, "write 2: %s", t_err(rc));
	EXPECT(check_pattern(bs, b, 0, 60 * KiB, 11) == 0, "read 1");
	EXPECT(check_pattern(bs, b, 60 * KiB, 72 * KiB, 12) == 0, "read 2");
	EXPECT(check_pattern(bs, b, 132 * KiB, 124 * KiB, 11) == 0, "read 3");
	EXPECT(zvfs_blob_write_sync(b, val, 4096, 256 * KiB) == -ERANGE, "write past end");
	EXPECT(zvfs_blob_read_sync(b, val, 100, 0) == -EINVAL, "unaligned read");
	{
		/* readv/writev with several iovecs crossing a cluster boundary */
		char *a = zvfs_bdev_buf_alloc(bdev, 3 * 4096 * 2);
		struct iovec iov[3] = {{a, 4096}, {a + 4096, 8192}, {a + 12288, 4096}};

		EXPECT(a, "buf");
		t_fill(a, 16384, 13, 60 * KiB);
		rc = zvfs_blob_writev_sync(b, iov, 3, 60 * KiB);
		memset(a, 0, 16384);
		if (rc == 0)
			rc = zvfs_blob_readv_sync(b, iov, 3, 60 * KiB);
		if (rc == 0 && t_check(a, 16384, 13, 60 * KiB) >= 0)
			rc = -EBADMSG;
		zvfs_bdev_buf_free(bdev, a);
		EXPECT(rc == 0, "readv/writev: %s", t_err(rc));
	}
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync_md");
	EXPECT(zvfs_bs_unload(bs) == -EBUSY, "unload with open blob");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	EXPECT(zvfs_bs_set_super(bs, id2) == 0, "set super");
	rc = zvfs_bs_unload(bs);
	bs = NULL;
	EXPECT(rc == 0, "unload: %s", t_err(rc));
	rc = bt_load(bdev, false, &bs);
	EXPECT(rc == 0, "load: %s", t_err(rc));
	zvfs_bs_get_stats(bs, &st);
	EXPECT(!st.loaded_dirty && st.blobs == 2 && used_clusters(bs) == 71, "stats after load");
	EXPECT(zvfs_bs_get_super(bs) == id2, "super blob");
	EXPECT(zvfs_bs_next_blob(bs, ZVFS_BLOBID_INVALID, &it) == 0 && it == id, "iterate 1");
	EXPECT(zvfs_bs_next_blob(bs, it, &it) == 0 && it == id2, "iterate 2");
	EXPECT(zvfs_bs_next_blob(bs, it, &it) == -ENOENT, "iterate end");
	rc = zvfs_blob_open(bs, id, &b);
	EXPECT(rc == 0, "reopen: %s", t_err(rc));
	EXPECT(check_pattern(bs, b, 0, 60 * KiB, 11) == 0, "read after reload");
	EXPECT(zvfs_blob_get_xattr(b, "owner", val, sizeof(val), false) == 4, "xattr after reload");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	rc = zvfs_bs_delete_blob(bs, id);
	EXPECT(rc == 0, "delete: %s", t_err(rc));
	EXPECT(zvfs_blob_open(bs, id, &b) == -ENOENT, "open deleted");
	b = NULL;
	EXPECT(zvfs_bs_delete_blob(bs, id) == -ENOENT, "delete twice");
	EXPECT(used_clusters(bs) == 67, "clusters released: %" PRIu64, used_clusters(bs));
	/* id reuse: lowest free md page */
	rc = create_blob(bs, 1, false, &it);
	EXPECT(rc == 0 && it == id, "id reused");
	{
		/* recovery finds the same state as the masks */
		struct zvfs_bs_stats a, c;

		zvfs_bs_get_stats(bs, &a);
		EXPECT(zvfs_bs_unload(bs) == 0, "unload");
		bs = NULL;
		rc = bt_load(bdev, true, &bs);
		EXPECT(rc == 0, "force recover: %s", t_err(rc));
		zvfs_bs_get_stats(bs, &c);
		EXPECT(c.loaded_dirty && c.blobs == a.blobs && c.free_clusters == a.free_clusters &&
			       c.md_pages_used == a.md_pages_used && c.bad_blobs == 0,
		       "recovered stats differ: blobs %" PRIu64 "/%" PRIu64 " free %" PRIu64
		       "/%" PRIu64 " pages %" PRIu64 "/%" PRIu64,
		       c.blobs, a.blobs, c.free_clusters, a.free_clusters, c.md_pages_used,
		       a.md_pages_used);
	}
	{
		/* bstype mismatch, no store, read-only loads */
		struct zvfs_bs_opts lo;
		struct zvfs_bs *other = NULL;

		EXPECT(zvfs_bs_unload(bs) == 0, "unload");
		bs = NULL;
		zvfs_bs_opts_init(&lo);
		memcpy(lo.bstype, "OTHER", 5);
		EXPECT(zvfs_bs_load(bdev, &lo, &other) == -ENXIO, "bstype mismatch");
		memcpy(lo.bstype, "ZVFS\0", 5);
		EXPECT(zvfs_bs_load(bdev, &lo, &other) == 0 && zvfs_bs_unload(other) == 0,
		       "bstype ZVFS");
		zvfs_bs_opts_init(&lo); /* any type */
		lo.read_only = true;
		EXPECT(zvfs_bs_load(bdev, &lo, &bs) == 0, "read-only load");
		EXPECT(create_blob(bs, 1, false, &it) == -EROFS, "create on a read-only store");
		EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open read-only");
		EXPECT(zvfs_blob_is_read_only(b), "blob read-only");
		EXPECT(zvfs_blob_write_sync(b, val, 4096, 0) == -EROFS, "write read-only");
		EXPECT(zvfs_blob_set_xattr(b, "a", "b", 1, false) == -EPERM, "xattr read-only");
		EXPECT(zvfs_blob_close(b) == 0, "close");
		b = NULL;
		EXPECT(zvfs_bs_unload(bs) == 0, "unload read-only");
		bs = NULL;
		EXPECT(zvfs_bdev_write_zeroes_sync(bdev, 0, 4096) == 0, "wipe super");
		EXPECT(bt_load(bdev, false, &bs) == -EILSEQ, "no store");
		bs = NULL;
	}
out:
	if (b2)
		zvfs_blob_close(b2);
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

static void t_xattrs(void)
{
	struct zvfs_bdev *bdev = bt_open(g_spec);
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	zvfs_blob_id id = 0;
	char name[64], val[4096], list[65536];
	int rc, n = 300;

	t_begin("xattrs: user and internal, replace, remove, list, multi-page chains, reload");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	EXPECT(create_blob(bs, 3, false, &id) == 0, "create");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "attr.%04d", i);
		memset(val, 'a' + i % 26, 100 + i);
		rc = zvfs_blob_set_xattr(b, name, val, (uint16_t)(100 + i), i % 10 == 0);
		EXPECT(rc == 0, "set %s: %s", name, t_err(rc));
	}
	EXPECT(zvfs_blob_set_xattr(b, "attr.0001", "new", 3, false) == 0, "replace");
	EXPECT(zvfs_blob_remove_xattr(b, "attr.0002", false) == 0, "remove");
	EXPECT(zvfs_blob_remove_xattr(b, "attr.0002", false) == -ENOENT, "remove twice");
	EXPECT(zvfs_blob_remove_xattr(b, "attr.0003", true) == -ENOENT, "wrong namespace");
	memset(val, 'x', sizeof(val));
	EXPECT(zvfs_blob_set_xattr(b, "big", val, 4060, false) == 0, "largest xattr");
	EXPECT(zvfs_blob_set_xattr(b, "big2", val, 4060, false) == -E2BIG, "too big");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
	/* the chain is rewritten to fresh pages on every sync */
	EXPECT(zvfs_blob_set_xattr(b, "attr.0004", "v", 1, false) == 0, "set again");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync 2");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	EXPECT(zvfs_bs_unload(bs) == 0, "unload");
	bs = NULL;
	EXPECT(bt_load(bdev, false, &bs) == 0, "load");
	for (int pass = 0; pass < 2; pass++) {
		int nu = 0;

		EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "attr.%04d", i);
			rc = zvfs_blob_get_xattr(b, name, val, sizeof(val), i % 10 == 0);
			if (i == 2) {
				EXPECT(rc == -ENOENT, "removed xattr back");
				continue;
			}
			if (i == 1 || i == 4) {
				EXPECT(rc == (i == 1 ? 3 : 1), "replaced %d: %d", i, rc);
				continue;
			}
			EXPECT(rc == 100 + i && val[0] == 'a' + i % 26 && val[rc - 1] == val[0],
			       "xattr %d: %s", i, t_err(rc));
		}
		rc = zvfs_blob_list_xattrs(b, list, sizeof(list), false);
		for (int off = 0; off < rc; off += (int)strlen(list + off) + 1)
			nu++;
		EXPECT(nu == n - n / 10 - 1 + 1, "user xattrs listed: %d", nu);
		EXPECT(zvfs_blob_get_xattr(b, "big", val, sizeof(val), false) == 4060, "big");
		EXPECT(zvfs_blob_close(b) == 0, "close");
		b = NULL;
		EXPECT(zvfs_bs_unload(bs) == 0, "unload");
		bs = NULL;
		EXPECT(bt_load(bdev, true, &bs) == 0, "recover");
	}
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

static void t_many(void)
{
	struct zvfs_bdev *bdev = bt_open("ram:size=256M");
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	enum { N = 3000 };
	zvfs_blob_id *ids = calloc(N, sizeof(*ids)), it;
	struct zvfs_bs_stats st;
	char v[32];
	int rc, cnt;

	t_begin("3000 blobs: create with xattrs, iterate, reload, delete half, recover");
	EXPECT(bdev && ids, "setup");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	for (int i = 0; i < N; i++) {
		struct zvfs_blob_opts o;
		struct zvfs_blob_xattr x = {"n", v, 0};

		x.value_len = (uint16_t)snprintf(v, sizeof(v), "blob-%d", i);
		zvfs_blob_opts_init(&o);
		o.num_clusters = i % 3 == 0 ? 1 : 0;
		o.thin = i % 2;
		o.xattrs = &x;
		o.nxattrs = 1;
		rc = zvfs_blob_create(bs, &o, &ids[i]);
		EXPECT(rc == 0, "create %d: %s", i, t_err(rc));
	}
	for (int pass = 0; pass < 3; pass++) {
		cnt = 0;
		for (rc = zvfs_bs_next_blob(bs, ZVFS_BLOBID_INVALID, &it); rc == 0;
		     rc = zvfs_bs_next_blob(bs, it, &it))
			cnt++;
		zvfs_bs_get_stats(bs, &st);
		EXPECT(cnt == (pass ? N / 2 : N) && st.blobs == (uint64_t)cnt, "count %d", cnt);
		for (int i = 0; i < N; i += 7) {
			char got[32];

			if (pass && i % 2)
				continue;
			EXPECT(zvfs_blob_open(bs, ids[i], &b) == 0, "open %d", i);
			rc = zvfs_blob_get_xattr(b, "n", got, sizeof(got), false);
			snprintf(v, sizeof(v), "blob-%d", i);
			EXPECT(rc == (int)strlen(v) && memcmp(got, v, (size_t)rc) == 0, "xattr %d",
			       i);
			EXPECT(zvfs_blob_get_num_clusters(b) == (i % 3 == 0 ? 1u : 0u), "size %d",
			       i);
			zvfs_blob_close(b);
			b = NULL;
		}
		if (pass == 0)
			for (int i = 1; i < N; i += 2)
				EXPECT(zvfs_bs_delete_blob(bs, ids[i]) == 0, "delete %d", i);
		EXPECT(zvfs_bs_unload(bs) == 0, "unload");
		bs = NULL;
		EXPECT(bt_load(bdev, pass == 1, &bs) == 0, "load");
	}
	t_note("%d blobs created, %d deleted, reloaded clean and by recovery", N, N / 2);
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	free(ids);
	t_end();
}

/* Read md page idx, let fn change it, write it back (CRC recomputed if fix_crc). */
static int poke_md(struct zvfs_bs *bs, uint32_t idx, void (*fn)(struct zvfs_bs_md_page *, void *),
		   void *arg, bool fix_crc)
{
	struct zvfs_bdev *bdev = zvfs_bs_get_bdev(bs);
	uint64_t off = ((uint64_t)bs->l.md_start + idx) * bs->l.md_page_size;
	struct zvfs_bs_md_page *p = zvfs_bdev_buf_alloc(bdev, bs->l.md_page_size);
	int rc;

	if (!p)
		return -ENOMEM;
	rc = zvfs_bdev_read_sync(bdev, p, bs->l.md_page_size, off);
	if (rc == 0) {
		fn(p, arg);
		if (fix_crc)
			p->crc = zvfs_bs_page_crc(p);
		rc = zvfs_bdev_write_sync(bdev, p, bs->l.md_page_size, off);
	}
	zvfs_bdev_buf_free(bdev, p);
	return rc;
}

static void flip_byte(struct zvfs_bs_md_page *p, void *arg)
{
	(void)arg;
	p->descriptors[100] ^= 0x55;
}

static void set_ep_entry(struct zvfs_bs_md_page *p, void *arg)
{
	struct zvfs_bs_desc_extent_page *ep = (void *)p->descriptors;

	ep->cluster_idx[1] = *(uint32_t *)arg;
}

static void t_corrupt(void)
{
	struct zvfs_bdev *bdev = bt_open("ram:size=64M");
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	zvfs_blob_id ids[3] = {0}, it;
	uint32_t chain_b = 0, ep_c = 0, a_cl0 = 0;
	struct zvfs_bs_stats st;
	char val[256];
	int rc, n;

	t_begin("corrupt metadata fails one blob only: bad chain CRC, cluster owned twice");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	memset(val, 'v', sizeof(val));
	for (int i = 0; i < 3; i++) {
		EXPECT(create_blob(bs, i == 2 ? 3 : 2, i == 2, &ids[i]) == 0, "create");
		EXPECT(zvfs_blob_open(bs, ids[i], &b) == 0, "open");
		for (int k = 0; k < 40; k++) {
			char name[16];

			snprintf(name, sizeof(name), "x%d", k);
			EXPECT(zvfs_blob_set_xattr(b, name, val, sizeof(val), false) == 0, "xattr");
		}
		EXPECT(write_pattern(bs, b, 64 * KiB, 64 * KiB, 50 + (uint64_t)i) == 0, "write");
		EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
		if (i == 0)
			a_cl0 = blob_map_get(b, 0);
		if (i == 1)
			chain_b = b->nchain ? b->chain[0] : 0;
		if (i == 2)
			ep_c = b->ep_pages[0];
		EXPECT(zvfs_blob_close(b) == 0, "close");
		b = NULL;
	}
	EXPECT(chain_b && ep_c && a_cl0, "internals: chain %u ep %u cluster %u", chain_b, ep_c,
	       a_cl0);
	EXPECT(zvfs_bs_unload(bs) == 0, "unload");
	bs = NULL;
	EXPECT(bt_load(bdev, false, &bs) == 0, "load");
	EXPECT(poke_md(bs, chain_b, flip_byte, NULL, false) == 0, "corrupt B's chain page");
	rc = zvfs_blob_open(bs, ids[1], &b);
	b = NULL;
	EXPECT(rc == -EBADMSG, "open B: %s", t_err(rc));
	EXPECT(zvfs_blob_open(bs, ids[0], &b) == 0, "open A");
	EXPECT(check_pattern(bs, b, 64 * KiB, 64 * KiB, 50) == 0, "A data");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	/* C's extent page claims A's first cluster too */
	EXPECT(poke_md(bs, ep_c, set_ep_entry, &a_cl0, true) == 0, "corrupt C's extent page");
	zvfs_bs_abandon(bs); /* as after a crash: the next load recovers */
	bs = NULL;
	EXPECT(bt_load(bdev, true, &bs) == 0, "recover");
	zvfs_bs_get_stats(bs, &st);
	EXPECT(st.bad_blobs == 2 && st.blobs == 1, "bad %" PRIu64 " blobs %" PRIu64, st.bad_blobs,
	       st.blobs);
	n = 0;
	for (rc = zvfs_bs_next_blob(bs, ZVFS_BLOBID_INVALID, &it); rc == 0;
	     rc = zvfs_bs_next_blob(bs, it, &it))
		n++;
	EXPECT(n == 1, "one blob listed");
	EXPECT(zvfs_blob_open(bs, ids[0], &b) == 0, "open A");
	EXPECT(check_pattern(bs, b, 64 * KiB, 64 * KiB, 50) == 0, "A data after recovery");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	/* nothing the bad blobs may own is handed out again */
	/* A's 2, and B's 2 through its extent page; C lost the one cluster it no longer names */
	EXPECT(used_clusters(bs) == 65 + 2 + 2, "claimed: %" PRIu64, used_clusters(bs) - 65);
	EXPECT(create_blob(bs, 3, false, &it) == 0, "create after recovery");
	EXPECT(it != ids[1] && it != ids[2], "bad blobs' ids are not reused");
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

struct long_ep {
	uint64_t id;
	uint32_t c1, extra;
};

static void make_long_ep(struct zvfs_bs_md_page *p, void *arg)
{
	struct long_ep *e = arg;
	uint32_t cl[20] = {0};

	cl[1] = e->c1;
	cl[15] = e->extra;
	zvfs_bs_extent_page_encode(p, e->id, 0, cl, 20);
}

static void t_interrupted_grow(void)
{
	struct zvfs_bdev *bdev = bt_open("ram:size=64M");
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	struct long_ep e = {0};
	struct zvfs_bs_stats st;
	uint32_t ep = 0;
	uint64_t used;

	t_begin("an extent page longer than the blob (SPDK's interrupted grow) loads");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	EXPECT(create_blob(bs, 10, true, &e.id) == 0, "create");
	EXPECT(zvfs_blob_open(bs, e.id, &b) == 0, "open");
	EXPECT(write_pattern(bs, b, 64 * KiB, 4096, 9) == 0, "write");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
	e.c1 = blob_map_get(b, 1);
	ep = b->ep_pages[0];
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	used = used_clusters(bs);
	e.extra = (uint32_t)used + 5; /* a free cluster */
	EXPECT(poke_md(bs, ep, make_long_ep, &e, true) == 0, "write a 20-entry extent page");
	zvfs_bs_abandon(bs);
	bs = NULL;
	EXPECT(bt_load(bdev, true, &bs) == 0, "recover");
	zvfs_bs_get_stats(bs, &st);
	EXPECT(st.bad_blobs == 0 && st.blobs == 1, "no bad blob");
	EXPECT(used_clusters(bs) == used, "the entry past the end is not claimed");
	EXPECT(zvfs_blob_open(bs, e.id, &b) == 0, "open");
	EXPECT(zvfs_blob_get_num_clusters(b) == 10 && zvfs_blob_get_num_allocated_clusters(b) == 1,
	       "size");
	EXPECT(check_pattern(bs, b, 64 * KiB, 4096, 9) == 0, "data");
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

static int run_basic(void)
{
	t_lifecycle();
	t_xattrs();
	t_many();
	zvfs_log_set_level(ZVFS_LOG_ERROR); /* the corruption below is logged */
	t_corrupt();
	t_interrupted_grow();
	return t_summary(prog);
}

/* ---- file-backed, checked by the independent decoder -------------------------------------- */

static int run_file(const char *dir, const char *python, const char *checker)
{
	char path[512], spec[600];
	struct zvfs_bdev *bdev = NULL;
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	struct zvfs_bs_stats st;
	zvfs_blob_id ids[40];
	int rc;

	snprintf(path, sizeof(path), "%s/blob-file-test.img", dir);
	unlink(path);
	t_begin("file-backed store: create, write, unload, spdk_format_check, reload");
	snprintf(spec, sizeof(spec), "%s,size=32M,create", path);
	bdev = bt_open(spec);
	if (!bdev) {
		snprintf(spec, sizeof(spec), "%s,size=32M,create,buffered", path);
		bdev = bt_open(spec);
	}
	EXPECT(bdev, "open %s", path);
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	for (int i = 0; i < 40; i++) {
		struct zvfs_blob_opts o;
		char name[32], val[600];
		struct zvfs_blob_xattr x[2] = {{"name", name, 0}, {"pad", val, sizeof(val)}};

		x[0].value_len = (uint16_t)snprintf(name, sizeof(name), "file-%d", i);
		memset(val, i, sizeof(val));
		zvfs_blob_opts_init(&o);
		o.num_clusters = (uint64_t)(i % 4);
		o.thin = i % 5 == 0;
		o.xattrs = x;
		o.nxattrs = i % 8 == 0 ? 2 : 1;
		rc = zvfs_blob_create(bs, &o, &ids[i]);
		EXPECT(rc == 0, "create: %s", t_err(rc));
		if (i % 4 && !(i % 5 == 0)) {
			EXPECT(zvfs_blob_open(bs, ids[i], &b) == 0, "open");
			EXPECT(write_pattern(bs, b, 0, (uint64_t)(i % 4) * 64 * KiB, 100 + i) == 0,
			       "write");
			if (i % 8 == 1) {
				for (int k = 0; k < 60; k++) {
					char n[16];

					snprintf(n, sizeof(n), "x%d", k);
					EXPECT(zvfs_blob_set_xattr(b, n, val, 200, k % 3 == 0) == 0,
					       "xattr");
				}
			}
			EXPECT(zvfs_blob_close(b) == 0, "close");
			b = NULL;
		}
	}
	/* a thin blob with an allocation in its second extent page */
	EXPECT(zvfs_blob_open(bs, ids[5], &b) == 0, "open thin");
	EXPECT(zvfs_blob_resize(b, 600) == 0, "resize");
	EXPECT(write_pattern(bs, b, 550 * 64 * KiB, 64 * KiB, 77) == 0, "write thin");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	EXPECT(zvfs_bs_delete_blob(bs, ids[2]) == 0, "delete");
	zvfs_bs_get_stats(bs, &st);
	st.blobs += bs->win_id != ZVFS_BLOBID_INVALID; /* the allocation window's blob */
	EXPECT(zvfs_bs_unload(bs) == 0, "unload");
	bs = NULL;
	rc = bt_spdk_check(python, checker, path, st.md_pages_used, st.blobs,
			   st.total_clusters - st.free_clusters, NULL);
	EXPECT(rc == 0, "spdk_format_check.py disagrees");
	EXPECT(bt_load(bdev, false, &bs) == 0, "load");
	for (int i = 0; i < 40; i++) {
		if (i == 2 || !(i % 4) || i % 5 == 0)
			continue;
		EXPECT(zvfs_blob_open(bs, ids[i], &b) == 0, "open %d", i);
		EXPECT(check_pattern(bs, b, 0, (uint64_t)(i % 4) * 64 * KiB, 100 + i) == 0,
		       "data %d", i);
		zvfs_blob_close(b);
		b = NULL;
	}
	EXPECT(zvfs_blob_open(bs, ids[5], &b) == 0, "open thin");
	EXPECT(check_pattern(bs, b, 550 * 64 * KiB, 64 * KiB, 77) == 0, "thin data");
	EXPECT(check_pattern(bs, b, 549 * 64 * KiB, 64 * KiB, 0) == 0, "thin hole");
	EXPECT(zvfs_blob_get_num_allocated_clusters(b) == 1, "thin allocated");

	/*
	 * An unclean image must decode too (FORMAT.md: stale masks, clean=0):
	 * change things, sync, and drop the store as a crash would.
	 */
	EXPECT(write_pattern(bs, b, 10 * 64 * KiB, 64 * KiB, 78) == 0, "write thin again");
	EXPECT(zvfs_blob_set_xattr(b, "after", "crash", 5, false) == 0, "xattr");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync_md");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	zvfs_bs_get_stats(bs, &st);
	st.blobs += bs->win_id != ZVFS_BLOBID_INVALID;
	zvfs_bs_abandon(bs);
	bs = NULL;
	{
		unsigned roots = 0;

		rc = bt_spdk_check(python, checker, path, UINT64_MAX, UINT64_MAX, UINT64_MAX,
				   &roots);
		EXPECT(rc == 0, "spdk_format_check.py disagrees on the unclean image");
		EXPECT(roots == st.blobs, "unclean image: %u roots, %" PRIu64 " blobs", roots,
		       st.blobs);
	}
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	if (!getenv("ZVFS_KEEP_IMAGES"))
		unlink(path);
	t_end();
	return t_summary(prog);
}

/* ---- the SPDK fixture --------------------------------------------------------------------- */

static int copy_head(const char *from, const char *to, uint64_t bytes, uint64_t trunc)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char buf[65536];
	uint64_t done = 0;
	int rc = 0;

	if (in < 0 || out < 0) {
		rc = -errno;
		goto out;
	}
	while (done < bytes) {
		ssize_t n = read(in, buf, sizeof(buf));

		if (n <= 0)
			break;
		if (done + (uint64_t)n > bytes)
			n = (ssize_t)(bytes - done);
		if (write(out, buf, (size_t)n) != n) {
			rc = -EIO;
			goto out;
		}
		done += (uint64_t)n;
	}
	if (trunc && ftruncate(out, (off_t)trunc) < 0)
		rc = -errno;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

static int run_fixture(const char *img, const char *txt, const char *dir, const char *python,
		       const char *checker)
{
	char path[512], head[512], spec[600], val[64], list[256];
	struct zvfs_bdev *bdev = NULL;
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	const zvfs_blob_id A = 0x100000000ull, B = 0x100000002ull;
	zvfs_blob_id it;
	struct zvfs_bs_stats st;
	char *buf = NULL, *text = NULL;
	long tlen = 0;
	FILE *f;
	int rc, n;

	t_begin("SPDK fixture: load, list, read, write blob B, reload, spdk_format_check");
	f = fopen(txt, "rb");
	EXPECT(f, "open %s", txt);
	text = malloc(8192);
	tlen = (long)fread(text, 1, 8192, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/blob-fixture-rw.img", dir);
	rc = copy_head(img, path, 22 * MiB, 4ull << 30); /* the file may be extended already */
	EXPECT(rc == 0, "copy fixture: %s", t_err(rc));
	snprintf(spec, sizeof(spec), "%s", path);
	bdev = bt_open(spec);
	if (!bdev) {
		snprintf(spec, sizeof(spec), "%s,buffered", path);
		bdev = bt_open(spec);
	}
	EXPECT(bdev, "open %s", path);
	rc = bt_load(bdev, false, &bs);
	EXPECT(rc == 0, "load: %s", t_err(rc));
	zvfs_bs_get_stats(bs, &st);
	t_note("fixture: %" PRIu64 " blobs, %" PRIu64 " free of %" PRIu64 " clusters, bstype '%s'",
	       st.blobs, st.free_clusters, st.data_clusters, st.bstype);
	EXPECT(st.blobs == 2 && !st.loaded_dirty && st.cluster_size == MiB, "stats");
	EXPECT(zvfs_bs_get_super(bs) == A, "super blob");
	n = 0;
	for (rc = zvfs_bs_next_blob(bs, ZVFS_BLOBID_INVALID, &it); rc == 0;
	     rc = zvfs_bs_next_blob(bs, it, &it)) {
		EXPECT(zvfs_blob_open(bs, it, &b) == 0, "open %#" PRIx64, it);
		rc = zvfs_blob_list_xattrs(b, list, sizeof(list), false);
		for (int off = 0; off < rc; off += (int)strlen(list + off) + 1) {
			int l = zvfs_blob_get_xattr(b, list + off, val, sizeof(val), false);

			t_note("blob %#" PRIx64 ": %" PRIu64 " clusters, xattr %s = '%.*s'", it,
			       zvfs_blob_get_num_clusters(b), list + off, l > 0 ? l - 1 : 0, val);
		}
		zvfs_blob_close(b);
		b = NULL;
		n++;
	}
	EXPECT(n == 2, "two blobs listed");
	buf = zvfs_bdev_buf_alloc(bdev, 4 * MiB);
	EXPECT(buf, "buf");
	EXPECT(zvfs_blob_open(bs, A, &b) == 0, "open A");
	EXPECT(zvfs_blob_get_num_clusters(b) == 4, "A size");
	EXPECT(zvfs_blob_get_xattr(b, "name", val, sizeof(val), false) == 14 &&
		       memcmp(val, "sample_blob_A", 14) == 0,
	       "A name");
	EXPECT(zvfs_blob_get_xattr(b, "owner", val, sizeof(val), false) == 12, "A owner");
	EXPECT(zvfs_blob_read_sync(b, buf, 4 * MiB, 0) == 0, "read A");
	for (uint64_t i = 0; i < 4 * MiB; i++)
		EXPECT((uint8_t)buf[i] == 0x5a, "A byte %" PRIu64, i);
	zvfs_blob_close(b);
	b = NULL;
	for (int pass = 0; pass < 2; pass++) {
		EXPECT(zvfs_blob_open(bs, B, &b) == 0, "open B");
		EXPECT(zvfs_blob_get_num_clusters(b) == 1, "B size");
		EXPECT(zvfs_blob_read_sync(b, buf, MiB, 0) == 0, "read B");
		EXPECT(memcmp(buf, text, (size_t)tlen) == 0, "B text");
		if (pass == 0) {
			for (uint64_t i = (uint64_t)tlen; i < MiB; i++)
				EXPECT(buf[i] == 0, "B zero at %" PRIu64, i);
			t_fill(buf, 64 * KiB, 42, 512 * KiB);
			EXPECT(zvfs_blob_write_sync(b, buf, 64 * KiB, 512 * KiB) == 0, "write B");
			EXPECT(zvfs_blob_set_xattr(b, "zvfs.test", "1", 1, false) == 0, "xattr B");
		} else {
			EXPECT(t_check(buf + 512 * KiB, 64 * KiB, 42, 512 * KiB) < 0, "B new data");
			EXPECT(zvfs_blob_get_xattr(b, "zvfs.test", val, sizeof(val), false) == 1,
			       "B new xattr");
		}
		EXPECT(zvfs_blob_close(b) == 0, "close B");
		b = NULL;
		zvfs_bs_get_stats(bs, &st);
		EXPECT(zvfs_bs_unload(bs) == 0, "unload");
		bs = NULL;
		EXPECT(bt_load(bdev, false, &bs) == 0, "reload");
	}
	/* the checker reads a whole image: give it the metadata head only (17 MiB) */
	snprintf(head, sizeof(head), "%s/blob-fixture-head.img", dir);
	EXPECT(zvfs_bs_unload(bs) == 0, "unload");
	bs = NULL;
	EXPECT(copy_head(path, head, 17 * MiB, 0) == 0, "copy head");
	EXPECT(bt_spdk_check(python, checker, head, st.md_pages_used, st.blobs,
			     st.total_clusters - st.free_clusters, NULL) == 0,
	       "spdk_format_check.py disagrees");
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (buf)
		zvfs_bdev_buf_free(bdev, buf);
	if (bdev)
		zvfs_bdev_close(bdev);
	free(text);
	if (!getenv("ZVFS_KEEP_IMAGES")) {
		unlink(path);
		unlink(head);
	}
	t_end();
	return t_summary(prog);
}

/* ---- thin blobs, resize, zeroes ----------------------------------------------------------- */

static void t_thin(void)
{
	struct zvfs_bdev *bdev = bt_open(g_spec);
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	const uint64_t cs = 64 * KiB;
	zvfs_blob_id id = 0;
	uint64_t cl, base;

	t_begin("thin: allocate on write, holes, next_allocated, resize, reload");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	base = used_clusters(bs);
	EXPECT(create_blob(bs, 100, true, &id) == 0, "create");
	EXPECT(used_clusters(bs) == base, "thin create allocates nothing");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	EXPECT(zvfs_blob_is_thin(b) && zvfs_blob_get_num_allocated_clusters(b) == 0, "thin");
	EXPECT(check_pattern(bs, b, 0, 100 * cs, 0) == 0, "all holes read zero");
	EXPECT(write_pattern(bs, b, 5 * cs + 4096, 8192, 1) == 0, "write in cluster 5");
	EXPECT(write_pattern(bs, b, 70 * cs - 4096, 8192, 2) == 0, "write across 69/70");
	EXPECT(zvfs_blob_get_num_allocated_clusters(b) == 3 && used_clusters(bs) == base + 3,
	       "3 allocated");
	EXPECT(check_pattern(bs, b, 5 * cs, 4096, 0) == 0, "never-written part zero");
	EXPECT(check_pattern(bs, b, 5 * cs + 4096, 8192, 1) == 0, "data");
	EXPECT(check_pattern(bs, b, 5 * cs + 12288, cs - 12288, 0) == 0, "tail zero");
	{
		struct zvfs_bs_stats st;

		zvfs_bs_get_stats(bs, &st);
		t_note("geometry: io unit %u, md page %u, %" PRIu64 " data clusters",
		       st.io_unit_size, st.md_page_size, st.data_clusters);
		if (st.io_unit_size == 512) {
			/* 512-byte io unit: sector-granular data I/O */
			EXPECT(write_pattern(bs, b, 5 * cs + 512 * 3, 512, 8) == 0, "512 write");
			EXPECT(check_pattern(bs, b, 5 * cs + 512 * 3, 512, 8) == 0, "512 read");
			EXPECT(write_pattern(bs, b, 5 * cs + 512 * 3, 512, 1) == 0, "512 restore");
		}
	}
	EXPECT(zvfs_blob_next_allocated(b, 0, &cl) == 0 && cl == 5, "next allocated 5");
	EXPECT(zvfs_blob_next_allocated(b, 6, &cl) == 0 && cl == 69, "next allocated 69");
	EXPECT(zvfs_blob_next_allocated(b, 71, &cl) == -ENOENT, "none after 70");
	EXPECT(zvfs_blob_next_unallocated(b, 5, &cl) == 0 && cl == 6, "next hole 6");
	EXPECT(zvfs_blob_next_unallocated(b, 69, &cl) == 0 && cl == 71, "next hole 71");
	/* grow across extent pages, write far, shrink back */
	EXPECT(zvfs_blob_resize(b, 1100) == 0, "grow thin past free space is fine");
	EXPECT(write_pattern(bs, b, 1050 * cs, cs, 3) == 0, "write far");
	EXPECT(zvfs_blob_resize(b, 800) == 0, "shrink");
	EXPECT(write_pattern(bs, b, 700 * cs, 4096, 4) == 0, "write in 3rd extent page");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
	EXPECT(zvfs_blob_resize(b, 60) == 0, "shrink below the allocations");
	EXPECT(zvfs_blob_get_num_allocated_clusters(b) == 1, "one left");
	EXPECT(zvfs_blob_write_sync(b, "x", 4096, 69 * cs) == -ERANGE, "write past the end");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
	EXPECT(used_clusters(bs) == base + 1, "freed after sync: %" PRIu64,
	       used_clusters(bs) - base);
	EXPECT(zvfs_blob_resize(b, 100) == 0, "grow");
	EXPECT(check_pattern(bs, b, 60 * cs, 40 * cs, 0) == 0, "regrown part reads zero");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	EXPECT(zvfs_bs_unload(bs) == 0, "unload");
	bs = NULL;
	EXPECT(bt_load(bdev, false, &bs) == 0, "load");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	EXPECT(zvfs_blob_get_num_clusters(b) == 100 && zvfs_blob_get_num_allocated_clusters(b) == 1,
	       "size after reload");
	EXPECT(check_pattern(bs, b, 5 * cs + 4096, 8192, 1) == 0, "data after reload");
	/* thick grow and shrink */
	{
		zvfs_blob_id t;
		struct zvfs_blob *tb = NULL;

		EXPECT(create_blob(bs, 2, false, &t) == 0, "thick");
		EXPECT(zvfs_blob_open(bs, t, &tb) == 0, "open thick");
		EXPECT(zvfs_blob_resize(tb, 600) == 0, "grow thick");
		EXPECT(zvfs_blob_get_num_allocated_clusters(tb) == 600, "thick allocated");
		EXPECT(check_pattern(bs, tb, 0, 600 * cs, 0) == 0, "thick reads zero");
		EXPECT(zvfs_blob_resize(tb, 3) == 0, "shrink thick");
		EXPECT(zvfs_blob_close(tb) == 0, "close thick");
		EXPECT(zvfs_blob_open(bs, t, &tb) == 0, "reopen thick");
		EXPECT(zvfs_blob_get_num_clusters(tb) == 3, "thick size");
		EXPECT(zvfs_blob_close(tb) == 0, "close thick");
	}
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

static void t_zeroes(void)
{
	struct zvfs_bdev *bdev = bt_open(g_spec);
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	const uint64_t cs = 64 * KiB;
	zvfs_blob_id id = 0, id2;
	uint64_t base, cl, big = 0;

	t_begin("zeroes: write_zeroes, unmap, delete + create reuse");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	base = used_clusters(bs);
	EXPECT(create_blob(bs, 8, true, &id) == 0, "create");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	EXPECT(write_pattern(bs, b, 0, 6 * cs, 5) == 0, "write 6 clusters");
	EXPECT(zvfs_blob_write_zeroes_sync(b, cs + 4096, 8192) == 0, "write_zeroes");
	EXPECT(check_pattern(bs, b, cs + 4096, 8192, 0) == 0, "zeroed");
	EXPECT(check_pattern(bs, b, cs, 4096, 5) == 0, "around");
	EXPECT(zvfs_blob_write_zeroes_sync(b, 5 * cs, 3 * cs) == 0, "write_zeroes over a hole");
	EXPECT(zvfs_blob_get_num_allocated_clusters(b) == 6, "write_zeroes allocates nothing");
	EXPECT(zvfs_blob_unmap_sync(b, 2 * cs - 4096, 2 * cs + 8192) == 0, "unmap");
	EXPECT(zvfs_blob_get_num_allocated_clusters(b) == 4, "two whole clusters released");
	EXPECT(zvfs_blob_next_unallocated(b, 0, &cl) == 0 && cl == 2, "hole at 2");
	EXPECT(check_pattern(bs, b, 2 * cs - 4096, 2 * cs + 8192, 0) == 0, "unmapped reads zero");
	EXPECT(check_pattern(bs, b, 4 * cs + 4096, cs - 4096, 5) == 0, "after unmap");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
	EXPECT(used_clusters(bs) == base + 4, "released after sync");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	/* dirty the whole data region, delete, then new blobs must read zero */
	{
		struct zvfs_bs_stats st;

		zvfs_bs_get_stats(bs, &st);
		big = st.free_clusters - 4;
	}
	EXPECT(create_blob(bs, big, false, &id2) == 0, "big thick");
	EXPECT(zvfs_blob_open(bs, id2, &b) == 0, "open big");
	EXPECT(write_pattern(bs, b, 0, big * cs, 6) == 0, "fill");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	EXPECT(zvfs_bs_delete_blob(bs, id2) == 0, "delete big");
	EXPECT(zvfs_bs_delete_blob(bs, id) == 0, "delete thin");
	EXPECT(used_clusters(bs) == base, "all free");
	EXPECT(create_blob(bs, big / 2, false, &id) == 0, "thick reuse");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	EXPECT(check_pattern(bs, b, 0, big / 2 * cs, 0) == 0, "reused thick clusters read zero");
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	EXPECT(create_blob(bs, big / 2, true, &id2) == 0, "thin reuse");
	EXPECT(zvfs_blob_open(bs, id2, &b) == 0, "open");
	for (uint64_t c = 0; c < big / 2; c += 37)
		EXPECT(write_pattern(bs, b, c * cs + 8192, 4096, 7) == 0, "sparse write");
	for (uint64_t c = 0; c < big / 2; c += 37) {
		EXPECT(check_pattern(bs, b, c * cs, 8192, 0) == 0, "head zero");
		EXPECT(check_pattern(bs, b, c * cs + 12288, cs - 12288, 0) == 0, "tail zero");
	}
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

static void t_window(void)
{
	struct zvfs_bdev *bdev = bt_open(g_spec);
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	const uint64_t cs = 64 * KiB;
	struct zvfs_bs_stats st;
	zvfs_blob_id id = 0, win, it;
	uint64_t bound;

	t_begin("allocation window: hidden blob, grows on demand, bounds the recovery zeroing");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	win = bs->win_id;
	EXPECT(win == 0x100000000ull, "window blob at md page 0");
	EXPECT(zvfs_blob_open(bs, win, &b) == -ENOENT && zvfs_bs_delete_blob(bs, win) == -ENOENT,
	       "hidden from open and delete");
	b = NULL;
	EXPECT(zvfs_bs_next_blob(bs, ZVFS_BLOBID_INVALID, &it) == -ENOENT, "not listed");
	bound = atomic_load(&bs->win_durable);
	EXPECT(create_blob(bs, 400, true, &id) == 0, "create thin");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	/* more clusters than the window holds: writes wait for it to grow, from the poll */
	for (uint64_t c = 0; c < 200; c++)
		EXPECT(write_pattern(bs, b, c * cs, 4096, 21) == 0, "write %" PRIu64, c);
	EXPECT(atomic_load(&bs->win_durable) > bound, "window grew");
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
	zvfs_bs_abandon(bs); /* crash */
	bs = NULL;
	b = NULL;
	EXPECT(bt_load(bdev, false, &bs) == 0, "recover");
	zvfs_bs_get_stats(bs, &st);
	t_note("recovery zeroed %" PRIu64 " of %" PRIu64 " free clusters (window %" PRIu64 ")",
	       bs->rec_zeroed, st.free_clusters, atomic_load(&bs->win_durable));
	EXPECT(st.loaded_dirty && bs->rec_zeroed < st.free_clusters / 2, "zeroing bounded");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	for (uint64_t c = 0; c < 200; c += 13)
		EXPECT(check_pattern(bs, b, c * cs, 4096, 21) == 0 &&
			       check_pattern(bs, b, c * cs + 4096, cs - 4096, 0) == 0,
		       "data %" PRIu64, c);
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

static int run_thin(void)
{
	t_thin();
	t_zeroes();
	t_window();
	return t_summary(prog);
}

/* ---- threads ------------------------------------------------------------------------------ */

struct thr {
	struct zvfs_bs *bs;
	struct zvfs_blob *b;
	pthread_barrier_t *bar;
	int idx;
	uint64_t off, len, seed;
	int rc;
};

static void cnt_cb(void *arg, int status)
{
	int *p = arg;

	if (status < 0)
		p[1] = status;
	p[0]++;
}

/* Each thread: async writes of 3 random-ish ranges over its own area, then verify. */
static void *thr_io(void *arg)
{
	struct thr *t = arg;
	struct zvfs_bs_channel *ch;
	struct zvfs_bdev *bdev = zvfs_bs_get_bdev(t->bs);
	const uint64_t chunk = 48 * KiB;
	uint64_t n = t->len / chunk;
	char *buf = zvfs_bdev_buf_alloc(bdev, t->len);
	int done[2] = {0, 0};

	t->rc = -ENOMEM;
	if (!buf)
		return NULL;
	t->rc = zvfs_bs_get_channel(t->bs, &ch);
	if (t->rc < 0)
		goto out;
	t_fill(buf, t->len, t->seed, t->off);
	pthread_barrier_wait(t->bar);
	for (uint64_t i = 0; i < n; i++) {
		t->rc = zvfs_blob_write(t->b, ch, buf + i * chunk, chunk, t->off + i * chunk,
					cnt_cb, done);
		if (t->rc < 0)
			goto out;
	}
	while ((uint64_t)done[0] < n)
		zvfs_bs_wait(ch);
	t->rc = done[1];
	if (t->rc < 0)
		goto out;
	memset(buf, 0, t->len);
	done[0] = 0;
	for (uint64_t i = 0; i < n; i++) {
		t->rc = zvfs_blob_read(t->b, ch, buf + i * chunk, chunk, t->off + i * chunk, cnt_cb,
				       done);
		if (t->rc < 0)
			goto out;
	}
	while ((uint64_t)done[0] < n)
		zvfs_bs_wait(ch);
	t->rc = done[1];
	if (t->rc == 0 && t_check(buf, t->len, t->seed, t->off) >= 0)
		t->rc = -EBADMSG;
out:
	zvfs_bdev_buf_free(bdev, buf);
	return NULL;
}

/* All threads write their own 4 KiB block of the same unallocated cluster at once. */
static void *thr_first(void *arg)
{
	struct thr *t = arg;
	struct zvfs_bdev *bdev = zvfs_bs_get_bdev(t->bs);
	char *buf = zvfs_bdev_buf_alloc(bdev, 4096);

	t->rc = -ENOMEM;
	if (!buf)
		return NULL;
	t_fill(buf, 4096, t->seed, t->off);
	pthread_barrier_wait(t->bar);
	t->rc = zvfs_blob_write_sync(t->b, buf, 4096, t->off);
	zvfs_bdev_buf_free(bdev, buf);
	return NULL;
}

static void t_threads(void)
{
	struct zvfs_bdev *bdev = bt_open("ram:size=128M");
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	const uint64_t cs = 64 * KiB;
	enum { NT = 8 };
	pthread_t th[NT];
	struct thr t[NT];
	pthread_barrier_t bar;
	zvfs_blob_id id = 0;
	int rc;

	pthread_barrier_init(&bar, NULL, NT);
	t_begin("8 threads, own channels, thin blob, every byte verified");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	EXPECT(create_blob(bs, 1024, true, &id) == 0, "create");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	for (int i = 0; i < NT; i++) {
		/* overlapping clusters between neighbours: areas are not cluster aligned */
		t[i] = (struct thr){.bs = bs,
				    .b = b,
				    .bar = &bar,
				    .idx = i,
				    .off = (uint64_t)i * 48 * 40 * KiB,
				    .len = 48 * 40 * KiB,
				    .seed = 1000 + (uint64_t)i};
		pthread_create(&th[i], NULL, thr_io, &t[i]);
	}
	rc = 0;
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		if (t[i].rc)
			rc = t[i].rc;
	}
	EXPECT(rc == 0, "thread I/O: %s", t_err(rc));
	EXPECT(zvfs_blob_get_num_allocated_clusters(b) == (NT * 48 * 40 * KiB + cs - 1) / cs,
	       "allocated %" PRIu64, zvfs_blob_get_num_allocated_clusters(b));
	for (int i = 0; i < NT; i++)
		EXPECT(check_pattern(bs, b, t[i].off, t[i].len, t[i].seed) == 0, "recheck %d", i);
	t_end();

	t_begin("concurrent first writes to one unallocated cluster: allocated once, no data lost");
	for (int round = 0; round < 20; round++) {
		uint64_t cl = 500 + (uint64_t)round,
			 before = zvfs_blob_get_num_allocated_clusters(b);

		for (int i = 0; i < NT; i++) {
			t[i] = (struct thr){.bs = bs,
					    .b = b,
					    .bar = &bar,
					    .idx = i,
					    .off = cl * cs + (uint64_t)i * 8192,
					    .seed = 77 + (uint64_t)round};
			pthread_create(&th[i], NULL, thr_first, &t[i]);
		}
		for (int i = 0; i < NT; i++) {
			pthread_join(th[i], NULL);
			EXPECT(t[i].rc == 0, "write: %s", t_err(t[i].rc));
		}
		EXPECT(zvfs_blob_get_num_allocated_clusters(b) == before + 1, "allocated once");
		for (int i = 0; i < NT; i++) {
			EXPECT(check_pattern(bs, b, t[i].off, 4096, t[i].seed) == 0, "data %d", i);
			EXPECT(check_pattern(bs, b, t[i].off + 4096, 4096, 0) == 0, "gap %d", i);
		}
	}
	EXPECT(zvfs_blob_sync_md(b) == 0, "sync");
	t_end();

	t_begin("I/O across clusters is split and issued in parallel");
	{
		struct zvfs_bs_channel *ch;
		struct zvfs_bdev_channel *bch;
		char *buf = zvfs_bdev_buf_alloc(bdev, 4 * cs);
		int done[2] = {0, 0};
		unsigned inflight;

		EXPECT(buf, "buf");
		EXPECT(zvfs_bs_get_channel(bs, &ch) == 0, "channel");
		EXPECT(zvfs_bdev_get_channel(bdev, &bch) == 0, "bdev channel");
		t_fill(buf, 4 * cs, 9, 0);
		EXPECT(zvfs_blob_write(b, ch, buf, 4 * cs - 8192, 4096, cnt_cb, done) == 0,
		       "write");
		inflight = zvfs_bdev_outstanding(bch);
		EXPECT(done[0] == 0, "no callback inside submit");
		while (done[0] < 1)
			zvfs_bs_wait(ch);
		t_note("a 4-cluster write had %u pieces in flight at once", inflight);
		EXPECT(inflight == 4, "pieces in flight together: %u", inflight);
		EXPECT(zvfs_blob_read(b, ch, buf, 4 * cs, 0, cnt_cb, done) == 0, "read");
		inflight = zvfs_bdev_outstanding(bch);
		while (done[0] < 2)
			zvfs_bs_wait(ch);
		EXPECT(inflight == 4, "read pieces in flight together: %u", inflight);
		zvfs_bdev_buf_free(bdev, buf);
	}
out:
	t_end();
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	pthread_barrier_destroy(&bar);
}

struct mdthr {
	struct zvfs_bs *bs;
	struct zvfs_blob *b;
	_Atomic int *stop;
	_Atomic uint64_t *size; /* clusters the writers may use */
	int idx;
	int rc;
	unsigned n;
};

/* Writers: each owns every 4th cluster, writes one block per cluster as the blob grows. */
static void *md_writer(void *arg)
{
	struct mdthr *t = arg;
	struct zvfs_bdev *bdev = zvfs_bs_get_bdev(t->bs);
	char *buf = zvfs_bdev_buf_alloc(bdev, 4096);
	uint64_t cl = (uint64_t)t->idx;

	t->rc = buf ? 0 : -ENOMEM;
	while (t->rc == 0 && cl < 2000) {
		if (cl >= atomic_load(t->size)) {
			/* stop is set after the last size: read it first */
			if (atomic_load(t->stop) && cl >= atomic_load(t->size))
				break;
			continue;
		}
		t_fill(buf, 4096, 300, cl * 64 * KiB + 8192);
		t->rc = zvfs_blob_write_sync(t->b, buf, 4096, cl * 64 * KiB + 8192);
		cl += 4;
		t->n++;
	}
	zvfs_bdev_buf_free(bdev, buf);
	return NULL;
}

/* Metadata: grow, sync, xattrs, while the writers run. */
static void *md_changer(void *arg)
{
	struct mdthr *t = arg;

	for (uint64_t n = 64; n <= 2000 && t->rc == 0; n += 64) {
		char v[16];

		t->rc = zvfs_blob_resize(t->b, n);
		atomic_store(t->size, n);
		snprintf(v, sizeof(v), "%" PRIu64, n);
		if (t->rc == 0)
			t->rc = zvfs_blob_set_xattr(t->b, "size", v, (uint16_t)strlen(v), false);
		if (t->rc == 0)
			t->rc = zvfs_blob_sync_md(t->b);
		t->n++;
	}
	atomic_store(t->stop, 1);
	return NULL;
}

static void t_concurrent_md(void)
{
	struct zvfs_bdev *bdev = bt_open("ram:size=256M");
	struct zvfs_bs *bs = NULL;
	struct zvfs_blob *b = NULL;
	_Atomic int stop = 0;
	_Atomic uint64_t size = 0;
	struct mdthr t[5];
	pthread_t th[5];
	zvfs_blob_id id = 0;
	int rc = 0;

	t_begin("writers allocate while another thread grows, syncs and sets xattrs");
	EXPECT(bdev, "open");
	EXPECT(bt_init(bdev, 64 * KiB, 0, &bs) == 0, "init");
	EXPECT(create_blob(bs, 0, true, &id) == 0, "create");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "open");
	for (int i = 0; i < 5; i++) {
		t[i] = (struct mdthr){.bs = bs, .b = b, .stop = &stop, .size = &size, .idx = i};
		pthread_create(&th[i], NULL, i < 4 ? md_writer : md_changer, &t[i]);
	}
	for (int i = 0; i < 5; i++) {
		pthread_join(th[i], NULL);
		if (t[i].rc)
			rc = t[i].rc;
	}
	EXPECT(rc == 0, "threads: %s", t_err(rc));
	t_note("writes per thread: %u %u %u %u", t[0].n, t[1].n, t[2].n, t[3].n);
	EXPECT(zvfs_blob_get_num_allocated_clusters(b) == 1984 / 4 * 4 + (1984 % 4),
	       "allocated %" PRIu64, zvfs_blob_get_num_allocated_clusters(b));
	EXPECT(zvfs_blob_close(b) == 0, "close");
	b = NULL;
	EXPECT(zvfs_bs_unload(bs) == 0, "unload");
	bs = NULL;
	EXPECT(bt_load(bdev, false, &bs) == 0, "load");
	EXPECT(zvfs_blob_open(bs, id, &b) == 0, "reopen");
	for (uint64_t cl = 0; cl < 1984; cl += 97)
		EXPECT(check_pattern(bs, b, cl * 64 * KiB + 8192, 4096, 300) == 0 &&
			       check_pattern(bs, b, cl * 64 * KiB, 8192, 0) == 0,
		       "cluster %" PRIu64, cl);
	t_note("%u writes raced with %u resize+xattr+sync rounds",
	       t[0].n + t[1].n + t[2].n + t[3].n, t[4].n);
out:
	if (b)
		zvfs_blob_close(b);
	if (bs)
		zvfs_bs_unload(bs);
	if (bdev)
		zvfs_bdev_close(bdev);
	t_end();
}

static int run_threads(void)
{
	t_threads();
	t_concurrent_md();
	return t_summary(prog);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "basic") == 0)
		return run_basic();
	if (argc >= 5 && strcmp(argv[1], "file") == 0)
		return run_file(argv[2], argv[3], argv[4]);
	if (argc >= 7 && strcmp(argv[1], "fixture") == 0)
		return run_fixture(argv[2], argv[3], argv[4], argv[5], argv[6]);
	if (argc >= 2 && strcmp(argv[1], "thin") == 0)
		return run_thin();
	if (argc >= 3 && strcmp(argv[1], "geometry") == 0) {
		/* the device-independent checks on another geometry (512-byte blocks, 16 KiB md) */
		g_spec = argv[2];
		t_xattrs();
		t_thin();
		t_zeroes();
		t_window();
		return t_summary(prog);
	}
	if (argc >= 2 && strcmp(argv[1], "threads") == 0)
		return run_threads();
	fprintf(stderr,
		"usage: %s basic | file DIR PY CHECKER | fixture IMG TXT DIR PY CHECKER | "
		"thin | threads\n",
		prog);
	return 1;
}
