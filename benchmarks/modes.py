"""One benchmark mode per process: ``python -m benchmarks.modes MODE SPEC.json RESULT.json``.

Each mode imports only what it uses (inside its function), so its peak RSS is its own. Each one times the work
itself, from just before it opens its first connection to the last acknowledgement, and reports what it did;
the orchestrator (bench.py) checks the counts against the manifest and against what arrived.

    floor                decode_object + encode_file per local file; nothing else (the CPU floor)
    floor-stdlib         the same with gzip.decompress (zlib) instead of isal
    s3-ceiling           concurrent GETs against moto, no decode: what the S3 endpoint itself can serve
    naive                boto3 list + get, json.loads, one producer.send per record (what a user writes first)
    ingester-s3-kafka    runtime.run(once=True): discovery, S3 listing and GETs, Kafka (acks=all, idempotent)
    ingester-file-kafka  ShardJob + Worker + KafkaSink over LocalSource: the pipeline without S3
    ingester-s3-file     runtime.run(once=True) with the NDJSON file sink: the pipeline without Kafka
    ingester-file-file-x1, -x2   LocalSource -> file sink in 1 / 2 spawned processes, shards split as by
                         ``--workers`` (workers.py): the multi-core scaling
    ingester-file-file-backlog   x1 with a byte budget 12x smaller than the dataset: peak RSS under a backlog
    peer                 benchmarks/peer.py: boto3 in 32 threads, gzip, orjson, confluent-kafka (anchors.py)
    ingester-s3s-kafka   ingester_local's composition with S3Source (the production S3 client, AwsClients) over
                         the fixed shards, against s3s-fs instead of moto (anchors.py; no discovery)
    ingester-s3s-kafka-x2  the same in 2 spawned processes, shards split as ``--workers 2`` splits them
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from benchmarks import workers
from benchmarks.common import ModeResult, ModeSpec, Stopwatch, Timing, load_dataset, sink_format

if TYPE_CHECKING:
    from ingester.config import Settings
    from ingester.coordination.partition import Partition
    from ingester.ops.telemetry import RunStatistics

# Concurrent GETs of the S3 ceiling: the same as ingester's default max_inflight_objects.
CEILING_CONCURRENCY = 32
# Sequential GETs timed first, for the per-request latency a sequential client sees.
CEILING_SEQUENTIAL_SAMPLE = 200

clock = time.perf_counter


def floor(spec: ModeSpec, *, stdlib: bool = False) -> ModeResult:
    from ingester.codec.decode import decode_object, decode_records, gunzip, split_records
    from ingester.codec.encode import encode_file
    from ingester.ops.memory import settle_heap

    dataset = load_dataset(spec.manifest)
    root = Path(spec.data_dir)
    settle_heap()  # the collector set as the pipeline sets it: the floor is the best the codec does
    sink = sink_format(spec.format)
    fmt, raw = sink["format"], sink.get("ocsf_raw_data", True)
    read = decode = encode = 0.0
    records = rejected = compressed = decompressed = 0
    stopwatch = Stopwatch(spec)
    for entry in dataset.in_key_order():
        t0 = clock()
        body = (root / entry.key).read_bytes()
        t1 = clock()
        if stdlib:
            data = gzip.decompress(body)
            decoded = decode_records(split_records(data, entry.key), len(data), head_only=fmt == "raw")
        else:
            decoded = decode_object(body, entry.key, head_only=fmt == "raw")  # as the worker decodes
        t2 = clock()
        records += len(encode_file(decoded, shard=dataset.shards[entry.shard], key=entry.key, fmt=fmt, raw_data=raw))
        t3 = clock()
        read, decode, encode = read + t1 - t0, decode + t2 - t1, encode + t3 - t2
        rejected += len(decoded.rejected)
        compressed += len(body)
        decompressed += decoded.decompressed_bytes
    timing = stopwatch.lap()
    extra = {"read_seconds": read, "decode_seconds": decode, "encode_seconds": encode, "rejected": rejected}
    if not stdlib:
        # gunzip alone, both libraries, same bytes: the part of "decode" the gzip choice decides.
        isal = zlib = 0.0
        for entry in dataset.files:
            body = (root / entry.key).read_bytes()
            t0 = clock()
            gunzip(body, entry.key)
            t1 = clock()
            gzip.decompress(body)
            isal, zlib = isal + t1 - t0, zlib + clock() - t1
        extra |= {"gunzip_isal_seconds": isal, "gunzip_zlib_seconds": zlib}
    return ModeResult(
        files=len(dataset.files),
        records=records,
        compressed_bytes=compressed,
        decompressed_bytes=decompressed,
        timing=timing,
        extra=extra,
    )


def s3_ceiling(spec: ModeSpec) -> ModeResult:
    import aioboto3
    import uvloop
    from aiobotocore.config import AioConfig

    dataset = load_dataset(spec.manifest)
    keys = [entry.key for entry in dataset.in_key_order()]

    async def measure() -> ModeResult:
        session = aioboto3.Session(region_name="us-east-1")
        config = AioConfig(max_pool_connections=2 * CEILING_CONCURRENCY)
        async with session.client("s3", endpoint_url=spec.endpoint, config=config) as s3:

            async def get(key: str) -> int:
                response = await s3.get_object(Bucket=dataset.bucket, Key=key)
                async with response["Body"] as stream:
                    return len(await stream.read())

            t0 = clock()
            for key in keys[:CEILING_SEQUENTIAL_SAMPLE]:
                await get(key)
            sequential = (clock() - t0) / min(len(keys), CEILING_SEQUENTIAL_SAMPLE)

            pending = iter(keys)
            received = 0

            async def getter() -> None:
                nonlocal received
                for key in pending:
                    size = await get(key)  # not `received += await ...`: that reads `received` before awaiting
                    received += size

            stopwatch = Stopwatch(spec)
            async with asyncio.TaskGroup() as group:
                for n in range(CEILING_CONCURRENCY):
                    group.create_task(getter(), name=f"get-{n}")
            timing = stopwatch.lap()
        return ModeResult(
            files=len(keys),
            records=0,
            compressed_bytes=received,
            decompressed_bytes=0,
            timing=timing,
            extra={"sequential_get_ms": sequential * 1000},
        )

    return uvloop.run(measure())


def naive(spec: ModeSpec) -> ModeResult:
    """The collector a user writes first. Blocking boto3 calls inside a coroutine are part of the picture."""
    import json

    import boto3
    from aiokafka import AIOKafkaProducer

    dataset = load_dataset(spec.manifest)

    async def main() -> ModeResult:
        stopwatch = Stopwatch(spec)
        s3 = boto3.client("s3", endpoint_url=spec.endpoint, region_name="us-east-1")
        producer = AIOKafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
        await producer.start()
        files = records = compressed = decompressed = 0
        try:
            paginator = s3.get_paginator("list_objects_v2")
            keys = [
                obj["Key"] for page in paginator.paginate(Bucket=dataset.bucket) for obj in page.get("Contents", [])
            ]
            for key in keys[: spec.files or None]:
                body = s3.get_object(Bucket=dataset.bucket, Key=key)["Body"].read()
                data = gzip.decompress(body)
                for record in json.loads(data)["Records"]:
                    await producer.send(spec.topic, json.dumps(record).encode())
                    records += 1
                files, compressed, decompressed = files + 1, compressed + len(body), decompressed + len(data)
            await producer.flush()
        finally:
            await producer.stop()
        return ModeResult(
            files=files,
            records=records,
            compressed_bytes=compressed,
            decompressed_bytes=decompressed,
            timing=stopwatch.lap(),
        )

    return asyncio.run(main())


def peer(spec: ModeSpec) -> ModeResult:
    from benchmarks.peer import collect

    dataset = load_dataset(spec.manifest)
    stopwatch = Stopwatch(spec)
    totals = collect(spec.endpoint, dataset.bucket, spec.bootstrap, spec.topic)
    return ModeResult(
        files=totals.files,
        records=totals.delivered,
        compressed_bytes=totals.compressed_bytes,
        decompressed_bytes=totals.decompressed_bytes,
        timing=stopwatch.lap(),
    )


def _settings(spec: ModeSpec, sink: dict[str, Any], collection: dict[str, Any] | None = None) -> Settings:
    from ingester import config

    dataset = load_dataset(spec.manifest)
    return config.build(
        {
            "aws": {"endpoint_url": spec.endpoint, **({"s3_get": spec.s3_get} if spec.s3_get else {})},
            "discovery": {"mode": "organization", "regions": dataset.regions},
            "collection": {"start_time": dataset.start, **(collection or {})},
            "kafka": {
                "bootstrap_servers": spec.bootstrap or "127.0.0.1:9",
                "topic": spec.topic or "unused",
                "dead_letter_topic": spec.dead_letter_topic or "unused",
            },
            "sink": sink,
            "checkpoint": {"path": spec.checkpoint},
        }
    )


def _from_statistics(stats: RunStatistics, timing: Timing, s3_requests: int) -> ModeResult:
    return ModeResult(
        files=stats.objects_delivered,
        records=stats.records,
        compressed_bytes=stats.compressed_bytes,
        decompressed_bytes=stats.decompressed_bytes,
        timing=timing,
        extra={
            "objects_rejected": stats.objects_rejected,
            "objects_errored": stats.objects_errored,
            "dead_letters": stats.dead_letters,
            "source_requests": s3_requests,
        },
    )


def ingester_runtime(spec: ModeSpec, *, sink: dict[str, Any]) -> ModeResult:
    """The whole thing, as ``ingester run --once`` runs it."""
    import uvloop

    from ingester.ops.telemetry import configure_logging
    from ingester.pipeline.runtime import run

    configure_logging("warning", "console")
    settings = _settings(spec, sink)

    async def main() -> ModeResult:
        stopwatch = Stopwatch(spec)
        stats = await run(settings, stop=asyncio.Event(), once=True)
        return _from_statistics(stats, stopwatch.lap(), stats.s3_requests)

    return uvloop.run(main())


def ingester_local(
    spec: ModeSpec,
    *,
    sink: dict[str, Any],
    partition: Partition | None = None,
    collection: dict[str, Any] | None = None,
    ready: Callable[[], object] = lambda: None,
    s3: bool = False,
) -> ModeResult:
    """runtime's composition (sink and store, queue, workers, one ShardJob per shard, drain, close) over LocalSource.

    Mirrors ``runtime._collect`` with discovery replaced by the manifest's shards and S3Source by LocalSource
    (with ``s3``: by S3Source on the client ``AwsClients`` opens for ``spec.endpoint``, as the supervisor does);
    with ``partition``, only the shards it owns, as one process of ``ingester run --workers N`` takes them.
    ``collection`` overrides collection settings; ``ready`` is called once set up, just before the clock starts."""
    from datetime import timedelta

    import uvloop

    from ingester.connect.aws import AwsClients
    from ingester.ops.memory import settle_heap
    from ingester.ops.telemetry import Telemetry, configure_logging
    from ingester.pipeline.jobs import ShardJob, WorkItem
    from ingester.pipeline.runtime import open_sink_and_store
    from ingester.pipeline.supervisor import signed_getter
    from ingester.pipeline.worker import ByteBudget, Worker
    from ingester.sources import LogSource
    from ingester.sources.local import LocalSource
    from ingester.sources.s3 import S3Source

    configure_logging("warning", "console")
    settings = _settings(spec, sink, collection)
    dataset = load_dataset(spec.manifest)
    shards = [shard for shard in dataset.shards if partition is None or partition.owns(shard.shard_id)]
    c = settings.collection

    async def main() -> ModeResult:
        ready()
        stopwatch = Stopwatch(spec)
        telemetry = Telemetry()
        queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=2 * c.max_inflight_objects)
        budget = ByteBudget(c.max_inflight_bytes, telemetry)
        clients = AwsClients(settings.aws, settings.discovery)
        sources: list[LogSource] = [LocalSource(Path(spec.data_dir)) for _ in shards]
        if s3:  # as the supervisor: one client and one direct getter for the bucket, a source per shard
            client = await clients.s3("")
            getter = await signed_getter(clients, client, "")
            sources = [S3Source(client, dataset.bucket, getter) for _ in shards]
        sink, store = await open_sink_and_store(settings)
        settle_heap()  # as runtime._collect does
        try:
            async with clients, asyncio.TaskGroup() as group:
                group.create_task(sink.maintain(), name="sink-maintain")
                worker = Worker.from_settings(settings, sink, budget, telemetry)
                workers = [
                    group.create_task(worker.run(queue), name=f"worker-{n}") for n in range(c.max_inflight_objects)
                ]
                jobs = [
                    ShardJob(
                        shard,
                        source,
                        store,
                        start=dataset.start_datetime(),
                        lookback=timedelta(seconds=c.lookback_seconds),
                        telemetry=telemetry,
                    )
                    for shard, source in zip(shards, sources, strict=True)
                ]
                await asyncio.gather(
                    *(
                        group.create_task(
                            job.run(queue, once=True, poll_interval=c.poll_interval_seconds), name=job.shard.shard_id
                        )
                        for job in jobs
                    )
                )
                await queue.join()
                for _ in workers:
                    queue.put_nowait(None)
                await sink.close()
        finally:
            await sink.abort()
            store.close()
        result = _from_statistics(telemetry.statistics(), stopwatch.lap(), sum(s.requests for s in sources))
        return msgspec.structs.replace(result, extra=result.extra | {"shards": len(shards)})

    return uvloop.run(main())


MODES: dict[str, Callable[[ModeSpec], ModeResult]] = {
    "floor": floor,
    "floor-stdlib": lambda spec: floor(spec, stdlib=True),
    "s3-ceiling": s3_ceiling,
    "naive": naive,
    "ingester-s3-kafka": lambda spec: ingester_runtime(spec, sink={"type": "kafka", **sink_format(spec.format)}),
    "ingester-file-kafka": lambda spec: ingester_local(spec, sink={"type": "kafka", **sink_format(spec.format)}),
    "ingester-s3s-kafka": lambda spec: ingester_local(
        spec, sink={"type": "kafka", **sink_format(spec.format)}, s3=True
    ),
    "ingester-s3s-kafka-x2": lambda spec: workers.processes(spec, 2, s3_kafka=True),
    "peer": peer,
    "ingester-s3-file": lambda spec: ingester_runtime(
        spec, sink={"type": "file", **sink_format(spec.format), "file": {"path": spec.output}}
    ),
    "ingester-file-file-x1": lambda spec: workers.processes(spec, 1),
    "ingester-file-file-x2": lambda spec: workers.processes(spec, 2),
    "ingester-file-file-backlog": workers.backlog,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in MODES:
        print(f"usage: python -m benchmarks.modes {{{','.join(MODES)}}} SPEC.json RESULT.json", file=sys.stderr)
        return 2
    mode, spec_path, result_path = argv
    spec = msgspec.json.decode(Path(spec_path).read_bytes(), type=ModeSpec)
    result = MODES[mode](spec)
    Path(result_path).write_bytes(msgspec.json.encode(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
