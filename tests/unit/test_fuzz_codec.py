"""Fuzzing the codec with real CloudTrail files: mutated, damaged, re-compressed and re-encoded.

Three properties, each over inputs built from the shared corpus (real records, real log files):

- a few records of a file mutated in ways that keep each one a self-contained JSON-ish value (invalid UTF-8, lone
  surrogates, control characters, deep nesting, huge numbers, duplicate keys, any JSON value, random bytes that
  stdlib ``json`` still reads): the file decodes, every other record that decoded before still decodes to the
  same bytes, a record that is not UTF-8 is rejected as ``invalid_utf8``, and every format encodes what decoded;
- a file damaged anywhere (cut short, bytes flipped, inserted or deleted, its gzip broken): nothing but
  FileDecodeError leaves ``decode_object``, and nothing leaves ``encode_file``;
- a file re-compressed or re-encoded (other gzip levels, several gzip members, no gzip, a BOM, other JSON
  spacing, escaping and key order): every record is delivered, with the same content.

Each example runs ``encode_file`` in every format and checks that what comes out is UTF-8 JSON. The ``ci``
profile is derandomized (the same examples every run) and bounded; ``benchmarks/fuzz.py`` runs the same
properties for as long as asked, with fresh randomness.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import hypothesis
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingester.codec.cloudtrail import Record
from ingester.codec.decode import UTF8_BOM, DecodedFile, FileDecodeError, RecordRejection, decode_object, is_utf8
from ingester.codec.encode import OutputFormat, encode_file
from ingester.codec.normalize import epoch_ms
from ingester.models import Shard

from .corpus import CORPUS_DIR, load_records, missing_reason, record_bytes

KEY = (
    "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/111122223333_CloudTrail_us-east-1_20240501T0000Z_fuzz.json.gz"
)
SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-east-1:111122223333:trail/fuzz",
    bucket="amzn-s3-demo-bucket",
    key_prefix="",
    org_id="",
    account_id="111122223333",
    region="us-east-1",
    reader_account="111122223333",
)
FORMATS: tuple[OutputFormat, ...] = ("raw", "native", "ocsf")
FILE_REASONS = {
    "empty_object",
    "not_gzip",
    "truncated_gzip",
    "corrupt_gzip",
    "empty_file",
    "not_json",
    "not_cloudtrail",
}
# Real log files up to this size are inputs as they are; bigger ones only slow every example down.
SMALL_FILE_BYTES = 48 * 1024

# Examples per property in CI: 2,400 in all, ~18 CPU seconds on this 2-core machine (hypothesis's generation is
# most of it); the wall time when it is idle, up to 5x that when others load it. benchmarks/fuzz.py runs more.
CI_EXAMPLES = {"mutated_records": 1200, "damaged_file": 800, "recoded_file": 400}
settings.register_profile(
    "ci",
    derandomize=True,  # reproducible: the same examples on every run and machine
    database=None,  # nothing written into the work tree; a failure prints its reproduction blob instead
    deadline=10_000,  # ms per example: generous for a loaded machine; the slowest (100,000-deep) take ~0.5 s
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------------------------------- corpus


def _corpus_records() -> list[bytes]:
    """Every record of the corpus as its source text: the public ndjson lines, the AWS-docs records."""
    records = [record_bytes(record) for _, record in load_records()]
    for path in sorted((CORPUS_DIR / "public" / "records").glob("*.ndjson")):
        records += [line for line in path.read_bytes().splitlines() if line.strip()]
    return records


def _small_files() -> list[bytes]:
    paths = sorted((CORPUS_DIR / "public" / "files").rglob("*.json"))
    return [path.read_bytes() for path in paths if path.stat().st_size <= SMALL_FILE_BYTES]


RECORDS = _corpus_records()
SMALL_FILES = _small_files()
pytestmark = pytest.mark.skipif(not RECORDS or not SMALL_FILES, reason=missing_reason(CORPUS_DIR / "public"))


@dataclass(frozen=True)
class LogText:
    """An uncompressed log file and where each of its records lies in it."""

    text: bytes
    spans: tuple[tuple[int, int], ...]


def _log_text(records: list[bytes], separator: bytes = b",\n") -> LogText:
    head = b'{"Records": [\n'
    spans, position = [], len(head)
    for record in records:
        spans.append((position, position + len(record)))
        position += len(record) + len(separator)
    return LogText(head + separator.join(records) + b"\n]}", tuple(spans))


def _located(text: bytes) -> LogText:
    """A real file's record spans: msgspec's slices, found in order (each is an exact substring)."""
    spans, position = [], 0
    for raw in msgspec.json.decode(text, type=dict[str, list[msgspec.Raw]])["Records"]:
        start = text.index(bytes(raw), position)
        position = start + len(bytes(raw))
        spans.append((start, position))
    return LogText(text, tuple(spans))


# Real material: up to 8 corpus records in a fresh envelope, or a whole real log file.
BASE_FILES: st.SearchStrategy[LogText] = st.one_of(
    st.builds(
        _log_text,
        st.lists(st.sampled_from(RECORDS), min_size=1, max_size=8),
        st.sampled_from([b",\n", b",", b" ,\r\n\t"]),
    ),
    st.sampled_from([_located(text) for text in SMALL_FILES]),
)


# ------------------------------------------------------------------------------------------------ mutations

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INVALID_UTF8 = [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xe2\x82", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80"]
_ESCAPES = [b"\\ud800", b"\\udc00", b"\\udbff\\u0041", b"\\udc00\\ud800", b"\\u0000", b"\\ud83d\\ude00", b"\\u001f"]
_NUMBERS = [b"1e400", b"-1e400", b"1e-400", str(2**70).encode(), str(-(2**70)).encode(), b"9" * 500, b"-0", b"0e0"]
_NAMES = [
    "eventName", "eventTime", "eventSource", "eventID", "readOnly", "userIdentity", "requestParameters",
    "responseElements", "resources", "recipientAccountId", "tlsDetails", "insightDetails", "futureField",
]  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _deep(levels: int, kind: str) -> bytes:
    if kind == "arrays":
        return b"[" * levels + b"]" * levels
    if kind == "objects":
        return b'{"a":' * levels + b"1" + b"}" * levels
    return b'[{"a":' * (levels // 2) + b"null" + b"}]" * (levels // 2)


# JSON values (or near-JSON: raw control characters in a string) that a record may hold. Strategies are built
# once: building one per draw costs more than the codec does.
HOSTILE_VALUES: st.SearchStrategy[bytes] = st.one_of(
    st.builds(
        lambda value, ascii_only: json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"),
        _JSON,
        st.booleans(),
    ),
    st.builds(_deep, st.integers(1, 3000), st.sampled_from(["arrays", "objects", "mixed"])),
    st.sampled_from(_NUMBERS),
    st.lists(st.integers(0, 0x1F), min_size=1, max_size=4).map(lambda chars: b'"a' + bytes(chars) + b'"'),
    st.sampled_from(_ESCAPES).map(lambda escape: b'"' + escape + b'"'),
    st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=6).map(lambda high: b'"' + bytes(high) + b'"'),
)
# Bytes put inside a string: not UTF-8, escapes of lone surrogates and friends, any high bytes, control bytes.
_INTO_STRING: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(_INVALID_UTF8),
    st.sampled_from(_ESCAPES),
    st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=6).map(bytes),
    st.lists(st.integers(0, 0x1F), min_size=1, max_size=3).map(bytes),
)
_MEMBERS: st.SearchStrategy[bytes] = st.builds(
    lambda name, value: json.dumps(name).encode() + b": " + value, st.sampled_from(_NAMES), HOSTILE_VALUES
)
_MUTATIONS = st.sampled_from(["into_string", "member", "replace", "bytes"])
_BYTE_EDITS = st.sampled_from(["flip", "insert", "delete"])


@st.composite
def mutated_record(draw: st.DrawFn, record: bytes) -> tuple[bytes, bool]:
    """``record`` mutated, and whether the result is surely self-contained (else stdlib json decides)."""
    kind = draw(_MUTATIONS)
    strings = [(match.start(), match.end()) for match in _STRING.finditer(record)]
    if kind == "into_string" and strings:
        start, end = strings[draw(st.integers(0, len(strings) - 1))]
        at = start + 1 if draw(st.booleans()) else end - 1
        return record[:at] + draw(_INTO_STRING) + record[at:], True
    if kind in ("member", "into_string"):
        return _with_member(record, draw(_MEMBERS), first=draw(st.booleans())), True
    if kind == "replace":
        return draw(HOSTILE_VALUES), True
    mutated = bytearray(record)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(mutated) - 1, 0)))
        operation = draw(_BYTE_EDITS)
        if operation == "insert" or not mutated:
            mutated[at:at] = bytes([draw(st.integers(0, 255))])
        elif operation == "flip":
            mutated[at] ^= draw(st.integers(1, 255))
        else:
            del mutated[at]
    return bytes(mutated), False


def _with_member(record: bytes, member: bytes, *, first: bool) -> bytes:
    """``member`` added to the object ``record``, first or last (the last of duplicate keys wins)."""
    opening, closing = record.index(b"{"), record.rindex(b"}")
    empty = not record[opening + 1 : closing].strip()
    if first:
        return record[: opening + 1] + member + (b"" if empty else b",") + record[opening + 1 :]
    return record[:closing] + (b"" if empty else b",") + member + record[closing:]


@dataclass(frozen=True)
class MutatedFile:
    base: LogText
    text: bytes
    # index of each mutated record -> (its new bytes, surely self-contained)
    mutated: dict[int, tuple[bytes, bool]]
    gzipped: bool


@st.composite
def mutated_files(draw: st.DrawFn) -> MutatedFile:
    base = draw(BASE_FILES)
    indices = draw(st.sets(st.integers(0, len(base.spans) - 1), min_size=1, max_size=min(3, len(base.spans))))
    mutated: dict[int, tuple[bytes, bool]] = {}
    text = base.text
    for index in sorted(indices, reverse=True):  # from the end, so earlier spans stay valid
        start, end = base.spans[index]
        mutated[index] = draw(mutated_record(text[start:end]))
        text = text[:start] + mutated[index][0] + text[end:]
    return MutatedFile(base, text, mutated, draw(st.booleans()))


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """An object as S3 could hand it over after something went wrong: any damage, anywhere."""
    text = draw(BASE_FILES).text
    for _ in range(draw(st.integers(0, 3))):
        damage = draw(st.sampled_from(["cut", "flip", "insert", "delete", "garbage"]))
        at = draw(st.integers(0, len(text)))
        if damage == "cut":
            text = text[:at]
        elif damage == "flip" and at < len(text):
            text = text[:at] + bytes([text[at] ^ draw(st.integers(1, 255))]) + text[at + 1 :]
        elif damage == "insert":
            text = text[:at] + draw(st.binary(min_size=1, max_size=8)) + text[at:]
        elif damage == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 64)) :]
        else:
            text = text[:at] + draw(st.sampled_from([b"]", b"}", b"{", b"[", b'"', b"\\", b",", b'"Records":']))
            text += draw(st.binary(max_size=4))
    body = gzip.compress(text, compresslevel=1, mtime=0) if draw(st.booleans()) else text
    for _ in range(draw(st.integers(0, 2))):  # damage to the gzip stream itself
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        if draw(st.booleans()):
            body = body[:at]
        elif body:
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    return body


@dataclass(frozen=True)
class RecodedFile:
    original: bytes
    body: bytes
    how: str


@st.composite
def recoded_files(draw: st.DrawFn) -> RecodedFile:
    """The same records, stored differently: re-compressed, or re-encoded as other JSON."""
    text = draw(BASE_FILES).text
    how = draw(st.sampled_from(["gzip-level", "members", "plain", "bom", "bom-gzip", "json"]))
    if how == "json":
        indent = draw(st.sampled_from([None, 0, 1, 2, "\t"]))
        separators = draw(st.sampled_from([None, (",", ":"), (" , ", " : ")]))
        text = json.dumps(
            json.loads(text),
            indent=indent,
            separators=separators,
            ensure_ascii=draw(st.booleans()),
            sort_keys=draw(st.booleans()),
        ).encode()
        how += f" indent={indent!r} separators={separators!r}"
    if how == "gzip-level":
        body = gzip.compress(text, compresslevel=draw(st.integers(0, 9)), mtime=0)
    elif how == "members":  # concatenated gzip members are one gzip file (RFC 1952)
        cut = draw(st.integers(0, len(text)))
        body = gzip.compress(text[:cut], mtime=0) + gzip.compress(text[cut:], mtime=0)
    elif how == "plain":
        body = draw(st.sampled_from([b"", b"\n", b"  \r\n\t"])) + text
    elif how == "bom":
        body = UTF8_BOM + text
    elif how == "bom-gzip":
        body = gzip.compress(UTF8_BOM + text, mtime=0)
    else:
        body = gzip.compress(text, mtime=0)
    return RecodedFile(gzip.compress(text, mtime=0), body, how)


# ------------------------------------------------------------------------------------------------- checks


@contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, previous))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _is_json_value(text: bytes) -> bool:
    """The oracle for a randomly mutated record: stdlib json, tolerant of what the lexical cut does not mind
    (bytes that are not UTF-8, control characters in strings), reads it as one value; then it is self-contained."""
    try:
        with _recursion_limit(10_000):
            json.loads(text.decode("utf-8", "surrogateescape"), strict=False)
    except (ValueError, RecursionError):
        return False
    return True


def _by_index(decoded: DecodedFile[Record]) -> dict[int, bytes]:
    """The delivered records by their index in the file (the indices the rejections do not take, in order)."""
    taken = {rejection.index for rejection in decoded.rejected}
    total = len(decoded.records) + len(decoded.rejected)
    indices = [index for index in range(total) if index not in taken]
    return {index: bytes(raw) for index, (raw, _) in zip(indices, decoded.records, strict=True)}


def encode_everywhere(decoded: DecodedFile[Record]) -> dict[OutputFormat, int]:
    """Every format: nothing escapes, no record is refused but one without a usable eventTime (dead-lettered as
    ``no_event_time``, never sent at time 0), each value is UTF-8 JSON; raw values are the bytes."""
    timeless = {index for index, (_, record) in enumerate(decoded.records) if not epoch_ms(record.event_time)}
    kept = [pair for index, pair in enumerate(decoded.records) if index not in timeless]
    counts: dict[OutputFormat, int] = {}
    for fmt in FORMATS:
        rejected: list[RecordRejection] = []
        out = encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt, rejected=rejected)
        assert [rejection.reason for rejection in rejected] == ["no_event_time"] * len(timeless), rejected
        assert len(out) == len(kept)
        for outbound, (raw, _) in zip(out, kept, strict=True):
            outbound.value.decode("utf-8")
            with suppress(RecursionError):  # nesting near the limit, decoded once already one frame shallower
                msgspec.json.decode(outbound.value, type=msgspec.Raw)  # JSON syntax; numbers of any size
            if fmt == "raw":
                assert outbound.value == bytes(raw)
        counts[fmt] = len(out)
    return counts


def check_mutated_records(case: MutatedFile) -> None:
    before = _by_index(decode_object(log_file_body(case.base.text, gzipped=True), KEY))
    body = log_file_body(case.text, gzipped=case.gzipped)

    after_file = decode_object(body, KEY)  # every mutated record is self-contained: no FileDecodeError either

    after = _by_index(after_file)
    reasons = {rejection.index: rejection.reason for rejection in after_file.rejected}
    assert len(after) + len(reasons) == len(case.base.spans)
    for index, raw in before.items():
        if index not in case.mutated:
            assert after.get(index) == raw, f"record {index} was lost: {reasons.get(index)}"
    for index, (record, _) in case.mutated.items():
        if not is_utf8(record):
            assert reasons.get(index) == "invalid_utf8"
        elif index in after:
            assert after[index] == record.strip(b" \t\r\n")
        else:
            assert reasons[index] == "record_invalid"
    encode_everywhere(after_file)


def check_randomly_mutated_records(case: MutatedFile) -> None:
    """Byte-level mutations are held to the strong property only when the oracle calls them self-contained."""
    if all(sure or _is_json_value(record) for record, sure in case.mutated.values()):
        check_mutated_records(case)
    else:
        check_damaged_file(log_file_body(case.text, gzipped=case.gzipped))


def check_damaged_file(body: bytes) -> None:
    try:
        decoded = decode_object(body, KEY)
    except FileDecodeError as error:
        assert error.reason in FILE_REASONS
        return
    encode_everywhere(decoded)


def check_recoded_file(case: RecodedFile) -> None:
    original = decode_object(case.original, KEY)

    recoded = decode_object(case.body, KEY)

    assert recoded.rejected == original.rejected == []
    assert [json.loads(bytes(raw)) for raw, _ in recoded.records] == [
        json.loads(bytes(raw)) for raw, _ in original.records
    ]
    assert encode_everywhere(recoded) == encode_everywhere(original)


def log_file_body(text: bytes, *, gzipped: bool) -> bytes:
    return gzip.compress(text, compresslevel=1, mtime=0) if gzipped else text


# Each property: its strategy and its check, for the tests below and for benchmarks/fuzz.py.
PROPERTIES: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], None]]] = {
    "mutated_records": (mutated_files(), check_randomly_mutated_records),
    "damaged_file": (damaged_files(), check_damaged_file),
    "recoded_file": (recoded_files(), check_recoded_file),
}


def run_property(name: str, profile: str, examples: int, *, seed: int | None = None) -> int:
    """Run one property for ``examples`` examples under a registered profile (``seed``: a reproducible random
    run); returns how many examples ran. A failure raises, with hypothesis's minimal example and blob."""
    strategy, check = PROPERTIES[name]
    count = 0

    def counted(case: Any) -> None:
        nonlocal count
        count += 1
        check(case)

    counted.__name__ = counted.__qualname__ = f"fuzz_{name}"  # derandomize seeds from the name: keep it stable
    test = settings(settings.get_profile(profile), max_examples=examples)(given(strategy)(counted))
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    test()
    return count


