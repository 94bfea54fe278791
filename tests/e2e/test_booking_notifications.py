"""A booking system talks to the booking API; patients get their email and SMS, exactly once."""
from __future__ import annotations

import time
import uuid

import pytest
from icalendar import Calendar

from sandbox.smtp_sink import ReceivedMail
from tests.e2e.conftest import System, in_days
from tests.support.channels import mails_to, wait_for_mails

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def calendar_of(mail: ReceivedMail) -> Calendar:
    [part] = [p for p in mail.message.walk() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_content())


def settle(seconds: float = 2.0) -> None:
    """Leave time for a duplicate to show up, if the system were to send one."""
    time.sleep(seconds)


def test_a_booking_gets_one_confirmation_email_with_a_valid_invitation_and_one_sms(system: System) -> None:
    patient = system.new_patient()
    starts_at = in_days(5)
    started = time.monotonic()
    booking = system.book(patient, starts_at)
    [mail] = wait_for_mails(system.sink, patient.email, 1)
    elapsed = time.monotonic() - started
    [sms] = system.twilio.wait_for_messages(patient.phone, 1)
    print(f"booking POST to SMTP accept: {elapsed:.2f}s")

    assert "confirm" in mail.message["Subject"].lower()
    body = mail.body("plain")
    assert "Sam Lee" in body and "Harbourfront" in body
    assert mail.message.get_body(("html",)) is not None
    event = calendar_of(mail).walk("VEVENT")[0]
    assert event.decoded("dtstart") == starts_at
    assert str(event["uid"]).startswith(booking["appointment_id"])
    assert "STOP" in sms["body"] and "needl" not in sms["body"].lower()
    settle()
    assert len(mails_to(system.sink, patient.email)) == 1
    assert len(system.twilio.messages(patient.phone)) == 1


def test_a_reschedule_sends_a_notice_with_the_new_time(system: System) -> None:
    patient = system.new_patient(locale="fr-CA")
    booking = system.book(patient, in_days(6))
    wait_for_mails(system.sink, patient.email, 1)
    new_start = in_days(8).replace(hour=15, minute=0, second=0)
    system.change(booking["appointment_id"], "reschedule", {"starts_at": new_start.isoformat()})
    mails = wait_for_mails(system.sink, patient.email, 2)
    notice = mails[-1]
    event = calendar_of(notice).walk("VEVENT")[0]
    assert event.decoded("dtstart") == new_start
    assert event.decoded("sequence") == 2
    texts = system.twilio.wait_for_messages(patient.phone, 2)
    local_hour = new_start.astimezone(__import__("zoneinfo").ZoneInfo("America/Toronto")).strftime("%-H h")
    assert local_hour in texts[-1]["body"]  # fr-CA: "11 h 00"


def test_a_cancellation_sends_a_notice_and_a_calendar_cancel(system: System) -> None:
    patient = system.new_patient()
    booking = system.book(patient, in_days(4))
    wait_for_mails(system.sink, patient.email, 1)
    system.change(booking["appointment_id"], "cancel", {"cancelled_by": "patient"})
    mails = wait_for_mails(system.sink, patient.email, 2)
    assert "cancel" in mails[-1].message["Subject"].lower()
    assert calendar_of(mails[-1])["method"] == "CANCEL"
    assert len(system.twilio.wait_for_messages(patient.phone, 2)) == 2


def test_the_same_booking_posted_twice_with_one_idempotency_key_is_confirmed_once(system: System) -> None:
    patient = system.new_patient()
    key = str(uuid.uuid4())
    starts_at = in_days(7)
    first = system.book(patient, starts_at, idempotency_key=key)
    second = system.book(patient, starts_at, idempotency_key=key)
    assert first["appointment_id"] == second["appointment_id"]
    wait_for_mails(system.sink, patient.email, 1)
    system.twilio.wait_for_messages(patient.phone, 1)
    settle()
    assert len(mails_to(system.sink, patient.email)) == 1
    assert len(system.twilio.messages(patient.phone)) == 1


def test_bad_input_gets_a_clear_error_naming_the_field(system: System) -> None:
    patient = system.new_patient()
    contact = patient.contact() | {"phone": "555-not-a-number"}
    response = system.post("/v1/appointments", {"patient": contact, "appointment": {
        "type": "dry_needling", "starts_at": in_days(3).isoformat(), "duration_minutes": 30,
        "practitioner": "Sam Lee", "location_id": "downtown"}})
    assert response.status_code == 422
    assert any(problem["field"] == "patient.phone" for problem in response.json()["problems"])
    assert "555-not-a-number" not in response.text
