"""A treatment plan is one conversation: one confirmation for six sessions, then one notice per change."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.conftest import System, in_days
from tests.e2e.test_booking_notifications import calendar_of, settle
from tests.support.channels import mails_to, wait_for_mails
from tests.unit.templates.test_templates import treatment_words_in

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
# What the plan's confirmation says, and the opt-out keyword of its SMS, in each language.
SAID = {"en-CA": ("6 appointments", "STOP"), "fr-CA": ("6 rendez-vous", "ARRET")}


@pytest.mark.parametrize("locale", ["en-CA", "fr-CA"])
def test_a_six_session_plan_is_confirmed_once_and_cancelling_one_session_cancels_only_it(
    system: System, locale: str
) -> None:
    six_sessions, opt_out = SAID[locale]
    patient = system.new_patient(locale=locale)
    first = in_days(3)
    response = system.post("/v1/series", {
        "patient": patient.contact(),
        "appointment": {"type": "dry_needling", "duration_minutes": 30, "practitioner": "Sam Lee",
                        "location_id": "downtown"},
        "starts_at": [(first + timedelta(weeks=n)).isoformat() for n in range(6)],
    }, idempotency_key=f"plan-{patient.email}")
    assert response.status_code == 201, response.text
    sessions = response.json()["sessions"]
    uids = [f"{s['appointment_id']}@clinic-notify" for s in sessions]

    [confirmation] = wait_for_mails(system.sink, patient.email, 1)
    [sms] = system.twilio.wait_for_messages(patient.phone, 1)
    settle(3)
    assert len(mails_to(system.sink, patient.email)) == 1
    assert len(system.twilio.messages(patient.phone)) == 1

    assert six_sessions in confirmation.message["Subject"]
    calendar = calendar_of(confirmation)
    assert calendar["method"] == "REQUEST"
    entries = calendar.walk("VEVENT")
    assert [str(e["uid"]) for e in entries] == uids
    assert [e.decoded("dtstart") for e in entries] == [first + timedelta(weeks=n) for n in range(6)]
    assert six_sessions in sms["body"] and opt_out in sms["body"]
    assert treatment_words_in(sms["body"]) == []

    system.change(sessions[2]["appointment_id"], "cancel", {"cancelled_by": "patient"})
    *_, notice = wait_for_mails(system.sink, patient.email, 2)
    system.twilio.wait_for_messages(patient.phone, 2)
    settle()
    assert len(mails_to(system.sink, patient.email)) == 2
    assert len(system.twilio.messages(patient.phone)) == 2

    cancel = calendar_of(notice)
    assert cancel["method"] == "CANCEL"
    [entry] = cancel.walk("VEVENT")
    assert str(entry["uid"]) == uids[2]
    assert entry.decoded("sequence") == 2
    assert entry.decoded("dtstart") == first + timedelta(weeks=2)
    assert all(treatment_words_in(message["body"]) == [] for message in system.twilio.messages(patient.phone))
