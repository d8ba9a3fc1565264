/* SPDX-License-Identifier: MIT */
/* Helpers for the block-device tests; see testlib.h. */
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- reporting ---------------------------------------------------------- */

static const char *g_name;
static char g_reason[512];
static enum { ST_RUN, ST_FAIL, ST_SKIP } g_state;
static unsigned g_pass, g_fail, g_skip;

void t_begin(const char *name)
{
	g_name = name;
	g_state = ST_RUN;
	g_reason[0] = '\0';
}

void t_failf(const char *fmt, ...)
{
	va_list ap;

	if (g_state != ST_RUN)
		return; /* the first failure is the one reported */
	g_state = ST_FAIL;
	va_start(ap, fmt);
	vsnprintf(g_reason, sizeof(g_reason), fmt, ap);
	va_end(ap);
}

void t_skipf(const char *fmt, ...)
{
	va_list ap;

	if (g_state != ST_RUN)
		return;
	g_state = ST_SKIP;
	va_start(ap, fmt);
	vsnprintf(g_reason, sizeof(g_reason), fmt, ap);
	va_end(ap);
}

bool t_running(void)
{
	return g_state == ST_RUN;
}

bool t_end(void)
{
	switch (g_state) {
	case ST_RUN:
		g_pass++;
		printf("ok - %s\n", g_name);
		break;
	case ST_SKIP:
		g_skip++;
		printf("ok - %s # SKIP %s\n", g_name, g_reason);
		break;
	case ST_FAIL:
		g_fail++;
		printf("not ok - %s: %s\n", g_name, g_reason);
		break;
	}
	fflush(stdout);
	return g_state != ST_FAIL;
}

int t_summary(const char *prog)
{
	printf("# %s: %u passed, %u failed, %u skipped\n", prog, g_pass, g_fail, g_skip);
	fflush(stdout);
	if (g_fail)
		return 1;
	if (!g_pass && g_skip)
		return T_EXIT_SKIP;
	return 0;
}

bool t_assert(const char *name, bool cond, const char *fmt, ...)
{
	va_list ap;

	t_begin(name);
	if (!cond) {
		g_state = ST_FAIL;
		va_start(ap, fmt);
		vsnprintf(g_reason, sizeof(g_reason), fmt, ap);
		va_end(ap);
	}
	return t_end();
}

void t_note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

const char *t_err(int rc)
{
	static __thread char buf[4][32];
	static __thread unsigned slot;
	char *b = buf[slot++ % 4];
	const char *name;

	if (rc == 0)
		return "0";
	name = rc < 0 ? strerrorname_np(-rc) : NULL;
	if (name)
		snprintf(b, sizeof(buf[0]), "-%s", name);
	else
		snprintf(b, sizeof(buf[0]), "%d", rc);
	return b;
}

/* ---- data ------------------------------------------------------------- */

uint64_t t_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t t_seed(void)
{
	static uint64_t seed;
	static bool done;
	const char *env;

	if (done)
		return seed;
	env = getenv("ZVFS_TEST_SEED");
	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = t_mix((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
		       (uint64_t)getpid();
	}
	done = true;
	printf("# seed %" PRIu64 " (set ZVFS_TEST_SEED to repeat)\n", seed);
	return seed;
}

static inline uint64_t word_at(uint64_t seed, uint64_t pos)
{
	return t_mix(seed ^ t_mix(pos));
}

/* Buffers may be unaligned (the file-layer tests use odd offsets): words go through memcpy. */
void t_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len / 8; i++) {
		uint64_t w = word_at(seed, off + i * 8);

		memcpy(p + i * 8, &w, 8);
	}
}

ssize_t t_check(const void *buf, size_t len, uint64_t seed, uint64_t off)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len / 8; i++) {
		uint64_t want = word_at(seed, off + i * 8), got;

		memcpy(&got, p + i * 8, 8);
		if (got != want) {
			const uint8_t *a = p + i * 8, *b = (const uint8_t *)&want;
			size_t j = 0;

			while (a[j] == b[j])
				j++;
			return (ssize_t)(i * 8 + j);
		}
	}
	return -1;
}

