"""Bytes of one S3 object -> typed records. Pure and synchronous: testable and benchmarkable without a loop.

Two-level decode: the envelope yields each record as ``msgspec.Raw`` (a zero-copy slice), then each record is
decoded into the :class:`~ingester.codec.cloudtrail.Record` view (for the raw format, which sends the bytes as
written, only into its :class:`~ingester.codec.cloudtrail.RecordHead`: the fields its key and headers read).
A record that fails becomes a rejection with msgspec's path in the reason, and the rest of the file still goes
through. The whole-file failures (not gzip,
truncated, not JSON, no ``Records``) raise :class:`~ingester.errors.DecodeError` with a bounded ``reason``.

One bad record must not cost its neighbours, whatever is wrong with it, because the object is the unit of
acknowledgement: a file that fails whole is dead-lettered whole, and an exception that escapes stops the
pipeline on the same file at every start. So:

- the envelope decode validates every byte, and refuses the file for a lone surrogate escape, a raw control
  character or nesting deeper than the recursion limit in one record; then :mod:`.salvage` cuts the array by
  brackets and quotes, and each record is decoded (and accepted or rejected) alone;
- every exception of a record's decode is a rejection of that record (``record_invalid``);
- a record that is not valid UTF-8 is rejected (``invalid_utf8``): the typed decode checks only the strings it
  reads, and the free-form parts would carry the bad bytes into every output format. The check is per file
  (``bytes.isascii``, then a UTF-8 decode in chunks when the file is not ASCII), per record only after it fails.
"""

from __future__ import annotations

import codecs
import hashlib
import zlib
from codecs import utf_8_decode
from collections.abc import Iterable, Sequence
from typing import Final, Generic, Literal, TypeVar, cast, overload

import msgspec
from isal import igzip, isal_zlib

from ingester.codec.cloudtrail import DECODE_ERRORS, LogFile, Record, RecordHead
from ingester.codec.salvage import split_leniently
from ingester.errors import DecodeError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM: Final = b"\xef\xbb\xbf"
_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)  # its stubs type it as an instance
# A non-ASCII file is checked for UTF-8 in chunks of this size: the decoded text of one chunk (at most 4x its
# size) is all the check holds at once, instead of the text of the whole file.
_UTF8_CHUNK_BYTES: Final = 1 << 20

_FILE_DECODER = msgspec.json.Decoder(LogFile)
_RECORD_DECODER = msgspec.json.Decoder(Record)
_HEAD_DECODER = msgspec.json.Decoder(RecordHead)
# A file's records: the whole Record view, or only the head (the raw format, which sends the bytes as written).
R_co = TypeVar("R_co", bound=RecordHead, covariant=True)


class FileDecodeError(DecodeError):
    """A whole object failed to decode; ``reason`` is a short code for metrics and dead letters."""

    def __init__(self, key: str, reason: str, detail: str) -> None:
        super().__init__(f"{key}: {reason}: {detail}")
        self.key = key
        self.reason = reason
        self.detail = detail


class RecordRejection(msgspec.Struct, frozen=True):
    """One record that will not be delivered: ``index`` in the file's Records array, a short ``reason``
    (``record_invalid``, ``invalid_utf8``, ``record_unencodable``, ``no_event_time``), the error, and the
    record's bytes."""

    index: int
    reason: str
    detail: str
    raw: bytes


class DecodedFile(msgspec.Struct, Generic[R_co], frozen=True):
    """Decoded records paired with their original bytes, plus the records that could not be decoded."""

    records: Sequence[tuple[msgspec.Raw, R_co]]
    rejected: list[RecordRejection]
    decompressed_bytes: int
    # Hex SHA-256 of the decompressed content when asked for (digest verification), else "".
    sha256: str = ""
    # The records are RecordHead views (decode_object(head_only=True)): enough for the raw format only.
    head_only: bool = False


def full_records(decoded: DecodedFile[RecordHead]) -> Sequence[tuple[msgspec.Raw, Record]]:
    """The records of a file decoded whole (native and OCSF read every field); a head-only decode is refused
    here, once per file, rather than failing as a missing attribute on every record."""
    if decoded.head_only:
        raise ValueError("records decoded head-only (the raw format's view): native and OCSF need decode_object()")
    return cast("Sequence[tuple[msgspec.Raw, Record]]", decoded.records)


