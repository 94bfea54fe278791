"""Messages to the on-call clinician: pure, the handlers record them in the delivery ledger."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shared.clinic_config import ClinicConfig
from shared.ledger.model import DeliveryIntent

STAFF_LOCALE = "en-CA"


def to_on_call(clinic: ClinicConfig, *, appointment_id: str, step: str, template: str, channels: Iterable[str],
               context: dict[str, Any], now: datetime) -> tuple[DeliveryIntent, ...]:
    """The same message to the on-call clinician on each of `channels`, due now."""
    on_call = clinic.aftercare.on_call
    addresses = {"email": str(on_call.email), "sms": on_call.phone}
    return tuple(
        DeliveryIntent(appointment_id=appointment_id, step=step, channel=channel, appointment_version=0,
                       template=template, recipient=addresses[channel], locale=STAFF_LOCALE, due_at=now,
                       context=context)
        for channel in ("email", "sms") if channel in channels
    )


def unmatched_context(clinic: ClinicConfig) -> dict[str, Any]:
    """The context of a text that answers no check-in: nothing known but the clinic's time zone."""
    return {"patient": {"first_name": "", "time_zone": clinic.clinic.time_zone}}
