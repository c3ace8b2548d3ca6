"""docs/configuration.md is generated from the Settings Structs; it must be current and complete."""

from __future__ import annotations

from pathlib import Path

import msgspec
from click.testing import CliRunner

from ingester import config
from ingester.cli.main import main
from ingester.cli.reference import reference

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _settings(struct: type[msgspec.Struct], path: tuple[str, ...] = ()) -> list[str]:
    found: list[str] = []
    for field in msgspec.inspect.type_info(struct).fields:  # type: ignore[attr-defined]
        if isinstance(field.type, msgspec.inspect.VarTupleType) and isinstance(
            field.type.item_type, msgspec.inspect.StructType
        ):
            continue  # a list of tables ([[routes]]): the file only, checked below
        if isinstance(field.type, msgspec.inspect.StructType):
            found += _settings(field.type.cls, (*path, field.encode_name))
        else:
            found.append(config.ENV_PREFIX + "__".join((*path, field.encode_name)).upper())
    return found


def test_the_committed_reference_is_current() -> None:
    assert PAGE.read_text() == reference(), (
        "docs/configuration.md is stale: run `.venv/bin/ingester config-reference > docs/configuration.md`"
    )


def test_every_setting_is_in_the_reference_with_a_description() -> None:
    page = reference()
    for field in msgspec.inspect.type_info(config.RouteSettings).fields:  # type: ignore[attr-defined]
        assert f"\n{field.encode_name} =" in page or f"\n# {field.encode_name} =" in page, field.name
    variables = _settings(config.Settings)
    assert len(variables) > 70
    for name in variables:
        assert f"environment: {name}\n" in page, name
    undocumented = [
        block.splitlines()[-1]
        for block in page.split("\n\n")
        if block.startswith("# ") and "; environment: INGESTER_" in block.splitlines()[0]
    ]
    assert not undocumented, f"settings without a comment in config.py: {undocumented}"


def test_every_default_in_the_reference_loads_back() -> None:
    """The TOML blocks are valid TOML that loads into the default Settings."""
    import tomllib

    merged: dict[str, object] = {}
    for block in reference().split("```toml\n")[1:]:
        body = tomllib.loads(block.split("```")[0])
        if "routes" in body:  # the example entry of a list of tables: valid, not a default
            assert config.build(body).routes[0].name == "example"
            continue
        if "buckets" in body:  # its example role ARN passes the load-time check
            assert config.build(body).buckets[0].role_arn.startswith("arn:aws:iam::")
            continue
        for section, values in body.items():
            node = merged.setdefault(section, {})
            assert isinstance(node, dict)
            node.update(values)
    assert config.build(merged) == config.Settings()


def test_cli_prints_the_reference_and_the_version() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["config-reference"]).output == reference()
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0
    assert version.output.startswith("ingester ")
