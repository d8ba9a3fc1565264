/* SPDX-License-Identifier: MIT */
/*
 * zvfs fsck: an independent check of a blobstore at the format level (FORMAT.md §15).  It
 * reads the super block and the whole metadata region itself and trusts neither the masks
 * nor the engine's loader; only --repair calls the engine (a force_recover load and a clean
 * unload rebuild the masks).  With --mount DIR it also checks the file level (zvfs/fs.h):
 * every placeholder's xattr against the blob it names, and blobs of files no placeholder
 * names (orphans); that part loads the store through the engine (read-only unless --repair).
 *
 * Map of this file:
 *   1. state, problem reporting
 *   2. reading (large reads, progress bar)
 *   3. blobs: roots, chains, descriptors, extent pages, cluster ownership
 *   4. unreachable pages (orphans)
 *   5. masks (clean stores only)
 *   6. files (--mount): placeholders, generations, back-references, orphan blobs
 *   7. repair, command
 *
 * Policy (docs/tools.md): errors are corruption; warnings are things a crash leaves behind
 * normally (stale pages with a valid CRC that no blob reaches, blobs of files that no file
 * names) or that need a person (data in a placeholder), and do not change the exit status
 * unless --repair removes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "blob/blob_internal.h"
#include "blob/format.h"
#include "cli/cmd.h"
#include "zvfs/blob.h"
#include "zvfs/fs.h"

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
	uint64_t files, zfiles, file_errors, orphan_blobs; /* the file level (--mount) */
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

/* ---- 6. files -------------------------------------------------------------------------------- */

/*
 * A file's blob as the store describes it: the blob xattrs of zvfs/fs.h.  Blobs without
 * "zvfs.gen" (the super blob, blobs of other users of the store) are not files and are not
 * listed.
 */
struct fblob {
	zvfs_blob_id id;
	uint64_t gen, size, dev, ino;
	bool have_ino; /* "zvfs.ino" present and well-formed */
	bool named;    /* a placeholder with the right generation and inode names it */
};

/*
 * A placeholder --repair changes: taken out of service (renamed to NAME.zvfs-lost), or, for a
 * good one, its Linux size set to the logical size (resize).
 */
struct fixup {
	char *path;
	bool resize;
	uint64_t size;
};

struct files {
	struct fsck *f;
	struct zvfs_bs *bs;
	char store_id[37];   /* "" when the store has no UUID yet (no file was ever created) */
	struct fblob *blobs; /* in id order (zvfs_bs_next_blob()), for bsearch */
	size_t nblobs;
	struct fixup *fix; /* what --repair will do, applied after the walk */
	size_t nfix, fix_cap;
	uint64_t files, zfiles, file_errors, orphans, deleted, renamed, resized, repair_failed;
	int op_err; /* an operational error stops the walk: -errno */
};

/* nftw(3) has no argument for its callback. */
static struct files *walk_files;

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_hex64(const char *p, uint64_t *v)
{
	*v = 0;
	for (int i = 0; i < 16; i++) {
		int h = hex_val(p[i]);

		if (h < 0)
			return false;
		*v = *v << 4 | (uint64_t)h;
	}
	return true;
}

static bool uuid_ok(const char *p)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? p[i] != '-' : hex_val(p[i]) < 0)
			return false;
	}
	return true;
}

/*
 * The placeholder xattr "zvfs1 <store id, 16 hex> <blob id, 16 hex> <gen, 16 hex>" (zvfs/fs.h;
 * the store id is the first 16 hex digits of the store UUID), parsed here rather than by
 * zvfs_fs_xattr_parse() so that fsck checks the format independently of the file layer it
 * checks, as the format-level part does for the blobstore.
 */
