#!/usr/bin/env bash
# coreutils and shell redirections through libzvfs.so (POSIX.md "Applications").
# usage: test_coreutils.sh mount|plain     exit 0 pass, 1 fail, 77 skip
#
# Every operation is done twice: on a reference file outside ZVFS without the
# library, and on the target under the library; the results must match.
# Direct mode: one process holds the store at a time, so no pipeline here has
# two processes on ZVFS files at once, and the group redirections use
# builtins only (an external command inside them is a daemon-mode test).
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" coreutils
zt_need cp cat dd sha256sum truncate tail ls stat mv rm cmp

R=$T/ref # reference copies, never under the library
mkdir -p "$R"
zt_random "$T/src.bin" $((24 * 1024 * 1024 + 12345))
src_sum=$(zt_sum "$T/src.bin")
src_size=$(stat -c %s "$T/src.bin")

# ---- cp in, out and within; sha256sum -------------------------------------------
zt_check "cp into the target" zt_run cp "$T/src.bin" "$D/big"
zt_eq "sha256sum of the copy in" "$src_sum" "$(zt_zsum "$D/big")"
zt_check "cp within the target" zt_run cp "$D/big" "$D/big2"
zt_eq "sha256sum of the copy within" "$src_sum" "$(zt_zsum "$D/big2")"
zt_check "cp out of the target" zt_run cp "$D/big2" "$T/out.bin"
zt_check "copy out equals the source (cmp without the library)" cmp -s "$T/src.bin" "$T/out.bin"
# The placeholder's st_size is right without the library once the writer exited.
zt_eq "stat -c %s without the library" "$src_size" "$(stat -c %s "$D/big")"
zt_eq "ls -l size without the library" "$src_size" "$(ls -l "$D/big2" | awk '{print $5}')"
zt_eq "stat -c %s under the library" "$src_size" "$(zt_run stat -c %s "$D/big")"

# A sparse file: cp probes SEEK_DATA/SEEK_HOLE, copy_file_range and FICLONE.
truncate -s 5M "$R/sparse"
dd if="$T/src.bin" of="$R/sparse" bs=4096 seek=300 count=7 conv=notrunc status=none
zt_check "truncate -s 5M (new file)" zt_run truncate -s 5M "$D/sparse"
zt_check "dd into a hole" zt_run dd if="$T/src.bin" of="$D/sparse" bs=4096 seek=300 count=7 \
	conv=notrunc status=none
zt_check "cp --sparse=always of a sparse file" zt_run cp --sparse=always "$D/sparse" "$D/sparse2"
zt_eq "sparse copy content" "$(zt_sum "$R/sparse")" "$(zt_zsum "$D/sparse2")"
zt_eq "sparse copy size" 5242880 "$(zt_run stat -c %s "$D/sparse2")"

# ---- cat -------------------------------------------------------------------------
zt_check "cat target > outside" zt_sh 'cat "$1" > "$2"' "$D/big" "$T/cat.out"
zt_check "cat output equals the source" cmp -s "$T/src.bin" "$T/cat.out"
zt_check "cat outside > target" zt_sh 'cat "$1" > "$2"' "$T/src.bin" "$D/catin"
zt_eq "cat > target content" "$src_sum" "$(zt_zsum "$D/catin")"
zt_check "cat a b > target" zt_sh 'cat "$1" "$2" > "$3"' "$D/sparse" "$D/big" "$D/cat2"
cat "$R/sparse" "$T/src.bin" >"$R/cat2"
zt_eq "cat of two files content" "$(zt_sum "$R/cat2")" "$(zt_zsum "$D/cat2")"

