"""Handlers: apply a booking system's command, recording the change and its event in one transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.booking_events.appointments import (
    ConcurrentChange,
    find_appointment,
    lock_appointment,
    save_appointment,
)
from services.booking_events.domain import AppointmentCommand, AppointmentRefusal, decide
from services.booking_events.idempotency import (
    IdempotencyKey,
    StoredResponse,
    find_response,
    remember_response,
)
from services.booking_events.outbox import add_event

ATTEMPTS_ON_CONCURRENT_CHANGE = 3


class IdempotencyKeyReused(Exception):
    """The idempotency key was first used with a different request."""


class _KeyTakenMeanwhile(Exception):
    """A concurrent retry stored its response first; ours must roll back."""


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


async def change_appointment(
    connection: AsyncConnection, command: AppointmentCommand, now: datetime
) -> dict[str, Any]:
    """Decide, save the appointment and store its event in the outbox, in the caller's transaction."""
    await lock_appointment(connection, command.appointment_id)
    current = await find_appointment(connection, command.appointment_id)
    decision = decide(current, command, now)
    await save_appointment(
        connection, decision.appointment, current.sequence if current else None, now
    )
    await add_event(connection, decision.event, now)
    return {
        "appointment_id": decision.appointment.appointment_id,
        "sequence": decision.appointment.sequence,
        "event_id": str(decision.event.event_id),
        "status": decision.appointment.status.value,
    }


async def handle_command(
    engine: AsyncEngine,
    command: AppointmentCommand,
    now: datetime,
    success_status: int,
    key: IdempotencyKey | None = None,
) -> Outcome:
    """Apply the command once per idempotency key; a retry gets the first response back.

    Raises AppointmentRefusal, IdempotencyKeyReused, or ConcurrentChange when the appointment
    kept changing under us.
    """
    if key is not None and (stored := await find_response(engine, key)) is not None:
        return _replay(stored, key)
    for _ in range(ATTEMPTS_ON_CONCURRENT_CHANGE):
        try:
            async with engine.begin() as connection:
                body = await change_appointment(connection, command, now)
                if key is not None and not await remember_response(
                    connection, key, success_status, body, now
                ):
                    raise _KeyTakenMeanwhile
            return Outcome(success_status, body)
        except ConcurrentChange:
            continue
        except (_KeyTakenMeanwhile, AppointmentRefusal):
            # A concurrent retry with our key may have made the change we are now refused.
            if key is not None and (stored := await find_response(engine, key)) is not None:
                return _replay(stored, key)
            raise
    raise ConcurrentChange(command.appointment_id)


def _replay(stored: StoredResponse, key: IdempotencyKey) -> Outcome:
    if stored.fingerprint != key.fingerprint:
        raise IdempotencyKeyReused(key.key)
    return Outcome(stored.status_code, stored.body, replayed=True)
