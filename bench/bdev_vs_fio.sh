#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/bdev_vs_fio.sh - the ZVFS block layer against the kernel path, side by side.
#
# Runs zvfs-bdevperf (io_uring driver) and fio (io_uring, libaio, psync), all
# O_DIRECT on the same zero-filled image file, for 4 KiB random reads and
# writes at queue depth 1 and 32.  Runs are interleaved (round after round,
# every engine once per case and round, the engine order rotating from one
# round to the next) so that drift of a shared, noisy machine hits every
# engine alike; the median of the rounds is reported.  The table gives the
# ratio ZVFS / best fio engine per case, checked against a 0.95x target.
#
# psync cannot keep more than one request in flight per job, so its QD32
# figure is 32 jobs of QD1 (numjobs=32, group_reporting): 32 threads and
# 32 system calls per 32 I/Os, which is what an application without async
# I/O would do.
#
# Environment (all optional):
#   IMG          image file to use; created if missing (default
#                /var/tmp/zvfs-bench/image.img); an existing file is reused as is
#   IMG_SIZE     size of a new image (default 2G; K/M/G suffixes)
#   ROUNDS       rounds per case (default 3)
#   RUNTIME      measured seconds per run (default 10)
#   RAMP         warm-up seconds before each run, not measured (default 1)
#   QUICK=1      smoke run: ROUNDS=1, RUNTIME=3, RAMP=0 unless set explicitly
#   ZVFS_BUILD   meson build directory (default <repo>/build); built if needed
#   OUT          where to write the Markdown table
#                (default bench/results/bdev_vs_fio-<date>.md)
#   TARGET       ratio to meet (default 0.95)
#   STRICT=1     exit 3 if some case is below the target
#   ZVFS_ARGS    extra zvfs-bdevperf options, e.g. --submit-each (default none)
#
# Usage: bench/bdev_vs_fio.sh            (about 9 minutes with the defaults)
#        QUICK=1 bench/bdev_vs_fio.sh    (about 50 seconds)
set -euo pipefail

PROG=bdev_vs_fio
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_no_args "$@"
bench_knobs 3 10 1
TARGET=${TARGET:-0.95}
IMG=${IMG:-/var/tmp/zvfs-bench/image.img}
IMG_SIZE=${IMG_SIZE:-2G}
ZVFS_BUILD=${ZVFS_BUILD:-$ROOT/build}
ZVFS_ARGS=${ZVFS_ARGS:-}
read -ra ZVFS_ARGV <<<"$ZVFS_ARGS"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/bdev_vs_fio-$STAMP.md}


# ---- tools ------------------------------------------------------------------

bench_need_tools fio python3
BDEVPERF=$ZVFS_BUILD/src/cli/zvfs-bdevperf
bench_build "$ZVFS_BUILD" src/cli/zvfs-bdevperf

# ---- image ------------------------------------------------------------------

if [[ -e $IMG ]]; then
	[[ -f $IMG || -b $IMG ]] || die "$IMG: not a regular file or block device"
	if [[ -b $IMG ]]; then
		SIZE=$(blockdev --getsize64 "$IMG")
	else
		SIZE=$(stat -c %s "$IMG")
	fi
	echo "$PROG: reusing $IMG ($SIZE bytes)" >&2
else
	SIZE=$(bench_bytes "$IMG_SIZE")
	# Written, not fallocated: every block is allocated and initialised, so
	# no run pays for unwritten extents or first-write allocation.
	bench_make_image "$IMG" "$SIZE"
fi
# fio and ZVFS must use the same bytes: round down to 4 KiB like the device does.
SIZE=$((SIZE / 4096 * 4096))

# ---- runs -------------------------------------------------------------------

ENGINES=(zvfs io_uring libaio psync)
CASES=("randread 1" "randread 32" "randwrite 1" "randwrite 32")
RAW=$(mktemp /tmp/bdev_vs_fio.XXXXXX)
LOG=$(mktemp /tmp/bdev_vs_fio-log.XXXXXX)
trap 'rm -f "$RAW" "$LOG" "$LOG.json"' EXIT

