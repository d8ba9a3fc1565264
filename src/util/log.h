/* SPDX-License-Identifier: MIT */
/*
 * Logging: one line per event to stderr (or ZVFS_LOG_FILE), "zvfs[pid]: LEVEL: text".
 *
 * Safe to call from the preload library's wrappers: it formats into a stack
 * buffer with vsnprintf and emits the line with one write(2); it never calls
 * malloc or stdio streams.  The level comes from ZVFS_LOG (error, warn, info,
 * debug; default warn), read once.
 */
#ifndef ZVFS_UTIL_LOG_H
#define ZVFS_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum zvfs_log_level {
	ZVFS_LOG_ERROR = 0,
	ZVFS_LOG_WARN = 1,
	ZVFS_LOG_INFO = 2,
	ZVFS_LOG_DEBUG = 3,
};

void zvfs_log(enum zvfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void zvfs_vlog(enum zvfs_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Current threshold; messages above it are dropped. */
enum zvfs_log_level zvfs_log_get_level(void);
void zvfs_log_set_level(enum zvfs_log_level level);
/*
 * fd is about to be closed or replaced by the program (the preload library
 * asks first): if it is the log file's, the log moves to a new descriptor of
 * the same file.  True when fd was the log's.
 */
bool zvfs_log_release_fd(int fd);

#define ZVFS_ERR(...)	zvfs_log(ZVFS_LOG_ERROR, __VA_ARGS__)
#define ZVFS_WARN(...)	zvfs_log(ZVFS_LOG_WARN, __VA_ARGS__)
#define ZVFS_INFO(...)	zvfs_log(ZVFS_LOG_INFO, __VA_ARGS__)
#define ZVFS_DEBUG(...) zvfs_log(ZVFS_LOG_DEBUG, __VA_ARGS__)
/*
 * A warning logged once per call site and process: for refusals a program may
 * meet in a loop (it falls back, and one line says why).
 */
#define ZVFS_WARN_ONCE(...)                                                                        \
	do {                                                                                       \
		static bool warned_; /* __atomic builtins take plain bool */                       \
		if (!__atomic_exchange_n(&warned_, true, __ATOMIC_RELAXED))                        \
			zvfs_log(ZVFS_LOG_WARN, __VA_ARGS__);                                      \
	} while (0)

#endif /* ZVFS_UTIL_LOG_H */
