#!/usr/bin/env bash
# Benchmarks of ferry against the usual tools, on throwaway MariaDB servers
# (scripts/servers.sh) with a sysbench oltp dataset.
#
# Usage: scripts/bench.sh dump|load|catchup|tables [options]
#
# dump: time `ferry dump` (plain and --compress zstd), mydumper (plain and
# -c gzip), mariadb-dump (one thread, --single-transaction) and the server's
# own read ceiling (THREADS concurrent SELECT ... INTO OUTFILE sessions) on
# the same warm dataset; print the median of the runs of each, MB/s, peak
# RSS, output sizes and ratios, then one `BENCH_DUMP_JSON {...}` line.
#
# load: from dumps of the same dataset made once (untimed: ferry dump,
# mydumper, mariadb-dump, INTO OUTFILE chunk files), time `ferry load` (its
# default, which defers secondary indexes; with --defer-indexes false; with
# --disable-binlog), myloader (same threads), `mariadb < dump.sql`, and the
# server's own ingest ceiling (THREADS sessions of server-side LOAD DATA
# INFILE of the chunk files, no client data transfer), each into an emptied
# target; check the target's row count after each; print medians, MB/s, peak
# RSS, ratios with their goals, then one `BENCH_LOAD_JSON {...}` line.
#
# catchup: after sysbench prepare, the source's datadir is copied (server
# stopped) as the pristine target; then sysbench oltp_write_only runs TIME s
# with THREADS clients on the source and its binlog from there on is the
# workload W. W is applied four ways, each to a target restored from the
# pristine copy (restarted, buffer pool warmed): native MariaDB replication
# with slave_parallel_threads 0 and 4 (optimistic; the relay log is fetched
# first, untimed, and only the SQL thread is timed, up to MASTER_POS_WAIT of
# W's end), and `ferry catchup --until caught-up` with --workers 1 and 4
# (wall clock, reading W from the source itself). After each, CHECKSUM TABLE
# of every sbtest table must match the source. Prints medians, trx/s, the
# ratios to native with the goal (ferry >= 2x the single-threaded native
# replica), then one `BENCH_CATCHUP_JSON {...}` line (also written to the
# file named by $BENCH_CATCHUP_JSON, if set).
#
# tables: the per-table cost. TABLES tiny tables (default 3000 x 3 rows, a
# primary key and one secondary index each, the shape of multi-tenant
# schemas) in db tenants; times `ferry dump` vs mydumper (same threads),
# then `ferry load` (default and --defer-indexes false) of ferry's dump vs
# myloader of mydumper's, each into an emptied target, and checks CHECKSUM
# TABLE of every table against the source after each load. Prints times,
# tables/s, ratios (goal: ferry >= 1.0x mydumper and myloader), then one
# `BENCH_TABLES_JSON {...}` line. Defaults: --tables 3000 --rows-per-table 3
# --runs 1; both dumpers chunk by their defaults unless --chunk-rows is given.
#
# Options (all):
#   --tables N           sysbench tables (default 8; catchup 4)
#   --rows-per-table N   rows per table (default 250000, 8 x 250000 ~ 458 MB;
#                        catchup 100000)
#   --threads N          dump/load threads, concurrent sessions; catchup:
#                        sysbench clients writing W (default 4)
#   --runs N             timed runs per tool; the median is reported
#                        (default 3; catchup 1, tools alternating)
#   --ferry-bin PATH     use this ferry binary instead of building
#                        target/release/ferry
#   --workdir DIR        parent of the scratch dir (default <repo>/target;
#                        servers, data and dump outputs all live there)
#   --keep               keep the scratch dir (logs) at exit
# dump and load:
#   --chunk-rows N       rows per chunk for ferry and mydumper
#                        (default rows-per-table / 4)
# catchup:
#   --time N             seconds of sysbench oltp_write_only making W (default 30)
#
# Installs sysbench, mydumper, mariadb-client and time with apt-get if missing
# (scripts/servers.sh installs mariadb-server).
# Exit status: 0 if every tool succeeded, 1 if one failed (its log tail is
# printed), 2 for usage errors.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib-bench.sh disable=SC1091  # followed with shellcheck -x
source "$REPO_DIR/scripts/lib-bench.sh"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# ------------------------------------------------------------ common setup
BENCH_WORK=""
BENCH_KEEP=0
BENCH_LOG_DIR=""

cleanup() {
    local rc=$?
    stop_servers
    if [[ -n "$BENCH_WORK" && -d "$BENCH_WORK" ]]; then
        rm -rf -- "$BENCH_WORK/out" "$BENCH_WORK/servers" "$BENCH_WORK/pristine"
        if ((BENCH_KEEP)); then
            log "kept $BENCH_WORK (logs in $BENCH_LOG_DIR)"
        else
            rm -rf -- "$BENCH_WORK"
        fi
    fi
    return "$rc"
}

# setup_work PARENT: scratch dir with servers/, out/ and logs/ on one filesystem.
setup_work() {
    local parent="$1"
    mkdir -p -- "$parent"
    BENCH_WORK="$(mktemp -d "$(realpath -- "$parent")/bench.XXXXXX")"
    BENCH_LOG_DIR="$BENCH_WORK/logs"
    mkdir -p -- "$BENCH_LOG_DIR" "$BENCH_WORK/out"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || { log "$1 needs a positive integer, got '$2'"; usage; }; }

# ==================================================================== dump
DB=sbtest
DUMP_TOOLS=(ferry ferry_zstd mydumper mydumper_gzip mariadb_dump ceiling)
declare -A LABEL=(
    [ferry]="ferry"
    [ferry_zstd]="ferry --compress zstd"
    [mydumper]="mydumper"
    [mydumper_gzip]="mydumper -c (gzip)"
    [mariadb_dump]="mariadb-dump (1 thread)"
    [ceiling]="ceiling: INTO OUTFILE"
)
declare -A TIMES=() RSS=() SIZE=() FAILED=() MED=()

# record_run TOOL: adds the run just timed (RUN_SECS, RUN_RSS_KB) to TIMES and RSS.
record_run() {
    TIMES[$1]+="$RUN_SECS "
    if [[ -n "$RUN_RSS_KB" ]]; then RSS[$1]+="$RUN_RSS_KB "; fi
}

# tool_failed LABEL TOOL RUN LOG WHY: record a failed tool and show its log tail.
tool_failed() {
    local label="$1" tool="$2" run="$3" logf="$4"
    FAILED[$tool]="$5; log $logf"
    log "run $run/$RUNS $label FAILED (${FAILED[$tool]}):"
    tail -n 20 -- "$logf" "$logf.stdout" 2>/dev/null | sed 's/^/    /' >&2 || true
    BENCH_KEEP=1
}

# set_medians TOOL...: MED of each tool that did not fail and has timed runs.
set_medians() {
    local tool
    for tool in "$@"; do
        [[ -z "${FAILED[$tool]:-}" && -n "${TIMES[$tool]:-}" ]] || continue
        # shellcheck disable=SC2086  # word-splitting the list of times
        MED[$tool]=$(median ${TIMES[$tool]})
    done
}

# peak_rss_kb TOOL: the largest peak RSS of its runs, or nothing.
peak_rss_kb() {
    # shellcheck disable=SC2086  # word-splitting the list of sizes
    if [[ -n "${RSS[$1]:-}" ]]; then max_of ${RSS[$1]}; fi
}

# runs_csv TOOL: its run times as `1.2,1.3`, or nothing.
runs_csv() {
    if [[ -n "${TIMES[$1]:-}" ]]; then printf '%s' "${TIMES[$1]% }" | tr ' ' ','; fi
}

# ratios_json NAME...: `"name":ratio,...` in that order, from the caller's R (null if missing).
ratios_json() {
    local t sep=""
    for t in "$@"; do
        printf '%s"%s":%s' "$sep" "$t" "$(json_num "${R[$t]:-}")"
        sep=","
    done
}

# dump_<tool> OUT LOG: one timed run writing to OUT; sets RUN_SECS/RUN_RSS_KB.
dump_ferry_common() {
    local out="$1" logf="$2"; shift 2
    # Start from an empty output directory.
    mkdir -p -- "$out"
    run_timed "$logf" "$logf.stdout" "$FERRY_BIN" dump --source "$FERRY_TEST_SOURCE_URL" \
        --to "$out" -B "$DB" --threads "$THREADS" --rows "$CHUNK_ROWS" --progress off "$@"
}
dump_ferry() { dump_ferry_common "$1" "$2"; }
dump_ferry_zstd() { dump_ferry_common "$1" "$2" --compress zstd; }

