/* SPDX-License-Identifier: MIT */
/*
 * wrap_proc.c - fork, vfork, _Fork, the exec family, posix_spawn, system,
 * popen, _exit.
 *
 * Direct mode: one process holds the store.  Before exec the store is
 * always written back and given up (the new program recognizes its
 * inherited ZVFS fds by their xattr and the kernel's offsets); before a
 * child is made it is given up when that is safe (core.c,
 * zp_core_prepare_children()).  fork() runs that through pthread_atfork;
 * _Fork, posix_spawn, system and popen run no atfork handlers, so they do
 * it here.
 */
#include "preload/preload.h"

#include <stdlib.h>
#include <string.h>

/* Shared with core.c (preload.h, not mine, has no place for them). */
void zp_core_prepare_children(void);
void zp_core_after_exec_failed(void);
void zp_core_shutdown(bool flush_stdio);

extern char **environ;

ZP_EXPORT pid_t fork(void)
{
	/* glibc's fork runs our atfork handlers (core.c). */
	return ZP_REAL(fork)();
}

/* A real fork: POSIX allows vfork to be fork, and our atfork work needs two address spaces. */
ZP_EXPORT pid_t vfork(void)
{
	return ZP_REAL(fork)();
}

ZP_EXPORT pid_t _Fork(void)
{
	pid_t pid;

	if (zp_bypass())
		return ZP_REAL(_Fork)();
	zp_core_prepare_children();
	pid = ZP_REAL(_Fork)();
	if (pid == 0)
		zp_engine_forget_after_fork();
	return pid;
}

/* ---- exec ------------------------------------------------------------------------- */

static void before_exec(void)
{
	if (!zp_bypass())
		zp_engine_shutdown();
}

static int after_exec_failed(int r)
{
	int e = errno;

	if (!zp_bypass())
		zp_core_after_exec_failed();
	errno = e;
	return r;
}

ZP_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	before_exec();
	return after_exec_failed(ZP_REAL(execve)(path, argv, envp));
}

ZP_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		       int flags)
{
	before_exec();
	return after_exec_failed(ZP_REAL(execveat)(dirfd, path, argv, envp, flags));
}

ZP_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	before_exec();
	return after_exec_failed(ZP_REAL(fexecve)(fd, argv, envp));
}

ZP_EXPORT int execv(const char *path, char *const argv[])
{
	before_exec();
	return after_exec_failed(ZP_REAL(execv)(path, argv));
}

ZP_EXPORT int execvp(const char *file, char *const argv[])
{
	before_exec();
	return after_exec_failed(ZP_REAL(execvp)(file, argv));
}

ZP_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	before_exec();
	return after_exec_failed(ZP_REAL(execvpe)(file, argv, envp));
}

/*
 * glibc's execl* call hidden aliases we never see: collect the arguments
 * into an argv on the stack and take the execv* path above.
 */
#define COUNT_ARGS(last, nout)                                                                     \
	do {                                                                                       \
		va_list ap_;                                                                       \
		va_start(ap_, last);                                                               \
		nout = 1;                                                                          \
		while (va_arg(ap_, char *) != NULL)                                                \
			nout++;                                                                    \
		va_end(ap_);                                                                       \
	} while (0)

ZP_EXPORT int execl(const char *path, const char *arg, ...)
{
	size_t n;
	va_list ap;

	COUNT_ARGS(arg, n);
	{
		char *argv[n + 1];

		argv[0] = (char *)arg;
		va_start(ap, arg);
		for (size_t i = 1; i <= n; i++)
			argv[i] = va_arg(ap, char *);
		va_end(ap);
		return execve(path, argv, environ);
	}
}

ZP_EXPORT int execlp(const char *file, const char *arg, ...)
{
	size_t n;
	va_list ap;

	COUNT_ARGS(arg, n);
	{
		char *argv[n + 1];

		argv[0] = (char *)arg;
		va_start(ap, arg);
		for (size_t i = 1; i <= n; i++)
			argv[i] = va_arg(ap, char *);
		va_end(ap);
		return execvpe(file, argv, environ);
	}
}

ZP_EXPORT int execle(const char *path, const char *arg, ...)
{
	char *const *envp;
	size_t n;
	va_list ap;

	COUNT_ARGS(arg, n);
	{
		char *argv[n + 1];

		argv[0] = (char *)arg;
		va_start(ap, arg);
		for (size_t i = 1; i <= n; i++)
			argv[i] = va_arg(ap, char *);
		envp = va_arg(ap, char *const *);
		va_end(ap);
		return execve(path, argv, envp);
	}
}

/* ---- spawn: glibc clones with CLONE_VFORK and runs no atfork handlers --------------- */

static void before_spawn(void)
{
	if (!zp_bypass())
		zp_core_prepare_children();
}

ZP_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			  const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	before_spawn();
	return ZP_REAL(posix_spawn)(pid, path, fa, attr, argv, envp);
}

ZP_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	before_spawn();
	return ZP_REAL(posix_spawnp)(pid, file, fa, attr, argv, envp);
}

ZP_EXPORT int system(const char *cmd)
{
	before_spawn();
	return ZP_REAL(system)(cmd);
}

ZP_EXPORT FILE *popen(const char *cmd, const char *mode)
{
	before_spawn();
	return ZP_REAL(popen)(cmd, mode);
}

/* ---- _exit: no stdio flush (that is its contract), but the store is written back -- */

ZP_EXPORT void _exit(int status)
{
	if (!zp_bypass())
		zp_core_shutdown(false);
	ZP_REAL(_exit)(status);
}

ZP_EXPORT void _Exit(int status)
{
	if (!zp_bypass())
		zp_core_shutdown(false);
	ZP_REAL(_Exit)(status);
}
