#!/usr/bin/env bash
# Quickstart: installs what is missing, starts a local source and target MariaDB, creates
# sample data with sysbench, runs `ferry dump` on it and `ferry load` of that dump into the
# target, writes more on the source, runs `ferry catchup --until caught-up`, and prints the
# summaries and a CHECKSUM TABLE comparison of source and target.
#
# Usage: scripts/quickstart.sh [--keep]    (--keep leaves the servers running afterwards)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin"
keep=0
[ "${1:-}" = "--keep" ] && keep=1

say() { printf '\n== %s\n' "$*"; }

apt_updated=0
need() { # need COMMAND PACKAGE...
    local cmd=$1; shift
    command -v "$cmd" >/dev/null && return 0
    if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
    echo "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if ! command -v cargo >/dev/null; then
    need curl curl
    echo "installing Rust (rustup)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
    export PATH="$HOME/.cargo/bin:$PATH"
fi
need mariadbd mariadb-server mariadb-client
need sysbench sysbench

say "building ferry (release)"
cargo build --release --quiet --bin ferry
ferry=target/release/ferry

state=.sandbox/quickstart
say "starting a source and a target MariaDB on free 127.0.0.1 ports"
bash scripts/servers.sh start --dir "$state/db"
# shellcheck disable=SC1091
. "$state/db/env"
if [ "$keep" = 0 ]; then
    trap 'bash scripts/servers.sh stop --dir "$state/db" >/dev/null 2>&1 || true' EXIT
fi

say "creating sample data (sysbench: 4 tables x 100000 rows)"
mariadb -h127.0.0.1 -P"$FERRY_TEST_SOURCE_PORT" -uroot -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
mariadb -h127.0.0.1 -P"$FERRY_TEST_TARGET_PORT" -uroot -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS ferry_meta"
sysbench oltp_read_write --mysql-host=127.0.0.1 --mysql-port="$FERRY_TEST_SOURCE_PORT" --mysql-user=root \
    --mysql-db=sbtest --tables=4 --table-size=100000 --threads=2 prepare >/dev/null

out="$state/dump"
rm -rf "$out"
say "ferry dump --source $FERRY_TEST_SOURCE_URL --to $out -B sbtest --threads 4 --rows 25000 --compress zstd --checksum"
"$ferry" dump --source "$FERRY_TEST_SOURCE_URL" --to "$out" -B sbtest --threads 4 --rows 25000 \
    --compress zstd --checksum --progress log

say "the dump is in $out"
find "$out" -maxdepth 1 -type f -printf "%10s  %f\n" | sort -k2 | head -12
echo "..."
echo
echo "metadata:"
cat "$out/metadata"

say "ferry load --from $out --target $FERRY_TEST_TARGET_URL --threads 4"
"$ferry" load --from "$out" --target "$FERRY_TEST_TARGET_URL" --threads 4 --progress log

say "writes on the source after the dump: sysbench oltp_write_only for 2 s"
sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$FERRY_TEST_SOURCE_PORT" --mysql-user=root \
    --mysql-db=sbtest --tables=4 --table-size=100000 --threads=2 --time=2 --report-interval=0 run \
    | grep -E "transactions:|queries:" || true

say "ferry catchup --from $out --until caught-up (binlog from the dump's position to now)"
"$ferry" catchup --from "$out" --source "$FERRY_TEST_SOURCE_URL" --target "$FERRY_TEST_TARGET_URL" \
    --until caught-up

say "CHECKSUM TABLE, source vs target"
for t in sbtest1 sbtest2 sbtest3 sbtest4; do
    a=$(mariadb -h127.0.0.1 -P"$FERRY_TEST_SOURCE_PORT" -uroot -N -e "CHECKSUM TABLE sbtest.$t" | cut -f2)
    b=$(mariadb -h127.0.0.1 -P"$FERRY_TEST_TARGET_PORT" -uroot -N -e "CHECKSUM TABLE sbtest.$t" | cut -f2)
    if [ "$a" = "$b" ]; then echo "sbtest.$t  $a  equal"; else echo "sbtest.$t  $a vs $b  DIFFERENT"; exit 1; fi
done
[ "$keep" = 1 ] && echo "servers left running: eval \"\$(scripts/servers.sh env --dir $state/db)\""
exit 0
