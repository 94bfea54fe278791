"""One channel's messages on their way to the provider, from their claim to the end of their provider call.

- At most `calls` provider calls at once (SMTP connections, SMS sends in flight).
- A message is claimed right before its call: the claim is the check that it is still to be sent
  (`DeliveryLedger.claim_to_send`), and its lease runs from it. Claims are made while the calls in
  front of them are under way, early enough for a claim to be over when a call is free. One claim
  is made at a time, so each claims what the calls will take during two claims, or during
  `HORIZON_SECONDS` if that is longer: as many messages per call as fit in that time (measured; at
  least one, at most `MAX_AHEAD`), half of that at a time. Against a provider that answers in
  milliseconds a claim is then shared by a dozen messages instead of being made for each; against
  one that takes 100 ms or more, one message waits behind each call. A message is thus claimed at
  most `MAX_AHEAD` provider calls, and about `HORIZON_SECONDS`, before its own.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

MAX_AHEAD = 32
HORIZON_SECONDS = 0.05
_SMOOTHING = 0.2  # weight of the latest measure in the running means


class Lane:
    def __init__(self, calls: int) -> None:
        if calls < 1:
            raise ValueError("a channel needs at least one provider call at a time")
        self.calls = calls
        self.waiting: set[str] = set()  # claimed, their call not started yet
        self.calling: set[str] = set()
        self._slots = asyncio.Semaphore(calls)
        self._claim_seconds = 0.0
        self._call_seconds = 0.0

    def claimed(self) -> int:
        """Messages claimed whose call is not over."""
        return len(self.waiting) + len(self.calling)

    def ahead(self) -> int:
        """Messages claimed ahead per provider call."""
        if self._call_seconds <= 0:
            return 2  # nothing measured yet: one waiting behind each call
        return max(1, min(MAX_AHEAD, math.ceil(max(2 * self._claim_seconds, HORIZON_SECONDS) / self._call_seconds)))

    def to_claim(self) -> int:
        """How many to claim now: half of what may wait at a time, or anything when none is waiting."""
        wanted = self.calls * self.ahead()
        room = wanted - len(self.waiting)
        return room if room >= max(1, wanted // 2) or not self.waiting else 0

    def claimed_now(self, delivery_ids: Iterable[str], seconds: float) -> None:
        """`seconds`: how long the claim took."""
        self.waiting.update(delivery_ids)
        self._claim_seconds = _smoothed(self._claim_seconds, seconds)

    async def wait_for_call(self, delivery_id: str) -> None:
        """Until a provider call is free; it is this message's until `call_over`."""
        await self._slots.acquire()
        self.waiting.discard(delivery_id)
        self.calling.add(delivery_id)

    def call_over(self, delivery_id: str, seconds: float | None) -> None:
        """`seconds`: how long the provider took, None when it was not called after all."""
        self._slots.release()
        self.calling.discard(delivery_id)
        if seconds is not None:
            self._call_seconds = _smoothed(self._call_seconds, seconds)

    def gone(self, delivery_id: str) -> None:
        """The message's turn ended before its call (skipped, or no longer wanted)."""
        self.waiting.discard(delivery_id)


def _smoothed(mean: float, latest: float) -> float:
    return latest if mean <= 0 else (1 - _SMOOTHING) * mean + _SMOOTHING * latest
