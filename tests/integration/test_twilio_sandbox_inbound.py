"""A patient's text, simulated by the sandbox, reaching a webhook that checks Twilio's signature."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from twilio.request_validator import RequestValidator

from sandbox.serving import BackgroundServer
from sandbox.twilio_sandbox import create_app
from sandbox.twilio_sandbox.payloads import API_VERSION
from shared.channels.messages import PermanentDeliveryError, SmsMessage
from shared.channels.sms import TwilioSmsSender

ACCOUNT_SID = "AC" + "0" * 31 + "2"
AUTH_TOKEN = "sandbox-auth-token"
CLINIC_NUMBER = "+14165550100"
PATIENT = "+14165550177"
THANKS = "Merci! Your answer is noted."


@dataclass
class ReceivedText:
    validated: bool
    params: dict[str, str]


@dataclass
class Webhook:
    """Our side: validates the signature, answers with TwiML like the clinic's check-in webhook."""

    received: list[ReceivedText] = field(default_factory=list)
    statuses: list[ReceivedText] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()
        validator = RequestValidator(AUTH_TOKEN)

        @app.post("/sms/inbound")
        async def inbound(request: Request) -> Response:
            params = {key: str(value) for key, value in (await request.form()).items()}
            signature = request.headers.get("X-Twilio-Signature", "")
            validated = validator.validate(str(request.url), params, signature)
            self.received.append(ReceivedText(validated, params))
            if not validated:
                return Response(status_code=403)
            twiml = f"<?xml version='1.0' encoding='UTF-8'?><Response><Message>{THANKS}</Message></Response>"
            return Response(twiml, media_type="application/xml")

        @app.post("/sms/status")
        async def status(request: Request) -> Response:
            params = {key: str(value) for key, value in (await request.form()).items()}
            signature = request.headers.get("X-Twilio-Signature", "")
            validated = validator.validate(str(request.url), params, signature)
            self.statuses.append(ReceivedText(validated, params))
            return Response(status_code=204)

        return app


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[Webhook, str]]:
    hook = Webhook()
    with BackgroundServer(hook.app()) as server:
        yield hook, f"{server.url}/sms/inbound"


@pytest.fixture(scope="module")
def sandbox(webhook: tuple[Webhook, str]) -> Iterator[httpx.Client]:
    app = create_app(ACCOUNT_SID, AUTH_TOKEN, inbound_webhook_url=webhook[1])
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=20.0) as control:
        yield control


@pytest.fixture
def hook(webhook: tuple[Webhook, str], sandbox: httpx.Client) -> Webhook:
    webhook[0].received.clear()
    webhook[0].statuses.clear()
    sandbox.delete("/_sandbox/messages").raise_for_status()
    return webhook[0]


@pytest.fixture
async def sender(sandbox: httpx.Client) -> AsyncIterator[TwilioSmsSender]:
    sms = TwilioSmsSender(
        ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_base_url=str(sandbox.base_url)
    )
    yield sms
    await sms.close()


def text_from_patient(
    sandbox: httpx.Client, body: str, signature: str = "valid"
) -> dict[str, object]:
    answer = sandbox.post(
        "/_sandbox/inbound", json={"from": PATIENT, "body": body, "signature": signature}
    )
    answer.raise_for_status()
    return dict(answer.json())


def test_a_correctly_signed_text_validates(hook: Webhook, sandbox: httpx.Client) -> None:
    answer = text_from_patient(sandbox, "8")

    assert answer["status"] == 200
    (text,) = hook.received
    assert text.validated
    assert text.params["From"] == PATIENT
    assert text.params["To"] == CLINIC_NUMBER
    assert text.params["Body"] == "8"
    assert text.params["AccountSid"] == ACCOUNT_SID
    assert text.params["NumMedia"] == "0"
    assert text.params["MessageSid"].startswith("SM")


def test_a_wrongly_signed_text_fails_validation(hook: Webhook, sandbox: httpx.Client) -> None:
    answer = text_from_patient(sandbox, "8", signature="invalid")

    assert answer["status"] == 403
    (text,) = hook.received
    assert not text.validated
    assert sandbox.get("/_sandbox/messages").json() == []


def test_received_texts_are_listed_apart_from_sent_ones_with_the_moment_they_arrived(
    hook: Webhook, sandbox: httpx.Client
) -> None:
    before = time.time()
    text_from_patient(sandbox, "3")

    (received,) = sandbox.get("/_sandbox/messages", params={"received": "true"}).json()
    assert (received["from"], received["body"], received["direction"]) == (PATIENT, "3", "inbound")
    assert before <= received["sandbox_received_at"] <= time.time()
    assert all(m["direction"] != "inbound" for m in sandbox.get("/_sandbox/messages").json())


def test_a_twiml_reply_is_sent_back_to_the_patient(hook: Webhook, sandbox: httpx.Client) -> None:
    answer = text_from_patient(sandbox, "3")

    (reply,) = sandbox.get("/_sandbox/messages", params={"to": PATIENT}).json()
    assert answer["replies"] == [reply["sid"]]
    assert reply["body"] == THANKS
    assert reply["from"] == CLINIC_NUMBER
    assert reply["direction"] == "outbound-reply"


async def test_stop_blocks_later_texts_until_start(
    hook: Webhook, sandbox: httpx.Client, sender: TwilioSmsSender
) -> None:
    answer = text_from_patient(sandbox, " stop ")

    assert hook.received[-1].params["OptOutType"] == "STOP"
    assert answer["replies"] == []  # Twilio would refuse the webhook's reply too
    with pytest.raises(PermanentDeliveryError) as failure:
        await sender.send(SmsMessage(to=PATIENT, body="Reminder: your appointment is tomorrow."))
    assert failure.value.code == "21610"

    text_from_patient(sandbox, "START")

    assert hook.received[-1].params["OptOutType"] == "START"
    assert (await sender.send(SmsMessage(to=PATIENT, body="Welcome back."))).startswith("SM")


async def test_stop_inside_a_sentence_is_not_an_opt_out(
    hook: Webhook, sandbox: httpx.Client, sender: TwilioSmsSender
) -> None:
    text_from_patient(sandbox, "Can I stop by earlier today?")

    assert "OptOutType" not in hook.received[-1].params
    assert (await sender.send(SmsMessage(to=PATIENT, body="Noted."))).startswith("SM")


async def test_a_sent_text_reports_sent_then_delivered_to_its_status_callback(
    hook: Webhook, webhook: tuple[Webhook, str], sandbox: httpx.Client
) -> None:
    status_url = webhook[1].replace("/sms/inbound", "/sms/status")
    created = sandbox.post(
        f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages.json", auth=(ACCOUNT_SID, AUTH_TOKEN),
        data={"To": PATIENT, "From": CLINIC_NUMBER, "Body": "Reminder: your appointment is tomorrow.",
              "StatusCallback": status_url},
    )
    assert created.status_code == 201, created.text
    sid = created.json()["sid"]

    deadline = time.monotonic() + 5
    while len(hook.statuses) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert [s.params["MessageStatus"] for s in hook.statuses] == ["sent", "delivered"]
    assert all(s.validated and s.params["MessageSid"] == sid for s in hook.statuses)
