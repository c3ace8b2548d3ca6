"""What the group member needs of the process that runs the shard jobs: the Supervisor's interface.

The pipeline (ingester/pipeline/supervisor.py) sits above coordination and implements these protocols; the member
(coordination/member.py) is written against them. So imports run one way, pipeline -> coordination, and a
rebalance can be tested against any host that keeps the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from ingester.checkpoint.watermark import OrderedWatermark
from ingester.models import Shard


class RunningShard(Protocol):
    """One running shard job, as a revocation sees it: wait for its objects to settle, count what is left."""

    async def wait_idle(self) -> None: ...

    @property
    def tracker(self) -> OrderedWatermark: ...


class Committer(Protocol):
    """Writes the owned groups' checkpoints, one transactional producer per group (committer.py; in
    exactly-once mode together with the groups' events, transactions.py)."""

    @property
    def held(self) -> frozenset[int]: ...

    async def acquire(self, partitions: Iterable[int]) -> None: ...

    async def commit(self) -> frozenset[int]: ...

    async def release(self, partitions: Iterable[int]) -> frozenset[int]: ...

    async def close(self) -> None: ...


class ShardHost(Protocol):
    """Runs a job for each owned shard of the last discovery pass; reconciling again applies a new ownership."""

    @property
    def discovered(self) -> dict[str, Shard]: ...

    @property
    def jobs(self) -> Mapping[str, tuple[RunningShard, object]]: ...

    async def reconcile(self, discovered: dict[str, Shard]) -> None: ...
