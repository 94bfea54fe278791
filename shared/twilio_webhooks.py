"""What Twilio posts to us, checked before anything is done with it: bounded bodies, url-encoded
forms, and `X-Twilio-Signature` (HMAC-SHA1 with the auth token over the exact URL Twilio called and
the sorted parameters: twilio's RequestValidator). Also the status-callback route every sending
service serves."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator

from shared.delivery.status_reports import ProviderStatusReports, ReportOutcome
from shared.http_edge import announced_too_large, read_at_most
from shared.observability import get_logger

STATUS_CALLBACK_PATH = "/twilio/status"
MAX_CALLBACK_BODY_BYTES = 16 * 1024
# A report can overtake the record of its send: Twilio posts "queued" or "sent" as soon as it has the
# message, while the dispatcher is still writing the sid it was just given. Twilio retries a 5xx only
# when told to (connection overrides), so the report is held open for a while, the ledger asked again,
# and only then refused with 503 (which the sandbox, and Twilio with `#rp=5xx`, retry).
UNKNOWN_MESSAGE_WAIT_SECONDS = 5.0
UNKNOWN_MESSAGE_POLL_SECONDS = 0.2
RETRY_AFTER_SECONDS = "1"
log = get_logger(__name__)


@dataclass(frozen=True)
class WebhookSecurity:
    auth_token: str
    public_url: str | None = None  # the URL Twilio calls, when a proxy rewrites the one we see


def form_fields(body: bytes) -> dict[str, str]:
    """A url-encoded form, read from a body already bounded in size; a repeated field keeps its last value.

    A form of more than 100 fields is read as empty: no form we serve has that many.
    """
    try:
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=100))
    except ValueError:
        return {}


async def body_at_most(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is known to be longer than `limit` (nothing more is read)."""
    if announced_too_large({"content-length": request.headers.get("content-length", "0")}, limit):
        return None
    return await read_at_most(request.receive, limit)


def add_status_callback_route(
    app: FastAPI, reports: ProviderStatusReports, security: WebhookSecurity,
    max_body_bytes: int = MAX_CALLBACK_BODY_BYTES, unknown_wait_seconds: float = UNKNOWN_MESSAGE_WAIT_SECONDS,
) -> None:
    """POST /twilio/status: a message's status, applied to the ledger once its signature is checked.

    413 past `max_body_bytes`, 403 on a bad signature (nothing recorded), 400 without MessageSid or
    MessageStatus, 503 for a message still not in the ledger after `unknown_wait_seconds`, else 204."""
    validator = RequestValidator(security.auth_token)

    @app.post(STATUS_CALLBACK_PATH)
    async def status_callback(request: Request) -> Response:
        body = await body_at_most(request, max_body_bytes)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413)
        form = form_fields(body)
        url = security.public_url or str(request.url)
        if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            log.warning("status_callback_rejected", reason="invalid_signature")
            return PlainTextResponse("invalid signature", status_code=403)
        sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
        if not sid or not status:
            return PlainTextResponse("missing MessageSid or MessageStatus", status_code=400)
        outcome = await reports.apply(sid, status, form.get("ErrorCode"))
        deadline = asyncio.get_running_loop().time() + unknown_wait_seconds
        while outcome is ReportOutcome.UNKNOWN_MESSAGE and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(UNKNOWN_MESSAGE_POLL_SECONDS)  # the send's record may be a moment behind
            outcome = await reports.apply(sid, status, form.get("ErrorCode"))
        if outcome is ReportOutcome.UNKNOWN_MESSAGE:
            log.info("status_callback_for_unknown_message", status=status)
            return PlainTextResponse("unknown message", status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})
        return Response(status_code=204)
