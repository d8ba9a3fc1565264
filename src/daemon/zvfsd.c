/* SPDX-License-Identifier: MIT */
/*
 * zvfsd - the ZVFS daemon: owns the store, serves every process that runs
 * with libzvfs.so in daemon mode (DESIGN.md D7, D8; protocol ipc/proto.h).
 *
 *   1. options        command line and ZVFS_* environment
 *   2. daemonizing    double fork; the parent returns once the socket listens
 *   3. the socket     stale socket replaced, live one refused, mode 0666
 *   4. main loop      epoll: listening socket, signalfd, client sockets
 *   5. main           mount, serve, unmount
 *
 * See zvfsd.h for how the files and threads divide the work.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/zvfsd.h"
#include "util/log.h"
#include "util/parse.h"
#include "zvfs_version.h"

#define DEFAULT_DEVICE	"/var/lib/zvfs/store.img,size=4G,create"
#define DEFAULT_DIR	"/var/lib/zvfs"
#define DEFAULT_LOG	"/var/log/zvfsd.log"
#define DEFAULT_SPIN_NS 50000ull

struct zvfsd zd = {
	.lfd = -1,
	.epfd = -1,
	.sigfd = -1,
	.stats_lock = PTHREAD_MUTEX_INITIALIZER,
	.reap_lock = PTHREAD_MUTEX_INITIALIZER,
	.reap_cond = PTHREAD_COND_INITIALIZER,
};

/* ---- 1. options ------------------------------------------------------------------------ */

struct opts {
	const char *device;
	const char *socket;
	const char *pidfile;
	uint64_t cache_size;
	uint64_t ring_data;
	uint64_t spin_ns;
	bool no_follow_cpu;
	bool foreground;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zvfsd [OPTIONS]\n"
		"The ZVFS daemon: owns a store and serves programs run with libzvfs.so.\n"
		"\n"
		"  -d, --device SPEC      store device (ZVFS_DEVICE; default %s)\n"
		"  -s, --socket PATH      control socket (ZVFS_SOCKET; default %s)\n"
		"  -c, --cache-size SIZE  page cache for the store (ZVFS_CACHE_SIZE; default "
		"256M)\n"
		"  -f, --foreground       do not daemonize; log to stderr\n"
		"  -l, --log-level LEVEL  error, warn, info, debug (ZVFS_LOG; default info)\n"
		"  -p, --pidfile PATH     write the daemon's pid there once it listens\n"
		"  -r, --ring-data SIZE   request slot data area clients should use (default 1M)\n"
		"      --spin-us N        how long a ring worker spins before sleeping, for "
		"clients\n"
		"                         that come back that fast (default 50)\n"
		"      --no-follow-cpu    leave workers where the scheduler puts them, also while\n"
		"                         busy (default: on the CPU of their client)\n"
		"  -h, --help, -V, --version\n"
		"\n"
		"Without --foreground zvfsd returns once the socket accepts clients; it logs to\n"
		"ZVFS_LOG_FILE or %s.  SIGTERM or `zvfs daemon stop` unmounts and exits.\n",
		DEFAULT_DEVICE, ZVFS_DEFAULT_SOCKET, DEFAULT_LOG);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "zvfsd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'zvfsd --help'.\n");
	exit(2);
}

static uint64_t size_arg(const char *name, const char *v)
{
	uint64_t x;

	if (zvfs_parse_size(v, &x) < 0)
		die_usage("%s: bad size '%s'", name, v);
	return x;
}

