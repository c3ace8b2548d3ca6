"""What every command shares: the --config option, loading the settings, and errors -> one line + exit code."""

from __future__ import annotations

import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import uvloop

from ingester import config as config_mod
from ingester.errors import ConfigError, ExitCode, IngesterError, exit_code_for, ingester_errors
from ingester.ops.telemetry import configure_logging

T = TypeVar("T")

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML settings file (see README). Every key can be overridden by INGESTER_<SECTION>__<KEY>.",
)


def settings_from(config_path: Path | None) -> config_mod.Settings:
    settings = config_mod.load(config_path)
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)
    return settings


def settings_or_exit(config_path: Path | None) -> config_mod.Settings:
    try:
        return settings_from(config_path)
    except ConfigError as exc:
        config_error(str(exc))


def config_error(message: str) -> NoReturn:
    click.echo(f"ingester: configuration error: {message}", err=True)
    sys.exit(ExitCode.CONFIG)


def run_command(coro: Coroutine[Any, Any, T]) -> T:
    """uvloop, and IngesterError -> one line on stderr and the table's exit code; anything else is a bug."""
    try:
        return uvloop.run(coro)
    except KeyboardInterrupt:  # Ctrl-C where no drain handler runs (check-config, discover, demo, start-up)
        sys.exit(128 + signal.SIGINT)
    except (IngesterError, BaseExceptionGroup) as exc:
        exit_with(exc)


def exit_with(exc: IngesterError | BaseExceptionGroup[Any]) -> NoReturn:
    """One line per error of the tree on stderr, and the table's code; a foreign part is a bug: re-raised."""
    errors = ingester_errors(exc)
    if errors is None:
        raise exc
    for error in errors:
        if isinstance(error, ConfigError):
            click.echo(f"ingester: configuration error: {error}", err=True)
        else:
            click.echo(f"ingester: {type(error).__name__}: {error}", err=True)
    sys.exit(exit_code_for(exc))
