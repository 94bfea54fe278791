"""Aftercare settings: its own under AFTERCARE_, and the `common` and `delivery` groups every service reads."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import CommonSettings, DeliverySettings


class AftercareSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AFTERCARE_")

    database_url: str = "sqlite+aiosqlite:///./aftercare.db"
    group_id: str = "aftercare"
    http_host: str = "127.0.0.1"
    http_port: int = 8040
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9102
    # The exact URL Twilio posts inbound texts to, when a proxy changes the one this service sees;
    # Twilio signs that URL, so validation needs it.
    public_webhook_url: str | None = None
    common: CommonSettings = Field(default_factory=CommonSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
