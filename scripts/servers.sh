#!/usr/bin/env bash
# Throwaway MariaDB "source" and "target" servers for ferry's tests.
#
# Usage: scripts/servers.sh start|stop|env|status [--dir DIR] [--owner-pid PID]
#
#   start   Create (mariadb-install-db) and start both servers on free
#           127.0.0.1 ports, create the `ferry` user on both, write DIR/env.
#           A no-op (exit 0, no output) if both are already up and healthy.
#   stop    Shut both servers down and delete everything this script put in
#           DIR (DIR itself is removed when it ends up empty).
#   env     Print DIR/env: `eval "$(scripts/servers.sh env)"`.
#   status  Report whether each server is up; exit 0 only if both are.
#
#   --dir DIR        State directory (default: ${FERRY_SANDBOX_DIR:-<repo>/.sandbox/db}).
#   --owner-pid PID  (start) Also spawn a detached watchdog that runs `stop`
#                    for DIR as soon as process PID no longer exists.
#
# DIR/env exports FERRY_TEST_{SOURCE,TARGET}_{URL,SOCKET,PORT},
# FERRY_TEST_PASSWORD_FILE, FERRY_SANDBOX_DIR and (with openssl) FERRY_TEST_SSL_CA, the CA
# of the servers' TLS certificate. root has an empty password
# (root@localhost / root@127.0.0.1); ferry@{%,localhost,127.0.0.1} has the
# password stored in DIR/password (mode 600, never printed).
set -euo pipefail

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO_DIR="$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)"
# mariadbd lives in /usr/sbin, which is not always on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

readonly SERVERS=(source target)
readonly STARTUP_TIMEOUT=60   # seconds to wait for `SELECT 1`
readonly SHUTDOWN_TIMEOUT=30  # seconds to wait for a server to exit
readonly MARKER=.ferry-mariadb-sandbox

die() { echo "servers.sh: $*" >&2; exit 1; }
log() { echo "servers.sh: $*" >&2; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH" >&2
    exit 2
}

# ---------------------------------------------------------------- arguments
CMD="${1:-}"
[[ -n "$CMD" ]] || usage
shift
DIR="${FERRY_SANDBOX_DIR:-$REPO_DIR/.sandbox/db}"
OWNER_PID=""
while (($#)); do
    case "$1" in
        --dir) [[ $# -ge 2 ]] || usage; DIR="$2"; shift 2 ;;
        --dir=*) DIR="${1#--dir=}"; shift ;;
        --owner-pid) [[ $# -ge 2 ]] || usage; OWNER_PID="$2"; shift 2 ;;
        --owner-pid=*) OWNER_PID="${1#--owner-pid=}"; shift ;;
        -h|--help) usage ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ -z "$OWNER_PID" || "$OWNER_PID" =~ ^[0-9]+$ ]] || die "--owner-pid must be a number"
# Absolute path, without requiring the directory to exist yet.
DIR="$(realpath -m -- "$DIR")"

ENV_FILE="$DIR/env"
PASSWORD_FILE="$DIR/password"

# Serialise start/stop for one state dir (several test processes may race).
# The lock file lives outside DIR because `stop` deletes DIR.
take_lock() {
    local lock
    lock="${TMPDIR:-/tmp}/ferry-servers-$(printf '%s' "$DIR" | md5sum | cut -c1-16).lock"
    exec 9>"$lock"
    flock 9
}

# ------------------------------------------------------------------ helpers
sock_of() { echo "$DIR/$1.sock"; }
pidfile_of() { echo "$DIR/$1.pid"; }
cnf_of() { echo "$DIR/$1.cnf"; }
log_of() { echo "$DIR/$1.err"; }
datadir_of() { echo "$DIR/$1"; }
tmpdir_of() { echo "$DIR/$1-tmp"; }

# True if process $1 exists and is not a zombie.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    # Field 3 of /proc/PID/stat, after the parenthesised command name.
    state="$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != Z ]]
}

# PID of a running server, or nothing.
server_pid() {
    local pf pid
    pf="$(pidfile_of "$1")"
    [[ -s "$pf" ]] || return 0
    pid="$(<"$pf")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then
        echo "$pid"
    fi
}

# Run a client command against a server's socket as root (empty password).
client() {
    local name="$1"; shift
    mariadb --no-defaults --protocol=socket -S "$(sock_of "$name")" -uroot \
        --connect-timeout=2 "$@"
}

server_healthy() {
    [[ -n "$(server_pid "$1")" ]] && client "$1" -Nse 'SELECT 1' >/dev/null 2>&1
}

# True if nothing is bound to / listening on 127.0.0.1:$1.
port_free() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.close()
PY
    else
        # Nobody accepts connections on it (weaker than a bind test).
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
    fi
}