# Default consistency (FLUSH TABLES WITH READ LOCK), as mydumper normally runs.
dump_mydumper_common() {
    local out="$1" logf="$2"; shift 2
    run_timed "$logf" "$logf.stdout" mydumper -h 127.0.0.1 -P "$FERRY_TEST_SOURCE_PORT" -u root \
        -B "$DB" -t "$THREADS" -r "$CHUNK_ROWS" -o "$out" "$@"
}
dump_mydumper() { dump_mydumper_common "$1" "$2"; }
dump_mydumper_gzip() { dump_mydumper_common "$1" "$2" -c; }

dump_mariadb_dump() {
    local out="$1" logf="$2"
    mkdir -p -- "$out"
    run_timed "$logf" "$out/$DB.sql" mariadb-dump --no-defaults -h127.0.0.1 \
        -P"$FERRY_TEST_SOURCE_PORT" -uroot --single-transaction --quick "$DB"
}

# THREADS concurrent client sessions, tables dealt round-robin among them,
# each running SELECT * INTO OUTFILE for its tables; timed as a whole.
dump_ceiling() {
    local out="$1" logf="$2" s k t0 rc=0 pids=() sql
    mkdir -p -- "$out"
    : >"$logf"
    t0=$(now)
    for ((s = 0; s < THREADS && s < TABLES; s++)); do
        sql=""
        for ((k = s + 1; k <= TABLES; k += THREADS)); do
            sql+="SELECT * INTO OUTFILE '$out/sbtest$k.txt' FROM \`$DB\`.sbtest$k;"
        done
        src_sql -e "$sql" 2>>"$logf" &
        pids+=($!)
    done
    for s in "${pids[@]}"; do wait "$s" || rc=$?; done
    RUN_SECS=$(elapsed "$t0")
    RUN_RSS_KB=""
    return "$rc"
}