#define XATTR_LEN (6 + 16 + 1 + 16 + 1 + 16)
static int parse_placeholder(const char *v, size_t len, char sid[37], uint64_t *id, uint64_t *gen)
{
	uint64_t store;

	/* a trailing NUL (tools that store C strings) is accepted, as by the file layer */
	if (len == XATTR_LEN + 1 && v[XATTR_LEN] == '\0')
		len--;
	if (len != XATTR_LEN || memcmp(v, "zvfs1 ", 6) != 0 || !parse_hex64(v + 6, &store) ||
	    v[22] != ' ' || !parse_hex64(v + 23, id) || v[39] != ' ' || !parse_hex64(v + 40, gen))
		return -EUCLEAN;
	memcpy(sid, v + 6, 16);
	sid[16] = '\0';
	return 0;
}

/* The store's UUID: "zvfs.store_uuid" of the super blob, 36 characters (or 16 raw bytes). */
static int store_uuid(struct files *fs)
{
	zvfs_blob_id super = zvfs_bs_get_super(fs->bs);
	struct zvfs_blob *b;
	uint8_t v[64];
	int n, rc;

	fs->store_id[0] = '\0';
	if (super == ZVFS_BLOBID_INVALID)
		return 0;
	rc = zvfs_blob_open(fs->bs, super, &b);
	if (rc < 0)
		return rc;
	n = zvfs_blob_get_xattr(b, "zvfs.store_uuid", v, sizeof(v), false);
	zvfs_blob_close(b);
	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return n;
	if ((n == 36 || (n == 37 && v[36] == '\0')) && uuid_ok((const char *)v)) {
		memcpy(fs->store_id, v, 36);
		fs->store_id[36] = '\0';
	} else if (n == 16) {
		snprintf(fs->store_id, sizeof(fs->store_id),
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11],
			 v[12], v[13], v[14], v[15]);
	} else {
		report(fs->f, SEV_ERROR,
		       "super blob 0x%" PRIx64 ": malformed zvfs.store_uuid (%d bytes): every "
		       "file will look foreign",
		       super, n);
	}
	return 0;
}

/* The store id placeholders carry: the UUID's first 16 hex digits ("" without a UUID). */
static const char *store_short_id(const char *uuid, char out[17])
{
	size_t n = 0;

	for (const char *p = uuid; *p && n < 16; p++)
		if (*p != '-')
			out[n++] = *p;
	out[n] = '\0';
	return out;
}

/* Read one blob's file xattrs; 1 = a file's blob (filled in), 0 = not a file. */
static int read_fblob(struct files *fs, zvfs_blob_id id, struct fblob *fb)
{
	struct zvfs_blob *b;
	uint8_t v[16];
	int n, rc;

	rc = zvfs_blob_open(fs->bs, id, &b);
	if (rc < 0) {
		fs->f->group_lines = 0;
		report(fs->f, SEV_WARN, "blob 0x%" PRIx64 ": cannot open it (%s): not checked", id,
		       strerror(-rc));
		return 0;
	}
	memset(fb, 0, sizeof(*fb));
	fb->id = id;
	rc = 0;
	n = zvfs_blob_get_xattr(b, "zvfs.gen", v, sizeof(v), false);
	if (n == -ENOENT)
		goto out;
	fs->f->group_lines = 0;
	if (n != 8) {
		report(fs->f, SEV_ERROR, "blob 0x%" PRIx64 ": malformed zvfs.gen (%d)", id, n);
		goto out;
	}
	fb->gen = le64_at(v);
	n = zvfs_blob_get_xattr(b, "zvfs.size", v, sizeof(v), false);
	if (n == 8)
		fb->size = le64_at(v);
	else
		report(fs->f, SEV_ERROR, "blob 0x%" PRIx64 ": zvfs.size missing or malformed (%d)",
		       id, n);
	n = zvfs_blob_get_xattr(b, "zvfs.ino", v, sizeof(v), false);
	if (n == 16) {
		fb->dev = le64_at(v);
		fb->ino = le64_at(v + 8);
		fb->have_ino = true;
	} else {
		report(fs->f, SEV_ERROR, "blob 0x%" PRIx64 ": zvfs.ino missing or malformed (%d)",
		       id, n);
	}
	rc = 1;
out:
	zvfs_blob_close(b);
	return rc;
}

