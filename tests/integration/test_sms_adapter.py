"""TwilioSmsSender against the Twilio sandbox served by uvicorn on loopback."""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from sandbox.serving import BackgroundServer
from sandbox.twilio_sandbox import create_app
from shared.channels.messages import (
    ChannelUnavailableError,
    PermanentDeliveryError,
    SmsMessage,
    TransientDeliveryError,
)
from shared.channels.sms import TwilioSmsSender

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "sandbox-auth-token"
CLINIC_NUMBER = "+14165550100"
PATIENT = "+14165550123"
REMINDER = SmsMessage(to=PATIENT, body="Reminder: your appointment is tomorrow at 10:00.")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(ACCOUNT_SID, AUTH_TOKEN)) as server, httpx.Client(base_url=server.url) as control:
        yield control


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: httpx.Client) -> None:
    sandbox.delete("/_sandbox/messages").raise_for_status()
    sandbox.delete("/_sandbox/faults").raise_for_status()


@pytest.fixture
async def sender(sandbox: httpx.Client) -> AsyncIterator[TwilioSmsSender]:
    sms = TwilioSmsSender(
        ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_base_url=str(sandbox.base_url)
    )
    yield sms
    await sms.close()


def inject(sandbox: httpx.Client, **fault: Any) -> None:
    sandbox.post("/_sandbox/faults", json=fault).raise_for_status()


async def test_a_sent_text_returns_its_sid_and_reaches_the_sandbox(
    sender: TwilioSmsSender, sandbox: httpx.Client
) -> None:
    sid = await sender.send(REMINDER)

    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    (recorded,) = sandbox.get("/_sandbox/messages", params={"to": PATIENT}).json()
    assert recorded["sid"] == sid
    assert recorded["to"] == PATIENT
    assert recorded["from"] == CLINIC_NUMBER
    assert recorded["body"] == REMINDER.body


async def test_a_messaging_service_can_send_instead_of_a_number(sandbox: httpx.Client) -> None:
    sms = TwilioSmsSender(
        ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid="MG" + "a" * 32,
        api_base_url=str(sandbox.base_url),
    )
    try:
        sid = await sms.send(REMINDER)
    finally:
        await sms.close()

    (recorded,) = sandbox.get("/_sandbox/messages").json()
    assert recorded["sid"] == sid
    assert recorded["messaging_service_sid"] == "MG" + "a" * 32


async def test_an_opted_out_patient_is_a_permanent_failure(
    sender: TwilioSmsSender, sandbox: httpx.Client
) -> None:
    inject(sandbox, code=21610, status=400, to=PATIENT)

    with pytest.raises(PermanentDeliveryError) as failure:
        await sender.send(REMINDER)

    assert failure.value.code == "21610"
    assert sandbox.get("/_sandbox/messages").json() == []


@pytest.mark.parametrize(("code", "status"), [(20429, 429), (20500, 500), (20503, 503)])
async def test_rate_limits_and_server_errors_are_transient(
    sender: TwilioSmsSender, sandbox: httpx.Client, code: int, status: int
) -> None:
    inject(sandbox, code=code, status=status)

    with pytest.raises(TransientDeliveryError) as failure:
        await sender.send(REMINDER)

    assert failure.value.code == str(code)


@pytest.mark.parametrize("code", [21211, 21614, 21408])
async def test_bad_numbers_and_other_4xx_are_permanent(
    sender: TwilioSmsSender, sandbox: httpx.Client, code: int
) -> None:
    inject(sandbox, code=code, status=400)

    with pytest.raises(PermanentDeliveryError) as failure:
        await sender.send(REMINDER)

    assert failure.value.code == str(code)


@pytest.mark.parametrize("code", [30003, 30005, 30006, 30007])
async def test_an_unreachable_handset_or_filtered_text_is_sent_and_reported_undelivered_later(
    sender: TwilioSmsSender, sandbox: httpx.Client, code: int
) -> None:
    # Twilio never answers a create with 30003-30007: it accepts the text, and the carrier's verdict
    # arrives afterwards as the message's status (and its status callbacks, when asked for).
    inject(sandbox, code=code, kind="delivery", to=PATIENT)

    sid = await sender.send(REMINDER)

    assert re.fullmatch(r"SM[0-9a-f]{32}", sid)
    deadline = time.monotonic() + 10
    while (recorded := sandbox.get("/_sandbox/messages", params={"to": PATIENT}).json()[0])["status"] not in (
        "undelivered", "delivered"
    ) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert recorded["sid"] == sid
    assert (recorded["status"], recorded["error_code"]) == ("undelivered", code)


async def test_a_fault_is_used_up_after_its_times(
    sender: TwilioSmsSender, sandbox: httpx.Client
) -> None:
    inject(sandbox, code=20429, status=429, times=2)

    for _ in range(2):
        with pytest.raises(TransientDeliveryError):
            await sender.send(REMINDER)
    await sender.send(REMINDER)

    assert len(sandbox.get("/_sandbox/messages").json()) == 1


async def test_the_sandbox_itself_rejects_a_number_that_is_not_e164(
    sender: TwilioSmsSender,
) -> None:
    with pytest.raises(PermanentDeliveryError) as failure:
        await sender.send(SmsMessage(to="416-555-0123", body="Reminder"))

    assert failure.value.code == "21211"


async def test_a_wrong_auth_token_pauses_the_channel_rather_than_failing_the_message(
    sandbox: httpx.Client,
) -> None:
    sms = TwilioSmsSender(
        ACCOUNT_SID, "not-the-token", from_number=CLINIC_NUMBER, api_base_url=str(sandbox.base_url)
    )
    try:
        with pytest.raises(ChannelUnavailableError) as failure:
            await sms.send(REMINDER)
    finally:
        await sms.close()

    assert failure.value.code == "20003"


async def test_a_sandbox_that_is_not_running_is_transient() -> None:
    with BackgroundServer(create_app(ACCOUNT_SID, AUTH_TOKEN)) as gone:
        url = gone.url
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_base_url=url)
    try:
        with pytest.raises(TransientDeliveryError) as failure:
            await sms.send(REMINDER)
    finally:
        await sms.close()

    assert failure.value.code is None