# Sanity: the ceiling's files hold one line per row.
check_ceiling_rows() {
    local out="$1" lines
    lines=$(cat -- "$out"/*.txt | wc -l)
    ((lines == TABLES * ROWS)) \
        || log "WARNING: INTO OUTFILE wrote $lines rows, expected $((TABLES * ROWS))"
}

# Human-readable sizes (decimal MB, as MB/s).
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
rss_h() {
    if [[ -n "$1" ]]; then awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; else printf -- '-'; fi
}
# mbps BYTES SECS: MB/s, or '-' without a base.
mbps() {
    if [[ -n "$1" && -n "$2" ]]; then awk -v b="$1" -v t="$2" 'BEGIN { printf "%.1f", b / 1e6 / t }'; else printf -- '-'; fi
}

# parse_opts SUBCOMMAND ARGS...: the options of the benchmarks; sets TABLES ROWS THREADS
# RUNS CHUNK_ROWS FERRY_BIN BENCH_PARENT, and for catchup WORKLOAD_SECS.
parse_opts() {
    local sub="$1"; shift
    if [[ "$sub" == catchup ]]; then
        TABLES=4 ROWS=100000 RUNS=1
    elif [[ "$sub" == tables ]]; then
        TABLES=3000 ROWS=3 RUNS=1
    else
        TABLES=8 ROWS=250000 RUNS=3
    fi
    THREADS=4 CHUNK_ROWS="" FERRY_BIN="" WORKLOAD_SECS=30
    BENCH_PARENT="$REPO_DIR/target"
    while (($#)); do
        case "$1" in
            --tables) posint "$1" "${2:-}"; TABLES="$2"; shift 2 ;;
            --rows-per-table) posint "$1" "${2:-}"; ROWS="$2"; shift 2 ;;
            --threads) posint "$1" "${2:-}"; THREADS="$2"; shift 2 ;;
            --runs) posint "$1" "${2:-}"; RUNS="$2"; shift 2 ;;
            --chunk-rows)
                [[ "$sub" != catchup ]] || { log "--chunk-rows is not an option of catchup"; usage; }
                posint "$1" "${2:-}"; CHUNK_ROWS="$2"; shift 2 ;;
            --time)
                [[ "$sub" == catchup ]] || { log "--time is an option of catchup only"; usage; }
                posint "$1" "${2:-}"; WORKLOAD_SECS="$2"; shift 2 ;;
            --ferry-bin) [[ -n "${2:-}" ]] || usage; FERRY_BIN="$(realpath -- "$2")"; shift 2 ;;
            --workdir) [[ -n "${2:-}" ]] || usage; BENCH_PARENT="$2"; shift 2 ;;
            --keep) BENCH_KEEP=1; shift ;;
            -h|--help) usage ;;
            *) log "unknown option for $sub: $1"; usage ;;
        esac
    done
    # tables: each tool's own default chunking unless --chunk-rows is given.
    if [[ -z "$CHUNK_ROWS" && "$sub" != tables ]]; then
        CHUNK_ROWS=$((ROWS / 4))
        ((CHUNK_ROWS > 0)) || CHUNK_ROWS=1
    fi
}

cmd_dump() {
    parse_opts dump "$@"

    # 1. tools and ferry
    need_pkg sysbench sysbench
    need_pkg mydumper mydumper
    need_pkg mariadb-dump mariadb-client
    need_pkg mariadb mariadb-client
    ensure_gnu_time
    build_ferry

    # 2. servers and dataset
    setup_work "$BENCH_PARENT"
    start_servers "$BENCH_WORK/servers"
    prepare_sysbench "$DB" "$TABLES" "$ROWS"
    fit_buffer_pool "$DB"
    log "$BENCH_POOL_NOTE"

    # 5. warm-up (untimed)
    log "warm-up: full read of each table"
    warm_up "$DB" "$TABLES"
    settle_innodb

    # 3. measure; tools interleaved run by run so drift hits all alike
    local run tool out logf
    for ((run = 1; run <= RUNS; run++)); do
        for tool in "${DUMP_TOOLS[@]}"; do
            [[ -z "${FAILED[$tool]:-}" ]] || continue
            out="$BENCH_WORK/out/$tool"
            logf="$BENCH_LOG_DIR/$tool.run$run.log"
            rm -rf -- "$out"
            sync
            if "dump_$tool" "$out" "$logf"; then
                record_run "$tool"
                SIZE[$tool]=$(bytes_of "$out")
                [[ "$tool" != ceiling || $run -ne 1 ]] || check_ceiling_rows "$out"
                log "run $run/$RUNS ${LABEL[$tool]}: ${RUN_SECS}s, $(mb "${SIZE[$tool]}")"
            else
                FAILED[$tool]="exit status $? after ${RUN_SECS}s; log $logf"
                log "run $run/$RUNS ${LABEL[$tool]} FAILED (${FAILED[$tool]}):"
                tail -n 20 -- "$logf" "$logf.stdout" 2>/dev/null | sed 's/^/    /' >&2 || true
                BENCH_KEEP=1
            fi
            rm -rf -- "$out"
        done
    done

    # 4. report
    local base base_name rss_kb t
    set_medians "${DUMP_TOOLS[@]}"
    if [[ -n "${MED[ferry]:-}" ]]; then
        base=${SIZE[ferry]} base_name="ferry's uncompressed SQL output"
    elif [[ -n "${MED[ceiling]:-}" ]]; then
        base=${SIZE[ceiling]} base_name="the INTO OUTFILE files (ferry failed)"
    else
        base="" base_name="none (ferry and the ceiling failed)"
    fi

    echo
    echo "dump benchmark: $TABLES tables x $ROWS rows (sysbench oltp, db $DB), threads $THREADS," \
        "chunk rows $CHUNK_ROWS, median of $RUNS run(s)"
    echo "dataset base for MB/s: ${base:+$(mb "$base") = }$base_name (MB = 10^6 bytes)"
    echo "buffer pool: $BENCH_POOL_NOTE"
    echo "ferry: $FERRY_BIN ($("$FERRY_BIN" --version 2>/dev/null || echo '?'))"
    echo
    printf '%-26s %9s %8s %11s %12s  %s\n' tool "median s" "MB/s" "peak RSS" "output" "runs (s)"
    for tool in "${DUMP_TOOLS[@]}"; do
        if [[ -n "${FAILED[$tool]:-}" ]]; then
            printf '%-26s FAILED: %s\n' "${LABEL[$tool]}" "${FAILED[$tool]}"
            continue
        fi
        rss_kb=$(peak_rss_kb "$tool")
        printf '%-26s %9s %8s %11s %12s  %s\n' "${LABEL[$tool]}" "${MED[$tool]}" \
            "$(mbps "$base" "${MED[$tool]}")" \
            "$(rss_h "$rss_kb")" "$(mb "${SIZE[$tool]}")" "${TIMES[$tool]% }"
    done
    echo "(peak RSS: max over the runs of the dump process; '-' for the ceiling, whose work is in the server)"

    local -A R=(
        [ferry_vs_mydumper]="$(ratio "${MED[mydumper]:-}" "${MED[ferry]:-}")"
        [ferry_zstd_vs_mydumper_gzip]="$(ratio "${MED[mydumper_gzip]:-}" "${MED[ferry_zstd]:-}")"
        [ferry_vs_ceiling]="$(ratio "${MED[ceiling]:-}" "${MED[ferry]:-}")"
        [ferry_zstd_vs_ferry]="$(ratio "${MED[ferry]:-}" "${MED[ferry_zstd]:-}")"
        [mydumper_gzip_vs_mydumper]="$(ratio "${MED[mydumper]:-}" "${MED[mydumper_gzip]:-}")"
        [ferry_vs_mariadb_dump]="$(ratio "${MED[mariadb_dump]:-}" "${MED[ferry]:-}")"
    )
    local ratio_order=(ferry_vs_mydumper ferry_zstd_vs_mydumper_gzip ferry_vs_ceiling
        ferry_zstd_vs_ferry mydumper_gzip_vs_mydumper ferry_vs_mariadb_dump)
    local -A RDESC=(
        [ferry_vs_mydumper]="ferry vs mydumper|mydumper_s / ferry_s"
        [ferry_zstd_vs_mydumper_gzip]="ferry zstd vs mydumper gzip|mydumper_gzip_s / ferry_zstd_s"
        [ferry_vs_ceiling]="ferry vs ceiling|ceiling_s / ferry_s"
        [ferry_zstd_vs_ferry]="ferry zstd vs ferry plain|ferry_s / ferry_zstd_s"
        [mydumper_gzip_vs_mydumper]="mydumper gzip vs plain|mydumper_s / mydumper_gzip_s"
        [ferry_vs_mariadb_dump]="ferry vs mariadb-dump|mariadb_dump_s / ferry_s"
    )
    echo
    echo "speed ratios (> 1: the first is faster):"
    for t in "${ratio_order[@]}"; do
        printf '  %-28s %-32s %s\n' "${RDESC[$t]%%|*}" "(${RDESC[$t]#*|})" "${R[$t]:-n/a}"
    done

    # Machine-readable summary.
    local json tj mbs first=1
    json="{\"tables\":$TABLES,\"rows_per_table\":$ROWS,\"threads\":$THREADS,\"chunk_rows\":$CHUNK_ROWS,\"runs\":$RUNS"
    json+=",\"dataset_bytes\":$(json_num "$base"),\"dataset_base\":\"$( [[ -n "${MED[ferry]:-}" ]] && echo ferry_uncompressed || echo into_outfile)\""
    json+=",\"buffer_pool_bytes\":$BENCH_POOL_BYTES,\"tools\":{"
    for tool in "${DUMP_TOOLS[@]}"; do
        ((first)) || json+=","
        first=0
        mbs=$(mbps "$base" "${MED[$tool]:-}")
        json+="$(tool_json_head "$tool"),\"mb_per_s\":$(json_num "${mbs#-}")"
        json+=",\"output_bytes\":$(json_num "${SIZE[$tool]:-}")}"
    done
    json+="},\"ratios\":{$(ratios_json "${ratio_order[@]}")}}"
    echo
    echo "BENCH_DUMP_JSON $json"

    for tool in "${DUMP_TOOLS[@]}"; do
        [[ -z "${FAILED[$tool]:-}" ]] || return 1
    done
}

# ==================================================================== load
# `ferry load` defers secondary indexes by default (--defer-indexes true);
# ferry_nodefer creates them with the table, for the defer-vs-not ratio.
LOAD_TOOLS=(ferry ferry_nodefer ferry_nobinlog myloader mariadb_client ceiling)
declare -A LLABEL=(
    [ferry]="ferry load"
    [ferry_nodefer]="ferry load --defer-indexes false"
    [ferry_nobinlog]="ferry load --disable-binlog"
    [myloader]="myloader"
    [mariadb_client]="mariadb < dump.sql"
    [ceiling]="server LOAD DATA INFILE (ceiling)"
)
FERRY_LOAD_TOOLS=(ferry ferry_nodefer ferry_nobinlog)
declare -A FERRY_METHOD=()

# reset_target: an empty target (no sbtest, no checkpoints, no binlog files
# from the last run), its dirty pages written.
reset_target() {
    tgt_sql -e "DROP DATABASE IF EXISTS \`$DB\`; DROP DATABASE IF EXISTS ferry_meta; RESET MASTER"
    settle_innodb tgt_sql >/dev/null 2>&1
}

# Rows in sbtest1..TABLES on the target (fails if a table is missing).
target_rows() {
    local k sql="SELECT 0"
    for ((k = 1; k <= TABLES; k++)); do
        sql+=" + (SELECT COUNT(*) FROM \`$DB\`.sbtest$k)"
    done
    tgt_sql -Nse "$sql"
}

# load_<tool> LOG: one timed load into the emptied target; sets RUN_SECS/RUN_RSS_KB.
load_ferry_common() {
    local logf="$1"; shift
    run_timed "$logf" "$logf.stdout" "$FERRY_BIN" load --from "$DUMPS/ferry" \
        --target "$FERRY_TEST_TARGET_URL" --threads "$THREADS" --progress off --output json "$@"
}
load_ferry() { load_ferry_common "$1"; }
load_ferry_nodefer() { load_ferry_common "$1" --defer-indexes false; }
load_ferry_nobinlog() { load_ferry_common "$1" --disable-binlog; }

# myloader 0.10 turns the binlog off for its sessions unless -e is given.
load_myloader() {
    run_timed "$1" "$1.stdout" myloader -d "$DUMPS/mydumper" -t "$THREADS" -h 127.0.0.1 \
        -P "$FERRY_TEST_TARGET_PORT" -u root -o
}

# One client session replaying the single-file dump (it carries CREATE DATABASE and USE).
load_mariadb_client() {
    run_timed "$1" "$1.stdout" mariadb --no-defaults -h127.0.0.1 -P"$FERRY_TEST_TARGET_PORT" \
        -uroot <"$DUMPS/dump.sql"
}

# The server's own ingest speed with no client data transfer: the schema is
# created first (untimed), then THREADS sessions run server-side LOAD DATA
# INFILE of the INTO OUTFILE chunk files, with a loader's session settings and
# one transaction per chunk. The files, in table order, are split into THREADS
# contiguous blocks, so with TABLES >= THREADS each session loads whole tables
# (no two sessions on one table) and with fewer tables they share them by key
# range. Timed from the first session's start to the last one's end.
load_ceiling() {
    local logf="$1" s i n t0 rc=0 pids=() sql files=() f
    : >"$logf"
    RUN_SECS="" RUN_RSS_KB=""
    { tgt_sql -e "CREATE DATABASE \`$DB\`" && tgt_sql "$DB" <"$DUMPS/schema.sql"; } 2>>"$logf" || return 1
    files=("$DUMPS"/tsv/*.tsv)
    n=${#files[@]}
    t0=$(now)
    for ((s = 0; s < THREADS && s < n; s++)); do
        sql="SET SESSION foreign_key_checks = 0, unique_checks = 0;"
        for ((i = s * n / THREADS; i < (s + 1) * n / THREADS; i++)); do
            f=${files[i]}
            sql+="START TRANSACTION; LOAD DATA INFILE '$f' INTO TABLE \`$DB\`.\`$(basename -- "$f" | cut -d. -f1)\`; COMMIT;"
        done
        tgt_sql -e "$sql" 2>>"$logf" &
        pids+=($!)
    done
    for s in "${pids[@]}"; do wait "$s" || rc=$?; done
    RUN_SECS=$(elapsed "$t0")
    return "$rc"
}

# load_failed TOOL RUN LOG WHY: record a failed tool and show its log tail.
load_failed() { tool_failed "${LLABEL[$1]}" "$@"; }

# The dumps every tool loads, made once (untimed), in $DUMPS. A failed ferry
# dump or mydumper fails only the tools that load it (DUMP_FAILED[tool]).
declare -A DUMP_FAILED=()
dump_failed() {
    log "$1 FAILED; log $2:"
    tail -n 20 -- "$2" | sed 's/^/    /' >&2 || true
    BENCH_KEEP=1
}
make_dumps() {
    local k c lo hi lines tool logf
    DUMPS="$BENCH_WORK/dumps"
    mkdir -p -- "$DUMPS/tsv"
    # The target server reads these files (same user in the sandbox, but be sure).
    chmod 777 -- "$DUMPS/tsv"
    log "dumps for the loaders (untimed): ferry, mydumper, mariadb-dump, INTO OUTFILE chunks"
    logf="$BENCH_LOG_DIR/dump-ferry.log"
    if ! "$FERRY_BIN" dump --source "$FERRY_TEST_SOURCE_URL" --to "$DUMPS/ferry" -B "$DB" \
        --threads "$THREADS" --rows "$CHUNK_ROWS" --progress off >"$logf" 2>&1; then
        for tool in "${FERRY_LOAD_TOOLS[@]}"; do DUMP_FAILED[$tool]="ferry dump failed; log $logf"; done
        dump_failed "ferry dump" "$logf"
    fi
    logf="$BENCH_LOG_DIR/dump-mydumper.log"
    if ! mydumper -h 127.0.0.1 -P "$FERRY_TEST_SOURCE_PORT" -u root -B "$DB" -t "$THREADS" \
        -r "$CHUNK_ROWS" -o "$DUMPS/mydumper" >"$logf" 2>&1; then
        DUMP_FAILED[myloader]="mydumper failed; log $logf"
        dump_failed mydumper "$logf"
    fi
    # --databases: the file creates and selects the database itself.
    mariadb-dump --no-defaults -h127.0.0.1 -P"$FERRY_TEST_SOURCE_PORT" -uroot \
        --single-transaction --quick --databases "$DB" >"$DUMPS/dump.sql" || die "mariadb-dump failed"
    mariadb-dump --no-defaults -h127.0.0.1 -P"$FERRY_TEST_SOURCE_PORT" -uroot --no-data "$DB" \
        >"$DUMPS/schema.sql" || die "mariadb-dump --no-data failed"
    # The ceiling's input: the same chunks of rows, as tab-separated files.
    for ((k = 1; k <= TABLES; k++)); do
        for ((c = 0; c * CHUNK_ROWS < ROWS; c++)); do
            lo=$((c * CHUNK_ROWS)) hi=$(((c + 1) * CHUNK_ROWS))
            src_sql -e "SELECT * INTO OUTFILE '$DUMPS/tsv/sbtest$k.$(printf %05d "$c").tsv'
                        FROM \`$DB\`.sbtest$k WHERE id > $lo AND id <= $hi"
        done
    done
    lines=$(cat -- "$DUMPS"/tsv/*.tsv | wc -l)
    ((lines == TABLES * ROWS)) || die "INTO OUTFILE wrote $lines rows, expected $((TABLES * ROWS))"
}

cmd_load() {
    parse_opts load "$@"

    # 1. tools and ferry
    need_pkg sysbench sysbench
    need_pkg mydumper mydumper
    need_pkg myloader mydumper
    need_pkg mariadb-dump mariadb-client
    need_pkg mariadb mariadb-client
    ensure_gnu_time
    build_ferry

    # 2. servers, dataset and the dumps (made once)
    setup_work "$BENCH_PARENT"
    start_servers "$BENCH_WORK/servers"
    prepare_sysbench "$DB" "$TABLES" "$ROWS"
    make_dumps
    local base base_name tool
    if [[ -z "${DUMP_FAILED[ferry]:-}" ]]; then
        base=$(bytes_of "$DUMPS/ferry") base_name="ferry's uncompressed SQL dump"
    else
        base=$(bytes_of "$DUMPS/tsv") base_name="the INTO OUTFILE files (ferry dump failed)"
    fi
    for tool in "${!DUMP_FAILED[@]}"; do FAILED[$tool]="${DUMP_FAILED[$tool]}"; done

    # Untimed warm-up: the first load into a fresh server grows its tablespaces and logs.
    log "warm-up: one untimed load (the ceiling's)"
    reset_target
    if ! load_ceiling "$BENCH_LOG_DIR/load-warmup.log"; then
        tail -n 20 -- "$BENCH_LOG_DIR/load-warmup.log" | sed 's/^/    /' >&2 || true
        BENCH_KEEP=1
        die "warm-up load (LOAD DATA INFILE) failed; log $BENCH_LOG_DIR/load-warmup.log"
    fi

    # 3. measure; tools interleaved run by run so drift hits all alike
    local run logf got rc
    for ((run = 1; run <= RUNS; run++)); do
        for tool in "${LOAD_TOOLS[@]}"; do
            [[ -z "${FAILED[$tool]:-}" ]] || continue
            logf="$BENCH_LOG_DIR/load-$tool.run$run.log"
            reset_target
            sync
            rc=0
            "load_$tool" "$logf" || rc=$?
            if ((rc != 0)); then
                load_failed "$tool" "$run" "$logf" "exit status $rc after ${RUN_SECS:-?}s"
                continue
            fi
            got=$(target_rows 2>>"$logf") || got=""
            if [[ "$got" != "$((TABLES * ROWS))" ]]; then
                load_failed "$tool" "$run" "$logf" \
                    "exit status 0 but the target holds ${got:-?} rows, expected $((TABLES * ROWS))"
                continue
            fi
            if [[ " ${FERRY_LOAD_TOOLS[*]} " == *" $tool "* && -z "${FERRY_METHOD[$tool]:-}" ]]; then
                FERRY_METHOD[$tool]=$(sed -n 's/.*"method":"\([^"]*\)".*/\1/p' -- "$logf.stdout" | head -n 1)
            fi
            record_run "$tool"
            log "run $run/$RUNS ${LLABEL[$tool]}: ${RUN_SECS}s"
        done
    done

    # 4. report
    local rss_kb t
    set_medians "${LOAD_TOOLS[@]}"
    echo
    echo "load benchmark: $TABLES tables x $ROWS rows (sysbench oltp, db $DB), threads $THREADS," \
        "chunk rows $CHUNK_ROWS, median of $RUNS run(s); the target writes a binlog"
    echo "dataset base for MB/s: $(mb "$base") = $base_name (MB = 10^6 bytes)"
    echo "ferry: $FERRY_BIN ($("$FERRY_BIN" --version 2>/dev/null || echo '?')), load method" \
        "(from its JSON summary): ${FERRY_METHOD[ferry]:-?}"
    echo
    # shellcheck disable=SC2317 # called by print_tool_rows
    load_rate() { mbps "$base" "$1"; }
    print_tool_rows LLABEL "MB/s" load_rate "${LOAD_TOOLS[@]}"
    echo "(peak RSS: max over the runs of the client process; '-' for the ceiling, whose work is in the server)"
    echo "(ferry load defers secondary indexes by default; myloader turns the binlog off by default:"
    echo " compare it with ferry --disable-binlog too)"

    local -A R=(
        [ferry_vs_myloader]="$(ratio "${MED[myloader]:-}" "${MED[ferry]:-}")"
        [ferry_nobinlog_vs_myloader]="$(ratio "${MED[myloader]:-}" "${MED[ferry_nobinlog]:-}")"
        [ferry_vs_mariadb_client]="$(ratio "${MED[mariadb_client]:-}" "${MED[ferry]:-}")"
        [ferry_vs_ceiling]="$(ratio "${MED[ceiling]:-}" "${MED[ferry]:-}")"
        [defer_vs_nodefer]="$(ratio "${MED[ferry_nodefer]:-}" "${MED[ferry]:-}")"
        [nobinlog_vs_ferry]="$(ratio "${MED[ferry]:-}" "${MED[ferry_nobinlog]:-}")"
        [ferry_nodefer_vs_ceiling]="$(ratio "${MED[ceiling]:-}" "${MED[ferry_nodefer]:-}")"
    )
    local ratio_order=(ferry_vs_myloader ferry_nobinlog_vs_myloader ferry_vs_mariadb_client
        ferry_vs_ceiling ferry_nodefer_vs_ceiling defer_vs_nodefer nobinlog_vs_ferry)
    local -A RDESC=(
        [ferry_vs_myloader]="ferry vs myloader|myloader_s / ferry_s|goal >= 2"
        [ferry_nobinlog_vs_myloader]="ferry --disable-binlog vs myloader|myloader_s / ferry_nobinlog_s|both without binlog"
        [ferry_vs_mariadb_client]="ferry vs mariadb < dump.sql|mariadb_s / ferry_s|"
        [ferry_vs_ceiling]="ferry vs server LOAD DATA INFILE|ceiling_s / ferry_s|goal >= 1.0 (1.0: as fast as the server alone)"
        [ferry_nodefer_vs_ceiling]="ferry --defer-indexes false vs server|ceiling_s / ferry_nodefer_s|like for like: indexes kept up row by row in both"
        [defer_vs_nodefer]="deferred indexes vs not|ferry_nodefer_s / ferry_s|"
        [nobinlog_vs_ferry]="ferry --disable-binlog vs ferry|ferry_s / ferry_nobinlog_s|"
    )
    print_ratios "the first" 38 32 "${ratio_order[@]}"

    # Machine-readable summary.
    local json tj first=1 mbs
    json="{\"tables\":$TABLES,\"rows_per_table\":$ROWS,\"threads\":$THREADS,\"chunk_rows\":$CHUNK_ROWS,\"runs\":$RUNS"
    json+=",\"dataset_bytes\":$(json_num "$base"),\"dataset_base\":\"$( [[ -z "${DUMP_FAILED[ferry]:-}" ]] && echo ferry_uncompressed || echo into_outfile)\""
    json+=",\"ferry_method\":$( [[ -n "${FERRY_METHOD[ferry]:-}" ]] && echo "\"${FERRY_METHOD[ferry]}\"" || echo null)"
    json+=",\"tools\":{"
    for tool in "${LOAD_TOOLS[@]}"; do
        ((first)) || json+=","
        first=0
        mbs=$(mbps "$base" "${MED[$tool]:-}")
        json+="$(tool_json_head "$tool"),\"mb_per_s\":$(json_num "${mbs#-}")}"
    done
    json+="},\"ratios\":{$(ratios_json "${ratio_order[@]}")},\"goals\":{\"ferry_vs_myloader\":2,\"ferry_vs_ceiling\":1}}"
    echo
    echo "BENCH_LOAD_JSON $json"

    for tool in "${LOAD_TOOLS[@]}"; do
        [[ -z "${FAILED[$tool]:-}" ]] || return 1
    done
}

# ================================================================= catchup
# Native replication with 0 and 4 parallel threads, ferry with 1 and 4 workers.
CATCHUP_PAR=4
CATCHUP_TOOLS=(native_0 native_4 ferry_w1 ferry_w4)
declare -A CLABEL=(
    [native_0]="native replica, slave_parallel_threads=0"
    [native_4]="native replica, slave_parallel_threads=$CATCHUP_PAR"
    [ferry_w1]="ferry catchup --workers 1"
    [ferry_w4]="ferry catchup --workers $CATCHUP_PAR"
)
# Tools that cannot run with this ferry binary (not failures): tool -> why.
declare -A SKIPPED=()
# ferry's own summary: transactions and stop position of its last run, its elapsed_secs
# of every run, per tool.
declare -A FERRY_TRX=() FERRY_STOP=() FERRY_SECS=()

# The workload W: the source's binlog from W_START_* to W_END_*, W_TRX transactions.
W_START_FILE="" W_START_POS="" W_END_FILE="" W_END_POS="" W_TRX="" W_BYTES=""
SRC_CHECKSUMS=""
CATCHUP_POOL=""   # --innodb-buffer-pool-size for both servers after their restarts
CATCHUP_TIMEOUT=600

# server_stop NAME: clean shutdown of one of the servers.sh servers (source|target).
server_stop() {
    local name="$1" pid i
    pid=$(cat -- "$BENCH_SERVERS_DIR/$name.pid" 2>/dev/null || true)
    mariadb-admin --no-defaults --protocol=socket -S "$BENCH_SERVERS_DIR/$name.sock" -uroot \
        --connect-timeout=2 --shutdown-timeout=120 shutdown >/dev/null 2>&1 || true
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    die "$name server (pid $pid) still running 120 s after shutdown"
}

# server_start NAME: start one servers.sh server again from its option file, on its port,
# with CATCHUP_POOL as buffer pool; wait until it answers.
server_start() {
    local name="$1" dir="$BENCH_SERVERS_DIR" port i
    port=$(sed -n 's/^port *= *//p' -- "$dir/$name.cnf")
    rm -f -- "$dir/$name.pid"
    # Own session, like servers.sh: the server outlives signals to this process group
    # (the servers.sh watchdog and cleanup stop it through its pid file).
    setsid mariadbd --defaults-file="$dir/$name.cnf" --innodb-buffer-pool-size="$CATCHUP_POOL" \
        </dev/null >>"$dir/$name.err" 2>&1 &
    for ((i = 0; i < 1200; i++)); do
        if mariadb --no-defaults -h127.0.0.1 -P"$port" -uroot --connect-timeout=2 \
            -Nse 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 -- "$dir/$name.err" | sed 's/^/    /' >&2 || true
    die "$name server did not answer within 120 s of its restart (log $dir/$name.err)"
}

# warm_tables CLIENT: one untimed full read of each table's primary and secondary index.
warm_tables() {
    local k sql=""
    for ((k = 1; k <= TABLES; k++)); do
        sql+="SELECT COUNT(*) FROM \`$DB\`.sbtest$k FORCE INDEX (PRIMARY);"
        sql+="SELECT COUNT(*) FROM \`$DB\`.sbtest$k FORCE INDEX (k_$k);"
    done
    "$1" -Nse "$sql" >/dev/null
}

# checksums CLIENT: CHECKSUM TABLE of every sbtest table, one "table<TAB>checksum" line each.
checksums() {
    local k list=""
    for ((k = 1; k <= TABLES; k++)); do
        list+="${list:+, }\`$DB\`.sbtest$k"
    done
    "$1" -Nse "CHECKSUM TABLE $list"
}

# Sequence number of the source's last binlogged transaction (domain 0, strict mode).
src_gtid_seq() {
    local g
    g=$(src_sql -Nse 'SELECT @@gtid_binlog_pos')
    [[ "$g" =~ ^0-[0-9]+-([0-9]+)$ ]] && echo "${BASH_REMATCH[1]}"
}

# File and position of the source's binlog end, as "file pos".
src_binlog_end() { src_sql -Nse 'SHOW MASTER STATUS' | cut -f1,2 | tr '\t' ' '; }

# make_pristine: the post-prepare data as a target datadir in $PRISTINE. The source is
# stopped after a slow shutdown (purge and change buffer done), its datadir copied without
# the binlog, and restarted with a new binlog file.
make_pristine() {
    local need avail chunk=$((128 * 1024 * 1024))
    need=$(db_disk_bytes "$DB")
    avail=$(awk '/^MemAvailable:/ {print $2 * 1024}' /proc/meminfo)
    # The dataset plus 50% in each server's pool; at least servers.sh's 512 MiB, at most a
    # quarter of the free memory each.
    CATCHUP_POOL=$(((need * 3 / 2 + chunk - 1) / chunk * chunk))
    ((CATCHUP_POOL >= 4 * chunk)) || CATCHUP_POOL=$((4 * chunk))
    ((CATCHUP_POOL <= avail / 4)) || CATCHUP_POOL=$((avail / 4 / chunk * chunk))
    BENCH_POOL_NOTE="dataset $(mib "$need") MiB on disk; buffer pool $(mib "$CATCHUP_POOL") MiB on both servers"
    ((need * 5 / 4 <= CATCHUP_POOL)) || BENCH_POOL_NOTE+=" (too small: reads may hit disk)"
    log "$BENCH_POOL_NOTE"

    PRISTINE="$BENCH_WORK/pristine"
    log "copying the prepared source datadir (server stopped) as the pristine target"
    src_sql -e 'SET GLOBAL innodb_fast_shutdown = 0'
    server_stop source
    cp -a -- "$BENCH_SERVERS_DIR/source" "$PRISTINE"
    # No binlog, no GTID state: the copy starts a binlog of its own.
    rm -f -- "$PRISTINE"/mysql-bin.*
    server_start source
}

# restore_target: the target server on a fresh copy of the pristine datadir, warmed.
restore_target() {
    server_stop target
    rm -rf -- "$BENCH_SERVERS_DIR/target"
    cp -a -- "$PRISTINE" "$BENCH_SERVERS_DIR/target"
    sync
    server_start target
    warm_tables tgt_sql
    tgt_sql -e 'RESET MASTER'
}

# make_workload: sysbench oltp_write_only on the source for WORKLOAD_SECS; sets W_*.
make_workload() {
    local seq0 seq1 sb_trx logf="$BENCH_LOG_DIR/sysbench-run.log"
    warm_tables src_sql
    read -r W_START_FILE W_START_POS < <(src_binlog_end)
    [[ "$W_START_POS" =~ ^[0-9]+$ ]] || die "SHOW MASTER STATUS on the source gave no position"
    seq0=$(src_gtid_seq || true)
    log "sysbench oltp_write_only: $THREADS threads for ${WORKLOAD_SECS}s on the source (workload W)"
    sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$FERRY_TEST_SOURCE_PORT" \
        --mysql-user=root --mysql-db="$DB" --tables="$TABLES" --table-size="$ROWS" \
        --threads="$THREADS" --time="$WORKLOAD_SECS" --events=0 --report-interval=0 run \
        >"$logf" 2>&1 \
        || { tail -n 20 -- "$logf" >&2; die "sysbench oltp_write_only run failed; log $logf"; }
    read -r W_END_FILE W_END_POS < <(src_binlog_end)
    [[ "$W_END_POS" =~ ^[0-9]+$ ]] || die "SHOW MASTER STATUS on the source gave no position"
    seq1=$(src_gtid_seq || true)
    sb_trx=$(awk '/^ *transactions:/ {print $2; exit}' "$logf")
    # The binlog is the truth (sysbench counts its own commits: the same when nothing failed).
    if [[ -n "$seq0" && -n "$seq1" ]]; then
        W_TRX=$((seq1 - seq0))
        [[ "$W_TRX" == "$sb_trx" ]] \
            || log "NOTE: W holds $W_TRX transactions by GTID, sysbench counted ${sb_trx:-?}"
    else
        W_TRX=$sb_trx
    fi
    [[ "$W_TRX" =~ ^[1-9][0-9]*$ ]] || die "no transactions in W (sysbench log $logf)"
    W_BYTES=""
    [[ "$W_START_FILE" != "$W_END_FILE" ]] || W_BYTES=$((W_END_POS - W_START_POS))
    log "W: $W_START_FILE:$W_START_POS .. $W_END_FILE:$W_END_POS, $W_TRX transactions" \
        "(sysbench: $(awk '/^ *transactions:/ {print $2, "trx", $3, $4, $5; exit}' "$logf"))"
    SRC_CHECKSUMS=$(checksums src_sql)
}

# slave_field NAME STATUS: one field of SHOW SLAVE STATUS\G output.
slave_field() { sed -n "s/^ *$1: //p" <<<"$2" | head -n 1; }

# slave_reached FILE_FIELD POS_FIELD STATUS: true if the replica's FILE_FIELD:POS_FIELD
# has reached W's end.
slave_reached() {
    local pos
    pos=$(slave_field "$2" "$3")
    [[ "$(slave_field "$1" "$3")" == "$W_END_FILE" && "$pos" =~ ^[0-9]+$ ]] && ((pos >= W_END_POS))
}

# catchup_native THREADS LOG: replicate W into the target with the server's own replica.
# The IO thread fetches W into the relay log first (untimed); then only the SQL thread is
# timed, until MASTER_POS_WAIT sees W's end executed. Sets RUN_SECS.
catchup_native() {
    local par="$1" logf="$2" st res t0 i
    RUN_SECS="" RUN_RSS_KB=""
    : >"$logf"
    tgt_sql -e "SET GLOBAL slave_parallel_threads = $par, GLOBAL slave_parallel_mode = 'optimistic';
        CHANGE MASTER TO master_host = '127.0.0.1', master_port = $FERRY_TEST_SOURCE_PORT,
            master_user = 'root', master_password = '', master_use_gtid = no,
            master_log_file = '$W_START_FILE', master_log_pos = $W_START_POS;
        START SLAVE IO_THREAD" >>"$logf" 2>&1 || return 1
    for ((i = 0; ; i++)); do
        st=$(tgt_sql -e 'SHOW SLAVE STATUS\G' 2>>"$logf") || return 1
        slave_reached Master_Log_File Read_Master_Log_Pos "$st" && break
        if [[ -n "$(slave_field Last_IO_Error "$st")" ]] || ((i >= CATCHUP_TIMEOUT * 20)); then
            printf 'relay log fetch of W did not finish:\n%s\n' "$st" >>"$logf"
            return 1
        fi
        sleep 0.05
    done
    echo "relay log holds W after ${i} polls of 50 ms (untimed)" >>"$logf"
    t0=$(now)
    res=$(tgt_sql -Nse "START SLAVE SQL_THREAD;
        SELECT MASTER_POS_WAIT('$W_END_FILE', $W_END_POS, $CATCHUP_TIMEOUT)" 2>>"$logf") || res="error"
    RUN_SECS=$(elapsed "$t0")
    st=$(tgt_sql -e 'SHOW SLAVE STATUS\G' 2>>"$logf") || st=""
    printf 'MASTER_POS_WAIT: %s\n%s\n' "$res" "$st" >>"$logf"
    tgt_sql -e 'STOP SLAVE' >>"$logf" 2>&1 || true
    # NULL: the SQL thread stopped (an error); -1: timeout.
    [[ "$res" =~ ^[0-9]+$ ]] || {
        echo "MASTER_POS_WAIT returned '$res'; Last_SQL_Error: $(slave_field Last_SQL_Error "$st")" >>"$logf"
        return 1
    }
    slave_reached Relay_Master_Log_File Exec_Master_Log_Pos "$st" || {
        echo "MASTER_POS_WAIT returned but SHOW SLAVE STATUS is not at W's end" >>"$logf"
        return 1
    }
}

# catchup_ferry LOG [ARGS...]: ferry catchup of W into the target, wall-clock timed from
# process start to exit; it reads W from the source itself. Sets RUN_SECS/RUN_RSS_KB.
catchup_ferry() {
    local logf="$1"; shift
    run_timed "$logf" "$logf.stdout" timeout "$CATCHUP_TIMEOUT" "$FERRY_BIN" catchup \
        --start-position "$W_START_FILE:$W_START_POS" --source "$FERRY_TEST_SOURCE_URL" \
        --target "$FERRY_TEST_TARGET_URL" --until caught-up --output json "$@"
}

# run_catchup_tool TOOL LOG: one timed run of TOOL against the restored target.
run_catchup_tool() {
    case "$1" in
        native_0) catchup_native 0 "$2" ;;
        native_4) catchup_native "$CATCHUP_PAR" "$2" ;;
        ferry_w1) catchup_ferry "$2" "${FERRY_W1_ARGS[@]}" ;;
        ferry_w4) catchup_ferry "$2" --workers "$CATCHUP_PAR" ;;
    esac
}

