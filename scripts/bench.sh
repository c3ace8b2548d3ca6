#!/usr/bin/env bash
# Throughput benchmark (issue 5): every mode on the same generated data, against moto's server and a real Kafka
# broker started here; prints the table and writes benchmarks/out/results.json. About 3-5 minutes on 2 cores.
# Options: --files N (1500), --quick (300 files), --naive-files N, --seed N, --modes a,b,...; see --help.
#
# scripts/bench.sh anchors [--quick] [--repeats N] ...: ingester against the peer script and the per-core floor,
# S3 served by s3s-fs (built by scripts/fetch-s3s.sh), two datasets (benchmarks/anchors.py, issue 13).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/fetch-kafka.sh >/dev/null
if [[ "${1:-}" == "anchors" ]]; then
    shift
    exec .venv/bin/python -m benchmarks.anchors --s3s "$(scripts/fetch-s3s.sh | tail -1)" "$@"
fi
exec .venv/bin/python -m benchmarks "$@"
