/* SPDX-License-Identifier: MIT */
/*
 * mtool - the client side of the daemon-mode tests (the test_*.sh scripts here).  Each
 * subcommand is one small program run under libzvfs.so (ZVFS_MODE=daemon)
 * by a test script; several run at once to share one store through zvfsd.
 * Every subcommand prints "ok ..." / "FAIL ...: why" lines and exits 0 when
 * all its checks passed, 1 otherwise (2: usage).
 *
 * Map:
 *   pattern      a byte per file offset, the same in every process
 *   fill/verify  write / check the pattern over a range
 *   forkseq      parent, child, parent write through one fd in turn
 *   forkw        children forked on one fd write records at once
 *   recs         check a file of records from forkw/append
 *   append       one O_APPEND writer (several run at once)
 *   disjoint     one writer of its own range of a shared file
 *   hold         open, wait for commands on stdin (unlink while open)
 *   fsync        fsync a file through a read-only fd of its own
 *   loopw        write until killed
 *   eio          keep writing while another thread SIGKILLs the daemon
 *   reconnect    keep fds open across a daemon restart
 *   tryopen      expect open() to fail with a given errno
 *   locks        POSIX record locks survive the library's own calls
 *
 * Records (forkw, append) are REC bytes: "W<writer> S<seq> " then filler that
 * depends on both, '\n' last, so a torn or interleaved record is detected.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static int nfailed;

__attribute__((format(printf, 1, 2))) static void ok(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("ok ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	nfailed++;
}

static _Noreturn void die(const char *what)
{
	printf("FAIL %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long long num(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 0);

	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "mtool: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

/* ---- pattern -------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The pattern byte at file offset off for seed (any process computes the same). */
static void pattern(unsigned char *buf, uint64_t off, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t o = off + i;
		buf[i] = (unsigned char)(mix(seed * 0x100000001b3ull ^ (o >> 3)) >> ((o & 7) * 8));
	}
}

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = off < 0 ? write(fd, (const char *)buf + done, len - done)
				    : pwrite(fd, (const char *)buf + done, len - done,
					     off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len, off_t off, size_t *got)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = off < 0 ? read(fd, (char *)buf + done, len - done)
				    : pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

/* Compare [off, off+len) of fd with the pattern; 0, or prints why and returns -1. */
static int check_range(const char *name, int fd, uint64_t off, uint64_t len, uint64_t seed)
{
	unsigned char *buf = malloc(CHUNK), *want = malloc(CHUNK);
	int ret = 0;

	if (!buf || !want)
		die("malloc");
	for (uint64_t pos = off; pos < off + len;) {
		size_t n = (size_t)(off + len - pos < CHUNK ? off + len - pos : CHUNK), got;
		int r = read_all(fd, buf, n, (off_t)pos, &got);

		if (r < 0) {
			fail("%s: pread at %" PRIu64 ": %s", name, pos, strerror(-r));
			ret = -1;
			break;
		}
		if (got != n) {
			fail("%s: short read at %" PRIu64 ": %zu of %zu", name, pos, got, n);
			ret = -1;
			break;
		}
		pattern(want, pos, n, seed);
		if (memcmp(buf, want, n) != 0) {
			size_t i = 0;
			while (buf[i] == want[i])
				i++;
			fail("%s: wrong byte at %" PRIu64 ": 0x%02x, want 0x%02x", name, pos + i,
			     buf[i], want[i]);
			ret = -1;
			break;
		}
		pos += n;
	}
	free(buf);
	free(want);
	return ret;
}

/* Write the pattern over [off, off+len) in pieces of 1 MiB. */
static int fill_range(int fd, uint64_t off, uint64_t len, uint64_t seed, bool use_write)
{
	unsigned char *buf = malloc(CHUNK);
	int r = 0;

	if (!buf)
		die("malloc");
	for (uint64_t pos = off; pos < off + len && r == 0;) {
		size_t n = (size_t)(off + len - pos < CHUNK ? off + len - pos : CHUNK);
		pattern(buf, pos, n, seed);
		r = write_all(fd, buf, n, use_write ? -1 : (off_t)pos);
		pos += n;
	}
	free(buf);
	return r;
}

/* ---- fill / verify ------------------------------------------------------------ */

