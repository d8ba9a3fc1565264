#!/usr/bin/env bash
# zvfs-blobperf end to end: thick and thin blob workloads and the load test
# report work done in their JSON; bad input exits non-zero.
set -u
tool=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-blobperf.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail=0
check() { # name, status
	if [ "$2" -eq 0 ]; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi
}
field() { python3 -c 'import json,sys; o=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1"; }

for wl in randread randwrite read write randrw; do
	ios=$("$tool" -d ram:size=64M --mkfs -w "$wl" -q 4 -j 2 -t 0.3 --json 2>/dev/null | field 'o["ios"]' || echo 0)
	[ "${ios:-0}" -gt 0 ]
	check "thick $wl on ram: $ios I/Os" $?
done

out=$("$tool" -d ram:size=64M --mkfs --thin --cluster-size 64K -w randwrite -q 4 -t 0.3 --json 2>/dev/null)
alloc=$(printf '%s' "$out" | field 'o["blob"]["allocated_in_run"]' || echo 0)
thin=$(printf '%s' "$out" | field 'o["blob"]["thin"]' || echo False)
[ "$thin" = True ] && [ "${alloc:-0}" -gt 0 ]
check "thin randwrite allocates during the run ($alloc clusters)" $?

"$tool" -d "uring:$dir/img,size=64M,create" --mkfs -w randwrite -t 0.3 --json >/dev/null 2>&1
ios=$("$tool" -d "uring:$dir/img" -w randread -t 0.3 --json 2>/dev/null | field 'o["ios"]' || echo 0)
[ "${ios:-0}" -gt 0 ]
check "file store made by --mkfs loads again for a read run ($ios I/Os)" $?

out=$("$tool" -d ram:size=64M --load-test 300 --cluster-size 64K --json 2>/dev/null)
n=$(printf '%s' "$out" | field 'o["blobs"]' || echo 0)
t=$(printf '%s' "$out" | field 'o["unclean_load_s"]' || echo -1)
[ "${n:-0}" -eq 300 ] && python3 -c "import sys; sys.exit(0 if float('$t') >= 0 else 1)"
check "load test: $n blobs, unclean load ${t}s" $?

"$tool" -d "$dir/missing" -t 0.1 >/dev/null 2>&1
[ $? -eq 1 ]
check "missing device is an error" $?
"$tool" -d ram:size=64M --mkfs -w nonsense -t 0.1 >/dev/null 2>&1
[ $? -eq 2 ]
check "bad workload is a usage error" $?
exit $fail
