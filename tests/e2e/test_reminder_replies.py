"""A patient answers their reminder by text: the booking system hears of it, the front desk too, and the
patient is told what happens next.

The e2e clinic config sends reminders 8 s and 4 s before the visit: each patient here is booked 16 s
ahead, waits for the first reminder, then replies through the Twilio sandbox's inbound webhook.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from shared.topics import APPOINTMENT_REQUESTS
from tests.e2e.conftest import Patient, System
from tests.e2e.test_aftercare import events_about, sms_bodies, wait_for_sms
from tests.support.channels import wait_for_mails

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
FRONT_DESK = "front-desk@harbourfront-clinic.example"
REMINDER_ASKS = {"en-CA": "Reply C to confirm or R to change",
                 "fr-CA": "Répondez C pour confirmer ou R pour le modifier"}


def a_reminded_visit(system: System, locale: str) -> tuple[Patient, str]:
    """A visit 16 s ahead whose first reminder has arrived (the patient's reply window is open)."""
    patient = system.new_patient(locale=locale)
    booking = system.book(patient, datetime.fromtimestamp(time.time() + 16, UTC).replace(microsecond=0))
    [reminder] = wait_for_sms(system, patient.phone, REMINDER_ASKS[locale], timeout=20)
    assert "needl" not in reminder.lower() and "aiguille" not in reminder.lower()
    return patient, booking["appointment_id"]


async def test_oui_confirms_the_visit_for_the_booking_system_and_thanks_the_patient_in_french(
        system: System) -> None:
    patient, appointment_id = a_reminded_visit(system, "fr-CA")

    system.twilio.text_in(patient.phone, "oui")

    [thanks] = wait_for_sms(system, patient.phone, "votre rendez-vous est confirmé")
    assert "Au plaisir de vous voir" in thanks
    [confirmed] = await events_about(APPOINTMENT_REQUESTS, system.kafka.bootstrap_servers, appointment_id, 1)
    assert confirmed["event_type"] == "AppointmentConfirmed" and confirmed["reply_excerpt"] == "oui"
    assert patient.phone not in str(confirmed)


async def test_r_asks_for_a_change_the_front_desk_is_emailed_and_the_patient_told_they_will_be_called(
        system: System) -> None:
    patient, appointment_id = a_reminded_visit(system, "en-CA")

    system.twilio.text_in(patient.phone, "R")

    [answer] = wait_for_sms(system, patient.phone, "The front desk will call you")
    assert "new time" in answer
    [request] = await events_about(APPOINTMENT_REQUESTS, system.kafka.bootstrap_servers, appointment_id, 1)
    assert request["event_type"] == "ChangeRequested"
    [email] = wait_for_mails(system.sink, FRONT_DESK, 1, where=lambda m: patient.name in m.body("plain"))
    assert "Change requested" in str(email.message["Subject"])
    assert appointment_id in email.body("plain")


async def test_peut_etre_gets_a_question_back_and_nothing_is_published(system: System) -> None:
    patient, appointment_id = a_reminded_visit(system, "fr-CA")

    system.twilio.text_in(patient.phone, "peut-être")

    [question] = wait_for_sms(system, patient.phone, "nous n'avons pas compris")
    assert "répondez C pour confirmer ou R pour le modifier" in question
    assert await events_about(APPOINTMENT_REQUESTS, system.kafka.bootstrap_servers, appointment_id, 1,
                              timeout=4) == []
    assert not any("Au plaisir de vous voir" in body for body in sms_bodies(system, patient.phone))  # no thanks
