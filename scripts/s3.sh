#!/usr/bin/env bash
# Throwaway S3-protocol server (moto) for ferry's tests.
#
# Usage: scripts/s3.sh start|stop|env|status [--dir DIR] [--owner-pid PID]
#
#   start   Start moto's server on a free 127.0.0.1 port, create the bucket
#           `ferry-test`, write DIR/env. A no-op (exit 0, no output) if it
#           is already up. The server is moto[server]==5.2.6 in a virtualenv
#           of its own (FERRY_MOTO_VENV, default ~/.cache/ferry/moto-5.2.6),
#           created on first use (apt-get installs python3-venv if needed).
#   stop    Stop the server and delete DIR.
#   env     Print DIR/env: `eval "$(scripts/s3.sh env)"`.
#   status  Report whether the server is up; exit 0 only if it is.
#
#   --dir DIR        State directory (default: ${FERRY_S3_SANDBOX_DIR:-<repo>/.sandbox/s3}).
#   --owner-pid PID  (start) Also spawn a detached watchdog that runs `stop`
#                    for DIR as soon as process PID no longer exists.
#
# DIR/env exports AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test,
# AWS_REGION=us-east-1 (and AWS_DEFAULT_REGION), FERRY_TEST_S3_ENDPOINT
# (http://127.0.0.1:PORT; use path-style addressing), FERRY_TEST_S3_BUCKET and
# FERRY_TEST_S3_LOG (the server's request log: one line per request, with its status).
set -euo pipefail

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO_DIR="$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)"

readonly BUCKET=ferry-test
readonly REGION=us-east-1
readonly STARTUP_TIMEOUT=30   # seconds to wait for the server to answer
readonly MARKER=.ferry-s3-sandbox
# The S3 server is moto at this version, in a virtualenv of the project's own (5.2.6 answers
# CompleteMultipartUpload with `CompleteMultipartUploadResult`, as S3 does).
readonly MOTO_VERSION=5.2.6
VENV_DIR="${FERRY_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/moto-$MOTO_VERSION}"
readonly VENV_STAMP=.ferry-complete

die() { echo "s3.sh: $*" >&2; exit 1; }
log() { echo "s3.sh: $*" >&2; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT_PATH" >&2
    exit 2
}

# ---------------------------------------------------------------- arguments
CMD="${1:-}"
[[ -n "$CMD" ]] || usage
shift
DIR="${FERRY_S3_SANDBOX_DIR:-$REPO_DIR/.sandbox/s3}"
DIR_GIVEN=""
OWNER_PID=""
while (($#)); do
    case "$1" in
        --dir) [[ $# -ge 2 ]] || usage; DIR="$2"; DIR_GIVEN=1; shift 2 ;;
        --dir=*) DIR="${1#--dir=}"; DIR_GIVEN=1; shift ;;
        --owner-pid) [[ $# -ge 2 ]] || usage; OWNER_PID="$2"; shift 2 ;;
        --owner-pid=*) OWNER_PID="${1#--owner-pid=}"; shift ;;
        -h|--help) usage ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ -z "$OWNER_PID" || "$OWNER_PID" =~ ^[0-9]+$ ]] || die "--owner-pid must be a number"
DIR="$(realpath -m -- "$DIR")"

ENV_FILE="$DIR/env"
PID_FILE="$DIR/moto.pid"
PORT_FILE="$DIR/port"
LOG_FILE="$DIR/moto.log"

# Serialise start/stop for one state dir; the lock lives outside DIR
# because `stop` deletes DIR.
take_lock() {
    local lock
    lock="${TMPDIR:-/tmp}/ferry-s3-$(printf '%s' "$DIR" | md5sum | cut -c1-16).lock"
    exec 9>"$lock"
    flock 9
}

# ------------------------------------------------------------------ helpers
# True if process $1 exists and is not a zombie.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != Z ]]
}

