#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/daemon_vs_ext4.sh - ZVFS through zvfsd (daemon mode) against ZVFS in
# direct mode and against ext4, on the same disk, in one run.
#
# Three sides, all files on one ext4 file system under WORKDIR:
#   daemon  the program under LD_PRELOAD=libzvfs.so with ZVFS_MODE=daemon,
#           ZVFS_SOCKET=WORKDIR/sock, ZVFS_MOUNT=WORKDIR/dmnt, served by a
#           zvfsd this script starts (zvfsd --foreground --device
#           uring:WORKDIR/daemon.img,size=STORE_SIZE --socket WORKDIR/sock
#           --cache-size CACHE_SIZE) and stops (SIGTERM) at the end
#   direct  the program under libzvfs.so with ZVFS_MODE=direct on the daemon's
#           store and mount (ZVFS_DEVICE=uring:WORKDIR/daemon.img,
#           ZVFS_MOUNT=WORKDIR/dmnt, ZVFS_CACHE_SIZE=CACHE_SIZE: the engine
#           inside the program), so both read and write the same file in the
#           same place of the disk; zvfsd is stopped for each direct run
#           (direct mode takes the store's lock) and started again after it.
#           Separate images made the daemon/direct ratio a comparison of two
#           places on the virtual disk: 4 KiB O_DIRECT random reads in direct
#           mode ran at 17-19k IOPS on a file in one image and 27-31k in
#           another, the same code (docs/benchmark.md)
#   ext4    the same program, same options, its files in WORKDIR/ext4
# The image is written fresh with zeroes (dd, O_DIRECT) at every run and
# formatted by its first mount; every fio data file is laid out once
# (sequential 1 MiB writes, then fsync) before the rounds.
#
# Cases:
#   rtt       the null round trip: bench/rtt.c (built here with cc -I src
#             -I include) speaks src/ipc/proto.h directly: HELLO, RING_ADD of
#             a sealable memfd, RTT_COUNT ZVFS_OP_NOP requests back to back on
#             that one ring, each timed; p50 and p99.  Target p50 <= 2 us.
#             Then RTT_COUNT/20 "cold" ones, each after 200 us of sleep, so
#             that zvfsd's worker has stopped spinning and must be woken
#             (reported, no target).
#   fio4k, fio16k
#             randread and randwrite, bs 4k / 16k, ioengine=psync, iodepth=1,
#             direct=1, on a FILE_SIZE file, time_based, norandommap,
#             randrepeat=0, group_reporting (IOPS of all jobs), in three
#             shapes (FIO_SHAPES):
#               1   one job (--thread)                daemon, direct, ext4
#               4t  --numjobs=4 --thread               daemon, direct, ext4
#               4p  --numjobs=4, processes (no --thread): daemon, ext4 only
#                   (direct mode cannot share a store between processes)
#             Targets: daemon/direct >= 0.9x, daemon/ext4 >= 1.0x.  The
#             one-job 16k randwrite daemon/ext4 ratio is printed beside the
#             first prototype's 0.34x (829 vs 2468 IOPS).
#   pgbench   PostgreSQL 15: initdb (user postgres) of a cluster on the mount
#             (daemon side, every server process under the library) and one in
#             WORKDIR/ext4, both servers with fsync=on, shared_buffers=64MB,
#             max_connections=30, a Unix socket only; pgbench -i -s PG_SCALE,
#             CHECKPOINT, then per round pgbench -c 4 -j 2 -T DB_TIME on each
#             (clients without the library).  TPS daemon/ext4, target >= 1.0x.
#   sysbench  MariaDB (InnoDB, innodb_flush_log_at_trx_commit=1, buffer pool
#             128M, redo log 64M, native AIO on: libaio under the library,
#             which refuses io_uring; io_uring on ext4), as user mysql, no
#             networking; sysbench oltp_read_write --tables=4
#             --table-size=SB_ROWS prepare, then per round run --threads=4
#             --time=DB_TIME on each.  TPS daemon/ext4, target >= 1.0x.
# Runs are interleaved (round after round, every case, the side order rotating
# per round); medians of the rounds are reported.  The load average is noted
# before every phase.  The daemon side's files are checked, without the
# library, to be ZVFS files (user.zvfs.blob_id, no data extents in the
# placeholder).  At the end the daemon's `zvfs stat` goes into the report,
# zvfsd is stopped (it must exit 0) and `zvfs fsck --mount -n` checks both
# stores: a store that is not clean is a failure whatever the figures.
#
# Environment (all optional):
#   WORKDIR      where the images, mounts and ext4 files go (default
#                /var/tmp/zvfs-bench/daemon; must be reachable by the users
#                postgres and mysql); emptied first, removed unless KEEP=1
#   STORE_SIZE   the daemon's store (default 4G: the fio file and both databases)
#   FILE_SIZE    file of the fio cases (default 1G)
#   CACHE_SIZE   zvfsd --cache-size and ZVFS_CACHE_SIZE of direct mode (default 1G)
#   RTT_COUNT    timed NOPs per rtt run (default 200000, after 10% untimed)
#   FIO_SHAPES   default "1 4t 4p"
#   DB_TIME      seconds of each pgbench / sysbench run (default 15)
#   PG_SCALE     pgbench -i -s (default 10)
#   SB_ROWS      sysbench --table-size (default 20000; 4 tables)
#   DAEMON_SPIN_US  zvfsd --spin-us (default: zvfsd's own, 50)
#   DAEMON_FOLLOW   0: zvfsd --no-follow-cpu, the worker placement before it (default 1)
#   CLIENT_SPIN_US  ZVFS_SPIN_US of the clients (default: unset, the library
#                adapts its spin to the daemon's load, docs/protocol.md) and
#                rtt -s (default 0 with 2 CPUs or fewer, else 30: rtt.c's
#                spin is fixed)
#   BENCH_CASES  cases to run (default "rtt fio4k fio16k pgbench sysbench")
#   ROUNDS       rounds (default 1)
#   RUNTIME      measured seconds per fio run (default 3)
#   RAMP         warm-up seconds before each fio run, not measured (default 1)
#   QUICK=1      ROUNDS=1, RUNTIME=3, RAMP=0 unless set explicitly
#   ZVFS_BUILD   meson build directory (default <repo>/build); libzvfs.so, zvfsd
#                and zvfs are built there if needed
#   OUT          the Markdown report (default bench/results/daemon_vs_ext4-<date>.md)
#   STRICT=1     exit 3 if some figure misses its target
#
# Usage: bench/daemon_vs_ext4.sh                 (about 5 minutes with the defaults)
#        ROUNDS=3 RUNTIME=10 DB_TIME=60 bench/daemon_vs_ext4.sh
set -euo pipefail

