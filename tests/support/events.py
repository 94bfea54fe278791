"""Realistic appointment events for tests (fake patients, +1 416 555 01xx numbers, example.com)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events.appointment import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentDetails,
    AppointmentNoShow,
    AppointmentRescheduled,
    AppointmentType,
)
from shared.events.patient import ChannelConsent, PatientContact


def patient(**overrides: Any) -> PatientContact:
    values: dict[str, Any] = {
        "patient_id": "pt-1",
        "name": "Alex Tremblay",
        "email": "alex.tremblay@example.com",
        "phone": "+14165550123",
        "locale": "en-CA",
        "time_zone": "America/Toronto",
        "consent": ChannelConsent(email=True, sms=True),
    }
    values.update(overrides)
    return PatientContact(**values)


def details(starts_at: datetime, type: AppointmentType = AppointmentType.DRY_NEEDLING) -> AppointmentDetails:
    return AppointmentDetails(
        type=type, starts_at=starts_at, duration_minutes=30, practitioner="Sam Lee", location_id="downtown"
    )


def booked(
    appointment_id: str, starts_at: datetime, sequence: int = 1, occurred_at: datetime | None = None,
    who: PatientContact | None = None, type: AppointmentType = AppointmentType.DRY_NEEDLING,
) -> AppointmentBooked:
    return AppointmentBooked(
        occurred_at=occurred_at or datetime.now(UTC), appointment_id=appointment_id, sequence=sequence,
        location_id="downtown", patient=who or patient(), appointment=details(starts_at, type),
    )


def rescheduled(previous: AppointmentBooked, new_start: datetime, sequence: int) -> AppointmentRescheduled:
    return AppointmentRescheduled(
        occurred_at=datetime.now(UTC), appointment_id=previous.appointment_id, sequence=sequence,
        location_id=previous.location_id, patient=previous.patient,
        appointment=previous.appointment.model_copy(update={"starts_at": new_start}),
        previous_starts_at=previous.appointment.starts_at,
    )


def cancelled(previous: AppointmentBooked, sequence: int) -> AppointmentCancelled:
    return AppointmentCancelled(
        occurred_at=datetime.now(UTC), appointment_id=previous.appointment_id, sequence=sequence,
        location_id=previous.location_id, patient=previous.patient, appointment=previous.appointment,
        cancelled_by="patient",
    )


def no_show(previous: AppointmentBooked, sequence: int) -> AppointmentNoShow:
    return AppointmentNoShow(
        occurred_at=datetime.now(UTC), appointment_id=previous.appointment_id, sequence=sequence,
        location_id=previous.location_id, patient=previous.patient, appointment=previous.appointment,
    )


def completed(previous: AppointmentBooked, sequence: int, completed_at: datetime | None = None,
              near_chest: bool = False) -> AppointmentCompleted:
    return AppointmentCompleted(
        occurred_at=datetime.now(UTC), appointment_id=previous.appointment_id, sequence=sequence,
        location_id=previous.location_id, patient=previous.patient, appointment=previous.appointment,
        completed_at=completed_at or previous.appointment.ends_at, needled_near_chest=near_chest,
    )


def in_hours(hours: float, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + timedelta(hours=hours)
