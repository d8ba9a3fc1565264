/* SPDX-License-Identifier: MIT */
/*
 * The input encoding of fuzz_load (docs/fuzzing.md), shared with mkcorpus.
 *
 *   byte 0    flags (FUZZ_F_*), geometry in bits 4-5 (FUZZ_GEO_*)
 *   byte 1    device size: (byte & 63) + 1 MiB
 *   byte 2..  the device image from byte 0 (super block, masks, md region); the harness pads
 *             it with zeroes to the device size (a longer input is cut there)
 */
#ifndef ZVFS_TESTS_FUZZ_H
#define ZVFS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/crc32c.h"

#define FUZZ_HDR_LEN 2u

#define FUZZ_F_FORCE_RECOVER (1u << 0) /* load with force_recover */
#define FUZZ_F_READ_ONLY     (1u << 1) /* load read_only: no metadata writes */
#define FUZZ_F_FIX_CRC	     (1u << 2) /* recompute the super and md page CRCs before loading */
#define FUZZ_F_NO_WRITES     (1u << 3) /* skip the metadata writes (xattr, resize, delete) */
#define FUZZ_GEO_SHIFT	     4
#define FUZZ_GEO_MASK	     3u

/* Device geometries, selected by bits 4-5: the "ram:" options after size=. */
static const char *const fuzz_geo_opts[4] = {
	"",			/* 4 KiB blocks */
	",block=512",		/* 512-byte io unit */
	",pblock=16K",		/* 16 KiB md pages */
	",block=512,pblock=4K", /* 512-byte io unit, 4 KiB physical */
};

static inline uint64_t fuzz_dev_size(uint8_t b)
{
	return ((uint64_t)(b & 63u) + 1) << 20;
}

static inline uint32_t fuzz_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline void fuzz_crc_fix(uint8_t *p)
{
	uint32_t crc = zvfs_crc32c_full(p, 4092);

	memcpy(p + 4092, &crc, 4);
}

/*
 * Make the checksums of the image @img (@len bytes) valid again after a mutation, so that the
 * fuzzer reaches the descriptor parsers: the super block's, then every md page slot's that is
 * not all zero, as far as the super block's md_start / md_len / md_page_size say (raw fields:
 * 0 means 4096, as in old stores) and the image reaches.
 */
static inline void fuzz_fix_crcs(uint8_t *img, size_t len)
{
	static const uint8_t zero[4096];
	uint64_t mps, start, end;

	if (len < 4096)
		return;
	fuzz_crc_fix(img);
	mps = fuzz_le32(img + 92) ? fuzz_le32(img + 92) : 4096;
	if (mps < 4096 || mps > (1u << 20) || (mps & (mps - 1)))
		return;
	start = fuzz_le32(img + 48) * mps;
	end = start + (uint64_t)fuzz_le32(img + 52) * mps;
	if (end > len)
		end = len;
	for (uint64_t off = start; off + 4096 <= end; off += mps)
		if (memcmp(img + off, zero, 4096) != 0)
			fuzz_crc_fix(img + off);
}

#endif /* ZVFS_TESTS_FUZZ_H */
