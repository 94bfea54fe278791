"""Turning planned messages of an appointment into intents for the delivery ledger."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shared.delivery.fallback import fallback_address
from shared.events.appointment import EventEnvelope
from shared.ledger.model import DeliveryIntent
from shared.scheduling.plan import PlannedMessage


def intents_for(
    event: EventEnvelope,
    planned: Iterable[PlannedMessage],
    addresses: Mapping[str, str],
    context: dict[str, Any],
    expires_at: datetime | None = None,
) -> tuple[DeliveryIntent, ...]:
    """One intent per planned message, to the patient's address on its channel, in their language,
    with their address on the other channel if they agreed to it (for a fallback)."""
    return tuple(
        DeliveryIntent(
            appointment_id=event.appointment_id,
            step=message.step,
            channel=message.channel,
            appointment_version=event.sequence,
            template=message.template,
            recipient=addresses[message.channel],
            locale=event.patient.locale,
            due_at=message.due_at,
            context=context,
            expires_at=expires_at,
            fallback_recipient=fallback_address(addresses, message.channel),
        )
        for message in planned
    )
