"""Kafka topics of the system, with the partition counts they are created with (names only, no I/O:
pure rules may name a topic; `shared.kafka_admin` creates them)."""
from __future__ import annotations

from dataclasses import dataclass

APPOINTMENTS = "clinic.appointments.v1"
APPOINTMENTS_DEAD_LETTER = "clinic.appointments.v1.dlq"
CONSENT = "clinic.consent.v1"
CONSENT_DEAD_LETTER = "clinic.consent.v1.dlq"
AFTERCARE_RECORDS = "clinic.aftercare.records.v1"
AFTERCARE_ALERTS = "clinic.aftercare.alerts.v1"
# Patients' answers to their reminders (confirm, ask for a change), for the booking system.
APPOINTMENT_REQUESTS = "clinic.appointments.requests.v1"
DELIVERIES = "clinic.deliveries.v1"
DELIVERIES_DEAD_LETTER = "clinic.deliveries.v1.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None = None


ALL_TOPICS = (
    TopicSpec(APPOINTMENTS, partitions=6),
    TopicSpec(APPOINTMENTS_DEAD_LETTER, partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(CONSENT, partitions=3),
    TopicSpec(CONSENT_DEAD_LETTER, partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    TopicSpec(AFTERCARE_RECORDS, partitions=3),
    TopicSpec(AFTERCARE_ALERTS, partitions=1),
    TopicSpec(APPOINTMENT_REQUESTS, partitions=3),
    TopicSpec(DELIVERIES, partitions=3),
    TopicSpec(DELIVERIES_DEAD_LETTER, partitions=1, retention_ms=30 * 24 * 3600 * 1000),
)
