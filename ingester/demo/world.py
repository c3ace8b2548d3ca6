"""A generated AWS Organization inside an S3/STS/Organizations/CloudTrail endpoint (moto's server).

Used by ``ingester demo``, the integration tests and the benchmarks: the management account creates the
organization, member accounts, a log-archive bucket and a multi-region *organization trail*, then the
generated log files of every account and region are uploaded where CloudTrail would put them. The builder uses
plain boto3 (set-up code, synchronous on purpose); ingester itself reads it back through aioboto3 over HTTP.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
import orjson

from ingester.demo.digests import DigestWriter
from ingester.demo.generate import generate_files
from ingester.sources.keys import key_time

DEMO_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TRAIL_REGION = "us-east-1"


@dataclass
class World:
    endpoint: str
    org_id: str
    management_account: str
    accounts: list[str]
    regions: tuple[str, ...]
    bucket: str
    trail_arn: str
    files: int = 0
    records: int = 0
    digests: int = 0
    keys: list[str] = field(default_factory=list)
    # "<recipient account>:<eventID>" of every uploaded record, when asked for (tests compare against it).
    event_ids: list[str] = field(default_factory=list)


def client(endpoint: str, service: str, region: str = TRAIL_REGION, **credentials: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=endpoint, **(credentials or DEMO_CREDENTIALS))


def member_credentials(endpoint: str, account: str, role: str = "OrganizationAccountAccessRole") -> dict[str, str]:
    """AssumeRole into a member account, as ingester does (moto scopes later calls to that account)."""
    creds = client(endpoint, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="demo-setup"
    )["Credentials"]
    return {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


def build_organization(
    endpoint: str, *, members: int, bucket: str = "org-cloudtrail-archive", log_validation: bool = False
) -> World:
    """Organization + members + bucket + organization trail (with log file validation, on request); no log
    files yet."""
    org = client(endpoint, "organizations")
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    management = client(endpoint, "sts").get_caller_identity()["Account"]
    accounts = [management]
    for n in range(members):
        status = org.create_account(Email=f"member{n}@example.com", AccountName=f"member-{n}")
        accounts.append(status["CreateAccountStatus"]["AccountId"])
    client(endpoint, "s3").create_bucket(Bucket=bucket)
    trail = client(endpoint, "cloudtrail").create_trail(
        Name="org-trail",
        S3BucketName=bucket,
        IsMultiRegionTrail=True,
        IsOrganizationTrail=True,
        EnableLogFileValidation=log_validation,
    )
    return World(endpoint, org_id, management, sorted(accounts), (), bucket, trail["TrailARN"])


def upload_logs(
    world: World,
    *,
    accounts: Sequence[str],
    regions: Sequence[str],
    start: datetime,
    days: int,
    seed: int = 7,
    files_per_hour: int = 12,
    records_per_file: tuple[int, int] = (1, 200),
    bucket: str | None = None,
    org_id: str | None = None,
    collect_ids: bool = False,
    digests: DigestWriter | None = None,
) -> list[str]:
    """Upload generated files; returns their keys and adds to the world's counts. With ``digests``, also one
    signed digest per account, region and hour, as a trail with log file validation gets."""
    s3 = client(world.endpoint, "s3")
    keys: list[str] = []
    hours: dict[tuple[str, str, datetime], list[tuple[str, bytes]]] = {}
    for generated in generate_files(
        seed,
        accounts,
        regions,
        start,
        days,
        files_per_hour=files_per_hour,
        records_per_file=records_per_file,
        org_id=world.org_id if org_id is None else (org_id or None),
    ):
        s3.put_object(Bucket=bucket or world.bucket, Key=generated.key, Body=generated.body)
        keys.append(generated.key)
        if collect_ids:
            records = orjson.loads(gzip.decompress(generated.body))["Records"]
            world.event_ids.extend(f"{r['recipientAccountId']}:{r['eventID']}" for r in records)
        world.files += 1
        world.records += generated.record_count
        if digests is not None:
            parts = generated.key.split("/")  # [prefix/]AWSLogs/[o-id/]<account>/CloudTrail/<region>/...
            at = parts.index("CloudTrail")
            account, region = parts[at - 1], parts[at + 1]
            when = key_time(generated.key)
            assert when is not None
            hours.setdefault((account, region, when.replace(minute=0)), []).append((generated.key, generated.body))
    for (account, region, hour), files in sorted(hours.items()):
        assert digests is not None
        digest = digests.digest(account, region, hour + timedelta(hours=1), files)
        s3.put_object(Bucket=bucket or world.bucket, Key=digest.key, Body=digest.body, Metadata=digest.metadata)
        world.digests += 1
    world.keys.extend(keys)
    world.regions = tuple(sorted(set(world.regions) | set(regions)))
    return keys


def add_account_trail(world: World, account: str, *, name: str, bucket: str, region: str = TRAIL_REGION) -> str:
    """A member account's own single-region trail with its own bucket (for 'a trail appears' tests)."""
    creds = member_credentials(world.endpoint, account)
    client(world.endpoint, "s3", region, **creds).create_bucket(Bucket=bucket)
    trail = client(world.endpoint, "cloudtrail", region, **creds).create_trail(Name=name, S3BucketName=bucket)
    arn: str = trail["TrailARN"]
    return arn
