"""Status callbacks (queued -> sent -> delivered), signed like Twilio's."""
from __future__ import annotations

import logging
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from sandbox.twilio_sandbox.payloads import API_VERSION

_log = logging.getLogger("sandbox.twilio")


async def report_delivery(message: dict[str, Any], url: str, auth_token: str) -> None:
    """Walk the message to "delivered", posting each status to its StatusCallback."""
    validator = RequestValidator(auth_token)
    async with httpx.AsyncClient(timeout=10.0) as client:
        for status in ("sent", "delivered"):
            message["status"] = status
            params = {
                "MessageSid": message["sid"],
                "SmsSid": message["sid"],
                "MessageStatus": status,
                "SmsStatus": status,
                "AccountSid": message["account_sid"],
                "To": message["to"],
                "From": message["from"] or "",
                "ApiVersion": API_VERSION,
            }
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            try:
                await client.post(url, data=params, headers=headers)
            except httpx.HTTPError as exc:
                # Twilio too just logs a failed callback (error 11200) and moves on.
                _log.warning("status callback for %s failed: %s", message["sid"], type(exc).__name__)
                return