# One run; appends "case qd engine round iops p50_us p99_us" to $RAW.
run_one() {
	local rw=$1 qd=$2 eng=$3 round=$4 json

	if [[ $eng == zvfs ]]; then
		json=$("$BDEVPERF" -d "uring:$IMG" -w "$rw" -b 4K -q "$qd" -j 1 -t "$RUNTIME" \
			--ramp "$RAMP" --json "${ZVFS_ARGV[@]}" 2>"$LOG") || {
			cat "$LOG" >&2
			die "zvfs-bdevperf failed ($rw QD$qd)"
		}
		python3 -c '
import json, sys
j = json.loads(sys.argv[1])
l = j["lat_us"]
print(sys.argv[2], sys.argv[3], "zvfs", sys.argv[4], "%.1f" % j["iops"], "%.1f" % l["p50"], "%.1f" % l["p99"])
' "$json" "$rw" "$qd" "$round" >>"$RAW"
		return
	fi
	local jobs=1 depth=$qd
	if [[ $eng == psync ]]; then
		jobs=$qd # one request in flight per job
		depth=1
	fi
	fio --name=bench --filename="$IMG" --size="$SIZE" --ioengine="$eng" --direct=1 \
		--rw="$rw" --bs=4k --iodepth="$depth" --numjobs="$jobs" --group_reporting \
		--runtime="$RUNTIME" --ramp_time="$RAMP" --time_based --norandommap \
		--randrepeat=0 --lat_percentiles=1 --percentile_list=50:99:99.9 \
		--output-format=json --output="$LOG.json" >"$LOG" 2>&1 || {
		cat "$LOG" >&2
		die "fio $eng failed ($rw QD$qd)"
	}
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
job = j["jobs"][0]
if job.get("error"):
    sys.exit("fio job error %d" % job["error"])
d = job["read" if sys.argv[2] == "randread" else "write"]
p = d["lat_ns"]["percentile"]
print(sys.argv[2], sys.argv[3], sys.argv[5], sys.argv[4], "%.1f" % d["iops"],
      "%.1f" % (p["50.000000"] / 1e3), "%.1f" % (p["99.000000"] / 1e3))
' "$LOG.json" "$rw" "$qd" "$round" "$eng" >>"$RAW"
	rm -f "$LOG.json"
}

