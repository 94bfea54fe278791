"""`python -m services.booking_events`: the booking HTTP API and its outbox relay in one process."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import structlog
import uvicorn

from services.booking_events.api import create_app
from shared.outbox.kafka_publisher import KafkaEventPublisher
from services.booking_events.metrics import BookingMetrics
from services.booking_events.outbox import BOOKING_OUTBOX
from shared.outbox.relay import OutboxRelay
from services.booking_events.settings import BookingSettings
from shared.database import create_engine, create_tables
from shared.topics import ensure_topics

log = structlog.get_logger("booking_events")


class KafkaUnreachable(Exception):
    pass


def configure_logging(settings: BookingSettings) -> None:
    level = logging.getLevelName(settings.log_level.upper())
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stdout)
    renderer = (
        structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )


async def wait_for_topics(bootstrap_servers: str, wait_s: float) -> None:
    """Create the topics, retrying while the broker starts; gives up after `wait_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 1.0
    while True:
        remaining = deadline - loop.time()
        try:
            async with asyncio.timeout(max(remaining, 1.0)):
                created = await ensure_topics(bootstrap_servers)
            log.info("kafka_topics_ready", bootstrap_servers=bootstrap_servers, created=created)
            return
        except Exception as error:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise KafkaUnreachable(
                    f"Kafka at {bootstrap_servers} did not answer within {wait_s:.0f} s "
                    f"({type(error).__name__}); check KAFKA_BOOTSTRAP_SERVERS and the broker"
                ) from error
            log.warning(
                "kafka_not_ready",
                bootstrap_servers=bootstrap_servers,
                error=type(error).__name__,
                retry_in_s=round(min(delay, remaining), 1),
                gives_up_in_s=round(remaining, 1),
            )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 10.0)


async def serve(settings: BookingSettings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await create_tables(engine)
        await _cancellable_by_sigterm(
            wait_for_topics(settings.kafka.bootstrap_servers, settings.kafka_startup_wait_s)
        )
        metrics = BookingMetrics()
        relay = OutboxRelay(
            engine,
            BOOKING_OUTBOX,
            KafkaEventPublisher(settings.kafka.bootstrap_servers, client_id="booking-events-outbox"),
            service="booking_events",
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            max_backoff_s=settings.outbox_max_backoff_s,
        )
        app = create_app(settings, engine, metrics=metrics, relay=relay)
        # uvicorn handles SIGINT/SIGTERM from here on: it stops accepting, finishes requests,
        # then the lifespan cancels the relay (unpublished rows stay in the outbox). Afterwards it
        # re-raises the signal to the handler it found: ours, so the engine is still disposed.
        signal.signal(signal.SIGTERM, _stopped_by_sigterm)
        config = uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, lifespan="on", log_config=None
        )
        await uvicorn.Server(config).serve()
    finally:
        await engine.dispose()
        log.info("booking_events_stopped")


async def _cancellable_by_sigterm(work: Coroutine[Any, Any, None]) -> None:
    """Before uvicorn installs its handlers, SIGTERM should stop the start-up wait cleanly."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _stopped_by_sigterm(signum: int, frame: object) -> None:
    log.info("booking_events_sigterm")


def main() -> None:
    settings = BookingSettings()
    configure_logging(settings)
    try:
        asyncio.run(serve(settings))
    except KafkaUnreachable as error:
        log.error("kafka_unreachable", message=str(error))
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        log.info("booking_events_interrupted")


if __name__ == "__main__":
    main()
