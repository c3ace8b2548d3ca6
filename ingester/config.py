"""Settings: frozen, keyword-only msgspec Structs, validated once at start-up.

Why Structs and not dicts: a typo in a TOML key (``topc = "x"``) must stop the process with a message naming the
key, not be silently ignored; and the rest of the code receives values whose types were checked once, here.

Sources, lowest to highest precedence: defaults below, the TOML file, environment variables named
``INGESTER_<SECTION>__<FIELD>`` (for example ``INGESTER_KAFKA__TOPIC=cloudtrail``). Only the CLI calls
:func:`load`; nothing else reads the environment.
"""

from __future__ import annotations

import difflib
import os
import re
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
DEFAULT_MAX_INFLIGHT_BYTES = 192 * 1024 * 1024

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]

# The shapes checked at load: an IAM role ARN in any partition, an S3 bucket name, a 12-digit account id.
_ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ACCOUNT_ID = re.compile(r"\d{12}")


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
    # How log files are fetched and day folders listed. "aiohttp": GETs and ListObjectsV2 signed with SigV4 by
    # ingester (sources/s3_get.py), URL and credentials from botocore, ~1.5 ms less CPU per file than "botocore":
    # aiobotocore's GetObject and ListObjectsV2, kept for an S3-compatible endpoint that the direct requests do
    # not suit. Finding the earliest day (a delimiter listing), HEADs and digests always use aiobotocore.
    s3_get: Literal["aiohttp", "botocore"] = "aiohttp"


class DiscoverySettings(_Section, frozen=True):
    # "organization": ListAccounts in the management (or delegated admin) account, AssumeRole into each.
    # "single": the account of the default credentials only; no AssumeRole.
    # "bucket": no Organizations or CloudTrail discovery at all: the shards are read from the layout of the
    # log_buckets below (AWSLogs/[o-id/]<account>/CloudTrail/<region>/), for a reader of the log archive only.
    mode: Literal["organization", "single", "bucket"] = "single"
    # mode = "bucket" only: where the trails deliver, "bucket" or "bucket/key-prefix" (the trail's S3KeyPrefix,
    # e.g. Control Tower's organization id). Re-listed every interval_seconds: a new account or region appears
    # by itself, at the cost of about two LISTs per account and pass.
    log_buckets: tuple[str, ...] = ()
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
    # Organizations calls (ListAccounts, DescribeOrganization) per second, from the management account.
    organizations_calls_per_second: PositiveFloat = 2.0
    # Attempts per control-plane call; throttling and 5xx are retried with botocore's exponential backoff.
    control_plane_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 8
    # Regions to look for trails in. Empty = every region enabled in the account (ec2:DescribeRegions).
    regions: tuple[str, ...] = ()
    # Accounts to skip (for example a sandbox that has no trail worth collecting).
    exclude_accounts: tuple[str, ...] = ()
    # mode = "organization": accounts whose events are collected from organization trails only: no AssumeRole
    # into them, so their own account trails are not looked for. For a delegated administrator, name the
    # management account here when no read role is deployed there (its events come from the organization trail).
    organization_trail_only_accounts: tuple[str, ...] = ()
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
    # Budget of the bytes the objects in flight hold, for the whole pod (with several worker processes each holds
    # its share). Each object reserves, before its GET, an estimate of everything it will hold until Kafka has
    # acknowledged it: its JSON (12x the compressed size), the decoded records and the encoded events (x3 for
    # raw, x5 for OCSF; pipeline/worker.py). Together with the bounded queues this keeps memory flat, during a
    # Kafka outage too: one worker peaked at ~265 MB RSS with the default (docs/performance.md).
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
    # How far back the deep re-list looks (2 days): later than that, a file is not looked for.
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
    # Long-poll wait of each ReceiveMessage (SQS allows up to 20 s); shorter = more empty receives, billed.
    wait_seconds: Annotated[int, msgspec.Meta(ge=0, le=20)] = 20
    # Extended every half period while a message's files are still being processed.
    visibility_timeout_seconds: Annotated[int, msgspec.Meta(ge=10, le=43200)] = 300
    # A message received more often than this is a poison message: dead-lettered, then deleted.
    max_receives: PositiveInt = 5


