"""Digests in the running pipeline, against moto's S3 and a real Kafka broker.

The test plays CloudTrail for one shard of an organization trail with log file validation: it uploads log
files and five hourly digests signed with its own RSA key (the demo's DigestWriter, checked against an independent
AWS recipe in tests/unit/test_digest.py), and hands
the public key to the pipeline through the one seam moto forces (``run(public_keys=...)``: moto has no
ListPublicKeys). The hours:

    D1  three files, starting digest                          complete
    D2  a normal file, a tampered file, a file no listing saw  missing file fetched; file_hash_mismatch
    D3  no files                                              complete, nothing expected
    D4  one file, after a digest that went missing             chain_broken
    D5  one file, body changed after signing                  digest_signature_invalid
    and one file uploaded that no digest lists                file_not_in_digest

``verify`` publishes everything and alerts; ``enforce`` routes the tampered, unvouched and D5 files to the
dead-letter topic instead. Read back from the topics, every count is checked.
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingester.demo.digests import DigestWriter
from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import World, build_organization, client
from ingester.integrity import InMemoryPublicKeySource, PublicKey
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import create_topic, read_all
from tests.integration.test_pipeline import settings_for, topics, wait_until

pytestmark = pytest.mark.integration

REGION = "us-east-1"
HOUR0 = (datetime.now(UTC) - timedelta(hours=8)).replace(minute=0, second=0, microsecond=0)
STAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class Cloudtrail:
    """Uploads log files and signed digests for the management account's us-east-1 shard. The digests come from
    the demo's DigestWriter (AWS's recipe); ingester/integrity, which verifies them, shares no code with it, and
    tests/unit/test_digest.py checks that recipe against an independent one."""

    world: World
    writer: DigestWriter
    ids: dict[str, list[str]] = field(default_factory=dict)  # log key -> event ids

    @property
    def account(self) -> str:
        return self.world.accounts[0]

    def log(self, when: datetime, suffix: str, seed: int, *, tamper: bool = False) -> tuple[str, bytes]:
        """Upload one file; returns its key and *genuine* gzip body (what a digest hashes); ``tamper`` uploads
        another content under that key."""
        records = generate_records(seed, self.account, REGION, when, 4)
        genuine = gzip.compress(orjson.dumps({"Records": records}))
        key = log_key(self.account, REGION, when, suffix, org_id=self.world.org_id)
        altered = gzip.compress(orjson.dumps({"Records": [dict(records[0], eventName="DeleteTrail"), *records[1:]]}))
        client(self.world.endpoint, "s3").put_object(
            Bucket=self.world.bucket, Key=key, Body=altered if tamper else genuine
        )
        self.ids[key] = [f"{self.account}:{r['eventID']}" for r in records]
        return key, genuine

    def digest(
        self, end: datetime, files: list[tuple[str, bytes]], *, upload: bool = True, tamper: bool = False
    ) -> str:
        """Sign the hour's digest; ``upload=False`` loses it (the next one's chain breaks), ``tamper`` changes
        its bytes after signing (the meaning stays, the signature no longer verifies)."""
        digest = self.writer.digest(self.account, REGION, end, files)
        body = digest.body
        if tamper:
            body = gzip.compress(gzip.decompress(body).replace(b'"SHA-256"', b'"SHA-256" ', 1))
        if upload:
            client(self.world.endpoint, "s3").put_object(
                Bucket=self.world.bucket, Key=digest.key, Body=body, Metadata=digest.metadata
            )
        return digest.key


def validated_trail(endpoint: str) -> tuple[Cloudtrail, PublicKey]:
    """An organization whose trail has log file validation, and the key pair this test signs digests with."""
    world = build_organization(endpoint, members=0, log_validation=True)
    writer = DigestWriter(bucket=world.bucket, org_id=world.org_id, trail_name="org-trail", home_region=REGION)
    return Cloudtrail(world, writer), writer.public_key(HOUR0 - timedelta(days=1), HOUR0 + timedelta(days=1))


class Scenario:
    def __init__(self, endpoint: str) -> None:
        ct, self.public = validated_trail(endpoint)
        self.ct = ct
        minute = timedelta(minutes=1)
        d1 = [ct.log(HOUR0 + m * minute, f"a{m:015d}", m) for m in (5, 20, 35)]
        self.unlisted_key = ct.log(HOUR0 + 25 * minute, "z000000000000000", 99)[0]  # in no digest
        self.unlisted = ct.ids[self.unlisted_key]
        self.d1 = ct.digest(HOUR0 + 65 * minute, d1)
        # The "missing" file is named before the run's start time, so no listing returns it: only D2 names it.
        missed = ct.log(HOUR0 - 20 * minute, "m000000000000000", 50)
        tampered = ct.log(HOUR0 + 80 * minute, "t000000000000000", 51, tamper=True)
        normal = ct.log(HOUR0 + 90 * minute, "b000000000000000", 52)
        self.tampered_key = tampered[0]
        self.missed, self.tampered = ct.ids[missed[0]], ct.ids[self.tampered_key]
        self.d2 = ct.digest(HOUR0 + 125 * minute, [missed, tampered, normal])
        self.d3 = ct.digest(HOUR0 + 185 * minute, [])
        ct.digest(HOUR0 + 215 * minute, [], upload=False)  # a digest that went missing: D4's chain is broken
        self.d4 = ct.digest(HOUR0 + 245 * minute, [ct.log(HOUR0 + 200 * minute, "c000000000000000", 53)])
        forged = ct.log(HOUR0 + 260 * minute, "f000000000000000", 54)
        self.forged = ct.ids[forged[0]]
        self.d5 = ct.digest(HOUR0 + 305 * minute, [forged], tamper=True)
        self.all_ids = {i for ids in ct.ids.values() for i in ids}


async def integrity_settings(
    endpoint: str, bootstrap: str, tmp_path: Path, mode: str, **collection: Any
) -> tuple[str, Any]:
    topic = await topics(bootstrap)
    await create_topic(bootstrap, f"{topic}-integrity", partitions=1)
    settings = settings_for(
        endpoint,
        bootstrap,
        topic,
        tmp_path,
        sections={
            "integrity": {"mode": mode, "digest_poll_seconds": 1},
            "kafka": {
                "bootstrap_servers": bootstrap,
                "topic": topic,
                "dead_letter_topic": f"{topic}-dlq",
                "integrity_topic": f"{topic}-integrity",
            },
        },
        start_time=HOUR0.isoformat(),
        **collection,
    )
    return topic, settings


async def collect(scenario: Scenario, bootstrap: str, tmp_path: Path, mode: str) -> tuple[str, Telemetry, Any]:
    topic, settings = await integrity_settings(scenario.ct.world.endpoint, bootstrap, tmp_path, mode)
    return topic, await run_once(scenario, settings), settings


async def run_once(scenario: Scenario, settings: Any) -> Telemetry:
    telemetry = Telemetry()
    public_keys = InMemoryPublicKeySource([scenario.public])
    await asyncio.wait_for(
        run(settings, stop=asyncio.Event(), once=True, telemetry=telemetry, public_keys=lambda _region: public_keys),
        180,
    )
    return telemetry


async def reports(bootstrap: str, topic: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Completeness events by digest key, and the alerts."""
    records = [orjson.loads(r.value) for r in await read_all(bootstrap, f"{topic}-integrity", 30) if r.value]
    events = {r["digest_key"]: r for r in records if r["schema"] == "ingester.completeness.v1"}
    return events, [r for r in records if r["schema"] == "ingester.integrity_alert.v1"]


