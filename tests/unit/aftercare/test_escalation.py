"""The escalation chain's rules: who is paged when, what a staff "OK" acknowledges, what staff messages say."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.aftercare.domain.escalation import (
    Escalation,
    EscalationStatus,
    acknowledge,
    decide_staff_text,
    free_reference,
    next_step,
    open_escalation,
)
from shared.clinic_config import ClinicConfig, ClinicConfigError, load_clinic_config
from shared.events.aftercare import EscalationRaised, StaffRole
from shared.events.appointment import AppointmentType
from shared.ledger.model import DeliveryIntent
from shared.templates.catalogue import LOCALES, TemplateCatalogue
from shared.templates.sample import sample_context
from tests.unit.templates.test_templates import treatment_words_in

CLINIC_FILE = Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml"
RAISED = datetime(2026, 6, 10, 18, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def clinic() -> ClinicConfig:
    return load_clinic_config(CLINIC_FILE)


def link(role: StaffRole) -> str:
    return f"https://care.example/escalation/{role}"


def opened(clinic: ClinicConfig, reference: str = "4821", reply_id: str = "r-1") -> Escalation:
    raised = EscalationRaised(occurred_at=RAISED, reply_id=reply_id, check_in_id="c-1", appointment_id="apt-1",
                              score=3, previous_score=None, reasons=["red_flag:chest_pain"], urgent_911_advice=True)
    alert = tuple(DeliveryIntent("apt-1", f"staff_alert:{reply_id}", channel, 0, "staff_alert", to, "en-CA", RAISED,
                                 {"extra": {"patient_name": "Alex"}})
                  for channel, to in (("email", "on-call@x.example"), ("sms", "+14165550177")))
    change = open_escalation(raised, alert, reference, link("on_call"), clinic, RAISED)
    assert all(m.context["extra"]["escalation_reference"] == reference for m in change.staff_messages)
    assert all(m.context["extra"]["acknowledge_url"] == link("on_call") for m in change.staff_messages)
    return change.escalation


def test_nothing_is_due_until_the_on_call_clinician_had_the_full_15_minutes(clinic: ClinicConfig) -> None:
    escalation = opened(clinic)
    assert next_step(escalation, clinic, RAISED + 14 * MINUTE + timedelta(seconds=59), link) is None
    step = next_step(escalation, clinic, RAISED + 15 * MINUTE, link)
    assert step is not None
    assert {(m.template, m.channel, m.recipient) for m in step.staff_messages} == {
        ("staff_escalation_page", "email", "backup@harbourfront-clinic.example"),
        ("staff_escalation_page", "sms", "+14165550166")}
    assert all(m.context["extra"]["acknowledge_url"] == link("backup") for m in step.staff_messages)
    assert (step.expected_paged, step.escalation.paged) == (1, 2)


def test_then_the_lead_then_the_chain_is_exhausted(clinic: ClinicConfig) -> None:
    escalation = opened(clinic)
    moments = [RAISED + 15 * MINUTE, RAISED + 30 * MINUTE, RAISED + 45 * MINUTE]
    kinds = []
    for moment in moments:
        step = next_step(escalation, clinic, moment, link)
        assert step is not None
        kinds.append([(s.kind, s.role) for s in step.steps])
        escalation = step.escalation
    assert kinds == [[("paged", "backup")] * 2, [("paged", "lead")] * 2, [("exhausted", None)]]
    assert escalation.status is EscalationStatus.EXHAUSTED
    assert next_step(escalation, clinic, RAISED + 24 * 60 * MINUTE, link) is None


def test_an_acknowledged_escalation_pages_nobody_and_a_second_acknowledgement_changes_nothing(
    clinic: ClinicConfig,
) -> None:
    change = acknowledge(opened(clinic), "on_call", "sms", clinic, RAISED + 2 * MINUTE)
    assert change is not None
    [event] = change.events
    assert event.model_dump()["contact_name"] == "On-call physiotherapist"
    assert next_step(change.escalation, clinic, RAISED + 60 * MINUTE, link) is None
    assert acknowledge(change.escalation, "backup", "email_link", clinic, RAISED + 3 * MINUTE) is None


@pytest.mark.parametrize("text", ["OK", "ok", "Ack", "ACK.", " okay ", "acknowledged"])
def test_a_bare_ok_acknowledges_the_one_open_escalation(clinic: ClinicConfig, text: str) -> None:
    escalation = opened(clinic)
    assert decide_staff_text(text, "on_call", [escalation], clinic).escalation == escalation


def test_with_several_open_a_bare_ok_asks_for_the_reference_and_ok_1234_takes_that_one(clinic: ClinicConfig) -> None:
    first, second = opened(clinic, "1111", "r-1"), opened(clinic, "2222", "r-2")
    ambiguous = decide_staff_text("OK", "on_call", [first, second], clinic)
    assert ambiguous.escalation is None and "1111" in ambiguous.reply and "2222" in ambiguous.reply
    assert decide_staff_text("OK 2222", "on_call", [first, second], clinic).escalation == second
    assert decide_staff_text("ack #1111", "on_call", [first, second], clinic).escalation == first
    assert decide_staff_text("OK 9999", "on_call", [first, second], clinic).escalation is None


def test_a_backup_not_yet_paged_has_nothing_to_acknowledge_without_a_reference(clinic: ClinicConfig) -> None:
    escalation = opened(clinic)
    assert decide_staff_text("OK", "backup", [escalation], clinic).escalation is None
    assert decide_staff_text("OK 4821", "backup", [escalation], clinic).escalation == escalation


@pytest.mark.parametrize("text", ["STOP", "Calling her now", "OK, 12", "not ok"])
def test_other_staff_texts_acknowledge_nothing_and_say_how_to(clinic: ClinicConfig, text: str) -> None:
    decision = decide_staff_text(text, "on_call", [opened(clinic)], clinic)
    assert decision.escalation is None and "OK" in decision.reply


def test_a_reference_already_taken_is_not_given_again() -> None:
    draws = iter([4821, 4821, 17])
    assert free_reference({"4821"}, lambda: next(draws)) == "0017"


# --- the clinic config ---

def _config_with(**aftercare: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(CLINIC_FILE.read_text(encoding="utf-8"))
    raw["aftercare"] |= aftercare
    return raw


def test_the_chain_defaults_to_15_minutes(clinic: ClinicConfig) -> None:
    raw = _config_with()
    del raw["aftercare"]["acknowledge_within"]
    assert ClinicConfig.model_validate(raw).aftercare.acknowledge_within == timedelta(minutes=15)
    assert [role for role, _ in clinic.aftercare.escalation_chain()] == ["on_call", "backup", "lead"]


@pytest.mark.parametrize("aftercare", [
    {"backup": {"name": "Same phone", "email": "b@x.example", "phone": "+14165550177"}},
    {"lead": None},
    {"acknowledge_within": "0m"},
    {"lead": {"name": "Front desk", "email": "l@x.example", "phone": "+14165550199"}},  # the clinic's own number
])
def test_a_chain_that_could_not_reach_a_person_stops_the_service_at_start_up(
    tmp_path: Path, aftercare: dict[str, Any],
) -> None:
    path = tmp_path / "clinic.yaml"
    path.write_text(yaml.safe_dump(_config_with(**aftercare)), encoding="utf-8")
    with pytest.raises(ClinicConfigError, match="aftercare"):
        load_clinic_config(path)


# --- the staff messages ---

CATALOGUE = TemplateCatalogue()


@pytest.mark.parametrize("appointment_type", [t.value for t in AppointmentType])
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", ["staff_alert", "staff_escalation_page"])
def test_staff_pages_by_sms_name_no_treatment_and_say_how_to_acknowledge(
    template: str, locale: str, appointment_type: str,
) -> None:
    context = sample_context(appointment_type, locale, template)
    sms = CATALOGUE.render_sms(template, locale, context)
    assert treatment_words_in(sms) == []
    assert "OK 4821" in sms


@pytest.mark.parametrize("locale", LOCALES)
def test_the_page_email_carries_the_acknowledgement_link(locale: str) -> None:
    context = sample_context("dry_needling", locale, "staff_escalation_page")
    email = CATALOGUE.render_email("staff_escalation_page", locale, context)
    url = context["extra"]["acknowledge_url"]
    assert url in email.text and f'href="{url}"' in email.html
    assert "4821" in email.subject and "unsubscribe" not in (email.text + email.html).lower()
