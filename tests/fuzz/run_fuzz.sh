#!/usr/bin/env bash
# The fuzz tests (tests/fuzz/meson.build, docs/fuzzing.md).
#   run_fuzz.sh replay FUZZ_REPLAY MKCORPUS WORKDIR REGRESS_DIR [FIXTURE_IMG]
#       make the seed corpus in WORKDIR/corpus and run the harness once over every seed and
#       every reproducer in REGRESS_DIR (no libFuzzer: any build).
#   run_fuzz.sh fuzz FUZZ_LOAD MKCORPUS WORKDIR REGRESS_DIR [FIXTURE_IMG]
#       the same corpus, then libFuzzer for ${ZVFS_FUZZ_SECONDS:-60} s.  New inputs go to
#       WORKDIR/run (emptied first, so the seeds never grow); a crash is saved as
#       WORKDIR/artifacts/crash-* and fails the test.
set -uo pipefail
mode=$1 prog=$2 mkcorpus=$3 work=$4 regress=$5
fixture=${6:-}

rm -rf "$work"
mkdir -p "$work/run" "$work/artifacts" || exit 1
"$mkcorpus" "$work/corpus" $fixture || { echo "mkcorpus failed"; exit 1; }
inputs=("$work/corpus")
[ -d "$regress" ] && inputs+=("$regress")

case "$mode" in
replay)
	exec "$prog" "${inputs[@]}"
	;;
fuzz)
	secs=${ZVFS_FUZZ_SECONDS:-60}
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	# known, unfixed leaks (pending/): listed one by one, removed with their fix
	export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp}
	echo "fuzz: ${secs}s over $(ls "$work/corpus" | wc -l) seeds"
	"$prog" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$work/run" "${inputs[@]}" 2>&1 |
		grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)'
	rc=${PIPESTATUS[0]}
	ls "$work/artifacts"/* 2>/dev/null && { echo "fuzz: crash (see the artifacts above)"; exit 1; }
	exit "$rc"
	;;
*)
	echo "usage: $0 replay|fuzz PROG MKCORPUS WORKDIR REGRESS_DIR [FIXTURE_IMG]" >&2
	exit 2
	;;
esac
