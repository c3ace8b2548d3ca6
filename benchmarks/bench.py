"""``scripts/bench.sh``: every mode on the same generated data, one run, one table (issue 5, first part).

Steps: start moto's server (seeded) and a real Kafka broker; build an organization with an organization trail;
generate the log files into ``benchmarks/out/data`` and upload them to the trail's bucket; then run each mode
in its own process (see modes.py), one after the other. Each mode times its own work and the CPU time that it,
moto, the broker and the rest of the machine spent meanwhile; the orchestrator adds the mode's peak RSS
(``os.wait4``) and checks the counts: the records the mode reports, and what reached the topic or the file, must
equal the records generated; a mismatch fails the run. Report: stdout and ``benchmarks/out/results.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import get_args

import msgspec

from benchmarks.common import Dataset, ModeResult, ModeSpec
from benchmarks.dataset import MEMBER_ACCOUNTS, generate, upload
from benchmarks.infra import (
    REPO_ROOT,
    KafkaBroker,
    Launched,
    MotoProcess,
    launch,
    make_topics,
    pid_of_broker,
    topic_sizes,
    warm_up,
)
from benchmarks.report import Row, machine_lines, render
from ingester.codec.encode import OutputFormat
from ingester.config import SinkSettings
from ingester.demo.world import build_organization

DEFAULT_FILES = 1_500
QUICK_FILES = 300
MODE_TIMEOUT_SECONDS = 600
MODES = (
    "floor",
    "floor-stdlib",
    "s3-ceiling",
    "naive",
    "ingester-s3-kafka",
    "ingester-file-kafka",
    "ingester-s3-file",
    "ingester-file-file-x1",
    "ingester-file-file-x2",
    "ingester-file-file-backlog",
)
KAFKA_MODES = frozenset({"naive", "ingester-s3-kafka", "ingester-file-kafka"})
FILE_MODES = frozenset(
    {"ingester-s3-file", "ingester-file-file-x1", "ingester-file-file-x2", "ingester-file-file-backlog"}
)


class BenchError(Exception):
    """A mode failed or delivered the wrong count."""


@dataclass(frozen=True)
class Context:
    out: Path
    dataset: Dataset
    manifest: Path
    moto: MotoProcess
    broker: KafkaBroker
    broker_pid: int
    naive_files: int
    run_id: str
    output_format: OutputFormat


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench.sh", description="Every mode on the same generated CloudTrail data; one table."
    )
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help=f"log files to generate ({DEFAULT_FILES})")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: --files {QUICK_FILES}")
    parser.add_argument("--seed", type=int, default=7, help="generator and moto seed (7)")
    parser.add_argument(
        "--naive-files", type=int, default=0, help="naive mode on the first N files of the listing only (0 = all)"
    )
    parser.add_argument(
        "--format",
        choices=get_args(OutputFormat),
        default=SinkSettings().format,
        help=f"output format of the floor and the ingester modes (sink.format; default {SinkSettings().format})",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out", help="work and result dir")
    args = parser.parse_args(argv)
    if args.quick:
        args.files = QUICK_FILES
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown or args.files < 1 or args.naive_files < 0:
        parser.error(f"bad --modes {sorted(unknown)}" if unknown else "--files must be >= 1, --naive-files >= 0")
    return args


def machine() -> dict[str, object]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    versions = {
        name: metadata.version(name) for name in ("isal", "msgspec", "aiokafka", "aiobotocore", "moto", "uvloop")
    }
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gb": round(mem_kib / 1024**2, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_1m": os.getloadavg()[0],
        "libraries": versions,
    }


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INGESTER_"))}
    return env | {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def run_mode(ctx: Context, mode: str) -> Row:
    run_dir = ctx.out / "run"
    files = ctx.dataset.in_key_order()
    if mode == "naive" and ctx.naive_files:
        files = files[: ctx.naive_files]
    expected_records = sum(f.records for f in files)
    spec = ModeSpec(
        mode=mode,
        manifest=str(ctx.manifest),
        data_dir=str(ctx.out / "data"),
        format=ctx.output_format,
        endpoint=ctx.moto.endpoint,
        bootstrap=ctx.broker.bootstrap,
        topic=f"bench-{mode}-{ctx.run_id}" if mode in KAFKA_MODES else "",
        dead_letter_topic=f"bench-{mode}-{ctx.run_id}-dlq" if mode in KAFKA_MODES else "",
        checkpoint=str(run_dir / f"{mode}.sqlite"),
        output=str(run_dir / f"{mode}.ndjson"),
        files=ctx.naive_files if mode == "naive" else 0,
        moto_pid=ctx.moto.pid,
        kafka_pid=ctx.broker_pid,
    )
    if mode in KAFKA_MODES:
        make_topics(ctx.broker.bootstrap, spec.topic, spec.dead_letter_topic)
    launched, result = launch_mode(spec, run_dir, mode, ctx.out / "logs" / f"{mode}.log")
    check(ctx, mode, spec, result, expected_records, len(files))
    return Row(
        mode=mode,
        result=result,
        peak_rss_bytes=launched.peak_rss_bytes,
        process_cpu_seconds=launched.cpu_user_seconds + launched.cpu_system_seconds,
        process_wall_seconds=launched.wall_seconds,
    )


def launch_mode(
    spec: ModeSpec, work: Path, tag: str, log: Path, *, wrap: tuple[str, ...] = ()
) -> tuple[Launched, ModeResult]:
    """Run ``spec.mode`` in its own process under the launcher (its files named ``work/<tag>.*``); a failure
    raises BenchError with the tail of its log. ``wrap`` prefixes the command (a profiler)."""
    spec_path, result_path = work / f"{tag}.spec.json", work / f"{tag}.result.json"
    spec_path.write_bytes(msgspec.json.encode(spec))
    launched = launch(
        [*wrap, sys.executable, "-m", "benchmarks.modes", spec.mode, str(spec_path), str(result_path)],
        log=log,
        rusage=work / f"{tag}.rusage.json",
        env=child_env(),
        timeout_s=MODE_TIMEOUT_SECONDS,
    )
    if launched.exit_code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BenchError(f"mode {spec.mode} ({tag}) exited with {launched.exit_code}; {log}:\n{tail}")
    return launched, msgspec.json.decode(result_path.read_bytes(), type=ModeResult)


def check(ctx: Context, mode: str, spec: ModeSpec, result: ModeResult, records: int, files: int) -> None:
    """Fail loudly unless every generated record was delivered, once, and nothing was rejected."""
    problems: list[str] = []
    if result.files != files:
        problems.append(f"{result.files} files processed, {files} expected")
    if mode == "s3-ceiling":
        if result.compressed_bytes != ctx.dataset.compressed_bytes:
            problems.append(f"{result.compressed_bytes} bytes read, {ctx.dataset.compressed_bytes} stored")
    elif result.records != records:
        problems.append(f"{result.records} records reported, {records} generated")
    problems += [f"{name} = {value:g}" for name, value in result.extra.items() if name in MUST_BE_ZERO and value]
    if mode in KAFKA_MODES:
        problems += topic_problems(ctx.broker.bootstrap, spec, records)
    if mode in FILE_MODES:
        # The output, or one per worker process (<output>.w<n>), each with its dead-letter file beside it.
        output = Path(spec.output)
        outputs = [path for path in output.parent.glob(output.name + "*") if not path.name.endswith(".json")]
        dead_letters = [path for path in outputs if path.name.endswith(".dead-letter.ndjson")]
        written = sum(count_lines(path) for path in outputs if path not in dead_letters)
        if written != records:
            problems.append(f"{output}* hold {written} events, {records} generated")
        dead = sum(count_lines(path) for path in dead_letters)
        if dead:
            problems.append(f"{dead} dead letters written")
        for path in outputs:
            path.unlink()
    if problems:
        raise BenchError(f"COUNT CHECK FAILED in mode {mode}: " + "; ".join(problems))


def topic_problems(bootstrap: str, spec: ModeSpec, records: int) -> list[str]:
    """What is wrong with a Kafka mode's topics: the events topic must hold ``records``, the dead letters none."""
    problems = []
    sizes = topic_sizes(bootstrap, [spec.topic, spec.dead_letter_topic])
    if sizes[spec.topic] != records:
        problems.append(f"topic {spec.topic} holds {sizes[spec.topic]} messages, {records} generated")
    if sizes[spec.dead_letter_topic]:
        problems.append(f"dead-letter topic holds {sizes[spec.dead_letter_topic]} messages")
    return problems


