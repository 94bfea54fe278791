"""The dispatcher's own metrics, beside the shared ones in shared/observability.py."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

UNKNOWN_OUTCOME_RESENDS = Counter(
    "clinic_notify_unknown_outcome_resends_total",
    "Messages sent again although an earlier attempt may have gone out (its dispatcher stopped mid-send)",
    ["service", "channel"],
)
CHANNEL_PAUSED = Gauge(
    "clinic_notify_channel_paused",
    "1 while a channel is paused by an account-wide error (credentials refused...), else 0",
    ["service", "channel"],
)
STAFF_UNDELIVERED = Counter(
    "clinic_notify_staff_undelivered_total",
    "Messages to staff (escalations, reviews) that failed for good or were given up",
    ["service", "channel"],
)
LEDGER_DUE = Gauge(
    "clinic_notify_ledger_due_messages", "Pending messages whose due time has come", ["service"]
)
LEDGER_OLDEST_DUE_AGE = Gauge(
    "clinic_notify_ledger_oldest_due_age_seconds",
    "How long the oldest pending due message has been due (0 when none is)",
    ["service"],
)
