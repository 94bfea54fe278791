"""Where the current state of each appointment is kept (booking_appointments)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking_events.domain import Appointment, AppointmentStatus
from services.booking_events.tables import appointments
from shared.events import PatientContact
from shared.events.appointment import AppointmentDetails


class ConcurrentChange(Exception):
    """The appointment changed between our read and our write; the caller retries."""


async def lock_appointment(connection: AsyncConnection, appointment_id: str) -> None:
    """Take the write lock on one appointment before reading it.

    A no-op UPDATE locks the row on PostgreSQL and takes SQLite's write lock, so the read that
    follows sees the latest state and no other change of this appointment can interleave.
    """
    await connection.execute(
        update(appointments)
        .where(appointments.c.appointment_id == appointment_id)
        .values(sequence=appointments.c.sequence)
    )


async def find_appointment(connection: AsyncConnection, appointment_id: str) -> Appointment | None:
    row = (
        await connection.execute(
            select(appointments).where(appointments.c.appointment_id == appointment_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return Appointment(
        appointment_id=row.appointment_id,
        status=AppointmentStatus(row.status),
        sequence=row.sequence,
        patient=PatientContact.model_validate_json(row.patient),
        details=AppointmentDetails.model_validate_json(row.details),
    )


async def find_updated_at(connection: AsyncConnection, appointment_id: str) -> datetime | None:
    return (
        await connection.execute(
            select(appointments.c.updated_at).where(appointments.c.appointment_id == appointment_id)
        )
    ).scalar_one_or_none()


async def save_appointment(
    connection: AsyncConnection, appointment: Appointment, previous_sequence: int | None, now: datetime
) -> None:
    """Insert a new appointment, or update it only if nobody changed it since `previous_sequence`."""
    values = {
        "status": appointment.status.value,
        "sequence": appointment.sequence,
        "starts_at": appointment.details.starts_at,
        "location_id": appointment.details.location_id,
        "patient": appointment.patient.model_dump_json(),
        "details": appointment.details.model_dump_json(),
        "updated_at": now,
    }
    if previous_sequence is None:
        try:
            await connection.execute(
                appointments.insert().values(
                    appointment_id=appointment.appointment_id, created_at=now, **values
                )
            )
        except IntegrityError:  # booked by a concurrent request with the same id
            raise ConcurrentChange(appointment.appointment_id) from None
        return
    result = await connection.execute(
        update(appointments)
        .where(
            appointments.c.appointment_id == appointment.appointment_id,
            appointments.c.sequence == previous_sequence,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise ConcurrentChange(appointment.appointment_id)