ssize_t t_check_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return (ssize_t)i;
	return -1;
}

/* ---- completions ------------------------------------------------------ */

__thread bool t_in_submit;

void t_req_init(struct t_req *r, unsigned *counter)
{
	memset(r, 0, sizeof(*r));
	r->owner = pthread_self();
	r->counter = counter;
	r->status = 1; /* no errno is positive: "never called" */
}

void t_req_cb(void *arg, int status)
{
	struct t_req *r = arg;

	r->calls++;
	r->status = status;
	if (t_in_submit)
		r->in_submit = true;
	if (!pthread_equal(pthread_self(), r->owner))
		r->wrong_thread = true;
	if (r->counter)
		(*r->counter)++;
}

int t_wait_for(struct zvfs_bdev_channel *ch, const unsigned *counter, unsigned target)
{
	unsigned idle = 0;

	while (*counter < target) {
		int rc = zvfs_bdev_wait(ch);

		if (rc < 0)
			return rc;
		if (rc > 0) {
			idle = 0;
			continue;
		}
		if (*counter >= target)
			break;
		if (zvfs_bdev_outstanding(ch) == 0)
			return -EPIPE;
		/* zvfs_bdev_wait() returns 0 only when nothing is in flight. */
		if (++idle > 1000)
			return -ETIMEDOUT;
	}
	return 0;
}

int t_drain(struct zvfs_bdev_channel *ch)
{
	unsigned idle = 0;

	while (zvfs_bdev_outstanding(ch)) {
		int rc = zvfs_bdev_wait(ch);

		if (rc < 0)
			return rc;
		if (rc == 0 && ++idle > 1000)
			return -ETIMEDOUT;
	}
	/* Anything deferred but not counted as outstanding would be a bug too. */
	return zvfs_bdev_poll(ch) < 0 ? -EIO : 0;
}

bool t_reqs_ok(const struct t_req *r, size_t n, int want, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].calls != 1) {
			t_failf("%s %zu: callback ran %u times", what, i, r[i].calls);
			return false;
		}
		if (r[i].status != want) {
			t_failf("%s %zu: status %s, want %s", what, i, t_err(r[i].status),
				t_err(want));
			return false;
		}
		if (r[i].in_submit) {
			t_failf("%s %zu: callback ran inside a submit call", what, i);
			return false;
		}
		if (r[i].wrong_thread) {
			t_failf("%s %zu: callback ran on another thread", what, i);
			return false;
		}
	}
	return true;
}

/* ---- files, mounts, devices ------------------------------------------- */

char *t_mkdtemp(const char *base, const char *tag)
{
	char *path;

	if (!base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/zvfs-%s-XXXXXX", base, tag) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void t_rmtree(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int t_make_file(const char *path, uint64_t len, uint64_t seed, mode_t mode)
{
	size_t chunk = 1u << 20;
	char *buf = malloc(chunk);
	int fd, rc = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	for (uint64_t off = 0; off < len && !rc; off += chunk) {
		size_t n = len - off < chunk ? (size_t)(len - off) : chunk;

		t_fill(buf, n & ~(size_t)7, seed, off);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			rc = -EIO;
	}
	if (!rc && fchmod(fd, mode) != 0)
		rc = -errno;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	free(buf);
	return rc;
}

bool t_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int t_count_fds(const char *s)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char target[256];
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		len = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		if (strstr(target, s))
			n++;
	}
	closedir(d);
	return n;
}

int t_count_maps(const char *s)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, s))
			n++;
	fclose(f);
	return n;
}

#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
	__u32 fd;
	__u32 block_size;
	struct loop_info64 info;
	__u64 __reserved[8];
};
#endif

