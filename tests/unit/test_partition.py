"""Worker processes split shards by a stable hash: each shard has exactly one owner, and the split is even."""

from __future__ import annotations

import collections

from ingester.config import build
from ingester.coordination.partition import Partition
from ingester.pipeline.processes import settings_for_worker


def shard_ids(n: int) -> list[str]:
    return [f"s3://org-logs/AWSLogs/o-abc/{100000000000 + i}/CloudTrail/us-east-1/" for i in range(n)]


def test_every_shard_has_exactly_one_owner_and_the_split_is_even() -> None:
    workers = 4
    owners = collections.Counter()
    for shard_id in shard_ids(4000):
        found = [i for i in range(workers) if Partition(i, workers).owns(shard_id)]
        assert len(found) == 1
        owners[found[0]] += 1
    assert min(owners.values()) > 900 and max(owners.values()) < 1100, owners


def test_a_single_worker_owns_everything() -> None:
    assert all(Partition().owns(shard_id) for shard_id in shard_ids(100))


def test_workers_get_their_own_transactional_id_and_leave_the_port_to_the_parent() -> None:
    settings = build({"telemetry": {"metrics_port": 9108}, "kafka": {"transactional_id": "ingester-0"}})
    second = settings_for_worker(settings, Partition(1, 2))
    assert (second.telemetry.metrics_port, second.kafka.transactional_id) == (0, "ingester-0-w1")
    assert settings_for_worker(settings, Partition(0, 1)) is settings
