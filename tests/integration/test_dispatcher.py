"""The notifier's dispatcher against a real SMTP server and the Twilio sandbox: sends once, retries what is
transient."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

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
from shared.templates.sample import sample_context
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER, mails_to, start_twilio_sandbox
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


def notifier_settings(tmp_path: Path, sink: SmtpSink, twilio, twilio_timeout: float = 10.0) -> NotifierSettings:
    """The notifier's real channels, pointed at the SMTP sink and the Twilio sandbox."""
    return NotifierSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/dispatch.db",
        delivery=DeliverySettings(
            link_secret="a-test-secret-of-at-least-32-bytes",
            retry_first_delay_seconds=10,
            retry_horizon_hours=1,
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port,
                              sender="Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>"),
            twilio=TwilioSettings(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN),
                                  from_number=CLINIC_NUMBER, api_base_url=twilio.url,
                                  request_timeout_seconds=twilio_timeout),
        ),
    )


@pytest.fixture
async def setup(tmp_path: Path, sink: SmtpSink, twilio):
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


async def test_a_confirmation_arrives_once_by_email_with_its_calendar_invitation_and_by_sms(
    setup,
    sink,
    twilio,
) -> None:
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


async def test_an_smtp_outage_is_retried_later_and_the_email_arrives_once(setup, sink) -> None:
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


async def test_twilio_rate_limiting_is_retried(setup, twilio) -> None:
    dispatcher, clock = setup
    twilio.inject_fault(20429, 429, to="+14165550133")
    await record_confirmation(dispatcher, "d3@example.com", "+14165550133")
    await dispatcher.dispatch_due()
    assert twilio.messages("+14165550133") == []
    clock.advance(timedelta(seconds=10))
    await dispatcher.dispatch_due()
    assert len(twilio.messages("+14165550133")) == 1


@pytest.mark.parametrize("code", [21610, 21211])
async def test_a_permanent_twilio_refusal_is_recorded_and_not_retried(setup, twilio, code: int) -> None:
    dispatcher, clock = setup
    phone = f"+1416555{code % 10000:04d}"
    twilio.inject_fault(code, 400, to=phone)
    await record_confirmation(dispatcher, f"d{code}@example.com", phone)
    await dispatcher.dispatch_due()
    clock.advance(timedelta(hours=1))
    assert await dispatcher.dispatch_due() == 0
    assert await statuses(dispatcher) == {"sent": 1, "failed": 1}
    assert await dispatcher.suppressions.is_suppressed("sms", phone) is (code == 21610)


async def test_an_smtp_outage_of_two_hours_delays_the_email_but_does_not_lose_it(setup, sink) -> None:
    dispatcher, clock = setup
    sink.fail_next(14, code=451)
    await record_confirmation(dispatcher, "d5@example.com", "+14165550135", expires_at=in_hours(48, NOW))
    for _ in range(16):
        await dispatcher.dispatch_due()
        clock.advance(timedelta(minutes=10))
    assert len(mails_to(sink, "d5@example.com")) == 1
    assert await statuses(dispatcher) == {"sent": 2}


async def test_retries_give_up_once_the_message_is_no_longer_useful(setup, sink) -> None:
    dispatcher, clock = setup
    sink.fail_next(100, code=451)
    await record_confirmation(dispatcher, "d9@example.com", "+14165550139", expires_at=NOW + timedelta(minutes=30))
    for _ in range(8):
        await dispatcher.dispatch_due()
        clock.advance(timedelta(minutes=5))
    sink.fail_next(0)
    assert await statuses(dispatcher) == {"sent": 1, "failed": 1}
    async with dispatcher.ledger.engine.connect() as connection:
        [email] = [d for d in await dispatcher.ledger.for_appointment(connection, "apt-0139") if d.channel == "email"]
    assert "no longer useful" in (email.reason or "")


async def test_refused_smtp_credentials_pause_email_without_using_up_the_message(setup, sink) -> None:
    from prometheus_client import REGISTRY

    dispatcher, clock = setup
    paused = {"service": "notifier", "channel": "email"}
    sink.fail_next(5, code=535, message="Authentication credentials invalid")
    await record_confirmation(dispatcher, "d10@example.com", "+14165550140", expires_at=in_hours(48, NOW))
    for _ in range(5):
        await dispatcher.dispatch_due()
        clock.advance(timedelta(minutes=10))
    assert REGISTRY.get_sample_value("clinic_notify_channel_paused", paused) == 1
    assert await statuses(dispatcher) == {"sent": 1, "pending": 1}
    async with dispatcher.ledger.engine.connect() as connection:
        [email] = [d for d in await dispatcher.ledger.for_appointment(connection, "apt-0140") if d.channel == "email"]
    assert email.attempts == 0  # the account was at fault, not the message
    await dispatcher.dispatch_due()  # the credentials work again
    assert len(mails_to(sink, "d10@example.com")) == 1
    assert REGISTRY.get_sample_value("clinic_notify_channel_paused", paused) == 0
    assert await statuses(dispatcher) == {"sent": 2}


