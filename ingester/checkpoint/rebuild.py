"""Rebuild a lost SQLite checkpoint from the output topic, without skipping anything that was not sent.

A checkpoint file can be lost (a replaced volume, a deleted or corrupt file). Starting from ``start_time`` would
send every file again; the topic already says what was sent, because each record carries its provenance
(codec/provenance.py): the S3 object it came from, that file's record count, and its shard's committable
watermark when the file was encoded. This module reads each partition backwards from its end and, per shard,
restores a state the checkpoint could have held:

- **watermark**: the *lowest* ``shardWatermark`` among the records of the shard's newest ``window_files``
  files in each partition (``window_files`` = ``collection.max_inflight_objects``). Each value was true when its
  file was encoded (every key the shard had registered below it was settled) and watermarks only move forward,
  except down to a late file, which is then itself in flight. Why not the newest key in the topic: with N
  workers, files are sent out of order, and a file that kept failing (S3 throttling on one key) or one still
  queued holds the watermark back while later keys are sent; the newest key seen says nothing about them, the
  watermark header does. Why the lowest of a window rather than the last record's: the last record sent is not
  the last encoded (workers overtake each other), and a late file registered in between lowers it; the window
  spans every file that could have been in flight together.
- **remembered keys**: the files whose every record is in the topic (``originRecords`` distinct event ids), at
  or after the resume point (``watermark`` minus the lookback). Listing resumes there and skips them, exactly as
  after a restart; a file only partly sent, or not at all, is sent again: the objects in flight at the loss are
  the duplicates. A file with a dead-lettered record never counts as complete (its record is not in the topic),
  so its dead letter is not lost either: the file is sent again.

What this cannot see: a late file registered after the shard's last record was sent, with a key more than the
lookback behind the restored watermark. The ordinary checkpoint would have resumed at it; the deep re-list
(checkpoint/passes.py, ``collection.deep_relist_*``) collects such a file when it arrived later than the
lookback after its minute, which it then did. Records without provenance (written before these headers, or by
another producer) cannot be attributed: they are counted, and their shards start from ``start_time``
(duplicates, never loss).

Reading stops per partition as soon as every shard looked for has both a full window and a key below its resume
point (send order follows key order closely, so older records add nothing), at the start of the partition, or
after ``max_records`` records.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ingester.checkpoint.store import SqliteCheckpointStore
from ingester.codec.provenance import read_provenance
from ingester.config import KafkaSettings
from ingester.connect.kafka import client_options
from ingester.errors import SinkError
from ingester.models import Shard
from ingester.sinks.kafka import partition_for
from ingester.sources.keys import resume_point, time_floor_key

log = structlog.get_logger("ingester.checkpoint.rebuild")

# Records read per step backwards; the per-partition state is kept between steps, so this bounds only latency.
CHUNK_RECORDS = 5000
# A fetch that returns nothing for this long while records remain below the end offset is a broken broker.
FETCH_STALL_SECONDS = 30.0

# [prefix/]AWSLogs/[o-id/]<account>/CloudTrail/<region>/ at the start of a key
_SHARD_PART = re.compile(r"^(?:(.*)/)?AWSLogs/(?:(o-[a-z0-9]+)/)?(\d{12})/CloudTrail/([a-z0-9-]+)/")

_Headers = Sequence[tuple[str, bytes]]


def shard_of(bucket: str, key: str) -> Shard | None:
    """The shard a log key belongs to, from the key alone (its id matches discovery's: bucket and prefix)."""
    match = _SHARD_PART.match(key)
    if match is None:
        return None
    prefix, org, account, region = match.groups()
    return Shard(
        trail_arn="",
        bucket=bucket,
        key_prefix=prefix or "",
        org_id=org or "",
        account_id=account,
        region=region,
        reader_account=account,
    )


class Restored(msgspec.Struct, frozen=True, kw_only=True):
    """The state rebuilt for one shard."""

    shard_id: str
    watermark: str | None
    # Files entirely in the topic at or after the resume point: skipped by the next listing.
    settled: frozenset[str]
    # Distinct files of the shard the scan saw records of (complete or not).
    files_seen: int
    newest_key: str


class _Window:
    """One shard in one partition, newest records first."""

    __slots__ = ("below_floor", "files", "has_none", "low")

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.low: str | None = None
        self.has_none = False  # a window record had no watermark: the shard had none yet
        self.below_floor = False


class _ShardScan:
    __slots__ = ("_floor", "files", "newest", "shard", "windows")

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.windows: dict[int, _Window] = {}
        self.files: dict[str, tuple[int, set[bytes]]] = {}  # key -> (records declared, distinct event ids seen)
        self.newest = ""
        self._floor: str | None = None  # cached; a window's watermark changing drops it

    def watermark(self) -> tuple[bool, str | None]:
        """(known, watermark): the lowest over every partition's window; (True, None) = the shard had none."""
        if any(w.has_none for w in self.windows.values()):
            return True, None
        lows = [w.low for w in self.windows.values() if w.low is not None]
        return (True, min(lows)) if lows else (False, None)

    def floor(self, lookback: timedelta) -> str:
        if self._floor is None:
            _, watermark = self.watermark()
            when = resume_point(watermark, lookback)
            self._floor = "" if when is None else time_floor_key(self.shard, when)
        return self._floor

    def lowered(self) -> None:
        self._floor = None


class RebuildScan:
    """The pure part: fed the topic's records newest first (per partition), decides each shard's state."""

    def __init__(self, *, lookback: timedelta, window_files: int, wanted: Collection[str] | None = None) -> None:
        self._lookback = lookback
        self._window = max(1, window_files)
        self._wanted = set(wanted) if wanted is not None else None
        self._shards: dict[str, _ShardScan] = {}
        self.records = 0
        self.unattributed = 0  # records without (valid) provenance

    def feed(self, partition: int, records: Iterable[tuple[_Headers, bytes | None]]) -> None:
        """One partition's records in reverse offset order (newest first): (headers, message key)."""
        for headers, event_key in records:
            self.records += 1
            found = read_provenance(list(headers))
            shard = shard_of(found.bucket, found.key) if found is not None else None
            if found is None or shard is None:
                self.unattributed += 1
                continue
            shard_id = shard.shard_id
            if self._wanted is not None and shard_id not in self._wanted:
                continue
            scan = self._shards.get(shard_id)
            if scan is None:
                scan = self._shards[shard_id] = _ShardScan(shard)
            key = found.key
            scan.newest = max(scan.newest, key)
            window = scan.windows.get(partition)
            if window is None:
                window = scan.windows[partition] = _Window()
            if key in window.files or len(window.files) < self._window:
                window.files.add(key)
                if found.watermark is None:
                    if not window.has_none:
                        window.has_none = True
                        scan.lowered()
                elif window.low is None or found.watermark < window.low:
                    window.low = found.watermark
                    scan.lowered()
            elif key < scan.floor(self._lookback):
                window.below_floor = True
                continue
            declared, ids = scan.files.get(key) or (found.records, set())
            ids.add(event_key or b"")
            scan.files[key] = (declared, ids)

    def partition_done(self, partition: int, expected: Collection[str] | None) -> bool:
        """Whether reading further back in ``partition`` can change nothing: every shard seen there has a full
        window and was seen below its resume point, and every ``expected`` one was seen. ``expected`` None (every
        shard is of interest, none is known in advance): not before some shard was seen there."""
        seen = False
        for scan in self._shards.values():
            window = scan.windows.get(partition)
            if window is None:
                continue
            seen = True
            if len(window.files) < self._window or not window.below_floor:
                return False
        if expected is None:
            return seen
        return all(shard_id in self._shards and partition in self._shards[shard_id].windows for shard_id in expected)

    def result(self) -> dict[str, Restored]:
        restored: dict[str, Restored] = {}
        for shard_id, scan in self._shards.items():
            known, watermark = scan.watermark()
            if not known:
                continue
            floor = scan.floor(self._lookback)
            settled = frozenset(
                key for key, (declared, ids) in scan.files.items() if key >= floor and len(ids) >= declared
            )
            restored[shard_id] = Restored(
                shard_id=shard_id,
                watermark=watermark,
                settled=settled,
                files_seen=len(scan.files),
                newest_key=scan.newest,
            )
        return restored


class ScanReport(msgspec.Struct, frozen=True, kw_only=True):
    restored: dict[str, Restored]
    records_read: int
    unattributed: int
    # Partitions whose scan stopped at max_records before it could decide.
    cut_short: tuple[int, ...]


async def scan_topic(
    settings: KafkaSettings,
    *,
    aws_region: str,
    lookback: timedelta,
    window_files: int,
    max_records: int,
    wanted: Sequence[Shard] | None = None,
) -> ScanReport:
    """Read ``settings.topic`` backwards, partition by partition, into a :class:`RebuildScan`.

    ``wanted``: the shards to look for (a collector's start); None = every shard found (``checkpoint rebuild``).
    A looked-for shard sends its records to the partition of its account (sinks/kafka.py), so a partition is read
    until it settles every shard seen in it and every wanted shard of that account."""
    scan = RebuildScan(
        lookback=lookback, window_files=window_files, wanted=None if wanted is None else [s.shard_id for s in wanted]
    )
    options = client_options(settings, aws_region)
    consumer = AIOKafkaConsumer(
        **options,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=settings.max_request_bytes,
    )
    cut_short: list[int] = []
    try:
        async with asyncio.timeout(settings.connect_timeout_seconds):
            partitions = sorted(await _partitions(settings, options))
            await consumer.start()
        for partition in partitions:
            expected = (
                None
                if wanted is None
                else [s.shard_id for s in wanted if partition_for(s.account_id.encode(), len(partitions)) == partition]
            )
            if not await _scan_partition(
                consumer, TopicPartition(settings.topic, partition), scan, expected, max_records
            ):
                cut_short.append(partition)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise SinkError(f"cannot read Kafka topic {settings.topic} to rebuild the checkpoint: {exc!r}") from exc
    finally:
        await consumer.stop()
    return ScanReport(
        restored=scan.result(), records_read=scan.records, unattributed=scan.unattributed, cut_short=tuple(cut_short)
    )


async def _partitions(settings: KafkaSettings, options: dict[str, Any]) -> set[int]:
    """The topic's partition ids (the consumer knows only topics it was assigned; the admin client describes)."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        described = (await admin.describe_topics([settings.topic]))[0]
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise SinkError(f"Kafka topic {settings.topic} does not exist (describe: {described})", retriable=False)
    return {int(p["partition"]) for p in described["partitions"]}


async def _scan_partition(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    scan: RebuildScan,
    expected: Sequence[str] | None,
    max_records: int,
) -> bool:
    """False when ``max_records`` ran out before the partition was decided."""
    consumer.assign([tp])
    begin = (await consumer.beginning_offsets([tp]))[tp]
    high = (await consumer.end_offsets([tp]))[tp]
    limit = max(begin, high - max_records)
    while high > limit:
        if scan.partition_done(tp.partition, expected):
            return True
        low = max(limit, high - CHUNK_RECORDS)
        consumer.seek(tp, low)
        chunk: list[tuple[_Headers, bytes | None]] = []
        while True:
            async with asyncio.timeout(FETCH_STALL_SECONDS):
                fetched = await consumer.getmany(tp, timeout_ms=1000)
            records = fetched.get(tp, [])
            chunk += [(r.headers, r.key) for r in records if r.offset < high]
            if (records and records[-1].offset >= high - 1) or await consumer.position(tp) >= high:
                break
        scan.feed(tp.partition, reversed(chunk))
        high = low
    return high <= begin or scan.partition_done(tp.partition, expected)


class Restorer(Protocol):
    async def restore_missing(self, shards: Sequence[Shard]) -> None: ...


class KafkaRestore:
    """At a collector's start: shards the store has no row for are looked for in the topic (one scan for all).

    Found: the rebuilt state is written, with a loud warning (the checkpoint was lost). Not found: a row without
    a watermark records that they were looked for, so the next start does not scan again for a shard that is
    new or has no files."""

    def __init__(
        self,
        store: SqliteCheckpointStore,
        settings: KafkaSettings,
        *,
        aws_region: str,
        lookback: timedelta,
        window_files: int,
        max_records: int,
    ) -> None:
        self._store = store
        self._settings = settings
        self._aws_region = aws_region
        self._lookback = lookback
        self._window = window_files
        self._max_records = max_records

    async def restore_missing(self, shards: Sequence[Shard]) -> None:
        missing = [shard for shard in shards if not self._store.known(shard.shard_id)]
        if not missing:
            return
        report = await scan_topic(
            self._settings,
            aws_region=self._aws_region,
            lookback=self._lookback,
            window_files=self._window,
            max_records=self._max_records,
            wanted=missing,
        )
        log.info(
            "checkpoint_rebuild_scanned",
            shards_missing=len(missing),
            shards_found=len(report.restored),
            records_read=report.records_read,
        )
        if report.cut_short:
            log.warning(
                "checkpoint_rebuild_cut_short",
                topic=self._settings.topic,
                partitions=list(report.cut_short),
                max_records=self._max_records,
                detail="shards not found within checkpoint.rebuild_scan_records start from collection.start_time",
            )
        restored = 0
        for shard in missing:
            found = report.restored.get(shard.shard_id)
            if found is None:
                self._store.restore(shard.shard_id, None, set())
                continue
            if self._store.restore(shard.shard_id, found.watermark, set(found.settled)):
                restored += 1
                log.warning(
                    "checkpoint_restored_from_kafka",
                    shard=shard.shard_id,
                    watermark=found.watermark,
                    remembered=len(found.settled),
                    newest_in_topic=found.newest_key,
                )
        if restored:
            log.error(
                "checkpoint_missing",
                shards_restored=restored,
                topic=self._settings.topic,
                records_read=report.records_read,
                detail="the checkpoint store had no state for shards whose events are in the topic (a lost or "
                "replaced checkpoint file): restored from the topic; objects in flight at the loss are sent again. "
                "`ingester run --from-scratch` collects from collection.start_time instead",
            )
        if report.unattributed:
            log.warning(
                "checkpoint_rebuild_unattributed",
                records=report.unattributed,
                detail="records without origin headers (written before ingester added them, or by another producer)",
            )
