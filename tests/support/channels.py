"""The SMTP sink and the Twilio sandbox, run on loopback for tests, with ways to read what they got."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.serving import BackgroundServer
from sandbox.smtp_sink import ReceivedMail, SmtpSink
from sandbox.twilio_sandbox import create_app

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token"
CLINIC_NUMBER = "+14165550100"


@dataclass
class TwilioSandbox:
    server: BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"to": to} if to else {}
        response = httpx.get(f"{self.url}/_sandbox/messages", params=params, timeout=5)
        response.raise_for_status()
        return response.json()

    def wait_for_messages(self, to: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def inject_fault(self, code: int, status: int, to: str | None = None, times: int = 1) -> None:
        body = {"code": code, "status": status, "times": times} | ({"to": to} if to else {})
        httpx.post(f"{self.url}/_sandbox/faults", json=body, timeout=5).raise_for_status()

    def text_in(self, from_: str, body: str, signature: str = "valid") -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/_sandbox/inbound",
            json={"from": from_, "body": body, "signature": signature},
            timeout=20,
        )
        response.raise_for_status()
        return response.json()


def start_twilio_sandbox(inbound_webhook_url: str | None = None) -> TwilioSandbox:
    server = BackgroundServer(
        create_app(ACCOUNT_SID, AUTH_TOKEN, inbound_webhook_url=inbound_webhook_url, phone_number=CLINIC_NUMBER)
    )
    server.start()
    return TwilioSandbox(server)


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
