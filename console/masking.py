"""What the console shows of patient data: enough to recognise, not enough to read."""
from __future__ import annotations

import json
import re
from typing import Any

HIDDEN = "•••"
# Fields of our events that say what happened, not to whom.
SHOWN_FIELDS = frozenset({
    "event_type", "event_id", "schema_version", "sequence", "appointment_id", "occurred_at", "type", "locale",
    "starts_at", "ends_at", "duration_minutes", "location_id", "status", "channel", "source", "subscribed",
    "reason", "round", "rounds",
})
_PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def mask_phone(phone: str) -> str:
    """+14165550123 -> +1416•••0123"""
    digits = phone.strip()
    return f"{digits[:5]}{HIDDEN}{digits[-4:]}" if len(digits) > 9 else HIDDEN


def mask_email(email: str) -> str:
    """alex@example.com -> a•••@example.com"""
    local, _, domain = email.strip().rpartition("@")
    return f"{local[:1]}{HIDDEN}@{domain}" if local else HIDDEN


def mask_address(address: str) -> str:
    return mask_email(address) if "@" in address else mask_phone(address)


def _mask(value: Any, field: str | None) -> Any:
    if isinstance(value, dict):
        return {name: _mask(inner, str(name)) for name, inner in value.items()}
    if isinstance(value, list):
        return [_mask(inner, field) for inner in value]
    if isinstance(value, str):
        if _EMAIL.match(value):
            return mask_email(value)
        if _PHONE.match(value):
            return mask_phone(value)
        return value if field in SHOWN_FIELDS else HIDDEN
    return value


def masked_body(value: bytes | None, limit: int = 1200) -> str:
    """A dead letter's body with every address masked and every other free text hidden."""
    if value is None:
        return "(no value)"
    try:
        parsed = json.loads(value)
    except ValueError:
        return f"({len(value)} bytes, not JSON: hidden)"
    shown = json.dumps(_mask(parsed, None), ensure_ascii=False, indent=1)
    return shown if len(shown) <= limit else shown[:limit] + " …"
