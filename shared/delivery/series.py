"""A treatment plan's confirmation: what the ledger records once for all the plan's sessions.

Its context is built from what every booking of the plan carries alike (the plan's sessions, the
patient, the appointment's type, practitioner and place), so it is the same whichever session's
booking records it first.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from shared.delivery.context import appointment_context
from shared.events.appointment import EventEnvelope

SERIES_CONFIRMATION: Final = "series_confirmation"
# A plan's sessions are booked together: each is at its first version when the plan is confirmed.
BOOKED_SEQUENCE: Final = 1


def series_ledger_id(series_id: str) -> str:
    """The ledger's key for messages about a whole plan; never an appointment id (prefixed)."""
    return f"series:{series_id}"


def series_confirmation_context(event: EventEnvelope) -> dict[str, Any]:
    """The appointment context of the plan's first standing session, plus every standing session."""
    assert event.series is not None
    duration = timedelta(minutes=event.appointment.duration_minutes)
    sessions = [
        {
            "appointment_id": session.appointment_id,
            "session_number": session.session_number,
            "starts_at": session.starts_at.isoformat(),
            "ends_at": (session.starts_at + duration).isoformat(),
            "sequence": BOOKED_SEQUENCE,
        }
        for session in sorted(event.series.sessions, key=lambda s: (s.starts_at, s.session_number))
        if not session.cancelled
    ]
    context = appointment_context(event)
    first = sessions[0]
    context["appointment"] = {
        **context["appointment"],
        "id": first["appointment_id"],
        "starts_at": first["starts_at"],
        "ends_at": first["ends_at"],
        "sequence": BOOKED_SEQUENCE,
    }
    context["series"] = {
        "series_id": event.series.series_id,
        "session_count": event.series.session_count,
        "sessions": sessions,
    }
    return context
