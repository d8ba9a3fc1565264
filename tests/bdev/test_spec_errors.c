/* SPDX-License-Identifier: MIT */
/*
 * Bad device specs: each must fail zvfs_bdev_open() with the documented
 * negative errno and a one-line message that names the device and says why
 * (include/zvfs/bdev.h, zvfs_bdev_open).  Covers a missing file, a
 * directory, a device that is too small, no permission (as uid 65534, when
 * root), a file system without O_DIRECT (a ramfs mounted here, when root), a
 * file system that cannot hold the size, character devices and FIFOs, and
 * malformed specs.  A few positive controls make sure the failing cases fail
 * for the reason under test and not for another.
 *
 * Exit: 0 pass, 1 fail (77 only if nothing could run).
 */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1ull << 20)

static char *g_dir; /* scratch directory */

/*
 * Open spec and expect failure with want (or alt, if not 0), a message that
 * is one line, contains need (if not NULL) and contains why (if not NULL,
 * case-insensitive).
 */
static void expect_fail(const char *name, const char *spec, int want, int alt, const char *need,
			const char *why)
{
	struct zvfs_bdev *b = NULL;
	char err[512];
	int rc;

	t_begin(name);
	memset(err, 'X', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	rc = zvfs_bdev_open(spec, &b, err, sizeof(err));
	if (rc == 0) {
		zvfs_bdev_close(b);
		EXPECT(0, "\"%s\" opened; want %s", spec ? spec : "(null)", t_err(want));
	}
	EXPECT(rc == want || (alt && rc == alt), "\"%s\": %s, want %s%s%s", spec ? spec : "(null)",
	       t_err(rc), t_err(want), alt ? " or " : "", alt ? t_err(alt) : "");
	EXPECT(err[0] != 'X' && err[0], "no message in errbuf");
	EXPECT(!strchr(err, '\n'), "message is not one line: \"%s\"", err);
	EXPECT(!need || strstr(err, need), "message does not name \"%s\": \"%s\"", need, err);
	EXPECT(!why || strcasestr(err, why), "message does not say \"%s\": \"%s\"", why, err);
	t_note("%s -> %s: %s", spec ? spec : "(null)", t_err(rc), err);
out:
	t_end();
}

/* Open spec, expect success, write and read back one block. */
static void expect_open(const char *name, const char *spec, uint64_t want_size)
{
	struct zvfs_bdev *b = NULL;
	char err[512] = "";
	void *buf = NULL;
	uint64_t bad = 0;
	int rc;

	t_begin(name);
	rc = zvfs_bdev_open(spec, &b, err, sizeof(err));
	EXPECT(rc == 0, "\"%s\": %s: %s", spec, t_err(rc), err);
	EXPECT(!want_size || zvfs_bdev_get_geometry(b)->size == want_size,
	       "size %" PRIu64 ", want %" PRIu64, zvfs_bdev_get_geometry(b)->size, want_size);
	if (!zvfs_bdev_get_geometry(b)->read_only) {
		uint32_t bs = zvfs_bdev_get_geometry(b)->block_size;

		rc = t_dev_write_pattern(b, bs, bs, 42);
		EXPECT(rc == 0, "write = %s", t_err(rc));
		rc = t_dev_check_pattern(b, bs, bs, 42, &bad);
		EXPECT(rc == 0, "read back: %s at %" PRIu64, t_err(rc), bad);
	} else {
		buf = zvfs_bdev_buf_alloc(b, zvfs_bdev_get_geometry(b)->block_size);
		EXPECT(buf, "out of memory");
		rc = zvfs_bdev_read_sync(b, buf, zvfs_bdev_get_geometry(b)->block_size, 0);
		EXPECT(rc == 0, "read = %s", t_err(rc));
	}
out:
	if (b) {
		zvfs_bdev_buf_free(b, buf);
		rc = zvfs_bdev_close(b);
		if (rc)
			t_failf("close = %s", t_err(rc));
	}
	t_end();
}

static void path_of(char *out, size_t len, const char *dir, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static void check_missing_dir_small(void)
{
	char path[PATH_MAX], spec[PATH_MAX + 64];
	struct stat st;
	int rc;

	path_of(path, sizeof(path), g_dir, "missing");
	snprintf(spec, sizeof(spec), "uring:%s", path);
	expect_fail("missing file (uring): -ENOENT", spec, -ENOENT, 0, path, "no such file");
	snprintf(spec, sizeof(spec), "aio:%s", path);
	expect_fail("missing file (aio): -ENOENT", spec, -ENOENT, 0, path, "no such file");
	snprintf(spec, sizeof(spec), "%s,size=2M", path);
	expect_fail("missing file, size= without create: -ENOENT", spec, -ENOENT, 0, path,
		    "no such file");

	snprintf(spec, sizeof(spec), "uring:%s", g_dir);
	expect_fail("a directory (uring): -EISDIR", spec, -EISDIR, 0, g_dir, "directory");
	snprintf(spec, sizeof(spec), "aio:%s,size=2M,create", g_dir);
	expect_fail("a directory (aio, create): -EISDIR", spec, -EISDIR, 0, g_dir, "directory");

	path_of(path, sizeof(path), g_dir, "small");
	rc = t_make_file(path, 4096, 7, 0600);
	t_assert("setup: a 4 KiB file", rc == 0, "%s: %s", path, t_err(rc));
	snprintf(spec, sizeof(spec), "uring:%s", path);
	expect_fail("too small (4 KiB file): -ENOSPC", spec, -ENOSPC, 0, path, "small");
	snprintf(spec, sizeof(spec), "aio:%s", path);
	expect_fail("too small (4 KiB file, aio): -ENOSPC", spec, -ENOSPC, 0, path, "small");
	snprintf(spec, sizeof(spec), "%s,size=512K", path);
	expect_fail("too small (size=512K on a 4 KiB file): -ENOSPC", spec, -ENOSPC, 0, path,
		    "small");
	rc = stat(path, &st);
	t_assert("bug: size= below the minimum extended the file before failing",
		 rc == 0 && st.st_size == 4096, "size now %lld", (long long)st.st_size);
	expect_fail("too small (ram:size=512K): -ENOSPC", "ram:size=512K", -ENOSPC, 0, "ram",
		    "small");

	/* Controls: the minimum size opens, and size= extends a small file. */
	path_of(path, sizeof(path), g_dir, "min");
	rc = t_make_file(path, ZVFS_BDEV_MIN_SIZE, 9, 0600);
	snprintf(spec, sizeof(spec), "uring:%s", path);
	if (rc == 0)
		expect_open("control: a file of exactly ZVFS_BDEV_MIN_SIZE opens", spec,
			    ZVFS_BDEV_MIN_SIZE);
	path_of(path, sizeof(path), g_dir, "grow");
	rc = t_make_file(path, 4096, 11, 0600);
	snprintf(spec, sizeof(spec), "uring:%s,size=2M,create", path);
	if (rc == 0)
		expect_open("control: size= extends an existing 4 KiB file", spec, 2 * MiB);
	{
		char buf[4096];
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		rc = fd >= 0 ? (int)pread(fd, buf, sizeof(buf), 0) : -1;
		if (fd >= 0)
			close(fd);
		if (stat(path, &st) != 0)
			st.st_size = -1;
		t_assert("extended file keeps its first bytes and has the new size",
			 rc == 4096 && t_check(buf, 4096, 11, 0) < 0 &&
				 st.st_size == (off_t)(2 * MiB),
			 "read %d bytes, data %s, size %lld", rc,
			 rc == 4096 && t_check(buf, 4096, 11, 0) < 0 ? "kept" : "lost",
			 (long long)st.st_size);
	}
}

static void check_malformed(void)
{
	char path[PATH_MAX], spec[PATH_MAX + 64], spec2[PATH_MAX];
	static const struct {
		const char *name, *spec, *why;
	} ram_cases[] = {
		{"unknown option with a value", "ram:size=4M,bogus=1", "unknown option"},
		{"unknown option without a value (bug: was reported as a bad value)",
		 "ram:size=4M,frobnicate", "unknown option"},
		{"bad size (suffix)", "ram:size=12Q", "size"},
		{"bad size (not a number)", "ram:size=abc", "size"},
		{"bad size (empty)", "ram:size=", "size"},
		{"bad size (negative)", "ram:size=-1", "size"},
		{"bad size (overflows 64 bits)", "ram:size=99999999999999999999", "size"},
		{"bad size (1P: no P suffix in the grammar)", "ram:size=1P", "size"},
		{"size suffix overflow", "ram:size=99999999T", "size"},
		{"ram: without size", "ram:", "size"},
		{"ram without size, other options", "ram:block=512", "size"},
		{"block=3000 (not a power of two)", "ram:size=4M,block=3000", "block"},
		{"block=256 (below 512)", "ram:size=4M,block=256", "block"},
		{"block=128K (above 64K)", "ram:size=4M,block=128K", "block"},
		{"pblock smaller than block", "ram:size=4M,block=4096,pblock=512", "pblock"},
		{"qd=0", "ram:size=4M,qd=0", "qd"},
		{"qd=4097", "ram:size=4M,qd=4097", "qd"},
		{"qd=abc", "ram:size=4M,qd=abc", "qd"},
		{"spin=100001 (above 100 ms)", "ram:size=4M,spin=100001", "spin"},
		{"spin=-1", "ram:size=4M,spin=-1", "spin"},
		{"spin without a value", "ram:size=4M,spin", "spin"},
		{"spinalways with a value", "ram:size=4M,spinalways=1", "spinalways"},
		{"sqbatch=4097", "ram:size=4M,sqbatch=4097", "sqbatch"},
		{"flag with a value (ro=1)", "ram:size=4M,ro=1", "ro"},
		{"create on ram", "ram:size=4M,create", "create"},
		{"buffered on ram", "ram:size=4M,buffered", "buffered"},
		{"uring: without a path", "uring:", "path"},
		{"aio: without a path, options only", "aio:,size=2M", "path"},
		{"fault: without an inner spec", "fault:", "inner"},
		{"fault: with a bad inner spec", "fault:ram:", "size"},
		{"fault: over a malformed inner option", "fault:ram:size=4M,block=3000", "block"},
	};

	for (size_t i = 0; i < sizeof(ram_cases) / sizeof(ram_cases[0]); i++) {
		char name[160];

		snprintf(name, sizeof(name), "malformed: %s: -EINVAL", ram_cases[i].name);
		expect_fail(name, ram_cases[i].spec, -EINVAL, 0, NULL, ram_cases[i].why);
	}
	expect_fail("malformed: empty spec: -EINVAL", "", -EINVAL, 0, NULL, "empty");
	expect_fail("malformed: NULL spec: -EINVAL", NULL, -EINVAL, 0, NULL, NULL);

	/* File specs: the message names the path too, and nothing is created. */
	path_of(path, sizeof(path), g_dir, "never");
	snprintf(spec, sizeof(spec), "uring:%s,create", path);
	expect_fail("malformed: create without size: -EINVAL", spec, -EINVAL, 0, path, "size");
	snprintf(spec, sizeof(spec), "uring:%s,size=2M,create,bogus=1", path);
	expect_fail("malformed: unknown option on a file: -EINVAL", spec, -EINVAL, 0, path,
		    "unknown option");
	snprintf(spec, sizeof(spec), "aio:%s,size=2X,create", path);
	expect_fail("malformed: bad size on a file: -EINVAL", spec, -EINVAL, 0, path, "size");
	snprintf(spec, sizeof(spec), "uring:%s,size=2M,create,block=3000", path);
	expect_fail("malformed: block=3000 on a file: -EINVAL", spec, -EINVAL, 0, path, "block");
	snprintf(spec, sizeof(spec), "uring:%s,size=2M,create,ro", path);
	expect_fail("malformed: create with ro: -EINVAL", spec, -EINVAL, 0, path, "ro");
	t_assert("malformed specs created no file", !t_exists(path), "%s exists", path);

	/* An unknown prefix is part of the path (paths may contain ':'). */
	snprintf(spec, sizeof(spec), "nvme:%s", path);
	expect_fail("unknown driver prefix is a path: -ENOENT", spec, -ENOENT, 0, spec,
		    "no such file");
	/* ... and a path with ':' in it works. */
	snprintf(spec2, sizeof(spec2) - 32, "%s/odd:name", g_dir);
	snprintf(spec, sizeof(spec), "%s,size=2M,create", spec2);
	expect_open("control: a path containing ':' opens", spec, 2 * MiB);
}

static void check_char_devices(void)
{
	char path[PATH_MAX], spec[PATH_MAX + 64];

	expect_fail("character device (/dev/null): -ENODEV", "/dev/null", -ENODEV, 0, "/dev/null",
		    "not a regular file");
	expect_fail("character device (aio:/dev/zero): -ENODEV", "aio:/dev/zero", -ENODEV, 0,
		    "/dev/zero", "not a regular file");
	path_of(path, sizeof(path), g_dir, "fifo");
	t_assert("setup: a FIFO", mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
	snprintf(spec, sizeof(spec), "uring:%s", path);
	expect_fail("a FIFO: -ENODEV", spec, -ENODEV, 0, path, "not a regular file");
}

static void check_errbuf(void)
{
	char path[PATH_MAX], spec[PATH_MAX + 64], small[8], none[4] = "ZZZ";
	struct zvfs_bdev *b = NULL;
	int rc;

	path_of(path, sizeof(path), g_dir, "missing");
	snprintf(spec, sizeof(spec), "uring:%s", path);
	t_begin("errbuf: NULL (logged instead), short (truncated), errlen 0 (untouched)");
	rc = zvfs_bdev_open(spec, &b, NULL, 0);
	EXPECT(rc == -ENOENT, "with errbuf NULL: %s", t_err(rc));
	memset(small, 'X', sizeof(small));
	rc = zvfs_bdev_open(spec, &b, small, sizeof(small));
	EXPECT(rc == -ENOENT, "with an 8-byte errbuf: %s", t_err(rc));
	EXPECT(memchr(small, '\0', sizeof(small)) && strlen(small) == sizeof(small) - 1,
	       "8-byte errbuf not filled and terminated");
	rc = zvfs_bdev_open(spec, &b, none, 0);
	EXPECT(rc == -ENOENT, "with errlen 0: %s", t_err(rc));
	EXPECT(strcmp(none, "ZZZ") == 0, "errlen 0, but errbuf was written");
out:
	t_end();
}

/* Create on a file system that cannot hold the size: an error and no file left. */
static void check_create_too_big(void)
{
	char path[PATH_MAX], spec[PATH_MAX + 64], name[128];
	char *mnt = NULL;

	/* Beyond any file size limit of the scratch file system (ext4: 16 TiB). */
	path_of(path, sizeof(path), g_dir, "huge");
	snprintf(spec, sizeof(spec), "uring:%s,size=1024T,create", path);
	expect_fail("create 1 PiB (1024T): -EFBIG or -ENOSPC", spec, -EFBIG, -ENOSPC, path, NULL);
	t_assert("failed create of 1 PiB left no file behind", !t_exists(path), "%s exists", path);

	/* A file system that is simply full: a 4 MiB tmpfs. */
	snprintf(name, sizeof(name), "create 64M on a 4 MiB tmpfs: -ENOSPC");
	if (geteuid() != 0) {
		t_begin(name);
		t_skipf("not root: cannot mount a small tmpfs");
		t_end();
		return;
	}
	mnt = t_mkdtemp(NULL, "tmpfs");
	if (!mnt || mount("zvfs-test", mnt, "tmpfs", 0, "size=4m,mode=0700") != 0) {
		t_begin(name);
		t_skipf("mount tmpfs: %s", strerror(errno));
		t_end();
		if (mnt)
			rmdir(mnt);
		free(mnt);
		return;
	}
	path_of(path, sizeof(path), mnt, "img");
	snprintf(spec, sizeof(spec), "uring:%s,size=64M,create", path);
	expect_fail(name, spec, -ENOSPC, 0, path, "space");
	t_assert("failed create on a full tmpfs left no file behind", !t_exists(path), "%s exists",
		 path);
	if (umount(mnt) != 0)
		t_note("umount %s: %s", mnt, strerror(errno));
	rmdir(mnt);
	free(mnt);
}

/* A ramfs refuses O_DIRECT: -EOPNOTSUPP, and ",buffered" is the way out. */
static void check_no_odirect(void)
{
	const char *name = "no O_DIRECT (ramfs, uring): -EOPNOTSUPP";
	char path[PATH_MAX], spec[PATH_MAX + 64], fresh[PATH_MAX];
	char *mnt;
	int rc;

	if (geteuid() != 0) {
		t_begin(name);
		t_skipf("not root: cannot mount a ramfs");
		t_end();
		return;
	}
	mnt = t_mkdtemp(NULL, "ramfs");
	if (!mnt || mount("zvfs-test", mnt, "ramfs", 0, "mode=0700") != 0) {
		t_begin(name);
		t_skipf("mount ramfs: %s", strerror(errno));
		t_end();
		if (mnt)
			rmdir(mnt);
		free(mnt);
		return;
	}
	path_of(path, sizeof(path), mnt, "img");
	rc = t_make_file(path, 2 * MiB, 5, 0600);
	t_assert("setup: a 2 MiB file on ramfs", rc == 0, "%s: %s", path, t_err(rc));
	snprintf(spec, sizeof(spec), "uring:%s", path);
	expect_fail(name, spec, -EOPNOTSUPP, 0, path, "O_DIRECT");
	snprintf(spec, sizeof(spec), "aio:%s", path);
	expect_fail("no O_DIRECT (ramfs, aio): -EOPNOTSUPP", spec, -EOPNOTSUPP, 0, path,
		    "O_DIRECT");
	snprintf(spec, sizeof(spec), "uring:%s,buffered", path);
	expect_open("no O_DIRECT: ',buffered' opens and does I/O (uring)", spec, 2 * MiB);
	snprintf(spec, sizeof(spec), "aio:%s,buffered", path);
	expect_open("no O_DIRECT: ',buffered' opens and does I/O (aio)", spec, 2 * MiB);

	path_of(fresh, sizeof(fresh), mnt, "new");
	snprintf(spec, sizeof(spec), "uring:%s,size=2M,create", fresh);
	expect_fail("no O_DIRECT, create: -EOPNOTSUPP", spec, -EOPNOTSUPP, 0, fresh, "O_DIRECT");
	t_assert("bug: create refused for O_DIRECT left the new file behind", !t_exists(fresh),
		 "%s exists", fresh);
	snprintf(spec, sizeof(spec), "uring:%s,size=2M,create,buffered", fresh);
	expect_open("no O_DIRECT, create with ',buffered' opens", spec, 2 * MiB);

	if (umount(mnt) != 0)
		t_note("umount %s: %s", mnt, strerror(errno));
	rmdir(mnt);
	free(mnt);
}

/* ---- permissions, as uid/gid 65534 in a child ---------------------------- */

enum { P_SECRET, P_SECRET_AIO, P_SECRET_RO, P_PUBLIC, P_PUBLIC_RO, P_HIDDEN, P_COUNT };

struct perm_result {
	int rc;
	char msg[400];
};

static void perm_child(int fd, const char *const *specs, const char *pdir)
{
	struct perm_result res[P_COUNT + 1];

	memset(res, 0, sizeof(res));
	/* Slot P_COUNT: did the privilege drop work, can we reach pdir? */
	if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
	    setresuid(65534, 65534, 65534) != 0) {
		res[P_COUNT].rc = -errno;
		snprintf(res[P_COUNT].msg, sizeof(res[P_COUNT].msg), "dropping privileges: %s",
			 strerror(errno));
	} else if (access(pdir, X_OK) != 0) {
		res[P_COUNT].rc = -errno;
		snprintf(res[P_COUNT].msg, sizeof(res[P_COUNT].msg),
			 "uid 65534 cannot reach %s: %s", pdir, strerror(errno));
	} else {
		for (int i = 0; i < P_COUNT; i++) {
			struct zvfs_bdev *b = NULL;

			res[i].rc = zvfs_bdev_open(specs[i], &b, res[i].msg, sizeof(res[i].msg));
			if (res[i].rc == 0) {
				void *buf = zvfs_bdev_buf_alloc(b, 4096);
				int rc = buf ? zvfs_bdev_read_sync(b, buf, 4096, 0) : -ENOMEM;

				zvfs_bdev_buf_free(b, buf);
				snprintf(res[i].msg, sizeof(res[i].msg), "opened; read = %s",
					 t_err(rc));
				if (rc)
					res[i].rc = 1;
				zvfs_bdev_close(b);
			}
		}
	}
	if (write(fd, res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(2);
	_exit(0);
}

static void perm_verdict(const char *name, const char *spec, const char *path,
			 const struct perm_result *r, int want)
{
	t_begin(name);
	EXPECT(r->rc == want, "\"%s\" as uid 65534: %s, want %s (%s)", spec, t_err(r->rc),
	       t_err(want), r->msg);
	if (want) {
		EXPECT(strstr(r->msg, path), "message does not name %s: \"%s\"", path, r->msg);
		EXPECT(strcasestr(r->msg, "permission"),
		       "message does not say \"permission\": \"%s\"", r->msg);
		EXPECT(!strchr(r->msg, '\n'), "message is not one line");
	}
	t_note("%s -> %s: %s", spec, t_err(r->rc), r->msg);
out:
	t_end();
}

static void check_permission(void)
{
	char secret[PATH_MAX], public[PATH_MAX], hidden[PATH_MAX];
	char specs_buf[P_COUNT][PATH_MAX + 32];
	const char *specs[P_COUNT];
	struct perm_result res[P_COUNT + 1];
	char *pdir = NULL, *qdir = NULL;
	int pfd[2] = {-1, -1}, status, rc;
	ssize_t got = 0;
	pid_t pid;

	if (geteuid() != 0) {
		t_begin("no permission: -EACCES");
		t_skipf("not root: cannot switch to another user");
		t_end();
		return;
	}
	t_begin("setup: root-owned files, a child running as uid 65534");
	pdir = t_mkdtemp(NULL, "perm");
	qdir = t_mkdtemp(NULL, "perm-hidden");
	EXPECT(pdir && qdir, "mkdtemp: %s", strerror(errno));
	EXPECT(chmod(pdir, 0755) == 0 && chmod(qdir, 0700) == 0, "chmod: %s", strerror(errno));
	path_of(secret, sizeof(secret), pdir, "secret");
	path_of(public, sizeof(public), pdir, "public");
	path_of(hidden, sizeof(hidden), qdir, "file");
	EXPECT(t_make_file(secret, 2 * MiB, 1, 0600) == 0, "%s", secret);
	EXPECT(t_make_file(public, 2 * MiB, 1, 0644) == 0, "%s", public);
	EXPECT(t_make_file(hidden, 2 * MiB, 1, 0644) == 0, "%s", hidden);
	snprintf(specs_buf[P_SECRET], sizeof(specs_buf[0]), "uring:%s", secret);
	snprintf(specs_buf[P_SECRET_AIO], sizeof(specs_buf[0]), "aio:%s", secret);
	snprintf(specs_buf[P_SECRET_RO], sizeof(specs_buf[0]), "uring:%s,ro", secret);
	snprintf(specs_buf[P_PUBLIC], sizeof(specs_buf[0]), "uring:%s", public);
	snprintf(specs_buf[P_PUBLIC_RO], sizeof(specs_buf[0]), "uring:%s,ro", public);
	snprintf(specs_buf[P_HIDDEN], sizeof(specs_buf[0]), "uring:%s,ro", hidden);
	for (int i = 0; i < P_COUNT; i++)
		specs[i] = specs_buf[i];
	EXPECT(pipe2(pfd, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	EXPECT(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		perm_child(pfd[1], specs, pdir);
	}
	close(pfd[1]);
	pfd[1] = -1;
	while (got < (ssize_t)sizeof(res)) {
		ssize_t n = read(pfd[0], (char *)res + got, sizeof(res) - (size_t)got);

		if (n <= 0)
			break;
		got += n;
	}
	rc = waitpid(pid, &status, 0);
	EXPECT(rc == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "child failed (status 0x%x)", status);
	EXPECT(got == (ssize_t)sizeof(res), "child sent %zd of %zu bytes", got, sizeof(res));
	EXPECT(res[P_COUNT].rc == 0, "%s", res[P_COUNT].msg);
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (!t_end()) {
		t_rmtree(pdir);
		t_rmtree(qdir);
		free(pdir);
		free(qdir);
		return;
	}

	{
		static const struct {
			int idx;
			const char *name;
			int want;
		} cases[] = {
			{P_SECRET, "no permission: another user's 0600 file (uring): -EACCES",
			 -EACCES},
			{P_SECRET_AIO, "no permission: another user's 0600 file (aio): -EACCES",
			 -EACCES},
			{P_SECRET_RO, "no permission: ro needs read permission: -EACCES", -EACCES},
			{P_PUBLIC, "no permission: a 0644 file read-write: -EACCES", -EACCES},
			{P_HIDDEN, "no permission: directory not searchable: -EACCES", -EACCES},
			{P_PUBLIC_RO, "control: the same 0644 file with ',ro' opens and reads", 0},
		};
		const char *paths[P_COUNT] = {secret, secret, secret, public, public, hidden};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			perm_verdict(cases[i].name, specs[cases[i].idx], paths[cases[i].idx],
				     &res[cases[i].idx], cases[i].want);
	}
	t_rmtree(pdir);
	t_rmtree(qdir);
	free(pdir);
	free(qdir);
}

int main(void)
{
	t_seed();
	g_dir = t_mkdtemp(NULL, "spec");
	if (!g_dir) {
		printf("# cannot make a temporary directory: %s\n", strerror(errno));
		return 1;
	}
	check_missing_dir_small();
	check_malformed();
	check_char_devices();
	check_errbuf();
	check_create_too_big();
	check_no_odirect();
	check_permission();
	t_rmtree(g_dir);
	free(g_dir);
	return t_summary("spec errors");
}
