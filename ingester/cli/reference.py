"""The configuration reference (docs/configuration.md), generated from the Settings Structs and their comments.

Why generated: a hand-kept example drifts (it once missed 20 of 72 settings); the Structs in config.py are what
the loader accepts, and the comment above each field is where a setting's meaning is written once. A unit test
regenerates the page and fails when the committed one is stale; ``ingester config-reference`` prints it for the
installed version.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Iterator

import msgspec

from ingester import config

HEADER = """# Configuration reference

Generated from `ingester/config.py` by `ingester config-reference > docs/configuration.md`; do not edit by hand
(`tests/unit/test_config_reference.py` fails when this page is stale). Every setting is shown with its default.

Sources, lowest to highest precedence: the defaults below, the TOML file given with `--config`, then environment
variables `INGESTER_<SECTION>__<FIELD>` (for example `INGESTER_KAFKA__TOPIC=cloudtrail`; a list setting takes
`a,b`). Unknown keys, values of the wrong type and out-of-range values stop the process with exit code 2 and a
message naming the setting and where its value came from. `deploy/config.example.toml` is a shorter example.
"""


# (Struct class name, field name) -> the comment above the field.
Notes = dict[tuple[str, str], str]


def _comments() -> Notes:
    """(class name, field) -> the comment lines right above the field in config.py."""
    source = inspect.getsource(config)
    lines = source.splitlines()
    found: Notes = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
                continue
            above: list[str] = []
            index = statement.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#"):
                above.insert(0, lines[index].strip())
                index -= 1
            if above:
                found[(node.name, statement.target.id)] = "\n".join(above)
    return found


def _kind(kind: msgspec.inspect.Type) -> str:
    """A type as an operator reads it: ``integer >= 1``, ``one of "a", "b"``, ``list of strings``."""
    if isinstance(kind, msgspec.inspect.Metadata):  # Annotated[str, Meta(examples=...)]: the type underneath
        return _kind(kind.type)
    if isinstance(kind, msgspec.inspect.UnionType):
        return " or ".join("unset" if isinstance(t, msgspec.inspect.NoneType) else _kind(t) for t in kind.types)
    if isinstance(kind, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(json.dumps(v) for v in kind.values)
    if isinstance(kind, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        if isinstance(kind.item_type, msgspec.inspect.LiteralType):
            return "list of " + ", ".join(json.dumps(v) for v in kind.item_type.values)
        return f"list of {_kind(kind.item_type)}s"
    names = {
        msgspec.inspect.StrType: "string",
        msgspec.inspect.BoolType: "boolean",
        msgspec.inspect.IntType: "integer",
        msgspec.inspect.FloatType: "number",
    }
    text = names.get(type(kind), type(kind).__name__)
    bounds = [
        f"{sign} {value}"
        for sign, attr in ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt"))
        if (value := getattr(kind, attr, None)) is not None
    ]
    return f"{text} {', '.join(bounds)}" if bounds else text


def _value(value: object) -> str:
    """A default as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _sections(
    struct: msgspec.inspect.StructType, default: msgspec.Struct, path: tuple[str, ...], notes: Notes
) -> Iterator[str]:
    """One TOML block per section (nested sections after their parent's plain settings)."""
    plain = [f for f in struct.fields if not isinstance(f.type, msgspec.inspect.StructType)]
    nested = [f for f in struct.fields if isinstance(f.type, msgspec.inspect.StructType)]
    if plain:
        block = [f"[{'.'.join(path)}]"]
        for field in plain:
            note = notes.get((struct.cls.__name__, field.name))
            env = config.ENV_PREFIX + "__".join((*path, field.encode_name)).upper()
            if note:
                block.append(note)
            block.append(f"# {_kind(field.type)}; environment: {env}")
            block.append(f"{field.encode_name} = {_value(getattr(default, field.name))}")
            block.append("")
        yield "\n".join(["```toml", *block[:-1], "```"])
    for field in nested:
        kind = field.type
        assert isinstance(kind, msgspec.inspect.StructType)
        yield from _sections(kind, getattr(default, field.name), (*path, field.encode_name), notes)


def _table_list(name: str, item: msgspec.inspect.StructType, notes: Notes) -> str:
    """A list of tables (``[[routes]]``): one example entry, every key with its meaning; required keys get an
    example value, keys unset by default are shown commented out."""
    block = [
        f"# [[{name}]] once per entry; not settable from the environment (a table of the file only).",
        f"[[{name}]]",
    ]
    default = {f.name: f.default for f in item.fields if not f.required}
    for field in item.fields:
        note = notes.get((item.cls.__name__, field.name))
        if note:
            block.append(note)
        if field.required:
            block.append(f"# {_kind(field.type)}; required")
            block.append(f"{field.encode_name} = {_value(_example(field.type))}")
        elif field.default is None:
            block.append(f"# {_kind(field.type)}; default: unset")
            block.append(f"# {field.encode_name} =")
        else:
            value = default[field.name]
            block.append(f"# {_kind(field.type)}")
            block.append(f"{field.encode_name} = {_value(value)}")
        block.append("")
    return "\n".join(["```toml", *block[:-1], "```"])


def _example(kind: msgspec.inspect.Type) -> object:
    """A required key's example value: its ``Meta(examples=[...])`` when it declares one (a value the load-time
    checks accept, e.g. a role ARN), else "example"."""
    if isinstance(kind, msgspec.inspect.Metadata):
        examples = (kind.extra_json_schema or {}).get("examples")
        if examples:
            return examples[0]
    return "example"


def _table_item(kind: msgspec.inspect.Type) -> msgspec.inspect.StructType | None:
    """The table type of a list-of-tables setting (``routes``), else None."""
    if isinstance(kind, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) and isinstance(
        kind.item_type, msgspec.inspect.StructType
    ):
        return kind.item_type
    return None


def reference() -> str:
    """The whole page: every section of :class:`~ingester.config.Settings`, every setting, its default."""
    root = msgspec.inspect.type_info(config.Settings)
    assert isinstance(root, msgspec.inspect.StructType)
    notes = _comments()
    parts = [HEADER]
    defaults = config.Settings()
    for field in root.fields:
        kind = field.type
        item = _table_item(kind)
        if item is not None:
            doc = inspect.cleandoc(item.cls.__dict__.get("__doc__") or "")
            note = notes.get((config.Settings.__name__, field.name), "").replace("# ", "")
            parts.append(f"## [[{field.encode_name}]]\n\n{note}\n\n{doc}\n")
            parts.append(_table_list(field.encode_name, item, notes))
            continue
        assert isinstance(kind, msgspec.inspect.StructType)
        doc = kind.cls.__dict__.get("__doc__") or ""  # the section's own docstring, not its base's
        parts.append(f"## [{field.encode_name}]\n" + (f"\n{doc}\n" if doc else ""))
        parts.extend(_sections(kind, getattr(defaults, field.name), (field.encode_name,), notes))
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"