MUST_BE_ZERO = frozenset({"rejected", "objects_rejected", "objects_errored", "dead_letters"})


def prepare(out: Path) -> None:
    for name in ("data", "run", "kafka"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("data", "run", "kafka", "logs", "moto"):
        (out / name).mkdir(parents=True, exist_ok=True)


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%X')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    out: Path = args.out.resolve()
    modes = [mode for mode in MODES if mode in args.modes.split(",")]
    prepare(out)
    host = machine()
    print(machine_lines(host), flush=True)
    moto, broker = MotoProcess(out / "moto"), KafkaBroker(out / "kafka")
    rows: list[Row] = []
    try:
        with ThreadPoolExecutor(1) as pool:
            broker_started = pool.submit(broker.start)  # the JVM starts while the data is generated
            progress("starting moto, generating and uploading the dataset")
            moto.start(seed=args.seed)
            world = build_organization(moto.endpoint, members=MEMBER_ACCOUNTS)
            set_up = time.monotonic()
            dataset = generate(world, out / "data", seed=args.seed, files=args.files, workers=os.cpu_count() or 1)
            generated = time.monotonic()
            manifest = out / "run" / "dataset.json"
            manifest.write_bytes(msgspec.json.encode(dataset))
            upload(dataset, out / "data", moto.endpoint)
            uploaded = time.monotonic()
            broker_started.result()
        warm_up(broker.bootstrap)
        progress(
            f"{len(dataset.files)} files, {dataset.records} records generated in {generated - set_up:.1f} s, "
            f"uploaded in {uploaded - generated:.1f} s; Kafka broker at {broker.bootstrap}"
        )
        naive_files = min(args.naive_files, len(dataset.files)) if args.naive_files else 0
        ctx = Context(
            out, dataset, manifest, moto, broker, pid_of_broker(broker), naive_files, uuid.uuid4().hex[:8], args.format
        )
        for mode in modes:
            progress(f"mode {mode} ...")
            row = run_mode(ctx, mode)
            rows.append(row)
            progress(f"mode {mode}: {row.result.timing.elapsed_seconds:.1f} s, counts verified")
    except BenchError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()
        moto.stop()
    report, results = render(host, dataset, rows, naive_files, args.format, total_seconds=time.monotonic() - began)
    print(report)
    (out / "results.json").write_bytes(msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n")
    print(f"results: {out / 'results.json'}")
    return 0
