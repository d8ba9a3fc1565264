#!/usr/bin/env bash
# Build ZVFS three times (release with -Werror, ASan/UBSan, and the clang libFuzzer build)
# and run every test in each; the fuzz build adds the bounded fuzz-load and fuzz-proto runs
# (ZVFS_FUZZ_SECONDS, default 60; docs/fuzzing.md).  Ends with the line "N passed, M failed"
# (skips counted apart).
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || exit 1
scripts/build.sh release || { echo "0 passed, 1 failed"; exit 1; }
scripts/build.sh asan || { echo "0 passed, 1 failed"; exit 1; }
scripts/build.sh fuzz || { echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
for dir in build build-asan; do
	echo "test: running the suite in $dir"
	meson test -C "$dir" --print-errorlogs --num-processes 1 || rc=1
done
# The clang build adds the fuzz suite only (the rest already ran under gcc twice).
echo "test: running the fuzz suite in build-fuzz (${ZVFS_FUZZ_SECONDS:-60} s of fuzzing)"
meson test -C build-fuzz --suite fuzz --print-errorlogs --num-processes 1 || rc=1

# Count from meson's own logs so the summary covers every build.
python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	build-fuzz/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        print(f"missing test log {path}")
        continue
    for line in lines:
        r = json.loads(line)
        res = r.get("result")
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
        else:
            failed += 1
            print(f"FAILED: {path.split('/')[0]}: {r.get('name')} ({res})")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
py=$?
[ $rc -eq 0 ] && [ $py -eq 0 ]
