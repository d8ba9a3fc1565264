#!/usr/bin/env bash
# MariaDB (InnoDB) on ZVFS through zvfsd: mariadb-install-db into a datadir on
# the mount, mariadbd as user mysql with its socket in $T/run and no networking
# (innodb_log_file_mmap=OFF where the variable exists: a mapped redo log would
# bypass the library; native AIO only when it is libaio, not io_uring),
# sysbench oltp_read_write prepare + run, CHECK TABLE all OK; then mariadbd SIGKILLed under sysbench load, restarted:
# recovery completes, committed rows there, CHECK TABLE OK again.
# usage: test_mariadb.sh        exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
PATH=$PATH:/usr/sbin:/usr/bin
mt_need mariadbd mariadb-install-db mariadb mariadb-admin sysbench
id mysql >/dev/null 2>&1 || mt_skip "no user mysql"
mt_sanitized && mt_skip "MariaDB under $ZT_SANITIZE takes longer than the CI budget allows"
SB_SECONDS=${ZT_SB_SECONDS:-20}
mt_init mariadb 4G
mt_daemon_start || mt_finish
DATA=$M/mysql
RUN=$T/run # socket, pid file and error log: a directory mysql may write
mkdir -p "$DATA" "$RUN"
chown mysql: "$DATA" "$RUN"
MSOCK=$RUN/mysqld.sock
MERR=$RUN/mysqld.err
MPID=

# InnoDB settings on paths ZVFS serves: native AIO on (the default; a server
# built with liburing is refused io_uring by the library, which io_uring
# submissions would bypass, and uses libaio, whose completions the library
# delivers through the kernel context that mariadbd reaps with the raw system
# call), and no mapped redo log.
inno=(--innodb-buffer-pool-size=128M --innodb-log-file-size=64M --innodb-use-native-aio=1)
if mariadbd --no-defaults --verbose --help 2>/dev/null | grep -q '^innodb-log-file-mmap'; then
	inno+=(--innodb-log-file-mmap=OFF)
fi
opts=(--no-defaults --datadir="$DATA" --socket="$MSOCK" --skip-networking
	--pid-file="$RUN/mysqld.pid" --innodb-flush-log-at-trx-commit=1 "${inno[@]}")

sql() { # sql: as root over the socket, no library
	mariadb --no-defaults -uroot -S "$MSOCK" -N -B -e "$1"
}
m_start() {
	rm -f "$RUN/mysqld.pid"
	mt_run_as mysql mariadbd "${opts[@]}" --log-error="$MERR" &
	MSH=$! # a subshell: mariadbd's own pid is in its pid file
	MT_PIDS=$MSH
	if mt_wait_for 120 mariadb-admin --no-defaults -uroot -S "$MSOCK" ping >/dev/null 2>&1 &&
		mt_wait_for 10 test -s "$RUN/mysqld.pid"; then
		MPID=$(cat "$RUN/mysqld.pid")
		MT_PIDS="$MSH $MPID"
		return 0
	fi
	mt_fail "mariadbd start" "not up in 120 s"
	return 1
}
m_fail() { # why
	mt_fail "mariadb" "$1"
	echo "# last lines of the error log:"
	tail -n 30 "$MERR" | sed 's/^/#   /'
	[ -n "$MPID" ] && kill -KILL "$MPID" 2>/dev/null
	[ -n "${MSH:-}" ] && kill -KILL "$MSH" 2>/dev/null && wait "$MSH" 2>/dev/null
	MPID=
	mt_finish
}
check_tables() { # name: CHECK TABLE on every sbtest table and the marker
	local out bad
	out=$(sql "CHECK TABLE sbtest.sbtest1, sbtest.sbtest2, sbtest.sbtest3, sbtest.sbtest4, sbtest.marker" 2>&1)
	bad=$(echo "$out" | awk -F'\t' '!($3 == "status" && $4 == "OK")')
	if [ -n "$out" ] && [ -z "$bad" ]; then
		mt_ok "$1: CHECK TABLE all OK ($(echo "$out" | wc -l) tables)"
	else
		mt_fail "$1: CHECK TABLE" "$(echo "$bad" | head -n 10)"
	fi
}
sb() { # sysbench command, args...
	local c=$1
	shift
	sysbench oltp_read_write --db-driver=mysql --mysql-socket="$MSOCK" --mysql-user=root \
		--mysql-db=sbtest --tables=4 --table-size=20000 "$@" "$c"
}

