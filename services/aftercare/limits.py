"""What the aftercare service's public HTTP side accepts, checked before a request reaches a handler.

- A body larger than its limit is refused with 413: at once when `Content-Length` says so (nothing is
  read), otherwise as soon as what arrives goes past the limit (nothing more is read).
- Multipart bodies are refused with 415 where a form is read (the webhook, the note, the screening
  form): nothing we serve takes files. The one-click unsubscribe (RFC 8058 allows multipart) reads no body at all.
- Each client address has a small token bucket per kind of endpoint; an empty bucket answers 429. The
  patient pages (check-in, unsubscribe, pre-visit screening form) share the "page" bucket.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.http_edge import TokenBuckets, announced_too_large, read_at_most, replay


@dataclass(frozen=True)
class EdgeRule:
    """What one kind of public endpoint accepts."""

    kind: str  # names its rate-limit buckets
    max_body_bytes: int
    reads_form: bool  # a form is parsed: only url-encoded bodies
    per_minute: float
    burst: int


@dataclass(frozen=True)
class PublicLimits:
    webhook_body_bytes: int = 16 * 1024
    page_body_bytes: int = 16 * 1024
    # Twilio posts every inbound text to the webhook: its bucket is per Twilio address, and generous.
    webhook_per_minute: float = 600
    webhook_burst: int = 100
    page_per_minute: float = 30
    page_burst: int = 10


def rule_for(method: str, path: str, limits: PublicLimits) -> EdgeRule | None:
    """The rule of a public endpoint, or None (health checks and staff pages are not limited here)."""
    if path == "/twilio/inbound":
        return EdgeRule("webhook", limits.webhook_body_bytes, True, limits.webhook_per_minute, limits.webhook_burst)
    if path.startswith(("/check-in/", "/unsubscribe/", "/screening/")):
        reads_form = method == "POST" and (path.endswith("/note") or path.startswith("/screening/"))
        return EdgeRule("page", limits.page_body_bytes, reads_form, limits.page_per_minute, limits.page_burst)
    return None


class PublicEdge:
    """ASGI middleware applying `rule_for` to every HTTP request."""

    def __init__(self, app: ASGIApp, limits: PublicLimits = PublicLimits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limits = limits
        self.buckets: dict[str, TokenBuckets] = {}
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = rule_for(scope["method"], scope["path"], self.limits)
        if rule is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = self._bucket(rule).take(address)
        if wait > 0:
            await _refuse(send, 429, "too many requests", {"retry-after": str(max(1, math.ceil(wait)))})
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if rule.reads_form and content_type.startswith("multipart/"):
            await _refuse(send, 415, "multipart bodies are not accepted")
            return
        body = None if announced_too_large(headers, rule.max_body_bytes) else await read_at_most(
            receive, rule.max_body_bytes)
        if body is None:
            await _refuse(send, 413, "request body too large")
            return
        await self.app(scope, replay(body, receive), send)

    def _bucket(self, rule: EdgeRule) -> TokenBuckets:
        if rule.kind not in self.buckets:
            self.buckets[rule.kind] = TokenBuckets(rule.per_minute / 60, rule.burst, self.clock)
        return self.buckets[rule.kind]



async def _refuse(send: Send, status: int, text: str, headers: dict[str, str] | None = None) -> None:
    body = text.encode()
    raw = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
           *((key.encode(), value.encode()) for key, value in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
