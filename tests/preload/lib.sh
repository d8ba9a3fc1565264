# Shared harness of the preload functional tests (sourced, bash).
#
# Environment given by tests/preload/meson.build:
#   ZT_LIB       path of libzvfs.so
#   ZT_BUILD     the build directory
#   ZT_SANITIZE  meson's b_sanitize ("none", "address", "address,undefined", ...)
#   ZT_CC        the C compiler (to find the sanitizer runtimes)
#   ZT_ZVFS      the zvfs tool (zvfs fsck of the store after the test)
# First argument of every functional script: "mount" (run in a directory
# under ZVFS_MOUNT) or "plain" (run in a directory outside it, library still
# loaded: the same tests must pass there too).
#
# After zt_init:
#   T   the test's temp dir (removed at exit)
#   M   the mount prefix (ZVFS_MOUNT), $T/mnt
#   P   a plain directory outside the mount, $T/plain
#   D   the target directory of this run: $M/d or $P
#   zt_run CMD...   runs CMD with the library (direct mode, store $T/store.img)
#   zt_ok/zt_fail NAME [why], zt_check NAME CMD..., zt_eq NAME WANT GOT
#   zt_finish       the placeholder check, then exit 0 (pass) or 1 (fail)

zt_failed=0
zt_passed=0

zt_skip() { # reason
	echo "SKIP: $*"
	exit 77
}

zt_need() { # program... : skip (77) when one is missing
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || zt_skip "$p not installed"
	done
}

zt_init() { # target ("mount" or "plain"), test name
	ZT_TARGET=${1:-mount}
	ZT_NAME=${2:-test}
	case $ZT_TARGET in mount | plain) ;; *)
		echo "usage: $0 mount|plain" >&2
		exit 1
		;;
	esac
	if [ -z "${ZT_LIB:-}" ] || [ ! -f "$ZT_LIB" ]; then
		echo "FAIL: ZT_LIB (libzvfs.so) not set or missing: '${ZT_LIB:-}'"
		exit 1
	fi
	zt_need getfattr setfattr stat find
	T=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-$ZT_NAME.XXXXXX") || exit 1
	trap 'zt_cleanup' EXIT
	M=$T/mnt
	P=$T/plain
	mkdir -p "$M/d" "$P" || exit 1
	if [ "$ZT_TARGET" = mount ]; then D=$M/d; else D=$P; fi
	ZT_LOG=$T/zvfs.log
	: >"$ZT_LOG"
	# The library comes first, except that a sanitizer runtime must be the
	# very first object of a process that loads an instrumented library.
	ZT_PRELOAD=$ZT_LIB
	ZT_ASAN_OPTIONS=${ASAN_OPTIONS:-}
	case ${ZT_SANITIZE:-none} in
	none | "") ;;
	*)
		local cc=${ZT_CC:-cc} pre=""
		case $ZT_SANITIZE in *address*)
			pre=$($cc -print-file-name=libasan.so)
			;;
		esac
		case $ZT_SANITIZE in *undefined*)
			pre=${pre:+$pre:}$($cc -print-file-name=libubsan.so)
			;;
		esac
		case $ZT_SANITIZE in *thread*)
			pre=$($cc -print-file-name=libtsan.so)
			;;
		esac
		[ -n "$pre" ] && ZT_PRELOAD=$pre:$ZT_LIB
		# Foreign programs (bash, cp, sqlite3) leak by design.
		ZT_ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
		;;
	esac
	export ZT_DEVICE="$T/store.img,size=2G,create"
	# ZT_MODE=daemon (with ZT_ZVFSD, the zvfsd binary): the same tests through
	# a zvfsd of the test's own, started by the first zt_run (so a test may
	# still choose ZT_DEVICE after zt_init) and stopped by zt_finish.
	ZT_MODE=${ZT_MODE:-direct}
	ZT_SOCKET=$T/zvfsd.sock
	if [ "$ZT_MODE" = daemon ] && { [ -z "${ZT_ZVFSD:-}" ] || [ ! -x "$ZT_ZVFSD" ]; }; then
		echo "FAIL: ZT_MODE=daemon needs ZT_ZVFSD (zvfsd): '${ZT_ZVFSD:-}'"
		exit 1
	fi
	echo "# $ZT_NAME on $ZT_TARGET ($ZT_MODE): T=$T D=$D"
}

