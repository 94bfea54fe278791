"""The notifier's dispatcher against a real SMTP server and the Twilio sandbox: sends once, retries what is
transient."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar
from pydantic import SecretStr

from sandbox.smtp_sink import SmtpSink
from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings
from services.notifier.tables import SCHEMA as NOTIFIER_SCHEMA
from shared.clinic_config import load_clinic_config
from shared.clock import FixedClock
from shared.database import create_tables
from shared.delivery.context import appointment_context
from shared.delivery.dispatcher import Dispatcher
from shared.ledger.model import DeliveryIntent
from shared.settings import DeliverySettings, SmtpSettings, TwilioSettings
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER, start_twilio_sandbox
from tests.support.events import booked, in_hours, patient

CLINIC = load_clinic_config(Path(__file__).resolve().parents[2] / "deploy" / "clinic.yaml")
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def twilio():
    sandbox = start_twilio_sandbox()
    yield sandbox
    sandbox.server.stop()


def notifier_settings(tmp_path: Path, sink: SmtpSink, twilio) -> NotifierSettings:  # type: ignore[no-untyped-def]
    """The notifier's real channels, pointed at the SMTP sink and the Twilio sandbox."""
    return NotifierSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/dispatch.db",
        delivery=DeliverySettings(
            link_secret="a-test-secret-of-at-least-32-bytes",
            retry_first_delay_seconds=10,
            retry_max_attempts=3,
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port,
                              sender="Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>"),
            twilio=TwilioSettings(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN),
                                  from_number=CLINIC_NUMBER, api_base_url=twilio.url),
        ),
    )


@pytest.fixture
async def setup(tmp_path: Path, sink: SmtpSink, twilio):  # type: ignore[no-untyped-def]
    clock = FixedClock(NOW)
    notifier = bootstrap.build(notifier_settings(tmp_path, sink, twilio), clock=clock)
    await create_tables(notifier.engine, NOTIFIER_SCHEMA)
    yield notifier.dispatcher, clock
    await bootstrap.close(notifier)


async def record_confirmation(dispatcher: Dispatcher, email: str, phone: str, starts_in_hours: float = 48,
                              step: str = "confirmation", expires_at: datetime | None = None) -> None:
    event = booked("apt-" + phone[-4:], in_hours(starts_in_hours, NOW), who=patient(email=email, phone=phone))
    intents = [
        DeliveryIntent(event.appointment_id, step, channel, 1, "confirmation", address, "en-CA", NOW,
                       appointment_context(event), expires_at)
        for channel, address in (("email", email), ("sms", phone))
    ]
    async with dispatcher.ledger.engine.begin() as connection:
        await dispatcher.ledger.record(connection, intents, NOW)


async def statuses(dispatcher: Dispatcher) -> dict[str, int]:
    return await dispatcher.ledger.counts_by_status()


async def test_a_confirmation_arrives_once_by_email_with_its_calendar_invitation_and_by_sms(setup, sink, twilio) -> None:  # type: ignore[no-untyped-def]
    dispatcher, _ = setup
    await record_confirmation(dispatcher, "d1@example.com", "+14165550131")
    assert await dispatcher.dispatch_due() == 2
    assert await dispatcher.dispatch_due() == 0
    [mail] = [m for m in sink.messages if "d1@example.com" in m.recipients]
    assert "confirmed" in mail.message["Subject"].lower()
    [calendar_part] = [p for p in mail.message.walk() if p.get_content_type() == "text/calendar"]
    event = Calendar.from_ical(calendar_part.get_payload(decode=True)).walk("VEVENT")[0]
    assert event.decoded("dtstart") == in_hours(48, NOW)
    [sms] = twilio.messages("+14165550131")
    assert "dry needling" not in sms["body"].lower() and "STOP" in sms["body"]
    assert await statuses(dispatcher) == {"sent": 2}


