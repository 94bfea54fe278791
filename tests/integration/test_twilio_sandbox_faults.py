"""The sandbox's latency, per-sender rate limit and fault injection, seen through the twilio client."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from sandbox.twilio_sandbox.payloads import API_VERSION
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER, TwilioSandbox, start_twilio_sandbox

PATIENT = "+14165550151"
OTHER_PATIENT = "+14165550152"
SERVICE_SID = "MG" + "b" * 32
MESSAGES_URI = f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages.json"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TwilioSandbox]:
    twilio = start_twilio_sandbox()
    yield twilio
    twilio.server.stop()


@pytest.fixture(autouse=True)
def fresh(sandbox: TwilioSandbox) -> Iterator[None]:
    sandbox.clear_messages()
    sandbox.clear_faults()
    yield
    sandbox.set_latency(0)
    sandbox.set_rate_limit(None)
    sandbox.clear_faults()


@pytest.fixture
async def client(sandbox: TwilioSandbox) -> AsyncIterator[Client]:
    http = AsyncTwilioHttpClient()
    twilio = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    twilio.api.base_url = sandbox.url
    yield twilio
    await http.close()


async def create(client: Client, to: str = PATIENT, **sender: str) -> str:
    params = sender or {"from_": CLINIC_NUMBER}
    created = await client.messages.create_async(to=to, body="Reminder: tomorrow at 10:00.", **params)
    sid: str = created.sid
    return sid


async def refusal(client: Client, to: str = PATIENT, **sender: str) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as refused:
        await create(client, to, **sender)
    return refused.value


# --- latency ---------------------------------------------------------------------------------


async def test_latency_delays_each_request_and_requests_are_served_concurrently(
    client: Client, sandbox: TwilioSandbox
) -> None:
    latency = 1.5
    sandbox.set_latency(latency)
    assert httpx.get(f"{sandbox.url}/_sandbox/latency", timeout=5).json() == {"seconds": latency}

    started = time.monotonic()
    sids = await asyncio.gather(*(create(client) for _ in range(4)))
    elapsed = time.monotonic() - started

    assert len(set(sids)) == 4
    assert elapsed >= latency
    assert elapsed < 2 * latency  # one after another would take 4 x latency

    started = time.monotonic()
    await client.messages.list_async(to=PATIENT)
    assert time.monotonic() - started >= latency  # every Messages API request, reads too


async def test_latency_leaves_the_sandbox_controls_fast(sandbox: TwilioSandbox) -> None:
    sandbox.set_latency(5)

    started = time.monotonic()
    sandbox.messages()
    assert time.monotonic() - started < 4


async def test_a_client_that_gives_up_on_a_slow_create_still_leaves_the_message_sent(
    client: Client, sandbox: TwilioSandbox
) -> None:
    # As with Twilio: the answer is late, not the message; a retry after a timeout sends it twice.
    sandbox.set_latency(1.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await create(client)

    assert len(sandbox.wait_for_messages(PATIENT, 1, timeout=10)) == 1


# --- rate limit ------------------------------------------------------------------------------


async def test_no_rate_limit_by_default(client: Client) -> None:
    await asyncio.gather(*(create(client) for _ in range(10)))


async def test_a_sender_beyond_its_rate_gets_429_with_20429(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.set_rate_limit(2)

    await create(client)
    await create(client, OTHER_PATIENT)
    refused = await refusal(client)

    assert (refused.status, refused.code) == (429, 20429)
    assert len(sandbox.messages()) == 2  # the refused one was not sent


async def test_the_rate_is_counted_per_sender(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.set_rate_limit(1)

    await create(client)
    await create(client, from_="+14165550199")
    await create(client, messaging_service_sid=SERVICE_SID)
    assert (await refusal(client)).code == 20429
    assert (await refusal(client, messaging_service_sid=SERVICE_SID)).code == 20429


async def test_the_rate_refills_with_time(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.set_rate_limit(4)
    for _ in range(4):
        await create(client)
    assert (await refusal(client)).code == 20429

    await asyncio.sleep(0.6)  # 4 per second: more than 2 allowed again by now

    await create(client)
    await create(client)


async def test_a_request_refused_for_another_reason_uses_none_of_the_rate(
    client: Client, sandbox: TwilioSandbox
) -> None:
    sandbox.set_rate_limit(1)

    assert (await refusal(client, "416-555-0151")).code == 21211
    await create(client)


# --- faults ----------------------------------------------------------------------------------


async def test_a_5xx_storm_until_cleared(client: Client, sandbox: TwilioSandbox) -> None:
    fault = sandbox.inject_fault(20500, times=None)
    assert (fault["kind"], fault["status"], fault["times"]) == ("create", 500, None)

    for _ in range(5):
        refused = await refusal(client)
        assert (refused.status, refused.code) == (500, 20500)
    sandbox.clear_faults()

    await create(client)


async def test_a_storm_for_some_seconds(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault(20429, 429, times=None, seconds=1.0)

    assert (await refusal(client)).code == 20429
    assert (await refusal(client)).code == 20429
    await asyncio.sleep(1.2)
    await create(client)
    assert httpx.get(f"{sandbox.url}/_sandbox/faults", timeout=5).json() == []


async def test_a_fault_for_one_number_leaves_the_others_alone(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault(20503, to=PATIENT, times=None)

    assert (await refusal(client)).status == 503
    await create(client, OTHER_PATIENT)


async def test_bad_credentials_for_the_whole_account_until_cleared(client: Client, sandbox: TwilioSandbox) -> None:
    fault = sandbox.inject_fault(20003)
    assert (fault["kind"], fault["status"], fault["times"]) == ("account", 401, None)

    for _ in range(3):
        refused = await refusal(client)
        assert (refused.status, refused.code) == (401, 20003)
    listed = httpx.get(sandbox.url + MESSAGES_URI, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert listed.status_code == 401
    assert listed.json()["code"] == 20003
    assert listed.headers["WWW-Authenticate"].startswith("Basic")
    with pytest.raises(TwilioException):
        await client.messages.list_async()
    sandbox.clear_faults()

    await create(client)
    assert len(await client.messages.list_async()) == 1


def test_a_delivery_error_code_is_not_a_create_fault(sandbox: TwilioSandbox) -> None:
    # Twilio answers 30003-30007 in the message's status and callbacks, never on create.
    answer = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"code": 30003, "kind": "create"}, timeout=5)
    assert answer.status_code == 422
    assert "delivery" in answer.text

    assert sandbox.inject_fault(30003, to=PATIENT)["kind"] == "delivery"  # told by the code
    for code, kind in [(20429, "delivery"), (30005, "account")]:
        wrong = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"code": code, "kind": kind}, timeout=5)
        assert wrong.status_code == 422


async def test_a_delivery_fault_lets_the_create_succeed(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault(30005, to=PATIENT)

    sid = await create(client)

    message = await asyncio.to_thread(sandbox.wait_for_status, sid, {"undelivered"})
    assert (message["error_code"], message["error_message"]) == (30005, "Unknown destination handset")


# --- the command line ------------------------------------------------------------------------


def test_the_command_line_takes_latency_and_rate_limit_flags_and_environment(tmp_path: Path) -> None:
    port = free_port()
    env = os.environ | {"TWILIO_SANDBOX_RATE_LIMIT": "3", "TWILIO_SANDBOX_STATUS_DELAY": "0.01"}
    command = [sys.executable, "-m", "sandbox.twilio_sandbox", "--port", str(port), "--account-sid", ACCOUNT_SID,
               "--auth-token", AUTH_TOKEN, "--latency", "0.3", "--callback-attempts", "2"]
    log = tmp_path / "sandbox.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                settings = httpx.get(f"{url}/_sandbox/settings", timeout=2).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert settings["latency"] == 0.3
        assert settings["rate_limit"] == 3
        assert settings["status_delay"] == 0.01
        assert settings["callback_attempts"] == 2

        started = time.monotonic()
        created = httpx.post(url + MESSAGES_URI, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5,
                             data={"To": PATIENT, "From": CLINIC_NUMBER, "Body": "Hello"})
        assert created.status_code == 201
        assert time.monotonic() - started >= 0.3
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_command_line_refuses_a_negative_latency() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.twilio_sandbox", "--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN],
        cwd=REPO, env=os.environ | {"TWILIO_SANDBOX_LATENCY": "-1"}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "--latency" in done.stderr
