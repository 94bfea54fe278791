"""A worrying reply reaches a person who answers: on-call first, then backup, then the lead, until acknowledged.

The e2e clinic config gives 8 s to acknowledge before the next of the chain is paged.
"""
from __future__ import annotations

import re
import time

import httpx
import pytest

from shared.topics import AFTERCARE_ALERTS
from tests.e2e.conftest import System
from tests.e2e.test_aftercare import complete_a_visit, events_about, wait_for_sms
from tests.support.channels import mails_to, wait_for_mails

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
ON_CALL_EMAIL, ON_CALL_PHONE = "on-call@harbourfront-clinic.example", "+14165550177"
BACKUP_EMAIL, BACKUP_PHONE = "backup@harbourfront-clinic.example", "+14165550166"
LEAD_EMAIL = "lead@harbourfront-clinic.example"
PERIOD = 8.0


def a_red_flag_reply(system: System) -> tuple[str, str, float]:
    """A patient's chest pain after their visit; returns the patient's name, the appointment and when it was sent."""
    patient = system.new_patient()
    appointment_id, _ = complete_a_visit(system, patient, near_chest=True)
    wait_for_sms(system, patient.phone, "how sore are you")
    sent = time.time()
    assert system.twilio.text_in(patient.phone, "2 but I have chest pain")["status"] == 200
    return patient.name, appointment_id, sent


def reference_in(sms: str) -> str:
    found = re.search(r"Reply OK (\d{4})", sms)
    assert found, sms
    return found.group(1)


def pages_for(system: System, address: str, name: str) -> list[float]:
    return [mail.received_at for mail in mails_to(system.sink, address) if name in mail.body("plain")]


async def test_a_red_flag_reaches_the_on_call_clinician_within_60_s_even_while_texts_fail(system: System) -> None:
    system.twilio.inject_fault(20500, 503, to=ON_CALL_PHONE, times=3)
    name, _, sent = a_red_flag_reply(system)

    [mail] = wait_for_mails(system.sink, ON_CALL_EMAIL, 1, timeout=60, where=lambda m: name in m.body("plain"))
    email_after = mail.received_at - sent
    print(f"on-call email {email_after:.2f} s after the reply (limit 60 s)")
    assert email_after <= 60
    [sms] = wait_for_sms(system, ON_CALL_PHONE, name, timeout=60)  # once Twilio answers again
    [message] = [m for m in system.twilio.messages(ON_CALL_PHONE) if m["body"] == sms]
    print(f"on-call SMS {message['sandbox_received_at'] - sent:.2f} s after the reply, after 3 failed sends")
    assert message["sandbox_received_at"] - sent <= 60


async def test_without_an_acknowledgement_the_backup_then_the_lead_is_paged(system: System) -> None:
    name, appointment_id, sent = a_red_flag_reply(system)

    backup = wait_for_mails(system.sink, BACKUP_EMAIL, 1, timeout=PERIOD + 20, where=lambda m: name in m.body("plain"))
    assert backup and "not acknowledged" in str(backup[0].message["Subject"])
    assert wait_for_sms(system, BACKUP_PHONE, name)
    lead = wait_for_mails(system.sink, LEAD_EMAIL, 1, timeout=PERIOD + 20, where=lambda m: name in m.body("plain"))
    assert lead and lead[0].received_at - backup[0].received_at >= PERIOD - 1.5
    assert backup[0].received_at - sent >= PERIOD - 1.5

    events = await events_about(AFTERCARE_ALERTS, system.kafka.bootstrap_servers, appointment_id, 4,
                                timeout=PERIOD + 15)
    assert [e["event_type"] for e in events] == [
        "EscalationRaised", "EscalationPaged", "EscalationPaged", "EscalationExhausted"]
    assert [e["role"] for e in events if e["event_type"] == "EscalationPaged"] == ["backup", "lead"]


async def test_ack_by_text_from_the_on_call_phone_stops_the_chain(system: System) -> None:
    name, appointment_id, _ = a_red_flag_reply(system)
    [sms] = wait_for_sms(system, ON_CALL_PHONE, name)

    reference = reference_in(sms)
    answer = system.twilio.text_in(ON_CALL_PHONE, f"ACK {reference}")

    assert answer["status"] == 200
    assert wait_for_sms(system, ON_CALL_PHONE, f"Escalation {reference} acknowledged")
    events = await events_about(AFTERCARE_ALERTS, system.kafka.bootstrap_servers, appointment_id, 2)
    assert [(e["event_type"], e.get("role"), e.get("via")) for e in events] == [
        ("EscalationRaised", None, None), ("EscalationAcknowledged", "on_call", "sms")]
    time.sleep(PERIOD + 3)
    assert pages_for(system, BACKUP_EMAIL, name) == []


async def test_the_link_in_the_on_call_email_acknowledges_and_opening_it_does_not(system: System) -> None:
    name, appointment_id, _ = a_red_flag_reply(system)
    [mail] = wait_for_mails(system.sink, ON_CALL_EMAIL, 1, where=lambda m: name in m.body("plain"))
    found = re.search(r"(http://\S+/escalation/\S+)", mail.body("plain"))
    assert found, mail.body("plain")

    opened = httpx.get(found.group(1), timeout=10)
    assert opened.status_code == 200 and "<form" in opened.text
    done = httpx.post(found.group(1), timeout=10)
    assert done.status_code == 200 and "acknowledged" in done.text

    events = await events_about(AFTERCARE_ALERTS, system.kafka.bootstrap_servers, appointment_id, 2)
    assert [(e["event_type"], e.get("via")) for e in events] == [
        ("EscalationRaised", None), ("EscalationAcknowledged", "email_link")]
    time.sleep(PERIOD + 3)
    assert pages_for(system, BACKUP_EMAIL, name) == []
