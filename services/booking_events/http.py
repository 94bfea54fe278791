"""The HTTP API booking systems and integrators call to tell the clinic about appointments."""
from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from services.booking_events.domain.commands import (
    AppointmentCommand,
    BookAppointment,
    CancelAppointment,
    CompleteAppointment,
    RecordNoShow,
    RescheduleAppointment,
)
from services.booking_events.domain.idempotency import (
    IdempotencyKey,
    client_digest,
    request_fingerprint,
)
from services.booking_events.domain.refusals import UnknownAppointment
from services.booking_events.handlers import handle_command
from services.booking_events.http_errors import Unauthorized, install_error_handlers
from services.booking_events.http_models import (
    AppointmentView,
    BookRequest,
    CancelRequest,
    ChangeAccepted,
    CompleteRequest,
    ErrorBody,
    RescheduleRequest,
)
from services.booking_events.metrics import BookingMetrics
from services.booking_events.settings import BookingSettings
from services.booking_events.store import BookingStore
from shared.clock import Clock
from shared.observability import get_logger
from shared.process import Health

log = get_logger(__name__)


@dataclass
class BookingApi:
    """What the routes need, kept on app.state."""

    settings: BookingSettings
    store: BookingStore
    clock: Clock
    metrics: BookingMetrics
    health: Health
    on_recorded: Callable[[], None]  # an event is committed: the relay may publish it now

    async def apply(
        self, command: AppointmentCommand, kind: str, status: int, key: IdempotencyKey | None
    ) -> JSONResponse:
        outcome = await handle_command(self.store, command, self.clock.now(), status, key)
        if outcome.replayed:
            self.metrics.replayed.labels(kind=kind).inc()
            return JSONResponse(
                outcome.body, outcome.status_code, headers={"Idempotent-Replayed": "true"}
            )
        self.metrics.accepted.labels(kind=kind).inc()
        self.on_recorded()
        log.info("appointment_changed", kind=kind, **outcome.body)
        return JSONResponse(outcome.body, outcome.status_code)


def booking_api(request: Request) -> BookingApi:
    api: BookingApi = request.app.state.booking
    return api


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def authenticated_client(
    api: Annotated[BookingApi, Depends(booking_api)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> str:
    """The caller's client digest; refuses unknown keys. Compares against every key in constant time."""
    if not api_key:
        raise Unauthorized
    matched = None
    for known in api.settings.api_keys:
        if hmac.compare_digest(api_key.encode(), known.get_secret_value().encode()):
            matched = known.get_secret_value()
    if matched is None:
        raise Unauthorized
    return client_digest(matched)


async def idempotency_key(
    request: Request,
    client: Annotated[str, Depends(authenticated_client)],
    key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"),
    ] = None,
) -> IdempotencyKey | None:
    if key is None:
        return None
    fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
    return IdempotencyKey(client=client, key=key, fingerprint=fingerprint)


Api = Annotated[BookingApi, Depends(booking_api)]
Key = Annotated[IdempotencyKey | None, Depends(idempotency_key)]
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 404, 409, 422)
}
router = APIRouter(prefix="/v1", dependencies=[Depends(authenticated_client)], responses=ERRORS)


@router.post("/appointments", name="book", status_code=201, response_model=ChangeAccepted)
async def book(body: BookRequest, api: Api, key: Key) -> JSONResponse:
    appointment_id = body.appointment_id or f"apt_{uuid.uuid4().hex}"
    command = BookAppointment(appointment_id, body.patient, body.appointment)
    return await api.apply(command, "book", 201, key)


@router.post("/appointments/{appointment_id}/reschedule", name="reschedule", response_model=ChangeAccepted)
async def reschedule(appointment_id: str, body: RescheduleRequest, api: Api, key: Key) -> JSONResponse:
    command = RescheduleAppointment(
        appointment_id, body.starts_at, body.duration_minutes, body.practitioner, body.location_id
    )
    return await api.apply(command, "reschedule", 200, key)


@router.post("/appointments/{appointment_id}/cancel", name="cancel", response_model=ChangeAccepted)
async def cancel(
    appointment_id: str, api: Api, key: Key, body: Annotated[CancelRequest | None, Body()] = None
) -> JSONResponse:
    body = body or CancelRequest()
    return await api.apply(CancelAppointment(appointment_id, body.cancelled_by), "cancel", 200, key)


@router.post("/appointments/{appointment_id}/complete", name="complete", response_model=ChangeAccepted)
async def complete(
    appointment_id: str, api: Api, key: Key, body: Annotated[CompleteRequest | None, Body()] = None
) -> JSONResponse:
    body = body or CompleteRequest()
    command = CompleteAppointment(appointment_id, body.completed_at, body.needled_near_chest)
    return await api.apply(command, "complete", 200, key)


@router.post("/appointments/{appointment_id}/no-show", name="no_show", response_model=ChangeAccepted)
async def no_show(appointment_id: str, api: Api, key: Key) -> JSONResponse:
    return await api.apply(RecordNoShow(appointment_id), "no_show", 200, key)


@router.get("/appointments/{appointment_id}", name="view", response_model=AppointmentView)
async def view(appointment_id: str, api: Api) -> AppointmentView:
    appointment, updated_at = await api.store.read_appointment(appointment_id)
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


@operations.get("/healthz", name="healthz")
async def healthz(api: Api) -> JSONResponse:
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


@operations.get("/metrics", name="metrics")
async def metrics(api: Api) -> Response:
    backlog = await api.store.outbox_backlog()
    api.metrics.outbox_unpublished.set(backlog.unpublished)
    oldest = backlog.oldest_created_at
    api.metrics.outbox_oldest_age.set((api.clock.now() - oldest).total_seconds() if oldest else 0)
    return Response(api.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def create_app(api: BookingApi) -> FastAPI:
    """The API over its parts; it starts nothing (the relay and the purge are workers of their own)."""
    app = FastAPI(title="clinic-notify booking events", version="1")
    app.state.booking = api
    install_error_handlers(app, api.metrics)
    app.include_router(router)
    app.include_router(operations)
    return app
