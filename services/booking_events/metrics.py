"""Prometheus metrics of the booking events service, on a registry of its own."""
from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class BookingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "booking_requests_accepted",
            "Changes accepted (an event was stored), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.replayed = Counter(
            "booking_requests_replayed",
            "Retries answered from a stored idempotent response, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.refused = Counter(
            "booking_requests_refused",
            "Requests refused, by kind and error",
            ["kind", "error"],
            registry=self.registry,
        )
        self.write_batch = Histogram(
            "booking_write_batch_commands",
            "Appointment changes written in one transaction (those that arrived while the last was written)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.outbox_unpublished = Gauge(
            "booking_outbox_unpublished",
            "Events stored but not yet acknowledged by Kafka",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "booking_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished event (0 when none)",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """This service's metrics plus the process-wide ones (the outbox relay's)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
