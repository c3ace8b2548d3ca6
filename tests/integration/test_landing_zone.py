"""Landing zones (issue 15) against moto's HTTP server, with the file sink (no broker needed):

- bucket-only discovery: an organization trail's layout and a plain layout under a key prefix are collected
  without one Organizations or CloudTrail call; a digest sibling turns log file validation on; an account that
  starts delivering while the collector runs is picked up by the next pass;
- a bucket readable only by a log-archive reader role (the proxy plays the bucket policy moto does not enforce):
  organization mode discovers with the collector's own credentials and reads, SSE-KMS objects included, with the
  [[buckets]] role; the bucket mode lists and reads through a "*" entry;
- a delegated administrator's management account (played by a member whose role is denied) named in
  discovery.organization_trail_only_accounts: not described, yet its organization-trail events are collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from ingester import config as config_mod
from ingester.cli.checks import run_checks
from ingester.connect.aws import AwsClients
from ingester.demo.generate import GeneratedFile, generate_files
from ingester.demo.world import build_organization, client, member_credentials
from ingester.discovery.discover import discover
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.fault_proxy import FaultProxy, sts_assume
from tests.integration.test_pipeline import START, wait_until

pytestmark = pytest.mark.integration

ORG_ID = "o-lz4test0001"
ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ("us-east-1", "eu-west-1")
READER_ROLE = "ingester-log-archive-read"


def files(
    accounts: Sequence[str], regions: Sequence[str], *, org_id: str = "", seed: int = 15
) -> Iterator[GeneratedFile]:
    """One day of one file per hour, 1-5 records each: small, so a run takes seconds."""
    yield from generate_files(
        seed, accounts, regions, START, 1, files_per_hour=1, records_per_file=(1, 5), org_id=org_id or None
    )


def upload(
    endpoint: str,
    bucket: str,
    generated: Iterator[GeneratedFile],
    *,
    prefix: str = "",
    credentials: dict[str, str] | None = None,
    **put: Any,
) -> list[str]:
    """Put the files under ``[prefix/]``; their "<recipient account>:<eventID>"s."""
    s3 = client(endpoint, "s3", **(credentials or {}))
    ids: list[str] = []
    for file in generated:
        key = f"{prefix}/{file.key}" if prefix else file.key
        s3.put_object(Bucket=bucket, Key=key, Body=file.body, **put)
        ids.extend(ids_of(file))
    return ids


def ids_of(file: GeneratedFile) -> list[str]:
    import gzip

    return [f"{r['recipientAccountId']}:{r['eventID']}" for r in orjson.loads(gzip.decompress(file.body))["Records"]]


def collected(path: Path) -> list[str]:
    """The file sink's records (format raw: the original record, byte for byte)."""
    if not path.exists():
        return []
    records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return [f"{r['recipientAccountId']}:{r['eventID']}" for r in records]


def lz_settings(endpoint: str, tmp_path: Path, discovery: dict[str, Any], **sections: Any) -> Any:
    return config_mod.build(
        {
            "aws": {"endpoint_url": endpoint},
            "discovery": {"regions": list(REGIONS), "interval_seconds": 1, **discovery},
            "collection": {"start_time": START.isoformat(), "poll_interval_seconds": 1, "max_poll_interval_seconds": 1},
            "sink": {"type": "file", "format": "raw", "file": {"path": str(tmp_path / "events.ndjson")}},
            "checkpoint": {"path": str(tmp_path / "checkpoints.sqlite")},
            # Digests are found, but moto has no ListPublicKeys: reconcile without signature checks.
            "integrity": {"mode": "off"},
            **sections,
        }
    )


def control_plane(proxy: FaultProxy) -> list[str]:
    """Organizations, CloudTrail and EC2 operations the proxy forwarded."""
    return [
        seen.operation
        for seen in proxy.seen
        if seen.operation.startswith(("AWSOrganizations", "com.amazonaws.cloudtrail", "CloudTrail"))
        or seen.operation == "DescribeRegions"
    ]


async def started_proxy(endpoint: str) -> FaultProxy:
    proxy = FaultProxy(endpoint)
    await proxy.start()
    return proxy


