"""A plan of visits, end to end: the clinician's alert for a worrying score shows the patient's scores so far.

The e2e clinic config sends check-ins 3 s and 8 s after a visit; each reply answers the latest check-in sent.
The patient texts in their language; the clinician's alert is in the staff language.
"""
from __future__ import annotations

import html
import io
import re
import time
import uuid

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import Patient, System, in_days
from tests.e2e.test_aftercare import ON_CALL_EMAIL, sms_bodies
from tests.support.channels import wait_for_mails
from tests.unit.templates.test_templates import treatment_words_in

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]
CHART_CID = "soreness-trajectory@clinic-notify"
CHECK_IN_ASKS = {"en-CA": "how sore are you", "fr-CA": "quel est votre niveau de douleur"}
# Three visits' answers, as a patient of each language texts them: 6, then 4, then 9.
REPLIES = {"en-CA": ("6", "4", "9"), "fr-CA": ("6", "4 sur 10", "neuf")}


def check_in_texts(system: System, patient: Patient) -> list[str]:
    return [body for body in sms_bodies(system, patient.phone) if CHECK_IN_ASKS[patient.locale] in body]


def visit_then_reply(system: System, patient: Patient, score: str, wait_for_rounds: int) -> None:
    """A completed visit, its check-in texts, then the patient's reply to the latest one."""
    before = len(check_in_texts(system, patient))
    booking = system.book(patient, in_days(0.1))
    system.change(booking["appointment_id"], "complete", {"needled_near_chest": False})
    deadline = time.monotonic() + 30
    while len(check_in_texts(system, patient)) < before + wait_for_rounds:
        assert time.monotonic() < deadline, "the check-in texts did not go out"
        time.sleep(0.1)
    assert system.twilio.text_in(patient.phone, score)["status"] == 200


@pytest.mark.parametrize("locale", ["en-CA", "fr-CA"])
def test_the_alert_for_a_third_visit_s_worrying_score_carries_the_chart_of_all_three(
        system: System, locale: str) -> None:
    patient = system.new_patient(locale=locale)
    patient.patient_id = f"pt-plan-{uuid.uuid4().hex[:8]}"
    first, second, third = REPLIES[locale]
    # Both rounds of a visit are out before the reply, so the next visit's check-in is the latest one.
    visit_then_reply(system, patient, first, wait_for_rounds=2)
    visit_then_reply(system, patient, second, wait_for_rounds=2)
    visit_then_reply(system, patient, third, wait_for_rounds=1)

    [alert] = wait_for_mails(system.sink, ON_CALL_EMAIL, 1, timeout=20,
                             where=lambda m: patient.name in m.body("plain") and "9/10" in str(m.message["Subject"]))
    body = html.unescape(alert.body("html"))
    assert f'src="cid:{CHART_CID}"' in body
    assert "first to latest: 6, 4, 9 out of 10" in body  # the chart's three points, as its text alternative says
    assert "Soreness over the plan: 6 > 4 > 9 (out of 10), rising" in alert.body("plain")
    [image] = [p for p in alert.message.walk() if p["Content-ID"] == f"<{CHART_CID}>"]
    assert image.get_content_type() == "image/png" and image.get_content_disposition() == "inline"
    assert Image.open(io.BytesIO(image.get_content())).size == (720, 360)

    found = re.search(r"(http://\S+/staff/trajectory/\S+)", alert.body("plain"))
    assert found and patient.patient_id not in found.group(1)
    page = httpx.get(found.group(1), timeout=10)
    assert page.status_code == 200
    assert re.findall(r"<td[^>]*>(\d+/10)</td>", page.text) == ["6/10", "4/10", "9/10"]
    assert all(treatment_words_in(body) == [] for body in sms_bodies(system, patient.phone))
