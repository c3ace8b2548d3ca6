"""The pure parts of issue 18: the store's lock, provenance headers, the rebuild's decisions, restore / reset rows
and ``checkpoint show``'s view. The commands and the rebuild against a real broker: tests/integration/
test_checkpoint_state.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingester.checkpoint.lock import StoreLock, check_held_by, is_locked, lock_path, read_holder
from ingester.checkpoint.rebuild import RebuildScan, shard_of
from ingester.checkpoint.store import ShardState, SqliteCheckpointStore
from ingester.cli.checkpoint import shard_view
from ingester.codec.provenance import provenance_headers, read_provenance
from ingester.errors import CheckpointError, CheckpointLockedError, ExitCode, exit_code_for
from ingester.models import Settlement, Shard
from ingester.sources.keys import key_time, minute_key, resume_point

SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-east-1:111122223333:trail/org",
    bucket="audit-logs",
    key_prefix="",
    org_id="o-abc123",
    account_id="111122223333",
    region="us-east-1",
    reader_account="111122223333",
)
START = datetime(2024, 3, 10, 14, 0, tzinfo=UTC)
LOOKBACK = timedelta(minutes=30)


def key(minute: int, suffix: str = "9nYN7gp2eWAJHIfT") -> str:
    when = START + timedelta(minutes=minute)
    name = f"{SHARD.account_id}_CloudTrail_us-east-1_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz"
    return f"{SHARD.log_prefix}{when:%Y/%m/%d}/{name}"


# --- the lock ------------------------------------------------------------------------------------------------


def test_a_second_holder_is_refused_with_the_first_ones_pid_host_and_time(tmp_path: Path) -> None:
    store = tmp_path / "checkpoints.sqlite"
    with StoreLock.acquire(store) as first:
        assert is_locked(store)
        holder = read_holder(lock_path(store))
        assert holder == first.holder and holder.pid == os.getpid() and holder.host == socket.gethostname()
        with pytest.raises(CheckpointLockedError) as refused:
            StoreLock.acquire(store)  # flock is per open file: the same process is refused too
        message = str(refused.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()} since 20" in message
        assert exit_code_for(refused.value) == ExitCode.CHECKPOINT
    assert not is_locked(store)
    StoreLock.acquire(store).release()  # released: free again, the stale file content is ignored


def test_the_kernel_drops_the_lock_of_a_killed_holder(tmp_path: Path) -> None:
    store = tmp_path / "checkpoints.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from ingester.checkpoint.lock import StoreLock;"
            f"StoreLock.acquire(Path({str(store)!r})); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert is_locked(store)
        with pytest.raises(CheckpointLockedError, match=f"pid {holder.pid} "):
            StoreLock.acquire(store)
        check_held_by(store, holder.pid)  # a worker of that process may use the store
        with pytest.raises(CheckpointLockedError):
            check_held_by(store, os.getpid())  # anybody else may not
    finally:
        holder.kill()
        holder.wait()
    assert not is_locked(store)
    with pytest.raises(CheckpointError, match="not locked by this worker's parent"):
        check_held_by(store, holder.pid)


# --- provenance ------------------------------------------------------------------------------------------------


def test_provenance_headers_read_back() -> None:
    headers = provenance_headers(SHARD, key(5), records=37, watermark=key(0))
    found = read_provenance([("account", b"111122223333"), *headers])
    assert found is not None
    assert (found.bucket, found.key, found.records, found.watermark) == ("audit-logs", key(5), 37, key(0))
    first = read_provenance(provenance_headers(SHARD, key(5), records=1, watermark=None))
    assert first is not None and first.watermark is None
    assert read_provenance([("account", b"1")]) is None
    assert read_provenance([("origin", b"s3://bucket-only"), ("originRecords", b"1")]) is None
    assert read_provenance([("origin", b"s3://b/k"), ("originRecords", b"many")]) is None


def test_a_shard_is_known_from_its_key_alone() -> None:
    found = shard_of("audit-logs", key(0))
    assert found is not None and found.shard_id == SHARD.shard_id
    prefixed = shard_of("b", "logs/trail/AWSLogs/444455556666/CloudTrail/eu-west-1/2024/03/10/x.json.gz")
    assert prefixed is not None and prefixed.shard_id == "s3://b/logs/trail/AWSLogs/444455556666/CloudTrail/eu-west-1/"
    assert shard_of("b", "AWSLogs/444455556666/CloudTrail-Digest/eu-west-1/x") is None


def test_a_reset_watermark_reads_as_its_minute_and_sorts_before_that_minutes_files() -> None:
    when = START + timedelta(minutes=7)
    mark = minute_key(SHARD, when)
    assert key_time(mark) == when
    assert mark < key(7, "00") < key(7, "A") and mark > key(6, "zzzz")
    assert resume_point(mark, LOOKBACK) == when - LOOKBACK


# --- the rebuild's decisions -------------------------------------------------------------------------------------


def records(
    file_key: str, ids: range, *, total: int, watermark: str | None
) -> list[tuple[list[tuple[str, bytes]], bytes]]:
    headers = list(provenance_headers(SHARD, file_key, records=total, watermark=watermark))
    return [(headers, f"{file_key}#{n}".encode()) for n in ids]


def newest_first(*files: list[tuple[list[tuple[str, bytes]], bytes]]) -> list[tuple[list[tuple[str, bytes]], bytes]]:
    """Files in send order -> the scan's order (newest record first)."""
    return [record for batch in files for record in batch][::-1]


