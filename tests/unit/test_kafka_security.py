"""Kafka connection options: one builder for producer, consumer and admin; secrets never printed."""

from __future__ import annotations

import ssl

import pytest

from ingester import config
from ingester.connect.kafka import MskIamTokenProvider, client_options
from ingester.errors import ConfigError


def kafka(**values: object) -> config.KafkaSettings:
    return config.build({"kafka": values}).kafka


def test_plaintext_has_no_tls_or_sasl() -> None:
    options = client_options(kafka(bootstrap_servers="b1:9092,b2:9092"), "us-east-1")
    assert options == {
        "bootstrap_servers": "b1:9092,b2:9092",
        "client_id": "ingester",
        "security_protocol": "PLAINTEXT",
    }


def test_scram_over_tls() -> None:
    options = client_options(
        kafka(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u", sasl_password="p"),
        "us-east-1",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "u",
        "p",
    )


def test_sasl_without_username_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sasl_username"):
        client_options(kafka(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256"), "us-east-1")


def test_tls_files_without_tls_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="security_protocol"):
        client_options(kafka(ssl_cafile="/etc/ca.pem"), "us-east-1")


def test_msk_iam_uses_a_token_provider_for_the_cluster_region() -> None:
    pytest.importorskip("aws_msk_iam_sasl_signer", reason="optional extra ingester[msk]")
    options = client_options(kafka(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER"), "eu-west-1")
    assert isinstance(options["sasl_oauth_token_provider"], MskIamTokenProvider)


def test_password_is_masked_in_repr() -> None:
    settings = kafka(sasl_username="svc", sasl_password="hunter2")
    assert "hunter2" not in repr(settings)
    assert "sasl_password='***'" in repr(settings) and "sasl_username='svc'" in repr(settings)
    assert "hunter2" not in repr(config.build({"kafka": {"sasl_password": "hunter2"}}))
