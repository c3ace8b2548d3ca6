"""Composition root: opens the clients, owns the top TaskGroup, reconciles shard jobs, drains on stop.

    discovery (every interval) --shards--> Supervisor --one ShardJob per shard--> bounded work queue
        --> N Workers (fetch, decode, normalize, send, await acks) --> ShardJob.settle --> checkpoint

Shutdown is by closing: stop discovery and listing, let the workers finish the objects already queued (each
one is acknowledged and committed), then a sentinel per worker, then flush and close the sink and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog

from ingester import health
from ingester.aws import AwsClients
from ingester.checkpoint.kafka_store import KafkaCheckpointStore
from ingester.checkpoint.store import CheckpointStore, SqliteCheckpointStore
from ingester.config import Settings
from ingester.coordination import member as coordination
from ingester.discovery.discover import Discovery, discover
from ingester.errors import DiscoveryError, DrainTimeoutError
from ingester.integrity.audit import ShardAudit
from ingester.integrity.keys import CloudTrailPublicKeySource, PublicKeySource, RegionKeys
from ingester.jobs import ShardJob, WorkItem, fault_kind
from ingester.models import DeadLetter, LogObject, Shard
from ingester.partition import Ownership, Partition
from ingester.sinks import RecordSink
from ingester.sinks.file import FileSink
from ingester.sinks.kafka import KafkaSink
from ingester.sinks.transactional import TransactionalKafkaSink
from ingester.sources.keys import is_log_key
from ingester.sources.notifications import ObjectRef
from ingester.sources.s3 import S3Source
from ingester.sources.sqs import SqsNotifications, UnknownShard
from ingester.telemetry import RunStatistics, Telemetry
from ingester.worker import ByteBudget, Worker, until_acknowledged

log = structlog.get_logger("ingester.runtime")

T = TypeVar("T")

DISCOVERY_RETRY_SECONDS = 30.0
# After the drain (or its timeout), closing the sink waits at most this long (or a quarter of the drain timeout,
# which it is part of): during a Kafka outage the producer would wait for the broker without end, and nothing
# it holds is in a checkpoint.
ABORT_TIMEOUT_SECONDS = 5.0


def abort_budget(drain_seconds: float) -> float:
    """The part of the drain timeout kept for releasing the sink, so the process exits within the timeout."""
    return min(ABORT_TIMEOUT_SECONDS, drain_seconds / 4)


# region -> where that region's digest signing keys come from (CloudTrail's ListPublicKeys by default).
PublicKeysFor = Callable[[str], PublicKeySource]
# The shard part of a log key: [prefix/]AWSLogs/[o-id/]<account>/CloudTrail/<region>/
_SHARD_PREFIX = re.compile(r"^(.*?AWSLogs/(?:o-[a-z0-9]+/)?\d{12}/CloudTrail/[a-z0-9-]+/)")


async def open_sink_and_store(settings: Settings) -> tuple[RecordSink, CheckpointStore]:
    """The sink decides the store: exactly-once keeps the checkpoint in Kafka, inside the sink's transactions.

    The transactional sink starts first: initialising its transactional id fences a previous incarnation and
    aborts its open transaction, so the checkpoint topic then read holds only committed snapshots.
    Scale-out shares the checkpoint between replicas in the coordination topic (ingester/coordination/)."""
    if settings.scaleout.enabled:
        return await coordination.open_shared(settings)
    if settings.sink.type == "kafka" and settings.kafka.delivery == "exactly_once":
        transactional = TransactionalKafkaSink(settings.kafka, aws_region=settings.aws.region)
        await transactional.start()
        try:
            kafka_store = await KafkaCheckpointStore.open(settings.kafka, settings.aws.region)
        except BaseException:
            await transactional.abort()
            raise
        transactional.attach(kafka_store)
        return transactional, kafka_store
    sink: RecordSink = (
        FileSink(Path(settings.sink.file.path))
        if settings.sink.type == "file"
        else KafkaSink(settings.kafka, aws_region=settings.aws.region)
    )
    store = SqliteCheckpointStore(Path(settings.checkpoint.path))
    try:
        await sink.start()
    except BaseException:
        store.close()
        raise
    return sink, store


class Supervisor:
    """Starts a job for each new shard and stops the jobs of shards that disappeared."""

    def __init__(
        self,
        settings: Settings,
        clients: AwsClients,
        store: CheckpointStore,
        queue: asyncio.Queue[WorkItem | None],
        group: asyncio.TaskGroup,
        telemetry: Telemetry,
        *,
        once: bool,
        partition: Ownership,
        sink: RecordSink,
        public_keys: PublicKeysFor | None = None,
    ) -> None:
        self._partition = partition
        self._sink = sink
        self._public_keys = public_keys
        self._keys: dict[str, RegionKeys] = {}  # per region, shared by the region's shards
        self._settings = settings
        self._clients = clients
        self._store = store
        self._queue = queue
        self._group = group
        self._telemetry = telemetry
        self._once = once
        self.jobs: dict[str, tuple[ShardJob, asyncio.Task[None]]] = {}
        # Stopped jobs whose listing task may still be finishing; awaited at shutdown.
        self._stopped: list[tuple[ShardJob, asyncio.Task[None]]] = []
        self._retired_requests = 0  # S3 requests of stopped jobs already dropped from _stopped
        # The last discovery pass, so an ownership change (scale-out) can reconcile again without one.
        self.discovered: dict[str, Shard] = {}
        self._reconciling = asyncio.Lock()  # discovery and the group member both reconcile

    async def reconcile(self, discovered: dict[str, Shard]) -> None:
        async with self._reconciling:
            self.discovered = discovered
            await self._reconcile(discovered)

    async def _reconcile(self, discovered: dict[str, Shard]) -> None:
        shards = {shard_id: shard for shard_id, shard in discovered.items() if self._partition.owns(shard_id)}
        for job, task in self._stopped:
            if task.done():
                self._retired_requests += job.source.requests
        self._stopped = [(job, task) for job, task in self._stopped if not task.done()]
        for shard_id in sorted(self.jobs.keys() - shards.keys()):
            job, task = self.jobs.pop(shard_id)
            log.info("shard_stopped", shard=shard_id)
            self._telemetry.shard_stopped(shard_id)
            job.stop()
            self._stopped.append((job, task))
        for shard_id in sorted(shards.keys() - self.jobs.keys()):
            await self._start(shards[shard_id])
        self._telemetry.set_shards(len(self.jobs))

    async def _start(self, shard: Shard) -> None:
        c = self._settings.collection
        try:
            client = await self._clients.s3(shard.reader_account)
        except Exception as exc:  # one shard's client; the next reconcile tries again
            self._telemetry.shard_fault(shard, fault_kind(exc), f"{type(exc).__name__}: {exc}")
            log.error("shard_start_failed", shard=shard.shard_id, error=f"{type(exc).__name__}: {exc}")
            return
        source = S3Source(client, shard.bucket)
        job = ShardJob(
            shard,
            source,
            self._store,
            start=self._settings.start_datetime(),
            lookback=timedelta(seconds=c.lookback_seconds),
            telemetry=self._telemetry,
            audit=self._audit(shard, source),
            deep_every=timedelta(seconds=c.deep_relist_interval_seconds) if c.deep_relist_interval_seconds else None,
            deep_window=timedelta(seconds=c.deep_relist_window_seconds),
        )
        task = self._group.create_task(
            job.run(
                self._queue,
                once=self._once,
                poll_interval=c.poll_interval_seconds,
                max_poll_interval=c.max_poll_interval_seconds,
                max_failures=c.max_attempts,
            ),
            name=shard.shard_id,
        )
        self.jobs[shard.shard_id] = (job, task)
        log.info("shard_started", shard=shard.shard_id)

    def _audit(self, shard: Shard, source: S3Source) -> ShardAudit | None:
        """Digests are read only where the trail has log file validation (no digests exist elsewhere)."""
        i = self._settings.integrity
        if not shard.log_validation or (not i.reconcile and i.mode == "off"):
            return None
        keys = self._keys.get(shard.region)
        if keys is None:
            if self._public_keys is not None:
                key_source: PublicKeySource = self._public_keys(shard.region)
            else:
                clients, account, region = self._clients, shard.reader_account, shard.region
                key_source = CloudTrailPublicKeySource(
                    lambda: clients.client("cloudtrail", account, region), where=f"{account}/{region}"
                )
            keys = self._keys[shard.region] = RegionKeys(key_source)
        sink, telemetry = self._sink, self._telemetry

        async def publish(key: bytes, value: bytes) -> None:
            async def send() -> None:
                async with sink.unit():
                    await sink.report(key, value)

            await until_acknowledged(send, shard.shard_id, telemetry)

        return ShardAudit(
            shard,
            source,
            self._store,
            settings=i,
            keys=keys,
            publish=publish,
            telemetry=telemetry,
        )

    async def stop_all(self, *, finish_listing: bool = False) -> None:
        """Stop every job (or, with ``finish_listing``, let each finish its current listing) and await them."""
        if not finish_listing:
            for job, _ in self.jobs.values():
                job.stop()
        await asyncio.gather(*(task for _, task in [*self.jobs.values(), *self._stopped]))

    async def submit(self, ref: ObjectRef) -> asyncio.Future[bool] | None:
        """Route a notified object to its shard's job (see sources/sqs.py for the contract)."""
        match = _SHARD_PREFIX.match(ref.key)
        if match is None or not is_log_key(ref.key):
            return None  # digests, insights, anything outside a CloudTrail/ log prefix: nothing to collect
        entry = self.jobs.get(f"s3://{ref.bucket}/{match.group(1)}")
        if entry is None:
            raise UnknownShard(f"s3://{ref.bucket}/{ref.key}: no running shard collects this prefix")
        return await entry[0].submit(LogObject(ref.key, ref.size), self._queue)

    def lags(self) -> dict[tuple[str, str], float]:
        """Lag per (account, region), the largest of its shards, computed now (the metric's scrape)."""
        now = datetime.now(UTC)
        out: dict[tuple[str, str], float] = {}
        for job, _ in self.jobs.values():
            lag = job.lag_seconds(now)
            if lag is not None:
                where = (job.shard.account_id, job.shard.region)
                out[where] = max(lag, out.get(where, lag))
        return out

    def listing(self) -> list[asyncio.Task[None]]:
        """The running jobs' tasks (``--once``: they end when their shard is listed)."""
        return [task for _, task in self.jobs.values()]

    def s3_requests(self) -> int:
        live = sum(job.source.requests for job, _ in [*self.jobs.values(), *self._stopped])
        return self._retired_requests + live