# ---- dd --------------------------------------------------------------------------
dd_both() { # name, dd operands with OUT for the output file
	local name=$1
	shift
	# GCC 12's libasan refuses aligned_alloc(4096, size) unless size is a
	# multiple of 4096, which dd asks for with such a bs (glibc accepts it).
	case ${ZT_SANITIZE:-none} in *address*)
		case " $* " in *" bs="*)
			local bs=" $* "
			bs=${bs#* bs=}
			bs=${bs%% *}
			if [ $((bs % 4096)) -ne 0 ]; then
				echo "skip - dd $name: bs=$bs under ASan (aligned_alloc size check)"
				return
			fi
			;;
		esac
		;;
	esac
	local ra=() ta=() a
	for a in "$@"; do
		ra+=("${a//OUT/$R/dd}")
		ta+=("${a//OUT/$D/dd}")
	done
	dd "${ra[@]}" status=none 2>/dev/null
	if zt_run dd "${ta[@]}" status=none; then
		zt_eq "dd $name: content" "$(zt_sum "$R/dd")" "$(zt_zsum "$D/dd")"
		zt_eq "dd $name: size" "$(stat -c %s "$R/dd")" "$(zt_run stat -c %s "$D/dd")"
	else
		zt_fail "dd $name" "dd ${ta[*]} failed"
	fi
}
dd_both "bs=4097 count=100" if="$T/src.bin" of=OUT bs=4097 count=100
dd_both "bs=1000 seek=7 notrunc" if="$T/src.bin" of=OUT bs=1000 skip=3 seek=7 count=3 conv=notrunc
dd_both "bs=333 seek=5000 (past EOF)" if="$T/src.bin" of=OUT bs=333 seek=5000 count=11 conv=notrunc
dd_both "bs=65537 truncating" if="$T/src.bin" of=OUT bs=65537 skip=1 count=20
dd_both "bs=1 count=4097" if="$T/src.bin" of=OUT bs=1 count=4097 conv=notrunc
# O_DIRECT with aligned sizes, both directions.
if zt_run dd if="$T/src.bin" of="$D/dddirect" bs=65536 count=64 oflag=direct status=none; then
	head -c $((65536 * 64)) "$T/src.bin" >"$R/dddirect"
	zt_eq "dd oflag=direct content" "$(zt_sum "$R/dddirect")" "$(zt_zsum "$D/dddirect")"
	if zt_run dd if="$D/dddirect" of="$T/ddd.out" bs=65536 iflag=direct status=none; then
		zt_check "dd iflag=direct reads what was written" cmp -s "$R/dddirect" "$T/ddd.out"
	else
		zt_fail "dd iflag=direct"
	fi
	zt_check "dd iflag=direct,oflag=direct within" zt_run dd if="$D/dddirect" \
		of="$D/dddirect2" bs=1M iflag=direct oflag=direct status=none
	zt_eq "dd direct within content" "$(zt_sum "$R/dddirect")" "$(zt_zsum "$D/dddirect2")"
else
	zt_fail "dd oflag=direct"
fi

# ---- truncate --------------------------------------------------------------------
head -c 100000 "$T/src.bin" >"$R/tr"
zt_check "cp small file in" zt_run cp "$R/tr" "$D/tr"
tr_step() { # truncate size operand
	truncate -s "$1" "$R/tr"
	if zt_run truncate -s "$1" "$D/tr"; then
		zt_eq "truncate -s $1: size" "$(stat -c %s "$R/tr")" "$(zt_run stat -c %s "$D/tr")"
		zt_eq "truncate -s $1: size without the library" "$(stat -c %s "$R/tr")" \
			"$(stat -c %s "$D/tr")"
		zt_eq "truncate -s $1: content" "$(zt_sum "$R/tr")" "$(zt_zsum "$D/tr")"
	else
		zt_fail "truncate -s $1"
	fi
}
tr_step 1000001 # grow: the new part reads as zeros
tr_step 4321    # shrink
tr_step +5000
tr_step -100
tr_step 9000 # grow after a shrink: the cut part must not come back
tr_step 0
tr_step 3M

# ---- tail ------------------------------------------------------------------------
zt_eq "tail -c 1000" "$(tail -c 1000 "$T/src.bin" | zt_sum /dev/stdin)" \
	"$(zt_run tail -c 1000 "$D/big" | zt_sum /dev/stdin)"
