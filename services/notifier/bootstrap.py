"""Builds the notifier from its settings and dependencies, and runs it.

`build` makes every part (database engine, dispatcher, event handler, Kafka subscribers) and starts
nothing; tests pass a fixed clock or their own channels. `run` prepares what the parts need outside
the process (tables, topics), then supervises two workers: the consumer (FastStream runs the
subscribers while the broker is started) and the dispatcher. A worker that ends before `stop` stops
the notifier with `WorkerDied`.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.handlers import AppointmentEventHandler
from services.notifier.settings import NotifierSettings
from services.notifier.store import AppointmentStateStore
from services.notifier.tables import SCHEMA
from shared.channels.email import SmtpEmailSender
from shared.channels.messages import EmailSender, SmsSender
from shared.channels.sms import TwilioSmsSender
from shared.clinic_config import ClinicConfig, load_clinic_config
from shared.clock import Clock, SystemClock
from shared.consumer import EventConsumer, KafkaDeadLetters
from shared.database import create_engine, create_tables
from shared.delivery.dispatcher import Dispatcher
from shared.delivery.wiring import build_channels, build_dispatcher
from shared.events.aftercare import ConsentChanged
from shared.kafka_admin import wait_for_broker_and_ensure_topics
from shared.kafka_security import broker_security
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.suppressions import SuppressionList, apply_consent_change
from shared.observability import get_logger
from shared.process import Health, Worker, serve_metrics, supervise
from shared.topics import APPOINTMENTS, CONSENT, CONSENT_DEAD_LETTER

log = get_logger(__name__)

SERVICE = "notifier"


@dataclass(frozen=True)
class NotifierParts:
    settings: NotifierSettings
    engine: AsyncEngine
    clinic: ClinicConfig
    clock: Clock
    dispatcher: Dispatcher
    handler: AppointmentEventHandler
    broker: KafkaBroker
    workers: tuple[Worker, ...]
    health: Health
    # The channels `build` made itself, which `close` closes; channels passed in belong to the caller.
    own_channels: tuple[SmtpEmailSender | TwilioSmsSender, ...]


def build(
    settings: NotifierSettings,
    *,
    clock: Clock | None = None,
    email: EmailSender | None = None,
    sms: SmsSender | None = None,
) -> NotifierParts:
    clinic = load_clinic_config(settings.common.clinic_config_file)
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url)
    own_channels: list[SmtpEmailSender | TwilioSmsSender] = []
    if email is None or sms is None:
        smtp, twilio = build_channels(settings.delivery)
        if email is None:
            email = smtp
            own_channels.append(smtp)
        if sms is None:
            sms = twilio
            own_channels.append(twilio)
    dispatcher = build_dispatcher(
        service=SERVICE, settings=settings.delivery, engine=engine, clinic=clinic,
        clock=clock, email=email, sms=sms,
    )
    handler = AppointmentEventHandler(
        engine=engine, ledger=DeliveryLedger(engine), states=AppointmentStateStore(engine),
        clinic=clinic, clock=clock, on_recorded=dispatcher.wake,
    )
    kafka = settings.common.kafka
    broker = KafkaBroker(
        kafka.bootstrap_servers, security=broker_security(kafka), enable_idempotence=True, logger=None
    )
    _subscribe(broker, settings, handler, SuppressionList(engine))
    return NotifierParts(
        settings=settings, engine=engine, clinic=clinic, clock=clock, dispatcher=dispatcher,
        handler=handler, broker=broker,
        workers=(_consumer_worker(broker), Worker("dispatcher", dispatcher.run)),
        health=Health(SERVICE), own_channels=tuple(own_channels),
    )


async def run(parts: NotifierParts, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; raises `WorkerDied` if a worker ends first."""
    settings = parts.settings
    try:
        await create_tables(parts.engine, SCHEMA)
        await wait_for_broker_and_ensure_topics(settings.common.kafka)
        await parts.broker.start()
        serve_metrics(settings.metrics_port, settings.metrics_host)
        log.info("notifier_started", group_id=settings.group_id)
        await supervise(parts.workers, stop, parts.health)
    finally:
        await parts.broker.stop()
        await close(parts)
        log.info("notifier_stopped")


async def close(parts: NotifierParts) -> None:
    """Close the channels `build` made and the database connections."""
    for channel in parts.own_channels:
        await channel.close()
    await parts.engine.dispose()


def _consumer_worker(broker: KafkaBroker) -> Worker:
    """FastStream consumes (and restarts its own consume loops) while the broker is started: this
    worker keeps it started until `stop`, then stops it, committing nothing more."""

    async def consume(stop: asyncio.Event) -> None:
        try:
            await stop.wait()
        finally:
            await broker.stop()

    return Worker("consumer", consume)


def _subscribe(
    broker: KafkaBroker, settings: NotifierSettings, handler: AppointmentEventHandler, suppressions: SuppressionList
) -> None:
    """Batch subscribers on appointments and consent changes, each committing its own offsets."""
    dead_letters = KafkaDeadLetters(settings.common.kafka)
    group_id = settings.group_id
    EventConsumer(
        service=SERVICE, group_id=group_id, handle_batch=handler.handle_batch, dead_letters=dead_letters,
    ).subscribe(broker, APPOINTMENTS)

    async def apply_consent_changes(changes: list[ConsentChanged]) -> None:
        for change in changes:  # each its own transaction; applying one again changes nothing
            await apply_consent_change(suppressions, change)

    EventConsumer(
        service=SERVICE, group_id=f"{group_id}.consent", handle_batch=apply_consent_changes,
        dead_letters=dead_letters, parse=ConsentChanged.model_validate_json, dead_letter_topic=CONSENT_DEAD_LETTER,
    ).subscribe(broker, CONSENT)
