"""deploy/helm/ingester/values.schema.json: its config part is current with config.py, and it accepts the chart's
own values files while refusing a misspelt key or a bad value (helm applies it on install, template and lint;
scripts/deploy-check.sh checks helm's refusals)."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from ingester.config import Settings

jsonschema = pytest.importorskip("jsonschema")

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "ingester"
_spec = importlib.util.spec_from_file_location("values_schema", CHART.parents[1] / "tools" / "values_schema.py")
assert _spec is not None and _spec.loader is not None
values_schema = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(values_schema)

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def with_value(path: str, value: object) -> dict[str, Any]:
    """The chart's defaults with one key set (``a.b.c``), as ``--set a.b.c=value`` would."""
    values = copy.deepcopy(DEFAULTS)
    *parents, last = path.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return values


def test_the_committed_schema_is_current() -> None:
    current = (CHART / "values.schema.json").read_text()
    assert current == values_schema.render(json.loads(current)), (
        "values.schema.json is stale: run `.venv/bin/python deploy/tools/values_schema.py`"
    )


@pytest.mark.parametrize("name", ["values.yaml", *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))])
def test_the_charts_values_files_are_valid(name: str) -> None:
    path = CHART / name if name == "values.yaml" else CHART / "ci" / name
    overrides = yaml.safe_load(path.read_text())
    merged = copy.deepcopy(DEFAULTS)
    for key, value in overrides.items():  # one level is enough for these files' sections
        merged[key] = (
            {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    assert errors(merged) == []


def test_every_default_and_null_is_a_valid_config() -> None:
    """ingester's own defaults pass, and null (the chart: leave the key out) is accepted for every setting."""
    defaults = msgspec.json.decode(msgspec.json.encode(Settings()))
    assert errors({**DEFAULTS, "config": defaults}) == []
    nulls = {  # a list of tables ([[routes]]) is null as a whole
        section: dict.fromkeys(fields) if isinstance(fields, dict) else None for section, fields in defaults.items()
    }
    assert errors({**DEFAULTS, "config": nulls}) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("resource", {"limits": {"memory": "1Gi"}}, "Additional properties are not allowed ('resource'"),
        ("resources.limit", {"memory": "1Gi"}, "Additional properties are not allowed ('limit'"),
        ("config.kafka.topc", "cloudtrail", "Additional properties are not allowed ('topc'"),
        ("config.colection", {}, "Additional properties are not allowed ('colection'"),
        ("persistence.size", "abc", "does not match"),
        ("replicaCount", -1, "less than the minimum of 1"),
        ("config.sink.format", "json", "is not one of"),
        ("config.collection.max_inflight_objects", 0, "less than or equal to the minimum of 0"),
        ("resources.limits.cpu", "lots", "does not match"),
        ("prometheusRule.sinkStalled.for", "5 minutes", "does not match"),
    ],
)
def test_a_misspelt_key_or_a_bad_value_is_refused(path: str, value: object, message: str) -> None:
    found = errors(with_value(path, value))
    assert any(message in error for error in found), found
