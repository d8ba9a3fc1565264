/* SPDX-License-Identifier: MIT */
/*
 * zvfs fsck: an independent check of a blobstore at the format level (FORMAT.md §15).  It
 * reads the super block and the whole metadata region itself and trusts neither the masks
 * nor the engine's loader; only --repair calls the engine (a force_recover load and a clean
 * unload rebuild the masks).
 *
 * Map of this file:
 *   1. state, problem reporting
 *   2. reading (large reads, progress bar)
 *   3. blobs: roots, chains, descriptors, extent pages, cluster ownership
 *   4. unreachable pages (orphans)
 *   5. masks (clean stores only)
 *   6. repair, command
 *
 * Policy (docs/tools.md): errors are corruption; warnings are things a crash leaves behind
 * normally (stale pages with a valid CRC that no blob reaches) and do not change the exit
 * status unless --repair removes them.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blob/blob_internal.h"
#include "blob/format.h"
#include "cli/cmd.h"
#include "zvfs/blob.h"

/* ---- 1. state, problem reporting ------------------------------------------------------------ */

#define READ_CHUNK	(8u << 20)
#define PROGRESS_MIN	(64ull << 20) /* md regions above this get a bar on a tty */
#define LINES_PER_GROUP 20	      /* lines per blob / mask before summarizing */
#define NO_OWNER	UINT32_MAX

enum sev { SEV_ERROR, SEV_WARN, SEV_NOTE };

struct fsck {
	const char *spec;
	struct zvfs_bdev *bdev;
	const struct zvfs_bdev_geometry *geo;
	struct zvfs_bs_super_info si;
	const struct zvfs_bs_layout *l;
	uint8_t *md;	      /* the metadata region, md_len * md_page_size bytes */
	uint32_t *page_owner; /* root index of the blob that reaches a page, NO_OWNER */
	uint32_t *cl_owner;   /* root index of the blob owning a cluster, NO_OWNER */
	uint8_t *is_root;     /* per page: 1 root, 2 bad root */
	/*
	 * Masks: pages / clusters whose state depends on how far a loader got with a bad blob
	 * (besides those a bad blob reached, which owner_bad() tells).
	 */
	uint8_t *pg_dontcare;
	uint8_t *cl_dontcare;
	uint32_t *orphans;
	uint32_t norphans;
	bool json, progress, quiet;
	int prog_mode;	      /* 1 --progress, 0 --no-progress, -1 automatic */
	unsigned group_lines; /* lines printed for the current blob / mask */
	uint64_t errors, warnings, blobs, bad_blobs, garbage_pages;
	uint64_t mask_errors;
	bool first_json;
};

static const struct zvfs_bs_md_page *page_at(const struct fsck *f, uint32_t i)
{
	return (const void *)(f->md + (size_t)i * f->l->md_page_size);
}

static __attribute__((format(printf, 3, 4))) void report(struct fsck *f, enum sev s,
							 const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "note"};
	char line[512];
	va_list ap;

	if (s == SEV_ERROR)
		f->errors++;
	else if (s == SEV_WARN)
		f->warnings++;
	if (f->quiet)
		return;
	if (++f->group_lines > LINES_PER_GROUP) {
		if (f->group_lines == LINES_PER_GROUP + 1 && !f->json)
			printf("%s: ... (more lines like the above not shown)\n", names[s]);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->json) {
		printf("%s{\"severity\":\"%s\",\"message\":", f->first_json ? "" : ",", names[s]);
		json_str(stdout, line, strlen(line));
		printf("}");
		f->first_json = false;
	} else {
		printf("%s: %s\n", names[s], line);
	}
}

static uint64_t blob_id(uint32_t root)
{
	return zvfs_bs_page_to_blobid(root);
}

/* ---- 2. reading ------------------------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(struct fsck *f, uint64_t done, uint64_t total, double *last)
{
	double t = now_s();
	int width = 40, pct, fill;

	if (!f->progress || (done < total && t - *last < 0.1))
		return; /* at most 10 updates per second */
	*last = t;
	pct = total ? (int)(done * 100 / total) : 100;
	fill = pct * width / 100;
	fprintf(stderr, "\rzvfs fsck: reading metadata [%.*s%*s] %3d%%", fill,
		"########################################", width - fill, "", pct);
	if (done >= total)
		fputc('\n', stderr);
	fflush(stderr);
}

