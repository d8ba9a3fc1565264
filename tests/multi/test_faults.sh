#!/usr/bin/env bash
# Faults and trust in daemon mode:
#   * a client SIGKILLed in the middle of writing leaves no handle behind in
#     the daemon (zvfs stat), and another client keeps working;
#   * the daemon SIGKILLed while a client writes in a loop: the client gets EIO
#     within 1 s (measured by the client itself, mtool eio), later calls do not hang;
#   * zvfsd restarted on the same image: a running client whose fds stayed open
#     goes on through them; fsynced data intact;
#   * a client of another user (nobody) cannot open a root-owned 0600 ZVFS file
#     (EACCES from Linux) and gets nothing through the daemon either (hostile:
#     O_PATH fds, read-only fds used for writes, guessed handles, malformed
#     messages); while it can use files of its own.
# usage: test_faults.sh        exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
mt_init faults 1G
mt_daemon_start || mt_finish
D=$M/d
mkdir -p "$D"

# The `zvfs stat` line of the client with process id PID
# ("client N pid PID uid U gid G comm NAME handles H rings R").
stat_pid_lines() { mt_stat | grep -E "^client [0-9]+ pid $1 "; }

# --- a client SIGKILLed mid-write -----------------------------------------------
rm -f "$T/go" "$T"/ready.*
mt_run "$ZT_MTOOL" append "$D/survivor" 0 1000 "$T/ready.0" "$T/go" >"$T/survivor.out" 2>&1 &
surv=$!
mt_run "$ZT_MTOOL" loopw "$D/victim" >"$T/victim.out" 2>&1 &
victim=$!
MT_PIDS="$surv $victim"
if mt_wait_for 30 grep -q '^running ' "$T/victim.out" &&
	mt_wait_for 30 test -e "$T/ready.0"; then
	victim=$(sed -n 's/^running //p' "$T/victim.out") # mtool's own pid
	MT_PIDS="$surv $victim"
	before=$(mt_stat)
	if [ -z "$before" ] || ! stat_pid_lines $victim >/dev/null; then
		mt_fail "client kill: zvfs stat names the writing client (pid $victim) before the kill" \
			"$(echo "$before" | head -n 20)"
	else
		mt_ok "client kill: zvfs stat names the writing client before the kill"
		echo "$before" | sed 's/^/# stat before: /' | head -n 40
	fi
	kill -KILL $victim
	if mt_wait_for 5 bash -c '! "$1" stat --socket "$2" 2>&1 | grep -qE "^client [0-9]+ pid $3 "' \
		_ "$ZT_ZVFS" "$SOCK" $victim; then
		mt_ok "client kill: no client, handle or open file left for pid $victim within 5 s"
	else
		mt_fail "client kill: the killed client is still in zvfs stat after 5 s" \
			"$(stat_pid_lines $victim | head -n 10)"
	fi
	touch "$T/go"
	wait $surv
	mt_eq "client kill: another client's 1000 appends after the kill" 0 $?
	mt_tool "client kill: survivor's records" recs "$D/survivor" 1 1000
	# Every client gone: no handle and no open file left in the daemon.
	if mt_wait_for 5 bash -c '"$1" stat --socket "$2" 2>&1 | grep -qE "^files open 0 " &&
		"$1" stat --socket "$2" 2>&1 | grep -qE "^clients [0-9]+ handles 0 "' _ "$ZT_ZVFS" "$SOCK"; then
		mt_ok "client kill: 0 handles and 0 open files once every client is gone"
	else
		mt_fail "client kill: handles or open files left" "$(mt_stat | grep -E '^(files|clients|client) ')"
	fi
	# The victim's file is an ordinary file again for others.
	mt_check "client kill: victim's file can be removed" mt_run rm "$D/victim"
	mt_check "zvfsd alive after the client's SIGKILL" kill -0 "$DPID"
else
	mt_fail "client kill" "the writers did not start: $(cat "$T/victim.out" "$T/survivor.out")"
	kill -KILL $surv $victim 2>/dev/null
