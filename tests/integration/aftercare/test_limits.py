"""What the public side of aftercare refuses before it reads: oversized bodies, multipart forms, floods.

A patient's note is at most 2,000 characters; a body past 16 kB is refused (413) before it is read,
a multipart form (415), and a client that keeps asking is told to slow down (429).
"""
from __future__ import annotations

import html
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from services.aftercare.tables import screenings
from shared.screening_links import ScreeningClaims, screening_token
from tests.integration.aftercare.conftest import (
    PATIENT_PHONE,
    ROUND_1,
    TWILIO_AUTH_TOKEN,
    VISIT_ENDS,
    Aftercare,
    aftercare_on,
)

INBOUND_URL = "http://testserver/twilio/inbound"
KIB = 1024


@pytest.fixture
async def aftercare(tmp_path: Path) -> AsyncIterator[Aftercare]:
    async with aftercare_on(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db") as desk:
        yield desk


@pytest.fixture
async def web(aftercare: Aftercare) -> AsyncIterator[httpx.AsyncClient]:
    app = aftercare.parts.web_app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


async def a_note_link(aftercare: Aftercare) -> str:
    await aftercare.visit_completed()
    await aftercare.time_passes_until(ROUND_1 + timedelta(hours=1))
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")
    return f"/check-in/{aftercare.links.encrypt_token('check-in', {'check_in': round_1.id})}/note"


class CountedBody:
    """A request body sent in 16 kB chunks, counting how many the server asked for."""

    def __init__(self, size: int, chunk: bytes = b"note=" + b"7%20" * (4 * KIB)) -> None:
        self.chunks = -(-size // len(chunk))
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.chunk


def signed(params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(INBOUND_URL, params)}


# --- the note ---

async def test_a_1_mib_note_that_says_its_size_is_refused_before_a_byte_is_read(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    link = await a_note_link(aftercare)
    body = CountedBody(1024 * KIB)

    response = await web.post(link, content=body, headers={
        "content-type": "application/x-www-form-urlencoded", "content-length": str(1024 * KIB)})

    assert response.status_code == 413
    assert body.pulled == 0
    assert [c.note for c in await aftercare.check_ins_of("apt-dn-1")] == [None, None]


async def test_a_1_mib_note_sent_without_its_size_is_refused_once_16_kb_have_arrived(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    link = await a_note_link(aftercare)
    body = CountedBody(1024 * KIB)

    response = await web.post(link, content=body, headers={"content-type": "application/x-www-form-urlencoded"})

    assert response.status_code == 413
    assert body.pulled <= 2  # 16 kB chunks: the one that passed the limit is the last one read
    assert await aftercare.replies() == []


async def test_a_note_of_2001_characters_gets_a_page_that_says_it_is_too_long(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    link = await a_note_link(aftercare)

    response = await web.post(link, data={"note": "numbness " * 222 + "abc"})  # 2,001 characters

    assert response.status_code == 422
    text = html.unescape(response.text)
    assert "Your note is too long" in text and "2,000 characters" in text
    assert '<textarea id="note" name="note" maxlength="2000">' in response.text  # to send a shorter one
    assert [c.note for c in await aftercare.check_ins_of("apt-dn-1")] == [None, None]
    assert await aftercare.published("EscalationRaised") == []


async def test_a_note_of_2000_characters_with_line_breaks_from_a_browser_is_accepted(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    link = await a_note_link(aftercare)
    note = ("a bit sore" + "\r\n") * 180 + "fine"  # 2,164 characters sent, 1,984 as the textarea counts them

    response = await web.post(link, data={"note": note})

    assert response.status_code == 200 and "your note has been sent" in html.unescape(response.text)
    [round_1, _] = await aftercare.check_ins_of("apt-dn-1")
    assert round_1.note.endswith(note.replace("\r\n", "\n"))


async def test_a_multipart_note_is_refused(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    link = await a_note_link(aftercare)

    response = await web.post(link, files={"note": ("note.txt", b"numbness in my arm")})

    assert response.status_code == 415
    assert [c.note for c in await aftercare.check_ins_of("apt-dn-1")] == [None, None]


# --- Twilio's webhook ---

async def test_a_webhook_body_past_16_kb_is_refused_before_the_signature_is_checked(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    await a_note_link(aftercare)
    params = {"MessageSid": "SM" + "1" * 32, "From": PATIENT_PHONE, "To": "+14165550100", "Body": "8" * 17 * KIB}

    response = await web.post("/twilio/inbound", data=params, headers=signed(params))

    assert response.status_code == 413
    assert await aftercare.replies() == []


async def test_a_multipart_webhook_post_is_refused(aftercare: Aftercare, web: httpx.AsyncClient) -> None:
    params = {"MessageSid": "SM" + "2" * 32, "From": PATIENT_PHONE, "To": "+14165550100", "Body": "8"}

    response = await web.post("/twilio/inbound", data=params, files={"x": ("x", b"y")}, headers=signed(params))

    assert response.status_code == 415


async def test_a_form_of_a_thousand_fields_is_not_signed_and_is_refused(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    params = {f"f{n}": "x" for n in range(1000)}

    response = await web.post("/twilio/inbound", data=params, headers=signed(params))

    assert response.status_code == 403
    assert await aftercare.replies() == []


async def test_a_text_longer_than_twilio_delivers_is_read_to_1600_characters(
    aftercare: Aftercare, web: httpx.AsyncClient,
) -> None:
    await a_note_link(aftercare)
    params = {"MessageSid": "SM" + "3" * 32, "From": PATIENT_PHONE, "To": "+14165550100",
              "Body": "about a 2 " + "x" * 3000}

    response = await web.post("/twilio/inbound", data=params, headers=signed(params))

    assert response.status_code == 200
    [reply] = await aftercare.replies()
    assert len(reply.text) == 1600 and reply.score == 2


# --- floods ---

async def test_a_client_that_keeps_opening_pages_is_told_to_slow_down_and_others_are_not(tmp_path: Path) -> None:
    async with aftercare_on(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db", page_requests_per_minute=6,
                            page_burst=3) as aftercare:
        link = f"/unsubscribe/{aftercare.links.encrypt_token('unsubscribe', {'channel': 'email', 'address': 'a@b.ca'})}"
        app = aftercare.parts.web_app

        def client(address: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 5000)),
                                     base_url="http://testserver")

        async with client("203.0.113.7") as flooding, client("198.51.100.2") as neighbour:
            statuses = [(await flooding.get(link)).status_code for _ in range(5)]
            other = await neighbour.get(link)

        assert statuses == [200, 200, 200, 429, 429]
        assert other.status_code == 200


async def test_a_client_that_keeps_sending_the_screening_form_is_told_to_slow_down(tmp_path: Path) -> None:
    async with aftercare_on(f"sqlite+aiosqlite:///{tmp_path}/aftercare.db", page_requests_per_minute=6,
                            page_burst=3) as aftercare:
        claims = ScreeningClaims("apt-form-burst", "fr-CA", "dry_needling", "Jordan Lee, PT", "downtown",
                                 VISIT_ENDS + timedelta(days=2))
        path = f"/screening/{screening_token(aftercare.links, claims)}"
        transport = httpx.ASGITransport(app=aftercare.parts.web_app, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as flooding:
            form = await flooding.get(path)
            statuses = [(await flooding.post(path, data={"blood_thinners": "no", "needle_fear": "no"})).status_code
                        for _ in range(4)]

        assert form.status_code == 200
        assert statuses == [200, 200, 429, 429]  # a burst of 3 requests: the form and two submissions
        async with aftercare.engine.connect() as connection:
            [submissions] = (await connection.execute(
                select(screenings.c.submissions).where(screenings.c.appointment_id == "apt-form-burst"))).scalars()
        assert submissions == 2