PROG=daemon_vs_ext4
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_no_args "$@"
bench_knobs 1 3 1
bench_clean_env
WORKDIR=${WORKDIR:-/var/tmp/zvfs-bench/daemon}
STORE_SIZE=${STORE_SIZE:-4G}
FILE_SIZE=${FILE_SIZE:-1G}
CACHE_SIZE=${CACHE_SIZE:-1G}
RTT_COUNT=${RTT_COUNT:-200000}
FIO_SHAPES=${FIO_SHAPES:-1 4t 4p}
DB_TIME=${DB_TIME:-15}
PG_SCALE=${PG_SCALE:-10}
SB_ROWS=${SB_ROWS:-20000}
DAEMON_SPIN_US=${DAEMON_SPIN_US:-}
DAEMON_FOLLOW=${DAEMON_FOLLOW:-1}
CLIENT_SPIN_US=${CLIENT_SPIN_US:-}
BENCH_CASES=${BENCH_CASES:-rtt fio4k fio16k pgbench sysbench}
ZVFS_BUILD=${ZVFS_BUILD:-$ROOT/build}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/daemon_vs_ext4-$STAMP.md}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PATH=$PATH:/usr/sbin

STORE_B=$(bench_bytes "$STORE_SIZE")
FILE_B=$(bench_bytes "$FILE_SIZE")
bench_bytes "$CACHE_SIZE" >/dev/null
((FILE_B % 1048576 == 0)) || die "FILE_SIZE must be a multiple of 1M"
((FILE_B + 256 * 1048576 <= STORE_B)) || die "STORE_SIZE ($STORE_SIZE) too small for FILE_SIZE + 256M"
for v in RTT_COUNT DB_TIME PG_SCALE SB_ROWS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v: expected a positive integer: ${!v}"
done
for v in DAEMON_SPIN_US CLIENT_SPIN_US; do
	[[ -z ${!v} || ${!v} =~ ^[0-9]+$ ]] || die "$v: expected an integer: ${!v}"
done
[[ $DAEMON_FOLLOW == [01] ]] || die "DAEMON_FOLLOW: expected 0 or 1: $DAEMON_FOLLOW"
for s in $FIO_SHAPES; do
	[[ $s == 1 || $s == 4t || $s == 4p ]] || die "FIO_SHAPES: unknown shape $s (1, 4t, 4p)"
