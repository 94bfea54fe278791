"""The aftercare web side as Twilio and patients reach it: the inbound-text webhook and the links in messages."""
from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from twilio.request_validator import RequestValidator

from shared.links import PatientLinks
from shared.topics import CONSENT
from tests.integration.aftercare.conftest import (
    PATIENT_PHONE,
    ROUND_1,
    TWILIO_AUTH_TOKEN,
    Aftercare,
    aftercare_on,
)

AUTH_TOKEN = TWILIO_AUTH_TOKEN
INBOUND_URL = "http://testserver/twilio/inbound"


@pytest.fixture
async def aftercare(tmp_path: Path) -> AsyncIterator[Aftercare]:
    async with aftercare_on(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db") as desk:
        yield desk


@pytest.fixture
async def web(aftercare: Aftercare) -> AsyncIterator[httpx.AsyncClient]:
    app = aftercare.parts.web_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


def text_from(phone: str, body: str, sid: str = "SM0000000000000000000000000000001", **more: str) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": phone, "To": "+14165550100",
            "Body": body, **more}


def signed(params: dict[str, str], token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(INBOUND_URL, params)}


def twiml_message(response: httpx.Response) -> str | None:
    root = ElementTree.fromstring(response.text)
    message = root.find("Message")
    return message.text if message is not None else None


def page_text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def path_of(url: str) -> str:
    return url.removeprefix("http://testserver")


def a_link_from_eight_days_ago(aftercare: Aftercare, payload: dict[str, object]) -> str:
    return aftercare.links.encrypt_token("check-in", payload, issued_at=datetime.now(UTC) - timedelta(days=8))


async def a_visit_at_round_1(aftercare: Aftercare, **who: Any) -> str:
    await aftercare.visit_completed(**who)
    await aftercare.time_passes_until(ROUND_1 + timedelta(hours=1))
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")
    return str(round_1.id)


# --- Twilio's inbound-text webhook ---

async def test_a_signed_text_from_the_patient_is_answered_in_twiml(
    aftercare: Aftercare,
    web: httpx.AsyncClient,
) -> None:
    await a_visit_at_round_1(aftercare)
    params = text_from(PATIENT_PHONE, "8")

    response = await web.post("/twilio/inbound", data=params, headers=signed(params))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "911" in (twiml_message(response) or "")
    [reply] = await aftercare.replies()
    assert (reply.message_sid, reply.score, reply.action) == (params["MessageSid"], 8, "escalate")


async def test_twilio_retrying_a_text_gets_the_same_answer_and_it_is_recorded_once(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    await a_visit_at_round_1(aftercare)
    params = text_from(PATIENT_PHONE, "5")

    first = await web.post("/twilio/inbound", data=params, headers=signed(params))
    again = await web.post("/twilio/inbound", data=params, headers=signed(params))

    assert twiml_message(again) == twiml_message(first) is not None
    assert len(await aftercare.replies()) == 1


async def test_a_stop_twilio_already_confirmed_gets_an_empty_answer(
    aftercare: Aftercare,
    web: httpx.AsyncClient,
) -> None:
    await a_visit_at_round_1(aftercare)
    params = text_from(PATIENT_PHONE, "STOP", OptOutType="STOP")

    response = await web.post("/twilio/inbound", data=params, headers=signed(params))

    assert response.status_code == 200 and twiml_message(response) is None
    assert [s.phone for s in await aftercare.sms_suppressed()] == [PATIENT_PHONE]


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="unsigned"),
    pytest.param(signed(text_from(PATIENT_PHONE, "8"), token="someone-elses-token"), id="signed with another token"),
    pytest.param(signed(text_from(PATIENT_PHONE, "2")), id="signature of another text"),
])
async def test_a_text_not_signed_by_twilio_is_refused_and_nothing_is_recorded(
    aftercare: Aftercare, web: httpx.AsyncClient, headers: dict[str, str],
) -> None:
    await a_visit_at_round_1(aftercare)

    response = await web.post("/twilio/inbound", data=text_from(PATIENT_PHONE, "8"), headers=headers)

    assert response.status_code == 403
    assert await aftercare.replies() == []
    assert await aftercare.messages("staff_alert") == []
    assert [c.status for c in await aftercare.check_ins_of("apt-dn-1")] == ["scheduled", "scheduled"]


# --- the score links in the check-in email ---

