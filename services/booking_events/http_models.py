"""Request and response bodies of the booking HTTP API."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.booking_events.domain.appointment import AppointmentStatus
from shared.events import PatientContact
from shared.events.appointment import AppointmentDetails
from shared.events.patient import ID_PATTERN
from shared.events.text import DisplayName

APPOINTMENT_ID_PATTERN = ID_PATTERN


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BookRequest(_Request):
    appointment_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=APPOINTMENT_ID_PATTERN,
        description="Your id for the appointment; generated (apt_...) when left out",
    )
    patient: PatientContact
    appointment: AppointmentDetails


class RescheduleRequest(_Request):
    starts_at: AwareDatetime
    duration_minutes: int | None = Field(default=None, ge=5, le=480)
    practitioner: DisplayName | None = None
    location_id: str | None = Field(default=None, min_length=1, max_length=100, pattern=ID_PATTERN)


class CancelRequest(_Request):
    cancelled_by: Literal["patient", "clinic"] = "clinic"


class CompleteRequest(_Request):
    completed_at: AwareDatetime | None = None
    needled_near_chest: bool = False


class ChangeAccepted(BaseModel):
    appointment_id: str
    sequence: int
    event_id: str
    status: AppointmentStatus


class AppointmentView(BaseModel):
    appointment_id: str
    status: AppointmentStatus
    sequence: int
    patient: PatientContact
    appointment: AppointmentDetails
    updated_at: datetime | None


class Problem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    message: str | None = None
    problems: list[Problem] | None = None


class HealthBody(BaseModel):
    status: Literal["ok", "unavailable"]
    dead_workers: list[str] | None = None
    database: Literal["unreachable"] | None = None
