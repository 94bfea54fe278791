"""Pre-visit screening: the clinic's questions, the link in the guidance email, and what the practitioner hears."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.aftercare.domain.screening import (
    MAX_TEXT_CHARS,
    EarlierSubmission,
    decide_submission,
    read_form,
)
from shared.clinic_config import ClinicConfig, ClinicConfigError, load_clinic_config
from shared.delivery.compose import MessageComposer
from shared.delivery.context import appointment_context
from shared.events.appointment import AppointmentType
from shared.links import InvalidLink, PatientLinks
from shared.screening_links import ScreeningClaims, read_screening_token, screening_token
from shared.templates.catalogue import TemplateCatalogue
from tests.support.events import booked, patient

CLINIC_FILE = Path(__file__).resolve().parents[3] / "deploy" / "clinic.yaml"
CLINIC = load_clinic_config(CLINIC_FILE)
LINKS = PatientLinks("https://care.example", "a-secret-only-the-tests-know-and-keep")
NOW = datetime(2026, 6, 8, 14, 0, tzinfo=UTC)
STARTS = NOW + timedelta(hours=48)
CLAIMS = ScreeningClaims("apt-dn-1", "fr-CA", "dry_needling", "Jordan Lee, PT", "downtown", STARTS)


def config_with(change: Any, tmp_path: Path) -> Path:
    raw = yaml.safe_load(CLINIC_FILE.read_text(encoding="utf-8"))
    change(raw["screening"])
    path = tmp_path / "clinic.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


# --- the clinic's configuration ---

def test_needling_visits_ask_the_screening_questions_and_other_visits_ask_none() -> None:
    needling = [question_id for question_id, _ in CLINIC.screening.questions_for("dry_needling")]
    assert {"blood_thinners", "pregnancy", "implanted_device", "needle_fear", "metal_allergy",
            "immune_or_diabetes", "skin_at_area", "lymphoedema"} <= set(needling)
    assert CLINIC.screening.questions_for("medical_acupuncture")
    assert CLINIC.screening.questions_for("physiotherapy") == ()
    assert CLINIC.screening.questions_for("massage_therapy") == ()


def test_a_practitioner_without_an_address_of_their_own_is_reached_at_the_clinic() -> None:
    assert CLINIC.screening_recipient("Jordan Lee, PT") == "jordan.lee@harbourfront-clinic.example"
    assert CLINIC.screening_recipient("Someone New") == str(CLINIC.clinic.email)


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["ask"]["dry_needling"].append("blod_thinners"), "unknown question id"),
    (lambda s: s["questions"]["pregnancy"]["text"].pop("fr-CA"), "missing \\['fr-CA'\\]"),
    (lambda s: s["questions"]["pregnancy"]["text"].update({"es-MX": "¿Embarazada?"}), "unknown \\['es-MX'\\]"),
    (lambda s: s["questions"]["pregnancy"].update(kind="scale"), "kind"),
    (lambda s: s["ask"].update(cupping=["pregnancy"]), "unknown appointment type"),
    (lambda s: s["ask"]["dry_needling"].append("pregnancy"), "listed twice"),
])
def test_start_up_refuses_a_screening_config_it_cannot_ask(change: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ClinicConfigError, match=message):
        load_clinic_config(config_with(change, tmp_path))


def test_a_clinic_without_screening_asks_nothing() -> None:
    raw = yaml.safe_load(CLINIC_FILE.read_text(encoding="utf-8"))
    del raw["screening"]
    assert ClinicConfig.model_validate(raw).screening.questions_for("dry_needling") == ()


# --- the link ---

def test_the_link_carries_the_appointment_and_reads_back_until_the_visit_starts() -> None:
    token = screening_token(LINKS, CLAIMS)
    for secret in ("apt-dn-1", "Jordan", "dry_needling"):
        assert secret not in token  # encrypted, not only signed
    assert read_screening_token(LINKS, token, NOW) == CLAIMS
    assert read_screening_token(LINKS, token, STARTS - timedelta(seconds=1)) == CLAIMS
    with pytest.raises(InvalidLink, match="expired"):
        read_screening_token(LINKS, token, STARTS)


def test_a_tampered_or_foreign_token_is_refused() -> None:
    token = screening_token(LINKS, CLAIMS)
    with pytest.raises(InvalidLink, match="invalid"):
        read_screening_token(LINKS, token[:-4] + "AAAA", NOW)
    with pytest.raises(InvalidLink, match="invalid"):
        read_screening_token(PatientLinks("https://care.example", "another-secret-of-another-clinic"), token, NOW)
    check_in_token = LINKS.encrypt_token("check-in", {"check_in": "ci-1"})
    with pytest.raises(InvalidLink, match="invalid"):
        read_screening_token(LINKS, check_in_token, NOW)


@pytest.mark.parametrize("locale", ["en-CA", "fr-CA"])
def test_the_guidance_email_of_a_needling_visit_links_to_the_form_in_the_patients_language(locale: str) -> None:
    composer = MessageComposer(TemplateCatalogue(), CLINIC, LINKS)
    event = booked("apt-dn-7", STARTS, who=patient(locale=locale))
    context = composer.render_context(appointment_context(event), "email", "alex@example.com", locale)
    url = context["links"]["screening"]
    assert url and url.startswith("https://care.example/screening/")
    claims = read_screening_token(LINKS, url.rsplit("/", 1)[1], NOW)
    assert (claims.appointment_id, claims.locale, claims.appointment_type, claims.practitioner, claims.starts_at) == (
        "apt-dn-7", locale, "dry_needling", "Sam Lee", STARTS)
    email = TemplateCatalogue().render_email("pre_session_guidance", locale, context)
    assert url in email.text and f'href="{url}"' in email.html
    sms = composer.render_context(appointment_context(event), "sms", "+14165550123", locale)
    assert sms["links"]["screening"] is None


def test_a_visit_that_asks_nothing_gets_guidance_without_a_form_link() -> None:
    composer = MessageComposer(TemplateCatalogue(), CLINIC, LINKS)
    event = booked("apt-pt-1", STARTS, type=AppointmentType.PHYSIOTHERAPY)
    context = composer.render_context(appointment_context(event), "email", "alex@example.com", "en-CA")
    assert context["links"]["screening"] is None
    assert "/screening/" not in TemplateCatalogue().render_email("pre_session_guidance", "en-CA", context).text


# --- reading the form ---

QUESTIONS = CLINIC.screening.questions_for("dry_needling")


def test_the_form_keeps_yes_no_and_text_answers_and_ignores_fields_it_did_not_ask() -> None:
    reading = read_form({"blood_thinners": "yes", "pregnancy": "no", "anything_else": " dizzy \r\nsometimes ",
                         "shoe_size": "44", "needle_fear": ""}, QUESTIONS)
    assert reading.acceptable
    assert reading.answers == {"blood_thinners": "yes", "pregnancy": "no", "anything_else": "dizzy \nsometimes"}


def test_a_text_answer_over_the_limit_or_a_strange_yes_no_is_not_acceptable() -> None:
    assert read_form({"anything_else": "x" * MAX_TEXT_CHARS}, QUESTIONS).acceptable
    assert read_form({"anything_else": "x" * (MAX_TEXT_CHARS + 1)}, QUESTIONS).too_long == ("anything_else",)
    assert read_form({"pregnancy": "maybe"}, QUESTIONS).invalid == ("pregnancy",)


# --- what the practitioner hears ---

def test_answers_that_matter_make_one_email_to_the_practitioner_naming_the_questions() -> None:
    decision = decide_submission(CLAIMS, {"blood_thinners": "yes", "pregnancy": "no"}, None, CLINIC, NOW)
    [email] = decision.staff_messages
    assert (email.template, email.channel, email.recipient) == (
        "staff_screening", "email", "jordan.lee@harbourfront-clinic.example")
    assert email.expires_at == STARTS
    assert [item["id"] for item in email.context["extra"]["flagged"]] == ["blood_thinners"]
    assert decision.event.flagged == ["blood_thinners"] and decision.event.practitioner_notified


def test_nothing_that_matters_sends_nothing_but_is_still_recorded() -> None:
    decision = decide_submission(CLAIMS, {"blood_thinners": "no", "pregnancy": "no"}, None, CLINIC, NOW)
    assert decision.staff_messages == ()
    assert decision.event.flagged == [] and not decision.event.practitioner_notified
    assert decision.answers == {"blood_thinners": "no", "pregnancy": "no"}


def test_the_event_names_the_flagged_questions_and_never_the_patients_words() -> None:
    words = "I had a heart attack in March"
    decision = decide_submission(CLAIMS, {"anything_else": words, "needle_fear": "yes"}, None, CLINIC, NOW)
    assert decision.event.flagged == ["needle_fear", "anything_else"]
    assert words not in decision.event.model_dump_json()
    [email] = decision.staff_messages
    assert {"id": "anything_else", "answer": words}.items() <= email.context["extra"]["flagged"][1].items()


def test_a_second_submission_replaces_the_first_and_the_practitioner_hears_only_what_changed() -> None:
    first = decide_submission(CLAIMS, {"blood_thinners": "yes"}, None, CLINIC, NOW)
    earlier = EarlierSubmission(1, first.answers, first.flagged)
    same = decide_submission(CLAIMS, {"blood_thinners": "yes", "pregnancy": "no"}, earlier, CLINIC, NOW)
    assert same.submission == 2 and same.replaces_earlier and same.staff_messages == ()
    withdrawn = decide_submission(CLAIMS, {"blood_thinners": "no"}, earlier, CLINIC, NOW)
    [update] = withdrawn.staff_messages
    assert update.step == "screening_2" and update.context["extra"] == {
        "submission": 2, "replaces_earlier": True, "flagged": []}


def test_answers_to_questions_this_visit_does_not_ask_are_dropped() -> None:
    claims = dataclasses.replace(CLAIMS, appointment_type="physiotherapy")
    decision = decide_submission(claims, {"blood_thinners": "yes"}, None, CLINIC, NOW)
    assert decision.answers == {} and decision.staff_messages == ()
