"""The link to the pre-visit screening form, written by the notifier and read by aftercare.

The token is encrypted like every patient link (`PatientLinks`, its own key) and carries all aftercare
needs to serve the form and route the answers: the appointment id, the patient's language, the
appointment type, the practitioner, the location and the start. No lookup, no login. The link is
valid until the appointment starts: after that the practitioner has seen the patient.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clinic_config import ClinicConfig
from shared.links import InvalidLink, PatientLinks

SCREENING_PURPOSE = "screening"
# The token's age is bounded by the appointment's start; this only refuses a token older than any booking.
LONGEST_LEAD_TIME = timedelta(days=400)


@dataclass(frozen=True)
class ScreeningClaims:
    appointment_id: str
    locale: str
    appointment_type: str
    practitioner: str
    location_id: str
    starts_at: datetime

    def payload(self) -> dict[str, Any]:
        return {"appointment": self.appointment_id, "locale": self.locale, "type": self.appointment_type,
                "practitioner": self.practitioner, "location": self.location_id,
                "starts_at": self.starts_at.isoformat()}


def screening_token(links: PatientLinks, claims: ScreeningClaims, issued_at: datetime | None = None) -> str:
    return links.encrypt_token(SCREENING_PURPOSE, claims.payload(), issued_at)


def screening_url(links: PatientLinks, claims: ScreeningClaims) -> str:
    return f"{links.base_url.rstrip('/')}/screening/{screening_token(links, claims)}"


def read_screening_token(links: PatientLinks, token: str, now: datetime) -> ScreeningClaims:
    """The claims of a screening token; `InvalidLink("expired")` once the appointment has started."""
    payload = links.decrypt_token(SCREENING_PURPOSE, token, LONGEST_LEAD_TIME)
    try:
        claims = ScreeningClaims(
            appointment_id=str(payload["appointment"]), locale=str(payload["locale"]),
            appointment_type=str(payload["type"]), practitioner=str(payload["practitioner"]),
            location_id=str(payload["location"]), starts_at=datetime.fromisoformat(str(payload["starts_at"])),
        )
    except (KeyError, ValueError):
        raise InvalidLink("invalid") from None
    if claims.starts_at.tzinfo is None:
        raise InvalidLink("invalid")
    if now >= claims.starts_at:
        raise InvalidLink("expired")
    return claims


def screening_link(links: PatientLinks, clinic: ClinicConfig, stored: dict[str, Any], locale: str) -> str | None:
    """The form's link for a message about this appointment; None when its type asks no questions."""
    appointment = stored.get("appointment") or {}
    appointment_type = str(appointment.get("type", ""))
    if not appointment.get("id") or not appointment.get("starts_at") or not clinic.screening.questions_for(
        appointment_type
    ):
        return None
    return screening_url(links, ScreeningClaims(
        appointment_id=str(appointment["id"]), locale=locale, appointment_type=appointment_type,
        practitioner=str(appointment.get("practitioner", "")), location_id=str(appointment.get("location_id", "")),
        starts_at=datetime.fromisoformat(str(appointment["starts_at"])),
    ))