static int read_md(struct fsck *f)
{
	uint64_t off = (uint64_t)f->l->md_start * f->l->md_page_size;
	uint64_t len = (uint64_t)f->l->md_len * f->l->md_page_size;
	double last = 0;
	int rc;

	if (posix_memalign((void **)&f->md, f->geo->buf_align < 4096 ? 4096 : f->geo->buf_align,
			   len))
		return -ENOMEM;
	for (uint64_t done = 0; done < len;) {
		uint64_t n = len - done < READ_CHUNK ? len - done : READ_CHUNK;

		rc = zvfs_bdev_read_sync(f->bdev, f->md + done, n, off + done);
		if (rc < 0)
			return rc;
		done += n;
		progress(f, done, len, &last);
	}
	return 0;
}

/* ---- 3. blobs -------------------------------------------------------------------------------- */

static bool page_zero(const struct zvfs_bs_md_page *p)
{
	static const uint8_t zero[ZVFS_BS_PAGE_SIZE];

	return memcmp(p, zero, sizeof(zero)) == 0;
}

static bool crc_ok(const struct zvfs_bs_md_page *p)
{
	return zvfs_bs_page_crc(p) == p->crc;
}

static const char *page_err(int rc)
{
	switch (rc) {
	case -EBADMSG:
		return "bad CRC";
	case -ENOENT:
		return "not a root page";
	case -EUCLEAN:
		return "wrong blob id or sequence number, or next out of range";
	default:
		return strerror(-rc);
	}
}

/* Claim cluster @c for blob @root; false (and an error) if it cannot be. */
static bool claim_cluster(struct fsck *f, uint32_t root, uint64_t lcl, uint32_t c)
{
	uint64_t id = blob_id(root);

	if (c >= f->l->total_clusters || c < f->l->md_clusters) {
		report(f, SEV_ERROR,
		       "blob 0x%" PRIx64 ": cluster %" PRIu64 " maps to cluster %" PRIu32
		       ", outside the data region",
		       id, lcl, c);
		return false;
	}
	if (f->cl_owner[c] == root) {
		report(f, SEV_ERROR,
		       "blob 0x%" PRIx64 ": cluster %" PRIu32
		       " mapped twice by the blob (at %" PRIu64 ")",
		       id, c, lcl);
		return false;
	}
	if (f->cl_owner[c] != NO_OWNER) {
		report(f, SEV_ERROR,
		       "cluster %" PRIu32 " owned twice: by blob 0x%" PRIx64
		       " and by blob 0x%" PRIx64 " (its cluster %" PRIu64 ")",
		       c, blob_id(f->cl_owner[c]), id, lcl);
		return false;
	}
	f->cl_owner[c] = root;
	return true;
}

/* Claim md page @p for blob @root. */
static bool claim_page(struct fsck *f, uint32_t root, uint32_t p, const char *what)
{
	if (p >= f->l->md_len) {
		report(f, SEV_ERROR, "blob 0x%" PRIx64 ": %s page %" PRIu32 " out of range",
		       blob_id(root), what, p);
		return false;
	}
	if (f->page_owner[p] != NO_OWNER) {
		if (f->page_owner[p] == root)
			report(f, SEV_ERROR,
			       "blob 0x%" PRIx64 ": %s page %" PRIu32 " reached twice (a loop)",
			       blob_id(root), what, p);
		else
			report(f, SEV_ERROR,
			       "blob 0x%" PRIx64 ": %s page %" PRIu32
			       " already belongs to blob 0x%" PRIx64,
			       blob_id(root), what, p, blob_id(f->page_owner[p]));
		return false;
	}
	f->page_owner[p] = root;
	return true;
}

