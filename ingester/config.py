"""Settings: frozen, keyword-only msgspec Structs, validated once at start-up.

Why Structs and not dicts: a typo in a TOML key (``topc = "x"``) must stop the process with a message naming the
key, not be silently ignored; and the rest of the code receives values whose types were checked once, here.

Sources, lowest to highest precedence: defaults below, the TOML file, environment variables named
``INGESTER_<SECTION>__<FIELD>`` (for example ``INGESTER_KAFKA__TOPIC=cloudtrail``). Only the CLI calls
:func:`load`; nothing else reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from ingester.errors import ConfigError

ENV_PREFIX = "INGESTER_"

DEFAULT_POLL_INTERVAL_SECONDS = 300
DEFAULT_LOOKBACK_SECONDS = 3 * 3600
DEFAULT_MAX_INFLIGHT_OBJECTS = 32
DEFAULT_MAX_INFLIGHT_BYTES = 256 * 1024 * 1024

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every config section: immutable, keyword-only, unknown keys are errors."""


class AwsSettings(_Section, frozen=True):
    # Override for S3-compatible or local endpoints (moto in the demo and tests). Empty = real AWS.
    endpoint_url: str = ""
    # Region for the control-plane clients (STS, Organizations) and the default for S3.
    region: str = "us-east-1"
    # Named profile from ~/.aws; empty = the default credential chain (IRSA on EKS, env vars, instance role).
    profile: str = ""
    # Concurrent connections per aiobotocore client; caps S3 GETs in flight per account (and, with s3_get =
    # "aiohttp", the GETs in flight of the process).
    max_pool_connections: PositiveInt = 64
    # How log files are fetched. "aiohttp": a GET signed with SigV4 by ingester (sources/s3_get.py), URL and
    # credentials from botocore, ~1.5 ms less CPU per file than "botocore": aiobotocore's GetObject, kept for an
    # S3-compatible endpoint that the direct GET does not suit. Listing and digests always use aiobotocore.
    s3_get: Literal["aiohttp", "botocore"] = "aiohttp"


class DiscoverySettings(_Section, frozen=True):
    # "organization": ListAccounts in the management (or delegated admin) account, AssumeRole into each.
    # "single": the account of the default credentials only; no AssumeRole.
    mode: Literal["organization", "single"] = "single"
    # Role assumed in every member account. OrganizationAccountAccessRole works but is admin; prefer a
    # read-only role made from deploy/iam/.
    assume_role_name: str = "OrganizationAccountAccessRole"
    # Optional ExternalId for the AssumeRole trust policy.
    external_id: str = ""
    # Credentials are refreshed this long before they expire, so no call runs on an expired session.
    role_session_seconds: Annotated[int, msgspec.Meta(ge=900, le=43200)] = 3600
    # Client-side token buckets under AWS's control-plane quotas, so a large organization's discovery is not
    # throttled (and does not starve other tools sharing the quota): CloudTrail calls (DescribeTrails,
    # ListPublicKeys) per second per account and region (the quota is 10), Organizations calls per second.
    cloudtrail_calls_per_second: PositiveFloat = 5.0
    organizations_calls_per_second: PositiveFloat = 2.0
    # Attempts per control-plane call; throttling and 5xx are retried with botocore's exponential backoff.
    control_plane_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 8
    # Regions to look for trails in. Empty = every region enabled in the account (ec2:DescribeRegions).
    regions: tuple[str, ...] = ()
    # Accounts to skip (for example a sandbox that has no trail worth collecting).
    exclude_accounts: tuple[str, ...] = ()
    # How often accounts and trails are re-discovered; a new trail starts a job, a deleted one stops it.
    interval_seconds: PositiveInt = 3600


