#!/usr/bin/env bash
# PostgreSQL 15 on ZVFS through zvfsd (many server processes share every file):
# initdb as postgres with the data directory on the mount; the server on a
# Unix socket in $T with fsync=on; a tablespace whose directory is on the mount
# (reached through the pg_tblspc symlink); pgbench -i -s 10 and pgbench
# -c 4 -j 2 -T $ZT_PG_SECONDS (default 30); pg_amcheck --heapallindexed clean;
# then the postmaster SIGKILLed under pgbench load, a restart whose crash
# recovery completes, every committed row there, pg_amcheck clean again.
# Client programs (psql, pgbench, pg_amcheck) connect over the socket and run
# without the library.
# usage: test_postgres.sh        exit 0 pass, 1 fail, 77 skip
set -u
. "$(dirname "$0")/lib.sh"
PGBIN=${ZT_PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/postgres" ] || mt_skip "PostgreSQL 15 not installed ($PGBIN)"
id postgres >/dev/null 2>&1 || mt_skip "no user postgres"
mt_sanitized && mt_skip "PostgreSQL under $ZT_SANITIZE takes longer than the CI budget allows"
PG_SECONDS=${ZT_PG_SECONDS:-30}
mt_init postgres 4G
mt_daemon_start || mt_finish
PGDATA=$M/pg
TS=$M/ts
RUN=$T/run # the server's socket and lock file: a directory postgres may write
mkdir -p "$PGDATA" "$TS" "$RUN"
chown postgres: "$PGDATA" "$TS" "$RUN"
chmod 700 "$PGDATA"
PORT=$((20000 + RANDOM % 20000)) # the socket is $RUN/.s.PGSQL.$PORT: no clash with others
PGPID=

pg() { # postgres program, args...: as user postgres, under the library
	local p=$1
	shift
	mt_run_as postgres "$PGBIN/$p" "$@"
}
psql_() { # args...: psql as a client (no library), stop at the first error
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U postgres -d postgres "$@"
}
pg_start() {
	pg postgres -D "$PGDATA" -c listen_addresses= -c unix_socket_directories="$RUN" \
		-c port="$PORT" -c fsync=on -c max_connections=30 -c shared_buffers=64MB \
		>>"$T/pg.log" 2>&1 &
	PGSH=$! # a subshell: the postmaster's pid is in postmaster.pid
	MT_PIDS=$PGSH
	if mt_wait_for 120 "$PGBIN/pg_isready" -q -h "$RUN" -p "$PORT" -U postgres; then
		# postmaster.pid is a ZVFS file: read through the library.
		PGPID=$(mt_run head -n 1 "$PGDATA/postmaster.pid")
		MT_PIDS="$PGSH $PGPID"
		if kill -0 "$PGPID" 2>/dev/null; then
			return 0
		fi
		mt_fail "postgres start" "postmaster.pid names '$PGPID', not a live process"
		return 1
	fi
	mt_fail "postgres start" "not ready in 120 s; log: $(tail -n 20 "$T/pg.log")"
	return 1
}
pg_stop() { # fast shutdown, wait for the postmaster
	[ -n "$PGPID" ] || return 0
	kill -INT "$PGPID"
	wait "$PGSH"
	mt_eq "postgres fast shutdown: exit status" 0 $?
	PGPID=
	MT_PIDS=
}
pg_fail() { # why: give up (the daemon is stopped and the store checked)
	mt_fail "postgres" "$1"
	echo "# last lines of the server log:"
	tail -n 30 "$T/pg.log" | sed 's/^/#   /'
	[ -n "$PGPID" ] && kill -KILL "$PGPID" 2>/dev/null
	[ -n "${PGSH:-}" ] && wait "$PGSH" 2>/dev/null
	PGPID=
	mt_finish
}
amcheck() { # name
	local out st
	out=$("$PGBIN/pg_amcheck" --heapallindexed -h "$RUN" -p "$PORT" -U postgres -d postgres 2>&1)
	st=$?
	if [ $st -eq 0 ] && [ -z "$out" ]; then
		mt_ok "$1: pg_amcheck --heapallindexed clean"
	else
		mt_fail "$1: pg_amcheck --heapallindexed" "exit $st: $(echo "$out" | head -n 20)"
	fi
}

# --- initdb and start --------------------------------------------------------
if ! pg initdb -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-instructions \
	>"$T/initdb.log" 2>&1; then
	echo "# initdb output:"
	tail -n 30 "$T/initdb.log" | sed 's/^/#   /'
	pg_fail "initdb failed"
fi
mt_ok "initdb with the data directory on the mount"
mt_check "PG_VERSION is a ZVFS file" getfattr --absolute-names -n user.zvfs.blob_id \
	"$PGDATA/PG_VERSION"
pg_start || pg_fail "start"
mt_ok "postgres started (port $PORT, socket in $RUN)"
mt_check "fsync is on" test "$(psql_ -c 'SHOW fsync')" = on

# --- tablespace on the mount through pg_tblspc -------------------------------
psql_ -c "CREATE EXTENSION amcheck" || pg_fail "create extension amcheck"
if psql_ -c "CREATE TABLESPACE ts1 LOCATION '$TS'" &&
	psql_ -c "CREATE TABLE tt(id int PRIMARY KEY, v text) TABLESPACE ts1" \
		-c "CREATE INDEX tt_v ON tt(v) TABLESPACE ts1" \
		-c "INSERT INTO tt SELECT g, md5(g::text) FROM generate_series(1, 50000) g"; then
	mt_ok "tablespace on the mount: table and index in it"
	rel=$(psql_ -c "SELECT pg_relation_filepath('tt')")
	link=$(readlink "$PGDATA/${rel%%/PG_*}")
	mt_eq "pg_tblspc symlink points to the tablespace directory" "$TS" "$link"
	mt_check "table file in the tablespace ($rel) is a ZVFS file" \
		getfattr --absolute-names -n user.zvfs.blob_id "$PGDATA/$rel"
else
	mt_fail "tablespace" "create tablespace/table failed"
fi

# --- pgbench ------------------------------------------------------------------
if "$PGBIN/pgbench" -i -s 10 -q -h "$RUN" -p "$PORT" -U postgres postgres >"$T/pgbench-i.log" 2>&1; then
	mt_ok "pgbench -i -s 10"
else
	pg_fail "pgbench -i -s 10: $(tail -n 10 "$T/pgbench-i.log")"
fi
out=$("$PGBIN/pgbench" -c 4 -j 2 -T "$PG_SECONDS" -h "$RUN" -p "$PORT" -U postgres postgres 2>&1)
st=$?
tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
if [ $st -eq 0 ] && [ -n "$tps" ] && [ "${failed:-0}" = 0 ]; then
	mt_ok "pgbench -c 4 -j 2 -T $PG_SECONDS: tps $tps, 0 failed"
else
	mt_fail "pgbench -c 4 -j 2 -T $PG_SECONDS" "exit $st: $(echo "$out" | tail -n 15)"
fi
amcheck "after pgbench"

# --- SIGKILL the postmaster under load, recover ---------------------------------
psql_ -c "CREATE TABLE marker(id int)" -c "INSERT INTO marker SELECT generate_series(1, 1000)" ||
	mt_fail "marker rows" "insert failed"
sums=$(psql_ -c "SELECT sum(abalance), (SELECT sum(delta) FROM pgbench_history) FROM pgbench_accounts")
mt_eq "before the crash: sum(abalance) = sum(history delta)" 1 "$(echo "$sums" | awk -F'|' '{ print ($1 == $2) }')"
base=$(psql_ -c "SELECT count(*) FROM pgbench_history")
# -n: no vacuum before the run, which would also truncate pgbench_history.
"$PGBIN/pgbench" -n -c 4 -j 2 -T 60 -h "$RUN" -p "$PORT" -U postgres postgres >"$T/pgbench-crash.log" 2>&1 &
bench=$!
# Let the load get going; every row seen here was committed and must survive.
seen=$base
for ((i = 0; i < 300; i++)); do
	c=$(psql_ -c "SELECT count(*) FROM pgbench_history" 2>/dev/null) && seen=$c
	[ "$seen" -gt $((base + 2000)) ] && break
	sleep 0.1
done
[ "$seen" -gt $((base + 2000)) ] ||
	mt_fail "pgbench load before the kill" "history went from $base to $seen rows in 30 s: $(tail -n 5 "$T/pgbench-crash.log")"
kids=$(pgrep -P "$PGPID" | tr '\n' ' ')
kill -KILL "$PGPID"
wait "$PGSH" 2>/dev/null
PGPID=
# The backends notice their postmaster's death and exit; a new postmaster
# cannot start while they hold the old shared memory.
if ! mt_wait_for 30 bash -c 'for p in $1; do kill -0 $p 2>/dev/null && exit 1; done; exit 0' _ "$kids"; then
	mt_fail "postgres children exit after the postmaster's SIGKILL" "still running: $kids"
	kill -KILL $kids 2>/dev/null
fi
wait "$bench" 2>/dev/null
mt_ok "postmaster SIGKILLed under pgbench load"
pg_start || pg_fail "restart after SIGKILL"
if grep -q "database system was interrupted" "$T/pg.log" &&
	grep -q "redo done" "$T/pg.log"; then
	mt_ok "restart: crash recovery ran and completed"
else
	mt_fail "restart: crash recovery" "$(grep -E 'redo|interrupted|recovery' "$T/pg.log" | tail -n 5)"
fi
mt_eq "restart: committed marker rows" 1000 "$(psql_ -c 'SELECT count(*) FROM marker')"
mt_eq "restart: tablespace rows" 50000 "$(psql_ -c 'SELECT count(*) FROM tt')"
mt_eq "restart: pgbench_accounts rows" 1000000 "$(psql_ -c 'SELECT count(*) FROM pgbench_accounts')"
# pgbench's invariant: every committed transaction changed an account by the
# delta it logged in pgbench_history, in one transaction.
# The same holds for tellers and branches.
inv=$(psql_ -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
	(SELECT sum(bbalance) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
	(SELECT count(*) FROM pgbench_history)")
echo "# after recovery: sum(abalance)|sum(tbalance)|sum(bbalance)|sum(delta)|count(history) = $inv"
if echo "$inv" | awk -F'|' '{ exit !($1 == $4 && $2 == $4 && $3 == $4) }'; then
	mt_ok "restart: pgbench balances = sum of history deltas (accounts, tellers, branches)"
else
	mt_fail "restart: pgbench balances differ from the history after recovery" "$inv"
fi
after=$(echo "$inv" | cut -d'|' -f5)
if [ "${after:-0}" -ge "$seen" ]; then
	mt_ok "restart: every committed pgbench transaction seen before the kill is there ($after >= $seen)"
else
	mt_fail "restart: committed transactions lost" "$after history rows after recovery, $seen seen committed before the kill"
fi
amcheck "after crash recovery"
psql_ -c "CHECKPOINT" || mt_fail "checkpoint after recovery"
pg_stop
mt_finish
