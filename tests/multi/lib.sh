# shellcheck shell=bash
# Shared harness of the daemon-mode tests (sourced, bash).  Ideas from
# tests/preload/lib.sh; this one starts a zvfsd of its own per test.
#
# Environment given by tests/multi/meson.build:
#   ZT_LIB       path of libzvfs.so
#   ZT_ZVFSD      path of zvfsd
#   ZT_ZVFS      the zvfs tool (zvfs stat, zvfs fsck)
#   ZT_MTOOL     tests/multi/mtool (client programs)
#   ZT_HOSTILE   tests/multi/hostile (hand-made protocol client)
#   ZT_SANITIZE  meson's b_sanitize ("none", "address", ...)
#   ZT_CC        the C compiler (to find the sanitizer runtimes)
#
# After mt_init NAME [SIZE]:
#   T    the test's temp dir (0755, so other users can reach the socket; removed at exit)
#   M    the mount prefix (ZVFS_MOUNT), $T/mnt (0755)
#   IMG  the store image, SOCK the daemon's socket, DLOG the daemon's output
#   mt_daemon_start / mt_daemon_kill / mt_daemon_stop   (DPID: the daemon's pid)
#   mt_run CMD...        CMD as a client (root)
#   mt_run_as USER CMD   CMD as a client under another user
#   mt_stat              `zvfs stat --socket $SOCK`
#   mt_ok/mt_fail/mt_check/mt_eq, mt_wait_for SECONDS CMD...
#   mt_finish            stop the daemon, fsck, placeholder check, exit 0/1

mt_failed=0
mt_passed=0
DPID=

mt_skip() { # reason
	echo "SKIP: $*"
	exit 77
}

mt_need() { # program...: skip (77) when one is missing
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || mt_skip "$p not installed"
	done
}

mt_ok() {
	echo "ok - $1"
	mt_passed=$((mt_passed + 1))
}

mt_fail() { # name, why
	echo "FAIL - $1${2:+: $2}"
	mt_failed=$((mt_failed + 1))
}

mt_check() { # name, command...: pass when the command exits 0
	local name=$1
	shift
	if "$@"; then mt_ok "$name"; else mt_fail "$name" "exit $? from: $*"; fi
}

mt_eq() { # name, want, got
	if [ "$2" = "$3" ]; then
		mt_ok "$1"
	else
		mt_fail "$1" "want '$2', got '$3'"
	fi
}

# Poll CMD every 20 ms until it succeeds or SECONDS pass (a deadline, not a
# timing assertion): 0 when it succeeded.
mt_wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 50; i++)); do
		"$@" && return 0
		sleep 0.02
	done
	"$@"
}

# Count "ok"/"FAIL" lines of a helper's output (mtool, hostile) into the totals.
mt_tally() { # output
	local l
	while IFS= read -r l; do
		case $l in
		"ok "*) mt_passed=$((mt_passed + 1)) ;;
		"FAIL "*) mt_failed=$((mt_failed + 1)) ;;
		esac
	done <<<"$1"
	[ -n "$1" ] && echo "$1" | sed 's/^/  /'
}

# Run a helper under the library and count its lines; a helper that fails
# without printing FAIL (a crash) is one failure too.
mt_tool() { # name, mtool args...
	local name=$1 out st
	shift
	out=$(mt_run "$ZT_MTOOL" "$@" 2>&1)
	st=$?
	mt_tally "$out"
	if [ $st -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
		mt_fail "$name" "mtool $1 exited $st"
	fi
	return $st
}

mt_init() { # name [store size]
	MT_NAME=$1
	local size=${2:-2G}
	if [ -z "${ZT_LIB:-}" ] || [ ! -f "$ZT_LIB" ]; then
		echo "FAIL: ZT_LIB (libzvfs.so) not set or missing: '${ZT_LIB:-}'"
		exit 1
	fi
	if [ -z "${ZT_ZVFSD:-}" ] || [ ! -x "$ZT_ZVFSD" ]; then
		mt_skip "zvfsd not built (ZT_ZVFSD='${ZT_ZVFSD:-}')"
	fi
	mt_need getfattr setfattr stat find setpriv pgrep mkfifo
	T=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-multi-$MT_NAME.XXXXXX") || exit 1
	chmod 755 "$T"
	trap 'mt_cleanup' EXIT
	M=$T/mnt
	IMG=$T/store.img
	SOCK=$T/sock
	DLOG=$T/zvfsd.log
	MT_LOG=$T/zvfs.log # the library's log (ZVFS_LOG_FILE), every user may append
	mkdir -p "$M" || exit 1
	chmod 755 "$M"
	: >"$MT_LOG"
	chmod 666 "$MT_LOG"
	MT_DEVICE="$IMG,size=$size,create"
	MT_PRELOAD=$ZT_LIB
	MT_ASAN_OPTIONS=${ASAN_OPTIONS:-}
	case ${ZT_SANITIZE:-none} in
	none | "") ;;
	*)
		local cc=${ZT_CC:-cc} pre=""
		case $ZT_SANITIZE in *address*) pre=$($cc -print-file-name=libasan.so) ;; esac
		case $ZT_SANITIZE in *undefined*)
			pre=${pre:+$pre:}$($cc -print-file-name=libubsan.so)
			;;
		esac
		case $ZT_SANITIZE in *thread*) pre=$($cc -print-file-name=libtsan.so) ;; esac
		[ -n "$pre" ] && MT_PRELOAD=$pre:$ZT_LIB
		# Foreign programs (bash, sqlite3) leak by design.
		MT_ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 # last wins
		;;
	esac
	echo "# $MT_NAME: T=$T"
}

