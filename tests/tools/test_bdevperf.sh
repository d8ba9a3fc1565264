#!/usr/bin/env bash
# zvfs-bdevperf end to end: every workload on RAM and on an image file gives
# a JSON report with I/O done; bad input exits non-zero with a message.
set -u
tool=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-bdevperf.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail=0
check() { # name, condition result
	if [ "$2" -eq 0 ]; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi
}
ios_of() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["ios"])'; }

for wl in randread randwrite read write randrw; do
	for spec in "ram:size=16M" "uring:$dir/img,size=16M,create" "aio:$dir/img"; do
		out=$("$tool" -d "$spec" -w "$wl" -q 4 -j 2 -t 0.3 --json 2>&1)
		ios=$(printf '%s' "$out" | ios_of 2>/dev/null || echo 0)
		[ "${ios:-0}" -gt 0 ]
		check "$wl on ${spec%%,*}: $ios I/Os" $?
	done
done

out=$("$tool" -d "$dir/missing" -t 0.1 2>&1); rc=$?
[ $rc -ne 0 ] && printf '%s' "$out" | grep -q "$dir/missing: cannot open"
check "missing device: exit $rc, message names it" $?
"$tool" -d ram:size=16M -w nonsense -t 0.1 >/dev/null 2>&1
[ $? -eq 2 ]
check "bad workload is a usage error" $?
"$tool" -d ram:size=16M -b 1000 -t 0.1 >/dev/null 2>&1
[ $? -ne 0 ]
check "misaligned block size refused" $?
"$tool" --version | grep -q '^zvfs-bdevperf '
check "--version" $?
exit $fail