async def test_bucket_mode_collects_an_organization_trail_layout_without_control_plane_calls(
    aws_endpoint: str, tmp_path: Path
) -> None:
    """No organization, no trail exists in moto: only the bucket's layout says what to collect."""
    client(aws_endpoint, "s3").create_bucket(Bucket="org-archive")
    expected = upload(aws_endpoint, "org-archive", files(ACCOUNTS, REGIONS, org_id=ORG_ID))
    digest = f"AWSLogs/{ORG_ID}/{ACCOUNTS[0]}/CloudTrail-Digest/us-east-1/2020/01/01/x.json.gz"
    client(aws_endpoint, "s3").put_object(Bucket="org-archive", Key=digest, Body=b"{}")
    proxy = await started_proxy(aws_endpoint)
    try:
        settings = lz_settings(proxy.endpoint, tmp_path, {"mode": "bucket", "log_buckets": ["org-archive"]})
        async with AwsClients(settings.aws, settings.discovery) as clients:
            found = await discover(clients, settings)
        assert found.organization.org_id == ORG_ID and found.organization.accounts == ACCOUNTS
        assert {(s.account_id, s.region): s.log_validation for s in found.shards.values()} == {
            (ACCOUNTS[0], "us-east-1"): True,
            (ACCOUNTS[0], "eu-west-1"): False,
            (ACCOUNTS[1], "us-east-1"): False,
            (ACCOUNTS[1], "eu-west-1"): False,
        }
        await run(settings, stop=asyncio.Event(), once=True)
    finally:
        await proxy.stop()
    assert sorted(collected(tmp_path / "events.ndjson")) == sorted(expected)
    assert control_plane(proxy) == []


async def test_bucket_mode_plain_layout_under_a_prefix_picks_up_a_new_account_while_running(
    aws_endpoint: str, tmp_path: Path
) -> None:
    client(aws_endpoint, "s3").create_bucket(Bucket="team-trails")
    first = upload(aws_endpoint, "team-trails", files(ACCOUNTS[:1], REGIONS), prefix="security/ct")
    settings = lz_settings(aws_endpoint, tmp_path, {"mode": "bucket", "log_buckets": ["team-trails/security/ct/"]})
    out, stop, telemetry = tmp_path / "events.ndjson", asyncio.Event(), Telemetry()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=telemetry))
    try:
        await wait_until(lambda: len(collected(out)) >= len(first), "the first account's events")
        later = upload(aws_endpoint, "team-trails", files(ACCOUNTS[1:], ["eu-west-1"]), prefix="security/ct")
        await wait_until(lambda: len(collected(out)) >= len(first) + len(later), "the new account's events")
    finally:
        stop.set()
        await running
    assert sorted(collected(out)) == sorted(first + later)


def log_archive(endpoint: str, *, kms: bool) -> tuple[Any, str, str, list[str]]:
    """An organization whose trail delivers to a bucket of its log-archive member account: (world, log-archive
    account, reader role ARN, event ids). With ``kms``, half of the files are SSE-KMS encrypted."""
    world = build_organization(endpoint, members=2, bucket="lz-log-archive")
    archive = next(account for account in world.accounts if account != world.management_account)
    creds = member_credentials(endpoint, archive)
    ids: list[str] = []
    generated = list(files(world.accounts, ["us-east-1"], org_id=world.org_id))
    if kms:
        key = client(endpoint, "kms", **creds).create_key()["KeyMetadata"]["Arn"]
        encrypted = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}
        ids += upload(endpoint, world.bucket, iter(generated[::2]), credentials=creds, **encrypted)
        ids += upload(endpoint, world.bucket, iter(generated[1::2]), credentials=creds)
    else:
        ids += upload(endpoint, world.bucket, iter(generated), credentials=creds)
    return world, archive, f"arn:aws:iam::{archive}:role/{READER_ROLE}", ids


