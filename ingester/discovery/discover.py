"""One discovery pass: accounts -> trails (per region) -> shards, with bounded concurrency across accounts; or,
in the bucket mode, the shards read from the buckets' layout (discovery/layout.py).

A failure in one member account (role missing, SCP denies) is reported and that account is skipped for this
pass; it does not stop discovery of the others. Its existing shards keep running (see runtime.reconcile).
The pass keeps each failure's reason, so ``discover`` and ``check-config`` can say why per account.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable

import botocore.session
import msgspec
import structlog

from ingester.config import Settings
from ingester.connect.aws import AwsClients
from ingester.discovery.accounts import Organization, list_accounts
from ingester.discovery.layout import list_layout, locations, shards_from_layout
from ingester.discovery.trails import Trail, describe_trails, enabled_regions, shards_for
from ingester.errors import DiscoveryError
from ingester.models import Shard

log = structlog.get_logger("ingester.discovery")

# Accounts described at once: CloudTrail's control plane allows ~10 TPS per account and region.
ACCOUNT_CONCURRENCY = 8


class AccountFailure(msgspec.Struct, frozen=True):
    # The account id; in the bucket mode, the location that could not be listed (``s3://bucket/[prefix/]AWSLogs/``).
    account: str
    # The DiscoveryError's message (which call failed, where, and AWS's answer).
    reason: str


class Discovery(msgspec.Struct, frozen=True):
    organization: Organization
    trails: tuple[Trail, ...]
    shards: dict[str, Shard]
    failures: tuple[AccountFailure, ...]  # by account id

    @property
    def failed_accounts(self) -> tuple[str, ...]:
        return tuple(failure.account for failure in self.failures)


@functools.cache
def known_regions() -> frozenset[str]:
    """CloudTrail's regions in every partition of the installed botocore (moto serves exactly these).

    A hint, not a gate, for the collector: a region newer than this botocore still has an endpoint."""
    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("cloudtrail", partition_name=partition)
    )


def unknown_regions(regions: Iterable[str]) -> list[str]:
    known = known_regions()
    return [region for region in regions if region not in known]


def trails_to_describe(org: Organization, settings: Settings) -> tuple[str, ...]:
    """The accounts whose own trails are looked for (an AssumeRole each): all but those configured to be collected
    from organization trails only (a delegated administrator's management account, where no role is deployed)."""
    skipped = set(settings.discovery.organization_trail_only_accounts)
    return tuple(account for account in org.accounts if account not in skipped)


async def discover(clients: AwsClients, settings: Settings) -> Discovery:
    if settings.discovery.mode == "bucket":
        return await discover_layout(clients, settings)
    org = await list_accounts(clients, settings.discovery, settings.aws.region)
    home = await clients.home_account()
    regions = list(settings.discovery.regions) or await enabled_regions(clients, home, settings.aws.region)
    limit = asyncio.Semaphore(ACCOUNT_CONCURRENCY)
    found: dict[str, list[Trail]] = {}
    failed: list[AccountFailure] = []

    async def one(account: str) -> None:
        async with limit:
            try:
                found[account] = await describe_trails(clients, account, regions)
            except DiscoveryError as exc:
                failed.append(AccountFailure(account, await _with_hint(str(exc), regions)))
                log.warning("discovery_account_failed", account=account, error=str(exc))

    async with asyncio.TaskGroup() as group:
        for account in trails_to_describe(org, settings):
            group.create_task(one(account), name=f"discover-{account}")
    trails = tuple(trail for account in org.accounts for trail in found.get(account, ()))
    shards = shards_for(trails, accounts=org.accounts, org_id=org.org_id, regions=regions)
    return Discovery(org, trails, shards, tuple(sorted(failed, key=lambda failure: failure.account)))


async def discover_layout(clients: AwsClients, settings: Settings) -> Discovery:
    """The bucket mode's pass: each location listed on its own (a failed one is reported, the others count); the
    shards are read with the collector's credentials, or the bucket's ``[[buckets]]`` role."""
    d = settings.discovery
    home = await clients.home_account()
    shards: dict[str, Shard] = {}
    failed: list[AccountFailure] = []
    for location in locations(settings):
        try:
            prefixes = await list_layout(clients, settings, location)
        except DiscoveryError as exc:
            failed.append(AccountFailure(location.url, str(exc)))
            log.warning("discovery_location_failed", location=location.url, error=str(exc))
            continue
        found = shards_from_layout(
            location, prefixes, reader_account=home, regions=d.regions, exclude_accounts=d.exclude_accounts
        )
        for shard_id, shard in found.items():
            shards.setdefault(shard_id, shard)
    if failed and len(failed) == len(d.log_buckets):
        raise DiscoveryError("; ".join(failure.reason for failure in failed))
    org_ids = sorted({shard.org_id for shard in shards.values() if shard.org_id})
    accounts = tuple(sorted({shard.account_id for shard in shards.values()}))
    return Discovery(Organization(",".join(org_ids), accounts), (), shards, tuple(failed))


async def _with_hint(reason: str, regions: list[str]) -> str:
    """A misspelt region fails as an unreachable endpoint (or moto's 500): name the likely cause."""
    known = await asyncio.to_thread(known_regions)  # botocore reads its endpoint data from disk (once: cached)
    unknown = [region for region in regions if region not in known]
    return f"not a region botocore knows: {', '.join(unknown)}; {reason}" if unknown else reason