done
[[ $WORKDIR == /* && $WORKDIR != *[[:space:]\'\"]* ]] ||
	die "WORKDIR must be an absolute path without spaces or quotes: $WORKDIR"
has_case() { [[ " $BENCH_CASES " == *" $1 "* ]]; }
for c in $BENCH_CASES; do
	[[ " rtt fio4k fio16k pgbench sysbench " == *" $c "* ]] || die "BENCH_CASES: unknown case $c"
done

# ---- tools ------------------------------------------------------------------

tools=(fio python3 getfattr filefrag setpriv cc)
has_case sysbench && tools+=(sysbench)
bench_need_tools "${tools[@]}"
if has_case pgbench; then
	[[ -x $PGBIN/postgres && -x $PGBIN/pgbench && -x $PGBIN/initdb ]] ||
		die "PostgreSQL 15 is not installed in $PGBIN (set PGBIN, or leave pgbench out of BENCH_CASES)"
	id postgres >/dev/null 2>&1 || die "no user postgres (leave pgbench out of BENCH_CASES)"
fi
if has_case sysbench; then
	for c in mariadbd mariadb-install-db mariadb mariadb-admin; do
		command -v "$c" >/dev/null || die "$c not found: MariaDB is not installed (leave sysbench out of BENCH_CASES)"
	done
	id mysql >/dev/null 2>&1 || die "no user mysql (leave sysbench out of BENCH_CASES)"
fi

bench_build "$ZVFS_BUILD" src/preload/libzvfs.so src/daemon/zvfsd src/cli/zvfs
LIB=$(realpath "$ZVFS_BUILD/src/preload/libzvfs.so")
ZVFSD=$(realpath "$ZVFS_BUILD/src/daemon/zvfsd")
ZVFS=$(realpath "$ZVFS_BUILD/src/cli/zvfs")

# ---- work area --------------------------------------------------------------

DIMG=$WORKDIR/daemon.img
DMNT=$WORKDIR/dmnt
EXT=$WORKDIR/ext4
SOCK=$WORKDIR/sock
DLOG=$WORKDIR/zvfsd.log
RAW=$(mktemp /tmp/daemon_vs_ext4.XXXXXX)
LOG=$(mktemp /tmp/daemon_vs_ext4-log.XXXXXX)
DPID=
declare -A SRV=() # side -> pid of a database server we started

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local s p i
	# Database servers first (they are the daemon's clients), then the daemon;
	# only the processes this script started, by their pids: a clean shutdown
	# (postgres: SIGINT, mariadbd: SIGTERM), SIGKILL after 30 s.
	for s in "${!SRV[@]}"; do
		p=${SRV[$s]}
		[[ $s == pg-* ]] && kill -INT "$p" 2>/dev/null
		[[ $s == my-* ]] && kill -TERM "$p" 2>/dev/null
		for ((i = 0; i < 300; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ -n $DPID ]]; then
		kill -TERM "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
	# A run that stops half-way keeps what it measured.
	if [[ ! -e $OUT && -s $RAW ]]; then
		mkdir -p "$(dirname "$OUT")" && cp "$RAW" "${OUT%.md}.raw" &&
			note "the figures measured so far: ${OUT%.md}.raw"
	fi
	rm -f "$RAW" "$LOG" "$LOG.json"
	if [[ ${KEEP:-0} != 1 && -n ${WORKDIR:-} && -d $WORKDIR ]]; then
		rm -rf "$WORKDIR"
	fi
}
trap cleanup EXIT

if [[ -e $WORKDIR ]]; then
	# Only a directory this script made: it holds its marker and nothing foreign.
	[[ -d $WORKDIR && (-z $(ls -A "$WORKDIR") || -e $WORKDIR/.daemon_vs_ext4) ]] ||
		die "WORKDIR $WORKDIR exists and does not look like ours; remove it or set WORKDIR"
	rm -rf "$WORKDIR"
fi
mkdir -p "$DMNT" "$EXT"
touch "$WORKDIR/.daemon_vs_ext4"
# The users postgres and mysql reach their directories (and the socket) through it.
chmod 755 "$WORKDIR" "$DMNT" "$EXT"
p=$WORKDIR
while p=$(dirname "$p") && [[ $p != / ]]; do
	[[ $(($(stat -c %#a "$p") & 8#001)) -ne 0 ]] ||
		die "$p is not searchable by other users (postgres, mysql): choose another WORKDIR"
done
FSTYPE=$(df --output=fstype "$WORKDIR" | tail -1)
: >"$WORKDIR/zvfs.log"
chmod 666 "$WORKDIR/zvfs.log"
bench_make_image "$DIMG" "$STORE_B"

DENV=(env LD_PRELOAD="$LIB" ZVFS_MODE=daemon ZVFS_SOCKET="$SOCK" ZVFS_MOUNT="$DMNT"
	ZVFS_LOG_FILE="$WORKDIR/zvfs.log")
XENV=(env LD_PRELOAD="$LIB" ZVFS_MODE=direct ZVFS_MOUNT="$DMNT"
	ZVFS_DEVICE="uring:$DIMG,size=$STORE_B" ZVFS_CACHE_SIZE="$CACHE_SIZE"
	ZVFS_LOG_FILE="$WORKDIR/zvfs-direct.log")
if [[ -n $CLIENT_SPIN_US ]]; then
	DENV+=(ZVFS_SPIN_US="$CLIENT_SPIN_US")
	XENV+=(ZVFS_SPIN_US="$CLIENT_SPIN_US")
fi

# The command prefix of a side: the library's environment, or nothing.
side_env() {
	case $1 in
	daemon) SIDE_ENV=("${DENV[@]}") ;;
	direct) SIDE_ENV=("${XENV[@]}") ;;
	*) SIDE_ENV=() ;;
	esac
}

dlog_tail() {
	[[ -s $DLOG ]] || return 0
	note "last lines of zvfsd's output ($DLOG):"
	tail -n 20 "$DLOG" >&2
}

# Run a command as given, its output in $LOG; on failure show the output and
# the logs of side (daemon, direct: the library's, zvfsd's) and stop.
run_logged() {
	local side=$1 what=$2
	shift 2
	show_cmd "$@"
	"$@" >"$LOG" 2>&1 && return 0
	cat "$LOG" >&2
	case $side in
	daemon)
		[[ -s $WORKDIR/zvfs.log ]] && tail -20 "$WORKDIR/zvfs.log" >&2
		dlog_tail
		;;
	direct) [[ -s $WORKDIR/zvfs-direct.log ]] && tail -20 "$WORKDIR/zvfs-direct.log" >&2 ;;
	esac
	die "$what failed on $side"
}

# Run a command on a side (under the side's library environment).
side_run() {
	local side=$1 what=$2
	shift 2
	side_env "$side"
	run_logged "$side" "$what" "${SIDE_ENV[@]}" "$@"
}

# The command prefix to run as USER on a side (the library's environment after setpriv).
as_user() {
	local u=$1 side=$2
	side_env "$side"
	AS_USER=(setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups env HOME="$WORKDIR")
	((${#SIDE_ENV[@]} == 0)) || AS_USER+=("${SIDE_ENV[@]:1}")
}

# The file at path is a ZVFS file that holds no data in its placeholder:
# proof that the library (and so the daemon) served the I/O.
check_zvfs_file() {
	local f=$1 blocks
	getfattr --only-values -n user.zvfs.blob_id "$f" >/dev/null 2>&1 ||
		die "$f has no user.zvfs.blob_id xattr: the library did not create it (see $WORKDIR/zvfs.log and $DLOG)"
	# Data extents, not st_blocks (which also counts an xattr block).
	blocks=$(filefrag "$f" | sed -n 's/.*: \([0-9]*\) extents\{0,1\} found.*/\1/p')
	[[ -n $blocks ]] || blocks=$(stat -c %b "$f")
	((blocks == 0)) || die "$f: the placeholder holds data ($blocks extents): I/O went past ZVFS"
}

# The largest regular file under dir (a table of a database).
largest_file() {
	find "$1" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-
}

dir_of() {
	case $1 in
	daemon) echo "$DMNT" ;;
	direct) echo "$DMNT" ;;
	*) echo "$EXT" ;;
	esac
}

