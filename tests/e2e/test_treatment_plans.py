"""A treatment plan is one conversation: one confirmation for six sessions, then one notice per change."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.conftest import System, in_days
from tests.e2e.test_booking_notifications import calendar_of, settle
from tests.support.channels import mails_to, wait_for_mails

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def test_a_six_session_plan_in_french_is_confirmed_once_and_cancelling_one_session_cancels_only_it(
    system: System,
) -> None:
    patient = system.new_patient(locale="fr-CA")
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

    assert "6 rendez-vous" in confirmation.message["Subject"]
    calendar = calendar_of(confirmation)
    assert calendar["method"] == "REQUEST"
    entries = calendar.walk("VEVENT")
    assert [str(e["uid"]) for e in entries] == uids
    assert [e.decoded("dtstart") for e in entries] == [first + timedelta(weeks=n) for n in range(6)]
    assert "6 rendez-vous" in sms["body"] and "ARRET" in sms["body"]
    assert "puncture" not in sms["body"].lower() and "aiguille" not in sms["body"].lower()

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
