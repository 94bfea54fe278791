"""The pre-visit screening form on the web: `GET /screening/{token}` shows it, `POST` records the answers.

The token in the path is the capability: it is encrypted, names one appointment and expires when the
visit starts. A POST acts only on the token in its own path, and nothing depends on a cookie or a
session, so a page elsewhere cannot submit for a patient without their link. The body is read up to
`MAX_FORM_BYTES` and no further; text answers are bounded by `MAX_TEXT_CHARS`.
"""
from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from services.aftercare.domain.screening import MAX_FORM_BYTES, read_form
from services.aftercare.handlers.screening import ScreeningDesk
from services.aftercare.pages.screening import ScreeningPages
from shared.clinic_config import ClinicConfig
from shared.links import InvalidLink


def add_screening_routes(app: FastAPI, *, screening: ScreeningDesk, clinic: ClinicConfig) -> None:
    pages = ScreeningPages(clinic.clinic)

    @app.get("/screening/{token}")
    async def screening_form(token: str) -> Response:
        try:
            claims = screening.claims(token)
        except InvalidLink:
            return pages.expired()
        earlier = await screening.earlier(claims.appointment_id)
        return pages.form(claims.locale, f"/screening/{token}", screening.questions(claims),
                          earlier.answers if earlier else None, earlier=earlier is not None)

    @app.post("/screening/{token}")
    async def screening_answers(token: str, request: Request) -> Response:
        try:
            claims = screening.claims(token)
        except InvalidLink:
            return pages.expired()
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            return PlainTextResponse("send the form as application/x-www-form-urlencoded", status_code=415)
        body = await _body_up_to(request, MAX_FORM_BYTES)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413)
        questions = screening.questions(claims)
        reading = read_form(_fields(body), questions)
        if not reading.acceptable:
            return pages.form(claims.locale, f"/screening/{token}", questions, reading.answers, status=422,
                              problem="too_long" if reading.too_long else "invalid")
        submitted = await screening.submit(claims, reading.answers)
        return pages.next_steps(claims.locale, claims.appointment_type, replaced=submitted.replaced_earlier)


async def _body_up_to(request: Request, limit: int) -> bytes | None:
    """The whole body, or None when it is (or says it is) larger than `limit`: the rest is not read."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _fields(body: bytes) -> dict[str, str]:
    """A url-encoded form; a repeated field keeps its last value; a form of over 100 fields reads as empty."""
    try:
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=100))
    except ValueError:
        return {}