static int load_fblobs(struct files *fs)
{
	zvfs_blob_id id = ZVFS_BLOBID_INVALID, super = zvfs_bs_get_super(fs->bs);
	size_t cap = 0;

	fs->nblobs = 0;
	while (zvfs_bs_next_blob(fs->bs, id, &id) == 0) {
		if (fs->nblobs == cap) {
			struct fblob *nb;

			cap = cap ? cap * 2 : 64;
			nb = realloc(fs->blobs, cap * sizeof(*nb));
			if (!nb)
				return -ENOMEM;
			fs->blobs = nb;
		}
		if (id != super && read_fblob(fs, id, &fs->blobs[fs->nblobs]) == 1)
			fs->nblobs++;
	}
	return 0;
}

static int cmp_fblob(const void *key, const void *elem)
{
	zvfs_blob_id k = *(const zvfs_blob_id *)key, e = ((const struct fblob *)elem)->id;

	return k < e ? -1 : k > e;
}

static struct fblob *find_fblob(struct files *fs, zvfs_blob_id id)
{
	return bsearch(&id, fs->blobs, fs->nblobs, sizeof(*fs->blobs), cmp_fblob);
}

/* Remember @path for --repair. */
static void add_fixup(struct files *fs, const char *path, bool resize, uint64_t size)
{
	if (fs->nfix == fs->fix_cap) {
		size_t cap = fs->fix_cap ? fs->fix_cap * 2 : 16;
		struct fixup *l = realloc(fs->fix, cap * sizeof(*l));

		if (!l) {
			fs->op_err = -ENOMEM;
			return;
		}
		fs->fix = l;
		fs->fix_cap = cap;
	}
	fs->fix[fs->nfix].path = strdup(path);
	if (!fs->fix[fs->nfix].path) {
		fs->op_err = -ENOMEM;
		return;
	}
	fs->fix[fs->nfix].resize = resize;
	fs->fix[fs->nfix].size = size;
	fs->nfix++;
}

/* A placeholder whose xattr cannot name this store's data: an error, and --repair's to fix. */
static __attribute__((format(printf, 3, 4))) void lost_file(struct files *fs, const char *path,
							    const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fs->file_errors++;
	fs->f->group_lines = 0;
	report(fs->f, SEV_ERROR, "file %s: %s", path, why);
	add_fixup(fs, path, false, 0);
}

/*
 * Does the placeholder hold data?  It never should (DESIGN.md D5): bytes there were written
 * past the library and no ZVFS read sees them.  SEEK_DATA, not st_blocks: an xattr too big for
 * the inode takes a block of its own on ext4.
 */
static bool placeholder_has_data(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	bool data;

	if (fd < 0)
		return false;
	data = lseek(fd, 0, SEEK_DATA) >= 0;
	close(fd);
	return data;
}

