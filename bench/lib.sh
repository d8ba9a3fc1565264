# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# bench/lib.sh - helpers shared by the bench/*.sh scripts (sourced, not run).
#
# The caller sets PROG (its short name, used as the message prefix) before
# sourcing, and gets ROOT (the repository).  Functions:
#
#   die MSG...               print "PROG: MSG" on stderr, exit 1
#   note MSG...              print "PROG: MSG" on stderr
#   show_cmd WORD...         print the command, shell-quoted, as "PROG: + cmd"
#   bench_help               print the calling script's header comment (--help)
#   bench_no_args ARGS...    --help/-h prints the header; any other argument is an error
#   bench_knobs R T P        ROUNDS/RUNTIME/RAMP with defaults R/T/P, QUICK=1
#                            lowering them to 1/3/0 unless set, all validated
#   bench_need_tools CMD...  install missing commands with apt-get (package = command
#                            name unless listed in bench_pkg_of)
#   bench_build DIR TGT...   configure DIR with meson if needed and build TGT with ninja;
#                            keep going with existing outputs when the tree does not build
#   bench_bytes SIZE         SIZE with K/M/G/T suffixes (powers of 1024) in bytes
#   bench_make_image F BYTES write F as BYTES of zeroes with O_DIRECT (every block
#                            allocated and written, so no run pays for unwritten extents
#                            or first-write allocation), then sync
#   bench_load               the 1/5/15 minute load average
#   bench_host               "host, kernel K, N CPUs (model)" for the report header
#
# Shell settings (set -euo pipefail) are the caller's.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=${PROG:-bench}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

note() {
	echo "$PROG: $*" >&2
}

show_cmd() {
	local q
	printf -v q '%q ' "$@"
	echo "$PROG: + ${q% }" >&2
}

# The header comment of the script that sourced us: from line 4 (after the
# shebang, SPDX and blank comment lines) up to "set -euo".
bench_help() {
	sed -n '4,/^set -euo/{/^set -euo/d;/^# shellcheck/d;s/^# \{0,1\}//;p}' "$0"
}

bench_no_args() {
	if [[ ${1:-} == -h || ${1:-} == --help ]]; then
		bench_help
		exit 0
	fi
	[[ $# -eq 0 ]] || die "no arguments expected (settings come from the environment; see --help)"
}

# The kernel sides run without the library and the ZVFS sides with exactly the
# settings each script gives them: nothing inherited from the caller's
# environment (scripts/run.sh, a shell already under LD_PRELOAD, a ZVFS_SOCKET
# or ZVFS_MODE) may leak in.
bench_clean_env() {
	unset LD_PRELOAD ZVFS_MOUNT ZVFS_MODE ZVFS_DEVICE ZVFS_CACHE_SIZE ZVFS_PASSTHROUGH \
		ZVFS_DISABLE ZVFS_SOCKET ZVFS_SPIN_US ZVFS_LOG_FILE
}

bench_knobs() {
	if [[ ${QUICK:-0} == 1 ]]; then
		ROUNDS=${ROUNDS:-1}
		RUNTIME=${RUNTIME:-3}
		RAMP=${RAMP:-0}
	fi
	ROUNDS=${ROUNDS:-$1}
	RUNTIME=${RUNTIME:-$2}
	RAMP=${RAMP:-$3}
	[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS: expected a positive integer: $ROUNDS"
	[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || die "RUNTIME: expected a positive integer: $RUNTIME"
	[[ $RAMP =~ ^[0-9]+$ ]] || die "RAMP: expected an integer: $RAMP"
}

bench_pkg_of() {
	case $1 in
	db_bench) echo rocksdb-tools ;;
	valgrind) echo valgrind ;;
	getfattr | setfattr) echo attr ;;
	filefrag) echo e2fsprogs ;;
	fallocate) echo util-linux ;;
	cc) echo gcc ;;
	*) echo "$1" ;;
	esac
}

bench_need_tools() {
	local c pkgs=()
	for c in "$@"; do
		command -v "$c" >/dev/null || pkgs+=("$(bench_pkg_of "$c")")
	done
	((${#pkgs[@]})) || return 0
	note "installing ${pkgs[*]} with apt-get"
	command -v apt-get >/dev/null || die "missing ${pkgs[*]} and no apt-get"
	apt-get install -y "${pkgs[@]}" >/dev/null || die "apt-get install ${pkgs[*]} failed"
}

bench_build() {
	local dir=$1 t missing=()
	shift
	if [[ ! -f $dir/build.ninja ]]; then
		command -v meson >/dev/null || die "meson not found (needed to build $*)"
		meson setup "$dir" "$ROOT" >/dev/null || die "meson setup $dir failed"
	fi
	# Always bring the outputs up to date; keep going with existing ones if
	# the tree is mid-edit and does not build right now.
	if ! ninja -C "$dir" "$@" >/dev/null; then
		for t in "$@"; do
			[[ -e $dir/$t ]] || missing+=("$dir/$t")
		done
		((${#missing[@]} == 0)) ||
			die "missing ${missing[*]}: the build failed (see: ninja -C $dir $*)"
		note "warning: build failed; using the existing $*"
	fi
}

bench_bytes() {
	local b
	b=$(numfmt --from=iec "${1%B}" 2>/dev/null) || die "bad size: $1"
	echo "$b"
}

bench_make_image() {
	local img=$1 size=$2
	((size >= 64 * 1048576 && size % 1048576 == 0)) ||
		die "$img: need a multiple of 1M, at least 64M: $size bytes"
	mkdir -p "$(dirname "$img")"
	note "writing $img ($size bytes of zeroes, O_DIRECT)"
	dd if=/dev/zero of="$img.tmp" bs=1M count=$((size / 1048576)) oflag=direct \
		status=none || die "$img: dd failed"
	mv "$img.tmp" "$img"
	# Let the write-back of the new image finish now, not during the first
	# measured run.
	sync
}

bench_load() {
	cut -d' ' -f1-3 /proc/loadavg
}

bench_host() {
	echo "$(uname -n), kernel $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
}
