"""How long to wait before trying a failed delivery again, and until when trying is worth it."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from shared.ledger.model import Delivery


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff, capped; a message is retried for as long as it is useful.

    Useful until its `expires_at` (a reminder: the appointment's start), or, without one, until
    `horizon` after its due time (`horizon_by_template` overrides it per template). An outage of
    the provider longer than the backoff therefore delays messages; it fails only those that
    became pointless meanwhile.
    """

    first_delay: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    max_delay: timedelta = timedelta(minutes=10)
    horizon: timedelta = timedelta(hours=24)
    horizon_by_template: Mapping[str, timedelta] = field(default_factory=lambda: MappingProxyType({}))

    def delay_after(self, attempts: int) -> timedelta:
        """Delay before attempt number `attempts + 1` (attempts counts those already made)."""
        exponent = min(max(attempts - 1, 0), 64)  # beyond that the cap applies anyway
        delay = self.first_delay * (self.factor**exponent)
        return min(delay, self.max_delay)

    def useful_until(self, delivery: Delivery) -> datetime:
        if delivery.expires_at is not None:
            return delivery.expires_at
        return delivery.scheduled_for + self.horizon_by_template.get(delivery.template, self.horizon)

    def next_attempt(self, delivery: Delivery, now: datetime) -> datetime | None:
        """When to try again after a transient failure; None once that would be too late."""
        due_at = now + self.delay_after(delivery.attempts)
        return due_at if due_at < self.useful_until(delivery) else None
