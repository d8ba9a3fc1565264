#!/usr/bin/env bash
# Threads doing file I/O while others malloc/free, dlsym and printf, with
# ZVFS_LOG=debug: no deadlock (alarm in the program, the test's timeout), no
# recursion, right data.
# usage: test_reentrancy.sh mount|plain REENTRANCY     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" reentrancy
prog=$2
ZVFS_LOG=debug zt_run "$prog" "$D" >"$T/re.out" 2>"$T/re.err"
st=$?
tail -n 3 "$T/re.out"
head -n 40 "$T/re.err"
zt_eq "reentrancy: exit status (142 = alarm: deadlock)" 0 "$st"
zt_check "reentrancy: debug logging was on" test -s "$ZT_LOG" -o "$ZT_TARGET" = plain
zt_finish