static bool check_blob(struct fsck *f, uint32_t root)
{
	uint64_t id = blob_id(root);
	struct zvfs_blob_md md;
	uint32_t cur = root, seq = 0;
	bool ok = true, data_ro, md_ro;
	int rc;

	f->group_lines = 0;
	zvfs_blob_md_init(&md);
	f->page_owner[root] = root;
	for (;;) {
		const struct zvfs_bs_md_page *p = page_at(f, cur);

		rc = zvfs_bs_md_page_check(p, id, seq, f->l->md_len);
		if (rc < 0) {
			report(f, SEV_ERROR,
			       "blob 0x%" PRIx64 ": chain page %" PRIu32 " (sequence %" PRIu32
			       "): %s",
			       id, cur, seq, page_err(rc));
			ok = false;
			break;
		}
		rc = zvfs_blob_md_parse_page(&md, p);
		if (rc < 0) {
			report(f, SEV_ERROR,
			       "blob 0x%" PRIx64 ": chain page %" PRIu32 ": bad descriptors (%s)",
			       id, cur, strerror(-rc));
			ok = false;
			break;
		}
		if (p->next == ZVFS_BS_INVALID_MD_PAGE)
			break;
		if (seq + 1 >= f->l->md_len || !claim_page(f, root, p->next, "chain")) {
			ok = false;
			break;
		}
		cur = p->next;
		seq++;
	}
	if (ok && (rc = zvfs_blob_md_parse_finish(&md)) < 0) {
		report(f, SEV_ERROR, "blob 0x%" PRIx64 ": inconsistent cluster map (%s)", id,
		       strerror(-rc));
		ok = false;
	}
	if (ok && md.unknown_descs)
		report(f, SEV_NOTE, "blob 0x%" PRIx64 ": %" PRIu32 " descriptors of unknown type",
		       id, md.unknown_descs);
	if (ok && zvfs_blob_md_open_mode(&md.flags, &data_ro, &md_ro) == -EOPNOTSUPP)
		report(f, SEV_WARN,
		       "blob 0x%" PRIx64 ": uses features ZVFS does not open (flags 0x%" PRIx64 ")",
		       id, md.flags.invalid);
	if (ok && md.extent_table) {
		for (uint32_t k = 0; k < md.num_extent_pages; k++) {
			const struct zvfs_bs_desc_extent_page *ep;
			uint32_t e = md.extent_pages[k], count;

			if (e == 0)
				continue;
			if (!claim_page(f, root, e, "extent")) {
				ok = false;
				continue;
			}
			rc = bs_ep_decode(page_at(f, e), k, md.num_clusters, &ep, &count);
			if (rc < 0) {
				report(f, SEV_ERROR,
				       "blob 0x%" PRIx64 ": extent page %" PRIu32 " (index %" PRIu32
				       "): %s",
				       id, e, k,
				       rc == -EBADMSG ? "bad CRC"
						      : "not a valid extent page for this index");
				ok = false;
				continue;
			}
			for (uint32_t j = 0; j < count; j++) {
				uint32_t c = ep->cluster_idx[j];

				if (c &&
				    !claim_cluster(f, root,
						   (uint64_t)k * ZVFS_BS_EXTENTS_PER_EP + j, c))
					ok = false;
			}
		}
	} else if (ok) {
		uint64_t lcl = 0;

		for (uint32_t r = 0; r < md.num_runs; r++) {
			const struct zvfs_blob_md_run *run = &md.runs[r];

			/* one bad run is one error: a corrupt length could be 2^32 clusters */
			for (uint32_t j = 0; run->cluster && j < run->length; j++)
				if (!claim_cluster(f, root, lcl + j, run->cluster + j)) {
					ok = false;
					break;
				}
			lcl += run->length;
		}
	}
	zvfs_blob_md_free(&md);
	return ok;
}

static void check_blobs(struct fsck *f)
{
	for (uint32_t i = 0; i < f->l->md_len; i++) {
		const struct zvfs_bs_md_page *p = page_at(f, i);

		if (p->id == blob_id(i) && p->sequence_num == 0 && crc_ok(p))
			f->is_root[i] = 1;
	}
	for (uint32_t i = 0; i < f->l->md_len; i++) {
		if (!f->is_root[i] || f->page_owner[i] != NO_OWNER)
			continue;
		f->blobs++;
		if (!check_blob(f, i)) {
			f->is_root[i] = 2;
			f->bad_blobs++;
		}
	}
}

/* ---- 4. unreachable pages -------------------------------------------------------------------- */

static bool bad_blob_id(const struct fsck *f, uint64_t id)
{
	return (id >> 32) == 1 && (uint32_t)id < f->l->md_len && f->is_root[(uint32_t)id] == 2;
}

