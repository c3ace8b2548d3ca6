"""An HTTP proxy in front of moto's server that answers chosen requests with S3 errors.

moto cannot be told to throttle one GET or to expire a token mid-run; real S3 does both. This proxy is a real
HTTP server (aiohttp) on 127.0.0.1: ingester's aiobotocore client talks HTTP to it exactly as to S3, and every
request that no rule matches is forwarded to moto unchanged. A rule answers a matching request with an S3 XML
error a number of times (or forever), and counts what it did, so a test can assert on it.

It also stands in for a bucket policy moto does not enforce: :meth:`FaultProxy.only_role` lets a bucket be read
only with the credentials AssumeRole returned for one role (a landing zone's log-archive bucket), and every
request is recorded (:class:`Seen`: the service operation and the access key that signed it).
"""

from __future__ import annotations

import random
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Fault:
    """Answer requests for which ``match(method, path)`` is true with ``status``/``code``, ``times`` times.

    ``body``: also require this in the request body (an STS AssumeRole names its RoleArn there). ``reset``:
    instead of an error, forward the request and cut the connection halfway through the response body (a
    connection reset mid-body, which aiohttp raises as ClientPayloadError)."""

    match: Callable[[str, str], bool]
    status: int = 0
    code: str = ""
    times: int = -1  # -1 = forever
    hits: int = 0
    body: bytes = b""
    reset: bool = False
    # Answer only this share of the matching requests (seeded: a run is reproducible), e.g. 0.3 of all GETs.
    share: float = 1.0
    rng: random.Random = field(default_factory=lambda: random.Random(20261202))

    def take(self, method: str, path: str, body: bytes = b"") -> bool:
        if (self.times < 0 or self.hits < self.times) and self.match(method, path) and self.body in body:
            if self.share < 1.0 and self.rng.random() >= self.share:
                return False
            self.hits += 1
            return True
        return False

    def error_body(self, path: str) -> bytes:
        if self.body.startswith(b"iam%3A"):  # an STS (query protocol) request: its error envelope
            return (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{self.code}</Code>"
                f"<Message>injected by the test proxy</Message></Error><RequestId>FAULT</RequestId></ErrorResponse>"
            ).encode()
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{self.code}</Code>'
            f"<Message>injected by the test proxy</Message><Resource>{path}</Resource>"
            f"<RequestId>FAULT</RequestId></Error>"
        ).encode()


def get_of(key_part: str) -> Callable[[str, str], bool]:
    """Matches a GetObject whose key contains ``key_part``."""
    return lambda method, path: method == "GET" and key_part in path and "list-type=" not in path


def list_of(query_part: str) -> Callable[[str, str], bool]:
    """Matches a ListObjectsV2 whose query string contains ``query_part`` (e.g. an account id in the prefix)."""
    return lambda method, path: method == "GET" and "list-type=2" in path and query_part in path


def sts_assume(account: str) -> Fault:
    """AssumeRole into ``account`` denied (403 AccessDenied), as an SCP or a missing role does."""
    return Fault(lambda method, _: method == "POST", 403, "AccessDenied", body=f"iam%3A%3A{account}%3A".encode())


_ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")
_ISSUED_KEY = re.compile(rb"<AccessKeyId>([^<]+)</AccessKeyId>")


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it: ``operation`` is the JSON protocol's X-Amz-Target (CloudTrail,
    Organizations) or the query protocol's Action (STS, EC2), empty for S3 (REST: read ``method`` and ``path``)."""

    method: str
    path: str
    operation: str
    access_key: str


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.gets = 0  # GET requests seen (object fetches and listings), for backpressure assertions
        self.seen: list[Seen] = []
        self.role_keys: dict[str, set[str]] = {}  # role ARN -> access keys AssumeRole issued for it
        self._only_role: dict[str, str] = {}  # bucket -> the one role whose credentials may touch it
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def only_role(self, bucket: str, role_arn: str) -> None:
        """Answer 403 AccessDenied to any request on ``bucket`` not signed with credentials of ``role_arn``, as a
        bucket policy granting that role alone would (path-style requests: the endpoint is an IP address)."""
        self._only_role[bucket] = role_arn
        self.role_keys.setdefault(role_arn, set())

    def _denied_by_bucket_policy(self, path: str, access_key: str) -> bool:
        bucket = path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        role = self._only_role.get(bucket)
        return role is not None and access_key not in self.role_keys[role]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path_qs
        if request.method == "GET":
            self.gets += 1
        data = await request.read()
        signed = _ACCESS_KEY.search(request.headers.get("Authorization", ""))
        access_key = signed.group(1) if signed else ""
        form = urllib.parse.parse_qs(data.decode(errors="replace")) if b"Action=" in data else {}
        operation = request.headers.get("X-Amz-Target", "") or form.get("Action", [""])[0]
        self.seen.append(Seen(request.method, path, operation, access_key))
        if self._denied_by_bucket_policy(path, access_key):
            denied = Fault(lambda *_: True, 403, "AccessDenied")
            return web.Response(status=403, body=denied.error_body(path), content_type="application/xml")
        assumed = form.get("RoleArn", [""])[0] if operation == "AssumeRole" else ""
        reset = False
        for fault in self.faults:
            if fault.take(request.method, path, data):
                if fault.reset:
                    reset = True
                    break
                return web.Response(status=fault.status, body=fault.error_body(path), content_type="application/xml")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(request.method, self._upstream + path, headers=headers, data=data) as upstream:
            body = await upstream.read()
            if assumed in self.role_keys:
                self.role_keys[assumed].update(key.decode() for key in _ISSUED_KEY.findall(body))
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
            if not reset:
                return web.Response(status=upstream.status, body=body, headers=out)
        response = web.StreamResponse(status=upstream.status, headers=out)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()  # the rest never comes: the client sees a payload cut short
        return response
