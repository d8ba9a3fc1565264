/* SPDX-License-Identifier: MIT */
/*
 * The descriptors ZVFS itself owns in a process: the device, the channels'
 * io_uring rings, the log file.  A program under the preload library may
 * close them or dup2 something onto them (shells do "exec 4<>FILE"; some
 * programs close every fd they did not open), and the engine would then
 * write its store into the program's file.  The library asks this registry
 * before it lets a close or dup2 through, and puts the store away first.
 *
 * Only numbers below ZVFS_FDREG_MAX are tracked; one atomic load per lookup.
 */
#ifndef ZVFS_UTIL_FDREG_H
#define ZVFS_UTIL_FDREG_H

#include <stdbool.h>

#define ZVFS_FDREG_MAX 65536
/* Where zvfs_fd_move_high() puts a descriptor: out of the way of programs that reuse low numbers. */
#define ZVFS_FD_HIGH 512

void zvfs_fdreg_add(int fd);
void zvfs_fdreg_del(int fd);
bool zvfs_fdreg_has(int fd);
/* The lowest registered descriptor at or above fd; -1 when none. */
int zvfs_fdreg_next(int fd);
/*
 * fd moved to the lowest free number at or above ZVFS_FD_HIGH (close-on-exec),
 * the original closed; fd itself when that fails (a low RLIMIT_NOFILE).
 */
int zvfs_fd_move_high(int fd);

#endif
