"""The console's settings, from CONSOLE_* variables; Kafka TLS/SASL come from KAFKA_* as for every client."""
from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOKEN_MIN_BYTES = 32


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", hide_input_in_errors=True)

    token: SecretStr = Field(description="What staff type at the login form; at least 32 bytes")
    host: str = "127.0.0.1"
    port: int = 8050
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    booking_database_url: str | None = None
    notifier_database_url: str | None = None
    aftercare_database_url: str | None = None
    time_zone: str = "America/Toronto"
    # Set behind TLS; a plain-HTTP console on loopback cannot keep a Secure cookie.
    secure_cookie: bool = False

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value().encode()) < TOKEN_MIN_BYTES:
            raise ValueError(f"CONSOLE_TOKEN must be at least {TOKEN_MIN_BYTES} bytes")
        return token
