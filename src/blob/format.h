/* SPDX-License-Identifier: MIT */
/*
 * SPDK Blobstore on-disk format, version 3 with the extent-table encoding: the structures and
 * a pure codec for them (no device I/O, no blob lifecycle).  The authority is
 * ../shared/spec/FORMAT.md (beside the repository); section numbers below ("§5") refer to it.
 *
 * Byte order: SPDK stores every field in host order; every SPDK target is little-endian, so the
 * format is little-endian in practice and has no endianness marker.  This header refuses to
 * compile on a big-endian host instead of carrying conversions that could never be tested.
 * All structures are packed (alignment 1): a pointer to one may be cast from any byte buffer.
 *
 * Conventions of the functions below:
 *  - 0 or a positive count on success, -errno on failure; nothing here logs or asserts on
 *    bytes read from disk.
 *  - -EUCLEAN: the bytes are structurally corrupt (bad length, out-of-range index, ...).
 *  - -EBADMSG: a page checksum does not match.
 *  - -EINVAL: the *caller* passed something inconsistent (never used for disk bytes).
 *  - Exception: the super block follows SPDK (see zvfs_bs_super_decode()).
 *  - All functions are pure and thread-compatible (no shared state; zvfs_crc32c() is
 *    thread-safe).
 *
 * Terms: "md page" is the 4096-byte struct zvfs_bs_md_page; it sits at the start of an
 * md_page_size slot (§1, §11; the tail of a larger slot is never read).  Page indices in the
 * super block are in md_page_size units from byte 0; md page indices in descriptors and `next`
 * are relative to md_start.
 */
#ifndef ZVFS_BLOB_FORMAT_H
#define ZVFS_BLOB_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the SPDK blobstore format is host-endian = little-endian; big-endian hosts are not "
	       "supported");

/* ---- Constants ------------------------------------------------------------------------------- */

#define ZVFS_BS_PAGE_SIZE		 4096u	    /* sizeof an md page / super block struct */
#define ZVFS_BS_SIGNATURE		 "SPDKBLOB" /* 8 bytes on disk, no NUL */
#define ZVFS_BS_SIGNATURE_LEN		 8
#define ZVFS_BS_VERSION			 3u /* written */
#define ZVFS_BS_VERSION_MIN		 1u /* oldest accepted on load */
#define ZVFS_BS_BSTYPE_LEN		 16
#define ZVFS_BS_BSTYPE			 "ZVFS"	     /* ZVFS stores' bstype, zero-padded (§16) */
#define ZVFS_BS_INVALID_MD_PAGE		 0xFFFFFFFFu /* `next` of the last chain page */
#define ZVFS_BS_BLOBID_INVALID		 0xFFFFFFFFFFFFFFFFull
#define ZVFS_BS_BLOBID_EXTERNAL_SNAPSHOT 0xFFFFFFFFFFFFFFFEull
#define ZVFS_BS_BLOBID_HIGH		 (1ull << 32) /* blob id = 2^32 + root md page index */
#define ZVFS_BS_NUM_MD_PAGES_DEFAULT	 UINT32_MAX   /* opts: one md page per cluster */
#define ZVFS_BS_CLUSTER_SIZE_DEFAULT	 (1u << 20)
#define ZVFS_BS_IO_UNIT_SIZE_OLD	 4096u /* io_unit_size 0 in old super blocks */
#define ZVFS_BS_DESC_AREA		 4072u /* descriptor bytes in an md page */
#define ZVFS_BS_DESC_HDR		 5u    /* {u8 type; u32 length} */
#define ZVFS_BS_EXTENTS_PER_EP		 512u  /* clusters mapped by one extent page */
/* 9 + name + value <= ZVFS_BS_DESC_AREA: the largest xattr that fits one page (§6) */
#define ZVFS_BS_XATTR_MAX_NAME_VALUE 4063u
/* Largest blob size in clusters this codec accepts (cluster numbers are 32-bit on disk). */
#define ZVFS_BS_MAX_BLOB_CLUSTERS 0xFFFFFFFFull

/* Descriptor types (§6). */
#define ZVFS_BS_DESC_PADDING	    0 /* length 0 ends the page; length > 0 is padding */
#define ZVFS_BS_DESC_EXTENT_RLE	    1
#define ZVFS_BS_DESC_XATTR	    2
#define ZVFS_BS_DESC_FLAGS	    3
#define ZVFS_BS_DESC_XATTR_INTERNAL 4
#define ZVFS_BS_DESC_EXTENT_TABLE   5
#define ZVFS_BS_DESC_EXTENT_PAGE    6

