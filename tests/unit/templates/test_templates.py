"""The clinic's messages: complete in both languages, private in SMS, and honest about opting out."""
from __future__ import annotations

import re
import shutil
import unicodedata
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.events.appointment import AppointmentType
from shared.templates.catalogue import LOCALES, TEMPLATES_DIR, MissingTemplates, TemplateCatalogue
from shared.templates.formatting import APPOINTMENT_TYPE_NAMES, format_phone
from shared.templates.required import REQUIRED_TEMPLATES, STAFF_TEMPLATES
from shared.templates.sample import sample_context

CATALOGUE = TemplateCatalogue()
TYPES = [t.value for t in AppointmentType]
TEMPLATES = sorted(REQUIRED_TEMPLATES)
PATIENT_SMS = sorted(t for t, channel in REQUIRED_TEMPLATES if channel == "sms" and t not in STAFF_TEMPLATES)
PATIENT_EMAIL = sorted(
    t for t, channel in REQUIRED_TEMPLATES if channel == "email" and t not in STAFF_TEMPLATES
)
CHECK_IN_SMS = [t for t in PATIENT_SMS if "check_in" in t]
OPT_OUT_HINT = {"en-CA": "Reply STOP to opt out.", "fr-CA": "Répondez ARRET pour vous désabonner."}

# Word stems that would tell a reader of the lock screen what the visit was for.
_TREATMENT_STEMS = (
    "needl", "aiguille", "acupunct", "acuponct", "puncture", "ponction",
    "physio", "massag", "masso", "chiropra", "shockwave", "ondes de choc",
    "injection", "release therapy", "relachement",
)