static void check_file(struct files *fs, const char *path, const struct stat *st)
{
	char v[ZVFS_FS_XATTR_MAX + 1], sid[37], short_id[17];
	uint64_t id, gen;
	struct fblob *b;
	ssize_t n;

	fs->files++;
	n = lgetxattr(path, ZVFS_FS_XATTR, v, sizeof(v));
	if (n < 0 && (errno == ENODATA || errno == ENOTSUP))
		return; /* a plain Linux file (passthrough) */
	fs->f->group_lines = 0;
	if (n < 0 && errno == ERANGE) {
		n = (ssize_t)sizeof(v); /* longer than any valid value: malformed below */
	} else if (n < 0) {
		report(fs->f, SEV_WARN, "file %s: cannot read its xattr (%s): not checked", path,
		       strerror(errno));
		return;
	}
	fs->zfiles++;
	if (st->st_size > 0 && placeholder_has_data(path))
		report(fs->f, SEV_WARN,
		       "file %s: the placeholder holds data (written without the library?): no "
		       "ZVFS read sees it; left alone",
		       path);
	if (parse_placeholder(v, (size_t)n, sid, &id, &gen) < 0) {
		lost_file(fs, path, "malformed " ZVFS_FS_XATTR " (%zd bytes)", n);
		return;
	}
	if (strcmp(sid, store_short_id(fs->store_id, short_id)) != 0) {
		lost_file(fs, path, "foreign: its xattr names store %s, not this one (%s)", sid,
			  fs->store_id[0] ? fs->store_id : "no UUID yet");
		return;
	}
	if (bad_blob_id(fs->f, id)) {
		fs->file_errors++;
		report(fs->f, SEV_ERROR,
		       "file %s: its blob 0x%" PRIx64 " is damaged (see above); left alone", path,
		       id);
		return;
	}
	b = find_fblob(fs, id);
	if (!b) {
		lost_file(fs, path,
			  "missing blob: its xattr names blob 0x%" PRIx64
			  ", which is not a file's blob in this store",
			  id);
		return;
	}
	if (b->gen != gen) {
		lost_file(fs, path,
			  "stale xattr: blob 0x%" PRIx64 " has generation %016" PRIx64
			  ", the xattr %016" PRIx64,
			  id, b->gen, gen);
		return;
	}
	if (!b->have_ino || b->dev != (uint64_t)st->st_dev || b->ino != (uint64_t)st->st_ino) {
		lost_file(fs, path,
			  "stale xattr: blob 0x%" PRIx64 " belongs to inode %" PRIu64 ":%" PRIu64
			  ", this file is %" PRIu64 ":%" PRIu64
			  " (a copy of another file's xattr?)",
			  id, b->dev, b->ino, (uint64_t)st->st_dev, (uint64_t)st->st_ino);
		return;
	}
	b->named = true;
	if ((uint64_t)st->st_size != b->size) {
		/* a crash after a write and before the close or fsync that sets it: ls -l is off */
		report(fs->f, SEV_NOTE,
		       "file %s: Linux size %" PRIu64 ", logical size %" PRIu64
		       " (the placeholder's size is set at close and fsync)",
		       path, (uint64_t)st->st_size, b->size);
		add_fixup(fs, path, true, b->size);
	}
}

static int walk_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_DNR || type == FTW_NS) {
		walk_files->f->group_lines = 0;
		report(walk_files->f, SEV_WARN, "%s: cannot read it: not checked", path);
		return 0;
	}
	if (type == FTW_F && S_ISREG(st->st_mode))
		check_file(walk_files, path, st);
	return walk_files->op_err ? 1 : 0;
}

/* One "repair: ..." line per action; with --json a note in "problems", so stdout stays JSON. */
static __attribute__((format(printf, 2, 3))) void repair_log(struct fsck *f, const char *fmt, ...)
{
	char line[PATH_MAX * 2 + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->json) {
		f->group_lines = 0;
		report(f, SEV_NOTE, "repair: %s", line);
	} else {
		printf("repair: %s\n", line);
	}
}

/* Rename @path to PATH.zvfs-lost (or .zvfs-lost.N if taken) and drop its xattr. */
static int retire_file(struct fsck *f, const char *path)
{
	char *to = NULL;
	int rc = -EEXIST;

	for (int k = 0; k < 100 && rc == -EEXIST; k++) {
		free(to);
		to = NULL;
		if ((k ? asprintf(&to, "%s.zvfs-lost.%d", path, k)
		       : asprintf(&to, "%s.zvfs-lost", path)) < 0)
			return -ENOMEM;
		rc = renameat2(AT_FDCWD, path, AT_FDCWD, to, RENAME_NOREPLACE) ? -errno : 0;
	}
	if (rc == 0) {
		if (lremovexattr(to, ZVFS_FS_XATTR) < 0 && errno != ENODATA)
			rc = -errno;
		repair_log(f, "file %s: renamed to %s, %s %s", path, to,
			   rc ? "could not remove" : "removed", ZVFS_FS_XATTR);
	}
	free(to);
	return rc;
}

static void files_free(struct files *fs)
{
	for (size_t i = 0; i < fs->nfix; i++)
		free(fs->fix[i].path);
	free(fs->fix);
	free(fs->blobs);
	fs->fix = NULL;
	fs->blobs = NULL;
	fs->nfix = fs->fix_cap = fs->nblobs = 0;
}

/*
 * One pass over the file level: every DIR, then the orphans; with @repair, delete the orphan
 * blobs and retire the placeholders that name no data.  Returns 0 or -errno (operational).
 */
