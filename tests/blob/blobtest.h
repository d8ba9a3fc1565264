/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the blobstore tests (test_blob.c, test_crash.c), on top of
 * tests/bdev/testlib.h (reporting, data patterns).
 */
#ifndef ZVFS_TESTS_BLOB_BLOBTEST_H
#define ZVFS_TESTS_BLOB_BLOBTEST_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bdev/testlib.h"
#include "zvfs/blob.h"

static inline struct zvfs_bdev *bt_open(const char *spec)
{
	struct zvfs_bdev *bdev = NULL;
	char err[256];
	int rc = zvfs_bdev_open(spec, &bdev, err, sizeof(err));

	if (rc < 0) {
		t_note("open %s: %s", spec, err);
		return NULL;
	}
	return bdev;
}

static inline int bt_init(struct zvfs_bdev *bdev, uint32_t cluster_size, uint32_t md_pages,
			  struct zvfs_bs **bsp)
{
	struct zvfs_bs_opts o;

	zvfs_bs_opts_init(&o);
	if (cluster_size)
		o.cluster_size = cluster_size;
	if (md_pages)
		o.num_md_pages = md_pages;
	return zvfs_bs_init(bdev, &o, bsp);
}

static inline int bt_load(struct zvfs_bdev *bdev, bool force, struct zvfs_bs **bsp)
{
	struct zvfs_bs_opts o;

	zvfs_bs_opts_init(&o);
	memset(o.bstype, 0, sizeof(o.bstype));
	o.force_recover = force;
	return zvfs_bs_load(bdev, &o, bsp);
}

/*
 * Run spdk_format_check.py on img and compare: every CRC ok, no error, the three mask
 * counts equal to want_pages / want_blobids / want_clusters (ignored if UINT64_MAX).
 * Returns 0 or -1 with a reason noted.
 */
static inline int bt_spdk_check(const char *python, const char *checker, const char *img,
				uint64_t want_pages, uint64_t want_blobids, uint64_t want_clusters,
				unsigned *roots_out)
{
	char cmd[1024], line[4096];
	unsigned crc_ok = 0, crc_bad = 0, roots = 0, masks_ok = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' 2>&1", python, checker, img);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "set=");
		uint64_t set = p ? strtoull(p + 4, NULL, 10) : 0;

		if (strstr(line, "crc_ok=True"))
			crc_ok++;
		if (strstr(line, "crc_ok=False") || strstr(line, "Traceback") ||
		    strstr(line, "Error")) {
			crc_bad++;
			t_note("checker: %s", line);
		}
		if (strstr(line, " ROOT"))
			roots++;
		if (strncmp(line, "mask pages:", 11) == 0)
			masks_ok += want_pages == UINT64_MAX || set == want_pages;
		else if (strncmp(line, "mask blobids:", 13) == 0)
			masks_ok += want_blobids == UINT64_MAX || set == want_blobids;
		else if (strncmp(line, "mask clusters:", 14) == 0)
			masks_ok += want_clusters == UINT64_MAX || set == want_clusters;
		if (strncmp(line, "mask ", 5) == 0 || strncmp(line, "sig=", 4) == 0)
			t_note("checker: %.*s", (int)strcspn(line, "\n"), line);
	}
	if (pclose(f) != 0) {
		t_note("checker exited with an error");
		return -1;
	}
	if (roots_out)
		*roots_out = roots;
	t_note("checker: %u crc ok, %u bad, %u roots, %u/3 masks as expected", crc_ok, crc_bad,
	       roots, masks_ok);
	return crc_bad == 0 && crc_ok > 0 && masks_ok == 3 ? 0 : -1;
}

#endif /* ZVFS_TESTS_BLOB_BLOBTEST_H */
