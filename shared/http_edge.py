"""What every service's HTTP edge needs before a handler runs: per-client token buckets, and reading a
body of at most so many bytes (then handing it on, whole, to the application).

Plain ASGI, so a refusal is answered before the body is read; each service decides its own rules
(which paths, which limits, how a refusal reads) in its own middleware.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.telemetry import TelemetryConfig

# The services export Prometheus metrics and JSON logs, not OpenTelemetry. FastAPI's own telemetry,
# left on, asks OpenTelemetry for its providers on every request even when none is configured.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


@dataclass
class TokenBuckets:
    """A bucket per client: `burst` requests at once, refilled continuously at `per_second`.

    Only the `max_clients` most recently seen clients are remembered (a forgotten one starts full), so
    a flood of addresses cannot grow the process without bound.
    """

    per_second: float
    burst: int
    now: Callable[[], float] = time.monotonic
    max_clients: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)  # client: (tokens, at)

    def take(self, client: str) -> float:
        """0 when the request may go ahead (a token is taken), else the seconds until it could."""
        now = self.now()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.per_second
        self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def announced_too_large(headers: dict[str, str], limit: int) -> bool:
    """Content-Length says more than `limit` bytes (or is not a number): refuse before reading."""
    announced = headers.get("content-length")
    return announced is not None and (not announced.isdigit() or int(announced) > limit)


async def read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it goes past `limit` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the application the body already read, then the client's disconnect."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replayed
