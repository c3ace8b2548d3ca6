"""AWS sessions and clients: one place that knows endpoints, credentials and AssumeRole.

Per account, a session whose credentials are AssumeRole results refreshed by aiobotocore before they expire
(``AioDeferredRefreshableCredentials``), so a long backfill never runs on an expired token. A bucket with a
``[[buckets]]`` reader role is read with that role instead (assumed with the collector's own credentials, never
chained through a member role). S3 clients are long-lived (one connection pool per reader account or role);
control-plane clients are opened per discovery pass.
botocore errors are translated by the modules that make the calls, not here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession
from aiolimiter import AsyncLimiter
from botocore.exceptions import BotoCoreError, ClientError

from ingester.config import AwsSettings, BucketReaderSettings, DiscoverySettings
from ingester.errors import DiscoveryError


class ControlPlaneLimits:
    """Token buckets (aiolimiter) under AWS's control-plane quotas, shared by every client of the process.

    CloudTrail's quota is per account and region, Organizations' per organization (called from one account).
    The bucket is awaited in aiobotocore's ``before-send`` hook, so retries of a throttled call are paced too."""

    def __init__(self, discovery: DiscoverySettings) -> None:
        self._rates = {
            "cloudtrail": discovery.cloudtrail_calls_per_second,
            "organizations": discovery.organizations_calls_per_second,
        }
        self._buckets: dict[tuple[str, str, str], AsyncLimiter] = {}

    def bucket(self, service: str, account_id: str, region: str) -> AsyncLimiter | None:
        rate = self._rates.get(service)
        if rate is None:
            return None
        key = (service, account_id, "" if service == "organizations" else region)
        bucket = self._buckets.get(key)
        if bucket is None:
            # max_rate at least 1: a bucket of capacity 1 refilled every 1/rate seconds for rates below 1.
            bucket = AsyncLimiter(max(rate, 1.0), max(rate, 1.0) / rate)
            self._buckets[key] = bucket
        return bucket