class CollectionSettings(_Section, frozen=True):
    # First start: collect files from this instant on (RFC 3339). Empty = everything stored in the bucket.
    start_time: str = ""
    # Follow-up listing interval per shard. CloudTrail delivers about every 5 minutes.
    poll_interval_seconds: PositiveInt = DEFAULT_POLL_INTERVAL_SECONDS
    # A shard whose poll finds nothing waits twice as long next time, up to this; one that finds a file goes
    # back to poll_interval_seconds. Equal to poll_interval_seconds = no backoff.
    max_poll_interval_seconds: PositiveInt = 1800
    # Files whose key sorts before the checkpoint but are delivered later than this are not looked for.
    # Larger = more re-listing and a larger set of remembered keys; smaller = risk of missing late files.
    lookback_seconds: NonNegativeInt = DEFAULT_LOOKBACK_SECONDS
    # Objects fetched/decoded/sent at once across all shards.
    max_inflight_objects: PositiveInt = DEFAULT_MAX_INFLIGHT_OBJECTS
    # Budget of decompressed bytes in flight (estimated from the compressed size until the object is read), for
    # the whole pod: with several worker processes each holds its share. Together with the bounded queues this
    # is what keeps memory flat during a Kafka outage.
    max_inflight_bytes: PositiveInt = DEFAULT_MAX_INFLIGHT_BYTES
    # Collector processes (`ingester run`), each owning a share of the shards and 1/workers of
    # max_inflight_bytes; 0 = one per CPU the process may use (the cgroup CPU quota, rounded up, and the CPU
    # affinity; not the node's CPU count). Decode and normalize are CPU-bound: one process uses about one core.
    workers: NonNegativeInt = 0
    # On SIGTERM: stop listing, finish in-flight objects, commit. After this long, exit anyway (objects not yet
    # acknowledged are simply collected again on the next start: duplicates, never loss).
    drain_timeout_seconds: PositiveInt = 60
    # Attempts for a transient failure on one object (S3 5xx, throttling, timeouts) before it is retried on the
    # next poll. The object is never skipped: the checkpoint cannot pass it.
    max_attempts: PositiveInt = 5
    # The deep re-list: this often, each shard of a trail without digests lists the last
    # deep_relist_window_seconds again and collects files that arrived later than lookback_seconds (counted in
    # ingester_late_files_total{kind="beyond_lookback"}). Cost: about one LIST per shard and day of the window
    # per interval (ingester_list_requests_total{pass="deep"}). 0 = off (such files are then never collected).
    deep_relist_interval_seconds: NonNegativeInt = 3600
    deep_relist_window_seconds: PositiveInt = 2 * 86400


class NotificationSettings(_Section, frozen=True):
    # SQS queue receiving S3 event notifications or CloudTrail's SNS notifications (raw or SNS-wrapped).
    # Empty = off: polling only. With a queue, listing still backfills and runs every poll_interval_seconds
    # as a safety net (raise it, e.g. to 3600, once notifications flow); a file is never processed twice.
    queue_url: str = ""
    # Region of the queue; empty = aws.region.
    region: str = ""
    # Concurrent ReceiveMessage long polls (10 messages each).
    receivers: PositiveInt = 2
    wait_seconds: Annotated[int, msgspec.Meta(ge=0, le=20)] = 20
    # Extended every half period while a message's files are still being processed.
    visibility_timeout_seconds: Annotated[int, msgspec.Meta(ge=10, le=43200)] = 300
    # A message received more often than this is a poison message: dead-lettered, then deleted.
    max_receives: PositiveInt = 5


class KafkaSettings(_Section, frozen=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "cloudtrail"
    # Permanent failures (corrupt files, undecodable records, oversized records) land here with the S3 key.
    dead_letter_topic: str = "cloudtrail-dead-letter"
    client_id: str = "ingester"
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "zstd"
    linger_ms: NonNegativeInt = 20
    # Must not exceed the broker's message.max.bytes (default 1 MiB).
    max_batch_bytes: PositiveInt = 1024 * 1024
    max_request_bytes: PositiveInt = 1024 * 1024
    request_timeout_ms: PositiveInt = 40_000
    # How long start-up waits for the cluster before giving up with a clear error.
    connect_timeout_seconds: PositiveInt = 60
    # "at_least_once": idempotent producer, SQLite checkpoint; a crash can re-send the objects in flight.
    # "exactly_once": transactional producer; events and their checkpoint records (in checkpoint_topic) commit
    # in one transaction, so read_committed consumers see each record once. Costs a commit per
    # transaction_interval_ms, and a broker failure restarts the process (it resumes from the committed state).
    delivery: Literal["at_least_once", "exactly_once"] = "at_least_once"
    # Must be stable per instance (a StatefulSet ordinal): it fences a previous incarnation (a zombie).
    transactional_id: str = "ingester-0"
    # Compacted topic holding the per-shard checkpoint in exactly_once mode; created if missing.
    checkpoint_topic: str = "ingester-checkpoints"
    # Completeness events (one per shard and digest hour) and integrity alerts; see [integrity]. Must exist
    # when a collected trail has log file validation enabled.
    integrity_topic: str = "cloudtrail-integrity"
    transaction_interval_ms: PositiveInt = 500
    # Security. SSL/SASL_SSL use the CA below (or the system CAs); client certificates for mutual TLS.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # OAUTHBEARER = Amazon MSK IAM (tokens from aws-msk-iam-sasl-signer-python, `pip install ingester[msk]`).
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = "PLAIN"
    sasl_username: str = ""
    # Prefer INGESTER_KAFKA__SASL_PASSWORD from a Kubernetes Secret over the config file. Masked in reprs.
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    # MSK IAM: the cluster's region (token signing); empty = aws.region.
    msk_region: str = ""

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'***' if name == 'sasl_password' and value else value!r}"
            for name, value in ((name, getattr(self, name)) for name in self.__struct_fields__)
        )
        return f"KafkaSettings({shown})"


