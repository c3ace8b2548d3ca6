"""Validate manifests rendered by `helm template` against Kubernetes' OpenAPI schemas, strictly.

Run by scripts/deploy-check.sh with the tools virtualenv (kubernetes-validate, cloudcoil-models-prometheus-operator):

    validate_manifests.py --kube-version 1.27.0 --crd-schemas DIR rendered.yaml [...]

- Built-in kinds: kubernetes-validate's bundled JSON schemas for that Kubernetes version (strict: an unknown field
  is an error, as `kubectl apply --validate=strict` would say). kubeconform would fetch its schemas from GitHub at
  run time; kubernetes-validate ships them, so this works offline.
- The prometheus-operator kinds (ServiceMonitor, PrometheusRule; CRDs): the JSON schemas of the CRDs' Pydantic
  models from cloudcoil-models-prometheus-operator, made strict (additionalProperties: false wherever the CRD
  lists properties). Written once to DIR by --write-crd-schemas (importing the models takes ~15 s).
- Any other kind fails: a template that starts emitting a new kind must get a schema here.

Before the real files, each validator must reject known-bad documents (a misspelt field; for PrometheusRule also
a `for` that is not a duration), so a validator that silently accepts everything cannot pass.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
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


# The custom resources the chart renders: (apiVersion, kind), each validated by its CRD's schema.
CRDS = (("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"))


def schema_file(directory: Path, kind: str) -> Path:
    return directory / f"{kind}.schema.json"


def write_crd_schemas(directory: Path) -> None:
    """Every CRDS schema into ``directory``, all or nothing (written beside it, then renamed): the caller's
    cache check is "the directory exists"."""
    from cloudcoil.models.prometheus_operator import v1

    staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    staging.mkdir(parents=True)
    try:
        for _, kind in CRDS:
            schema = strict(getattr(v1, kind).model_json_schema(by_alias=True))
            schema_file(staging, kind).write_text(json.dumps(schema, sort_keys=True), encoding="utf-8")
        staging.rename(directory)
    except OSError:
        if not directory.is_dir():  # a concurrent run that renamed first is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def deepest(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors under an anyOf, in its most relevant branch, recursively. The models wrap every field in
    anyOf [..., null], so the error at the top names the outermost field and prints its whole value."""
    if not error.context:
        return [error]
    branch = min(error.context, key=jsonschema.exceptions.relevance).relative_schema_path[0]  # as best_match
    return [leaf for sub in error.context if sub.relative_schema_path[0] == branch for leaf in deepest(sub)]


class Validator:
    def __init__(self, kube_version: str, crd_schemas: Path) -> None:
        self.kube_version = kube_version
        self.crds = {
            (api_version, kind): jsonschema.Draft202012Validator(
                json.loads(schema_file(crd_schemas, kind).read_text(encoding="utf-8"))
            )
            for api_version, kind in CRDS
        }

    def errors(self, doc: dict[str, Any]) -> list[str]:
        crd = self.crds.get((doc.get("apiVersion"), doc.get("kind")))
        if crd is not None:
            leaves = [leaf for error in crd.iter_errors(doc) for leaf in deepest(error)]
            return [
                f"{'/'.join(map(str, error.absolute_path)) or '.'}: {error.message[:300]}"
                for error in sorted(leaves, key=lambda e: [str(part) for part in e.absolute_path])
            ]
        try:
            kubernetes_validate.validate(doc, self.kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            return [f"no schema: {exc.message}"]
        except kubernetes_validate.ValidationError as exc:
            return [f"{'/'.join(map(str, exc.absolute_path)) or '.'}: {exc.message}"]
        return []


def self_test(validator: Validator) -> None:
    """Each validator must reject a misspelt field (and a PrometheusRule a `for` that is no duration) yet accept
    a valid PrometheusRule, or the run proves nothing."""
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

    def prometheus_rule(**fields: str) -> dict[str, Any]:
        rule = {"alert": "X", "expr": "up == 0", "labels": {"severity": "info"}, **fields}
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "x"},
            "spec": {"groups": [{"name": "g", "rules": [rule]}]},
        }

    valid = prometheus_rule(**{"for": "5m"})
    if problems := validator.errors(valid):
        sys.exit(f"validator self-test failed: a valid PrometheusRule was refused: {problems}")
    bad = (
        (pod, "a misspelt field"),
        (monitor, "a misspelt field"),
        (prometheus_rule(fro="5m"), "a misspelt field"),
        (prometheus_rule(**{"for": "5 minutes"}), "a `for` that is no duration"),
    )
    for doc, what in bad:
        if not validator.errors(copy.deepcopy(doc)):
            sys.exit(f"validator self-test failed: a {doc['kind']} with {what} was accepted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kube-version", required=True)
    parser.add_argument("--crd-schemas", type=Path, required=True, help="directory of the CRDs' JSON schemas")
    parser.add_argument("--write-crd-schemas", action="store_true")
    parser.add_argument("files", type=Path, nargs="*")
    args = parser.parse_args()
    if args.write_crd_schemas:
        write_crd_schemas(args.crd_schemas)
        return 0
    validator = Validator(args.kube_version, args.crd_schemas)
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
