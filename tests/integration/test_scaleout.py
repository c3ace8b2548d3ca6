"""Scale-out (ingester/coordination/): replicas share the shards through Kafka's consumer-group protocol.

- Fencing: when a second replica acquires a coordination partition, the first one's checkpoint commit for it
  fails (it is fenced) and writes nothing; the second one's commit lands.
- Three replica processes (``ingester run``, one worker each) against the real broker and moto's server: the
  shards spread over the three; one is killed with SIGKILL mid-run; the two others take its shards; reading
  the output topic back shows every generated record: at least once, duplicates counted; exactly once (events
  in the transactions of their shard group's producer, read_committed), no duplicate at all.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from ingester import config as config_mod
from ingester.checkpoint.kafka_store import KafkaCheckpointStore, read_partitions
from ingester.coordination.committer import CheckpointCommitter
from ingester.coordination.member import open_shared
from ingester.coordination.partition import shard_group
from ingester.demo.world import World, build_organization, upload_logs
from ingester.models import Settlement
from tests.infra.kafka_broker import create_topic
from tests.infra.moto_server import MotoServer
from tests.integration.test_crash import progress, start_collector, write_config
from tests.integration.test_pipeline import START, event_ids, topics

pytestmark = pytest.mark.integration

PARTITIONS = 12
REPLICAS = 3
REGIONS = ("us-east-1", "eu-west-1")


def scaleout_settings(bootstrap: str, topic: str, **scaleout: Any) -> config_mod.Settings:
    return config_mod.build(
        {
            "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "dead_letter_topic": f"{topic}-dlq"},
            "scaleout": {"enabled": True, "topic": f"{topic}-coord", "partitions": PARTITIONS, **scaleout},
        }
    )


async def test_a_fenced_replica_cannot_commit_a_checkpoint(kafka_bootstrap: str) -> None:
    topic = await topics(kafka_bootstrap)
    settings = scaleout_settings(kafka_bootstrap, topic, transactional_id_prefix=f"{topic}-fence")
    sink, _ = await open_shared(settings)  # creates the coordination topic
    await sink.close()
    shard = "s3://bucket/AWSLogs/o-1/111111111111/CloudTrail/us-east-1/"
    p = shard_group(shard, PARTITIONS)
    zombie_store, owner_store = (
        KafkaCheckpointStore(settings.scaleout.topic, {}),
        KafkaCheckpointStore(settings.scaleout.topic, {}),
    )
    zombie, owner = CheckpointCommitter(settings, zombie_store), CheckpointCommitter(settings, owner_store)
    try:
        await zombie.acquire([p])
        zombie_store.commit(shard, "key-1", Settlement.DELIVERED, "key-1")
        assert await zombie.commit() == frozenset()  # the owner commits
        await owner.acquire([p])  # a new owner takes the partition: the old one is fenced
        zombie_store.commit(shard, "key-9", Settlement.DELIVERED, "key-9")
        assert await zombie.commit() == frozenset({p})
        assert zombie.held == frozenset()
        state = await read_partitions(settings.kafka, settings.scaleout.topic, [p], settings.aws.region)
        assert state[shard][0] == "key-1", "the fenced zombie's checkpoint must not land"
        owner_store.load(state, lambda shard_id: shard_group(shard_id, PARTITIONS) == p)
        owner_store.commit(shard, "key-2", Settlement.DELIVERED, "key-2")
        assert await owner.commit() == frozenset()
        state = await read_partitions(settings.kafka, settings.scaleout.topic, [p], settings.aws.region)
        assert state[shard] == ("key-2", {"key-1", "key-2"})
    finally:
        await zombie.close()
        await owner.close()


def world_of_many_shards(endpoint: str) -> World:
    """8 accounts x 2 regions = 16 shards (one per account and region of the organization trail)."""
    world = build_organization(endpoint, members=7)
    upload_logs(
        world,
        accounts=world.accounts,
        regions=REGIONS,
        start=START,
        days=1,
        files_per_hour=3,
        records_per_file=(1, 30),
        collect_ids=True,
        seed=11,
    )
    return world


def scaleout_config(
    path: Path,
    endpoint: str,
    bootstrap: str,
    topic: str,
    *,
    collection: dict[str, int] | None = None,
    extra: str = "",
    delivery: str = "at_least_once",
) -> Path:
    """One worker per replica (the ownership helpers read one group member's log); ``extra``: more TOML."""
    return write_config(
        path,
        endpoint,
        bootstrap,
        topic,
        delivery,
        collection={"max_inflight_objects": 2, "poll_interval_seconds": 5, "workers": 1, **(collection or {})},
        log_level="info",
        sections=extra
        + f"""
[scaleout]
enabled = true
topic = "{topic}-coord"
partitions = {PARTITIONS}
group_id = "{topic}-group"
transactional_id_prefix = "{topic}-shards"
session_timeout_ms = 6000
rebalance_timeout_ms = 30000
revoke_timeout_seconds = 10
commit_interval_ms = 500""",
    )


class Replica(msgspec.Struct):
    process: subprocess.Popen[bytes]
    log: Path


def events(log: Path, *names: str) -> list[dict[str, Any]]:
    """The replica's structured log lines with one of these event names, in order."""
    found = []
    for line in log.read_bytes().splitlines():
        if line.startswith(b"{"):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if entry.get("event") in names:
                found.append(entry)
    return found


def running_shards(log: Path) -> set[str]:
    """The shards whose jobs the replica runs now, from its shard_started / shard_stopped lines (a replica
    assigned before its first discovery pass starts its jobs after the assignment line)."""
    running: set[str] = set()
    for entry in events(log, "shard_started", "shard_stopped"):
        (running.add if entry["event"] == "shard_started" else running.discard)(entry["shard"])
    return running


def ownership(replicas: list[Replica]) -> list[tuple[frozenset[int], int] | None]:
    """Per replica: its partitions after its last ownership change and the jobs it runs, or None while it holds
    none (not yet assigned, or released and not assigned again)."""
    current: list[tuple[frozenset[int], int] | None] = []
    for replica in replicas:
        changes = events(replica.log, "shards_assigned", "shards_released")
        last = changes[-1] if changes else None
        if last is None or last["event"] != "shards_assigned":
            current.append(None)
        else:
            current.append((frozenset(last["partitions"]), len(running_shards(replica.log))))
    return current


async def wait_for_balance(replicas: list[Replica], deadline: float, shards: int) -> list[tuple[frozenset[int], int]]:
    """Until every live replica holds partitions, together all of them, none twice, and runs their shards."""
    while True:
        held = ownership(replicas)
        if all(h is not None for h in held):
            partitions = [h[0] for h in held if h is not None]
            jobs = sum(h[1] for h in held if h is not None)
            if sorted(p for group in partitions for p in group) == list(range(PARTITIONS)) and jobs == shards:
                return [h for h in held if h is not None]
        for replica in replicas:
            if replica.process.poll() is not None:
                pytest.fail(f"replica exited with {replica.process.returncode}: {replica.log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"partitions and shards not spread over the replicas in time: {held}")
        await asyncio.sleep(0.2)


async def terminate(replicas: list[Replica]) -> list[int]:
    """SIGTERM to each replica, then their exit codes (each must drain within 60 s)."""
    for replica in replicas:
        replica.process.send_signal(signal.SIGTERM)
    return [await asyncio.to_thread(r.process.wait, 60) for r in replicas]


def kill_left_over(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.process.poll() is None:
            replica.process.kill()
            replica.process.wait()


def missing_and_duplicates(expected: set[str], seen: list[str]) -> tuple[int, int]:
    counts = collections.Counter(seen)
    return len(expected - counts.keys()), sum(count - 1 for count in counts.values())


def assert_complete(expected: set[str], seen: list[str], survivors: list[Replica], codes: list[int]) -> None:
    """Every expected record arrived (duplicates allowed), nothing else did, and the survivors drained cleanly."""
    assert missing_and_duplicates(expected, seen)[0] == 0
    assert set(seen) == expected
    assert codes == [0] * len(survivors), [r.log.read_text()[-2000:] for r in survivors]


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
async def test_three_replicas_share_the_shards_and_survive_a_kill_9(
    moto_server: MotoServer, aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path, delivery: str
) -> None:
    moto_server.seed(20261201)  # fixed account ids: the same shard spread on every run
    world = await asyncio.to_thread(world_of_many_shards, aws_endpoint)
    shards = len(world.accounts) * len(REGIONS)
    assert shards == 16
    topic = f"scaleout-{uuid.uuid4().hex[:8]}"
    await topics_named(kafka_bootstrap, topic)
    config = scaleout_config(tmp_path, aws_endpoint, kafka_bootstrap, topic, delivery=delivery)
    replicas = [
        Replica(start_collector(config, tmp_path / f"replica-{n}.log", once=False), tmp_path / f"replica-{n}.log")
        for n in range(REPLICAS)
    ]
    try:
        spread = await wait_for_balance(replicas, time.monotonic() + 90, shards)
        jobs = [count for _, count in spread]
        print(f"shards per replica before the kill: {jobs} (of {shards}; partitions {[sorted(p) for p, _ in spread]})")
        assert sum(jobs) == shards
        assert all(count > 0 for count in jobs), f"a replica owns no shard: {jobs}"
        deadline_progress = time.monotonic() + 60

        # Kill mid-run: once a tenth of the records are out, so objects are in flight on every replica.
        while (sent_before_kill := await progress(kafka_bootstrap, topic, tmp_path, "at_least_once")) < (
            world.records // 10
        ):
            if time.monotonic() > deadline_progress:
                pytest.fail(f"no progress: {sent_before_kill} records after the spread")
            await asyncio.sleep(0.1)
        assert sent_before_kill < world.records, "the replicas finished before the kill; make the dataset larger"
        victim = max(range(REPLICAS), key=lambda n: jobs[n])
        victim_partitions = spread[victim][0]
        replicas[victim].process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(replicas[victim].process.wait)
        survivors = [r for n, r in enumerate(replicas) if n != victim]

        # The survivors take the victim's partitions (after its session times out) and finish everything.
        after = await wait_for_balance(survivors, time.monotonic() + 90, shards)
        taken = frozenset().union(*(p for p, _ in after))
        assert victim_partitions <= taken
        assert sum(count for _, count in after) == shards
        deadline = time.monotonic() + 120
        expected = set(world.event_ids)
        while not expected <= set(seen := await event_ids(kafka_bootstrap, topic)):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        codes = await terminate(survivors)
    finally:
        kill_left_over(replicas)

    seen = await event_ids(kafka_bootstrap, topic)
    missing, duplicates = missing_and_duplicates(expected, seen)
    print(
        f"scale-out ({delivery}): {REPLICAS} replicas, {shards} shards, files={world.files} records={world.records}, "
        f"kill -9 of replica {victim} after {sent_before_kill} records; read back {len(seen)}, "
        f"missing={missing} duplicates={duplicates}; survivors after: {[(sorted(p), c) for p, c in after]}"
    )
    assert_complete(expected, seen, survivors, codes)
    if delivery == "exactly_once":
        assert duplicates == 0, "read_committed sees each record once"


async def topics_named(bootstrap: str, topic: str) -> None:
    await create_topic(bootstrap, topic, partitions=4)
    await create_topic(bootstrap, f"{topic}-dlq", partitions=1)
