"""The command line (click): ``run``, ``discover``, ``demo``. The only place that reads the environment.

Errors from the tree in :mod:`ingester.errors` end the process with one clear line and exit code 2 (config) or
1 (everything else); a traceback is a bug. SIGTERM/SIGINT start an ordered drain; a second one exits at once
(the checkpoint is committed transactionally, so exiting mid-run re-sends at most the unacknowledged objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
import uvloop
from tqdm import tqdm

from ingester import config as config_mod
from ingester.errors import ConfigError, IngesterError
from ingester.signals import install_signal_handlers
from ingester.telemetry import Telemetry, configure_logging

T = TypeVar("T")

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML settings file (see README). Every key can be overridden by INGESTER_<SECTION>__<KEY>.",
)


def _settings(config_path: Path | None) -> config_mod.Settings:
    settings = config_mod.load(config_path)
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_format)
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """uvloop, and IngesterError -> one line on stderr and a non-zero exit."""
    try:
        return uvloop.run(coro)
    except* ConfigError as group:
        click.echo(f"ingester: configuration error: {group.exceptions[0]}", err=True)
        sys.exit(2)
    except* IngesterError as group:
        for exc in group.exceptions:
            click.echo(f"ingester: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


@click.group()
def main() -> None:
    """ingester: collect AWS CloudTrail logs from S3 into Kafka, losing nothing."""


@main.command()
@CONFIG_OPTION
@click.option("--once", is_flag=True, help="List every shard once, deliver everything found, then exit.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Collector processes, each owning a share of the shards (default: collection.workers; 0 = one per CPU).",
)
def run(config_path: Path | None, once: bool, workers: int | None) -> None:
    """Discover trails and collect their logs until SIGTERM (or, with --once, until caught up)."""
    try:
        settings = _settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    requested = settings.collection.workers if workers is None else workers
    count = requested or os.cpu_count() or 1
    if settings.notifications.queue_url and count > 1:
        # A notification names a file, not a worker: a receiver in one process cannot hand a file to the shard
        # job of another. Until receivers route across processes, notification mode runs one process.
        if requested > 1:
            raise click.ClickException("notification mode (notifications.queue_url) supports one worker process")
        count = 1
    if count > 1:
        from ingester.processes import run_workers

        sys.exit(run_workers(settings, workers=count, once=once))

    async def go() -> None:
        from ingester.runtime import run as run_pipeline

        stop = asyncio.Event()
        install_signal_handlers(stop)
        telemetry = Telemetry()
        stats = await run_pipeline(settings, stop=stop, once=once, telemetry=telemetry)
        click.echo(msgspec.json.encode(stats).decode())

    _run(go())


@main.command()
@CONFIG_OPTION
@click.option(
    "--since",
    required=True,
    help="Collect files from this date or RFC 3339 time on (shards with a checkpoint resume from it instead).",
)
def backfill(config_path: Path | None, since: str) -> None:
    """Collect history once, with a progress bar (files, records, ETA), then exit."""
    try:
        settings = _settings(config_path)
        config_mod.parse_time(since)
        settings = msgspec.structs.replace(
            settings, collection=msgspec.structs.replace(settings.collection, start_time=since)
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc

    async def go() -> None:
        from ingester.runtime import run as run_pipeline

        stop = asyncio.Event()
        install_signal_handlers(stop)
        telemetry = Telemetry()
        done = asyncio.Event()

        async def progress() -> None:
            with tqdm(unit="file", dynamic_ncols=True, desc="backfill") as bar:
                while True:
                    stats = telemetry.statistics()
                    settled = stats.objects_delivered + stats.objects_rejected + stats.objects_errored
                    bar.total = max(telemetry.objects_listed, settled)
                    bar.n = settled
                    bar.set_postfix(records=stats.records, dead_letters=stats.dead_letters, refresh=False)
                    bar.refresh()
                    if done.is_set():
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), 0.5)

        async with asyncio.TaskGroup() as group:
            group.create_task(progress(), name="progress")
            try:
                stats = await run_pipeline(settings, stop=stop, once=True, telemetry=telemetry)
            finally:
                done.set()
        click.echo(msgspec.json.encode(stats).decode())

    _run(go())


@main.command(name="check-config")
@CONFIG_OPTION
def check_config(config_path: Path | None) -> None:
    """Validate the settings and check AWS identity, Organizations, CloudTrail and Kafka; one line each."""
    try:
        settings = _settings(config_path)
    except ConfigError as exc:
        click.echo(f"FAIL config: {exc}")
        sys.exit(2)
    click.echo(f"ok   config: {config_path or 'defaults'} (+ INGESTER_* environment)")

    async def go() -> bool:
        from ingester.checks import run_checks

        results = await run_checks(settings)
        for check in results:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        return all(check.ok for check in results)

    if not _run(go()):
        sys.exit(1)


@main.command()
@CONFIG_OPTION
def discover(config_path: Path | None) -> None:
    """Print the accounts, trails and shards that `run` would collect, and exit."""
    try:
        settings = _settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc

    async def go() -> None:
        from ingester.aws import AwsClients
        from ingester.discovery.discover import discover as discover_all

        async with AwsClients(settings.aws, settings.discovery) as clients:
            found = await discover_all(clients, settings)
        click.echo(f"organization: {found.organization.org_id or '-'}")
        click.echo(f"accounts ({len(found.organization.accounts)}): {', '.join(found.organization.accounts)}")
        for account in found.failed_accounts:
            click.echo(f"  failed: {account}")
        for trail in sorted({t.arn: t for t in found.trails}.values(), key=lambda t: t.arn):
            kind = "organization" if trail.organization else "account"
            scope = "multi-region" if trail.multi_region else trail.home_region
            digests = "digests: log file validation" if trail.log_validation else "no digests"
            click.echo(f"trail {trail.arn} ({kind}, {scope}, {digests}) -> s3://{trail.bucket}/{trail.key_prefix}")
        click.echo(f"shards ({len(found.shards)}):")
        for shard_id in sorted(found.shards):
            click.echo(f"  {shard_id}")

    _run(go())


@main.command()
@click.option("--accounts", default=3, show_default=True, help="Accounts in the generated organization.")
@click.option("--regions", default="us-east-1,eu-west-1", show_default=True, help="Comma-separated regions.")
@click.option("--days", default=2, show_default=True, help="Days of logs per account and region.")
@click.option("--files-per-hour", default=4, show_default=True, help="Log files per account, region and hour.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-output"),
    show_default=True,
    help="Directory for the NDJSON events, dead letters and the checkpoint database.",
)
def demo(accounts: int, regions: str, days: int, files_per_hour: int, output: Path) -> None:
    """Run the whole pipeline on an embedded AWS (moto) with a generated organization; no AWS, no Kafka."""
    from ingester.demo.runner import run_demo

    configure_logging(os.environ.get("INGESTER_TELEMETRY__LOG_LEVEL", "warning"), "console")
    region_list = tuple(r.strip() for r in regions.split(",") if r.strip())
    report = _run(
        run_demo(accounts=accounts, regions=region_list, days=days, files_per_hour=files_per_hour, output=output)
    )
    click.echo(report)


if __name__ == "__main__":
    main()
