"""CloudTrail's digest-signing public keys: one narrow async seam, an in-memory stand-in, and a pure cache.

CloudTrail signs digests with a private key per *region* and publishes the public halves through
cloudtrail:ListPublicKeys(StartTime, EndTime): the keys whose private keys signed digests in that range, each
with a validity range (ranges overlap during rotation) and a fingerprint; the digest names its key by
``digestPublicKeyFingerprint``. So a :class:`PublicKeySource` is bound to one region (and one account's
credentials), and the :class:`KeyRing` picks the key with the digest's fingerprint whose validity overlaps the
digest's time range: a key outside the range is not accepted even with the right fingerprint, the same answer
ListPublicKeys would give for that range.

moto (5.2.5, the version in the venv) does not implement ListPublicKeys: its cloudtrail/responses.py has no
``list_public_keys``, and a call raises ``NotImplementedError: The list_public_keys action has not been
implemented``. Tests therefore inject keys at this seam with :class:`InMemoryPublicKeySource`.

Keys rotate about monthly, so the ring is filled once per region and consulted per digest (hourly): one
ListPublicKeys call per region and rotation, not per digest.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ingester.errors import DiscoveryError
from ingester.integrity.digest import Digest

# Errors that trying again cannot fix (the rest, throttling and 5xx included, are retriable).
_PERMANENT = frozenset({"AccessDeniedException", "UnsupportedOperationException", "OperationNotPermittedException"})


class PublicKey(msgspec.Struct, frozen=True, kw_only=True):
    """One ListPublicKeys entry; ``value`` is the DER key (PKCS#1, as the API documents it)."""

    fingerprint: str
    value: bytes
    validity_start: datetime
    validity_end: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.validity_start <= end and start <= self.validity_end


class PublicKeySource(Protocol):
    """The seam: the public keys of one region that signed digests between ``start`` and ``end``."""

    async def list_public_keys(self, start: datetime, end: datetime) -> Sequence[PublicKey]: ...


class InMemoryPublicKeySource:
    """Keys given up front; answers like ListPublicKeys (keys whose validity overlaps the range)."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self._keys = tuple(keys)
        self.calls = 0  # how often the pipeline asked: the cache's effect, visible to tests

    async def list_public_keys(self, start: datetime, end: datetime) -> Sequence[PublicKey]:
        self.calls += 1
        return [key for key in self._keys if key.overlaps(start, end)]


def public_key_from_api(item: Mapping[str, Any]) -> PublicKey:
    """One ``PublicKeyList`` entry as botocore parses it.

    botocore decodes the ``Value`` blob to DER bytes; a client whose blob parser is the identity (the AWS CLI
    installs one, which is why its validator base64-decodes) returns the base64 text, accepted as well.
    """
    value = item.get("Value", b"")
    der = base64.b64decode(value) if isinstance(value, str) else bytes(value)
    return PublicKey(
        fingerprint=str(item.get("Fingerprint", "")),
        value=der,
        validity_start=_utc(item.get("ValidityStartTime")),
        validity_end=_utc(item.get("ValidityEndTime")),
    )


def _utc(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    raise ValueError(f"not a ListPublicKeys timestamp: {value!r}")


class CloudTrailPublicKeySource:
    """ListPublicKeys through an aiobotocore CloudTrail client of the digest's region.

    ``open_client`` opens a client for one call, e.g. ``lambda: clients.client("cloudtrail", account, region)``
    (:meth:`ingester.connect.aws.AwsClients.client`): calls are rare, so a short-lived client holds no connection pool
    between them. botocore errors become :class:`~ingester.errors.DiscoveryError` (a control-plane failure),
    retriable unless access is denied or the operation is not permitted.
    """

    def __init__(self, open_client: Callable[[], AbstractAsyncContextManager[Any]], *, where: str) -> None:
        self._open_client = open_client
        self._where = where  # "<account>/<region>", for error messages

    async def list_public_keys(self, start: datetime, end: datetime) -> Sequence[PublicKey]:
        keys: list[PublicKey] = []
        request: dict[str, Any] = {"StartTime": start, "EndTime": end}
        try:
            async with self._open_client() as client:
                while True:  # NextToken is "reserved for future use"; follow it if it ever appears
                    response = await client.list_public_keys(**request)
                    keys.extend(public_key_from_api(item) for item in response.get("PublicKeyList", ()))
                    token = response.get("NextToken")
                    if not token:
                        return keys
                    request["NextToken"] = token
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise DiscoveryError(
                f"cloudtrail:ListPublicKeys in {self._where} failed: {exc}", retriable=code not in _PERMANENT
            ) from exc
        except (BotoCoreError, ValueError) as exc:
            raise DiscoveryError(f"cloudtrail:ListPublicKeys in {self._where} failed: {exc}") from exc


class KeyRing:
    """The public keys seen so far for one region, by fingerprint. Pure and synchronous."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._by_fingerprint: dict[str, list[PublicKey]] = {}
        self.add(keys)

    def add(self, keys: Iterable[PublicKey]) -> None:
        for key in keys:
            known = self._by_fingerprint.setdefault(key.fingerprint, [])
            if key not in known:
                known.append(key)

    def select(self, fingerprint: str, start: datetime, end: datetime) -> PublicKey | None:
        """The key with this fingerprint whose validity overlaps ``[start, end]``, else None."""
        for key in self._by_fingerprint.get(fingerprint, ()):
            if key.overlaps(start, end):
                return key
        return None

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._by_fingerprint.values())


async def resolve_public_key(source: PublicKeySource, ring: KeyRing, digest: Digest) -> PublicKey | None:
    """The key for ``digest`` from the ring, asking ``source`` for the digest's time range only on a miss.

    None means ListPublicKeys has no key with that fingerprint for that range: the ``public_key_unknown`` alert
    (a digest signed by a key AWS never published is a forgery, or from another region or partition).
    """
    start, end = digest.start, digest.end
    key = ring.select(digest.digest_public_key_fingerprint, start, end)
    if key is None:
        ring.add(await source.list_public_keys(start, end))
        key = ring.select(digest.digest_public_key_fingerprint, start, end)
    return key


class RegionKeys:
    """One region's digest-signing keys for every shard of the process: a :class:`KeyRing` filled from one
    source, one lookup at a time, so a thousand shards reading their first digest make one ListPublicKeys call
    (CloudTrail's control plane allows ~10 per second), not a thousand. Public keys are the same for every
    account of a region, so any reader account's source will do."""

    def __init__(self, source: PublicKeySource) -> None:
        self._source = source
        self._ring = KeyRing()
        self._lock = asyncio.Lock()

    async def key_for(self, digest: Digest) -> PublicKey | None:
        key = self._ring.select(digest.digest_public_key_fingerprint, digest.start, digest.end)
        if key is not None:
            return key
        async with self._lock:  # the holder fills the ring; the others then find the key there
            return await resolve_public_key(self._source, self._ring, digest)