class KafkaSettings(_Section, frozen=True):
    # Comma-separated host:port list of brokers.
    bootstrap_servers: str = "127.0.0.1:9092"
    # Where the events go (one record per CloudTrail record; key = the event id, partitioned by account).
    topic: str = "cloudtrail"
    # Permanent failures (corrupt files, undecodable records, oversized records) land here with the S3 key.
    dead_letter_topic: str = "cloudtrail-dead-letter"
    # Shown in the brokers' logs and quotas.
    client_id: str = "ingester"
    # Batch compression; zstd compresses CloudTrail JSON ~10x at little CPU.
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "zstd"
    # How long the producer waits to fill a batch; longer = fewer, larger requests.
    linger_ms: NonNegativeInt = 20
    # Must not exceed the broker's message.max.bytes (default 1 MiB).
    max_batch_bytes: PositiveInt = 1024 * 1024
    # Largest produce request; records are also checked against each topic's max.message.bytes.
    max_request_bytes: PositiveInt = 1024 * 1024
    # A request not acknowledged in this long is retried (the idempotent producer keeps order, no duplicates).
    request_timeout_ms: PositiveInt = 40_000
    # How long start-up waits for the cluster before giving up with a clear error.
    connect_timeout_seconds: PositiveInt = 60
    # "at_least_once": idempotent producer, SQLite checkpoint; a crash can re-send the objects in flight.
    # "exactly_once": transactional producer; events and their checkpoint records (in checkpoint_topic) commit
    # in one transaction, so read_committed consumers see each record once. Costs a commit per
    # transaction_interval_ms, and a broker failure restarts the process (it resumes from the committed state).
    # With [scaleout]: each shard group's events commit with its checkpoints in the coordination topic, every
    # scaleout.commit_interval_ms.
    delivery: Literal["at_least_once", "exactly_once"] = "at_least_once"
    # Must be stable per instance (a StatefulSet ordinal): it fences a previous incarnation (a zombie). Not used
    # with [scaleout] (the ids are scaleout.transactional_id_prefix-<partition>).
    transactional_id: str = "ingester-0"
    # Compacted topic holding the per-shard checkpoint in exactly_once mode; created if missing.
    checkpoint_topic: str = "ingester-checkpoints"
    # Completeness events (one per shard and digest hour) and integrity alerts; see [integrity]. Must exist
    # when a collected trail has log file validation enabled.
    integrity_topic: str = "cloudtrail-integrity"
    # exactly_once: a transaction (events + checkpoints) is committed this often.
    transaction_interval_ms: PositiveInt = 500
    # Security. SSL/SASL_SSL use the CA below (or the system CAs); client certificates for mutual TLS.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # OAUTHBEARER = Amazon MSK IAM (tokens from aws-msk-iam-sasl-signer-python, `pip install ingester[msk]`).
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = "PLAIN"
    # SASL PLAIN / SCRAM user name.
    sasl_username: str = ""
    # Prefer INGESTER_KAFKA__SASL_PASSWORD from a Kubernetes Secret over the config file. Masked in reprs.
    sasl_password: str = ""
    # PEM file of the CA that signed the brokers' certificates; empty = the system CAs.
    ssl_cafile: str = ""
    # Client certificate (PEM) for mutual TLS; empty = none.
    ssl_certfile: str = ""
    # The client certificate's private key (PEM).
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
    # With [notifications]: a replica's SQS receiver announces each notified file on this topic (created if
    # missing, `partitions` partitions, kept a day), in its shard's partition; the partition's owner collects it.
    announcements_topic: str = "ingester-announcements"


class FileSinkSettings(_Section, frozen=True):
    # NDJSON output for the embedded default and for debugging; dead letters go to <path>.dead-letter.ndjson,
    # integrity reports (completeness events, alerts) to <path>.integrity.ndjson.
    path: str = "ingester-events.ndjson"


