"""Shared pytest fixtures."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Make `tests.infra` importable under plain `pytest` too (not only `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.infra.kafka_broker import KafkaBroker  # noqa: E402


# --- real Kafka broker (tests/infra/kafka_broker.py) -------------------------
# Sync fixtures on purpose: they work under any pytest-asyncio mode or loop
# scope; the broker's blocking start runs its readiness probe in a thread.
@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One real KRaft broker for the whole session (JVM start-up is slow)."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap
