"""What the notifier remembers of each appointment, and how two instances racing on one are kept apart."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.notifier.domain.state import AppointmentState
from services.notifier.store import AppointmentStateStore, ConcurrentAppointmentUpdate
from services.notifier.tables import SCHEMA
from shared.consumer import UNAVAILABLE
from shared.database import create_engine, create_tables
from tests.support.sqlite_plans import plan_steps, statements_of

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/notifier.db")
    await create_tables(engine, SCHEMA)
    yield AppointmentStateStore(engine)
    await engine.dispose()


def state(sequence: int, status: str = "booked", appointment_id: str = "apt-1") -> AppointmentState:
    event = json.dumps({"event_type": "AppointmentBooked", "sequence": sequence})
    return AppointmentState(appointment_id, sequence, status, event)


async def test_the_last_applied_event_is_remembered_and_replaced_by_the_next(store: AppointmentStateStore) -> None:
    async with store.engine.begin() as connection:
        assert await store.get(connection, "apt-1") is None
        await store.add_many(connection, [state(1)], NOW)
    async with store.engine.begin() as connection:
        await store.replace_many(connection, [(state(2, "cancelled"), state(1))], NOW)
    async with store.engine.connect() as connection:
        assert await store.get(connection, "apt-1") == state(2, "cancelled")


async def test_a_replacement_based_on_a_state_another_instance_already_replaced_is_refused(
    store: AppointmentStateStore,
) -> None:
    async with store.engine.begin() as connection:
        await store.add_many(connection, [state(1), state(1, appointment_id="apt-2")], NOW)
    async with store.engine.begin() as connection:
        await store.replace_many(connection, [(state(2), state(1))], NOW)
    with pytest.raises(ConcurrentAppointmentUpdate):
        async with store.engine.begin() as connection:
            await store.replace_many(connection, [(state(2, appointment_id="apt-2"), state(1, appointment_id="apt-2")),
                                                  (state(3, "cancelled"), state(1))], NOW)
    async with store.engine.connect() as connection:
        assert await store.get_many(connection, ["apt-1", "apt-2"]) == {
            "apt-1": state(2), "apt-2": state(1, appointment_id="apt-2")}, "nothing of the refused batch is kept"


def test_the_consumer_retries_an_event_whose_appointment_was_changed_concurrently() -> None:
    assert isinstance(ConcurrentAppointmentUpdate("apt-1"), UNAVAILABLE)


async def test_replacing_a_batch_of_states_searches_its_appointments_by_key_and_scans_no_table(
    store: AppointmentStateStore,
) -> None:
    async with store.engine.begin() as connection:
        await store.add_many(connection, [state(1, appointment_id=f"apt-{n}") for n in range(50)], NOW)
    statements = statements_of(store.engine)
    async with store.engine.begin() as connection:
        await store.replace_many(connection, [(state(2, appointment_id=f"apt-{n}"), state(1, appointment_id=f"apt-{n}"))
                                              for n in range(0, 50, 7)], NOW)
    # The batch's ids are one parameter, read as a list (json_each); the table is searched by key for each.
    tables = await plan_steps(store.engine, statements, "appointments", kinds=("DELETE", "UPDATE"))
    assert tables and all("SEARCH" in step and "SCAN" not in step for step in tables), tables
