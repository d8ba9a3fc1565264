#!/usr/bin/env bash
# Space accounting on a small store: unlink, rename over, unlink while open,
# ENOSPC with nothing written lost (space.py does the work).  Mount only: a
# plain directory does not run out of space here.
# usage: test_space.sh mount SPACE_PY     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" space
space=$2
zt_need python3
py=$(python3 -c 'import sys; print(sys.executable)') || zt_skip "python3 does not run"
size_mb=96
export ZT_DEVICE="$T/store.img,size=${size_mb}M,create"
zt_check "space accounting" zt_run "$py" "$space" "$D" "$size_mb"
zt_finish
