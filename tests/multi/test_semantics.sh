#!/usr/bin/env bash
# POSIX semantics between processes sharing one store through zvfsd:
#   * fork children share offsets: the shell's { echo a; /bin/echo b; echo c; } > f,
#     parent/child turns on one fd, children writing records at once on one fd;
#   * fds inherited through exec keep working (and keep their shared offset);
#   * fcntl record locks survive the library's own calls (stat by path, ...);
#   * O_APPEND from 4 processes x 1000 records at once loses nothing;
#   * several processes write disjoint ranges of one file;
#   * unlink while another process has the file open: reads go on, and the
#     space comes back after its close (a second file as big only fits then);
#   * fsync from a process other than the writer makes the data durable: the
#     daemon is SIGKILLed after it and the restarted daemon has every byte.
# usage: test_semantics.sh        exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
# 512 MiB: the unlink test fills 300 MiB twice, which fits only if the first is freed.
mt_init semantics 512M
mt_daemon_start || mt_finish
D=$M/d
mkdir -p "$D"

# --- fork/exec and the shared offset ----------------------------------------
out=$(mt_sh '{ echo a; /bin/echo b; echo c; } >"$1" && cat "$1"' "$D/shell.txt" 2>&1)
mt_eq "shell: { echo a; /bin/echo b; echo c; } > f" $'a\nb\nc' "$out"

mt_sh 'printf 0123456789ABCDEFGHIJ >"$1"' "$D/digits"
# head -c 5 reads exactly 5 bytes: each exec'd head continues where the last one stopped
# (not dd: under ASan, dd's aligned_alloc(4096, 5) aborts).
out=$(mt_sh 'exec 3<"$1"; for i in 1 2 3; do head -c 5 <&3; echo; done; cat <&3' \
	"$D/digits" 2>&1)
mt_eq "exec: inherited read fd, offset shared across 3 head and cat" \
	$'01234\n56789\nABCDE\nFGHIJ' "$out"
out=$(mt_sh 'exec 4>"$1"; /bin/echo x >&4; sh -c "echo y >&4"; echo z >&4; exec 4>&-; cat "$1"' \
	"$D/exec-w" 2>&1)
mt_eq "exec: inherited write fd through /bin/echo, sh and bash" $'x\ny\nz' "$out"

# fcntl locks: the kernel drops a process's locks on a file when it closes any
# fd of it, so the library must not open and close the file behind its back
# (bug: stat(path) in daemon mode did, and SQLite lost its locks).
mt_tool "locks" locks "$D/locks"

mt_tool forkseq forkseq "$D/forkseq"
mt_tool forkw forkw "$D/forkw" 4 500 &&
	mt_tool "forkw records" recs "$D/forkw" 4 500 $'END\n'

# --- O_APPEND from 4 processes at once ----------------------------------------
rm -f "$T"/ready.* "$T/go"
pids=()
for w in 0 1 2 3; do
	mt_run "$ZT_MTOOL" append "$D/append" $w 1000 "$T/ready.$w" "$T/go" &
	pids+=($!)
done
MT_PIDS="${pids[*]}"
if mt_wait_for 30 bash -c '[ $(ls "$1"/ready.* 2>/dev/null | wc -l) -eq 4 ]' _ "$T"; then
	touch "$T/go"
	bad=0
	for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
	mt_eq "append: 4 writers exit 0" 0 "$bad"
	mt_tool "append records" recs "$D/append" 4 1000
else
	mt_fail "append" "the 4 writers did not all open the file within 30 s"
	kill -KILL "${pids[@]}" 2>/dev/null
fi
MT_PIDS=

# --- disjoint ranges of one file from 4 processes -----------------------------
rm -f "$T"/ready.* "$T/go"
part=$((3 * 1048576 + 12345))
pids=()
for w in 0 1 2 3; do
	mt_run "$ZT_MTOOL" disjoint "$D/disjoint" $w 4 $part 5 "$T/ready.$w" "$T/go" &
	pids+=($!)
done
MT_PIDS="${pids[*]}"
if mt_wait_for 30 bash -c '[ $(ls "$1"/ready.* 2>/dev/null | wc -l) -eq 4 ]' _ "$T"; then
	touch "$T/go"
	bad=0
	for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
	mt_eq "disjoint: 4 writers exit 0" 0 "$bad"
	mt_tool "disjoint verify" verify "$D/disjoint" $((4 * part)) 5
else
	mt_fail "disjoint" "the 4 writers did not all open the file within 30 s"
	kill -KILL "${pids[@]}" 2>/dev/null
fi
MT_PIDS=

# --- unlink while another process has the file open ---------------------------
big=$((300 * 1048576))
mt_tool "unlink: fill" fill "$D/big1" $big 3
mt_spawn "$ZT_MTOOL" hold "$D/big1" $big 3 unlinked
if mt_expect "$SP_OUT" open 30; then
	mt_check "unlink: rm while open elsewhere" mt_run rm "$D/big1"
	mt_check "unlink: name gone" test ! -e "$D/big1"
	echo read >&"$SP_IN"
	mt_expect "$SP_OUT" read 60 || mt_fail "unlink: holder" "no 'read'"
	mt_stat | grep -E '^(files|clients|client) ' | sed 's/^/# stat while held: /'
	echo close >&"$SP_IN"
	mt_expect "$SP_OUT" closed 30 || mt_fail "unlink: holder" "no 'closed'"
else
	mt_fail "unlink: holder" "did not open the file"
fi
mt_spawn_end
mt_eq "unlink: holder exit status" 0 $?
MT_PIDS=
# The store holds 512 MiB; a second 300 MiB file fits only when the first is freed.
mt_tool "unlink: space freed after the last close (a second 300 MiB file fits)" \
	fill "$D/big2" $big 4 &&
	mt_tool "unlink: second file reads back" verify "$D/big2" $big 4
mt_run rm -f "$D/big2"

# --- fsync from another process is durable ------------------------------------
mt_spawn "$ZT_MTOOL" fill "$D/synced" $((8 * 1048576 + 4321)) 9 hold
if mt_expect "$SP_OUT" written 60; then
	mt_tool "fsync from another process" fsync "$D/synced"
	# The append file's writers closed it long ago; a new process fsyncs it.
	mt_tool "fsync of a file no one has open" fsync "$D/append"
	# The daemon dies first: the writer never closes its fd while the daemon lives.
	mt_daemon_kill
	kill -KILL $(pgrep -P "$SP_PID") "$SP_PID" 2>/dev/null
	mt_spawn_end >/dev/null
	if mt_daemon_start; then
		mt_ok "zvfsd restarted on the store after SIGKILL"
		mt_tool "fsynced data intact after the daemon's SIGKILL" \
			verify "$D/synced" $((8 * 1048576 + 4321)) 9
		mt_tool "fsynced append file intact after the daemon's SIGKILL" \
			recs "$D/append" 4 1000
	fi
else
	mt_fail "fsync: writer" "did not write"
	kill -KILL $(pgrep -P "$SP_PID") "$SP_PID" 2>/dev/null
	mt_spawn_end
fi
MT_PIDS=
mt_finish
