"""The sandbox's HTTP surface: Twilio's Messages API plus /_sandbox test controls."""
from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sandbox.twilio_sandbox import inbound
from sandbox.twilio_sandbox.callbacks import report_delivery
from sandbox.twilio_sandbox.payloads import API_VERSION, error_body, is_e164, message_resource
from sandbox.twilio_sandbox.state import Fault, SandboxState

DEFAULT_SANDBOX_NUMBER = "+14165550100"
OPT_OUT_CONFIRMATIONS = {
    "STOP": "You have successfully been unsubscribed. You will not receive any more messages from this "
            "number. Reply START to resubscribe.",
    "START": "You have successfully been re-subscribed to messages from this number. Reply HELP for help. "
             "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}


class FaultRequest(BaseModel):
    code: int
    status: int = Field(default=400, ge=400, le=599)
    to: str | None = None
    times: int = Field(default=1, ge=1)
    message: str | None = None


class InboundRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    body: str
    to: str | None = None
    signature: Literal["valid", "invalid"] = "valid"


def create_app(
    account_sid: str,
    auth_token: str,
    inbound_webhook_url: str | None = None,
    record_file: Path | None = None,
    phone_number: str = DEFAULT_SANDBOX_NUMBER,
) -> FastAPI:
    state = SandboxState(record_file)
    app = FastAPI(title="Twilio sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = state

    def twilio_error(code: int, status: int, message: str | None = None) -> JSONResponse:
        return JSONResponse(error_body(code, status, message), status_code=status)

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

    @app.post(f"/{API_VERSION}/Accounts/{{path_sid}}/Messages.json")
    async def create_message(
        path_sid: str, request: Request, background: BackgroundTasks
    ) -> JSONResponse:
        if not authenticated(request, path_sid):
            response = twilio_error(20003, 401)
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return response
        form = await request.form()
        to = str(form.get("To", ""))
        from_ = str(form.get("From", "")) or None
        service_sid = str(form.get("MessagingServiceSid", "")) or None
        body = str(form.get("Body", ""))
        callback = str(form.get("StatusCallback", "")) or None
        fault = state.take_fault(to)
        if fault is not None:
            return twilio_error(fault.code, fault.status, fault.message)
        if not is_e164(to):
            return twilio_error(21211, 400)
        if not (from_ or service_sid):
            return twilio_error(21603, 400)
        if not body.strip():
            return twilio_error(21602, 400)
        if state.is_opted_out(to):
            return twilio_error(21610, 400)
        message = message_resource(account_sid, to, from_, body, service_sid, status_callback=callback)
        state.record(message)
        if callback:
            background.add_task(report_delivery, message, callback, auth_token)
        return JSONResponse(message, status_code=201)

    @app.post("/_sandbox/faults", status_code=201)
    async def add_fault(fault: FaultRequest) -> dict[str, Any]:
        state.add_fault(Fault(fault.code, fault.status, fault.message or "", fault.to, fault.times))
        return fault.model_dump()

    @app.delete("/_sandbox/faults", status_code=204)
    async def clear_faults() -> None:
        state.clear_faults()

    @app.get("/_sandbox/messages")
    async def list_messages(to: str | None = None) -> list[dict[str, Any]]:
        return state.messages(to)

    @app.delete("/_sandbox/messages", status_code=204)
    async def clear_messages() -> None:
        state.clear_messages()

    @app.post("/_sandbox/inbound")
    async def simulate_inbound(text: InboundRequest) -> JSONResponse:
        to = text.to or phone_number
        opt_out_type = state.apply_keyword(text.from_, text.body)
        if opt_out_type in OPT_OUT_CONFIRMATIONS:
            # Twilio's own opt-out handling answers STOP and START itself, before any webhook.
            state.record(message_resource(account_sid, text.from_, to, OPT_OUT_CONFIRMATIONS[opt_out_type],
                                          direction="outbound-reply"))
        if inbound_webhook_url is None:
            return JSONResponse({"status": None, "body": None, "opt_out_type": opt_out_type})
        params = inbound.inbound_params(account_sid, text.from_, to, text.body, opt_out_type)
        signed = inbound.signature(auth_token, inbound_webhook_url, params, text.signature == "valid")
        try:
            answer = await inbound.post_to_webhook(inbound_webhook_url, params, signed)
        except httpx.HTTPError as exc:
            body = error_body(11200, 502, f"HTTP retrieval failure: {type(exc).__name__}")
            return JSONResponse(body, status_code=502)
        replies = inbound.twiml_replies(answer.text) if answer.status == 200 else []
        recorded = []
        for reply in replies:
            reply_to = reply.to or text.from_
            if state.is_opted_out(reply_to) or not reply.body:
                continue  # Twilio refuses these (21610, 21602); the patient gets nothing
            message = message_resource(
                account_sid, reply_to, reply.from_ or to, reply.body, direction="outbound-reply"
            )
            state.record(message)
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
