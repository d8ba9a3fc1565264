/* SPDX-License-Identifier: MIT */
/*
 * zvfs: the store administration tool (docs/tools.md).
 *
 * Map of this file:
 *   1. helpers     messages, device opening, JSON/hex output
 *   2. mkfs        format a device (zvfs_bs_init + clean unload)
 *   3. info        read-only listing of the super block, usage and blobs
 *   4. main        global --help / --version and dispatch
 * fsck lives in cmd_fsck.c: it reads the format directly (src/blob/format.h).  The daemon-mode
 * commands (daemon start|stop|status, stat, run) live in cmd_daemon.c: they only speak the
 * control protocol (src/ipc/proto.h) and never open a store.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_internal.h"
#include "blob/format.h"
#include "cli/cmd.h"
#include "ipc/proto.h"
#include "util/parse.h"
#include "zvfs/blob.h"
#include "zvfs_version.h"

/* ---- 1. helpers ------------------------------------------------------------------------------ */

void cli_err(const char *what, int err)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(err < 0 ? -err : err));
}

int cli_open(const char *spec, bool ro, struct zvfs_bdev **bdevp)
{
	char msg[512];
	char *s = NULL;
	int rc;

	if (ro) {
		if (asprintf(&s, "%s,ro", spec) < 0)
			return -ENOMEM;
		spec = s;
	}
	msg[0] = '\0';
	rc = zvfs_bdev_open(spec, bdevp, msg, sizeof(msg));
	if (rc < 0) {
		if (msg[0])
			fprintf(stderr, PROG ": %s\n", msg);
		else
			cli_err(spec, rc);
	}
	free(s);
	return rc;
}

void json_str(FILE *f, const void *s, size_t len)
{
	const unsigned char *p = s;

	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void put_hex(FILE *f, const void *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", ((const uint8_t *)p)[i]);
}

bool is_text(const uint8_t *p, size_t len)
{
	if (len > 0 && p[len - 1] == '\0')
		len--;
	for (size_t i = 0; i < len;) {
		uint8_t c = p[i];
		size_t n;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0 && c >= 0xc2)
			n = 2;
		else if ((c & 0xf0) == 0xe0)
			n = 3;
		else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
			n = 4;
		else
			return false;
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

static void human_size(char *buf, size_t len, uint64_t v)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int u = 0;

	while (u < 5 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%" PRIu64 " %s", v, units[u]);
}

/* Read and decode the super block (any bstype).  Returns 0, -EILSEQ (why set) or an I/O error. */
static int read_super(struct zvfs_bdev *bdev, struct zvfs_bs_super_info *info, uint8_t *raw_bstype,
		      const char **why)
{
	const struct zvfs_bdev_geometry *geo = zvfs_bdev_get_geometry(bdev);
	uint32_t len = geo->block_size > ZVFS_BS_PAGE_SIZE ? geo->block_size : ZVFS_BS_PAGE_SIZE;
	void *buf = zvfs_bdev_buf_alloc(bdev, len);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = zvfs_bdev_read_sync(bdev, buf, len, 0);
	if (rc == 0)
		rc = zvfs_bs_super_decode(buf, geo->size, NULL, info, why);
	if (rc == 0 && raw_bstype)
		memcpy(raw_bstype, ((struct zvfs_bs_super *)buf)->bstype, ZVFS_BS_BSTYPE_LEN);
	zvfs_bdev_buf_free(bdev, buf);
	return rc;
}

static int parse_size_opt(const char *opt, const char *arg, uint64_t max, uint64_t *out)
{
	int rc = zvfs_parse_size(arg, out);

	if (rc == 0 && *out > max)
		rc = -ERANGE;
	if (rc < 0) {
		fprintf(stderr, PROG ": %s: invalid size: %s\n", opt, arg);
		return -1;
	}
	return 0;
}

/*
 * The blob's own read-only state (FLAGS data_ro, §8): zvfs_blob_is_read_only() also says true
 * for every blob of a store loaded read-only, as info loads it.
 */
static bool blob_ro_on_disk(const struct zvfs_blob *b)
{
	bool data_ro = false, md_ro = false;

	zvfs_blob_md_open_mode(&b->flags, &data_ro, &md_ro);
	return data_ro;
}

/* ---- 2. mkfs --------------------------------------------------------------------------------- */

static void mkfs_usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    zvfs mkfs - create a ZVFS blobstore on a device\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs mkfs DEVICE [--size SIZE] [--cluster-size SIZE] [--md-pages N]\n"
		"                     [--md-page-size SIZE] [--bstype NAME] [--force]\n"
		"\n"
		"DESCRIPTION\n"
		"    Formats DEVICE (a device spec: a path, uring:PATH,..., aio:PATH,...; see\n"
		"    zvfs/bdev.h) as an empty SPDK-compatible blobstore, unloads it cleanly and\n"
		"    prints its geometry.  The metadata and data regions are zeroed.  A device\n"
		"    whose first block is a valid blobstore super block is refused unless\n"
		"    --force is given.\n"
		"\n"
		"OPTIONS\n"
		"    -s, --size SIZE          create or extend the image file DEVICE to SIZE "
		"bytes\n"
		"                             (K/M/G/T suffixes; spec "
		"uring:DEVICE,size=SIZE,create)\n"
		"    -c, --cluster-size SIZE  allocation unit, multiple of 4 KiB (default 1M)\n"
		"    -m, --md-pages N         metadata pages (default: one per cluster)\n"
		"    -p, --md-page-size SIZE  metadata page size (default: max(4096, physical "
		"block))\n"
		"    -t, --bstype NAME        store type tag, at most 16 bytes (default ZVFS)\n"
		"    -f, --force              overwrite an existing store\n"
		"    -h, --help               this text\n"
		"\n"
		"EXIT STATUS\n"
		"    0 success, 1 error (device, existing store, unusable geometry), 2 usage "
		"error.\n"
		"\n"
		"EXAMPLES\n"
		"    zvfs mkfs /var/tmp/store.img --size 4G\n"
		"    zvfs mkfs aio:/dev/nvme0n1 --cluster-size 4M --force\n");
}