/* Mask types (§4). */
#define ZVFS_BS_MASK_USED_PAGES	   0 /* md_len bits */
#define ZVFS_BS_MASK_USED_CLUSTERS 1 /* total_clusters bits */
#define ZVFS_BS_MASK_USED_BLOBIDS  2 /* md_len bits */

/* FLAGS descriptor words (§8); SPDK names in comments. */
#define ZVFS_BS_IFLAG_THIN_PROV		(1ull << 0) /* SPDK_BLOB_THIN_PROV */
#define ZVFS_BS_IFLAG_INTERNAL_XATTR	(1ull << 1) /* SPDK_BLOB_INTERNAL_XATTR */
#define ZVFS_BS_IFLAG_EXTENT_TABLE	(1ull << 2) /* SPDK_BLOB_EXTENT_TABLE */
#define ZVFS_BS_IFLAG_EXTERNAL_SNAPSHOT (1ull << 3) /* SPDK_BLOB_EXTERNAL_SNAPSHOT */
#define ZVFS_BS_IFLAG_MASK		0xFull	    /* any other bit: the blob cannot be opened */
#define ZVFS_BS_DFLAG_READ_ONLY		(1ull << 0) /* SPDK_BLOB_READ_ONLY */
#define ZVFS_BS_DFLAG_MASK		0x1ull	    /* any other bit: open data+md read-only */
#define ZVFS_BS_MFLAG_CLEAR_METHOD	0x3ull	    /* SPDK_BLOB_CLEAR_METHOD, bits 0-1 */
#define ZVFS_BS_MFLAG_MASK		0x3ull	    /* any other bit: open md read-only */
#define ZVFS_BS_CLEAR_DEFAULT		0
#define ZVFS_BS_CLEAR_NONE		1
#define ZVFS_BS_CLEAR_UNMAP		2
#define ZVFS_BS_CLEAR_WRITE_ZEROES	3

/* Internal xattr names used by SPDK (§8); values are raw little-endian u64 blob ids. */
#define ZVFS_BS_XATTR_SNAP    "SNAP"
#define ZVFS_BS_XATTR_SNAPTMP "SNAPTMP"
#define ZVFS_BS_XATTR_SNAPRM  "SNAPRM"
#define ZVFS_BS_XATTR_EXTSNAP "EXTSNAP" /* opaque bytes */

/* ---- On-disk structures ---------------------------------------------------------------------- */

/* Super block: 4096 bytes at byte 0 of the device (§3).  "pages" = md_page_size units. */
struct zvfs_bs_super {
	uint8_t signature[ZVFS_BS_SIGNATURE_LEN]; /*    0: "SPDKBLOB" */
	uint32_t version;			  /*    8: 3; 1..3 accepted */
	uint32_t length;			  /*   12: 4096 (not checked by SPDK) */
	uint32_t clean;				  /*   16: 1 = unloaded cleanly, masks valid */
	uint64_t super_blob;			  /*   20: blob id or BLOBID_INVALID */
	uint32_t cluster_size;			  /*   28: bytes */
	uint32_t used_page_mask_start;		  /*   32: pages */
	uint32_t used_page_mask_len;		  /*   36: pages */
	uint32_t used_cluster_mask_start;	  /*   40: pages */
	uint32_t used_cluster_mask_len;		  /*   44: pages in use (C) */
	uint32_t md_start;			  /*   48: pages */
	uint32_t md_len;			  /*   52: pages = md pages */
	uint8_t bstype[ZVFS_BS_BSTYPE_LEN];	  /*   56: app tag, zero-padded; 0 = untyped */
	uint32_t used_blobid_mask_start;	  /*   72: pages */
	uint32_t used_blobid_mask_len;		  /*   76: pages; 0 = pre-v3 store */
	uint64_t size;				  /*   80: bytes; 0 (old) = device size */
	uint32_t io_unit_size;			  /*   88: bytes; 0 (old) = 4096 */
	uint32_t md_page_size;			  /*   92: bytes; 0 (old) = 4096 */
	uint8_t reserved[3996];			  /*   96: zero */
	uint32_t crc;				  /* 4092: CRC-32C of bytes 0..4091 */
} __attribute__((packed));

