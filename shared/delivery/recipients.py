"""Which channels may carry a message to a patient."""
from __future__ import annotations

from shared.events.patient import PatientContact


def reachable_channels(patient: PatientContact) -> dict[str, str]:
    """Channel → address, for the channels the patient has an address for and agreed to."""
    channels: dict[str, str] = {}
    if patient.email and patient.consent.email:
        channels["email"] = str(patient.email)
    if patient.phone and patient.consent.sms:
        channels["sms"] = patient.phone
    return channels
