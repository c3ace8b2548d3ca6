"""Simulated scale (issue 6): a generated organization of many accounts x regions in moto's server.

Measures, in one run: discovery time (ListAccounts, AssumeRole per account, DescribeTrails per account and
region), shards found, memory per running shard job (tracemalloc, after one listing cycle each), S3 LIST calls
of one polling cycle across all shards, and how evenly N worker processes would split the shards.

    .venv/bin/python -m benchmarks.scale --accounts 1000 --regions 4 --workers 3

moto answers a few hundred requests per second on this machine, so absolute times here measure moto as much as
ingester; the per-shard memory, the LIST calls per cycle and the split are properties of ingester alone.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.infra import MotoProcess
from ingester import config as config_mod
from ingester.checkpoint.store import SqliteCheckpointStore
from ingester.connect.aws import AwsClients
from ingester.coordination.partition import Partition, shard_group
from ingester.demo.world import client
from ingester.discovery.discover import discover
from ingester.models import Shard
from ingester.ops.telemetry import Telemetry, configure_logging
from ingester.pipeline.jobs import ShardJob, WorkItem
from ingester.sources.s3 import S3Source

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2", "eu-central-1", "ca-central-1")


def build(endpoint: str, accounts: int) -> str:
    org = client(endpoint, "organizations")
    org.create_organization(FeatureSet="ALL")
    for n in range(accounts - 1):
        org.create_account(Email=f"m{n}@example.com", AccountName=f"m{n}")
    client(endpoint, "s3").create_bucket(Bucket="org-trail")
    trail = client(endpoint, "cloudtrail").create_trail(
        Name="org", S3BucketName="org-trail", IsMultiRegionTrail=True, IsOrganizationTrail=True
    )
    return str(trail["TrailARN"])


async def measure(endpoint: str, regions: tuple[str, ...], workers: int, workdir: Path) -> dict[str, object]:
    settings = config_mod.build(
        {
            "aws": {"endpoint_url": endpoint, "max_pool_connections": 32},
            "discovery": {"mode": "organization", "regions": list(regions)},
            "collection": {"start_time": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
            "checkpoint": {"path": str(workdir / "checkpoints.sqlite")},
        }
    )
    async with AwsClients(settings.aws, settings.discovery) as clients:
        started = time.perf_counter()
        found = await discover(clients, settings)
        discovery_seconds = time.perf_counter() - started
        store = SqliteCheckpointStore(Path(settings.checkpoint.path))
        queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=10)
        s3 = await clients.s3(found.organization.accounts[0])
        telemetry = Telemetry()

        def make(shard: Shard) -> ShardJob:
            source = S3Source(s3, shard.bucket)
            start, lookback = settings.start_datetime(), timedelta(hours=3)
            return ShardJob(shard, source, store, start=start, lookback=lookback, telemetry=telemetry)

        # Warm-up: botocore loads models and builds caches on first use (per region); not a per-shard cost.
        for region in regions:
            first = next(shard for shard in found.shards.values() if shard.region == region)
            await make(first).run(queue, once=True, poll_interval=300)
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        jobs = [make(shard) for shard in found.shards.values()]
        started = time.perf_counter()
        limit = asyncio.Semaphore(32)

        async def one_cycle(job: ShardJob) -> None:
            async with limit:
                await job.run(queue, once=True, poll_interval=300)

        await asyncio.gather(*(one_cycle(job) for job in jobs))
        cycle_seconds = time.perf_counter() - started
        per_shard = (tracemalloc.get_traced_memory()[0] - baseline) / max(len(jobs), 1)
        if os.environ.get("SCALE_TRACE"):
            for stat in tracemalloc.take_snapshot().statistics("lineno")[:12]:
                print(stat)
        tracemalloc.stop()
        store.close()
    split = collections.Counter(
        next(i for i in range(workers) if Partition(i, workers).owns(shard_id)) for shard_id in found.shards
    )
    # Scale-out: shards -> coordination partitions (crc32 % P), partitions -> replicas as the group's
    # round-robin assignor deals them (sorted partitions over sorted members).
    partitions = config_mod.ScaleOutSettings().partitions
    per_partition = collections.Counter(shard_group(shard_id, partitions) for shard_id in found.shards)
    replicas = collections.Counter({r: 0 for r in range(workers)})
    for p in range(partitions):
        replicas[p % workers] += per_partition[p]
    return {
        "accounts": len(found.organization.accounts),
        "regions": len(regions),
        "shards": len(found.shards),
        "discovery_seconds": round(discovery_seconds, 1),
        "poll_cycle_seconds": round(cycle_seconds, 1),
        "list_calls_per_cycle": sum(job.source.list_requests for job in jobs),
        "memory_per_shard_bytes": int(per_shard),
        "split_over_workers": dict(sorted(split.items())),
        f"split_over_replicas_p{partitions}": dict(sorted(replicas.items())),
        "shards_per_partition_min_max": (min(per_partition.values()), max(per_partition.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning", "console")  # one info line per shard listed would drown the result
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    with tempfile.TemporaryDirectory() as tmp:
        moto = MotoProcess(Path(tmp))
        moto.start(seed=1)
        try:
            started = time.perf_counter()
            build(moto.endpoint, args.accounts)
            print(f"built an organization of {args.accounts} accounts in {time.perf_counter() - started:.1f} s")
            result = asyncio.run(measure(moto.endpoint, REGIONS[: args.regions], args.workers, Path(tmp)))
        finally:
            moto.stop()
    for name, value in result.items():
        print(f"{name:>24}: {value}")


if __name__ == "__main__":
    main()
