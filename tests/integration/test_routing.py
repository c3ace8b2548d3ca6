"""Routing before Kafka (issue 16, part 1) against the real broker and moto's server: three routes and a drop
rule, every record accounted for by its key across the topics plus the drop counter, in both delivery modes.

The expected destination of each record is computed here from the uploaded files themselves (read back from
S3), with the conditions written out in plain Python, not with ingester's router.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingester import config as config_mod
from ingester.demo.world import World, build_organization, client, upload_logs
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import create_topic
from tests.integration.test_isolation import metric
from tests.integration.test_pipeline import START, event_ids, topics, wait_for_count

pytestmark = pytest.mark.integration

ROUTES = [
    {"name": "auth", "event_source": ["signin.amazonaws.com", "sts.amazonaws.com"], "topic": "{t}-auth"},
    {"name": "no-kms", "event_source": ["kms.amazonaws.com"], "action": "drop"},
    {"name": "data", "event_category": ["Data"], "topic": "{t}-data"},
    {"name": "errors", "error": True, "sample": 2, "topic": "{t}-errors"},
]


def expected_route(record: dict[str, Any]) -> str:
    """The first route whose conditions hold, written out independently of ingester's matcher."""
    if record["eventSource"] in ("signin.amazonaws.com", "sts.amazonaws.com"):
        return "auth"
    if record["eventSource"] == "kms.amazonaws.com":
        return "no-kms"
    if record.get("eventCategory") == "Data":
        return "data"
    if record.get("errorCode"):
        return "errors"
    return "default"


def uploaded(world: World) -> list[dict[str, Any]]:
    s3 = client(world.endpoint, "s3")
    records: list[dict[str, Any]] = []
    for key in world.keys:
        body = s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
        records.extend(orjson.loads(gzip.decompress(body))["Records"])
    return records


def small_world(endpoint: str) -> World:
    world = build_organization(endpoint, members=1)
    upload_logs(
        world,
        accounts=world.accounts,
        regions=("us-east-1",),
        start=START,
        days=1,
        files_per_hour=2,
        records_per_file=(1, 60),
        collect_ids=True,
    )
    return world


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
async def test_routes_send_drop_and_sample_and_every_record_is_accounted_for(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path, delivery: str
) -> None:
    world = await asyncio.to_thread(small_world, aws_endpoint)
    records = await asyncio.to_thread(uploaded, world)
    assert len(records) == world.records
    topic = await topics(kafka_bootstrap)
    for suffix in ("auth", "data", "errors"):
        await create_topic(kafka_bootstrap, f"{topic}-{suffix}", partitions=2)
    routes = [{k: (v.format(t=topic) if isinstance(v, str) else v) for k, v in r.items()} for r in ROUTES]
    kafka: dict[str, Any] = {"bootstrap_servers": kafka_bootstrap, "topic": topic, "dead_letter_topic": f"{topic}-dlq"}
    if delivery == "exactly_once":
        kafka |= {"delivery": "exactly_once", "transactional_id": f"{topic}-txn", "checkpoint_topic": f"{topic}-ckpt"}
    settings = config_mod.build(
        {
            "aws": {"endpoint_url": aws_endpoint},
            "discovery": {"mode": "organization", "regions": ["us-east-1"], "interval_seconds": 1},
            "collection": {"start_time": START.isoformat()},
            "kafka": kafka,
            "sink": {"format": "raw"},
            "checkpoint": {"path": str(tmp_path / "checkpoints.sqlite")},
            "routes": routes,
        }
    )
    expected: dict[str, set[str]] = collections.defaultdict(set)
    dropped: collections.Counter[str] = collections.Counter()
    for record in records:
        key = f"{record['recipientAccountId']}:{record['eventID']}"
        route = expected_route(record)
        if route == "no-kms" or (route == "errors" and zlib.crc32(key.encode()) % 2):
            dropped[route] += 1
        else:
            expected[route].add(key)
    # The data must exercise every route, or the test proves nothing.
    assert all(expected[name] for name in ("auth", "data", "errors", "default")), {
        k: len(v) for k, v in expected.items()
    }
    assert dropped["no-kms"] > 0 and dropped["errors"] > 0
    telemetry = Telemetry()

    stats = await run(settings, stop=asyncio.Event(), once=True, telemetry=telemetry)

    sent = sum(len(keys) for keys in expected.values())
    assert (stats.objects_delivered, stats.records, stats.records_dropped) == (world.files, sent, dropped.total())
    seen: dict[str, list[str]] = {}
    for route, destination in (
        ("default", topic),
        ("auth", f"{topic}-auth"),
        ("data", f"{topic}-data"),
        ("errors", f"{topic}-errors"),
    ):
        await wait_for_count(kafka_bootstrap, destination, len(expected[route]))
        seen[route] = await event_ids(kafka_bootstrap, destination)
        assert collections.Counter(seen[route]).most_common(1)[0][1] == 1, f"duplicates on {destination}"
        assert set(seen[route]) == expected[route], route
        assert metric(telemetry, "ingester_routed_records_total", route=route, outcome="sent") == len(expected[route])
    for route in ("no-kms", "errors"):
        assert metric(telemetry, "ingester_routed_records_total", route=route, outcome="dropped") == dropped[route]
    # Every record is in exactly one place: one topic, or the drop counter.
    everywhere = [key for keys in seen.values() for key in keys]
    assert len(everywhere) + dropped.total() == len(world.event_ids)
    assert set(everywhere) <= set(world.event_ids)

    again = await run(settings, stop=asyncio.Event(), once=True)

    assert (again.objects_delivered, again.records, again.records_dropped) == (0, 0, 0)
