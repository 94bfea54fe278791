"""An appointment as the booking service knows it."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.events import PatientContact
from shared.events.appointment import AppointmentDetails


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    RESCHEDULED = "rescheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


OPEN_STATUSES = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.RESCHEDULED})


@dataclass(frozen=True)
class Appointment:
    appointment_id: str
    status: AppointmentStatus
    sequence: int
    patient: PatientContact
    details: AppointmentDetails
