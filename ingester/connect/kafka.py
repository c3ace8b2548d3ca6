"""Connection options shared by every Kafka client ingester opens (producer, checkpoint consumer, admin).

TLS (CA, client certificate), SASL PLAIN and SCRAM-SHA-256/512 are aiokafka's own; Amazon MSK IAM is SASL
OAUTHBEARER with tokens signed by ``aws-msk-iam-sasl-signer-python`` from the pod's AWS credentials (IRSA).
One function builds the options, so the three clients can never disagree about how to connect.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context

from ingester.config import KafkaSettings
from ingester.errors import ConfigError


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped for mypy
    """Signs an MSK IAM token with the default AWS credential chain; the signer caches nothing, so reuse ours
    until shortly before it expires."""

    def __init__(self, region: str) -> None:
        try:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
        except ImportError as exc:
            raise ConfigError(
                "kafka.sasl_mechanism = OAUTHBEARER (MSK IAM) needs aws-msk-iam-sasl-signer-python: "
                "pip install 'ingester[msk]'"
            ) from exc
        self._signer = MSKAuthTokenProvider
        self._region = region
        self._token = ""
        self._expires_ms = 0.0

    async def token(self) -> str:
        loop = asyncio.get_running_loop()
        if not self._token or loop.time() * 1000 > self._expires_ms - 60_000:
            token, expiry_ms = await asyncio.to_thread(self._signer.generate_auth_token, self._region)
            self._token = str(token)
            self._expires_ms = loop.time() * 1000 + (float(expiry_ms) - _epoch_ms())
        return self._token


def _epoch_ms() -> float:
    return time.time() * 1000


def client_options(settings: KafkaSettings, aws_region: str) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile or None,
            certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None,
        )
    elif settings.ssl_cafile or settings.ssl_certfile:
        raise ConfigError("kafka.ssl_* files are set but kafka.security_protocol is not SSL or SASL_SSL")
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = MskIamTokenProvider(settings.msk_region or aws_region)
        elif not settings.sasl_username:
            raise ConfigError(f"kafka.sasl_mechanism = {settings.sasl_mechanism} needs kafka.sasl_username")
        else:
            options["sasl_plain_username"] = settings.sasl_username
            options["sasl_plain_password"] = settings.sasl_password
    return options
