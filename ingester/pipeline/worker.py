"""Workers: take one object through fetch -> decode -> normalize -> send -> await acks, then settle it.

The unit of acknowledgement is the object. Its settlement is one of:
- DELIVERED: the sink acknowledged every record (dead letters for bad records included);
- REJECTED: the object is permanently unreadable (gone, corrupt); a dead letter says why;
- ERRORED: transient failures outlasted the retries; the watermark stays behind it and the next poll retries.
Sink failures are retried without limit (with capped backoff): an unreachable Kafka stalls the pipeline
rather than letting it skip ahead. Memory is bounded by :class:`ByteBudget` plus the bounded work queue.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ingester.codec.cloudtrail import RecordHead
from ingester.codec.decode import DecodedFile, FileDecodeError, decode_object
from ingester.codec.encode import OutputFormat, encode_file
from ingester.codec.provenance import provenance_headers
from ingester.codec.routing import Router, RouteTally
from ingester.config import Settings
from ingester.errors import CheckpointError, IngesterError, ObjectGoneError, SinkError
from ingester.integrity.audit import FileCheck, file_verdict
from ingester.integrity.modes import dead_letters
from ingester.integrity.verify import Violation
from ingester.models import DeadLetter, Settlement
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.jobs import WorkItem
from ingester.sinks import RecordSink

log = structlog.get_logger("ingester.pipeline.worker")

T = TypeVar("T")

# CloudTrail JSON compresses ~8-15x: the JSON of an object is about this many times its compressed size.
EXPANSION_ESTIMATE = 12
# What an object holds while it is processed, per byte of its JSON: the JSON itself, the decoded records (~1x) and
# the encoded events until Kafka acknowledges them, whose size per byte of JSON is measured on the benchmark's data
# (1.5 KB records): raw 1.0, native 1.07, OCSF 3.0 (1.9 without raw_data). The byte budget reserves
# compressed size x EXPANSION_ESTIMATE x this before the GET, so that it bounds memory, not only the JSON.
_HELD_PER_JSON_BYTE = {"raw": 3.0, "native": 3.1, "ocsf": 5.0}
_HELD_PER_JSON_BYTE_OCSF_WITHOUT_RAW_DATA = 3.9


def reservation_factor(fmt: OutputFormat, *, raw_data: bool = True) -> int:
    """Bytes the budget reserves per compressed byte of an object, in this output format."""
    held = _HELD_PER_JSON_BYTE_OCSF_WITHOUT_RAW_DATA if fmt == "ocsf" and not raw_data else _HELD_PER_JSON_BYTE[fmt]
    return round(EXPANSION_ESTIMATE * held)


# Dead letters carry at most this much of the offending record.
DEAD_LETTER_RECORD_BYTES = 64 * 1024
SINK_BACKOFF_MAX_SECONDS = 30.0


class ByteBudget:
    """A counting semaphore in bytes. An object larger than the whole budget still runs, alone."""

    def __init__(self, limit: int, telemetry: Telemetry) -> None:
        self.limit = limit
        self._used = 0
        self._changed = asyncio.Condition()
        self._telemetry = telemetry

    @asynccontextmanager
    async def hold(self, amount: int) -> AsyncIterator[None]:
        amount = min(max(amount, 1), self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self._used + amount <= self.limit)
            self._used += amount
            self._telemetry.inflight_bytes.set(self._used)
        try:
            yield
        finally:
            async with self._changed:
                self._used -= amount
                self._telemetry.inflight_bytes.set(self._used)
                self._changed.notify_all()

    @property
    def used(self) -> int:
        return self._used


def cancelled_below(exc: BaseException) -> None:
    """A fault boundary catches ``Exception``; when the task is being cancelled, a library below may have turned
    the CancelledError into another error (aiokafka does, inside a transaction). Catching it would swallow the
    cancellation and leave the task running after its TaskGroup asked it to stop: re-raise it instead."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, IngesterError) and exc.retriable and not isinstance(exc, SinkError)


async def until_acknowledged(
    send: Callable[[], Awaitable[T]], what: str, telemetry: Telemetry, *, backoff: float = 0.5
) -> T:
    """Retry a send until the sink acknowledges; capped exponential backoff, never gives up by itself."""
    delay = backoff
    while True:
        try:
            with telemetry.sending():
                result = await send()
        except SinkError as exc:
            if not exc.retriable:
                raise
            telemetry.sink_retrying(str(exc))  # /readyz and ingester_sink_stalled_seconds show the stall
            telemetry.retry("sink")
            log.warning("sink_retry", key=what, error=str(exc), retry_in_seconds=round(delay, 1))
            await asyncio.sleep(delay)
            delay = min(delay * 2, SINK_BACKOFF_MAX_SECONDS)
            continue
        telemetry.sink_acknowledged()
        return result