async def test_a_reminder_due_after_the_appointment_started_is_skipped(setup, twilio) -> None:
    dispatcher, _ = setup
    await record_confirmation(dispatcher, "d6@example.com", "+14165550136", step="reminder_2h",
                              expires_at=NOW - timedelta(minutes=1))
    await dispatcher.dispatch_due()
    assert twilio.messages("+14165550136") == []
    assert await statuses(dispatcher) == {"skipped": 2}


async def test_an_opted_out_number_gets_nothing(setup, twilio) -> None:
    dispatcher, _ = setup
    await dispatcher.suppressions.suppress("sms", "+14165550137", "sms_keyword", NOW)
    await record_confirmation(dispatcher, "d7@example.com", "+14165550137")
    await dispatcher.dispatch_due()
    assert twilio.messages("+14165550137") == []
    assert await statuses(dispatcher) == {"sent": 1, "skipped": 1}


async def test_operators_see_the_ledger_by_status_in_the_metrics(setup) -> None:
    from prometheus_client import REGISTRY

    dispatcher, _ = setup
    await record_confirmation(dispatcher, "d8@example.com", "+14165550138")
    await dispatcher.report_backlog()
    pending = REGISTRY.get_sample_value("clinic_notify_ledger_messages", {"service": "notifier", "status": "pending"})
    await dispatcher.dispatch_due()
    await dispatcher.report_backlog()
    sent = REGISTRY.get_sample_value("clinic_notify_ledger_messages", {"service": "notifier", "status": "sent"})
    assert (pending, sent) == (2, 2)


async def wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_the_dispatcher_keeps_sending_after_the_database_was_unavailable(setup, sink) -> None:
    dispatcher, _ = setup
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        async with dispatcher.ledger.engine.begin() as connection:  # every ledger query now fails
            await connection.execute(text("ALTER TABLE deliveries RENAME TO deliveries_away"))
        await asyncio.sleep(2.5)
        async with dispatcher.ledger.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE deliveries_away RENAME TO deliveries"))
        await record_confirmation(dispatcher, "d11@example.com", "+14165550141")
        assert await wait_until(lambda: _counts_are(dispatcher, {"sent": 2}))
        assert not running.done()
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=15)
    assert len(mails_to(sink, "d11@example.com")) == 1


async def test_messages_claimed_just_before_the_database_failed_are_still_sent(setup, sink, monkeypatch) -> None:
    """The database goes away between a claim and the question that follows it (when is the next message
    due?): what was claimed is sent all the same, and the channel goes on taking new messages."""
    dispatcher, _ = setup
    asked = dispatcher.ledger.next_due_at
    failures: list[str] = []

    async def fails_once(channel: str) -> datetime | None:
        if not failures:
            failures.append(channel)
            raise OperationalError("SELECT min(due_at) ...", {}, ConnectionResetError("connection reset by peer"))
        return await asked(channel)

    monkeypatch.setattr(dispatcher.ledger, "next_due_at", fails_once)
    await record_confirmation(dispatcher, "d16@example.com", "+14165550174")
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        assert await wait_until(lambda: _counts_are(dispatcher, {"sent": 2})), await statuses(dispatcher)
        assert failures, "the question after the claim failed once"
        await record_confirmation(dispatcher, "d17@example.com", "+14165550175")
        dispatcher.wake()
        assert await wait_until(lambda: _counts_are(dispatcher, {"sent": 4})), await statuses(dispatcher)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=15)
    assert len(mails_to(sink, "d16@example.com")) == 1 and len(mails_to(sink, "d17@example.com")) == 1


async def _counts_are(dispatcher: Dispatcher, expected: dict[str, int]) -> bool:
    return await statuses(dispatcher) == expected


async def test_a_text_that_went_out_before_its_dispatcher_died_is_not_sent_again(setup, twilio) -> None:
    dispatcher, clock = setup
    await record_confirmation(dispatcher, "d12@example.com", "+14165550142")
    # A dispatcher claims the text, sends it and dies before recording it.
    [text_claim] = await dispatcher.ledger.claim_due(clock.now(), 10, timedelta(seconds=60), channel="sms")
    sid = await dispatcher.sms.send(dispatcher.composer.sms(text_claim))
    clock.advance(timedelta(seconds=61))
    await dispatcher.dispatch_due()
    assert [m["sid"] for m in twilio.messages("+14165550142")] == [sid]
    async with dispatcher.ledger.engine.connect() as connection:
        rows = await dispatcher.ledger.for_appointment(connection, "apt-0142")
    assert {(d.channel, d.status.value, d.provider_id if d.channel == "sms" else "") for d in rows} == {
        ("sms", "sent", sid), ("email", "sent", "")}


