"""Notifications in scale-out mode: a notified file reaches the replica that owns its shard through Kafka.

Any replica's SQS receiver may get a notification for any shard, but only the owner of the shard's coordination
partition runs the shard's job and its tracker (what is settled, what is in flight). So the receiver
*announces* each notified file on ``scaleout.announcements_topic``, in the partition of its shard's group (the
coordination partition number, :func:`~ingester.coordination.partition.shard_group`), and the SQS message is
deleted once Kafka has acknowledged every announcement of it (acks=all, idempotent producer). The owner of
partition p reads announcements partition p and hands each file to its shard job, which queues it unless listing
already did or it is settled: a file is never collected twice.

Why this loses nothing: an announcement is a shortcut, not the record of truth. If its reader dies before the
file settles, or ownership moves in between, the new owner reads its partitions again from ``lookback_seconds``
back (settled keys are remembered that long, so files already collected are skipped), and the shard's regular
listing finds every file anyway. Announcements are kept a day (the topic's retention).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from ingester.checkpoint.kafka_store import ensure_topic
from ingester.config import Settings
from ingester.connect.kafka import client_options
from ingester.coordination.ownership import GroupOwnership
from ingester.coordination.partition import shard_group
from ingester.errors import CheckpointError, SourceError
from ingester.models import Shard
from ingester.ops.telemetry import Telemetry
from ingester.sources.keys import shard_id_of
from ingester.sources.notifications import ObjectRef
from ingester.sources.sqs import Submit, UnknownShard

log = structlog.get_logger("ingester.coordination.announcements")

RETENTION_MS = 24 * 3600 * 1000
# How long the reader waits for records before it looks at the ownership again.
POLL_MS = 500
# An announcement for a shard the owner does not run yet (its discovery pass lags the receiver's) is tried again
# for this long; after that the shard's listing collects the file.
UNKNOWN_SHARD_RETRY_SECONDS = 120.0

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ObjectRef)


async def ensure_announcements_topic(settings: Settings) -> None:
    """The announcements topic, with as many partitions as the coordination topic (created if missing)."""
    s = settings.scaleout
    config = {"cleanup.policy": "delete", "retention.ms": str(RETENTION_MS)}
    ids = await ensure_topic(settings.kafka, s.announcements_topic, s.partitions, settings.aws.region, config=config)
    if len(ids) != s.partitions:
        raise CheckpointError(
            f"scaleout.announcements_topic {s.announcements_topic} has {len(ids)} partitions, scaleout.partitions "
            f"is {s.partitions}: announcements would reach the wrong replicas; delete it or use another name"
        )


class Announcer:
    """The receiver side: :meth:`announce` is the SQS handler's ``submit`` (sources/sqs.py) in scale-out mode."""

    def __init__(self, settings: Settings, discovered: Callable[[], Mapping[str, Shard]], telemetry: Telemetry) -> None:
        self._settings = settings
        self._discovered = discovered
        self._telemetry = telemetry
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        k = self._settings.kafka
        producer = AIOKafkaProducer(
            **client_options(k, self._settings.aws.region),
            acks="all",
            enable_idempotence=True,
            linger_ms=k.linger_ms,
            request_timeout_ms=k.request_timeout_ms,
        )
        try:
            await asyncio.wait_for(producer.start(), k.connect_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            raise CheckpointError(f"cannot start the announcements producer: {exc!r}") from exc
        self._producer = producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def announce(self, ref: ObjectRef) -> asyncio.Future[bool] | None:
        """Publish the file to its shard's partition and wait for Kafka's acknowledgement; the returned future
        is already resolved, so the SQS message is deleted next. None for a key that is not a log file; raises
        UnknownShard for a log file of a shard no discovery pass found (the message stays in the queue)."""
        shard_id = shard_id_of(ref.bucket, ref.key)
        if shard_id is None:
            return None
        if shard_id not in self._discovered():
            raise UnknownShard(f"s3://{ref.bucket}/{ref.key}: no discovered trail writes this prefix")
        if self._producer is None:
            raise SourceError("announcements producer not started", code="NotStarted")
        partition = shard_group(shard_id, self._settings.scaleout.partitions)
        try:
            sent = await self._producer.send(
                self._settings.scaleout.announcements_topic,
                value=_ENCODER.encode(ref),
                key=shard_id.encode(),
                partition=partition,
            )
            await sent
        except KafkaError as exc:
            raise SourceError(f"announcement of {ref.key} not acknowledged: {exc!r}", code="KafkaError") from exc
        self._telemetry.announcement("published")
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return done


class AnnouncementReader:
    """The owner side: reads the announcements partitions of the coordination partitions this replica owns and
    hands each file to its shard job (``submit``: :meth:`Supervisor.submit`)."""

    def __init__(
        self,
        settings: Settings,
        ownership: GroupOwnership,
        submit: Submit,
        telemetry: Telemetry,
    ) -> None:
        self._settings = settings
        self._ownership = ownership
        self._submit = submit
        self._telemetry = telemetry
        self._reading: frozenset[int] = frozenset()
        # Announcements whose shard is not running here yet: (first seen, ref), tried again each turn.
        self._waiting: list[tuple[float, ObjectRef]] = []

    async def run(self, stop: asyncio.Event) -> None:
        k = self._settings.kafka
        consumer = AIOKafkaConsumer(
            **client_options(k, self._settings.aws.region),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        try:
            await asyncio.wait_for(consumer.start(), k.connect_timeout_seconds)
        except (KafkaError, OSError, TimeoutError) as exc:
            await consumer.stop()
            raise CheckpointError(f"cannot start the announcements reader: {exc!r}") from exc
        try:
            while not stop.is_set():
                await self._follow_ownership(consumer)
                if not self._reading:
                    await _wait(stop, POLL_MS / 1000)
                    continue
                batches = await consumer.getmany(timeout_ms=POLL_MS)
                for records in batches.values():
                    for record in records:
                        await self._hand_over(_DECODER.decode(record.value))
                await self._retry_waiting()
        except KafkaError as exc:
            topic = self._settings.scaleout.announcements_topic
            raise CheckpointError(f"announcements reader on {topic}: {exc!r}") from exc
        finally:
            await consumer.stop()

    async def _follow_ownership(self, consumer: AIOKafkaConsumer) -> None:
        """Read exactly the owned partitions; a newly owned one from ``lookback_seconds`` back."""
        owned = self._ownership.assigned
        if owned == self._reading:
            return
        topic = self._settings.scaleout.announcements_topic
        consumer.assign([TopicPartition(topic, p) for p in sorted(owned)])
        new = [TopicPartition(topic, p) for p in sorted(owned - self._reading)]
        if new:
            since = int((time.time() - self._settings.collection.lookback_seconds) * 1000)
            offsets = await consumer.offsets_for_times(dict.fromkeys(new, since))
            for tp in new:
                found = offsets.get(tp)
                if found is None:
                    await consumer.seek_to_end(tp)  # nothing that recent: only what comes next
                else:
                    consumer.seek(tp, found.offset)
        log.info("announcements_reading", partitions=sorted(owned), new=[tp.partition for tp in new])
        self._reading = owned

    async def _hand_over(self, ref: ObjectRef, since: float | None = None) -> None:
        try:
            waiter = await self._submit(ref)
        except UnknownShard:
            # Not (yet, or any more) a shard of this replica: wait for discovery, or it belongs elsewhere now.
            first = time.monotonic() if since is None else since
            if time.monotonic() - first < UNKNOWN_SHARD_RETRY_SECONDS:
                self._waiting.append((first, ref))
            else:
                self._telemetry.announcement("unknown_shard")
                log.warning("announcement_for_unknown_shard", bucket=ref.bucket, key=ref.key)
            return
        if waiter is None:
            self._telemetry.announcement("not_a_log_file")
        elif waiter.done():
            self._telemetry.announcement("already_settled")
        else:
            self._telemetry.announcement("submitted")

    async def _retry_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for since, ref in waiting:
            shard_id = shard_id_of(ref.bucket, ref.key)
            if shard_id is not None and self._ownership.owns(shard_id):
                await self._hand_over(ref, since)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
