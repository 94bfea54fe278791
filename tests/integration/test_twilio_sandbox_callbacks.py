"""Status callbacks as Twilio posts them: after the create, signed, retried, with delivery errors."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sandbox.serving import BackgroundServer
from sandbox.twilio_sandbox.callbacks import CallbackSettings
from sandbox.twilio_sandbox.payloads import API_VERSION
from tests.support.channels import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CLINIC_NUMBER,
    CallbackReceiver,
    StatusCallback,
    TwilioSandbox,
    start_twilio_sandbox,
)

PATIENT = "+14165550161"
SERVICE_SID = "MG" + "c" * 32
SETTINGS = CallbackSettings(step_delay=0.02, attempts=3, backoff=0.1)
CALLBACK_FIELDS = {"MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "AccountSid", "From", "To", "ApiVersion"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[CallbackReceiver, str]]:
    hook = CallbackReceiver()
    with BackgroundServer(hook.app()) as server:
        yield hook, f"{server.url}/status?clinic=queen-west"  # signed with its query string, as Twilio does


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TwilioSandbox]:
    twilio = start_twilio_sandbox(callbacks=SETTINGS)
    yield twilio
    twilio.server.stop()


@pytest.fixture
def hook(receiver: tuple[CallbackReceiver, str], sandbox: TwilioSandbox) -> CallbackReceiver:
    sandbox.clear_messages()
    sandbox.clear_faults()
    receiver[0].clear()
    return receiver[0]


@pytest.fixture
def callback_url(receiver: tuple[CallbackReceiver, str]) -> str:
    return receiver[1]


@pytest.fixture
async def client(sandbox: TwilioSandbox) -> AsyncIterator[Client]:
    http = AsyncTwilioHttpClient()
    twilio = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    twilio.api.base_url = sandbox.url
    yield twilio
    await http.close()


async def create(client: Client, callback_url: str | None, **params: Any) -> Any:
    params = {"to": PATIENT, "body": "Reminder: tomorrow at 10:00."} | params
    if "messaging_service_sid" not in params:
        params.setdefault("from_", CLINIC_NUMBER)
    if callback_url is not None:
        params["status_callback"] = callback_url
    return await client.messages.create_async(**params)


async def callbacks(hook: CallbackReceiver, sid: str, count: int, timeout: float = 10.0) -> list[StatusCallback]:
    return await asyncio.to_thread(hook.wait_for, sid, count, timeout)


def statuses(received: list[StatusCallback]) -> list[str]:
    return [c.params["MessageStatus"] for c in received]


async def test_the_create_answers_queued_then_sent_and_delivered_are_posted_signed(
    client: Client, hook: CallbackReceiver, callback_url: str
) -> None:
    created = await create(client, callback_url)
    assert created.status == "queued"

    sent, delivered = await callbacks(hook, created.sid, 2)

    assert statuses([sent, delivered]) == ["sent", "delivered"]
    for callback in (sent, delivered):
        assert callback.validated
        assert callback.url == callback_url
        assert set(callback.params) == CALLBACK_FIELDS
        assert callback.params["MessageSid"] == callback.params["SmsSid"] == created.sid
        assert callback.params["SmsStatus"] == callback.params["MessageStatus"]
        assert callback.params["AccountSid"] == ACCOUNT_SID
        assert (callback.params["From"], callback.params["To"]) == (CLINIC_NUMBER, PATIENT)
        assert callback.params["ApiVersion"] == API_VERSION
        assert callback.headers["content-type"] == "application/x-www-form-urlencoded"
        # Twilio's algorithm: the exact URL, then each parameter name and value in sorted order.
        signed = callback_url + "".join(key + callback.params[key] for key in sorted(callback.params))
        digest = hmac.new(AUTH_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
        assert callback.headers["x-twilio-signature"] == base64.b64encode(digest).decode()
        assert not RequestValidator("another-token").validate(
            callback_url, callback.params, callback.headers["x-twilio-signature"]
        )
    fetched = await client.messages(created.sid).fetch_async()
    assert (fetched.status, fetched.error_code) == ("delivered", None)
    assert fetched.date_sent is not None


@pytest.mark.parametrize("code", [30003, 30005, 30006, 30007])
async def test_a_delivery_outcome_fault_is_reported_undelivered_by_callback_not_by_the_create(
    client: Client, sandbox: TwilioSandbox, hook: CallbackReceiver, callback_url: str, code: int
) -> None:
    sandbox.inject_fault(code, to=PATIENT)

    created = await create(client, callback_url)  # no TwilioRestException: Twilio accepted it

    assert created.status == "queued"
    sent, undelivered = await callbacks(hook, created.sid, 2)
    assert statuses([sent, undelivered]) == ["sent", "undelivered"]
    assert "ErrorCode" not in sent.params
    assert undelivered.params["ErrorCode"] == str(code)
    assert set(undelivered.params) == CALLBACK_FIELDS | {"ErrorCode"}
    assert undelivered.validated
    fetched = await client.messages(created.sid).fetch_async()
    assert (fetched.status, fetched.error_code) == ("undelivered", code)
    assert fetched.error_message

    # Used up: the next text to the same number is delivered.
    again = await create(client, callback_url)
    assert statuses(await callbacks(hook, again.sid, 2)) == ["sent", "delivered"]


async def test_a_failed_outcome_is_never_sent(
    client: Client, sandbox: TwilioSandbox, hook: CallbackReceiver, callback_url: str
) -> None:
    sandbox.inject_fault(30007, to=PATIENT, outcome="failed")

    created = await create(client, callback_url)

    (failed,) = await callbacks(hook, created.sid, 1)
    assert (failed.params["MessageStatus"], failed.params["ErrorCode"]) == ("failed", "30007")
    await asyncio.sleep(0.2)
    assert len(hook.for_sid(created.sid)) == 1
    fetched = await client.messages(created.sid).fetch_async()
    assert (fetched.status, fetched.error_code, fetched.date_sent) == ("failed", 30007, None)


@pytest.mark.parametrize(("code", "status"), [(21610, 400), (21211, 400), (20429, 429)])
async def test_refusals_stay_on_the_create_with_no_callback(
    client: Client, sandbox: TwilioSandbox, hook: CallbackReceiver, callback_url: str, code: int, status: int
) -> None:
    sandbox.inject_fault(code, status, to=PATIENT)

    with pytest.raises(TwilioRestException) as refused:
        await create(client, callback_url)

    assert (refused.value.status, refused.value.code) == (status, code)
    await asyncio.sleep(0.3)
    assert hook.received == []
    assert sandbox.messages() == []


async def test_a_failing_callback_is_retried_with_backoff_and_the_order_is_kept(
    client: Client, sandbox: TwilioSandbox, hook: CallbackReceiver, callback_url: str
) -> None:
    hook.fail_first = 2

    created = await create(client, callback_url)

    received = await callbacks(hook, created.sid, 4)
    assert statuses(received) == ["sent", "sent", "sent", "delivered"]
    tokens = {c.headers["i-twilio-idempotency-token"] for c in received[:3]}
    assert len(tokens) == 1  # one callback, retried: the same token each time
    assert received[3].headers["i-twilio-idempotency-token"] not in tokens
    assert all(c.validated for c in received)
    attempts = httpx.get(f"{sandbox.url}/_sandbox/callbacks", params={"sid": created.sid}, timeout=5).json()
    assert [(a["status"], a["attempt"], a["http_status"]) for a in attempts] == [
        ("sent", 1, 500), ("sent", 2, 500), ("sent", 3, 204), ("delivered", 1, 204),
    ]


async def test_a_callback_that_keeps_failing_is_given_up_and_the_message_still_delivered(
    client: Client, sandbox: TwilioSandbox, hook: CallbackReceiver, callback_url: str
) -> None:
    hook.fail_first = 1000

    created = await create(client, callback_url)

    received = await callbacks(hook, created.sid, 6)
    assert statuses(received) == ["sent"] * SETTINGS.attempts + ["delivered"] * SETTINGS.attempts
    await asyncio.sleep(0.5)
    assert len(hook.for_sid(created.sid)) == 6
    assert (await client.messages(created.sid).fetch_async()).status == "delivered"


async def test_a_callback_url_nobody_listens_on_changes_nothing_for_the_message(
    client: Client, sandbox: TwilioSandbox, hook: CallbackReceiver
) -> None:
    with BackgroundServer(CallbackReceiver().app()) as gone:
        nowhere = f"{gone.url}/status"

    created = await create(client, nowhere)

    message = await asyncio.to_thread(sandbox.wait_for_status, created.sid, {"delivered"})
    assert message["status"] == "delivered"
    deadline = time.monotonic() + 10
    while True:
        attempts = httpx.get(f"{sandbox.url}/_sandbox/callbacks", params={"sid": created.sid}, timeout=5).json()
        if len(attempts) == 2 * SETTINGS.attempts or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert {(a["http_status"], a["error"]) for a in attempts} == {(None, "ConnectError")}
    assert len(attempts) == 2 * SETTINGS.attempts


async def test_a_messaging_service_message_is_accepted_then_gets_a_sender(
    client: Client, hook: CallbackReceiver, callback_url: str
) -> None:
    created = await create(client, callback_url, messaging_service_sid=SERVICE_SID)
    assert (created.status, created.from_) == ("accepted", None)

    sent, delivered = await callbacks(hook, created.sid, 2)

    assert statuses([sent, delivered]) == ["sent", "delivered"]
    assert sent.params["MessagingServiceSid"] == SERVICE_SID
    assert sent.params["From"] == CLINIC_NUMBER  # picked from the service's pool
    assert sent.validated


async def test_the_delay_between_statuses_is_configurable(hook: CallbackReceiver, callback_url: str) -> None:
    slow = start_twilio_sandbox(callbacks=CallbackSettings(step_delay=0.4))
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = slow.url
    try:
        started = time.monotonic()
        created = await create(client, callback_url)
        assert len(await callbacks(hook, created.sid, 1)) == 1
        first = time.monotonic() - started
        assert len(await callbacks(hook, created.sid, 2)) == 2
        second = time.monotonic() - started
    finally:
        await http.close()
        slow.server.stop()

    assert first >= 0.4
    assert second >= 0.8


async def test_clearing_the_messages_stops_their_pending_callbacks(
    hook: CallbackReceiver, callback_url: str
) -> None:
    slow = start_twilio_sandbox(callbacks=CallbackSettings(step_delay=0.5))
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = slow.url
    try:
        created = await create(client, callback_url)
        slow.clear_messages()
        await asyncio.sleep(1.5)
    finally:
        await http.close()
        slow.server.stop()

    assert hook.for_sid(created.sid) == []
