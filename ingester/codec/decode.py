"""Bytes of one S3 object -> typed records. Pure and synchronous: testable and benchmarkable without a loop.

Two-level decode: the envelope yields each record as ``msgspec.Raw`` (a zero-copy slice), then each record is
decoded into the :class:`~ingester.codec.cloudtrail.Record` view. A record that fails becomes a rejection with
msgspec's path in the reason, and the rest of the file still goes through. The whole-file failures (not gzip,
truncated, not JSON, no ``Records``) raise :class:`~ingester.errors.DecodeError` with a bounded ``reason``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from typing import cast

import msgspec
from isal import igzip, isal_zlib

from ingester.codec.cloudtrail import LogFile, Record
from ingester.errors import DecodeError

GZIP_MAGIC = b"\x1f\x8b"
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)  # its stubs type it as an instance

_FILE_DECODER = msgspec.json.Decoder(LogFile)
_RECORD_DECODER = msgspec.json.Decoder(Record)


class FileDecodeError(DecodeError):
    """A whole object failed to decode; ``reason`` is a short code for metrics and dead letters."""

    def __init__(self, key: str, reason: str, detail: str) -> None:
        super().__init__(f"{key}: {reason}: {detail}")
        self.key = key
        self.reason = reason
        self.detail = detail


class RecordRejection(msgspec.Struct, frozen=True):
    index: int
    reason: str
    detail: str
    raw: bytes


class DecodedFile(msgspec.Struct, frozen=True):
    """Decoded records paired with their original bytes, plus the records that could not be decoded."""

    records: list[tuple[msgspec.Raw, Record]]
    rejected: list[RecordRejection]
    decompressed_bytes: int
    # Hex SHA-256 of the decompressed content when asked for (digest verification), else "".
    sha256: str = ""


def gunzip(body: bytes, key: str) -> bytes:
    """isal's igzip is ~2x stdlib zlib on this workload (benchmarks/); errors become FileDecodeError."""
    if not body:
        raise FileDecodeError(key, "empty_object", "zero-byte object")
    if body[:2] != GZIP_MAGIC:
        if body.lstrip()[:1] == b"{":
            return body  # an uncompressed log file (some exporters write them); accept it as is
        raise FileDecodeError(key, "not_gzip", f"object does not start with the gzip magic (got {body[:4]!r})")
    try:
        data: bytes = igzip.decompress(body)  # type: ignore[no-untyped-call]
    except EOFError as exc:
        raise FileDecodeError(key, "truncated_gzip", str(exc)) from exc
    except (OSError, ValueError, zlib.error, _ISAL_ERROR) as exc:
        raise FileDecodeError(key, "corrupt_gzip", str(exc)) from exc
    return data


def split_records(data: bytes, key: str) -> Sequence[msgspec.Raw]:
    """The ``Records`` array as Raw slices of ``data``."""
    if not data.strip():
        raise FileDecodeError(key, "empty_file", "decompressed content is empty")
    try:
        return _FILE_DECODER.decode(data).records
    except msgspec.ValidationError as exc:
        raise FileDecodeError(key, "not_cloudtrail", f"not a CloudTrail log file: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise FileDecodeError(key, "not_json", str(exc)) from exc


def decode_records(raws: Sequence[msgspec.Raw], decompressed_bytes: int = 0) -> DecodedFile:
    """Decode each Raw record; failures are collected, not raised."""
    records: list[tuple[msgspec.Raw, Record]] = []
    rejected: list[RecordRejection] = []
    decode = _RECORD_DECODER.decode
    for index, raw in enumerate(raws):
        try:
            records.append((raw, decode(raw)))
        except msgspec.ValidationError as exc:
            rejected.append(RecordRejection(index, "record_invalid", str(exc), bytes(raw)))
    return DecodedFile(records, rejected, decompressed_bytes)


def decode_object(body: bytes, key: str, *, sha256: bool = False) -> DecodedFile:
    """gunzip + envelope + records: the whole codec front half for one object.

    ``sha256``: also hash the decompressed bytes, which CloudTrail's digests vouch for (hashing here, while
    they are at hand, costs ~3% of the decode + OCSF encode of the file)."""
    data = gunzip(body, key)
    decoded = decode_records(split_records(data, key), len(data))
    if sha256:
        decoded = msgspec.structs.replace(decoded, sha256=hashlib.sha256(data).hexdigest())
    return decoded