class SinkSettings(_Section, frozen=True):
    # "kafka", or "file": NDJSON on local disk (the embedded demo, debugging).
    type: Literal["kafka", "file"] = "kafka"
    # "ocsf": OCSF 1.5.0 events (API Activity / Authentication / Account Change), the original record kept in
    # raw_data; "native": ingester.cloudtrail.v1 events, smaller; "raw": the original record, byte for byte.
    format: Literal["ocsf", "native", "raw"] = "ocsf"
    # OCSF only: keep the original record in raw_data (a JSON string). false leaves out raw_data and raw_data_size
    # (both optional in OCSF), and with them the byte-for-byte original: on the benchmark's data, events 37%
    # smaller, 9% fewer instructions to build, ~20% more records/s S3 -> Kafka (docs/performance.md). The mapped
    # attributes (api.request.data, api.response.data, unmapped) are unchanged.
    ocsf_raw_data: bool = True
    file: FileSinkSettings = msgspec.field(default_factory=FileSinkSettings)


class IntegritySettings(_Section, frozen=True):
    # Both apply only to trails with log file validation enabled (DescribeTrails LogFileValidationEnabled):
    # the others have no digests. See docs/operations.md "Completeness and integrity".
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
    # A shard without a row in that file (a new shard, or a lost / replaced file) is looked for in the output topic
    # at start (kafka sink, at_least_once): if its events are there, its state is rebuilt from their provenance
    # headers (checkpoint/rebuild.py) instead of collecting from start_time again. false (`run --from-scratch`)
    # = collect such shards from start_time (every file already sent is sent again).
    restore_from_kafka: bool = True
    # Records read backwards per partition, at most, looking for a shard's last events: more finds shards quiet for
    # longer (their events further back), and costs start-up time (~1 s per 100,000 records) once per new shard.
    rebuild_scan_records: PositiveInt = 200_000


class TelemetrySettings(_Section, frozen=True):
    # Logs go to stderr (structlog); below this level they are dropped.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": one object per line, for log collectors; "console": for a terminal.
    log_format: Literal["json", "console"] = "json"
    # Prometheus /metrics port; 0 disables the HTTP endpoint.
    metrics_port: NonNegativeInt = 0
    # /readyz turns 503 once the sink has failed to acknowledge for this long (a Kafka outage); shorter flaps
    # on a broker restart, longer hides an outage from rollouts. ingester_sink_stalled_seconds shows it sooner.
    stall_seconds: PositiveInt = 60


class RouteSettings(_Section, frozen=True):
    """One entry of ``[[routes]]``: the conditions a record must meet (all that are given; an empty one matches
    any record) and what happens to it. Routes are tried in order, the first match wins; a record no route
    matches goes to kafka.topic. Patterns are shell globs (``*``, ``?``, ``[...]``), matched case-sensitively."""

    # Names the route in metrics (ingester_routed_records_total{route}) and logs.
    name: Annotated[str, msgspec.Meta(min_length=1)]
    # eventSource globs, e.g. ["s3.amazonaws.com", "lambda.*"].
    event_source: tuple[str, ...] = ()
    # eventName globs, e.g. ["Decrypt", "GenerateDataKey*"].
    event_name: tuple[str, ...] = ()
    # ingester's classification "category/subtype" globs (codec/classification.toml), e.g. ["authentication/*"].
    classification: tuple[str, ...] = ()
    # OCSF class uids: 3002 Authentication, 3001 Account Change, 3006 Group Management, 6003 API Activity.
    class_uid: tuple[int, ...] = ()
    # CloudTrail eventCategory values.
    event_category: tuple[Literal["Management", "Data", "Insight", "NetworkActivity"], ...] = ()
    # readOnly is true / false; unset = either.
    read_only: bool | None = None
    # errorCode is present (true) / absent (false); unset = either.
    error: bool | None = None
    # Account id globs (the record's recipientAccountId, else the shard's account).
    account: tuple[str, ...] = ()
    # Region globs (the record's awsRegion, else the shard's region).
    region: tuple[str, ...] = ()
    # "send" to `topic`, or "drop" (the record is counted, not sent; the checkpoint still passes it).
    action: Literal["send", "drop"] = "send"
    # Topic for "send"; empty = kafka.topic. Must exist (checked at start).
    topic: str = ""
    # Keep 1 record in `sample` (deterministic on the event id, so reruns agree); 1 = every record.
    sample: PositiveInt = 1


