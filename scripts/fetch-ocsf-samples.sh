#!/usr/bin/env bash
# Fetch the anchors of tests/unit/test_security_lake_pairs.py, cached like fetch-kafka.sh caches Kafka's jars:
#   - Amazon Security Lake's CloudTrail conversions with their input files (aws-samples/
#     amazon-security-lake-ocsf-validation, MIT-0): samples/1.0.0-rc.2/CLOUD_TRAIL and samples/1.1.0/CLOUD_TRAIL,
#     Parquet outputs (read with pyarrow, the dev extra);
#   - AWS's OCSF 1.5.0 CloudTrail samples (ocsf/examples, mappings/markdown/AWS/v1.5.0/CloudTrail: *.raw, *.ocsf).
# Each becomes pairs/<name>.input.ndjson (CloudTrail records) + pairs/<name>.output.ndjson (OCSF events), which
# the test pairs by eventID = metadata.uid. Needs GitHub (codeload.github.com): a machine without it gets a
# clear error and the test skips. Idempotent: a finished cache carries a marker and is reused.
#
# Usage: scripts/fetch-ocsf-samples.sh       (last stdout line: the pairs dir)
# Env:   INGESTER_CACHE_DIR   cache root (default: ~/.cache/ingester)
#        SECURITY_LAKE_REF    git ref of aws-samples/amazon-security-lake-ocsf-validation (default: main)
#        OCSF_EXAMPLES_REF    git ref of ocsf/examples (default: main)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${INGESTER_CACHE_DIR:-$HOME/.cache/ingester}"
dest="$cache/ocsf-samples"
marker=".complete"
python="${PYTHON:-$here/../.venv/bin/python}"

die() { echo "fetch-ocsf-samples: error: $*" >&2; exit 1; }
log() { echo "fetch-ocsf-samples: $*" >&2; }

if [[ -f "$dest/pairs/$marker" ]]; then
    echo "$dest/pairs"
    exit 0
fi
command -v curl >/dev/null || die "curl not found on PATH"
[[ -x "$python" ]] || python="$(command -v python3)" || die "no python (run scripts/bootstrap.sh)"
"$python" -c "import pyarrow" 2>/dev/null || die "pyarrow is missing: run scripts/bootstrap.sh (dev extra)"
mkdir -p "$cache" || die "cannot create cache dir $cache"
if command -v flock >/dev/null; then
    exec 9>"$cache/.fetch-ocsf-samples.lock"
    flock 9
    if [[ -f "$dest/pairs/$marker" ]]; then
        echo "$dest/pairs"
        exit 0
    fi
fi

tmp="$(mktemp -d "$cache/ocsf-samples.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fetch() {  # repo ref folder-inside-the-archive
    log "downloading $1@$2 ($3)"
    mkdir -p "$tmp/$1"
    curl -fsSL --retry 2 --max-time 300 "https://codeload.github.com/$1/tar.gz/$2" \
        | tar -xz -C "$tmp/$1" --strip-components=1 --wildcards "*/$3/*" \
        || die "could not fetch $1@$2 from GitHub (this machine may not reach it)"
}
fetch aws-samples/amazon-security-lake-ocsf-validation "${SECURITY_LAKE_REF:-main}" samples
fetch ocsf/examples "${OCSF_EXAMPLES_REF:-main}" mappings/markdown/AWS/v1.5.0/CloudTrail

mkdir -p "$tmp/pairs"
"$python" - "$tmp" <<'PY'
"""Security Lake's Parquet and the OCSF examples' JSON -> NDJSON pairs (see the script's header)."""
import datetime
import gzip
import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

root = Path(sys.argv[1])
pairs = root / "pairs"


def records(data: bytes) -> list:
    """A CloudTrail file ({"Records": [...]}), a list, one record, or one record a line."""
    text = data.decode("utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(value, dict) and "Records" in value:
        return value["Records"]
    return value if isinstance(value, list) else [value]


def plain(value):
    """Arrow maps come back as lists of (key, value) pairs; OCSF wants objects."""
    if isinstance(value, list) and value and all(isinstance(i, tuple) and len(i) == 2 for i in value):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(i) for i in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def write(name: str, inputs: list, outputs: list) -> None:
    for suffix, rows in (("input", inputs), ("output", outputs)):
        with (pairs / f"{name}.{suffix}.ndjson").open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, default=str) + "\n")


count = 0
lake = root / "aws-samples/amazon-security-lake-ocsf-validation/samples"
for version, output_glob, input_of in (
    ("1.0.0-rc.2", "*/*.test.gz.parquet", lambda p: p.parent / "input" / p.name.removesuffix(".parquet")),
    ("1.1.0", "*/tests_*.test.parquet", lambda p: p.parent / "input" / (p.name[6:].removesuffix(".test.parquet") + ".json")),
):
    for output in sorted((lake / version / "CLOUD_TRAIL").glob(output_glob)):
        source = input_of(output)
        if not source.is_file():
            continue
        data = source.read_bytes()
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        rows = [plain(row) for row in pq.read_table(output).to_pylist()]
        write(f"security-lake-{version}-{output.parent.name}-{source.name.split('.')[0]}", records(data), rows)
        count += 1
examples = root / "ocsf/examples/mappings/markdown/AWS/v1.5.0/CloudTrail"
for raw in sorted(examples.glob("*/samples/*.raw")):
    ocsf = raw.with_suffix(".ocsf")
    if ocsf.is_file():
        event = json.loads(re.sub(r",(\s*[}\]])", r"\1", ocsf.read_text(encoding="utf-8")))  # trailing commas
        write(f"ocsf-examples-1.5.0-{raw.stem}", records(raw.read_bytes()), [event])
        count += 1
if not count:
    sys.exit("fetch-ocsf-samples: no pair found in the archives: has their layout changed?")
print(f"fetch-ocsf-samples: {count} pairs", file=sys.stderr)
PY
date -u +%FT%TZ >"$tmp/pairs/$marker"
rm -rf "$dest"
mkdir -p "$dest"
mv "$tmp/pairs" "$dest/pairs"
echo "$dest/pairs"
