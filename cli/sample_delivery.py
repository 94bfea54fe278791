"""A ledger row for a made-up patient, so a preview goes through the same composer as a real send."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.delivery.context import appointment_context
from shared.events.appointment import AppointmentEvent
from shared.ledger.model import Delivery, DeliveryStatus
from shared.templates.sample import sample_context

SAMPLE_RECIPIENTS = {"email": "alex.tremblay@example.com", "sms": "+14165550123"}


def sample_delivery(
    template: str, channel: str, locale: str, appointment_type: str, starts_at: datetime | None
) -> Delivery:
    context = sample_context(appointment_type, locale, template, starts_at)
    if context["links"]["check_in"] is not None:
        # The composer signs check-in links from this id, as it does for a real check-in.
        context["extra"] = {**context["extra"], "check_in_id": f"preview-{template}"}
    return _delivery(template, channel, locale, context, SAMPLE_RECIPIENTS[channel])


def delivery_for_event(template: str, channel: str, event: AppointmentEvent) -> Delivery:
    """The message a given appointment event would produce, in its patient's language."""
    sample = sample_context(event.appointment.type.value, event.patient.locale, template)
    extra = sample["extra"] | {"patient_name": event.patient.name, "patient_phone": event.patient.phone}
    if sample["links"]["check_in"] is not None:
        extra["check_in_id"] = f"preview-{template}"
    context = appointment_context(event) | {"extra": extra}
    address = str(event.patient.email) if channel == "email" else event.patient.phone
    return _delivery(template, channel, event.patient.locale, context, address or SAMPLE_RECIPIENTS[channel])


def _delivery(template: str, channel: str, locale: str, context: dict[str, Any], recipient: str) -> Delivery:
    now = datetime.now(UTC)
    return Delivery(
        id="preview",
        appointment_id=context["appointment"]["id"],
        step="preview",
        channel=channel,
        appointment_version=1,
        template=template,
        recipient=recipient,
        locale=locale,
        context=context,
        scheduled_for=now,
        due_at=now,
        expires_at=None,
        status=DeliveryStatus.PENDING,
        attempts=0,
        sent_at=None,
        reason=None,
        error_code=None,
        provider_id=None,
    )
