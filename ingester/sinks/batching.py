"""Group commit for the Kafka sink: files delivered at once to one partition fill the same batch.

Why: aiokafka sends one produce request per broker at a time, with one batch per partition in it; a batch per
file made a small file wait a round trip of its own (~70 ms of waiting per file at 32 files in flight). Here the
records of concurrent files join the partition's open batch while the previous one is in flight, and the batches
are enqueued in order, one enqueuer per partition at a time. A batch's outcome is every member's; each caller
resends its own records (sinks/kafka.py decides how).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingester.models import OutboundRecord


class _Slot:
    """A batch of one partition that workers append to until one of them enqueues it (:meth:`SharedBatches.send`)."""

    __slots__ = ("builder", "outcome", "producer", "sealed")

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer  # a replaced producer's slots are sent on it and fail: their members resend
        self.builder = producer.create_batch()
        self.sealed = False
        # The delivery future once enqueued, or the error that kept it out.
        self.outcome: asyncio.Future[object] | KafkaError | None = None


class SharedBatches:
    def __init__(self) -> None:
        # One enqueuer per partition at a time. aiokafka's add_batch subtracts the time waited since its start on
        # every wake-up, not the time since the last one, so callers that queue for a busy partition (many
        # workers, one account, small batches) time out after a few seconds with KafkaTimeoutError.
        self._enqueue_locks: collections.defaultdict[tuple[str, int], asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        # Per partition, the batches that workers fill and that are not in aiokafka's accumulator yet (the last
        # one open); at most one batch (max_batch_bytes) per partition grows while another is being enqueued.
        self._waiting: collections.defaultdict[tuple[str, int], collections.deque[_Slot]] = collections.defaultdict(
            collections.deque
        )
        self.batches = 0

    async def send(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        records: Sequence[OutboundRecord],
        indexes: list[int],
    ) -> list[tuple[list[int], asyncio.Future[object] | KafkaError, tuple[int, int]]]:
        """Group commit: the records join the partition's open batch (shared with other workers' files), then
        the caller enqueues batches in order until its own are in aiokafka's accumulator. Returns each of its
        batches' indexes with the batch's delivery future, or the error that kept it from being enqueued, and the
        whole batch's (records, bytes).

        Why shared batches: aiokafka sends one produce request per broker at a time, and one batch per partition
        in it; a batch per file made a file of 5 records cost a round trip of its own (small files: ~70 ms of
        waiting per file at 32 in flight). Records that arrive while the previous batch is in flight now leave
        together in the next one; a batch's outcome is every member's, and each caller resends its own."""
        key = (topic, partition)
        waiting = self._waiting[key]
        placed: list[tuple[_Slot, list[int]]] = []
        for index in indexes:
            record = records[index]
            rkey, value, timestamp = record.key, record.value, record.timestamp_ms
            headers = list(record.headers)  # the C batch builder takes a list only
            slot = waiting[-1] if waiting and waiting[-1].producer is producer and not waiting[-1].sealed else None
            if slot is None or slot.builder.append(key=rkey, value=value, timestamp=timestamp, headers=headers) is None:
                if slot is not None:
                    slot.sealed = True  # full: the next enqueuer sends it as it is
                slot = _Slot(producer)
                waiting.append(slot)
                slot.builder.append(key=rkey, value=value, timestamp=timestamp, headers=headers)
            if placed and placed[-1][0] is slot:
                placed[-1][1].append(index)
            else:
                placed.append((slot, [index]))
        async with self._enqueue_locks[key]:
            while any(slot.outcome is None for slot, _ in placed):
                slot = waiting.popleft()  # in order: ours are at or after the head
                slot.sealed = True
                slot.builder.close()
                try:
                    slot.outcome = await slot.producer.send_batch(slot.builder, topic, partition=partition)
                    self.batches += 1
                except KafkaError as exc:
                    slot.outcome = exc
        return [
            (members, slot.outcome, (slot.builder.record_count(), slot.builder.size()))
            for slot, members in placed
            if slot.outcome is not None
        ]

    async def enqueue(self, producer: AIOKafkaProducer, batch: Any, topic: str, partition: int) -> Any:
        """``send_batch`` behind the partition's lock (see ``_enqueue_locks``); returns the batch's future."""
        batch.close()
        async with self._enqueue_locks[topic, partition]:
            return await producer.send_batch(batch, topic, partition=partition)
