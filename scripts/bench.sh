#!/usr/bin/env bash
# Benchmarks of ferry against the usual tools, on throwaway MariaDB servers
# (scripts/servers.sh) with a sysbench oltp dataset.
#
# Usage: scripts/bench.sh dump|load [options]
#        scripts/bench.sh catchup             (not implemented yet; exit 2)
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
# Options (both):
#   --tables N           sysbench tables (default 8)
#   --rows-per-table N   rows per table (default 250000; 8 x 250000 ~ 458 MB)
#   --threads N          dump/load threads, concurrent sessions (default 4)
#   --runs N             timed runs per tool; the median is reported (default 3)
#   --chunk-rows N       rows per chunk for ferry and mydumper
#                        (default rows-per-table / 4)
#   --ferry-bin PATH     use this ferry binary instead of building
#                        target/release/ferry
#   --workdir DIR        parent of the scratch dir (default <repo>/target;
#                        servers, data and dump outputs all live there)
#   --keep               keep the scratch dir (logs) at exit
#
# Installs sysbench, mydumper, mariadb-client and time with apt-get if missing.
# Exit status: 0 if every tool succeeded, 1 if one failed (its log tail is
# printed), 2 for usage errors.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib-bench.sh
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
        rm -rf -- "$BENCH_WORK/out" "$BENCH_WORK/servers"
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

