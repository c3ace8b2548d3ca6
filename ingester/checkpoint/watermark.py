"""The ordered watermark of one shard: what may be committed, decided without I/O.

Objects are registered in listing order and settle in any order. The watermark is the greatest settled key
below which every registered key is settled; when a late key sorting before that is still unsettled, the
watermark is that key instead. Either way, no unsettled registered key sorts before it. Restart lists again from
``watermark - lookback`` and skips the remembered settled keys, which is how a late file (a key that sorts
before the watermark, delivered after it moved) is collected exactly once.

Memory is bounded: settled keys older than ``watermark - lookback`` are forgotten by :meth:`prune`, so a year of
history costs a lookback window of keys (12 files/hour per shard, roughly). A shard job prunes the tracker between
listing passes only (a pass still listing must recognise every key it settled), but prunes its *checkpoint* every
:data:`CHECKPOINT_PRUNE_EVERY` settlements (:attr:`OrderedWatermark.checkpoint_prune_due`): in exactly-once mode
the checkpoint of a shard is one Kafka record, which a backfill pass would otherwise fill with every key it
settled (1 MiB at about 7,400 files).
"""

from __future__ import annotations

import msgspec

from ingester.models import Settlement

# Settlements between two checkpoint prunes inside a pass. Each costs one prune (a range DELETE in SQLite, a scan
# of the remembered keys in the Kafka store), and the checkpoint carries up to this many keys below the floor:
# 32 keys is about 4.5 KB, under three hours of a shard's files (the default lookback window).
CHECKPOINT_PRUNE_EVERY = 32


class WatermarkStatistics(msgspec.Struct, frozen=True):
    in_flight: int
    errored: int
    remembered: int
    watermark: str | None


class OrderedWatermark:
    """Per-shard bookkeeping; single-threaded (one event loop), no awaits inside."""

    def __init__(self, watermark: str | None, settled: set[str]) -> None:
        self._high = watermark
        self._settled = settled
        self._in_flight: set[str] = set()
        self._errored: set[str] = set()
        # Keys processed outside the listing order (a bad key's dead letter, a file found beyond the lookback):
        # remembered like the others, but they never hold or move the watermark.
        self._aside: set[str] = set()
        self._settlements = 0
        self._prune_due = False

    def wants(self, key: str) -> bool:
        """False if the key was settled, or is being processed; True also for keys that errored before."""
        return key not in self._settled and key not in self._in_flight and key not in self._aside

    def hold_aside(self, key: str) -> None:
        """A key taken out of the order: in flight, but not part of the watermark."""
        self._aside.add(key)

    def is_aside(self, key: str) -> bool:
        return key in self._aside

    def settle_aside(self, key: str, outcome: Settlement) -> None:
        """An aside key ended: remembered as settled (so listing skips it), the watermark untouched. An errored
        one is simply forgotten: whatever found it finds it again."""
        self._aside.discard(key)
        if outcome is not Settlement.ERRORED:
            self._settled.add(key)

    def is_settled(self, key: str) -> bool:
        return key in self._settled

    def is_in_flight(self, key: str) -> bool:
        return key in self._in_flight

    def register(self, key: str) -> None:
        self._in_flight.add(key)
        self._errored.discard(key)

    def settle(self, key: str, outcome: Settlement) -> bool:
        """Record how one object ended; returns True when the committable watermark changed."""
        before = self.watermark
        self._in_flight.discard(key)
        self._prune_due = False
        if outcome is Settlement.ERRORED:
            # Still unsettled: it holds the watermark back and is listed again on the next cycle.
            self._errored.add(key)
        else:
            self._settled.add(key)
            self._settlements += 1
            self._prune_due = self._settlements % CHECKPOINT_PRUNE_EVERY == 0
            if self._high is None or key > self._high:
                self._high = key
        return self.watermark != before

    @property
    def watermark(self) -> str | None:
        """Committable point: no unsettled registered key sorts before it."""
        pending = self._in_flight | self._errored if self._errored else self._in_flight
        if pending:
            first = min(pending)
            if self._high is None or first <= self._high:
                return first
        return self._high

    def prune(self, floor_key: str) -> list[str]:
        """Forget settled keys sorting before ``floor_key`` (the resume point); returns what was dropped."""
        dropped = [key for key in self._settled if key < floor_key]
        self._settled.difference_update(dropped)
        return dropped

    @property
    def checkpoint_prune_due(self) -> bool:
        """Whether the last :meth:`settle` was the :data:`CHECKPOINT_PRUNE_EVERY`-th delivered or rejected one since
        the previous time: when the shard job prunes its checkpoint inside a pass, often enough to bound it, rarely
        enough to cost nothing."""
        return self._prune_due

    @property
    def idle(self) -> bool:
        return not self._in_flight and not self._aside

    def statistics(self) -> WatermarkStatistics:
        return WatermarkStatistics(len(self._in_flight), len(self._errored), len(self._settled), self.watermark)
