#!/usr/bin/env bash
# zvfs daemon start|stop|status, zvfs stat and zvfs run against the real zvfsd (docs/daemon.md),
# on a temp image, socket and mount.  zvfs finds zvfsd and libzvfs.so itself (next to it in the
# build tree), so this also tests the lookup.
# usage: test_daemon_cli.sh ZVFS           exit 0 pass, 1 fail, 77 skip
# Environment (tests/tools/meson.build): ZT_SANITIZE, ZT_CC.
set -u
zvfs=$1
bindir=$(cd "$(dirname "$zvfs")" && pwd)
[ -x "$bindir/../daemon/zvfsd" ] || { echo "SKIP: zvfsd not built yet ($bindir/../daemon/zvfsd)"; exit 77; }
[ -f "$bindir/../preload/libzvfs.so" ] || { echo "SKIP: libzvfs.so not built"; exit 77; }
for p in getfattr od; do
	command -v $p >/dev/null || { echo "SKIP: $p not installed"; exit 77; }
done
unset ZVFS_ZVFSD ZVFS_LIB ZVFS_MOUNT ZVFS_SOCKET ZVFS_DEVICE ZVFS_MODE ZVFS_DISABLE

T=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-dcli.XXXXXX") || exit 1
S=$T/zvfsd.sock
IMG=$T/store.img
M=$T/mnt
LOG=$T/zvfsd.log
# the daemons started here and the library in the programs run here log to the test's file
export M ZVFS_LOG_FILE=$LOG
mkdir -p "$M" || exit 1
pid=
cleanup() {
	# Only the daemon this test started, by its pid; then the temp dir.
	if "$zvfs" daemon status --quiet --socket "$S"; then
		"$zvfs" daemon stop --socket "$S" --timeout 30 >/dev/null 2>&1
	fi
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	if [ -n "${ZT_KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
# meson's timeout sends SIGTERM: exit through the EXIT trap so no daemon is left behind
trap 'exit 1' TERM INT
fail=0
check() { # name, status of the condition
	if [ "$2" -eq 0 ]; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi
}
show() { sed 's/^/#   /' "$@"; }
# A process that has exited: gone, or a zombie its (re)parent has not reaped yet.
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# Sanitizer builds: the runtime must lead LD_PRELOAD; zvfs run keeps it first (what this checks).
export ASAN_OPTIONS=${ASAN_OPTIONS:-}
case ${ZT_SANITIZE:-none} in
none | "") ;;
*address*)
	export LD_PRELOAD=$(${ZT_CC:-cc} -print-file-name=libasan.so)
	export ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}
	;;
*undefined*) export LD_PRELOAD=$(${ZT_CC:-cc} -print-file-name=libubsan.so) ;;
*) echo "SKIP: sanitizer '$ZT_SANITIZE' not supported here"; exit 77 ;;
esac

# ---- nothing running
"$zvfs" daemon status --socket "$S" >"$T/out" 2>&1
rc=$?
show "$T/out"
check "status with no daemon: exit 3 (got $rc)" $([ $rc -eq 3 ]; echo $?)
grep -q 'not running' "$T/out"
check "status with no daemon: says not running" $?
"$zvfs" daemon stop --socket "$S" >"$T/out" 2>&1
rc=$?
show "$T/out"
check "stop with no daemon: fails, exit 3 (got $rc)" $([ $rc -eq 3 ]; echo $?)
grep -q "zvfs: daemon stop: zvfsd is not running ($S: no such socket)" "$T/out"
check "stop with no daemon: one clear line naming the socket" $?
"$zvfs" stat --socket "$S" >"$T/out" 2>&1
check "stat with no daemon: exit 3" $([ $? -eq 3 ]; echo $?)
ZVFS_ZVFSD=$T/no-such-zvfsd "$zvfs" daemon start --socket "$S" >"$T/out" 2>&1
rc=$?
show "$T/out"
check "start with a missing ZVFS_ZVFSD: exit 1 naming it (got $rc)" \
	$([ $rc -eq 1 ] && grep -q "ZVFS_ZVFSD=$T/no-such-zvfsd" "$T/out"; echo $?)

# ---- start, start again, status, stat
"$zvfs" daemon start --device "$IMG,size=256M,create" --socket "$S" --log-file "$LOG" \
	>"$T/out" 2>"$T/err"
