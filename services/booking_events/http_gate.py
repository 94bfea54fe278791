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
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from services.booking_events.domain.idempotency import client_digest
from services.booking_events.metrics import BookingMetrics
from shared.http_edge import TokenBuckets, announced_too_large, read_at_most, replay

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED_PREFIXES = ("/v1/", "/openapi.json", "/docs")


@dataclass(frozen=True)
class KnownKey:
    client: str  # the key's digest: what the rate limit, the idempotency keys and the logs know it by
    secret: bytes = field(repr=False)


def known_keys(api_keys: Sequence[SecretStr]) -> tuple[KnownKey, ...]:
    return tuple(KnownKey(client_digest(key.get_secret_value()), key.get_secret_value().encode()) for key in api_keys)


def known_client(keys: Sequence[KnownKey], presented: str | None) -> str | None:
    """The caller's client digest, or None; compares against every key in constant time."""
    if not presented:
        return None
    offered = presented.encode()
    matched = None
    for known in keys:
        if hmac.compare_digest(offered, known.secret):
            matched = known.client
    return matched


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
        self.keys = known_keys(api_keys)  # each key's digest made once, not on every request
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
            client = known_client(self.keys, headers.get("x-api-key"))
            if client is None:
                await self._refuse(send, has_body, 401, "unauthorized", "send a valid API key in the X-API-Key header",
                                   {"WWW-Authenticate": "X-API-Key"})
                return
            scope.setdefault("state", {})["client"] = client  # the routes' booking_api checks it
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
        body = None if announced_too_large(headers, self.max_body_bytes) else await read_at_most(
            receive, self.max_body_bytes)
        if body is None:
            await self._refuse(send, has_body, 413, "payload_too_large",
                               f"the body is larger than {self.max_body_bytes} bytes")
            return
        await self.app(scope, replay(body, receive), send)

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

