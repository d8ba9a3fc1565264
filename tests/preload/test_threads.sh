#!/usr/bin/env bash
# Data semantics under threads (threads.c): atomic O_APPEND, shared offsets
# through dup, concurrent disjoint pwrite, offsets beyond 4 GiB.
# usage: test_threads.sh mount|plain THREADS     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" threads
prog=$2
zt_check "threads" zt_run "$prog" "$D"
zt_eq "file beyond 4 GiB: size without the library" $(((5 << 30) + 12345 + 8192)) \
	"$(stat -c %s "$D/large_offsets")"
zt_finish