# catchup_failed TOOL RUN LOG WHY: record a failed tool and show its log tail.
catchup_failed() { tool_failed "${CLABEL[$1]}" "$@"; }

# trx_per_s SECS: W's transactions per second, or '-'.
trx_per_s() {
    if [[ -n "$1" ]]; then awk -v n="$W_TRX" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; else printf -- '-'; fi
}

# goal_word RATIO GOAL: met / missed / n/a.
goal_word() {
    [[ -n "$1" ]] || { printf 'n/a'; return; }
    awk -v r="$1" -v g="$2" 'BEGIN { print (r >= g ? "met" : "missed") }'
}

cmd_catchup() {
    parse_opts catchup "$@"

    # 1. tools and ferry
    need_pkg sysbench sysbench
    need_pkg mariadb mariadb-client
    need_pkg mariadb-admin mariadb-client
    ensure_gnu_time
    build_ferry
    # --workers is new; without it ferry applies with one worker and the 4-worker row waits.
    FERRY_W1_ARGS=()
    if "$FERRY_BIN" catchup --help 2>/dev/null | grep -q -- '--workers'; then
        FERRY_W1_ARGS=(--workers 1)
    else
        SKIPPED[ferry_w4]="n/a (no --workers in this ferry)"
        CLABEL[ferry_w1]="ferry catchup (one worker; no --workers yet)"
        log "this ferry has no catchup --workers: ferry runs with its single worker only"
    fi
    # Generous: apply at 50 trx/s would still finish.
    CATCHUP_TIMEOUT=$((WORKLOAD_SECS * 60 + 600))

    # 2. servers, dataset, the pristine target copy, the workload W
    setup_work "$BENCH_PARENT"
    start_servers "$BENCH_WORK/servers"
    prepare_sysbench "$DB" "$TABLES" "$ROWS"
    make_pristine
    make_workload

    # 3. measure; tools alternate run by run (order reversed on even runs)
    local run tool logf rc order=() k got
    for ((run = 1; run <= RUNS; run++)); do
        order=("${CATCHUP_TOOLS[@]}")
        if ((run % 2 == 0)); then
            order=()
            for ((k = ${#CATCHUP_TOOLS[@]} - 1; k >= 0; k--)); do order+=("${CATCHUP_TOOLS[k]}"); done
        fi
        for tool in "${order[@]}"; do
            [[ -z "${FAILED[$tool]:-}" && -z "${SKIPPED[$tool]:-}" ]] || continue
            logf="$BENCH_LOG_DIR/catchup-$tool.run$run.log"
            restore_target
            sync
            rc=0
            run_catchup_tool "$tool" "$logf" || rc=$?
            if ((rc != 0)); then
                catchup_failed "$tool" "$run" "$logf" "exit status $rc after ${RUN_SECS:-?}s"
                continue
            fi
            got=$(checksums tgt_sql 2>>"$logf") || got=""
            if [[ "$got" != "$SRC_CHECKSUMS" ]]; then
                printf 'CHECKSUM TABLE, source:\n%s\ntarget:\n%s\n' "$SRC_CHECKSUMS" "$got" >>"$logf"
                catchup_failed "$tool" "$run" "$logf" \
                    "DATA MISMATCH: CHECKSUM TABLE on the target differs from the source"
                continue
            fi
            if [[ "$tool" == ferry_* ]]; then
                FERRY_TRX[$tool]=$(sed -n 's/.*"transactions":\([0-9]*\).*/\1/p' -- "$logf.stdout" | head -n 1)
                FERRY_STOP[$tool]=$(sed -n 's/.*"stopped_at":"\([^"]*\)".*/\1/p' -- "$logf.stdout" | head -n 1)
                FERRY_SECS[$tool]+="$(sed -n 's/.*"elapsed_secs":\([0-9.]*\).*/\1/p' -- "$logf.stdout" | head -n 1) "
                [[ "${FERRY_STOP[$tool]}" == "$W_END_FILE:$W_END_POS" ]] \
                    || log "NOTE: ${CLABEL[$tool]} stopped at ${FERRY_STOP[$tool]:-?}, W ends at $W_END_FILE:$W_END_POS"
            fi
            record_run "$tool"
            log "run $run/$RUNS ${CLABEL[$tool]}: ${RUN_SECS}s ($(trx_per_s "$RUN_SECS") trx/s), checksums match"
        done
    done

    # 4. report
    local rss_kb t
    set_medians "${CATCHUP_TOOLS[@]}"
    echo
    echo "catchup benchmark: sysbench oltp_write_only, $TABLES tables x $ROWS rows (db $DB)," \
        "$THREADS client threads for ${WORKLOAD_SECS}s on the source; median of $RUNS run(s)"
    echo "workload W: $W_START_FILE:$W_START_POS .. $W_END_FILE:$W_END_POS," \
        "$W_TRX transactions${W_BYTES:+, $(mb "$W_BYTES") of binlog} (ROW, FULL image)"
    echo "each run: target restored from the post-prepare copy, restarted, buffer pool warmed;" \
        "CHECKSUM TABLE of all $TABLES tables checked against the source after it"
    echo "native: SQL thread only (W already in the relay log), until MASTER_POS_WAIT of W's end;" \
        "ferry: whole process, reading W from the source (--until caught-up)"
    echo "both write the target's binlog (log_bin, log_slave_updates); $BENCH_POOL_NOTE"
    echo "ferry: $FERRY_BIN ($("$FERRY_BIN" --version 2>/dev/null || echo '?'))"
    echo
    printf '%-44s %9s %9s %11s  %s\n' tool "median s" "trx/s" "peak RSS" "runs (s)"
    for tool in "${CATCHUP_TOOLS[@]}"; do
        if [[ -n "${SKIPPED[$tool]:-}" ]]; then
            printf '%-44s %s\n' "${CLABEL[$tool]}" "${SKIPPED[$tool]}"
            continue
        fi
        if [[ -n "${FAILED[$tool]:-}" ]]; then
            printf '%-44s FAILED: %s\n' "${CLABEL[$tool]}" "${FAILED[$tool]}"
            continue
        fi
        rss_kb=$(peak_rss_kb "$tool")
        printf '%-44s %9s %9s %11s  %s\n' "${CLABEL[$tool]}" "${MED[$tool]}" \
            "$(trx_per_s "${MED[$tool]}")" "$(rss_h "$rss_kb")" "${TIMES[$tool]% }"
    done
    echo "(peak RSS: of the ferry process; '-' for native, whose work is in the server)"
    local fsecs
    for tool in ferry_w1 ferry_w4; do
        [[ "${FERRY_SECS[$tool]:-}" =~ [0-9] ]] || continue
        # shellcheck disable=SC2086
        fsecs=$(median ${FERRY_SECS[$tool]})
        echo "(${CLABEL[$tool]}: ${fsecs}s by its own summary (elapsed_secs, median); the rest of" \
            "the wall time is process start, connections and prechecks)"
    done
    for tool in ferry_w1 ferry_w4; do
        [[ -n "${FERRY_TRX[$tool]:-}" && "${FERRY_TRX[$tool]}" != "$W_TRX" ]] || continue
        echo "(NOTE: ${CLABEL[$tool]} reported ${FERRY_TRX[$tool]} transactions, W holds $W_TRX)"
    done

    local -A R=(
        [ferry_w1_vs_native_0]="$(ratio "${MED[native_0]:-}" "${MED[ferry_w1]:-}")"
        [ferry_w4_vs_native_0]="$(ratio "${MED[native_0]:-}" "${MED[ferry_w4]:-}")"
        [ferry_w4_vs_native_4]="$(ratio "${MED[native_4]:-}" "${MED[ferry_w4]:-}")"
        [native_4_vs_native_0]="$(ratio "${MED[native_0]:-}" "${MED[native_4]:-}")"
        [ferry_w4_vs_ferry_w1]="$(ratio "${MED[ferry_w1]:-}" "${MED[ferry_w4]:-}")"
    )
    local ratio_order=(ferry_w1_vs_native_0 ferry_w4_vs_native_0 ferry_w4_vs_native_4
        native_4_vs_native_0 ferry_w4_vs_ferry_w1)
    local -A RDESC=(
        [ferry_w1_vs_native_0]="ferry 1 worker vs native 0 threads|native_0_s / ferry_w1_s"
        [ferry_w4_vs_native_0]="ferry $CATCHUP_PAR workers vs native 0 threads|native_0_s / ferry_w4_s"
        [ferry_w4_vs_native_4]="ferry $CATCHUP_PAR workers vs native $CATCHUP_PAR threads|native_4_s / ferry_w4_s"
        [native_4_vs_native_0]="native $CATCHUP_PAR threads vs 0|native_0_s / native_4_s"
        [ferry_w4_vs_ferry_w1]="ferry $CATCHUP_PAR workers vs 1|ferry_w1_s / ferry_w4_s"
    )
    local goal=2 best="" d note
    for t in ferry_w1_vs_native_0 ferry_w4_vs_native_0; do
        [[ -n "${R[$t]}" ]] || continue
        if [[ -z "$best" ]] || awk -v a="${R[$t]}" -v b="$best" 'BEGIN { exit !(a > b) }'; then
            best=${R[$t]}
        fi
    done
    echo
    echo "speed ratios (> 1: the first is faster):"
    for t in "${ratio_order[@]}"; do
        d=${RDESC[$t]} note=""
        case "$t" in
            ferry_*_vs_native_0) note="goal >= $goal: $(goal_word "${R[$t]}" "$goal")" ;;
        esac
        printf '  %-40s %-26s %6s  %s\n' "${d%%|*}" "(${d#*|})" "${R[$t]:-n/a}" "$note"
    done
    echo "goal: ferry >= ${goal}x the native single-threaded replica:" \
        "$(goal_word "$best" "$goal")${best:+ (best ferry: ${best}x)}"

    # Machine-readable summary.
    local json tj first=1 tps
    json="{\"tables\":$TABLES,\"rows_per_table\":$ROWS,\"client_threads\":$THREADS"
    json+=",\"workload_secs\":$WORKLOAD_SECS,\"runs\":$RUNS,\"transactions\":$W_TRX"
    json+=",\"binlog_bytes\":$(json_num "$W_BYTES")"
    json+=",\"start\":\"$W_START_FILE:$W_START_POS\",\"end\":\"$W_END_FILE:$W_END_POS\""
    json+=",\"buffer_pool_bytes\":$CATCHUP_POOL,\"tools\":{"
    for tool in "${CATCHUP_TOOLS[@]}"; do
        ((first)) || json+=","
        first=0
        rss_kb=$(peak_rss_kb "$tool")
        tj=$(runs_csv "$tool")
        tps=$(trx_per_s "${MED[$tool]:-}")
        json+="\"$tool\":{\"ok\":$( [[ -z "${FAILED[$tool]:-}" && -z "${SKIPPED[$tool]:-}" ]] && echo true || echo false)"
        json+=",\"skipped\":$( [[ -n "${SKIPPED[$tool]:-}" ]] && echo true || echo false)"
        json+=",\"median_s\":$(json_num "${MED[$tool]:-}"),\"runs_s\":[${tj}],\"trx_per_s\":$(json_num "${tps#-}")"
        json+=",\"peak_rss_kb\":$(json_num "$rss_kb")"
        if [[ "$tool" == ferry_* ]]; then
            fsecs=""
            # shellcheck disable=SC2086
            [[ ! "${FERRY_SECS[$tool]:-}" =~ [0-9] ]] || fsecs=$(median ${FERRY_SECS[$tool]})
            json+=",\"ferry_transactions\":$(json_num "${FERRY_TRX[$tool]:-}")"
            json+=",\"ferry_elapsed_s\":$(json_num "$fsecs")"
        fi
        json+="}"
    done
    json+="},\"ratios\":{$(ratios_json "${ratio_order[@]}")},\"goals\":{\"ferry_vs_native_0\":$goal},\"goal_met\":"
    case "$(goal_word "$best" "$goal")" in
        met) json+="true" ;;
        missed) json+="false" ;;
        *) json+="null" ;;
    esac
    json+="}"
    echo
    echo "BENCH_CATCHUP_JSON $json"
    if [[ -n "${BENCH_CATCHUP_JSON:-}" ]]; then
        printf '%s\n' "$json" >"$BENCH_CATCHUP_JSON" || log "could not write $BENCH_CATCHUP_JSON"
    fi

    for tool in "${CATCHUP_TOOLS[@]}"; do
        [[ -z "${FAILED[$tool]:-}" ]] || return 1
    done
}