seq 1 20000 >"$R/lines"
zt_check "cp text file in" zt_run cp "$R/lines" "$D/lines"
zt_eq "tail -n 3" "$(tail -n 3 "$R/lines")" "$(zt_run tail -n 3 "$D/lines")"
zt_eq "tail -n +19999" "$(tail -n +19999 "$R/lines")" "$(zt_run tail -n +19999 "$D/lines")"
zt_eq "tail -c 7 (short file)" "$(printf 'abcdefg')" \
	"$(zt_sh 'printf "0123abcdefg" > "$1"; tail -c 7 "$1"' "$D/short")"

# ---- sort -o, tee, tar (programs whose output streams libc opens itself) ----------------
tac "$R/lines" >"$R/lines.rev"
zt_check "cp reversed lines in" zt_run cp "$R/lines.rev" "$D/lines.rev"
zt_check "sort -n -o target" zt_run sort -n -o "$D/sorted" "$D/lines.rev"
zt_eq "sort -o content" "$(zt_sum "$R/lines")" "$(zt_zsum "$D/sorted")"
zt_check "sort -o onto its own input" zt_run sort -n -o "$D/lines.rev" "$D/lines.rev"
zt_eq "sort -o in place content" "$(zt_sum "$R/lines")" "$(zt_zsum "$D/lines.rev")"
zt_check "tee into the target" zt_sh 'tee "$2" < "$1" > /dev/null' "$T/src.bin" "$D/tee"
zt_eq "tee content" "$src_sum" "$(zt_zsum "$D/tee")"
if command -v tar >/dev/null; then
	zt_check "tar c into the target" zt_run tar -cf "$D/a.tar" -C "$R" lines tr
	mkdir -p "$D/untar"
	zt_check "tar x inside the target" zt_run tar -xf "$D/a.tar" -C "$D/untar"
	zt_eq "tar round trip" "$(zt_sum "$R/lines")" "$(zt_zsum "$D/untar/lines")"
fi

# ---- shell redirections (one preloaded bash, builtins) ------------------------------
# An fd shared by a group of builtins shares one offset.
zt_check "{ echo a; echo b; printf c; } > f" zt_sh '{ echo a; echo b; printf c; } > "$1"' "$D/grp"
zt_eq "group redirection content" "$(printf 'a\nb\nc' | zt_sum /dev/stdin)" "$(zt_zsum "$D/grp")"
# DESIGN.md D6: external commands in the group share the shell's offset
# (fork + exec; the child's fclose(stdout) and close(1) hand the offset back).
zt_check "{ echo a; /bin/echo b; cat x; echo c; } > f" \
	zt_sh '{ echo a; /bin/echo b; cat "$2"; echo c; } > "$1"' "$D/d6" "$D/grp"
zt_eq "D6 example content" "$(printf 'a\nb\na\nb\ncc\n' | zt_sum /dev/stdin)" \
	"$(zt_zsum "$D/d6")"
zt_check "python os.write + os.close(1) inside a group" \
	zt_sh '{ echo a; python3 -c "import os; os.write(1, b\"b\\n\"); os.close(1)"; echo c; } > "$1"' \
	"$D/d6py"
zt_eq "python group content" "$(printf 'a\nb\nc\n' | zt_sum /dev/stdin)" "$(zt_zsum "$D/d6py")"
zt_check "exec 3>f; echo x >&3; echo y >&3" \
	zt_sh 'exec 3>"$1"; echo x >&3; echo y >&3; exec 3>&-' "$D/fd3"
zt_eq "exec 3> content" "$(printf 'x\ny\n' | zt_sum /dev/stdin)" "$(zt_zsum "$D/fd3")"
zt_check ">> appends" zt_sh 'echo 1 > "$1"; echo 2 >> "$1"; printf 3 >> "$1"; echo 4 >> "$1"' \
	"$D/app"
zt_eq ">> content" "$(printf '1\n2\n34\n' | zt_sum /dev/stdin)" "$(zt_zsum "$D/app")"
zt_check "exec 4>>f appends after other writers" \
	zt_sh 'exec 4>>"$1"; echo five >&4; echo six >> "$1"; echo seven >&4; exec 4>&-' "$D/app"
