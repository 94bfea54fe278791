"""Settings read from the environment; each service composes the groups it needs."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CLINIC_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "clinic.yaml"
# What the local Twilio sandbox accepts; real Twilio must never be called with them.
SANDBOX_TWILIO_ACCOUNT_SID = "AC" + "0" * 32
SANDBOX_TWILIO_AUTH_TOKEN = "sandbox-auth-token"
LINK_SECRET_MIN_BYTES = 32

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class KafkaSettings(BaseSettings):
    """How every Kafka client connects (TLS, SASL) and how the topics are created."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", hide_input_in_errors=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    sasl_mechanism: KafkaSaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(default=None, description="CA bundle (PEM); unset: the system's CAs")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (PEM), for mutual TLS")
    ssl_keyfile: Path | None = Field(default=None, description="Client private key (PEM), for mutual TLS")
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        protocol = f"KAFKA_SECURITY_PROTOCOL={self.security_protocol}"
        if self.uses_sasl and (not self.sasl_username or not self.sasl_password):
            raise ValueError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with {protocol}")
        if not self.uses_sasl and (self.sasl_username or self.sasl_password):
            raise ValueError(f"KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but {protocol} does not use SASL")
        tls_files = {"KAFKA_SSL_CAFILE": self.ssl_cafile, "KAFKA_SSL_CERTFILE": self.ssl_certfile,
                     "KAFKA_SSL_KEYFILE": self.ssl_keyfile}
        if not self.uses_tls and any(tls_files.values()):
            named = ", ".join(name for name, path in tls_files.items() if path)
            raise ValueError(f"{named} set but {protocol} does not use TLS")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE")
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"KAFKA_MIN_INSYNC_REPLICAS={self.min_insync_replicas} exceeds "
                f"KAFKA_REPLICATION_FACTOR={self.replication_factor}: no write could ever succeed"
            )
        return self


class SmtpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMTP_")

    host: str = "127.0.0.1"
    port: int = 1025
    username: str | None = None
    password: SecretStr | None = None
    use_tls: bool = False
    start_tls: bool = False
    sender: str = "Clinic <no-reply@clinic.example>"
    pool_size: int = Field(default=4, ge=1, description="SMTP connections per instance; emails sent at once")


class TwilioSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWILIO_", hide_input_in_errors=True)

    account_sid: str = SANDBOX_TWILIO_ACCOUNT_SID
    auth_token: SecretStr = SecretStr(SANDBOX_TWILIO_AUTH_TOKEN)
    from_number: str | None = "+14165550100"
    messaging_service_sid: str | None = None
    api_base_url: str | None = Field(
        default=None, description="Unset in production (real Twilio); the sandbox URL locally"
    )
    messages_per_second: float = Field(
        default=10.0, gt=0,
        description="The sender's rate: 1 for a long code, 100 for a short code; 10 suits the local sandbox",
    )
    concurrency: int = Field(default=8, ge=1, description="SMS sends in flight per instance")
    request_timeout_seconds: float = Field(
        default=10.0, gt=0,
        description="How long a request to Twilio may take; a text whose create call ran out of it may have "
                    "gone out, and Twilio is asked before it is sent again",
    )

    @model_validator(mode="after")
    def _no_sandbox_credentials_for_real_twilio(self) -> Self:
        if self.api_base_url is not None:
            return self
        if self.auth_token.get_secret_value() == SANDBOX_TWILIO_AUTH_TOKEN:
            raise ValueError(
                "TWILIO_AUTH_TOKEN is the sandbox default but TWILIO_API_BASE_URL is unset (real Twilio): "
                "set the account's auth token"
            )
        if self.account_sid == SANDBOX_TWILIO_ACCOUNT_SID:
            raise ValueError(
                "TWILIO_ACCOUNT_SID is the all-zero sandbox account but TWILIO_API_BASE_URL is unset "
                "(real Twilio): set the clinic's account SID"
            )
        return self


class CommonSettings(BaseSettings):
    """Settings every service reads, under the same names."""

    clinic_config_file: Path = DEFAULT_CLINIC_CONFIG
    log_level: str = "INFO"
    log_json: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


class DeliverySettings(BaseSettings):
    """How the dispatcher sends: channels, patient links, retries."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    patient_web_url: str = "http://127.0.0.1:8040"
    link_secret: SecretStr = Field(description="Signs unsubscribe and check-in links; set per environment")
    retry_first_delay_seconds: float = 5.0
    retry_max_delay_seconds: float = 600.0
    # A message without an expiry of its own (reminders and notices expire with the appointment)
    # is retried for this long after its due time, then given up.
    retry_horizon_hours: float = Field(default=24.0, gt=0)
    retry_horizon_hours_by_template: dict[str, float] = Field(default_factory=dict)
    # A message this instance recorded wakes its dispatcher at once; one written by another process (another
    # instance's consumer, a script) is found by the dispatcher's next look at the ledger when idle.
    dispatch_idle_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)

    @field_validator("link_secret")
    @classmethod
    def _link_secret_long_enough(cls, secret: SecretStr) -> SecretStr:
        # Links stay valid for weeks: a short secret could be brute-forced offline from one link.
        length = len(secret.get_secret_value().encode())
        if length < LINK_SECRET_MIN_BYTES:
            raise ValueError(
                f"LINK_SECRET must be at least {LINK_SECRET_MIN_BYTES} bytes, got {length}; generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return secret