async def test_a_text_whose_dispatcher_died_before_sending_is_sent_once_and_counted(setup, twilio) -> None:
    from prometheus_client import REGISTRY

    dispatcher, clock = setup
    resends = {"service": "notifier", "channel": "sms"}
    before = REGISTRY.get_sample_value("clinic_notify_unknown_outcome_resends_total", resends) or 0
    await record_confirmation(dispatcher, "d13@example.com", "+14165550143")
    await dispatcher.ledger.claim_due(clock.now(), 10, timedelta(seconds=60), channel="sms")
    clock.advance(timedelta(seconds=61))
    await dispatcher.dispatch_due()
    assert len(twilio.messages("+14165550143")) == 1
    assert REGISTRY.get_sample_value("clinic_notify_unknown_outcome_resends_total", resends) == before + 1


async def test_a_text_whose_create_call_got_no_answer_is_looked_for_before_it_is_sent_again(
    tmp_path: Path, sink: SmtpSink, twilio
) -> None:
    """Twilio takes the text but its answer comes after the client gave up: the text went out, so the
    retry finds it in Twilio's Messages list and records it instead of texting the patient twice."""
    from prometheus_client import REGISTRY

    clock = FixedClock(NOW)
    notifier = bootstrap.build(notifier_settings(tmp_path, sink, twilio, twilio_timeout=0.5), clock=clock)
    await create_tables(notifier.engine, NOTIFIER_SCHEMA)
    dispatcher = notifier.dispatcher
    resends = {"service": "notifier", "channel": "sms"}
    before = REGISTRY.get_sample_value("clinic_notify_unknown_outcome_resends_total", resends) or 0
    try:
        await record_confirmation(dispatcher, "d16@example.com", "+14165550147")
        twilio.set_latency(1.5)
        try:
            await dispatcher.dispatch_due()
        finally:
            twilio.set_latency(0)
        [taken] = twilio.wait_for_messages("+14165550147", 1)  # Twilio had it all along
        clock.advance(timedelta(minutes=5))
        await dispatcher.dispatch_due()
        assert [m["sid"] for m in twilio.messages("+14165550147")] == [taken["sid"]]
        async with notifier.engine.connect() as connection:
            rows = await dispatcher.ledger.for_appointment(connection, "apt-0147")
        [sms_row] = [d for d in rows if d.channel == "sms"]
        assert (sms_row.status.value, sms_row.provider_id) == ("sent", taken["sid"])
        assert (REGISTRY.get_sample_value("clinic_notify_unknown_outcome_resends_total", resends) or 0) == before
    finally:
        await bootstrap.close(notifier)


async def record_staff_alert(dispatcher: Dispatcher, email: str, phone: str) -> None:
    context = sample_context(template="staff_alert")
    intents = [
        DeliveryIntent("apt-" + phone[-4:], "staff_alert:c1", channel, 1, "staff_alert", address, "en-CA", NOW,
                       context)
        for channel, address in (("email", email), ("sms", phone))
    ]
    async with dispatcher.ledger.engine.begin() as connection:
        await dispatcher.ledger.record(connection, intents, NOW)


async def test_a_clinician_who_once_opted_out_as_a_patient_still_gets_escalations(setup, sink, twilio) -> None:
    dispatcher, _ = setup
    await dispatcher.suppressions.suppress("sms", "+14165550144", "sms_keyword", NOW)
    await dispatcher.suppressions.suppress("email", "oncall@example.com", "unsubscribe_link", NOW)
    await record_staff_alert(dispatcher, "oncall@example.com", "+14165550144")
    await dispatcher.dispatch_due()
    assert len(twilio.messages("+14165550144")) == 1
    [mail] = mails_to(sink, "oncall@example.com")
    assert mail.message["List-Unsubscribe"] is None
    assert "unsubscribe" not in mail.body().lower()
    assert await statuses(dispatcher) == {"sent": 2}


async def test_a_staff_message_that_fails_for_good_raises_an_alert(setup, sink, twilio) -> None:
    from prometheus_client import REGISTRY

    dispatcher, _ = setup
    undelivered = {"service": "notifier", "channel": "sms"}
    before = REGISTRY.get_sample_value("clinic_notify_staff_undelivered_total", undelivered) or 0
    twilio.inject_fault(21211, 400, to="+14165550145")
    await record_staff_alert(dispatcher, "oncall2@example.com", "+14165550145")
    await dispatcher.dispatch_due()
    assert REGISTRY.get_sample_value("clinic_notify_staff_undelivered_total", undelivered) == before + 1


