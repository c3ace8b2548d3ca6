"""A shard job: list one shard's new objects in key order, hand them to the workers, commit their settlement.

One job per shard, started and stopped by the runtime as discovery finds or loses trails. The job owns its
:class:`OrderedWatermark` and is the only writer of its checkpoint rows. Handing an object over is a ``put``
on the bounded work queue: when the workers are slow (Kafka slow, or down), the put waits, and listing stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime, timedelta

import structlog

from ingester.checkpoint.passes import PassHistory
from ingester.checkpoint.store import CheckpointStore
from ingester.checkpoint.watermark import OrderedWatermark
from ingester.errors import CheckpointError, DiscoveryError, IngesterError, SinkError, SourceError
from ingester.integrity.audit import FileCheck, ShardAudit
from ingester.models import LogObject, Settlement, Shard
from ingester.ops.telemetry import Telemetry
from ingester.sources import LogSource
from ingester.sources.keys import is_log_key, key_time, name_time, resume_point, time_floor_key
from ingester.sources.s3 import BUCKET_CODES

log = structlog.get_logger("ingester.pipeline.jobs")

# A shard whose listing failed waits this long, doubled per consecutive failure, up to FAULT_BACKOFF_MAX_SECONDS
# (or its max poll interval when that is shorter): a missing bucket costs one LIST every ten minutes.
FAULT_BACKOFF_SECONDS = 5.0
FAULT_BACKOFF_MAX_SECONDS = 600.0


def next_interval(current: float, *, found: bool, base: float, ceiling: float | None) -> float:
    """Adaptive polling, decided without I/O: back off while a shard is quiet, snap back when it is not."""
    if found or ceiling is None:
        return base
    return min(current * 2, max(ceiling, base))


def fault_kind(exc: BaseException) -> str:
    """A bounded label for what stopped a shard's cycle (metric label, health detail), decided without I/O."""
    if isinstance(exc, SourceError):
        return "bucket_unavailable" if exc.code in BUCKET_CODES else "s3"
    if isinstance(exc, DiscoveryError):
        return "credentials"
    if isinstance(exc, SinkError):
        return "sink"
    if isinstance(exc, IngesterError):
        return type(exc).__name__.removesuffix("Error").lower() or "ingester"
    return "internal"


def fault_backoff(failures: int, ceiling: float) -> float:
    """Seconds before the next attempt after ``failures`` consecutive failed cycles (full jitter on the top
    half, so a thousand shards of one missing bucket do not retry in step)."""
    delay = min(FAULT_BACKOFF_SECONDS * 2.0 ** min(failures - 1, 16), max(ceiling, FAULT_BACKOFF_SECONDS))
    return delay / 2 + random.uniform(0, delay / 2)


class WorkItem:
    """An object, the job that will settle it, and (enforce mode) the digest check to apply before sending.

    ``bad_key``: the reason a listed key is not a collectable log file (dead-lettered, never a watermark);
    ``aside``: settled outside the listing order (bad keys, files the deep re-list found)."""

    __slots__ = ("aside", "bad_key", "check", "job", "obj")

    def __init__(
        self,
        job: ShardJob,
        obj: LogObject,
        check: FileCheck | None = None,
        *,
        aside: bool = False,
        bad_key: str = "",
    ) -> None:
        self.job = job
        self.obj = obj
        self.check = check
        self.aside = aside or bool(bad_key)
        self.bad_key = bad_key