/* Metadata page: 4096 bytes at the start of an md_page_size slot (§5). */
struct zvfs_bs_md_page {
	uint64_t id;				/*    0: owning blob id */
	uint32_t sequence_num;			/*    8: 0 root/extent page, 1.. chain */
	uint32_t reserved0;			/*   12: 0 */
	uint8_t descriptors[ZVFS_BS_DESC_AREA]; /*   16: descriptor stream */
	uint32_t next;				/* 4088: next chain md page or INVALID */
	uint32_t crc;				/* 4092: CRC-32C of bytes 0..4091 */
} __attribute__((packed));

/* Descriptor header, unaligned inside descriptors[] (§5). */
struct zvfs_bs_desc {
	uint8_t type;	 /* 0: ZVFS_BS_DESC_* */
	uint32_t length; /* 1: payload bytes after this header */
} __attribute__((packed));

/* EXTENT_RLE: length = 8 * N, N >= 1 (§7). */
struct zvfs_bs_rle_extent {
	uint32_t cluster_idx; /* 0: first absolute cluster, 0 = unallocated run */
	uint32_t length;      /* 4: clusters */
} __attribute__((packed));

struct zvfs_bs_desc_extent_rle {
	struct zvfs_bs_desc hdr;	     /* 0 */
	struct zvfs_bs_rle_extent extents[]; /* 5 */
} __attribute__((packed));

/* XATTR / XATTR_INTERNAL: length = 4 + name_length + value_length. */
struct zvfs_bs_desc_xattr {
	struct zvfs_bs_desc hdr; /* 0 */
	uint16_t name_length;	 /* 5: bytes, no NUL on disk */
	uint16_t value_length;	 /* 7: bytes */
	uint8_t name[];		 /* 9: name, then value */
} __attribute__((packed));

/* FLAGS: length = 24. */
struct zvfs_bs_desc_flags {
	struct zvfs_bs_desc hdr; /*  0 */
	uint64_t invalid_flags;	 /*  5: ZVFS_BS_IFLAG_* */
	uint64_t data_ro_flags;	 /* 13: ZVFS_BS_DFLAG_* */
	uint64_t md_ro_flags;	 /* 21: ZVFS_BS_MFLAG_* */
} __attribute__((packed));

/* EXTENT_TABLE: length = 8 + 8 * N (N may be 0). */
struct zvfs_bs_et_entry {
	uint32_t page_idx;  /* 0: extent md page, 0 = a run of unallocated extent pages */
	uint32_t num_pages; /* 4: 1 if page_idx != 0 */
} __attribute__((packed));

struct zvfs_bs_desc_extent_table {
	struct zvfs_bs_desc hdr;	   /*  0 */
	uint64_t num_clusters;		   /*  5: blob size; repeated in continuations */
	struct zvfs_bs_et_entry entries[]; /* 13 */
} __attribute__((packed));

/* EXTENT_PAGE: length = 4 + 4 * N, 1 <= N <= 512; alone in its md page (§7). */
struct zvfs_bs_desc_extent_page {
	struct zvfs_bs_desc hdr;    /* 0 */
	uint32_t start_cluster_idx; /* 5: logical cluster of entry 0 = ep index * 512 */
	uint32_t cluster_idx[];	    /* 9: absolute cluster numbers, 0 = unallocated */
} __attribute__((packed));

/* Bit mask region header; bit i = byte 5 + i / 8, bit i % 8 (§4). */
struct zvfs_bs_mask {
	uint8_t type;	 /* 0: ZVFS_BS_MASK_* */
	uint32_t length; /* 1: bits */
	uint8_t bits[];	 /* 5 */
} __attribute__((packed));

