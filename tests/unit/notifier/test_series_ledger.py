"""A plan's bookings read in any order, in separate batches, leave one confirmation per channel in the ledger."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.notifier.handlers import AppointmentEventHandler
from services.notifier.store import AppointmentStateStore
from services.notifier.tables import SCHEMA
from shared.clock import FixedClock
from shared.database import create_engine, create_tables
from shared.ledger.ledger import DeliveryLedger
from tests.unit.notifier.test_series_decisions import CLINIC, NOW, plan


@pytest.fixture
async def handler(tmp_path: Path) -> AsyncIterator[AppointmentEventHandler]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/notifier.db")
    await create_tables(engine, SCHEMA)
    yield AppointmentEventHandler(engine=engine, ledger=DeliveryLedger(engine), states=AppointmentStateStore(engine),
                                  clinic=CLINIC, clock=FixedClock(NOW))
    await engine.dispose()


async def test_the_plan_is_confirmed_once_whichever_session_arrives_first(handler: AppointmentEventHandler) -> None:
    bookings = plan(6)
    await handler.handle_batch([bookings[4], bookings[1]])  # one partition's share
    await handler.handle_batch([bookings[5], bookings[0], bookings[3], bookings[2]])
    await handler.handle_batch(bookings[:3])  # a replay

    async with handler.engine.connect() as connection:
        confirmation = await handler.ledger.for_appointment(connection, "series:plan-7")
        per_session = [await handler.ledger.for_appointment(connection, b.appointment_id) for b in bookings]
    assert sorted(d.channel for d in confirmation) == ["email", "sms"]
    assert {d.template for d in confirmation} == {"series_confirmation"}
    assert all(sorted(d.step for d in rows) == ["guidance_48h", "reminder_24h", "reminder_2h"] for rows in per_session)