zt_eq "exec 4>> content" "$(printf '1\n2\n34\nfive\nsix\nseven\n' | zt_sum /dev/stdin)" \
	"$(zt_zsum "$D/app")"
zt_check "here-string into a file" zt_sh 'cat <<< "hello here-string" > "$1"' "$D/hs"
zt_eq "here-string content" "hello here-string" "$(zt_run cat "$D/hs")"
zt_check "here-doc into a file" zt_sh 'cat > "$1" <<EOF
line one
line two
EOF' "$D/hd"
zt_eq "here-doc content" "$(printf 'line one\nline two')" "$(zt_run cat "$D/hd")"
zt_eq "read builtin from a ZVFS file" "a|b" \
	"$(zt_sh 'exec 5<"$1"; read -r x <&5; read -r y <&5; exec 5<&-; echo "$x|$y"' "$D/grp")"
zt_eq "< redirection into an external command" "$src_sum" \
	"$(zt_sh 'sha256sum < "$1"' "$D/big" | cut -d' ' -f1)"
zt_eq "\$(< file)" "$(printf 'x\ny')" "$(zt_sh 'echo "$(< "$1")"' "$D/fd3")"
zt_check "echo > f; cat f in one shell" zt_sh 'echo same-shell > "$1"; [ "$(cat "$1")" = same-shell ]' \
	"$D/same"
zt_check "<> read-write redirection" zt_sh 'printf 0123456789 > "$1"; exec 6<>"$1";
	read -r -n 4 x <&6; printf AB >&6; exec 6>&-; [ "$x" = 0123 ]' "$D/rw"
zt_eq "<> content" "0123AB6789" "$(zt_run cat "$D/rw")"
zt_eq "placeholder sizes without the library" "10 11 $(stat -c %s "$R/lines")" \
	"$(stat -c %s "$D/rw") $(stat -c %s "$D/short") $(stat -c %s "$D/lines")"

# ---- paths: prefix by whole components, symlinks, "..", passthrough names --------------
zvfs_file() { getfattr --absolute-names -n user.zvfs.blob_id "$1" >/dev/null 2>&1; }
plain_file() { # path: a plain Linux file holding the source's first 100000 bytes
	! zvfs_file "$1" && cmp -s -n 100000 "$1" "$T/src.bin"
}
put100k() { # path [VAR=value...]: the source's first 100000 bytes, written by tee
	local p=$1
	shift
	head -c 100000 "$T/src.bin" | zt_run env "$@" tee "$p" >/dev/null
}
if [ "$ZT_TARGET" = mount ]; then
	mkdir -p "$M-logs" "$T/elsewhere"
	zt_check "a sibling prefix (mnt-logs) is not the mount" put100k "$M-logs/f"
	zt_check "mnt-logs/f is a plain file" plain_file "$M-logs/f"
	ln -s "$M/d" "$T/link-in"
	zt_check "write through a symlink into the mount" put100k "$T/link-in/viasym"
	zt_check "a file reached through a symlink is a ZVFS file" zvfs_file "$M/d/viasym"
	zt_eq "viasym content" "$(head -c 100000 "$T/src.bin" | zt_sum /dev/stdin)" \
		"$(zt_zsum "$T/link-in/viasym")"
	mkdir -p "$M/d/sub"
	zt_check "write through .." put100k "$M/d/sub/../dotdot"
	zt_check "a file named through .. is a ZVFS file" zvfs_file "$M/d/dotdot"
	ln -s "$T/elsewhere" "$M/d/link-out"
	zt_check "write through a symlink leading out of the mount" put100k "$M/d/link-out/f"
	zt_check "a file outside reached from the mount is plain" plain_file "$T/elsewhere/f"
	zt_check "default ZVFS_PASSTHROUGH (*-shm)" put100k "$M/d/x-shm"
	zt_check "x-shm is a plain file" plain_file "$M/d/x-shm"
	pt="ZVFS_PASSTHROUGH=*.log:*.tmp"
	zt_check "$pt: y.tmp" put100k "$M/d/y.tmp" "$pt"
	zt_check "$pt: y.dat" put100k "$M/d/y.dat" "$pt"
	zt_check "y.tmp is a plain file" plain_file "$M/d/y.tmp"
	zt_check "y.dat is a ZVFS file" zvfs_file "$M/d/y.dat"
	zt_check "ZVFS_DISABLE=1 passes everything through" put100k "$M/d/disabled" ZVFS_DISABLE=1
	zt_check "disabled: a plain file" plain_file "$M/d/disabled"
	rm -f "$M/d/x-shm" "$M/d/y.tmp" "$M/d/disabled" # plain: not for the placeholder check

	# Direct mode: while the shell holds a ZVFS fd (and so the store), a
	# child using ZVFS fails clearly (or, served some other way, gets the
	# right data); it never gets the placeholder's zeros.
	zt_sh 'exec 3<"$1"; cat "$2" > "$3" 2>/dev/null; s=$?; exec 3<&-; exit $s' \
		"$D/app" "$D/big" "$T/busy.out"
	st=$?
	if [ $st -ne 0 ] && [ ! -s "$T/busy.out" ]; then
		zt_ok "a second process while the store is held: clear failure (exit $st)"
	elif [ $st -eq 0 ] && cmp -s "$T/busy.out" "$T/src.bin"; then
		zt_ok "a second process while the store is held: right data"
	else
		zt_fail "a second process while the store is held" \
			"exit $st, $(stat -c %s "$T/busy.out") bytes of wrong data"
	fi
	if [ "$ZT_MODE" != daemon ]; then
		# A create that fails there (EIO) leaves no file behind (O_EXCL, mkstemp).
		zt_run python3 -c 'import os, sys, time
f = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644); os.write(f, b"x"); time.sleep(3)' \
			"$D/holder" &
		holder=$!
		sleep 1
		zt_eq "creates while the store is held: EIO, EIO" "5 5" "$(zt_run python3 -c 'import os, sys, tempfile
r = []
for make in (lambda: os.open(sys.argv[1] + "/excl", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644),
             lambda: tempfile.mkstemp(dir=sys.argv[1])):
    try:
        make()
        r.append("0")
    except OSError as e:
        r.append(str(e.errno))
print(" ".join(r))' "$D" 2>/dev/null)"
		wait "$holder"
		zt_eq "...and leave no file behind" "" "$(ls "$D" | grep -E '^(excl|tmp)')"
		zt_run rm -f "$D/holder"
	fi
fi

# ---- rm, mv ----------------------------------------------------------------------
zt_check "rm" zt_run rm "$D/big2"
zt_check "rm removed the name" test ! -e "$D/big2"
zt_check "mv over an existing file" zt_run mv "$D/grp" "$D/fd3"
zt_eq "mv over: content is the moved file's" "$(printf 'a\nb\nc' | zt_sum /dev/stdin)" \
	"$(zt_zsum "$D/fd3")"
zt_check "mv renamed away the source" test ! -e "$D/grp"
mkdir -p "$D/sub"
zt_check "mv into a subdirectory" zt_run mv "$D/catin" "$D/sub/catin"
zt_eq "mv into a subdirectory: content" "$src_sum" "$(zt_zsum "$D/sub/catin")"
zt_check "cp -a keeps the content" zt_run cp -a "$D/sub" "$D/sub2"
zt_eq "cp -a content" "$src_sum" "$(zt_zsum "$D/sub2/catin")"
zt_check "rm -r" zt_run rm -r "$D/sub2"

# ---- unlinked by another process while open ---------------------------------------------
# rm (a child of the shell) removes a file the shell holds open: the data stays
# readable through the shell's descriptor, and its close frees the space.
zt_eq "rm in a child while the shell holds the file" "[kept]" \
	"$(zt_sh 'printf "kept\n" > "$1"; exec 3<"$1"; rm "$1"; read -r x <&3; echo "[$x]"; exec 3<&-' "$D/held")"
zt_check "the same, read-write: a write after the rm succeeds" \
	zt_sh 'exec 3<>"$1"; rm "$1"; echo hi >&3 || exit 1; exec 3<&-' "$D/held2"
