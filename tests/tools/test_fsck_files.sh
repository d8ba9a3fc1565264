#!/usr/bin/env bash
# zvfs fsck --mount: the file level (docs/tools.md).  Files are made with the preload library,
# then broken without it: a placeholder removed (orphan blob), a copy with its xattr (stale),
# a bogus store id (foreign), a blob id that does not exist (missing), garbage (malformed).
# fsck finds each (exit 4), --repair fixes them (exit 1), a second fsck is clean (exit 0), and
# a store in use by a process is refused (exit 8, naming the process).
# usage: test_fsck_files.sh ZVFS            exit 0 pass, 1 fail, 77 skip
# Environment (tests/tools/meson.build): ZT_LIB libzvfs.so, ZT_SANITIZE, ZT_CC.
set -u
zvfs=$1
for p in getfattr setfattr mkfifo sha256sum; do
	command -v $p >/dev/null || { echo "SKIP: $p not installed"; exit 77; }
done
[ -n "${ZT_LIB:-}" ] && [ -f "$ZT_LIB" ] || { echo "FAIL: ZT_LIB not set or missing"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-fsckf.XXXXXX") || exit 1
trap '[ -n "${ZT_KEEP:-}" ] && echo "# kept $T" || rm -rf "$T"' EXIT
M=$T/mnt
D=$M/d
IMG=$T/store.img
mkdir -p "$D/sub" || exit 1
fail=0
check() { # name, status of the condition
	if [ "$2" -eq 0 ]; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi
}

preload=$ZT_LIB
asan=${ASAN_OPTIONS:-}
case ${ZT_SANITIZE:-none} in
none | "") ;;
*address*)
	preload=$(${ZT_CC:-cc} -print-file-name=libasan.so):$ZT_LIB
	asan=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	;;
*undefined*) preload=$(${ZT_CC:-cc} -print-file-name=libubsan.so):$ZT_LIB ;;
*) echo "SKIP: sanitizer '$ZT_SANITIZE' not supported here"; exit 77 ;;
esac
zrun() {
	env LD_PRELOAD="$preload" ASAN_OPTIONS="$asan" ZVFS_MOUNT="$M" ZVFS_MODE=direct \
		ZVFS_DEVICE="$IMG,size=256M,create" ZVFS_LOG_FILE="$T/zvfs.log" "$@"
}
fsck() { "$zvfs" fsck --no-progress "$@"; }

# ---- files made through the library
head -c 300000 /dev/urandom >"$T/src"
for f in a b c sub/e; do
	zrun dd if="$T/src" of="$D/$f" bs=64k status=none || { echo "FAIL: dd to $D/$f"; exit 1; }
done
n=0
for f in a b c sub/e; do
	getfattr --absolute-names -n user.zvfs.blob_id "$D/$f" >/dev/null 2>&1 && n=$((n + 1))
done
[ $n -eq 4 ] || { echo "FAIL: only $n of 4 files are ZVFS files (library not working)"; exit 1; }
want=$(sha256sum <"$T/src" | cut -d' ' -f1)

out=$(fsck --mount "$M" "$IMG" 2>&1)
rc=$?
echo "$out" | sed 's/^/#   /'
check "clean store with files: exit 0 (got $rc)" $rc
echo "$out" | grep -q 'files: .* 4 ZVFS files, 0 with errors, 0 orphan blobs'
check "clean store: 4 ZVFS files counted" $?
out=$(fsck "$IMG" 2>&1)
echo "$out" | grep -q 'file-level checks skipped'
check "without --mount: one line says the file level is skipped" $?

# ---- corruption, all without the library
value=$(getfattr --absolute-names --only-values -n user.zvfs.blob_id "$D/a")
sid=$(echo "$value" | cut -d' ' -f2)
gen=$(echo "$value" | cut -d' ' -f4)
rm "$D/b"                                           # orphan: the blob stays
cp --preserve=xattr "$D/a" "$D/a.copy"              # stale: another inode
touch "$D/foreign" "$D/sub/missing" "$D/bad"
setfattr -n user.zvfs.blob_id -v "zvfs1 0123456789abcdef 0000000100000001 $gen" \
	"$D/foreign"
setfattr -n user.zvfs.blob_id -v "zvfs1 $sid 00000001000fffff $gen" "$D/sub/missing"
setfattr -n user.zvfs.blob_id -v "garbage" "$D/bad"
ln -s /nonexistent "$D/dangling"                   # symlinks are not followed

