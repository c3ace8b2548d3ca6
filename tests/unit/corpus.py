"""Access to the shared corpus of real CloudTrail data (read in place, never copied into the repo).

The corpus lives beside the repository (``<repo>/../shared/corpus``); tests that need it skip, with the path in
the reason, when it is absent.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "corpus"
RECORDS_PATH = CORPUS_DIR / "aws-docs" / "records.ndjson"
DIGESTS_PATH = CORPUS_DIR / "aws-docs" / "digests.ndjson"


def missing_reason(path: Path) -> str:
    return f"CloudTrail corpus not found at {path} (the shared corpus is read in place, not vendored)"


def _ndjson(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_records() -> list[tuple[str, dict[str, Any]]]:
    """``(source_page, record)`` for every documented record; empty when the corpus is absent."""
    return [(entry["source_page"], entry["record"]) for entry in _ndjson(RECORDS_PATH)]


def load_digests() -> list[dict[str, Any]]:
    """The documented digest files (each a JSON object, not a log file); empty when the corpus is absent."""
    return [entry["digest"] for entry in _ndjson(DIGESTS_PATH)]


def record_bytes(record: dict[str, Any]) -> bytes:
    """Pretty-printed on purpose: a re-encoding by the code under test would come out compact and differ."""
    return json.dumps(record, indent=2).encode()


def log_file(records: list[bytes], *, compress: bool = True) -> bytes:
    """A CloudTrail log file holding exactly these record bytes, gzipped like the ones CloudTrail writes."""
    body = b'{"Records": [\n' + b",\n".join(records) + b"\n]}"
    return gzip.compress(body, mtime=0) if compress else body
