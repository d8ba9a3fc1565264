/* SPDX-License-Identifier: MIT */
/*
 * cmd_daemon.c: the zvfs commands for daemon mode (docs/daemon.md):
 * `zvfs daemon start|stop|status`, `zvfs stat` and `zvfs run`.
 *
 * They talk to zvfsd with the control messages of src/ipc/proto.h directly
 * (a connection, HELLO, one request); none of them touches the store.
 *
 * Map of this file:
 *   1. helpers      option parsing, the socket path, exit codes
 *   2. locating     zvfsd and libzvfs.so (next to this binary, installed, overrides)
 *   3. client       connect + HELLO, one request/reply, reply checks
 *   4. start        run zvfsd (it returns once its socket listens); the start lock
 *   5. stop         SHUTDOWN, then wait for the process and its socket to go
 *   6. status, stat
 *   7. run          start a daemon when none answers, then exec CMD with the library
 *   8. dispatch of `zvfs daemon`
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "ipc/proto.h"
#include "util/parse.h"
#include "zvfs_version.h"

/* ---- 1. helpers ------------------------------------------------------------------------------ */

/*
 * Exit codes of daemon, stat: 0 success, 1 error, 2 usage, 3 no daemon answers (status: LSB
 * "not running"), 4 status unknown (status only: something is there but cannot be asked).
 * run uses env(1)'s codes for its own failures, so they do not look like CMD's: 125 zvfs run
 * failed, 126 CMD cannot be run, 127 CMD not found; otherwise CMD's own status (exec).
 */
#define DX_OK	       0
#define DX_ERR	       1
#define DX_USAGE       2
#define DX_NOT_RUNNING 3
#define DX_UNKNOWN     4
#define RUN_FAILED     125
#define RUN_NOEXEC     126
#define RUN_NOTFOUND   127

#define DEFAULT_TIMEOUT_MS 10000 /* one control round trip */
#define START_TIMEOUT_S	   120	 /* zvfsd formats a new store before it listens */
#define STOP_TIMEOUT_S	   120	 /* unmount writes back the whole cache */
#define DEFAULT_MOUNT	   "/zvfs"

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

/* The socket: --socket, else ZVFS_SOCKET, else the default (the same rule as the library). */
static const char *socket_path(const char *opt)
{
	return opt ? opt : env_or("ZVFS_SOCKET", ZVFS_DEFAULT_SOCKET);
}

/*
 * An absolute form of @path in @out (the working directory prepended; nothing resolved: a
 * socket path is connected by name).  zvfs run hands it to CMD, which may chdir.
 */
