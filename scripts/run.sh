#!/usr/bin/env bash
# The main job on the embedded default: build ZVFS, run real programs with
# their files on ZVFS (the default store image, no configuration), then
# benchmark programs on ZVFS against the same programs on ext4.
#
# Environment: ZVFS_DEVICE (default: the library's own default store,
# /var/lib/zvfs/store.img, 4 GiB, preallocated, created and formatted on first use),
# ZVFS_MOUNT (default /zvfs), ROUNDS and RUNTIME for the benchmark (default 1
# round of 5 s per case; bench/fs_vs_ext4.sh --help lists the rest).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/build.sh release

lib=$PWD/build/src/preload/libzvfs.so
mnt=${ZVFS_MOUNT:-/zvfs}
mkdir -p "$mnt"
export ZVFS_MODE=direct
echo "run: programs on ZVFS: LD_PRELOAD=$lib, mount $mnt, store ${ZVFS_DEVICE:-/var/lib/zvfs/store.img (default)}"

# One shell under the library runs them all, so the store is mounted once.
work=$mnt/zvfs-run.$$
LD_PRELOAD=$lib bash -euo pipefail -c '
	work=$1
	mkdir -p "$work"
	echo "run: + dd 64 MiB of random data into $work/random"
	dd if=/dev/urandom of="$work/random" bs=1M count=64 status=none
	cp "$work/random" "$work/copy"
	echo "run: + sha256sum (copy made by cp on ZVFS)"
	sha256sum "$work/random" "$work/copy"
	echo "run: + sqlite3 $work/test.db"
	sqlite3 "$work/test.db" "create table t(k integer primary key, v text);
		with recursive n(i) as (select 1 union all select i + 1 from n where i < 10000)
		insert into t select i, hex(randomblob(32)) from n;
		select count(*) || \" rows, integrity \" || (select * from pragma_integrity_check) from t;"
	ls -l "$work"
	rm -rf "$work"
' run "$work"
echo "run: without the library the placeholders are empty Linux files; zvfs info shows the store:"
build/src/cli/zvfs info "${ZVFS_DEVICE:-/var/lib/zvfs/store.img}" | head -12

export ROUNDS=${ROUNDS:-1} RUNTIME=${RUNTIME:-5}
echo "run: benchmark: programs on ZVFS vs on ext4 (ROUNDS=$ROUNDS, RUNTIME=${RUNTIME}s per case)"
exec bench/fs_vs_ext4.sh
