"""Scale-out pieces that need no broker: ownership by coordination partition, the shared store's load/forget,
and the configuration combinations that are refused."""

from __future__ import annotations

from typing import Any

import pytest

from ingester import config
from ingester.checkpoint.kafka_store import KafkaCheckpointStore
from ingester.coordination.ownership import GroupOwnership
from ingester.coordination.partition import Partition, shard_group
from ingester.errors import ConfigError
from ingester.models import Settlement

SHARDS = [f"s3://bucket/AWSLogs/o-abc/{account:012d}/CloudTrail/{region}/" for account in range(40) for region in "ab"]


def test_every_shard_is_owned_by_exactly_the_holder_of_its_partition() -> None:
    holders = [GroupOwnership(12) for _ in range(3)]
    for n, holder in enumerate(holders):
        holder.assign(frozenset(range(n, 12, 3)))
    for shard in SHARDS:
        owners = [n for n, holder in enumerate(holders) if holder.owns(shard)]
        assert owners == [shard_group(shard, 12) % 3]


def test_release_then_assign_changes_what_is_owned() -> None:
    ownership = GroupOwnership(8)
    assert not any(ownership.owns(shard) for shard in SHARDS)
    ownership.assign(frozenset({1, 2}))
    ownership.release(frozenset({1}))
    assert {shard for shard in SHARDS if ownership.owns(shard)} == {s for s in SHARDS if shard_group(s, 8) == 2}
    assert ownership.statistics().assigned == (2,)


def test_shard_group_is_the_worker_partition_hash() -> None:
    """One hash for both: Partition(index, count) owns exactly the shards of group ``index``."""
    for shard in SHARDS:
        assert Partition(shard_group(shard, 5), 5).owns(shard)


def test_load_replaces_and_forget_drops_only_the_selected_shards() -> None:
    mine, other = SHARDS[0], SHARDS[1]
    store = KafkaCheckpointStore("t", {})
    store.commit(mine, "k1", Settlement.DELIVERED, "k1")
    store.commit(other, "k5", Settlement.DELIVERED, "k5")
    store.load({mine: ("k3", {"k2", "k3"})}, lambda shard: shard == mine)
    assert store.watermark(mine) == "k3" and store.settled_since(mine, "") == {"k2", "k3"}
    assert store.watermark(other) == "k5"
    store.forget(lambda shard: shard == other)
    assert store.watermark(other) is None
    assert [key.decode() for key, _ in store.take_dirty()] == []  # loaded state is clean; forgotten dirt is gone


def _build(**sections: Any) -> config.Settings:
    return config.build({"scaleout": {"enabled": True}, **sections})


def test_scaleout_is_off_by_default_and_validates_when_on() -> None:
    assert not config.build({}).scaleout.enabled
    assert _build().scaleout.partitions == 24


def test_exactly_once_is_accepted_in_scaleout_mode() -> None:
    assert _build(kafka={"delivery": "exactly_once"}).kafka.delivery == "exactly_once"


def test_a_fenced_producer_is_recognised_through_the_sinks_wrapping() -> None:
    """The transactional sink wraps Kafka's error twice (KafkaSink, then the transaction); fencing must show."""
    from aiokafka.errors import KafkaConnectionError, ProducerFenced

    from ingester.coordination.transactions import fenced
    from ingester.errors import SinkError

    def wrapped(cause: BaseException) -> SinkError:
        try:
            try:
                try:
                    raise cause
                except Exception as exc:
                    raise SinkError("Kafka did not acknowledge a batch") from exc
            except SinkError as exc:
                raise SinkError("transaction failed", retriable=False) from exc
        except SinkError as outer:
            return outer

    assert fenced(wrapped(ProducerFenced()))
    assert not fenced(wrapped(KafkaConnectionError()))


def test_notifications_work_in_scaleout_mode_through_the_announcements_topic() -> None:
    settings = _build(notifications={"queue_url": "https://sqs/q"})

    assert settings.scaleout.announcements_topic == "ingester-announcements"
    with pytest.raises(ConfigError, match="a topic ingester uses"):
        _build(routes=[{"name": "r", "topic": "ingester-announcements"}])


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"sink": {"type": "file"}}, "sink.type"),
        ({"scaleout": {"enabled": True, "revoke_timeout_seconds": 60, "rebalance_timeout_ms": 30000}}, "revoke"),
    ],
)
def test_unsupported_combinations_are_refused(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _build(**sections)
