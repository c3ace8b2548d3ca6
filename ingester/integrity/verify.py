"""Verify digests and log files exactly as AWS documents it; every failure is a :class:`Violation`, never raised.

Sources, followed to the letter: "Custom implementations of CloudTrail log file integrity validation"
(awsdocs/aws-cloudtrail-user-guide, cloudtrail-log-file-custom-validation.md) and the reference implementation
it describes, the AWS CLI's ``cloudtrail validate-logs`` (aws/aws-cli,
awscli/customizations/cloudtrail/validation.py: ``Sha256RSADigestValidator``, ``DigestTraverser``).

The data signing string, UTF-8, lines joined by ``\\n`` (not the platform separator), no trailing newline::

    <digestEndTime, the file's own string>\\n
    <digestS3Bucket>/<digestS3Object>\\n
    <hex SHA-256 of the digest file's *uncompressed* bytes>\\n
    <previousDigestSignature, hex as in the file; the four letters "null" when it is JSON null>

The signature is x-amz-meta-signature, hex; it is RSA PKCS#1 v1.5 over SHA-256 of that string
(``SHA256withRSA``), checked with the public key of the digest's region whose fingerprint is
``digestPublicKeyFingerprint``. A log file's ``hashValue`` is hex SHA-256 of its *uncompressed* content (both
AWS pages say so, and the CLI inflates before hashing): hashing the gzip object would flag every file.

Why results instead of exceptions: a failed check is data (an alert event, a metric, a routing decision in
enforce mode), and the pipeline makes that decision once per object, from the ``kind``.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256 as SHA256Hash
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ingester.integrity.digest import (
    SHA256,
    SHA256_WITH_RSA,
    ChainLink,
    Digest,
    DigestFile,
    DigestFormatError,
    LogFileEntry,
    inflate,
    sha256_hex,
)
from ingester.integrity.keys import PublicKey

AlertKind = Literal[
    "file_hash_mismatch", "digest_signature_invalid", "chain_broken", "public_key_unknown", "file_not_in_digest"
]

# The literal the signing string carries for a starting digest. The AWS CLI: "The value must be 'null' to match
# the Java implementation" (Java formats a null String as "null").
NULL_PREVIOUS_SIGNATURE = "null"


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    """One failed check: what kind, on which object (the log file, or the digest), and why."""

    kind: AlertKind
    bucket: str
    key: str
    detail: str
    expected: str = ""
    actual: str = ""


def signing_string(digest: Digest, bucket: str, key: str, digest_bytes: bytes) -> bytes:
    """The data signing string of a digest read from ``s3://bucket/key``.

    ``digest_bytes`` is the object as fetched (gzip) or already inflated; it is hashed uncompressed either way.
    The path is where the digest was read; :func:`verify_signature` first checks that it is also where the
    digest says it was written (the docs' "verify that the digest file has been retrieved from its original
    location"), so the two are the same whenever a signature can verify.
    """
    return _signing_string(digest, bucket, key, sha256_hex(inflate(digest_bytes, key)))


def _signing_string(digest: Digest, bucket: str, key: str, digest_sha256: str) -> bytes:
    previous = digest.previous_digest_signature
    if previous is None:
        previous = NULL_PREVIOUS_SIGNATURE
    return f"{digest.digest_end_time}\n{bucket}/{key}\n{digest_sha256}\n{previous}".encode()


def verify_signature(digest_file: DigestFile, public_key: bytes) -> Violation | None:
    """Check a digest's own signature with ``public_key``: DER, as ListPublicKeys returns it.

    AWS documents the key as PKCS#1 RSAPublicKey, and its own example list also shows an X.509
    SubjectPublicKeyInfo: both load. The caller chose the key by fingerprint (see :mod:`.keys`).
    """
    digest, bucket, key = digest_file.digest, digest_file.bucket, digest_file.key

    def invalid(detail: str, expected: str = "", actual: str = "") -> Violation:
        return Violation(
            kind="digest_signature_invalid", bucket=bucket, key=key, detail=detail, expected=expected, actual=actual
        )

    if digest.digest_s3_bucket != bucket or digest.digest_s3_object != key:
        return invalid(
            "digest has been moved from its original location",
            expected=f"s3://{digest.digest_s3_bucket}/{digest.digest_s3_object}",
            actual=f"s3://{bucket}/{key}",
        )
    if not digest_file.signature or not digest_file.signature_algorithm:
        return invalid("object has no x-amz-meta-signature / x-amz-meta-signature-algorithm metadata")
    if digest_file.signature_algorithm != SHA256_WITH_RSA:
        return invalid(
            "unsupported signature algorithm", expected=SHA256_WITH_RSA, actual=digest_file.signature_algorithm
        )
    try:
        signature = bytes.fromhex(digest_file.signature)
    except ValueError:
        return invalid("x-amz-meta-signature is not hexadecimal")
    try:
        loaded = load_der_public_key(public_key)
    except (ValueError, UnsupportedAlgorithm) as exc:
        return invalid(f"public key {digest.digest_public_key_fingerprint} cannot be loaded: {exc}")
    if not isinstance(loaded, rsa.RSAPublicKey):
        return invalid(f"public key {digest.digest_public_key_fingerprint} is not an RSA key")
    message = _signing_string(digest, bucket, key, digest_file.sha256)
    try:
        loaded.verify(signature, message, padding.PKCS1v15(), SHA256Hash())
    except InvalidSignature:
        return invalid("signature verification failed")
    return None


def verify_chain(previous: ChainLink | None, current: Digest) -> Violation | None:
    """Check that ``current`` points back to ``previous``: location, signature and hash of its bytes.

    ``previous`` is the last digest of the same chain (see :func:`~.digest.chain_id`) that the caller read, or
    None when there is none (the first digest it ever sees: nothing to link, nothing to report). A starting
    digest after a known predecessor is reported: CloudTrail starts a new chain only when validation or logging
    was turned off, and files delivered in between were never digested, so completeness cannot be proven there.
    """
    if previous is None:
        return None
    bucket, key = current.digest_s3_bucket, current.digest_s3_object

    def broken(detail: str, expected: str = "", actual: str = "") -> Violation:
        return Violation(kind="chain_broken", bucket=bucket, key=key, detail=detail, expected=expected, actual=actual)

    previous_path = f"s3://{previous.bucket}/{previous.key}"
    if current.is_starting:
        return broken(
            f"chain restarted: starting digest after {previous_path}; log files delivered between "
            f"{previous.digest_end_time} and {current.digest_start_time} were not digested",
            expected=previous_path,
        )
    points_to = f"s3://{current.previous_digest_s3_bucket}/{current.previous_digest_s3_object}"
    if points_to != previous_path:
        return broken("previous digest location differs (a digest missing or out of order)", previous_path, points_to)
    if (current.previous_digest_signature or "").lower() != previous.signature.lower():
        return broken(
            "previousDigestSignature differs from the previous digest's signature",
            previous.signature,
            current.previous_digest_signature or "",
        )
    if current.previous_digest_hash_algorithm != SHA256:
        return broken("unsupported previousDigestHashAlgorithm", SHA256, current.previous_digest_hash_algorithm or "")
    if (current.previous_digest_hash_value or "").lower() != previous.sha256:
        return broken(
            "previousDigestHashValue differs from the SHA-256 of the previous digest",
            previous.sha256,
            current.previous_digest_hash_value or "",
        )
    return None


def verify_digest(digest_file: DigestFile, public_key: PublicKey | None, previous: ChainLink | None) -> list[Violation]:
    """Everything one digest can prove about itself: key known, signature valid, chain intact.

    ``public_key`` is what :meth:`~.keys.KeyRing.select` (or :func:`~.keys.resolve_public_key`) found for the
    digest's fingerprint and time range; None is the ``public_key_unknown`` alert. Empty list: trust its
    ``logFiles`` for :func:`verify_log_file` and :func:`~.reconcile.reconcile`.
    """
    digest = digest_file.digest
    found: list[Violation] = []
    fingerprint = digest.digest_public_key_fingerprint
    if public_key is None or public_key.fingerprint != fingerprint:
        found.append(
            Violation(
                kind="public_key_unknown",
                bucket=digest_file.bucket,
                key=digest_file.key,
                detail="no public key of this region with the digest's fingerprint is valid for its time range",
                expected=fingerprint,
                actual="" if public_key is None else public_key.fingerprint,
            )
        )
    else:
        signature = verify_signature(digest_file, public_key.value)
        if signature is not None:
            found.append(signature)
    chain = verify_chain(previous, digest)
    if chain is not None:
        found.append(chain)
    return found


def log_file_sha256(content: bytes) -> str:
    """Hex SHA-256 of a log file's uncompressed content (inflated first if handed the gzip object).

    The cheap per-object call: the worker already holds the inflated bytes (``ingester.codec.decode.gunzip``),
    and hashlib releases the GIL while it hashes. 64 characters per object is all there is to keep until the
    digest that lists the file arrives.
    """
    return sha256_hex(inflate(content))


def verify_log_hash(entry: LogFileEntry, sha256: str) -> Violation | None:
    """Compare a hash computed at fetch time (:func:`log_file_sha256`) with the digest's ``hashValue``."""
    if entry.hash_algorithm != SHA256:
        return Violation(
            kind="file_hash_mismatch",
            bucket=entry.s3_bucket,
            key=entry.s3_object,
            detail="unsupported hashAlgorithm",
            expected=SHA256,
            actual=entry.hash_algorithm,
        )
    if entry.hash_value.lower() != sha256.lower():
        return Violation(
            kind="file_hash_mismatch",
            bucket=entry.s3_bucket,
            key=entry.s3_object,
            detail="SHA-256 of the uncompressed log file differs from the digest's hashValue",
            expected=entry.hash_value,
            actual=sha256,
        )
    return None


def verify_log_file(entry: LogFileEntry, body: bytes) -> Violation | None:
    """Check one log file against its digest entry; ``body`` is the S3 object or its inflated content."""
    try:
        sha256 = log_file_sha256(body)
    except DigestFormatError as exc:
        return Violation(
            kind="file_hash_mismatch",
            bucket=entry.s3_bucket,
            key=entry.s3_object,
            detail=f"log file cannot be inflated: {exc.detail}",
            expected=entry.hash_value,
        )
    return verify_log_hash(entry, sha256)
