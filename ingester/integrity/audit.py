"""Digests in the running pipeline: one :class:`ShardAudit` per shard whose trail has log file validation.

The audit runs inside its shard job's poll cycle, after the log listing, so it owns no task and no queue:

    list new digests (when the next is due) -> fetch body + signature metadata -> verify (mode != off)
        -> pending, in key order, with alerts for a bad signature, an unknown key, a broken chain
    a pending digest, once none of the files it lists is in flight:
        files it lists that were never settled -> handed back to the job once, like late files
        then: each file's SHA-256 compared (verify), one completeness event, the digest settled

Digests have their own checkpoint stream in the shard's store (``<shard id>#digests``): an ordered watermark
of digest keys, committed after the completeness event is acknowledged. Until a digest is settled, the job
remembers the settled keys of the hours it covers (:meth:`ShardAudit.hold_floor`), so a restart neither
fetches again what was collected nor forgets what a digest may still name.

``enforce`` changes who queues: the job *holds* what it lists, and the audit releases a file only when a
digest vouches for it, with the :class:`FileCheck` the worker applies before anything is published. A file
no digest lists once the digests have moved two hours past its name is released with ``entry=None``: the
worker dead-letters its events (``file_not_in_digest``), so nothing is dropped silently.

Decisions (what is missing, what is ready, what a file's verdict is) are plain functions of the shard's
:class:`~ingester.checkpoint.watermark.OrderedWatermark`; only listing, fetching and publishing await.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import msgspec
import structlog

from ingester.checkpoint.store import CheckpointStore
from ingester.checkpoint.watermark import OrderedWatermark
from ingester.config import IntegritySettings
from ingester.errors import IngesterError, ObjectGoneError
from ingester.integrity.digest import (
    ChainLink,
    DigestFile,
    DigestFormatError,
    LogFileEntry,
    chain_id,
    digest_key_time,
    digest_prefix,
    load_digest_file,
)
from ingester.integrity.events import alert, completeness_event, encode_alert, encode_completeness
from ingester.integrity.keys import RegionKeys
from ingester.integrity.modes import ENFORCED_KINDS
from ingester.integrity.reconcile import reconcile
from ingester.integrity.verify import AlertKind, Violation, verify_digest, verify_log_hash
from ingester.models import DIGEST_STREAM_SUFFIX, LogObject, Settlement, Shard
from ingester.ops.telemetry import Telemetry
from ingester.sources import start_or_earliest
from ingester.sources.keys import days, key_time, time_floor_key
from ingester.sources.s3 import S3Source

log = structlog.get_logger("ingester.integrity")

# CloudTrail writes a digest about an hour after the previous one: the digest prefix is listed when the next
# one is due (an hour after the newest seen), then every integrity.digest_poll_seconds while it is late.
DIGEST_PERIOD = timedelta(hours=1)
# A file named at t is listed by a digest whose hour ends by t + this (an hour of digest plus delivery lag).
VOUCH_WINDOW = timedelta(hours=2)
# Byte budget of a file a digest names but no listing returned, when HeadObject cannot say.
UNKNOWN_SIZE = 1 << 20

Publish = Callable[[bytes, bytes], Awaitable[None]]


class FileCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What enforce mode's worker verifies before publishing one file: the digest entry that vouches for it
    (None: no digest lists it), or the failure of the digest itself."""

    digest_key: str
    time_ms: int
    entry: LogFileEntry | None
    failed: AlertKind | None = None
    failed_detail: str = ""


def file_verdict(bucket: str, key: str, sha256: str, check: FileCheck) -> Violation | None:
    """The enforce-mode decision for one fetched file; pure."""
    if check.failed is not None:
        return Violation(kind=check.failed, bucket=bucket, key=key, detail=check.failed_detail)
    if check.entry is None:
        return Violation(
            kind="file_not_in_digest",
            bucket=bucket,
            key=key,
            detail="no digest of the trail lists this file, two hours after its name time",
        )
    return verify_log_hash(check.entry, sha256)


class Pending:
    """A digest read and not yet settled; ``file`` is None when it could not be read at all."""

    __slots__ = ("entries", "failed", "file", "key", "requested", "verified")

    def __init__(
        self,
        key: str,
        file: DigestFile | None,
        entries: dict[str, LogFileEntry],
        failed: Violation | None,
        *,
        verified: bool = False,
    ) -> None:
        self.key = key
        self.file = file
        self.verified = verified  # signature, key and chain all checked and good
        self.entries = entries
        self.failed = failed
        self.requested = False


