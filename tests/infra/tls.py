"""A throw-away PKI for the secure test broker: a CA, a broker certificate for 127.0.0.1/localhost and a client
certificate, all PEM, written under a test session's tmp dir and never committed.

Made with ``cryptography`` (already in the dev environment through moto), EC P-256 keys so generation takes
milliseconds. The broker reads PEM stores directly (Kafka's ``ssl.keystore.type=PEM``: one file with the PKCS#8
key and the certificate chain; ``ssl.truststore.type=PEM``: the CA), so neither keytool nor a password is needed.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the generated PEM files."""

    directory: Path
    ca_cert: Path  # the trust anchor: the client's ssl_cafile and the broker's truststore
    broker_cert: Path  # broker leaf + CA chain
    broker_key: Path  # PKCS#8, unencrypted
    broker_keystore: Path  # broker key + chain in one file, for ssl.keystore.type=PEM
    client_cert: Path  # client leaf (CN=ingester-client), for mutual TLS
    client_key: Path
    client_subject: str  # the client certificate's subject, as RFC 4514


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ingester tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _leaf(
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    usage: list[x509.ObjectIdentifier],
    san: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def generate_tls(directory: Path) -> TlsMaterial:
    """Create the CA, the broker and the client certificate under ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("ingester test CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    broker_key, broker_cert = _leaf(
        "localhost",
        ca_key,
        ca_cert,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, client_cert = _leaf("ingester-client", ca_key, ca_cert, [ExtendedKeyUsageOID.CLIENT_AUTH])

    material = TlsMaterial(
        directory=directory,
        ca_cert=directory / "ca.pem",
        broker_cert=directory / "broker.pem",
        broker_key=directory / "broker-key.pem",
        broker_keystore=directory / "broker-keystore.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
        client_subject=client_cert.subject.rfc4514_string(),
    )
    chain = _cert_pem(broker_cert) + _cert_pem(ca_cert)
    material.ca_cert.write_bytes(_cert_pem(ca_cert))
    material.broker_cert.write_bytes(chain)
    material.broker_key.write_bytes(_key_pem(broker_key))
    material.broker_keystore.write_bytes(_key_pem(broker_key) + chain)
    material.client_cert.write_bytes(_cert_pem(client_cert))
    material.client_key.write_bytes(_key_pem(client_key))
    for private in (material.broker_key, material.broker_keystore, material.client_key):
        private.chmod(0o600)
    return material
