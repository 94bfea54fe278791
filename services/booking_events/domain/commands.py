"""Commands: what a booking system asks for."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.events import PatientContact
from shared.events.appointment import AppointmentDetails


@dataclass(frozen=True)
class BookAppointment:
    appointment_id: str
    patient: PatientContact
    details: AppointmentDetails


@dataclass(frozen=True)
class RescheduleAppointment:
    appointment_id: str
    starts_at: datetime
    duration_minutes: int | None = None
    practitioner: str | None = None
    location_id: str | None = None


@dataclass(frozen=True)
class CancelAppointment:
    appointment_id: str
    cancelled_by: Literal["patient", "clinic"] = "clinic"


@dataclass(frozen=True)
class CompleteAppointment:
    appointment_id: str
    completed_at: datetime | None = None
    needled_near_chest: bool = False


@dataclass(frozen=True)
class RecordNoShow:
    appointment_id: str


AppointmentCommand = (
    BookAppointment | RescheduleAppointment | CancelAppointment | CompleteAppointment | RecordNoShow
)


@dataclass(frozen=True)
class SeriesSessionSlot:
    appointment_id: str
    starts_at: datetime


@dataclass(frozen=True)
class BookSeries:
    """A treatment plan booked at once: one appointment per start, all with the same details."""

    series_id: str
    patient: PatientContact
    sessions: tuple[SeriesSessionSlot, ...]
    template: AppointmentDetails  # its starts_at is the first session's
