"""Twilio's status callbacks reach the ledger: signed posts only, the furthest status kept, 21610 suppresses,
an undelivered SMS goes by email (and a refused email by SMS) once, and each outcome is an event on
clinic.deliveries.v1."""
from __future__ import annotations

import asyncio
import itertools
import json
import random
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from sandbox.smtp_sink import SmtpSink
from sandbox.twilio_sandbox.callbacks import CallbackSettings
from services.notifier import bootstrap, tables
from services.notifier.settings import NotifierSettings
from shared.clock import FixedClock
from shared.database import create_tables
from shared.delivery.context import appointment_context
from shared.kafka_admin import ensure_topics
from shared.ledger.model import Delivery, DeliveryIntent
from shared.outbox.kafka_publisher import KafkaEventPublisher
from shared.outbox.relay import OutboxRelay
from shared.outbox.store import Outbox
from shared.process import embedded_http_server
from shared.settings import CommonSettings, DeliverySettings, KafkaSettings, SmtpSettings, TwilioSettings
from shared.topics import DELIVERIES
from tests.support.channels import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CLINIC_NUMBER,
    TwilioSandbox,
    mails_to,
    start_twilio_sandbox,
)
from tests.support.events import booked, in_hours, patient
from tests.support.kafka_server import KafkaServer, free_port

NOW = datetime.now(UTC).replace(microsecond=0)
_numbers = itertools.count(random.randrange(1000, 8000))


def new_phone() -> str:
    return f"+1416557{next(_numbers):04d}"
PUBLIC_URL = "https://notifier.harbourfront-clinic.example/twilio/status"


@pytest.fixture(scope="module")
def sink():
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def twilio():
    sandbox = start_twilio_sandbox(callbacks=CallbackSettings(step_delay=0.02, backoff=0.2))
    yield sandbox
    sandbox.server.stop()


def settings(tmp_path: Path, sink: SmtpSink, twilio: TwilioSandbox, callback_url: str,
             bootstrap_servers: str = "127.0.0.1:9") -> NotifierSettings:
    return NotifierSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db",
        public_status_callback_url=callback_url,
        metrics_port=None,
        common=CommonSettings(kafka=KafkaSettings(bootstrap_servers=bootstrap_servers)),
        delivery=DeliverySettings(
            link_secret="a-test-secret-of-at-least-32-bytes",
            retry_first_delay_seconds=10,
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port,
                              sender="Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>"),
            twilio=TwilioSettings(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN),
                                  from_number=CLINIC_NUMBER, api_base_url=twilio.url),
        ),
    )


@dataclass
class Notifier:
    parts: bootstrap.NotifierParts
    clock: FixedClock

    async def record(self, step: str, channel: str, recipient: str, fallback: str | None, locale: str = "en-CA",
                     template: str = "reminder", appointment_id: str = "apt-1") -> None:
        event = booked(appointment_id, in_hours(30, NOW), who=patient(locale=locale))
        intent = DeliveryIntent(appointment_id, step, channel, 1, template, recipient, locale, NOW,
                                appointment_context(event), fallback_recipient=fallback)
        async with self.parts.engine.begin() as connection:
            await self.parts.dispatcher.ledger.record(connection, [intent], NOW)

    async def rows(self, appointment_id: str = "apt-1") -> list[Delivery]:
        async with self.parts.engine.connect() as connection:
            return await self.parts.dispatcher.ledger.for_appointment(connection, appointment_id)

    async def events(self) -> list[dict[str, object]]:
        async with self.parts.engine.connect() as connection:
            rows = await connection.execute(select(tables.outbox.c.value).order_by(tables.outbox.c.id))
            return [json.loads(value) for (value,) in rows]

    async def until(self, check, timeout: float = 10.0) -> list[Delivery]:
        async with asyncio.timeout(timeout):
            while not check(rows := await self.rows()):
                await asyncio.sleep(0.05)
        return rows