class ScaleOutSettings(_Section, frozen=True):
    # Share the shards between replicas (pods, and worker processes) through Kafka's consumer-group protocol
    # (ingester/coordination/). Off = every replica collects every shard it discovers: run one per organization.
    enabled: bool = False
    # Compacted topic, created if missing: its partitions are the unit of ownership (a shard belongs to partition
    # crc32(shard id) % partitions), and each partition holds the checkpoints of its shards.
    topic: str = "ingester-coordination"
    # More partitions = finer balance and smaller rebalances, but one transactional producer per owned partition.
    # Fixed for the life of the topic: changing it moves shards away from their checkpoints (refused at start).
    partitions: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 24
    # Consumer group of the replicas: every replica collecting the same organization uses the same group id.
    group_id: str = "ingester"
    # Checkpoints of partition p are written with transactional id "<prefix>-<p>"; its next owner's
    # initialisation fences the previous one. Same prefix on every replica, unique per organization.
    transactional_id_prefix: str = "ingester-shards"
    # A replica that stops heartbeating (crash, kill -9, network loss) loses its shards after this long.
    # Shorter = faster take-over, but a GC pause or a slow broker can trigger needless rebalances.
    session_timeout_ms: Annotated[int, msgspec.Meta(ge=1000)] = 10_000
    # How long the group waits for every replica to release its shards (finish in-flight objects, commit).
    rebalance_timeout_ms: Annotated[int, msgspec.Meta(ge=1000)] = 60_000
    # On revocation, in-flight objects of the released shards get this long to settle; the rest are abandoned
    # (they stay behind the checkpoint, so the next owner collects them again: duplicates, never loss).
    revoke_timeout_seconds: PositiveInt = 20
    # Checkpoints of owned shards are committed (one transaction per partition with changes) this often. A
    # crash re-sends at most what settled since the last commit.
    commit_interval_ms: PositiveInt = 1000


class FileSinkSettings(_Section, frozen=True):
    # NDJSON output for the embedded default and for debugging; dead letters go to <path>.dead-letter.ndjson,
    # integrity reports (completeness events, alerts) to <path>.integrity.ndjson.
    path: str = "ingester-events.ndjson"


class SinkSettings(_Section, frozen=True):
    type: Literal["kafka", "file"] = "kafka"
    # "ocsf": OCSF 1.5.0 events (API Activity / Authentication / Account Change), the original record kept in
    # raw_data; "native": ingester.cloudtrail.v1 events, smaller; "raw": the original record, byte for byte.
    format: Literal["ocsf", "native", "raw"] = "ocsf"
    file: FileSinkSettings = msgspec.field(default_factory=FileSinkSettings)


class IntegritySettings(_Section, frozen=True):
    # Both apply only to trails with log file validation enabled (DescribeTrails LogFileValidationEnabled):
    # the others have no digests. See README "Completeness and integrity".
    # Compare each hourly digest with the files collected; fetch any file it lists that was never collected;
    # emit one completeness event per shard and hour to kafka.integrity_topic.
    reconcile: bool = True
    # "off": no hashing, no signature check (completeness events say digest_verified=false); "verify": check
    # digest signatures, the digest chain and every file's SHA-256, alert on a mismatch; "enforce": as verify,
    # and a file is published only once a verified digest vouches for it (up to ~1.5 h of added latency), its
    # events go to the dead-letter topic when it fails.
    mode: Literal["off", "verify", "enforce"] = "verify"
    # The digest prefix is listed when the next digest is due (an hour after the newest), then this often
    # while it is late.
    digest_poll_seconds: PositiveInt = 900
    # How far behind the listing window settled keys are remembered while their digest has not been
    # reconciled yet (delayed digests, backfills). Older files count as collected without proof.
    max_hold_seconds: PositiveInt = 6 * 3600