def missing(pending: Pending, tracker: OrderedWatermark, floor_key: str) -> list[str]:
    """Keys the digest lists that were never settled; below the job's floor a key counts as collected
    (forgotten, not provable: the hold window is configurable)."""
    return [k for k in sorted(pending.entries) if k >= floor_key and not tracker.is_settled(k)]


def ready(pending: Pending, tracker: OrderedWatermark, floor_key: str) -> bool:
    """Settle a digest only once nothing it lists is in flight, and what was missing was asked for once."""
    if any(tracker.is_in_flight(k) for k in pending.entries):
        return False
    return pending.requested or not missing(pending, tracker, floor_key)


class ShardAudit:
    def __init__(
        self,
        shard: Shard,
        source: S3Source,
        store: CheckpointStore,
        *,
        settings: IntegritySettings,
        keys: RegionKeys,
        publish: Publish,
        telemetry: Telemetry,
    ) -> None:
        self.shard = shard
        self.mode = settings.mode
        self._settings = settings
        self._source = source
        self._store = store
        self._keys = keys
        self._publish = publish
        self._telemetry = telemetry
        self._stream = shard.shard_id + DIGEST_STREAM_SUFFIX
        watermark = store.watermark(self._stream)
        self._digests = OrderedWatermark(watermark, store.settled_since(self._stream, self._day_floor(watermark)))
        self._pending: dict[str, Pending] = {}
        self._chains: dict[str, ChainLink] = {}
        self._hashes: dict[str, str] = {}  # verify: SHA-256 of files settled, until their digest is
        self._vouched: set[str] = set()  # keys listed by a settled digest, until past the floor
        self.held: dict[str, LogObject] = {}  # enforce: listed files waiting for a digest
        self._start: datetime | None = None
        self._next_listing = datetime.min.replace(tzinfo=UTC)

    @property
    def enforce(self) -> bool:
        return self.mode == "enforce"

    @property
    def hashing(self) -> bool:
        return self.mode != "off"

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def begin(self, start: datetime | None) -> None:
        """The job's listing start on its first cycle: digests are read from there on."""
        if self._start is None:
            self._start = start

    def hold(self, obj: LogObject) -> None:
        self.held[obj.key] = obj

    def record_hash(self, key: str, sha256: str) -> None:
        """verify: keep the hash of a settled file until the digest that lists it is settled."""
        if self.mode == "verify":
            self._hashes[key] = sha256

    # --- the floor the job must keep settled keys above --------------------------------------------------

    def _digest_time(self) -> datetime | None:
        watermark = self._digests.watermark
        return digest_key_time(watermark) if watermark else None

    def hold_floor(self, listing_floor: datetime) -> datetime:
        """How far back the job remembers settled keys: to the files unsettled digests may list, bounded."""
        lowest = listing_floor - timedelta(seconds=self._settings.max_hold_seconds)
        when = self._digest_time()
        return lowest if when is None else max(lowest, min(listing_floor, when - VOUCH_WINDOW))

    @staticmethod
    def _day_floor(watermark: str | None) -> str:
        """Digest keys of the watermark's day are re-listed whole; settled ones are remembered from there."""
        when = digest_key_time(watermark) if watermark else None
        return "" if when is None or watermark is None else watermark.rsplit("/", 1)[0] + "/"

    # --- one pass, from the job's cycle ---------------------------------------------------------------------

    async def cycle(
        self, tracker: OrderedWatermark, *, floor_key: str, now: datetime
    ) -> list[tuple[LogObject, FileCheck | None]]:
        """Read new digests, settle the ready ones; returns the files the job must queue."""
        releases: list[tuple[LogObject, FileCheck | None]] = []
        asked: set[str] = set()  # digests whose files are handed over now: settled on a later pass
        if now >= self._next_listing:
            poll = timedelta(seconds=self._settings.digest_poll_seconds)
            try:
                newest = await self._read_new(tracker, releases, asked)
                due = newest + DIGEST_PERIOD if newest is not None else now
                self._next_listing = max(now + poll, due)
            except IngesterError as exc:  # S3 or ListPublicKeys: the next cycle tries again
                self._next_listing = now + poll
                report = log.warning if exc.retriable else log.error
                report("digest_read_failed", error=str(exc), retry_in_seconds=poll.total_seconds())
        if not self.enforce and self._settings.reconcile:
            for pending in self._pending.values():
                if pending.requested or any(tracker.is_in_flight(k) for k in pending.entries):
                    continue
                pending.requested = True
                for key in missing(pending, tracker, floor_key):
                    asked.add(pending.key)
                    if tracker.wants(key):
                        releases.append((LogObject(key, await self._size(key)), None))
        for key in sorted(self._pending.keys() - asked):
            pending = self._pending[key]
            if ready(pending, tracker, floor_key):
                await self._settle(pending, tracker, floor_key)
        releases.extend(await self._sweep(tracker, floor_key))
        return releases

    async def _read_new(
        self, tracker: OrderedWatermark, releases: list[tuple[LogObject, FileCheck | None]], asked: set[str]
    ) -> datetime | None:
        """Read the digests not seen yet; returns the end time of the newest digest listed."""
        keys = [k async for k in self._list()]
        for key in keys:
            if self._pending.get(key) is not None or not self._digests.wants(key):
                continue
            pending = await self._load(key)
            self._digests.register(key)
            self._pending[key] = pending
            if self.enforce:
                releases.extend(await self._vouch(pending, tracker))
                asked.add(key)
        return max((t for t in map(digest_key_time, keys) if t is not None), default=None)

    async def _list(self) -> AsyncIterator[str]:
        """Digest keys from the digest watermark's day (or the job's start) through tomorrow, in key order."""
        prefix = digest_prefix(self.shard)
        when = await start_or_earliest(self._source, self.shard, self._digest_time() or self._start, prefix)
        if when is None:
            return
        for day in days(when.date(), (datetime.now(UTC) + timedelta(days=1)).date()):
            async for obj in self._source.list_after(f"{prefix}{day:%Y/%m/%d}/", None):
                stamp = digest_key_time(obj.key)
                if stamp is not None and (self._start is None or stamp >= self._start):
                    yield obj.key

    async def _size(self, key: str) -> int:
        try:
            return await self._source.size(key)
        except IngesterError:
            return UNKNOWN_SIZE  # the worker's own GET decides whether the file is gone

    async def _load(self, key: str) -> Pending:
        """Fetch and verify one digest; alerts for what fails. Retriable errors propagate (next cycle)."""
        bucket = self.shard.bucket
        try:
            body, metadata = await self._source.get_with_metadata(key)
            file = load_digest_file(body, bucket=bucket, key=key, metadata=metadata)
        except (ObjectGoneError, DigestFormatError) as exc:
            violation = Violation(
                kind="digest_signature_invalid", bucket=bucket, key=key, detail=f"unreadable digest: {exc}"
            )
            await self._alert(violation, digest_key=key, time_ms=_digest_key_ms(key))
            self._telemetry.digest_settled(self.shard, "unreadable", 0)
            return Pending(key, None, {}, violation)
        violations: list[Violation] = []
        if self.hashing:
            public_key = await self._keys.key_for(file.digest)
            violations = verify_digest(file, public_key, self._chains.get(chain_id(key)))
        self._chains[chain_id(key)] = file.link()
        for violation in violations:
            await self._alert(violation, digest_key=key, time_ms=_time_ms(file))
        failed = next((v for v in violations if v.kind in ENFORCED_KINDS), None)
        entries = {e.s3_object: e for e in file.digest.log_files if e.s3_bucket == bucket}
        log.info("digest_read", digest=key, files=len(entries), verified=self.hashing and failed is None)
        return Pending(key, file, entries, failed, verified=self.hashing and not violations)

    async def _vouch(self, pending: Pending, tracker: OrderedWatermark) -> list[tuple[LogObject, FileCheck | None]]:
        """enforce: release every file the digest lists, with the check the worker applies."""
        released: list[tuple[LogObject, FileCheck | None]] = []
        for key, entry in sorted(pending.entries.items()):
            if not tracker.wants(key):
                continue
            obj = self.held.pop(key, None) or LogObject(key, await self._size(key))
            check = FileCheck(
                digest_key=pending.key,
                time_ms=_digest_key_ms(pending.key),
                entry=entry,
                failed=pending.failed.kind if pending.failed else None,
                failed_detail=f"{pending.failed.detail} ({pending.key})" if pending.failed else "",
            )
            released.append((obj, check))
        pending.requested = True
        return released

    async def _settle(self, pending: Pending, tracker: OrderedWatermark, floor_key: str) -> None:
        """Compare hashes (verify), publish the completeness event, then settle the digest."""
        file = pending.file
        if file is not None:
            for key, entry in sorted(pending.entries.items()):
                self._vouched.add(key)
                sha256 = self._hashes.pop(key, None)
                violation = verify_log_hash(entry, sha256) if sha256 is not None else None
                if violation is not None:
                    await self._alert(violation, digest_key=file.key, time_ms=_time_ms(file))
            settled = {k for k in pending.entries if k < floor_key or tracker.is_settled(k)}
            result = reconcile(file.digest, settled)
            event = completeness_event(self.shard, file.digest, result, verified=pending.verified)
            if self._settings.reconcile:
                await self._publish(event.message_key(), encode_completeness(event))
            outcome = "complete" if result.complete else "incomplete"
            self._telemetry.digest_settled(self.shard, outcome, len(result.missing))
            log.info("digest_reconciled", digest=file.key, expected=result.expected, missing=len(result.missing))
        del self._pending[pending.key]
        self._digests.settle(pending.key, Settlement.DELIVERED)
        self._store.commit(self._stream, pending.key, Settlement.DELIVERED, self._digests.watermark)
        day_floor = self._day_floor(self._digests.watermark)
        if day_floor and self._digests.prune(day_floor):
            self._store.prune(self._stream, day_floor)

    async def _sweep(self, tracker: OrderedWatermark, floor_key: str) -> list[tuple[LogObject, FileCheck | None]]:
        """Files whose hour the digests have passed without listing them: alerted (verify) or released to be
        dead-lettered (enforce); forgotten state below the job's floor is dropped."""
        when = self._digest_time()
        released: list[tuple[LogObject, FileCheck | None]] = []
        if when is not None:
            cutoff = time_floor_key(self.shard, when - VOUCH_WINDOW)
            for key in [k for k in self._hashes if k < cutoff]:
                del self._hashes[key]
                if key not in self._vouched:
                    violation = file_verdict(self.shard.bucket, key, "", _NOT_LISTED)
                    if violation is not None:
                        await self._alert(violation, digest_key="", time_ms=_key_ms(key))
            for key in [k for k in self.held if k < cutoff and k not in self._vouched]:
                obj = self.held.pop(key)
                if tracker.wants(key):
                    released.append((obj, msgspec.structs.replace(_NOT_LISTED, time_ms=_key_ms(key))))
        for key in [k for k in self._hashes if k < floor_key]:
            del self._hashes[key]  # no digest came within the hold window: nothing to compare with
        for key in [k for k in self.held if k < floor_key]:
            obj = self.held.pop(key)
            if tracker.wants(key):
                released.append((obj, msgspec.structs.replace(_NOT_LISTED, time_ms=_key_ms(key))))
        self._vouched = {k for k in self._vouched if k >= floor_key}
        return released

    async def _alert(self, violation: Violation, *, digest_key: str, time_ms: int) -> None:
        event = alert(self.shard, violation, digest_key=digest_key, time_ms=time_ms, mode=self.mode)
        await self._publish(event.message_key(), encode_alert(event))
        self._telemetry.integrity_alert(violation.kind)
        log.warning("integrity_alert", kind=violation.kind, key=violation.key, detail=violation.detail[:300])

    def alert_bytes(self, violation: Violation, check: FileCheck) -> tuple[bytes, bytes]:
        """The alert a worker publishes for a file it dead-letters (enforce)."""
        event = alert(self.shard, violation, digest_key=check.digest_key, time_ms=check.time_ms, mode=self.mode)
        self._telemetry.integrity_alert(violation.kind)
        return event.message_key(), encode_alert(event)


_NOT_LISTED = FileCheck(digest_key="", time_ms=0, entry=None)


def _time_ms(file: DigestFile) -> int:
    return int(file.digest.end.timestamp() * 1000)


def _digest_key_ms(key: str) -> int:
    when = digest_key_time(key)
    return int(when.timestamp() * 1000) if when else 0


def _key_ms(key: str) -> int:
    when = key_time(key)
    return int(when.timestamp() * 1000) if when else 0
