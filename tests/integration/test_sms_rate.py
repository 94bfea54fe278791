"""SMS sends are paced to the sender's rate, and a rate-limit answer slows them down."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import uvloop

from sandbox.serving import BackgroundServer
from sandbox.twilio_sandbox import create_app
from shared.channels.messages import ChannelUnavailableError, SmsMessage, TransientDeliveryError
from shared.channels.sms import SendRate, TwilioSmsSender

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "sandbox-auth-token"
CLINIC_NUMBER = "+14165550100"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(ACCOUNT_SID, AUTH_TOKEN)) as server, httpx.Client(base_url=server.url) as control:
        yield control


async def test_texts_go_no_faster_than_the_senders_rate(sandbox: httpx.Client) -> None:
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_base_url=str(sandbox.base_url),
                          messages_per_second=5)
    try:
        started = time.monotonic()
        await asyncio.gather(*(sms.send(SmsMessage(f"+1416555{i:04d}", "Your appointment")) for i in range(6)))
        elapsed = time.monotonic() - started
    finally:
        await sms.close()
    assert elapsed >= 0.9  # six texts at five a second


async def _short_code_under_other_work() -> float:
    """Seconds 100 texts at 1000 a second take while the loop is busy with other work 3 ms at a time."""
    rate = SendRate(1000)
    busy = True

    async def other_work() -> None:  # composing, recording: 3 ms at a time
        while busy:
            time.sleep(0.003)
            await asyncio.sleep(0)

    working = asyncio.create_task(other_work())
    try:
        started = time.monotonic()
        await asyncio.gather(*(rate.acquire() for _ in range(100)))
        return time.monotonic() - started
    finally:
        busy = False
        await working


async def test_a_short_codes_rate_is_kept_up_while_the_event_loop_is_busy_with_other_work() -> None:
    elapsed = await _short_code_under_other_work()
    assert 0.099 <= elapsed < 0.5  # 100 texts at 1000 a second; not one per turn of the loop


def test_a_short_codes_rate_is_kept_up_on_the_services_event_loop() -> None:
    elapsed = uvloop.run(_short_code_under_other_work())  # what the services run on (run_service)
    assert 0.099 <= elapsed < 0.5


async def _texts_at_ten_a_second_with_the_loop_held_up() -> list[float]:
    """When each of 25 texts at 10 a second went, while the loop is now and then held up for 30 ms."""
    rate, sent = SendRate(10), []
    busy = True

    async def other_work() -> None:  # now and then the loop is held up for a while
        turns = 0
        while busy:
            turns += 1
            time.sleep(0.03 if turns % 7 == 0 else 0.004)
            await asyncio.sleep(0)

    async def text() -> None:
        await rate.acquire()
        sent.append(time.monotonic())

    working = asyncio.create_task(other_work())
    try:
        await asyncio.gather(*(text() for _ in range(25)))
    finally:
        busy = False
        await working
    return sent


def _most_in_one_second(sent: list[float]) -> int:
    return max(sum(1 for later in sent if first <= later < first + 1.0) for first in sent)


async def test_texts_woken_late_do_not_make_up_for_it_in_a_burst() -> None:
    assert _most_in_one_second(await _texts_at_ten_a_second_with_the_loop_held_up()) <= 10


def test_texts_woken_late_do_not_make_up_for_it_on_the_services_event_loop() -> None:
    # uvloop's clock counts whole milliseconds: the pace is kept on a clock of its own.
    assert _most_in_one_second(uvloop.run(_texts_at_ten_a_second_with_the_loop_held_up())) <= 10


async def test_a_rate_limit_answer_halves_the_rate(sandbox: httpx.Client) -> None:
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_base_url=str(sandbox.base_url),
                          messages_per_second=10)
    sandbox.post("/_sandbox/faults", json={"code": 20429, "status": 429, "to": "+14165559990"}).raise_for_status()
    try:
        with pytest.raises(TransientDeliveryError):
            await sms.send(SmsMessage("+14165559990", "Your appointment"))
    finally:
        await sms.close()
    assert sms.send_rate.rate == 5


async def test_refused_credentials_are_an_account_wide_failure(sandbox: httpx.Client) -> None:
    sms = TwilioSmsSender(ACCOUNT_SID, "wrong-token", from_number=CLINIC_NUMBER, api_base_url=str(sandbox.base_url))
    try:
        with pytest.raises(ChannelUnavailableError) as failure:
            await sms.send(SmsMessage("+14165559991", "Your appointment"))
    finally:
        await sms.close()
    assert failure.value.code == "20003"
