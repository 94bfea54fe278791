"""SMS delivery through Twilio's Messages API with the official async client."""
from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from datetime import datetime
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from shared.channels.messages import (
    ChannelUnavailableError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentDeliveryError,
    SmsMessage,
    TransientDeliveryError,
)

# Twilio error codes of the create call worth retrying with backoff; every other 4xx is final.
# Delivery errors (30003 unreachable, 30005 unknown number, 30006 landline, 30007 filtered) never
# answer a create: they come later by status callback (shared/delivery/status_reports.py).
TRANSIENT_TWILIO_CODES: frozenset[int] = frozenset(
    {
        20429,  # too many requests: never processed, always safe to retry
    }
)

# The account cannot send at all (credentials refused, account suspended or closed): not a
# failure of one message.
ACCOUNT_WIDE_TWILIO_CODES: frozenset[int] = frozenset({20003, 20005, 20008})
RATE_LIMITED_TWILIO_CODE = 20429
# How long a 429 keeps the send rate halved before it creeps back up.
SLOW_DOWN_SECONDS = 30.0

_NETWORK_FAILURES = (aiohttp.ClientError, OSError, TimeoutError)


class SendRate:
    """The pace of one sender: `per_second` messages a second at most, shared by every send of this
    process. Each send is given the next free moment, 1/rate after the one before, and waits for it:
    one timer per send, so the pace holds however busy the event loop is. Sends woken late do not
    make up for it in a burst: never more than the rate in any second. A rate-limit answer halves
    the rate for a while; it then doubles back, step by step, to `per_second`. (A long code sends
    about 1 message/s, a short code 100/s.)"""

    def __init__(self, per_second: float, slow_down_seconds: float = SLOW_DOWN_SECONDS) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.full_rate = per_second
        self.rate = per_second
        self._slow_down_seconds = slow_down_seconds
        self._next_free = float("-inf")
        self._sent: deque[float] = deque(maxlen=max(1, math.floor(per_second)))
        self._recover_at: float | None = None

    async def acquire(self) -> None:
        # time.monotonic, not the loop's clock: uvloop's counts whole milliseconds.
        now = time.monotonic()
        if self._recover_at is not None and now >= self._recover_at:
            self.rate = min(self.full_rate, self.rate * 2)
            self._recover_at = None if self.rate >= self.full_rate else now + self._slow_down_seconds
        moment = max(now, self._next_free)
        self._next_free = moment + 1 / self.rate
        if moment > now:
            await asyncio.sleep(moment - now)
            now = time.monotonic()
        # At most `count` sends in any `count / rate` seconds (one second, or more for a slow rate).
        count = max(1, math.floor(self.rate))
        while len(self._sent) >= count and (wait := self._sent[-count] + count / self.rate - now) > 0:
            await asyncio.sleep(wait)
            now = time.monotonic()
        self._sent.append(now)

    def slow_down(self) -> None:
        self.rate = max(self.full_rate / 64, self.rate / 2)
        self._recover_at = time.monotonic() + self._slow_down_seconds


class TwilioSmsSender:
    """SmsSender backed by Twilio; `api_base_url` points it at a sandbox instead of Twilio."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str | None = None,
        timeout: float = 10.0,
        messages_per_second: float = 10.0,
        status_callback: str | None = None,
    ) -> None:
        """`status_callback`: the public URL Twilio posts each message's statuses to (none: not asked)."""
        if not (from_number or messaging_service_sid):
            raise ValueError("need from_number or messaging_service_sid")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._api_base_url = api_base_url
        self._timeout = timeout
        self._status_callback = status_callback
        self.send_rate = SendRate(messages_per_second)
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    async def send(self, message: SmsMessage) -> str:
        client = self._client_in_running_loop()
        await self.send_rate.acquire()
        try:
            # The twilio async client has no request timeout of its own.
            async with asyncio.timeout(self._timeout):
                created = await client.messages.create_async(**self._create_params(message))
        except (TwilioRestException, TwilioServiceException) as exc:
            if exc.status == 429 or exc.code == RATE_LIMITED_TWILIO_CODE:
                self.send_rate.slow_down()
            raise classify_twilio_error(exc.status, exc.code) from exc
        except aiohttp.ClientConnectorError as exc:  # no connection, so no request: nothing went out
            raise TransientDeliveryError(f"Twilio unreachable: {type(exc).__name__}") from exc
        except _NETWORK_FAILURES as exc:  # the request may have reached Twilio before the answer was lost
            raise OutcomeUnknownError(f"Twilio did not answer: {type(exc).__name__}") from exc
        sid: str | None = created.sid  # twilio ships no type information
        if not sid:
            raise TransientDeliveryError("Twilio answered without a message sid")
        return sid

    async def find_sent(
        self, message: SmsMessage, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The sid of this exact text (recipient, body, our sender) sent since `since`, if any
        (Messages list filtered by To and DateSent>)."""
        client = self._client_in_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                found = await client.messages.list_async(to=message.to, date_sent_after=since, page_size=100)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise classify_twilio_error(exc.status, exc.code) from exc
        except _NETWORK_FAILURES as exc:
            raise TransientDeliveryError(f"Twilio unreachable: {type(exc).__name__}") from exc
        for sent in found:
            ours = sent.messaging_service_sid == self._messaging_service_sid if self._messaging_service_sid \
                else sent.from_ == self._from_number
            if ours and sent.body == message.body and str(sent.direction or "").startswith("outbound") \
                    and sent.sid not in exclude:
                sid: str | None = sent.sid
                if sid:
                    return sid
        return None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = None
        self._client = None

    def _client_in_running_loop(self) -> Client:
        # aiohttp binds its session to the loop it is created in, hence not in __init__.
        if self._client is None:
            self._http = AsyncTwilioHttpClient()
            self._client = Client(self._account_sid, self._auth_token, http_client=self._http)
            if self._api_base_url is not None:
                self._client.api.base_url = self._api_base_url
        return self._client

    def _create_params(self, message: SmsMessage) -> dict[str, Any]:
        params: dict[str, Any] = {"to": message.to, "body": message.body}
        if self._from_number:
            params["from_"] = self._from_number
        if self._messaging_service_sid:
            params["messaging_service_sid"] = self._messaging_service_sid
        if self._status_callback:
            params["status_callback"] = self._status_callback
        return params


def classify_twilio_error(http_status: int, twilio_code: int | None) -> DeliveryError:
    """Refused credentials or a closed account stop the whole channel; rate limits and server
    errors are transient; the rest is final."""
    code = str(twilio_code) if twilio_code is not None else None
    reason = f"Twilio HTTP {http_status}, error {code}"
    if twilio_code in ACCOUNT_WIDE_TWILIO_CODES or http_status == 401:
        return ChannelUnavailableError(reason, code=code)
    if twilio_code in TRANSIENT_TWILIO_CODES or http_status == 429 or http_status >= 500:
        return TransientDeliveryError(reason, code=code)
    return PermanentDeliveryError(reason, code=code)
