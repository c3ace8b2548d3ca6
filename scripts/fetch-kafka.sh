#!/usr/bin/env bash
# Fetch a runnable Apache Kafka broker (jars only) from Maven Central, so the
# integration tests can run a real KRaft broker without Docker or a tarball
# download. Idempotent: a finished libs dir carries a marker and is reused.
#
# Usage: scripts/fetch-kafka.sh          (last stdout line: the libs dir)
# Env:   INGESTER_CACHE_DIR  cache root   (default: ~/.cache/ingester)
#        KAFKA_VERSION       force one version instead of 4.0.1 -> 4.1.1
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/kafka/pom.xml"
cache="${INGESTER_CACHE_DIR:-$HOME/.cache/ingester}"
marker=".complete"

die() { echo "fetch-kafka: error: $*" >&2; exit 1; }
log() { echo "fetch-kafka: $*" >&2; }

if [[ -n "${KAFKA_VERSION:-}" ]]; then
    versions=("$KAFKA_VERSION")
else
    versions=(4.0.1 4.1.1)  # 4.1.1 only if 4.0.1 cannot be resolved
fi

# Fast path: any already complete version, in order of preference.
for v in "${versions[@]}"; do
    if [[ -f "$cache/kafka-$v/libs/$marker" ]]; then
        echo "$cache/kafka-$v/libs"
        exit 0
    fi
done

command -v mvn >/dev/null || die "mvn not found on PATH (install Maven)"
command -v java >/dev/null || die "java not found on PATH (Kafka 4 needs Java 17+)"
[[ -f "$pom" ]] || die "missing $pom"
mkdir -p "$cache" || die "cannot create cache dir $cache"

# Serialise concurrent fetches (e.g. parallel test runs) on one lock file.
if command -v flock >/dev/null; then
    exec 9>"$cache/.fetch-kafka.lock"
    flock 9
fi

for v in "${versions[@]}"; do
    dest="$cache/kafka-$v/libs"
    if [[ -f "$dest/$marker" ]]; then  # another process finished meanwhile
        echo "$dest"
        exit 0
    fi
    tmp="$cache/kafka-$v/libs.tmp.$$"
    rm -rf "$tmp"; rmdir "$cache/kafka-$v" 2>/dev/null || true
    mkdir -p "$tmp"
    log "downloading kafka_2.13:$v jars into $dest"
    if mvn -q -B -Dstyle.color=never -f "$pom" -Dkafka.version="$v" \
        dependency:copy-dependencies -DoutputDirectory="$tmp" >&2; then
        ls "$tmp"/kafka_2.13-"$v".jar >/dev/null 2>&1 \
            || die "maven succeeded but kafka_2.13-$v.jar is missing in $tmp"
        date -u +%FT%TZ >"$tmp/$marker"
        rm -rf "$dest"
        mv "$tmp" "$dest"
        echo "$dest"
        exit 0
    fi
    rm -rf "$tmp"; rmdir "$cache/kafka-$v" 2>/dev/null || true
    log "could not resolve kafka_2.13:$v from Maven Central"
done
die "no Kafka version could be fetched (tried: ${versions[*]})"
