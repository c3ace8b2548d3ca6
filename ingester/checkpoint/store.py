"""Checkpoint stores: the protocol, and the embedded SQLite store used by default.

A checkpoint is written only after the sink acknowledged (or dead-lettered) an object, never when it is read.
Per shard it holds the ordered watermark and the keys settled since ``watermark - lookback``; both are written
in one transaction, so a crash at any instant leaves a state from which a restart neither re-sends an
acknowledged object nor skips an unacknowledged one.

SQLite in WAL mode with ``synchronous=NORMAL``: a process crash (kill -9) loses nothing committed; a power
loss can lose the last commits, which means re-sending a few objects (duplicates), never skipping them.
Calls are synchronous and short (tens of microseconds); they run on the event loop on purpose, so a commit is
never interleaved with another commit of the same shard.

Group commit (``group_commits=True``, the collector's store): the commits made during one turn of the event loop
are written in one transaction at the end of that turn (``loop.call_soon``). A commit per object wrote the
same few B-tree pages to the WAL every time (small files, A/B: 22% less CPU without it), and one transaction per
turn writes them once for every object acknowledged in it (a produce response acknowledges many). The checkpoint
still holds only acknowledged objects; a crash in the microseconds before the turn ends re-sends those objects
(duplicates, as a crash between acknowledgement and commit always could), never skips one. Every read and
write of the store writes the pending group first, so the store always reads its own commits; a failed group
write is logged when it happens (``checkpoint_write_failed``: a collector with nothing new to settle would
otherwise show nothing) and raised by the next call (commit, read or close): the checkpoint store failing stops
the collector, as a failed single commit did.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Protocol

import msgspec
import structlog

from ingester.errors import CheckpointError
from ingester.models import Settlement

log = structlog.get_logger("ingester.checkpoint.store")


class ShardState(msgspec.Struct, frozen=True, kw_only=True):
    """One shard's row, for ``ingester checkpoint show``."""

    shard_id: str
    # None: the shard is known (started, or looked for in Kafka) but nothing of it is settled in order yet.
    watermark: str | None
    # Unix seconds of the last commit.
    updated_at: float
    # Keys settled at or after the resume point (the lookback window), late and out-of-order ones included.
    remembered: tuple[str, ...] = ()


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

    def __init__(self, path: Path, *, readonly: bool = False, group_commits: bool = False) -> None:
        """``readonly``: an existing store, read without writing anything (``ingester checkpoint show`` while a
        collector runs); otherwise the file is created if missing. Taking the lock is the caller's
        (checkpoint/lock.py): worker processes open the store under their parent's. ``group_commits``: one
        transaction per turn of the running event loop (module docstring); commits then need a running loop."""
        try:
            if readonly:
                if not path.exists():
                    raise CheckpointError(f"no checkpoint store at {path}")
                self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
                self._db.execute("SELECT count(*) FROM watermarks").fetchone()  # a corrupt file fails here
            else:
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
        self._group = group_commits
        # Group commit: settled rows, and each shard's last watermark, not written yet.
        self._pending_keys: list[tuple[str, str, str, float]] = []
        self._pending_watermarks: dict[str, tuple[str, str | None, float]] = {}
        self._flush_scheduled = False
        self._failure: CheckpointError | None = None

    def watermark(self, shard_id: str) -> str | None:
        self.flush()
        row = self._query_one("SELECT watermark FROM watermarks WHERE shard_id = ?", (shard_id,))
        return None if row is None else str(row[0]) if row[0] is not None else None

    def settled_since(self, shard_id: str, floor_key: str) -> set[str]:
        self.flush()
        try:
            rows = self._db.execute(
                "SELECT key FROM settled WHERE shard_id = ? AND key >= ?", (shard_id, floor_key)
            ).fetchall()
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self._path}: read of {shard_id} failed: {exc}") from exc
        return {row[0] for row in rows}

    def commit(self, shard_id: str, key: str, outcome: Settlement, watermark: str | None) -> None:
        self._raise_failure()
        now = time.time()
        if self._group:
            self._pending_keys.append((shard_id, key, outcome.value, now))
            self._pending_watermarks[shard_id] = (shard_id, watermark, now)
            if not self._flush_scheduled:
                asyncio.get_running_loop().call_soon(self._flush_turn)
                self._flush_scheduled = True
        else:
            self._write([(shard_id, key, outcome.value, now)], [(shard_id, watermark, now)], f"{shard_id} {key}")
        self._commits += 1

    def flush(self) -> None:
        """Write the grouped commits not written yet, in one transaction (a no-op without group commit)."""
        self._raise_failure()
        if not self._pending_keys:
            return
        settled, self._pending_keys = self._pending_keys, []
        watermarks = list(self._pending_watermarks.values())
        self._pending_watermarks.clear()
        self._write(settled, watermarks, f"{len(settled)} objects of {len(watermarks)} shards")

    def _flush_turn(self) -> None:
        """The end of the loop turn in which commits were grouped: write them. A failure is kept for the next
        call to raise (a loop callback has no caller to raise to)."""
        self._flush_scheduled = False
        try:
            self.flush()
        except CheckpointError as exc:
            self._failure = exc
            log.error("checkpoint_write_failed", error=str(exc))

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise CheckpointError(f"an earlier checkpoint write failed: {self._failure}") from self._failure

    def _write(
        self, settled: list[tuple[str, str, str, float]], watermarks: list[tuple[str, str | None, float]], what: str
    ) -> None:
        """The settled keys and the shards' watermarks, in one transaction."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO settled (shard_id, key, outcome, settled_at) VALUES (?, ?, ?, ?)", settled
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO watermarks (shard_id, watermark, updated_at) VALUES (?, ?, ?)", watermarks
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise CheckpointError(f"{self._path}: commit of {what} failed: {exc}") from exc

    def prune(self, shard_id: str, floor_key: str) -> None:
        self.flush()  # in order: a key committed before the prune must not be written after it
        try:
            self._db.execute("DELETE FROM settled WHERE shard_id = ? AND key < ?", (shard_id, floor_key))
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self._path}: prune of {shard_id} failed: {exc}") from exc

    def known(self, shard_id: str) -> bool:
        """Whether the shard has a row: it committed, or was restored (or looked for) in Kafka. A shard without
        one is new, or its state was lost (checkpoint/rebuild.py decides which)."""
        self.flush()
        return self._query_one("SELECT 1 FROM watermarks WHERE shard_id = ?", (shard_id,)) is not None

    def restore(self, shard_id: str, watermark: str | None, settled: set[str]) -> bool:
        """Write a rebuilt state for a shard that has none, in one transaction; False (nothing written) when the
        shard has a row by then. ``watermark`` None with no keys records "looked for, nothing found", so the
        next start does not look again."""
        self.flush()
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO watermarks (shard_id, watermark, updated_at) VALUES (?, ?, ?)",
                (shard_id, watermark, now),
            ).rowcount
            if inserted:
                self._db.executemany(
                    "INSERT OR IGNORE INTO settled (shard_id, key, outcome, settled_at) VALUES (?, ?, ?, ?)",
                    [(shard_id, key, Settlement.DELIVERED.value, now) for key in sorted(settled)],
                )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise CheckpointError(f"{self._path}: restore of {shard_id} failed: {exc}") from exc
        return bool(inserted)

    def reset(self, shard_id: str, watermark: str) -> bool:
        """Move one shard's watermark and forget its remembered keys (``ingester checkpoint reset``): the next run
        lists from ``watermark``'s time minus the lookback and sends everything it finds from there. False
        when the shard has no row (nothing is created: a typo in the shard id must not add one)."""
        self.flush()
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            updated = self._db.execute(
                "UPDATE watermarks SET watermark = ?, updated_at = ? WHERE shard_id = ?", (watermark, now, shard_id)
            ).rowcount
            if updated:
                self._db.execute("DELETE FROM settled WHERE shard_id = ?", (shard_id,))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise CheckpointError(f"{self._path}: reset of {shard_id} failed: {exc}") from exc
        return bool(updated)

    def states(self) -> list[ShardState]:
        """Every shard's row and remembered keys, by shard id (bounded: the lookback window's keys per shard)."""
        self.flush()
        try:
            rows = self._db.execute(
                "SELECT shard_id, watermark, updated_at FROM watermarks ORDER BY shard_id"
            ).fetchall()
            keys: dict[str, list[str]] = {}
            for shard_id, key in self._db.execute("SELECT shard_id, key FROM settled ORDER BY shard_id, key"):
                keys.setdefault(shard_id, []).append(key)
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self._path}: read failed: {exc}") from exc
        return [
            ShardState(
                shard_id=shard_id,
                watermark=watermark,
                updated_at=float(updated),
                remembered=tuple(keys.get(shard_id, ())),
            )
            for shard_id, watermark, updated in rows
        ]

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # a closed or broken connection cannot roll back either
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def statistics(self) -> CheckpointStatistics:
        self.flush()
        shards = self._query_one("SELECT count(*) FROM watermarks", ())
        keys = self._query_one("SELECT count(*) FROM settled", ())
        return CheckpointStatistics(
            int(str(shards[0])) if shards else 0, int(str(keys[0])) if keys else 0, self._commits
        )

    def close(self) -> None:
        """Write what is pending, then close; a failed write (now, or grouped earlier) is raised after closing."""
        try:
            self.flush()
        finally:
            self._db.close()

    def _query_one(self, sql: str, args: tuple[str, ...]) -> tuple[object, ...] | None:
        try:
            row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self._path}: query failed: {exc}") from exc
        return row