async def test_verify_reconciles_fetches_the_missing_file_and_alerts(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    scenario = await asyncio.to_thread(Scenario, aws_endpoint)
    topic, telemetry, settings = await collect(scenario, kafka_bootstrap, tmp_path, "verify")

    keys = [r.key.decode() for r in await read_all(kafka_bootstrap, topic, 60) if r.key is not None]
    assert sorted(keys) == sorted(scenario.all_ids), "verify publishes everything, the missing file included"
    events, alerts = await reports(kafka_bootstrap, topic)
    assert set(events) == {scenario.d1, scenario.d2, scenario.d3, scenario.d4, scenario.d5}
    assert [events[d]["files_expected"] for d in sorted(events)] == [3, 3, 0, 1, 1]
    assert all(e["complete"] and e["files_missing"] == 0 for e in events.values()), events
    assert [events[d]["digest_verified"] for d in sorted(events)] == [True, True, True, False, False]
    assert sorted((a["kind"], a["key"]) for a in alerts) == [
        ("chain_broken", scenario.d4),
        ("digest_signature_invalid", scenario.d5),
        ("file_hash_mismatch", scenario.tampered_key),
        ("file_not_in_digest", scenario.unlisted_key),
    ]
    assert all(a["action"] == "alerted" for a in alerts)
    assert telemetry.integrity_alerts == {
        "chain_broken": 1,
        "digest_signature_invalid": 1,
        "file_hash_mismatch": 1,
        "file_not_in_digest": 1,
    }
    assert telemetry.digests == {"complete": 5}

    # A restart re-reads no reconciled digest and re-sends nothing (digests have their own checkpoint).
    again = await run_once(scenario, settings)
    assert again.digests == {} and again.integrity_alerts == {}
    assert again.statistics().objects_delivered == 0
    assert len(await read_all(kafka_bootstrap, f"{topic}-integrity", 30)) == len(events) + len(alerts)


async def test_enforce_routes_unproven_files_to_the_dead_letter_topic(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    scenario = await asyncio.to_thread(Scenario, aws_endpoint)
    topic, telemetry, _ = await collect(scenario, kafka_bootstrap, tmp_path, "enforce")

    keys = sorted(r.key.decode() for r in await read_all(kafka_bootstrap, topic, 60) if r.key is not None)
    diverted = set(scenario.tampered) | set(scenario.forged) | set(scenario.unlisted)
    assert keys == sorted(scenario.all_ids - diverted)
    letters = [orjson.loads(r.value) for r in await read_all(kafka_bootstrap, f"{topic}-dlq", 30) if r.value]
    by_reason: dict[str, int] = {}
    for letter in letters:
        by_reason[letter["reason"]] = by_reason.get(letter["reason"], 0) + 1
    assert by_reason == {
        "integrity_file_hash_mismatch": 4,
        "integrity_digest_signature_invalid": 4,
        "integrity_file_not_in_digest": 4,
    }
    events, alerts = await reports(kafka_bootstrap, topic)
    assert all(e["complete"] for e in events.values())
    # The forged digest is alerted once itself, and once for the file it failed to vouch for.
    dead_lettered = sorted(a["kind"] for a in alerts if a["action"] == "dead_lettered")
    assert dead_lettered == [
        "digest_signature_invalid",
        "digest_signature_invalid",
        "file_hash_mismatch",
        "file_not_in_digest",
    ]
    assert sorted(a["kind"] for a in alerts if a["action"] == "alerted") == ["chain_broken"]
    assert telemetry.statistics().objects_rejected == 3


async def test_following_a_digest_that_names_a_file_beyond_the_lookback(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Continuous mode: the collector runs; an hour later a digest names a file delivered so late that listing
    no longer looks for it (beyond lookback_seconds): the digest brings it in, and its hour reports complete."""
    ct, public = await asyncio.to_thread(validated_trail, aws_endpoint)
    minute = timedelta(minutes=1)
    first = [await asyncio.to_thread(ct.log, HOUR0 + m * minute, f"a{m:015d}", m) for m in (5, 30, 95)]
    d1 = await asyncio.to_thread(ct.digest, HOUR0 + 65 * minute, first[:2])
    topic, settings = await integrity_settings(
        aws_endpoint, kafka_bootstrap, tmp_path, "verify", poll_interval_seconds=1, lookback_seconds=600
    )
    keys = InMemoryPublicKeySource([public])
    stop = asyncio.Event()
    telemetry = Telemetry()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=telemetry, public_keys=lambda _r: keys))
    try:
        await wait_until(lambda: telemetry.digests.get("complete", 0) == 1, "the first digest reconciled", 60)
        late = await asyncio.to_thread(ct.log, HOUR0 - 20 * minute, "m000000000000000", 50)  # before the start
        d2 = await asyncio.to_thread(ct.digest, HOUR0 + 125 * minute, [late, first[2]])
        await wait_until(lambda: telemetry.digests.get("complete", 0) == 2, "the second digest reconciled", 60)
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
    ids = [r.key.decode() for r in await read_all(kafka_bootstrap, topic, 30) if r.key is not None]
    assert sorted(ids) == sorted(i for v in ct.ids.values() for i in v), "the late file arrived, once"
    events, alerts = await reports(kafka_bootstrap, topic)
    assert [events[d]["files_expected"] for d in (d1, d2)] == [2, 2]
    assert all(e["complete"] for e in events.values()) and alerts == []
