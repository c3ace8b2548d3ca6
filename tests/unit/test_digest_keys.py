"""CloudTrailPublicKeySource against a real aiobotocore CloudTrail client whose responses botocore's Stubber supplies.

moto does not implement ListPublicKeys (``NotImplementedError: The list_public_keys action has not been
implemented``), so the request and the parsed response shape are checked with aiobotocore's own stubber: the
client validates our parameters and the stubbed response against the service model, no network involved.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiobotocore.session import get_session
from aiobotocore.stub import AioStubber
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ingester.errors import DiscoveryError
from ingester.integrity import CloudTrailPublicKeySource, KeyRing, PublicKey
from ingester.integrity.keys import public_key_from_api

START = datetime(2024, 5, 1, 9, 1, 31, tzinfo=UTC)
END = START + timedelta(hours=1)


def _der() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def _api_key(der: bytes, days: int = 0) -> dict[str, Any]:
    return {
        "Value": der,
        "ValidityStartTime": START - timedelta(days=10 + days),
        "ValidityEndTime": START + timedelta(days=20 - days),
        "Fingerprint": hashlib.md5(der).hexdigest(),
    }


@asynccontextmanager
async def _stubbed() -> AsyncIterator[tuple[Any, AioStubber]]:
    session = get_session()
    async with session.create_client(
        "cloudtrail", region_name="us-east-2", aws_access_key_id="testing", aws_secret_access_key="testing"
    ) as client:
        with AioStubber(client) as stubber:
            yield client, stubber


def _source(client: Any) -> CloudTrailPublicKeySource:
    @asynccontextmanager
    async def borrow() -> AsyncIterator[Any]:
        yield client

    return CloudTrailPublicKeySource(borrow, where="111122223333/us-east-2")


async def test_list_public_keys_follows_next_token() -> None:
    first, second = _der(), _der()
    async with _stubbed() as (client, stubber):
        stubber.add_response(
            "list_public_keys",
            {"PublicKeyList": [_api_key(first)], "NextToken": "t1"},
            {"StartTime": START, "EndTime": END},
        )
        stubber.add_response(
            "list_public_keys",
            {"PublicKeyList": [_api_key(second, days=5)]},
            {"StartTime": START, "EndTime": END, "NextToken": "t1"},
        )
        keys = await _source(client).list_public_keys(START, END)
        stubber.assert_no_pending_responses()
    assert [key.value for key in keys] == [first, second]
    assert keys[0] == PublicKey(
        fingerprint=hashlib.md5(first).hexdigest(),
        value=first,
        validity_start=START - timedelta(days=10),
        validity_end=START + timedelta(days=20),
    )
    ring = KeyRing(keys)
    assert ring.select(keys[1].fingerprint, START, END) == keys[1]


@pytest.mark.parametrize(("code", "retriable"), [("AccessDeniedException", False), ("ThrottlingException", True)])
async def test_errors_become_discovery_errors(code: str, retriable: bool) -> None:
    async with _stubbed() as (client, stubber):
        stubber.add_client_error("list_public_keys", service_error_code=code, http_status_code=400)
        with pytest.raises(DiscoveryError, match="ListPublicKeys in 111122223333/us-east-2") as caught:
            await _source(client).list_public_keys(START, END)
    assert caught.value.retriable is retriable


def test_base64_text_values_are_decoded() -> None:
    """A client with the identity blob parser (as the AWS CLI installs) hands the Value as base64 text."""
    der = _der()
    parsed = public_key_from_api(dict(_api_key(der), Value=base64.b64encode(der).decode()))
    assert parsed.value == der and parsed.validity_start.tzinfo is not None