rc=$?
show "$T/out" "$T/err"
check "start: exit 0 (got $rc)" $rc
[ $rc -eq 0 ] || { show "$LOG" 2>/dev/null; exit 1; }
pid=$(sed -n 's/^zvfsd started: pid \([0-9]*\),.*/\1/p' "$T/out")
check "start: prints the pid ($pid) of a live process" $([ -n "$pid" ] && kill -0 "$pid"; echo $?)
check "start: the socket exists" $([ -S "$S" ]; echo $?)
"$zvfs" daemon start --device "$IMG,size=256M,create" --socket "$S" >"$T/out" 2>"$T/err"
rc=$?
show "$T/out" "$T/err"
check "start again: exit 0, already running, same pid" \
	$([ $rc -eq 0 ] && grep -q "already running: pid $pid," "$T/out"; echo $?)
"$zvfs" daemon status --socket "$S" >"$T/out" 2>&1
rc=$?
show "$T/out"
check "status: exit 0 (got $rc)" $rc
check "status: pid and protocol version" \
	$(grep -Eq "pid +$pid\$" "$T/out" && grep -Eq 'protocol +1$' "$T/out"; echo $?)
"$zvfs" stat --socket "$S" >"$T/out" 2>&1
rc=$?
show "$T/out"
check "stat: exit 0 with text (got $rc)" $([ $rc -eq 0 ] && [ -s "$T/out" ]; echo $?)

# ---- run: a shell writes and reads through the daemon; a second process sees the data
out=$("$zvfs" run --socket "$S" --mount "$M" -- sh -c 'echo hi > $M/f; cat $M/f' 2>"$T/err")
rc=$?
show "$T/err"
check "run: sh writes and reads \$M/f: exit 0, 'hi' (got $rc, '$out')" \
	$([ $rc -eq 0 ] && [ "$out" = hi ]; echo $?)
getfattr --absolute-names -n user.zvfs.blob_id "$M/f" >/dev/null 2>&1
check "run: \$M/f is a ZVFS placeholder (user.zvfs.blob_id)" $?
raw=$(od -An -tx1 "$M/f" | tr -d ' \n')
check "run: the Linux file holds no data (read without the library: '$raw')" \
	$([ "$raw" = 000000 ]; echo $?)
out=$("$zvfs" run --socket "$S" --mount "$M" -- cat "$M/f" 2>"$T/err")
check "run: another process reads 'hi' (got '$out')" $([ "$out" = hi ]; echo $?)
out=$("$zvfs" run --socket "$S" --mount "$M" -- sh -c 'echo "$LD_PRELOAD|$ZVFS_MODE|$ZVFS_SOCKET"')
case ${LD_PRELOAD:-} in
"") want="$(cd "$bindir/../preload" && pwd -P)/libzvfs.so|daemon|$S" ;;
*) want="$LD_PRELOAD:$(cd "$bindir/../preload" && pwd -P)/libzvfs.so|daemon|$S" ;;
esac
check "run: environment of CMD ('$out')" $([ "$out" = "$want" ]; echo $?)
"$zvfs" run --socket "$S" --mount "$M" -- sh -c 'exit 7'
check "run: CMD's exit status comes back" $([ $? -eq 7 ]; echo $?)
"$zvfs" run --socket "$S" --mount "$M" -- "$T/no-such-program" 2>/dev/null
check "run: a missing CMD exits 127" $([ $? -eq 127 ]; echo $?)

# ---- another user: may ask (the socket is 0666), may not stop it
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	chmod 755 "$T" && setpriv --reuid=65534 --regid=65534 --clear-groups "$zvfs" --version \
		>/dev/null 2>&1; then
	nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	nobody "$zvfs" daemon status --quiet --socket "$S"
	check "as nobody: status works (exit 0)" $?
	nobody "$zvfs" daemon stop --socket "$S" >"$T/out" 2>&1
	rc=$?
	show "$T/out"
	check "as nobody: stop is refused (exit 1, 'refused')" \
		$([ $rc -eq 1 ] && grep -q refused "$T/out"; echo $?)
	check "as nobody: the daemon still runs" $(kill -0 "$pid"; echo $?)
else
	echo "# not root, or the build dir is not readable by nobody: other-user checks skipped"
fi

