"""``ingester checkpoint show | reset | rebuild``: the SQLite checkpoint (``checkpoint.path``), by hand.

``show`` only reads (a running collector is not disturbed: SQLite readers never block its WAL writer).
``reset`` and ``rebuild`` write, so they take the store's lock (checkpoint/lock.py) and refuse, exit 6 with the
holder named, while a collector runs: a collector holds its shards' state in memory and would overwrite theirs.
The Kafka checkpoint stores (exactly_once, scale-out) have no file: these commands refuse them (exit 2).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import msgspec

from ingester import config as config_mod
from ingester.checkpoint.lock import StoreLock, is_locked, lock_path, read_holder
from ingester.checkpoint.rebuild import ScanReport, scan_topic, shard_of
from ingester.checkpoint.store import ShardState, SqliteCheckpointStore
from ingester.cli.common import CONFIG_OPTION, exit_with, run_command, settings_or_exit
from ingester.errors import ConfigError, ExitCode, IngesterError
from ingester.sources.keys import key_time, minute_key, resume_point

# Shards' remembered keys are listed with --keys; this many per shard at most, the newest.
KEYS_SHOWN = 50


class ShardView(msgspec.Struct, frozen=True, kw_only=True):
    """One shard as ``show --json`` prints it."""

    shard_id: str
    watermark: str | None
    lag_seconds: float | None
    updated_at: str
    remembered: int
    # Settled ahead of the watermark: out of order, waiting for an earlier key to settle.
    ahead: int
    keys: tuple[str, ...] = ()


def shard_view(state: ShardState, now: datetime, *, keys: bool) -> ShardView:
    """What ``show`` says about one shard, decided without I/O."""
    when = key_time(state.watermark) if state.watermark else None
    ahead = sum(1 for key in state.remembered if state.watermark is None or key > state.watermark)
    return ShardView(
        shard_id=state.shard_id,
        watermark=state.watermark,
        lag_seconds=None if when is None else round((now - when).total_seconds()),
        updated_at=_iso(state.updated_at),
        remembered=len(state.remembered),
        ahead=ahead,
        keys=state.remembered[-KEYS_SHOWN:] if keys else (),
    )


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=int(seconds))) if seconds >= 0 else f"-{timedelta(seconds=int(-seconds))}"


def _store_path(settings: config_mod.Settings) -> Path:
    exactly_once = settings.sink.type == "kafka" and settings.kafka.delivery == "exactly_once"
    if settings.scaleout.enabled or exactly_once:
        where = "scale-out's coordination topic" if settings.scaleout.enabled else "kafka.checkpoint_topic"
        raise ConfigError(f"this configuration keeps the checkpoint in Kafka ({where}), not in checkpoint.path")
    return Path(settings.checkpoint.path)


@click.group()
def checkpoint() -> None:
    """Show, move or rebuild the SQLite checkpoint (checkpoint.path)."""


@checkpoint.command()
@CONFIG_OPTION
@click.option("--keys", is_flag=True, help=f"List each shard's remembered keys (the newest {KEYS_SHOWN}).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per shard.")
def show(config_path: Path | None, keys: bool, as_json: bool) -> None:
    """Each shard's watermark, lag and remembered keys, and who holds the store."""
    settings = settings_or_exit(config_path)
    try:
        path = _store_path(settings)
        store = SqliteCheckpointStore(path, readonly=True)
        try:
            states = store.states()
        finally:
            store.close()
    except IngesterError as exc:
        exit_with(exc)
    now = datetime.now(UTC)
    views = [shard_view(state, now, keys=keys) for state in states]
    if as_json:
        for view in views:
            click.echo(msgspec.json.encode(view).decode())
        return
    holder = read_holder(lock_path(path)) if is_locked(path) else None
    click.echo(
        f"checkpoint {path}: {len(views)} shards; " + (f"in use by {holder.describe()}" if holder else "not in use")
    )
    for view in views:
        click.echo(
            f"{view.shard_id}  watermark {view.watermark or '-'}  lag {_lag(view.lag_seconds)}  "
            f"remembered {view.remembered} ({view.ahead} ahead of the watermark)  updated {view.updated_at}"
        )
        for key in view.keys:
            click.echo(f"    {key}{'  (ahead)' if view.watermark is None or key > view.watermark else ''}")


