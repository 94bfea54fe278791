"""The aftercare service's HTTP side: Twilio's inbound-SMS webhook and the patient's web pages."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from twilio.request_validator import RequestValidator

from services.aftercare.answers import CheckInAnswers
from services.aftercare.consent import ConsentBook
from services.aftercare.pages.wording import WORDING
from shared.clinic_config import ClinicConfig
from shared.clock import Clock
from shared.links import SCORE_LINK_VALIDITY, UNSUBSCRIBE_VALIDITY, InvalidLink, PatientLinks
from shared.observability import get_logger
from shared.templates.formatting import format_phone

log = get_logger(__name__)
_pages = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "pages")),
                     autoescape=select_autoescape(["html", "j2"]))


@dataclass(frozen=True)
class WebhookSecurity:
    auth_token: str
    public_url: str | None = None  # the URL Twilio calls, when a proxy rewrites the one we see


def create_web_app(*, answers: CheckInAnswers, consent: ConsentBook, links: PatientLinks, clinic: ClinicConfig,
                   clock: Clock, webhook: WebhookSecurity) -> FastAPI:
    app = FastAPI(title="clinic-notify aftercare", docs_url=None, redoc_url=None, openapi_url=None)
    validator = RequestValidator(webhook.auth_token)

    def page(locale: str, title_key: str, *paragraph_keys: str, status: int = 200,
             title_override: str | None = None, **extra: Any) -> HTMLResponse:
        words = WORDING.get(locale, WORDING["en-CA"])
        phone = format_phone(clinic.clinic.phone)
        paragraphs = [words[key] for key in paragraph_keys] + [words["call_clinic"].format(phone=phone)]
        html = _pages.get_template("page.html.j2").render(
            locale=locale, title=title_override or words[title_key], paragraphs=paragraphs, clinic=clinic.clinic,
            clinic_phone=phone, **extra)
        return HTMLResponse(html, status_code=status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/twilio/inbound")
    async def inbound_sms(request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        url = webhook.public_url or str(request.url)
        if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            log.warning("inbound_sms_rejected", reason="invalid_signature")
            return PlainTextResponse("invalid signature", status_code=403)
        if not form.get("MessageSid") or not form.get("From"):
            return PlainTextResponse("missing MessageSid or From", status_code=400)
        # With OptOutType STOP or START, Twilio has already confirmed to the patient itself.
        carrier_answered = form.get("OptOutType") in {"STOP", "START"}
        outcome = await answers.sms_reply(form["MessageSid"], form["From"], form.get("Body", ""),
                                          carrier_answered=carrier_answered)
        return twiml(outcome.response_text)

    @app.get("/check-in/{token}")
    async def check_in_link(token: str) -> HTMLResponse:
        try:
            claims = links.read("check-in", token, SCORE_LINK_VALIDITY)
        except InvalidLink:
            return page("en-CA", "expired_title", "expired_text", status=410)
        check_in_id = str(claims["check_in"])
        score = claims.get("score")
        note_form_for = lambda locale: {  # noqa: E731
            "action": f"/check-in/{links.sign('check-in', {'check_in': check_in_id})}/note",
            "label": WORDING[locale]["note_label"], "submit": WORDING[locale]["note_submit"],
        }
        locale = await answers.locale_of(check_in_id)
        if locale is None:
            return page("en-CA", "expired_title", "expired_text", status=404)
        if score is None:
            return page(locale, "check_in_title", "check_in_ask", score_form={
                "label": WORDING[locale]["check_in_ask"], "options": links.score_urls(check_in_id),
            }, note_form=note_form_for(locale))
        # Mail scanners open links to inspect them: the score is recorded by the button, not the visit.
        return page(locale, "check_in_title", title_override=WORDING[locale]["confirm_score"].format(score=score),
                    confirm_form={"action": f"/check-in/{token}", "submit": WORDING[locale]["confirm_submit"]})

    @app.post("/check-in/{token}")
    async def record_score(token: str) -> HTMLResponse:
        try:
            claims = links.read("check-in", token, SCORE_LINK_VALIDITY)
        except InvalidLink:
            return page("en-CA", "expired_title", "expired_text", status=410)
        check_in_id, score = str(claims["check_in"]), claims.get("score")
        if score is None:
            return page("en-CA", "expired_title", "expired_text", status=400)
        note_form_for = lambda locale: {  # noqa: E731
            "action": f"/check-in/{links.sign('check-in', {'check_in': check_in_id})}/note",
            "label": WORDING[locale]["note_label"], "submit": WORDING[locale]["note_submit"],
        }
        outcome = await answers.web_score(check_in_id, int(score))
        if outcome is None:
            return page("en-CA", "expired_title", "expired_text", status=404)
        if not outcome.recorded:
            return page(outcome.locale, "already_title", "already_text", note_form=note_form_for(outcome.locale))
        urgent = WORDING[outcome.locale]["urgent"] if outcome.decision and outcome.decision.action.value == "escalate" else None
        return page(outcome.locale, "thanks_title", urgent=urgent, note_form=note_form_for(outcome.locale))

    @app.post("/check-in/{token}/note")
    async def check_in_note(token: str, request: Request) -> HTMLResponse:
        try:
            claims = links.read("check-in", token, SCORE_LINK_VALIDITY)
        except InvalidLink:
            return page("en-CA", "expired_title", "expired_text", status=410)
        note = str((await request.form()).get("note", "")).strip()
        outcome = await answers.web_note(str(claims["check_in"]), note) if note else None
        locale = outcome.locale if outcome else (await answers.locale_of(str(claims["check_in"])) or "en-CA")
        urgent = WORDING[locale]["urgent"] if outcome and outcome.decision and outcome.decision.action.value == "escalate" else None
        return page(locale, "note_thanks_title", urgent=urgent)

    @app.get("/unsubscribe/{token}")
    async def unsubscribe_form(token: str) -> HTMLResponse:
        try:
            claims = links.read("unsubscribe", token, UNSUBSCRIBE_VALIDITY)
        except InvalidLink:
            return page("en-CA", "expired_title", "expired_text", status=410)
        locale = claims.get("locale") if claims.get("locale") in WORDING else "en-CA"
        return page(locale, "unsubscribe_title", f"unsubscribe_text_{claims['channel']}", confirm_form={
            "action": f"/unsubscribe/{token}", "submit": WORDING[locale]["unsubscribe_submit"],
        })

    @app.post("/unsubscribe/{token}")
    async def unsubscribe(token: str) -> HTMLResponse:
        """Also the one-click target of the List-Unsubscribe-Post header (RFC 8058)."""
        try:
            claims = links.read("unsubscribe", token, UNSUBSCRIBE_VALIDITY)
        except InvalidLink:
            return page("en-CA", "expired_title", "expired_text", status=410)
        async with answers.engine.begin() as connection:
            await consent.change(connection, claims["channel"], claims["address"], subscribed=False,
                                 source="email_link", now=clock.now())
        answers.on_change()
        locale = claims.get("locale") if claims.get("locale") in WORDING else "en-CA"
        return page(locale, "unsubscribed_title", "unsubscribed_text")

    return app


def twiml(text: str | None) -> Response:
    body = f"<Message>{escape(text)}</Message>" if text else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>',
                    media_type="application/xml")


