"""The clinician sees the patient's soreness over the plan: in the alert email, on the staff page, in exports.

A patient on a weekly dry-needling plan answers 6 after the first visit, 4 after the second, then 8
after the third: the alert for that 8 shows the three scores.
"""
from __future__ import annotations

import asyncio
import base64
import csv
import html
import io
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from PIL import Image
from typer.testing import CliRunner

from cli import app as cli_app
from sandbox.smtp_sink import ReceivedMail, SmtpSink
from services.aftercare.domain.check_ins import check_in_id
from services.aftercare.handlers.trajectory import CHART_CONTENT_ID, LINK_PURPOSE, chart_png
from services.aftercare.trajectory_email import ChartDrawingSender, ChartPoint
from shared.channels.email import SmtpEmailSender
from shared.ledger.model import Delivery
from tests.integration.aftercare.conftest import ON_CALL_EMAIL, PATIENT_PHONE, VISIT_ENDS, Aftercare, aftercare_on
from tests.support.events import booked, completed, patient

T = TypeVar("T")
PATIENT_ID = "pt-plan-7"
PATIENT_NAME = "Jordan Okafor"
PLAN = (("apt-plan-1", VISIT_ENDS - timedelta(weeks=2), 6),
        ("apt-plan-2", VISIT_ENDS - timedelta(weeks=1), 4),
        ("apt-plan-3", VISIT_ENDS, 8))


async def visit_and_score(desk: Aftercare, appointment_id: str, ends_at: datetime, score: int) -> None:
    visit = booked(appointment_id, ends_at - timedelta(minutes=30), occurred_at=ends_at - timedelta(days=5),
                   who=patient(patient_id=PATIENT_ID, name=PATIENT_NAME))
    desk.clock.set(ends_at + timedelta(minutes=3))
    await desk.completed_visits(completed(visit, sequence=2, completed_at=ends_at))
    desk.clock.set(ends_at + timedelta(hours=25))
    outcome = await desk.answers.web_score(check_in_id(appointment_id, 1), score)
    assert outcome is not None and outcome.recorded


async def three_visits(desk: Aftercare) -> None:
    for appointment_id, ends_at, score in PLAN:
        await visit_and_score(desk, appointment_id, ends_at, score)