async def test_a_score_is_recorded_by_its_button_once_and_the_second_time_says_so(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    check_in = await a_visit_at_round_1(aftercare)
    five = path_of(aftercare.links.score_urls(check_in)[5]["url"])

    opened = await web.get(five)
    assert "5 out of 10" in page_text(opened) and await aftercare.replies() == []  # opening records nothing
    first = await web.post(five)
    second = await web.post(five)

    assert first.status_code == 200 and "we've recorded your answer" in page_text(first)
    assert second.status_code == 200 and "We already have your answer" in page_text(second)
    assert [(r.via, r.score) for r in await aftercare.replies()] == [("web", 5)]


async def test_a_french_speaking_patient_sees_the_score_pages_in_french(
    aftercare: Aftercare,
    web: httpx.AsyncClient,
) -> None:
    check_in = await a_visit_at_round_1(aftercare, locale="fr-CA")
    two = path_of(aftercare.links.score_urls(check_in)[2]["url"])

    opened = await web.get(two)
    first = await web.post(two)
    second = await web.post(two)

    assert "2 sur 10" in page_text(opened) and "Envoyer ma réponse" in page_text(opened)
    assert '<html lang="fr">' in first.text
    assert "Merci — nous avons enregistré votre réponse" in page_text(first)
    assert "Nous avons déjà votre réponse" in page_text(second)


async def test_the_check_in_page_offers_every_score_from_0_to_10(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    check_in = await a_visit_at_round_1(aftercare)

    response = await web.get(path_of(aftercare.links.check_in_url(check_in)))

    assert response.status_code == 200
    offered = re.findall(r'<a class="score" href="([^"]+)">(\d+)</a>', response.text)
    assert [int(score) for _, score in offered] == list(range(11))
    for url, score in offered:
        assert aftercare.links.decrypt_token("check-in", url.rsplit("/", 1)[1], timedelta(days=1)) == {
            "check_in": check_in, "score": int(score)}
    assert await aftercare.replies() == []


async def test_a_high_score_clicked_on_the_web_shows_the_911_advice(
    aftercare: Aftercare,
    web: httpx.AsyncClient,
) -> None:
    check_in = await a_visit_at_round_1(aftercare)

    response = await web.post(path_of(aftercare.links.score_urls(check_in)[9]["url"]))

    assert "call 911 now" in page_text(response)
    assert len(await aftercare.messages("staff_alert")) == 2


async def test_a_note_about_numbness_sent_from_the_page_alerts_the_clinician(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    check_in = await a_visit_at_round_1(aftercare)
    token = aftercare.links.encrypt_token("check-in", {"check_in": check_in})

    response = await web.post(f"/check-in/{token}/note", data={"note": "numbness in my arm"})

    assert response.status_code == 200 and "call 911 now" in page_text(response)
    assert len(await aftercare.published("EscalationRaised")) == 1


async def test_a_link_older_than_a_week_shows_an_expired_page(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    check_in = await a_visit_at_round_1(aftercare)
    old = a_link_from_eight_days_ago(aftercare, {"check_in": check_in, "score": 2})

    response = await web.get(f"/check-in/{old}")

    assert response.status_code == 410 and "This link has expired" in page_text(response)
    assert await aftercare.replies() == []


async def test_a_tampered_score_link_shows_an_expired_page_and_records_nothing(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    check_in = await a_visit_at_round_1(aftercare)
    genuine = aftercare.links.encrypt_token("check-in", {"check_in": check_in, "score": 2})
    forged = PatientLinks(aftercare.links.base_url, "a-guessed-secret").encrypt_token(
        "check-in", {"check_in": check_in, "score": 0})

    for token in (genuine[:-3] + ("AAA" if not genuine.endswith("AAA") else "BBB"), forged):
        response = await web.get(f"/check-in/{token}")
        assert response.status_code == 410
        assert "This link has expired" in page_text(response)
    assert await aftercare.replies() == []


# --- the unsubscribe link in every message ---

async def test_opening_the_unsubscribe_link_asks_for_confirmation_and_unsubscribes_no_one(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    link = path_of(aftercare.links.unsubscribe_url("email", "alex.tremblay@example.com", "en-CA"))

    response = await web.get(link)

    assert response.status_code == 200
    assert "Stop these messages?" in page_text(response)
    assert f'<form method="post" action="{link}">' in response.text
    assert await aftercare.consent_trail() == []
    assert await aftercare.published("ConsentChanged") == []


async def test_confirming_unsubscribes_the_address_in_the_patients_language(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    link = path_of(aftercare.links.unsubscribe_url("email", "Camille.Roy@example.com", "fr-CA"))
    form = await web.get(link)
    assert "Ne plus recevoir ces messages?" in page_text(form)

    response = await web.post(link)

    assert response.status_code == 200
    assert "Vous êtes désabonné(e)" in page_text(response)
    assert await aftercare.consent.suppressions.is_suppressed("email", "camille.roy@example.com")
    assert [(a.channel, a.address, a.subscribed, a.source) for a in await aftercare.consent_trail()] == [
        ("email", "Camille.Roy@example.com", False, "email_link")]
    [changed] = await aftercare.published("ConsentChanged", CONSENT)
    assert (changed["channel"], changed["subscribed"], changed["source"]) == ("email", False, "email_link")


async def test_a_tampered_unsubscribe_link_unsubscribes_no_one(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    forged = PatientLinks(aftercare.links.base_url, "a-guessed-secret").encrypt_token(
        "unsubscribe", {"channel": "email", "address": "alex.tremblay@example.com", "locale": "en-CA"})

    response = await web.post(f"/unsubscribe/{forged}")

    assert response.status_code == 410
    assert await aftercare.consent_trail() == []


# --- health ---

async def test_a_healthy_service_says_ok(web: httpx.AsyncClient) -> None:
    response = await web.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_a_worker_that_died_turns_health_red_and_is_named(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    aftercare.health.worker_died("no-reply-watch")

    response = await web.get("/healthz")

    assert response.status_code == 503
    assert response.json()["dead_workers"] == ["no-reply-watch"]