#define ZVFS_BS_OFF_CHECK(s, f, o) _Static_assert(offsetof(struct s, f) == (o), #s "." #f)
_Static_assert(sizeof(struct zvfs_bs_super) == 4096, "super block size");
ZVFS_BS_OFF_CHECK(zvfs_bs_super, signature, 0);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, version, 8);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, length, 12);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, clean, 16);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, super_blob, 20);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, cluster_size, 28);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, used_page_mask_start, 32);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, used_page_mask_len, 36);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, used_cluster_mask_start, 40);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, used_cluster_mask_len, 44);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, md_start, 48);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, md_len, 52);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, bstype, 56);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, used_blobid_mask_start, 72);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, used_blobid_mask_len, 76);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, size, 80);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, io_unit_size, 88);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, md_page_size, 92);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, reserved, 96);
ZVFS_BS_OFF_CHECK(zvfs_bs_super, crc, 4092);
_Static_assert(sizeof(struct zvfs_bs_md_page) == ZVFS_BS_PAGE_SIZE, "md page size");
ZVFS_BS_OFF_CHECK(zvfs_bs_md_page, id, 0);
ZVFS_BS_OFF_CHECK(zvfs_bs_md_page, sequence_num, 8);
ZVFS_BS_OFF_CHECK(zvfs_bs_md_page, reserved0, 12);
ZVFS_BS_OFF_CHECK(zvfs_bs_md_page, descriptors, 16);
ZVFS_BS_OFF_CHECK(zvfs_bs_md_page, next, 4088);
ZVFS_BS_OFF_CHECK(zvfs_bs_md_page, crc, 4092);
_Static_assert(sizeof(struct zvfs_bs_desc) == ZVFS_BS_DESC_HDR, "descriptor header");
ZVFS_BS_OFF_CHECK(zvfs_bs_desc, length, 1);
_Static_assert(sizeof(struct zvfs_bs_rle_extent) == 8, "rle extent");
ZVFS_BS_OFF_CHECK(zvfs_bs_rle_extent, length, 4);
_Static_assert(sizeof(struct zvfs_bs_desc_extent_rle) == 5, "rle descriptor");
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_extent_rle, extents, 5);
_Static_assert(sizeof(struct zvfs_bs_desc_xattr) == 9, "xattr descriptor");
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_xattr, name_length, 5);
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_xattr, value_length, 7);
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_xattr, name, 9);
_Static_assert(sizeof(struct zvfs_bs_desc_flags) == 29, "flags descriptor");
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_flags, invalid_flags, 5);
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_flags, data_ro_flags, 13);
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_flags, md_ro_flags, 21);
_Static_assert(sizeof(struct zvfs_bs_et_entry) == 8, "extent table entry");
ZVFS_BS_OFF_CHECK(zvfs_bs_et_entry, num_pages, 4);
_Static_assert(sizeof(struct zvfs_bs_desc_extent_table) == 13, "extent table descriptor");
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_extent_table, num_clusters, 5);
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_extent_table, entries, 13);
_Static_assert(sizeof(struct zvfs_bs_desc_extent_page) == 9, "extent page descriptor");
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_extent_page, start_cluster_idx, 5);
ZVFS_BS_OFF_CHECK(zvfs_bs_desc_extent_page, cluster_idx, 9);
_Static_assert(sizeof(struct zvfs_bs_mask) == 5, "mask header");
ZVFS_BS_OFF_CHECK(zvfs_bs_mask, length, 1);
ZVFS_BS_OFF_CHECK(zvfs_bs_mask, bits, 5);
/* SPDK_EXTENTS_PER_EP: (4072 - 9) / 4 = 1015 entries fit, rounded down to a power of two */
_Static_assert(ZVFS_BS_EXTENTS_PER_EP * 4 + 9 <= ZVFS_BS_DESC_AREA, "extent page fits");
_Static_assert(ZVFS_BS_XATTR_MAX_NAME_VALUE + 9 == ZVFS_BS_DESC_AREA, "xattr limit");

/* ---- Checksums ------------------------------------------------------------------------------- */

/*
 * CRC-32C of the first 4092 bytes of a super block or md page (§9); @page points to at least
 * 4096 readable bytes.  The result belongs at offset 4092.
 */
uint32_t zvfs_bs_page_crc(const void *page);

/* ---- Layout (§2) ----------------------------------------------------------------------------- */

/* What spdk_bs_init() is given. */
struct zvfs_bs_layout_opts {
	uint64_t dev_size;	  /* device bytes (a partial last block is ignored) */
	uint32_t block_size;	  /* logical block = io unit; power of two >= 512 */
	uint32_t phys_block_size; /* 0 = block_size; power of two, multiple of block_size */
	uint32_t cluster_size;	  /* bytes; 0 = 1 MiB */
	uint32_t md_page_size;	  /* requested; 0 = 4096; effective = max(phys, 4096, this) */
	uint32_t num_md_pages;	  /* md_len; ZVFS_BS_NUM_MD_PAGES_DEFAULT = one per cluster */
};

/*
 * The geometry of a store, computed at init (zvfs_bs_layout_compute()) or derived from a
 * super block (zvfs_bs_super_decode()).  Mask/md positions are in md_page_size pages.
 */
