"""What the notifier knows of one appointment: the last event it applied."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AppointmentState:
    appointment_id: str
    last_sequence: int
    status: str  # booked, cancelled, no_show, completed
    event: dict[str, Any]  # the last applied event, as published
