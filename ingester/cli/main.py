"""The command line (click): ``run``, ``backfill``, ``check-config``, ``discover``, ``demo``, and ``checkpoint
show | reset | rebuild`` (cli/checkpoint.py). The only place that reads the environment.

Every command exits with a code from one table (:class:`ingester.errors.ExitCode`; docs/exit-codes.md says
which command returns which), so a cron job or an orchestrator can tell "fix the settings" from "AWS or Kafka
is down" from "there is nothing to collect" without parsing messages:

    0      ok
    1      internal error: a bug (the traceback is on stderr)
    2      configuration or usage error: settings, options, a ``demo --output`` folder the demo did not create
    3      nothing to collect: discovery found no shard (run --once, backfill, check-config, discover)
    4      AWS: credentials, Organizations, AssumeRole, CloudTrail, S3 (discover: an account failed)
    5      sink: Kafka (or the file sink) unreachable or not acknowledging
    6      checkpoint store unreadable, unwritable or corrupt, or locked by another collector (named)
    7      incomplete: run --once / backfill gave up on a shard or an object (the next run collects it), the
           drain timed out; the demo missed generated records
    128+N  signal N: a second SIGTERM (143) or SIGINT (130) exits at once; a worker process killed by N

Errors from the tree in :mod:`ingester.errors` end the process with one line on stderr and their class's code;
anything else is a bug and keeps its traceback (exit 1). ``run --workers N`` exits as one process would:
processes.py maps its children's codes to the same table. "Nothing to collect" is never a silent success:
with --once it is logged as a warning and exits 3. SIGTERM/SIGINT start an ordered drain; a second one exits
at once (the checkpoint is committed transactionally, so exiting mid-run re-sends at most the unacknowledged
objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import click
import msgspec
from tqdm import tqdm

from ingester import config as config_mod
from ingester.cli.checkpoint import checkpoint
from ingester.cli.common import (
    CONFIG_OPTION,
    config_error,
    exit_with,
    run_command,
    settings_from,
    settings_or_exit,
)
from ingester.errors import ConfigError, ExitCode, IngesterError
from ingester.ops.signals import install_signal_handlers
from ingester.ops.telemetry import Telemetry, configure_logging
from ingester.pipeline.cpus import default_workers


@click.group()
@click.version_option(package_name="ingester", message="ingester %(version)s")
def main() -> None:
    """ingester: collect AWS CloudTrail logs from S3 into Kafka, losing nothing."""


@main.command()
@CONFIG_OPTION
@click.option("--once", is_flag=True, help="List every shard once, deliver everything found, then exit.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Collector processes, each owning a share of the shards (default: collection.workers; 0 = one per CPU "
    "the process may use: the cgroup CPU quota and affinity).",
)
@click.option(
    "--from-scratch",
    is_flag=True,
    help="A shard missing from the checkpoint starts at collection.start_time, even if its events are in the topic"
    " (default: its state is rebuilt from the topic; see `ingester checkpoint rebuild`).",
)
def run(config_path: Path | None, once: bool, workers: int | None, from_scratch: bool) -> None:
    """Discover trails and collect their logs until SIGTERM (or, with --once, until caught up)."""
    settings = settings_or_exit(config_path)
    if from_scratch:
        settings = msgspec.structs.replace(
            settings, checkpoint=msgspec.structs.replace(settings.checkpoint, restore_from_kafka=False)
        )
    requested = settings.collection.workers if workers is None else workers
    count = requested or default_workers()
    if settings.notifications.queue_url and count > 1 and not settings.scaleout.enabled:
        # A notification names a file, not a worker: a receiver in one process cannot hand a file to the shard
        # job of another. Scale-out routes it through Kafka (coordination/announcements.py), each worker being a
        # member of the group; without it, notification mode runs one process.
        if requested > 1:
            config_error(
                "notification mode (notifications.queue_url) supports one worker process, or any number with "
                "scaleout.enabled"
            )
        count = 1
    if count > 1:
        from ingester.pipeline.processes import run_workers

        try:
            sys.exit(run_workers(settings, workers=count, once=once))
        except IngesterError as exc:  # the checkpoint's lock, taken by the parent for the run
            exit_with(exc)

    async def go() -> ExitCode:
        from ingester.pipeline.processes import report_outcome, run_exit_code
        from ingester.pipeline.runtime import run as run_pipeline

        stop = asyncio.Event()
        install_signal_handlers(stop)
        telemetry = Telemetry()
        stats = await run_pipeline(settings, stop=stop, once=once, telemetry=telemetry)
        click.echo(msgspec.json.encode(stats).decode())
        return report_outcome(run_exit_code(stats, telemetry, once=once, stopped=stop.is_set()), stats, telemetry)

    sys.exit(run_command(go()))


@main.command()
@CONFIG_OPTION
@click.option(
    "--since",
    required=True,
    help="Collect files from this date or RFC 3339 time on (shards with a checkpoint resume from it instead).",
)
def backfill(config_path: Path | None, since: str) -> None:
    """Collect history once, with a progress bar (files, records, ETA), then exit."""
    settings = settings_or_exit(config_path)
    try:
        config_mod.parse_time(since)
    except ConfigError as exc:
        config_error(f"--since: {exc}")
    settings = msgspec.structs.replace(
        settings, collection=msgspec.structs.replace(settings.collection, start_time=since)
    )

    async def go() -> ExitCode:
        from ingester.pipeline.processes import report_outcome, run_exit_code
        from ingester.pipeline.runtime import run as run_pipeline

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
        return report_outcome(run_exit_code(stats, telemetry, once=True, stopped=stop.is_set()), stats, telemetry)

    sys.exit(run_command(go()))


@main.command(name="check-config")
@CONFIG_OPTION
def check_config(config_path: Path | None) -> None:
    """Validate the settings, then check AWS identity, Organizations, CloudTrail, the trails discovery finds, the
    read access to their buckets and the sink; one line each. Exits with the code of the first FAIL line."""
    from ingester.cli.checks import run_checks

    try:
        settings = settings_from(config_path)
    except ConfigError as exc:
        click.echo(f"FAIL config: {exc}")
        sys.exit(ExitCode.CONFIG)
    click.echo(f"ok   config: {config_path or 'defaults'} (+ INGESTER_* environment)")
    results = run_command(run_checks(settings))
    for check in results:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    sys.exit(next((check.code for check in results if not check.ok), ExitCode.OK))


@main.command(name="config-reference")
def config_reference() -> None:
    """Print every setting with its default, type, environment variable and meaning (docs/configuration.md)."""
    from ingester.cli.reference import reference

    click.echo(reference(), nl=False)


@main.command()
@CONFIG_OPTION
def discover(config_path: Path | None) -> None:
    """Print the accounts, trails and shards that `run` would collect, and exit.

    Exits 4 if discovery failed in any account (each is listed with the reason), else 3 if it found no shard."""
    from ingester.connect.aws import AwsClients
    from ingester.discovery.discover import Discovery
    from ingester.discovery.discover import discover as discover_all

    settings = settings_or_exit(config_path)

    async def go() -> Discovery:
        async with AwsClients(settings.aws, settings.discovery) as clients:
            return await discover_all(clients, settings)

    found = run_command(go())
    accounts = found.organization.accounts
    click.echo(f"organization: {found.organization.org_id or '-'}")
    click.echo(f"accounts ({len(accounts)}): {', '.join(accounts)}")
    for failure in found.failures:
        click.echo(f"  failed: {failure.account}: {' '.join(failure.reason.split())}")
    for trail in sorted({t.arn: t for t in found.trails}.values(), key=lambda t: t.arn):
        kind = "organization" if trail.organization else "account"
        scope = "multi-region" if trail.multi_region else trail.home_region
        digests = "digests: log file validation" if trail.log_validation else "no digests"
        click.echo(f"trail {trail.arn} ({kind}, {scope}, {digests}) -> s3://{trail.bucket}/{trail.key_prefix}")
    click.echo(f"shards ({len(found.shards)}):")
    for shard_id in sorted(found.shards):
        click.echo(f"  {shard_id}")
    if found.failures:
        click.echo(f"ingester: discovery failed in {len(found.failures)} of {len(accounts)} accounts", err=True)
        sys.exit(ExitCode.AWS)
    if not found.shards:
        click.echo("ingester: nothing to collect: no trails found (none delivers to S3)", err=True)
        sys.exit(ExitCode.NOTHING_TO_COLLECT)


@main.command()
@click.option(
    "--accounts", type=click.IntRange(min=1), default=3, show_default=True, help="Accounts in the organization."
)
@click.option("--regions", default="us-east-1,eu-west-1", show_default=True, help="Comma-separated regions.")
@click.option("--days", type=click.IntRange(min=1), default=2, show_default=True, help="Days of logs per region.")
@click.option(
    "--files-per-hour",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Log files per account, region and hour.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-output"),
    show_default=True,
    help="Directory for the NDJSON events, dead letters and the checkpoint database. Emptied first, so it must be"
    " new, empty, or a previous demo's output.",
)
def demo(accounts: int, regions: str, days: int, files_per_hour: int, output: Path) -> None:
    """Run the whole pipeline on an embedded AWS (moto) with a generated organization; no AWS, no Kafka.

    Exits 7 if not every generated record came out: the demo is also a self-test."""
    from ingester.demo.runner import run_demo

    configure_logging(os.environ.get("INGESTER_TELEMETRY__LOG_LEVEL", "warning"), "console")
    region_list = tuple(r.strip() for r in regions.split(",") if r.strip())
    report = run_command(
        run_demo(accounts=accounts, regions=region_list, days=days, files_per_hour=files_per_hour, output=output)
    )
    click.echo(report.text)
    if not report.complete:
        click.echo(f"ingester: demo: {report.written} of {report.generated} generated records delivered", err=True)
        sys.exit(ExitCode.INCOMPLETE)


main.add_command(checkpoint)

if __name__ == "__main__":
    main()
