"""Fixtures over the shared corpus; every test that uses them skips with the corpus path when it is absent."""

from __future__ import annotations

from typing import Any

import pytest

from .corpus import DIGESTS_PATH, RECORDS_PATH, load_digests, load_records, missing_reason

_RECORDS = load_records()
_RECORD_PARAMS = [
    pytest.param(entry, id=f"{index:02d}-{entry[0].removesuffix('.md')}-{entry[1].get('eventName', 'insight')}")
    for index, entry in enumerate(_RECORDS)
] or [pytest.param(None, id="no-corpus", marks=pytest.mark.skip(reason=missing_reason(RECORDS_PATH)))]


@pytest.fixture
def corpus_records() -> list[tuple[str, dict[str, Any]]]:
    """Every documented record as ``(source_page, record)``."""
    if not _RECORDS:
        pytest.skip(missing_reason(RECORDS_PATH))
    return _RECORDS


@pytest.fixture(params=_RECORD_PARAMS)
def corpus_record(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """One documented record per test instance, as ``(source_page, record)``."""
    entry: tuple[str, dict[str, Any]] = request.param
    return entry


@pytest.fixture
def corpus_digests() -> list[dict[str, Any]]:
    digests = load_digests()
    if not digests:
        pytest.skip(missing_reason(DIGESTS_PATH))
    return digests
