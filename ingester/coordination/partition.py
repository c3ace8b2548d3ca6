"""Which worker process owns which shard: a pure function, so every process decides alike without talking.

Worker processes share nothing hot: each runs its own event loop, S3 clients, producer and shard jobs, and
takes the shards whose id hashes to its index. CRC32 of the shard id is stable across processes and Python
runs (unlike ``hash()``), so a restart with the same worker count gives each process the same shards; with a
different count the shards move, and the checkpoint (one SQLite file in WAL mode shared by the processes, or
the Kafka checkpoint topic) moves with them, because it is keyed by shard id, not by process.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import msgspec

from ingester.models import DIGEST_STREAM_SUFFIX


class Ownership(Protocol):
    """Which discovered shards this process collects: a fixed :class:`Partition`, or, in scale-out mode, the
    coordination partitions the consumer group assigned to it (ingester/coordination/ownership.py)."""

    def owns(self, shard_id: str) -> bool: ...


def shard_group(shard_id: str, groups: int) -> int:
    """The group (worker index, or coordination partition) of a shard: CRC32, stable across processes.

    A shard's digest stream hashes as its shard, so both checkpoints live in (and move with) one group."""
    return zlib.crc32(shard_id.removesuffix(DIGEST_STREAM_SUFFIX).encode()) % groups


class Partition(msgspec.Struct, frozen=True):
    index: int = 0
    count: int = 1

    def owns(self, shard_id: str) -> bool:
        return self.count == 1 or shard_group(shard_id, self.count) == self.index

    @property
    def label(self) -> str:
        return f"{self.index + 1}/{self.count}"
