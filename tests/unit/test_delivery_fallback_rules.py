"""Which provider status a message keeps, and when a message goes by the other channel instead."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.channels.messages import PermanentDeliveryError, TransientDeliveryError
from shared.channels.sms import classify_twilio_error
from shared.delivery.fallback import fallback_address, fallback_channel, fallback_step, is_landline
from shared.events.deliveries import DeliveryStatusChanged
from shared.ledger.model import Delivery, DeliveryStatus
from shared.ledger.provider_status import is_further

NOW = datetime(2031, 3, 14, 13, 30, tzinfo=UTC)


def delivery(channel: str = "sms", template: str = "reminder", fallback: str | None = "alex@example.com",
             fallback_of: str | None = None) -> Delivery:
    return Delivery(
        id="d-1", appointment_id="apt-1", step="reminder_24h", channel=channel, appointment_version=1,
        template=template, recipient="+14165550123" if channel == "sms" else "alex@example.com", locale="en-CA",
        context={}, scheduled_for=NOW, due_at=NOW, expires_at=None, status=DeliveryStatus.SENT, attempts=1,
        sent_at=NOW, reason=None, error_code=None, provider_id="SM1", fallback_recipient=fallback,
        fallback_of=fallback_of,
    )


@pytest.mark.parametrize(("recorded", "reported", "moves"), [
    (None, "queued", True),
    ("queued", "sent", True),
    ("sent", "delivered", True),
    ("delivered", "sent", False),  # a late "sent" after "delivered"
    ("delivered", "delivered", False),  # the same callback again
    ("sent", "queued", False),
    ("sending", "sending", False),
    ("sent", "undelivered", True),
    ("undelivered", "delivered", False),  # undelivered is final
    ("failed", "sent", False),
    ("delivered", "undelivered", False),
    (None, "receiving", False),  # not a status of an outbound message we track
])
def test_the_furthest_provider_status_is_kept(recorded: str | None, reported: str, moves: bool) -> None:
    assert is_further(reported, recorded) is moves


@pytest.mark.parametrize("code", ["30003", "30005", "30006"])
def test_an_sms_undelivered_because_the_handset_or_number_cannot_take_it_goes_by_email(code: str) -> None:
    assert fallback_channel(delivery(), status="undelivered", error_code=code) == "email"
    assert fallback_channel(delivery(), status="failed", error_code=code) == "email"


@pytest.mark.parametrize(("status", "code"), [
    ("undelivered", "30007"),  # carrier filtering: the message, not the channel, is the problem
    ("delivered", None),
    ("sent", None),
    ("failed", "21610"),
])
def test_other_sms_outcomes_do_not_fall_back(status: str, code: str | None) -> None:
    assert fallback_channel(delivery(), status=status, error_code=code) is None


def test_an_sms_to_a_landline_skipped_by_the_dispatcher_goes_by_email() -> None:
    assert fallback_channel(delivery(), status="skipped", error_code=None, reason="landline") == "email"
    assert fallback_channel(delivery(), status="skipped", error_code=None, reason="opted_out") is None


def test_an_email_refused_for_good_goes_by_sms_but_not_one_refused_for_now() -> None:
    email = delivery(channel="email", fallback="+14165550123")
    assert fallback_channel(email, status="failed", error_code="550") == "sms"
    assert fallback_channel(email, status="failed", error_code="451") is None
    assert fallback_channel(email, status="sent", error_code=None) is None


def test_no_fallback_without_consent_to_the_other_channel_for_staff_or_for_a_fallback_itself() -> None:
    assert fallback_channel(delivery(fallback=None), status="undelivered", error_code="30003") is None
    assert fallback_channel(delivery(template="staff_escalation_page"), status="undelivered",
                            error_code="30003") is None
    assert fallback_channel(delivery(fallback_of="d-0"), status="undelivered", error_code="30003") is None


def test_the_fallback_address_is_the_other_channel_among_those_the_patient_agreed_to() -> None:
    assert fallback_address({"sms": "+14165550123", "email": "alex@example.com"}, "sms") == "alex@example.com"
    assert fallback_address({"sms": "+14165550123"}, "sms") is None
    assert fallback_address({"sms": "+14165550123", "email": "alex@example.com"}, "email") == "+14165550123"
    assert fallback_step("reminder_24h") == "reminder_24h:fallback"


@pytest.mark.parametrize(("phone", "landline"), [
    ("+442079460000", True),  # a London fixed line
    ("+33142685300", True),  # a Paris fixed line
    ("+14165550123", False),  # North American numbers are fixed line or mobile: never judged a landline
    ("+447700900123", False),  # a UK mobile
    ("not a number", False),
])
def test_a_landline_is_a_number_of_fixed_line_type_only(phone: str, landline: bool) -> None:
    assert is_landline(phone) is landline


@pytest.mark.parametrize("code", [30003, 30005, 30007])
def test_twilio_delivery_errors_answered_on_a_create_are_not_retried(code: int) -> None:
    """Twilio reports them by status callback; a create answered with one is not a retry case."""
    assert isinstance(classify_twilio_error(400, code), PermanentDeliveryError)


def test_the_create_time_codes_keep_their_meaning() -> None:
    assert isinstance(classify_twilio_error(429, 20429), TransientDeliveryError)
    assert isinstance(classify_twilio_error(400, 21610), PermanentDeliveryError)
    assert isinstance(classify_twilio_error(400, 21211), PermanentDeliveryError)


def test_a_delivery_status_event_carries_no_address_and_no_body() -> None:
    event = DeliveryStatusChanged(occurred_at=NOW, appointment_id="apt-1", delivery_id="d-1", service="notifier",
                                  step="reminder_24h", channel="sms", template="reminder", source="provider",
                                  status="undelivered", error_code="30003", fallback_channel="email")
    fields = set(DeliveryStatusChanged.model_fields)
    assert not fields & {"recipient", "to", "phone", "email", "address", "body", "text", "fallback_recipient"}
    assert "+1416" not in event.model_dump_json() and "@" not in event.model_dump_json()
