"""The decision: the appointment after a command, and the event that tells the clinic's services."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.booking_events.domain.appointment import OPEN_STATUSES, Appointment, AppointmentStatus
from services.booking_events.domain.commands import (
    AppointmentCommand,
    BookAppointment,
    CancelAppointment,
    CompleteAppointment,
    RecordNoShow,
    RescheduleAppointment,
)
from services.booking_events.domain.refusals import (
    AppointmentAlreadyBooked,
    InvalidField,
    NothingToChange,
    TransitionNotAllowed,
    UnknownAppointment,
)
from shared.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentEvent,
    AppointmentNoShow,
    AppointmentRescheduled,
)
from shared.events.appointment import AppointmentDetails

# A booking system's clock may run a little ahead of ours: a start this recent is not "in the past".
START_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class Decision:
    appointment: Appointment
    event: AppointmentEvent


def decide(current: Appointment | None, command: AppointmentCommand, now: datetime) -> Decision:
    """The appointment after the command, and the event that tells the clinic's services."""
    if isinstance(command, BookAppointment):
        if current is not None:
            raise AppointmentAlreadyBooked(f"appointment {command.appointment_id} already exists")
        _refuse_a_past_start(command.details.starts_at, now, "appointment.starts_at")
        booked = Appointment(
            command.appointment_id, AppointmentStatus.BOOKED, 1, command.patient, command.details
        )
        return Decision(booked, AppointmentBooked(**_envelope(booked, now)))
    if current is None:
        raise UnknownAppointment(f"no appointment {command.appointment_id}")
    if current.status not in OPEN_STATUSES:
        raise TransitionNotAllowed(
            f"appointment {current.appointment_id} is {current.status.value}; it accepts no more changes"
        )
    match command:
        case RescheduleAppointment():
            return _reschedule(current, command, now)
        case CancelAppointment(cancelled_by=cancelled_by):
            cancelled = _advance(current, AppointmentStatus.CANCELLED)
            return Decision(
                cancelled, AppointmentCancelled(**_envelope(cancelled, now), cancelled_by=cancelled_by)
            )
        case CompleteAppointment(completed_at=completed_at, needled_near_chest=near_chest):
            completed = _advance(current, AppointmentStatus.COMPLETED)
            event = AppointmentCompleted(
                **_envelope(completed, now),
                completed_at=completed_at or now,
                needled_near_chest=near_chest,
            )
            return Decision(completed, event)
        case RecordNoShow():
            no_show = _advance(current, AppointmentStatus.NO_SHOW)
            return Decision(no_show, AppointmentNoShow(**_envelope(no_show, now)))
    raise TypeError(f"unknown command {type(command).__name__}")


def _refuse_a_past_start(starts_at: datetime, now: datetime, field: str) -> None:
    if starts_at < now - START_GRACE:
        minutes = int(START_GRACE.total_seconds() // 60)
        raise InvalidField(
            field,
            f"starts in the past; a start up to {minutes} minutes ago is accepted for clock skew, no earlier",
        )


def _reschedule(current: Appointment, command: RescheduleAppointment, now: datetime) -> Decision:
    _refuse_a_past_start(command.starts_at, now, "starts_at")
    old = current.details
    new = AppointmentDetails.model_validate(
        {
            **old.model_dump(),
            "starts_at": command.starts_at,
            "duration_minutes": command.duration_minutes or old.duration_minutes,
            "practitioner": command.practitioner or old.practitioner,
            "location_id": command.location_id or old.location_id,
        }
    )
    # A "reschedule" that moves nothing is almost always a client bug or a blind retry;
    # publishing it would make the notifier re-send reminders for nothing.
    if new == old:
        raise NothingToChange(f"appointment {current.appointment_id} already has these details")
    moved = replace(_advance(current, AppointmentStatus.RESCHEDULED), details=new)
    event = AppointmentRescheduled(**_envelope(moved, now), previous_starts_at=old.starts_at)
    return Decision(moved, event)


def _advance(current: Appointment, status: AppointmentStatus) -> Appointment:
    return replace(current, status=status, sequence=current.sequence + 1)


def _envelope(appointment: Appointment, now: datetime) -> dict[str, object]:
    return {
        "occurred_at": now,
        "appointment_id": appointment.appointment_id,
        "sequence": appointment.sequence,
        "location_id": appointment.details.location_id,
        "patient": appointment.patient,
        "appointment": appointment.details,
    }