class ShardJob:
    def __init__(
        self,
        shard: Shard,
        source: LogSource,
        store: CheckpointStore,
        *,
        start: datetime | None,
        lookback: timedelta,
        telemetry: Telemetry | None = None,
        audit: ShardAudit | None = None,
        deep_every: timedelta | None = None,
        deep_window: timedelta = timedelta(days=2),
    ) -> None:
        self.shard = shard
        self.audit = audit
        self._telemetry = telemetry or Telemetry()
        self.source = source
        self._store = store
        self._start = start
        self._lookback = lookback
        self._stopping = asyncio.Event()
        watermark = store.watermark(shard.shard_id)
        self._tracker = OrderedWatermark(watermark, store.settled_since(shard.shard_id, self._floor(watermark)))
        # Notification handlers waiting for a key to settle: True = delivered or rejected, False = errored.
        self._waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.cycles = 0
        # Deep re-list (files later than the lookback; trails without digests, whose audit finds those):
        self._deep_every = deep_every if audit is None else None
        self._deep_window = deep_window
        self._deep_due = time.monotonic() + (deep_every.total_seconds() if deep_every else 0)
        self._passes = PassHistory(lookback=lookback, keep=deep_window)
        # Files delivered by the deep re-list: below the floor, so the tracker forgets them; this does not.
        self._deep_settled: dict[str, float] = {}
        self._deep_requests = 0  # LIST calls of the last deep re-list, counted apart from the regular poll's
        self.failures = 0

    def stop(self) -> None:
        """Stop listing after the current page; objects already queued are still processed and settled."""
        self._stopping.set()

    async def wait_idle(self) -> None:
        """Until no object of this shard is in flight (queued or being processed)."""
        await self._idle.wait()

    @property
    def tracker(self) -> OrderedWatermark:
        return self._tracker

    def _floor(self, watermark: str | None) -> str:
        """Settled keys below this are forgotten; listing never goes below the resume point again. With an
        audit, keys are remembered further back while a digest that may list them is unsettled."""
        when = resume_point(watermark, self._lookback)
        if when is None:
            return ""
        if self.audit is not None:
            when = self.audit.hold_floor(when)
        return time_floor_key(self.shard, when)

    def _list_from(self) -> datetime | None:
        when = resume_point(self._tracker.watermark, self._lookback)
        if when is None:
            return self._start
        return max(when, self._start) if self._start is not None else when

    async def run(
        self,
        queue: asyncio.Queue[WorkItem | None],
        *,
        once: bool,
        poll_interval: float,
        max_poll_interval: float | None = None,
        max_failures: int = 5,
    ) -> None:
        """List, hand over, sleep; a shard with nothing new waits twice as long each time, up to
        ``max_poll_interval`` (quiet regions cost few LIST calls), and returns to ``poll_interval`` as soon as
        a cycle finds a file.

        This is the shard's fault boundary: a cycle that fails for any reason but the checkpoint store's (a
        missing or forbidden bucket, LIST throttled past botocore's retries, a role that cannot be assumed, a
        bug) is logged with its cause, counted, shown in /readyz, and tried again with backoff, while every
        other shard keeps flowing. With ``once``, a shard gives up after ``max_failures`` cycles and the run
        reports it as failed."""
        s = self.shard
        structlog.contextvars.bind_contextvars(account=s.account_id, region=s.region, trail=s.trail_arn)
        interval = poll_interval
        ceiling = min(FAULT_BACKOFF_MAX_SECONDS, max(poll_interval, max_poll_interval or poll_interval))
        while not self._stopping.is_set():
            lists_before = self.source.list_requests
            try:
                queued = await self._cycle(queue, once=once)
            except CheckpointError:
                raise  # the store is the process's, not the shard's: continuing could skip or re-send
            except Exception as exc:  # the shard boundary: see the docstring
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise asyncio.CancelledError from exc  # a cancellation turned into an error below: honour it
                self._telemetry.poll_cycle(self.source.list_requests - lists_before)
                self.failures += 1
                kind, wait = fault_kind(exc), fault_backoff(self.failures, ceiling)
                self._telemetry.shard_fault(s, kind, f"{type(exc).__name__}: {exc}")
                log.error(
                    "shard_failed",
                    shard=s.shard_id,
                    kind=kind,
                    error=f"{type(exc).__name__}: {exc}",
                    failures=self.failures,
                    retry_in_seconds=None if once and self.failures >= max_failures else round(wait, 1),
                    exc_info=not isinstance(exc, IngesterError),  # a bug: the traceback is the report
                )
                if once and self.failures >= max_failures:
                    self._telemetry.shard_gave_up(s)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)
                continue
            if self.failures:
                log.info("shard_recovered", shard=s.shard_id, failures=self.failures)
                self.failures = 0
                self._telemetry.shard_recovered(s)
            self.cycles += 1
            self._telemetry.poll_cycle(self.source.list_requests - lists_before - self._deep_requests)
            self._deep_requests = 0
            log.info("shard_listed", queued=queued, watermark=self._tracker.watermark, next_poll_seconds=interval)
            if once:
                return
            interval = next_interval(interval, found=queued > 0, base=poll_interval, ceiling=max_poll_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    async def _cycle(self, queue: asyncio.Queue[WorkItem | None], *, once: bool = False) -> int:
        queued = 0
        now = datetime.now(UTC)
        audit, start = self.audit, self._list_from()
        if audit is not None:
            audit.begin(start)
        floor = time_floor_key(self.shard, start) if start is not None else ""
        async for obj in self.source.list_shard(self.shard, start, now):
            if self._stopping.is_set():
                break
            if not self._tracker.wants(obj.key):
                continue
            if not is_log_key(obj.key):
                await self._queue_aside(queue, obj, bad_key=_bad_key_reason(obj.key))
                continue
            if audit is not None and audit.enforce:
                audit.hold(obj)  # published once a verified digest vouches for it
            else:
                await self._queue(queue, obj, None)
            queued += 1  # found: keeps the shard at the base poll interval either way
        else:
            self._passes.record(now, floor)  # a whole pass: every key >= floor that S3 held at `now` was seen
        if audit is not None and not self._stopping.is_set():
            queued += await self._audit(queue, audit, once=once)
        if self._deep_every is not None and time.monotonic() >= self._deep_due and not self._stopping.is_set():
            queued += await self._deep(queue, floor, now)
            self._deep_due = time.monotonic() + self._deep_every.total_seconds()
        self._prune()
        return queued

    async def _deep(self, queue: asyncio.Queue[WorkItem | None], floor: str, now: datetime) -> int:
        """The deep re-list: the last ``deep_window`` again, below the regular listing's floor, for files
        delivered later than the lookback. Each one found is collected (aside of the watermark), logged and
        counted in ``ingester_late_files_total{kind="beyond_lookback"}``; the LIST calls it cost are counted
        in ``ingester_list_requests_total{pass="deep"}``."""
        horizon = now - self._deep_window
        for key, stamp in list(self._deep_settled.items()):
            if stamp < horizon.timestamp():
                del self._deep_settled[key]
        lists_before, found = self.source.list_requests, 0
        async for obj in self.source.list_shard(self.shard, horizon, now):
            if self._stopping.is_set() or (floor and obj.key >= floor):
                break
            named = name_time(obj.key)
            if named is None or not self._tracker.wants(obj.key) or obj.key in self._deep_settled:
                continue
            modified = datetime.fromtimestamp(obj.last_modified, UTC)
            if obj.last_modified and self._passes.missed(obj.key, modified, named):
                found += 1
                self._telemetry.late_file("beyond_lookback")
                log.warning(
                    "late_file_beyond_lookback",
                    key=obj.key,
                    delay_seconds=round((modified - named).total_seconds()),
                )
                await self._queue_aside(queue, obj)
        self._deep_requests = self.source.list_requests - lists_before
        self._telemetry.deep_relist(self._deep_requests, found)
        log.info("shard_deep_listed", found=found, list_requests=self.source.list_requests - lists_before)
        return found

    async def _audit(self, queue: asyncio.Queue[WorkItem | None], audit: ShardAudit, *, once: bool) -> int:
        """Digest passes; a single run (``once``) waits for its files to settle between passes, so it ends
        with every digest it read reconciled (three passes: read, fetch what is missing, settle)."""
        queued = 0
        for _ in range(4 if once else 1):
            if once:
                await self._idle.wait()
            floor = self._floor(self._tracker.watermark)
            for obj, check in await audit.cycle(self._tracker, floor_key=floor, now=datetime.now(UTC)):
                if self._tracker.wants(obj.key):
                    await self._queue(queue, obj, check)
                    queued += 1
            if not audit.busy:
                break
        return queued

    async def _queue(self, queue: asyncio.Queue[WorkItem | None], obj: LogObject, check: FileCheck | None) -> None:
        self._tracker.register(obj.key)
        self._idle.clear()
        await queue.put(WorkItem(self, obj, check))
        self._telemetry.object_listed()

    async def _queue_aside(self, queue: asyncio.Queue[WorkItem | None], obj: LogObject, *, bad_key: str = "") -> None:
        """Hand over an object that must not take part in the watermark (see :class:`WorkItem`)."""
        self._tracker.hold_aside(obj.key)
        self._idle.clear()
        await queue.put(WorkItem(self, obj, aside=True, bad_key=bad_key))
        self._telemetry.object_listed()

    def finish(self, item: WorkItem, outcome: Settlement) -> None:
        """A worker is done with ``item``: settle it in order, or aside (its dead letter, or a deep find)."""
        if not item.aside:
            self.settle(item.obj.key, outcome)
            return
        key = item.obj.key
        self._tracker.settle_aside(key, outcome)
        if self._tracker.idle:
            self._idle.set()
        if outcome is not Settlement.ERRORED:
            self._store.commit(self.shard.shard_id, key, outcome, self._tracker.watermark)
            if not item.bad_key:
                self._deep_settled[key] = item.obj.last_modified or time.time()

    def _prune(self, *, checkpoint_only: bool = False) -> None:
        """Forget the settled keys below the floor: between passes in memory and in the checkpoint; inside a pass
        (``checkpoint_only``, from :meth:`settle`) in the checkpoint only. A pass lists from the floor it started
        at, and objects of an earlier pass or notifications can move the floor past where it is listing: it must
        still recognise those keys (a forgotten one is queued again). A restart lists from the committed floor."""
        floor = self._floor(self._tracker.watermark)
        if floor and (checkpoint_only or self._tracker.prune(floor)):
            self._store.prune(self.shard.shard_id, floor)

    def settle(self, key: str, outcome: Settlement) -> None:
        """Called by a worker after the sink acknowledged (or the object failed); commits the checkpoint, and every
        few objects prunes it, so that a pass over a long backlog does not carry every key it settled."""
        self._tracker.settle(key, outcome)
        if self._tracker.idle:
            self._idle.set()
        if outcome is not Settlement.ERRORED:
            self._store.commit(self.shard.shard_id, key, outcome, self._tracker.watermark)
            if self._tracker.checkpoint_prune_due:
                self._prune(checkpoint_only=True)
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_result(outcome is not Settlement.ERRORED)

    async def submit(self, obj: LogObject, queue: asyncio.Queue[WorkItem | None]) -> asyncio.Future[bool]:
        """A notified object: queue it unless listing already did (or it was settled); the future tells the
        notification handler when it may delete its message."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._tracker.is_settled(obj.key):
            waiter.set_result(True)
            return waiter
        self._waiters.setdefault(obj.key, []).append(waiter)
        if self.audit is not None and self.audit.enforce:
            self.audit.hold(obj)  # the waiter resolves once a digest released it and it settled
        elif not self._tracker.is_in_flight(obj.key):
            await self._queue(queue, obj, None)
        return waiter

    def lag_seconds(self, now: datetime) -> float | None:
        watermark = self._tracker.watermark
        when = key_time(watermark) if watermark else None
        return None if when is None else (now - when).total_seconds()


def _bad_key_reason(key: str) -> str:
    """Why a key under a shard's day folders is not collected (the dead letter's detail)."""
    return (
        "log file name with an impossible time"
        if "_CloudTrail_" in key.rsplit("/", 1)[-1]
        else "not a CloudTrail log file name (an object nested in or dropped into the log folders)"
    )
