"""The HTTP API booking systems and integrators call to tell the clinic about appointments."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Header, Path, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from services.booking_events.domain.commands import (
    AppointmentCommand,
    BookAppointment,
    BookSeries,
    CancelAppointment,
    CompleteAppointment,
    RecordNoShow,
    RescheduleAppointment,
    SeriesSessionSlot,
)
from services.booking_events.domain.idempotency import IdempotencyKey, request_fingerprint
from services.booking_events.domain.refusals import InvalidField, UnknownAppointment
from services.booking_events.domain.series import repeated_starts
from services.booking_events.handlers import Outcome, handle_series
from services.booking_events.http_errors import Unauthorized, install_error_handlers
from services.booking_events.http_gate import RequestGate, TokenBuckets
from services.booking_events.http_models import (
    APPOINTMENT_ID_PATTERN,
    AppointmentView,
    BookRequest,
    CancelRequest,
    ChangeAccepted,
    CompleteRequest,
    ErrorBody,
    HealthBody,
    RescheduleRequest,
    SeriesAccepted,
    SeriesRequest,
)
from services.booking_events.metrics import BookingMetrics
from services.booking_events.settings import BookingSettings
from services.booking_events.store import BookingStore
from services.booking_events.writer import CommandWriter
from shared.clock import Clock
from shared.events.appointment import AppointmentDetails
from shared.http_edge import NO_OPENTELEMETRY
from shared.observability import get_logger
from shared.process import Health

log = get_logger(__name__)


@dataclass
class BookingApi:
    """What the routes need, kept on app.state."""

    settings: BookingSettings
    store: BookingStore
    writer: CommandWriter  # appointment commands go through it, in batches
    clock: Clock
    metrics: BookingMetrics
    health: Health
    on_recorded: Callable[[], None]  # an event is committed: the relay may publish it now
    locations: frozenset[str]  # the clinic's location ids (clinic configuration)

    def check_location(self, location_id: str | None, field: str) -> None:
        if location_id is not None and location_id not in self.locations:
            known = ", ".join(sorted(self.locations))
            raise InvalidField(field, f"not a location of the clinic; use one of: {known}")

    async def apply(
        self, command: AppointmentCommand, kind: str, status: int, key: IdempotencyKey | None
    ) -> JSONResponse:
        return self.respond(await self.writer.apply(command, status, key), kind)

    def respond(self, outcome: Outcome, kind: str) -> JSONResponse:
        if outcome.replayed:
            self.metrics.replayed.labels(kind=kind).inc()
            return JSONResponse(
                outcome.body, outcome.status_code, headers={"Idempotent-Replayed": "true"}
            )
        self.metrics.accepted.labels(kind=kind).inc()
        self.on_recorded()
        if kind == "book_series":
            log.info("series_booked", series_id=outcome.body["series_id"], sessions=len(outcome.body["sessions"]))
        else:
            log.info("appointment_changed", kind=kind, **outcome.body)
        return JSONResponse(outcome.body, outcome.status_code)


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def booking_api(request: Request) -> BookingApi:
    """The service's parts, for a request the gate let in (it checked the API key before the body was
    read); refused if it did not come through the gate.

    A plain function the routes call, not a dependency: FastAPI solves each dependency anew for every
    request, and three fewer (this, the key's check, the Idempotency-Key's) took about 4% off a booking's
    CPU in the app.
    """
    if getattr(request.state, "client", None) is None:  # not through the gate: refused, never let in
        raise Unauthorized
    api: BookingApi = request.app.state.booking
    return api


async def idempotency_key(request: Request, key: str | None) -> IdempotencyKey | None:
    if key is None:
        return None
    fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
    return IdempotencyKey(client=request.state.client, key=key, fingerprint=fingerprint)


# The header each change may carry, validated by FastAPI with the route's own parameters.
KeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
AppointmentId = Annotated[str, Path(min_length=1, max_length=100, pattern=APPOINTMENT_ID_PATTERN)]

_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No API key, or one we don't know (checked before the body is read)",
    404: "No such appointment",
    409: "The appointment's state does not allow this change, or it changed meanwhile",
    413: "The body is larger than the limit (64 kB by default)",
    415: "The body is not application/json",
    422: "A field is invalid (named in problems), or the Idempotency-Key was used for another request",
    429: "Too many requests from this API key; Retry-After says when to come back",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    documented: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses
    }
    if 429 in statuses:
        documented[429]["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return documented


BOOK = refusals(400, 401, 409, 413, 415, 422, 429)
CHANGE = refusals(400, 401, 404, 409, 413, 415, 422, 429)
VIEW = refusals(401, 404, 422, 429)
# The API key scheme, named in the document; the gate checks the key before the body is read.
router = APIRouter(prefix="/v1", dependencies=[Security(_api_key_header)])


@router.post("/appointments", name="book", status_code=201, response_model=ChangeAccepted, responses=BOOK)
async def book(request: Request, body: BookRequest, key: KeyHeader = None) -> JSONResponse:
    api = booking_api(request)
    api.check_location(body.appointment.location_id, "appointment.location_id")
    appointment_id = body.appointment_id or f"apt_{uuid.uuid4().hex}"
    command = BookAppointment(appointment_id, body.patient, body.appointment)
    return await api.apply(command, "book", 201, await idempotency_key(request, key))


@router.post("/series", name="book_series", status_code=201, response_model=SeriesAccepted, responses=BOOK)
async def book_series(request: Request, body: SeriesRequest, key: KeyHeader = None) -> JSONResponse:
    """Book a treatment plan: every session and its event in one transaction, or nothing."""
    api = booking_api(request)
    api.check_location(body.appointment.location_id, "appointment.location_id")
    series_id = body.series_id or f"ser_{uuid.uuid4().hex}"
    if body.repeat is not None:
        repeat = body.repeat
        starts = repeated_starts(repeat.first_starts_at, repeat.count, repeat.every_days, body.patient.zone)
    else:
        starts = list(body.starts_at or ())
    template = AppointmentDetails(starts_at=starts[0], **body.appointment.model_dump())
    sessions = tuple(SeriesSessionSlot(f"{series_id}.{n}", start) for n, start in enumerate(starts, start=1))
    outcome = await handle_series(api.store, BookSeries(series_id, body.patient, sessions, template),
                                  api.clock.now(), 201, await idempotency_key(request, key))
    return api.respond(outcome, "book_series")


@router.post(
    "/appointments/{appointment_id}/reschedule", name="reschedule", response_model=ChangeAccepted, responses=CHANGE
)
async def reschedule(
    request: Request, appointment_id: AppointmentId, body: RescheduleRequest, key: KeyHeader = None
) -> JSONResponse:
    api = booking_api(request)
    api.check_location(body.location_id, "location_id")
    command = RescheduleAppointment(
        appointment_id, body.starts_at, body.duration_minutes, body.practitioner, body.location_id
    )
    return await api.apply(command, "reschedule", 200, await idempotency_key(request, key))


@router.post("/appointments/{appointment_id}/cancel", name="cancel", response_model=ChangeAccepted, responses=CHANGE)
async def cancel(
    request: Request, appointment_id: AppointmentId, key: KeyHeader = None,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> JSONResponse:
    body = body or CancelRequest()
    command = CancelAppointment(appointment_id, body.cancelled_by)
    return await booking_api(request).apply(command, "cancel", 200, await idempotency_key(request, key))


@router.post(
    "/appointments/{appointment_id}/complete", name="complete", response_model=ChangeAccepted, responses=CHANGE
)
async def complete(
    request: Request, appointment_id: AppointmentId, key: KeyHeader = None,
    body: Annotated[CompleteRequest | None, Body()] = None,
) -> JSONResponse:
    body = body or CompleteRequest()
    command = CompleteAppointment(appointment_id, body.completed_at, body.needled_near_chest)
    return await booking_api(request).apply(command, "complete", 200, await idempotency_key(request, key))


@router.post("/appointments/{appointment_id}/no-show", name="no_show", response_model=ChangeAccepted, responses=CHANGE)
async def no_show(request: Request, appointment_id: AppointmentId, key: KeyHeader = None) -> JSONResponse:
    command = RecordNoShow(appointment_id)
    return await booking_api(request).apply(command, "no_show", 200, await idempotency_key(request, key))


@router.get("/appointments/{appointment_id}", name="view", response_model=AppointmentView, responses=VIEW)
async def view(request: Request, appointment_id: AppointmentId) -> AppointmentView:
    appointment, updated_at = await booking_api(request).store.read_appointment(appointment_id)
    if appointment is None:
        raise UnknownAppointment(f"no appointment {appointment_id}")
    return AppointmentView(
        appointment_id=appointment.appointment_id,
        status=appointment.status,
        sequence=appointment.sequence,
        patient=appointment.patient,
        appointment=appointment.details,
        updated_at=updated_at,
    )


operations = APIRouter()
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "A worker died, or the database does not answer", "model": HealthBody}
}


@operations.get("/healthz", name="healthz", response_model=HealthBody, responses=HEALTH_RESPONSES)
async def healthz(request: Request) -> JSONResponse:
    api: BookingApi = request.app.state.booking  # open to every caller: no API key asked
    if not api.health.ok:
        return JSONResponse(
            {"status": "unavailable", "dead_workers": list(api.health.dead_workers)}, 503
        )
    try:
        async with api.store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        log.warning("health_database_unreachable", error=type(error).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok"})


def create_app(api: BookingApi) -> FastAPI:
    """The API over its parts; it starts nothing (the relay and the purge are workers of their own)."""
    docs = api.settings.api_docs
    app = FastAPI(
        title="clinic-notify booking events",
        version="1",
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.booking = api
    install_error_handlers(app, api.metrics)
    app.include_router(router)
    app.include_router(operations)
    app.openapi = lambda: _openapi_with_locations(app, api.locations)  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
    settings = api.settings
    app.add_middleware(
        RequestGate,
        api_keys=settings.api_keys,
        buckets=TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst),
        max_body_bytes=settings.max_body_bytes,
        metrics=api.metrics,
    )
    return app


def _openapi_with_locations(app: FastAPI, locations: frozenset[str]) -> dict[str, Any]:
    """FastAPI's document, with the clinic's location ids as the enum of every location_id sent."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.get("components", {}).get("schemas", {})
        for name, component in components.items():
            if name.startswith(("AppointmentDetails", "RescheduleRequest", "SessionTemplate")):
                field = component["properties"]["location_id"]
                for variant in field.get("anyOf", [field]):
                    if variant.get("type") == "string":
                        variant["enum"] = sorted(locations)
        app.openapi_schema = schema
    return app.openapi_schema


def create_metrics_app(api: BookingApi) -> FastAPI:
    """/metrics on a port of its own (BOOKING_METRICS_PORT), never on the API's."""
    app = FastAPI(title="booking events metrics", openapi_url=None, docs_url=None, redoc_url=None,
                  telemetry=NO_OPENTELEMETRY)

    @app.get("/metrics")
    async def metrics() -> Response:
        backlog = await api.store.outbox_backlog()
        api.metrics.outbox_unpublished.set(backlog.unpublished)
        oldest = backlog.oldest_created_at
        api.metrics.outbox_oldest_age.set((api.clock.now() - oldest).total_seconds() if oldest else 0)
        return Response(api.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
