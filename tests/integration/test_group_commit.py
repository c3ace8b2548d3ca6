"""Small files delivered at once share Kafka batches (group commit in KafkaSink._send_partition, issue 13).

aiokafka sends one produce request per broker at a time with one batch per partition in it; a batch per file
made every small file wait for a round trip of its own. Concurrent deliveries to one partition now fill one
batch while the previous one is in flight: far fewer batches than files, every record once, each file's records
in its order, and each delivery told only its own outcome."""

from __future__ import annotations

import asyncio
import collections

import pytest

from ingester.config import KafkaSettings
from ingester.models import OutboundRecord
from ingester.sinks.kafka import KafkaSink
from tests.infra.kafka_broker import read_all
from tests.integration.test_pipeline import topics

pytestmark = pytest.mark.integration

FILES = 300
RECORDS_PER_FILE = 5


def small_file(n: int) -> list[OutboundRecord]:
    account = f"1111111111{n % 2:02d}".encode()  # two accounts: at most two partitions
    return [
        OutboundRecord(
            key=f"{n}:{i}".encode(),
            value=b'{"eventID":"%d-%d"}' % (n, i),
            timestamp_ms=1_700_000_000_000 + i,
            partition_key=account,
        )
        for i in range(RECORDS_PER_FILE)
    ]


async def test_concurrent_small_files_share_batches(kafka_bootstrap: str) -> None:
    topic = await topics(kafka_bootstrap)
    sink = KafkaSink(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq"))
    await sink.start()
    try:
        too_large = await asyncio.gather(*(sink.deliver(small_file(n)) for n in range(FILES)))
    finally:
        await sink.close()
    assert too_large == [[]] * FILES
    stats = sink.statistics()
    assert stats.records == FILES * RECORDS_PER_FILE
    assert stats.batches < FILES // 4, stats  # a batch per file before

    received = await read_all(kafka_bootstrap, topic, 60)
    keys = [record.key.decode() for record in received if record.key is not None]
    assert sorted(keys) == sorted(f"{n}:{i}" for n in range(FILES) for i in range(RECORDS_PER_FILE))
    order: dict[str, list[int]] = collections.defaultdict(list)
    for key in keys:  # read_all returns partition by partition, each in offset order
        n, i = key.split(":")
        order[n].append(int(i))
    assert all(indexes == list(range(RECORDS_PER_FILE)) for indexes in order.values())
