"""Which reminder texts reached the patient, as the notifier reports them on clinic.deliveries.v1. Pure.

The notifier publishes every outcome of every message it sends (`DeliveryStatusChanged`): no address, no
body, only which message of which appointment and what became of it. Aftercare reads the reminders among
them, so that a patient's text is read against the reminder they really got (`reminder_replies.py`):

- A reminder text is a notifier message of the `reminder` template on the SMS channel (an SMS standing in
  for an undeliverable reminder email included). Aftercare's own messages, emails and other templates say
  nothing about reminders.
- The dispatcher's `sent` (the provider took it), or the provider's `sent` or `delivered`, records it as
  sent at the time of the first such report.
- The provider's `undelivered`, `failed` or `canceled` withdraws it: the patient never got it, and it is
  no context for their texts.
- A reminder the dispatcher skipped (expired, opted out, a landline) or failed never went out, and one
  cancelled before it went out is not published: neither is ever recorded.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events.deliveries import DeliveryStatusChanged

SENDING_SERVICE = "notifier"
REMINDER_TEMPLATE = "reminder"
REACHED = frozenset({"sent", "delivered"})  # from the dispatcher (sent) or the provider
NOT_REACHED = frozenset({"undelivered", "failed", "canceled"})  # as the provider reports them


@dataclass(frozen=True)
class ReminderReport:
    """What one delivery report says of a reminder text."""

    delivery_id: str  # the message's row in the notifier's ledger
    appointment_id: str
    step: str
    at: datetime
    reached: bool  # False: the carrier could not deliver it


def reminder_report(event: DeliveryStatusChanged) -> ReminderReport | None:
    """The report of a reminder text, or None when the event is about another message or changes nothing."""
    if (event.service, event.template, event.channel) != (SENDING_SERVICE, REMINDER_TEMPLATE, "sms"):
        return None
    if event.status in REACHED:
        return ReminderReport(event.delivery_id, event.appointment_id, event.step, event.occurred_at, reached=True)
    if event.source == "provider" and event.status in NOT_REACHED:
        return ReminderReport(event.delivery_id, event.appointment_id, event.step, event.occurred_at, reached=False)
    return None
