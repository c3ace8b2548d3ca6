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
from tests.infra.moto_server import MotoServer  # noqa: E402


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


# --- moto's HTTP server (tests/infra/moto_server.py) --------------------------
@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_endpoint(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto state per test, and fake credentials in the environment for the default chain."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return moto_server.endpoint


# --- secure Kafka broker: TLS, mutual TLS, SASL SCRAM (tests/infra/kafka_broker.py, tests/infra/tls.py) --------
from tests.infra.kafka_broker import SecureKafkaBroker  # noqa: E402
from tests.infra.tls import generate_tls  # noqa: E402


@pytest.fixture(scope="session")
def secure_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafkaBroker]:
    """A second real broker, started only by the tests that ask for it: PLAINTEXT (setup, read-back), SSL,
    MTLS (client certificate required), SASL_PLAINTEXT and SASL_SSL with SCRAM-SHA-256/512. Its CA, broker and
    client certificates are generated for this session in the session's tmp dir (``broker.tls``)."""
    workdir = tmp_path_factory.mktemp("kafka-secure")
    broker = SecureKafkaBroker(workdir, generate_tls(workdir / "tls"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