# parse_opts SUBCOMMAND ARGS...: the options both benchmarks take; sets TABLES ROWS THREADS
# RUNS CHUNK_ROWS FERRY_BIN BENCH_PARENT.
parse_opts() {
    local sub="$1"; shift
    TABLES=8 ROWS=250000 THREADS=4 RUNS=3 CHUNK_ROWS="" FERRY_BIN=""
    BENCH_PARENT="$REPO_DIR/target"
    while (($#)); do
        case "$1" in
            --tables) posint "$1" "${2:-}"; TABLES="$2"; shift 2 ;;
            --rows-per-table) posint "$1" "${2:-}"; ROWS="$2"; shift 2 ;;
            --threads) posint "$1" "${2:-}"; THREADS="$2"; shift 2 ;;
            --runs) posint "$1" "${2:-}"; RUNS="$2"; shift 2 ;;
            --chunk-rows) posint "$1" "${2:-}"; CHUNK_ROWS="$2"; shift 2 ;;
            --ferry-bin) [[ -n "${2:-}" ]] || usage; FERRY_BIN="$(realpath -- "$2")"; shift 2 ;;
            --workdir) [[ -n "${2:-}" ]] || usage; BENCH_PARENT="$2"; shift 2 ;;
            --keep) BENCH_KEEP=1; shift ;;
            -h|--help) usage ;;
            *) log "unknown option for $sub: $1"; usage ;;
        esac
    done
    if [[ -z "$CHUNK_ROWS" ]]; then
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
                TIMES[$tool]+="$RUN_SECS "
                [[ -z "$RUN_RSS_KB" ]] || RSS[$tool]+="$RUN_RSS_KB "
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
    for tool in "${DUMP_TOOLS[@]}"; do
        [[ -z "${FAILED[$tool]:-}" && -n "${TIMES[$tool]:-}" ]] || continue
        # shellcheck disable=SC2086  # word-splitting the list of times
        MED[$tool]=$(median ${TIMES[$tool]})
    done
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
        rss_kb=""
        # shellcheck disable=SC2086
        [[ -z "${RSS[$tool]:-}" ]] || rss_kb=$(max_of ${RSS[$tool]})
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
        rss_kb=""
        # shellcheck disable=SC2086
        [[ -z "${RSS[$tool]:-}" ]] || rss_kb=$(max_of ${RSS[$tool]})
        tj=""
        [[ -z "${TIMES[$tool]:-}" ]] || tj=$(printf '%s' "${TIMES[$tool]% }" | tr ' ' ',')
        json+="\"$tool\":{\"ok\":$( [[ -z "${FAILED[$tool]:-}" ]] && echo true || echo false)"
        json+=",\"median_s\":$(json_num "${MED[$tool]:-}"),\"runs_s\":[${tj}]"
        mbs=$(mbps "$base" "${MED[$tool]:-}")
        json+=",\"mb_per_s\":$(json_num "${mbs#-}")"
        json+=",\"peak_rss_kb\":$(json_num "$rss_kb"),\"output_bytes\":$(json_num "${SIZE[$tool]:-}")}"
    done
    json+="},\"ratios\":{"
    first=1
    for t in "${ratio_order[@]}"; do
        ((first)) || json+=","
        first=0
        json+="\"$t\":$(json_num "${R[$t]:-}")"
    done
    json+="}}"
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
load_failed() {
    local tool="$1" run="$2" logf="$3"
    FAILED[$tool]="$4; log $logf"
    log "run $run/$RUNS ${LLABEL[$tool]} FAILED (${FAILED[$tool]}):"
    tail -n 20 -- "$logf" "$logf.stdout" 2>/dev/null | sed 's/^/    /' >&2 || true
    BENCH_KEEP=1
}

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
            TIMES[$tool]+="$RUN_SECS "
            [[ -z "$RUN_RSS_KB" ]] || RSS[$tool]+="$RUN_RSS_KB "
            log "run $run/$RUNS ${LLABEL[$tool]}: ${RUN_SECS}s"
        done
    done

    # 4. report
    local rss_kb t
    for tool in "${LOAD_TOOLS[@]}"; do
        [[ -z "${FAILED[$tool]:-}" && -n "${TIMES[$tool]:-}" ]] || continue
        # shellcheck disable=SC2086  # word-splitting the list of times
        MED[$tool]=$(median ${TIMES[$tool]})
    done
    echo
    echo "load benchmark: $TABLES tables x $ROWS rows (sysbench oltp, db $DB), threads $THREADS," \
        "chunk rows $CHUNK_ROWS, median of $RUNS run(s); the target writes a binlog"
    echo "dataset base for MB/s: $(mb "$base") = $base_name (MB = 10^6 bytes)"
    echo "ferry: $FERRY_BIN ($("$FERRY_BIN" --version 2>/dev/null || echo '?')), load method" \
        "(from its JSON summary): ${FERRY_METHOD[ferry]:-?}"
    echo
    printf '%-34s %9s %8s %11s  %s\n' tool "median s" "MB/s" "peak RSS" "runs (s)"
    for tool in "${LOAD_TOOLS[@]}"; do
        if [[ -n "${FAILED[$tool]:-}" ]]; then
            printf '%-34s FAILED: %s\n' "${LLABEL[$tool]}" "${FAILED[$tool]}"
            continue
        fi
        rss_kb=""
        # shellcheck disable=SC2086
        [[ -z "${RSS[$tool]:-}" ]] || rss_kb=$(max_of ${RSS[$tool]})
        printf '%-34s %9s %8s %11s  %s\n' "${LLABEL[$tool]}" "${MED[$tool]}" \
            "$(mbps "$base" "${MED[$tool]}")" "$(rss_h "$rss_kb")" "${TIMES[$tool]% }"
    done
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
    echo
    echo "speed ratios (> 1: the first is faster):"
    local d
    for t in "${ratio_order[@]}"; do
        d=${RDESC[$t]}
        printf '  %-38s %-32s %6s  %s\n' "${d%%|*}" "($(cut -d'|' -f2 <<<"$d"))" "${R[$t]:-n/a}" "${d##*|}"
    done

    # Machine-readable summary.
    local json tj first=1 mbs
    json="{\"tables\":$TABLES,\"rows_per_table\":$ROWS,\"threads\":$THREADS,\"chunk_rows\":$CHUNK_ROWS,\"runs\":$RUNS"
    json+=",\"dataset_bytes\":$(json_num "$base"),\"dataset_base\":\"$( [[ -z "${DUMP_FAILED[ferry]:-}" ]] && echo ferry_uncompressed || echo into_outfile)\""
    json+=",\"ferry_method\":$( [[ -n "${FERRY_METHOD[ferry]:-}" ]] && echo "\"${FERRY_METHOD[ferry]}\"" || echo null)"
    json+=",\"tools\":{"
    for tool in "${LOAD_TOOLS[@]}"; do
        ((first)) || json+=","
        first=0
        rss_kb=""
        # shellcheck disable=SC2086
        [[ -z "${RSS[$tool]:-}" ]] || rss_kb=$(max_of ${RSS[$tool]})
        tj=""
        [[ -z "${TIMES[$tool]:-}" ]] || tj=$(printf '%s' "${TIMES[$tool]% }" | tr ' ' ',')
        mbs=$(mbps "$base" "${MED[$tool]:-}")
        json+="\"$tool\":{\"ok\":$( [[ -z "${FAILED[$tool]:-}" ]] && echo true || echo false)"
        json+=",\"median_s\":$(json_num "${MED[$tool]:-}"),\"runs_s\":[${tj}],\"mb_per_s\":$(json_num "${mbs#-}")"
        json+=",\"peak_rss_kb\":$(json_num "$rss_kb")}"
    done
    json+="},\"ratios\":{"
    first=1
    for t in "${ratio_order[@]}"; do
        ((first)) || json+=","
        first=0
        json+="\"$t\":$(json_num "${R[$t]:-}")"
    done
    json+="},\"goals\":{\"ferry_vs_myloader\":2,\"ferry_vs_ceiling\":1}}"
    echo
    echo "BENCH_LOAD_JSON $json"

    for tool in "${LOAD_TOOLS[@]}"; do
        [[ -z "${FAILED[$tool]:-}" ]] || return 1
    done
}

# ===================================================== later subcommands
cmd_catchup() { echo "bench.sh catchup: not implemented yet" >&2; exit 2; }

# ==================================================================== main
CMD="${1:-}"
[[ -n "$CMD" ]] || usage
shift
case "$CMD" in
    dump) cmd_dump "$@" ;;
    load) cmd_load "$@" ;;
    catchup) cmd_catchup "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown subcommand: $CMD (expected dump, load or catchup)"; usage ;;
esac
