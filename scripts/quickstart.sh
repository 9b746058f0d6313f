#!/usr/bin/env bash
# Quickstart: a whole migration with ferry on this machine, on throwaway servers.
#
#   1. installs what is missing (Rust, MariaDB server and client, sysbench; apt-get needs root)
#   2. starts a source and a target MariaDB on free 127.0.0.1 ports and builds ferry
#   3. creates sample data on the source (sysbench: 4 tables)
#   4. ferry dump of the source, ferry load of that dump into the target
#   5. ferry catchup in the background, without --until, while sysbench writes to the source;
#      its progress lines show the lag
#   6. stops the writes, stops that catch-up with SIGTERM (it commits what it applied, exits 0)
#      and runs `ferry catchup --until caught-up` on the same task: it stops at lag 0
#   7. CHECKSUM TABLE of every table, source vs target, and a result line
#
# Usage: scripts/quickstart.sh [--keep] [--write-seconds N] [--table-size N]
#
#   --keep             leave the servers and .sandbox/quickstart/ (the dump, the logs) afterwards
#   --write-seconds N  how long sysbench writes while catch-up runs (default 15)
#   --table-size N     rows per sample table (default 100000)
#
# Exit status: 0 when the target equals the source, 1 otherwise or on any error.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin"

usage() { # usage [STATUS]: the header above; on stderr unless STATUS is 0
    local text
    text=$(sed -n '2,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}")
    if [ "${1:-2}" = 0 ]; then echo "$text"; else echo "$text" >&2; fi
    exit "${1:-2}"
}
die() { echo "quickstart: $*" >&2; exit 1; }

keep=0 write_secs=15 table_size=100000 tables=4
while (($#)); do
    case "$1" in
        --keep) keep=1; shift ;;
        --write-seconds) [ $# -ge 2 ] || usage; write_secs=$2; shift 2 ;;
        --table-size) [ $# -ge 2 ] || usage; table_size=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "quickstart: unknown argument: $1" >&2; usage ;;
    esac
done
[[ "$write_secs" =~ ^[1-9][0-9]*$ ]] || die "--write-seconds must be a positive number of seconds"
[[ "$table_size" =~ ^[1-9][0-9]*$ ]] || die "--table-size must be a positive number of rows"

state=.sandbox/quickstart   # relative to the repository, where this script runs
dump=$state/dump
ferry=target/release/ferry
catchup_pid="" viewer_pid="" sysbench_pid=""

say() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; }   # the command about to run, as one would type it

# Everything this script started is stopped on the way out, whatever the way out is.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -z "$sysbench_pid" ] || kill -TERM "$sysbench_pid" 2>/dev/null || true
    [ -z "$catchup_pid" ] || kill -TERM "$catchup_pid" 2>/dev/null || true
    [ -z "$viewer_pid" ] || kill -TERM "$viewer_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -f "$state/db/env" ]; then
        if [ "$keep" = 1 ]; then
            echo
            echo "servers left running (--keep); the dump and the logs are in $state/:"
            echo "  eval \"\$(scripts/servers.sh env --dir $state/db)\"   # FERRY_TEST_{SOURCE,TARGET}_{URL,PORT}"
            echo "  mariadb --no-defaults -h127.0.0.1 -P\"\$FERRY_TEST_SOURCE_PORT\" -uroot sbtest"
            echo "  scripts/servers.sh stop --dir $state/db && rm -rf $state   # when done"
        else
            bash scripts/servers.sh stop --dir "$state/db" >/dev/null 2>&1 || true
            rm -rf "$state"
            [ "$rc" = 0 ] || echo "quickstart: servers stopped; run with --keep to keep them and $state/ for a look" >&2
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'echo "quickstart: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

apt_updated=0
need() { # need COMMAND PACKAGE...: installs PACKAGE... with apt-get when COMMAND is missing
    local cmd=$1; shift
    command -v "$cmd" >/dev/null && return 0
    if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
        die "$cmd is missing: install $* (this script does it with apt-get when run as root)"
    fi
    if [ "$apt_updated" = 0 ]; then apt-get -o DPkg::Lock::Timeout=300 update -qq; apt_updated=1; fi
    echo "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null
}

say "checking for Rust and sysbench (installing what is missing)"
if ! command -v cargo >/dev/null; then
    need curl curl ca-certificates
    echo "installing Rust (rustup, minimal profile)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
fi
need sysbench sysbench

say "starting a source and a target MariaDB on free 127.0.0.1 ports (installs MariaDB if missing)"
# No --owner-pid watchdog: it outlives this script by up to a second and would then stop the
# servers of a run started right after. The EXIT trap stops them; after a kill -9 the next
# run reuses them.
bash scripts/servers.sh start --dir "$state/db"
# shellcheck disable=SC1091
. "$state/db/env"
src_port=$FERRY_TEST_SOURCE_PORT tgt_port=$FERRY_TEST_TARGET_PORT
echo "source: $FERRY_TEST_SOURCE_URL (binlog ROW, FULL image, GTID)"
echo "target: $FERRY_TEST_TARGET_URL"
src_sql() { mariadb --no-defaults --connect-timeout=10 -h127.0.0.1 -P"$src_port" -uroot "$@"; }
tgt_sql() { mariadb --no-defaults --connect-timeout=10 -h127.0.0.1 -P"$tgt_port" -uroot "$@"; }
sysbench_args=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$src_port" --mysql-user=root
    --mysql-db=sbtest --tables="$tables" --table-size="$table_size")

