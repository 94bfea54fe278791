"""A patient answers the soreness check-in; the clinic's records show what happened next.

Every story runs on SQLite and on PostgreSQL. The visit ends Tuesday 16:00 in Toronto; the check-ins
go out Wednesday and Thursday at 16:00, by text and by email.
"""
from __future__ import annotations

from datetime import timedelta

from services.aftercare.domain.triage import TriageAction
from shared.ledger.model import DeliveryStatus
from shared.topics import AFTERCARE_ALERTS, AFTERCARE_RECORDS, CONSENT
from tests.integration.aftercare.conftest import (
    ON_CALL_EMAIL,
    ON_CALL_PHONE,
    PATIENT_PHONE,
    ROUND_1,
    ROUND_2,
    Aftercare,
)

AN_HOUR = timedelta(hours=1)


async def a_visit_answered_at_round_1(aftercare: Aftercare, appointment_id: str = "apt-dn-1") -> None:
    await aftercare.visit_completed(appointment_id)
    await aftercare.time_passes_until(ROUND_1 + AN_HOUR)


async def round_2_check_ins(aftercare: Aftercare, appointment_id: str = "apt-dn-1",
                           channel: str | None = None) -> list[str]:
    return [m.status for m in await aftercare.messages("soreness_check_in", appointment_id)
            if m.due_at >= ROUND_2 and channel in (None, m.channel)]


async def test_the_completed_visit_is_on_record_with_its_two_check_ins(aftercare: Aftercare) -> None:
    await aftercare.visit_completed()

    assert [(c.round, c.status, c.phone) for c in await aftercare.check_ins_of("apt-dn-1")] == [
        (1, "scheduled", PATIENT_PHONE), (2, "scheduled", PATIENT_PHONE)]
    assert len(await aftercare.messages("aftercare_advice")) == 2
    assert len(await aftercare.messages("soreness_check_in")) == 4
    assert [e["round"] for e in await aftercare.published("CheckInScheduled", AFTERCARE_RECORDS)] == [1, 2]


async def test_the_same_completed_visit_delivered_twice_plans_its_check_ins_once(aftercare: Aftercare) -> None:
    event = await aftercare.visit_completed()
    await aftercare.completed_visits(event)

    assert len(await aftercare.check_ins_of("apt-dn-1")) == 2
    assert len(await aftercare.messages("soreness_check_in")) == 4
    assert len(await aftercare.published("CheckInScheduled")) == 2