async def test_an_smtp_outage_is_retried_later_and_the_email_arrives_once(setup, sink) -> None:  # type: ignore[no-untyped-def]
    dispatcher, clock = setup
    sink.fail_next(1, code=451)
    await record_confirmation(dispatcher, "d2@example.com", "+14165550132")
    await dispatcher.dispatch_due()
    assert not [m for m in sink.messages if "d2@example.com" in m.recipients]
    assert await dispatcher.dispatch_due() == 0  # not before its backoff
    clock.advance(timedelta(seconds=10))
    assert await dispatcher.dispatch_due() == 1
    assert len([m for m in sink.messages if "d2@example.com" in m.recipients]) == 1
    assert await statuses(dispatcher) == {"sent": 2}


async def test_twilio_rate_limiting_is_retried(setup, twilio) -> None:  # type: ignore[no-untyped-def]
    dispatcher, clock = setup
    twilio.inject_fault(20429, 429, to="+14165550133")
    await record_confirmation(dispatcher, "d3@example.com", "+14165550133")
    await dispatcher.dispatch_due()
    assert twilio.messages("+14165550133") == []
    clock.advance(timedelta(seconds=10))
    await dispatcher.dispatch_due()
    assert len(twilio.messages("+14165550133")) == 1


@pytest.mark.parametrize("code", [21610, 21211])
async def test_a_permanent_twilio_refusal_is_recorded_and_not_retried(setup, twilio, code: int) -> None:  # type: ignore[no-untyped-def]
    dispatcher, clock = setup
    phone = f"+1416555{code % 10000:04d}"
    twilio.inject_fault(code, 400, to=phone)
    await record_confirmation(dispatcher, f"d{code}@example.com", phone)
    await dispatcher.dispatch_due()
    clock.advance(timedelta(hours=1))
    assert await dispatcher.dispatch_due() == 0
    assert await statuses(dispatcher) == {"sent": 1, "failed": 1}
    assert await dispatcher.suppressions.is_suppressed("sms", phone) is (code == 21610)


async def test_retries_give_up_after_the_last_attempt(setup, sink) -> None:  # type: ignore[no-untyped-def]
    dispatcher, clock = setup
    sink.fail_next(3, code=451)
    await record_confirmation(dispatcher, "d5@example.com", "+14165550135")
    for _ in range(4):
        await dispatcher.dispatch_due()
        clock.advance(timedelta(minutes=5))
    assert await statuses(dispatcher) == {"sent": 1, "failed": 1}


async def test_a_reminder_due_after_the_appointment_started_is_skipped(setup, twilio) -> None:  # type: ignore[no-untyped-def]
    dispatcher, _ = setup
    await record_confirmation(dispatcher, "d6@example.com", "+14165550136", step="reminder_2h",
                              expires_at=NOW - timedelta(minutes=1))
    await dispatcher.dispatch_due()
    assert twilio.messages("+14165550136") == []
    assert await statuses(dispatcher) == {"skipped": 2}


async def test_an_opted_out_number_gets_nothing(setup, twilio) -> None:  # type: ignore[no-untyped-def]
    dispatcher, _ = setup
    await dispatcher.suppressions.suppress("sms", "+14165550137", "sms_keyword", NOW)
    await record_confirmation(dispatcher, "d7@example.com", "+14165550137")
    await dispatcher.dispatch_due()
    assert twilio.messages("+14165550137") == []
    assert await statuses(dispatcher) == {"sent": 1, "skipped": 1}


async def test_operators_see_the_ledger_by_status_in_the_metrics(setup) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import REGISTRY

    dispatcher, _ = setup
    await record_confirmation(dispatcher, "d8@example.com", "+14165550138")
    await dispatcher.report_backlog()
    pending = REGISTRY.get_sample_value("clinic_notify_ledger_messages", {"service": "notifier", "status": "pending"})
    await dispatcher.dispatch_due()
    await dispatcher.report_backlog()
    sent = REGISTRY.get_sample_value("clinic_notify_ledger_messages", {"service": "notifier", "status": "sent"})
    assert (pending, sent) == (2, 2)