static int absolute(const char *path, char *out, size_t len)
{
	char cwd[PATH_MAX];

	if (path[0] == '/') {
		if (strlen(path) >= len)
			return -ENAMETOOLONG;
		strcpy(out, path);
		return 0;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	if ((size_t)snprintf(out, len, "%s/%s", cwd, path) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Seconds as an option value: a positive integer. */
static int parse_seconds(const char *opt, const char *arg, unsigned *out)
{
	uint64_t v;

	if (zvfs_parse_u64(arg, &v) < 0 || v == 0 || v > 86400) {
		fprintf(stderr, PROG ": %s: expected seconds (1..86400): %s\n", opt, arg);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int sys_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* ---- 2. locating zvfsd and libzvfs.so -------------------------------------------------------- */

/* The directory of this executable ("" when /proc is not there). */
static void exe_dir(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	char *slash;

	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	slash = strrchr(out, '/');
	if (slash)
		*slash = '\0';
}

/* @dir/@rel into @out if that is a file with @mode access (X_OK, R_OK).  0 or -ENOENT. */
static int try_path(char *out, size_t len, const char *dir, const char *rel, int mode)
{
	struct stat st;

	if (!dir[0] || (size_t)snprintf(out, len, "%s/%s", dir, rel) >= len)
		return -ENOENT;
	if (stat(out, &st) < 0 || !S_ISREG(st.st_mode) || access(out, mode) < 0)
		return -ENOENT;
	return 0;
}

/*
 * zvfsd: ZVFS_ZVFSD; else ../daemon/zvfsd next to this binary (the build tree); else zvfsd in
 * this binary's directory (installed side by side); else the configured sbindir (where
 * src/daemon/meson.build installs it) or bindir; else PATH.
 */
static int find_zvfsd(char *out, size_t len)
{
	const char *v = getenv("ZVFS_ZVFSD");
	char dir[PATH_MAX];
	const char *path;

	if (v && *v) {
		if (access(v, X_OK) < 0) {
			int err = errno;

			fprintf(stderr, PROG ": ZVFS_ZVFSD=%s: %s\n", v, strerror(err));
			return -err;
		}
		if ((size_t)snprintf(out, len, "%s", v) >= len)
			return -ENAMETOOLONG;
		return 0;
	}
	exe_dir(dir, sizeof(dir));
	if (try_path(out, len, dir, "../daemon/zvfsd", X_OK) == 0 ||
	    try_path(out, len, dir, "zvfsd", X_OK) == 0 ||
	    try_path(out, len, ZVFS_INSTALL_SBINDIR, "zvfsd", X_OK) == 0 ||
	    try_path(out, len, ZVFS_INSTALL_BINDIR, "zvfsd", X_OK) == 0)
		return 0;
	path = getenv("PATH");
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);

		if (n > 0 && n < sizeof(dir)) {
			memcpy(dir, path, n);
			dir[n] = '\0';
			if (try_path(out, len, dir, "zvfsd", X_OK) == 0)
				return 0;
		}
		path = end ? end + 1 : NULL;
	}
	fprintf(stderr,
		PROG ": cannot find zvfsd (not next to %s, not in " ZVFS_INSTALL_SBINDIR
		     " nor PATH); set ZVFS_ZVFSD\n",
		dir[0] ? "this zvfs" : "zvfs");
	return -ENOENT;
}

/*
 * libzvfs.so: ZVFS_LIB; else ../preload/libzvfs.so next to this binary (the build tree); else
 * the configured libdir; else ../lib next to this binary.  Made absolute: CMD may chdir before
 * the dynamic loader of a child program reads LD_PRELOAD.
 */
static int find_lib(char *out, size_t len)
{
	const char *v = getenv("ZVFS_LIB");
	char dir[PATH_MAX];

	if (v && *v) {
		if (access(v, R_OK) < 0 || !realpath(v, dir)) {
			int err = errno;

			fprintf(stderr, PROG ": ZVFS_LIB=%s: %s\n", v, strerror(err));
			return -err;
		}
		if ((size_t)snprintf(out, len, "%s", dir) >= len)
			return -ENAMETOOLONG;
		return 0;
	}
	exe_dir(dir, sizeof(dir));
	if (try_path(out, len, dir, "../preload/libzvfs.so", R_OK) == 0 ||
	    try_path(out, len, ZVFS_INSTALL_LIBDIR, "libzvfs.so", R_OK) == 0 ||
	    try_path(out, len, dir, "../lib/libzvfs.so", R_OK) == 0) {
		char canon[PATH_MAX];

		/* "bin/../preload/x" would work, but the canonical name reads better in ps/env */
		if (realpath(out, canon) && strlen(canon) < len)
			strcpy(out, canon);
		return 0;
	}
	fprintf(stderr,
		PROG ": cannot find libzvfs.so (not next to this zvfs, not in " ZVFS_INSTALL_LIBDIR
		     "); set ZVFS_LIB\n");
	return -ENOENT;
}

/* ---- 3. the protocol client ------------------------------------------------------------------ */

struct dclient {
	int fd;
	uint32_t seq;
	int timeout_ms;
	struct ucred peer; /* SO_PEERCRED: the daemon as the kernel saw it listen */
	struct zvfs_msg_hello_ok hello;
	char err[256]; /* the daemon's ERROR text or our reason, for messages */
};

/* Replies are at most ZVFS_MSG_MAX; the larger buffer lets a longer one be noticed, not cut. */
#define REPLY_BUF (ZVFS_MSG_MAX * 4)

static int dc_send(struct dclient *c, uint16_t type, const void *body, uint32_t len)
{
	return zvfs_msg_send(c->fd, type, ++c->seq, body, len, -1, 0);
}

/*
 * Receive the reply to the last request: of type @want (body into @body, at most @cap bytes;
 * its length in *@got) or ERROR.  Returns 0, the daemon's -errno for ERROR (text in c->err),
 * -ECONNRESET when the daemon closed the connection, -ETIMEDOUT, -EBADMSG for a reply this
 * client cannot read (also logged in c->err).  Descriptors are never expected: any that come
 * are closed.
 */
static int dc_recv(struct dclient *c, uint16_t want, void *body, size_t cap, size_t *got)
{
	static uint8_t pkt[REPLY_BUF];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} cbuf;
	struct iovec iov = {pkt, sizeof(pkt)};
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	struct pollfd pfd = {c->fd, POLLIN, 0};
	struct zvfs_msg_hdr h;
	ssize_t n;
	int r, nfds = 0;

	do {
		r = poll(&pfd, 1, c->timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0) {
		snprintf(c->err, sizeof(c->err), "no reply within %d ms", c->timeout_ms);
		return -ETIMEDOUT;
	}
	do {
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(fd);
				nfds++;
			}
		}
	}
	if (n == 0) {
		snprintf(c->err, sizeof(c->err), "the daemon closed the connection");
		return -ECONNRESET;
	}
	if ((size_t)n < sizeof(h) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		snprintf(c->err, sizeof(c->err), "malformed reply (%zd bytes)", n);
		return -EBADMSG;
	}
	memcpy(&h, pkt, sizeof(h));
	/*
	 * The daemon's own check (proto.c knows every type's size, replies included), on what
	 * arrived: fds included, so a reply carrying any is malformed.  -EPROTO is a header in
	 * another version: still read when it is an ERROR, which then names both versions.
	 */
	r = zvfs_msg_check(pkt, (size_t)n, nfds);
	if (r == -EPROTO && h.type == ZVFS_MSG_ERROR && h.len == sizeof(struct zvfs_msg_error) &&
	    (size_t)n == sizeof(h) + h.len && nfds == 0)
		r = 0;
	if (r < 0) {
		if (r == -EPROTO)
			snprintf(c->err, sizeof(c->err), "the daemon speaks protocol %u",
				 h.version);
		else
			snprintf(c->err, sizeof(c->err),
				 "malformed reply (type %u, %zd bytes, %d fds)", h.type, n, nfds);
		return r;
	}
	if (h.seq != c->seq) {
		snprintf(c->err, sizeof(c->err),
			 "reply to request %" PRIu32 " while waiting for %" PRIu32, h.seq, c->seq);
		return -EBADMSG;
	}
	if (h.type == ZVFS_MSG_ERROR) {
		struct zvfs_msg_error e;

		memcpy(&e, pkt + sizeof(h), sizeof(e));
		e.text[sizeof(e.text) - 1] = '\0';
		snprintf(c->err, sizeof(c->err), "%s", e.text[0] ? e.text : strerror(e.err));
		/* a positive errno the C library knows; anything else is the daemon's bug */
		return e.err > 0 && e.err < 4096 ? -e.err : -EIO;
	}
	if (h.type != want || h.len > cap) {
		snprintf(c->err, sizeof(c->err),
			 "unexpected reply: type %u, %" PRIu32 " bytes (wanted type %u)", h.type,
			 h.len, want);
		return -EBADMSG;
	}
	memcpy(body, pkt + sizeof(h), h.len);
	*got = h.len;
	return 0;
}

/* One request and its reply of type @want.  Same returns as dc_recv(). */
static int dc_call(struct dclient *c, uint16_t type, const void *body, uint32_t len, uint16_t want,
		   void *reply, size_t cap, size_t *got)
{
	int r = dc_send(c, type, body, len);

	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "send: %s", strerror(-r));
		return r;
	}
	return dc_recv(c, want, reply, cap, got);
}

