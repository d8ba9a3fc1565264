/* SPDX-License-Identifier: MIT */
/* Parsing of sizes and numbers in specs, options and environment variables. */
#ifndef ZVFS_UTIL_PARSE_H
#define ZVFS_UTIL_PARSE_H

#include <stdint.h>

/*
 * Parse a size: decimal digits with an optional suffix K, M, G, T (powers of
 * 1024, case-insensitive, an optional trailing "iB"/"B").  Returns 0 and sets
 * *out, or -EINVAL (malformed) / -ERANGE (overflows 64 bits).
 */
int zvfs_parse_size(const char *s, uint64_t *out);

/* Parse an unsigned decimal integer; same errors as zvfs_parse_size(). */
int zvfs_parse_u64(const char *s, uint64_t *out);

#endif /* ZVFS_UTIL_PARSE_H */
