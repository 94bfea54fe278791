"""The notifier's settings: NOTIFIER_* of its own, plus the groups every sending service reads."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import CommonSettings, DeliverySettings


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_")

    database_url: str = "sqlite+aiosqlite:///./notifier.db"
    group_id: str = "notifier"
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9101
    # /healthz and Twilio's status callbacks (POST /twilio/status).
    http_host: str = "127.0.0.1"
    http_port: int = 8020
    # The public URL of POST /twilio/status, given to Twilio with each SMS (and the URL its
    # signature covers); unset: no status callbacks are asked for.
    public_status_callback_url: str | None = None
    common: CommonSettings = Field(default_factory=CommonSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)  # link_secret: read from the environment