/* fill FILE SIZE SEED [hold]: create/truncate, write; "hold": stay open until stdin EOF. */
static int cmd_fill(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	uint64_t size = (uint64_t)num(argv[2]), seed = (uint64_t)num(argv[3]);
	bool hold = argc > 4 && strcmp(argv[4], "hold") == 0;
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("fill: open");
	int r = fill_range(fd, 0, size, seed, false);
	if (r < 0) {
		fail("fill %s: %s", argv[1], strerror(-r));
		return 1;
	}
	ok("fill %s %" PRIu64, argv[1], size);
	if (hold) {
		char line[64];
		printf("written\n");
		fflush(stdout);
		while (fgets(line, sizeof(line), stdin))
			;
	}
	if (close(fd) != 0)
		die("fill: close");
	return nfailed ? 1 : 0;
}

/* verify FILE SIZE SEED: st_size is SIZE and every byte is the pattern. */
static int cmd_verify(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	uint64_t size = (uint64_t)num(argv[2]), seed = (uint64_t)num(argv[3]);
	int fd = open(argv[1], O_RDONLY);
	struct stat st;

	if (fd < 0)
		die("verify: open");
	if (fstat(fd, &st) != 0)
		die("verify: fstat");
	if ((uint64_t)st.st_size != size)
		fail("verify %s: size %lld, want %" PRIu64, argv[1], (long long)st.st_size, size);
	else if (check_range("verify", fd, 0, size, seed) == 0)
		ok("verify %s %" PRIu64, argv[1], size);
	close(fd);
	return nfailed ? 1 : 0;
}

/* ---- records -------------------------------------------------------------- */

enum { REC = 64 };

static void make_rec(char *r, int w, int seq)
{
	memset(r, 'a' + (w * 7 + seq) % 26, REC);
	int n = snprintf(r, REC, "W%02d S%06d ", w, seq);
	r[n] = '|';
	r[REC - 1] = '\n';
}

/* recs FILE NWRITERS NREC [END]: every writer's records once, each in order, whole. */
static int cmd_recs(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int nw = (int)num(argv[2]), nrec = (int)num(argv[3]);
	const char *end = argc > 4 ? argv[4] : NULL;
	int fd = open(argv[1], O_RDONLY);
	struct stat st;

	if (fd < 0)
		die("recs: open");
	if (fstat(fd, &st) != 0)
		die("recs: fstat");
	size_t want = (size_t)nw * (size_t)nrec * REC + (end ? strlen(end) : 0);
	if ((size_t)st.st_size != want) {
		fail("recs %s: size %lld, want %zu", argv[1], (long long)st.st_size, want);
		return 1;
	}
	char *buf = malloc(want + 1), r[REC];
	int *next = calloc((size_t)nw, sizeof(int));
	size_t got;
	if (!buf || !next)
		die("malloc");
	if (read_all(fd, buf, want, 0, &got) != 0 || got != want) {
		fail("recs %s: read %zu of %zu", argv[1], got, want);
		return 1;
	}
	size_t nrecs = (size_t)nw * (size_t)nrec;
	for (size_t i = 0; i < nrecs; i++) {
		const char *p = buf + i * REC;
		int w, seq;
		if (sscanf(p, "W%d S%d ", &w, &seq) != 2 || w < 0 || w >= nw) {
			fail("recs %s: record %zu is not a record: '%.20s'", argv[1], i, p);
			return 1;
		}
		make_rec(r, w, seq);
		if (memcmp(p, r, REC) != 0) {
			fail("recs %s: record %zu (W%d S%d) torn", argv[1], i, w, seq);
			return 1;
		}
		if (seq != next[w]) {
			fail("recs %s: record %zu is W%d S%d, want S%d of that writer", argv[1], i,
			     w, seq, next[w]);
			return 1;
		}
		next[w]++;
	}
	if (end && memcmp(buf + nrecs * REC, end, strlen(end)) != 0) {
		fail("recs %s: does not end with '%s'", argv[1], end);
		return 1;
	}
	ok("recs %s: %d writers x %d records, each once, in order, whole", argv[1], nw, nrec);
	free(buf);
	free(next);
	close(fd);
	return 0;
}