# ================================================================== tables
# Per-table cost: many tiny tables (multi-tenant schemas). Each run dumps with
# ferry and mydumper, then loads each tool's own dump with ferry (default and
# --defer-indexes false) and myloader into an emptied target; CHECKSUM TABLE
# of every table on the target must equal the source's after each load.
TDUMP_TOOLS=(ferry mydumper)
TLOAD_TOOLS=(ferry_load ferry_load_nodefer myloader)
declare -A TLABEL=(
    [ferry]="ferry dump"
    [mydumper]="mydumper"
    [ferry_load]="ferry load"
    [ferry_load_nodefer]="ferry load --defer-indexes false"
    [myloader]="myloader"
)

# chunk_args TOOL: the --rows/-r option when --chunk-rows was given.
chunk_args() {
    [[ -n "$CHUNK_ROWS" ]] || return 0
    case "$1" in
        ferry) printf '%s\n' --rows "$CHUNK_ROWS" ;;
        mydumper) printf '%s\n' -r "$CHUNK_ROWS" ;;
    esac
}

# tables_dump TOOL LOG: one timed dump into $BENCH_WORK/out/TOOL (kept for the loads).
tables_dump() {
    local tool="$1" logf="$2" out="$BENCH_WORK/out/$1" extra=()
    mapfile -t extra < <(chunk_args "$tool")
    rm -rf -- "$out"
    sync
    case "$tool" in
        ferry)
            mkdir -p -- "$out"
            run_timed "$logf" "$logf.stdout" "$FERRY_BIN" dump --source "$FERRY_TEST_SOURCE_URL" \
                --to "$out" -B "$DB" --threads "$THREADS" --progress off "${extra[@]}" ;;
        mydumper)
            run_timed "$logf" "$logf.stdout" mydumper -h 127.0.0.1 -P "$FERRY_TEST_SOURCE_PORT" \
                -u root -B "$DB" -t "$THREADS" -o "$out" "${extra[@]}" ;;
    esac
}

