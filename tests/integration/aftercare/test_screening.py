"""The pre-visit screening form as a patient reaches it; the practitioner's email arrives at a real SMTP server."""
from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from sandbox.smtp_sink import SmtpSink
from services.aftercare import bootstrap
from services.aftercare.settings import AftercareSettings
from services.aftercare.tables import SCHEMA, screenings
from shared.clock import FixedClock
from shared.database import create_tables
from shared.outbox.kafka_publisher import RecordingPublisher
from shared.screening_links import ScreeningClaims, screening_token
from shared.settings import CommonSettings, DeliverySettings, SmtpSettings, TwilioSettings
from shared.topics import AFTERCARE_RECORDS
from tests.integration.aftercare.conftest import CLINIC_FILE, TWILIO_AUTH_TOKEN, VISIT_ENDS
from tests.support.channels import mails_to

NOW = VISIT_ENDS - timedelta(days=3)
STARTS = NOW + timedelta(hours=48)
PRACTITIONER_EMAIL = "jordan.lee@harbourfront-clinic.example"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
async def parts(tmp_path: Path, sink: SmtpSink) -> AsyncIterator[bootstrap.AftercareParts]:
    settings = AftercareSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/aftercare.db",
        common=CommonSettings(clinic_config_file=CLINIC_FILE),
        delivery=DeliverySettings(
            patient_web_url="http://testserver", link_secret=SecretStr("a-secret-only-the-tests-know-and-keep"),
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port,
                              sender="Harbourfront Sports Medicine <no-reply@harbourfront-clinic.example>"),
            twilio=TwilioSettings(auth_token=SecretStr(TWILIO_AUTH_TOKEN), api_base_url="http://127.0.0.1:9"),
        ),
    )
    built = bootstrap.build(settings, clock=FixedClock(NOW), publisher=RecordingPublisher())
    await create_tables(built.engine, SCHEMA)
    try:
        yield built
    finally:
        for channel in built.owned_channels:
            await channel.close()
        await built.engine.dispose()


@pytest.fixture
async def web(parts: bootstrap.AftercareParts) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=parts.web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def form_path(parts: bootstrap.AftercareParts, appointment_id: str, locale: str = "en-CA",
              appointment_type: str = "dry_needling", practitioner: str = "Jordan Lee, PT") -> str:
    claims = ScreeningClaims(appointment_id, locale, appointment_type, practitioner, "downtown", STARTS)
    return f"/screening/{screening_token(parts.links, claims)}"


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def practitioner_mails(parts: bootstrap.AftercareParts, sink: SmtpSink, appointment_id: str) -> list[Any]:
    await parts.dispatcher.dispatch_due()
    return [mail for mail in mails_to(sink, PRACTITIONER_EMAIL) if appointment_id in mail.body()]


async def published(parts: bootstrap.AftercareParts) -> list[dict[str, Any]]:
    table = parts.outbox.table
    async with parts.engine.connect() as connection:
        rows = (await connection.execute(select(table).order_by(table.c.id))).all()
    return [json.loads(row.value) | {"_topic": row.topic} for row in rows
            if row.headers.get("event_type") == "ScreeningSubmitted"]


@pytest.mark.parametrize(("locale", "question", "yes"), [
    ("en-CA", "Do you take blood thinners, or do you have a bleeding disorder?", "Yes"),
    ("fr-CA", "Prenez-vous des anticoagulants, ou avez-vous un trouble de la coagulation?", "Oui"),
])
async def test_the_form_asks_the_configured_questions_in_the_patients_language(
    parts: bootstrap.AftercareParts, web: httpx.AsyncClient, locale: str, question: str, yes: str
) -> None:
    response = await web.get(form_path(parts, "apt-form-1", locale))
    assert response.status_code == 200
    page = text_of(response)
    assert f'<html lang="{locale[:2]}">' in response.text
    assert question in page and f"> {yes}</label>" in page
    asked = [question_id for question_id, _ in parts.clinic.screening.questions_for("dry_needling")]
    names = set(re.findall(r'<(?:input|textarea)[^>]* name="([^"]+)"', response.text))
    assert names == set(asked)
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "cannot come" not in page.lower() and "ne pouvez pas venir" not in page.lower()


