"""An escalation reaches a person who answers: on-call first, then backup, then the clinic lead, until acknowledged.

The clinic's config (deploy/clinic.yaml) gives 15 minutes to acknowledge before the next is paged.
"""
from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from xml.etree import ElementTree

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from services.aftercare.handlers.escalations import EscalationDesk
from services.aftercare.tables import escalation_steps
from services.aftercare.views import recent_escalations
from shared.database import create_engine
from shared.ledger.ledger import DeliveryLedger
from shared.outbox.store import Outbox
from shared.topics import AFTERCARE_ALERTS
from tests.integration.aftercare.conftest import (
    ON_CALL_EMAIL,
    ON_CALL_PHONE,
    PATIENT_PHONE,
    ROUND_1,
    TWILIO_AUTH_TOKEN,
    Aftercare,
)

BACKUP_EMAIL, BACKUP_PHONE = "backup@harbourfront-clinic.example", "+14165550166"
LEAD_EMAIL, LEAD_PHONE = "lead@harbourfront-clinic.example", "+14165550155"
INBOUND_URL = "http://testserver/twilio/inbound"
RAISED = ROUND_1 + timedelta(hours=1)
MINUTE = timedelta(minutes=1)
_sids = iter(range(10_000))


@pytest.fixture
async def web(aftercare: Aftercare) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=aftercare.parts.web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def text_in(web: httpx.AsyncClient, phone: str, body: str) -> str:
    """A signed inbound text, as Twilio posts it; returns the text answered back."""
    params = {"MessageSid": f"SM{next(_sids):032d}", "AccountSid": "AC" + "0" * 32, "From": phone,
              "To": "+14165550100", "Body": body}
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(INBOUND_URL, params)
    response = await web.post("/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    message = ElementTree.fromstring(response.text).find("Message")
    return message.text or "" if message is not None else ""


async def a_red_flag_reply(aftercare: Aftercare, appointment_id: str = "apt-dn-1",
                           phone: str = PATIENT_PHONE) -> str:
    """The patient texts chest pain; returns the escalation's reference as the on-call SMS shows it."""
    await aftercare.visit_completed(appointment_id, phone=phone)
    aftercare.clock.set(RAISED)  # the first check-in went out an hour ago
    await aftercare.answers.sms_reply(f"SM-{appointment_id}", phone, "3 but I have chest pain")
    [sms] = [m for m in await aftercare.messages("staff_alert", appointment_id) if m.channel == "sms"]
    body = aftercare.composer.sms_text(sms.template, sms.locale, sms.context, sms.recipient)
    found = re.search(r"Reply OK (\d{4})", body)
    assert found, "the on-call SMS says how to acknowledge"
    return found.group(1)


async def pages_to(aftercare: Aftercare, *recipients: str) -> list[tuple[str, str]]:
    pages = await aftercare.messages("staff_escalation_page")
    return sorted((page.recipient, page.channel) for page in pages if page.recipient in recipients)


async def steps(aftercare: Aftercare) -> list[tuple[str, str | None, str | None]]:
    rows = await aftercare.rows(select(escalation_steps).order_by(escalation_steps.c.id))
    return [(row.kind, row.role, row.channel) for row in rows]


async def test_nobody_acknowledges_so_the_backup_then_the_lead_is_paged_then_the_chain_is_exhausted(
    aftercare: Aftercare,
) -> None:
    await a_red_flag_reply(aftercare)
    desk = aftercare.parts.escalations

    aftercare.clock.set(RAISED + 14 * MINUTE)
    assert await desk.advance_due() == 0
    assert await pages_to(aftercare, BACKUP_EMAIL, BACKUP_PHONE) == []

    aftercare.clock.set(RAISED + 15 * MINUTE)
    assert await desk.advance_due() == 1
    assert await pages_to(aftercare, BACKUP_EMAIL, BACKUP_PHONE) == [(BACKUP_PHONE, "sms"), (BACKUP_EMAIL, "email")]
    assert await desk.next_due_at() == RAISED + 30 * MINUTE

    aftercare.clock.set(RAISED + 30 * MINUTE)
    assert await desk.advance_due() == 1
    assert await pages_to(aftercare, LEAD_EMAIL, LEAD_PHONE) == [(LEAD_PHONE, "sms"), (LEAD_EMAIL, "email")]

    aftercare.clock.set(RAISED + 45 * MINUTE)
    assert await desk.advance_due() == 1
    assert await desk.next_due_at() is None
    assert await steps(aftercare) == [
        ("raised", None, None), ("paged", "on_call", "email"), ("paged", "on_call", "sms"),
        ("paged", "backup", "email"), ("paged", "backup", "sms"), ("paged", "lead", "email"), ("paged", "lead", "sms"),
        ("exhausted", None, None),
    ]
    paged = await aftercare.published("EscalationPaged", AFTERCARE_ALERTS)
    assert [(event["role"], event["appointment_id"]) for event in paged] == [
        ("backup", "apt-dn-1"), ("lead", "apt-dn-1")]
    [exhausted] = await aftercare.published("EscalationExhausted", AFTERCARE_ALERTS)
    assert exhausted["paged"] == ["on_call", "backup", "lead"]
    [row] = await recent_escalations(aftercare.engine, None, 10)
    assert (row.appointment_id, row.status, row.paged, row.acknowledged_by) == ("apt-dn-1", "exhausted", 3, None)


async def test_ok_from_the_on_call_phone_acknowledges_and_nobody_else_is_paged(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    reference = await a_red_flag_reply(aftercare)
    aftercare.clock.set(RAISED + 3 * MINUTE)

    answer = await text_in(web, ON_CALL_PHONE, "OK")

    assert reference in answer and "acknowledged" in answer
    [acknowledged] = await aftercare.published("EscalationAcknowledged", AFTERCARE_ALERTS)
    assert (acknowledged["role"], acknowledged["via"], acknowledged["reference"]) == ("on_call", "sms", reference)
    aftercare.clock.set(RAISED + 60 * MINUTE)
    assert await aftercare.parts.escalations.advance_due() == 0
    assert await pages_to(aftercare, BACKUP_EMAIL, BACKUP_PHONE, LEAD_EMAIL, LEAD_PHONE) == []
    [row] = await recent_escalations(aftercare.engine, None, 10)
    assert (row.status, row.acknowledged_by, row.acknowledged_at) == ("acknowledged", "on_call", RAISED + 3 * MINUTE)
    # The staff text is an acknowledgement, not a patient's reply.
    assert [reply.text for reply in await aftercare.replies()] == ["3 but I have chest pain"]
    assert "already" in await text_in(web, ON_CALL_PHONE, f"ok {reference}")


async def test_with_two_open_a_bare_ok_asks_which_and_ok_with_the_reference_takes_that_one(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    first = await a_red_flag_reply(aftercare, "apt-dn-1", PATIENT_PHONE)
    second = await a_red_flag_reply(aftercare, "apt-dn-2", "+14165550124")

    answer = await text_in(web, ON_CALL_PHONE, "ACK")
    assert "Several" in answer and first in answer and second in answer
    assert await aftercare.published("EscalationAcknowledged") == []

    assert second in await text_in(web, ON_CALL_PHONE, f"Ack {second}")
    [acknowledged] = await aftercare.published("EscalationAcknowledged")
    assert acknowledged["appointment_id"] == "apt-dn-2"
    aftercare.clock.set(RAISED + 15 * MINUTE)
    assert await aftercare.parts.escalations.advance_due() == 1  # apt-dn-1 still goes to the backup


async def test_the_backup_acknowledges_through_the_email_link_a_scanner_opening_it_does_not(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    await a_red_flag_reply(aftercare)
    aftercare.clock.set(RAISED + 15 * MINUTE)
    await aftercare.parts.escalations.advance_due()
    [email] = [p for p in await aftercare.messages("staff_escalation_page") if p.recipient == BACKUP_EMAIL]
    link = email.context["extra"]["acknowledge_url"].replace("http://testserver", "")

    opened = await web.get(link)
    assert opened.status_code == 200 and "<form" in opened.text
    assert await aftercare.published("EscalationAcknowledged") == []

    done = await web.post(link)
    assert done.status_code == 200 and "acknowledged" in html.unescape(done.text)
    [acknowledged] = await aftercare.published("EscalationAcknowledged")
    assert (acknowledged["role"], acknowledged["via"]) == ("backup", "email_link")
    assert (await web.post(link[:-4] + "AAAA")).status_code == 410  # a tampered link acknowledges nothing
    aftercare.clock.set(RAISED + 30 * MINUTE)
    assert await aftercare.parts.escalations.advance_due() == 0


async def test_two_instances_watching_at_the_same_moment_page_the_backup_once(
    aftercare: Aftercare, database_url: str,
) -> None:
    await a_red_flag_reply(aftercare)
    other_engine = create_engine(database_url)
    other = EscalationDesk(engine=other_engine, ledger=DeliveryLedger(other_engine),
                           outbox=Outbox(aftercare.outbox.table), links=aftercare.links, clinic=aftercare.clinic,
                           clock=aftercare.clock)
    try:
        aftercare.clock.set(RAISED + 15 * MINUTE)
        moved = await asyncio.gather(aftercare.parts.escalations.advance_due(), other.advance_due())
    finally:
        await other_engine.dispose()
    assert sorted(moved) == [0, 1]
    assert await pages_to(aftercare, BACKUP_EMAIL, BACKUP_PHONE) == [(BACKUP_PHONE, "sms"), (BACKUP_EMAIL, "email")]
    assert len(await aftercare.published("EscalationPaged")) == 1


async def test_the_on_call_email_carries_the_acknowledgement_link_and_reference(aftercare: Aftercare) -> None:
    reference = await a_red_flag_reply(aftercare)
    [email] = [m for m in await aftercare.messages("staff_alert") if m.channel == "email"]
    assert email.recipient == ON_CALL_EMAIL
    composer = aftercare.composer
    rendered = composer.catalogue.render_email(
        email.template, email.locale, composer.render_context(email.context, "email", email.recipient, email.locale))
    assert email.context["extra"]["acknowledge_url"] in rendered.text
    assert f"OK {reference}" in rendered.text


async def test_operators_see_how_many_escalations_nobody_acknowledged_and_for_how_long(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    from prometheus_client import REGISTRY

    def gauge(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    reference = await a_red_flag_reply(aftercare)
    desk = aftercare.parts.escalations
    aftercare.clock.set(RAISED + 10 * MINUTE)
    await desk.report_unacknowledged()
    assert gauge("clinic_notify_escalations_unacknowledged", status="open") == 1
    assert gauge("clinic_notify_escalation_oldest_unacknowledged_age_seconds") == 600

    await text_in(web, ON_CALL_PHONE, f"OK {reference}")
    await desk.report_unacknowledged()
    assert gauge("clinic_notify_escalations_unacknowledged", status="open") == 0
    assert gauge("clinic_notify_escalation_oldest_unacknowledged_age_seconds") == 0
