"""Kafka sink on aiokafka: idempotent producer, acks=all, batches built with ``create_batch``/``send_batch``.

Partitioning: the partition is murmur2(account id) like Kafka's default partitioner, so one account's events
stay in one partition, in order; the message *key* is the event's deterministic id, so consumers can compact
or deduplicate on it. One CloudTrail file belongs to one account, so a file maps to a single partition and is
appended to a few large batches rather than sent record by record (the per-record ``send`` path costs a
future and a Python call per event). Batches are shared: files delivered at once to one partition fill the same
batch while the previous one is in flight (group commit, sinks/batching.py), so small files do not pay a
produce round trip each.

Size limits: the broker refuses a batch larger than the topic's ``max.message.bytes`` (MESSAGE_TOO_LARGE), and
that refusal costs more than the batch: the idempotent producer has already spent the batch's sequence numbers,
so every later batch on that partition fails with OutOfOrderSequenceNumber. Hence, in this order:

- ``start`` reads the events and dead-letter topics' limits (sinks/limits.py: describe_configs, else the
  broker's ``message.max.bytes``, else ``max_request_bytes``) and caps event batches at the events topic's,
  minus room for the codec's worst-case expansion; a dead letter is cut to fit its topic and sent alone;
- ``deliver`` returns, never sends, a record that cannot fit (the worker dead-letters it as ``record_too_large``);
- if the broker still refuses (the limit was lowered since, or could not be read), the producer is replaced
  (fresh sequences), the limits are read again, and only the unacknowledged batches are resent: a refused batch
  in halves, a refused single record is returned as too large. Idempotence makes a resend a duplicate at worst.

Backpressure: ``send_batch`` waits while the partition has a batch that is not drained yet, and ``deliver``
waits for the acknowledgement of every batch; a slow or absent broker therefore holds the worker, which holds
the bounded queues behind it, which stop the S3 listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    RecordListTooLargeError,
    UnknownProducerId,
)
from aiokafka.partitioner import murmur2

from ingester.config import KafkaSettings
from ingester.connect.kafka import client_options
from ingester.errors import SinkError
from ingester.models import DeadLetter, OutboundRecord
from ingester.sinks import SinkStatistics
from ingester.sinks.batching import SharedBatches
from ingester.sinks.limits import (
    BATCH_OVERHEAD_BYTES,
    RECORD_OVERHEAD_BYTES,
    DescribedLimits,
    TopicLimits,
    fit_dead_letter,
    fits,
    headers_bytes,
    record_bytes,
    usable_bytes,
)

log = structlog.get_logger("ingester.sinks.kafka")

# A dead letter is never cut below this budget: a topic refusing ~1 KiB messages is a configuration error.
MIN_DEAD_LETTER_BYTES = 1024
# Headers tuples whose size _admit remembers (the routing headers and a file's provenance: a few per file).
MAX_HEADER_SIZES = 4096
# A record's bytes in a batch of its own beyond its key, value and headers (sinks/limits.record_bytes).
FIXED_OVERHEAD_BYTES = RECORD_OVERHEAD_BYTES + BATCH_OVERHEAD_BYTES
# Rounds in a row that make no progress (only sequence errors, after a fresh producer) before giving up.
MAX_STALLED_ROUNDS = 3

# The broker refused the batch as too large: its records can be resent in smaller batches, or never.
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
# The batch was not written because of the producer (broken sequence, replaced producer): resend it.
_RESEND = (OutOfOrderSequenceNumber, UnknownProducerId, ProducerClosed)


@functools.lru_cache(maxsize=65536)
def partition_for(partition_key: bytes, partitions: int) -> int:
    """Same choice as Kafka's default partitioner for a keyed record, so other producers agree with us.

    Cached: the key is the account id (a few thousand distinct values) and aiokafka's murmur2 is pure Python,
    ~2% of the file -> Kafka pipeline's CPU when computed per record (py-spy)."""
    hashed: int = murmur2(partition_key)
    return (hashed & 0x7FFFFFFF) % partitions


# (topic, partition, record indexes) sent together, in order; the outcome of a batch adds its error or None.
_Chunk = tuple[str, int, list[int]]


