"""Collector processes over the local files: the scaling from 1 to N processes, and memory under a deep backlog.

``ingester run --workers N`` (ingester/pipeline/processes.py) spawns N processes, each running the whole pipeline
over the shards its :class:`~ingester.coordination.partition.Partition` owns. The CLI reads only S3, and on this
2-core machine moto's server (a full core at ~160 GETs/s) or a Kafka broker would compete with the workers for the
second core, so this measures the same split over LocalSource and the file sink: each spawned process runs
:func:`benchmarks.modes.ingester_local` with its Partition, its own output file and its own checkpoint file.
The processes import and set up first and meet at a barrier; the clock runs from the barrier to the end of the
last one. Each reports its own counts and CPU time; the parent adds them up.

Peak RSS (``os.wait4`` in the launcher) is that of the largest process of the tree: per worker, as issue 5 asks.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.common import ModeResult, ModeSpec, Stopwatch, Timing, load_dataset, sink_format

SET_UP_TIMEOUT_SECONDS = 300
# The backlog mode's byte budget is the dataset's decompressed size divided by this: a backlog this many times
# larger than the in-flight budget (collection.max_inflight_bytes).
BACKLOG_FACTOR = 12
_SUMMED = ("objects_rejected", "objects_errored", "dead_letters", "source_requests")


def processes(
    spec: ModeSpec, count: int, *, collection: dict[str, Any] | None = None, s3_kafka: bool = False
) -> ModeResult:
    """file -> file in ``count`` spawned processes, the shards split as ``--workers count`` splits them; with
    ``s3_kafka``, S3 (``spec.endpoint``) -> Kafka, each process with its share of the byte budget (anchors.py)."""
    context = multiprocessing.get_context("spawn")  # as ingester/pipeline/processes.py: no inherited state
    barrier = context.Barrier(count + 1, timeout=SET_UP_TIMEOUT_SECONDS)
    results = [Path(f"{spec.output}.w{index}.result.json") for index in range(count)]
    children = [
        context.Process(
            target=_child,
            args=(msgspec.json.encode(spec), index, count, barrier, str(results[index]), collection, s3_kafka),
            name=f"bench-worker-{index}",
        )
        for index in range(count)
    ]
    for child in children:
        child.start()
    try:
        barrier.wait()
    except BaseException:
        for child in children:
            child.kill()
        raise
    stopwatch = Stopwatch(spec)
    for child in children:
        child.join()
    lap = stopwatch.lap()
    failed = [child.name for child in children if child.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker process(es) {failed} failed")
    parts = [msgspec.json.decode(path.read_bytes(), type=ModeResult) for path in results]
    cpu = sum(part.timing.cpu_seconds for part in parts)
    extra = {name: sum(part.extra.get(name, 0.0) for part in parts) for name in _SUMMED}
    for index, part in enumerate(parts):
        extra |= {
            f"w{index}_shards": part.extra["shards"],
            f"w{index}_records": part.records,
            f"w{index}_seconds": part.timing.elapsed_seconds,
        }
    return ModeResult(
        files=sum(part.files for part in parts),
        records=sum(part.records for part in parts),
        compressed_bytes=sum(part.compressed_bytes for part in parts),
        decompressed_bytes=sum(part.decompressed_bytes for part in parts),
        timing=Timing(
            elapsed_seconds=lap.elapsed_seconds,
            cpu_seconds=cpu,
            moto_cpu_seconds=lap.moto_cpu_seconds,
            kafka_cpu_seconds=lap.kafka_cpu_seconds,
            other_cpu_seconds=max(lap.other_cpu_seconds - cpu, 0.0),  # the parent's lap counted the workers' CPU
        ),
        extra=extra,
    )


def backlog(spec: ModeSpec) -> ModeResult:
    """One process, file -> file, with a byte budget ``BACKLOG_FACTOR`` times smaller than the whole dataset."""
    dataset = load_dataset(spec.manifest)
    budget = dataset.decompressed_bytes // BACKLOG_FACTOR
    result = processes(spec, 1, collection={"max_inflight_bytes": budget})
    return msgspec.structs.replace(result, extra=result.extra | {"budget_bytes": budget})


def _child(
    spec_json: bytes,
    index: int,
    count: int,
    barrier: Any,
    result_path: str,
    collection: dict[str, Any] | None,
    s3_kafka: bool,
) -> None:
    from benchmarks.modes import ingester_local
    from ingester.config import DEFAULT_MAX_INFLIGHT_BYTES
    from ingester.coordination.partition import Partition

    spec = msgspec.json.decode(spec_json, type=ModeSpec)
    output = f"{spec.output}.w{index}"
    spec = msgspec.structs.replace(spec, output=output, checkpoint=f"{spec.checkpoint}.w{index}")
    sink: dict[str, Any] = {"type": "file", **sink_format(spec.format), "file": {"path": output}}
    if s3_kafka:  # as processes.settings_for_worker: the pod's byte budget split between the processes
        sink = {"type": "kafka", **sink_format(spec.format)}
        collection = {"max_inflight_bytes": DEFAULT_MAX_INFLIGHT_BYTES // count, **(collection or {})}
    result = ingester_local(
        spec,
        sink=sink,
        partition=Partition(index, count),
        collection=collection,
        ready=barrier.wait,
        s3=s3_kafka,
    )
    Path(result_path).write_bytes(msgspec.json.encode(result))
