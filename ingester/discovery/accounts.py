"""Accounts to collect: the organization's active accounts, or the single account of the credentials."""

from __future__ import annotations

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ingester.config import DiscoverySettings
from ingester.connect.aws import AwsClients
from ingester.errors import DiscoveryError


class Organization(msgspec.Struct, frozen=True):
    org_id: str
    accounts: tuple[str, ...]


async def list_accounts(clients: AwsClients, settings: DiscoverySettings, region: str) -> Organization:
    home = await clients.home_account()
    excluded = set(settings.exclude_accounts)
    if settings.mode == "single":
        return Organization("", (home,))
    accounts: list[str] = []
    try:
        async with clients.client("organizations", home, region) as org:
            org_id = (await org.describe_organization())["Organization"]["Id"]
            async for page in org.get_paginator("list_accounts").paginate():
                accounts.extend(a["Id"] for a in page.get("Accounts", ()) if a.get("Status") == "ACTIVE")
    except (ClientError, BotoCoreError) as exc:
        raise DiscoveryError(f"organizations:ListAccounts from {home} failed: {exc}") from exc
    return Organization(org_id, tuple(sorted(a for a in accounts if a not in excluded)))
