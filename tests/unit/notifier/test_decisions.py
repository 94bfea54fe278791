"""Which messages an appointment event produces, decided from plain values."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.notifier.domain.decisions import decide
from services.notifier.domain.state import AppointmentState
from shared.clinic_config import load_clinic_config
from shared.events.appointment import AppointmentType
from shared.events.patient import ChannelConsent
from tests.support.events import booked, cancelled, completed, no_show, patient, rescheduled

CLINIC = load_clinic_config(Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml")
TORONTO = ZoneInfo("America/Toronto")
# Wednesday 25 November 2026, 10:00 in Toronto.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=TORONTO).astimezone(UTC)


def state_after(event, status: str = "booked") -> AppointmentState:
    return AppointmentState(event.appointment_id, event.sequence, status, event.model_dump_json())


def steps(decision) -> set[tuple[str, str]]:
    return {(intent.step, intent.channel) for intent in decision.intents}


def local(moment: datetime) -> datetime:
    return moment.astimezone(TORONTO)


def test_a_booking_is_confirmed_by_email_and_sms_at_once_and_its_reminders_are_planned() -> None:
    event = booked("apt-1", datetime(2026, 11, 30, 10, 0, tzinfo=TORONTO))
    decision = decide(event, None, {}, CLINIC, NOW)
    assert decision.applied and decision.new_state is not None and decision.new_state.status == "booked"
    assert steps(decision) == {
        ("confirmation", "email"), ("confirmation", "sms"),
        ("guidance_48h", "email"), ("reminder_24h", "sms"), ("reminder_2h", "sms"),
    }
    due = {intent.step: local(intent.due_at) for intent in decision.intents}
    assert due["confirmation"] == local(NOW)
    assert due["guidance_48h"] == datetime(2026, 11, 28, 10, 0, tzinfo=TORONTO)
    assert due["reminder_24h"] == datetime(2026, 11, 29, 10, 0, tzinfo=TORONTO)
    assert due["reminder_2h"] == datetime(2026, 11, 30, 8, 0, tzinfo=TORONTO)
    assert all(i.expires_at == event.appointment.starts_at for i in decision.intents if i.step != "confirmation")


def test_the_confirmation_goes_only_where_the_patient_agreed() -> None:
    who = patient(consent=ChannelConsent(email=True, sms=False))
    decision = decide(booked("apt-1", NOW + timedelta(days=5), who=who), None, {}, CLINIC, NOW)
    assert {channel for _, channel in steps(decision)} == {"email"}
    assert any(s.reason == "no_consent_or_address" for s in decision.skipped)


def test_a_patient_without_email_gets_sms_only() -> None:
    decision = decide(booked("apt-1", NOW + timedelta(days=5), who=patient(email=None)), None, {}, CLINIC, NOW)
    assert ("confirmation", "email") not in steps(decision)
    assert ("confirmation", "sms") in steps(decision)


def test_a_late_booking_sends_the_guidance_at_once_and_skips_steps_already_past() -> None:
    event = booked("apt-1", NOW + timedelta(hours=3))
    decision = decide(event, None, {}, CLINIC, NOW)
    due = {intent.step: intent.due_at for intent in decision.intents}
    assert due["guidance_48h"] == NOW
    assert "reminder_24h" not in due
    assert due["reminder_2h"] == NOW + timedelta(hours=1)
    assert ("reminder_24h", "due_time_passed") in {(s.step, s.reason) for s in decision.skipped}


def test_a_reschedule_sends_a_notice_and_replans_from_the_new_time() -> None:
    original = booked("apt-1", datetime(2026, 11, 30, 10, 0, tzinfo=TORONTO))
    moved = rescheduled(original, datetime(2026, 12, 2, 15, 0, tzinfo=TORONTO), sequence=2)
    decision = decide(moved, state_after(original), {}, CLINIC, NOW)
    assert decision.cancel_pending_because == "rescheduled"
    assert ("reschedule_notice", "email") in steps(decision)
    assert ("confirmation", "email") not in steps(decision)
    due = {intent.step: local(intent.due_at) for intent in decision.intents}
    assert due["reminder_2h"] == datetime(2026, 12, 2, 13, 0, tzinfo=TORONTO)
    assert all(intent.appointment_version == 2 for intent in decision.intents)


def test_guidance_already_sent_is_not_sent_again_after_a_reschedule_but_the_reminders_are() -> None:
    original = booked("apt-1", datetime(2026, 11, 26, 10, 0, tzinfo=TORONTO))
    moved = rescheduled(original, datetime(2026, 12, 2, 10, 0, tzinfo=TORONTO), sequence=2)
    sent = {"guidance_48h": NOW - timedelta(hours=1), "reminder_24h": NOW - timedelta(minutes=5)}
    decision = decide(moved, state_after(original), sent, CLINIC, NOW)
    planned = {intent.step for intent in decision.intents}
    assert "guidance_48h" not in planned
    assert {"reminder_24h", "reminder_2h"} <= planned


def test_a_cancellation_sends_a_notice_and_cancels_everything_pending() -> None:
    original = booked("apt-1", NOW + timedelta(days=3))
    decision = decide(cancelled(original, sequence=2), state_after(original), {}, CLINIC, NOW)
    assert decision.cancel_pending_because == "cancelled"
    assert steps(decision) == {("cancellation_notice", "email"), ("cancellation_notice", "sms")}
    assert decision.new_state is not None and decision.new_state.status == "cancelled"


@pytest.mark.parametrize("ending", [no_show, completed], ids=["no-show", "completed"])
def test_a_no_show_or_a_completed_visit_cancels_what_is_pending_and_sends_nothing(ending) -> None:
    original = booked("apt-1", NOW + timedelta(days=3))
    decision = decide(ending(original, sequence=2), state_after(original), {}, CLINIC, NOW)
    assert decision.applied and decision.intents == ()
    assert decision.cancel_pending_because in {"no_show", "completed"}


def test_an_older_event_arriving_late_changes_nothing() -> None:
    original = booked("apt-1", NOW + timedelta(days=3))
    moved = rescheduled(original, NOW + timedelta(days=4), sequence=2)
    decision = decide(original, state_after(moved), {}, CLINIC, NOW)
    assert not decision.applied and decision.ignored_because == "not_newer_than_applied_sequence"


def test_a_replayed_event_changes_nothing() -> None:
    original = booked("apt-1", NOW + timedelta(days=3))
    assert not decide(original, state_after(original), {}, CLINIC, NOW).applied


def test_nothing_reopens_a_cancelled_appointment() -> None:
    original = booked("apt-1", NOW + timedelta(days=3))
    gone = cancelled(original, sequence=2)
    late_reschedule = rescheduled(original, NOW + timedelta(days=5), sequence=3)
    decision = decide(late_reschedule, state_after(gone, "cancelled"), {}, CLINIC, NOW)
    assert not decision.applied and decision.ignored_because == "appointment_already_cancelled"


def test_a_type_without_its_own_schedule_uses_the_default_one() -> None:
    event = booked("apt-1", NOW + timedelta(days=5), type=AppointmentType.MASSAGE_THERAPY)
    planned = {intent.step for intent in decide(event, None, {}, CLINIC, NOW).intents}
    assert {"reminder_24h", "reminder_24h_email"} <= planned and "guidance_48h" not in planned


def test_the_patient_language_is_carried_on_every_message() -> None:
    decision = decide(booked("apt-1", NOW + timedelta(days=5), who=patient(locale="fr-CA")), None, {}, CLINIC, NOW)
    assert {intent.locale for intent in decision.intents} == {"fr-CA"}


def test_email_waits_out_quiet_hours_only_when_the_clinic_says_so() -> None:
    # Guidance 48 h before a 07:30 visit falls at 07:30, inside the 21:00-08:00 window.
    event = booked("apt-1", datetime(2026, 11, 30, 7, 30, tzinfo=TORONTO))
    relaxed = decide(event, None, {}, CLINIC, NOW)
    strict = decide(event, None, {}, CLINIC.model_copy(update={"hold_email_in_quiet_hours": True}), NOW)
    guidance = lambda decision: next(i for i in decision.intents if i.step == "guidance_48h")  # noqa: E731
    assert local(guidance(relaxed).due_at) == datetime(2026, 11, 28, 7, 30, tzinfo=TORONTO)
    assert local(guidance(strict).due_at) == datetime(2026, 11, 28, 8, 0, tzinfo=TORONTO)


def due_by(decision, step: str) -> dict[str, datetime]:
    return {intent.channel: local(intent.due_at) for intent in decision.intents if intent.step == step}


def test_a_booking_imported_at_three_in_the_morning_is_texted_at_eight_and_emailed_at_once() -> None:
    night = datetime(2026, 11, 25, 3, 0, tzinfo=TORONTO)
    event = booked("apt-n", datetime(2026, 11, 30, 10, 0, tzinfo=TORONTO))
    decision = decide(event, None, {}, CLINIC, night)
    assert due_by(decision, "confirmation") == {"email": night, "sms": datetime(2026, 11, 25, 8, 0, tzinfo=TORONTO)}


def test_reschedule_and_cancellation_texts_wait_out_quiet_hours_too() -> None:
    first = booked("apt-q", datetime(2026, 11, 30, 10, 0, tzinfo=TORONTO))
    night = datetime(2026, 11, 25, 22, 30, tzinfo=TORONTO)
    moved = decide(rescheduled(first, datetime(2026, 12, 2, 10, 0, tzinfo=TORONTO), 2), state_after(first), {},
                   CLINIC, night)
    gone = decide(cancelled(first, 2), state_after(first), {}, CLINIC, night)
    morning = datetime(2026, 11, 26, 8, 0, tzinfo=TORONTO)
    assert due_by(moved, "reschedule_notice")["sms"] == morning
    assert due_by(gone, "cancellation_notice")["sms"] == morning


def test_notices_expire_at_the_start_of_the_appointment_they_are_about() -> None:
    start = datetime(2026, 11, 30, 10, 0, tzinfo=TORONTO)
    first = booked("apt-e", start)
    decisions = [
        decide(first, None, {}, CLINIC, NOW),
        decide(cancelled(first, 2), state_after(first), {}, CLINIC, NOW),
    ]
    new_start = datetime(2026, 12, 2, 10, 0, tzinfo=TORONTO)
    moved = decide(rescheduled(first, new_start, 2), state_after(first), {}, CLINIC, NOW)
    notices = [i for d in decisions for i in d.intents if i.step in ("confirmation", "cancellation_notice")]
    assert notices and {i.expires_at for i in notices} == {start}
    assert {i.expires_at for i in moved.intents if i.step == "reschedule_notice"} == {new_start}


def test_a_booking_replayed_after_its_appointment_started_confirms_nothing() -> None:
    event = booked("apt-old", datetime(2026, 11, 20, 10, 0, tzinfo=TORONTO))
    decision = decide(event, None, {}, CLINIC, NOW)
    assert decision.applied and decision.intents == ()
    assert {(s.step, s.reason) for s in decision.skipped} >= {("confirmation", "appointment_started")}


def test_a_cancellation_at_night_of_an_early_morning_visit_is_texted_at_once() -> None:
    # Quiet hours would hold it past the visit: the patient must not come for nothing.
    night = datetime(2026, 11, 25, 3, 0, tzinfo=TORONTO)
    first = booked("apt-early", datetime(2026, 11, 25, 7, 30, tzinfo=TORONTO))
    decision = decide(cancelled(first, 2), state_after(first), {}, CLINIC, night)
    assert due_by(decision, "cancellation_notice") == {"email": night, "sms": night}
