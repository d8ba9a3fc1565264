#!/usr/bin/env bash
# Configure and build ZVFS.  Usage: scripts/build.sh [release|asan|fuzz]
#   release: build/       optimised, warnings are errors
#   asan:    build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer
#   fuzz:    build-fuzz/  clang, ASan + UBSan, every library instrumented for libFuzzer
#                         (-fsanitize=fuzzer-no-link) and tests/fuzz/fuzz_load (docs/fuzzing.md)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-release}
case "$mode" in
release) dir=build; opts=(-Dwerror=true -Dbuildtype=debugoptimized) ;;
asan) dir=build-asan; opts=(-Dwerror=true -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false) ;;
fuzz) dir=build-fuzz; export CC=clang
	opts=(-Dwerror=true -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
	      -Dc_args=-fsanitize=fuzzer-no-link -Dc_link_args=-fsanitize=fuzzer-no-link -Dfuzz=true) ;;
*) echo "usage: $0 [release|asan|fuzz]" >&2; exit 2 ;;
esac

if [ -f "$dir/build.ninja" ]; then
	meson configure "$dir" "${opts[@]}" >/dev/null
else
	echo "build: configuring $dir ($mode)"
	meson setup "$dir" "${opts[@]}" >/dev/null
fi
echo "build: compiling $dir"
# Quiet when it works; the compiler's own words when it does not.
if ! ninja -C "$dir" >"$dir/ninja.log" 2>&1; then
	grep -v '^\[' "$dir/ninja.log" | tail -n 60 >&2
	echo "build: $dir failed to compile (whole log: $dir/ninja.log)" >&2
	exit 1
fi
