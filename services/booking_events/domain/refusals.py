"""Refusals: commands the appointment's current state does not allow."""
from __future__ import annotations


class AppointmentRefusal(Exception):
    """A command the appointment's current state does not allow."""

    code = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownAppointment(AppointmentRefusal):
    code = "appointment_not_found"


class AppointmentAlreadyBooked(AppointmentRefusal):
    code = "appointment_already_booked"


class TransitionNotAllowed(AppointmentRefusal):
    code = "transition_not_allowed"


class NothingToChange(AppointmentRefusal):
    code = "nothing_to_change"


class InvalidField(AppointmentRefusal):
    """A field the request's schema allows but the clinic's rules do not (a past start, an unknown location)."""

    code = "validation_failed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
