"""The peer: the competent ~100-line S3 -> Kafka script a user writes instead of deploying ingester (issue 13).

What it does well: 32 threads for the GETs (boto3 releases the GIL on the socket, gzip on the inflate),
orjson to split ``Records``, and confluent-kafka's Producer (librdkafka: batching, compression and the network in
C threads) with the same delivery settings as ingester: acks=all, idempotence, zstd, linger 50 ms. What it does
not do, and ingester does: discovery of accounts and trails, checkpoints and ordered acknowledgement, late files,
dead letters, retries with backoff per object, bounded memory, normalization. So ingester / peer is the price
or the gain of all of that in throughput.

The benchmark (``benchmarks.modes``, mode ``peer``) calls :func:`collect`; a user would run
``python benchmarks/peer.py ENDPOINT BUCKET BOOTSTRAP TOPIC``.
"""

from __future__ import annotations

import gzip
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import orjson
from botocore.config import Config
from confluent_kafka import KafkaException, Producer

THREADS = 32
PRODUCER_CONFIG = {
    "linger.ms": 50,
    "compression.type": "zstd",
    "acks": "all",
    "enable.idempotence": True,
}


@dataclass
class Totals:
    files: int = 0
    records: int = 0
    compressed_bytes: int = 0
    decompressed_bytes: int = 0
    delivered: int = 0
    failed: int = 0


def collect(endpoint: str, bucket: str, bootstrap: str, topic: str, prefix: str = "") -> Totals:
    """Every object under ``prefix``: list, GET in 32 threads, gunzip, split, produce each record; flush."""
    s3 = boto3.client(
        "s3", endpoint_url=endpoint or None, config=Config(max_pool_connections=THREADS, retries={"mode": "standard"})
    )
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    totals = Totals()
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is None:
            totals.delivered += 1
        else:
            totals.failed += 1
            errors.append(str(err))

    def fetch(key: str) -> tuple[list[tuple[bytes, bytes]], int, int]:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        data = gzip.decompress(body)
        records = orjson.loads(data)["Records"]
        out = [(f"{r.get('recipientAccountId', '')}:{r.get('eventID', '')}".encode(), orjson.dumps(r)) for r in records]
        return out, len(body), len(data)

    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", ())
        if item["Key"].endswith(".json.gz")
    ]
    with ThreadPoolExecutor(THREADS) as pool:
        for messages, compressed, decompressed in pool.map(fetch, keys):
            for key, value in messages:
                while True:
                    try:
                        producer.produce(topic, value=value, key=key, on_delivery=delivered)
                        break
                    except BufferError:  # the local queue is full: serve callbacks until there is room
                        producer.poll(0.1)
            producer.poll(0)
            totals.files += 1
            totals.records += len(messages)
            totals.compressed_bytes += compressed
            totals.decompressed_bytes += decompressed
    remaining = producer.flush(120)
    if remaining or errors:
        raise KafkaException(f"{remaining} messages not delivered, {len(errors)} failed: {errors[:3]}")
    return totals


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: peer.py ENDPOINT BUCKET BOOTSTRAP TOPIC", file=sys.stderr)
        return 2
    totals = collect(*argv)
    print(f"{totals.files} files, {totals.records} records delivered")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
