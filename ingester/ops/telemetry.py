"""Logs and metrics: one structured log line and one metric update per object or batch, never per record.

structlog renders JSON (or console) lines and carries context variables (account/region/trail are bound once
per shard task). prometheus_client holds the counters; :class:`Telemetry` keeps the same numbers as plain
integers so the CLI summary, tests and /metrics read one source. Labels are bounded: outcome and reason codes,
never keys or messages.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingester.models import Shard


class _LagCollector(Collector):
    """``ingester_shard_lag_seconds``, computed when scraped: now minus the time of each shard's checkpoint
    (the largest per account and region), so the figure keeps growing while the pipeline is stalled."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "ingester_shard_lag_seconds",
            "Now minus the time of the shard's checkpoint (its newest contiguous file)",
            labels=["account", "region"],
        )
        source = self._telemetry.lag_source
        values = source() if source is not None else self._telemetry._lag_values
        for (account, region), lag in sorted(values.items()):
            family.add_metric([account, region], lag)
        yield family


def configure_logging(level: str, fmt: str) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


class RunStatistics(msgspec.Struct, frozen=True):
    objects_delivered: int
    objects_rejected: int
    objects_errored: int
    records: int
    dead_letters: int
    compressed_bytes: int
    decompressed_bytes: int
    s3_requests: int
    elapsed_seconds: float
    shards: int = 0
    # --once: shards that failed every attempt (a missing bucket, a denied role); the run's exit code says so.
    shards_failed: int = 0
    # Files the deep re-list found beyond the lookback (collected; counted so no late file goes unseen).
    late_files: int = 0
    # Records left out by a [[routes]] drop or sampling (delivered by design; counted per route in the metrics).
    records_dropped: int = 0

    @property
    def records_per_second(self) -> float:
        return self.records / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


