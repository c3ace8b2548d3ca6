"""Adaptive polling: quiet shards back off to the ceiling, busy ones stay at the base interval."""

from __future__ import annotations

from ingester.pipeline.jobs import next_interval


def test_quiet_shard_backs_off_to_the_ceiling_and_snaps_back() -> None:
    interval, seen = 300.0, []
    for _ in range(6):
        interval = next_interval(interval, found=False, base=300, ceiling=1800)
        seen.append(interval)
    assert seen == [600, 1200, 1800, 1800, 1800, 1800]
    assert next_interval(1800, found=True, base=300, ceiling=1800) == 300


def test_no_ceiling_or_a_ceiling_below_the_base_means_no_backoff() -> None:
    assert next_interval(300, found=False, base=300, ceiling=None) == 300
    assert next_interval(3600, found=False, base=3600, ceiling=1800) == 3600
