"""One discovery pass: accounts -> trails (per region) -> shards, with bounded concurrency across accounts.

A failure in one member account (role missing, SCP denies) is reported and that account is skipped for this
pass; it does not stop discovery of the others. Its existing shards keep running (see runtime.reconcile).
"""

from __future__ import annotations

import asyncio

import msgspec
import structlog

from ingester.aws import AwsClients
from ingester.config import Settings
from ingester.discovery.accounts import Organization, list_accounts
from ingester.discovery.trails import Trail, describe_trails, enabled_regions, shards_for
from ingester.errors import DiscoveryError
from ingester.models import Shard

log = structlog.get_logger("ingester.discovery")

# Accounts described at once: CloudTrail's control plane allows ~10 TPS per account and region.
ACCOUNT_CONCURRENCY = 8


class Discovery(msgspec.Struct, frozen=True):
    organization: Organization
    trails: tuple[Trail, ...]
    shards: dict[str, Shard]
    failed_accounts: tuple[str, ...]


async def discover(clients: AwsClients, settings: Settings) -> Discovery:
    org = await list_accounts(clients, settings.discovery, settings.aws.region)
    home = await clients.home_account()
    regions = list(settings.discovery.regions) or await enabled_regions(clients, home, settings.aws.region)
    limit = asyncio.Semaphore(ACCOUNT_CONCURRENCY)
    found: dict[str, list[Trail]] = {}
    failed: list[str] = []

    async def one(account: str) -> None:
        async with limit:
            try:
                found[account] = await describe_trails(clients, account, regions)
            except DiscoveryError as exc:
                failed.append(account)
                log.warning("discovery_account_failed", account=account, error=str(exc))

    async with asyncio.TaskGroup() as group:
        for account in org.accounts:
            group.create_task(one(account), name=f"discover-{account}")
    trails = tuple(trail for account in org.accounts for trail in found.get(account, ()))
    shards = shards_for(trails, accounts=org.accounts, org_id=org.org_id, regions=regions)
    return Discovery(org, trails, shards, tuple(sorted(failed)))
