#!/usr/bin/env bash
# SQLite (sqlite3 CLI) through libzvfs.so: rollback journal and WAL, both with
# PRAGMA mmap_size=0.  The WAL index (-shm) is mapped shared by SQLite, so
# ZVFS_PASSTHROUGH's default "*-shm" keeps it a plain Linux file.
# usage: test_sqlite.sh mount|plain     exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
zt_init "${1:-mount}" sqlite
zt_need sqlite3

sq() { # db, sql...: run the CLI under the library, fail on the first error
	local db=$1
	shift
	zt_run sqlite3 -batch -bail "$db" "$@"
}

# 12 transactions of 1000 rows, then one of 5000, with an index and updates.
fill_sql() {
	echo "PRAGMA mmap_size=0;"
	echo "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);"
	echo "CREATE INDEX t_k ON t(k);"
	for i in $(seq 0 11); do
		echo "BEGIN;"
		echo "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<1000)"
		echo "  INSERT INTO t(k, v) SELECT 'k' || ($i*1000+x), randomblob(100 + x % 300) FROM c;"
		echo "COMMIT;"
	done
	echo "BEGIN;"
	echo "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<5000)"
	echo "  INSERT INTO t(k, v) SELECT 'big' || x, zeroblob(2000) FROM c;"
	echo "UPDATE t SET v = randomblob(50) WHERE id % 7 = 0;"
	echo "DELETE FROM t WHERE id % 11 = 0;"
	echo "COMMIT;"
	# A rolled back transaction must leave nothing behind.
	echo "BEGIN; DELETE FROM t; INSERT INTO t(k) VALUES('gone'); ROLLBACK;"
}
want_rows=$(((12000 + 5000) - (17000 / 11)))

for mode in DELETE WAL; do
	db=$D/db-$mode.sqlite
	lmode=$(echo $mode | tr '[:upper:]' '[:lower:]')
	# WAL: persist_wal keeps -wal and -shm after the last connection closed,
	# to be checked below; the CLI prints the value it set ("1").
	pre=() pout=""
	[ $mode = WAL ] && pre=(".filectrl persist_wal 1") pout=$'1\n'
	{
		printf '%s\n' "${pre[@]}"
		echo "PRAGMA journal_mode=$mode;"
		fill_sql
		echo "PRAGMA integrity_check;"
		echo "SELECT count(*) FROM t;"
	} >"$T/fill.sql"
	# PRAGMA mmap_size=0 prints the new value, 0.
	out=$(sq "$db" <"$T/fill.sql" 2>&1)
	zt_eq "$mode: fill, integrity_check, count" "$(printf '%s%s\n0\nok\n%s' "$pout" "$lmode" \
		"$want_rows")" "$out"
	# Reopen in a new process: same rows, still consistent.
	out=$(sq "$db" "${pre[@]}" "PRAGMA mmap_size=0;" "PRAGMA integrity_check;" \
		"SELECT count(*), sum(length(v)) > 0 FROM t;" "PRAGMA journal_mode;" 2>&1)
	zt_eq "$mode: reopen, integrity_check, count" \
		"$(printf '%s0\nok\n%s|1\n%s' "$pout" "$want_rows" "$lmode")" "$out"
	out=$(sq "$db" "${pre[@]}" "PRAGMA mmap_size=0;" "VACUUM;" "PRAGMA integrity_check;" \
		"SELECT count(*) FROM t WHERE k LIKE 'big%';" 2>&1)
	zt_eq "$mode: VACUUM" "$(printf '%s0\nok\n%s' "$pout" $((5000 - (17000 / 11 - 12000 / 11))))" \
		"$out"
	zt_check "$mode: database file exists" test -s "$db"
	if [ "$ZT_TARGET" = mount ]; then
		zt_check "$mode: database is a ZVFS file" \
			getfattr --absolute-names -n user.zvfs.blob_id "$db" \
				>/dev/null
	fi
	if [ $mode = WAL ]; then
		# persist_wal kept -wal and -shm after the last connection closed.
		zt_check "WAL: -shm exists" test -f "$db-shm"
		zt_check "WAL: -shm is a plain file (no ZVFS xattr)" \
			bash -c '! getfattr --absolute-names -n user.zvfs.blob_id "$1" 2>/dev/null' _ \
			"$db-shm"
		zt_check "WAL: -wal exists" test -f "$db-wal"
		if [ "$ZT_TARGET" = mount ]; then
			zt_check "WAL: -wal is a ZVFS file" \
				getfattr --absolute-names -n user.zvfs.blob_id "$db-wal" \
				>/dev/null
		fi
	fi
done
zt_finish
