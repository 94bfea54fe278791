"""Settings read from the environment; each service composes the groups it needs."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CLINIC_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "clinic.yaml"


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"


class SmtpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMTP_")

    host: str = "127.0.0.1"
    port: int = 1025
    username: str | None = None
    password: SecretStr | None = None
    use_tls: bool = False
    start_tls: bool = False
    sender: str = "Clinic <no-reply@clinic.example>"


class TwilioSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWILIO_")

    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: SecretStr = SecretStr("sandbox-auth-token")
    from_number: str | None = "+14165550100"
    messaging_service_sid: str | None = None
    api_base_url: str | None = Field(
        default=None, description="Unset in production (real Twilio); the sandbox URL locally"
    )


class CommonSettings(BaseSettings):
    """Settings every service reads, under the same names."""

    clinic_config_file: Path = DEFAULT_CLINIC_CONFIG
    log_level: str = "INFO"
    log_json: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


class DeliverySettings(BaseSettings):
    """How the dispatcher sends: channels, patient links, retries."""

    patient_web_url: str = "http://127.0.0.1:8040"
    link_secret: SecretStr = Field(description="Signs unsubscribe and check-in links; set per environment")
    retry_first_delay_seconds: float = 5.0
    retry_max_delay_seconds: float = 600.0
    retry_max_attempts: int = 8
    dispatch_concurrency: int = 8
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
