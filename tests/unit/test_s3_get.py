"""The direct S3 GET (sources/s3_get.py): SigV4 equal to botocore's, the URL botocore resolves, botocore-like
retries, and the same error mapping as the aiobotocore path, against a local HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from unittest.mock import patch
from urllib.parse import parse_qs, quote_plus

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
from ingester.sources.s3_get import (
    BucketUrl,
    Frozen,
    HttpError,
    SignedGetter,
    learned_url,
    list_query,
    parse_list_page,
    sign_get,
)

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


@pytest.mark.parametrize(("start_after", "token"), [(None, None), (KEYS[0], "1/2+3=="), ("odd key/ü", None)])
@pytest.mark.parametrize(("host", "prefix"), [("127.0.0.1:9000", "/bucket"), ("bucket.s3.eu-west-1.amazonaws.com", "")])
def test_listing_signature_equals_botocore(
    start_after: str | None, token: str | None, host: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query is canonicalised here (list_query) and by botocore from the raw parameters: same signature."""
    url = BucketUrl(f"http://{host}", host, prefix, "eu-west-1", "s3")
    folder = "AWSLogs/o-abc/111111111111/CloudTrail/us-east-1/2026/05/09/"
    ours = sign_get(url, prefix or "/", Frozen("AK", "SK", "tok"), NOW, list_query(folder, start_after, token))

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    params = {"list-type": "2", "encoding-type": "url", "max-keys": "1000", "prefix": folder}
    params |= {"start-after": start_after} if start_after else {}
    params |= {"continuation-token": token} if token else {}
    request = AWSRequest(method="GET", url=f"http://{host}{prefix or '/'}", params=params, headers={})
    botocore.auth.S3SigV4Auth(Credentials("AK", "SK", "tok"), "s3", "eu-west-1").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]


def page(keys: list[str], token: str | None) -> bytes:
    """A ListObjectsV2 answer as S3 writes it with encoding-type=url."""
    ns = "http://s3.amazonaws.com/doc/2006-03-01/"
    contents = "".join(
        f"<Contents><Key>{quote_plus(k, safe='/')}</Key><LastModified>2026-05-09T12:30:01.000Z</LastModified>"
        f"<ETag>&quot;x&quot;</ETag><Size>{n + 1}</Size><StorageClass>STANDARD</StorageClass></Contents>"
        for n, k in enumerate(keys)
    )
    more = f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{ns}"><Name>bucket</Name>'
        f"<Prefix>p</Prefix><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
        f"{more or '<IsTruncated>false</IsTruncated>'}{contents}</ListBucketResult>"
    ).encode()


def test_a_listing_page_is_parsed() -> None:
    found, token = parse_list_page(page(KEYS, "next/token=="))
    assert [(o.key, o.size) for o in found] == [(KEYS[0], 1), (KEYS[1], 2)]
    assert found[0].last_modified == datetime(2026, 5, 9, 12, 30, 1, tzinfo=UTC).timestamp()
    assert token == "next/token=="
    assert parse_list_page(page([], None)) == ([], None)
    with pytest.raises(ValueError, match="not a ListBucketResult"):
        parse_list_page(b"<Error><Code>NoSuchBucket</Code></Error>")


@pytest.mark.parametrize(
    ("sent", "origin", "prefix"),
    [
        (
            "https://trail.s3.eu-west-1.amazonaws.com/?list-type=2&prefix=a",
            "https://trail.s3.eu-west-1.amazonaws.com",
            "",
        ),
        ("http://127.0.0.1:9000/trail?list-type=2&prefix=a", "http://127.0.0.1:9000", "/trail"),
    ],
)
def test_the_url_is_learned_from_botocores_listing(sent: str, origin: str, prefix: str) -> None:
    authorization = "AWS4-HMAC-SHA256 Credential=AK/20260509/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=x"
    url = learned_url(sent, authorization, None)
    assert url is not None and (url.origin, url.path_prefix, url.region) == (origin, prefix, "eu-west-1")
    assert learned_url(sent.replace("list-type=2", "list-type=1"), authorization, None) is None
    assert learned_url("http://127.0.0.1:9000/trail/a/b?list-type=2", authorization, None) is None
    # Another bucket's listing on the same client teaches nothing.
    assert learned_url(sent, authorization, None, "trail") is not None
    assert learned_url(sent, authorization, None, "other") is None
    assert learned_url(sent, authorization, None, "trai") is None


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
        self.listing: list[str] = []  # the bucket's keys, listed two per page

    async def handle(self, request: web.Request) -> web.Response:
        if "list-type=2" in request.query_string:
            return self.list(request)
        key = request.raw_path.split("/", 2)[2]
        self.requests.append((request.raw_path, request.headers.get("Authorization", "")))
        queued = self.answers.get(key) or []
        if queued:
            status, code = queued.pop(0)
            return web.Response(status=status, body=f"<Error><Code>{code}</Code></Error>".encode())
        return web.Response(body=b"\x1f\x8bbody of " + key.encode())

    def list(self, request: web.Request) -> web.Response:
        self.requests.append((request.raw_path, request.headers.get("Authorization", "")))
        queued = self.answers.get("?list") or []
        if queued:
            status, code = queued.pop(0)
            return web.Response(status=status, body=f"<Error><Code>{code}</Code></Error>".encode())
        query = {k: v[0] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()}
        keys = [k for k in sorted(self.listing) if k.startswith(query["prefix"]) and k > query.get("start-after", "")]
        begin = int(query.get("continuation-token", "0"))
        more = str(begin + 2) if begin + 2 < len(keys) else None
        return web.Response(body=page(keys[begin : begin + 2], more), content_type="application/xml")


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