static int files_pass(struct files *fs, char **mounts, int nmounts, bool repair)
{
	int rc;

	fs->files = fs->zfiles = fs->file_errors = fs->orphans = 0;
	rc = store_uuid(fs);
	if (rc == 0)
		rc = load_fblobs(fs);
	if (rc < 0)
		return rc;
	walk_files = fs;
	for (int m = 0; m < nmounts && !fs->op_err; m++)
		/* FTW_PHYS: symlinks are not followed, so nothing outside the tree is judged */
		if (nftw(mounts[m], walk_cb, 32, FTW_PHYS) < 0 && !fs->op_err)
			fs->op_err = -errno;
	walk_files = NULL;
	if (fs->op_err)
		return fs->op_err;
	for (size_t i = 0; i < fs->nblobs; i++) {
		if (fs->blobs[i].named)
			continue;
		fs->orphans++;
		fs->f->group_lines = 0;
		/* a crash between creating a blob and setting the xattr, or between unlinking
		 * a placeholder and deleting its blob, leaves one: a warning, as orphan pages */
		report(fs->f, SEV_WARN,
		       "orphan blob 0x%" PRIx64 " (generation %016" PRIx64 ", %" PRIu64
		       " bytes, inode %" PRIu64 ":%" PRIu64 "): no file under --mount names it",
		       fs->blobs[i].id, fs->blobs[i].gen, fs->blobs[i].size, fs->blobs[i].dev,
		       fs->blobs[i].ino);
		if (!repair)
			continue;
		rc = zvfs_bs_delete_blob(fs->bs, fs->blobs[i].id);
		if (rc < 0) {
			cli_err("fsck: deleting an orphan blob", rc);
			fs->repair_failed++;
		} else {
			repair_log(fs->f, "orphan blob 0x%" PRIx64 " deleted", fs->blobs[i].id);
			fs->deleted++;
		}
	}
	for (size_t i = 0; repair && i < fs->nfix; i++) {
		if (fs->fix[i].resize) {
			/* the placeholder holds no data: a sparse truncate only fixes st_size */
			if (truncate(fs->fix[i].path, (off_t)fs->fix[i].size) < 0) {
				fprintf(stderr, PROG ": fsck: %s: cannot set its size: %s\n",
					fs->fix[i].path, strerror(errno));
				fs->repair_failed++;
			} else {
				repair_log(fs->f,
					   "file %s: Linux size set to the logical size %" PRIu64,
					   fs->fix[i].path, fs->fix[i].size);
				fs->resized++;
			}
			continue;
		}
		rc = retire_file(fs->f, fs->fix[i].path);
		if (rc < 0) {
			fprintf(stderr, PROG ": fsck: %s: cannot retire it: %s\n", fs->fix[i].path,
				strerror(-rc));
			fs->repair_failed++;
		} else {
			fs->renamed++;
		}
	}
	return 0;
}

/*
 * The file level: load the store (read-only unless @repair), check, and with @repair fix then
 * check again.  Adds its problems to f's counters (after a repair: the second pass's only).
 * Returns 0 or an fsck exit code for an operational failure.
 */
