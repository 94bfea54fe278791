"""Settings a production process refuses to start with, and how Kafka security reaches every client."""
from __future__ import annotations

import inspect
import os
import ssl
from datetime import timedelta

import pytest
from faststream.security import SASLScram256, SASLScram512
from pydantic import ValidationError

from shared.delivery.dispatcher import Dispatcher
from shared.delivery.wiring import dispatch_options
from shared.kafka_security import broker_security, kafka_client_kwargs
from shared.settings import (
    SANDBOX_TWILIO_ACCOUNT_SID,
    SANDBOX_TWILIO_AUTH_TOKEN,
    DeliverySettings,
    KafkaSettings,
    TwilioSettings,
)

REAL_ACCOUNT_SID = "AC" + "3f" * 16
LINK_SECRET = "k" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states the environment it runs in; nothing leaks in from the shell."""
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "KAFKA_", "SMTP_", "DISPATCH_")) or name == "LINK_SECRET":
            monkeypatch.delenv(name)


def test_real_twilio_is_refused_with_the_sandbox_auth_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", REAL_ACCOUNT_SID)

    with pytest.raises(ValidationError, match="TWILIO_AUTH_TOKEN is the sandbox default"):
        TwilioSettings()


def test_real_twilio_is_refused_with_the_all_zero_sandbox_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "a-real-looking-auth-token")

    with pytest.raises(ValidationError, match="TWILIO_ACCOUNT_SID is the all-zero sandbox account"):
        TwilioSettings()


def test_a_delivery_process_pointed_at_real_twilio_does_not_start_with_sandbox_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINK_SECRET", LINK_SECRET)

    with pytest.raises(ValidationError, match="TWILIO_AUTH_TOKEN"):
        DeliverySettings()


def test_the_sandbox_defaults_are_fine_when_the_sandbox_is_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:8030")

    twilio = TwilioSettings()

    assert twilio.account_sid == SANDBOX_TWILIO_ACCOUNT_SID
    assert twilio.auth_token.get_secret_value() == SANDBOX_TWILIO_AUTH_TOKEN


def test_real_credentials_reach_real_twilio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", REAL_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "a-real-looking-auth-token")

    assert TwilioSettings().api_base_url is None


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, "é" * 15])
def test_a_link_secret_shorter_than_32_bytes_is_refused(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:8030")
    monkeypatch.setenv("LINK_SECRET", secret)

    with pytest.raises(ValidationError, match="LINK_SECRET must be at least 32 bytes") as refused:
        DeliverySettings()

    if secret:
        assert secret not in str(refused.value), "the secret itself must not reach the logs"


def test_a_32_byte_link_secret_from_the_environment_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:8030")
    monkeypatch.setenv("LINK_SECRET", LINK_SECRET)

    assert DeliverySettings().link_secret.get_secret_value() == LINK_SECRET


def test_a_message_written_by_another_process_is_looked_for_within_half_a_second_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Out within 1 s of being due, with the claim and the send after the idle dispatcher's look.
    monkeypatch.setenv("LINK_SECRET", LINK_SECRET)
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:8030")  # the sandbox
    assert dispatch_options(DeliverySettings())["idle_poll"] == timedelta(seconds=0.5)

    # A dispatcher built without settings (benchmarks, tests) looks as often as a deployed one.
    assert inspect.signature(Dispatcher).parameters["idle_poll"].default == timedelta(seconds=0.5)

    monkeypatch.setenv("DISPATCH_IDLE_POLL_SECONDS", "2")
    assert dispatch_options(DeliverySettings())["idle_poll"] == timedelta(seconds=2)


def test_a_plaintext_cluster_gets_plain_clients_and_no_broker_security() -> None:
    kafka = KafkaSettings(bootstrap_servers="kafka:9092")

    assert kafka_client_kwargs(kafka) == {
        "bootstrap_servers": "kafka:9092", "security_protocol": "PLAINTEXT", "ssl_context": None
    }
    assert broker_security(kafka) is None
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (1, 1)


def test_sasl_ssl_settings_from_the_environment_reach_aiokafka_and_faststream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "clinic-kafka-bootstrap:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "clinic-notify")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    kafka = KafkaSettings()

    kwargs = kafka_client_kwargs(kafka)
    security = broker_security(kafka)

    assert isinstance(kwargs.pop("ssl_context"), ssl.SSLContext)
    assert kwargs == {
        "bootstrap_servers": "clinic-kafka-bootstrap:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "clinic-notify",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(security, SASLScram512)
    assert security.use_ssl and isinstance(security.ssl_context, ssl.SSLContext)
    assert (security.username, security.password) == ("clinic-notify", "s3cret")
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)


def test_sasl_without_tls_keeps_the_connection_unencrypted_for_faststream_too() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username="u", sasl_password="p"
    )

    security = broker_security(kafka)

    assert isinstance(security, SASLScram256)
    assert not security.use_ssl and security.ssl_context is None
    assert kafka_client_kwargs(kafka)["ssl_context"] is None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"security_protocol": "SASL_SSL"}, "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "KAFKA_SASL_PASSWORD"),
        ({"sasl_username": "u", "sasl_password": "p"}, "does not use SASL"),
        ({"ssl_cafile": "/etc/kafka/ca.pem"}, "KAFKA_SSL_CAFILE set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        ({"security_protocol": "SSL", "ssl_keyfile": "/etc/kafka/client.key"}, "KAFKA_SSL_KEYFILE needs"),
        ({"replication_factor": 3, "min_insync_replicas": 4}, "KAFKA_MIN_INSYNC_REPLICAS=4 exceeds"),
        ({"replication_factor": 0}, "replication_factor"),
        ({"security_protocol": "SASL_SSL_PLEASE"}, "security_protocol"),
    ],
)
def test_inconsistent_kafka_security_is_refused_at_start(values: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        KafkaSettings.model_validate(values)
