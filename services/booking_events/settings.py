"""Settings of the booking events service: BOOKING_* from the environment, plus the common ones."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.settings import CommonSettings


class BookingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKING_")

    database_url: str = "sqlite+aiosqlite:///./booking.db"
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys accepted in X-API-Key; none means every request is refused",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8010
    outbox_batch_size: int = Field(default=200, ge=1, le=5000)
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    outbox_max_backoff_s: float = Field(default=30.0, gt=0)
    kafka_startup_wait_s: float = Field(default=120.0, gt=0)
    idempotency_retention_hours: float = Field(default=24.0, ge=24.0)
    common: CommonSettings = Field(default_factory=CommonSettings)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value