static void dc_close(struct dclient *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/*
 * Connect to @path and say HELLO.  Returns 0 (c->hello, c->peer filled), -ENOENT (no socket
 * file) or -ECONNREFUSED (a socket file nobody listens on): "not running"; -EPROTO (another
 * protocol version: the daemon's text in c->err); other -errno (c->err says what failed).
 */
static int dc_open(struct dclient *c, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct zvfs_msg_hello hello = {.version = ZVFS_PROTO_VERSION, .pid = (uint32_t)getpid()};
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	socklen_t sl = sizeof(c->peer);
	size_t got = 0;
	int r;

	memset(c, 0, sizeof(*c));
	c->timeout_ms = timeout_ms;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(c->err, sizeof(c->err), "socket path longer than %zu bytes",
			 sizeof(sa.sun_path) - 1);
		c->fd = -1;
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = -errno;
		snprintf(c->err, sizeof(c->err), "socket: %s", strerror(-r));
		return r;
	}
	/* connect() to a full backlog blocks: bound it like the replies */
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(c->err, sizeof(c->err), "%s", strerror(-r));
		goto err_close;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &c->peer, &sl) < 0)
		memset(&c->peer, 0, sizeof(c->peer));
	snprintf(hello.comm, sizeof(hello.comm), "zvfs");
	r = dc_call(c, ZVFS_MSG_HELLO, &hello, sizeof(hello), ZVFS_MSG_HELLO_OK, &c->hello,
		    sizeof(c->hello), &got);
	if (r == 0 && got != sizeof(c->hello)) {
		snprintf(c->err, sizeof(c->err), "HELLO_OK of %zu bytes", got);
		r = -EBADMSG;
	}
	if (r < 0)
		goto err_close;
	c->hello.store_id[sizeof(c->hello.store_id) - 1] = '\0';
	return 0;
err_close:
	dc_close(c);
	return r;
}

static bool not_running(int r)
{
	return r == -ENOENT || r == -ECONNREFUSED;
}

/* One line for a dc_open() failure that is not "not running". */
static void dc_open_err(const char *cmd, const char *path, int r, const struct dclient *c)
{
	if (r == -EPROTO)
		fprintf(stderr,
			PROG ": %s: %s: %s (this zvfs speaks protocol %u; restart the daemon with "
			     "the zvfsd of this version: docs/operations.md)\n",
			cmd, path, c->err, ZVFS_PROTO_VERSION);
	else
		fprintf(stderr, PROG ": %s: %s: %s\n", cmd, path,
			c->err[0] ? c->err : strerror(-r));
}

/* ---- 4. start -------------------------------------------------------------------------------- */

struct start_opts {
	const char *device;
	const char *socket;
	const char *cache_size;
	const char *log_level;
	const char *log_file;
	unsigned timeout_s;
};

/*
 * Starts are serialized by an flock on the socket's directory (or its nearest existing
 * ancestor: /run/zvfs does not exist before the first start), so two `zvfs run` at once do not
 * both see "no daemon" and start two zvfsd, the second failing noisily.  Best effort: without
 * the lock (a directory we cannot open), zvfsd's own check still refuses a second daemon.
 */
static int start_lock(const char *sock)
{
	char dir[PATH_MAX];
	char *slash;
	int fd;

	if (strlen(sock) >= sizeof(dir))
		return -1;
	strcpy(dir, sock);
	for (;;) {
		slash = strrchr(dir, '/');
		if (!slash)
			strcpy(dir, ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT || !slash || slash == dir)
			break;
	}
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void start_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* closing the only descriptor releases the flock */
}

/*
 * Run zvfsd (it daemonizes and its first process exits 0 once the socket listens, or non-zero
 * after printing why it cannot start) and wait for that, at most o->timeout_s.  Then confirm
 * with HELLO (c is left connected).  0 or -errno, with a message printed.
 */
static int spawn_zvfsd(const struct start_opts *o, const char *sock, struct dclient *c)
{
	char zvfsd[PATH_MAX];
	const char *argv[16];
	int argc = 0, status, pfd, r;
	pid_t pid;

	r = find_zvfsd(zvfsd, sizeof(zvfsd));
	if (r < 0)
		return r;
	argv[argc++] = zvfsd;
	if (o->device) {
		argv[argc++] = "--device";
		argv[argc++] = o->device;
	}
	argv[argc++] = "--socket";
	argv[argc++] = sock;
	if (o->cache_size) {
		argv[argc++] = "--cache-size";
		argv[argc++] = o->cache_size;
	}
	if (o->log_level) {
		argv[argc++] = "--log-level";
		argv[argc++] = o->log_level;
	}
	argv[argc] = NULL;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		cli_err("daemon start: fork", r);
		return r;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		/*
		 * stdin from /dev/null, stdout to our stderr: the daemon must never hold the
		 * stdout of `$(zvfs daemon start)` (the shell would wait for it forever).
		 */
		if (nul >= 0) {
			dup2(nul, 0);
			if (nul > 2)
				close(nul);
		}
		dup2(2, 1);
		if (o->log_file)
			setenv("ZVFS_LOG_FILE", o->log_file, 1);
		execv(zvfsd, (char *const *)argv);
		fprintf(stderr, PROG ": %s: %s\n", zvfsd, strerror(errno));
		_exit(127);
	}

	/* Wait with a bound: a zvfsd that never reports (a bug, a hung device) must not hang us. */
	pfd = sys_pidfd_open(pid);
	if (pfd >= 0) {
		struct pollfd p = {pfd, POLLIN, 0};

		do {
			r = poll(&p, 1, (int)o->timeout_s * 1000);
		} while (r < 0 && errno == EINTR);
		close(pfd);
		if (r == 0) {
			kill(pid, SIGTERM);
			waitpid(pid, NULL, 0);
			fprintf(stderr,
				PROG ": daemon start: %s did not report ready within %u s; gave up "
				     "(see its log)\n",
				zvfsd, o->timeout_s);
			return -ETIMEDOUT;
		}
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			r = -errno;
			cli_err("daemon start: waitpid", r);
			return r;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFSIGNALED(status))
			fprintf(stderr, PROG ": daemon start: %s was killed by signal %d\n", zvfsd,
				WTERMSIG(status));
		else
			fprintf(stderr,
				PROG ": daemon start: %s failed (exit status %d; its messages are "
				     "above%s%s)\n",
				zvfsd, WEXITSTATUS(status), o->log_file ? " or in " : "",
				o->log_file ? o->log_file : "");
		return -EIO;
	}
	r = dc_open(c, sock, DEFAULT_TIMEOUT_MS);
	if (r < 0) {
		fprintf(stderr,
			PROG ": daemon start: zvfsd reported ready but %s does not answer: %s\n",
			sock, c->err);
		return r;
	}
	return 0;
}

