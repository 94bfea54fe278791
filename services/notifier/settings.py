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
    common: CommonSettings = Field(default_factory=CommonSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)  # type: ignore[arg-type]  # link_secret: read from the environment, not passed