static int fsck_files(struct fsck *f, char **mounts, int nmounts, bool repair, bool *changed)
{
	uint64_t errors0 = f->errors, warnings0 = f->warnings;
	struct files fs;
	struct zvfs_bs_opts bo;
	int rc, urc;

	memset(&fs, 0, sizeof(fs));
	fs.f = f;
	for (int m = 0; m < nmounts; m++) {
		struct stat st;

		if (stat(mounts[m], &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, PROG ": fsck: --mount %s: %s\n", mounts[m],
				stat(mounts[m], &st) < 0 ? strerror(errno) : "not a directory");
			return FSCK_OPERATIONAL;
		}
	}
	zvfs_bs_opts_init(&bo);
	bo.read_only = !repair;
	rc = zvfs_bs_load(f->bdev, &bo, &fs.bs);
	if (rc < 0) {
		cli_err("fsck: loading the store for the file checks", rc);
		return FSCK_OPERATIONAL;
	}
	rc = files_pass(&fs, mounts, nmounts, repair);
	if (rc == 0 && (fs.deleted || fs.renamed || fs.resized)) {
		*changed = true;
		if (!f->json)
			printf("repair: %" PRIu64 " orphan blobs deleted, %" PRIu64
			       " files renamed to *.zvfs-lost, %" PRIu64
			       " Linux sizes set; checking files again\n",
			       fs.deleted, fs.renamed, fs.resized);
		f->errors = errors0;
		f->warnings = warnings0;
		files_free(&fs);
		rc = files_pass(&fs, mounts, nmounts, false);
	}
	if (rc < 0)
		cli_err("fsck: checking files", rc);
	else if (!f->json)
		printf("files: %" PRIu64 " regular files, %" PRIu64 " ZVFS files, %" PRIu64
		       " with errors, %" PRIu64 " orphan blobs\n",
		       fs.files, fs.zfiles, fs.file_errors, fs.orphans);
	f->files = fs.files;
	f->zfiles = fs.zfiles;
	f->file_errors = fs.file_errors;
	f->orphan_blobs = fs.orphans;
	files_free(&fs);
	urc = zvfs_bs_unload(fs.bs);
	if (urc < 0) {
		cli_err("fsck: unloading the store", urc);
		rc = rc ? rc : urc;
	}
	if (fs.repair_failed)
		f->errors++;
	return rc < 0 ? FSCK_OPERATIONAL : 0;
}

/* ---- 7. repair, command ---------------------------------------------------------------------- */

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

/* "process PID (COMM)" for the claim's holder; static storage. */
static const char *holder_name(pid_t pid)
{
	static char name[128];
	char path[64], comm[64] = "";
	FILE *fp;

	if (pid <= 0)
		return "another process";
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fp = fopen(path, "r");
	if (fp) {
		if (fgets(comm, sizeof(comm), fp))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(fp);
	}
	snprintf(name, sizeof(name), "process %d%s%s%s", (int)pid, comm[0] ? " (" : "", comm,
		 comm[0] ? ")" : "");
	return name;
}

static void fsck_usage(FILE *fp)
{
	fprintf(fp,
		"NAME\n"
		"    zvfs fsck - check and repair a ZVFS blobstore\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs fsck DEVICE [--repair | -n] [--mount DIR]... [--progress | "
		"--no-progress]\n"
		"              [--json]\n"
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
		"    Without --repair the device is opened read-only.  A store in use by\n"
		"    another process (ZVFS direct mode, zvfsd) is refused (exit 8).\n"
		"\n"
		"    With --mount DIR (repeatable) fsck also checks the files: it walks every\n"
		"    DIR (not following symlinks) and, for each regular file carrying the\n"
		"    user.zvfs.blob_id xattr, reports (error) a malformed xattr, a foreign file\n"
		"    (another store's), a missing blob, and a stale xattr (the blob's\n"
		"    generation or inode back-reference differs: a copied or restored file);\n"
		"    then every file blob (one with zvfs.gen) that no file names: an orphan\n"
		"    (warning: a crash between creating a blob and naming it, or between an\n"
		"    unlink and the blob's deletion, leaves one).  The DIRs must hold every\n"
		"    file of the store, or --repair deletes the data of the ones left out.\n"
		"    Without --mount the file level is skipped (a note says so).\n"
		"\n"
		"OPTIONS\n"
		"    -r, -y, --repair   fix what is safe: zero orphan md pages, then rebuild the\n"
		"                       masks from the metadata (the engine's recovery) and\n"
		"                       unload cleanly; the store is checked again afterwards.\n"
		"                       Clusters owned twice and broken chains are reported and\n"
		"                       left alone (exit 4): the blob that loses is the engine's\n"
		"                       \"bad blob\", kept for inspection, never deleted\n"
		"                       With --mount: delete orphan blobs, rename files\n"
		"                       naming no data here to NAME.zvfs-lost without the\n"
		"                       xattr, set placeholders' Linux size to the logical\n"
		"                       size (each action logged), then check the files again\n"
		"    -m, --mount DIR    check the files under DIR too (repeatable; see above)\n"
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
		"    zvfs fsck --mount /zvfs /var/lib/zvfs/store.img\n"
		"    zvfs fsck aio:/dev/nvme0n1 -n --json\n");
}