/*
 * Start a daemon on @o->socket unless one answers there.  0 (c connected; *started says
 * whether we started it), or -errno with a message printed; *start_failed then says whether
 * the failure was starting one (rather than a daemon that answers but cannot be used).
 */
static int ensure_daemon(const struct start_opts *o, struct dclient *c, bool *started,
			 bool *start_failed)
{
	const char *sock = socket_path(o->socket);
	int lock, r;

	*started = false;
	*start_failed = false;
	r = dc_open(c, sock, DEFAULT_TIMEOUT_MS);
	if (!not_running(r)) {
		if (r < 0)
			dc_open_err("daemon start", sock, r, c);
		return r;
	}
	lock = start_lock(sock);
	/* Someone else may have started it while we waited for the lock. */
	r = dc_open(c, sock, DEFAULT_TIMEOUT_MS);
	if (not_running(r)) {
		r = spawn_zvfsd(o, sock, c);
		*started = r == 0;
		*start_failed = r < 0;
	} else if (r < 0) {
		dc_open_err("daemon start", sock, r, c);
	}
	start_unlock(lock);
	return r;
}

static void start_usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    zvfs daemon start - start zvfsd, the ZVFS daemon\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs daemon start [--device SPEC] [--socket PATH] [--cache-size SIZE]\n"
		"                      [--log-level LEVEL] [--log-file PATH] [--timeout SEC]\n"
		"                      [--foreground]\n"
		"\n"
		"DESCRIPTION\n"
		"    Runs zvfsd, which mounts the store, listens on the socket and returns once\n"
		"    it does (then this prints its pid and store).  When a daemon already\n"
		"    answers on the socket, says so and succeeds.  zvfsd is found in ZVFS_ZVFSD,\n"
		"    next to this zvfs (../daemon/zvfsd in the build tree, or the same\n"
		"    directory), in " ZVFS_INSTALL_SBINDIR ", or in PATH.\n"
		"\n"
		"OPTIONS\n"
		"    -d, --device SPEC      the store (default ZVFS_DEVICE, else\n"
		"                           /var/lib/zvfs/store.img,size=4G,create)\n"
		"    -s, --socket PATH      control socket (default ZVFS_SOCKET, else\n"
		"                           " ZVFS_DEFAULT_SOCKET ")\n"
		"    -c, --cache-size SIZE  page cache of the store (default ZVFS_CACHE_SIZE, "
		"else\n"
		"                           256M)\n"
		"    -l, --log-level LEVEL  error, warn, info, debug (default ZVFS_LOG, else "
		"info)\n"
		"    -o, --log-file PATH    the daemon's log (default ZVFS_LOG_FILE, else\n"
		"                           /var/log/zvfsd.log)\n"
		"    -t, --timeout SEC      wait at most SEC seconds for zvfsd (default 120)\n"
		"    -f, --foreground       exec zvfsd --foreground instead (logs on stderr; for\n"
		"                           service managers and debugging)\n"
		"    -h, --help             this text\n"
		"\n"
		"EXIT STATUS\n"
		"    0 running (started, or already running), 1 zvfsd failed to start (its\n"
		"    reason is printed above), 2 usage error.\n"
		"\n"
		"EXAMPLES\n"
		"    zvfs daemon start\n"
		"    zvfs daemon start --device /var/tmp/s.img,size=8G,create --cache-size 1G\n");
}