# Print a free port in 10000..29999 that is not in the arguments.
pick_port() {
    local port taken
    for _ in $(seq 200); do
        port=$((10000 + RANDOM % 20000))
        for taken in "$@"; do [[ "$port" != "$taken" ]] || continue 2; done
        if port_free "$port"; then echo "$port"; return 0; fi
    done
    die "could not find a free TCP port"
}

ensure_mariadb_installed() {
    command -v mariadbd >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 \
        && command -v mariadb >/dev/null 2>&1 && return 0
    log "MariaDB not found; installing mariadb-server and mariadb-client"
    [[ $EUID -eq 0 ]] || die "need root to apt-get install mariadb-server"
    # No server is installed yet, so keep apt from auto-starting the packaged
    # service (policy-rc.d) rather than stopping anything afterwards.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        apt-get -o DPkg::Lock::Timeout=300 update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
                install -y -qq mariadb-server mariadb-client
    } >&2 || rc=$?
    [[ -z "$added_policy" ]] || rm -f "$policy"
    [[ $rc -eq 0 ]] || die "apt-get install mariadb-server failed"
}

# A throwaway CA and a server certificate for 127.0.0.1/localhost, so TLS connections can be
# tested (DIR/tls/ca.pem is what clients verify against). Skipped when openssl is missing.
ensure_tls() {
    local tls="$DIR/tls"
    [[ -s "$tls/server-key.pem" ]] && return 0
    command -v openssl >/dev/null || { log "openssl not found: servers start without TLS"; return 0; }
    mkdir -p -- "$tls"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ferry sandbox CA" \
            -keyout "$tls/ca-key.pem" -out "$tls/ca.pem"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$tls/server-key.pem" -out "$tls/server.csr"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$tls/ext.cnf"
        openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
            -CAcreateserial -days 3650 -extfile "$tls/ext.cnf" -out "$tls/server-cert.pem"
    } >/dev/null 2>&1 || { log "could not create TLS certificates: servers start without TLS"; rm -rf -- "$tls"; }
}

# The [mysqld] TLS lines, when certificates exist.
tls_cnf() {
    local tls="$DIR/tls"
    [[ -s "$tls/server-cert.pem" ]] || return 0
    printf 'ssl-ca                         = %s\nssl-cert                       = %s\nssl-key                        = %s\n' \
        "$tls/ca.pem" "$tls/server-cert.pem" "$tls/server-key.pem"
}

# Write the option file for one server. $1=name $2=server-id $3=port
write_cnf() {
    local name="$1" id="$2" port="$3"
    cat >"$(cnf_of "$name")" <<EOF
# Generated by scripts/servers.sh for the ferry test sandbox ($name).
[mysqld]
user                           = root
datadir                        = $(datadir_of "$name")
socket                         = $(sock_of "$name")
pid-file                       = $(pidfile_of "$name")
log-error                      = $(log_of "$name")
# Private tmpdir: servers sharing /tmp can collide on temp-table names.
tmpdir                         = $(tmpdir_of "$name")
port                           = $port
bind-address                   = 127.0.0.1
skip-name-resolve
server-id                      = $id
# Binary log (in the datadir), row-based with full images and metadata.
log-bin                        = mysql-bin
binlog_format                  = ROW
binlog_row_image               = FULL
binlog_row_metadata            = FULL
gtid_domain_id                 = 0
gtid_strict_mode               = 1
log_slave_updates              = 1
sync_binlog                    = 0
local_infile                   = 1
secure_file_priv               = ""
max_connections                = 500
max_allowed_packet             = 256M
character-set-server           = utf8mb4
collation-server               = utf8mb4_general_ci
innodb_buffer_pool_size        = 512M
innodb_log_file_size           = 256M
innodb_flush_log_at_trx_commit = 2
# Throwaway data: favour speed of startup, shutdown and writes.
innodb_doublewrite             = 0
innodb_buffer_pool_load_at_startup = 0
innodb_buffer_pool_dump_at_shutdown = 0
$(tls_cnf)
EOF
}

