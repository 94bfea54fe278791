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