static int daemon_start(int argc, char **argv)
{
	static const struct option opts[] = {
		{"device", required_argument, NULL, 'd'},
		{"socket", required_argument, NULL, 's'},
		{"cache-size", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"log-file", required_argument, NULL, 'o'},
		{"timeout", required_argument, NULL, 't'},
		{"foreground", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct start_opts o = {.timeout_s = START_TIMEOUT_S};
	struct dclient c;
	bool foreground = false, started, start_failed;
	uint64_t v;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "d:s:c:l:o:t:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o.device = optarg;
			break;
		case 's':
			o.socket = optarg;
			break;
		case 'c':
			/* checked here too, so a typo is a usage error, not a daemon that failed */
			if (zvfs_parse_size(optarg, &v) < 0) {
				fprintf(stderr, PROG ": --cache-size: invalid size: %s\n", optarg);
				return DX_USAGE;
			}
			o.cache_size = optarg;
			break;
		case 'l':
			if (strcmp(optarg, "error") && strcmp(optarg, "warn") &&
			    strcmp(optarg, "info") && strcmp(optarg, "debug")) {
				fprintf(stderr,
					PROG ": --log-level: expected error, warn, info or debug: "
					     "%s\n",
					optarg);
				return DX_USAGE;
			}
			o.log_level = optarg;
			break;
		case 'o':
			o.log_file = optarg;
			break;
		case 't':
			if (parse_seconds("--timeout", optarg, &o.timeout_s))
				return DX_USAGE;
			break;
		case 'f':
			foreground = true;
			break;
		case 'h':
			start_usage(stdout);
			return DX_OK;
		default:
			start_usage(stderr);
			return DX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG ": daemon start: unexpected argument: %s\n", argv[optind]);
		return DX_USAGE;
	}
	if (foreground) {
		char zvfsd[PATH_MAX];
		const char *av[16];
		int ac = 0;

		if (find_zvfsd(zvfsd, sizeof(zvfsd)) < 0)
			return DX_ERR;
		av[ac++] = zvfsd;
		av[ac++] = "--foreground";
		if (o.device) {
			av[ac++] = "--device";
			av[ac++] = o.device;
		}
		av[ac++] = "--socket";
		av[ac++] = socket_path(o.socket);
		if (o.cache_size) {
			av[ac++] = "--cache-size";
			av[ac++] = o.cache_size;
		}
		if (o.log_level) {
			av[ac++] = "--log-level";
			av[ac++] = o.log_level;
		}
		av[ac] = NULL;
		if (o.log_file)
			setenv("ZVFS_LOG_FILE", o.log_file, 1);
		execv(zvfsd, (char *const *)av);
		fprintf(stderr, PROG ": %s: %s\n", zvfsd, strerror(errno));
		return DX_ERR;
	}
	r = ensure_daemon(&o, &c, &started, &start_failed);
	if (r < 0)
		return DX_ERR;
	if (started) {
		printf("zvfsd started: pid %" PRIu32 ", store %s, socket %s\n", c.hello.daemon_pid,
		       c.hello.store_id, socket_path(o.socket));
	} else {
		printf("zvfsd already running: pid %" PRIu32 ", store %s, socket %s\n",
		       c.hello.daemon_pid, c.hello.store_id, socket_path(o.socket));
		if (o.device || o.cache_size || o.log_level || o.log_file)
			fprintf(stderr,
				PROG ": daemon start: options not applied to the running daemon "
				     "(stop it first to change them)\n");
	}
	dc_close(&c);
	return DX_OK;
}

/* ---- 5. stop --------------------------------------------------------------------------------- */

/*
 * The daemon's process as this process can wait for it.  SO_PEERCRED gives the pid of the
 * process that listened, in our pid namespace; HELLO_OK gives the daemon's own idea of its
 * pid.  They agree on one host; when they do not (another pid namespace, or a daemon that
 * listened before it forked) the pid is not ours to wait on, and we wait for the socket alone.
 */
static pid_t daemon_pid(const struct dclient *c)
{
	if (c->peer.pid > 0 && (uint32_t)c->peer.pid == c->hello.daemon_pid)
		return c->peer.pid;
	return 0;
}

/* /proc/PID/comm is "zvfsd": what we are about to signal is a daemon, not a reused pid. */
static bool is_zvfsd(pid_t pid)
{
	char path[64], comm[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	return n > 0 && strncmp(comm, "zvfsd\n", 6) == 0;
}

static bool proc_alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* The socket answers no more: the file is gone, or nobody listens on it. */
static bool socket_dead(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (access(path, F_OK) < 0 && errno == ENOENT)
		return true;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r < 0 && (errno == ECONNREFUSED || errno == ENOENT);
}

static void stop_usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    zvfs daemon stop - stop zvfsd cleanly\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs daemon stop [--socket PATH] [--timeout SEC]\n"
		"\n"
		"DESCRIPTION\n"
		"    Asks the daemon to shut down (SHUTDOWN: it stops serving, writes back its\n"
		"    cache, unmounts the store cleanly, removes its socket and exits) and waits\n"
		"    until its process has exited and the socket is gone.  Only root and the\n"
		"    daemon's own user may stop it.  A daemon of another protocol version\n"
		"    cannot be asked: it gets SIGTERM (also a clean stop) instead.  Programs\n"
		"    still using ZVFS files get EIO from then on (until a daemon runs again:\n"
		"    they reconnect).\n"
		"\n"
		"OPTIONS\n"
		"    -s, --socket PATH   control socket (default ZVFS_SOCKET, else\n"
		"                        " ZVFS_DEFAULT_SOCKET ")\n"
		"    -t, --timeout SEC   wait at most SEC seconds (default 120)\n"
		"    -h, --help          this text\n"
		"\n"
		"EXIT STATUS\n"
		"    0 stopped, 1 refused or still running after the timeout, 2 usage error,\n"
		"    3 no daemon answers on the socket (nothing to stop).\n");
}

