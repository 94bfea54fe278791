"""What the sandbox remembers: messages, opted-out numbers, pending faults, its run-time settings."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sandbox.twilio_sandbox.payloads import ERROR_MESSAGES, twilio_date

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL", "ARRET"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO", "AIDE"})

FaultKind = Literal["create", "delivery", "account"]
Outcome = Literal["delivered", "undelivered", "failed"]


@dataclass
class Fault:
    """A Twilio error the sandbox answers instead of its usual one.

    kind "create": the next `times` creates (to `to`, or to anyone) are refused with HTTP `status`
    and Twilio error `code`. kind "account": every Messages API request (create, list, fetch) is.
    kind "delivery": the next `times` creates (to `to`, or to anyone) are accepted, and the message
    later ends `outcome` ("undelivered" or "failed") with `code`, told by its status callbacks.
    `times` None: until cleared, or until `expires_at` (time.monotonic()) if that is set.
    """

    code: int
    status: int
    message: str
    to: str | None
    times: int | None
    kind: FaultKind = "create"
    outcome: Outcome = "undelivered"
    expires_at: float | None = None

    def matches(self, kind: FaultKind, to: str | None) -> bool:
        return self.kind == kind and (self.to is None or self.to == to)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass
class StoredMessage:
    """One message: its Twilio resource plus what only the sandbox knows about it."""

    resource: dict[str, Any]
    created_at: datetime
    sequence: int
    received_at: float = field(default_factory=time.time)  # not a Twilio field: for timing tests
    sent_at: datetime | None = None
    status_callback: str | None = None

    @property
    def sid(self) -> str:
        sid: str = self.resource["sid"]
        return sid

    def inspection_view(self) -> dict[str, Any]:
        """What GET /_sandbox/messages shows: the resource and the sandbox's own fields."""
        return self.resource | {
            "status_callback": self.status_callback,
            "sandbox_received_at": self.received_at,
        }


class RateLimiter:
    """Messages per second per sender, as a token bucket holding at most one second's worth."""

    def __init__(self, per_second: float | None, now: Callable[[], float] = time.monotonic) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("a rate limit is a positive number of messages per second")
        self.per_second = per_second
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}  # sender -> (tokens, when counted)

    def allow(self, sender: str) -> bool:
        """Whether `sender` may send one more message now; if so, that message is counted."""
        if self.per_second is None:
            return True
        capacity = max(1.0, self.per_second)
        now = self._now()
        tokens, then = self._buckets.get(sender, (capacity, now))
        tokens = min(capacity, tokens + (now - then) * self.per_second)
        if tokens < 1.0:
            self._buckets[sender] = (tokens, now)
            return False
        self._buckets[sender] = (tokens - 1.0, now)
        return True


class SandboxState:
    """In-memory record of one sandbox; only touched from the server's event loop."""

    def __init__(
        self,
        record_file: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        latency: float = 0.0,
        rate_limit: float | None = None,
    ) -> None:
        self._record_file = record_file
        self._clock = clock or (lambda: datetime.now(UTC))
        self._messages: dict[str, StoredMessage] = {}
        self._sequence = 0
        self._opted_out: set[str] = set()
        self._faults: list[Fault] = []
        self.latency = latency
        self.rate_limiter = RateLimiter(rate_limit)

    def now(self) -> datetime:
        return self._clock()

    # --- messages ---------------------------------------------------------------------------

    def record(self, resource: dict[str, Any], status_callback: str | None = None) -> StoredMessage:
        self._sequence += 1
        stored = StoredMessage(resource, self.now(), self._sequence, status_callback=status_callback)
        if resource["direction"] == "inbound":
            stored.sent_at = stored.created_at
        self._messages[stored.sid] = stored
        if self._record_file is not None and resource["direction"] != "inbound":
            self._record_file.parent.mkdir(parents=True, exist_ok=True)
            with self._record_file.open("a", encoding="utf-8") as lines:
                lines.write(json.dumps(stored.inspection_view(), ensure_ascii=False) + "\n")
        return stored

    def get(self, sid: str) -> StoredMessage | None:
        return self._messages.get(sid)

    def all_messages(self) -> list[StoredMessage]:
        """Every message the account has, sent and received, oldest first."""
        return list(self._messages.values())

    def messages(self, to: str | None = None, received: bool = False) -> list[dict[str, Any]]:
        """What the sandbox sent (or, `received`, the texts it received), oldest first, for inspection."""
        return [
            m.inspection_view()
            for m in self._messages.values()
            if (m.resource["direction"] == "inbound") == received and (to is None or m.resource["to"] == to)
        ]

    def clear_messages(self) -> None:
        self._messages.clear()

    def advance(
        self, sid: str, status: str, error_code: int | None = None, from_: str | None = None
    ) -> StoredMessage | None:
        """Move a message to `status`, as Twilio does when the carrier reports; None if it is gone."""
        stored = self._messages.get(sid)
        if stored is None:
            return None
        now = self.now()
        resource = stored.resource
        resource["status"] = status
        resource["date_updated"] = twilio_date(now)
        if from_ is not None and resource["from"] is None:
            resource["from"] = from_
        if status == "sent":
            stored.sent_at = now
            resource["date_sent"] = twilio_date(now)
        if error_code is not None:
            resource["error_code"] = error_code
            resource["error_message"] = ERROR_MESSAGES.get(error_code, "Message delivery failed")
        return stored

    # --- faults -----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[Fault]:
        self._drop_expired()
        return list(self._faults)

    def take_fault(self, kind: FaultKind, to: str | None = None) -> Fault | None:
        """The first fault of this kind matching `to`, one of its `times` used up."""
        self._drop_expired()
        for fault in self._faults:
            if fault.matches(kind, to):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _drop_expired(self) -> None:
        now = time.monotonic()
        self._faults = [fault for fault in self._faults if not fault.expired(now)]

    # --- opt-out ----------------------------------------------------------------------------

    def apply_keyword(self, number: str, body: str) -> str | None:
        """Mirror Twilio's Advanced Opt-Out: the OptOutType ("STOP", "START", "HELP") or None."""
        keyword = body.strip().upper()
        if keyword in OPT_OUT_KEYWORDS:
            self._opted_out.add(number)
            return "STOP"
        if keyword in OPT_IN_KEYWORDS:
            self._opted_out.discard(number)
            return "START"
        if keyword in HELP_KEYWORDS:
            return "HELP"
        return None

    def is_opted_out(self, number: str) -> bool:
        return number in self._opted_out
