"""How long to wait before trying a failed delivery again."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    max_delay: timedelta = timedelta(minutes=10)
    max_attempts: int = 8

    def delay_after(self, attempts: int) -> timedelta:
        """Delay before attempt number `attempts + 1` (attempts counts those already made)."""
        delay = self.first_delay * (self.factor ** max(attempts - 1, 0))
        return min(delay, self.max_delay)

    def gives_up_after(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