int cmd_mkfs(int argc, char **argv)
{
	static const struct option opts[] = {
		{"size", required_argument, NULL, 's'},
		{"cluster-size", required_argument, NULL, 'c'},
		{"md-pages", required_argument, NULL, 'm'},
		{"md-page-size", required_argument, NULL, 'p'},
		{"bstype", required_argument, NULL, 't'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct zvfs_bs_opts bo;
	struct zvfs_bs_super_info si;
	struct zvfs_bs_stats st;
	struct zvfs_bdev *bdev;
	struct zvfs_bs *bs;
	const char *size = NULL, *dev, *why = NULL;
	char *spec = NULL, cs[32], ps[32];
	uint64_t v;
	bool force = false;
	int opt, rc, ret = 1;

	zvfs_bs_opts_init(&bo);
	while ((opt = getopt_long(argc, argv, "s:c:m:p:t:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (parse_size_opt("--size", optarg, UINT64_MAX, &v))
				return 2;
			size = optarg;
			break;
		case 'c':
			if (parse_size_opt("--cluster-size", optarg, UINT32_MAX, &v))
				return 2;
			bo.cluster_size = (uint32_t)v;
			break;
		case 'm':
			if (zvfs_parse_u64(optarg, &v) < 0 || v == 0 || v >= UINT32_MAX) {
				fprintf(stderr, PROG ": --md-pages: invalid number: %s\n", optarg);
				return 2;
			}
			bo.num_md_pages = (uint32_t)v;
			break;
		case 'p':
			if (parse_size_opt("--md-page-size", optarg, UINT32_MAX, &v))
				return 2;
			bo.md_page_size = (uint32_t)v;
			break;
		case 't':
			if (strlen(optarg) > ZVFS_BS_BSTYPE_LEN) {
				fprintf(stderr, PROG ": --bstype: longer than 16 bytes: %s\n",
					optarg);
				return 2;
			}
			memset(bo.bstype, 0, sizeof(bo.bstype));
			memcpy(bo.bstype, optarg, strlen(optarg));
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			mkfs_usage(stdout);
			return 0;
		default:
			mkfs_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, PROG ": mkfs: expected one DEVICE (see zvfs mkfs --help)\n");
		return 2;
	}
	dev = argv[optind];
	if (size) {
		bool has_driver = strncmp(dev, "uring:", 6) == 0 || strncmp(dev, "aio:", 4) == 0;

		if (asprintf(&spec, "%s%s,size=%s,create", has_driver ? "" : "uring:", dev, size) <
		    0)
			return 1;
		dev = spec;
	}
	if (cli_open(dev, false, &bdev) < 0)
		goto out_spec;

	/* An existing store is one whose super block zvfs_bs_load would accept. */
	rc = read_super(bdev, &si, NULL, &why);
	if (rc == 0 && !force) {
		fprintf(stderr,
			PROG ": mkfs: %s: holds a blobstore (%" PRIu64
			     " clusters); use --force to overwrite it\n",
			zvfs_bdev_get_name(bdev), si.layout.total_clusters);
		goto out_close;
	}
	if (rc < 0 && rc != -EILSEQ && rc != -ENXIO) {
		cli_err("mkfs: reading the super block", rc);
		goto out_close;
	}
	rc = zvfs_bs_init(bdev, &bo, &bs);
	if (rc < 0) {
		cli_err("mkfs: init", rc);
		goto out_close;
	}
	zvfs_bs_get_stats(bs, &st);
	rc = zvfs_bs_unload(bs);
	if (rc < 0) {
		cli_err("mkfs: unload", rc);
		goto out_close;
	}
	human_size(cs, sizeof(cs), st.cluster_size);
	human_size(ps, sizeof(ps), st.md_page_size);
	printf("%s: blobstore created, bstype \"%s\"\n"
	       "  cluster size   %" PRIu64 " (%s)\n"
	       "  io unit        %" PRIu32 "\n"
	       "  clusters       %" PRIu64 " total, %" PRIu64 " data\n"
	       "  md pages       %" PRIu64 " of %" PRIu32 " (%s)\n",
	       zvfs_bdev_get_name(bdev), st.bstype, st.cluster_size, cs, st.io_unit_size,
	       st.total_clusters, st.data_clusters, st.md_pages, st.md_page_size, ps);
	ret = 0;
out_close:
	zvfs_bdev_close(bdev);
out_spec:
	free(spec);
	return ret;
}

/* ---- 3. info --------------------------------------------------------------------------------- */

static void info_usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    zvfs info - show a blobstore's super block, usage and blobs\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs info DEVICE [--json]\n"
		"\n"
		"DESCRIPTION\n"
		"    Loads the store on DEVICE read-only (the device is opened \"ro\"; nothing is\n"
		"    written, also when the store was not cleanly unloaded: the masks are then\n"
		"    rebuilt in memory) and prints the super block fields, the space usage and\n"
		"    every blob: id, size and allocated clusters, thin or thick, user xattrs\n"
		"    (text values quoted, others in hex, long values truncated to 64 bytes)\n"
		"    and the names of internal xattrs.  ZVFS's internal allocation-window blob\n"
		"    is not listed.\n"
		"\n"
		"OPTIONS\n"
		"    -j, --json   one JSON document instead (values complete: \"hex\" always,\n"
		"                 \"text\" too when the value is UTF-8 text; see docs/tools.md)\n"
		"    -h, --help   this text\n"
		"\n"
		"EXIT STATUS\n"
		"    0 success, 1 the store cannot be loaded or a blob cannot be read,\n"
		"    2 usage error.\n"
		"\n"
		"EXAMPLES\n"
		"    zvfs info /var/tmp/store.img\n"
		"    zvfs info /var/tmp/store.img --json | python3 -m json.tool\n");
}

#define INFO_TRUNC 64 /* value bytes shown in human output */

static void print_value_human(const uint8_t *v, size_t len)
{
	size_t n = len > INFO_TRUNC ? INFO_TRUNC : len;

	if (is_text(v, len)) {
		bool nul = len > 0 && v[len - 1] == '\0';

		if (nul && n == len)
			n--;
		fputc('"', stdout);
		fwrite(v, 1, n, stdout);
		fputc('"', stdout);
		if (nul)
			fputs(" +NUL", stdout);
	} else {
		fputs("0x", stdout);
		put_hex(stdout, v, n);
	}
	if (n < len && !(n == len - 1 && v[len - 1] == '\0'))
		printf("... (%zu bytes)", len);
}

/* List the xattrs of one namespace: human lines or a JSON array. */
static int info_xattrs(struct zvfs_blob *b, bool internal, bool json)
{
	char *names = NULL;
	uint8_t *val = NULL;
	int n = zvfs_blob_list_xattrs(b, NULL, 0, internal), rc = 0;
	bool first = true;

	if (n < 0)
		return n;
	names = calloc(1, (size_t)n + 1);
	val = malloc(65536);
	if (!names || !val) {
		rc = -ENOMEM;
		goto out;
	}
	rc = zvfs_blob_list_xattrs(b, names, (size_t)n, internal);
	if (rc < 0)
		goto out;
	rc = 0;
	if (json)
		fputc('[', stdout);
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		int len = zvfs_blob_get_xattr(b, p, val, 65536, internal);

		if (len < 0) {
			rc = len;
			break;
		}
		if (json) {
			printf("%s{\"name\":", first ? "" : ",");
			json_str(stdout, p, strlen(p));
			printf(",\"length\":%d,\"hex\":\"", len);
			put_hex(stdout, val, (size_t)len);
			fputc('"', stdout);
			if (is_text(val, (size_t)len)) {
				bool nul = len > 0 && val[len - 1] == '\0';

				fputs(",\"text\":", stdout);
				json_str(stdout, val, (size_t)len - nul);
				printf(",\"nul_terminated\":%s", nul ? "true" : "false");
			}
			fputc('}', stdout);
		} else if (internal) {
			printf("    internal xattr %s (%d bytes)\n", p, len);
		} else {
			printf("    xattr %s = ", p);
			print_value_human(val, (size_t)len);
			fputc('\n', stdout);
		}
		first = false;
	}
	if (json)
		fputc(']', stdout);
out:
	free(names);
	free(val);
	return rc;
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct zvfs_bs_super_info si;
	struct zvfs_bs_stats st;
	struct zvfs_bs_opts bo;
	struct zvfs_bdev *bdev;
	struct zvfs_bs *bs;
	uint8_t bstype[ZVFS_BS_BSTYPE_LEN + 1] = {0};
	const char *why = NULL;
	zvfs_blob_id id = ZVFS_BLOBID_INVALID, super;
	bool json = false, first = true;
	int opt, rc, ret = 1;

	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'h':
			info_usage(stdout);
			return 0;
		default:
			info_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, PROG ": info: expected one DEVICE (see zvfs info --help)\n");
		return 2;
	}
	if (cli_open(argv[optind], true, &bdev) < 0)
		return 1;
	rc = read_super(bdev, &si, bstype, &why);
	if (rc < 0) {
		if (rc == -EILSEQ)
			fprintf(stderr, PROG ": info: %s: not a blobstore: %s\n",
				zvfs_bdev_get_name(bdev), why ? why : "invalid super block");
		else
			cli_err("info: reading the super block", rc);
		goto out_close;
	}
	zvfs_bs_opts_init(&bo);
	bo.read_only = true;
	rc = zvfs_bs_load(bdev, &bo, &bs);
	if (rc < 0) {
		cli_err("info: load", rc);
		goto out_close;
	}
	zvfs_bs_get_stats(bs, &st);
	super = zvfs_bs_get_super(bs);
	ret = 0;
	if (json) {
		printf("{\"device\":");
		json_str(stdout, zvfs_bdev_get_name(bdev), strlen(zvfs_bdev_get_name(bdev)));
		printf(",\"super\":{\"version\":%" PRIu32 ",\"clean\":%s,\"cluster_size\":%" PRIu64
		       ",\"io_unit_size\":%" PRIu32 ",\"md_page_size\":%" PRIu32
		       ",\"md_start\":%" PRIu32 ",\"md_len\":%" PRIu32 ",\"size\":%" PRIu64
		       ",\"bstype\":",
		       si.version, si.clean ? "true" : "false", st.cluster_size, st.io_unit_size,
		       st.md_page_size, si.layout.md_start, si.layout.md_len, si.layout.size);
		json_str(stdout, bstype, strnlen((char *)bstype, ZVFS_BS_BSTYPE_LEN));
		printf(",\"bstype_hex\":\"");
		put_hex(stdout, bstype, ZVFS_BS_BSTYPE_LEN);
		printf("\",\"super_blob\":");
		if (super == ZVFS_BLOBID_INVALID)
			printf("null");
		else
			printf("\"0x%" PRIx64 "\"", super);
		printf("},\"usage\":{\"total_clusters\":%" PRIu64 ",\"data_clusters\":%" PRIu64
		       ",\"free_clusters\":%" PRIu64 ",\"md_pages\":%" PRIu64
		       ",\"md_pages_used\":%" PRIu64 ",\"blobs\":%" PRIu64 ",\"bad_blobs\":%" PRIu64
		       "},\"blobs\":[",
		       st.total_clusters, st.data_clusters, st.free_clusters, st.md_pages,
		       st.md_pages_used, st.blobs, st.bad_blobs);
	} else {
		char cs[32];

		human_size(cs, sizeof(cs), st.cluster_size);
		printf("store %s\n", zvfs_bdev_get_name(bdev));
		printf("  version %" PRIu32 ", %s, bstype \"%s\"\n", si.version,
		       si.clean ? "clean" : "not clean (masks rebuilt in memory)", bstype);
		printf("  cluster size %" PRIu64 " (%s), io unit %" PRIu32 ", md page size %" PRIu32
		       "\n",
		       st.cluster_size, cs, st.io_unit_size, st.md_page_size);
		printf("  md region: pages %" PRIu32 "..%" PRIu64 " (%" PRIu32 " md pages)\n",
		       si.layout.md_start, (uint64_t)si.layout.md_start + si.layout.md_len - 1,
		       si.layout.md_len);
		if (super == ZVFS_BLOBID_INVALID)
			printf("  super blob: none\n");
		else
			printf("  super blob: 0x%" PRIx64 "\n", super);
		printf("usage\n  clusters %" PRIu64 " total, %" PRIu64 " data, %" PRIu64
		       " free\n  md pages %" PRIu64 " used of %" PRIu64 "\n  blobs %" PRIu64 "%s\n",
		       st.total_clusters, st.data_clusters, st.free_clusters, st.md_pages_used,
		       st.md_pages, st.blobs,
		       st.bad_blobs ? " (plus unreadable ones: run fsck)" : "");
	}
	while (zvfs_bs_next_blob(bs, id, &id) == 0) {
		struct zvfs_blob *b;

		rc = zvfs_blob_open(bs, id, &b);
		if (rc < 0) {
			char what[64];

			snprintf(what, sizeof(what), "info: blob 0x%" PRIx64, id);
			cli_err(what, rc);
			ret = 1;
			if (json) {
				printf("%s{\"id\":\"0x%" PRIx64 "\",\"error\":", first ? "" : ",",
				       id);
				json_str(stdout, strerror(-rc), strlen(strerror(-rc)));
				printf("}");
				first = false;
			}
			continue;
		}
		if (json) {
			printf("%s{\"id\":\"0x%" PRIx64 "\",\"num_clusters\":%" PRIu64
			       ",\"allocated_clusters\":%" PRIu64
			       ",\"thin\":%s,\"read_only\":%s,\"super\":%s,\"xattrs\":",
			       first ? "" : ",", id, zvfs_blob_get_num_clusters(b),
			       zvfs_blob_get_num_allocated_clusters(b),
			       zvfs_blob_is_thin(b) ? "true" : "false",
			       blob_ro_on_disk(b) ? "true" : "false",
			       id == super ? "true" : "false");
			rc = info_xattrs(b, false, true);
			printf(",\"internal_xattrs\":");
			if (rc == 0)
				rc = info_xattrs(b, true, true);
			printf("}");
		} else {
			printf("blob 0x%" PRIx64 ": %" PRIu64 " clusters, %" PRIu64
			       " allocated, %s%s%s\n",
			       id, zvfs_blob_get_num_clusters(b),
			       zvfs_blob_get_num_allocated_clusters(b),
			       zvfs_blob_is_thin(b) ? "thin" : "thick",
			       blob_ro_on_disk(b) ? ", read-only" : "",
			       id == super ? ", super blob" : "");
			rc = info_xattrs(b, false, false);
			if (rc == 0)
				rc = info_xattrs(b, true, false);
		}
		if (rc < 0) {
			char what[64];

			snprintf(what, sizeof(what), "info: blob 0x%" PRIx64 ": xattrs", id);
			cli_err(what, rc);
			ret = 1;
		}
		first = false;
		zvfs_blob_close(b);
	}
	if (json)
		printf("]}\n");
	rc = zvfs_bs_unload(bs);
	if (rc < 0) {
		cli_err("info: unload", rc);
		ret = 1;
	}