class BucketReaderSettings(_Section, frozen=True):
    """One ``[[buckets]]`` entry: the role that reads a bucket (a landing zone's log-archive bucket lets only its
    own account's principals read). Discovery keeps the collector's credentials; LIST and GET use this role."""

    # The bucket's name, or "*" for every bucket without an entry of its own (an exact name wins).
    name: Annotated[str, msgspec.Meta(examples=["aws-controltower-logs-222222222222-us-east-1"])]
    # Assumed with the collector's credentials, refreshed before expiry (discovery.role_session_seconds). Needs
    # s3:ListBucket, s3:GetObject and, for SSE-KMS logs, kms:Decrypt (deploy/iam/log-archive-reader-*.json).
    role_arn: Annotated[str, msgspec.Meta(examples=["arn:aws:iam::222222222222:role/ingester-log-archive-read"])]
    # The ExternalId the role's trust policy asks for; empty = none.
    external_id: str = ""
    # Region of the bucket's S3 client; empty = aws.region.
    region: str = ""


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
    # Routing and filtering before the sink, first match wins ([[routes]] tables; see RouteSettings).
    routes: tuple[RouteSettings, ...] = ()
    # [[buckets]]: reader roles per bucket (see BucketReaderSettings); none = each bucket is read with the
    # credentials of the account that owns its trail (the collector's own in "single" and "bucket" modes).
    buckets: tuple[BucketReaderSettings, ...] = ()

    def routed_topics(self) -> tuple[str, ...]:
        """The named topics [[routes]] send to (besides kafka.topic), each once, in the table's order."""
        return tuple(dict.fromkeys(route.topic for route in self.routes if route.action == "send" and route.topic))

    def bucket_reader(self, bucket: str) -> BucketReaderSettings | None:
        """The ``[[buckets]]`` entry that reads ``bucket``: its own entry, else the "*" entry, else None."""
        wildcard = None
        for entry in self.buckets:
            if entry.name == bucket:
                return entry
            if entry.name == "*":
                wildcard = entry
        return wildcard

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