# ---- stop
"$zvfs" daemon stop --socket "$S" >"$T/out" 2>&1
rc=$?
show "$T/out"
check "stop: exit 0 (got $rc)" $rc
check "stop: the process has exited" $(gone "$pid"; echo $?)
check "stop: the socket is gone" $([ ! -e "$S" ]; echo $?)
"$zvfs" daemon status --socket "$S" >/dev/null 2>&1
check "status after stop: exit 3" $([ $? -eq 3 ]; echo $?)
"$zvfs" fsck --no-progress --mount "$M" "$IMG" >"$T/out" 2>&1
rc=$?
check "fsck --mount after stop: clean (got $rc)" $rc
[ $rc -eq 0 ] || show "$T/out"

# ---- run with no daemon starts one on --device; the data survived
out=$("$zvfs" run --socket "$S" --device "$IMG" --mount "$M" -- cat "$M/f" 2>"$T/err")
rc=$?
show "$T/err"
check "run with no daemon: starts one, reads 'hi' (got $rc, '$out')" \
	$([ $rc -eq 0 ] && [ "$out" = hi ]; echo $?)
"$zvfs" daemon status --socket "$S" >"$T/out" 2>&1
check "run with no daemon: the daemon it started keeps running" $?
pid=$(sed -n 's/^ *pid *\([0-9]*\)$/\1/p' "$T/out")

# ---- ZVFS_MODE unset: the library uses the daemon that answers on ZVFS_SOCKET, else its own store
lib=$(cd "$bindir/../preload" && pwd -P)/libzvfs.so
auto() { env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$lib" ZVFS_SOCKET="$S" "$@"; }
out=$(auto ZVFS_MOUNT="$M" ZVFS_DEVICE="$T/none.img" cat "$M/f" 2>"$T/err")
show "$T/err"
check "ZVFS_MODE unset, daemon running: reads 'hi' through it, no store of its own (got '$out')" \
	$([ "$out" = hi ] && [ ! -e "$T/none.img" ]; echo $?)

# ---- a daemon killed by SIGKILL: stale socket = not running; start replaces it
if [ -n "$pid" ]; then
	kill -9 "$pid"
	while ! gone "$pid"; do sleep 0.05; done
	"$zvfs" daemon status --socket "$S" >"$T/out" 2>&1
	rc=$?
	show "$T/out"
	check "after SIGKILL: status exit 3, nobody listens" \
		$([ $rc -eq 3 ] && grep -q 'nobody listens' "$T/out"; echo $?)
	"$zvfs" daemon start --device "$IMG" --socket "$S" --log-file "$LOG" >"$T/out" 2>"$T/err"
	rc=$?
	show "$T/out" "$T/err"
	check "after SIGKILL: start recovers the store (exit 0)" $rc
	pid=$(sed -n 's/^zvfsd started: pid \([0-9]*\),.*/\1/p' "$T/out")
	out=$("$zvfs" run --socket "$S" --mount "$M" -- cat "$M/f" 2>"$T/err")
	check "after SIGKILL and restart: 'hi' is there (got '$out')" $([ "$out" = hi ]; echo $?)
	"$zvfs" daemon stop --socket "$S" >/dev/null
	check "after SIGKILL and restart: stop exit 0" $?
	"$zvfs" fsck --no-progress --mount "$M" "$IMG" >"$T/out" 2>&1
	rc=$?
	check "fsck --mount at the end: clean (got $rc)" $rc
	[ $rc -eq 0 ] || show "$T/out"
else
	check "run with no daemon: status shows its pid" 1
fi

# (the daemon is stopped now)
M2=$T/mnt2
mkdir -p "$M2"
out=$(auto ZVFS_MOUNT="$M2" ZVFS_DEVICE="$T/direct.img,size=64M,create" \
	sh -c 'echo solo > "$0/g"; cat "$0/g"' "$M2" 2>"$T/err")
show "$T/err"
check "ZVFS_MODE unset, no daemon: direct mode on ZVFS_DEVICE (got '$out')" \
	$([ "$out" = solo ] && [ -s "$T/direct.img" ]; echo $?)
getfattr --absolute-names -n user.zvfs.blob_id "$M2/g" >/dev/null 2>&1
check "ZVFS_MODE unset, no daemon: \$M2/g is a ZVFS placeholder" $?

[ $fail -eq 0 ] || { echo "# daemon log:"; show "$LOG" 2>/dev/null; }
exit $fail
