"""GetObject and ListObjectsV2 without botocore's per-request machinery: one aiohttp GET each, signed with SigV4
here (issue 13).

Why: profiled against a fast S3 endpoint (s3s-fs), aiobotocore spends ~1.5 ms of CPU per GET (endpoint ruleset,
event hooks, signer, response parser, its aiohttp wrapper), more than decoding and sending a small file, and its
parse of a listing (an XML walk, a dateutil parse per key) costs as much per key as fetching a small file. A
CloudTrail log GET or day listing needs none of that. The first LIST or GET of a source goes through botocore,
and the getter learns from the request botocore finally sent (after any region redirect) the bucket's URL prefix
and the signing scope: custom endpoints, path or virtual-host addressing, FIPS, dual-stack and the bucket's
region stay botocore's choice. Later requests reuse them with the session's credentials (aiobotocore refreshes
assumed roles before they expire), signed here with the same SigV4 algorithm (tests compare it with botocore's
signer).

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
import itertools
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit
from xml.etree import ElementTree

import aiohttp
from yarl import URL

from ingester.models import LogObject

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
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
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


def learned_url(sent_url: str, authorization: str, key: str | None, bucket: str = "") -> BucketUrl | None:
    """The BucketUrl of a GetObject of ``key`` (or, with ``key`` None, of a ListObjectsV2) that botocore sent to
    ``sent_url`` with this Authorization header (``AWS4-HMAC-SHA256 Credential=AKID/day/region/service/
    aws4_request, ...``); None if either is not what a SigV4 GET of that key (or listing of the bucket) looks
    like (then the next request goes through botocore again). With ``bucket``, also None unless the request was
    to that bucket (path style ``/bucket``, or a ``bucket.`` host): one client serves every bucket of a reader,
    and another bucket's request must not teach this bucket's getter."""
    parts = urlsplit(sent_url)
    found = _SCOPE.search(authorization)
    if found is None:
        return None
    if key is None:  # a listing: the bucket's own path, "/bucket" (path style) or "/" (virtual host)
        if "list-type=2" not in parts.query.split("&") or parts.path.count("/") > 2:
            return None
        prefix = parts.path.rstrip("/")
    else:
        suffix = "/" + quote(key, safe="/~")
        if parts.query or not parts.path.endswith(suffix):
            return None
        prefix = parts.path[: -len(suffix)]
    if bucket and prefix != f"/{bucket}" and not (prefix == "" and parts.netloc.startswith(f"{bucket}.")):
        return None
    region, service = found.group(1), found.group(2)
    return BucketUrl(f"{parts.scheme}://{parts.netloc}", parts.netloc, prefix, region, service)


def list_query(prefix: str, start_after: str | None, token: str | None) -> str:
    """ListObjectsV2's canonical query string: parameters sorted, names and values percent-encoded except
    unreserved characters (SigV4's rule, also the URL sent). ``encoding-type=url`` as botocore asks: a key may
    hold characters XML 1.0 cannot carry."""
    params = {"list-type": "2", "encoding-type": "url", "max-keys": "1000", "prefix": prefix}
    if start_after:
        params["start-after"] = start_after
    if token:
        params["continuation-token"] = token
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def parse_list_page(body: bytes) -> tuple[list[LogObject], str | None]:
    """A ListObjectsV2 answer (``encoding-type=url``) -> its objects in order and the continuation token (None
    on the last page). Raises ValueError on XML that is not a listing."""
    root = ElementTree.fromstring(body)
    if root.tag != f"{_S3_NS}ListBucketResult":
        raise ValueError(f"not a ListBucketResult: {root.tag}")
    found: list[LogObject] = []
    for item in root.iter(f"{_S3_NS}Contents"):
        key = item.findtext(f"{_S3_NS}Key")
        if key is None:
            raise ValueError("a listed object without a Key")
        modified = item.findtext(f"{_S3_NS}LastModified")
        try:
            stamp = datetime.fromisoformat(modified).timestamp() if modified else 0.0
        except ValueError:
            stamp = 0.0
        found.append(LogObject(unquote_plus(key), int(item.findtext(f"{_S3_NS}Size") or 0), stamp))
    truncated = root.findtext(f"{_S3_NS}IsTruncated") == "true"
    token = root.findtext(f"{_S3_NS}NextContinuationToken")
    return found, token if truncated and token else None


@dataclass(frozen=True)
class Frozen:
    """Credentials at one instant (botocore's ReadOnlyCredentials has the same fields)."""

    access_key: str
    secret_key: str
    token: str | None


_signing_keys: dict[tuple[str, str, str, str], bytes] = {}
_learning_calls = itertools.count()


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


def sign_get(url: BucketUrl, path: str, credentials: Frozen, now: datetime, query: str = "") -> dict[str, str]:
    """Headers of a SigV4-signed GET of ``path`` with ``query`` (canonical: see :func:`list_query`; no body) at
    ``now`` (UTC)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {"host": url.host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        ["GET", path, query, *(f"{name}:{headers[name].strip()}" for name in names), "", signed, EMPTY_SHA256]
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
    """GETs and listings of one bucket through a shared aiohttp session; raises HttpError or aiohttp / OS errors
    after the client's retries (S3Source translates them). Usable once :meth:`learning` saw botocore send a GET
    or a listing."""

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
        # S3Source's first listing teaches the URL while the others wait on this lock; False once a listing
        # taught nothing (then listings stay on botocore, GETs still learn from theirs).
        self.teaching = asyncio.Lock()
        self.listings_teach = True
        config = client.meta.config
        self._attempts = int((config.retries or {}).get("max_attempts", 3))
        self._timeout = aiohttp.ClientTimeout(sock_connect=config.connect_timeout, sock_read=config.read_timeout)

    @contextmanager
    def learning(self, key: str | None, bucket: str = "") -> Iterator[None]:
        """While botocore GETs ``key`` (with None: lists ``bucket``) inside this block, learn the bucket's URL and
        scope from what it sends (the last attempt wins: a region redirect re-sends to the right endpoint). Other
        requests on the same client are told apart by their path (and bucket)."""
        operation = "ListObjectsV2" if key is None else "GetObject"

        def sent(request: Any, **_: Any) -> None:
            authorization = request.headers.get("Authorization", b"")
            if isinstance(authorization, bytes):
                authorization = authorization.decode(errors="replace")
            learned = learned_url(request.url, authorization, key, bucket)
            if learned is not None:
                self.url = learned

        events = self._client.meta.events
        unique_id = f"ingester-learn-{id(self)}-{next(_learning_calls)}"  # concurrent listings each get theirs
        events.register(f"before-send.s3.{operation}", sent, unique_id=unique_id)
        try:
            yield
        finally:
            events.unregister(f"before-send.s3.{operation}", unique_id=unique_id)

    async def get(self, key: str) -> bytes:
        url = self._learned()
        return await self._retried(url, url.path(key), "")

    async def list_page(
        self, prefix: str, start_after: str | None, token: str | None
    ) -> tuple[list[LogObject], str | None]:
        """One page (up to 1,000 keys) of the bucket under ``prefix``: its objects and the next page's token.
        A page that is not a listing raises HttpError (status 200, code ``MalformedListing``), not retried here:
        S3Source makes it a SourceError, the shard's listing fails and is tried again on its next cycle."""
        url = self._learned()
        body = await self._retried(url, url.path_prefix or "/", list_query(prefix, start_after, token))
        try:
            return parse_list_page(body)
        except (ValueError, ElementTree.ParseError) as exc:
            raise HttpError(200, "MalformedListing", f"ListObjectsV2 under {prefix!r}: {exc}") from exc

    def _learned(self) -> BucketUrl:
        if self.url is None:
            raise RuntimeError("SignedGetter used before a request through botocore taught it the bucket's URL")
        return self.url

    async def _retried(self, url: BucketUrl, path: str, query: str) -> bytes:
        attempt = 1
        while True:
            try:
                return await self._get_once(url, path, query)
            except (HttpError, *_TRANSPORT_ERRORS) as exc:
                if attempt >= self._attempts or (isinstance(exc, HttpError) and not exc.retriable):
                    raise
                if self._on_retry is not None:
                    self._on_retry()
                await asyncio.sleep(random.random() * min(MAX_BACKOFF_SECONDS, 2.0 ** (attempt - 1)))
                attempt += 1

    async def _get_once(self, url: BucketUrl, path: str, query: str) -> bytes:
        frozen = await self._credentials.get_frozen_credentials()
        now = datetime.now(UTC)
        headers = sign_get(url, path, Frozen(frozen.access_key, frozen.secret_key, frozen.token), now, query)
        # encoded=True: the path and query are sent as signed (yarl would re-quote them otherwise).
        target = URL(f"{url.origin}{path}?{query}" if query else url.origin + path, encoded=True)
        async with self._http.get(target, headers=headers, timeout=self._timeout, allow_redirects=False) as response:
            body = await response.read()
            if response.status == 200:
                return body
            found = _CODE.search(body)
            code = found.group(1).decode(errors="replace") if found else ""
            if response.status in (301, 307) or code == "AuthorizationHeaderMalformed":
                # The bucket answers elsewhere now (moved region, or recreated): forget the URL, so that the next
                # request goes through botocore, follows the redirect and teaches the getter again.
                self.url = None
            raise HttpError(response.status, code, f"{response.status} {code or response.reason}")
