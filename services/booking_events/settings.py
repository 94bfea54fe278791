"""Settings of the booking events service, read from the environment."""
from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import CommonSettings


def _env(name: str) -> AliasChoices:
    """Accept the BOOKING_* environment name, and the field name when built in code."""
    return AliasChoices(name, name.removeprefix("BOOKING_").lower())


class BookingSettings(CommonSettings):
    model_config = SettingsConfigDict(validate_by_name=True)

    database_url: str = Field(
        default="sqlite+aiosqlite:///./booking.db", validation_alias=_env("BOOKING_DATABASE_URL")
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("BOOKING_API_KEYS"),
        description="Comma-separated keys accepted in X-API-Key; none means every request is refused",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias=_env("BOOKING_HTTP_HOST"))
    http_port: int = Field(default=8010, validation_alias=_env("BOOKING_HTTP_PORT"))
    outbox_batch_size: int = Field(
        default=200, ge=1, le=5000, validation_alias=_env("BOOKING_OUTBOX_BATCH_SIZE")
    )
    outbox_poll_interval_s: float = Field(
        default=1.0, gt=0, validation_alias=_env("BOOKING_OUTBOX_POLL_INTERVAL_S")
    )
    outbox_max_backoff_s: float = Field(
        default=30.0, gt=0, validation_alias=_env("BOOKING_OUTBOX_MAX_BACKOFF_S")
    )
    kafka_startup_wait_s: float = Field(
        default=120.0, gt=0, validation_alias=_env("BOOKING_KAFKA_STARTUP_WAIT_S")
    )
    idempotency_retention_hours: float = Field(
        default=24.0, ge=24.0, validation_alias=_env("BOOKING_IDEMPOTENCY_RETENTION_HOURS")
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value
