#!/usr/bin/env bash
# fio through libzvfs.so with verify=crc32c: psync, pvsync2, libaio, odd block
# sizes, O_DIRECT, appends and growth.  Jobs run as threads (thread=1): in
# direct mode one process holds the store, and fio forks a process per job
# otherwise.
# usage: test_fio.sh mount|plain     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" fio
zt_need fio

common="--thread --directory=$D --verify=crc32c --do_verify=1 --verify_fatal=1 \
--group_reporting --minimal --output=$T/fio.out"
run_fio() { # name, fio options...
	local name=$1
	shift
	: >"$T/fio.out"
	# shellcheck disable=SC2086
	# In $T: fio leaves verify state files in its working directory.
	if (cd "$T" && zt_run fio --name="$name" $common "$@") >"$T/fio.stdout" 2>&1; then
		# --minimal: field 5 is the job's error number.
		local err
		err=$(awk -F';' '{print $5}' "$T/fio.out" | sort -u | tr '\n' ' ')
		if [ "$err" = "0 " ]; then
			zt_ok "fio $name"
		else
			zt_fail "fio $name" "job error '$err'"
		fi
	else
		zt_fail "fio $name" "exit status $?: $(tail -n 5 "$T/fio.stdout" | tr '\n' ' ')"
	fi
}

run_fio psync-3584 --ioengine=psync --rw=randwrite --bs=3584 --size=8M --numjobs=4
run_fio pvsync2-bsrange --ioengine=pvsync2 --rw=randwrite --bsrange=512-96k --size=8M \
	--numjobs=4
run_fio pvsync2-seq-write --ioengine=pvsync2 --rw=write --bs=12k --size=6M --numjobs=2
run_fio libaio-direct-4k --ioengine=libaio --iodepth=16 --rw=randwrite --bs=4k --direct=1 \
	--size=8M --numjobs=4
run_fio libaio-buffered-odd --ioengine=libaio --iodepth=8 --rw=randwrite --bs=7k --size=6M \
	--numjobs=2
run_fio psync-direct-4k --ioengine=psync --rw=randwrite --bs=4k --direct=1 --size=8M --numjobs=2
run_fio psync-seq-grow --ioengine=psync --rw=write --bs=5000 --size=10M --fallocate=none \
	--numjobs=2
run_fio psync-seq-fallocate --ioengine=psync --rw=write --bs=64k --size=8M \
	--fallocate=native --numjobs=1
# Appends: a file written, then grown by a second run that appends to it.
run_fio append-base --ioengine=psync --rw=write --bs=4k --size=4M --filename=append.dat
run_fio append-more --ioengine=psync --rw=write --bs=3000 --size=4M --file_append=1 \
	--filename=append.dat
zt_eq "append: file size" $((8 * 1024 * 1024)) "$(zt_run stat -c %s "$D/append.dat")"
zt_eq "append: size without the library" $((8 * 1024 * 1024)) "$(stat -c %s "$D/append.dat")"
# Written by one process, verified by another.
run_fio persist-write --ioengine=psync --rw=randwrite --bs=8k --size=8M --filename=persist.dat \
	--randseed=1234 --do_verify=0
run_fio persist-verify --ioengine=psync --rw=randwrite --bs=8k --size=8M \
	--filename=persist.dat --randseed=1234 --verify_only=1
zt_finish
