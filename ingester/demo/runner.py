"""``ingester demo``: the real pipeline against an embedded AWS, with no account and no Kafka cluster.

moto's server runs in this process (a thread serving HTTP on 127.0.0.1); ingester talks to it over HTTP with
aioboto3 exactly as it talks to AWS: Organizations -> AssumeRole -> DescribeTrails -> S3 listing and GETs.
Events go to the NDJSON file sink. The job then runs a second time to show that the checkpoint resumes
without re-sending anything.

The demo is also a self-test: its report says whether every generated record came out, and the command exits
non-zero when one did not. Its output folder is emptied first, so the demo clears only a folder it made (one
holding its ``.ingester-demo`` marker, or only the files it writes): ``--output .`` must not wipe a checkout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from ingester import config as config_mod
from ingester.demo.digests import DigestWriter
from ingester.demo.world import build_organization, upload_logs
from ingester.discovery.discover import known_regions
from ingester.errors import ConfigError
from ingester.integrity import InMemoryPublicKeySource
from ingester.ops.telemetry import RunStatistics, Telemetry
from ingester.pipeline.runtime import run

MARKER = ".ingester-demo"
# What a demo writes into its folder (the file sink's three files, SQLite's and its journals): a folder holding
# only these is a demo's output from before the marker existed.
_DEMO_FILES = frozenset(
    {
        "events.ndjson",
        "events.ndjson.dead-letter.ndjson",
        "events.ndjson.integrity.ndjson",
        "checkpoints.sqlite",
        "checkpoints.sqlite-journal",
        "checkpoints.sqlite-wal",
        "checkpoints.sqlite-shm",
    }
)


class DemoReport(msgspec.Struct, frozen=True):
    text: str
    generated: int  # CloudTrail records uploaded to the embedded S3
    written: int  # events in the output file after both runs

    @property
    def complete(self) -> bool:
        return self.written == self.generated


def check_regions(regions: tuple[str, ...]) -> None:
    """Before anything starts: moto serves botocore's regions only, and an unknown one fails every request."""
    if not regions:
        raise ConfigError("--regions: give at least one region, e.g. us-east-1")
    unknown = [region for region in regions if region not in known_regions()]
    if unknown:
        raise ConfigError(
            f"--regions: {', '.join(unknown)} is not an AWS region (botocore knows e.g. us-east-1, eu-west-1)"
        )


def prepare_output(output: Path) -> None:
    """Empty ``output`` (or create it) and mark it as the demo's; refuse a non-empty folder the demo did not make."""
    entries = list(output.iterdir()) if output.is_dir() else []
    if entries and not (output / MARKER).is_file() and not {entry.name for entry in entries} <= _DEMO_FILES:
        raise ConfigError(
            f"--output {output}: the folder is not empty and was not created by `ingester demo` (no {MARKER} "
            "file); the demo empties its output folder, so give it a new or empty one"
        )
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("Written by `ingester demo`: the next demo run empties this folder.\n")


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))


def _line(label: str, stats: RunStatistics) -> str:
    mb = stats.decompressed_bytes / 1e6
    return (
        f"{label}: {stats.objects_delivered} files delivered, {stats.objects_rejected} rejected, "
        f"{stats.records} events, {stats.dead_letters} dead letters, {mb:.1f} MB decompressed, "
        f"{stats.s3_requests} S3 requests in {stats.elapsed_seconds:.2f} s "
        f"({stats.records_per_second:,.0f} events/s)"
    )


async def run_demo(
    *, accounts: int, regions: tuple[str, ...], days: int, files_per_hour: int, output: Path
) -> DemoReport:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    await asyncio.to_thread(check_regions, regions)
    await asyncio.to_thread(prepare_output, output)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        world = await asyncio.to_thread(build_organization, endpoint, members=max(accounts - 1, 0), log_validation=True)
        start = (datetime.now(UTC) - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        digests = DigestWriter(
            bucket=world.bucket, org_id=world.org_id, trail_name="org-trail", home_region="us-east-1"
        )
        await asyncio.to_thread(
            upload_logs,
            world,
            accounts=world.accounts,
            regions=regions,
            start=start,
            days=days,
            files_per_hour=files_per_hour,
            digests=digests,
        )
        # moto has no cloudtrail:ListPublicKeys: the demo's key enters through run()'s one seam.
        keys = InMemoryPublicKeySource([digests.public_key(start - timedelta(days=1), datetime.now(UTC))])
        settings = config_mod.build(
            {
                "aws": {"endpoint_url": endpoint},
                "discovery": {"mode": "organization", "regions": list(regions)},
                "collection": {"start_time": start.isoformat()},
                "sink": {"type": "file", "file": {"path": str(output / "events.ndjson")}},
                "checkpoint": {"path": str(output / "checkpoints.sqlite")},
            }
        )
        first_telemetry = Telemetry()
        first = await run(
            settings, stop=asyncio.Event(), once=True, telemetry=first_telemetry, public_keys=lambda _r: keys
        )
        second = await run(settings, stop=asyncio.Event(), once=True, public_keys=lambda _r: keys)
    finally:
        server.stop()
    written = _count_lines(output / "events.ndjson")
    text = "\n".join(
        [
            f"embedded AWS at {endpoint}: organization {world.org_id}, {len(world.accounts)} accounts, "
            f"regions {', '.join(regions)}, organization trail {world.trail_arn}",
            f"generated: {world.files} log files, {world.records} CloudTrail records over {days} days, "
            f"{world.digests} signed hourly digests (log file validation)",
            _line("run 1", first),
            f"integrity (run 1): {_counts(first_telemetry.digests)} digest hours reconciled; "
            f"alerts: {_counts(first_telemetry.integrity_alerts) or 'none'} "
            f"(completeness events: {output / 'events.ndjson.integrity.ndjson'})",
            _line("run 2 (restart)", second),
            f"output: {output / 'events.ndjson'} ({written} events; "
            f"{'all' if written == world.records else 'NOT all'} generated records present)",
        ]
    )
    return DemoReport(text, generated=world.records, written=written)
