"""``ingester check-config``: is the configuration valid, and can this process reach what it needs?

Each check is one line: what was checked, ok or the reason it failed. They run in order and each one that
fails does not stop the next (a wrong Kafka address and a missing IAM permission are both worth seeing at once).
A failed check carries its exit code (:class:`~ingester.errors.ExitCode`); the command exits with the first one.

Reachable is not enough: discovery runs as ``run`` would, so "no trails found" (nothing to collect) fails here
instead of as a collector that runs green and collects nothing, and each bucket those trails deliver to is listed
once with the credentials ``run`` will read it with (a missing or forbidden bucket otherwise shows up only as
dead letters and an errored listing, account after account).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ingester.config import BucketReaderSettings, Settings
from ingester.connect.aws import AwsClients
from ingester.discovery.discover import discover
from ingester.errors import ExitCode, IngesterError
from ingester.models import Shard
from ingester.sinks import RecordSink
from ingester.sinks.file import FileSink
from ingester.sinks.kafka import KafkaSink

# Buckets probed at once: one ListObjectsV2 each, but an organization of account trails has one bucket per account.
BUCKET_CONCURRENCY = 8


class Check(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str
    # What the command exits with if this is its first failed check (OK when it passed).
    code: ExitCode = ExitCode.OK


def _failed(name: str, detail: str, code: ExitCode = ExitCode.AWS) -> Check:
    return Check(name, False, " ".join(detail.split()), code)  # one line, whatever the service answered


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    async with AwsClients(settings.aws, settings.discovery) as clients:
        try:
            account = await clients.home_account()
            checks.append(Check("aws credentials", True, f"account {account}"))
        except IngesterError as exc:
            checks.append(_failed("aws credentials", str(exc), exc.exit_code))
            account = ""
        if account and settings.discovery.mode == "organization":
            try:
                async with clients.client("organizations", account, settings.aws.region) as org:
                    found = (await org.describe_organization())["Organization"]
                    pages = org.get_paginator("list_accounts").paginate(PaginationConfig={"MaxItems": 1})
                    async for _ in pages:
                        break
                checks.append(Check("organizations", True, f"{found['Id']} (ListAccounts allowed)"))
            except (ClientError, BotoCoreError) as exc:
                checks.append(_failed("organizations", str(exc)))
        if account and settings.discovery.mode != "bucket":  # the bucket mode needs no CloudTrail rights
            try:
                async with clients.client("cloudtrail", account, settings.aws.region) as cloudtrail:
                    trails = (await cloudtrail.describe_trails(includeShadowTrails=True))["trailList"]
                checks.append(Check("cloudtrail", True, f"{len(trails)} trail(s) visible in {settings.aws.region}"))
            except (ClientError, BotoCoreError) as exc:
                checks.append(_failed("cloudtrail", str(exc)))
        if account:
            checks.extend(await _check_discovery(clients, settings))
    checks.append(await _check_sink(settings))
    return checks


async def _check_discovery(clients: AwsClients, settings: Settings) -> list[Check]:
    """The pass ``run`` starts with: a line per failed account, "no trails found", then a line per bucket."""
    try:
        found = await discover(clients, settings)
    except IngesterError as exc:
        return [_failed("discovery", str(exc), exc.exit_code)]
    accounts = len(found.organization.accounts)
    checks = [_failed("discovery", f"account {f.account}: {f.reason}") for f in found.failures]
    if not checks:
        checks.append(Check("discovery", True, f"{accounts} account(s) described"))
    if not found.shards and settings.discovery.mode == "bucket":
        where = ", ".join(settings.discovery.log_buckets)
        checks.append(
            _failed("trails", f"no CloudTrail log folder (AWSLogs/...) under {where}", ExitCode.NOTHING_TO_COLLECT)
        )
        return checks
    if not found.shards:
        why = f"; {len(found.failures)} of {accounts} account(s) failed above" if found.failures else ""
        regions = ", ".join(settings.discovery.regions) or "every enabled region"
        checks.append(
            _failed(
                "trails",
                f"no trails found: no CloudTrail trail delivers to S3 in {accounts} account(s), {regions}{why}",
                ExitCode.NOTHING_TO_COLLECT,
            )
        )
        return checks
    trails = len({shard.trail_arn for shard in found.shards.values() if shard.trail_arn})
    source = f"{trails} trail(s)" if trails else "from the bucket layout"
    checks.append(Check("trails", True, f"{source}, {len(found.shards)} shard(s)"))
    # One probe per (bucket, reader account), with the first shard's prefix: a request `run` will make.
    probes: dict[tuple[str, str], Shard] = {}
    for shard_id in sorted(found.shards):
        shard = found.shards[shard_id]
        probes.setdefault((shard.bucket, shard.reader_account), shard)
    limit = asyncio.Semaphore(BUCKET_CONCURRENCY)

    async def probe(shard: Shard) -> Check:
        async with limit:
            return await _check_bucket(clients, shard, settings.bucket_reader(shard.bucket))

    checks.extend(await asyncio.gather(*(probe(probes[key]) for key in sorted(probes))))
    return checks


async def _check_bucket(clients: AwsClients, shard: Shard, role: BucketReaderSettings | None) -> Check:
    """ListObjectsV2 MaxKeys=1 with the client ``run`` reads with (the bucket's [[buckets]] role, else the reader
    account's): NoSuchBucket, AccessDenied, a failed AssumeRole."""
    name = f"bucket {shard.bucket}"
    reader = f"role {role.role_arn}" if role is not None else f"account {shard.reader_account}"
    try:
        s3 = await clients.s3(shard.reader_account, role)
        listed = await s3.list_objects_v2(Bucket=shard.bucket, Prefix=shard.log_prefix, MaxKeys=1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", str(exc))
        return _failed(name, f"{code}: {message} (ListObjectsV2 as {reader}, trail {shard.trail_arn or '-'})")
    except (BotoCoreError, IngesterError) as exc:
        return _failed(name, f"{exc} (ListObjectsV2 as {reader}, trail {shard.trail_arn or '-'})")
    found = "log files found" if listed.get("KeyCount", 0) else "no log file yet"
    return Check(name, True, f"readable as {reader} ({found} under {shard.log_prefix})")


async def _check_sink(settings: Settings) -> Check:
    """Connects a plain (never transactional) sink: a probe must not fence a running exactly-once instance."""
    if settings.sink.type == "file":
        sink: RecordSink = FileSink(Path(settings.sink.file.path), routed_topics=settings.routed_topics())
        name, where = "file sink", settings.sink.file.path
    else:
        sink = KafkaSink(settings.kafka, aws_region=settings.aws.region, routed_topics=settings.routed_topics())
        k = settings.kafka
        name, where = "kafka", f"{k.bootstrap_servers}, topics {k.topic} and {k.dead_letter_topic}"
    try:
        await asyncio.wait_for(sink.start(), settings.kafka.connect_timeout_seconds + 5)
    except (IngesterError, TimeoutError) as exc:
        return Check(name, False, str(exc) or type(exc).__name__, ExitCode.SINK)
    finally:
        await sink.abort()
    return Check(name, True, f"connected: {where}")