out_close:
	zvfs_bdev_close(bdev);
	return ret;
}

/* ---- 4. main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    zvfs - create, inspect and check ZVFS blobstores; run the daemon\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs mkfs DEVICE [--size SIZE] [--cluster-size SIZE] [--md-pages N]\n"
		"                     [--md-page-size SIZE] [--bstype NAME] [--force]\n"
		"    zvfs info DEVICE [--json]\n"
		"    zvfs fsck DEVICE [--repair | -n] [--mount DIR]... [--progress |\n"
		"                     --no-progress] [--json]\n"
		"    zvfs daemon start|stop|status [OPTIONS]\n"
		"    zvfs stat [--socket PATH]\n"
		"    zvfs run [--socket PATH] [--device SPEC] [--mount PREFIX] [--cache-size "
		"SIZE]\n"
		"             -- CMD [ARG]...\n"
		"    zvfs --help | --version\n"
		"\n"
		"DESCRIPTION\n"
		"    DEVICE is a device spec (zvfs/bdev.h): a path to an image file or block\n"
		"    device, optionally with a driver prefix (uring:, aio:) and options.\n"
		"    \"zvfs COMMAND --help\" describes each command.\n"
		"\n"
		"    mkfs   format DEVICE as an empty blobstore\n"
		"    info   show the super block, usage and blobs (read-only)\n"
		"    fsck   check the on-disk format and (--mount) the files; --repair fixes\n"
		"           what is safe\n"
		"    daemon start, stop or query zvfsd, which serves the store to any number\n"
		"           of processes (docs/daemon.md)\n"
		"    stat   the running daemon's counters, latencies, cache and clients\n"
		"    run    run CMD on ZVFS through the daemon, starting one if none runs\n"
		"\n"
		"EXIT STATUS\n"
		"    mkfs, info: 0 success, 1 error, 2 usage error.  fsck: fsck(8) codes\n"
		"    (0 clean, 1 corrected, 4 left uncorrected, 8 operational, 16 usage).\n"
		"    daemon, stat: 0 success, 1 error, 2 usage, 3 not running (status: as\n"
		"    LSB; 4 unknown).  run: CMD's status, or 125/126/127 as env(1).\n"
		"\n"
		"ENVIRONMENT\n"
		"    ZVFS_LOG     level of the engine's log lines on stderr (error, warn, info,\n"
		"                 debug; default warn)\n"
		"    ZVFS_SOCKET  the daemon's socket (default " ZVFS_DEFAULT_SOCKET ")\n"
		"    ZVFS_ZVFSD, ZVFS_LIB  where zvfsd and libzvfs.so are, when not found\n"
		"                 next to zvfs\n"
		"\n"
		"EXAMPLES\n"
		"    zvfs mkfs /var/tmp/store.img --size 1G --cluster-size 64K\n"
		"    zvfs info /var/tmp/store.img --json\n"
		"    zvfs fsck /var/tmp/store.img --repair\n"
		"    zvfs daemon start && zvfs run -- sh -c 'echo hi > /zvfs/f; cat /zvfs/f'\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf(PROG " " ZVFS_VERSION "\n");
		return 0;
	}
	/* each command parses argv[1..]: getopt_long skips argv[0] = the command name */
	if (strcmp(argv[1], "mkfs") == 0)
		return cmd_mkfs(argc - 1, argv + 1);
	if (strcmp(argv[1], "info") == 0)
		return cmd_info(argc - 1, argv + 1);
	if (strcmp(argv[1], "fsck") == 0)
		return cmd_fsck(argc - 1, argv + 1);
	if (strcmp(argv[1], "daemon") == 0)
		return cmd_daemon(argc - 1, argv + 1);
	if (strcmp(argv[1], "stat") == 0)
		return cmd_stat(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	fprintf(stderr, PROG ": unknown command: %s (see zvfs --help)\n", argv[1]);
	return 2;
}
