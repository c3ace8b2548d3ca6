"""Composition root: opens the clients, owns the top TaskGroup, reconciles shard jobs, drains on stop.

    discovery (every interval) --shards--> Supervisor --one ShardJob per shard--> bounded work queue
        --> N Workers (fetch, decode, normalize, send, await acks) --> ShardJob.settle --> checkpoint

Shutdown is by closing: stop discovery and listing, let the workers finish the objects already queued (each
one is acknowledged and committed), then a sentinel per worker, then flush and close the sink and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog

from ingester.checkpoint.kafka_store import KafkaCheckpointStore
from ingester.checkpoint.lock import StoreLock, check_held_by
from ingester.checkpoint.rebuild import KafkaRestore
from ingester.checkpoint.store import CheckpointStore, SqliteCheckpointStore
from ingester.codec.routing import Router
from ingester.config import Settings
from ingester.connect.aws import AwsClients
from ingester.coordination import member as coordination
from ingester.coordination.announcements import AnnouncementReader, Announcer, ensure_announcements_topic
from ingester.coordination.ownership import GroupOwnership
from ingester.coordination.partition import Ownership, Partition
from ingester.discovery.discover import discover
from ingester.errors import ConfigError, DiscoveryError, DrainTimeoutError
from ingester.models import DeadLetter
from ingester.ops import health
from ingester.ops.memory import settle_heap
from ingester.ops.telemetry import RunStatistics, Telemetry
from ingester.pipeline.jobs import WorkItem
from ingester.pipeline.supervisor import PublicKeysFor, Supervisor, keep_failed, note_discovery
from ingester.pipeline.worker import ByteBudget, Worker
from ingester.sinks import RecordSink
from ingester.sinks.file import FileSink
from ingester.sinks.kafka import KafkaSink
from ingester.sinks.transactional import TransactionalKafkaSink
from ingester.sources.sqs import SqsNotifications

log = structlog.get_logger("ingester.pipeline.runtime")

T = TypeVar("T")

DISCOVERY_RETRY_SECONDS = 30.0
# After the drain (or its timeout), closing the sink waits at most this long (or a quarter of the drain timeout,
# which it is part of): during a Kafka outage the producer would wait for the broker without end, and nothing
# it holds is in a checkpoint.
ABORT_TIMEOUT_SECONDS = 5.0


def abort_budget(drain_seconds: float) -> float:
    """The part of the drain timeout kept for releasing the sink, so the process exits within the timeout."""
    return min(ABORT_TIMEOUT_SECONDS, drain_seconds / 4)


def embedded_store(settings: Settings) -> bool:
    """Whether the checkpoint is the SQLite file (checkpoint.path), the one store that needs a lock: the Kafka
    stores are fenced by their transactional ids and consumer groups."""
    exactly_once = settings.sink.type == "kafka" and settings.kafka.delivery == "exactly_once"
    return not settings.scaleout.enabled and not exactly_once


def lock_store(settings: Settings, *, held_by: int | None = None) -> StoreLock | None:
    """Take the SQLite checkpoint's lock for this process (checkpoint/lock.py), or, as a worker of
    ``run --workers N`` (``held_by`` = the parent's pid), check that the parent holds it. None: nothing to release."""
    if not embedded_store(settings):
        return None
    path = Path(settings.checkpoint.path)
    if held_by is not None:
        check_held_by(path, held_by)
        return None
    return StoreLock.acquire(path)


def prepare_shared_store(settings: Settings) -> None:
    """``run --workers N``: the parent creates the SQLite file (WAL mode, schema) before the children open it.
    Switching a new database to WAL needs an exclusive lock that SQLite's busy timeout does not wait for, so
    children racing to create it could fail with "database is locked"; on an existing WAL file they only read."""
    if embedded_store(settings):
        SqliteCheckpointStore(Path(settings.checkpoint.path)).close()


def restorer_for(settings: Settings, store: CheckpointStore) -> KafkaRestore | None:
    """Rebuilding a missing shard's state from the topic (checkpoint/rebuild.py): SQLite checkpoint, Kafka sink."""
    if not isinstance(store, SqliteCheckpointStore) or settings.sink.type != "kafka":
        return None
    if not settings.checkpoint.restore_from_kafka:
        return None
    return KafkaRestore(
        store,
        settings.kafka,
        aws_region=settings.aws.region,
        lookback=timedelta(seconds=settings.collection.lookback_seconds),
        window_files=settings.collection.max_inflight_objects,
        max_records=settings.checkpoint.rebuild_scan_records,
    )


async def open_sink_and_store(settings: Settings) -> tuple[RecordSink, CheckpointStore]:
    """The sink decides the store: exactly-once keeps the checkpoint in Kafka, inside the sink's transactions.

    The transactional sink starts first: initialising its transactional id fences a previous incarnation and
    aborts its open transaction, so the checkpoint topic then read holds only committed snapshots.
    Scale-out shares the checkpoint between replicas in the coordination topic (ingester/coordination/)."""
    if settings.scaleout.enabled:
        return await coordination.open_shared(settings)
    if settings.sink.type == "kafka" and settings.kafka.delivery == "exactly_once":
        transactional = TransactionalKafkaSink(
            settings.kafka, aws_region=settings.aws.region, routed_topics=settings.routed_topics()
        )
        await transactional.start()
        try:
            kafka_store = await KafkaCheckpointStore.open(settings.kafka, settings.aws.region)
        except BaseException:
            await transactional.abort()
            raise
        transactional.attach(kafka_store)
        return transactional, kafka_store
    sink: RecordSink = (
        FileSink(Path(settings.sink.file.path), routed_topics=settings.routed_topics())
        if settings.sink.type == "file"
        else KafkaSink(settings.kafka, aws_region=settings.aws.region, routed_topics=settings.routed_topics())
    )
    store = SqliteCheckpointStore(Path(settings.checkpoint.path), group_commits=True)  # one write per loop turn
    try:
        await sink.start()
    except BaseException:
        store.close()
        raise
    return sink, store


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
    health_socket: str | None = None,
    lock_held_by: int | None = None,
) -> RunStatistics:
    """Collect until ``stop`` is set (or, with ``once``, until every shard is listed and drained).

    The SQLite checkpoint's lock comes first: a second collector on the same file exits here, before it
    connects to anything (``lock_held_by``: a worker of ``run --workers N``, whose parent holds it).
    The health endpoint starts next, so /livez answers while the sink connects and discovery runs; on
    ``health_socket`` (a Unix socket) instead of ``telemetry.metrics_port`` in a worker process, whose parent
    serves the pod's port (ops/pod.py).
    ``public_keys`` replaces CloudTrail's ListPublicKeys (per region) for digest verification: the one seam
    the tests use, since moto does not implement that call."""
    telemetry = telemetry or Telemetry()
    telemetry.stall_seconds = float(settings.telemetry.stall_seconds)
    with contextlib.ExitStack() as held:
        if (lock := lock_store(settings, held_by=lock_held_by)) is not None:
            held.callback(lock.release)
        return await _run_locked(
            settings,
            stop=stop,
            once=once,
            telemetry=telemetry,
            partition=partition,
            public_keys=public_keys,
            health_socket=health_socket,
        )


