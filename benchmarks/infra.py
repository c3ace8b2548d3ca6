"""The benchmark's services and process plumbing: moto's server and a Kafka broker as processes, topics and their
sizes, and the peak RSS of a mode from ``os.wait4`` through a small launcher.

Why a launcher (launch.py): on Linux the ``ru_maxrss`` that ``wait4`` reports for a child includes the RSS of
the process it was spawned from (exec keeps the high-water mark of the memory map it replaces). Spawned directly
from this orchestrator, which holds boto3, aiokafka and the broker's client, every mode would report at least
the orchestrator's size. The launcher is a bare ``python -S -I`` of a few MB that forks the mode and waits for
it, so what it reports is the mode's own peak.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.infra.kafka_broker import KafkaBroker, create_topic  # noqa: E402
from tests.infra.moto_server import MotoServer  # noqa: E402

LAUNCHER = Path(__file__).with_name("launch.py")

__all__ = ["KafkaBroker", "Launched", "MotoProcess", "launch", "make_topics", "pid_of_broker", "topic_sizes", "warm_up"]


class MotoProcess(MotoServer):
    """The tests' moto server process, seeded so account and organization ids repeat between runs."""

    def start(self, *, seed: int, timeout_s: float = 30.0) -> None:  # type: ignore[override]
        super().start(timeout_s)
        self.seed(seed)


def pid_of_broker(broker: KafkaBroker) -> int:
    """The broker JVM's pid, found by its config file on the command line (KafkaBroker does not expose it)."""
    needle = str(broker.config_file).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no process runs the broker config {broker.config_file}")


@dataclass(frozen=True)
class Launched:
    exit_code: int
    wall_seconds: float
    peak_rss_bytes: int
    cpu_user_seconds: float
    cpu_system_seconds: float


def launch(argv: list[str], *, log: Path, rusage: Path, env: dict[str, str], timeout_s: float) -> Launched:
    """Run ``argv`` under the launcher; its stdout and stderr go to ``log``."""
    started = time.monotonic()
    with log.open("wb") as out:
        # Its own session, so a timeout or Ctrl-C can end the launcher and the mode together (one group).
        process = subprocess.Popen(
            [sys.executable, "-S", "-I", str(LAUNCHER), str(rusage), "--", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        try:
            process.wait(timeout_s)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    usage = json.loads(rusage.read_text())
    return Launched(
        exit_code=int(usage["exit_code"]),
        wall_seconds=time.monotonic() - started,
        peak_rss_bytes=int(usage["maxrss_kib"]) * 1024,
        cpu_user_seconds=float(usage["utime"]),
        cpu_system_seconds=float(usage["stime"]),
    )


async def topic_size(bootstrap: str, topic: str) -> int:
    """Messages in a topic: the sum of its partitions' end offsets (idempotent producer: no gaps, no markers)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not described or described[0]["error_code"] != 0:
        raise RuntimeError(f"topic {topic} cannot be described: {described}")
    partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends.values())


def topic_sizes(bootstrap: str, topics: list[str]) -> dict[str, int]:
    async def all_sizes() -> dict[str, int]:
        return {topic: await topic_size(bootstrap, topic) for topic in topics}

    return asyncio.run(all_sizes())


def warm_up(bootstrap: str, records: int = 30_000) -> None:
    """Produce ~45 MB before measuring, so the first Kafka mode does not pay for the broker JVM's JIT warm-up."""

    async def produce() -> None:
        await create_topic(bootstrap, "bench-warm-up", partitions=4)
        value = b"x" * 1500
        for compression in (None, "zstd"):
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, compression_type=compression
            )
            await producer.start()
            try:
                for n in range(records // 2):
                    await producer.send("bench-warm-up", value, key=str(n).encode())
                await producer.flush()
            finally:
                await producer.stop()

    asyncio.run(produce())


def make_topics(bootstrap: str, topic: str, dead_letter_topic: str) -> None:
    async def both() -> None:
        await create_topic(bootstrap, topic, partitions=4)
        await create_topic(bootstrap, dead_letter_topic, partitions=1)

    asyncio.run(both())