class CheckpointSettings(_Section, frozen=True):
    # SQLite file holding, per shard, the acknowledged watermark and the keys settled in the lookback window.
    path: str = ".ingester/checkpoints.sqlite"


class TelemetrySettings(_Section, frozen=True):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    # Prometheus /metrics port; 0 disables the HTTP endpoint.
    metrics_port: NonNegativeInt = 0
    # /readyz turns 503 once the sink has failed to acknowledge for this long (a Kafka outage); shorter flaps
    # on a broker restart, longer hides an outage from rollouts. ingester_sink_stalled_seconds shows it sooner.
    stall_seconds: PositiveInt = 60


class Settings(_Section, frozen=True):
    aws: AwsSettings = msgspec.field(default_factory=AwsSettings)
    discovery: DiscoverySettings = msgspec.field(default_factory=DiscoverySettings)
    collection: CollectionSettings = msgspec.field(default_factory=CollectionSettings)
    notifications: NotificationSettings = msgspec.field(default_factory=NotificationSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    sink: SinkSettings = msgspec.field(default_factory=SinkSettings)
    integrity: IntegritySettings = msgspec.field(default_factory=IntegritySettings)
    checkpoint: CheckpointSettings = msgspec.field(default_factory=CheckpointSettings)
    scaleout: ScaleOutSettings = msgspec.field(default_factory=ScaleOutSettings)
    telemetry: TelemetrySettings = msgspec.field(default_factory=TelemetrySettings)

    def start_datetime(self) -> datetime | None:
        """The configured start time, parsed (validated in :func:`build`)."""
        return parse_time(self.collection.start_time) if self.collection.start_time else None


def parse_time(text: str) -> datetime:
    """RFC 3339 instant or a bare date, always UTC-aware."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"collection.start_time: {text!r} is not an RFC 3339 time or a date") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _list_fields(struct: type[msgspec.Struct], path: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    """Paths of tuple-typed settings: only those turn a comma-separated environment value into a list."""
    found: set[tuple[str, ...]] = set()
    for info in msgspec.inspect.type_info(struct).fields:  # type: ignore[attr-defined]
        kind = info.type
        if isinstance(kind, msgspec.inspect.StructType):
            found |= _list_fields(kind.cls, (*path, info.encode_name))
        elif isinstance(kind, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
            found.add((*path, info.encode_name))
    return frozenset(found)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nest ``INGESTER_KAFKA__TOPIC=x`` into ``{"kafka": {"topic": "x"}}``. Values stay strings (converted laxly
    at validation), except for list settings, where ``a,b`` (or a single ``a``) becomes a list."""
    lists = _list_fields(Settings, ())
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = [item.strip() for item in value.split(",") if item.strip()] if path in lists else value
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build(data: Mapping[str, Any]) -> Settings:
    """Validate a raw mapping into :class:`Settings`; every problem becomes one ConfigError naming the key."""
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    if settings.collection.start_time:
        parse_time(settings.collection.start_time)
    if settings.kafka.max_batch_bytes > settings.kafka.max_request_bytes:
        raise ConfigError("kafka.max_batch_bytes must not exceed kafka.max_request_bytes")
    _check_scaleout(settings)
    return settings


def _check_scaleout(settings: Settings) -> None:
    s = settings.scaleout
    if not s.enabled:
        return
    if settings.sink.type != "kafka":
        raise ConfigError("scaleout.enabled needs sink.type = kafka (the checkpoints live in Kafka)")
    if settings.kafka.delivery != "at_least_once":
        raise ConfigError("scaleout.enabled supports kafka.delivery = at_least_once only (exactly_once: not built)")
    if settings.notifications.queue_url:
        raise ConfigError("scaleout.enabled cannot be combined with notifications.queue_url yet")
    if s.revoke_timeout_seconds * 1000 >= s.rebalance_timeout_ms:
        raise ConfigError("scaleout.revoke_timeout_seconds must be shorter than scaleout.rebalance_timeout_ms")


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), apply environment overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    overrides = env_overrides(os.environ if environ is None else environ)
    return build(_merge(data, overrides))
