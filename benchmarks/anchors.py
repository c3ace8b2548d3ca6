"""``scripts/bench.sh anchors``: ingester against real anchors, in one run (issue 13).

moto's server caps at ~300 GETs/s, which hid the per-file cost of ingester's S3 path; here the S3 endpoint is
s3s-fs (a Rust S3 server over a folder, built by scripts/fetch-s3s.sh), and the anchors are:

- ``peer``: benchmarks/peer.py, the competent script (boto3 x 32 threads, gzip, orjson, confluent-kafka);
- ``floor``: decode + encode of the same files from local disk, one core, per output format.

ingester runs S3 (s3s-fs) -> Kafka in each format, on the fixed shards of the dataset (no discovery: the
composition of ``modes.ingester_local`` with S3Source on the production client), so what is compared is the
data path. Every mode runs in its own process, on the same files and the same broker, repeated ``--repeats``
times in rotating order (drift and a neighbour's load spread over all modes); the table shows medians, the
spread (min-max) and the ratios ingester / peer and ingester / floor of the same format, per dataset:

- ``mixed``: today's dataset, ~90 records per file (benchmarks/dataset.py);
- ``small``: 1-10 records per file, where per-GET and per-file costs dominate.

Every Kafka run is checked: the topic holds exactly the generated records. Datasets are kept in
``benchmarks/out/anchors`` and reused while seed, profile and file count stay the same (no upload: s3s-fs
serves the folder they are written to). The 1-minute load average is printed with every row: the machine is
shared, and a ratio from one run is worth more than an absolute figure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.bench import (
    MUST_BE_ZERO,
    BenchError,
    launch_mode,
    machine,
    progress,
    topic_problems,
)
from benchmarks.common import Dataset, ModeResult, ModeSpec, load_dataset
from benchmarks.dataset import MEMBER_ACCOUNTS, Profile, generate
from benchmarks.infra import (
    REPO_ROOT,
    KafkaBroker,
    make_topics,
    pid_of_broker,
    warm_up,
)
from benchmarks.report import machine_lines
from ingester.demo.world import World
from tests.infra.kafka_broker import free_port

FORMATS = ("raw", "native", "ocsf", "ocsf-lean")  # ocsf-lean: sink.ocsf_raw_data = false
# Formats also run in 2 processes (``--workers 2``): what ingester does with both cores, as the peer's threads do.
X2_FORMATS = ("raw", "ocsf")
DATASETS: dict[str, tuple[Profile, int, int]] = {  # name: (profile, files, --quick files)
    "mixed": ("mixed", 1_500, 300),
    "small": ("small", 10_000, 2_000),
}
S3S_ACCESS_KEY, S3S_SECRET_KEY = "testing", "testing"  # what child_env gives every mode
_MANAGEMENT = "111111111111"


def world_for(bucket: str) -> World:
    """Fixed ids (no moto here): an organization trail of 4 accounts writing to ``bucket``."""
    return World(
        endpoint="",
        org_id="o-bench00000",
        management_account=_MANAGEMENT,
        accounts=[_MANAGEMENT, *(f"2222222222{n:02d}" for n in range(MEMBER_ACCOUNTS))],
        regions=(),
        bucket=bucket,
        trail_arn=f"arn:aws:cloudtrail:us-east-1:{_MANAGEMENT}:trail/org-trail",
    )


class S3sServer:
    """s3s-fs serving ``root`` (one folder per bucket) on a free port of 127.0.0.1, with SigV4 checked."""

    def __init__(self, binary: Path, root: Path, log: Path) -> None:
        self._binary, self._root, self._log = binary, root, log
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout_s: float = 30.0) -> None:
        self.port = free_port()
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(self._binary),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--access-key",
                    S3S_ACCESS_KEY,
                    "--secret-key",
                    S3S_SECRET_KEY,
                    str(self._root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": "error"},
            )
        deadline = time.monotonic() + timeout_s
        import socket

        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BenchError(f"s3s-fs exited with {self._process.returncode}; see {self._log}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise BenchError(f"s3s-fs did not listen on {self.port} within {timeout_s} s; see {self._log}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@dataclass
class Sample:
    result: ModeResult
    peak_rss_bytes: int
    load_1m: float

    @property
    def records_per_second(self) -> float:
        return self.result.records / self.result.timing.elapsed_seconds

    @property
    def files_per_second(self) -> float:
        return self.result.files / self.result.timing.elapsed_seconds


@dataclass
class Series:
    dataset: str
    label: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, value: str) -> float:
        return float(statistics.median(float(getattr(s, value)) for s in self.samples))

    def timing(self, name: str) -> float:
        return float(statistics.median(float(getattr(s.result.timing, name)) for s in self.samples))


def dataset_for(root: Path, manifests: Path, name: str, profile: Profile, files: int, seed: int) -> Dataset:
    """The dataset in ``root/<bucket>`` (s3s-fs's layout), generated unless the same one is there."""
    bucket = f"bench-{name}-{files}-s{seed}"
    manifest = manifests / f"{bucket}.json"
    if manifest.exists():
        dataset = load_dataset(manifest)
        if len(dataset.files) == files and all((root / bucket / f.key).exists() for f in dataset.files[:10]):
            return dataset
    progress(f"generating dataset {name}: {files} files ({profile} profile, seed {seed})")
    dataset = generate(
        world_for(bucket), root / bucket, seed=seed, files=files, workers=os.cpu_count() or 1, profile=profile
    )
    manifest.write_bytes(msgspec.json.encode(dataset))
    return dataset


@dataclass(frozen=True)
class Run:
    """One mode process: ``mode`` of benchmarks.modes, with a format."""

    label: str
    mode: str
    format: str
    s3_get: str = ""


def runs_for(formats: list[str], s3_gets: list[str]) -> list[Run]:
    """Floors, the peer, ingester per format (and in 2 processes for X2_FORMATS); with ``s3_gets``, ingester raw
    once more per aws.s3_get named."""
    return (
        [Run(f"floor {fmt}", "floor", fmt) for fmt in formats]
        + [Run("peer", "peer", "raw")]
        + [Run(f"ingester {fmt}", "ingester-s3s-kafka", fmt) for fmt in formats]
        + [Run(f"ingester {fmt} x2", "ingester-s3s-kafka-x2", fmt) for fmt in formats if fmt in X2_FORMATS]
        + [Run(f"ingester raw get={get}", "ingester-s3s-kafka", "raw", get) for get in s3_gets]
    )


def run_once(
    out: Path, name: str, dataset: Dataset, run: Run, server: S3sServer, broker: KafkaBroker, *, profile: bool
) -> Sample:
    kafka = run.mode != "floor"
    tag = f"{name}-{re.sub(r'[^A-Za-z0-9]+', '-', run.label)}"
    topic = f"anchors-{tag}-{uuid.uuid4().hex[:8]}" if kafka else ""
    manifest = out / "manifests" / f"{dataset.bucket}.json"
    spec = ModeSpec(
        mode=run.mode,
        manifest=str(manifest),
        data_dir=str(out / "s3" / dataset.bucket),
        format=run.format,  # type: ignore[arg-type]
        endpoint=server.endpoint,
        bootstrap=broker.bootstrap,
        topic=topic,
        dead_letter_topic=f"{topic}-dlq" if kafka else "",
        checkpoint=str(out / "run" / f"{tag}-{uuid.uuid4().hex[:8]}.sqlite"),
        output=str(out / "run" / f"{tag}.out"),  # the x2 modes write their processes' results beside it
        moto_pid=server.pid,  # the S3 server's CPU time is read from this pid
        kafka_pid=pid_of_broker(broker),
        s3_get=run.s3_get,
    )
    if kafka:
        make_topics(broker.bootstrap, spec.topic, spec.dead_letter_topic)
    load = os.getloadavg()[0]
    wrap: tuple[str, ...] = ()
    if profile:  # py-spy's collapsed stacks (one line per stack and its count), native frames included
        folded = out / "profiles" / f"{tag}-{uuid.uuid4().hex[:4]}.folded"
        folded.parent.mkdir(exist_ok=True)
        wrap = (str(Path(sys.executable).with_name("py-spy")), "record", "--native", "-r", "250", "-f", "raw")
        wrap += ("-o", str(folded), "--")
    launched, result = launch_mode(spec, out / "run", tag, out / "logs" / f"{tag}.log", wrap=wrap)
    problems = []
    if (result.files, result.records) != (len(dataset.files), dataset.records):
        problems.append(
            f"{result.files} files / {result.records} records, expected {len(dataset.files)} / {dataset.records}"
        )
    problems += [f"{k} = {v:g}" for k, v in result.extra.items() if k in MUST_BE_ZERO and v]
    if kafka:
        problems += topic_problems(broker.bootstrap, spec, dataset.records)
    if problems:
        raise BenchError(f"COUNT CHECK FAILED in {name} / {run.label}: " + "; ".join(problems))
    Path(spec.checkpoint).unlink(missing_ok=True)
    return Sample(result, launched.peak_rss_bytes, load)


def render(name: str, dataset: Dataset, series: dict[str, Series]) -> tuple[str, dict[str, Any]]:
    files = len(dataset.files)
    lines = [
        f"dataset {name}: {files} files, {dataset.records} records ({dataset.records / files:.1f}/file), "
        f"{dataset.compressed_bytes / 1e6:.1f} MB gzip, {dataset.decompressed_bytes / 1e6:.1f} MB JSON",
        f"{'mode':<26}{'records/s':>10}{'(min-max)':>18}{'files/s':>9}{'CPU s':>7}{'S3 s':>6}{'Kafka s':>8}"
        f"{'RSS MB':>7}{'load':>6}{'/peer':>7}{'/floor':>7}",
    ]
    peer = series.get("peer")
    results: dict[str, Any] = {"files": files, "records": dataset.records, "modes": {}}
    for label, s in series.items():
        rate = s.median("records_per_second")
        spread = [x.records_per_second for x in s.samples]
        fmt = label.split()[1] if label.startswith("ingester") else ""
        floor = series.get(f"floor {fmt}")
        vs_peer = rate / peer.median("records_per_second") if peer and label.startswith("ingester") else None
        vs_floor = rate / floor.median("records_per_second") if floor and label.startswith("ingester") else None
        lines.append(
            f"{label:<26}{rate:>10,.0f}{f'({min(spread):,.0f}-{max(spread):,.0f})':>18}"
            f"{s.median('files_per_second'):>9,.0f}{s.timing('cpu_seconds'):>7.1f}"
            f"{s.timing('moto_cpu_seconds'):>6.1f}{s.timing('kafka_cpu_seconds'):>8.1f}"
            f"{max(x.peak_rss_bytes for x in s.samples) / 1e6:>7.0f}{s.median('load_1m'):>6.2f}"
            f"{f'{vs_peer:.2f}' if vs_peer else '-':>7}{f'{vs_floor:.2f}' if vs_floor else '-':>7}"
        )
        results["modes"][label] = {
            "records_per_second": [round(x.records_per_second, 1) for x in s.samples],
            "files_per_second": [round(x.files_per_second, 1) for x in s.samples],
            "cpu_seconds": [round(x.result.timing.cpu_seconds, 2) for x in s.samples],
            "s3_server_cpu_seconds": [round(x.result.timing.moto_cpu_seconds, 2) for x in s.samples],
            "kafka_cpu_seconds": [round(x.result.timing.kafka_cpu_seconds, 2) for x in s.samples],
            "other_cpu_seconds": [round(x.result.timing.other_cpu_seconds, 2) for x in s.samples],
            "peak_rss_mb": [round(x.peak_rss_bytes / 1e6, 1) for x in s.samples],
            "load_1m": [round(x.load_1m, 2) for x in s.samples],
            "extra": [{k: round(v, 3) for k, v in x.result.extra.items()} for x in s.samples],  # per process (x2)
            "vs_peer": round(vs_peer, 3) if vs_peer else None,
            "vs_floor": round(vs_floor, 3) if vs_floor else None,
        }
    return "\n".join(lines), results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench.sh anchors", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller datasets (300 mixed, 2,000 small files)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every mode, in rotating order (3)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: mixed, small")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: raw, native, ocsf")
    parser.add_argument("--modes", default="floor,peer,ingester", help="comma-separated: floor, peer, ingester")
    parser.add_argument("--mixed-files", type=int, default=0, help="files of the mixed dataset (1500)")
    parser.add_argument("--small-files", type=int, default=0, help="files of the small dataset (10000)")
    parser.add_argument(
        "--s3-get", default="", help="also run ingester raw with each of these aws.s3_get (aiohttp,botocore)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", action="store_true", help="run every mode under py-spy (out/profiles/*.folded); slower"
    )
    parser.add_argument("--s3s", type=Path, help="the s3s-fs binary (default: scripts/fetch-s3s.sh's)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "anchors")
    args = parser.parse_args(argv)
    if set(args.datasets.split(",")) - set(DATASETS) or set(args.formats.split(",")) - set(FORMATS):
        parser.error("unknown dataset or format")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def s3s_binary(given: Path | None) -> Path:
    if given is not None:
        return given
    done = subprocess.run([str(REPO_ROOT / "scripts" / "fetch-s3s.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    out: Path = args.out.resolve()
    for sub in ("run", "kafka"):  # a fresh broker and run dir; the datasets (s3/, manifests/) are kept
        shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("s3", "manifests", "run", "logs", "kafka"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    host = machine()
    print(machine_lines(host), flush=True)
    binary = s3s_binary(args.s3s)
    wanted = {"mixed": args.mixed_files, "small": args.small_files}
    broker = KafkaBroker(out / "kafka")
    server = S3sServer(binary, out / "s3", out / "logs" / "s3s-fs.log")
    modes = set(args.modes.split(","))
    runs = [
        r
        for r in runs_for(args.formats.split(","), [g for g in args.s3_get.split(",") if g])
        if r.mode.split("-")[0] in modes
    ]
    tables: dict[str, Any] = {}
    try:
        with ThreadPoolExecutor(1) as pool:
            broker_started = pool.submit(broker.start)  # the JVM starts while the data is generated
            datasets = {}
            for name in args.datasets.split(","):
                profile, files, quick = DATASETS[name]
                count = wanted[name] or (quick if args.quick else files)
                datasets[name] = dataset_for(out / "s3", out / "manifests", name, profile, count, args.seed)
            broker_started.result()
        server.start()
        warm_up(broker.bootstrap)
        progress(f"s3s-fs at {server.endpoint}, Kafka at {broker.bootstrap}; {args.repeats} repeats")
        series = {name: {run.label: Series(name, run.label) for run in runs} for name in datasets}
        for repeat in range(args.repeats):
            for name, dataset in datasets.items():
                order = runs[repeat % len(runs) :] + runs[: repeat % len(runs)]
                for run in order:
                    sample = run_once(out, name, dataset, run, server, broker, profile=args.profile)
                    series[name][run.label].samples.append(sample)
                    progress(
                        f"repeat {repeat + 1} {name} / {run.label}: {sample.records_per_second:,.0f} records/s, "
                        f"{sample.files_per_second:,.0f} files/s (load {sample.load_1m:.2f})"
                    )
    except BenchError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        broker.stop()
    for name, dataset in datasets.items():
        table, results = render(name, dataset, series[name])
        print(table + "\n")
        tables[name] = results
    total = time.monotonic() - began
    print(
        f"repeats: {args.repeats}, medians; /peer and /floor: ratios of medians (floor of the same format); "
        f"total bench time: {total:.0f} s"
    )
    document = {"machine": host, "s3s_fs": str(binary), "repeats": args.repeats, "datasets": tables}
    (out / "results.json").write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    print(f"results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