# Initialise (once) and launch one server in the background, then wait for
# it to answer. Retries with another port if the chosen one got taken.
# $1=name $2=server-id $3=initial port. Prints the final port on success.
start_one() {
    local name="$1" id="$2" port="$3" datadir pid attempt
    datadir="$(datadir_of "$name")"
    mkdir -p -- "$(tmpdir_of "$name")"
    if [[ ! -d "$datadir/mysql" ]]; then
        rm -rf -- "$datadir"
        # Own tmpdir: parallel bootstraps sharing /tmp fail randomly
        # ("Unknown table 'mysql.tmp_user_sys'").
        if ! mariadb-install-db --no-defaults --user=root --datadir="$datadir" \
            --tmpdir="$(tmpdir_of "$name")" \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$DIR/$name-install.log" 2>&1 9>&-; then
            log "$name: mariadb-install-db failed:"
            head -n 20 "$DIR/$name-install.log" >&2
            return 1
        fi
    fi
    for attempt in 1 2 3; do
        write_cnf "$name" "$id" "$port"
        : >"$(log_of "$name")"
        rm -f -- "$(pidfile_of "$name")"
        # New session: survives the caller's process group being signalled.
        # fd 9 (the lock) must not leak into the long-lived server.
        setsid mariadbd --defaults-file="$(cnf_of "$name")" \
            </dev/null >>"$(log_of "$name")" 2>&1 9>&- &
        pid=$!
        local deadline=$((SECONDS + STARTUP_TIMEOUT))
        while ((SECONDS < deadline)); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if client "$name" -Nse 'SELECT 1' >/dev/null 2>&1; then
                echo "$pid" >"$(pidfile_of "$name")"
                echo "$port"
                return 0
            fi
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name: not answering SELECT 1 after ${STARTUP_TIMEOUT}s"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        wait "$pid" 2>/dev/null || true
        if grep -qiE 'Bind on TCP/IP port|Address already in use' "$(log_of "$name")" \
            && ((attempt < 3)); then
            log "$name: port $port was taken, retrying with another one"
            port="$(pick_port "$port")"
            continue
        fi
        log "$name: mariadbd exited during startup"
        break
    done
    log "$name: tail of $(log_of "$name"):"
    tail -n 30 "$(log_of "$name")" >&2
    return 1
}

# Stop one server: clean shutdown via its socket, then signals.
stop_one() {
    local name="$1" pid deadline
    pid="$(server_pid "$name")"
    [[ -n "$pid" ]] || return 0
    mariadb-admin --no-defaults --protocol=socket -S "$(sock_of "$name")" -uroot \
        --connect-timeout=2 --shutdown-timeout="$SHUTDOWN_TIMEOUT" shutdown \
        >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + SHUTDOWN_TIMEOUT))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "$name: still running after ${SHUTDOWN_TIMEOUT}s; killing pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
        fi
        sleep 0.1
    done
}

# Remove everything this script created in DIR, then DIR if it is empty
# (other tools, e.g. scripts/s3.sh, may keep their own state inside it).
clean_dir() {
    [[ -d "$DIR" ]] || return 0
    local name
    for name in "${SERVERS[@]}"; do
        rm -rf -- "$(datadir_of "$name")" "$(tmpdir_of "$name")" "$(sock_of "$name")" "$(sock_of "$name").lock" \
            "$(pidfile_of "$name")" "$(cnf_of "$name")" "$(log_of "$name")" \
            "$DIR/$name-install.log"
    done
    rm -rf -- "$DIR/tls"
    rm -f -- "$ENV_FILE" "$PASSWORD_FILE" "$DIR/$MARKER"
    rmdir -- "$DIR" 2>/dev/null || true
}

# Create/refresh ferry@{%,localhost,127.0.0.1} with ALL PRIVILEGES. The SQL
# (containing the password) goes through stdin, never argv. sql_log_bin=0
# keeps the source's binlog free of these account changes.
create_ferry_user() {
    local name="$1" pw host
    pw="$(<"$PASSWORD_FILE")"
    {
        echo "SET SESSION sql_log_bin = 0;"
        for host in '%' localhost 127.0.0.1; do
            printf "CREATE USER IF NOT EXISTS 'ferry'@'%s' IDENTIFIED BY '%s';\n" "$host" "$pw"
            printf "ALTER USER 'ferry'@'%s' IDENTIFIED BY '%s';\n" "$host" "$pw"
            printf "GRANT ALL PRIVILEGES ON *.* TO 'ferry'@'%s' WITH GRANT OPTION;\n" "$host"
        done
        echo "FLUSH PRIVILEGES;"
    } | client "$name"
}

