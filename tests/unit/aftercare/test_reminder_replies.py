"""A text answering a reminder: what it means, in which context, and what it records, without a database."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.aftercare.domain.answers import Answer
from services.aftercare.domain.reminder_replies import (
    ReminderAnswer,
    ReminderReading,
    UpcomingStatus,
    UpcomingVisit,
    decide_reminder_reply,
    read_reminder_reply,
    visit_answered,
)
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.events.booking_requests import AppointmentConfirmed, ChangeRequested
from shared.topics import APPOINTMENT_REQUESTS

CLINIC_FILE = Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml"
TORONTO = ZoneInfo("America/Toronto")
VISIT_AT = datetime(2026, 6, 10, 10, 0, tzinfo=TORONTO)  # reminders (deploy/clinic.yaml): 24 h and 2 h before
BOOKED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=TORONTO)
PHONE = "+14165550123"


@pytest.fixture(scope="module")
def clinic() -> ClinicConfig:
    return load_clinic_config(CLINIC_FILE)


def visit(locale: str = "en-CA", **changes: object) -> UpcomingVisit:
    booked = UpcomingVisit(
        appointment_id="apt-1", sequence=1, phone=PHONE, locale=locale, appointment_type="dry_needling",
        starts_at=VISIT_AT, status=UpcomingStatus.BOOKED, planned_at=BOOKED_AT,
        context={"patient": {"first_name": "Alex", "time_zone": "America/Toronto"},
                 "appointment": {"id": "apt-1", "starts_at": VISIT_AT.isoformat()},
                 "extra": {"patient_name": "Alex Tremblay"}},
    )
    return replace(booked, **changes)  # type: ignore[arg-type]  # test shorthand: fields by name


def text(body: str) -> Answer:
    return Answer("reply-1", "sms", body, PHONE, "SM-1")


REPLIES = [
    # English
    ("C", ReminderReading.CONFIRM), ("c.", ReminderReading.CONFIRM), ("yes", ReminderReading.CONFIRM),
    ("Yes I'll be there", ReminderReading.CONFIRM), ("confirmed", ReminderReading.CONFIRM),
    ("R", ReminderReading.CHANGE), ("can I move it", ReminderReading.CHANGE),
    ("I need to reschedule", ReminderReading.CHANGE), ("sorry, I can't make it", ReminderReading.CHANGE),
    ("yes but can I move it to Friday?", ReminderReading.CHANGE),
    ("ok?", ReminderReading.UNCLEAR), ("maybe", ReminderReading.UNCLEAR), ("yes?", ReminderReading.UNCLEAR),
    ("no", ReminderReading.UNCLEAR), ("I'll be there, or can I move it?", ReminderReading.UNCLEAR),
    ("what time is it again", ReminderReading.UNCLEAR),
    # French
    ("oui", ReminderReading.CONFIRM), ("Oui!", ReminderReading.CONFIRM), ("je serai là", ReminderReading.CONFIRM),
    ("Je confirme", ReminderReading.CONFIRM), ("je dois annuler", ReminderReading.CHANGE),
    ("je voudrais changer", ReminderReading.CHANGE), ("je ne serai pas là", ReminderReading.CHANGE),
    ("peut-être", ReminderReading.UNCLEAR), ("d'accord?", ReminderReading.UNCLEAR),
    # Carrier keywords keep their meaning in the reminder's context: CANCEL opts out at Twilio
    ("STOP", ReminderReading.OPT_OUT), ("ARRÊT", ReminderReading.OPT_OUT), ("cancel", ReminderReading.OPT_OUT),
    ("stop sending me reminders", ReminderReading.OPT_OUT), ("HELP", ReminderReading.HELP),
    ("aide", ReminderReading.HELP), ("START", ReminderReading.OPT_IN),
    # A red flag is never taken for an answer to the reminder
    ("R, my chest hurts and I can't breathe", ReminderReading.HEALTH_CONCERN),
]


@pytest.mark.parametrize(("body", "reading"), REPLIES)
def test_a_reply_to_a_reminder_is_read_in_both_languages(body: str, reading: ReminderReading) -> None:
    assert read_reminder_reply(body) is reading


FIRST_REMINDER = VISIT_AT - timedelta(hours=24)  # when the notifier reported it sent

CONTEXTS = [
    # (when the text arrives, when the reminder went out, when the last check-in text went out, status,
    #  whether it answers the reminder)
    (VISIT_AT - timedelta(hours=20), FIRST_REMINDER, None, UpcomingStatus.BOOKED, True),
    (VISIT_AT - timedelta(hours=20), None, None, UpcomingStatus.BOOKED, False),  # no reminder went out
    (VISIT_AT - timedelta(hours=30), FIRST_REMINDER, None, UpcomingStatus.BOOKED, False),  # not out yet
    (VISIT_AT + timedelta(minutes=1), FIRST_REMINDER, None, UpcomingStatus.BOOKED, False),  # the visit has started
    (VISIT_AT - timedelta(hours=20), FIRST_REMINDER, None, UpcomingStatus.CANCELLED, False),
    (VISIT_AT - timedelta(hours=20), BOOKED_AT - timedelta(days=1), None, UpcomingStatus.BOOKED, False),  # old time
    (VISIT_AT - timedelta(hours=20), FIRST_REMINDER, VISIT_AT - timedelta(hours=23), UpcomingStatus.BOOKED,
     False),  # a check-in text went out after the reminder
    (VISIT_AT - timedelta(hours=20), FIRST_REMINDER, VISIT_AT - timedelta(hours=30), UpcomingStatus.BOOKED,
     True),  # the reminder went out after the check-in
    (VISIT_AT - timedelta(hours=1), VISIT_AT - timedelta(hours=2), VISIT_AT - timedelta(hours=23),
     UpcomingStatus.BOOKED, True),  # the 2 h one
]


@pytest.mark.parametrize(("now", "reminder_at", "check_in_at", "status", "answers_reminder"), CONTEXTS)
def test_a_text_answers_the_reminder_only_when_it_was_the_last_message_sent_within_its_window(
        now: datetime, reminder_at: datetime | None, check_in_at: datetime | None, status: UpcomingStatus,
        answers_reminder: bool) -> None:
    sent = {"apt-1": reminder_at} if reminder_at else {}
    answered = visit_answered([visit(status=status)], sent, now, check_in_at)
    assert (answered is not None) is answers_reminder


def test_of_two_visits_the_text_answers_the_one_reminded_last() -> None:
    later = visit(appointment_id="apt-2", starts_at=VISIT_AT + timedelta(hours=3))
    now = VISIT_AT - timedelta(hours=1)  # apt-1's 2 h reminder at 08:00, apt-2's 24 h one the day before
    sent = {"apt-1": VISIT_AT - timedelta(hours=2), "apt-2": VISIT_AT - timedelta(hours=21)}
    assert visit_answered([later, visit()], sent, now, None) == visit()


NOW = VISIT_AT - timedelta(hours=20)


@pytest.mark.parametrize("locale", ["en-CA", "fr-CA"])
def test_a_confirmation_publishes_appointment_confirmed_and_thanks_the_patient(clinic: ClinicConfig,
                                                                              locale: str) -> None:
    decision = decide_reminder_reply(text("oui"), ReminderReading.CONFIRM, visit(locale), clinic, NOW)
    assert decision is not None
    assert decision.answer is ReminderAnswer.CONFIRMED
    [publication] = decision.publications
    assert publication.topic == APPOINTMENT_REQUESTS and publication.key == "apt-1"
    assert isinstance(publication.event, AppointmentConfirmed)
    assert publication.event.starts_at == VISIT_AT and publication.event.reply_excerpt == "oui"
    assert decision.staff_messages == ()
    assert decision.response is not None
    assert (decision.response.template, decision.response.locale) == ("reminder_confirmed_reply", locale)


def test_a_change_request_publishes_change_requested_and_emails_the_front_desk(clinic: ClinicConfig) -> None:
    decision = decide_reminder_reply(text("R"), ReminderReading.CHANGE, visit("fr-CA"), clinic, NOW)
    assert decision is not None
    assert decision.answer is ReminderAnswer.CHANGE_REQUESTED
    [publication] = decision.publications
    assert isinstance(publication.event, ChangeRequested)
    [email] = decision.staff_messages
    assert (email.channel, email.template, email.recipient) == (
        "email", "staff_change_request", str(clinic.clinic.front_desk_email))
    assert email.context["extra"]["patient_phone"] == PHONE
    assert decision.response is not None
    assert (decision.response.template, decision.response.locale) == ("reminder_change_reply", "fr-CA")


def test_without_a_front_desk_address_the_clinic_address_gets_the_email(clinic: ClinicConfig) -> None:
    plain = clinic.model_copy(update={"clinic": clinic.clinic.model_copy(update={"front_desk_email": None})})
    decision = decide_reminder_reply(text("R"), ReminderReading.CHANGE, visit(), plain, NOW)
    assert decision is not None and decision.staff_messages[0].recipient == str(clinic.clinic.email)


@pytest.mark.parametrize("body", ["ok?", "maybe", "peut-être"])
def test_an_unclear_reply_is_asked_again_and_nothing_is_published(clinic: ClinicConfig, body: str) -> None:
    decision = decide_reminder_reply(text(body), read_reminder_reply(body), visit(), clinic, NOW)
    assert decision is not None
    assert decision.answer is None and decision.publications == () and decision.staff_messages == ()
    assert decision.response is not None and decision.response.template == "reminder_clarification"


@pytest.mark.parametrize("body", ["STOP", "HELP", "START", "ARRET", "my chest hurts"])
def test_keywords_and_red_flags_are_not_reminder_answers(clinic: ClinicConfig, body: str) -> None:
    assert decide_reminder_reply(text(body), read_reminder_reply(body), visit(), clinic, NOW) is None


def test_the_same_answer_again_is_answered_but_not_published_twice(clinic: ClinicConfig) -> None:
    confirmed = visit(answer=ReminderAnswer.CONFIRMED)
    again = decide_reminder_reply(text("yes"), ReminderReading.CONFIRM, confirmed, clinic, NOW)
    assert again is not None and again.publications == () and again.answer is None
    assert again.response is not None and again.response.template == "reminder_confirmed_reply"
    changed_mind = decide_reminder_reply(text("R"), ReminderReading.CHANGE, confirmed, clinic, NOW)
    assert changed_mind is not None and isinstance(changed_mind.publications[0].event, ChangeRequested)


def test_a_long_reply_travels_as_an_excerpt(clinic: ClinicConfig) -> None:
    body = "I need to reschedule " + "because of work " * 40
    decision = decide_reminder_reply(text(body), ReminderReading.CHANGE, visit(), clinic, NOW)
    assert decision is not None
    excerpt = decision.publications[0].event.model_dump()["reply_excerpt"]
    assert len(excerpt) == 160 and body.startswith(excerpt[:-1])
