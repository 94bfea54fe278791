"""Request and response bodies of the booking HTTP API."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.booking_events.domain.appointment import AppointmentStatus
from shared.events import PatientContact
from shared.events.appointment import MAX_SERIES_SESSIONS, AppointmentDetails, AppointmentType
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


class SessionTemplate(_Request):
    """What every session of the plan shares: the appointment without its start."""

    type: AppointmentType
    duration_minutes: int = Field(ge=5, le=480)
    practitioner: DisplayName
    location_id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)


class Repeat(_Request):
    first_starts_at: AwareDatetime
    count: int = Field(ge=1, le=MAX_SERIES_SESSIONS)
    every_days: int = Field(default=7, ge=1, le=90, description="Days between sessions, same local time")


class SeriesRequest(_Request):
    series_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        pattern=APPOINTMENT_ID_PATTERN,
        description="Your id for the plan; generated (ser_...) when left out. Session n's appointment id is"
        " '<series_id>.<n>'",
    )
    patient: PatientContact
    appointment: SessionTemplate
    starts_at: list[AwareDatetime] | None = Field(
        default=None, min_length=1, max_length=MAX_SERIES_SESSIONS, description="Each session's start, in order"
    )
    repeat: Repeat | None = Field(default=None, description="Or: a first start, a count and the days between")

    @model_validator(mode="after")
    def _one_way_to_give_the_starts(self) -> SeriesRequest:
        if (self.starts_at is None) == (self.repeat is None):
            raise ValueError("give either starts_at or repeat, not both")
        return self


class SeriesSessionAccepted(BaseModel):
    appointment_id: str
    session_number: int
    starts_at: datetime
    sequence: int
    event_id: str
    status: AppointmentStatus


class SeriesAccepted(BaseModel):
    series_id: str
    sessions: list[SeriesSessionAccepted]


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
