"""What the orchestrator and the mode processes share: the dataset manifest, a mode's spec and its result.

Light on purpose (msgspec and ingester.models only): every mode process imports it, and what it imports counts
in that mode's peak RSS.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from ingester.models import Shard

_TICKS = os.sysconf("SC_CLK_TCK")


class FileEntry(msgspec.Struct, frozen=True, array_like=True):
    key: str
    shard: int
    records: int
    compressed_bytes: int
    decompressed_bytes: int


class Dataset(msgspec.Struct, frozen=True, kw_only=True):
    seed: int
    start: str
    bucket: str
    org_id: str
    trail_arn: str
    accounts: list[str]
    regions: list[str]
    shards: list[Shard]
    files: list[FileEntry]

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def compressed_bytes(self) -> int:
        return sum(f.compressed_bytes for f in self.files)

    @property
    def decompressed_bytes(self) -> int:
        return sum(f.decompressed_bytes for f in self.files)

    def start_datetime(self) -> datetime:
        return datetime.fromisoformat(self.start)

    def in_key_order(self) -> list[FileEntry]:
        """Files as one S3 listing of the bucket returns them."""
        return sorted(self.files, key=lambda f: f.key)


class ModeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a mode process needs; written by the orchestrator as JSON."""

    mode: str
    manifest: str
    data_dir: str
    # Output format of the floor and of every ingester mode (sink.format; "ocsf-lean": ocsf without raw_data).
    format: Literal["ocsf", "native", "raw", "ocsf-lean"]
    endpoint: str = ""
    bootstrap: str = ""
    topic: str = ""
    dead_letter_topic: str = ""
    checkpoint: str = ""
    output: str = ""
    # naive: only the first ``files`` keys of the listing (0 = all).
    files: int = 0
    # aws.s3_get of the ingester modes ("" = the default).
    s3_get: str = ""
    # The servers' pids, to read their CPU time around the measured work.
    moto_pid: int = 0
    kafka_pid: int = 0


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    """Wall time of the work and CPU time over the same interval: this process (all its threads), moto's
    server and the Kafka broker."""

    elapsed_seconds: float
    cpu_seconds: float
    moto_cpu_seconds: float
    kafka_cpu_seconds: float
    # CPU time of every other process on the machine meanwhile: the benchmark wants it near zero.
    other_cpu_seconds: float


class ModeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a mode did, measured by itself around the work (imports and process start excluded)."""

    files: int
    records: int
    compressed_bytes: int
    decompressed_bytes: int
    timing: Timing
    extra: dict[str, float] = msgspec.field(default_factory=dict)


def sink_format(fmt: str) -> dict[str, Any]:
    """The sink settings of a benchmark format: "ocsf-lean" is OCSF with ``sink.ocsf_raw_data = false``."""
    return {"format": "ocsf", "ocsf_raw_data": False} if fmt == "ocsf-lean" else {"format": fmt}


def load_dataset(path: str | Path) -> Dataset:
    return msgspec.json.decode(Path(path).read_bytes(), type=Dataset)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (fields 14 and 15 of proc(5))."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Stopwatch:
    """Wall time and the CPU time of this process, of the servers and of the whole machine, until :meth:`lap`."""

    def __init__(self, spec: ModeSpec) -> None:
        self._pids = (spec.moto_pid, spec.kafka_pid)
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        self._servers = tuple(cpu_seconds(pid) if pid else 0.0 for pid in self._pids)
        self._machine = machine_busy_seconds()

    def lap(self) -> Timing:
        cpu = time.process_time() - self._cpu
        moto, kafka = (cpu_seconds(pid) - self._servers[n] if pid else 0.0 for n, pid in enumerate(self._pids))
        machine = machine_busy_seconds() - self._machine
        return Timing(
            elapsed_seconds=time.perf_counter() - self._wall,
            cpu_seconds=cpu,
            moto_cpu_seconds=moto,
            kafka_cpu_seconds=kafka,
            other_cpu_seconds=max(machine - cpu - moto - kafka, 0.0),
        )


def machine_busy_seconds() -> float:
    """CPU time all CPUs spent running processes since boot (user, nice and system of proc(5)'s cpu line;
    interrupt time is left out: loopback traffic between the mode and its servers would count as "other")."""
    user, nice, system = (int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4])
    return (user + nice + system) / _TICKS