/* forkseq FILE: parent "P0\n", child "C1\n" (and exits), parent "P2\n", through one fd. */
static int cmd_forkseq(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644), st;
	char buf[16] = {0};

	if (fd < 0)
		die("forkseq: open");
	if (write_all(fd, "P0\n", 3, -1) != 0)
		die("forkseq: write P0");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(write_all(fd, "C1\n", 3, -1) == 0 ? 0 : 1);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("forkseq: child's write failed (status 0x%x)", st);
	off_t pos = lseek(fd, 0, SEEK_CUR);
	if (pos != 6)
		fail("forkseq: parent's offset after the child's write is %lld, want 6",
		     (long long)pos);
	if (write_all(fd, "P2\n", 3, -1) != 0)
		die("forkseq: write P2");
	close(fd);
	fd = open(argv[1], O_RDONLY);
	size_t got;
	if (fd < 0 || read_all(fd, buf, sizeof(buf) - 1, 0, &got) != 0)
		die("forkseq: read back");
	close(fd);
	if (strcmp(buf, "P0\nC1\nP2\n") != 0)
		fail("forkseq: file is '%s', want 'P0\\nC1\\nP2\\n'", buf);
	else
		ok("forkseq: parent and child share the offset");
	return nfailed ? 1 : 0;
}

/*
 * forkw FILE NCHILD NREC: children forked after the open write NREC records
 * each through the inherited fd, all at once (released by a pipe); then the
 * parent appends "END\n" by write() and checks its offset is the total.
 */
static int cmd_forkw(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int nc = (int)num(argv[2]), nrec = (int)num(argv[3]);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644), gate[2];
	pid_t pids[64];

	if (fd < 0)
		die("forkw: open");
	if (nc > 64 || pipe(gate) != 0)
		die("forkw: pipe");
	for (int c = 0; c < nc; c++) {
		pids[c] = fork();
		if (pids[c] < 0)
			die("fork");
		if (pids[c] == 0) {
			char r[REC], g;
			close(gate[1]);
			if (read(gate[0], &g, 1) < 0)
				_exit(3);
			for (int s = 0; s < nrec; s++) {
				make_rec(r, c, s);
				if (write(fd, r, REC) != REC)
					_exit(1);
			}
			_exit(0);
		}
	}
	close(gate[0]);
	close(gate[1]); /* EOF releases every child at once */
	for (int c = 0; c < nc; c++) {
		int st;
		if (waitpid(pids[c], &st, 0) != pids[c] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail("forkw: child %d failed (status 0x%x)", c, st);
	}
	off_t want = (off_t)nc * nrec * REC, pos = lseek(fd, 0, SEEK_CUR);
	if (pos != want)
		fail("forkw: parent's offset after the children is %lld, want %lld", (long long)pos,
		     (long long)want);
	if (write_all(fd, "END\n", 4, -1) != 0)
		die("forkw: write END");
	if (close(fd) != 0)
		die("forkw: close");
	if (!nfailed)
		ok("forkw: %d children x %d records through one fd", nc, nrec);
	return nfailed ? 1 : 0;
}

/* Wait until GATE exists (a plain file made by the script when all are ready). */
static void wait_gate(const char *ready, const char *gate)
{
	int fd = open(ready, O_WRONLY | O_CREAT, 0644);

	if (fd < 0)
		die("ready file");
	close(fd);
	while (access(gate, F_OK) != 0)
		usleep(1000);
}

/* append FILE W NREC READY GATE: O_APPEND writer W, each record one write(). */
static int cmd_append(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	int w = (int)num(argv[2]), nrec = (int)num(argv[3]);
	int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
	char r[REC];

	if (fd < 0)
		die("append: open");
	wait_gate(argv[4], argv[5]);
	for (int s = 0; s < nrec; s++) {
		make_rec(r, w, s);
		ssize_t n = write(fd, r, REC);
		if (n != REC) {
			fail("append W%d: write %d returned %zd: %s", w, s, n, strerror(errno));
			return 1;
		}
	}
	if (close(fd) != 0)
		die("append: close");
	return 0;
}

/*
 * disjoint FILE I N PART SEED READY GATE: writer I of N writes the pattern over
 * [I*PART, (I+1)*PART) in pieces of odd sizes (from 1 byte to 200 KiB), by pwrite.
 */
