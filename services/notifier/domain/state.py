"""What the notifier knows of one appointment: the last event it applied."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppointmentVersion:
    """What the rules read of an appointment: how far its events were applied, and where that left it."""

    appointment_id: str
    last_sequence: int
    status: str  # booked, cancelled, no_show, completed


@dataclass(frozen=True)
class AppointmentState(AppointmentVersion):
    event: str  # the last applied event, as published (JSON)
