"""The Supervisor: one ShardJob per discovered shard this process owns; started, stopped, routed to.

Discovery (pipeline/runtime.py) and, in scale-out mode, the group member (coordination/member.py) hand it the
shards; it keeps the jobs in the top TaskGroup, routes notified objects to their shard's job, and reports lag
and S3 requests. What coordination needs of it is the :class:`~ingester.coordination.host.ShardHost` protocol,
so coordination never imports the pipeline above it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from ingester.checkpoint.rebuild import Restorer
from ingester.checkpoint.store import CheckpointStore
from ingester.config import BucketReaderSettings, Settings
from ingester.connect.aws import AwsClients
from ingester.coordination.partition import Ownership
from ingester.discovery.discover import Discovery
from ingester.integrity.audit import ShardAudit
from ingester.integrity.keys import CloudTrailPublicKeySource, PublicKeySource, RegionKeys
from ingester.models import LogObject, Shard
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.jobs import ShardJob, WorkItem, fault_kind
from ingester.pipeline.worker import until_acknowledged
from ingester.sinks import RecordSink
from ingester.sources.keys import shard_id_of
from ingester.sources.notifications import ObjectRef
from ingester.sources.s3 import S3Source
from ingester.sources.s3_get import SignedGetter
from ingester.sources.sqs import UnknownShard

log = structlog.get_logger("ingester.pipeline.supervisor")

# region -> where that region's digest signing keys come from (CloudTrail's ListPublicKeys by default).
PublicKeysFor = Callable[[str], PublicKeySource]


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
        restorer: Restorer | None = None,
    ) -> None:
        self._partition = partition
        self._restorer = restorer
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
        self._getters: dict[tuple[str, str], SignedGetter | None] = {}
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
        new = sorted(shards.keys() - self.jobs.keys())
        if new and self._restorer is not None:
            # Before the jobs read their checkpoints: a shard the store lost is rebuilt from the topic first.
            await self._restorer.restore_missing([shards[shard_id] for shard_id in new])
        for shard_id in new:
            await self._start(shards[shard_id])
        self._telemetry.set_shards(len(self.jobs))

    async def _start(self, shard: Shard) -> None:
        c = self._settings.collection
        try:
            # The bucket's [[buckets]] reader role when it has one (a log-archive account), else the trail owner's.
            bucket_reader = self._settings.bucket_reader(shard.bucket)
            client = await self._clients.s3(shard.reader_account, bucket_reader)
            home = await self._clients.home_account()
            reader = (bucket_reader.role_arn if bucket_reader else shard.reader_account, shard.bucket)
            if reader not in self._getters:  # one per bucket and reader: it learns the bucket's URL once
                self._getters[reader] = await signed_getter(
                    self._clients, client, shard.reader_account, bucket_reader, self._retried
                )
            getter = self._getters[reader]
        except Exception as exc:  # one shard's client; the next reconcile tries again
            self._telemetry.shard_fault(shard, fault_kind(exc), f"{type(exc).__name__}: {exc}")
            log.error("shard_start_failed", shard=shard.shard_id, error=f"{type(exc).__name__}: {exc}")
            return
        source = S3Source(client, shard.bucket, getter)
        job = ShardJob(
            shard,
            source,
            self._store,
            start=self._settings.start_datetime(),
            lookback=timedelta(seconds=c.lookback_seconds),
            telemetry=self._telemetry,
            audit=self._audit(shard, source, home),
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

    def _retried(self) -> None:
        self._telemetry.retry("source")

    def _audit(self, shard: Shard, source: S3Source, home: str) -> ShardAudit | None:
        """Digests are read only where the trail has log file validation (no digests exist elsewhere).

        Public keys are asked for with the collector's own credentials (``home``): they are the same for every
        account of a region, and the reader may be a bucket-only role or a management account with no role."""
        i = self._settings.integrity
        if not shard.log_validation or (not i.reconcile and i.mode == "off"):
            return None
        keys = self._keys.get(shard.region)
        if keys is None:
            if self._public_keys is not None:
                key_source: PublicKeySource = self._public_keys(shard.region)
            else:
                clients, account, region = self._clients, home, shard.region
                key_source = CloudTrailPublicKeySource(
                    lambda: clients.client("cloudtrail", account, region), where=f"{account}/{region}"
                )
            keys = self._keys[shard.region] = RegionKeys(key_source)
        sink, telemetry = self._sink, self._telemetry

        async def publish(key: bytes, value: bytes) -> None:
            async def send() -> None:
                async with sink.unit(shard.shard_id):
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
        shard_id = shard_id_of(ref.bucket, ref.key)
        if shard_id is None:
            return None  # digests, insights, anything outside a CloudTrail/ log prefix: nothing to collect
        entry = self.jobs.get(shard_id)
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
    not describe (a denied role, throttling), or of bucket-mode locations it could not list: a failed look is
    not evidence that a trail is gone. Only a shard whose account (or location) was looked at without it stops."""
    failed = set(found.failed_accounts)
    locations = tuple(where for where in failed if where.startswith("s3://"))
    kept = {
        shard_id: shard
        for shard_id, shard in previous.items()
        if shard_id not in found.shards
        and (shard.account_id in failed or shard.reader_account in failed or shard_id.startswith(locations))
    }
    return {**found.shards, **kept}


def note_discovery(telemetry: Telemetry, found: Discovery) -> None:
    for account in found.failed_accounts:
        telemetry.discovery_failed(account)
    telemetry.discovery_succeeded(set(found.organization.accounts) - set(found.failed_accounts))


async def signed_getter(
    clients: AwsClients,
    client: Any,
    account_id: str,
    reader: BucketReaderSettings | None = None,
    on_retry: Callable[[], None] | None = None,
) -> SignedGetter | None:
    """The direct GET of log files (``aws.s3_get = "aiohttp"``) with the credentials of the S3 ``client``
    (the bucket's reader role, or ``account_id``'s); None for aiobotocore's GetObject (configured, or no
    credentials to sign with)."""
    http = await clients.s3_http()
    if http is None:
        return None
    credentials = await clients.credentials(account_id, reader)
    if credentials is None:
        return None
    return SignedGetter(client, http, credentials, on_retry)
