/* SPDX-License-Identifier: MIT */
/*
 * path.c - is a path under a mount prefix, the canonical path of an fd, and
 * whether a file about to be created belongs to ZVFS.
 */
#include "preload/preload.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

bool zp_path_in_mount(const char *abs)
{
	for (int i = 0; i < zp_cfg.nmounts; i++) {
		size_t n = zp_cfg.mount_len[i];

		/* "/" is a prefix of everything; otherwise whole components only. */
		if (n == 1 && zp_cfg.mount[i][0] == '/')
			return abs[0] == '/';
		if (strncmp(abs, zp_cfg.mount[i], n) == 0 && (abs[n] == '/' || abs[n] == '\0'))
			return true;
	}
	return false;
}

int zp_fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len);
	if (n < 0)
		return -errno;
	if ((size_t)n >= len)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	if (buf[0] != '/')
		return -ENOENT; /* "pipe:[..]", "anon_inode:..": no path */
	return 0;
}

bool zp_path_passthrough(const char *name)
{
	const char *p = zp_cfg.passthrough;
	char pat[sizeof(zp_cfg.passthrough)];

	while (*p) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > 0) {
			memcpy(pat, p, n);
			pat[n] = '\0';
			if (fnmatch(pat, name, 0) == 0)
				return true;
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return false;
}

int zp_path_parent(int dirfd, const char *path, char *canon, char *name)
{
	char parent[PATH_MAX + 64];
	const char *base;
	size_t plen, blen;
	size_t len = strlen(path);

	/* Trailing slashes name a directory; the last component is still the name. */
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= PATH_MAX)
		return -ENAMETOOLONG;
	base = memrchr(path, '/', len);
	if (base) {
		plen = (size_t)(base - path);
		base++;
	} else {
		plen = 0;
		base = path;
	}
	if (path[0] == '/') {
		if (plen == 0)
			plen = 1; /* "/name": the parent is the root */
		memcpy(parent, path, plen);
		parent[plen] = '\0';
	} else if (dirfd == AT_FDCWD) {
		if (plen == 0) {
			strcpy(parent, ".");
		} else {
			memcpy(parent, path, plen);
			parent[plen] = '\0';
		}
	} else {
		int n = snprintf(parent, sizeof(parent), "/proc/self/fd/%d/%.*s", dirfd, (int)plen,
				 path);

		if (n < 0 || (size_t)n >= sizeof(parent))
			return -ENAMETOOLONG;
	}
	blen = len - (size_t)(base - path);
	if (blen > NAME_MAX)
		return -ENAMETOOLONG;
	if (realpath(parent, canon) == NULL)
		return -errno;
	memcpy(name, base, blen);
	name[blen] = '\0';
	return 0;
}

int zp_path_new_is_zvfs(int dirfd, const char *path)
{
	char canon[PATH_MAX];
	char name[NAME_MAX + 1];
	int r = zp_path_parent(dirfd, path, canon, name);

	if (r < 0)
		return r;
	if (!zp_path_in_mount(canon))
		return 0;
	return zp_path_passthrough(name) ? 0 : 1;
}