out=$(fsck --mount "$M" "$IMG" 2>&1)
rc=$?
echo "$out" | sed 's/^/#   /'
check "corrupted: exit 4 (got $rc)" $([ $rc -eq 4 ]; echo $?)
echo "$out" | grep -q "^warning: orphan blob"
check "orphan blob reported" $?
echo "$out" | grep -q "^error: file $D/a.copy: stale xattr"
check "copied xattr reported stale" $?
echo "$out" | grep -q "^error: file $D/foreign: foreign"
check "foreign store reported" $?
echo "$out" | grep -q "^error: file $D/sub/missing: missing blob"
check "missing blob reported" $?
echo "$out" | grep -q "^error: file $D/bad: malformed"
check "malformed xattr reported" $?
echo "$out" | grep -q "file $D/a:\|file $D/c:\|file $D/sub/e:"
check "the good files are not reported" $([ $? -ne 0 ]; echo $?)
fsck --json --mount "$M" "$IMG" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["exit"] == 4 and d["file_errors"] == 4 and d["orphan_blobs"] == 1, d
assert d["zvfs_files"] == 7, d' 2>&1
check "--json counts: 7 ZVFS files, 4 with errors, 1 orphan blob" $?

# ---- repair
out=$(fsck --repair --mount "$M" "$IMG" 2>&1)
rc=$?
echo "$out" | sed 's/^/#   /'
check "--repair: exit 1 (got $rc)" $([ $rc -eq 1 ]; echo $?)
echo "$out" | grep -q "^repair: orphan blob 0x[0-9a-f]* deleted"
check "--repair logs the orphan's deletion" $?
for f in a.copy foreign sub/missing bad; do
	[ -f "$D/$f.zvfs-lost" ] && [ ! -e "$D/$f" ] &&
		! getfattr --absolute-names -n user.zvfs.blob_id "$D/$f.zvfs-lost" >/dev/null 2>&1
	check "--repair: $f renamed to $f.zvfs-lost without the xattr" $?
done
out=$(fsck --mount "$M" "$IMG" 2>&1)
rc=$?
check "second fsck: exit 0 (got $rc)" $rc
echo "$out" | grep -q '^warning\|^error'
check "second fsck: no warning, no error" $([ $? -ne 0 ]; echo $?)
for f in a c sub/e; do
	got=$(zrun sha256sum "$D/$f" | cut -d' ' -f1)
	check "$f still reads back through the library" $([ "$got" = "$want" ]; echo $?)
done

# ---- --json --repair stays one JSON document (repair lines become notes)
cp --preserve=xattr "$D/c" "$D/c.copy"
fsck --json --repair --mount "$M" "$IMG" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["exit"] == 1 and d["repaired"], d
assert any(p["message"].startswith("repair: file ") for p in d["problems"]), d' 2>&1
check "--json --repair: one JSON document, exit 1, the action as a note" $?

# ---- a store in use is refused: a process under the library holds a file open
mkfifo "$T/in" "$T/out"
zrun bash -c 'exec 3<"$1"; echo ready; read -r x' holder "$D/a" <"$T/in" >"$T/out" &
hpid=$!
exec 7>"$T/in" # keeps the holder's stdin open until we write
read -r line <"$T/out"
if [ "$line" = ready ]; then
	out=$(fsck --mount "$M" "$IMG" 2>&1)
	rc=$?
	echo "$out" | sed 's/^/#   /'
	check "store in use: exit 8 (got $rc)" $([ $rc -eq 8 ]; echo $?)
	echo "$out" | grep -q "in use by process [0-9]*"
	check "store in use: the message names the holder" $?
else
	check "holder process started" 1
fi
echo done >&7
exec 7>&-
wait $hpid

# ---- data written into a placeholder without the library: a warning, left alone
dd if=/dev/zero of="$D/a" bs=4096 count=1 conv=notrunc status=none
out=$(fsck --mount "$M" "$IMG" 2>&1)
rc=$?
check "placeholder with data: exit 0 (a warning; got $rc)" $rc
echo "$out" | grep -q "^warning: file $D/a: the placeholder holds data"
check "placeholder with data: reported" $?

[ $fail -ne 0 ] && [ -s "$T/zvfs.log" ] && tail -n 30 "$T/zvfs.log" | sed 's/^/# log: /'
exit $fail
