"""The test broker itself: produce/consume round trip and data surviving a restart."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_zstd

from tests.infra.kafka_broker import KafkaBroker, create_topic, read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

COMPRESSION = "zstd" if has_zstd() else "gzip"  # zstd needs cramjam


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, compression_type=COMPRESSION
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_produce_and_read_back(kafka_bootstrap: str) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic, partitions=4)
    values = [f"msg-{i:03d}".encode() for i in range(100)]
    await _produce(kafka_bootstrap, topic, values)

    records = await read_all(kafka_bootstrap, topic, timeout_s=30)

    assert sorted(r.value for r in records) == values
    assert len({r.partition for r in records}) > 1  # keys spread over partitions


async def test_data_survives_restart(kafka_broker: KafkaBroker) -> None:
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_broker.bootstrap, topic)
    before = [f"before-{i}".encode() for i in range(20)]
    await _produce(kafka_broker.bootstrap, topic, before)
    port = kafka_broker.port

    await asyncio.to_thread(kafka_broker.restart)

    assert kafka_broker.is_running() and kafka_broker.port == port
    assert sorted(r.value for r in await read_all(kafka_broker.bootstrap, topic)) == sorted(before)
    after = [f"after-{i}".encode() for i in range(5)]
    await _produce(kafka_broker.bootstrap, topic, after)
    records = await read_all(kafka_broker.bootstrap, topic)
    assert sorted(r.value for r in records) == sorted(before + after)
