"""The sandbox's HTTP surface: Twilio's Messages API plus /_sandbox test controls."""
from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.twilio_sandbox import inbound, listing
from sandbox.twilio_sandbox.callbacks import CallbackSettings, Lifecycles
from sandbox.twilio_sandbox.payloads import (
    API_VERSION,
    DELIVERY_ERROR_CODES,
    error_body,
    is_e164,
    message_resource,
)
from sandbox.twilio_sandbox.state import Fault, FaultKind, RateLimiter, SandboxState

DEFAULT_SANDBOX_NUMBER = "+14165550100"
OPT_OUT_CONFIRMATIONS = {
    "STOP": "You have successfully been unsubscribed. You will not receive any more messages from this "
            "number. Reply START to resubscribe.",
    "START": "You have successfully been re-subscribed to messages from this number. Reply HELP for help. "
             "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}
# The HTTP status Twilio answers each error code with, where a fault does not say.
_STATUS_OF_CODE = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}


class FaultRequest(BaseModel):
    """POST /_sandbox/faults. See sandbox/README.md for each kind."""

    code: int
    kind: Literal["create", "delivery", "account"] | None = None  # None: told by the code
    status: int | None = Field(default=None, ge=400, le=599)  # HTTP status; None: Twilio's for the code
    to: str | None = None
    times: int | None = Field(default=1, ge=1)  # null: until cleared (or `seconds` have passed)
    seconds: float | None = Field(default=None, gt=0)  # the fault ends this long after it is set
    outcome: Literal["undelivered", "failed"] = "undelivered"  # kind "delivery" only
    message: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FaultRequest:
        if self.kind is None:
            self.kind = fault_kind_of(self.code)
        if self.kind == "account" and "times" not in self.model_fields_set:
            self.times = None  # bad credentials stay bad until cleared
        delivery_code = self.code in DELIVERY_ERROR_CODES
        if self.kind == "delivery" and not delivery_code:
            raise ValueError("a delivery outcome carries a 30001-30999 error code")
        if self.kind != "delivery" and delivery_code:
            raise ValueError(
                f"Twilio never answers a create with {self.code}: it reports it in the message's status "
                'and status callbacks; use kind "delivery"'
            )
        if self.kind == "account" and self.to is not None:
            raise ValueError('an "account" fault applies to every request: it takes no "to"')
        if self.status is None:
            self.status = _STATUS_OF_CODE.get(self.code, 400)
        return self


def fault_kind_of(code: int) -> FaultKind:
    if code in DELIVERY_ERROR_CODES:
        return "delivery"
    if code == 20003:
        return "account"
    return "create"


class InboundRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    body: str
    to: str | None = None
    signature: Literal["valid", "invalid"] = "valid"


class LatencyRequest(BaseModel):
    seconds: float = Field(ge=0, le=120)


class RateLimitRequest(BaseModel):
    per_second: float | None = Field(default=None, gt=0)  # null: no limit