# case side round value -> $RAW
record() {
	echo "$*" >>"$RAW"
}

# Note the load average before a phase (reported).
phase_load() {
	local l
	l=$(bench_load)
	note "load average before $1: $l"
	record "load:$1" - 0 "${l// /,}"
}

# ---- the daemon -------------------------------------------------------------

start_daemon() {
	local cmd=("$ZVFSD" --foreground --device "uring:$DIMG,size=$STORE_B" --socket "$SOCK"
		--cache-size "$CACHE_SIZE")
	[[ -z $DAEMON_SPIN_US ]] || cmd+=(--spin-us "$DAEMON_SPIN_US")
	((DAEMON_FOLLOW)) || cmd+=(--no-follow-cpu)
	show_cmd "${cmd[@]}"
	"${cmd[@]}" >>"$DLOG" 2>&1 &
	DPID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -S $SOCK ]] && break
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! -S $SOCK ]] || ! kill -0 "$DPID" 2>/dev/null; then
		dlog_tail
		DPID=
		die "zvfsd did not come up (no socket $SOCK within 30 s, or it exited)"
	fi
	# Other users' servers must reach it.
	[[ $(stat -c %a "$SOCK") == 666 || $(stat -c %a "$SOCK") == 777 ]] || {
		note "warning: zvfsd made its socket mode $(stat -c %a "$SOCK"), not 0666; chmod 666 here"
		chmod 666 "$SOCK"
	}
}

stop_daemon() {
	local st=0 i
	show_cmd kill -TERM "$DPID"
	kill -TERM "$DPID"
	for ((i = 0; i < 600; i++)); do
		kill -0 "$DPID" 2>/dev/null || break
		grep -q '^State:.*Z' "/proc/$DPID/status" 2>/dev/null && break
		sleep 0.1
	done
	if kill -0 "$DPID" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$DPID/status" 2>/dev/null; then
		note "zvfsd still runs 60 s after SIGTERM: SIGKILL"
		kill -KILL "$DPID"
	fi
	wait "$DPID" || st=$?
	DPID=
	DAEMON_EXIT=$st
	((st == 0)) || dlog_tail
}

start_daemon

# ---- runs -------------------------------------------------------------------

FIO_COMMON=(--ioengine=psync --iodepth=1 --norandommap --randrepeat=0 --group_reporting
	--output-format=json)
FIO_TIMED=(--time_based --runtime="$RUNTIME" --ramp_time="$RAMP")

# The IOPS of job "measure" (all its jobs: group_reporting), read or write side.
fio_iops() {
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
for job in j["jobs"]:
    if job["jobname"] == sys.argv[2]:
        if job.get("error"):
            sys.exit("fio job error %d" % job["error"])
        print("%.1f" % job[sys.argv[3]]["iops"])
        break
else:
    sys.exit("no job " + sys.argv[2])
' "$LOG.json" "$1" "$2"
}

layout() {
	local side=$1 f
	f=$(dir_of "$side")/rand.dat
	note "laying out $f ($FILE_B bytes)"
	side_run "$side" "layout of rand.dat" fio --name=layout --thread --filename="$f" \
		--rw=write --bs=1M --size="$FILE_B" --ioengine=psync --fallocate=none --end_fsync=1
	if [[ $side != ext4 ]]; then
		check_zvfs_file "$f"
		[[ $(stat -c %s "$f") == "$FILE_B" ]] || die "$f: placeholder size $(stat -c %s "$f"), expected $FILE_B"
	fi
}

# fio case (randread-4k ...), shape (1, 4t, 4p), side, round
run_fio() {
	local c=$1 shape=$2 side=$3 round=$4 rw bs v jobs=()
	rw=${c%-*}
	bs=${c#*-}
	case $shape in
	1) jobs=(--numjobs=1 --thread) ;;
	4t) jobs=(--numjobs=4 --thread) ;;
	4p) jobs=(--numjobs=4) ;;
	esac
	if [[ $side == direct ]]; then
		stop_daemon
		((DAEMON_EXIT == 0)) || die "zvfsd exited with status $DAEMON_EXIT when stopped for a direct run"
	fi
	side_run "$side" "fio $c $shape" fio --name=measure "${FIO_COMMON[@]}" "${FIO_TIMED[@]}" \
		"${jobs[@]}" --filename="$(dir_of "$side")/rand.dat" --size="$FILE_B" --rw="$rw" \
		--bs="$bs" --direct=1 --output="$LOG.json"
	[[ $side != direct ]] || start_daemon
	v=$(fio_iops measure "${rw#rand}") || die "fio $c $shape on $side: bad output"
	record "$c@$shape" "$side" "$round" "$v"
}

RTT=$WORKDIR/rtt
# rtt line -> "p50 p90 p99 mean" on stdout
rtt_fields() {
	# shellcheck disable=SC2086 # the fields of rtt's one line
	set -- $1
	[[ $1 == nop && $3 == p50 && $5 == p90 && $7 == p99 && ${15} == mean ]] || return 1
	echo "$4 $6 $8 ${16}"
}

# Warm: NOPs back to back (the daemon's worker spins between them).  Cold:
# 200 us of sleep before each (longer than zvfsd's spin, so its worker sleeps
# on the futex and every NOP wakes it): what a request pays after an idle
# gap, or after a device I/O longer than the spin.
run_rtt() {
	local round=$1 spin kind args line f
	spin=${CLIENT_SPIN_US:-$(($(nproc) > 2 ? 30 : 0))}
	for kind in warm cold; do
		args=(-n "$RTT_COUNT" -w $((RTT_COUNT / 10)) -s "$spin")
		[[ $kind == cold ]] && args=(-n $((RTT_COUNT / 20)) -w 100 -s "$spin" -p 200)
		show_cmd "$RTT" "${args[@]}" "$SOCK"
		line=$("$RTT" "${args[@]}" "$SOCK") || {
			dlog_tail
			die "rtt failed"
		}
		note "$kind: $line"
		f=$(rtt_fields "$line") || die "rtt: unexpected output: $line"
		read -r -a f <<<"$f"
		record "rtt-$kind-p50" daemon "$round" "${f[0]}"
		record "rtt-$kind-p90" daemon "$round" "${f[1]}"
		record "rtt-$kind-p99" daemon "$round" "${f[2]}"
		record "rtt-$kind-mean" daemon "$round" "${f[3]}"
	done
}