static int daemon_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL;
	unsigned timeout_s = STOP_TIMEOUT_S;
	struct dclient c;
	uint64_t deadline;
	size_t got;
	uint8_t dummy[8];
	unsigned shown;
	pid_t pid;
	int opt, r, pfd = -1;

	while ((opt = getopt_long(argc, argv, "s:t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 't':
			if (parse_seconds("--timeout", optarg, &timeout_s))
				return DX_USAGE;
			break;
		case 'h':
			stop_usage(stdout);
			return DX_OK;
		default:
			stop_usage(stderr);
			return DX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG ": daemon stop: unexpected argument: %s\n", argv[optind]);
		return DX_USAGE;
	}
	sock = socket_path(sock);
	r = dc_open(&c, sock, DEFAULT_TIMEOUT_MS);
	if (not_running(r)) {
		fprintf(stderr, PROG ": daemon stop: zvfsd is not running (%s: %s)\n", sock,
			r == -ENOENT ? "no such socket" : "nobody listens on it");
		return DX_NOT_RUNNING;
	}
	if (r == -EPROTO && c.peer.pid > 0 && is_zvfsd(c.peer.pid)) {
		/*
		 * A daemon of another protocol version cannot be asked (HELLO comes first), and
		 * stopping it is the first step of an upgrade: every zvfsd takes SIGTERM as a
		 * clean stop.  The kernel checks that we may signal it.
		 */
		pid = c.peer.pid;
		shown = (unsigned)pid;
		pfd = sys_pidfd_open(pid);
		fprintf(stderr, PROG ": daemon stop: %s: %s; stopping pid %u with SIGTERM\n", sock,
			c.err, shown);
		if (kill(pid, SIGTERM) < 0) {
			r = -errno;
			cli_err("daemon stop: SIGTERM", r);
			goto err_close_pfd;
		}
		goto wait;
	}
	if (r < 0) {
		dc_open_err("daemon stop", sock, r, &c);
		return DX_ERR;
	}
	pid = daemon_pid(&c);
	shown = c.hello.daemon_pid;
	/* Taken before SHUTDOWN, so the pid cannot be reused under us while we wait. */
	if (pid > 0)
		pfd = sys_pidfd_open(pid);

	r = dc_call(&c, ZVFS_MSG_SHUTDOWN, NULL, 0, ZVFS_MSG_OK, dummy, sizeof(dummy), &got);
	dc_close(&c);
	/* A daemon may close the connection as it goes instead of replying: that is a yes. */
	if (r < 0 && r != -ECONNRESET) {
		if (r == -EPERM)
			fprintf(stderr,
				PROG ": daemon stop: refused: %s (only root and the daemon's user "
				     "may stop it)\n",
				c.err);
		else
			fprintf(stderr, PROG ": daemon stop: SHUTDOWN: %s\n", c.err);
		goto err_close_pfd;
	}

wait:
	/*
	 * The end is the process's exit: zvfsd stops accepting, drops its clients, unmounts, and
	 * removes its socket last (so a socket gone means the store is released).  With a pidfd,
	 * poll it; without one (an old kernel) poll the pid; without a pid of ours (another pid
	 * namespace) all we can see is the socket going.
	 */
	deadline = now_ms() + (uint64_t)timeout_s * 1000u;
	if (pfd >= 0) {
		struct pollfd p = {pfd, POLLIN, 0};

		do {
			r = poll(&p, 1, (int)timeout_s * 1000);
		} while (r < 0 && errno == EINTR);
		close(pfd);
		if (r > 0)
			pid = 0; /* exited (perhaps not reaped yet: kill(pid, 0) would still see it) */
	}
	while (now_ms() < deadline) {
		if ((pid <= 0 || !proc_alive(pid)) && socket_dead(sock))
			break;
		sleep_ms(20);
	}
	if ((pid > 0 && proc_alive(pid)) || !socket_dead(sock)) {
		fprintf(stderr, PROG ": daemon stop: zvfsd (pid %u) still running after %u s\n",
			shown, timeout_s);
		return DX_ERR;
	}
	if (access(sock, F_OK) == 0)
		fprintf(stderr, PROG ": daemon stop: zvfsd exited but left its socket %s\n", sock);
	printf("zvfsd stopped (pid %u)\n", shown);
	return DX_OK;

err_close_pfd:
	if (pfd >= 0)
		close(pfd);
	return DX_ERR;
}

/* ---- 6. status, stat ------------------------------------------------------------------------- */

static void status_usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    zvfs daemon status - is zvfsd running?\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs daemon status [--socket PATH] [--quiet] [--wait SEC]\n"
		"\n"
		"DESCRIPTION\n"
		"    Connects to the socket and says HELLO; prints the daemon's pid, the store's\n"
		"    id, the protocol version and the daemon's user.\n"
		"\n"
		"OPTIONS\n"
		"    -s, --socket PATH   control socket (default ZVFS_SOCKET, else\n"
		"                        " ZVFS_DEFAULT_SOCKET ")\n"
		"    -q, --quiet         print nothing; the exit status says it\n"
		"    -w, --wait SEC      while not running, ask again for up to SEC seconds\n"
		"                        (a service manager's \"ready\" check)\n"
		"    -h, --help          this text\n"
		"\n"
		"EXIT STATUS\n"
		"    As LSB status: 0 running, 3 not running (no socket, or nobody listens on\n"
		"    it), 4 unknown (the socket cannot be reached, or the daemon speaks another\n"
		"    protocol version or does not answer), 2 usage error.\n");
}

static int daemon_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"quiet", no_argument, NULL, 'q'},
		{"wait", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL;
	struct dclient c;
	unsigned wait_s = 0;
	uint64_t deadline;
	bool quiet = false;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:qw:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'w':
			if (parse_seconds("--wait", optarg, &wait_s))
				return DX_USAGE;
			break;
		case 'h':
			status_usage(stdout);
			return DX_OK;
		default:
			status_usage(stderr);
			return DX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG ": daemon status: unexpected argument: %s\n", argv[optind]);
		return DX_USAGE;
	}
	sock = socket_path(sock);
	deadline = now_ms() + (uint64_t)wait_s * 1000u;
	/* --wait: a service manager's readiness check; only "not running" is worth retrying */
	while (not_running(r = dc_open(&c, sock, DEFAULT_TIMEOUT_MS)) && now_ms() < deadline)
		sleep_ms(50);
	if (not_running(r)) {
		if (!quiet)
			printf("zvfsd is not running (%s: %s)\n", sock,
			       r == -ENOENT ? "no such socket" : "nobody listens on it");
		return DX_NOT_RUNNING;
	}
	if (r < 0) {
		if (!quiet)
			dc_open_err("daemon status", sock, r, &c);
		return DX_UNKNOWN;
	}
	if (!quiet) {
		printf("zvfsd is running\n"
		       "  pid        %" PRIu32 "\n"
		       "  socket     %s\n"
		       "  store      %s\n"
		       "  protocol   %" PRIu32 "\n"
		       "  ring data  %" PRIu32 " KiB\n",
		       c.hello.daemon_pid, sock, c.hello.store_id[0] ? c.hello.store_id : "-",
		       c.hello.version, c.hello.data_size / 1024);
		if (c.peer.pid > 0)
			printf("  user       uid %u, gid %u\n", (unsigned)c.peer.uid,
			       (unsigned)c.peer.gid);
	}
	dc_close(&c);
	return DX_OK;
}

