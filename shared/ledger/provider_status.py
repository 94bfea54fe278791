"""How a provider's status reports move a message on. Pure: no I/O.

Twilio posts a status callback at each step of a message, possibly out of order and more than once.
The ledger keeps the furthest step: accepted/scheduled < queued < sending < sent < delivered, and
undelivered, failed and canceled end it as delivered does. A report that is not further than what
is recorded (a step backwards, a repeat, anything after an end) changes nothing. A status we do
not know is not recorded.
"""
from __future__ import annotations

_PROGRESS = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3}
FINAL_PROVIDER_STATUSES = frozenset({"delivered", "undelivered", "failed", "canceled"})
KNOWN_PROVIDER_STATUSES = frozenset(_PROGRESS) | FINAL_PROVIDER_STATUSES
# Ends in which the message never reached the patient's handset.
NOT_DELIVERED = frozenset({"undelivered", "failed"})


def _rank(status: str) -> int:
    return _PROGRESS.get(status, len(_PROGRESS) + 1)


def is_further(new: str, recorded: str | None) -> bool:
    """Whether `new` moves a message whose recorded provider status is `recorded` (None: none yet)."""
    if new not in KNOWN_PROVIDER_STATUSES:
        return False
    if recorded is None:
        return True
    if recorded in FINAL_PROVIDER_STATUSES:
        return False
    return _rank(new) > _rank(recorded)


def statuses_it_moves(new: str) -> frozenset[str]:
    """The recorded statuses `new` may replace (besides none): for a conditional update."""
    return frozenset(recorded for recorded in KNOWN_PROVIDER_STATUSES if is_further(new, recorded))