# Start the test's zvfsd unless it runs (zt_run may be in a subshell: the
# pid file, not a variable, tells).
zt_daemon_start() {
	[ "$ZT_MODE" = daemon ] && [ ! -s "$T/zvfsd.pid" ] || return 0
	"$ZT_ZVFSD" --foreground --device "$ZT_DEVICE" --socket "$ZT_SOCKET" \
		--pidfile "$T/zvfsd.pid" --log-level warn </dev/null >>"$T/zvfsd.log" 2>&1 &
	local i pid=$!
	for i in $(seq 100); do
		[ -s "$T/zvfsd.pid" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "FAIL - zvfsd did not start:"
	sed 's/^/#   /' "$T/zvfsd.log"
	return 1
}

# Stop the test's zvfsd (so fsck can open the store); its log when verbose.
zt_daemon_stop() {
	local i pid
	[ -s "${T:-}/zvfsd.pid" ] || return 0
	pid=$(cat "$T/zvfsd.pid")
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$T/zvfsd.pid"
	if [ -s "$T/zvfsd.log" ] && [ -n "${ZT_VERBOSE:-}" ]; then
		sed 's/^/#   zvfsd: /' "$T/zvfsd.log"
	fi
}

# Run a command under the library.  ZVFS_LOG_FILE keeps the library's lines
# apart from the programs' output; they are shown when the test fails.
zt_run() {
	zt_daemon_start || return 1
	env LD_PRELOAD="$ZT_PRELOAD" ASAN_OPTIONS="$ZT_ASAN_OPTIONS" \
		ZVFS_MOUNT="$M" ZVFS_DEVICE="$ZT_DEVICE" ZVFS_MODE="$ZT_MODE" \
		ZVFS_SOCKET="$ZT_SOCKET" ZVFS_LOG_FILE="$ZT_LOG" "$@"
}

# A bash script under the library: zt_sh 'script' args...
zt_sh() {
	local s=$1
	shift
	zt_run bash -c "$s" zt_sh "$@"
}

zt_ok() { # name
	echo "ok - $1"
	zt_passed=$((zt_passed + 1))
}

zt_fail() { # name, why
	echo "FAIL - $1${2:+: $2}"
	zt_failed=$((zt_failed + 1))
}

zt_check() { # name, command...: pass when the command exits 0
	local name=$1
	shift
	if "$@"; then zt_ok "$name"; else zt_fail "$name" "exit $? from: $*"; fi
}

zt_eq() { # name, want, got
	if [ "$2" = "$3" ]; then
		zt_ok "$1"
	else
		zt_fail "$1" "want '$2', got '$3'"
	fi
}

# sha256 of a file read WITHOUT the library (for sources outside ZVFS).
zt_sum() { sha256sum <"$1" | cut -d' ' -f1; }
# sha256 of a file read through the library.
zt_zsum() { zt_run sha256sum "$1" | cut -d' ' -f1; }

# Make a file of N random bytes (without the library).
zt_random() { # path, bytes
	head -c "$2" /dev/urandom >"$1"
}

# The placeholder check, run WITHOUT the library.  Mount target: every file
# under the mount carrying the ZVFS xattr has no data blocks (nothing slipped
# past ZVFS into the Linux file), and at least one exists (a library that
# catches nothing fails).  Plain target: nothing outside the mount carries it.
# "No data blocks": st_blocks is 0 -- the 56-byte xattr fits inside a 256-byte
# ext4 inode -- or, on a file system that keeps xattrs in a block of their own
# (128-byte inodes), not above an empty file carrying the same xattr; and FIEMAP
# (filefrag) finds no extent.
zt_placeholders() {
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
	done < <(find "$M" "$P" -type f -print0)
	if [ "$ZT_TARGET" = mount ]; then
		if [ "$n" -eq 0 ]; then
			echo "FAIL - no file under the mount carries user.zvfs.blob_id (nothing reached ZVFS)"
			bad=1
		else
			echo "ok - placeholders: $n ZVFS files, none with data blocks"
		fi
	fi
	while IFS= read -r -d '' f; do
		if getfattr --absolute-names -n user.zvfs.blob_id "$f" >/dev/null 2>&1; then
			echo "FAIL - $f outside the mount carries user.zvfs.blob_id"
			bad=1
		fi
	done < <(find "$P" -type f -print0)
	[ $bad -eq 0 ] || zt_failed=$((zt_failed + 1))
}

# zvfs fsck of the store and the files under the mount, without the library:
# after every program exited, the store is consistent and every ZVFS file
# names a live blob of its own ("warning:" lines, such as orphans, are shown
# but do not fail).
zt_fsck() {
	local img=$T/store.img out st
	[ -n "${ZT_ZVFS:-}" ] && [ -x "$ZT_ZVFS" ] || return 0
	[ -f "$img" ] || return 0
	out=$("$ZT_ZVFS" fsck "$img" --mount "$M" -n -P 2>&1)
	st=$?
	if [ $st -eq 0 ]; then
		echo "ok - zvfs fsck --mount: clean"
	else
		echo "FAIL - zvfs fsck --mount: exit $st"
		zt_failed=$((zt_failed + 1))
	fi
	[ $st -eq 0 ] && [ -z "${ZT_VERBOSE:-}" ] && out=$(echo "$out" | grep -E '^(error|warning)')
	[ -n "$out" ] && echo "$out" | head -n 20 | sed 's/^/#   fsck: /'
	return 0
}

zt_finish() {
	zt_daemon_stop
	zt_placeholders
	zt_fsck
	if [ -s "$ZT_LOG" ] && { [ $zt_failed -ne 0 ] || [ -n "${ZT_VERBOSE:-}" ]; }; then
		echo "# last lines of the library's log ($ZT_LOG):"
		tail -n 40 "$ZT_LOG" | sed 's/^/#   /'
	fi
	echo "# $ZT_NAME on $ZT_TARGET: $zt_passed passed, $zt_failed failed"
	[ $zt_failed -eq 0 ] && exit 0
	exit 1
}

zt_cleanup() {
	zt_daemon_stop
	[ -n "${ZT_KEEP:-}" ] && {
		echo "# kept $T"
		return
	}
	[ -n "${T:-}" ] && rm -rf "$T"
}