# tables_load TOOL LOG: one timed load of the matching dump into the emptied target.
tables_load() {
    local tool="$1" logf="$2"
    reset_target
    sync
    case "$tool" in
        ferry_load | ferry_load_nodefer)
            local extra=()
            [[ "$tool" != ferry_load_nodefer ]] || extra=(--defer-indexes false)
            run_timed "$logf" "$logf.stdout" "$FERRY_BIN" load --from "$BENCH_WORK/out/ferry" \
                --target "$FERRY_TEST_TARGET_URL" --threads "$THREADS" --progress off \
                --output json "${extra[@]}" ;;
        myloader)
            run_timed "$logf" "$logf.stdout" myloader -d "$BENCH_WORK/out/mydumper" \
                -t "$THREADS" -h 127.0.0.1 -P "$FERRY_TEST_TARGET_PORT" -u root -o ;;
    esac
}

# tables_failed TOOL RUN LOG WHY: record a failed tool and show its log tail.
tables_failed() { tool_failed "${TLABEL[$1]}" "$@"; }

# tables_round RUN: every dump, then every load of a dump that succeeded in this run.
tables_round() {
    local run="$1" tool logf rc got src
    for tool in "${TDUMP_TOOLS[@]}"; do
        [[ -z "${FAILED[$tool]:-}" ]] || continue
        logf="$BENCH_LOG_DIR/tables-$tool.run$run.log"
        settle_innodb >/dev/null 2>&1
        rc=0
        tables_dump "$tool" "$logf" || rc=$?
        if ((rc != 0)); then
            tables_failed "$tool" "$run" "$logf" "exit status $rc after ${RUN_SECS:-?}s"
            continue
        fi
        record_run "$tool"
        log "run $run/$RUNS ${TLABEL[$tool]}: ${RUN_SECS}s"
    done
    for tool in "${TLOAD_TOOLS[@]}"; do
        src=ferry
        [[ "$tool" != myloader ]] || src=mydumper
        [[ -z "${FAILED[$tool]:-}" ]] || continue
        if [[ -n "${FAILED[$src]:-}" ]]; then
            FAILED[$tool]="its dump ($src) failed"
            continue
        fi
        logf="$BENCH_LOG_DIR/tables-$tool.run$run.log"
        rc=0
        tables_load "$tool" "$logf" || rc=$?
        if ((rc != 0)); then
            tables_failed "$tool" "$run" "$logf" "exit status $rc after ${RUN_SECS:-?}s"
            continue
        fi
        got=$(checksum_all tgt_sql "$DB" 2>>"$logf") || got=""
        if [[ "$got" != "$SRC_CHECKSUMS" ]]; then
            diff <(printf '%s\n' "$SRC_CHECKSUMS") <(printf '%s\n' "$got") | head -n 20 >>"$logf" || true
            tables_failed "$tool" "$run" "$logf" \
                "DATA MISMATCH: CHECKSUM TABLE on the target differs from the source"
            continue
        fi
        record_run "$tool"
        log "run $run/$RUNS ${TLABEL[$tool]}: ${RUN_SECS}s, checksums of all $TABLES tables match"
    done
}

