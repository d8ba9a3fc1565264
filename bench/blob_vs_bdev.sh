#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/blob_vs_bdev.sh - the ZVFS blobstore against the block layer under it.
#
# Four groups, the first three interleaved (round after round, every case and
# tool once per round, the order rotating), medians of the rounds reported:
#
#  1. thick blob vs raw device: 4 KiB randread/randwrite at QD1 and QD32,
#     zvfs-blobperf on a thick blob against zvfs-bdevperf on the very bytes
#     of the image under that blob (--offset/--span = the blob's clusters).
#     Target: blob/raw >= 0.95.
#  2. thin blob allocation: 4 KiB randwrite at QD1 and QD32 into a fresh thin
#     blob of a store with 4 KiB clusters (every write to a new cluster
#     allocates; the blob spans the whole store, so most writes of a run land
#     on a new cluster: the run prints the share), against a thick blob of a
#     store made the same way (same mkfs, same punched-then-refilled file:
#     the file system's cost of filling holes hits both alike).  Target:
#     thin/thick >= 0.5.  The thick blob of group 1 (written through once,
#     no holes) is shown as well.
#  3. RAM backend (ram:size=1G), one thread, QD1, 4 KiB random read and write
#     on a thick blob, against SPDK bdevperf's 1.2-1.4 M IOPS per core on a
#     RAM disk (this machine class).  Target: > 1.4 M.  The raw ram bdev is
#     shown for scale.
#  4. unclean load: a store of 1,000 / 10,000 / 100,000 blobs (thin, one
#     cluster written, two xattrs: a small ZVFS file), dropped without unload,
#     then zvfs_bs_load() timed (the recovery), then a clean load.  On RAM and
#     on an image file (the store is built on RAM and copied).  Target: < 2 s.
#
# Environment (all optional):
#   IMG          image file for groups 1 (default /var/tmp/zvfs-bench/blob.img);
#                created zero-filled if missing, and formatted as a store here
#   THIN_IMG     image file for group 2 (default <IMG dir>/thin.img, same size)
#   LOAD_DIR     where group 4's images go (default <IMG dir>)
#   IMG_SIZE     size of new images (default 4G)
#   ROUNDS       rounds (default 3)
#   RUNTIME      measured seconds per run (default 10)
#   RAMP         warm-up seconds before each run, not measured (default 1)
#   QUICK=1      smoke run: ROUNDS=1, RUNTIME=3, RAMP=0, LOAD_COUNTS="1000 10000"
#   LOAD_COUNTS  blob counts of group 4 (default "1000 10000 100000")
#   BENCH_GROUPS which groups to run (default "1 2 3 4")
#   ZVFS_BUILD   meson build directory (default <repo>/build); built if needed
#   OUT          the Markdown table (default bench/results/blob_vs_bdev-<date>.md)
#   STRICT=1     exit 3 if some case is below its target
#
# Usage: bench/blob_vs_bdev.sh            (about 15 minutes with the defaults)
#        QUICK=1 bench/blob_vs_bdev.sh    (2-7 minutes: formatting and filling the images dominates)
set -euo pipefail

PROG=blob_vs_bdev
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_no_args "$@"
[[ ${QUICK:-0} == 1 ]] && LOAD_COUNTS=${LOAD_COUNTS:-1000 10000}
bench_knobs 3 10 1
LOAD_COUNTS=${LOAD_COUNTS:-1000 10000 100000}
GROUPS_RUN=${BENCH_GROUPS:-1 2 3 4}
IMG=${IMG:-/var/tmp/zvfs-bench/blob.img}
THIN_IMG=${THIN_IMG:-$(dirname "$IMG")/thin.img}
LOAD_DIR=${LOAD_DIR:-$(dirname "$IMG")}
IMG_SIZE=${IMG_SIZE:-4G}
ZVFS_BUILD=${ZVFS_BUILD:-$ROOT/build}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/blob_vs_bdev-$STAMP.md}

has_group() { [[ " $GROUPS_RUN " == *" $1 "* ]]; }

# ---- tools ------------------------------------------------------------------

bench_need_tools python3
BDEVPERF=$ZVFS_BUILD/src/cli/zvfs-bdevperf
BLOBPERF=$ZVFS_BUILD/src/cli/zvfs-blobperf
bench_build "$ZVFS_BUILD" src/cli/zvfs-bdevperf src/cli/zvfs-blobperf

# ---- images -----------------------------------------------------------------

# A zero-filled image, every block written (as bench/bdev_vs_fio.sh makes it).
make_image() {
	local img=$1 size

	if [[ -e $img ]]; then
		[[ -f $img ]] || die "$img: not a regular file"
		return
	fi
	size=$(bench_bytes "$IMG_SIZE")
	((size >= 256 * 1048576)) || die "IMG_SIZE: need at least 256M: $IMG_SIZE"
	bench_make_image "$img" "$size"
}

