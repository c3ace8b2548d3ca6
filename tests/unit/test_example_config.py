"""The documented example configuration must stay valid: users copy it."""

from __future__ import annotations

from pathlib import Path

from ingester import config

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"


def test_example_config_loads_with_its_documented_values() -> None:
    settings = config.load(EXAMPLE, environ={})
    assert settings.discovery.mode == "organization"
    assert settings.collection.lookback_seconds == 10800
    assert settings.kafka.delivery == "at_least_once"
    assert settings.telemetry.metrics_port == 9108
    assert settings.start_datetime() is not None


def test_the_example_writes_nothing_outside_the_working_directory() -> None:
    """README runs it from a checkout, perhaps as root: its state must not land in a system path."""
    settings = config.load(EXAMPLE, environ={})

    for path in (settings.checkpoint.path, settings.sink.file.path):
        assert not Path(path).is_absolute(), path
