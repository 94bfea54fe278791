"""An answer is recorded once and pages once; events stay small; STOP is not silence; a shared phone
is not guessed.

Every story runs on SQLite and on PostgreSQL, the concurrent ones as real concurrent requests.
"""
from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from shared.ledger.tables import deliveries
from shared.topics import AFTERCARE_RECORDS
from tests.integration.aftercare.conftest import ON_CALL_EMAIL, PATIENT_PHONE, ROUND_1, ROUND_2, Aftercare

AN_HOUR = timedelta(hours=1)
NUMBNESS_NOTE = "My arm has been numb since last night. " + "I am writing down everything I feel. " * 52


@pytest.fixture
async def web(aftercare: Aftercare) -> AsyncIterator[httpx.AsyncClient]:
    app = aftercare.parts.web_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


async def round_1_of(aftercare: Aftercare, appointment_id: str = "apt-dn-1", **who: object) -> str:
    await aftercare.visit_completed(appointment_id, **who)
    await aftercare.time_passes_until(ROUND_1 + AN_HOUR)
    [round_1, _] = await aftercare.check_ins_of(appointment_id)
    return str(round_1.id)


def note_link(aftercare: Aftercare, check_in: str) -> str:
    return f"/check-in/{aftercare.links.encrypt_token('check-in', {'check_in': check_in})}/note"


async def pages_to_on_call(aftercare: Aftercare) -> list[str]:
    """The emails that went to the on-call clinician, by template: a page is one escalation email."""
    return [row.template for row in await aftercare.rows(
        select(deliveries).where(deliveries.c.recipient == ON_CALL_EMAIL).order_by(deliveries.c.due_at))]


# --- events stay small ---

