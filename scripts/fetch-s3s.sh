#!/usr/bin/env bash
# Build s3s-fs (a small Rust S3 server over a folder, Apache-2.0) from crates.io, so the benchmark can serve its
# files from an S3 endpoint fast enough not to be the bottleneck (moto's server caps at ~300 GETs/s, issue 13).
# Idempotent: a finished build carries a marker and is reused; the first build takes a few minutes on 2 cores.
#
# Usage: scripts/fetch-s3s.sh          (last stdout line: the s3s-fs binary)
# Env:   INGESTER_CACHE_DIR  cache root   (default: ~/.cache/ingester)
#        S3S_FS_VERSION      crate version (default below)
set -euo pipefail

cache="${INGESTER_CACHE_DIR:-$HOME/.cache/ingester}"
version="${S3S_FS_VERSION:-0.14.1}"
root="$cache/s3s-fs-$version"
marker="$root/.complete"

die() { echo "fetch-s3s: error: $*" >&2; exit 1; }
log() { echo "fetch-s3s: $*" >&2; }

if [[ -f "$marker" && -x "$root/bin/s3s-fs" ]]; then
    echo "$root/bin/s3s-fs"
    exit 0
fi

command -v cargo >/dev/null || die "cargo not found on PATH (install Rust >= 1.92)"
mkdir -p "$cache" || die "cannot create cache dir $cache"

# Serialise concurrent builds on one lock file.
if command -v flock >/dev/null; then
    exec 9>"$cache/.fetch-s3s.lock"
    flock 9
fi
if [[ -f "$marker" && -x "$root/bin/s3s-fs" ]]; then  # another process finished meanwhile
    echo "$root/bin/s3s-fs"
    exit 0
fi

tmp="$root.tmp.$$"
rm -rf "$tmp"
log "building s3s-fs $version from crates.io into $root (a few minutes)"
# --locked: the crate's own Cargo.lock, so a new release of a dependency cannot break the build.
if ! cargo install s3s-fs --version "=$version" --features binary --locked --root "$tmp" >&2; then
    rm -rf "$tmp"
    die "cargo install s3s-fs $version failed"
fi
[[ -x "$tmp/bin/s3s-fs" ]] || die "cargo succeeded but $tmp/bin/s3s-fs is missing"
date -u +%FT%TZ >"$tmp/.complete"
rm -rf "$root"
mv "$tmp" "$root"
echo "$root/bin/s3s-fs"
