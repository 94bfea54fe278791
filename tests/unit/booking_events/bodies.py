"""What a booking system sends the booking API in these tests (fake patients, example.com, 555 numbers)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

API_KEY = "test-key-1"
NOW = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
PHONE = "+14165550123"


def booking(**changes: Any) -> dict[str, Any]:
    """A valid booking; `patient__name="..."` changes one field, `appointment_id="..."` a top-level one."""
    body: dict[str, Any] = {
        "patient": {
            "patient_id": "pat_1",
            "name": "Maya Singh",
            "email": "maya@example.com",
            "phone": PHONE,
            "consent": {"email": True, "sms": True},
        },
        "appointment": {
            "type": "dry_needling",
            "starts_at": "2025-03-10T10:00:00-04:00",
            "duration_minutes": 45,
            "practitioner": "Dr. Chen",
            "location_id": "downtown",
        },
    }
    for path, value in changes.items():
        section, _, field = path.partition("__")
        if field:
            body[section][field] = value
        else:
            body[section] = value
    return body
