"""A patient answers their reminder by text; the booking system, the front desk and the patient hear of it.

The visit is Thursday 10:00 in Toronto, booked a week before; its reminders go out Wednesday 10:00 and
Thursday 08:00 (deploy/clinic.yaml), as the notifier reports on clinic.deliveries.v1: a text is read
against the reminder the patient really got. Every story runs on SQLite and on PostgreSQL, through the
service as `bootstrap.build` wires it.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from services.aftercare.tables import upcoming_visits
from shared.events.deliveries import DeliveryStatusChanged
from shared.topics import APPOINTMENT_REQUESTS
from tests.integration.aftercare.conftest import PATIENT_PHONE, TORONTO, Aftercare
from tests.support.events import booked, cancelled, completed, patient, rescheduled

VISIT_AT = datetime(2026, 6, 11, 10, 0, tzinfo=TORONTO)
FIRST_REMINDER = VISIT_AT - timedelta(hours=24)
AFTER_FIRST_REMINDER = VISIT_AT - timedelta(hours=20)
FRONT_DESK = "front-desk@harbourfront-clinic.example"


async def a_booked_visit(aftercare: Aftercare, appointment_id: str = "apt-r-1", locale: str = "en-CA",
                         starts_at: datetime = VISIT_AT, reminded: bool = True) -> None:
    """A visit booked a week ahead whose first reminder text went out (`reminded`), four hours ago."""
    event = booked(appointment_id, starts_at, occurred_at=starts_at - timedelta(days=7), who=patient(locale=locale))
    aftercare.clock.set(starts_at - timedelta(days=7))
    await aftercare.completed_visits.handle_batch([event])
    if reminded:
        await the_notifier_reports(aftercare, appointment_id, at=starts_at - timedelta(hours=24))
    aftercare.clock.set(AFTER_FIRST_REMINDER)


async def the_notifier_reports(aftercare: Aftercare, appointment_id: str = "apt-r-1", *, at: datetime,
                               status: str = "sent", source: str = "dispatcher", step: str = "reminder_24h",
                               error_code: str | None = None, version: int = 1) -> None:
    """What the notifier publishes on clinic.deliveries.v1 about one of its reminder texts (a ledger row per
    step and appointment version), as aftercare consumes it."""
    await aftercare.parts.sent_reminders.handle_batch([DeliveryStatusChanged(
        occurred_at=at, appointment_id=appointment_id, delivery_id=f"d-{appointment_id}-{step}-v{version}",
        service="notifier",
        step=step, channel="sms", template="reminder", source=source, status=status, error_code=error_code,
    )])


async def requests(aftercare: Aftercare, event_type: str) -> list[dict[str, object]]:
    return await aftercare.published(event_type, APPOINTMENT_REQUESTS)


async def test_a_confirmation_reaches_the_booking_system_and_the_patient_is_thanked(aftercare: Aftercare) -> None:
    await a_booked_visit(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-c", PATIENT_PHONE, "C")

    [confirmed] = await requests(aftercare, "AppointmentConfirmed")
    assert (confirmed["_key"], confirmed["appointment_id"], confirmed["reply_excerpt"]) == ("apt-r-1", "apt-r-1", "C")
    assert outcome.response_text is not None and "confirmed" in outcome.response_text
    assert "10:00 a.m." in outcome.response_text
    assert await requests(aftercare, "ChangeRequested") == []
    assert await aftercare.published("ReplyRecorded") == []  # not taken for a check-in answer
    [reply] = await aftercare.replies()
    assert (reply.intent, reply.action, reply.check_in_id) == ("reminder_confirm", "confirmed", None)


async def test_a_french_change_request_emails_the_front_desk_and_answers_in_french(aftercare: Aftercare) -> None:
    await a_booked_visit(aftercare, locale="fr-CA")

    outcome = await aftercare.answers.sms_reply("SM-r", PATIENT_PHONE, "je dois annuler")

    [request] = await requests(aftercare, "ChangeRequested")
    assert request["appointment_id"] == "apt-r-1" and request["reply_excerpt"] == "je dois annuler"
    [email] = await aftercare.messages("staff_change_request", "apt-r-1")
    assert (email.channel, email.recipient) == ("email", FRONT_DESK)
    rendered = aftercare.composer.catalogue.render_email(
        email.template, email.locale, aftercare.composer.render_context(email.context, "email", email.recipient,
                                                                        email.locale, True))
    assert "Alex Tremblay" in rendered.text and "(416) 555-0123" in rendered.text
    assert outcome.response_text is not None and "La réception vous appellera" in outcome.response_text


async def test_an_unclear_reply_is_asked_again_and_nothing_is_published(aftercare: Aftercare) -> None:
    await a_booked_visit(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-m", PATIENT_PHONE, "maybe")

    assert outcome.response_text is not None and "reply C to confirm or R to change" in outcome.response_text
    assert await requests(aftercare, "AppointmentConfirmed") == []
    assert await requests(aftercare, "ChangeRequested") == []
    assert await aftercare.messages("staff_change_request") == []


async def test_stop_after_a_reminder_still_opts_the_number_out(aftercare: Aftercare) -> None:
    await a_booked_visit(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-s", PATIENT_PHONE, "STOP")

    assert [row.phone for row in await aftercare.sms_suppressed()] == [PATIENT_PHONE]
    assert outcome.response_text is not None and "START" in outcome.response_text
    assert await requests(aftercare, "AppointmentConfirmed") == []
    assert await requests(aftercare, "ChangeRequested") == []


async def test_a_retried_webhook_confirms_once(aftercare: Aftercare) -> None:
    await a_booked_visit(aftercare)

    first = await aftercare.answers.sms_reply("SM-c", PATIENT_PHONE, "yes")
    again = await aftercare.answers.sms_reply("SM-c", PATIENT_PHONE, "yes")
    another_yes = await aftercare.answers.sms_reply("SM-c2", PATIENT_PHONE, "yes I'll be there")

    assert again.response_text == first.response_text and not again.recorded
    assert another_yes.response_text == first.response_text
    assert len(await requests(aftercare, "AppointmentConfirmed")) == 1


async def test_before_the_reminder_and_after_the_visit_started_a_text_is_not_a_reminder_answer(
        aftercare: Aftercare) -> None:
    await a_booked_visit(aftercare)
    aftercare.clock.set(VISIT_AT - timedelta(hours=30))  # the first reminder goes out in 6 hours
    await aftercare.answers.sms_reply("SM-early", PATIENT_PHONE, "C")
    aftercare.clock.set(VISIT_AT + timedelta(minutes=5))
    await aftercare.answers.sms_reply("SM-late", PATIENT_PHONE, "C")

    assert await requests(aftercare, "AppointmentConfirmed") == []
    assert [reply.intent.startswith("reminder_") for reply in await aftercare.replies()] == [False, False]


async def test_a_cancelled_visit_takes_no_answer_and_a_reschedule_asks_again(aftercare: Aftercare) -> None:
    event = booked("apt-r-1", VISIT_AT, occurred_at=VISIT_AT - timedelta(days=7))
    aftercare.clock.set(VISIT_AT - timedelta(days=7))
    await aftercare.completed_visits.handle_batch([event])
    await the_notifier_reports(aftercare, at=FIRST_REMINDER)
    aftercare.clock.set(AFTER_FIRST_REMINDER)
    await aftercare.answers.sms_reply("SM-1", PATIENT_PHONE, "C")
    moved = rescheduled(event, VISIT_AT + timedelta(days=1), sequence=2)
    await aftercare.completed_visits.handle_batch([moved, event])  # an old event after a newer one changes nothing

    [row] = await aftercare.rows(select(upcoming_visits))
    assert (row.sequence, row.starts_at, row.answer) == (2, VISIT_AT + timedelta(days=1), None)

    await aftercare.completed_visits.handle_batch([cancelled(event, sequence=3)])
    aftercare.clock.set(VISIT_AT + timedelta(days=1) - timedelta(hours=20))
    await aftercare.answers.sms_reply("SM-2", PATIENT_PHONE, "C")
    assert len(await requests(aftercare, "AppointmentConfirmed")) == 1  # the first one only


async def test_a_check_in_sent_after_the_reminder_is_what_the_text_answers(aftercare: Aftercare) -> None:
    # A visit completed Tuesday 16:00: its first check-in goes out Wednesday 16:00, after the next
    # visit's reminder (Wednesday 10:00).
    await a_booked_visit(aftercare)
    await aftercare.visit_completed("apt-dn-1")
    await aftercare.time_passes_until(datetime(2026, 6, 10, 17, 0, tzinfo=TORONTO))  # the check-in text goes out

    outcome = await aftercare.answers.sms_reply("SM-3", PATIENT_PHONE, "3")

    assert outcome.decision is not None  # triaged as a soreness score
    assert await requests(aftercare, "AppointmentConfirmed") == []
    [check_in] = [c for c in await aftercare.check_ins_of("apt-dn-1") if c.round == 1]
    assert check_in.score == 3


async def test_a_completed_visit_is_no_longer_waiting_for_an_answer(aftercare: Aftercare) -> None:
    event = booked("apt-r-1", VISIT_AT, occurred_at=VISIT_AT - timedelta(days=7))
    aftercare.clock.set(VISIT_AT - timedelta(days=7))
    await aftercare.completed_visits.handle_batch([event, completed(event, sequence=2)])

    [row] = await aftercare.rows(select(upcoming_visits))
    assert row.status == "completed"


@pytest.mark.parametrize("reports", [
    pytest.param([], id="never-sent"),
    pytest.param([("dispatcher", "skipped", None)], id="skipped"),
    pytest.param([("dispatcher", "failed", "21211")], id="failed"),
    pytest.param([("dispatcher", "sent", None), ("provider", "undelivered", "30003")], id="undelivered"),
])
async def test_a_reminder_the_patient_never_got_is_not_what_their_text_answers(
        aftercare: Aftercare, reports: list[tuple[str, str, str | None]]) -> None:
    # The schedule planned Wednesday's reminder, but it never reached the phone: "C" answers nothing.
    await a_booked_visit(aftercare, reminded=False)
    for source, status, code in reports:
        await the_notifier_reports(aftercare, at=FIRST_REMINDER, source=source, status=status, error_code=code)

    outcome = await aftercare.answers.sms_reply("SM-c", PATIENT_PHONE, "C")

    assert await requests(aftercare, "AppointmentConfirmed") == []
    assert outcome.response_text is None or "confirmed" not in outcome.response_text
    [reply] = await aftercare.replies()
    assert not reply.intent.startswith("reminder_")


async def test_a_check_in_due_but_not_yet_sent_leaves_the_reminder_as_the_last_message(
        aftercare: Aftercare) -> None:
    # Tuesday's visit's check-in falls due Wednesday 16:00, but no text has gone out yet (the SMS channel
    # is held up): at 17:00 the last text the phone got is still Wednesday 10:00's reminder.
    await a_booked_visit(aftercare)
    await aftercare.visit_completed("apt-dn-1")
    aftercare.clock.set(datetime(2026, 6, 10, 17, 0, tzinfo=TORONTO))

    outcome = await aftercare.answers.sms_reply("SM-c", PATIENT_PHONE, "C")

    assert len(await requests(aftercare, "AppointmentConfirmed")) == 1
    assert outcome.response_text is not None and "confirmed" in outcome.response_text


async def test_of_two_reminders_one_undelivered_the_one_that_arrived_is_answered(aftercare: Aftercare) -> None:
    await a_booked_visit(aftercare)  # Wednesday 10:00's arrived
    two_hours_before = VISIT_AT - timedelta(hours=2)
    await the_notifier_reports(aftercare, at=two_hours_before, step="reminder_2h")
    await the_notifier_reports(aftercare, at=two_hours_before + timedelta(seconds=20), step="reminder_2h",
                               source="provider", status="undelivered", error_code="30003")
    await the_notifier_reports(aftercare, at=two_hours_before + timedelta(seconds=30), step="reminder_2h",
                               source="provider", status="delivered")  # a late report cannot undo it
    aftercare.clock.set(VISIT_AT - timedelta(hours=1))

    await aftercare.answers.sms_reply("SM-c", PATIENT_PHONE, "yes")

    assert len(await requests(aftercare, "AppointmentConfirmed")) == 1


async def test_a_reminder_sent_before_a_reschedule_is_not_what_a_text_about_the_new_time_answers(
        aftercare: Aftercare) -> None:
    event = booked("apt-r-1", VISIT_AT, occurred_at=VISIT_AT - timedelta(days=7))
    aftercare.clock.set(VISIT_AT - timedelta(days=7))
    await aftercare.completed_visits.handle_batch([event])
    await the_notifier_reports(aftercare, at=FIRST_REMINDER)
    new_time = VISIT_AT + timedelta(days=2)
    moved_at = AFTER_FIRST_REMINDER
    await aftercare.completed_visits.handle_batch([
        rescheduled(event, new_time, sequence=2).model_copy(update={"occurred_at": moved_at})])
    aftercare.clock.set(moved_at + timedelta(minutes=5))

    await aftercare.answers.sms_reply("SM-1", PATIENT_PHONE, "C")  # after the reschedule notice
    assert await requests(aftercare, "AppointmentConfirmed") == []

    await the_notifier_reports(aftercare, at=new_time - timedelta(hours=24), version=2)  # the new time's reminder
    aftercare.clock.set(new_time - timedelta(hours=23))
    await aftercare.answers.sms_reply("SM-2", PATIENT_PHONE, "C")
    [confirmed] = await requests(aftercare, "AppointmentConfirmed")
    assert datetime.fromisoformat(str(confirmed["starts_at"])) == new_time
