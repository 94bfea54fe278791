"""One channel's messages on their way to the provider, from their claim to the end of their provider call.

- At most `calls` provider calls at once (SMTP connections, SMS sends in flight).
- Before its call each message is checked (the ledger's conditional UPDATE, one commit). Messages are
  checked while the calls in front of them are under way, just early enough for the check to be over
  when a call is free: as many per call as one check takes provider calls (measured; at least one, at
  most `MAX_AHEAD`). A check is thus never more than `MAX_AHEAD` provider calls older than its call.
- Claimed: up to `CLAIM_DEPTH` messages per call, in groups of `calls` (fewer claim queries).
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

MAX_AHEAD = 2
CLAIM_DEPTH = 2 + MAX_AHEAD  # in a call, checked ahead, and one more group ready to be checked
_SMOOTHING = 0.2  # weight of the latest measure in the running means


class Lane:
    def __init__(self, calls: int) -> None:
        if calls < 1:
            raise ValueError("a channel needs at least one provider call at a time")
        self.calls = calls
        self.claimed: set[str] = set()  # ids of the messages claimed whose provider call is not over
        self._slots = asyncio.Semaphore(calls)
        self._in_line = 0  # checked (or being checked), waiting for a call
        self._room = asyncio.Event()
        self._check_seconds = 0.0
        self._call_seconds = 0.0

    def claimable(self) -> int:
        free = CLAIM_DEPTH * self.calls - len(self.claimed)
        return free if free >= self.calls or not self.claimed else 0

    def ahead(self) -> int:
        """Messages checked ahead per provider call."""
        if self._call_seconds <= 0:
            return 1
        return max(1, min(MAX_AHEAD, math.ceil(self._check_seconds / self._call_seconds)))

    @asynccontextmanager
    async def line(self) -> AsyncIterator[None]:
        """From the check to the start of the provider call (`wait_for_call`)."""
        while self._in_line >= self.calls * self.ahead():
            self._room.clear()
            await self._room.wait()
        self._in_line += 1
        try:
            yield
        finally:
            self._in_line -= 1
            self._room.set()

    async def wait_for_call(self) -> None:
        """Until a provider call is free; it is this message's until `call_over`."""
        await self._slots.acquire()

    def checked(self, seconds: float) -> None:
        self._check_seconds = _smoothed(self._check_seconds, seconds)
        self._room.set()

    def call_over(self, delivery_id: str, seconds: float | None) -> None:
        """`seconds`: how long the provider took, None when it was not called after all."""
        self._slots.release()
        self.claimed.discard(delivery_id)
        if seconds is not None:
            self._call_seconds = _smoothed(self._call_seconds, seconds)
            self._room.set()


def _smoothed(mean: float, latest: float) -> float:
    return latest if mean <= 0 else (1 - _SMOOTHING) * mean + _SMOOTHING * latest
