"""Checkpoint pruning inside a listing pass (issue 19, case 6).

A shard job's checkpoint must stay at the lookback window however long the pass (in exactly-once mode it is one
Kafka record), and what it keeps must still let a restart skip exactly what was settled. The real ShardJob lists
a directory laid out like the bucket (LocalSource) and queues its files; a few tasks stand in for the workers and
settle them a little out of order, as real workers do. Both stores: the Kafka snapshot and the SQLite rows.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from ingester.checkpoint.kafka_store import KafkaCheckpointStore, ShardSnapshot
from ingester.checkpoint.store import CheckpointStore, SqliteCheckpointStore
from ingester.checkpoint.watermark import CHECKPOINT_PRUNE_EVERY, OrderedWatermark
from ingester.demo.generate import generate_files, log_key
from ingester.errors import CheckpointError
from ingester.models import Settlement, Shard
from ingester.pipeline.jobs import ShardJob, WorkItem
from ingester.sources.keys import resume_point, time_floor_key
from ingester.sources.local import LocalSource

SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-east-1:111122223333:trail/org-trail",
    bucket="audit-logs",
    key_prefix="",
    org_id="o-abcdefghij",
    account_id="111122223333",
    region="us-east-1",
    reader_account="111122223333",
)
FILES = 3_000  # about ten days at 12 files an hour; without pruning inside the pass, ~430 KB of checkpoint
FILES_PER_HOUR = 12
LOOKBACK = timedelta(hours=3)
WORKERS = 4
CRASH_POINTS = (500, 1500, 2500)
START = (datetime.now(UTC) - timedelta(days=FILES // FILES_PER_HOUR // 24 + 2)).replace(
    hour=0, minute=0, second=0, microsecond=0
)


def bound(key_length: int) -> tuple[int, int]:
    """(keys, bytes) a checkpoint may hold: the lookback window (and its closing minute), the keys settled since
    the last prune, and an allowance for those settled ahead of the watermark: twice what the queue (2 x WORKERS)
    and the workers hold. Each key costs its length, quotes and a comma in the JSON list; the watermark the rest."""
    window = FILES_PER_HOUR * int(LOOKBACK / timedelta(hours=1)) + 1
    keys = window + CHECKPOINT_PRUNE_EVERY + 2 * 3 * WORKERS
    return keys, keys * (key_length + 3) + 2 * key_length + 64


def backlog(root: Path) -> list[str]:
    """FILES empty files of the shard under ``root``, named as CloudTrail names them; their keys in order."""
    days = FILES // (FILES_PER_HOUR * 24) + 1
    generated = generate_files(
        3,
        [SHARD.account_id],
        [SHARD.region],
        START,
        days,
        files_per_hour=FILES_PER_HOUR,
        records_per_file=(0, 0),
        org_id=SHARD.org_id,
    )
    keys = [file.key for file in itertools.islice(generated, FILES)]
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return keys


async def one_pass(job: ShardJob, on_settled: Callable[[str], None]) -> None:
    """``job.run(once=True)``, with WORKERS tasks settling what it queues after a random few loop turns each."""
    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue(maxsize=2 * WORKERS)
    rng = random.Random(19)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            for _ in range(rng.randrange(8)):
                await asyncio.sleep(0)
            job.finish(item, Settlement.DELIVERED)
            on_settled(item.obj.key)

    async with asyncio.TaskGroup() as group:
        workers = [group.create_task(work(), name=f"worker-{n}") for n in range(WORKERS)]
        await job.run(queue, once=True, poll_interval=1)
        for _ in workers:
            await queue.put(None)


@pytest.mark.parametrize("kind", ["kafka", "sqlite"])
async def test_a_long_pass_prunes_its_checkpoint_and_a_restart_still_skips_exactly_what_settled(
    kind: str, tmp_path: Path
) -> None:
    root, database = tmp_path / "bucket", tmp_path / "checkpoints.sqlite"
    keys = backlog(root)
    store: CheckpointStore = (
        KafkaCheckpointStore("checkpoints", {}) if kind == "kafka" else SqliteCheckpointStore(database)
    )
    job = ShardJob(SHARD, LocalSource(root), store, start=None, lookback=LOOKBACK)
    settled: list[str] = []
    most_keys, largest = 0, 0
    last_snapshot = ShardSnapshot(None, [])

    def restarted() -> ShardJob:
        """A new job on what a restart would read now: the last snapshot (Kafka), the committed rows (SQLite)."""
        if isinstance(store, KafkaCheckpointStore):
            state = {SHARD.shard_id: (last_snapshot.watermark, set(last_snapshot.settled))}
            return ShardJob(
                SHARD, LocalSource(root), KafkaCheckpointStore("checkpoints", state), start=None, lookback=LOOKBACK
            )
        return ShardJob(SHARD, LocalSource(root), SqliteCheckpointStore(database), start=None, lookback=LOOKBACK)

    def on_settled(key: str) -> None:
        nonlocal most_keys, largest, last_snapshot
        settled.append(key)
        if isinstance(store, KafkaCheckpointStore):  # what the transactional sink's commit sends
            for _, value in store.take_dirty():
                largest = max(largest, len(value))
                last_snapshot = msgspec.json.decode(value, type=ShardSnapshot)
                most_keys = max(most_keys, len(last_snapshot.settled))
        else:
            most_keys = max(most_keys, store.statistics().settled_keys)
        if len(settled) in CRASH_POINTS:
            assert job.tracker.statistics().remembered == len(settled), "the pass forgets nothing it settled"
            after = restarted()
            done = set(settled)
            when = resume_point(after.tracker.watermark, LOOKBACK)
            assert when is not None
            floor = time_floor_key(SHARD, when)  # where the restart lists from
            assert all(k >= floor for k in keys if k not in done), "nothing unsettled below the restart's floor"
            assert [k for k in keys if k >= floor and after.tracker.wants(k)] == [k for k in keys if k not in done]

    await one_pass(job, on_settled)

    key_length = max(len(key) for key in keys)
    bound_keys, bound_bytes = bound(key_length)
    size = f" ({largest} bytes, bound {bound_bytes})" if largest else ""
    print(f"\n{kind}: {FILES} files, checkpoint at most {most_keys} keys{size}; bound {bound_keys} keys")
    assert sorted(settled) == keys
    assert store.watermark(SHARD.shard_id) == keys[-1]
    assert most_keys <= bound_keys
    assert largest <= bound_bytes
    store.close()


def test_checkpoint_prune_is_due_every_n_settlements_and_not_for_errors() -> None:
    tracker = OrderedWatermark(None, set())
    due = []
    for n in range(3 * CHECKPOINT_PRUNE_EVERY):
        key = f"key-{n:04d}"
        tracker.register(key)
        tracker.settle(key, Settlement.ERRORED if n % 2 else Settlement.DELIVERED)
        due.append(tracker.checkpoint_prune_due)
    # Only the 1.5 x N delivered settlements count: due once, after the N-th of them.
    assert due.count(True) == 1
    assert due.index(True) == 2 * (CHECKPOINT_PRUNE_EVERY - 1)


def test_a_snapshot_over_the_record_limit_is_refused_naming_the_shard_and_its_size() -> None:
    store = KafkaCheckpointStore("checkpoints", {}, max_record_bytes=4096)

    def key(minute: int) -> str:
        return log_key(SHARD.account_id, SHARD.region, START + timedelta(minutes=minute), "a" * 16, SHARD.org_id)

    held_back = key(0)
    for n in range(40):  # one object holds the watermark back while forty others settle
        store.commit(SHARD.shard_id, key(5 * n + 5), Settlement.DELIVERED, held_back)

    with pytest.raises(CheckpointError) as caught:
        store.take_dirty()

    message = str(caught.value)
    assert SHARD.shard_id in message and "checkpoints" in message
    assert "4096-byte record limit" in message and "40 settled keys, 40 of them ahead" in message
    size = int(message.split(" is ", 1)[1].split(" bytes", 1)[0])
    assert size > 4096
    assert caught.value.retriable is False
