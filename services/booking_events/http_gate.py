"""The gate every request passes before the API reads its body: who, how often, what kind, how much.

An ASGI middleware, so each refusal is answered before a byte of the body is read:
  401  no or unknown X-API-Key (on /v1/*, /openapi.json, /docs)
  429  the client's token bucket is empty; Retry-After says when a request will be accepted
  415  a body that is not application/json (multipart and forms included)
  413  a body larger than the limit: announced by Content-Length, or counted as it streams in
A body that passes is read here (at most the limit) and handed on whole to the API.
"""
from __future__ import annotations

import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from services.booking_events.domain.idempotency import client_digest
from services.booking_events.metrics import BookingMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED_PREFIXES = ("/v1/", "/openapi.json", "/docs")


def known_client(api_keys: Sequence[SecretStr], presented: str | None) -> str | None:
    """The caller's client digest, or None; compares against every key in constant time."""
    if not presented:
        return None
    matched = None
    for known in api_keys:
        if hmac.compare_digest(presented.encode(), known.get_secret_value().encode()):
            matched = known.get_secret_value()
    return client_digest(matched) if matched is not None else None


@dataclass
class TokenBuckets:
    """One bucket per client: `burst` requests at once, refilled at `per_second`."""

    per_second: float
    burst: int
    now: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # client: (tokens, at)

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it would."""
        now = self.now()
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.per_second


class _TooLarge(Exception):
    pass


class RequestGate:
    def __init__(
        self,
        app: Asgi,
        *,
        api_keys: Sequence[SecretStr],
        buckets: TokenBuckets,
        max_body_bytes: int,
        metrics: BookingMetrics,
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.buckets = buckets
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        has_body = _has_body(headers)
        if str(scope["path"]).startswith(PROTECTED_PREFIXES):
            client = known_client(self.api_keys, headers.get("x-api-key"))
            if client is None:
                await self._refuse(send, has_body, 401, "unauthorized", "send a valid API key in the X-API-Key header",
                                   {"WWW-Authenticate": "X-API-Key"})
                return
            wait = self.buckets.take(client)
            if wait > 0:
                retry_after = {"Retry-After": str(max(1, math.ceil(wait)))}
                message = "too many requests from this API key; retry later"
                await self._refuse(send, has_body, 429, "rate_limited", message, retry_after)
                return
        if not has_body:
            await self.app(scope, receive, send)
            return
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            await self._refuse(send, has_body, 415, "unsupported_media_type", "send the body as application/json")
            return
        try:
            body = await self._read_body(headers, receive)
        except _TooLarge:
            await self._refuse(send, has_body, 413, "payload_too_large",
                               f"the body is larger than {self.max_body_bytes} bytes")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        announced = headers.get("content-length", "")
        if announced.isdigit() and int(announced) > self.max_body_bytes:
            raise _TooLarge
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(
        self,
        send: Send,
        has_body: bool,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.metrics.refused.labels(kind="gate", error=error).inc()
        body = json.dumps({"error": error, "message": message}).encode()
        raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
        if has_body:
            raw_headers.append((b"connection", b"close"))  # what is left of the body is never read
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


def _has_body(headers: dict[str, str]) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replayed