if [ "$ZT_TARGET" = mount ] && [ "$ZT_MODE" != daemon ]; then
	# (the daemon holds its store: zt_fsck checks at the end)
	zt_eq "their space was freed: no orphan blob" 0 \
		"$("$ZT_ZVFS" fsck "$T/store.img" --mount "$M" -n -P 2>&1 | grep -c '^warning: orphan blob')"
fi

# ---- times set through the descriptor ----------------------------------------------
# cp -p and gzip set the times on the open file before closing it; the size
# the close puts on the placeholder must not move them again.
printf stamped > "$T/stamped" && touch -d 2001-02-03 "$T/stamped"
old_mtime=$(stat -c %Y "$T/stamped")
zt_check "cp -p" zt_run cp -p "$T/stamped" "$D/stamped"
zt_eq "cp -p kept the mtime" "$old_mtime" "$(stat -c %Y "$D/stamped")"
zt_eq "cp -p content" stamped "$(zt_run cat "$D/stamped")"
zt_check "gzip" zt_run gzip "$D/stamped"
zt_eq "gzip kept the mtime" "$old_mtime" "$(stat -c %Y "$D/stamped.gz")"
zt_eq "gzip content" stamped "$(zt_run zcat "$D/stamped.gz")"
zt_sh 'exec 3>"$1"; printf 0123456789 >&3; touch -d 2001-02-03 "$1"; exec 3>&-' "$D/touched"
zt_eq "touch by name while open for writing" "$old_mtime" "$(stat -c %Y "$D/touched")"

# ---- out of the mount --------------------------------------------------------------
# A ZVFS file's bytes are in the store: renamed or linked to a name outside the
# mounts, that name would be an empty placeholder.  rename and link answer EXDEV
# there, and mv copies (on the plain target this is an ordinary move).
mkdir -p "$T/out" "$D/tree"
zt_sh 'printf precious > "$1"; printf inner > "$2"' "$D/leaving" "$D/tree/f"
zt_check "mv of a file out of the directory" zt_run mv "$D/leaving" "$T/out/leaving"
zt_eq "moved out: the bytes are there without the library" precious "$(cat "$T/out/leaving")"
zt_check "mv of a directory out" zt_run mv "$D/tree" "$T/out/tree"
zt_eq "directory moved out: its file without the library" inner "$(cat "$T/out/tree/f")"
zt_sh 'printf linked > "$1"' "$D/tolink"
if [ "$ZT_TARGET" = mount ]; then
	zt_eq "ln to a name outside the mount: EXDEV" 1 \
		"$(zt_run python3 -c 'import os, sys
try:
    os.link(sys.argv[1], sys.argv[2])
    print(0)
except OSError as e:
    print(int(e.errno == 18))' "$D/tolink" "$T/out/tolink")"
	zt_check "nothing was linked outside" test ! -e "$T/out/tolink"
	# linkat(AT_SYMLINK_FOLLOW) judges the file at the end of the link, wherever the link is.
	ln -s "$D/tolink" "$T/out/sym"
	# (ln -L calls linkat with AT_SYMLINK_FOLLOW; Python's os.link calls link.)
	zt_eq "ln -L through a link outside: EXDEV" "Invalid cross-device link" \
		"$(zt_run ln -L "$T/out/sym" "$T/out/viasym" 2>&1 | sed 's/.*: //')"
	zt_check "nothing was linked through the symlink" test ! -e "$T/out/viasym"
	zt_check "the symlink itself may be linked outside" \
		zt_run python3 -c 'import os, sys; os.link(sys.argv[1], sys.argv[2], follow_symlinks=False)' \
		"$T/out/sym" "$T/out/sym2"
	zt_sh 'printf back > "$1"' "$T/out/in"
	zt_check "mv of a plain file into the mount" zt_run mv "$T/out/in" "$D/in"
	zt_eq "moved in: readable through the library" back "$(zt_run cat "$D/in")"
else
	zt_check "ln to a name outside the directory" zt_run ln "$D/tolink" "$T/out/tolink"
fi
rm -rf "$T/out"

zt_finish
