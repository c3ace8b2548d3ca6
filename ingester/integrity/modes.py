"""Integrity modes: what ingester does with CloudTrail's digests, and what a failed check costs.

``IntegrityMode = Literal["off", "verify", "enforce"]``

``off``
    Nothing is verified: no ListPublicKeys call, no hashing, no alert. Digests may still be read for
    *reconciliation*, which is a separate switch (on by default when the trail has LogFileValidationEnabled):
    completeness events then carry ``digest_verified: false``, a count of what an unverified digest claims.

``verify``
    Detect and report, never hold back or reroute data. Per digest (hourly, per chain): the public key is
    resolved from ListPublicKeys for the digest's region and time range (:func:`.keys.resolve_public_key`),
    then :func:`.verify.verify_digest` checks the signature and the link to the previous digest of the chain.
    Per log file: the worker hashes the uncompressed bytes it already inflated (:func:`.verify.log_file_sha256`,
    64 characters to keep per settled key) and, once the digest listing that key is verified, compares it with
    :func:`.verify.verify_log_hash`; a file fetched after its digest is checked at once. Events always go to the
    main topic; every failure is one ``IntegrityAlert`` and one metric increment, labelled by ``kind``.

``enforce``
    As ``verify``, and a file whose integrity fails is not published as genuine: its events go to the
    dead-letter topic instead of the main topic (:func:`dead_letters`). This needs the verdict *before* sending,
    so a file is sent only once the digest listing it is verified: delivery waits for the hourly digest (up to
    about an hour and a quarter of latency), and the shard's listing is driven by, or held behind, its digests.
    A digest whose signature fails, or whose key AWS never published, vouches for nothing: all its files are
    dead-lettered. A broken chain is alerted but does not reroute: the current digest is authentic, it is an
    *earlier* digest that went missing or changed (or validation was off for a while).

Why three modes: verification costs a hash per file and a key lookup per region and rotation, cheap enough to
be the default where validation is on; enforcement costs latency, which only some consumers should pay.
"""

from __future__ import annotations

from typing import Literal

from ingester.integrity.verify import AlertKind

IntegrityMode = Literal["off", "verify", "enforce"]
DEFAULT_MODE: IntegrityMode = "verify"

# The failures after which a file's events are not trustworthy; chain_broken concerns an earlier digest.
ENFORCED_KINDS: frozenset[AlertKind] = frozenset(
    {"file_hash_mismatch", "digest_signature_invalid", "public_key_unknown", "file_not_in_digest"}
)


def dead_letters(kind: AlertKind, mode: IntegrityMode) -> bool:
    """Whether the events of a file concerned by a ``kind`` failure go to the dead-letter topic."""
    return mode == "enforce" and kind in ENFORCED_KINDS
