"""Handlers: apply a booking system's command, recording the change and its event in one transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking_events.domain.commands import AppointmentCommand, BookSeries
from services.booking_events.domain.decisions import decide
from services.booking_events.domain.idempotency import IdempotencyKey, StoredResponse, replay
from services.booking_events.domain.refusals import AppointmentAlreadyBooked, AppointmentRefusal
from services.booking_events.domain.series import SessionRow, decide_series, with_series
from services.booking_events.store import BookingStore, ConcurrentChange

ATTEMPTS_ON_CONCURRENT_CHANGE = 3


class _KeyTakenMeanwhile(Exception):
    """A concurrent retry stored its response first; ours must roll back."""


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


async def change_appointment(
    store: BookingStore, connection: AsyncConnection, command: AppointmentCommand, now: datetime
) -> dict[str, Any]:
    """Decide, save the appointment and store its event in the outbox, in the caller's transaction."""
    await store.lock_appointment(connection, command.appointment_id)
    current = await store.find_appointment(connection, command.appointment_id)
    decision = decide(current, command, now)
    if series := await store.find_series_rows(connection, command.appointment_id):
        decision = with_series(decision, series)
    await store.save_appointment(
        connection, decision.appointment, current.sequence if current else None, now
    )
    await store.add_event(connection, decision.event, now)
    return {
        "appointment_id": decision.appointment.appointment_id,
        "sequence": decision.appointment.sequence,
        "event_id": str(decision.event.event_id),
        "status": decision.appointment.status.value,
    }


async def handle_command(
    store: BookingStore,
    command: AppointmentCommand,
    now: datetime,
    success_status: int,
    key: IdempotencyKey | None = None,
) -> Outcome:
    """Apply the command once per idempotency key; a retry gets the first response back.

    Raises AppointmentRefusal, IdempotencyKeyReused, or ConcurrentChange when the appointment
    kept changing under us.
    """
    if key is not None and (stored := await store.find_response(key)) is not None:
        return _replayed(stored, key)
    for _ in range(ATTEMPTS_ON_CONCURRENT_CHANGE):
        try:
            async with store.transaction() as connection:
                body = await change_appointment(store, connection, command, now)
                if key is not None and not await store.remember_response(
                    connection, key, success_status, body, now
                ):
                    raise _KeyTakenMeanwhile
            return Outcome(success_status, body)
        except ConcurrentChange:
            continue
        except (_KeyTakenMeanwhile, AppointmentRefusal):
            # A concurrent retry with our key may have made the change we are now refused.
            if key is not None and (stored := await store.find_response(key)) is not None:
                return _replayed(stored, key)
            raise
    raise ConcurrentChange(command.appointment_id)


async def book_series(
    store: BookingStore, connection: AsyncConnection, command: BookSeries, now: datetime
) -> dict[str, Any]:
    """Book every session of the plan and store all their events, in the caller's transaction."""
    if await store.series_exists(connection, command.series_id):
        raise AppointmentAlreadyBooked(f"series {command.series_id} already exists")
    decisions = decide_series(command, now)
    for decision in decisions:
        if await store.find_appointment(connection, decision.appointment.appointment_id) is not None:
            raise AppointmentAlreadyBooked(f"appointment {decision.appointment.appointment_id} already exists")
        await store.save_appointment(connection, decision.appointment, None, now)
        await store.add_event(connection, decision.event, now)
    await store.save_series(connection, [
        SessionRow(d.appointment.appointment_id, command.series_id, number, len(decisions),
                   d.appointment.details.starts_at, d.appointment.status)
        for number, d in enumerate(decisions, start=1)
    ])
    return {
        "series_id": command.series_id,
        "sessions": [
            {
                "appointment_id": d.appointment.appointment_id,
                "session_number": number,
                "starts_at": d.appointment.details.starts_at.isoformat(),
                "sequence": d.appointment.sequence,
                "event_id": str(d.event.event_id),
                "status": d.appointment.status.value,
            }
            for number, d in enumerate(decisions, start=1)
        ],
    }


async def handle_series(
    store: BookingStore, command: BookSeries, now: datetime, success_status: int, key: IdempotencyKey | None = None
) -> Outcome:
    """Book the plan once per idempotency key, all its sessions or none; a retry gets the first response."""
    if key is not None and (stored := await store.find_response(key)) is not None:
        return _replayed(stored, key)
    try:
        async with store.transaction() as connection:
            body = await book_series(store, connection, command, now)
            if key is not None and not await store.remember_response(connection, key, success_status, body, now):
                raise _KeyTakenMeanwhile
        return Outcome(success_status, body)
    except (_KeyTakenMeanwhile, AppointmentRefusal, ConcurrentChange):
        # A concurrent retry with our key may have booked the plan we are now refused.
        if key is not None and (stored := await store.find_response(key)) is not None:
            return _replayed(stored, key)
        raise


def _replayed(stored: StoredResponse, key: IdempotencyKey) -> Outcome:
    response = replay(stored, key)
    return Outcome(response.status_code, response.body, replayed=True)
