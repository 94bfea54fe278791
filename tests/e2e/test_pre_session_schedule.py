"""Guidance and reminders go out ahead of the visit, at their times, once (schedules scaled to seconds).

The e2e clinic config sends guidance 12 s before the start, reminders 8 s and 4 s before.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.e2e.arrivals import Arrival, arrivals, wait_for_count, wait_until
from tests.e2e.conftest import System

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
ON_TIME = 1.5  # seconds: a due message goes out within about a second


def starting_in(seconds: float) -> datetime:
    return datetime.fromtimestamp(time.time() + seconds, UTC).replace(microsecond=0)


def texts(found: list[Arrival], channel: str) -> list[str]:
    return [arrival.text for arrival in found if arrival.channel == channel]


def test_guidance_and_reminders_arrive_at_their_times_in_the_patients_language(system: System) -> None:
    patient = system.new_patient(locale="fr-CA")
    start = starting_in(16)
    system.book(patient, start)
    found = wait_for_count(system, patient, 5, timeout=30)
    due = {"guidance": start.timestamp() - 12, "reminder_24h": start.timestamp() - 8,
           "reminder_2h": start.timestamp() - 4}

    emails = [a for a in found if a.channel == "email"]
    sms = [a for a in found if a.channel == "sms"]
    assert len(emails) == 2 and len(sms) == 3
    guidance = emails[1]
    assert guidance.at == pytest.approx(due["guidance"] + ON_TIME / 2, abs=ON_TIME / 2 + 0.2)
    assert "préparer" in guidance.text.lower() or "rendez-vous" in guidance.text.lower()
    assert sms[1].at == pytest.approx(due["reminder_24h"] + ON_TIME / 2, abs=ON_TIME / 2 + 0.2)
    assert sms[2].at == pytest.approx(due["reminder_2h"] + ON_TIME / 2, abs=ON_TIME / 2 + 0.2)
    assert all("rendez-vous" in body for body in texts(found, "sms"))
    wait_until(start.timestamp() + 2)
    assert len(arrivals(system, patient)) == 5


def test_a_reschedule_moves_every_pending_message_to_the_new_time_and_none_arrives_at_the_old(system: System) -> None:
    patient = system.new_patient()
    old_start = starting_in(16)
    booking = system.book(patient, old_start)
    new_start = starting_in(30)
    system.change(booking["appointment_id"], "reschedule", {"starts_at": new_start.isoformat()})

    wait_until(old_start.timestamp() + 1)
    before = arrivals(system, patient)
    # The notice on both channels; a confirmation goes out on a channel only if its send began before the
    # reschedule was applied (one still waiting would name a time that no longer holds).
    notices = [a.channel for a in before if "moved" in a.text.lower()]
    confirmations = [a.channel for a in before if "moved" not in a.text.lower()]
    assert sorted(notices) == ["email", "sms"], before
    assert len(confirmations) == len(set(confirmations)) and set(confirmations) <= {"email", "sms"}, before
    earlier = len(before)

    after = wait_for_count(system, patient, earlier + 3, timeout=30)
    scheduled = after[earlier:]
    assert [a.channel for a in scheduled] == ["email", "sms", "sms"]
    for arrival, offset in zip(scheduled, (12, 8, 4), strict=True):
        assert arrival.at == pytest.approx(new_start.timestamp() - offset + ON_TIME / 2, abs=ON_TIME / 2 + 0.2)
    wait_until(new_start.timestamp() + 2)
    assert len(arrivals(system, patient)) == earlier + 3


def test_a_cancelled_appointment_gets_nothing_after_its_cancellation_notice(system: System) -> None:
    patient = system.new_patient()
    start = starting_in(18)  # guidance due 5-6 s after the booking: the cancellation is applied long before
    booking = system.book(patient, start)
    system.change(booking["appointment_id"], "cancel")
    wait_until(start.timestamp() + 2)
    found = arrivals(system, patient)
    # The cancellation notice by email and SMS, last; a confirmation only on a channel whose send began
    # before the cancellation was applied; nothing else (no guidance, no reminder).
    notices = [a for a in found if "cancel" in a.text.lower()]
    assert sorted(a.channel for a in notices) == ["email", "sms"], found
    assert all("cancel" in a.text.lower() for a in found[-2:]), found
    others = [a.channel for a in found if a not in notices]
    assert len(others) == len(set(others)) and set(others) <= {"email", "sms"}, found


def test_a_notifier_stopped_across_a_due_time_sends_the_message_once_on_its_return(system: System) -> None:
    notifier = system.services["notifier"]
    patient = system.new_patient()
    start = starting_in(18)
    system.book(patient, start)
    wait_for_count(system, patient, 2)
    notifier.stop()
    try:
        wait_until(start.timestamp() - 7)  # guidance (-12 s) and the first reminder (-8 s) fall due meanwhile
        assert len(arrivals(system, patient)) == 2
    finally:
        notifier.start()
    found = wait_for_count(system, patient, 5, timeout=20)
    assert sorted(a.channel for a in found[2:]) == ["email", "sms", "sms"]
    wait_until(start.timestamp() + 2)
    assert len(arrivals(system, patient)) == 5


def test_messages_that_fell_due_while_down_are_skipped_once_the_visit_has_started(system: System) -> None:
    notifier = system.services["notifier"]
    patient = system.new_patient()
    start = starting_in(18)  # guidance due 5-6 s after the booking: the kill comes first, even on a busy machine
    system.book(patient, start)
    wait_for_count(system, patient, 2)
    notifier.kill()
    assert time.time() < start.timestamp() - 12, "the notifier was killed only after the guidance fell due"
    try:
        wait_until(start.timestamp() + 1)
    finally:
        notifier.start()
    time.sleep(3)
    assert len(arrivals(system, patient)) == 2  # only the confirmation
