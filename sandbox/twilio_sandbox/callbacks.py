"""What happens to a message after the create: its statuses, and the callbacks telling them.

Like Twilio, the create is answered at once ("queued", or "accepted" for a Messaging Service) and the
message then moves on by itself: "sent" then "delivered", or "sent" then "undelivered", or "failed"
(never sent), the last two with an ErrorCode (30003 unreachable handset, 30005 unknown handset,
30006 landline or unreachable carrier, 30007 filtered...). When the create named a StatusCallback,
each of these statuses is POSTed there, form-encoded and signed with X-Twilio-Signature.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from sandbox.twilio_sandbox.payloads import API_VERSION
from sandbox.twilio_sandbox.state import Outcome, SandboxState, StoredMessage

_log = logging.getLogger("sandbox.twilio")


@dataclass(frozen=True)
class CallbackSettings:
    step_delay: float = 0.05  # seconds between one status and the next
    attempts: int = 4  # posts of one callback at most: the first and up to 3 retries
    backoff: float = 0.1  # seconds before the first retry, doubled before each next one
    timeout: float = 15.0  # seconds Twilio waits for a callback's answer

    def __post_init__(self) -> None:
        if self.step_delay < 0 or self.backoff < 0 or self.timeout <= 0:
            raise ValueError("callback delays must not be negative")
        if self.attempts < 1:
            raise ValueError("a callback is posted at least once")


@dataclass(frozen=True)
class CallbackAttempt:
    """One POST of a status callback, as GET /_sandbox/callbacks shows it."""

    sid: str
    status: str
    attempt: int
    http_status: int | None  # None: no answer (refused, timed out)
    error: str | None

    def view(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "status": self.status,
            "attempt": self.attempt,
            "http_status": self.http_status,
            "error": self.error,
        }


def steps(outcome: Outcome, error_code: int | None) -> list[tuple[str, int | None]]:
    """The statuses a message goes through after "queued", each with its ErrorCode."""
    if outcome == "failed":
        return [("failed", error_code)]
    if outcome == "undelivered":
        return [("sent", None), ("undelivered", error_code)]
    return [("sent", None), ("delivered", None)]


def callback_params(message: StoredMessage) -> dict[str, str]:
    """The form fields of Twilio's message status callback."""
    resource = message.resource
    params = {
        "MessageSid": resource["sid"],
        "SmsSid": resource["sid"],
        "MessageStatus": resource["status"],
        "SmsStatus": resource["status"],
        "AccountSid": resource["account_sid"],
        "From": resource["from"] or "",
        "To": resource["to"],
        "ApiVersion": API_VERSION,
    }
    if resource["messaging_service_sid"]:
        params["MessagingServiceSid"] = resource["messaging_service_sid"]
    if resource["status"] in ("failed", "undelivered") and resource["error_code"] is not None:
        params["ErrorCode"] = str(resource["error_code"])
    return params


class Lifecycles:
    """Runs each message's way to its last status in the background, on the server's event loop."""

    def __init__(
        self, state: SandboxState, auth_token: str, sender_number: str, settings: CallbackSettings
    ) -> None:
        self._state = state
        self._validator = RequestValidator(auth_token)
        self._sender_number = sender_number
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        self.attempts: list[CallbackAttempt] = []

    def start(self, message: StoredMessage, outcome: Outcome = "delivered", error_code: int | None = None) -> None:
        self._spawn(self._run(message.sid, message.status_callback, outcome, error_code))

    def cancel_all(self) -> None:
        """Stop every message's progress and its pending callbacks (the sandbox is being reset)."""
        for task in list(self._tasks):
            task.cancel()
        self.attempts.clear()

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, sid: str, callback_url: str | None, outcome: Outcome, error_code: int | None) -> None:
        previous: asyncio.Task[None] | None = None
        message = self._state.get(sid)
        if message is not None and message.resource["status"] == "accepted":
            # The Messaging Service picks a sender from its pool: here, the sandbox's own number.
            await asyncio.sleep(self.settings.step_delay)
            self._state.advance(sid, "queued", from_=self._sender_number)
        for status, code in steps(outcome, error_code):
            await asyncio.sleep(self.settings.step_delay)
            message = self._state.advance(sid, status, error_code=code)
            if message is None:
                return  # cleared meanwhile
            if callback_url:
                # Each callback waits for the one before, so they arrive in order even when retried,
                # without holding the message's own progress back.
                previous = self._spawn(self._post(callback_url, callback_params(message), previous))
        if previous is not None:
            await previous

    async def _post(self, url: str, params: dict[str, str], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        headers = {
            "X-Twilio-Signature": self._validator.compute_signature(url, params),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),  # the same on each retry
            "User-Agent": "TwilioProxy/1.1",
        }
        sid, status = params["MessageSid"], params["MessageStatus"]
        async with httpx.AsyncClient(timeout=self.settings.timeout) as client:
            for attempt in range(1, self.settings.attempts + 1):
                if attempt > 1:
                    await asyncio.sleep(self.settings.backoff * 2 ** (attempt - 2))
                try:
                    answer = await client.post(url, data=params, headers=headers)
                except httpx.HTTPError as exc:
                    self.attempts.append(CallbackAttempt(sid, status, attempt, None, type(exc).__name__))
                    continue
                self.attempts.append(CallbackAttempt(sid, status, attempt, answer.status_code, None))
                if answer.status_code < 500 and answer.status_code != 429:
                    return  # answered: a 4xx will not change by asking again
        # Twilio too gives up in the end and notes error 11200 in its debugger.
        _log.warning("status callback %s for %s failed %d times", status, sid, self.settings.attempts)
