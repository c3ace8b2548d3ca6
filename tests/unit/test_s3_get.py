"""The direct S3 GET (sources/s3_get.py): SigV4 equal to botocore's, the URL botocore resolves, botocore-like
retries, and the same error mapping as the aiobotocore path, against a local HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aioboto3
import aiohttp
import botocore.auth
import pytest
from aiobotocore.config import AioConfig
from aiohttp import web
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ingester.errors import ObjectGoneError, SourceError
from ingester.sources.s3 import S3Source
from ingester.sources.s3_get import BucketUrl, Frozen, HttpError, SignedGetter, learned_url, sign_get

NOW = datetime(2026, 5, 9, 12, 34, 56, tzinfo=UTC)
KEYS = [
    "AWSLogs/o-abc/111111111111/CloudTrail/us-east-1/2026/05/09/111111111111_CloudTrail_us-east-1_20260509T1230Z_a.json.gz",
    "odd key/with spaces+plus=eq&amp~tilde/ünïcode",
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize(("host", "prefix"), [("127.0.0.1:9000", "/bucket"), ("bucket.s3.eu-west-1.amazonaws.com", "")])
def test_signature_equals_botocore(
    key: str, token: str | None, host: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = BucketUrl(f"http://{host}", host, prefix, "eu-west-1", "s3")
    path = url.path(key)
    ours = sign_get(url, path, Frozen("AKIDEXAMPLE", "secret/EXAMPLE", token), NOW)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    request = AWSRequest(method="GET", url=f"http://{host}{path}", headers={})
    botocore.auth.S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret/EXAMPLE", token), "s3", "eu-west-1").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


@pytest.mark.parametrize(
    ("sent", "origin", "prefix"),
    [
        ("https://trail.s3.eu-west-1.amazonaws.com/a/b%20c.gz", "https://trail.s3.eu-west-1.amazonaws.com", ""),
        ("http://127.0.0.1:9000/trail/a/b%20c.gz", "http://127.0.0.1:9000", "/trail"),
    ],
)
def test_the_url_is_learned_from_botocores_request(sent: str, origin: str, prefix: str) -> None:
    authorization = "AWS4-HMAC-SHA256 Credential=AK/20260509/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=x"
    url = learned_url(sent, authorization, "a/b c.gz")
    assert url is not None
    assert (url.origin, url.path_prefix, url.region, url.service) == (origin, prefix, "eu-west-1", "s3")
    assert learned_url(sent, authorization, "another key") is None
    assert learned_url(sent, "AWS AK:signature-v2", "a/b c.gz") is None


class FakeS3:
    """A local HTTP server answering GETs: a queue of (status, code) answers per key, then the body."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, str]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.retried: list[None] = []  # the getter's on_retry calls (it appends None)

    async def handle(self, request: web.Request) -> web.Response:
        key = request.raw_path.split("/", 2)[2]
        self.requests.append((request.raw_path, request.headers.get("Authorization", "")))
        queued = self.answers.get(key) or []
        if queued:
            status, code = queued.pop(0)
            return web.Response(status=status, body=f"<Error><Code>{code}</Code></Error>".encode())
        return web.Response(body=b"\x1f\x8bbody of " + key.encode())


@pytest.fixture
async def fake_s3() -> AsyncIterator[tuple[FakeS3, str]]:
    fake = FakeS3()
    app = web.Application()
    app.router.add_get("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def source(fake_s3: tuple[FakeS3, str]) -> AsyncIterator[S3Source]:
    fake, endpoint = fake_s3
    session = aioboto3.Session(aws_access_key_id="AK", aws_secret_access_key="SK", region_name="us-east-1")
    config = AioConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=5)
    async with (
        session.client("s3", endpoint_url=endpoint, config=config) as client,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        getter = SignedGetter(client, http, await session.get_credentials(), on_retry=lambda: fake.retried.append(None))
        source = S3Source(client, "bucket", getter)
        await source.get("first")  # through botocore: teaches the getter the URL
        assert getter.url is not None and getter.url.path_prefix == "/bucket"
        fake.requests.clear()
        yield source


async def test_get_returns_the_body_and_signs(fake_s3: tuple[FakeS3, str], source: S3Source) -> None:
    fake, _ = fake_s3
    assert await source.get("a/b c.json.gz") == b"\x1f\x8bbody of a/b%20c.json.gz"
    path, authorization = fake.requests[-1]
    assert path == "/bucket/a/b%20c.json.gz"
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AK/")
    assert source.requests == 2  # the first, through botocore, and this one


async def test_throttling_is_retried_like_botocore(fake_s3: tuple[FakeS3, str], source: S3Source) -> None:
    fake, _ = fake_s3
    fake.answers["k"] = [(503, "SlowDown"), (500, "InternalError")]
    assert await source.get("k") == b"\x1f\x8bbody of k"
    assert len(fake.requests) == 3
    assert len(fake.retried) == 2  # counted (ingester_retries_total{stage="source"}): they are ingester's own


async def test_retries_end_in_a_retriable_source_error(fake_s3: tuple[FakeS3, str], source: S3Source) -> None:
    fake, _ = fake_s3
    fake.answers["k"] = [(503, "SlowDown")] * 3
    with pytest.raises(SourceError) as raised:
        await source.get("k")
    assert raised.value.retriable and raised.value.code == "SlowDown"
    assert not isinstance(raised.value, ObjectGoneError)
    assert len(fake.requests) == 3


@pytest.mark.parametrize(("status", "code"), [(404, "NoSuchKey"), (403, "AccessDenied"), (403, "")])
async def test_gone_objects_are_not_retried(
    fake_s3: tuple[FakeS3, str], source: S3Source, status: int, code: str
) -> None:
    fake, _ = fake_s3
    fake.answers["k"] = [(status, code)]
    with pytest.raises(ObjectGoneError) as raised:
        await source.get("k")
    assert raised.value.code == (code or str(status))
    assert "s3://bucket/k" in str(raised.value)
    assert len(fake.requests) == 1


async def test_expired_token_is_a_retriable_error_for_the_worker(fake_s3: tuple[FakeS3, str], source: S3Source) -> None:
    fake, _ = fake_s3
    fake.answers["k"] = [(400, "ExpiredToken")]
    with pytest.raises(SourceError) as raised:
        await source.get("k")
    assert raised.value.retriable and raised.value.code == "ExpiredToken"
    assert len(fake.requests) == 1  # not botocore's to retry: the worker's (fresh credentials by then)


def test_http_error_retriable() -> None:
    assert HttpError(503, "", "x").retriable and HttpError(400, "RequestTimeout", "x").retriable
    assert not HttpError(400, "ExpiredToken", "x").retriable and not HttpError(404, "NoSuchKey", "x").retriable
