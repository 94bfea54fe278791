"""Event contract v1: what the booking service publishes about appointments."""
from shared.events.appointment import (
    APPOINTMENT_EVENT_TYPES,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentEvent,
    AppointmentNoShow,
    AppointmentRescheduled,
    parse_appointment_event,
)
from shared.events.patient import ChannelConsent, Locale, PatientContact

__all__ = [
    "APPOINTMENT_EVENT_TYPES",
    "AppointmentBooked",
    "AppointmentCancelled",
    "AppointmentCompleted",
    "AppointmentEvent",
    "AppointmentNoShow",
    "AppointmentRescheduled",
    "ChannelConsent",
    "Locale",
    "PatientContact",
    "parse_appointment_event",
]