ensure_password() {
    if [[ ! -s "$PASSWORD_FILE" ]]; then
        (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$PASSWORD_FILE")
    fi
    chmod 600 "$PASSWORD_FILE"
}

write_env() {
    local src_port="$1" tgt_port="$2" tmp="$ENV_FILE.tmp"
    {
        echo "# Generated by scripts/servers.sh; eval \"\$(scripts/servers.sh env)\""
        printf 'export %s=%q\n' \
            FERRY_TEST_SOURCE_URL "mysql://root@127.0.0.1:$src_port" \
            FERRY_TEST_TARGET_URL "mysql://root@127.0.0.1:$tgt_port" \
            FERRY_TEST_SOURCE_SOCKET "$(sock_of source)" \
            FERRY_TEST_TARGET_SOCKET "$(sock_of target)" \
            FERRY_TEST_SOURCE_PORT "$src_port" \
            FERRY_TEST_TARGET_PORT "$tgt_port" \
            FERRY_TEST_PASSWORD_FILE "$PASSWORD_FILE" \
            FERRY_SANDBOX_DIR "$DIR"
        if [[ -s "$DIR/tls/ca.pem" ]]; then
            printf 'export %s=%q\n' FERRY_TEST_SSL_CA "$DIR/tls/ca.pem"
        fi
    } >"$tmp"
    mv -f -- "$tmp" "$ENV_FILE"
}

# Detached watchdog: stop this sandbox once OWNER_PID is gone. Exits early
# if the sandbox disappears (someone else stopped it).
spawn_watchdog() {
    local owner="$1"
    kill -0 "$owner" 2>/dev/null || die "--owner-pid $owner: no such process"
    (
        cd /
        # shellcheck disable=SC2016  # expanded by the inner bash
        exec setsid bash -c '
            owner=$1 script=$2 dir=$3 marker=$4
            # Zombies count as gone.
            while kill -0 "$owner" 2>/dev/null &&
                [[ "$(sed -n "s/^.*) \(.\).*/\1/p" "/proc/$owner/stat" 2>/dev/null)" != Z ]]; do
                [[ -e "$dir/$marker" ]] || exit 0
                sleep 1
            done
            exec "$script" stop --dir "$dir"
        ' ferry-servers-watchdog "$owner" "$SCRIPT_PATH" "$DIR" "$MARKER"
    ) </dev/null >/dev/null 2>&1 9>&- &
}

# ----------------------------------------------------------------- commands
cmd_start() {
    take_lock
    if [[ -e "$DIR/$MARKER" ]]; then
        if [[ -s "$ENV_FILE" ]] && server_healthy source && server_healthy target; then
            [[ -z "$OWNER_PID" ]] || spawn_watchdog "$OWNER_PID"
            return 0
        fi
        log "stale or unhealthy sandbox in $DIR; recreating it"
        stop_one source
        stop_one target
        clean_dir
    elif [[ -d "$DIR" && -n "$(ls -A -- "$DIR")" ]]; then
        # Only the s3.sh sub-directory may already live here.
        local entry
        for entry in "$DIR"/* "$DIR"/.[!.]*; do
            [[ -e "$entry" ]] || continue
            [[ "$(basename -- "$entry")" == s3 ]] && continue
            die "$DIR exists and is not a ferry sandbox (found $entry); refusing to use it"
        done
    fi
    ensure_mariadb_installed
    mkdir -p -- "$DIR"
    : >"$DIR/$MARKER"
    ensure_password
    ensure_tls

    local src_port tgt_port
    src_port="$(pick_port)"
    tgt_port="$(pick_port "$src_port")"

    # Initialise and start both servers in parallel.
    start_one source 1 "$src_port" >"$DIR/source.port" &
    local src_job=$!
    start_one target 2 "$tgt_port" >"$DIR/target.port" &
    local tgt_job=$!
    local ok=1
    wait "$src_job" || ok=0
    wait "$tgt_job" || ok=0
    src_port="$(cat "$DIR/source.port")"
    tgt_port="$(cat "$DIR/target.port")"
    rm -f -- "$DIR/source.port" "$DIR/target.port"
    if ((ok)); then
        if ! create_ferry_user source || ! create_ferry_user target; then
            log "could not create the ferry user"
            ok=0
        fi
    fi
    if ((!ok)); then
        stop_one source
        stop_one target
        clean_dir
        die "start failed"
    fi
    write_env "$src_port" "$tgt_port"
    [[ -z "$OWNER_PID" ]] || spawn_watchdog "$OWNER_PID"
}

cmd_stop() {
    take_lock
    # Shut both down in parallel.
    stop_one source &
    local src_job=$!
    stop_one target &
    local tgt_job=$!
    wait "$src_job" || true
    wait "$tgt_job" || true
    clean_dir
}

cmd_env() {
    [[ -s "$ENV_FILE" ]] || die "no sandbox running in $DIR (run: $0 start)"
    cat -- "$ENV_FILE"
}

cmd_status() {
    local name pid port rc=0
    for name in "${SERVERS[@]}"; do
        pid="$(server_pid "$name")"
        port="$(sed -n 's/^port *= *//p' "$(cnf_of "$name")" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && server_healthy "$name"; then
            echo "$name: up (pid $pid, 127.0.0.1:$port, socket $(sock_of "$name"))"
        elif [[ -n "$pid" ]]; then
            echo "$name: running but not answering (pid $pid)"
            rc=1
        else
            echo "$name: down"
            rc=1
        fi
    done
    return "$rc"
}

case "$CMD" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    -h|--help|help) usage ;;
    *) die "unknown command: $CMD (expected start|stop|env|status)" ;;
esac
