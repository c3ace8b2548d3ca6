"""Hourly digest files for the demo's generated logs, signed as CloudTrail signs them, with the demo's own key.

The demo's trail has log file validation enabled, so ingester reconciles and verifies its digests like a real
trail's. moto has no ``ListPublicKeys``, so the demo hands the public key to ``runtime.run(public_keys=...)``.
The recipe is AWS's "CloudTrail digest file structure" and "custom validation" pages: one digest per account,
region and hour, listing the files delivered that hour with the SHA-256 of their uncompressed content, signed
(SHA256withRSA) over ``endTime \\n bucket/key \\n sha256(digest) \\n previous signature``, chained to the previous
digest of the same (account, region).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ingester.integrity import PublicKey

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class DigestObject:
    key: str
    body: bytes
    metadata: dict[str, str]


@dataclass
class DigestWriter:
    """Plays CloudTrail's digest delivery for one organization trail."""

    bucket: str
    org_id: str
    trail_name: str
    home_region: str
    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    # (account, region) -> (key, uncompressed body, signature) of the last digest: the chain
    _previous: dict[tuple[str, str], tuple[str, bytes, str]] = field(default_factory=dict)

    def public_key(self, valid_from: datetime, valid_to: datetime) -> PublicKey:
        der = self.private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return PublicKey(
            fingerprint=hashlib.md5(
                der
            ).hexdigest(),  # what AWS's documented examples show; ingester never relies on it
            value=der,
            validity_start=valid_from,
            validity_end=valid_to,
        )

    def digest(self, account: str, region: str, end: datetime, files: Iterable[tuple[str, bytes]]) -> DigestObject:
        """The digest of the hour ending at ``end``; ``files`` are (key, gzip body) delivered in that hour."""
        end = end.astimezone(UTC)
        org = f"{self.org_id}/" if self.org_id else ""
        folder = f"AWSLogs/{org}{account}/CloudTrail-Digest/{region}/{end:%Y/%m/%d}/"
        name = f"{account}_CloudTrail-Digest_{region}_{self.trail_name}_{self.home_region}_{end:%Y%m%dT%H%M%SZ}"
        key = f"{folder}{name}.json.gz"
        previous = self._previous.get((account, region))
        body: dict[str, Any] = {
            "awsAccountId": account,
            "digestStartTime": (end - timedelta(hours=1)).strftime(_STAMP),
            "digestEndTime": end.strftime(_STAMP),
            "digestS3Bucket": self.bucket,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": self.public_key(end, end).fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "previousDigestS3Bucket": self.bucket if previous else None,
            "previousDigestS3Object": previous[0] if previous else None,
            "previousDigestHashValue": hashlib.sha256(previous[1]).hexdigest() if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[2] if previous else None,
            "logFiles": [
                {
                    "s3Bucket": self.bucket,
                    "s3Object": file_key,
                    "hashValue": hashlib.sha256(gzip.decompress(gz)).hexdigest(),
                    "hashAlgorithm": "SHA-256",
                }
                for file_key, gz in files
            ],
        }
        raw = orjson.dumps(body)
        signing = "\n".join(
            [
                body["digestEndTime"],
                f"{self.bucket}/{key}",
                hashlib.sha256(raw).hexdigest(),
                previous[2] if previous else "null",
            ]
        )
        signature = self.private_key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()
        self._previous[(account, region)] = (key, raw, signature)
        return DigestObject(
            key, gzip.compress(raw, mtime=0), {"signature": signature, "signature-algorithm": "SHA256withRSA"}
        )
