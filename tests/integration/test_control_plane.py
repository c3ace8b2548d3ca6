"""AWS control-plane pacing against moto's HTTP server: the token bucket is awaited before every CloudTrail call
of the process (retries included), per account and region; Organizations is paced per organization."""

from __future__ import annotations

import asyncio
import time

import pytest

from ingester import config as config_mod
from ingester.connect.aws import AwsClients

pytestmark = pytest.mark.integration


async def test_cloudtrail_calls_are_paced_per_account_and_region(aws_endpoint: str) -> None:
    settings = config_mod.build(
        {"aws": {"endpoint_url": aws_endpoint}, "discovery": {"cloudtrail_calls_per_second": 4}}
    )
    async with AwsClients(settings.aws, settings.discovery) as clients:
        home = await clients.home_account()

        async def describe(region: str) -> float:
            async with clients.client("cloudtrail", home, region) as cloudtrail:
                await cloudtrail.describe_trails()
            return time.monotonic()

        started = time.monotonic()
        one_region = await asyncio.gather(*(describe("us-east-1") for _ in range(12)))
        # A bucket of 4 refilled at 4/s: the 12th call cannot complete before 2 s (a lower bound, which a slow
        # machine only makes larger).
        assert max(one_region) - started >= 1.9
        # Another region has its own bucket: its first 4 calls do not wait for us-east-1's.
        started = time.monotonic()
        other = await asyncio.gather(*(describe("eu-west-1") for _ in range(4)))
        assert clients.limits.bucket("cloudtrail", home, "eu-west-1") is not clients.limits.bucket(
            "cloudtrail", home, "us-east-1"
        )
        assert clients.limits.bucket("s3", home, "us-east-1") is None, "data-plane calls are not paced"
        assert len(other) == 4