server_pid() {
    local pid
    [[ -s "$PID_FILE" ]] || return 0
    pid="$(<"$PID_FILE")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then echo "$pid"; fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

server_healthy() {
    [[ -n "$(server_pid)" && -s "$PORT_FILE" ]] && port_open "$(<"$PORT_FILE")"
}

# True if nothing is bound to 127.0.0.1:$1 (bind test).
port_free() {
    "$PY" - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.close()
PY
}

pick_port() {
    local port
    for _ in $(seq 200); do
        port=$((10000 + RANDOM % 20000))
        [[ "$port" != "${1:-}" ]] || continue
        if port_free "$port"; then echo "$port"; return 0; fi
    done
    die "could not find a free TCP port"
}

# True if interpreter $1 runs the pinned moto server (and boto3 for the bucket setup).
has_moto() {
    "$1" - "$MOTO_VERSION" >/dev/null 2>&1 <<'PY'
import sys
import boto3, flask, moto, moto.server
sys.exit(0 if moto.__version__ == sys.argv[1] else 1)
PY
}

# Set PY to the venv's interpreter, creating the venv with the pinned moto if it is missing
# or incomplete. Never uses a moto installed elsewhere: moto 5.2.1 (preinstalled on some
# images) answers CompleteMultipartUpload with a root element the AWS SDK refuses.
find_python() {
    local py lock
    command -v python3 >/dev/null 2>&1 || die "python3 is required"
    # Resolve shims (pyenv) to the real interpreter.
    py="$(python3 -c 'import sys; print(sys.executable)')"
    mkdir -p -- "$(dirname -- "$VENV_DIR")"
    # One creator at a time (parallel test runs share the venv); fd 8, not the DIR lock's 9.
    lock="$VENV_DIR.lock"
    exec 8>"$lock"
    flock 8
    if [[ -e "$VENV_DIR/$VENV_STAMP" ]] && has_moto "$VENV_DIR/bin/python"; then
        PY="$VENV_DIR/bin/python"
        exec 8>&-
        return 0
    fi
    log "creating $VENV_DIR with moto[server]==$MOTO_VERSION"
    rm -rf -- "$VENV_DIR"
    if ! "$py" -m venv "$VENV_DIR" >/dev/null 2>&1; then
        rm -rf -- "$VENV_DIR"
        [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null \
            || die "python3 -m venv failed: install the python3-venv package"
        log "installing python3-venv with apt-get"
        {
            apt-get -o DPkg::Lock::Timeout=300 update -qq &&
                DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
                    install -y -qq python3-venv
        } >&2 || die "apt-get install python3-venv failed"
        "$py" -m venv "$VENV_DIR" >&2 || die "python3 -m venv failed"
    fi
    "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" >&2 || die "pip install moto[server]==$MOTO_VERSION failed"
    has_moto "$VENV_DIR/bin/python" || die "moto $MOTO_VERSION not importable after install"
    : >"$VENV_DIR/$VENV_STAMP"
    PY="$VENV_DIR/bin/python"
    exec 8>&-
}

# Wait until the server at port $1 (process $2) answers, then create the
# bucket. Exit status 0 = ready, 2 = process died, 1 = timeout/other error.
wait_and_create_bucket() {
    "$PY" - "$1" "$2" "$BUCKET" "$REGION" "$STARTUP_TIMEOUT" <<'PY'
import os, sys, time
import boto3
from botocore.config import Config
port, pid, bucket, region, timeout = sys.argv[1:6]
endpoint = f"http://127.0.0.1:{port}"
s3 = boto3.client(
    "s3", endpoint_url=endpoint, region_name=region,
    aws_access_key_id="test", aws_secret_access_key="test",
    config=Config(s3={"addressing_style": "path"},
                  retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
deadline = time.monotonic() + float(timeout)
last = None
while time.monotonic() < deadline:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        sys.exit(2)
    try:
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        s3.head_bucket(Bucket=bucket)
        sys.exit(0)
    except Exception as e:  # not up yet
        last = e
        time.sleep(0.1)
print(f"s3.sh: server not ready after {timeout}s: {last}", file=sys.stderr)
sys.exit(1)
PY
}

write_env() {
    local port="$1" tmp="$ENV_FILE.tmp"
    {
        echo "# Generated by scripts/s3.sh; eval \"\$(scripts/s3.sh env)\""
        printf 'export %s=%q\n' \
            AWS_ACCESS_KEY_ID test \
            AWS_SECRET_ACCESS_KEY test \
            AWS_REGION "$REGION" \
            AWS_DEFAULT_REGION "$REGION" \
            FERRY_TEST_S3_ENDPOINT "http://127.0.0.1:$port" \
            FERRY_TEST_S3_BUCKET "$BUCKET" \
            FERRY_TEST_S3_LOG "$LOG_FILE"
    } >"$tmp"
    mv -f -- "$tmp" "$ENV_FILE"
}

stop_server() {
    local pid deadline
    pid="$(server_pid)"
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
        fi
        sleep 0.1
    done
}

# Remove what this script created in DIR, then DIR (if empty) and, for the
# default location, its parent if that is now empty too.
clean_dir() {
    [[ -d "$DIR" ]] || return 0
    rm -f -- "$ENV_FILE" "$ENV_FILE.tmp" "$PID_FILE" "$PORT_FILE" "$LOG_FILE" "$DIR/$MARKER"
    rmdir -- "$DIR" 2>/dev/null || return 0
    [[ -n "$DIR_GIVEN" ]] || rmdir -- "$(dirname -- "$DIR")" 2>/dev/null || true
}

# Detached watchdog: stop this server once OWNER_PID is gone. Exits early
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
        ' ferry-s3-watchdog "$owner" "$SCRIPT_PATH" "$DIR" "$MARKER"
    ) </dev/null >/dev/null 2>&1 9>&- &
}

# ----------------------------------------------------------------- commands
cmd_start() {
    take_lock
    if [[ -e "$DIR/$MARKER" ]]; then
        if [[ -s "$ENV_FILE" ]] && server_healthy; then
            [[ -z "$OWNER_PID" ]] || spawn_watchdog "$OWNER_PID"
            return 0
        fi
        log "stale or unhealthy sandbox in $DIR; recreating it"
        stop_server
        clean_dir
    elif [[ -d "$DIR" && -n "$(ls -A -- "$DIR")" ]]; then
        die "$DIR exists and is not a ferry S3 sandbox; refusing to use it"
    fi
    find_python
    mkdir -p -- "$DIR"
    : >"$DIR/$MARKER"

    local port pid attempt rc
    port="$(pick_port)"
    for attempt in 1 2 3; do
        : >"$LOG_FILE"
        # New session so it survives the caller's process group being
        # signalled; fd 9 (the lock) must not leak into the server.
        (cd "$DIR" && exec setsid "$PY" -m moto.server -H 127.0.0.1 -p "$port") \
            </dev/null >>"$LOG_FILE" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PID_FILE"
        echo "$port" >"$PORT_FILE"
        rc=0
        wait_and_create_bucket "$port" "$pid" || rc=$?
        if ((rc == 0)); then
            write_env "$port"
            [[ -z "$OWNER_PID" ]] || spawn_watchdog "$OWNER_PID"
            return 0
        fi
        if ((rc == 2)) && grep -q 'Address already in use' "$LOG_FILE" && ((attempt < 3)); then
            log "port $port was taken, retrying with another one"
            port="$(pick_port "$port")"
            continue
        fi
        break
    done
    log "moto server failed to start; tail of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2 || true
    stop_server
    clean_dir
    exit 1
}

cmd_stop() {
    take_lock
    stop_server
    clean_dir
}

cmd_env() {
    [[ -s "$ENV_FILE" ]] || die "no S3 server running in $DIR (run: $0 start)"
    cat -- "$ENV_FILE"
}

cmd_status() {
    if server_healthy; then
        echo "s3: up (pid $(server_pid), http://127.0.0.1:$(<"$PORT_FILE"))"
    else
        echo "s3: down"
        return 1
    fi
}

case "$CMD" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    -h|--help|help) usage ;;
    *) die "unknown command: $CMD (expected start|stop|env|status)" ;;
esac
