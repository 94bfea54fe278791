"""How every Kafka client of the system is secured, from one KafkaSettings.

aiokafka clients (admin, producer, readers) take `kafka_client_kwargs(settings)`; FastStream's
KafkaBroker takes `broker_security(settings)`. Both carry the same TLS context and SASL credentials.
"""
from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import KafkaSettings

_SASL_SECURITY = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def kafka_ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """A client TLS context verifying the broker (hostname included); None without TLS."""
    if not kafka.uses_tls:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=kafka.ssl_cafile, certfile=kafka.ssl_certfile, keyfile=kafka.ssl_keyfile
    )
    return context


def kafka_client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: the address, TLS context and SASL credentials."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
        "ssl_context": kafka_ssl_context(kafka),
    }
    if kafka.uses_sasl:
        assert kafka.sasl_username and kafka.sasl_password  # KafkaSettings refuses SASL without them
        kwargs |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password.get_secret_value(),
        }
    return kwargs


def broker_security(kafka: KafkaSettings) -> BaseSecurity | None:
    """What to pass as `KafkaBroker(..., security=...)`; None for a plaintext broker."""
    context = kafka_ssl_context(kafka)
    if kafka.uses_sasl:
        assert kafka.sasl_username and kafka.sasl_password  # KafkaSettings refuses SASL without them
        security_class = _SASL_SECURITY[kafka.sasl_mechanism]
        return security_class(
            kafka.sasl_username, kafka.sasl_password.get_secret_value(), ssl_context=context, use_ssl=kafka.uses_tls
        )
    if context is not None:
        return BaseSecurity(ssl_context=context)
    return None
