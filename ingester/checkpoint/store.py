"""Checkpoint stores: the protocol, and the embedded SQLite store used by default.

A checkpoint is written only after the sink acknowledged (or dead-lettered) an object, never when it is read.
Per shard it holds the ordered watermark and the keys settled since ``watermark - lookback``; both are written
in one transaction, so a crash at any instant leaves a state from which a restart neither re-sends an
acknowledged object nor skips an unacknowledged one.

SQLite in WAL mode with ``synchronous=NORMAL``: a process crash (kill -9) loses nothing committed; a power
loss can lose the last commits, which means re-sending a few objects (duplicates), never skipping them.
Calls are synchronous and short (tens of microseconds); they run on the event loop on purpose, so a commit is
never interleaved with another commit of the same shard.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Protocol

import msgspec

from ingester.errors import CheckpointError
from ingester.models import Settlement


class CheckpointStatistics(msgspec.Struct, frozen=True):
    shards: int
    settled_keys: int
    commits: int


class CheckpointStore(Protocol):
    def watermark(self, shard_id: str) -> str | None: ...

    def settled_since(self, shard_id: str, floor_key: str) -> set[str]: ...

    def commit(self, shard_id: str, key: str, outcome: Settlement, watermark: str | None) -> None: ...

    def prune(self, shard_id: str, floor_key: str) -> None: ...

    def statistics(self) -> CheckpointStatistics: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS watermarks (
    shard_id   TEXT PRIMARY KEY,
    watermark  TEXT,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settled (
    shard_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    settled_at REAL NOT NULL,
    PRIMARY KEY (shard_id, key)
) WITHOUT ROWID;
"""


class SqliteCheckpointStore:
    """One file, one connection, owned by the event loop thread."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # timeout = busy timeout: worker processes share the file (WAL), each writing only its own shards.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise CheckpointError(f"cannot open checkpoint store {path}: {exc}") from exc
        self._path = path
        self._commits = 0

    def watermark(self, shard_id: str) -> str | None:
        row = self._query_one("SELECT watermark FROM watermarks WHERE shard_id = ?", (shard_id,))
        return None if row is None else str(row[0]) if row[0] is not None else None

    def settled_since(self, shard_id: str, floor_key: str) -> set[str]:
        try:
            rows = self._db.execute(
                "SELECT key FROM settled WHERE shard_id = ? AND key >= ?", (shard_id, floor_key)
            ).fetchall()
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self._path}: read of {shard_id} failed: {exc}") from exc
        return {row[0] for row in rows}

    def commit(self, shard_id: str, key: str, outcome: Settlement, watermark: str | None) -> None:
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO settled (shard_id, key, outcome, settled_at) VALUES (?, ?, ?, ?)",
                (shard_id, key, outcome.value, now),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO watermarks (shard_id, watermark, updated_at) VALUES (?, ?, ?)",
                (shard_id, watermark, now),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):  # a closed or broken connection cannot roll back either
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise CheckpointError(f"{self._path}: commit of {shard_id} {key} failed: {exc}") from exc
        self._commits += 1

    def prune(self, shard_id: str, floor_key: str) -> None:
        try:
            self._db.execute("DELETE FROM settled WHERE shard_id = ? AND key < ?", (shard_id, floor_key))
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self._path}: prune of {shard_id} failed: {exc}") from exc

    def statistics(self) -> CheckpointStatistics:
        shards = self._query_one("SELECT count(*) FROM watermarks", ())
        keys = self._query_one("SELECT count(*) FROM settled", ())
        return CheckpointStatistics(
            int(str(shards[0])) if shards else 0, int(str(keys[0])) if keys else 0, self._commits
        )

    def close(self) -> None:
        self._db.close()

    def _query_one(self, sql: str, args: tuple[str, ...]) -> tuple[object, ...] | None:
        try:
            row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self._path}: query failed: {exc}") from exc
        return row
