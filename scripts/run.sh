#!/usr/bin/env bash
# The main job on the embedded default: build ZVFS, create the default store
# image if it is missing, and run the device benchmark on it side by side
# with fio (the kernel path).  Until the file layer exists this benchmark is
# what ZVFS does.  Environment: ZVFS_DEVICE (default /var/lib/zvfs/store.img),
# ZVFS_STORE_SIZE (default 2G), ROUNDS and RUNTIME (default 1 and 5 s).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/build.sh release

img=${ZVFS_DEVICE:-/var/lib/zvfs/store.img}
export IMG="$img" IMG_SIZE=${ZVFS_STORE_SIZE:-2G}
export ROUNDS=${ROUNDS:-1} RUNTIME=${RUNTIME:-5}
mkdir -p "$(dirname "$img")"
echo "run: device benchmark on $img (ROUNDS=$ROUNDS, RUNTIME=${RUNTIME}s per run)"
exec bench/bdev_vs_fio.sh
