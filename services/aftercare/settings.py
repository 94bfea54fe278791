"""Aftercare settings: its own under AFTERCARE_, and the `common` and `delivery` groups every service reads."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.aftercare.limits import PublicLimits
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
    # The public URL of POST /twilio/status, given to Twilio with each SMS (and the URL its
    # signature covers); unset: no status callbacks are asked for.
    public_status_callback_url: str | None = None
    # Public endpoints, per client address: requests a minute and the burst allowed (then 429), and
    # the largest body read (then 413).
    webhook_requests_per_minute: float = 600
    webhook_burst: int = 100
    page_requests_per_minute: float = 30
    page_burst: int = 10
    max_body_bytes: int = 16 * 1024
    common: CommonSettings = Field(default_factory=CommonSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)

    def public_limits(self) -> PublicLimits:
        return PublicLimits(
            webhook_body_bytes=self.max_body_bytes, page_body_bytes=self.max_body_bytes,
            webhook_per_minute=self.webhook_requests_per_minute, webhook_burst=self.webhook_burst,
            page_per_minute=self.page_requests_per_minute, page_burst=self.page_burst,
        )
