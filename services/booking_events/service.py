"""Wires the booking service: HTTP API → database + outbox → relay → Kafka."""
from __future__ import annotations

import asyncio

from services.booking_events.api import create_app
from services.booking_events.metrics import BookingMetrics
from services.booking_events.outbox import BOOKING_OUTBOX
from services.booking_events.settings import BookingSettings
from services.booking_events.tables import SCHEMA
from shared.database import create_engine, create_tables
from shared.observability import configure_logging, get_logger
from shared.outbox.kafka_publisher import KafkaEventPublisher
from shared.outbox.relay import OutboxRelay
from shared.process import embedded_http_server, stop_on_signals
from shared.topics import wait_for_broker_and_ensure_topics

log = get_logger("booking_events")


async def run_booking_events(settings: BookingSettings) -> None:
    configure_logging(settings.log_level, settings.log_json)
    if not settings.api_keys:
        log.warning("no_api_keys_configured", hint="set BOOKING_API_KEYS; every request will be refused")
    stop = stop_on_signals()
    engine = create_engine(settings.database_url)
    try:
        await create_tables(engine, SCHEMA)
        waiting = asyncio.create_task(
            wait_for_broker_and_ensure_topics(settings.kafka.bootstrap_servers, settings.kafka_startup_wait_s)
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            waiting.cancel()
            return
        waiting.result()
        relay = OutboxRelay(
            engine,
            BOOKING_OUTBOX,
            KafkaEventPublisher(settings.kafka.bootstrap_servers, client_id="booking-events-outbox"),
            service="booking_events",
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            max_backoff_s=settings.outbox_max_backoff_s,
        )
        web = embedded_http_server(create_app(settings, engine, metrics=BookingMetrics(), relay=relay),
                                   settings.http_host, settings.http_port, run_lifespan=True)
        serving = asyncio.create_task(web.serve())
        log.info("booking_events_started", http_port=settings.http_port)
        await stop.wait()
        web.should_exit = True
        await serving
    finally:
        await engine.dispose()
        log.info("booking_events_stopped")