static void check_unreachable(struct fsck *f)
{
	f->group_lines = 0;
	for (uint32_t i = 0; i < f->l->md_len; i++) {
		const struct zvfs_bs_md_page *p = page_at(f, i);

		if (f->page_owner[i] != NO_OWNER || page_zero(p))
			continue;
		if (!crc_ok(p)) {
			if (p->id == blob_id(i) && p->sequence_num == 0) {
				/* a deleted blob's root is zeroed first: this is damage */
				report(f, SEV_ERROR,
				       "blob 0x%" PRIx64 ": root page %" PRIu32
				       " has a bad CRC (the blob is lost)",
				       p->id, i);
				f->pg_dontcare[i] = 1;
			} else {
				f->garbage_pages++;
			}
			continue;
		}
		if (bad_blob_id(f, p->id)) {
			/* the engine's recovery keeps these (and their clusters) for salvage */
			struct zvfs_bs_desc_iter it;
			struct zvfs_bs_desc_ref d;
			const struct zvfs_bs_desc_extent_page *ep;
			uint32_t n;

			report(f, SEV_NOTE,
			       "md page %" PRIu32 ": unreachable page of bad blob 0x%" PRIx64
			       ", kept",
			       i, p->id);
			f->pg_dontcare[i] = 1;
			zvfs_bs_desc_iter_init(&it, p);
			while (zvfs_bs_desc_next(&it, &d) == 1)
				if (d.type == ZVFS_BS_DESC_EXTENT_PAGE &&
				    zvfs_bs_desc_ep_decode(&d, &ep, &n) == 0)
					for (uint32_t j = 0; j < n; j++)
						if (ep->cluster_idx[j] < f->l->total_clusters)
							f->cl_dontcare[ep->cluster_idx[j]] = 1;
			continue;
		}
		report(f, SEV_WARN,
		       "orphan md page %" PRIu32 " (blob 0x%" PRIx64 ", sequence %" PRIu32
		       "): valid CRC, reached by no blob",
		       i, p->id, p->sequence_num);
		f->orphans[f->norphans++] = i;
	}
}

/* Owned by a blob that failed the check: the engine may or may not have claimed it. */
static bool owner_bad(const struct fsck *f, uint32_t owner)
{
	return owner != NO_OWNER && f->is_root[owner] == 2;
}

/* ---- 5. masks -------------------------------------------------------------------------------- */

static int read_mask(struct fsck *f, const char *name, uint32_t start, uint32_t len, uint8_t type,
		     uint64_t want_bits, uint8_t **region, const uint8_t **bits)
{
	size_t bytes = (size_t)len * f->l->md_page_size;
	uint32_t nbits;
	int rc;

	*region = NULL;
	if (posix_memalign((void **)region, f->geo->buf_align < 4096 ? 4096 : f->geo->buf_align,
			   bytes ? bytes : 4096))
		return -ENOMEM;
	rc = zvfs_bdev_read_sync(f->bdev, *region, bytes, (uint64_t)start * f->l->md_page_size);
	if (rc < 0)
		return rc;
	if (zvfs_bs_mask_decode(*region, bytes, type, &nbits, bits) < 0 || nbits < want_bits ||
	    (type != ZVFS_BS_MASK_USED_CLUSTERS && nbits != want_bits)) {
		report(f, SEV_ERROR, "%s mask: invalid header or length", name);
		f->mask_errors++;
		*bits = NULL;
	}
	return 0;
}

