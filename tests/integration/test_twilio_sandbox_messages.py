"""The sandbox's Messages list and fetch, read with the official twilio client as against Twilio."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from sandbox.twilio_sandbox.callbacks import CallbackSettings
from sandbox.twilio_sandbox.payloads import API_VERSION
from tests.support.channels import ACCOUNT_SID, AUTH_TOKEN, CLINIC_NUMBER, TwilioSandbox, start_twilio_sandbox

PATIENT = "+14165550141"
OTHER_PATIENT = "+14165550142"
OTHER_SENDER = "+14165550199"
LIST_URI = f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages.json"
# Exactly what Twilio's list envelope holds; twilio's Page finds the records as the one key that is
# not among its META_KEYS, so any other key would break the client.
ENVELOPE_KEYS = {
    "first_page_uri", "end", "previous_page_uri", "messages", "uri", "page_size", "start", "next_page_uri", "page",
}
RESOURCE_KEYS = {
    "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated", "direction", "error_code",
    "error_message", "from", "messaging_service_sid", "num_media", "num_segments", "price", "price_unit", "sid",
    "status", "subresource_uris", "to", "uri",
}


class FakeClock:
    """The sandbox's time, moved by the test (read from the sandbox's server thread)."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> None:
        self.moment += delta


T0 = datetime(2031, 3, 14, 9, 30, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(scope="module")
def sandbox(clock: FakeClock) -> Iterator[TwilioSandbox]:
    twilio = start_twilio_sandbox(clock=clock, callbacks=CallbackSettings(step_delay=0.0))
    yield twilio
    twilio.server.stop()


@pytest.fixture(autouse=True)
def fresh(sandbox: TwilioSandbox, clock: FakeClock) -> None:
    sandbox.clear_messages()
    sandbox.clear_faults()
    sandbox.set_latency(0)
    clock.moment = T0


@pytest.fixture
async def client(sandbox: TwilioSandbox) -> AsyncIterator[Client]:
    http = AsyncTwilioHttpClient()
    twilio = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    twilio.api.base_url = sandbox.url
    yield twilio
    await http.close()


async def send(client: Client, sandbox: TwilioSandbox, body: str, to: str = PATIENT,
               from_: str = CLINIC_NUMBER) -> str:
    """Create a message and wait until the sandbox has sent it (date_sent is set when it is)."""
    created = await client.messages.create_async(to=to, from_=from_, body=body)
    await asyncio.to_thread(sandbox.wait_for_status, created.sid, {"delivered"})
    sid: str = created.sid
    return sid


def raw_list(sandbox: TwilioSandbox, **params: Any) -> httpx.Response:
    return httpx.get(sandbox.url + LIST_URI, params=params, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)


async def test_list_async_with_to_and_date_sent_after_returns_the_later_texts_newest_first(
    client: Client, sandbox: TwilioSandbox, clock: FakeClock
) -> None:
    await send(client, sandbox, "Yesterday's reminder")
    await send(client, sandbox, "Not for this patient", to=OTHER_PATIENT)
    clock.advance(timedelta(days=1))
    cutoff = clock.moment - timedelta(minutes=5)
    first = await send(client, sandbox, "Reminder: tomorrow at 10:00")
    clock.advance(timedelta(minutes=1))
    second = await send(client, sandbox, "Reply 0-10: how sore are you?")
    await send(client, sandbox, "Also not for this patient", to=OTHER_PATIENT)

    listed = await client.messages.list_async(to=PATIENT, date_sent_after=cutoff)

    assert [m.sid for m in listed] == [second, first]
    assert [m.body for m in listed] == ["Reply 0-10: how sore are you?", "Reminder: tomorrow at 10:00"]
    assert all(m.to == PATIENT and m.from_ == CLINIC_NUMBER and m.status == "delivered" for m in listed)
    assert listed[0].date_sent == T0 + timedelta(days=1, minutes=1)
    assert listed[1].date_sent == T0 + timedelta(days=1)


async def test_date_sent_after_is_inclusive_to_the_second_as_the_client_sends_it(
    client: Client, sandbox: TwilioSandbox, clock: FakeClock
) -> None:
    clock.moment = T0 + timedelta(microseconds=700_000)  # Twilio's dates have no fractions
    sid = await send(client, sandbox, "On the dot")

    # twilio-python sends DateSent> as 2031-03-14T09:30:00Z: its seconds, no fraction.
    assert [m.sid for m in await client.messages.list_async(date_sent_after=T0)] == [sid]
    assert await client.messages.list_async(date_sent_after=T0 + timedelta(seconds=1)) == []


async def test_date_sent_before_and_on_a_day(client: Client, sandbox: TwilioSandbox, clock: FakeClock) -> None:
    monday = await send(client, sandbox, "Monday")
    clock.advance(timedelta(days=1))
    tuesday = await send(client, sandbox, "Tuesday")
    clock.advance(timedelta(days=1))
    wednesday = await send(client, sandbox, "Wednesday")

    on_or_before = await client.messages.list_async(date_sent_before=T0 + timedelta(days=1))
    assert [m.sid for m in on_or_before] == [tuesday, monday]
    # The YYYY-MM-DD forms the API documents: DateSent=, DateSent>= and DateSent<= a whole GMT day.
    day = (T0 + timedelta(days=1)).date().isoformat()
    assert [m["sid"] for m in raw_list(sandbox, DateSent=day).json()["messages"]] == [tuesday]
    assert [m["sid"] for m in raw_list(sandbox, **{"DateSent>": day}).json()["messages"]] == [wednesday, tuesday]
    assert [m["sid"] for m in raw_list(sandbox, **{"DateSent<": day}).json()["messages"]] == [tuesday, monday]
    rfc2822 = "Sat, 15 Mar 2031 09:30:00 +0000"
    assert [m["sid"] for m in raw_list(sandbox, **{"DateSent>": rfc2822}).json()["messages"]] == [wednesday, tuesday]


async def test_from_filters_by_sender(client: Client, sandbox: TwilioSandbox) -> None:
    await send(client, sandbox, "From the clinic")
    other = await send(client, sandbox, "From the other line", from_=OTHER_SENDER)

    assert [m.sid for m in await client.messages.list_async(from_=OTHER_SENDER)] == [other]


async def test_pages_follow_next_page_uri_with_the_filters_kept(
    client: Client, sandbox: TwilioSandbox, clock: FakeClock
) -> None:
    await send(client, sandbox, "Too early")
    clock.advance(timedelta(hours=1))
    sids = []
    for n in range(5):
        clock.advance(timedelta(seconds=1))
        sids.append(await send(client, sandbox, f"Text {n}"))
        await send(client, sandbox, f"Someone else's {n}", to=OTHER_PATIENT)
    cutoff = T0 + timedelta(minutes=30)

    listed = await client.messages.list_async(to=PATIENT, date_sent_after=cutoff, page_size=2)
    assert [m.sid for m in listed] == sids[::-1]

    first = raw_list(sandbox, To=PATIENT, PageSize=2, **{"DateSent>": "2031-03-14T10:00:00Z"}).json()
    assert set(first) == ENVELOPE_KEYS
    assert (first["page"], first["page_size"], first["start"], first["end"]) == (0, 2, 0, 1)
    assert first["previous_page_uri"] is None
    next_uri = urlsplit(first["next_page_uri"])
    assert next_uri.path == LIST_URI
    query = parse_qs(next_uri.query)
    assert query["To"] == [PATIENT] and query["DateSent>"] == ["2031-03-14T10:00:00Z"]
    assert query["Page"] == ["1"] and query["PageToken"] == ["PA" + sids[3]]
    second = httpx.get(sandbox.url + first["next_page_uri"], auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).json()
    assert [m["sid"] for m in second["messages"]] == [sids[2], sids[1]]
    assert second["previous_page_uri"] is not None
    back = httpx.get(sandbox.url + second["previous_page_uri"], auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).json()
    assert [m["sid"] for m in back["messages"]] == [sids[4], sids[3]]
    last = httpx.get(sandbox.url + second["next_page_uri"], auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).json()
    assert [m["sid"] for m in last["messages"]] == [sids[0]]
    assert last["next_page_uri"] is None


async def test_each_message_has_twilios_resource_shape(client: Client, sandbox: TwilioSandbox) -> None:
    sid = await send(client, sandbox, "Réponse reçue, merci")

    (message,) = raw_list(sandbox).json()["messages"]
    assert set(message) == RESOURCE_KEYS
    assert message["sid"] == sid
    assert message["account_sid"] == ACCOUNT_SID
    assert message["uri"] == f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    assert (message["direction"], message["status"]) == ("outbound-api", "delivered")
    assert message["error_code"] is None and message["error_message"] is None
    assert message["num_segments"] == "1"
    for key in ("date_created", "date_sent", "date_updated"):
        assert message[key] == "Fri, 14 Mar 2031 09:30:00 +0000", key
        assert parsedate_to_datetime(message[key]) == T0


async def test_a_message_not_yet_sent_is_listed_but_no_date_sent_filter_matches_it(
    sandbox: TwilioSandbox,
) -> None:
    slow = start_twilio_sandbox(callbacks=CallbackSettings(step_delay=30.0))
    try:
        created = httpx.post(slow.url + LIST_URI, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5,
                             data={"To": PATIENT, "From": CLINIC_NUMBER, "Body": "Queued"})
        assert created.status_code == 201
        assert created.json()["status"] == "queued" and created.json()["date_sent"] is None

        (listed,) = raw_list(slow).json()["messages"]
        assert listed["status"] == "queued"
        assert raw_list(slow, **{"DateSent>": "2000-01-01"}).json()["messages"] == []
    finally:
        slow.server.stop()


async def test_fetch_reads_one_message_and_an_unknown_sid_is_20404(client: Client, sandbox: TwilioSandbox) -> None:
    sid = await send(client, sandbox, "Fetch me")

    fetched = await client.messages(sid).fetch_async()
    assert (fetched.sid, fetched.body, fetched.status) == (sid, "Fetch me", "delivered")

    with pytest.raises(TwilioRestException) as missing:
        await client.messages("SM" + "0" * 32).fetch_async()
    assert (missing.value.status, missing.value.code) == (404, 20404)


async def test_listing_checks_basic_auth_like_create(sandbox: TwilioSandbox) -> None:
    answer = httpx.get(sandbox.url + LIST_URI, auth=(ACCOUNT_SID, "wrong"), timeout=5)
    assert answer.status_code == 401
    assert answer.json()["code"] == 20003
    assert httpx.get(sandbox.url + LIST_URI, timeout=5).status_code == 401
    other_account = LIST_URI.replace(ACCOUNT_SID, "AC" + "f" * 32)
    assert httpx.get(sandbox.url + other_account, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).status_code == 401

    http = AsyncTwilioHttpClient()
    wrong = Client(ACCOUNT_SID, "wrong", http_client=http)
    wrong.api.base_url = sandbox.url
    try:
        with pytest.raises(TwilioException):
            await wrong.messages.list_async()
    finally:
        await http.close()


def test_an_unreadable_date_is_a_400_with_code_20001(sandbox: TwilioSandbox) -> None:
    answer = raw_list(sandbox, **{"DateSent>": "last tuesday"})

    assert answer.status_code == 400
    assert answer.json()["code"] == 20001


def test_a_received_text_is_listed_inbound_but_not_among_the_sent(sandbox: TwilioSandbox) -> None:
    sandbox.text_in(PATIENT, "7")

    (received,) = raw_list(sandbox, From=PATIENT).json()["messages"]
    assert (received["direction"], received["status"], received["body"]) == ("inbound", "received", "7")
    assert received["to"] == CLINIC_NUMBER and received["date_sent"] is not None
    assert sandbox.messages() == []  # /_sandbox/messages lists what the sandbox sent, as before
