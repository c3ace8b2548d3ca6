"""Validate manifests rendered by `helm template` against Kubernetes' OpenAPI schemas, strictly.

Run by scripts/deploy-check.sh with the tools virtualenv (kubernetes-validate, cloudcoil-models-prometheus-operator):

    validate_manifests.py --kube-version 1.27.0 --servicemonitor-schema S.json rendered.yaml [...]

- Built-in kinds: kubernetes-validate's bundled JSON schemas for that Kubernetes version (strict: an unknown field
  is an error, as `kubectl apply --validate=strict` would say). kubeconform would fetch its schemas from GitHub at
  run time; kubernetes-validate ships them, so this works offline.
- ServiceMonitor (a CRD): the JSON schema of the prometheus-operator CRD's Pydantic model from
  cloudcoil-models-prometheus-operator, made strict (additionalProperties: false wherever the CRD lists
  properties). Written once to --servicemonitor-schema by --write-servicemonitor-schema (importing the models
  takes ~15 s).
- Any other kind fails: a template that starts emitting a new kind must get a schema here.

Before the real files, each validator must reject a known-bad document (a misspelt field), so a validator that
silently accepts everything cannot pass.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml


def strict(schema: Any) -> Any:
    """additionalProperties: false on every object schema that lists its properties and allows no other keys."""
    if isinstance(schema, dict):
        out = {key: strict(value) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def write_servicemonitor_schema(path: Path) -> None:
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    schema = strict(ServiceMonitor.model_json_schema(by_alias=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, sort_keys=True), encoding="utf-8")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


class Validator:
    def __init__(self, kube_version: str, servicemonitor_schema: Path) -> None:
        self.kube_version = kube_version
        schema = json.loads(servicemonitor_schema.read_text(encoding="utf-8"))
        self.servicemonitor = jsonschema.Draft202012Validator(schema)

    def errors(self, doc: dict[str, Any]) -> list[str]:
        kind = doc.get("kind", "?")
        if kind == "ServiceMonitor" and doc.get("apiVersion") == "monitoring.coreos.com/v1":
            return [
                f"{'/'.join(map(str, error.absolute_path)) or '.'}: {error.message}"
                for error in sorted(self.servicemonitor.iter_errors(doc), key=lambda e: list(e.absolute_path))
            ]
        try:
            kubernetes_validate.validate(doc, self.kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            return [f"no schema: {exc.message}"]
        except kubernetes_validate.ValidationError as exc:
            return [f"{'/'.join(map(str, exc.absolute_path)) or '.'}: {exc.message}"]
        return []


def self_test(validator: Validator) -> None:
    """Each validator must reject a misspelt field, or the run proves nothing."""
    pod = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {"a": "b"},
        "dta": {"a": "b"},
    }
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
    }
    for bad in (pod, monitor):
        if not validator.errors(copy.deepcopy(bad)):
            sys.exit(f"validator self-test failed: a {bad['kind']} with a misspelt field was accepted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kube-version", required=True)
    parser.add_argument("--servicemonitor-schema", type=Path, required=True)
    parser.add_argument("--write-servicemonitor-schema", action="store_true")
    parser.add_argument("files", type=Path, nargs="*")
    args = parser.parse_args()
    if args.write_servicemonitor_schema:
        write_servicemonitor_schema(args.servicemonitor_schema)
        return 0
    validator = Validator(args.kube_version, args.servicemonitor_schema)
    self_test(validator)
    failed = 0
    for path in args.files:
        kinds: list[str] = []
        invalid = 0
        for doc in documents(path):
            name = f"{doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"
            kinds.append(str(doc.get("kind", "?")))
            problems = validator.errors(doc)
            for problem in problems:
                print(f"  INVALID {path.name}: {name}: {problem}")
            invalid += bool(problems)
        if invalid:
            print(f"  {path.name}: {invalid} of {len(kinds)} objects invalid against Kubernetes {args.kube_version}")
        else:
            print(
                f"  {path.name}: {len(kinds)} objects valid against Kubernetes {args.kube_version}: {', '.join(kinds)}"
            )
        failed += invalid
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