static bool set_log_level(const char *v)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(v, names[i]) == 0) {
			zvfs_log_set_level((enum zvfs_log_level)i);
			return true;
		}
	}
	return false;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"device", required_argument, NULL, 'd'},
		{"socket", required_argument, NULL, 's'},
		{"cache-size", required_argument, NULL, 'c'},
		{"foreground", no_argument, NULL, 'f'},
		{"log-level", required_argument, NULL, 'l'},
		{"pidfile", required_argument, NULL, 'p'},
		{"ring-data", required_argument, NULL, 'r'},
		{"spin-us", required_argument, NULL, 'S'},
		{"no-follow-cpu", no_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->device = (v = getenv("ZVFS_DEVICE")) && *v ? v : NULL;
	o->socket = (v = getenv("ZVFS_SOCKET")) && *v ? v : ZVFS_DEFAULT_SOCKET;
	if ((v = getenv("ZVFS_CACHE_SIZE")) && *v)
		o->cache_size = size_arg("ZVFS_CACHE_SIZE", v);
	o->ring_data = ZVFS_RING_DATA_DEFAULT;
	o->spin_ns = DEFAULT_SPIN_NS;
	/* The daemon's lines are rare and worth keeping: info unless told otherwise. */
	if (!getenv("ZVFS_LOG"))
		zvfs_log_set_level(ZVFS_LOG_INFO);
	while ((ch = getopt_long(argc, argv, "d:s:c:fl:p:r:hV", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->device = optarg;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'c':
			o->cache_size = size_arg("--cache-size", optarg);
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'l':
			if (!set_log_level(optarg))
				die_usage("--log-level: '%s' is not error, warn, info or debug",
					  optarg);
			break;
		case 'p':
			o->pidfile = optarg;
			break;
		case 'r':
			o->ring_data = size_arg("--ring-data", optarg);
			if (o->ring_data == 0 || o->ring_data % 4096 ||
			    o->ring_data > ZVFS_RING_DATA_MAX)
				die_usage("--ring-data: a multiple of 4 KiB up to 64 MiB");
			break;
		case 'S': {
			uint64_t us;

			if (zvfs_parse_u64(optarg, &us) < 0 || us > 10000000)
				die_usage("--spin-us: bad number '%s'", optarg);
			o->spin_ns = us * 1000;
			break;
		}
		case 'F':
			o->no_follow_cpu = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("zvfsd %s (protocol %u)\n", ZVFS_VERSION, ZVFS_PROTO_VERSION);
			exit(0);
		default:
			die_usage("unknown option");
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (strlen(o->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		die_usage("socket path too long (at most %zu bytes): %s",
			  sizeof(((struct sockaddr_un *)0)->sun_path) - 1, o->socket);
}

/* ---- 2. daemonizing ----------------------------------------------------------------------- */

/* Write end of the pipe to the waiting parent; -1 in the foreground or once ready. */
static int g_ready_fd = -1;

/* Setup failed: say why (log, and the waiting parent's stderr) and exit 1. */
static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ZVFS_ERR("%s", line);
	if (g_ready_fd >= 0) {
		if (write(g_ready_fd, line, strlen(line)) < 0) {
			/* the parent is gone: the log has it */
		}
	} else {
		fprintf(stderr, "zvfsd: %s\n", line);
	}
	exit(1);
}

/*
 * Fork twice (the daemon is no session leader, so it never gets a terminal
 * again) and return in the grandchild.  The original process waits on a
 * pipe: a newline = the daemon listens (exit 0); other text = the error
 * (printed, exit 1); nothing = the daemon died before it could say.
 */
static void daemonize(void)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "zvfsd: pipe: %s\n", strerror(errno));
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "zvfsd: fork: %s\n", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		char msg[512];
		size_t len = 0;
		ssize_t n;
		int st;

		close(p[1]);
		while (len < sizeof(msg) - 1 &&
		       ((n = read(p[0], msg + len, sizeof(msg) - 1 - len)) > 0 ||
			(n < 0 && errno == EINTR)))
			if (n > 0)
				len += (size_t)n;
		msg[len] = 0;
		waitpid(pid, &st, 0);
		if (len > 0 && msg[0] != '\n') {
			fprintf(stderr, "zvfsd: %s\n", msg);
			exit(1);
		}
		if (len == 0) {
			fprintf(stderr, "zvfsd: the daemon exited during startup (see its log)\n");
			exit(1);
		}
		exit(0);
	}
	close(p[0]);
	if (setsid() < 0)
		_exit(1);
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	g_ready_fd = p[1];
	if (chdir("/") < 0) {
		/* harmless: the daemon opens nothing by a relative path */
	}
}

/* stdio of the daemon: /dev/null in, log file out (stderr is where zvfs_log writes). */
static void detach_stdio(void)
{
	const char *logf = getenv("ZVFS_LOG_FILE");
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log;

	if (!logf || !*logf)
		logf = DEFAULT_LOG;
	log = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(log >= 0 ? log : null, STDERR_FILENO);
		close(null);
	}
	if (log >= 0)
		close(log);
}

