/* SPDX-License-Identifier: MIT */
/*
 * fuzz_load: a libFuzzer target over zvfs_bs_load() and everything a loaded store lets a
 * caller do with corrupt metadata (docs/fuzzing.md).
 *
 * The input (fuzz.h) is a header and a prefix of a device image: the super block, the masks
 * and the md region of a real store made by mkcorpus.  The harness copies it to a "ram:"
 * device, loads it, walks every blob (open, xattrs, reads, seeks), makes a few metadata
 * changes, unloads, and loads the result again read-only.  Any return code is fine; a crash,
 * a hang, a sanitizer report or a leak is a bug.  Besides the return codes the harness checks
 * the API's promises that do not depend on the image: ids in increasing order, at most one
 * callback, counts that add up.
 *
 * Also built without libFuzzer into fuzz_replay (fuzz_replay.c), which feeds files to
 * LLVMFuzzerTestOneInput() as a plain regression test.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob/blob_internal.h" /* zvfs_bs_abandon() */
#include "fuzz.h"
#include "util/log.h"
#include "zvfs/bdev.h"
#include "zvfs/blob.h"

#define MAX_BLOBS  64	       /* blobs walked per load */
#define MAX_XATTRS 128	       /* xattrs read per blob */
#define READ_MAX   (64u << 10) /* bytes read at the start of a cluster */
#define XATTR_BUF  (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken promise of the API, whatever the image: a bug. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_load: %s:%d: check failed: %s\n", __FILE__,          \
				__LINE__, #cond);                                                  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/*
 * The log goes to a private temporary file (unless ZVFS_FUZZ_VERBOSE): corrupt images log a
 * line per blob, which would flood the fuzzer's output, and the harness reads it back to check
 * that a blob that fails to open is named in the log.  -1 = not checked.
 */
static int g_log_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/zvfs-fuzz-log.XXXXXX";

	(void)argc;
	(void)argv;
	if (getenv("ZVFS_FUZZ_VERBOSE"))
		return 0;
	g_log_fd = mkstemp(path);
	if (g_log_fd < 0) {
		setenv("ZVFS_LOG_FILE", "/dev/null", 1);
		return 0;
	}
	setenv("ZVFS_LOG_FILE", path, 1);
	zvfs_log_set_level(ZVFS_LOG_WARN); /* the first call: the log opens the file now */
	unlink(path);
	return 0;
}

static void log_reset(void)
{
	if (g_log_fd >= 0)
		FUZZ_CHECK(ftruncate(g_log_fd, 0) == 0);
}

/* "a blob with a bad chain fails alone, with an error naming it" */
static void log_check_names(zvfs_blob_id id)
{
	char want[32], buf[8192];
	ssize_t n;

	if (g_log_fd < 0)
		return;
	snprintf(want, sizeof(want), "blob 0x%" PRIx64 ":", id);
	n = pread(g_log_fd, buf, sizeof(buf) - 1, 0);
	FUZZ_CHECK(n >= 0);
	buf[n] = 0;
	if (!strstr(buf, want)) {
		fprintf(stderr,
			"fuzz_load: open of blob 0x%" PRIx64 " failed without a log line "
			"naming it; log: %s\n",
			id, buf);
		abort();
	}
}

static void walk_xattrs(struct zvfs_blob *b, char *buf, bool internal)
{
	int n = zvfs_blob_list_xattrs(b, buf, XATTR_BUF, internal);
	int count = 0;

	if (n < 0)
		return;
	if ((size_t)n > XATTR_BUF)
		return;
	for (int off = 0; off < n && count < MAX_XATTRS; count++) {
		char name[4096];
		size_t len = strnlen(buf + off, (size_t)(n - off));
		char val[256];
		int rc;

		if (len >= sizeof(name))
			break;
		memcpy(name, buf + off, len);
		name[len] = 0;
		off += (int)len + 1;
		rc = zvfs_blob_get_xattr(b, name, val, sizeof(val), internal);
		if (rc > (int)sizeof(val)) {
			char *big = malloc((size_t)rc);

			if (big) {
				int rc2 = zvfs_blob_get_xattr(b, name, big, (size_t)rc, internal);

				FUZZ_CHECK(rc2 == rc);
				free(big);
			}
		}
	}
}

static void read_cluster(struct zvfs_blob *b, void *buf, const struct zvfs_bs_stats *st,
			 uint64_t cl)
{
	uint64_t len = st->cluster_size < READ_MAX ? st->cluster_size : READ_MAX;

	len -= len % st->io_unit_size;
	if (len)
		(void)zvfs_blob_read_sync(b, buf, len, cl * st->cluster_size);
}