int t_loop_attach(const char *img, char *dev, size_t devlen, int *loopfd, char *why, size_t whylen)
{
	int ctl, imgfd, lfd = -1, rc = 0;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		rc = -errno;
		snprintf(why, whylen, "/dev/loop-control: %s", strerror(errno));
		return rc;
	}
	imgfd = open(img, O_RDWR | O_CLOEXEC);
	if (imgfd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", img, strerror(errno));
		close(ctl);
		return rc;
	}
	/* Another process may grab the free device between the two calls: retry. */
	for (int attempt = 0; attempt < 8; attempt++) {
		struct loop_config cfg;
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0) {
			rc = -errno;
			snprintf(why, whylen, "LOOP_CTL_GET_FREE: %s", strerror(errno));
			break;
		}
		snprintf(dev, devlen, "/dev/loop%d", n);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			rc = -errno;
			snprintf(why, whylen, "%s: %s", dev, strerror(errno));
			break;
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (__u32)imgfd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			rc = 0;
			break;
		}
		if (errno == EINVAL || errno == ENOTTY) {
			/* Before Linux 5.8: the two-step form. */
			struct loop_info64 info;

			if (ioctl(lfd, LOOP_SET_FD, imgfd) == 0) {
				memset(&info, 0, sizeof(info));
				info.lo_flags = LO_FLAGS_AUTOCLEAR;
				if (ioctl(lfd, LOOP_SET_STATUS64, &info) != 0) {
					rc = -errno;
					snprintf(why, whylen, "LOOP_SET_STATUS64: %s",
						 strerror(errno));
					ioctl(lfd, LOOP_CLR_FD, 0);
					break;
				}
				rc = 0;
				break;
			}
		}
		rc = -errno;
		snprintf(why, whylen, "%s: attach: %s", dev, strerror(errno));
		close(lfd);
		lfd = -1;
		if (rc != -EBUSY)
			break;
	}
	close(imgfd);
	close(ctl);
	if (rc) {
		if (lfd >= 0)
			close(lfd);
		return rc;
	}
	*loopfd = lfd;
	return 0;
}

void t_loop_detach(int loopfd)
{
	if (loopfd < 0)
		return;
	ioctl(loopfd, LOOP_CLR_FD, 0);
	close(loopfd);
}

/* ---- synchronous helpers on a device ---------------------------------- */

int t_dev_write_pattern(struct zvfs_bdev *b, uint64_t off, uint64_t len, uint64_t seed)
{
	void *buf = zvfs_bdev_buf_alloc(b, len);
	int rc;

	if (!buf)
		return -ENOMEM;
	t_fill(buf, len, seed, off);
	rc = zvfs_bdev_write_sync(b, buf, len, off);
	zvfs_bdev_buf_free(b, buf);
	return rc;
}

int t_dev_check_pattern(struct zvfs_bdev *b, uint64_t off, uint64_t len, uint64_t seed,
			uint64_t *bad)
{
	void *buf = zvfs_bdev_buf_alloc(b, len);
	ssize_t at;
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = zvfs_bdev_read_sync(b, buf, len, off);
	if (rc == 0) {
		at = t_check(buf, len, seed, off);
		if (at >= 0) {
			if (bad)
				*bad = off + (uint64_t)at;
			rc = -EBADMSG;
		}
	}
	zvfs_bdev_buf_free(b, buf);
	return rc;
}

int t_dev_check_zero(struct zvfs_bdev *b, uint64_t off, uint64_t len, uint64_t *bad)
{
	void *buf = zvfs_bdev_buf_alloc(b, len);
	ssize_t at;
	int rc;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0xa5, len);
	rc = zvfs_bdev_read_sync(b, buf, len, off);
	if (rc == 0) {
		at = t_check_zero(buf, len);
		if (at >= 0) {
			if (bad)
				*bad = off + (uint64_t)at;
			rc = -EBADMSG;
		}
	}
	zvfs_bdev_buf_free(b, buf);
	return rc;
}
