"""How large a message each Kafka topic takes, and whether a record or a dead letter fits it.

The broker checks each *batch*, after compression, against the topic's ``max.message.bytes`` (which defaults to
the broker's ``message.max.bytes``); the producer checks each record, uncompressed, against its own
``max_request_bytes``. Pure functions, so the rules are tested without a broker; the limits themselves come from
a :class:`TopicLimits` (describe_configs in production).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
import structlog
from aiokafka import codec as kafka_codec
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from ingester.config import KafkaSettings
from ingester.connect.kafka import client_options
from ingester.models import DeadLetter, OutboundRecord

log = structlog.get_logger("ingester.sinks.limits")

# Per-record overhead of the v2 record format, generously rounded (varints, attributes, headers count).
RECORD_OVERHEAD_BYTES = 64
# Batch header of the v2 format.
BATCH_OVERHEAD_BYTES = 61

_ENCODER = msgspec.json.Encoder()
_CODECS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": kafka_codec.zstd_encode,
    "lz4": kafka_codec.lz4_encode,
    "gzip": kafka_codec.gzip_encode,
    "snappy": kafka_codec.snappy_encode,
}


def headers_bytes(headers: tuple[tuple[str, bytes], ...]) -> int:
    """Upper bound of the headers' size inside a v2 record (name, value and their varint lengths)."""
    return sum(len(name) + len(value) + 4 for name, value in headers)


def record_bytes(record: OutboundRecord) -> int:
    """Upper bound of the record's uncompressed size inside a v2 batch."""
    return len(record.key) + len(record.value) + headers_bytes(record.headers) + RECORD_OVERHEAD_BYTES


def usable_bytes(limit: int, compression: str) -> int:
    """The part of a limit an uncompressed batch may fill: compressing incompressible bytes grows them a little
    (zstd's bound is +1/256, lz4's +1/255), and the broker checks the compressed batch."""
    return limit if compression == "none" else limit - limit // 128 - 128


def fits(record: OutboundRecord, limit: int, *, compression: str, max_request_bytes: int) -> bool:
    """Whether a batch holding only this record passes the broker's check (``limit``) and the producer's
    (``max_request_bytes``, checked on uncompressed bytes like aiokafka's and the Java client's ``send``).

    Only records above the uncompressed bound pay for compressing them here, once, to find out: a
    compressible record may fit a small topic as the broker sees it."""
    size = record_bytes(record) + BATCH_OVERHEAD_BYTES
    room = usable_bytes(limit, compression)
    if size > max_request_bytes:
        return False
    if size <= room or compression == "none":
        return size <= room
    body = b"".join((record.key, record.value, *(name.encode() + value for name, value in record.headers)))
    compressed = len(_CODECS[compression](body)) + RECORD_OVERHEAD_BYTES + BATCH_OVERHEAD_BYTES
    return compressed <= room


def fit_dead_letter(letter: DeadLetter, budget: int) -> bytes:
    """The letter's JSON in at most ``budget`` bytes, keeping as much as fits of the record, then of the detail.

    A binary search on the cut: a character takes one to six bytes in JSON (UTF-8, escapes), so the byte excess
    does not say how many characters to drop. ~17 encodings of a 64 KiB record, and only for oversized letters."""
    value = _ENCODER.encode(letter)
    for field in ("record", "detail"):
        if len(value) <= budget:
            break
        text: str = getattr(letter, field)
        low, high = 0, len(text)  # text[:low] fits (once checked); text[:high + 1] does not
        while low < high:
            middle = (low + high + 1) // 2
            if len(_ENCODER.encode(msgspec.structs.replace(letter, **{field: text[:middle]}))) <= budget:
                low = middle
            else:
                high = middle - 1
        letter = msgspec.structs.replace(letter, **{field: text[:low]})
        value = _ENCODER.encode(letter)
    return value


class TopicLimits(Protocol):
    """Where the sink learns how large a message each topic accepts; the admin client's describe_configs in
    production, a stand-in in tests that need the limit to be unknown."""

    async def max_message_bytes(self, topics: Sequence[str]) -> dict[str, int]:
        """The limit per topic; a topic whose limit cannot be read is left out (the sink then relies on the
        broker's refusals)."""
        ...


class DescribedLimits:
    """``max.message.bytes`` of each topic, else the broker's ``message.max.bytes`` (the default a topic
    without an override inherits). Read failures (e.g. no DescribeConfigs ACL, MSK IAM without
    ``kafka-cluster:DescribeTopicDynamicConfiguration``) are logged and leave the topic out."""

    def __init__(self, settings: KafkaSettings, aws_region: str) -> None:
        self._settings = settings
        self._aws_region = aws_region

    async def max_message_bytes(self, topics: Sequence[str]) -> dict[str, int]:
        timeout = self._settings.connect_timeout_seconds
        admin = AIOKafkaAdminClient(**client_options(self._settings, self._aws_region))
        found: dict[str, int] = {}
        try:
            await asyncio.wait_for(admin.start(), timeout)
            wanted = [ConfigResource(ConfigResourceType.TOPIC, t, {"max.message.bytes": None}) for t in topics]
            found = _config_values(await asyncio.wait_for(admin.describe_configs(wanted), timeout))
            if missing := [t for t in topics if t not in found]:
                brokers = (await asyncio.wait_for(admin.describe_cluster(), timeout))["brokers"]
                broker = ConfigResource(
                    ConfigResourceType.BROKER, str(brokers[0]["node_id"]), {"message.max.bytes": None}
                )
                default = _config_values(await asyncio.wait_for(admin.describe_configs([broker]), timeout))
                found |= {t: next(iter(default.values())) for t in missing if default}
        except (KafkaError, TimeoutError, OSError, LookupError, ValueError) as exc:
            log.warning("kafka_topic_limits_unavailable", topics=list(topics), error=repr(exc))
        finally:
            await admin.close()
        return found


def _config_values(responses: list[Any]) -> dict[str, int]:
    """resource name -> the one described value, for the resources the broker answered without an error."""
    values: dict[str, int] = {}
    for response in responses:
        for error_code, _message, _type, name, entries in response.resources:
            if error_code == 0 and entries and entries[0][1] is not None:
                values[name] = int(entries[0][1])
            elif error_code != 0:
                log.warning("kafka_topic_limit_unavailable", resource=name, error_code=error_code)
    return values
