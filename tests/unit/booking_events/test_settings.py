"""The booking service reads BOOKING_* names, and the common ones every service shares."""
from __future__ import annotations

import pytest

from services.booking_events.settings import BookingSettings


@pytest.fixture(autouse=True)
def no_booking_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOOKING_DATABASE_URL", "BOOKING_HTTP_PORT", "BOOKING_API_KEYS"):
        monkeypatch.delenv(name, raising=False)


def test_an_unprefixed_database_url_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://someone-else/notifier")
    monkeypatch.setenv("HTTP_PORT", "9999")
    monkeypatch.setenv("API_KEYS", "not-ours")

    settings = BookingSettings()

    assert settings.database_url == "sqlite+aiosqlite:///./booking.db"
    assert settings.http_port == 8010
    assert settings.api_keys == []


def test_booking_names_and_the_common_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKING_DATABASE_URL", "postgresql+asyncpg://clinic@db/booking")
    monkeypatch.setenv("BOOKING_API_KEYS", "key-one, key-two,")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")

    settings = BookingSettings()

    assert settings.database_url == "postgresql+asyncpg://clinic@db/booking"
    assert [key.get_secret_value() for key in settings.api_keys] == ["key-one", "key-two"]
    assert settings.common.log_level == "DEBUG"
    assert settings.common.kafka.bootstrap_servers == "kafka:9092"