async def test_an_8_out_of_10_alerts_the_on_call_clinician_and_stops_the_check_ins(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-8", PATIENT_PHONE, "8")

    assert outcome.decision is not None and outcome.decision.action is TriageAction.ESCALATE
    assert "911" in (outcome.response_text or "")
    alerts = await aftercare.messages("staff_alert", "apt-dn-1")
    assert {(a.channel, a.recipient, a.status) for a in alerts} == {
        ("email", ON_CALL_EMAIL, DeliveryStatus.PENDING), ("sms", ON_CALL_PHONE, DeliveryStatus.PENDING)}
    assert all(a.due_at == ROUND_1 + AN_HOUR for a in alerts)
    [raised] = await aftercare.published("EscalationRaised")
    assert raised["_topic"] == AFTERCARE_ALERTS
    assert (raised["appointment_id"], raised["score"], raised["reasons"]) == ("apt-dn-1", 8, ["score_at_or_above:7"])
    assert raised["urgent_911_advice"] is False
    assert await round_2_check_ins(aftercare) == [DeliveryStatus.CANCELLED, DeliveryStatus.CANCELLED]
    check_ins = await aftercare.check_ins_of("apt-dn-1")
    assert [(c.status, c.score) for c in check_ins] == [("answered", 8), ("closed", None)]


async def test_the_on_call_alert_tells_the_clinician_who_to_call_and_what_they_said(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)
    await aftercare.answers.sms_reply("SM-8", PATIENT_PHONE, "8")

    async with aftercare.engine.connect() as connection:
        [alert_email] = [d for d in await aftercare.ledger.for_appointment(connection, "apt-dn-1")
                         if d.template == "staff_alert" and d.channel == "email"]
    email = aftercare.composer.email(alert_email, aftercare.clock.now())

    assert "Alex Tremblay" in email.subject and "8/10" in email.subject
    [call_back] = [line for line in email.text.splitlines() if line.startswith("Call back:")]
    assert "".join(c for c in call_back if c.isdigit()).endswith("4165550123")  # however it is formatted
    assert '"8"' in email.text


async def test_a_2_out_of_10_is_reassured_and_tomorrows_check_in_is_called_off(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-2", PATIENT_PHONE, "2")

    assert outcome.decision is not None and outcome.decision.action is TriageAction.REASSURE
    assert "normal" in (outcome.response_text or "")
    check_ins = await aftercare.check_ins_of("apt-dn-1")
    assert [(c.status, c.score) for c in check_ins] == [("answered", 2), ("closed", None)]
    assert await round_2_check_ins(aftercare) == [DeliveryStatus.CANCELLED, DeliveryStatus.CANCELLED]
    assert await aftercare.messages("staff_alert") == []
    [recorded] = await aftercare.published("ReplyRecorded", AFTERCARE_RECORDS)
    assert (recorded["score"], recorded["action"]) == (2, "reassure")


async def test_a_5_then_a_6_the_next_day_is_getting_worse_and_alerts_the_clinician(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)
    first = await aftercare.answers.sms_reply("SM-5", PATIENT_PHONE, "5")
    assert first.decision is not None and first.decision.action is TriageAction.CARE_ADVICE
    assert await round_2_check_ins(aftercare) == [DeliveryStatus.PENDING, DeliveryStatus.PENDING]

    await aftercare.time_passes_until(ROUND_2 + AN_HOUR)
    second = await aftercare.answers.sms_reply("SM-6", PATIENT_PHONE, "6")

    assert second.decision is not None and second.decision.action is TriageAction.ESCALATE
    [raised] = await aftercare.published("EscalationRaised", AFTERCARE_ALERTS)
    assert (raised["score"], raised["previous_score"], raised["reasons"]) == (6, 5, ["worse_than_previous:5->6"])
    assert {a.recipient for a in await aftercare.messages("staff_alert")} == {ON_CALL_EMAIL, ON_CALL_PHONE}
    assert [(c.round, c.score) for c in await aftercare.check_ins_of("apt-dn-1")] == [(1, 5), (2, 6)]


async def test_a_5_then_a_4_is_easing_and_gets_care_advice_without_an_alert(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)
    await aftercare.answers.sms_reply("SM-5", PATIENT_PHONE, "5")
    await aftercare.time_passes_until(ROUND_2 + AN_HOUR)

    outcome = await aftercare.answers.sms_reply("SM-4", PATIENT_PHONE, "4")

    assert outcome.decision is not None and outcome.decision.action is TriageAction.CARE_ADVICE
    assert "heat" in (outcome.response_text or "")
    assert await aftercare.messages("staff_alert") == []
    assert await aftercare.published("EscalationRaised") == []
    assert [(c.status, c.score) for c in await aftercare.check_ins_of("apt-dn-1")] == [("answered", 5), ("answered", 4)]


async def test_an_unreadable_reply_is_asked_again_and_a_second_one_goes_to_staff(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)

    first = await aftercare.answers.sms_reply("SM-q1", PATIENT_PHONE, "???")
    assert first.decision is not None and first.decision.action is TriageAction.ASK_TO_CLARIFY
    assert "number from 0" in (first.response_text or "")
    assert await aftercare.messages("staff_review") == []

    second = await aftercare.answers.sms_reply("SM-q2", PATIENT_PHONE, "?? !!")

    assert second.decision is not None and second.decision.action is TriageAction.REFER_TO_STAFF
    # Not urgent: the on-call clinician reads it by email rather than being paged.
    assert {(r.channel, r.recipient) for r in await aftercare.messages("staff_review", "apt-dn-1")} == {
        ("email", ON_CALL_EMAIL)}
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")
    assert (round_1.status, round_1.unreadable_replies) == ("scheduled", 2)
    assert await aftercare.published("EscalationRaised") == []


async def test_twilio_retrying_the_same_text_is_recorded_once_and_answered_the_same(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)

    first = await aftercare.answers.sms_reply("SM-retried", PATIENT_PHONE, "5")
    again = await aftercare.answers.sms_reply("SM-retried", PATIENT_PHONE, "5")

    assert (first.recorded, again.recorded) == (True, False)
    assert again.response_text == first.response_text and first.response_text
    assert len(await aftercare.replies()) == 1
    assert len(await aftercare.published("ReplyRecorded")) == 1


async def test_stop_opts_the_number_out_for_good_and_leaves_the_confirmation_to_the_carrier(
    aftercare: Aftercare,
) -> None:
    await a_visit_answered_at_round_1(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-stop", PATIENT_PHONE, "STOP", carrier_answered=True)

    assert outcome.decision is not None and outcome.decision.action is TriageAction.OPT_OUT
    assert outcome.response_text is None
    assert [(s.phone, s.source) for s in await aftercare.sms_suppressed()] == [(PATIENT_PHONE, "sms_keyword")]
    assert [(a.channel, a.address, a.subscribed) for a in await aftercare.consent_trail()] == [
        ("sms", PATIENT_PHONE, False)]
    [changed] = await aftercare.published("ConsentChanged", CONSENT)
    assert (changed["channel"], changed["address"], changed["subscribed"]) == ("sms", PATIENT_PHONE, False)
    # STOP ends the texts; the email check-in still comes unless the patient unsubscribes there too.
    assert await round_2_check_ins(aftercare, channel="sms") == [DeliveryStatus.CANCELLED]
    assert await round_2_check_ins(aftercare, channel="email") == [DeliveryStatus.PENDING]
    [reply] = await aftercare.replies()
    assert (reply.action, reply.response) == ("opt_out", None)


async def test_stop_without_the_carrier_answering_is_confirmed_by_us(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-stop", PATIENT_PHONE, "STOP")

    assert "no more text messages" in (outcome.response_text or "")
    assert len(await aftercare.sms_suppressed()) == 1


async def test_asking_to_stop_while_reporting_chest_pain_alerts_staff_and_still_opts_out(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-chest", PATIENT_PHONE, "please stop texting me, I have chest pain")

    assert outcome.decision is not None and outcome.decision.action is TriageAction.ESCALATE
    assert "911" in (outcome.response_text or "")
    [raised] = await aftercare.published("EscalationRaised", AFTERCARE_ALERTS)
    assert "red_flag:chest_pain" in raised["reasons"] and raised["urgent_911_advice"] is True
    assert {a.recipient for a in await aftercare.messages("staff_alert")} == {ON_CALL_EMAIL, ON_CALL_PHONE}
    assert [s.phone for s in await aftercare.sms_suppressed()] == [PATIENT_PHONE]
    [changed] = await aftercare.published("ConsentChanged", CONSENT)
    assert changed["subscribed"] is False


async def test_a_text_from_a_number_we_never_wrote_to_goes_to_staff_without_advice(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)
    stranger = "+14165550188"

    outcome = await aftercare.answers.sms_reply("SM-stranger", stranger, "3")

    assert outcome.decision is not None and outcome.decision.action is TriageAction.REFER_TO_STAFF
    assert "no_open_check_in" in outcome.decision.reasons
    assert outcome.response_text is None
    [review_email] = await aftercare.messages("staff_review")
    assert review_email.recipient == ON_CALL_EMAIL
    assert review_email.context["extra"]["patient_phone"] == stranger
    assert [c.status for c in await aftercare.check_ins_of("apt-dn-1")] == ["scheduled", "scheduled"]
    [reply] = await aftercare.replies()
    assert reply.check_in_id is None


async def test_a_text_before_the_first_check_in_went_out_goes_to_staff(aftercare: Aftercare) -> None:
    await aftercare.visit_completed()
    await aftercare.time_passes_until(ROUND_1 - 3 * AN_HOUR)

    outcome = await aftercare.answers.sms_reply("SM-early", PATIENT_PHONE, "2")

    assert outcome.decision is not None and outcome.decision.action is TriageAction.REFER_TO_STAFF
    assert outcome.response_text is None
    assert [c.status for c in await aftercare.check_ins_of("apt-dn-1")] == ["scheduled", "scheduled"]


async def test_a_score_clicked_twice_from_the_email_is_recorded_once(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")

    first = await aftercare.answers.web_score(round_1.id, 5)
    second = await aftercare.answers.web_score(round_1.id, 5)

    assert first is not None and first.recorded and first.decision is not None
    assert first.decision.action is TriageAction.CARE_ADVICE
    assert second is not None and (second.recorded, second.decision) == (False, None)
    assert [(r.via, r.score) for r in await aftercare.replies()] == [("web", 5)]
    [answered, _] = await aftercare.check_ins_of("apt-dn-1")
    assert (answered.status, answered.score, answered.answered_via) == ("answered", 5, "web")


async def test_a_note_about_numbness_in_the_arm_alerts_the_clinician(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")

    outcome = await aftercare.answers.web_note(round_1.id, "numbness in my arm")

    assert outcome is not None and outcome.decision is not None
    assert outcome.decision.action is TriageAction.ESCALATE
    [raised] = await aftercare.published("EscalationRaised", AFTERCARE_ALERTS)
    assert raised["reasons"] == ["red_flag:numbness"]
    assert {a.recipient for a in await aftercare.messages("staff_alert")} == {ON_CALL_EMAIL, ON_CALL_PHONE}
    [noted, _] = await aftercare.check_ins_of("apt-dn-1")
    assert noted.note == "numbness in my arm"


async def test_a_reassuring_note_is_kept_for_the_therapist_without_an_alert(aftercare: Aftercare) -> None:
    await a_visit_answered_at_round_1(aftercare)
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")

    outcome = await aftercare.answers.web_note(round_1.id, "a bit stiff but fine")

    assert outcome is not None and outcome.decision is None
    assert await aftercare.messages("staff_alert") == []
    [noted, _] = await aftercare.check_ins_of("apt-dn-1")
    assert noted.note == "a bit stiff but fine"


async def test_a_patient_who_never_answers_is_reported_to_staff_after_the_last_round(aftercare: Aftercare) -> None:
    await aftercare.visit_completed("apt-silent")
    await aftercare.visit_completed("apt-answered", phone="+14165550124", email="sam.roy@example.com")
    await aftercare.time_passes_until(ROUND_1 + AN_HOUR)
    await aftercare.answers.sms_reply("SM-5", "+14165550124", "5")
    await aftercare.time_passes_until(ROUND_2 + aftercare.clinic.aftercare.reply_window - AN_HOUR)
    assert await aftercare.silence.sweep() == 0

    await aftercare.time_passes_until(ROUND_2 + aftercare.clinic.aftercare.reply_window + timedelta(minutes=1))
    reported = await aftercare.silence.sweep()

    assert reported == 1
    [silence] = await aftercare.published("NoReplyRecorded", AFTERCARE_RECORDS)
    assert (silence["appointment_id"], silence["check_ins"]) == ("apt-silent", 2)
    [review] = await aftercare.messages("staff_review")
    assert (review.appointment_id, review.channel, review.recipient) == ("apt-silent", "email", ON_CALL_EMAIL)
    assert review.context["extra"]["reasons"] == ["no_reply"]
    assert [c.status for c in await aftercare.check_ins_of("apt-silent")] == ["no_reply", "no_reply"]
    assert [c.status for c in await aftercare.check_ins_of("apt-answered")] == ["answered", "no_reply"]
    assert await aftercare.silence.sweep() == 0
