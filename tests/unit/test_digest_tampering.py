"""Tampering, broken chains and unknown keys: each failure AWS's validation procedure detects, as a Violation.

Built on the world of test_digest.py (a key pair of the test's own and three chained, signed hours).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import timedelta

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ingester.integrity import (
    InMemoryPublicKeySource,
    IntegrityAlert,
    KeyRing,
    PublicKey,
    dead_letters,
    encode_alert,
    integrity_alert,
    resolve_public_key,
    verify_chain,
    verify_digest,
    verify_log_file,
    verify_signature,
)

from .test_digest import BUCKET, FIRST_HOUR, SHARD, Published, Trail, world


@pytest.fixture
def public_key() -> PublicKey:
    return world().public_key


@pytest.fixture
def trail() -> Trail:
    return world().trail


@pytest.fixture
def chain() -> list[Published]:
    return world().chain


# --- tampering ---------------------------------------------------------------------------------------------------


def test_tampered_log_file(chain: list[Published], trail: Trail) -> None:
    digest = chain[1].load().digest
    entry = digest.log_files[0]
    original = gzip.decompress(trail.logs[entry.s3_object])
    tampered = original.replace(b'"eventName": "DescribeInstances"', b'"eventName": "DescribeRegions"')
    assert tampered != original
    violation = verify_log_file(entry, gzip.compress(tampered))
    assert violation is not None and violation.kind == "file_hash_mismatch"
    assert (violation.key, violation.expected, violation.actual) == (
        entry.s3_object,
        entry.hash_value,
        hashlib.sha256(tampered).hexdigest(),
    )
    assert verify_log_file(entry, b"\x1f\x8b\x08\x00broken") is not None
    # The documented rule, pinned: the hash is over the uncompressed bytes, never over the gzip object.
    assert hashlib.sha256(trail.logs[entry.s3_object]).hexdigest() != entry.hash_value

    enforced = integrity_alert(SHARD, digest, violation, mode="enforce")
    assert enforced.action == "dead_lettered" and dead_letters("file_hash_mismatch", "enforce")
    reported = msgspec.json.decode(encode_alert(integrity_alert(SHARD, digest, violation, mode="verify")))
    assert reported["action"] == "alerted" and reported["kind"] == "file_hash_mismatch"
    assert reported["digest_key"] == chain[1].key and reported["schema"] == "ingester.integrity_alert.v1"
    assert msgspec.json.decode(encode_alert(enforced), type=IntegrityAlert) == enforced


def test_tampered_digest_body(chain: list[Published], public_key: PublicKey) -> None:
    body = json.loads(gzip.decompress(chain[1].body))
    body["logFiles"] = body["logFiles"][1:]  # hide a file from the digest, keep the signature
    forged = Published(chain[1].key, gzip.compress(json.dumps(body).encode()), chain[1].metadata)
    violation = verify_signature(forged.load(), public_key.value)
    assert violation is not None and violation.kind == "digest_signature_invalid"
    assert violation.detail == "signature verification failed"


@pytest.mark.parametrize(
    ("metadata", "detail"),
    [
        ({}, "no x-amz-meta-signature"),
        ({"signature-algorithm": "SHA256withRSA", "signature": "zz"}, "not hexadecimal"),
        ({"signature-algorithm": "SHA1withRSA", "signature": "00"}, "unsupported signature algorithm"),
        ({"signature-algorithm": "SHA256withRSA", "signature": "00" * 256}, "signature verification failed"),
    ],
)
def test_tampered_digest_signature(
    chain: list[Published], public_key: PublicKey, metadata: dict[str, str], detail: str
) -> None:
    forged = Published(chain[1].key, chain[1].body, metadata)
    violation = verify_signature(forged.load(), public_key.value)
    assert violation is not None and violation.kind == "digest_signature_invalid" and detail in violation.detail


def test_digest_moved_from_its_original_location(chain: list[Published], public_key: PublicKey) -> None:
    copied = chain[1].load(key="elsewhere/" + chain[1].key)
    violation = verify_signature(copied, public_key.value)
    assert violation is not None and "moved" in violation.detail
    assert violation.expected == f"s3://{BUCKET}/{chain[1].key}"


def test_prefixed_metadata_names_are_accepted(chain: list[Published], public_key: PublicKey) -> None:
    metadata = {f"x-amz-meta-{name}": value for name, value in chain[0].metadata.items()}
    assert verify_signature(Published(chain[0].key, chain[0].body, metadata).load(), public_key.value) is None


def test_a_non_rsa_key_is_refused(chain: list[Published]) -> None:
    ec_der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for key in (ec_der, b"not a key"):
        violation = verify_signature(chain[0].load(), key)
        assert violation is not None and violation.kind == "digest_signature_invalid"


# --- the chain -----------------------------------------------------------------------------------------------------


def test_broken_chain_previous_signature_mismatch(chain: list[Published], trail: Trail, public_key: PublicKey) -> None:
    other = chain[0].metadata["signature"]  # a real signature, but not the previous digest's
    bad = trail.digest(FIRST_HOUR + timedelta(hours=2), [], chain[1], previousDigestSignature=other)
    loaded = bad.load()
    assert verify_signature(loaded, public_key.value) is None  # authentic, yet it does not link to chain[1]
    found = verify_digest(loaded, public_key, chain[1].load().link())
    assert [v.kind for v in found] == ["chain_broken"] and "previousDigestSignature" in found[0].detail
    assert not dead_letters("chain_broken", "enforce")


def test_broken_chain_missing_digest(chain: list[Published]) -> None:
    violation = verify_chain(chain[0].load().link(), chain[2].load().digest)  # chain[1] deleted
    assert violation is not None and violation.kind == "chain_broken"
    assert (violation.expected, violation.actual) == (f"s3://{BUCKET}/{chain[0].key}", f"s3://{BUCKET}/{chain[1].key}")


def test_broken_chain_previous_digest_altered(chain: list[Published]) -> None:
    link = chain[1].load().link()
    altered = msgspec.structs.replace(link, sha256=hashlib.sha256(b"another body").hexdigest())
    violation = verify_chain(altered, chain[2].load().digest)
    assert violation is not None and "previousDigestHashValue" in violation.detail


def test_chain_restart_is_reported(chain: list[Published], trail: Trail) -> None:
    restarted = trail.digest(FIRST_HOUR + timedelta(hours=30), [], None)
    violation = verify_chain(chain[2].load().link(), restarted.load().digest)
    assert violation is not None and violation.kind == "chain_broken" and "restarted" in violation.detail


# --- public keys ---------------------------------------------------------------------------------------------------


async def test_unknown_public_key_fingerprint(chain: list[Published], public_key: PublicKey) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = stranger.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    other = msgspec.structs.replace(public_key, fingerprint=hashlib.md5(der).hexdigest(), value=der)
    loaded = chain[1].load()
    key = await resolve_public_key(InMemoryPublicKeySource([other]), KeyRing(), loaded.digest)
    assert key is None
    found = verify_digest(loaded, key, chain[0].load().link())
    assert [v.kind for v in found] == ["public_key_unknown"]
    assert found[0].expected == public_key.fingerprint
    assert integrity_alert(SHARD, loaded.digest, found[0], mode="enforce").action == "dead_lettered"


async def test_right_fingerprint_outside_its_validity_is_unknown(chain: list[Published], public_key: PublicKey) -> None:
    expired = msgspec.structs.replace(
        public_key, validity_start=FIRST_HOUR - timedelta(days=60), validity_end=FIRST_HOUR - timedelta(days=30)
    )
    source = InMemoryPublicKeySource([expired])
    assert await resolve_public_key(source, KeyRing([expired]), chain[0].load().digest) is None


async def test_keys_are_fetched_once_per_rotation(chain: list[Published], public_key: PublicKey) -> None:
    source, ring = InMemoryPublicKeySource([public_key]), KeyRing()
    for published in chain:
        assert await resolve_public_key(source, ring, published.load().digest) == public_key
    assert source.calls == 1 and len(ring) == 1
