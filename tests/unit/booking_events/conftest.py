"""The booking API over a SQLite file, a fixed clock and a publisher that records what it is given."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking_events import bootstrap
from services.booking_events.bootstrap import BookingParts
from services.booking_events.settings import BookingSettings
from services.booking_events.tables import SCHEMA as BOOKING_SCHEMA
from services.booking_events.tables import outbox
from shared.clock import FixedClock
from shared.database import create_tables
from shared.outbox.kafka_publisher import RecordingPublisher
from tests.unit.booking_events.bodies import API_KEY, NOW


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def settings(tmp_path: Path) -> BookingSettings:
    return BookingSettings(
        api_keys=[API_KEY, "other-key"], database_url=f"sqlite+aiosqlite:///{tmp_path / 'booking.db'}"
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def parts(
    settings: BookingSettings, clock: FixedClock, publisher: RecordingPublisher
) -> AsyncIterator[BookingParts]:
    parts = bootstrap.build(settings, clock=clock, publisher=publisher)
    await create_tables(parts.engine, BOOKING_SCHEMA)
    yield parts
    await parts.engine.dispose()


@pytest.fixture
def engine(parts: BookingParts) -> AsyncEngine:
    return parts.engine


@pytest.fixture
async def client(parts: BookingParts) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=parts.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://booking", headers={"X-API-Key": API_KEY}
    ) as client:
        yield client


async def outbox_values(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(outbox.c.value).order_by(outbox.c.id))).scalars())
