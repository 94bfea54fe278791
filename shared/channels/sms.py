"""SMS delivery through Twilio's Messages API with the official async client."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from shared.channels.messages import (
    DeliveryError,
    PermanentDeliveryError,
    SmsMessage,
    TransientDeliveryError,
)

# Twilio error codes worth retrying with backoff; every other 4xx is final.
TRANSIENT_TWILIO_CODES: frozenset[int] = frozenset(
    {
        20429,  # too many requests: never processed, always safe to retry
        30003,  # handset unreachable: try again later
    }
)

_NETWORK_FAILURES = (aiohttp.ClientError, OSError, TimeoutError)


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
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("need from_number or messaging_service_sid")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._api_base_url = api_base_url
        self._timeout = timeout
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    async def send(self, message: SmsMessage) -> str:
        client = self._client_in_running_loop()
        try:
            # The twilio async client has no request timeout of its own.
            async with asyncio.timeout(self._timeout):
                created = await client.messages.create_async(**self._create_params(message))
        except (TwilioRestException, TwilioServiceException) as exc:
            raise classify_twilio_error(exc.status, exc.code) from exc
        except _NETWORK_FAILURES as exc:
            raise TransientDeliveryError(f"Twilio unreachable: {type(exc).__name__}") from exc
        sid: str | None = created.sid  # twilio ships no type information
        if not sid:
            raise TransientDeliveryError("Twilio answered without a message sid")
        return sid

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
        return params


def classify_twilio_error(http_status: int, twilio_code: int | None) -> DeliveryError:
    """Rate limits, server errors and unreachable handsets are transient; the rest is final."""
    code = str(twilio_code) if twilio_code is not None else None
    reason = f"Twilio HTTP {http_status}, error {code}"
    if twilio_code in TRANSIENT_TWILIO_CODES or http_status == 429 or http_status >= 500:
        return TransientDeliveryError(reason, code=code)
    return PermanentDeliveryError(reason, code=code)
