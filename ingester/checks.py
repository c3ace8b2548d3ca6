"""``ingester check-config``: is the configuration valid, and can this process reach what it needs?

Each check is one line: what was checked, ok or the reason it failed. They run in order and each one that
fails does not stop the next (a wrong Kafka address and a missing IAM permission are both worth seeing at once).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ingester.aws import AwsClients
from ingester.config import Settings
from ingester.errors import IngesterError
from ingester.sinks import RecordSink
from ingester.sinks.file import FileSink
from ingester.sinks.kafka import KafkaSink


class Check(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    async with AwsClients(settings.aws, settings.discovery) as clients:
        try:
            account = await clients.home_account()
            checks.append(Check("aws credentials", True, f"account {account}"))
        except IngesterError as exc:
            checks.append(Check("aws credentials", False, str(exc)))
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
                checks.append(Check("organizations", False, str(exc)))
        if account:
            try:
                async with clients.client("cloudtrail", account, settings.aws.region) as cloudtrail:
                    trails = (await cloudtrail.describe_trails(includeShadowTrails=True))["trailList"]
                checks.append(Check("cloudtrail", True, f"{len(trails)} trail(s) visible in {settings.aws.region}"))
            except (ClientError, BotoCoreError) as exc:
                checks.append(Check("cloudtrail", False, str(exc)))
    checks.append(await _check_sink(settings))
    return checks


async def _check_sink(settings: Settings) -> Check:
    """Connects a plain (never transactional) sink: a probe must not fence a running exactly-once instance."""
    if settings.sink.type == "file":
        sink: RecordSink = FileSink(Path(settings.sink.file.path))
        name, where = "file sink", settings.sink.file.path
    else:
        sink = KafkaSink(settings.kafka, aws_region=settings.aws.region)
        k = settings.kafka
        name, where = "kafka", f"{k.bootstrap_servers}, topics {k.topic} and {k.dead_letter_topic}"
    try:
        await asyncio.wait_for(sink.start(), settings.kafka.connect_timeout_seconds + 5)
    except (IngesterError, TimeoutError) as exc:
        return Check(name, False, str(exc) or type(exc).__name__)
    finally:
        await sink.abort()
    return Check(name, True, f"connected: {where}")