static int cmd_disjoint(int argc, char **argv)
{
	if (argc < 8)
		return 2;
	uint64_t i = (uint64_t)num(argv[2]), part = (uint64_t)num(argv[4]);
	uint64_t seed = (uint64_t)num(argv[5]);
	int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
	unsigned char *buf = malloc(200 << 10);
	uint64_t x = i + 1;

	if (fd < 0 || !buf)
		die("disjoint: open");
	wait_gate(argv[6], argv[7]);
	for (uint64_t pos = i * part, end = (i + 1) * part; pos < end;) {
		x = mix(x);
		size_t n = (size_t)(x % (200 << 10)) + 1;
		if (n > end - pos)
			n = (size_t)(end - pos);
		pattern(buf, pos, n, seed);
		int r = write_all(fd, buf, n, (off_t)pos);
		if (r < 0) {
			fail("disjoint %" PRIu64 ": pwrite at %" PRIu64 ": %s", i, pos,
			     strerror(-r));
			return 1;
		}
		pos += n;
	}
	if (close(fd) != 0)
		die("disjoint: close");
	free(buf);
	return 0;
}

/* ---- unlink while open ---------------------------------------------------- */

static bool wait_line(const char *want)
{
	char line[128];

	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\n")] = '\0';
	return strcmp(line, want) == 0;
}

/*
 * hold FILE SIZE SEED [unlinked]: open read-only, say "open"; on "read": read
 * it all (with "unlinked": the script has unlinked it meanwhile, st_nlink must
 * be 0), say "read"; on "close": close, say "closed".
 */
static int cmd_hold(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	uint64_t size = (uint64_t)num(argv[2]), seed = (uint64_t)num(argv[3]);
	bool unlinked = argc > 4 && strcmp(argv[4], "unlinked") == 0;
	int fd = open(argv[1], O_RDONLY);
	struct stat st;

	if (fd < 0)
		die("hold: open");
	printf("open\n");
	fflush(stdout);
	if (!wait_line("read"))
		die("hold: no 'read' on stdin");
	if (fstat(fd, &st) != 0)
		die("hold: fstat");
	if ((uint64_t)st.st_size != size)
		fail("hold: size after unlink %lld, want %" PRIu64, (long long)st.st_size, size);
	if (unlinked && st.st_nlink != 0)
		fail("hold: st_nlink after unlink is %lu, want 0", (unsigned long)st.st_nlink);
	if (check_range("hold: read", fd, 0, size, seed) == 0)
		ok("hold: all %" PRIu64 " bytes read%s", size, unlinked ? " after the unlink" : "");
	printf("read\n");
	fflush(stdout);
	if (!wait_line("close"))
		die("hold: no 'close' on stdin");
	if (close(fd) != 0)
		die("hold: close");
	printf("closed\n");
	fflush(stdout);
	return nfailed ? 1 : 0;
}

/* fsync FILE: open it read-only (as PostgreSQL does) and fsync it. */
static int cmd_fsync(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDONLY);

	if (fd < 0)
		die("fsync: open");
	if (fsync(fd) != 0)
		die("fsync: fsync");
	close(fd);
	ok("fsync %s from another process", argv[1]);
	return 0;
}

/* ---- faults --------------------------------------------------------------- */

/*
 * loopw FILE: write 64 KiB pieces over 16 MiB, again and again; "running PID"
 * after the first (the pid: the script's $! may be a subshell's).
 */
static int cmd_loopw(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	static unsigned char buf[64 << 10];

	if (fd < 0)
		die("loopw: open");
	for (uint64_t i = 0;; i++) {
		uint64_t off = (i % 256) * sizeof(buf);
		pattern(buf, off, sizeof(buf), 7 + i / 256);
		int r = write_all(fd, buf, sizeof(buf), (off_t)off);
		if (r < 0) {
			fail("loopw: pwrite: %s", strerror(-r));
			return 1;
		}
		if (i == 0) {
			printf("running %d\n", (int)getpid());
			fflush(stdout);
		}
	}
}

static struct {
	int fd;
	_Atomic uint64_t writes;
	_Atomic uint64_t t_fail; /* ns of the failing write's return */
	_Atomic int err;
} eio;