mt_sanitized() { [ "${ZT_SANITIZE:-none}" != none ] && [ -n "${ZT_SANITIZE:-}" ]; }

# Start zvfsd on $IMG (made at the first start) and wait for its socket.  The
# socket must be usable by every user (0666): if it is not, that is reported
# and fixed here so the tests that need other users can go on.
mt_daemon_start() {
	rm -f "$SOCK"
	"$ZT_ZVFSD" --foreground --device "$MT_DEVICE" --socket "$SOCK" >>"$DLOG" 2>&1 &
	DPID=$!
	if ! mt_wait_for 20 test -S "$SOCK"; then
		mt_fail "zvfsd start" "no socket $SOCK after 20 s"
		mt_dlog
		return 1
	fi
	if ! kill -0 "$DPID" 2>/dev/null; then
		mt_fail "zvfsd start" "zvfsd exited"
		mt_dlog
		return 1
	fi
	local mode
	mode=$(stat -c %a "$SOCK")
	if [ "$mode" != 666 ] && [ "$mode" != 777 ]; then
		[ -z "${MT_SOCK_NOTED:-}" ] && echo "# NOTE: zvfsd made its socket mode $mode, not 0666; chmod 666 here"
		MT_SOCK_NOTED=1
		chmod 666 "$SOCK"
	fi
	return 0
}

# SIGKILL the daemon and reap it.
mt_daemon_kill() {
	[ -n "$DPID" ] || return 0
	kill -KILL "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
}

# SIGTERM the daemon; it must exit 0 within 30 s (reported otherwise).
mt_daemon_stop() {
	local st
	[ -n "$DPID" ] || return 0
	kill -TERM "$DPID" 2>/dev/null
	if ! mt_wait_for 30 bash -c '! kill -0 "$1" 2>/dev/null || grep -q "^State:.*Z" "/proc/$1/status" 2>/dev/null' _ "$DPID"; then
		mt_fail "zvfsd stop" "still running 30 s after SIGTERM; SIGKILL"
		kill -KILL "$DPID" 2>/dev/null
	fi
	wait "$DPID"
	st=$?
	DPID=
	if [ $st -eq 0 ]; then
		mt_ok "zvfsd stopped by SIGTERM, exit 0"
	else
		mt_fail "zvfsd stop" "exit status $st after SIGTERM"
		mt_dlog
	fi
}

mt_dlog() {
	[ -s "$DLOG" ] || return 0
	echo "# last lines of zvfsd's output ($DLOG):"
	tail -n 30 "$DLOG" | sed 's/^/#   /'
}

# A client: the library in daemon mode on our socket and mount.
mt_run() {
	env LD_PRELOAD="$MT_PRELOAD" ASAN_OPTIONS="$MT_ASAN_OPTIONS" \
		ZVFS_MODE=daemon ZVFS_SOCKET="$SOCK" ZVFS_MOUNT="$M" \
		ZVFS_LOG_FILE="$MT_LOG" "$@"
}

# A client under another user (name or uid), with that user's groups.
mt_run_as() { # user, command...
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups \
		env LD_PRELOAD="$MT_PRELOAD" ASAN_OPTIONS="$MT_ASAN_OPTIONS" \
		ZVFS_MODE=daemon ZVFS_SOCKET="$SOCK" ZVFS_MOUNT="$M" \
		ZVFS_LOG_FILE="$MT_LOG" HOME="$T" "$@"
}

mt_sh() { # 'script' args...: bash under the library
	local s=$1
	shift
	mt_run bash -c "$s" mt_sh "$@"
}

# The daemon's statistics text (zvfs stat); empty on failure.
mt_stat() {
	"$ZT_ZVFS" stat --socket "$SOCK" 2>&1
}

