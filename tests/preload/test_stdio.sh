#!/usr/bin/env bash
# stdio through libzvfs.so: streams a program opens, and a program's stdout
# redirected to a ZVFS file by the shell (glibc writes it through its hidden
# __write, which interposition alone never sees).
# usage: test_stdio.sh mount|plain STDIO_PROG     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" stdio
prog=$2

zt_check "stdio streams" zt_run "$prog" streams "$D"
zt_check "printf to stdout > file" zt_sh '"$1" print 5000 > "$2"' "$prog" "$D/out.txt"
zt_check "stdout landed in the file" zt_run "$prog" checkprint 5000 "$D/out.txt"
zt_check "printf to stdout >> file" zt_sh '"$1" print 7 >> "$2"' "$prog" "$D/out.txt"
want=$( (
	"$prog" print 5000
	"$prog" print 7
) | sha256sum | cut -d' ' -f1)
zt_eq ">> appended to the file" "$want" "$(zt_zsum "$D/out.txt")"
zt_eq "size without the library" "$( ("$prog" print 5000; "$prog" print 7) | wc -c)" \
	"$(stat -c %s "$D/out.txt")"
# stderr too (2>), and stdout and stderr on one file (>f 2>&1 shares one offset).
zt_check "stdout and stderr into one file" \
	zt_sh '"$1" print 100 > "$2" 2>&1; "$1" checkprint 100 "$2" 2>/dev/null' "$prog" "$D/both.txt"
zt_check "stdout into a file, stdin from one" \
	zt_sh '"$1" print 300 > "$2"; cat < "$2" > "$3"; "$1" checkprint 300 "$3"' \
	"$prog" "$D/in.txt" "$D/copy.txt"
zt_finish
