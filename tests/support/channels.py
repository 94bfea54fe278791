"""The SMTP sink and the Twilio sandbox, run on loopback for tests, with ways to read what they got."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from twilio.request_validator import RequestValidator

from sandbox.serving import BackgroundServer
from sandbox.smtp_sink import ReceivedMail, SmtpSink
from sandbox.twilio_sandbox import create_app
from sandbox.twilio_sandbox.callbacks import CallbackSettings

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token"
CLINIC_NUMBER = "+14165550100"


@dataclass
class TwilioSandbox:
    server: BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url

    def messages(self, to: str | None = None, received: bool = False) -> list[dict[str, Any]]:
        """What the sandbox sent, or (`received`) the texts it received, with its own timestamps."""
        params: dict[str, Any] = ({"to": to} if to else {}) | ({"received": "true"} if received else {})
        response = httpx.get(f"{self.url}/_sandbox/messages", params=params, timeout=30)  # thousands, under load
        response.raise_for_status()
        return response.json()

    def wait_for_messages(self, to: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def inject_fault(
        self, code: int, status: int | None = None, to: str | None = None, **more: Any
    ) -> dict[str, Any]:
        """POST /_sandbox/faults; `more`: times (None: until cleared), kind, outcome, seconds, message.

        What is not given is the sandbox's default: see sandbox/README.md.
        """
        body: dict[str, Any] = {"code": code} | more
        if status is not None:
            body["status"] = status
        if to:
            body["to"] = to
        response = httpx.post(f"{self.url}/_sandbox/faults", json=body, timeout=5)
        response.raise_for_status()
        fault: dict[str, Any] = response.json()
        return fault

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/_sandbox/faults", timeout=5).raise_for_status()

    def clear_messages(self) -> None:
        """Forget every message, and stop their pending statuses and callbacks."""
        httpx.delete(f"{self.url}/_sandbox/messages", timeout=5).raise_for_status()

    def set_latency(self, seconds: float) -> None:
        httpx.put(f"{self.url}/_sandbox/latency", json={"seconds": seconds}, timeout=5).raise_for_status()

    def set_rate_limit(self, per_second: float | None) -> None:
        httpx.put(f"{self.url}/_sandbox/rate-limit", json={"per_second": per_second}, timeout=5).raise_for_status()

    def wait_for_status(self, sid: str, statuses: set[str], timeout: float = 10.0) -> dict[str, Any]:
        """The message once its status is one of `statuses` (e.g. {"delivered", "undelivered"})."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages() if m["sid"] == sid]
            if found and found[0]["status"] in statuses:
                return found[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"message {sid} is {found[0]['status'] if found else 'gone'}")
            time.sleep(0.05)

    def text_in(self, from_: str, body: str, signature: str = "valid") -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/_sandbox/inbound",
            json={"from": from_, "body": body, "signature": signature},
            timeout=20,
        )
        response.raise_for_status()
        return response.json()


def start_twilio_sandbox(inbound_webhook_url: str | None = None, **options: Any) -> TwilioSandbox:
    """`options`: create_app's keyword settings (latency, rate_limit, callbacks, clock).

    Unless `callbacks` says otherwise, a message goes from queued to delivered at once rather than
    after the sandbox's default 50 ms a step: tests that move a fake clock past a lease and look the
    text up at once (DateSent> matches only sent messages) must not race the sandbox's real time.
    """
    options.setdefault("callbacks", CallbackSettings(step_delay=0.0))
    server = BackgroundServer(
        create_app(ACCOUNT_SID, AUTH_TOKEN, inbound_webhook_url=inbound_webhook_url, phone_number=CLINIC_NUMBER,
                   **options)
    )
    server.start()
    return TwilioSandbox(server)


@dataclass(frozen=True)
class StatusCallback:
    params: dict[str, str]
    headers: dict[str, str]
    validated: bool  # X-Twilio-Signature checked with twilio's RequestValidator and the auth token
    url: str


@dataclass
class CallbackReceiver:
    """Our side of Twilio's status callbacks: records each POST, can answer the first ones 500."""

    auth_token: str = AUTH_TOKEN
    received: list[StatusCallback] = field(default_factory=list)
    fail_first: int = 0  # answer this many posts with 500 before accepting
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()
        validator = RequestValidator(self.auth_token)

        @app.post("/status")
        async def status(request: Request) -> Response:
            params = {key: str(value) for key, value in (await request.form()).items()}
            signature = request.headers.get("X-Twilio-Signature", "")
            callback = StatusCallback(
                params, dict(request.headers), validator.validate(str(request.url), params, signature),
                str(request.url),
            )
            with self._lock:
                self.received.append(callback)
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return Response(status_code=500)
            return Response(status_code=204)

        return app

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.fail_first = 0

    def for_sid(self, sid: str) -> list[StatusCallback]:
        with self._lock:
            return [c for c in self.received if c.params.get("MessageSid") == sid]

    def wait_for(self, sid: str, count: int, timeout: float = 10.0) -> list[StatusCallback]:
        """The callbacks posted for `sid` once there are `count` (fewer if `timeout` passes first)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.for_sid(sid)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


def mails_to(sink: SmtpSink, address: str) -> list[ReceivedMail]:
    return [mail for mail in sink.messages if address in mail.recipients]


def wait_for_mails(sink: SmtpSink, address: str, count: int, timeout: float = 15.0,
                   where: Callable[[ReceivedMail], bool] = lambda mail: True) -> list[ReceivedMail]:
    deadline = time.monotonic() + timeout
    while True:
        found = [mail for mail in mails_to(sink, address) if where(mail)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