@asynccontextmanager
async def unlearned_source(fake: FakeS3, endpoint: str, max_attempts: int) -> AsyncIterator[S3Source]:
    """An S3Source on the fake with a getter that has not yet seen botocore's first request."""
    session = aioboto3.Session(aws_access_key_id="AK", aws_secret_access_key="SK", region_name="us-east-1")
    config = AioConfig(retries={"mode": "standard", "max_attempts": max_attempts}, connect_timeout=5, read_timeout=5)
    async with (
        session.client("s3", endpoint_url=endpoint, config=config) as client,
        aiohttp.ClientSession(auto_decompress=False) as http,
    ):
        getter = SignedGetter(client, http, await session.get_credentials(), on_retry=lambda: fake.retried.append(None))
        yield S3Source(client, "bucket", getter)


@pytest.fixture
async def source(fake_s3: tuple[FakeS3, str]) -> AsyncIterator[S3Source]:
    fake, endpoint = fake_s3
    async with unlearned_source(fake, endpoint, 3) as source:
        await source.get("first")  # through botocore: teaches the getter the URL
        assert source._getter is not None and source._getter.url is not None
        assert source._getter.url.path_prefix == "/bucket"
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


async def test_listing_goes_direct_once_learned(fake_s3: tuple[FakeS3, str]) -> None:
    """The first listing probes through botocore (one key) and teaches the getter; then listings are signed here,
    paginated, with StartAfter, and their errors map like a GET's."""
    fake, endpoint = fake_s3
    fake.listing = [f"p/{n:02d} key+{n}" for n in range(5)] + ["q/other"]
    async with unlearned_source(fake, endpoint, 2) as source:
        getter = source._getter
        assert [o.key for o in [o async for o in source.list_after("p/", None)]] == fake.listing[:5]
        assert getter.url is not None and getter.url.path_prefix == "/bucket"
        fake.requests.clear()
        listed = [o async for o in source.list_after("p/", "p/00 key+0")]
        assert [(o.key, o.size) for o in listed] == [(k, n % 2 + 1) for n, k in enumerate(fake.listing[1:5])]
        assert len(fake.requests) == 2 and all(
            a.startswith("AWS4-HMAC-SHA256 Credential=AK/") for _, a in fake.requests
        )
        assert all(path.startswith("/bucket?") for path, _ in fake.requests)

        fake.requests.clear()
        fake.answers["?list"] = [(503, "SlowDown")] * 3  # max_attempts 2 is botocore's: retries after the first
        with pytest.raises(SourceError) as raised:
            [o async for o in source.list_after("p/", None)]
        assert raised.value.retriable and raised.value.code == "SlowDown"
        assert len(fake.requests) == 3 and len(fake.retried) == 2
        fake.answers["?list"] = [(404, "NoSuchBucket")]
        with pytest.raises(ObjectGoneError) as gone:
            [o async for o in source.list_after("p/", None)]
        assert gone.value.code == "NoSuchBucket"


async def test_a_redirect_makes_the_getter_learn_again(fake_s3: tuple[FakeS3, str], source: S3Source) -> None:
    """A bucket that now answers elsewhere: this GET fails (the worker retries the file), the next one goes
    through botocore again, which follows S3's redirect and teaches the getter the new URL."""
    fake, _ = fake_s3
    fake.answers["k"] = [(301, "PermanentRedirect")]
    with pytest.raises(SourceError) as raised:
        await source.get("k")
    assert raised.value.code == "PermanentRedirect"
    assert source._getter is not None and source._getter.url is None
    assert await source.get("k") == b"\x1f\x8bbody of k"  # through botocore
    assert source._getter.url is not None


async def test_one_small_listing_teaches_while_the_others_wait(fake_s3: tuple[FakeS3, str]) -> None:
    """Shards listing at once at start-up: one botocore listing of one key teaches the getter, every listing
    (that one's shard included) then goes direct."""
    fake, endpoint = fake_s3
    fake.listing = [f"p{n}/{k:02d}" for n in range(4) for k in range(3)]
    async with unlearned_source(fake, endpoint, 3) as first:
        sources = [first] + [S3Source(first._client, "bucket", first._getter) for _ in range(3)]

        async def listed(n: int) -> list[str]:
            return [o.key async for o in sources[n].list_after(f"p{n}/", None)]

        found = await asyncio.gather(*(listed(n) for n in range(4)))
        assert found == [[f"p{n}/{k:02d}" for k in range(3)] for n in range(4)]
        queries = [parse_qs(path.split("?", 1)[1]) for path, _ in fake.requests]
        assert sorted(q["max-keys"][0] for q in queries) == ["1", *["1000"] * 8]  # 1 probe, 4 x 2 pages direct
        assert sum(s.list_requests for s in sources) == 9


async def test_an_endpoint_whose_listing_does_not_teach_is_probed_once(fake_s3: tuple[FakeS3, str]) -> None:
    fake, endpoint = fake_s3
    fake.listing = ["p/a", "p/b"]
    async with unlearned_source(fake, endpoint, 3) as source:
        getter = source._getter
        assert getter is not None
        with patch("ingester.sources.s3_get.learned_url", return_value=None):
            assert [o.key async for o in source.list_after("p/", None)] == fake.listing
            assert [o.key async for o in source.list_after("p/", None)] == fake.listing
        assert getter.url is None and not getter.listings_teach
        assert [parse_qs(path.split("?", 1)[1])["max-keys"][0] for path, _ in fake.requests] == ["1", "1000", "1000"]