async def test_operators_see_how_many_messages_are_due_and_for_how_long(setup) -> None:
    from prometheus_client import REGISTRY

    dispatcher, clock = setup
    await record_confirmation(dispatcher, "d15@example.com", "+14165550146")
    clock.advance(timedelta(minutes=5))
    await dispatcher.report_backlog()
    labels = {"service": "notifier"}
    assert REGISTRY.get_sample_value("clinic_notify_ledger_due_messages", labels) == 2
    assert REGISTRY.get_sample_value("clinic_notify_ledger_oldest_due_age_seconds", labels) == 300


async def test_an_earlier_identical_text_already_on_record_is_not_taken_for_a_lost_one(setup, twilio) -> None:
    dispatcher, clock = setup
    # Two messages with the same words to the same number (two steps rendering the same text):
    # the first is sent and recorded; the second's dispatcher dies before sending it.
    await record_confirmation(dispatcher, "d15@example.com", "+14165550145", step="confirmation")
    await dispatcher.dispatch_due()
    [first] = [m["sid"] for m in twilio.messages("+14165550145")]
    await record_confirmation(dispatcher, "d15@example.com", "+14165550145", step="confirmation_again")
    await dispatcher.ledger.claim_due(clock.now(), 10, timedelta(seconds=60), channel="sms")
    clock.advance(timedelta(seconds=61))
    await dispatcher.dispatch_due()
    sids = [m["sid"] for m in twilio.messages("+14165550145")]
    assert len(sids) == 2 and first in sids
    async with dispatcher.ledger.engine.connect() as connection:
        rows = await dispatcher.ledger.for_appointment(connection, "apt-0145")
    assert sorted(d.provider_id or "" for d in rows if d.channel == "sms") == sorted(sids)


async def test_emails_waiting_for_a_channel_that_gets_paused_go_back_untried(setup, sink) -> None:
    dispatcher, clock = setup
    pool = dispatcher.limits["email"]
    sink.fail_next(pool, code=535, message="Authentication credentials invalid")  # whatever is in flight
    addresses = [f"w{n}@example.com" for n in range(pool + 2)]
    for n, address in enumerate(addresses):
        await record_confirmation(dispatcher, address, f"+1416555{3000 + n:04d}", expires_at=in_hours(48, NOW))
    await dispatcher.dispatch_due()
    # Nothing went out after the refusal: the emails waiting behind it were not tried, nor charged.
    assert [m for m in sink.messages if m.recipients[0] in addresses] == []
    async with dispatcher.ledger.engine.connect() as connection:
        emails = [d for n in range(pool + 2)
                  for d in await dispatcher.ledger.for_appointment(connection, f"apt-{3000 + n:04d}")
                  if d.channel == "email"]
    assert {(d.status.value, d.attempts) for d in emails} == {("pending", 0)}
    for _ in range(4):
        clock.advance(timedelta(minutes=10))
        await dispatcher.dispatch_due()
    assert sorted(m.recipients[0] for m in sink.messages if m.recipients[0] in addresses) == sorted(addresses)


async def test_an_email_cancelled_while_it_waited_behind_a_slow_one_is_not_sent(tmp_path: Path, twilio) -> None:
    with SmtpSink(delay=1.0) as slow:  # one connection to a server taking a second over each message
        settings = notifier_settings(tmp_path, slow, twilio)
        settings.delivery.smtp.pool_size = 1
        clock = FixedClock(NOW)
        notifier = bootstrap.build(settings, clock=clock)
        await create_tables(notifier.engine, NOTIFIER_SCHEMA)
        dispatcher = notifier.dispatcher
        try:
            intents = [DeliveryIntent(f"apt-{name}", "reminder_24h", "email", 1, "reminder", f"{name}@example.com",
                                      "en-CA", NOW - timedelta(minutes=n), sample_context(template="reminder"))
                       for n, name in ((2, "first"), (1, "second"))]
            async with dispatcher.ledger.engine.begin() as connection:
                await dispatcher.ledger.record(connection, intents, NOW)
            sending = asyncio.create_task(dispatcher.dispatch_due())
            await asyncio.sleep(0.3)  # the first is with the server, the second waits for the connection
            async with dispatcher.ledger.engine.begin() as connection:
                await dispatcher.ledger.cancel_pending(connection, "apt-second", "appointment_cancelled", NOW)
            clock.advance(timedelta(seconds=20))  # it has waited long enough to be checked again
            await sending
            assert [mail.recipients for mail in slow.messages] == [("first@example.com",)]
            assert await statuses(dispatcher) == {"sent": 1, "cancelled": 1}
        finally:
            await bootstrap.close(notifier)
