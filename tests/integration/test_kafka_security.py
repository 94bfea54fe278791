"""Every Kafka client of the system talks to a broker that demands TLS and SCRAM-SHA-512 credentials.

The broker's certificate comes from a CA made for this module alone; clients trust that CA only.
"""
from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from faststream.kafka import KafkaBroker

from shared.kafka_admin import TopicCreationRefused, ensure_topics
from shared.kafka_security import broker_security, kafka_client_kwargs
from shared.outbox.kafka_publisher import KafkaEventPublisher
from shared.outbox.store import OutboxMessage
from shared.settings import KafkaSettings
from shared.topics import ALL_TOPICS, APPOINTMENTS
from tests.support.kafka_server import KafkaServer, SaslSslListener, start_kafka

pytestmark = pytest.mark.kafka

USERNAME = "clinic"
TOPIC_CONFIG_SOURCE = 1  # DescribeConfigs v1+: DYNAMIC_TOPIC_CONFIG, a value set on the topic itself


@dataclass(frozen=True)
class SecureBroker:
    server: KafkaServer
    ca_file: Path
    password: str

    def settings(self, password: str | None = None, **overrides: object) -> KafkaSettings:
        assert self.server.sasl_ssl_bootstrap_servers is not None
        values: dict[str, object] = {
            "bootstrap_servers": self.server.sasl_ssl_bootstrap_servers,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": USERNAME,
            "sasl_password": password or self.password,
            "ssl_cafile": self.ca_file,
            **overrides,
        }
        return KafkaSettings.model_validate(values)


def write_throwaway_ca(directory: Path) -> Path:
    """A CA and a broker certificate for 127.0.0.1; writes server.pem (key, then chain) and returns ca.pem."""
    now = datetime.now(UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clinic-notify test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (directory / "server.pem").write_bytes(key_pem + server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    return ca_file


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    tls_dir = tmp_path_factory.mktemp("kafka-tls")
    ca_file = write_throwaway_ca(tls_dir)
    password = secrets.token_urlsafe(24)
    began = time.monotonic()
    server = start_kafka(
        tmp_path_factory.mktemp("kafka-secure"), sasl_ssl=SaslSslListener(tls_dir, USERNAME, password)
    )
    print(f"secure broker (SASL_SSL, SCRAM-SHA-512) started in {time.monotonic() - began:.1f}s")
    try:
        yield SecureBroker(server, ca_file, password)
    finally:
        server.stop()


async def test_topics_are_created_over_sasl_ssl_with_the_configured_replication(
    secure_broker: SecureBroker,
) -> None:
    kafka = secure_broker.settings(replication_factor=1, min_insync_replicas=1)

    created = await ensure_topics(kafka)

    assert sorted(created) == sorted(spec.name for spec in ALL_TOPICS)
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(kafka))
    await admin.start()
    try:
        descriptions = await admin.describe_topics([APPOINTMENTS])
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, APPOINTMENTS, configs=None)]
        )
    finally:
        await admin.close()
    assert {len(partition["replicas"]) for partition in descriptions[0]["partitions"]} == {1}
    [(_, _, _, _, configs)] = response.resources
    min_isr = next(entry for entry in configs if entry[0] == "min.insync.replicas")
    assert min_isr[1] == "1"
    assert min_isr[3] == TOPIC_CONFIG_SOURCE, "min.insync.replicas is set on the topic itself, not inherited"


async def test_a_replication_factor_the_cluster_cannot_hold_is_refused_not_ignored(
    secure_broker: SecureBroker,
) -> None:
    # One broker cannot hold three copies: the setting must reach the broker, which says no.
    kafka = secure_broker.settings(replication_factor=3, min_insync_replicas=2)
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(kafka))
    await admin.start()
    try:
        await admin.delete_topics([APPOINTMENTS])
    finally:
        await admin.close()
    await _until_absent(kafka, APPOINTMENTS)

    with pytest.raises(TopicCreationRefused, match=r"replication factor|InvalidReplicationFactor"):
        await ensure_topics(kafka)


async def test_an_event_published_through_the_outbox_reaches_a_faststream_subscriber_over_sasl_ssl(
    secure_broker: SecureBroker, unique_id: str
) -> None:
    kafka = secure_broker.settings()
    topic = f"clinic.security-check.{unique_id}"
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    received: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    broker = KafkaBroker(kafka.bootstrap_servers, security=broker_security(kafka), logger=None)

    @broker.subscriber(topic, group_id=f"security-{unique_id}", auto_offset_reset="earliest")
    async def record(body: dict[str, str]) -> None:
        if not received.done():
            received.set_result(body)

    publisher = KafkaEventPublisher(kafka, client_id="security-check")
    async with broker:
        await broker.start()
        result = await publisher.publish([
            OutboxMessage(id=1, topic=topic, key="appt-1", value='{"event": "AppointmentBooked"}',
                      headers={}, created_at=datetime.now(UTC))
        ])
        await publisher.close()
        assert result.error is None and result.acknowledged == [1]
        body = await asyncio.wait_for(received, timeout=60)

    assert body == {"event": "AppointmentBooked"}


async def test_a_client_with_a_wrong_password_is_refused(
    secure_broker: SecureBroker, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = secure_broker.settings(password="not-the-password")
    producer = AIOKafkaProducer(**kafka_client_kwargs(kafka), request_timeout_ms=5000)

    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()

    # aiokafka gives up with a connection error and logs the broker's reason.
    assert "SaslAuthenticationFailed" in caplog.text


async def test_a_client_that_does_not_trust_the_clinic_ca_is_refused(
    secure_broker: SecureBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # Without the CA file the system's CAs are used, which never signed this broker's certificate.
    kafka = secure_broker.settings(ssl_cafile=None)
    producer = AIOKafkaProducer(**kafka_client_kwargs(kafka), request_timeout_ms=5000)

    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()

    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


async def _until_absent(kafka: KafkaSettings, topic: str, timeout_s: float = 15.0) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(kafka))
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while topic in await admin.list_topics():
            assert time.monotonic() < deadline, f"{topic} still listed after {timeout_s}s"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