RAW=$(mktemp /tmp/blob_vs_bdev.XXXXXX)
LOG=$(mktemp /tmp/blob_vs_bdev-log.XXXXXX)
trap 'rm -f "$RAW" "$LOG"' EXIT

# Run a tool with --json; the JSON line goes to stdout.
run_json() {
	local what=$1
	shift
	"$@" --json 2>"$LOG" || {
		cat "$LOG" >&2
		die "$what failed: $*"
	}
}

# Field extraction from a JSON line: jget JSON expr (Python on j).
jget() {
	python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# group case tool round iops p50 p99 extra
record() {
	local j=$1 g=$2 case=$3 tool=$4 round=$5 extra=${6:--}
	python3 -c '
import json, sys
j = json.loads(sys.argv[1])
print(*sys.argv[2:6], "%.1f" % j["iops"], "%.2f" % j["lat_us"]["p50"], "%.2f" % j["lat_us"]["p99"], sys.argv[6])
' "$j" "$g" "$case" "$tool" "$round" "$extra" >>"$RAW"
}

BLOB_OFF=0
BLOB_SPAN=0
if has_group 1; then
	make_image "$IMG"
	# The thick store of group 1: made once, the blob written through once
	# (so no run meets a hole the mkfs punched), reused by every round.
	echo "$PROG: formatting $IMG (1 MiB clusters) and filling its thick blob" >&2
	j=$(run_json "mkfs" "$BLOBPERF" -d "uring:$IMG" --mkfs --fill -w read -b 1M -t 1)
	BLOB_OFF=$(jget "$j" 'j["blob"]["data_offset"]')
	BLOB_SPAN=$(jget "$j" 'j["span"]')
	echo "$PROG: thick blob: $BLOB_SPAN bytes at device offset $BLOB_OFF" >&2
fi
has_group 2 && make_image "$THIN_IMG"
THIN_MKFS=(--mkfs --cluster-size 4K --md-pages 16384)

# ---- runs -------------------------------------------------------------------

# One run of group g, case c ("randread 1"), tool t; appends to $RAW.
run_case() {
	local g=$1 rw=$2 qd=$3 tool=$4 round=$5 j extra=-
	local common=(-w "$rw" -b 4K -q "$qd" -j 1 -t "$RUNTIME" --ramp "$RAMP")

	case $g/$tool in
	1/raw)
		j=$(run_json bdevperf "$BDEVPERF" -d "uring:$IMG" --offset "$BLOB_OFF" \
			--span "$BLOB_SPAN" "${common[@]}") ;;
	1/thick)
		j=$(run_json blobperf "$BLOBPERF" -d "uring:$IMG" "${common[@]}") ;;
	2/thin)
		j=$(run_json blobperf "$BLOBPERF" -d "uring:$THIN_IMG" "${THIN_MKFS[@]}" --thin \
			"${common[@]}")
		extra=$(jget "$j" '"%d/%d" % (j["blob"]["allocated_in_run"], j["blob"]["completions"])') ;;
	2/thick)
		j=$(run_json blobperf "$BLOBPERF" -d "uring:$THIN_IMG" "${THIN_MKFS[@]}" \
			"${common[@]}") ;;
	3/raw)
		j=$(run_json bdevperf "$BDEVPERF" -d ram:size=1G "${common[@]}") ;;
	3/thick)
		j=$(run_json blobperf "$BLOBPERF" -d ram:size=1G --mkfs --fill "${common[@]}") ;;
	esac
	record "$j" "$g" "$rw-QD$qd" "$tool" "$round" "$extra"
}

# group "rw qd" tools...
declare -a PLAN=()
has_group 1 && for c in "randread 1" "randread 32" "randwrite 1" "randwrite 32"; do
	PLAN+=("1|$c|raw thick")
done
has_group 2 && for c in "randwrite 1" "randwrite 32"; do PLAN+=("2|$c|thin thick"); done
has_group 3 && for c in "randread 1" "randwrite 1"; do PLAN+=("3|$c|thick raw"); done

