"""Appointment events, version 1 of the contract.

Every event carries the full patient contact and appointment as they are after the change,
so a consumer never has to look anything up. Events of one appointment share its id as the
Kafka key and carry a per-appointment `sequence` that grows with each change.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from shared.events.patient import ID_PATTERN, PatientContact
from shared.events.text import DisplayName

SCHEMA_VERSION: Final = 1
# A treatment plan holds at most a year of weekly sessions.
MAX_SERIES_SESSIONS: Final = 52


class AppointmentType(StrEnum):
    DRY_NEEDLING = "dry_needling"
    PHYSIOTHERAPY = "physiotherapy"
    MASSAGE_THERAPY = "massage_therapy"
    CHIROPRACTIC = "chiropractic"
    SHOCKWAVE_THERAPY = "shockwave_therapy"
    INJECTION_THERAPY = "injection_therapy"
    ACTIVE_RELEASE_THERAPY = "active_release_therapy"
    MEDICAL_ACUPUNCTURE = "medical_acupuncture"


class AppointmentDetails(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: AppointmentType
    starts_at: AwareDatetime
    duration_minutes: int = Field(ge=5, le=480)
    practitioner: DisplayName
    location_id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)


class SeriesSession(BaseModel):
    """One session of a treatment plan, as it stands at the change the event tells."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    appointment_id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
    session_number: int = Field(ge=1, le=MAX_SERIES_SESSIONS, description="Its place in the plan, from 1")
    starts_at: AwareDatetime
    cancelled: bool = Field(default=False, description="Cancelled sessions stay listed so the numbering holds")


class AppointmentSeries(BaseModel):
    """The treatment plan an appointment belongs to, with every session of it: no lookup needed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Shorter than an appointment id: consumers key plan-wide records by it with a prefix.
    series_id: str = Field(min_length=1, max_length=80, pattern=ID_PATTERN)
    session_number: int = Field(ge=1, le=MAX_SERIES_SESSIONS, description="This appointment's place in the plan")
    session_count: int = Field(ge=1, le=MAX_SERIES_SESSIONS, description="Sessions the plan was booked with")
    sessions: tuple[SeriesSession, ...] = Field(min_length=1, max_length=MAX_SERIES_SESSIONS)

    @model_validator(mode="after")
    def _sessions_fit_the_plan(self) -> AppointmentSeries:
        numbers = [session.session_number for session in self.sessions]
        if len(set(numbers)) != len(numbers):
            raise ValueError("each session_number appears once in sessions")
        if max([*numbers, self.session_number]) > self.session_count:
            raise ValueError("a session_number is greater than session_count")
        return self


class EventEnvelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime
    appointment_id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
    # Bounded by the consumers' 32-bit sequence columns: a larger value could never be stored.
    sequence: int = Field(ge=1, le=2**31 - 1, description="Grows by one with each change of this appointment")
    location_id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
    patient: PatientContact
    appointment: AppointmentDetails
    # Optional within v1: absent (not null) on the wire for an appointment outside a plan.
    series: AppointmentSeries | None = Field(
        default=None,
        exclude_if=lambda series: series is None,
        description="The treatment plan this appointment is a session of, with all its sessions as of this change",
    )


class AppointmentBooked(EventEnvelope):
    event_type: Literal["AppointmentBooked"] = "AppointmentBooked"


class AppointmentRescheduled(EventEnvelope):
    event_type: Literal["AppointmentRescheduled"] = "AppointmentRescheduled"
    previous_starts_at: AwareDatetime


class AppointmentCancelled(EventEnvelope):
    event_type: Literal["AppointmentCancelled"] = "AppointmentCancelled"
    cancelled_by: Literal["patient", "clinic"] = "clinic"


class AppointmentCompleted(EventEnvelope):
    event_type: Literal["AppointmentCompleted"] = "AppointmentCompleted"
    completed_at: AwareDatetime
    needled_near_chest: bool = False


class AppointmentNoShow(EventEnvelope):
    event_type: Literal["AppointmentNoShow"] = "AppointmentNoShow"


AppointmentEvent = Annotated[
    AppointmentBooked | AppointmentRescheduled | AppointmentCancelled | AppointmentCompleted | AppointmentNoShow,
    Field(discriminator="event_type"),
]
APPOINTMENT_EVENT_TYPES = (
    AppointmentBooked,
    AppointmentRescheduled,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentNoShow,
)
_event_adapter: TypeAdapter[AppointmentEvent] = TypeAdapter(AppointmentEvent)


def parse_appointment_event(raw: bytes | str) -> AppointmentEvent:
    """Parse one event from its JSON wire form; raises pydantic.ValidationError when invalid."""
    return _event_adapter.validate_json(raw)


def appointment_event_json_schema() -> dict[str, Any]:
    return _event_adapter.json_schema()
