"""Handlers: apply a booking system's command, recording the change and its event in one transaction."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking_events.domain.commands import AppointmentCommand, BookSeries
from services.booking_events.domain.decisions import Decision, decide
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
    return _accepted(decision)


def _accepted(decision: Decision) -> dict[str, Any]:
    return {
        "appointment_id": decision.appointment.appointment_id,
        "sequence": decision.appointment.sequence,
        "event_id": str(decision.event.event_id),
        "status": decision.appointment.status.value,
    }


@dataclass(frozen=True)
class Queued:
    """A command waiting to be written, with the status it answers and its idempotency key."""

    command: AppointmentCommand
    success_status: int
    key: IdempotencyKey | None = None


class BatchNotApplied(Exception):
    """The batch changed nothing: a row or a key was taken meanwhile; apply its commands one by one."""


async def apply_commands(
    store: BookingStore, queued: Sequence[Queued], now: datetime
) -> list[Outcome | AppointmentRefusal]:
    """Apply the commands in order, in one transaction: each one's outcome, or the refusal of its own.

    The appointments are locked, read and written with one statement each for the whole batch; a
    command sees the changes of the commands before it. Sessions of a treatment plan are changed one
    by one (their event carries the plan as stored). Raises BatchNotApplied, having written nothing,
    when an appointment or an idempotency key was taken by a concurrent request.
    """
    keys = [(q.key.client, q.key.key) for q in queued if q.key is not None]
    if len(set(keys)) != len(keys):
        raise BatchNotApplied("an idempotency key twice in one batch")
    ids = list(dict.fromkeys(q.command.appointment_id for q in queued))
    try:
        async with store.transaction() as connection:
            stored = await store.lock_and_find_appointments(connection, ids)
            # A plan's sessions are booked with the plan: an appointment not stored yet is none of them.
            in_series = await store.in_series(connection, list(stored)) if stored else set()
            current = dict(stored)
            changed: dict[str, None] = {}
            decisions: list[Decision] = []
            outcomes: list[Outcome | AppointmentRefusal] = []
            responses: list[tuple[IdempotencyKey, int, dict[str, Any]]] = []
            for item in queued:
                appointment_id = item.command.appointment_id
                try:
                    if appointment_id in in_series:
                        body = await change_appointment(store, connection, item.command, now)
                    else:
                        decision = decide(current.get(appointment_id), item.command, now)
                        current[appointment_id] = decision.appointment
                        changed[appointment_id] = None
                        decisions.append(decision)
                        body = _accepted(decision)
                except AppointmentRefusal as refusal:
                    outcomes.append(refusal)
                    continue
                outcomes.append(Outcome(item.success_status, body))
                if item.key is not None:
                    responses.append((item.key, item.success_status, body))
            await store.insert_appointments(
                connection, [current[i] for i in changed if i not in stored], now)
            for appointment_id in changed:
                if appointment_id in stored:
                    await store.save_appointment(
                        connection, current[appointment_id], stored[appointment_id].sequence, now)
            await store.add_events(connection, [d.event for d in decisions], now)
            await store.remember_responses(connection, responses, now)
    except (ConcurrentChange, IntegrityError) as error:
        raise BatchNotApplied(type(error).__name__) from error
    return outcomes


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
        return replayed(stored, key)
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
                return replayed(stored, key)
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
        return replayed(stored, key)
    try:
        async with store.transaction() as connection:
            body = await book_series(store, connection, command, now)
            if key is not None and not await store.remember_response(connection, key, success_status, body, now):
                raise _KeyTakenMeanwhile
        return Outcome(success_status, body)
    except (_KeyTakenMeanwhile, AppointmentRefusal, ConcurrentChange):
        # A concurrent retry with our key may have booked the plan we are now refused.
        if key is not None and (stored := await store.find_response(key)) is not None:
            return replayed(stored, key)
        raise


def replayed(stored: StoredResponse, key: IdempotencyKey) -> Outcome:
    response = replay(stored, key)
    return Outcome(response.status_code, response.body, replayed=True)
