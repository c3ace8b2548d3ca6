"""Worker._fetch: a plain first attempt, then tenacity's retries: same attempt count, same retry metric, and
permanent errors are not retried."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ingester.errors import ObjectGoneError, SourceError
from ingester.models import LogObject
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.worker import ByteBudget, Worker, reservation_factor


class FlakySource:
    """Fails with the queued errors, then returns the body."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def get(self, key: str) -> bytes:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return b"body of " + key.encode()


def worker_and_item(source: FlakySource, max_attempts: int) -> tuple[Worker, Any, Telemetry]:
    telemetry = Telemetry()
    sink: Any = None  # _fetch never reaches the sink
    worker = Worker(
        sink, ByteBudget(1 << 20, telemetry), telemetry, fmt="raw", max_attempts=max_attempts, backoff_multiplier=0.001
    )
    item = SimpleNamespace(job=SimpleNamespace(source=source), obj=LogObject("k", 10, 0.0))
    return worker, item, telemetry


def retries(telemetry: Telemetry) -> float:
    return telemetry.registry.get_sample_value("ingester_retries_total", {"stage": "source"}) or 0.0


@pytest.mark.parametrize("failures", [0, 1, 2, 4])
async def test_retriable_errors_are_retried_up_to_max_attempts(failures: int) -> None:
    source = FlakySource(*(SourceError(f"503 #{n}", code="SlowDown") for n in range(failures)))
    worker, item, telemetry = worker_and_item(source, max_attempts=5)
    assert await worker._fetch(item) == b"body of k"
    assert source.calls == failures + 1
    assert retries(telemetry) == failures


async def test_the_last_error_is_raised_after_max_attempts() -> None:
    source = FlakySource(*(SourceError(f"503 #{n}", code="SlowDown") for n in range(3)))
    worker, item, telemetry = worker_and_item(source, max_attempts=3)
    with pytest.raises(SourceError, match="503 #2"):
        await worker._fetch(item)
    assert source.calls == 3 and retries(telemetry) == 2


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_permanent_errors_are_not_retried(max_attempts: int) -> None:
    source = FlakySource(ObjectGoneError("404 NoSuchKey", code="NoSuchKey"))
    worker, item, telemetry = worker_and_item(source, max_attempts=max_attempts)
    with pytest.raises(ObjectGoneError):
        await worker._fetch(item)
    assert source.calls == 1 and retries(telemetry) == 0


async def test_one_attempt_means_no_retry() -> None:
    source = FlakySource(SourceError("503", code="SlowDown"))
    worker, item, _ = worker_and_item(source, max_attempts=1)
    with pytest.raises(SourceError):
        await worker._fetch(item)
    assert source.calls == 1


def test_the_reservation_counts_what_an_object_holds() -> None:
    """12x the compressed size for the JSON, times what is held per JSON byte in each format (the encoded events
    come on top of the JSON and the decoded records): OCSF holds the most, and less without raw_data."""
    factors = {fmt: reservation_factor(fmt) for fmt in ("raw", "native", "ocsf")}
    assert factors == {"raw": 36, "native": 37, "ocsf": 60}
    assert reservation_factor("ocsf", raw_data=False) == 47
    assert reservation_factor("raw", raw_data=False) == 36  # raw_data is an OCSF attribute only
