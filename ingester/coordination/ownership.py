"""The shards a replica owns in scale-out mode: those whose coordination partition the group assigned to it.

Pure and synchronous: the group member (member.py) changes ``assigned``; the Supervisor asks ``owns``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ingester.coordination.partition import shard_group


class OwnershipStatistics(msgspec.Struct, frozen=True):
    partitions: int
    assigned: tuple[int, ...]
    generations: int


class GroupOwnership:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._assigned: frozenset[int] = frozenset()
        self._changes = 0

    def group_of(self, shard_id: str) -> int:
        return shard_group(shard_id, self.partitions)

    def owns(self, shard_id: str) -> bool:
        return self.group_of(shard_id) in self._assigned

    def in_groups(self, groups: frozenset[int]) -> Callable[[str], bool]:
        """A predicate selecting the shards of ``groups``."""
        return lambda shard_id: self.group_of(shard_id) in groups

    @property
    def assigned(self) -> frozenset[int]:
        return self._assigned

    def assign(self, groups: frozenset[int]) -> None:
        self._assigned = self._assigned | groups
        self._changes += 1

    def release(self, groups: frozenset[int]) -> None:
        self._assigned = self._assigned - groups
        self._changes += 1

    def statistics(self) -> OwnershipStatistics:
        return OwnershipStatistics(self.partitions, tuple(sorted(self._assigned)), self._changes)
