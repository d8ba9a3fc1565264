#!/usr/bin/env bash
# Python file I/O through libzvfs.so (pyio.py does the work and the checks).
# usage: test_python.sh mount|plain PYIO_PY     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" python
pyio=$2
zt_need python3
# The real interpreter, not a wrapper script such as a pyenv shim.
py=$(python3 -c 'import sys; print(sys.executable)') || zt_skip "python3 does not run"

zt_check "python: write phase" zt_run "$py" "$pyio" write "$D"
zt_check "python: verify phase (second process)" zt_run "$py" "$pyio" verify "$D"
zt_eq "large.dat size without the library" \
	"$(zt_run "$py" -c 'import os,sys; print(os.path.getsize(sys.argv[1]))' "$D/large.dat")" \
	"$(stat -c %s "$D/large.dat")"
# A process killed while holding the store (direct mode): the next one
# recovers it, and what was fsync'ed is there.
zt_run "$py" "$pyio" crash "$D"
zt_eq "python: killed by SIGKILL" 137 "$?"
zt_check "python: fsync'ed data after SIGKILL (new process)" zt_run "$py" "$pyio" durable "$D"
# The library's own descriptors replaced or closed by the program (an unnoticed
# dup2 over the device fd once wrote the store into the program's file).
zt_check "python: dup2 over / close of the library's fds" zt_run "$py" "$pyio" fds "$D"
zt_check "python: fds.dat from a new process" zt_run "$py" -c \
	'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(len(d) != 3 * 65536)' "$D/fds.dat"
zt_finish