@pytest.fixture
async def aftercare(tmp_path: Path) -> AsyncIterator[Aftercare]:
    async with aftercare_on(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db") as desk:
        yield desk


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
async def web(aftercare: Aftercare) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=aftercare.parts.web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def staff_email(desk: Aftercare, template: str = "staff_alert") -> Delivery:
    due = await desk.ledger.claim_due(desk.clock.now(), limit=100, lease=timedelta(seconds=60))
    [email] = [d for d in due if d.template == template and d.channel == "email"]
    return email


async def sent_through_smtp(desk: Aftercare, sink: SmtpSink, delivery: Delivery) -> ReceivedMail:
    """The email as the service's dispatcher sends it: composed, its chart drawn, through SMTP."""
    sink.clear()
    smtp = SmtpEmailSender("127.0.0.1", sink.port, "Harbourfront Clinic <desk@harbourfront-clinic.example>")
    try:
        await ChartDrawingSender(smtp, desk.clinic).send(desk.composer.email(delivery, desk.clock.now()))
    finally:
        await smtp.close()
    [mail] = sink.messages
    return mail


def inline_chart(mail: ReceivedMail) -> Image.Image:
    [part] = [p for p in mail.message.walk() if p["Content-ID"] == f"<{CHART_CONTENT_ID}>"]
    assert part.get_content_type() == "image/png" and part.get_content_disposition() == "inline"
    related = [p for p in mail.message.walk() if p.get_content_type() == "multipart/related"]
    assert related and part in related[0].iter_parts()  # shown with the HTML, not offered as a file
    return Image.open(io.BytesIO(part.get_content()))


def page_link(text: str) -> str:
    found = re.search(r"http://testserver(/staff/trajectory/\S+)", text)
    assert found, text
    return found.group(1)


async def test_the_alert_for_a_worrying_third_score_shows_the_plan_s_scores_inline(
        aftercare: Aftercare, sink: SmtpSink) -> None:
    await three_visits(aftercare)
    delivery = await staff_email(aftercare)
    assert delivery.context["extra"]["trajectory_scores"] == [6, 4, 8]

    mail = await sent_through_smtp(aftercare, sink, delivery)
    assert mail.recipients == (ON_CALL_EMAIL,)
    body = mail.body("html")
    assert f'src="cid:{CHART_CONTENT_ID}"' in body
    assert "Rising since the first check-in of the plan: 6/10, now 8/10." in html.unescape(body)
    assert inline_chart(mail).size == (720, 360)
    text = mail.body("plain")
    assert "Soreness over the plan: 6 > 4 > 8 (out of 10), rising" in text
    link = page_link(text)
    assert PATIENT_ID not in link and "Jordan" not in link and "Okafor" not in link


async def test_the_alert_in_french_says_the_same_in_french(aftercare: Aftercare, sink: SmtpSink) -> None:
    await three_visits(aftercare)
    delivery = replace(await staff_email(aftercare), locale="fr-CA")
    mail = await sent_through_smtp(aftercare, sink, delivery)
    body = html.unescape(mail.body("html"))
    assert "Douleur au fil du plan de traitement" in body and f"cid:{CHART_CONTENT_ID}" in body
    assert "En hausse depuis le premier suivi du plan : 6/10, maintenant 8/10." in body
    assert "Douleur au fil du plan : 6 > 4 > 8 (sur 10), en hausse" in mail.body("plain")
    assert inline_chart(mail).format == "PNG"


async def test_a_review_email_carries_the_chart_too(aftercare: Aftercare, sink: SmtpSink) -> None:
    await visit_and_score(aftercare, "apt-plan-1", VISIT_ENDS, 5)
    aftercare.clock.set(VISIT_ENDS + timedelta(hours=49))  # the second check-in has gone out
    for sid, unreadable in (("SM-r1", "???"), ("SM-r2", "?? !!")):  # twice unreadable: staff review it
        await aftercare.answers.sms_reply(sid, PATIENT_PHONE, unreadable)
    delivery = await staff_email(aftercare, "staff_review")
    mail = await sent_through_smtp(aftercare, sink, delivery)
    assert inline_chart(mail).size == (720, 360)
    assert "One score so far: 5/10." in html.unescape(mail.body("html"))


async def test_the_alert_on_record_keeps_the_plan_s_scores_not_a_picture(aftercare: Aftercare) -> None:
    await three_visits(aftercare)
    delivery = await staff_email(aftercare)

    extra = delivery.context["extra"]
    assert [point["score"] for point in extra["trajectory_points"]] == [6, 4, 8]
    assert "inline_images" not in extra
    assert len(json.dumps(delivery.context)) < 4_000  # the whole row's context; a PNG alone is ~40 kB in base64


async def test_a_visit_nobody_answered_is_reviewed_with_the_plan_s_chart(aftercare: Aftercare, sink: SmtpSink) -> None:
    await visit_and_score(aftercare, "apt-plan-1", VISIT_ENDS - timedelta(weeks=1), 6)
    second = booked("apt-plan-2", VISIT_ENDS - timedelta(minutes=30), occurred_at=VISIT_ENDS - timedelta(days=5),
                    who=patient(patient_id=PATIENT_ID, name=PATIENT_NAME))
    aftercare.clock.set(VISIT_ENDS + timedelta(minutes=3))
    await aftercare.completed_visits(completed(second, sequence=2, completed_at=VISIT_ENDS))
    aftercare.clock.set(VISIT_ENDS + timedelta(hours=48) + aftercare.clinic.aftercare.reply_window)
    assert await aftercare.silence.sweep() == 1  # no answer to either check-in of the second visit

    delivery = await staff_email(aftercare, "staff_review")
    mail = await sent_through_smtp(aftercare, sink, delivery)

    assert "no_reply" in delivery.context["extra"]["reasons"]
    assert f'src="cid:{CHART_CONTENT_ID}"' in mail.body("html")
    assert inline_chart(mail).size == (720, 360)
    assert "One score so far: 6/10." in html.unescape(mail.body("html"))
    assert "Every score of the plan: http://testserver/staff/trajectory/" in mail.body("plain")


async def longest_stall(work: Awaitable[T]) -> tuple[T, float]:
    """What `work` returns, and the longest time the event loop could not run anything else meanwhile."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    finished = asyncio.Event()

    async def tick() -> None:
        last = loop.time()
        while not finished.is_set():
            await asyncio.sleep(0.005)
            gaps.append(loop.time() - last)
            last = loop.time()

    ticker = asyncio.create_task(tick())
    try:
        result = await work
    finally:
        finished.set()
        await ticker
    return result, max(gaps, default=0.0)


async def test_recording_a_worrying_score_and_sending_its_alert_never_hold_the_event_loop_for_the_drawing(
        aftercare: Aftercare, sink: SmtpSink) -> None:
    for appointment_id, ends_at, score in PLAN[:2]:
        await visit_and_score(aftercare, appointment_id, ends_at, score)
    points = [ChartPoint(ends_at + timedelta(hours=25), score) for _, ends_at, score in PLAN]
    chart_png(points, aftercare.clinic, "en-CA")  # matplotlib's first drawing loads its fonts
    started = time.perf_counter()
    chart_png(points, aftercare.clinic, "en-CA")
    drawing = time.perf_counter() - started  # what one drawing holds the CPU for, measured here and now

    appointment_id, ends_at, score = PLAN[2]
    visit = booked(appointment_id, ends_at - timedelta(minutes=30), occurred_at=ends_at - timedelta(days=5),
                   who=patient(patient_id=PATIENT_ID, name=PATIENT_NAME))
    aftercare.clock.set(ends_at + timedelta(minutes=3))
    await aftercare.completed_visits(completed(visit, sequence=2, completed_at=ends_at))
    aftercare.clock.set(ends_at + timedelta(hours=25))
    _, recording = await longest_stall(aftercare.answers.web_score(check_in_id(appointment_id, 1), score))
    mail, sending = await longest_stall(sent_through_smtp(aftercare, sink, await staff_email(aftercare)))

    print(f"one drawing {drawing:.3f} s; longest stall of the loop: recording {recording:.3f} s, "
          f"sending {sending:.3f} s")
    assert inline_chart(mail).size == (720, 360)
    assert recording < drawing / 2 and sending < drawing / 2


async def test_the_staff_page_shows_the_chart_and_every_score_behind_the_emailed_link(
        aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    await three_visits(aftercare)
    delivery = await staff_email(aftercare)
    page = await web.get(page_link(delivery.context["extra"]["trajectory_url"]))
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert PATIENT_NAME not in text  # the page names the patient by id only
    assert [cells[-2] for cells in table_rows(text)] == ["6/10", "4/10", "8/10"]
    [chart] = re.findall(r'src="data:image/png;base64,([^"]+)"', page.text)
    assert Image.open(io.BytesIO(base64.b64decode(chart))).size == (720, 360)
    assert page.headers["cache-control"] == "no-store"


def table_rows(page: str) -> list[list[str]]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


async def test_the_staff_page_speaks_french_when_the_link_says_so(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    await three_visits(aftercare)
    token = aftercare.links.encrypt_token(LINK_PURPOSE, {"patient": PATIENT_ID, "type": "dry_needling",
                                                          "locale": "fr-CA"})
    page = await web.get(f"/staff/trajectory/{token}")
    text = html.unescape(page.text)
    assert page.status_code == 200 and "Douleur au fil du plan de traitement" in text
    assert "3 scores, en hausse (6/10 à 8/10)" in text


async def test_a_forged_or_expired_link_shows_nothing(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    await three_visits(aftercare)
    url = page_link((await staff_email(aftercare)).context["extra"]["trajectory_url"])
    token = url.rsplit("/", 1)[1]
    forged = url[:-6] + ("AAAAAA" if not url.endswith("AAAAAA") else "BBBBBB")
    expired = aftercare.links.encrypt_token(LINK_PURPOSE, {"patient": PATIENT_ID, "type": "dry_needling"},
                                            issued_at=datetime.now(UTC) - timedelta(days=15))
    other_purpose = aftercare.links.encrypt_token("check-in", {"patient": PATIENT_ID, "type": "dry_needling"})
    for refused in (forged, f"/staff/trajectory/{expired}", f"/staff/trajectory/{other_purpose}"):
        page = await web.get(refused)
        assert page.status_code == 410 and "8/10" not in page.text and "data:image" not in page.text
    assert (await web.get(f"/staff/trajectory/{token}")).status_code == 200


# --- exports: the CLI reads the same database (run outside the test's event loop) ---

@pytest.fixture
def plan_database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/export.db"

    async def fill() -> None:
        async with aftercare_on(url) as desk:
            await three_visits(desk)

    asyncio.run(fill())
    return url


def export(database_url: str, *arguments: str) -> str:
    result = CliRunner().invoke(cli_app, ["trajectory", PATIENT_ID, "--database-url", database_url, *arguments])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_csv_export_lists_each_score_in_plan_order(plan_database: str) -> None:
    rows = list(csv.DictReader(io.StringIO(export(plan_database, "--format", "csv"))))
    assert [(r["visit"], r["round"], r["score"], r["via"]) for r in rows] == [
        ("1", "1", "6", "web"), ("2", "1", "4", "web"), ("3", "1", "8", "web")]
    assert [datetime.fromisoformat(r["answered_at"]) for r in rows] == [
        ends_at + timedelta(hours=25) for _, ends_at, _ in PLAN]


@pytest.mark.parametrize(("language", "text"), [("en-CA", "Soreness after the visit (0-10)"),
                                                ("fr-CA", "Douleur après la visite (0-10)")])
def test_the_fhir_export_is_a_valid_bundle_of_pain_score_observations(plan_database: str, language: str,
                                                                      text: str) -> None:
    exported = json.loads(export(plan_database, "--format", "fhir", "--language", language))
    bundle = Bundle.model_validate(exported)
    assert bundle.type == "collection"
    observations = [entry.resource for entry in bundle.entry or [] if isinstance(entry.resource, Observation)]
    assert len(observations) == len(bundle.entry or [])  # every entry parsed as an R4 Observation
    assert [o.valueInteger for o in observations] == [6, 4, 8]
    for observation, (_, ends_at, _) in zip(observations, PLAN, strict=True):
        assert observation.status == "final"
        assert observation.subject is not None and observation.subject.reference == f"Patient/{PATIENT_ID}"
        [coding] = observation.code.coding or []
        assert (coding.system, coding.code) == ("http://loinc.org", "72514-3")
        assert coding.display == "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
        assert observation.code.text == text
        assert [c.code for category in observation.category or [] for c in category.coding or []] == ["survey"]
        assert observation.effectiveDateTime == ends_at + timedelta(hours=25)
    assert PATIENT_NAME.split()[0] not in json.dumps(exported)  # nothing about the patient but the id


def test_an_unknown_patient_is_refused_with_a_message(plan_database: str) -> None:
    result = CliRunner().invoke(cli_app, ["trajectory", "pt-nobody", "--database-url", plan_database])
    assert result.exit_code != 0 and "no check-ins on record" in result.output
