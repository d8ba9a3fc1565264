#!/usr/bin/env bash
# libaio with a reaper thread that reuses each iocb the moment it completes
# (aio_race.c): the library's completion delivery must not overwrite it.
# usage: test_aio.sh mount|plain AIO_RACE     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" aio
prog=$2
zt_check "aio_race" zt_run "$prog" "$D"
zt_finish
