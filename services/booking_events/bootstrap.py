"""Builds the booking service from its dependencies, and runs it.

`build` assembles every part (engine, store, HTTP app, outbox relay) and starts nothing; the entry
point and the tests both call it, the tests passing their own clock and publisher. `run` prepares the
database and the broker, then supervises the workers until told to stop.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking_events.http import BookingApi, create_app, create_metrics_app
from services.booking_events.metrics import BookingMetrics
from services.booking_events.migrations import MIGRATIONS
from services.booking_events.settings import BookingSettings
from services.booking_events.store import BookingStore
from services.booking_events.workers import idempotency_purge_worker, outbox_relay_worker
from services.booking_events.writer import CommandWriter
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.clock import Clock, SystemClock
from shared.database import create_engine
from shared.kafka_admin import broker_ready_unless_stopped
from shared.observability import get_logger
from shared.outbox.kafka_publisher import EventPublisher, KafkaEventPublisher
from shared.outbox.relay import OutboxRelay
from shared.process import Health, Worker, embedded_http_server, http_worker, supervise
from shared.schema_migrations import upgrade_to_head

SERVICE = "booking_events"

log = get_logger(__name__)


@dataclass(frozen=True)
class BookingParts:
    settings: BookingSettings
    clock: Clock
    engine: AsyncEngine
    store: BookingStore
    writer: CommandWriter
    relay: OutboxRelay
    health: Health
    app: FastAPI
    metrics_app: FastAPI


def build(
    settings: BookingSettings,
    *,
    clock: Clock | None = None,
    publisher: EventPublisher | None = None,
    clinic: ClinicConfig | None = None,
) -> BookingParts:
    """Every part of the service, wired, nothing started; a Kafka publisher unless one is given.

    The clinic configuration (CLINIC_CONFIG_FILE) is read unless given: bookings name its locations.
    """
    clock = clock or SystemClock()
    clinic = clinic or load_clinic_config(settings.common.clinic_config_file)
    engine = create_engine(settings.database_url)
    store = BookingStore(engine)
    relay = OutboxRelay(
        engine,
        store.outbox,
        publisher
        or KafkaEventPublisher(settings.common.kafka, client_id="booking-events-outbox"),
        clock=clock.now,
        service=SERVICE,
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        max_backoff_s=settings.outbox_max_backoff_s,
    )
    health = Health(SERVICE)
    metrics = BookingMetrics()
    writer = CommandWriter(store, clock, settings.write_batch_size, on_batch=metrics.write_batch.observe)
    api = BookingApi(
        settings, store, writer, clock, metrics, health, on_recorded=relay.wake,
        locations=frozenset(clinic.locations),
    )
    return BookingParts(
        settings, clock, engine, store, writer, relay, health, create_app(api), create_metrics_app(api)
    )


def workers(parts: BookingParts) -> list[Worker]:
    settings = parts.settings
    retention = timedelta(hours=settings.idempotency_retention_hours)
    served = [
        http_worker("http", embedded_http_server(parts.app, settings.http_host, settings.http_port,
                                                 shared_port=settings.http_shared_port)),
        outbox_relay_worker(parts.relay),
        idempotency_purge_worker(parts.store, parts.clock, retention),
    ]
    if settings.metrics_port:
        metrics_server = embedded_http_server(parts.metrics_app, settings.metrics_host, settings.metrics_port)
        served.append(http_worker("metrics-http", metrics_server))
    return served


async def run(parts: BookingParts, stop: asyncio.Event) -> None:
    """Create the tables, wait for Kafka, then serve until `stop`; raises WorkerDied if a worker died."""
    settings = parts.settings
    if not settings.api_keys:
        log.warning("no_api_keys_configured", hint="set BOOKING_API_KEYS; every request will be refused")
    try:
        await upgrade_to_head(parts.engine, MIGRATIONS)
        if not await broker_ready_unless_stopped(settings.common.kafka, stop, settings.kafka_startup_wait_s):
            return
        log.info("booking_events_started", http_port=settings.http_port, metrics_port=settings.metrics_port)
        await supervise(workers(parts), stop, parts.health)
    finally:
        await parts.engine.dispose()
        log.info("booking_events_stopped")
