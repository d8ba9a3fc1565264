#!/usr/bin/env bash
# Every entry point of POSIX.md's table, proven to reach ZVFS (entrypoints.c).
# usage: test_entrypoints.sh mount|plain ENTRYPOINTS     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" entrypoints
prog=$2
mkdir -p "$T/outside"
if [ "$ZT_TARGET" = mount ]; then kind=zvfs; else kind=plain; fi
zt_run "$prog" "$kind" "$D" "$T/outside" >"$T/ep.out" 2>&1
st=$?
cat "$T/ep.out"
# Every line is "ok NAME", "FAIL NAME: why" or a "#" comment; anything else
# (a crash message, a sanitizer report) fails too.
zt_eq "entrypoints: exit status" 0 "$st"
zt_eq "entrypoints: no FAIL line" 0 "$(grep -c '^FAIL' "$T/ep.out")"
zt_eq "entrypoints: no unexpected output" "" "$(grep -v -e '^ok ' -e '^FAIL ' -e '^#' "$T/ep.out")"
n=$(grep -c '^ok ' "$T/ep.out")
zt_check "entrypoints: ran to the end ($n ok)" grep -q '^# [0-9]* passed' "$T/ep.out"
zt_finish