fi
MT_PIDS=

# --- the daemon SIGKILLed under a writing client: EIO within 1 s ----------------
mt_tool "daemon kill: EIO within 1 s" eio "$D/eio" "$DPID"
wait "$DPID" 2>/dev/null
DPID=
mt_daemon_start || mt_finish
mt_ok "zvfsd restarted after SIGKILL"

# --- restart under a running client: its open fds go on -------------------------
mt_spawn "$ZT_MTOOL" reconnect "$D/reconnect"
if mt_expect "$SP_OUT" ready 30; then
	mt_daemon_kill
	echo killed >&"$SP_IN"
	if mt_expect "$SP_OUT" eio 30 && mt_daemon_start; then
		echo restarted >&"$SP_IN"
		mt_expect "$SP_OUT" "done" 60 || mt_fail "reconnect" "the client did not finish"
	fi
else
	mt_fail "reconnect" "the client did not start"
fi
mt_spawn_end
mt_eq "reconnect: client exit status" 0 $?
MT_PIDS=
[ -n "$DPID" ] || mt_daemon_start || mt_finish
mt_tool "reconnect: a new client reads both MiB" verify "$D/reconnect" $((2 * 1048576)) 11

# --- another user --------------------------------------------------------------
mt_tool "secret: fill" fill "$M/secret" 65536 21
mt_tool "readable: fill" fill "$M/readable" 65536 22
chmod 600 "$M/secret"
chmod 644 "$M/readable"
mkdir -p "$M/nobody"
chown nobody "$M/nobody"
# nobody can use the daemon for its own files (so the refusals below are not
# just a socket nobody cannot reach).
out=$(mt_run_as nobody "$ZT_MTOOL" fill "$M/nobody/own" 100000 23 2>&1 &&
	mt_run_as nobody "$ZT_MTOOL" verify "$M/nobody/own" 100000 23 2>&1)
st=$?
mt_tally "$out"
[ $st -eq 0 ] || mt_fail "nobody: own file" "exit $st"
mt_check "nobody: own file is a ZVFS file" \
	getfattr --absolute-names -n user.zvfs.blob_id "$M/nobody/own"
out=$(mt_run_as nobody "$ZT_MTOOL" tryopen "$M/secret" r 13 2>&1;
	mt_run_as nobody "$ZT_MTOOL" tryopen "$M/secret" rw 13 2>&1;
	mt_run_as nobody "$ZT_MTOOL" tryopen "$M/readable" w 13 2>&1)
mt_tally "$out"
out=$(mt_run_as nobody bash -c 'cat "$1" >/dev/null' _ "$M/secret" 2>&1)
mt_check "nobody: cat of the 0600 file fails" test $? -ne 0

# While root holds the secret open (a handle of another client exists).
mt_spawn "$ZT_MTOOL" hold "$M/secret" 65536 21
if mt_expect "$SP_OUT" open 30; then
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env ASAN_OPTIONS="$MT_ASAN_OPTIONS" "$ZT_HOSTILE" "$SOCK" "$M/secret" "$M/readable" 2>&1)
	st=$?
	mt_tally "$out"
	[ $st -eq 0 ] || grep -q '^FAIL ' <<<"$out" || mt_fail "hostile" "exit $st"
	mt_check "zvfsd alive after the hostile client" kill -0 "$DPID"
	# root's handle survived the guessed READs and CLOSEs: it still reads.
	echo read >&"$SP_IN"
	mt_expect "$SP_OUT" read 30 || mt_fail "secret holder" "no 'read'"
	echo close >&"$SP_IN"
	mt_expect "$SP_OUT" closed 30 || mt_fail "secret holder" "no 'closed'"
fi
mt_spawn_end
mt_eq "secret holder: exit status" 0 $?
MT_PIDS=
mt_tool "secret intact after the hostile client" verify "$M/secret" 65536 21
mt_tool "readable intact after the hostile client" verify "$M/readable" 65536 22
mt_finish
