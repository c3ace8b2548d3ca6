"""Trails -> shards. The pure part (:func:`shards_for`) decides; the async part only asks AWS.

DescribeTrails is called in every region with ``includeShadowTrails`` (a single-region trail is visible only in
its home region; a multi-region or organization trail appears in every region and in every member account as
a shadow). Trails are de-duplicated by ARN, and shards by log location, so each prefix is collected once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ingester.connect.aws import AwsClients
from ingester.errors import DiscoveryError
from ingester.models import Shard


class Trail(msgspec.Struct, frozen=True, kw_only=True):
    arn: str
    name: str
    home_region: str
    bucket: str
    key_prefix: str
    multi_region: bool
    organization: bool
    log_validation: bool = False

    @property
    def owner_account(self) -> str:
        """arn:aws:cloudtrail:<region>:<account>:trail/<name>"""
        parts = self.arn.split(":")
        return parts[4] if len(parts) > 4 else ""


def trail_from_api(item: dict[str, object]) -> Trail | None:
    """One DescribeTrails entry; None for a trail that does not deliver to S3 (none exist today, but be safe)."""
    bucket = item.get("S3BucketName")
    if not isinstance(bucket, str) or not bucket:
        return None
    return Trail(
        arn=str(item.get("TrailARN", "")),
        name=str(item.get("Name", "")),
        home_region=str(item.get("HomeRegion", "")),
        bucket=bucket,
        key_prefix=str(item.get("S3KeyPrefix") or "").strip("/"),
        multi_region=bool(item.get("IsMultiRegionTrail", False)),
        organization=bool(item.get("IsOrganizationTrail", False)),
        log_validation=bool(item.get("LogFileValidationEnabled", False)),
    )


def shards_for(
    trails: Iterable[Trail], *, accounts: Sequence[str], org_id: str, regions: Sequence[str]
) -> dict[str, Shard]:
    """Every (trail, account, region) log prefix, keyed by shard id; first trail (by ARN) wins a location."""
    shards: dict[str, Shard] = {}
    unique = {trail.arn: trail for trail in trails}
    for arn in sorted(unique):
        trail = unique[arn]
        owners = accounts if trail.organization else [trail.owner_account]
        trail_regions = regions if trail.multi_region else [trail.home_region]
        for account in owners:
            for region in trail_regions:
                shard = Shard(
                    trail_arn=trail.arn,
                    bucket=trail.bucket,
                    key_prefix=trail.key_prefix,
                    org_id=org_id if trail.organization else "",
                    account_id=account,
                    region=region,
                    reader_account=trail.owner_account,
                    log_validation=trail.log_validation,
                )
                shards.setdefault(shard.shard_id, shard)
    return shards


async def enabled_regions(clients: AwsClients, account: str, region: str) -> list[str]:
    try:
        async with clients.client("ec2", account, region) as ec2:
            response = await ec2.describe_regions(AllRegions=False)
    except (ClientError, BotoCoreError) as exc:
        raise DiscoveryError(f"ec2:DescribeRegions in {account} failed: {exc}") from exc
    return sorted(item["RegionName"] for item in response.get("Regions", ()))


async def describe_trails(clients: AwsClients, account: str, regions: Sequence[str]) -> list[Trail]:
    trails: list[Trail] = []
    for region in regions:
        try:
            async with clients.client("cloudtrail", account, region) as cloudtrail:
                response = await cloudtrail.describe_trails(includeShadowTrails=True)
        except (ClientError, BotoCoreError) as exc:
            raise DiscoveryError(f"cloudtrail:DescribeTrails in {account}/{region} failed: {exc}") from exc
        for item in response.get("trailList", ()):
            trail = trail_from_api(item)
            if trail is not None:
                trails.append(trail)
    return trails