async def test_answers_that_matter_reach_the_practitioner_once_and_the_patient_sees_what_happens_next(
    parts: bootstrap.AftercareParts, web: httpx.AsyncClient, sink: SmtpSink
) -> None:
    response = await web.post(form_path(parts, "apt-form-2"), headers=FORM,
                              content="blood_thinners=yes&pregnancy=no&anything_else=")
    assert response.status_code == 200
    assert "Your practitioner will review this with you before needling." in text_of(response)
    [mail] = await practitioner_mails(parts, sink, "apt-form-2")
    assert "Do you take blood thinners, or do you have a bleeding disorder?" in mail.body()
    assert "pregnant" not in mail.body()  # a "no" is not worth the practitioner's attention
    assert "to review (1)" in str(mail.message["Subject"])
    assert await practitioner_mails(parts, sink, "apt-form-2") == [mail]  # sent once
    [event] = await published(parts)
    assert (event["_topic"], event["flagged"], event["submission"]) == (AFTERCARE_RECORDS, ["blood_thinners"], 1)


async def test_nothing_that_matters_sends_no_email_but_is_recorded(
    parts: bootstrap.AftercareParts, web: httpx.AsyncClient, sink: SmtpSink
) -> None:
    response = await web.post(form_path(parts, "apt-form-3"), headers=FORM, content="blood_thinners=no&pregnancy=no")
    assert response.status_code == 200
    assert await practitioner_mails(parts, sink, "apt-form-3") == []
    [event] = await published(parts)
    assert event["flagged"] == [] and event["practitioner_notified"] is False


async def test_a_second_submission_replaces_the_first_with_a_note(
    parts: bootstrap.AftercareParts, web: httpx.AsyncClient, sink: SmtpSink
) -> None:
    path = form_path(parts, "apt-form-4", "fr-CA")
    await web.post(path, headers=FORM, content="blood_thinners=yes&needle_fear=no")
    again = await web.get(path)
    assert "Nous avons déjà vos réponses" in text_of(again)
    assert 'value="yes" checked' in again.text  # the form shows what was sent
    second = await web.post(path, headers=FORM, content="blood_thinners=no&needle_fear=yes")
    assert "Ces réponses remplacent celles que vous aviez envoyées." in text_of(second)
    async with parts.engine.connect() as connection:
        [row] = (await connection.execute(select(screenings).where(screenings.c.appointment_id == "apt-form-4"))).all()
    assert (row.submissions, row.answers, row.flagged) == (2, {"blood_thinners": "no", "needle_fear": "yes"},
                                                           ["needle_fear"])
    mails = await practitioner_mails(parts, sink, "apt-form-4")
    assert len(mails) == 2  # sent together over the connection pool: told apart by content, not order
    [update] = [mail for mail in mails if "replace the ones sent earlier" in mail.body()]
    [first] = [mail for mail in mails if mail is not update]
    assert "Yes" in first.body() and "replace" not in first.body()
    assert "replace the ones sent earlier" in update.body() and "afraid of needles" in update.body()
    assert [e["submission"] for e in await published(parts)] == [1, 2]


async def test_an_answer_over_500_characters_is_refused_and_nothing_is_recorded(
    parts: bootstrap.AftercareParts, web: httpx.AsyncClient
) -> None:
    path = form_path(parts, "apt-form-5")
    response = await web.post(path, headers=FORM, content="blood_thinners=yes&anything_else=" + "x" * 501)
    assert response.status_code == 422 and "500 characters" in text_of(response)
    assert await published(parts) == []
    fine = await web.post(path, headers=FORM, content="blood_thinners=yes&anything_else=" + "x" * 500)
    assert fine.status_code == 200


async def test_a_body_over_16_kb_is_refused_unread(parts: bootstrap.AftercareParts, web: httpx.AsyncClient) -> None:
    response = await web.post(form_path(parts, "apt-form-6"), headers=FORM, content="a=" + "x" * (16 * 1024))
    assert response.status_code == 413
    multipart = await web.post(form_path(parts, "apt-form-6"), files={"blood_thinners": b"yes"})
    assert multipart.status_code == 415
    assert await published(parts) == []


async def test_the_link_closes_when_the_visit_starts_and_a_forged_one_never_opens(
    parts: bootstrap.AftercareParts, web: httpx.AsyncClient
) -> None:
    path = form_path(parts, "apt-form-7")
    middle = len(path) // 2
    forged = path[:middle] + ("A" if path[middle] != "A" else "B") + path[middle + 1:]
    assert (await web.post(forged, headers=FORM, content="blood_thinners=yes")).status_code == 410
    assert parts.clock.now() < STARTS
    parts.clock.set(STARTS)  # type: ignore[attr-defined]  # FixedClock in these tests
    assert (await web.get(path)).status_code == 410
    assert (await web.post(path, headers=FORM, content="blood_thinners=yes")).status_code == 410
    assert await published(parts) == []
