"""Write the ``config`` part of deploy/helm/ingester/values.schema.json from ingester's Settings Structs.

    .venv/bin/python deploy/tools/values_schema.py          # rewrite the schema's config part
    .venv/bin/python deploy/tools/values_schema.py --check  # exit 1 if the committed schema is stale

Why generated: ``config`` becomes config.toml, which ingester loads with its Structs (forbid_unknown_fields,
bounds, choices). Taking the schema from those Structs (msgspec.json.schema) makes ``helm install`` refuse what
ingester would refuse at start, a misspelt key or a bad choice, with helm's message, before any pod crash-loops;
and a setting added to config.py reaches the chart with one command (tests/unit/test_values_schema.py fails
until it is run). Every setting and section also takes null: the chart leaves a null key out of config.toml,
so ingester's default (the schema's ``default``) applies.

The rest of the schema, the chart's own values (image, resources, persistence, probes...), is written by hand in
the JSON file; this script replaces ``properties.config`` and rewrites the file in its canonical formatting.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from ingester.config import Settings

SCHEMA = Path(__file__).resolve().parents[1] / "helm" / "ingester" / "values.schema.json"

Schema = dict[str, Any]


def _nullable(schema: Schema) -> Schema:
    """``schema`` or null: the type list gains "null" (an enum, null itself), so bounds and choices still apply
    to any other value and helm names the broken one."""
    schema = dict(schema)
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*kinds, "null"]
    elif "enum" not in schema:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _inline(schema: Any, definitions: Schema) -> Any:
    """msgspec's schema with every ``$ref`` replaced by its definition, so the part stands alone under
    ``properties.config``; each Struct closed (additionalProperties false) and each of its fields nullable."""
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _inline(definitions[schema["$ref"].rsplit("/", 1)[1]], definitions)
    inlined = {key: _inline(value, definitions) for key, value in schema.items() if key not in ("title", "required")}
    if inlined.get("type") == "object" and "properties" in inlined:
        inlined["additionalProperties"] = False
        inlined["properties"] = {name: _nullable(field) for name, field in inlined["properties"].items()}
    return inlined


def config_schema() -> Schema:
    generated = msgspec.json.schema(Settings)
    return {
        "$comment": "Generated from ingester/config.py by deploy/tools/values_schema.py; do not edit by hand.",
        **_inline(generated, generated["$defs"]),
    }


def render(schema: Schema) -> str:
    return json.dumps({**schema, "properties": {**schema["properties"], "config": config_schema()}}, indent=2) + "\n"


def main(argv: list[str]) -> int:
    current = SCHEMA.read_text()
    wanted = render(json.loads(current))
    if argv[1:] == ["--check"]:
        if current != wanted:
            print(f"{SCHEMA} is stale: run .venv/bin/python deploy/tools/values_schema.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    if current != wanted:
        SCHEMA.write_text(wanted)
        print(f"wrote {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
