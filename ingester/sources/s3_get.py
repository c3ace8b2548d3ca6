"""GetObject without botocore's per-request machinery: one aiohttp GET, signed with SigV4 here (issue 13).

Why: profiled against a fast S3 endpoint (s3s-fs), aiobotocore spends ~1.5 ms of CPU per GET (endpoint ruleset,
event hooks, signer, response parser, its aiohttp wrapper), more than decoding and sending a small file. A
CloudTrail log GET needs none of that per request. The first GET of a source goes through botocore, and the
getter learns from the request botocore finally sent (after any region redirect) the bucket's URL prefix and the
signing scope: custom endpoints, path or virtual-host addressing, FIPS, dual-stack and the bucket's region stay
botocore's choice. Later GETs reuse them with the session's credentials (aiobotocore refreshes assumed roles
before they expire), signed here with the same SigV4 algorithm (tests compare it with botocore's signer).

Kept equal to the botocore path (S3Source's error mapping): HTTP errors carry S3's ``<Code>`` and become the
same SourceError / ObjectGoneError; throttling, 5xx and transport errors are retried like botocore's standard
mode (the client's ``retries.max_attempts``, jittered exponential backoff up to 20 s) before the worker's own
retries. Not checked here: S3's optional x-amz-checksum-* of the object; a log file is gzip, whose trailer
CRC32 the decoder checks over the whole body.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# botocore's standard retry mode: these are retried (besides transport errors and any 5xx).
_RETRY_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "PriorRequestNotComplete",
    }
)
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/([^/,]+)/aws4_request")
_CODE = re.compile(rb"<Code>([^<]{1,128})</Code>")
MAX_BACKOFF_SECONDS = 20.0


@dataclass(frozen=True)
class BucketUrl:
    """Where a bucket's objects are and how a request to them is scoped, as botocore resolved it."""

    origin: str  # scheme://host[:port]
    host: str  # the Host header (netloc)
    path_prefix: str  # "" (virtual-host style) or "/bucket" (path style)
    region: str
    service: str

    def path(self, key: str) -> str:
        """S3's canonical URI, also the request's path: each byte of the key percent-encoded except unreserved
        characters and ``/`` (S3 does not double-encode, unlike other services)."""
        return f"{self.path_prefix}/{quote(key, safe='/~')}"


def learned_url(sent_url: str, authorization: str, key: str) -> BucketUrl | None:
    """The BucketUrl of a GetObject of ``key`` that botocore sent to ``sent_url`` with this Authorization
    header (``AWS4-HMAC-SHA256 Credential=AKID/day/region/service/aws4_request, ...``); None if either is not
    what a SigV4 GET of that key looks like (then the next GET goes through botocore again)."""
    parts = urlsplit(sent_url)
    suffix = "/" + quote(key, safe="/~")
    found = _SCOPE.search(authorization)
    if parts.query or not parts.path.endswith(suffix) or found is None:
        return None
    region, service = found.group(1), found.group(2)
    return BucketUrl(f"{parts.scheme}://{parts.netloc}", parts.netloc, parts.path[: -len(suffix)], region, service)


@dataclass(frozen=True)
class Frozen:
    """Credentials at one instant (botocore's ReadOnlyCredentials has the same fields)."""

    access_key: str
    secret_key: str
    token: str | None


_signing_keys: dict[tuple[str, str, str, str], bytes] = {}


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """The SigV4 derived key; cached: it changes once a day per secret."""
    cache_key = (secret, day, region, service)
    key = _signing_keys.get(cache_key)
    if key is None:
        key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
        for part in (region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        if len(_signing_keys) > 64:  # rotated secrets and past days: keep it small
            _signing_keys.clear()
        _signing_keys[cache_key] = key
    return key


def sign_get(url: BucketUrl, path: str, credentials: Frozen, now: datetime) -> dict[str, str]:
    """Headers of a SigV4-signed GET of ``path`` (no query, no body) at ``now`` (UTC)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {"host": url.host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        ["GET", path, "", *(f"{name}:{headers[name].strip()}" for name in names), "", signed, EMPTY_SHA256]
    )
    scope = f"{day}/{url.region}/{url.service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = signing_key(credentials.secret_key, day, url.region, url.service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    del headers["host"]  # aiohttp writes it from the URL
    return headers


class HttpError(Exception):
    """A non-2xx answer: its status and S3's error code (``<Code>``), for S3Source to translate."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def retriable(self) -> bool:
        return self.status >= 500 or self.status == 429 or self.code in _RETRY_CODES


class SignedGetter:
    """GETs of one bucket through a shared aiohttp session; raises HttpError or aiohttp / OS errors after the
    client's retries (S3Source translates them). Usable once :meth:`learning` saw botocore send a GET."""

    def __init__(
        self,
        client: Any,
        http: aiohttp.ClientSession,
        credentials: Any,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        # Called before each retry: these are ingester's own retries now, not botocore's, so they are counted
        # (ingester_retries_total{stage="source"}) like the worker's.
        self._on_retry = on_retry
        self._client = client
        self._http = http
        self._credentials = credentials
        self.url: BucketUrl | None = None
        config = client.meta.config
        self._attempts = int((config.retries or {}).get("max_attempts", 3))
        self._timeout = aiohttp.ClientTimeout(sock_connect=config.connect_timeout, sock_read=config.read_timeout)

    @contextmanager
    def learning(self, key: str) -> Iterator[None]:
        """While botocore GETs ``key`` inside this block, learn the bucket's URL and scope from what it sends
        (the last attempt wins: a region redirect re-sends to the right endpoint). Other GETs on the same
        client are told apart by their path."""

        def sent(request: Any, **_: Any) -> None:
            authorization = request.headers.get("Authorization", b"")
            if isinstance(authorization, bytes):
                authorization = authorization.decode(errors="replace")
            learned = learned_url(request.url, authorization, key)
            if learned is not None:
                self.url = learned

        events = self._client.meta.events
        unique_id = f"ingester-learn-{id(self)}-{key}"
        events.register("before-send.s3.GetObject", sent, unique_id=unique_id)
        try:
            yield
        finally:
            events.unregister("before-send.s3.GetObject", unique_id=unique_id)

    async def get(self, key: str) -> bytes:
        url = self.url
        if url is None:
            raise RuntimeError("SignedGetter.get before a GET through botocore taught it the bucket's URL")
        attempt = 1
        while True:
            try:
                return await self._get_once(url, key)
            except (HttpError, *_TRANSPORT_ERRORS) as exc:
                if attempt >= self._attempts or (isinstance(exc, HttpError) and not exc.retriable):
                    raise
                if self._on_retry is not None:
                    self._on_retry()
                await asyncio.sleep(random.random() * min(MAX_BACKOFF_SECONDS, 2.0 ** (attempt - 1)))
                attempt += 1

    async def _get_once(self, url: BucketUrl, key: str) -> bytes:
        frozen = await self._credentials.get_frozen_credentials()
        path = url.path(key)
        headers = sign_get(url, path, Frozen(frozen.access_key, frozen.secret_key, frozen.token), datetime.now(UTC))
        # encoded=True: the path is sent as signed (yarl would re-quote it otherwise).
        async with self._http.get(
            URL(url.origin + path, encoded=True), headers=headers, timeout=self._timeout, allow_redirects=False
        ) as response:
            body = await response.read()
            if response.status == 200:
                return body
            found = _CODE.search(body)
            code = found.group(1).decode(errors="replace") if found else ""
            raise HttpError(response.status, code, f"{response.status} {code or response.reason}")