_AT = re.compile(r" - at `\$([^`]*)`$")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def _field_type(path: tuple[str, ...]) -> msgspec.inspect.Type | None:
    """The declared type of the setting at ``path`` (``routes[0]``: an item of a list; None past a leaf or for
    an unknown key)."""
    kind: msgspec.inspect.Type = msgspec.inspect.type_info(Settings)
    for part in path:
        name, _, indexes = part.partition("[")
        if not isinstance(kind, msgspec.inspect.StructType):
            return None
        fields = {f.encode_name: f.type for f in kind.fields}
        if name not in fields:
            return None
        kind = fields[name]
        for _ in range(indexes.count("]")):
            if not isinstance(kind, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
                return None
            kind = kind.item_type
    return kind


def _env_names(tree: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    """The INGESTER_* variables that set ``path`` or anything below it."""
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return []
        node = node[part]

    def leaves(value: Any, at: tuple[str, ...]) -> list[str]:
        if isinstance(value, Mapping):
            return [name for key, sub in value.items() for name in leaves(sub, (*at, key))]
        return [ENV_PREFIX + "__".join(at).upper()]

    return leaves(node, path)


def explain(message: str, env: Mapping[str, Any], source: str) -> str:
    """msgspec's validation message, made an operator's: which setting, where its value came from (the file or
    an ``INGESTER_*`` variable), and what it may be (a choice's allowed values, a near miss for an unknown key)."""
    at = _AT.search(message)
    path = tuple(part for part in (at.group(1) if at else "").split(".") if part)
    reason = message[: at.start()] if at else message
    unknown = _UNKNOWN.search(reason)
    key = (*path, unknown.group(1)) if unknown else path
    names = _env_names(env, key)
    where = f"from the environment: {', '.join(sorted(names))}" if names else f"in {source}"
    hints = []
    kind = _field_type(key)
    if isinstance(kind, msgspec.inspect.LiteralType):
        hints.append("allowed: " + ", ".join(repr(v) for v in kind.values))
    if unknown:
        parent = _field_type(path)
        if isinstance(parent, msgspec.inspect.StructType):
            known = [f.encode_name for f in parent.fields]
            close = difflib.get_close_matches(unknown.group(1), known, n=1)
            hints.append(f"did you mean {'.'.join((*path, close[0]))}?" if close else "known: " + ", ".join(known))
    setting = ".".join(key) or "configuration"
    return f"invalid configuration: {setting}: {reason} ({where}{''.join('; ' + h for h in hints)})"


def build(data: Mapping[str, Any], *, env: Mapping[str, Any] | None = None, source: str = "defaults") -> Settings:
    """Validate a raw mapping into :class:`Settings`; every problem becomes one ConfigError naming the key and
    where its value came from (``env``: the part of ``data`` that came from ``INGESTER_*`` variables)."""
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(explain(str(exc), env or {}, source)) from exc
    if settings.collection.start_time:
        parse_time(settings.collection.start_time)
    if settings.kafka.max_batch_bytes > settings.kafka.max_request_bytes:
        raise ConfigError("kafka.max_batch_bytes must not exceed kafka.max_request_bytes")
    _check_scaleout(settings)
    _check_routes(settings)
    _check_discovery(settings.discovery)
    _check_buckets(settings.buckets)
    return settings


def log_location(entry: str) -> tuple[str, str]:
    """``"bucket"`` or ``"bucket/key/prefix"`` (a discovery.log_buckets entry) -> (bucket, prefix without slashes)."""
    bucket, _, prefix = entry.strip().removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _check_discovery(d: DiscoverySettings) -> None:
    if d.mode == "bucket" and not d.log_buckets:
        raise ConfigError('discovery.mode = "bucket" needs discovery.log_buckets (["bucket"] or ["bucket/prefix"])')
    if d.mode != "bucket" and d.log_buckets:
        raise ConfigError(f'discovery.log_buckets is read only with discovery.mode = "bucket" (mode is {d.mode!r})')
    for entry in d.log_buckets:
        bucket, _ = log_location(entry)
        if not _BUCKET_NAME.fullmatch(bucket):
            raise ConfigError(f"discovery.log_buckets: {entry!r} does not start with an S3 bucket name")
    if d.mode != "organization" and d.organization_trail_only_accounts:
        raise ConfigError(
            'discovery.organization_trail_only_accounts is read only with discovery.mode = "organization"'
        )
    for account in d.organization_trail_only_accounts:
        if not _ACCOUNT_ID.fullmatch(account):
            raise ConfigError(f"discovery.organization_trail_only_accounts: {account!r} is not a 12-digit account id")


def _check_buckets(entries: tuple[BucketReaderSettings, ...]) -> None:
    """Each [[buckets]] entry named by position and bucket: a typo here would only show as AccessDenied later."""
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        where = f"buckets[{n}] (name = {entry.name!r})"
        if entry.name != "*" and not _BUCKET_NAME.fullmatch(entry.name):
            raise ConfigError(f'{where}: name must be an S3 bucket name or "*"')
        if entry.name in seen:
            raise ConfigError(f"{where}: a second entry for the same bucket")
        seen.add(entry.name)
        if not _ROLE_ARN.fullmatch(entry.role_arn):
            raise ConfigError(
                f"{where}: role_arn {entry.role_arn!r} is not an IAM role ARN "
                "(arn:aws:iam::<12-digit account>:role/<name>)"
            )


def _check_routes(settings: Settings) -> None:
    names = [route.name for route in settings.routes]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigError(f"routes: names must be unique (metrics are labelled by them): {', '.join(duplicated)}")
    for route in settings.routes:
        if route.action == "drop" and (route.topic or route.sample != 1):
            raise ConfigError(f"routes: route {route.name!r} drops its records: topic and sample do not apply")
        if route.name == "default":
            raise ConfigError("routes: the name 'default' is the route of records no route matches")
    if settings.routes and settings.sink.type == "kafka":
        k = settings.kafka
        reserved = {
            k.dead_letter_topic,
            k.integrity_topic,
            k.checkpoint_topic,
            settings.scaleout.topic,
            settings.scaleout.announcements_topic,
        }
        for route in settings.routes:
            if route.topic in reserved:
                raise ConfigError(
                    f"routes: route {route.name!r} sends to {route.topic}, a topic ingester uses for "
                    "dead letters, integrity reports or checkpoints"
                )


def _check_scaleout(settings: Settings) -> None:
    s = settings.scaleout
    if not s.enabled:
        return
    if settings.sink.type != "kafka":
        raise ConfigError("scaleout.enabled needs sink.type = kafka (the checkpoints live in Kafka)")
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
    return build(_merge(data, overrides), env=overrides, source=str(path) if path is not None else "defaults")
