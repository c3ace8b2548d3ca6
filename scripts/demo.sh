#!/usr/bin/env bash
# One command from a fresh clone: install, then run the real pipeline on an embedded AWS (moto) with a
# generated organization, writing NDJSON events to demo-output/. No AWS account, no Kafka cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/ingester demo "$@"
