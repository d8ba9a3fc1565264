#!/usr/bin/env bash
# Every C file is formatted with the repository's .clang-format (STYLE.md 8).
set -u
cd "$1" || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null) || { echo "not a git checkout"; exit 77; }
bad=0
for f in $files; do
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f (run: clang-format -i $f)"
		bad=1
	fi
done
[ $bad -eq 0 ] && echo "ok - $(echo "$files" | wc -l) files formatted"
exit $bad