struct zvfs_bs_layout {
	uint64_t size;		    /* bytes covered by the store */
	uint32_t io_unit_size;	    /* bytes */
	uint32_t cluster_size;	    /* bytes */
	uint32_t md_page_size;	    /* bytes */
	uint32_t pages_per_cluster; /* cluster_size / md_page_size */
	uint64_t total_clusters;    /* size / cluster_size, <= UINT32_MAX */
	uint32_t page_mask_start;   /* P pages of used_md_pages */
	uint32_t page_mask_len;
	uint32_t cluster_mask_start; /* C pages of used_clusters in use ... */
	uint32_t cluster_mask_len;
	uint32_t cluster_mask_max;  /* ... of Cmax reserved (room to grow) */
	uint32_t blobid_mask_start; /* P pages of used_blobids; len 0 = pre-v3 */
	uint32_t blobid_mask_len;
	uint32_t md_start;	/* first md page */
	uint32_t md_len;	/* md pages */
	uint64_t md_clusters;	/* clusters overlapping pages [0, md_start + md_len) */
	uint64_t data_clusters; /* total_clusters - md_clusters */
};

/*
 * Compute the layout exactly as spdk_bs_init() does (§2).  Returns 0, or -EINVAL with *why (if
 * @why is not NULL) set to a static string when the combination is unusable: block sizes not
 * powers of two, phys_block_size % block_size, cluster_size not a multiple of 4096 or of
 * md_page_size or smaller than it, device smaller than a cluster, more than 2^32 - 1 clusters,
 * num_md_pages 0, or metadata larger than the device.  (SPDK says -ENOSPC/-ENOMEM for the last
 * two; SPDK only requires cluster_size >= md_page_size, ZVFS also requires a multiple.)
 */
int zvfs_bs_layout_compute(const struct zvfs_bs_layout_opts *opts, struct zvfs_bs_layout *l,
			   const char **why);

/* ---- Super block (§3) ------------------------------------------------------------------------ */

/* A decoded super block: the geometry plus the other fields, defaults applied. */
struct zvfs_bs_super_info {
	struct zvfs_bs_layout layout;
	uint32_t version;    /* 1..3 */
	uint32_t clean;	     /* raw; non-zero = clean */
	uint64_t super_blob; /* blob id or ZVFS_BS_BLOBID_INVALID */
	uint8_t bstype[ZVFS_BS_BSTYPE_LEN];
};

/* Fill @out with @name (at most 16 bytes used), zero-padded; NULL = all zero (untyped). */
void zvfs_bs_bstype_fill(uint8_t out[ZVFS_BS_BSTYPE_LEN], const char *name);

/*
 * A super block for a new store: version 3, clean 0, no super blob, @bstype (NULL = untyped).
 */
void zvfs_bs_super_info_init(struct zvfs_bs_super_info *info, const struct zvfs_bs_layout *l,
			     const char *bstype);

/* Encode @info into the 4096 bytes at @sb: every field, reserved bytes zero, CRC last. */
void zvfs_bs_super_encode(const struct zvfs_bs_super_info *info, struct zvfs_bs_super *sb);

/*
 * Decode and validate the super block at @sb (4096 bytes) of a device of @dev_size bytes.
 * @bstype: the expected 16-byte type, or NULL / all zero to accept any (SPDK's wildcard).
 *
 * Checks, in order: signature, version 1..3, CRC, bstype, size <= device, then geometry that
 * SPDK does not check but that would make the store unusable or make us read outside it:
 * cluster/md page/io unit sizes, total clusters, every mask and the md region inside the store
 * and not overlapping each other or the super block, masks large enough for their bits, the
 * metadata not larger than the store.  0 in size/io_unit_size/md_page_size means the old
 * default (device size / 4096 / 4096) and is reported as that value in @info.
 *
 * Returns 0; -ENXIO on a bstype mismatch; -EILSEQ (like SPDK's bs_super_validate) on any other
 * failure, including a bad CRC.  On failure *why (if not NULL) names the reason for the log.
 */
int zvfs_bs_super_decode(const struct zvfs_bs_super *sb, uint64_t dev_size, const uint8_t *bstype,
			 struct zvfs_bs_super_info *info, const char **why);

/* ---- Bit masks (§4) -------------------------------------------------------------------------- */

/*
 * Validate the mask region @region of @region_len bytes (the mask's len * md_page_size bytes,
 * contiguous): type must be @type and the bitmap of the header's length must fit.  Returns 0
 * with *nbits and *bits (pointing into @region) set, else -EUCLEAN.  Comparing *nbits with
 * md_len / total_clusters is the caller's policy (§4: SPDK tolerates a longer cluster mask).
 */
