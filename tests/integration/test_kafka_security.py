"""Kafka security against the real broker (issue 7, item 5): ingester's whole pipeline delivers over TLS with
server authentication, mutual TLS, SASL_SSL with SCRAM-SHA-512 and SASL_PLAINTEXT with SCRAM-SHA-256, and every
record arrives. A wrong SCRAM password, a missing CA and a missing client certificate fail at start-up with a
SinkError naming the bootstrap, within the connect timeout.

The secure broker (``secure_kafka_broker``, tests/infra/kafka_broker.py) uses a CA and certificates generated
for the session (tests/infra/tls.py). Topics are created and read back over its PLAINTEXT listener; only
ingester talks to the secure listeners.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from ingester.errors import SinkError
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import SecureKafkaBroker
from tests.integration.test_pipeline import event_ids, settings_for, topics
from tests.integration.test_s3_faults import small_world

pytestmark = pytest.mark.integration

# Small, so a failing start-up is quick; still ample for a local TLS + SCRAM handshake.
CONNECT_TIMEOUT_S = 5


def kafka_section(broker: SecureKafkaBroker, case: str, topic: str) -> dict[str, Any]:
    """The ``kafka`` settings section for one way of connecting to the secure broker."""
    tls = broker.tls
    ca = {"ssl_cafile": str(tls.ca_cert)}
    scram = {"sasl_username": broker.SCRAM_USER, "sasl_password": broker.scram_password}
    bootstrap, security = {
        "ssl": (broker.ssl_bootstrap, {"security_protocol": "SSL", **ca}),
        "mutual_tls": (
            broker.mtls_bootstrap,
            {
                "security_protocol": "SSL",
                **ca,
                "ssl_certfile": str(tls.client_cert),
                "ssl_keyfile": str(tls.client_key),
            },
        ),
        "sasl_ssl_scram_sha_512": (
            broker.sasl_ssl_bootstrap,
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", **scram, **ca},
        ),
        "sasl_plaintext_scram_sha_256": (
            broker.sasl_plaintext_bootstrap,
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", **scram},
        ),
        # Negative cases.
        "ssl_without_ca": (broker.ssl_bootstrap, {"security_protocol": "SSL"}),
        "mutual_tls_without_client_certificate": (broker.mtls_bootstrap, {"security_protocol": "SSL", **ca}),
        "sasl_ssl_wrong_password": (
            broker.sasl_ssl_bootstrap,
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", **scram, **ca}
            | {"sasl_password": "not-" + broker.scram_password},
        ),
    }[case]
    return {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "dead_letter_topic": f"{topic}-dlq",
        "connect_timeout_seconds": CONNECT_TIMEOUT_S,
        **security,
    }


def secure_settings(
    endpoint: str, broker: SecureKafkaBroker, case: str, topic: str, tmp_path: Path
) -> tuple[Any, dict[str, Any]]:
    kafka = kafka_section(broker, case, topic)
    return settings_for(endpoint, kafka["bootstrap_servers"], topic, tmp_path, sections={"kafka": kafka}), kafka


@pytest.mark.parametrize("case", ["ssl", "mutual_tls", "sasl_ssl_scram_sha_512", "sasl_plaintext_scram_sha_256"])
async def test_pipeline_delivers_every_record_over_a_secure_listener(
    case: str, aws_endpoint: str, secure_kafka_broker: SecureKafkaBroker, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(small_world, aws_endpoint)
    topic = await topics(secure_kafka_broker.bootstrap)  # setup over PLAINTEXT
    settings, kafka = secure_settings(aws_endpoint, secure_kafka_broker, case, topic, tmp_path)
    assert kafka["bootstrap_servers"] != secure_kafka_broker.bootstrap
    assert settings.kafka.security_protocol == kafka["security_protocol"] != "PLAINTEXT"

    stats = await run(settings, stop=asyncio.Event(), once=True)

    assert (stats.objects_delivered, stats.records, stats.dead_letters) == (world.files, world.records, 0)
    assert sorted(await event_ids(secure_kafka_broker.bootstrap, topic)) == sorted(world.event_ids)


async def start_up_failure(settings: Any) -> tuple[SinkError, float]:
    """Run the pipeline, expect it to stop at start-up with a SinkError; return it and the time it took."""
    began = time.monotonic()
    with pytest.raises(Exception) as caught:  # narrowed below, with the real type in the assertion message
        await asyncio.wait_for(run(settings, stop=asyncio.Event(), once=True), CONNECT_TIMEOUT_S + 30)
    elapsed = time.monotonic() - began
    error: BaseException = caught.value
    # runtime.run starts the sink inside a TaskGroup, which wraps the error in an ExceptionGroup.
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    assert isinstance(error, SinkError), f"expected a SinkError, got {caught.value!r}"
    return error, elapsed


def aiokafka_errors(caplog: pytest.LogCaptureFixture, bootstrap: str) -> str:
    """What aiokafka logged about the bootstrap: it keeps the cause (TLS alert, SASL error) in its log only."""
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("aiokafka") and bootstrap in r.getMessage()
    )


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("sasl_ssl_wrong_password", "Authentication failed"),
        ("ssl_without_ca", "CERTIFICATE_VERIFY_FAILED"),
        # TLS 1.3: the broker rejects the missing certificate after the client's handshake has completed, so the
        # client sees the alert or just the closed connection, depending on timing.
        ("mutual_tls_without_client_certificate", "closed|CERTIFICATE_REQUIRED|reset by peer"),
    ],
)
async def test_start_up_fails_clearly_within_the_connect_timeout(
    case: str,
    cause: str,
    aws_endpoint: str,
    secure_kafka_broker: SecureKafkaBroker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = await topics(secure_kafka_broker.bootstrap)
    settings, kafka = secure_settings(aws_endpoint, secure_kafka_broker, case, topic, tmp_path)
    caplog.set_level(logging.WARNING, logger="aiokafka")

    error, elapsed = await start_up_failure(settings)

    assert kafka["bootstrap_servers"] in str(error)
    assert "cannot connect to Kafka" in str(error)
    assert elapsed < CONNECT_TIMEOUT_S + 5, f"start-up failed only after {elapsed:.1f}s"
    assert re.search(cause, aiokafka_errors(caplog, kafka["bootstrap_servers"])), caplog.text
    assert "not-" + secure_kafka_broker.scram_password not in str(error)  # no secret in the error
    assert await event_ids(secure_kafka_broker.bootstrap, topic) == []