class Worker:
    def __init__(
        self,
        sink: RecordSink,
        budget: ByteBudget,
        telemetry: Telemetry,
        *,
        fmt: OutputFormat,
        max_attempts: int,
        backoff_multiplier: float = 0.5,
        router: Router | None = None,
        raw_data: bool = True,
    ) -> None:
        self._raw_data = raw_data  # OCSF: events carry the original record (sink.ocsf_raw_data)
        self._reserve = reservation_factor(fmt, raw_data=raw_data)
        self._router = router
        self._sink = sink
        self._budget = budget
        self._telemetry = telemetry
        self._fmt = fmt
        self._max_attempts = max_attempts
        self._backoff = backoff_multiplier

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sink: RecordSink,
        budget: ByteBudget,
        telemetry: Telemetry,
        router: Router | None = None,
    ) -> Worker:
        """The worker the configuration describes (output format, attempts, raw_data), shared by every task."""
        return cls(
            sink,
            budget,
            telemetry,
            fmt=settings.sink.format,
            max_attempts=settings.collection.max_attempts,
            router=router,
            raw_data=settings.sink.ocsf_raw_data,
        )

    async def run(self, queue: asyncio.Queue[WorkItem | None]) -> None:
        """Process until a ``None`` sentinel arrives: shutdown is by closing, not cancelling."""
        while True:
            item = await queue.get()
            try:
                if item is None:
                    return
                await self.guarded(item)
            finally:
                queue.task_done()

    async def guarded(self, item: WorkItem) -> None:
        """The object's fault boundary: whatever fails while it is processed (a bug included) errors this one
        object, which holds its shard's watermark and is tried again on the next poll, logged and counted;
        the worker goes on with the next object. Only process-wide faults pass: the checkpoint store, and a
        sink that can never accept (a missing topic)."""
        try:
            await self.process(item)
        except (CheckpointError, SinkError):
            raise
        except Exception as exc:  # the boundary: see the docstring
            cancelled_below(exc)
            log.error(
                "object_failed",
                key=item.obj.key,
                error=f"{type(exc).__name__}: {exc}",
                exc_info=not isinstance(exc, IngesterError),
            )
            self._telemetry.retry("internal" if not isinstance(exc, IngesterError) else "object")
            if not item.job.tracker.is_settled(item.obj.key):
                item.job.finish(item, Settlement.ERRORED)
                self._telemetry.object_settled("errored", 0, 0, 0)

    async def process(self, item: WorkItem) -> None:
        key = item.obj.key
        if item.bad_key:
            await self._reject(item, "bad_key", f"{key}: {item.bad_key}")
            return
        async with self._budget.hold(item.obj.size * self._reserve):
            try:
                body = await self._fetch(item)
            except ObjectGoneError as exc:
                await self._reject(item, "object_unreadable", str(exc))
                return
            except IngesterError as exc:
                log.warning("object_errored", key=key, error=str(exc), attempts=self._max_attempts)
                item.job.finish(item, Settlement.ERRORED)
                self._telemetry.object_settled("errored", 0, 0, 0)
                return
            audit = item.job.audit
            try:
                decoded = decode_object(
                    body, key, sha256=audit is not None and audit.hashing, head_only=self._fmt == "raw"
                )
            except FileDecodeError as exc:
                await self._reject(item, exc.reason, exc.detail, compressed=len(body))
                return
            if audit is not None and audit.hashing:
                if item.check is not None:
                    violation = file_verdict(item.job.shard.bucket, key, decoded.sha256, item.check)
                    if violation is not None and dead_letters(violation.kind, audit.mode):
                        await self._divert(item, decoded, violation, item.check, compressed=len(body))
                        return
                else:
                    audit.record_hash(key, decoded.sha256)
            sending = time.monotonic()
            with self._telemetry.sending():
                async with self._sink.unit(item.job.shard.shard_id):
                    records = await self._deliver(item, decoded)
                    item.job.finish(item, Settlement.DELIVERED)
            self._telemetry.sent(time.monotonic() - sending)
            self._telemetry.object_settled("delivered", records, len(body), decoded.decompressed_bytes)
            self._progress(item)

    async def _fetch(self, item: WorkItem) -> bytes:
        """The object's bytes, retried up to ``max_attempts`` on a retriable source error. The first attempt is a
        plain await: tenacity's per-attempt bookkeeping cost ~2% of a small file's CPU, and nearly every GET
        succeeds at once; after a failure, tenacity waits and retries (a wait before each retry, as before)."""
        source, key = item.job.source, item.obj.key
        try:
            return await source.get(key)
        except IngesterError as exc:
            if self._max_attempts <= 1 or not _is_retriable(exc):
                raise
        await asyncio.sleep(random.uniform(0, min(self._backoff, 20)))  # the first retry's wait; tenacity's follow
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_is_retriable),
            stop=stop_after_attempt(self._max_attempts - 1),
            wait=wait_random_exponential(multiplier=self._backoff * 2, max=20),  # attempts 2.. of the sequence
            before=lambda _: self._telemetry.retry("source"),
            reraise=True,
        ):
            with attempt:
                return await source.get(key)
        raise AssertionError("unreachable: tenacity returns or reraises")  # pragma: no cover

    async def _deliver(self, item: WorkItem, decoded: DecodedFile[RecordHead]) -> int:
        """Send the records and the dead letters of bad ones; retried until the sink acknowledges."""
        shard, key = item.job.shard, item.obj.key
        rejected = list(decoded.rejected)  # encode_file appends the records it cannot encode
        # The shard's watermark now: a state its checkpoint could hold at this instant (this file, registered and
        # unsettled, is at or above it), which is what a rebuild from the topic may safely restore. The count
        # includes rejected records: a file with a dead letter never looks complete in the topic (it is re-sent).
        total = len(decoded.records) + len(decoded.rejected)
        provenance = provenance_headers(shard, key, records=total, watermark=item.job.tracker.watermark)
        routes = RouteTally(self._router) if self._router is not None else None
        outbound = encode_file(
            decoded,
            shard=shard,
            key=key,
            fmt=self._fmt,
            rejected=rejected,
            routes=routes,
            provenance=provenance,
            raw_data=self._raw_data,
        )
        letters = [
            self._letter(item, rej.reason, f"{key}: record {rej.index}: {rej.detail}", rej.index, rej.raw)
            for rej in rejected
        ]

        async def send() -> int:
            too_large = await self._sink.deliver(outbound)
            oversized = [
                self._letter(
                    item,
                    "record_too_large",
                    f"{key}: record of {len(outbound[index].value)} bytes exceeds the sink's maximum",
                    -1,
                    outbound[index].value,
                )
                for index in too_large
            ]
            for letter in letters + oversized:
                await self._sink.dead_letter(letter)
                self._telemetry.dead_letter(letter.reason)
                log.warning("dead_letter", key=key, reason=letter.reason, detail=letter.detail[:500])
            return len(outbound) - len(too_large)

        delivered = await self._until_acknowledged(send, key)
        if routes is not None:
            self._telemetry.routed(routes.counts())
        return delivered

    async def _divert(
        self,
        item: WorkItem,
        decoded: DecodedFile[RecordHead],
        violation: Violation,
        check: FileCheck,
        *,
        compressed: int,
    ) -> None:
        """enforce: a file whose integrity failed is not published as genuine. Each record goes to the
        dead-letter topic (reason ``integrity_<kind>``), the alert to the integrity topic, then it settles."""
        audit, key = item.job.audit, item.obj.key
        assert audit is not None
        reason = f"integrity_{violation.kind}"
        letters = [
            self._letter(item, reason, f"{key}: {violation.detail}", i, bytes(raw))
            for i, (raw, _) in enumerate(decoded.records)
        ]
        letters += [
            self._letter(item, rej.reason, f"{key}: record {rej.index}: {rej.detail}", rej.index, rej.raw)
            for rej in decoded.rejected
        ]
        alert_key, alert_value = audit.alert_bytes(violation, check)

        async def send() -> None:
            await self._sink.report(alert_key, alert_value)
            for letter in letters:
                await self._sink.dead_letter(letter)

        with self._telemetry.sending():
            async with self._sink.unit(item.job.shard.shard_id):
                await self._until_acknowledged(send, key)
                item.job.finish(item, Settlement.REJECTED)
        for letter in letters:
            self._telemetry.dead_letter(letter.reason)
        log.warning("object_diverted", key=key, kind=violation.kind, records=len(letters))
        self._telemetry.object_settled("rejected", 0, compressed, decoded.decompressed_bytes)
        self._progress(item)

    async def _until_acknowledged(self, send: Callable[[], Awaitable[T]], key: str) -> T:
        return await until_acknowledged(send, key, self._telemetry, backoff=self._backoff)

    def _progress(self, item: WorkItem) -> None:
        shard = item.job.shard
        self._telemetry.shard_progress(shard.account_id, shard.region, item.job.lag_seconds(datetime.now(UTC)))

    def _letter(self, item: WorkItem, reason: str, detail: str, index: int, raw: bytes) -> DeadLetter:
        return DeadLetter(
            shard_id=item.job.shard.shard_id,
            bucket=item.job.shard.bucket,
            key=item.obj.key,
            reason=reason,
            detail=detail,
            record_index=index,
            record=raw[:DEAD_LETTER_RECORD_BYTES].decode("utf-8", "replace"),
        )

    async def _reject(self, item: WorkItem, reason: str, detail: str, compressed: int = 0) -> None:
        letter = self._letter(item, reason, detail, -1, b"")
        with self._telemetry.sending():
            async with self._sink.unit(item.job.shard.shard_id):
                await self._until_acknowledged(lambda: self._sink.dead_letter(letter), item.obj.key)
                item.job.finish(item, Settlement.REJECTED)
        self._progress(item)
        log.warning("object_rejected", key=item.obj.key, reason=reason, detail=detail[:500])
        self._telemetry.dead_letter(reason)
        self._telemetry.object_settled("rejected", 0, compressed, 0)