@pytest.fixture
async def notifier(tmp_path: Path, sink: SmtpSink, twilio: TwilioSandbox) -> AsyncIterator[Notifier]:
    """The notifier's dispatcher and its web app (served for real, in this loop), status callbacks on."""
    port = free_port()
    clock = FixedClock(NOW)
    parts = bootstrap.build(settings(tmp_path, sink, twilio, f"http://127.0.0.1:{port}/twilio/status"), clock=clock)
    await create_tables(parts.engine, tables.SCHEMA)
    server = embedded_http_server(parts.web_app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield Notifier(parts, clock)
    server.should_exit = True
    await serving
    await bootstrap.close(parts)


@pytest.fixture
async def web(
    tmp_path: Path, sink: SmtpSink, twilio: TwilioSandbox,
) -> AsyncIterator[tuple[Notifier, httpx.AsyncClient]]:
    """The notifier's web app called in process, behind a proxy: Twilio signs PUBLIC_URL."""
    parts = bootstrap.build(settings(tmp_path, sink, twilio, PUBLIC_URL), clock=FixedClock(NOW))
    await create_tables(parts.engine, tables.SCHEMA)
    transport = httpx.ASGITransport(app=parts.web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
        yield Notifier(parts, FixedClock(NOW)), client
    await bootstrap.close(parts)


def signed(params: dict[str, str], url: str = PUBLIC_URL, token: str = AUTH_TOKEN) -> tuple[str, dict[str, str]]:
    signature = RequestValidator(token).compute_signature(url, params)
    return urllib.parse.urlencode(params), {"X-Twilio-Signature": signature,
                                            "Content-Type": "application/x-www-form-urlencoded"}


def callback(sid: str, status: str, code: str | None = None) -> dict[str, str]:
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
              "AccountSid": ACCOUNT_SID, "From": CLINIC_NUMBER, "To": "+14165550123", "ApiVersion": "2010-04-01"}
    return params | ({"ErrorCode": code} if code else {})


async def post(client: httpx.AsyncClient, params: dict[str, str]) -> int:
    body, headers = signed(params)
    return (await client.post("/twilio/status", content=body, headers=headers)).status_code


async def handed_to_twilio(notifier: Notifier, sid: str, channel: str = "sms", recipient: str = "+14165550123",
                           fallback: str | None = "alex@example.com", step: str = "reminder_24h",
                           template: str = "reminder") -> None:
    """A message the dispatcher handed to Twilio as `sid` (its send recorded as the dispatcher does)."""
    await notifier.record(step, channel, recipient, fallback, template=template)
    ledger = notifier.parts.dispatcher.ledger
    [claimed] = [d for d in await ledger.claim_due(NOW, 10, timedelta(minutes=1), channel) if d.step == step]
    assert await ledger.mark_sent(claimed, sid, NOW)


# --- the signature ---

async def test_a_signed_callback_is_recorded_and_a_forged_one_is_refused_with_nothing_recorded(web) -> None:
    notifier, client = web
    await handed_to_twilio(notifier, "SM1")
    body, headers = signed(callback("SM1", "delivered"))
    forged = headers | {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    assert (await client.post("/twilio/status", content=body, headers=forged)).status_code == 403
    assert (await client.post("/twilio/status", content=body)).status_code == 403  # no signature at all
    wrong_key_body, wrong_key = signed(callback("SM1", "delivered"), token="not-our-auth-token")
    assert (await client.post("/twilio/status", content=wrong_key_body, headers=wrong_key)).status_code == 403
    [row] = await notifier.rows()
    assert row.provider_status is None and not await notifier.events()

    assert (await client.post("/twilio/status", content=body, headers=headers)).status_code == 204
    [row] = await notifier.rows()
    assert row.provider_status == "delivered" and row.status.value == "sent"


async def test_a_signature_replayed_over_another_body_is_refused_and_a_replayed_callback_changes_nothing(web) -> None:
    notifier, client = web
    await handed_to_twilio(notifier, "SM2")
    body, headers = signed(callback("SM2", "sent"))
    tampered = body.replace("MessageStatus=sent", "MessageStatus=undelivered") + "&ErrorCode=30003"
    assert (await client.post("/twilio/status", content=tampered, headers=headers)).status_code == 403
    for _ in range(2):  # Twilio (or an attacker) posting the same signed callback again
        assert (await client.post("/twilio/status", content=body, headers=headers)).status_code == 204
    [row] = await notifier.rows()
    assert row.provider_status == "sent" and row.provider_error_code is None
    provider_events = [e for e in await notifier.events() if e["source"] == "provider"]
    assert [e["status"] for e in provider_events] == ["sent"]


async def test_a_body_over_16_kb_is_refused_before_it_is_read_and_an_unknown_message_is_asked_again(web) -> None:
    _, client = web
    big = callback("SM3", "sent") | {"Padding": "x" * 17_000}
    body, headers = signed(big)
    assert (await client.post("/twilio/status", content=body, headers=headers)).status_code == 413
    response = await client.post("/twilio/status", content=signed(callback("SM-unknown", "sent"))[0],
                                 headers=signed(callback("SM-unknown", "sent"))[1])
    assert response.status_code == 503 and response.headers["Retry-After"]


async def test_a_report_that_overtakes_the_record_of_its_send_is_applied_once_the_send_is_recorded(web) -> None:
    """Twilio posts "sent" as soon as it has the message, which can be before the dispatcher has
    written down the sid Twilio gave it: the report waits for that record instead of being lost."""
    notifier, client = web
    early = asyncio.create_task(post(client, callback("SM-early", "delivered")))
    await asyncio.sleep(0.6)
    assert not early.done()
    await handed_to_twilio(notifier, "SM-early")
    assert await early == 204
    [row] = await notifier.rows()
    assert row.provider_status == "delivered"
    assert [(e["source"], e["status"]) for e in await notifier.events()] == [("provider", "delivered")]


# --- order, repeats, opt-outs ---

async def test_callbacks_out_of_order_and_repeated_keep_the_furthest_status_and_publish_each_step_once(web) -> None:
    notifier, client = web
    await handed_to_twilio(notifier, "SM4")
    for status in ("sent", "delivered", "queued", "sent", "delivered", "sending"):
        assert await post(client, callback("SM4", status)) == 204
    [row] = await notifier.rows()
    assert row.provider_status == "delivered"
    events = await notifier.events()
    assert [(e["source"], e["status"]) for e in events] == [("provider", "sent"), ("provider", "delivered")]
    assert all(e["appointment_id"] == "apt-1" and e["delivery_id"] == row.id for e in events)


async def test_an_undelivered_report_is_final_even_if_a_late_sent_or_delivered_follows(web) -> None:
    notifier, client = web
    await handed_to_twilio(notifier, "SM5", fallback=None)
    for status, code in (("undelivered", "30007"), ("sent", None), ("delivered", None)):
        assert await post(client, callback("SM5", status, code)) == 204
    [row] = await notifier.rows()
    assert (row.provider_status, row.provider_error_code) == ("undelivered", "30007")


async def test_21610_reported_by_callback_suppresses_the_number_like_a_refused_create(web) -> None:
    notifier, client = web
    await handed_to_twilio(notifier, "SM6")
    suppressions = notifier.parts.dispatcher.suppressions
    assert not await suppressions.is_suppressed("sms", "+14165550123")
    assert await post(client, callback("SM6", "failed", "21610")) == 204
    assert await suppressions.is_suppressed("sms", "+14165550123")
    [row] = await notifier.rows()  # 21610 is not a reason to email instead
    assert (row.provider_status, row.provider_error_code) == ("failed", "21610")


async def test_an_sms_undelivered_when_the_email_copy_exists_is_not_sent_twice(web) -> None:
    notifier, client = web
    await notifier.record("confirmation", "email", "alex@example.com", "+14165550123", template="confirmation")
    await handed_to_twilio(notifier, "SM7", step="confirmation", template="confirmation")
    assert await post(client, callback("SM7", "undelivered", "30003")) == 204
    rows = await notifier.rows()
    assert sorted((r.step, r.channel) for r in rows) == [("confirmation", "email"), ("confirmation", "sms")]


# --- against the sandbox, the SMTP sink and the broker ---

@pytest.mark.kafka
@pytest.mark.parametrize("locale", ["en-CA", "fr-CA"])
async def test_an_sms_the_carrier_reports_undelivered_30003_goes_by_email_once_and_is_published(
    notifier: Notifier, twilio: TwilioSandbox, sink: SmtpSink, kafka: KafkaServer, unique_id: str, locale: str,
) -> None:
    phone, email, appointment = new_phone(), f"pt.{unique_id}@example.com", f"apt-{unique_id}"
    twilio.inject_fault(30003, to=phone, kind="delivery")
    await notifier.record("reminder_24h", "sms", phone, email, locale=locale, appointment_id=appointment)
    dispatcher = notifier.parts.dispatcher
    assert await dispatcher.dispatch_due() == 1
    [sms] = twilio.wait_for_messages(phone, 1)
    assert sms["status_callback"] == notifier.parts.settings.public_status_callback_url

    async with asyncio.timeout(15):
        while not any(r.provider_status == "undelivered" for r in await notifier.rows(appointment)):
            await asyncio.sleep(0.05)
    assert await dispatcher.dispatch_due() == 1  # the fallback
    assert await dispatcher.dispatch_due() == 0
    rows = {r.step: r for r in await notifier.rows(appointment)}
    original, fallback = rows["reminder_24h"], rows["reminder_24h:fallback"]
    assert (original.status.value, original.provider_status, original.provider_error_code) == (
        "sent", "undelivered", "30003")
    assert (fallback.channel, fallback.status.value, fallback.fallback_of) == ("email", "sent", original.id)
    [mail] = mails_to(sink, email)
    assert ("Rappel" if locale == "fr-CA" else "Reminder") in mail.message["Subject"]
    assert len(twilio.messages(phone)) == 1

    await ensure_topics(kafka.bootstrap_servers)
    relay = OutboxRelay(notifier.parts.engine, Outbox(tables.outbox), KafkaEventPublisher(kafka.bootstrap_servers),
                        service="notifier")
    running = asyncio.create_task(relay.run())
    try:
        published = await read_deliveries(kafka.bootstrap_servers, appointment, expected=4)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    steps = [(e["step"], e["source"], e["status"], e["error_code"], e["fallback_channel"]) for e in published]
    assert ("reminder_24h", "provider", "undelivered", "30003", "email") in steps
    assert ("reminder_24h:fallback", "dispatcher", "sent", None, None) in steps
    assert all(phone not in json.dumps(e) and email not in json.dumps(e) for e in published)


async def read_deliveries(bootstrap_servers: str, appointment_id: str, expected: int) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(DELIVERIES, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < expected:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key == appointment_id.encode():
                            assert dict(record.headers)["event_type"] == b"DeliveryStatusChanged"
                            found.append(json.loads(record.value))
    finally:
        await consumer.stop()
    return found


async def test_an_email_refused_with_a_5xx_goes_by_sms_once(
    notifier: Notifier, twilio: TwilioSandbox, sink: SmtpSink, unique_id: str,
) -> None:
    phone, email, appointment = new_phone(), f"pt.{unique_id}@example.com", f"apt-{unique_id}"
    await notifier.record("guidance_48h", "email", email, phone, template="pre_session_guidance",
                          appointment_id=appointment, locale="fr-CA")
    sink.fail_next(1, code=550, message="5.1.1 mailbox unavailable")
    dispatcher = notifier.parts.dispatcher
    assert await dispatcher.dispatch_due() == 1
    assert await dispatcher.dispatch_due() == 1
    assert await dispatcher.dispatch_due() == 0
    rows = {r.step: r for r in await notifier.rows(appointment)}
    assert (rows["guidance_48h"].status.value, rows["guidance_48h"].error_code) == ("failed", "550")
    assert rows["guidance_48h:fallback"].channel == "sms" and rows["guidance_48h:fallback"].status.value == "sent"
    [sms] = twilio.wait_for_messages(phone, 1)
    assert "rendez-vous" in sms["body"]
    assert mails_to(sink, email) == []


async def test_an_sms_to_a_landline_is_not_tried_and_goes_by_email(
    notifier: Notifier, twilio: TwilioSandbox, sink: SmtpSink, unique_id: str,
) -> None:
    landline, email, appointment = "+442079460123", f"pt.{unique_id}@example.com", f"apt-{unique_id}"
    await notifier.record("reminder_2h", "sms", landline, email, appointment_id=appointment)
    dispatcher = notifier.parts.dispatcher
    assert await dispatcher.dispatch_due() == 1
    assert await dispatcher.dispatch_due() == 1
    rows = {r.step: r for r in await notifier.rows(appointment)}
    assert (rows["reminder_2h"].status.value, rows["reminder_2h"].reason) == ("skipped", "landline")
    assert rows["reminder_2h:fallback"].status.value == "sent"
    assert len(mails_to(sink, email)) == 1 and twilio.messages(landline) == []