static int check_masks(struct fsck *f)
{
	const struct zvfs_bs_layout *l = f->l;
	uint8_t *pr = NULL, *cr = NULL, *br = NULL;
	const uint8_t *pb, *cb, *bb = NULL;
	int rc;

	rc = read_mask(f, "md page", l->page_mask_start, l->page_mask_len, ZVFS_BS_MASK_USED_PAGES,
		       l->md_len, &pr, &pb);
	if (rc == 0)
		rc = read_mask(f, "cluster", l->cluster_mask_start, l->cluster_mask_len,
			       ZVFS_BS_MASK_USED_CLUSTERS, l->total_clusters, &cr, &cb);
	if (rc == 0 && l->blobid_mask_len)
		rc = read_mask(f, "blob id", l->blobid_mask_start, l->blobid_mask_len,
			       ZVFS_BS_MASK_USED_BLOBIDS, l->md_len, &br, &bb);
	if (rc < 0)
		goto out;
	f->group_lines = 0;
	for (uint32_t i = 0; pb && i < l->md_len; i++) {
		bool used = zvfs_bs_bit_test(pb, i), want = f->page_owner[i] != NO_OWNER;

		if (used == want || f->pg_dontcare[i] || owner_bad(f, f->page_owner[i]))
			continue;
		f->mask_errors++;
		if (used)
			report(f, SEV_ERROR, "md page %" PRIu32 ": marked used, in use by nothing",
			       i);
		else
			report(f, SEV_ERROR,
			       "md page %" PRIu32 ": in use by blob 0x%" PRIx64 " but marked free",
			       i, blob_id(f->page_owner[i]));
	}
	f->group_lines = 0;
	for (uint64_t c = 0; cb && c < l->total_clusters; c++) {
		bool used = zvfs_bs_bit_test(cb, c);
		bool want = c < l->md_clusters || f->cl_owner[c] != NO_OWNER;

		if (used == want || f->cl_dontcare[c] || owner_bad(f, f->cl_owner[c]))
			continue;
		f->mask_errors++;
		if (used)
			report(f, SEV_ERROR,
			       "leaked cluster %" PRIu64 ": marked used, owned by no blob", c);
		else if (c < l->md_clusters)
			report(f, SEV_ERROR, "metadata cluster %" PRIu64 ": marked free", c);
		else
			report(f, SEV_ERROR,
			       "cluster %" PRIu64 ": owned by blob 0x%" PRIx64 " but marked free",
			       c, blob_id(f->cl_owner[c]));
	}
	f->group_lines = 0;
	for (uint32_t i = 0; bb && i < l->md_len; i++) {
		bool used = zvfs_bs_bit_test(bb, i), want = f->is_root[i] == 1;

		if (used == want || f->is_root[i] == 2 || f->pg_dontcare[i])
			continue;
		f->mask_errors++;
		if (used)
			report(f, SEV_ERROR, "blob id 0x%" PRIx64 ": marked used, no such blob",
			       blob_id(i));
		else
			report(f, SEV_ERROR, "blob 0x%" PRIx64 ": its id is marked free",
			       blob_id(i));
	}
out:
	free(pr);
	free(cr);
	free(br);
	return rc;
}

/* ---- 6. repair, command ---------------------------------------------------------------------- */

static void fsck_free(struct fsck *f)
{
	free(f->md);
	free(f->page_owner);
	free(f->cl_owner);
	free(f->is_root);
	free(f->pg_dontcare);
	free(f->cl_dontcare);
	free(f->orphans);
	f->md = NULL;
	f->page_owner = f->cl_owner = f->orphans = NULL;
	f->is_root = f->pg_dontcare = f->cl_dontcare = NULL;
	f->errors = f->warnings = f->blobs = f->bad_blobs = f->garbage_pages = 0;
	f->mask_errors = 0;
	f->norphans = 0;
}

/* One full check.  Returns 0, or an fsck exit code for an operational failure. */
static int fsck_scan(struct fsck *f)
{
	const char *why = NULL;
	void *sb;
	uint32_t sblen = f->geo->block_size > 4096 ? f->geo->block_size : 4096;
	int rc;

	sb = zvfs_bdev_buf_alloc(f->bdev, sblen);
	if (!sb)
		return FSCK_OPERATIONAL;
	rc = zvfs_bdev_read_sync(f->bdev, sb, sblen, 0);
	if (rc == 0)
		rc = zvfs_bs_super_decode(sb, f->geo->size, NULL, &f->si, &why);
	zvfs_bdev_buf_free(f->bdev, sb);
	if (rc == -EILSEQ || rc == -ENXIO) {
		fprintf(stderr, PROG ": fsck: %s: not a valid blobstore: %s\n", f->spec,
			why ? why : "invalid super block");
		return FSCK_OPERATIONAL;
	}
	if (rc < 0) {
		cli_err("fsck: reading the super block", rc);
		return FSCK_OPERATIONAL;
	}
	f->l = &f->si.layout;
	f->page_owner = malloc(sizeof(uint32_t) * f->l->md_len);
	f->cl_owner = malloc(sizeof(uint32_t) * f->l->total_clusters);
	f->is_root = calloc(1, f->l->md_len);
	f->pg_dontcare = calloc(1, f->l->md_len);
	f->cl_dontcare = calloc(1, f->l->total_clusters);
	f->orphans = malloc(sizeof(uint32_t) * f->l->md_len);
	if (!f->page_owner || !f->cl_owner || !f->is_root || !f->pg_dontcare || !f->cl_dontcare ||
	    !f->orphans) {
		cli_err("fsck", -ENOMEM);
		return FSCK_OPERATIONAL;
	}
	memset(f->page_owner, 0xff, sizeof(uint32_t) * f->l->md_len);
	memset(f->cl_owner, 0xff, sizeof(uint32_t) * f->l->total_clusters);
	f->progress =
		f->prog_mode == 1 || (f->prog_mode < 0 && isatty(STDERR_FILENO) &&
				      (uint64_t)f->l->md_len * f->l->md_page_size > PROGRESS_MIN);
	rc = read_md(f);
	if (rc < 0) {
		cli_err("fsck: reading the metadata region", rc);
		return FSCK_OPERATIONAL;
	}
	check_blobs(f);
	check_unreachable(f);
	if (f->si.clean) {
		rc = check_masks(f);
		if (rc < 0) {
			cli_err("fsck: reading the masks", rc);
			return FSCK_OPERATIONAL;
		}
	} else {
		f->group_lines = 0;
		report(f, SEV_NOTE,
		       "store not cleanly unloaded: masks not checked (the next load "
		       "rebuilds them)");
	}
	return 0;
}

