"""The aftercare service's HTTP side: Twilio's inbound-SMS webhook and the patient's web pages."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from twilio.request_validator import RequestValidator

from services.aftercare.domain.reply_limits import MAX_NOTE_CHARS
from services.aftercare.domain.triage import TriageAction
from services.aftercare.handlers import AnswerOutcome, CheckInAnswers, ConsentBook
from services.aftercare.handlers.escalations import EscalationDesk
from services.aftercare.handlers.trajectory import chart_png, trajectory_claims
from services.aftercare.limits import PublicEdge, PublicLimits
from services.aftercare.pages import PatientPages, known_locale
from services.aftercare.pages.trajectory import trajectory_page
from services.aftercare.views import patient_trajectory
from shared.clinic_config import ClinicConfig
from shared.http_edge import NO_OPENTELEMETRY
from shared.links import SCORE_LINK_VALIDITY, UNSUBSCRIBE_VALIDITY, InvalidLink, PatientLinks
from shared.observability import get_logger
from shared.process import Health
from shared.twilio_webhooks import WebhookSecurity, form_fields

log = get_logger(__name__)


def create_web_app(*, answers: CheckInAnswers, consent: ConsentBook, links: PatientLinks, clinic: ClinicConfig,
                   webhook: WebhookSecurity, health: Health, escalations: EscalationDesk,
                   limits: PublicLimits | None = None) -> FastAPI:
    app = FastAPI(title="clinic-notify aftercare", docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry=NO_OPENTELEMETRY)
    # Sizes, content types and rates are checked before any handler reads a request.
    app.add_middleware(PublicEdge, limits=limits or PublicLimits())
    validator = RequestValidator(webhook.auth_token)
    pages = PatientPages(clinic.clinic)

    def claims_of(purpose: str, token: str, validity: timedelta) -> dict[str, Any] | None:
        try:
            return links.decrypt_token(purpose, token, validity)
        except InvalidLink:
            return None

    def note_form(check_in_id: str, locale: str) -> dict[str, str]:
        words = pages.words(locale)
        token = links.encrypt_token("check-in", {"check_in": check_in_id})
        return {"action": f"/check-in/{token}/note", "label": words["note_label"], "submit": words["note_submit"]}

    def escalated(outcome: AnswerOutcome | None) -> bool:
        return bool(outcome and outcome.decision and outcome.decision.action is TriageAction.ESCALATE)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if not health.ok:
            return JSONResponse({"status": "unhealthy", "dead_workers": health.dead_workers}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.post("/twilio/inbound")
    async def inbound_sms(request: Request) -> Response:
        # The body is bounded by PublicEdge; its parameters are what the signature covers.
        form = form_fields(await request.body())
        url = webhook.public_url or str(request.url)
        if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            log.warning("inbound_sms_rejected", reason="invalid_signature")
            return PlainTextResponse("invalid signature", status_code=403)
        if not form.get("MessageSid") or not form.get("From"):
            return PlainTextResponse("missing MessageSid or From", status_code=400)
        if escalations.is_staff_number(form["From"]):  # staff acknowledge escalations; they are not patients
            return twiml(await escalations.sms_from_staff(form["From"], form.get("Body", "")))
        # With OptOutType STOP or START, Twilio has already confirmed to the patient itself.
        carrier_answered = form.get("OptOutType") in {"STOP", "START"}
        outcome = await answers.sms_reply(form["MessageSid"], form["From"], form.get("Body", ""),
                                          carrier_answered=carrier_answered)
        return twiml(outcome.response_text)

    @app.get("/check-in/{token}")
    async def check_in_page(token: str) -> HTMLResponse:
        claims = claims_of("check-in", token, SCORE_LINK_VALIDITY)
        locale = await answers.locale_of(str(claims["check_in"])) if claims else None
        if claims is None or locale is None:
            return pages.expired(410 if claims is None else 404)
        check_in_id, score = str(claims["check_in"]), claims.get("score")
        words = pages.words(locale)
        if score is None:
            return pages.page(locale, "check_in_title", "check_in_ask",
                              score_form={"label": words["check_in_ask"], "options": links.score_urls(check_in_id)},
                              note_form=note_form(check_in_id, locale))
        # Mail scanners open links to inspect them: the score is recorded by the button, not the visit.
        return pages.page(locale, "check_in_title", title=words["confirm_score"].format(score=score),
                          confirm_form={"action": f"/check-in/{token}", "submit": words["confirm_submit"]})

    @app.post("/check-in/{token}")
    async def record_score(token: str) -> HTMLResponse:
        claims = claims_of("check-in", token, SCORE_LINK_VALIDITY)
        if claims is None or claims.get("score") is None:
            return pages.expired()
        check_in_id = str(claims["check_in"])
        outcome = await answers.web_score(check_in_id, int(claims["score"]))
        if outcome is None:
            return pages.expired(404)
        title = "thanks_title" if outcome.recorded else "already_title"
        paragraphs = () if outcome.recorded else ("already_text",)
        return pages.page(outcome.locale, title, *paragraphs, urgent=escalated(outcome),
                          note_form=note_form(check_in_id, outcome.locale))

    @app.post("/check-in/{token}/note")
    async def record_note(token: str, request: Request) -> HTMLResponse:
        claims = claims_of("check-in", token, SCORE_LINK_VALIDITY)
        if claims is None:
            return pages.expired()
        check_in_id = str(claims["check_in"])
        # Browsers send a line break as two characters, where the textarea's maxlength counted one.
        note = form_fields(await request.body()).get("note", "").replace("\r\n", "\n").strip()
        if len(note) > MAX_NOTE_CHARS:
            locale = await answers.locale_of(check_in_id) or "en-CA"
            return pages.page(locale, "note_too_long_title", "note_too_long_text", status=422,
                              note_form=note_form(check_in_id, locale))
        outcome = await answers.web_note(check_in_id, note) if note else None
        locale = outcome.locale if outcome else (await answers.locale_of(check_in_id) or "en-CA")
        return pages.page(locale, "note_thanks_title", urgent=escalated(outcome))

    @app.get("/escalation/{token}")
    async def escalation_page(token: str) -> HTMLResponse:
        # Mail scanners open links: the acknowledgement is the button, not the visit.
        escalation = await escalations.from_link(token)
        if escalation is None:
            return pages.expired()
        return pages.page("en-CA", "expired_title", title=f"Acknowledge escalation {escalation.reference}?",
                          confirm_form={"action": f"/escalation/{token}", "submit": "Acknowledge: I am on it"})

    @app.post("/escalation/{token}")
    async def acknowledge_escalation(token: str) -> HTMLResponse:
        said = await escalations.acknowledge_link(token)
        return pages.expired() if said is None else pages.page("en-CA", "expired_title", title=said)

    @app.get("/staff/trajectory/{token}")
    async def staff_trajectory(token: str) -> HTMLResponse:
        """A patient's soreness over a plan, for the clinician who followed the link in a staff email."""
        claims = trajectory_claims(links, token)
        if claims is None:
            return pages.expired()
        async with answers.engine.connect() as connection:
            trajectory = await patient_trajectory(connection, claims["patient"], claims["type"])
        locale = known_locale(claims.get("locale"))
        chart = await asyncio.to_thread(chart_png, trajectory.points, clinic, locale)  # CPU-bound: off the loop
        return trajectory_page(trajectory, chart, locale=locale,
                               time_zone=clinic.clinic.time_zone, clinic_name=clinic.clinic.name)

    @app.get("/unsubscribe/{token}")
    async def unsubscribe_page(token: str) -> HTMLResponse:
        claims = claims_of("unsubscribe", token, UNSUBSCRIBE_VALIDITY)
        if claims is None:
            return pages.expired()
        locale = known_locale(claims.get("locale"))
        return pages.page(locale, "unsubscribe_title", f"unsubscribe_text_{claims['channel']}", confirm_form={
            "action": f"/unsubscribe/{token}", "submit": pages.words(locale)["unsubscribe_submit"],
        })

    @app.post("/unsubscribe/{token}")
    async def unsubscribe(token: str) -> HTMLResponse:
        """Also the one-click target of the List-Unsubscribe-Post header (RFC 8058)."""
        claims = claims_of("unsubscribe", token, UNSUBSCRIBE_VALIDITY)
        if claims is None:
            return pages.expired()
        await consent.unsubscribe(claims["channel"], claims["address"])
        return pages.page(known_locale(claims.get("locale")), "unsubscribed_title", "unsubscribed_text")

    return app


def twiml(text: str | None) -> Response:
    body = f"<Message>{escape(text)}</Message>" if text else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>',
                    media_type="application/xml")
