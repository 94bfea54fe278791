"""What one answer to a check-in changes, decided without a database."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.aftercare.domain.answers import Answer, decide_answer
from services.aftercare.domain.check_ins import CheckIn, CheckInStatus
from services.aftercare.domain.no_reply import decide_silence
from services.aftercare.domain.reply_parser import parse_reply
from services.aftercare.domain.triage import TriageAction
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.events.aftercare import EscalationRaised, ReplyRecorded
from shared.topics import AFTERCARE_ALERTS, AFTERCARE_RECORDS

CLINIC_FILE = Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml"
NOW = datetime(2026, 6, 10, 17, 0, tzinfo=ZoneInfo("America/Toronto"))
PHONE = "+14165550123"


@pytest.fixture(scope="module")
def clinic() -> ClinicConfig:
    return load_clinic_config(CLINIC_FILE)


def check_in(round_: int, status: CheckInStatus = CheckInStatus.SCHEDULED, score: int | None = None) -> CheckIn:
    return CheckIn(id=f"ci-{round_}", appointment_id="apt-1", round=round_, rounds=2, phone=PHONE, email=None,
                   locale="en-CA", context={"patient": {"first_name": "Alex"}, "extra": {"patient_name": "Alex"}},
                   due_at=NOW, status=status, score=score, unreadable_replies=0)


def text(body: str, phone: str = PHONE, carrier_answered: bool = False) -> Answer:
    return Answer("reply-1", "sms", body, phone, "SM-1", wants_reply=not carrier_answered)


def test_a_2_out_of_10_answers_the_check_in_ends_the_rest_and_is_reassured(clinic: ClinicConfig) -> None:
    round_1 = check_in(1)

    decision = decide_answer(text("2"), parse_reply("2"), round_1, [round_1, check_in(2)], clinic, NOW)

    assert decision.triage.action is TriageAction.REASSURE
    assert decision.check_in is not None
    assert decision.check_in.answered_with == 2
    assert decision.check_in.end_check_ins_because == "check_ins_ended:reassure"
    assert decision.response is not None and decision.response.template == "check_in_reassurance"
    assert decision.staff_messages == () and decision.consent == ()
    assert [(p.topic, type(p.event)) for p in decision.publications] == [(AFTERCARE_RECORDS, ReplyRecorded)]


def test_a_6_after_a_5_the_day_before_pages_the_on_call_clinician(clinic: ClinicConfig) -> None:
    yesterday, today = check_in(1, CheckInStatus.ANSWERED, score=5), check_in(2)

    decision = decide_answer(text("6"), parse_reply("6"), today, [yesterday, today], clinic, NOW)

    assert decision.triage.action is TriageAction.ESCALATE
    assert {(m.channel, m.template) for m in decision.staff_messages} == {("email", "staff_alert"),
                                                                          ("sms", "staff_alert")}
    assert [m.context["extra"]["previous_score"] for m in decision.staff_messages] == [5, 5]
    alert, recorded = decision.publications
    assert (alert.topic, alert.key, type(alert.event)) == (AFTERCARE_ALERTS, "apt-1", EscalationRaised)
    assert recorded.topic == AFTERCARE_RECORDS


def test_stop_with_chest_pain_escalates_and_still_opts_the_number_out(clinic: ClinicConfig) -> None:
    round_1 = check_in(1)
    body = "please stop texting me, I have chest pain"

    decision = decide_answer(text(body), parse_reply(body), round_1, [round_1], clinic, NOW)

    assert decision.triage.action is TriageAction.ESCALATE and decision.triage.urgent_911_advice
    assert [(c.channel, c.address, c.subscribed) for c in decision.consent] == [("sms", PHONE, False)]
    assert decision.cancel_texts_to == PHONE


def test_stop_the_carrier_already_confirmed_ends_texts_not_the_check_ins(clinic: ClinicConfig) -> None:
    round_1 = check_in(1)

    decision = decide_answer(text("STOP", carrier_answered=True), parse_reply("STOP"), round_1, [round_1], clinic, NOW)

    assert decision.triage.action is TriageAction.OPT_OUT
    assert decision.check_in is not None and decision.check_in.end_check_ins_because is None
    assert decision.response is None
    assert decision.cancel_texts_to == PHONE


def test_a_text_from_an_unknown_number_goes_to_staff_by_email_without_advice(clinic: ClinicConfig) -> None:
    stranger = "+14165550188"

    decision = decide_answer(text("3", phone=stranger), parse_reply("3"), None, [], clinic, NOW)

    assert decision.triage.action is TriageAction.REFER_TO_STAFF
    assert "no_open_check_in" in decision.triage.reasons
    assert decision.check_in is None and decision.response is None
    assert [(m.channel, m.appointment_id) for m in decision.staff_messages] == [("email", f"unmatched:{stranger}")]
    assert [p.key for p in decision.publications] == ["unmatched"]


def test_a_text_to_a_closed_check_in_gets_no_advice(clinic: ClinicConfig) -> None:
    closed = check_in(1, CheckInStatus.CLOSED)

    decision = decide_answer(text("4"), parse_reply("4"), closed, [closed], clinic, NOW)

    assert decision.triage.action is TriageAction.REFER_TO_STAFF
    assert decision.check_in is not None and decision.check_in.answered_with is None


def test_a_visit_with_an_answered_round_is_not_silence(clinic: ClinicConfig) -> None:
    last = check_in(2)

    answered = decide_silence(last, [check_in(1, CheckInStatus.ANSWERED, score=3), last], clinic, NOW)
    silent = decide_silence(last, [check_in(1), last], clinic, NOW)

    assert (answered.event, answered.staff_messages) == (None, ())
    assert silent.event is not None and silent.event.check_ins == 2
    assert [(m.channel, m.template, m.step) for m in silent.staff_messages] == [
        ("email", "staff_review", "staff_review:no_reply")]


def test_stored_statuses_keep_their_values() -> None:
    assert [status.value for status in CheckInStatus] == ["scheduled", "answered", "closed", "no_reply"]
    assert replace(check_in(1), status=CheckInStatus("answered")).is_open is False
