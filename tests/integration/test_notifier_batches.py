"""A week of the clinic's events applied a batch at a time leaves the ledger and the states that applying
them one by one leaves, and a batch is written in a few statements however many events it holds."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update

from services.notifier.handlers import AppointmentEventHandler
from services.notifier.store import AppointmentStateStore, ConcurrentAppointmentUpdate
from services.notifier.tables import SCHEMA, appointments
from shared.clock import FixedClock
from shared.database import create_engine, create_tables
from shared.events.appointment import AppointmentEvent
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryStatus
from shared.ledger.tables import deliveries
from tests.conftest import create_postgres_database
from tests.support.events import booked, cancelled, completed, no_show, rescheduled
from tests.support.plans import anchors_planned
from tests.support.sqlite_plans import plan_steps, statements_of
from tests.unit.notifier.test_series_decisions import CLINIC, NOW, plan

# Shown on the screen of the front desk: a week of changes, in the batches a consumer may read them in.
A, B, C, D, E, X = (booked(f"apt-{name}", NOW + timedelta(days=days))
                    for name, days in (("a", 5), ("b", 6), ("c", 3), ("d", 4), ("e", 7), ("x", 2)))
SESSIONS = plan(3)


def first_batches() -> list[list[AppointmentEvent]]:
    return [[A, B, SESSIONS[0], C, D, X], [SESSIONS[1]]]


def later_batches() -> list[list[AppointmentEvent]]:
    """After some messages went out: changes to known appointments, new ones, replays, in one batch."""
    d2 = rescheduled(D, NOW + timedelta(days=2), sequence=2)
    e2 = rescheduled(E, NOW + timedelta(days=9), sequence=2)
    return [[
        rescheduled(A, NOW + timedelta(days=8), sequence=2), cancelled(B, sequence=2), completed(C, sequence=2),
        d2, B, E, SESSIONS[2], rescheduled(D, NOW + timedelta(days=6), sequence=3), e2, no_show(X, sequence=2),
        cancelled(E, sequence=3), rescheduled(B, NOW + timedelta(days=3), sequence=3), SESSIONS[0],
    ]]


@pytest.fixture
async def handlers(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[AppointmentEventHandler, AppointmentEventHandler]]:
    """Two notifiers' handlers on databases of their own, of the kind `database_url` is."""
    if database_url.startswith("sqlite"):
        other_url = f"sqlite+aiosqlite:///{tmp_path}/one-by-one.db"
    else:
        other_url = await create_postgres_database(request.getfixturevalue("postgres"))
    made = []
    for url in (database_url, other_url):
        engine = create_engine(url)
        await create_tables(engine, SCHEMA)
        made.append(AppointmentEventHandler(engine=engine, ledger=DeliveryLedger(engine),
                                            states=AppointmentStateStore(engine), clinic=CLINIC, clock=FixedClock(NOW)))
    yield made[0], made[1]
    for handler in made:
        await handler.engine.dispose()


async def dispatcher_sends(handler: AppointmentEventHandler, *appointment_ids: str) -> None:
    """What a dispatcher does meanwhile: the appointments' messages due by then go out."""
    async with handler.engine.begin() as connection:
        await connection.execute(
            update(deliveries)
            .where(deliveries.c.appointment_id.in_(appointment_ids), deliveries.c.status == DeliveryStatus.PENDING,
                   deliveries.c.due_at <= NOW + timedelta(days=3))
            .values(status=DeliveryStatus.SENT, sent_at=NOW + timedelta(hours=1), provider_id="sent-meanwhile")
        )


async def what_is_recorded(handler: AppointmentEventHandler) -> tuple[list[Any], list[Any]]:
    async with handler.engine.connect() as connection:
        states = (await connection.execute(select(appointments).order_by(appointments.c.appointment_id))).all()
        ledger = (await connection.execute(
            select(*(column for column in deliveries.c if column.name != "id"))
            .order_by(deliveries.c.appointment_id, deliveries.c.step, deliveries.c.channel,
                      deliveries.c.appointment_version)
        )).all()
    return [tuple(row) for row in states], [tuple(row) for row in ledger]


async def test_a_week_applied_in_batches_leaves_what_one_by_one_leaves(
    handlers: tuple[AppointmentEventHandler, AppointmentEventHandler],
) -> None:
    in_batches, one_by_one = handlers
    for batches in (first_batches(), later_batches()):
        for batch in batches:
            await in_batches.handle_batch(batch)
            for one in batch:
                await one_by_one.handle_batch([one])
        for handler in handlers:
            await dispatcher_sends(handler, "apt-a", "apt-d", "series:plan-7")

    states, ledger = await what_is_recorded(in_batches)
    assert (states, ledger) == await what_is_recorded(one_by_one)
    assert {row[0]: (row[1], row[2]) for row in states} == {
        "apt-a": (2, "booked"), "apt-b": (2, "cancelled"), "apt-c": (2, "completed"), "apt-d": (3, "booked"),
        "apt-e": (3, "cancelled"), "apt-x": (2, "no_show"), "plan-7.1": (1, "booked"), "plan-7.2": (1, "booked"),
        "plan-7.3": (1, "booked"),
    }
    status = [column.name for column in deliveries.c if column.name != "id"].index("status")
    by_status: dict[str, set[str]] = {}
    for row in ledger:
        by_status.setdefault(row[status], set()).add(row[0])
    assert {"apt-b", "apt-e", "apt-x"} <= by_status["cancelled"], "what was pending was cancelled"
    assert "apt-d" in by_status["sent"] and "apt-d" in by_status["pending"], "D moved: sent, then planned again"


