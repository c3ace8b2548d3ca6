#!/usr/bin/env bash
# All the checks and tests, from a fresh clone: install, fetch Kafka's jars (cached), lint, type-check, then
# deploy checks (Dockerfile lint, Helm chart rendered and validated), then pytest (unit tests, and integration
# tests that start a real Kafka broker and moto's HTTP server themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/fetch-kafka.sh >/dev/null
.venv/bin/ruff check ingester tests benchmarks
.venv/bin/ruff format --check ingester tests benchmarks
.venv/bin/mypy --strict ingester benchmarks  # benchmarks imports some tests modules: they are checked with it
scripts/deploy-check.sh  # hadolint, helm lint/template, Kubernetes schema validation (tools cached)
exec .venv/bin/python -m pytest "$@"
