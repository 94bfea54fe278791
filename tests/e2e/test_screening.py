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

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
PRACTITIONER_EMAIL = "sam.lee@harbourfront-clinic.example"  # "Sam Lee" in tests/e2e/clinic-e2e.yaml
LINK = re.compile(r"http://127\.0\.0\.1:\d+/screening/[A-Za-z0-9_=-]+")


async def test_a_french_patient_on_blood_thinners_is_flagged_to_the_practitioner_before_needling(
    system: System,
) -> None:
    patient = system.new_patient(locale="fr-CA")
    start = datetime.fromtimestamp(time.time() + 20, UTC).replace(microsecond=0)
    booking = system.book(patient, start)
    appointment_id = booking["appointment_id"]

    [guidance] = wait_for_mails(system.sink, patient.email, 1, timeout=25,
                                where=lambda mail: "/screening/" in mail.body("plain"))
    [link] = set(LINK.findall(guidance.body("plain")))
    assert f'href="{link}"' in guidance.body("html")

    form = httpx.get(link, timeout=10)
    assert form.status_code == 200
    assert "Prenez-vous des anticoagulants" in html.unescape(form.text)
    page = httpx.post(link, data={"blood_thinners": "yes", "needle_fear": "no", "anything_else": ""}, timeout=10)
    assert page.status_code == 200
    assert "Votre praticien(ne) les reverra avec vous avant la puncture." in html.unescape(page.text)
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
        assert "anticoagulant" not in sms.lower() and "questionnaire" not in sms.lower()
        assert "puncture" not in sms.lower() and "aiguille" not in sms.lower()