static void summary(struct fsck *f, int code, bool repaired)
{
	if (f->json) {
		printf("],\"blobs\":%" PRIu64 ",\"bad_blobs\":%" PRIu64 ",\"errors\":%" PRIu64
		       ",\"warnings\":%" PRIu64 ",\"orphan_pages\":%" PRIu32
		       ",\"unreadable_free_pages\":%" PRIu64 ",\"files\":%" PRIu64
		       ",\"zvfs_files\":%" PRIu64 ",\"file_errors\":%" PRIu64
		       ",\"orphan_blobs\":%" PRIu64 ",\"clean\":%s,\"repaired\":%s"
		       ",\"exit\":%d}\n",
		       f->blobs, f->bad_blobs, f->errors, f->warnings, f->norphans,
		       f->garbage_pages, f->files, f->zfiles, f->file_errors, f->orphan_blobs,
		       f->si.clean ? "true" : "false", repaired ? "true" : "false", code);
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
		{"repair", no_argument, NULL, 'r'},   {"no-write", no_argument, NULL, 'n'},
		{"progress", no_argument, NULL, 'p'}, {"no-progress", no_argument, NULL, 'P'},
		{"json", no_argument, NULL, 'j'},     {"mount", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},     {NULL, 0, NULL, 0},
	};
	struct fsck f;
	bool repair = false, nowrite = false, repaired = false, files_changed = false;
	char **mounts;
	int prog = -1, opt, rc, code, nmounts = 0;
	pid_t holder = 0;

	memset(&f, 0, sizeof(f));
	mounts = calloc((size_t)argc + 1, sizeof(*mounts));
	if (!mounts)
		return FSCK_OPERATIONAL;
	while ((opt = getopt_long(argc, argv, "rnpPjhym:", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			mounts[nmounts++] = optarg;
			break;
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
			free(mounts);
			return FSCK_OK;
		default:
			fsck_usage(stderr);
			free(mounts);
			return FSCK_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, PROG ": fsck: expected one DEVICE (see zvfs fsck --help)\n");
		free(mounts);
		return FSCK_USAGE;
	}
	if (repair && nowrite) {
		fprintf(stderr, PROG ": fsck: --repair and -n exclude each other\n");
		free(mounts);
		return FSCK_USAGE;
	}
	f.spec = argv[optind];
	if (cli_open(f.spec, !repair, &f.bdev) < 0) {
		free(mounts);
		return FSCK_OPERATIONAL;
	}
	/* a store mounted by a running process changes under us: refuse, naming the holder */
	rc = zvfs_bdev_claim(f.bdev, &holder);
	if (rc < 0) {
		if (rc == -EBUSY)
			fprintf(stderr, PROG ": fsck: %s: in use by %s; stop it first\n", f.spec,
				holder_name(holder));
		else
			cli_err("fsck: claiming the device", rc);
		zvfs_bdev_close(f.bdev);
		free(mounts);
		return FSCK_OPERATIONAL;
	}
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
	if (code == 0 && nmounts) {
		code = fsck_files(&f, mounts, nmounts, repair, &files_changed);
	} else if (code == 0) {
		f.group_lines = 0;
		report(&f, SEV_NOTE, "no --mount DIR given: file-level checks skipped");
	}
	if (code == 0) {
		if (repaired || files_changed)
			code |= FSCK_CORRECTED;
		if (f.errors)
			code |= FSCK_UNCORRECTED;
	}
	if (f.json && code != FSCK_OPERATIONAL)
		summary(&f, code, repaired || files_changed);
	else if (f.json)
		printf("],\"exit\":%d}\n", code);
	else if (code != FSCK_OPERATIONAL)
		summary(&f, code, repaired || files_changed);
	fsck_free(&f);
	zvfs_bdev_close(f.bdev);
	free(mounts);
	return code;
}
