#!/usr/bin/env bash
# Release build of the ferry binary, with its debug info split off.
#
# Usage: scripts/build-release.sh [--quiet]
#
# Builds target/release/ferry (cargo build --release --bin ferry), then moves its line tables
# into target/release/ferry.debug and leaves a .gnu_debuglink in the binary: the binary ships
# without them (~25 MB instead of ~170 MB), and a panic's backtrace still names files and lines
# while ferry.debug lies beside it (or in /usr/lib/debug). Without that file, a backtrace shows
# function names only. Installs binutils (objcopy) if it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "build-release.sh: $*" >&2; }
die() { log "$*"; exit 1; }

quiet=()
[[ "${1:-}" == "--quiet" ]] && quiet=(--quiet)

command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (https://rustup.rs) first"
if ! command -v objcopy >/dev/null 2>&1; then
    log "installing binutils (objcopy)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binutils >/dev/null \
        || die "objcopy is missing and binutils could not be installed"
fi

cargo build --release "${quiet[@]}" --bin ferry || die "cargo build --release --bin ferry failed"

bin=target/release/ferry
[[ -x "$bin" ]] || die "no binary at $bin after the build"
# A binary cargo did not rebuild may be split already: its line tables are gone.
if ! readelf -S "$bin" | grep -q '\.debug_line'; then
    exit 0
fi
# Killed half-way, the binary keeps its line tables and the next run splits it again.
objcopy --only-keep-debug "$bin" "$bin.debug"
objcopy --strip-debug --add-gnu-debuglink="$bin.debug" "$bin" "$bin.split-tmp"
mv "$bin.split-tmp" "$bin"
log "$bin: $(du -h "$bin" | cut -f1) (line tables in $bin.debug, $(du -h "$bin.debug" | cut -f1))"