LOAD_START=$(bench_load)
total=0
for p in "${PLAN[@]}"; do
	IFS='|' read -r _ _ tools <<<"$p"
	read -ra ta <<<"$tools"
	total=$((total + ${#ta[@]}))
done
total=$((total * ROUNDS))
echo "$PROG: $total runs of $((RUNTIME + RAMP)) s: about $(((total * (RUNTIME + RAMP + 2) + 59) / 60)) min, then the load tests" >&2
n=0
for ((round = 1; round <= ROUNDS; round++)); do
	for p in "${PLAN[@]}"; do
		IFS='|' read -r g c tools <<<"$p"
		read -r rw qd <<<"$c"
		read -ra ta <<<"$tools"
		for ((k = 0; k < ${#ta[@]}; k++)); do
			t=${ta[(k + round - 1) % ${#ta[@]}]}
			n=$((n + 1))
			printf '%s: [%d/%d] round %d group %s %s QD%s %s\n' "$PROG" "$n" "$total" \
				"$round" "$g" "$rw" "$qd" "$t" >&2
			run_case "$g" "$rw" "$qd" "$t" "$round"
		done
	done
	# Group 4 once per round as well: load times drift with the machine too.
	if has_group 4; then
		for nb in $LOAD_COUNTS; do
			# Device: md pages (2 per blob + slack) and a 16 KiB cluster per blob.
			mib=$(((nb * 2 + nb / 16 + 256) * 4096 / 1048576 + (nb + nb / 16 + 64) * 16384 / 1048576 + 16))
			for where in ram file; do
				printf '%s: round %d load test %d blobs on %s\n' "$PROG" "$round" "$nb" "$where" >&2
				if [[ $where == ram ]]; then
					j=$(run_json load "$BLOBPERF" -d "ram:size=${mib}M" --load-test "$nb")
				else
					mkdir -p "$LOAD_DIR"
					rm -f "$LOAD_DIR/load-$nb.img"
					j=$(run_json load "$BLOBPERF" -d "ram:size=${mib}M" --load-test "$nb" \
						--load-copy "uring:$LOAD_DIR/load-$nb.img,size=${mib}M,create")
					rm -f "$LOAD_DIR/load-$nb.img"
				fi
				python3 -c '
import json, sys
j = json.loads(sys.argv[1])
print("4", "load-%s" % sys.argv[2], sys.argv[3], sys.argv[4], "%.4f" % j["unclean_load_s"], "%.4f" % j["clean_load_s"], "%.3f" % j["create_s"], "-")
' "$j" "$nb" "$where" "$round" >>"$RAW"
			done
		done
	fi
done

# ---- tables -----------------------------------------------------------------

LOAD_END=$(bench_load)
FSTYPE=$(df --output=fstype "$(dirname "$IMG")" 2>/dev/null | tail -1)
mkdir -p "$(dirname "$OUT")"
status=0
python3 - "$RAW" "$OUT" <<EOF || status=$?
import statistics, sys

raw, out = sys.argv[1], sys.argv[2]
runs = {}
for line in open(raw):
    g, case, tool, rnd, a, b, c, extra = line.split()
    runs.setdefault((int(g), case), {}).setdefault(tool, []).append(
        (int(rnd), float(a), float(b), float(c), extra))

def med(rs, i):
    return statistics.median(r[i] for r in rs)

def spread(rs, i=1):
    v = [r[i] for r in rs]
    m = statistics.median(v)
    return 100.0 * (max(v) - min(v)) / m if m else 0.0

def order(case):
    rw, qd = case.rsplit("-QD", 1) if "-QD" in case else (case, "0")
    return (rw, int(qd)) if qd.isdigit() else (rw, 0)

L = []
L.append("# ZVFS blobstore vs block layer, 4 KiB")
L.append("")
L.append("Date: $(date -u '+%Y-%m-%d %H:%M UTC')  ")
L.append("Host: $(bench_host)  ")
L.append("Images: $IMG (thick store, 1 MiB clusters), $THIN_IMG (4 KiB clusters, re-made per run), file system ${FSTYPE:-?}  ")
L.append("Runs: $ROUNDS round(s) x $RUNTIME s (after $RAMP s ramp), interleaved; medians shown  ")
L.append("Load average (1/5/15 min): $LOAD_START at start, $LOAD_END at end  ")
L.append("Tools: $("$BLOBPERF" --version), $("$BDEVPERF" --version)  ")
L.append("Command: ROUNDS=$ROUNDS RUNTIME=$RUNTIME RAMP=$RAMP IMG=$IMG LOAD_COUNTS='$LOAD_COUNTS' BENCH_GROUPS='$GROUPS_RUN' bench/blob_vs_bdev.sh")
L.append("")
verdicts = []

def verdict(ok, what):
    verdicts.append((ok, what))
    return "PASS" if ok else "BELOW"

g1 = sorted((k for k in runs if k[0] == 1), key=lambda k: order(k[1]))
if g1:
    L.append("## 1. Thick blob vs raw device (uring, same bytes of one image)")
    L.append("")
    L.append("| case | raw IOPS | thick blob IOPS | blob/raw | p99 us raw / blob | spread raw / blob | verdict (>= 0.95x) |")
    L.append("|---|---:|---:|---:|---:|---:|---|")
    for k in g1:
        e = runs[k]
        r, b = med(e["raw"], 1), med(e["thick"], 1)
        ratio = b / r if r else 0
        L.append("| %s | %.0f | %.0f | %.3fx | %.1f / %.1f | %.0f%% / %.0f%% | %s |" % (
            k[1], r, b, ratio, med(e["raw"], 3), med(e["thick"], 3), spread(e["raw"]),
            spread(e["thick"]), verdict(ratio >= 0.95, "thick/raw %s %.3fx" % (k[1], ratio))))
    L.append("")

g2 = sorted((k for k in runs if k[0] == 2), key=lambda k: order(k[1]))
if g2:
    L.append("## 2. Fresh thin blob (allocation on write, 4 KiB clusters) vs thick")
    L.append("")
    L.append("| case | thick (fresh store) IOPS | thin IOPS | thin/thick | writes that allocated | thick of group 1 | thin/thick(1) | verdict (>= 0.5x) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for k in g2:
        e = runs[k]
        t, n = med(e["thick"], 1), med(e["thin"], 1)
        al = [tuple(map(int, r[4].split("/"))) for r in e["thin"]]
        share = statistics.median(100.0 * a / c if c else 0 for a, c in al)
        g1k = runs.get((1, k[1]), {}).get("thick")
        t1 = med(g1k, 1) if g1k else 0
        ratio = n / t if t else 0
        L.append("| %s | %.0f | %.0f | %.3fx | %.0f%% (median %d clusters) | %s | %s | %s |" % (
            k[1], t, n, ratio, share, statistics.median(a for a, c in al),
            "%.0f" % t1 if t1 else "-", "%.3fx" % (n / t1) if t1 else "-",
            verdict(ratio >= 0.5, "thin/thick %s %.3fx" % (k[1], ratio))))
    L.append("")

g3 = sorted((k for k in runs if k[0] == 3), key=lambda k: order(k[1]))
if g3:
    L.append("## 3. RAM backend, 1 thread, QD1 (SPDK bdevperf reference: 1.2-1.4 M IOPS per core)")
    L.append("")
    L.append("| case | thick blob IOPS | raw ram bdev IOPS | blob p50 / p99 us | vs SPDK 1.4 M | verdict (> 1.4 M) |")
    L.append("|---|---:|---:|---:|---:|---|")
    for k in g3:
        e = runs[k]
        b, r = med(e["thick"], 1), med(e["raw"], 1)
        L.append("| %s | %.0f | %.0f | %.2f / %.2f | %.2fx | %s |" % (
            k[1], b, r, med(e["thick"], 2), med(e["thick"], 3), b / 1.4e6,
            verdict(b > 1.4e6, "RAM %s %.0f IOPS" % (k[1], b))))
    L.append("")

g4 = sorted((k for k in runs if k[0] == 4), key=lambda k: int(k[1].split("-")[1]))
if g4:
    L.append("## 4. Load time (store of N small blobs; unclean = recovery after a simulated crash)")
    L.append("")
    L.append("| blobs | device | unclean load s | clean load s | create s (not timed target) | verdict (< 2 s) |")
    L.append("|---:|---|---:|---:|---:|---|")
    for k in g4:
        for where in ("ram", "file"):
            rs = runs[k].get(where)
            if not rs:
                continue
            u = med(rs, 1)
            nb = int(k[1].split("-")[1])
            ok = u < 2.0 if nb >= 100000 else True
            v = verdict(ok, "unclean load %d blobs on %s %.3f s" % (nb, where, u)) if nb >= 100000 else ("PASS" if u < 2.0 else "BELOW")
            L.append("| %d | %s | %.3f | %.4f | %.2f | %s |" % (nb, where, u, med(rs, 2), med(rs, 3), v))
    L.append("")

for ok, what in verdicts:
    L.append("%s: %s  " % ("PASS" if ok else "BELOW", what))
L.append("")
L.append("<details><summary>every run (group, case, tool, round, IOPS or unclean s, p50 us or clean s, p99 us or create s, allocations/completions)</summary>")
L.append("")
L.append("| group | case | tool | round | a | b | c | extra |")
L.append("|---|---|---|---:|---:|---:|---:|---|")
for k in sorted(runs, key=lambda k: (k[0], order(k[1]))):
    for tool in sorted(runs[k]):
        for r in sorted(runs[k][tool]):
            L.append("| %d | %s | %s | %d | %s | %s | %s | %s |" % (k[0], k[1], tool, r[0], r[1], r[2], r[3], r[4]))
L.append("")
L.append("</details>")
text = "\n".join(L) + "\n"
open(out, "w").write(text)
print(text, end="")
sys.exit(0 if all(v[0] for v in verdicts) else 3)
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
