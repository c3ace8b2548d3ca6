"""``python -m benchmarks.instructions``: CPU instructions per record of decode + encode, counted by valgrind.

Why: on a shared machine the floor's seconds vary by 20-30% from run to run; instruction counts do not, so a
codec change can be judged on a busy machine too. They do not see cache misses or memory stalls: confirm a
change with the floor (``python -m benchmarks.floor``) before believing it.

How: runs itself under callgrind twice over every ``--stride``-th file of the floor's dataset (made by
``benchmarks.floor``): once reading and decoding nothing but the count, once decoding and encoding each file once.
The difference, per record, is one cold pass as the pipeline makes it (each file seen once, caches filling).
Needs ``valgrind`` (Debian package); ~1 minute with the default stride.

    .venv/bin/python -m benchmarks.instructions [--format ocsf|native|raw|none] [--stride 30]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.infra import REPO_ROOT

DEFAULT_MANIFEST = REPO_ROOT / "benchmarks" / "out" / "floor" / "dataset-7-1500.json"


def child(manifest: Path, stride: int, fmt: str, passes: int) -> None:
    from benchmarks.common import load_dataset
    from ingester.codec.decode import decode_object
    from ingester.codec.encode import encode_file

    dataset = load_dataset(manifest)
    root = manifest.parent / "data"
    files = [(entry, (root / entry.key).read_bytes()) for entry in dataset.in_key_order()[::stride]]
    for _ in range(passes):
        for entry, body in files:
            decoded = decode_object(body, entry.key, head_only=fmt == "raw")  # as the worker decodes
            if fmt != "none":
                encode_file(decoded, shard=dataset.shards[entry.shard], key=entry.key, fmt=fmt)  # type: ignore[arg-type]
    print(sum(entry.records for entry, _ in files))


def count(manifest: Path, stride: int, fmt: str, passes: int) -> tuple[int, int]:
    """(instructions, records) of one child run under callgrind."""
    argv = [sys.executable, "-m", "benchmarks.instructions", "--child", str(passes)]
    argv += ["--manifest", str(manifest), "--stride", str(stride), "--format", fmt]
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if collected is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(collected.group(1)), int(done.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("ocsf", "native", "raw", "none"), default="ocsf")
    parser.add_argument("--stride", type=int, default=30, help="every Nth file of the dataset (30)")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="a dataset made by benchmarks.floor")
    parser.add_argument("--child", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child >= 0:
        child(args.manifest, args.stride, args.format, args.child)
        return 0
    if not args.manifest.exists():
        parser.error(f"{args.manifest} does not exist: run python -m benchmarks.floor first")
    baseline, records = count(args.manifest, args.stride, args.format, 0)
    one_pass, _ = count(args.manifest, args.stride, args.format, 1)
    print(f"{args.format}: {(one_pass - baseline) / records:,.0f} instructions per record ({records:,} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
