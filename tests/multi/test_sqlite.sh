#!/usr/bin/env bash
# SQLite from several processes at once through zvfsd, in WAL mode and in
# rollback-journal (DELETE) mode: 4 writer processes insert 1000 rows each
# (250 transactions of 4 rows) while readers count: one process counting 20000
# times, and a loop of new processes counting once each until the writers are
# done.  Readers must only ever see whole transactions (counts are multiples
# of 4, never decreasing); at the end the counts are exact, integrity_check is
# ok, a WAL checkpoint works, and a restarted daemon has every row.  SQLite's
# locks are fcntl locks on the database (and the -shm): they rely on the
# library never closing an fd of the file behind SQLite's back.
# PRAGMA mmap_size=0; the -shm index, which SQLite maps shared, is a plain
# Linux file by the default ZVFS_PASSTHROUGH (*-shm); the database and the
# -wal are ZVFS files.
# usage: test_sqlite.sh        exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
mt_need sqlite3
mt_init sqlite 1G
mt_daemon_start || mt_finish
D=$M/d
mkdir -p "$D"
W=4 TX=250 READS=20000

sq() { # sql...: the CLI under the library, -bail: the first error fails it
	mt_run sqlite3 -batch -bail "$db" "$@"
}

# One journal mode: create, 4 writers and 2 readers at once, then the checks.
run_mode() { # WAL | DELETE
	local mode=$1 lmode w r st st0 st1 n n1 res out pids rpids
	lmode=$(echo "$mode" | tr '[:upper:]' '[:lower:]')
	db=$D/$lmode.db
	out=$(sq "PRAGMA journal_mode=$mode;" "PRAGMA mmap_size=0;" \
		"CREATE TABLE t(w INTEGER, i INTEGER, pad BLOB, PRIMARY KEY(w, i));" 2>&1)
	mt_eq "$mode: create" "$lmode"$'\n0' "$out"

	for w in $(seq 0 $((W - 1))); do
		{
			echo ".timeout 60000"
			echo "PRAGMA mmap_size=0;"
			for i in $(seq 0 $((TX - 1))); do
				echo "BEGIN IMMEDIATE;"
				for k in 0 1 2 3; do
					echo "INSERT INTO t VALUES($w, $((4 * i + k)), randomblob(100 + ($i * 37 + $k) % 400));"
				done
				echo "COMMIT;"
			done
		} >"$T/$mode.writer.$w.sql"
	done
	{
		echo ".timeout 60000"
		echo "PRAGMA mmap_size=0;"
		for i in $(seq 1 $READS); do echo "SELECT count(*) FROM t;"; done
	} >"$T/$mode.reader.sql"

	pids=()
	for w in $(seq 0 $((W - 1))); do
		sq <"$T/$mode.writer.$w.sql" >"$T/$mode.writer.$w.out" 2>&1 &
		pids+=($!)
	done
	sq <"$T/$mode.reader.sql" >"$T/$mode.reader.0.out" 2>&1 &
	rpids=($!)
	# Reader 1: a new process per count; prints "0" (mmap_size) and the count.
	while [ ! -e "$T/$mode.writers.done" ]; do
		sq -cmd ".timeout 60000" "PRAGMA mmap_size=0;" "SELECT count(*) FROM t;" || echo "exit $?"
	done >"$T/$mode.reader.1.raw" 2>&1 &
	rpids+=($!)
	MT_PIDS="${pids[*]} ${rpids[*]}"
	for w in $(seq 0 $((W - 1))); do
		wait "${pids[$w]}"
		st=$?
		# The CLI prints the mmap_size it set (0), nothing else.
		if [ $st -eq 0 ] && [ "$(cat "$T/$mode.writer.$w.out")" = 0 ]; then
			mt_ok "$mode: writer $w: $TX transactions"
		else
			mt_fail "$mode: writer $w" "exit $st: $(head -c 500 "$T/$mode.writer.$w.out")"
		fi
	done
	touch "$T/$mode.writers.done"
	wait "${rpids[0]}"
	st0=$?
	wait "${rpids[1]}"
	st1=$?
	# Reader 1's output: pairs of "0" (mmap_size) and a count.
	awk 'NR % 2 == 0' "$T/$mode.reader.1.raw" >"$T/$mode.reader.1.out"
	n1=$(wc -l <"$T/$mode.reader.1.out")
	for r in 0 1; do
		if [ $r = 0 ]; then st=$st0 n=$READS; else st=$st1 n=$n1; fi
		[ $r = 0 ] && tail -n +2 "$T/$mode.reader.0.out" >"$T/$mode.reader.0.counts"
		[ $r = 1 ] && cp "$T/$mode.reader.1.out" "$T/$mode.reader.1.counts"
		# Counts: each a multiple of 4 (whole transactions), never going down, at most W*TX*4.
		res=$(awk -v max=$((W * TX * 4)) -v n="$n" '
			$0 !~ /^[0-9]+$/ { print "not a count: " $0; bad = 1; exit }
			$1 % 4 != 0 { print "count " $1 " is not whole transactions"; bad = 1; exit }
			$1 < last { print "count went down: " last " -> " $1; bad = 1; exit }
			$1 > max { print "count " $1 " > " max; bad = 1; exit }
			{ if (!first) first = $1 ""; last = $1; lines++ }
			END { if (!bad && lines != n) print "only " lines " counts";
				else if (!bad) print "ok " first ".." last }' "$T/$mode.reader.$r.counts")
		if [ $st -eq 0 ] && [ "$n" -gt 0 ] && [[ $res == ok* ]]; then
			mt_ok "$mode: reader $r: $n counts, whole transactions, never down (${res#ok })"
		else
			mt_fail "$mode: reader $r" "exit $st, $n counts, $res; $(head -c 300 "$T/$mode.reader.$r.counts")"
		fi
	done
	MT_PIDS=

	out=$(sq "PRAGMA mmap_size=0;" "PRAGMA integrity_check;" "SELECT count(*) FROM t;" \
		"SELECT group_concat(n) FROM (SELECT count(*) AS n FROM t GROUP BY w ORDER BY w);" 2>&1)
	mt_eq "$mode: integrity_check and exact counts" \
		"$(printf '0\nok\n%d\n%s' $((W * TX * 4)) "$(for w in $(seq $W); do echo $((TX * 4)); done | paste -sd,)")" "$out"
	if [ "$mode" = WAL ]; then
		out=$(sq "PRAGMA mmap_size=0;" "PRAGMA wal_checkpoint(TRUNCATE);" "PRAGMA integrity_check;" 2>&1)
		mt_eq "$mode: checkpoint(TRUNCATE), integrity_check" $'0\n0|0|0\nok' "$out"
	fi
	mt_check "$mode: database is a ZVFS file" getfattr --absolute-names -n user.zvfs.blob_id "$db"
	if [ -e "$db-shm" ]; then
		mt_check "$mode: -shm is a plain file (ZVFS_PASSTHROUGH)" \
			bash -c '! getfattr --absolute-names -n user.zvfs.blob_id "$1" 2>/dev/null' _ "$db-shm"
	fi
}

for mode in WAL DELETE; do
	run_mode $mode
done

# A new daemon on the same store sees the same rows.
mt_daemon_stop
mt_daemon_start || mt_finish
for db in "$D/wal.db" "$D/delete.db"; do
	out=$(sq "PRAGMA mmap_size=0;" "PRAGMA integrity_check;" "SELECT count(*) FROM t;" 2>&1)
	mt_eq "after a daemon restart: $(basename "$db")" "$(printf '0\nok\n%d' $((W * TX * 4)))" "$out"
done
mt_finish
