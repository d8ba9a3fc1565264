#!/usr/bin/env bash
# Run one test program under libzvfs.so (direct mode) on a fresh store and mount prefix.
# usage: run_preloaded.sh PROG ARG...      exit: the program's (0 pass, 1 fail, 77 skip)
# @DIR@ in an argument becomes a directory under the mount prefix.
# Environment (tests/crash/meson.build): ZT_LIB libzvfs.so, ZT_SANITIZE meson's b_sanitize,
# ZT_CC the C compiler (sanitizer runtimes); optional ZVFS_CACHE_SIZE, ZT_KEEP=1 keeps the dir.
set -u
[ -n "${ZT_LIB:-}" ] && [ -f "$ZT_LIB" ] || { echo "FAIL: ZT_LIB not set or missing"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-crash.XXXXXX") || exit 1
trap '[ -n "${ZT_KEEP:-}" ] && echo "# kept $T" || rm -rf "$T"' EXIT
mkdir -p "$T/mnt/d" || exit 1

# A sanitizer runtime must be the first object of a process that loads an instrumented library.
preload=$ZT_LIB
asan=${ASAN_OPTIONS:-}
case ${ZT_SANITIZE:-none} in
none | "") ;;
*address*)
	preload=$(${ZT_CC:-cc} -print-file-name=libasan.so):$ZT_LIB
	asan=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	;;
*undefined*) preload=$(${ZT_CC:-cc} -print-file-name=libubsan.so):$ZT_LIB ;;
*) echo "SKIP: sanitizer '$ZT_SANITIZE' not supported by this harness"; exit 77 ;;
esac

prog=$1
shift
args=()
for a in "$@"; do
	a=${a//@DIR@/$T/mnt/d}
	args+=("$a")
done
echo "# $prog ${args[*]} (cache ${ZVFS_CACHE_SIZE:-default})"
env LD_PRELOAD="$preload" ASAN_OPTIONS="$asan" ZVFS_MOUNT="$T/mnt" ZVFS_MODE=direct \
	ZVFS_DEVICE="$T/store.img,size=1G,create" ZVFS_LOG_FILE="$T/zvfs.log" "$prog" "${args[@]}"
rc=$?
if [ $rc -ne 0 ] && [ -s "$T/zvfs.log" ]; then
	echo "# last lines of the library's log:"
	tail -n 30 "$T/zvfs.log" | sed 's/^/#   /'
fi
exit $rc
