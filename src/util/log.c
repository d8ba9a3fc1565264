/* SPDX-License-Identifier: MIT */
#include "util/log.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/fdreg.h"

/*
 * The log is linked into libzvfs.so, which defines open() and write() itself;
 * raw system calls keep a log line from re-entering the preload library (and
 * from landing in a ZVFS file when stderr is one).
 */

/* -1 = not read yet; the environment is read once (programs may overwrite it). */
static atomic_int g_level = -1;
static atomic_int g_fd = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* ZVFS_LOG_FILE as read at start (the environment may change later) */
static char g_path[4096];

/* The log file opened at a high number and registered (util/fdreg.h); -1 on failure. */
static int open_log_file(void)
{
	int f = (int)syscall(SYS_openat, AT_FDCWD, g_path,
			     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (f < 0)
		return -1;
	f = zvfs_fd_move_high(f);
	zvfs_fdreg_add(f);
	return f;
}

static void log_init(void)
{
	const char *v = getenv("ZVFS_LOG");
	int level = ZVFS_LOG_WARN;
	int fd = STDERR_FILENO;

	if (v) {
		for (int i = 0; i <= ZVFS_LOG_DEBUG; i++)
			if (strcasecmp(v, level_names[i]) == 0)
				level = i;
	}
	v = getenv("ZVFS_LOG_FILE");
	if (v && *v && strlen(v) < sizeof(g_path)) {
		int f;

		strcpy(g_path, v);
		f = open_log_file();
		if (f >= 0)
			fd = f;
	}
	atomic_store(&g_fd, fd);
	atomic_store(&g_level, level);
}

enum zvfs_log_level zvfs_log_get_level(void)
{
	if (atomic_load_explicit(&g_level, memory_order_acquire) < 0)
		log_init();
	return (enum zvfs_log_level)atomic_load(&g_level);
}

void zvfs_log_set_level(enum zvfs_log_level level)
{
	if (atomic_load(&g_level) < 0)
		log_init();
	atomic_store(&g_level, (int)level);
}

bool zvfs_log_release_fd(int fd)
{
	int f;

	if (fd == STDERR_FILENO || fd != atomic_load(&g_fd))
		return false;
	f = open_log_file();
	/* none: stderr, rather than whatever the program puts on fd */
	if (!atomic_compare_exchange_strong(&g_fd, &fd, f >= 0 ? f : STDERR_FILENO)) {
		if (f >= 0) {
			zvfs_fdreg_del(f);
			syscall(SYS_close, f);
		}
		return true; /* another thread moved it already */
	}
	zvfs_fdreg_del(fd);
	return true;
}

void zvfs_vlog(enum zvfs_log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	if ((int)level > (int)zvfs_log_get_level())
		return;
	n = snprintf(line, sizeof(line), "zvfs[%d]: %s: ", (int)getpid(), level_names[level]);
	if (n < 0)
		return;
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write keeps lines from different threads and processes whole. */
	if (syscall(SYS_write, atomic_load(&g_fd), line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

void zvfs_log(enum zvfs_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zvfs_vlog(level, fmt, ap);
	va_end(ap);
}
