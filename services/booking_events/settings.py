"""Settings of the booking events service: BOOKING_* from the environment, plus the common ones."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
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
    http_shared_port: bool = Field(
        default=False,
        description="Several instances on one host listen on http_port together (SO_REUSEPORT), the kernel "
                    "spreading connections among them; PostgreSQL only (on SQLite one process writes)",
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=9100, description="Prometheus /metrics; unset or 0: not served")
    api_docs: bool = Field(default=True, description="Serve /docs and /openapi.json, behind the API key")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    rate_limit_per_second: float = Field(default=10.0, gt=0, description="Per API key, sustained")
    rate_limit_burst: int = Field(default=20, ge=1, description="Per API key, at once")
    write_batch_size: int = Field(
        default=100, ge=1, le=1000,
        description="At most this many appointment changes are written in one transaction",
    )
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

    @model_validator(mode="after")
    def _shared_port_needs_postgres(self) -> BookingSettings:
        # Each instance runs an outbox relay; on PostgreSQL an advisory lock lets one relay at a time,
        # on SQLite nothing would, and the instances would race for one file's write lock.
        if self.http_shared_port and not self.database_url.startswith("postgresql"):
            raise ValueError("BOOKING_HTTP_SHARED_PORT runs several instances on one database: it needs "
                             "PostgreSQL (BOOKING_DATABASE_URL=postgresql+asyncpg://...), not SQLite")
        return self