async def test_organization_mode_reads_a_log_archive_bucket_only_through_its_reader_role(
    aws_endpoint: str, tmp_path: Path
) -> None:
    world, _, role, expected = log_archive(aws_endpoint, kms=True)
    proxy = await started_proxy(aws_endpoint)
    proxy.only_role(world.bucket, role)
    try:
        # The proxy plays the bucket policy: the collector's own credentials are refused.
        refused = client(proxy.endpoint, "s3")  # sync boto3: in a thread, the proxy serves from this loop
        with pytest.raises(ClientError, match=r"AccessDenied|Forbidden"):
            await asyncio.to_thread(refused.list_objects_v2, Bucket=world.bucket)
        proxy.seen.clear()
        reader = {"name": world.bucket, "role_arn": role, "external_id": "lz-15", "region": "us-east-1"}
        settings = lz_settings(
            proxy.endpoint, tmp_path, {"mode": "organization", "regions": ["us-east-1"]}, buckets=[reader]
        )
        await run(settings, stop=asyncio.Event(), once=True)
    finally:
        await proxy.stop()
    assert sorted(collected(tmp_path / "events.ndjson")) == sorted(expected)
    assert proxy.role_keys[role], "the reader role was assumed"
    s3_requests = [seen for seen in proxy.seen if seen.path.startswith(f"/{world.bucket}")]
    assert s3_requests and {seen.access_key for seen in s3_requests} <= proxy.role_keys[role]
    # Discovery kept its own credentials (the collector's, and the member roles'): never the reader role's.
    describe = {seen.access_key for seen in proxy.seen if seen.operation.endswith("DescribeTrails")}
    assert "testing" in describe and not describe & proxy.role_keys[role]


async def test_bucket_mode_lists_and_reads_through_a_wildcard_reader_role(aws_endpoint: str, tmp_path: Path) -> None:
    world, _, role, expected = log_archive(aws_endpoint, kms=False)
    proxy = await started_proxy(aws_endpoint)
    proxy.only_role(world.bucket, role)
    try:
        settings = lz_settings(
            proxy.endpoint,
            tmp_path,
            {"mode": "bucket", "log_buckets": [world.bucket], "regions": []},
            buckets=[{"name": "*", "role_arn": role}],
        )
        checks = {check.name: check for check in await run_checks(settings)}
        await run(settings, stop=asyncio.Event(), once=True)
    finally:
        await proxy.stop()
    assert sorted(collected(tmp_path / "events.ndjson")) == sorted(expected)
    assert control_plane(proxy) == []
    s3_requests = [seen for seen in proxy.seen if seen.path.startswith(f"/{world.bucket}")]
    assert s3_requests and {seen.access_key for seen in s3_requests} <= proxy.role_keys[role]
    # check-config probes the bucket as run reads it, and asks nothing of CloudTrail.
    assert all(check.ok for check in checks.values()), checks
    assert "cloudtrail" not in checks and f"role {role}" in checks[f"bucket {world.bucket}"].detail


async def test_an_organization_trail_only_account_is_not_described_and_still_collected(
    aws_endpoint: str, tmp_path: Path
) -> None:
    """From a delegated administrator the management account usually has no read role: named in
    organization_trail_only_accounts, it is neither assumed into nor a failure, and its organization-trail events
    are collected. A member whose AssumeRole is denied plays it (in moto the collector is the management account)."""
    world = build_organization(aws_endpoint, members=2)
    expected = upload(aws_endpoint, world.bucket, files(world.accounts, ["us-east-1"], org_id=world.org_id))
    no_role = next(account for account in world.accounts if account != world.management_account)
    proxy = await started_proxy(aws_endpoint)
    deny = sts_assume(no_role)
    proxy.faults = [deny]
    try:
        discovery = {"mode": "organization", "regions": ["us-east-1"], "organization_trail_only_accounts": [no_role]}
        settings = lz_settings(proxy.endpoint, tmp_path, discovery)
        async with AwsClients(settings.aws, settings.discovery) as clients:
            found = await discover(clients, settings)
        assert found.failures == () and no_role in found.organization.accounts
        assert no_role in {shard.account_id for shard in found.shards.values()}
        await run(settings, stop=asyncio.Event(), once=True)
    finally:
        await proxy.stop()
    assert deny.hits == 0, "no AssumeRole into the organization-trail-only account"
    assert sorted(collected(tmp_path / "events.ndjson")) == sorted(expected)