say "building ferry (cargo build --release; the first build takes several minutes)"
bash scripts/build-release.sh --quiet

say "creating sample data on the source (sysbench: $tables tables x $table_size rows)"
src_sql -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
tgt_sql -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS ferry_meta"
sysbench oltp_read_write "${sysbench_args[@]}" --threads=2 prepare >"$state/sysbench-prepare.log" 2>&1 \
    || { tail -n 20 "$state/sysbench-prepare.log" >&2; die "sysbench prepare failed (above)"; }

rm -rf "$dump"
say "ferry dump: a consistent snapshot of the source, and its binlog position"
dump_cmd=("$ferry" dump --source "$FERRY_TEST_SOURCE_URL" --to "$dump" -B sbtest --threads 4 --rows 25000
    --compress zstd --checksum --progress log)
show "${dump_cmd[*]}"
"${dump_cmd[@]}"

mapfile -t files < <(cd "$dump" && ls)
echo
echo "$dump/ holds ${#files[@]} files ($(du -sh "$dump" | cut -f1)): ${files[*]:0:5} ..."
echo "its metadata file (the position catch-up starts from):"
sed 's/^/    /' "$dump/metadata"

say "ferry load: the dump into the target"
load_cmd=("$ferry" load --from "$dump" --target "$FERRY_TEST_TARGET_URL" --threads 4 --progress log)
show "${load_cmd[*]}"
"${load_cmd[@]}"

say "ferry catchup in the background (no --until), while sysbench writes to the source for ${write_secs} s"
catchup_cmd=("$ferry" catchup --from "$dump" --source "$FERRY_TEST_SOURCE_URL"
    --target "$FERRY_TEST_TARGET_URL" --task-id quickstart --progress log)
show "${catchup_cmd[*]} &"
# ferry writes to a log file (a progress line every 5 s while it applies), shown here as it
# grows, between sysbench's lines.
live_log=$state/catchup-live.log
: >"$live_log"   # emptied before tail opens it: a kept earlier run's lines must not show
"${catchup_cmd[@]}" >"$live_log" 2>&1 &
catchup_pid=$!
tail -n +1 -f --pid="$catchup_pid" "$live_log" | sed -u 's/^/[catchup]  /' &
viewer_pid=$!
for _ in $(seq 300); do
    grep -q "streaming" "$live_log" && break
    kill -0 "$catchup_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q "streaming" "$live_log"; then
    kill -0 "$catchup_pid" 2>/dev/null || { wait "$viewer_pid" || true; die "ferry catchup exited before streaming (its output is above)"; }
    die "ferry catchup did not start streaming within 30 s (its output is above)"
fi