static int fsck_repair(struct fsck *f)
{
	uint32_t mps = f->l->md_page_size;
	struct zvfs_bs_opts bo;
	struct zvfs_bs *bs;
	void *zero;
	int rc = 0;

	zero = zvfs_bdev_buf_alloc(f->bdev, mps);
	if (!zero)
		return -ENOMEM;
	for (uint32_t k = 0; k < f->norphans && rc == 0; k++)
		rc = zvfs_bdev_write_sync(f->bdev, zero, mps,
					  ((uint64_t)f->l->md_start + f->orphans[k]) * mps);
	zvfs_bdev_buf_free(f->bdev, zero);
	if (rc == 0 && f->norphans)
		rc = zvfs_bdev_flush_sync(f->bdev);
	if (rc < 0)
		return rc;
	zvfs_bs_opts_init(&bo);
	bo.force_recover = true;
	rc = zvfs_bs_load(f->bdev, &bo, &bs);
	if (rc < 0)
		return rc;
	return zvfs_bs_unload(bs);
}

static void fsck_usage(FILE *fp)
{
	fprintf(fp,
		"NAME\n"
		"    zvfs fsck - check and repair a ZVFS blobstore\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs fsck DEVICE [--repair | -n] [--progress | --no-progress] [--json]\n"
		"\n"
		"DESCRIPTION\n"
		"    Reads the super block and the whole metadata region of DEVICE and checks\n"
		"    them at the format level, trusting neither the masks nor the loader:\n"
		"    every root page and its chain (CRC, blob id, sequence, next in range, no\n"
		"    loops, no page of two blobs), the descriptors, the extent pages (CRC,\n"
		"    sequence 0, one EXTENT_PAGE descriptor, start index), clusters owned by\n"
		"    two blobs or outside the data region, md pages with a valid CRC that no\n"
		"    blob reaches (orphans), and, if the store was cleanly unloaded, the three\n"
		"    masks against what the blobs own (leaked clusters, clusters owned but\n"
		"    marked free, md page and blob id mismatches).  Each problem is one line\n"
		"    naming the blob, page or cluster: \"error:\" lines are corruption,\n"
		"    \"warning:\" lines are leftovers a crash can leave (orphan pages) and do\n"
		"    not change the exit status, \"note:\" lines are information.\n"
		"    Without --repair the device is opened read-only.\n"
		"\n"
		"OPTIONS\n"
		"    -r, -y, --repair   fix what is safe: zero orphan md pages, then rebuild the\n"
		"                       masks from the metadata (the engine's recovery) and\n"
		"                       unload cleanly; the store is checked again afterwards.\n"
		"                       Clusters owned twice and broken chains are reported and\n"
		"                       left alone (exit 4): the blob that loses is the engine's\n"
		"                       \"bad blob\", kept for inspection, never deleted\n"
		"    -n, --no-write     never write (the default without --repair)\n"
		"    -p, --progress     always show a progress bar on stderr\n"
		"    -P, --no-progress  never show it (default: shown when stderr is a terminal\n"
		"                       and the metadata region is larger than 64 MiB)\n"
		"    -j, --json         print one JSON document instead of lines\n"
		"    -h, --help         this text\n"
		"\n"
		"EXIT STATUS (fsck(8), ORed)\n"
		"    0   no errors\n"
		"    1   errors corrected (--repair changed the store)\n"
		"    4   errors left uncorrected\n"
		"    8   operational error (cannot open the device, not a blobstore, I/O error)\n"
		"    16  usage error\n"
		"\n"
		"EXAMPLES\n"
		"    zvfs fsck /var/tmp/store.img\n"
		"    zvfs fsck /var/tmp/store.img --repair\n"
		"    zvfs fsck aio:/dev/nvme0n1 -n --json\n");
}

