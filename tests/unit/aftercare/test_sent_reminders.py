"""Which of the notifier's delivery reports say a reminder text reached the patient, or did not."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.aftercare.domain.sent_reminders import ReminderReport, reminder_report
from shared.events.deliveries import DeliveryStatusChanged

AT = datetime(2026, 6, 9, 14, 0, tzinfo=UTC)


def report(**changes: Any) -> DeliveryStatusChanged:
    fields: dict[str, Any] = dict(occurred_at=AT, appointment_id="apt-1", delivery_id="d-1", service="notifier",
                                  step="reminder_24h", channel="sms", template="reminder", source="dispatcher",
                                  status="sent")
    return DeliveryStatusChanged(**(fields | changes))


@pytest.mark.parametrize(("source", "status"), [("dispatcher", "sent"), ("provider", "sent"),
                                                 ("provider", "delivered")])
def test_a_reminder_text_the_provider_took_or_delivered_reached_the_patient(source: str, status: str) -> None:
    assert reminder_report(report(source=source, status=status)) == ReminderReport(
        "d-1", "apt-1", "reminder_24h", AT, reached=True)


@pytest.mark.parametrize("status", ["undelivered", "failed", "canceled"])
def test_a_reminder_text_the_carrier_could_not_deliver_did_not(status: str) -> None:
    found = reminder_report(report(source="provider", status=status, error_code="30003"))
    assert found is not None and not found.reached


@pytest.mark.parametrize("changes", [
    {"status": "skipped", "reason": "expired"},  # never went out
    {"status": "failed", "error_code": "21211"},  # refused by the provider: never went out
    {"source": "provider", "status": "queued"},  # on its way: says nothing yet
    {"channel": "email"},  # the patient's email, not their phone
    {"template": "confirmation", "step": "confirmation"},
    {"service": "aftercare", "template": "soreness_check_in"},  # aftercare's own texts are in its ledger
])
def test_other_reports_say_nothing_of_the_reminders_the_phone_got(changes: dict[str, Any]) -> None:
    assert reminder_report(report(**changes)) is None


def test_a_reminder_email_sent_again_as_a_text_is_a_reminder_text() -> None:
    found = reminder_report(report(step="reminder_24h:fallback", fallback_of="d-0"))
    assert found is not None and found.reached and found.step == "reminder_24h:fallback"
