"""The tree reads as the pipeline (docs/architecture.md): imports run one way, down the floors, never back up.

A module may import from its own floor or a lower one. A cycle between floors (coordination typing the
Supervisor, a sink reaching into the runtime) is how a layout rots: this test names the offending import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "ingester"

# Lowest first. The key is the first part of the module path under ingester/.
FLOORS: dict[str, int] = {
    # the shared ground: values, errors, settings
    "models": 0,
    "errors": 0,
    "config": 0,
    # connection setup, and watching (metrics, logs, health, signals)
    "connect": 1,
    "ops": 1,
    # the stages of the data path and their state
    "codec": 2,
    "sources": 2,
    "sinks": 2,
    "checkpoint": 2,
    "discovery": 2,
    "integrity": 2,
    # who owns which shard (worker processes, scale-out replicas)
    "coordination": 3,
    # the engine: supervisor, shard jobs, workers, processes
    "pipeline": 4,
    # the process boundary: commands, the demo
    "cli": 5,
    "demo": 5,
    "__main__": 6,
    "__init__": 6,
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


def _floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # ``ingester`` itself: the package's __init__
        return FLOORS["__init__"]
    return FLOORS[parts[1]]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``ingester.*`` module the file imports, wherever the import is (TYPE_CHECKING, inside a function)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ingester.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ingester"):
            if node.module == "ingester":  # ``from ingester import ops``: the names are the modules
                found += [(node.lineno, f"ingester.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_floor() -> None:
    tops = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in SOURCES}
    assert tops <= FLOORS.keys(), (
        f"new top-level modules need a floor here and in docs/architecture.md: {tops - FLOORS.keys()}"
    )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_run_down_the_floors(path: Path) -> None:
    here = _floor(_module(path))
    upward = [
        f"{path.relative_to(ROOT.parent)}:{line} imports {target} (floor {_floor(target)} > {here})"
        for line, target in _imports(path)
        if _floor(target) > here
    ]
    assert not upward, "\n".join(upward)


def test_the_floor_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a sink importing the runtime is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ingester.pipeline.runtime import run\nimport ingester.cli.main\n")
    assert [t for _, t in _imports(bad)] == ["ingester.pipeline.runtime", "ingester.cli.main"]
    assert all(_floor(t) > FLOORS["sinks"] for _, t in _imports(bad))


# A module a reader can hold in mind: about 400 lines. Declarations whose length is their content are exempt.
MAX_LINES = 420
LONG_BY_NATURE = {
    # the settings schema: one declaration per setting with the comment docs/configuration.md is generated from
    "config.py",
}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_no_module_is_too_long_to_read(path: Path) -> None:
    if str(path.relative_to(ROOT)) in LONG_BY_NATURE:
        return
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT.parent)} has {lines} lines: split it by responsibility"
