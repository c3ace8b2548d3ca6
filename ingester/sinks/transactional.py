"""Exactly-once delivery: a transactional producer that commits events together with their checkpoint.

    worker:     async with sink.unit(): deliver(events) -> job.finish(item) -> store.commit (memory, dirty)
    committer:  every transaction_interval_ms, between units: send dirty checkpoint snapshots,
                commit_transaction, begin_transaction

Because the committer only commits when no unit is open (:class:`CommitGate`), an object's events and the
checkpoint snapshot that accounts for it are always in the same transaction. A ``read_committed`` consumer
therefore sees every record exactly once: a crash before the commit aborts both (the restart re-sends the
object in a new transaction); a crash after it leaves both (the restart skips the object).

Any Kafka error inside a transaction is fatal here: the transaction cannot be trusted any more, and the
in-memory watermark may have moved past events that will be aborted. The process exits; its restart fences
the old producer (same ``transactional_id``), aborts what was open and resumes from the committed snapshots.

One exception: a batch the broker refuses as too large (see sinks/kafka.py) was not written, so the
transaction is still sound, but the producer's sequence on that partition is broken and the producer must be
replaced. Replacing it at once would abort the open transaction (a new producer with the same id fences the
old one), taking with it the events of units that already settled. So the unit parks (it stops counting as
open), the committer commits the transaction at its next turn, replaces the producer and begins the next
transaction, and the unit resends what was not acknowledged. The part of that object acknowledged before
the refusal is then committed one transaction ahead of its checkpoint: a crash in between re-sends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from aiokafka.errors import IllegalOperation, KafkaError

from ingester.checkpoint.kafka_store import KafkaCheckpointStore
from ingester.config import KafkaSettings
from ingester.errors import SinkError
from ingester.models import DeadLetter, OutboundRecord
from ingester.sinks.kafka import KafkaSink
from ingester.sinks.limits import TopicLimits

log = structlog.get_logger("ingester.sinks.transactional")


class CommitGate:
    """Many units at once, or one commit: a writer-preferring readers/writer lock for asyncio."""

    def __init__(self) -> None:
        self._active = 0
        self._committing = False
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._committing)
            self._active += 1
        try:
            yield
        finally:
            async with self._changed:
                self._active -= 1
                self._changed.notify_all()

    @asynccontextmanager
    async def parked(self) -> AsyncIterator[None]:
        """Inside a unit: stop counting as open until the block ends, so a commit can run meanwhile."""
        async with self._changed:
            self._active -= 1
            self._changed.notify_all()
        try:
            yield
        finally:
            async with self._changed:
                try:
                    await self._changed.wait_for(lambda: not self._committing)
                finally:
                    self._active += 1

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._committing)
            self._committing = True
            await self._changed.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            async with self._changed:
                self._committing = False
                self._changed.notify_all()


class TransactionalKafkaSink(KafkaSink):
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        aws_region: str = "us-east-1",
        limits: TopicLimits | None = None,
        routed_topics: Sequence[str] = (),
        transactional_id: str | None = None,
    ) -> None:
        super().__init__(
            settings,
            transactional_id=transactional_id or settings.transactional_id,
            aws_region=aws_region,
            limits=limits,
            routed_topics=routed_topics,
        )
        self._gate = CommitGate()
        # Set by a unit whose batch was refused; the committer replaces the producer at its next turn.
        self._replacement_wanted = False
        self._replaced = asyncio.Condition()
        self._store: KafkaCheckpointStore | None = None
        self._select: Callable[[str], bool] | None = None
        self._checkpoint_partition: int | None = None
        self._closed = asyncio.Event()
        self._pending_units = 0
        self.transactions = 0

    async def start(self) -> None:
        """Initialising the transactional id fences a previous incarnation and aborts its open transaction,
        so the checkpoint topic read next holds only committed snapshots."""
        await super().start()
        try:
            await self._require().begin_transaction()
        except KafkaError as exc:
            raise SinkError(f"cannot begin a Kafka transaction: {exc!r}", retriable=False) from exc

    def attach(
        self, store: KafkaCheckpointStore, *, select: Callable[[str], bool] | None = None, partition: int | None = None
    ) -> None:
        """The store whose dirty snapshots go into every transaction; in scale-out, only the shards ``select``
        picks (this producer's shard group), written to the coordination topic's ``partition`` of that group."""
        self._store = store
        self._select = select
        self._checkpoint_partition = partition

    def unit(self, shard_id: str = "") -> AbstractAsyncContextManager[None]:
        return self._counted_unit()

    @asynccontextmanager
    async def _counted_unit(self) -> AsyncIterator[None]:
        async with self._gate.unit():
            yield
            self._pending_units += 1

    async def deliver(self, records: Sequence[OutboundRecord]) -> list[int]:
        try:
            return await asyncio.wait_for(super().deliver(records), self._send_timeout())
        except TimeoutError as exc:
            raise SinkError(self._timed_out(), retriable=False) from exc
        except (SinkError, KafkaError, IllegalOperation) as exc:
            raise SinkError(
                f"transaction failed, exiting to resume from the last commit: {exc}", retriable=False
            ) from exc

    async def dead_letter(self, letter: DeadLetter) -> None:
        try:
            await asyncio.wait_for(super().dead_letter(letter), self._send_timeout())
        except TimeoutError as exc:
            raise SinkError(self._timed_out(), retriable=False) from exc
        except (SinkError, KafkaError, IllegalOperation) as exc:
            raise SinkError(
                f"transaction failed, exiting to resume from the last commit: {exc}", retriable=False
            ) from exc

    async def report(self, key: bytes, value: bytes) -> None:
        try:
            await asyncio.wait_for(super().report(key, value), self._send_timeout())
        except TimeoutError as exc:
            raise SinkError(self._timed_out(), retriable=False) from exc
        except (SinkError, KafkaError, IllegalOperation) as exc:
            raise SinkError(
                f"transaction failed, exiting to resume from the last commit: {exc}", retriable=False
            ) from exc

    async def _recover(self, generation: int) -> None:
        """Park until the committer has replaced the failed producer (module docstring). Called inside a unit."""
        async with self._gate.parked(), self._replaced:
            if generation == self._generation:
                self._replacement_wanted = True
            await self._replaced.wait_for(lambda: self._generation != generation or self._closed.is_set())
        if self._generation == generation:
            raise SinkError("transactional sink closed while a unit waited for a new producer", retriable=False)

    async def maintain(self) -> None:
        interval = self._settings.transaction_interval_ms / 1000
        while not self._closed.is_set():
            try:
                await asyncio.wait_for(self._closed.wait(), interval)
            except TimeoutError:
                await self.commit(begin_next=True)

    async def commit(self, *, begin_next: bool) -> None:
        """Checkpoint snapshots + commit, between units; then open the next transaction."""
        async with self._gate.exclusive():
            if self._producer is None:
                return
            if self._pending_units == 0 and begin_next and not self._replacement_wanted:
                return
            producer = self._producer
            try:
                if self._store is not None:
                    for key, value in self._store.take_dirty(self._select):
                        await producer.send(
                            self._store.topic, key=key, value=value, partition=self._checkpoint_partition
                        )
                # Bounded: a commit waiting on a broker that is gone would hold every unit (and SIGTERM's drain)
                # without end; as for any failed transaction, the process exits and its restart resumes.
                await asyncio.wait_for(producer.commit_transaction(), self._commit_timeout())
                self.transactions += 1
                self._pending_units = 0
                if self._replacement_wanted:
                    await self._replace_producer()
                    self._replacement_wanted = False
                    async with self._replaced:
                        self._replaced.notify_all()
                if begin_next:
                    await self._require().begin_transaction()
            except KafkaError as exc:
                raise SinkError(f"Kafka transaction commit failed: {exc!r}", retriable=False) from exc
            except TimeoutError as exc:
                raise SinkError(
                    f"Kafka transaction commit did not complete within {self._commit_timeout():.0f} s "
                    "(brokers unreachable?)",
                    retriable=False,
                ) from exc
            except SinkError as exc:
                raise SinkError(f"Kafka transaction: {exc}", retriable=False) from exc

    def _send_timeout(self) -> float:
        """Inside a transaction a send that gets no answer (aiokafka retries a partition without a leader
        without end) would hold the transaction, and every unit behind it, for good."""
        return max(30.0, 3 * self._settings.request_timeout_ms / 1000)

    def _timed_out(self) -> str:
        return (
            f"transaction failed, exiting to resume from the last commit: no acknowledgement within "
            f"{self._send_timeout():.0f} s (brokers unreachable?)"
        )

    def _commit_timeout(self) -> float:
        """Twice the request timeout: the commit's own request plus the flush of what the units sent."""
        return max(5.0, 2 * self._settings.request_timeout_ms / 1000)

    async def close(self) -> None:
        """Clean shutdown: commit what the finished units sent, then stop."""
        if self._producer is None:
            return
        if not self._closed.is_set():
            self._closed.set()
            await self.commit(begin_next=False)
        await super().close()

    async def abort(self) -> None:
        """Error path: abort the open transaction (its events and snapshots vanish together), then stop."""
        self._closed.set()
        async with self._replaced:
            self._replaced.notify_all()  # parked units give up
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await producer.abort_transaction()
        except Exception as exc:  # cleanup on the error path: nothing more to do than report it
            log.warning("transaction_abort_failed", error=repr(exc))
        finally:
            await producer.stop()
