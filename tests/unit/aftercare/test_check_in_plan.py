"""What a completed visit sets in motion: advice today, soreness check-ins over the next two days."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.aftercare.domain.check_ins import AftercarePlan, check_in_id, plan_aftercare
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.delivery.context import appointment_context
from shared.events.appointment import AppointmentCompleted, AppointmentType
from shared.events.patient import ChannelConsent
from shared.ledger.model import DeliveryIntent
from tests.support.events import booked, completed, patient

TORONTO = ZoneInfo("America/Toronto")
CLINIC_FILE = Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml"


@pytest.fixture(scope="module")
def clinic() -> ClinicConfig:
    return load_clinic_config(CLINIC_FILE)


def toronto(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=TORONTO)


def visit_completed_at(finished: datetime, appointment_id: str = "apt-dn-1",
                       type: AppointmentType = AppointmentType.DRY_NEEDLING, **who: object) -> AppointmentCompleted:
    visit = booked(appointment_id, finished - timedelta(minutes=30), occurred_at=finished - timedelta(days=3),
                   who=patient(**who), type=type)
    return completed(visit, sequence=2, completed_at=finished)


def advice(plan: AftercarePlan) -> list[DeliveryIntent]:
    return [intent for intent in plan.intents if intent.template == "aftercare_advice"]


def check_in_messages(plan: AftercarePlan) -> list[DeliveryIntent]:
    return [intent for intent in plan.intents if intent.template == "soreness_check_in"]


def local(moment: datetime) -> datetime:
    return moment.astimezone(TORONTO)


def test_a_dry_needling_visit_at_four_gets_advice_now_and_two_check_in_rounds(clinic: ClinicConfig) -> None:
    finished = toronto(9, 16)
    now = finished + timedelta(minutes=2)

    plan = plan_aftercare(visit_completed_at(finished), clinic, now)

    assert {(m.channel, m.recipient, m.due_at) for m in advice(plan)} == {
        ("email", "alex.tremblay@example.com", now),
        ("sms", "+14165550123", now),
    }
    assert [(c.round, c.rounds, local(c.due_at), c.channels) for c in plan.check_ins] == [
        (1, 2, toronto(10, 16), ("email", "sms")),
        (2, 2, toronto(11, 16), ("email", "sms")),
    ]
    assert sorted((local(m.due_at), m.channel) for m in check_in_messages(plan)) == [
        (toronto(10, 16), "email"), (toronto(10, 16), "sms"),
        (toronto(11, 16), "email"), (toronto(11, 16), "sms"),
    ]
    assert plan.skipped == ()


def test_both_channels_of_a_round_carry_the_same_check_in_id_so_either_answer_counts(clinic: ClinicConfig) -> None:
    plan = plan_aftercare(visit_completed_at(toronto(9, 16)), clinic, toronto(9, 16, 2))

    for check_in in plan.check_ins:
        messages = [m for m in check_in_messages(plan) if m.context["extra"]["check_in_id"] == check_in.id]
        assert {m.channel for m in messages} == {"email", "sms"}
        assert {(m.context["extra"]["round"], m.context["extra"]["rounds"]) for m in messages} == {(check_in.round, 2)}
    assert len({c.id for c in plan.check_ins}) == 2
    assert [c.id for c in plan.check_ins] == [check_in_id("apt-dn-1", 1), check_in_id("apt-dn-1", 2)]


def test_the_same_completed_visit_planned_twice_gives_the_same_check_in_ids(clinic: ClinicConfig) -> None:
    event = visit_completed_at(toronto(9, 16))

    first = plan_aftercare(event, clinic, toronto(9, 16, 2))
    replayed = plan_aftercare(event, clinic, toronto(9, 16, 7))

    assert [c.id for c in replayed.check_ins] == [c.id for c in first.check_ins]
    assert [c.id for c in plan_aftercare(visit_completed_at(toronto(9, 16), "apt-dn-2"), clinic,
                                         toronto(9, 16, 2)).check_ins] != [c.id for c in first.check_ins]


def test_a_patient_who_did_not_agree_to_texts_gets_advice_and_check_ins_by_email_only(clinic: ClinicConfig) -> None:
    event = visit_completed_at(toronto(9, 16), consent=ChannelConsent(email=True, sms=False))

    plan = plan_aftercare(event, clinic, toronto(9, 16, 2))

    assert {m.channel for m in plan.intents} == {"email"}
    assert [(c.round, c.channels) for c in plan.check_ins] == [(1, ("email",)), (2, ("email",))]
    assert len(check_in_messages(plan)) == 2


def test_a_visit_finished_at_half_past_ten_gets_its_check_in_texts_after_eight_but_emails_on_time(
    clinic: ClinicConfig,
) -> None:
    finished = toronto(9, 22, 30)

    plan = plan_aftercare(visit_completed_at(finished), clinic, finished + timedelta(minutes=2))

    texts = sorted(local(m.due_at) for m in check_in_messages(plan) if m.channel == "sms")
    emails = sorted(local(m.due_at) for m in check_in_messages(plan) if m.channel == "email")
    assert texts == [toronto(11, 8), toronto(12, 8)]
    assert all(8 <= moment.hour < 21 for moment in texts)
    assert emails == [toronto(10, 22, 30), toronto(11, 22, 30)]
    # Each round is still one check-in: the text and the email of a round share its id.
    for check_in in plan.check_ins:
        assert {m.channel for m in check_in_messages(plan) if m.context["extra"]["check_in_id"] == check_in.id} == {
            "email", "sms"}


def test_an_appointment_type_without_check_ins_gets_the_advice_only(clinic: ClinicConfig) -> None:
    assert clinic.check_in_schedule(AppointmentType.MASSAGE_THERAPY.value) is None
    event = visit_completed_at(toronto(9, 16), type=AppointmentType.MASSAGE_THERAPY)

    plan = plan_aftercare(event, clinic, toronto(9, 16, 2))

    assert plan.check_ins == ()
    assert {(m.template, m.channel) for m in plan.intents} == {("aftercare_advice", "email"),
                                                               ("aftercare_advice", "sms")}


def test_a_french_speaking_patient_gets_everything_in_french(clinic: ClinicConfig) -> None:
    plan = plan_aftercare(visit_completed_at(toronto(9, 16), locale="fr-CA"), clinic, toronto(9, 16, 2))

    assert {m.locale for m in plan.intents} == {"fr-CA"}


def test_each_message_of_a_visit_carries_the_appointment_and_only_its_own_extras(clinic: ClinicConfig) -> None:
    finished = toronto(2, 15)
    visit = visit_completed_at(finished)
    plan = plan_aftercare(visit, clinic, finished)

    for intent in plan.intents:
        assert intent.context == appointment_context(visit, **intent.context["extra"])
    assert {str(intent.context["extra"]) for intent in advice(plan)} == {
        str({"needled_near_chest": visit.needled_near_chest})}
    rounds = sorted({(i.context["extra"]["round"], i.context["extra"]["check_in_id"], i.context["extra"]["rounds"])
                     for i in plan.intents if i.template != "aftercare_advice"})
    assert rounds == [(c.round, c.id, len(plan.check_ins)) for c in plan.check_ins]
