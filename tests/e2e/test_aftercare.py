"""After a visit: advice, soreness check-ins by SMS and email, replies, escalation and opt-out.

The e2e clinic config sends check-ins 3 s and 8 s after the visit and reports silence 4 s after the last.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.topics import AFTERCARE_ALERTS, AFTERCARE_RECORDS
from tests.e2e.arrivals import wait_until
from tests.e2e.conftest import Patient, System, in_days
from tests.support.channels import mails_to, wait_for_mails

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
ON_CALL_EMAIL = "on-call@harbourfront-clinic.example"
ON_CALL_PHONE = "+14165550177"


def complete_a_visit(system: System, patient: Patient, near_chest: bool = False) -> tuple[str, float]:
    booking = system.book(patient, in_days(0.1))
    system.change(booking["appointment_id"], "complete", {"needled_near_chest": near_chest})
    return booking["appointment_id"], time.time()


def sms_bodies(system: System, phone: str) -> list[str]:
    return [message["body"] for message in system.twilio.messages(phone)]


def wait_for_sms(system: System, phone: str, containing: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [body for body in sms_bodies(system, phone) if containing in body]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no SMS containing {containing!r}; got {sms_bodies(system, phone)}")


def check_in_texts(system: System, patient: Patient) -> list[str]:
    return [body for body in sms_bodies(system, patient.phone) if "how sore are you" in body]


async def events_about(
    topic: str, bootstrap: str, appointment_id: str, expected: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and len(found) < expected:
            batch = await consumer.getmany(timeout_ms=300)
            found += [json.loads(r.value) for rs in batch.values() for r in rs if r.key == appointment_id.encode()]
        return found
    finally:
        await consumer.stop()


def test_a_completed_visit_gets_aftercare_advice_by_email_and_sms(system: System) -> None:
    patient = system.new_patient()
    complete_a_visit(system, patient)
    advice = wait_for_mails(system.sink, patient.email, 1, where=lambda m: "after" in str(m.message["Subject"]).lower())
    assert advice, [str(m.message["Subject"]) for m in mails_to(system.sink, patient.email)]
    body = advice[0].body("plain")
    assert "911" in body
    [sms] = wait_for_sms(system, patient.phone, "after your visit")
    assert "needl" not in sms.lower()


async def test_a_high_score_reply_alerts_staff_and_tells_the_patient_the_clinic_will_call(system: System) -> None:
    patient = system.new_patient()
    appointment_id, _ = complete_a_visit(system, patient)
    wait_for_sms(system, patient.phone, "how sore are you")
    answer = system.twilio.text_in(patient.phone, "8")
    assert answer["status"] == 200

    [reply] = wait_for_sms(system, patient.phone, "will call you")
    assert "911" in reply
    [alert] = await events_about(AFTERCARE_ALERTS, system.kafka.bootstrap_servers, appointment_id, 1)
    assert alert["event_type"] == "EscalationRaised" and alert["score"] == 8
    assert "score_at_or_above:7" in alert["reasons"]
    staff_mail = wait_for_mails(system.sink, ON_CALL_EMAIL, 1, where=lambda m: patient.name in m.body("plain"))
    assert staff_mail and "8/10" in str(staff_mail[0].message["Subject"])
    assert wait_for_sms(system, ON_CALL_PHONE, patient.name)

    wait_until(time.time() + 8)
    assert len(check_in_texts(system, patient)) == 1  # no more check-ins once escalated


async def test_red_flag_words_in_french_escalate_even_with_a_low_score(system: System) -> None:
    patient = system.new_patient(locale="fr-CA")
    appointment_id, _ = complete_a_visit(system, patient, near_chest=True)
    wait_until(time.time() + 4)  # the first check-in has gone out
    system.twilio.text_in(patient.phone, "2 mais j'ai du mal à respirer")
    [alert] = await events_about(AFTERCARE_ALERTS, system.kafka.bootstrap_servers, appointment_id, 1)
    assert "red_flag:shortness_of_breath" in alert["reasons"] and alert["urgent_911_advice"]
    assert any("911" in body for body in sms_bodies(system, patient.phone)[-1:])


def test_a_low_score_gets_reassurance_and_no_further_check_in(system: System) -> None:
    patient = system.new_patient()
    complete_a_visit(system, patient)
    wait_for_sms(system, patient.phone, "how sore are you")
    system.twilio.text_in(patient.phone, "about a 2")
    [reply] = wait_for_sms(system, patient.phone, "No more check-ins")
    assert "normal" in reply
    wait_until(time.time() + 8)
    assert len(check_in_texts(system, patient)) == 1


def test_a_reply_with_a_bad_signature_is_refused_and_changes_nothing(system: System) -> None:
    patient = system.new_patient()
    complete_a_visit(system, patient)
    wait_for_sms(system, patient.phone, "how sore are you")
    before = sms_bodies(system, patient.phone)
    refused = system.twilio.text_in(patient.phone, "9", signature="invalid")
    assert refused["status"] == 403
    time.sleep(1)
    assert sms_bodies(system, patient.phone) == before
    assert not [m for m in mails_to(system.sink, ON_CALL_EMAIL) if patient.name in m.body("plain")]
    # The check-in is still open: a genuine reply is read as the first answer.
    system.twilio.text_in(patient.phone, "5")
    assert wait_for_sms(system, patient.phone, "Some soreness is expected")


def test_stop_confirms_and_nothing_more_of_any_kind_reaches_that_number(system: System) -> None:
    patient = system.new_patient()
    complete_a_visit(system, patient)
    wait_for_sms(system, patient.phone, "after your visit")
    answer = system.twilio.text_in(patient.phone, "STOP")
    assert answer["status"] == 200
    assert wait_for_sms(system, patient.phone, "unsubscribed")
    count = len(sms_bodies(system, patient.phone))

    system.book(patient, in_days(3))  # a new booking: the notifier too must honour the opt-out
    wait_for_mails(system.sink, patient.email, 1, where=lambda m: "confirm" in str(m.message["Subject"]).lower())
    wait_until(time.time() + 10)  # past both check-in times
    assert len(sms_bodies(system, patient.phone)) == count


async def test_an_email_score_link_records_the_score_once(system: System) -> None:
    patient = system.new_patient()
    appointment_id, _ = complete_a_visit(system, patient)
    [check_in] = wait_for_mails(system.sink, patient.email, 1,
                                where=lambda m: "feeling" in str(m.message["Subject"]).lower())
    html = check_in.body("html")
    links = dict(re.findall(r'href="([^"]+/check-in/[^"]+)"[^>]*>\s*(\d+)\s*<', html))
    score_two = {score: url for url, score in links.items()}["2"].replace("&amp;", "&")

    opened = httpx.get(score_two, timeout=10)  # what a mail scanner does too: records nothing
    assert opened.status_code == 200 and "2 out of 10" in opened.text and "<form" in opened.text
    first = httpx.post(score_two, timeout=10)
    second = httpx.post(score_two, timeout=10)
    assert first.status_code == 200 and "recorded your answer" in first.text
    assert second.status_code == 200 and "already have your answer" in second.text
    records = await events_about(AFTERCARE_RECORDS, system.kafka.bootstrap_servers, appointment_id, 10, timeout=5)
    scores = [event for event in records if event["event_type"] == "ReplyRecorded"]
    assert [(event["via"], event["score"]) for event in scores] == [("web", 2)]


async def test_no_reply_to_any_check_in_is_recorded_and_reported_to_staff(system: System) -> None:
    patient = system.new_patient()
    appointment_id, completed = complete_a_visit(system, patient)
    wait_until(completed + 8 + 4 + 2)
    records = await events_about(AFTERCARE_RECORDS, system.kafka.bootstrap_servers, appointment_id, 3)
    assert "NoReplyRecorded" in [event["event_type"] for event in records]
    assert wait_for_mails(system.sink, ON_CALL_EMAIL, 1,
                          where=lambda m: patient.name in m.body("plain"))
    assert len(check_in_texts(system, patient)) == 2


def test_the_unsubscribe_link_in_an_email_works_without_login_and_stops_every_email(system: System) -> None:
    patient = system.new_patient(locale="fr-CA")
    booking = system.book(patient, in_days(6))
    [confirmation] = wait_for_mails(system.sink, patient.email, 1)
    found = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", confirmation.message["List-Unsubscribe"])
    assert found, confirmation.message["List-Unsubscribe"]
    link = found.group(1)

    form = httpx.get(link, timeout=10)
    assert form.status_code == 200 and "<form" in form.text and "désabonner" in form.text.lower()
    done = httpx.post(link, timeout=10)
    assert done.status_code == 200 and "désabonné" in done.text.lower()

    time.sleep(1)  # the consent change travels to the notifier through Kafka
    system.change(booking["appointment_id"], "reschedule", {"starts_at": in_days(7).isoformat()})
    system.twilio.wait_for_messages(patient.phone, 2)  # SMS still flows
    time.sleep(2)
    assert len(mails_to(system.sink, patient.email)) == 1
