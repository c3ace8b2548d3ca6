"""Checkpoint commits in scale-out mode: one transactional producer per owned coordination partition.

The producer of partition p has the transactional id ``<prefix>-<p>``, the same on every replica. Starting it
(InitProducerId) fences whichever producer held that id before (the partition's previous owner, alive or not)
and aborts its open transaction; from then on only this replica can commit snapshots to p. A commit takes the
store's dirty snapshots, groups them by partition, and writes each group in one transaction of its partition's
producer (begin, send to partition p, commit). Snapshots of shards whose partition this replica no longer
holds a producer for are dropped: they come from objects that settled after their shard was released.

A fenced producer (``ProducerFenced``: another replica initialised the id) means the partition is lost; the
commit reports it and the member stops that partition's jobs. Any other Kafka error is fatal (CheckpointError):
the process exits and its restart resumes from the last committed snapshots (duplicates, never loss).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced

from ingester.checkpoint.kafka_store import KafkaCheckpointStore
from ingester.config import Settings
from ingester.connect.kafka import client_options
from ingester.coordination.partition import shard_group
from ingester.errors import CheckpointError

log = structlog.get_logger("ingester.coordination")

_FENCED = (ProducerFenced, InvalidProducerEpoch)


class CheckpointCommitter:
    def __init__(self, settings: Settings, store: KafkaCheckpointStore) -> None:
        self._settings = settings
        self._store = store
        self._topic = settings.scaleout.topic
        self._partitions = settings.scaleout.partitions
        self._producers: dict[int, AIOKafkaProducer] = {}
        # One transaction at a time per producer; simplest as one at a time overall (commits are small).
        self._lock = asyncio.Lock()
        self.transactions = 0
        self.snapshots = 0

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._producers)

    def _transactional_id(self, partition: int) -> str:
        return f"{self._settings.scaleout.transactional_id_prefix}-{partition}"

    async def acquire(self, partitions: Iterable[int]) -> None:
        """Start (and so fence the previous holder of) the producer of each partition, concurrently."""
        wanted = sorted(set(partitions) - self._producers.keys())
        started = await asyncio.gather(*(self._start(p) for p in wanted), return_exceptions=True)
        failures = [result for result in started if isinstance(result, BaseException)]
        async with self._lock:
            for p, result in zip(wanted, started, strict=True):
                if isinstance(result, AIOKafkaProducer):
                    self._producers[p] = result
        if failures:
            raise CheckpointError(f"cannot start the checkpoint producers of {self._topic}: {failures[0]!r}")

    async def _start(self, partition: int) -> AIOKafkaProducer:
        k = self._settings.kafka
        producer = AIOKafkaProducer(
            **client_options(k, self._settings.aws.region),
            acks="all",
            enable_idempotence=True,
            transactional_id=self._transactional_id(partition),
            compression_type=None if k.compression == "none" else k.compression,
            max_request_size=k.max_request_bytes,
            request_timeout_ms=k.request_timeout_ms,
        )
        try:
            await asyncio.wait_for(producer.start(), k.connect_timeout_seconds)
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def commit(self) -> frozenset[int]:
        """Write every dirty snapshot of a held partition, one transaction per partition; returns the
        partitions found fenced (their producers are stopped and their snapshots dropped)."""
        async with self._lock:
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            for key, value in self._store.take_dirty():
                p = shard_group(key.decode(), self._partitions)
                if p in self._producers:
                    by_partition.setdefault(p, []).append((key, value))
            fenced: set[int] = set()
            for p, snapshots in sorted(by_partition.items()):
                try:
                    await self._transaction(self._producers[p], p, snapshots)
                except _FENCED as exc:
                    log.warning("checkpoint_producer_fenced", partition=p, error=repr(exc))
                    fenced.add(p)
                    await self._stop(p)
                except KafkaError as exc:
                    raise CheckpointError(f"checkpoint commit to {self._topic} [{p}] failed: {exc!r}") from exc
            return frozenset(fenced)

    async def _transaction(
        self, producer: AIOKafkaProducer, partition: int, snapshots: list[tuple[bytes, bytes]]
    ) -> None:
        await producer.begin_transaction()
        futures = [
            await producer.send(self._topic, key=key, value=value, partition=partition) for key, value in snapshots
        ]
        await asyncio.gather(*futures)
        await producer.commit_transaction()
        self.transactions += 1
        self.snapshots += len(snapshots)

    async def release(self, partitions: Iterable[int]) -> frozenset[int]:
        """Commit what is dirty, then stop the producers of ``partitions``; returns the partitions fenced."""
        fenced = await self.commit()
        async with self._lock:
            for p in sorted(set(partitions)):
                await self._stop(p)
        return fenced

    async def _stop(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is None:
            return
        try:
            await producer.stop()
        except KafkaError as exc:  # a fenced or broken producer: nothing more to release
            log.warning("checkpoint_producer_stop_failed", partition=partition, error=repr(exc))

    async def close(self) -> None:
        """Stop every producer without committing (the error path; the clean path calls release first)."""
        async with self._lock:
            for p in sorted(self._producers):
                await self._stop(p)
