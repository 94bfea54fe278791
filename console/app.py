"""The console's pages. Every page but the login form needs the staff session cookie.

Logging in: staff type the token (CONSOLE_TOKEN); the console compares it in constant time and sets an
HttpOnly, SameSite=Strict cookie holding a keyed hash of it, never the token itself. SameSite=Strict keeps
the cookie off requests started by other sites, so another site cannot make a logged-in browser replay
dead letters; a POST whose Origin is another site is refused as well.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from cli.dead_letter_replay import DeadLetter, Selection, plan_replay
from console import readings
from console.masking import mask_address, masked_body
from console.replays import Replays
from console.settings import ConsoleSettings
from shared.http_edge import NO_OPENTELEMETRY
from shared.topics import APPOINTMENTS_DEAD_LETTER, CONSENT_DEAD_LETTER, DELIVERIES_DEAD_LETTER

COOKIE = "console_session"
OPEN_PATHS = {"/login", "/healthz"}
DEAD_LETTER_TOPICS = (APPOINTMENTS_DEAD_LETTER, CONSENT_DEAD_LETTER, DELIVERIES_DEAD_LETTER)
SHOWN_DEAD_LETTERS = 200
KAFKA_ERRORS = (KafkaError, OSError, TimeoutError, LookupError)


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"clinic-notify console session", hashlib.sha256).hexdigest()


def build(settings: ConsoleSettings) -> FastAPI:
    databases = readings.Databases({
        "booking_events": settings.booking_database_url,
        "notifier": settings.notifier_database_url,
        "aftercare": settings.aftercare_database_url,
    })
    replays = Replays(settings.kafka_bootstrap_servers)
    expected_session = session_value(settings.token.get_secret_value())
    zone = ZoneInfo(settings.time_zone)
    bootstrap = settings.kafka_bootstrap_servers

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await replays.close()
        await databases.close()

    app = FastAPI(title="clinic-notify ops console", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan, telemetry=NO_OPENTELEMETRY)
    environment = Environment(loader=PackageLoader("console", "templates"),
                              autoescape=select_autoescape(["html", "j2"], default=True))
    environment.filters["local"] = lambda moment: "—" if moment is None else (
        moment.astimezone(zone).strftime("%Y-%m-%d %H:%M"))
    environment.filters["age"] = _age
    environment.filters["masked"] = mask_address
    environment.filters["text"] = lambda raw: raw.decode("utf-8", "replace") if raw else "—"
    templates = Jinja2Templates(env=environment)

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"time_zone": settings.time_zone, **context},
                                          status_code=status_code)

    @app.middleware("http")
    async def staff_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path not in OPEN_PATHS:
            if not hmac.compare_digest(request.cookies.get(COOKIE, ""), expected_session):
                if request.method == "GET":
                    return RedirectResponse("/login", status_code=303)
                return PlainTextResponse("log in first", status_code=401)
            if request.method == "POST" and not _same_origin(request):
                return PlainTextResponse("cross-site request refused", status_code=403)
        response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        # Not no-referrer: under it browsers send "Origin: null" with the console's own forms.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
        return response

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/login")
    async def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html.j2", bare=True, error=None)

    @app.post("/login")
    async def login(request: Request, token: Annotated[str, Form()]) -> Response:
        if not hmac.compare_digest(session_value(token), expected_session):
            return page(request, "login.html.j2", status_code=401, bare=True,
                        error="That token is not the console's.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, expected_session, httponly=True, samesite="strict",
                            secure=settings.secure_cookie, path="/")
        return response

    @app.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/")
    async def home() -> Response:
        return RedirectResponse("/lag", status_code=303)

    @app.get("/lag")
    async def lag(request: Request) -> HTMLResponse:
        try:
            groups, error = await readings.consumer_lags(bootstrap), None
        except KAFKA_ERRORS as failure:
            groups, error = {}, f"cannot read offsets from {bootstrap}: {type(failure).__name__}"
        return page(request, "lag.html.j2", groups=groups, error=error)

    @app.get("/outbox")
    async def outbox(request: Request) -> HTMLResponse:
        backlogs = {service: await databases.read(service, partial(readings.outbox_backlog, service=service))
                    for service in readings.OUTBOXES}
        return page(request, "outbox.html.j2", backlogs=backlogs, now=datetime.now(UTC))

    @app.get("/ledger")
    async def ledger(request: Request) -> HTMLResponse:
        ledgers = {service: await databases.read(service, readings.ledger_view) for service in readings.LEDGERS}
        return page(request, "ledger.html.j2", ledgers=ledgers, now=datetime.now(UTC))

    @app.get("/escalations")
    async def escalations(request: Request) -> HTMLResponse:
        return page(request, "escalations.html.j2", reading=await databases.read("aftercare", readings.escalations))

    @app.get("/suppressions")
    async def suppression_form(request: Request) -> HTMLResponse:
        return page(request, "suppressions.html.j2", asked=None, answers=None, error=None)

    # A POST: the address stays out of URLs, browser history and access logs.
    @app.post("/suppressions")
    async def suppression_lookup(request: Request, address: Annotated[str, Form()]) -> HTMLResponse:
        try:
            channel, normalised = readings.normalised_address(address)
        except ValueError as error:
            return page(request, "suppressions.html.j2", status_code=400, asked=None, answers=None, error=str(error))
        answers = {
            service: await databases.read(
                service, partial(readings.suppression, channel=channel, address=normalised))
            for service in readings.LEDGERS
        }
        return page(request, "suppressions.html.j2", asked=mask_address(normalised), answers=answers, error=None)

    @app.get("/dead-letters")
    async def dead_letters(request: Request, topic: str = APPOINTMENTS_DEAD_LETTER, reason: str = "",
                           source_topic: str = "", group: str = "") -> HTMLResponse:
        selection = _selection(reason, source_topic, group)
        letters: list[DeadLetter] = []
        already: dict[str, Any] = {}
        error = None
        try:
            plan = await plan_replay(bootstrap, topic, selection)
            letters, already = plan.selected[::-1], plan.already
        except KAFKA_ERRORS as failure:
            error = f"cannot read {topic}: {failure}" if isinstance(failure, LookupError) else (
                f"cannot read {topic} from {bootstrap}: {type(failure).__name__}")
        return page(request, "dead_letters.html.j2", topics=DEAD_LETTER_TOPICS, topic=topic, reason=reason,
                    source_topic=source_topic, group=group, letters=letters[:SHOWN_DEAD_LETTERS],
                    total=len(letters), already=already, masked_body=masked_body, error=error)

    @app.post("/dead-letters/replay")
    async def replay(topic: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
                     source_topic: Annotated[str, Form()] = "", group: Annotated[str, Form()] = "",
                     position: Annotated[str, Form()] = "") -> Response:
        try:
            selection = _selection(reason, source_topic, group, position)
        except ValueError:
            return PlainTextResponse("position must be PARTITION:OFFSET", status_code=400)
        job = replays.start(topic, selection)
        return RedirectResponse(f"/replays/{job.id}", status_code=303)

    @app.get("/replays/{job_id}")
    async def replay_progress(request: Request, job_id: str) -> HTMLResponse:
        job = replays.jobs.get(job_id)
        if job is None:
            return page(request, "replay.html.j2", status_code=404, job=None)
        return page(request, "replay.html.j2", job=job)

    return app


def _selection(reason: str, source_topic: str, group: str, position: str = "") -> Selection:
    positions = None
    if position:
        partition, _, offset = position.partition(":")
        positions = frozenset({(int(partition), int(offset))})
    return Selection(reason=reason or None, source_topic=source_topic or None, consumer_group=group or None,
                     positions=positions)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # an opaque origin (sandboxed frame, some redirects) is refused
    return urlsplit(origin).netloc == request.headers.get("host")


def _age(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h" if seconds < 172_800 else f"{seconds // 86400} days"