# ---- PostgreSQL ---------------------------------------------------------------

declare -A PGPORT=([daemon]=$((20000 + RANDOM % 10000)) [ext4]=$((30000 + RANDOM % 10000)))
pg_run_dir() { echo "$WORKDIR/run-pg-$1"; }

pg_start() {
	local side=$1 data run i
	data=$(dir_of "$side")/pg
	run=$(pg_run_dir "$side")
	as_user postgres "$side"
	local cmd=("${AS_USER[@]}" "$PGBIN/postgres" -D "$data" -c listen_addresses=
		-c unix_socket_directories="$run" -c port="${PGPORT[$side]}" -c fsync=on
		-c max_connections=30 -c shared_buffers=64MB)
	show_cmd "${cmd[@]}"
	"${cmd[@]}" >>"$run/pg.log" 2>&1 &
	SRV[pg-$side]=$!
	for ((i = 0; i < 1200; i++)); do
		"$PGBIN/pg_isready" -q -h "$run" -p "${PGPORT[$side]}" -U postgres && return 0
		kill -0 "${SRV[pg-$side]}" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 30 "$run/pg.log" >&2
	[[ $side == daemon ]] && dlog_tail
	die "postgres on $side did not come up within 120 s"
}

pg_stop() {
	local side=$1 st=0
	kill -INT "${SRV[pg-$side]}"
	wait "${SRV[pg-$side]}" || st=$?
	unset "SRV[pg-$side]"
	((st == 0)) || note "warning: postgres on $side exited $st at fast shutdown"
}

psql_() {
	local side=$1
	shift
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$(pg_run_dir "$side")" \
		-p "${PGPORT[$side]}" -U postgres -d postgres "$@"
}

pg_setup() {
	local side=$1 data run
	data=$(dir_of "$side")/pg
	run=$(pg_run_dir "$side")
	mkdir -p "$data" "$run"
	chown postgres: "$data" "$run"
	chmod 700 "$data"
	as_user postgres "$side"
	run_logged "$side" "initdb" "${AS_USER[@]}" "$PGBIN/initdb" -D "$data" -U postgres \
		-A trust -E UTF8 --locale=C --no-instructions
	[[ $side == ext4 ]] || check_zvfs_file "$data/PG_VERSION"
	pg_start "$side"
	[[ $(psql_ "$side" -c 'SHOW fsync') == on ]] || die "postgres on $side: fsync is not on"
	run_logged "$side" "pgbench -i -s $PG_SCALE" "$PGBIN/pgbench" -i -s "$PG_SCALE" -q \
		-h "$run" -p "${PGPORT[$side]}" -U postgres postgres
	psql_ "$side" -c CHECKPOINT || die "CHECKPOINT on $side failed"
	[[ $side == ext4 ]] || check_zvfs_file "$(largest_file "$data/base")"
}

run_pgbench() {
	local side=$1 round=$2 tps failed
	run_logged "$side" "pgbench" "$PGBIN/pgbench" -c 4 -j 2 -T "$DB_TIME" \
		-h "$(pg_run_dir "$side")" -p "${PGPORT[$side]}" -U postgres postgres
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$LOG" | head -n 1)
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$LOG")
	[[ -n $tps && ${failed:-0} == 0 ]] || {
		cat "$LOG" >&2
		die "pgbench on $side: no tps or failed transactions"
	}
	note "pgbench $side: tps $tps"
	record pgbench "$side" "$round" "$tps"
}

# ---- MariaDB --------------------------------------------------------------------

my_run_dir() { echo "$WORKDIR/run-my-$1"; }
MY_INNO=(--innodb-buffer-pool-size=128M --innodb-log-file-size=64M)

my_opts() {
	local side=$1 run
	run=$(my_run_dir "$side")
	MY_OPTS=(--no-defaults --datadir="$(dir_of "$side")/mysql" --socket="$run/mysqld.sock"
		--skip-networking --pid-file="$run/mysqld.pid" --innodb-flush-log-at-trx-commit=1
		"${MY_INNO[@]}")
}

my_start() {
	local side=$1 run i
	run=$(my_run_dir "$side")
	my_opts "$side"
	as_user mysql "$side"
	show_cmd "${AS_USER[@]}" mariadbd "${MY_OPTS[@]}" --log-error="$run/mysqld.err"
	"${AS_USER[@]}" "$(command -v mariadbd)" "${MY_OPTS[@]}" --log-error="$run/mysqld.err" \
		>>"$run/mysqld.out" 2>&1 &
	SRV[my-$side]=$!
	for ((i = 0; i < 1200; i++)); do
		mariadb-admin --no-defaults -uroot -S "$run/mysqld.sock" ping >/dev/null 2>&1 && return 0
		kill -0 "${SRV[my-$side]}" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 30 "$run/mysqld.err" >&2
	[[ $side == daemon ]] && dlog_tail
	die "mariadbd on $side did not come up within 120 s"
}

my_stop() {
	local side=$1 st=0
	mariadb-admin --no-defaults -uroot -S "$(my_run_dir "$side")/mysqld.sock" shutdown ||
		kill -TERM "${SRV[my-$side]}"
	wait "${SRV[my-$side]}" || st=$?
	unset "SRV[my-$side]"
	((st == 0)) || note "warning: mariadbd on $side exited $st at shutdown"
}