class Telemetry:
    """The process's counters; one instance per run, its own registry so tests can run several."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._objects = Counter(
            "ingester_objects_total", "S3 objects settled, by outcome", ["outcome"], registry=self.registry
        )
        self._records = Counter("ingester_records_total", "Records acknowledged by the sink", registry=self.registry)
        self._bytes = Counter(
            "ingester_bytes_total",
            "Bytes read, by kind (compressed/decompressed)",
            ["kind"],
            registry=self.registry,
        )
        self._dead = Counter(
            "ingester_dead_letters_total",
            "Dead letters written, by reason",
            ["reason"],
            registry=self.registry,
        )
        self._retries = Counter(
            "ingester_retries_total",
            "Transient failures retried, by stage",
            ["stage"],
            registry=self.registry,
        )
        self.inflight_bytes = Gauge(
            "ingester_inflight_bytes", "Budgeted bytes of objects in flight", registry=self.registry
        )
        self._shards = Gauge("ingester_shards", "Shards being collected", registry=self.registry)
        self._lag_values: dict[tuple[str, str], float] = {}
        self.registry.register(_LagCollector(self))
        self._checkpoint_time = Gauge(
            "ingester_checkpoint_timestamp_seconds",
            "Unix time of the shard's last checkpoint commit (checkpoint age = now - this)",
            ["account", "region"],
            registry=self.registry,
        )
        # Its children by (account, region): ``labels()`` takes a lock and builds the key on every call, once per
        # settled object (~1% of the CPU with small files).
        self._checkpoint_times: dict[tuple[str, str], Gauge] = {}
        self._send = Histogram(
            "ingester_sink_send_seconds",
            "Time from handing one object's records to the sink until acknowledged",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self._poll_requests = Histogram(
            "ingester_poll_list_requests",
            "S3 LIST requests per shard poll cycle",
            buckets=(1, 2, 3, 5, 10, 20, 50, 100, 1000),
            registry=self.registry,
        )
        self._alerts = Counter(
            "ingester_integrity_alerts_total",
            "Failed integrity checks (digest signature, key, chain, file hash, file in no digest), by kind",
            ["kind"],
            registry=self.registry,
        )
        self._digests = Counter(
            "ingester_digests_total",
            "Digests reconciled, by outcome (complete / incomplete / unreadable)",
            ["outcome"],
            registry=self.registry,
        )
        self._missing = Gauge(
            "ingester_digest_files_missing",
            "Files the shard's last reconciled digest lists that were never collected",
            ["account", "region"],
            registry=self.registry,
        )
        self._faults = Counter(
            "ingester_shard_faults_total",
            "Shard cycles that failed (bucket_unavailable, s3, credentials, internal, ...); the shard retries",
            ["kind"],
            registry=self.registry,
        )
        self._failing = Gauge(
            "ingester_shards_failing", "Shards whose last cycle failed (retrying with backoff)", registry=self.registry
        )
        self._discovery_failures = Counter(
            "ingester_discovery_failures_total",
            "Discovery passes that failed for one account (its running shards keep running)",
            ["account"],
            registry=self.registry,
        )
        self._late = Counter(
            "ingester_late_files_total",
            "Files found later than the regular listing could see them, by kind (beyond_lookback)",
            ["kind"],
            registry=self.registry,
        )
        self._list = Counter(
            "ingester_list_requests_total",
            "S3 LIST requests, by pass (poll: regular listing; deep: the hourly re-list of recent days)",
            ["pass"],
            registry=self.registry,
        )
        self._routed = Counter(
            "ingester_routed_records_total",
            "Records by [[routes]] entry (default: no route matched) and outcome (sent / dropped), once acknowledged",
            ["route", "outcome"],
            registry=self.registry,
        )
        self._announcements = Counter(
            "ingester_announcements_total",
            "Scale-out notifications through Kafka, by outcome (published by a receiver; submitted, "
            "already_settled, unknown_shard, not_a_log_file at the shard's owner)",
            ["outcome"],
            registry=self.registry,
        )
        self._stalled = Gauge(
            "ingester_sink_stalled_seconds",
            "How long the sink has been failing to acknowledge (0 = acknowledging); alert on a sustained value",
            registry=self.registry,
        )
        self._stalled.set_function(self.sink_stalled_seconds)
        self._last_ack = Gauge(
            "ingester_sink_last_ack_timestamp_seconds",
            "Unix time of the sink's last acknowledgement (0 = none yet)",
            registry=self.registry,
        )
        # Shard id -> "kind: cause" of shards whose last cycle failed (readiness detail); bounded by the shards.
        self.failing_shards: dict[str, str] = {}
        self.gave_up_shards: set[str] = set()
        # Accounts whose last discovery pass failed (their own trails may be uncollected).
        self.failed_accounts: set[str] = set()
        # Monotonic time since which sends have been failing (None: the sink acknowledges), and why.
        # Hand-overs to the sink pending now, since when one has been, and the last acknowledgement (monotonic).
        self._sending = 0
        self._busy_since = self._last_ack_monotonic = time.monotonic()
        self.sink_error = ""
        # How long sends may keep failing before readiness turns 503 (telemetry.stall_seconds).
        self.stall_seconds = 60.0
        self.late_files: dict[str, int] = {}
        self.deep_list_requests = 0
        # Lag per (account, region) computed at scrape time (the runtime installs it): a stalled pipeline's lag
        # keeps growing on the dashboard instead of freezing at its last value.
        self.lag_source: Callable[[], dict[tuple[str, str], float]] | None = None
        self.integrity_alerts: dict[str, int] = {}
        self.digests: dict[str, int] = {}
        self.list_requests = 0
        self.shards = 0
        # Readiness: the first discovery pass has finished, and the sink is connected.
        self.discovered = False
        self.sink_connected = False
        self.draining = False
        self._started = time.monotonic()
        self._counts = {"delivered": 0, "rejected": 0, "errored": 0}
        self._n_records = self._n_dead = self._n_compressed = self._n_decompressed = 0
        self._n_dropped = 0
        self.objects_listed = 0
        self.s3_requests = 0

    @property
    def ready(self) -> bool:
        return self.discovered and self.sink_connected and not self.draining and not self.sink_stalled

    # --- the sink's health: set by every send's outcome, read by /readyz and the metrics ---------------------

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Around every hand-over to the sink (a unit, a send): while one is pending, the time since the last
        acknowledgement is the stall. Failing sends and sends that hang without an answer (a transaction
        waiting on a broker that is gone) both count."""
        if self._sending == 0:
            self._busy_since = time.monotonic()
        self._sending += 1
        try:
            yield
        finally:
            self._sending -= 1

    def sink_retrying(self, error: str) -> None:
        self.sink_error = error

    def sink_acknowledged(self) -> None:
        self._last_ack_monotonic = time.monotonic()
        self.sink_error = ""
        self._last_ack.set(time.time())

    def sink_stalled_seconds(self) -> float:
        if self._sending == 0:
            return 0.0
        return time.monotonic() - max(self._busy_since, self._last_ack_monotonic)

    @property
    def sink_stalled(self) -> bool:
        return self.sink_stalled_seconds() >= self.stall_seconds

    # --- shard faults --------------------------------------------------------------------------------------
    def shard_fault(self, shard: Shard, kind: str, detail: str) -> None:
        self._faults.labels(kind).inc()
        self.failing_shards[shard.shard_id] = f"{kind}: {detail[:300]}"
        self._failing.set(len(self.failing_shards))

    def shard_recovered(self, shard: Shard) -> None:
        self.failing_shards.pop(shard.shard_id, None)
        self._failing.set(len(self.failing_shards))

    def shard_gave_up(self, shard: Shard) -> None:
        """``--once``: the shard failed every attempt; the run ends reporting it."""
        self.gave_up_shards.add(shard.shard_id)

    def shard_stopped(self, shard_id: str) -> None:
        self.failing_shards.pop(shard_id, None)
        self._failing.set(len(self.failing_shards))

    def discovery_failed(self, account: str) -> None:
        self.failed_accounts.add(account)
        self._discovery_failures.labels(account).inc()

    def discovery_succeeded(self, accounts: set[str]) -> None:
        """Accounts described by the last pass: no longer counted as failed (``run --once``'s outcome)."""
        self.failed_accounts -= accounts

    def late_file(self, kind: str) -> None:
        self.late_files[kind] = self.late_files.get(kind, 0) + 1
        self._late.labels(kind).inc()

    def deep_relist(self, list_requests: int, found: int) -> None:
        self.deep_list_requests += list_requests
        self._list.labels("deep").inc(list_requests)

    def shard_progress(self, account: str, region: str, lag_seconds: float | None) -> None:
        """After a checkpoint commit of one shard: its lag and the commit time."""
        if lag_seconds is not None:
            self._lag_values[(account, region)] = lag_seconds
        child = self._checkpoint_times.get((account, region))
        if child is None:
            child = self._checkpoint_times[account, region] = self._checkpoint_time.labels(account, region)
        child.set(time.time())

    def poll_cycle(self, list_requests: int) -> None:
        self.list_requests += list_requests
        self._poll_requests.observe(list_requests)
        self._list.labels("poll").inc(list_requests)

    def sent(self, seconds: float) -> None:
        self._send.observe(seconds)

    def object_settled(self, outcome: str, records: int, compressed: int, decompressed: int) -> None:
        self._counts[outcome] += 1
        self._objects.labels(outcome).inc()
        if records:
            self._n_records += records
            self._records.inc(records)
        self._n_compressed += compressed
        self._n_decompressed += decompressed
        self._bytes.labels("compressed").inc(compressed)
        self._bytes.labels("decompressed").inc(decompressed)

    def object_listed(self) -> None:
        """One object handed to the workers (the progress bar's total)."""
        self.objects_listed += 1

    def set_shards(self, count: int) -> None:
        self.shards = count
        self._shards.set(count)

    def routed(self, counts: list[tuple[str, int, int]]) -> None:
        """One object's routing, after its records were acknowledged: (route, sent, dropped) per route."""
        for route, sent, dropped in counts:
            if sent:
                self._routed.labels(route, "sent").inc(sent)
            if dropped:
                self._routed.labels(route, "dropped").inc(dropped)
                self._n_dropped += dropped

    def announcement(self, outcome: str) -> None:
        self._announcements.labels(outcome).inc()

    def dead_letter(self, reason: str) -> None:
        self._n_dead += 1
        self._dead.labels(reason).inc()

    def integrity_alert(self, kind: str) -> None:
        self.integrity_alerts[kind] = self.integrity_alerts.get(kind, 0) + 1
        self._alerts.labels(kind).inc()

    def digest_settled(self, shard: Shard, outcome: str, missing: int) -> None:
        self.digests[outcome] = self.digests.get(outcome, 0) + 1
        self._digests.labels(outcome).inc()
        self._missing.labels(shard.account_id, shard.region).set(missing)

    def retry(self, stage: str) -> None:
        self._retries.labels(stage).inc()

    def statistics(self) -> RunStatistics:
        return RunStatistics(
            objects_delivered=self._counts["delivered"],
            objects_rejected=self._counts["rejected"],
            objects_errored=self._counts["errored"],
            records=self._n_records,
            dead_letters=self._n_dead,
            compressed_bytes=self._n_compressed,
            decompressed_bytes=self._n_decompressed,
            s3_requests=self.s3_requests,
            elapsed_seconds=time.monotonic() - self._started,
            shards=self.shards,
            shards_failed=len(self.gave_up_shards),
            late_files=sum(self.late_files.values()),
            records_dropped=self._n_dropped,
        )