static void summary(struct fsck *f, int code, bool repaired)
{
	if (f->json) {
		printf("],\"blobs\":%" PRIu64 ",\"bad_blobs\":%" PRIu64 ",\"errors\":%" PRIu64
		       ",\"warnings\":%" PRIu64 ",\"orphan_pages\":%" PRIu32
		       ",\"unreadable_free_pages\":%" PRIu64 ",\"clean\":%s,\"repaired\":%s"
		       ",\"exit\":%d}\n",
		       f->blobs, f->bad_blobs, f->errors, f->warnings, f->norphans,
		       f->garbage_pages, f->si.clean ? "true" : "false",
		       repaired ? "true" : "false", code);
		return;
	}
	printf("%s: %" PRIu64 " blobs (%" PRIu64 " bad), %" PRIu64 " errors, %" PRIu64
	       " warnings%s\n",
	       f->spec, f->blobs, f->bad_blobs, f->errors, f->warnings,
	       repaired ? " after repair" : "");
	if (f->garbage_pages)
		printf("note: %" PRIu64 " unreachable md pages with a bad CRC (torn or stale "
		       "writes, ignored by every loader)\n",
		       f->garbage_pages);
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{"repair", no_argument, NULL, 'r'},
		{"no-write", no_argument, NULL, 'n'},
		{"progress", no_argument, NULL, 'p'},
		{"no-progress", no_argument, NULL, 'P'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct fsck f;
	bool repair = false, nowrite = false, repaired = false;
	int prog = -1, opt, rc, code;

	memset(&f, 0, sizeof(f));
	while ((opt = getopt_long(argc, argv, "rnpPjhy", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
		case 'y':
			repair = true;
			break;
		case 'n':
			nowrite = true;
			break;
		case 'p':
			prog = 1;
			break;
		case 'P':
			prog = 0;
			break;
		case 'j':
			f.json = true;
			break;
		case 'h':
			fsck_usage(stdout);
			return FSCK_OK;
		default:
			fsck_usage(stderr);
			return FSCK_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, PROG ": fsck: expected one DEVICE (see zvfs fsck --help)\n");
		return FSCK_USAGE;
	}
	if (repair && nowrite) {
		fprintf(stderr, PROG ": fsck: --repair and -n exclude each other\n");
		return FSCK_USAGE;
	}
	f.spec = argv[optind];
	if (cli_open(f.spec, !repair, &f.bdev) < 0)
		return FSCK_OPERATIONAL;
	f.geo = zvfs_bdev_get_geometry(f.bdev);
	f.first_json = true;
	if (f.json) {
		printf("{\"device\":");
		json_str(stdout, f.spec, strlen(f.spec));
		printf(",\"problems\":[");
	}
	f.prog_mode = prog;
	code = fsck_scan(&f);
	if (code == 0 && repair && (f.norphans || f.mask_errors || !f.si.clean)) {
		rc = fsck_repair(&f);
		if (rc < 0) {
			cli_err("fsck: repair", rc);
			code = FSCK_OPERATIONAL;
		} else {
			repaired = true;
			if (!f.json)
				printf("repair: %" PRIu32 " orphan md pages zeroed, masks rebuilt, "
				       "store unloaded cleanly; checking again\n",
				       f.norphans);
			fsck_free(&f);
			f.quiet = false;
			code = fsck_scan(&f);
		}
	}
	if (code == 0) {
		if (repaired)
			code |= FSCK_CORRECTED;
		if (f.errors)
			code |= FSCK_UNCORRECTED;
	}
	if (f.json && code != FSCK_OPERATIONAL)
		summary(&f, code, repaired);
	else if (f.json)
		printf("],\"exit\":%d}\n", code);
	else if (code != FSCK_OPERATIONAL)
		summary(&f, code, repaired);
	fsck_free(&f);
	zvfs_bdev_close(f.bdev);
	return code;
}
