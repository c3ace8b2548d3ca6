"""Exactly-once in scale-out mode: each owned shard group's events commit with its checkpoints, in the
transactions of that group's producer.

Scale-out already gives each coordination partition p one transactional producer, ``<prefix>-<p>``, which
fences p's previous owner (committer.py). With ``kafka.delivery = "exactly_once"`` that producer is a whole
:class:`~ingester.sinks.transactional.TransactionalKafkaSink`: the events of every object of p's shards are sent
inside its open transaction, and each commit adds the dirty checkpoint snapshots of p's shards, written to
partition p of the coordination topic. So a ``read_committed`` consumer sees an object's events exactly when the
checkpoint that accounts for them is committed, whichever replica sent them:

- a replica killed mid-transaction: p's next owner initialises ``<prefix>-<p>``, which aborts the open
  transaction (events and snapshots together), then reads p's committed checkpoints and collects the rest;
- a zombie (paused, then awake): its producer is fenced, so nothing it sends after the new owner started can
  commit; its units end with :class:`~ingester.errors.OwnershipLost` and the group is released;
- a rebalance: revocation closes p's sink, which commits what settled; an object still queued for p errors
  (OwnershipLost) and its new owner collects it.

This class is both the pipeline's :class:`~ingester.sinks.RecordSink` (``unit(shard_id)`` chooses the group's
sink for the object) and the group member's committer (``acquire`` / ``commit`` / ``release``, as
:class:`~ingester.coordination.committer.CheckpointCommitter`). Writes of no shard (a notification's dead
letter) go through an ordinary idempotent producer, at least once.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from ingester.checkpoint.kafka_store import KafkaCheckpointStore
from ingester.config import Settings
from ingester.coordination.partition import shard_group
from ingester.errors import OwnershipLost, SinkError
from ingester.models import DeadLetter, OutboundRecord
from ingester.sinks import RecordSink, SinkStatistics
from ingester.sinks.kafka import KafkaSink
from ingester.sinks.transactional import TransactionalKafkaSink

log = structlog.get_logger("ingester.coordination")

_FENCED = (ProducerFenced, InvalidProducerEpoch)


def fenced(exc: BaseException) -> bool:
    """Whether a failure was the producer being fenced (another replica initialised its transactional id)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _FENCED):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class PartitionedTransactionalSink:
    def __init__(self, settings: Settings, store: KafkaCheckpointStore) -> None:
        self._settings = settings
        self._store = store
        self._partitions = settings.scaleout.partitions
        self._sinks: dict[int, TransactionalKafkaSink] = {}
        # Groups found fenced inside a unit: the member releases them at its next turn (commit() reports them).
        self._fenced: set[int] = set()
        self._lock = asyncio.Lock()  # acquire / commit / release, one at a time
        self._current: contextvars.ContextVar[TransactionalKafkaSink | None] = contextvars.ContextVar(
            "partition_sink", default=None
        )
        self._plain = KafkaSink(settings.kafka, aws_region=settings.aws.region, routed_topics=settings.routed_topics())
        self._closed_statistics: list[SinkStatistics] = []
        self.transactions = 0

    # ------------------------------------------------------------------------------------------- the committer

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._sinks)

    def _transactional_id(self, partition: int) -> str:
        return f"{self._settings.scaleout.transactional_id_prefix}-{partition}"

    async def acquire(self, partitions: Iterable[int]) -> None:
        """Start (and so fence the previous holder of) each group's transactional sink, with an open transaction."""
        async with self._lock:
            wanted = sorted(set(partitions) - self._sinks.keys())
            started = await asyncio.gather(*(self._start(p) for p in wanted), return_exceptions=True)
            for p, result in zip(wanted, started, strict=True):
                if isinstance(result, TransactionalKafkaSink):
                    self._sinks[p] = result
                    self._fenced.discard(p)
            failures = [result for result in started if isinstance(result, BaseException)]
            if failures:
                raise failures[0]

    async def _start(self, partition: int) -> TransactionalKafkaSink:
        sink = TransactionalKafkaSink(
            self._settings.kafka,
            aws_region=self._settings.aws.region,
            routed_topics=self._settings.routed_topics(),
            transactional_id=self._transactional_id(partition),
        )
        await sink.start()  # initialises the transactional id: the previous owner is fenced from here on
        sink.attach(self._store, select=_InGroup(partition, self._partitions), partition=partition)
        return sink

    async def commit(self) -> frozenset[int]:
        """Commit each group's transaction (its units' events and its shards' snapshots) and begin the next;
        returns the groups found fenced (their sinks are dropped; the member releases them)."""
        async with self._lock:
            lost = set(self._fenced)
            for p, sink in sorted(self._sinks.items()):
                if p in lost:
                    continue
                try:
                    await sink.commit(begin_next=True)
                except SinkError as exc:
                    if not fenced(exc):
                        raise
                    log.warning("transactional_producer_fenced", partition=p, error=str(exc))
                    lost.add(p)
            for p in sorted(lost):
                await self._drop(p)
            self._fenced -= lost
            return frozenset(lost)

    async def release(self, partitions: Iterable[int]) -> frozenset[int]:
        """Close the groups' sinks: each commits what its finished units sent, then stops. Returns the groups
        found fenced meanwhile."""
        lost = await self.commit()
        async with self._lock:
            for p in sorted(set(partitions)):
                sink = self._sinks.pop(p, None)  # first: a unit starting now errors (OwnershipLost)
                if sink is None:
                    continue
                try:
                    await sink.close()
                except SinkError as exc:
                    if not fenced(exc):
                        raise
                    lost = lost | {p}
                    await sink.abort()
                self._keep_statistics(sink)
        return lost

    async def stop_groups(self) -> None:
        """The member's error path (as CheckpointCommitter.close): stop every group's producer without
        committing; their open transactions are aborted."""
        async with self._lock:
            for p in sorted(self._sinks):
                await self._drop(p)

    async def _drop(self, partition: int) -> None:
        sink = self._sinks.pop(partition, None)
        if sink is not None:
            await sink.abort()  # fenced: its transaction is aborted already; release the producer
            self._keep_statistics(sink)

    def _keep_statistics(self, sink: TransactionalKafkaSink) -> None:
        self._closed_statistics.append(sink.statistics())
        self.transactions += sink.transactions

    # ----------------------------------------------------------------------------------------------- the sink

    async def start(self) -> None:
        await self._plain.start()

    def unit(self, shard_id: str = "") -> AbstractAsyncContextManager[None]:
        return self._unit(shard_id)

    @asynccontextmanager
    async def _unit(self, shard_id: str) -> AsyncIterator[None]:
        if not shard_id:
            yield  # no shard: the plain producer, at least once
            return
        p = shard_group(shard_id, self._partitions)
        sink = self._sinks.get(p)
        if sink is None or p in self._fenced:
            raise OwnershipLost(f"shard group {p} of {shard_id} is not held by this replica any more")
        token = self._current.set(sink)
        try:
            async with sink.unit(shard_id):
                yield
        except SinkError as exc:
            if not fenced(exc):
                raise
            self._fenced.add(p)
            raise OwnershipLost(f"shard group {p} of {shard_id}: producer fenced by another replica") from exc
        finally:
            self._current.reset(token)

    def _target(self) -> RecordSink:
        return self._current.get() or self._plain

    async def deliver(self, records: Sequence[OutboundRecord]) -> list[int]:
        return await self._target().deliver(records)

    async def dead_letter(self, letter: DeadLetter) -> None:
        await self._target().dead_letter(letter)

    async def report(self, key: bytes, value: bytes) -> None:
        await self._target().report(key, value)

    async def maintain(self) -> None:
        """Nothing: the group member commits every group's transaction on its turn (commit_interval_ms)."""

    async def close(self) -> None:
        """After the member released every group: only the plain producer is left."""
        await self.release(list(self._sinks))
        await self._plain.close()

    async def abort(self) -> None:
        await self.stop_groups()
        await self._plain.abort()

    def statistics(self) -> SinkStatistics:
        parts = [*self._closed_statistics, *(s.statistics() for s in self._sinks.values()), self._plain.statistics()]
        return SinkStatistics(
            records=sum(p.records for p in parts),
            bytes=sum(p.bytes for p in parts),
            batches=sum(p.batches for p in parts),
            dead_letters=sum(p.dead_letters for p in parts),
            refused_batches=sum(p.refused_batches for p in parts),
            producer_restarts=sum(p.producer_restarts for p in parts),
        )


class GroupCommitter:
    """The member's view of :class:`PartitionedTransactionalSink`: CheckpointCommitter's interface."""

    def __init__(self, sink: PartitionedTransactionalSink) -> None:
        self._sink = sink

    @property
    def held(self) -> frozenset[int]:
        return self._sink.held

    async def acquire(self, partitions: Iterable[int]) -> None:
        await self._sink.acquire(partitions)

    async def commit(self) -> frozenset[int]:
        return await self._sink.commit()

    async def release(self, partitions: Iterable[int]) -> frozenset[int]:
        return await self._sink.release(partitions)

    async def close(self) -> None:
        await self._sink.stop_groups()


class _InGroup:
    """Selects the shards of one group (the snapshots that go into that group's transaction)."""

    __slots__ = ("_count", "_partition")

    def __init__(self, partition: int, count: int) -> None:
        self._partition, self._count = partition, count

    def __call__(self, shard_id: str) -> bool:
        return shard_group(shard_id, self._count) == self._partition
