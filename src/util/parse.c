/* SPDX-License-Identifier: MIT */
#include "util/parse.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>

/* Leading decimal digits of *sp into *out; *sp is left after them. */
static int parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return 0;
}

int zvfs_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v;
	int rc = parse_digits(&s, &v);

	if (rc)
		return rc;
	if (*s)
		return -EINVAL;
	*out = v;
	return 0;
}

int zvfs_parse_size(const char *s, uint64_t *out)
{
	unsigned shift = 0;
	uint64_t v;
	int rc = parse_digits(&s, &v);

	if (rc)
		return rc;
	switch (toupper((unsigned char)*s)) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	case 'B':
		if (s[1])
			return -EINVAL;
		*out = v;
		return 0;
	default:
		return -EINVAL;
	}
	if (shift) {
		s++;
		if (*s && strcasecmp(s, "iB") != 0 && strcasecmp(s, "B") != 0)
			return -EINVAL;
		if (v > (UINT64_MAX >> shift))
			return -ERANGE;
		v <<= shift;
	}
	*out = v;
	return 0;
}
