#!/usr/bin/env bash
# Throughput benchmark (issue 5): every mode on the same generated data, against moto's server and a real Kafka
# broker started here; prints the table and writes benchmarks/out/results.json. About 3-5 minutes on 2 cores.
# Options: --files N (1500), --quick (300 files), --naive-files N, --seed N, --modes a,b,...; see --help.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/fetch-kafka.sh >/dev/null
exec .venv/bin/python -m benchmarks "$@"
