#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and end-to-end tests against real
# throwaway MariaDB servers and a real S3-protocol server, all on 127.0.0.1.
#
# Usage: scripts/test.sh [extra cargo test args]
# Installs what is missing (mariadb-server, mydumper, sysbench, python moto for S3,
# rustfmt/clippy components).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin"

log() { echo "test.sh: $*" >&2; }

if ! command -v cargo >/dev/null; then
    log "cargo is missing: install Rust (https://rustup.rs) first"; exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

apt_updated=0
need_pkg() { # need_pkg COMMAND PACKAGE...
    local cmd=$1; shift
    command -v "$cmd" >/dev/null && return 0
    if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
need_pkg mariadbd mariadb-server mariadb-client
need_pkg mariadb mariadb-client
# Peers whose dumps the loader must read (mydumper 0.10) and the sysbench data generator.
need_pkg mydumper mydumper
need_pkg sysbench sysbench

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

state=$(mktemp -d /tmp/ferry-test.XXXXXX)
cleanup() {
    bash scripts/s3.sh stop --dir "$state/s3" >/dev/null 2>&1 || true
    bash scripts/servers.sh stop --dir "$state/db" >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
log "starting sandbox servers"
bash scripts/servers.sh start --dir "$state/db" --owner-pid $$
bash scripts/s3.sh start --dir "$state/s3" --owner-pid $$
set -a
# shellcheck disable=SC1091
. "$state/db/env"
# shellcheck disable=SC1091
. "$state/s3/env"
set +a

log "cargo test"
cargo test --workspace --all-targets "$@" 2>&1 | tee "$state/test.log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$state/test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$state/test.log" | awk '{s+=$1} END {print s+0}')
echo "${passed} passed, ${failed} failed"
exit "$status"
