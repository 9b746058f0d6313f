# shellcheck shell=bash
# shellcheck disable=SC2034  # BENCH_*/RUN_* results are read by bench.sh
# Helpers for scripts/bench.sh: tools, throwaway servers, the sysbench
# dataset, timing and statistics. Sourced, never run. Shared by every bench
# subcommand (dump now; load and catchup later).
#
# Expects REPO_DIR to be set by the caller.

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin"

log() { echo "bench.sh: $*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------------- tools
BENCH_APT_UPDATED=0

# need_pkg COMMAND PACKAGE...: apt-get install PACKAGE... unless COMMAND exists.
need_pkg() {
    local cmd="$1"; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    [[ $EUID -eq 0 ]] || die "$cmd is missing and installing it ($*) needs root"
    if ((BENCH_APT_UPDATED == 0)); then
        apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
        BENCH_APT_UPDATED=1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y -qq "$@" >&2
}

# Absolute path of GNU time (peak RSS); installs it if missing.
GNU_TIME=/usr/bin/time
ensure_gnu_time() {
    [[ -x "$GNU_TIME" ]] && return 0
    need_pkg /usr/bin/time time
    [[ -x "$GNU_TIME" ]] || die "/usr/bin/time still missing after installing 'time'"
}

# build_ferry: release build; sets FERRY_BIN. An explicit FERRY_BIN (set by
# --ferry-bin) skips the build.
build_ferry() {
    if [[ -n "${FERRY_BIN:-}" ]]; then
        [[ -x "$FERRY_BIN" ]] || die "ferry binary $FERRY_BIN is not executable"
        log "using ferry binary $FERRY_BIN (no build)"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust first"
    log "scripts/build-release.sh (cargo build --release --bin ferry, debug info split off)"
    bash "$REPO_DIR/scripts/build-release.sh" >&2 || die "scripts/build-release.sh failed"
    FERRY_BIN="$REPO_DIR/target/release/ferry"
    [[ -x "$FERRY_BIN" ]] || die "no binary at $FERRY_BIN after the build"
}

# ----------------------------------------------------------------- servers
# start_servers DIR: throwaway source+target servers (scripts/servers.sh),
# stopped by the watchdog if this shell dies; loads DIR/env.
BENCH_SERVERS_DIR=""
start_servers() {
    BENCH_SERVERS_DIR="$1"
    log "starting throwaway servers in $BENCH_SERVERS_DIR"
    "$REPO_DIR/scripts/servers.sh" start --dir "$BENCH_SERVERS_DIR" --owner-pid "$$" >&2 \
        || die "scripts/servers.sh start failed"
    # shellcheck disable=SC1091  # generated at run time
    source "$BENCH_SERVERS_DIR/env"
    : "${FERRY_TEST_SOURCE_PORT:?servers.sh env has no FERRY_TEST_SOURCE_PORT}"
}

stop_servers() {
    [[ -n "$BENCH_SERVERS_DIR" ]] || return 0
    "$REPO_DIR/scripts/servers.sh" stop --dir "$BENCH_SERVERS_DIR" >/dev/null 2>&1 || true
    BENCH_SERVERS_DIR=""
}

# src_sql ARGS...: the mariadb client against the source, over TCP as root.
src_sql() {
    mariadb --no-defaults -h127.0.0.1 -P"$FERRY_TEST_SOURCE_PORT" -uroot "$@"
}

# tgt_sql ARGS...: the mariadb client against the target, over TCP as root.
tgt_sql() {
    mariadb --no-defaults -h127.0.0.1 -P"$FERRY_TEST_TARGET_PORT" -uroot "$@"
}

# ------------------------------------------------------------------ dataset
# prepare_sysbench DB TABLES ROWS: sysbench oltp tables DB.sbtest1..N.
prepare_sysbench() {
    local db="$1" tables="$2" rows="$3" t0
    src_sql -e "CREATE DATABASE IF NOT EXISTS \`$db\`"
    log "sysbench prepare: $tables tables x $rows rows into $db"
    t0=$(now)
    sysbench oltp_read_only --mysql-host=127.0.0.1 --mysql-port="$FERRY_TEST_SOURCE_PORT" \
        --mysql-user=root --mysql-db="$db" --tables="$tables" --table-size="$rows" \
        --threads=2 prepare >"$BENCH_LOG_DIR/sysbench-prepare.log" 2>&1 \
        || { tail -n 20 "$BENCH_LOG_DIR/sysbench-prepare.log" >&2; die "sysbench prepare failed"; }
    log "sysbench prepare took $(elapsed "$t0")s"
}

# print_tool_rows LABELS RATE_NAME RATE_FN TOOL...: one line per tool (median, rate, peak RSS,
# the runs) or why it failed; LABELS names the associative array of the tools' labels, RATE_FN
# prints the rate of a median given in seconds.
print_tool_rows() {
    local -n labels="$1"
    local rate_name="$2" rate_fn="$3" tool
    shift 3
    printf '%-34s %9s %8s %11s  %s\n' tool "median s" "$rate_name" "peak RSS" "runs (s)"
    for tool in "$@"; do
        if [[ -n "${FAILED[$tool]:-}" ]]; then
            printf '%-34s FAILED: %s\n' "${labels[$tool]}" "${FAILED[$tool]}"
            continue
        fi
        printf '%-34s %9s %8s %11s  %s\n' "${labels[$tool]}" "${MED[$tool]}" \
            "$("$rate_fn" "${MED[$tool]}")" "$(rss_h "$(peak_rss_kb "$tool")")" "${TIMES[$tool]% }"
    done
}

# tool_json_head TOOL: `"TOOL":{"ok":…,"median_s":…,"runs_s":[…],"peak_rss_kb":…` — a tool's
# entry in the JSON summary, left open for the fields of its benchmark.
tool_json_head() {
    local tool="$1" ok=true
    [[ -z "${FAILED[$tool]:-}" ]] || ok=false
    printf '"%s":{"ok":%s,"median_s":%s,"runs_s":[%s],"peak_rss_kb":%s' "$tool" "$ok" \
        "$(json_num "${MED[$tool]:-}")" "$(runs_csv "$tool")" "$(json_num "$(peak_rss_kb "$tool")")"
}

# print_ratios WHO W1 W2 NAME...: "speed ratios (> 1: WHO is faster)", then one line per ratio
# NAME from the caller's R (values) and RDESC ("label|formula|note"), in columns W1 and W2 wide.
print_ratios() {
    local who="$1" w1="$2" w2="$3" t d
    shift 3
    echo
    echo "speed ratios (> 1: $who is faster):"
    for t in "$@"; do
        d=${RDESC[$t]}
        printf "  %-${w1}s %-${w2}s %6s  %s\n" "${d%%|*}" "($(cut -d'|' -f2 <<<"$d"))" "${R[$t]:-n/a}" "${d##*|}"
    done
}

# prepare_tenants DB TABLES ROWS: the shape of a multi-tenant schema, DB.t00001..tN, each
# with a primary key, one secondary index and ROWS rows; four client sessions create them.
prepare_tenants() {
    local db="$1" tables="$2" rows="$3" t0 s pids=() rc=0
    log "creating $tables tables x $rows rows (one secondary index each) in $db"
    t0=$(now)
    src_sql -e "CREATE DATABASE IF NOT EXISTS \`$db\`" || die "CREATE DATABASE $db failed"
    for ((s = 0; s < 4; s++)); do
        awk -v db="$db" -v n="$tables" -v rows="$rows" -v s="$s" 'BEGIN {
            printf "USE `%s`;\n", db
            for (t = 1 + s; t <= n; t += 4) {
                name = sprintf("t%05d", t)
                printf "CREATE TABLE `%s` (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,", name
                printf " tenant INT NOT NULL, name VARCHAR(64) NOT NULL, created DATETIME NOT NULL,"
                printf " KEY by_tenant_name (tenant, name)) ENGINE=InnoDB;\n"
                if (rows > 0) {
                    printf "INSERT INTO `%s` (tenant, name, created) VALUES ", name
                    for (r = 1; r <= rows; r++)
                        printf "%s(%d, '\''user-%d-%d'\'', '\''2024-01-%02d 10:00:%02d'\'')", (r > 1 ? "," : ""), t, t, r, r % 28 + 1, r % 60
                    printf ";\n"
                }
            }
        }' | src_sql &
        pids+=($!)
    done
    for s in "${pids[@]}"; do wait "$s" || rc=$?; done
    ((rc == 0)) || die "creating the $tables tables in $db failed"
    log "created $tables tables in $(elapsed "$t0")s"
}