int zvfs_bs_mask_decode(const void *region, size_t region_len, uint8_t type, uint32_t *nbits,
			const uint8_t **bits);

/*
 * Write a mask of @nbits bits from @bits (same LSB-first layout, may be NULL if nbits is 0)
 * into @region: header, bitmap with bits past @nbits cleared, the rest of @region zeroed.
 * Returns 0, -ENOSPC if it does not fit, -EINVAL on a bad type.
 */
int zvfs_bs_mask_encode(void *region, size_t region_len, uint8_t type, const uint8_t *bits,
			uint32_t nbits);

/* Bytes needed for a mask of @nbits bits, header included. */
static inline uint64_t zvfs_bs_mask_bytes(uint64_t nbits)
{
	return sizeof(struct zvfs_bs_mask) + (nbits + 7) / 8;
}

static inline bool zvfs_bs_bit_test(const uint8_t *bits, uint64_t i)
{
	return (bits[i / 8] >> (i % 8)) & 1;
}

static inline void zvfs_bs_bit_set(uint8_t *bits, uint64_t i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static inline void zvfs_bs_bit_clear(uint8_t *bits, uint64_t i)
{
	bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

/* ---- Md pages and descriptors (§5, §6) ------------------------------------------------------- */

static inline uint64_t zvfs_bs_page_to_blobid(uint32_t md_page)
{
	return ZVFS_BS_BLOBID_HIGH | md_page;
}

static inline uint32_t zvfs_bs_blobid_to_page(uint64_t id)
{
	return (uint32_t)id;
}

/*
 * Check one page of blob @id's chain as read from disk: the CRC (-EBADMSG); for @seq 0 (the
 * root) that id == @id and sequence_num == 0, else -ENOENT (no such blob here, as SPDK);
 * for a chain page that id == @id and sequence_num == @seq, else -EUCLEAN (SPDK only asserts
 * this, §5); that `next` is INVALID or < @md_len (-EUCLEAN).  Detecting a loop in `next` is
 * the caller's: a chain longer than md_len pages is corrupt.
 */
int zvfs_bs_md_page_check(const struct zvfs_bs_md_page *page, uint64_t id, uint32_t seq,
			  uint32_t md_len);

/* Bounds-checked walk over the descriptors of one page. */
struct zvfs_bs_desc_iter {
	const struct zvfs_bs_md_page *page;
	uint32_t off; /* next header, bytes into descriptors[] */
	bool done;
};

/* One descriptor whose header and payload lie inside descriptors[]. */
struct zvfs_bs_desc_ref {
	uint8_t type;
	uint32_t length;		 /* payload bytes */
	uint32_t offset;		 /* of the header, bytes into descriptors[] */
	const struct zvfs_bs_desc *desc; /* the header; the payload follows it */
};

void zvfs_bs_desc_iter_init(struct zvfs_bs_desc_iter *it, const struct zvfs_bs_md_page *page);

/*
 * Next descriptor of the page, padding skipped.  Returns 1 with *d filled; 0 at the end (a
 * type 0 / length 0 header, or fewer than 5 bytes left); -EUCLEAN if a descriptor's payload
 * would run past the 4072-byte area (then the iteration is over).  Unknown types are
 * returned like the others: the caller skips them (§6).
 */
int zvfs_bs_desc_next(struct zvfs_bs_desc_iter *it, struct zvfs_bs_desc_ref *d);

/* FLAGS words, in memory. */
struct zvfs_bs_flags {
	uint64_t invalid; /* ZVFS_BS_IFLAG_* */
	uint64_t data_ro; /* ZVFS_BS_DFLAG_* */
	uint64_t md_ro;	  /* ZVFS_BS_MFLAG_* */
};

/* An xattr descriptor's contents, pointing into the page. */
struct zvfs_bs_xattr_ref {
	const uint8_t *name;  /* name_len bytes, not NUL-terminated */
	const uint8_t *value; /* value_len bytes */
	uint16_t name_len;
	uint16_t value_len;
	bool internal; /* XATTR_INTERNAL */
};

/*
 * Per-type decoders of a descriptor returned by zvfs_bs_desc_next(); each checks the length
 * rule of §6 and returns 0, -EUCLEAN when the length is wrong, -EINVAL if @d is not of the
 * type.  Returned pointers point into the page; packed arrays are read through them
 * (e.g. ext[i].cluster_idx, ep->cluster_idx[i]).
 */
int zvfs_bs_desc_flags_decode(const struct zvfs_bs_desc_ref *d, struct zvfs_bs_flags *f);
/* XATTR or XATTR_INTERNAL: 4 + name_len + value_len == length. */
int zvfs_bs_desc_xattr_decode(const struct zvfs_bs_desc_ref *d, struct zvfs_bs_xattr_ref *x);
/* EXTENT_RLE: length a multiple of 8 and >= 8; *count runs. */
int zvfs_bs_desc_rle_decode(const struct zvfs_bs_desc_ref *d, const struct zvfs_bs_rle_extent **ext,
			    uint32_t *count);
/* EXTENT_TABLE: length = 8 + 8 * count. */
int zvfs_bs_desc_et_decode(const struct zvfs_bs_desc_ref *d, uint64_t *num_clusters,
			   const struct zvfs_bs_et_entry **ent, uint32_t *count);
/* EXTENT_PAGE: length = 4 + 4 * count, 1 <= count <= 512. */
int zvfs_bs_desc_ep_decode(const struct zvfs_bs_desc_ref *d,
			   const struct zvfs_bs_desc_extent_page **ep, uint32_t *count);

/* ---- Extent pages (§7) ----------------------------------------------------------------------- */

/*
 * Encode extent page @ep_index of blob @blob_id into @page: one EXTENT_PAGE descriptor with
 * start = ep_index * 512 and the @count (1..512) absolute cluster numbers @clusters, seq 0,
 * next INVALID, rest zero, CRC.  Returns 0 or -EINVAL.
 */
int zvfs_bs_extent_page_encode(struct zvfs_bs_md_page *page, uint64_t blob_id, uint32_t ep_index,
			       const uint32_t *clusters, uint32_t count);

/*
 * Validate extent page @ep_index of a blob of @num_clusters clusters (§7, §15): CRC
 * (-EBADMSG), sequence 0, exactly one non-padding descriptor which is EXTENT_PAGE, start ==
 * ep_index * 512 < num_clusters, 1 <= count <= min(512, num_clusters - start) (else -EUCLEAN).
 * The page id is not checked (snapshots share extent pages, §5).  SPDK writes exactly
 * min(512, num_clusters - start) entries; a shorter page can be left by an interrupted resize:
 * *count tells, and the caller decides (the missing entries are unallocated).
 */
int zvfs_bs_extent_page_decode(const struct zvfs_bs_md_page *page, uint32_t ep_index,
			       uint64_t num_clusters, const struct zvfs_bs_desc_extent_page **ep,
			       uint32_t *count);

/* ---- A blob's metadata chain: decoded form, parser, serializer ------------------------------- */

struct zvfs_blob_md_xattr {
	char *name;	/* name_len bytes + a NUL added in memory */
	uint8_t *value; /* value_len bytes (NULL if 0) */
	uint16_t name_len;
	uint16_t value_len;
	bool internal; /* an XATTR_INTERNAL descriptor */
};

struct zvfs_blob_md_run {
	uint32_t cluster; /* first absolute cluster, 0 = unallocated */
	uint32_t length;  /* clusters */
};

/*
 * The contents of a blob's md chain.  Filled by the parser or by the zvfs_blob_md_set/add
 * helpers (which copy their arguments); owned memory is released by zvfs_blob_md_free().
 * Exactly one cluster-map encoding is in use:
 *  - extent_table: extent_pages[] has ceil(num_clusters / 512) md page indices, 0 = an
 *    extent page not allocated (thin blobs only);
 *  - otherwise runs[] (EXTENT_RLE), whose lengths add up to num_clusters.
 */
struct zvfs_blob_md {
	struct zvfs_bs_flags flags;
	bool has_flags; /* a FLAGS descriptor was parsed (pre-v3 blobs lack it) */
	struct zvfs_blob_md_xattr *xattrs; /* in chain order */
	uint32_t num_xattrs;
	bool extent_table;
	uint64_t num_clusters;
	uint32_t *extent_pages;
	uint32_t num_extent_pages;
	struct zvfs_blob_md_run *runs;
	uint32_t num_runs;
	/* bookkeeping of the helpers and of the parser */
	uint32_t xattr_cap;
	uint32_t ep_cap;
	uint32_t run_cap;
	uint32_t pages_parsed;
	uint32_t unknown_descs; /* descriptors of unknown type skipped (§6) */
	bool et_seen;
	bool rle_seen;
};

void zvfs_blob_md_init(struct zvfs_blob_md *md);
void zvfs_blob_md_free(struct zvfs_blob_md *md); /* frees and re-inits */

/*
 * Append an xattr (copied).  Returns 0, -E2BIG if name_len + value_len > 4063 (it could not
 * fit one page; SPDK's spdk_blob_set_xattr says -ENOMEM for this), -ENOMEM.
 * Neither this nor the serializer touches flags: setting ZVFS_BS_IFLAG_INTERNAL_XATTR
 * when internal xattrs exist is the caller's job, as in SPDK.
 */
int zvfs_blob_md_add_xattr(struct zvfs_blob_md *md, const void *name, uint16_t name_len,
			   const void *value, uint16_t value_len, bool internal);

/*
 * Use the extent-table encoding with @num_clusters clusters and the ceil(num_clusters / 512)
 * extent page md indices @eps (copied; 0 = unallocated).  Returns 0, -EINVAL, -ENOMEM.
 */
int zvfs_blob_md_set_extent_table(struct zvfs_blob_md *md, uint64_t num_clusters,
				  const uint32_t *eps);

/*
 * Use the RLE encoding and append @length clusters starting at absolute cluster @cluster
 * (0 = unallocated), merging with the previous run when contiguous.  Returns 0, -EINVAL
 * (length 0, cluster + length overflows, blob too large, extent table in use), -ENOMEM.
 */
int zvfs_blob_md_add_run(struct zvfs_blob_md *md, uint32_t cluster, uint32_t length);

/*
 * Parse the descriptors of one chain page into @md; call for the root page and then for each
 * chain page in `next` order, after zvfs_bs_md_page_check(), then zvfs_blob_md_parse_finish().
 * Returns 0, -EUCLEAN (bad descriptor, RLE and extent table mixed, extent table continuation
 * with another num_clusters or more entries than num_clusters needs, an extent table entry
 * with page_idx != 0 and num_pages != 1, an EXTENT_PAGE descriptor in a chain page, a blob over
 * ZVFS_BS_MAX_BLOB_CLUSTERS), -ENOMEM.  Unknown descriptor types are counted and skipped.
 */
int zvfs_blob_md_parse_page(struct zvfs_blob_md *md, const struct zvfs_bs_md_page *page);

/*
 * Whole-chain checks after the last page: the extent table has exactly ceil(num_clusters/512)
 * entries; unallocated extent pages / RLE runs only in thin blobs.  Decides extent_table for a
 * chain with no extent descriptor from ZVFS_BS_IFLAG_EXTENT_TABLE.  Returns 0 or -EUCLEAN.
 */
int zvfs_blob_md_parse_finish(struct zvfs_blob_md *md);

/*
 * How a blob with these flags may be opened (§8): -EOPNOTSUPP if invalid_flags has a bit this
 * code does not know (SPDK: -EINVAL), else 0 with *data_ro / *md_ro set from the read-only
 * bit and unknown data_ro / md_ro bits.
 */
int zvfs_blob_md_open_mode(const struct zvfs_bs_flags *f, bool *data_ro, bool *md_ro);

/*
 * Number of md pages the serialized chain needs (root included).  Returns 0 with *npages set,
 * -E2BIG (an xattr larger than a page), -EINVAL (@md inconsistent: extent table length,
 * zero extent pages / runs in a thick blob, run lengths vs num_clusters).
 */
int zvfs_blob_md_num_pages(const struct zvfs_blob_md *md, uint32_t *npages);

/*
 * Serialize @md as blob @blob_id's chain into @pages[0..npages), in SPDK's order (§6): root
 * page: FLAGS, then user xattrs, internal xattrs, then the EXTENT_TABLE (always present) or
 * EXTENT_RLE descriptors (none for 0 clusters); an xattr that does not fit the current page
 * starts a new one; extent descriptors are split across pages, each continuation
 * EXTENT_TABLE repeating num_clusters.  @page_idx[k] is the md page index page k goes to;
 * page_idx[0] must be the root (blob_id & 0xFFFFFFFF).  Fills id, sequence_num k, next
 * (page_idx[k + 1] or INVALID), zeroes unused bytes, sets each CRC.  @npages must equal
 * zvfs_blob_md_num_pages().  Returns 0, -E2BIG, -EINVAL.
 */
int zvfs_blob_md_serialize(const struct zvfs_blob_md *md, uint64_t blob_id,
			   const uint32_t *page_idx, uint32_t npages,
			   struct zvfs_bs_md_page *pages);

#endif /* ZVFS_BLOB_FORMAT_H */
