"""Issue 18: the SQLite checkpoint cannot be shared by mistake, a lost one is rebuilt from the topic, and an
operator can read and move it. Collectors and commands run as subprocesses (``python -m ingester``) against the
real broker and moto's server; records are counted by key (the deterministic event id) and by origin header.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from ingester.codec.provenance import read_provenance
from ingester.demo.world import World
from ingester.sources.keys import name_time
from tests.infra.kafka_broker import read_all
from tests.integration.test_cli import ingester
from tests.integration.test_crash import big_world, progress, start_collector, write_config
from tests.integration.test_pipeline import START, event_ids, topics
from tests.integration.test_s3_faults import ids_of, small_world

pytestmark = pytest.mark.integration


def store_files(path: Path) -> list[Path]:
    """The checkpoint as a replaced volume loses it: the database, its WAL and shared memory, the lock file."""
    return sorted(path.glob("checkpoints.sqlite*"))


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, process: subprocess.Popen[bytes], *, seconds: float = 120
) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        if process.poll() is not None:
            pytest.fail(f"collector exited with {process.returncode} before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def origins(bootstrap: str, topic: str) -> dict[str, tuple[int, set[str]]]:
    """Per origin (s3://bucket/key): the record count it declares and the distinct event ids in the topic."""
    found: dict[str, tuple[int, set[str]]] = {}
    for record in await read_all(bootstrap, topic, 60):
        provenance = read_provenance(record.headers)
        assert provenance is not None, record.headers
        origin = f"s3://{provenance.bucket}/{provenance.key}"
        declared, ids = found.get(origin) or (provenance.records, set())
        assert record.key is not None
        ids.add(record.key.decode())
        found[origin] = (declared, ids)
    return found


def duplicated(seen: list[str], world: World) -> tuple[int, int]:
    counts = collections.Counter(seen)
    assert set(counts) == set(world.event_ids), "records missing from the topic"
    return sum(count - 1 for count in counts.values()), sum(1 for count in counts.values() if count > 1)


async def test_a_second_collector_is_refused_naming_the_first_and_its_workers_are_not(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(big_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    config = write_config(tmp_path, aws_endpoint, kafka_bootstrap, topic, collection={"workers": 2})
    log = tmp_path / "first.log"
    first = start_collector(config, log, once=False)  # two worker processes sharing the one SQLite file
    try:

        async def sending() -> bool:
            return await progress(kafka_bootstrap, topic, tmp_path, "at_least_once") > 0

        await wait_until(sending, "the first collector's workers sent records", first)
        since = f"pid {first.pid} on host {socket.gethostname()} since "

        second = await asyncio.to_thread(ingester, "run", "--once", "--config", str(config))
        assert second.returncode == 6, second.stderr[-2000:]
        assert "CheckpointLockedError" in second.stderr and since in second.stderr, second.stderr
        assert "ingester run" in second.stderr  # the holder's command line

        workers = await asyncio.to_thread(ingester, "run", "--workers", "3", "--config", str(config))
        assert workers.returncode == 6 and since in workers.stderr, workers.stderr[-2000:]

        shard = f"s3://{world.bucket}/AWSLogs/{world.org_id}/{world.accounts[0]}/CloudTrail/us-east-1/"
        reset = await asyncio.to_thread(
            ingester, "checkpoint", "reset", "--shard", shard, "--to", START.isoformat(), "--config", str(config)
        )
        assert reset.returncode == 6 and since in reset.stderr, reset.stderr[-2000:]

        shown = await asyncio.to_thread(ingester, "checkpoint", "show", "--config", str(config))
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert since in shown.stdout.splitlines()[0]  # show reads while the collector runs
    finally:
        first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.wait, 120)
    assert code == 0, log.read_text()[-3000:]
    third = await asyncio.to_thread(ingester, "run", "--once", "--config", str(config))
    assert third.returncode == 0, third.stderr[-3000:]  # the lock went with the first collector


@pytest.mark.parametrize("when", ["between_runs", "mid_run"])
async def test_a_deleted_checkpoint_is_rebuilt_from_the_topic(
    when: str, aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(big_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    config = write_config(tmp_path, aws_endpoint, kafka_bootstrap, topic, log_level="info")
    log = tmp_path / "collector.log"
    first = start_collector(config, log)
    if when == "between_runs":
        assert await asyncio.to_thread(first.wait, 300) == 0, log.read_text()[-3000:]
        for path in store_files(tmp_path):
            path.unlink()
    else:
        half = world.records // 3

        async def a_third_sent() -> bool:
            return await progress(kafka_bootstrap, topic, tmp_path, "at_least_once") > half

        await wait_until(a_third_sent, "a third of the records sent", first, seconds=300)
        for path in store_files(tmp_path):  # the volume goes away under the running collector...
            path.unlink()
        await asyncio.sleep(0.3)
        first.send_signal(signal.SIGKILL)  # ... and the pod with it
        await asyncio.to_thread(first.wait)
    before = await origins(kafka_bootstrap, topic)
    partial = {origin for origin, (declared, ids) in before.items() if len(ids) < declared}
    sent_before = sum(len(ids) for _, ids in before.values())

    second = start_collector(config, log)
    assert await asyncio.to_thread(second.wait, 300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "checkpoint_missing" in text and "checkpoint_restored_from_kafka" in text

    seen = await event_ids(kafka_bootstrap, topic)
    duplicates, duplicated_ids = duplicated(seen, world)
    resent = set(_origins_of_duplicates(await origins(kafka_bootstrap, topic), seen))
    print(
        f"{when}: files={world.files} records={world.records} records sent before the loss={sent_before} "
        f"files partly sent at the loss={len(partial)} duplicates={duplicates} (events {duplicated_ids}, "
        f"files {len(resent)})"
    )
    # Only the files in flight at the loss (partly in the topic) were sent again.
    assert resent <= partial, sorted(resent - partial)[:5]
    if when == "between_runs":
        assert (duplicates, partial) == (0, set())


def _origins_of_duplicates(after: dict[str, tuple[int, set[str]]], seen: list[str]) -> list[str]:
    counts = collections.Counter(seen)
    twice = {key for key, count in counts.items() if count > 1}
    return [origin for origin, (_, ids) in after.items() if ids & twice]


async def test_show_then_reset_one_shard_collects_it_again_from_that_time(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(small_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    config = write_config(tmp_path, aws_endpoint, kafka_bootstrap, topic, collection={"lookback_seconds": 0})
    since = START.date().isoformat()
    done = await asyncio.to_thread(ingester, "backfill", "--since", since, "--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]

    shown = await asyncio.to_thread(ingester, "checkpoint", "show", "--keys", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    # Two shards: us-east-1 with the files, eu-west-1 without any (known: looked for in the topic, not found).
    assert lines[0] == f"checkpoint {tmp_path / 'checkpoints.sqlite'}: 2 shards; not in use"
    last = max(world.keys)
    shards = {line.split("  ", 1)[0]: line.split("  ", 1)[1] for line in lines[1:] if line.startswith("s3://")}
    shard_id = next(shard for shard in shards if "/us-east-1/" in shard)
    assert shards[shard_id].startswith(f"watermark {last}  lag ") and "remembered " in shards[shard_id]
    empty = next(shard for shard in shards if "/eu-west-1/" in shard)
    assert shards[empty].startswith("watermark -  lag -  remembered 0")
    assert any(line.strip() == last for line in lines)  # with --keys

    to = START + timedelta(hours=12)
    reset = await asyncio.to_thread(
        ingester, "checkpoint", "reset", "--shard", shard_id, "--to", to.isoformat(), "--config", str(config)
    )
    assert reset.returncode == 0, reset.stderr
    assert f"{shard_id}: watermark {last} -> " in reset.stdout
    after = await asyncio.to_thread(ingester, "checkpoint", "show", "--json", "--config", str(config))
    assert '"lag_seconds":' in after.stdout and "T1200Z_0.json.gz" in after.stdout

    again = await asyncio.to_thread(ingester, "run", "--once", "--config", str(config))
    assert again.returncode == 0, again.stderr[-3000:]
    expected = collections.Counter(world.event_ids)
    for key in world.keys:
        named = name_time(key)
        if named is not None and named >= to:
            expected.update(ids_of(world, key))
    assert collections.Counter(await event_ids(kafka_bootstrap, topic)) == expected
    bad = await asyncio.to_thread(
        ingester, "checkpoint", "reset", "--shard", "s3://nope/x", "--to", since, "--config", str(config)
    )
    assert bad.returncode == 2 and "not a shard id" in bad.stderr
