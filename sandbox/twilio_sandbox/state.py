"""What the sandbox remembers: sent messages, opted-out numbers, pending faults."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL", "ARRET"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO", "AIDE"})


@dataclass
class Fault:
    """The next `times` sends (to `to`, or to anyone) fail with this Twilio error."""

    code: int
    status: int
    message: str
    to: str | None
    times: int

    def matches(self, to: str) -> bool:
        return self.to is None or self.to == to


class SandboxState:
    """In-memory record of one sandbox; only touched from the server's event loop."""

    def __init__(self, record_file: Path | None = None) -> None:
        self._record_file = record_file
        self._messages: list[dict[str, Any]] = []
        self._opted_out: set[str] = set()
        self._faults: list[Fault] = []

    def record(self, message: dict[str, Any]) -> None:
        # Not a Twilio field: when the sandbox took the message, for tests that check timing.
        message = message | {"sandbox_received_at": time.time()}
        self._messages.append(message)
        if self._record_file is not None:
            self._record_file.parent.mkdir(parents=True, exist_ok=True)
            with self._record_file.open("a", encoding="utf-8") as lines:
                lines.write(json.dumps(message, ensure_ascii=False) + "\n")

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self._messages if to is None or m["to"] == to]

    def clear_messages(self) -> None:
        self._messages.clear()

    def add_fault(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def take_fault(self, to: str) -> Fault | None:
        """The first fault matching `to`, used up once."""
        for fault in self._faults:
            if fault.matches(to):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

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