def _plain(text: str) -> str:
    """Lower case without accents, so 'Puncture sèche' and 'puncture seche' both match."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def treatment_words_in(text: str) -> list[str]:
    """Every treatment name or stem found in a message; empty means the SMS is safe to send."""
    names = {name for by_type in APPOINTMENT_TYPE_NAMES.values() for name in by_type.values()}
    names |= {t.replace("_", " ") for t in TYPES}
    plain = _plain(text)
    return sorted(word for word in names | set(_TREATMENT_STEMS) if _plain(word) in plain)


def asks_to_reply_cancel(text: str) -> bool:
    """Twilio treats CANCEL as an opt-out: a message must never ask for it as a reply."""
    return bool(re.search(r"\bCANCEL\b", text)) or bool(
        re.search(r"\b(reply|text|send|r[ée]pondez)\b[^.]{0,30}\bcancel", text, re.IGNORECASE)
    )


def _toronto(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, 0, tzinfo=ZoneInfo("America/Toronto"))


@pytest.mark.parametrize("appointment_type", TYPES)
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("template", "channel"), TEMPLATES)
def test_every_required_template_renders_in_both_languages_for_every_appointment_type(
    template: str, channel: str, locale: str, appointment_type: str
) -> None:
    context = sample_context(appointment_type, locale, template)
    if channel == "sms":
        assert CATALOGUE.render_sms(template, locale, context).strip()
        return
    email = CATALOGUE.render_email(template, locale, context)
    assert email.subject and "\n" not in email.subject
    assert context["clinic"]["name"] in email.text and context["clinic"]["name"] in email.html
    assert email.html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{locale}">' in email.html


def test_the_real_catalogue_is_complete() -> None:
    CATALOGUE.verify_complete(set(REQUIRED_TEMPLATES))


@pytest.mark.parametrize(("here", "there"), [("en-CA", "fr-CA"), ("fr-CA", "en-CA")])
def test_every_template_file_has_its_counterpart_in_the_other_language(here: str, there: str) -> None:
    names = {path.name for path in (TEMPLATES_DIR / here).iterdir()}
    assert names
    missing = sorted(name for name in names if not (TEMPLATES_DIR / there / name).is_file())
    assert missing == []


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", PATIENT_EMAIL)
def test_every_patient_email_offers_the_unsubscribe_link_and_the_clinic_address(
    template: str, locale: str
) -> None:
    context = sample_context("dry_needling", locale, template)
    email = CATALOGUE.render_email(template, locale, context)
    for part in (email.text, email.html):
        assert context["links"]["unsubscribe"] in part
        assert context["clinic"]["mailing_address"] in part
        assert format_phone(context["clinic"]["phone"]) in part


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", [t for t, _ in TEMPLATES])
def test_html_escapes_a_malicious_name(template: str, locale: str) -> None:
    context = sample_context("dry_needling", locale, template)
    evil = "<script>alert(1)</script>"
    context["patient"]["first_name"] = evil
    context["appointment"]["practitioner"] = evil
    if context["extra"].get("reasons") is not None:
        context["extra"] |= {"patient_name": evil, "reply_text": evil, "reasons": [f"red_flag:{evil}", evil]}
    html = CATALOGUE.render_email(template, locale, context).html
    assert "<script>" not in html
    if template in ("confirmation", "staff_alert"):
        assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en-CA", ["November 26, 2026", "10:00", "a.m."]),
        ("fr-CA", ["26 novembre 2026", "10 h 00"]),
    ],
)
def test_the_confirmation_shows_the_local_time_in_the_patients_language(
    locale: str, expected: list[str]
) -> None:
    # 15:00 UTC is 10:00 in Toronto in November (EST).
    starts_at = datetime.fromisoformat("2026-11-26T15:00:00+00:00")
    context = sample_context("dry_needling", locale, "confirmation", starts_at=starts_at)
    email = CATALOGUE.render_email("confirmation", locale, context)
    for fragment in expected:
        assert fragment in email.text
        assert fragment in email.html
    sms = CATALOGUE.render_sms("confirmation", locale, context)
    assert ("nov." if locale == "fr-CA" else "Nov") in sms and "10" in sms


def test_a_summer_appointment_is_shown_in_daylight_time() -> None:
    context = sample_context("physiotherapy", "en-CA", "reminder", starts_at=_toronto(2026, 7, 14, 16))
    assert "4:00 p.m." in CATALOGUE.render_sms("reminder", "en-CA", context)


@pytest.mark.parametrize("appointment_type", TYPES)
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", PATIENT_SMS)
def test_no_patient_sms_names_a_treatment(template: str, locale: str, appointment_type: str) -> None:
    sms = CATALOGUE.render_sms(template, locale, sample_context(appointment_type, locale, template))
    assert treatment_words_in(sms) == []


@pytest.mark.parametrize(
    ("locale", "body"),
    [
        ("en-CA", "{{ clinic.name }}: your {{ appointment.type | treatment(locale) }} visit is tomorrow."),
        ("fr-CA", "{{ clinic.name }} : apportez une serviette pour les aiguilles."),
    ],
)
def test_the_treatment_check_catches_a_bad_sms(tmp_path: Path, locale: str, body: str) -> None:
    (tmp_path / locale).mkdir()
    (tmp_path / locale / "bad.sms.j2").write_text(body, encoding="utf-8")
    sms = TemplateCatalogue(root=tmp_path).render_sms(
        "bad", locale, sample_context("dry_needling", locale, "bad")
    )
    assert treatment_words_in(sms) != []


def test_the_treatment_check_catches_every_name_in_both_languages() -> None:
    for names in APPOINTMENT_TYPE_NAMES.values():
        for name in names.values():
            assert treatment_words_in(f"Clinic: your {name.upper()} visit") != []


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", PATIENT_SMS)
def test_every_patient_sms_names_the_sender_and_offers_a_keyword(template: str, locale: str) -> None:
    context = sample_context("dry_needling", locale, template)
    sms = CATALOGUE.render_sms(template, locale, context)
    assert context["clinic"]["name"] in sms
    if template == "opt_out_confirmation":
        assert "START" in sms and "STOP" not in sms and "ARRET" not in sms
    else:
        assert sms.endswith(OPT_OUT_HINT[locale])
    assert not asks_to_reply_cancel(sms)
    assert len(sms) <= 320


def test_the_cancel_check_catches_a_bad_reply_instruction() -> None:
    assert asks_to_reply_cancel("Clinic: reply CANCEL to cancel your appointment.")
    assert asks_to_reply_cancel("Clinic: to cancel, reply with cancel")
    assert not asks_to_reply_cancel("Clinic: your appointment has been cancelled. Reply STOP to opt out.")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", CHECK_IN_SMS)
def test_check_in_sms_stay_short_and_mention_911_where_it_matters(template: str, locale: str) -> None:
    sms = CATALOGUE.render_sms(template, locale, sample_context("dry_needling", locale, template))
    assert len(sms) < 320
    if template in ("soreness_check_in", "check_in_escalation_reply", "check_in_care_advice"):
        assert "911" in sms


@pytest.mark.parametrize("locale", LOCALES)
def test_aftercare_sms_mentions_911_without_naming_the_treatment(locale: str) -> None:
    sms = CATALOGUE.render_sms("aftercare_advice", locale, sample_context("dry_needling", locale, "aftercare_advice"))
    assert "911" in sms


@pytest.mark.parametrize("locale", LOCALES)
def test_dry_needling_guidance_explains_the_treatment_and_other_types_get_general_advice(
    locale: str,
) -> None:
    needling = CATALOGUE.render_email(
        "pre_session_guidance", locale, sample_context("dry_needling", locale, "pre_session_guidance")
    )
    massage = CATALOGUE.render_email(
        "pre_session_guidance", locale, sample_context("massage_therapy", locale, "pre_session_guidance")
    )
    assert "15" in needling.text and "30" in needling.text
    assert "acupuncture" in needling.text
    assert "acupuncture" not in massage.text


@pytest.mark.parametrize("locale", LOCALES)
def test_the_check_in_email_lists_every_score_link(locale: str) -> None:
    context = sample_context("dry_needling", locale, "soreness_check_in")
    email = CATALOGUE.render_email("soreness_check_in", locale, context)
    for choice in context["links"]["scores"]:
        assert choice["url"] in email.text
        assert f'href="{choice["url"]}"' in email.html
    assert context["links"]["check_in"] in email.text


@pytest.mark.parametrize("check_in", [None, "http://127.0.0.1:8040/check-in/abc"])
@pytest.mark.parametrize("locale", LOCALES)
def test_the_check_in_email_copes_without_score_links(locale: str, check_in: str | None) -> None:
    context = sample_context("dry_needling", locale, "soreness_check_in")
    context["links"] |= {"scores": [], "check_in": check_in}
    email = CATALOGUE.render_email("soreness_check_in", locale, context)
    assert "/score/" not in email.text + email.html
    assert "911" in email.text
    if check_in:
        assert check_in in email.text
    else:
        assert format_phone(context["clinic"]["phone"]) in email.text


@pytest.mark.parametrize("locale", LOCALES)
def test_a_staff_alert_without_score_reasons_or_text_still_renders(locale: str) -> None:
    context = sample_context("physiotherapy", locale, "staff_alert")
    context["extra"] |= {"score": None, "previous_score": None, "reasons": [], "reply_text": None}
    email = CATALOGUE.render_email("staff_alert", locale, context)
    assert context["extra"]["patient_name"] in email.subject
    assert CATALOGUE.render_sms("staff_alert", locale, context)


@pytest.mark.parametrize(("locale", "words"), [("en-CA", "shortness of breath"), ("fr-CA", "essoufflement")])
def test_the_staff_alert_puts_the_reasons_in_plain_words(locale: str, words: str) -> None:
    context = sample_context("dry_needling", locale, "staff_alert")
    email = CATALOGUE.render_email("staff_alert", locale, context)
    sms = CATALOGUE.render_sms("staff_alert", locale, context)
    assert email.subject.startswith("Aftercare alert:" if locale == "en-CA" else "Alerte de suivi :")
    assert words in email.subject.lower() and words in sms.lower()
    assert "red_flag" not in email.text + email.html + sms
    assert format_phone(context["extra"]["patient_phone"]) in sms  # staff can call the number as shown
    assert context["extra"]["reply_text"] in email.text


def test_a_missing_french_file_is_named_at_start_up(tmp_path: Path) -> None:
    root = tmp_path / "files"
    shutil.copytree(TEMPLATES_DIR, root)
    (root / "fr-CA" / "reminder.sms.j2").unlink()
    with pytest.raises(MissingTemplates, match=r"fr-CA/reminder\.sms"):
        TemplateCatalogue(root=root).verify_complete(set(REQUIRED_TEMPLATES))


def test_a_dotted_name_reads_a_stored_contexts_item_as_jinja_does() -> None:
    """A stored context is dicts: `a.b` is the item `b`, `a.get` and `a.items` still dict's methods (as in
    stock Jinja), a missing item an error."""
    from jinja2 import Environment, StrictUndefined, UndefinedError

    source = ("{{ appointment.starts_at }}|{{ extra.get('note', 'none') }}|{{ extra.items() | list | length }}"
              "|{{ extra['items'] }}")
    context = {"appointment": {"starts_at": "09:00"}, "extra": {"items": "two bags", "get": "a key"}}
    ours = CATALOGUE.environment.from_string(source).render(context)
    assert ours == "09:00|none|2|two bags"
    assert ours == Environment(undefined=StrictUndefined).from_string(source).render(context)
    with pytest.raises(UndefinedError, match="ends_at"):
        CATALOGUE.environment.from_string("{{ appointment.ends_at }}").render(context)