LOAD_START=$(bench_load)
total=$((ROUNDS * ${#CASES[@]} * ${#ENGINES[@]}))
n=0
echo "$PROG: $total runs of $((RUNTIME + RAMP)) s: about $(((total * (RUNTIME + RAMP + 1) + 59) / 60)) min" >&2
for ((round = 1; round <= ROUNDS; round++)); do
	for c in "${CASES[@]}"; do
		read -r rw qd <<<"$c"
		# Rotate the engine order per round: nobody always runs first.
		for ((k = 0; k < ${#ENGINES[@]}; k++)); do
			eng=${ENGINES[(k + round - 1) % ${#ENGINES[@]}]}
			n=$((n + 1))
			printf '%s: [%d/%d] round %d %s QD%s %s\n' "$PROG" "$n" "$total" "$round" \
				"$rw" "$qd" "$eng" >&2
			run_one "$rw" "$qd" "$eng" "$round"
		done
	done
done

# ---- table ------------------------------------------------------------------

LOAD_END=$(bench_load)
FSTYPE=$(df --output=fstype "$IMG" 2>/dev/null | tail -1)
mkdir -p "$(dirname "$OUT")"
status=0
# shellcheck disable=SC2016 # the quotes are Python's; the shell expands inside them
python3 - "$RAW" "$OUT" "$TARGET" <<EOF || status=$?
import statistics, sys

raw, out, target = sys.argv[1], sys.argv[2], float(sys.argv[3])
fio_engines = ["io_uring", "libaio", "psync"]
runs = {}
for line in open(raw):
    rw, qd, eng, rnd, iops, p50, p99 = line.split()
    runs.setdefault((rw, int(qd)), {}).setdefault(eng, []).append(
        (int(rnd), float(iops), float(p50), float(p99)))

def med(rs, i):
    return statistics.median(r[i] for r in rs)

def spread(rs):
    v = [r[1] for r in rs]
    m = statistics.median(v)
    return 100.0 * (max(v) - min(v)) / m if m else 0.0

lines = []
lines.append("# ZVFS bdev vs fio, 4 KiB O_DIRECT on one image file")
lines.append("")
lines.append("Date: $(date -u '+%Y-%m-%d %H:%M UTC')  ")
lines.append("Host: $(bench_host)  ")
lines.append("Image: $IMG ($SIZE bytes), file system ${FSTYPE:-?}  ")
lines.append("Runs: $ROUNDS round(s) x $RUNTIME s (after $RAMP s ramp), interleaved; medians shown  ")
lines.append("Load average (1/5/15 min): $LOAD_START at start, $LOAD_END at end  ")
lines.append("Tools: $("$BDEVPERF" --version), $(fio --version)  ")
lines.append("Command: ROUNDS=$ROUNDS RUNTIME=$RUNTIME RAMP=$RAMP IMG=$IMG${ZVFS_ARGS:+ ZVFS_ARGS='$ZVFS_ARGS'} bench/bdev_vs_fio.sh")
lines.append("")
lines.append("| case | zvfs IOPS | best fio | io_uring | libaio | psync | zvfs/best | p99 us zvfs / best fio | verdict |")
lines.append("|---|---:|---|---:|---:|---:|---:|---:|---|")
verdicts = []
for (rw, qd) in sorted(runs, key=lambda k: (k[0], k[1])):
    e = runs[(rw, qd)]
    z = med(e["zvfs"], 1)
    fio = {n: med(e[n], 1) for n in fio_engines if n in e}
    best = max(fio, key=fio.get)
    ratio = z / fio[best] if fio[best] else 0.0
    ok = ratio >= target
    verdicts.append((rw, qd, ratio, ok, best))
    cells = []
    for n in fio_engines:
        s = "%.0f" % fio[n] if n in fio else "-"
        if n == "psync" and qd > 1:
            s += " (%d jobs)" % qd
        cells.append(s)
    lines.append("| %s QD%d | %.0f | %s %.0f | %s | %.3fx | %.0f / %.0f | %s |" % (
        rw, qd, z, best, fio[best], " | ".join(cells), ratio,
        med(e["zvfs"], 3), med(e[best], 3), "PASS" if ok else "BELOW"))
lines.append("")
lines.append("Spread of IOPS over the rounds ((max-min)/median): " + "; ".join(
    "%s QD%d: %s" % (rw, qd, ", ".join("%s %.0f%%" % (n, spread(runs[(rw, qd)][n]))
                                         for n in ["zvfs"] + fio_engines if n in runs[(rw, qd)]))
    for (rw, qd) in sorted(runs)))
lines.append("")
for rw, qd, ratio, ok, best in verdicts:
    lines.append("%s: %s QD%d: zvfs/%s = %.3fx (target %.2fx)  " % (
        "PASS" if ok else "BELOW", rw, qd, best, ratio, target))
lines.append("")
lines.append("<details><summary>every run (round, IOPS, p50 us, p99 us)</summary>")
lines.append("")
lines.append("| case | engine | round | IOPS | p50 us | p99 us |")
lines.append("|---|---|---:|---:|---:|---:|")
for (rw, qd) in sorted(runs):
    for n in ["zvfs"] + fio_engines:
        for r in sorted(runs[(rw, qd)].get(n, [])):
            lines.append("| %s QD%d | %s | %d | %.0f | %.1f | %.1f |" % (rw, qd, n, *r))
lines.append("")
lines.append("</details>")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text, end="")
sys.exit(0 if all(v[3] for v in verdicts) else 3)
EOF
echo "$PROG: table written to $OUT" >&2
if [[ $status -ne 0 && $status -ne 3 ]]; then
	cp "$RAW" "${OUT%.md}.raw"
	die "could not build the table (raw results: ${OUT%.md}.raw)"
fi
if [[ $status -eq 3 && ${STRICT:-0} == 1 ]]; then
	exit 3
fi
exit 0