static void *eio_writer(void *arg)
{
	static unsigned char buf[64 << 10];
	(void)arg;

	for (uint64_t i = 0;; i++) {
		ssize_t n = pwrite(eio.fd, buf, sizeof(buf), (off_t)((i % 64) * sizeof(buf)));
		if (n < 0) {
			atomic_store(&eio.err, errno);
			atomic_store(&eio.t_fail, now_ns());
			return NULL;
		}
		atomic_fetch_add(&eio.writes, 1);
	}
}

/* Time one call against a dead daemon: it must fail (any errno) within 1 s. */
#define DEAD_CALL(name, call)                                                                      \
	do {                                                                                       \
		uint64_t t_ = now_ns();                                                            \
		errno = 0;                                                                         \
		long r_ = (long)(call);                                                            \
		uint64_t ms_ = (now_ns() - t_) / 1000000;                                          \
		if (ms_ > 1000)                                                                    \
			fail("eio: %s after the daemon died took %" PRIu64 " ms", name, ms_);      \
		else                                                                               \
			ok("eio: %s after the daemon died: %ld (%s) in %" PRIu64 " ms", name, r_,  \
			   r_ < 0 ? strerror(errno) : "no error", ms_);                            \
	} while (0)

/*
 * eio FILE DAEMONPID: a thread writes 64 KiB pieces in a loop; after 200 of them
 * this thread SIGKILLs the daemon.  The writer must get EIO within 1 s of the
 * kill; later calls (pwrite, pread, fstat, fsync, close) must not hang either.
 */
static int cmd_eio(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	pid_t dpid = (pid_t)num(argv[2]);
	pthread_t th;
	char b[4096];
	struct stat st;

	eio.fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (eio.fd < 0)
		die("eio: open");
	if (pthread_create(&th, NULL, eio_writer, NULL) != 0)
		die("pthread_create");
	while (atomic_load(&eio.writes) < 200 && atomic_load(&eio.t_fail) == 0)
		usleep(100);
	if (atomic_load(&eio.t_fail)) {
		fail("eio: writes failed before the kill: %s", strerror(atomic_load(&eio.err)));
		return 1;
	}
	uint64_t t_kill = now_ns();
	if (kill(dpid, SIGKILL) != 0)
		die("eio: kill the daemon");
	pthread_join(th, NULL);
	uint64_t ms = (atomic_load(&eio.t_fail) - t_kill) / 1000000;
	int err = atomic_load(&eio.err);
	if (err != EIO)
		fail("eio: the write failed with %s, want EIO", strerror(err));
	if (ms > 1000)
		fail("eio: the write failed %" PRIu64 " ms after the kill, want <= 1000", ms);
	if (err == EIO && ms <= 1000)
		ok("eio: EIO %" PRIu64 " ms after the daemon's SIGKILL (%" PRIu64 " writes before)",
		   ms, atomic_load(&eio.writes));
	printf("# eio: kill-to-EIO %" PRIu64 " ms\n", ms);
	DEAD_CALL("pwrite", pwrite(eio.fd, b, sizeof(b), 0));
	DEAD_CALL("pread", pread(eio.fd, b, sizeof(b), 0));
	DEAD_CALL("fstat", fstat(eio.fd, &st));
	DEAD_CALL("fsync", fsync(eio.fd));
	DEAD_CALL("close", close(eio.fd));
	DEAD_CALL("open", open(argv[1], O_RDONLY));
	return nfailed ? 1 : 0;
}

/*
 * reconnect FILE: open FILE twice (read-write and read-only), write 1 MiB by
 * write() and fsync, say "ready"; on "killed" (the daemon was SIGKILLed) a
 * write must fail with EIO, say "eio"; on "restarted" the same fds go on: the
 * next 1 MiB by write() lands after the first, fsync, both fds read it all back,
 * and a new file can be made; say "done".
 */