class KafkaSink:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        transactional_id: str | None = None,
        aws_region: str = "us-east-1",
        limits: TopicLimits | None = None,
        routed_topics: Sequence[str] = (),
    ) -> None:
        self._settings = settings
        # Where events go: kafka.topic, and the topics [[routes]] send to (an OutboundRecord's ``topic``).
        self._event_topics = tuple(dict.fromkeys((settings.topic, *routed_topics)))
        self._aws_region = aws_region
        self._transactional_id = transactional_id
        self._limit_source = limits or DescribedLimits(settings, aws_region)
        self._producer: AIOKafkaProducer | None = None
        # Bumped at every producer replacement, so callers that failed on the same producer replace it once.
        self._generation = 0
        self._replacing = asyncio.Lock()
        self._partitions: dict[str, int] = {}
        self._shared = SharedBatches()
        self._limits = dict.fromkeys((*self._event_topics, settings.dead_letter_topic), settings.max_request_bytes)
        # Lowered when the broker refuses a batch of several records: the topic's limit is smaller than known.
        self._learned_batch_bytes = settings.max_batch_bytes
        self._records = self._bytes = self._dead_letters = 0
        self._refused = self._restarts = 0
        self._header_sizes: dict[tuple[tuple[str, bytes], ...], int] = {}

    def _batch_bytes(self) -> int:
        """Capacity of the events topics' batches (uncompressed; the smallest topic's, since the producer has one
        size). Dead letters each go in a batch of their own, so the dead-letter topic's limit does not shrink them."""
        s = self._settings
        room = min(usable_bytes(self._limits[topic], s.compression) for topic in self._event_topics)
        return max(1, min(s.max_batch_bytes, self._learned_batch_bytes, room))

    def _make_producer(self) -> AIOKafkaProducer:
        s = self._settings
        return AIOKafkaProducer(
            **client_options(s, self._aws_region),
            acks="all",
            enable_idempotence=True,
            transactional_id=self._transactional_id,
            compression_type=None if s.compression == "none" else s.compression,
            linger_ms=s.linger_ms,
            max_batch_size=self._batch_bytes(),
            max_request_size=s.max_request_bytes,
            request_timeout_ms=s.request_timeout_ms,
        )

    async def _open_producer(self) -> AIOKafkaProducer:
        producer = self._make_producer()
        try:
            await asyncio.wait_for(producer.start(), self._settings.connect_timeout_seconds)
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _refresh_limits(self) -> None:
        s = self._settings
        described = await self._limit_source.max_message_bytes(list(self._limits))
        for topic in self._limits:
            self._limits[topic] = min(described.get(topic, s.max_request_bytes), s.max_request_bytes)
        log.info("kafka_topic_limits", limits=self._limits, batch_bytes=self._batch_bytes())

    async def start(self) -> None:
        """Connect, then read the limits: a broker that cannot be reached fails here, within the connect
        timeout, with the producer's error. A topic limit below the producer's batch size re-opens it."""
        s = self._settings
        producer: AIOKafkaProducer | None = None
        try:
            producer = await self._open_producer()
            for topic in (*self._event_topics, s.dead_letter_topic):
                self._partitions[topic] = await self._partition_count(producer, topic)
        except (KafkaError, TimeoutError, OSError) as exc:
            if producer is not None:
                await producer.stop()
            raise SinkError(
                f"cannot connect to Kafka at {s.bootstrap_servers} (topic {s.topic}, {s.security_protocol}): {exc!r}; "
                "if the brokers are up, the aiokafka log lines above name the TLS or SASL failure"
            ) from exc
        except BaseException:
            if producer is not None:
                await producer.stop()
            raise
        self._producer = producer
        built_with = self._batch_bytes()
        await self._refresh_limits()
        if self._batch_bytes() != built_with:
            self._producer = None
            await producer.stop()
            try:
                self._producer = await self._open_producer()
            except (KafkaError, TimeoutError, OSError) as exc:
                raise SinkError(f"cannot re-open the Kafka producer at {s.bootstrap_servers}: {exc!r}") from exc

    async def _partition_count(self, producer: AIOKafkaProducer, topic: str) -> int:
        partitions = await asyncio.wait_for(producer.partitions_for(topic), self._settings.connect_timeout_seconds)
        if not partitions:
            raise SinkError(f"Kafka topic {topic} has no partitions (does it exist?)", retriable=False)
        return len(partitions)

    async def deliver(self, records: Sequence[OutboundRecord]) -> list[int]:
        """Rounds of send-and-wait until every record is acknowledged or known never to fit; see the module
        docstring. Only unacknowledged batches are resent, so a refusal adds no duplicates."""
        default = self._settings.topic
        by_partition: dict[tuple[str, int], list[int]] = {}
        for index, record in enumerate(records):
            topic = record.topic or default
            partition = partition_for(record.partition_key, self._partitions[topic])
            by_partition.setdefault((topic, partition), []).append(index)
        chunks: list[_Chunk] = [(topic, partition, indexes) for (topic, partition), indexes in by_partition.items()]
        topics = ", ".join(sorted({topic for topic, _, _ in chunks}))
        too_large: list[int] = []
        stalled = 0
        while chunks:
            chunks = self._admit(records, chunks, too_large)
            generation, producer = self._generation, self._require()
            outcomes = await self._send_round(producer, records, chunks)
            chunks, refused = [], 0
            for topic, partition, indexes, error, (batch_records, batch_bytes) in outcomes:
                if error is None:
                    self._records += len(indexes)
                    self._bytes += sum(len(records[i].value) for i in indexes)
                elif isinstance(error, _TOO_LARGE):
                    refused += 1
                    if batch_records > len(indexes):  # shared with other files: every member resends, smaller
                        chunks.append((topic, partition, indexes))
                        self._learned_batch_bytes = min(self._learned_batch_bytes, max(batch_bytes // 2, 1))
                        continue
                    if len(indexes) == 1:
                        too_large.append(indexes[0])
                        continue
                    half = len(indexes) // 2
                    chunks += [(topic, partition, indexes[:half]), (topic, partition, indexes[half:])]
                    batch = sum(record_bytes(records[i]) for i in indexes)
                    self._learned_batch_bytes = min(self._learned_batch_bytes, max(batch // 2, 1))
                elif isinstance(error, _RESEND):
                    chunks.append((topic, partition, indexes))
                else:
                    raise SinkError(f"Kafka did not acknowledge a batch for topic {topic}: {error!r}") from error
            if not chunks and not refused:
                break
            self._refused += refused
            stalled = 0 if refused else stalled + 1
            if stalled > MAX_STALLED_ROUNDS:
                raise SinkError(f"Kafka keeps failing batches for topic {topics} with sequence errors")
            log.warning("kafka_batches_failed", topic=topics, refused_too_large=refused, to_resend=len(chunks))
            await self._recover(generation)
        return sorted(too_large)

    def _admit(self, records: Sequence[OutboundRecord], chunks: list[_Chunk], too_large: list[int]) -> list[_Chunk]:
        """The chunks without the records that cannot fit the topic's current limit (added to ``too_large``).

        Nearly every record is far below the limit: the sum of its parts, with its headers' size looked up by the
        headers tuple (the same few per file), settles it without a call; only a record near the limit goes to
        :func:`fits`, which may compress it to find out. Per record this was ~5% of the raw pipeline's CPU."""
        s = self._settings
        admitted: list[_Chunk] = []
        sizes = self._header_sizes
        if len(sizes) > MAX_HEADER_SIZES:
            sizes.clear()
        for topic, partition, indexes in chunks:
            limit = self._limits[topic]
            room = min(usable_bytes(limit, s.compression), s.max_request_bytes) - FIXED_OVERHEAD_BYTES
            keep = []
            for i in indexes:
                record = records[i]
                headers = record.headers
                header_bytes = sizes.get(headers)
                if header_bytes is None:
                    header_bytes = sizes[headers] = headers_bytes(headers)
                if len(record.key) + len(record.value) + header_bytes <= room or fits(
                    record, limit, compression=s.compression, max_request_bytes=s.max_request_bytes
                ):
                    keep.append(i)
                else:
                    too_large.append(i)
            if keep:
                admitted.append((topic, partition, keep))
        return admitted

    async def _send_round(
        self, producer: AIOKafkaProducer, records: Sequence[OutboundRecord], chunks: list[_Chunk]
    ) -> list[tuple[str, int, list[int], BaseException | None, tuple[int, int]]]:
        """Enqueue every chunk's batches, then wait for all of them: each batch's indexes with its error, and
        the whole batch's (records, bytes): a batch may hold other files' records too."""
        sent: list[tuple[str, int, list[int], asyncio.Future[object] | KafkaError, tuple[int, int]]] = []
        failed: KafkaError | None = None
        for topic, partition, indexes in chunks:
            if failed is None:
                batches = await self._shared.send(producer, topic, partition, records, indexes)
                sent += [(topic, partition, batch, future, whole) for batch, future, whole in batches]
                failed = next((f for _, f, _ in batches if isinstance(f, KafkaError)), None)
            else:  # once enqueueing fails (producer closed), later batches wait for the next round: in order
                sent.append((topic, partition, indexes, failed, (len(indexes), 0)))
        futures = [future for _, _, _, future, _ in sent if isinstance(future, asyncio.Future)]
        results = iter(await asyncio.gather(*futures, return_exceptions=True))
        outcomes: list[tuple[str, int, list[int], BaseException | None, tuple[int, int]]] = []
        for topic, partition, indexes, future, whole in sent:
            result = next(results) if isinstance(future, asyncio.Future) else future
            outcomes.append((topic, partition, indexes, result if isinstance(result, BaseException) else None, whole))
        return outcomes

    async def _recover(self, generation: int) -> None:
        """Replace the producer that failed (``generation``), unless another caller already did."""
        async with self._replacing:
            if generation == self._generation:
                await self._replace_producer()

    async def _replace_producer(self) -> None:
        """A new producer id restarts every partition's sequence at zero; the limits are read again first, so
        the new producer's batches and the next admission use the current ones."""
        old = self._require()
        await self._refresh_limits()
        try:
            self._producer = await self._open_producer()
        except (KafkaError, TimeoutError, OSError) as exc:
            raise SinkError(f"cannot re-create the Kafka producer: {exc!r}") from exc
        self._generation += 1
        self._restarts += 1
        log.warning("kafka_producer_replaced", restarts=self._restarts, batch_bytes=self._batch_bytes())
        try:
            await old.stop()  # flushes what other callers still have in flight on it; they resend on failure
        except KafkaError as exc:
            log.warning("kafka_producer_stop_failed", error=repr(exc))

    async def _send_one(self, topic: str, key: bytes, value: bytes) -> bool:
        """Send one message and wait for it; False when the broker refuses it as too large."""
        for _ in range(MAX_STALLED_ROUNDS + 1):
            generation = self._generation
            producer = self._require()
            try:
                if topic in self._partitions:  # a batch of its own: never merged past the topic's limit
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=[])
                    await (
                        await self._shared.enqueue(producer, batch, topic, partition_for(key, self._partitions[topic]))
                    )
                else:
                    await (await producer.send(topic, value=value, key=key))
                return True
            except _TOO_LARGE:
                self._refused += 1
                await self._recover(generation)
                return False
            except _RESEND:
                await self._recover(generation)
            except KafkaError as exc:
                raise SinkError(f"Kafka did not acknowledge a message on {topic}: {exc!r}") from exc
        raise SinkError(f"Kafka keeps failing messages for topic {topic} with sequence errors")

    async def dead_letter(self, letter: DeadLetter) -> None:
        """Cut to the dead-letter topic's limit; if the broker still refuses it, to the limit it then describes,
        else to half of what was refused."""
        topic = self._settings.dead_letter_topic
        key = letter.key.encode()
        overhead = len(key) + RECORD_OVERHEAD_BYTES + BATCH_OVERHEAD_BYTES
        budget = usable_bytes(self._limits[topic], self._settings.compression) - overhead
        while not await self._send_one(topic, key, value := fit_dead_letter(letter, budget)):
            described = usable_bytes(self._limits[topic], self._settings.compression) - overhead
            budget = described if described < len(value) else len(value) // 2
            if budget < MIN_DEAD_LETTER_BYTES:
                raise SinkError(f"Kafka topic {topic} refuses a dead letter of {len(value)} bytes", retriable=False)
        self._dead_letters += 1

    async def report(self, key: bytes, value: bytes) -> None:
        topic = self._settings.integrity_topic
        if not await self._send_one(topic, key, value):
            raise SinkError(f"Kafka topic {topic} refuses an integrity report of {len(value)} bytes", retriable=False)

    def unit(self, shard_id: str = "") -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def maintain(self) -> None:
        return None

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.flush()
            await producer.stop()

    async def abort(self) -> None:
        """Error path: for the idempotent producer, flushing what is pending is still correct."""
        await self.close()

    def statistics(self) -> SinkStatistics:
        return SinkStatistics(
            self._records,
            self._bytes,
            self._shared.batches,
            self._dead_letters,
            refused_batches=self._refused,
            producer_restarts=self._restarts,
        )

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise SinkError("Kafka sink used before start()", retriable=False)
        return self._producer
