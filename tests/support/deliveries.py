"""A ledger row as the dispatcher holds it after a claim, made from the intent the rules recorded."""
from __future__ import annotations

from shared.ledger.model import Delivery, DeliveryIntent, DeliveryStatus


def claimed(intent: DeliveryIntent, delivery_id: str = "d-1") -> Delivery:
    return Delivery(
        id=delivery_id, appointment_id=intent.appointment_id, step=intent.step, channel=intent.channel,
        appointment_version=intent.appointment_version, template=intent.template, recipient=intent.recipient,
        locale=intent.locale, context=intent.context, scheduled_for=intent.due_at, due_at=intent.due_at,
        expires_at=intent.expires_at, status=DeliveryStatus.SENDING, attempts=0, sent_at=None, reason=None,
        error_code=None, provider_id=None,
    )