def gunzip(body: bytes, key: str) -> bytes:
    """isal's igzip is ~2x stdlib zlib on this workload (benchmarks/); errors become FileDecodeError."""
    if not body:
        raise FileDecodeError(key, "empty_object", "zero-byte object")
    if body[:2] != GZIP_MAGIC:
        if body[:3] == UTF8_BOM or body.lstrip()[:1] == b"{":
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
    """The ``Records`` array as Raw slices of ``data``. When msgspec refuses the file, the slices that
    :func:`~ingester.codec.salvage.split_leniently` cuts, each still to be validated by its own decode; when
    that fails too, the file is not JSON (truncated, corrupt) and msgspec's error says where."""
    if data[:3] == UTF8_BOM:
        data = data[3:]  # RFC 8259 lets a parser ignore a BOM; a copy, but only of the rare file that has one
    if not data.strip():
        raise FileDecodeError(key, "empty_file", "decompressed content is empty")
    try:
        return _FILE_DECODER.decode(data).records
    except msgspec.ValidationError as exc:
        raise FileDecodeError(key, "not_cloudtrail", f"not a CloudTrail log file: {exc}") from exc
    except DECODE_ERRORS as exc:
        salvaged = split_leniently(data)
        if salvaged is None:
            raise FileDecodeError(key, "not_json", describe(exc)) from exc
        return salvaged


@overload
def decode_records(
    raws: Sequence[msgspec.Raw],
    decompressed_bytes: int = ...,
    *,
    utf8_checked: bool = ...,
    head_only: Literal[False] = ...,
) -> DecodedFile[Record]: ...


@overload
def decode_records(
    raws: Sequence[msgspec.Raw], decompressed_bytes: int = ..., *, utf8_checked: bool = ..., head_only: bool
) -> DecodedFile[RecordHead]: ...


def decode_records(
    raws: Sequence[msgspec.Raw], decompressed_bytes: int = 0, *, utf8_checked: bool = False, head_only: bool = False
) -> DecodedFile[RecordHead]:
    """Decode each Raw record; failures are collected, not raised. ``utf8_checked``: the caller has found the
    bytes these slices come from to be valid UTF-8 (as :func:`decode_object` does, per file); otherwise each
    record is checked here first. ``head_only``: decode the :class:`RecordHead` fields only (the raw format);
    the other keys are then checked for JSON syntax but not for their types, since they are sent as written."""
    rejected: list[RecordRejection] = []
    indexed: Iterable[tuple[int, msgspec.Raw]] = enumerate(raws)
    if not utf8_checked:
        rejected = [
            RecordRejection(index, "invalid_utf8", str(error), bytes(raw))
            for index, raw in enumerate(raws)
            if (error := _utf8_error(raw)) is not None
        ]
        if rejected:
            invalid = {rejection.index for rejection in rejected}
            indexed = ((index, raw) for index, raw in enumerate(raws) if index not in invalid)
    records: list[tuple[msgspec.Raw, RecordHead]] = []
    sort = bool(rejected)
    decode = (_HEAD_DECODER if head_only else _RECORD_DECODER).decode
    for index, raw in indexed:  # the try costs nothing until a record fails (CPython 3.11 zero-cost exceptions)
        try:
            records.append((raw, decode(raw)))
        except msgspec.ValidationError as exc:
            rejected.append(RecordRejection(index, "record_invalid", str(exc), bytes(raw)))
        except DECODE_ERRORS as exc:
            rejected.append(RecordRejection(index, "record_invalid", describe(exc), bytes(raw)))
    if sort:
        rejected.sort(key=lambda rejection: rejection.index)
    return DecodedFile(records, rejected, decompressed_bytes, head_only=head_only)


@overload
def decode_object(
    body: bytes, key: str, *, sha256: bool = ..., head_only: Literal[False] = ...
) -> DecodedFile[Record]: ...


@overload
def decode_object(body: bytes, key: str, *, sha256: bool = ..., head_only: bool) -> DecodedFile[RecordHead]: ...


def decode_object(body: bytes, key: str, *, sha256: bool = False, head_only: bool = False) -> DecodedFile[RecordHead]:
    """gunzip + envelope + records: the whole codec front half for one object.

    ``sha256``: also hash the decompressed bytes, which CloudTrail's digests vouch for (hashing here, while
    they are at hand, costs ~3% of the decode + OCSF encode of the file). ``head_only``: see
    :func:`decode_records`."""
    data = gunzip(body, key)
    decoded = decode_records(split_records(data, key), len(data), utf8_checked=is_utf8(data), head_only=head_only)
    if sha256:
        decoded = msgspec.structs.replace(decoded, sha256=hashlib.sha256(data).hexdigest())
    return decoded


def is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8. ASCII (most CloudTrail files) is answered by ``bytes.isascii``, which
    allocates nothing and runs at memory speed; other files are decoded chunk by chunk, the text thrown away."""
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(view), _UTF8_CHUNK_BYTES):
            decoder.decode(view[start : start + _UTF8_CHUNK_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def describe(exc: BaseException) -> str:
    """msgspec's message as is (it names the problem and the byte); any other error's with its type, since
    RecursionError's alone ("maximum recursion depth exceeded...") does not say it was the data's nesting."""
    text = str(exc) if isinstance(exc, msgspec.MsgspecError) else f"{type(exc).__name__}: {exc}"
    return text[:500]


def _utf8_error(raw: msgspec.Raw) -> UnicodeDecodeError | None:
    try:
        utf_8_decode(raw, "strict", True)
    except UnicodeDecodeError as exc:
        return exc
    return None
