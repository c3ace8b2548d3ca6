"""Checkpoint store in a compacted Kafka topic, for ``delivery = "exactly_once"``.

One record per shard (key = shard id) holding the watermark and the keys settled in the lookback window: the
same state the SQLite store keeps, as a snapshot. The Kafka sink writes the snapshots of the shards changed in
a transaction *inside that transaction*, next to the events they account for, so events and checkpoint become
visible together or not at all. At start-up the topic is read to its end with ``read_committed``; the last
snapshot per shard wins, which is also all that compaction keeps.

A snapshot must fit in one Kafka record. The shard job keeps it small whatever the backlog by pruning the
checkpoint every ``CHECKPOINT_PRUNE_EVERY`` settlements, not only when a listing pass ends: it holds the keys from
``watermark - lookback`` on, those settled ahead of the watermark, and at most ``CHECKPOINT_PRUNE_EVERY`` more
(about 140 bytes a key; 1 MiB is about 7,400 keys). One over the limit (``kafka.max_request_bytes``) is refused by
:meth:`KafkaCheckpointStore.take_dirty` with a :class:`CheckpointError` naming the shard and the size.

``commit`` and ``prune`` only change memory and mark the shard dirty: there is no I/O outside a transaction.

Scale-out mode (ingester/coordination/) uses the same store with a topic of many partitions, one per shard
group: a replica loads the snapshots of the partitions it is assigned (:meth:`load`), drops those it releases
(:meth:`forget`), and its committer writes the dirty snapshots, each to its shard group's partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ingester.checkpoint.store import CheckpointStatistics
from ingester.config import KafkaSettings
from ingester.connect.kafka import client_options
from ingester.errors import CheckpointError
from ingester.models import Settlement


class ShardSnapshot(msgspec.Struct, frozen=True):
    watermark: str | None
    settled: list[str]


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ShardSnapshot)

# Kafka's default record limit (broker message.max.bytes, producer max_request_size) and kafka.max_request_bytes.
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
# What the producer adds to key and value when it checks a record against max_request_size (aiokafka estimates a
# v2 batch header, 61 bytes, plus at most 21 of record framing); rounded up.
_RECORD_OVERHEAD_BYTES = 128


class KafkaCheckpointStore:
    def __init__(
        self,
        topic: str,
        state: dict[str, tuple[str | None, set[str]]],
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self.topic = topic
        self._state = state
        self._max_record_bytes = max_record_bytes
        self._dirty: set[str] = set()
        self._commits = 0

    @classmethod
    async def open(cls, settings: KafkaSettings, aws_region: str = "us-east-1") -> KafkaCheckpointStore:
        """Create the compacted topic if needed and read every committed snapshot."""
        topic = settings.checkpoint_topic
        try:
            options = client_options(settings, aws_region)
            partitions = await _ensure_compacted_topic(settings, options, topic)
            state = await _read_snapshots(settings, options, topic, partitions)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise CheckpointError(f"cannot read checkpoint topic {topic}: {exc!r}") from exc
        return cls(topic, state, max_record_bytes=settings.max_request_bytes)

    def watermark(self, shard_id: str) -> str | None:
        return self._state.get(shard_id, (None, set()))[0]

    def settled_since(self, shard_id: str, floor_key: str) -> set[str]:
        return {key for key in self._state.get(shard_id, (None, set()))[1] if key >= floor_key}

    def commit(self, shard_id: str, key: str, outcome: Settlement, watermark: str | None) -> None:
        _, settled = self._state.setdefault(shard_id, (None, set()))
        settled.add(key)
        self._state[shard_id] = (watermark, settled)
        self._dirty.add(shard_id)
        self._commits += 1

    def prune(self, shard_id: str, floor_key: str) -> None:
        watermark, settled = self._state.get(shard_id, (None, set()))
        kept = {key for key in settled if key >= floor_key}
        if len(kept) != len(settled):
            self._state[shard_id] = (watermark, kept)
            self._dirty.add(shard_id)

    def load(self, state: dict[str, tuple[str | None, set[str]]], shard_ids: Callable[[str], bool]) -> None:
        """Replace what memory holds for the shards ``shard_ids`` selects by ``state`` (read from the topic)."""
        self.forget(shard_ids)
        self._state.update(state)

    def forget(self, shard_ids: Callable[[str], bool]) -> None:
        """Drop the state (and dirty marks) of the shards ``shard_ids`` selects: another replica owns them now."""
        for shard_id in [shard_id for shard_id in self._state if shard_ids(shard_id)]:
            del self._state[shard_id]
            self._dirty.discard(shard_id)

    def take_dirty(self, select: Callable[[str], bool] | None = None) -> list[tuple[bytes, bytes]]:
        """Snapshots (key, value) of the shards changed since the last call, for the current transaction; with
        ``select``, of those shards only (scale-out exactly-once: one shard group's transaction), the others
        stay dirty.

        A snapshot over the record limit raises :class:`CheckpointError`: the transaction cannot commit, and the
        process exits naming the shard, rather than with the producer's MessageSizeTooLargeError."""
        out = []
        taken = sorted(self._dirty if select is None else (s for s in self._dirty if select(s)))
        for shard_id in taken:
            watermark, settled = self._state[shard_id]
            key, value = shard_id.encode(), _ENCODER.encode(ShardSnapshot(watermark, sorted(settled)))
            self._check_size(shard_id, len(key) + len(value) + _RECORD_OVERHEAD_BYTES)
            out.append((key, value))
        self._dirty.difference_update(taken)
        return out

    def _check_size(self, shard_id: str, size: int) -> None:
        if size <= self._max_record_bytes:
            return
        watermark, settled = self._state[shard_id]
        ahead = sum(1 for key in settled if watermark is None or key > watermark)
        raise CheckpointError(
            f"checkpoint of shard {shard_id} is {size} bytes, over the {self._max_record_bytes}-byte record limit of "
            f"{self.topic} (kafka.max_request_bytes): {len(settled)} settled keys, {ahead} of them ahead of the "
            f"watermark {watermark} (an object holding the watermark back while the others settle?)"
        )

    def statistics(self) -> CheckpointStatistics:
        return CheckpointStatistics(len(self._state), sum(len(s) for _, s in self._state.values()), self._commits)

    def close(self) -> None:
        """Nothing to release: snapshots are written by the sink's transactions."""


async def _ensure_compacted_topic(
    settings: KafkaSettings, options: dict[str, Any], topic: str, count: int = 1, config: dict[str, str] | None = None
) -> list[int]:
    """Create the topic (with ``count`` partitions; compacted unless ``config`` says otherwise) if missing;
    returns its partition ids once every partition has a leader."""
    admin = AIOKafkaAdminClient(**options)
    await asyncio.wait_for(admin.start(), settings.connect_timeout_seconds)
    try:
        if topic not in await admin.list_topics():
            await _create(admin, topic, count, config or _COMPACTED)
        deadline = asyncio.get_running_loop().time() + settings.connect_timeout_seconds
        while True:
            described = (await admin.describe_topics([topic]))[0]
            partitions = described.get("partitions", [])
            if described["error_code"] == 0 and partitions and all(p["leader"] >= 0 for p in partitions):
                return sorted(p["partition"] for p in partitions)
            if asyncio.get_running_loop().time() > deadline:
                raise CheckpointError(f"checkpoint topic {topic} has no partition leaders: {described}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


_COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


async def _create(admin: AIOKafkaAdminClient, topic: str, count: int, config: dict[str, str]) -> None:
    # Replicated like Kafka's own internal topics: 3, or fewer on a smaller cluster.
    brokers = len((await admin.describe_cluster())["brokers"])
    response = await admin.create_topics([NewTopic(topic, count, min(3, brokers), topic_configs=config)])
    for _name, code, *detail in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            raise CheckpointError(f"cannot create checkpoint topic {topic}: error {code} {detail}")


async def _read_snapshots(
    settings: KafkaSettings, options: dict[str, Any], topic: str, partition_ids: list[int]
) -> dict[str, tuple[str | None, set[str]]]:
    consumer = AIOKafkaConsumer(
        **options,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await asyncio.wait_for(consumer.start(), settings.connect_timeout_seconds)
    state: dict[str, tuple[str | None, set[str]]] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in partition_ids]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if end[tp] > 0}
        deadline = asyncio.get_running_loop().time() + settings.connect_timeout_seconds
        while pending:
            if asyncio.get_running_loop().time() > deadline:
                raise CheckpointError(f"checkpoint topic {topic}: not read to its end in time (open transaction?)")
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if record.key is None:
                        continue
                    if record.value is None:
                        state.pop(record.key.decode(), None)
                        continue
                    snapshot = _DECODER.decode(record.value)
                    state[record.key.decode()] = (snapshot.watermark, set(snapshot.settled))
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return state


async def ensure_topic(
    settings: KafkaSettings, topic: str, partitions: int, aws_region: str, *, config: dict[str, str] | None = None
) -> list[int]:
    """The topic with ``partitions`` partitions (created if missing; compacted unless ``config`` says
    otherwise); its partition ids."""
    try:
        options = client_options(settings, aws_region)
        return await _ensure_compacted_topic(settings, options, topic, partitions, config)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise CheckpointError(f"cannot create or describe checkpoint topic {topic}: {exc!r}") from exc


async def read_partitions(
    settings: KafkaSettings, topic: str, partition_ids: list[int], aws_region: str
) -> dict[str, tuple[str | None, set[str]]]:
    """The last committed snapshot of every shard written to these partitions (read to their end)."""
    if not partition_ids:
        return {}
    try:
        return await _read_snapshots(settings, client_options(settings, aws_region), topic, partition_ids)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise CheckpointError(f"cannot read checkpoint topic {topic} {partition_ids}: {exc!r}") from exc