def test_restore_takes_the_lowest_watermark_of_the_newest_files_and_remembers_only_complete_ones() -> None:
    # Sent in this order by concurrent workers: minute 40 was encoded while minute 35 was still in flight (its
    # watermark is 30); minute 45 lost its last record (in flight at the loss); 50 arrived complete.
    sent = newest_first(
        records(key(0), range(3), total=3, watermark=None),
        *(records(key(m), range(2), total=2, watermark=key(m - 5)) for m in range(5, 35, 5)),
        records(key(40), range(2), total=2, watermark=key(30)),
        records(key(35), range(2), total=2, watermark=key(30)),
        records(key(45), range(1), total=2, watermark=key(35)),
        records(key(50), range(4), total=4, watermark=key(40)),
    )
    scan = RebuildScan(lookback=LOOKBACK, window_files=4, wanted=None)
    scan.feed(0, sent)
    restored = scan.result()[SHARD.shard_id]
    assert restored.watermark == key(30)  # the lowest of the newest four files (50, 45, 35, 40)
    # resume point: minute 30 - 30 min = minute 0; complete files from there, the partial one (45) not
    assert restored.settled == frozenset({key(m) for m in (0, 5, 10, 15, 20, 25, 30, 35, 40, 50)})
    assert restored.newest_key == key(50)
    assert scan.partition_done(0, None) is False  # never saw a key below the resume point: the partition start


def test_the_scan_stops_once_every_shard_is_seen_below_its_resume_point() -> None:
    scan = RebuildScan(lookback=LOOKBACK, window_files=2, wanted=None)
    assert scan.partition_done(0, None) is False  # nothing seen yet: read on
    scan.feed(0, newest_first(*(records(key(m), range(2), total=2, watermark=key(m - 5)) for m in range(40, 70, 5))))
    assert scan.partition_done(0, None) is False  # watermark 55 -> resume at minute 25: nothing below it seen yet
    scan.feed(0, newest_first(records(key(20), range(2), total=2, watermark=key(15))))
    assert scan.partition_done(0, None) is True
    assert scan.result()[SHARD.shard_id].settled == frozenset({key(m) for m in range(40, 70, 5)})
    # a wanted shard expected in a partition keeps that partition open until it is seen
    waiting = RebuildScan(lookback=LOOKBACK, window_files=2, wanted=["s3://other/"])
    waiting.feed(0, newest_first(records(key(40), range(2), total=2, watermark=key(35))))
    assert waiting.result() == {}
    assert waiting.partition_done(0, ["s3://other/"]) is False
    assert waiting.partition_done(1, []) is True


def test_a_shard_without_a_watermark_yet_restores_none_and_its_complete_files() -> None:
    scan = RebuildScan(lookback=LOOKBACK, window_files=8, wanted=None)
    scan.feed(
        3,
        newest_first(
            records(key(0), range(2), total=2, watermark=None), records(key(5), range(1), total=3, watermark=None)
        ),
    )
    restored = scan.result()[SHARD.shard_id]
    assert restored.watermark is None and restored.settled == frozenset({key(0)})
    assert scan.partition_done(3, None) is False  # no resume point: every record of the shard matters


def test_records_without_provenance_are_counted_not_attributed() -> None:
    scan = RebuildScan(lookback=LOOKBACK, window_files=8, wanted=None)
    scan.feed(0, [([("account", b"111122223333")], b"k1"), ([], None)])
    assert (scan.records, scan.unattributed, scan.result()) == (2, 2, {})


# --- the store's rows -------------------------------------------------------------------------------------------


def test_restore_writes_only_a_missing_shard_and_reset_forgets_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.sqlite"
    store = SqliteCheckpointStore(path)
    try:
        assert not store.known(SHARD.shard_id)
        assert store.restore(SHARD.shard_id, key(30), {key(35), key(50)})
        assert store.known(SHARD.shard_id)
        assert store.watermark(SHARD.shard_id) == key(30)
        assert store.settled_since(SHARD.shard_id, "") == {key(35), key(50)}
        assert not store.restore(SHARD.shard_id, key(90), set())  # a row exists: kept as it is
        assert store.watermark(SHARD.shard_id) == key(30)
        assert store.restore("s3://new/", None, set())  # looked for, nothing found: known from now on
        assert store.known("s3://new/") and store.watermark("s3://new/") is None
        store.commit(SHARD.shard_id, key(55), Settlement.DELIVERED, key(55))
        assert store.reset(SHARD.shard_id, minute_key(SHARD, START))
        assert store.watermark(SHARD.shard_id) == minute_key(SHARD, START)
        assert store.settled_since(SHARD.shard_id, "") == set()
        assert not store.reset("s3://absent/", key(0))
        assert not store.known("s3://absent/")
    finally:
        store.close()
    reader = SqliteCheckpointStore(path, readonly=True)
    try:
        assert [state.shard_id for state in reader.states()] == sorted(["s3://new/", SHARD.shard_id])
    finally:
        reader.close()
    with pytest.raises(CheckpointError, match="no checkpoint store at"):
        SqliteCheckpointStore(tmp_path / "absent.sqlite", readonly=True)


def test_a_corrupt_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    with pytest.raises(CheckpointError) as failed:
        SqliteCheckpointStore(path)
    assert exit_code_for(failed.value) == ExitCode.CHECKPOINT


def test_show_view_lag_and_keys_ahead_of_the_watermark() -> None:
    state = ShardState(
        shard_id=SHARD.shard_id, watermark=key(30), updated_at=START.timestamp(), remembered=(key(10), key(30), key(40))
    )
    view = shard_view(state, START + timedelta(minutes=90), keys=True)
    assert (view.lag_seconds, view.remembered, view.ahead) == (3600, 3, 1)
    assert view.keys == (key(10), key(30), key(40)) and view.updated_at == "2024-03-10T14:00:00Z"
    empty = shard_view(ShardState(shard_id="s", watermark=None, updated_at=0.0), START, keys=False)
    assert (empty.lag_seconds, empty.remembered, empty.keys) == (None, 0, ())