/* ---- 3. the socket ------------------------------------------------------------------------- */

static int mkdir_p(const char *dir, mode_t mode)
{
	char tmp[4096];

	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void socket_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, strlen(path));
}

/* 1: a daemon answers there; 0: nothing there (a stale socket is removed); <0: error. */
static int socket_probe(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	socket_addr(&sa, path);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0)
		return 1;
	if (errno != ECONNREFUSED)
		return -errno;
	ZVFS_INFO("%s: stale socket (no daemon answers): replaced", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* The socket file we bound: at exit we remove it only if it is still ours. */
static struct stat g_sock_st;

static void socket_remove(const char *path)
{
	struct stat st;

	/*
	 * After we stopped accepting, a new daemon may have found the socket
	 * stale and bound its own at the same path: leave that one alone.
	 */
	if (lstat(path, &st) < 0 || st.st_dev != g_sock_st.st_dev || st.st_ino != g_sock_st.st_ino)
		return;
	if (unlink(path) < 0)
		ZVFS_WARN("%s: cannot remove: %s", path, strerror(errno));
}

static void socket_listen(const char *path)
{
	struct sockaddr_un sa;
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int fd, r;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		r = mkdir_p(dir, 0755);
		if (r < 0)
			fatal("%s: cannot create the socket's directory: %s", dir, strerror(-r));
	}
	r = socket_probe(path);
	if (r == 1)
		fatal("%s: another zvfsd is listening there; refusing to start", path);
	if (r < 0)
		fatal("%s: %s", path, r == -EEXIST ? "exists and is not a socket" : strerror(-r));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	socket_addr(&sa, path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fatal("%s: bind: %s", path, strerror(errno));
	/*
	 * Anyone may connect: a client reaches only files it already has open,
	 * with that open's rights (the daemon reads everything from the fd it
	 * is given), so the socket itself needs no protection; a umask-made
	 * 0755 socket kept other users (postgres) out in the first prototype.
	 */
	if (chmod(path, 0666) < 0)
		fatal("%s: chmod: %s", path, strerror(errno));
	if (listen(fd, 128) < 0)
		fatal("%s: listen: %s", path, strerror(errno));
	if (lstat(path, &g_sock_st) < 0)
		fatal("%s: %s", path, strerror(errno));
	zd.lfd = fd;
}

/* ---- 4. main loop -------------------------------------------------------------------------- */

/*
 * A descriptor kept in reserve: out of descriptors, accept() fails and the
 * listening socket stays readable, so a level-triggered loop would spin.
 * Closing the spare lets us accept and close the newcomer (it sees EOF).
 */
static int g_spare_fd = -1;

static void refuse_one(void)
{
	static bool told;
	int fd;

	if (g_spare_fd < 0)
		return;
	close(g_spare_fd);
	fd = accept4(zd.lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!told) {
		told = true;
		ZVFS_ERR("out of file descriptors: refusing new clients (raise LimitNOFILE / "
			 "ulimit -n)");
	}
}

static void accept_clients(void)
{
	for (;;) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
		struct zvfsd_client *c;
		int fd = accept4(zd.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				refuse_one();
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				ZVFS_WARN("accept: %s", strerror(errno));
			return;
		}
		c = zvfsd_client_new(fd);
		if (!c) {
			close(fd);
			continue;
		}
		ev.data.ptr = c;
		if (epoll_ctl(zd.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			ZVFS_WARN("epoll_ctl: %s", strerror(errno));
			zvfsd_client_drop(c, "cannot watch its socket");
		}
	}
}

static void serve(void)
{
	struct epoll_event evs[64];

	while (!zd.stopping) {
		int n = epoll_wait(zd.epfd, evs, 64, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ZVFS_ERR("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !zd.stopping; i++) {
			void *p = evs[i].data.ptr;

			if (p == &zd.lfd) {
				accept_clients();
			} else if (p == &zd.sigfd) {
				struct signalfd_siginfo si;

				if (read(zd.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					ZVFS_INFO("signal %u: shutting down", si.ssi_signo);
					zd.stopping = true;
				}
			} else if (evs[i].events & EPOLLIN) {
				zvfsd_client_input(p);
			} else {
				zvfsd_client_drop(p, "hung up");
			}
		}
	}
}

/* ---- 5. main --------------------------------------------------------------------------------- */

static void write_pidfile(const char *path)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		fatal("%s: cannot write the pid file: %s", path, strerror(errno));
	close(fd);
}

/* One socket per client and one io_uring per ring worker: take all the descriptors allowed. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct zvfs_fs_opts fo;
	struct opts o;
	sigset_t mask;
	int r;

	parse_opts(argc, argv, &o);
	if (!o.foreground)
		daemonize();

	/* Signals go to the signalfd; threads created later inherit the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	zd.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (zd.sigfd < 0)
		fatal("signalfd: %s", strerror(errno));
	if (!o.foreground)
		detach_stdio();
	raise_fd_limit();
	g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (!o.device) {
		r = mkdir_p(DEFAULT_DIR, 0755);
		if (r < 0)
			fatal("%s: %s", DEFAULT_DIR, strerror(-r));
		o.device = DEFAULT_DEVICE;
	}
	snprintf(zd.device, sizeof(zd.device), "%s", o.device);
	snprintf(zd.socket_path, sizeof(zd.socket_path), "%s", o.socket);
	zd.uid = getuid();
	zd.ring_data = (uint32_t)o.ring_data;
	zd.spin_ns = o.spin_ns;
	zd.ncpu = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	zd.follow_cpu = !o.no_follow_cpu && sched_getaffinity(0, sizeof(zd.cpus), &zd.cpus) == 0;
	clock_gettime(CLOCK_MONOTONIC, &zd.started);

	/* A live daemon on the socket is refused before the store is touched. */
	r = socket_probe(o.socket);
	if (r == 1)
		fatal("%s: another zvfsd is listening there; refusing to start", o.socket);

	zvfs_fs_opts_init(&fo);
	fo.device = o.device;
	fo.cache_size = o.cache_size;
	fo.format = true;
	r = zvfs_fs_mount(&fo, &zd.fs);
	if (r < 0)
		fatal("store %s: cannot mount: %s%s", o.device, strerror(-r),
		      r == -EBUSY ? " (held by another process: another zvfsd, or a program "
				    "in direct mode)"
				  : "");

	socket_listen(o.socket);
	zd.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (zd.epfd < 0)
		fatal("epoll_create1: %s", strerror(errno));
	ev.data.ptr = &zd.lfd;
	if (epoll_ctl(zd.epfd, EPOLL_CTL_ADD, zd.lfd, &ev) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
	ev.data.ptr = &zd.sigfd;
	if (epoll_ctl(zd.epfd, EPOLL_CTL_ADD, zd.sigfd, &ev) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
	if (o.pidfile)
		write_pidfile(o.pidfile);
	ZVFS_INFO("zvfsd %s: store %s (id %s) on %s, protocol %u", ZVFS_VERSION, o.device,
		  zvfs_fs_store_id(zd.fs), o.socket, ZVFS_PROTO_VERSION);
	if (g_ready_fd >= 0) {
		/* The socket listens: `zvfsd && client` cannot race now. */
		if (write(g_ready_fd, "\n", 1) != 1)
			ZVFS_WARN("cannot tell the starting process that zvfsd is ready");
		close(g_ready_fd);
		g_ready_fd = -1;
	}

	serve();

	/*
	 * Stop accepting first (connecting now fails: ECONNREFUSED); the socket
	 * file goes only after the unmount, so "socket gone" means the store
	 * is released and `zvfs fsck` or a new daemon may take it.
	 */
	epoll_ctl(zd.epfd, EPOLL_CTL_DEL, zd.lfd, NULL);
	close(zd.lfd);
	while (zd.clients)
		zvfsd_client_drop(zd.clients, "daemon shutting down");
	zvfsd_reapers_wait();
	r = zvfs_fs_unmount(zd.fs);
	socket_remove(o.socket);
	if (o.pidfile)
		unlink(o.pidfile);
	if (r < 0) {
		ZVFS_ERR("store %s: unmount: %s", o.device, strerror(-r));
		return 1;
	}
	ZVFS_INFO("store %s unmounted cleanly; exiting", o.device);
	return 0;
}
