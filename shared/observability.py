"""Structured logs that never carry patient details, and the metrics operators watch."""
from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from structlog.typing import EventDict, FilteringBoundLogger

SENSITIVE_KEYS = frozenset(
    {"name", "patient_name", "first_name", "email", "phone", "recipient", "to", "from", "body", "text", "address",
     "reply", "reply_text", "note"}
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PHONE = re.compile(r"\+\d{8,15}\b|\b\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")
_NOT_FREE_TEXT = frozenset({"timestamp", "level", "event_id", "delivery_id"})
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    return _PHONE.sub(REDACTED, _EMAIL.sub(REDACTED, text))


def redact_patient_data(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    for key, value in list(event_dict.items()):
        if key in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        elif isinstance(value, str) and key not in _NOT_FREE_TEXT:
            event_dict[key] = redact_text(value)
    return event_dict


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    for noisy in ("aiokafka", "faststream", "httpx", "twilio", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # before redaction, so tracebacks are redacted too
            redact_patient_data,
            structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


DELIVERIES = Counter(
    "clinic_notify_deliveries_total",
    "Messages handled by the dispatcher, by outcome",
    ["service", "channel", "template", "outcome"],
)
DISPATCH_DELAY = Histogram(
    "clinic_notify_dispatch_delay_seconds",
    "How long after its scheduled time a message was sent",
    ["service", "channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
EVENTS_CONSUMED = Counter(
    "clinic_notify_events_consumed_total",
    "Appointment events consumed, by type and outcome",
    ["service", "event_type", "outcome"],
)
DEAD_LETTERS = Counter(
    "clinic_notify_dead_letters_total", "Events sent to the dead-letter topic", ["service", "reason"]
)
LEDGER_BACKLOG = Gauge(
    "clinic_notify_ledger_messages", "Messages in the ledger by status", ["service", "status"]
)
OUTBOX_PUBLISHED = Counter(
    "clinic_notify_outbox_published_total", "Outbox events acknowledged by Kafka", ["service"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "clinic_notify_outbox_publish_failures_total", "Failed rounds of publishing outbox events", ["service"]
)
WORKER_UP = Gauge(
    "clinic_notify_worker_up", "1 while a service's worker runs, 0 once it has stopped or died",
    ["service", "worker"],
)