/* Everything that only reads: the part of a blob a corrupt image can reach. */
static void walk_blob(struct zvfs_blob *b, void *iobuf, char *xbuf, const struct zvfs_bs_stats *st)
{
	uint64_t n = zvfs_blob_get_num_clusters(b);
	uint64_t alloc = zvfs_blob_get_num_allocated_clusters(b);
	uint64_t cl;

	FUZZ_CHECK(alloc <= n);
	(void)zvfs_blob_is_thin(b);
	(void)zvfs_blob_is_read_only(b);
	walk_xattrs(b, xbuf, false);
	walk_xattrs(b, xbuf, true);
	if (n > 0) {
		read_cluster(b, iobuf, st, 0);
		read_cluster(b, iobuf, st, n - 1);
	}
	if (zvfs_blob_next_allocated(b, 0, &cl) == 0)
		FUZZ_CHECK(cl < n);
	if (zvfs_blob_next_unallocated(b, 0, &cl) == 0)
		FUZZ_CHECK(cl < n);
	if (n > 0 && zvfs_blob_next_allocated(b, n - 1, &cl) == 0)
		FUZZ_CHECK(cl == n - 1);
	FUZZ_CHECK(zvfs_blob_next_allocated(b, n, &cl) == -ENOENT);
}

/* A few metadata changes on the first blob that opens; the write path over corrupt masks. */
static void change_blob(struct zvfs_blob *b, void *iobuf, const struct zvfs_bs_stats *st)
{
	static const char val[] = "fuzz";
	uint64_t n = zvfs_blob_get_num_clusters(b);

	if (zvfs_blob_set_xattr(b, "fuzz.x", val, sizeof(val), false) == 0)
		(void)zvfs_blob_sync_md(b);
	(void)zvfs_blob_remove_xattr(b, "name", false);
	if (zvfs_blob_resize(b, n + 1) == 0) {
		FUZZ_CHECK(zvfs_blob_get_num_clusters(b) == n + 1);
		memset(iobuf, 0xa5, st->io_unit_size);
		(void)zvfs_blob_write_sync(b, iobuf, st->io_unit_size, n * st->cluster_size);
		(void)zvfs_blob_sync_md(b);
	}
	if (n > 1 && zvfs_blob_resize(b, n - 1) == 0)
		(void)zvfs_blob_sync_md(b);
}

/*
 * Load, walk every blob, change some, unload.  Returns the number of blobs seen, or -1 if the
 * load or the unload failed.
 */
static int run_store(struct zvfs_bdev *bdev, const struct zvfs_bs_opts *o, bool writes)
{
	zvfs_blob_id ids[MAX_BLOBS], id, prev = ZVFS_BLOBID_INVALID;
	struct zvfs_bs_stats st;
	struct zvfs_bs *bs;
	void *iobuf;
	char *xbuf;
	int nids = 0, rc;
	bool changed = false;

	if (zvfs_bs_load(bdev, o, &bs) != 0)
		return -1;
	FUZZ_CHECK(zvfs_bs_get_stats(bs, &st) == 0);
	FUZZ_CHECK(st.free_clusters <= st.data_clusters && st.data_clusters <= st.total_clusters);
	FUZZ_CHECK(st.md_pages_used <= st.md_pages && st.io_unit_size > 0 && st.cluster_size > 0);
	(void)zvfs_bs_get_super(bs);

	while (nids < MAX_BLOBS && zvfs_bs_next_blob(bs, prev, &id) == 0) {
		FUZZ_CHECK(prev == ZVFS_BLOBID_INVALID || id > prev);
		ids[nids++] = prev = id;
	}
	iobuf = zvfs_bdev_buf_alloc(bdev, READ_MAX);
	xbuf = malloc(XATTR_BUF);
	FUZZ_CHECK(iobuf && xbuf);
	for (int i = 0; i < nids; i++) {
		struct zvfs_blob *b, *b2;

		log_reset();
		rc = zvfs_blob_open(bs, ids[i], &b);
		if (rc != 0) {
			/*
			 * zvfs/blob.h: a listed blob fails alone, for one of these reasons;
			 * -ENOENT when its root page is not that blob's (a stale blob id mask:
			 * SPDK's rule, no log line)
			 */
			if (!(rc == -EUCLEAN || rc == -EBADMSG || rc == -EOPNOTSUPP ||
			      rc == -ENOENT || rc == -ENOMEM || rc == -EIO))
				fprintf(stderr, "fuzz_load: open of 0x%" PRIx64 ": %d\n", ids[i],
					rc);
			FUZZ_CHECK(rc == -EUCLEAN || rc == -EBADMSG || rc == -EOPNOTSUPP ||
				   rc == -ENOENT || rc == -ENOMEM || rc == -EIO);
			if (rc != -ENOENT && rc != -ENOMEM)
				log_check_names(ids[i]);
			continue;
		}
		FUZZ_CHECK(zvfs_blob_get_id(b) == ids[i]);
		/* a second open is the same handle */
		FUZZ_CHECK(zvfs_blob_open(bs, ids[i], &b2) == 0 && b2 == b);
		walk_blob(b, iobuf, xbuf, &st);
		(void)zvfs_blob_close(b2);
		if (writes && !changed) {
			change_blob(b, iobuf, &st);
			changed = true;
		}
		(void)zvfs_blob_close(b);
	}
	if (writes) {
		struct zvfs_blob_opts bo;
		struct zvfs_blob *b;

		/* the allocators over whatever the masks and recovery left */
		zvfs_blob_opts_init(&bo);
		bo.thin = true;
		bo.num_clusters = 4;
		if (zvfs_blob_create(bs, &bo, &id) == 0 && zvfs_blob_open(bs, id, &b) == 0) {
			memset(iobuf, 0x5a, st.io_unit_size);
			(void)zvfs_blob_write_sync(b, iobuf, st.io_unit_size, 2 * st.cluster_size);
			(void)zvfs_blob_close(b);
		}
		if (nids > 1)
			(void)zvfs_bs_delete_blob(bs, ids[nids - 1]);
		if (nids > 0)
			(void)zvfs_bs_set_super(bs, ids[0]);
	}
	free(xbuf);
	zvfs_bdev_buf_free(bdev, iobuf);
	rc = zvfs_bs_unload(bs);
	FUZZ_CHECK(rc != -EBUSY);
	if (rc != 0) {
		zvfs_bs_abandon(bs);
		return -1;
	}
	return nids;
}

