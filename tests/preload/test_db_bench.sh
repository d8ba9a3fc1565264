#!/usr/bin/env bash
# RocksDB db_bench through libzvfs.so (direct mode: one process, many threads).
# usage: test_db_bench.sh mount|plain     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" db_bench
zt_need db_bench

num=100000
opts="--num=$num --use_direct_reads=false --verify_checksum=1 --seed=4242 --threads=1 \
--compression_type=none --write_buffer_size=1048576 --target_file_size_base=1048576"
found() { # db_bench output: "(F of N found)" of readrandom
	sed -n 's/.*(\([0-9]* of [0-9]*\) found).*/\1/p' | tail -n 1
}

# A unique key per write: every read finds its key.
# shellcheck disable=SC2086
out=$(zt_run db_bench --benchmarks=filluniquerandom,readrandom --db="$D/unique" $opts 2>&1)
st=$?
zt_eq "filluniquerandom,readrandom: exit status" 0 "$st"
zt_eq "readrandom found every key" "$num of $num" "$(echo "$out" | found)"
[ $st -eq 0 ] || echo "$out" | tail -n 20

# fillrandom draws keys with repeats; the count found is deterministic for a
# seed, so it must equal a run on a plain directory without the library.
# shellcheck disable=SC2086
ref=$(db_bench --benchmarks=fillrandom,readrandom --db="$T/ref-db" $opts 2>&1 | found)
# shellcheck disable=SC2086
out=$(zt_run db_bench --benchmarks=fillrandom,readrandom --db="$D/random" $opts 2>&1)
st=$?
zt_eq "fillrandom,readrandom: exit status" 0 "$st"
zt_eq "readrandom found as many as without the library" "$ref" "$(echo "$out" | found)"
[ $st -eq 0 ] || echo "$out" | tail -n 20

# Reopen the existing database in a new process (recovery, manifest, WAL).
# shellcheck disable=SC2086
out=$(zt_run db_bench --benchmarks=readrandom --use_existing_db=1 --db="$D/unique" $opts 2>&1)
zt_eq "reopened database: every key found" "$num of $num" "$(echo "$out" | found)"
zt_finish
