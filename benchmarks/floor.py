"""``python -m benchmarks.floor``: the decode floor alone, in seconds, without moto or Kafka.

For working on the codec: generates the same kind of dataset as ``scripts/bench.sh`` (same generator, same
seed, same file-size mix; the organization's ids are fixed here instead of coming from moto, which changes a few
bytes per record, not the counts), then runs the ``floor`` mode (and, with ``--stdlib``, ``floor-stdlib``) in its
own process under the launcher, checks the counts against the manifest and prints the same table rows.

    .venv/bin/python -m benchmarks.floor --files 1500 [--format ocsf] [--stdlib]

The data is kept in ``benchmarks/out/floor`` and reused while seed and file count stay the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import get_args

import msgspec

from benchmarks.bench import DEFAULT_FILES, BenchError, child_env, machine, progress
from benchmarks.common import Dataset, ModeResult, ModeSpec, load_dataset
from benchmarks.dataset import MEMBER_ACCOUNTS, generate
from benchmarks.infra import REPO_ROOT, launch
from benchmarks.report import Row, machine_lines, render
from ingester.codec.encode import OutputFormat
from ingester.demo.world import World

_MANAGEMENT = "111111111111"
_WORLD = World(
    endpoint="",
    org_id="o-bench00000",
    management_account=_MANAGEMENT,
    accounts=[_MANAGEMENT, *(f"2222222222{n:02d}" for n in range(MEMBER_ACCOUNTS))],
    regions=(),
    bucket="org-cloudtrail-archive",
    trail_arn=f"arn:aws:cloudtrail:us-east-1:{_MANAGEMENT}:trail/org-trail",
)


def dataset_for(out: Path, *, seed: int, files: int) -> tuple[Path, Dataset]:
    """The manifest and dataset under ``out``: reused when one with the same seed and file count is there."""
    manifest = out / f"dataset-{seed}-{files}.json"
    if manifest.exists():
        dataset = load_dataset(manifest)
        if len(dataset.files) == files and all((out / "data" / f.key).exists() for f in dataset.files[:10]):
            return manifest, dataset
    progress(f"generating {files} files (seed {seed})")
    dataset = generate(_WORLD, out / "data", seed=seed, files=files, workers=os.cpu_count() or 1)
    manifest.write_bytes(msgspec.json.encode(dataset))
    return manifest, dataset


def run_floor(out: Path, manifest: Path, dataset: Dataset, mode: str, fmt: OutputFormat) -> Row:
    spec = ModeSpec(mode=mode, manifest=str(manifest), data_dir=str(out / "data"), format=fmt)
    spec_path, result_path = out / f"{mode}.spec.json", out / f"{mode}.result.json"
    spec_path.write_bytes(msgspec.json.encode(spec))
    log = out / f"{mode}.log"
    launched = launch(
        [sys.executable, "-m", "benchmarks.modes", mode, str(spec_path), str(result_path)],
        log=log,
        rusage=out / f"{mode}.rusage.json",
        env=child_env(),
        timeout_s=600,
    )
    if launched.exit_code != 0:
        raise BenchError(f"mode {mode} exited with {launched.exit_code}; see {log}")
    result = msgspec.json.decode(result_path.read_bytes(), type=ModeResult)
    expected = (len(dataset.files), dataset.records)
    if (result.files, result.records) != expected or result.extra.get("rejected"):
        raise BenchError(
            f"COUNT CHECK FAILED in {mode}: {result.files} files, {result.records} records, "
            f"{result.extra.get('rejected')} rejected; expected {expected}, none rejected"
        )
    return Row(
        mode,
        result,
        launched.peak_rss_bytes,
        launched.cpu_user_seconds + launched.cpu_system_seconds,
        launched.wall_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help=f"log files to generate ({DEFAULT_FILES})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=get_args(OutputFormat), default="ocsf")
    parser.add_argument("--stdlib", action="store_true", help="also run floor-stdlib (gzip instead of isal)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "floor")
    args = parser.parse_args(argv)
    began = time.monotonic()
    out: Path = args.out.resolve()
    (out / "data").mkdir(parents=True, exist_ok=True)
    host = machine()
    print(machine_lines(host), flush=True)
    manifest, dataset = dataset_for(out, seed=args.seed, files=args.files)
    rows: list[Row] = []
    try:
        for mode in ("floor", "floor-stdlib") if args.stdlib else ("floor",):
            progress(f"mode {mode} ...")
            rows.append(run_floor(out, manifest, dataset, mode, args.format))
    except BenchError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        return 1
    report, _ = render(host, dataset, rows, 0, args.format, total_seconds=time.monotonic() - began)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
