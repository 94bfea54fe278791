"""What a delivery remembers of its appointment, so it can be rendered later without a lookup."""
from __future__ import annotations

from typing import Any

from shared.events.appointment import (
    AppointmentCancelled,
    AppointmentRescheduled,
    EventEnvelope,
)


def appointment_context(event: EventEnvelope, **extra: Any) -> dict[str, Any]:
    appointment = event.appointment
    return {
        "patient": {"first_name": event.patient.first_name, "time_zone": event.patient.time_zone},
        "appointment": {
            "id": event.appointment_id,
            "type": appointment.type.value,
            "starts_at": appointment.starts_at.isoformat(),
            "ends_at": appointment.ends_at.isoformat(),
            "duration_minutes": appointment.duration_minutes,
            "practitioner": appointment.practitioner,
            "location_id": appointment.location_id,
            "sequence": event.sequence,
        },
        "previous_starts_at": (
            event.previous_starts_at.isoformat() if isinstance(event, AppointmentRescheduled) else None
        ),
        "cancelled_by": event.cancelled_by if isinstance(event, AppointmentCancelled) else None,
        "extra": extra,
    }


def with_extra(context: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The same appointment's context with other `extra`s: what it says of the appointment is shared with
    `context`, not made again (a visit's check-in rounds each have their own extras). A context is
    written to the ledger as it is and never changed, so the sharing cannot show."""
    return {**context, "extra": extra}
