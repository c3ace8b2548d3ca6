"""``python -m benchmarks.routing``: what ``[[routes]]`` cost per record, as a ratio measured in one run.

Decodes the floor's dataset once (benchmarks/floor.py generates it), then encodes every file again and again,
alternating three tables: none (today's path), a realistic table of five routes that sends everything (so the
records and bytes are the same), and the same table with a drop and a 1-in-10 sample in front. Reports the median
and spread of each over the repeats, the ratio to "no routes" per format, and the microseconds added per record
(compare them with the whole pipeline's cost per record, ~100 us S3 -> Kafka, ~30 us for decode+encode). Routing is
decided per record from a cache keyed by (source, name, readOnly, category, error, account, region, class), so the
target is a cost within a few percent; the raw format, the cheapest per record, shows it largest.

    .venv/bin/python -m benchmarks.routing [--files 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.floor import dataset_for
from benchmarks.infra import REPO_ROOT
from ingester import config
from ingester.codec.cloudtrail import Record
from ingester.codec.decode import DecodedFile, decode_object
from ingester.codec.encode import OutputFormat, encode_file
from ingester.codec.routing import Router, RouteTally
from ingester.models import Shard

SENDING = [
    {"name": "auth", "classification": ["authentication/*"], "topic": "cloudtrail.auth"},
    {"name": "iam", "event_source": ["iam.amazonaws.com", "sts.amazonaws.com"], "topic": "cloudtrail.iam"},
    {"name": "data", "event_category": ["Data"], "topic": "cloudtrail.data"},
    {"name": "errors", "error": True, "topic": "cloudtrail.errors"},
    {"name": "eu", "region": ["eu-*"], "topic": "cloudtrail.eu"},
]
FILTERING = [
    {"name": "no-kms-reads", "event_source": ["kms.amazonaws.com"], "read_only": True, "action": "drop"},
    {"name": "s3-sample", "event_source": ["s3.amazonaws.com"], "sample": 10, "topic": "cloudtrail.s3"},
    *SENDING,
]


def encode_all(files: list[tuple[DecodedFile[Record], Shard, str]], fmt: OutputFormat, router: Router | None) -> int:
    records = 0
    for decoded, shard, key in files:
        tally = RouteTally(router) if router is not None else None
        records += len(encode_file(decoded, shard=shard, key=key, fmt=fmt, rejected=[], routes=tally))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400, help="log files of the floor dataset to use (400)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "floor")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    (out / "data").mkdir(parents=True, exist_ok=True)
    _, dataset = dataset_for(out, seed=7, files=1500)
    entries = list(dataset.in_key_order())[: args.files]
    files = [
        (decode_object((out / "data" / e.key).read_bytes(), e.key), dataset.shards[e.shard], e.key) for e in entries
    ]
    total = sum(len(decoded.records) for decoded, _, _ in files)
    tables: dict[str, Router | None] = {
        "no routes": None,
        "5 routes, all sent": Router(config.build({"routes": SENDING}).routes),
        "drop + sample + 5": Router(config.build({"routes": FILTERING}).routes),
    }
    print(f"{len(files)} files, {total:,} records; {args.repeats} alternated repeats; medians (spread)")
    for fmt in ("raw", "ocsf"):
        seconds: dict[str, list[float]] = {name: [] for name in tables}
        kept: dict[str, int] = {}
        for _ in range(args.repeats):
            for name, router in tables.items():
                began = time.perf_counter()
                kept[name] = encode_all(files, fmt, router)
                seconds[name].append(time.perf_counter() - began)
        base = statistics.median(seconds["no routes"])
        for name, times in seconds.items():
            median = statistics.median(times)
            added = (median - base) / total * 1e6
            print(
                f"  {fmt:5} {name:20} {total / median:>10,.0f} records/s  ({min(times):.3f}-{max(times):.3f} s)"
                f"  x{median / base:.3f} of no routes, {added:+.2f} us/record  ({kept[name]:,} sent)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
