"""A shard job: list one shard's new objects in key order, hand them to the workers, commit their settlement.

One job per shard, started and stopped by the runtime as discovery finds or loses trails. The job owns its
:class:`OrderedWatermark` and is the only writer of its checkpoint rows. Handing an object over is a ``put``
on the bounded work queue: when the workers are slow (Kafka slow, or down), the put waits, and listing stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog

from ingester.checkpoint.store import CheckpointStore
from ingester.checkpoint.watermark import OrderedWatermark
from ingester.integrity.audit import FileCheck, ShardAudit
from ingester.models import LogObject, Settlement, Shard
from ingester.sources import LogSource
from ingester.sources.keys import key_time, resume_point, time_floor_key
from ingester.telemetry import Telemetry

log = structlog.get_logger("ingester.jobs")


def next_interval(current: float, *, found: bool, base: float, ceiling: float | None) -> float:
    """Adaptive polling, decided without I/O: back off while a shard is quiet, snap back when it is not."""
    if found or ceiling is None:
        return base
    return min(current * 2, max(ceiling, base))


class WorkItem:
    """An object, the job that will settle it, and (enforce mode) the digest check to apply before sending."""

    __slots__ = ("check", "job", "obj")

    def __init__(self, job: ShardJob, obj: LogObject, check: FileCheck | None = None) -> None:
        self.job = job
        self.obj = obj
        self.check = check


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
    ) -> None:
        """List, hand over, sleep; a shard with nothing new waits twice as long each time, up to
        ``max_poll_interval`` (quiet regions cost few LIST calls), and returns to ``poll_interval`` as soon as
        a cycle finds a file."""
        s = self.shard
        structlog.contextvars.bind_contextvars(account=s.account_id, region=s.region, trail=s.trail_arn)
        interval = poll_interval
        while not self._stopping.is_set():
            lists_before = self.source.list_requests
            queued = await self._cycle(queue, once=once)
            self.cycles += 1
            self._telemetry.poll_cycle(self.source.list_requests - lists_before)
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
        async for obj in self.source.list_shard(self.shard, start, now):
            if self._stopping.is_set():
                break
            if not self._tracker.wants(obj.key):
                continue
            if audit is not None and audit.enforce:
                audit.hold(obj)  # published once a verified digest vouches for it
            else:
                await self._queue(queue, obj, None)
            queued += 1  # found: keeps the shard at the base poll interval either way
        if audit is not None and not self._stopping.is_set():
            queued += await self._audit(queue, audit, once=once)
        self._prune()
        return queued

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

    def _prune(self) -> None:
        floor = self._floor(self._tracker.watermark)
        if floor and self._tracker.prune(floor):
            self._store.prune(self.shard.shard_id, floor)

    def settle(self, key: str, outcome: Settlement) -> None:
        """Called by a worker after the sink acknowledged (or the object failed); commits the checkpoint."""
        self._tracker.settle(key, outcome)
        if self._tracker.idle:
            self._idle.set()
        if outcome is not Settlement.ERRORED:
            self._store.commit(self.shard.shard_id, key, outcome, self._tracker.watermark)
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
