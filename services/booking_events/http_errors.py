"""Every refusal of the HTTP API as JSON {"error": ..., ...}; patient input is never echoed."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.booking_events.domain.idempotency import IdempotencyKeyReused
from services.booking_events.domain.refusals import AppointmentRefusal, InvalidField, UnknownAppointment
from services.booking_events.metrics import BookingMetrics
from services.booking_events.store import ConcurrentChange
from shared.observability import get_logger

log = get_logger(__name__)


class Unauthorized(Exception):
    """No API key, or one we don't know."""


def install_error_handlers(app: FastAPI, metrics: BookingMetrics) -> None:
    def refuse(request: Request, status: int, error: str, **extra: Any) -> JSONResponse:
        metrics.refused.labels(kind=request_kind(request), error=error).inc()
        return JSONResponse({"error": error, **extra}, status_code=status)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            log.info("request_malformed", kind=request_kind(request))
            return refuse(request, 400, "malformed_json", message="the body is not valid JSON")
        problems = describe_problems(errors)
        log.info(
            "request_invalid",
            kind=request_kind(request),
            fields=[problem["field"] for problem in problems],
        )
        return refuse(request, 422, "validation_failed", problems=problems)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppointmentRefusal)
        if isinstance(exc, InvalidField):
            log.info("request_invalid", kind=request_kind(request), fields=[exc.field])
            return refuse(request, 422, exc.code, problems=[{"field": exc.field, "message": exc.message}])
        status = 404 if isinstance(exc, UnknownAppointment) else 409
        return refuse(request, status, exc.code, message=exc.message)

    async def key_reused(request: Request, exc: Exception) -> JSONResponse:
        message = "this Idempotency-Key was first used with a different request; use a new key"
        return refuse(request, 422, "idempotency_key_reused", message=message)

    async def concurrent_change(request: Request, exc: Exception) -> JSONResponse:
        message = "the appointment kept changing while we applied this request; retry it"
        return refuse(request, 409, "concurrent_change", message=message)

    async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
        response = refuse(
            request, 401, "unauthorized", message="send a valid API key in the X-API-Key header"
        )
        response.headers["WWW-Authenticate"] = "X-API-Key"
        return response

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": error, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(AppointmentRefusal, refused)
    app.add_exception_handler(IdempotencyKeyReused, key_reused)
    app.add_exception_handler(ConcurrentChange, concurrent_change)
    app.add_exception_handler(Unauthorized, unauthorized)
    app.add_exception_handler(HTTPException, http_error)


def request_kind(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "name", None) or "unknown"


def describe_problems(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Which field is wrong and why, without the value that was sent (it may be a phone number)."""
    return [
        {
            "field": "body" if error.get("type") == "json_invalid" else _field_path(error["loc"]),
            "message": _without_input(error),
        }
        for error in errors
    ]


def _field_path(loc: Sequence[str | int]) -> str:
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _without_input(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    value = error.get("input")
    if isinstance(value, str) and len(value) >= 3:
        # Whole occurrences only: a message's own example (+14165550123) may start like the input.
        pattern = rf"(?<![\w+]){re.escape(value)}(?!\w)"
        message = re.sub(pattern, "<redacted>", message)
    return message