def keep_failed(previous: dict[str, Shard], found: Discovery) -> dict[str, Shard]:
    """The shards to run after a discovery pass: what it found, plus the running shards of accounts it could
    not describe (a denied role, throttling): a failed look is not evidence that a trail is gone. Only a
    shard whose account was described without its trail stops."""
    failed = set(found.failed_accounts)
    kept = {
        shard_id: shard
        for shard_id, shard in previous.items()
        if shard_id not in found.shards and (shard.account_id in failed or shard.reader_account in failed)
    }
    return {**found.shards, **kept}


def note_discovery(telemetry: Telemetry, found: Discovery) -> None:
    for account in found.failed_accounts:
        telemetry.discovery_failed(account)
    telemetry.discovery_succeeded(set(found.organization.accounts) - set(found.failed_accounts))


async def _follow(
    settings: Settings, clients: AwsClients, supervisor: Supervisor, stop: asyncio.Event, telemetry: Telemetry
) -> None:
    """Re-run discovery on its interval until stopped; one failed pass keeps the current jobs running, and an
    account that failed keeps its shards (:func:`keep_failed`). A pass in progress is abandoned at the stop
    signal (it only reads), so the drain's clock starts at the signal."""
    while not stop.is_set():
        wait = float(settings.discovery.interval_seconds)
        try:
            found = await _unless_stopped(stop, discover(clients, settings))
            if found is None:
                return
            note_discovery(telemetry, found)
            await supervisor.reconcile(keep_failed(supervisor.discovered, found))
            telemetry.discovered = True
            if found.failed_accounts:
                wait = min(wait, DISCOVERY_RETRY_SECONDS)  # a role that appears is picked up soon
        except DiscoveryError as exc:
            log.error("discovery_failed", error=str(exc))
            wait = min(wait, DISCOVERY_RETRY_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None when ``stop`` is set first; ``work`` is then cancelled, so use this only for
    work that is safe to abandon (a discovery pass). Its own exception is raised as itself, not in a group."""
    task = asyncio.get_running_loop().create_task(work)
    stopped = asyncio.get_running_loop().create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)  # both awaited here: no orphan
    if task.cancelled():
        return None
    return task.result()


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event,
    once: bool = False,
    telemetry: Telemetry | None = None,
    partition: Partition | None = None,
    public_keys: PublicKeysFor | None = None,
) -> RunStatistics:
    """Collect until ``stop`` is set (or, with ``once``, until every shard is listed and drained).

    The health endpoint starts first, so /livez answers while the sink connects and discovery runs.
    ``public_keys`` replaces CloudTrail's ListPublicKeys (per region) for digest verification: the one seam
    the tests use, since moto does not implement that call."""
    telemetry = telemetry or Telemetry()
    telemetry.stall_seconds = float(settings.telemetry.stall_seconds)
    health_stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(health.serve(telemetry, settings.telemetry.metrics_port, health_stop), name="health")
        try:
            return await _collect(
                settings,
                stop=stop,
                once=once,
                telemetry=telemetry,
                partition=partition or Partition(),
                public_keys=public_keys,
            )
        finally:
            health_stop.set()


async def _collect(
    settings: Settings,
    *,
    stop: asyncio.Event,
    once: bool,
    telemetry: Telemetry,
    partition: Partition,
    public_keys: PublicKeysFor | None,
) -> RunStatistics:
    c = settings.collection
    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=2 * c.max_inflight_objects)
    budget = ByteBudget(c.max_inflight_bytes, telemetry)
    sink, store = await open_sink_and_store(settings)
    telemetry.sink_connected = True
    try:
        async with AwsClients(settings.aws, settings.discovery) as clients, asyncio.TaskGroup() as group:
            group.create_task(sink.maintain(), name="sink-maintain")
            owner = coordination.ownership_for(settings, partition)
            supervisor = Supervisor(
                settings,
                clients,
                store,
                queue,
                group,
                telemetry,
                once=once,
                partition=owner,
                sink=sink,
                public_keys=public_keys,
            )
            member = coordination.join(settings, supervisor, store, owner, once=once)
            if member is not None:
                group.create_task(member.run(), name="group-member")
            worker = Worker(sink, budget, telemetry, fmt=settings.sink.format, max_attempts=c.max_attempts)
            workers = [group.create_task(worker.run(queue), name=f"worker-{n}") for n in range(c.max_inflight_objects)]
            telemetry.lag_source = supervisor.lags
            notifications = None
            if once:
                found = await _unless_stopped(stop, discover(clients, settings))
                if found is not None:
                    note_discovery(telemetry, found)
                    await supervisor.reconcile(found.shards)
                    telemetry.discovered = True
                    await _listed_or_stopped(supervisor.listing(), stop)
            else:
                notifications = await _notifications(settings, clients, supervisor, sink, stop, group)
                await _follow(settings, clients, supervisor, stop, telemetry)
            # The drain's clock starts here: at the signal, or (--once) when every shard has been listed.
            telemetry.draining = True
            try:
                async with asyncio.timeout(c.drain_timeout_seconds - abort_budget(c.drain_timeout_seconds)):
                    if notifications is not None:
                        await notifications  # receivers end after their current long poll; handlers finish
                    await supervisor.stop_all(finish_listing=once and not stop.is_set())
                    await queue.join()
                    for _ in workers:
                        queue.put_nowait(None)
                    if member is not None:
                        await member.close()  # last checkpoint commit, then leave the group
                    telemetry.s3_requests = supervisor.s3_requests()
                    await sink.close()  # clean path: flush / commit the last transaction; ends sink.maintain()
            except TimeoutError:
                log.error(
                    "drain_timeout",
                    pending=queue.qsize(),
                    timeout_seconds=c.drain_timeout_seconds,
                    sink_error=telemetry.sink_error,
                )
                raise DrainTimeoutError(
                    f"the drain did not finish within collection.drain_timeout_seconds "
                    f"({c.drain_timeout_seconds} s; sink: {telemetry.sink_error or 'acknowledging'}): objects not "
                    "acknowledged are collected again on the next start (the checkpoint holds only acknowledged ones)"
                ) from None
    finally:
        # No-op after close(); on an error, nothing half-done is committed. Bounded: during a Kafka outage the
        # producer's flush would wait for the broker, and the drain's deadline has passed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sink.abort(), abort_budget(c.drain_timeout_seconds))
        store.close()
    return telemetry.statistics()


async def _listed_or_stopped(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """``--once``: until every shard job has listed its shard, or the stop signal (then the drain stops them)."""
    if not tasks:
        return
    stopped = asyncio.get_running_loop().create_task(stop.wait())
    pending: set[asyncio.Task[Any]] = set(tasks)
    try:
        while pending and not stop.is_set():
            done, _ = await asyncio.wait([*pending, stopped], return_when=asyncio.FIRST_COMPLETED)
            pending -= done
    finally:
        stopped.cancel()
        await asyncio.gather(stopped, return_exceptions=True)


async def _notifications(
    settings: Settings,
    clients: AwsClients,
    supervisor: Supervisor,
    sink: RecordSink,
    stop: asyncio.Event,
    group: asyncio.TaskGroup,
) -> asyncio.Task[None] | None:
    n = settings.notifications
    if not n.queue_url:
        return None
    client = await clients.long_lived("sqs", await clients.home_account(), n.region or settings.aws.region)

    async def dead_letter(letter: DeadLetter) -> None:
        async with sink.unit():
            await sink.dead_letter(letter)

    source = SqsNotifications(client, n, supervisor.submit, dead_letter)
    return group.create_task(source.run(stop), name="sqs-notifications")