cmd_tables() {
    parse_opts tables "$@"
    DB=tenants

    # 1. tools and ferry
    need_pkg mydumper mydumper
    need_pkg myloader mydumper
    need_pkg mariadb mariadb-client
    ensure_gnu_time
    build_ferry

    # 2. servers and dataset
    setup_work "$BENCH_PARENT"
    start_servers "$BENCH_WORK/servers"
    prepare_tenants "$DB" "$TABLES" "$ROWS"
    SRC_CHECKSUMS=$(checksum_all src_sql "$DB") || die "CHECKSUM TABLE on the source failed"
    [[ $(wc -l <<<"$SRC_CHECKSUMS") -eq $TABLES ]] || die "the source lists $(wc -l <<<"$SRC_CHECKSUMS") tables in $DB, expected $TABLES"

    # 3. measure
    local run
    for ((run = 1; run <= RUNS; run++)); do tables_round "$run"; done

    # 4. report
    local tool rss_kb t
    local all=("${TDUMP_TOOLS[@]}" "${TLOAD_TOOLS[@]}")
    set_medians "${all[@]}"
    echo
    echo "tables benchmark: $TABLES tables x $ROWS rows, one secondary index each (db $DB)," \
        "threads $THREADS, chunk rows ${CHUNK_ROWS:-per tool default}, median of $RUNS run(s);" \
        "each load checked by CHECKSUM TABLE of every table against the source"
    echo "ferry: $FERRY_BIN ($("$FERRY_BIN" --version 2>/dev/null || echo '?'))"
    echo
    # shellcheck disable=SC2317 # called by print_tool_rows
    tables_rate() { awk -v n="$TABLES" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
    print_tool_rows TLABEL "tables/s" tables_rate "${all[@]}"

    local -A R=(
        [ferry_dump_vs_mydumper]="$(ratio "${MED[mydumper]:-}" "${MED[ferry]:-}")"
        [ferry_load_vs_myloader]="$(ratio "${MED[myloader]:-}" "${MED[ferry_load]:-}")"
        [ferry_load_nodefer_vs_myloader]="$(ratio "${MED[myloader]:-}" "${MED[ferry_load_nodefer]:-}")"
    )
    local ratio_order=(ferry_dump_vs_mydumper ferry_load_vs_myloader ferry_load_nodefer_vs_myloader)
    local -A RDESC=(
        [ferry_dump_vs_mydumper]="ferry dump vs mydumper|mydumper_s / ferry_s|goal >= 1.0"
        [ferry_load_vs_myloader]="ferry load vs myloader|myloader_s / ferry_load_s|goal >= 1.0"
        [ferry_load_nodefer_vs_myloader]="ferry load --defer-indexes false vs myloader|myloader_s / ferry_load_nodefer_s|"
    )
    print_ratios ferry 44 30 "${ratio_order[@]}"

    local json tj first=1
    json="{\"tables\":$TABLES,\"rows_per_table\":$ROWS,\"threads\":$THREADS"
    json+=",\"chunk_rows\":$(json_num "$CHUNK_ROWS"),\"runs\":$RUNS,\"tools\":{"
    for tool in "${all[@]}"; do
        ((first)) || json+=","
        first=0
        json+="$(tool_json_head "$tool")}"
    done
    json+="},\"ratios\":{$(ratios_json "${ratio_order[@]}")}"
    json+=",\"goals\":{\"ferry_dump_vs_mydumper\":1,\"ferry_load_vs_myloader\":1}}"
    echo
    echo "BENCH_TABLES_JSON $json"

    for tool in "${all[@]}"; do
        [[ -z "${FAILED[$tool]:-}" ]] || return 1
    done
}

# ==================================================================== main
CMD="${1:-}"
[[ -n "$CMD" ]] || usage
shift
case "$CMD" in
    dump) cmd_dump "$@" ;;
    load) cmd_load "$@" ;;
    catchup) cmd_catchup "$@" ;;
    tables) cmd_tables "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown subcommand: $CMD (expected dump, load, catchup or tables)"; usage ;;
esac
