"""A patient answers their reminder by text: the booking system hears of it, the front desk too, and the
patient is told what happens next.

The e2e clinic config sends reminders 8 s and 4 s before the visit: each patient here is booked 16 s
ahead, waits for the first reminder, then replies through the Twilio sandbox's inbound webhook. Aftercare
reads a text against the reminder the notifier reported sent on clinic.deliveries.v1: a patient takes
seconds to answer, these tests answer at once, so they wait for aftercare to have read that report.
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.aftercare.bootstrap import deliveries_group
from shared.topics import APPOINTMENT_REQUESTS, DELIVERIES
from tests.e2e.conftest import Patient, System
from tests.e2e.test_aftercare import events_about, sms_bodies, wait_for_sms
from tests.support.channels import wait_for_mails
from tests.unit.templates.test_templates import treatment_words_in

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
FRONT_DESK = "front-desk@harbourfront-clinic.example"
REMINDER_ASKS = {"en-CA": "Reply C to confirm or R to change",
                 "fr-CA": "Répondez C pour confirmer ou R pour le modifier"}


async def a_reminded_visit(system: System, locale: str) -> tuple[Patient, str]:
    """A visit 16 s ahead whose first reminder has arrived (the patient's reply window is open)."""
    patient = system.new_patient(locale=locale)
    booking = system.book(patient, datetime.fromtimestamp(time.time() + 16, UTC).replace(microsecond=0))
    [reminder] = wait_for_sms(system, patient.phone, REMINDER_ASKS[locale], timeout=20)
    assert treatment_words_in(reminder) == []
    await aftercare_has_read_the_reminder_report(system, booking["appointment_id"])
    return patient, booking["appointment_id"]


async def aftercare_has_read_the_reminder_report(system: System, appointment_id: str, timeout: float = 5) -> None:
    """Until aftercare's group on clinic.deliveries.v1 has committed past the notifier's report that the
    visit's reminder text was sent (it commits once the report is applied)."""
    servers = system.kafka.bootstrap_servers
    reader = AIOKafkaConsumer(DELIVERIES, bootstrap_servers=servers, auto_offset_reset="earliest",
                              enable_auto_commit=False, group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await reader.start()
    await admin.start()
    try:
        async with asyncio.timeout(timeout):
            report: ConsumerRecord[bytes, bytes] | None = None
            while report is None:
                for records in (await reader.getmany(timeout_ms=300)).values():
                    report = next((r for r in records if r.key == appointment_id.encode()
                                   and json.loads(r.value)["template"] == "reminder"
                                   and json.loads(r.value)["status"] == "sent"), report)
            partition = TopicPartition(DELIVERIES, report.partition)
            group = deliveries_group(system.env["AFTERCARE_GROUP_ID"])
            while (committed := (await admin.list_consumer_group_offsets(group, partitions=[partition]))
                   .get(partition)) is None or committed.offset <= report.offset:
                await asyncio.sleep(0.1)
    finally:
        await reader.stop()
        await admin.close()


async def test_oui_confirms_the_visit_for_the_booking_system_and_thanks_the_patient_in_french(
        system: System) -> None:
    patient, appointment_id = await a_reminded_visit(system, "fr-CA")

    system.twilio.text_in(patient.phone, "oui")

    [thanks] = wait_for_sms(system, patient.phone, "votre rendez-vous est confirmé")
    assert "Au plaisir de vous voir" in thanks
    [confirmed] = await events_about(APPOINTMENT_REQUESTS, system.kafka.bootstrap_servers, appointment_id, 1)
    assert confirmed["event_type"] == "AppointmentConfirmed" and confirmed["reply_excerpt"] == "oui"
    assert patient.phone not in str(confirmed)


async def test_r_asks_for_a_change_the_front_desk_is_emailed_and_the_patient_told_they_will_be_called(
        system: System) -> None:
    patient, appointment_id = await a_reminded_visit(system, "en-CA")

    system.twilio.text_in(patient.phone, "R")

    [answer] = wait_for_sms(system, patient.phone, "The front desk will call you")
    assert "new time" in answer
    [request] = await events_about(APPOINTMENT_REQUESTS, system.kafka.bootstrap_servers, appointment_id, 1)
    assert request["event_type"] == "ChangeRequested"
    [email] = wait_for_mails(system.sink, FRONT_DESK, 1, where=lambda m: patient.name in m.body("plain"))
    assert "Change requested" in str(email.message["Subject"])
    assert appointment_id in email.body("plain")


async def test_peut_etre_gets_a_question_back_and_nothing_is_published(system: System) -> None:
    patient, appointment_id = await a_reminded_visit(system, "fr-CA")

    system.twilio.text_in(patient.phone, "peut-être")

    [question] = wait_for_sms(system, patient.phone, "nous n'avons pas compris")
    assert "répondez C pour confirmer ou R pour le modifier" in question
    assert await events_about(APPOINTMENT_REQUESTS, system.kafka.bootstrap_servers, appointment_id, 1,
                              timeout=4) == []
    assert not any("Au plaisir de vous voir" in body for body in sms_bodies(system, patient.phone))  # no thanks
    assert all(treatment_words_in(body) == [] for body in sms_bodies(system, patient.phone))
