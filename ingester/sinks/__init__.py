"""Where events go. Every sink implements :class:`RecordSink`; ``deliver`` returns only once every record is
acknowledged (for Kafka: acks=all from the in-sync replicas), because the caller commits its checkpoint next."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import msgspec

from ingester.models import DeadLetter, OutboundRecord


class SinkStatistics(msgspec.Struct, frozen=True):
    records: int
    bytes: int
    batches: int
    dead_letters: int
    # Batches the destination refused as too large (Kafka: above the topic's max.message.bytes), and the times
    # the producer was replaced because of it; both stay 0 while the size check before sending suffices.
    refused_batches: int = 0
    producer_restarts: int = 0


class RecordSink(Protocol):
    async def start(self) -> None:
        """Connect; raises SinkError with a clear message when the destination is unreachable."""

    async def deliver(self, records: Sequence[OutboundRecord]) -> list[int]:
        """Send and wait for acknowledgement. Returns the indexes, ascending, of records the sink can never take
        (too large for the destination: checked before sending, and learned from the destination's refusal,
        after which the rest is still delivered): the caller dead-letters them as ``record_too_large``. Raises
        SinkError (retriable) when the batch was not acknowledged; records already acknowledged may then be
        sent again by the retry (duplicates, never loss)."""

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Write one dead letter and wait for its acknowledgement. A letter larger than the destination takes
        is cut to fit (its ``record`` first, then its ``detail``), never refused."""

    async def report(self, key: bytes, value: bytes) -> None:
        """Write one integrity report (completeness event or alert) and wait for its acknowledgement."""

    def unit(self, shard_id: str = "") -> AbstractAsyncContextManager[None]:
        """Wraps one object's deliver..settle. A transactional sink commits only between units, so an object's
        events and its checkpoint always land in the same transaction; other sinks return a null context.
        ``shard_id``: the object's shard, which in scale-out exactly-once mode chooses the transaction (its
        shard group's); "" for writes of no shard (a notification's dead letter)."""
        ...

    async def maintain(self) -> None:
        """Background duty run in the runtime's TaskGroup (periodic transaction commits); returns when closed."""

    async def close(self) -> None:
        """Flush what is pending and release connections. Never drops an acknowledged-pending batch."""

    async def abort(self) -> None:
        """Error path: release without committing anything a transaction holds. Idempotent."""

    def statistics(self) -> SinkStatistics: ...