@checkpoint.command()
@CONFIG_OPTION
@click.option("--shard", "shard_id", required=True, help="The shard id, as `show` prints it (s3://bucket/.../region/).")
@click.option("--to", "to", required=True, help="Date or RFC 3339 time to collect from again (or to skip to).")
def reset(config_path: Path | None, shard_id: str, to: str) -> None:
    """Move one shard's watermark to a time; its remembered keys are forgotten.

    The next run lists the shard from that time minus collection.lookback_seconds (as after any restart) and
    sends every file it finds from there: backwards, it collects again (duplicates by choice); forwards, it
    skips what lies between. Refused (exit 6) while a collector holds the store."""
    settings = settings_or_exit(config_path)
    try:
        when = config_mod.parse_time(to)
        path = _store_path(settings)
        bucket, _, prefix = shard_id.removeprefix("s3://").partition("/")
        shard = shard_of(bucket, prefix) if shard_id.startswith("s3://") else None
        if shard is None or shard.shard_id != shard_id:
            raise ConfigError(f"--shard {shard_id!r} is not a shard id (s3://<bucket>/[prefix/]AWSLogs/.../<region>/)")
        watermark = minute_key(shard, when)
        with StoreLock.acquire(path):
            store = SqliteCheckpointStore(path)
            try:
                before = {state.shard_id: state.watermark for state in store.states()}
                if shard_id not in before:
                    raise ConfigError(
                        f"--shard {shard_id} is not in the checkpoint {path} (`checkpoint show` lists them)"
                    )
                store.reset(shard_id, watermark)
            finally:
                store.close()
    except IngesterError as exc:
        exit_with(exc)
    lookback = timedelta(seconds=settings.collection.lookback_seconds)
    listed_from = resume_point(watermark, lookback)
    click.echo(f"{shard_id}: watermark {before[shard_id] or '-'} -> {watermark}")
    click.echo(
        f"the next run lists it from {listed_from:%Y-%m-%dT%H:%M:%SZ} ({to} minus the lookback) and sends every file"
        " it finds from there"
    )


@checkpoint.command()
@CONFIG_OPTION
@click.option(
    "--max-records",
    type=click.IntRange(min=1),
    default=None,
    help="Records read back per partition, at most (default: checkpoint.rebuild_scan_records).",
)
def rebuild(config_path: Path | None, max_records: int | None) -> None:
    """Rebuild the state of every shard missing from the checkpoint from the output topic's provenance headers.

    Shards already in the checkpoint are kept. To rebuild everything (a corrupt file), move the file away first.
    `ingester run` does the same by itself for the shards it starts (unless --from-scratch). Refused (exit 6)
    while a collector holds the store."""
    settings = settings_or_exit(config_path)
    started = time.monotonic()
    try:
        path = _store_path(settings)
        if settings.sink.type != "kafka":
            raise ConfigError("checkpoint rebuild reads the Kafka topic: sink.type is not kafka")
        with StoreLock.acquire(path):
            report: ScanReport = run_command(
                scan_topic(
                    settings.kafka,
                    aws_region=settings.aws.region,
                    lookback=timedelta(seconds=settings.collection.lookback_seconds),
                    window_files=settings.collection.max_inflight_objects,
                    max_records=max_records or settings.checkpoint.rebuild_scan_records,
                )
            )
            store = SqliteCheckpointStore(path)
            try:
                written = {
                    shard_id: store.restore(shard_id, found.watermark, set(found.settled))
                    for shard_id, found in sorted(report.restored.items())
                }
            finally:
                store.close()
    except IngesterError as exc:
        exit_with(exc)
    now = datetime.now(UTC)
    for shard_id, found in sorted(report.restored.items()):
        if not written[shard_id]:
            click.echo(f"kept     {shard_id}: already in the checkpoint")
            continue
        when = key_time(found.watermark) if found.watermark else None
        lag = _lag(None if when is None else (now - when).total_seconds())
        click.echo(
            f"restored {shard_id}: watermark {found.watermark or '- (first pass)'} (lag {lag}), "
            f"{len(found.settled)} files remembered, {found.files_seen} seen, newest {found.newest_key}"
        )
    click.echo(
        f"{settings.kafka.topic}: {report.records_read} records read in {time.monotonic() - started:.1f} s, "
        f"{sum(written.values())} shards restored, {len(written) - sum(written.values())} kept"
        + (f", {report.unattributed} records without origin headers" if report.unattributed else "")
    )
    if report.cut_short:
        limit = max_records or settings.checkpoint.rebuild_scan_records
        click.echo(
            f"partitions {list(report.cut_short)}: stopped after {limit} records; a shard not found there starts"
            " from collection.start_time (raise --max-records)",
            err=True,
        )
    if not report.restored:
        click.echo(f"nothing to rebuild: no record of {settings.kafka.topic} carries origin headers", err=True)
    raise SystemExit(ExitCode.OK)
