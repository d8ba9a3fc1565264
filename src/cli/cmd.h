/* SPDX-License-Identifier: MIT */
/*
 * Shared parts of the zvfs command-line tool (zvfs.c): the subcommand entry
 * points and small helpers for messages, device opening and JSON output.
 */
#ifndef ZVFS_CLI_CMD_H
#define ZVFS_CLI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "zvfs/bdev.h"

#define PROG "zvfs"

/* fsck(8) exit codes, ORed together. */
#define FSCK_OK		 0
#define FSCK_CORRECTED	 1
#define FSCK_UNCORRECTED 4
#define FSCK_OPERATIONAL 8
#define FSCK_USAGE	 16

/* Each returns the process exit status. */
int cmd_mkfs(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_fsck(int argc, char **argv);

/* "zvfs: <what>: <strerror(-err)>" on stderr. */
void cli_err(const char *what, int err);

/*
 * Open @spec, read-only if @ro (",ro" is appended).  Prints the device's own
 * message on failure and returns its -errno.
 */
int cli_open(const char *spec, bool ro, struct zvfs_bdev **bdevp);

/* A JSON string literal of @len bytes of (assumed UTF-8) text, escaped. */
void json_str(FILE *f, const void *s, size_t len);

/* Lower-case hex of @len bytes. */
void put_hex(FILE *f, const void *p, size_t len);

/* @len bytes are UTF-8 without control characters (one trailing NUL allowed). */
bool is_text(const uint8_t *p, size_t len);

/* cmd_daemon.c: zvfs daemon start|stop|status, zvfs stat, zvfs run. */
int cmd_daemon(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif /* ZVFS_CLI_CMD_H */