static int cmd_reconnect(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	char path2[4096];
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644), ro;
	struct stat st;
	unsigned char b[4096] = {0};

	if (fd < 0)
		die("reconnect: open");
	ro = open(argv[1], O_RDONLY);
	if (ro < 0)
		die("reconnect: open read-only");
	if (fill_range(fd, 0, CHUNK, 11, true) != 0 || fsync(fd) != 0)
		die("reconnect: first write + fsync");
	printf("ready\n");
	fflush(stdout);
	if (!wait_line("killed"))
		die("reconnect: no 'killed' on stdin");
	uint64_t t = now_ns();
	ssize_t n = write(fd, b, sizeof(b));
	uint64_t ms = (now_ns() - t) / 1000000;
	if (n >= 0 || errno != EIO)
		fail("reconnect: write with the daemon dead returned %zd (%s), want EIO", n,
		     n < 0 ? strerror(errno) : "no error");
	else if (ms > 1000)
		fail("reconnect: EIO took %" PRIu64 " ms", ms);
	else
		ok("reconnect: EIO while the daemon is dead (%" PRIu64 " ms)", ms);
	printf("eio\n");
	fflush(stdout);
	if (!wait_line("restarted"))
		die("reconnect: no 'restarted' on stdin");
	/*
	 * The first call may race the client's reconnection (it retries at most
	 * every so often): allow 2 s of transient EIO, say how long it took; after
	 * that every call must work.
	 */
	uint64_t t0 = now_ns();
	int tries = 0;
	off_t pos;
	do {
		tries++;
		pos = lseek(fd, 0, SEEK_CUR);
	} while (pos < 0 && errno == EIO && now_ns() - t0 < 2000000000ull && usleep(10000) == 0);
	if (pos != CHUNK)
		fail("reconnect: offset after the restart %lld (%s), want %u", (long long)pos,
		     pos < 0 ? strerror(errno) : "", CHUNK);
	else if (tries > 1)
		printf("# reconnect: the first %d calls after the restart failed (EIO), then it "
		       "worked after %" PRIu64 " ms\n",
		       tries - 1, (now_ns() - t0) / 1000000);
	int r = fill_range(fd, CHUNK, CHUNK, 11, true);
	if (r != 0)
		fail("reconnect: write after the restart: %s", strerror(-r));
	else if (fsync(fd) != 0)
		fail("reconnect: fsync after the restart: %s", strerror(errno));
	else
		ok("reconnect: write + fsync on the old fd after the restart");
	if (fstat(fd, &st) != 0 || st.st_size != 2 * CHUNK)
		fail("reconnect: size after the restart %lld, want %u", (long long)st.st_size,
		     2 * CHUNK);
	if (check_range("reconnect: old read-write fd", fd, 0, 2 * CHUNK, 11) == 0)
		ok("reconnect: old read-write fd reads both MiB");
	if (check_range("reconnect: old read-only fd", ro, 0, 2 * CHUNK, 11) == 0)
		ok("reconnect: old read-only fd reads both MiB");
	if (close(fd) != 0 || close(ro) != 0)
		fail("reconnect: close: %s", strerror(errno));
	snprintf(path2, sizeof(path2), "%s.new", argv[1]);
	fd = open(path2, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || fill_range(fd, 0, 12345, 12, false) != 0 ||
	    check_range("reconnect: new file", fd, 0, 12345, 12) != 0 || close(fd) != 0)
		fail("reconnect: a new file after the restart: %s", strerror(errno));
	else
		ok("reconnect: new file after the restart");
	printf("done\n");
	fflush(stdout);
	return nfailed ? 1 : 0;
}

/* tryopen FILE FLAGS(r|w|rw) ERRNO: open must fail with exactly that errno (number). */
static int cmd_tryopen(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int flags = strcmp(argv[2], "r") == 0	? O_RDONLY
		    : strcmp(argv[2], "w") == 0 ? O_WRONLY
						: O_RDWR;
	int want = (int)num(argv[3]);
	int fd = open(argv[1], flags);

	if (fd >= 0) {
		char b[64];
		ssize_t n = read(fd, b, sizeof(b));
		fail("tryopen %s (%s): opened it (read returned %zd), want %s", argv[1], argv[2], n,
		     strerror(want));
	} else if (errno != want) {
		fail("tryopen %s (%s): %s, want %s", argv[1], argv[2], strerror(errno),
		     strerror(want));
	} else {
		ok("tryopen %s (%s): %s", argv[1], argv[2], strerror(errno));
	}
	return nfailed ? 1 : 0;
}

