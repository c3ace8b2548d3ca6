"""Which listed files did the regular listing miss? Decided without I/O, from the history of listing passes.

Regular listing resumes ``lookback`` before the watermark, so a file delivered to S3 later than that after its
name's minute is never listed (CloudTrail's delivery is usually minutes late, rarely hours). The deep re-list
(once an hour by default, over the last two days) lists such old days again; this module tells, for each key it
finds below the regular listing's floor, whether a regular pass could have seen it:

    a pass started at time t listed every key >= floor(t) that S3 held at t,
    so a key k last modified at m was seen iff some finished pass has t >= m + skew and floor(t) <= k.

The history lives in memory (one entry per pass; a day of 5-minute polls is 288 entries). For files stored
before this process's first pass the history cannot tell, so a file counts as missed when it arrived more than
``lookback`` after its name's minute: the regular listing of a caught-up collector could not have seen it. After
a restart such a file may be sent once more (a bounded duplicate); it is never skipped.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta

# A pass is trusted to have seen only objects stored this much before its start: S3's LastModified has
# one-second resolution, and S3's clock and this host's (both NTP-disciplined) may differ by a little more.
CLOCK_SKEW = timedelta(seconds=5)


class PassHistory:
    """Finished regular listing passes of one shard: (start time, floor key), oldest first."""

    def __init__(self, *, lookback: timedelta, keep: timedelta) -> None:
        self._lookback = lookback
        self._keep = keep
        self._starts: list[datetime] = []
        self._floors: list[str] = []

    def record(self, started: datetime, floor_key: str) -> None:
        """One regular pass listed everything from ``floor_key`` on, starting at ``started``."""
        self._starts.append(started)
        self._floors.append(floor_key)
        horizon = started - self._keep
        drop = bisect.bisect_left(self._starts, horizon)
        if drop:
            del self._starts[:drop], self._floors[:drop]

    def missed(self, key: str, modified: datetime, named: datetime) -> bool:
        """True when no regular pass can have listed ``key`` (stored at ``modified``, named for ``named``)."""
        first = bisect.bisect_left(self._starts, modified + CLOCK_SKEW)
        if any(floor <= key for floor in self._floors[first:]):
            return False
        if not self._starts or modified + CLOCK_SKEW < self._starts[0]:
            # Stored before this process's history: decide from the delivery delay alone (module docstring).
            return modified - named > self._lookback + CLOCK_SKEW
        return True

    def __len__(self) -> int:
        return len(self._starts)
