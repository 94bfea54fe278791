"""Pre-visit screening end to end: the guidance email links to the form, the practitioner hears what matters.

The e2e clinic config sends guidance 12 s before the start; the form's link closes at the start.
"""
from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime

import httpx
import pytest

from shared.topics import AFTERCARE_RECORDS
from tests.e2e.conftest import System
from tests.e2e.test_aftercare import events_about, sms_bodies
from tests.support.channels import wait_for_mails
from tests.unit.templates.test_templates import treatment_words_in

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
PRACTITIONER_EMAIL = "sam.lee@harbourfront-clinic.example"  # "Sam Lee" in tests/e2e/clinic-e2e.yaml
LINK = re.compile(r"http://127\.0\.0\.1:\d+/screening/[A-Za-z0-9_=-]+")
# The form's question and what the page says once it is sent, in the patient's language.
SAID = {
    "en-CA": ("Do you take blood thinners", "Your practitioner will review this with you before needling."),
    "fr-CA": ("Prenez-vous des anticoagulants", "Votre praticien(ne) les reverra avec vous avant la puncture."),
}


@pytest.mark.parametrize("locale", ["en-CA", "fr-CA"])
async def test_a_patient_on_blood_thinners_is_flagged_to_the_practitioner_before_needling(
    system: System, locale: str
) -> None:
    question, next_steps = SAID[locale]
    patient = system.new_patient(locale=locale)
    start = datetime.fromtimestamp(time.time() + 20, UTC).replace(microsecond=0)
    booking = system.book(patient, start)
    appointment_id = booking["appointment_id"]

    [guidance] = wait_for_mails(system.sink, patient.email, 1, timeout=25,
                                where=lambda mail: "/screening/" in mail.body("plain"))
    [link] = set(LINK.findall(guidance.body("plain")))
    assert f'href="{link}"' in guidance.body("html")

    form = httpx.get(link, timeout=10)
    assert form.status_code == 200
    assert question in html.unescape(form.text)
    page = httpx.post(link, data={"blood_thinners": "yes", "needle_fear": "no", "anything_else": ""}, timeout=10)
    assert page.status_code == 200
    assert next_steps in html.unescape(page.text)
    assert time.time() < start.timestamp()

    [flagged] = wait_for_mails(system.sink, PRACTITIONER_EMAIL, 1, timeout=10,
                               where=lambda mail: appointment_id in mail.body("plain"))
    body = flagged.body("plain")
    assert "Do you take blood thinners, or do you have a bleeding disorder?" in body
    assert "afraid of needles" not in body  # a "no" is not sent
    assert flagged.received_at < start.timestamp()

    [event] = await events_about(AFTERCARE_RECORDS, system.kafka.bootstrap_servers, appointment_id, 1)
    assert (event["event_type"], event["flagged"], event["practitioner_notified"]) == (
        "ScreeningSubmitted", ["blood_thinners"], True)
    for sms in sms_bodies(system, patient.phone):
        assert treatment_words_in(sms) == []
        assert not any(word in sms.lower() for word in ("anticoagulant", "blood thinner", "questionnaire",
                                                         "screening", "bleeding"))
