"""The booking service's command writer on SQLite and PostgreSQL: commands that arrive together are
written together, and each is answered as if it had been written alone."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from services.booking_events import bootstrap
from services.booking_events.bootstrap import BookingParts
from services.booking_events.domain.commands import (
    BookAppointment,
    BookSeries,
    CancelAppointment,
    RescheduleAppointment,
    SeriesSessionSlot,
)
from services.booking_events.domain.idempotency import IdempotencyKey
from services.booking_events.domain.refusals import AppointmentAlreadyBooked, UnknownAppointment
from services.booking_events.handlers import Outcome, handle_series
from services.booking_events.settings import BookingSettings
from services.booking_events.tables import SCHEMA as BOOKING_SCHEMA
from services.booking_events.tables import outbox
from shared.clock import FixedClock
from shared.database import create_tables
from shared.events import PatientContact, parse_appointment_event
from shared.events.appointment import AppointmentDetails
from shared.outbox.kafka_publisher import RecordingPublisher

NOW = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
PATIENT = PatientContact(patient_id="pat_1", name="Maya Singh", phone="+14165550123")


def details(days: int = 1) -> AppointmentDetails:
    return AppointmentDetails(type="physiotherapy", starts_at=NOW + timedelta(days=days), duration_minutes=30,
                              practitioner="Dr. Chen", location_id="downtown")


def booking(appointment_id: str, days: int = 1) -> BookAppointment:
    return BookAppointment(appointment_id, PATIENT, details(days))


async def service(database_url: str) -> BookingParts:
    parts = bootstrap.build(BookingSettings(api_keys=["k"], database_url=database_url), clock=FixedClock(NOW),
                            publisher=RecordingPublisher())
    await create_tables(parts.engine, BOOKING_SCHEMA)
    return parts


@pytest.fixture
async def parts(database_url: str) -> AsyncIterator[BookingParts]:
    parts = await service(database_url)
    yield parts
    await parts.engine.dispose()


async def stored_events(parts: BookingParts) -> list[tuple[str, str, int]]:
    """(appointment, event type, sequence) of each event in the outbox, in publishing order."""
    async with parts.engine.connect() as connection:
        values = (await connection.execute(select(outbox.c.value).order_by(outbox.c.id))).scalars()
        events = [parse_appointment_event(value) for value in values]
    return [(e.appointment_id, e.event_type, e.sequence) for e in events]


async def answers(*applying: Any) -> list[Outcome | BaseException]:
    return list(await asyncio.gather(*applying, return_exceptions=True))


async def test_commands_sent_together_keep_their_order_and_each_gets_its_own_answer(parts: BookingParts) -> None:
    writer = parts.writer
    book, reschedule, cancel, unknown, twice, other = await answers(
        writer.apply(booking("apt-a"), 201),
        writer.apply(RescheduleAppointment("apt-a", NOW + timedelta(days=2)), 200),
        writer.apply(CancelAppointment("apt-a"), 200),
        writer.apply(CancelAppointment("apt-nobody-booked"), 200),
        writer.apply(booking("apt-a"), 201),
        writer.apply(booking("apt-b"), 201),
    )

    assert isinstance(book, Outcome) and isinstance(reschedule, Outcome) and isinstance(cancel, Outcome)
    assert [book.body["sequence"], reschedule.body["sequence"], cancel.body["sequence"]] == [1, 2, 3]
    assert (book.status_code, reschedule.status_code, cancel.body["status"]) == (201, 200, "cancelled")
    assert isinstance(unknown, UnknownAppointment)
    assert isinstance(twice, AppointmentAlreadyBooked)
    assert isinstance(other, Outcome) and other.body["sequence"] == 1
    assert await stored_events(parts) == [
        ("apt-a", "AppointmentBooked", 1), ("apt-a", "AppointmentRescheduled", 2),
        ("apt-a", "AppointmentCancelled", 3), ("apt-b", "AppointmentBooked", 1),
    ]


async def test_a_burst_of_bookings_is_written_in_far_fewer_transactions_than_requests(
    parts: BookingParts,
) -> None:
    commits = []
    event.listen(parts.engine.sync_engine, "commit", lambda _connection: commits.append(1))

    outcomes = await answers(*(parts.writer.apply(booking(f"apt-burst-{n}"), 201) for n in range(40)))

    assert all(isinstance(outcome, Outcome) for outcome in outcomes)
    assert len(await stored_events(parts)) == 40
    assert len(commits) <= 2


async def test_a_key_sent_twice_in_one_burst_makes_one_change_and_the_retry_gets_its_answer(
    parts: BookingParts,
) -> None:
    key = IdempotencyKey(client="client-1", key="booking-7", fingerprint="f" * 64)
    first, retry, other = await answers(
        parts.writer.apply(booking("apt-keyed"), 201, key),
        parts.writer.apply(booking("apt-keyed-retry"), 201, key),  # the same request with a new id
        parts.writer.apply(booking("apt-other"), 201),
    )

    assert isinstance(first, Outcome) and isinstance(retry, Outcome) and isinstance(other, Outcome)
    # Whichever of the two reached the writer first made the change (on PostgreSQL each looks for the key
    # on a connection of its own, and either may come back first); the other gets its answer.
    assert sorted([first.replayed, retry.replayed]) == [False, True]
    assert retry.body == first.body
    made = first.body["appointment_id"]
    assert made in ("apt-keyed", "apt-keyed-retry")
    assert sorted(appointment for appointment, _, _ in await stored_events(parts)) == sorted([made, "apt-other"])


async def test_two_instances_booking_the_same_appointment_at_once_book_it_once(
    parts: BookingParts, database_url: str
) -> None:
    """A second instance of the service on the same database: its batch and ours both want the id."""
    second = await service(database_url)
    try:
        ours, theirs = await answers(
            parts.writer.apply(booking("apt-contested"), 201),
            second.writer.apply(booking("apt-contested", days=3), 201),
        )
    finally:
        await second.engine.dispose()

    assert sorted(type(answer).__name__ for answer in (ours, theirs)) == ["AppointmentAlreadyBooked", "Outcome"]
    assert await stored_events(parts) == [("apt-contested", "AppointmentBooked", 1)]


async def test_sessions_of_one_plan_changed_together_each_carry_the_plan_as_changed_before_them(
    parts: BookingParts,
) -> None:
    slots = tuple(SeriesSessionSlot(f"ser-1.{n}", NOW + timedelta(days=7 * n)) for n in (1, 2))
    await handle_series(parts.store, BookSeries("ser-1", PATIENT, slots, details()), NOW, 201)
    moved_first, moved_second = NOW + timedelta(days=8), NOW + timedelta(days=15)

    first, second = await answers(
        parts.writer.apply(RescheduleAppointment("ser-1.1", moved_first), 200),
        parts.writer.apply(RescheduleAppointment("ser-1.2", moved_second), 200),
    )

    assert isinstance(first, Outcome) and isinstance(second, Outcome)
    async with parts.engine.connect() as connection:
        last = (await connection.execute(select(outbox.c.value).order_by(outbox.c.id.desc()).limit(1))).scalar_one()
    plan = parse_appointment_event(last).series
    assert plan is not None
    assert [session.starts_at for session in plan.sessions] == [moved_first, moved_second]
