"""The table on stdout and the same numbers as ``results.json``. MB = 10^6 bytes; MB/s counts decompressed bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.common import Dataset, ModeResult
from benchmarks.dataset import LARGE_RECORDS, SMALL_MAX_RECORDS
from benchmarks.modes import CEILING_CONCURRENCY

LABELS = {
    "floor": "floor: decode+encode, isal",
    "floor-stdlib": "floor: decode+encode, zlib",
    "naive": "naive boto3 + send/record",
    "ingester-s3-kafka": "ingester S3 -> Kafka",
    "ingester-file-kafka": "ingester file -> Kafka",
    "ingester-s3-file": "ingester S3 -> file",
    "ingester-file-file-x1": "file -> file, 1 process",
    "ingester-file-file-x2": "file -> file, 2 processes",
    "ingester-file-file-backlog": "file -> file, small budget",
}
# The ingester's own modes, compared with the naive script (the floor and the S3 ceiling are references).
RATIO_MODES = tuple(mode for mode in LABELS if mode.startswith("ingester-"))
MB = 1e6


@dataclass(frozen=True)
class Row:
    mode: str
    result: ModeResult
    peak_rss_bytes: int
    # The whole mode process (start-up and imports included), from os.wait4.
    process_cpu_seconds: float
    process_wall_seconds: float

    @property
    def records_per_second(self) -> float:
        return self.result.records / self.result.timing.elapsed_seconds

    def as_json(self) -> dict[str, Any]:
        r, t = self.result, self.result.timing
        return {
            "files": r.files,
            "records": r.records,
            "compressed_bytes": r.compressed_bytes,
            "decompressed_bytes": r.decompressed_bytes,
            "elapsed_seconds": round(t.elapsed_seconds, 3),
            "records_per_second": round(r.records / t.elapsed_seconds, 1),
            "mb_per_second": round((r.decompressed_bytes or r.compressed_bytes) / MB / t.elapsed_seconds, 2),
            "files_per_second": round(r.files / t.elapsed_seconds, 2),
            "peak_rss_mb": round(self.peak_rss_bytes / MB, 1),
            "cpu_seconds": round(t.cpu_seconds, 2),
            "records_per_cpu_second": round(r.records / t.cpu_seconds, 1) if t.cpu_seconds else None,
            "moto_cpu_seconds": round(t.moto_cpu_seconds, 2),
            "kafka_cpu_seconds": round(t.kafka_cpu_seconds, 2),
            "other_cpu_seconds": round(t.other_cpu_seconds, 2),
            "process_cpu_seconds": round(self.process_cpu_seconds, 2),
            "process_wall_seconds": round(self.process_wall_seconds, 2),
            "extra": {k: round(v, 4) for k, v in r.extra.items()},
        }


def _ratio(numerator: Row | None, denominator: Row | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    return numerator.records_per_second / denominator.records_per_second


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def machine_lines(host: dict[str, Any]) -> str:
    return (
        f"machine: {host['cpus']} CPUs ({host['cpus_usable']} usable), {host['cpu_model']}, {host['memory_gb']} GB; "
        f"Python {host['python']}, Linux {host['kernel']}; load average at start {host['load_average_1m']:.2f}\n"
        "libraries: " + ", ".join(f"{k} {v}" for k, v in host["libraries"].items())
    )


def render(
    host: dict[str, Any], dataset: Dataset, rows: list[Row], naive_files: int, fmt: str, *, total_seconds: float
) -> tuple[str, dict[str, Any]]:
    by_mode = {row.mode: row for row in rows}
    floor, naive = by_mode.get("floor"), by_mode.get("naive")
    large = sum(1 for f in dataset.files if f.records >= LARGE_RECORDS[0])
    lines = [
        f"dataset: {len(dataset.files)} files ({large} with {LARGE_RECORDS[0]:,}-{LARGE_RECORDS[1]:,} records, "
        f"the rest 1-{SMALL_MAX_RECORDS}), {dataset.records:,} records, {dataset.compressed_bytes / MB:.1f} MB gzip, "
        f"{dataset.decompressed_bytes / MB:.1f} MB JSON; {len(dataset.shards)} shards "
        f"({len(dataset.accounts)} accounts x {len(dataset.regions)} regions), seed {dataset.seed}; format {fmt}",
        "",
    ]
    header = (
        f"{'mode':<28}{'files':>6}{'records':>9}{'seconds':>9}{'records/s':>11}{'MB/s':>8}{'files/s':>9}"
        f"{'RSS MB':>8}{'rec/CPU s':>10}{'CPU s':>7}{'moto s':>8}{'Kafka s':>8}{'other s':>8}{'/floor':>8}{'/naive':>8}"
    )
    lines += [header, "-" * len(header)]
    for row in rows:
        if row.mode == "s3-ceiling":
            continue
        r, t = row.result, row.result.timing
        versus_naive = _ratio(row, naive) if row.mode in RATIO_MODES else None
        lines.append(
            f"{LABELS[row.mode]:<28}{r.files:>6}{r.records:>9}{t.elapsed_seconds:>9.2f}"
            f"{row.records_per_second:>11,.0f}{r.decompressed_bytes / MB / t.elapsed_seconds:>8.1f}"
            f"{r.files / t.elapsed_seconds:>9.1f}{row.peak_rss_bytes / MB:>8.0f}"
            f"{r.records / max(t.cpu_seconds, 1e-9):>10,.0f}{t.cpu_seconds:>7.1f}"
            f"{t.moto_cpu_seconds:>8.1f}{t.kafka_cpu_seconds:>8.1f}{t.other_cpu_seconds:>8.1f}"
            f"{_fmt_ratio(_ratio(row, floor) if row.mode != 'floor' else None):>8}{_fmt_ratio(versus_naive):>8}"
        )
    lines += [
        "",
        "seconds: the mode's own timing of its work (process start and imports excluded). RSS: peak of the mode's",
        "process (os.wait4). CPU s / moto s / Kafka s / other s: CPU time, over those seconds, of the mode's process,",
        "moto's server, the Kafka broker and everything else on the machine (all four add up to at most",
        f"{host['cpus']} x seconds). rec/CPU s: records per CPU second of the mode's process, the figure that holds",
        "up best when the machine is shared. /floor, /naive: records/s divided by that mode's records/s.",
    ]
    if naive is not None and naive_files:
        lines.append(f"naive ran on the first {naive_files} files of the listing only; its rate is per record.")
    if floor is not None:
        x = floor.result.extra
        lines.append(
            f"floor time: read {x['read_seconds']:.2f} s, gunzip+msgspec decode {x['decode_seconds']:.2f} s, "
            f"normalize+encode {x['encode_seconds']:.2f} s. gunzip alone: isal {x['gunzip_isal_seconds']:.2f} s, "
            f"zlib {x['gunzip_zlib_seconds']:.2f} s ({x['gunzip_zlib_seconds'] / x['gunzip_isal_seconds']:.1f}x)"
        )
    ceiling = by_mode.get("s3-ceiling")
    if ceiling is not None:
        c, t = ceiling.result, ceiling.result.timing
        gets = c.files / t.elapsed_seconds
        lines.append(
            f"S3 endpoint ceiling (moto, {CEILING_CONCURRENCY} concurrent GETs, no decode): {gets:,.0f} GETs/s, "
            f"{c.compressed_bytes / MB / t.elapsed_seconds:.1f} MB/s gzip = {gets * dataset.records / c.files:,.0f} "
            f"records/s of this dataset; moto used {t.moto_cpu_seconds:.1f} CPU s in {t.elapsed_seconds:.1f} s, "
            f"the client {t.cpu_seconds:.1f}; one GET alone: {c.extra['sequential_get_ms']:.1f} ms"
        )
    lines += _workers_lines(by_mode, dataset)
    busy = [row.mode for row in rows if row.result.timing.other_cpu_seconds > 0.1 * row.result.timing.elapsed_seconds]
    if busy:
        lines.append(
            f"WARNING: other processes used over 10% of a CPU during {', '.join(busy)}: the machine was not idle, "
            "those numbers are low (see 'other s')"
        )
    lines.append(f"total bench time: {total_seconds:.0f} s")
    results = {
        "machine": host,
        "dataset": {
            "files": len(dataset.files),
            "large_files": large,
            "records": dataset.records,
            "compressed_bytes": dataset.compressed_bytes,
            "decompressed_bytes": dataset.decompressed_bytes,
            "shards": len(dataset.shards),
            "seed": dataset.seed,
            "start": dataset.start,
        },
        "output_format": fmt,
        "modes": {row.mode: row.as_json() for row in rows},
        "ratios": {
            mode: {"vs_floor": _ratio(by_mode[mode], floor), "vs_naive": _ratio(by_mode[mode], naive)}
            for mode in RATIO_MODES
            if mode in by_mode
        },
        "naive_files": naive_files or len(dataset.files),
        "total_seconds": round(total_seconds, 1),
    }
    return "\n".join(lines), results


def _per_worker(row: Row) -> str:
    x, workers = row.result.extra, sum(1 for name in row.result.extra if name.endswith("_records"))
    return ", ".join(
        f"{x[f'w{n}_shards']:.0f} shards / {x[f'w{n}_records']:,.0f} records / {x[f'w{n}_seconds']:.1f} s"
        for n in range(workers)
    )


def _workers_lines(by_mode: dict[str, Row], dataset: Dataset) -> list[str]:
    """The scaling from 1 to 2 processes, and the peak RSS under a backlog larger than the byte budget."""
    lines: list[str] = []
    one, two = by_mode.get("ingester-file-file-x1"), by_mode.get("ingester-file-file-x2")
    if one is not None and two is not None:
        lines.append(
            f"worker processes, file -> file: 1 -> 2 processes = x{two.records_per_second / one.records_per_second:.2f}"
            f" records/s ({one.records_per_second:,.0f} -> {two.records_per_second:,.0f}); per process: "
            f"{_per_worker(two)}"
        )
    backlog = by_mode.get("ingester-file-file-backlog")
    if backlog is not None:
        budget = backlog.result.extra["budget_bytes"]
        versus = f"; with the default budget (1 process) {one.peak_rss_bytes / MB:.0f} MB" if one is not None else ""
        lines.append(
            f"backlog {dataset.decompressed_bytes / budget:.0f}x the in-flight byte budget "
            f"(collection.max_inflight_bytes = {budget / MB:.1f} MB, {dataset.decompressed_bytes / MB:.0f} MB of "
            f"JSON queued): peak RSS {backlog.peak_rss_bytes / MB:.0f} MB{versus}"
        )
    return lines