async def test_a_batch_is_written_in_a_few_statements_however_many_events_it_holds(
    handlers: tuple[AppointmentEventHandler, AppointmentEventHandler],
) -> None:
    handler, _ = handlers
    bookings = [booked(f"apt-{n}", NOW + timedelta(days=3, minutes=n)) for n in range(200)]
    await handler.handle_batch(bookings)
    await dispatcher_sends(handler, *(b.appointment_id for b in bookings[:50]))
    statements: list[str] = []
    event.listen(handler.engine.sync_engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    await handler.handle_batch([rescheduled(b, b.appointment.starts_at + timedelta(hours=2), sequence=2)
                                for b in bookings])
    await handler.handle_batch([completed(b, sequence=3) for b in bookings])
    assert len(statements) <= 2 * 8, statements  # per batch: 2 reads, cancellations, intents, 3 for states
    async with handler.engine.connect() as connection:
        pending = (await connection.execute(
            select(deliveries.c.id).where(deliveries.c.status == DeliveryStatus.PENDING))).all()
    assert pending == [], "the completed visits' messages were all cancelled"


async def test_a_batch_based_on_a_state_another_instance_already_replaced_is_refused_whole(
    handlers: tuple[AppointmentEventHandler, AppointmentEventHandler],
) -> None:
    handler, _ = handlers
    await handler.handle_batch([A, B])
    async with handler.engine.connect() as connection:
        seen = await handler.states.get_many(connection, ["apt-a", "apt-b"])
    await handler.handle_batch([rescheduled(B, NOW + timedelta(days=8), sequence=2)])  # the other instance
    moved_a = replace(seen["apt-a"], last_sequence=2, status="cancelled")
    moved_b = replace(seen["apt-b"], last_sequence=3, status="cancelled")
    with pytest.raises(ConcurrentAppointmentUpdate):
        async with handler.engine.begin() as connection:
            await handler.states.replace_many(connection, [(moved_a, seen["apt-a"]), (moved_b, seen["apt-b"])], NOW)
    async with handler.engine.connect() as connection:
        now_stored = await handler.states.get_many(connection, ["apt-a", "apt-b"])
    assert (now_stored["apt-a"].last_sequence, now_stored["apt-b"].last_sequence) == (1, 2), "nothing of it is kept"


async def test_a_batch_finds_its_appointments_messages_by_appointment_however_many_others_are_sent_or_pending(
    handlers: tuple[AppointmentEventHandler, AppointmentEventHandler],
) -> None:
    """What a batch reads and cancels in the ledger is looked up by appointment. Looked up by status (every
    message sent, or pending), one batch of a clinic whose ledger holds 300,000 sent messages took 150 ms
    on SQLite, whose planner has no statistics to prefer the appointment's index by itself."""
    handler, _ = handlers
    if handler.engine.dialect.name != "sqlite":
        pytest.skip("the plans asked of SQLite; PostgreSQL plans from its statistics")
    bookings = [booked(f"apt-{n}", NOW + timedelta(days=3, minutes=n)) for n in range(20)]
    await handler.handle_batch(bookings)
    await dispatcher_sends(handler, *(b.appointment_id for b in bookings[:10]))
    statements = statements_of(handler.engine)
    await handler.handle_batch([rescheduled(b, b.appointment.starts_at + timedelta(hours=2), sequence=2)
                                for b in bookings])
    steps = await plan_steps(handler.engine, statements, "deliveries")
    assert any(s.startswith("SELECT") and "deliveries" in s for s, _ in statements), "it read what was sent"
    assert any(s.startswith("UPDATE deliveries") for s, _ in statements), "it cancelled what was pending"
    assert steps and all("(appointment_id=?)" in step for step in steps), steps


async def test_a_batch_of_bookings_plans_each_appointment_time_once(
    handlers: tuple[AppointmentEventHandler, AppointmentEventHandler], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A clinic books in slots: a morning's bookings read in one batch share a few times, and planning
    their guidance and reminders (zones, quiet hours) was half the CPU of deciding them."""
    handler, _ = handlers
    planned = anchors_planned(monkeypatch, "services.notifier.domain.decisions")
    slots = [NOW + timedelta(days=3, hours=hour) for hour in (1, 2, 3)]
    bookings = [booked(f"apt-{n}", slots[n % 3]) for n in range(12)]
    await handler.handle_batch(bookings)

    assert sorted(planned) == slots
    _, ledger = await what_is_recorded(handler)
    due_at = [column.name for column in deliveries.c if column.name != "id"].index("due_at")
    times = {booking.appointment_id: sorted(row[due_at] for row in ledger if row[0] == booking.appointment_id)
             for booking in bookings}
    assert all(times.values()), "every booking has its own messages"
    assert {tuple(times[f"apt-{n}"]) for n in range(12)} == {tuple(times[f"apt-{n}"]) for n in range(3)}
    assert len({tuple(times[f"apt-{n}"]) for n in range(3)}) == 3, "each slot has its own times"