async def _run_locked(
    settings: Settings,
    *,
    stop: asyncio.Event,
    once: bool,
    telemetry: Telemetry,
    partition: Partition | None,
    public_keys: PublicKeysFor | None,
    health_socket: str | None,
) -> RunStatistics:
    health_stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(
            health.serve(telemetry, settings.telemetry.metrics_port, health_stop, socket_path=health_socket),
            name="health",
        )
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
    settle_heap()  # start-up's objects (modules, the producer) are frozen out of every later collection
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
                restorer=restorer_for(settings, store),
            )
            member = coordination.join(settings, supervisor, store, owner, once=once, sink=sink)
            if member is not None:
                group.create_task(member.run(), name="group-member")
            router = Router(settings.routes) if settings.routes else None
            worker = Worker.from_settings(settings, sink, budget, telemetry, router)
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
                notifications = await _notifications(
                    settings, clients, supervisor, sink, stop, group, owner=owner, telemetry=telemetry
                )
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
    *,
    owner: Ownership,
    telemetry: Telemetry,
) -> asyncio.Task[None] | None:
    """The SQS receivers (and, in scale-out mode, the announcements they publish and this replica reads): one
    task that ends after the stop signal, awaited by the drain before the shard jobs stop."""
    n = settings.notifications
    if not n.queue_url:
        return None
    client = await clients.long_lived("sqs", await clients.home_account(), n.region or settings.aws.region)

    async def dead_letter(letter: DeadLetter) -> None:
        async with sink.unit():
            await sink.dead_letter(letter)

    if not settings.scaleout.enabled:
        source = SqsNotifications(client, n, supervisor.submit, dead_letter)
        return group.create_task(source.run(stop), name="sqs-notifications")
    if not isinstance(owner, GroupOwnership):
        raise ConfigError("scale-out notifications need the group's ownership (internal error)")
    await ensure_announcements_topic(settings)
    announcer = Announcer(settings, lambda: supervisor.discovered, telemetry)
    reader = AnnouncementReader(settings, owner, supervisor.submit, telemetry)
    await announcer.start()

    async def receive_and_read() -> None:
        try:
            async with asyncio.TaskGroup() as both:
                both.create_task(SqsNotifications(client, n, announcer.announce, dead_letter).run(stop), name="sqs")
                both.create_task(reader.run(stop), name="announcements-reader")
        finally:
            await announcer.close()

    return group.create_task(receive_and_read(), name="sqs-notifications")
