#!/usr/bin/env bash
# zvfs mkfs / info / fsck end to end (docs/tools.md).
# usage: test_cli.sh ZVFS MKBLOBS SHARED_DIR      exit 0 pass, 1 fail, 77 skip
set -u
zvfs=$1
mkblobs=$2
shared=$3
command -v python3 >/dev/null || { echo "skip: no python3"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/zvfs-cli.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail=0
check() { # name, status of the condition
	if [ "$2" -eq 0 ]; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi
}
sum() { md5sum "$1" | cut -d' ' -f1; }
# The 4 GiB fixture is sparse past 22 MiB: hash its first 64 MiB (super block, masks, metadata,
# both blobs' clusters) and count its allocated blocks (a write anywhere else allocates).
sparse_sum() { echo "$(head -c 64M "$1" | md5sum | cut -d' ' -f1)-$(stat -c %b "$1")"; }

# Corruptions, done at the format level (FORMAT.md) with recomputed CRCs where asked.
cat >"$dir/corrupt.py" <<'EOF'
import struct, sys
T = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    T.append(c)
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
cmd, path = sys.argv[1], sys.argv[2]
f = open(path, 'r+b')
sb = f.read(4096)
(ucm_s,) = struct.unpack_from('<I', sb, 40)
md_s, md_l = struct.unpack_from('<II', sb, 48)
mps = struct.unpack_from('<I', sb, 92)[0] or 4096
def rd(i):
    f.seek((md_s + i) * mps)
    return bytearray(f.read(4096))
def wr(i, p, fix_crc=True):
    if fix_crc:
        struct.pack_into('<I', p, 4092, crc32c(bytes(p[:4092])))
    f.seek((md_s + i) * mps)
    f.write(p)
def ok(p):
    return struct.unpack_from('<I', p, 4092)[0] == crc32c(bytes(p[:4092]))
pages = [(i, rd(i)) for i in range(md_l)]
if cmd == 'flipchain':          # a byte of a chain page (sequence >= 1): bad CRC
    for i, p in pages:
        bid, seq = struct.unpack_from('<QI', p, 0)
        if seq >= 1 and ok(p):
            p[2000] ^= 0x5A
            wr(i, p, False)
            print('0x%x' % bid)
            break
elif cmd == 'dupcluster':       # blob B's extent page names blob A's first cluster
    eps = []
    for i, p in pages:
        bid, seq = struct.unpack_from('<QI', p, 0)
        if seq == 0 and bid != (1 << 32 | i) and p[16] == 6 and ok(p):
            if struct.unpack_from('<I', p, 16 + 9)[0] and bid not in [e[1] for e in eps]:
                eps.append((i, bid, p))
    (ia, a, pa), (ib, b, pb) = eps[0], eps[1]
    c = struct.unpack_from('<I', pa, 16 + 9)[0]
    struct.pack_into('<I', pb, 16 + 9, c)
    wr(ib, pb)
    print('0x%x 0x%x %d' % (a, b, c))
elif cmd == 'leak':             # a free cluster marked used in the (clean) cluster mask
    f.seek(ucm_s * mps)
    m = bytearray(f.read(1 << 20))
    nbits = struct.unpack_from('<I', m, 1)[0]
    for c in range(nbits - 1, -1, -1):
        if not m[5 + c // 8] >> (c % 8) & 1:
            m[5 + c // 8] |= 1 << (c % 8)
            f.seek(ucm_s * mps + 5 + c // 8)
            f.write(m[5 + c // 8:6 + c // 8])
            print(c)
            break
elif cmd == 'orphan':           # a stale chain page of blob 0x100000001 in a free slot
    for i, p in reversed(pages):
        if not any(p):
            q = bytearray(4096)
            struct.pack_into('<QI', q, 0, 1 << 32 | 1, 1)
            struct.pack_into('<I', q, 4088, 0xFFFFFFFF)
            wr(i, q)
            print(i)
            break
elif cmd == 'iszero':           # is md page N all zero?
    print('zero' if not any(pages[int(sys.argv[3])][1]) else 'nonzero')
EOF
corrupt() { python3 "$dir/corrupt.py" "$@"; }

# ---- usage, help, version ----
"$zvfs" --version | grep -q '^zvfs [0-9]'
check "--version" $?
"$zvfs" --help | grep -q 'SYNOPSIS'
check "--help is a man page" $?
for c in mkfs info fsck; do
	out=$("$zvfs" $c --help)
	echo "$out" | grep -q 'SYNOPSIS' && echo "$out" | grep -q 'EXIT STATUS' &&
		echo "$out" | grep -q 'EXAMPLES'
	check "$c --help has synopsis, exit status, examples" $?
done
"$zvfs" fsck >/dev/null 2>&1
check "fsck without DEVICE: usage error 16" $([ $? -eq 16 ]; echo $?)
"$zvfs" fsck x --repair -n >/dev/null 2>&1
check "fsck --repair -n: usage error 16" $([ $? -eq 16 ]; echo $?)
"$zvfs" frobnicate >/dev/null 2>&1
check "unknown command: exit 2" $([ $? -eq 2 ]; echo $?)

# ---- mkfs ----
img=$dir/base.img
out=$("$zvfs" mkfs "$img" --size 64M --cluster-size 64K 2>&1)
rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q '1024 total' && echo "$out" | grep -q '65536'
check "mkfs --size 64M --cluster-size 64K: $(echo "$out" | grep clusters | tr -s ' ')" $?
out=$("$zvfs" mkfs "$img" 2>&1)
[ $? -eq 1 ] && echo "$out" | grep -q 'use --force'
check "mkfs refuses an existing store" $?
"$zvfs" mkfs "$img" --force --cluster-size 64K --md-pages 512 --bstype TEST >/dev/null
check "mkfs --force --md-pages --bstype" $?
"$zvfs" info "$img" | grep -q 'bstype "TEST"' && "$zvfs" info "$img" | grep -q '512 md pages'
check "info shows the mkfs options" $?
"$zvfs" mkfs "$img" --force --cluster-size 64K >/dev/null
check "mkfs --force again" $?

# ---- blobs, info ----
ids=$("$mkblobs" "$img" 6)
check "mkblobs made 6 blobs" $([ "$(echo "$ids" | wc -l)" -eq 6 ]; echo $?)
out=$("$zvfs" info "$img")
check "info exit 0" $?
miss=0
for id in $ids; do echo "$out" | grep -q "^blob $id:" || miss=1; done
echo "$out" | grep -q 'xattr bin = 0x0001fffe' && echo "$out" | grep -q 'xattr name = "blob-4"' &&
	echo "$out" | grep -q 'internal xattr test.internal' &&
	echo "$out" | grep -q '(3000 bytes)'
check "info lists every blob and its xattrs (text, hex, truncated, internal)" $((miss | $?))
first=$(echo "$ids" | head -1)
"$zvfs" info "$img" --json >"$dir/info.json"
python3 - "$dir/info.json" "$first" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["super"]["clean"] is True and d["super"]["bstype"] == "ZVFS", d["super"]
assert d["super"]["super_blob"] == sys.argv[2]
assert d["usage"]["blobs"] == 6 and len(d["blobs"]) == 6
for k, b in enumerate(d["blobs"]):
    x = {a["name"]: a for a in b["xattrs"]}
    assert x["name"]["text"] == "blob-%d" % k, x
    assert b["thin"] == (k % 3 == 1)
    if k % 3 == 0:
        assert x["bin"]["hex"] == "0001fffe" and "text" not in x["bin"]
        assert b["num_clusters"] == 3 and b["allocated_clusters"] == 3
    if k % 3 == 1:
        assert len(x["big1"]["hex"]) == 6000 and b["allocated_clusters"] == 2
    if k % 3 == 2:
        assert [a["name"] for a in b["internal_xattrs"]] == ["test.internal"]
EOF
check "info --json parses, fields and values complete" $?

# ---- fsck on a good store ----
s0=$(sum "$img")
"$zvfs" fsck "$img" >"$dir/out" 2>&1
check "fsck on a good store: exit 0" $?
"$zvfs" fsck "$img" -n >/dev/null 2>&1
rc=$?
check "fsck -n: exit 0, image unchanged" $([ $rc -eq 0 ] && [ "$(sum "$img")" = "$s0" ]; echo $?)
"$zvfs" fsck "$img" --json | python3 -c '
import json, sys; d = json.load(sys.stdin); assert d["exit"] == 0 and d["errors"] == 0 and d["blobs"] == 7, d'
check "fsck --json (6 blobs + the internal one)" $?
"$zvfs" fsck "$img" --progress 2>"$dir/err" >/dev/null
grep -q '100%' "$dir/err"
check "fsck --progress draws a bar on stderr" $?
"$zvfs" fsck "$img" --repair >/dev/null 2>&1
rc=$?
check "fsck --repair on a good store: exit 0, nothing written" \
	$([ $rc -eq 0 ] && [ "$(sum "$img")" = "$s0" ]; echo $?)

# ---- a broken chain page ----
cp "$img" "$dir/c1.img"
bid=$(corrupt flipchain "$dir/c1.img")
s1=$(sum "$dir/c1.img")
out=$("$zvfs" fsck "$dir/c1.img" 2>&1)
rc=$?
echo "$out" | sed 's/^/    /'
[ $rc -eq 4 ] && echo "$out" | grep -q "blob $bid: chain page .*bad CRC"
check "bad chain page: blob $bid reported, exit 4" $?
"$zvfs" fsck "$dir/c1.img" -n >/dev/null 2>&1
check "fsck -n on a damaged store writes nothing" $([ "$(sum "$dir/c1.img")" = "$s1" ]; echo $?)

# ---- a cluster owned twice ----
cp "$img" "$dir/c2.img"
read -r a b c < <(corrupt dupcluster "$dir/c2.img")
out=$("$zvfs" fsck "$dir/c2.img" 2>&1)
rc=$?
echo "$out" | sed 's/^/    /'
line=$(echo "$out" | grep "cluster $c owned twice")
[ $rc -eq 4 ] && echo "$line" | grep -q "$a" && echo "$line" | grep -q "$b"
check "cluster $c owned by $a and $b: both named, exit 4" $?
"$zvfs" fsck "$dir/c2.img" --repair >/dev/null 2>&1
rc=$?
check "--repair leaves the double ownership (exit $rc has bit 4)" $(((rc & 4) ? 0 : 1))

# ---- a leaked cluster ----
cp "$img" "$dir/c3.img"
lc=$(corrupt leak "$dir/c3.img")
out=$("$zvfs" fsck "$dir/c3.img" 2>&1)
rc=$?
echo "$out" | sed 's/^/    /'
[ $rc -eq 4 ] && echo "$out" | grep -q "leaked cluster $lc: marked used, owned by no blob"
check "leaked cluster $lc reported, exit 4" $?
"$zvfs" fsck "$dir/c3.img" --repair >"$dir/out" 2>&1
check "--repair fixes it: exit 1" $([ $? -eq 1 ]; echo $?)
"$zvfs" fsck "$dir/c3.img" >/dev/null 2>&1
check "fsck after repair: exit 0" $?
if [ -f "$shared/tools/spdk_format_check.py" ]; then
	python3 "$shared/tools/spdk_format_check.py" "$dir/c3.img" >"$dir/chk" 2>&1
	rc=$?
	[ $rc -eq 0 ] && ! grep -q 'crc_ok=False' "$dir/chk" && grep -q 'clean=1' "$dir/chk"
	check "spdk_format_check.py on the repaired image: all crc_ok=True, clean" $?
else
	echo "skip - spdk_format_check.py not found under $shared"
fi

# ---- an orphan md page ----
cp "$img" "$dir/c4.img"
op=$(corrupt orphan "$dir/c4.img")
out=$("$zvfs" fsck "$dir/c4.img" 2>&1)
rc=$?
echo "$out" | sed 's/^/    /'
[ $rc -eq 0 ] && echo "$out" | grep -q "orphan md page $op "
check "orphan md page $op reported as a warning (exit 0)" $?
"$zvfs" fsck "$dir/c4.img" --repair >/dev/null 2>&1
rc=$?
[ $rc -eq 1 ] && [ "$(corrupt iszero "$dir/c4.img" "$op")" = zero ]
check "--repair zeroes it: exit 1" $?
out=$("$zvfs" fsck "$dir/c4.img" 2>&1)
[ $? -eq 0 ] && ! echo "$out" | grep -q orphan
check "fsck after repair: exit 0, no orphan" $?

# ---- 16 KiB metadata pages (the 4 KiB page sits at the start of each slot) ----
big=$dir/md16k.img
"$zvfs" mkfs "$big" --size 32M --cluster-size 64K --md-page-size 16K >/dev/null &&
	"$mkblobs" "$big" 4 >/dev/null
check "mkfs --md-page-size 16K, 4 blobs" $?
"$zvfs" info "$big" --json | python3 -c '
import json, sys; d = json.load(sys.stdin); assert d["super"]["md_page_size"] == 16384 and len(d["blobs"]) == 4'
check "info: md page size 16384, 4 blobs" $?
"$zvfs" fsck "$big" >/dev/null 2>&1
check "fsck with 16 KiB md pages: exit 0" $?
lc=$(corrupt leak "$big" 2>&1)
"$zvfs" fsck "$big" >/dev/null 2>&1
rc1=$?
"$zvfs" fsck "$big" --repair >/dev/null 2>&1
rc2=$?
"$zvfs" fsck "$big" >/dev/null 2>&1
rc3=$?
check "16 KiB md pages: leaked cluster $lc found (4), repaired (1), clean (0)" \
	$([ $rc1 -eq 4 ] && [ $rc2 -eq 1 ] && [ $rc3 -eq 0 ]; echo $?)

# ---- not a store, no device ----
head -c 4M /dev/urandom >"$dir/garbage.img"
out=$("$zvfs" fsck "$dir/garbage.img" 2>&1)
rc=$?
[ $rc -eq 8 ] && echo "$out" | grep -q 'not a valid blobstore'
check "fsck on garbage: exit 8, clear message ($out)" $?
out=$("$zvfs" info "$dir/garbage.img" 2>&1)
[ $? -eq 1 ] && echo "$out" | grep -q 'not a blobstore'
check "info on garbage: exit 1, clear message" $?
"$zvfs" fsck "$dir/missing.img" >/dev/null 2>&1
check "fsck on a missing device: exit 8" $([ $? -eq 8 ]; echo $?)

# ---- a store that was not unloaded ----
ci=$dir/crash.img
"$zvfs" mkfs "$ci" --size 32M --cluster-size 64K >/dev/null
cids=$("$mkblobs" "$ci" 3 crash)
s2=$(sum "$ci")
out=$("$zvfs" info "$ci" 2>&1)
rc=$?
miss=0
for id in $cids; do echo "$out" | grep -q "^blob $id:" || miss=1; done
[ $rc -eq 0 ] && [ $miss -eq 0 ] && echo "$out" | grep -q 'not clean'
check "info on an unclean store lists its 3 blobs" $?
check "info wrote nothing" $([ "$(sum "$ci")" = "$s2" ]; echo $?)
"$zvfs" info "$ci" --json | python3 -c '
import json, sys; d = json.load(sys.stdin); assert d["super"]["clean"] is False and len(d["blobs"]) == 3'
check "info --json on an unclean store" $?
"$zvfs" fsck "$ci" >/dev/null 2>&1
rc=$?
check "fsck on an unclean store: exit 0, nothing written" \
	$([ $rc -eq 0 ] && [ "$(sum "$ci")" = "$s2" ]; echo $?)
"$zvfs" fsck "$ci" --repair >/dev/null 2>&1
check "fsck --repair recovers it: exit 1" $([ $? -eq 1 ]; echo $?)
"$zvfs" info "$ci" | grep -q ', clean,' && "$zvfs" fsck "$ci" >/dev/null 2>&1
check "clean afterwards, fsck exit 0" $?

# ---- the SPDK fixture ----
gz=$shared/fixtures/spdk-v25.09-store.head.img.gz
if [ -f "$gz" ]; then
	fx=$dir/spdk.img
	gzip -dc "$gz" >"$fx" && truncate -s 4G "$fx"
	s3=$(sparse_sum "$fx")
	out=$("$zvfs" info "$fx" 2>&1)
	rc=$?
	echo "$out" | sed 's/^/    /'
	[ $rc -eq 0 ] && echo "$out" | grep -q '^blob 0x100000000: 4 clusters' &&
		echo "$out" | grep -q '^blob 0x100000002: 1 clusters' &&
		echo "$out" | grep -q 'xattr name = "sample_blob_A" +NUL' &&
		echo "$out" | grep -q 'xattr owner = "perf-helper" +NUL' &&
		echo "$out" | grep -q 'xattr name = "sample_blob_B" +NUL'
	check "info on the SPDK fixture: both blobs and their xattrs" $?
	"$zvfs" info "$fx" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
b = {x["id"]: {a["name"]: a for a in x["xattrs"]} for x in d["blobs"]}
assert b["0x100000000"]["owner"]["text"] == "perf-helper" and b["0x100000000"]["owner"]["nul_terminated"]
assert b["0x100000002"]["name"]["hex"] == "sample_blob_B".encode().hex() + "00"'
	check "info --json on the SPDK fixture" $?
	"$zvfs" fsck "$fx" >/dev/null 2>&1
	check "fsck on the SPDK fixture: exit 0" $?
	check "the fixture was not written" $([ "$(sparse_sum "$fx")" = "$s3" ]; echo $?)
else
	echo "skip - SPDK fixture not found under $shared"
fi
exit $fail
