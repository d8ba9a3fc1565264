#!/usr/bin/env bash
# Build ZVFS twice (release with -Werror, and ASan/UBSan) and run every test
# in both builds.  Ends with the line "N passed, M failed" (skips counted apart).
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || exit 1
scripts/build.sh release || { echo "0 passed, 1 failed"; exit 1; }
scripts/build.sh asan || { echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
for dir in build build-asan; do
	echo "test: running the suite in $dir"
	meson test -C "$dir" --print-errorlogs --num-processes 1 || rc=1
done

# Count from meson's own logs so the summary covers both builds.
python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
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