static void stat_usage(FILE *f)
{
	fprintf(f, "NAME\n"
		   "    zvfs stat - the running daemon's counters\n"
		   "\n"
		   "SYNOPSIS\n"
		   "    zvfs stat [--socket PATH]\n"
		   "\n"
		   "DESCRIPTION\n"
		   "    Asks zvfsd for its statistics (STATS) and prints its text: uptime, store,\n"
		   "    per-operation counts and latency, cache hit rate, clients and open files\n"
		   "    (docs/daemon.md explains each line).  Anyone who may connect may ask.\n"
		   "\n"
		   "OPTIONS\n"
		   "    -s, --socket PATH   control socket (default ZVFS_SOCKET, else\n"
		   "                        " ZVFS_DEFAULT_SOCKET ")\n"
		   "    -h, --help          this text\n"
		   "\n"
		   "EXIT STATUS\n"
		   "    0 printed, 1 error, 2 usage error, 3 no daemon answers on the socket.\n");
}

int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static char text[REPLY_BUF];
	const char *sock = NULL;
	struct dclient c;
	size_t got = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			stat_usage(stdout);
			return DX_OK;
		default:
			stat_usage(stderr);
			return DX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG ": stat: unexpected argument: %s\n", argv[optind]);
		return DX_USAGE;
	}
	sock = socket_path(sock);
	r = dc_open(&c, sock, DEFAULT_TIMEOUT_MS);
	if (not_running(r)) {
		fprintf(stderr, PROG ": stat: zvfsd is not running (%s: %s)\n", sock,
			r == -ENOENT ? "no such socket" : "nobody listens on it");
		return DX_NOT_RUNNING;
	}
	if (r < 0) {
		dc_open_err("stat", sock, r, &c);
		return DX_ERR;
	}
	r = dc_call(&c, ZVFS_MSG_STATS, NULL, 0, ZVFS_MSG_STATS_OK, text, sizeof(text) - 1, &got);
	dc_close(&c);
	if (r < 0) {
		fprintf(stderr, PROG ": stat: STATS: %s\n", c.err);
		return DX_ERR;
	}
	/* The text is the daemon's: print it as it is, minus NUL padding, ending in a newline. */
	while (got > 0 && text[got - 1] == '\0')
		got--;
	fwrite(text, 1, got, stdout);
	if (got > 0 && text[got - 1] != '\n')
		fputc('\n', stdout);
	return fflush(stdout) == 0 ? DX_OK : DX_ERR;
}

/* ---- 7. run ---------------------------------------------------------------------------------- */

/*
 * Sanitizer runtimes must come first in LD_PRELOAD (they refuse to start otherwise), so
 * libzvfs.so goes right after one that leads, and first otherwise.
 */
