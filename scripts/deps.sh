#!/usr/bin/env bash
# Install what ZVFS needs to build, test and benchmark, from Debian's archive.
# Only missing packages are installed; prints what it does.  Needs root (or sudo).
set -euo pipefail

# clang + libclang-rt-14-dev: the libFuzzer build (scripts/build.sh fuzz; libFuzzer and the
# sanitizer runtimes are in libclang-rt-14-dev on Debian 12).
# sqlite3, rocksdb-tools (db_bench), attr (getfattr): programs the preload tests run;
# valgrind: callgrind instruction counts in bench/.
# postgresql-15, mariadb-server, sysbench: the daemon-mode tests start their own
# clusters in temporary directories (the packaged services are not used).
PKGS=(gcc make meson ninja-build pkg-config liburing-dev libaio-dev fio
      clang-format python3 util-linux gzip clang libclang-rt-14-dev
      sqlite3 rocksdb-tools attr coreutils valgrind
      postgresql-15 mariadb-server sysbench)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all build and test packages present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=sudo
	else
		echo "deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
fi
echo "deps: installing from Debian: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