# The placeholder check, WITHOUT the library: every file under the mount
# carrying user.zvfs.blob_id has no data blocks (nothing slipped past ZVFS),
# and at least one exists.  See tests/preload/lib.sh for the 128-byte-inode case.
mt_placeholders() {
	local f n=0 bad=0 blocks base="" val ext
	while IFS= read -r -d '' f; do
		if val=$(getfattr --absolute-names --only-values -n user.zvfs.blob_id "$f" \
			2>/dev/null); then
			n=$((n + 1))
			if [ -z "$base" ]; then
				: >"$T/xattr-probe"
				setfattr -n user.zvfs.blob_id -v "$val" "$T/xattr-probe" 2>/dev/null
				base=$(stat -c %b "$T/xattr-probe")
			fi
			blocks=$(stat -c %b "$f")
			if [ "$blocks" -gt "$base" ]; then
				echo "FAIL - placeholder $f has st_blocks=$blocks > $base (data bypassed ZVFS)"
				bad=1
			elif command -v filefrag >/dev/null &&
				ext=$(filefrag "$f" 2>/dev/null | sed -n 's/.*: \([0-9]*\) extents\{0,1\} found/\1/p') &&
				[ -n "$ext" ] && [ "$ext" != 0 ]; then
				echo "FAIL - placeholder $f has $ext data extents (data bypassed ZVFS)"
				bad=1
			fi
		fi
	done < <(find "$M" -type f -print0)
	if [ "$n" -eq 0 ]; then
		echo "FAIL - no file under the mount carries user.zvfs.blob_id (nothing reached ZVFS)"
		bad=1
	else
		echo "ok - placeholders: $n ZVFS files, none with data blocks"
	fi
	[ $bad -eq 0 ] || mt_failed=$((mt_failed + 1))
}

# zvfs fsck of the store and the files under the mount (daemon stopped).
mt_fsck() {
	local out st
	[ -f "$IMG" ] || return 0
	out=$("$ZT_ZVFS" fsck "$IMG" --mount "$M" -n -P 2>&1)
	st=$?
	if [ $st -eq 0 ]; then
		mt_ok "zvfs fsck --mount: clean"
	else
		mt_fail "zvfs fsck --mount" "exit $st"
	fi
	[ $st -eq 0 ] && [ -z "${ZT_VERBOSE:-}" ] && out=$(echo "$out" | grep -E '^(error|warning)')
	[ -n "$out" ] && echo "$out" | head -n 20 | sed 's/^/#   fsck: /'
	return 0
}

mt_finish() {
	mt_daemon_stop
	mt_fsck
	mt_placeholders
	if [ -s "$MT_LOG" ] && { [ $mt_failed -ne 0 ] || [ -n "${ZT_VERBOSE:-}" ]; }; then
		echo "# last lines of the library's log ($MT_LOG):"
		tail -n 40 "$MT_LOG" | sed 's/^/#   /'
	fi
	[ $mt_failed -ne 0 ] && mt_dlog
	echo "# $MT_NAME: $mt_passed passed, $mt_failed failed"
	[ $mt_failed -eq 0 ] && exit 0
	exit 1
}

# At exit: no daemon or helper of ours is left behind, the temp dir goes.
mt_cleanup() {
	local p
	for p in ${MT_PIDS:-}; do
		# A server started through mt_run_as & is the child of a subshell.
		kill -KILL $(pgrep -P "$p") "$p" 2>/dev/null
	done
	[ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
	[ -n "${ZT_KEEP:-}" ] && {
		echo "# kept $T"
		return
	}
	[ -n "${T:-}" ] && rm -rf "$T"
}

# Read a coprocess's lines until one is WORD (within SECONDS); "ok"/"FAIL"
# lines on the way are counted.  0 when WORD came.
mt_expect() { # fd, word, seconds
	local fd=$1 word=$2 secs=$3 l
	while IFS= read -r -t "$secs" -u "$fd" l; do
		[ "$l" = "$word" ] && return 0
		mt_tally "$l"
	done
	echo "# expected '$word' from a helper, got EOF or nothing in $secs s"
	return 1
}

# A helper under the library that the script talks to line by line, through
# two FIFOs (a coprocess's fds vanish when it exits, with its last lines).
# Sets SP_PID, SP_IN (write commands there) and SP_OUT (read its lines with
# mt_expect "$SP_OUT" WORD SECONDS).  One at a time.
mt_spawn() { # command...
	rm -f "$T/sp.in" "$T/sp.out"
	mkfifo "$T/sp.in" "$T/sp.out" || return 1
	mt_run "$@" <"$T/sp.in" >"$T/sp.out" 2>&1 &
	SP_PID=$!
	MT_PIDS="${MT_PIDS:-} $SP_PID"
	exec {SP_IN}>"$T/sp.in" {SP_OUT}<"$T/sp.out"
}

# Close its input, count the rest of its output, reap it: its exit status.
mt_spawn_end() {
	local st rest
	exec {SP_IN}>&-
	rest=$(cat <&"$SP_OUT")
	wait "$SP_PID"
	st=$?
	exec {SP_OUT}<&-
	mt_tally "$rest"
	rm -f "$T/sp.in" "$T/sp.out"
	return $st
}
