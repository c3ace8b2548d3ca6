"""ingester.checkpoint.store.SqliteCheckpointStore on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from ingester.checkpoint.store import CheckpointStatistics, SqliteCheckpointStore
from ingester.checkpoint.watermark import OrderedWatermark
from ingester.errors import CheckpointError
from ingester.models import Settlement

SHARD = "s3://audit-logs/AWSLogs/111122223333/CloudTrail/us-east-1/"
OTHER = "s3://audit-logs/AWSLogs/444455556666/CloudTrail/us-east-1/"
_START = datetime(2024, 3, 10, 14, 0, tzinfo=UTC)


def _key(minute: int, suffix: str = "9nYN7gp2eWAJHIfT") -> str:
    when = _START + timedelta(minutes=minute)
    return (
        f"AWSLogs/111122223333/CloudTrail/us-east-1/{when:%Y/%m/%d}/"
        f"111122223333_CloudTrail_us-east-1_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz"
    )


K0, K5, K10, K15, K20 = (_key(minute) for minute in (0, 5, 10, 15, 20))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "checkpoints.sqlite"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteCheckpointStore]:
    opened = SqliteCheckpointStore(db_path)
    try:
        yield opened
    finally:
        opened.close()


def test_empty_store(store: SqliteCheckpointStore) -> None:
    assert store.watermark(SHARD) is None
    assert store.settled_since(SHARD, "") == set()
    assert store.statistics() == CheckpointStatistics(shards=0, settled_keys=0, commits=0)


def test_commit_then_reopen_gives_watermark_and_settled_keys(db_path: Path) -> None:
    first = SqliteCheckpointStore(db_path)
    first.commit(SHARD, K5, Settlement.DELIVERED, K0)
    first.commit(SHARD, K0, Settlement.DELIVERED, K5)
    first.commit(SHARD, K10, Settlement.REJECTED, K10)
    first.commit(OTHER, K20, Settlement.DELIVERED, K20)
    assert first.statistics() == CheckpointStatistics(shards=2, settled_keys=4, commits=4)
    first.close()

    reopened = SqliteCheckpointStore(db_path)
    try:
        assert reopened.watermark(SHARD) == K10
        assert reopened.watermark(OTHER) == K20
        assert reopened.settled_since(SHARD, "") == {K0, K5, K10}
        assert reopened.settled_since(SHARD, K5) == {K5, K10}
        assert reopened.settled_since(SHARD, K15) == set()
        assert reopened.settled_since(OTHER, "") == {K20}
        assert reopened.statistics() == CheckpointStatistics(shards=2, settled_keys=4, commits=0)
    finally:
        reopened.close()


def test_the_latest_commit_sets_the_watermark(store: SqliteCheckpointStore) -> None:
    store.commit(SHARD, K10, Settlement.DELIVERED, K15)
    store.commit(SHARD, K0, Settlement.DELIVERED, K0)  # a late file pulled it back

    assert store.watermark(SHARD) == K0


def test_a_null_watermark_round_trips(store: SqliteCheckpointStore) -> None:
    store.commit(SHARD, K0, Settlement.DELIVERED, None)

    assert store.watermark(SHARD) is None
    assert store.settled_since(SHARD, "") == {K0}


def test_committing_the_same_key_twice_keeps_one_row(store: SqliteCheckpointStore) -> None:
    store.commit(SHARD, K0, Settlement.REJECTED, K0)
    store.commit(SHARD, K0, Settlement.DELIVERED, K0)

    assert store.settled_since(SHARD, "") == {K0}
    assert store.statistics() == CheckpointStatistics(shards=1, settled_keys=1, commits=2)


def test_prune_deletes_below_the_floor_only(store: SqliteCheckpointStore) -> None:
    for key in (K0, K5, K10, K15):
        store.commit(SHARD, key, Settlement.DELIVERED, key)
    store.commit(OTHER, K0, Settlement.DELIVERED, K0)

    store.prune(SHARD, K10)

    assert store.settled_since(SHARD, "") == {K10, K15}
    assert store.settled_since(OTHER, "") == {K0}  # other shards untouched
    assert store.watermark(SHARD) == K15  # the watermark row is not pruned
    assert store.statistics().settled_keys == 3


def test_prune_persists(db_path: Path) -> None:
    first = SqliteCheckpointStore(db_path)
    for key in (K0, K5, K10):
        first.commit(SHARD, key, Settlement.DELIVERED, key)
    first.prune(SHARD, K5)
    first.close()

    reopened = SqliteCheckpointStore(db_path)
    try:
        assert reopened.settled_since(SHARD, "") == {K5, K10}
    finally:
        reopened.close()


def test_store_state_restores_the_watermark_tracker(db_path: Path) -> None:
    """What a shard job does on restart: the tracker skips what was settled and resumes at the watermark."""
    store = SqliteCheckpointStore(db_path)
    tracker = OrderedWatermark(store.watermark(SHARD), store.settled_since(SHARD, ""))
    for key in (K0, K5, K10, K15):
        tracker.register(key)
    for key in (K0, K10, K15):  # K5 still in flight when the process dies
        tracker.settle(key, Settlement.DELIVERED)
        store.commit(SHARD, key, Settlement.DELIVERED, tracker.watermark)
    store.close()

    reopened = SqliteCheckpointStore(db_path)
    try:
        restored = OrderedWatermark(reopened.watermark(SHARD), reopened.settled_since(SHARD, ""))
    finally:
        reopened.close()

    assert restored.watermark == K5
    assert [key for key in (K0, K5, K10, K15, K20) if restored.wants(key)] == [K5, K20]


def test_directory_path_raises_checkpoint_error_naming_it(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()

    with pytest.raises(CheckpointError) as caught:
        SqliteCheckpointStore(directory)

    assert str(directory) in str(caught.value)
    assert caught.value.retriable is False


def test_path_under_a_file_raises_checkpoint_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    path = blocker / "checkpoints.sqlite"

    with pytest.raises(CheckpointError, match="not-a-dir"):
        SqliteCheckpointStore(path)


def test_not_a_database_file_raises_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some bytes" * 100)

    with pytest.raises(CheckpointError, match=r"garbage\.sqlite"):
        SqliteCheckpointStore(path)


def test_reads_and_prune_after_close_raise_checkpoint_error(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path)
    store.close()

    with pytest.raises(CheckpointError, match=r"checkpoints\.sqlite"):
        store.watermark(SHARD)
    with pytest.raises(CheckpointError, match=r"checkpoints\.sqlite"):
        store.settled_since(SHARD, "")
    with pytest.raises(CheckpointError, match=r"checkpoints\.sqlite"):
        store.prune(SHARD, K0)


def test_commit_after_close_raises_checkpoint_error(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path)
    store.close()

    with pytest.raises(CheckpointError, match=r"checkpoints\.sqlite"):
        store.commit(SHARD, K0, Settlement.DELIVERED, K0)


def _open_at_once(path: str, barrier: Any, failures: Any) -> None:
    barrier.wait()
    try:
        SqliteCheckpointStore(Path(path)).close()
    except CheckpointError:
        failures.put(path)


def test_worker_processes_open_a_store_the_parent_prepared_all_at_once(tmp_path: Path) -> None:
    """``run --workers N``: children racing to create the file failed with "database is locked" (switching a new
    database to WAL takes a lock SQLite's busy timeout does not wait for: 8 of 20 trials of 4 processes did);
    the parent now creates it first, and on a WAL file the children only read."""
    import multiprocessing
    import sqlite3

    from ingester import config
    from ingester.pipeline.runtime import prepare_shared_store

    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    for trial in range(10):
        path = tmp_path / f"trial-{trial}" / "checkpoints.sqlite"
        prepare_shared_store(config.build({"checkpoint": {"path": str(path)}}))
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        barrier = context.Barrier(4)
        children = [context.Process(target=_open_at_once, args=(str(path), barrier, failures)) for _ in range(4)]
        for child in children:
            child.start()
        for child in children:
            child.join(30)
            assert child.exitcode == 0
    assert failures.empty()


# Group commit (issue 13): the collector's store writes the commits of one event-loop turn in one transaction.


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """What another connection (another process, a crash's restart) reads from the file now."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        return other.execute(sql).fetchall()


async def test_group_commits_are_written_in_one_transaction_at_the_end_of_the_turn(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path, group_commits=True)
    transactions: list[str] = []
    store._db.set_trace_callback(lambda sql: transactions.append(sql) if sql.startswith("BEGIN") else None)
    keys = [_key(minute, suffix=f"{n:016d}") for n, minute in enumerate(range(0, 250, 5))]
    for n, key in enumerate(keys):
        store.commit(SHARD if n % 2 else OTHER, key, Settlement.DELIVERED, key)
    assert _rows(db_path, "SELECT count(*) FROM settled") == [(0,)]  # not yet: the turn is not over

    await asyncio.sleep(0)

    assert _rows(db_path, "SELECT count(*) FROM settled") == [(len(keys),)]
    assert dict(_rows(db_path, "SELECT shard_id, watermark FROM watermarks")) == {SHARD: keys[-1], OTHER: keys[-2]}
    assert transactions == ["BEGIN IMMEDIATE"]
    assert store.statistics().commits == len(keys)
    store.close()


async def test_a_grouped_commit_is_read_back_at_once(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path, group_commits=True)
    store.commit(SHARD, K5, Settlement.DELIVERED, K5)
    assert store.watermark(SHARD) == K5
    assert store.settled_since(SHARD, K0) == {K5}
    assert store.known(SHARD)
    store.close()


async def test_a_prune_after_a_grouped_commit_keeps_their_order(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path, group_commits=True)
    store.commit(SHARD, K0, Settlement.DELIVERED, K0)
    store.commit(SHARD, K10, Settlement.DELIVERED, K10)
    store.prune(SHARD, K5)  # K0 is below the floor: written first, then deleted, not written after
    await asyncio.sleep(0)
    assert _rows(db_path, "SELECT key FROM settled") == [(K10,)]
    store.close()


async def test_close_writes_the_commits_of_the_last_turn(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path, group_commits=True)
    store.commit(SHARD, K15, Settlement.REJECTED, K15)
    store.close()
    assert _rows(db_path, "SELECT key, outcome FROM settled") == [(K15, "rejected")]
    assert _rows(db_path, "SELECT watermark FROM watermarks") == [(K15,)]


async def test_a_failed_group_write_is_raised_by_the_next_call_naming_its_cause(db_path: Path) -> None:
    store = SqliteCheckpointStore(db_path, group_commits=True)
    store.commit(SHARD, K0, Settlement.DELIVERED, K0)
    with contextlib.closing(sqlite3.connect(db_path)) as other:
        other.execute("DROP TABLE settled")  # the group's write fails at the end of the turn
        other.commit()
    with structlog.testing.capture_logs() as logs:
        await asyncio.sleep(0)
    assert [(e["event"], "no such table: settled" in e["error"]) for e in logs] == [("checkpoint_write_failed", True)]

    with pytest.raises(CheckpointError, match=r"earlier checkpoint write failed.*no such table: settled"):
        store.commit(SHARD, K5, Settlement.DELIVERED, K5)
    with pytest.raises(CheckpointError, match="no such table: settled"):
        store.watermark(SHARD)
    with pytest.raises(CheckpointError, match="no such table: settled"):
        store.close()