def create_app(
    account_sid: str,
    auth_token: str,
    inbound_webhook_url: str | None = None,
    record_file: Path | None = None,
    phone_number: str = DEFAULT_SANDBOX_NUMBER,
    *,
    latency: float = 0.0,
    rate_limit: float | None = None,
    callbacks: CallbackSettings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The sandbox app.

    latency: seconds added to each Messages API request. rate_limit: messages per second per sender
    (From or MessagingServiceSid), None for no limit. callbacks: the delay between a message's
    statuses and the retries of its status callbacks. clock: the time messages are dated with
    (tests pass a fake one), aware datetimes.
    """
    state = SandboxState(record_file, clock=clock, latency=latency, rate_limit=rate_limit)
    lifecycles = Lifecycles(state, auth_token, phone_number, callbacks or CallbackSettings())
    app = FastAPI(title="Twilio sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = state
    app.state.lifecycles = lifecycles
    messages_path = f"/{API_VERSION}/Accounts/{{path_sid}}/Messages"

    def twilio_error(code: int, status: int, message: str | None = None) -> JSONResponse:
        response = JSONResponse(error_body(code, status, message), status_code=status)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response

    def authenticated(request: Request, path_sid: str) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            secrets.compare_digest(user, account_sid)
            and secrets.compare_digest(password, auth_token)
            and path_sid == account_sid
        )

    async def refused(request: Request, path_sid: str) -> JSONResponse | None:
        """What every Messages API request goes through first: latency, account faults, credentials."""
        if state.latency > 0:
            await asyncio.sleep(state.latency)  # other requests are served meanwhile
        fault = state.take_fault("account")
        if fault is not None:
            return twilio_error(fault.code, fault.status, fault.message or None)
        if not authenticated(request, path_sid):
            return twilio_error(20003, 401)
        return None

    @app.post(f"{messages_path}.json")
    async def create_message(path_sid: str, request: Request) -> JSONResponse:
        # The request is read before the latency, as Twilio has it once it is sent: a client that gives
        # up while waiting for the answer leaves the message created (and sent) all the same.
        form = await request.form()
        if (answer := await refused(request, path_sid)) is not None:
            return answer
        to = str(form.get("To", ""))
        from_ = str(form.get("From", "")) or None
        service_sid = str(form.get("MessagingServiceSid", "")) or None
        body = str(form.get("Body", ""))
        callback = str(form.get("StatusCallback", "")) or None
        fault = state.take_fault("create", to)
        if fault is not None:
            return twilio_error(fault.code, fault.status, fault.message or None)
        if not is_e164(to):
            return twilio_error(21211, 400)
        if not (from_ or service_sid):
            return twilio_error(21603, 400)
        if not body.strip():
            return twilio_error(21602, 400)
        if state.is_opted_out(to):
            return twilio_error(21610, 400)
        sender = from_ or service_sid or ""
        if not state.rate_limiter.allow(sender):
            return twilio_error(20429, 429)
        resource = message_resource(account_sid, to, from_, body, state.now(), service_sid)
        message = state.record(resource, status_callback=callback)
        outcome = state.take_fault("delivery", to)
        if outcome is None:
            lifecycles.start(message)
        else:
            lifecycles.start(message, outcome.outcome, outcome.code)
        return JSONResponse(resource, status_code=201)

    @app.get(f"{messages_path}.json")
    async def list_messages_api(path_sid: str, request: Request) -> JSONResponse:
        if (answer := await refused(request, path_sid)) is not None:
            return answer
        try:
            envelope = listing.page(account_sid, state.all_messages(), request.query_params)
        except listing.BadFilter as exc:
            return twilio_error(20001, 400, str(exc))
        return JSONResponse(envelope)

    @app.get(f"{messages_path}/{{sid}}.json")
    async def fetch_message(path_sid: str, sid: str, request: Request) -> JSONResponse:
        if (answer := await refused(request, path_sid)) is not None:
            return answer
        message = state.get(sid)
        if message is None:
            return twilio_error(20404, 404)
        return JSONResponse(message.resource)

    # --- test controls ----------------------------------------------------------------------

    @app.post("/_sandbox/faults", status_code=201)
    async def add_fault(fault: FaultRequest) -> dict[str, Any]:
        assert fault.kind is not None and fault.status is not None  # set by the validator
        expires_at = time.monotonic() + fault.seconds if fault.seconds is not None else None
        state.add_fault(Fault(fault.code, fault.status, fault.message or "", fault.to, fault.times,
                              kind=fault.kind, outcome=fault.outcome, expires_at=expires_at))
        return fault.model_dump()

    @app.get("/_sandbox/faults")
    async def list_faults() -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {"kind": f.kind, "code": f.code, "status": f.status, "to": f.to, "times": f.times,
             "outcome": f.outcome, "seconds_left": None if f.expires_at is None else f.expires_at - now}
            for f in state.faults()
        ]

    @app.delete("/_sandbox/faults", status_code=204)
    async def clear_faults() -> None:
        state.clear_faults()

    @app.get("/_sandbox/messages")
    async def list_messages(to: str | None = None, received: bool = False) -> list[dict[str, Any]]:
        return state.messages(to, received)

    @app.delete("/_sandbox/messages", status_code=204)
    async def clear_messages() -> None:
        lifecycles.cancel_all()
        state.clear_messages()

    @app.get("/_sandbox/callbacks")
    async def list_callbacks(sid: str | None = None) -> list[dict[str, Any]]:
        return [a.view() for a in lifecycles.attempts if sid is None or a.sid == sid]

    @app.get("/_sandbox/latency")
    async def get_latency() -> dict[str, float]:
        return {"seconds": state.latency}

    @app.put("/_sandbox/latency")
    async def set_latency(latency: LatencyRequest) -> dict[str, float]:
        state.latency = latency.seconds
        return {"seconds": state.latency}

    @app.get("/_sandbox/rate-limit")
    async def get_rate_limit() -> dict[str, float | None]:
        return {"per_second": state.rate_limiter.per_second}

    @app.put("/_sandbox/rate-limit")
    async def set_rate_limit(limit: RateLimitRequest) -> dict[str, float | None]:
        state.rate_limiter = RateLimiter(limit.per_second)
        return {"per_second": limit.per_second}

    @app.get("/_sandbox/settings")
    async def get_settings() -> dict[str, Any]:
        settings = lifecycles.settings
        return {
            "latency": state.latency,
            "rate_limit": state.rate_limiter.per_second,
            "status_delay": settings.step_delay,
            "callback_attempts": settings.attempts,
            "callback_backoff": settings.backoff,
            "phone_number": phone_number,
            "inbound_webhook_url": inbound_webhook_url,
        }

    @app.post("/_sandbox/inbound")
    async def simulate_inbound(text: InboundRequest) -> JSONResponse:
        to = text.to or phone_number
        opt_out_type = state.apply_keyword(text.from_, text.body)
        params = inbound.inbound_params(account_sid, text.from_, to, text.body, opt_out_type)
        # Twilio keeps the received text as a Message ("inbound"), listed by the Messages API.
        state.record(message_resource(account_sid, to, text.from_, text.body, state.now(),
                                      direction="inbound", status="received", sid=params["MessageSid"]))
        if opt_out_type in OPT_OUT_CONFIRMATIONS:
            # Twilio's own opt-out handling answers STOP and START itself, before any webhook.
            reply = message_resource(account_sid, text.from_, to, OPT_OUT_CONFIRMATIONS[opt_out_type],
                                     state.now(), direction="outbound-reply")
            lifecycles.start(state.record(reply))
        if inbound_webhook_url is None:
            return JSONResponse({"status": None, "body": None, "opt_out_type": opt_out_type})
        signed = inbound.signature(auth_token, inbound_webhook_url, params, text.signature == "valid")
        try:
            answer = await inbound.post_to_webhook(inbound_webhook_url, params, signed)
        except httpx.HTTPError as exc:
            body = error_body(11200, 502, f"HTTP retrieval failure: {type(exc).__name__}")
            return JSONResponse(body, status_code=502)
        replies = inbound.twiml_replies(answer.text) if answer.status == 200 else []
        recorded = []
        for reply_verb in replies:
            reply_to = reply_verb.to or text.from_
            if state.is_opted_out(reply_to) or not reply_verb.body:
                continue  # Twilio refuses these (21610, 21602); the patient gets nothing
            message = message_resource(
                account_sid, reply_to, reply_verb.from_ or to, reply_verb.body, state.now(),
                direction="outbound-reply",
            )
            lifecycles.start(state.record(message))
            recorded.append(message["sid"])
        return JSONResponse(
            {
                "status": answer.status,
                "body": answer.text,
                "opt_out_type": opt_out_type,
                "replies": recorded,
            }
        )

    return app