def refresh_margins(session_seconds: int) -> tuple[int, int]:
    """(advisory, mandatory) seconds before expiry at which assumed-role credentials are refreshed."""
    return min(15 * 60, session_seconds // 4), min(10 * 60, session_seconds // 6)


class AwsClients:
    """Owns every AWS client of the process; closed once, at shutdown."""

    def __init__(self, aws: AwsSettings, discovery: DiscoverySettings) -> None:
        self._aws = aws
        self._discovery = discovery
        self._home = aioboto3.Session(profile_name=aws.profile or None, region_name=aws.region)
        self._sessions: dict[str, aioboto3.Session] = {}  # by account id, or by role ARN and external id
        self._long_lived: dict[str, Any] = {}
        self._stack = AsyncExitStack()
        self._home_account = ""
        self._http: aiohttp.ClientSession | None = None
        self._config = AioConfig(
            max_pool_connections=aws.max_pool_connections,
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=60,
        )
        self._control_config = self._config.merge(
            AioConfig(retries={"mode": "standard", "max_attempts": discovery.control_plane_max_attempts})
        )
        self.limits = ControlPlaneLimits(discovery)

    async def __aenter__(self) -> AwsClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def home_account(self) -> str:
        """The account of the default credentials (sts:GetCallerIdentity), cached."""
        if not self._home_account:
            try:
                async with self._client(self._home, "sts", self._aws.region) as sts:
                    self._home_account = (await sts.get_caller_identity())["Account"]
            except (ClientError, BotoCoreError) as exc:
                raise DiscoveryError(f"cannot identify the AWS credentials in use: {exc}") from exc
        return self._home_account

    def session(self, account_id: str) -> aioboto3.Session:
        """The home session for the home account (or the single and bucket modes, which never assume a member
        role), else an AssumeRole session into ``discovery.assume_role_name``, cached."""
        if self._discovery.mode in ("single", "bucket") or account_id in ("", self._home_account):
            return self._home
        role_arn = f"arn:aws:iam::{account_id}:role/{self._discovery.assume_role_name}"
        return self._role_session(account_id, role_arn, self._discovery.external_id, self._aws.region)

    def _role_session(self, cache_key: str, role_arn: str, external_id: str, region: str) -> aioboto3.Session:
        cached = self._sessions.get(cache_key)
        if cached is None:
            cached = self._sessions[cache_key] = self._assumed_session(role_arn, external_id, region)
        return cached

    def _assumed_session(self, role_arn: str, external_id: str, region: str) -> aioboto3.Session:
        async def refresh() -> dict[str, str]:
            params: dict[str, Any] = {
                "RoleArn": role_arn,
                "RoleSessionName": "ingester",
                "DurationSeconds": self._discovery.role_session_seconds,
            }
            if external_id:
                params["ExternalId"] = external_id
            try:
                async with self._client(self._home, "sts", self._aws.region) as sts:
                    creds = (await sts.assume_role(**params))["Credentials"]
            except (ClientError, BotoCoreError) as exc:
                raise DiscoveryError(f"AssumeRole {role_arn} failed: {exc}") from exc
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        core = AioSession()
        credentials = AioDeferredRefreshableCredentials(refresh_using=refresh, method="sts-assume-role")
        # aiobotocore refreshes 15 min (advisory) and 10 min (mandatory) before expiry by default: a 15-minute
        # session would be refreshed on every call (102 AssumeRole calls in 70 s were seen). Scale the margins
        # to the session: refresh once a quarter of it is left, at most those defaults.
        advisory, mandatory = refresh_margins(self._discovery.role_session_seconds)
        credentials._advisory_refresh_timeout = advisory
        credentials._mandatory_refresh_timeout = mandatory
        core._credentials = credentials
        core.set_config_variable("region", region)
        return aioboto3.Session(botocore_session=core, region_name=region)

    def _s3_session(self, account_id: str, reader: BucketReaderSettings | None) -> tuple[aioboto3.Session, str, str]:
        """The session that reads a bucket, its region and its cache key: the bucket's ``[[buckets]]`` reader role
        when it has one, else ``account_id``'s."""
        if reader is None:
            return self.session(account_id), self._aws.region, f"s3/{account_id}/{self._aws.region}"
        region = reader.region or self._aws.region
        key = f"role:{reader.role_arn}#{reader.external_id}"
        return self._role_session(key, reader.role_arn, reader.external_id, region), region, f"s3/{key}/{region}"

    async def s3(self, account_id: str, reader: BucketReaderSettings | None = None) -> Any:
        """Long-lived S3 client for reading a bucket: with its ``[[buckets]]`` reader role when it has one
        (``Settings.bucket_reader``), else with ``account_id``'s credentials."""
        session, region, key = self._s3_session(account_id, reader)
        return await self._kept(key, session, "s3", region)

    async def s3_http(self) -> aiohttp.ClientSession | None:
        """The aiohttp session of direct S3 GETs (``aws.s3_get = "aiohttp"``), shared by every account; None
        when GETs go through aiobotocore. Bodies are not decompressed (a log file's gzip is the decoder's)."""
        if self._aws.s3_get != "aiohttp":
            return None
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=self._aws.max_pool_connections)
            self._http = await self._stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, auto_decompress=False)
            )
        return self._http

    async def credentials(self, account_id: str, reader: BucketReaderSettings | None = None) -> Any:
        """The credentials of the session that reads a bucket (as :meth:`s3` chooses it; refreshed by
        aiobotocore as it is used); None when the chain finds none."""
        return await self._s3_session(account_id, reader)[0].get_credentials()

    async def long_lived(self, service: str, account_id: str, region: str) -> Any:
        """A client kept open until shutdown (S3 reads, SQS receives), one per service, account and region."""
        return await self._kept(f"{service}/{account_id}/{region}", self.session(account_id), service, region)

    async def _kept(self, cache_key: str, session: aioboto3.Session, service: str, region: str) -> Any:
        client = self._long_lived.get(cache_key)
        if client is None:
            client = await self._stack.enter_async_context(self._client(session, service, region))
            self._long_lived[cache_key] = client
        return client

    @asynccontextmanager
    async def client(self, service: str, account_id: str, region: str) -> AsyncIterator[Any]:
        """Short-lived control-plane client (Organizations, CloudTrail, EC2) for one discovery pass, paced by
        the process's token bucket for that service, account and region."""
        session = self.session(account_id)
        async with session.client(
            service, region_name=region, endpoint_url=self._aws.endpoint_url or None, config=self._control_config
        ) as client:
            bucket = self.limits.bucket(service, account_id, region)
            if bucket is not None:

                async def pace(**_: Any) -> None:
                    await bucket.acquire()

                client.meta.events.register("before-send", pace)
            yield client

    def _client(self, session: aioboto3.Session, service: str, region: str) -> Any:
        return session.client(
            service,
            region_name=region,
            endpoint_url=self._aws.endpoint_url or None,
            config=self._config,
        )
