"""The benchmark's input: deterministic CloudTrail log files, written to a local directory and uploaded to moto.

Layout: one organization trail; every (account, region) is a shard; each shard gets its share of ``files``, one
file every 5 minutes (CloudTrail's delivery cadence) from midnight UTC a few days ago. Sizes are a mix: most
files are small (1 to ~180 records, skewed small, as in quiet accounts) and ``LARGE_FRACTION`` are large (1,000
to 4,000 records, a busy account's 5 minutes): the ``mixed`` profile, ~90 records per file. The ``small`` profile
is 1 to 10 records per file, as accounts with little activity write every 5 minutes: per-GET and per-file costs
dominate it (issue 13). Record counts depend only on (seed, shard index, file index), and
moto is seeded, so the org id, the account ids and the key suffixes repeat run after run. The dates move with the
day of the run, and so do record contents (the generator seeds each file with its timestamp): that changes the
bytes by a fraction of a percent, never the counts.

Generation runs in one process per CPU (the generator is pure Python); the manifest (``dataset.json``) lists
every file with its record count and sizes, and is what every mode's count is checked against.
"""

from __future__ import annotations

import gzip
import math
import random
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from benchmarks.common import Dataset, FileEntry
from ingester.demo.generate import generate_records, log_file_bytes, log_key, random_suffix
from ingester.demo.world import DEMO_CREDENTIALS, World, client
from ingester.models import Shard

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
MEMBER_ACCOUNTS = 3
FILE_INTERVAL_MINUTES = 5
SMALL_MAX_RECORDS = 180
LARGE_FRACTION = 0.025
LARGE_RECORDS = (1_000, 4_000)
SMALL_PROFILE_RECORDS = (1, 10)
UPLOAD_THREADS = 8
Profile = Literal["mixed", "small"]


def record_count(seed: int, shard: int, index: int, profile: Profile = "mixed") -> int:
    rng = random.Random(f"bench|{seed}|{shard}|{index}")
    if profile == "small":
        return rng.randint(*SMALL_PROFILE_RECORDS)
    if rng.random() < LARGE_FRACTION:
        return rng.randint(*LARGE_RECORDS)
    return 1 + int(SMALL_MAX_RECORDS * rng.random() ** 3)


def _generate_shard(
    root: Path, seed: int, shard_index: int, shard: Shard, start: datetime, count: int, profile: Profile
) -> list[FileEntry]:
    entries: list[FileEntry] = []
    for index in range(count):
        when = start + timedelta(minutes=FILE_INTERVAL_MINUTES * index)
        rng = random.Random(f"bench-key|{seed}|{shard_index}|{index}")
        key = log_key(shard.account_id, shard.region, when, random_suffix(rng), shard.org_id)
        records = record_count(seed, shard_index, index, profile)
        body = log_file_bytes(
            generate_records(seed, shard.account_id, shard.region, when, records, FILE_INTERVAL_MINUTES * 60)
        )
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        entries.append(FileEntry(key, shard_index, records, len(body), len(gzip.decompress(body))))
    return entries


def shards_of(world: World, regions: Sequence[str]) -> list[Shard]:
    """The shards discovery finds for the organization trail, in the order the files are generated."""
    return [
        Shard(
            trail_arn=world.trail_arn,
            bucket=world.bucket,
            key_prefix="",
            org_id=world.org_id,
            account_id=account,
            region=region,
            reader_account=world.management_account,
        )
        for account in world.accounts
        for region in regions
    ]


def generate(world: World, root: Path, *, seed: int, files: int, workers: int, profile: Profile = "mixed") -> Dataset:
    """Write ``files`` log files under ``root`` (``root/<key>``), spread evenly over the shards."""
    shards = shards_of(world, REGIONS)
    per_shard = [files // len(shards) + (1 if n < files % len(shards) else 0) for n in range(len(shards))]
    span_days = math.ceil(max(per_shard) * FILE_INTERVAL_MINUTES / 1440)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=span_days + 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_generate_shard, root, seed, n, shard, start, count, profile)
            for n, (shard, count) in enumerate(zip(shards, per_shard, strict=True))
        ]
        entries = [entry for future in futures for entry in future.result()]
    return Dataset(
        seed=seed,
        start=start.isoformat(),
        bucket=world.bucket,
        org_id=world.org_id,
        trail_arn=world.trail_arn,
        accounts=list(world.accounts),
        regions=list(REGIONS),
        shards=shards,
        files=entries,
    )


def upload(dataset: Dataset, root: Path, endpoint: str) -> None:
    """PUT every file into the trail's bucket (a few threads: moto's server handles requests in threads)."""
    s3 = client(endpoint, "s3", **DEMO_CREDENTIALS)

    def put(entry: FileEntry) -> None:
        s3.put_object(Bucket=dataset.bucket, Key=entry.key, Body=(root / entry.key).read_bytes())

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        list(pool.map(put, dataset.files))