sb() { # side, command, args...
	local side=$1 c=$2
	shift 2
	run_logged "$side" "sysbench $c" sysbench oltp_read_write --db-driver=mysql \
		--mysql-socket="$(my_run_dir "$side")/mysqld.sock" --mysql-user=root --mysql-db=sbtest \
		--tables=4 --table-size="$SB_ROWS" "$@" "$c"
}

my_setup() {
	local side=$1 data run
	data=$(dir_of "$side")/mysql
	run=$(my_run_dir "$side")
	mkdir -p "$data" "$run"
	chown mysql: "$data" "$run"
	as_user mysql "$side"
	run_logged "$side" "mariadb-install-db" "${AS_USER[@]}" mariadb-install-db --no-defaults \
		--datadir="$data" --auth-root-authentication-method=normal --skip-test-db "${MY_INNO[@]}"
	[[ $side == ext4 ]] || check_zvfs_file "$data/ibdata1"
	my_start "$side"
	mariadb --no-defaults -uroot -S "$run/mysqld.sock" -e "CREATE DATABASE sbtest" ||
		die "CREATE DATABASE on $side failed"
	sb "$side" prepare
	[[ $side == ext4 ]] || check_zvfs_file "$data/sbtest/sbtest1.ibd"
}

run_sysbench() {
	local side=$1 round=$2 tps
	sb "$side" run --threads=4 --time="$DB_TIME" --report-interval=0
	tps=$(sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' "$LOG")
	[[ -n $tps ]] || {
		cat "$LOG" >&2
		die "sysbench on $side: no tps in its output"
	}
	note "sysbench $side: tps $tps"
	record sysbench "$side" "$round" "$tps"
}

# ---- the plan ---------------------------------------------------------------------

# Rotate the side order per round: nobody always runs first.
rotated() { # round side...
	local round=$1 k
	shift
	local s=("$@")
	for ((k = 0; k < ${#s[@]}; k++)); do
		echo "${s[(k + round - 1) % ${#s[@]}]}"
	done
}

FIO_CASES=()
has_case fio4k && FIO_CASES+=(randread-4k randwrite-4k)
has_case fio16k && FIO_CASES+=(randread-16k randwrite-16k)

LOAD_START=$(bench_load)
UPTIME_START=$(uptime)

if has_case rtt; then
	show_cmd cc -O2 -I "$ROOT/src" -I "$ROOT/include" -o "$RTT" "$ROOT/bench/rtt.c"
	cc -O2 -I "$ROOT/src" -I "$ROOT/include" -o "$RTT" "$ROOT/bench/rtt.c" ||
		die "cannot build bench/rtt.c"
fi

if ((${#FIO_CASES[@]})); then
	for side in daemon ext4; do # direct mode uses the daemon's file
		layout "$side"
	done
	nruns=0
	for s in $FIO_SHAPES; do
		[[ $s == 4p ]] && nruns=$((nruns + 2)) || nruns=$((nruns + 3))
	done
	nruns=$((nruns * ${#FIO_CASES[@]} * ROUNDS))
	note "$nruns fio runs of about $((RUNTIME + RAMP)) s"
fi

n=0
for ((round = 1; round <= ROUNDS; round++)); do
	if has_case rtt; then
		phase_load "rtt-$round"
		run_rtt "$round"
	fi
	((${#FIO_CASES[@]})) && phase_load "fio-$round"
	for c in "${FIO_CASES[@]}"; do
		for shape in $FIO_SHAPES; do
			sides=(daemon direct ext4)
			[[ $shape == 4p ]] && sides=(daemon ext4)
			for side in $(rotated "$round" "${sides[@]}"); do
				n=$((n + 1))
				note "[$n/$nruns] round $round fio $c x$shape $side"
				run_fio "$c" "$shape" "$side" "$round"
			done
		done
	done
done

if has_case pgbench; then
	phase_load pgbench-setup
	for side in daemon ext4; do
		pg_setup "$side"
	done
	for ((round = 1; round <= ROUNDS; round++)); do
		phase_load "pgbench-$round"
		for side in $(rotated "$round" daemon ext4); do
			run_pgbench "$side" "$round"
		done
	done
	for side in daemon ext4; do
		pg_stop "$side"
	done
fi

if has_case sysbench; then
	# Native AIO, the server's default, on both sides: under the library mariadbd is refused
	# io_uring (which would bypass it) and uses libaio, whose ZVFS completions reach it
	# through the kernel context (src/preload/aio.c); on ext4 it uses io_uring.
	MY_INNO+=(--innodb-use-native-aio=1)
	vars=$(mariadbd --no-defaults --verbose --help 2>/dev/null || true)
	if grep -q '^innodb-log-file-mmap' <<<"$vars"; then
		MY_INNO+=(--innodb-log-file-mmap=OFF)
	fi
	phase_load sysbench-setup
	for side in daemon ext4; do
		my_setup "$side"
	done
	for ((round = 1; round <= ROUNDS; round++)); do
		phase_load "sysbench-$round"
		for side in $(rotated "$round" daemon ext4); do
			run_sysbench "$side" "$round"
		done
	done
	for side in daemon ext4; do
		my_stop "$side"
	done
fi

LOAD_END=$(bench_load)
UPTIME_END=$(uptime)

# ---- the daemon's view, stop, store checks -------------------------------------

STAT_TXT=$WORKDIR/zvfs-stat.txt
show_cmd "$ZVFS" stat --socket "$SOCK"
"$ZVFS" stat --socket "$SOCK" >"$STAT_TXT" 2>&1 || note "warning: zvfs stat failed: $(head -3 "$STAT_TXT")"
DAEMON_EXIT=
stop_daemon
CHECK_LINES=()
CHECK_OK=1
if ((DAEMON_EXIT == 0)); then
	CHECK_LINES+=("zvfsd stopped by SIGTERM: exit 0")
else
	CHECK_LINES+=("zvfsd stopped by SIGTERM: exit $DAEMON_EXIT (see $DLOG)")
	CHECK_OK=0
fi
fsck_store() { # name spec mount
	local rc=0
	show_cmd "$ZVFS" fsck "$2" --mount "$3" -n --no-progress
	"$ZVFS" fsck "$2" --mount "$3" -n --no-progress >"$LOG" 2>&1 || rc=$?
	if ((rc == 0)); then
		CHECK_LINES+=("zvfs fsck --mount of the $1 store after the runs: clean")
	else
		cat "$LOG" >&2
		CHECK_LINES+=("zvfs fsck --mount of the $1 store after the runs: exit $rc ($(grep -c '^error' "$LOG" || true) error lines)")
		CHECK_OK=0
	fi
}
fsck_store daemon "uring:$DIMG,size=$STORE_B" "$DMNT"
for l in "${CHECK_LINES[@]}"; do
	note "$l"
done
printf '%s\n' "${CHECK_LINES[@]}" >"$WORKDIR/checks.txt"

# ---- table ----------------------------------------------------------------------

mkdir -p "$(dirname "$OUT")"
status=0
HOST=$(bench_host)
# How this guest idles decides what waking a sleeping thread costs (cold rtt).
IDLE="cpuidle $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo '?')"
[[ -r /sys/module/haltpoll/parameters/guest_halt_poll_ns ]] &&
	IDLE+=", guest_halt_poll_ns=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns)"
HOST+="; $IDLE"
DISK=$(df --output=source "$WORKDIR" | tail -1)
TOOLS="$(fio --version), $("$PGBIN/postgres" --version 2>/dev/null || echo 'postgres ?'), $(mariadbd --version 2>/dev/null | awk '{print $2, $3}' || echo 'mariadbd ?'), $(sysbench --version 2>/dev/null || echo 'sysbench ?'), ZVFS $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
# shellcheck disable=SC2089 # a string to print, not to run
CMDLINE="ROUNDS=$ROUNDS RUNTIME=$RUNTIME RAMP=$RAMP STORE_SIZE=$STORE_SIZE FILE_SIZE=$FILE_SIZE CACHE_SIZE=$CACHE_SIZE RTT_COUNT=$RTT_COUNT FIO_SHAPES='$FIO_SHAPES' DB_TIME=$DB_TIME PG_SCALE=$PG_SCALE SB_ROWS=$SB_ROWS${DAEMON_SPIN_US:+ DAEMON_SPIN_US=$DAEMON_SPIN_US}$( ((DAEMON_FOLLOW)) || echo " DAEMON_FOLLOW=0")${CLIENT_SPIN_US:+ CLIENT_SPIN_US=$CLIENT_SPIN_US} BENCH_CASES='$BENCH_CASES' bench/daemon_vs_ext4.sh"
SPIN_NOTE="client spin ${CLIENT_SPIN_US:-library default (adaptive; rtt.c $(($(nproc) > 2 ? 30 : 0)) us)}, daemon spin ${DAEMON_SPIN_US:-zvfsd default (50 us, adaptive)}"
# shellcheck disable=SC2090
export RAW OUT HOST DISK FSTYPE DIMG STORE_B CACHE_SIZE ROUNDS RUNTIME RAMP DB_TIME \
	PG_SCALE SB_ROWS LOAD_START LOAD_END UPTIME_START UPTIME_END TOOLS CMDLINE STAT_TXT \
	CHECK_OK SPIN_NOTE RTT_COUNT
export CHECKS_FILE=$WORKDIR/checks.txt
python3 - <<'EOF' || status=$?
import os, statistics, sys

E = os.environ
runs, loads = {}, []
for line in open(E["RAW"]):
    f = line.split()
    if f[0].startswith("load:"):
        loads.append((f[0][5:], f[3].replace(",", " ")))
        continue
    runs.setdefault(f[0], {}).setdefault(f[1], []).append((int(f[2]), float(f[3])))

def med(c, side):
    rs = runs.get(c, {}).get(side)
    return statistics.median(r[1] for r in rs) if rs else None

verdicts = []
def verdict(ok, what):
    verdicts.append((ok, what))
    return "PASS" if ok else "BELOW"

L = []
L.append("# ZVFS through zvfsd (daemon mode) vs direct mode vs ext4, same disk")
L.append("")
L.append("Date: %s  " % os.popen("date -u '+%Y-%m-%d %H:%M UTC'").read().strip())
L.append("Host: %s  " % E["HOST"])
L.append("Disk: %s, file system %s; store %s (%s bytes), used by zvfsd and, with zvfsd stopped, by direct mode; cache %s each  " % (
    E["DISK"], E["FSTYPE"], E["DIMG"], E["STORE_B"], E["CACHE_SIZE"]))
L.append("Runs: %s round(s); fio %s s (after %s s ramp), pgbench/sysbench %s s; interleaved, medians shown; %s  " % (
    E["ROUNDS"], E["RUNTIME"], E["RAMP"], E["DB_TIME"], E["SPIN_NOTE"]))
L.append("Load: `%s` at start, `%s` at end  " % (E["UPTIME_START"].strip(), E["UPTIME_END"].strip()))
if loads:
    L.append("Load average (1/5/15 min) before each phase: " + "; ".join("%s %s" % l for l in loads) + "  ")
L.append("Tools: %s  " % E["TOOLS"])
L.append("Command: %s" % E["CMDLINE"])
L.append("")
for l in open(E["CHECKS_FILE"]):
    L.append("- " + l.strip())
if E["CHECK_OK"] != "1":
    verdicts.append((False, "daemon exit / store check (above)"))
L.append("")

if "rtt-warm-p50" in runs:
    L.append("## Null round trip (bench/rtt.c: ZVFS_OP_NOP on one ring)")
    L.append("")
    L.append("| requests | count | p50 | p90 | p99 | mean | target | verdict |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for kind, title, n in (("warm", "back to back", int(E["RTT_COUNT"])),
                           ("cold", "after 200 us asleep (zvfsd's worker sleeps)", int(E["RTT_COUNT"]) // 20)):
        m = lambda q: med("rtt-%s-%s" % (kind, q), "daemon") / 1000.0
        if kind == "warm":
            t, v = "p50 <= 2 us", verdict(m("p50") <= 2.0, "null round trip p50 %.2f us (target <= 2 us)" % m("p50"))
        else:
            t, v = "-", "(information)"
        L.append("| %s | %d | %.2f us | %.2f us | %.2f us | %.2f us | %s | %s |" % (
            title, n, m("p50"), m("p90"), m("p99"), m("mean"), t, v))
    L.append("")

shapes = {"1": "1 job (thread)", "4t": "4 threads", "4p": "4 processes"}
fio = [k for k in runs if "@" in k]
if fio:
    L.append("## fio, psync, QD1 per job, direct=1 (IOPS, all jobs)")
    L.append("")
    L.append("| case | jobs | daemon | direct | ext4 | daemon/direct (>= 0.9x) | daemon/ext4 (>= 1.0x) | verdict |")
    L.append("|---|---|---:|---:|---:|---:|---:|---|")
    order = ["randread-4k", "randwrite-4k", "randread-16k", "randwrite-16k"]
    for c in order:
        for s in ("1", "4t", "4p"):
            k = "%s@%s" % (c, s)
            if k not in runs:
                continue
            d, x, e = med(k, "daemon"), med(k, "direct"), med(k, "ext4")
            dx = d / x if d is not None and x else None
            de = d / e if d is not None and e else None
            v = []
            if dx is not None:
                v.append(verdict(dx >= 0.9, "%s x%s: daemon/direct %.3fx (target 0.9x)" % (c, s, dx)))
            if de is not None:
                v.append(verdict(de >= 1.0, "%s x%s: daemon/ext4 %.3fx (target 1.0x)" % (c, s, de)))
            fmt = lambda y: "%.0f" % y if y is not None else "-"
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                c, shapes[s], fmt(d), fmt(x) if s != "4p" else "- (cannot share a store)", fmt(e),
                "%.3fx" % dx if dx is not None else "-", "%.3fx" % de if de is not None else "-",
                " / ".join(v)))
    L.append("")
    k = "randwrite-16k@1"
    if k in runs and med(k, "ext4"):
        L.append("16 KiB random write QD1, daemon mode / kernel: **%.2fx** now (%.0f vs %.0f IOPS); "
                 "the first prototype (also a daemon): 0.34x (829 vs 2468 IOPS).  " % (
                     med(k, "daemon") / med(k, "ext4"), med(k, "daemon"), med(k, "ext4")))
        L.append("")

db = [c for c in ("pgbench", "sysbench") if c in runs]
if db:
    L.append("## Databases (TPS)")
    L.append("")
    L.append("| benchmark | daemon | ext4 | daemon/ext4 (>= 1.0x) | verdict |")
    L.append("|---|---:|---:|---:|---|")
    title = {"pgbench": "PostgreSQL 15 pgbench -s %s, -c 4 -j 2, fsync=on" % E["PG_SCALE"],
             "sysbench": "MariaDB sysbench oltp_read_write, 4 x %s rows, 4 threads" % E["SB_ROWS"]}
    for c in db:
        d, e = med(c, "daemon"), med(c, "ext4")
        r = d / e if e else 0
        L.append("| %s | %.1f | %.1f | %.3fx | %s |" % (title[c], d, e, r,
                 verdict(r >= 1.0, "%s: daemon/ext4 %.3fx (target 1.0x)" % (c, r))))
    L.append("")

if int(E["ROUNDS"]) > 1:
    sp = []
    for c in runs:
        for s in runs[c]:
            v = [r[1] for r in runs[c][s]]
            m = statistics.median(v)
            if m:
                sp.append("%s %s %.0f%%" % (c, s, 100.0 * (max(v) - min(v)) / m))
    L.append("Spread over the rounds ((max-min)/median): " + "; ".join(sp))
    L.append("")
for ok, what in verdicts:
    L.append("%s: %s  " % ("PASS" if ok else "BELOW", what))
L.append("")
L.append("<details><summary>every run (case, side, round, value)</summary>")
L.append("")
L.append("| case | side | round | value |")
L.append("|---|---|---:|---:|")
for c in runs:
    for s in sorted(runs[c]):
        for r in sorted(runs[c][s]):
            L.append("| %s | %s | %d | %.1f |" % (c, s, r[0], r[1]))
L.append("")
L.append("</details>")
L.append("")
try:
    st = open(E["STAT_TXT"]).read().rstrip()
except OSError:
    st = ""
if st:
    L.append("<details><summary>zvfs stat at the end of the runs</summary>")
    L.append("")
    L.append("```")
    L.append(st)
    L.append("```")
    L.append("")
    L.append("</details>")
text = "\n".join(L) + "\n"
open(E["OUT"], "w").write(text)
print(text, end="")
sys.exit(0 if all(v[0] for v in verdicts) else 3)
EOF
note "report written to $OUT"
if [[ $status -ne 0 && $status -ne 3 ]]; then
	cp "$RAW" "${OUT%.md}.raw"
	die "could not build the table (raw results: ${OUT%.md}.raw)"
fi
if [[ $status -eq 3 && ${STRICT:-0} == 1 ]]; then
	exit 3
fi
exit 0