async def test_a_long_red_flag_note_is_not_copied_whole_into_its_events(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    check_in = await round_1_of(aftercare)
    assert 1900 < len(NUMBNESS_NOTE) <= 2000

    response = await web.post(note_link(aftercare, check_in), data={"note": NUMBNESS_NOTE})

    assert response.status_code == 200
    [recorded] = await aftercare.published("ReplyRecorded", AFTERCARE_RECORDS)
    assert recorded["text"].startswith("My arm has been numb") and len(recorded["text"]) <= 160
    assert recorded["red_flags"] == ["numbness"]
    table = aftercare.outbox.table
    assert max(len(row.value) for row in await aftercare.rows(table.select())) < 2000
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")
    assert NUMBNESS_NOTE.strip() in round_1.note  # staff read the whole note in the clinic's records


# --- record once, page once ---

async def test_a_double_click_on_the_score_button_records_one_answer_and_pages_once(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    check_in = await round_1_of(aftercare)
    nine = aftercare.links.score_urls(check_in)[9]["url"].removeprefix("http://testserver")

    first, second = await asyncio.gather(web.post(nine), web.post(nine))

    said = sorted(html.unescape(r.text) for r in (first, second))
    assert first.status_code == second.status_code == 200
    assert sum("we've recorded your answer" in page for page in said) == 1
    assert sum("We already have your answer" in page for page in said) == 1
    assert [(r.via, r.score) for r in await aftercare.replies()] == [("web", 9)]
    assert len(await aftercare.published("EscalationRaised")) == 1
    assert len(await pages_to_on_call(aftercare)) == 1


async def test_red_flag_notes_sent_together_page_once_and_are_all_kept(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    check_in = await round_1_of(aftercare)
    notes = ["numbness in my arm", "still numb, pins and needles", "my arm is numb again"]

    responses = await asyncio.gather(*(web.post(note_link(aftercare, check_in), data={"note": n}) for n in notes))

    assert all(r.status_code == 200 for r in responses)
    assert len(await aftercare.published("EscalationRaised")) == 1
    assert len(await pages_to_on_call(aftercare)) == 1
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")
    assert all(note in round_1.note for note in notes)
    assert len(await aftercare.replies()) == 3


async def test_a_later_note_pages_again_only_for_a_new_reason_or_after_the_window(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    check_in = await round_1_of(aftercare)
    link = note_link(aftercare, check_in)

    await web.post(link, data={"note": "numbness in my arm"})
    aftercare.clock.set(ROUND_1 + 2 * AN_HOUR)
    await web.post(link, data={"note": "the arm is still numb"})
    assert len(await aftercare.published("EscalationRaised")) == 1
    await web.post(link, data={"note": "now I have a fever"})  # a new reason
    assert len(await aftercare.published("EscalationRaised")) == 2
    aftercare.clock.set(ROUND_1 + 14 * AN_HOUR)  # past the window since the first page
    await web.post(link, data={"note": "numb all day"})

    raised = await aftercare.published("EscalationRaised")
    assert [r["reasons"] for r in raised] == [
        ["red_flag:numbness"], ["red_flag:fever"], ["red_flag:numbness"]]


# --- STOP is not silence ---

@pytest.mark.parametrize("reply", ["STOP", "please stop texting me"])
async def test_a_patient_who_texted_stop_is_not_reported_as_silent(aftercare: Aftercare, reply: str) -> None:
    await round_1_of(aftercare)
    await aftercare.answers.sms_reply("SM-stop", PATIENT_PHONE, reply)

    aftercare.clock.set(ROUND_2 + aftercare.clinic.aftercare.reply_window + AN_HOUR)
    silent = await aftercare.silence.sweep()

    assert silent == 0
    assert await aftercare.published("NoReplyRecorded") == []
    assert await aftercare.messages("staff_review") == []
    assert {c.status for c in await aftercare.check_ins_of("apt-dn-1")} == {"no_reply"}


async def test_a_visit_nobody_answered_is_still_reported_as_silent(aftercare: Aftercare) -> None:
    await round_1_of(aftercare)

    aftercare.clock.set(ROUND_2 + aftercare.clinic.aftercare.reply_window + AN_HOUR)

    assert await aftercare.silence.sweep() == 1
    assert len(await aftercare.messages("staff_review")) == 1


# --- a phone a family shares ---

async def two_patients_on_one_phone(aftercare: Aftercare) -> None:
    await aftercare.visit_completed("apt-parent", patient_id="pt-parent", name="Sam Roy")
    await aftercare.visit_completed("apt-child", patient_id="pt-child", name="Lou Roy")
    await aftercare.time_passes_until(ROUND_1 + AN_HOUR)


async def test_a_score_from_a_phone_two_patients_share_is_not_guessed(aftercare: Aftercare) -> None:
    await two_patients_on_one_phone(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-family", PATIENT_PHONE, "2")

    [reply] = await aftercare.replies()
    assert reply.check_in_id is None
    assert "shared_phone_patients:2" in reply.reasons
    assert "possible_appointments:apt-child, apt-parent" in reply.reasons
    check_ins = [*await aftercare.check_ins_of("apt-parent"), *await aftercare.check_ins_of("apt-child")]
    assert {c.status for c in check_ins} == {"scheduled"}  # neither visit is answered by a guess
    assert outcome.response_text is not None and "received your message" in outcome.response_text
    assert "911" not in outcome.response_text
    [review] = await aftercare.messages("staff_review")
    reasons = review.context["extra"]["reasons"]
    assert "shared_phone_patients:2" in reasons and "possible_appointments:apt-child, apt-parent" in reasons
    [recorded] = await aftercare.published("ReplyRecorded")
    assert recorded["appointment_id"] is None
    [claimed] = await aftercare.ledger.claim_due(ROUND_1 + AN_HOUR, limit=10, lease=timedelta(seconds=60))
    email = aftercare.composer.email(claimed, ROUND_1 + AN_HOUR).text
    assert "one of 2 patients who share this phone" in email and "apt-child, apt-parent" in email


async def test_a_red_flag_from_a_shared_phone_still_gets_the_911_line_and_pages(aftercare: Aftercare) -> None:
    await two_patients_on_one_phone(aftercare)

    outcome = await aftercare.answers.sms_reply("SM-family-2", PATIENT_PHONE, "chest pain since this morning")

    assert outcome.response_text is not None and "911" in outcome.response_text
    [raised] = await aftercare.published("EscalationRaised")
    assert raised["appointment_id"] is None and "shared_phone_patients:2" in raised["reasons"]


async def test_one_patient_with_two_visits_on_record_is_answered_as_before(aftercare: Aftercare) -> None:
    await aftercare.visit_completed("apt-first")
    await aftercare.visit_completed("apt-second")
    await aftercare.time_passes_until(ROUND_1 + AN_HOUR)

    await aftercare.answers.sms_reply("SM-same", PATIENT_PHONE, "2")

    [reply] = await aftercare.replies()
    assert reply.check_in_id is not None and reply.score == 2
    assert not any(reason.startswith("shared_phone") for reason in reply.reasons)
