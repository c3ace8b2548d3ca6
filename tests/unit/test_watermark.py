"""ingester.checkpoint.watermark.OrderedWatermark: the committable point over out-of-order settlement."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta

import pytest

from ingester.checkpoint.watermark import OrderedWatermark, WatermarkStatistics
from ingester.models import Settlement

DELIVERED, REJECTED, ERRORED = Settlement.DELIVERED, Settlement.REJECTED, Settlement.ERRORED
_START = datetime(2024, 3, 10, 14, 0, tzinfo=UTC)
_PREFIX = "AWSLogs/111122223333/CloudTrail/us-east-1/"


def _key(minute: int, suffix: str = "9nYN7gp2eWAJHIfT") -> str:
    when = _START + timedelta(minutes=minute)
    return f"{_PREFIX}{when:%Y/%m/%d}/111122223333_CloudTrail_us-east-1_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz"


def _random_keys(rng: random.Random, count: int) -> list[str]:
    """Sorted, unique, realistic keys: ~5 minutes apart, several files sharing a minute."""
    alphabet = string.ascii_letters + string.digits
    keys: set[str] = set()
    while len(keys) < count:
        suffix = "".join(rng.choice(alphabet) for _ in range(16))
        keys.add(_key(rng.randrange(0, count * 5), suffix))
    return sorted(keys)


A, B, C, D, E = (_key(minute) for minute in (0, 5, 10, 15, 20))


def _fresh(*keys: str) -> OrderedWatermark:
    tracker = OrderedWatermark(None, set())
    for key in keys:
        tracker.register(key)
    return tracker


def test_nothing_registered_keeps_the_initial_watermark() -> None:
    assert OrderedWatermark(None, set()).watermark is None
    assert OrderedWatermark(C, {C}).watermark == C


def test_in_order_settlement_advances_key_by_key() -> None:
    tracker = _fresh(A, B, C)
    assert tracker.watermark == A

    # Either A (the greatest settled key) or B (the first unsettled) is a safe committable point; C is not.
    tracker.settle(A, DELIVERED)
    assert tracker.watermark in (A, B)
    tracker.settle(B, REJECTED)  # dead-lettered counts as settled
    assert tracker.watermark in (B, C)
    tracker.settle(C, DELIVERED)
    assert tracker.watermark == C
    assert tracker.idle is True


def test_out_of_order_settlement_holds_at_the_first_unsettled_key() -> None:
    tracker = _fresh(A, B, C, D)

    assert tracker.settle(C, DELIVERED) is False
    assert tracker.settle(D, DELIVERED) is False
    assert tracker.settle(B, DELIVERED) is False
    assert tracker.watermark == A
    assert tracker.settle(A, DELIVERED) is True
    assert tracker.watermark == D


def test_errored_key_holds_the_watermark_and_is_wanted_again() -> None:
    tracker = _fresh(A, B, C)
    tracker.settle(A, DELIVERED)

    assert tracker.settle(B, ERRORED) is False
    tracker.settle(C, DELIVERED)

    assert tracker.watermark == B
    assert tracker.wants(B) is True
    assert tracker.wants(A) is False
    assert tracker.wants(C) is False
    assert tracker.statistics() == WatermarkStatistics(in_flight=0, errored=1, remembered=2, watermark=B)
    assert tracker.idle is True

    # The next poll lists B again: it is in flight (not wanted twice), then delivered.
    tracker.register(B)
    assert tracker.wants(B) is False
    assert tracker.statistics().errored == 0
    assert tracker.watermark == B
    assert tracker.settle(B, DELIVERED) is True
    assert tracker.watermark == C


def test_errored_key_holds_even_when_it_is_the_only_pending_one() -> None:
    tracker = _fresh(A, B)
    tracker.settle(B, DELIVERED)
    tracker.settle(A, ERRORED)

    assert tracker.watermark == A
    assert tracker.statistics().in_flight == 0


def test_in_flight_key_is_not_wanted() -> None:
    tracker = _fresh(A)

    assert tracker.wants(A) is False
    assert tracker.wants(B) is True
    assert tracker.idle is False


def test_late_key_pulls_the_watermark_back_until_it_settles() -> None:
    tracker = _fresh(A, C, E)
    for key in (A, C, E):
        tracker.settle(key, DELIVERED)
    assert tracker.watermark == E

    late = _key(10, "0aaaaaaaaaaaaaaa")  # same minute as C, delivered after E was settled
    assert late < E
    tracker.register(late)

    assert tracker.watermark == late
    assert tracker.settle(late, DELIVERED) is True
    assert tracker.watermark == E


def test_late_key_that_errors_keeps_holding() -> None:
    tracker = _fresh(A, C)
    tracker.settle(A, DELIVERED)
    tracker.settle(C, DELIVERED)
    tracker.register(B)

    tracker.settle(B, ERRORED)

    assert tracker.watermark == B
    tracker.register(B)
    tracker.settle(B, REJECTED)
    assert tracker.watermark == C


def test_restart_state_skips_remembered_keys() -> None:
    """After a restart the store gives the watermark and the keys settled in the lookback window."""
    tracker = OrderedWatermark(C, {A, C})

    assert tracker.wants(A) is False
    assert tracker.wants(C) is False
    assert tracker.wants(B) is True  # was never settled: collected now
    tracker.register(B)
    assert tracker.watermark == B
    tracker.settle(B, DELIVERED)
    assert tracker.watermark == C


def test_prune_drops_only_settled_keys_below_the_floor() -> None:
    tracker = _fresh(A, B, C, D, E)
    for key in (A, B, D, E):
        tracker.settle(key, DELIVERED)
    tracker.settle(C, ERRORED)

    dropped = tracker.prune(D)

    assert sorted(dropped) == [A, B]
    assert tracker.wants(A) is True
    assert tracker.wants(B) is True
    assert tracker.wants(D) is False
    assert tracker.wants(E) is False
    # The errored key below the floor is not forgotten: it still holds the watermark.
    assert tracker.watermark == C
    assert tracker.statistics() == WatermarkStatistics(in_flight=0, errored=1, remembered=2, watermark=C)


def test_prune_keeps_the_floor_key_itself_and_in_flight_keys() -> None:
    tracker = _fresh(A, B, C)
    tracker.settle(B, DELIVERED)
    tracker.settle(C, DELIVERED)

    assert tracker.prune(C) == [B]
    assert tracker.prune(C) == []
    assert tracker.wants(C) is False
    assert tracker.wants(A) is False  # in flight
    assert tracker.watermark == A


def _check(tracker: OrderedWatermark, registered: set[str], settled: set[str], initial: str | None) -> None:
    """Safety: every registered key below the watermark is settled. Progress: it reaches the settled prefix."""
    watermark = tracker.watermark
    pending = registered - settled
    if watermark is not None:
        unsafe = sorted(key for key in pending if key < watermark)
        assert unsafe == [], f"watermark {watermark} passed unsettled keys {unsafe}"
    if pending:
        first = min(pending)
        below = [key for key in settled if key < first]
        if below:
            assert watermark is not None
            assert watermark >= max(below)
        assert watermark is not None
        assert watermark <= first
    elif settled:
        assert watermark == max(settled)
    else:
        assert watermark == initial


def _simulate(seed: int, *, late_fraction: float) -> None:
    rng = random.Random(seed)
    keys = _random_keys(rng, rng.randrange(1, 60))
    # Listing order: sorted, except a few keys that show up late (after later keys were already listed).
    late = {key for key in keys if rng.random() < late_fraction}
    listing = [key for key in keys if key not in late]
    for key in sorted(late):
        natural = next((index for index, other in enumerate(listing) if other > key), len(listing))
        listing.insert(rng.randrange(natural, len(listing) + 1), key)
    errored_once = {key for key in keys if rng.random() < 0.25}

    tracker = OrderedWatermark(None, set())
    registered: set[str] = set()
    settled: set[str] = set()
    in_flight: list[str] = []
    retry: list[str] = []
    to_list = list(listing)
    while to_list or in_flight or retry:
        choice = rng.random()
        if to_list and (choice < 0.4 or not (in_flight or retry)):
            key = to_list.pop(0)
            tracker.register(key)
            registered.add(key)
            in_flight.append(key)
        elif retry and (choice < 0.5 or not in_flight):
            key = retry.pop(rng.randrange(len(retry)))
            assert tracker.wants(key) is True
            tracker.register(key)
            in_flight.append(key)
        else:
            key = in_flight.pop(rng.randrange(len(in_flight)))
            before = tracker.watermark
            if key in errored_once:
                errored_once.discard(key)
                outcome = ERRORED
                retry.append(key)
            else:
                outcome = rng.choice([DELIVERED, DELIVERED, REJECTED])
                settled.add(key)
            changed = tracker.settle(key, outcome)
            assert changed is (tracker.watermark != before)
            assert tracker.wants(key) is (outcome is ERRORED)
        _check(tracker, registered, settled, None)
        stats = tracker.statistics()
        assert stats.in_flight == len(in_flight)
        assert stats.errored == len(retry)
        assert stats.remembered == len(settled)
    assert tracker.watermark == max(keys)
    assert tracker.idle is True


@pytest.mark.parametrize("seed", range(300))
def test_random_settlement_never_passes_an_unsettled_key(seed: int) -> None:
    _simulate(seed, late_fraction=0.0)


@pytest.mark.parametrize("seed", range(300, 500))
def test_random_settlement_with_late_keys_never_passes_an_unsettled_key(seed: int) -> None:
    _simulate(seed, late_fraction=0.15)