/*
 * The RAM device for (size byte, geometry), all zero.  Devices are kept across inputs (a few,
 * replaced round-robin) and zeroed for reuse: a fresh mapping per input would spend most of
 * the time in page faults.
 */
static struct zvfs_bdev *get_device(uint8_t size_b, unsigned geo)
{
	static struct {
		struct zvfs_bdev *bdev;
		uint8_t size_b;
		unsigned geo;
	} cache[4];
	static unsigned next;
	uint64_t dev_size = fuzz_dev_size(size_b);
	struct zvfs_bdev *bdev;
	char spec[64];
	unsigned i;

	for (i = 0; i < 4; i++) {
		if (cache[i].bdev && cache[i].size_b == (size_b & 63u) && cache[i].geo == geo) {
			FUZZ_CHECK(zvfs_bdev_write_zeroes_sync(cache[i].bdev, 0, dev_size) == 0);
			return cache[i].bdev;
		}
	}
	i = next++ % 4;
	if (cache[i].bdev)
		FUZZ_CHECK(zvfs_bdev_close(cache[i].bdev) == 0);
	snprintf(spec, sizeof(spec), "ram:size=%" PRIu64 "%s", dev_size, fuzz_geo_opts[geo]);
	FUZZ_CHECK(zvfs_bdev_open(spec, &bdev, NULL, 0) == 0);
	cache[i].bdev = bdev;
	cache[i].size_b = size_b & 63u;
	cache[i].geo = geo;
	return bdev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zvfs_bs_opts o;
	struct zvfs_bdev *bdev;
	uint64_t dev_size;
	size_t len, padded;
	uint8_t flags;
	uint8_t *img;
	bool writes;

	if (size < FUZZ_HDR_LEN)
		return 0;
	flags = data[0];
	dev_size = fuzz_dev_size(data[1]);
	bdev = get_device(data[1], (flags >> FUZZ_GEO_SHIFT) & FUZZ_GEO_MASK);

	len = size - FUZZ_HDR_LEN;
	if (len > dev_size)
		len = (size_t)dev_size;
	padded = (len + 4095) & ~(size_t)4095;
	if (padded > 0) {
		img = zvfs_bdev_buf_alloc(bdev, padded);
		FUZZ_CHECK(img);
		memcpy(img, data + FUZZ_HDR_LEN, len);
		memset(img + len, 0, padded - len);
		if (flags & FUZZ_F_FIX_CRC)
			fuzz_fix_crcs(img, padded);
		FUZZ_CHECK(zvfs_bdev_write_sync(bdev, img, padded, 0) == 0);
		zvfs_bdev_buf_free(bdev, img);
	}

	zvfs_bs_opts_init(&o);
	memset(o.bstype, 0, sizeof(o.bstype)); /* any type: SPDK's stores are untyped */
	o.force_recover = flags & FUZZ_F_FORCE_RECOVER;
	o.read_only = flags & FUZZ_F_READ_ONLY;
	writes = !o.read_only && !(flags & FUZZ_F_NO_WRITES);
	if (run_store(bdev, &o, writes) >= 0 && !o.read_only) {
		/* what this store wrote must load again */
		zvfs_bs_opts_init(&o);
		memset(o.bstype, 0, sizeof(o.bstype));
		o.read_only = true;
		/* a store this code unloaded cleanly loads again */
		FUZZ_CHECK(run_store(bdev, &o, false) >= 0);
	}
	return 0;
}