# checksum_all CLIENT DB: CHECKSUM TABLE of every base table of DB as the source lists them,
# one "table<TAB>checksum" line each (a table missing on CLIENT's server fails the statement).
checksum_all() {
    local client="$1" db="$2" list
    list=$(src_sql -Nse "SELECT GROUP_CONCAT(CONCAT('\`', TABLE_SCHEMA, '\`.\`', TABLE_NAME, '\`')
                             ORDER BY TABLE_NAME SEPARATOR ', ')
                         FROM information_schema.TABLES
                         WHERE TABLE_SCHEMA = '$db' AND TABLE_TYPE = 'BASE TABLE'" \
        --init-command='SET SESSION group_concat_max_len = 67108864') || return 1
    [[ -n "$list" && "$list" != NULL ]] || return 1
    "$client" -Nse "CHECKSUM TABLE $list"
}

# On-disk InnoDB bytes (data + indexes) of database $1.
db_disk_bytes() {
    src_sql -Nse "SELECT COALESCE(SUM(data_length + index_length), 0)
                  FROM information_schema.tables WHERE table_schema = '$1'"
}

# fit_buffer_pool DB: grow the source's buffer pool at run time (servers.sh
# has a fixed 512M and no knob) so DB fits with room to spare. Never shrinks;
# capped at half of MemAvailable. Sets BENCH_POOL_BYTES and BENCH_POOL_NOTE.
BENCH_POOL_BYTES=0
BENCH_POOL_NOTE=""
fit_buffer_pool() {
    local db="$1" need pool want avail cap chunk=$((128 * 1024 * 1024)) status i
    need=$(db_disk_bytes "$db")
    pool=$(src_sql -Nse 'SELECT @@innodb_buffer_pool_size')
    BENCH_POOL_BYTES=$pool
    # 25% headroom for the other pages (dictionary, undo, adaptive hash).
    if ((need * 5 / 4 <= pool)); then
        BENCH_POOL_NOTE="dataset $(mib "$need") MiB on disk fits the $(mib "$pool") MiB buffer pool"
        return 0
    fi
    want=$(((need * 3 / 2 + chunk - 1) / chunk * chunk))
    avail=$(awk '/^MemAvailable:/ {print $2 * 1024}' /proc/meminfo)
    cap=$((avail / 2 / chunk * chunk))
    ((want <= cap)) || want=$cap
    if ((want <= pool)); then
        BENCH_POOL_NOTE="dataset $(mib "$need") MiB on disk EXCEEDS the $(mib "$pool") MiB buffer pool (not enough memory to grow it): reads may hit disk"
        log "$BENCH_POOL_NOTE"
        return 0
    fi
    log "dataset is $(mib "$need") MiB on disk; growing innodb_buffer_pool_size $(mib "$pool") -> $(mib "$want") MiB"
    src_sql -e "SET GLOBAL innodb_buffer_pool_size = $want"
    # The resize runs in the background; wait for it.
    for ((i = 0; i < 600; i++)); do
        pool=$(src_sql -Nse 'SELECT @@innodb_buffer_pool_size')
        status=$(src_sql -Nse "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'" | cut -f2)
        if ((pool == want)) && [[ "$status" != *[Rr]esiz* || "$status" == *[Cc]omplet* ]]; then
            break
        fi
        sleep 0.2
    done
    BENCH_POOL_BYTES=$pool
    if ((pool >= need * 5 / 4)); then
        BENCH_POOL_NOTE="dataset $(mib "$need") MiB on disk; buffer pool grown at run time from servers.sh's 512 MiB to $(mib "$pool") MiB"
    else
        BENCH_POOL_NOTE="dataset $(mib "$need") MiB on disk EXCEEDS the $(mib "$pool") MiB buffer pool: reads may hit disk"
        log "$BENCH_POOL_NOTE"
    fi
}