/* ---- POSIX record locks -------------------------------------------------- */

/* Does another process see our write lock on byte 100 of fd?  (A forked child asks.) */
static bool lock_seen_by_other(int fd)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		struct flock fl = {
			.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 1};
		if (fcntl(fd, F_GETLK, &fl) != 0)
			_exit(2);
		_exit(fl.l_type == F_UNLCK ? 1 : 0);
	}
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid");
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/*
 * locks FILE: a process's fcntl locks on a file are dropped by the kernel when
 * the process closes ANY fd of that file; so the library must not open and
 * close the file behind the application's back.  For each call below: take a
 * write lock, make the call, check that another process still sees the lock
 * (SQLite's locking, in every journal mode, depends on it).
 */
static int cmd_locks(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *f = argv[1];
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644), r;
	struct stat st;
	struct flock lk = {.l_whence = SEEK_SET, .l_start = 100, .l_len = 1};
	char b[16];

	if (fd < 0 || write_all(fd, "0123456789abcdef", 16, 0) != 0)
		die("locks: open/write");
	for (int i = 0;; i++) {
		const char *name;
		lk.l_type = F_WRLCK;
		if (fcntl(fd, F_SETLK, &lk) != 0)
			die("locks: F_SETLK");
		switch (i) {
		case 0:
			name = "(no call)";
			break;
		case 1:
			name = "stat(path)";
			r = stat(f, &st);
			break;
		case 2:
			name = "lstat(path)";
			r = lstat(f, &st);
			break;
		case 3:
			name = "fstatat(AT_FDCWD, path)";
			r = fstatat(AT_FDCWD, f, &st, 0);
			break;
		case 4:
			name = "access(path)";
			r = access(f, R_OK);
			break;
		case 5:
			name = "fstat(fd)";
			r = fstat(fd, &st);
			break;
		case 6:
			name = "pread(fd)";
			r = (int)pread(fd, b, sizeof(b), 0);
			break;
		case 7:
			name = "pwrite(fd)";
			r = (int)pwrite(fd, "x", 1, 0);
			break;
		case 8:
			name = "fsync(fd)";
			r = fsync(fd);
			break;
		case 9:
			name = "ftruncate(fd)";
			r = ftruncate(fd, 8192);
			break;
		default:
			name = NULL;
			break;
		}
		if (!name)
			break;
		(void)r;
		if (lock_seen_by_other(fd))
			ok("locks: fcntl lock held after %s", name);
		else
			fail("locks: the process's fcntl lock on the file is gone after %s "
			     "(the library closed an fd of the file?)",
			     name);
		lk.l_type = F_UNLCK;
		fcntl(fd, F_SETLK, &lk);
	}
	close(fd);
	return nfailed ? 1 : 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} cmds[] = {
	{"fill", cmd_fill, "FILE SIZE SEED [hold]"},
	{"verify", cmd_verify, "FILE SIZE SEED"},
	{"forkseq", cmd_forkseq, "FILE"},
	{"forkw", cmd_forkw, "FILE NCHILD NREC"},
	{"recs", cmd_recs, "FILE NWRITERS NREC [END]"},
	{"append", cmd_append, "FILE W NREC READY GATE"},
	{"disjoint", cmd_disjoint, "FILE I N PART SEED READY GATE"},
	{"hold", cmd_hold, "FILE SIZE SEED [unlinked]"},
	{"fsync", cmd_fsync, "FILE"},
	{"loopw", cmd_loopw, "FILE"},
	{"eio", cmd_eio, "FILE DAEMONPID"},
	{"reconnect", cmd_reconnect, "FILE"},
	{"tryopen", cmd_tryopen, "FILE r|w|rw ERRNO"},
	{"locks", cmd_locks, "FILE"},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0) {
			int r = cmds[i].fn(argc - 1, argv + 1);
			if (r == 2)
				fprintf(stderr, "usage: mtool %s %s\n", cmds[i].name,
					cmds[i].usage);
			return r;
		}
	}
	fprintf(stderr, "usage: mtool COMMAND ARGS...; commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "  %s %s\n", cmds[i].name, cmds[i].usage);
	return 2;
}