show "sysbench oltp_write_only ${sysbench_args[*]} --threads=2 --time=$write_secs --report-interval=5 run &"
: >"$state/sysbench-run.log"
sysbench oltp_write_only "${sysbench_args[@]}" --threads=2 --time="$write_secs" --report-interval=5 run \
    >"$state/sysbench-run.log" 2>&1 &
sysbench_pid=$!
tail -n +1 -f --pid="$sysbench_pid" "$state/sysbench-run.log" \
    | grep --line-buffered -E '^\[ *[0-9]+s \]|transactions:|queries:' | sed -u 's/^ */[sysbench] /' &
sysbench_viewer=$!
sysbench_rc=0
wait "$sysbench_pid" || sysbench_rc=$?
sysbench_pid=""
wait "$sysbench_viewer" || true
[ "$sysbench_rc" = 0 ] || { tail -n 20 "$state/sysbench-run.log" >&2; die "sysbench run failed (exit $sysbench_rc, above)"; }
kill -0 "$catchup_pid" 2>/dev/null || { wait "$viewer_pid" || true; die "ferry catchup stopped during the writes (its output is above)"; }
written=$(awk '/transactions:/ {print $2}' "$state/sysbench-run.log")

read -r end_file end_pos _ < <(src_sql -N -e "SHOW MASTER STATUS")
say "writes stopped: the source's binlog ends at $end_file:$end_pos (GTID $(src_sql -N -e "SELECT @@gtid_binlog_pos"))"
show "kill -TERM $catchup_pid   # the background ferry catchup"
kill -TERM "$catchup_pid"
catchup_rc=0
wait "$catchup_pid" || catchup_rc=$?
catchup_pid=""
wait "$viewer_pid" || true
viewer_pid=""
[ "$catchup_rc" = 0 ] || die "ferry catchup exited $catchup_rc after SIGTERM (expected 0; its output is above)"
grep -q "catchup progress" "$live_log" \
    || echo "(no progress line: ferry logs one every 5 s while it applies; try a longer --write-seconds)"
echo "ferry catchup exited 0 after SIGTERM, its checkpoint committed on the target (ferry_meta)"

say "ferry catchup --until caught-up: the same task resumes from its checkpoint and stops at lag 0"
until_cmd=("${catchup_cmd[@]}" --until caught-up)
show "${until_cmd[*]}"
"${until_cmd[@]}"

say "verification: CHECKSUM TABLE of every table, source vs target"
list_tables="SELECT table_name FROM information_schema.tables
    WHERE table_schema = 'sbtest' AND table_type = 'BASE TABLE' ORDER BY 1"
mapfile -t names < <({ src_sql -N -e "$list_tables"; tgt_sql -N -e "$list_tables"; } | sort -u)
[ "${#names[@]}" -gt 0 ] || die "no tables in sbtest on the source or the target"
checksum_of() { # checksum_of SQL_FUNCTION TABLE: its CHECKSUM TABLE value, or "missing"
    local sum
    sum=$("$1" -N -e "CHECKSUM TABLE sbtest.\`$2\`" | cut -f2) || true
    if [ -z "$sum" ] || [ "$sum" = NULL ]; then sum=missing; fi
    echo "$sum"
}
differ=()
printf '%-16s %-16s %s\n' table "source checksum" "target checksum"
for t in "${names[@]}"; do
    a=$(checksum_of src_sql "$t")
    b=$(checksum_of tgt_sql "$t")
    if [ "$a" = "$b" ] && [ "$a" != missing ]; then verdict=equal; else verdict=DIFFERENT; differ+=("sbtest.$t"); fi
    printf '%-16s %-16s %-16s %s\n' "sbtest.$t" "$a" "$b" "$verdict"
done

echo
if [ "${#differ[@]}" -gt 0 ]; then
    echo "RESULT: FAILED: ${#differ[@]} of ${#names[@]} tables differ between source and target: ${differ[*]}"
    exit 1
fi
echo "RESULT: OK: the target equals the source (${#names[@]} of ${#names[@]} tables, CHECKSUM TABLE) after dump, load and catch-up of $written transactions written in ${write_secs} s"