# settle_innodb: wait (up to 120 s) until InnoDB has written its dirty pages, so background
# flushing left over from preparing the data does not land in any tool's timing.
# settle_innodb [CLIENT]: CLIENT is src_sql (default) or tgt_sql.
settle_innodb() {
    local dirty i client="${1:-src_sql}"
    "$client" -e "SET GLOBAL innodb_max_dirty_pages_pct = 0, GLOBAL innodb_max_dirty_pages_pct_lwm = 0" || true
    for ((i = 0; i < 240; i++)); do
        dirty=$("$client" -N -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
        [[ "$dirty" =~ ^[0-9]+$ && "$dirty" -lt 64 ]] && break
        sleep 0.5
    done
    sync
    log "InnoDB dirty pages before timing: ${dirty:-?}"
}

# warm_up DB TABLES: one untimed full read of each table's clustered index
# (a plain COUNT(*) would scan the smaller secondary index instead).
warm_up() {
    local db="$1" tables="$2" k sql=""
    for ((k = 1; k <= tables; k++)); do
        sql+="SELECT COUNT(*) FROM \`$db\`.sbtest$k FORCE INDEX (PRIMARY);"
    done
    src_sql -Nse "$sql" >/dev/null
}

# ------------------------------------------------------------------ timing
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

# run_timed LOG STDOUT CMD...: run CMD with stderr to LOG and stdout to
# STDOUT; sets RUN_SECS (wall, from date +%s.%N) and RUN_RSS_KB (peak RSS
# from GNU time). Returns CMD's exit status.
RUN_SECS=""
RUN_RSS_KB=""
run_timed() {
    local logf="$1" outf="$2" rssf t0 rc=0
    shift 2
    rssf="$logf.rss"
    rm -f -- "$rssf"
    t0=$(now)
    "$GNU_TIME" -f '%M' -o "$rssf" "$@" >"$outf" 2>"$logf" || rc=$?
    RUN_SECS=$(elapsed "$t0")
    RUN_RSS_KB=$(tail -n 1 "$rssf" 2>/dev/null || true)
    [[ "$RUN_RSS_KB" =~ ^[0-9]+$ ]] || RUN_RSS_KB=""
    return "$rc"
}

# Bytes under a file or directory.
bytes_of() { du -sb -- "$1" | cut -f1; }

# median N...: median of the numbers (mean of the middle two if even).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) exit 1
              if (NR % 2) printf "%.3f\n", a[(NR + 1) / 2]
              else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# max N...
max_of() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# ratio A B: A / B with 2 decimals, or empty if either is missing/zero.
ratio() {
    [[ -n "$1" && -n "$2" ]] || return 0
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}

# json_num X: X, or null if empty.
json_num() { if [[ -n "$1" ]]; then printf '%s' "$1"; else printf 'null'; fi; }
