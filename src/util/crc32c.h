/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, the iSCSI/ext4/SSE4.2 variant.
 *
 * zvfs_crc32c() is the *update* form, like SPDK's spdk_crc32c_update(): it takes and returns
 * the raw CRC register, with no pre- or post-inversion.  The standard CRC of a buffer is
 *
 *	zvfs_crc32c(0xFFFFFFFF, buf, len) ^ 0xFFFFFFFF  ==  zvfs_crc32c_full(buf, len)
 *
 * and a buffer can be fed in pieces: crc = zvfs_crc32c(crc, piece, n) for each piece.
 * Check value: zvfs_crc32c_full("123456789", 9) == 0xE3069283.
 *
 * On x86-64 the SSE4.2 crc32 instruction is used when the CPU has it (decided once, at the
 * first call); otherwise a slicing-by-8 table implementation.  Both give identical results.
 * Thread-safe; no allocation; no constructors.
 */
#ifndef ZVFS_UTIL_CRC32C_H
#define ZVFS_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Update the raw CRC register @crc with @len bytes at @buf (buf may be NULL if len is 0). */
uint32_t zvfs_crc32c(uint32_t crc, const void *buf, size_t len);

/* One-shot: the standard CRC-32C of a buffer (init and final xor 0xFFFFFFFF). */
static inline uint32_t zvfs_crc32c_full(const void *buf, size_t len)
{
	return zvfs_crc32c(0xFFFFFFFFu, buf, len) ^ 0xFFFFFFFFu;
}

/* The portable table implementation, same contract as zvfs_crc32c(); exposed for tests. */
uint32_t zvfs_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* True if zvfs_crc32c() uses the CPU's crc32 instruction. */
int zvfs_crc32c_hw_enabled(void);

#endif /* ZVFS_UTIL_CRC32C_H */
