"""Bucket-only discovery (``discovery.mode = "bucket"``): the shards are read from where the logs are.

For a reader of the log-archive bucket that has no Organizations or CloudTrail rights: CloudTrail writes every
account's and region's files under ``[prefix/]AWSLogs/[o-id/]<account>/CloudTrail/<region>/``, so delimiter
listings of that tree name every shard, and a ``CloudTrail-Digest/<region>/`` sibling says the trail has log file
validation. Only s3:ListBucket is used here. The pure part (:func:`shards_from_layout`) decides; the async part
lists, about two LISTs per account and pass (``CloudTrail/`` and ``CloudTrail-Digest/``), so a new account or
region shows up on the next pass by itself.

A location that cannot be listed (missing bucket, denied role) is a failure of that location, not of the pass:
it is reported as ``s3://bucket/prefix/`` and its running shards keep running (pipeline/supervisor.keep_failed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence

import msgspec

from ingester.config import Settings, log_location
from ingester.connect.aws import AwsClients
from ingester.errors import DiscoveryError, SourceError
from ingester.models import Shard
from ingester.sources.s3 import S3Source

# Delimiter listings in flight per location: S3 allows thousands of LISTs per second and prefix; this keeps a
# thousand-account bucket's pass to a few seconds without a burst of a thousand requests.
LIST_CONCURRENCY = 16

_ORG = re.compile(r"o-[a-z0-9]{10,32}")
_ACCOUNT = re.compile(r"\d{12}")
# One folder under AWSLogs/: an organization id (an organization trail) or an account id (an account trail).
_LOG_FOLDER = re.compile(
    r"(?:(?P<org>o-[a-z0-9]{10,32})/)?(?P<account>\d{12})/"
    r"(?P<kind>CloudTrail|CloudTrail-Digest)/(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)/"
)


class Location(msgspec.Struct, frozen=True):
    """One configured place trails deliver to: a bucket and the trails' S3KeyPrefix ("" for none)."""

    bucket: str
    key_prefix: str

    @property
    def logs_root(self) -> str:
        return f"{self.key_prefix}/AWSLogs/" if self.key_prefix else "AWSLogs/"

    @property
    def url(self) -> str:
        """How a failed location is reported, and the prefix of every shard id it yields."""
        return f"s3://{self.bucket}/{self.logs_root}"


def locations(settings: Settings) -> list[Location]:
    return [Location(*log_location(entry)) for entry in settings.discovery.log_buckets]


def account_folders(root: str, common_prefixes: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split the folders listed under ``AWSLogs/`` into (organization folders, account folders); anything else
    (``AWSLogs/readme/``, a Config or ELB folder of another account layout) is not CloudTrail's and is ignored."""
    orgs: list[str] = []
    accounts: list[str] = []
    for prefix in common_prefixes:
        name = prefix.removeprefix(root).rstrip("/")
        if _ORG.fullmatch(name):
            orgs.append(prefix)
        elif _ACCOUNT.fullmatch(name):
            accounts.append(prefix)
    return sorted(orgs), sorted(accounts)


def shards_from_layout(
    location: Location,
    region_prefixes: Iterable[str],
    *,
    reader_account: str,
    regions: Sequence[str] = (),
    exclude_accounts: Sequence[str] = (),
) -> dict[str, Shard]:
    """The shards of a location from its region folders (``.../<account>/CloudTrail/<region>/`` and
    ``.../<account>/CloudTrail-Digest/<region>/``), keyed by shard id.

    A shard has log file validation when its digest sibling exists. A digest folder without a log folder yields
    no shard (nothing to collect yet). ``regions`` (when not empty) and ``exclude_accounts`` filter as they do in
    the organization mode. The trail is unknown here, so ``trail_arn`` is empty; the shard id (where the logs
    are) is the same as the organization mode gives, so switching modes keeps the checkpoints."""
    root = location.logs_root
    logs: dict[tuple[str, str, str], None] = {}
    digests: set[tuple[str, str, str]] = set()
    for prefix in region_prefixes:
        match = _LOG_FOLDER.fullmatch(prefix.removeprefix(root)) if prefix.startswith(root) else None
        if match is None:
            continue
        where = (match["org"] or "", match["account"], match["region"])
        if where[1] in exclude_accounts or (regions and where[2] not in regions):
            continue
        if match["kind"] == "CloudTrail":
            logs[where] = None
        else:
            digests.add(where)
    shards: dict[str, Shard] = {}
    for org_id, account, region in sorted(logs):
        shard = Shard(
            trail_arn="",
            bucket=location.bucket,
            key_prefix=location.key_prefix,
            org_id=org_id,
            account_id=account,
            region=region,
            reader_account=reader_account,
            log_validation=(org_id, account, region) in digests,
        )
        shards[shard.shard_id] = shard
    return shards


async def list_layout(clients: AwsClients, settings: Settings, location: Location) -> list[str]:
    """Every region folder of the location (``.../CloudTrail/<region>/`` and ``.../CloudTrail-Digest/<region>/``),
    read with the bucket's reader role when it has one."""
    home = await clients.home_account()
    try:
        source = S3Source(await clients.s3(home, settings.bucket_reader(location.bucket)), location.bucket)
        orgs, accounts = account_folders(location.logs_root, await source.child_prefixes(location.logs_root))
        limit = asyncio.Semaphore(LIST_CONCURRENCY)

        async def children(prefix: str) -> list[str]:
            async with limit:
                return await source.child_prefixes(prefix)

        async with asyncio.TaskGroup() as group:
            members = [group.create_task(children(org)) for org in orgs]
        for org, task in zip(orgs, members, strict=True):
            accounts.extend(account_folders(org, task.result())[1])
        async with asyncio.TaskGroup() as group:
            folders = [
                group.create_task(children(f"{account}{kind}/"))
                for account in accounts
                for kind in ("CloudTrail", "CloudTrail-Digest")
            ]
    except* (SourceError, DiscoveryError) as group_error:
        first = group_error.exceptions[0]
        raise DiscoveryError(f"listing {location.url} failed: {first}") from first
    return [prefix for task in folders for prefix in task.result()]