static bool is_sanitizer_runtime(const char *entry, size_t n)
{
	static const char *const names[] = {"libasan", "libtsan", "libubsan", "liblsan",
					    "libclang_rt."};
	const char *base = entry;

	for (size_t i = 0; i < n; i++)
		if (entry[i] == '/')
			base = entry + i + 1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((size_t)(entry + n - base) >= strlen(names[i]) &&
		    strncmp(base, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* The new LD_PRELOAD value with @lib added to @old (NULL or ""): malloc'ed, NULL on ENOMEM. */
static char *compose_preload(const char *lib, const char *old)
{
	size_t first, ll = strlen(lib);
	const char *p;
	char *out;

	if (!old || !*old)
		return strdup(lib);
	/* already there (a nested zvfs run): keep the value as it is */
	for (p = old; *p;) {
		size_t n = strcspn(p, ": ");

		if (n == ll && strncmp(p, lib, n) == 0)
			return strdup(old);
		p += n;
		p += strspn(p, ": ");
	}
	first = strcspn(old, ": ");
	if (is_sanitizer_runtime(old, first)) {
		if (asprintf(&out, "%.*s:%s%s%s", (int)first, old, lib, old[first] ? ":" : "",
			     old[first] ? old + first + strspn(old + first, ": ") : "") < 0)
			return NULL;
	} else if (asprintf(&out, "%s:%s", lib, old) < 0) {
		return NULL;
	}
	return out;
}

/*
 * The default mount /zvfs is made when missing: mode 1777 (sticky, like /tmp), so any user may
 * keep files there and only a file's owner may remove or rename it; each file's own mode is
 * Linux's, as everywhere.  An existing directory is never changed, so an administrator who
 * wants it narrower makes it first.  Other prefixes are the caller's to make.
 */
static void make_default_mount(void)
{
	struct stat st;
	mode_t old;

	if (stat(DEFAULT_MOUNT, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			fprintf(stderr, PROG ": run: " DEFAULT_MOUNT " is not a directory\n");
		return;
	}
	old = umask(0);
	if (mkdir(DEFAULT_MOUNT, 01777) < 0 && errno != EEXIST)
		fprintf(stderr,
			PROG ": run: cannot create " DEFAULT_MOUNT
			     ": %s (as root: mkdir -m 1777 " DEFAULT_MOUNT ")\n",
			strerror(errno));
	umask(old);
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    zvfs run - run a program on ZVFS through the daemon\n"
		"\n"
		"SYNOPSIS\n"
		"    zvfs run [--socket PATH] [--device SPEC] [--mount PREFIX] [--cache-size "
		"SIZE]\n"
		"             [--] CMD [ARG]...\n"
		"\n"
		"DESCRIPTION\n"
		"    When no daemon answers on the socket, starts one (as zvfs daemon start\n"
		"    would, on the default store or --device); then executes CMD with\n"
		"    LD_PRELOAD=libzvfs.so (put first, after a sanitizer runtime that must lead,\n"
		"    ahead of an existing LD_PRELOAD), ZVFS_MODE=daemon, ZVFS_SOCKET and, when\n"
		"    --mount is given, ZVFS_MOUNT.  Files under the mount prefix are then ZVFS\n"
		"    files.  Without --mount (and ZVFS_MOUNT) the prefix is " DEFAULT_MOUNT
		", made\n"
		"    with mode 1777 when missing.  libzvfs.so is found in ZVFS_LIB, next to\n"
		"    this zvfs (../preload/ in the build tree) or in " ZVFS_INSTALL_LIBDIR ".\n"
		"\n"
		"OPTIONS\n"
		"    -s, --socket PATH      control socket (default ZVFS_SOCKET, else\n"
		"                           " ZVFS_DEFAULT_SOCKET ")\n"
		"    -d, --device SPEC      the store of a daemon started here (ignored when one\n"
		"                           already runs)\n"
		"    -m, --mount PREFIX     mount prefix(es), ':'-separated (sets ZVFS_MOUNT)\n"
		"    -c, --cache-size SIZE  page cache of a daemon started here\n"
		"    -h, --help             this text\n"
		"\n"
		"EXIT STATUS\n"
		"    CMD's status; 125 zvfs run itself failed (no daemon and none could be\n"
		"    started, library not found, usage), 126 CMD cannot be executed, 127 CMD\n"
		"    not found (as env(1)).\n"
		"\n"
		"EXAMPLES\n"
		"    zvfs run -- sh -c 'echo hi > /zvfs/f; cat /zvfs/f'\n"
		"    zvfs run --mount /srv/db -- sqlite3 /srv/db/app.db\n");
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"device", required_argument, NULL, 'd'},
		{"mount", required_argument, NULL, 'm'},
		{"cache-size", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct start_opts o = {.timeout_s = START_TIMEOUT_S};
	char sock[PATH_MAX], lib[PATH_MAX];
	const char *mount = NULL;
	struct dclient c;
	char *preload;
	bool started, start_failed;
	uint64_t v;
	int opt, r;

	/* '+': stop at CMD, so its own options are not taken for ours */
	while ((opt = getopt_long(argc, argv, "+s:d:m:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o.socket = optarg;
			break;
		case 'd':
			o.device = optarg;
			break;
		case 'm':
			if (optarg[0] != '/') {
				fprintf(stderr, PROG ": run: --mount: not an absolute path: %s\n",
					optarg);
				return RUN_FAILED;
			}
			mount = optarg;
			break;
		case 'c':
			if (zvfs_parse_size(optarg, &v) < 0) {
				fprintf(stderr, PROG ": run: --cache-size: invalid size: %s\n",
					optarg);
				return RUN_FAILED;
			}
			o.cache_size = optarg;
			break;
		case 'h':
			run_usage(stdout);
			return DX_OK;
		default:
			run_usage(stderr);
			return RUN_FAILED;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, PROG ": run: no command (see zvfs run --help)\n");
		return RUN_FAILED;
	}
	r = absolute(socket_path(o.socket), sock, sizeof(sock));
	if (r < 0) {
		cli_err("run: socket path", r);
		return RUN_FAILED;
	}
	o.socket = sock;
	if (find_lib(lib, sizeof(lib)) < 0)
		return RUN_FAILED;

	r = ensure_daemon(&o, &c, &started, &start_failed);
	if (r < 0) {
		if (start_failed)
			fprintf(stderr, PROG ": run: no daemon on %s and none could be started%s\n",
				sock,
				geteuid() != 0
					? " (root starts it: zvfs daemon start, or systemctl "
					  "start zvfsd)"
					: "");
		return RUN_FAILED;
	}
	if (!started && o.device)
		fprintf(stderr,
			PROG ": run: a daemon already serves %s (store %s); --device %s not used\n",
			sock, c.hello.store_id, o.device);
	dc_close(&c);

	if (mount) {
		setenv("ZVFS_MOUNT", mount, 1);
	} else {
		const char *m = getenv("ZVFS_MOUNT");

		if (!m || !*m || strcmp(m, DEFAULT_MOUNT) == 0)
			make_default_mount();
	}
	preload = compose_preload(lib, getenv("LD_PRELOAD"));
	if (!preload) {
		cli_err("run", -ENOMEM);
		return RUN_FAILED;
	}
	if (setenv("LD_PRELOAD", preload, 1) < 0 || setenv("ZVFS_MODE", "daemon", 1) < 0 ||
	    setenv("ZVFS_SOCKET", sock, 1) < 0) {
		cli_err("run: setenv", -errno);
		free(preload);
		return RUN_FAILED;
	}
	free(preload);
	fflush(NULL);
	execvp(argv[optind], argv + optind);
	r = errno;
	fprintf(stderr, PROG ": run: %s: %s\n", argv[optind], strerror(r));
	return r == ENOENT ? RUN_NOTFOUND : RUN_NOEXEC;
}

/* ---- 8. zvfs daemon -------------------------------------------------------------------------- */

static void daemon_usage(FILE *f)
{
	fprintf(f, "NAME\n"
		   "    zvfs daemon - start, stop and query zvfsd\n"
		   "\n"
		   "SYNOPSIS\n"
		   "    zvfs daemon start [--device SPEC] [--socket PATH] [--cache-size SIZE]\n"
		   "                      [--log-level LEVEL] [--log-file PATH] [--timeout SEC]\n"
		   "                      [--foreground]\n"
		   "    zvfs daemon stop [--socket PATH] [--timeout SEC]\n"
		   "    zvfs daemon status [--socket PATH] [--quiet] [--wait SEC]\n"
		   "\n"
		   "DESCRIPTION\n"
		   "    \"zvfs daemon COMMAND --help\" describes each; docs/daemon.md and\n"
		   "    docs/operations.md describe the daemon.\n");
}

int cmd_daemon(int argc, char **argv)
{
	if (argc < 2) {
		daemon_usage(stderr);
		return DX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		daemon_usage(stdout);
		return DX_OK;
	}
	/* as in main(): each subcommand's getopt_long starts after its own name */
	if (strcmp(argv[1], "start") == 0)
		return daemon_start(argc - 1, argv + 1);
	if (strcmp(argv[1], "stop") == 0)
		return daemon_stop(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return daemon_status(argc - 1, argv + 1);
	fprintf(stderr, PROG ": daemon: unknown command: %s (see zvfs daemon --help)\n", argv[1]);
	return DX_USAGE;
}
