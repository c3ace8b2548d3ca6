"""One endpoint for a pod of worker processes (ops/pod.py): every worker's series under a ``worker`` label,
readiness only when every worker is ready (naming the ones that are not), liveness failing on a stuck worker.

The workers here are real health servers (ops/health.py) on Unix sockets, fed by real Telemetry; the pod
endpoint is the parent's, in its own thread, on a TCP port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingester.models import Shard
from ingester.ops import health
from ingester.ops.pod import (
    HEALTH_TIMEOUT_SECONDS,
    Answer,
    PodEndpoint,
    WorkerSocket,
    liveness,
    merge_metrics,
    readiness,
)
from ingester.ops.telemetry import Telemetry
from tests.infra.kafka_broker import free_port


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delivered(telemetry: Telemetry, files: int) -> Telemetry:
    for _ in range(files):
        telemetry.object_settled("delivered", records=10, compressed=100, decompressed=1000)
        telemetry.sent(0.02)
    return telemetry


def test_series_keep_their_values_under_a_worker_label() -> None:
    first, second = delivered(Telemetry(), 2), delivered(Telemetry(), 3)
    first.shard_progress("111111111111", "us-east-1", 42.0)
    answers = [
        Answer("1/3", 200, generate_latest(first.registry).decode()),
        Answer("2/3", 200, generate_latest(second.registry).decode()),
        Answer("3/3", 0, error="not serving"),
    ]
    merged = samples(merge_metrics(answers).decode())
    objects = {
        dict(labels)["worker"]: value
        for (name, labels), value in merged.items()
        if name == "ingester_objects_total" and ("outcome", "delivered") in labels
    }
    assert objects == {"1/3": 2.0, "2/3": 3.0}
    assert merged[("ingester_records_total", frozenset({("worker", "2/3")}))] == 30.0
    assert merged[("ingester_sink_send_seconds_count", frozenset({("worker", "1/3")}))] == 2.0
    lag = frozenset({("account", "111111111111"), ("region", "us-east-1"), ("worker", "1/3")})
    assert merged[("ingester_shard_lag_seconds", lag)] == 42.0
    up = {dict(labels)["worker"]: value for (name, labels), value in merged.items() if name == "ingester_worker_up"}
    assert up == {"1/3": 1.0, "2/3": 1.0, "3/3": 0.0}
    # Every sample carries its worker; the one HELP/TYPE per family is the exposition format's rule.
    assert all(("worker" in dict(labels)) for (_, labels) in merged)


def test_ready_only_when_every_worker_is_and_the_reasons_are_named() -> None:
    ready = Answer("1/2", 200, "ready\ndegraded: s3://a/: bucket_unavailable: gone\n")
    assert readiness([ready, Answer("2/2", 200, "ready\n")]) == (
        200,
        "ready\ndegraded: s3://a/: bucket_unavailable: gone\n",
    )
    stalled = Answer("2/2", 503, "sink stalled for 70 s: KafkaConnectionError\n")
    assert readiness([ready, stalled]) == (
        503,
        "worker 2/2: sink stalled for 70 s: KafkaConnectionError\ndegraded: s3://a/: bucket_unavailable: gone\n",
    )
    assert readiness([Answer("1/2", 0, error="not serving (ClientConnectorError): starting, or exited")]) == (
        503,
        "worker 1/2: not serving (ClientConnectorError): starting, or exited\n",
    )


def test_live_unless_a_worker_is_stuck() -> None:
    starting = Answer("2/2", 0, error="not serving")
    assert liveness([Answer("1/2", 200, "ok\n"), starting]) == (200, "ok\n")
    stuck = Answer("2/2", 0, error="no answer within 2 s (event loop stuck?)", timed_out=True)
    assert liveness([Answer("1/2", 200, "ok\n"), stuck]) == (
        503,
        "worker 2/2: no answer within 2 s (event loop stuck?)\n",
    )


@pytest.fixture
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pod-") as path:  # short: a Unix socket path is limited
        yield Path(path)


@contextlib.asynccontextmanager
async def worker(telemetry: Telemetry, path: Path) -> AsyncIterator[None]:
    stop = asyncio.Event()
    serving = asyncio.create_task(health.serve(telemetry, 0, stop, socket_path=str(path)))
    for _ in range(500):  # until it listens
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_unix_connection(str(path))
            writer.close()
            break
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        stop.set()
        await serving


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_the_pod_port_answers_for_every_worker(directory: Path) -> None:
    ready, starting = delivered(Telemetry(), 2), delivered(Telemetry(), 1)
    ready.discovered = ready.sink_connected = True
    starting.sink_connected = True  # its first discovery pass is still running
    shard = Shard(trail_arn="t", bucket="b", key_prefix="", org_id="", account_id="1", region="r", reader_account="1")
    ready.shard_fault(shard, "s3", "throttled")
    sockets = [WorkerSocket("1/2", str(directory / "w0.sock")), WorkerSocket("2/2", str(directory / "w1.sock"))]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with worker(ready, directory / "w0.sock"), worker(starting, directory / "w1.sock"):
        with PodEndpoint(sockets, port):
            async with aiohttp.ClientSession() as session:
                assert await get(session, f"{base}/livez") == (200, "ok\n")
                status, body = await get(session, f"{base}/readyz")
                assert status == 503
                assert body.splitlines()[0] == "worker 2/2: discovery pending"
                assert any(line.startswith("degraded: ") for line in body.splitlines())
                starting.discovered = True
                assert (await get(session, f"{base}/readyz"))[0] == 200
                status, text = await get(session, f"{base}/metrics")
                merged = samples(text)
                total = sum(
                    value
                    for (name, labels), value in merged.items()
                    if name == "ingester_objects_total" and ("outcome", "delivered") in labels
                )
                assert status == 200 and total == 3.0


async def test_a_stuck_worker_fails_liveness(directory: Path) -> None:
    """A worker whose server takes the connection and never answers (as a blocked event loop does)."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(HEALTH_TIMEOUT_SECONDS * 3)
        writer.close()

    alive = Telemetry()
    server = await asyncio.start_unix_server(never_answer, path=str(directory / "w1.sock"))
    sockets = [WorkerSocket("1/2", str(directory / "w0.sock")), WorkerSocket("2/2", str(directory / "w1.sock"))]
    port = free_port()
    try:
        async with worker(alive, directory / "w0.sock"):
            with PodEndpoint(sockets, port):
                async with aiohttp.ClientSession() as session:
                    status, body = await get(session, f"http://127.0.0.1:{port}/livez")
    finally:
        server.close()
    assert status == 503
    assert body == f"worker 2/2: no answer within {HEALTH_TIMEOUT_SECONDS:g} s (event loop stuck?)\n"


def test_a_port_in_use_fails_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        with pytest.raises(OSError), PodEndpoint([], taken.getsockname()[1]):
            pass
