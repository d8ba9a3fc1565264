/* SPDX-License-Identifier: MIT */
/*
 * mkblobs: test helper for test_cli.sh.  Loads the store on DEVICE and creates N blobs
 * with xattrs and data, then unloads cleanly, or with "crash" abandons the store without
 * writing the masks or the clean flag (as a power failure would).
 *
 * Blob k (k = 0 .. N-1):
 *   k % 3 == 0: thick, 3 clusters, xattrs name="blob-k", bin=00 01 ff fe, data in cluster 1
 *   k % 3 == 1: thin, 8 clusters, cluster 0 and 5 written, xattr name="blob-k" and two
 *               3000-byte xattrs big1/big2 (so its metadata needs chain pages)
 *   k % 3 == 2: thick, 2 clusters, name="blob-k", internal xattr "test.internal"
 * Prints one line per blob: its id in hex.  Exit 0 / 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_internal.h"
#include "zvfs/blob.h"

static int fill(struct zvfs_bs *bs, struct zvfs_blob *b, uint64_t cluster, uint8_t byte)
{
	struct zvfs_bs_stats st;
	void *buf;
	int rc;

	zvfs_bs_get_stats(bs, &st);
	buf = zvfs_bdev_buf_alloc(zvfs_bs_get_bdev(bs), 8192);
	if (!buf)
		return -1;
	memset(buf, byte, 8192);
	rc = zvfs_blob_write_sync(b, buf, 8192, cluster * st.cluster_size);
	zvfs_bdev_buf_free(zvfs_bs_get_bdev(bs), buf);
	return rc;
}

static int make_blob(struct zvfs_bs *bs, unsigned k, zvfs_blob_id *id)
{
	static const uint8_t bin[] = {0x00, 0x01, 0xff, 0xfe};
	static char big[3000];
	struct zvfs_blob_xattr x[3];
	struct zvfs_blob_opts o;
	struct zvfs_blob *b;
	char name[32];
	int rc;

	memset(big, 'x', sizeof(big));
	snprintf(name, sizeof(name), "blob-%u", k);
	zvfs_blob_opts_init(&o);
	x[0] = (struct zvfs_blob_xattr){"name", name, (uint16_t)strlen(name)};
	o.xattrs = x;
	o.nxattrs = 1;
	switch (k % 3) {
	case 0:
		o.num_clusters = 3;
		x[1] = (struct zvfs_blob_xattr){"bin", bin, sizeof(bin)};
		o.nxattrs = 2;
		break;
	case 1:
		o.num_clusters = 8;
		o.thin = true;
		x[1] = (struct zvfs_blob_xattr){"big1", big, sizeof(big)};
		x[2] = (struct zvfs_blob_xattr){"big2", big, sizeof(big)};
		o.nxattrs = 3;
		break;
	default:
		o.num_clusters = 2;
		break;
	}
	rc = zvfs_blob_create(bs, &o, id);
	if (rc < 0)
		return rc;
	rc = zvfs_blob_open(bs, *id, &b);
	if (rc < 0)
		return rc;
	if (k % 3 == 0)
		rc = fill(bs, b, 1, (uint8_t)(0x10 + k));
	else if (k % 3 == 1) {
		rc = fill(bs, b, 0, (uint8_t)(0x20 + k));
		if (rc == 0)
			rc = fill(bs, b, 5, (uint8_t)(0x30 + k));
	} else
		rc = zvfs_blob_set_xattr(b, "test.internal", "i", 1, true);
	if (rc == 0)
		rc = zvfs_blob_sync_md(b);
	if (zvfs_blob_close(b) < 0 && rc == 0)
		rc = -EIO;
	return rc;
}

int main(int argc, char **argv)
{
	struct zvfs_bs_opts bo;
	struct zvfs_bdev *bdev;
	struct zvfs_bs *bs;
	char msg[256];
	unsigned n;
	bool crash;
	int rc;

	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "crash") != 0)) {
		fprintf(stderr, "usage: mkblobs DEVICE N [crash]\n");
		return 1;
	}
	n = (unsigned)strtoul(argv[2], NULL, 10);
	crash = argc == 4;
	rc = zvfs_bdev_open(argv[1], &bdev, msg, sizeof(msg));
	if (rc < 0) {
		fprintf(stderr, "mkblobs: %s\n", msg);
		return 1;
	}
	zvfs_bs_opts_init(&bo);
	rc = zvfs_bs_load(bdev, &bo, &bs);
	if (rc < 0) {
		fprintf(stderr, "mkblobs: load: %s\n", strerror(-rc));
		return 1;
	}
	for (unsigned k = 0; k < n; k++) {
		zvfs_blob_id id;

		rc = make_blob(bs, k, &id);
		if (rc < 0) {
			fprintf(stderr, "mkblobs: blob %u: %s\n", k, strerror(-rc));
			return 1;
		}
		if (k == 0 && (rc = zvfs_bs_set_super(bs, id)) < 0) {
			fprintf(stderr, "mkblobs: set_super: %s\n", strerror(-rc));
			return 1;
		}
		printf("0x%" PRIx64 "\n", id);
	}
	if (crash) {
		zvfs_bs_abandon(bs);
	} else if ((rc = zvfs_bs_unload(bs)) < 0) {
		fprintf(stderr, "mkblobs: unload: %s\n", strerror(-rc));
		return 1;
	}
	zvfs_bdev_close(bdev);
	return 0;
}