if ! mt_run_as mysql mariadb-install-db --no-defaults --datadir="$DATA" \
	--auth-root-authentication-method=normal --skip-test-db \
	"${inno[@]}" >"$T/install.log" 2>&1; then
	echo "# mariadb-install-db output:"
	tail -n 30 "$T/install.log" | sed 's/^/#   /'
	m_fail "mariadb-install-db failed"
fi
mt_ok "mariadb-install-db into a datadir on the mount"
m_start || m_fail "start"
mt_ok "mariadbd started (socket $MSOCK, no networking)"
mt_check "ibdata1 is a ZVFS file" getfattr --absolute-names -n user.zvfs.blob_id "$DATA/ibdata1"
aio=$(sql "SELECT @@innodb_use_native_aio, @@innodb_flush_method, @@innodb_log_file_mmap" 2>/dev/null ||
	sql "SELECT @@innodb_use_native_aio, @@innodb_flush_method")
echo "# innodb_use_native_aio, innodb_flush_method, innodb_log_file_mmap: $aio"
# libaio's completions of ZVFS iocbs must reach mariadbd, which reaps them with the raw
# io_getevents system call: with native AIO in use, every test below depends on it.
mt_check "InnoDB uses native AIO (libaio) on the mount" grep -q "Using Linux native AIO" "$MERR"

sql "CREATE DATABASE sbtest" || m_fail "create database"
if sb prepare >"$T/sb-prepare.log" 2>&1; then
	mt_ok "sysbench oltp_read_write prepare (4 tables x 20000 rows)"
else
	m_fail "sysbench prepare: $(tail -n 10 "$T/sb-prepare.log")"
fi
out=$(sb run --threads=4 --time="$SB_SECONDS" --report-interval=0 2>&1)
st=$?
tps=$(echo "$out" | sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p')
if [ $st -eq 0 ] && [ -n "$tps" ]; then
	mt_ok "sysbench oltp_read_write run --threads=4 --time=$SB_SECONDS: $tps tps"
else
	mt_fail "sysbench run" "exit $st: $(echo "$out" | tail -n 15)"
fi
out=$(sql "CREATE TABLE sbtest.marker(id INT PRIMARY KEY) ENGINE=InnoDB;
	INSERT INTO sbtest.marker WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
	SELECT x FROM c;" 2>&1) || mt_fail "marker rows" "insert failed: $out"
check_tables "after sysbench"

# --- SIGKILL under load, recover ------------------------------------------------
sb run --threads=4 --time=60 --report-interval=0 >"$T/sb-crash.log" 2>&1 &
bench=$!
before=$(sql "SHOW GLOBAL STATUS LIKE 'Com_commit'" | cut -f2)
mt_wait_for 30 bash -c '[ "$(mariadb --no-defaults -uroot -S "$1" -N -B -e "SHOW GLOBAL STATUS LIKE '"'Com_commit'"'" | cut -f2)" -gt $(($2 + 500)) ]' _ "$MSOCK" "${before:-0}"
kill -KILL "$MPID"
wait "$MSH" 2>/dev/null
MPID=
wait "$bench" 2>/dev/null
mt_ok "mariadbd SIGKILLed under sysbench load"
m_start || m_fail "restart after SIGKILL"
if grep -qE "Starting crash recovery|crash recovery" "$MERR"; then
	mt_ok "restart: InnoDB crash recovery ran"
else
	mt_fail "restart: crash recovery" "no crash recovery in the error log"
fi
mt_eq "restart: committed marker rows" 1000 "$(sql 'SELECT count(*) FROM sbtest.marker')"
# oltp_read_write deletes and re-inserts a row in one transaction: counts stay.
for i in 1 2 3 4; do
	mt_eq "restart: sbtest$i rows" 20000 "$(sql "SELECT count(*) FROM sbtest.sbtest$i")"
done
check_tables "after crash recovery"
if mariadb-admin --no-defaults -uroot -S "$MSOCK" shutdown; then
	wait "$MSH"
	mt_eq "mariadbd shutdown: exit status" 0 $?
else
	mt_fail "mariadb-admin shutdown"
	kill -KILL "$MPID"
fi
MPID=
MT_PIDS=
mt_finish
