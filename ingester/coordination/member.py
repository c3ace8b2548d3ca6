"""The group member: one aiokafka consumer in ``scaleout.group_id`` whose assignment is what this process owns.

The consumer never consumes: its partitions are paused as soon as they are assigned (the topic holds the
checkpoint snapshots, which are read with a separate ``read_committed`` consumer). Its loop calls ``getmany``
(that is what keeps the member alive under ``max_poll_interval_ms``) and commits the checkpoints on each turn.
aiokafka runs the rebalance listener from its coordination task and awaits it before rejoining, so revocation
(stop, settle, commit, release) completes before anyone else can be assigned the partitions; an exception in
the listener would be swallowed by aiokafka, so it is kept and re-raised by the loop (the process exits).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from ingester.checkpoint.kafka_store import KafkaCheckpointStore, ensure_topic, read_partitions
from ingester.checkpoint.store import CheckpointStore
from ingester.config import Settings
from ingester.connect.kafka import client_options
from ingester.coordination.committer import CheckpointCommitter
from ingester.coordination.host import Committer, RunningShard, ShardHost
from ingester.coordination.ownership import GroupOwnership
from ingester.coordination.partition import Ownership
from ingester.coordination.transactions import GroupCommitter, PartitionedTransactionalSink
from ingester.errors import CheckpointError, ConfigError
from ingester.sinks import RecordSink
from ingester.sinks.kafka import KafkaSink

log = structlog.get_logger("ingester.coordination")


async def open_shared(settings: Settings) -> tuple[RecordSink, KafkaCheckpointStore]:
    """The sink and the shared checkpoint store, on the coordination topic (created if missing): at least once,
    an idempotent producer; exactly once, one transactional sink per owned group (transactions.py)."""
    s = settings.scaleout
    ids = await ensure_topic(settings.kafka, s.topic, s.partitions, settings.aws.region)
    if len(ids) != s.partitions:
        raise ConfigError(
            f"scaleout.partitions = {s.partitions} but topic {s.topic} has {len(ids)} partitions: the shard groups "
            "would move away from their checkpoints; use the topic's count, or a new topic"
        )
    store = KafkaCheckpointStore(s.topic, {}, max_record_bytes=settings.kafka.max_request_bytes)
    sink: RecordSink = (
        PartitionedTransactionalSink(settings, store)
        if settings.kafka.delivery == "exactly_once"
        else KafkaSink(settings.kafka, aws_region=settings.aws.region, routed_topics=settings.routed_topics())
    )
    await sink.start()
    return sink, store


class GroupMember(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped for mypy
    def __init__(
        self,
        settings: Settings,
        supervisor: ShardHost,
        store: KafkaCheckpointStore,
        ownership: GroupOwnership,
        committer: Committer | None = None,
    ) -> None:
        self._settings = settings
        self._supervisor = supervisor
        self._store = store
        self._ownership = ownership
        self._committer: Committer = committer or CheckpointCommitter(settings, store)
        self._consumer: AIOKafkaConsumer | None = None
        self._changing = asyncio.Lock()  # one assignment or release at a time
        self._closing = asyncio.Event()
        self._done = asyncio.Event()
        self._failure: BaseException | None = None
        self.abandoned = 0

    async def run(self) -> None:
        """Join the group and commit checkpoints until :meth:`close`; then release everything and leave."""
        s, k = self._settings.scaleout, self._settings.kafka
        consumer = AIOKafkaConsumer(
            **client_options(k, self._settings.aws.region),
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            isolation_level="read_committed",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(s.session_timeout_ms // 3, 100),
            rebalance_timeout_ms=s.rebalance_timeout_ms,
            max_partition_fetch_bytes=1024,  # never fetches anything (paused); in case it does, tiny
            fetch_max_bytes=1024,
        )
        try:
            await asyncio.wait_for(consumer.start(), k.connect_timeout_seconds)
            self._consumer = consumer
            consumer.subscribe([s.topic], listener=self)
            log.info("group_joining", group=s.group_id, topic=s.topic, partitions=s.partitions)
            while not self._closing.is_set():
                await consumer.getmany(timeout_ms=s.commit_interval_ms)
                self._raise_failure()
                fenced = await self._committer.commit()
                if fenced:
                    async with self._changing:
                        await self._release(fenced, reason="fenced")
            async with self._changing:
                await self._release(self._ownership.assigned | self._committer.held, reason="shutdown")
            self._raise_failure()
        except (KafkaError, TimeoutError) as exc:
            raise CheckpointError(f"consumer group {s.group_id} on {s.topic}: {exc!r}") from exc
        finally:
            self._consumer = None
            await self._committer.close()
            await consumer.stop()  # leaves the group: the others rebalance now, not after the session timeout
            self._done.set()

    async def close(self) -> None:
        """After the drain: commit the last checkpoints, release every partition, leave the group."""
        self._closing.set()
        await self._done.wait()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        groups = frozenset(tp.partition for tp in assigned)
        try:
            async with self._changing:
                if self._consumer is not None and assigned:
                    self._consumer.pause(*assigned)
                if not self._closing.is_set() and groups:
                    await self._assign(groups)
        except Exception as exc:  # aiokafka would only log it: keep it for the loop to raise
            self._failure = exc

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        groups = frozenset(tp.partition for tp in revoked)
        try:
            async with self._changing:
                await self._release(groups & (self._ownership.assigned | self._committer.held), reason="revoked")
        except Exception as exc:
            self._failure = exc

    async def _assign(self, groups: frozenset[int]) -> None:
        """Fence the previous owners, read the checkpoints (final, since fenced), start the jobs."""
        s = self._settings.scaleout
        await self._committer.acquire(groups)
        state = await read_partitions(self._settings.kafka, s.topic, sorted(groups), self._settings.aws.region)
        self._store.load(state, self._ownership.in_groups(groups))
        self._ownership.assign(groups)
        await self._supervisor.reconcile(self._supervisor.discovered)
        log.info(
            "shards_assigned",
            partitions=sorted(groups),
            checkpoints=len(state),
            jobs=len(self._supervisor.jobs),
        )

    async def _release(self, groups: frozenset[int], *, reason: str) -> None:
        """Stop the groups' jobs, let their in-flight objects settle (or abandon them), commit, release."""
        if not groups:
            return
        selects = self._ownership.in_groups(groups)
        self._ownership.release(groups)
        stopping = [job for shard_id, (job, _) in self._supervisor.jobs.items() if selects(shard_id)]
        await self._supervisor.reconcile(self._supervisor.discovered)
        abandoned = await self._settle(stopping)
        self.abandoned += abandoned
        fenced = await self._committer.release(groups)
        self._store.forget(selects)
        log.info(
            "shards_released",
            reason=reason,
            partitions=sorted(groups),
            shards=len(stopping),
            abandoned_objects=abandoned,
            fenced=sorted(fenced),
        )
        if fenced - groups:
            await self._release(fenced - groups, reason="fenced")

    async def _settle(self, jobs: list[RunningShard]) -> int:
        """Wait up to revoke_timeout_seconds for the jobs' objects to settle; returns how many did not."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(job.wait_idle() for job in jobs)), self._settings.scaleout.revoke_timeout_seconds
            )
        return sum(job.tracker.statistics().in_flight for job in jobs)


def join(
    settings: Settings,
    supervisor: ShardHost,
    store: CheckpointStore,
    ownership: Ownership,
    *,
    once: bool,
    sink: RecordSink | None = None,
) -> GroupMember | None:
    """The group member of this process in scale-out mode; None otherwise."""
    if not settings.scaleout.enabled:
        return None
    if once:
        raise ConfigError("--once cannot be combined with scaleout.enabled: a replica owns shards only while it runs")
    if not isinstance(store, KafkaCheckpointStore) or not isinstance(ownership, GroupOwnership):
        raise ConfigError("scale-out needs the shared checkpoint store (internal error)")
    committer = GroupCommitter(sink) if isinstance(sink, PartitionedTransactionalSink) else None
    return GroupMember(settings, supervisor, store, ownership, committer)


def ownership_for(settings: Settings, partition: Ownership) -> Ownership:
    """What the Supervisor filters discovered shards with: the group's assignment in scale-out mode (which
    then also replaces the per-process Partition: every worker process is a member of its own), else
    ``partition``."""
    return GroupOwnership(settings.scaleout.partitions) if settings.scaleout.enabled else partition