@pytest.mark.parametrize("name", list(CI_EXAMPLES))
def test_fuzz_codec(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    began = time.perf_counter()

    count = run_property(name, "ci", CI_EXAMPLES[name])

    with capsys.disabled():
        print(f"\n{name}: {count} examples in {time.perf_counter() - began:.1f} s", end=" ")
    assert count >= CI_EXAMPLES[name] // 2  # hypothesis may stop early, but not this early


def test_mutations_are_real() -> None:
    """The strategies make what they claim (a guard against a fuzz test that silently fuzzes nothing)."""
    base = _log_text([RECORDS[0], RECORDS[1]])
    assert msgspec.json.decode(base.text)["Records"] == [json.loads(RECORDS[0]), json.loads(RECORDS[1])]
    for path_text in SMALL_FILES[:5]:
        located = _located(path_text)
        assert [path_text[a:b] for a, b in located.spans] == [
            bytes(raw) for raw in msgspec.json.decode(path_text, type=dict[str, list[msgspec.Raw]])["Records"]
        ]
    assert _with_member(b"{}", b'"a": 1', first=True) == b'{"a": 1}'
    assert _with_member(b'{"b": 2}', b'"a": 1', first=False) == b'{"b": 2,"a": 1}'
    assert _is_json_value(b'{"a": "\xff\x01"}') and not _is_json_value(b'{"a": "x}')
